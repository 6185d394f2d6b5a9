"""The worst readings now (beside or under the sensor tiles, widgets/sensor_tiles.py): which
sensor, in which district, its value and level — the header's 感知告警 figure, itemised. No line
is elided: a line too wide loses its level word (the colour says it), then goes."""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QLabel, QWidget

from situation.thresholds import ALARM, OK, WARN
from widgets import theme
from widgets.i18n import tr

WORST_PX, WORST_HEAD_PX = 22, 22     # the worst list: read from the back of the room
WORST_MAX = 6
WORST_KEEP = 64     # lines handed to the list: enough for WORST_MAX to fit, never all of them
WORST_EACH_KIND = 8     # … and each kind's worst after them (a short line where long ones
                        # do not fit)


def colour_of(level: int) -> str:
    return {OK: theme.SENSOR, WARN: theme.WARN, ALARM: theme.ALARM}.get(level, theme.MUTED)


class WorstList(QWidget):
    """The worst readings now, one a line: level word, sensor, district, the metric and its
    value with unit, in the level's colour; a heading saying how many are listed."""

    def __init__(self, lang: str, parent=None):
        super().__init__(parent)
        self.lang = lang
        self.head = theme.label(tr("tile.worst", lang), WORST_HEAD_PX, theme.ACCENT, True)
        self.head.setParent(self)
        self.rows: list[QLabel] = []
        self.hint = QSize(0, 0)          # what the panel's arrangement gives it
        # everything that could be listed: (words, level); words (level word, sensor,
        # district, metric and value) — the level word goes first when a line is too wide
        self.lines: list[tuple[tuple[str, ...], int]] = []
        self.shown = 0

    def sizeHint(self) -> QSize:
        return self.hint

    def minimumSizeHint(self) -> QSize:
        return QSize(0, 0)

    def row_h(self) -> int:
        return QFontMetrics(theme.font(WORST_PX)).height() + 2

    def head_h(self) -> int:
        return QFontMetrics(theme.font(WORST_HEAD_PX, bold=True)).height() + 4

    def need_w(self) -> int:
        fm = QFontMetrics(theme.font(WORST_PX, bold=True))
        head = QFontMetrics(theme.font(WORST_HEAD_PX, bold=True)).horizontalAdvance(
            tr("tile.worst", self.lang) + tr("tile.top", self.lang, n=WORST_MAX))
        return max([head] + [fm.horizontalAdvance(self.text(p)) for p, _ in self.lines]) + 8

    @staticmethod
    def text(parts: tuple[str, ...]) -> str:
        return "  ".join(p for p in parts if p)

    def line_for(self, parts: tuple[str, ...], width: int) -> str | None:
        """The line's words as they fit ``width``: whole, else without the level word (the
        colour says it), else with the sensor's id shortened in its middle (a long id must
        not drop the reading from the list: the value and where are what matter); None only
        when not even the value fits."""
        fm = QFontMetrics(theme.font(WORST_PX, bold=True))
        for words in (parts, parts[1:]):
            text = self.text(words)
            if fm.horizontalAdvance(text) + 4 <= width:
                return text
        words = list(parts[1:])
        if words:
            rest = fm.horizontalAdvance(self.text(tuple(["…"] + words[1:]))) + 4
            room = width - rest + fm.horizontalAdvance("…")
            if room >= fm.horizontalAdvance("…") and words[0]:
                words[0] = fm.elidedText(words[0], Qt.ElideMiddle, room)
                text = self.text(tuple(words))
                if fm.horizontalAdvance(text) + 4 <= width:
                    return text
        return None

    def set_lines(self, lines: list[tuple[tuple[str, ...], int]]) -> None:
        self.lines = lines
        self.fit()

    def fit(self) -> None:
        w, h = self.width(), self.height()
        room = max(0, (h - self.head_h()) // self.row_h())
        shown: list[tuple[str, int]] = []
        for p, lvl in self.lines:               # the first that fit, measured no further
            if len(shown) >= min(room, WORST_MAX):
                break
            text = self.line_for(p, w)
            if text:
                shown.append((text, lvl))
        self.shown = len(shown)
        more = len(self.lines) > len(shown) and any(lvl >= WARN for _, lvl in self.lines)
        self.head.setText(tr("tile.worst", self.lang)
                          + (tr("tile.top", self.lang, n=len(shown)) if more and shown else ""))
        self.head.setGeometry(0, 0, w, self.head_h())
        while len(self.rows) < len(shown):
            lab = theme.label("", WORST_PX, theme.TEXT, True)
            lab.setParent(self)
            lab.setTextFormat(Qt.PlainText)
            self.rows.append(lab)
        y = self.head_h()
        for i, lab in enumerate(self.rows):
            if i < len(shown):
                text, lvl = shown[i]
                lab.setText(text)
                lab.setStyleSheet(f"color: {colour_of(lvl)}; background: transparent;")
                lab.setGeometry(0, y, w, self.row_h())
                lab.show()
                y += self.row_h()
            else:
                lab.hide()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.fit()

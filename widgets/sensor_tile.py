"""One sensor tile (widgets/sensor_tiles.py shows one per kind): title and sensor count, the
key figure's caption, the key figure (value and unit) large in its level's colour, how many
sensors are in warning and alarm, a dot for every sensor coloured by its latest reading's level.

Nothing here is elided. A tile fits its parts to its size with QFontMetrics: the words give
way first (the caption "PM2.5 中位" moves onto the title's line, then goes — the tooltip keeps
it), then the dots shrink, and the dot row goes only when there is no room for it at all (the
panel's summary says so); the key figure always shows whole. In a short, wide cell a tile is
one line — "空气 118.5 µg/m³", the figure in its level's colour, the alarm and warning counts
beside it where the line has room (``compact``; the panel flows the lines).
"""
from __future__ import annotations

import html

import math
from dataclasses import dataclass, field

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter
from PySide6.QtWidgets import QFrame, QLabel, QWidget

from situation.thresholds import ALARM, OK, UNKNOWN, WARN
from widgets import theme
from widgets.i18n import tr

LEVEL_COLOUR = {OK: theme.SENSOR, WARN: theme.WARN, ALARM: theme.ALARM, UNKNOWN: theme.MUTED}

TITLE_PX, SMALL_PX, BADGE_PX = 24, 20, 20
VALUE_PX = (40, 34, 30, 26, 22)      # the key figure: the largest that fits whole
VALUE_MIN_GOOD = 30                  # under this the words and dots give way first
DOT_PX = (12, 9, 7)                  # a sensor's dot; smaller when many, none when no room
DOT_GAP = 3
# The ways a tile can be laid out, best first (key figure at least min px, dots, where the
# caption goes, where the counts go): the panel shows every tile in the same one.
# (Where the counts go — beside the figure, on their own line, on the title's line — each
# tile finds for itself.)
STYLES = [(min_px, dots, cap)
          for min_px in (VALUE_MIN_GOOD, VALUE_PX[-1]) for dots in (True, False)
          for cap in ("row", "title", "none")]
# One-line tiles (a short, wide cell): the type, the largest that fits first (title and figure
# alike; the counts at most BADGE_PX), the padding and the room between tiles.
COMPACT_PX = (28, 26, 24, 22, 20, 18)
COMPACT_PAD_L, COMPACT_PAD_R, COMPACT_PAD_V, COMPACT_GAP, COMPACT_SPACING = 14, 10, 2, 10, 8


@dataclass
class TileView:
    title: str
    count: str
    headline: str = "—"
    headline_level: int = UNKNOWN
    warn: int = 0
    alarm: int = 0
    dots: list[int] = field(default_factory=list)
    worst: list[tuple[str, int]] = field(default_factory=list)   # (line, level)
    caption: str = ""          # what the key figure is ("PM2.5 中位")
    value: str = "—"           # the key figure with its unit ("71 µg/m³")


def badge_text(alarm: int, warn: int, lang: str) -> str:
    """"告警 1  预警 20": the counts there are (none: "全部正常")."""
    parts = [f"{tr(key, lang)} {n}" for key, n in (("alarm", alarm), ("warn", warn)) if n]
    return "  ".join(parts) or tr("all_normal", lang)


def badge_html(alarm: int, warn: int, lang: str) -> str:
    """``badge_text`` with each count in its level's colour (the same characters, so it
    measures the same)."""
    parts = [f'<span style="color:{colour}">{html.escape(tr(key, lang))} {n}</span>'
             for key, n, colour in (("alarm", alarm, theme.ALARM), ("warn", warn, theme.WARN))
             if n]
    return "&nbsp;&nbsp;".join(parts) or html.escape(tr("all_normal", lang))


class DotRow(QWidget):
    """One dot per sensor, coloured by its level, in as many rows as they take."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.levels: list[int] = []
        self.dot = DOT_PX[0]

    def paintEvent(self, _event) -> None:
        if not self.levels:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        p.setPen(Qt.NoPen)
        d, gap = self.dot, DOT_GAP
        per_row = max(1, (self.width() + gap) // (d + gap))
        for i, lvl in enumerate(self.levels):
            r, c = divmod(i, per_row)
            p.setBrush(QColor(LEVEL_COLOUR.get(lvl, theme.MUTED)))
            p.drawRoundedRect(QRectF(c * (d + gap), r * (d + gap), d, d), 2, 2)
        p.end()


def dot_rows(n: int, width: int, dot: int) -> int:
    per_row = max(1, (width + DOT_GAP) // (dot + DOT_GAP))
    return math.ceil(n / per_row) if n else 0


@dataclass
class TilePlan:
    """How a tile lays out at its size (what ``SensorTile.fit`` chose)."""
    caption: str            # "row" (its own line), "title" (beside the title), "none"
    dots: int               # dot size in px; 0: no dot row
    value_px: int
    badges: str             # "value" (beside the figure), "row" (their own line), "title"
    count_shown: bool
    fits: bool              # everything chosen fits the tile's height
    rank: int = 0           # lower is better (used to compare arrangements)
    compact: bool = False   # one line: title, figure, counts (the panel's compact flow)


class SensorTile(QFrame):
    """One kind: title and sensor count, the key figure's caption, the key figure (value and
    unit) large in its level's colour, warning and alarm counts, the dots. ``fit`` places
    them (QFontMetrics) for the tile's size; no text is ever elided."""

    PAD_L, PAD_R, PAD_T, PAD_B, GAP = 16, 10, 4, 6, 2

    def __init__(self, lang: str = "zh", parent=None):
        super().__init__(parent)
        self.lang = lang
        self.setObjectName("sensorTile")
        self.view = TileView("", "")
        self.edge = QWidget(self)              # the level stripe down the left side
        self.title = self._label(TITLE_PX, theme.TEXT, True)
        self.count = self._label(SMALL_PX, theme.MUTED, align=Qt.AlignRight | Qt.AlignVCenter)
        self.caption = self._label(SMALL_PX, theme.MUTED)
        self.value = self._label(VALUE_PX[0], theme.TEXT, True)
        self.badges = self._label(BADGE_PX, theme.DIM, True)
        self.badges.setTextFormat(Qt.RichText)       # the counts in their colours (badge_html)
        self.badge_plain = ""
        self.dots = DotRow(self)
        self.plan: TilePlan | None = None
        self.style: int | None = None      # the style the panel chose for every tile
        self.style_px: int | None = None   # and the key figures' size in it
        self.compact: tuple[int, bool] | None = None   # one line: (px, counts shown)
        self._look(theme.PANEL_EDGE)
        self.setMinimumSize(1, 1)

    def _label(self, px: int, colour: str, bold: bool = False,
               align=Qt.AlignLeft | Qt.AlignVCenter) -> QLabel:
        lab = theme.label("", px, colour, bold, align)
        lab.setParent(self)
        lab.setTextFormat(Qt.PlainText)
        return lab

    def _look(self, edge: str) -> None:
        self.setStyleSheet(f"QFrame#sensorTile {{ background: {theme.HEADER};"
                           f" border: 1px solid {theme.PANEL_EDGE}; border-radius: 6px; }}")
        self.edge.setStyleSheet(f"background: {edge}; border: none;")

    def sizeHint(self) -> QSize:
        return QSize(260, 150)

    def minimumSizeHint(self) -> QSize:
        return QSize(1, 1)               # the panel chooses the grid so that it fits

    # ---- what it shows ------------------------------------------------------------------
    def set_view(self, view: TileView) -> None:
        self.view = view
        self.title.setText(view.title)
        self.count.setText(view.count)
        self.value.setText(view.value)
        colour = LEVEL_COLOUR.get(view.headline_level, theme.TEXT) \
            if view.headline_level != UNKNOWN else theme.TEXT
        self.value.setStyleSheet(f"color: {colour}; background: transparent;")
        # Each count in its own level's colour: warnings are not alarms.
        self.badge_plain = badge_text(view.alarm, view.warn, self.lang)   # what is measured
        self.badges.setText(badge_html(view.alarm, view.warn, self.lang))
        self.badges.setStyleSheet(f"color: {theme.MUTED}; background: transparent;")
        self._look(theme.ALARM if view.alarm else theme.WARN if view.warn else theme.PANEL_EDGE)
        self.setToolTip(" ".join(p for p in (view.title, view.count, view.caption, view.value)
                                 if p and p != "—"))
        self.dots.levels = list(view.dots)
        self.fit()
        self.dots.update()

    # ---- fitting ------------------------------------------------------------------------
    @staticmethod
    def _w(text: str, px: int, bold: bool = False) -> int:
        return QFontMetrics(theme.font(px, bold=bold)).horizontalAdvance(text)

    @staticmethod
    def _h(px: int) -> int:
        return QFontMetrics(theme.font(px)).height()

    def options(self, w: int, h: int) -> dict[int, TilePlan]:
        """Every style (``STYLES``, by index) this tile can be shown in at w × h, each with the
        largest key figure that fits whole."""
        v = self.view
        inner = w - self.PAD_L - self.PAD_R
        room = h - self.PAD_T - self.PAD_B
        title_w = self._w(v.title, TITLE_PX, True)
        count_w = self._w(v.count, SMALL_PX)
        cap_w = self._w(v.caption, SMALL_PX) if v.caption else 0
        title_cap_w = self._w(f"{v.title}  {v.caption}", TITLE_PX, True)
        badge_w = self._w(self.badge_plain, BADGE_PX, True)
        title_h, small_h, badge_h = self._h(TITLE_PX), self._h(SMALL_PX), self._h(BADGE_PX)
        n = len(v.dots)
        out: dict[int, TilePlan] = {}
        for rank, (min_px, want_dots, cap) in enumerate(STYLES):
            if not v.caption:
                cap = "none"            # nothing to place: any caption style will do
            for badges in ("value", "row", "title"):
                # the caption on the title's line is drawn in the title's type (fit)
                head = (title_cap_w if cap == "title" else title_w) + 4 \
                    + (16 + badge_w if badges == "title" else 0)
                if head > inner or (cap == "row" and cap_w > inner) \
                        or (badges == "row" and badge_w > inner):
                    continue
                count_shown = badges != "title" and head + 12 + count_w <= inner
                used = title_h + self.GAP + (small_h + self.GAP if cap == "row" else 0)
                for px in VALUE_PX:
                    if px < min_px:
                        break
                    val_w = self._w(v.value, px, True)
                    if val_w > inner or (badges == "value" and val_w + 16 + badge_w > inner):
                        continue
                    val_h = round(px * 1.2)
                    total = used + (max(val_h, badge_h) if badges == "value" else val_h)
                    total += self.GAP + (badge_h + self.GAP if badges == "row" else 0)
                    dot = 0
                    if want_dots and n:
                        dot = next((d for d in DOT_PX
                                    if total + dot_rows(n, inner, d) * (d + DOT_GAP) <= room), 0)
                        if not dot:
                            continue
                    if total <= room:
                        out[rank] = TilePlan(cap, dot, px, badges, count_shown, True, rank)
                        break
                if rank in out:
                    break
        return out

    def plan_for(self, w: int, h: int) -> TilePlan:
        """The way to show this tile at w × h: in the style the panel chose for every tile
        (``style``, with its key figures' size) when it can, else the best style it can; when
        nothing fits the height, the key figure whole at the smallest size, the counts where
        they fit, no words, no dots (``fits`` False)."""
        opts = self.options(w, h)
        if self.style is not None and self.style in opts:
            plan = opts[self.style]
            plan.value_px = min(plan.value_px, self.style_px or plan.value_px)
            return plan
        if opts:
            return opts[min(opts)]
        v = self.view
        inner = w - self.PAD_L - self.PAD_R
        title_w = self._w(v.title, TITLE_PX, True)
        badge_w = self._w(self.badge_plain, BADGE_PX, True)
        px = next((p for p in VALUE_PX if self._w(v.value, p, True) <= inner), VALUE_PX[-1])
        val_w = self._w(v.value, px, True)
        badges = ("title" if title_w + 16 + badge_w <= inner
                  else "value" if val_w + 16 + badge_w <= inner else "none")
        return TilePlan("none", 0, px, badges, False, False, 999)

    # ---- one line (the panel's compact flow) ----------------------------------------------
    @staticmethod
    def _fm(px: int, bold: bool = False) -> QFontMetrics:
        return QFontMetrics(theme.font(px, bold=bold, mono_digits=True))

    @staticmethod
    def compact_badge_px(px: int) -> int:
        return min(px, BADGE_PX)

    @staticmethod
    def compact_title_px(px: int) -> int:
        """The title a little smaller than the figure: the room goes to the figure."""
        return max(COMPACT_PX[-1], px - 2)

    def compact_height(self, px: int) -> int:
        """The height of a one-line tile at ``px``: its tallest type, padding, frame."""
        return (max(self._fm(self.compact_title_px(px)).height(), self._fm(px, True).height(),
                    self._fm(self.compact_badge_px(px), True).height())
                + 2 * COMPACT_PAD_V + 2)

    def compact_widths(self, px: int) -> tuple[int, int]:
        """(width of the line with title and figure, what the counts add; 0: no counts to
        show) at ``px``."""
        v = self.view
        base = (COMPACT_PAD_L + self._fm(self.compact_title_px(px)).horizontalAdvance(v.title)
                + 4 + COMPACT_GAP
                + self._fm(px, True).horizontalAdvance(v.value) + 4 + COMPACT_PAD_R + 2)
        counts = 0
        if v.alarm or v.warn:
            counts = COMPACT_GAP + self._fm(self.compact_badge_px(px), True).horizontalAdvance(
                self.badge_plain) + 4
        return base, counts

    def fit_compact(self) -> None:
        """One line: title, the key figure, and the counts at the right when they fit."""
        px, counts = self.compact
        v = self.view
        w, h = self.width(), self.height()
        self.edge.setGeometry(0, 5, 5, max(0, h - 10))
        for lab in (self.count, self.caption):
            lab.hide()
        self.dots.hide()
        bpx = self.compact_badge_px(px)
        tpx = self.compact_title_px(px)
        fonts = {self.title: theme.font(tpx, mono_digits=True),
                 self.value: theme.font(px, bold=True, mono_digits=True),
                 self.badges: theme.font(bpx, bold=True, mono_digits=True)}
        for lab, font in fonts.items():
            if lab.font() != font:
                lab.setFont(font)
        self.title.setText(v.title)
        title_w = self._fm(tpx).horizontalAdvance(v.title) + 4
        val_w = self._fm(px, True).horizontalAdvance(v.value) + 4
        line_h = self.compact_height(px) - 2 * COMPACT_PAD_V - 2
        y = max(1, (h - line_h) // 2)
        x = COMPACT_PAD_L
        self.title.setGeometry(x, y, title_w, line_h)
        x += title_w + COMPACT_GAP
        self.value.setGeometry(x, y, val_w, line_h)
        x += val_w
        badge_w = self._fm(bpx, True).horizontalAdvance(self.badge_plain) + 4
        show = counts and (v.alarm or v.warn) and x + COMPACT_GAP + badge_w \
            <= w - COMPACT_PAD_R - 2
        self.badges.setVisible(bool(show))
        if show:
            self.badges.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
            self.badges.setGeometry(w - COMPACT_PAD_R - 1 - badge_w, y, badge_w, line_h)
        self.plan = TilePlan("none", 0, px, "value" if show else "none", False,
                             x + COMPACT_PAD_R + 1 <= w, 900, compact=True)

    def fit(self) -> None:
        if self.compact is not None:
            self.fit_compact()
            return
        w, h = self.width(), self.height()
        plan = self.plan = self.plan_for(w, h)
        v = self.view
        inner = w - self.PAD_L - self.PAD_R
        x = self.PAD_L
        y = self.PAD_T
        for lab, font in ((self.title, theme.font(TITLE_PX, bold=True, mono_digits=True)),
                          (self.badges, theme.font(BADGE_PX, bold=True, mono_digits=True))):
            if lab.font() != font:           # back from one line
                lab.setFont(font)
        self.edge.setGeometry(0, 6, 5, max(0, h - 12))
        title_h, small_h, badge_h = self._h(TITLE_PX), self._h(SMALL_PX), self._h(BADGE_PX)
        title = f"{v.title}  {v.caption}" if plan.caption == "title" else v.title
        self.title.setText(title)
        self.title.setGeometry(x, y, self._w(title, TITLE_PX, True) + 4, title_h)
        self.count.setVisible(plan.count_shown)
        count_w = self._w(v.count, SMALL_PX) + 4
        self.count.setGeometry(x + inner - count_w, y, count_w, title_h)
        badge_w = self._w(self.badge_plain, BADGE_PX, True) + 4
        self.badges.setVisible(plan.badges != "none")
        if plan.badges == "title":
            self.badges.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
            self.badges.setGeometry(x + inner - badge_w, y, badge_w, title_h)
        y += title_h + self.GAP
        self.caption.setVisible(plan.caption == "row")
        if plan.caption == "row":
            self.caption.setText(v.caption)
            self.caption.setGeometry(x, y, inner, small_h)
            y += small_h + self.GAP
        self.value.setFont(theme.font(plan.value_px, bold=True, mono_digits=True))
        val_h = round(plan.value_px * 1.2)
        val_w = self._w(v.value, plan.value_px, True) + 4
        if plan.badges == "value":
            row_h = max(val_h, badge_h)
            self.value.setGeometry(x, y, min(inner, val_w), row_h)
            self.badges.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
            self.badges.setGeometry(x + inner - badge_w, y, badge_w, row_h)
            y += row_h + self.GAP
        else:
            self.value.setGeometry(x, y, min(inner, val_w), val_h)
            y += val_h + self.GAP
            if plan.badges == "row":
                self.badges.setAlignment(Qt.AlignLeft | Qt.AlignVCenter)
                self.badges.setGeometry(x, y, min(inner, badge_w), badge_h)
                y += badge_h + self.GAP
        self.dots.setVisible(bool(plan.dots))
        if plan.dots:
            self.dots.dot = plan.dots
            rows = dot_rows(len(v.dots), inner, plan.dots)
            self.dots.setGeometry(x, y + 2, inner, rows * (plan.dots + DOT_GAP))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.fit()

    def shown_texts(self) -> list[QLabel]:
        """The labels on show (tests check none is wider than its text needs)."""
        return [lab for lab in (self.title, self.count, self.caption, self.value, self.badges)
                if lab.isVisibleTo(self)]


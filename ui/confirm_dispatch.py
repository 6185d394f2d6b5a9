"""Cards over a window's panels for dispatch, at wall scale (read from 4 m: 24 px text and up):

- ``ConfirmDispatch`` — a unit further than the limit, or of another district, was dropped on
  a case: how far, how long to arrive, whose district, and the nearest available unit instead;
  send anyway, send the other, or cancel (Esc). Nothing is sent until one is pressed.
- ``UnitPicker`` — D on a case: the nearest available units in rows big enough to hit, with
  their distance and time to arrive in columns; a click, Enter or 1–3 picks, Esc cancels.

Both are children of the window (below its header, centred), not windows of their own: a
wall's frameless full-screen windows would hide a dialog, and a drop handler must return to
the drag's own loop at once. ``ui.dispatch`` decides what to ask; these only ask.
"""
from __future__ import annotations

import shiboken6
from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPalette
from PySide6.QtWidgets import (QAbstractItemView, QFrame, QHBoxLayout, QHeaderView, QPushButton,
                               QStyledItemDelegate, QTableWidget, QTableWidgetItem, QVBoxLayout)

from situation.catalog import category_name, district_name, unit_kind_name
from widgets import theme
from widgets.i18n import tr

TEXT_PX = 28                    # body text and buttons
TITLE_PX = 36
HINT_PX = 24                    # the smallest text on a card
ROW_PX = 68                     # a picker row: a hand's width, easy to hit
BUTTON_PX = 72


def eta_words(seconds: float, lang: str) -> str:
    """"14 分钟", "20 小时 12 分" / "14 min", "20 h 12 min"."""
    minutes = max(1, round(seconds / 60))
    if minutes < 60:
        return tr("dsp.eta_min", lang, m=minutes)
    return tr("dsp.eta_hm", lang, h=minutes // 60, m=minutes % 60)


def km(metres: float) -> str:
    return f"{metres / 1000:.1f}"


class Overlay(QFrame):
    """A card over ``window``'s panels: centred below its header, following its size."""

    def __init__(self, window, edge: str):
        super().__init__(window)
        self.setObjectName("dispatchCard")
        self.setStyleSheet(f"QFrame#dispatchCard {{ background: {theme.PANEL};"
                           f" border: 4px solid {edge}; border-radius: 12px; }}")
        self.setAutoFillBackground(True)
        self.window_ = window
        window.installEventFilter(self)
        self.open = True

    def eventFilter(self, obj, event) -> bool:
        if obj is self.window_ and event.type() == QEvent.Resize:
            self.place()
        return False

    def place(self) -> None:
        w = self.window_
        header = getattr(w, "header", None)
        top = header.height() if header is not None else 0
        hint = self.sizeHint()
        width = min(w.width() - 32, max(hint.width(), self.minimumWidth()))
        height = min(w.height() - top - 32, hint.height())
        self.setGeometry((w.width() - width) // 2,
                         top + max(16, (w.height() - top - height) // 3), width, height)

    def show_over(self) -> None:
        self.place()
        self.show()
        self.raise_()

    def close_card(self) -> None:
        if not self.open:
            return
        self.open = False
        if shiboken6.isValid(self.window_):
            self.window_.removeEventFilter(self)
        self.hide()
        self.deleteLater()


def _button(text: str, edge: str) -> QPushButton:
    b = QPushButton(text)
    b.setFont(theme.font(TEXT_PX, bold=True))
    b.setMinimumHeight(BUTTON_PX)
    b.setCursor(Qt.PointingHandCursor)
    b.setStyleSheet(f"QPushButton {{ background: {theme.HEADER}; color: {theme.TEXT};"
                    f" border: 3px solid {edge}; border-radius: 8px; padding: 6px 22px; }}"
                    f" QPushButton:focus {{ background: {theme.PANEL_EDGE};"
                    f" border: 5px solid {theme.TEXT}; }}"
                    f" QPushButton:pressed {{ background: {edge}; color: {theme.BG}; }}")
    return b


class ConfirmDispatch(Overlay):
    """Send ``unit`` to ``case`` though it is far or of another district?"""

    answered = Signal(str)              # "send" | "alternative" | "cancel"

    def __init__(self, window, situation, case, unit, concern, alternative, limit_m: float,
                 lang: str):
        super().__init__(window, theme.WARN)
        self.lang = lang
        lay = QVBoxLayout(self)
        lay.setContentsMargins(36, 28, 36, 24)
        lay.setSpacing(14)
        sug = concern.suggestion
        where = district_name(concern.case_district, lang)
        self.title = theme.label("⚠ " + tr("dsp.confirm_title", lang), TITLE_PX, theme.WARN,
                                 True)
        lay.addWidget(self.title)
        what = (f"{unit.callsign}（{unit_kind_name(unit.kind, lang)}） → {case.case_id}"
                f"（{where} · {category_name(case.category, lang)}）")
        if lang != "zh":
            what = what.replace("（", " (").replace("）", ")")
        self.what = theme.label(what, TEXT_PX, theme.TEXT, True)
        lay.addWidget(self.what)
        self.lines = []
        key = "dsp.far" if concern.far else "dsp.near"
        self._line(tr(key, lang, km=km(sug.distance_m), limit=f"{limit_m / 1000:g}",
                      eta=eta_words(sug.eta_s, lang)), theme.WARN if concern.far else theme.TEXT)
        if concern.outside:
            self._line(tr("dsp.outside", lang, unit=unit.callsign,
                          home=district_name(concern.home, lang), district=where), theme.WARN)
        if alternative is not None:
            alt = alternative.unit
            self._line(tr("dsp.alt", lang, unit=alt.callsign, kind=unit_kind_name(alt.kind, lang),
                          km=km(alternative.distance_m), eta=eta_words(alternative.eta_s, lang)),
                       theme.READY)
        else:
            self._line(tr("dsp.no_alt", lang), theme.MUTED)
        row = QHBoxLayout()
        row.setSpacing(18)
        self.send = _button(tr("dsp.send_anyway", lang, unit=unit.callsign), theme.WARN)
        self.send.clicked.connect(lambda: self.answer("send"))
        row.addWidget(self.send)
        self.alternative = None
        if alternative is not None:
            self.alternative = _button(tr("dsp.send_alt", lang, unit=alternative.unit.callsign),
                                       theme.READY)
            self.alternative.clicked.connect(lambda: self.answer("alternative"))
            row.addWidget(self.alternative)
        self.cancel = _button(tr("dsp.cancel", lang), theme.ACCENT)
        self.cancel.clicked.connect(lambda: self.answer("cancel"))
        row.addWidget(self.cancel)
        lay.addSpacing(6)
        lay.addLayout(row)
        lay.addWidget(theme.label(tr("dsp.confirm_keys", lang), HINT_PX, theme.MUTED))
        for b in self.buttons():
            b.installEventFilter(self)
        self.show_over()
        self.cancel.setFocus(Qt.OtherFocusReason)   # Enter on a surprise sends nothing

    def _line(self, text: str, colour: str) -> None:
        lab = theme.label(text, TEXT_PX, colour, colour != theme.TEXT)
        lab.setWordWrap(True)
        self.layout().addWidget(lab)
        self.lines.append(lab)

    def buttons(self) -> list[QPushButton]:
        return [b for b in (self.send, self.alternative, self.cancel) if b is not None]

    def text(self) -> str:
        return "\n".join(lab.text() for lab in (self.title, self.what, *self.lines))

    def answer(self, what: str) -> None:
        if self.open:
            self.close_card()
            self.answered.emit(what)

    def eventFilter(self, obj, event) -> bool:
        kind = event.type()
        if kind in (QEvent.ShortcutOverride, QEvent.KeyPress) and obj in self.buttons():
            key = event.key()
            if key in (Qt.Key_Escape, Qt.Key_Return, Qt.Key_Enter):
                if kind == QEvent.ShortcutOverride:     # ours, not the window's Esc
                    event.accept()
                    return True
                if key == Qt.Key_Escape:
                    self.answer("cancel")
                else:
                    obj.click()
                return True
        return super().eventFilter(obj, event)


class UnitPicker(Overlay):
    """The nearest available units for ``case``, to pick one (D on a case)."""

    picked = Signal(str)                # unit id
    cancelled = Signal()
    COLUMNS = ("#", "dsp.col_unit", "dsp.col_kind", "dsp.col_district", "dsp.col_distance",
               "dsp.col_eta")
    RIGHT = (0, 4, 5)                   # figures line up on the right

    def __init__(self, window, case, rows, lang: str):
        """``rows``: (Suggestion, Concern) for each unit, nearest first."""
        super().__init__(window, theme.ACCENT)
        self.lang = lang
        self.unit_ids = [sug.unit.unit_id for sug, _ in rows]
        lay = QVBoxLayout(self)
        lay.setContentsMargins(28, 22, 28, 20)
        lay.setSpacing(12)
        self.title = theme.label(tr("dsp.pick_title", lang, case=case.case_id), 32,
                                 theme.ACCENT, True)
        lay.addWidget(self.title)
        about = " · ".join(t for t in (district_name(case.district, lang),
                                        category_name(case.category, lang), case.address) if t)
        self.about = theme.label(about, HINT_PX, theme.MUTED)
        lay.addWidget(self.about)
        t = self.table = QTableWidget(len(rows), len(self.COLUMNS))
        t.setFont(theme.font(TEXT_PX, mono_digits=True))
        for c, key in enumerate(self.COLUMNS):
            head = QTableWidgetItem(key if key == "#" else tr(key, lang))
            head.setTextAlignment(Qt.AlignVCenter | (Qt.AlignRight if c in self.RIGHT
                                                     else Qt.AlignLeft))
            t.setHorizontalHeaderItem(c, head)
        t.setItemDelegate(_KeepColours(t))     # a warning stays amber on the chosen row
        t.verticalHeader().hide()
        t.verticalHeader().setSectionResizeMode(QHeaderView.Fixed)
        t.verticalHeader().setDefaultSectionSize(ROW_PX)
        t.setEditTriggers(QAbstractItemView.NoEditTriggers)
        t.setSelectionBehavior(QAbstractItemView.SelectRows)
        t.setSelectionMode(QAbstractItemView.SingleSelection)
        t.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        t.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        t.setShowGrid(False)
        t.setStyleSheet(f"QTableWidget {{ background: {theme.PANEL}; }}"
                        f" QTableWidget::item {{ padding: 0px 14px;"
                        f" border-bottom: 1px solid {theme.GRID}; }}"
                        f" QTableWidget::item:selected {{ background: {theme.PANEL_EDGE}; }}"
                        f" QHeaderView::section {{ background: {theme.HEADER};"
                        f" color: {theme.MUTED}; border: none;"
                        f" border-bottom: 1px solid {theme.PANEL_EDGE}; padding: 4px 14px;"
                        f" font-size: {HINT_PX}px; font-weight: bold; }}")
        t.horizontalHeader().setFont(theme.font(HINT_PX, bold=True))   # after the sheet
        for r, (sug, worry) in enumerate(rows):
            u = sug.unit
            cells = [(str(r + 1), theme.MUTED, False),
                     (u.callsign, theme.TEXT, True),
                     (unit_kind_name(u.kind, lang), theme.MUTED, False),
                     (district_name(worry.home, lang),
                      theme.WARN if worry.outside else theme.TEXT, worry.outside),
                     (f"{km(sug.distance_m)} km", theme.WARN if worry.far else theme.TEXT,
                      worry.far),
                     (tr("dsp.about", lang, eta=eta_words(sug.eta_s, lang)),
                      theme.WARN if worry.far else theme.READY, True)]
            for c, (text, colour, bold) in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setForeground(QBrush(QColor(colour)))
                if bold:
                    item.setFont(theme.font(TEXT_PX, bold=True, mono_digits=True))
                item.setTextAlignment(Qt.AlignVCenter | (Qt.AlignRight if c in self.RIGHT
                                                         else Qt.AlignLeft))
                t.setItem(r, c, item)
        t.resizeColumnsToContents()
        for c in range(len(self.COLUMNS)):
            t.setColumnWidth(c, t.columnWidth(c) + 28)
        t.horizontalHeader().setStretchLastSection(True)
        width = sum(t.columnWidth(c) for c in range(len(self.COLUMNS))) + 8
        t.setMinimumWidth(width)
        t.setFixedHeight(t.horizontalHeader().sizeHint().height() + ROW_PX * len(rows) + 6)
        lay.addWidget(t)
        if not rows:
            t.hide()
            self.none = theme.label(tr("dsp.none", lang), TEXT_PX, theme.MUTED, True)
            lay.addWidget(self.none)
        lay.addWidget(theme.label(tr("dsp.pick_keys", lang), HINT_PX, theme.MUTED))
        t.clicked.connect(lambda index: self.choose(index.row()))
        t.installEventFilter(self)
        self.show_over()
        if rows:
            t.selectRow(0)
        t.setFocus(Qt.OtherFocusReason)

    def choose(self, row: int) -> None:
        if self.open and 0 <= row < len(self.unit_ids):
            self.close_card()
            self.picked.emit(self.unit_ids[row])

    def cancel(self) -> None:
        if self.open:
            self.close_card()
            self.cancelled.emit()

    def eventFilter(self, obj, event) -> bool:
        kind = event.type()
        if obj is self.table and kind in (QEvent.ShortcutOverride, QEvent.KeyPress):
            key = event.key()
            digit = Qt.Key_1 <= key <= Qt.Key_9
            if key in (Qt.Key_Escape, Qt.Key_Return, Qt.Key_Enter, Qt.Key_D) or digit:
                if kind == QEvent.ShortcutOverride:     # ours, not the window's or queue's
                    event.accept()
                    return True
                if key == Qt.Key_Escape:
                    self.cancel()
                elif digit:
                    self.choose(key - Qt.Key_1)
                elif key != Qt.Key_D:
                    self.choose(self.table.currentRow())
                return True
        return super().eventFilter(obj, event)


class _KeepColours(QStyledItemDelegate):
    """The selected row's text keeps its own colour (amber for a far or foreign unit)."""

    def initStyleOption(self, option, index) -> None:
        super().initStyleOption(option, index)
        fg = index.data(Qt.ForegroundRole)
        if fg is not None:
            option.palette.setBrush(QPalette.HighlightedText, fg)

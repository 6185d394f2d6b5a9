"""The case queue (案件队列): every open case, the most urgent first.

Order: overdue cases first, most overdue on top; then by time left to the current stage's
deadline; cases with no deadline last. Urgent priority breaks ties.
"""
from __future__ import annotations

import heapq

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QToolTip

from situation.catalog import SOURCES, category_name, district_name, stage_name
from situation.store import Change
from widgets import theme
from widgets.i18n import tr
from widgets.format import hm, time_left
from widgets.panel import Cell, TablePanel

DUE_SOON_MS = 15 * 60_000
SOON_SUMMARY_MS = 60 * 60_000
MAX_ROWS = 300               # rows at most: the most urgent (a wall reads the top; a city has 10⁵)


SHORT_ID = 5                # a long case id shows its last digits (the full id in the tooltip)


def short_id(case_id: str) -> str:
    """A case id as the wall shows it in a table: the tail that tells today's cases apart
    ("…00038" for BJ2026112400038); an id of 8 characters or fewer as it is."""
    return case_id if len(case_id) <= 8 else "…" + case_id[-SHORT_ID:]


CASE_MIME = "application/x-citywall-case"
UNIT_MIME = "application/x-citywall-unit"


class CaseQueue(TablePanel):
    name = "case_queue"
    orders = None               # the console's DispatchController, when it can send orders
    # (action, case_id=None, unit_id=None) → why this seat may not, or None: the dispatch
    # glue's ``refusal``, passed in (a panel never imports ui)
    permission = None
    dispatch_key = Signal(str)  # D or Enter on a selected case: suggest units
    columns = ("col.case_id", "col.category", "col.district", "col.stage", "col.age",
               "col.left", "col.unit", "col.source", "col.flags")
    # What a commander reads first, kept first when the panel is narrow: the time left, what
    # the case is, its stage, the unit working it; then its flags (督办, 延期…), where, which
    # case, its age, who reported it.
    priority = ("col.left", "col.category", "col.stage", "col.unit", "col.flags",
                "col.district", "col.case_id", "col.age", "col.source")
    stretch_column = 6          # the unit column takes the slack: words never get cut

    def __init__(self, situation, lang="zh", parent=None):
        super().__init__(situation, lang, parent)
        flags = self.columns.index("col.flags")      # shown right after the category
        # Read beside the category, though kept in the model's last column.
        self.table.horizontalHeader().moveSection(flags, self.columns.index("col.category") + 1)
        for key in (Qt.Key_D, Qt.Key_Return, Qt.Key_Enter):
            QShortcut(QKeySequence(key), self.table, self._ask_dispatch,
                      context=Qt.WidgetWithChildrenShortcut)
        self.table.setFocusPolicy(Qt.StrongFocus)

    def _ask_dispatch(self) -> None:
        if self._selected is not None:
            why = self.permission("dispatch", self._selected) if self.permission else None
            if why:                     # said by the glue too (the header); here, at the row
                show_refusal(self.table, why)
            self.dispatch_key.emit(self._selected)

    def refresh(self) -> None:
        super().refresh()
        show_gestures(self, self.permission("dispatch") if self.permission else None)

    def on_changed(self, change: Change) -> None:
        if change.cases or change.units:
            self.dirty = True

    def derive(self, now: int):
        s = self.situation
        lang = self.lang
        cases = s.open_cases()
        far = 1 << 62
        # The most urgent first; at city scale (tens of thousands open) only the first
        # MAX_ROWS become rows, so a refresh costs the same however many are open. The
        # counts are of every open case.
        dues = [c.due_at for c in cases if c.due_at is not None]
        overdue = sum(1 for d in dues if now > d)
        soon = sum(1 for d in dues if 0 <= d - now <= SOON_SUMMARY_MS)
        urgency = (lambda c: (c.due_at if c.due_at is not None else far, c.priority,
                              c.reported_at))
        shown = (heapq.nsmallest(MAX_ROWS, cases, key=urgency) if len(cases) > MAX_ROWS
                 else sorted(cases, key=urgency))
        keys, rows = [], []
        for c in shown:
            late = c.due_at is not None and now > c.due_at
            near = c.due_at is not None and not late and c.due_at - now <= DUE_SOON_MS
            row_bg = theme.ALARM_BG if late else None
            flags = " ".join(tr(f"flag.{f}", lang) for f in c.flags)
            unit = s.units.get(c.unit_id) if c.unit_id else None
            unit_cell = Cell(unit.callsign if unit else (c.unit_id or "—"),
                             None if unit or c.unit_id else theme.DIM, row_bg)
            why = self.permission("dispatch", c.case_id) if self.permission else None
            if why:                        # not this seat's to dispatch: say so at the row
                unit_cell = unit_cell._replace(tip=why)
            order = self.orders.order_for_case(c.case_id) if self.orders else None
            if order is not None:          # this console's order, not yet seen on the feed
                sent = s.units.get(order.unit_id)
                name = sent.callsign if sent else order.unit_id
                unit_cell = (Cell(f"⚠ {name} {tr('unconfirmed', lang)}", theme.ALARM, row_bg, True)
                             if order.state == "unconfirmed"
                             else Cell(f"⏳ {name}", theme.BUSY, row_bg, True))
            left_fg = theme.ALARM if late else theme.WARN if near else theme.TEXT
            cat = category_name(c.category, lang)
            if c.priority == 1:
                cat = "● " + cat
            src = SOURCES.get(c.source)
            rows.append([
                Cell(short_id(c.case_id), theme.MUTED, row_bg,
                     tip=f"{c.case_id}\n{c.title}" if c.title else c.case_id),
                Cell(cat, theme.URGENT if c.priority == 1 else None, row_bg,
                     tip=f"{c.title}\n{c.address or ''}" + (f"\n[{flags}]" if flags else "")),
                Cell(district_name(c.district, lang), None, row_bg),
                Cell(stage_name(c.status, lang), theme.STAGES.get(c.status, theme.MUTED),
                     row_bg),
                Cell(hm(now - c.reported_at, lang), theme.MUTED, row_bg),
                Cell(time_left(c.due_at, now, lang), left_fg, row_bg, bold=late or near),
                unit_cell,
                Cell((src[0] if lang == "zh" else src[1]) if src else c.source, theme.MUTED,
                     row_bg),
                Cell(flags, None, row_bg, bool(flags)),
            ])
            keys.append(c.case_id)
        summary = tr("summary.queue", lang, open=len(cases), overdue=overdue, soon=soon)
        if len(cases) > len(shown):
            summary += tr("summary.queue_first", lang, n=len(shown))
        return keys, rows, summary


def show_gestures(panel, why: str | None) -> None:
    """A seat without the gesture (a viewer): rows cannot be dragged out, and the table's
    tooltip says why. Drops are still taken, so the glue can refuse them and say why."""
    if panel.model.drag_mime is None or getattr(panel, "_gesture_why", None) == why:
        return
    panel._gesture_why = why
    panel.table.setDragEnabled(why is None)
    panel.table.setToolTip(why or "")


def show_refusal(view, why: str) -> None:
    """The reason, at the current row, as a tooltip."""
    rect = view.visualRect(view.currentIndex()) if view.currentIndex().isValid() else None
    at = rect.bottomLeft() if rect is not None else view.rect().center()
    QToolTip.showText(view.viewport().mapToGlobal(at), why, view)

"""Order audit (指令记录): every order this console sent and what became of it — sent, by
whom to where, the service's answer and reason, resends — newest first. The service's SQLite
file holds every console's orders; this is the console's own account."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from situation.store import Change
from widgets import theme
from widgets.case_queue import short_id
from widgets.format import hm
from widgets.i18n import STRINGS, tr
from widgets.panel import Cell, TablePanel

CITY_TZ = ZoneInfo("Asia/Shanghai")
# state → the theme's colour name (read when drawn, so the night palette holds); its words
# are "audit.state.<state>" in widgets/i18n.py, an order's kind "audit.kind.<kind>"
STATE = {"pending": "ACCENT", "acked": "READY", "done": "READY", "rejected": "ALARM",
         "unconfirmed": "ALARM"}


class OrderAudit(TablePanel):
    name = "order_audit"
    columns = ("col.time", "col.order", "col.case", "col.unit", "col.state", "col.took",
               "col.reason")
    # Kept first when the panel is narrow: which unit, what became of it, on which case.
    priority = ("col.unit", "col.state", "col.case", "col.order", "col.time", "col.reason",
                "col.took")
    stretch_column = 6
    orders = None            # the console's DispatchController (set by the wall)

    def __init__(self, situation, lang="zh", parent=None):
        super().__init__(situation, lang, parent)
        self.title.setText(tr("panel.order_audit", lang))
        self.model.headers = [tr(f"audit.{c}", lang) for c in self.columns]

    def on_changed(self, change: Change) -> None:
        self.dirty = True

    def derive(self, now: int):
        lang = self.lang
        orders = sorted(self.orders.orders.values() if self.orders else [],
                        key=lambda o: -o.sent_ms)
        keys, rows = [], []
        for o in orders:
            unit = self.situation.units.get(o.unit_id)
            colour = getattr(theme, STATE.get(o.state, "MUTED"))
            kind, state = f"audit.kind.{o.kind}", f"audit.state.{o.state}"   # else the codes
            kind = tr(kind, lang) if kind in STRINGS else o.kind
            state = tr(state, lang) if state in STRINGS else o.state
            took = hm(o.answered_ms - o.sent_ms, self.lang) if o.answered_ms else "—"
            resent = tr("audit.resent", lang, n=o.resent) if o.resent else ""
            keys.append(o.order_id)
            rows.append([
                Cell(datetime.fromtimestamp(o.sent_ms / 1000, CITY_TZ).strftime("%H:%M:%S"),
                     theme.MUTED),
                Cell(kind),
                Cell(short_id(o.case_id) if o.case_id else "—", tip=o.case_id),
                Cell(unit.callsign if unit else o.unit_id, bold=True),
                Cell(state + resent, colour, bold=True,
                     tip=o.reason or None),
                Cell(took, theme.MUTED),
                Cell(o.reason or "", theme.ALARM if o.reason else None, tip=o.reason),
            ])
        summary = "" if orders else tr("audit.none", lang)
        return keys, rows, summary

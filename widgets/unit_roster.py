"""The unit roster (执法队员/车辆): every field unit, free ones first; a unit silent for 60 s
(by the situation's clock) is greyed and marked stale."""
from __future__ import annotations

from situation.catalog import UNIT_STATUSES, district_name, unit_kind_name, unit_status_name
from situation.store import Change
from widgets import theme
from widgets.case_queue import short_id, show_gestures
from widgets.i18n import tr
from widgets.format import ago
from widgets.panel import Cell, TablePanel

STATUS_ORDER = {s: i for i, s in enumerate(UNIT_STATUSES)}
# The signal colours (the same by day and night): free, busy on the way, at work, off.
STATUS_COLOUR = {"available": theme.READY, "dispatched": theme.BUSY, "en_route": theme.BUSY,
                 "returning": theme.BUSY, "on_scene": theme.ON_SCENE, "off_duty": theme.IDLE,
                 "out_of_service": theme.IDLE}
BUSY = {"dispatched", "en_route", "on_scene", "returning"}


class UnitRoster(TablePanel):
    name = "unit_roster"
    orders = None               # the console's DispatchController, when it can send orders
    permission = None           # (action, case_id, unit_id) → why not, or None (the glue's)
    columns = ("col.callsign", "col.kind", "col.status", "col.district", "col.case",
               "col.seen")
    # Kept first when the panel is narrow: who, what it is doing, on which case.
    priority = ("col.callsign", "col.status", "col.case", "col.district", "col.seen",
                "col.kind")
    stretch_column = 4

    def on_changed(self, change: Change) -> None:
        if change.units:
            self.dirty = True

    def refresh(self) -> None:
        super().refresh()
        show_gestures(self, self.permission("dispatch") if self.permission else None)

    def derive(self, now: int):
        s = self.situation
        lang = self.lang
        units = list(s.units.values())
        units.sort(key=lambda u: (s.unit_stale(u, now), STATUS_ORDER.get(u.status, 99),
                                  u.callsign))
        keys, rows = [], []
        counts = {"available": 0, "busy": 0, "stale": 0, "off": 0}
        for u in units:
            stale = s.unit_stale(u, now)
            if stale:
                counts["stale"] += 1
            elif u.status == "available":
                counts["available"] += 1
            elif u.status in BUSY:
                counts["busy"] += 1
            else:
                counts["off"] += 1
            grey = theme.DIM if stale else None
            status = unit_status_name(u.status, lang)
            if stale:
                status = f"{tr('stale', lang)} · {status}"
            status_cell = Cell(status, theme.ALARM if stale else STATUS_COLOUR.get(u.status))
            order = self.orders.order_for_unit(u.unit_id) if self.orders else None
            if order is not None:
                status_cell = (Cell(f"⚠ {tr('unconfirmed', lang)}", theme.ALARM, bold=True)
                               if order.state == "unconfirmed" else
                               Cell(f"⏳ → {short_id(order.case_id) if order.case_id else '—'}",
                                    theme.BUSY, bold=True, tip=order.case_id))
            rows.append([
                Cell(u.callsign, grey, bold=not stale),
                Cell(unit_kind_name(u.kind, lang), grey or theme.MUTED),
                status_cell,
                Cell(district_name(s.locator.locate(u.lon, u.lat), lang), grey),
                Cell(short_id(u.case_id) if u.case_id else "—",
                     grey or (None if u.case_id else theme.DIM), tip=u.case_id),
                Cell(ago(now - u.ts, lang), theme.ALARM if stale else theme.MUTED),
            ])
            keys.append(u.unit_id)
        return keys, rows, tr("summary.roster", lang, **counts)

"""Districts (各区态势): per district, open and overdue cases, units available and sensors
in alarm — where the pressure is, at a glance."""
from __future__ import annotations

from collections import Counter

from situation.catalog import district_name
from situation.scope import district_codes
from situation.store import Change
from situation.thresholds import ALARM, reading_level
from widgets import theme
from widgets.panel import Cell, TablePanel


class DistrictBoard(TablePanel):
    name = "district_board"
    columns = ("col.district", "col.open", "col.overdue", "col.available", "col.alarms")
    priority = ("col.district", "col.overdue", "col.open", "col.available", "col.alarms")
    stretch_column = 0

    def on_changed(self, change: Change) -> None:
        if change.cases or change.units or change.sensors:
            self.dirty = True

    def derive(self, now: int):
        s = self.situation
        open_n, late_n, free_n, alarm_n = Counter(), Counter(), Counter(), Counter()
        for c in s.open_cases():
            open_n[c.district] += 1
            late_n[c.district] += s.is_overdue(c, now)
        for u in s.units.values():
            if u.status == "available" and not s.unit_stale(u, now):
                free_n[s.locator.locate(u.lon, u.lat)] += 1
        for r in s.sensors.values():
            if reading_level(r.kind, r.metrics) == ALARM:
                alarm_n[r.district] += 1
        codes = district_codes(s)          # a district wall: its districts only
        codes.sort(key=lambda a: (-late_n[a], -open_n[a], a))
        keys, rows = [], []
        for code in codes:
            late = late_n[code]
            bg = theme.ALARM_BG if late >= 3 else None
            rows.append([
                Cell(district_name(code, self.lang), None, bg, bold=True),
                Cell(str(open_n[code]), None, bg),
                Cell(str(late), theme.ALARM if late else theme.DIM, bg, bold=bool(late)),
                Cell(str(free_n[code]), theme.READY if free_n[code] else theme.WARN, bg),
                Cell(str(alarm_n[code]), theme.ALARM if alarm_n[code] else theme.DIM, bg),
            ])
            keys.append(code)
        return keys, rows, ""

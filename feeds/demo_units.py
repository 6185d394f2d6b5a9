"""The demo city's field units: who they are, how they move and what they report — the half of
``feeds.simulator.DemoCity`` that runs the units (a mixin; it works on the city's ``units``,
``cases``, ``rng``, ``t`` and its ``_emit``/``_next_seq``/``_reseq``/``_move_case``).

What a unit reports (issue #16): a GPS fix (``unit.pos``) every ``UNIT_REPORT_S`` — where it is
and nothing else, as a real tracker would — and its whole state (``unit``) whenever its status
or case changes, and at least every ``UNIT_FULL_S`` in place of a fix. The periodic full
record is the protocol's state transfer: a lost status message is healed by the next one, and
a wall that learns units only from the feed (a district wall a unit drove back into; a
recorder started mid-shift) learns every unit within a minute. A console joining the demo
directly gets every unit at once in the city's snapshot (``_units_snapshot``); one behind a
broker from the broker's state.

The time base and distances of the city are here too, as the lower of the two modules
(``feeds.simulator`` takes them from here and still exports them). No Qt.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from feeds.city_rules import BUSY, HOUR, MINUTE
from feeds.schema import Record, Unit, UnitPosition

TICK_MS = 1_000
M_PER_DEG_LAT = 111_000.0
M_PER_DEG_LON = 111_000.0 * math.cos(math.radians(40.0))

UNIT_COUNT = 120
UNIT_MIX = (("foot_patrol", 0.42, "巡", 1.3), ("vehicle", 0.2, "车", 8.0),
            ("enforcement", 0.22, "执", 6.0), ("sanitation", 0.16, "洁", 4.0))
UNIT_REPORT_S = 10                # a GPS fix this often
UNIT_FULL_S = 60                  # the whole state at least this often (in place of a fix)
GPS_ACCURACY_M = 10.0
STILL = frozenset({"off_duty", "out_of_service", "on_scene", "dispatched"})   # not moving
SHIFTS = (("白班", 7, 19), ("夜班", 19, 7))


def metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    return math.hypot((lon2 - lon1) * M_PER_DEG_LON, (lat2 - lat1) * M_PER_DEG_LAT)


@dataclass
class FieldUnit:
    id: str
    callsign: str
    kind: str
    speed_ms: float
    district: str
    home: tuple[float, float]
    shift: str
    lon: float
    lat: float
    status: str = "available"
    case_id: str | None = None
    target: tuple[float, float] | None = None
    until: int = 0                  # when the current status ends (on scene, returning)
    moved_at: int = 0
    next_report: int = 0            # its next GPS fix
    next_full: int = 0              # its next full record, whatever happens (UNIT_FULL_S)
    silent_until: int = 0           # radio lost: no reports (the wall shows it stale)
    course: float = 0.0
    waypoint: tuple[float, float] | None = None   # where an available unit patrols to
    last: Unit | None = None        # its last full record
    last_fix: UnitPosition | None = None   # its last position-only report
    warm_fix: tuple | None = None   # (seq, ts, lat, lon, course, speed): the warm-up's last fix


class DemoUnits:
    """The units' half of ``DemoCity``."""

    def _build_units(self) -> None:
        kinds = [k for k, *_ in UNIT_MIX]
        shares = np.array([share for _, share, *_ in UNIT_MIX])
        numbers: dict[tuple[str, str], int] = {}
        for i in range(UNIT_COUNT):
            k = int(self.rng.choice(len(kinds), p=shares))
            kind, _, mark, speed = UNIT_MIX[k]
            d = self._pick_district()
            n = numbers[(d.adcode, mark)] = numbers.get((d.adcode, mark), 0) + 1
            lon, lat = self._point_in(d, 0.6)
            shift = SHIFTS[0][0] if self.rng.random() < 0.62 else SHIFTS[1][0]
            u = FieldUnit(id=f"U{d.adcode[-2:]}{i + 1:03d}", callsign=f"{d.short_zh}-{mark}{n:02d}",
                          kind=kind, speed_ms=speed, district=d.adcode, home=(lon, lat),
                          shift=shift, lon=lon, lat=lat, moved_at=self.t,
                          next_report=self.t + int(self.rng.integers(0, UNIT_REPORT_S)) * 1000)
            u.next_full = u.next_report
            self.units[u.id] = u
        self._schedule_units()

    def _schedule_units(self) -> None:
        """After building them: the units' order, who reports when, nobody at work yet."""
        self._unit_order = {u.id: i for i, u in enumerate(self.units.values())}
        self._reports: dict[int, list[FieldUnit]] = {}
        for u in self.units.values():
            self._reports.setdefault(u.next_report, []).append(u)
        self._at_work: dict[str, FieldUnit] = {}

    def _reporters_at(self, t: int) -> list[FieldUnit]:
        """The units whose next report is due at ``t`` (or was already, before the first
        tick), in their order; off the schedule until they report again."""
        due = self._reports.pop(t, [])
        if self._reports and min(self._reports) < t:       # only before the first tick
            late = sorted(k for k in self._reports if k < t)
            due = sorted(due + [u for k in late for u in self._reports.pop(k)],
                         key=lambda u: self._unit_order[u.id])
        return due

    def _free(self, u: FieldUnit, t: int) -> None:
        self._move_unit(u, t)
        u.status, u.case_id, u.target, u.until = "available", None, None, 0
        self._publish_unit(u, t)

    def _units_tick(self, t: int, hour: float) -> None:
        on_minute = t % MINUTE == 0
        # Most seconds only a tenth of the units report and a few finish a step of their
        # work: those are the units this tick touches, in the same order (so the city is the
        # same; one unit's turn never changes another's). Who reports when is kept by time
        # (``_reports``), the units at work in a short list (``_at_work``, made anew on the
        # minute, when every unit is looked at).
        reporting = self._reporters_at(t)
        if on_minute:
            due = self.units.values()
            self._at_work = {}
        else:
            finishing = [u for u in self._at_work.values() if t >= u.until and u.status in BUSY]
            if finishing:
                both = {u.id: u for u in reporting + finishing}
                due = sorted(both.values(), key=lambda u: self._unit_order[u.id])
            else:
                due = reporting
        at_work, reports, draw = self._at_work, self._reports, self.rng.random
        next_report = t + UNIT_REPORT_S * 1000
        for u in due:
            if on_minute or (t >= u.until and u.status in BUSY):
                self._unit_status(u, t, hour)
            if u.status in BUSY:
                at_work[u.id] = u
            if t >= u.next_report:
                u.next_report = next_report
                reports.setdefault(next_report, []).append(u)
                if t < u.silent_until:
                    continue
                if draw() < 0.00015:                    # radio lost for a few minutes
                    u.silent_until = t + int(self.rng.uniform(2, 8) * MINUTE)
                    continue
                self._move_unit(u, t)
                if t >= u.next_full:
                    self._publish_unit(u, t)        # the whole state, now and then
                else:
                    self._publish_position(u, t)    # a GPS fix: where, nothing else

    def _on_shift(self, u: FieldUnit, hour: float) -> bool:
        for name, start, end in SHIFTS:
            if u.shift == name:
                return start <= hour < end if start < end else (hour >= start or hour < end)
        return True

    def _unit_status(self, u: FieldUnit, t: int, hour: float) -> None:
        before = u.status
        case = self.cases.get(u.case_id) if u.case_id else None
        if u.status in ("available", "off_duty", "out_of_service"):
            if t % MINUTE or (u.status == "out_of_service" and t < u.until):
                return            # shifts change on the minute
            on = self._on_shift(u, hour)
            u.status = "available" if on else "off_duty"
            if on and self.rng.random() < 0.000005:
                u.status, u.until = "out_of_service", t + int(self.rng.uniform(1, 4) * HOUR)
        elif u.status == "dispatched" and t >= u.until:
            u.status = "en_route"
            u.moved_at = t
            trip = metres(u.lon, u.lat, *u.target) / u.speed_ms if u.target else 0
            u.until = t + int(trip * 1000) + TICK_MS
        elif u.status == "en_route" and t >= u.until:
            self._move_unit(u, t)
            if u.target:
                u.lon, u.lat = u.target
            u.status = "on_scene"
            u.until = t + int(self.rng.uniform(8, 35) * MINUTE)
            if case is not None and case.status == "dispatched":
                self._move_case(case, "on_scene", t)
        elif u.status == "on_scene" and t >= u.until:
            u.status, u.case_id, u.target = "returning", None, u.home
            u.until = t + int(self.rng.uniform(4, 12) * MINUTE)
        elif u.status == "returning" and t >= u.until:
            u.status, u.target = "available", None
        if u.status != before:
            self._move_unit(u, t)
            self._publish_unit(u, t)

    def _move_unit(self, u: FieldUnit, t: int) -> None:
        """Advance the unit from where it was to now: towards its target, or patrolling
        around home."""
        dt = (t - u.moved_at) / 1000
        u.moved_at = t
        if dt <= 0 or u.status in STILL:
            return
        if u.target is None and u.status == "available":
            if u.waypoint is None or self.rng.random() < 0.3:
                u.waypoint = (u.home[0] + float(self.rng.normal(0, 0.012)),
                              u.home[1] + float(self.rng.normal(0, 0.009)))
            goal, pace = u.waypoint, u.speed_ms * 0.5
        elif u.target is not None:
            goal, pace = u.target, u.speed_ms
        else:
            return
        dx = (goal[0] - u.lon) * M_PER_DEG_LON
        dy = (goal[1] - u.lat) * M_PER_DEG_LAT
        dist = math.hypot(dx, dy)
        if dist < 1:
            return
        frac = min(1.0, pace * dt / dist)
        u.lon = round(u.lon + dx * frac / M_PER_DEG_LON, 6)
        u.lat = round(u.lat + dy * frac / M_PER_DEG_LAT, 6)
        u.course = round(math.degrees(math.atan2(dx, dy)) % 360, 1)

    def _publish_unit(self, u: FieldUnit, t: int) -> None:
        if t < u.silent_until:
            return                 # its radio is down: nothing reaches the feed
        rec = Unit(v=1, src=self.src, seq=self._next_seq(), ts=t, unit_id=u.id,
                   callsign=u.callsign, kind=u.kind, status=u.status, lat=u.lat, lon=u.lon,
                   case_id=u.case_id, shift=u.shift, course=u.course, speed=_speed(u))
        u.last = rec
        u.next_full = t + UNIT_FULL_S * 1000
        self._emit("unit", rec)

    def _publish_position(self, u: FieldUnit, t: int) -> None:
        if t < u.silent_until:
            return
        if self._warming:               # only the last one is ever read: made after
            u.last_fix, u.warm_fix = None, (self._next_seq(), t, u.lat, u.lon, u.course,
                                             _speed(u))
            return
        rec = UnitPosition(v=1, src=self.src, seq=self._next_seq(), ts=t, unit_id=u.id,
                           lat=u.lat, lon=u.lon, course=u.course, speed=_speed(u),
                           accuracy=GPS_ACCURACY_M)
        u.last_fix = rec
        self._emit("unit.pos", rec)

    def _warm_fixes(self) -> None:
        """After the warm-up: each unit's last fix, as ``_publish_position`` makes it."""
        for u in self.units.values():
            if u.warm_fix is not None:
                seq, ts, lat, lon, course, speed = u.warm_fix
                u.last_fix = UnitPosition(v=1, src=self.src, seq=seq, ts=ts, unit_id=u.id,
                                          lat=lat, lon=lon, course=course, speed=speed,
                                          accuracy=GPS_ACCURACY_M)
                u.warm_fix = None

    def _announce_units(self) -> None:
        """After a start (the warm-up went nowhere): each unit's next report is a full record,
        so a console hearing the city from its first record knows every unit before a fix."""
        for u in self.units.values():
            u.next_full = min(u.next_full, u.next_report)

    def _units_snapshot(self) -> list[tuple[str, list[Record]]]:
        """Every unit's last full record, then the fixes newer than it (as a broker's state
        sends them): a console that just joined shows each unit where it is, doing what it
        does."""
        shown = [u for u in self.units.values() if u.last is not None and self.t >= u.silent_until]
        fixes = [u.last_fix for u in shown if u.last_fix is not None and u.last_fix.ts > u.last.ts]
        return [("unit", [self._reseq(u.last) for u in shown]),
                ("unit.pos", [self._reseq(f) for f in fixes])]


def _speed(u: FieldUnit) -> float:
    """What its GPS says of its speed (m/s): full pace on its way, half patrolling, else 0."""
    if u.status in ("en_route", "returning"):
        return round(u.speed_ms, 1)
    if u.status == "available" and u.target is None:
        return round(u.speed_ms * 0.5, 1)
    return 0.0

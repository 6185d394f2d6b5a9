"""The operational picture: the one store of cases, units, sensors and sources' health.

Widgets read it; nothing else keeps a copy. Records are upserts of whole state keyed by id:
the newer ``ts`` wins and an older record arriving late changes nothing. A unit's position
(``unit.pos``) is ordered apart from its full record and never changes its status or case
(``situation.unit_tables``).

A district wall (``scope``, see ``situation.scope``) holds only its districts' records: the
others are counted in ``out_of_scope`` by kind (not rejects: they were received fine, and
count for their source like any other), and a held record that a newer one puts outside the
scope leaves.
"""
from __future__ import annotations

import dataclasses
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field

import msgspec

from feeds.batch import Batch
from feeds.decode import UNKNOWN_SRC, record_problem
from feeds.districts import DistrictLocator
from feeds.faults import Faults
from feeds.schema import (CLOSED_CASE_STATUSES, Case, Heartbeat, SensorReading, Unit,
                          UnitPosition)
from situation.case_times import StageTable
from situation.clock import Clock
from situation.limits import Limits
from situation.reports import REPORT_LOG_MS, Report, ReportLog  # noqa: F401 (re-exported)
from situation.scope import Scope
from situation.scope_tables import ScopedTables
from situation.sources import RATE_WINDOW_MS, SourceHealth, Sources
from situation.tracks import (_M_PER_DEG_LAT, _M_PER_DEG_LON,  # noqa: F401 (re-exported)
                              TRACK_MIN_MOVE_M, TRACK_REFRESH_MS, Track)
from situation.unit_tables import UnitTables

UNIT_STALE_MS = 60_000           # PROTOCOL: a unit with no record nor fix for 60 s is stale
SOURCE_DOWN_MS = 3_000           # PROTOCOL: a src silent for 3 s is down
SENSOR_HISTORY = 120             # readings kept per sensor (two hours at one a minute)
CLOSED_KEEP_MS = 48 * 3_600_000  # closed cases stay for the supervision figures
# Unit tracks (巡查即监察: where the units went), for patrol coverage. A position is kept when
# the unit moved at least TRACK_MIN_MOVE_M since the last kept one, or TRACK_REFRESH_MS passed
# (so a parked unit still leaves a point a minute); kept for TRACK_KEEP_MS of the situation's
# clock and at most TRACK_MAX points a unit. (The thinning is ``Track.keep``'s.)
TRACK_KEEP_MS = 24 * 3_600_000
TRACK_MAX = 12_000
# Distinct flags remembered per case (the protocol has four; a record carries at most eight):
# a publisher sending new names on every record cannot grow a case's flags without bound.
MAX_FLAGS_SEEN = 16


@dataclass
class Change:
    """What one ``apply`` touched, so a panel can redraw only what moved."""
    cases: set[str] = field(default_factory=set)
    units: set[str] = field(default_factory=set)
    sensors: set[str] = field(default_factory=set)
    sources: bool = False

    def __bool__(self) -> bool:
        return bool(self.cases or self.units or self.sensors or self.sources)


def _copy_state(value):
    """A copy of one part of the situation's state, as deep as it is mutable: containers are
    copied; records, and the tuples and metric dicts in histories, are never changed in place
    and are shared. (copy.deepcopy walks every tuple and costs ten times more.)"""
    if isinstance(value, Sources):
        out = Sources(value.max_sources)
        out.overflow = Counter(value.overflow)
        out.update((k, _copy_state(v)) for k, v in value.items())
        return out
    if isinstance(value, SourceHealth):
        return dataclasses.replace(value, rejected=Counter(value.rejected),
                                   _recent=deque(value._recent))
    if isinstance(value, (ReportLog, StageTable, Track)):
        return value.copy()
    if isinstance(value, (Counter, OrderedDict)):
        return type(value)(value)
    if isinstance(value, dict):
        return {k: _copy_state(v) for k, v in value.items()}
    if isinstance(value, deque):
        return deque(value, value.maxlen)
    if isinstance(value, (list, set)):
        return type(value)(value)
    return value


class Situation(UnitTables, ScopedTables):
    def __init__(self, clock: Clock, locator: DistrictLocator | None = None,
                 sensor_history: int = SENSOR_HISTORY, limits: Limits | None = None,
                 faults: Faults | None = None, scope: Scope | None = None):
        self.clock = clock
        # A district wall's districts (None: the whole city). Configuration, not state: a
        # keyframe neither holds nor restores it.
        self.scope = scope
        self.limits = limits or Limits()
        # What stopped inside the console (not the city's state: never in a keyframe); the
        # header shows it in red on every screen.
        self.faults = faults if faults is not None else Faults()
        self.locator = locator or DistrictLocator()
        self.cases: dict[str, Case] = {}
        self.units: dict[str, Unit] = {}
        # Each unit's two orders (situation.unit_tables): the ts of its last full record
        # taken, and of the position shown (plain dicts: a keyframe copies them).
        self.unit_status_ts: dict[str, int] = {}
        self.unit_pos_ts: dict[str, int] = {}
        self.sensors: dict[str, SensorReading] = {}
        self.sensor_history: dict[str, deque] = {}
        self._history_len = sensor_history
        self.sources: Sources = Sources(self.limits.max_sources)
        self.records_accepted = 0
        self.superseded = 0        # late, older records that changed nothing
        self.rejected: Counter = Counter()
        self.gaps = 0
        self.version = 0           # moves on every apply that changed something
        self._last_prune = 0
        self._last_room_prune = -10**15
        self._refused_by: Counter = Counter()     # src → records refused as too_many_ids
        self._unknown_by: Counter = Counter()     # src → positions of units not held
        # endpoint → clock ms of its last message (None: never): a silent endpoint is down
        self.endpoints: dict[str, int | None] = {}
        self.auth_failed: Counter = Counter()     # endpoint → CURVE handshakes that failed
        self.reports = ReportLog(max_entries=self.limits.max_reports)   # first sightings
        self.refused_ids = 0       # records for a new id past a table's cap (too_many_ids)
        self.aged_out = 0          # cases, units, sensors that left unheard-of (Limits)
        # Supervision history of each case held (pruned with the case), from the records' ts:
        # the first ts seen in each status, the first ts each flag was seen, and the first
        # stage deadline the case was seen to miss (a record of it dated after the held
        # record's ``due_at`` while that record was open).
        # (case_stages reads like a dict of dicts; held compact: situation.case_times.)
        self.case_stages: StageTable = StageTable()
        self.case_flags: dict[str, dict[str, int]] = {}
        self.case_late: dict[str, int] = {}
        # unit id → (ts, lon, lat) of its reported positions, oldest first (see TRACK_*)
        self.tracks: dict[str, Track] = {}      # (compact: situation.tracks)
        # Records outside the scope, by kind ("case", "unit", "sensor"): received fine, not held.
        self.out_of_scope: Counter = Counter()
        # (kind, id) → the ts that last put it outside the scope (the newest MAX_LEFT_SCOPE)
        self.left_scope: OrderedDict[tuple[str, str], int] = OrderedDict()
        # A district wall: units last seen outside it (their last full record and its ts), so
        # one that comes back by position reports alone shows again (situation.unit_tables).
        self.units_away: OrderedDict[str, tuple[Unit, int]] = OrderedDict()
        # Copies of records already applied (two brokers; a state and its feed), dropped.
        self.duplicates = 0
        # How this wall joined its brokers' feeds (feeds.state_join): the last few.
        self.state_joins: list[dict] = []

    def expect_endpoint(self, endpoint: str) -> None:
        self.endpoints.setdefault(endpoint, None)

    # ---- intake -------------------------------------------------------------------------
    def apply(self, batch: Batch, endpoints_heard: set[str] = frozenset()) -> Change:
        now = self.clock.now_ms()
        link = self.clock.link_ms()
        change = Change()
        self._refused_by = Counter()
        self._unknown_by = Counter()
        for ep in (*endpoints_heard, *batch.endpoints):
            self.endpoints[ep] = link
        if batch.rebuilt is not None:   # a replay's loop rebuilt the picture: redraw all it held
            change.cases |= batch.rebuilt[0]
            change.units |= batch.rebuilt[1]
            change.sensors |= batch.rebuilt[2]
        for ep, n in batch.auth_failed.items():     # handshakes refused: keys do not match
            if ep in self.endpoints:
                self.auth_failed[ep] += n
        if batch.loaded:                # a broker's state, before what followed it
            loaded = self.load(batch.loaded)
            change.cases |= loaded.cases
            change.units |= loaded.units
            change.sensors |= loaded.sensors
        self.duplicates += batch.duplicates
        for join in batch.joins:
            self.state_joins.append(join)
            del self.state_joins[:-10]
        for rec in batch.records:
            if isinstance(rec, Case):
                if self._upsert_case(rec):
                    change.cases.add(rec.case_id)
            elif isinstance(rec, Unit):
                if self._upsert_unit(rec, now):
                    change.units.add(rec.unit_id)
            elif isinstance(rec, UnitPosition):
                if self._upsert_position(rec, now):
                    change.units.add(rec.unit_id)
            elif isinstance(rec, SensorReading):
                if self._upsert_sensor(rec):
                    change.sensors.add(rec.id)
            elif isinstance(rec, Heartbeat):
                health = self.sources.follow(rec.src, link)
                if health is not None:
                    health.announced_rate = rec.rate
                observe = getattr(self.clock, "observe", None)
                if observe is not None:
                    observe(rec.ts, rec.src)
        self._account(batch, link)
        change.sources = True
        if now - self._last_prune > 60_000:
            self._prune(now)
        self.version += 1
        return change

    def load(self, records) -> Change:
        """Records that did not come over a feed — a dispatch service's snapshot for a console
        joining mid-shift, a broker's state — upserted like any other (newer ts wins), but not
        counted as heard from their sources: a source is up only when its publisher is."""
        change = Change()
        now = self.clock.now_ms()
        for rec in records:
            problem = record_problem(rec, now)
            if problem is not None:
                self.rejected[problem] += 1
                continue
            if isinstance(rec, Case) and self._upsert_case(rec):
                change.cases.add(rec.case_id)
            elif isinstance(rec, Unit) and self._upsert_unit(rec, now, track=False):
                change.units.add(rec.unit_id)
            elif isinstance(rec, UnitPosition) and self._upsert_position(rec, now):
                change.units.add(rec.unit_id)      # a broker's newest fix: a true point
            elif isinstance(rec, SensorReading):
                held = self.sensors.get(rec.id)
                if held is not None and held.ts >= rec.ts:
                    continue            # a reading held already: not a second history point
                if self._upsert_sensor(rec):
                    change.sensors.add(rec.id)
        if self._unknown_by:                      # positions of units not held: counted here
            self.rejected["unknown_unit"] += sum(self._unknown_by.values())
            self._unknown_by.clear()
        self.version += 1
        return change

    def _upsert(self, table: dict, key: str, rec, cap: int) -> bool:
        held = table.get(key)
        if held is None:
            if len(table) >= cap and not self._room(table, cap):
                self.refused_ids += 1
                self._refused_by[rec.src] += 1
                return False
        elif rec.ts < held.ts:
            self.superseded += 1
            return False
        table[key] = rec
        return True

    def _room(self, table: dict, cap: int) -> bool:
        """A table is full: prune now (at most once a real second), and say if that made
        room. Past that, a record for a new id is refused as ``too_many_ids``."""
        link = self.clock.link_ms()
        if abs(link - self._last_room_prune) >= 1_000:
            self._last_room_prune = link
            self._prune(self.clock.now_ms())
        return len(table) < cap

    def _upsert_case(self, rec: Case) -> bool:
        if rec.district is None:
            found = self.locator.locate(rec.lon, rec.lat)
            if found is not None:
                rec = msgspec.structs.replace(rec, district=found)
        if self.scope is not None and rec.district not in self.scope:
            return self._outside("case", self.cases, rec.case_id, rec)
        if self._inside_but_late("case", self.cases, rec.case_id, rec):
            return False
        held = self.cases.get(rec.case_id)
        if not self._upsert(self.cases, rec.case_id, rec, self.limits.max_cases):
            return False
        if held is None:
            self.reports.add(rec.case_id, Report(rec.reported_at, rec.district, rec.category),
                             self.clock.now_ms())
        self._history(rec, held)
        return True

    def _history(self, rec: Case, held: Case | None) -> None:
        """Stage history of an accepted case record (records only move forward in ts)."""
        cid = rec.case_id
        self.case_stages.note(cid, rec.status, rec.ts)
        if rec.flags:
            flags = self.case_flags.get(cid)
            if flags is None:
                flags = self.case_flags[cid] = {}
            for flag in rec.flags:
                if len(flags) < MAX_FLAGS_SEEN or flag in flags:
                    flags.setdefault(flag, rec.ts)
        if (held is not None and held.due_at is not None and rec.ts > held.due_at
                and held.status not in CLOSED_CASE_STATUSES):
            self.case_late.setdefault(cid, held.due_at)

    def _track(self, rec: Unit | UnitPosition, now: int) -> None:
        """Keep the unit's position for patrol coverage (thinned; see TRACK_*)."""
        if rec.ts <= now - TRACK_KEEP_MS:
            return
        track = self.tracks.get(rec.unit_id)
        if track is None:
            track = self.tracks[rec.unit_id] = Track(maxlen=TRACK_MAX)
        track.keep(rec.ts, rec.lon, rec.lat)

    def _upsert_sensor(self, rec: SensorReading) -> bool:
        if rec.district is None:
            found = self.locator.locate(rec.lon, rec.lat)
            if found is not None:
                rec = msgspec.structs.replace(rec, district=found)
        if self.scope is not None and rec.district not in self.scope:
            return self._outside("sensor", self.sensors, rec.id, rec)
        if self._inside_but_late("sensor", self.sensors, rec.id, rec):
            return False
        if not self._upsert(self.sensors, rec.id, rec, self.limits.max_sensors):
            return False
        hist = self.sensor_history.get(rec.id)
        if hist is None:
            hist = self.sensor_history[rec.id] = deque(maxlen=self._history_len)
        hist.append((rec.ts, rec.metrics))
        return True

    def _account(self, batch: Batch, now: int) -> None:
        """Per-source counts; ``now`` is link time (see ``Clock.link_ms``)."""
        refused = sum(self._refused_by.values()) + sum(self._unknown_by.values())
        self.records_accepted += len(batch.records) - refused
        self.sources.account(batch, now, UNKNOWN_SRC)
        for (_src, reason), n in batch.rejects.items():
            self.rejected[reason] += n
        self.gaps += len(batch.gaps)
        for reason, by in (("too_many_ids", self._refused_by), ("unknown_unit", self._unknown_by)):
            for src, n in by.items():
                self.rejected[reason] += n
                health = self.sources.follow(src, now)
                if health is not None:
                    health.rejected[reason] += n
                    health.records -= n
                else:
                    self.sources.overflow["rejected"] += n
        self._unknown_by = Counter()             # counted: load() must not count them again

    def _prune(self, now: int) -> None:
        """Let go of what the picture no longer needs (see ``situation.limits``): closed
        cases after 48 h (at most ``max_closed_cases``, the newest), and open cases, units and
        sensors nothing was heard of for their age limit."""
        self._last_prune = now
        lim = self.limits
        closed = []
        old = []
        for cid, c in self.cases.items():
            if c.status in CLOSED_CASE_STATUSES:
                if now - c.ts > CLOSED_KEEP_MS:
                    old.append(cid)
                else:
                    closed.append((c.ts, cid))
            elif now - c.ts > lim.open_case_max_age_ms:
                old.append(cid)
        if len(closed) > lim.max_closed_cases:
            closed.sort()
            old.extend(cid for _, cid in closed[:len(closed) - lim.max_closed_cases])
        for cid in old:
            self._forget_case(cid)
        for uid in [k for k, u in self.units.items() if now - u.ts > lim.unit_max_age_ms]:
            del self.units[uid]               # (u.ts: the newer of its record and its fix)
            self._forget_unit_times(uid)
            self.tracks.pop(uid, None)
            self.aged_out += 1
        for uid in [k for k, (u, _) in self.units_away.items() if now - u.ts > lim.unit_max_age_ms]:
            del self.units_away[uid]          # gone from a district wall longer than kept
        for sid in [k for k, r in self.sensors.items() if now - r.ts > lim.sensor_max_age_ms]:
            del self.sensors[sid]
            self.sensor_history.pop(sid, None)
            self.aged_out += 1
        self.reports.prune(now)
        self._prune_tracks(now)

    def _forget_case(self, cid: str) -> None:
        case = self.cases.pop(cid)
        if case.status not in CLOSED_CASE_STATUSES:
            self.aged_out += 1
        self.case_stages.pop(cid, None)
        self.case_flags.pop(cid, None)
        self.case_late.pop(cid, None)

    def _prune_tracks(self, now: int) -> None:
        oldest = now - TRACK_KEEP_MS
        for uid in list(self.tracks):
            track = self.tracks[uid]
            while track and track[0][0] <= oldest:
                track.popleft()
            if not track:
                del self.tracks[uid]

    # ---- keyframes: a replay's seek puts back the picture as it stood ---------------------
    _NOT_STATE = frozenset({"clock", "locator", "limits", "faults", "scope"})

    def snapshot(self) -> dict:
        """A copy of everything held (not the clock): records are shared, the containers
        holding them copied."""
        return {k: _copy_state(v) for k, v in self.__dict__.items() if k not in self._NOT_STATE}

    def restore(self, snap: dict) -> None:
        version = self.version
        # Only the picture's own parts: a keyframe (read from a file) never sets the clock,
        # the settings or a method.
        self.__dict__.update({k: _copy_state(v) for k, v in snap.items()
                              if k not in self._NOT_STATE and not hasattr(type(self), k)})
        self.version = max(version, self.version) + 1     # panels keyed on version redraw

    # ---- questions widgets ask ------------------------------------------------------------
    def now_ms(self) -> int:
        return self.clock.now_ms()

    @staticmethod
    def is_open(case: Case) -> bool:
        return case.status not in CLOSED_CASE_STATUSES

    def is_overdue(self, case: Case, now: int | None = None) -> bool:
        if not self.is_open(case) or case.due_at is None:
            return False
        return (self.clock.now_ms() if now is None else now) > case.due_at

    def open_cases(self) -> list[Case]:
        return [c for c in self.cases.values() if c.status not in CLOSED_CASE_STATUSES]

    def unit_stale(self, unit: Unit, now: int | None = None) -> bool:
        return (self.clock.now_ms() if now is None else now) - unit.ts > UNIT_STALE_MS

    # Link health runs on link time: real seconds, whatever speed the city's clock runs at.
    def source_up(self, src: str, link: int | None = None) -> bool:
        health = self.sources.get(src)
        if health is None:
            return False
        return (self.clock.link_ms() if link is None else link) - health.last_heard <= SOURCE_DOWN_MS

    def endpoint_up(self, endpoint: str, link: int | None = None) -> bool:
        heard = self.endpoints.get(endpoint)
        if heard is None:
            return False
        return (self.clock.link_ms() if link is None else link) - heard <= SOURCE_DOWN_MS

    def source_rate(self, src: str, link: int | None = None) -> float:
        """Records per real second over the last few seconds."""
        health = self.sources.get(src)
        if health is None:
            return 0.0
        now = self.clock.link_ms() if link is None else link
        recent = health._recent
        while recent and now - recent[0][0] > RATE_WINDOW_MS:
            recent.popleft()
        return sum(n for _, n in recent) / (RATE_WINDOW_MS / 1000)

    def status(self) -> dict:
        """The headless status document (keys as the spine issue names them)."""
        now = self.clock.now_ms()
        link = self.clock.link_ms()
        return {
            "clock_ms": now,
            "records_accepted": self.records_accepted,
            "cases": len(self.cases),
            "open_cases": sum(1 for c in self.cases.values() if self.is_open(c)),
            "overdue_cases": sum(1 for c in self.cases.values() if self.is_overdue(c, now)),
            "units": len(self.units),
            "stale_units": sum(1 for u in self.units.values() if self.unit_stale(u, now)),
            "sensors": len(self.sensors),
            "rejected": dict(self.rejected),
            "rejected_total": sum(self.rejected.values()),
            "gaps": self.gaps,
            "superseded": self.superseded,
            "too_many_sources": dict(self.sources.overflow),
            "refused_ids": self.refused_ids,
            "aged_out": self.aged_out,
            "duplicates": self.duplicates,
            "state_joins": list(self.state_joins),
            # A district wall: its districts and the records outside them (not rejects).
            "scope": self.scope.doc(self.out_of_scope) if self.scope is not None else None,
            "endpoints": {ep: {"up": self.endpoint_up(ep, link),
                               "auth_failed": self.auth_failed[ep]} for ep in self.endpoints},
            "sources": {
                src: {
                    "up": self.source_up(src, link),
                    "last_seq": h.last_seq,
                    "records": h.records,
                    "gaps": h.gaps,
                    "missed": h.missed,
                    "filled": h.filled,
                    "lost": h.lost,
                    "restarts": h.restarts,
                    "rejected": h.rejected_total,
                    "rejected_by_reason": dict(h.rejected),
                    "rate": round(self.source_rate(src, link), 1),
                }
                for src, h in self.sources.items()
            },
        }

"""The operational picture: the one store of cases, units, sensors and sources' health.

Widgets read it; nothing else keeps a copy. Records are upserts of whole state keyed by id:
the newer ``ts`` wins and an older record arriving late changes nothing.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import NamedTuple

import msgspec

from feeds.batch import Batch
from feeds.decode import UNKNOWN_SRC
from feeds.districts import DistrictLocator
from feeds.schema import CLOSED_CASE_STATUSES, Case, Heartbeat, SensorReading, Unit
from situation.clock import Clock

UNIT_STALE_MS = 60_000           # PROTOCOL: a unit with no record for 60 s is stale
SOURCE_DOWN_MS = 3_000           # PROTOCOL: a src silent for 3 s is down
SENSOR_HISTORY = 120             # readings kept per sensor (two hours at one a minute)
CLOSED_KEEP_MS = 48 * 3_600_000  # closed cases stay for the supervision figures
RATE_WINDOW_MS = 5_000
REPORT_LOG_MS = 8 * 7 * 24 * 3_600_000   # the report log: eight weeks of first sightings
# Unit tracks (巡查即监察: where the units went), for patrol coverage. A position is kept when
# the unit moved at least TRACK_MIN_MOVE_M since the last kept one, or TRACK_REFRESH_MS passed
# (so a parked unit still leaves a point a minute); kept for TRACK_KEEP_MS of the situation's
# clock and at most TRACK_MAX points a unit.
TRACK_KEEP_MS = 24 * 3_600_000
TRACK_MAX = 12_000
TRACK_MIN_MOVE_M = 25.0
TRACK_REFRESH_MS = 60_000
_M_PER_DEG_LAT = 111_000.0
_M_PER_DEG_LON = _M_PER_DEG_LAT * math.cos(math.radians(40.0))   # as situation.heat


@dataclass
class SourceHealth:
    src: str
    first_heard: int
    last_heard: int
    last_seq: int | None = None
    records: int = 0
    gaps: int = 0
    missed: int = 0            # records lost in the gaps
    restarts: int = 0
    rejected: Counter = field(default_factory=Counter)
    announced_rate: float | None = None
    _recent: deque = field(default_factory=deque)   # (clock ms, records) for the rate

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


@dataclass
class Change:
    """What one ``apply`` touched, so a panel can redraw only what moved."""
    cases: set[str] = field(default_factory=set)
    units: set[str] = field(default_factory=set)
    sensors: set[str] = field(default_factory=set)
    sources: bool = False

    def __bool__(self) -> bool:
        return bool(self.cases or self.units or self.sensors or self.sources)


class Report(NamedTuple):
    reported_at: int
    district: str | None
    category: str


class ReportLog:
    """Every case as first seen: (reported_at, district, category), kept for
    ``REPORT_LOG_MS`` of the situation's clock after it was logged. Closed cases leave
    ``Situation.cases`` after 48 h; the log keeps what the demand-by-hour figures need.

    Bounded: entries leave in the order they came (by the clock when they were logged, not by
    the publisher's ``reported_at``, so one record dated far in the future cannot hold the log
    open), and the ids go with them. A case reported longer ago than the log keeps is not
    logged at all.
    """

    def __init__(self, keep_ms: int = REPORT_LOG_MS):
        self.keep_ms = keep_ms
        self._entries: deque[tuple[int, Report]] = deque()      # (logged at, report)
        self._ids: OrderedDict[str, None] = OrderedDict()       # same order as _entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self):
        return (rep for _, rep in self._entries)

    def __contains__(self, case_id: str) -> bool:
        return case_id in self._ids

    def add(self, case_id: str, report: Report, now: int) -> bool:
        if case_id in self._ids or report.reported_at <= now - self.keep_ms:
            return False
        self._ids[case_id] = None
        self._entries.append((now, report))
        return True

    def prune(self, now: int) -> None:
        entries, ids = self._entries, self._ids
        while entries and now - entries[0][0] > self.keep_ms:
            entries.popleft()
            ids.popitem(last=False)


def _copy_state(value):
    """A copy of one part of the situation's state, as deep as it is mutable: containers are
    copied; records, and the tuples and metric dicts in histories, are never changed in place
    and are shared. (copy.deepcopy walks every tuple and costs ten times more.)"""
    if isinstance(value, SourceHealth):
        return dataclasses.replace(value, rejected=Counter(value.rejected),
                                   _recent=deque(value._recent))
    if isinstance(value, ReportLog):
        log = copy.copy(value)
        log._entries, log._ids = deque(value._entries), OrderedDict(value._ids)
        return log
    if isinstance(value, (Counter, OrderedDict)):
        return type(value)(value)
    if isinstance(value, dict):
        return {k: _copy_state(v) for k, v in value.items()}
    if isinstance(value, deque):
        return deque(value, value.maxlen)
    if isinstance(value, (list, set)):
        return type(value)(value)
    return value


class Situation:
    def __init__(self, clock: Clock, locator: DistrictLocator | None = None,
                 sensor_history: int = SENSOR_HISTORY):
        self.clock = clock
        self.locator = locator or DistrictLocator()
        self.cases: dict[str, Case] = {}
        self.units: dict[str, Unit] = {}
        self.sensors: dict[str, SensorReading] = {}
        self.sensor_history: dict[str, deque] = {}
        self._history_len = sensor_history
        self.sources: dict[str, SourceHealth] = {}
        self.records_accepted = 0
        self.superseded = 0        # late, older records that changed nothing
        self.rejected: Counter = Counter()
        self.gaps = 0
        self.version = 0           # moves on every apply that changed something
        self._last_prune = 0
        # endpoint → clock ms of its last message (None: never): a silent endpoint is down
        self.endpoints: dict[str, int | None] = {}
        self.reports = ReportLog()     # first sightings of cases, kept eight weeks
        # Supervision history of each case held (pruned with the case), from the records' ts:
        # the first ts seen in each status, the first ts each flag was seen, and the first
        # stage deadline the case was seen to miss (a record of it dated after the held
        # record's ``due_at`` while that record was open).
        self.case_stages: dict[str, dict[str, int]] = {}
        self.case_flags: dict[str, dict[str, int]] = {}
        self.case_late: dict[str, int] = {}
        # unit id → (ts, lon, lat) of its reported positions, oldest first (see TRACK_*)
        self.tracks: dict[str, deque[tuple[int, float, float]]] = {}

    def expect_endpoint(self, endpoint: str) -> None:
        self.endpoints.setdefault(endpoint, None)

    # ---- intake -------------------------------------------------------------------------
    def apply(self, batch: Batch, endpoints_heard: set[str] = frozenset()) -> Change:
        now = self.clock.now_ms()
        link = self.clock.link_ms()
        change = Change()
        for ep in endpoints_heard:
            self.endpoints[ep] = link
        for rec in batch.records:
            if isinstance(rec, Case):
                if self._upsert_case(rec):
                    change.cases.add(rec.case_id)
            elif isinstance(rec, Unit):
                if self._upsert(self.units, rec.unit_id, rec):
                    self._track(rec, now)
                    change.units.add(rec.unit_id)
            elif isinstance(rec, SensorReading):
                if self._upsert_sensor(rec):
                    change.sensors.add(rec.id)
            elif isinstance(rec, Heartbeat):
                self._source(rec.src, link).announced_rate = rec.rate
                observe = getattr(self.clock, "observe", None)
                if observe is not None:
                    observe(rec.ts)
        self._account(batch, link)
        change.sources = True
        if now - self._last_prune > 60_000:
            self._prune(now)
        self.version += 1
        return change

    def load(self, records) -> Change:
        """Records that did not come over a feed — a dispatch service's snapshot for a console
        joining mid-shift — upserted like any other (newer ts wins), but not counted as heard
        from their sources: a source is up only when its publisher is."""
        change = Change()
        for rec in records:
            if isinstance(rec, Case) and self._upsert_case(rec):
                change.cases.add(rec.case_id)
            elif isinstance(rec, Unit) and self._upsert(self.units, rec.unit_id, rec):
                change.units.add(rec.unit_id)
        self.version += 1
        return change

    def _upsert(self, table: dict, key: str, rec) -> bool:
        held = table.get(key)
        if held is not None and rec.ts < held.ts:
            self.superseded += 1
            return False
        table[key] = rec
        return True

    def _upsert_case(self, rec: Case) -> bool:
        if rec.district is None:
            found = self.locator.locate(rec.lon, rec.lat)
            if found is not None:
                rec = msgspec.structs.replace(rec, district=found)
        held = self.cases.get(rec.case_id)
        if not self._upsert(self.cases, rec.case_id, rec):
            return False
        if held is None:
            self.reports.add(rec.case_id, Report(rec.reported_at, rec.district, rec.category),
                             self.clock.now_ms())
        self._history(rec, held)
        return True

    def _history(self, rec: Case, held: Case | None) -> None:
        """Stage history of an accepted case record (records only move forward in ts)."""
        cid = rec.case_id
        stages = self.case_stages.get(cid)
        if stages is None:
            stages = self.case_stages[cid] = {}
        stages.setdefault(rec.status, rec.ts)
        if rec.flags:
            flags = self.case_flags.get(cid)
            if flags is None:
                flags = self.case_flags[cid] = {}
            for flag in rec.flags:
                flags.setdefault(flag, rec.ts)
        if (held is not None and held.due_at is not None and rec.ts > held.due_at
                and held.status not in CLOSED_CASE_STATUSES):
            self.case_late.setdefault(cid, held.due_at)

    def _track(self, rec: Unit, now: int) -> None:
        """Keep the unit's position for patrol coverage (thinned; see TRACK_*)."""
        if rec.ts <= now - TRACK_KEEP_MS:
            return
        track = self.tracks.get(rec.unit_id)
        if track is None:
            track = self.tracks[rec.unit_id] = deque(maxlen=TRACK_MAX)
        elif track:
            ts, lon, lat = track[-1]
            moved = math.hypot((rec.lon - lon) * _M_PER_DEG_LON, (rec.lat - lat) * _M_PER_DEG_LAT)
            if moved < TRACK_MIN_MOVE_M and rec.ts - ts < TRACK_REFRESH_MS:
                return
        track.append((rec.ts, rec.lon, rec.lat))

    def _upsert_sensor(self, rec: SensorReading) -> bool:
        if rec.district is None:
            found = self.locator.locate(rec.lon, rec.lat)
            if found is not None:
                rec = msgspec.structs.replace(rec, district=found)
        if not self._upsert(self.sensors, rec.id, rec):
            return False
        hist = self.sensor_history.get(rec.id)
        if hist is None:
            hist = self.sensor_history[rec.id] = deque(maxlen=self._history_len)
        hist.append((rec.ts, rec.metrics))
        return True

    def _source(self, src: str, now: int) -> SourceHealth:
        health = self.sources.get(src)
        if health is None:
            health = self.sources[src] = SourceHealth(src, now, now)
        return health

    def _account(self, batch: Batch, now: int) -> None:
        """Per-source counts; ``now`` is link time (see ``Clock.link_ms``)."""
        per_src = Counter(rec.src for rec in batch.records)
        self.records_accepted += len(batch.records)
        for src in batch.heard | set(per_src):
            if src != UNKNOWN_SRC:
                self._source(src, now).last_heard = now
        for src, n in per_src.items():
            health = self.sources[src]
            health.records += n
            recent = health._recent
            recent.append((now, n))
            while now - recent[0][0] > RATE_WINDOW_MS:       # bounded without a reader too
                recent.popleft()
        for (src, reason), n in batch.rejects.items():
            self._source(src, now).rejected[reason] += n
            self.rejected[reason] += n
        for src, expected, got in batch.gaps:
            health = self._source(src, now)
            health.gaps += 1
            health.missed += got - expected
            self.gaps += 1
        for src, _last, _got in batch.restarts:
            self._source(src, now).restarts += 1
        for src, seq in batch.last_seq.items():
            self._source(src, now).last_seq = seq

    def _prune(self, now: int) -> None:
        self._last_prune = now
        old = [cid for cid, c in self.cases.items()
               if c.status in CLOSED_CASE_STATUSES and now - c.ts > CLOSED_KEEP_MS]
        for cid in old:
            del self.cases[cid]
            self.case_stages.pop(cid, None)
            self.case_flags.pop(cid, None)
            self.case_late.pop(cid, None)
        self.reports.prune(now)
        self._prune_tracks(now)

    def _prune_tracks(self, now: int) -> None:
        oldest = now - TRACK_KEEP_MS
        for uid in list(self.tracks):
            track = self.tracks[uid]
            while track and track[0][0] <= oldest:
                track.popleft()
            if not track:
                del self.tracks[uid]

    # ---- keyframes: a replay's seek puts back the picture as it stood ---------------------
    _NOT_STATE = frozenset({"clock", "locator"})

    def snapshot(self) -> dict:
        """A copy of everything held (not the clock): records are shared, the containers
        holding them copied."""
        return {k: _copy_state(v) for k, v in self.__dict__.items() if k not in self._NOT_STATE}

    def restore(self, snap: dict) -> None:
        version = self.version
        self.__dict__.update({k: _copy_state(v) for k, v in snap.items()})
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
            "endpoints": {ep: {"up": self.endpoint_up(ep, link)} for ep in self.endpoints},
            "sources": {
                src: {
                    "up": self.source_up(src, link),
                    "last_seq": h.last_seq,
                    "records": h.records,
                    "gaps": h.gaps,
                    "missed": h.missed,
                    "restarts": h.restarts,
                    "rejected": h.rejected_total,
                    "rejected_by_reason": dict(h.rejected),
                    "rate": round(self.source_rate(src, link), 1),
                }
                for src, h in self.sources.items()
            },
        }

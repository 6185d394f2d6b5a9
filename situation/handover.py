"""The shift handover summary (交接班摘要): what the ending shift hands to the next one.

A pure function of the situation, the shift's window and ``now`` — all on the situation's
clock, never the wall's. No Qt: the wall renders it (ui/handover.py) and prints it as PDF.

- open and overdue cases NOW (the next shift inherits them), the overdue ones worst first:
  longest past their deadline, then priority;
- the ending shift's supervision figures over its window (start, end] — the same
  definitions as ``situation.supervision``, and the same rule: no share or mean over fewer
  than ``supervision.MIN_CASES`` cases — and the cases first reported in it;
- notable alarms in the window: sensors whose readings reached the alarm threshold
  (``situation.thresholds``; as far back as a sensor's history reaches), cases escalated
  (督办 flag first seen in the window), and orders the dispatch service refused.

Every list is bounded (``LIST_MAX``) and says how many it left off.
"""
from __future__ import annotations

from dataclasses import dataclass

from situation.supervision import Kpis, case_frame, summed
from situation.thresholds import ALARM, THRESHOLDS, metric_level

LIST_MAX = 8                 # rows per list: readable from across the room, and on one page


@dataclass(frozen=True)
class ShiftSpan:
    name: str                # "day"
    title_zh: str            # "白班"
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class LateCase:
    case_id: str
    category: str
    district: str | None
    status: str
    priority: int
    late_ms: int             # how long past its deadline, now
    unit_id: str | None


@dataclass(frozen=True)
class SensorAlarm:
    sensor_id: str
    kind: str
    district: str | None
    metric: str
    peak: float              # the worst value in the window
    alarm_at: float          # the threshold it reached
    readings: int            # readings at alarm level in the window
    first_ms: int
    still: bool              # the latest reading is still at alarm level


@dataclass(frozen=True)
class Escalated:
    case_id: str
    category: str
    district: str | None
    status: str
    at_ms: int


@dataclass(frozen=True)
class Refused:
    case_id: str | None
    unit_id: str
    reason: str
    at_ms: int


@dataclass(frozen=True)
class Listed:
    """A bounded list and how many it left off."""
    items: tuple
    more: int = 0

    @classmethod
    def of(cls, items: list, most: int = LIST_MAX) -> "Listed":
        return cls(tuple(items[:most]), max(0, len(items) - most))


@dataclass(frozen=True)
class Handover:
    ending: ShiftSpan
    starting: ShiftSpan | None
    now_ms: int
    open: int
    overdue: int
    new_cases: int           # first reported in the window
    kpis: Kpis               # over the ending shift's window
    late: Listed             # LateCase, worst first
    alarms: Listed           # SensorAlarm, worst first (peak / threshold)
    escalated: Listed        # Escalated, latest first
    refused: Listed          # Refused, latest first
    sensors_in_alarm: int    # sensors that reached alarm level in the window


def window_kpis(situation, start: int, end: int, min_cases: int | None = 1) -> Kpis:
    """The supervision figures over (start, end] — ``supervision.kpis`` for a window that
    need not end now. ``min_cases``: no share or mean over fewer cases; 1 (every ratio with
    something to divide by, as the training debrief reads it) unless given, None for the
    configured ``supervision.MIN_CASES`` (the handover's)."""
    return summed(case_frame(situation), start, end, min_cases)


def late_cases(situation, now: int) -> list[LateCase]:
    out = [LateCase(c.case_id, c.category, c.district, c.status, c.priority, now - c.due_at,
                    c.unit_id)
           for c in situation.open_cases() if situation.is_overdue(c, now)]
    out.sort(key=lambda c: (-c.late_ms, c.priority, c.case_id))
    return out


def sensor_alarms(situation, start: int, end: int) -> list[SensorAlarm]:
    out = []
    for sid, history in situation.sensor_history.items():
        rec = situation.sensors.get(sid)
        if rec is None:
            continue
        worst, count, first = None, 0, None
        for ts, metrics in history:
            if not start < ts <= end:
                continue
            hits = [(v / THRESHOLDS[(rec.kind, m)][1], m, v) for m, v in metrics.items()
                    if metric_level(rec.kind, m, v) == ALARM]
            if not hits:
                continue
            count += 1
            first = ts if first is None else first
            worst = max([worst, *hits] if worst else hits)
        if worst is None:
            continue
        _, metric, peak = worst
        still = metric_level(rec.kind, metric, rec.metrics.get(metric, 0.0)) == ALARM
        out.append(SensorAlarm(sid, rec.kind, rec.district, metric, peak,
                               THRESHOLDS[(rec.kind, metric)][1], count, first, still))
    out.sort(key=lambda a: (-a.peak / a.alarm_at, a.sensor_id))
    return out


def escalated_cases(situation, start: int, end: int) -> list[Escalated]:
    out = []
    for cid, flags in situation.case_flags.items():
        at = flags.get("escalated")
        case = situation.cases.get(cid)
        if at is not None and case is not None and start < at <= end:
            out.append(Escalated(cid, case.category, case.district, case.status, at))
    out.sort(key=lambda e: (-e.at_ms, e.case_id))
    return out


def refused_orders(orders, start: int, end: int) -> list[Refused]:
    """Orders (anything with state, case_id, unit_id, reason, answered_ms — the console's
    ``ui.dispatch.Order``) the service refused in the window."""
    out = [Refused(o.case_id, o.unit_id, o.reason or "?", o.answered_ms) for o in orders
           if o.state == "rejected" and o.answered_ms is not None
           and start < o.answered_ms <= end]
    out.sort(key=lambda r: -r.at_ms)
    return out


def summarise(situation, ending: ShiftSpan, starting: ShiftSpan | None, now: int,
              orders=(), min_cases: int | None = None) -> Handover:
    """The handover at ``now`` for the shift ``ending``: its figures over (start, end] (end
    clipped to now, for a summary taken mid-shift), the cases as they stand now. No share
    or mean over fewer than ``min_cases`` cases (default: ``supervision.MIN_CASES``)."""
    start, end = ending.start_ms, min(ending.end_ms, now)
    late = late_cases(situation, now)
    alarms = sensor_alarms(situation, start, end)
    new = sum(1 for r in situation.reports if start < r.reported_at <= end)
    return Handover(ending, starting, now, len(situation.open_cases()), len(late), new,
                    window_kpis(situation, start, end, min_cases), Listed.of(late),
                    Listed.of(alarms),
                    Listed.of(escalated_cases(situation, start, end)),
                    Listed.of(refused_orders(orders, start, end)), len(alarms))

"""The dispatch rules: whether a ``dispatch`` or ``recall`` order is accepted, and what it changes.

Pure functions over the picture (two look-ups, case and unit) and a clock value: no sockets,
no SQLite, no Qt. The live service (``feeds.dispatch_service``) and the training desk
(``situation.training``) judge with the same ``decide``, so an order is refused for the same
reason on both, with the same words (``feeds.orders.reason``).

The times a change sets come from configuration: the time to resolve a case (``RESOLVE_MS``,
per category) and the time to dispatch one sent back (``DISPATCH_LIMIT``, per priority), the
same tables the demo city keeps (PROTOCOL.md's category table).
"""
from __future__ import annotations

from collections.abc import Callable

import msgspec

from feeds.bounds import DEFAULT_FUTURE_MS
from feeds.orders import DispatchOrder, Order, RecallOrder, reason
from feeds.schema import CLOSED_CASE_STATUSES, Case, Unit
# The stage time limits are configuration (PROTOCOL.md's category table); the demo city
# keeps them, per category and per priority, and the service applies the same ones.
from feeds.city_rules import BUSY, CATEGORY_RULES, DISPATCH_LIMIT, HOUR

DEFAULT_RESOLVE_MS = 4 * HOUR     # time to resolve for a category the table does not know
RESOLVE_MS = {cat: int(rule[3] * HOUR) for cat, rule in CATEGORY_RULES.items()}
WORKING_CASE = frozenset({"dispatched", "on_scene"})

CaseOf = Callable[[str], Case | None]
UnitOf = Callable[[str], Unit | None]


def decide(order: Order, case_of: CaseOf, unit_of: UnitOf, now: int, *,
           future_ms: int = DEFAULT_FUTURE_MS) -> tuple[str | None, list[Case | Unit]]:
    """Judge a ``dispatch`` or ``recall`` against the picture the two look-ups give, at ``now``:
    ``(None, the changed records)`` when accepted, ``(reason, [])`` when refused. Pure: the live
    service and the training desk (``situation.training``) decide alike. The records keep the
    ``src``/``seq`` of what they replace; the caller stamps its own. They are dated by
    ``change_ts`` (never more than ``future_ms`` ahead of ``now``)."""
    if isinstance(order, DispatchOrder):
        return _dispatch(order, case_of, unit_of, now, future_ms)
    if isinstance(order, RecallOrder):
        return _recall(order, case_of, unit_of, now, future_ms)
    return reason("unknown_type", detail=repr(type(order).__struct_config__.tag)), []


def _dispatch(order: DispatchOrder, case_of: CaseOf, unit_of: UnitOf, now: int,
              future_ms: int):
    case, unit = case_of(order.case_id), unit_of(order.unit_id)
    if case is None:
        return reason("unknown_case", case_id=order.case_id), []
    if unit is None:
        return reason("unknown_unit", unit_id=order.unit_id), []
    if case.status in CLOSED_CASE_STATUSES:
        return reason("case_not_open", case_id=case.case_id, status=case.status), []
    if case.unit_id is not None or case.status in WORKING_CASE:
        working = unit_of(case.unit_id) if case.unit_id else None
        return reason("case_assigned", case_id=case.case_id, status=case.status,
                      unit=working.callsign if working else case.unit_id), []
    if case.status not in ("reported", "registered"):
        return reason("case_past_dispatch", case_id=case.case_id, status=case.status), []
    if unit.case_id is not None:
        return reason("unit_assigned", callsign=unit.callsign, status=unit.status,
                      case_id=unit.case_id), []
    if unit.status != "available":
        return reason("unit_not_available", callsign=unit.callsign, status=unit.status), []
    ts = change_ts(now, case, unit, future_ms=future_ms)
    limit = RESOLVE_MS.get(case.category, DEFAULT_RESOLVE_MS)
    return None, [
        msgspec.structs.replace(case, ts=ts, status="dispatched", unit_id=unit.unit_id,
                                due_at=ts + limit, reported_at=min(case.reported_at, ts)),
        msgspec.structs.replace(unit, ts=ts, status="dispatched", case_id=case.case_id)]


def _recall(order: RecallOrder, case_of: CaseOf, unit_of: UnitOf, now: int, future_ms: int):
    unit = unit_of(order.unit_id)
    if unit is None:
        return reason("unknown_unit", unit_id=order.unit_id), []
    if unit.case_id is None and unit.status not in BUSY:
        return reason("unit_not_assigned", callsign=unit.callsign, status=unit.status), []
    case = case_of(unit.case_id) if unit.case_id else None
    # Its case goes back to registered while it is being worked; a case already
    # resolved (or closed) keeps its stage: the work is done.
    if case is not None and not (case.unit_id == unit.unit_id
                                 and case.status in WORKING_CASE):
        case = None
    ts = change_ts(now, case, unit, future_ms=future_ms)
    records: list[Case | Unit] = []
    if case is not None:
        records.append(msgspec.structs.replace(
            case, ts=ts, status="registered", unit_id=None, reported_at=min(case.reported_at, ts),
            due_at=ts + DISPATCH_LIMIT.get(case.priority, DISPATCH_LIMIT[3])))
    records.append(msgspec.structs.replace(unit, ts=ts, status="available", case_id=None))
    return None, records


def change_ts(now: int, *held: Case | Unit | None, future_ms: int = DEFAULT_FUTURE_MS) -> int:
    """``now``, but never older than what it replaces (consoles keep the record with the
    greater ``ts``, so the change must be the newest) — and never further ahead of ``now``
    than ``future_ms``, the tolerance by which every console refuses a record dated ahead
    (``out_of_range``). A record held at that very edge is matched, not passed: consoles take
    a record of the same ``ts``. (A changed case's ``reported_at`` is kept no later than its
    ``ts``, so no time in a change is further ahead either.)"""
    return min(max([now] + [r.ts + 1 for r in held if r is not None]), now + future_ms)

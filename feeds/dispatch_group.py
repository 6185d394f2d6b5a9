"""One group of orders, staged: what the orders judged together change, held aside until commit.

The dispatch service takes the orders waiting on its socket as a group (group commit: one
fsync for a burst of consoles). Each is judged against the picture as the orders before it
left it, which is the service's picture overlaid with this group's staged records; the
group's order rows, replies, records (stamped with the service's ``src`` and the next seqs)
and change-log rows are kept here, and reach the service's picture only once the database has
taken them (``DispatchService._commit``). Nothing here touches a socket or the database.
"""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import msgspec

from feeds.dispatch_store import change_row
from feeds.orders import Order, encode as encode_message
from feeds.roles import UNCHECKED, Caller
from feeds.schema import Case, Record, Unit

if TYPE_CHECKING:
    from feeds.dispatch_service import DispatchService


class OrderGroup:
    """What a group of orders changes, held aside until it is committed."""

    def __init__(self, service: "DispatchService", ready: bool):
        self.svc = service
        self.ready = ready                       # the database can be read and written
        self.seq = service.seq
        self.cases: dict[str, Case] = {}
        self.units: dict[str, Unit] = {}
        self.records: list[Record] = []          # to publish, in seq order
        self.changes: list[tuple] = []
        self.orders: list[tuple] = []
        self.replies: dict[str, bytes] = {}
        self.results: Counter = Counter()        # code or "accepted" → n
        self.not_allowed: Counter = Counter()    # role (or why none) → orders refused

    def case(self, case_id: str) -> Case | None:
        return self.cases.get(case_id) or self.svc.cases.get(case_id)

    def unit(self, unit_id: str) -> Unit | None:
        return self.units.get(unit_id) or self.svc.units.get(unit_id)

    def stage(self, order: Order, problem: str | None, records: list[Case | Unit],
              reply: bytes, now: int, caller: Caller = UNCHECKED) -> None:
        """Stage the order's row (recorded against ``caller``, the authenticated key), its
        reply and the records it makes (``problem`` is None when accepted). Everything that
        could fail is worked out before anything is kept, so an order that fails here leaves
        the group as it was."""
        src = self.svc.src
        stamped = [msgspec.structs.replace(rec, src=src, seq=self.seq + i + 1)
                   for i, rec in enumerate(records)]
        changes = [change_row(order.order_id, rec) for rec in stamped]
        row = (order.order_id, order.console, type(order).__struct_config__.tag,
               encode_message(order).decode(), reply.decode(),
               "accepted" if problem is None else "rejected", now, caller.client,
               caller.role or "-")
        self.seq += len(stamped)
        for rec in stamped:
            if isinstance(rec, Case):
                self.cases[rec.case_id] = rec
            else:
                self.units[rec.unit_id] = rec
        self.records += stamped
        self.changes += changes
        self.orders.append(row)
        self.replies[order.order_id] = reply
        self.results["accepted" if problem is None else problem.split(":", 1)[0]] += 1

"""The dispatch service's order intake: requests off the ROUTER, judged as a group, committed,
answered.

A mixin of ``DispatchService`` (``feeds.dispatch_service``). Up to ``MAX_GROUP`` requests
waiting on the socket are taken together: each is decoded under bounds
(``feeds.orders.decode_order``), answered from the stored reply when its ``order_id`` was seen
before, or judged (the service's ``_judge``, which applies ``feeds.dispatch_rules.decide``)
into an ``OrderGroup``; the group is committed in one transaction before any reply leaves,
and its records are published after. A request that cannot be taken is answered ``rejected``
(``bad_order: <code>``) when it has an ``order_id``, else counted in ``dropped``; an error in
one request costs that request only. When the database cannot be written, orders are refused
with ``storage_unavailable``. The ``REPLY_CACHE`` most recent replies are kept in memory,
older ones are read from SQLite.

Who sent each request is the key its connection's handshake named (``feeds.dispatch_auth``),
never the ``console`` it claims: the key's role is asked first (``not_allowed`` is an ordinary
rejection, recorded against the key like any other), and snapshots are rate-limited per
connection, and per key too when the service is secured (never per the ``console`` an order
claims).
"""
from __future__ import annotations

import logging
import os
import signal

import zmq

from feeds.dispatch_group import OrderGroup
from feeds.dispatch_store import StorageError
from feeds.orders import (Ack, Order, Problem, SnapshotOrder, bad_order, decode_order,
                          encode as encode_message, reason)
from feeds.roles import UNCHECKED, Caller

LOG = logging.getLogger("feeds.dispatch")

MAX_GROUP = 64                    # orders judged and committed together
REPLY_CACHE = 10_000              # recent replies kept in memory (older: read from SQLite)


def log_some(n: int, message: str, *args, **kw) -> None:
    """Log the 1st, 2nd, 4th, 8th … of a kind: a flood of garbage cannot flood the log."""
    if n & (n - 1) == 0:
        LOG.warning(message, *args, **kw)


class OrderIntake:
    """The orders half of ``DispatchService``: a mixin, no state of its own."""

    def _serve_orders(self) -> None:
        msgs = []
        secured = self.keys is not None
        while len(msgs) < MAX_GROUP:
            try:
                # Secured: frames, to read who the handshake said sent it (User-Id).
                msgs.append(self._router.recv_multipart(zmq.NOBLOCK, copy=not secured))
            except zmq.Again:
                break
        if not msgs:
            return
        tx = OrderGroup(self, self._storage_ready())
        # (envelope, order_id if the reply waits on this commit, reply)
        outbox: list[tuple[list[bytes], str | None, bytes]] = []
        snapshots: list[tuple[list[bytes], SnapshotOrder, Caller]] = []
        for frames_ in msgs:
            self.counts["received"] += 1
            caller = UNCHECKED
            if secured:
                try:
                    caller = self._caller_of(frames_[-1])
                    frames_ = [f.bytes for f in frames_]
                except Exception as exc:       # this request only
                    self._fault("order", exc)
                    self._drop("internal")
                    continue
            if len(frames_) == 2:
                envelope, payload = frames_[:1], frames_[1]
            elif len(frames_) == 3 and frames_[1] == b"":       # a REQ socket's envelope
                envelope, payload = frames_[:2], frames_[2]
            else:
                self._drop("bad_frames", f"{len(frames_) - 1} frames")
                continue
            oid = None
            try:
                order = decode_order(payload, self.max_order_bytes)
                oid = order.order_id
                self._take(envelope, order, tx, outbox, snapshots, caller)
            except Exception as exc:             # this order only: the others go on
                self._fault("order", exc)
                self._bad(envelope, Problem("internal", order_id=oid), outbox)
        if tx.orders:
            self._commit(tx, outbox)
        for envelope, _, reply in outbox:
            self._reply(envelope, reply)
        self._publish(tx.records)               # committed (a failed commit clears them)
        for envelope, order, caller in snapshots:  # after every order of the group is answered
            self._answer_snapshot(envelope, order, caller)

    def _reply(self, envelope: list[bytes], reply: bytes) -> None:
        """Send one reply; one that cannot leave is a fault, and the others still go (and
        what was committed is still published)."""
        try:
            self._router.send_multipart([*envelope, reply])
        except zmq.ContextTerminated:
            raise
        except zmq.ZMQError as exc:
            self._fault("reply", exc)

    def _take(self, envelope: list[bytes], order: Order | Problem, tx: OrderGroup,
              outbox: list, snapshots: list, caller: Caller = UNCHECKED) -> None:
        """Judge one request of the group (sent by ``caller``'s key): stage it, or put its
        answer in the outbox."""
        if isinstance(order, Problem):
            self._bad(envelope, order, outbox)
            return
        if isinstance(order, SnapshotOrder):
            problem = self._may(caller, order)
            if problem is not None:
                self.rejected["not_allowed"] += 1
                self.not_allowed[caller.label] += 1
                outbox.append((envelope, None, self._ack(order.order_id, problem)))
                return
            # Per connection, and per key when secured — never per the ``console`` the order
            # claims: anyone can name another console, and must not spend its allowance.
            clients = [("identity", envelope[0])]
            if caller.checked:
                clients.append(("key", caller.client))
            wait_s = self._snapshot_limit.take(clients)
            if wait_s > 0:
                self._rate_limited(envelope, order, wait_s, outbox)
            else:
                snapshots.append((envelope, order, caller))
            return
        oid = order.order_id
        if oid in tx.replies:                         # twice in this very group
            self.counts["duplicates"] += 1
            outbox.append((envelope, oid, tx.replies[oid]))
            return
        stored = None
        if tx.ready:
            try:
                stored = self._stored_reply(oid)
            except StorageError as exc:
                self._storage_failed(exc)
                tx.ready = False
        if not tx.ready:
            outbox.append((envelope, None, self._refuse(oid)))
        elif stored is not None:
            self.counts["duplicates"] += 1
            outbox.append((envelope, None, stored))
        else:
            self._judge(tx, order, caller)
            outbox.append((envelope, oid, tx.replies[oid]))

    def _bad(self, envelope: list[bytes], problem: Problem, outbox: list) -> None:
        """An order that cannot be taken: answered when it has an ``order_id`` to answer,
        counted as dropped when not."""
        if problem.order_id is None:
            self._drop(problem.code, problem.detail)
            return
        self.rejected["bad_order"] += 1
        self.bad_orders[problem.code] += 1
        log_some(self.bad_orders[problem.code], "rejected a malformed order %s: %s",
                 problem.order_id, problem.reason)
        outbox.append((envelope, None,
                       self._ack(problem.order_id, bad_order(problem.code, problem.detail))))

    def _stored_reply(self, order_id: str) -> bytes | None:
        reply = self._replies.get(order_id)
        if reply is None:
            reply = self.storage.reply_for(order_id)
        return reply

    def _commit(self, tx: OrderGroup, outbox: list) -> None:
        try:
            self.storage.write(orders=tx.orders, cases=list(tx.cases.values())
                               + [self.cases[k] for k in self._dirty_cases
                                  if k not in tx.cases],
                               units=list(tx.units.values())
                               + [self.units[k] for k in self._dirty_units
                                  if k not in tx.units],
                               changes=tx.changes, seq=tx.seq if tx.records else None,
                               published=self.published if tx.records else None)
        except StorageError as exc:
            self._storage_failed(exc)
            refused = {oid: self._refuse(oid) for oid in tx.replies}
            outbox[:] = [(env, oid, refused[oid] if oid in refused else reply)
                         for env, oid, reply in outbox]
            tx.records.clear()
            return
        self._commits += 1
        if self._kill_after and self._commits >= self._kill_after:
            os.kill(os.getpid(), signal.SIGKILL)      # the test hook: see the module's text
        self._dirty_cases.clear()
        self._dirty_units.clear()
        self.cases.update(tx.cases)
        self.units.update(tx.units)
        self.seq = tx.seq
        self._version += 1
        for oid, reply in tx.replies.items():
            self._replies[oid] = reply
            if len(self._replies) > REPLY_CACHE:
                self._replies.popitem(last=False)
        self.counts["accepted"] += tx.results.pop("accepted", 0)
        self.rejected.update(tx.results)
        self.not_allowed.update(tx.not_allowed)
        self.storage_error = None

    def _ack(self, order_id: str, problem: str | None) -> bytes:
        return encode_message(Ack(order_id=order_id, result="accepted" if problem is None
                                  else "rejected", reason=problem, ts=self.now_ms()))

    def _refuse(self, order_id: str) -> bytes:
        self.rejected["storage_unavailable"] += 1
        return self._ack(order_id, reason("storage_unavailable",
                                          detail=self.storage_error or "unknown error"))

    def _drop(self, why: str, detail: str = "") -> None:
        self.dropped[why] += 1
        n = self.dropped[why]
        log_some(n, "dropped a request with no order_id to answer (%s%s) [%d so far]",
                 why, f": {detail}" if detail else "", n)

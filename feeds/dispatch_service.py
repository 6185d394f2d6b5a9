"""The dispatch service: the single writer of assignments (指挥).

    python -m feeds.dispatch_service --source ENDPOINT [--source …] \\
        --dispatch tcp://127.0.0.1:5557 --feed tcp://127.0.0.1:5558 [--db FILE]

It learns cases and units from the ``--source`` feeds (any protocol publisher) and keeps them
after those publishers go quiet; answers orders on a ROUTER (``dispatch``, ``recall``,
``snapshot``, ../shared/PROTOCOL.md "Orders"); and publishes the changes it makes as ordinary
``case`` and ``unit`` records, with its own ``src``, on an XPUB at ``--feed``.

Durability: every order (accepted or rejected), its reply, the case and unit records it
produced and the feed's ``seq`` are committed to SQLite (``feeds.dispatch_store``) in one
transaction before the reply leaves, so SIGKILL loses nothing that was acknowledged. The same
``order_id`` twice gets the stored reply and acts once, across restarts too. When the database
cannot be written the service keeps running and refuses orders with ``storage_unavailable``
instead of acknowledging what it could not store.

Nothing committed is lost to the feed: the database marks the last seq actually sent
(``published``), and a restarted service sends the records committed after it first, with
their own seqs (no console ever saw those numbers), before anything new. After a start the feed
is held — no heartbeat, no record — until a console (re)subscribes or ``rejoin_s`` passes, so
consoles that were listening before a restart see neither a gap nor a fall; a console that
comes back later than that sees a gap and asks for a snapshot, as after any outage.

Orders that arrive together are judged one after the other against the picture as each left
it, and committed in one transaction (group commit): one fsync for a burst of consoles.

Nothing a sender does stops the loop: each order is judged on its own, under bounds
(``feeds.orders.decode_order``: size, depth, text, time), and an order that cannot be taken is
answered ``rejected`` with ``bad_order: <code>: …`` when it has a readable ``order_id``, else
counted in ``dropped`` by reason. A frame larger than ``max_order_bytes`` never gets that far:
ZeroMQ (MAXMSGSIZE) drops it and disconnects its sender, which reconnects. An error while
judging one order costs that order only (``bad_order: internal``); every step of the loop is
guarded the same way, and all of it is counted under ``faults`` in the status. Snapshots are
limited per client (ROUTER identity and ``console``) and encoded once per picture.

Test hook: with ``CITYWALL_TEST_KILL_AFTER_COMMIT=N`` in the environment the process SIGKILLs
itself right after its Nth order commit, before the replies and records of that commit leave
(the window a crash can hit). Tests only.

No Qt here. ``open()`` + ``serve_once()`` let a caller drive the service step by step;
``start()`` runs the same loop in a thread.
"""
from __future__ import annotations

import logging
import math
import os
import signal
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path

import msgspec
import zmq

from feeds.batch import Batch
from feeds.bounds import DEFAULT_MAX_MESSAGE_BYTES
from feeds.dispatch_store import (SCHEMA, Storage, StorageError, Stored,  # noqa: F401
                                  change_row, default_db_path)
from feeds.faults import Faults
from feeds.orders import (DEFAULT_MAX_SNAPSHOT_BYTES, MAX_ORDER_BYTES, Ack, DispatchOrder,
                          Order, Problem, RecallOrder, SnapshotOrder, bad_order, decode_order,
                          encode as encode_message, reason)
from feeds.receiver import Receiver
from feeds.schema import CLOSED_CASE_STATUSES, Case, Heartbeat, Record, Unit, frames
# The stage time limits are configuration (PROTOCOL.md's category table); the demo city
# keeps them, per category and per priority, and the service applies the same ones.
from feeds.simulator import BUSY, CATEGORY_RULES, DISPATCH_LIMIT, HOUR

LOG = logging.getLogger("feeds.dispatch")

DEFAULT_SRC = "dispatch"
DEFAULT_FEED = "tcp://127.0.0.1:5558"
HEARTBEAT_S = 0.5                 # PROTOCOL: at least one a second
POLL_MS = 20                      # the loop's longest sleep: how often sources are drained
MAX_GROUP = 64                    # orders judged and committed together
LEARN_FLUSH_S = 0.1               # learned records reach the database at least this often
REOPEN_S = 1.0                    # an unopenable database is tried again this often
PRUNE_S = 60.0
CLOSED_KEEP_MS = 48 * HOUR        # closed cases are forgotten this long after they closed
REPLY_CACHE = 10_000              # recent replies kept in memory (older: read from SQLite)
DEFAULT_RESOLVE_MS = 4 * HOUR     # time to resolve for a category the table does not know
RESOLVE_MS = {cat: int(rule[3] * HOUR) for cat, rule in CATEGORY_RULES.items()}
WORKING_CASE = frozenset({"dispatched", "on_scene"})
# After a start the feed waits this long for a console to (re)subscribe before it sends
# anything: longer than a console's longest reconnect interval (feeds.receiver: 2 s).
REJOIN_S = 3.0
# Snapshots a client may ask for: this many a minute, this many at once.
DEFAULT_SNAPSHOTS_PER_MINUTE = 6.0
DEFAULT_SNAPSHOT_BURST = 3
MAX_CLIENTS = 10_000              # rate-limit buckets kept (least recently used go first)
# What a console sends the XPUB: subscriptions, a byte and a topic prefix.
MAX_SUBSCRIPTION_BYTES = 1024
RECEIVER_RETRY_S = 10.0           # a source receiver that gave up is replaced this often
KILL_AFTER_COMMIT_ENV = "CITYWALL_TEST_KILL_AFTER_COMMIT"


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class BindError(RuntimeError):
    """An endpoint could not be bound (in use, bad interface): one line for the user."""


def _log_some(n: int, message: str, *args, **kw) -> None:
    """Log the 1st, 2nd, 4th, 8th … of a kind: a flood of garbage cannot flood the log."""
    if n & (n - 1) == 0:
        LOG.warning(message, *args, **kw)


_enc = msgspec.json.Encoder()


# ---- snapshot rate ----------------------------------------------------------------------
class RateLimit:
    """Token buckets by key: ``per_minute`` sustained, ``burst`` at once. At most ``max_keys``
    buckets are kept, the least recently used forgotten first, so a flood of made-up clients
    cannot grow the table (a forgotten client starts again with a full bucket)."""

    def __init__(self, per_minute: float, burst: int, max_keys: int = MAX_CLIENTS,
                 clock: Callable[[], float] = time.monotonic):
        self.per_s = per_minute / 60.0
        self.burst = max(1, int(burst))
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def take(self, keys: Iterable[Hashable]) -> float:
        """One token from every key's bucket when each has one: 0.0. Otherwise nothing is
        taken and the answer is the seconds until there would be."""
        now = self.clock()
        levels = {k: self._level(k, now) for k in keys}
        short = max((1.0 - tokens for tokens in levels.values()), default=0.0)
        if short > 0:
            return short / self.per_s if self.per_s > 0 else math.inf
        for key, tokens in levels.items():
            self._buckets[key] = (tokens - 1.0, now)
            self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return 0.0

    def _level(self, key: Hashable, now: float) -> float:
        held = self._buckets.get(key)
        if held is None:
            return float(self.burst)
        tokens, at = held
        return min(float(self.burst), tokens + (now - at) * self.per_s)

    def __len__(self) -> int:
        return len(self._buckets)


# ---- one group of orders ----------------------------------------------------------------
class _Tx:
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

    def case(self, case_id: str) -> Case | None:
        return self.cases.get(case_id) or self.svc.cases.get(case_id)

    def unit(self, unit_id: str) -> Unit | None:
        return self.units.get(unit_id) or self.svc.units.get(unit_id)

    def stage(self, order: Order, problem: str | None, records: list[Case | Unit],
              reply: bytes, now: int) -> None:
        """Stage the order's row, its reply and the records it makes (``problem`` is None
        when accepted). Everything that could fail is worked out before anything is kept,
        so an order that fails here leaves the group as it was."""
        src = self.svc.src
        stamped = [msgspec.structs.replace(rec, src=src, seq=self.seq + i + 1)
                   for i, rec in enumerate(records)]
        changes = [change_row(order.order_id, rec) for rec in stamped]
        row = (order.order_id, order.console, type(order).__struct_config__.tag,
               encode_message(order).decode(), reply.decode(),
               "accepted" if problem is None else "rejected", now)
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


# ---- deciding an order ------------------------------------------------------------------
CaseOf = Callable[[str], Case | None]
UnitOf = Callable[[str], Unit | None]


def decide(order: Order, case_of: CaseOf, unit_of: UnitOf,
           now: int) -> tuple[str | None, list[Case | Unit]]:
    """Judge a ``dispatch`` or ``recall`` against the picture the two look-ups give, at ``now``:
    ``(None, the changed records)`` when accepted, ``(reason, [])`` when refused. Pure: the live
    service and the training desk (``situation.training``) decide alike. The records keep the
    ``src``/``seq`` of what they replace; the caller stamps its own."""
    if isinstance(order, DispatchOrder):
        return _dispatch(order, case_of, unit_of, now)
    if isinstance(order, RecallOrder):
        return _recall(order, case_of, unit_of, now)
    return reason("unknown_type", detail=repr(type(order).__struct_config__.tag)), []


def _dispatch(order: DispatchOrder, case_of: CaseOf, unit_of: UnitOf, now: int):
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
    ts = change_ts(now, case, unit)
    limit = RESOLVE_MS.get(case.category, DEFAULT_RESOLVE_MS)
    return None, [
        msgspec.structs.replace(case, ts=ts, status="dispatched", unit_id=unit.unit_id,
                                due_at=ts + limit),
        msgspec.structs.replace(unit, ts=ts, status="dispatched", case_id=case.case_id)]


def _recall(order: RecallOrder, case_of: CaseOf, unit_of: UnitOf, now: int):
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
    ts = change_ts(now, case, unit)
    records: list[Case | Unit] = []
    if case is not None:
        records.append(msgspec.structs.replace(
            case, ts=ts, status="registered", unit_id=None,
            due_at=ts + DISPATCH_LIMIT.get(case.priority, DISPATCH_LIMIT[3])))
    records.append(msgspec.structs.replace(unit, ts=ts, status="available", case_id=None))
    return None, records


def change_ts(now: int, *held: Case | Unit | None) -> int:
    """``now``, but never older than what it replaces: consoles keep the record with the
    greater ``ts``, so the change must be the newest."""
    return max([now] + [r.ts + 1 for r in held if r is not None])


# ---- the service ------------------------------------------------------------------------
class DispatchService:
    def __init__(self, sources: Iterable[str], dispatch_endpoint: str, feed_endpoint: str,
                 db_path: str | os.PathLike, *, src: str = DEFAULT_SRC,
                 now_ms: Callable[[], int] = wall_ms, context: zmq.Context | None = None,
                 heartbeat_s: float = HEARTBEAT_S, max_db_bytes: int | None = None,
                 max_order_bytes: int = MAX_ORDER_BYTES,
                 max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES,
                 snapshots_per_minute: float = DEFAULT_SNAPSHOTS_PER_MINUTE,
                 snapshot_burst: int = DEFAULT_SNAPSHOT_BURST,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 rejoin_s: float = REJOIN_S):
        self.sources = list(sources)
        self.src = src
        self.now_ms = now_ms
        self.heartbeat_s = heartbeat_s
        self.dispatch_endpoint = dispatch_endpoint    # as bound once open: '*' → the port
        self.feed_endpoint = feed_endpoint
        self.max_order_bytes = int(max_order_bytes)
        self.max_snapshot_bytes = int(max_snapshot_bytes)
        self.max_message_bytes = int(max_message_bytes)
        self.rejoin_s = rejoin_s
        self._ctx = context or zmq.Context.instance()
        self.storage = Storage(db_path, max_db_bytes)
        self.storage_error: str | None = None
        self.cases: dict[str, Case] = {}
        self.units: dict[str, Unit] = {}
        self.seq = -1                                 # the last seq given out
        self.published = -1                           # the last seq sent on the feed
        self._sent_any = False
        self._unsent: list[Record] = []               # committed, waiting for the feed
        self._feed_open = False                       # held after a start: see REJOIN_S
        self._open_at = 0.0
        self._dirty_cases: set[str] = set()           # learned, not yet in SQLite
        self._dirty_units: set[str] = set()
        self._replies: OrderedDict[str, bytes] = OrderedDict()
        self._version = 0                             # moves whenever the picture does
        self._snapshot_cache: tuple[tuple[int, int], bytes] | None = None
        self._snapshot_limit = RateLimit(snapshots_per_minute, snapshot_burst)
        self.counts: Counter = Counter()
        self.rejected: Counter = Counter()            # reason code → n
        self.bad_orders: Counter = Counter()          # bad_order's sub-code → n
        self.dropped: Counter = Counter()             # reason → n (no order_id to answer)
        self.faults = Faults()
        self._fault_counts: Counter = Counter()
        self._router: zmq.Socket | None = None
        self._feed: zmq.Socket | None = None
        self._poller = zmq.Poller()
        self._receiver: Receiver | None = None
        self._receiver_replaced = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_hb = 0.0
        self._next_flush = 0.0
        self._next_prune = 0.0
        self._next_open = 0.0
        self._commits = 0
        self._kill_after = int(os.environ.get(KILL_AFTER_COMMIT_ENV) or 0)

    # ---- life -----------------------------------------------------------------------------
    def open(self) -> "DispatchService":
        """Bind both sockets (``BindError`` here, in the caller), open and load the database
        (a failure is kept as ``storage_error``: the service runs and refuses orders), and
        start listening to the sources."""
        self._router = self._bind(zmq.ROUTER, self.dispatch_endpoint)
        try:
            self._feed = self._bind(zmq.XPUB, self.feed_endpoint)
        except BindError:
            self._router.close(0)
            raise
        self.dispatch_endpoint = self._router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.feed_endpoint = self._feed.getsockopt_string(zmq.LAST_ENDPOINT)
        self._poller.register(self._router, zmq.POLLIN)
        self._poller.register(self._feed, zmq.POLLIN)
        self._open_at = time.monotonic() + self.rejoin_s
        self._open_storage()
        if self.sources:
            self._receiver = self._new_receiver()
        return self

    def _bind(self, kind: int, endpoint: str) -> zmq.Socket:
        sock = self._ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        if kind == zmq.XPUB:
            sock.setsockopt(zmq.XPUB_VERBOSE, 1)      # see every console join
            sock.setsockopt(zmq.SNDHWM, 100_000)
            sock.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES)
        else:
            # A larger frame is never put together: ZeroMQ drops it and disconnects its
            # sender (which reconnects); other consoles' connections are not touched.
            sock.setsockopt(zmq.MAXMSGSIZE, self.max_order_bytes)
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            sock.close(0)
            raise BindError(f"cannot bind {endpoint}: {exc.strerror}") from None
        return sock

    def _new_receiver(self) -> Receiver:
        return Receiver(self.sources, context=self._ctx, faults=self.faults,
                        max_message_bytes=self.max_message_bytes).start()

    def start(self) -> "DispatchService":
        if self._router is None:
            self.open()
        self._thread = threading.Thread(target=self._run, name="dispatch-service", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.serve_once()
            except zmq.ContextTerminated:
                break
            except Exception as exc:     # a bug must not stop dispatch: log it, carry on
                self.counts["internal_errors"] += 1
                self._fault("loop", exc)
                self._stop.wait(0.1)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def stop_soon(self) -> None:
        """Ask the loop to end (safe from a signal handler); ``stop()`` waits for it."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.close()

    def close(self) -> None:
        if self._receiver is not None:
            self._receiver.stop()
            self._receiver = None
        with self._lock:
            self._flush_learned()
            self.storage.close()
            for sock in (self._router, self._feed):
                if sock is not None:
                    sock.close(0)
            self._router = self._feed = None

    # ---- the loop -------------------------------------------------------------------------
    def serve_once(self, timeout_ms: int = POLL_MS) -> None:
        """One pass: wait up to ``timeout_ms`` for a request or a console joining, then learn
        what the sources sent, answer every request waiting, heartbeat when due. Each step is
        guarded: one that fails is a fault, and the others still run."""
        due = self._next_hb if self._feed_open else self._open_at
        wait = max(0, min(timeout_ms, int((due - time.monotonic()) * 1000)))
        events = dict(self._poller.poll(wait))
        with self._lock:
            if self._feed in events:
                self._step("subscriptions", self._consoles_joined)
            self._step("learning", self._learn)
            if self._router in events:
                self._step("orders", self._serve_orders)
            mono = time.monotonic()
            if not self._feed_open and mono >= self._open_at:
                self._step("feed", self._open_feed)
            if self._feed_open and mono >= self._next_hb:
                self._next_hb = mono + self.heartbeat_s
                self._step("heartbeat", self._heartbeat)
            if mono >= self._next_flush:
                self._next_flush = mono + LEARN_FLUSH_S
                self._step("storage", self._flush_learned)
            if mono >= self._next_prune:
                self._next_prune = mono + PRUNE_S
                self._step("pruning", self._prune)

    def _step(self, name: str, step: Callable[[], None]) -> None:
        try:
            step()
        except zmq.ContextTerminated:
            raise
        except Exception as exc:
            self._fault(name, exc)

    def _fault(self, name: str, exc: BaseException | str) -> None:
        """Something internal failed and was carried past: counted under ``faults``, the
        first few (1, 2, 4, 8 …) with their traceback in the log."""
        what = f"dispatch {name}"
        self._fault_counts[what] += 1
        self.faults.record(what, exc)
        if isinstance(exc, BaseException):
            _log_some(self._fault_counts[what], "%s failed (carrying on)", what,
                      exc_info=(type(exc), exc, exc.__traceback__))

    def _consoles_joined(self) -> None:
        joined = False
        while True:
            try:
                msg = self._feed.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            joined |= msg[:1] == b"\x01"
        if joined:
            self._next_hb = 0.0      # greet at once: a console knows it is connected
            if not self._feed_open:
                self._open_feed()

    # ---- the feed -------------------------------------------------------------------------
    def _open_feed(self) -> None:
        """A console is listening (or none came back in time): send what waited."""
        self._feed_open = True
        self._next_hb = 0.0
        self._publish([])

    def _publish(self, records: list[Record]) -> None:
        """Send committed records on the feed, after any still waiting, and mark them
        published; while the feed is held they wait."""
        self._unsent += records
        if not self._feed_open or not self._unsent:
            return
        waiting, self._unsent, n = self._unsent, [], 0
        try:
            for rec in waiting:
                self._feed.send_multipart(frames(rec))
                n += 1
        finally:
            self._unsent = waiting[n:] + self._unsent      # what did not leave waits
            if n:
                self._sent(waiting[n - 1].seq)
        if self.storage.conn is not None:
            try:
                self.storage.mark_published(self.published)
            except StorageError as exc:
                self._storage_failed(exc)

    def _sent(self, seq: int) -> None:
        self.published = seq
        self._sent_any = True

    def _heartbeat(self) -> None:
        self.seq += 1
        if self.storage.conn is not None:
            try:
                # Stored before it is sent, and marked sent with it: it carries nothing, so
                # should the process die in the microseconds before it leaves, consoles see
                # one seq skipped, never a record lost or a seq used twice.
                self.storage.write(seq=self.seq, published=self.seq)
            except StorageError as exc:
                self._storage_failed(exc)
        self._feed.send_multipart(frames(Heartbeat(v=1, src=self.src, seq=self.seq,
                                                   ts=self.now_ms())))
        self._sent(self.seq)

    def _resume(self, stored: Stored) -> None:
        """Carry the feed on from the last run: the records it committed but never sent go
        out first. Their seqs follow the last one sent, which is what consoles expect next;
        should the feed already have moved on in this run (the database opened late) or the
        log have a hole, they get new seqs after everything given out instead."""
        last = -1 if stored.seq is None else stored.seq
        published = last if stored.published is None else stored.published
        unsent = self.storage.changes_after(published)
        own = [r.seq for r in unsent] == list(range(published + 1, published + 1 + len(unsent)))
        if own and not self._sent_any:
            self.seq = max(self.seq, published + len(unsent))
            self.published = published
        else:
            base = max(self.seq, last)
            unsent = [msgspec.structs.replace(r, seq=base + i + 1) for i, r in enumerate(unsent)]
            self.seq = base + len(unsent)
        if unsent:
            LOG.warning("%d records committed but not published before the last stop: "
                        "publishing them first (seq %d-%d)", len(unsent), unsent[0].seq,
                        unsent[-1].seq)
            self.counts["republished"] += len(unsent)
        self._unsent[:0] = unsent
        if self._feed_open:
            self._publish([])

    # ---- learning -------------------------------------------------------------------------
    def _learn(self) -> None:
        if self._receiver is None:
            return
        batch, _ = self._receiver.drain()        # restarts a thread that died (a fault)
        self._learn_batch(batch)
        if not self._receiver.alive():
            self._replace_receiver()

    def _replace_receiver(self) -> None:
        """The source receiver stopped and did not restart itself: a new one, now and then."""
        mono = time.monotonic()
        if mono - self._receiver_replaced < RECEIVER_RETRY_S:
            return
        self._receiver_replaced = mono
        self._fault("source receiver", "the source receiver stopped: replaced")
        old, self._receiver = self._receiver, None
        try:
            old.stop()
        finally:
            self._receiver = self._new_receiver()

    def _learn_batch(self, batch: Batch) -> None:
        for rec in batch.records:
            if rec.src == self.src:
                continue                     # our own feed, heard back
            if isinstance(rec, Case):
                if self._newer(self.cases.get(rec.case_id), rec):
                    self.cases[rec.case_id] = rec
                    self._dirty_cases.add(rec.case_id)
                    self.counts["learned"] += 1
                    self._version += 1
            elif isinstance(rec, Unit):
                if self._newer(self.units.get(rec.unit_id), rec):
                    self.units[rec.unit_id] = rec
                    self._dirty_units.add(rec.unit_id)
                    self.counts["learned"] += 1
                    self._version += 1
        self.counts["source_rejects"] += sum(batch.rejects.values())

    def _newer(self, held: Case | Unit | None, rec: Case | Unit) -> bool:
        """The greater ``ts`` wins; on a tie, the service's own record stays."""
        if held is None:
            return True
        return rec.ts > held.ts or (rec.ts == held.ts and held.src != self.src)

    def _flush_learned(self) -> None:
        if not (self._dirty_cases or self._dirty_units) or self.storage.conn is None:
            return
        try:
            self.storage.write(cases=[self.cases[k] for k in self._dirty_cases],
                               units=[self.units[k] for k in self._dirty_units])
        except StorageError as exc:
            self._storage_failed(exc)
            return
        self._dirty_cases.clear()
        self._dirty_units.clear()

    def _prune(self) -> None:
        """Forget cases closed more than ``CLOSED_KEEP_MS`` ago (the wall keeps its own
        record of them; an order for one is refused as unknown)."""
        cutoff = self.now_ms() - CLOSED_KEEP_MS
        old = [k for k, c in self.cases.items()
               if c.status in CLOSED_CASE_STATUSES and c.ts < cutoff]
        if not old or self.storage.conn is None:
            return
        try:
            self.storage.write(forget=old)
        except StorageError as exc:
            self._storage_failed(exc)
            return
        for k in old:
            del self.cases[k]
            self._dirty_cases.discard(k)
        self._version += 1

    # ---- storage ----------------------------------------------------------------------------
    def _open_storage(self) -> bool:
        self._next_open = time.monotonic() + REOPEN_S
        try:
            self.storage.open()
            stored = self.storage.load()
            self._resume(stored)
        except StorageError as exc:
            self.storage.close()
            self._storage_failed(exc)
            return False
        # Merge: what was stored, and whatever was learned while the file could not be read.
        for table, held, dirty in ((self.cases, stored.cases, self._dirty_cases),
                                   (self.units, stored.units, self._dirty_units)):
            for key, rec in held.items():
                if self._newer(table.get(key), rec):
                    table[key] = rec
                    dirty.discard(key)
        self._version += 1
        if self.storage_error is not None:
            LOG.warning("dispatch database %s is open again", self.storage.path)
        self.storage_error = None
        return True

    def _storage_failed(self, exc: StorageError) -> None:
        if self.storage_error != str(exc):
            LOG.error("dispatch database: %s: orders are refused until it can be written", exc)
        self.storage_error = str(exc)
        self.counts["storage_errors"] += 1

    def _storage_ready(self) -> bool:
        if self.storage.conn is not None:
            return True
        if time.monotonic() >= self._next_open:
            return self._open_storage()
        return False

    # ---- orders -----------------------------------------------------------------------------
    def _serve_orders(self) -> None:
        msgs = []
        while len(msgs) < MAX_GROUP:
            try:
                msgs.append(self._router.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                break
        if not msgs:
            return
        tx = _Tx(self, self._storage_ready())
        # (envelope, order_id if the reply waits on this commit, reply)
        outbox: list[tuple[list[bytes], str | None, bytes]] = []
        snapshots: list[tuple[list[bytes], SnapshotOrder]] = []
        for frames_ in msgs:
            self.counts["received"] += 1
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
                self._take(envelope, order, tx, outbox, snapshots)
            except Exception as exc:             # this order only: the others go on
                self._fault("order", exc)
                self._bad(envelope, Problem("internal", order_id=oid), outbox)
        if tx.orders:
            self._commit(tx, outbox)
        for envelope, _, reply in outbox:
            self._reply(envelope, reply)
        self._publish(tx.records)               # committed (a failed commit clears them)
        for envelope, order in snapshots:       # after every order of the group is answered
            self._answer_snapshot(envelope, order)

    def _reply(self, envelope: list[bytes], reply: bytes) -> None:
        """Send one reply; one that cannot leave is a fault, and the others still go (and
        what was committed is still published)."""
        try:
            self._router.send_multipart([*envelope, reply])
        except zmq.ContextTerminated:
            raise
        except zmq.ZMQError as exc:
            self._fault("reply", exc)

    def _take(self, envelope: list[bytes], order: Order | Problem, tx: _Tx,
              outbox: list, snapshots: list) -> None:
        """Judge one request of the group: stage it, or put its answer in the outbox."""
        if isinstance(order, Problem):
            self._bad(envelope, order, outbox)
            return
        if isinstance(order, SnapshotOrder):
            wait_s = self._snapshot_limit.take([("identity", envelope[0]),
                                                ("console", order.console)])
            if wait_s > 0:
                self._rate_limited(envelope, order, wait_s, outbox)
            else:
                snapshots.append((envelope, order))
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
            self._judge(tx, order)
            outbox.append((envelope, oid, tx.replies[oid]))

    def _bad(self, envelope: list[bytes], problem: Problem, outbox: list) -> None:
        """An order that cannot be taken: answered when it has an ``order_id`` to answer,
        counted as dropped when not."""
        if problem.order_id is None:
            self._drop(problem.code, problem.detail)
            return
        self.rejected["bad_order"] += 1
        self.bad_orders[problem.code] += 1
        _log_some(self.bad_orders[problem.code], "rejected a malformed order %s: %s",
                  problem.order_id, problem.reason)
        outbox.append((envelope, None,
                       self._ack(problem.order_id, bad_order(problem.code, problem.detail))))

    def _rate_limited(self, envelope: list[bytes], order: SnapshotOrder, wait_s: float,
                      outbox: list) -> None:
        self.rejected["rate_limited"] += 1
        limit = (f"{self._snapshot_limit.per_s * 60:g} a minute, "
                 f"{self._snapshot_limit.burst} at once")
        outbox.append((envelope, None, self._ack(order.order_id, reason(
            "rate_limited", what="snapshot", limit=limit,
            retry_s=max(1, math.ceil(min(wait_s, 86_400.0)))))))

    def _stored_reply(self, order_id: str) -> bytes | None:
        reply = self._replies.get(order_id)
        if reply is None:
            reply = self.storage.reply_for(order_id)
        return reply

    def _commit(self, tx: _Tx, outbox: list) -> None:
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
        self.storage_error = None

    def _judge(self, tx: _Tx, order: Order) -> None:
        """Decide one order against the picture as the orders before it left it, and stage
        it with its reply and the records it makes."""
        now = self.now_ms()
        problem, records = decide(order, tx.case, tx.unit, now)
        tx.stage(order, problem, records, self._ack(order.order_id, problem), now)

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
        _log_some(n, "dropped a request with no order_id to answer (%s%s) [%d so far]",
                  why, f": {detail}" if detail else "", n)

    # ---- snapshots --------------------------------------------------------------------------
    def _answer_snapshot(self, envelope: list[bytes], order: SnapshotOrder) -> None:
        try:
            reply = self._snapshot(order.order_id)
            if len(reply) > self.max_snapshot_bytes:
                self.rejected["snapshot_too_large"] += 1
                reply = self._ack(order.order_id, reason(
                    "snapshot_too_large", size=len(reply), limit=self.max_snapshot_bytes))
            else:
                self.counts["snapshots"] += 1
        except Exception as exc:                 # this snapshot only
            self._fault("snapshot", exc)
            self.rejected["bad_order"] += 1
            self.bad_orders["internal"] += 1
            reply = self._ack(order.order_id, bad_order("internal"))
        self._reply(envelope, reply)

    def _snapshot(self, order_id: str) -> bytes:
        """The snapshot reply: the picture is encoded once for each version and seq of it,
        and only the ``order_id`` is put in front per request."""
        key = (self._version, self.seq)
        if self._snapshot_cache is None or self._snapshot_cache[0] != key:
            body = _enc.encode({
                "src": self.src, "seq": self.seq,
                "cases": [c for _, c in sorted(self.cases.items())
                          if c.status not in CLOSED_CASE_STATUSES],
                "units": [u for _, u in sorted(self.units.items())]})
            self._snapshot_cache = (key, body)
            self.counts["snapshot_encodes"] += 1
        body = self._snapshot_cache[1]
        return b'{"type":"snapshot","v":1,"order_id":' + _enc.encode(order_id) + b"," + body[1:]

    # ---- looking in -------------------------------------------------------------------------
    def case(self, case_id: str) -> Case | None:
        with self._lock:
            return self.cases.get(case_id)

    def unit(self, unit_id: str) -> Unit | None:
        with self._lock:
            return self.units.get(unit_id)

    def status(self) -> dict:
        with self._lock:
            return {
                "src": self.src, "seq": self.seq, "published": self.published,
                "feed_state": "open" if self._feed_open else "held",
                "unsent": len(self._unsent),
                "dispatch": self.dispatch_endpoint, "feed": self.feed_endpoint,
                "db": self.storage.path, "storage": self.storage_error or "ok",
                "cases": len(self.cases),
                "open_cases": sum(1 for c in self.cases.values()
                                  if c.status not in CLOSED_CASE_STATUSES),
                "units": len(self.units),
                "received": self.counts["received"], "accepted": self.counts["accepted"],
                "rejected": dict(self.rejected), "bad_orders": dict(self.bad_orders),
                "dropped": dict(self.dropped),
                "duplicates": self.counts["duplicates"], "snapshots": self.counts["snapshots"],
                "snapshot_encodes": self.counts["snapshot_encodes"],
                "snapshot_clients": len(self._snapshot_limit),
                "republished": self.counts["republished"],
                "learned": self.counts["learned"],
                "storage_errors": self.counts["storage_errors"],
                "internal_errors": self.counts["internal_errors"],
                "faults": self.faults.snapshot(),
                "limits": {"max_order_bytes": self.max_order_bytes,
                           "max_snapshot_bytes": self.max_snapshot_bytes,
                           "max_message_bytes": self.max_message_bytes,
                           "snapshots_per_minute": self._snapshot_limit.per_s * 60,
                           "snapshot_burst": self._snapshot_limit.burst},
            }


# ---- command line ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    from feeds.args import EXIT_USAGE, OneLineParser, endpoint, positive_float, positive_int
    from feeds.schema import DEFAULT_DISPATCH

    p = OneLineParser(prog="feeds.dispatch_service",
                      description="The CityWall dispatch service: the single writer of "
                                  "assignments.")
    p.add_argument("--source", type=endpoint, action="append", required=True,
                   metavar="ENDPOINT", help="a protocol feed to learn cases and units from "
                                            "(repeat for more)")
    p.add_argument("--dispatch", type=endpoint, default=DEFAULT_DISPATCH, metavar="ENDPOINT",
                   help=f"bind the ROUTER for orders here (default {DEFAULT_DISPATCH})")
    p.add_argument("--feed", type=endpoint, default=DEFAULT_FEED, metavar="ENDPOINT",
                   help=f"publish changes here (default {DEFAULT_FEED})")
    p.add_argument("--db", default=None, metavar="FILE",
                   help=f"the SQLite file (default {default_db_path()})")
    p.add_argument("--src", default=DEFAULT_SRC, help="the feed's src (default dispatch)")
    p.add_argument("--db-max-mb", type=positive_float, default=None, metavar="MB",
                   help="refuse orders once the database would grow past this size")
    lim = p.add_argument_group("limits")
    lim.add_argument("--max-order-bytes", type=positive_int, default=MAX_ORDER_BYTES,
                     metavar="N", help="a larger order frame is dropped by ZeroMQ and its "
                                       f"sender disconnected (default {MAX_ORDER_BYTES})")
    lim.add_argument("--max-snapshot-bytes", type=positive_int,
                     default=DEFAULT_MAX_SNAPSHOT_BYTES, metavar="N",
                     help="a larger snapshot is refused, not sent (default "
                          f"{DEFAULT_MAX_SNAPSHOT_BYTES}; consoles take up to the same)")
    lim.add_argument("--max-message-bytes", type=positive_int,
                     default=DEFAULT_MAX_MESSAGE_BYTES, metavar="N",
                     help="largest message taken from a --source feed (default "
                          f"{DEFAULT_MAX_MESSAGE_BYTES})")
    lim.add_argument("--snapshot-per-minute", type=positive_float,
                     default=DEFAULT_SNAPSHOTS_PER_MINUTE, metavar="N",
                     help="snapshots a client (connection or console id) may ask for a "
                          f"minute (default {DEFAULT_SNAPSHOTS_PER_MINUTE:g})")
    lim.add_argument("--snapshot-burst", type=positive_int, default=DEFAULT_SNAPSHOT_BURST,
                     metavar="N", help="… and at once (default "
                                       f"{DEFAULT_SNAPSHOT_BURST})")
    p.add_argument("--run-for", type=positive_float, default=None, metavar="SECONDS")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if args.db is None:
        db = default_db_path()
        db.parent.mkdir(parents=True, exist_ok=True)
    else:
        db = Path(args.db)
    service = DispatchService(args.source, args.dispatch, args.feed, db, src=args.src,
                              max_db_bytes=int(args.db_max_mb * 2**20) if args.db_max_mb
                              else None, max_order_bytes=args.max_order_bytes,
                              max_snapshot_bytes=args.max_snapshot_bytes,
                              max_message_bytes=args.max_message_bytes,
                              snapshots_per_minute=args.snapshot_per_minute,
                              snapshot_burst=args.snapshot_burst)
    try:
        service.open()
    except BindError as exc:
        print(f"feeds.dispatch_service: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    signal.signal(signal.SIGTERM, lambda *_: service.stop_soon())
    print(f"dispatch service ready: orders {service.dispatch_endpoint} feed "
          f"{service.feed_endpoint} db {db} seq {service.seq} "
          f"storage {service.storage_error or 'ok'}", flush=True)
    service.start()
    try:
        service.join(args.run_for)
    except KeyboardInterrupt:
        pass
    service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

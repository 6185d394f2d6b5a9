"""The dispatch service: the single writer of assignments (指挥).

    python -m feeds.dispatch_service --source ENDPOINT [--source …] \\
        --dispatch tcp://127.0.0.1:5557 --feed tcp://127.0.0.1:5558 [--db FILE]

It learns cases and units from the ``--source`` feeds (any protocol publisher) and keeps them
after those publishers go quiet; answers orders on a ROUTER (``dispatch``, ``recall``,
``snapshot``, ../shared/PROTOCOL.md "Orders"); and publishes the changes it makes as ordinary
``case`` and ``unit`` records, with its own ``src``, on an XPUB at ``--feed``.

Durability: every order (accepted or rejected), its reply, the case and unit records it
produced and the feed's ``seq`` are committed to SQLite (WAL, synchronous=FULL) in one
transaction before the reply leaves, so SIGKILL loses nothing that was acknowledged. The same
``order_id`` twice gets the stored reply and acts once, across restarts too. ``seq`` is stored
with every transaction (heartbeats included, committed before they are sent), so a restarted
service carries on from the next number and consoles see neither a restart nor a gap. When
the database cannot be written the service keeps running and refuses orders with
``storage_unavailable`` instead of acknowledging what it could not store.

Orders that arrive together are judged one after the other against the picture as each left
it, and committed in one transaction (group commit): one fsync for a burst of consoles.

No Qt here. ``open()`` + ``serve_once()`` let a caller drive the service step by step;
``start()`` runs the same loop in a thread.
"""
from __future__ import annotations

import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

import msgspec
import zmq

from feeds.batch import Batch
from feeds.orders import (Ack, DispatchOrder, Order, Problem, RecallOrder, SnapshotOrder,
                          SnapshotReply, decode_order, encode as encode_message, reason)
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

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    console  TEXT NOT NULL,
    type     TEXT NOT NULL,
    request  TEXT NOT NULL,      -- the order as understood (JSON)
    reply    TEXT NOT NULL,      -- the reply sent, byte for byte (JSON)
    result   TEXT NOT NULL,      -- accepted | rejected
    ts       INTEGER NOT NULL    -- service clock when judged
);
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY, ts INTEGER NOT NULL, status TEXT NOT NULL,
    record  TEXT NOT NULL        -- the newest record held (learned or its own), JSON
);
CREATE TABLE IF NOT EXISTS units (
    unit_id TEXT PRIMARY KEY, ts INTEGER NOT NULL, status TEXT NOT NULL,
    record  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (    -- every record the service published but heartbeats
    seq      INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL,
    topic    TEXT NOT NULL,
    key      TEXT NOT NULL,      -- case_id or unit_id
    status   TEXT NOT NULL,
    ts       INTEGER NOT NULL,
    record   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_by_order ON changes(order_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);   -- 'seq': last seq published
"""


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def default_db_path() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(state) / "citywall" / "dispatch.sqlite3"


class StorageError(Exception):
    """The database could not be opened, read or written; the text says why."""


class BindError(RuntimeError):
    """An endpoint could not be bound (in use, bad interface): one line for the user."""


def _log_some(n: int, message: str, *args) -> None:
    """Log the 1st, 2nd, 4th, 8th … of a kind: a flood of garbage cannot flood the log."""
    if n & (n - 1) == 0:
        LOG.warning(message, *args)


# ---- SQLite -----------------------------------------------------------------------------
_case_dec = msgspec.json.Decoder(Case)
_unit_dec = msgspec.json.Decoder(Unit)
_enc = msgspec.json.Encoder()


class Storage:
    """The service's SQLite file. Every method raises ``StorageError`` and leaves no
    transaction open."""

    def __init__(self, path: str | os.PathLike, max_bytes: int | None = None):
        self.path = str(path)
        self.max_bytes = max_bytes
        self.conn: sqlite3.Connection | None = None

    def open(self) -> None:
        conn = None
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=1.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(SCHEMA)
            if self.max_bytes:
                page = conn.execute("PRAGMA page_size").fetchone()[0]
                conn.execute(f"PRAGMA max_page_count={max(1, self.max_bytes // page)}")
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise StorageError(f"{self.path}: {exc}") from None
        self.conn = conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _conn(self) -> sqlite3.Connection:
        if self.conn is None:
            raise StorageError(f"{self.path} is not open")
        return self.conn

    def load(self) -> tuple[dict[str, Case], dict[str, Unit], int | None]:
        try:
            c = self._conn()
            cases = {k: _case_dec.decode(r)
                     for k, r in c.execute("SELECT case_id, record FROM cases")}
            units = {k: _unit_dec.decode(r)
                     for k, r in c.execute("SELECT unit_id, record FROM units")}
            # The last seq published: kept in meta with every transaction; the change log
            # is a floor under it should meta ever lag.
            row = c.execute("SELECT max(coalesce((SELECT value FROM meta WHERE key='seq'), -1),"
                            " coalesce((SELECT max(seq) FROM changes), -1))").fetchone()
        except (sqlite3.Error, msgspec.DecodeError) as exc:
            raise StorageError(f"{self.path}: {exc}") from None
        return cases, units, (None if row[0] < 0 else int(row[0]))

    def reply_for(self, order_id: str) -> bytes | None:
        try:
            row = self._conn().execute("SELECT reply FROM orders WHERE order_id=?",
                                       (order_id,)).fetchone()
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from None
        return None if row is None else row[0].encode()

    def write(self, *, orders: Iterable[tuple] = (), cases: Iterable[Case] = (),
              units: Iterable[Unit] = (), changes: Iterable[tuple] = (),
              seq: int | None = None, forget: Iterable[str] = ()) -> None:
        """One transaction: all of it or none of it."""
        c = self._conn()
        try:
            c.execute("BEGIN IMMEDIATE")
            c.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?)", orders)
            c.executemany("INSERT OR REPLACE INTO cases VALUES (?,?,?,?)",
                          [(r.case_id, r.ts, r.status, _enc.encode(r).decode()) for r in cases])
            c.executemany("INSERT OR REPLACE INTO units VALUES (?,?,?,?)",
                          [(r.unit_id, r.ts, r.status, _enc.encode(r).decode()) for r in units])
            c.executemany("INSERT INTO changes VALUES (?,?,?,?,?,?,?)", changes)
            c.executemany("DELETE FROM cases WHERE case_id=?", [(k,) for k in forget])
            if seq is not None:
                c.execute("INSERT OR REPLACE INTO meta VALUES ('seq', ?)", (seq,))
            c.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                c.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise StorageError(str(exc)) from None


# ---- one group of orders ----------------------------------------------------------------
class _Tx:
    """What a group of orders changes, held aside until it is committed."""

    def __init__(self, service: "DispatchService"):
        self.svc = service
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

    def decided(self, order: Order, problem: str | None, ack: Callable, now: int) -> None:
        """Stage the order's row and reply (``problem`` is None when accepted)."""
        reply = ack(order.order_id, problem)
        self.replies[order.order_id] = reply
        self.results["accepted" if problem is None else problem.split(":", 1)[0]] += 1
        self.orders.append((order.order_id, order.console, type(order).__struct_config__.tag,
                            encode_message(order).decode(), reply.decode(),
                            "accepted" if problem is None else "rejected", now))

    def emit(self, order_id: str, rec: Case | Unit) -> None:
        self.seq += 1
        rec = msgspec.structs.replace(rec, src=self.svc.src, seq=self.seq)
        if isinstance(rec, Case):
            self.cases[rec.case_id] = rec
            topic, key = "case", rec.case_id
        else:
            self.units[rec.unit_id] = rec
            topic, key = "unit", rec.unit_id
        self.records.append(rec)
        self.changes.append((rec.seq, order_id, topic, key, rec.status, rec.ts,
                             _enc.encode(rec).decode()))


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
                 heartbeat_s: float = HEARTBEAT_S, max_db_bytes: int | None = None):
        self.sources = list(sources)
        self.src = src
        self.now_ms = now_ms
        self.heartbeat_s = heartbeat_s
        self.dispatch_endpoint = dispatch_endpoint    # as bound once open: '*' → the port
        self.feed_endpoint = feed_endpoint
        self._ctx = context or zmq.Context.instance()
        self.storage = Storage(db_path, max_db_bytes)
        self.storage_error: str | None = None
        self.cases: dict[str, Case] = {}
        self.units: dict[str, Unit] = {}
        self.seq = -1                                 # the last seq published
        self._dirty_cases: set[str] = set()           # learned, not yet in SQLite
        self._dirty_units: set[str] = set()
        self._replies: OrderedDict[str, bytes] = OrderedDict()
        self.counts: Counter = Counter()
        self.rejected: Counter = Counter()            # reason code → n
        self.dropped: Counter = Counter()             # reason → n (no order_id to answer)
        self._router: zmq.Socket | None = None
        self._feed: zmq.Socket | None = None
        self._poller = zmq.Poller()
        self._receiver: Receiver | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_hb = 0.0
        self._next_flush = 0.0
        self._next_prune = 0.0
        self._next_open = 0.0

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
        self._open_storage()
        if self.sources:
            self._receiver = Receiver(self.sources, context=self._ctx).start()
        return self

    def _bind(self, kind: int, endpoint: str) -> zmq.Socket:
        sock = self._ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        if kind == zmq.XPUB:
            sock.setsockopt(zmq.XPUB_VERBOSE, 1)      # see every console join
            sock.setsockopt(zmq.SNDHWM, 100_000)
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            sock.close(0)
            raise BindError(f"cannot bind {endpoint}: {exc.strerror}") from None
        return sock

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
            except Exception:            # a bug must not stop dispatch: log it, carry on
                self.counts["internal_errors"] += 1
                LOG.exception("dispatch service: error in the loop (carrying on)")
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
        what the sources sent, answer every request waiting, heartbeat when due."""
        wait = max(0, min(timeout_ms, int((self._next_hb - time.monotonic()) * 1000)))
        events = dict(self._poller.poll(wait))
        with self._lock:
            if self._feed in events:
                self._consoles_joined()
            self._learn()
            if self._router in events:
                self._serve_orders()
            mono = time.monotonic()
            if mono >= self._next_hb:
                self._heartbeat()
                self._next_hb = mono + self.heartbeat_s
            if mono >= self._next_flush:
                self._flush_learned()
                self._next_flush = mono + LEARN_FLUSH_S
            if mono >= self._next_prune:
                self._prune()
                self._next_prune = mono + PRUNE_S

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

    # ---- learning -------------------------------------------------------------------------
    def _learn(self) -> None:
        if self._receiver is None:
            return
        batch, _ = self._receiver.drain()
        self._learn_batch(batch)

    def _learn_batch(self, batch: Batch) -> None:
        for rec in batch.records:
            if rec.src == self.src:
                continue                     # our own feed, heard back
            if isinstance(rec, Case):
                if self._newer(self.cases.get(rec.case_id), rec):
                    self.cases[rec.case_id] = rec
                    self._dirty_cases.add(rec.case_id)
                    self.counts["learned"] += 1
            elif isinstance(rec, Unit):
                if self._newer(self.units.get(rec.unit_id), rec):
                    self.units[rec.unit_id] = rec
                    self._dirty_units.add(rec.unit_id)
                    self.counts["learned"] += 1
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

    # ---- storage ----------------------------------------------------------------------------
    def _open_storage(self) -> bool:
        self._next_open = time.monotonic() + REOPEN_S
        try:
            self.storage.open()
            cases, units, seq = self.storage.load()
        except StorageError as exc:
            self.storage.close()
            self._storage_failed(exc)
            return False
        # Merge: what was stored, and whatever was learned while the file could not be read.
        for table, stored, dirty in ((self.cases, cases, self._dirty_cases),
                                     (self.units, units, self._dirty_units)):
            for key, rec in stored.items():
                if self._newer(table.get(key), rec):
                    table[key] = rec
                    dirty.discard(key)
        if seq is not None and seq > self.seq:
            self.seq = seq
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
        ready = self._storage_ready()
        tx = _Tx(self)
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
            order = decode_order(payload)
            if isinstance(order, Problem):
                if order.order_id is None:
                    self._drop(order.code, order.detail)
                else:
                    self.rejected[order.code] += 1
                    _log_some(self.rejected[order.code], "rejected a malformed order %s: %s",
                              order.order_id, order.reason)
                    outbox.append((envelope, None, self._ack(order.order_id, order.reason)))
                continue
            if isinstance(order, SnapshotOrder):
                snapshots.append((envelope, order))
                continue
            oid = order.order_id
            if oid in tx.replies:                         # twice in this very group
                self.counts["duplicates"] += 1
                outbox.append((envelope, oid, tx.replies[oid]))
                continue
            stored = None
            if ready:
                try:
                    stored = self._stored_reply(oid)
                except StorageError as exc:
                    self._storage_failed(exc)
                    ready = False
            if not ready:
                outbox.append((envelope, None, self._refuse(oid)))
            elif stored is not None:
                self.counts["duplicates"] += 1
                outbox.append((envelope, None, stored))
            else:
                tx.decided(order, self._judge(tx, order), self._ack, self.now_ms())
                outbox.append((envelope, oid, tx.replies[oid]))
        if tx.orders:
            self._commit(tx, outbox)
        for envelope, _, reply in outbox:
            self._router.send_multipart([*envelope, reply])
        for rec in tx.records:                  # committed (a failed commit clears them)
            self._feed.send_multipart(frames(rec))
        for envelope, order in snapshots:
            self.counts["snapshots"] += 1
            self._router.send_multipart([*envelope, self._snapshot(order.order_id)])

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
                               changes=tx.changes, seq=tx.seq if tx.records else None)
        except StorageError as exc:
            self._storage_failed(exc)
            refused = {oid: self._refuse(oid) for oid in tx.replies}
            outbox[:] = [(env, oid, refused[oid] if oid in refused else reply)
                         for env, oid, reply in outbox]
            tx.records.clear()
            return
        self._dirty_cases.clear()
        self._dirty_units.clear()
        self.cases.update(tx.cases)
        self.units.update(tx.units)
        self.seq = tx.seq
        for oid, reply in tx.replies.items():
            self._replies[oid] = reply
            if len(self._replies) > REPLY_CACHE:
                self._replies.popitem(last=False)
        self.counts["accepted"] += tx.results.pop("accepted", 0)
        self.rejected.update(tx.results)
        self.storage_error = None

    def _judge(self, tx: _Tx, order: Order) -> str | None:
        """Decide one order against the picture as the orders before it left it, and stage
        the records it makes. ``None`` when accepted, else the reason."""
        problem, records = decide(order, tx.case, tx.unit, self.now_ms())
        for rec in records:
            tx.emit(order.order_id, rec)
        return problem

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

    def _snapshot(self, order_id: str) -> bytes:
        return encode_message(SnapshotReply(
            order_id=order_id, src=self.src, seq=self.seq,
            cases=[c for _, c in sorted(self.cases.items())
                   if c.status not in CLOSED_CASE_STATUSES],
            units=[u for _, u in sorted(self.units.items())]))

    def _heartbeat(self) -> None:
        self.seq += 1
        if self.storage.conn is not None:
            try:
                self.storage.write(seq=self.seq)       # stored before it is sent
            except StorageError as exc:
                self._storage_failed(exc)
        self._feed.send_multipart(frames(Heartbeat(v=1, src=self.src, seq=self.seq,
                                                   ts=self.now_ms())))

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
                "src": self.src, "seq": self.seq,
                "dispatch": self.dispatch_endpoint, "feed": self.feed_endpoint,
                "db": self.storage.path, "storage": self.storage_error or "ok",
                "cases": len(self.cases),
                "open_cases": sum(1 for c in self.cases.values()
                                  if c.status not in CLOSED_CASE_STATUSES),
                "units": len(self.units),
                "received": self.counts["received"], "accepted": self.counts["accepted"],
                "rejected": dict(self.rejected), "dropped": dict(self.dropped),
                "duplicates": self.counts["duplicates"], "snapshots": self.counts["snapshots"],
                "learned": self.counts["learned"],
                "storage_errors": self.counts["storage_errors"],
            }


# ---- command line ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    from feeds.args import EXIT_USAGE, OneLineParser, endpoint, positive_float
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
                              else None)
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

"""The dispatch service: the single writer of assignments (指挥).

    python -m feeds.dispatch_service --source ENDPOINT [--source …] \\
        --dispatch tcp://127.0.0.1:5557 --feed tcp://127.0.0.1:5558 [--db FILE] \\
        [--key SECRET --trust DIR [--roles FILE.toml] [--source-server-key FILE …]]
    python -m feeds.dispatch_service audit --db FILE [--since TIME] [--console KEY]

(The command line is ``feeds.dispatch_cli``; the audit ``feeds.dispatch_audit``.)

It learns cases and units from the ``--source`` feeds (any protocol publisher; judged by its own
clock, none dated more than ``future_ms`` ahead; at most ``max_cases``/``max_units`` ids, open
cases and units unheard of for 30 days let go) and keeps them after those publishers go quiet;
answers orders on a ROUTER (``dispatch``, ``recall``,
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
limited per connection (ROUTER identity; and per key when secured — never per the
``console`` an order claims) and encoded once per picture; one larger than
``max_snapshot_bytes`` is refused without being put together.

Keys (issue #13): with ``--key``/``--trust`` both sockets are CURVE servers that take only
the client keys in the trust directory, every order is judged by the role of the key that sent
it (``--roles``, ``feeds.roles``) and recorded against that key, never against the ``console``
it claims; the sources are heard over CURVE with ``--source-server-key``. Binding beyond
loopback without keys is refused unless ``--insecure``. See ``feeds.dispatch_auth``.

Test hook: with ``CITYWALL_TEST_KILL_AFTER_COMMIT=N`` in the environment the process SIGKILLs
itself right after its Nth order commit, before the replies and records of that commit leave
(the window a crash can hit). Tests only.

No Qt here. ``open()`` + ``serve_once()`` let a caller drive the service step by step;
``start()`` runs the same loop in a thread.

Where the parts live: the decision rules in ``feeds.dispatch_rules`` (shared with the training
desk), a group of orders being staged in ``feeds.dispatch_group``, and the service's halves as
mixins — order intake (``feeds.dispatch_intake``), snapshots and their rate limit
(``feeds.dispatch_snapshots``), the feed (``feeds.dispatch_feed``), learning from the sources
(``feeds.dispatch_learning``) — with the SQLite file in ``feeds.dispatch_store``. This module
holds the service's state, its life and loop, opening the database, and the command line.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable

import zmq

from feeds.bounds import DEFAULT_FUTURE_MS, DEFAULT_MAX_MESSAGE_BYTES
from feeds.dispatch_auth import FEED_DOMAIN, ORDERS_DOMAIN, KeyedOrders
from feeds.dispatch_feed import FeedPublishing
from feeds.dispatch_group import OrderGroup
from feeds.dispatch_intake import OrderIntake, log_some as _log_some
from feeds.dispatch_learning import SourceLearning
from feeds.dispatch_snapshots import (DEFAULT_SNAPSHOT_BURST, DEFAULT_SNAPSHOTS_PER_MINUTE,
                                      RateLimit, SnapshotAnswers)
from feeds.dispatch_store import Storage, StorageError, default_db_path  # noqa: F401
from feeds.faults import Faults
from feeds.orders import DEFAULT_MAX_SNAPSHOT_BYTES, MAX_ORDER_BYTES, Order
from feeds.receiver import Receiver
from feeds.roles import UNCHECKED, Caller, DistrictsOf, Roles
from feeds.security import ClientKeys, SecurityError, ServerKeys, check_bind, is_loopback
from feeds.schema import CLOSED_CASE_STATUSES, Case, Record, Unit
# Defined here before the split and still importable from here (tests, the training desk,
# tools): the rules' ``decide`` in particular is looked up here by ``_judge`` at each call.
from feeds.dispatch_intake import MAX_GROUP, REPLY_CACHE  # noqa: F401
from feeds.dispatch_learning import (CLOSED_KEEP_MS, DEFAULT_MAX_CASES,  # noqa: F401
                                     DEFAULT_MAX_UNITS, OPEN_CASE_MAX_AGE_MS,
                                     RECEIVER_RETRY_S, UNIT_MAX_AGE_MS)
from feeds.dispatch_rules import (DEFAULT_RESOLVE_MS, RESOLVE_MS,  # noqa: F401
                                  WORKING_CASE, CaseOf, UnitOf, change_ts, decide)
from feeds.dispatch_snapshots import MAX_CLIENTS  # noqa: F401
from feeds.dispatch_store import SCHEMA, Stored, change_row  # noqa: F401

LOG = logging.getLogger("feeds.dispatch")

DEFAULT_SRC = "dispatch"
DEFAULT_FEED = "tcp://127.0.0.1:5558"
HEARTBEAT_S = 0.5                 # PROTOCOL: at least one a second
POLL_MS = 20                      # the loop's longest sleep: how often sources are drained
LEARN_FLUSH_S = 0.1               # learned records reach the database at least this often
REOPEN_S = 1.0                    # an unopenable database is tried again this often
PRUNE_S = 60.0                    # closed and stale ids are let go this often
DAY_MS = 24 * 3_600_000
# After a start the feed waits this long for a console to (re)subscribe before it sends
# anything: longer than a console's longest reconnect interval (feeds.receiver: 2 s).
REJOIN_S = 3.0
# What a console sends the XPUB: subscriptions, a byte and a topic prefix.
MAX_SUBSCRIPTION_BYTES = 1024
KILL_AFTER_COMMIT_ENV = "CITYWALL_TEST_KILL_AFTER_COMMIT"


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class BindError(RuntimeError):
    """An endpoint could not be bound (in use, bad interface): one line for the user."""


# ---- the service ------------------------------------------------------------------------
class DispatchService(OrderIntake, SnapshotAnswers, FeedPublishing, SourceLearning,
                      KeyedOrders):
    """The single writer of assignments: its state, life and loop are here; what it does with
    orders, snapshots, the feed and the sources is in the mixins it is made of.

    Keys (``feeds.dispatch_auth``): with ``keys`` (``ServerKeys``) both sockets are CURVE
    servers taking only the keys in its trust directory, and every order is judged and
    recorded as sent by its key; ``roles`` says what each key may do (``feeds.roles``; None
    with keys: every trusted key is a commander). ``source_keys`` (``ClientKeys``): the
    service's own key pair and the publishers' server keys, to hear the ``sources`` over
    CURVE. Without keys (tests, the demo: in-process or loopback) nothing is judged, as
    before. Secure unless told otherwise: ``open()`` refuses (``SecurityError``) to bind
    beyond loopback without keys, or to hear a source beyond loopback without source keys,
    unless ``insecure``."""

    def __init__(self, sources: Iterable[str], dispatch_endpoint: str, feed_endpoint: str,
                 db_path: str | os.PathLike, *, src: str = DEFAULT_SRC,
                 now_ms: Callable[[], int] = wall_ms, context: zmq.Context | None = None,
                 heartbeat_s: float = HEARTBEAT_S, max_db_bytes: int | None = None,
                 max_order_bytes: int = MAX_ORDER_BYTES,
                 max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES,
                 snapshots_per_minute: float = DEFAULT_SNAPSHOTS_PER_MINUTE,
                 snapshot_burst: int = DEFAULT_SNAPSHOT_BURST,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 rejoin_s: float = REJOIN_S, keys: ServerKeys | None = None,
                 source_keys: ClientKeys | None = None, roles: Roles | None = None,
                 insecure: bool = False, future_ms: int = DEFAULT_FUTURE_MS,
                 max_cases: int = DEFAULT_MAX_CASES, max_units: int = DEFAULT_MAX_UNITS,
                 open_case_max_age_ms: int = OPEN_CASE_MAX_AGE_MS,
                 unit_max_age_ms: int = UNIT_MAX_AGE_MS, prune_s: float = PRUNE_S,
                 source_crs: dict[str, str] | None = None):
        if roles is not None and keys is None:
            raise ValueError("roles need keys: without them no order says who sent it")
        self.sources = list(sources)
        # Each source's coordinate frame (the protocol's, GCJ-02, unless told): the service
        # holds and publishes the protocol's frame, so a WGS-84 tracker is converted on the way in.
        self.source_crs = dict(source_crs or {})
        self.keys = keys
        self.source_keys = source_keys
        self.roles = roles if roles is not None else Roles.everyone_commands()
        self.insecure = insecure
        self.insecure_notes: list[str] = []           # what the caller let through (--insecure)
        self._monitors: dict = {}                     # monitor socket → (socket, label)
        self.handshakes_failed: dict[str, dict[str, int]] = {}
        self.not_allowed: Counter = Counter()         # role (or why none) → orders refused
        self.source_auth_failed: Counter = Counter()  # source endpoint → handshakes failed
        self._districts_of = DistrictsOf()
        self.src = src
        self.now_ms = now_ms
        self.heartbeat_s = heartbeat_s
        self.dispatch_endpoint = dispatch_endpoint    # as bound once open: '*' → the port
        self.feed_endpoint = feed_endpoint
        self.max_order_bytes = int(max_order_bytes)
        self.max_snapshot_bytes = int(max_snapshot_bytes)
        self.max_message_bytes = int(max_message_bytes)
        self.rejoin_s = rejoin_s
        # Source records dated further ahead of now_ms than this are refused; the service's
        # own are never dated further ahead (feeds.dispatch_rules.change_ts).
        self.future_ms = int(future_ms)
        self.max_cases, self.max_units = int(max_cases), int(max_units)
        self.open_case_max_age_ms = int(open_case_max_age_ms)
        self.unit_max_age_ms = int(unit_max_age_ms)
        self.prune_s = prune_s
        self.learn_refused: Counter = Counter()       # table → new ids refused at its cap
        self.aged_out: Counter = Counter()            # table → ids forgotten for their age
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
        self._unit_pos_ts: dict[str, int] = {}        # ts of each unit's position held
        self._moved_units: set[str] = set()           # moved since written (not per fix)
        self._next_position_flush = 0.0
        self._replies: OrderedDict[str, bytes] = OrderedDict()
        self._version = 0                             # moves whenever the picture does
        self._snapshot_cache: tuple[tuple[int, int], bytes, float] | None = None
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
        self._room_pruned = float("-inf")              # a full table last pruned for room
        self._next_open = 0.0
        self._commits = 0
        self._kill_after = int(os.environ.get(KILL_AFTER_COMMIT_ENV) or 0)

    # ---- life -----------------------------------------------------------------------------
    def open(self) -> "DispatchService":
        """Bind both sockets (``BindError`` here, in the caller; ``SecurityError`` for an
        endpoint beyond loopback without keys), open and load the database (a failure is kept
        as ``storage_error``: the service runs and refuses orders), and start listening to
        the sources."""
        for ep in (self.dispatch_endpoint, self.feed_endpoint):
            check_bind(ep, self.keys is not None, self.insecure)
        for ep in self.sources:
            if self.source_keys is None and not self.insecure and not is_loopback(ep):
                raise SecurityError(f"source {ep} is on another machine: give "
                                    "--source-server-key FILE and --key (or --insecure to "
                                    "hear it unencrypted)")
        self._router = self._bind(zmq.ROUTER, self.dispatch_endpoint, ORDERS_DOMAIN, "orders")
        try:
            self._feed = self._bind(zmq.XPUB, self.feed_endpoint, FEED_DOMAIN, "feed")
        except BindError:
            self._close_monitors()
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

    def _bind(self, kind: int, endpoint: str, domain: str, label: str) -> zmq.Socket:
        sock = self._ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        self._secure(sock, domain, label)
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
            for monitor, (watched, _) in list(self._monitors.items()):
                if watched is sock:
                    self._poller.unregister(monitor)
                    del self._monitors[monitor]
                    monitor.close(0)
            sock.close(0)
            raise BindError(f"cannot bind {endpoint}: {exc.strerror}") from None
        return sock

    def _new_receiver(self) -> Receiver:
        # Judged by the service's clock: a record dated further ahead than ``future_ms`` is
        # refused (out_of_range), so none can outlive the real ones for years.
        return Receiver(self.sources, context=self._ctx, faults=self.faults,
                        max_message_bytes=self.max_message_bytes, now_ms=self.now_ms,
                        future_ms=self.future_ms, keys=self.source_keys,
                        crs=self.source_crs).start()

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
            self._flush_learned(positions=True)
            self.storage.close()
            self._close_monitors()
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
            if self._monitors:
                self._step("handshakes", lambda: self._handshakes(events))
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
                self._next_prune = mono + self.prune_s
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
        for key, ts in stored.unit_pos_ts.items():      # the position order survives too
            if key in self.units and ts > self._unit_pos_ts.get(key, -1):
                self._unit_pos_ts[key] = ts
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

    # ---- judging ----------------------------------------------------------------------------
    def _judge(self, tx: OrderGroup, order: Order, caller: Caller = UNCHECKED) -> None:
        """Decide one order against the picture as the orders before it left it — first
        whether its key may give it at all (``feeds.roles``), then the rules — and stage it
        with its reply and the records it makes, against the key that sent it. (Here, not in
        the intake: ``decide`` is this module's name, so a test can replace it.)"""
        now = self.now_ms()
        problem = self._may(caller, order, tx.case, tx.unit)
        if problem is None:
            problem, records = decide(order, tx.case, tx.unit, now, future_ms=self.future_ms)
        else:
            records = []
            tx.not_allowed[caller.label] += 1
        tx.stage(order, problem, records, self._ack(order.order_id, problem), now, caller)

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
                "learned": self.counts["learned"], "positions": self._positions_status(),
                "source_rejects": self.counts["source_rejects"],
                "learn_refused": dict(self.learn_refused), "aged_out": dict(self.aged_out),
                "storage_errors": self.counts["storage_errors"],
                "internal_errors": self.counts["internal_errors"],
                "faults": self.faults.snapshot(),
                "limits": {"max_order_bytes": self.max_order_bytes,
                           "max_snapshot_bytes": self.max_snapshot_bytes,
                           "max_message_bytes": self.max_message_bytes,
                           "snapshots_per_minute": self._snapshot_limit.per_s * 60,
                           "snapshot_burst": self._snapshot_limit.burst,
                           "future_tolerance_s": self.future_ms / 1000,
                           "max_cases": self.max_cases, "max_units": self.max_units,
                           "open_case_max_days": self.open_case_max_age_ms / DAY_MS,
                           "unit_max_days": self.unit_max_age_ms / DAY_MS},
                "source_auth_failed": dict(self.source_auth_failed),
                **self._security_status(),
            }


# ---- command line ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``python -m feeds.dispatch_service``: see ``feeds.dispatch_cli``."""
    from feeds.dispatch_cli import main as cli_main
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())

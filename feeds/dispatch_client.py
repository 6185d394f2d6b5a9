"""A console's side of orders (指挥): a DEALER to the dispatch service's ROUTER. No Qt.

    client = DispatchClient("tcp://127.0.0.1:5557", "console-1")
    oid = client.send("dispatch", case_id="C1", unit_id="U1")
    ...                                   # from a timer, often:
    for event in client.poll():
        ("ack", order_id, Ack)            # the service answered: accepted or rejected, reason
        ("snapshot", order_id, SnapshotReply)
        ("resent", order_id)              # no answer within timeout_ms: sent again, same id
        ("unconfirmed", order_id)         # no answer after the retries: tell the commander
        ("dropped", reason)               # a reply nobody asked for, or one we cannot read

An order is pending (``pending()``) until its ack. The service acts on an ``order_id`` once, so
sending it again is always safe. The socket is ``ZMQ_IMMEDIATE``: an order is never queued for a
service that is not connected (to be acted on minutes after the commander was told it was not
confirmed); it is tried again on every ``poll()`` until it leaves or its time runs out. An ack
that arrives after ``unconfirmed`` is still delivered as ``("ack", …)``: it says what happened.

The guard: in REPLAY or TRAINING mode a client only orders a training dispatch service
(``inproc://`` — started inside this process, so it cannot be the live one — or an endpoint
named in ``training_endpoints``), unless ``allow_live`` is set. It refuses to be created
otherwise, and when a live client is switched to REPLAY or TRAINING (``set_mode``), ``send()``
refuses every changing order (dispatch, recall) before anything reaches the socket: the
refusal is here, not in a UI. A snapshot changes nothing and is always allowed.

Bounds: the DEALER takes frames up to ``max_reply_bytes`` (MAXMSGSIZE; a snapshot of the whole
city is the largest reply) and drops the connection on a larger one; every reply is decoded
under bounds and one it cannot read is counted in ``dropped``, never raised. The service limits
snapshots per console: ``snapshot()`` raises ``SnapshotRefused`` (a RuntimeError carrying the
reason and when to retry) at once when it is refused.

Keys: with ``keys`` (``feeds.security.ClientKeys``) the DEALER is a CURVE client — its own key
pair, and ``keys.server_for(endpoint)`` as the service's key (an in-process endpoint has no
handshake and takes none). The service judges every order by the role of this key, never by
``console_id``; a snapshot reply says that role and its districts, kept in ``role`` and
``districts`` (None until one arrives, and from a service without keys). A handshake the
service refuses (our key not trusted, a wrong server key) is counted in ``status()``'s
``auth_failed``: orders then stay pending and come back ``unconfirmed``.
"""
from __future__ import annotations

import re
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import msgspec
import zmq

from feeds.endpoints import check_endpoint
from feeds.links import LinkWatch
from feeds.orders import (CHANGING_TYPES, DEFAULT_MAX_SNAPSHOT_BYTES, ORDER_TYPES, Ack,
                          Problem, SnapshotReply, decode_order, decode_reply, encode,
                          reason_code)
from feeds.schema import PROTOCOL_VERSION, Record
from feeds.security import ClientKeys, SecurityError, connect_as

MODES = ("LIVE", "REPLAY", "TRAINING")
GUARDED_MODES = frozenset({"REPLAY", "TRAINING"})
RETRY_MS = 10               # how often an order waiting for a connection is tried again
DONE_KEEP = 1_000           # answered order ids remembered, to tell a repeat from a stranger


class LiveOrderRefused(ValueError):
    """An order for the live service from a console in REPLAY or TRAINING mode."""


class SnapshotRefused(RuntimeError):
    """The service answered a snapshot request with a rejection: ``reason`` says why (for
    ``rate_limited``, ``retry_s`` says when to ask again)."""

    def __init__(self, reason: str | None):
        self.reason = reason or ""
        self.code = reason_code(reason)
        m = re.search(r"retry in (\d+) s", self.reason)
        self.retry_s = int(m.group(1)) if m else None
        super().__init__(f"snapshot refused: {self.reason}")


def is_training_endpoint(endpoint: str, training_endpoints: Iterable[str] = ()) -> bool:
    return endpoint.startswith("inproc://") or endpoint in set(training_endpoints)


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class _Pending:
    order: dict
    payload: bytes
    sent_at: int
    attempts: int
    on_wire: bool
    first_at: int = 0           # when it was first sent (``now_ms``): an ack's latency


class FollowFrom:
    """How a console started mid-shift joins: subscribe to the feed first, then ask for a
    snapshot, then follow the feed from the snapshot's ``seq``.

    1. Apply every case and unit of the snapshot as an upsert, exactly like feed records (the
       greater ``ts`` wins), so whatever the feed already delivered is not undone.
    2. Feed records from the service's ``src`` with ``seq`` ≤ the snapshot's ``seq`` are
       already in the snapshot: ``is_new`` says False and the console may skip them
       (applying them changes nothing either: same ``ts``).
    3. The next record from that ``src`` must have ``seq`` = snapshot ``seq`` + 1. A larger one
       means records were missed between the snapshot and the subscription: ``gap`` is set and
       the console asks for a fresh snapshot.
    Records from other ``src``s are always new: the snapshot held them with their own ``ts``.
    """

    def __init__(self, snapshot_seq: int, src: str = "dispatch"):
        self.src = src
        self.last = snapshot_seq
        self.gap: tuple[int, int] | None = None      # (expected, got) of the first jump

    def is_new(self, rec: Record) -> bool:
        if rec.src != self.src:
            return True
        if rec.seq <= self.last:
            return False
        if rec.seq > self.last + 1 and self.gap is None:
            self.gap = (self.last + 1, rec.seq)
        self.last = rec.seq
        return True


# Ack latency buckets (seconds): an ack normally takes a few ms; the client gives up after 3 s
# and retries once, so the tail runs to ~6 s.
ACK_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class AckFigures:
    """Acks of orders (not snapshots) by result, and a histogram of their latency: from the
    order's first send to its ack, in seconds (a late ack, after ``unconfirmed``, counts)."""

    def __init__(self, buckets=ACK_BUCKETS_S):
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)     # per bucket, the last one +Inf
        self.accepted = self.rejected = 0
        self.sum_s = 0.0

    def add(self, accepted: bool, latency_s: float) -> None:
        latency_s = max(0.0, latency_s)
        if accepted:
            self.accepted += 1
        else:
            self.rejected += 1
        self.sum_s += latency_s
        i = next((i for i, le in enumerate(self.buckets) if latency_s <= le), len(self.buckets))
        self.counts[i] += 1

    def status(self, timeouts: int = 0) -> dict:
        """Cumulative buckets as Prometheus has them: [[le, count], …, ["+Inf", count]]."""
        out, n = [], 0
        for le, c in zip((*self.buckets, "+Inf"), self.counts):
            n += c
            out.append([le, n])
        return {"accepted": self.accepted, "rejected": self.rejected, "timeouts": timeouts,
                "latency_buckets": out, "latency_count": n, "latency_sum_s": round(self.sum_s, 6)}


class DispatchClient:
    def __init__(self, endpoint: str, console_id: str, *,
                 now_ms: Callable[[], int] = monotonic_ms,
                 clock_ms: Callable[[], int] = wall_ms,
                 timeout_ms: int = 3000, retries: int = 1, mode: str = "LIVE",
                 allow_live: bool = False, training_endpoints: Iterable[str] = (),
                 context: zmq.Context | None = None,
                 max_reply_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES,
                 keys: ClientKeys | None = None):
        """``now_ms`` times the replies (link time: real milliseconds, not the city clock);
        ``clock_ms`` stamps the orders' ``ts`` (the situation's clock); ``max_reply_bytes``
        is the largest reply taken (a snapshot: set it like the service's
        ``--max-snapshot-bytes``); ``keys``: connect as a CURVE client (``SecurityError``
        when they hold no server key for ``endpoint``)."""
        self.endpoint = check_endpoint(endpoint)
        if not isinstance(console_id, str) or not 0 < len(console_id) <= 128:
            raise ValueError("a console id is needed (1-128 characters)")
        self.console_id = console_id
        self.now_ms = now_ms
        self.clock_ms = clock_ms
        self.timeout_ms = int(timeout_ms)
        self.retries = int(retries)
        self.allow_live = allow_live
        self.training = is_training_endpoint(self.endpoint, training_endpoints)
        self.set_mode(mode)
        if self._refusing():
            raise LiveOrderRefused(self._refusal())
        self._pending: dict[str, _Pending] = {}
        self._given_up: OrderedDict[str, _Pending] = OrderedDict()
        self._done: OrderedDict[str, None] = OrderedDict()
        self._queued: list[tuple] = []       # events taken by ``snapshot()`` for ``poll()``
        self.dropped: Counter = Counter()
        self.counts: Counter = Counter()
        self.acks = AckFigures()                 # acks by result and their latency (metrics)
        self.role: str | None = None             # what the service says our key may do
        self.districts: list[str] | None = None
        server = None
        if keys is not None and not self.endpoint.startswith("inproc://"):
            server = keys.server_for(self.endpoint)
            if server is None:
                raise SecurityError(f"no server key for the dispatch service {self.endpoint}")
        self.secured = server is not None
        self._sock = (context or zmq.Context.instance()).socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.IMMEDIATE, 1)
        self._sock.setsockopt(zmq.RECONNECT_IVL, 100)
        self._sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        self._sock.setsockopt(zmq.MAXMSGSIZE, int(max_reply_bytes))
        if server is not None:
            connect_as(self._sock, keys.key, server)
        # Handshakes refused (keys) are counted; a link libzmq gave up on is connected again.
        self._watch = LinkWatch(self._sock, self.endpoint) if self.secured else None
        self._sock.connect(self.endpoint)

    # ---- the guard ------------------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        """The console's mode now. A live client switched to REPLAY or TRAINING stays, but
        refuses every changing order until it is LIVE again."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode

    def _refusing(self) -> bool:
        return self.mode in GUARDED_MODES and not (self.training or self.allow_live)

    def _refusal(self) -> str:
        return (f"refusing to send orders to the live dispatch service {self.endpoint} in "
                f"{self.mode} mode: use a training dispatch service (inproc:// or one named "
                "in training_endpoints), or allow_live=True")

    # ---- sending --------------------------------------------------------------------------
    def send(self, type: str, **fields) -> str:
        """Send an order; its ``order_id`` (uuid4 hex). ValueError for an order the protocol
        would refuse (unknown type, missing or wrong field) — nothing is sent then."""
        if type in CHANGING_TYPES and self._refusing():
            raise LiveOrderRefused(self._refusal())
        if type not in ORDER_TYPES:
            raise ValueError(f"unknown order type {type!r}: one of {', '.join(ORDER_TYPES)}")
        order = {"v": PROTOCOL_VERSION, "type": type, "order_id": uuid.uuid4().hex,
                 "console": self.console_id, "ts": self.clock_ms(), **fields}
        payload = msgspec.json.encode(order)
        checked = decode_order(payload)
        if isinstance(checked, Problem):
            raise ValueError(f"not a valid {type} order: {checked.reason}")
        payload = encode(checked)
        oid = checked.order_id
        now = self.now_ms()
        self._pending[oid] = _Pending(order, payload, now, 1, self._put(payload), now)
        self.counts["sent"] += 1
        return oid

    def _put(self, payload: bytes) -> bool:
        try:
            self._sock.send(payload, zmq.NOBLOCK)
        except zmq.Again:             # no service connected (IMMEDIATE) or its queue is full
            return False
        return True

    def pending(self) -> dict[str, dict]:
        return {oid: p.order for oid, p in self._pending.items()}

    # ---- receiving --------------------------------------------------------------------------
    def poll(self, timeout_ms: int = 0) -> list[tuple]:
        """Everything that happened since the last call. Never blocks unless ``timeout_ms``
        is given (then waits up to that long for a reply first)."""
        events, self._queued = self._queued, []
        if self._watch is not None:
            self._watch.take_events()
            self._watch.reconnect_if_deaf()
        unsent = self._put_unsent()
        if timeout_ms and not events:
            # An order still waiting for a connection is tried again every few ms.
            self._sock.poll(min(timeout_ms, RETRY_MS) if unsent else timeout_ms)
        while True:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            event = self._take(frames)
            if event is not None:
                events.append(event)
        now = self.now_ms()
        for oid, p in list(self._pending.items()):
            if now - p.sent_at < self.timeout_ms:
                continue
            if p.attempts <= self.retries:
                p.attempts += 1
                p.sent_at = now
                p.on_wire = self._put(p.payload)
                self.counts["resent"] += 1
                events.append(("resent", oid))
            else:
                del self._pending[oid]
                self._given_up[oid] = p
                if len(self._given_up) > DONE_KEEP:
                    self._given_up.popitem(last=False)
                self.counts["unconfirmed"] += 1
                events.append(("unconfirmed", oid))
        return events

    def _put_unsent(self) -> bool:
        """Try the orders not yet on the wire again; whether any still is not."""
        left = False
        for p in self._pending.values():
            if not p.on_wire:
                p.on_wire = self._put(p.payload)
                left |= not p.on_wire
        return left

    def _take(self, frames: list[bytes]) -> tuple | None:
        if len(frames) != 1:
            return self._drop("bad_frames")
        reply = decode_reply(frames[0])
        if isinstance(reply, Problem):
            return self._drop(reply.code)
        oid = reply.order_id
        p = self._pending.pop(oid, None)
        if p is None:
            p = self._given_up.pop(oid, None)
            if p is not None:
                self.counts["late"] += 1             # after "unconfirmed": still the truth
            elif oid in self._done:
                return self._drop("duplicate_reply")  # the answer to a resend
            else:
                return self._drop("unknown_order")
        self._done[oid] = None
        if len(self._done) > DONE_KEEP:
            self._done.popitem(last=False)
        self.counts["answered"] += 1
        if isinstance(reply, SnapshotReply):
            self.role, self.districts = reply.role, reply.districts
        elif isinstance(reply, Ack) and p is not None and p.order.get("type") != "snapshot":
            self.acks.add(reply.accepted, (self.now_ms() - p.first_at) / 1000)
        return ("snapshot" if isinstance(reply, SnapshotReply) else "ack", oid, reply)

    def _drop(self, why: str) -> tuple:
        self.dropped[why] += 1
        return ("dropped", why)

    # ---- joining mid-shift --------------------------------------------------------------
    def snapshot(self, timeout_s: float = 5.0) -> SnapshotReply:
        """Ask for a snapshot and wait for it (a console starting mid-shift). Other events
        that arrive meanwhile wait for the next ``poll()``. TimeoutError when none comes,
        ``SnapshotRefused`` (a RuntimeError) as soon as the service rejects the request —
        ``rate_limited`` says when to retry."""
        oid = self.send("snapshot")
        deadline = time.monotonic() + timeout_s
        kept: list[tuple] = []
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no snapshot from {self.endpoint} within {timeout_s:g} s")
                for event in self.poll(max(1, int(left * 1000))):
                    if event[0] in ("snapshot", "ack") and event[1] == oid:
                        if isinstance(event[2], Ack):
                            raise SnapshotRefused(event[2].reason)
                        return event[2]
                    if event == ("unconfirmed", oid):
                        raise TimeoutError(f"no snapshot from {self.endpoint}")
                    kept.append(event)
        finally:
            self._pending.pop(oid, None)
            self._queued = kept + self._queued

    @staticmethod
    def follow_from(snapshot_seq: int, src: str = "dispatch") -> FollowFrom:
        """The feed filter to use after a snapshot; see ``FollowFrom``."""
        return FollowFrom(snapshot_seq, src)

    # ---- the rest -------------------------------------------------------------------------
    def status(self) -> dict:
        return {"endpoint": self.endpoint, "mode": self.mode, "pending": len(self._pending),
                **{k: self.counts[k] for k in ("sent", "answered", "resent", "unconfirmed",
                                               "late")},
                "dropped": dict(self.dropped), "secured": self.secured, "role": self.role,
                "districts": self.districts,
                "auth_failed": self._watch.auth_failed if self._watch is not None else 0,
                "acks": self.acks.status(self.counts["unconfirmed"])}

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
        self._sock.close(0)

"""The feed receiver: a thread that subscribes, decodes, validates and counts.

The consumer (the GUI's timer, the headless loop, a test) calls ``drain()`` at its own bounded
rate and gets one ``Batch`` with everything since the last call: never one call per message.
One SUB socket per endpoint, so the console can tell which endpoint has no publisher.
ZeroMQ reconnects a dropped connection by itself; we only set how eagerly.

Nothing a sender does stops the thread: every message is judged under bounds (``feeds.decode``)
and a failure judging one costs that message only (refused as ``internal``, and a fault). If
the thread stops anyway, for any reason, the next ``drain()`` says so in ``faults`` and starts
it again; a thread that keeps dying (``MAX_RESTARTS`` in ``RESTART_WINDOW_S``) is given up on
and the fault is marked fatal. A thread that stops taking turns for ``STALL_S`` is a fault too.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

import zmq

from feeds.batch import Batch, SeqDedup, SeqTracker
from feeds.broker_state import WELCOME
from feeds.bounds import DEFAULT_FUTURE_MS, DEFAULT_MAX_MESSAGE_BYTES
from feeds.crs import GCJ02, OUTSIDE, PROTOCOL_DEFAULT, check_frame, reframe
from feeds.decode import UNKNOWN_SRC, MessageDecoder, Reject
from feeds.endpoints import check_endpoint
from feeds.faults import Faults
from feeds.links import LinkWatch
from feeds.security import ClientKeys, SecurityError, connect_as
from feeds.schema import DEFAULT_MAX_RECORD_BYTES

LOG = logging.getLogger("feeds.receiver")
BURST = 2_000          # messages taken from one socket per pass
HANDOVER_RECORDS = 5_000   # hand over at this many records, or …
HANDOVER_S = 0.01          # … this long after the first one waiting: a drain never gets a lump
RCVHWM = 100_000       # queue depth per socket before ZeroMQ drops (and we see a gap)
MAX_PENDING = 1_000_000    # records not yet drained: past this, stop reading and let
                           # ZeroMQ's queue fill and drop, which the seq check counts as gaps
DEFAULT_MAX_SOURCES = 1_000    # sources whose seq is followed; the rest are not
MAX_RESTARTS = 5           # the thread died this often …
RESTART_WINDOW_S = 60.0    # … within this long: give up (fatal) instead of restarting again
STALL_S = 5.0              # the loop took no turn for this long: a fault
CATCH_UP_AFTER_S = (5.0, 20.0, 60.0)   # a join that fell back asks again after these
BEHIND_S = 5.0             # messages kept waiting (the queue never ran dry) this long: a fault
PASS_S = 0.05              # a pass hands over what it has after this long, whatever is left
THREAD_NAME = "feed-receiver"


class Receiver:
    def __init__(self, endpoints: Iterable[str], *, context: zmq.Context | None = None,
                 max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 now_ms: Callable[[], int] | None = None, future_ms: int = DEFAULT_FUTURE_MS,
                 max_sources: int = DEFAULT_MAX_SOURCES, faults: Faults | None = None,
                 keys: ClientKeys | None = None,
                 allowed_src: dict[str, frozenset[str]] | None = None,
                 tap: Callable[[str, list[bytes], int | None], None] | None = None,
                 state: dict[str, str] | None = None, dedupe: bool | None = None,
                 crs: dict[str, str] | None = None, display_crs: str = GCJ02):
        self.endpoints = [check_endpoint(e) for e in endpoints]
        self.name = " ".join(self.endpoints)
        # Each feed's coordinate frame (the protocol's, GCJ-02, unless configured), and the
        # wall's: records are moved into the wall's frame as they are judged (feeds.crs).
        self.display_crs = check_frame(display_crs)
        self.crs = {ep: check_frame((crs or {}).get(ep, PROTOCOL_DEFAULT))
                    for ep in self.endpoints}
        # feed endpoint → its broker's state endpoint: asked once at start (feeds.state_join)
        self.state = {ep: check_endpoint(st) for ep, st in (state or {}).items()}
        self.keys = keys                 # CURVE: our key pair and each endpoint's server key
        # endpoint → the src ids its publisher may use (feeds.publishers); None: any
        self.allowed_src = allowed_src
        self._ctx = context or zmq.Context.instance()
        self._decoder = MessageDecoder(max_record_bytes, max_message_bytes=max_message_bytes,
                                       now_ms=now_ms, future_ms=future_ms)
        self.max_message_bytes = self._decoder.max_message_bytes
        self._seq = SeqTracker(max_sources)
        # Records that may come by two paths (two brokers, a state and its feed) are applied
        # once: the seq check drops the copies instead of calling them restarts.
        if dedupe is None:
            dedupe = bool(self.state) or len(self.endpoints) > 1
        self._dedup = SeqDedup(max_sources) if dedupe else None
        self._joins: dict[zmq.Socket, object] = {}       # DEALER → StateJoin, while joining
        self._joined_once: set[str] = set()
        # feed → (when, attempt): a join that fell back asks again later, without keeping
        self._catch_ups: dict[str, tuple[float, int]] = {}
        self.join_outcomes: list[dict] = []
        self.faults = faults if faults is not None else Faults()
        self._restarts: list[float] = []
        self._beat = time.monotonic()
        self._stalled = False
        self._behind_since: float | None = None
        self._was_behind = False
        self.given_up = False
        self._pending = Batch()
        self._endpoint_heard: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        # Sees every raw message with its first record's ts (None for a rejected one), on this
        # thread: the recorder. It must not raise.
        self._tap = tap
        self._pending_records = 0
        self.messages = 0
        self.dropped_connections = 0     # connections that dropped (and were connected again)

    def start(self) -> "Receiver":
        self._launch()
        self._ready.wait(5)
        if self._error is not None:
            raise self._error
        return self

    def _launch(self) -> None:
        self._beat = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def check(self) -> bool:
        """Is the thread taking turns? Restart it when it died (a fault either way); give up
        when it keeps dying. Called at every ``drain()``; True when all is well."""
        if self._stop.is_set() or self._thread is None or self.given_up:
            return not self.given_up
        if not self._thread.is_alive():
            now = time.monotonic()
            self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW_S]
            if len(self._restarts) >= MAX_RESTARTS:
                self.given_up = True
                self.faults.record(THREAD_NAME, f"stopped {len(self._restarts) + 1} times in "
                                   f"{RESTART_WINDOW_S:.0f} s; not restarted: the feed is not "
                                   "heard", recovered=False)
                return False
            self._restarts.append(now)
            self.faults.record(THREAD_NAME, f"stopped ({self._death or 'no error given'}); "
                               "restarted")
            self._death = None
            self._launch()
            return True
        now = time.monotonic()
        stalled = now - self._beat > STALL_S
        if stalled and not self._stalled:
            self.faults.record(THREAD_NAME + " stalled",
                               f"no turn for over {STALL_S:.0f} s: the feed is not being read")
        self._stalled = stalled
        since = self._behind_since
        behind = since is not None and now - since > BEHIND_S
        if behind and not self._was_behind:
            self.faults.record(THREAD_NAME + " behind",
                               f"messages waiting for over {BEHIND_S:.0f} s: the wall shows the "
                               "city late (more arrives than the console can judge)")
        self._was_behind = behind
        return not (stalled or behind)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def drain(self) -> tuple[Batch, set[str]]:
        """Everything received since the last call, and the endpoints heard from."""
        self.check()
        with self._lock:
            batch, self._pending = self._pending, Batch()
            heard, self._endpoint_heard = self._endpoint_heard, set()
            self._pending_records = 0
        return batch, heard

    # ---- the source interface (feeds.source) ---------------------------------------------
    def take(self) -> Batch:
        batch, heard = self.drain()
        batch.endpoints |= heard
        return batch

    def health(self) -> dict:
        return {"kind": "zmq", "name": self.name, "up": self.alive() and not self.given_up,
                "endpoints": list(self.endpoints), "messages": self.messages,
                "dropped_connections": self.dropped_connections,
                "frames": {ep: f for ep, f in self.crs.items() if f != self.display_crs}}

    def backlog(self) -> int:
        with self._lock:
            return len(self._pending.records)

    # ---- the thread -------------------------------------------------------------------
    _death: str | None = None

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:       # said by the next check(), which restarts it
            self._death = f"{type(exc).__name__}: {exc}"[:300]
            if self._error is None and not self._ready.is_set():
                self._error = exc
            self._ready.set()
            LOG.error("feed receiver thread stopped: %s", self._death)

    def _loop(self) -> None:
        sockets: dict[zmq.Socket, str] = {}
        monitors: dict[zmq.Socket, LinkWatch] = {}      # monitor socket → its link
        try:
            poller = zmq.Poller()
            for ep in self.endpoints:
                sock = self._ctx.socket(zmq.SUB)
                sock.setsockopt(zmq.RCVHWM, RCVHWM)
                sock.setsockopt(zmq.RECONNECT_IVL, 200)
                sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
                sock.setsockopt(zmq.LINGER, 0)
                # A frame larger than any message may be is never put together: ZeroMQ drops
                # it and the connection (which reconnects; the seq check sees the loss).
                sock.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes + 1024)
                # Everything: topics we do not know are counted, which needs seeing them.
                sock.setsockopt(zmq.SUBSCRIBE, b"")
                server = self._server_key(ep)
                if server is not None:
                    connect_as(sock, self.keys.key, server)
                # Drops and failed handshakes; a link libzmq gave up on is connected again.
                watch = LinkWatch(sock, ep, curve=server is not None)
                sock.connect(ep)
                poller.register(sock, zmq.POLLIN)
                poller.register(watch.monitor, zmq.POLLIN)
                sockets[sock] = ep
                monitors[watch.monitor] = watch
                if ep in self.state and ep not in self._joined_once:
                    join = self._start_join(ep, server)
                    self._joins[join.sock] = join
                    poller.register(join.sock, zmq.POLLIN)
        except BaseException as exc:            # report a bad endpoint to start()
            self._error = exc
            self._ready.set()
            self._close(sockets, monitors, self._joins.values())
            self._joins.clear()
            return
        self._ready.set()
        local = Batch()
        heard: set[str] = set()
        first_at = 0.0
        try:
            while not self._stop.is_set():
                self._beat = time.monotonic()
                if self._pending_records > MAX_PENDING:
                    self._behind(True)              # the consumer is behind: read nothing
                    self._stop.wait(0.01)
                    continue
                waiting = bool(local.messages or local.rejects or heard or local.auth_failed)
                events = dict(poller.poll(1 if waiting else 100))
                for monitor, watch in monitors.items():
                    if monitor in events:
                        failed = watch.take_events()
                        if failed:
                            local.auth_failed[watch.endpoint] += failed
                    if watch.reconnect_if_deaf():
                        self.dropped_connections += 1
                if self._catch_ups:
                    self._start_catch_ups(poller, sockets)
                if self._joins:
                    self._step_joins(events, poller, local)
                pass_started = time.monotonic()
                all_dry = True                    # every socket read until it had no more
                for sock, ep in sockets.items():
                    if sock not in events:
                        continue
                    dry = False
                    for _ in range(BURST):
                        try:
                            frames = sock.recv_multipart(zmq.NOBLOCK, copy=True)
                        except zmq.Again:
                            dry = True
                            break
                        heard.add(ep)             # only a message counts as hearing it
                        if self._joins and self._keep_for_join(ep, frames):
                            continue
                        self._take(frames, local, ep)
                        if (len(local.records) >= HANDOVER_RECORDS
                                or time.monotonic() - pass_started >= PASS_S):
                            break                 # hand over what we have: refusals too
                    all_dry &= dry
                self._behind(not all_dry)
                if not (local.messages or local.rejects or heard or local.auth_failed
                        or local.joins):
                    continue
                now = time.monotonic()
                if not waiting:
                    first_at = now
                if (len(local.records) >= HANDOVER_RECORDS or now - first_at >= HANDOVER_S
                        or not events):
                    with self._lock:
                        self._pending.merge(local)
                        self._pending_records += len(local.records)
                        self._endpoint_heard |= heard
                    local = Batch()
                    heard = set()
        finally:
            for join in self._joins.values():
                if join.kept and not self._stop.is_set():
                    self.faults.record("state join", f"{join.feed}: the receiver stopped while "
                                       f"joining; {len(join.kept)} messages kept meanwhile were "
                                       "lost (the join starts again and asks for the state)")
            self._close(sockets, monitors, self._joins.values())
            self._joins.clear()

    def _behind(self, behind: bool) -> None:
        """Whether the socket queues outran us this pass: ``check()`` says so when it lasts."""
        if not behind:
            self._behind_since = None
        elif self._behind_since is None:
            self._behind_since = time.monotonic()

    @staticmethod
    def _close(sockets, monitors, joins=()) -> None:
        for join in joins:
            join.close()
        for watch in monitors.values():
            watch.close()
        for sock in sockets:
            sock.close(0)

    def _only_allowed(self, decoded, endpoint: str) -> None:
        """Records under a src the endpoint's publisher may not use are refused."""
        allowed = self.allowed_src.get(endpoint, frozenset())
        kept = []
        for rec in decoded.records:
            if rec.src in allowed:
                kept.append(rec)
            else:
                decoded.rejects.append(Reject(rec.src, "src_not_allowed", rec.seq))
        decoded.records = kept

    def _server_key(self, endpoint: str):
        """The server key to connect to ``endpoint`` with, or None for a plain connection
        (no keys given, or an in-process endpoint, which has no handshake)."""
        if self.keys is None or endpoint.startswith("inproc://"):
            return None
        server = self.keys.server_for(endpoint)
        if server is None:
            raise SecurityError(f"no server key for {endpoint}: give --server-key")
        return server

    # ---- joining from a broker's state (feeds.state_join) ------------------------------------
    def _start_join(self, ep: str, server):
        from feeds.state_join import StateJoin
        keys = (self.keys.key, server) if server is not None else None
        return StateJoin(self._ctx, ep, self.state[ep], keys=keys,
                         max_message_bytes=self.max_message_bytes)

    def _start_catch_ups(self, poller, sockets: dict) -> None:
        """A join that fell back (no state in time: a broker far behind a busy stream) asks
        again after a while; the wall follows the feed meanwhile."""
        from feeds.state_join import StateJoin
        now = time.monotonic()
        for feed, (when, attempt) in list(self._catch_ups.items()):
            if now < when:
                continue
            del self._catch_ups[feed]
            server = self._server_key(feed)
            keys = (self.keys.key, server) if server is not None else None
            join = StateJoin(self._ctx, feed, self.state[feed], keys=keys,
                             max_message_bytes=self.max_message_bytes, catch_up=True)
            join.attempt = attempt
            self._joins[join.sock] = join
            poller.register(join.sock, zmq.POLLIN)

    def _keep_for_join(self, ep: str, frames: list[bytes]) -> bool:
        for join in self._joins.values():
            if join.feed == ep:
                return join.take_feed(frames)
        return False

    def _step_joins(self, events: dict, poller, local: Batch) -> None:
        for sock, join in list(self._joins.items()):
            reply = join.take_reply(self._decoder) if sock in events else None
            join.tick()
            if not join.done:
                continue
            if reply is not None and reply.problem is None:
                self._apply_state(reply, local, join.feed)
            for frames in join.take_kept():      # what came while waiting, as the feed
                self._take(frames, local, join.feed)
            outcome = dict(join.outcome or {})
            if outcome.get("outcome") == "fell_back":
                attempt = outcome.get("attempt", 0) + 1
                if attempt <= len(CATCH_UP_AFTER_S):
                    self._catch_ups[join.feed] = (
                        time.monotonic() + CATCH_UP_AFTER_S[attempt - 1], attempt)
            self.join_outcomes.append(outcome)
            del self.join_outcomes[:-20]
            local.joins.append(outcome)
            self._joined_once.add(join.feed)
            poller.unregister(sock)
            join.close()
            del self._joins[sock]

    def _apply_state(self, reply, local: Batch, feed: str) -> None:
        newest: dict[str, int] = dict(reply.newest_ts)
        for rec in reply.records:
            if rec.ts > newest.get(rec.src, -1):
                newest[rec.src] = rec.ts
        records = reply.records
        frame = self.crs.get(feed, PROTOCOL_DEFAULT)
        if frame != self.display_crs:
            records, refused = reframe(records, frame, self.display_crs)
            for rec in refused:
                local.rejects[(rec.src, OUTSIDE)] += 1
        local.loaded.extend(records)
        for (src, reason), n in reply.rejects.items():
            local.rejects[(src, reason)] += n
        if self._dedup is not None:
            self._dedup.floor(reply.seqs, newest)
        else:                                       # cannot happen: a state turns dedupe on
            self._seq.last.update(reply.seqs)

    def _take(self, frames: list[bytes], batch: Batch, endpoint: str) -> None:
        if len(frames) == 1 and frames[0] == WELCOME:
            return              # a broker's welcome (ours, or one passed along a chain)
        self.messages += 1
        batch.messages += 1
        try:
            self._judge(frames, batch, endpoint)
        except Exception as exc:          # a bug costs this message, never the thread
            batch.rejects[(UNKNOWN_SRC, "internal")] += 1
            self.faults.record("feed-receiver message", exc)

    def _judge(self, frames: list[bytes], batch: Batch, endpoint: str) -> None:
        decoded = self._decoder.decode(frames)
        if self._tap is not None:
            self._tap(endpoint, frames, decoded.records[0].ts if decoded.records else None)
        if self.allowed_src is not None:
            self._only_allowed(decoded, endpoint)
        frame = self.crs.get(endpoint, PROTOCOL_DEFAULT)
        if frame != self.display_crs and decoded.records:
            decoded.records, refused = reframe(decoded.records, frame, self.display_crs)
            for rec in refused:
                batch.rejects[(rec.src, OUTSIDE)] += 1
                batch.heard.add(rec.src)
        for rej in decoded.rejects:
            if rej.reason == "internal":
                self.faults.record("feed decoder", rej.detail or "a message it could not judge")
            batch.rejects[(rej.src, rej.reason)] += rej.count
            batch.heard.add(rej.src)
        if self._dedup is not None:
            batch.records.extend(self._deduped(decoded, batch))
            return
        observe = self._seq.observe
        for src, seq in decoded.seqs:
            observe(src, seq, batch)
        batch.records.extend(decoded.records)

    def _deduped(self, decoded, batch: Batch) -> list:
        """The message's records not already applied. ``decoded.seqs`` lists every record
        (refused ones too) in order; the records kept are among them in the same order."""
        judge = self._dedup.judge
        records = decoded.records
        kept = []
        i = 0
        for src, seq in decoded.seqs:
            rec = records[i] if i < len(records) else None
            if rec is not None and rec.src == src and rec.seq == seq:
                i += 1
                if judge(src, seq, rec.ts, batch):
                    kept.append(rec)
            else:
                judge(src, seq, None, batch)
        kept.extend(records[i:])            # (none: every record has its seq listed)
        return kept


def wait_for(predicate: Callable[[], bool], timeout_s: float, step_s: float = 0.01) -> bool:
    """Poll ``predicate`` until it holds or the timeout passes (tests and start-up only)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return predicate()

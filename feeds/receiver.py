"""The feed receiver: a thread that subscribes, decodes, validates and counts.

The consumer (the GUI's timer, the headless loop, a test) calls ``drain()`` at its own bounded
rate and gets one ``Batch`` with everything since the last call: never one call per message.
One SUB socket per endpoint, so the console can tell which endpoint has no publisher.
ZeroMQ reconnects a dropped connection by itself; we only set how eagerly.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

import zmq

from feeds.batch import Batch, SeqTracker
from feeds.decode import MessageDecoder
from feeds.endpoints import check_endpoint
from feeds.schema import DEFAULT_MAX_RECORD_BYTES

BURST = 2_000          # messages taken from one socket per pass
HANDOVER_RECORDS = 5_000   # hand over at this many records, or …
HANDOVER_S = 0.01          # … this long after the first one waiting: a drain never gets a lump
RCVHWM = 100_000       # queue depth per socket before ZeroMQ drops (and we see a gap)
MAX_PENDING = 1_000_000    # records not yet drained: past this, stop reading and let
                           # ZeroMQ's queue fill and drop, which the seq check counts as gaps


class Receiver:
    def __init__(self, endpoints: Iterable[str], *, context: zmq.Context | None = None,
                 max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
                 tap: Callable[[str, list[bytes], int | None], None] | None = None):
        self.endpoints = [check_endpoint(e) for e in endpoints]
        self._ctx = context or zmq.Context.instance()
        self._decoder = MessageDecoder(max_record_bytes)
        self._seq = SeqTracker()
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

    def start(self) -> "Receiver":
        self._thread = threading.Thread(target=self._run, name="feed-receiver", daemon=True)
        self._thread.start()
        self._ready.wait(5)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def drain(self) -> tuple[Batch, set[str]]:
        """Everything received since the last call, and the endpoints heard from."""
        with self._lock:
            batch, self._pending = self._pending, Batch()
            heard, self._endpoint_heard = self._endpoint_heard, set()
            self._pending_records = 0
        return batch, heard

    def backlog(self) -> int:
        with self._lock:
            return len(self._pending.records)

    # ---- the thread -------------------------------------------------------------------
    def _run(self) -> None:
        sockets: dict[zmq.Socket, str] = {}
        try:
            poller = zmq.Poller()
            for ep in self.endpoints:
                sock = self._ctx.socket(zmq.SUB)
                sock.setsockopt(zmq.RCVHWM, RCVHWM)
                sock.setsockopt(zmq.RECONNECT_IVL, 200)
                sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
                sock.setsockopt(zmq.LINGER, 0)
                # Everything: topics we do not know are counted, which needs seeing them.
                sock.setsockopt(zmq.SUBSCRIBE, b"")
                sock.connect(ep)
                poller.register(sock, zmq.POLLIN)
                sockets[sock] = ep
        except BaseException as exc:            # report a bad endpoint to start()
            self._error = exc
            self._ready.set()
            for s in sockets:
                s.close(0)
            return
        self._ready.set()
        local = Batch()
        heard: set[str] = set()
        first_at = 0.0
        try:
            while not self._stop.is_set():
                if self._pending_records > MAX_PENDING:
                    self._stop.wait(0.01)          # the consumer is behind: read nothing
                    continue
                waiting = bool(local.messages or local.rejects or heard)
                events = dict(poller.poll(1 if waiting else 100))
                for sock, ep in sockets.items():
                    if sock not in events:
                        continue
                    for _ in range(BURST):
                        try:
                            frames = sock.recv_multipart(zmq.NOBLOCK, copy=True)
                        except zmq.Again:
                            break
                        heard.add(ep)             # only a message counts as hearing it
                        self._take(frames, local, ep)
                        if len(local.records) >= HANDOVER_RECORDS:
                            break
                if not (local.messages or local.rejects or heard):
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
            for s in sockets:
                s.close(0)

    def _take(self, frames: list[bytes], batch: Batch, endpoint: str) -> None:
        self.messages += 1
        batch.messages += 1
        decoded = self._decoder.decode(frames)
        if self._tap is not None:
            self._tap(endpoint, frames, decoded.records[0].ts if decoded.records else None)
        for rej in decoded.rejects:
            batch.rejects[(rej.src, rej.reason)] += 1
            batch.heard.add(rej.src)
        observe = self._seq.observe
        for src, seq in decoded.seqs:
            observe(src, seq, batch)
        batch.records.extend(decoded.records)


def wait_for(predicate: Callable[[], bool], timeout_s: float, step_s: float = 0.01) -> bool:
    """Poll ``predicate`` until it holds or the timeout passes (tests and start-up only)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return predicate()

"""The broker's state service: who may ask, when an answer is due, and sending it.

A wall asks on ``--state`` (a ROUTER) after its subscription is live. Its answer must hold
everything the proxy forwarded before it asked — so the request is put aside with the count of
frames the proxy had taken in from the publishers at that moment (its STATISTICS), and is
answered once the state has taken in as many from its own subscription. Meanwhile the state
thread goes on absorbing, ticking and answering others: a state far behind a busy stream
delays that one answer, never the thread. An answer still not due after ``DUE_S`` (the
state's subscription lost messages at its high-water mark, so the count is never reached) is
sent as it is and counted (``answered_behind``): the wall sees the gap by ``seq``.

Asking is limited per wall (its key; without keys its address, so connecting again does not
make it new) and for all walls together; at most ``MAX_PENDING`` requests wait, and at most two
answers wait unread for one wall (the ROUTER's high-water mark): past that an answer is
dropped and counted. No Qt; used on the broker's state thread only.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass

import zmq

from feeds.broker_state import STATE_TAG, BrokerState, parse_request
from feeds.dispatch_snapshots import RateLimit

STATE_PER_MINUTE = 30.0         # state requests a wall may make: sustained …
STATE_BURST = 5                 # … and at once
STATE_ALL_PER_MINUTE = 240.0    # all walls together: sustained …
STATE_ALL_BURST = 20            # … and at once
MAX_PENDING = 64                # requests waiting for the state to catch up
DUE_S = 3.0                     # an answer is sent at the latest this long after its request
RETRY_MS = 200                  # "not ready" while a chained broker rebuilds its state


@dataclass
class _Waiting:
    ident: bytes
    req: str | int | None
    frames: int                 # the proxy's frames taken in when the wall asked
    due: float


class StateAnswers:
    def __init__(self):
        self.per_wall = RateLimit(STATE_PER_MINUTE, STATE_BURST)
        self.everyone = RateLimit(STATE_ALL_PER_MINUTE, STATE_ALL_BURST)
        self.waiting: list[_Waiting] = []
        self.requests = 0               # answered with the state
        self.not_ready = 0              # answered "not ready" (rebuilding)
        self.answered_behind = 0        # answered before the state had caught up
        self.refused: Counter = Counter()
        self.wait_s_max = 0.0           # the longest an answer waited for the state, lately

    def take(self, router: zmq.Socket, rebuilding: bool, proxy_frames) -> None:
        """Read the requests that came; ``proxy_frames()``: the proxy's frames taken in now."""
        for _ in range(100):
            try:
                frames = router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            ident = frames[0].bytes
            req = parse_request(frames[1].bytes) if len(frames) == 2 else None
            if req is None:
                self.refused["bad_request"] += 1
                self._send(router, [ident, STATE_TAG, json.dumps(
                    {"v": 1, "type": "error", "reason": "bad_request"}).encode()])
                continue
            wait = (self.per_wall.take([_caller(frames[-1], ident)])
                    or self.everyone.take(["all"]))
            if wait > 0 or len(self.waiting) >= MAX_PENDING:
                self.refused["rate_limited"] += 1
                self._send(router, [ident, *BrokerState.not_ready(
                    req.req, int(min(wait or 1.0, 60) * 1000) + 100)])
                continue
            if rebuilding:
                self.not_ready += 1
                self._send(router, [ident, *BrokerState.not_ready(req.req, RETRY_MS)])
                continue
            self.waiting.append(_Waiting(ident, req.req, proxy_frames(),
                                         time.monotonic() + DUE_S))

    def answer_due(self, router: zmq.Socket, frames_seen: int, reply) -> None:
        """Answer every waiting request the state has caught up with (or whose time is up);
        ``reply(req)`` puts the answer together from the state as it is now."""
        if not self.waiting:
            return
        now = time.monotonic()
        still = []
        for w in self.waiting:
            if frames_seen >= w.frames or now >= w.due:
                if frames_seen < w.frames:
                    self.answered_behind += 1
                self.requests += 1
                self.wait_s_max = max(self.wait_s_max, now - (w.due - DUE_S))
                self._send(router, [w.ident, *reply(w.req)])
            else:
                still.append(w)
        self.waiting = still

    def _send(self, router: zmq.Socket, frames: list) -> None:
        try:
            router.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self.refused["reply_dropped_unread"] += 1
        except zmq.ZMQError:                    # EHOSTUNREACH: disconnected meanwhile
            self.refused["reply_dropped_gone"] += 1

    def status(self) -> dict:
        return {"state_requests": self.requests, "state_not_ready": self.not_ready,
                "state_answered_behind": self.answered_behind,
                "state_waiting": len(self.waiting),
                "state_answer_wait_s_max": round(self.wait_s_max, 3),
                "state_refused": dict(self.refused)}


def _caller(frame, ident: bytes):
    """Who asks: the key's name when the broker is secured (ZAP's User-Id); without keys the
    peer's address, so a wall cannot make itself new by connecting again."""
    for prop in ("User-Id", "Peer-Address"):
        try:
            value = frame.get(prop)
        except zmq.ZMQError:
            continue
        if value:
            return (prop, value)
    return ("identity", ident)

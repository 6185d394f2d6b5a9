"""A wall joining a broker's feed late: ask the broker's state once, then follow the feed.

The ZeroMQ guide's Clone pattern, seen from the wall (``feeds.broker`` is the other side):

1. subscribe to the broker's ``--out`` and keep what arrives, unapplied;
2. when the broker's welcome arrives (the subscription is in place: everything forwarded from
   now on reaches us), ask ``--state`` for the current state;
3. apply the state, then what was kept and everything after it, dropping every record at or
   below the state's ``seq`` for its source (``feeds.batch.SeqDedup``): no gap, no double.

A reply that cannot be used — not a state reply, a header that does not parse, more sources
than the wall follows, nothing within ``JOIN_TIMEOUT_S`` — is refused, counted, and the wall
carries on with the live feed (what was kept is applied as the feed). "Not ready" (a chained
broker rebuilding its own state) is asked again after the delay it names. The records inside
a reply are judged like any feed message (``feeds.decode``): a bad one costs itself only.
No Qt; used on the receiver's thread.
"""
from __future__ import annotations

import itertools
import time
from collections import Counter
from dataclasses import dataclass, field

import msgspec
import zmq

from feeds.bounds import valid_id
from feeds.broker_state import BATCH_RECORDS, STATE_TAG, WELCOME, request
from feeds.decode import MessageDecoder
from feeds.schema import Record

JOIN_TIMEOUT_S = 5.0            # from connecting to having the state: past it, live feed only
MAX_KEPT_MESSAGES = 200_000     # messages kept while waiting …
MAX_KEPT_BYTES = 256 << 20      # … and their bytes; past either, live feed only
MAX_HEADER_BYTES = 1 << 20
MAX_STATE_RECORDS = 600_000     # a state larger than a wall may hold (cases, units, sensors)
MAX_REPLY_FRAMES = 2 + 2 * (MAX_STATE_RECORDS // BATCH_RECORDS)
MAX_REPLY_BYTES = 1 << 30       # read no further than this (the frames past it are dropped)
MAX_SOURCES = 100_000
_ids = itertools.count(1)


class _Header(msgspec.Struct, kw_only=True):
    v: int
    type: str
    req: str | int | None = None
    ready: bool = True
    retry_ms: int | None = None
    reason: str | None = None
    seqs: dict[str, int] = {}
    ts: dict[str, int] = {}             # src → the newest ts the state has heard


_header = msgspec.json.Decoder(_Header)


@dataclass
class StateReply:
    problem: str | None = None          # why the reply is refused (None: it is used)
    retry_ms: int | None = None         # not ready: ask again this much later
    records: list[Record] = field(default_factory=list)
    seqs: dict[str, int] = field(default_factory=dict)
    newest_ts: dict[str, int] = field(default_factory=dict)
    rejects: Counter = field(default_factory=Counter)    # (src, reason) of records refused


def judge_state_reply(frames: list[bytes], decoder: MessageDecoder) -> StateReply:
    """A broker's state reply, judged: never raises."""
    if not frames or bytes(frames[0]) != STATE_TAG or len(frames) < 2:
        return StateReply(problem="not a state reply")
    if len(frames) % 2 or len(frames) > MAX_REPLY_FRAMES:
        return StateReply(problem=f"{len(frames)} frames")
    if len(frames[1]) > MAX_HEADER_BYTES:
        return StateReply(problem="header too large")
    try:
        head = _header.decode(frames[1])
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as exc:
        return StateReply(problem=f"header: {str(exc)[:80]}")
    if head.v != 1:
        return StateReply(problem=f"version {head.v}")
    if head.type == "error":
        return StateReply(problem=f"refused by the broker: {(head.reason or '?')[:80]}")
    if head.type != "state":
        return StateReply(problem=f"type {head.type[:40]!r}")
    if not head.ready:
        return StateReply(retry_ms=min(max(int(head.retry_ms or 200), 50), 5_000))
    if len(head.seqs) > MAX_SOURCES:
        return StateReply(problem=f"{len(head.seqs)} sources")
    for src, seq in head.seqs.items():
        if not valid_id(src) or not 0 <= seq < 2**63:
            return StateReply(problem="a source's seq that cannot be")
    if len(head.ts) > MAX_SOURCES or any(not valid_id(k) for k in head.ts):
        return StateReply(problem="a source's ts that cannot be")
    out = StateReply(seqs=dict(head.seqs), newest_ts=dict(head.ts))
    for i in range(2, len(frames), 2):
        decoded = decoder.decode([frames[i], frames[i + 1]])
        if len(decoded.records) + sum(r.count for r in decoded.rejects) > BATCH_RECORDS:
            return StateReply(problem=f"a batch of more than {BATCH_RECORDS} records")
        out.records.extend(decoded.records)
        if len(out.records) > MAX_STATE_RECORDS:
            return StateReply(problem=f"more than {MAX_STATE_RECORDS} records")
        for rej in decoded.rejects:
            out.rejects[(rej.src, rej.reason)] += rej.count
    if out.rejects and not out.records:
        return StateReply(problem=f"every record refused ({sum(out.rejects.values())}: "
                                  f"{', '.join(sorted({r for _, r in out.rejects}))[:80]})")
    return out


class StateJoin:
    """One feed endpoint's join: its DEALER to the broker's state, and what was kept."""

    def __init__(self, context: zmq.Context, feed: str, state: str, *, keys=None,
                 max_message_bytes: int, timeout_s: float | None = None,
                 catch_up: bool = False):
        self.feed, self.state = feed, state
        # A catch-up (after a join that fell back): the wall already follows the feed, so
        # nothing is kept; the state only fills in what it lacks.
        self.catch_up = catch_up
        self.sock = context.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        # Each frame of a reply is one feed message at most (the records' batches).
        self.sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes + 1024)
        if keys is not None:
            from feeds.security import connect_as
            connect_as(self.sock, keys[0], keys[1])
        self.sock.connect(state)
        self.kept: list[list[bytes]] = []
        self.kept_bytes = 0
        self.started = time.monotonic()
        self.deadline = self.started + (JOIN_TIMEOUT_S if timeout_s is None else timeout_s)
        self.asked_at: float | None = None
        self.retry_at: float | None = None
        self.req = next(_ids)
        self.done = False
        self.outcome: dict | None = None
        self.attempt = 0                # 0: the join; 1, 2, …: the catch-ups after it
        if catch_up:
            self._ask()

    # what the receiver calls
    def take_feed(self, frames: list[bytes]) -> bool:
        """A message from the feed while joining: kept (True), or not ours to keep (False)."""
        if self.done or self.catch_up:
            return False
        if len(frames) == 1 and frames[0] == WELCOME:
            if self.asked_at is None:
                self._ask()
            return True
        self.kept.append(frames)
        self.kept_bytes += sum(len(f) for f in frames)
        if len(self.kept) > MAX_KEPT_MESSAGES or self.kept_bytes > MAX_KEPT_BYTES:
            self._end("fell_back", f"{len(self.kept)} messages ({self.kept_bytes >> 20} MiB) "
                                   "arrived while waiting")
        return True

    def take_reply(self, decoder: MessageDecoder) -> StateReply | None:
        """The broker's answer, when it came: a reply to use (or refused), or None."""
        got = self._receive()
        if got is None:
            return None
        frames, whole = got
        if self.done:
            return None                         # a late answer after we gave up
        reply = (judge_state_reply(frames, decoder) if whole else StateReply(
            problem=f"a reply over {MAX_REPLY_FRAMES} frames or {MAX_REPLY_BYTES >> 20} MiB"))
        if reply.retry_ms is not None:
            self.retry_at = time.monotonic() + reply.retry_ms / 1000
            return None
        if reply.problem is not None:
            self._end("refused", reply.problem)
        else:
            self._end("caught_up" if self.catch_up else "joined", None,
                      records=len(reply.records), sources=len(reply.seqs))
        return reply

    def tick(self) -> None:
        now = time.monotonic()
        if self.done:
            return
        if self.retry_at is not None and now >= self.retry_at:
            self.retry_at = None
            self._ask()
        if now > self.deadline:
            self._end("fell_back", f"no state within {self.deadline - self.started:.0f} s")

    def _receive(self) -> tuple[list[bytes], bool] | None:
        """One reply, read frame by frame, and whether it was within ``MAX_REPLY_FRAMES`` and
        ``MAX_REPLY_BYTES`` (past them the rest is read and dropped, never kept)."""
        try:
            first = self.sock.recv(zmq.NOBLOCK)
        except zmq.Again:
            return None
        frames, size, whole = [first], len(first), True
        while self.sock.getsockopt(zmq.RCVMORE):
            frame = self.sock.recv()
            if whole and len(frames) < MAX_REPLY_FRAMES and size + len(frame) <= MAX_REPLY_BYTES:
                frames.append(frame)
                size += len(frame)
            else:
                whole = False
                frames = []
        return frames, whole

    def take_kept(self) -> list[list[bytes]]:
        kept, self.kept = self.kept, []
        return kept

    def close(self) -> None:
        self.sock.close(0)

    def _ask(self) -> None:
        self.asked_at = time.monotonic()
        try:
            self.sock.send(request(self.req), zmq.NOBLOCK)
        except zmq.Again:
            self.retry_at = time.monotonic() + 0.2

    def _end(self, outcome: str, problem: str | None, **more) -> None:
        self.done = True
        self.outcome = {"endpoint": self.feed, "state": self.state, "outcome": outcome,
                        "problem": problem, "kept": len(self.kept), "attempt": self.attempt,
                        "seconds": round(time.monotonic() - self.started, 3), **more}

"""Snapshots from the dispatch service: who may ask how often, and the answer encoded once.

A ``snapshot`` order costs the service the whole picture, so it is the one order a client
could use to load it. Two things keep that cheap:

- ``RateLimit``: token buckets per client — the connection (ROUTER identity), and when the
  service is secured the key that sent it too; never the ``console`` an order names, which
  anyone can claim (naming another console must not spend its budget) —
  ``DEFAULT_SNAPSHOTS_PER_MINUTE`` sustained and ``DEFAULT_SNAPSHOT_BURST`` at once, in a
  table of at most ``MAX_CLIENTS`` buckets (least recently used forgotten first), so made-up
  clients cannot grow it;
- ``SnapshotAnswers`` (a mixin of ``DispatchService``): the picture is encoded once per
  version and seq of it, and only the ``order_id`` is put in front per request. A snapshot
  larger than ``max_snapshot_bytes`` is refused, not sent — and not put together either: its
  size is known from the encoded picture before anything is copied, so a refusal costs no
  copy of the picture; a picture found too large is not encoded again for a refusal within
  ``TOO_LARGE_RECHECK_S``, however often it changes. It works on the service's ``cases``,
  ``units``, ``seq``, ``_version``, ``_snapshot_cache``, ``_snapshot_limit`` and counters,
  and answers through its ``_ack``, ``_reply`` and ``_fault``.
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable

import msgspec

from feeds.orders import SnapshotOrder, bad_order, reason
from feeds.roles import UNCHECKED, Caller
from feeds.schema import CLOSED_CASE_STATUSES

# Snapshots a client may ask for: this many a minute, this many at once.
DEFAULT_SNAPSHOTS_PER_MINUTE = 6.0
DEFAULT_SNAPSHOT_BURST = 3
MAX_CLIENTS = 10_000              # rate-limit buckets kept (least recently used go first)
# A picture encoded too large stays refused this long without being encoded again (while the
# sources move it, each change would otherwise cost a refusal a whole new encoding).
TOO_LARGE_RECHECK_S = 1.0
_HEAD = b'{"type":"snapshot","v":1,"order_id":'

_enc = msgspec.json.Encoder()


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


class SnapshotAnswers:
    """The snapshot half of ``DispatchService``: a mixin, no state of its own."""

    def _rate_limited(self, envelope: list[bytes], order: SnapshotOrder, wait_s: float,
                      outbox: list) -> None:
        self.rejected["rate_limited"] += 1
        limit = (f"{self._snapshot_limit.per_s * 60:g} a minute, "
                 f"{self._snapshot_limit.burst} at once")
        outbox.append((envelope, None, self._ack(order.order_id, reason(
            "rate_limited", what="snapshot", limit=limit,
            retry_s=max(1, math.ceil(min(wait_s, 86_400.0)))))))


    def _answer_snapshot(self, envelope: list[bytes], order: SnapshotOrder,
                         caller: Caller = UNCHECKED) -> None:
        try:
            reply = self._snapshot(order.order_id, caller)
            if isinstance(reply, int):           # too large: its size, nothing put together
                self.rejected["snapshot_too_large"] += 1
                reply = self._ack(order.order_id, reason(
                    "snapshot_too_large", size=reply, limit=self.max_snapshot_bytes))
            else:
                self.counts["snapshots"] += 1
        except Exception as exc:                 # this snapshot only
            self._fault("snapshot", exc)
            self.rejected["bad_order"] += 1
            self.bad_orders["internal"] += 1
            reply = self._ack(order.order_id, bad_order("internal"))
        self._reply(envelope, reply)

    def _snapshot(self, order_id: str, caller: Caller = UNCHECKED) -> bytes | int:
        """The snapshot reply: the picture is encoded once for each version and seq of it,
        and only the ``order_id`` — and, when the service is secured, the asking key's
        ``role`` and ``districts`` — is put in front per request. Larger than
        ``max_snapshot_bytes``: its size (an int) instead, found before anything is copied."""
        body = self._snapshot_body()
        head = _HEAD + _enc.encode(order_id) + b","
        if len(head) + len(body) - 1 > self.max_snapshot_bytes:
            return len(head) + len(body) - 1     # too large without even the role's fields
        head += self._identity_fields(caller)
        size = len(head) + len(body) - 1
        if size > self.max_snapshot_bytes:
            return size
        return b"".join((head, memoryview(body)[1:]))      # one copy of the picture

    def _snapshot_body(self) -> bytes:
        """The picture as JSON (an object whose first byte is put after the head), encoded
        once per version and seq; one found too large is kept for a refusal for
        ``TOO_LARGE_RECHECK_S`` whatever changes meanwhile."""
        key = (self._version, self.seq)
        cache = self._snapshot_cache
        mono = time.monotonic()
        if cache is not None and (cache[0] == key or (
                len(cache[1]) > self.max_snapshot_bytes
                and mono - cache[2] < TOO_LARGE_RECHECK_S)):
            return cache[1]
        body = _enc.encode({
            "src": self.src, "seq": self.seq,
            "cases": [c for _, c in sorted(self.cases.items())
                      if c.status not in CLOSED_CASE_STATUSES],
            "units": [u for _, u in sorted(self.units.items())]})
        self._snapshot_cache = (key, body, mono)
        self.counts["snapshot_encodes"] += 1
        return body

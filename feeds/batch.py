"""What the receiver hands the situation: everything that arrived since the last hand-off.

Also the per-source ``seq`` bookkeeping (gaps and restarts), which must see every message in
arrival order, rejected ones included, so it runs where messages are decoded.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from feeds.schema import Record


@dataclass
class Batch:
    records: list[Record] = field(default_factory=list)
    rejects: Counter = field(default_factory=Counter)        # (src, reason) → count
    gaps: list[tuple[str, int, int]] = field(default_factory=list)      # src, expected, got
    restarts: list[tuple[str, int, int]] = field(default_factory=list)  # src, last, got
    heard: set[str] = field(default_factory=set)              # every src a message came from
    last_seq: dict[str, int] = field(default_factory=dict)
    messages: int = 0
    auth_failed: Counter = field(default_factory=Counter)     # endpoint → handshakes refused
    # Two paths to the same records (two brokers; a broker's state and its feed):
    filled: Counter = field(default_factory=Counter)  # src → records a gap missed, come late
    duplicates: int = 0                               # records already applied, dropped
    loaded: list[Record] = field(default_factory=list)   # a broker's state (not "heard")
    joins: list[dict] = field(default_factory=list)   # state joins that ended (feeds.state_join)
    endpoints: set[str] = field(default_factory=set)  # links heard (feed endpoints, MQTT URLs)
    # A source that rebuilt the situation itself (a replay's seek or loop): the ids held before
    # or after, so every panel redraws them (cases, units, sensors).
    rebuilt: tuple[set, set, set] | None = None

    def __len__(self) -> int:
        return len(self.records)

    def merge(self, other: "Batch") -> None:
        self.records.extend(other.records)
        self.rejects.update(other.rejects)
        self.gaps.extend(other.gaps)
        self.restarts.extend(other.restarts)
        self.heard |= other.heard
        self.last_seq.update(other.last_seq)
        self.messages += other.messages
        self.auth_failed.update(other.auth_failed)
        self.filled.update(other.filled)
        self.duplicates += other.duplicates
        self.loaded.extend(other.loaded)
        self.joins.extend(other.joins)
        self.endpoints |= other.endpoints
        if other.rebuilt is not None:
            mine = self.rebuilt or (set(), set(), set())
            self.rebuilt = tuple(a | b for a, b in zip(mine, other.rebuilt))


class SeqTracker:
    """Per-``src`` sequence check: a jump forward is a gap, a fall is a publisher restart.

    Follows at most ``max_sources`` sources (the first heard): a flood of made-up ``src``
    values cannot grow it without bound."""

    def __init__(self, max_sources: int = 1_000):
        self.last: dict[str, int] = {}
        self.max_sources = max_sources

    def observe(self, src: str, seq: int, batch: Batch) -> None:
        last = self.last.get(src)
        if last is None and len(self.last) >= self.max_sources:
            return
        if last is not None:
            if seq > last + 1:
                batch.gaps.append((src, last + 1, seq))
            elif seq < last:
                batch.restarts.append((src, last, seq))
            elif seq == last:
                return                      # a repeat of the same record; nothing moves
        self.last[src] = seq
        batch.last_seq[src] = seq


HOLES_MAX = 10_000          # a jump at most this long is remembered (a late copy fills it) …
HOLE_RANGES_MAX = 64        # … in at most this many runs of missing seqs per source


class SeqDedup:
    """Per-``src`` sequence check for a wall that gets the same records by more than one path
    — two brokers for redundancy, or a broker's state and then its feed: a record is applied
    once, whichever path brings it first.

    A ``seq`` past the last is new (a jump is a gap; a jump of at most ``HOLES_MAX`` is
    remembered as a run of missing seqs, at most ``HOLE_RANGES_MAX`` runs a source, the
    oldest forgotten first). One at or below the last is a late copy filling a gap when that
    seq is missing; a publisher restart when its ``ts`` is newer than anything heard from the
    source (a copy of a record already applied is never newer than it); otherwise a copy,
    dropped and counted. After a restart, a record older than the restart (a lagging path's
    copy from before it) is a copy too, whatever its seq. Follows at most ``max_sources``
    sources: its memory is bounded by sources × runs, whatever the seqs do."""

    def __init__(self, max_sources: int = 1_000):
        self.last: dict[str, int] = {}
        self.last_ts: dict[str, int] = {}
        self.holes: dict[str, list[list[int]]] = {}     # src → runs [first, end) of missing
        self.epoch: dict[str, int] = {}                 # src → ts of its last restart
        self.max_sources = max_sources

    def floor(self, seqs: dict[str, int], newest_ts: dict[str, int]) -> None:
        """A state was applied that holds every record up to ``seqs`` (and nothing from a
        source newer than ``newest_ts``): nothing at or below them is new."""
        for src, seq in seqs.items():
            if src not in self.last and len(self.last) >= self.max_sources:
                continue
            if seq >= self.last.get(src, -1):
                self.last[src] = seq
                runs = self.holes.get(src)
                if runs:
                    self.holes[src] = [[max(a, seq + 1), b] for a, b in runs if b > seq + 1]
            self.last_ts[src] = max(self.last_ts.get(src, -1), newest_ts.get(src, -1))

    def judge(self, src: str, seq: int, ts: int | None, batch: Batch) -> bool:
        """Whether the record (``ts`` None: one the decoder refused) is to be taken."""
        last = self.last.get(src)
        if last is None:
            if len(self.last) >= self.max_sources:
                return True
            self._move(src, seq, ts, batch)
            return True
        epoch = self.epoch.get(src)
        if epoch is not None and ts is not None and ts < epoch:
            batch.duplicates += 1           # from before the source restarted: a late copy
            return False
        if seq > last:
            if seq > last + 1:
                batch.gaps.append((src, last + 1, seq))
                self._remember(src, last + 1, seq)
            self._move(src, seq, ts, batch)
            return True
        if self._fill(src, seq):
            batch.filled[src] += 1
            if ts is not None and ts > self.last_ts.get(src, -1):
                self.last_ts[src] = ts
            return True
        if ts is not None and ts > self.last_ts.get(src, -1) and seq < last:
            batch.restarts.append((src, last, seq))
            self.holes.pop(src, None)
            self.epoch[src] = ts
            self._move(src, seq, ts, batch)
            return True
        batch.duplicates += 1
        return False

    def _move(self, src: str, seq: int, ts: int | None, batch: Batch) -> None:
        self.last[src] = seq
        batch.last_seq[src] = seq
        if ts is not None and ts > self.last_ts.get(src, -1):
            self.last_ts[src] = ts

    def _remember(self, src: str, first: int, end: int) -> None:
        if end - first > HOLES_MAX:
            return                          # a jump that long is a loss, not a lag
        runs = self.holes.setdefault(src, [])
        runs.append([first, end])
        if len(runs) > HOLE_RANGES_MAX:
            del runs[0]

    def _fill(self, src: str, seq: int) -> bool:
        runs = self.holes.get(src)
        if not runs:
            return False
        for i, (a, b) in enumerate(runs):
            if a <= seq < b:
                if b - a == 1:
                    del runs[i]
                elif seq == a:
                    runs[i][0] = a + 1
                elif seq == b - 1:
                    runs[i][1] = b - 1
                else:
                    runs[i:i + 1] = [[a, seq], [seq + 1, b]]
                    if len(runs) > HOLE_RANGES_MAX:
                        del runs[0]
                return True
        return False

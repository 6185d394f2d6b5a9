"""Feed health per source (``src``): what each publisher sent, lost and had refused.

Bounded: at most ``max_sources`` sources are followed, the first heard; records and refusals
from any other are counted together (``overflow``), so 200,000 made-up ``src`` values cost a
counter, not 200,000 entries. No Qt.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from feeds.batch import Batch

RATE_WINDOW_MS = 5_000


@dataclass
class SourceHealth:
    src: str
    first_heard: int
    last_heard: int
    last_seq: int | None = None
    records: int = 0
    gaps: int = 0
    missed: int = 0            # records missing in the gaps (only ever grows: a counter)
    filled: int = 0            # of those, come late by another path (a second broker)

    @property
    def lost(self) -> int:
        """Records missed and never come by any path."""
        return max(0, self.missed - self.filled)
    restarts: int = 0
    rejected: Counter = field(default_factory=Counter)
    announced_rate: float | None = None
    _recent: deque = field(default_factory=deque)   # (clock ms, records) for the rate

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


class Sources(dict):
    """``src`` → ``SourceHealth``, for at most ``max_sources`` sources. ``overflow`` counts
    what came from the others: ``records`` and ``rejected`` (all reasons together)."""

    def __init__(self, max_sources: int = 1_000):
        super().__init__()
        self.max_sources = max_sources
        self.overflow: Counter = Counter()

    def follow(self, src: str, now: int) -> SourceHealth | None:
        """The source's entry, made on first hearing while there is room; None past the cap."""
        health = self.get(src)
        if health is None:
            if len(self) >= self.max_sources:
                return None
            health = self[src] = SourceHealth(src, now, now)
        return health

    def account(self, batch: Batch, now: int, unknown_src: str) -> None:
        """Per-source counts of one batch; ``now`` is link time (``Clock.link_ms``)."""
        per_src = Counter(rec.src for rec in batch.records)
        for src in batch.heard | set(per_src):
            if src != unknown_src:
                health = self.follow(src, now)
                if health is not None:
                    health.last_heard = now
        for src, n in per_src.items():
            health = self.get(src)
            if health is None:
                self.overflow["records"] += n
                continue
            health.records += n
            recent = health._recent
            recent.append((now, n))
            while now - recent[0][0] > RATE_WINDOW_MS:       # bounded without a reader too
                recent.popleft()
        for (src, reason), n in batch.rejects.items():
            health = self.follow(src, now)
            if health is None:
                self.overflow["rejected"] += n
            else:
                health.rejected[reason] += n
        for src, expected, got in batch.gaps:
            health = self.follow(src, now)
            if health is not None:
                health.gaps += 1
                health.missed += got - expected
        for src, n in batch.filled.items():       # a gap's records come by another path
            health = self.get(src)
            if health is not None:
                health.filled += n
        for src, _last, _got in batch.restarts:
            health = self.follow(src, now)
            if health is not None:
                health.restarts += 1
        for src, seq in batch.last_seq.items():
            health = self.get(src)
            if health is not None:
                health.last_seq = seq

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

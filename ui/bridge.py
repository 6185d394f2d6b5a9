"""The hand-off from the feed to Qt: the only place the receiver meets the GUI thread.

A timer takes from every source (``feeds.source``) at a bounded rate (every ``interval_ms``, 50 ms: half the
latency budget of 100 ms), applies the batch to
the situation and emits one ``changed`` signal per drain, never one per message. A slower
``tick`` drives what moves with the clock alone (countdowns, the clock, staleness).
"""
from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer, Signal

from feeds.metrics import DrainFigures
from feeds.source import take_all
from feeds.startup import STARTUP
from situation.store import Change, Situation


class SituationBridge(QObject):
    changed = Signal(object)      # a situation.store.Change
    tick = Signal()               # once a second: the clock moved

    def __init__(self, situation: Situation, sources=(), interval_ms: int = 50,
                 tick_ms: int = 1000, parent: QObject | None = None):
        super().__init__(parent)
        self.situation = situation
        self.sources = list(sources)    # feeds.source.Source: feeds, brokers, a recording
        self.busy_s = 0.0                # GUI-thread time spent applying batches (benchmarks)
        self.batches = 0
        self.drains = DrainFigures()     # applying alone (the status' ingest; metrics)
        self._drain_timer = QTimer(self)
        self._drain_timer.setInterval(interval_ms)
        self._drain_timer.timeout.connect(self.drain)
        self._tick_timer = QTimer(self)
        self._tick_timer.setInterval(tick_ms)
        self._tick_timer.timeout.connect(self.tick.emit)

    def start(self) -> None:
        self._drain_timer.start()
        self._tick_timer.start()

    def stop(self) -> None:
        self._drain_timer.stop()
        self._tick_timer.stop()

    def drain(self) -> Change:
        started = time.perf_counter()
        try:
            change = self.situation.apply(take_all(self.sources, self.situation.faults))
            self.drains.add(time.perf_counter() - started)
            STARTUP.after_drain(self.situation)
        except Exception as exc:        # one bad drain is a fault on the wall, not the end
            self.situation.faults.record("situation", exc)
            change = Change(sources=True)
        return self.show(change, started)

    def show(self, change: Change, started: float | None = None) -> Change:
        """Tell every panel what changed (a drain, or a replay's seek: everything)."""
        started = time.perf_counter() if started is None else started
        self.changed.emit(change)
        self.busy_s += time.perf_counter() - started
        self.batches += 1
        return change

"""What a window that holds panels does with them — the wall's windows and the commander's
console alike: pass changes on, redraw the dirty ones, redraw all on the clock's tick."""
from __future__ import annotations

from PySide6.QtCore import QTimer

from situation.store import Change

REDRAW_MS = 500            # panels redraw at most twice a second, whatever the feed rate


class PanelHost:
    """Mixed into a window that has ``self.header`` and ``self.panels``."""

    def follow(self, bridge) -> None:
        """Hear the bridge (its changes mark panels dirty; its tick redraws all) and redraw the
        dirty panels every REDRAW_MS, one a turn (below)."""
        if bridge is not None:
            bridge.changed.connect(self.on_changed)
            bridge.tick.connect(self.refresh_on_tick)
        self._redraw = QTimer(self)
        self._redraw.setInterval(REDRAW_MS)
        self._redraw.timeout.connect(self.refresh_soon)
        self._redraw.start()
        self._pass = QTimer(self)               # one panel a turn of the event loop
        self._pass.setSingleShot(True)
        self._pass.setInterval(0)
        self._pass.timeout.connect(self._refresh_one)

    def shown(self, panel) -> bool:
        return True

    def panel_names(self) -> list[str]:
        return [self.header.clock.name] + [p.name for p in self.panels if self.shown(p)]

    def on_changed(self, change: Change) -> None:
        for p in self.panels:
            p.on_changed(change)

    # ---- redrawing a panel at a time ---------------------------------------------------------
    # A wall at city scale spends 10–100 ms redrawing one panel; all of them in one go held the
    # next drain of the feed back by their sum (the p99 of a record's way onto the wall). On
    # the timers the dirty panels are redrawn one per turn of the event loop, so a drain that
    # comes due waits for one panel of each window at most (each window has its own pass).
    # ``refresh_now`` stays whole (a screenshot, a test, the end of a run).

    def refresh_on_tick(self) -> None:
        """The clock's second: the header now, every panel soon (countdowns, ages)."""
        self.header.refresh()
        for p in self.panels:
            p.dirty = True
        self.refresh_soon()

    def refresh_soon(self) -> None:
        """Redraw the panels dirty now, one a turn; what changes meanwhile waits for the next
        pass (a pass never chases the feed: twice a second at most, as before)."""
        if getattr(self, "_queue", None):
            return                       # a pass is under way: it takes them in turn
        self._queue = [p for p in self.panels if self._redrawable(p)]
        if self._queue:
            self._pass.start()

    def _redrawable(self, panel) -> bool:
        return panel.dirty

    def _refresh_one(self) -> None:
        while self._queue:
            panel = self._queue.pop(0)
            if not self._redrawable(panel):
                continue                 # redrawn meanwhile (refresh_now), or parked
            try:
                panel.refresh()
            except Exception:
                panel.dirty = False      # a panel that raised waits for the next change
                raise
            finally:
                if self._queue:
                    self._pass.start()
            return

    def refresh_now(self) -> None:
        self.header.refresh()
        for p in self.panels:
            p.refresh()

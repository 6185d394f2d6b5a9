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
        dirty panels every REDRAW_MS."""
        if bridge is not None:
            bridge.changed.connect(self.on_changed)
            bridge.tick.connect(self.refresh_now)
        self._redraw = QTimer(self)
        self._redraw.setInterval(REDRAW_MS)
        self._redraw.timeout.connect(self.refresh_dirty)
        self._redraw.start()

    def shown(self, panel) -> bool:
        return True

    def panel_names(self) -> list[str]:
        return [self.header.clock.name] + [p.name for p in self.panels if self.shown(p)]

    def on_changed(self, change: Change) -> None:
        for p in self.panels:
            p.on_changed(change)

    def refresh_dirty(self) -> None:
        for p in self.panels:
            if p.dirty:
                p.refresh()

    def refresh_now(self) -> None:
        self.header.refresh()
        for p in self.panels:
            p.refresh()

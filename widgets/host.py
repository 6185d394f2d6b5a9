"""What a window that holds panels does with them — the wall's windows and the commander's
console alike: pass changes on, redraw the dirty ones, redraw all on the clock's tick."""
from __future__ import annotations

from situation.store import Change


class PanelHost:
    """Mixed into a window that has ``self.header`` and ``self.panels``."""

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

"""The wall: one window per screen, each a header (title, mode, key figures, the clock) over
a grid of panels. Which panels go on which screen depends on how many screens there are.

Windows redraw from the situation: a panel marked dirty by a change is redrawn at most four
times a second, and everything once a second as the clock ticks (countdowns, staleness).
"""
from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QVBoxLayout, QWidget

from situation.store import Change, Situation
from ui import theme
from ui.bridge import SituationBridge
from widgets.header import Header
from widgets.registry import PANELS

REDRAW_MS = 250

# screens → per screen: (title zh, title en, rows); a row is (stretch, [(panel, stretch), …])
Row = tuple[int, list[tuple[str, int]]]
BUILT_IN: dict[int, list[tuple[str, str, list[Row]]]] = {
    1: [("综合", "Overview", [
        (6, [("case_queue", 11), ("city_map", 9)]),
        (4, [("unit_roster", 6), ("sensor_tiles", 10), ("feed_health", 5)])])],
    2: [("指挥调度", "Command", [(1, [("case_queue", 9), ("city_map", 11)])]),
        ("队伍与感知", "Units and sensing", [
            (6, [("unit_roster", 4), ("sensor_tiles", 6)]),
            (4, [("feed_health", 5), ("district_board", 3)])])],
    3: [("案件指挥", "Cases", [(1, [("case_queue", 9), ("city_map", 11)])]),
        ("队伍与接入", "Units and feeds", [(3, [("unit_roster", 1)]), (1, [("feed_health", 1)])]),
        ("城市感知", "Sensing", [(3, [("sensor_tiles", 1)]), (2, [("district_board", 1)])])],
}
EXTRA_SCREEN = ("城市运行图", "City map", [(1, [("city_map", 1)])])


def layout_for(screens: int) -> list[tuple[str, str, list[Row]]]:
    if screens in BUILT_IN:
        return BUILT_IN[screens]
    return BUILT_IN[3] + [EXTRA_SCREEN] * (screens - 3)


class WallWindow(QWidget):
    def __init__(self, situation: Situation, bridge: SituationBridge | None, lang: str,
                 mode: str, rows: list[Row], title: str = "", parent=None):
        super().__init__(parent)
        self.situation = situation
        self.setWindowTitle(f"CityWall · {title}" if title else "CityWall")
        self.setStyleSheet(f"background: {theme.BG};")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        self.header = Header(situation, lang, mode, title)
        outer.addWidget(self.header)
        body = QVBoxLayout()
        body.setContentsMargins(12, 12, 12, 12)
        body.setSpacing(12)
        outer.addLayout(body, 1)
        self.panels = []
        for stretch, cells in rows:
            line = QHBoxLayout()
            line.setSpacing(12)
            for name, cell_stretch in cells:
                panel = PANELS[name](situation, lang)
                self.panels.append(panel)
                line.addWidget(panel, cell_stretch)
            body.addLayout(line, stretch)
        if bridge is not None:
            bridge.changed.connect(self.on_changed)
            bridge.tick.connect(self.refresh_now)
        self._redraw = QTimer(self)
        self._redraw.setInterval(REDRAW_MS)
        self._redraw.timeout.connect(self.refresh_dirty)
        self._redraw.start()
        QShortcut(QKeySequence(Qt.Key_F11), self, self.toggle_full_screen)
        QShortcut(QKeySequence(Qt.Key_Escape), self, self.showNormal)
        self.refresh_now()

    def panel_names(self) -> list[str]:
        return [self.header.clock.name] + [p.name for p in self.panels]

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

    def toggle_full_screen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()


def build_wall(situation: Situation, bridge: SituationBridge | None, lang: str, mode: str,
               screens) -> list[WallWindow]:
    """One window per screen, placed on it."""
    windows = []
    for screen, (zh, en, rows) in zip(screens, layout_for(len(screens))):
        w = WallWindow(situation, bridge, lang, mode, rows, zh if lang == "zh" else en)
        w.setScreen(screen)
        w.setGeometry(screen.geometry())
        windows.append(w)
    link_panels(windows)
    return windows


def link_panels(windows: list[WallWindow]) -> None:
    """A case picked in any queue is shown on every map; double-click follows it."""
    panels = [p for w in windows for p in w.panels]
    queues = [p for p in panels if p.name == "case_queue"]
    maps = [p for p in panels if p.name == "city_map"]
    for q in queues:
        for m in maps:
            q.selected.connect(m.zoom_to_case)
            q.activated.connect(m.follow_case)

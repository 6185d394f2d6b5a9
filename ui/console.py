"""The commander's console: a normal window whose panels are docks — moved, stacked, floated
onto another monitor, closed — around the map. It reopens as it was left (Qt's own state,
kept with QSettings), and "save layout as…" writes the arrangement as a layout file. A
layout cell that rotates on the wall becomes tabbed docks here: the commander picks the page."""
from __future__ import annotations

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMainWindow, QMenu

from layouts import engine
from situation.store import Situation
from widgets import theme
from widgets.i18n import tr
from widgets.header import Header
from widgets.host import PanelHost
from widgets.registry import PANELS

STATE_VERSION = 1
CENTRE_FIRST = ("city_map", "case_queue")       # what sits in the middle, if the layout has it


def dock_area(cell: engine.Cell, screen: engine.Screen):
    """Where a grid cell's panel docks: by where it sits around the middle of the grid."""
    if cell.colspan >= screen.cols * 0.9:
        return Qt.TopDockWidgetArea if cell.row < screen.rows / 2 else Qt.BottomDockWidgetArea
    if cell.row >= screen.rows * 0.6:
        return Qt.BottomDockWidgetArea
    return Qt.LeftDockWidgetArea if cell.col < screen.cols / 2 else Qt.RightDockWidgetArea


class CommanderConsole(PanelHost, QMainWindow):
    def __init__(self, situation: Situation, bridge, lang: str, mode: str,
                 screen: engine.Screen, settings: QSettings | None = None, parent=None):
        super().__init__(parent)
        self.situation, self.lang = situation, lang
        self.settings = settings or QSettings("CityWall", "console")
        self.setWindowTitle("CityWall · " + tr("title", lang))
        self.setStyleSheet(f"QMainWindow {{ background: {theme.BG}; }}"
                           f" QDockWidget {{ color: {theme.MUTED}; }}")
        self.setDockOptions(QMainWindow.AllowTabbedDocks | QMainWindow.AllowNestedDocks
                            | QMainWindow.AnimatedDocks)
        self.header = Header(situation, lang, mode, screen.title_zh if lang == "zh"
                             else screen.title_en)
        self.setMenuWidget(self.header)
        names = screen.panels()
        centre = next((n for n in CENTRE_FIRST if n in names), names[0])
        self.panels, self.docks = [], {}
        for cell in screen.cells:
            tabs = []
            for name in cell.pages:
                panel = PANELS[name](situation, lang)
                self.panels.append(panel)
                if name == centre and self.centralWidget() is None:
                    self.setCentralWidget(panel)
                    continue
                dock = QDockWidget(tr(f"panel.{name}", lang), self)
                dock.setObjectName(f"dock-{name}-{cell.row}-{cell.col}")
                dock.setWidget(panel)
                dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                                 | QDockWidget.DockWidgetClosable)
                self.addDockWidget(dock_area(cell, screen), dock)
                if tabs:                        # a rotation's pages: tabs, the first on top
                    self.tabifyDockWidget(tabs[0], dock)
                tabs.append(dock)
                self.docks[dock.objectName()] = dock
            if len(tabs) > 1:
                tabs[0].raise_()
        if not self.restore():           # first time: a desk-sized window, a slim KPI band
            self.resize(1600, 1000)
            top = [d for d in self.docks.values()
                   if self.dockWidgetArea(d) == Qt.TopDockWidgetArea]
            if top:
                self.resizeDocks(top, [190] * len(top), Qt.Vertical)
        self.follow(bridge)
        self.header.setContextMenuPolicy(Qt.CustomContextMenu)
        self.header.customContextMenuRequested.connect(
            lambda pos: self.menu().exec(self.header.mapToGlobal(pos)))
        self.refresh_now()

    # ---- the same contract as a wall window ---------------------------------------------------
    def shown(self, panel) -> bool:
        dock = panel.parent()
        return not isinstance(dock, QDockWidget) or not dock.isHidden()

    # ---- as it was left ----------------------------------------------------------------------
    def save(self) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("state", self.saveState(STATE_VERSION))
        self.settings.sync()

    def restore(self) -> bool:
        geometry, state = self.settings.value("geometry"), self.settings.value("state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        return bool(state is not None and self.restoreState(state, STATE_VERSION))

    def closeEvent(self, event) -> None:
        self.save()
        super().closeEvent(event)

    # ---- save layout as… -----------------------------------------------------------------------
    def as_layout(self, name: str = "my-console") -> engine.Layout:
        """The arrangement as a one-screen layout file: top docks, then left | centre | right,
        then bottom docks, each area's panels side by side (closed docks are left out)."""
        area = {Qt.TopDockWidgetArea: [], Qt.LeftDockWidgetArea: [],
                Qt.RightDockWidgetArea: [], Qt.BottomDockWidgetArea: []}
        for dock in self.docks.values():
            if not dock.isHidden():
                area.setdefault(self.dockWidgetArea(dock), []).append(dock.widget().name)
        centre = self.centralWidget().name
        top, bottom = area[Qt.TopDockWidgetArea], area[Qt.BottomDockWidgetArea]
        left, right = area[Qt.LeftDockWidgetArea], area[Qt.RightDockWidgetArea]
        cells, row = [], 0
        cols = 12

        def band(names, r, h):
            w = cols // max(1, len(names))
            for i, n in enumerate(names):
                span = cols - i * w if i == len(names) - 1 else w
                cells.append(engine.Cell(n, r, i * w, h, span))
        if top:
            band(top, row, 1)
            row += 1
        side = 3 if (left or right) else 0
        for names, col in ((left, 0), (right, cols - side)):
            for i, n in enumerate(names):
                cells.append(engine.Cell(n, row + i, col, 1 if len(names) > 1 else 4, side))
        mid = max(4, len(left), len(right))
        c0 = side if left else 0
        c1 = cols - side if right else cols
        cells.append(engine.Cell(centre, row, c0, mid, c1 - c0))
        row += mid
        if bottom:
            band(bottom, row, 2)
            row += 2
        screen = engine.Screen(0, "指挥席", "Commander", row, cols, tuple(cells))
        return engine.Layout(name, (screen,), "")

    def save_layout_as(self, path: str) -> None:
        engine.save_layout(self.as_layout(), path)

    def menu(self) -> QMenu:
        zh = self.lang == "zh"
        m = QMenu(self)
        m.addAction("布局另存为…" if zh else "Save layout as…", self.ask_save_layout)
        closed = [d for d in self.docks.values() if d.isHidden()]
        if closed:
            back = m.addMenu("恢复面板" if zh else "Show panel")
            for d in closed:
                back.addAction(d.windowTitle(), d.show)
        return m

    def ask_save_layout(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "", "my-console.toml", "TOML (*.toml)")
        if path:
            self.save_layout_as(path)

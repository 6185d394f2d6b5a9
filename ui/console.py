"""The commander's console: a normal window whose panels are docks — moved, stacked, floated
onto another monitor, closed — around the map. It reopens as it was left (Qt's own state,
kept with QSettings), and "save layout as…" writes the arrangement as a layout file. A
layout cell that rotates on the wall becomes tabbed docks here: the commander picks the page.

First time (nothing saved), at the desk's 1600×1000: the lists a commander works from (the
case queue over the unit roster) fill the left side from under the KPI strip to the bottom,
as wide as the queue's key columns need (time left, category, stage, unit); the other
panels (feed health…) are tabs beside the roster; the map has the whole rest of the middle.
Each dock says its name once, in its title bar, with the panel's summary beside it (the
panel's own title line stays hidden: ``Panel.titled_by_dock``). The layout's palette
(night: dimmed) is the console's too."""
from __future__ import annotations

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QHBoxLayout, QLabel, QMainWindow,
                               QMenu, QToolButton, QWidget)

from layouts import engine
from situation.store import Situation
from widgets import theme
from widgets.i18n import tr
from widgets.header import Header
from widgets.host import PanelHost
from widgets.registry import PANELS

STATE_VERSION = 1
CENTRE_FIRST = ("city_map", "case_queue")       # what sits in the middle, if the layout has it
LEFT_LISTS = ("case_queue", "unit_roster")      # the lists down the left side, first time
DEFAULT_SIZE = (1600, 1000)
KPI_BAND_PX = 180           # the KPI strip's height, first time
STRIP_PX = 210              # a full-width strip at the bottom, first time
QUEUE_KEYS = ("col.left", "col.stage", "col.unit", "col.category")
QUEUE_SHARE = 0.55          # the most of the window's width the queue takes, first time
TITLE_PX = 22               # a dock's title bar: the panel's name, read from the desk


def dock_area(cell: engine.Cell, screen: engine.Screen):
    """Where a grid cell's panel docks: by where it sits around the middle of the grid."""
    if cell.colspan >= screen.cols * 0.9:
        return Qt.TopDockWidgetArea if cell.row < screen.rows / 2 else Qt.BottomDockWidgetArea
    if cell.row >= screen.rows * 0.6:
        return Qt.BottomDockWidgetArea
    return Qt.LeftDockWidgetArea if cell.col < screen.cols / 2 else Qt.RightDockWidgetArea


class DockTitle(QWidget):
    """A dock's title bar: the panel's name (said once: the panel's own title line is
    hidden), its summary beside it, and float and close buttons. Dragging it moves the dock,
    as Qt's own title bar does (the labels leave mouse presses to the dock)."""

    def __init__(self, dock: QDockWidget, panel, lang: str = "zh"):
        super().__init__(dock)
        self.setObjectName("dockTitle")
        self.setAttribute(Qt.WA_StyledBackground)
        self.setStyleSheet(f"QWidget#dockTitle {{ background: {theme.HEADER}; }}"
                           f" QToolButton {{ color: {theme.MUTED}; background: transparent;"
                           f" border: none; font-size: {TITLE_PX - 2}px; padding: 0 6px; }}"
                           f" QToolButton:hover {{ color: {theme.TEXT}; }}")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(12, 4, 6, 4)
        lay.setSpacing(14)
        self.name = QLabel(dock.windowTitle())
        self.name.setObjectName("dockName")
        self.name.setFont(theme.font(TITLE_PX, bold=True))
        self.name.setStyleSheet(f"color: {theme.ACCENT}; background: transparent;")
        lay.addWidget(self.name)
        dock.windowTitleChanged.connect(self.name.setText)
        title, summary = getattr(panel, "title", None), getattr(panel, "summary", None)
        if title is not None:
            panel.titled_by_dock = True
            title.hide()                        # said here, once
        if summary is not None:                 # its figures beside the name, not a line below
            panel.summary_in_title_bar = True
            summary.setWordWrap(False)
            summary.setAlignment(Qt.AlignLeft | Qt.AlignVCenter)
            lay.addWidget(summary)
        lay.addStretch(1)
        for text, tip, act in (("❐", tr("console.float", lang),
                                lambda: dock.setFloating(not dock.isFloating())),
                               ("✕", tr("console.close", lang), dock.close)):
            b = QToolButton()
            b.setText(text)
            b.setToolTip(tip)
            b.setFocusPolicy(Qt.NoFocus)
            b.clicked.connect(act)
            lay.addWidget(b)


class CommanderConsole(PanelHost, QMainWindow):
    def __init__(self, situation: Situation, bridge, lang: str, mode: str,
                 screen: "engine.Screen | engine.Layout", settings: QSettings | None = None,
                 parent=None, *, palette: str | None = None):
        """``screen``: the layout's screen to show (its first when a whole layout is given);
        ``palette``: the layout's colours ("night"), when ``screen`` is only a screen."""
        if isinstance(screen, engine.Layout):
            palette = palette or screen.palette
            screen = screen.screens[0]
        # The layout's palette before anything is made: every panel reads it.
        theme.choose_palette(palette)
        super().__init__(parent)
        self.situation, self.lang = situation, lang
        self.settings = settings or QSettings("CityWall", "console")
        self.setWindowTitle("CityWall · " + tr("title", lang))
        self.setStyleSheet(f"QMainWindow {{ background: {theme.BG}; }}"
                           f" QDockWidget {{ color: {theme.ACCENT}; font-size: {TITLE_PX}px;"
                           f" font-weight: bold; }}"
                           f" QDockWidget::title {{ background: {theme.HEADER};"
                           f" padding: 4px 10px; }}"
                           f" QTabBar::tab {{ font-size: {TITLE_PX - 2}px; padding: 6px 14px;"
                           f" background: {theme.BUTTON}; color: {theme.MUTED}; }}"
                           f" QTabBar::tab:selected {{ color: {theme.TEXT};"
                           f" background: {theme.PANEL_EDGE}; }}")
        self.setDockOptions(QMainWindow.AllowTabbedDocks | QMainWindow.AllowNestedDocks
                            | QMainWindow.AnimatedDocks)
        self.header = Header(situation, lang, mode, screen.title_zh if lang == "zh"
                             else screen.title_en)
        self.setMenuWidget(self.header)
        names = screen.panels()
        centre = next((n for n in CENTRE_FIRST if n in names), names[0])
        self.panels, self.docks = [], {}
        self._full_width: set[str] = set()
        for cell in screen.cells:
            tabs = []
            for name in cell.pages:
                panel = PANELS[name](situation, lang)
                self.panels.append(panel)
                if name == centre and self.centralWidget() is None:
                    self.setCentralWidget(panel)
                    continue
                dock = QDockWidget(panel.title.text() or tr(f"panel.{name}", lang), self)
                dock.setObjectName(f"dock-{name}-{cell.row}-{cell.col}")
                dock.setFont(theme.font(TITLE_PX, bold=True))
                dock.setWidget(panel)
                dock.setTitleBarWidget(DockTitle(dock, panel, lang))
                dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                                 | QDockWidget.DockWidgetClosable)
                self.addDockWidget(self.first_area(name, cell, screen), dock)
                if tabs:                        # a rotation's pages: tabs, the first on top
                    self.tabifyDockWidget(tabs[0], dock)
                tabs.append(dock)
                self.docks[dock.objectName()] = dock
            if len(tabs) > 1:
                tabs[0].raise_()
        # The other panels (feed health…) are pages beside the roster, under the queue: the
        # map keeps the whole middle.
        lists = [d for d in self.docks.values() if d.widget().name == "unit_roster"]
        others = [d for d in self.docks.values()
                  if self.dockWidgetArea(d) == Qt.BottomDockWidgetArea
                  and not self.first_full_width(d)]
        if lists and others:
            for d in others:
                self.tabifyDockWidget(lists[0], d)
            lists[0].raise_()
        # The left side runs the full height under the KPI strip.
        self.setCorner(Qt.BottomLeftCorner, Qt.LeftDockWidgetArea)
        self.setCorner(Qt.BottomRightCorner, Qt.RightDockWidgetArea)
        if not self.restore():           # first time: a desk-sized window, the map large
            self.resize(*DEFAULT_SIZE)
            self.first_sizes()
        self.follow(bridge)
        self.header.setContextMenuPolicy(Qt.CustomContextMenu)
        self.header.customContextMenuRequested.connect(
            lambda pos: self.menu().exec(self.header.mapToGlobal(pos)))
        self.refresh_now()

    # ---- first time: the desk arrangement ------------------------------------------------------
    def first_area(self, name: str, cell: engine.Cell, screen: engine.Screen):
        """Where a panel docks first: the queue and the roster down the left side, full-width
        strips above or below, everything else under the map (then tabbed with the roster)."""
        if name in LEFT_LISTS:
            return Qt.LeftDockWidgetArea
        area = dock_area(cell, screen)
        if area in (Qt.TopDockWidgetArea,):
            return area
        if cell.colspan >= screen.cols * 0.9 and area == Qt.BottomDockWidgetArea:
            self._full_width.add(f"dock-{name}-{cell.row}-{cell.col}")
            return area
        return Qt.BottomDockWidgetArea

    def first_full_width(self, dock) -> bool:
        return dock.objectName() in self._full_width

    def queue_width(self) -> int:
        """The width the queue's dock needs to keep its key columns (time left, stage, unit,
        category), as the table measures them; at most QUEUE_SHARE of the window."""
        queue = next((p for p in self.panels if p.name == "case_queue"), None)
        if queue is None or self.centralWidget() is queue:
            return 0
        queue.refresh()
        needs = queue.column_needs()
        cols = sum(needs[queue.columns.index(k)] for k in QUEUE_KEYS if k in queue.columns)
        m = queue.contentsMargins()
        lm = queue.body.contentsMargins()
        extra = (queue.table.width() - queue.table_room()) + m.left() + m.right() \
            + lm.left() + lm.right() + 16
        return min(cols + extra, int(self.width() * QUEUE_SHARE))

    def first_sizes(self) -> None:
        by_area: dict = {}
        for d in self.docks.values():
            by_area.setdefault(self.dockWidgetArea(d), []).append(d)
        top = by_area.get(Qt.TopDockWidgetArea, [])
        if top:
            self.resizeDocks(top, [KPI_BAND_PX] * len(top), Qt.Vertical)
        left = by_area.get(Qt.LeftDockWidgetArea, [])
        width = self.queue_width()
        if left and width:
            self.resizeDocks(left, [width] * len(left), Qt.Horizontal)
            queue = [d for d in left if d.widget().name == "case_queue"]
            rest = [d for d in left if d.widget().name != "case_queue"]
            if queue and rest:              # the queue over the roster (its tabs take a line)
                high = self.height() - KPI_BAND_PX - self.header.sizeHint().height()
                self.resizeDocks(queue + rest, [int(high * 0.45)] + [int(high * 0.55)
                                                                   // len(rest)] * len(rest),
                                 Qt.Vertical)
        bottom = by_area.get(Qt.BottomDockWidgetArea, [])
        if bottom:
            self.resizeDocks(bottom, [STRIP_PX] * len(bottom), Qt.Vertical)

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
        m = QMenu(self)
        m.addAction(tr("console.save_layout", self.lang), self.ask_save_layout)
        closed = [d for d in self.docks.values() if d.isHidden()]
        if closed:
            back = m.addMenu(tr("console.show_panel", self.lang))
            for d in closed:
                back.addAction(d.windowTitle(), d.show)
        return m

    def ask_save_layout(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "", "my-console.toml", "TOML (*.toml)")
        if path:
            self.save_layout_as(path)

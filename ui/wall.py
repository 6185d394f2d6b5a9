"""The wall: one window per screen, each a header (title, mode, key figures, the clock) over
a grid of panels. Which panels go on which screen depends on how many screens there are.

Windows redraw from the situation: a panel marked dirty by a change is redrawn at most twice
times a second, and everything once a second as the clock ticks (countdowns, staleness).
"""
from __future__ import annotations

import shiboken6
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QCursor, QKeySequence, QShortcut
from PySide6.QtWidgets import (QApplication, QFileDialog, QGridLayout, QMenu, QMessageBox,
                               QVBoxLayout, QWidget)

from situation.store import Situation
from ui import theme
from ui.bridge import SituationBridge
from situation.catalog import unit_kind_name
from situation.suggest import nearest_available
from widgets.case_queue import CASE_MIME, UNIT_MIME
from widgets.header import Header
from widgets.host import PanelHost
from layouts import engine
from widgets.registry import PANELS

IDLE_CURSOR_MS = 5_000      # the pointer hides after this long without moving
REDRAW_MS = 500            # panels redraw at most twice a second, whatever the feed rate

# screens → per screen: (title zh, title en, rows); a row is (stretch, [(panel, stretch), …])
Row = tuple[int, list[tuple[str, int]]]
BUILT_IN: dict[int, list[tuple[str, str, list[Row]]]] = {
    1: [("综合", "Overview", [
        (6, [("case_queue", 11), ("city_map", 9)]),
        (4, [("unit_roster", 6), ("sensor_tiles", 10), ("feed_health", 5)])])],
    2: [("指挥调度", "Command", [(1, [("supervision_kpis", 1)]),
                                 (5, [("case_queue", 9), ("city_map", 11)])]),
        ("队伍、感知与研判", "Units, sensing, analysis", [
            (5, [("unit_roster", 4), ("sensor_tiles", 6)]),
            (5, [("peak_duty", 6), ("feed_health", 4)])])],
    3: [("案件指挥", "Cases", [(1, [("supervision_kpis", 1)]),
                              (5, [("case_queue", 9), ("city_map", 11)])]),
        ("队伍与监察", "Units and supervision", [
            (3, [("unit_roster", 3), ("district_supervision", 2)]),
            (2, [("feed_health", 1), ("order_audit", 1)])]),
        ("感知与研判", "Sensing and analysis", [
            (2, [("sensor_tiles", 1)]), (3, [("peak_duty", 3), ("temporal_heat", 2)])])],
}
# Screens beyond three: patrol supervision, the heatmaps, then more maps.
EXTRA_SCREENS = [("巡查监察", "Patrol supervision", [(1, [("patrol_coverage", 3),
                                                        ("district_board", 2)])]),
                 ("案件热力", "Case heat", [(1, [("spatial_heat", 3), ("temporal_heat", 2)])]),
                 ("城市运行图", "City map", [(1, [("city_map", 1)])])]


def layout_for(screens: int) -> list[tuple[str, str, list[Row]]]:
    if screens in BUILT_IN:
        return BUILT_IN[screens]
    extra = [EXTRA_SCREENS[min(i, len(EXTRA_SCREENS) - 1)] for i in range(screens - 3)]
    return BUILT_IN[3] + extra


class IdlePointer(QObject):
    """Hides the mouse pointer over the wall after a few idle seconds; a touch brings it back.
    It watches where the pointer is twice a second rather than filtering every event of the
    application: a Python filter on all events crashes beside QtWebEngine."""

    POLL_MS = 500

    def __init__(self, app: QApplication):
        super().__init__(app)
        self.hidden = False
        self.still_ms = 0
        self.last = QCursor.pos()
        self.timer = QTimer(self)
        self.timer.setInterval(self.POLL_MS)
        self.timer.timeout.connect(self.poll)
        self.timer.start()

    def poll(self, pos=None) -> None:
        pos = QCursor.pos() if pos is None else pos
        if pos != self.last:                       # a touch of the mouse
            self.last, self.still_ms = pos, 0
            if self.hidden:
                QApplication.restoreOverrideCursor()
                self.hidden = False
            return
        self.still_ms += self.POLL_MS
        if self.still_ms >= IDLE_CURSOR_MS and not self.hidden:
            QApplication.setOverrideCursor(Qt.BlankCursor)
            self.hidden = True


_idle_pointer: IdlePointer | None = None


def idle_pointer() -> IdlePointer:
    global _idle_pointer
    if _idle_pointer is None:
        _idle_pointer = IdlePointer(QApplication.instance())
    return _idle_pointer


class WallWindow(PanelHost, QWidget):
    def __init__(self, situation: Situation, bridge: SituationBridge | None, lang: str,
                 mode: str, screen: "engine.Screen", parent=None):
        title = screen.title_zh if lang == "zh" else screen.title_en
        # Wall mode: no frame (set before any child exists: changing it later recreates the
        # native window under QtWebEngine's view), the pointer hides when idle (IdlePointer),
        # and a stray key never closes it (closeEvent).
        super().__init__(parent, Qt.FramelessWindowHint)
        self.situation = situation
        self.setWindowTitle(f"CityWall · {title}" if title else "CityWall")
        self.setStyleSheet(f"background: {theme.BG};")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        self.header = Header(situation, lang, mode, title)
        outer.addWidget(self.header)
        # The layout's grid: each panel over its rows and columns, stretched as the file says.
        body = QGridLayout()
        body.setContentsMargins(12, 12, 12, 12)
        body.setSpacing(12)
        outer.addLayout(body, 1)
        for r in range(screen.rows):
            body.setRowStretch(r, screen.row_stretch[r] if screen.row_stretch else 1)
        for c in range(screen.cols):
            body.setColumnStretch(c, screen.col_stretch[c] if screen.col_stretch else 1)
        self.screen_layout = screen
        self.panels = []
        for cell in screen.cells:
            panel = PANELS[cell.panel](situation, lang)
            self.panels.append(panel)
            body.addWidget(panel, cell.row, cell.col, cell.rowspan, cell.colspan)
        if bridge is not None:
            bridge.changed.connect(self.on_changed)
            bridge.tick.connect(self.refresh_now)
        self._redraw = QTimer(self)
        self._redraw.setInterval(REDRAW_MS)
        self._redraw.timeout.connect(self.refresh_dirty)
        self._redraw.start()
        idle_pointer()
        QShortcut(QKeySequence(Qt.Key_F11), self, self.toggle_full_screen)
        QShortcut(QKeySequence(Qt.Key_Escape), self, self.showNormal)
        self.lang = lang
        self.header.setContextMenuPolicy(Qt.CustomContextMenu)
        self.header.customContextMenuRequested.connect(self.show_menu)
        QShortcut(QKeySequence("Ctrl+E"), self, self.ask_export_public_map)
        self.refresh_now()

    def closeEvent(self, event) -> None:
        """Closing from the window system (a stray Alt+F4, a click) asks first; closing from
        the program (the end of a run) does not."""
        if event.spontaneous():
            zh = self.lang == "zh"
            answer = QMessageBox.question(self, "CityWall", "关闭指挥大屏？" if zh
                                          else "Close the wall?")
            if answer != QMessageBox.Yes:
                event.ignore()
                return
        super().closeEvent(event)

    # ---- the wall's menu (right-click the header) -------------------------------------------
    def menu(self) -> QMenu:
        zh = self.lang == "zh"
        m = QMenu(self)
        m.addAction("导出公众城市地图…" if zh else "Export the public city map…",
                    self.ask_export_public_map)
        m.addAction("导出 Open311 案件…" if zh else "Export cases as Open311…",
                    self.ask_export_open311)
        m.addAction("导出今日勤务计划…" if zh else "Export today's duty plan…",
                    self.ask_export_duty_plan)
        wall = getattr(self, "wall", None)
        if wall is not None and wall.schedule:
            act = m.addAction("保持当前布局（不随班次切换）" if zh
                              else "Hold this layout (ignore the shift schedule)")
            act.setCheckable(True)
            act.setChecked(wall.held)
            act.toggled.connect(wall.hold)
        m.addSeparator()
        m.addAction("全屏 / 窗口 (F11)" if zh else "Full screen / window (F11)",
                    self.toggle_full_screen)
        return m

    def show_menu(self, pos) -> None:
        self.menu().exec(self.header.mapToGlobal(pos))

    def ask_export_public_map(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "", "citywall-public-map.html",
                                              "HTML (*.html)")
        if path:
            self.export("public_map", path)

    def ask_export_open311(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "", "citywall-open311.json",
                                              "JSON (*.json)")
        if path:
            self.export("open311", path)

    def ask_export_duty_plan(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "", "citywall-duty-plan.csv", "CSV (*.csv)")
        if path:
            self.export("duty_plan", path)

    def export(self, what: str, path: str) -> bool:
        """Write an export now; say where it went, or why it could not be written."""
        from situation.open311 import write_open311
        from situation.public_map import write_public_map
        zh = self.lang == "zh"
        try:
            if what == "duty_plan":
                write_duty_plan(self.situation, path)
            else:
                write = write_public_map if what == "public_map" else write_open311
                write(self.situation, path, self.lang)
        except ValueError as exc:       # no history to plan today from
            self.header.flash(("无法生成勤务计划：" if zh else "No duty plan: ") + str(exc),
                              error=True)
            return False
        except OSError as exc:          # said on the wall; nothing modal blocks the picture
            reason = exc.strerror or str(exc)
            self.header.flash((f"无法写入 {path}：{reason}" if zh
                               else f"Cannot write {path}: {reason}"), error=True)
            return False
        self.header.flash(("已导出 " if zh else "Exported ") + path)
        return True

    def toggle_full_screen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()


def default_layout(screens: int) -> "engine.Layout":
    """The built-in layout for this many screens, as a layout file would give it."""
    return engine.from_rows(f"built-in-{screens}", layout_for(screens))


def place(layout: "engine.Layout | None", screens) -> tuple[list, str | None]:
    """(QScreen, layout screen) pairs — one per attached screen — and what was folded. A layout
    naming more screens than are attached folds the rest onto the screens present; screens
    the layout does not name show the built-in extras (the heatmaps, more maps)."""
    if layout is None:
        return list(zip(screens, default_layout(len(screens)).screens)), None
    placed, message = engine.assign(layout, [s.name() for s in screens])
    by_index = {idx: shown for idx, shown, _folded in placed}
    extras = default_layout(max(len(screens), 4)).screens
    out = [(sc, by_index.get(i, extras[min(i, len(extras) - 1)]))
           for i, sc in enumerate(screens)]
    return out, message


def build_wall(situation: Situation, bridge: SituationBridge | None, lang: str, mode: str,
               screens, orders=None, layout: "engine.Layout | None" = None,
               notice: str | None = None) -> list[WallWindow]:
    """One window per screen, placed on it, showing its screen of the layout (the built-in
    one for this many screens when none is given). ``notice``: a layout problem to say."""
    windows = []
    pairs, folded = place(layout, screens)
    for screen, shown in pairs:
        w = WallWindow(situation, bridge, lang, mode, shown)
        w.setScreen(screen)
        w.setGeometry(screen.geometry())
        windows.append(w)
    link_panels(windows, orders)
    said = " · ".join(t for t in (notice, folded) if t)
    if said and windows:
        windows[0].header.flash(said, error=True)
    return windows


def write_duty_plan(situation: Situation, path: str) -> None:
    """Today's duty plan as the ``duty-plan`` command writes it (the chart's code path)."""
    from situation.peakduty import DutyConfig, write_plan
    from widgets.peak_duty import PeakDuty, today_plan
    write_plan(today_plan(situation, PeakDuty.config or DutyConfig(), situation.now_ms()), path)


def link_panels(windows: list[WallWindow], orders=None) -> None:
    """A case picked in any queue is shown on every map; double-click follows it. With an
    order channel (``ui.dispatch.DispatchController``): drag a unit onto a case (in the queue
    or on the map) or a case onto a unit to dispatch; D on a case to pick from the nearest
    units; right-click a unit to recall it."""
    panels = [p for w in windows for p in w.panels]
    queues = [p for p in panels if p.name == "case_queue"]
    rosters = [p for p in panels if p.name == "unit_roster"]
    maps = [p for p in panels if p.name == "city_map"]
    for q in queues:
        for m in maps:
            q.selected.connect(m.zoom_to_case)
            q.activated.connect(m.follow_case)
    if orders is None:
        return
    for q in queues:
        q.orders = orders
        q.enable_drag_drop(CASE_MIME, UNIT_MIME, orders.dispatch)
        q.dispatch_key.connect(lambda case_id, q=q: suggest_menu(q, orders, case_id))
    for r in rosters:
        r.orders = orders
        r.enable_drag_drop(UNIT_MIME, CASE_MIME, lambda unit_id, case_id: orders.dispatch(
            case_id, unit_id))
        r.table.setContextMenuPolicy(Qt.CustomContextMenu)
        r.table.customContextMenuRequested.connect(lambda pos, r=r: recall_menu(r, orders, pos))
    for m in maps:
        m.unit_dropped.connect(orders.dispatch)
    audits = [p for p in panels if p.name == "order_audit"]
    for a in audits:
        a.orders = orders

    def mark_dirty():
        for p in queues + rosters + audits:
            p.dirty = True

    def say(text, alarm):
        for w in windows:
            if shiboken6.isValid(w):            # a re-laid wall has new windows
                w.header.flash(text, error=alarm)
    orders.changed.connect(mark_dirty)
    orders.said.connect(say)


class Wall(QObject):
    """The windows of the wall and what re-lays them: a screen plugged in or out, or the
    shift schedule's layout coming due. The situation, the orders and the selected case carry
    over; only the windows are new."""

    relaid = Signal()

    def __init__(self, situation: Situation, bridge, lang: str, mode: str, orders=None,
                 layout: "engine.Layout | None" = None, notice: str | None = None,
                 schedule: "list[engine.Shift] | None" = None, tz: str = "Asia/Shanghai",
                 layout_key: str | None = None):
        super().__init__()
        self.layout_key = layout_key            # the name or path the layout came from
        self.situation, self.bridge, self.lang, self.mode = situation, bridge, lang, mode
        self.orders, self.layout, self.notice = orders, layout, notice
        self.schedule, self.tz = schedule, tz
        self.held = False                       # the duty officer keeps the current layout
        self.windows: list[WallWindow] = []
        self.screens: list = []
        if bridge is not None and schedule:
            bridge.tick.connect(self.follow_schedule)

    def build(self, screens, show: bool = True) -> list[WallWindow]:
        self.screens = list(screens)
        self.windows = build_wall(self.situation, self.bridge, self.lang, self.mode,
                                  self.screens, self.orders, self.layout, self.notice)
        for w in self.windows:
            w.wall = self
            if show:
                w.showFullScreen()
        self.relaid.emit()
        return self.windows

    def selected_case(self) -> str | None:
        for w in self.windows:
            for p in w.panels:
                if p.name == "case_queue" and p.selected_key():
                    return p.selected_key()
        return None

    def relayout(self, screens=None, layout=None) -> list[WallWindow]:
        picked = self.selected_case()
        if layout is not None:
            self.layout, self.notice = layout, None
        old = self.windows
        self.build(self.screens if screens is None else screens,
                   show=any(w.isVisible() for w in old))
        for w in old:                           # closed by the program: nothing asks
            w.close()
            w.deleteLater()
        for w in self.windows:
            w.refresh_now()
            for p in w.panels:
                if picked and p.name == "case_queue" and picked in p.model.keys:
                    p.table.selectRow(p.model.keys.index(picked))
        return self.windows

    def follow_schedule(self) -> None:
        """On the situation's clock: a countdown a minute before the switch, then the shift's
        layout (unless held)."""
        if not self.schedule:
            return
        now = self.situation.now_ms()
        text = engine.banner(self.schedule, now, self.tz, held=self.held)
        if text:
            for w in self.windows:
                w.header.flash(text)
        due = engine.layout_due(self.schedule, now, self.layout_key, held=self.held, tz=self.tz)
        if due and due != self.layout_key:
            from widgets.registry import PANELS
            layout, problem = engine.load_or_default(due, set(PANELS),
                                                     default_layout(len(self.screens)))
            self.layout_key = due
            self.relayout(layout=layout)
            if problem:
                self.windows[0].header.flash(problem, error=True)

    def hold(self, held: bool = True) -> None:
        self.held = held


def suggestion_actions(situation, case_id: str, lang: str) -> list[tuple[str, str]]:
    """(label, unit id) for the three nearest available units: distance and time to arrive."""
    case = situation.cases.get(case_id)
    if case is None:
        return []
    zh = lang == "zh"
    out = []
    for sug in nearest_available(situation, case):
        km, mins = sug.distance_m / 1000, max(1, round(sug.eta_s / 60))
        label = (f"{sug.unit.callsign}  {unit_kind_name(sug.unit.kind, lang)}  {km:.1f} km  "
                 + (f"约 {mins} 分钟到达" if zh else f"about {mins} min away"))
        out.append((label, sug.unit.unit_id))
    return out


def suggest_menu(queue, orders, case_id: str) -> None:
    menu = QMenu(queue)
    actions = suggestion_actions(queue.situation, case_id, queue.lang)
    if not actions:
        menu.addAction("没有可派的待命单元" if queue.lang == "zh" else "No unit available").setEnabled(False)
    for label, unit_id in actions:
        menu.addAction(label, lambda u=unit_id: orders.dispatch(case_id, u))
    row = queue.model.keys.index(case_id) if case_id in queue.model.keys else 0
    rect = queue.table.visualRect(queue.model.index(row, 1))
    menu.popup(queue.table.viewport().mapToGlobal(rect.bottomLeft()))


def recall_menu(roster, orders, pos) -> None:
    index = roster.table.indexAt(pos)
    if not index.isValid():
        return
    unit_id = roster.model.keys[index.row()]
    unit = roster.situation.units.get(unit_id)
    if unit is None or unit.case_id is None:
        return
    menu = QMenu(roster)
    menu.addAction((f"召回 {unit.callsign}（{unit.case_id}）" if roster.lang == "zh"
                    else f"Recall {unit.callsign} ({unit.case_id})"),
                   lambda: orders.recall(unit_id))
    menu.popup(roster.table.viewport().mapToGlobal(pos))

"""The wall: one window per screen, each a header (title, mode, key figures, the clock) over
a grid of panels. Which panels go on which screen depends on how many screens there are.

Windows redraw from the situation: a panel marked dirty by a change is redrawn at most twice
times a second, and everything once a second as the clock ticks (countdowns, staleness).
"""
from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QMenu, QVBoxLayout, QWidget

from situation.store import Change, Situation
from ui import theme
from ui.bridge import SituationBridge
from situation.catalog import unit_kind_name
from situation.suggest import nearest_available
from widgets.case_queue import CASE_MIME, UNIT_MIME
from widgets.header import Header
from widgets.registry import PANELS

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
        self.lang = lang
        self.header.setContextMenuPolicy(Qt.CustomContextMenu)
        self.header.customContextMenuRequested.connect(self.show_menu)
        QShortcut(QKeySequence("Ctrl+E"), self, self.ask_export_public_map)
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


def build_wall(situation: Situation, bridge: SituationBridge | None, lang: str, mode: str,
               screens, orders=None) -> list[WallWindow]:
    """One window per screen, placed on it."""
    windows = []
    for screen, (zh, en, rows) in zip(screens, layout_for(len(screens))):
        w = WallWindow(situation, bridge, lang, mode, rows, zh if lang == "zh" else en)
        w.setScreen(screen)
        w.setGeometry(screen.geometry())
        windows.append(w)
    link_panels(windows, orders)
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
    orders.changed.connect(mark_dirty)
    for w in windows:
        orders.said.connect(lambda text, alarm, w=w: w.header.flash(text, error=alarm))


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

"""The wall: one window per screen, each a header (title, mode, key figures, the clock) over
a grid of panels. Which panels go on which screen depends on how many screens there are.

Windows redraw from the situation: a panel marked dirty by a change is redrawn at most twice
times a second, and everything once a second as the clock ticks (countdowns, staleness).
A layout cell may rotate through several panels (``ui.rotation.Rotation``); the pages not on show are
not redrawn until they come round. At a shift switch the wall shows the handover summary
(ui/handover.py) over its first window.
"""
from __future__ import annotations

import shiboken6
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QFileDialog, QGridLayout, QMenu, QMessageBox, QVBoxLayout,
                               QWidget)

from situation.handover import Handover, ShiftSpan, summarise
from situation.store import Situation
from widgets import theme
from ui.handover import SHOW_MS, HandoverView, pdf_name, write_pdf
from widgets.i18n import tr
from ui.bridge import SituationBridge
from widgets.case_queue import CASE_MIME, UNIT_MIME
from widgets.header import Header
from widgets.host import PanelHost
from layouts import engine
from widgets.registry import PANELS
from ui.rotation import (IDLE_CURSOR_MS, ROTATE_PAUSE_MS, IdlePointer, Rotation,  # noqa: F401
                         idle_pointer)

HANDOVER_HOURS = 8         # without a shift schedule, a summary covers the last 8 hours

# screens → per screen: (title zh, title en, rows); a row is (stretch, [(panel, stretch), …])
Row = tuple[int, list[tuple[str, int]]]
BUILT_IN: dict[int, list[tuple[str, str, list[Row]]]] = {
    # The map is the largest thing on a command screen (#14: at least 40 % of a 1080p window);
    # the queue keeps room for its key columns beside it.
    2: [("指挥调度", "Command", [(1, [("supervision_kpis", 1)]),
                                 (7, [("case_queue", 2), ("city_map", 3)])]),
        ("队伍、感知与研判", "Units, sensing, analysis", [
            (5, [("unit_roster", 4), ("sensor_tiles", 6)]),
            (5, [("peak_duty", 6), ("feed_health", 4)])])],
    3: [("案件指挥", "Cases", [(1, [("supervision_kpis", 1)]),
                              (7, [("case_queue", 2), ("city_map", 3)])]),
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


# One screen: the map as tall as the screen and the largest thing on it (at least 40 % of a
# 1080p window), the queue beside it with room for its key columns, and under the queue the
# units, the sensors and the feeds in turn (20 s each; a touch of the mouse holds them) — a
# row of three panels under the map would leave each a sliver with no row of its table shown.
ONE_SCREEN = engine.Screen(0, "综合", "Overview", 10, 13, (
    engine.Cell("case_queue", 0, 0, 6, 5),
    engine.Cell("unit_roster", 6, 0, 4, 5, then=("sensor_tiles", "feed_health"), every=20),
    engine.Cell("city_map", 0, 5, 10, 8)))


def layout_for(screens: int) -> list[tuple[str, str, list[Row]]]:
    if screens in BUILT_IN:
        return BUILT_IN[screens]
    extra = [EXTRA_SCREENS[min(i, len(EXTRA_SCREENS) - 1)] for i in range(screens - 3)]
    return BUILT_IN[3] + extra


class WallWindow(PanelHost, QWidget):
    def __init__(self, situation: Situation, bridge: SituationBridge | None, lang: str,
                 mode: str, screen: "engine.Screen", parent=None, *, slim: bool = False,
                 scale: float = 1.0):
        """``slim``: a screen other than the command screen (the slim header: one full
        header per wall); ``scale``: the screen's type scale (``theme.screen_scale``)."""
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
        self.header = Header(situation, lang, mode, title, slim=slim, scale=scale)
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
        self.panels, self.rotations = [], []
        self.handover_view: HandoverView | None = None
        for cell in screen.cells:
            pages = [PANELS[name](situation, lang) for name in cell.pages]
            self.panels.extend(pages)
            shown = pages[0]
            if len(pages) > 1:
                shown = Rotation(pages, cell.every, lang)
                self.rotations.append(shown)
            body.addWidget(shown, cell.row, cell.col, cell.rowspan, cell.colspan)
        self.follow(bridge)
        idle_pointer()
        QShortcut(QKeySequence(Qt.Key_F11), self, self.toggle_full_screen)
        QShortcut(QKeySequence(Qt.Key_Escape), self, self.escape)
        self.lang = lang
        self.header.setContextMenuPolicy(Qt.CustomContextMenu)
        self.header.customContextMenuRequested.connect(self.show_menu)
        QShortcut(QKeySequence("Ctrl+E"), self, self.ask_export_public_map)
        self.refresh_now()

    # ---- rotations: the pages waiting their turn are not redrawn ------------------------------
    def parked(self, panel) -> bool:
        return any(panel in r.panels and panel is not r.current() for r in self.rotations)

    def _redrawable(self, panel) -> bool:
        return panel.dirty and not self.parked(panel)

    def refresh_now(self) -> None:
        self.header.refresh()
        for p in self.panels:
            if self.parked(p):
                p.dirty = True
            else:
                p.refresh()

    # ---- the handover summary over this window ------------------------------------------------
    def escape(self) -> None:
        """Esc puts the handover summary away when it is up; otherwise leaves full screen."""
        wall = getattr(self, "wall", None)
        if self.handover_view is not None and wall is not None:
            wall.dismiss_handover()
        else:
            self.showNormal()

    def place_handover(self, view: HandoverView | None) -> None:
        self.handover_view = view
        if view is not None:
            view.setParent(self)
            self.fit_handover()
            view.show()
            view.raise_()

    def fit_handover(self) -> None:
        if self.handover_view is not None:          # below the header: clock and banner stay
            top = self.header.height()
            self.handover_view.setGeometry(0, top, self.width(), self.height() - top)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.fit_handover()

    def closeEvent(self, event) -> None:
        """Closing from the window system (a stray Alt+F4, a click) asks first; closing from
        the program (the end of a run) does not."""
        if event.spontaneous():
            answer = QMessageBox.question(self, "CityWall", tr("wall.close", self.lang))
            if answer != QMessageBox.Yes:
                event.ignore()
                return
        super().closeEvent(event)

    # ---- the wall's menu (right-click the header) -------------------------------------------
    def menu(self) -> QMenu:
        m = QMenu(self)
        m.addAction(tr("menu.public_map", self.lang),
                    self.ask_export_public_map)
        m.addAction(tr("menu.open311", self.lang),
                    self.ask_export_open311)
        m.addAction(tr("menu.duty_plan", self.lang),
                    self.ask_export_duty_plan)
        wall = getattr(self, "wall", None)
        if wall is not None:
            m.addSeparator()
            m.addAction(tr("menu.handover", self.lang), lambda: wall.show_handover())
            m.addAction(tr("menu.handover_pdf", self.lang), self.ask_export_handover)
            if wall.exercise is not None:
                m.addAction(tr("menu.debrief", self.lang), self.ask_export_debrief)
        if wall is not None and wall.schedule:
            act = m.addAction(tr("menu.hold", self.lang))
            act.setCheckable(True)
            act.setChecked(wall.held)
            act.toggled.connect(wall.hold)
        m.addSeparator()
        m.addAction(tr("menu.full_screen", self.lang),
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

    def ask_export_debrief(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "", "citywall-debrief.html", "HTML (*.html)")
        if path:
            self.export("debrief", path)

    def ask_export_handover(self) -> None:
        """The summary on show, or one made now for the shift so far."""
        wall = self.wall
        summary = wall.handover or wall.summary()
        path, _ = QFileDialog.getSaveFileName(self, "", pdf_name(summary, wall.tz),
                                              "PDF (*.pdf)")
        if path:
            self.export("handover", path, summary)

    def export(self, what: str, path: str, handover: Handover | None = None) -> bool:
        """Write an export now; say where it went, or why it could not be written."""
        from situation.open311 import write_open311
        from situation.public_map import write_public_map
        try:
            if what == "handover":
                write_pdf(handover, path, self.lang, self.wall.tz)
            elif what == "debrief":       # the exercise so far (training)
                from situation.debrief import write_debrief_html
                write_debrief_html(self.wall.exercise.debrief(self.situation.now_ms()), path,
                                   self.lang)
            elif what == "duty_plan":
                write_duty_plan(self.situation, path)
            else:
                write = write_public_map if what == "public_map" else write_open311
                write(self.situation, path, self.lang)
        except ValueError as exc:       # no history to plan today from
            self.header.flash(tr("export.no_plan", self.lang, why=exc),
                              error=True)
            return False
        except OSError as exc:          # said on the wall; nothing modal blocks the picture
            reason = exc.strerror or str(exc)
            self.header.flash(tr("export.failed", self.lang, path=path, why=reason), error=True)
            return False
        self.header.flash(tr("export.done", self.lang, path=path))
        return True

    def toggle_full_screen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()


def default_layout(screens: int) -> "engine.Layout":
    """The built-in layout for this many screens, as a layout file would give it."""
    if screens <= 1:
        return engine.Layout("built-in-1", (ONE_SCREEN,), "built-in")
    return engine.from_rows(f"built-in-{screens}", layout_for(screens))


def by_position(screens) -> list:
    """The QScreens by where they stand: left to right, then top to bottom (by geometry),
    whatever order Qt lists them in (``engine.by_position``). Index 0 is the leftmost screen:
    the one a layout's ``match = 0`` and the built-in layout's command screen go on."""
    screens = list(screens)
    geos = [(g.x(), g.y(), g.width(), g.height(), sc.name())
            for sc in screens for g in (sc.geometry(),)]
    return [screens[i] for i in engine.by_position(geos)]


def place(layout: "engine.Layout | None", screens) -> tuple[list, str | None]:
    """(QScreen, layout screen) pairs — one per attached screen, by position (leftmost first)
    — and what was folded. A layout naming more screens than are attached folds the rest onto
    the screens present; screens the layout does not name show the built-in extras (the
    heatmaps, more maps)."""
    screens = by_position(screens)
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
               notice: str | None = None, unencrypted: list[str] = ()) -> list[WallWindow]:
    """One window per screen, placed on it, showing its screen of the layout (the built-in
    one for this many screens when none is given). ``notice``: a layout problem to say;
    ``unencrypted``: endpoints running plain beyond this machine (the red badge)."""
    windows = []
    # The layout's palette (night: dimmed), before any window is made: they read it.
    theme.choose_palette(layout.palette if layout is not None else None)
    pairs, folded = place(layout, screens)
    for i, (screen, shown) in enumerate(pairs):
        # The first screen (leftmost) is the command screen: the full header; the others the
        # slim one.
        w = WallWindow(situation, bridge, lang, mode, shown, slim=i > 0,
                       scale=theme.screen_scale(screen))
        w.setScreen(screen)
        w.setGeometry(screen.geometry())
        w.header.show_security(list(unencrypted))
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
    for w in windows:                       # the seat's role, from the dispatch service
        w.header.follow_role(orders.role_now)
    for p in queues + rosters + maps:       # gestures this seat does not have, and why
        p.permission = orders.refusal
    for q in queues:
        q.orders = orders
        q.enable_drag_drop(CASE_MIME, UNIT_MIME, lambda case_id, unit_id, q=q:
                           orders.ask_dispatch(case_id, unit_id, q))      # checked, toasted
        q.dispatch_key.connect(lambda case_id, q=q: orders.pick(case_id, q))
    for r in rosters:
        r.orders = orders
        r.enable_drag_drop(UNIT_MIME, CASE_MIME, lambda unit_id, case_id, r=r:
                           orders.ask_dispatch(case_id, unit_id, r))
        r.table.setContextMenuPolicy(Qt.CustomContextMenu)
        r.table.customContextMenuRequested.connect(lambda pos, r=r: recall_menu(r, orders, pos))
    for m in maps:
        m.unit_dropped.connect(lambda case_id, unit_id, m=m:
                               orders.ask_dispatch(case_id, unit_id, m))
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
                 layout_key: str | None = None, unencrypted: list[str] = ()):
        super().__init__()
        self.unencrypted = list(unencrypted)    # said in red on every header, re-laid or not
        self.layout_key = layout_key            # the name or path the layout came from
        self.situation, self.bridge, self.lang, self.mode = situation, bridge, lang, mode
        self.orders, self.layout, self.notice = orders, layout, notice
        self.schedule, self.tz = schedule, tz
        self.held = False                       # the duty officer keeps the current layout
        self.exercise = None                    # situation.training.Exercise in TRAINING
        self.windows: list[WallWindow] = []
        self.screens: list = []
        self.handover: Handover | None = None  # the summary on show, until put away
        self.handover_until = 0
        # The start of the shift running now: when it moves, a shift ended (held or not).
        self.shift_began = (engine.shift_window(schedule, situation.now_ms(), tz)[1]
                            if schedule else None)
        if bridge is not None:
            bridge.tick.connect(self.tick)

    def build(self, screens, show: bool = True) -> list[WallWindow]:
        self.screens = by_position(screens)     # leftmost first, whatever Qt's order
        self.windows = build_wall(self.situation, self.bridge, self.lang, self.mode,
                                  self.screens, self.orders, self.layout, self.notice,
                                  self.unencrypted)
        for w in self.windows:
            w.wall = self
            if show:
                w.showFullScreen()
        if self.handover is not None:           # a re-laid wall keeps the summary up
            self.place_handover()
        self.relaid.emit()
        return self.windows

    def tick(self) -> None:
        self.follow_schedule()
        if self.handover is not None and self.situation.now_ms() >= self.handover_until:
            self.dismiss_handover()

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
        began = engine.shift_window(self.schedule, now, self.tz)[1]
        switched, self.shift_began = began != self.shift_began, began
        due = engine.layout_due(self.schedule, now, self.layout_key, held=self.held, tz=self.tz)
        if due and due != self.layout_key:
            from widgets.registry import PANELS
            layout, problem = engine.load_or_default(due, set(PANELS),
                                                     default_layout(len(self.screens)))
            self.layout_key = due
            self.relayout(layout=layout)
            if problem:
                self.windows[0].header.flash(problem, error=True)
        if switched:                            # after the re-layout: on the new windows
            self.show_handover(self.summary(shift_end=began))

    # ---- the shift handover ----------------------------------------------------------------
    def summary(self, shift_end: int | None = None) -> Handover:
        """The handover of the shift that ended at ``shift_end`` (a switch), or of the shift
        running now, so far; without a schedule, of the last HANDOVER_HOURS."""
        now = self.situation.now_ms()
        orders = self.orders.orders.values() if self.orders is not None else ()
        if not self.schedule:
            span = ShiftSpan("", "", now - HANDOVER_HOURS * 3_600_000, now)
            return summarise(self.situation, span, None, now, orders)
        spans = []
        at = now if shift_end is None else shift_end - 1
        for _ in range(2):                      # this shift, then the one after it
            shift, start, end = engine.shift_window(self.schedule, at, self.tz)
            spans.append(ShiftSpan(shift.name, engine.shift_title(shift, "zh"), start, end))
            at = end
        return summarise(self.situation, spans[0], spans[1], now, orders)

    def show_handover(self, handover: Handover | None = None) -> None:
        """Up over the first window until put away or SHOW_MS of the situation's clock."""
        self.dismiss_handover()
        self.handover = handover or self.summary()
        self.handover_until = self.handover.now_ms + SHOW_MS
        self.place_handover()

    def place_handover(self) -> None:
        if not self.windows:
            return
        first = self.windows[0]
        view = HandoverView(self.handover, self.lang, self.tz, self.handover_until, first)
        view.dismissed.connect(self.dismiss_handover)
        view.export_asked.connect(first.ask_export_handover)
        first.place_handover(view)

    def dismiss_handover(self) -> None:
        self.handover = None
        for w in self.windows:
            if shiboken6.isValid(w) and w.handover_view is not None:
                w.handover_view.hide()
                w.handover_view.deleteLater()
                w.place_handover(None)

    def hold(self, held: bool = True) -> None:
        self.held = held


def recall_menu(roster, orders, pos) -> None:
    index = roster.table.indexAt(pos)
    if not index.isValid():
        return
    unit_id = roster.model.keys[index.row()]
    unit = roster.situation.units.get(unit_id)
    if unit is None or unit.case_id is None:
        return
    menu = QMenu(roster)
    act = menu.addAction(tr("menu.recall", roster.lang, unit=unit.callsign, case=unit.case_id),
                         lambda: orders.recall(unit_id, roster))
    why = orders.refusal("recall", unit_id=unit_id)
    if why is not None:                 # shown, greyed, with the reason under it
        act.setEnabled(False)
        menu.addAction(why).setEnabled(False)
    menu.popup(roster.table.viewport().mapToGlobal(pos))

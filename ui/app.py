"""The windowed wall: one window per screen, fed by the bridge."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

import shiboken6
from PySide6.QtCore import QEvent, QObject, QPoint, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QWidget

from feeds.startup import STARTUP

from ui.bridge import SituationBridge
from ui.session import Session, write_json_atomic
from widgets.theme import apply_theme
from ui.wall import Wall, by_position
from widgets.tiles import register_scheme

EXIT_USAGE = 2


def window_status(windows) -> list[dict]:
    """Per window (the wall's leftmost first): its screen and geometry, its panels, where each
    panel stands in it (``panel_rects``) and, with a map, what the map shows (``map_view``)."""
    out = []
    for w in windows:
        geo = w.geometry()
        screen = w.screen()
        entry = {"screen": screen.name() if screen else None, "x": geo.x(), "y": geo.y(),
                 "width": geo.width(), "height": geo.height(), "panels": w.panel_names(),
                 "panel_rects": panel_rects(w),
                 "transport": getattr(w, "transport", None) is not None}   # a replay's bar
        maps = [p for p in w.panels if p.name == "city_map"]
        if maps:            # the live page's own last report (None until its first)
            entry["map_view"] = next((m.map_view for m in maps if m.map_view), None)
        out.append(entry)
    return out


def panel_rects(w) -> dict[str, list[int]]:
    """Panel name → [x, y, width, height] within the window, as laid out now. The pages of a
    rotation share their cell's rectangle; a panel shown twice in one window is ``name#2``
    the second time; a panel not on show in the window (a console's floating dock, or one
    behind another's tab) has none."""
    rotations = getattr(w, "rotations", [])
    out: dict[str, list[int]] = {}
    for p in [w.header.clock] + [p for p in w.panels if w.shown(p)]:
        holder = next((r for r in rotations if any(p is q for q in r.panels)), p)
        if holder.window() is not w or not holder.isVisibleTo(w):
            continue
        at = holder.mapTo(w, QPoint(0, 0))
        key, n = p.name, 2
        while key in out:
            key, n = f"{p.name}#{n}", n + 1
        out[key] = [at.x(), at.y(), holder.width(), holder.height()]
    return out


def save_screenshots(windows, directory: str) -> list[Path]:
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    saved = []
    for i, w in enumerate(windows):
        name = (w.screen().name() if w.screen() else f"screen{i}") or f"screen{i}"
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
        target = path / f"wall-{i}-{safe}.png"
        w.grab().save(str(target))
        saved.append(target)
    return saved


def chromium_flags() -> None:
    """QtWebEngine's Chromium refuses to start as root without --no-sandbox, and has no GPU
    offscreen; add what this process needs unless the user set the flags already."""
    flags = os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "")
    extra = []
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--no-sandbox" not in flags:
        extra.append("--no-sandbox")
    if os.environ.get("QT_QPA_PLATFORM", "").startswith("offscreen") and "--disable-gpu" not in flags:
        extra.append("--disable-gpu")
    if extra:
        os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] = " ".join([flags, *extra]).strip()


def load_duty_history(session: Session, args) -> None:
    """The peak-duty chart's history: ``--history FILE``; with ``--demo`` and no file, four
    weeks of the demo city's rhythm up to its start. A file that cannot be used is said on the
    chart (the command line's ``duty-plan`` exits 2 instead); the wall runs on."""
    from situation.history import HistoryError, load_history
    from situation.peakduty import load_roster
    from widgets.peak_duty import PeakDuty
    PeakDuty.history, PeakDuty.problem, PeakDuty.roster = None, None, None
    PeakDuty.config = getattr(args, "duty", None)
    if getattr(args, "roster", None):
        try:
            PeakDuty.roster = load_roster(args.roster, PeakDuty.config)
        except HistoryError as exc:
            PeakDuty.problem = str(exc)
    path = getattr(args, "history", None)
    if path:
        try:
            loaded = load_history(path)
        except HistoryError as exc:
            PeakDuty.problem = " · ".join(filter(None, (PeakDuty.problem, str(exc))))
        else:
            PeakDuty.history = loaded.events
            if loaded.problems:
                PeakDuty.problem = "; ".join(loaded.problems)
    elif session.mode == "DEMO":
        from feeds.demo_history import history_events
        PeakDuty.history = history_events(28, seed=args.seed, end_ms=session.clock.now_ms())


def load_wall_layout(name: str | None, screens: int):
    """(layout or None for the built-in, the problem to say): a bad layout file never stops
    the wall — it opens on the built-in layout and says why, on the wall and on stderr."""
    if not name:
        return None, None
    from layouts import engine
    from ui.wall import default_layout
    from widgets.registry import PANELS
    layout, problem = engine.load_or_default(name, set(PANELS), default_layout(screens))
    if problem:
        print(f"citywall: warning: {problem}", file=sys.stderr)
    return layout, problem


def load_shift_schedule(name: str | None):
    """(shifts or None, the problem to say): a bad schedule file never stops the wall."""
    if not name:
        return None, None
    from layouts import engine
    try:
        return engine.load_schedule(name), None
    except engine.LayoutError as exc:
        print(f"citywall: warning: {exc}", file=sys.stderr)
        return None, str(exc)


def run_console(app, session: Session, args, bridge, orders, layout, at_exit) -> int:
    """The commander's console: one normal window with docks (``--console``)."""
    from layouts import engine
    from ui.console import CommanderConsole
    from ui.wall import link_panels
    from widgets.registry import PANELS
    if not isinstance(layout, engine.Layout):
        layout, problem = engine.load_or_default(layout or "commander", set(PANELS),
                                                 engine.load_layout("commander", set(PANELS)))
    console = CommanderConsole(session.situation, bridge, args.lang, session.mode, layout)
    console.header.show_security(session.security.exposed())
    link_panels([console], orders)
    if session.replay is not None:             # the transport bar, under the docks
        from ui.transport import attach_transport
        attach_transport([console], session.replay, bridge, args.lang)
    console.show()
    mark_first_paint([console])
    startup_done()
    bridge.start()
    from ui.status_loop import WallStatus         # --status-out and --metrics-port alike
    status = WallStatus(session, args, bridge, lambda: [console], window_status, console)
    status.start()

    def finish():
        bridge.drain()
        console.refresh_now()
        if args.screenshot_dir:
            save_screenshots([console], args.screenshot_dir)
        status.final()
        app.quit()

    if args.run_for:
        QTimer.singleShot(int(args.run_for * 1000), finish)
    app.exec()
    console.save()
    bridge.stop()
    if orders is not None:
        orders.stop()
    if at_exit is not None:
        at_exit()
    return 0


def require_screens(screens) -> bool:
    """A wall needs a screen: with none (a headless box, a dead display link) say so plainly;
    the caller exits with EXIT_USAGE (2)."""
    if screens:
        return True
    print("citywall: error: Qt reports no screens (is a display attached? for a run "
          "without one use --headless)", file=sys.stderr)
    return False


def say_recording_problems(recorder, bridge, windows) -> None:
    """A recording that stopped (a full disk) is said in red on every screen's header when it
    happens and again each minute while it lasts; the console runs on."""
    said = {"text": None, "at": 0.0}

    def check():
        import time
        text = recorder.problem
        now = time.monotonic()
        if text and (text != said["text"] or now - said["at"] >= 60):
            for w in windows():
                w.header.flash(text, error=True)
            said["at"] = now
        said["text"] = text
    bridge.tick.connect(check)


def list_screens() -> int:
    """What Qt sees, one screen a line, BY POSITION (left to right, then top to bottom —
    the order the wall and a layout's ``match = N`` use): index, name, geometry, DPI, scale.
    Stdout holds only those lines; that they are by position is said on stderr."""
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    screens = by_position(app.screens())
    if not require_screens(screens):
        return EXIT_USAGE
    print("citywall: screens by position: left to right, then top to bottom (the index a "
          "layout's match = N uses), whatever order Qt lists them in", file=sys.stderr)
    for i, sc in enumerate(screens):
        g = sc.geometry()
        print(f"{i}\t{sc.name() or '(unnamed)'}\t{g.width()}x{g.height()}+{g.x()}+{g.y()}"
              f"\t{sc.logicalDotsPerInch():.0f} dpi\t×{sc.devicePixelRatio():g}")
    return 0


def follow_screens(app, wall) -> None:
    """A screen plugged in or out re-lays the wall, the screens taken by position again;
    nothing the situation holds is lost. A screen moved (the display settings rearranged) so
    that the order by position changes re-lays it too, once the moves have settled (a zero
    timer: a rearrangement moves several screens in a row). With no screen left the windows
    stay as they are until one comes back."""
    def relay(gone=None) -> None:
        screens = [s for s in by_position(app.screens()) if s is not gone]
        if screens:
            wall.relayout(screens)

    def moved() -> None:
        held = [s for s in wall.screens if shiboken6.isValid(s)]
        if held and by_position(held) != held:      # the same screens, now in another order
            relay()

    settle = QTimer(wall)
    settle.setSingleShot(True)
    settle.setInterval(0)
    settle.timeout.connect(moved)

    def watch(screen) -> None:
        screen.geometryChanged.connect(lambda _g: settle.start())

    for sc in app.screens():
        watch(sc)
    app.screenAdded.connect(lambda sc: (watch(sc), relay()))
    app.screenRemoved.connect(lambda sc: relay(gone=sc))


class _FirstPaint(QObject):
    """Marks ``wall_painted_s`` (``feeds.startup``) at the first paint of anything in a wall
    window, then lets go of the application's events."""

    def __init__(self, app, windows):
        super().__init__(app)
        self.app, self.windows = app, list(windows)

    def eventFilter(self, obj, event) -> bool:          # noqa: N802 - Qt's name
        if (event.type() == QEvent.Type.Paint and isinstance(obj, QWidget)
                and obj.window() in self.windows):
            STARTUP.mark("wall_painted_s")
            self.app.removeEventFilter(self)
            self.windows = []
        return False


def mark_first_paint(windows) -> None:
    app = QApplication.instance()
    if app is not None and windows:
        app.installEventFilter(_FirstPaint(app, windows))


def early_app(args):
    """The QApplication, made before the session is built so the start can say what it is
    loading (``ui.startup_progress``); ``run_windows`` goes on with this one."""
    chromium_flags()
    register_scheme()          # before the QApplication: Qt's rule for custom URL schemes
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("CityWall")
    apply_theme(app)
    if not QGuiApplication.screens():
        return None                # nowhere to show it: run_windows says so and exits 2
    from ui.startup_progress import start_progress
    return start_progress(getattr(args, "lang", "zh") or "zh")


def startup_done() -> None:
    """The wall is up: the progress line goes."""
    from ui.startup_progress import finish_progress
    finish_progress()


def run_windows(session: Session, args, at_exit: Callable[[], None] | None = None) -> int:
    chromium_flags()
    register_scheme()          # before the QApplication: Qt's rule for custom URL schemes
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("CityWall")
    screens = by_position(QGuiApplication.screens())     # leftmost first
    if not require_screens(screens):
        return EXIT_USAGE
    apply_theme(app)
    from widgets.city_map import CityMap
    from widgets.tiles import open_tile_source
    # A tile source that cannot be used is said on the map, which keeps its district basemap.
    CityMap.tile_source = open_tile_source(getattr(args, "tiles", None), args.lang)
    STARTUP.stage("history")
    load_duty_history(session, args)
    bridge = SituationBridge(session.situation, session.sources)
    orders = None
    if session.client is not None:
        from ui.dispatch import CONFIRM_KM, DispatchController
        orders = DispatchController(session.situation, session.client, args.lang,
                                    confirm_km=getattr(args, "dispatch_confirm_km", None)
                                    or CONFIRM_KM)
    schedule, problem = load_shift_schedule(getattr(args, "shifts", None))
    if schedule:                     # the shift's layout now, then on the situation's clock
        from layouts import engine
        key = engine.shift_at(schedule, session.clock.now_ms()).layout
    else:
        key = getattr(args, "layout", None) or (
            "training" if getattr(args, "training", False) else None)   # the trainee's panel
    layout, notice = load_wall_layout(key, len(screens))
    STARTUP.stage("wall")
    notice = " · ".join(t for t in (problem, notice) if t) or None
    if getattr(args, "console", False):
        return run_console(app, session, args, bridge, orders, layout or key, at_exit)
    wall = Wall(session.situation, bridge, args.lang, session.mode, orders, layout, notice,
                schedule, layout_key=key, unencrypted=session.security.exposed())
    wall.exercise = session.exercise             # the menu's training debrief
    if session.replay is not None:   # a transport bar on every window, again when re-laid
        from ui.transport import attach_transport
        wall.relaid.connect(lambda: attach_transport(wall.windows, session.replay, bridge,
                                                     args.lang))
    wall.build(screens)              # full screen: a wall console owns its screen
    mark_first_paint(wall.windows)
    startup_done()
    if session.recorder is not None:
        say_recording_problems(session.recorder, bridge, lambda: wall.windows)
    follow_screens(app, wall)
    bridge.start()

    from ui.status_loop import WallStatus         # --status-out and --metrics-port alike
    status = WallStatus(session, args, bridge, lambda: wall.windows, window_status, wall)
    status.start()

    def finish():
        bridge.drain()
        for w in wall.windows:
            w.refresh_now()
        if args.screenshot_dir:
            save_screenshots(wall.windows, args.screenshot_dir)
        status.final()
        app.quit()

    if args.run_for:
        QTimer.singleShot(int(args.run_for * 1000), finish)
    app.exec()
    bridge.stop()
    if orders is not None:
        orders.stop()
    if at_exit is not None:
        at_exit()               # the exports: after finish() or the last window closed
    return 0

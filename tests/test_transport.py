"""The replay's transport bar on every window: play, pause, speed, a minute back or on, jump
to a time, loop a range, the timeline with its pile-up marks, the REPLAY banner — and bad
input said on the bar with nothing changed. Real recordings (MCAP files written here), a
paused replay clock set by hand, no sleeps."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QToolBar

from feeds.demo_day import write_demo_day
from feeds.recording import RecordingWriter, read_recording
from feeds.schema import Case, Heartbeat, SensorReading, frames
from situation.replay import Replay, ReplayClock
from situation.replay_marks import compute
from situation.store import Situation
from tests.test_wall_screens import SCREENS
from ui.bridge import SituationBridge
from ui.transport import TransportBar, attach_transport, jump_target
from widgets.timeline import hhmm
from widgets.header import Header

ROOT = Path(__file__).resolve().parent.parent
START = 1_795_474_800_000            # 2026-11-24 07:00 Beijing time
MIN = 60_000


@pytest.fixture(scope="module")
def day(tmp_path_factory) -> str:
    """A quarter of an hour of the demo city, 07:00:01 to 07:15:00."""
    path = tmp_path_factory.mktemp("rec") / "day.mcap"
    write_demo_day(path, hours=0.25, start_ms=START)
    return str(path)


def replay_of(path: str, speed: float = 16.0) -> Replay:
    rec = read_recording(path)
    clock = ReplayClock(rec.start_ms, speed)
    clock.pause(True)                       # moved by hand: deterministic
    return Replay(rec, Situation(clock))


def straight(path: str, t_ms: int) -> Situation:
    """The situation of a second replay run straight from the start to ``t_ms``."""
    r = replay_of(path)
    r.clock.set(t_ms)
    r.advance()
    return r.situation


def same(a: Situation, b: Situation) -> bool:
    return a.cases == b.cases and a.units == b.units and bool(a.cases) and bool(a.units)


@pytest.fixture
def rig(qtbot, day):
    replay = replay_of(day)
    bridge = SituationBridge(replay.situation, [replay])
    bar = TransportBar(replay, bridge, "en")
    qtbot.addWidget(bar)
    bar.resize(1900, 180)
    bar.show()
    return replay, bridge, bar


def click(qtbot, button) -> None:
    qtbot.mouseClick(button, Qt.LeftButton)


# ---- play, pause, speed -------------------------------------------------------------------------
def test_play_and_pause_drive_the_replays_clock(qtbot, rig):
    replay, _, bar = rig
    t0 = replay.clock.now_ms()
    click(qtbot, bar.play)
    assert not replay.clock.paused
    qtbot.waitUntil(lambda: replay.clock.now_ms() > t0 + 100, timeout=5000)
    click(qtbot, bar.play)
    assert replay.clock.paused
    held = replay.clock.now_ms()
    qtbot.waitUntil(lambda: "paused" in bar.pace.text(), timeout=2000)
    assert replay.clock.now_ms() == held
    assert bar.play.text() == "▶ Play"


def test_the_speed_box_sets_the_clocks_speed_and_offers_the_start_speed(qtbot, day):
    replay = replay_of(day, speed=3)                      # not one of SPEEDS
    bar = TransportBar(replay, SituationBridge(replay.situation, [replay]), "en")
    qtbot.addWidget(bar)
    offered = [bar.speed.itemData(i) for i in range(bar.speed.count())]
    assert offered == [0.25, 0.5, 1, 2, 3, 4, 8, 16, 32, 64]
    assert bar.speed.currentData() == 3
    bar.speed.setCurrentIndex(bar.speed.findData(8.0))    # what picking ×8 does
    assert replay.clock.speed == 8
    bar.control.faster(+1)                                # the ] key
    assert replay.clock.speed == 16
    qtbot.waitUntil(lambda: bar.speed.currentData() == 16, timeout=2000)


# ---- step, jump, loop: the situation as it stood ------------------------------------------------
def test_a_minute_on_and_back_rebuilds_the_situation_of_a_straight_run(qtbot, rig, day):
    replay, bridge, bar = rig
    replay.seek(START + 5 * MIN)
    with qtbot.waitSignal(bridge.changed, timeout=2000):   # every panel hears of it
        click(qtbot, bar.fwd)
    assert replay.clock.now_ms() == START + 6 * MIN
    assert same(replay.situation, straight(day, START + 6 * MIN))
    click(qtbot, bar.back)
    click(qtbot, bar.back)
    assert replay.clock.now_ms() == START + 4 * MIN
    assert same(replay.situation, straight(day, START + 4 * MIN))


def test_jump_to_a_time_typed_on_the_bar(qtbot, rig, day):
    replay, _, bar = rig
    qtbot.keyClicks(bar.when, "07:10")
    qtbot.keyClick(bar.when, Qt.Key_Return)
    assert replay.clock.now_ms() == START + 10 * MIN
    assert same(replay.situation, straight(day, START + 10 * MIN))
    assert bar.when.text() == ""
    qtbot.keyClicks(bar.when, "7:03:30")
    click(qtbot, bar.go)
    assert replay.clock.now_ms() == START + 3 * MIN + 30_000
    # The minute the recording starts in counts: 07:00 is its first message, 07:00:01.
    assert jump_target("07:00", START + 1000, START + 15 * MIN, START) == START + 1000


@pytest.mark.parametrize("typed, said", [("09:30", "outside the recording"),
                                         ("06:59:59", "outside the recording"),
                                         ("7h10", "is not a time"), ("25:00", "is not a time")])
def test_a_jump_outside_the_recording_or_not_a_time_is_said_and_changes_nothing(
        qtbot, rig, typed, said):
    replay, _, bar = rig
    replay.seek(START + 2 * MIN)
    before = dict(replay.situation.cases)
    qtbot.keyClicks(bar.when, typed)
    qtbot.keyClick(bar.when, Qt.Key_Return)
    assert replay.clock.now_ms() == START + 2 * MIN
    assert replay.situation.cases == before
    assert said in bar.notice.toolTip()
    assert bar.when.text() == typed                       # kept, to be corrected


def test_a_loop_from_a_to_b_wraps_back_to_a(qtbot, rig, day):
    replay, bridge, bar = rig
    replay.seek(START + 2 * MIN)
    click(qtbot, bar.set_a)
    assert "press B" in bar.loop_label.text() and bar.timeline.mark_a.isVisible()
    bar.control.seek(START + 4 * MIN)
    click(qtbot, bar.set_b)
    assert replay.loop == (START + 2 * MIN, START + 4 * MIN)
    assert bar.loop_label.text() == "loop 07:02:00–07:04:00"
    tl = bar.timeline
    assert tl.loop.isVisible()
    assert tl.loop.getRegion() == pytest.approx((tl.x_at(START + 2 * MIN),
                                                 tl.x_at(START + 4 * MIN)))
    replay.clock.set(START + 4 * MIN + 500)               # the playing clock passes B
    bridge.drain()
    assert replay.clock.now_ms() == START + 2 * MIN
    assert same(replay.situation, straight(day, START + 2 * MIN))
    # Dragging the shaded range moves the loop.
    tl.loop.setRegion((tl.x_at(START + 5 * MIN), tl.x_at(START + 8 * MIN)))
    assert replay.loop == (START + 5 * MIN, START + 8 * MIN)
    click(qtbot, bar.unloop)
    assert replay.loop is None
    qtbot.waitUntil(lambda: not tl.loop.isVisible(), timeout=2000)


def test_bad_loops_are_said_and_leave_the_loop_alone(qtbot, rig):
    replay, _, bar = rig
    click(qtbot, bar.set_b)                               # B with no A
    assert "Set the loop start" in bar.notice.toolTip()
    click(qtbot, bar.set_a)
    click(qtbot, bar.set_b)                               # B at A: no range at all
    assert replay.loop is None
    assert "at least a second" in bar.notice.toolTip()


def test_a_click_on_the_timeline_goes_there(qtbot, rig, day):
    replay, _, bar = rig
    tl = bar.timeline
    qtbot.waitUntil(lambda: tl.width() > 500, timeout=2000)
    target = START + 9 * MIN
    x = int(round(tl.scene_x(target)))
    qtbot.mouseClick(tl.viewport(), Qt.LeftButton, pos=QPoint(x, tl.height() // 2))
    assert abs(replay.clock.now_ms() - target) < 3_000    # a pixel is about a second here
    assert same(replay.situation, straight(day, replay.clock.now_ms()))


def test_a_drag_across_the_timeline_loops_that_range(qtbot, rig):
    replay, _, bar = rig
    tl = bar.timeline
    qtbot.waitUntil(lambda: tl.width() > 500, timeout=2000)
    y = tl.height() // 2
    a, b = (QPoint(int(round(tl.scene_x(START + m * MIN))), y) for m in (3, 6))
    view = tl.viewport()
    qtbot.mousePress(view, Qt.LeftButton, pos=a)
    for k in range(1, 11):                                 # a hand moves in steps
        qtbot.mouseMove(view, a + (b - a) * (k / 10))
    qtbot.mouseRelease(view, Qt.LeftButton, pos=b)
    lo, hi = replay.loop
    assert abs(lo - (START + 3 * MIN)) < 3_000 and abs(hi - (START + 6 * MIN)) < 3_000
    assert replay.clock.now_ms() == replay.start_ms        # a drag is not a click: no seek


# ---- the timeline's marks -----------------------------------------------------------------------
def write_pileup(path: Path, chunk_bytes: int = 1 << 20) -> None:
    """15 minutes of four noise sensors every 10 s: over the alarm line (85 dB) from 07:05
    to 07:10; two cases due 07:10, closed 07:12 (overdue in between)."""
    w = RecordingWriter(path, chunk_bytes=chunk_bytes, compression="none")
    seq = 0

    def nxt():
        nonlocal seq
        seq += 1
        return seq
    for k in range(91):
        t = START + k * 10_000
        loud = 5 * MIN <= t - START < 10 * MIN
        w.write(frames([SensorReading(v=1, src="t", seq=nxt(), ts=t, id=f"NS-{i}", kind="noise",
                                      lat=39.9, lon=116.4,
                                      metrics={"laeq": 95.0 if loud else 50.0})
                        for i in range(4)]), t)
        for cid in ("C1", "C2"):
            status = {0: "registered", 72: "closed"}.get(k)
            if status:
                w.write(frames(Case(v=1, src="t", seq=nxt(), ts=t, case_id=cid, status=status,
                                    category="event.street_order.vending", title="x",
                                    description="x", lat=39.9, lon=116.4, source="patrol",
                                    priority=2, reported_at=START, due_at=START + 10 * MIN)), t)
        w.write(frames(Heartbeat(v=1, src="t", seq=nxt(), ts=t)), t)
    w.close()


def test_marks_stand_where_the_alarms_and_overdue_cases_piled_up(tmp_path):
    path = tmp_path / "pileup.mcap"
    write_pileup(path)
    m = compute(read_recording(path))
    assert m.bin_ms == 10_000
    alarm = [k for k in m.marks if k.kind == "alarm"]
    assert [(k.start_ms, k.end_ms, k.peak) for k in alarm] == [
        (START + 5 * MIN, START + 10 * MIN, 4)]
    assert m.alarms.sum() == 30 * 4
    # Overdue: both cases from 07:10 (due) until closed at 07:12, counted at each bin's end.
    ends = m.edges[1:]
    expected = [2 if START + 10 * MIN < e < START + 12 * MIN else 0 for e in ends]
    assert m.overdue.tolist() == expected
    (late,) = [k for k in m.marks if k.kind == "overdue"]
    assert START + 10 * MIN <= late.start_ms < late.end_ms <= START + 12 * MIN
    assert alarm[0].label("en") == "alarms piled up 07:05–07:10 (peak 4 per 10 s)"


def test_the_timeline_shows_the_marks_with_their_words(qtbot, tmp_path):
    path = tmp_path / "pileup.mcap"
    write_pileup(path)
    replay = replay_of(str(path))
    bar = TransportBar(replay, SituationBridge(replay.situation, [replay]), "en")
    qtbot.addWidget(bar)
    qtbot.waitUntil(lambda: bar.timeline.marks is not None, timeout=10_000)   # off-thread
    tl = bar.timeline
    xs, _ = tl.pile_ticks.getData()
    alarm_x = [x for x in xs if tl.x_at(START + 5 * MIN) <= x <= tl.x_at(START + 10 * MIN)]
    assert len(xs) == 2 and len(alarm_x) == 1
    assert "alarms piled up 07:05–07:10" in tl.tip_at(START + 7 * MIN)
    assert "alarms piled up" not in tl.tip_at(START + 2 * MIN)


# ---- problems and refusals said on the bar ------------------------------------------------------
def test_a_truncated_recordings_problem_is_said_on_the_bar(qtbot, tmp_path):
    path = tmp_path / "cut.mcap"
    write_pileup(path, chunk_bytes=4096)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 6 // 10])          # a crash mid-recording
    replay = replay_of(str(path))
    assert replay.notices
    bar = TransportBar(replay, SituationBridge(replay.situation, [replay]), "en")
    qtbot.addWidget(bar)
    assert "Recording problem" in bar.notice.toolTip()
    assert "cut short" in bar.notice.toolTip()


def test_training_cannot_go_back_and_says_why(qtbot, day):
    """The ◀ button is disabled with the reason; the ← key, which has no disabled look, says
    it on the bar; nothing moves either way."""
    from main import build_parser
    from ui.session import build_replay_session
    args = build_parser().parse_args(["--replay", day, "--training", "--speed", "4"])
    session = build_replay_session(args)
    try:
        replay = session.replay
        replay.pause()
        bar = TransportBar(replay, SituationBridge(session.situation, [replay]), "en")
        qtbot.addWidget(bar)
        click(qtbot, bar.fwd)
        here = replay.clock.now_ms()
        assert not bar.back.isEnabled()
        assert "training runs forward only" in bar.back.toolTip()
        click(qtbot, bar.back)                              # a disabled button: nothing
        assert replay.clock.now_ms() == here and bar.notice.toolTip() == ""
        bar.control.step(-1)                                # what the ← key does
        assert replay.clock.now_ms() == here
        assert "training runs forward only" in bar.notice.toolTip()
    finally:
        session.stop()


# ---- on every window, with the banner -----------------------------------------------------------
def test_the_banner_shows_replay_its_speed_and_pause(qtbot, day):
    replay = replay_of(day, speed=16)
    header = Header(replay.situation, "en", "REPLAY")
    qtbot.addWidget(header)
    header.refresh()
    assert header.mode.text().strip() == "REPLAY  ❚❚ paused"
    replay.play()
    header.refresh()
    assert header.mode.text().strip() == "REPLAY  ×16"
    assert "replay time" in header.clock.date.text()


def console_of(qtbot, tmp_path, replay):
    """The commander's console on a replay, its settings in ``tmp_path``."""
    from layouts import engine
    from ui.console import CommanderConsole
    from widgets.registry import PANELS
    bridge = SituationBridge(replay.situation, [replay])
    settings = QSettings(str(tmp_path / "console.ini"), QSettings.IniFormat)
    console = CommanderConsole(replay.situation, bridge, "en", "REPLAY",
                               engine.load_layout("commander", set(PANELS)).screens[0], settings)
    qtbot.addWidget(console)
    return console, bridge


def shown_active(qtbot, window) -> None:
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)


def test_the_console_gets_a_bar_its_keys_and_an_instant_banner(qtbot, tmp_path, day):
    replay = replay_of(day)
    console, bridge = console_of(qtbot, tmp_path, replay)
    (bar,) = attach_transport([console], replay, bridge, "en")
    assert attach_transport([console], replay, bridge, "en") == []     # one bar a window
    holder = bar.parentWidget()
    assert isinstance(holder, QToolBar)
    assert console.toolBarArea(holder) == Qt.BottomToolBarArea
    shown_active(qtbot, console)
    qtbot.keyClick(console, Qt.Key_Space)
    assert not replay.clock.paused
    assert "×16" in console.header.mode.text()            # at once, not at the next tick
    qtbot.keyClick(console, Qt.Key_Space)
    assert replay.clock.paused
    assert "paused" in console.header.mode.text()
    t = replay.clock.now_ms()
    qtbot.keyClick(console, Qt.Key_Right)
    assert replay.clock.now_ms() == t + MIN


def test_every_wall_window_gets_a_bar_again_when_the_wall_is_relaid(qtbot, day):
    from ui.wall import Wall
    replay = replay_of(day)
    bridge = SituationBridge(replay.situation, [replay])
    wall = Wall(replay.situation, bridge, "en", "REPLAY")
    wall.relaid.connect(lambda: attach_transport(wall.windows, replay, bridge, "en"))
    screen = QGuiApplication.screens()[:1]
    first = wall.build(screen * 2, show=False)             # two windows (one offscreen screen)
    for w in first:
        qtbot.addWidget(w)
    assert all(w.transport.parentWidget() is w for w in first)
    lay = first[0].layout()
    assert lay.itemAt(lay.count() - 1).widget() is first[0].transport      # at the bottom
    again = wall.relayout(screen)
    for w in again:
        qtbot.addWidget(w)
    assert all(w.transport is not None and w.transport.parentWidget() is w for w in again)
    bars = [w.transport for w in again] + [w.transport for w in first if w.transport]
    bars[0].control.step(+1)                               # one bar acts, every bar follows
    assert len({id(b.control) for b in bars}) == 1
    # … each bar's window shows the one time: its header's clock (the bar shows none there).
    import shiboken6
    clocks = [b.header_clock for b in bars if shiboken6.isValid(b.header_clock)]
    assert len(clocks) >= len(again)
    assert {c.time.text() for c in clocks} == {hhmm(replay.clock.now_ms(), seconds=True)}


def test_a_two_screen_replay_wall_has_a_bar_on_each_screen(tmp_path, day):
    config = tmp_path / "screens.json"
    config.write_text(json.dumps(SCREENS))
    status, shots = tmp_path / "status.json", tmp_path / "shots"
    env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={config}")
    out = subprocess.run([sys.executable, "main.py", "--replay", day, "--speed", "8",
                          "--run-for", "3", "--status-out", str(status),
                          "--screenshot-dir", str(shots)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(status.read_text())
    assert doc["mode"] == "REPLAY"
    wins = sorted(doc["windows"], key=lambda w: w["x"])
    assert [(w["screen"], w["transport"]) for w in wins] == [("wall-left", True),
                                                            ("wall-right", True)]
    assert len(list(shots.glob("*.png"))) == 2


def test_the_keys_work_while_the_map_has_the_focus(qtbot, tmp_path, day):
    """A trainee who just dragged onto the map presses Space: the web view must not keep it."""
    replay = replay_of(day)
    console, bridge = console_of(qtbot, tmp_path, replay)
    attach_transport([console], replay, bridge, "en")
    shown_active(qtbot, console)
    view = next(p for p in console.panels if p.name == "city_map").view
    qtbot.waitUntil(lambda: view.focusProxy() is not None, timeout=10000)
    page = view.focusProxy()
    page.setFocus()
    qtbot.waitUntil(page.hasFocus, timeout=5000)
    assert replay.clock.paused
    qtbot.keyClick(page, Qt.Key_Space)
    assert not replay.clock.paused
    qtbot.keyClick(page, Qt.Key_Space)
    t = replay.clock.now_ms()
    qtbot.keyClick(page, Qt.Key_Right)
    assert replay.clock.now_ms() == t + MIN

"""What a replay and a training run look like on the wall (issue 14): one clock on screen, the
timeline's volume with its scale, what training forbids disabled with the reason, and the
trainee's own orders with their outcomes. Real recordings (the demo city's), the situation's
clock moved by hand or by a wall clock the test owns, waits with timeouts, no timing asserts.
"""
from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter

import main
from feeds.recording import read_recording
from situation.catalog import stage_name
from situation.replay import Replay, ReplayClock
from situation.store import Situation
from situation.suggest import nearest_available
from ui.bridge import SituationBridge
from ui.transport import TransportBar, attach_transport
from ui.wall import Wall
from widgets.i18n import tr
from widgets.timeline import AXIS_PX, hhmm
from widgets.training_log import reason_words

pytestmark = pytest.mark.timeout(120)

# The quarter of an hour of the demo city the transport's tests replay (07:00:01–07:15:00).
from tests.test_transport import MIN, START, day  # noqa: E402,F401  (a fixture, shared)


class WallClock:
    """The real seconds a ScaledClock runs on, owned by the test. ``drift``: every reading
    moves it on this much, as time passes between two reads on a real wall."""

    def __init__(self, drift: float = 0.0):
        self.s, self.drift = 1000.0, drift

    def __call__(self) -> float:
        self.s += self.drift
        return self.s


def session_of(day: str, *extra: str, lang: str = "en"):
    from ui.session import build_session
    return build_session(main.build_parser().parse_args(["--replay", day, "--lang", lang,
                                                         *extra]))


# ---- one clock on screen ------------------------------------------------------------------------
def test_one_clock_on_screen_the_headers_and_it_follows_the_replay(qtbot, day):
    """The bar shows no time of its own where its window has a header (two clocks a few
    tenths of a second apart read 16 s apart at ×64). Paused at several points, and playing
    at ×16 on a wall clock that moves on at every reading (0.07 s: 1.1 s of replay time a
    read): whichever timer fires — the bars' (four times a second), the bridge's tick (the
    header's own redraw), an action — the header's clock shows the replay's time."""
    rec = read_recording(day)
    wall_s = WallClock()
    clock = ReplayClock(rec.start_ms, 16, wall_s=wall_s)
    clock.pause(True)
    replay = Replay(rec, Situation(clock))
    bridge = SituationBridge(replay.situation, [replay])
    wall = Wall(replay.situation, bridge, "en", "REPLAY")
    wall.relaid.connect(lambda: attach_transport(wall.windows, replay, bridge, "en"))
    screen = QGuiApplication.screens()[:1]
    for w in wall.build(screen * 2, show=False):          # two windows, each with its header
        qtbot.addWidget(w)
    windows = wall.windows
    control = windows[0].transport.control

    for w in windows:                       # the bar shows no time of its own: one clock
        assert not w.transport.time.isVisibleTo(w) and w.header.clock.time.isVisibleTo(w)

    def shown() -> set[str]:
        return {w.header.clock.time.text() for w in windows}

    def each_window_one() -> list[str]:
        for w in windows:
            assert not w.transport.time.isVisibleTo(w)
        return [w.header.clock.time.text() for w in windows]

    for minute in (0, 3, 7, 11):                           # paused, here and there
        control.seek(START + minute * MIN + 17_400)
        assert shown() == {hhmm(clock.now_ms(), seconds=True)}
        bridge.tick.emit()
        assert shown() == {hhmm(clock.now_ms(), seconds=True)}
    control.seek(START + 2 * MIN)
    control.play()
    wall_s.drift = 0.07                                    # time passes between two reads
    for fire in (control.changed.emit, bridge.tick.emit, lambda: control.set_speed(8.0),
                 control.changed.emit, bridge.tick.emit, bridge.drain, control.changed.emit):
        wall_s.s += 0.37
        fire()
        assert "--:--:--" not in each_window_one()
    wall_s.drift = 0.0
    control.pause()
    assert shown() == {hhmm(clock.now_ms(), seconds=True)}
    for w in windows:                                      # the header says whose time it is
        assert "replay time" in w.header.clock.date.text()


# ---- the timeline's volume has a scale ----------------------------------------------------------
@pytest.mark.parametrize("lang, unit", [("en", "msg/min"), ("zh", "条/分")])
def test_the_timelines_volume_has_a_scale_with_its_unit(qtbot, day, lang, unit):
    rec = read_recording(day)
    clock = ReplayClock(rec.start_ms, 16)
    clock.pause(True)
    replay = Replay(rec, Situation(clock))
    bar = TransportBar(replay, SituationBridge(replay.situation, [replay]), lang)
    qtbot.addWidget(bar)
    bar.resize(1900, 176)
    bar.show()
    tl = bar.timeline
    qtbot.waitUntil(lambda: tl.marks is not None, timeout=20_000)      # counted off-thread
    axis = tl.volume_axis
    assert axis.isVisible() and axis.style["tickFont"].pixelSize() >= AXIS_PX >= 18
    # The scale is messages a minute: the bins are 10 s here, so a bin's count × 6.
    m = tl.marks
    assert m.bin_ms == 10_000 and m.per_minute == 6
    assert axis.peak == pytest.approx(m.density.max() * 6)
    # Drawn, not culled: the axis' own drawing labels every line it laid out (once it has
    # widened to fit them: it measures its labels as it first draws them).
    def drawn() -> list[str]:
        image = QImage(400, 400, QImage.Format_ARGB32)
        painter = QPainter(image)
        try:
            return [text for _, _, text in axis.generateDrawSpecs(painter)[2]]
        finally:
            painter.end()
    qtbot.waitUntil(lambda: len(drawn()) >= 2
                    and drawn() == [t for _, t in axis.drawn_lines], timeout=5000)
    lines = axis.drawn_lines
    labels = [text for _, text in lines]
    assert labels[-1].endswith(f" {unit}")                 # the top line names the unit
    assert all(t.replace(",", "").isdigit() for t in labels[:-1])
    for y, text in lines:                                  # each at its value, under the peak
        value = float(text.split()[0].replace(",", ""))
        assert 0 < y <= 1 and value == pytest.approx(y * axis.peak)
    assert tr("tp.volume_tip", lang) == axis.toolTip()


# ---- what the mode forbids is disabled, with the reason -----------------------------------------
def forbiddable(bar: TransportBar):
    return {"back": bar.back, "A": bar.set_a, "B": bar.set_b, "clear loop": bar.unloop}


def test_training_disables_going_back_jumping_back_and_looping_with_the_reason(qtbot, day):
    session = session_of(day, "--training", "--speed", "4")
    try:
        replay = session.replay
        replay.pause()
        bar = TransportBar(replay, SituationBridge(session.situation, [replay]), "en")
        qtbot.addWidget(bar)
        bar.resize(1900, 176)
        bar.show()
        bar.control.seek(START + 5 * MIN)                  # forward: allowed
        assert replay.clock.now_ms() == START + 5 * MIN
        back = tr("tp.training_back", "en")
        loop = tr("tp.training_loop", "en")
        assert back.startswith("training runs forward only") and loop.startswith("no loops")
        for name, button in forbiddable(bar).items():
            assert not button.isEnabled(), name
            assert button.toolTip() == (back if name == "back" else loop), name
        assert bar.fwd.isEnabled() and bar.play.isEnabled() and bar.speed.isEnabled()
        # A jump: to a later time, Go; to an earlier one, Go disabled saying why.
        bar.when.setText("07:02")
        assert not bar.go.isEnabled() and bar.go.toolTip() == back
        assert bar.when.property("bad") is True
        bar.when.setText("07:09")
        assert bar.go.isEnabled()
        qtbot.mouseClick(bar.go, Qt.LeftButton)
        assert replay.clock.now_ms() == START + 9 * MIN
        # The timeline: the past shaded and saying why; a click there does nothing.
        tl = bar.timeline
        assert tl.forward_only == back and tl.past.isVisible()
        assert back in tl.tip_at(START + 3 * MIN) and back not in tl.tip_at(START + 12 * MIN)
        qtbot.waitUntil(lambda: tl.width() > 500, timeout=5000)
        x = int(round(tl.scene_x(START + 3 * MIN)))
        qtbot.mouseClick(tl.viewport(), Qt.LeftButton, pos=QPoint(x, tl.height() // 2))
        assert replay.clock.now_ms() == START + 9 * MIN and bar.notice.toolTip() == ""
        # The keys, which have no disabled look, say it on the bar (in the bar's language).
        bar.control.step(-1)
        assert replay.clock.now_ms() == START + 9 * MIN and back in bar.notice.toolTip()
        bar.control.set_loop(START + 10 * MIN, START + 12 * MIN)
        assert replay.loop is None and loop in bar.notice.toolTip()
        # At the end the day does not start again: play is disabled, saying so.
        bar.control.seek(replay.end_ms)
        assert not bar.play.isEnabled()
        assert bar.play.toolTip() == tr("tp.training_over", "en")
    finally:
        session.stop()


def test_a_plain_replay_enables_them_all(qtbot, day):
    session = session_of(day, "--speed", "4", lang="zh")
    try:
        replay = session.replay
        replay.pause()
        bar = TransportBar(replay, SituationBridge(session.situation, [replay]), "zh")
        qtbot.addWidget(bar)
        bar.control.seek(START + 5 * MIN)
        for name, button in forbiddable(bar).items():
            assert button.isEnabled(), name
        assert bar.back.toolTip() == "←"
        bar.when.setText("07:02")                          # back is fine here
        assert bar.go.isEnabled() and bar.when.property("bad") is False
        bar.when.setText("7h")                             # not a time: Go says why
        assert not bar.go.isEnabled() and "不是时间" in bar.go.toolTip()
        assert bar.timeline.forward_only == "" and not bar.timeline.past.isVisible()
        bar.control.seek(replay.end_ms)
        assert bar.play.isEnabled()                        # plays again from the start
        assert bar.control.step(-1) and replay.clock.now_ms() == replay.end_ms - MIN
    finally:
        session.stop()


# ---- the trainee's orders and their outcomes ----------------------------------------------------
def test_the_trainees_orders_appear_with_their_outcomes(qtbot, day):
    from layouts import engine
    from ui.dispatch import DispatchController
    from widgets.registry import PANELS
    session = session_of(day, "--training", "--speed", "4")
    orders = DispatchController(session.situation, session.client, "en")
    bridge = SituationBridge(session.situation, [session.replay])
    try:
        replay, st, ex = session.replay, session.situation, session.exercise
        replay.pause()
        wall = Wall(st, bridge, "en", session.mode, orders,
                    engine.load_layout("training", set(PANELS)))
        wall.exercise = ex
        wall.relaid.connect(lambda: attach_transport(wall.windows, replay, bridge, "en"))
        for w in wall.build(QGuiApplication.screens()[:1], show=False):
            qtbot.addWidget(w)
        (panel,) = [p for p in wall.windows[0].panels if p.name == "training_log"]
        assert panel.exercise is ex                        # the exercise's own log, read
        assert panel.table.font().pixelSize() >= 24
        assert panel.table.horizontalHeader().font().pixelSize() >= 24
        assert panel.model._bold.pixelSize() >= 24
        bar = wall.windows[0].transport
        bar.control.seek(START + 5 * MIN)
        panel.refresh()
        assert panel.model.keys == [] and panel.summary.text() == tr("tl.none", "en")
        # One order the desk accepts (the nearest free unit), one it refuses (a busy unit).
        case = next(c for c in st.open_cases() if c.status == "registered")
        unit = nearest_available(st, case, 1)[0].unit
        busy = next(u for u in st.units.values()
                    if u.status != "available" and u.unit_id != unit.unit_id)
        assert orders.dispatch(case.case_id, unit.unit_id)
        assert orders.dispatch(case.case_id, busy.unit_id)
        bridge.start()                                     # the desk is served as the day runs
        qtbot.waitUntil(lambda: len(ex.log) == 2, timeout=10_000)
        panel.refresh()
        first, second = ex.log
        assert (first["result"], second["result"]) == ("accepted", "rejected")
        # Newest first; each order on two rows: what, then its outcome.
        assert panel.model.keys == ["1", "1/outcome", "0", "0/outcome"]
        rows = [[c.text for c in row] for row in panel.model.rows]
        assert rows[0] == [hhmm(second["t_ms"], seconds=True), "Dispatch", busy.callsign,
                           case.case_id]
        assert rows[2] == [hhmm(first["t_ms"], seconds=True), "Dispatch", unit.callsign,
                           case.case_id]
        refused = rows[1][0]
        assert refused.startswith("✕ Refused: ") and refused.endswith(
            reason_words(second["reason"], "en"))
        assert len(refused) > len("✕ Refused: ") + 10      # the reason itself
        accepted = rows[3][0]
        stage = stage_name(st.cases[case.case_id].status, "en")
        assert accepted == f"✓ Accepted: case now {stage}"
        assert panel.summary.text() == "2 orders · 1 refused"
        # Outcome rows run across the panel and are as tall as their words.
        assert panel.table.columnSpan(1, 0) == 4
        # Later in the day the same order reads where its case stands then (the situation,
        # read again), not what was copied when it came.
        bar.control.seek(replay.end_ms)
        panel.refresh()
        stage = stage_name(st.cases[case.case_id].status, "en")
        assert panel.model.rows[3][0].text == f"✓ Accepted: case now {stage}"
    finally:
        bridge.stop()
        orders.stop()
        session.stop()


def test_the_services_reason_in_the_panels_language():
    reason = ("unit_not_available: 西城-执01 is off_duty, not available / "
              "西城-执01 当前状态为 off_duty，不可派遣")
    assert reason_words(reason, "en") == "西城-执01 is off duty, not available"
    assert reason_words(reason, "zh") == "西城-执01 当前状态为 下班，不可派遣"
    assert reason_words("whatever it says", "zh") == "whatever it says"
    assert reason_words(None, "en") == ""

"""The wall re-lays itself — the shift schedule's layout coming due on the situation's clock,
a screen plugged in or out — without losing the picture or the commander's selection."""
from __future__ import annotations

from PySide6.QtGui import QGuiApplication

from layouts import engine
from tests.scenario import Scenario
from ui.wall import Wall

DAY = 1_795_449_600_000            # 2026-11-24 00:00 Beijing
MIN = 60_000


def wall_at(qtbot, minute_of_day: int):
    sc = Scenario(start_ms=DAY + minute_of_day * MIN)
    for i in range(3):
        sc.case(f"C{i}", 30 + i, status="registered")
    schedule = engine.load_schedule("shifts")
    key = engine.shift_at(schedule, sc.clock.now_ms()).layout
    from widgets.registry import PANELS
    layout = engine.load_layout(key, set(PANELS))
    wall = Wall(sc.situation, None, "zh", "LIVE", None, layout, None, schedule,
                layout_key=key)
    for w in wall.build(QGuiApplication.screens()[:1], show=False):
        qtbot.addWidget(w)
    return sc, wall


def queue_of(wall):
    return next(p for w in wall.windows for p in w.panels if p.name == "case_queue")


def test_the_shift_schedule_switches_the_layout_on_the_situations_clock(qtbot):
    sc, wall = wall_at(qtbot, 15 * 60 + 58)              # 15:58, the day shift's wall-3
    assert wall.layout_key == "wall-3"
    q = queue_of(wall)
    q.refresh()
    q.table.selectRow(q.model.keys.index("C1"))
    sc.clock.advance(60_000 + 30_000)                    # 15:59:30: the countdown
    wall.follow_schedule()
    assert "30" in wall.windows[0].header.message.text()
    assert wall.layout_key == "wall-3"
    sc.clock.advance(30_000)                             # 16:00: the evening's wall-2
    wall.follow_schedule()
    for w in wall.windows:
        qtbot.addWidget(w)
    assert wall.layout_key == "wall-2" and wall.layout.name == "wall-2"
    assert queue_of(wall).selected_key() == "C1"         # the selection carried over


def test_a_held_layout_stays_through_the_switch(qtbot):
    sc, wall = wall_at(qtbot, 15 * 60 + 59)
    wall.hold(True)
    sc.clock.advance(2 * MIN)
    wall.follow_schedule()
    assert wall.layout_key == "wall-3"
    wall.hold(False)
    wall.follow_schedule()
    for w in wall.windows:
        qtbot.addWidget(w)
    assert wall.layout_key == "wall-2"


def test_a_screen_change_relays_the_wall_keeping_the_picture(qtbot):
    sc, wall = wall_at(qtbot, 9 * 60)
    before = {p.name for w in wall.windows for p in w.panels}
    q = queue_of(wall)
    q.refresh()
    q.table.selectRow(q.model.keys.index("C2"))
    wall.relayout(QGuiApplication.screens()[:1])         # as on screenAdded / screenRemoved
    for w in wall.windows:
        qtbot.addWidget(w)
    after = {p.name for w in wall.windows for p in w.panels}
    assert before == after                               # wall-3 folded onto the one screen
    assert queue_of(wall).selected_key() == "C2"
    assert len(sc.situation.open_cases()) == 3

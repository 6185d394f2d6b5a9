"""The first wall's panels, offscreen with pytest-qt: what a commander reads off each one,
and that it follows the situation's one clock."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from situation.thresholds import ALARM, OK, UNKNOWN, WARN
from tests.scenario import MIN, standard
from widgets import theme
from widgets.theme import apply_theme
from ui.wall import BUILT_IN, WallWindow, build_wall, layout_for
from widgets.case_queue import CaseQueue
from widgets.feed_health import FeedHealth
from widgets.format import hm, time_left
from widgets.header import Header
from widgets.registry import PANELS
from widgets.sensor_tiles import SensorTiles
from widgets.unit_roster import UnitRoster


@pytest.fixture
def sc(qapp):
    apply_theme(qapp)
    return standard()


def cells(panel, key, role=Qt.DisplayRole):
    row = panel.model.keys.index(key)
    return [panel.model.data(panel.model.index(row, c), role)
            for c in range(panel.model.columnCount())]


def test_case_queue_overdue_first_in_red_and_closed_cases_gone(qtbot, sc):
    q = CaseQueue(sc.situation, "zh")
    qtbot.addWidget(q)
    q.refresh()
    assert q.model.keys == ["C-LATE", "C-SOON", "C-LATER", "C-NODUE"]
    late = cells(q, "C-LATE")
    assert late[1].startswith("占道经营") and late[2] == "东城" and late[3] == "派遣"
    assert late[5] == "超期 20分" and late[6] == "东城-巡01"
    bg = cells(q, "C-LATE", Qt.BackgroundRole)[0]
    assert bg.color().name() == theme.ALARM_BG
    assert cells(q, "C-SOON", Qt.BackgroundRole)[0] is None
    soon = cells(q, "C-SOON")
    assert soon[2] == "朝阳"                    # found from the point
    assert soon[5] == "10分" and cells(q, "C-SOON", Qt.ForegroundRole)[5].color().name() == theme.WARN
    nodue = cells(q, "C-NODUE")
    assert nodue[1] == "something.new.kind" and nodue[5] == "—"   # unknown code shown as is
    assert "超期 1" in q.summary.text() and "在办 4" in q.summary.text()


def test_case_queue_countdown_runs_on_the_situation_clock(qtbot, sc):
    q = CaseQueue(sc.situation, "zh")
    qtbot.addWidget(q)
    q.refresh()
    assert cells(q, "C-SOON")[5] == "10分"
    sc.clock.advance(11 * MIN)             # no record arrives: only the clock moves
    q.refresh()
    assert q.model.keys[:2] == ["C-LATE", "C-SOON"]
    assert cells(q, "C-SOON")[5] == "超期 1分00秒"
    assert cells(q, "C-SOON", Qt.BackgroundRole)[0].color().name() == theme.ALARM_BG


def test_untrusted_text_is_never_markup(qtbot, sc):
    q = CaseQueue(sc.situation, "zh")
    qtbot.addWidget(q)
    q.refresh()
    tip = cells(q, "C-NODUE", Qt.ToolTipRole)[1]
    assert "&lt;b&gt;not bold&lt;/b&gt;" in tip and "<b>" not in tip


def test_case_queue_keeps_the_selected_case_across_a_resort(qtbot, sc):
    q = CaseQueue(sc.situation, "zh")
    qtbot.addWidget(q)
    q.refresh()
    q.table.selectRow(q.model.keys.index("C-LATER"))
    sc.case("C-NEW", -60, category="event.emergency.road_collapse", status="registered")
    q.refresh()
    assert q.model.keys[0] == "C-NEW" and q.selected_key() == "C-LATER"
    assert q.table.selectionModel().selectedRows()[0].row() == q.model.keys.index("C-LATER")


def test_unit_roster_greys_a_unit_silent_for_60_seconds(qtbot, sc):
    r = UnitRoster(sc.situation, "zh")
    qtbot.addWidget(r)
    r.refresh()
    assert r.model.keys[-1] == "U3"                           # stale last
    stale = cells(r, "U3")
    assert stale[2].startswith("失联") and stale[5] == "2分前"
    assert cells(r, "U3", Qt.ForegroundRole)[0].color().name() == theme.DIM
    fresh = cells(r, "U2")
    assert fresh[1] == "车巡" and fresh[2] == "待命" and fresh[3] == "朝阳"
    assert "失联 1" in r.summary.text()
    sc.clock.advance(61_000)
    r.refresh()
    assert all(cells(r, u)[2].startswith("失联") for u in ("U1", "U2", "U3"))


def test_sensor_tiles_colour_by_threshold_and_show_unknown_kinds(qtbot, sc):
    t = SensorTiles(sc.situation, "zh")
    qtbot.addWidget(t)
    t.refresh()
    air = t.tiles["air"].view
    assert air.dots == [OK, WARN, ALARM] and (air.warn, air.alarm) == (1, 1)
    assert air.worst[0][0].startswith("AQ-3") and air.worst[0][1] == ALARM
    assert t.tiles["manhole"].view.alarm == 1
    assert t.tiles["radiation"].view.dots == [UNKNOWN]        # its own tile, shown raw
    assert t.alarm_count() == 2
    sc.sensor("AQ-3", "air", pm25=20.0, pm10=30.0)           # the alarm clears
    t.refresh()
    assert t.tiles["air"].view.alarm == 0


def test_a_haze_lists_the_worst_readings_without_a_line_for_every_sensor(qtbot, sc):
    """2,000 air sensors, most of them over the line: the list gets the worst WORST_KEEP — the
    same ones, in the same order, as ranking every bad reading would give — not 2,000 lines."""
    import random

    from situation.thresholds import reading_level
    from widgets.sensor_figures import severity
    from widgets.sensor_worst import WORST_KEEP
    rng = random.Random(18)
    for i in range(2000):
        pm25 = round(rng.uniform(20, 400), 1)
        sc.sensor(f"AQ-H{i:04d}", "air", pm25=pm25, pm10=round(pm25 * rng.uniform(1, 2), 1))
    t = SensorTiles(sc.situation, "zh")
    qtbot.addWidget(t)
    t.refresh()
    recs = list(sc.situation.sensors.values())
    bad = sorted(((reading_level(r.kind, r.metrics), r) for r in recs
                  if reading_level(r.kind, r.metrics) >= WARN),
                 key=lambda lr: (-lr[0], -severity(lr[1].kind, lr[1].metrics), lr[1].id))
    assert len(bad) > 1000
    listed = [parts[1] for parts, _ in t.worst_lines]
    assert listed[:WORST_KEEP] == [r.id for _, r in bad[:WORST_KEEP]]     # the worst, in order
    assert listed[WORST_KEEP:] == ["MH-1"]     # then each other kind's worst (the manhole)

    assert t.tiles["air"].view.alarm == sum(1 for lvl, r in bad if lvl == ALARM
                                            and r.kind == "air")        # counted, all of them
    assert 0 < t.worst.shown <= 6


def test_a_narrow_worst_list_goes_on_to_a_kind_whose_line_fits(qtbot):
    """100 air alarms whose lines cannot fit a narrow panel, and 3 noise alarms whose lines
    can: the list shows the noise ones (the worst 64 alone are all air)."""
    from tests.scenario import Scenario
    sc = Scenario()
    for i in range(100):
        sc.sensor(f"AQ-{i:04d}", "air", pm25=300.0 + i, pm10=260.0)
    for i in range(3):
        sc.sensor(f"N{i}", "noise", laeq=86.0)
    t = SensorTiles(sc.situation, "zh")
    qtbot.addWidget(t)
    t.resize(260, 500)
    t.show()
    t.refresh()
    QGuiApplication.processEvents()
    assert t.worst.shown == 3
    assert all("噪声" in r.text() for r in t.worst.rows if not r.isHidden())


def test_feed_health_source_down_after_3_seconds_and_endpoints(qtbot, sc):
    sc.situation.expect_endpoint("tcp://127.0.0.1:5999")
    f = FeedHealth(sc.situation, "zh")
    qtbot.addWidget(f)
    f.refresh()
    assert cells(f, "src:scenario")[1] == "● 正常"
    assert cells(f, "ep:tcp://127.0.0.1:5999")[1] == "● 中断"   # nobody publishes there
    assert f.table.columnSpan(f.model.keys.index("ep:tcp://127.0.0.1:5999"), 2) == 6
    # named in words; the address is in the tooltip (tests/test_wall_look.py has the rest)
    assert cells(f, "ep:tcp://127.0.0.1:5999")[0] == "接入点 1"
    assert not any("tcp://" in c for c in cells(f, "ep:tcp://127.0.0.1:5999"))
    assert "tcp://127.0.0.1:5999" in cells(f, "ep:tcp://127.0.0.1:5999", Qt.ToolTipRole)[0]
    sc.clock.advance(3_001)
    f.refresh()
    assert cells(f, "src:scenario")[1] == "● 中断"
    assert cells(f, "src:scenario", Qt.BackgroundRole)[1].color().name() == theme.ALARM_BG


def test_header_clock_and_key_figures_in_english(qtbot, sc):
    h = Header(sc.situation, "en", "DEMO")
    qtbot.addWidget(h)
    h.refresh()
    assert h.clock.time.text() == "09:30:00"
    assert "Beijing time" in h.clock.date.text() and "Tue" in h.clock.date.text()
    assert h.kpis["open"].value.text() == "4" and h.kpis["overdue"].value.text() == "1"
    assert h.kpis["available"].value.text() == "1"            # U3 is stale, U1 busy
    assert h.kpis["alarms"].value.text() == "2"
    assert h.mode.text().strip() == "DEMO"


def test_english_columns_and_words(qtbot, sc):
    q = CaseQueue(sc.situation, "en")
    qtbot.addWidget(q)
    q.refresh()
    assert q.model.headers[0] == "Case"
    late = cells(q, "C-LATE")
    assert late[1] == "Street vending" and late[3] == "Dispatched" and late[5] == "late 20m"


def test_every_layout_shows_every_first_wall_panel():
    from ui.wall import ONE_SCREEN, default_layout
    needed = {"case_queue", "unit_roster", "sensor_tiles", "feed_health"}
    for n in (1, 2, 3, 4, 6):
        layout = default_layout(n)
        assert len(layout.screens) == n
        shown = set(layout.panels())
        assert needed <= shown and shown <= set(PANELS)
    assert set(BUILT_IN) == {2, 3} and len(layout_for(4)) == 4
    assert default_layout(1).screens == (ONE_SCREEN,)     # one screen: a grid (the map spans)


def test_wall_window_redraws_on_changes_and_ticks(qtbot, sc):
    windows = build_wall(sc.situation, None, "zh", "LIVE", QGuiApplication.screens())
    w = windows[0]
    qtbot.addWidget(w)
    assert isinstance(w, WallWindow)
    assert w.panel_names() == ["clock", "case_queue", "unit_roster", "sensor_tiles",
                               "feed_health", "city_map"]
    assert w.geometry() == QGuiApplication.screens()[0].geometry()
    queue = w.panels[0]
    sc.case("C-X", 5, category="event.emergency.waterlogging", status="registered")
    queue.dirty = True
    w.refresh_soon()                                 # what the redraw timer calls
    qtbot.waitUntil(lambda: "C-X" in queue.model.keys, timeout=2000)
    img = w.grab()
    assert not img.isNull() and img.width() > 0


def test_durations_read_with_their_units():
    assert hm(45_000) == "45秒" and hm(7 * MIN + 23_000) == "7分23秒"
    assert hm(45 * MIN) == "45分" and hm(125 * MIN) == "2时05分"
    assert hm(3 * 24 * 60 * MIN + 60 * MIN, "en") == "3d1h"
    assert time_left(None, 0) == "—" and time_left(0, 90_000, "en") == "late 1m30s"


def test_wall_mode_frameless_pointer_hides_when_idle_and_program_close_does_not_ask(qtbot, sc):
    from PySide6.QtWidgets import QApplication
    (w,) = build_wall(sc.situation, None, "zh", "LIVE", QGuiApplication.screens()[:1])
    qtbot.addWidget(w)
    assert w.windowFlags() & Qt.FramelessWindowHint
    from PySide6.QtCore import QPoint
    from ui.wall import IDLE_CURSOR_MS, idle_pointer
    pointer = idle_pointer()
    here = pointer.last
    for _ in range(IDLE_CURSOR_MS // pointer.POLL_MS):     # five idle seconds, without waiting
        pointer.poll(here)
    assert QApplication.overrideCursor().shape() == Qt.BlankCursor
    pointer.poll(here + QPoint(3, 0))                       # a touch of the mouse
    assert QApplication.overrideCursor() is None
    assert w.close()                                     # the program closes it: no question


def test_list_screens_prints_what_qt_sees(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path
    config = tmp_path / "screens.json"
    config.write_text(json.dumps({"screens": [
        {"name": "left", "x": 0, "y": 0, "width": 1920, "height": 1080, "logicalDpiX": 96,
         "logicalDpiY": 96},
        {"name": "right", "x": 1920, "y": 0, "width": 2560, "height": 1440, "logicalDpiX": 96,
         "logicalDpiY": 96}]}))
    out = subprocess.run([sys.executable, "main.py", "--list-screens"],
                         cwd=Path(__file__).resolve().parent.parent, capture_output=True,
                         text=True, timeout=60,
                         env=dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={config}"))
    assert out.returncode == 0
    lines = out.stdout.strip().splitlines()
    assert lines[0].split("\t")[:3] == ["0", "left", "1920x1080+0+0"]
    assert lines[1].split("\t")[:3] == ["1", "right", "2560x1440+1920+0"]


def test_a_city_of_open_cases_lists_the_most_urgent_and_counts_them_all(qtbot, sc):
    from widgets.case_queue import MAX_ROWS
    for i in range(MAX_ROWS + 500):          # a city's backlog: more than a wall can list
        sc.case(f"C-B{i:04d}", 300 + (i * 7919) % 1000, category="event.street_order.vending",
                status="registered")
    sc.case("C-B-LATE", -5, category="event.street_order.vending", status="registered")
    q = CaseQueue(sc.situation, "zh")
    qtbot.addWidget(q)
    q.refresh()
    assert len(q.model.keys) == MAX_ROWS
    assert q.model.keys[:2] == ["C-LATE", "C-B-LATE"]          # the overdue still on top
    open_cases = sorted(sc.situation.open_cases(),
                        key=lambda c: (c.due_at if c.due_at is not None else 1 << 62,
                                       c.priority, c.reported_at))
    assert q.model.keys == [c.case_id for c in open_cases[:MAX_ROWS]]
    text = q.summary.text()
    assert f"在办 {4 + MAX_ROWS + 501}" in text and "超期 2" in text
    assert f"列出最急的 {MAX_ROWS} 件" in text


def test_the_timers_redraw_one_panel_a_turn_so_a_drain_never_waits_for_all(qtbot):
    """A wall at city scale spends tens of ms a panel: on the clock's tick and the redraw timer
    the dirty panels are redrawn one per turn of the event loop (a drain due meanwhile runs
    between two of them), each once a pass — a pass never chases panels dirtied again."""
    from PySide6.QtCore import QCoreApplication, QTimer
    from PySide6.QtWidgets import QWidget

    from widgets.host import PanelHost

    log = []

    class Slow:
        def __init__(self, name):
            self.name, self.dirty = name, False

        def refresh(self):
            log.append(self.name)
            self.dirty = False

    class Header:
        def refresh(self):
            log.append("header")

    class Host(PanelHost, QWidget):
        pass

    host = Host()
    qtbot.addWidget(host)
    host.header, host.panels = Header(), [Slow(f"p{i}") for i in range(5)]
    host.follow(None)
    host._redraw.stop()
    host.refresh_on_tick()
    assert log == ["header"]                    # the clock at once, the panels in turn
    drained = []
    QTimer.singleShot(0, lambda: drained.append(len(log)))     # a drain that comes due
    qtbot.waitUntil(lambda: len(log) == 6, timeout=2000)
    assert log == ["header", "p0", "p1", "p2", "p3", "p4"]
    assert drained and drained[0] < 6            # it ran before the pass ended
    # a panel the feed dirties again as soon as it is redrawn is redrawn once a pass
    again = host.panels[2]

    def busy():
        log.append(again.name)
        again.dirty = True                       # a drain marked it again meanwhile
    again.refresh = busy
    again.dirty = True
    host.refresh_soon()
    for _ in range(20):
        QCoreApplication.processEvents()
    assert log.count("p2") == 2 and again.dirty
    host.refresh_soon()                          # the next pass takes it
    qtbot.waitUntil(lambda: log.count("p2") == 3, timeout=2000)

"""On the wall: a recording that stops (a full disk) is said on every screen and the console
runs on; a training wall writes the debrief from its menu."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtGui import QGuiApplication

from feeds.record import RollingRecorder
from tests.pubhelp import record
from tests.scenario import Scenario
from ui.app import say_recording_problems
from ui.bridge import SituationBridge
from ui.wall import Wall


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_disk_is_said_on_the_wall_and_the_console_runs_on(qtbot, tmp_path, monkeypatch):
    sc = Scenario()
    rec = RollingRecorder(tmp_path, now_ms=sc.clock.now_ms, timer=False)
    # The hour's file is a link to /dev/full: every write fails with ENOSPC, as on a full disk.
    # (A link: the recorder removes a file it could write nothing to.)
    full = tmp_path / "full.mcap"
    os.symlink("/dev/full", full)
    monkeypatch.setattr(rec, "path_for", lambda hour: full)
    bridge = SituationBridge(sc.situation, [])
    wall = Wall(sc.situation, bridge, "en", "LIVE")
    for w in wall.build(QGuiApplication.screens()[:1], show=False):
        qtbot.addWidget(w)
    say_recording_problems(rec, bridge, lambda: wall.windows)
    rec.tap("tcp://x", [b"hb", b'{"v":1,"src":"a","seq":1,"ts":1}'], 1)   # never raises
    assert rec.problem and "disk full" in rec.problem
    bridge.tick.emit()
    header = wall.windows[0].header.message
    assert "disk full" in header.text()
    sc.add("case", **{k: v for k, v in record("case").items() if k not in ("v", "src", "seq", "ts")})
    assert sc.situation.cases                           # the picture carries on
    rec.close()


def test_a_training_wall_writes_the_debrief_from_its_menu(qtbot, tmp_path):
    import main
    from feeds.demo_day import write_demo_day
    from tests.scenario import T0
    from ui.session import build_session
    day = tmp_path / "day.mcap"
    write_demo_day(day, hours=0.1, start_ms=T0)
    args = main.build_parser().parse_args(["--replay", str(day), "--training", "--lang", "en"])
    session = build_session(args)
    try:
        bridge = SituationBridge(session.situation, session.sources)
        wall = Wall(session.situation, bridge, "en", session.mode)
        wall.exercise = session.exercise
        for w in wall.build(QGuiApplication.screens()[:1], show=False):
            qtbot.addWidget(w)
        bridge.drain()
        window = wall.windows[0]
        assert "Training debrief…" in [a.text() for a in window.menu().actions()]
        out = tmp_path / "debrief.html"
        assert window.export("debrief", str(out))
        assert "<html" in out.read_text().lower() and str(out) in window.header.message.text()
        assert not window.export("debrief", str(tmp_path / "no" / "such" / "d.html"))
        assert "Cannot write" in window.header.message.text()
    finally:
        session.stop()

"""The windowed start says what it is loading (issue #18): a progress line that follows the
start's stages, in the wall's words and type, and goes when the wall is up."""
from __future__ import annotations

from feeds.startup import STARTUP, Startup
from ui.app import startup_done
from ui.startup_progress import LINE_PX, StartupProgress, start_progress
from widgets.i18n import tr


def test_the_progress_line_says_each_stage_then_goes_when_the_wall_is_up(qtbot, monkeypatch):
    monkeypatch.setattr(STARTUP, "listener", None)
    progress = start_progress("zh")
    assert STARTUP.listener == progress.say
    assert STARTUP.age() >= 0.5             # a test process is older than half a second
    for stage in ("session", "demo_city", "history", "wall"):
        STARTUP.stage(stage)
        assert progress.isVisible()
        assert progress.line.text() == tr(f"startup.{stage}", "zh")
    assert progress.line.font().pixelSize() >= LINE_PX      # wall-sized type, not a dialog's
    shot = progress.grab().toImage()
    assert shot.width() > 600 and not shot.isNull()
    startup_done()
    assert STARTUP.listener is None
    qtbot.waitUntil(lambda: not progress.isVisible(), timeout=2000)


def test_a_quick_start_shows_no_progress_line(qtbot, monkeypatch):
    young = Startup()
    monkeypatch.setattr(young, "started", young.started + 3600)   # "just started"
    monkeypatch.setattr("ui.startup_progress.STARTUP", young)
    progress = StartupProgress("en")
    qtbot.addWidget(progress)
    young.listener = progress.say
    young.stage("session")
    assert not progress.isVisible()
    assert progress.line.text() == tr("startup.session", "en")


def test_a_progress_line_that_fails_never_stops_the_start():
    s = Startup()

    def broken(stage):
        raise RuntimeError("no screen")
    s.listener = broken
    s.stage("demo_city")                   # said nothing, raised nothing
    assert s.listener is None


def test_marks_are_kept_once_from_the_process_start():
    s = Startup()
    assert 0 < s.age() < 3600
    s.mark("session_s")
    first = s.marks["session_s"]
    s.mark("session_s")
    assert s.status() == {"session_s": first}


def test_a_state_join_is_marked_only_when_the_state_was_applied():
    from types import SimpleNamespace
    s = Startup()
    seen = SimpleNamespace(records_accepted=0, state_joins=[{"outcome": "refused"},
                                                            {"outcome": "fell_back"}])
    s.after_drain(seen)
    assert s.marks == {}                         # no records, no state: nothing to say
    seen.records_accepted = 5
    seen.state_joins.append({"outcome": "caught_up"})
    s.after_drain(seen)
    assert set(s.marks) == {"first_records_s", "state_joined_s"}


def test_the_commanders_console_says_where_its_start_went(tmp_path):
    """``--console`` (one window of docks) marks its first paint like the wall does."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    config = tmp_path / "screen.json"
    config.write_text(json.dumps({"screens": [{"name": "desk", "x": 0, "y": 0, "width": 1920,
                                               "height": 1080, "logicalDpiX": 96,
                                               "logicalDpiY": 96}]}))
    status = tmp_path / "status.json"
    env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={config}")
    out = subprocess.run([sys.executable, "main.py", "--demo", "--console", "--run-for", "3",
                          "--status-out", str(status)], cwd=root, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    up = json.loads(status.read_text())["startup"]
    assert {"session_s", "wall_painted_s", "first_records_s"} <= set(up), up
    assert up["session_s"] < up["wall_painted_s"], up

"""The first wall on two simulated screens (Qt's offscreen platform with a screens file):
one window per screen, on that screen's geometry, and a screenshot of each."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtGui import QImage

ROOT = Path(__file__).resolve().parent.parent

SCREENS = {"screens": [
    {"name": "wall-left", "x": 0, "y": 0, "width": 1920, "height": 1080,
     "logicalDpiX": 96, "logicalDpiY": 96},
    {"name": "wall-right", "x": 1920, "y": 0, "width": 1920, "height": 1080,
     "logicalDpiX": 96, "logicalDpiY": 96},
]}


def test_two_screens_two_windows_on_their_geometry(tmp_path):
    config = tmp_path / "screens.json"
    config.write_text(json.dumps(SCREENS))
    status, shots = tmp_path / "status.json", tmp_path / "shots"
    env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={config}")
    out = subprocess.run([sys.executable, "main.py", "--demo", "--seed", "3", "--run-for", "4",
                          "--status-out", str(status), "--screenshot-dir", str(shots)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(status.read_text())
    wins = sorted(doc["windows"], key=lambda w: w["x"])
    assert [(w["screen"], w["x"], w["y"], w["width"], w["height"]) for w in wins] == [
        ("wall-left", 0, 0, 1920, 1080), ("wall-right", 1920, 0, 1920, 1080)]
    assert all(w["panels"] for w in wins)
    # Between them the two windows show every first-wall panel.
    shown = set().union(*(w["panels"] for w in wins))
    assert {"case_queue", "unit_roster", "sensor_tiles", "feed_health", "clock"} <= shown
    pngs = sorted(shots.glob("*.png"))
    assert len(pngs) == 2
    for png in pngs:
        img = QImage(str(png))
        assert (img.width(), img.height()) == (1920, 1080)
    # The demo city was seen: units and sensors arrived within the run.
    assert doc["units"] > 100 and doc["sensors"] > 250
    assert doc["mode"] == "DEMO"
    # Where the start went (issue #18), in the order a start reaches it: the session, then
    # the wall painted and the first records, then the map's first markers.
    up = doc["startup"]
    assert set(up) == {"session_s", "first_records_s", "wall_painted_s", "map_markers_s"}, up
    assert 0 < up["session_s"] < up["wall_painted_s"] < up["map_markers_s"] < 4 + 60, up
    assert up["session_s"] < up["first_records_s"], up


def run_wall(tmp_path, screens, *extra):
    config = tmp_path / "screens.json"
    config.write_text(json.dumps({"screens": screens}))
    status = tmp_path / "status.json"
    env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={config}")
    out = subprocess.run([sys.executable, "main.py", "--demo", "--run-for", "3",
                          "--status-out", str(status), *extra],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(status.read_text()), out.stderr


def screen(name, i):
    return {"name": name, "x": 1920 * i, "y": 0, "width": 1920, "height": 1080,
            "logicalDpiX": 96, "logicalDpiY": 96}


def test_layout_file_places_its_panels_on_three_screens(tmp_path):
    from layouts.engine import load_layout
    from widgets.registry import PANELS
    wanted = load_layout("wall-3", set(PANELS))
    doc, _ = run_wall(tmp_path, [screen(f"s{i}", i) for i in range(3)], "--layout", "wall-3")
    wins = sorted(doc["windows"], key=lambda w: w["x"])
    assert [w["x"] for w in wins] == [0, 1920, 3840]
    for w, s in zip(wins, wanted.screens):
        assert w["panels"] == ["clock", *s.panels()]


def test_a_layout_for_more_screens_folds_onto_those_attached(tmp_path):
    from layouts.engine import load_layout
    from widgets.registry import PANELS
    wanted = set(load_layout("wall-3", set(PANELS)).panels())
    doc, _ = run_wall(tmp_path, [screen("a", 0), screen("b", 1)], "--layout", "wall-3")
    shown = set().union(*(w["panels"] for w in doc["windows"]))
    assert len(doc["windows"]) == 2 and wanted <= shown


def test_a_bad_layout_file_opens_the_built_in_layout_and_says_why(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[[screen]]\nrows = 1\ncols = 1\n'
                   'cells = [ { panel = "no_such_panel", row = 0, col = 0 } ]\n')
    doc, err = run_wall(tmp_path, [screen("a", 0)], "--layout", str(bad))
    assert f"{bad}:5" in err and "no_such_panel" in err
    assert "case_queue" in doc["windows"][0]["panels"]


def test_a_rotation_lists_every_page_in_the_status(tmp_path):
    """wall-2's second screen turns through peak duty and the heatmaps: all three are on it."""
    doc, _ = run_wall(tmp_path, [screen("a", 0), screen("b", 1)], "--layout", "wall-2")
    right = max(doc["windows"], key=lambda w: w["x"])
    assert {"peak_duty", "temporal_heat", "spatial_heat"} <= set(right["panels"])


# ---- zero screens ----------------------------------------------------------------------------
def run_main(config, *args):
    env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={config}")
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_no_screens_is_a_clear_error_and_exit_2(tmp_path, capsys):
    from ui.app import EXIT_USAGE, require_screens
    assert EXIT_USAGE == 2
    assert not require_screens([])
    assert "Qt reports no screens" in capsys.readouterr().err
    config = tmp_path / "none.json"
    config.write_text(json.dumps({"screens": []}))      # Qt's offscreen platform: no screen
    for args in (["--list-screens"], ["--demo", "--run-for", "1"]):
        out = run_main(config, *args)
        assert out.returncode == 2, out.stderr[-1000:]
        assert "citywall: error: Qt reports no screens" in out.stderr


def test_list_screens_prints_what_qt_sees(tmp_path):
    config = tmp_path / "screens.json"
    config.write_text(json.dumps(SCREENS))
    out = run_main(config, "--list-screens")
    assert out.returncode == 0, out.stderr[-1000:]
    assert out.stdout.splitlines() == ["0\twall-left\t1920x1080+0+0\t96 dpi\t×1",
                                       "1\twall-right\t1920x1080+1920+0\t96 dpi\t×1"]

"""Screens by where they stand (#14): left to right, then top to bottom, whatever order Qt
lists them in. Qt's offscreen platform lists three 1920×1080 screens out of order — the centre
one first — and the wall, a layout matching screens by index, ``--list-screens`` and a
re-layout on hot-plug all take them leftmost first."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from layouts.engine import by_position

ROOT = Path(__file__).resolve().parent.parent


def screen(name: str, x: int, y: int = 0) -> dict:
    return {"name": name, "x": x, "y": y, "width": 1920, "height": 1080,
            "logicalDpiX": 96, "logicalDpiY": 96}


# Qt lists the centre screen first, then the left, then the right.
OUT_OF_ORDER = [screen("centre", 1920), screen("left", 0), screen("right", 3840)]


def qt_env(tmp_path, screens) -> dict:
    config = tmp_path / "screens.json"
    config.write_text(json.dumps({"screens": screens}))
    return dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={config}")


# ---- the order itself (pure) -----------------------------------------------------------------
def test_by_position_is_left_to_right_then_top_to_bottom():
    assert by_position([(1920, 0), (0, 0), (3840, 0)]) == [1, 0, 2]
    # Two rows of two: the left column first (top, then bottom), then the right column.
    grid = [(1920, 1080), (0, 1080), (1920, 0), (0, 0)]
    assert by_position(grid) == [3, 1, 2, 0]
    # Negative coordinates (a screen left of the primary) come first.
    assert by_position([(0, 0, 1920, 1080, "a"), (-1280, 200, 1280, 1024, "b")]) == [1, 0]
    # Screens at the same place: by name, then as listed; stable.
    assert by_position([(0, 0, 10, 10, "b"), (0, 0, 10, 10, "a"), (0, 0, 10, 10, "a")]) == \
        [1, 2, 0]
    assert by_position([]) == []


# ---- the wall, a layout by index, --list-screens -----------------------------------------------
def test_a_layout_by_index_puts_its_screen_0_on_the_leftmost(tmp_path):
    """wall-3 matches by index: screen 0 (the map) on x=0, 1 (the heatmaps) on x=1920, 2
    (cases, units) on x=3840 — though Qt lists the x=1920 screen first."""
    from layouts.engine import load_layout
    from widgets.registry import PANELS
    wanted = load_layout("wall-3", set(PANELS))
    assert [s.match for s in wanted.screens] == [0, 1, 2]
    status = tmp_path / "status.json"
    out = subprocess.run([sys.executable, "main.py", "--demo", "--run-for", "3", "--layout",
                          "wall-3", "--status-out", str(status)], cwd=ROOT,
                         env=qt_env(tmp_path, OUT_OF_ORDER), capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    wins = json.loads(status.read_text())["windows"]
    # The windows in the status are the wall's, leftmost first, each on its screen's geometry.
    assert [(w["screen"], w["x"], w["y"], w["width"], w["height"]) for w in wins] == [
        ("left", 0, 0, 1920, 1080), ("centre", 1920, 0, 1920, 1080),
        ("right", 3840, 0, 1920, 1080)]
    for w, s in zip(wins, wanted.screens):
        assert w["panels"] == ["clock", *s.panels()]
    assert wins[0]["panels"] == ["clock", "city_map"]


def test_list_screens_prints_them_left_to_right_and_says_so(tmp_path):
    out = subprocess.run([sys.executable, "main.py", "--list-screens"], cwd=ROOT,
                         env=qt_env(tmp_path, OUT_OF_ORDER), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-1000:]
    assert out.stdout.splitlines() == ["0\tleft\t1920x1080+0+0\t96 dpi\t×1",
                                       "1\tcentre\t1920x1080+1920+0\t96 dpi\t×1",
                                       "2\tright\t1920x1080+3840+0\t96 dpi\t×1"]
    assert "by position" in out.stderr and "left to right" in out.stderr


# ---- hot-plug ------------------------------------------------------------------------------
HOTPLUG = r"""
import json, sys, time
from widgets.tiles import register_scheme
register_scheme()
from PySide6.QtCore import QRect
from PySide6.QtWidgets import QApplication
app = QApplication(sys.argv[:1])
from layouts import engine
from tests.scenario import Scenario
from ui.app import follow_screens
from ui.wall import Wall
from widgets.registry import PANELS

def wait_until(ok, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while not ok():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        app.processEvents()
        time.sleep(0.01)

def seen(wall):
    return [{"x": w.geometry().x(), "screen": w.screen().name(),
             "panels": w.panel_names()} for w in wall.windows]

qt = app.screens()
by_name = {s.name(): s for s in qt}
sc = Scenario()
wall = Wall(sc.situation, None, "en", "LIVE", None, engine.load_layout("wall-3", set(PANELS)))
out = {"qt_order": [s.name() for s in qt]}
# At start the right screen is not there yet: Qt's order, centre first.
wall.build([by_name["centre"], by_name["left"]], show=False)
out["two"] = seen(wall)
follow_screens(app, wall)
# The right screen plugged in (Qt says so; the offscreen platform's list is fixed, and holds it).
app.screenAdded.emit(by_name["right"])
out["three"] = seen(wall)
# The left screen unplugged: re-laid on the two left, centre now the leftmost.
app.screenRemoved.emit(by_name["left"])
out["unplugged"] = seen(wall)
# A screen that moves without changing the order re-lays nothing...
before = list(wall.windows)
by_name["centre"].geometryChanged.emit(QRect(1920, 0, 1920, 1080))
for _ in range(20):
    app.processEvents()
out["moved_same_order_relaid"] = wall.windows != before
# ...one whose move changed the order does (here: the wall held them in another order).
wall.screens = [by_name["right"], by_name["centre"], by_name["left"]]
before = list(wall.windows)
by_name["left"].geometryChanged.emit(QRect(0, 0, 1920, 1080))
wait_until(lambda: wall.windows != before)
out["reordered"] = seen(wall)
print(json.dumps(out), flush=True)
# Out at once: QtWebEngine's pages and profile torn down by the interpreter's exit, in no set
# order, can crash a script like this one (the wall itself quits through Qt's event loop).
import os
os._exit(0)
"""


def test_hot_plug_relays_by_position(tmp_path):
    out = subprocess.run([sys.executable, "-c", HOTPLUG], cwd=ROOT,
                         env=qt_env(tmp_path, OUT_OF_ORDER), capture_output=True, text=True,
                         timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["qt_order"] == ["centre", "left", "right"]

    def where(windows):
        return [(w["screen"], w["x"]) for w in windows]
    # Two screens: wall-3's screen 0 (the map) on the left one, 2 folded onto the centre one.
    assert where(doc["two"]) == [("left", 0), ("centre", 1920)]
    assert doc["two"][0]["panels"] == ["clock", "city_map"]
    assert "case_queue" in doc["two"][1]["panels"]
    # The right screen plugged in: three windows, left to right, one layout screen each.
    assert where(doc["three"]) == [("left", 0), ("centre", 1920), ("right", 3840)]
    assert doc["three"][0]["panels"] == ["clock", "city_map"]
    assert "spatial_heat" in doc["three"][1]["panels"]
    assert "case_queue" in doc["three"][2]["panels"]
    # The left screen gone: the map moves to the centre screen, now the leftmost.
    assert where(doc["unplugged"]) == [("centre", 1920), ("right", 3840)]
    assert doc["unplugged"][0]["panels"] == ["clock", "city_map"]
    assert doc["moved_same_order_relaid"] is False
    assert where(doc["reordered"]) == [("left", 0), ("centre", 1920), ("right", 3840)]

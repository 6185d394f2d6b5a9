"""The status shows what a wall shows (#14): each window's ``panel_rects`` (panel → [x, y,
width, height] within the window) and, with the map, ``map_view`` — the view the live Leaflet
page reported after its last move (centre, zoom, bounds), read without asking the page."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtGui import QGuiApplication

from tests.scenario import standard
from tests.test_city_map import loaded_map, run_js
from widgets.city_map import parse_view

ROOT = Path(__file__).resolve().parent.parent


def inside(view: dict) -> bool:
    (s, w), (n, e) = view["bounds"]
    lat, lon = view["center"]
    return s <= lat <= n and w <= lon <= e


def overlap(a, b) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def check_rects(window: dict, together=()) -> None:
    """Every rect inside the window, of some size; no two panels overlap (but the pages of one
    rotation, which share their cell: ``together``, sets of names)."""
    rects = window["panel_rects"]
    for name, (x, y, w, h) in rects.items():
        assert w > 0 and h > 0, (name, rects[name])
        assert 0 <= x and 0 <= y and x + w <= window["width"] and y + h <= window["height"], \
            (name, rects[name], window["width"], window["height"])
    names = sorted(rects)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if any({a, b} <= set(group) for group in together):
                assert rects[a] == rects[b]
                continue
            assert not overlap(rects[a], rects[b]), (a, rects[a], b, rects[b])


def check_view(view: dict) -> None:
    assert set(view) == {"center", "zoom", "bounds"}
    (s, w), (n, e) = view["bounds"]
    assert s < n and w < e
    assert inside(view)
    assert 6 <= view["zoom"] <= 19                   # the page's min and max zoom
    assert 39.0 < view["center"][0] < 41.5 and 115.0 < view["center"][1] < 118.0   # Beijing


# ---- the page reports its view --------------------------------------------------------------
def test_parse_view_takes_only_the_shape_it_expects():
    good = '{"center": [39.9, 116.4], "zoom": 10.25, "bounds": [[39.5, 116.0], [40.3, 116.8]]}'
    assert parse_view(good) == {"center": [39.9, 116.4], "zoom": 10.25,
                                "bounds": [[39.5, 116.0], [40.3, 116.8]]}
    for bad in ("", "nonsense", "[]", '{"center": [39.9], "zoom": 1, "bounds": [[0,0],[1,1]]}',
                '{"center": [39.9, "x"], "zoom": 1, "bounds": [[0, 0], [1, 1]]}',
                '{"center": [39.9, 116.4], "zoom": null, "bounds": [[0, 0], [1, 1]]}',
                '{"center": [39.9, 116.4], "zoom": 1, "bounds": [[0, 0]]}'):
        assert parse_view(bad) is None, bad


def test_the_live_map_reports_its_view_as_it_moves(qtbot):
    m = loaded_map(qtbot, standard().situation)
    qtbot.waitUntil(lambda: m.map_view is not None, timeout=10000)
    check_view(m.map_view)
    lat, lon, zoom = run_js(qtbot, m, "cw.centre()")
    # The report is the page's own view (whatever moved last has been reported by now).
    qtbot.waitUntil(lambda: abs(m.map_view["center"][0] - lat) < 1e-9, timeout=5000)
    assert abs(m.map_view["center"][1] - lon) < 1e-9 and m.map_view["zoom"] == zoom
    s, w, n, e = run_js(qtbot, m, "cw.viewBounds()")
    assert m.map_view["bounds"] == [[s, w], [n, e]]
    # Zoomed onto a case: the next report says so, without the status asking the page.
    assert run_js(qtbot, m, "cw.zoomTo('cases', 'C-SOON', 16)") is True
    qtbot.waitUntil(lambda: m.map_view["zoom"] == 16, timeout=5000)
    check_view(m.map_view)
    assert abs(m.map_view["center"][0] - 39.99) < 1e-3
    assert abs(m.map_view["center"][1] - 116.48) < 1e-3
    # Panned by hand (as a drag ends): reported too.
    run_js(qtbot, m, "(window.__CW_MAP__.panBy([200, 0], {animate: false}), true)")
    qtbot.waitUntil(lambda: m.map_view["center"][1] > 116.48 + 1e-3, timeout=5000)
    check_view(m.map_view)


# ---- the status of a window -----------------------------------------------------------------
def test_window_status_gives_panel_rects_and_the_map_view(qtbot):
    from ui.app import window_status
    from ui.wall import build_wall
    sc = standard()
    (w,) = build_wall(sc.situation, None, "zh", "LIVE", QGuiApplication.screens()[:1])
    qtbot.addWidget(w)
    w.show()
    city = next(p for p in w.panels if p.name == "city_map")
    qtbot.waitUntil(lambda: city.map_view is not None, timeout=20000)
    (doc,) = window_status([w])
    assert set(doc["panel_rects"]) == set(doc["panels"])
    check_rects(doc, [("unit_roster", "sensor_tiles", "feed_health")])   # one rotating cell
    x, y, width, height = doc["panel_rects"]["city_map"]
    assert (width, height) == (city.width(), city.height())
    assert city.mapTo(w, city.rect().topLeft()).toTuple() == (x, y)
    check_view(doc["map_view"])
    assert doc["map_view"] == city.map_view
    json.dumps(doc)                                  # as the status file writes it


def test_rotations_share_their_cell_and_a_panel_twice_is_named_twice(qtbot):
    from layouts import engine
    from ui.app import window_status
    from ui.wall import build_wall
    screen = engine.Screen(0, "t", "t", 2, 2, (
        engine.Cell("feed_health", 0, 0),
        engine.Cell("unit_roster", 0, 1, then=("order_audit",), every=60),
        engine.Cell("feed_health", 1, 0, colspan=2)))
    (w,) = build_wall(standard().situation, None, "zh", "LIVE",
                      QGuiApplication.screens()[:1], layout=engine.Layout("t", (screen,)))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w, timeout=10000)
    (doc,) = window_status([w])
    rects = doc["panel_rects"]
    assert set(rects) == {"clock", "feed_health", "feed_health#2", "unit_roster", "order_audit"}
    assert "map_view" not in doc                     # no map in this window
    check_rects(doc, together=[("unit_roster", "order_audit")])
    assert rects["feed_health"][0] < rects["unit_roster"][0]          # left column, top row
    assert rects["feed_health#2"][1] > rects["feed_health"][1]        # the bottom row


# ---- end to end: --status-out with windows ------------------------------------------------------
def screen(name: str, x: int) -> dict:
    return {"name": name, "x": x, "y": 0, "width": 1920, "height": 1080,
            "logicalDpiX": 96, "logicalDpiY": 96}


def test_status_out_with_windows_has_rects_and_the_map_view(tmp_path):
    """Three screens listed out of order (centre first): the status's windows come leftmost
    first, the built-in command screen (queue and map) on the left one."""
    config = tmp_path / "screens.json"
    config.write_text(json.dumps({"screens": [screen("centre", 1920), screen("left", 0),
                                              screen("right", 3840)]}))
    status = tmp_path / "status.json"
    env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={config}")
    # The run is the wait: the map page loads and reports its view within it.
    out = subprocess.run([sys.executable, "main.py", "--demo", "--run-for", "8",
                          "--status-out", str(status)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(status.read_text())
    wins = doc["windows"]
    assert [(w["screen"], w["x"]) for w in wins] == [("left", 0), ("centre", 1920),
                                                      ("right", 3840)]
    assert {"case_queue", "city_map", "supervision_kpis"} <= set(wins[0]["panels"])
    for w in wins:
        assert set(w["panel_rects"]) == set(w["panels"])
        check_rects(w)
    with_map = [w for w in wins if "city_map" in w["panels"]]
    assert [w["screen"] for w in with_map] == ["left"]
    assert all("map_view" not in w for w in wins if w not in with_map)
    view = with_map[0]["map_view"]
    assert view is not None, "the map page did not report its view within the run"
    check_view(view)
    # The whole city in view (nobody moved the map): Beijing's centre is inside the bounds.
    (s, w_), (n, e) = view["bounds"]
    assert s < 39.9 < n and w_ < 116.4 < e

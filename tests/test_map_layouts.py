"""The map is centre stage (#14): on the command screen of every built-in layout and preset it
is the largest panel and covers at least 40 % of a 1920×1080 window; on a map screen, the whole
of the window's body. Measured on real windows laid out at 1080p, as the status file reports
them (``windows[].panel_rects``)."""
from __future__ import annotations

import pytest

from layouts import engine
from tests.scenario import standard
from widgets.registry import PANELS

W, H = 1920, 1080
MAP_SHARE = 0.40


def command_screen_rects(qtbot, screen: "engine.Screen") -> dict[str, list[int]]:
    from ui.app import panel_rects
    from ui.wall import WallWindow
    w = WallWindow(standard().situation, None, "zh", "LIVE", screen)
    qtbot.addWidget(w)
    w.resize(W, H)
    w.show()
    qtbot.waitExposed(w, timeout=10000)
    w.layout().activate()
    qtbot.wait(50)
    assert (w.width(), w.height()) == (W, H)
    return panel_rects(w)


def map_screens():
    from ui.wall import default_layout
    out = []
    for n in (1, 2, 3):
        out.append((f"built-in-{n}", default_layout(n).screens[0]))
    for name in ("commander", "wall-2", "wall-3", "night"):
        layout = engine.load_layout(name, set(PANELS))
        out.append((name, next(s for s in layout.screens if "city_map" in s.panels())))
    return out


@pytest.mark.parametrize("name, screen", map_screens(), ids=lambda v: v if isinstance(v, str)
                         else "")
def test_the_map_is_the_largest_panel_and_at_least_40_percent(qtbot, name, screen):
    rects = command_screen_rects(qtbot, screen)
    area = {k: r[2] * r[3] for k, r in rects.items()}
    share = area["city_map"] / (W * H)
    assert share >= MAP_SHARE, (name, round(share, 3), rects)
    assert area["city_map"] == max(area.values()), (name, rects)
    if screen.panels() == ["city_map"]:          # a map screen: the whole body is the map
        x, y, w, h = rects["city_map"]
        assert w >= W - 40 and share >= 0.8


def test_the_queue_keeps_room_for_its_key_columns(qtbot):
    """Beside the larger map the queue still has room for its key columns (case, category,
    district, time left, unit): at least ~420 px of a 1080p window on every command screen."""
    for name, screen in map_screens():
        if "case_queue" not in screen.panels():
            continue
        rects = command_screen_rects(qtbot, screen)
        assert rects["case_queue"][2] >= 420, (name, rects["case_queue"])

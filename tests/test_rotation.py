"""Rotation: a layout cell that shows several panels in turn, every N seconds, held by a touch
of the mouse — its syntax and checks (layouts/engine.py), on the wall (ui/wall.py Rotation)
and in the commander's console (tabs)."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QSettings
from PySide6.QtGui import QCursor, QGuiApplication

from layouts import engine
from layouts.engine import LayoutError, fold, load_layout, parse_layout, save_layout, to_toml
from tests.scenario import standard
from ui.wall import ROTATE_PAUSE_MS, IdlePointer, build_wall, idle_pointer
from widgets.registry import PANELS

KNOWN = set(PANELS)
TABLES = ["case_queue", "unit_roster", "feed_health"]       # cheap panels to rotate in tests
HEAD = 'name = "r"\n\n[[screen]]\nrows = 2\ncols = 2\ncells = [\n'


def layout_text(rotation: str) -> str:
    return HEAD + '  { panel = "city_map", row = 0, col = 0, colspan = 2 },\n' \
        f"  {rotation}\n]\n"


# ---- the file ----------------------------------------------------------------------------------
def test_a_rotation_reads_round_trips_and_folds(tmp_path):
    text = layout_text('{ panel = ["peak_duty", "spatial_heat"], every = 12.5, row = 1, '
                       'col = 0, colspan = 2 },')
    layout = parse_layout(text, "r.toml", KNOWN)
    cell = layout.screens[0].cells[1]
    assert cell.panel == "peak_duty" and cell.pages == ("peak_duty", "spatial_heat")
    assert cell.every == 12.5
    assert layout.panels() == ["city_map", "peak_duty", "spatial_heat"]   # all on the screen
    assert parse_layout(to_toml(layout), "again.toml", KNOWN) == layout
    assert load_layout(save_layout(layout, tmp_path / "r.toml"), KNOWN) == layout
    # a one-panel list is a plain cell; the default page time is ROTATE_EVERY_S
    plain = parse_layout(layout_text('{ panel = ["peak_duty"], row = 1, col = 0 },'), "p", KNOWN)
    assert plain.screens[0].cells[1] == engine.Cell("peak_duty", 1, 0)
    default = parse_layout(layout_text('{ panel = ["peak_duty", "city_map"], row = 1, col = 0 },'),
                           "d", KNOWN)
    assert default.screens[0].cells[1].every == engine.ROTATE_EVERY_S
    # folded onto another screen, the rotation goes with its cell
    two = engine.Layout("two", (layout.screens[0], engine.Screen(1, "", "", 1, 1, (
        engine.Cell("case_queue", 0, 0),))))
    merged, _ = fold(two, 1)
    rotating = [c for c in merged[0].cells if c.then]
    assert [(c.pages, c.every) for c in rotating] == [(("peak_duty", "spatial_heat"), 12.5)]


@pytest.mark.parametrize("rotation, words", [
    ('{ panel = ["peak_duty", "spatial_heet"], every = 20, row = 1, col = 0 },',
     "unknown panel 'spatial_heet'; did you mean 'spatial_heat'?"),
    ('{ panel = ["peak_duty", "spatial_heat"], every = 0, row = 1, col = 0 },',
     "every must be a number of seconds ≥ 1, not 0"),
    ('{ panel = ["peak_duty", "spatial_heat"], every = -5, row = 1, col = 0 },',
     "every must be a number of seconds ≥ 1"),
    ('{ panel = ["peak_duty", "spatial_heat"], every = "20", row = 1, col = 0 },',
     "every must be a number of seconds"),
    ('{ panel = [], every = 20, row = 1, col = 0 },', "panel = [] names no panel"),
    ('{ panel = "peak_duty", every = 20, row = 1, col = 0 },', "every is for a rotation"),
    ('{ panel = ["peak_duty", "peak_duty"], row = 1, col = 0 },', "lists a panel twice"),
    ('{ panel = ["peak_duty", 3], row = 1, col = 0 },', "lists panel names, not 3"),
])
def test_a_bad_rotation_names_file_and_line(tmp_path, rotation, words):
    path = tmp_path / "bad.toml"
    path.write_text(layout_text(rotation), encoding="utf-8")
    with pytest.raises(LayoutError) as e:
        load_layout(path, KNOWN)
    assert str(e.value).startswith(f"{path}:8: screen 1: ") and words in e.value.problem


def test_presets_rotate():
    wall2 = load_layout("wall-2", KNOWN)
    assert [c.pages for s in wall2.screens for c in s.cells if c.then] == [
        ("peak_duty", "temporal_heat", "spatial_heat")]
    assert any(c.then for c in load_layout("night", KNOWN).screens[0].cells)


# ---- on the wall -------------------------------------------------------------------------------
@pytest.fixture
def pointer():
    """The one IdlePointer, as if nobody had touched the mouse; left that way afterwards."""
    idle = idle_pointer()

    def untouched():
        idle.last, idle.touched_ms = QCursor.pos(), float("inf")
    untouched()
    yield idle
    untouched()


def rotating_window(qtbot, every: float = 20):
    screen = engine.Screen(0, "甲", "A", 1, 2, (
        engine.Cell("city_map", 0, 0),
        engine.Cell(TABLES[0], 0, 1, then=tuple(TABLES[1:]), every=every)))
    windows = build_wall(standard().situation, None, "zh", "LIVE",
                         QGuiApplication.screens()[:1], layout=engine.Layout("r", (screen,)))
    for w in windows:
        qtbot.addWidget(w)
    w = windows[0]
    return w, w.rotations[0]


def test_a_rotating_cell_shows_its_panels_in_turn(qtbot, pointer):
    w, rot = rotating_window(qtbot)
    assert w.panel_names() == ["clock", "city_map", *TABLES]     # every page is on this screen
    assert [p.name for p in rot.panels] == TABLES
    assert rot.current().name == "case_queue" and rot.mark.text() == "1/3"
    # the pages waiting their turn are not redrawn; the one coming up is, on arrival
    for p in w.panels:
        p.dirty = True
    w.refresh_now()
    assert [p.dirty for p in rot.panels] == [False, True, True]
    rot.step()
    assert rot.current().name == "unit_roster" and rot.mark.text() == "2/3"
    assert not rot.panels[1].dirty and rot.stack.currentWidget() is rot.panels[1]
    rot.step()
    rot.step()
    assert rot.current().name == "case_queue" and rot.mark.text() == "1/3"


def test_a_touch_of_the_mouse_holds_the_rotation(qtbot, pointer):
    w, rot = rotating_window(qtbot)
    inside = w.frameGeometry().center()
    pointer.poll(inside)                                  # someone moves the mouse here
    rot.step()
    assert rot.current().name == "case_queue" and rot.mark.text() == "暂停 1/3"
    for _ in range(ROTATE_PAUSE_MS // IdlePointer.POLL_MS):  # …then leaves it for 30 s
        pointer.poll(inside)
    assert rot.mark.text() == "1/3"
    rot.step()
    assert rot.current().name == "unit_roster"
    pointer.poll(w.frameGeometry().topRight() + QPoint(500, 0))   # on another screen
    rot.step()
    assert rot.current().name == "feed_health"


def test_the_timer_turns_the_pages(qtbot, pointer):
    _, rot = rotating_window(qtbot, every=1)
    qtbot.waitUntil(lambda: rot.index == 1, timeout=5_000)


# ---- in the console ----------------------------------------------------------------------------
def test_the_console_shows_a_rotation_as_tabs(qtbot, tmp_path):
    from ui.console import CommanderConsole
    screen = engine.Screen(0, "甲", "A", 2, 2, (
        engine.Cell("city_map", 0, 0, 2, 1),
        engine.Cell(TABLES[0], 0, 1, 2, 1, then=tuple(TABLES[1:]))))
    settings = QSettings(str(tmp_path / "c.ini"), QSettings.IniFormat)
    c = CommanderConsole(standard().situation, None, "zh", "LIVE", screen, settings)
    qtbot.addWidget(c)
    docks = {d.widget().name: d for d in c.docks.values()}
    assert set(docks) == set(TABLES)
    assert set(c.tabifiedDockWidgets(docks["case_queue"])) == {docks["unit_roster"],
                                                              docks["feed_health"]}
    assert c.panel_names() == ["clock", "city_map", *TABLES]

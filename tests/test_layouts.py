"""The layout engine (layouts/engine.py): presets, round trip, folding, bad files, shifts.

No Qt application is needed: the engine is pure data; only the registry's panel names and
ui/wall.py's BUILT_IN table are imported."""
from __future__ import annotations

import tomllib
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from layouts import engine
from layouts.engine import (Cell, Layout, LayoutError, Screen, assign, banner, current_shift,
                            fold, from_rows, layout_due, load_layout, load_or_default,
                            load_schedule, next_switch, rects, save_layout, to_toml)
from widgets.registry import PANELS

KNOWN = set(PANELS)
TZ = ZoneInfo("Asia/Shanghai")
PRESETS = ["commander", "wall-2", "wall-3", "night", "training"]


def ms(y, mo, d, h, mi, s=0) -> int:
    return int(datetime(y, mo, d, h, mi, s, tzinfo=TZ).timestamp() * 1000)


def write(tmp_path, text, name="bad.toml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def panel_multiset(screens) -> list[str]:
    return sorted(p for s in screens for p in s.panels())


# ---- presets ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_loads_with_registered_panels(name):
    layout = load_layout(name, KNOWN)
    assert layout.name == name
    assert layout.screens and set(layout.panels()) <= KNOWN


def test_presets_are_the_ones_asked_for():
    assert set(PRESETS) <= set(engine.presets())
    assert len(load_layout("commander", KNOWN).screens) == 1
    assert len(load_layout("night", KNOWN).screens) == 1
    assert len(load_layout("training", KNOWN).screens) == 1
    w3 = load_layout("wall-3", KNOWN)
    assert [set(s.panels()) for s in w3.screens] == [
        {"city_map"}, {"spatial_heat", "temporal_heat", "peak_duty", "sensor_tiles"},
        {"case_queue", "unit_roster", "supervision_kpis", "order_audit", "feed_health"}]


def test_wall_2_preset_looks_like_the_built_in_two_screen_wall():
    from ui.wall import BUILT_IN
    built = from_rows("built-in-2", BUILT_IN[2])
    preset = load_layout("wall-2", KNOWN)
    assert [rects(s) for s in preset.screens] == [rects(s) for s in built.screens]


def test_from_rows_keeps_every_panel_of_each_built_in_layout():
    from ui.wall import BUILT_IN, EXTRA_SCREENS, layout_for
    for n, screens in list(BUILT_IN.items()) + [(5, layout_for(5))]:
        layout = from_rows(f"built-in-{n}", screens)
        assert [s.panels() for s in layout.screens] == [
            [p for _, cells in rows for p, _ in cells] for _, _, rows in screens]
        # proportions kept exactly: each row's widths are its stretches over the row's total
        for screen, (_, _, rows) in zip(layout.screens, screens):
            r = {p: (x1 - x0) for p, x0, _, x1, _ in rects(screen)}
            for _, cells in rows:
                total = sum(st for _, st in cells)
                for p, st in cells:
                    assert r[p] * total == st
        # and the converted layout is itself a valid file
        assert engine.parse_layout(to_toml(layout), "x.toml", KNOWN) == layout
    assert EXTRA_SCREENS


# ---- save → load ---------------------------------------------------------------------------
def test_round_trip_save_load_equal_and_atomic(tmp_path):
    for name in PRESETS:
        layout = load_layout(name, KNOWN)
        out = save_layout(layout, tmp_path / f"{name}.toml")
        tomllib.loads(out.read_text(encoding="utf-8"))
        assert load_layout(out, KNOWN) == layout
    odd = Layout("odd \"quoted\" \\ name", (
        Screen("DP-1 \"left\"", "左屏", "Left", 2, 3,
               (Cell("city_map", 0, 0, 2, 2), Cell("case_queue", 0, 2)), (1, 4), (2, 2, 5)),
        Screen(3, "", "", 1, 1, (Cell("city_map", 0, 0),))), "")
    p = save_layout(odd, tmp_path / "odd.toml")
    assert load_layout(p, KNOWN) == odd
    save_layout(odd, p)                                   # overwrite in place
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted(
        [f"{n}.toml" for n in PRESETS] + ["odd.toml"])   # no temp file left behind


def test_failed_save_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    layout = load_layout("night", KNOWN)
    p = save_layout(layout, tmp_path / "mine.toml")
    before = p.read_text(encoding="utf-8")

    def boom(*a, **k):
        raise OSError("disk full")
    import situation.atomic
    monkeypatch.setattr(situation.atomic.os, "replace", boom)
    with pytest.raises(OSError):
        save_layout(load_layout("commander", KNOWN), p)
    assert p.read_text(encoding="utf-8") == before
    assert [x.name for x in tmp_path.iterdir()] == ["mine.toml"]


# ---- folding -------------------------------------------------------------------------------
@pytest.mark.parametrize("attached", [1, 2])
def test_fold_three_screens_onto_fewer_keeps_every_panel(attached):
    layout = load_layout("wall-3", KNOWN)
    screens, message = fold(layout, attached)
    assert len(screens) == attached
    assert panel_multiset(screens) == panel_multiset(layout.screens)
    assert "布局需要 3 块屏幕" in message and f"{attached} attached" in message
    if attached == 2:
        assert "第 3 屏的面板并入第 2 屏" in message
        assert "screen 3's panels folded onto screen 2" in message
        assert screens[0] == layout.screens[0]
    else:
        assert "第 2、3 屏的面板并入第 1 屏" in message
    for s in screens:                        # the merged grid is itself a valid screen
        text = to_toml(Layout("f", (s,)))
        assert engine.parse_layout(text, "f.toml", KNOWN).screens == (s,)
    # the folded screen keeps its own proportions below the target's
    merged = screens[-1]
    own = {p: (x1 - x0) for p, x0, _, x1, _ in rects(layout.screens[2])}
    got = {p: (x1 - x0) for p, x0, _, x1, _ in rects(merged)}
    assert all(got[p] == w for p, w in own.items())


def test_no_fold_when_enough_screens():
    layout = load_layout("wall-3", KNOWN)
    screens, message = fold(layout, 3)
    assert message is None and screens == list(layout.screens)
    screens, message = fold(layout, 5)                   # extra attached screens stay unused
    assert message is None and len(screens) == 3


def test_match_by_name_before_index():
    a = Screen(0, "", "A", 1, 1, (Cell("city_map", 0, 0),))
    b = Screen("wall-left", "", "B", 1, 1, (Cell("case_queue", 0, 0),))
    c = Screen(1, "", "C", 1, 1, (Cell("unit_roster", 0, 0),))
    layout = Layout("m", (a, b, c))
    placed, message = assign(layout, ["wall-right", "wall-left", "wall-mid"])
    assert message is None
    assert [(k, s.title_en) for k, s, _ in placed] == [(0, "A"), (1, "B"), (2, "C")]
    # index 1 is taken by name, so the screen that asked for index 1 takes the free one
    placed, _ = assign(layout, ["x", "wall-left", "y"])
    assert dict((s.title_en, k) for k, s, _ in placed) == {"A": 0, "B": 1, "C": 2}
    # name not attached: it takes a free screen; with too few, the rest fold onto the last
    placed, message = assign(layout, ["p", "q"])
    assert [(k, s.title_en) for k, s, _ in placed] == [(0, "A"), (1, "C + B")]
    assert placed[1][2] == [b] and "screen 2's panels folded onto screen 2" in message


# ---- bad files -----------------------------------------------------------------------------
GOOD_HEAD = 'name = "t"\n\n[[screen]]\nmatch = 0\ntitle = ["甲", "A"]\nrows = 2\ncols = 2\n'


def check_bad(tmp_path, text, line, *words):
    p = write(tmp_path, text)
    with pytest.raises(LayoutError) as e:
        load_layout(p, KNOWN)
    err = e.value
    assert err.path == str(p) and err.line == line
    assert str(err).startswith(f"{p}:{line}: ")
    for w in words:
        assert w in err.problem
    return err


def test_syntax_error_names_file_and_line(tmp_path):
    check_bad(tmp_path, GOOD_HEAD + 'cells = [\n  { panel = "city_map", row = 0 col = 0 },\n]\n',
              9, "TOML syntax error")


def test_unknown_panel_named_with_its_line(tmp_path):
    err = check_bad(tmp_path, GOOD_HEAD + 'cells = [\n  { panel = "city_map", row = 0, col = 0 },'
                    '\n  { panel = "city_mapp", row = 1, col = 0 },\n]\n',
                    10, "'city_mapp'", "city_map", "known:")
    assert "did you mean 'city_map'" in err.problem


def test_span_outside_the_grid(tmp_path):
    check_bad(tmp_path, GOOD_HEAD + 'cells = [\n  { panel = "city_map", row = 0, col = 1, '
              'colspan = 2 },\n]\n', 9, "city_map", "outside the 2×2 grid")


def test_overlapping_cells_name_both_panels(tmp_path):
    check_bad(tmp_path, GOOD_HEAD + '[[screen.cells]]\npanel = "city_map"\nrow = 0\ncol = 0\n'
              'rowspan = 2\n\n[[screen.cells]]\npanel = "case_queue"\nrow = 1\ncol = 0\n',
              15, "'case_queue' overlaps panel 'city_map'")


def test_duplicate_screen_match(tmp_path):
    cells = 'cells = [{ panel = "city_map", row = 0, col = 0 }]\n'
    check_bad(tmp_path, GOOD_HEAD + cells + '\n[[screen]]\nrows = 1\ncols = 1\nmatch = 0\n'
              + cells, 13, "match = 0 is already used by screen 1")


def test_no_screens(tmp_path):
    check_bad(tmp_path, 'name = "empty"\n', 1, "no screens")


def test_other_bad_values(tmp_path):
    check_bad(tmp_path, GOOD_HEAD + 'cells = [{ panel = "city_map", row = 0, col = 0, '
              'colsapn = 2 }]\n', 8, "unknown cell key 'colsapn'")
    check_bad(tmp_path, GOOD_HEAD.replace("rows = 2", 'rows = "2"') + 'cells = [{ panel = '
              '"city_map", row = 0, col = 0 }]\n', 6, "rows must be a whole number")
    check_bad(tmp_path, GOOD_HEAD + 'row_stretch = [1]\ncells = [{ panel = "city_map", '
              'row = 0, col = 0 }]\n', 8, "row_stretch must list 2")


def test_the_night_layout_asks_for_the_night_palette(tmp_path):
    """`palette = "night"` (top level): read, checked, written back; the day's is the default."""
    assert load_layout("night", KNOWN).palette == "night"
    assert {load_layout(n, KNOWN).palette for n in PRESETS if n != "night"} == {"day"}
    assert from_rows("b", [("一", "One", [(1, [("city_map", 1)])])]).palette == "day"
    night = load_layout("night", KNOWN)
    assert 'palette = "night"' in to_toml(night)
    assert load_layout(save_layout(night, tmp_path / "n.toml"), KNOWN) == night
    assert "palette" not in to_toml(load_layout("commander", KNOWN))
    assert night != Layout(night.name, night.screens, night.source)      # the palette counts
    check_bad(tmp_path, 'name = "x"\npalette = "dusk"\n' + GOOD_HEAD.split("\n", 1)[1]
              + 'cells = [{ panel = "city_map", row = 0, col = 0 }]\n', 2,
              "palette must be one of: 'day', 'night'")


def test_missing_preset_and_load_or_default(tmp_path):
    default = from_rows("built-in-1", [("综合", "Overview", [(1, [("city_map", 1)])])])
    layout, problem = load_or_default("no-such-layout", KNOWN, default)
    assert layout is default and "no such layout file" in problem and "wall-3" in problem
    p = write(tmp_path, GOOD_HEAD + 'cells = [{ panel = "nope", row = 0, col = 0 }]\n')
    layout, problem = load_or_default(str(p), KNOWN, default)
    assert layout is default
    assert problem.startswith(f"{p}:8: ") and "'nope'" in problem and "built-in-1" in problem
    layout, problem = load_or_default("night", KNOWN, default)
    assert layout.name == "night" and problem is None


# ---- shift schedule ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shifts():
    return load_schedule("shifts")


def test_preset_schedule_names_preset_layouts(shifts):
    assert [(s.name, s.layout) for s in shifts] == [
        ("day", "wall-3"), ("evening", "wall-2"), ("night", "night")]
    for s in shifts:
        load_layout(s.layout, KNOWN)


@pytest.mark.parametrize("hhmm, name", [("07:59", "night"), ("08:00", "day"),
                                        ("15:59", "day"), ("16:00", "evening"),
                                        ("23:59", "evening"), ("00:00", "night")])
def test_current_shift_on_a_controlled_clock(shifts, hhmm, name):
    h, m = map(int, hhmm.split(":"))
    assert current_shift(shifts, h * 60 + m).name == name
    assert layout_due(shifts, ms(2024, 3, 5, h, m, 30), None) == \
        {"night": "night", "day": "wall-3", "evening": "wall-2"}[name]


def test_next_switch_and_banner_follow_the_given_clock(shifts):
    now = ms(2024, 3, 5, 15, 58, 0)
    at, nxt = next_switch(shifts, now)
    assert at == ms(2024, 3, 5, 16, 0) and nxt.name == "evening"
    assert banner(shifts, now) is None                          # 120 s before: no banner
    assert banner(shifts, ms(2024, 3, 5, 15, 59, 0)) == "60 秒后切换到中班布局 / evening layout in 60 s"
    assert banner(shifts, ms(2024, 3, 5, 15, 59, 1)) == "59 秒后切换到中班布局 / evening layout in 59 s"
    assert banner(shifts, ms(2024, 3, 5, 15, 59, 59) + 500).startswith("1 秒后")
    assert banner(shifts, ms(2024, 3, 5, 15, 59, 1), held=True) is None
    assert banner(shifts, ms(2024, 3, 5, 16, 0)) is None        # switched: next is 24:00
    # the evening shift ends at midnight: the switch is the next day's 00:00, to night
    at, nxt = next_switch(shifts, ms(2024, 3, 5, 23, 59, 30))
    assert at == ms(2024, 3, 6, 0, 0) and nxt.name == "night"
    assert banner(shifts, ms(2024, 3, 5, 23, 59, 30)) == "30 秒后切换到夜班布局 / night layout in 30 s"
    # held: the caller keeps its layout across the switch
    assert layout_due(shifts, ms(2024, 3, 5, 16, 0, 5), "wall-3", held=True) == "wall-3"
    assert layout_due(shifts, ms(2024, 3, 5, 16, 0, 5), "wall-3") == "wall-2"


def test_overnight_shift(tmp_path):
    p = write(tmp_path, '[[shift]]\nname = "late"\nstart = "22:00"\nend = "06:00"\n'
              'layout = "night"\n\n[[shift]]\nname = "day"\nstart = "06:00"\nend = "22:00"\n'
              'layout = "mine/day.toml"\n', "s.toml")
    sched = load_schedule(p)
    assert current_shift(sched, 23 * 60).name == "late"
    assert current_shift(sched, 5 * 60 + 59).name == "late"
    assert current_shift(sched, 6 * 60).name == "day"
    assert sched[1].layout == str(tmp_path / "mine" / "day.toml")   # next to the schedule
    at, nxt = next_switch(sched, ms(2024, 3, 5, 23, 0))
    assert at == ms(2024, 3, 6, 6, 0) and nxt.name == "day"
    assert banner(sched, ms(2024, 3, 6, 5, 59, 15)) == "45 秒后切换到白班布局 / day layout in 45 s"


@pytest.mark.parametrize("body, line, words", [
    ('[[shift]]\nname = "a"\nstart = "00:00"\nend = "12:00"\nlayout = "night"\n'
     '[[shift]]\nname = "b"\nstart = "11:00"\nend = "24:00"\nlayout = "night"\n', 6,
     "'b' overlaps shift 'a' at 11:00"),
    ('[[shift]]\nname = "a"\nstart = "00:00"\nend = "12:00"\nlayout = "night"\n'
     '[[shift]]\nname = "b"\nstart = "13:00"\nend = "24:00"\nlayout = "night"\n', 1,
     "12:00–13:00 uncovered"),
    ('[[shift]]\nname = "a"\nstart = "8am"\nend = "12:00"\nlayout = "night"\n', 3, "HH:MM"),
    ('[[shift]\nname = "a"\n', 1, "TOML syntax error"),
])
def test_bad_schedules(tmp_path, body, line, words):
    p = write(tmp_path, body, "s.toml")
    with pytest.raises(LayoutError) as e:
        load_schedule(p)
    assert e.value.line == line and words in e.value.problem and str(p) in str(e.value)

"""The map at wall scale (#14): it opens on where the city's work is (with an overview of the
whole municipality), counts the cases outside its view and brings them in with one click,
never lets two names overlap, draws cases, units and sensors in different shapes at a size
read from 4 m, dims its markers under the heat, keeps a metric scale only, says that no street
basemap is shipped, and takes every colour from the palette in use."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.scenario import MIN, Scenario, standard
from tests.test_city_map import loaded_map, run_js
from widgets import theme
from widgets.city_map import LABEL_PX, LEGEND_PX, MARKER_PX, build_page, legend_entries

ROOT = Path(__file__).resolve().parent.parent
COLOUR_LITERAL = re.compile(r"#[0-9a-fA-F]{3,8}\b|\brgba?\(\s*\d")


def core_city() -> Scenario:
    """Most open cases and units in the urban core, a few far out in the districts, one
    far away (held)."""
    sc = Scenario()
    for i in range(40):
        sc.case(f"C{i:02d}", 60 + i, status="registered", lat=39.90 + (i % 8) * 0.006,
                lon=116.38 + (i // 8) * 0.01)
    for i, (lat, lon) in enumerate([(40.45, 116.0), (40.6, 117.2), (39.5, 116.6)]):
        sc.case(f"FAR{i}", 60, status="registered", lat=lat, lon=lon)
    sc.case("C-NULL", 60, status="registered", lat=0.0, lon=0.0)
    for i in range(12):
        sc.unit(f"U{i}", callsign=f"巡{i}", status="available", lat=39.91 + (i % 4) * 0.01,
                lon=116.39 + (i // 4) * 0.015)
    return sc


def test_the_default_view_holds_the_work_not_the_whole_municipality(qtbot):
    sc = core_city()
    m = loaded_map(qtbot, sc.situation)
    qtbot.waitUntil(lambda: m.map_view is not None and m.map_view["zoom"] >= 11, timeout=10000)
    (s, w), (n, e) = m.map_view["bounds"]
    # The open cases' centre of mass (those in the city) is in view …
    inside = [c for c in sc.situation.open_cases() if 39 < c.lat < 41.5]
    lat = sum(c.lat for c in inside) / len(inside)
    lon = sum(c.lon for c in inside) / len(inside)
    assert s < lat < n and w < lon < e
    # … and most of the core's cases, at a zoom closer than the whole city's (the far ones,
    # and the one at 0°, 0°, do not pull it out).
    core = [c for c in inside if c.case_id.startswith("C")]
    seen = [c for c in core if s < c.lat < n and w < c.lon < e]
    assert len(seen) >= 0.6 * len(core)
    assert not any(s < c.lat < n and w < c.lon < e for c in inside if c.case_id.startswith("F"))
    assert (n - s) < 0.5 and (e - w) < 0.6
    # The overview inset shows the whole municipality and the view as a rectangle.
    rs, rw, rn, re_ = run_js(qtbot, m, "cw.overviewRect()")
    assert abs(rs - s) < 1e-6 and abs(rn - n) < 1e-6 and abs(rw - w) < 1e-6
    assert run_js(qtbot, m, "document.querySelector('.cw-overview .leaflet-pane') !== null")


def test_cases_outside_the_view_are_counted_and_one_click_brings_them_in(qtbot):
    sc = core_city()
    m = loaded_map(qtbot, sc.situation)
    qtbot.waitUntil(lambda: m.map_view is not None and m.map_view["zoom"] >= 11, timeout=10000)
    s, w, n, e = run_js(qtbot, m, "cw.viewBounds()")
    out = [c for c in sc.situation.open_cases()
           if 39 < c.lat < 41.5 and not (s <= c.lat <= n and w <= c.lon <= e)]
    assert len(out) >= 3                                # the far ones at least
    assert run_js(qtbot, m, "cw.outside().n") == len(out)
    text = run_js(qtbot, m, "document.querySelector('.cw-offview').textContent")
    assert f"视野外 {len(out)} 件" in text and "▸" in text
    run_js(qtbot, m, "(document.querySelector('.cw-offview').click(), true)")
    qtbot.waitUntil(lambda: run_js(qtbot, m, "cw.outside().n") == 0, timeout=5000)
    s, w, n, e = run_js(qtbot, m, "cw.viewBounds()")
    for c in sc.situation.open_cases():
        if c.case_id.startswith("FAR"):
            assert s <= c.lat <= n and w <= c.lon <= e
    assert run_js(qtbot, m, "document.querySelector('.cw-offview').style.display") == "none"


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_district_names_never_overlap_at_any_zoom(qtbot, lang):
    m = loaded_map(qtbot, Scenario().situation, lang)
    for zoom in (7, 8, 9, 9.5, 10, 10.5, 11, 12, 13, 14, 16):
        for lat, lon in ((39.93, 116.40), (40.2, 116.5), (39.75, 116.2)):
            rects = run_js(qtbot, m, f"""(function () {{
                window.__CW_MAP__.setView([{lat}, {lon}], {zoom}, {{animate: false}});
                cw.declutter();
                return Array.from(document.querySelectorAll('.cw-district'))
                  .filter(e => !e.classList.contains('cw-hidden'))
                  .map(e => {{ var r = e.firstElementChild.getBoundingClientRect();
                              return [r.left, r.top, r.right, r.bottom]; }});
            }})()""")
            for i, a in enumerate(rects):
                for b in rects[i + 1:]:
                    assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), \
                        (zoom, lat, lon, a, b)
    # At the city-wide view some names are shown (not all hidden to pass the test).
    shown = run_js(qtbot, m, "(window.__CW_MAP__.setView([40.2, 116.4], 9, {animate: false}),"
                             " cw.declutter())")
    assert shown >= 6
    size = run_js(qtbot, m, "parseFloat(getComputedStyle(document.querySelector("
                            "'.cw-district span')).fontSize)")
    assert size >= 18 and LABEL_PX >= 18


def test_markers_are_shapes_at_a_size_read_from_four_metres(qtbot):
    """The size rule: at 1080p (scale 1) a case is at least 10 px in radius (22 px across), an
    overdue one larger; a unit at least 8 px; a sensor at least 6 px; and each kind its own
    shape (case diamond, unit circle, sensor triangle)."""
    sc = standard()
    m = loaded_map(qtbot, sc.situation)
    case = run_js(qtbot, m, "cw.marker('cases', 'C-NODUE')")
    late = run_js(qtbot, m, "cw.marker('cases', 'C-LATE')")
    unit = run_js(qtbot, m, "cw.marker('units', 'U2')")
    sensor = run_js(qtbot, m, "cw.marker('sensors', 'AQ-1')")
    assert case["shape"] == "diamond" and unit["shape"] == "circle" \
        and sensor["shape"] == "triangle"
    assert case["radius"] >= 10 and MARKER_PX["case"] >= 10
    assert late["radius"] >= MARKER_PX["case_late"] > case["radius"] and late["ring"] > 0
    assert unit["radius"] >= 8 and sensor["radius"] >= 6
    # The colours say what they mean, from the palette.
    assert late["fill"] == theme.ALARM and case["fill"] == theme.CASE
    assert run_js(qtbot, m, "cw.marker('cases', 'C-SOON').fill") == theme.WARN
    assert unit["fill"] == theme.READY
    assert run_js(qtbot, m, "cw.marker('sensors', 'AQ-3').fill") == theme.ALARM
    assert run_js(qtbot, m, "cw.marker('sensors', 'AQ-2').fill") == theme.WARN
    # An overdue case carries a label that says so.
    labels = run_js(qtbot, m, "Array.from(document.querySelectorAll('.cw-alert'))"
                              ".map(e => e.textContent)")
    assert any("C-LATE" in t and "超期" in t for t in labels)
    # On a larger screen (scale 2) they keep their physical size.
    run_js(qtbot, m, "cw.setScale(2)")
    assert run_js(qtbot, m, "cw.marker('cases', 'C-NODUE').radius") >= 2 * MARKER_PX["case"]
    assert run_js(qtbot, m, "parseFloat(getComputedStyle(document.getElementById('cw-legend'))"
                            ".fontSize)") >= 2 * LEGEND_PX


def test_heat_dims_the_markers(qtbot):
    m = loaded_map(qtbot, standard().situation)
    before = run_js(qtbot, m, "cw.layers.cases.getLayers().filter(l => l.cw.id === 'C-NODUE')"
                              "[0].options.fillOpacity")
    m.buttons["heat"].setChecked(True)
    qtbot.waitUntil(lambda: run_js(qtbot, m, "cw.overlay !== null"), timeout=5000)
    after = run_js(qtbot, m, "cw.layers.cases.getLayers().filter(l => l.cw.id === 'C-NODUE')"
                             "[0].options.fillOpacity")
    assert after < before * 0.6
    assert run_js(qtbot, m, "cw.overlay.options.opacity") >= 0.9
    m.buttons["heat"].setChecked(False)
    qtbot.waitUntil(lambda: run_js(qtbot, m, "cw.overlay === null"), timeout=5000)
    assert run_js(qtbot, m, "cw.layers.cases.getLayers().filter(l => l.cw.id === 'C-NODUE')"
                            "[0].options.fillOpacity") == before


def test_metric_scale_legend_and_the_basemap_statement(qtbot):
    m = loaded_map(qtbot, standard().situation)
    assert run_js(qtbot, m, "document.querySelectorAll('.leaflet-control-scale-line').length") == 1
    assert run_js(qtbot, m, "/\\d+ (m|km)$/.test(document.querySelector("
                            "'.leaflet-control-scale-line').textContent)")
    note = run_js(qtbot, m, "document.getElementById('cw-no-basemap').textContent")
    assert "--tiles" in note and "街道底图" in note
    # The legend: every marker the map can show, with its shape, at 18 px or more.
    keys = run_js(qtbot, m, "document.querySelectorAll('#cw-legend .cw-key svg').length")
    assert keys == sum(len(items) for _, items in legend_entries("zh")) >= 12
    px = run_js(qtbot, m, "parseFloat(getComputedStyle(document.getElementById('cw-legend'))"
                          ".fontSize)")
    assert px >= 18 and LEGEND_PX >= 18
    # Nothing a commander must read below 16 px.
    small = run_js(qtbot, m, """Array.from(document.querySelectorAll(
        '#cw-legend, #cw-legend *, .cw-offview, .cw-note, .cw-district span, .cw-alert,'
        + ' .leaflet-control-scale-line, .cw-home'))
        .map(e => parseFloat(getComputedStyle(e).fontSize)).filter(v => v < 16)""")
    assert small == []


def test_the_page_takes_its_colours_from_the_palette():
    for name in ("day", "night"):
        theme.use(name)
        try:
            page = build_page("zh")
            assert theme.MAP_LAND in page and theme.ALARM in page and theme.BG in page
        finally:
            theme.use("day")
    assert theme.PALETTES["day"]["BG"] != theme.PALETTES["night"]["BG"]
    # No colour is spelt in the map's own files: they come from situation/palette.py.
    for path in ("widgets/city_map.py", "widgets/city_map.js"):
        text = (ROOT / path).read_text(encoding="utf-8")
        assert not COLOUR_LITERAL.findall(text), (path, COLOUR_LITERAL.findall(text))


def test_picking_a_case_frames_it_with_its_nearest_available_units(qtbot):
    from tests.test_city_map import check_frame
    sc = core_city()
    sc.unit("U-FAR", callsign="远", status="available", lat=39.99, lon=116.55)
    m = loaded_map(qtbot, sc.situation)
    m.zoom_to_case("C10")
    qtbot.waitUntil(lambda: run_js(qtbot, m, "cw.picked()") == "C10", timeout=5000)
    check_frame(qtbot, m, "C10")
    lat, lon, zoom = run_js(qtbot, m, "cw.centre()")
    c = sc.situation.cases["C10"]
    assert abs(lat - c.lat) < 1e-3 and abs(lon - c.lon) < 1e-3 and zoom <= 16
    assert run_js(qtbot, m, "cw.marker('cases', 'C10').ring") > 0           # ringed
    # A lone case, no unit free near it: still at least MIN_FRAME_M across, not a dot at 100 m.
    sc2 = Scenario()
    sc2.case("C-ALONE", 60, status="registered", lat=40.1, lon=116.3)
    m2 = loaded_map(qtbot, sc2.situation)
    m2.zoom_to_case("C-ALONE")
    qtbot.waitUntil(lambda: run_js(qtbot, m2, "cw.picked()") == "C-ALONE", timeout=5000)
    check_frame(qtbot, m2, "C-ALONE", units=False)
    assert run_js(qtbot, m2, "cw.centre()")[2] <= 16

"""Heatmaps: the grids (counts in a window of the situation's clock, sensor means, cell sizes),
the report log that outlives the 48 h of closed cases, district × hour today against the days
before, and both pyqtgraph panels in zh and en — all on a manual clock, nothing sleeps."""
from __future__ import annotations

import ast
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage

from feeds.districts import city_bbox, load_districts
from situation import heat
from situation.heat import (case_heat, district_bbox, district_hours, empty_grid, grid_for_view,
                            overlay_png, overlay_rgba, sensor_heat)
from situation.store import REPORT_LOG_MS
from tests.scenario import MIN, Scenario
from widgets.theme import apply_theme
from widgets.heat_panels import SpatialHeatPanel, TemporalHeatPanel

HOUR = 60 * MIN
DAY = 24 * HOUR
MIDNIGHT = 1_795_449_600_000          # 2026-11-24 00:00 Beijing time
T0 = MIDNIGHT + 9 * HOUR + 30 * MIN   # 09:30, the scenario's start
CODES = [d.adcode for d in load_districts()]


def window_cases(situation, window_ms):
    now = situation.now_ms()
    return [c for c in situation.cases.values() if now - window_ms < c.reported_at <= now]


@pytest.fixture
def windowed():
    """Cases around the 1 h and 6 h window edges, one far outside Beijing, one from the
    future."""
    sc = Scenario(T0)
    now = T0
    sc.case("IN-1", None, reported_at=now - 10 * MIN, lat=39.915, lon=116.404)
    sc.case("IN-CLOSED", None, reported_at=now - 59 * MIN, status="closed",
            lat=39.99, lon=116.48)
    sc.case("EDGE-IN", None, reported_at=now - HOUR + 1, lat=39.915, lon=116.404)
    sc.case("EDGE-OUT", None, reported_at=now - HOUR, lat=40.2, lon=116.2)    # just out of 1 h
    sc.case("NOW", None, reported_at=now, lat=39.85, lon=116.3)
    sc.case("OLD", None, reported_at=now - 2 * HOUR, lat=40.5, lon=116.9)
    sc.case("FAR", None, reported_at=now - 5 * MIN, lat=0.0, lon=0.0)         # off Beijing
    sc.case("LATER", None, reported_at=now + MIN, lat=39.9, lon=116.4)       # not yet
    sc.case("DAY-AGO", None, reported_at=now - 25 * HOUR, lat=39.9, lon=116.4)
    return sc


# ---- grids ----------------------------------------------------------------------------------

def test_heat_grid_totals_equal_the_cases_in_the_window(windowed):
    s = windowed.situation
    g1 = case_heat(s, HOUR)
    assert g1.total == 4 and g1.outside == 1                # IN-1, IN-CLOSED, EDGE-IN, NOW
    assert g1.values.sum() == g1.total == len(window_cases(s, HOUR)) - 1
    g6 = case_heat(s, 6 * HOUR)
    assert g6.total == 6 and g6.outside == 1                # + EDGE-OUT, OLD
    g24 = case_heat(s, 24 * HOUR)
    assert g24.total == 6                                   # DAY-AGO is 25 h old
    for g, w in ((g1, HOUR), (g6, 6 * HOUR), (g24, 24 * HOUR)):
        assert g.total + g.outside == len(window_cases(s, w))
        assert g.values.sum() == g.total and (g.values >= 0).all()
    # the window moves with the situation's clock, not with records
    windowed.clock.advance(30 * MIN)
    g = case_heat(s, HOUR)
    assert g.total == 3 and g.outside == 1                  # IN-CLOSED and EDGE-IN left
    assert g.total + g.outside == len(window_cases(s, HOUR))  # LATER has arrived in time


def test_a_case_far_outside_beijing_does_not_stretch_the_grid(windowed):
    g = case_heat(windowed.situation, HOUR)
    w, s, e, n = city_bbox()
    assert g.west <= w and g.south <= s and g.east >= e and g.north >= n
    assert g.east - g.west < (e - w) + 2 * g.dlon and g.north - g.south < (n - s) + 2 * g.dlat
    assert g.cell_of(0.0, 0.0) is None


def test_cell_sizes_100_and_500_metres():
    dlon, dlat = heat.cell_deg(500)
    assert dlat * 111_000 == pytest.approx(500)
    assert dlon * 111_000 * math.cos(math.radians(40)) == pytest.approx(500)
    city = empty_grid(500)
    w, s, e, n = city_bbox()
    assert city.cell_m == 500 and city.values.shape == (city.ny, city.nx)
    assert city.nx == math.ceil((e - city.west) / city.dlon - 1e-9)
    assert city.ny == math.ceil((n - city.south) / city.dlat - 1e-9)
    assert 340 < city.ny < 380 and 340 < city.nx < 380     # ~180 km × ~178 km
    box = district_bbox("110101")
    g5, g1 = empty_grid(500, box), empty_grid(100, box)
    assert g1.cell_m == 100 and g1.dlat * 111_000 == pytest.approx(100)
    for g in (g5, g1):                  # covers the box, with under a cell to spare each side
        assert g.west <= box[0] < g.west + g.dlon and g.east - g.dlon < box[2] <= g.east
        assert g.south <= box[1] < g.south + g.dlat and g.north - g.dlat < box[3] <= g.north
    assert g5.nx * 5 - 10 <= g1.nx <= g5.nx * 5 and g5.ny * 5 - 10 <= g1.ny <= g5.ny * 5
    assert 120 < g1.ny < 135 and 60 < g1.nx < 72            # 东城: ~12.8 km × ~6.4 km
    assert grid_for_view(box) == 100
    assert grid_for_view(district_bbox("110105")) == 100     # 朝阳
    assert grid_for_view(district_bbox("110108")) == 100     # 海淀
    assert grid_for_view(district_bbox("110116")) == 500     # 怀柔: more than a district view
    assert grid_for_view(city_bbox()) == 500
    # corners snap to whole cells: a cell is the same cell in any view
    assert (g1.west / g1.dlon) == pytest.approx(round(g1.west / g1.dlon))
    assert (g1.south / g1.dlat) == pytest.approx(round(g1.south / g1.dlat))


@pytest.mark.parametrize("cell_m, bbox", [(500, None), (100, district_bbox("110102"))])
def test_a_case_lands_in_the_cell_containing_its_point(cell_m, bbox):
    sc = Scenario(T0)
    rng = np.random.default_rng(5)
    w, s, e, n = bbox or city_bbox()
    pts = [(round(float(rng.uniform(w, e)), 6), round(float(rng.uniform(s, n)), 6))
           for _ in range(60)]
    pts += pts[:5]                                          # some cells hold two
    for i, (lon, lat) in enumerate(pts):
        sc.case(f"P{i}", None, reported_at=T0 - MIN, lon=lon, lat=lat, district="110101")
    g = case_heat(sc.situation, HOUR, cell_m=cell_m, bbox=bbox)
    assert g.cell_m == cell_m and g.total == len(pts) and g.outside == 0
    want = Counter(g.cell_of(lon, lat) for lon, lat in pts)
    got = {(int(y), int(x)): g.values[y, x] for y, x in zip(*np.nonzero(g.values))}
    assert got == dict(want)
    for lon, lat in pts:
        iy, ix = g.cell_of(lon, lat)
        assert g.west + ix * g.dlon <= lon < g.west + (ix + 1) * g.dlon
        assert g.south + iy * g.dlat <= lat < g.south + (iy + 1) * g.dlat
    (s0, w0), (n0, e0) = g.bounds()
    assert (s0, w0) == (g.south, g.west) and n0 == pytest.approx(g.south + g.ny * g.dlat)
    assert e0 == pytest.approx(g.west + g.nx * g.dlon)


def sensor_scenario() -> Scenario:
    sc = Scenario(T0)
    sc.add("sensor.air", id="A1", metrics={"pm25": 40.0}, lon=116.4001, lat=39.9001)
    sc.add("sensor.air", id="A2", metrics={"pm25": 80.0}, lon=116.4002, lat=39.9002)
    sc.add("sensor.air", id="A3", metrics={"pm25": 100.0}, lon=116.6, lat=40.1)
    sc.add("sensor.air", id="A4", metrics={"pm10": 300.0}, lon=116.5, lat=40.0)  # no pm25
    sc.add("sensor.noise", id="N1", metrics={"laeq": 66.0}, lon=116.4001, lat=39.9001)
    sc.add("sensor.air", id="FAR", metrics={"pm25": 500.0}, lon=10.0, lat=10.0)
    return sc


def test_sensor_grid_is_the_mean_of_the_latest_values_per_cell():
    sc = sensor_scenario()
    g = sensor_heat(sc.situation, "air", "pm25")
    assert not g.counts and g.total == 3 and g.outside == 1
    a, b = g.cell_of(116.4001, 39.9001), g.cell_of(116.6, 40.1)
    assert a == g.cell_of(116.4002, 39.9002)                # A1 and A2 share a cell
    assert g.values[a] == 60.0 and g.values[b] == 100.0
    assert np.isnan(g.values).sum() == g.values.size - 2    # no sensor: no data, not zero
    sc.clock.advance(MIN)
    sc.add("sensor.air", id="A1", metrics={"pm25": 50.0}, lon=116.4001, lat=39.9001)
    assert sensor_heat(sc.situation, "air", "pm25").values[a] == 65.0     # the latest counts
    noise = sensor_heat(sc.situation, "noise", "laeq", cell_m=100,
                        bbox=district_bbox("110101"))
    assert noise.total == 1 and np.nansum(noise.values) == 66.0


def test_map_overlay_png_is_the_grid_north_up_and_clear_where_nothing(windowed):
    g = case_heat(windowed.situation, HOUR, cell_m=100, bbox=district_bbox("110101"))
    rgba = overlay_rgba(g)
    assert rgba.shape == (g.ny, g.nx, 4)
    iy, ix = g.cell_of(116.404, 39.915)
    assert g.values[iy, ix] == 2                            # IN-1 and EDGE-IN
    assert rgba[g.ny - 1 - iy, ix, 3] > 0 and rgba[0, 0, 3] == 0
    img = QImage.fromData(overlay_png(g))
    assert (img.width(), img.height()) == (g.nx, g.ny)
    assert img.pixelColor(ix, g.ny - 1 - iy).alpha() == rgba[g.ny - 1 - iy, ix, 3]
    assert img.pixelColor(0, 0).alpha() == 0


def test_situation_heat_imports_no_qt_and_reads_no_wall_clock():
    src = Path(heat.__file__).read_text(encoding="utf-8")
    mods = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mods.add((node.module or "").split(".")[0])
    assert not mods & {"PySide6", "pyqtgraph", "time", "datetime", "ui", "widgets"}


# ---- the report log and district × hour -------------------------------------------------------

def test_report_log_outlives_closed_cases_and_is_bounded():
    sc = Scenario(T0)
    s = sc.situation
    sc.case("GONE", None, status="closed", reported_at=T0 - HOUR, district="110105")
    sc.case("GONE", None, status="closed", reported_at=T0 - HOUR, district="110105")  # again
    sc.case("STAYS", None, status="registered", reported_at=T0 - 10 * MIN, district="110101")
    assert len(s.reports) == 2 and "GONE" in s.reports
    sc.clock.advance(49 * HOUR)
    sc.case("NEXT", None, reported_at=sc.clock.now_ms(), district="110108")   # prunes
    assert "GONE" not in s.cases and "GONE" in s.reports
    assert [r.district for r in s.reports] == ["110105", "110101", "110108"]
    # the closed case sent again (a snapshot) is held again but not logged twice
    sc.case("GONE", None, status="closed", reported_at=T0 - HOUR, district="110105")
    assert "GONE" in s.cases and len(s.reports) == 3
    # a case reported longer ago than the log keeps is held but never logged
    sc.case("ANCIENT", None, reported_at=sc.clock.now_ms() - REPORT_LOG_MS - 1)
    assert "ANCIENT" in s.cases and "ANCIENT" not in s.reports
    # eight weeks after they were logged, entries and ids leave together
    sc.clock.advance(REPORT_LOG_MS - 49 * HOUR + MIN)
    sc.case("LAST", None, reported_at=sc.clock.now_ms(), district="110101")
    assert "GONE" not in s.reports and "STAYS" not in s.reports
    assert list(s.reports) == [(r.reported_at, r.district, r.category) for r in s.reports]
    assert len(s.reports) == 2 and "NEXT" in s.reports and "LAST" in s.reports
    assert len(s.reports._ids) == len(s.reports._entries)


def at(day: int, hh: int, mm: int = 0) -> int:
    """Beijing time ``hh:mm`` on the day ``day`` days from 2026-11-24."""
    return MIDNIGHT + day * DAY + hh * HOUR + mm * MIN


@pytest.fixture
def history():
    """Three days before today by hand, reported as the clock reaches them; the oldest closed
    cases leave the situation after 48 h but stay in the report log."""
    sc = Scenario(at(-3, 12))
    for i, (hh, mm, code, status) in enumerate([(8, 10, "110101", "closed"),
                                                (8, 40, "110101", "closed"),
                                                (9, 20, "110105", "closed")]):
        sc.case(f"D3-{i}", None, reported_at=at(-3, hh, mm), district=code, status=status)
    sc.clock.set(at(-2, 12))
    sc.case("D2-0", None, reported_at=at(-2, 8, 30), district="110101")
    sc.clock.set(at(-1, 0, 5))
    sc.case("D2-1", None, reported_at=at(-2, 23, 50), district="110108")    # 23:50 Beijing
    sc.clock.set(at(-1, 12))                                                # a quiet day
    sc.clock.set(T0)
    for i, mm in enumerate((5, 20, 40, 59)):
        sc.case(f"T-{i}", None, reported_at=at(0, 8, mm), district="110101")
    sc.case("T-night", None, reported_at=at(0, 0, 10), district="110105")
    sc.case("T-nowhere", None, reported_at=at(0, 7), lat=0.0, lon=0.0)     # no district
    sc.case("T-later", None, reported_at=T0 + 10 * MIN, district="110101")  # not yet
    return sc


def test_district_hours_today_and_average_are_exact(history):
    s = history.situation
    assert "D3-0" not in s.cases and "D3-0" in s.reports    # pruned, still counted
    h = district_hours(s)
    assert list(h.today.index) == CODES and list(h.today.columns) == list(range(24))
    assert h.today.shape == h.average.shape == (16, 24)
    assert h.days == 3 and h.weeks == pytest.approx(3 / 7) and h.unplaced == 1
    today = np.zeros((16, 24), int)
    today[CODES.index("110101"), 8] = 4
    today[CODES.index("110105"), 0] = 1
    assert (h.today.to_numpy() == today).all()
    avg = np.zeros((16, 24))
    avg[CODES.index("110101"), 8] = 3 / 3                  # 2 + 1 + 0 over three days
    avg[CODES.index("110105"), 9] = 1 / 3
    avg[CODES.index("110108"), 23] = 1 / 3                 # 15:50 UTC is 23:50 in Beijing
    assert np.allclose(h.average.to_numpy(), avg)
    # the next day, today's cases join the history and today starts from nothing
    history.clock.set(at(1, 0, 30))
    h2 = district_hours(s)
    assert h2.days == 4 and h2.today.to_numpy().sum() == 0
    assert h2.average.loc["110101", 8] == pytest.approx((3 + 4) / 4)


def test_district_hours_with_no_history():
    sc = Scenario(T0)
    sc.case("A", None, reported_at=at(0, 9, 1), district="110102")
    h = district_hours(sc.situation)
    assert h.days == 0 and h.average.to_numpy().sum() == 0
    assert h.today.loc["110102", 9] == 1 and h.today.to_numpy().sum() == 1


# ---- panels ---------------------------------------------------------------------------------

@pytest.fixture
def themed(qapp):
    apply_theme(qapp)
    return qapp


def shown(qtbot, qapp, panel, size=(1200, 860)):
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    qapp.processEvents()
    panel.refresh()
    return panel


def add_sensors(sc):
    sc.add("sensor.air", id="A1", metrics={"pm25": 40.0}, lon=116.4001, lat=39.9001)
    sc.add("sensor.air", id="A2", metrics={"pm25": 80.0}, lon=116.4002, lat=39.9002)


@pytest.mark.parametrize("lang, six_h, one_h, far", [
    ("zh", "近6小时 6 起 · 500 m 网格", "近1小时 4 起", "图外 1 起"),
    ("en", "Last 6 h: 6 cases · 500 m grid", "Last 1 h: 4 cases", "1 off the map")])
def test_spatial_panel_draws_the_grid(qtbot, themed, windowed, lang, six_h, one_h, far):
    s = windowed.situation
    add_sensors(windowed)
    p = shown(qtbot, themed, SpatialHeatPanel(s, lang))
    assert p.name == "spatial_heat" and p.grid.cell_m == 500
    want = case_heat(s, 6 * HOUR).values
    img = p.image.image
    assert img.shape == want.shape
    assert np.array_equal(np.nan_to_num(img), want)          # zero cells drawn clear (NaN)
    assert np.isnan(img[want == 0]).all()
    assert p.summary.text().startswith(six_h) and far in p.summary.text()
    assert p.cells.data.size == np.count_nonzero(want)       # visible squares at city scale
    p.set_window(HOUR)
    assert np.array_equal(np.nan_to_num(p.image.image), case_heat(s, HOUR).values)
    assert p.summary.text().startswith(one_h)
    windowed.clock.advance(30 * MIN)                          # the clock alone moves it
    p.refresh()
    assert np.nan_to_num(p.image.image).sum() == 3
    p.set_layer(("air", "pm25"))
    assert not p.window_box.isEnabled()
    assert np.array_equal(p.image.image, sensor_heat(s, "air", "pm25").values, equal_nan=True)
    assert ("2 台" if lang == "zh" else "2 sensors") in p.summary.text()
    assert p.bar.levels() == (0.0, 150.0)                     # the alarm level tops the scale
    assert not p.grab().isNull()


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_spatial_panel_uses_the_100_m_unit_grid_for_a_district(qtbot, themed, windowed, lang):
    s = windowed.situation
    p = shown(qtbot, themed, SpatialHeatPanel(s, lang))
    p.area_box.setCurrentIndex(p.area_box.findData("110101"))
    themed.processEvents()
    p.refresh()
    assert p.grid.cell_m == 100 and grid_for_view(p.view_bbox()) == 100
    assert ("100 m 单元网格" if lang == "zh" else "100 m unit grid") in p.summary.text()
    view = p.view_bbox()
    assert p.grid.west <= max(view[0], city_bbox()[0]) and p.grid.east >= view[2] - p.grid.dlon
    want = case_heat(s, 6 * HOUR, cell_m=100,
                     bbox=(p.grid.west + 1e-9, p.grid.south + 1e-9,
                           p.grid.east - 1e-9, p.grid.north - 1e-9))
    assert np.array_equal(np.nan_to_num(p.image.image), want.values)
    iy, ix = p.grid.cell_of(116.404, 39.915)
    assert p.image.image[iy, ix] == 2
    label = {"zh": "东城", "en": "Dongcheng"}[lang]
    assert [i.textItem.toPlainText() for i in p.labels if i.isVisible()].count(label) == 1
    p.area_box.setCurrentIndex(0)                              # back to the whole city
    themed.processEvents()
    p.refresh()
    assert p.grid.cell_m == 500
    assert not p.grab().isNull()


@pytest.mark.parametrize("lang, summary", [
    ("zh", "今日 5 起 · 同期日均 1 · +329% · 3 天均值"),
    ("en", "Today 5 · typical by now 1 · +329% · 3-day average")])
def test_temporal_panel_today_against_the_average(qtbot, themed, history, lang, summary):
    p = shown(qtbot, themed, TemporalHeatPanel(history.situation, lang), size=(1400, 860))
    assert p.name == "temporal_heat"
    img = p.image.image
    assert img.shape == (16, 24)
    dc, cy, hd = CODES.index("110101"), CODES.index("110105"), CODES.index("110108")
    assert np.isnan(img[:, 10:]).all() and np.isfinite(img[:, :10]).all()   # 09:30 now
    want = np.zeros((16, 10))
    want[dc, 8] = 4 - 1
    want[cy, 0] = 1
    want[cy, 9] = 0 - (1 / 3) * 0.5                        # half of 09:00–10:00 has gone
    assert np.allclose(img[:, :10], want)
    assert p.peaks == [("110101", 8)]                       # 4 ≥ 2 × 1 and ≥ 3
    assert p.peak_labels[0].textItem.toPlainText() == "4" and p.peak_labels[0].isVisible()
    assert p.now_line.value() == pytest.approx(9.5)
    assert p.summary.text() == summary
    ticks = p.plot.getPlotItem().getAxis("left")._tickLevels[0]
    assert ticks[0] == (0.5, "东城" if lang == "zh" else "Dongcheng")
    assert p.bar.levels() == (-3.0, 3.0)
    history.clock.set(at(0, 22, 15))                       # later the same day, no new case
    p.refresh()
    assert np.isfinite(p.image.image[:, :23]).all() and np.isnan(p.image.image[:, 23]).all()
    assert p.now_line.value() == pytest.approx(22.25)
    history.clock.set(at(0, 23, 15))
    p.refresh()
    assert np.isfinite(p.image.image).all()
    assert p.image.image[hd, 23] == pytest.approx(-(1 / 3) * 0.25)
    assert not p.grab().isNull()

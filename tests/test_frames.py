"""Coordinate frames (issue #16): ``feeds.crs`` against published GCJ-02 pairs, the vectorised
``feeds.crs_arrays`` against PRCoords, the districts, their grid and lookup in a WGS-84
display frame, and the exports (Open311, the public map) in WGS-84 whatever the wall holds.
The default frame (GCJ-02) stays as it was."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import prcoords
import pytest

from feeds.crs import GCJ02, OUTSIDE, WGS84, check_frame, convert, reframe
from feeds.crs_arrays import EXPORT_CRS, convert_arrays, convert_lonlat, export_point
from feeds.districts import (DATA_FILE, DistrictLocator, by_adcode, city_bbox, district_grid,
                             districts_geojson, frame_of, load_districts, random_points_in)
from situation.clock import ManualClock
from situation.open311 import open311_document, open311_requests, validate_open311
from situation.store import Situation
from tests.pubhelp import batch_of, rec

T0 = 1_795_483_800_000          # 2026-11-24 09:30 Beijing time
EARTH_R = 6_371_000.0


def metres(lat1, lon1, lat2, lon2) -> float:
    """Haversine distance (m)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_R * math.asin(math.sqrt(h))


# ---- feeds.crs against published pairs --------------------------------------------------------
# (wgs_lat, wgs_lon, gcj_lat, gcj_lon), each from a public test suite:
PUBLISHED = [
    # googollee/eviltransform, python/test.py (TESTS; its gcj2wgs_exact is held to 0.5 m)
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),      # Shanghai
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),      # Shenzhen
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),      # Beijing
    # wandergis/coordtransform, test/app.js: wgs84togcj02(116.404, 39.915)
    (39.915, 116.404, 39.91640428150164, 116.41024449916938),            # Beijing
]
# hujiulong/gcoord, test/unit/crs/GCJ02.spec.js: GCJ02.to.WGS84([123, 45]) ≈ [122.99395597,
# 44.99804071] (toBeCloseTo 5 digits) — an inverse pair, (gcj_lat, gcj_lon, wgs_lat, wgs_lon).
PUBLISHED_INVERSE = [(45.0, 123.0, 44.99804071, 122.99395597)]


@pytest.mark.parametrize("wlat, wlon, glat, glon", PUBLISHED)
def test_forward_agrees_with_published_pairs(wlat, wlon, glat, glon):
    lat, lon = convert(wlat, wlon, WGS84, GCJ02)
    assert metres(lat, lon, glat, glon) < 0.5
    assert 300 < metres(wlat, wlon, lat, lon) < 700          # the few hundred metres


@pytest.mark.parametrize("wlat, wlon, glat, glon", PUBLISHED)
def test_inverse_lands_on_the_published_wgs84_point(wlat, wlon, glat, glon):
    lat, lon = convert(glat, glon, GCJ02, WGS84)
    assert metres(lat, lon, wlat, wlon) < 0.5


@pytest.mark.parametrize("glat, glon, wlat, wlon", PUBLISHED_INVERSE)
def test_inverse_agrees_with_gcoord(glat, glon, wlat, wlon):
    lat, lon = convert(glat, glon, GCJ02, WGS84)
    assert metres(lat, lon, wlat, wlon) < 1.0


def test_round_trip_within_a_centimetre():
    rng = np.random.default_rng(16)
    worst = 0.0
    for lat, lon in zip(rng.uniform(18, 53, 400), rng.uniform(74, 135, 400)):
        g = convert(lat, lon, WGS84, GCJ02)
        back = convert(*g, GCJ02, WGS84)
        worst = max(worst, metres(lat, lon, *back))
        # and the other way round
        w = convert(lat, lon, GCJ02, WGS84)
        again = convert(*w, WGS84, GCJ02)
        worst = max(worst, metres(lat, lon, *again))
    assert worst < 0.01


def test_outside_china():
    # A GCJ-02 point outside China cannot be converted; a WGS-84 one stays as it is.
    assert convert(0.0, 0.0, GCJ02, WGS84) is None
    assert convert(51.5, -0.12, GCJ02, WGS84) is None
    assert convert(0.0, 0.0, WGS84, GCJ02) == (0.0, 0.0)
    assert convert(51.5, -0.12, WGS84, GCJ02) == (51.5, -0.12)
    assert convert(0.0, 0.0, GCJ02, GCJ02) == (0.0, 0.0)         # nothing asked, kept
    inside = rec("case", case_id="IN", lat=39.91, lon=116.40)
    island = rec("case", case_id="NULL", lat=0.0, lon=0.0)
    hb = rec("hb")
    kept, refused = reframe([inside, island, hb], GCJ02, WGS84)
    assert [r.case_id for r in refused] == ["NULL"] and OUTSIDE == "gcj02_outside_china"
    assert kept[1] is hb and kept[0].case_id == "IN"
    assert (kept[0].lat, kept[0].lon) == convert(39.91, 116.40, GCJ02, WGS84)
    kept, refused = reframe([inside, island], WGS84, GCJ02)
    assert not refused and kept[1] is island                     # as it is
    kept, refused = reframe([inside], GCJ02, GCJ02)
    assert kept == [inside] and not refused


def test_frame_names():
    assert check_frame("WGS-84") == WGS84 and check_frame(" gcj-02 ") == GCJ02
    with pytest.raises(ValueError, match="wgs84 or gcj02"):
        check_frame("bd09")
    with pytest.raises(ValueError):
        DistrictLocator(crs="epsg:3857")


# ---- feeds.crs_arrays: PRCoords' arithmetic, vectorised ------------------------------------------
def test_arrays_equal_prcoords_point_by_point():
    pts = np.concatenate([r for d in load_districts() for r in d.rings])
    rng = np.random.default_rng(3)
    lat = np.r_[pts[:, 1], rng.uniform(1, 55.8, 3000), [0.0, 60.0, np.nan]]
    lon = np.r_[pts[:, 0], rng.uniform(72.1, 137.8, 3000), [0.0, 116.4, 116.4]]
    for src, dst, fn in ((GCJ02, WGS84, prcoords.gcj_wgs_bored),
                         (WGS84, GCJ02, prcoords.wgs_gcj)):
        out_lat, out_lon, ok = convert_arrays(lat, lon, src, dst)
        for i in range(len(lat)):
            one = convert(lat[i], lon[i], src, dst) if math.isfinite(lat[i]) else None
            if one is None and src == GCJ02:
                assert not ok[i] and math.isnan(out_lat[i])
                continue
            if not math.isfinite(lat[i]):
                continue
            assert ok[i]
            assert abs(out_lat[i] - one[0]) <= 1e-12 and abs(out_lon[i] - one[1]) <= 1e-12
        china = prcoords.sanity_in_china_p
        ref = np.array([fn((a, b), False) for a, b in zip(lat[:len(pts)], lon[:len(pts)])])
        assert china(prcoords.Coords(lat[0], lon[0]))
        assert np.array_equal(out_lat[:len(pts)], ref[:, 0])     # bit for bit on the vertices
        assert np.array_equal(out_lon[:len(pts)], ref[:, 1])


def test_arrays_outside_china_and_same_frame():
    lat, lon, ok = convert_arrays([0.0, 39.9], [0.0, 116.4], GCJ02, WGS84)
    assert list(ok) == [False, True] and math.isnan(lat[0]) and math.isnan(lon[0])
    lat, lon, ok = convert_arrays([0.0, 39.9], [0.0, 116.4], WGS84, GCJ02)
    assert ok.all() and (lat[0], lon[0]) == (0.0, 0.0) and lon[1] > 116.4
    lat, lon, ok = convert_arrays([0.0], [0.0], GCJ02, GCJ02)
    assert ok.all() and (lat[0], lon[0]) == (0.0, 0.0)
    xy = convert_lonlat(np.array([[116.4, 39.9]]), WGS84, GCJ02)
    assert tuple(xy[0]) == tuple(reversed(convert(39.9, 116.4, WGS84, GCJ02)))


# ---- districts in the display frame ---------------------------------------------------------
def test_default_frame_is_the_data_file_unchanged():
    ds = load_districts()
    assert ds is load_districts(crs="gcj02") is load_districts(None, "GCJ-02")
    raw = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    first = raw["features"][0]["geometry"]["coordinates"]
    ring = first[0][0] if raw["features"][0]["geometry"]["type"] == "MultiPolygon" else first[0]
    assert np.array_equal(ds[0].rings[0], np.asarray(ring, dtype=float))
    assert city_bbox() == (115.42347, 39.44276, 117.51459, 41.0608)
    assert DistrictLocator().crs == GCJ02
    assert DistrictLocator()._grid is district_grid() is district_grid("gcj02")
    assert districts_geojson() == raw
    assert frame_of(Situation(ManualClock(T0))) == GCJ02
    assert frame_of(object()) == GCJ02


def test_wgs84_districts_are_shifted_a_few_hundred_metres():
    gcj, wgs = load_districts(), load_districts(crs="wgs84")
    assert wgs is load_districts(crs=WGS84)                      # cached per frame
    assert [d.adcode for d in gcj] == [d.adcode for d in wgs]
    for a, b in zip(gcj, wgs):
        assert [len(r) for r in a.rings] == [len(r) for r in b.rings]
        for ra, rb in zip(a.rings, b.rings):
            for (glon, glat), (wlon, wlat) in zip(ra[::25], rb[::25]):
                assert 300 < metres(glat, glon, wlat, wlon) < 700
                back = convert(wlat, wlon, WGS84, GCJ02)
                assert metres(glat, glon, *back) < 0.01
        # WGS-84 sits south-west of GCJ-02 in Beijing
        assert b.bbox[0] < a.bbox[0] and b.bbox[1] < a.bbox[1]
    assert by_adcode("wgs84")["110101"] is wgs[0]
    w, s, e, n = city_bbox("wgs84")
    assert (w, s, e, n) != city_bbox() and w < 115.42347 and s < 39.44276
    geo = districts_geojson("wgs84")
    coords = geo["features"][0]["geometry"]["coordinates"]
    first = coords[0][0][0] if geo["features"][0]["geometry"]["type"] == "MultiPolygon" \
        else coords[0][0]
    assert first == pytest.approx(list(wgs[0].rings[0][0]), abs=1e-7)


def _away_from_borders(loc: DistrictLocator, lon: float, lat: float, code: str,
                       step: float = 0.0003) -> bool:
    """No other answer within ~30 m around the point."""
    return all(loc.locate(lon + dx, lat + dy) == code
               for dx in (-step, 0, step) for dy in (-step, 0, step))


def test_wgs84_locator_finds_the_district_of_the_gcj02_twin():
    gcj_loc, wgs_loc = DistrictLocator(), DistrictLocator(crs="wgs84")
    assert wgs_loc.crs == WGS84 and wgs_loc._grid is district_grid("wgs84")
    assert wgs_loc._grid is not gcj_loc._grid
    rng = np.random.default_rng(20261130)
    checked, shifted_differs = 0, 0
    lons, lats, want = [], [], []
    for d in load_districts():
        for lon, lat in random_points_in(d, 40, rng):
            code = gcj_loc.locate(lon, lat)
            if code is None or not _away_from_borders(gcj_loc, lon, lat, code):
                continue
            wlat, wlon = convert(lat, lon, GCJ02, WGS84)
            assert wgs_loc.locate(wlon, wlat) == code
            shifted_differs += gcj_loc.locate(wlon, wlat) != code   # the wrong frame's answer
            lons.append(wlon), lats.append(wlat), want.append(code)
            checked += 1
    assert checked > 400
    assert wgs_loc.locate_many(np.array(lons), np.array(lats)) == want
    assert shifted_differs > 0             # the frame matters: the other frame errs near borders


def test_wgs84_locator_agrees_with_its_polygons():
    """The WGS-84 grid is the same exact machinery over the converted polygons."""
    wgs = load_districts(crs="wgs84")
    loc = DistrictLocator(crs="wgs84")
    rng = np.random.default_rng(7)
    w, s, e, n = city_bbox("wgs84")
    lon, lat = rng.uniform(w, e, 3000), rng.uniform(s, n, 3000)
    got = loc.locate_many(lon, lat)
    for x, y, code in zip(lon[:600], lat[:600], got[:600]):
        expect = next((d.adcode for d in wgs if d.contains(x, y)), None)
        assert code == expect


# ---- the situation's frame in the analytics ---------------------------------------------------
def _situation(crs: str) -> Situation:
    return Situation(ManualClock(T0), locator=DistrictLocator(crs=crs))


def _held(crs: str, lat: float, lon: float) -> tuple[float, float]:
    """A GCJ-02 point as a wall of frame ``crs`` holds it (the receivers convert on the way
    in)."""
    return convert(lat, lon, GCJ02, crs)


TWINS = [(39.915, 116.41), (39.98, 116.30), (39.95, 116.50), (40.46, 115.97), (39.80, 116.50)]


def _cases_in(crs: str) -> Situation:
    s = _situation(crs)
    records = []
    for i, (lat, lon) in enumerate(TWINS):
        hlat, hlon = _held(crs, lat, lon)
        records.append(rec("case", seq=i, ts=T0 - 60_000, case_id=f"C{i}", lat=hlat, lon=hlon,
                           reported_at=T0 - 600_000, due_at=T0 + 3_600_000, district=None))
    s.apply(batch_of(*records))
    return s


def test_district_of_a_case_is_the_same_in_either_frame():
    gcj, wgs = _cases_in("gcj02"), _cases_in("wgs84")
    assert frame_of(wgs) == WGS84 and frame_of(gcj) == GCJ02
    for cid in gcj.cases:
        assert gcj.cases[cid].district == wgs.cases[cid].district is not None


def test_heat_and_coverage_grids_follow_the_frame():
    from situation import heat
    from situation.supervision import district_cells
    gcj, wgs = _cases_in("gcj02"), _cases_in("wgs84")
    hg, hw = heat.case_heat(gcj, heat.HOUR_MS), heat.case_heat(wgs, heat.HOUR_MS)
    assert hg.total == hw.total == len(TWINS) and hg.outside == hw.outside == 0
    assert hw.west <= city_bbox("wgs84")[0] < hw.west + hw.dlon
    assert hg.west <= city_bbox()[0] < hg.west + hg.dlon
    assert heat.district_bbox("110101", "wgs84") == by_adcode("wgs84")["110101"].bbox
    assert heat.district_bbox("110101") == by_adcode()["110101"].bbox
    cg, cw = district_cells(), district_cells(crs="wgs84")
    assert cg is district_cells(crs="gcj02") and cw is district_cells(crs=WGS84)
    assert cw.frame.west == hw.west or cw.frame.cell_m != hw.cell_m
    # the same districts, a few hundred metres away: about the same number of cells each
    assert np.all(np.abs(cw.cells.astype(int) - cg.cells.astype(int)) <= 0.03 * cg.cells + 30)


def test_suggestions_measure_the_same_in_either_frame():
    from situation.suggest import distance_m
    a, b = TWINS[0], TWINS[1]
    dg = distance_m(a[1], a[0], b[1], b[0])
    (wa, wb) = (_held("wgs84", *a), _held("wgs84", *b))
    dw = distance_m(wa[1], wa[0], wb[1], wb[0])
    assert abs(dg - dw) < 2.0                  # metres over ~14 km


def test_scope_and_whole_view_in_the_frame():
    from situation.scope import Scope, whole_bbox
    assert whole_bbox(_situation("wgs84")) == city_bbox("wgs84")
    assert whole_bbox(_situation("gcj02")) == city_bbox()
    scope = Scope(("110101",))
    assert scope.bbox() == by_adcode()["110101"].bbox
    assert scope.bbox("wgs84") == by_adcode("wgs84")["110101"].bbox


# ---- exports: WGS-84 whatever the display frame --------------------------------------------------
def test_open311_is_wgs84_from_a_gcj02_wall():
    gcj = _cases_in("gcj02")
    doc = {r["service_request_id"]: r for r in open311_requests(gcj)}
    assert validate_open311(list(doc.values())) == []
    for i, (lat, lon) in enumerate(TWINS):
        wlat, wlon = convert(lat, lon, GCJ02, WGS84)
        assert (doc[f"C{i}"]["lat"], doc[f"C{i}"]["long"]) == (wlat, wlon)
        assert gcj.cases[f"C{i}"].lat == lat                       # held as it was


def test_open311_is_the_same_from_either_wall():
    a = {r["service_request_id"]: r for r in open311_requests(_cases_in("gcj02"))}
    b = {r["service_request_id"]: r for r in open311_requests(_cases_in("wgs84"))}
    assert a.keys() == b.keys()
    for cid in a:
        assert metres(a[cid]["lat"], a[cid]["long"], b[cid]["lat"], b[cid]["long"]) < 0.01


def test_open311_keeps_a_point_it_cannot_convert_and_names_it():
    for crs in ("gcj02", "wgs84"):
        s = _situation(crs)
        s.apply(batch_of(rec("case", case_id="NULL", lat=0.0, lon=0.0, ts=T0,
                             reported_at=T0, due_at=T0 + 60_000)))
        requests, as_held = open311_document(s)
        assert (requests[0]["lat"], requests[0]["long"]) == (0.0, 0.0)
        assert as_held == (["NULL"] if crs == "gcj02" else [])
    assert EXPORT_CRS == WGS84
    assert export_point(0.0, 0.0, GCJ02) == (0.0, 0.0, False)
    assert export_point(39.9, 116.4, WGS84) == (39.9, 116.4, True)


def _page_cases(page: str) -> dict:
    found = re.search(r"var cases = (\[.*?\]);\n", page)
    return {c["id"]: c for c in json.loads(found.group(1))}


def test_public_map_is_wgs84_from_either_wall():
    from situation.public_map import build_public_map
    pages = {crs: build_public_map(_cases_in(crs), "en") for crs in ("gcj02", "wgs84")}
    for crs, page in pages.items():
        assert '<meta name="citywall-crs" content="wgs84">' in page
        assert "Coordinates: WGS-84" in page
        cases = _page_cases(page)
        assert len(cases) == len(TWINS)
        for i, (lat, lon) in enumerate(TWINS):
            wlat, wlon = convert(lat, lon, GCJ02, WGS84)
            assert metres(cases[f"C{i}"]["lat"], cases[f"C{i}"]["lon"], wlat, wlon) < 0.01
    # the districts drawn are the converted ones: a vertex of the WGS-84 GeoJSON is in the page
    lon, lat = load_districts(crs="wgs84")[0].rings[0][3]
    assert f"{round(lon, 7)}" in pages["gcj02"] and f"{round(lat, 7)}" in pages["gcj02"]
    raw_lon, _raw_lat = load_districts()[0].rings[0][3]
    assert f"[{raw_lon}," not in pages["gcj02"]


def test_public_map_lists_an_unconvertible_case_unplaced():
    from situation.public_map import build_public_map
    s = _situation("gcj02")
    s.apply(batch_of(rec("case", case_id="NULL", lat=0.0, lon=0.0, ts=T0, reported_at=T0,
                         due_at=T0 + 60_000)))
    page = build_public_map(s, "en")
    assert _page_cases(page) == {}
    assert "Location out of area (1)" in page and "0.00000, 0.00000" in page


# ---- widgets take the situation's frame ----------------------------------------------------------
def test_map_page_draws_the_display_frame(qapp):
    from widgets.city_map_page import build_page
    gcj_page, wgs_page = build_page("en"), build_page("en", crs="wgs84")
    w, s, e, n = city_bbox("wgs84")
    assert json.dumps([[s, w], [n, e]]) in wgs_page
    x0, y0, x1, y1 = city_bbox()
    assert json.dumps([[y0, x0], [y1, x1]]) in gcj_page
    raw_lon, raw_lat = load_districts()[0].rings[0][3]
    pair = json.dumps([float(raw_lon), float(raw_lat)])
    assert pair in gcj_page and pair not in wgs_page
    wlon, wlat = load_districts(crs="wgs84")[0].rings[0][3]
    assert json.dumps([round(float(wlon), 7), round(float(wlat), 7)]) in wgs_page
    assert len(wgs_page) < 2_000_000            # setHtml's limit


def test_panels_draw_in_the_situations_frame(qtbot):
    from widgets.heat_panels import SpatialHeatPanel
    from widgets.supervision_coverage import PatrolCoverage
    s = _cases_in("wgs84")
    heat_panel = SpatialHeatPanel(s, "en")
    qtbot.addWidget(heat_panel)
    assert heat_panel.crs == WGS84
    wgs0 = load_districts(crs="wgs84")[0]
    assert (heat_panel.labels[0].pos().x(), heat_panel.labels[0].pos().y()) == pytest.approx(wgs0.centroid)
    (x0, x1), (y0, y1) = heat_panel.plot.getPlotItem().getViewBox().viewRange()
    w, s_, e, n = city_bbox("wgs84")
    assert x0 <= w and e <= x1 and y0 <= s_ and n <= y1
    assert heat_panel.derive().west <= w
    cov = PatrolCoverage(s, "en")
    qtbot.addWidget(cov)
    assert cov.crs == WGS84
    assert (cov.labels[0].pos().x(), cov.labels[0].pos().y()) == pytest.approx(wgs0.centroid)
    cov.refresh()
    assert cov.coverage.grid.west <= w


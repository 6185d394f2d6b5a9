"""District lookup: the precomputed grid and its exact border path against the polygons.

The reference answer of a point is the old ``DistrictLocator.locate``: the first district in
load order whose bbox holds the point and for which ``points_in_rings`` says inside.

``points_in_rings`` loops in Python over every edge of a district, each step vectorised over
the points: over all 3.4 M cell centres that is ~2.6 G point-edge pairs, far too slow for a
test. ``reference`` therefore calls ``points_in_rings`` itself, but per band of a few rows of
points and only with the edges whose latitudes meet the band — every other edge has
``(ya > lat) != (yb > lat)`` false for every point of the band, so it adds no crossing. Each
kept edge (a, b) is passed as the ring ``[b, a, (W, ya), (W, yb)]`` with ``W = -1000``:
``points_in_rings`` pairs each vertex with the one before it, so it sees (a, b) — the very
floats of the real ring, in the same order — two horizontal edges (skipped) and a vertical
edge at longitude -1000 (no point lies west of it: no crossing).
``test_reference_is_points_in_rings`` checks the banding against plain ``points_in_rings``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from feeds.district_grid import BORDER, NONE, DistrictGrid, ring_pairs
from feeds.districts import (District, DistrictLocator, by_adcode, city_bbox, district_grid,
                             load_districts, points_in_rings, random_points_in)

DISTRICTS = load_districts()
CODES = [d.adcode for d in DISTRICTS]
W = -1000.0
BAND = 0.008              # degrees of latitude per band of the reference


def _band_rings(rings, lat_lo: float, lat_hi: float) -> list[np.ndarray]:
    xa, ya, xb, yb = ring_pairs(rings)
    keep = (np.minimum(ya, yb) <= lat_hi) & (np.maximum(ya, yb) >= lat_lo)
    return [np.array([[bx, by], [ax, ay], [W, ay], [W, by]])
            for ax, ay, bx, by in zip(xa[keep], ya[keep], xb[keep], yb[keep])]


def reference(lon: np.ndarray, lat: np.ndarray, districts=DISTRICTS) -> np.ndarray:
    """District index (load order, first wins) of each point by ``points_in_rings``, -1 for
    none; banded as the module's docstring explains."""
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    out = np.full(lon.shape, -1, dtype=np.int64)
    for k, d in enumerate(districts):
        x0, y0, x1, y1 = d.bbox
        todo = np.flatnonzero((out == -1) & (x0 <= lon) & (lon <= x1) & (y0 <= lat) & (lat <= y1))
        if not len(todo):
            continue
        band = np.floor(lat[todo] / BAND).astype(np.int64)
        order = np.argsort(band, kind="stable")
        todo, band = todo[order], band[order]
        starts = np.flatnonzero(np.r_[True, band[1:] != band[:-1]])
        for s, t in zip(starts, np.r_[starts[1:], len(todo)]):
            pts = todo[s:t]
            rings = _band_rings(d.rings, lat[pts].min(), lat[pts].max())
            if rings:
                out[pts[points_in_rings(lon[pts], lat[pts], rings)]] = k
    return out


def codes_of(idx) -> list[str | None]:
    return [CODES[k] if k >= 0 else None for k in idx]


def plain_reference(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """The old ``DistrictLocator.locate`` answer, whole rings (slow: few points only)."""
    out = np.full(lon.shape, -1, dtype=np.int64)
    for k, d in enumerate(DISTRICTS):
        x0, y0, x1, y1 = d.bbox
        todo = np.flatnonzero((out == -1) & (x0 <= lon) & (lon <= x1) & (y0 <= lat) & (lat <= y1))
        out[todo[points_in_rings(lon[todo], lat[todo], d.rings)]] = k
    return out


@pytest.fixture(scope="module")
def grid() -> DistrictGrid:
    return district_grid()


@pytest.fixture(scope="module")
def locator() -> DistrictLocator:
    return DistrictLocator()


def test_reference_is_points_in_rings():
    rng = np.random.default_rng(11)
    x0, y0, x1, y1 = city_bbox()
    lon = rng.uniform(x0, x1, 1500)
    lat = rng.uniform(y0, y1, 1500)
    # and points on vertices and on centre latitudes, where ties decide
    verts = np.concatenate([r for d in DISTRICTS[:3] for r in d.rings])[::7]
    lon = np.r_[lon, verts[:, 0], verts[:, 0] + 1e-7, np.round(verts[:, 0], 3) + 0.0005]
    lat = np.r_[lat, verts[:, 1], verts[:, 1], np.round(verts[:, 1], 3) + 0.0005]
    plain = plain_reference(lon, lat)
    assert (plain >= 0).sum() > 500
    np.testing.assert_array_equal(reference(lon, lat), plain)


def test_every_cell_centre_matches_the_polygons(grid, locator):
    lon, lat = np.meshgrid(grid.lon_centres, grid.lat_centres)
    lon, lat = lon.ravel(), lat.ravel()
    # a centre falls in its own cell
    ix = np.floor(lon * 1000).astype(np.int64) - grid.ix0
    iy = np.floor(lat * 1000).astype(np.int64) - grid.iy0
    np.testing.assert_array_equal(ix, np.tile(np.arange(grid.nx), grid.ny))
    np.testing.assert_array_equal(iy, np.repeat(np.arange(grid.ny), grid.nx))
    ref = reference(lon, lat)
    labels = grid.labels.ravel()
    known = labels != BORDER
    expected = np.where(ref >= 0, ref, NONE)
    assert np.array_equal(labels[known], expected[known]), \
        f"{np.count_nonzero(labels[known] != expected[known])} cells differ"
    got = grid.index_many(lon, lat)
    assert np.array_equal(got, ref), f"{np.count_nonzero(got != ref)} centres differ"
    # the scalar path on every border cell's centre
    border = np.flatnonzero(~known)
    assert 5_000 < len(border) < 0.05 * labels.size
    assert [locator.locate(lon[i], lat[i]) for i in border] == codes_of(ref[border])
    assert set(np.unique(labels)) == set(range(len(DISTRICTS))) | {NONE, BORDER}


def _along_edges():
    """Points on every edge of every ring (vertices included) and 1e-7° to either side."""
    lon, lat = [], []
    for d in DISTRICTS:
        xa, ya, xb, yb = ring_pairs(d.rings)
        dx, dy = xb - xa, yb - ya
        length = np.hypot(dx, dy)
        ok = length > 0
        nx_ = np.where(ok, -dy / np.where(ok, length, 1), 0.0)
        ny_ = np.where(ok, dx / np.where(ok, length, 1), 0.0)
        for t in (0.0, 0.25, 0.5, 0.8):
            px, py = xa + t * dx, ya + t * dy
            for off in (0.0, 1e-7, -1e-7, 1e-9, -1e-9):
                lon.append(px + off * nx_)
                lat.append(py + off * ny_)
    return np.concatenate(lon), np.concatenate(lat)


def test_points_along_every_border_match_the_polygons(grid, locator):
    lon, lat = _along_edges()
    ref = reference(lon, lat)
    assert len(set(ref.tolist())) == len(DISTRICTS) + 1
    got = grid.index_many(lon, lat)
    assert np.array_equal(got, ref), f"{np.count_nonzero(got != ref)} points differ"
    rng = np.random.default_rng(5)
    some = rng.choice(len(lon), 20_000, replace=False)
    assert [locator.locate(lon[i], lat[i]) for i in some] == codes_of(ref[some])


def test_random_points_in_and_around_the_city(locator):
    rng = np.random.default_rng(2024)
    x0, y0, x1, y1 = city_bbox()
    mx, my = 0.1 * (x1 - x0), 0.1 * (y1 - y0)
    lon = rng.uniform(x0 - mx, x1 + mx, 300_000)
    lat = rng.uniform(y0 - my, y1 + my, 300_000)
    ref = reference(lon, lat)
    assert (ref == -1).sum() > 50_000 and (ref >= 0).sum() > 100_000
    assert locator.locate_many(lon, lat) == codes_of(ref)
    assert [locator.locate(a, b) for a, b in zip(lon[:30_000], lat[:30_000])] \
        == codes_of(ref[:30_000])
    # just outside: the city's bbox edges and a hair beyond
    edge_lon = np.r_[np.full(500, x0), np.full(500, x1), rng.uniform(x0, x1, 1000),
                     np.full(500, x0 - 1e-9), np.full(500, x1 + 1e-9)]
    edge_lat = np.r_[rng.uniform(y0, y1, 1000), np.full(500, y0), np.full(500, y1),
                     rng.uniform(y0, y1, 1000)]
    ref = reference(edge_lon, edge_lat)
    assert [locator.locate(a, b) for a, b in zip(edge_lon, edge_lat)] == codes_of(ref)


@pytest.mark.parametrize("lon, lat", [
    (math.nan, 39.9), (116.4, math.nan), (math.nan, math.nan), (math.inf, 39.9),
    (116.4, -math.inf), (1e308, 39.9), (116.4, -1e308), (1e308, 1e308), (-1e308, -1e308),
    (180.5, 39.9), (116.4, 90.5), (-181, 0), (0, 0), (180, 90), (-180, -90),
    (np.float32("nan"), 39.9), (None, 39.9), ("116.4", "x"),
])
def test_bad_coordinates_give_none(locator, lon, lat):
    assert locator.locate(lon, lat) is None


def test_bad_coordinates_in_bulk_give_none(locator):
    lon = np.array([math.nan, math.inf, -math.inf, 1e308, -1e308, 116.4, 116.4, 200.0, 116.4])
    lat = np.array([39.9, 39.9, 39.9, 39.9, 39.9, math.nan, 1e308, 39.9, 39.9])
    got = locator.locate_many(lon, lat)
    assert got[:-1] == [None] * 8 and got[-1] == locator.locate(116.4, 39.9) is not None


def test_one_cell_two_districts_the_old_cache_bug_is_gone():
    """The old cache answered a whole 0.001° cell with its first point's district."""
    pairs = []
    for d in DISTRICTS[:2]:                       # 东城, 西城: borders with their neighbours
        xa, ya, xb, yb = ring_pairs(d.rings)
        mx, my = (xa + xb) / 2, (ya + yb) / 2
        length = np.hypot(xb - xa, yb - ya)
        ok = length > 2e-4
        nx_, ny_ = -(yb - ya)[ok] / length[ok], (xb - xa)[ok] / length[ok]
        p = (mx[ok] + 2e-5 * nx_, my[ok] + 2e-5 * ny_)
        q = (mx[ok] - 2e-5 * nx_, my[ok] - 2e-5 * ny_)
        same = ((np.floor(p[0] * 1000) == np.floor(q[0] * 1000))
                & (np.floor(p[1] * 1000) == np.floor(q[1] * 1000)))
        rp, rq = reference(*p), reference(*q)
        for i in np.flatnonzero(same & (rp >= 0) & (rq >= 0) & (rp != rq))[:5]:
            pairs.append(((p[0][i], p[1][i]), (q[0][i], q[1][i]), CODES[rp[i]], CODES[rq[i]]))
    assert len(pairs) >= 5
    for a, b, code_a, code_b in pairs:
        for first, second, c1, c2 in ((a, b, code_a, code_b), (b, a, code_b, code_a)):
            loc = DistrictLocator()
            assert loc.locate(*first) == c1
            assert loc.locate(*second) == c2 != c1


def test_locators_share_one_grid():
    a, b = DistrictLocator(), DistrictLocator()
    assert a._grid is b._grid is district_grid()


def test_contains_is_points_in_rings():
    rng = np.random.default_rng(3)
    for d in DISTRICTS:
        x0, y0, x1, y1 = d.bbox
        lon, lat = rng.uniform(x0 - 0.01, x1 + 0.01, 400), rng.uniform(y0 - 0.01, y1 + 0.01, 400)
        verts = np.concatenate(d.rings)[::5]
        lon, lat = np.r_[lon, verts[:, 0]], np.r_[lat, verts[:, 1]]
        inb = (x0 <= lon) & (lon <= x1) & (y0 <= lat) & (lat <= y1)
        want = inb & points_in_rings(lon, lat, d.rings)
        assert [d.contains(a, b) for a, b in zip(lon, lat)] == want.tolist()


def test_public_helpers_still_work():
    assert len(DISTRICTS) == 16 and by_adcode()["110101"].name_en == "Dongcheng"
    d = by_adcode()["110102"]
    pts = random_points_in(d, 50, np.random.default_rng(0))
    assert pts.shape == (50, 2) and all(d.contains(x, y) for x, y in pts)
    assert DistrictLocator().locate(*d.centroid) in CODES


def _square(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=float)


def test_grid_of_awkward_shapes():
    """Vertices on cell centres and cell lines, horizontal and vertical edges along them, a
    hole, a sliver, and two districts overlapping (the first wins)."""
    def district(code, *rings):
        pts = np.concatenate(rings)
        bbox = (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())
        return District(code, code, code, tuple(rings), tuple(float(v) for v in bbox))
    tri = np.array([[116.0005, 40.0005], [116.0105, 40.0005], [116.0055, 40.0155],
                    [116.0005, 40.0005]])
    ds = (
        district("a", _square(116.000, 40.000, 116.010, 40.010),
                 _square(116.003, 40.003, 116.006, 40.006)),                    # with a hole
        district("b", _square(116.0045, 40.0045, 116.0205, 40.0125)),          # overlaps a
        district("c", tri + [0.03, 0]),
        district("d", np.array([[116.05, 40.0], [116.0500001, 40.0], [116.0500001, 40.02],
                                [116.05, 40.0]])),                              # a sliver
    )
    g = DistrictGrid(ds)
    lon, lat = np.meshgrid(g.lon_centres, g.lat_centres)
    rng = np.random.default_rng(9)
    lon = np.r_[lon.ravel(), rng.uniform(115.99, 116.07, 50_000),
                np.round(rng.uniform(115.99, 116.07, 5000), 4)]           # on cell lines, centres
    lat = np.r_[lat.ravel(), rng.uniform(39.99, 40.03, 50_000),
                np.round(rng.uniform(39.99, 40.03, 5000), 4)]
    lon = np.r_[lon, 116.05000008, 116.05000009, 116.0045, 116.0045, 116.006]    # the sliver,
    lat = np.r_[lat, 40.01, 40.005, 40.0045, 40.0125, 40.006]                      # corners
    ref = reference(lon, lat, ds)
    assert set(ref.tolist()) == {-1, 0, 1, 2, 3}
    assert np.array_equal(g.index_many(lon, lat), ref)
    assert [g.exact(float(a), float(b)) for a, b in zip(lon[-5000:], lat[-5000:])] \
        == ref[-5000:].tolist()


def test_border_answers_are_kept_but_never_grow_past_their_bound(monkeypatch):
    """A standing sensor in a border cell asks the polygons once; a feed of ever new points
    costs no more memory than EXACT_MEMO answers, and every answer is the polygons' own."""
    import math
    import random

    import feeds.district_grid as dg
    from feeds.districts import district_grid
    grid = district_grid("gcj02")
    monkeypatch.setattr(dg, "EXACT_MEMO", 50)
    monkeypatch.setattr(grid, "_memo", {})
    rng = random.Random(18)
    border = []
    while len(border) < 400:
        lon, lat = rng.uniform(116.0, 116.8), rng.uniform(39.6, 40.2)
        ix, iy = math.floor(lon * 1000) - grid.ix0, math.floor(lat * 1000) - grid.iy0
        if grid.labels[iy, ix] == dg.BORDER:
            border.append((lon, lat))
    for lon, lat in border + border[:40]:
        assert grid.exact(lon, lat) == grid._exact(lon, lat)
        assert len(grid._memo) <= 50
    assert len(grid._memo) >= 1

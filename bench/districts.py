#!/usr/bin/env python
"""District lookup benchmark: the 0.001° grid of ``feeds.district_grid`` against the old
polygon path.

    .venv/bin/python bench/districts.py [--points N]

Prints the grid's build time (the first build in this process, as at a console's start, and
the median of 5 more), ``DistrictLocator.locate`` lookups a second for random points over the
city's bbox (with the share of them in border cells, which take the exact polygon path), the
border-cell lookups alone, ``locate_many``, and the old path's cost per new point (every
district in load order: bbox test, then ``points_in_rings`` over its rings) in the same run.
Figures only; nothing is asserted.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from feeds.district_grid import BORDER, DistrictGrid  # noqa: E402
from feeds.districts import (  # noqa: E402
    DistrictLocator, city_bbox, district_grid, load_districts, points_in_rings)


def old_locate(districts, lon: float, lat: float) -> str | None:
    """The old ``DistrictLocator.locate`` without its cache (a new point each time)."""
    for d in districts:
        x0, y0, x1, y1 = d.bbox
        if (x0 <= lon <= x1 and y0 <= lat <= y1
                and points_in_rings(np.array([lon]), np.array([lat]), d.rings)[0]):
            return d.adcode
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=300_000, help="random points for the grid")
    ap.add_argument("--old-points", type=int, default=300, help="random points for the old path")
    args = ap.parse_args()

    t = time.perf_counter()
    districts = load_districts()
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    grid = district_grid()
    first_s = time.perf_counter() - t
    again = []
    for _ in range(5):
        t = time.perf_counter()
        DistrictGrid(districts)
        again.append(time.perf_counter() - t)
    cells = grid.nx * grid.ny
    n_border = int(np.count_nonzero(grid.labels == BORDER))
    vertices = sum(len(r) for d in districts for r in d.rings)
    print(f"districts: {len(districts)}, vertices {vertices:,}; "
          f"geojson load {load_s * 1e3:.0f} ms")
    print(f"grid: {grid.nx} x {grid.ny} = {cells:,} cells of 0.001 deg, {n_border:,} border cells "
          f"({n_border / cells:.2%}), {grid.labels.nbytes / 1e6:.1f} MB")
    print(f"grid build: first {first_s * 1e3:.1f} ms, median of 5 more "
          f"{statistics.median(again) * 1e3:.1f} ms")

    rng = np.random.default_rng(42)
    x0, y0, x1, y1 = city_bbox()
    lon = rng.uniform(x0, x1, args.points)
    lat = rng.uniform(y0, y1, args.points)
    ix = np.floor(lon * 1000).astype(np.int64) - grid.ix0
    iy = np.floor(lat * 1000).astype(np.int64) - grid.iy0
    on_border = grid.labels[iy, ix] == BORDER
    pts = list(zip(lon.tolist(), lat.tolist()))
    border_pts = [p for p, b in zip(pts, on_border) if b]

    loc = DistrictLocator()
    locate = loc.locate
    t = time.perf_counter()
    found = [locate(a, b) for a, b in pts]
    all_s = time.perf_counter() - t
    t = time.perf_counter()
    for a, b in border_pts:
        locate(a, b)
    border_s = time.perf_counter() - t
    t = time.perf_counter()
    many = loc.locate_many(lon, lat)
    many_s = time.perf_counter() - t
    assert many == found
    inside = sum(f is not None for f in found)
    print(f"locate, {len(pts):,} random points over the city's bbox ({inside / len(pts):.1%} "
          f"inside a district, {on_border.mean():.2%} in border cells): "
          f"{len(pts) / all_s:,.0f} lookups/s ({all_s / len(pts) * 1e6:.2f} us each)")
    print(f"locate, border cells only ({len(border_pts):,} points): "
          f"{len(border_pts) / border_s:,.0f} lookups/s "
          f"({border_s / len(border_pts) * 1e6:.1f} us each)")
    print(f"locate_many, {len(pts):,} points: {len(pts) / many_s:,.0f} points/s "
          f"({many_s * 1e3:.0f} ms)")

    k = args.old_points
    t = time.perf_counter()
    old = [old_locate(districts, a, b) for a, b in pts[:k]]
    old_s = time.perf_counter() - t
    assert old == found[:k]
    print(f"old polygon path, {k} new points: {old_s / k * 1e3:.2f} ms per lookup "
          f"({k / old_s:,.0f} lookups/s); grid is {old_s / k / (all_s / len(pts)):,.0f}x faster")
    print(f"25,000 records without a district: grid {25_000 * all_s / len(pts) * 1e3:.0f} ms, "
          f"old path {25_000 * old_s / k:.0f} s")


if __name__ == "__main__":
    main()

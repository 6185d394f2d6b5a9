"""Beijing's 16 districts (adcodes of the protocol's ``district`` field) and point lookup.

Pure data and numpy: the simulator places things with it, the situation finds the district of
a record that has none (``DistrictLocator``: O(1) on the precomputed grid of
``feeds.district_grid``, exact at borders).

Frames: the data file is GCJ-02 as AMap publishes it (``DATA_CRS``, see ``data/SOURCE.md``).
Everything here takes the display frame the wall holds (``crs``: ``"gcj02"``, the default and
the demo city's, or ``"wgs84"`` for OSM or government tiles): in WGS-84 every vertex is
converted once (``feeds.crs_arrays``, PRCoords' formula) and the districts, their bboxes, the
city's bbox, the lookup grid and the GeoJSON are those of the converted polygons, each cached
per frame. ``frame_of(situation)`` is the frame a situation holds (its locator's).
"""
from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from feeds.crs import GCJ02, check_frame
from feeds.district_grid import BORDER, SCALE, DistrictGrid, Edges, odd_crossings, ring_edges

DATA_FILE = Path(__file__).with_name("data") / "beijing-districts.geojson"
DATA_CRS = GCJ02                    # the frame of DATA_FILE's coordinates (AMap's)
GEOJSON_DECIMALS = 7                # converted vertices in GeoJSON: 1 cm, half the page size


@dataclass(frozen=True)
class District:
    adcode: str
    name_zh: str
    name_en: str
    rings: tuple[np.ndarray, ...]      # each (n, 2) lon/lat; outer rings and holes alike
    bbox: tuple[float, float, float, float]   # min_lon, min_lat, max_lon, max_lat

    @property
    def short_zh(self) -> str:
        """东城区 → 东城: what people say, and what fits a narrow column."""
        return self.name_zh[:-1] if self.name_zh.endswith("区") else self.name_zh

    def contains(self, lon: float, lat: float) -> bool:
        """``points_in_rings`` for one point (same rule, same arithmetic), vectorised over
        the edges."""
        x0, y0, x1, y1 = self.bbox
        if not (x0 <= lon <= x1 and y0 <= lat <= y1):
            return False
        return odd_crossings(lon, lat, self.edges)

    @cached_property
    def edges(self) -> Edges:
        """The rings' non-horizontal edges as ``points_in_rings`` pairs them."""
        return ring_edges(self.rings)

    @property
    def centroid(self) -> tuple[float, float]:
        """Mean of the outer ring's vertices (lon, lat): good enough to place a label."""
        ring = max(self.rings, key=len)
        return float(ring[:, 0].mean()), float(ring[:, 1].mean())


def points_in_rings(lon: np.ndarray, lat: np.ndarray, rings) -> np.ndarray:
    """Even-odd ray casting over all rings, vectorised over the points."""
    inside = np.zeros(lon.shape, dtype=bool)
    for ring in rings:
        xs, ys = ring[:, 0], ring[:, 1]
        xj, yj = np.roll(xs, 1), np.roll(ys, 1)
        for xa, ya, xb, yb in zip(xs, ys, xj, yj):
            if ya == yb:
                continue
            crosses = (ya > lat) != (yb > lat)
            x_at = xa + (lat - ya) * (xb - xa) / (yb - ya)
            inside ^= crosses & (lon < x_at)
    return inside


def frame_of(situation) -> str:
    """The display frame a situation holds: its locator's ``crs`` (GCJ-02 when it has none)."""
    return getattr(getattr(situation, "locator", None), "crs", GCJ02)


def load_districts(path: str | None = None, crs: str = GCJ02) -> tuple[District, ...]:
    """The districts of ``path`` (default: the data file, GCJ-02) in frame ``crs``; cached per
    (path, frame), so every caller of one frame shares the same objects."""
    return _load(str(path) if path else None, check_frame(crs))


@lru_cache(maxsize=8)
def _load(path: str | None, crs: str) -> tuple[District, ...]:
    if crs != DATA_CRS:
        from feeds.crs_arrays import convert_lonlat
        out = []
        for d in _load(path, DATA_CRS):
            rings = tuple(convert_lonlat(r, DATA_CRS, crs) for r in d.rings)
            if any(not np.isfinite(r).all() for r in rings):
                raise ValueError(f"district {d.adcode} cannot be converted to {crs}")
            out.append(District(d.adcode, d.name_zh, d.name_en, rings, _bbox(rings)))
        return tuple(out)
    data = json.loads(Path(path or DATA_FILE).read_text(encoding="utf-8"))
    out = []
    for feat in data["features"]:
        props, geom = feat["properties"], feat["geometry"]
        polys = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
        rings = tuple(np.asarray(r, dtype=float) for poly in polys for r in poly)
        out.append(District(props["adcode"], props["name_zh"], props["name_en"], rings,
                            _bbox(rings)))
    return tuple(out)


def _bbox(rings) -> tuple[float, float, float, float]:
    allpts = np.concatenate(rings)
    return (float(allpts[:, 0].min()), float(allpts[:, 1].min()),
            float(allpts[:, 0].max()), float(allpts[:, 1].max()))


def by_adcode(crs: str = GCJ02) -> dict[str, District]:
    return _by_adcode(check_frame(crs))


@lru_cache(maxsize=4)
def _by_adcode(crs: str) -> dict[str, District]:
    return {d.adcode: d for d in load_districts(crs=crs)}


def city_bbox(crs: str = GCJ02) -> tuple[float, float, float, float]:
    """(west, south, east, north) around every district, in frame ``crs``."""
    ds = load_districts(crs=crs)
    return (min(d.bbox[0] for d in ds), min(d.bbox[1] for d in ds),
            max(d.bbox[2] for d in ds), max(d.bbox[3] for d in ds))


def districts_geojson(crs: str = GCJ02) -> dict:
    """The data file as a GeoJSON dict (a new one each call: callers may add to it) with its
    coordinates in frame ``crs`` (in the data's own frame: the file as it is)."""
    crs = check_frame(crs)
    data = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    if crs == DATA_CRS:
        return data
    from feeds.crs_arrays import convert_lonlat

    def move(ring):
        out = np.round(convert_lonlat(np.asarray(ring, dtype=float), DATA_CRS, crs),
                       GEOJSON_DECIMALS)
        return out.tolist()

    for feat in data["features"]:
        geom = feat["geometry"]
        if geom["type"] == "MultiPolygon":
            geom["coordinates"] = [[move(r) for r in poly] for poly in geom["coordinates"]]
        else:
            geom["coordinates"] = [move(r) for r in geom["coordinates"]]
    return data


_grid_lock = threading.Lock()


@lru_cache(maxsize=4)
def _grid_cached(crs: str) -> DistrictGrid:
    return DistrictGrid(load_districts(crs=crs))


def district_grid(crs: str = GCJ02) -> DistrictGrid:
    """The districts' lookup grid in frame ``crs``, built once per process and frame (about
    50 ms)."""
    crs = check_frame(crs)
    with _grid_lock:
        return _grid_cached(crs)


class DistrictLocator:
    """District (adcode) of a point: one read of a precomputed 0.001° grid, or — in a cell a
    district border crosses — the exact polygon answer. The same answer as asking every
    district in load order ``District.contains``, the first that holds the point winning.
    The grid is shared by every locator of the process in the same frame.

    ``crs`` is the frame of the points it is asked about, the wall's display frame (GCJ-02 by
    default; ``DistrictLocator(crs="wgs84")`` for a WGS-84 wall): the situation holding this
    locator holds its points in that frame (``frame_of``)."""

    def __init__(self, crs: str = GCJ02):
        self.crs = check_frame(crs)
        self._districts = load_districts(crs=self.crs)
        self._codes = [d.adcode for d in self._districts]
        self._grid = g = district_grid(self.crs)
        self._flat, self._ix0, self._iy0, self._nx, self._ny = g.flat, g.ix0, g.iy0, g.nx, g.ny

    def locate(self, lon: float, lat: float) -> str | None:
        """Adcode of the district holding (lon, lat), or None (outside every district, or
        coordinates that are not finite numbers in range: never raises)."""
        try:
            lon, lat = float(lon), float(lat)
        except (TypeError, ValueError, OverflowError):
            return None
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):     # NaN fails too
            return None
        ix = math.floor(lon * SCALE) - self._ix0
        iy = math.floor(lat * SCALE) - self._iy0
        if 0 <= ix < self._nx and 0 <= iy < self._ny:
            v = self._flat[iy * self._nx + ix]
            if v < BORDER:
                return self._codes[v]
            if v > BORDER:
                return None
        k = self._grid.exact(lon, lat)            # a border cell (or off the grid: be safe)
        return self._codes[k] if k >= 0 else None

    def locate_many(self, lon: np.ndarray, lat: np.ndarray) -> list[str | None]:
        """``locate`` for arrays of points, vectorised (border cells point by point)."""
        codes = self._codes
        return [codes[k] if k >= 0 else None for k in self._grid.index_many(lon, lat).tolist()]


def random_points_in(district: District, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniformly random (lon, lat) points inside a district (rejection sampling)."""
    x0, y0, x1, y1 = district.bbox
    got: list[np.ndarray] = []
    count = 0
    while count < n:
        lon = rng.uniform(x0, x1, size=max(16, n * 3))
        lat = rng.uniform(y0, y1, size=max(16, n * 3))
        ok = points_in_rings(lon, lat, district.rings)
        pts = np.column_stack([lon[ok], lat[ok]])
        got.append(pts)
        count += len(pts)
    return np.concatenate(got)[:n]

"""Beijing's 16 districts (adcodes of the protocol's ``district`` field) and point lookup.

Pure data and numpy: the simulator places things with it, the situation finds the district of
a record that has none. Coordinates are GCJ-02 as the source publishes them (see
``data/SOURCE.md``): the demo city's display frame.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

DATA_FILE = Path(__file__).with_name("data") / "beijing-districts.geojson"


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
        x0, y0, x1, y1 = self.bbox
        if not (x0 <= lon <= x1 and y0 <= lat <= y1):
            return False
        return bool(points_in_rings(np.array([lon]), np.array([lat]), self.rings)[0])

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


@lru_cache(maxsize=1)
def load_districts(path: str | None = None) -> tuple[District, ...]:
    data = json.loads(Path(path or DATA_FILE).read_text(encoding="utf-8"))
    out = []
    for feat in data["features"]:
        props, geom = feat["properties"], feat["geometry"]
        polys = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
        rings = tuple(np.asarray(r, dtype=float) for poly in polys for r in poly)
        allpts = np.concatenate(rings)
        bbox = (float(allpts[:, 0].min()), float(allpts[:, 1].min()),
                float(allpts[:, 0].max()), float(allpts[:, 1].max()))
        out.append(District(props["adcode"], props["name_zh"], props["name_en"], rings, bbox))
    return tuple(out)


@lru_cache(maxsize=1)
def by_adcode() -> dict[str, District]:
    return {d.adcode: d for d in load_districts()}


def city_bbox() -> tuple[float, float, float, float]:
    ds = load_districts()
    return (min(d.bbox[0] for d in ds), min(d.bbox[1] for d in ds),
            max(d.bbox[2] for d in ds), max(d.bbox[3] for d in ds))


class DistrictLocator:
    """District of a point, with a small cache on a ~100 m grid (units report from the same
    streets over and over)."""

    def __init__(self):
        self._districts = load_districts()
        self._cache: dict[tuple[int, int], str | None] = {}

    def locate(self, lon: float, lat: float) -> str | None:
        key = (int(lon * 1000), int(lat * 1000))
        if key in self._cache:
            return self._cache[key]
        found = None
        for d in self._districts:
            if d.contains(lon, lat):
                found = d.adcode
                break
        if len(self._cache) > 200_000:
            self._cache.clear()
        self._cache[key] = found
        return found


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

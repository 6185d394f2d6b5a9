"""The districts on a 0.001° grid: the district of a point in O(1), exact.

``feeds.districts.DistrictLocator`` asks this grid. The city's bounding box is cut into cells of
0.001° × 0.001° (about 85 m × 111 m in Beijing); the cell of a point is
``(floor(lon * 1000) - ix0, floor(lat * 1000) - iy0)`` from a fixed origin, so neighbouring
cells tile without gaps. Each cell holds

- the index (in ``load_districts()`` order) of the district holding every point of the cell,
  or ``NONE`` when no district holds it — when no district boundary edge comes within about
  1 cm (``EPS`` cells) of the cell: the answer is then the same over the whole cell;
- ``BORDER`` when some edge may pass through the cell (marked conservatively: every cell
  within ``EPS`` of an edge, the edge's supercover). A point in a border cell gets the exact
  polygon answer, vectorised over the polygon edges that span the point's row of cells.

The answer of a cell is computed at its centre with the even-odd rule and the floating-point
arithmetic of ``feeds.districts.points_in_rings``, so the grid, the exact path and
``points_in_rings`` agree at every point (a centre in two districts goes to the first in load
order, as ``DistrictLocator.locate`` always did). Why a non-border cell has one answer: no
boundary point lies within ``EPS`` of it, so the crossing parity is constant over the cell, and
the rounding of the crossing's longitude (a few 1e-14°) is far below that 1e-7° margin.

The grid is of the polygons it is given, in their frame: ``feeds.districts.district_grid(crs)``
builds one per display frame (GCJ-02, or the converted WGS-84 polygons), and a point must be
asked in that frame.

Numpy only, no Qt. The build (about 50 ms) runs once per process and frame (``district_grid``).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

SCALE = 1000              # cells per degree: 0.001° cells
EPS = 1e-4                # margin in cells (1e-7°, about 1 cm) around every edge
NONE = 255                # no district holds the cell
BORDER = 254              # an edge may cross the cell: ask the polygons
EXACT_MEMO = 1 << 16      # border-cell answers kept (a standing sensor asks again and again)


class Edges(NamedTuple):
    """Non-horizontal edges of polygon rings as ``points_in_rings`` pairs them (a vertex and
    the one before it): ``x_at = xa + (lat - ya) * dx / dy`` with ``dx = xb - xa``,
    ``dy = yb - ya`` — the same floats ``points_in_rings`` computes."""
    xa: np.ndarray
    ya: np.ndarray
    yb: np.ndarray
    dx: np.ndarray
    dy: np.ndarray


def ring_pairs(rings) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All edges (horizontal ones too) of ``rings``: xa, ya, xb, yb."""
    a = np.concatenate([np.asarray(r, dtype=float) for r in rings])
    b = np.concatenate([np.roll(np.asarray(r, dtype=float), 1, axis=0) for r in rings])
    return a[:, 0], a[:, 1], b[:, 0], b[:, 1]


def ring_edges(rings) -> Edges:
    xa, ya, xb, yb = ring_pairs(rings)
    keep = ya != yb
    xa, ya, xb, yb = xa[keep], ya[keep], xb[keep], yb[keep]
    return Edges(xa, ya, yb, xb - xa, yb - ya)


def odd_crossings(lon: float, lat: float, e: Edges) -> bool:
    """Even-odd test of one point against edges, vectorised over the edges (the arithmetic of
    ``points_in_rings``: the parity of edges crossing the point's latitude east of it)."""
    crosses = (e.ya > lat) != (e.yb > lat)
    x_at = e.xa + (lat - e.ya) * e.dx / e.dy
    return bool(np.count_nonzero(crosses & (lon < x_at)) & 1)


class DistrictGrid:
    """Build with ``DistrictGrid(load_districts())``; see the module's docstring."""

    def __init__(self, districts: Sequence):
        self.n = len(districts)
        self.bbox = np.array([d.bbox for d in districts], dtype=float).reshape(-1, 4)
        self.edges = [ring_edges(d.rings) for d in districts]
        x0, y0 = self.bbox[:, 0].min(), self.bbox[:, 1].min()
        x1, y1 = self.bbox[:, 2].max(), self.bbox[:, 3].max()
        # one spare cell on every side: no point of any district's bbox falls off the grid
        self.ix0, self.iy0 = math.floor(x0 * SCALE) - 1, math.floor(y0 * SCALE) - 1
        self.nx = math.floor(x1 * SCALE) + 2 - self.ix0
        self.ny = math.floor(y1 * SCALE) + 2 - self.iy0
        self.lon_centres = (self.ix0 + np.arange(self.nx) + 0.5) / SCALE
        self.lat_centres = (self.iy0 + np.arange(self.ny) + 0.5) / SCALE
        self.labels = np.full((self.ny, self.nx), NONE, dtype=np.uint8)
        for k in range(self.n - 1, -1, -1):           # the first district in load order wins
            self._fill(k)
        self._mark_borders(districts)
        self._index_rows()
        self.flat = self.labels.tobytes()             # one bytes read per lookup
        self._memo: dict[tuple[float, float], int] = {}     # exact()'s answers (bounded)

    # ---- build ----------------------------------------------------------------------------

    def _fill(self, k: int) -> None:
        """Centres inside district ``k`` (and in its bbox, as ``District.contains`` asks): per
        row of centres, the crossings of the row's latitude; a centre is inside when an odd
        number of crossings lie east of it. Per crossing, the cells west of it are toggled:
        counted per (row, first cell not west of it), summed from the east."""
        e, (bx0, by0, bx1, by1) = self.edges[k], self.bbox[k]
        lats, lons = self.lat_centres, self.lon_centres
        r0, r1 = np.searchsorted(lats, by0, "left"), np.searchsorted(lats, by1, "right")
        c0, c1 = np.searchsorted(lons, bx0, "left"), np.searchsorted(lons, bx1, "right")
        if r1 <= r0 or c1 <= c0 or not len(e.xa):
            return
        # rows whose centre latitude the edge crosses: min(ya, yb) <= lat < max(ya, yb)
        lo = np.searchsorted(lats, np.minimum(e.ya, e.yb), "left")
        hi = np.searchsorted(lats, np.maximum(e.ya, e.yb), "left")
        count = hi - lo
        idx = np.repeat(np.arange(len(count)), count)
        rows = lo[idx] + np.arange(len(idx)) - np.repeat(np.cumsum(count) - count, count)
        lat = lats[rows]
        x_at = e.xa[idx] + (lat - e.ya[idx]) * e.dx[idx] / e.dy[idx]
        west = np.clip(np.searchsorted(lons, x_at, "left"), c0, c1) - c0   # centres < x_at
        width = c1 - c0
        hist = np.bincount((rows - r0) * (width + 1) + west,
                           minlength=(r1 - r0) * (width + 1)).reshape(r1 - r0, width + 1)
        east = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]       # crossings at or east of a slot
        inside = (east[:, 1:] & 1).astype(bool)                # crossings with slot > cell
        self.labels[r0:r1, c0:c1][inside] = k

    def _cols(self, x: np.ndarray, side: int) -> np.ndarray:
        return np.floor(x * SCALE + side * EPS).astype(np.int64)

    def _mark_borders(self, districts) -> None:
        """Every cell within ``EPS`` of an edge (horizontal edges too): per edge, per column of
        cells it spans, the edge's latitudes over the column (widened by ``EPS``), their rows."""
        xa, ya, xb, yb = (np.concatenate(v) for v in
                          zip(*(ring_pairs(d.rings) for d in districts)))
        c_lo = self._cols(np.minimum(xa, xb), -1)
        c_hi = self._cols(np.maximum(xa, xb), +1)
        count = c_hi - c_lo + 1
        idx = np.repeat(np.arange(len(xa)), count)
        col = c_lo[idx] + np.arange(len(idx)) - np.repeat(np.cumsum(count) - count, count)
        exa, eya, exb, eyb = xa[idx], ya[idx], xb[idx], yb[idx]
        dx = exb - exa
        with np.errstate(divide="ignore", invalid="ignore"):
            t0 = np.clip(((col - EPS) / SCALE - exa) / dx, 0.0, 1.0)
            t1 = np.clip(((col + 1 + EPS) / SCALE - exa) / dx, 0.0, 1.0)
        vertical = dx == 0
        t0, t1 = np.where(vertical, 0.0, t0), np.where(vertical, 1.0, t1)
        ya0, ya1 = eya + t0 * (eyb - eya), eya + t1 * (eyb - eya)
        lo = np.maximum(np.minimum(ya0, ya1), np.minimum(eya, eyb))
        hi = np.minimum(np.maximum(ya0, ya1), np.maximum(eya, eyb))
        r_lo, r_hi = self._cols(lo, -1), self._cols(hi, +1)
        count = r_hi - r_lo + 1
        idx = np.repeat(np.arange(len(col)), count)
        row = r_lo[idx] + np.arange(len(idx)) - np.repeat(np.cumsum(count) - count, count)
        self.labels[row - self.iy0, col[idx] - self.ix0] = BORDER

    def _index_rows(self) -> None:
        """The exact path's index: per row of cells, the edges (of every district) whose
        latitudes span the row, widened by ``EPS``: all that can cross a point of the row."""
        k = np.concatenate([np.full(len(e.xa), i) for i, e in enumerate(self.edges)])
        xa, ya, yb, dx, dy = (np.concatenate(v) for v in zip(*self.edges))
        r_lo = np.clip(self._cols(np.minimum(ya, yb), -1) - self.iy0, 0, self.ny - 1)
        r_hi = np.clip(self._cols(np.maximum(ya, yb), +1) - self.iy0, 0, self.ny - 1)
        count = r_hi - r_lo + 1
        idx = np.repeat(np.arange(len(xa)), count)
        row = r_lo[idx] + np.arange(len(idx)) - np.repeat(np.cumsum(count) - count, count)
        order = np.argsort(row, kind="stable")
        idx = idx[order]
        self.row_ptr = np.concatenate([[0], np.cumsum(np.bincount(row, minlength=self.ny))])
        self.row_edges = Edges(xa[idx], ya[idx], yb[idx], dx[idx], dy[idx])
        self.row_district = k[idx]

    # ---- lookup ---------------------------------------------------------------------------

    def cell(self, lon: float, lat: float) -> tuple[int, int]:
        """(ix, iy) of a finite point; may be off the grid."""
        return math.floor(lon * SCALE) - self.ix0, math.floor(lat * SCALE) - self.iy0

    def exact(self, lon: float, lat: float) -> int:
        """Index of the first district (load order) whose bbox holds the point and whose rings
        hold it by the even-odd rule, or -1. Finite coordinates only.

        A point in a border cell costs a pass over its row's edges (~0.1 ms where a row crosses
        many boundaries); a sensor stands still and reports again and again, so the answers
        are kept (``EXACT_MEMO`` points at most, then forgotten all at once: a feed of ever
        new points costs what it did, never more memory)."""
        memo = self._memo
        key = (lon, lat)
        got = memo.get(key)
        if got is not None:
            return got
        got = self._exact(lon, lat)
        if len(memo) >= EXACT_MEMO:
            memo.clear()
        memo[key] = got
        return got

    def _exact(self, lon: float, lat: float) -> int:
        b = self.bbox
        cand = np.flatnonzero((b[:, 0] <= lon) & (lon <= b[:, 2])
                              & (b[:, 1] <= lat) & (lat <= b[:, 3]))
        if not len(cand):
            return -1
        iy = math.floor(lat * SCALE) - self.iy0
        if not 0 <= iy < self.ny:        # cannot happen (the grid covers every bbox): be safe
            for k in cand:
                if odd_crossings(lon, lat, self.edges[k]):
                    return int(k)
            return -1
        s, t = self.row_ptr[iy], self.row_ptr[iy + 1]
        e = self.row_edges
        ya, yb = e.ya[s:t], e.yb[s:t]
        crosses = (ya > lat) != (yb > lat)
        x_at = e.xa[s:t] + (lat - ya) * e.dx[s:t] / e.dy[s:t]
        hits = np.bincount(self.row_district[s:t][crosses & (lon < x_at)], minlength=self.n)
        inside = np.flatnonzero(hits[cand] & 1)
        return int(cand[inside[0]]) if len(inside) else -1

    def exact_many(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """``exact`` for many finite points on the grid's rows, vectorised over (point, edge of
        the point's row) pairs, a chunk of points at a time."""
        out = np.full(len(lon), -1, dtype=np.int64)
        e, b = self.row_edges, self.bbox
        for c in range(0, len(lon), 20_000):
            x, y = lon[c:c + 20_000], lat[c:c + 20_000]
            iy = np.floor(y * SCALE).astype(np.int64) - self.iy0
            start, count = self.row_ptr[iy], self.row_ptr[iy + 1] - self.row_ptr[iy]
            p = np.repeat(np.arange(len(x)), count)
            j = start[p] + np.arange(len(p)) - np.repeat(np.cumsum(count) - count, count)
            py, ya = y[p], e.ya[j]
            hit = ((ya > py) != (e.yb[j] > py)) & (x[p] < e.xa[j] + (py - ya) * e.dx[j] / e.dy[j])
            odd = np.bincount(p[hit] * self.n + self.row_district[j[hit]],
                              minlength=len(x) * self.n).reshape(len(x), self.n) & 1
            inside = (odd.astype(bool) & (b[:, 0] <= x[:, None]) & (x[:, None] <= b[:, 2])
                      & (b[:, 1] <= y[:, None]) & (y[:, None] <= b[:, 3]))
            out[c:c + len(x)] = np.where(inside.any(axis=1), inside.argmax(axis=1), -1)
        return out

    def index_many(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """District indices (-1 for none) of many points; non-finite or out-of-range → -1."""
        lon = np.asarray(lon, dtype=float).ravel()
        lat = np.asarray(lat, dtype=float).ravel()
        out = np.full(lon.shape, -1, dtype=np.int64)
        ok = (np.abs(lon) <= 180) & (np.abs(lat) <= 90)       # False for NaN
        ix = np.zeros(lon.shape, dtype=np.int64)
        iy = np.zeros(lon.shape, dtype=np.int64)
        ix[ok] = np.floor(lon[ok] * SCALE).astype(np.int64) - self.ix0
        iy[ok] = np.floor(lat[ok] * SCALE).astype(np.int64) - self.iy0
        on = ok & (ix >= 0) & (ix < self.nx) & (iy >= 0) & (iy < self.ny)
        v = np.full(lon.shape, NONE, dtype=np.int64)
        v[on] = self.labels[iy[on], ix[on]]
        known = on & (v < BORDER)
        out[known] = v[known]
        border = np.flatnonzero(on & (v == BORDER))
        out[border] = self.exact_many(lon[border], lat[border])
        b = self.bbox
        near = (ok & ~on & (lon >= b[:, 0].min()) & (lon <= b[:, 2].max())
                & (lat >= b[:, 1].min()) & (lat <= b[:, 3].max()))
        for i in np.flatnonzero(near):         # off the grid yet in the city's bbox: none
            out[i] = self.exact(float(lon[i]), float(lat[i]))
        return out

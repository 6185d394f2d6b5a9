"""Heatmaps of the situation: where cases come from (a grid over the city) and when (district ×
hour of day against the days before).

numpy and pandas, no Qt: the wall's panels draw these, the map lays them over its basemap
(``overlay_png``), and the tests check them without a screen. Every window is read on the
situation's clock.

Grids are in degrees of the display frame the situation holds (``feeds.districts.frame_of``:
GCJ-02 by default, WGS-84 on a WGS-84 wall), over the city's bbox in that frame, with cell sizes converted from
metres at Beijing's latitude: 1° of latitude 111 km, 1° of longitude 111 km · cos 40°. The
grid's corner is snapped to whole cells from (0°, 0°), so a cell is the same cell whatever
view asked for it: a case never jumps cells as the map pans.
"""
from __future__ import annotations

import dataclasses

import math
import struct
import zlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from feeds.crs import GCJ02
from feeds.districts import by_adcode, city_bbox, frame_of, load_districts
from situation import palette

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
CITY_UTC_OFFSET_MS = 8 * HOUR_MS       # Asia/Shanghai: UTC+8 all year, no daylight saving
HISTORY_DAYS = 56                      # what the report log keeps (situation.store.REPORT_LOG_MS)

M_PER_DEG_LAT = 111_000.0
COS_LAT = math.cos(math.radians(40.0))
M_PER_DEG_LON = M_PER_DEG_LAT * COS_LAT

CITY_CELL_M = 500          # city-wide
UNIT_CELL_M = 100          # 万米单元网格: the 10,000 m² unit grid, when a district is in view
WINDOWS_MS = (1 * HOUR_MS, 6 * HOUR_MS, 24 * HOUR_MS)

# Colour stops (position, colour, alpha) of the case heat: dark → amber → red. Shared by the
# panel and the map overlay so the two legends read the same; defined in situation.palette.
HEAT_STOPS: tuple[tuple[float, str, int], ...] = palette.HEAT_RAMP

# Sensor layers the wall offers: (kind, metric).
SENSOR_LAYERS: tuple[tuple[str, str], ...] = (
    ("air", "pm25"), ("noise", "laeq"), ("crowd", "density"), ("waste", "fill_pct"))

Bbox = tuple[float, float, float, float]       # west, south, east, north (lon/lat degrees)


def cell_deg(cell_m: float) -> tuple[float, float]:
    """(dlon, dlat) of a square cell ``cell_m`` metres wide at Beijing's latitude."""
    return cell_m / M_PER_DEG_LON, cell_m / M_PER_DEG_LAT


@dataclass
class HeatGrid:
    values: np.ndarray       # (ny, nx) float; row 0 is the south edge. Counts: 0 where none.
    #                          Sensor means: NaN where no sensor.
    west: float              # the SW corner of cell (0, 0), degrees
    south: float
    dlon: float              # cell size, degrees
    dlat: float
    cell_m: int
    total: float             # cases counted in cells / sensors used in cells
    label: str
    outside: int = 0         # records in the window but off the grid (held and listed elsewhere)
    counts: bool = True      # a count of cases (0 = none); False: sensor means (NaN = none)

    @property
    def ny(self) -> int:
        return self.values.shape[0]

    @property
    def nx(self) -> int:
        return self.values.shape[1]

    @property
    def east(self) -> float:
        return self.west + self.nx * self.dlon

    @property
    def north(self) -> float:
        return self.south + self.ny * self.dlat

    def bounds(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """((south, west), (north, east)): Leaflet's order for an image overlay."""
        return (self.south, self.west), (self.north, self.east)

    def cell_of(self, lon: float, lat: float) -> tuple[int, int] | None:
        """(iy, ix) of the cell holding the point, or None off the grid."""
        ix = math.floor((lon - self.west) / self.dlon)
        iy = math.floor((lat - self.south) / self.dlat)
        if 0 <= ix < self.nx and 0 <= iy < self.ny:
            return iy, ix
        return None

    def _cells(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat cell index of each point and whether it is on the grid (vectorised
        ``cell_of``)."""
        ix = np.floor((lon - self.west) / self.dlon).astype(np.int64)
        iy = np.floor((lat - self.south) / self.dlat).astype(np.int64)
        inside = (ix >= 0) & (ix < self.nx) & (iy >= 0) & (iy < self.ny)
        return iy * self.nx + ix, inside


def empty_grid(cell_m: int = CITY_CELL_M, bbox: Bbox | None = None, label: str = "",
               crs: str = GCJ02) -> HeatGrid:
    """A grid of zeros covering ``bbox`` (default: the city, in frame ``crs``) with corners on
    whole cells."""
    west, south, east, north = bbox if bbox is not None else city_bbox(crs)
    dlon, dlat = cell_deg(cell_m)
    x0 = math.floor(west / dlon) * dlon
    y0 = math.floor(south / dlat) * dlat
    nx = max(1, math.ceil((east - x0) / dlon - 1e-9))
    ny = max(1, math.ceil((north - y0) / dlat - 1e-9))
    return HeatGrid(np.zeros((ny, nx)), x0, y0, dlon, dlat, int(cell_m), 0.0, label)


def case_heat(situation, window_ms: int, cell_m: int = CITY_CELL_M,
              bbox: Bbox | None = None) -> HeatGrid:
    """Cases per cell reported within (now − window, now] of the situation's clock: every case
    held, open or closed (closed ones stay 48 h, longer than any window offered). A case off
    the grid (a point far outside Beijing, or outside a district view) counts in ``outside``,
    not in a cell; ``total`` + ``outside`` is every case in the window."""
    now = situation.now_ms()
    grid = empty_grid(cell_m, bbox, label=f"cases:{window_ms // 60_000}min",
                      crs=frame_of(situation))
    cases = situation.cases.values()
    n = len(cases)
    at = np.fromiter((c.reported_at for c in cases), np.int64, n)
    lon = np.fromiter((c.lon for c in cases), float, n)
    lat = np.fromiter((c.lat for c in cases), float, n)
    in_window = (at > now - window_ms) & (at <= now)
    flat, on_grid = grid._cells(lon[in_window], lat[in_window])
    counts = np.bincount(flat[on_grid], minlength=grid.ny * grid.nx)
    grid.values = counts.reshape(grid.ny, grid.nx).astype(float)
    grid.total = float(on_grid.sum())
    grid.outside = int((~on_grid).sum())
    return grid


def sensor_heat(situation, kind: str, metric: str, cell_m: int = CITY_CELL_M,
                bbox: Bbox | None = None) -> HeatGrid:
    """Mean per cell of the latest ``metric`` of each sensor of ``kind`` (NaN: no sensor).
    ``total`` is the number of sensors in cells."""
    grid = empty_grid(cell_m, bbox, label=f"{kind}.{metric}", crs=frame_of(situation))
    grid.counts = False
    rows = [(r.lon, r.lat, r.metrics[metric]) for r in situation.sensors.values()
            if r.kind == kind and metric in r.metrics]
    values = np.full(grid.ny * grid.nx, np.nan)
    if rows:
        arr = np.asarray(rows, dtype=float)
        flat, on_grid = grid._cells(arr[:, 0], arr[:, 1])
        cells = flat[on_grid]
        n = np.bincount(cells, minlength=values.size)
        s = np.bincount(cells, weights=arr[on_grid, 2], minlength=values.size)
        held = n > 0
        values[held] = s[held] / n[held]
        grid.total = float(on_grid.sum())
        grid.outside = int((~on_grid).sum())
    grid.values = values.reshape(grid.ny, grid.nx)
    return grid


def district_bbox(adcode: str, crs: str = GCJ02) -> Bbox:
    """(west, south, east, north) of a district in frame ``crs``; KeyError for a code Beijing
    does not have."""
    return by_adcode(crs)[adcode].bbox


def view_km(bbox: Bbox) -> tuple[float, float]:
    west, south, east, north = bbox
    return ((east - west) * M_PER_DEG_LON / 1000, (north - south) * M_PER_DEG_LAT / 1000)


def grid_for_view(bbox: Bbox) -> int:
    """Cell size for a view: the 100 m unit grid when the view spans about one district or
    less, else 500 m. "About one district": the shorter side at most 40 km (Chaoyang or Haidian,
    ~0.35° of longitude, with the margin a wide screen adds around them) and the longer side
    at most 100 km (at most 400 × 1000 cells)."""
    w, h = view_km(bbox)
    return UNIT_CELL_M if min(w, h) <= 40 and max(w, h) <= 100 else CITY_CELL_M


# ---- district × hour of day ------------------------------------------------------------------

class DistrictHours(NamedTuple):
    today: pd.DataFrame       # district adcode × hour 0..23: cases reported today so far
    average: pd.DataFrame     # same shape: mean per day over the ``days`` previous days
    days: int                 # previous whole days averaged (0: no history yet)
    unplaced: int             # today's reports with no known district (not in the rows)

    @property
    def weeks(self) -> float:
        return self.days / 7


def local_day_hour(ts_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Beijing calendar day number and hour of day (0–23) of epoch milliseconds."""
    local = np.asarray(ts_ms, dtype=np.int64) + CITY_UTC_OFFSET_MS
    return local // DAY_MS, (local % DAY_MS) // HOUR_MS


def _reports(situation) -> tuple[np.ndarray, np.ndarray]:
    """reported_at and district row (−1: none or unknown) of every report known: the report
    log, plus cases held that it does not have (held longer than the log keeps)."""
    index = {d.adcode: i for i, d in enumerate(load_districts())}
    log = situation.reports
    extra = [c for cid, c in situation.cases.items() if cid not in log]
    at = np.fromiter((r.reported_at for r in log), np.int64, len(log))
    row = np.fromiter((index.get(r.district, -1) for r in log), np.int64, len(log))
    if extra:
        at = np.concatenate([at, np.fromiter((c.reported_at for c in extra), np.int64,
                                             len(extra))])
        row = np.concatenate([row, np.fromiter((index.get(c.district, -1) for c in extra),
                                               np.int64, len(extra))])
    return at, row


def district_hours(situation) -> DistrictHours:
    """Cases reported per district and hour of day (Beijing time), today so far and on an
    average day before.

    The average is over **all previous whole days held**, not the same weekday: from the
    calendar day of the oldest report known (at most ``HISTORY_DAYS`` = 8 weeks back) up to
    yesterday, every day counting in the denominator, quiet days included. A console that
    joined mid-day has a partial first day, which pulls the average down a little until it
    has a few days behind it. Reports dated after the clock's now are left out.
    """
    now = situation.now_ms()
    codes = [d.adcode for d in load_districts()]
    nd = len(codes)
    at, row = _reports(situation)
    keep = at <= now
    at, row = at[keep], row[keep]
    today_day = int(local_day_hour(np.array([now]))[0][0])
    day, hour = local_day_hour(at)
    placed = row >= 0
    is_today = day == today_day
    past = (day < today_day) & (day >= today_day - HISTORY_DAYS)
    cells = nd * 24
    today = np.bincount(row[is_today & placed] * 24 + hour[is_today & placed],
                        minlength=cells).reshape(nd, 24)
    days = int(today_day - day[past].min()) if past.any() else 0
    hist = np.bincount(row[past & placed] * 24 + hour[past & placed],
                       minlength=cells).reshape(nd, 24)
    average = hist / days if days else np.zeros((nd, 24))
    hours = pd.RangeIndex(24, name="hour")
    index = pd.Index(codes, name="district")
    return DistrictHours(pd.DataFrame(today, index=index, columns=hours),
                         pd.DataFrame(average, index=index, columns=hours),
                         days, int((is_today & ~placed).sum()))


# ---- the map's raster overlay (no Qt: numpy and a hand-made PNG) ---------------------------

def _hex(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def heat_lut(n: int = 256, stops=HEAT_STOPS) -> np.ndarray:
    """(n, 4) uint8 RGBA lookup table interpolated between ``stops``."""
    pos = np.array([p for p, _, _ in stops])
    rgba = np.array([(*_hex(c), a) for _, c, a in stops], dtype=float)
    x = np.linspace(0, 1, n)
    return np.stack([np.interp(x, pos, rgba[:, k]) for k in range(4)], axis=1).round().astype(
        np.uint8)


def heat_levels(grid: HeatGrid) -> tuple[float, float]:
    """Colour scale of a grid: from 0 (counts) or the lowest mean (sensors) to a robust top
    (the 99th percentile of cells holding something, at least 3 for counts) so one hot cell
    does not wash the rest out."""
    vals = grid.values[np.isfinite(grid.values)]
    counts = grid.counts
    if counts:
        vals = vals[vals > 0]
    if vals.size == 0:
        return (0.0, 3.0) if counts else (0.0, 1.0)
    top = float(np.percentile(vals, 99))
    if counts:
        return 0.0, max(3.0, math.ceil(top))
    lo = float(vals.min())
    return lo, max(top, lo + 1.0)


def overlay_rgba(grid: HeatGrid, levels: tuple[float, float] | None = None) -> np.ndarray:
    """(ny, nx, 4) uint8, north row first (an image's order): transparent where a count is 0
    or a sensor cell is empty."""
    lo, hi = levels or heat_levels(grid)
    lut = heat_lut()
    v = grid.values
    show = np.isfinite(v) & ((v > 0) if grid.counts else True)
    idx = np.clip((np.nan_to_num(v, nan=lo) - lo) / (hi - lo) * (len(lut) - 1), 0,
                  len(lut) - 1).astype(int)
    rgba = lut[idx]
    rgba[~show] = 0
    return rgba[::-1].copy()


def png_bytes(rgba: np.ndarray) -> bytes:
    """An RGBA uint8 array as PNG (for a Leaflet ``imageOverlay`` data URL)."""
    h, w, _ = rgba.shape
    raw = b"".join(b"\x00" + rgba[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def overlay_png(grid: HeatGrid, levels: tuple[float, float] | None = None) -> bytes:
    """The grid as a PNG to lay over the map at ``grid.bounds()``."""
    return png_bytes(overlay_rgba(grid, levels))


def density(grid: HeatGrid, sigma_cells: float = 3.0) -> HeatGrid:
    """For the map: the counts spread by a Gaussian kernel (cases per cell, smoothed), so a
    city-wide view shows where cases gather rather than specks a few pixels wide. Totals are
    kept (the kernel sums to 1); faint spread under 5 % of the peak is left clear."""
    radius = max(1, int(round(3 * sigma_cells)))
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (x / sigma_cells) ** 2)
    kernel /= kernel.sum()
    v = np.nan_to_num(grid.values, nan=0.0)
    v = np.apply_along_axis(np.convolve, 0, v, kernel, mode="same")
    v = np.apply_along_axis(np.convolve, 1, v, kernel, mode="same")
    peak = float(v.max()) if v.size else 0.0
    if peak > 0:
        v[v < 0.05 * peak] = 0.0
    return dataclasses.replace(grid, values=v)

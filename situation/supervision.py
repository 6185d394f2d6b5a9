"""Supervision (监察, 巡查即监察): how well the city answers its cases, and where its patrols
went — on the situation's clock, from the stage history the store keeps.

numpy and pandas, no Qt. Every figure is over a **rolling window of the situation's clock**,
by default the last 24 hours: (now − 24 h, now]. A rolling day rather than "today since
midnight" so the figures do not collapse to nothing at 00:05 and are comparable at any hour;
closed cases stay in the situation 48 h, so a 24 h window always has them. A stage "happens"
at the ``ts`` of the first record this console saw the case in that stage
(``Situation.case_stages``); a flag appears at the first record carrying it
(``Situation.case_flags``).

The figures (for the city, or for one district by the case's ``district``):

- **open** (在办): cases held now whose status is neither ``closed`` nor ``rejected``.
- **overdue** (超期): open cases whose ``due_at`` (the current stage's deadline) is before now.
- **dispatched within 5 min** (5分钟派遣率): of the cases first dispatched in the window, the
  share whose dispatch came at most 5 minutes after registration (立案; the report's
  ``reported_at`` if the case was never seen registered before its dispatch). Only cases this
  console saw *before* their dispatch (in ``reported`` or ``registered``) are timed: for a case
  first seen already dispatched the dispatch time is not known.
- **dispatch → on scene** (到场用时): the mean minutes from first dispatch to first on scene, over
  the cases first on scene in the window (timed the same way).
- **due to close** (应结案数), after CJ/T 292 (城市市政综合监管信息系统 绩效评价) as the city
  reports use it — cases whose time to close has come: the cases closed in the window (结案数,
  early or late) plus the registered cases (立案: ``registered`` or later, not ``rejected``)
  open now and past their stage deadline, however long ago it passed (超期未结). A case not
  yet due and not closed is not owed yet; a case whose deadline was extended (延期, a new
  ``due_at``) is not owed until the new one.
- **结案率** (close rate) = closed in the window / due to close.
- **按期结案率** (on-time close rate) = closed on time / due to close, where *on time* is closed
  in the window and never seen past a stage deadline: no record of the case came after the
  ``due_at`` of the record before it (``Situation.case_late``). An extension granted after the
  deadline had passed does not make the case on time.
- **返工率** (rework rate) = of the cases due to close, the share that were sent back for
  rework (flag ``rework``) at least once. The city reports divide 返工数 by 应结案数; taking
  the numerator from the same cases keeps it a true share (≤ 100 %).

**Too few to say** (``min_cases``, default ``MIN_CASES`` = 5): a share or a mean over fewer
cases than that is no figure — None (``Kpis``) or NaN (``district_kpis``), like a ratio with
nothing to divide by — and is said "暂无 (1 件)" / "n/a (1 case)" with what it would have been
over (``figure_text``), never as a percentage: 0/1 is not "0 %", 3/3 is not "100 %". The
counts stay, so the panels can say how many. ``min_cases=1`` gives every ratio with something
to divide by (the arithmetic the tests work out by hand).

**Patrol coverage** (巡查覆盖率): the share of each district's 100 m unit-grid cells (万米单元网格;
cells whose centre lies inside the district) that some unit's track passed through in the last
N hours. Between two consecutive positions of a unit at most ``TRACK_GAP_MS`` apart the unit is
taken to have moved in a straight line and covers every cell the line crosses; across a longer
silence only the reported positions count. The cell masks of all 16 districts (3.2 M cells
city-wide at 100 m) are rasterised once per cell size by scanline and cached.
"""
from __future__ import annotations

import bisect
import itertools
import math
import weakref
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pandas as pd

from feeds.crs import GCJ02, check_frame
from feeds.districts import frame_of, load_districts
from feeds.schema import CLOSED_CASE_STATUSES
from situation.heat import UNIT_CELL_M, HeatGrid, empty_grid
from situation.tracks import Track

MIN_MS = 60_000
HOUR_MS = 60 * MIN_MS
WINDOW_MS = 24 * HOUR_MS          # the default window: the last 24 h of the situation's clock
DISPATCH_TARGET_MS = 5 * MIN_MS   # dispatched within 5 minutes
TRACK_GAP_MS = 5 * MIN_MS         # longer silences are not bridged by a straight line
COVERAGE_HOURS = (2, 8, 24)
CITY = "city"                     # the city row's key in the district tables
MIN_CASES = 5                     # fewer cases than this: no share, no mean ("暂无 (n 件)")

# Stages at or after registration (立案): the cases that can be owed a closing.
_REGISTERED_ON = ("registered", "dispatched", "on_scene", "resolved", "verified", "closed")

COUNT_COLUMNS = ("open", "overdue", "dispatched", "dispatched_fast", "on_scene", "scene_min_sum",
                 "due_to_close", "closed", "closed_on_time", "reworked")
RATE_COLUMNS = ("dispatch_fast_share", "dispatch_to_scene_min", "close_rate", "on_time_rate",
                "rework_rate")
# each figure: (rate column, its numerator column, the cases it is over)
RATES: dict[str, tuple[str, str, str]] = {
    "fast": ("dispatch_fast_share", "dispatched_fast", "dispatched"),
    "scene": ("dispatch_to_scene_min", "scene_min_sum", "on_scene"),
    "close": ("close_rate", "closed", "due_to_close"),
    "on_time": ("on_time_rate", "closed_on_time", "due_to_close"),
    "rework": ("rework_rate", "reworked", "due_to_close"),
}


def min_cases_or_default(min_cases: int | None) -> int:
    """``min_cases``, or the configured ``MIN_CASES`` (read at call time, so setting
    ``situation.supervision.MIN_CASES`` once at start-up configures every panel)."""
    n = MIN_CASES if min_cases is None else min_cases
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"min_cases must be a whole number ≥ 1: got {min_cases!r}")
    return int(n)


class Rate(NamedTuple):
    """A share (or a mean) and what it is made of: ``num`` over ``cases``. ``value`` is None
    when there are fewer than ``min_cases`` cases (or none)."""
    num: float
    cases: int
    min_cases: int = 1

    @property
    def enough(self) -> bool:
        return self.cases >= max(1, self.min_cases)

    @property
    def value(self) -> float | None:
        return self.num / self.cases if self.enough else None


# The words of a figure too thin to give (Qt-free: the wall, the handover and the exports).
_TOO_FEW = {"zh": ("暂无", "({n} 件)"), "en": ("n/a", "({n} {cases})")}


def too_few_parts(cases: int, lang: str = "zh") -> tuple[str, str]:
    """("暂无", "(1 件)") / ("n/a", "(1 case)"): the word, and the count it was over."""
    word, count = _TOO_FEW["zh" if lang == "zh" else "en"]
    return word, count.format(n=cases, cases="case" if cases == 1 else "cases")


def too_few_text(cases: int, lang: str = "zh") -> str:
    """"暂无 (1 件)" / "n/a (1 case)"."""
    return " ".join(too_few_parts(cases, lang))


def share_text(value: float | None) -> str:
    """0.75 → 75%, 0.9369 → 93.7%, 0.0002 → <0.1% (something is not nothing);
    None or NaN → —."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    p = value * 100
    if 0 < p < 0.05:
        return "<0.1%"
    return f"{p:.0f}%" if abs(p - round(p)) < 0.05 else f"{p:.1f}%"


def minutes_text(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.1f}"


def figure_text(rate: Rate, lang: str = "zh", minutes: bool = False) -> str:
    """A figure as the wall says it: "60%" (or "15.0" minutes), or "暂无 (1 件)" /
    "n/a (1 case)" over fewer than its ``min_cases`` cases — never a percentage of too few."""
    if not rate.enough:
        return too_few_text(rate.cases, lang)
    return minutes_text(rate.value) if minutes else share_text(rate.value)


@dataclass(frozen=True)
class Kpis:
    """The supervision figures over (start, end] of the situation's clock; see the module
    docstring for each definition. The shares and the mean are None over fewer than
    ``min_cases`` cases (``rate`` says how many there were)."""
    start: int
    end: int
    open: int = 0
    overdue: int = 0
    dispatched: int = 0            # first dispatched in the window (timed ones)
    dispatched_fast: int = 0       # … of them within 5 minutes
    on_scene: int = 0              # first on scene in the window (timed ones)
    scene_min_sum: float = 0.0     # their minutes from dispatch to on scene, summed
    due_to_close: int = 0          # 应结案数
    closed: int = 0                # 结案数 (closed in the window)
    closed_on_time: int = 0        # 按期结案数
    reworked: int = 0              # 返工数 (of the cases due to close)
    # fewer cases than this: no share, no mean (a setting, not a figure: not compared)
    min_cases: int = field(default=MIN_CASES, compare=False)

    def rate(self, key: str) -> Rate:
        """The figure ``key`` (one of ``RATES``: fast, scene, close, on_time, rework) with the
        count it is over."""
        _, num, den = RATES[key]
        return Rate(getattr(self, num), getattr(self, den), self.min_cases)

    @property
    def dispatch_fast_share(self) -> float | None:
        return self.rate("fast").value

    @property
    def dispatch_to_scene_min(self) -> float | None:
        return self.rate("scene").value

    @property
    def close_rate(self) -> float | None:
        return self.rate("close").value

    @property
    def on_time_rate(self) -> float | None:
        return self.rate("on_time").value

    @property
    def rework_rate(self) -> float | None:
        return self.rate("rework").value


# ---- cases ----------------------------------------------------------------------------------

def case_frame(situation) -> pd.DataFrame:
    """One row per case held: its district, status, deadline and stage history (ms epoch as
    float, NaN where never seen)."""
    stages_of, flags_of, late_of = (situation.case_stages, situation.case_flags,
                                    situation.case_late)
    nan = math.nan
    rows = []
    for cid, c in situation.cases.items():
        st = stages_of.get(cid, {})
        fl = flags_of.get(cid, {})
        rows.append((cid, c.district, c.status, c.status not in CLOSED_CASE_STATUSES,
                     nan if c.due_at is None else c.due_at, c.reported_at,
                     st.get("reported", nan), st.get("registered", nan),
                     st.get("dispatched", nan), st.get("on_scene", nan), st.get("closed", nan),
                     late_of.get(cid, nan), fl.get("rework", nan)))
    return pd.DataFrame(rows, columns=["case_id", "district", "status", "open", "due_at",
                                       "reported_at", "t_reported", "t_registered",
                                       "t_dispatched", "t_on_scene", "t_closed", "late",
                                       "rework"])


def indicators(frame: pd.DataFrame, now: int, start: int) -> pd.DataFrame:
    """Per case, what it adds to each count over the window (start, now] (``COUNT_COLUMNS``)."""
    f = frame
    out = pd.DataFrame(index=f.index)
    if f.empty:
        for col in COUNT_COLUMNS:
            out[col] = pd.Series(dtype=float)
        return out

    def within(col: str) -> pd.Series:
        return (f[col] > start) & (f[col] <= now)

    is_open = f["open"].astype(bool)
    overdue = is_open & f["due_at"].notna() & (f["due_at"] < now)
    # dispatch timing: only for cases seen before their dispatch
    disp = f["t_dispatched"]
    seen_before = ((f["t_reported"] <= disp) | (f["t_registered"] <= disp)).fillna(False)
    began = f["t_registered"].where(f["t_registered"] <= disp, f["reported_at"])
    dispatched = within("t_dispatched") & seen_before
    fast = dispatched & ((disp - began) <= DISPATCH_TARGET_MS)
    scene = within("t_on_scene") & seen_before & (f["t_on_scene"] >= disp)
    closed = within("t_closed")
    owed_open = overdue & f["status"].isin(_REGISTERED_ON)
    due = closed | owed_open
    out["open"] = is_open
    out["overdue"] = overdue
    out["dispatched"] = dispatched
    out["dispatched_fast"] = fast
    out["on_scene"] = scene
    out["scene_min_sum"] = ((f["t_on_scene"] - disp) / MIN_MS).where(scene, 0.0)
    out["due_to_close"] = due
    out["closed"] = closed
    out["closed_on_time"] = closed & f["late"].isna()
    out["reworked"] = due & f["rework"].notna()
    return out.astype(float)


def _window(situation, window_ms: int) -> tuple[int, int]:
    now = situation.now_ms()
    return now - int(window_ms), now


def summed(frame: pd.DataFrame, start: int, end: int, min_cases: int | None = None) -> Kpis:
    """The figures of the cases in ``frame`` (``case_frame``) over (start, end]."""
    sums = indicators(frame, end, start).sum()
    values = {col: (float(sums[col]) if col == "scene_min_sum" else int(round(sums[col])))
              for col in COUNT_COLUMNS}
    return Kpis(start, end, **values, min_cases=min_cases_or_default(min_cases))


def kpis(situation, window_ms: int = WINDOW_MS, district: str | None = None,
         min_cases: int | None = None) -> Kpis:
    """The figures for the city (``district=None``) or one district (adcode); no share or
    mean over fewer than ``min_cases`` cases (default ``MIN_CASES``)."""
    start, now = _window(situation, window_ms)
    frame = case_frame(situation)
    if district is not None:
        frame = frame[frame["district"] == district]
    return summed(frame, start, now, min_cases)


def _rates(table: pd.DataFrame, min_cases: int) -> pd.DataFrame:
    for col, num, den in RATES.values():
        table[col] = table[num] / table[den].where(table[den] >= max(1, min_cases))
    return table


def district_kpis(situation, window_ms: int = WINDOW_MS,
                  min_cases: int | None = None) -> pd.DataFrame:
    """The figures per district — 16 rows in ``load_districts()`` order, indexed by adcode —
    and a last row ``"city"`` for the whole city (which also holds cases with no known
    district). Counts are ints; the rates (``RATE_COLUMNS``) are floats, NaN where there is
    nothing to divide by or fewer than ``min_cases`` cases (default ``MIN_CASES``; in
    ``.attrs["min_cases"]``); shares are fractions (0.75, not 75)."""
    min_cases = min_cases_or_default(min_cases)
    start, now = _window(situation, window_ms)
    frame = case_frame(situation)
    ind = indicators(frame, now, start)
    codes = [d.adcode for d in load_districts()]
    per = ind.groupby(frame["district"]).sum() if len(ind) else ind
    table = per.reindex(codes, fill_value=0.0)
    table.loc[CITY] = ind.sum() if len(ind) else 0.0
    table = table[list(COUNT_COLUMNS)].astype(float)
    counts = [c for c in COUNT_COLUMNS if c != "scene_min_sum"]
    table[counts] = table[counts].round().astype(int)
    table.index.name = "district"
    table = _rates(table, min_cases)
    table.attrs["min_cases"] = min_cases
    return table


# ---- patrol coverage ------------------------------------------------------------------------

class CellMask(NamedTuple):
    """The districts on the city's grid: ``labels[iy, ix]`` is the index (in
    ``load_districts()`` order) of the district holding the cell's centre, 255 for none."""
    frame: HeatGrid          # the grid's geometry (its values are not used)
    labels: np.ndarray       # (ny, nx) uint8
    cells: np.ndarray        # cells per district, (16,)


OUTSIDE = 255


def district_cells(cell_m: int = UNIT_CELL_M, crs: str = GCJ02) -> CellMask:
    """``_district_cells`` of the city grid in frame ``crs`` (the situation's display frame,
    ``feeds.districts.frame_of``), cached per cell size and frame."""
    return _district_cells(cell_m, check_frame(crs))


@lru_cache(maxsize=4)
def _district_cells(cell_m: int, crs: str) -> CellMask:
    """Every district rasterised on the city grid of ``cell_m`` (cell centres inside the
    polygon, the even-odd rule of ``feeds.districts.points_in_rings`` with the same arithmetic):
    per row of cells, the polygon edges' crossings of the row's centre line, and each centre
    inside when an odd number of crossings lie east of it. A centre inside two districts (the
    source's shared borders overlap by a hair: one cell of 东城/西城) counts for the later one.
    About a quarter of a second for the whole city at 100 m; cached."""
    frame = empty_grid(cell_m, label=f"districts:{cell_m}m", crs=crs)  # zeros: not touched
    west, south, dlon, dlat, nx, ny = (frame.west, frame.south, frame.dlon, frame.dlat,
                                       frame.nx, frame.ny)
    labels = np.full((ny, nx), OUTSIDE, dtype=np.uint8)
    for k, d in enumerate(load_districts(crs=crs)):
        x0, y0, x1, y1 = d.bbox
        r0 = max(0, math.floor((y0 - south) / dlat) - 1)
        r1 = min(ny, math.ceil((y1 - south) / dlat) + 1)
        c0 = max(0, math.floor((x0 - west) / dlon) - 1)
        c1 = min(nx, math.ceil((x1 - west) / dlon) + 1)
        rows = np.arange(r0, r1)
        lat = south + (rows + 0.5) * dlat
        lon = west + (np.arange(c0, c1) + 0.5) * dlon
        crossings = []
        for ring in d.rings:
            xa, ya = ring[:, 0], ring[:, 1]
            xb, yb = np.roll(xa, 1), np.roll(ya, 1)
            keep = ya != yb
            xa, ya, xb, yb = xa[keep], ya[keep], xb[keep], yb[keep]
            la = lat[:, None]
            crosses = (ya > la) != (yb > la)
            with np.errstate(invalid="ignore", divide="ignore"):
                x_at = xa + (la - ya) * (xb - xa) / (yb - ya)
            crossings.append(np.where(crosses, x_at, np.inf))
        xs = np.sort(np.concatenate(crossings, axis=1), axis=1)
        n = np.isfinite(xs).sum(axis=1)
        for i, row in enumerate(rows):
            if n[i] == 0:
                continue
            east_of = n[i] - np.searchsorted(xs[i, :n[i]], lon, side="right")
            inside = (east_of % 2) == 1
            labels[row, c0:c1][inside] = k
    cells = np.bincount(labels[labels != OUTSIDE].ravel(), minlength=len(load_districts()))
    return CellMask(frame, labels, cells)


# situation → {unit id: (the track deque, its points as an (n, 3) array)}, brought up to date
# incrementally: tracks only grow at the end and shrink at the start, so a refresh converts
# only the new points.
_track_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _ts(point) -> int:
    return point[0]


def _as_array(points, n: int) -> np.ndarray:
    return np.fromiter(itertools.chain.from_iterable(points), float, 3 * n).reshape(n, 3)


def _points_from(track, k: int, n: int) -> np.ndarray:
    if isinstance(track, Track):                 # compact (situation.tracks): its columns
        return track.as_array(k, n)
    return _as_array(itertools.islice(track, k, n), n - k)


def track_array(situation, unit_id: str) -> np.ndarray:
    """A unit's whole track as an (n, 3) array of ts, lon, lat (cached)."""
    track = situation.tracks[unit_id]
    n = len(track)
    cache = _track_cache.setdefault(situation, {})
    held, arr = cache.get(unit_id, (None, None))
    if held is not track:
        arr = None
    if arr is not None and len(arr) and n:
        arr = arr[np.searchsorted(arr[:, 0], track[0][0], side="left"):]   # pruned points
        k = bisect.bisect_right(track, arr[-1, 0], key=_ts) if len(arr) else 0
        if len(arr) + (n - k) == n:
            if k < n:
                arr = np.concatenate([arr, _points_from(track, k, n)])
        else:
            arr = None               # not a plain append (same-ms points): convert it all
    if arr is None or len(arr) != n:
        arr = _points_from(track, 0, n)
    cache[unit_id] = (track, arr)
    return arr


def _track_arrays(situation, unit_id: str, start: int, now: int) -> np.ndarray | None:
    """(n, 3) ts, lon, lat of the part of a track that can touch (start, now]: the points in
    it, the one before and the one after (to clip the pieces crossing the window's edges)."""
    track = situation.tracks[unit_id]
    if len(track) == 0 or track[-1][0] <= start:     # every piece ends by the window's start
        return None
    arr = track_array(situation, unit_id)
    ts = arr[:, 0]
    first = max(0, int(np.searchsorted(ts, start, side="right")) - 1)
    last = int(np.searchsorted(ts, now, side="right")) + 1
    return arr[first:last]


def track_segments(situation, start: int, now: int, grid: HeatGrid):
    """The pieces of every unit's track inside (start, now], in the grid's cell coordinates:
    (unit index, ua, va, ub, vb). A piece between two positions at most ``TRACK_GAP_MS`` apart
    is that straight line clipped to the window by time; each position in the window is also
    a piece of its own (a = b)."""
    parts = []
    cache = _track_cache.get(situation)
    if cache:
        for gone in set(cache) - set(situation.tracks):
            del cache[gone]
    for i, unit_id in enumerate(list(situation.tracks)):
        arr = _track_arrays(situation, unit_id, start, now)
        if arr is None or len(arr) == 0:
            continue
        ts = arr[:, 0]
        u = (arr[:, 1] - grid.west) / grid.dlon
        v = (arr[:, 2] - grid.south) / grid.dlat
        point = (ts > start) & (ts <= now)
        segs = [(np.full(point.sum(), i), u[point], v[point], u[point], v[point])]
        if len(arr) > 1:
            ta, tb = ts[:-1], ts[1:]
            dt = tb - ta
            ok = (dt <= TRACK_GAP_MS) & (tb > start) & (ta < now)
            if ok.any():
                ta, dt = ta[ok], dt[ok]
                ua, va, ub, vb = u[:-1][ok], v[:-1][ok], u[1:][ok], v[1:][ok]
                with np.errstate(invalid="ignore", divide="ignore"):
                    fa = np.where(dt > 0, np.clip((start - ta) / dt, 0, 1), 0.0)
                    fb = np.where(dt > 0, np.clip((now - ta) / dt, 0, 1), 1.0)
                segs.append((np.full(len(ta), i), ua + fa * (ub - ua), va + fa * (vb - va),
                             ua + fb * (ub - ua), va + fb * (vb - va)))
        parts.extend(segs)
    if not parts:
        empty = np.zeros(0)
        return empty.astype(np.int64), empty, empty, empty, empty
    unit = np.concatenate([p[0] for p in parts]).astype(np.int64)
    return (unit, *(np.concatenate([p[k] for p in parts]) for k in range(1, 5)))


def _crossings(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(segment index, parameter t in (0, 1)) of every whole-number line a segment from a to b
    (one coordinate) crosses."""
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    k0 = np.floor(lo) + 1
    count = np.maximum(0, np.ceil(hi) - 1 - k0 + 1).astype(np.int64)
    seg = np.repeat(np.arange(len(a)), count)
    if seg.size == 0:
        return seg, np.zeros(0)
    offsets = np.cumsum(count) - count
    k = k0[seg] + (np.arange(seg.size) - offsets[seg])
    return seg, (k - a[seg]) / (b[seg] - a[seg])


def segment_cells(ua, va, ub, vb) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every cell each segment passes through (exactly: the segment is cut where it crosses a
    grid line, and each piece of positive length lies in one cell; a segment of length zero is
    its point's cell). Returns (segment index, iy, ix)."""
    n = len(ua)
    sx, tx = _crossings(ua, ub)
    sy, ty = _crossings(va, vb)
    seg = np.concatenate([np.arange(n), np.arange(n), sx, sy])
    t = np.concatenate([np.zeros(n), np.ones(n), tx, ty])
    order = np.lexsort((t, seg))
    seg, t = seg[order], t[order]
    piece = (seg[1:] == seg[:-1]) & (t[1:] > t[:-1])
    s = seg[:-1][piece]
    tm = (t[:-1][piece] + t[1:][piece]) / 2
    ix = np.floor(ua[s] + tm * (ub[s] - ua[s])).astype(np.int64)
    iy = np.floor(va[s] + tm * (vb[s] - va[s])).astype(np.int64)
    return s, iy, ix


@dataclass
class Coverage:
    hours: float
    start: int
    end: int
    share: pd.Series        # district adcode (16, load_districts order) and "city" → 0..1
    visited: pd.Series      # cells visited inside each district
    cells: pd.Series        # cells inside each district
    grid: HeatGrid          # distinct units that passed through each cell (city, cell_m)
    units: int              # units with a piece of track in the window


def patrol_coverage(situation, hours: float = 8, cell_m: int = UNIT_CELL_M) -> Coverage:
    """Per district, the share of its cells (centre inside the district) that any unit's track
    passed through in (now − hours, now] of the situation's clock; and the grid of how many
    distinct units passed through each cell, for drawing. Cells outside every district (a
    unit beyond the city line) are drawn but counted nowhere."""
    now = situation.now_ms()
    start = now - int(hours * HOUR_MS)
    mask = district_cells(cell_m, frame_of(situation))
    frame = mask.frame
    nx, ny = frame.nx, frame.ny
    unit, ua, va, ub, vb = track_segments(situation, start, now, frame)
    s, iy, ix = segment_cells(ua, va, ub, vb)
    on = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    flat = iy[on] * nx + ix[on]
    keys = np.unique(unit[s[on]] * (nx * ny) + flat)
    flat = keys % (nx * ny)
    visits = np.bincount(flat, minlength=nx * ny).reshape(ny, nx).astype(float)
    labels = mask.labels.ravel()[np.unique(flat)]
    nd = len(mask.cells)
    visited = np.bincount(labels[labels != OUTSIDE], minlength=nd)
    codes = [d.adcode for d in load_districts()]
    index = pd.Index(codes + [CITY], name="district")
    visited_s = pd.Series(np.append(visited, visited.sum()), index=index, name="visited")
    cells_s = pd.Series(np.append(mask.cells, mask.cells.sum()), index=index, name="cells")
    share = (visited_s / cells_s.where(cells_s > 0)).rename("share")
    grid = HeatGrid(visits, frame.west, frame.south, frame.dlon, frame.dlat, frame.cell_m,
                    float(len(np.unique(flat))), f"patrol:{hours:g}h")
    return Coverage(hours, start, now, share, visited_s, cells_s, grid,
                    int(len(np.unique(unit))) if unit.size else 0)

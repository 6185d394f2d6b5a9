"""Peak-hour duty (感知数据驱动的高峰勤务): demand per district and time slot, its forecast, and
the units it needs — the analysis under the peak-duty chart and ``main.py duty-plan``.

Demand
    Events (``situation.history``: cases and sensor-derived events) counted per district and
    slot of the local day (``DutyConfig.slot_minutes``, default 60, in ``DutyConfig.tz``,
    default Asia/Shanghai). Slots run on the local wall clock; a day with a daylight-saving
    change (not Beijing's) has one slot longer or shorter by an hour.

Forecast (:func:`profile`, :func:`forecast`)
    A seasonal profile: for each district, kind of day (weekday Mon–Fri / weekend Sat–Sun;
    public holidays are not known and count by their weekday) and slot, the mean count over
    all days of that kind held before the day forecast, quiet days included (every calendar
    day from the history's first day on counts in the denominator). Today's running counts
    then correct it: per district, the ratio of events seen so far today to events the profile
    expected by now, shrunk toward the city-wide ratio and that toward 1 by ``SHRINK_EVENTS``
    pseudo-events (few events → little correction), and bounded to
    [``RATIO_MIN``, ``RATIO_MAX``]. The forecast of every slot of the day is profile × ratio.
    ``holdout_mae`` measures it on held-out days (README and ``bench/analytics.py``).

Staffing (:func:`erlang_c`, :func:`prob_within`, :func:`units_needed`)
    As RAND's Patrol Car Allocation Model did for police patrol: each district and slot is an
    M/M/c queue with the forecast arrival rate λ (cases per hour) and the mean handling time S
    (dispatch → resolved of closed cases, :func:`mean_handling_min`). The service level with c
    units is the Erlang C share of cases that find a unit free within the target time t:
    ``1 − C(c, A)·exp(−(c − A)·t/S)`` with A = λ·S the offered load. Travel is not modelled
    apart: the target is the time until a unit takes the case; tighten ``target_minutes`` by
    the usual travel time if on-scene is meant literally. The units needed are the fewest c
    meeting ``target_share``; λ = 0 needs 0 units (the roster's own minimum cover decides
    then); a load no c ≤ ``max_units`` can meet is "needs more than max_units" (None, and −1
    in the plan). Erlang B is built up by its recursion, so there is no factorial, no division
    by zero and at most ``max_units`` steps.

The duty plan (:func:`duty_plan`) is one row per district and slot: ``district`` (adcode),
``slot_start`` (local ``YYYY-MM-DDTHH:MM``), ``forecast_cases`` (float, 2 decimals),
``units_needed`` (int; **−1 = needs more than max_units**), ``units_rostered`` (int) and
``shortfall`` (int ≥ 0; for −1 rows, the least it is short by: max_units + 1 − rostered).

Peaks (:func:`shortfall_windows`, :func:`peak_windows`)
    A **peak** is where a shortfall is concentrated: a run of short slots of a district at
    most ``DutyConfig.peak_max_hours`` long (default 3 h), "朝阳 17:00–20:00 缺 4 人". A
    shortfall held longer than that is no peak and is said as what it is — "顺义 全天缺 2 人"
    over the whole day, "怀柔 07:00–19:00 持续缺 1 人（12 小时）" otherwise — at the level it
    holds throughout (its least); where it rises above that level for at most the maximum,
    that rise is a peak of its own (the same split again for a rise that is itself long).

numpy and pandas, no Qt; no clock of its own: "now" is always passed in (the situation's).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from feeds.districts import by_adcode, load_districts
from situation.history import HistoryError

MINUTE_MS = 60_000
DAY_MIN = 1440
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
SHRINK_EVENTS = 10.0          # pseudo-events pulling today's ratio toward the city's and 1
RATIO_MIN, RATIO_MAX = 0.5, 2.0
HANDLING_CLIP_MIN = (1.0, 8 * 60.0)   # one case's dispatch→resolved, minutes, kept within
NEEDS_MORE = -1               # units_needed in the plan: more than cfg.max_units
PLAN_COLUMNS = ("district", "slot_start", "forecast_cases", "units_needed", "units_rostered",
                "shortfall")


# ---- configuration ------------------------------------------------------------------------

@dataclass
class DutyConfig:
    slot_minutes: int = 60
    tz: str = "Asia/Shanghai"
    target_share: float = 0.8          # of cases with a unit within target_minutes
    target_minutes: float = 15.0
    shifts: dict = field(default_factory=lambda: {"白班": (7, 19), "夜班": (19, 7)})
    max_units: int = 200
    handling_min: float = 30.0         # mean handling time when no closed case says otherwise
    peak_max_hours: float = 3.0        # a shortfall held longer is not a peak: "全天缺 2 人"

    def __post_init__(self):
        sm = self.slot_minutes
        if isinstance(sm, bool) or not isinstance(sm, (int, np.integer)) or sm <= 0 \
                or DAY_MIN % sm:
            raise ValueError(f"slot length must be a whole number of minutes that divides a day "
                             f"(1440), e.g. 15, 30, 60, 120: got {sm}")
        self.slot_minutes = int(sm)
        try:
            self.zone = ZoneInfo(str(self.tz))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone: {self.tz!r} (e.g. Asia/Shanghai)") from None
        share = float(self.target_share)
        if not 0 < share <= 1:
            raise ValueError(f"target share must be above 0 and at most 1 (e.g. 0.8 for 80 %): "
                             f"got {self.target_share}")
        self.target_share = share
        tm = float(self.target_minutes)
        if not (tm > 0 and math.isfinite(tm)):
            raise ValueError(f"target minutes must be a finite number above 0: got "
                             f"{self.target_minutes}")
        self.target_minutes = tm
        if int(self.max_units) < 1:
            raise ValueError(f"max units must be at least 1: got {self.max_units}")
        self.max_units = int(self.max_units)
        hm = float(self.handling_min)
        if not (hm > 0 and math.isfinite(hm)):
            raise ValueError(f"handling minutes must be a finite number above 0: got "
                             f"{self.handling_min}")
        self.handling_min = hm
        ph = float(self.peak_max_hours)
        if not (0 < ph <= 24 and math.isfinite(ph)):
            raise ValueError(f"peak max hours must be above 0 and at most 24 (e.g. 3): got "
                             f"{self.peak_max_hours}")
        self.peak_max_hours = ph
        for name, span in self.shifts.items():
            try:
                start, end = span
                ok = 0 <= float(start) <= 24 and 0 <= float(end) <= 24 and start != end
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"shift {name!r}: give (start hour, end hour) in 0–24, "
                                 f"not {span!r}")

    @property
    def slots(self) -> int:
        return DAY_MIN // self.slot_minutes

    @property
    def slot_ms(self) -> int:
        return self.slot_minutes * MINUTE_MS


def district_codes() -> tuple[str, ...]:
    return tuple(d.adcode for d in load_districts())


# ---- local time ---------------------------------------------------------------------------

def local_minutes(ts_ms, cfg: DutyConfig) -> np.ndarray:
    """Local wall-clock minutes since 1970-01-01 00:00 (in cfg.tz) of epoch milliseconds."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    if ts.size == 0:
        return ts.copy()
    idx = pd.DatetimeIndex(ts.astype("datetime64[ms]")).tz_localize("UTC").tz_convert(cfg.zone)
    return idx.tz_localize(None).to_numpy().astype("datetime64[m]").astype(np.int64)


def day_number(day: date) -> int:
    return day.toordinal() - EPOCH_ORDINAL


def day_of(number: int) -> date:
    return date.fromordinal(int(number) + EPOCH_ORDINAL)


def parse_day(day) -> date:
    if isinstance(day, datetime):
        return day.date()
    if isinstance(day, date):
        return day
    text = str(day).strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(f"not a day: {day!r} (use YYYY-MM-DD)")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a day: {day!r} (use YYYY-MM-DD)") from None


def day_start_ms(day, cfg: DutyConfig) -> int:
    """Epoch ms of local midnight starting ``day``."""
    d = parse_day(day)
    return int(datetime(d.year, d.month, d.day, tzinfo=cfg.zone).timestamp() * 1000)


def day_at(ts_ms: int, cfg: DutyConfig) -> date:
    """The local calendar day holding ``ts_ms``."""
    return day_of(int(local_minutes([ts_ms], cfg)[0]) // DAY_MIN)


def is_weekend(day_numbers) -> np.ndarray:
    """1970-01-01 was a Thursday (weekday 3)."""
    return ((np.asarray(day_numbers) + 3) % 7) >= 5


def _codes_of(district, index: dict[str, int]) -> np.ndarray:
    """District rows (−1: unknown) of an array of adcodes, or of row numbers already."""
    arr = np.asarray(district)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if isinstance(district, pd.Series) and isinstance(district.dtype, pd.CategoricalDtype) \
            and tuple(district.cat.categories) == tuple(index):
        return district.cat.codes.to_numpy(dtype=np.int64)
    if arr.size > 5000:
        cat = pd.Categorical(arr, categories=list(index))
        return cat.codes.astype(np.int64)
    get = index.get
    return np.fromiter((get(x, -1) for x in arr.tolist()), np.int64, arr.size)


# ---- today's counts, kept as records arrive --------------------------------------------------

class TodayCounts:
    """Events of one local day per district × slot, kept up to date batch by batch: ``add``
    costs O(batch) (a dict look-up per record and one ``bincount``), never a recount.
    Records of another day or an unknown district are counted in ``outside``. Slots are
    ``(ts − day_start) // slot``: exact on every day without a daylight-saving change."""

    def __init__(self, day_start: int, cfg: DutyConfig | None = None,
                 codes: tuple[str, ...] | None = None):
        self.cfg = cfg or DutyConfig()
        self.codes = tuple(codes or district_codes())
        self._index = {c: i for i, c in enumerate(self.codes)}
        self.reset(day_start)

    def reset(self, day_start: int) -> None:
        self.day_start = int(day_start)
        self.day_end = self.day_start + DAY_MIN * MINUTE_MS
        ns = self.cfg.slots
        self._flat = np.zeros(len(self.codes) * ns, dtype=np.int64)
        self.outside = 0
        self.latest: int | None = None

    @classmethod
    def from_events(cls, events: pd.DataFrame, day_start: int,
                    cfg: DutyConfig | None = None) -> "TodayCounts":
        tc = cls(day_start, cfg)
        tc.add(events)
        return tc

    def add(self, ts, district=None) -> int:
        """Count a batch: a DataFrame with ``ts`` and ``district``, or the two arrays
        (district as adcodes or row numbers). Returns how many were counted."""
        if isinstance(ts, pd.DataFrame):
            ts, district = ts["ts"], ts["district"]
        t = np.asarray(ts, dtype=np.int64)
        if t.size == 0:
            return 0
        rows = _codes_of(district, self._index)
        ns = self.cfg.slots
        slot = (t - self.day_start) // self.cfg.slot_ms
        ok = (rows >= 0) & (rows < len(self.codes)) & (slot >= 0) & (slot < ns)
        n = int(ok.sum())
        self.outside += t.size - n
        if n:
            self._flat += np.bincount(rows[ok] * ns + slot[ok], minlength=self._flat.size)
            top = int(t[ok].max())
            self.latest = top if self.latest is None else max(self.latest, top)
        return n

    @property
    def counts(self) -> np.ndarray:
        """(districts, slots) int64 — a view; do not write to it."""
        return self._flat.reshape(len(self.codes), self.cfg.slots)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.counts.copy(), index=pd.Index(self.codes, name="district"),
                            columns=pd.RangeIndex(self.cfg.slots, name="slot"))


# ---- seasonal profile ---------------------------------------------------------------------

@dataclass
class Profile:
    mean: np.ndarray              # (districts, 2, slots): mean count per day; [:, 0] weekday,
    #                               [:, 1] weekend
    days: np.ndarray              # (2,) days of each kind held (weekday, weekend)
    codes: tuple[str, ...]
    first_day: date | None        # the days held: first_day … last_day (None: no history)
    last_day: date | None
    slot_minutes: int
    events: int                   # events counted

    def expected(self, day) -> np.ndarray:
        """(districts, slots) mean per day for ``day``'s kind of day (the other kind when the
        history holds none of it; zeros with no history)."""
        kind = int(is_weekend(day_number(parse_day(day))))
        if self.days[kind] == 0:
            kind = 1 - kind
        return self.mean[:, kind, :].copy()

    def frame(self, weekend: bool = False) -> pd.DataFrame:
        return pd.DataFrame(self.mean[:, int(weekend), :],
                            index=pd.Index(self.codes, name="district"),
                            columns=pd.RangeIndex(self.mean.shape[2], name="slot"))


def _day_slot_row(events: pd.DataFrame, cfg: DutyConfig,
                  index: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    minutes = local_minutes(events["ts"].to_numpy(), cfg)
    day = minutes // DAY_MIN
    slot = (minutes % DAY_MIN) // cfg.slot_minutes
    rows = _codes_of(events["district"], index)
    return day, slot, rows


def profile(events: pd.DataFrame, cfg: DutyConfig | None = None, before=None) -> Profile:
    """The seasonal profile of ``events`` (only those on days before ``before``, a date, when
    given): per district × kind of day × slot, the mean count per day over the days held of
    that kind, from the first event's day to the last event's day (or the day before
    ``before``), quiet days included."""
    cfg = cfg or DutyConfig()
    codes = district_codes()
    index = {c: i for i, c in enumerate(codes)}
    nd, ns = len(codes), cfg.slots
    day, slot, rows = _day_slot_row(events, cfg, index)
    keep = rows >= 0
    if before is not None:
        keep &= day < day_number(parse_day(before))
    day, slot, rows = day[keep], slot[keep], rows[keep]
    if day.size == 0:
        return Profile(np.zeros((nd, 2, ns)), np.zeros(2, dtype=np.int64), codes, None, None,
                       cfg.slot_minutes, 0)
    d0, d1 = int(day.min()), int(day.max())
    span = np.arange(d0, d1 + 1)
    weekend_days = int(is_weekend(span).sum())
    days = np.array([span.size - weekend_days, weekend_days], dtype=np.int64)
    kind = is_weekend(day).astype(np.int64)
    counts = np.bincount((rows * 2 + kind) * ns + slot, minlength=nd * 2 * ns)
    counts = counts.reshape(nd, 2, ns).astype(float)
    mean = counts / np.maximum(days, 1)[None, :, None]
    return Profile(mean, days, codes, day_of(d0), day_of(d1), cfg.slot_minutes, int(day.size))


def _today_array(today, codes) -> np.ndarray | None:
    if today is None:
        return None
    if isinstance(today, TodayCounts):
        return today.counts.astype(float)
    if isinstance(today, pd.DataFrame):
        return today.reindex(index=list(codes), fill_value=0).to_numpy(dtype=float)
    return np.asarray(today, dtype=float)


def correction(expected: np.ndarray, today: np.ndarray, elapsed: np.ndarray) -> np.ndarray:
    """Per district: (seen + k·r_city) / (expected so far + k), r_city = (seen in the city + k)
    / (expected in the city + k), bounded to [RATIO_MIN, RATIO_MAX]. ``elapsed`` is each
    slot's elapsed fraction (1 past, 0 ahead, in between for the current one)."""
    k = SHRINK_EVENTS
    exp_d = (expected * elapsed[None, :]).sum(axis=1)
    seen_d = (today * (elapsed > 0)[None, :]).sum(axis=1)
    r_city = (seen_d.sum() + k) / (exp_d.sum() + k)
    ratio = (seen_d + k * r_city) / (exp_d + k)
    return np.clip(ratio, RATIO_MIN, RATIO_MAX)


def _ratio(prof: Profile, base: np.ndarray, day_start: int, cfg: DutyConfig, today,
           now_ms: int | None) -> np.ndarray:
    counts = _today_array(today, prof.codes)
    if counts is None or now_ms is None or now_ms <= day_start:
        return np.ones(len(prof.codes))
    pos = (now_ms - day_start) / cfg.slot_ms
    elapsed = np.clip(pos - np.arange(cfg.slots), 0.0, 1.0)
    return correction(base, counts, elapsed)


def forecast(prof: Profile, day_start: int, cfg: DutyConfig | None = None, today=None,
             now_ms: int | None = None) -> pd.DataFrame:
    """Expected events per district (rows: the 16 adcodes in ``load_districts`` order) and slot
    (columns 0 … slots−1) of the local day starting at ``day_start`` (ms): the profile for
    that kind of day, times today's correction when ``today`` (a :class:`TodayCounts`, a
    district × slot frame or array of counts so far) and ``now_ms`` within the day are given.
    For the next 24 hours across midnight, see :func:`next_hours`."""
    cfg = cfg or DutyConfig()
    base = prof.expected(day_at(day_start, cfg))
    base = base * _ratio(prof, base, day_start, cfg, today, now_ms)[:, None]
    return pd.DataFrame(base, index=pd.Index(prof.codes, name="district"),
                        columns=pd.RangeIndex(cfg.slots, name="slot"))


def next_hours(prof: Profile, now_ms: int, cfg: DutyConfig | None = None, today=None,
               hours: int = 24) -> pd.DataFrame:
    """The forecast from the slot holding ``now_ms`` on for ``hours``: districts × slot start
    (epoch ms). Today's slots and tomorrow's carry today's correction (how the day is running
    is the best word on the night after it)."""
    cfg = cfg or DutyConfig()
    today_day = day_at(now_ms, cfg)
    start = day_start_ms(today_day, cfg)
    nxt = day_start_ms(today_day + timedelta(days=1), cfg)
    base = prof.expected(today_day)
    ratio = _ratio(prof, base, start, cfg, today, now_ms)[:, None]
    values = np.concatenate([base * ratio,
                             prof.expected(today_day + timedelta(days=1)) * ratio], axis=1)
    ms = np.concatenate([start + np.arange(cfg.slots) * cfg.slot_ms,
                         nxt + np.arange(cfg.slots) * cfg.slot_ms])
    first = int((now_ms - start) // cfg.slot_ms)
    n = max(1, int(hours * 60 // cfg.slot_minutes))
    sel = slice(first, first + n)
    return pd.DataFrame(values[:, sel], index=pd.Index(prof.codes, name="district"),
                        columns=pd.Index(ms[sel], name="slot_start_ms"))


# ---- queueing -------------------------------------------------------------------------------

def _check_rates(arrival_per_h: float, service_min: float) -> tuple[float, float]:
    lam, s = float(arrival_per_h), float(service_min)
    if not (lam >= 0 and math.isfinite(lam)):
        raise ValueError(f"arrival rate must be a finite number ≥ 0: got {arrival_per_h}")
    if not (s > 0 and math.isfinite(s)):
        raise ValueError(f"handling time must be a finite number > 0: got {service_min}")
    return lam, s


def erlang_c(arrival_per_h: float, service_min: float, servers: int) -> float:
    """P(wait) in an M/M/c queue: arrivals λ per hour, mean handling ``service_min``, c
    servers. 1.0 when the load A = λ·S is at or above c (the queue grows without bound);
    0.0 with no arrivals."""
    lam, s = _check_rates(arrival_per_h, service_min)
    c = int(servers)
    a = lam * s / 60.0
    if lam == 0:
        return 0.0
    if c <= a:
        return 1.0
    b = 1.0
    for k in range(1, c + 1):              # Erlang B by its recursion: no factorials
        b = a * b / (k + a * b)
    return c * b / (c - a * (1.0 - b))


def prob_within(arrival_per_h: float, service_min: float, servers: int,
                travel_target_min: float) -> float:
    """Share of cases a unit takes within ``travel_target_min``: 1 − C·exp(−(c·μ − λ)·t)."""
    lam, s = _check_rates(arrival_per_h, service_min)
    if lam == 0:
        return 1.0
    a = lam * s / 60.0
    c = int(servers)
    if c <= a:
        return 0.0
    return 1.0 - erlang_c(lam, s, c) * math.exp(-(c - a) * float(travel_target_min) / s)


def units_needed(arrival_per_h: float, service_min: float,
                 cfg: DutyConfig | None = None) -> int | None:
    """The fewest units meeting ``cfg.target_share`` within ``cfg.target_minutes``; 0 with no
    arrivals; None when more than ``cfg.max_units`` would be needed. At most max_units
    steps (Erlang B built up one server at a time)."""
    cfg = cfg or DutyConfig()
    lam, s = _check_rates(arrival_per_h, service_min)
    if lam == 0:
        return 0
    a = lam * s / 60.0
    t = cfg.target_minutes
    b = 1.0
    for c in range(1, cfg.max_units + 1):
        b = a * b / (c + a * b)
        if c <= a:
            continue
        pw = c * b / (c - a * (1.0 - b))
        if 1.0 - pw * math.exp(-(c - a) * t / s) >= cfg.target_share:
            return c
    return None


def mean_handling_min(source=None, default: float = 30.0) -> float:
    """Mean minutes from dispatch to resolved over closed cases: from a situation's
    ``case_stages`` (first ts of each status; "closed" when "resolved" was not seen), or a
    DataFrame with ``dispatched_at`` and ``resolved_at`` (ms). Each case's time is kept
    within ``HANDLING_CLIP_MIN`` (a record left open over a weekend does not make the
    mean). ``default`` when there is none."""
    spans: list[float] = []
    if isinstance(source, pd.DataFrame):
        if {"dispatched_at", "resolved_at"} <= set(source.columns):
            d = pd.to_numeric(source["dispatched_at"], errors="coerce")
            r = pd.to_numeric(source["resolved_at"], errors="coerce")
            spans = ((r - d) / MINUTE_MS).dropna().tolist()
    elif source is not None:
        for stages in getattr(source, "case_stages", {}).values():
            start = stages.get("dispatched")
            end = stages.get("resolved", stages.get("closed"))
            if start is not None and end is not None and end >= start:
                spans.append((end - start) / MINUTE_MS)
    spans = [x for x in spans if x >= 0]
    if not spans:
        return float(default)
    lo, hi = HANDLING_CLIP_MIN
    return float(np.clip(np.asarray(spans, dtype=float), lo, hi).mean())


# ---- the roster -------------------------------------------------------------------------------

def load_roster(path, cfg: DutyConfig | None = None) -> pd.DataFrame:
    """A roster CSV ``unit_id,district,shift`` (shift: a name in ``cfg.shifts``). Bad rows
    (unknown district or shift) are skipped and counted in ``.attrs["skipped"]``, described in
    ``.attrs["problems"]``; :class:`HistoryError` when the file cannot be used at all."""
    cfg = cfg or DutyConfig()
    path = Path(path)
    if not path.exists():
        raise HistoryError(f"{path}: no such file")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise HistoryError(f"{path}: empty file (expected the columns unit_id,district,shift)") \
            from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HistoryError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") \
            from None
    except Exception as exc:
        raise HistoryError(f"{path}: cannot read as CSV: {str(exc).splitlines()[0]}") from None
    for col in ("unit_id", "district", "shift"):
        if col not in raw.columns:
            raise HistoryError(f"{path}: missing column {col!r} "
                               f"(expected unit_id,district,shift; found "
                               f"{','.join(raw.columns) or 'none'})")
    if len(raw) == 0:
        raise HistoryError(f"{path}: empty: no rows under the header")
    codes = set(district_codes())
    d_ok = raw["district"].str.strip().isin(codes).to_numpy()
    s_ok = raw["shift"].str.strip().isin(list(cfg.shifts)).to_numpy()
    problems = []
    for ok, col, what in ((d_ok, "district", "unknown district"),
                          (s_ok, "shift", f"unknown shift (known: {', '.join(cfg.shifts)})")):
        bad = np.flatnonzero(~ok)
        if bad.size:
            i = int(bad[0])
            problems.append(f"{path}: column {col!r}: {bad.size} row(s) {what}, first row "
                            f"{i + 1} (line {i + 2}): {raw[col].iloc[i]!r}")
    good = d_ok & s_ok
    if not good.any():
        raise HistoryError(f"no usable rows: {problems[0]}")
    out = pd.DataFrame({"unit_id": raw["unit_id"].str.strip()[good],
                        "district": raw["district"].str.strip()[good],
                        "shift": raw["shift"].str.strip()[good]}).reset_index(drop=True)
    out.attrs["skipped"] = int((~good).sum())
    out.attrs["problems"] = problems
    return out


def _on_shift(slot_start_min: np.ndarray, span) -> np.ndarray:
    start, end = float(span[0]) * 60, float(span[1]) * 60
    m = slot_start_min
    return (start <= m) & (m < end) if start < end else (m >= start) | (m < end)


def rostered(source, day_start: int, cfg: DutyConfig | None = None) -> pd.DataFrame:
    """Units on shift per district (rows) and slot (columns) of the day: a roster frame
    (``load_roster``) or a situation's units (their ``shift``; their district where they are,
    ``situation.locator.locate``). A unit is counted in a slot when its shift covers the slot's
    start; a unit with no or an unknown shift, or outside every district, is not counted."""
    cfg = cfg or DutyConfig()
    codes = district_codes()
    index = {c: i for i, c in enumerate(codes)}
    ns = cfg.slots
    out = np.zeros((len(codes), ns), dtype=np.int64)
    if source is None:
        pairs: list[tuple[str, str]] = []
    elif isinstance(source, pd.DataFrame):
        pairs = list(zip(source["district"], source["shift"]))
    else:
        pairs = []
        locate = source.locator.locate
        for u in source.units.values():
            if u.shift is None:
                continue
            pairs.append((locate(u.lon, u.lat), u.shift))
    starts = np.arange(ns) * cfg.slot_minutes
    cover = {name: _on_shift(starts, span).astype(np.int64)
             for name, span in cfg.shifts.items()}
    for district, shift in pairs:
        row = index.get(district)
        mask = cover.get(shift)
        if row is not None and mask is not None:
            out[row] += mask
    return pd.DataFrame(out, index=pd.Index(codes, name="district"),
                        columns=pd.RangeIndex(ns, name="slot"))


# ---- the duty plan ------------------------------------------------------------------------------

def history_days(events: pd.DataFrame, cfg: DutyConfig) -> tuple[date, date] | None:
    if len(events) == 0:
        return None
    ts = events["ts"].to_numpy()
    m = local_minutes(np.array([ts.min(), ts.max()]), cfg) // DAY_MIN
    return day_of(int(m[0])), day_of(int(m[1]))


def plan_days(events: pd.DataFrame, cfg: DutyConfig) -> tuple[date, date]:
    """The days a plan can be made for: from the day after the history's first day (one day
    of profile at least) to the day after its last (tomorrow, when it runs up to today)."""
    span = history_days(events, cfg)
    if span is None:
        raise ValueError("the history is empty: no day can be planned")
    return span[0] + timedelta(days=1), span[1] + timedelta(days=1)


def duty_plan(events: pd.DataFrame, day, cfg: DutyConfig | None = None, roster=None,
              situation=None, now_ms: int | None = None,
              handling_min: float | None = None) -> pd.DataFrame:
    """One row per district and slot of ``day`` (columns ``PLAN_COLUMNS``, see the module's
    doc). The profile is built from the events before ``day``; events on ``day`` up to
    ``now_ms`` correct it. Handling time: ``handling_min``, else the situation's closed cases,
    else ``cfg.handling_min``. Rostered: ``roster`` (frame of ``load_roster``), else the
    situation's units, else none. ValueError for a day the history cannot speak for."""
    cfg = cfg or DutyConfig()
    d = parse_day(day)
    lo, hi = plan_days(events, cfg)
    if not lo <= d <= hi:
        first, last = history_days(events, cfg)
        raise ValueError(f"day {d.isoformat()} is outside the history ({first.isoformat()} … "
                         f"{last.isoformat()}): plan a day from {lo.isoformat()} to "
                         f"{hi.isoformat()}")
    start = day_start_ms(d, cfg)
    prof = profile(events, cfg, before=d)
    today = None
    if now_ms is not None and now_ms > start:
        ts = events["ts"].to_numpy()
        on = (ts >= start) & (ts <= now_ms)
        today = TodayCounts(start, cfg)
        today.add(ts[on], events["district"].to_numpy()[on])
    fc = forecast(prof, start, cfg, today, now_ms)
    if handling_min is None:
        handling_min = (mean_handling_min(situation, cfg.handling_min) if situation is not None
                        else cfg.handling_min)
    ros = rostered(roster if roster is not None else situation, start, cfg)
    return _plan_frame(fc, ros, d, cfg, float(handling_min))


def _plan_frame(fc: pd.DataFrame, ros: pd.DataFrame, d: date, cfg: DutyConfig,
                handling_min: float) -> pd.DataFrame:
    codes = list(fc.index)
    ns = cfg.slots
    values = np.round(fc.to_numpy(dtype=float), 2)
    per_hour = fc.to_numpy(dtype=float) * (60.0 / cfg.slot_minutes)
    cache: dict[float, int | None] = {}
    needed = np.zeros(values.shape, dtype=np.int64)
    for idx, lam in np.ndenumerate(per_hour):
        key = round(float(lam), 6)
        if key not in cache:
            cache[key] = units_needed(key, handling_min, cfg)
        n = cache[key]
        needed[idx] = NEEDS_MORE if n is None else n
    have = ros.reindex(index=codes, fill_value=0).to_numpy(dtype=np.int64)
    want = np.where(needed == NEEDS_MORE, cfg.max_units + 1, needed)
    short = np.maximum(want - have, 0)
    stamps = [(datetime(d.year, d.month, d.day) + timedelta(minutes=k * cfg.slot_minutes))
              .strftime("%Y-%m-%dT%H:%M") for k in range(ns)]
    plan = pd.DataFrame({
        "district": np.repeat(np.asarray(codes, dtype=object), ns),
        "slot_start": np.tile(np.asarray(stamps, dtype=object), len(codes)),
        "forecast_cases": values.reshape(-1),
        "units_needed": needed.reshape(-1),
        "units_rostered": have.reshape(-1),
        "shortfall": short.reshape(-1).astype(np.int64),
    })
    plan.attrs.update(slot_minutes=cfg.slot_minutes, max_units=cfg.max_units,
                      handling_min=handling_min, day=d.isoformat())
    return plan


def write_plan(plan: pd.DataFrame, path) -> None:
    """The plan as CSV (UTF-8), written atomically: a temporary file beside it, then a
    rename."""
    import os
    import tempfile
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        plan.loc[:, list(PLAN_COLUMNS)].to_csv(tmp, index=False, encoding="utf-8",
                                               float_format="%.2f")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- peak windows ----------------------------------------------------------------------------

PEAK_MAX_HOURS = 3.0          # DutyConfig.peak_max_hours' default


@dataclass
class PeakWindow:
    district: str             # adcode
    start: str                # local "YYYY-MM-DDTHH:MM" of the first slot
    end: str                  # local "YYYY-MM-DDTHH:MM" where the last slot ends
    short_by: int             # a peak: the largest shortfall in it; held: the level held
    text: str                 # "朝阳 17:00–20:00 缺 4 人" / "Chaoyang 17:00–20:00 short by 4 units"
    slots: int = 1
    more_than: bool = False   # a slot needs more than max_units (short_by is a floor)
    kind: str = "peak"        # "peak" (≤ the maximum), "held" (longer), "all_day"
    hours: float = 0.0        # its length


class Shortfalls(NamedTuple):
    peaks: list               # PeakWindow "peak": at most max_hours, the most short first
    held: list                # PeakWindow "all_day" and "held": longer, the same order
    max_hours: float

    @property
    def worst(self) -> PeakWindow | None:
        """The window with the largest shortfall — the first peak, or the first held one
        when that is larger (a tie: the peak): what "最大缺口" names."""
        firsts = [ws[0] for ws in (self.peaks, self.held) if ws]
        return max(firsts, key=lambda w: (w.short_by, w.more_than), default=None)


def _window_text(kind: str, name: str, t0: str, t1: str, by: int, more: bool, hours: float,
                 lang: str) -> str:
    plus = "+" if more else ""
    units = f"unit{'s' if by != 1 or more else ''}"
    h = f"{hours:g}"
    if lang == "zh":
        return {"peak": f"{name} {t0}–{t1} 缺 {by}{plus} 人",
                "all_day": f"{name} 全天缺 {by}{plus} 人",
                "held": f"{name} {t0}–{t1} 持续缺 {by}{plus} 人（{h} 小时）"}[kind]
    return {"peak": f"{name} {t0}–{t1} short by {by}{plus} {units}",
            "all_day": f"{name} short by {by}{plus} {units} all day",
            "held": f"{name} short by {by}{plus} {units} {t0}–{t1} ({h} h)"}[kind]


def shortfall_windows(plan: pd.DataFrame, lang: str = "zh",
                      max_hours: float = PEAK_MAX_HOURS) -> Shortfalls:
    """Each district's runs of consecutive short slots, split into peaks (at most
    ``max_hours``) and shortfalls held longer (the whole day, or longer than the maximum) —
    see the module's doc. Each list the most short first (short_by; then the longer, so
    the more person-hours short; then start and district order): its first line is the
    largest shortfall in it."""
    names = by_adcode()
    if len(plan) == 0:
        return Shortfalls([], [], float(max_hours))
    per = plan.groupby("district", sort=False).size()
    ns = int(per.iloc[0])
    slot_min = DAY_MIN // ns
    order = {c: i for i, c in enumerate(district_codes())}
    found: dict[str, list[tuple[int, int, PeakWindow]]] = {"peak": [], "held": []}
    for district, rows in plan.groupby("district", sort=False):
        short = rows["shortfall"].to_numpy()
        need = rows["units_needed"].to_numpy()
        starts = rows["slot_start"].tolist()
        d = names.get(district)
        if lang == "zh":
            name = d.short_zh if d else district
        else:
            name = d.name_en.removesuffix(" District") if d else district

        def emit(kind: str, k: int, j: int, by: int, more: bool) -> None:
            first = datetime.strptime(starts[k], "%Y-%m-%dT%H:%M")
            last = datetime.strptime(starts[j], "%Y-%m-%dT%H:%M") + timedelta(minutes=slot_min)
            t0 = first.strftime("%H:%M")
            t1 = "24:00" if last.date() > first.date() and last.time() == datetime.min.time() \
                else last.strftime("%H:%M")
            hours = (j - k + 1) * slot_min / 60
            win = PeakWindow(district, starts[k], last.strftime("%Y-%m-%dT%H:%M"), by,
                             _window_text(kind, name, t0, t1, by, more, hours, lang),
                             j - k + 1, more, kind, hours)
            found["peak" if kind == "peak" else "held"].append(
                ((by, j - k + 1), order.get(district, 99) * 10_000 + k, win))

        def runs(lo: int, hi: int, above: int):
            """(first, last) of each run of slots in [lo, hi] short by more than ``above``."""
            k = lo
            while k <= hi:
                if short[k] <= above:
                    k += 1
                    continue
                j = k
                while j + 1 <= hi and short[j + 1] > above:
                    j += 1
                yield k, j
                k = j + 1

        def split(lo: int, hi: int) -> None:
            if (hi - lo + 1) * slot_min <= max_hours * 60:
                emit("peak", lo, hi, int(short[lo:hi + 1].max()),
                     bool((need[lo:hi + 1] == NEEDS_MORE).any()))
                return
            level = int(short[lo:hi + 1].min())            # held throughout the run
            kind = "all_day" if lo == 0 and hi == len(short) - 1 else "held"
            emit(kind, lo, hi, level, bool((need[lo:hi + 1] == NEEDS_MORE).all()))
            for k, j in runs(lo, hi, level):               # where it rises above that
                split(k, j)

        for k, j in runs(0, len(short) - 1, 0):
            split(k, j)
    ranked = {}
    for key, out in found.items():
        out.sort(key=lambda x: (-x[0][0], -x[0][1], x[2].start[11:], x[1]))
        ranked[key] = [w for _, _, w in out]
    return Shortfalls(ranked["peak"], ranked["held"], float(max_hours))


def peak_windows(plan: pd.DataFrame, lang: str = "zh", top: int | None = None,
                 max_hours: float = PEAK_MAX_HOURS) -> list[PeakWindow]:
    """The peaks only — runs of short slots at most ``max_hours`` long, or the rise of a
    longer shortfall above the level it holds (``shortfall_windows``) — the most short first
    (then the longer, then by start and district order)."""
    wins = shortfall_windows(plan, lang, max_hours).peaks
    return wins[:top] if top else wins


# ---- forecast error on held-out days ----------------------------------------------------------

def holdout_mae(events: pd.DataFrame, days_out: int = 7, cfg: DutyConfig | None = None,
                at_hour: float | None = None) -> float:
    """Mean absolute error per district × slot of the forecast over the last ``days_out``
    whole days of the history, each forecast from the days before it only. With ``at_hour``,
    the forecast is corrected by the day's events up to that local hour and judged on the
    slots after it (how well the rest of a day is called at that hour)."""
    cfg = cfg or DutyConfig()
    codes = district_codes()
    index = {c: i for i, c in enumerate(codes)}
    day, slot, rows = _day_slot_row(events, cfg, index)
    ok = rows >= 0
    day, slot, rows = day[ok], slot[ok], rows[ok]
    if day.size == 0:
        raise ValueError("the history is empty: nothing to hold out")
    first, last = int(day.min()), int(day.max())
    if last - first < days_out:
        raise ValueError(f"the history holds {last - first + 1} day(s): too few to hold out "
                         f"{days_out} and keep one to learn from")
    nd, ns = len(codes), cfg.slots
    errors = []
    for dn in range(last - days_out + 1, last + 1):
        d = day_of(dn)
        on = day == dn
        actual = np.bincount(rows[on] * ns + slot[on], minlength=nd * ns).reshape(nd, ns)
        prof = profile(events, cfg, before=d)
        start = day_start_ms(d, cfg)
        if at_hour is None:
            fc = forecast(prof, start, cfg).to_numpy()
            errors.append(np.abs(fc - actual).ravel())
        else:
            cut = int(at_hour * 60 // cfg.slot_minutes)
            seen = actual.copy()
            seen[:, cut:] = 0
            fc = forecast(prof, start, cfg, seen, start + int(at_hour * 3_600_000)).to_numpy()
            errors.append(np.abs(fc[:, cut:] - actual[:, cut:]).ravel())
    return float(np.concatenate(errors).mean())

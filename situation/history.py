"""Demand history for peak-hour duty (感知数据驱动的高峰勤务): the events one district had, and
when, from a history file or from what the situation has seen.

An event is one row ``(ts, district, category)``: ``ts`` milliseconds since the epoch (UTC),
``district`` an adcode of ``feeds.districts``, ``category`` the case category, or
``sensor.<kind>`` for a sensor-derived event (a vendor camera, crowd counter or parking sensor
crossing its alarm line, see ``SENSOR_EVENTS``).

History files are CSV or Parquet with the columns ``ts``, ``district``, ``category`` (and
optionally ``case_id``, ``lat``, ``lon``, which are read past). Rows that cannot be used
(a ``ts`` that is not a whole number of milliseconds, an unknown district, a missing
category) are counted and the first of each kind named; the rest are used. A file with nothing
usable raises :class:`HistoryError` naming the file, the column and the first bad row.

pandas and numpy, no Qt, no clock of its own.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from feeds.districts import load_districts
from situation.thresholds import THRESHOLDS

COLUMNS = ("ts", "district", "category")
OPTIONAL_COLUMNS = ("case_id", "lat", "lon")
# Sensor kinds whose alarm crossings are demand: (kind, metric) → category of the event.
SENSOR_EVENTS: dict[tuple[str, str], str] = {
    ("vendor", "detections"): "sensor.vendor",
    ("crowd", "density"): "sensor.crowd",
    ("parking", "illegal"): "sensor.parking",
}
# Plausible epoch milliseconds: 2000-01-01 … 2100-01-01 (a ts in seconds or µs is a bad row).
TS_MIN_MS = 946_684_800_000
TS_MAX_MS = 4_102_444_800_000


class HistoryError(ValueError):
    """A history (or roster) file that cannot be used; the message names the file, the column
    and the first bad row."""


@dataclass
class LoadedHistory:
    events: pd.DataFrame               # ts int64 (ms, UTC), district str, category str
    used: int
    skipped: int
    problems: list[str] = field(default_factory=list)


def empty_events() -> pd.DataFrame:
    return pd.DataFrame({"ts": pd.Series([], dtype="int64"),
                         "district": pd.Series([], dtype=object),
                         "category": pd.Series([], dtype=object)})


def _read(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if not path.exists():
        raise HistoryError(f"{path}: no such file")
    if path.is_dir():
        raise HistoryError(f"{path}: is a directory, not a history file")
    try:
        if suffix == ".parquet" or suffix == ".pq":
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ""):
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise HistoryError(f"{path}: empty file (expected the columns ts,district,category)") \
            from None
    except PermissionError as exc:
        raise HistoryError(f"{path}: cannot read: {exc.strerror}") from None
    except OSError as exc:
        raise HistoryError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise HistoryError(f"{path}: cannot read: not UTF-8 text") from None
    except Exception as exc:                          # pyarrow / parser errors: not our format
        kind = "Parquet" if suffix in (".parquet", ".pq") else "CSV"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HistoryError(f"{path}: cannot read as {kind}: {first}") from None
    raise HistoryError(f"{path}: unknown file type {suffix!r} (use .csv or .parquet)")


def _ts_ms(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(ms int64, ok bool) of a ts column of any dtype: whole milliseconds in a plausible
    range."""
    if pd.api.types.is_integer_dtype(col.dtype):
        ms = col.to_numpy(dtype=np.int64)
        ok = np.ones(len(ms), dtype=bool)
    else:
        num = pd.to_numeric(col.astype(str).str.strip() if col.dtype == object else col,
                            errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(num) & (np.floor(num) == num)
        ms = np.where(ok, num, 0).astype(np.int64)
    ok &= (ms >= TS_MIN_MS) & (ms < TS_MAX_MS)
    return ms, ok


def _row_label(path: Path, i: int) -> str:
    """A data row as a person finds it: CSV line numbers count the header as line 1."""
    if path.suffix.lower() == ".csv":
        return f"row {i + 1} (line {i + 2})"
    return f"row {i + 1}"


def load_history(path) -> LoadedHistory:
    """Read a history file (.csv or .parquet). Bad rows are counted in ``skipped`` and
    described in ``problems`` (the column and the first bad row of each kind); raises
    :class:`HistoryError` when nothing is usable: a missing, unreadable or empty file, a
    missing column, or no good row at all."""
    path = Path(path)
    raw = _read(path)
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        have = ",".join(map(str, raw.columns)) or "none"
        raise HistoryError(f"{path}: missing column {missing[0]!r} "
                           f"(expected ts,district,category; found {have})")
    if len(raw) == 0:
        raise HistoryError(f"{path}: empty: no rows under the header")
    n = len(raw)
    ms, ts_ok = _ts_ms(raw["ts"])
    codes = {d.adcode for d in load_districts()}
    district = raw["district"].astype(str).str.strip()
    # A Parquet file may hold adcodes as integers: 110105 reads as "110105" either way.
    district = district.str.replace(r"\.0$", "", regex=True)
    d_ok = district.isin(codes).to_numpy()
    category = raw["category"].astype(str).str.strip()
    c_ok = (category != "").to_numpy() & raw["category"].notna().to_numpy()
    problems: list[str] = []
    first_bad: str | None = None
    for ok, column, what, values in ((ts_ok, "ts", "not ms since the epoch", raw["ts"]),
                                     (d_ok, "district", "unknown district", raw["district"]),
                                     (c_ok, "category", "empty category", raw["category"])):
        bad = np.flatnonzero(~ok)
        if bad.size:
            i = int(bad[0])
            text = (f"{path}: column {column!r}: {bad.size} row(s) {what}, first "
                    f"{_row_label(path, i)}: {str(values.iloc[i])!r}")
            problems.append(text)
            first_bad = first_bad or text
    good = ts_ok & d_ok & c_ok
    used = int(good.sum())
    if used == 0:
        raise HistoryError(f"no usable rows: {first_bad}")
    events = pd.DataFrame({"ts": ms[good],
                           "district": district.to_numpy()[good].astype(object),
                           "category": category.to_numpy()[good].astype(object)})
    events = events.sort_values("ts", kind="stable").reset_index(drop=True)
    return LoadedHistory(events, used, n - used, problems)


def write_history(events: pd.DataFrame, path) -> None:
    """Write events as .parquet or .csv (by the suffix), atomically (a temporary file in the
    same folder, then a rename): a reader never sees half a file."""
    path = Path(path)
    cols = [c for c in (*COLUMNS, *OPTIONAL_COLUMNS) if c in events.columns]
    frame = events[cols]
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def events_from_situation(situation) -> pd.DataFrame:
    """The events the situation has seen: every case first sighting (the report log, plus the
    cases held that it no longer has), and the sensor-derived events of the readings it keeps —
    each time a vendor, crowd or parking sensor's reading **crosses** its alarm line (a
    reading at or over it after one under it, or the first reading held), not every reading
    while it stays over, so a vendor standing for an hour is one event, not sixty.
    Cases with no known district are left out."""
    codes = {d.adcode for d in load_districts()}
    ts: list[int] = []
    dist: list[str] = []
    cat: list[str] = []
    log = situation.reports
    for r in log:
        if r.district in codes:
            ts.append(r.reported_at)
            dist.append(r.district)
            cat.append(r.category)
    for cid, c in situation.cases.items():
        if cid not in log and c.district in codes:
            ts.append(c.reported_at)
            dist.append(c.district)
            cat.append(c.category)
    for sid, hist in situation.sensor_history.items():
        sensor = situation.sensors.get(sid)
        if sensor is None:
            continue
        rules = [(m, cat_name) for (k, m), cat_name in SENSOR_EVENTS.items() if k == sensor.kind]
        if not rules:
            continue
        district = sensor.district
        if district is None:
            district = situation.locator.locate(sensor.lon, sensor.lat)
        if district not in codes:
            continue
        for metric, cat_name in rules:
            alarm = THRESHOLDS[(sensor.kind, metric)][1]
            was_over = False
            for at, metrics in hist:
                value = metrics.get(metric)
                over = value is not None and value >= alarm
                if over and not was_over:
                    ts.append(at)
                    dist.append(district)
                    cat.append(cat_name)
                was_over = over
    frame = pd.DataFrame({"ts": np.asarray(ts, dtype=np.int64),
                          "district": pd.Series(dist, dtype=object),
                          "category": pd.Series(cat, dtype=object)})
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)

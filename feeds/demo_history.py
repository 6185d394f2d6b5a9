"""Weeks of the demo city's demand history, fast: the events drawn straight from the city's
rhythms (``feeds.simulator``) per district × hour with numpy, deterministic per seed — the
peak-duty chart's history when no real one is loaded, and ``python -m feeds.simulator
--history-days N``. Split from ``feeds.simulator``; no Qt.
"""
from __future__ import annotations

import numpy as np

from feeds.districts import load_districts
from feeds.simulator import (CITY_UTC_OFFSET_MS, CORE, DAY, HOUR, REPORTED,  # noqa: F401
                             bump, traffic)

# ---- weeks of history, fast ---------------------------------------------------------------
# Running DemoCity costs ~16 s of CPU per simulated day, too slow for weeks of history. The
# history generator below draws the events straight from the city's rhythms instead — the
# same REPORTED weights, report activity curve and district weights (CORE), and the sensor
# curves of ``DemoCity._read`` for the alarms that count as demand — per district × hour with
# numpy, deterministic per seed. It is the demo city's rhythm, not a replay of a DemoCity run.
# Weekends differ: the morning commute fades, the day starts later and the evening (vending,
# crowds, parking) runs busier and later.
HISTORY_SENSOR_RATES = {          # city-wide alarm crossings per hour at the curve's top
    "sensor.vendor": 7.0, "sensor.crowd": 3.0, "sensor.parking": 5.0,
    "part.city_appearance.waste_bin": 2.0, "part.public_facility.manhole": 0.6,
}


def _report_activity(hour: float, weekend: bool) -> float:
    if weekend:
        return 0.15 + 0.85 * (0.8 * bump(hour, 11.5, 3.0) + 1.15 * bump(hour, 19.5, 2.4)) / 1.2
    return 0.15 + 0.85 * (bump(hour, 10, 2.5) + bump(hour, 19, 2.2)) / 1.2


def _sensor_curve(category: str, hour: float, weekend: bool) -> float:
    if category == "sensor.vendor":
        return bump(hour, 20.5 if weekend else 20.0, 1.8 if weekend else 1.6) * (1.4 if weekend else 1.0)
    if category == "sensor.crowd":
        if weekend:
            return 0.9 * bump(hour, 14.0, 3.0) + 0.6 * bump(hour, 19.5, 1.8)
        return bump(hour, 8.2, 0.8) + bump(hour, 18.2, 1.0) + 0.3 * bump(hour, 11, 2.5)
    if category == "sensor.parking":
        busy = 1.5 * bump(hour, 12.5, 2) + 2.5 * bump(hour, 19.5, 1.5)
        return busy / 2.5 * (1.2 if weekend else 1.0)
    if category == "part.city_appearance.waste_bin":
        return traffic(hour)
    return 1.0                                          # manholes fail at any hour


def history_events(days: int, seed: int = 1, end_ms: int | None = None):
    """``days`` whole local days of demand history ending at the Beijing midnight at or before
    ``end_ms`` (default: the epoch's ms of ``DemoCity``'s default start): a DataFrame of
    ``ts`` (ms, UTC), ``district`` (adcode), ``category``, ``case_id``, sorted by ts."""
    import pandas as pd

    if days <= 0:
        raise ValueError(f"days must be at least 1: got {days}")
    rng = np.random.default_rng(seed)
    end = 1_795_000_000_000 if end_ms is None else int(end_ms)
    end_mid = (end + CITY_UTC_OFFSET_MS) // DAY * DAY - CITY_UTC_OFFSET_MS
    first_mid = end_mid - days * DAY
    codes = [d.adcode for d in load_districts()]
    w = np.array([CORE.get(c, 0.6) for c in codes])
    w = w / w.sum()
    weights_day = np.array([day for _, day, _ in REPORTED])
    weights_eve = np.array([eve for _, _, eve in REPORTED])
    cats = [c for c, _, _ in REPORTED] + list(HISTORY_SENSOR_RATES)
    nd, nc = len(codes), len(cats)
    # rate[weekend, hour, category]: city-wide events per hour
    rate = np.zeros((2, 24, nc))
    for we in (0, 1):
        for h in range(24):
            hour = h + 0.5
            per_hour = 34.0 * _report_activity(hour, bool(we))
            mix = weights_eve if (18 <= hour or hour < 6) else weights_day
            rate[we, h, :len(REPORTED)] = per_hour * mix / mix.sum()
            for k, (cat, top) in enumerate(HISTORY_SENSOR_RATES.items()):
                rate[we, h, len(REPORTED) + k] = top * _sensor_curve(cat, hour, bool(we))
    day_index = np.arange(days)
    local_day = (first_mid + CITY_UTC_OFFSET_MS) // DAY + day_index
    weekend = ((local_day + 3) % 7 >= 5).astype(int)          # 1970-01-01 was a Thursday
    mood = rng.gamma(25.0, 1 / 25.0, size=(days, nd))          # a busy or quiet day, ±20 %
    lam = (rate[weekend][:, :, None, :] * w[None, None, :, None]
           * mood[:, None, :, None])                          # (days, 24, districts, cats)
    n = rng.poisson(lam)
    flat = n.ravel()
    idx = np.repeat(np.arange(flat.size), flat)
    di, hi, ri, ci = np.unravel_index(idx, n.shape)
    ts = first_mid + di * DAY + hi * HOUR + rng.integers(0, HOUR, size=idx.size)
    order = np.argsort(ts, kind="stable")
    ts, ri, ci = ts[order], ri[order], ci[order]
    frame = pd.DataFrame({
        "ts": ts.astype(np.int64),
        "district": np.asarray(codes, dtype=object)[ri],
        "category": np.asarray(cats, dtype=object)[ci],
        "case_id": [f"H{seed}-{i:07d}" for i in range(ts.size)],
    })
    return frame


def write_history(days: int, out, seed: int = 1, end_ms: int | None = None) -> int:
    """Write ``history_events`` to ``out`` (.parquet or .csv), atomically; the rows written."""
    from situation.history import write_history as write_events

    events = history_events(days, seed, end_ms)
    write_events(events, out)
    return len(events)

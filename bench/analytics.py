"""Peak-duty analytics timings (prints figures; never passes or fails on time).

    python bench/analytics.py

- a history of 1 million events → profile and forecast for the 16 districts (aim ≤ 1 s);
- TodayCounts.add of 1,000 live records (aim ≤ 5 ms): p50 / p99 over many batches;
- the forecast's hold-out MAE on 28 days of the demo city's history (last 7 days held out).
"""
from __future__ import annotations

import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from feeds.districts import load_districts  # noqa: E402
from feeds.demo_history import history_events  # noqa: E402
from situation.peakduty import (  # noqa: E402
    DutyConfig, TodayCounts, day_start_ms, duty_plan, forecast, holdout_mae, profile,
)


def main() -> None:
    cfg = DutyConfig()
    codes = [d.adcode for d in load_districts()]
    rng = np.random.default_rng(7)
    plan_day = date(2026, 11, 29)
    end = day_start_ms(plan_day, cfg)
    n = 1_000_000
    events = pd.DataFrame({
        "ts": np.sort(rng.integers(end - 56 * 86_400_000, end, n)).astype(np.int64),
        "district": np.asarray(codes, dtype=object)[rng.integers(0, 16, n)],
        "category": "event.bench",
    })
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        prof = profile(events, cfg, before=plan_day)
        forecast(prof, end, cfg)
        times.append(time.perf_counter() - t0)
    print(f"profile + forecast, {n:,} events, 16 districts × {cfg.slots} slots: "
          f"best {min(times) * 1000:.0f} ms, median {np.median(times) * 1000:.0f} ms "
          f"(aim ≤ 1000 ms)")
    t0 = time.perf_counter()
    duty_plan(events, plan_day, cfg)
    print(f"whole duty plan (profile, forecast, Erlang C for 384 cells), {n:,} events: "
          f"{(time.perf_counter() - t0) * 1000:.0f} ms")

    today = TodayCounts(end, cfg)
    batches = 2000
    ts = end + rng.integers(0, 86_400_000, (batches, 1000))
    dist = np.asarray(codes, dtype=object)[rng.integers(0, 16, (batches, 1000))]
    lat = []
    for k in range(batches):
        t0 = time.perf_counter()
        today.add(ts[k], dist[k])
        lat.append(time.perf_counter() - t0)
    lat_ms = np.array(lat) * 1000
    print(f"TodayCounts.add, batches of 1,000 records ({batches} batches): "
          f"p50 {np.percentile(lat_ms, 50):.3f} ms, p99 {np.percentile(lat_ms, 99):.3f} ms "
          f"(aim ≤ 5 ms)")
    frame = pd.DataFrame({"ts": ts[0], "district": dist[0]})
    lat = []
    for _ in range(500):
        t0 = time.perf_counter()
        today.add(frame)
        lat.append(time.perf_counter() - t0)
    lat_ms = np.array(lat) * 1000
    print(f"TodayCounts.add, a DataFrame of 1,000 records: p50 "
          f"{np.percentile(lat_ms, 50):.3f} ms, p99 {np.percentile(lat_ms, 99):.3f} ms")

    demo = history_events(28, seed=1, end_ms=end)
    mean_cell = len(demo) / 28 / (16 * cfg.slots)
    for at in (None, 12):
        mae = holdout_mae(demo, 7, cfg, at_hour=at)
        when = "before the day" if at is None else f"at {at}:00, on the slots after"
        print(f"hold-out MAE, demo history 28 days (last 7 held out), forecast {when}: "
              f"{mae:.3f} events per district-slot (mean count {mean_cell:.3f})")


if __name__ == "__main__":
    main()

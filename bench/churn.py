"""Memory under churn: 500 new cases a second, each closed a minute later, for N minutes of the
situation's clock (default 5), applied as the console applies a drain (10 batches a second).

Prints the process's RSS and the tables' sizes each minute, and the limit that holds each table
(``situation.limits``): memory must stop growing once the caps are full.

    python bench/churn.py [--minutes 5] [--rate 500]

Runs as fast as the machine applies records: the clock is the situation's own (a ManualClock),
so five minutes of churn take less than five minutes here.
"""
from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec  # noqa: E402

from feeds.batch import Batch  # noqa: E402
from feeds.schema import Case  # noqa: E402
from situation.clock import ManualClock  # noqa: E402
from situation.store import Situation  # noqa: E402

T0 = 1_800_000_000_000


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def case(i: int, ts: int, status: str) -> Case:
    return Case(v=1, src="churn", seq=i, ts=ts, case_id=f"CH-{i:09d}", status=status,
                category="event.street_order.vending", title="占道经营",
                description=f"市民反映：第 {i} 号路口有占道经营，影响通行，请尽快处理。",
                lat=39.9 + (i % 997) * 1e-4, lon=116.3 + (i % 991) * 1e-4, source="citizen",
                priority=2, reported_at=ts, due_at=ts + 3_600_000)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--rate", type=int, default=500, help="new cases a second")
    args = p.parse_args()
    clock = ManualClock(T0)
    s = Situation(clock)
    lim = s.limits
    print(f"churn: {args.rate} new cases/s, each closed 60 s later, {args.minutes:g} min of "
          f"the situation's clock; limits: closed cases kept {lim.max_closed_cases}, report "
          f"log {lim.max_reports}, cases {lim.max_cases}")
    print(f"{'min':>4} {'RSS MB':>8} {'cases':>8} {'open':>7} {'reports':>8} {'stages':>8} "
          f"{'records/s':>10}")
    n = 0
    step_ms = 100                                    # a drain every 100 ms
    per_step = max(1, args.rate * step_ms // 1000)
    started = time.perf_counter()
    applied = 0
    steps = int(args.minutes * 60_000 / step_ms)
    gc.collect()
    print(f"{0:>4} {rss_mb():>8.1f} {0:>8} {0:>7} {0:>8} {0:>8} {'':>10}")
    for k in range(1, steps + 1):
        now = clock.now_ms()
        recs = [case(n + j, now, "registered") for j in range(per_step)]
        closing = n - 60_000 // step_ms * per_step          # opened a minute ago
        if closing >= 0:
            recs += [msgspec.structs.replace(case(closing + j, now, "closed"), seq=0)
                     for j in range(per_step)]
        n += per_step
        s.apply(Batch(records=recs))
        applied += len(recs)
        clock.advance(step_ms)
        if k % (60_000 // step_ms) == 0:
            gc.collect()
            took = time.perf_counter() - started
            print(f"{k * step_ms // 60_000:>4} {rss_mb():>8.1f} {len(s.cases):>8} "
                  f"{len(s.open_cases()):>7} {len(s.reports):>8} {len(s.case_stages):>8} "
                  f"{applied / took:>10.0f}")


if __name__ == "__main__":
    main()

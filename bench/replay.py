"""Replay benchmark: a recording of a million messages — its size, how fast it opens, how fast
it replays into the situation at full speed, and how long a seek takes.

    .venv/bin/python -m bench.replay                      # 1,000,000 demo-city messages
    .venv/bin/python -m bench.replay --messages 200000 --single

The demo city's messages are batches (one per topic per second: ~3 records a message);
``--single`` records one record per message instead, the worst case for a replay.
Prints figures; asserts nothing about time.
"""
from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path

from feeds.recording import RecordingWriter, read_recording
from feeds.schema import frames
from feeds.simulator import DemoCity
from situation.replay import Replay, ReplayClock
from situation.store import Situation

T0 = 1_795_483_800_000          # 2026-11-24 09:30 Beijing time


def write_demo(path: Path, messages: int, single: bool) -> tuple[int, int]:
    """(messages, records) of the demo city, written as a console at 1× would record it."""
    city = DemoCity(seed=1, start_ms=T0)
    writer = RecordingWriter(path)
    t, records = T0, 0
    while writer.messages < messages:
        t += 1_000
        for _topic, recs in city.step(t):
            for chunk in ([[r] for r in recs] if single else [recs]):
                if chunk and writer.messages < messages:
                    writer.write(frames(chunk if len(chunk) > 1 else chunk[0]), t, chunk[0].ts)
                    records += len(chunk)
        if writer.messages < messages:
            writer.write(frames(city.heartbeat(t)), t, t)
            records += 1
    writer.close()
    return writer.messages, records


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--single", action="store_true", help="one record per message")
    ap.add_argument("--seeks", type=int, default=20)
    ap.add_argument("--step-s", type=int, default=60,
                    help="replay seconds per advance() in the full-speed run (64x at 20 Hz "
                         "drains is 3 s)")
    ap.add_argument("--keep", metavar="FILE", help="keep the recording here")
    args = ap.parse_args()
    path = Path(args.keep) if args.keep else Path(tempfile.mkdtemp()) / "bench.mcap"

    started = time.perf_counter()
    n, records = write_demo(path, args.messages, args.single)
    wrote = time.perf_counter() - started
    size = path.stat().st_size
    print(f"recording: {n:,} messages, {records:,} records, {size / 1e6:.1f} MB "
          f"({size / n * 1e6 / 1e6:.1f} MB per million messages, {size / n:.0f} B a message), "
          f"written in {wrote:.1f} s ({n / wrote:,.0f} msg/s incl. the simulation)")

    started = time.perf_counter()
    rec = read_recording(path)
    opened = time.perf_counter() - started
    span_h = (rec.end_ms - rec.start_ms) / 3_600_000
    print(f"open (read + index in memory): {opened:.2f} s, {span_h:.1f} h of the city, "
          f"RSS {rss_mb():.0f} MB")

    clock = ReplayClock(rec.start_ms, 1.0)
    clock.pause(True)
    situation = Situation(clock)
    replay = Replay(rec, situation)
    started = time.perf_counter()
    t = rec.start_ms                # as play does: advance() a step of replay time at a time
    while t < rec.end_ms:
        t += args.step_s * 1000
        clock.set(t)
        replay.advance()
    full = time.perf_counter() - started
    print(f"replay at full speed (advance() every {args.step_s} s of replay time): "
          f"{situation.records_accepted:,} records in {full:.2f} s = "
          f"{situation.records_accepted / full:,.0f} records/s ({n / full:,.0f} msg/s), "
          f"{len(replay._keyframes)} keyframes taken on the way, RSS {rss_mb():.0f} MB")

    rng = random.Random(1)
    times = []
    for _ in range(args.seeks):
        t = rng.randint(rec.start_ms, rec.end_ms)
        started = time.perf_counter()
        replay.seek(t)
        times.append(time.perf_counter() - started)
    times.sort()
    print(f"seek to a random point ({args.seeks}×): median {statistics.median(times) * 1000:.0f} "
          f"ms, worst {times[-1] * 1000:.0f} ms")
    if not args.keep:
        os.remove(path)


if __name__ == "__main__":
    main()

"""A recorded stretch of the demo city, made without waiting for it: for replays and training.

    python -m feeds.demo_day --hours 8 --start 2026-11-24T07:00 --out day.mcap

The demo city's fixed-step model runs as fast as the CPU allows; every message goes into the
recording with the city's time as its receive time, as a console watching it live at 1× would
have recorded it, heartbeats once a second included.
"""
from __future__ import annotations

import sys
import time

from feeds.recording import RecordingWriter
from feeds.schema import frames
from feeds.simulator import DemoCity

STEP_MS = 1_000                  # one tick, one heartbeat


def write_demo_day(path, hours: float, seed: int = 1, start_ms: int = 1_795_000_000_000) -> int:
    """Write ``hours`` of the demo city from ``start_ms``; the number of messages."""
    city = DemoCity(seed=seed, start_ms=start_ms)
    writer = RecordingWriter(path, metadata={"source": "feeds.demo_day", "seed": str(seed),
                                             "start_ms": str(start_ms), "hours": str(hours)})
    try:
        t = start_ms
        end = start_ms + int(hours * 3_600_000)
        joined = True                 # the recording console joined at the start: a snapshot
        while t < end:
            t += STEP_MS
            batches = city.snapshot() if joined else []
            joined = False
            batches += city.step(t)
            sent = 0
            for topic, recs in batches:
                if recs:
                    writer.write(frames(recs), t, recs[0].ts)
                    sent += len(recs)
            writer.write(frames(city.heartbeat(t, float(sent))), t, t)
    except BaseException:
        writer.abandon()
        raise
    writer.close()
    return writer.messages


def main(argv: list[str] | None = None) -> int:
    from feeds.args import OneLineParser, positive_float, time_ms
    p = OneLineParser(prog="feeds.demo_day",
                      description="Record a stretch of the demo city as MCAP, without waiting.")
    p.add_argument("--out", required=True, metavar="FILE.mcap")
    p.add_argument("--hours", type=positive_float, default=2.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start", type=time_ms, default=None,
                   help="city start time (ISO 8601, Beijing time if no zone; or ms); "
                        "default: 07:00 Beijing time today")
    args = p.parse_args(argv)
    start = args.start
    if start is None:
        day = (time.time_ns() // 1_000_000 + 8 * 3_600_000) // 86_400_000 * 86_400_000
        start = day - 8 * 3_600_000 + 7 * 3_600_000            # 07:00 in Beijing
    try:
        n = write_demo_day(args.out, args.hours, args.seed, start)
    except OSError as exc:
        p.error(f"cannot write {args.out}: {exc.strerror or exc}")
    print(f"{n} messages, {args.hours:g} h of the demo city, to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

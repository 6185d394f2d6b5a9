"""Replay benchmark: a week of the demo city — how fast it opens, replays and seeks, and how much
memory it takes at most. Prints figures; asserts nothing about time.

    .venv/bin/python -m bench.replay                       # a generated week (168 h, ~4.9 M msgs)
    .venv/bin/python -m bench.replay --hours 8             # a day's shift, quicker
    .venv/bin/python -m bench.replay --recording week.mcap  # a recording you have

Each phase runs in a fresh process (``spawn``), so its resident memory is its own and its open
is a cold one (the file may be in the page cache; the process holds nothing):

1. **first open**: open, play the whole recording at full speed (``advance()`` every minute of
   replay time, as play at 64× does every second), taking keyframes as play passes them; then
   seeks to random points. This open writes the keyframe file beside the recording.
2. **later open**: open again (the keyframe file is found), jump to the start of the last day,
   play 10 s of wall time at 64×, as a trainer would.
3. **cold open, no keyframe file**: the same jump and play when no keyframes exist yet.

Also printed, the limit for the same work: bare msgspec decoding of the same messages (no
judging, no situation) in one process. Peak RSS is the process's ``ru_maxrss``.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path

DAY_MS = 24 * 3_600_000
T0 = 1_795_363_200_000          # 2026-11-23 00:00 Beijing time


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _replay(path: str, keyframe_file: bool, speed: float = 1.0):
    from feeds.gc_tuning import tune_for_ingest
    from feeds.recording import read_recording
    from situation.replay import Replay, ReplayClock
    from situation.store import Situation
    tune_for_ingest()                      # as main() does
    started = time.perf_counter()
    rec = read_recording(path)
    clock = ReplayClock(rec.start_ms, speed)
    clock.pause(True)
    replay = Replay(rec, Situation(clock), keyframe_file=keyframe_file)
    return rec, clock, replay, time.perf_counter() - started


def first_open(path: str, seeks: int, step_s: int) -> dict:
    rec, clock, replay, opened = _replay(path, True)
    out = {"open_s": opened, "messages": len(rec), "open_peak_mb": peak_mb()}
    situation = replay.situation
    started = time.perf_counter()
    t = rec.start_ms
    while t < rec.end_ms:
        t += step_s * 1000
        clock.set(t)
        replay.advance()
    out["full_s"] = time.perf_counter() - started
    out["records"] = situation.records_accepted
    out["keyframes"] = len(replay._keyframes)
    out["keyframe_bytes"] = replay._keyframes.bytes_on_disk()
    out["keyframe_every"] = replay.keyframe_every
    out["held"] = (len(situation.cases), len(situation.units), len(situation.sensors),
                   sum(len(v) for v in situation.tracks.values()))
    rng = random.Random(1)
    times = []
    for _ in range(seeks):
        target = rng.randint(rec.start_ms, rec.end_ms)
        started = time.perf_counter()
        replay.seek(target)
        times.append(time.perf_counter() - started)
    out["seek_median_s"], out["seek_worst_s"] = statistics.median(times), max(times)
    out["peak_mb"] = peak_mb()
    return out


def jump_and_play(path: str, keyframe_file: bool, play_s: float) -> dict:
    started = time.perf_counter()
    rec, clock, replay, opened = _replay(path, keyframe_file, speed=64)
    out = {"open_s": opened, "keyframes_found": replay._keyframes.loaded}
    last_day = max(rec.start_ms, rec.end_ms - DAY_MS)
    t0 = time.perf_counter()
    replay.seek(last_day)
    out["jump_s"] = time.perf_counter() - t0
    replay.play()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < play_s:     # the wall drains every 50 ms
        replay.advance()
        time.sleep(0.05)
    replay.advance()
    played = time.perf_counter() - t0
    out["played_ms"] = clock.now_ms() - last_day
    out["behind_msgs"] = rec.index_at(clock.now_ms()) - replay.pos
    out["play_s"] = played
    out["total_s"] = time.perf_counter() - started
    out["peak_mb"] = peak_mb()
    return out


def bare_decode(path: str, messages: int) -> dict:
    """The limit: msgspec decoding (typed, no judging) of the recording's first messages."""
    import msgspec

    from feeds.recording import read_recording
    from feeds.schema import Case, Heartbeat, SensorReading, Unit, UnitPosition
    rec = read_recording(path)
    n = min(messages, len(rec))
    frames = list(rec.frames_span(0, n))
    decs = {b"case": msgspec.json.Decoder(list[Case] | Case),
            b"unit": msgspec.json.Decoder(list[Unit] | Unit),
            b"unit.pos": msgspec.json.Decoder(list[UnitPosition] | UnitPosition),
            b"hb": msgspec.json.Decoder(Heartbeat)}
    sensor = msgspec.json.Decoder(list[SensorReading] | SensorReading)
    records = 0
    started = time.perf_counter()
    for f in frames:
        if len(f) != 2:
            continue
        try:
            got = decs.get(f[0], sensor).decode(f[1])
        except msgspec.DecodeError:
            continue
        records += len(got) if isinstance(got, list) else 1
    took = time.perf_counter() - started
    return {"messages": n, "records": records, "s": took}


def _in_child(fn, *args) -> dict:
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, args)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=168.0)
    ap.add_argument("--recording", metavar="FILE.mcap", help="use this recording instead")
    ap.add_argument("--seeks", type=int, default=20)
    ap.add_argument("--step-s", type=int, default=60)
    ap.add_argument("--play-s", type=float, default=10.0)
    ap.add_argument("--skip-cold", action="store_true",
                    help="skip phase 3 (a whole pass without keyframes)")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    if args.recording:
        path = Path(args.recording)
    else:
        from feeds.demo_day import write_demo_day
        path = work / "week.mcap"
        started = time.perf_counter()
        write_demo_day(path, args.hours, seed=1, start_ms=T0)
        print(f"generated {args.hours:g} h of the demo city in "
              f"{time.perf_counter() - started:.0f} s")
    size = path.stat().st_size
    for old in path.parent.glob(path.name + ".*.keyframes"):
        old.unlink()                      # phase 1 is a first open

    a = _in_child(first_open, str(path), args.seeks, args.step_s)
    span_h = 0
    n, recs = a["messages"], a["records"]
    limit = _in_child(bare_decode, str(path), 500_000)
    limit_rate = limit["records"] / limit["s"]
    print(f"recording: {n:,} messages, {recs:,} records accepted, {size / 1e6:.0f} MB")
    print(f"limit: bare msgspec decoding of its first {limit['messages']:,} messages, one "
          f"process: {limit_rate:,.0f} records/s")
    print(f"1. first open: {a['open_s']:.2f} s (peak RSS {a['open_peak_mb']:.0f} MB)")
    rate = recs / a["full_s"]
    print(f"   full speed, whole recording: {a['full_s']:.1f} s = {rate:,.0f} records/s "
          f"({n / a['full_s']:,.0f} msg/s, {rate / limit_rate:.0%} of the limit), taking "
          f"{a['keyframes']} keyframes (one every {a['keyframe_every']:,} messages, "
          f"{a['keyframe_bytes'] / 1e6:.0f} MB on disk)")
    print(f"   held at the end: {a['held'][0]:,} cases, {a['held'][1]:,} units, "
          f"{a['held'][2]:,} sensors, {a['held'][3]:,} track points")
    print(f"   seek to a random point ({args.seeks}×): median {a['seek_median_s'] * 1000:.0f} "
          f"ms, worst {a['seek_worst_s'] * 1000:.0f} ms; peak RSS {a['peak_mb']:.0f} MB")
    phases = [("2. later open (keyframe file found)", True)]
    if not args.skip_cold:
        phases.append(("3. cold open, no keyframe file", False))
    for label, kf in phases:
        b = _in_child(jump_and_play, str(path), kf, args.play_s)
        print(f"{label}: open {b['open_s']:.2f} s ({b['keyframes_found']} keyframes found), "
              f"jump to the last day {b['jump_s']:.2f} s, then {b['play_s']:.1f} s of play at "
              f"64× covered {b['played_ms'] / 1000:.0f} s of the day "
              f"({b['behind_msgs']:,} messages behind at the end); in all "
              f"{b['total_s']:.1f} s; peak RSS {b['peak_mb']:.0f} MB")
    del span_h
    if not args.recording:
        for f in work.iterdir():
            f.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()

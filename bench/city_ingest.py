#!/usr/bin/env python
"""Ingest at city scale (issue #17): the realistic mixes at rising rates, headless and with the
wall open, against the machine's limit for the same messages.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/city_ingest.py [--mix city|sensors90|both]
        [--no-wall] [--quick] [--rates 10000,50000] [--seconds 4] [--profile]

A publisher in another process (multiprocessing spawn; XPUB bound on a free tcp loopback port)
sends pre-encoded messages of a mix (``bench/city_pub.py``) at each offered rate for a few
seconds, plus a heartbeat a second:

- ``city``: exactly ``bench/mix.py``'s ``messages()`` (six sensor kinds over 20,000 ids 60 %,
  20 % new cases with citizen text, 20 % units of 2,000, no district, ~12 records a message);
- ``sensors90``: the same generator with 90 % sensor readings over 100,000 ids, 5 % cases,
  5 % units.

``seq`` and ``ts`` are stamped as each message is sent (see ``bench/city_pub.py``). The
console is the real ``feeds.receiver.Receiver`` and a fresh ``situation.store.Situation``
(WallClock) per step (so no step inherits the previous one's 200,000-case cap), drained every
50 ms either by a loop like ``ui.headless`` or by ``ui.bridge.SituationBridge`` on a Qt event
loop with the real wall windows (``bench/ingest.py``'s ``Wall``; a new wall per step). The
console's collector settings are used (``feeds.gc_tuning``, as ``main.py`` does).

Latency: every record's ``ts`` is its send time (ms); after each drain's apply a sample of up
to 256 of its records gives (now − ts). It over-reads by < 1 ms (ts is truncated to the ms).

Prints figures; asserts nothing. Every wait is bounded; everything started is stopped.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import cProfile  # noqa: E402
import multiprocessing as mp  # noqa: E402
import os  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import zmq  # noqa: E402

from bench.city_limits import limits, profile_apply  # noqa: E402
from bench.city_pub import CityPublisher  # noqa: E402
from bench.ingest import LatencyHistogram, TapReceiver, machine, thread_cpu_s  # noqa: E402
from bench.procstat import machine_cpu, proc_cpu  # noqa: E402

DRAIN_S = 0.05
TAIL_S = 5.0              # how long after the load stops we keep draining for the backlog
RATES = [10_000, 25_000, 50_000, 100_000, 150_000, 200_000]
QUICK_RATES = [10_000, 50_000, 150_000]


class Meter:
    """(time, records of the step's ``src`` in the situation) after every drain, and the
    latency of a sample of each drain's records (now − their ``ts``)."""

    SAMPLE = 256

    def __init__(self):
        self.bind(None, "")

    def bind(self, situation, src: str) -> None:
        self.situation = situation
        self.src = src
        self.lat = LatencyHistogram()
        self.points: list[tuple[float, int]] = []
        self.count = 0
        self.peak = 0
        self._ts: list[int] = []

    def take(self, records: list) -> None:
        n = len(records)
        self.peak = max(self.peak, n)
        if n:
            self._ts = [r.ts for r in records[::n // self.SAMPLE + 1]]

    def applied(self, *_args) -> None:
        now = time.time()
        if self._ts:
            ms = now * 1000
            self.lat.add_many([(ms - t) / 1000 for t in self._ts])
            self._ts = []
        h = self.situation.sources.get(self.src) if self.situation is not None else None
        self.count = h.records if h is not None else 0
        self.points.append((now, self.count))

    def at(self, t: float) -> int:
        """Records in the situation at the last drain at or before ``t``."""
        got = 0
        for when, c in self.points:
            if when > t:
                break
            got = c
        return got


@dataclass
class Step:
    mix: str
    mode: str
    target: float
    stats: dict | None = None
    m: dict = field(default_factory=dict)
    total: int = 0            # records sent, heartbeats included
    at_end: int = 0
    at_1s: int = 0
    final: int = 0
    rate: float = 0.0         # records/s achieved: taken / (last one taken − first sent)
    backlog_s: float | None = None
    gaps: int = 0
    missed: int = 0
    refused: int = 0
    p50: float = float("nan")
    p99: float = float("nan")
    peak: int = 0
    lat_n: int = 0
    held: str = ""
    error: str = ""


def finish(step: Step, meter: Meter, situation, stats: dict | None, m: dict) -> Step:
    step.stats, step.m = stats, m
    if stats is None:
        step.error = "publisher did not finish in time"
        return step
    step.total = stats["sent"] + stats["hbs"]
    step.at_end = meter.at(stats["t_end"])
    step.at_1s = meter.at(stats["t_end"] + 1.0)
    step.final = meter.count
    done_at = next((t for t, c in meter.points if c >= step.total), None)
    step.backlog_s = None if done_at is None else max(0.0, done_at - stats["t_end"])
    last = done_at or next((t for t, c in meter.points if c >= step.final), stats["t_end"])
    step.rate = step.final / max(last - stats["t_start"], 1e-9)
    h = situation.sources.get(meter.src)
    if h is not None:
        step.gaps, step.missed = h.gaps, h.missed
        step.refused = sum(h.rejected.values())
    step.p50, step.p99 = meter.lat.percentile_ms(0.5), meter.lat.percentile_ms(0.99)
    step.peak = meter.peak
    step.lat_n = meter.lat.n
    step.held = (f"{len(situation.cases):,}c/{len(situation.sensors):,}s/"
                 f"{len(situation.units):,}u")
    return step


HEADER = (f"{'mix':<10}{'mode':<9}{'offered/s':>10}{'sent':>10}{'in load':>8}{'1 s after':>10}"
          f"{'taken/s':>10}{'÷bare':>7}{'÷d+a':>7}{'gaps':>5}{'refused':>8}{'p50 ms':>8}"
          f"{'p99 ms':>8}{'main%':>6}{'wait%':>6}{'rx%':>5}{'pub%':>5}{'web%':>5}{'mach%':>6}"
          f"{'peak/drain':>11}  backlog gone")

LEGEND = """\
   offered/s = the publisher's actual rate (target in the step name); sent = records sent in
   the step, heartbeats included; in load = share of them in the situation at the last drain
   before the publisher stopped; 1 s after = share at the last drain ≤ 1 s after it stopped
   (100.0 % = no backlog 1 s after); taken/s = records in the situation / (time the last one
   was applied − first sent), backlog included; ÷bare, ÷d+a = taken/s over the bare msgspec
   decoding limit and over the one-process decode+apply limit of the same mix; gaps = seq
   gaps (records missed); refused = records the situation refused (too_many_ids…);
   p50/p99 = publish→situation latency (record ts = send ms → right after apply, sampled);
   main% = CPU of the main thread (headless loop / the GUI thread: drains, panels, map) over
   the load window, share of one core; wait% = time the main thread was runnable but had no
   CPU (schedstat); rx% = receiver thread; pub% = publisher process; web% = this process's
   other descendants (the wall's QtWebEngine processes); mach% = the whole machine busy, share
   of all its cores (other workers' jobs included); peak/drain = most records in one drain; backlog gone = last record applied − load stop."""


def fmt(s: Step, bare: float, da: float) -> str:
    def f(v, spec):
        return "-" if v != v else format(v, spec)
    if s.error:
        return f"{s.mix:<10}{s.mode:<9}{s.target:>10,.0f}  {s.error}"
    st, m = s.stats, s.m
    win = max(m.get("window", 0.0), 1e-9)
    back = (f"{s.backlog_s:.2f} s" if s.backlog_s is not None else
            f"not in {TAIL_S:.0f} s ({s.total - s.final:,} never taken)")
    gaps = f"{s.gaps}" if not s.missed else f"{s.gaps}({s.missed:,})"
    return (f"{s.mix:<10}{s.mode:<9}{st['offered']:>10,.0f}{s.total:>10,}"
            f"{s.at_end / s.total:>8.1%}{s.at_1s / s.total:>10.1%}{s.rate:>10,.0f}"
            f"{s.rate / bare:>7.1%}{s.rate / da:>7.1%}{gaps:>5}{s.refused:>8,}"
            f"{f(s.p50, '.1f'):>8}{f(s.p99, '.1f'):>8}{f(m.get('main', float('nan')) / win * 100, '.0f'):>6}"
            f"{f(m.get('wait', float('nan')) / win * 100, '.0f'):>6}"
            f"{f(m.get('rx', float('nan')) / win * 100, '.0f'):>5}"
            f"{st['cpu'] / max(st['dur'], 1e-9) * 100:>5.0f}"
            f"{f(m.get('kids', float('nan')) / win * 100, '.0f'):>5}"
            f"{f(m.get('mach_share', float('nan')) * 100, '.0f'):>6}{s.peak:>11,}  {back}"
            f"  [target {s.target:,.0f}; held {s.held}]")


def main_wait_s() -> float:
    """Seconds the main thread was runnable but waiting for a CPU (schedstat)."""
    try:
        with open(f"/proc/self/task/{os.getpid()}/schedstat") as fh:
            return int(fh.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return float("nan")


def kids_cpu_s(leave_out: set[int]) -> dict[int, float]:
    """CPU seconds of each of this process's living descendants, but ``leave_out`` and
    theirs (a window counts what the ones alive at its end used in it: one that ended
    inside the window, an old wall's page, is left out, never subtracted)."""
    parent: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    parent[int(name)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    me, total = os.getpid(), {}
    for pid in parent:
        p, chain = pid, set()
        while p in parent and p != me and p not in chain and p not in leave_out:
            chain.add(p)
            p = parent[p]
        if p == me and pid != me and not chain & leave_out:
            total[pid] = proc_cpu(pid)
    return total


class Feed:
    """One publisher process of a mix and one receiver subscribed to it."""

    def __init__(self, mpctx, zctx, mix: str, pool: int):
        from feeds.receiver import Receiver
        self.pub = CityPublisher(mpctx, mix, pool)
        self.rx = Receiver([self.pub.endpoint], context=zctx).start()
        if not self.pub.wait_ready():
            self.close()
            raise RuntimeError("the receiver never subscribed to the publisher")

    @property
    def rx_tid(self):
        t = self.rx._thread
        return t.native_id if t is not None else None

    def snapshot(self) -> dict:
        """CPU so far: the receiver and main threads, the main thread's time runnable but
        waiting for a CPU, this process's other descendants (the wall's QtWebEngine
        processes; the publisher left out), the whole machine."""
        busy, every = machine_cpu()
        return {"t": time.time(), "rx": thread_cpu_s(self.rx_tid), "main": time.thread_time(),
                "wait": main_wait_s(), "kids": kids_cpu_s({self.pub.proc.pid}),
                "mach": busy, "mach_all": every}

    @staticmethod
    def window(s0: dict, s1: dict) -> dict:
        out = {k: s1[k] - s0[k] for k in ("rx", "main", "wait", "mach")}
        out["kids"] = sum(c - s0["kids"].get(pid, 0.0) for pid, c in s1["kids"].items())
        out["mach_share"] = out["mach"] / max(s1["mach_all"] - s0["mach_all"], 1e-9)
        out["window"] = s1["t"] - s0["t"]
        return out

    def close(self) -> None:
        self.rx.stop()
        self.pub.close()


def headless_step(feed: Feed, meter: Meter, mix: str, src: str, rate: float,
                  duration: float) -> Step:
    from situation.clock import WallClock
    from situation.store import Situation
    situation = Situation(WallClock())
    meter.bind(situation, src)
    s0 = feed.snapshot()
    stats, m = None, {}
    feed.pub.run(src, rate, duration)
    hard = time.monotonic() + duration + TAIL_S + 20
    while time.monotonic() < hard:
        time.sleep(DRAIN_S)                       # as ui.headless.run_headless does
        b, heard = feed.rx.drain()
        meter.take(b.records)
        situation.apply(b, heard)
        meter.applied()
        if stats is None:
            stats = feed.pub.poll_done()
            if stats is not None:                 # the load window: command → publisher done
                m = feed.window(s0, feed.snapshot())
        if stats is not None and (meter.count >= stats["sent"] + stats["hbs"]
                                  or time.time() - stats["t_end"] > TAIL_S):
            break
    return finish(Step(mix, "headless", rate), meter, situation, stats, m)


def wall_step(feed: Feed, meter: Meter, mix: str, src: str, rate: float,
              duration: float) -> Step:
    """A new wall (every window, the live map) on a fresh situation, settled for 2 s, then
    the load on the Qt event loop."""
    from PySide6.QtCore import QEventLoop, QTimer

    from bench.ingest import Wall
    from situation.clock import WallClock
    from situation.store import Situation
    situation = Situation(WallClock())
    meter.bind(situation, src)
    wall = Wall(situation, meter)
    state: dict = {}
    try:
        wall.bridge.sources = [TapReceiver(feed.rx, meter)]
        settle = QEventLoop()
        QTimer.singleShot(2000, settle.quit)
        settle.exec()
        meter.bind(situation, src)
        s0 = feed.snapshot()
        cpu = {"apply": 0.0}
        apply = situation.apply

        def timed_apply(batch):             # the GUI thread's own CPU inside apply
            t0 = time.thread_time()
            try:
                return apply(batch)
            finally:
                cpu["apply"] += time.thread_time() - t0
        situation.apply = timed_apply
        loop = QEventLoop()
        hard = time.monotonic() + duration + TAIL_S + 20

        def check():
            if "stats" not in state:
                stats = feed.pub.poll_done()
                if stats is not None:
                    state["stats"] = stats
                    state["m"] = feed.window(s0, feed.snapshot())
                    state["apply_cpu"] = cpu["apply"]
            stats = state.get("stats")
            if stats is not None and (meter.count >= stats["sent"] + stats["hbs"]
                                      or time.time() - stats["t_end"] > TAIL_S):
                loop.quit()
            if time.monotonic() > hard:
                loop.quit()

        timer = QTimer()
        timer.setInterval(20)
        timer.timeout.connect(check)
        feed.pub.run(src, rate, duration)
        timer.start()
        prof = PROFILE_WALL and cProfile.Profile()
        if prof:
            prof.enable()
        loop.exec()
        if prof:
            prof.disable()
            print_wall_profile(prof, mix, rate)
        timer.stop()
    finally:
        wall.bridge.sources = []
        wall.close()
    step = finish(Step(mix, "wall", rate), meter, situation, state.get("stats"),
                  state.get("m", {}))
    step.held += f"; {wall.note}"
    step.held += gui_split(state)
    return step


PROFILE_WALL = False      # --profile-wall: cProfile the GUI thread during each wall step


def print_wall_profile(prof, mix: str, rate: float) -> None:
    import io
    import pstats
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    print(f"\n-- cProfile of the GUI thread, wall, {mix} at {rate:,.0f}/s --\n"
          + out.getvalue(), flush=True)


def gui_split(state: dict) -> str:
    """Where the GUI thread's CPU went during the load: ``Situation.apply`` of the drained
    records, and everything else (the panels' refresh, the map's patches, painting, layout,
    timers). Both are the thread's own CPU time, not time waiting for the GIL."""
    m = state.get("m") or {}
    window, apply_s = m.get("window"), state.get("apply_cpu")
    if apply_s is None or not window or "main" not in m:
        return ""
    return (f"; GUI thread {m['main'] / window:.0%} of a core: apply {apply_s / window:.0%}, "
            f"panels+map+paint {max(0.0, m['main'] - apply_s) / window:.0%}")


def series(mpctx, zctx, mode: str, mix: str, rates, duration, pool, lim, out) -> None:
    bare, da = lim[mix]["bare"], lim[mix]["apply"]
    feed = Feed(mpctx, zctx, mix, pool)
    meter = Meter()
    run = headless_step if mode == "headless" else wall_step
    try:
        run(feed, meter, mix, f"{mix}-{mode}-warm", 2000, 1.0)      # not reported
        for rate in rates:
            step = run(feed, meter, mix, f"{mix}-{mode}-r{rate}", rate, duration)
            out.append(step)
            print(fmt(step, bare, da), flush=True)
            if step.error or step.backlog_s is None:
                print(f"{'':19}(the console fell behind for good: higher rates skipped)",
                      flush=True)
                break
    finally:
        feed.close()


def summary(steps: list[Step], lim: dict) -> None:
    print("\n== summary ==")
    for mix in dict.fromkeys(s.mix for s in steps):
        for mode in ("headless", "wall"):
            mine = [s for s in steps if s.mix == mix and s.mode == mode and not s.error]
            if not mine:
                continue
            ok = [s for s in mine if s.total and s.at_1s >= s.total and not s.gaps]
            best = max(ok, key=lambda s: s.target) if ok else None
            top = max(mine, key=lambda s: s.rate)
            bare = lim[mix]["bare"]
            line = (f"  {mix:<10}{mode:<9} highest step with no backlog 1 s after and no gaps: "
                    + (f"{best.target:,.0f}/s offered ({best.stats['offered']:,.0f}/s actual, "
                       f"{best.rate / bare:.1%} of bare decoding)" if best else "none"))
            line += (f"; most taken {top.rate:,.0f}/s ({top.rate / bare:.1%} of bare, "
                     f"{top.rate / lim[mix]['apply']:.1%} of decode+apply) at "
                     f"{top.target:,.0f}/s offered")
            if mode == "wall" and best is not None:
                w = max(best.m.get("window", 0), 1e-9)
                line += f"; GUI thread {best.m.get('main', float('nan')) / w:.1%} busy there"
            print(line)
            p = next((s for s in mine if s.target == 10_000), None)
            if p is not None and mix == "city":
                print(f"  {mix:<10}{mode:<9} latency at 10,000/s offered: p50 {p.p50:.1f} ms, "
                      f"p99 {p.p99:.1f} ms ({p.lat_n:,} records sampled, their send ts → "
                      "right after apply)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mix", choices=("city", "sensors90", "both"), default="both")
    ap.add_argument("--no-wall", action="store_true", help="headless only")
    ap.add_argument("--quick", action="store_true", help="2 s steps, three rates")
    ap.add_argument("--rates", help="comma-separated offered rates (records/s)")
    ap.add_argument("--seconds", type=float, help="length of each step")
    ap.add_argument("--pool", type=int, help="records in the publisher's pool of messages")
    ap.add_argument("--limit-records", type=int, help="records for the in-process limits")
    ap.add_argument("--profile", action="store_true",
                    help="also cProfile the one-process decode+apply of each mix")
    ap.add_argument("--profile-wall", action="store_true",
                    help="cProfile the GUI thread during each wall step (slows it)")
    args = ap.parse_args(argv)
    global PROFILE_WALL
    PROFILE_WALL = args.profile_wall
    import gc

    from feeds.gc_tuning import tune_for_ingest
    thresholds = gc.get_threshold()
    tune_for_ingest()                             # as main.py does for the console
    try:
        return _run(args)
    finally:
        gc.set_threshold(*thresholds)


def _run(args) -> int:
    mixes = ["city", "sensors90"] if args.mix == "both" else [args.mix]
    rates = ([int(r) for r in args.rates.split(",")] if args.rates else
             QUICK_RATES if args.quick else RATES)
    duration = args.seconds or (2.0 if args.quick else 4.0)
    pool = args.pool or (50_000 if args.quick else 200_000)
    nlim = args.limit_records or (50_000 if args.quick else 200_000)
    started = time.monotonic()
    print("== CityWall ingest at city scale" + (" (quick)" if args.quick else "") + " ==")
    for line in machine():
        print(line)
    print(f"mixes {', '.join(mixes)}; steps of {duration:g} s (+1 s warm-up a series) at "
          f"{', '.join(f'{r:,}' for r in rates)} records/s; drain every {DRAIN_S * 1000:.0f} ms;"
          f" backlog wait {TAIL_S:.0f} s; publisher pool {pool:,} records", flush=True)

    print(f"\n-- the limit, one process, {nlim:,} records of each mix as sent --", flush=True)
    lim = limits(mixes, nlim)
    for mix in mixes:
        for line in lim[mix]["lines"]:
            print("  " + line, flush=True)
    if args.profile:
        for mix in mixes:
            print(f"\n-- cProfile: judged decode + Situation.apply, {mix} --")
            print(profile_apply(mix, nlim), flush=True)

    print("\n" + LEGEND)
    mpctx = mp.get_context("spawn")
    zctx = zmq.Context()
    steps: list[Step] = []
    try:
        for mode in ("headless",) + (() if args.no_wall else ("wall",)):
            print(f"\n-- {mode}: " + ("main-thread loop drains every 50 ms (like ui.headless)"
                                      if mode == "headless" else
                                      "QApplication (offscreen), SituationBridge 50 ms, the "
                                      "wall's windows (new per step, settled 2 s)") + " --")
            print(HEADER, flush=True)
            for mix in mixes:
                try:
                    series(mpctx, zctx, mode, mix, rates, duration, pool, lim, steps)
                except Exception as exc:          # noqa: BLE001 - said, not raised
                    print(f"{mix:<10}{mode:<9} not measured: {type(exc).__name__}: {exc}",
                          flush=True)
    finally:
        ender = threading.Thread(target=zctx.term, daemon=True)
        ender.start()
        ender.join(10)
        if ender.is_alive():
            print("(the ZeroMQ context did not end within 10 s: a socket was left open)")
    summary(steps, lim)
    print(f"total run time {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

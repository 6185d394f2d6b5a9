#!/usr/bin/env python
"""Broker benchmark: one broker, one publisher at 50,000 records/s, 50 counting subscribers and
3 real headless consoles; then walls joining late from the broker's state.

    .venv/bin/python bench/broker.py [--rate 50000] [--seconds 10] [--subscribers 50]
                                     [--consoles 3] [--curve]

- The broker is its own process (``python -m feeds.broker``, loopback, no keys unless
  ``--curve``); the publisher is another (an XPUB that connects to the broker's ``--in`` and
  waits for the broker's subscription); the counting subscribers are raw SUB sockets in
  ``--sub-procs`` further processes; the consoles are ``main.py --headless`` processes that
  join from the broker's ``--state`` and follow ``--out``.
- The publisher first sends the city the late joiners must hold (``--cases`` open cases and
  ``--units`` units, in batches), then the load: ``--rate`` records/s for ``--seconds``, paced
  in 10 ms slices, ``--batch`` records a message of one topic (60 % sensor readings of six
  kinds over 20,000 ids, 20 % updates of those cases — with a citizen's text — and 20 % of
  those units), one ``src``, ``seq`` +1 a record, and a heartbeat (``hb``) each second.
- A subscriber counts a message's records from its bytes (``"seq":`` occurrences: a JSON
  string cannot hold an unescaped quote) and checks ``seq`` continuity per socket.
- Late joiners: an in-process ``Receiver`` + ``Situation`` joins halfway through the load and
  again once the publisher has stopped; the time from start to holding every case and unit is
  printed, with the join's own ``seconds``. A bare state request (a DEALER, no subscription)
  at 30 % of the load times the broker's answer alone.
- CPU: /proc/PID/stat (utime+stime) of each process over the load, and per thread of the
  broker /proc/PID/task/*/schedstat (time on a CPU, and time runnable but waiting for one);
  /proc/stat for the whole machine, so work that is not the bench's shows.
- The machine's limit, in the same run: bare msgspec decoding of the same messages, the
  console's own decoder on them, and a raw PUB→SUB loopback (no broker) with the same
  publisher, subscribers and consoles at the same rate.

Prints figures; asserts nothing. Every wait has a timeout; every process it starts is killed at
the end.

The work is split by job: ``bench/broker_load.py`` (the message mix, the publisher and the
counting subscribers' processes), ``bench/broker_procs.py`` (starting, talking to and stopping
the processes), ``bench/broker_join.py`` (the late joiners), ``bench/broker_run.py`` (one run),
``bench/procstat.py`` (CPU from /proc); this file holds the command line, the machine's limits
and the printing.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import multiprocessing as mp  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import msgspec  # noqa: E402
import zmq  # noqa: E402

from bench.broker_load import NOW, RAW_SRC, SRC, load_templates, sample_messages  # noqa: E402
from bench.broker_procs import console_src, make_keys  # noqa: E402
from bench.broker_run import fanout_run  # noqa: E402


def pct(a: float, b: float) -> str:
    return f"{100 * a / b:.1f} %" if b else "-"


# =============================================================================================
# the machine's limits
# =============================================================================================

def decode_limits(args) -> dict:
    from feeds.decode import MessageDecoder
    from feeds.schema import Case, SensorReading, Unit
    ts = NOW()
    msgs = sample_messages(load_templates(args.cases, args.units, args.batch, SRC), ts)
    n_rec = sum(m[1].count(b'"seq":') for m in msgs)
    n_bytes = sum(len(m[1]) for m in msgs)
    typed = {b"case": msgspec.json.Decoder(list[Case]), b"unit": msgspec.json.Decoder(list[Unit])}
    sensor = msgspec.json.Decoder(list[SensorReading])

    def bare():
        for topic, payload in msgs:
            typed.get(topic, sensor).decode(payload)

    def untyped():
        for _, payload in msgs:
            msgspec.json.decode(payload)

    dec = MessageDecoder()

    def console():
        for m in msgs:
            dec.decode(m)

    def count():
        for _, payload in msgs:
            payload.count(b'"seq":')

    out = {"records_per_msg": n_rec / len(msgs), "bytes_per_msg": n_bytes / len(msgs)}
    for name, fn in (("msgspec_typed", bare), ("msgspec_untyped", untyped),
                     ("console_decoder", console), ("subscriber_count", count)):
        fn()
        reps = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 1.0:
            fn()
            reps += 1
        out[name] = reps * n_rec / (time.perf_counter() - t0)
    return out


def machine() -> list[str]:
    lines = [f"python {platform.python_version()}, pyzmq {zmq.__version__}, libzmq "
             f"{zmq.zmq_version()}, msgspec {msgspec.__version__}, {os.cpu_count()} cores "
             f"({len(os.sched_getaffinity(0))} usable)"]
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                     if line.startswith("model name"))
        lines.append(model)
    except (OSError, StopIteration):
        pass
    return lines


# =============================================================================================
# printing
# =============================================================================================

def spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"min {min(values):,.0f} / median {statistics.median(values):,.0f} / max {max(values):,.0f}"


def fmt_join(j: dict, cases: int, units: int) -> str:
    o = j.get("join") or {}
    whole = j.get("whole_s")
    return (f"whole in {whole:.3f} s" if whole is not None else
            f"NOT whole within the timeout ({j['cases']}/{cases} cases, {j['units']}/{units} "
            "units)") + (f"; join {o.get('outcome')} in {o.get('seconds')} s "
                         f"({o.get('records')} records in the state, {o.get('kept')} messages "
                         f"kept meanwhile{'; ' + o['problem'] if o.get('problem') else ''})"
                         if o else "; no join outcome")


def print_run(res: dict, args) -> dict:
    """Print one run's figures; return the figures the aims are judged on."""
    raw = res["raw"]
    ran, seeded = res["ran"], res["seeded"]
    total = res["total_published"]
    print(f"  publisher: offered {args.rate:,.0f} records/s for {args.seconds:g} s; sent "
          f"{ran['records']:,} records in {ran['messages']:,} messages + {ran['heartbeats']} hb in "
          f"{ran['seconds']:.2f} s = {ran['records'] / ran['seconds']:,.0f} records/s "
          f"({pct(ran['records'] / ran['seconds'], args.rate)} of offered); blocked by a full "
          f"queue {ran['blocked_s']:.2f} s; at most {ran['late_s'] * 1000:.0f} ms behind "
          f"schedule; its CPU {res['cpu']['publisher'] * 100:.0f} % of a core")
    print(f"  before the load: {seeded['records']:,} records of the city ({args.cases:,} cases, "
          f"{args.units:,} units) in {seeded['seconds']:.2f} s; every subscriber should get "
          f"{total:,} records in all (seq 0..{ran['last_seq']:,})")
    out: dict = {}
    if not raw:
        samples = res.get("broker_samples") or []
        # Only the status files written while the load ran (the file is written once a second).
        fwd = [(d.get("uptime_s", 0.0), d.get("state_records", 0),
                d.get("forwarded_frames", 0), d)
               for t, d in samples if t <= res["wall_s"] + 0.5]
        if len(fwd) >= 2:
            (u0, r0, m0, _), (u1, r1, m1, _) = fwd[0], fwd[-1]
            rate = (r1 - r0) / (u1 - u0) if u1 > u0 else 0.0
            mrate = (m1 - m0) / (u1 - u0) if u1 > u0 else 0.0
            per_s = [d.get("state_rate", 0.0) for *_, d in fwd[2:]]
            sent_mps = (ran["messages"] + ran["heartbeats"]) / ran["seconds"]
            print(f"  broker during the load: its state took in (state_records) "
                  f"{r1 - r0:,} records over {u1 - u0:.1f} s of its uptime = {rate:,.0f} "
                  f"records/s ({pct(rate, args.rate)} of offered); the proxy forwarded "
                  f"{mrate:,.0f} frames/s (libzmq 4.3.5 counts frames: 2 a message; sent "
                  f"{sent_mps:,.0f} messages/s; its statistics lag up to 2 s); its own "
                  f"per-second 'state_rate' {spread(per_s)}")
        after = [(t, d.get("state_records", 0)) for t, d in samples]
        at_end = max((r for t, r in after if t <= res["wall_s"] + 0.5), default=0)
        caught = next((t - res["wall_s"] for t, r in after if r >= total), None)
        print(f"  broker's state at the end of the load: had taken in {at_end:,} of {total:,} "
              f"records ({total - at_end:,} behind, ~{(total - at_end) / args.rate:.1f} s of "
              f"feed); " + (f"caught up {caught:.1f} s after the load ended" if caught is not None
                            else "had not caught up when the bench stopped watching")
              + f"; subscribers connected at the start: {res.get('broker_subscribers_at_start')}")
        final = res.get("broker_final") or {}
        px = final.get("proxy") or {}
        print(f"  broker at the end: state_records {final.get('state_records', 0):,}, "
              f"state_messages {final.get('state_messages', 0):,}; state answers sent "
              f"behind {final.get('state_answered_behind', 0)}, longest wait "
              f"{final.get('state_answer_wait_s_max', 0)} s; proxy in_msgs "
              f"{px.get('in_msgs', 0):,}, out_msgs {px.get('out_msgs', 0):,}, "
              f"out_bytes {px.get('out_bytes', 0) / 1e6:,.0f} MB (once per message, not per "
              f"subscriber); input_gaps {final.get('input_gaps')} missed "
              f"{final.get('input_missed')}; rejected {final.get('rejected')}; "
              f"state {final.get('state')}; subscribers {final.get('subscribers')}; "
              f"faults {final.get('faults') or 'none'}; exit {res.get('broker_exit')}")
        print(f"  broker CPU during the load: {res['cpu']['broker'] * 100:.0f} % of one core "
              f"(/proc stat); by thread, on a CPU / runnable but waiting for one: " + ", ".join(
                  f"{k} {v[0] * 100:.0f} % / {v[1] * 100:.0f} %" for k, v in
                  sorted(res["broker_threads"].items(), key=lambda kv: -kv[1][0])))
    subs = res["subs"]
    got = [s["records"] for s in subs]
    every = sum(1 for s in subs if s["records"] >= total and s["missed"] == 0)
    missed = [s["missed"] for s in subs]
    print(f"  {len(subs)} subscribers: records {spread(got)}; {every} of {len(subs)} got every "
          f"record; missed by seq {spread(missed)} (total {sum(missed):,}, "
          f"{sum(s['gaps'] for s in subs):,} gaps); out of order {sum(s['back'] for s in subs)}; "
          f"their processes' CPU {res['cpu']['subscribers'] * 100:.0f} % of a core")
    at_end = res.get("subs_at_end") or []
    if at_end:
        print(f"  when the publisher finished, the subscribers had {spread(at_end)} records "
              f"({pct(min(at_end), total)} .. {pct(max(at_end), total)} of all); every one had "
              "everything " + (f"{res['subs_all_after_s']:.1f} s after the load ended"
                               if res.get("subs_all_after_s") is not None else
                               "never, within the tail"))
    out["every"] = every
    out["kept_up"] = res.get("subs_all_after_s") is not None and res["subs_all_after_s"] <= 1.0
    out["at_end_min"] = min(at_end) if at_end else 0
    out["caught_up_s"] = res.get("subs_all_after_s")
    out["subs"] = len(subs)
    out["sub_min"] = min(got) if got else 0
    for i, doc in enumerate(res["consoles"]):
        s = console_src(doc, RAW_SRC if raw else SRC)
        joins = (doc or {}).get("state_joins") or []
        j = joins[0] if joins else {}
        print(f"  console {i}: records {s.get('records', 0):,}, last_seq {s.get('last_seq')}, "
              f"gaps {s.get('gaps')}, missed {s.get('missed')}, records_accepted "
              f"{(doc or {}).get('records_accepted', 0):,}, rejected "
              f"{(doc or {}).get('rejected_total')}, cases {(doc or {}).get('cases')}, units "
              f"{(doc or {}).get('units')}"
              + (f"; join {j.get('outcome')} {j.get('seconds')} s" if j else "")
              + ("" if doc else " (no status)"))
    ca = res.get("consoles_all_after_s")
    print(f"  consoles' CPU during the load: {res['cpu']['consoles'] * 100:.0f} % of a core "
          f"(all {len(res['consoles'])}); they had every record "
          + (f"{ca:.1f} s after the load ended" if ca is not None else "never, within the tail")
          + f" (used {res['cpu_tail_consoles']:.1f} CPU s after the load)")
    print("  CPU during the load, % of one core (on a CPU / runnable but waiting for one): "
          + ", ".join(f"{k} {v * 100:.0f} / {res['wait'][k] * 100:.0f}"
                      for k, v in res["cpu"].items()))
    busy = sum(res["cpu"].values())
    print(f"  all of it during the load: {busy * 100:.0f} % of one core, of "
          f"{len(os.sched_getaffinity(0)) * 100} % this machine has; the whole machine was busy "
          f"{res['machine_busy'] * 100:.0f} % (so {max(0.0, res['machine_busy'] - busy) * 100:.0f} "
          f"% was other work: the kernel's softirqs, other users), load average "
          f"{res['loadavg']:.1f}")
    for name in ("join_under_load", "join_quiet"):
        j = res.get(name)
        if j is None:
            continue
        label = "late joiner during the load" if name == "join_under_load" else \
            (f"late joiner after the load (publisher stopped; machine busy "
             f"{j.get('machine_busy', 0) * 100:.0f} % of 200 % meanwhile)")
        if "error" in j:
            print(f"  {label}: error {j['error']}")
        else:
            print(f"  {label}: {fmt_join(j, args.cases, args.units)}; holds {j['cases']:,} "
                  f"cases, {j['units']:,} units, {j['sensors']:,} sensors")
        out[name] = j.get("whole_s")
        pr = j.get("probe")
        if pr:
            sec = pr.get("seconds")
            print(f"  a bare state request at {0.3 * args.seconds:g} s into the load (a DEALER, "
                  "no subscription): " + (f"answered in {sec:.3f} s ({pr['bytes'] / 1e6:.1f} MB, "
                                          f"{pr['frames']} frames)" if sec is not None else
                                          pr.get("error") or "no answer in 30 s"))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=50_000, help="records/s offered (default 50,000)")
    p.add_argument("--seconds", type=float, default=10.0, help="load duration (default 10)")
    p.add_argument("--subscribers", type=int, default=50, help="counting SUB sockets (50)")
    p.add_argument("--sub-procs", type=int, default=2, help="processes they live in (2)")
    p.add_argument("--consoles", type=int, default=3, help="headless consoles (3)")
    p.add_argument("--batch", type=int, default=100, help="records a message (100)")
    p.add_argument("--cases", type=int, default=10_000, help="open cases in the state (10,000)")
    p.add_argument("--units", type=int, default=5_000, help="units in the state (5,000)")
    p.add_argument("--tail", type=float, default=30.0,
                   help="at most this long after the load for everyone to catch up (30)")
    p.add_argument("--curve", action="store_true", help="keys everywhere (CURVE)")
    p.add_argument("--no-raw", action="store_true", help="skip the raw PUB→SUB baseline")
    p.add_argument("--no-late-join", dest="late_join", action="store_false")
    args = p.parse_args(argv)
    mpctx = mp.get_context("spawn")
    tmp = Path(tempfile.mkdtemp(prefix="citywall-bench-broker-"))
    try:
        print("CityWall broker benchmark  (" + "; ".join(machine()) + ")")
        print(f"  {args.subscribers} counting subscribers in {args.sub_procs} processes, "
              f"{args.consoles} headless consoles, {args.batch} records a message, "
              f"{'CURVE' if args.curve else 'no keys'}, tcp loopback")
        keys = make_keys(tmp) if args.curve else None
        print("\nthe machine's limit: decoding the load's messages in one process")
        lim = decode_limits(args)
        print(f"  {lim['records_per_msg']:.0f} records, {lim['bytes_per_msg'] / 1000:.1f} kB a "
              f"message; bare msgspec (typed) {lim['msgspec_typed']:,.0f} records/s, untyped "
              f"{lim['msgspec_untyped']:,.0f} records/s; the console's decoder "
              f"{lim['console_decoder']:,.0f} records/s; a subscriber's count "
              f"{lim['subscriber_count']:,.0f} records/s")
        print(f"  so {args.rate:,.0f} records/s is {args.rate / lim['msgspec_typed'] * 100:.0f} % "
              f"of a core to decode once (bare), {args.rate / lim['console_decoder'] * 100:.0f} % "
              f"with the console's checks: the broker's state decodes everything once, each "
              f"console once more")
        print(f"\nthrough the broker ({args.seconds:g} s at {args.rate:,.0f} records/s)")
        res = fanout_run(args, mpctx, tmp, keys, raw=False)
        fig = print_run(res, args)
        if res.get("broker_log", "").strip():
            tail = res["broker_log"].strip().splitlines()[-3:]
            print("  broker log (last lines): " + " | ".join(tail))
        raw_fig = None
        if not args.no_raw:
            print(f"\nthe machine's limit: raw PUB→SUB loopback, no broker (the same publisher, "
                  f"{args.subscribers} subscribers and {args.consoles} consoles, no state, no keys)")
            rres = fanout_run(args, mpctx, tmp, None, raw=True)
            raw_fig = print_run(rres, args)
        print("\naims")
        ok = fig["every"] == fig["subs"] and fig["kept_up"]

        def pace(f, r):
            c = f["caught_up_s"]
            return (f"{f['every']} of {f['subs']} got every record; when the publisher "
                    f"finished the slowest had {pct(f['at_end_min'], r['total_published'])}, "
                    + (f"all had everything {c:.1f} s later" if c is not None else
                       "and they never all had everything"))
        print(f"  every subscriber gets every record at {args.rate:,.0f}/s (all of them, and "
              f"keeping pace: everything within 1 s of the load's end): "
              f"{'MET' if ok else 'NOT MET'} (broker: {pace(fig, res)})"
              + (f"; raw PUB→SUB without the broker: {pace(raw_fig, rres)}" if raw_fig else ""))
        for name, label in (("join_under_load", "during the load"),
                            ("join_quiet", "when quiet")):
            if name in fig:
                w = fig[name]
                print(f"  a late joiner whole in under 1 s ({label}): "
                      f"{'MET' if w is not None and w < 1.0 else 'NOT MET'} "
                      f"({'never whole' if w is None else f'{w:.3f} s'})")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

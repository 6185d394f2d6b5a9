"""Start-up benchmark (issue #18): how long a console takes to be of use, as a person starts it.

    .venv/bin/python bench/startup.py [--runs 3] [--recording FILE …] [--skip-windows]

Every figure is a fresh ``main.py`` process, timed from outside (the process's whole life) and
from inside (its status's ``startup`` marks, ``feeds.startup``: seconds since the process
started). In the same run:

1. **headless, plain feed vs the demo**: ``--headless --feed EP --run-for 0.5`` (a publisher
   that is not there: the console's own start and stop) against ``--headless --demo --run-for
   0.5`` (the demo city warmed up three hours, its dispatch service, its feed); each process's
   wall time, the median of ``--runs``, and **the ratio** (aim ≤ 1.5);
2. **the windowed demo** (offscreen, one 1920×1080 screen): the wall's first paint, the first
   records in the situation and the live map's first markers (aim: a living city within 2 s of
   the window appearing);
3. **a wall restarted behind a broker**: a demo city publishing, a broker (``python -m
   feeds.broker``) keeping the state, then a headless wall started with ``--state``: when the
   state was applied, and what it held then against the broker's state (aim: whole within 3 s);
4. **opening a replay** (each ``--recording``; ``python -m feeds.demo_day`` writes one): the
   first records, and with windows the first paint and the map's first markers (aim: the first
   picture within 2 s, whatever the recording's length).

Figures, never pass/fail; the machine's other load changes them (run it on a quiet machine).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.broker_procs import Procs, free_endpoint, read_json, wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SCREEN = {"screens": [{"name": "wall", "x": 0, "y": 0, "width": 1920, "height": 1080,
                       "logicalDpiX": 96, "logicalDpiY": 96}]}


def run_main(tmp: Path, tag: str, *args: str, windows: bool = False,
             timeout: float = 300) -> dict:
    """One ``main.py`` process: its wall time, exit code and final status."""
    status = tmp / f"{tag}.json"
    status.unlink(missing_ok=True)
    env = dict(os.environ)
    if windows:
        config = tmp / "screen.json"
        config.write_text(json.dumps(SCREEN))
        env["QT_QPA_PLATFORM"] = f"offscreen:configfile={config}"
        flags = env.get("QTWEBENGINE_CHROMIUM_FLAGS", "")
        env["QTWEBENGINE_CHROMIUM_FLAGS"] = " ".join(
            [flags] + [f for f in ("--no-sandbox", "--disable-gpu") if f not in flags]).strip()
    t0 = time.monotonic()
    out = subprocess.run([PY, "main.py", *args, "--status-out", str(status)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=timeout)
    took = time.monotonic() - t0
    doc = read_json(status) or {}
    if out.returncode != 0:
        raise RuntimeError(f"main.py {' '.join(args)} exited {out.returncode}: "
                           f"{out.stderr[-800:]}")
    return {"wall_s": took, "startup": doc.get("startup", {}), "doc": doc}


def med(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def fmt(v: float | None) -> str:
    return "—" if v is None or v != v else f"{v:.2f}"


def headless(tmp: Path, runs: int) -> None:
    print("\n-- 1. headless: a plain feed against the demo city (--run-for 0.5) --")
    feed = free_endpoint()
    plain, demo = [], []
    for i in range(runs):                      # alternated, so a slow moment hits both
        plain.append(run_main(tmp, "plain", "--headless", "--feed", feed, "--run-for", "0.5"))
        demo.append(run_main(tmp, "demo", "--headless", "--demo", "--run-for", "0.5"))
    for name, rs in (("plain feed", plain), ("demo city", demo)):
        print(f"  {name:<11} process {', '.join(fmt(r['wall_s']) for r in rs)} s "
              f"(median {fmt(med(r['wall_s'] for r in rs))}); session built "
              f"{fmt(med(r['startup'].get('session_s') for r in rs))} s, first records "
              f"{fmt(med(r['startup'].get('first_records_s') for r in rs))} s")
    ratio = med(r["wall_s"] for r in demo) / med(r["wall_s"] for r in plain)
    print(f"  ratio demo / plain feed (median process time): {ratio:.2f}  (aim ≤ 1.5)")
    d = demo[-1]["doc"]
    print(f"  the demo city at its start: {d.get('open_cases', 0)} open cases, "
          f"{d.get('units', 0)} units, {d.get('sensors', 0)} sensors")


def windowed(tmp: Path, runs: int, what: list[str], label: str, run_for: str = "6") -> None:
    rs = [run_main(tmp, "win", *what, "--run-for", run_for, windows=True) for _ in range(runs)]
    marks = {k: med(r["startup"].get(k) for r in rs)
             for k in ("session_s", "wall_painted_s", "first_records_s", "map_markers_s")}
    alive = max(marks["first_records_s"], marks["map_markers_s"]) - marks["wall_painted_s"]
    print(f"  {label}: session {fmt(marks['session_s'])} s, wall painted "
          f"{fmt(marks['wall_painted_s'])} s, first records {fmt(marks['first_records_s'])} s,"
          f" map's first markers {fmt(marks['map_markers_s'])} s (medians of {runs}); "
          f"records and markers {fmt(alive)} s after the first paint")
    for r in rs:
        print(f"    run: {json.dumps(r['startup'])}")


def restart_behind_broker(tmp: Path, runs: int) -> None:
    print("\n-- 3. a wall restarted behind a broker: whole from the broker's state --")
    procs = Procs()
    try:
        sim, ins, out, state = free_endpoint(), free_endpoint(), free_endpoint(), free_endpoint()
        for cmd, log in (([PY, "-m", "feeds.simulator", "--feed", sim, "--run-for", "3600"],
                          "sim.log"),
                         ([PY, "-m", "feeds.broker", "--upstream", sim, "--in", ins, "--out",
                           out, "--state", state, "--status-out", str(tmp / "broker.json"),
                           "--status-every", "1", "--run-for", "3600"], "broker.log")):
            with open(tmp / log, "wb") as f:
                procs.popen.append(subprocess.Popen(cmd, cwd=ROOT, stdout=f,
                                                    stderr=subprocess.STDOUT))
        if not wait_until(lambda: (read_json(tmp / "broker.json") or {}).get(
                "state_records", 0) > 300, 60):
            raise RuntimeError("the broker's state did not fill: "
                               + (tmp / "broker.log").read_text()[-800:])
        time.sleep(2)
        for i in range(runs):
            r = run_main(tmp, "restart", "--headless", "--feed", out, "--state", state,
                         "--run-for", "3")
            b = read_json(tmp / "broker.json") or {}
            held = b.get("state") or {}
            joins = r["doc"].get("state_joins") or [{}]
            print(f"  run {i + 1}: state applied {fmt(r['startup'].get('state_joined_s'))} s "
                  f"after the process started (first records "
                  f"{fmt(r['startup'].get('first_records_s'))} s; join "
                  f"{joins[0].get('outcome', '?')}, {joins[0].get('records', '?')} records); "
                  f"the wall then held {r['doc'].get('open_cases', 0)} open cases, "
                  f"{r['doc'].get('units', 0)} units, {r['doc'].get('sensors', 0)} sensors; "
                  f"the broker's state: {json.dumps(held) if held else 'see its status'}")
    finally:
        procs.close()


def restart_with_dispatch(tmp: Path, runs: int) -> None:
    print("\n-- 3b. a wall restarted beside the dispatch service: whole from its snapshot --")
    procs = Procs()
    try:
        sim, orders, dfeed = free_endpoint(), free_endpoint(), free_endpoint()
        for cmd, log in (([PY, "-m", "feeds.simulator", "--feed", sim, "--run-for", "3600"],
                          "sim2.log"),
                         ([PY, "-m", "feeds.dispatch_service", "--source", sim, "--dispatch",
                           orders, "--feed", dfeed, "--db", str(tmp / "dispatch.db"),
                           "--run-for", "3600"], "dispatch.log")):
            with open(tmp / log, "wb") as f:
                procs.popen.append(subprocess.Popen(cmd, cwd=ROOT, stdout=f,
                                                    stderr=subprocess.STDOUT))
        time.sleep(4)                          # the service has learnt the city
        for i in range(runs):
            r = run_main(tmp, "restart-dispatch", "--headless", "--feed", sim, "--feed", dfeed,
                         "--dispatch", orders, "--run-for", "3")
            up, d = r["startup"], r["doc"]
            print(f"  run {i + 1}: the service's snapshot loaded "
                  f"{fmt(up.get('dispatch_joined_s'))} s after the process started (session "
                  f"{fmt(up.get('session_s'))} s, first records "
                  f"{fmt(up.get('first_records_s'))} s); 3 s later the wall held "
                  f"{d.get('open_cases', 0)} open cases, {d.get('units', 0)} units, "
                  f"{d.get('sensors', 0)} sensors")
    finally:
        procs.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--recording", action="append", default=[],
                    help="a recording to open (python -m feeds.demo_day writes one)")
    ap.add_argument("--skip-windows", action="store_true")
    args = ap.parse_args(argv)
    from bench.ingest import machine
    print("== CityWall start-up ==")
    for line in machine():
        print(line)
    tmp = Path(tempfile.mkdtemp(prefix="citywall-bench-startup-"))
    headless(tmp, args.runs)
    if not args.skip_windows:
        print("\n-- 2. the windowed demo (offscreen, one 1920×1080 screen) --")
        windowed(tmp, args.runs, ["--demo"], "demo city")
    restart_behind_broker(tmp, args.runs)
    restart_with_dispatch(tmp, args.runs)
    for rec in args.recording:
        size = Path(rec).stat().st_size / 1e6
        print(f"\n-- 4. opening a replay: {rec} ({size:,.0f} MB) --")
        rs = [run_main(tmp, "replay", "--headless", "--replay", rec, "--run-for", "0.5")
              for _ in range(args.runs)]
        print(f"  headless: session (recording opened) "
              f"{fmt(med(r['startup'].get('session_s') for r in rs))} s, first records "
              f"{fmt(med(r['startup'].get('first_records_s') for r in rs))} s (medians of "
              f"{args.runs}); process {', '.join(fmt(r['wall_s']) for r in rs)} s")
        if not args.skip_windows:
            windowed(tmp, args.runs, ["--replay", rec], "windowed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

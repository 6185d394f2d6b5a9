#!/usr/bin/env python
"""Dispatch benchmark: how fast an order is acknowledged, and how fast its change reaches the
consoles.

    .venv/bin/python bench/dispatch.py [--orders N] [--db DIR]

The dispatch service runs as it does in production, as its own process
(``python -m feeds.dispatch_service``) with a real SQLite file (WAL, synchronous=FULL). A
source publisher in this process gives it one case and one unit per console. Each console
is a ``DispatchClient`` on its own thread sending orders back to back (dispatch its unit to
its case, recall it, …), so every order is accepted and changes the picture. Two more
"consoles" are real ``Receiver``s on the service's feed, drained every 50 ms as the wall
drains (``ui``'s bridge).

Figures: send → ack round trip, p50/p99/max, with 1 console and with 10 sending at once;
and ack → the change applied on both watching consoles (the later of the two), p50/p99/max.
Aim (the issue): p99 ack ≤ 20 ms with 10 consoles; the change on every console within 250 ms.

This script PRINTS figures; it never asserts. Everything it starts is stopped at the end.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import select  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402

import numpy as np  # noqa: E402
import zmq  # noqa: E402

from feeds.dispatch_client import DispatchClient  # noqa: E402
from feeds.receiver import Receiver, wait_for  # noqa: E402
from feeds.schema import Unit  # noqa: E402

DRAIN_S = 0.05            # how often a console takes what its receiver holds
CONSOLES = 10


def source_records(n: int, ts: int) -> list[tuple[str, list[dict]]]:
    base = {"v": 1, "src": "bench-cases", "ts": ts}
    cases = [{**base, "seq": i, "case_id": f"C{i:02d}", "status": "registered",
              "category": "event.street_order.vending", "title": "占道经营", "description": "bench",
              "lat": 39.91, "lon": 116.40, "source": "patrol", "priority": 2,
              "reported_at": ts, "unit_id": None} for i in range(n)]
    units = [{**base, "seq": n + i, "unit_id": f"U{i:02d}", "callsign": f"东城-巡{i:02d}",
              "kind": "foot_patrol", "status": "available", "lat": 39.91, "lon": 116.40,
              "case_id": None} for i in range(n)]
    return [("case", cases), ("unit", units)]


class Watcher:
    """A console watching the feed: when each unit change was applied (drained)."""

    def __init__(self, endpoint: str, ctx: zmq.Context):
        self.rx = Receiver([endpoint], context=ctx).start()
        self.seen: dict[str, list[float]] = defaultdict(list)    # unit_id → applied at
        self.heard = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(DRAIN_S):
            batch, _ = self.rx.drain()
            now = time.perf_counter()
            for r in batch.records:
                if r.src == "dispatch":
                    self.heard.set()
                    if isinstance(r, Unit):
                        self.seen[r.unit_id].append(now)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.rx.stop()


def console(endpoint: str, ctx: zmq.Context, i: int, orders: int, start: threading.Barrier,
            out: dict) -> None:
    client = DispatchClient(endpoint, f"bench-{i}", context=ctx, timeout_ms=10_000)
    lat, acked, bad = [], [], 0
    try:
        start.wait(30)
        for k in range(orders):
            fields = ({"case_id": f"C{i:02d}", "unit_id": f"U{i:02d}"} if k % 2 == 0
                      else {"unit_id": f"U{i:02d}"})
            t0 = time.perf_counter()
            oid = client.send("dispatch" if k % 2 == 0 else "recall", **fields)
            reply = None
            deadline = t0 + 15
            while reply is None and time.perf_counter() < deadline:
                for ev in client.poll(50):
                    if ev[0] == "ack" and ev[1] == oid:
                        reply = ev[2]
            t1 = time.perf_counter()
            if reply is None or reply.result != "accepted":
                bad += 1
                continue
            lat.append(t1 - t0)
            acked.append(t1)
    finally:
        client.close()
    out[i] = (lat, acked, bad)


def pct(values: list[float]) -> str:
    if not values:
        return "n/a"
    a = np.array(values) * 1000
    return (f"p50 {np.percentile(a, 50):6.2f} ms  p99 {np.percentile(a, 99):6.2f} ms  "
            f"max {a.max():6.2f} ms  (n={len(a)})")


def run_round(endpoint: str, ctx: zmq.Context, n_consoles: int, orders: int,
              watchers: list[Watcher]) -> None:
    before = [{u: len(ts) for u, ts in w.seen.items()} for w in watchers]
    out: dict[int, tuple] = {}
    start = threading.Barrier(n_consoles)
    threads = [threading.Thread(target=console, args=(endpoint, ctx, i, orders, start, out))
               for i in range(n_consoles)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join(600)
    wall = time.perf_counter() - t
    lat = [x for i in out for x in out[i][0]]
    bad = sum(out[i][2] for i in out)
    # The k-th accepted order of console i is the k-th change of its unit on every console.
    wait_for(lambda: all(len(w.seen[f"U{i:02d}"]) - b.get(f"U{i:02d}", 0) >= len(out[i][1])
                         for w, b in zip(watchers, before) for i in out), 10)
    spread = []
    for i in out:
        unit = f"U{i:02d}"
        for k, acked in enumerate(out[i][1]):
            shown = [w.seen[unit][b.get(unit, 0) + k] for w, b in zip(watchers, before)
                     if len(w.seen[unit]) > b.get(unit, 0) + k]
            if len(shown) == len(watchers):
                spread.append(max(shown) - acked)
    rate = len(lat) / wall if wall else 0
    print(f"{n_consoles:2d} console(s) × {orders} orders  "
          f"({rate:,.0f} orders/s, {bad} not accepted)")
    print(f"   send → ack                    {pct(lat)}")
    print(f"   ack → shown on both consoles  {pct(spread)}"
          f"{'' if len(spread) == len(lat) else f'  [{len(lat) - len(spread)} never shown]'}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=300, help="orders per console (default 300)")
    p.add_argument("--db", default=None, metavar="DIR",
                   help="directory for the SQLite file (default: a temporary one)")
    args = p.parse_args()

    tmp = tempfile.TemporaryDirectory(dir=args.db)
    db = Path(tmp.name) / "dispatch.sqlite3"
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    proc = subprocess.Popen([sys.executable, "-m", "feeds.dispatch_service", "--source",
                             f"tcp://127.0.0.1:{port}", "--dispatch", "tcp://127.0.0.1:*",
                             "--feed", "tcp://127.0.0.1:*", "--db", str(db),
                             "--snapshot-burst", "1000"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    watchers: list[Watcher] = []
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        m = re.search(r"orders (\S+) feed (\S+)", line)
        if not m:
            print(f"the service did not start: {line!r}", file=sys.stderr)
            return 1
        orders_ep, feed_ep = m.groups()
        if not pub.poll(20_000):
            print("the service never subscribed to the source", file=sys.stderr)
            return 1
        pub.recv()
        for topic, recs in source_records(CONSOLES, time.time_ns() // 1_000_000):
            pub.send_multipart([topic.encode(), json.dumps(recs).encode()])
        probe = DispatchClient(orders_ep, "bench-probe", context=ctx)
        if not wait_for(lambda: len(probe.snapshot().units) == CONSOLES, 10):
            print("the service did not learn the source's units", file=sys.stderr)
            return 1
        probe.close()
        watchers = [Watcher(feed_ep, ctx) for _ in range(2)]
        if not all(w.heard.wait(10) for w in watchers):
            print("the consoles never heard the service's feed", file=sys.stderr)
            return 1

        print(f"dispatch benchmark — {platform.python_implementation()} "
              f"{platform.python_version()}, {os.cpu_count()} cores, SQLite "
              f"{sqlite3.sqlite_version} (WAL, synchronous=FULL) on {db.parent}")
        print(f"service: its own process; consoles: threads here; 2 watching consoles "
              f"drained every {DRAIN_S * 1000:.0f} ms")
        run_round(orders_ep, ctx, 1, args.orders, watchers)
        run_round(orders_ep, ctx, CONSOLES, args.orders, watchers)
        print("aim: p99 ack ≤ 20 ms with 10 consoles; the change on every console ≤ 250 ms")
        return 0
    finally:
        for w in watchers:
            w.stop()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
        pub.close(0)
        ctx.term()
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())

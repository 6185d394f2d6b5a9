#!/usr/bin/env python
"""What CURVE costs: ingest and dispatch with the wire encrypted and authenticated, against
the same work in the clear, in the same run.

    .venv/bin/python bench/curve.py [--records N] [--orders N]

Ingest: a publisher in its own process sends the realistic mix (``bench/mix.py``: six sensor
kinds, 20 % new cases with citizen text, 20 % units, no district, ~10 records a message) as fast
as it can over tcp loopback to the real ``Receiver`` (decoding and checking every record),
drained every 50 ms into a ``Situation``. Printed: records/s taken, and the machine's limit for
the same messages — bare msgspec decoding in one process — so each figure is also a ratio.
Dispatch: one console sends orders one after another to the real service (in this process,
its own thread, a real SQLite file); send → ack p50/p99 with and without CURVE.

Prints figures; asserts nothing.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import multiprocessing as mp  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import msgspec  # noqa: E402
import zmq  # noqa: E402

from bench.mix import messages  # noqa: E402


def publisher_main(endpoint: str, key_dir: str | None, n: int, ts: int, ready, go) -> None:
    from feeds.keys import load_key
    from feeds.security import TrustStore, serve
    ctx = zmq.Context()
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.SNDHWM, 0)
    if key_dir:
        serve(sock, load_key(f"{key_dir}/pub.key_secret", secret=True),
              TrustStore(f"{key_dir}/trust"), "bench")
    sock.bind(endpoint)
    msgs = messages(n, ts)
    ready.set()
    sock.poll(20_000)                      # the console subscribed
    sock.recv()
    go.wait(20)
    for frames in msgs:
        sock.send_multipart(frames)
    sock.send_multipart([b"hb", b'{"v":1,"src":"fence","seq":0,"ts":%d}' % ts])
    time.sleep(2)
    sock.close(0)
    ctx.term()


def ingest(n: int, key_dir: str | None, port: int) -> tuple[float, int]:
    from feeds.keys import load_key
    from feeds.receiver import Receiver
    from feeds.security import ClientKeys
    from situation.clock import WallClock
    from situation.store import Situation
    ts = time.time_ns() // 1_000_000
    endpoint = f"tcp://127.0.0.1:{port}"
    mpctx = mp.get_context("spawn")
    ready, go = mpctx.Event(), mpctx.Event()
    proc = mpctx.Process(target=publisher_main, args=(endpoint, key_dir, n, ts, ready, go))
    proc.start()
    ready.wait(60)
    keys = None
    if key_dir:
        keys = ClientKeys(load_key(f"{key_dir}/wall.key_secret", secret=True),
                          load_key(f"{key_dir}/pub.key"))
    receiver = Receiver([endpoint], keys=keys).start()
    situation = Situation(WallClock())
    time.sleep(0.5)
    go.set()
    started = time.perf_counter()
    deadline = started + 120
    while "fence" not in situation.sources and time.perf_counter() < deadline:
        time.sleep(0.05)
        batch, heard = receiver.drain()
        situation.apply(batch, heard)
    took = time.perf_counter() - started
    receiver.stop()
    proc.join(10)
    return took, situation.records_accepted


def bare_decode(n: int) -> float:
    from feeds.schema import Case, SensorReading, Unit
    msgs = messages(n, time.time_ns() // 1_000_000)
    decs = {t: msgspec.json.Decoder(list[t]) for t in (Case, SensorReading, Unit)}
    pick = {b"case": decs[Case], b"unit": decs[Unit]}
    started = time.perf_counter()
    for topic, payload in msgs:
        pick.get(topic, decs[SensorReading]).decode(payload)
    return n / (time.perf_counter() - started)


def make_keys(root: Path) -> None:
    from feeds.keys import new_key
    for name in ("pub", "wall", "service"):
        new_key(name, root)
    (root / "trust").mkdir()
    for name in ("wall",):
        (root / "trust" / f"{name}.key").write_bytes((root / f"{name}.key").read_bytes())


def dispatch_latency(orders: int, key_dir: str | None) -> tuple[float, float]:
    """Send → ack of ``orders`` dispatch-and-recall orders, one at a time."""
    from feeds.dispatch_client import DispatchClient
    from feeds.dispatch_service import DispatchService
    from feeds.keys import load_key
    from feeds.security import ClientKeys, ServerKeys, TrustStore
    ctx = zmq.Context()
    db = Path(tempfile.mkdtemp(prefix="curve-bench-")) / "d.db"
    kw, ckw = {}, {}
    if key_dir:
        kw = {"keys": ServerKeys(load_key(f"{key_dir}/service.key_secret", secret=True),
                                 TrustStore(f"{key_dir}/trust"))}
        ckw = {"keys": ClientKeys(load_key(f"{key_dir}/wall.key_secret", secret=True),
                                  load_key(f"{key_dir}/service.key"))}
    svc = DispatchService([], "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", db, context=ctx,
                          **kw).start()
    client = DispatchClient(svc.dispatch_endpoint, "bench", context=ctx, **ckw)
    lat = []
    for i in range(orders):
        t0 = time.perf_counter()
        oid = client.send("recall", unit_id=f"U-none-{i}")        # judged and committed
        got = False
        while not got and time.perf_counter() - t0 < 5:
            got = any(e[0] == "ack" and e[1] == oid for e in client.poll(5))
        lat.append((time.perf_counter() - t0) * 1000)
    client.close()
    svc.stop()
    ctx.term()
    lat.sort()
    return lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1]


def main() -> None:
    p = argparse.ArgumentParser(description="CURVE on vs off, same run")
    p.add_argument("--records", type=int, default=300_000)
    p.add_argument("--orders", type=int, default=500)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="curve-keys-"))
    make_keys(root)
    limit = bare_decode(args.records)
    print(f"realistic mix, {args.records:,} records (~10 a message), tcp loopback, 2 cores")
    print(f"  limit: bare msgspec decoding of the same messages, one process: {limit:,.0f} records/s")
    for label, key_dir, port in (("clear", None, 5571), ("CURVE", str(root), 5572)):
        took, got = ingest(args.records, key_dir, port)
        rate = got / took
        print(f"  ingest {label:5}: {got:,} records in {took:.2f} s = {rate:,.0f} records/s "
              f"({rate / limit:.0%} of the limit)")
    try:
        for label, key_dir in (("clear", None), ("CURVE", str(root))):
            p50, p99 = dispatch_latency(args.orders, key_dir)
            print(f"  dispatch {label:5}: send → ack p50 {p50:.2f} ms, p99 {p99:.2f} ms "
                  f"({args.orders} orders, one at a time)")
    except TypeError as exc:                       # a service without keys yet
        print(f"  dispatch: not measured ({exc})")


if __name__ == "__main__":
    main()

"""Late joiners for the broker benchmark (``bench/broker.py``): an in-process wall
(``Receiver`` + ``Situation``) joining from the broker's state and timed until it holds every
case and unit, and one bare state request (a DEALER, no subscription) timed until its reply."""
from __future__ import annotations

import time

import zmq

from bench.broker_load import NOW


def late_join(feed: str, state: str, keys: dict | None, cases: int, units: int,
              timeout_s: float = 30.0) -> dict:
    """An in-process wall joining now: time from start until it holds every case and unit."""
    from feeds.receiver import Receiver
    from situation.clock import WallClock
    from situation.store import Situation
    ck = None
    if keys:
        from feeds.keys import load_key
        from feeds.security import ClientKeys
        ck = ClientKeys(key=load_key(keys["wall_secret"], secret=True),
                        server=load_key(keys["broker_public"]))
    t0 = time.monotonic()
    rx = Receiver([feed], state={feed: state}, now_ms=NOW, keys=ck).start()
    sit = Situation(WallClock())
    whole_at = None
    try:
        while time.monotonic() - t0 < timeout_s:
            batch, heard = rx.drain()
            sit.apply(batch, heard)
            if len(sit.cases) >= cases and len(sit.units) >= units:
                whole_at = time.monotonic() - t0
                break
            time.sleep(0.005)
        outcome = rx.join_outcomes[0] if rx.join_outcomes else None
        return {"whole_s": whole_at, "cases": len(sit.cases), "units": len(sit.units),
                "sensors": len(sit.sensors), "join": outcome}
    finally:
        rx.stop()


def state_rtt(state: str, keys: dict | None, timeout_s: float = 30.0) -> dict:
    """One bare state request (a DEALER, no subscription): seconds until the reply is in."""
    from feeds.broker_state import request
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.MAXMSGSIZE, 64 * 1024 * 1024)
    if keys:
        from feeds.keys import load_key
        from feeds.security import connect_as
        connect_as(s, load_key(keys["wall_secret"], secret=True), load_key(keys["broker_public"]))
    try:
        s.connect(state)
        t0 = time.monotonic()
        s.send(request("bench-probe"))
        if not s.poll(int(timeout_s * 1000)):
            return {"seconds": None}
        frames = s.recv_multipart()
        return {"seconds": time.monotonic() - t0, "frames": len(frames),
                "bytes": sum(len(f) for f in frames)}
    finally:
        s.close(0)

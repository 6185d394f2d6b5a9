"""The demo city on the wire: an XPUB that sends the whole state to each console that
subscribes, the city's records as it steps, heartbeats twice a second, and the dispatch
service's decisions carried out (``follow``). ``start_in_thread`` binds now (a port in use is
the caller's error) and publishes from a thread; ``python -m feeds.simulator`` runs it alone.
Split from ``feeds.simulator`` (the model); no Qt.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import zmq

from feeds.bounds import DEFAULT_MAX_MESSAGE_BYTES, MAX_SUBSCRIPTION_BYTES
from feeds.decode import MessageDecoder
from feeds.schema import frames

if TYPE_CHECKING:
    from feeds.security import ServerKeys
    from feeds.simulator import DemoCity

HEARTBEAT_S = 0.5
LOOP_S = 0.05


FEED_DOMAIN = "feed"        # the ZAP domain of a publisher's CURVE server


def _bind(endpoint: str, context: zmq.Context, keys: "ServerKeys | None" = None,
          also: str | None = None) -> zmq.Socket:
    """XPUB so the city sees each console subscribe and can send it the whole state. With
    ``keys`` a CURVE server taking only the subscribers ``keys.trust`` holds (an in-process
    connection has no handshake: it needs none). ``also``: bind there too (the console's
    ``--demo-feed``, beside its in-process endpoint)."""
    sock = context.socket(zmq.XPUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.XPUB_VERBOSE, 1)
    sock.setsockopt(zmq.SNDHWM, 200_000)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES)     # subscribers send only these
    if keys is not None:
        from feeds.security import serve
        serve(sock, keys.key, keys.trust, FEED_DOMAIN)
    try:
        sock.bind(endpoint)
        if also:
            sock.bind(also)
    except zmq.ZMQError:
        sock.close(0)
        raise
    return sock


def publish_loop(sock: zmq.Socket, city: DemoCity, now_ms: Callable[[], int],
                 stop: threading.Event, orders: zmq.Socket | None = None,
                 orders_src: str = "dispatch") -> None:
    sent_times: list[tuple[float, int]] = []
    next_hb = 0.0
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    decoder = MessageDecoder()
    while not stop.is_set():
        joined = False
        while sock.poll(0):
            msg = sock.recv()
            joined |= msg[:1] == b"\x01"
        while orders is not None and orders.poll(0):       # the service's decisions
            for rec in decoder.decode(orders.recv_multipart()).records:
                if rec.src == orders_src:
                    city.follow(rec)
        now = now_ms()
        # The snapshot first: its records take their seq before this step's records.
        batches = city.snapshot() if joined else []
        batches += city.step(now)
        wall = time.monotonic()
        for topic, recs in batches:
            if recs:
                sock.send_multipart(frames(recs))
                sent_times.append((wall, len(recs)))
        if wall >= next_hb:
            sent_times = [(w, n) for w, n in sent_times if wall - w <= 1.0]
            rate = float(sum(n for _, n in sent_times))
            sock.send_multipart(frames(city.heartbeat(now, rate)))
            next_hb = wall + HEARTBEAT_S
        stop.wait(LOOP_S)


class Running(NamedTuple):
    thread: threading.Thread
    stop: threading.Event
    endpoint: str            # as bound: ``tcp://127.0.0.1:*`` becomes the port chosen


def start_in_thread(endpoint: str, *, city: DemoCity, now_ms: Callable[[], int],
                    context: zmq.Context | None = None, follow: str | None = None,
                    keys: "ServerKeys | None" = None, also_bind: str | None = None) -> Running:
    """Bind now (a port in use raises here, in the caller), then publish from a thread.
    ``follow``: the dispatch service's feed, whose orders the city carries out. ``keys``:
    serve CURVE (feeds.security); ``also_bind``: a second endpoint for the same feed."""
    ctx = context or zmq.Context.instance()
    sock = _bind(endpoint, ctx, keys, also_bind)
    bound = sock.getsockopt_string(zmq.LAST_ENDPOINT) or endpoint
    stop = threading.Event()
    orders = None
    if follow:
        orders = ctx.socket(zmq.SUB)
        orders.setsockopt(zmq.LINGER, 0)
        orders.setsockopt(zmq.MAXMSGSIZE, DEFAULT_MAX_MESSAGE_BYTES)
        orders.setsockopt(zmq.SUBSCRIBE, b"")
        orders.connect(follow)

    def run():
        try:
            publish_loop(sock, city, now_ms, stop, orders)
        finally:
            sock.close(0)
            if orders is not None:
                orders.close(0)

    thread = threading.Thread(target=run, name="demo-city", daemon=True)
    thread.start()
    return Running(thread, stop, bound)

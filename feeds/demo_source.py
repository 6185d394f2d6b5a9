"""The demo city as a source: the simulated city (``feeds.simulator``) and its own dispatch
service running in-process, heard through a receiver of their in-process feeds exactly as a
live wall hears real publishers. To the situation it is a source like any other
(``feeds.source``); only ``--demo`` imports this module (the live services never do).
"""
from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import zmq

from feeds.endpoints import DEMO_DISPATCH, DEMO_DISPATCH_FEED, DEMO_ENDPOINT
from feeds.receiver import Receiver



class DemoSource:
    """``start()`` starts the dispatch service, then the city (binding its feed, and
    ``also_bind`` for other consoles: a port in use raises ``OSError`` here), then the
    receiver. ``receiver_options`` are what every receiver of the console is given."""

    endpoints = [DEMO_ENDPOINT, DEMO_DISPATCH_FEED]
    name = "demo city"

    def __init__(self, *, seed: int, start_ms: int, now_ms, context: zmq.Context,
                 also_bind: str | None = None, serve_keys=None, receiver_options: dict,
                 ahead=None):
        from feeds.dispatch_service import DispatchService
        from feeds.simulator import DemoCity
        # warmed up in a child process while the console started (feeds.demo_ahead), or here
        same = ahead is not None and (ahead.seed, ahead.start_ms) == (seed, start_ms)
        self.city = (ahead.result() if same else None) or DemoCity(seed=seed, start_ms=start_ms)
        if ahead is not None and not same:
            ahead.close()
        self.now_ms = now_ms
        self.context = context
        self.also_bind = also_bind
        self.serve_keys = serve_keys
        # The demo's dispatch service learns the city and decides; the city follows it.
        self.service = DispatchService(
            [DEMO_ENDPOINT], DEMO_DISPATCH, DEMO_DISPATCH_FEED,
            Path(tempfile.mkdtemp(prefix="citywall-demo-")) / "dispatch.db",
            now_ms=now_ms, context=context)
        self._options = receiver_options
        self.receiver: Receiver | None = None
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None

    def start(self) -> "DemoSource":
        from feeds.simulator import start_in_thread
        self.service.start()
        # The wall subscribes before the city binds and publishes (in-process, ZeroMQ queues
        # the connection): it hears the city's first snapshot whole, never the tail of one
        # sent for another subscriber (a unit's fix without the unit).
        self.receiver = Receiver(self.endpoints, context=self.context, **self._options).start()
        try:
            self._thread, self._stop, _ = start_in_thread(
                DEMO_ENDPOINT, city=self.city, now_ms=self.now_ms, context=self.context,
                follow=DEMO_DISPATCH_FEED, also_bind=self.also_bind, keys=self.serve_keys)
        except zmq.ZMQError as exc:
            self.receiver.stop()
            self.service.stop()
            raise OSError(f"cannot bind the demo city on {self.also_bind or DEMO_ENDPOINT}: "
                          f"{exc}") from None
        return self

    def take(self):
        return self.receiver.take()

    def backlog(self) -> int:
        return self.receiver.backlog() if self.receiver is not None else 0

    def health(self) -> dict:
        city_alive = self._thread is not None and self._thread.is_alive()
        inner = self.receiver.health() if self.receiver is not None else {"up": False}
        return {"kind": "demo", "name": self.name, "up": city_alive and inner["up"],
                "city": city_alive}

    def stop(self) -> None:
        if self.receiver is not None:
            self.receiver.stop()
        if self._stop is not None:
            self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.service.stop()

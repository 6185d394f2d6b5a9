"""Prometheus metrics for the IT desk: ``--metrics-port N`` serves http://BIND:N/metrics. No Qt.

The console, the dispatch service and the broker each write a status document (a plain dict:
the console's is the ``--status-out`` file). A ``MetricsServer`` serves the LAST such document
handed to it with ``publish(doc)``, turned into metric families by a family function
(``console_families``, ``dispatch_families``, ``broker_families``) at the moment it is
published, in the publisher's thread: the HTTP thread never reads a live situation, and the
scrape says exactly what the status file said at the same moment. So the counters on the
endpoint equal the status file's, figure for figure.

    server = MetricsServer(9108, "127.0.0.1", console_families).start()   # OSError: port in use
    server.publish(session.status())        # whenever the status is written, and each second
    server.close()                          # frees the port

A service whose ``status()`` is thread-safe can be published from a small thread of its own:
``server.publish_every(service.status, 1.0)``.

Names follow Prometheus' conventions: ``citywall_…``, counters end in ``_total``, durations
in ``_seconds``, sizes in ``_bytes``, shares in ``_ratio``; labels ``src``, ``reason``,
``endpoint``, ``what`` (and ``result``, ``mode``). Besides the status' figures every endpoint
has ``citywall_status_age_seconds`` (how long ago the last document was published: a loop that
stopped publishing shows here, not as frozen counters) and the ``process_…`` figures of
prometheus_client's ProcessCollector.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import (CollectorRegistry, ProcessCollector, generate_latest,
                               make_wsgi_app)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer

# The family functions live in feeds.metric_families; they are named here too, beside the
# server that serves them.
from feeds.metric_families import (PREFIX, Families, broker_families,  # noqa: F401
                                   console_families, dispatch_families)

LOG = logging.getLogger("feeds.metrics")


# ---- the server ----------------------------------------------------------------------------
class _LastDocument:
    """The collector: the families of the last published document, and its age."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.lock = threading.Lock()
        self.families: list = []
        self.published_at: float | None = None

    def collect(self):
        with self.lock:
            families, at = self.families, self.published_at
        yield from families
        age = GaugeMetricFamily(f"{self.prefix}_status_age_seconds",
                                "seconds since the last status was published (grows when "
                                "the loop that publishes it is stuck)", labels=[])
        if at is not None:
            age.add_metric([], time.monotonic() - at)
        yield age


REQUEST_TIMEOUT_S = 10.0        # a scrape that sends nothing this long is dropped …
MAX_SCRAPES = 16                # … and at most this many are served at once (the rest closed)


class _Handler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT_S

    def log_message(self, *args) -> None:      # a scrape is not news
        pass


class _Server(ThreadingWSGIServer):
    """prometheus_client's threaded server, with a bound on connections at once: a client
    that opens many and sends nothing costs ``MAX_SCRAPES`` threads for ``REQUEST_TIMEOUT_S``
    at most, never the console's loop."""

    def __init__(self, *args, **kwargs):
        self.slots = threading.BoundedSemaphore(MAX_SCRAPES)
        self.turned_away = 0
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            self.turned_away += 1
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _Fixed:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families


class MetricsServer:
    """Serves the families of the last ``publish()``ed document at http://BIND:PORT/metrics
    in a daemon thread (it ends with the process); ``close()`` frees the port."""

    def __init__(self, port: int, bind: str = "127.0.0.1",
                 families: Families = console_families, prefix: str = PREFIX,
                 process: bool = True):
        self.port = int(port)
        self.bind = bind
        self.prefix = prefix
        self._families = families
        self.registry = CollectorRegistry(auto_describe=False)
        self._last = _LastDocument(prefix)
        self.registry.register(self._last)
        if process:
            ProcessCollector(registry=self.registry)
        self._httpd = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._publisher: threading.Thread | None = None
        self.errors = 0

    def start(self) -> "MetricsServer":
        """Bind and serve. ``OSError`` (one line) when the port cannot be bound."""
        server = type("MetricsHTTPServer", (_Server,), {
            "address_family": socket.AF_INET6 if ":" in self.bind else socket.AF_INET})
        try:
            self._httpd = make_server(self.bind, self.port, make_wsgi_app(self.registry),
                                      server, handler_class=_Handler)
        except OSError as exc:
            raise OSError(f"cannot serve metrics on {self.bind}:{self.port}: "
                          f"{exc.strerror or exc}") from None
        self.port = self._httpd.server_port          # the real one when asked for port 0
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="metrics-http",
                                        daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"http://{host}:{self.port}/metrics"

    def publish(self, doc: dict) -> None:
        """Serve ``doc`` from now on. Turned into families here, in the caller's thread; a
        document that cannot be turned keeps the last one served (and is logged)."""
        try:
            families = list(self._families(doc, self.prefix))
            # What cannot be written out (a label no encoding takes) would fail every scrape:
            # refused here, the last good document stays.
            probe = CollectorRegistry(auto_describe=False)
            probe.register(_Fixed(families))
            generate_latest(probe)
        except Exception as exc:
            self.errors += 1
            if self.errors <= 10:
                LOG.error("metrics: cannot turn the status into metrics: %s",
                          repr(exc)[:200])
            return
        with self._last.lock:
            self._last.families = families
            self._last.published_at = time.monotonic()

    def publish_every(self, status: Callable[[], dict], every_s: float = 1.0) -> "MetricsServer":
        """Publish ``status()`` now and every ``every_s`` from a daemon thread (for a service
        whose ``status()`` is thread-safe)."""
        def loop():
            while True:
                try:
                    self.publish(status())
                except Exception as exc:          # the next second tries again
                    self.errors += 1
                    if self.errors <= 10:
                        LOG.error("metrics: status failed: %r", exc)
                if self._stop.wait(every_s):
                    return
        self._publisher = threading.Thread(target=loop, name="metrics-publish", daemon=True)
        self._publisher.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
        if self._publisher is not None and self._publisher is not threading.current_thread():
            self._publisher.join(5)


def start_console_metrics(args, session) -> MetricsServer | None:
    """``--metrics-port``: the console's endpoint, serving ``console_families`` of what the
    loops publish (``session.metrics``). None without the option. OSError: port in use."""
    port = getattr(args, "metrics_port", None)
    if port is None:
        return None
    server = MetricsServer(port, getattr(args, "metrics_bind", None) or "127.0.0.1",
                           console_families).start()
    session.metrics = server
    return server


class DrainFigures:
    """How long applying the received batches takes: the last drain, all of them, how many.
    Written by the one loop that drains (the headless loop, or the GUI thread's bridge)."""

    def __init__(self):
        self.last_s = 0.0
        self.total_s = 0.0
        self.count = 0

    def add(self, seconds: float) -> None:
        self.last_s = seconds
        self.total_s += seconds
        self.count += 1

    def status(self) -> dict:
        return {"drain_last_s": round(self.last_s, 6), "drain_total_s": round(self.total_s, 6),
                "drains": self.count}


def drain_figures(owner) -> DrainFigures:
    """``owner.drains``, made on first use (a session, a bridge)."""
    figures = getattr(owner, "drains", None)
    if figures is None:
        figures = owner.drains = DrainFigures()
    return figures

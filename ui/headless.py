"""Headless console: no window, a JSON status every few seconds and at exit. No Qt.

A part that stopped for good (a fatal fault, see ``feeds.faults``) ends the run: the final
status says what, and ``main.py`` exits non-zero, so a supervisor restarts the console.

With ``--metrics-port`` (``session.metrics``, a ``feeds.metrics.MetricsServer``) the very
document written to the status file is published to the metrics endpoint at the same moment,
so the two agree; and a fresh one at least once a second in between (or without a file)."""
from __future__ import annotations

import time
from typing import Callable

from ui.session import Session, write_json_atomic

DRAIN_INTERVAL_S = 0.05
PUBLISH_EVERY_S = 1.0


def run_headless(session: Session, run_for: float | None, status_out: str | None,
                 status_every: float = 2.0, at_exit: Callable[[], None] | None = None) -> dict:
    # Wall time paces this loop only (how often to drain); the picture runs on the session clock.
    metrics = getattr(session, "metrics", None)
    started = time.monotonic()
    next_status = started + status_every
    next_publish = started + DRAIN_INTERVAL_S
    try:
        while run_for is None or time.monotonic() - started < run_for:
            time.sleep(DRAIN_INTERVAL_S)
            session.drain()
            if session.replay is not None and session.replay.ended:
                break               # a replay's status at its end is what a script waits for
            if session.fatal():
                break
            now = time.monotonic()
            if status_out and now >= next_status:
                doc = _status(session)
                if doc is not None:
                    _write_status(status_out, session, doc)
                    _publish(metrics, doc)
                next_status += status_every
                next_publish = now + PUBLISH_EVERY_S
            elif metrics is not None and now >= next_publish:
                _publish(metrics, _status(session))
                next_publish = now + PUBLISH_EVERY_S
    except KeyboardInterrupt:
        pass
    session.drain()
    if at_exit is not None:
        at_exit()               # the exports, from the same picture as the final status
    doc = session.status()
    if status_out:
        _write_status(status_out, session, doc)
    _publish(metrics, doc)
    return doc


def _status(session: Session) -> dict | None:
    try:
        return session.status()
    except Exception as exc:
        session.faults.record("status", exc)
        return None


def _publish(metrics, doc: dict | None) -> None:
    if metrics is not None and doc is not None:
        metrics.publish(doc)        # never raises: a bad document keeps the last one served


def _write_status(path: str, session: Session, doc: dict | None = None) -> None:
    """A status that cannot be written is a fault (said in the next one), never the end."""
    try:
        write_json_atomic(path, session.status() if doc is None else doc)
    except Exception as exc:
        session.faults.record("status file", exc)

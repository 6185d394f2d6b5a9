"""Headless console: no window, a JSON status every few seconds and at exit. No Qt.

A part that stopped for good (a fatal fault, see ``feeds.faults``) ends the run: the final
status says what, and ``main.py`` exits non-zero, so a supervisor restarts the console."""
from __future__ import annotations

import time
from typing import Callable

from ui.session import Session, write_json_atomic

DRAIN_INTERVAL_S = 0.05


def run_headless(session: Session, run_for: float | None, status_out: str | None,
                 status_every: float = 2.0, at_exit: Callable[[], None] | None = None) -> dict:
    # Wall time paces this loop only (how often to drain); the picture runs on the session clock.
    started = time.monotonic()
    next_status = started + status_every
    try:
        while run_for is None or time.monotonic() - started < run_for:
            time.sleep(DRAIN_INTERVAL_S)
            session.drain()
            if session.replay is not None and session.replay.ended:
                break               # a replay's status at its end is what a script waits for
            if session.fatal():
                break
            if status_out and time.monotonic() >= next_status:
                _write_status(status_out, session)
                next_status += status_every
    except KeyboardInterrupt:
        pass
    session.drain()
    if at_exit is not None:
        at_exit()               # the exports, from the same picture as the final status
    doc = session.status()
    if status_out:
        _write_status(status_out, session, doc)
    return doc


def _write_status(path: str, session: Session, doc: dict | None = None) -> None:
    """A status that cannot be written is a fault (said in the next one), never the end."""
    try:
        write_json_atomic(path, session.status() if doc is None else doc)
    except Exception as exc:
        session.faults.record("status file", exc)

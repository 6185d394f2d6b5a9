"""Headless console: no window, a JSON status every few seconds and at exit. No Qt."""
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
            if status_out and time.monotonic() >= next_status:
                write_json_atomic(status_out, session.status())
                next_status += status_every
    except KeyboardInterrupt:
        pass
    session.drain()
    if at_exit is not None:
        at_exit()               # the exports, from the same picture as the final status
    doc = session.status()
    if status_out:
        write_json_atomic(status_out, doc)
    return doc

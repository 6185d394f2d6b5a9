"""Headless console: no window, a JSON status every few seconds and at exit. No Qt."""
from __future__ import annotations

import time

from ui.session import Session, write_json_atomic

DRAIN_INTERVAL_S = 0.1


def run_headless(session: Session, run_for: float | None, status_out: str | None,
                 status_every: float = 2.0) -> dict:
    # Wall time paces this loop only (how often to drain); the picture runs on the session clock.
    started = time.monotonic()
    next_status = started + status_every
    try:
        while run_for is None or time.monotonic() - started < run_for:
            time.sleep(DRAIN_INTERVAL_S)
            session.drain()
            if status_out and time.monotonic() >= next_status:
                write_json_atomic(status_out, session.status())
                next_status += status_every
    except KeyboardInterrupt:
        pass
    session.drain()
    doc = session.status()
    if status_out:
        write_json_atomic(status_out, doc)
    return doc

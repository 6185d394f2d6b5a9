"""How long this console took to come up (issue #18), as seconds since the process started:
``STARTUP.mark(name)`` notes the first time a stage is reached; the status document carries
them as ``startup`` so an IT desk (and ``bench/startup.py``) can read where a start went.

The marks, in the order a start reaches them:

- ``session_s``: the sources built and started (a demo city warmed up, a recording opened);
- ``dispatch_joined_s``: the dispatch service's snapshot loaded (every open case and unit of a
  console started mid-shift with ``--dispatch``);
- ``first_records_s``: the first drain that put records in the situation;
- ``state_joined_s``: a broker's state applied (``feeds.state_join``): the picture is whole
  (a wall with two brokers: the first of them; each one's state is the whole picture);
- ``wall_painted_s``: the wall's first window painted (windowed only);
- ``map_markers_s``: the live map's page drew its first markers (windowed only).

The process's start is read from ``/proc/self/stat`` (10 ms resolution), so interpreter start
and imports count; where it cannot be read, from this module's import. No Qt.
"""
from __future__ import annotations

import os
import time


def _process_start_monotonic() -> float:
    now = time.monotonic()
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        fields = stat[stat.rindex(b")") + 2:].split()    # from field 3 (state) on
        started_ticks = int(fields[19])                   # field 22: starttime, in ticks
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - started_ticks / os.sysconf("SC_CLK_TCK")
        return now - min(max(age, 0.0), 3600.0)
    except (OSError, ValueError, IndexError, AttributeError):
        return now


class Startup:
    def __init__(self) -> None:
        self.started = _process_start_monotonic()
        self.marks: dict[str, float] = {}
        self.listener = None

    def mark(self, name: str) -> None:
        """The first time ``name`` is reached (later calls change nothing)."""
        if name not in self.marks:
            self.marks[name] = round(time.monotonic() - self.started, 3)

    def reset(self) -> None:
        """A new start in the same process (``main.main`` called again): no marks yet, no
        listener; ages still count from the process's start."""
        self.marks = {}
        self.listener = None

    def age(self) -> float:
        """Seconds since the process started."""
        return time.monotonic() - self.started

    def stage(self, name: str) -> None:
        """The start reaches ``name`` (``startup.<name>`` in the wall's words): the windowed
        start's progress line (``listener``, set by ``ui.startup_progress``) says it."""
        if self.listener is not None:
            try:
                self.listener(name)
            except Exception:           # noqa: BLE001 - a progress line never stops a start
                self.listener = None

    def after_drain(self, situation) -> None:
        """Called by the loop that drains (headless or the wall's bridge), after each drain."""
        if "first_records_s" not in self.marks and situation.records_accepted:
            self.mark("first_records_s")
        if "state_joined_s" not in self.marks and any(
                j.get("outcome") in ("joined", "caught_up") for j in situation.state_joins):
            self.mark("state_joined_s")             # not a refused or fallen-back join

    def status(self) -> dict:
        return dict(self.marks)


STARTUP = Startup()

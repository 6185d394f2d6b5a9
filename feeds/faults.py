"""Faults: anything internal that stopped or failed, kept so the wall can say so.

A receiver thread that died, a message the decoder could not judge, a batch the situation
could not take: each is counted here by what failed, with when it first and last happened and
the last error. The wall shows any fault in red on every screen's header, the headless status
carries them under ``faults``, and a part that cannot recover marks itself ``fatal`` (the
headless console then exits non-zero). Thread-safe; no Qt.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

LOG = logging.getLogger("feeds.faults")


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Fault:
    what: str               # "feed-receiver", "decoder", "situation", …
    count: int
    first_ms: int
    last_ms: int
    error: str              # the last one, one line
    recovered: bool = True  # restarted / carried on; False: stopped for good


class Faults:
    """What failed, by name. ``now_ms`` stamps them (the session passes the situation's
    clock's link time; faults are about the machine, not the city)."""

    def __init__(self, now_ms: Callable[[], int] | None = None):
        self._now_ms = now_ms or _wall_ms
        self._lock = threading.Lock()
        self._by: dict[str, Fault] = {}
        self.version = 0        # moves on every fault: a panel redraws when it changes

    def record(self, what: str, error: BaseException | str, *, recovered: bool = True) -> None:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        text = " ".join(text.split())[:300]
        try:
            now = int(self._now_ms())
        except Exception:                       # a broken clock must not hide the fault
            now = _wall_ms()
        with self._lock:
            fault = self._by.get(what)
            if fault is None:
                fault = self._by[what] = Fault(what, 0, now, now, text)
            fault.count += 1
            fault.last_ms, fault.error = now, text
            fault.recovered = fault.recovered and recovered
            self.version += 1
        if fault.count <= 10 or fault.count % 1000 == 0:
            LOG.error("fault in %s (%d so far): %s", what, fault.count, text)

    def merge_into(self, out: dict[str, dict]) -> None:
        with self._lock:
            for what, fault in self._by.items():
                out[what] = asdict(fault)

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._by)

    @property
    def fatal(self) -> list[str]:
        with self._lock:
            return [f.what for f in self._by.values() if not f.recovered]

    def snapshot(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        self.merge_into(out)
        return out

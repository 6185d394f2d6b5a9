"""The one clock. Every countdown, staleness check, window and now-line asks it.

Live mode: wall time. A sped-up demo city or a replay: a scaled clock. Tests: a manual clock
they move by hand, so nothing in a test sleeps to let time pass.
"""
from __future__ import annotations

import time
from collections.abc import Callable


class Clock:
    """Milliseconds since the Unix epoch, UTC."""

    speed: float = 1.0

    def now_ms(self) -> int:
        raise NotImplementedError

    def link_ms(self) -> int:
        """Time for link health (a source silent for 3 s is down). A link is silent in real
        seconds whatever speed the city runs at, so sped-up clocks answer in real time here."""
        return self.now_ms()


class WallClock(Clock):
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock(Clock):
    def __init__(self, start_ms: int = 0):
        self._now = int(start_ms)

    def now_ms(self) -> int:
        return self._now

    def set(self, ms: int) -> None:
        self._now = int(ms)

    def advance(self, ms: int) -> None:
        self._now += int(ms)


class ScaledClock(Clock):
    """Starts at ``start_ms`` and runs ``speed`` times faster than the wall; can be paused,
    re-speeded and set (a replay's transport drives it)."""

    def __init__(self, start_ms: int, speed: float = 1.0,
                 wall_s: Callable[[], float] = time.monotonic):
        if not speed > 0:
            raise ValueError(f"speed must be greater than zero, not {speed}")
        self._wall = wall_s            # real seconds; a test passes its own to run at 10×
        self._anchor_city = int(start_ms)
        self._anchor_wall = self._wall()
        self.speed = float(speed)
        self.paused = False

    def now_ms(self) -> int:
        if self.paused:
            return self._anchor_city
        return self._anchor_city + round((self._wall() - self._anchor_wall) * 1000 * self.speed)

    def link_ms(self) -> int:
        return int(self._wall() * 1000)

    def _rebase(self) -> None:
        self._anchor_city = self.now_ms()
        self._anchor_wall = self._wall()

    def set_speed(self, speed: float) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be greater than zero, not {speed}")
        self._rebase()
        self.speed = float(speed)

    def pause(self, paused: bool = True) -> None:
        self._rebase()
        self.paused = paused

    def set(self, ms: int) -> None:
        self._anchor_city = int(ms)
        self._anchor_wall = self._wall()


class FeedClock(Clock):
    """Follows the publishers' own time: the newest heartbeat ``ts`` of ONE source (the first
    heard, or the one named), carried forward by the wall. For a sped-up simulator run on its
    own (its records are ahead of the wall). Other sources' heartbeats never move it: records
    are judged against this clock, so a publisher that could move it could date anything."""

    def __init__(self, source: str | None = None):
        self.source = source
        self._base_feed: int | None = None
        self._base_wall = 0.0
        self._last = 0

    def link_ms(self) -> int:
        return int(time.monotonic() * 1000)

    def observe(self, feed_ts_ms: int, src: str | None = None) -> None:
        if src is not None:
            if self.source is None:
                self.source = src
            elif src != self.source:
                return
        if self._base_feed is None or feed_ts_ms > self.now_ms():
            self._base_feed = int(feed_ts_ms)
            self._base_wall = time.monotonic()

    def now_ms(self) -> int:
        if self._base_feed is None:
            return time.time_ns() // 1_000_000
        # Never runs backwards, even when a heartbeat lands slightly behind our estimate.
        self._last = max(self._last,
                         self._base_feed + int((time.monotonic() - self._base_wall) * 1000))
        return self._last

"""A unit's track, compact (issue #17): its kept positions as (ts, lon, lat), oldest first,
read like the deque of tuples it was — ``len``, ``[i]`` (negative too), iteration, ``bisect``
with a key, ``itertools.islice`` — each point read a new tuple. Held in two arrays (ts as
int64, lon/lat as float64 interleaved): 24 B a point instead of a tuple, an int, two floats
and a deque slot (~170 B). At most ``maxlen`` points, the oldest leaving first, as a bounded
deque. No Qt.
"""
from __future__ import annotations

import math
from array import array

import numpy as np

# The thinning (situation.store's TRACK_*): a position is kept when the unit moved at least
# TRACK_MIN_MOVE_M since the last kept one, or TRACK_REFRESH_MS passed.
TRACK_MIN_MOVE_M = 25.0
TRACK_REFRESH_MS = 60_000
_M_PER_DEG_LAT = 111_000.0
_M_PER_DEG_LON = _M_PER_DEG_LAT * math.cos(math.radians(40.0))   # as situation.heat


class Track:
    __slots__ = ("maxlen", "_ts", "_xy", "_start")

    def __init__(self, points=(), maxlen: int | None = None):
        self.maxlen = maxlen
        self._ts = array("q")
        self._xy = array("d")
        self._start = 0            # points before it have left (popleft), not yet compacted
        for ts, lon, lat in points:
            self.append((ts, lon, lat))

    def append(self, point: tuple[int, float, float]) -> None:
        self.push(*point)

    def push(self, ts: int, lon: float, lat: float) -> None:
        """``append((ts, lon, lat))`` without the tuple."""
        self._ts.append(ts)
        xy = self._xy
        xy.append(lon)
        xy.append(lat)
        if self.maxlen is not None and len(self._ts) - self._start > self.maxlen:
            self._drop_first()

    def keep(self, ts: int, lon: float, lat: float) -> None:
        """A reported position: kept if it moved or the last kept one is old (see above)."""
        if len(self._ts) > self._start:
            xy = self._xy
            if (ts - self._ts[-1] < TRACK_REFRESH_MS and math.hypot(
                    (lon - xy[-2]) * _M_PER_DEG_LON, (lat - xy[-1]) * _M_PER_DEG_LAT)
                    < TRACK_MIN_MOVE_M):
                return
        self._ts.append(ts)                     # (push, inlined: the hot path)
        xy = self._xy
        xy.append(lon)
        xy.append(lat)
        if self.maxlen is not None and len(self._ts) - self._start > self.maxlen:
            self._drop_first()

    def last(self) -> tuple[int, float, float]:
        """The newest point (``track[-1]``, cheaper); IndexError when empty."""
        if len(self._ts) == self._start:
            raise IndexError("an empty track")
        xy = self._xy
        return self._ts[-1], xy[-2], xy[-1]

    def popleft(self) -> tuple[int, float, float]:
        point = self[0] if self else None
        if point is None:
            raise IndexError("pop from an empty track")
        self._drop_first()
        return point

    def _drop_first(self) -> None:
        self._start += 1
        if self._start >= 1_024 and self._start * 2 >= len(self._ts):    # amortised O(1)
            del self._ts[:self._start]
            del self._xy[:2 * self._start]
            self._start = 0

    def __len__(self) -> int:
        return len(self._ts) - self._start

    def __bool__(self) -> bool:
        return len(self._ts) > self._start

    def __getitem__(self, i: int) -> tuple[int, float, float]:
        n = len(self._ts) - self._start
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("track index out of range")
        j = self._start + i
        return self._ts[j], self._xy[2 * j], self._xy[2 * j + 1]

    def __iter__(self):
        ts, xy = self._ts, self._xy
        for j in range(self._start, len(ts)):
            yield ts[j], xy[2 * j], xy[2 * j + 1]

    def __eq__(self, other) -> bool:
        if isinstance(other, Track):
            other = list(other)
        try:
            return list(self) == list(other)
        except TypeError:
            return NotImplemented

    __hash__ = None

    def as_array(self, i: int = 0, n: int | None = None) -> np.ndarray:
        """Points ``i`` to ``n`` as an (n - i, 3) float array of ts, lon, lat."""
        n = len(self) if n is None else n
        a, b = self._start + i, self._start + n
        out = np.empty((b - a, 3))
        out[:, 0] = np.frombuffer(self._ts, np.int64)[a:b]
        out[:, 1:] = np.frombuffer(self._xy, np.float64)[2 * a:2 * b].reshape(-1, 2)
        return out

    def copy(self) -> Track:
        out = Track(maxlen=self.maxlen)
        out._ts = self._ts[self._start:]
        out._xy = self._xy[2 * self._start:]
        return out

    # A replay's keyframe pickles the picture: the columns as bytes (no global but the class).
    def __getstate__(self):
        c = self.copy()
        return c.maxlen, c._ts.tobytes(), c._xy.tobytes()

    def __setstate__(self, state) -> None:
        maxlen, ts, xy = state
        if not (maxlen is None or type(maxlen) is int) or len(ts) * 2 != len(xy):
            raise ValueError("not a track")
        self.maxlen, self._ts, self._xy, self._start = maxlen, array("q"), array("d"), 0
        self._ts.frombytes(ts)
        self._xy.frombytes(xy)

    def __repr__(self) -> str:
        return f"Track({list(self)!r}, maxlen={self.maxlen})"

"""Which units to send: the nearest available ones, with distance and a time to arrive.

Straight-line distance times a detour factor (city streets are not straight), at a speed by
kind of unit; good enough to rank and to say "about 6 minutes" to a commander. No Qt.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from feeds.schema import Case, Unit

M_PER_DEG_LAT = 111_000.0
DETOUR = 1.35                       # street distance / straight line, a usual urban figure
SPEED_MS = {"foot_patrol": 1.3, "vehicle": 8.0, "enforcement": 6.0, "sanitation": 4.0}
DEFAULT_SPEED_MS = 5.0


@dataclass(frozen=True)
class Suggestion:
    unit: Unit
    distance_m: float               # straight line
    eta_s: float                    # along the streets, at the kind's speed


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    kx = M_PER_DEG_LAT * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot((lon2 - lon1) * kx, (lat2 - lat1) * M_PER_DEG_LAT)


def nearest_available(situation, case: Case, n: int = 3) -> list[Suggestion]:
    """The ``n`` nearest units that are available and not stale, nearest first."""
    now = situation.now_ms()
    out = []
    for u in situation.units.values():
        if u.status != "available" or situation.unit_stale(u, now):
            continue
        d = distance_m(u.lon, u.lat, case.lon, case.lat)
        speed = SPEED_MS.get(u.kind, DEFAULT_SPEED_MS)
        out.append(Suggestion(u, d, d * DETOUR / speed))
    out.sort(key=lambda s: (s.eta_s, s.unit.unit_id))
    return out[:n]

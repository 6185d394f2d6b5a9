"""Which units to send: the nearest available ones, with distance and a time to arrive.

Straight-line distance times a detour factor (city streets are not straight), at a speed by
kind of unit; good enough to rank and to say "about 6 minutes" to a commander.

Frames: units and cases are held in the situation's one display frame (GCJ-02 or WGS-84,
``feeds.districts.frame_of``), so a distance is measured between two points of the same
frame (the two frames differ by a near-constant shift: the same metres to well under 1 m in
10 km), and a district is found by the situation's locator, of that frame. No Qt.
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


# ---- is this order sane? (issue 14: the commander is asked before a far or foreign send) ------
@dataclass(frozen=True)
class Concern:
    """What is odd about sending ``unit`` to ``case``: how far (and how long), and whose
    district. ``far`` and ``home != case_district`` are the reasons to ask."""
    suggestion: Suggestion
    far: bool
    home: str | None                # the unit's district (adcode), when known
    case_district: str | None

    @property
    def outside(self) -> bool:
        return self.home is not None and self.case_district is not None \
            and self.home != self.case_district

    @property
    def ask(self) -> bool:
        return self.far or self.outside


def suggest(unit: Unit, case: Case) -> Suggestion:
    """One unit's distance to the case and its time to arrive."""
    d = distance_m(unit.lon, unit.lat, case.lon, case.lat)
    return Suggestion(unit, d, d * DETOUR / SPEED_MS.get(unit.kind, DEFAULT_SPEED_MS))


def home_district(situation, unit: Unit) -> str | None:
    """The district a unit belongs to (adcode): the one its callsign names ("东城-巡03" →
    东城, as city units are called), else the one it stands in."""
    from feeds.districts import by_adcode
    head = unit.callsign.split("-", 1)[0].strip() if "-" in unit.callsign else ""
    if head:
        for code, d in by_adcode().items():
            english = d.name_en.removesuffix(" District")
            if head in (d.short_zh, d.name_zh, d.name_en, english) \
                    or head.lower() == english.lower():
                return code
    return situation.locator.locate(unit.lon, unit.lat)


def case_district(situation, case: Case) -> str | None:
    return case.district or situation.locator.locate(case.lon, case.lat)


def concern(situation, case: Case, unit: Unit, max_m: float) -> Concern:
    sug = suggest(unit, case)
    return Concern(sug, sug.distance_m > max_m, home_district(situation, unit),
                   case_district(situation, case))


def alternative(situation, case: Case, exclude: str, max_m: float,
                allowed=None) -> Suggestion | None:
    """The unit to send instead of ``exclude``: the nearest available one (by time to arrive)
    that would not itself be asked about — near enough and of the case's district — else the
    nearest available one at all; ``allowed(unit_id)`` filters (the seat's role). None when
    no other unit is available."""
    others = [s for s in nearest_available(situation, case, n=len(situation.units))
              if s.unit.unit_id != exclude and (allowed is None or allowed(s.unit.unit_id))]
    if not others:
        return None
    where = case_district(situation, case)
    for s in others:
        if s.distance_m <= max_m and (where is None or home_district(situation, s.unit)
                                      in (None, where)):
            return s
    return others[0]

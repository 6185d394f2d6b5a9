"""Shared by the district-wall tests (``test_district_wall.py``, ``test_district_wall_panels.py``):
points inside Dongcheng, Chaoyang and Haidian, typed records, a batch with its seq tracked, a
situation scoped to some districts, and a day of the city's work in two districts."""
from __future__ import annotations

from situation.clock import ManualClock
from situation.scope import Scope
from situation.store import Situation
from tests.pubhelp import batch_of, rec  # noqa: F401 (the district tests take them from here)

T0 = 1_700_000_000_000
DONGCHENG, CHAOYANG, HAIDIAN = "110101", "110105", "110108"
# Points inside each district (GCJ-02, as the district data)
IN_DONGCHENG = dict(lat=39.91, lon=116.40)
IN_CHAOYANG = dict(lat=39.93, lon=116.48)
IN_HAIDIAN = dict(lat=39.96, lon=116.30)
FAR_AWAY = dict(lat=10.0, lon=10.0)                 # in no district at all




def scoped(*adcodes, clock=None) -> Situation:
    return Situation(clock or ManualClock(T0 + 60_000), scope=Scope(adcodes))


def city_day(now: int) -> list:
    """Cases in Dongcheng and Chaoyang over the last hours: dispatched, on scene, closed; and
    a unit patrolling each."""
    out, seq = [], 0
    for i in range(12):
        where, d = (IN_DONGCHENG, "D") if i % 2 == 0 else (IN_CHAOYANG, "C")
        cid = f"{d}{i}"
        at = now - 3_600_000 + i * 60_000
        lat, lon = where["lat"] + i * 1e-4, where["lon"] + i * 1e-4
        for k, status in enumerate(("registered", "dispatched", "on_scene", "closed")[:1 + i % 4]):
            out.append(rec("case", seq=seq, ts=at + k * 240_000, case_id=cid, status=status,
                           reported_at=at, due_at=at + 1_800_000, lat=lat, lon=lon,
                           flags=["rework"] if i % 5 == 0 else []))
            seq += 1
    for k in range(20):
        out.append(rec("unit", seq=seq, ts=now - 1_200_000 + k * 60_000, unit_id="UD",
                       lat=39.91 + k * 3e-4, lon=116.40))
        out.append(rec("unit", seq=seq + 1, ts=now - 1_200_000 + k * 60_000, unit_id="UC",
                       lat=39.93 + k * 3e-4, lon=116.48))
        seq += 2
    return out


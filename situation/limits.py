"""How much the situation holds: every table is bounded, so no sender can grow it for ever.

The README's "Bad input" section lists these with their defaults; ``main.py`` takes the ones a
centre may want to change (``--max-sources``, ``--open-case-max-days``).
"""
from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 24 * 3_600_000


@dataclass(frozen=True)
class Limits:
    # Sources followed (feed health, per-source counts); the rest are counted together as
    # ``too_many_sources``. Their records are still taken.
    max_sources: int = 1_000
    # Ids held per table: a record for a new id past these is refused as ``too_many_ids``.
    max_cases: int = 200_000
    max_units: int = 20_000
    max_sensors: int = 200_000
    # Closed cases are kept 48 h for the supervision figures, but at most this many (the
    # newest): a flood of short-lived cases cannot hold them all.
    max_closed_cases: int = 50_000
    # Nothing heard of it for this long (by the situation's clock): it leaves the picture.
    open_case_max_age_ms: int = 30 * DAY_MS
    unit_max_age_ms: int = 30 * DAY_MS
    sensor_max_age_ms: int = 1 * DAY_MS
    # First sightings kept for the demand figures (eight weeks), at most this many: eight
    # weeks of 7,000 cases a day.
    max_reports: int = 400_000

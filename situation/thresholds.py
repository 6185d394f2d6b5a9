"""Sensor alarm thresholds: which reading is normal, a warning or an alarm.

Values follow Chinese standards where one exists (GB 3095 air: PM2.5 24-h grade II 75 µg/m³,
"heavy" from 150; GB 3096 noise: 70 dB(A) by a trunk road by day) and plain operational sense
elsewhere. They are configuration, not protocol.
"""
from __future__ import annotations

OK, WARN, ALARM, UNKNOWN = 0, 1, 2, -1

# (kind, metric) → (warn_at, alarm_at); a reading at or above the bound is in that level.
THRESHOLDS: dict[tuple[str, str], tuple[float, float]] = {
    ("air", "pm25"): (75, 150),
    ("air", "pm10"): (150, 250),
    ("noise", "laeq"): (70, 85),
    ("crowd", "density"): (200, 350),
    ("vendor", "detections"): (1, 5),
    ("parking", "illegal"): (2, 5),
    ("manhole", "tilt_deg"): (5, 15),
    ("manhole", "open"): (1, 1),
    ("waste", "fill_pct"): (80, 95),
}


def metric_level(kind: str, metric: str, value: float) -> int:
    bounds = THRESHOLDS.get((kind, metric))
    if bounds is None:
        return UNKNOWN
    warn, alarm = bounds
    if value >= alarm:
        return ALARM
    if value >= warn:
        return WARN
    return OK


def reading_level(kind: str, metrics: dict[str, float]) -> int:
    """The worst level over a reading's metrics (unknown metrics don't raise it): the highest
    ``metric_level``, written out as one loop (a wall of 100,000 sensors asks it of each)."""
    level = UNKNOWN
    get = THRESHOLDS.get
    for metric, value in metrics.items():
        bounds = get((kind, metric))
        if bounds is None:
            continue
        if value >= bounds[1]:
            return ALARM                    # nothing is worse
        if value >= bounds[0]:
            level = WARN
        elif level < OK:
            level = OK
    return level

"""OwnTracks location messages → protocol ``UnitPosition`` records. Pure, no sockets, no Qt.

A field unit's phone runs OwnTracks and publishes on ``owntracks/USER/DEVICE`` a JSON object
``{"_type": "location", "lat": …, "lon": …, "tst": EPOCH_S, "vel": KM_H, "cog": DEG, "acc": M,
…}``. The device (``USER/DEVICE``) is mapped to the unit it rides with by the roster's
``device`` column (``feeds.roster_devices``); the message becomes ``UnitPosition(unit_id, lat,
lon, course=cog, speed=vel / 3.6 (m/s), accuracy=acc)`` at ``ts = tst × 1000``. Other fields
(``tid``, ``batt``, ``alt``, …) are ignored; a negative ``vel`` or ``cog`` (how iOS says it does
not know) is left out, not refused.

Refused, each by reason (one message, one count): ``too_large``, ``not_utf8``, ``not_json``
(also 1e400, lone surrogates), ``too_deep``, ``not_object``, ``not_location`` (any other
``_type``: ``transition``, ``waypoint``, ``lwt``, ``encrypted``, …, or none), ``unknown_device``
(not in the roster), ``no_time`` (no ``tst``), ``missing_field`` (no ``lat``/``lon``),
``wrong_type``, ``not_finite`` (a number beyond ±1.7e308: a JSON integer of any size is decoded
exactly), ``out_of_range`` (lat/lon, a negative accuracy, a course over 360, a time before
2000 or over 10 minutes ahead of the wall's clock). Nothing here raises.
"""
from __future__ import annotations

import math

from feeds.bounds import DEFAULT_FUTURE_MS, loads, time_problem
from feeds.schema import UnitPosition

MAX_DEPTH = 3                   # { "inregions": [ … ] }: a location's deepest field is a list
MAX_BYTES = 16 * 1024           # a location message is a few hundred bytes
FINITE = 1.7e308


def _number_problem(v) -> str | None:
    """None for a finite number within ``FINITE``, else ``wrong_type`` or ``not_finite``. A
    JSON integer of any size is decoded exactly; it is judged without ``math.isfinite``, which
    raises OverflowError on a 400-digit one."""
    if type(v) is int:
        return None if abs(v) <= FINITE else "not_finite"
    if type(v) is not float:
        return "wrong_type"
    return None if math.isfinite(v) and abs(v) <= FINITE else "not_finite"


def read_location(payload: bytes, *, device: str, devices: dict[str, str], src: str,
                  now_ms: int, future_ms: int = DEFAULT_FUTURE_MS
                  ) -> tuple[UnitPosition | None, str | None]:
    """(the position, None) or (None, the reason it is refused). ``seq`` is 0: the source
    numbers what it keeps."""
    try:
        return _read(bytes(payload), device, devices, src, now_ms, future_ms)
    except Exception:                           # a bug costs this message, never the caller
        return None, "internal"


def _read(payload: bytes, device: str, devices: dict[str, str], src: str, now_ms: int,
          future_ms: int) -> tuple[UnitPosition | None, str | None]:
    if len(payload) > MAX_BYTES:
        return None, "too_large"
    msg, problem = loads(payload, MAX_DEPTH)
    if problem is not None:
        return None, problem
    if not isinstance(msg, dict):
        return None, "not_object"
    if msg.get("_type") != "location":
        return None, "not_location"
    unit_id = devices.get(device)
    if unit_id is None:
        return None, "unknown_device"
    if "tst" not in msg:
        return None, "no_time"
    tst = msg["tst"]
    if type(tst) is not int:
        return None, "wrong_type"
    if abs(tst) > 10 ** 13:
        return None, "out_of_range"
    ts = tst * 1000
    if time_problem(ts, now_ms, future_ms):
        return None, "out_of_range"
    if "lat" not in msg or "lon" not in msg:
        return None, "missing_field"
    lat, lon = msg["lat"], msg["lon"]
    problem = _number_problem(lat) or _number_problem(lon)
    if problem:
        return None, problem
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None, "out_of_range"
    extra: dict[str, float] = {}
    for key, field, lo, hi in (("vel", "speed", 0.0, 3.6e5), ("cog", "course", 0.0, 360.0),
                               ("acc", "accuracy", 0.0, 1e7)):
        if key not in msg or msg[key] is None:
            continue
        v = msg[key]
        problem = _number_problem(v)
        if problem:
            return None, problem
        if v < 0 and key != "acc":
            continue                    # iOS says "not known" with a negative speed/course
        if not lo <= v <= hi:
            return None, "out_of_range"
        extra[field] = float(v)
    if "speed" in extra:
        extra["speed"] = extra["speed"] / 3.6          # km/h → m/s
    return UnitPosition(v=1, src=src, seq=0, ts=ts, unit_id=unit_id, lat=float(lat),
                        lon=float(lon), **extra), None

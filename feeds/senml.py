"""RFC 8428 JSON SenML packs → protocol ``SensorReading`` records. Pure, no sockets, no Qt.

A pack is a JSON array of records. How one becomes readings:

- The base name ``bn`` (it applies to its record and every later one, until another ``bn``) is
  the sensor's id, with trailing ``:`` and ``/`` taken off (the RFC's convention ends a base
  name with its separator, ``urn:dev:ow:10e2073a01080063:``, so that ``bn + n`` reads well; the
  wall shows the device, not the separator). A pack whose first record has no ``bn`` is refused
  ``no_base_name``. A pack may change ``bn`` midway: each sensor gets its own readings.
- Each record's ``n`` is a metric, mapped to the protocol's names by ``NAMES`` (``pm2.5`` →
  ``pm25``, ``LAeq`` → ``laeq``, …; any other name is kept as it is). ``lat`` and ``lon`` (by
  name, or by the registered units ``lat``/``lon``) are the sensor's position.
- Time: ``bt + t`` in seconds (both default 0); a sum below 2**28 is relative to now, as the
  RFC says (0 is "now", -60 a minute ago). One reading per sensor and time, in the pack's
  order; a record without time is "now" — except in a retained pack (``read(…, retained=True)``,
  MQTT's retain flag: the broker kept it, it may be any age), where a reading whose time is
  missing or relative is refused ``retained_no_time`` (its position is still taken).
  Milliseconds, judged by ``feeds.bounds.time_problem`` (before 2000, past year 9999 or over
  10 minutes ahead of the wall's clock: ``out_of_range``).
- Values: ``bv + v``; a boolean ``vb`` is 1 or 0 (a manhole's ``open``). A record holding two
  of ``v``/``vs``/``vb``/``vd``, or only a string or data value, or none, cannot be a metric:
  ``senml_bad_value``. A unit (``u``, else ``bu``) that is neither registered (RFC 8428 and the
  secondary units of RFC 8798) nor in ``EXTRA_UNITS`` refuses its record ``unknown_measure_unit``:
  a number whose unit the wall cannot read could be shown wrong by a factor (°F as °C).
- Position: from the pack, else the last one a pack gave for that sensor (remembered for at
  most ``max_positions`` sensors, least recently used forgotten). A reading with neither is
  refused ``no_position``. A pack with only a position is remembered and gives no reading.

Refusals: the whole pack, once — ``too_large`` (over ``MAX_BYTES``, checked before decoding, or
more than ``MAX_PACK_RECORDS`` records), ``not_json`` (also 1e400 and lone surrogates, which
msgspec refuses), ``not_utf8``, ``too_deep``, ``wrong_type`` (not an array, a base field of the
wrong type), ``not_finite`` (a base number beyond ±1.7e308: a JSON integer of any size is
decoded exactly, and is judged without ``float()``, which would overflow),
``unknown_version`` (``bver`` above 10 or a must-understand field ending in ``_``),
``missing_field`` (an empty pack), ``no_base_name``; one per record — ``not_object``,
``missing_field`` (no ``n``), ``wrong_type``, ``bad_text``, ``senml_bad_value``,
``unknown_measure_unit``, ``not_finite``, ``out_of_range`` (time, lat/lon),
``retained_no_time``; one per reading —
``no_position``, ``too_large`` (more metrics than a reading holds). Nothing here raises.
"""
from __future__ import annotations

import math
from collections import Counter, OrderedDict

from feeds.bounds import DEFAULT_FUTURE_MS, loads, time_problem, valid_id
from feeds.schema import SensorReading

MAX_PACK_RECORDS = 64
MAX_BYTES = 64 * 1024            # 64 records of a few hundred bytes; checked before decoding
MAX_METRICS = 32                 # feeds.schema.Metrics
MAX_POSITIONS = 10_000
MAX_DEPTH = 3                    # [ { scalar } ] and a little room
RELATIVE_BELOW_S = 2 ** 28
SENML_VERSION = 10
FINITE = 1.7e308                 # feeds.schema.Finite

# Record names → the protocol's metric names (by the lower-cased name).
NAMES = {
    "pm2.5": "pm25", "pm2_5": "pm25", "pm25": "pm25",
    "pm10": "pm10",
    "noise": "laeq", "laeq": "laeq",
    "density": "density", "crowd_density": "density",
    "fill": "fill_pct", "fill_pct": "fill_pct", "fill_level": "fill_pct",
    "tilt": "tilt_deg", "tilt_deg": "tilt_deg",
    "open": "open",
    "temperature": "temperature", "temp": "temperature",
    "humidity": "humidity",
}
LAT_NAMES = ("lat", "latitude")
LON_NAMES = ("lon", "longitude")

# RFC 8428 section 12.1, and RFC 8798's secondary units.
UNITS = frozenset("""m kg g s A K cd mol Hz rad sr N Pa J W C V F Ohm S Wb T H Cel lm lx Bq Gy Sv
kat m2 m3 l m/s m/s2 m3/s l/s W/m2 cd/m2 bit bit/s lat lon pH dB dBW Bspl count / % %RH %EL EL
1/s 1/min beat/min beats S/m B VA VAs var vars J/m kg/m3 deg
ms min h MHz kW kVA kvar Ah kWh varh kvarh kVAh Wh/km KiB GB Mbit/s B/s MB/s mV mA dBm ug/m3
mm/h m/h ppm /100 /1000 hPa mm cm km km/h""".split())
# Not registered, but what sensors in the field send: kept (say so when adding one).
EXTRA_UNITS = frozenset({"dBA", "ppb"})

BASE_NUMBERS = ("bt", "bv", "bs")


class SenmlReader:
    """Reads packs for one source; remembers sensors' last positions (bounded)."""

    def __init__(self, max_positions: int = MAX_POSITIONS, future_ms: int = DEFAULT_FUTURE_MS):
        self.max_positions = max_positions
        self.future_ms = future_ms
        self.positions: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def read(self, payload: bytes, *, kind: str, src: str, now_ms: int, retained: bool = False
             ) -> tuple[list[SensorReading], Counter]:
        """The readings of one pack (``seq`` 0: the source numbers them) and the refusals by
        reason. ``retained``: the broker kept the pack (MQTT's retain flag), so it may be any
        age: a reading without an absolute time is refused ``retained_no_time``."""
        refused: Counter = Counter()
        try:
            return self._read(bytes(payload), kind, src, now_ms, refused, retained), refused
        except Exception:                       # a bug costs this pack, never the caller
            refused.clear()
            refused["internal"] += 1
            return [], refused

    def _read(self, payload: bytes, kind: str, src: str, now_ms: int,
              refused: Counter, retained: bool = False) -> list[SensorReading]:
        if len(payload) > MAX_BYTES:
            refused["too_large"] += 1
            return []
        value, problem = loads(payload, MAX_DEPTH)
        if problem is not None:
            refused[problem] += 1
            return []
        problem = _pack_problem(value)
        if problem is not None:
            refused[problem] += 1
            return []
        bn: str | None = None
        bt = bv = 0.0
        bu: str | None = None
        groups: OrderedDict[tuple[str, int], dict[str, float]] = OrderedDict()
        found: dict[str, dict[str, float]] = {}           # sensor → lat/lon from this pack
        for rec in value:
            if not isinstance(rec, dict):
                refused["not_object"] += 1
                continue
            # Base fields (checked by _pack_problem) apply from this record on.
            if "bn" in rec:
                bn = rec["bn"]
            if "bt" in rec:
                bt = float(rec["bt"])
            if "bv" in rec:
                bv = float(rec["bv"])
            if "bu" in rec:
                bu = rec["bu"]
            sensor = _sensor_id(bn)
            if sensor is None:
                refused["bad_text"] += 1
                continue
            reason = self._one(rec, sensor, bt, bv, bu, now_ms, groups, found, retained)
            if reason:
                refused[reason] += 1
        for sensor, pos in found.items():
            if "lat" in pos and "lon" in pos:
                self._remember(sensor, (pos["lat"], pos["lon"]))
        out = []
        for (sensor, ts), metrics in groups.items():
            pos = self.positions.get(sensor)
            if pos is None:
                refused["no_position"] += 1
                continue
            if len(metrics) > MAX_METRICS:
                refused["too_large"] += 1
                continue
            self.positions.move_to_end(sensor)
            out.append(SensorReading(v=1, src=src, seq=0, ts=ts, id=sensor, kind=kind,
                                     lat=pos[0], lon=pos[1], metrics=metrics))
        return out

    def _one(self, rec: dict, sensor: str, bt: float, bv: float, bu, now_ms: int,
             groups: dict, found: dict, retained: bool = False) -> str | None:
        name = rec.get("n")
        if name is None:
            return "missing_field"
        if not isinstance(name, str):
            return "wrong_type"
        if not valid_id(name):
            return "bad_text"
        has = [k for k in ("v", "vs", "vb", "vd") if k in rec]
        if len(has) > 1 or has and has[0] in ("vs", "vd"):
            return "senml_bad_value"
        if has == ["v"]:
            v = rec["v"]
            if type(v) not in (int, float):
                return "wrong_type"
            if not _finite(v):
                return "not_finite"
            value = bv + float(v)
        elif has == ["vb"]:
            if type(rec["vb"]) is not bool:
                return "wrong_type"
            value = 1.0 if rec["vb"] else 0.0
        elif "bv" in rec:
            value = bv
        else:
            return "senml_bad_value"            # a sum only, or nothing
        if not (math.isfinite(value) and abs(value) <= FINITE):
            return "not_finite"
        unit = rec.get("u", bu)
        if unit is not None:
            if not isinstance(unit, str):
                return "wrong_type"
            if unit not in UNITS and unit not in EXTRA_UNITS:
                return "unknown_measure_unit"
        t = rec.get("t", 0)
        if type(t) not in (int, float):
            return "wrong_type"
        if not _finite(t):
            return "not_finite"
        seconds = bt + float(t)
        ts = _ts_ms(seconds, now_ms)
        if ts is None or time_problem(ts, now_ms, self.future_ms):
            return "out_of_range"
        low = name.lower()
        # A retained pack may be any age: a position is still where the sensor stands, but a
        # reading needs an absolute time (a missing or relative one would be "now").
        stale = retained and seconds < RELATIVE_BELOW_S
        if low in LAT_NAMES or unit == "lat":
            if not -90.0 <= value <= 90.0:
                return "out_of_range"
            found.setdefault(sensor, {})["lat"] = value
            return None
        if low in LON_NAMES or unit == "lon":
            if not -180.0 <= value <= 180.0:
                return "out_of_range"
            found.setdefault(sensor, {})["lon"] = value
            return None
        if stale:
            return "retained_no_time"
        groups.setdefault((sensor, ts), {})[NAMES.get(low, name)] = value
        return None

    def _remember(self, sensor: str, pos: tuple[float, float]) -> None:
        self.positions[sensor] = pos
        self.positions.move_to_end(sensor)
        while len(self.positions) > self.max_positions:
            self.positions.popitem(last=False)


def _pack_problem(value) -> str | None:
    """Why the whole pack is refused, or None."""
    if not isinstance(value, list):
        return "wrong_type"
    if not value:
        return "missing_field"
    if len(value) > MAX_PACK_RECORDS:
        return "too_large"
    first = value[0]
    if isinstance(first, dict) and "bn" not in first:
        return "no_base_name"
    for rec in value:
        if not isinstance(rec, dict):
            continue
        if any(isinstance(k, str) and k.endswith("_") for k in rec):
            return "unknown_version"            # must-understand fields: none understood
        if "bver" in rec and (type(rec["bver"]) is not int or rec["bver"] > SENML_VERSION):
            return "unknown_version"
        for k in BASE_NUMBERS:
            if k in rec and type(rec[k]) not in (int, float):
                return "wrong_type"
            if k in rec and not _finite(rec[k]):
                return "not_finite"
        for k in ("bn", "bu"):
            if k in rec and not isinstance(rec[k], str):
                return "wrong_type"
    if not isinstance(first, dict):
        return "no_base_name"
    return None


def _finite(v: int | float) -> bool:
    """A finite number within ``FINITE``; a JSON integer of any size never raises here
    (``float()`` of a 400-digit one would: OverflowError)."""
    if type(v) is int:
        return abs(v) <= FINITE
    return math.isfinite(v) and abs(v) <= FINITE


def _sensor_id(bn: str | None) -> str | None:
    if bn is None:
        return None
    sensor = bn.rstrip(":/")
    return sensor if valid_id(sensor) else None


def _ts_ms(seconds: float, now_ms: int) -> int | None:
    """ms since the epoch; a time below 2**28 s is relative to now (RFC 8428 section 4.5.3)."""
    if not math.isfinite(seconds) or abs(seconds) > 1e13:
        return None
    if seconds < RELATIVE_BELOW_S:
        return int(now_ms + round(seconds * 1000))
    return int(round(seconds * 1000))

"""The cases as Open311 GeoReport v2 service requests, for other civic tools.

One request per case, the fields of GeoReport v2's ``GET requests`` answer:
``service_request_id`` (the case id), ``status`` (``open``, or ``closed`` for closed and
rejected cases), ``service_code`` (the category code) and ``service_name`` (its name),
``description`` (as the citizen or patrol wrote it: data, verbatim), ``lat``/``long``,
``requested_datetime`` (reported), ``updated_datetime`` (the record's ``ts``),
``expected_datetime`` (the current stage's deadline, or null), ``agency_responsible`` (or
null), and ``address`` (or null). Datetimes are ISO 8601 in Beijing time with the zone
(``2026-11-24T09:30:00+08:00``). Nothing of units, publishers or people is exported.

Frame: GeoReport's ``lat``/``long`` are WGS-84, as every consumer reads them. Cases are held
in the wall's display frame (``feeds.districts.frame_of``: GCJ-02 by default) and converted on
the way out (``feeds.crs_arrays.export_point``). A case whose point is outside China (a bad fix, lat 0
lon 0) cannot be converted as GCJ-02 — GCJ-02 is WGS-84 there by the transform's own
convention — so it is exported as held, not left out: the citizen's report still reaches the
other tools, and its coordinates are as wrong as they came. ``open311_document`` names those
cases (``as_held``) for whoever wants to count or flag them.
No Qt here.
"""
from __future__ import annotations

import json
import math
import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from feeds.crs import GCJ02
from feeds.crs_arrays import EXPORT_CRS, export_point
from feeds.districts import frame_of
from feeds.schema import CLOSED_CASE_STATUSES, Case
from situation.atomic import write_text_atomic
from situation.catalog import category_name
from situation.store import Situation

CITY_TZ = ZoneInfo("Asia/Shanghai")

# field → (allowed JSON types, may be null)
REQUIRED_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "service_request_id": ((str,), False),
    "status": ((str,), False),
    "service_code": ((str,), False),
    "service_name": ((str,), False),
    "description": ((str,), False),
    "lat": ((float, int), False),
    "long": ((float, int), False),
    "requested_datetime": ((str,), False),
    "updated_datetime": ((str,), False),
    "expected_datetime": ((str,), True),
    "agency_responsible": ((str,), True),
}
# Other fields GeoReport v2 defines; allowed in a document, only ``address`` is written here.
OPTIONAL_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "address": ((str,), True),
    "address_id": ((str,), True),
    "zipcode": ((str,), True),
    "media_url": ((str,), True),
    "service_notice": ((str,), True),
    "status_notes": ((str,), True),
}
DATETIME_FIELDS = ("requested_datetime", "updated_datetime", "expected_datetime")
STATUSES = ("open", "closed")


def _text(text: str | None) -> str | None:
    """As it came, unless it holds a lone surrogate (JSON's ``"\\ud800"`` decodes to one),
    which UTF-8 cannot carry: that one character becomes U+FFFD."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def iso_time(ms: int | None) -> str | None:
    """ms since the epoch → ISO 8601 in Beijing time with its zone, to the second. A value no
    date can hold (inputs are checked on the way in; this is the last guard) is None: an
    export never fails on a stored value."""
    if ms is None:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, tz=CITY_TZ).isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError):
        return None


def service_request(case: Case, lang: str = "zh", crs: str = GCJ02) -> dict:
    """One case as a GeoReport v2 request; ``crs`` is the frame the case's point is held in
    (the situation's): ``lat``/``long`` are written in WGS-84."""
    lat, lon, _converted = export_point(case.lat, case.lon, crs)
    return {
        "service_request_id": _text(case.case_id),
        "status": "closed" if case.status in CLOSED_CASE_STATUSES else "open",
        "service_code": _text(case.category),
        "service_name": _text(category_name(case.category, lang)),
        "description": _text(case.description),
        "lat": lat,
        "long": lon,
        "requested_datetime": iso_time(case.reported_at),
        "updated_datetime": iso_time(case.ts),
        "expected_datetime": iso_time(case.due_at),
        "agency_responsible": _text(case.agency),
        "address": _text(case.address),
    }


def open311_document(situation: Situation, include_closed: bool = False,
                     lang: str = "zh") -> tuple[list[dict], list[str]]:
    """(requests, as_held): ``open311_requests``, and the ids of the cases whose point could
    not be converted to WGS-84 (outside China: exported as held, see the module's note)."""
    crs = frame_of(situation)
    cases = situation.cases.values() if include_closed else situation.open_cases()
    ordered = sorted(cases, key=lambda c: (-c.reported_at, c.case_id))
    as_held = [c.case_id for c in ordered if crs != EXPORT_CRS
               and not export_point(c.lat, c.lon, crs)[2]]
    return [service_request(c, lang, crs) for c in ordered], as_held


def open311_requests(situation: Situation, include_closed: bool = False,
                     lang: str = "zh") -> list[dict]:
    """The open cases (and with ``include_closed`` the closed and rejected ones too) as
    GeoReport v2 service requests, newest report first as GeoReport lists them; positions in
    WGS-84 whatever the wall's display frame."""
    return open311_document(situation, include_closed, lang)[0]


def write_open311(situation: Situation, path: str | os.PathLike, lang: str = "zh",
                  include_closed: bool = False) -> Path:
    """Write the requests as one JSON array (UTF-8), atomically."""
    doc = open311_requests(situation, include_closed, lang)
    text = json.dumps(doc, ensure_ascii=False, indent=1, allow_nan=False) + "\n"
    return write_text_atomic(path, text)


def _check_datetime(value: str) -> str | None:
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return "is not an ISO 8601 datetime"
    if dt.tzinfo is None or dt.utcoffset() is None:
        return "has no time zone"
    return None


def validate_open311(doc) -> list[str]:
    """Problems with a GeoReport v2 ``requests`` document (a JSON array of service
    requests), one line each; an empty list means it is valid."""
    if not isinstance(doc, list):
        return [f"the document is a {type(doc).__name__}, not an array of service requests"]
    problems: list[str] = []
    seen: set[str] = set()
    for i, req in enumerate(doc):
        where = f"request {i}"
        if not isinstance(req, dict):
            problems.append(f"{where}: is a {type(req).__name__}, not an object")
            continue
        rid = req.get("service_request_id")
        if isinstance(rid, str):
            where = f"request {i} ({rid})"
            if rid in seen:
                problems.append(f"{where}: service_request_id appears twice")
            seen.add(rid)
        for name, (types, nullable) in REQUIRED_FIELDS.items():
            if name not in req:
                problems.append(f"{where}: {name} is missing")
        for name, value in req.items():
            rule = REQUIRED_FIELDS.get(name) or OPTIONAL_FIELDS.get(name)
            if rule is None:
                problems.append(f"{where}: {name} is not a GeoReport v2 field")
                continue
            types, nullable = rule
            if value is None:
                if not nullable:
                    problems.append(f"{where}: {name} is null")
                continue
            if isinstance(value, bool) or not isinstance(value, types):
                problems.append(f"{where}: {name} is a {type(value).__name__}, "
                                f"not {' or '.join(t.__name__ for t in types)}")
                continue
            if name in DATETIME_FIELDS:
                bad = _check_datetime(value)
                if bad:
                    problems.append(f"{where}: {name} {bad}: {value!r}")
        if "status" in req and isinstance(req["status"], str) and req["status"] not in STATUSES:
            problems.append(f"{where}: status is {req['status']!r}, not open or closed")
        for name in ("service_request_id", "service_code"):
            if isinstance(req.get(name), str) and not req[name].strip():
                problems.append(f"{where}: {name} is empty")
        for name, limit in (("lat", 90.0), ("long", 180.0)):
            value = req.get(name)
            if (isinstance(value, (float, int)) and not isinstance(value, bool)
                    and not (math.isfinite(value) and -limit <= value <= limit)):
                problems.append(f"{where}: {name} {value} is out of range")
    return problems

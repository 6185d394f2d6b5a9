"""Coordinate frames: WGS-84 (GPS, OSM, OwnTracks, SenML) and GCJ-02 (AMap's frame, the
district data's, the demo city's and the protocol's default).

Every source says which frame its points are in; the wall holds one display frame (GCJ-02 by
default, WGS-84 with ``--map-crs wgs84``) and points are converted on the way in, here. The
transform is the published one, from PRCoords (public domain); its inverse is PRCoords'
iterative one (about 0.1 mm).

GCJ-02 is defined only inside China (PRCoords' bounding box). A point outside it given as
GCJ-02 that has to be converted (a WGS-84 wall) cannot be placed: it is refused as
``gcj02_outside_china`` and counted. Where no conversion is asked (GCJ-02 in, GCJ-02 shown)
nothing is computed and the point is kept as sent: the wall lists a case far outside the city
under 位置异常 (``situation.public_map``) rather than lose a citizen's report to a bad fix. A
WGS-84 point outside China is kept as it is either way: GCJ-02 equals WGS-84 there by the
transform's own convention, and the wall's bounds judge it.
"""
from __future__ import annotations

import math

import msgspec
import prcoords

WGS84 = "wgs84"
GCJ02 = "gcj02"
FRAMES = (WGS84, GCJ02)
PROTOCOL_DEFAULT = GCJ02        # ../shared/PROTOCOL.md: a record's frame unless its feed says
OUTSIDE = "gcj02_outside_china"


def check_frame(name: str) -> str:
    """A frame's name as configured, or ValueError naming the two there are."""
    key = str(name).strip().lower().replace("-", "")
    if key not in FRAMES:
        raise ValueError(f"unknown coordinate frame {name!r}: use wgs84 or gcj02")
    return key


def in_china(lat: float, lon: float) -> bool:
    return prcoords.sanity_in_china_p(prcoords.Coords(lat, lon))


def convert(lat: float, lon: float, src: str, dst: str) -> tuple[float, float] | None:
    """(lat, lon) in ``dst``; None for a GCJ-02 point outside China (either direction)."""
    if src == dst:
        return lat, lon
    if not in_china(lat, lon):
        return None if src == GCJ02 else (lat, lon)
    if src == WGS84:
        out = prcoords.wgs_gcj((lat, lon), False)
    else:
        out = prcoords.gcj_wgs_bored((lat, lon), False)
    if not (math.isfinite(out.lat) and math.isfinite(out.lon)):
        return None
    return out.lat, out.lon


def reframe(records: list, src: str, dst: str) -> tuple[list, list]:
    """Records with ``lat``/``lon`` moved from frame ``src`` to ``dst``; records without a
    position pass as they are. Returns (kept, refused): each refused record's reason is
    ``OUTSIDE``."""
    kept, refused = [], []
    if src == dst:
        return list(records), refused
    for rec in records:
        lat = getattr(rec, "lat", None)
        if lat is None:
            kept.append(rec)
            continue
        moved = convert(lat, rec.lon, src, dst)
        if moved is None:
            refused.append(rec)
        elif moved == (lat, rec.lon):
            kept.append(rec)
        else:
            kept.append(msgspec.structs.replace(rec, lat=moved[0], lon=moved[1]))
    return kept, refused

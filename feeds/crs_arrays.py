"""``feeds.crs.convert`` for arrays of points (the same PRCoords formulas, vectorised with
numpy), and the frame exports are written in (``EXPORT_CRS``, ``export_point``).

Used where many points move at once (the district polygons, about 9,000 vertices, when the
wall shows WGS-84; an export of every case). The arithmetic is PRCoords' (``wgs_gcj``: the
published GCJ-02 distortion on the Krasovsky ellipsoid; ``gcj_wgs_bored``: its rough inverse,
then fixed-point steps until a step is within ``PRC_EPS`` or ten steps, judged per point),
term by term in the same order, so the results agree with ``feeds.crs.convert`` to the last
few ulps (``tests/test_frames.py`` holds them to 1e-12°, about 0.1 µm).

Same rules as ``feeds.crs.convert``: a point outside PRCoords' China box given as GCJ-02 cannot
be converted (NaN out, ``ok`` False); a WGS-84 point outside it stays as it is. No Qt.
"""
from __future__ import annotations

import numpy as np
import prcoords

from feeds.crs import GCJ02, WGS84, check_frame

_A = prcoords.GCJ_A
_EE = prcoords.GCJ_EE
_EPS = prcoords.PRC_EPS
_PI = np.pi


def in_china(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """``prcoords.sanity_in_china_p`` per point (False for NaN)."""
    return (0.8293 <= lat) & (lat <= 55.8271) & (72.004 <= lon) & (lon <= 137.8347)


def wgs_to_gcj(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``prcoords.wgs_gcj(..., False)`` for arrays (no China check)."""
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    x, y = lon - 105, lat - 35
    d_lat_m = (-100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y
               + 0.2 * np.sqrt(np.abs(x)) + (
                   2 * np.sin(x * 6 * _PI) + 2 * np.sin(x * 2 * _PI)
                   + 2 * np.sin(y * _PI) + 4 * np.sin(y / 3 * _PI)
                   + 16 * np.sin(y / 12 * _PI) + 32 * np.sin(y / 30 * _PI)) * 20 / 3)
    d_lon_m = (300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y
               + 0.1 * np.sqrt(np.abs(x)) + (
                   2 * np.sin(x * 6 * _PI) + 2 * np.sin(x * 2 * _PI)
                   + 2 * np.sin(x * _PI) + 4 * np.sin(x / 3 * _PI)
                   + 15 * np.sin(x / 12 * _PI) + 30 * np.sin(x / 30 * _PI)) * 20 / 3)
    rad_lat = np.radians(lat)
    magic = 1 - _EE * np.power(np.sin(rad_lat), 2)
    lat_deg_arclen = np.radians((_A * (1 - _EE)) / np.power(magic, 1.5))
    lon_deg_arclen = np.radians(_A * np.cos(rad_lat) / np.sqrt(magic))
    return lat + d_lat_m / lat_deg_arclen, lon + d_lon_m / lon_deg_arclen


def gcj_to_wgs(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``prcoords.gcj_wgs_bored(..., False)`` for arrays (no China check): the rough inverse,
    then up to ten fixed-point steps, each point stopping on its own."""
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    f_lat, f_lon = wgs_to_gcj(lat, lon)               # gcj_wgs: gcj - (wgs_gcj(gcj) - gcj)
    w_lat, w_lon = lat - (f_lat - lat), lon - (f_lon - lon)
    going = np.ones(lat.shape, dtype=bool)
    for _ in range(10):
        if not going.any():
            break
        g_lat, g_lon = wgs_to_gcj(w_lat[going], w_lon[going])
        d_lat, d_lon = g_lat - lat[going], g_lon - lon[going]
        w_lat[going] -= d_lat
        w_lon[going] -= d_lon
        still = np.hypot(d_lat, d_lon) > _EPS
        going[np.flatnonzero(going)[~still]] = False
    return w_lat, w_lon


def convert_arrays(lat, lon, src: str, dst: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lat, lon, ok) in ``dst``: ``feeds.crs.convert`` per point. Where ``ok`` is False (a
    GCJ-02 point outside China, or a non-finite result) lat/lon are NaN."""
    src, dst = check_frame(src), check_frame(dst)
    lat = np.array(lat, dtype=float, copy=True).ravel()
    lon = np.array(lon, dtype=float, copy=True).ravel()
    ok = np.ones(lat.shape, dtype=bool)
    if src == dst:
        return lat, lon, ok
    china = in_china(lat, lon)
    if src == WGS84:
        out_lat, out_lon = wgs_to_gcj(lat[china], lon[china])
    else:
        out_lat, out_lon = gcj_to_wgs(lat[china], lon[china])
        ok &= china
    lat[china], lon[china] = out_lat, out_lon
    ok &= np.isfinite(lat) & np.isfinite(lon)
    lat[~ok] = np.nan
    lon[~ok] = np.nan
    return lat, lon, ok


def convert_lonlat(xy: np.ndarray, src: str, dst: str) -> np.ndarray:
    """An (n, 2) array of (lon, lat) — GeoJSON's order, a ring's — in ``dst`` (NaN rows where
    a point cannot be converted)."""
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    lat, lon, _ok = convert_arrays(xy[:, 1], xy[:, 0], src, dst)
    return np.column_stack([lon, lat])


# ---- exports ---------------------------------------------------------------------------------
# What leaves the wall for other tools (Open311, the public map's GeoJSON) is WGS-84, whatever
# the display frame: GeoJSON (RFC 7946) and GeoReport v2 mean WGS-84.
EXPORT_CRS = WGS84


def export_point(lat: float, lon: float, crs: str) -> tuple[float, float, bool]:
    """A point held in frame ``crs`` as (lat, lon) in ``EXPORT_CRS``, and whether it could be
    converted. A GCJ-02 point outside China cannot (the transform is not defined there, and
    GCJ-02 equals WGS-84 there by its own convention): it comes back as held, with False, for
    the exporter to decide (Open311 writes it as held; the public map lists it unplaced)."""
    from feeds.crs import convert
    moved = convert(float(lat), float(lon), crs, EXPORT_CRS)
    if moved is None:
        return float(lat), float(lon), False
    return float(moved[0]), float(moved[1]), True


__all__ = ["EXPORT_CRS", "export_point", "GCJ02", "WGS84", "convert_arrays", "convert_lonlat", "gcj_to_wgs", "in_china",
           "wgs_to_gcj"]

"""The wire contract of ../shared/PROTOCOL.md (version 1) as typed msgspec structs.

Only what the protocol says lives here: record types, topics, the enumerations. Decoding
and the per-reason reject counting live in ``feeds.decode``.
"""
from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

PROTOCOL_VERSION = 1
DEFAULT_FEED = "tcp://127.0.0.1:5556"
DEFAULT_DISPATCH = "tcp://127.0.0.1:5557"
DEFAULT_MAX_RECORD_BYTES = 64 * 1024

Lat = Annotated[float, Meta(ge=-90.0, le=90.0)]
Lon = Annotated[float, Meta(ge=-180.0, le=180.0)]
Seq = Annotated[int, Meta(ge=0)]
Priority = Annotated[int, Meta(ge=1, le=3)]

CASE_STATUSES = ("reported", "registered", "dispatched", "on_scene", "resolved", "verified",
                 "closed", "rejected")
CLOSED_CASE_STATUSES = frozenset({"closed", "rejected"})
CASE_FLAGS = ("returned", "extended", "rework", "escalated")
CASE_SOURCES = ("patrol", "citizen", "sensor", "hotline", "video")
UNIT_KINDS = ("foot_patrol", "vehicle", "enforcement", "sanitation")
UNIT_STATUSES = ("available", "dispatched", "en_route", "on_scene", "returning", "off_duty",
                 "out_of_service")

CaseStatus = Annotated[str, Meta(pattern="^(reported|registered|dispatched|on_scene|resolved"
                                         "|verified|closed|rejected)$")]
UnitStatus = Annotated[str, Meta(pattern="^(available|dispatched|en_route|on_scene|returning"
                                         "|off_duty|out_of_service)$")]

# Metric values must be finite: msgspec already refuses NaN/Infinity literals in JSON, and
# these bounds refuse a float that overflowed to inf (1e999).
Finite = Annotated[float, Meta(ge=-1.7e308, le=1.7e308)]

# How much one record may hold beyond its byte size: what a panel, a list or an export shows of
# it, and a bound on the memory every held record costs (a case with 6,000 flags, a sensor with
# 4,000 metrics, each under 64 KiB on the wire, cost the console 10x that in objects).
Metrics = Annotated[dict[str, Finite], Meta(max_length=32)]
Flags = Annotated[list[str], Meta(max_length=8)]
Title = Annotated[str, Meta(max_length=200)]
Description = Annotated[str, Meta(max_length=8_000)]
ShortText = Annotated[str, Meta(max_length=500)]


class Record(msgspec.Struct, kw_only=True, gc=False):
    """Fields every record carries.

    ``gc=False``: records are not tracked by Python's cyclic garbage collector. A record holds
    only strings, numbers and containers of them, never a reference back to itself or to
    anything that holds it, so it can be in no cycle; a wall holds hundreds of thousands of
    them, and the collector walking them cost about a fifth of decode + apply on a city's mix
    in one process (one run each, 88,700 → 108,800 records/s: indicative; bench/ measures)."""
    v: int
    src: str
    seq: Seq
    ts: int

    def __deepcopy__(self, memo):
        # Records are never changed in place (a change is a new record), so a copy of the
        # picture (a replay's keyframe) shares them instead of copying every one.
        return self


class SensorReading(Record, kw_only=True):
    id: str
    kind: str
    lat: Lat
    lon: Lon
    metrics: Metrics
    district: str | None = None


class Case(Record, kw_only=True):
    case_id: str
    status: CaseStatus
    flags: Flags = []
    category: str
    agency: ShortText | None = None
    title: Title
    description: Description
    lat: Lat
    lon: Lon
    address: ShortText | None = None
    district: str | None = None
    source: str
    priority: Priority
    reported_at: int
    due_at: int | None = None
    unit_id: str | None = None


class Unit(Record, kw_only=True):
    unit_id: str
    callsign: str
    kind: str
    status: UnitStatus
    lat: Lat
    lon: Lon
    case_id: str | None = None
    shift: str | None = None
    course: Finite | None = None
    speed: Finite | None = None


class UnitPosition(Record, kw_only=True):
    """Where a unit is, and nothing else (topic ``unit.pos``, v1's one addition): a tracker,
    a phone or an AVL gateway that knows nothing of dispatch. It moves the unit, feeds its
    track and keeps it from going stale; it never changes the unit's status or case."""
    unit_id: str
    lat: Lat
    lon: Lon
    course: Finite | None = None
    speed: Finite | None = None
    accuracy: Finite | None = None


class Heartbeat(Record, kw_only=True):
    rate: Finite | None = None


def topic_of(record: Record) -> str:
    """The topic a record travels on."""
    if isinstance(record, SensorReading):
        return f"sensor.{record.kind}"
    if isinstance(record, Case):
        return "case"
    if isinstance(record, Unit):
        return "unit"
    if isinstance(record, UnitPosition):
        return "unit.pos"
    if isinstance(record, Heartbeat):
        return "hb"
    raise TypeError(f"not a protocol record: {type(record).__name__}")


def type_for_topic(topic: str) -> type[Record] | None:
    """The record type a topic carries, or None for a topic the console does not know."""
    if topic.startswith("sensor.") and len(topic) > len("sensor."):
        return SensorReading
    return {"case": Case, "unit": Unit, "unit.pos": UnitPosition, "hb": Heartbeat}.get(topic)


_encoder = msgspec.json.Encoder()


def encode(record: Record | list[Record]) -> bytes:
    return _encoder.encode(record)


def frames(record_or_batch: Record | list[Record]) -> list[bytes]:
    """The two frames of a feed message: ``[topic, payload]``. A batch shares one topic."""
    first = record_or_batch[0] if isinstance(record_or_batch, list) else record_or_batch
    return [topic_of(first).encode("ascii"), encode(record_or_batch)]

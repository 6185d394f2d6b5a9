"""Decode and validate feed messages: frames in, typed records and counted rejects out.

Pure functions over bytes, no sockets and no threads, so the receiver, the recorder's replay,
the dispatch service and the tests all judge a message the same way.

The fast path decodes a whole message straight into typed structs. Only when that fails (or a
batch is larger than one record may be) does the slow path judge record by record, so a batch
mixing good and bad records keeps its good ones.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Union

import msgspec

from feeds.schema import (DEFAULT_MAX_RECORD_BYTES, PROTOCOL_VERSION, Record, SensorReading,
                          type_for_topic)

UNKNOWN_SRC = "?"

# Reasons a record or message is refused; the feed-health panel shows them in these words.
REASONS = {
    "bad_frames": "wrong number of frames",
    "bad_topic": "topic is not ASCII",
    "unknown_topic": "topic not known (ignored)",
    "not_utf8": "payload is not UTF-8",
    "not_json": "payload is not JSON",
    "not_object": "record is not a JSON object",
    "too_large": "record larger than the limit",
    "unknown_version": "unknown protocol version",
    "missing_field": "required field missing",
    "wrong_type": "field of the wrong type",
    "out_of_range": "value out of range",
    "not_finite": "NaN or infinite number",
    "bad_value": "value not allowed",
    "topic_mismatch": "record does not match its topic",
}


@dataclass(slots=True)
class Reject:
    src: str
    reason: str
    seq: int | None = None
    detail: str = ""


@dataclass(slots=True)
class Decoded:
    topic: str = ""
    records: list[Record] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    # (src, seq) of every record that had them, good or bad, in the message's order: the
    # gap check must see them as they were sent.
    seqs: list[tuple[str, int]] = field(default_factory=list)


_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])


class MessageDecoder:
    """Judges one feed message at a time. Keeps one compiled msgspec decoder per record type."""

    def __init__(self, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES):
        self.max_record_bytes = max_record_bytes
        self._typed: dict[type, msgspec.json.Decoder] = {}

    def _decoder(self, rtype: type[Record]) -> msgspec.json.Decoder:
        dec = self._typed.get(rtype)
        if dec is None:
            dec = msgspec.json.Decoder(Union[rtype, list[rtype]])  # type: ignore[valid-type]
            self._typed[rtype] = dec
        return dec

    def decode(self, frames: list[bytes]) -> Decoded:
        out = Decoded()
        if len(frames) != 2:
            out.rejects.append(Reject(UNKNOWN_SRC, "bad_frames", detail=f"{len(frames)} frames"))
            return out
        raw_topic, payload = frames
        try:
            topic = raw_topic.decode("ascii")
        except UnicodeDecodeError:
            out.rejects.append(Reject(UNKNOWN_SRC, "bad_topic"))
            return out
        out.topic = topic
        rtype = type_for_topic(topic)
        if rtype is None:
            out.rejects.append(Reject(_peek_src(payload), "unknown_topic", detail=topic[:64]))
            return out

        # A message larger than one record may be is judged record by record (slow path):
        # a batch may be that large, a single record may not.
        if len(payload) <= self.max_record_bytes or self._records_within_limit(payload):
            try:
                decoded = self._decoder(rtype).decode(payload)
            except (msgspec.ValidationError, msgspec.DecodeError):
                pass
            else:
                for rec in decoded if isinstance(decoded, list) else (decoded,):
                    out.seqs.append((rec.src, rec.seq))
                    problem = _semantic_problem(topic, rec)
                    if problem:
                        out.rejects.append(Reject(rec.src, problem, rec.seq))
                    else:
                        out.records.append(rec)
                return out
        self._slow_path(topic, rtype, payload, out)
        return out

    def _records_within_limit(self, payload: bytes) -> bool:
        """A batch over the limit whose every record is within it may take the fast path."""
        try:
            raws = _RAW_LIST.decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return False
        return all(len(r) <= self.max_record_bytes for r in raws)

    def _slow_path(self, topic: str, rtype: type[Record], payload: bytes, out: Decoded) -> None:
        if isinstance(payload, memoryview):
            payload = bytes(payload)
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            out.rejects.append(Reject(_peek_src(payload), "not_utf8"))
            return
        if len(payload) > self.max_record_bytes and not text.lstrip().startswith("["):
            out.rejects.append(Reject(_peek_src(payload), "too_large",
                                      detail=f"{len(payload)} bytes"))
            return
        try:
            raw = msgspec.json.decode(payload)
        except msgspec.DecodeError:
            # Python's json accepts NaN/Infinity literals, which some publishers emit; parse
            # with it so the finite records of such a batch are kept and the rest named.
            try:
                raw = json.loads(text)
            except (ValueError, RecursionError):
                out.rejects.append(Reject(_peek_src(payload), "not_json"))
                return
        items = raw if isinstance(raw, list) else [raw]
        for item in items:
            self._judge_one(topic, rtype, item, out)

    def _judge_one(self, topic: str, rtype: type[Record], item: Any, out: Decoded) -> None:
        if not isinstance(item, dict):
            out.rejects.append(Reject(UNKNOWN_SRC, "not_object"))
            return
        src = item.get("src") if isinstance(item.get("src"), str) else UNKNOWN_SRC
        seq = item.get("seq") if type(item.get("seq")) is int else None
        if src != UNKNOWN_SRC and seq is not None and seq >= 0:
            out.seqs.append((src, seq))
        size = len(msgspec.json.encode(item)) if _may_be_large(item, self.max_record_bytes) else 0
        if size > self.max_record_bytes:
            out.rejects.append(Reject(src, "too_large", seq, f"{size} bytes"))
            return
        if "v" in item and item["v"] != PROTOCOL_VERSION:
            out.rejects.append(Reject(src, "unknown_version", seq, repr(item["v"])[:20]))
            return
        if _has_non_finite(item):
            out.rejects.append(Reject(src, "not_finite", seq))
            return
        try:
            rec = msgspec.convert(item, rtype)
        except msgspec.ValidationError as exc:
            out.rejects.append(Reject(src, _classify(str(exc)), seq, str(exc)[:200]))
            return
        problem = _semantic_problem(topic, rec)
        if problem:
            out.rejects.append(Reject(rec.src, problem, rec.seq))
        else:
            out.records.append(rec)


def _semantic_problem(topic: str, rec: Record) -> str | None:
    if rec.v != PROTOCOL_VERSION:
        return "unknown_version"
    if isinstance(rec, SensorReading) and topic != "sensor." + rec.kind:
        return "topic_mismatch"
    return None


def _classify(message: str) -> str:
    if "missing required field" in message:
        return "missing_field"
    if "matching regex" in message:
        return "bad_value"
    if ">=" in message or "<=" in message:
        return "out_of_range"
    return "wrong_type"


def _has_non_finite(obj: Any) -> bool:
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, dict):
        return any(_has_non_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_has_non_finite(v) for v in obj)
    return False


def _may_be_large(item: dict, limit: int) -> bool:
    # Cheap upper bound before re-encoding: only strings and containers can make a record big.
    total = 0
    for k, v in item.items():
        total += len(k) + (len(v) * 4 if isinstance(v, str) else 64 if not isinstance(
            v, (dict, list)) else limit + 1)
        if total > limit:
            return True
    return False


def _peek_src(payload: bytes) -> str:
    """Best effort: the ``src`` of a payload we cannot decode, so rejects count per source."""
    head = bytes(payload[:4096])
    idx = head.find(b'"src"')
    if idx < 0:
        return UNKNOWN_SRC
    rest = head[idx + 5:].lstrip()
    if not rest.startswith(b":"):
        return UNKNOWN_SRC
    rest = rest[1:].lstrip()
    if not rest.startswith(b'"'):
        return UNKNOWN_SRC
    end = rest.find(b'"', 1)
    if end < 0:
        return UNKNOWN_SRC
    try:
        return rest[1:end].decode("utf-8")[:64] or UNKNOWN_SRC
    except UnicodeDecodeError:
        return UNKNOWN_SRC

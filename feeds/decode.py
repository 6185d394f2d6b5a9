"""Decode and validate feed messages: frames in, typed records and counted rejects out.

Pure functions over bytes, no sockets and no threads, so the receiver, the recorder's replay,
the dispatch service and the tests all judge a message the same way. Nothing here raises on
any input: every decode is bounded (size, depth, items, text, time — ``feeds.bounds``), and a
message or record that cannot be judged is refused by reason and counted.

The fast path decodes a whole message straight into typed structs. Only when that fails (or a
batch is larger than one record may be) does the slow path judge record by record, so a batch
mixing good and bad records keeps its good ones — even when a bad one nests 100,000 deep.
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Union

import msgspec

from feeds.bounds import (DEFAULT_FUTURE_MS, DEFAULT_MAX_MESSAGE_BYTES, MAX_BATCH_ITEMS,
                          MAX_DEADLINE_AHEAD_MS, MAX_DEPTH, depth_exceeds, loads, time_problem,
                          valid_id, valid_text)
from feeds.schema import (DEFAULT_MAX_RECORD_BYTES, PROTOCOL_VERSION, Case, Record,
                          SensorReading, Unit, UnitPosition, type_for_topic)

LOG = logging.getLogger("feeds.decode")
UNKNOWN_SRC = "?"

# Reasons a record or message is refused; the feed-health panel shows them in these words.
REASONS = {
    "bad_frames": "wrong number of frames",
    "bad_topic": "topic is not printable ASCII",
    "unknown_topic": "topic not known (ignored)",
    "not_utf8": "payload is not UTF-8",
    "not_json": "payload is not JSON",
    "not_object": "record is not a JSON object",
    "too_large": "record or message larger than the limit",
    "too_deep": "JSON nested deeper than a record can be",
    "bad_text": "text with a lone surrogate or a control character",
    "unknown_version": "unknown protocol version",
    "missing_field": "required field missing",
    "wrong_type": "field of the wrong type",
    "out_of_range": "value out of range (a time too far ahead or before 2000)",
    "not_finite": "NaN or infinite number",
    "bad_value": "value not allowed",
    "topic_mismatch": "record does not match its topic",
    "too_many_sources": "more publishers than the console tracks",
    "too_many_ids": "more ids than the console holds",
    "src_not_allowed": "a src its publisher's key may not use",
    "internal": "the console could not judge it (a fault, logged)",
    # Not the decoder's: a well-formed ``unit.pos`` for a unit the picture does not hold
    # (no callsign, kind or status to show it by) is counted under this reason and dropped.
    "unknown_unit": "a position for a unit not known yet (dropped)",
    # Not the decoder's either: the other sources' reasons (feeds.crs, feeds.senml,
    # feeds.owntracks, feeds.mqtt_source), in one list with these.
    "gcj02_outside_china": "a GCJ-02 point outside China (cannot be converted)",
    "no_base_name": "a SenML pack whose first record has no base name",
    "senml_bad_value": "a SenML record without exactly one numeric value",
    "unknown_measure_unit": "a SenML unit of measure not registered",
    "no_position": "a SenML reading with no position given or remembered",
    "not_location": "an OwnTracks message other than a location",
    "no_time": "an OwnTracks location without tst",
    "unknown_device": "an OwnTracks device not in the roster",
    "unmapped_topic": "an MQTT topic no subscription reads",
    "backlog_full": "an MQTT message dropped: the backlog was full",
}

MAX_TOPIC_CHARS = 128


@dataclass(slots=True)
class Reject:
    src: str
    reason: str
    seq: int | None = None
    detail: str = ""
    count: int = 1          # records this refusal stands for (the rest of a hopeless batch)


@dataclass(slots=True)
class Decoded:
    topic: str = ""
    records: list[Record] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    # (src, seq) of every record that had them, good or bad, in the message's order: the
    # gap check must see them as they were sent.
    seqs: list[tuple[str, int]] = field(default_factory=list)


_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
# A batch whose records are refused this many times in a row is given up on: the rest of it is
# refused in one count (judging 100,000 hopeless items one by one costs half a second).
MAX_BAD_IN_A_ROW = 1_000


class MessageDecoder:
    """Judges one feed message at a time. Keeps one compiled msgspec decoder per record type.

    ``now_ms`` is the clock records are judged by (a ``ts`` more than ``future_ms`` ahead of it
    is refused); without one only the absolute bounds apply. ``decode(frames, now_ms=…)``
    judges one message by another time (a replay: the message's own log time).
    """

    def __init__(self, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, *,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 now_ms: Callable[[], int] | None = None, future_ms: int = DEFAULT_FUTURE_MS):
        self.max_record_bytes = max_record_bytes
        self.max_message_bytes = max(max_message_bytes, max_record_bytes)
        self.now_ms = now_ms
        self.future_ms = future_ms
        self._typed: dict[type, msgspec.json.Decoder] = {}

    def _decoder(self, rtype: type[Record]) -> msgspec.json.Decoder:
        dec = self._typed.get(rtype)
        if dec is None:
            dec = msgspec.json.Decoder(Union[rtype, list[rtype]])  # type: ignore[valid-type]
            self._typed[rtype] = dec
        return dec

    def decode(self, frames: list[bytes], now_ms: int | None = None) -> Decoded:
        out = Decoded()
        try:
            if now_ms is None and self.now_ms is not None:
                now_ms = self.now_ms()
            self._decode(frames, out, now_ms)
        except Exception as exc:        # a bug must cost one message, never the loop
            LOG.exception("feed decoder: could not judge a message (refused as internal)")
            out.records.clear()
            out.rejects.append(Reject(UNKNOWN_SRC, "internal", detail=repr(exc)[:200]))
        return out

    def _decode(self, frames: list[bytes], out: Decoded, now: int | None) -> None:
        if len(frames) != 2:
            out.rejects.append(Reject(UNKNOWN_SRC, "bad_frames", detail=f"{len(frames)} frames"))
            return
        raw_topic, payload = frames
        try:
            topic = bytes(raw_topic).decode("ascii")
        except UnicodeDecodeError:
            out.rejects.append(Reject(UNKNOWN_SRC, "bad_topic"))
            return
        if not (0 < len(topic) <= MAX_TOPIC_CHARS and topic.isprintable()):
            out.rejects.append(Reject(UNKNOWN_SRC, "bad_topic"))
            return
        out.topic = topic
        rtype = type_for_topic(topic)
        if rtype is None:
            out.rejects.append(Reject(_peek_src(payload), "unknown_topic", detail=topic[:64]))
            return
        if len(payload) > self.max_message_bytes:
            out.rejects.append(Reject(_peek_src(payload), "too_large",
                                      detail=f"{len(payload)} bytes"))
            return

        # The fast path: the whole message straight into typed structs (a typed decode nests
        # no deeper than a record's fields, whatever the payload). A message larger than one
        # record may be takes it too when every record in it is within the limit.
        decoded = None
        try:
            decoded = self._decoder(rtype).decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            pass
        if decoded is not None and len(payload) > self.max_record_bytes:
            if not isinstance(decoded, list) or not self._records_within_limit(payload):
                decoded = None
        if decoded is not None:
            for rec in decoded if isinstance(decoded, list) else (decoded,):
                out.seqs.append((rec.src, rec.seq))
                problem = self._problem(topic, rec, now)
                if problem:
                    out.rejects.append(Reject(rec.src if valid_id(rec.src) else UNKNOWN_SRC,
                                              problem, rec.seq))
                else:
                    out.records.append(intern_fields(rec))
            return
        self._slow_path(topic, rtype, bytes(payload), out, now)

    def _records_within_limit(self, payload: bytes) -> bool:
        """Every record of a (well-formed, typed-decodable) batch within the record limit."""
        try:
            raws = _RAW_LIST.decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            return False
        return all(len(r) <= self.max_record_bytes for r in raws)

    # ---- slow path: one record at a time ------------------------------------------------
    def _slow_path(self, topic: str, rtype: type[Record], payload: bytes, out: Decoded,
                   now: int | None) -> None:
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            out.rejects.append(Reject(_peek_src(payload), "not_utf8"))
            return
        is_batch = payload.lstrip().startswith(b"[")
        if len(payload) > self.max_record_bytes and not is_batch:
            out.rejects.append(Reject(_peek_src(payload), "too_large",
                                      detail=f"{len(payload)} bytes"))
            return
        value, problem = loads(payload, MAX_DEPTH, lenient=True)
        if problem is None:
            items = value if isinstance(value, list) else [value]
            if len(items) > MAX_BATCH_ITEMS:
                out.rejects.append(Reject(_peek_src(payload), "too_large",    # one message
                                          detail=f"a batch of {len(items)} items"))
                return
            self._judge_items(topic, rtype, items, out, now, self._judge_one)
            return
        if problem in ("too_deep", "not_json") and is_batch:
            # One record too deep (or broken) must not cost the batch: split it at its
            # top-level commas and judge each record alone.
            raws = split_batch(payload)
            if raws is not None and len(raws) <= MAX_BATCH_ITEMS:
                self._judge_items(topic, rtype, raws, out, now, self._judge_raw)
                return
        out.rejects.append(Reject(_peek_src(payload), problem))

    def _judge_items(self, topic, rtype, items: list, out: Decoded, now, judge) -> None:
        """Judge a batch's items one by one; after ``MAX_BAD_IN_A_ROW`` refusals in a row the
        rest are refused together, under the last reason."""
        bad_in_a_row = 0
        for i, item in enumerate(items):
            before = len(out.rejects)
            judge(topic, rtype, item, out, now)
            bad_in_a_row = bad_in_a_row + 1 if len(out.rejects) > before else 0
            if bad_in_a_row >= MAX_BAD_IN_A_ROW and i + 1 < len(items):
                last = out.rejects[-1]
                out.rejects.append(Reject(last.src, last.reason, count=len(items) - i - 1,
                                          detail="the rest of a batch refused in a row"))
                return

    def _judge_raw(self, topic: str, rtype: type[Record], raw: bytes, out: Decoded,
                   now: int | None) -> None:
        if len(raw) > self.max_record_bytes:
            out.rejects.append(Reject(_peek_src(raw), "too_large", detail=f"{len(raw)} bytes"))
            return
        item, problem = loads(raw, MAX_DEPTH - 1, lenient=True)
        if problem is not None:
            out.rejects.append(Reject(_peek_src(raw), problem))
            return
        self._judge_one(topic, rtype, item, out, now)

    def _judge_one(self, topic: str, rtype: type[Record], item: Any, out: Decoded,
                   now: int | None) -> None:
        if not isinstance(item, dict):
            out.rejects.append(Reject(UNKNOWN_SRC, "not_object"))
            return
        src = item.get("src")
        src = src if isinstance(src, str) and valid_id(src) else UNKNOWN_SRC
        seq = item.get("seq") if type(item.get("seq")) is int else None
        if src != UNKNOWN_SRC and seq is not None and seq >= 0:
            out.seqs.append((src, seq))
        if depth_exceeds(item, MAX_DEPTH - 1):
            out.rejects.append(Reject(src, "too_deep", seq))
            return
        if not _texts_valid(item):
            out.rejects.append(Reject(src, "bad_text", seq))
            return
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
        problem = self._problem(topic, rec, now)
        if problem:
            out.rejects.append(Reject(src, problem, rec.seq))
        else:
            out.records.append(intern_fields(rec))

    def _problem(self, topic: str, rec: Record, now: int | None) -> str | None:
        if isinstance(rec, SensorReading) and topic != "sensor." + rec.kind:
            return "topic_mismatch"
        return record_problem(rec, now, self.future_ms)


# Repeating strings (src, status, category…) shared, not one copy a record (issue #17). Bounded
# whatever a publisher sends: a full table starts again empty. (sys.intern: immortal in 3.12.)
MAX_INTERNED = 4_096
MAX_INTERN_CHARS = 64
_INTERNED: dict[str, str] = {}


def intern_str(s: str | None) -> str | None:
    got = _INTERNED.get(s)
    if got is not None or s is None:
        return got
    if len(s) <= MAX_INTERN_CHARS:
        if len(_INTERNED) >= MAX_INTERNED:
            _INTERNED.clear()
        _INTERNED[s] = s
    return s


def intern_fields(rec: Record) -> Record:
    """A case with its repeating strings shared (in place: a record just decoded, seen by no
    one yet), its ``reported_at`` the same int as its ``ts`` when equal. Cases only: a wall
    holds up to 200,000 of them for days; sensors and units are replaced every few seconds
    (interning them cost ~250 ns a record for ~100 B a sensor held)."""
    if type(rec) is not Case:
        return rec
    get, i = _INTERNED.get, intern_str
    rec.src = get(rec.src) or i(rec.src)
    rec.status = get(rec.status) or i(rec.status)
    rec.category = get(rec.category) or i(rec.category)
    rec.source = get(rec.source) or i(rec.source)
    rec.title = get(rec.title) or i(rec.title)
    if rec.district is not None:
        rec.district = get(rec.district) or i(rec.district)
    if rec.agency is not None or rec.unit_id is not None:
        rec.agency, rec.unit_id = i(rec.agency), i(rec.unit_id)
    if rec.flags:
        rec.flags = [i(f) for f in rec.flags]
    if rec.reported_at == rec.ts:
        rec.reported_at = rec.ts
    return rec


def record_problem(rec: Record, now_ms: int | None,
                   future_ms: int = DEFAULT_FUTURE_MS) -> str | None:
    """What a well-formed record may still be refused for: its version, its text, its times.
    Also for records that came another way than a feed (a dispatch service's snapshot)."""
    if rec.v != PROTOCOL_VERSION:
        return "unknown_version"
    if not _record_texts_valid(rec):
        return "bad_text"
    return _times_problem(rec, now_ms, future_ms)


def _record_texts_valid(rec: Record) -> bool:
    """Ids printable, text valid Unicode (see ``feeds.bounds``). msgspec already refuses lone
    surrogates in JSON it decodes; control characters it lets through."""
    if not valid_id(rec.src):
        return False
    if isinstance(rec, SensorReading):
        return (valid_id(rec.id) and valid_id(rec.kind) and all(map(valid_id, rec.metrics))
                and (rec.district is None or valid_id(rec.district)))
    if isinstance(rec, Case):
        return (valid_id(rec.case_id) and valid_id(rec.category) and valid_id(rec.source)
                and valid_text(rec.title) and valid_text(rec.description)
                and all(map(valid_id, rec.flags))
                and all(v is None or valid_text(v) for v in (rec.agency, rec.address))
                and all(v is None or valid_id(v) for v in (rec.district, rec.unit_id)))
    if isinstance(rec, Unit):
        return (valid_id(rec.unit_id) and valid_id(rec.callsign) and valid_id(rec.kind)
                and all(v is None or valid_id(v) for v in (rec.case_id, rec.shift)))
    if isinstance(rec, UnitPosition):
        return valid_id(rec.unit_id)
    return True


def _times_problem(rec: Record, now: int | None, future_ms: int) -> str | None:
    problem = time_problem(rec.ts, now, future_ms)
    if problem or not isinstance(rec, Case):
        return problem
    problem = time_problem(rec.reported_at, now, future_ms)
    if problem or rec.due_at is None:
        return problem
    # A deadline is ahead by nature: at most a year past the record's own time.
    return time_problem(rec.due_at, rec.ts, MAX_DEADLINE_AHEAD_MS)


def _texts_valid(obj: Any) -> bool:
    """Every string in a decoded record (keys too) is valid Unicode: Python's json, the
    lenient fallback, lets lone surrogates through. Iterative, like ``depth_exceeds``."""
    stack = [obj]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if not valid_text(value):
                return False
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(k, str) and not valid_text(k):
                    return False
                stack.append(v)
        elif isinstance(value, list):
            stack.extend(value)
    return True


# Structural characters of JSON, and a string's end (possessive: linear on a string with no
# end). Used only to split a batch the whole-message decoders refused.
_STRUCT = re.compile(rb'[\[\]{},"]')
_STRING_REST = re.compile(rb'(?:[^"\\]++|\\.)*+"', re.DOTALL)
MAX_SPLIT_TOKENS = 1_000_000


def split_batch(payload: bytes) -> list[bytes] | None:
    """The raw bytes of each top-level item of a JSON array, found without decoding it (so
    nothing recurses, however deep an item nests), or None when it is not one array. Bounded
    by ``MAX_SPLIT_TOKENS`` structural characters."""
    start = payload.find(b"[")
    if start < 0 or payload[:start].strip():
        return None
    items: list[bytes] = []
    depth, item_start, tokens = 0, start + 1, 0
    pos = start
    find = _STRUCT.search
    while True:
        m = find(payload, pos)
        if m is None:
            return None                              # the array never closed
        tokens += 1
        if tokens > MAX_SPLIT_TOKENS:
            return None
        ch = payload[m.start()]
        pos = m.end()
        if ch == 0x22:                               # "
            end = _STRING_REST.match(payload, pos)
            if end is None:
                return None                          # a string that never ends
            pos = end.end()
        elif ch in (0x5B, 0x7B):                     # [ {
            depth += 1
        elif ch in (0x5D, 0x7D):                     # ] }
            depth -= 1
            if depth == 0:
                last = payload[item_start:m.start()].strip()
                if last:
                    items.append(last)
                return items if not payload[pos:].strip() else None
        elif depth == 1:                             # , between items
            items.append(payload[item_start:m.start()].strip())
            item_start = pos


def _classify(message: str) -> str:
    if "missing required field" in message:
        return "missing_field"
    if "matching regex" in message:
        return "bad_value"
    if ">=" in message or "<=" in message:
        return "out_of_range"
    return "wrong_type"


def _has_non_finite(obj: Any) -> bool:
    stack = [obj]
    while stack:
        value = stack.pop()
        if isinstance(value, float):
            if not math.isfinite(value):
                return True
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
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
    """Best effort: the ``src`` of a payload we cannot decode, so rejects count per source.
    Only a valid id counts; anything else is the unknown source."""
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
        src = rest[1:end].decode("utf-8")
    except UnicodeDecodeError:
        return UNKNOWN_SRC
    return src if valid_id(src) and "\\" not in src else UNKNOWN_SRC

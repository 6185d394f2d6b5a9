"""The broker's picture of the city, kept from a capture of what it forwards, and its wire form.

The broker forwards bytes in C (``feeds.broker``); a copy of every message comes here, is
judged exactly as a console judges it (``feeds.decode``), and keeps the current state: every
open case, every unit, each held unit's newest position (``unit.pos``, when newer than its record; a position of a
unit not held is counted ``unknown_unit`` and dropped, as a wall does),
each sensor's latest reading, each source's last ``seq``. A wall that
joins late asks once and gets all of it with those ``seq`` values; it then follows the feed,
applying only records past them (the ZeroMQ guide's Clone pattern).

The reply (``PROTOCOL.md``, "State from a broker") is a multipart message::

    [b"citywall.state", header JSON, topic, batch, topic, batch, …]

where every (topic, batch) pair is an ordinary feed message of at most ``BATCH_RECORDS``
records (cases, then units, then positions — after the units, so a wall knows each unit before
its fix moves it — then sensors by kind), so the wall judges it with its ordinary decoder and a broken reply costs the wall
the reply, never its picture. Pure: no sockets, no threads, no Qt.
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable

import msgspec

from feeds.bounds import DEFAULT_MAX_MESSAGE_BYTES
from feeds.decode import MessageDecoder
from feeds.schema import (CLOSED_CASE_STATUSES, DEFAULT_MAX_RECORD_BYTES, Case, Record,
                          SensorReading, Unit, UnitPosition, encode, topic_of)

STATE_TAG = b"citywall.state"          # first frame of a state reply
WELCOME = b"citywall.welcome"          # the XPUB's welcome: a subscriber's feed is live
BATCH_RECORDS = 1_000                  # records per (topic, batch) pair of a reply
MAX_CASES = 200_000                    # held at most (open cases); the rest refused, counted
MAX_UNITS = 50_000                     # (and positions: one per unit at most this many)
MAX_SENSORS = 500_000
MAX_SOURCES = 1_000                    # sources whose seq is kept
MAX_CLOSED_KEPT = 100_000              # closed case ids remembered (an older open record of a
                                       # closed case arriving late must not bring it back)
MAX_REQUEST_BYTES = 4_096

_header = msgspec.json.Encoder()


class StateRequest(msgspec.Struct, kw_only=True):
    v: int
    type: str
    req: str | int | None = None


_request_decoder = msgspec.json.Decoder(StateRequest)


def parse_request(payload: bytes) -> StateRequest | None:
    """A wall's request (``{"v":1,"type":"state","req":…}``), or None when it is not one."""
    if len(payload) > MAX_REQUEST_BYTES:
        return None
    try:
        req = _request_decoder.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    if req.v != 1 or req.type != "state":
        return None
    if isinstance(req.req, str) and len(req.req) > 128:
        return None
    return req


def request(req: str | int) -> bytes:
    return _header.encode({"v": 1, "type": "state", "req": req})


class BrokerState:
    def __init__(self, *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 max_cases: int = MAX_CASES, max_units: int = MAX_UNITS,
                 max_sensors: int = MAX_SENSORS, max_sources: int = MAX_SOURCES):
        # No clock: the broker judges the absolute bounds only; each wall judges time itself.
        self._decoder = MessageDecoder(max_record_bytes, max_message_bytes=max_message_bytes)
        self.cases: dict[str, Case] = {}
        self.units: dict[str, Unit] = {}
        # unit id → its newest ``unit.pos``, while newer than its full record (a position for
        # a unit without one is kept too: a wall may know the unit from a dispatch snapshot)
        self.positions: dict[str, UnitPosition] = {}
        self.sensors: dict[str, SensorReading] = {}
        self.seqs: dict[str, int] = {}
        self.last_ts: dict[str, int] = {}        # src → the newest ts heard (heartbeats too)
        self._closed: OrderedDict[str, int] = OrderedDict()     # case_id → ts it closed
        self.caps = {"cases": max_cases, "units": max_units, "positions": max_units,
                     "sensors": max_sensors}
        self.max_sources = max_sources
        self.messages = 0
        self.records = 0
        self.rejected: Counter = Counter()          # reason → records
        self.refused_ids: Counter = Counter()       # table → new ids refused at its cap
        self.gaps = 0                               # jumps in a source's seq (input losses)
        self.missed = 0                             # records those jumps stand for
        self.restarts: Counter = Counter()          # src → times its seq fell (it restarted)
        self.version = 0
        self._reply_cache: tuple[int, list[bytes]] | None = None

    # ---- taking the stream -------------------------------------------------------------
    def absorb(self, frames: list[bytes]) -> None:
        """One captured message. Subscriptions (one frame from the walls' side) and the
        welcome are not records and are passed over."""
        if len(frames) != 2:
            return
        self.messages += 1
        decoded = self._decoder.decode(frames)
        for rej in decoded.rejects:
            self.rejected[rej.reason] += rej.count
        for src, seq in decoded.seqs:
            self._follow(src, seq)
        changed = False
        last_ts = self.last_ts
        for rec in decoded.records:
            changed |= self._keep(rec)
            if rec.src in self.seqs and rec.ts > last_ts.get(rec.src, -1):
                last_ts[rec.src] = rec.ts
        self.records += len(decoded.records)
        if changed:            # the tables (not only seqs) moved: the reply is encoded again
            self.version += 1

    def _follow(self, src: str, seq: int) -> None:
        last = self.seqs.get(src)
        if last is None:
            if len(self.seqs) >= self.max_sources:
                return
        elif seq > last + 1:
            self.gaps += 1
            self.missed += seq - last - 1
        elif seq < last:
            self.restarts[src] += 1
        self.seqs[src] = seq

    def _keep(self, rec: Record) -> bool:
        """Keep one record; whether a table changed."""
        if isinstance(rec, Case):
            closed_at = self._closed.get(rec.case_id)
            if closed_at is not None and rec.ts <= closed_at:
                return False                        # a late copy of a case already closed
            held = self.cases.get(rec.case_id)
            if held is not None and rec.ts < held.ts:
                return False
            if rec.status in CLOSED_CASE_STATUSES:
                self.cases.pop(rec.case_id, None)
                self._closed[rec.case_id] = rec.ts
                self._closed.move_to_end(rec.case_id)
                while len(self._closed) > MAX_CLOSED_KEPT:
                    self._closed.popitem(last=False)
                return held is not None
            return self._put("cases", self.cases, rec.case_id, rec, held)
        if isinstance(rec, Unit):
            held = self.units.get(rec.unit_id)
            if held is None or rec.ts >= held.ts:
                fix = self.positions.get(rec.unit_id)
                if fix is not None and fix.ts <= rec.ts:
                    del self.positions[rec.unit_id]     # the record's position is as new
                return self._put("units", self.units, rec.unit_id, rec, held)
        elif isinstance(rec, UnitPosition):
            unit = self.units.get(rec.unit_id)
            if unit is None:        # as a wall does: nothing to show it by (and positions
                self.rejected["unknown_unit"] += 1      # of made-up ids cannot fill the table)
                return False
            held = self.positions.get(rec.unit_id)
            if rec.ts > unit.ts and (held is None or rec.ts > held.ts):
                return self._put("positions", self.positions, rec.unit_id, rec, held)
        elif isinstance(rec, SensorReading):
            held = self.sensors.get(rec.id)
            if held is None or rec.ts >= held.ts:
                return self._put("sensors", self.sensors, rec.id, rec, held)
        return False            # heartbeats: only their seq and ts are state

    def _put(self, name: str, table: dict, key: str, rec: Record, held) -> bool:
        if held is None and len(table) >= self.caps[name]:
            self.refused_ids[name] += 1
            return False
        table[key] = rec
        return True

    # ---- serving it --------------------------------------------------------------------
    def reply(self, req: str | int | None) -> list[bytes]:
        """The frames of a state reply (the records encoded once per version of the state)."""
        cache = self._reply_cache
        if cache is None or cache[0] != self.version:
            body: list[bytes] = []
            for records in (self.cases.values(), self.units.values(),
                            self.positions.values()):
                body += _batches(records)
            by_kind: dict[str, list[SensorReading]] = {}
            for rec in self.sensors.values():
                by_kind.setdefault(rec.kind, []).append(rec)
            for kind in sorted(by_kind):
                body += _batches(by_kind[kind])
            cache = self._reply_cache = (self.version, body)
        header = _header.encode({
            "v": 1, "type": "state", "req": req, "ready": True, "seqs": self.seqs,
            "ts": self.last_ts,
            "counts": {"cases": len(self.cases), "units": len(self.units),
                       "positions": len(self.positions), "sensors": len(self.sensors)}})
        return [STATE_TAG, header, *cache[1]]

    @staticmethod
    def not_ready(req: str | int | None, retry_ms: int = 200) -> list[bytes]:
        """The answer while the state is being rebuilt: ask again in ``retry_ms``."""
        return [STATE_TAG, _header.encode({"v": 1, "type": "state", "req": req,
                                           "ready": False, "retry_ms": retry_ms})]

    def load(self, records: Iterable[Record], seqs: dict[str, int],
             newest_ts: dict[str, int] | None = None) -> None:
        """A state fetched from an upstream broker (a chained broker rebuilding itself)."""
        for rec in records:
            self._keep(rec)
        for src, seq in seqs.items():
            if src in self.seqs or len(self.seqs) < self.max_sources:
                self.seqs[src] = max(seq, self.seqs.get(src, -1))
        for src, ts in (newest_ts or {}).items():
            if src in self.seqs:
                self.last_ts[src] = max(ts, self.last_ts.get(src, -1))
        self.version += 1

    def status(self) -> dict:
        return {"cases": len(self.cases), "units": len(self.units),
                "positions": len(self.positions), "sensors": len(self.sensors),
                "sources": len(self.seqs),
                "messages": self.messages, "records": self.records,
                "rejected": dict(self.rejected), "refused_ids": dict(self.refused_ids),
                "input_gaps": self.gaps, "input_missed": self.missed,
                "input_restarts": sum(self.restarts.values()),
                "restarts_by_src": dict(self.restarts.most_common(50))}


def _batches(records: Iterable[Record]) -> list[bytes]:
    out: list[bytes] = []
    chunk: list[Record] = []
    for rec in records:
        chunk.append(rec)
        if len(chunk) >= BATCH_RECORDS:
            out += [topic_of(chunk[0]).encode("ascii"), encode(chunk)]
            chunk = []
    if chunk:
        out += [topic_of(chunk[0]).encode("ascii"), encode(chunk)]
    return out

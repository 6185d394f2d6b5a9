"""Judging one MQTT message into a ``Batch``: what ``feeds.mqtt_source.MqttSource`` does in
paho's thread for every message (see its docstring for what each format becomes). No sockets,
no Qt.

    judge = Judge(settings, display_crs="gcj02", now_ms=…, devices=…, faults=…)
    judge.judge(msg, batch)     # msg: paho's MQTTMessage (topic, payload, retain)

Refusals, counted by ``(src, reason)``: a topic no filter matches or over ``MAX_TOPIC_CHARS``
(``unmapped_topic`` under ``?``), a payload over ``max_message_bytes`` (``too_large``, checked
before anything is decoded), a topic its subscription cannot read (``unmapped_topic``), a SenML
kind (a topic level) that would not make a protocol topic the ZeroMQ decoder takes —
``sensor.<kind>`` must be printable ASCII of at most ``feeds.decode.MAX_TOPIC_CHARS``
(``bad_topic``, the decoder's reason), a retained SenML reading whose time is missing or
relative (``retained_no_time``: a retained message may be any age, and "now" would be a lie),
what ``feeds.senml``, ``feeds.owntracks`` and ``feeds.decode`` refuse, and a protocol record
whose ``src`` it may not use (``src_not_allowed``): any src this judge stamps itself (a
``senml``/``owntracks`` subscription's ``src``), or, when the protocol subscription names its
``srcs``, any src not among them."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import msgspec

from feeds.batch import Batch, SeqTracker
from feeds.bounds import DEFAULT_FUTURE_MS, valid_id
from feeds.crs import OUTSIDE, reframe
from feeds.decode import MAX_TOPIC_CHARS as MAX_PROTOCOL_TOPIC
from feeds.decode import UNKNOWN_SRC, MessageDecoder, Reject
from feeds.faults import Faults
from feeds.mqtt_config import MqttSettings, Subscription
from feeds.owntracks import read_location
from feeds.senml import SenmlReader

MAX_TOPIC_CHARS = 256           # an MQTT topic longer than this matches no subscription
SENSOR_TOPIC = "sensor."        # feeds.schema: a SensorReading travels on sensor.<kind>


def kind_problem(kind: str) -> str | None:
    """Why a SenML kind (a topic level) cannot be a reading's kind, or None."""
    if not valid_id(kind):
        return "unmapped_topic"
    topic = SENSOR_TOPIC + kind
    if not (kind.isascii() and topic.isprintable() and len(topic) <= MAX_PROTOCOL_TOPIC):
        return "bad_topic"
    return None


class Judge:
    def __init__(self, settings: MqttSettings, *, display_crs: str, now_ms: Callable[[], int],
                 max_message_bytes: int, max_record_bytes: int, devices: dict[str, str],
                 faults: Faults, future_ms: int = DEFAULT_FUTURE_MS):
        self.settings = settings
        self.display_crs = display_crs
        self.now_ms = now_ms
        self.max_message_bytes = int(max_message_bytes)
        self.devices = devices
        self.faults = faults
        self.future_ms = future_ms
        self.decoder = MessageDecoder(max_record_bytes, max_message_bytes=self.max_message_bytes,
                                      now_ms=now_ms, future_ms=future_ms)
        self.senml = SenmlReader(future_ms=future_ms)
        self.seq_tracker = SeqTracker()
        self.own_seq: dict[str, int] = {}       # our src → last seq given
        # The srcs this judge stamps itself: no protocol record may claim one.
        self.own_srcs = frozenset(s.src for s in settings.subscriptions
                                  if s.format != "protocol")
        self._patterns = [(s, tuple(s.topic.split("/"))) for s in settings.subscriptions]

    def judge(self, msg, out: Batch) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = None
        payload = msg.payload
        sub = self.subscription(topic) if topic is not None else None
        if sub is None:
            out.rejects[(UNKNOWN_SRC, "unmapped_topic")] += 1
            out.heard.add(UNKNOWN_SRC)
            return
        if len(payload) > self.max_message_bytes:
            out.rejects[(sub.src, "too_large")] += 1
            out.heard.add(sub.src)
            return
        levels = topic.split("/")
        rest = levels[len(sub.prefix):]
        if sub.format == "protocol":
            self._protocol(sub, rest, payload, out)
            return
        now = self.now_ms()
        refused: Counter = Counter()
        records: list = []
        if sub.format == "senml":
            kind = levels[sub.kind_level - 1] if len(levels) >= sub.kind_level else ""
            problem = kind_problem(kind)
            if problem is not None:
                refused[problem] += 1
            else:
                records, refused = self.senml.read(payload, kind=kind, src=sub.src, now_ms=now,
                                                   retained=bool(getattr(msg, "retain", False)))
        else:                                     # owntracks: …/USER/DEVICE
            if len(rest) != 2 or not all(rest):
                refused["unmapped_topic"] += 1
            else:
                rec, reason = read_location(payload, device="/".join(rest),
                                            devices=self.devices, src=sub.src, now_ms=now,
                                            future_ms=self.future_ms)
                if rec is not None:
                    records = [rec]
                else:
                    refused[reason] += 1
        out.heard.add(sub.src)
        for reason, n in refused.items():
            if reason == "internal":
                self.faults.record("mqtt-source decoder", f"a {sub.format} message it could "
                                                          "not judge")
            out.rejects[(sub.src, reason)] += n
        kept = self._reframe(records, sub, out)
        if kept:
            last = self.own_seq.get(sub.src, -1)
            stamped = []
            for rec in kept:
                last += 1
                stamped.append(msgspec.structs.replace(rec, seq=last))
            self.own_seq[sub.src] = last
            out.last_seq[sub.src] = last
            out.records.extend(stamped)

    def _protocol(self, sub: Subscription, rest: list[str], payload: bytes, out: Batch) -> None:
        if not rest or not all(rest):
            out.rejects[(sub.src, "unmapped_topic")] += 1
            out.heard.add(sub.src)
            return
        topic = ".".join(rest)
        decoded = self.decoder.decode([topic.encode("utf-8"), payload])
        self._only_allowed(decoded, sub)
        for rej in decoded.rejects:
            if rej.reason == "internal":
                self.faults.record("mqtt-source decoder", rej.detail or "a message it could "
                                                                       "not judge")
            out.rejects[(rej.src, rej.reason)] += rej.count
            out.heard.add(rej.src)
        for src, seq in decoded.seqs:
            if self._may_use(sub, src):
                self.seq_tracker.observe(src, seq, out)
                out.heard.add(src)
        out.records.extend(self._reframe(decoded.records, sub, out))

    def _may_use(self, sub: Subscription, src: str) -> bool:
        if src in self.own_srcs:
            return False
        return sub.srcs is None or src in sub.srcs

    def _only_allowed(self, decoded, sub: Subscription) -> None:
        """Records under a src this subscription's publishers may not use are refused (as
        ``feeds.receiver`` refuses them past ``--publishers``)."""
        kept = []
        for rec in decoded.records:
            if self._may_use(sub, rec.src):
                kept.append(rec)
            else:
                decoded.rejects.append(Reject(rec.src, "src_not_allowed", rec.seq))
        decoded.records = kept

    def _reframe(self, records: list, sub: Subscription, out: Batch) -> list:
        if not records:
            return []
        kept, refused = reframe(records, sub.crs, self.display_crs)
        for rec in refused:
            out.rejects[(rec.src, OUTSIDE)] += 1
        return kept

    def subscription(self, topic: str) -> Subscription | None:
        if not topic or len(topic) > MAX_TOPIC_CHARS:
            return None
        levels = topic.split("/")
        for sub, pattern in self._patterns:
            if _matches(pattern, levels, topic):
                return sub
        return None


def _matches(pattern: tuple[str, ...], levels: list[str], topic: str) -> bool:
    """MQTT's filter rules (as paho's ``topic_matches_sub``) on a filter split once: ``+`` one
    level, ``#`` the rest (and the parent level); a ``$`` topic only by a filter naming it."""
    if topic.startswith("$") and pattern and pattern[0] in ("+", "#"):
        return False
    for i, p in enumerate(pattern):
        if p == "#":
            return True
        if i >= len(levels):
            return False
        if p != "+" and p != levels[i]:
            return False
    return len(levels) == len(pattern)

"""An MQTT broker as a source of records (``feeds.source``): city sensors speaking SenML, field
units' phones speaking OwnTracks, and protocol v1 records sent over MQTT. No Qt.

    source = MqttSource(MqttSettings.from_url("mqtt://broker:1883"), display_crs="gcj02",
                        now_ms=clock.now_ms, devices=load_devices("roster.csv"),
                        faults=faults).start()
    batch = source.take()          # at the consumer's own rate; never blocks

paho-mqtt (2.x) runs the connection in its own thread (``loop_start``) and connects again by
itself when the broker goes away (1 s, then 2 s between tries); every connect subscribes to
every subscription again. Each message is judged in paho's thread, right there, into a pending
``Batch`` under a lock; ``take()`` swaps it out. What a message becomes depends on the first
subscription (in the settings' order) whose filter matches its topic (``feeds.mqtt_config``):

- ``protocol``: the topic levels after the filter's fixed prefix, joined with ``.``, are the
  protocol topic (``citywall/sensor/air`` and ``citywall/sensor.air`` → ``sensor.air``); the
  payload is judged by ``feeds.decode.MessageDecoder`` as the ZeroMQ receiver judges one,
  records keep their ``src`` and ``seq`` (gaps and restarts as the receiver counts them);
- ``senml``: ``feeds.senml``, the kind from the subscription's ``kind_level``;
- ``owntracks``: ``feeds.owntracks``, the device from the topic's last two levels, its unit
  from ``devices``.

SenML and OwnTracks records are ``v=1`` under the subscription's ``src`` with this source's own
``seq`` (+1 per record kept). Every record is moved from the subscription's frame to
``display_crs`` (``feeds.crs.reframe``; refused ``gcj02_outside_china``). Refusals are counted
by ``(src, reason)``: a payload over ``max_message_bytes`` (``too_large``, checked first), a
topic its subscription cannot read (``unmapped_topic``: ``senml`` with no kind level,
``owntracks/a/b/c`` under ``owntracks/#``; ``?`` for a topic no filter matches), what
``feeds.senml`` and ``feeds.owntracks`` refuse, and records past ``max_pending`` not yet taken
(``backlog_full``). A callback never raises into paho: anything unexpected is a fault
(``internal``).

The source's ``name`` is its URL without the password; ``take()`` puts it in ``batch.endpoints``
while connected, so the wall's link health shows the broker down within about 3 s of losing it
(a closed connection at once; a silent one when the ping the keepalive sends goes unanswered:
with ``keepalive_s`` 2, after 2 to 5 s; 1 gives 1 to 3 s, at a ping a second and a flap when
a busy broker is a second late to answer).
``health()``: ``{"kind": "mqtt", "name", "up", "subscribed" (the broker acknowledged the
subscriptions), "connects", "disconnects", "last_error"}``. No password appears in the name,
health, faults or logs."""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable

import msgspec
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from feeds.batch import Batch, SeqTracker
from feeds.bounds import DEFAULT_FUTURE_MS, valid_id
from feeds.crs import OUTSIDE, check_frame, reframe
from feeds.decode import UNKNOWN_SRC, MessageDecoder
from feeds.faults import Faults
from feeds.mqtt_config import MqttSettings, Subscription
from feeds.owntracks import read_location
from feeds.schema import DEFAULT_MAX_RECORD_BYTES
from feeds.senml import SenmlReader

LOG = logging.getLogger("feeds.mqtt_source")
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
MAX_PENDING = 200_000           # records not yet taken; past it a message's are dropped
KEEPALIVE_S = 2
RECONNECT_S = (1, 2)            # paho's reconnect_delay_set(min, max)
MAX_TOPIC_CHARS = 256


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class MqttSource:
    kind = "mqtt"

    def __init__(self, settings: MqttSettings, *, display_crs: str = "gcj02",
                 now_ms: Callable[[], int] | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
                 devices: dict[str, str] | None = None, faults: Faults | None = None,
                 max_pending: int = MAX_PENDING, future_ms: int = DEFAULT_FUTURE_MS,
                 keepalive_s: int = KEEPALIVE_S):
        self.settings = settings
        self.name = settings.name
        self.endpoints = [self.name]
        self.display_crs = check_frame(display_crs)
        self.now_ms = now_ms or _wall_ms
        self.max_message_bytes = int(max_message_bytes)
        self.devices = dict(devices or {})
        self.faults = faults if faults is not None else Faults()
        self.max_pending = max_pending
        self.future_ms = future_ms
        self.keepalive_s = max(1, int(keepalive_s))
        self._decoder = MessageDecoder(max_record_bytes,
                                       max_message_bytes=self.max_message_bytes,
                                       now_ms=self.now_ms, future_ms=future_ms)
        self._senml = SenmlReader(future_ms=future_ms)
        self._seq_tracker = SeqTracker()
        self._own_seq: dict[str, int] = {}       # our src → last seq given (paho's thread)
        self._lock = threading.Lock()
        self._pending = Batch()
        self._client: paho.Client | None = None
        self._stopped = False
        self.up = False
        self.subscribed = False         # the broker acknowledged this connection's subscriptions
        self._sub_mid: int | None = None
        self.connects = 0
        self.disconnects = 0
        self.last_error: str | None = None
        self.messages = 0

    # ---- the source interface ---------------------------------------------------------
    def start(self) -> "MqttSource":
        s = self.settings
        client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                             client_id=f"citywall-{os.getpid()}-{os.urandom(4).hex()}",
                             clean_session=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.tls:
            try:
                client.tls_set(ca_certs=s.ca, certfile=s.cert, keyfile=s.key)
            except (OSError, ValueError) as exc:       # ssl.SSLError is an OSError
                raise OSError(f"mqtt {self.name}: cannot set up TLS (ca {s.ca!r}, cert "
                              f"{s.cert!r}): {getattr(exc, 'strerror', None) or exc}") from None
        client.reconnect_delay_set(*RECONNECT_S)
        try:
            client.connect_async(s.host, s.port, keepalive=self.keepalive_s)
        except (OSError, ValueError) as exc:
            raise OSError(f"mqtt {self.name}: {exc}") from None
        self._client = client
        client.loop_start()
        return self

    def take(self) -> Batch:
        self._check_thread()
        with self._lock:
            batch, self._pending = self._pending, Batch()
        if self.up:
            batch.endpoints.add(self.name)
        return batch

    def health(self) -> dict:
        return {"kind": self.kind, "name": self.name, "up": self.up,
                "subscribed": self.subscribed,
                "connects": self.connects, "disconnects": self.disconnects,
                "last_error": self.last_error}

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        client = self._client
        if client is not None:
            try:
                client.disconnect()
                client.loop_stop()
            except Exception as exc:            # stopping must not raise
                LOG.warning("mqtt %s: stopping: %s", self.name, exc)
        self.up = False

    def backlog(self) -> int:
        with self._lock:
            return len(self._pending.records)

    def _check_thread(self) -> None:
        """paho's thread ends only when we stop it; if it ended anyway, say so and restart."""
        client = self._client
        if client is None or self._stopped or getattr(client, "_thread", True) is not None:
            return
        self.faults.record("mqtt-source", f"{self.name}: paho's network thread stopped; "
                                          "restarted")
        self.up = False
        try:
            client.loop_start()
        except Exception as exc:
            self.faults.record("mqtt-source", exc, recovered=False)

    # ---- paho's callbacks (paho's thread; none may raise) ---------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            if reason_code.is_failure:
                self.up = False
                self.last_error = f"connect refused: {reason_code}"
                return
            self.up = True
            self.subscribed = False
            self.connects += 1
            _, self._sub_mid = client.subscribe(
                [(sub.topic, 0) for sub in self.settings.subscriptions])
            LOG.info("mqtt %s: connected", self.name)
        except Exception as exc:
            self.faults.record("mqtt-source", exc)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            if self.up and not self._stopped:
                self.disconnects += 1
                self.last_error = f"connection lost: {reason_code}"
                LOG.warning("mqtt %s: connection lost (%s)", self.name, reason_code)
            self.up = self.subscribed = False
        except Exception as exc:
            self.faults.record("mqtt-source", exc)

    def _on_connect_fail(self, client, userdata) -> None:
        self.up = False
        self.last_error = "cannot connect (no broker answering, or the TLS handshake failed)"

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        try:
            if any(rc.is_failure for rc in reason_codes):
                self.last_error = "the broker refused a subscription"
            elif mid == self._sub_mid:
                self.subscribed = True
        except Exception as exc:
            self.faults.record("mqtt-source", exc)

    def _on_message(self, client, userdata, msg) -> None:
        local = Batch()
        try:
            self.messages += 1
            local.messages = 1
            self._judge(msg, local)
        except Exception as exc:                # a bug costs this message, never paho's loop
            local = Batch(messages=1)
            local.rejects[(UNKNOWN_SRC, "internal")] += 1
            self.faults.record("mqtt-source message", exc)
        try:
            with self._lock:
                room = self.max_pending - len(self._pending.records)
                if len(local.records) > room:
                    for rec in local.records:
                        local.rejects[(rec.src, "backlog_full")] += 1
                    local.records = []
                self._pending.merge(local)
        except Exception as exc:
            self.faults.record("mqtt-source message", exc)

    # ---- judging one message ------------------------------------------------------------
    def _judge(self, msg, out: Batch) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = None
        payload = msg.payload
        sub = self._subscription(topic) if topic is not None else None
        if sub is None:
            out.rejects[(UNKNOWN_SRC, "unmapped_topic")] += 1
            out.heard.add(UNKNOWN_SRC)
            return
        if len(payload) > self.max_message_bytes:
            src = sub.src
            out.rejects[(src, "too_large")] += 1
            out.heard.add(src)
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
            if not valid_id(kind):
                refused["unmapped_topic"] += 1
            else:
                records, refused = self._senml.read(payload, kind=kind, src=sub.src,
                                                    now_ms=now)
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
            last = self._own_seq.get(sub.src, -1)
            stamped = []
            for rec in kept:
                last += 1
                stamped.append(msgspec.structs.replace(rec, seq=last))
            self._own_seq[sub.src] = last
            out.last_seq[sub.src] = last
            out.records.extend(stamped)

    def _protocol(self, sub: Subscription, rest: list[str], payload: bytes, out: Batch) -> None:
        if not rest or not all(rest):
            out.rejects[(sub.src, "unmapped_topic")] += 1
            out.heard.add(sub.src)
            return
        topic = ".".join(rest)
        decoded = self._decoder.decode([topic.encode("utf-8"), payload])
        for rej in decoded.rejects:
            if rej.reason == "internal":
                self.faults.record("mqtt-source decoder", rej.detail or "a message it could "
                                                                       "not judge")
            out.rejects[(rej.src, rej.reason)] += rej.count
            out.heard.add(rej.src)
        for src, seq in decoded.seqs:
            self._seq_tracker.observe(src, seq, out)
            out.heard.add(src)
        out.records.extend(self._reframe(decoded.records, sub, out))

    def _reframe(self, records: list, sub: Subscription, out: Batch) -> list:
        if not records:
            return []
        kept, refused = reframe(records, sub.crs, self.display_crs)
        for rec in refused:
            out.rejects[(rec.src, OUTSIDE)] += 1
        return kept

    def _subscription(self, topic: str) -> Subscription | None:
        if not topic or len(topic) > MAX_TOPIC_CHARS:
            return None
        for sub in self.settings.subscriptions:
            if paho.topic_matches_sub(sub.topic, topic):
                return sub
        return None

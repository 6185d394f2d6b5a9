"""An MQTT broker as a source of records (``feeds.source``): city sensors speaking SenML, field
units' phones speaking OwnTracks, and protocol v1 records sent over MQTT. No Qt.

    source = MqttSource(MqttSettings.from_url("mqtt://broker:1883"), display_crs="gcj02",
                        now_ms=clock.now_ms, devices=load_devices("roster.csv"),
                        faults=faults).start()
    batch = source.take()          # at the consumer's own rate; never blocks

paho-mqtt (2.x) runs the connection in its own thread (``loop_start``) and connects again by
itself when the broker goes away (1 s, then 2 s between tries; a TCP connect or TLS handshake
gives up after ``CONNECT_TIMEOUT_S``); every connect subscribes to every subscription again.
Each message is judged in paho's thread (``feeds.mqtt_judge``), right there, into a pending
``Batch`` under a lock; ``take()`` swaps it out. paho reads a whole message into memory before
it is judged (``max_message_bytes`` only refuses it afterwards): each message costs its size
in memory for a moment, so set the broker's own limit too (Mosquitto: ``message_size_limit``,
e.g. 1 MiB, or ``max_packet_size``). What a message becomes depends on the first
subscription (in the settings' order) whose filter matches its topic (``feeds.mqtt_config``):

- ``protocol``: the topic levels after the filter's fixed prefix, joined with ``.``, are the
  protocol topic (``citywall/sensor/air`` and ``citywall/sensor.air`` → ``sensor.air``); the
  payload is judged by ``feeds.decode.MessageDecoder`` as the ZeroMQ receiver judges one,
  records keep their ``src`` and ``seq`` (gaps and restarts as the receiver counts them) —
  but never a src this source stamps itself, and only one of the subscription's ``srcs`` when
  it names them (else ``src_not_allowed``; ``require_srcs=True``, which the wall passes when it
  runs with ``--publishers``, makes a protocol subscription without ``srcs`` a ``ValueError``
  at construction: see ``feeds.mqtt_config``);
- ``senml``: ``feeds.senml``, the kind from the subscription's ``kind_level`` (one that would
  not make a topic ``sensor.<kind>`` the ZeroMQ decoder takes, printable ASCII of at most
  ``feeds.decode.MAX_TOPIC_CHARS``, is refused ``bad_topic``); a retained pack's reading with
  no absolute time is refused ``retained_no_time`` (a retained message may be any age);
- ``owntracks``: ``feeds.owntracks``, the device from the topic's last two levels, its unit
  from ``devices``.

SenML and OwnTracks records are ``v=1`` under the subscription's ``src`` with this source's own
``seq`` (+1 per record kept). Every record is moved from the subscription's frame to
``display_crs`` (``feeds.crs.reframe``; refused ``gcj02_outside_china``). Refusals are counted
by ``(src, reason)``: a payload over ``max_message_bytes`` (``too_large``, checked first), a
topic its subscription cannot read (``unmapped_topic``: ``senml`` with no kind level,
``owntracks/a/b/c`` under ``owntracks/#``; ``?`` for a topic no filter matches), ``bad_topic``,
``retained_no_time``, ``src_not_allowed``, what ``feeds.senml`` and ``feeds.owntracks`` refuse,
and records past ``max_pending`` not yet taken
(``backlog_full``). A callback never raises into paho: anything unexpected is a fault
(``internal``).

The source's ``name`` is its URL without the password; ``take()`` puts it in ``batch.endpoints``
while connected, so the wall's link health shows the broker down within about 3 s of losing it
(a closed connection at once; a silent one when the ping the keepalive sends goes unanswered:
with ``keepalive_s`` 2, after 2 to 5 s; 1 gives 1 to 3 s, at a ping a second and a flap when
a busy broker is a second late to answer).
``health()``: ``{"kind": "mqtt", "name", "up", "subscribed" (the broker acknowledged the
subscriptions), "connects", "disconnects", "last_error"}``; ``last_error`` also says when a
broker took the TCP connection but never answered CONNECT ("no answer to CONNECT: …"). If
paho's thread ever dies, ``health()`` and ``take()`` say down and record a fault (once);
``take()`` starts the thread again. ``stop()`` waits at most ``STOP_WAIT_S`` for paho's thread
(stopping it from a daemon helper: a thread stuck in a TLS handshake never holds the process
up). No password appears in the name, health, faults or logs."""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from feeds.batch import Batch
from feeds.bounds import DEFAULT_FUTURE_MS
from feeds.crs import check_frame
from feeds.decode import UNKNOWN_SRC
from feeds.faults import Faults
from feeds.mqtt_config import MqttSettings
from feeds.mqtt_judge import Judge
from feeds.schema import DEFAULT_MAX_RECORD_BYTES

LOG = logging.getLogger("feeds.mqtt_source")
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
MAX_PENDING = 200_000           # records not yet taken; past it a message's are dropped
KEEPALIVE_S = 2
RECONNECT_S = (1, 2)            # paho's reconnect_delay_set(min, max)
CONNECT_TIMEOUT_S = 2.0         # paho's TCP connect and TLS handshake timeout (its default: 5)
STOP_WAIT_S = 1.5               # stop() waits this long at most for paho's thread to end


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
                 keepalive_s: int = KEEPALIVE_S, require_srcs: bool = False):
        if require_srcs:
            for sub in settings.subscriptions:
                if sub.format == "protocol" and sub.srcs is None:
                    raise ValueError(f"mqtt {settings.name}: with --publishers, an MQTT protocol "
                                     f"subscription must name its srcs=… ({sub.topic!r} does "
                                     "not)")
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
        self._judge = Judge(settings, display_crs=self.display_crs, now_ms=self.now_ms,
                            max_message_bytes=self.max_message_bytes,
                            max_record_bytes=max_record_bytes, devices=self.devices,
                            faults=self.faults, future_ms=future_ms)
        self._senml = self._judge.senml             # (paho's thread only)
        self._seq_tracker = self._judge.seq_tracker
        self._lock = threading.Lock()
        self._thread_lock = threading.Lock()        # one check of paho's thread at a time
        self._pending = Batch()
        self._client: paho.Client | None = None
        self._stopped = False
        self.up = False
        self.subscribed = False         # the broker acknowledged this connection's subscriptions
        self._sub_mid: int | None = None
        self.connects = 0
        self.disconnects = 0
        self.last_error: str | None = None
        self._answered = False          # the broker answered this connection's CONNECT
        self._dead_told = False         # a fault was recorded for paho's dead thread
        self._subscribed_at_death = False
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
        client.connect_timeout = CONNECT_TIMEOUT_S
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
        self._check_thread(restart=False)
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
            # paho's thread may sit in a TLS handshake up to CONNECT_TIMEOUT_S, and loop_stop
            # joins it without a bound: stop from a helper (daemon: it never holds the process
            # up) and wait for it at most STOP_WAIT_S.
            helper = threading.Thread(target=self._stop_client, args=(client,),
                                      name=f"mqtt-stop {self.name}", daemon=True)
            helper.start()
            helper.join(STOP_WAIT_S)
            if helper.is_alive():
                LOG.warning("mqtt %s: paho's thread did not end within %.1f s; left to end "
                            "by itself", self.name, STOP_WAIT_S)
        self.up = self.subscribed = False

    def _stop_client(self, client) -> None:
        try:
            client.disconnect()
            client.loop_stop()
        except Exception as exc:                # stopping must not raise
            LOG.warning("mqtt %s: stopping: %s", self.name, exc)

    def backlog(self) -> int:
        with self._lock:
            return len(self._pending.records)

    def _check_thread(self, restart: bool = True) -> None:
        """paho's thread ends only when we stop it; if it ended anyway, say so (down, and a
        fault, once) and, from ``take()``, start it again."""
        with self._thread_lock:
            client = self._client
            if client is None or self._stopped:
                return
            thread = getattr(client, "_thread", True)
            if thread is not None and (thread is True or thread.is_alive()):
                self._dead_told = False
                return
            if not self._dead_told:
                self._dead_told = True
                self._subscribed_at_death = self.subscribed
                self.faults.record("mqtt-source", f"{self.name}: paho's network thread "
                                                  "stopped" + ("; restarted" if restart else ""))
            self.up = self.subscribed = False
            if not restart:
                return
            try:
                client._thread = None           # a thread that died: loop_start needs None
                client.loop_start()
                self._dead_told = False
                # the connection may have outlived the thread: it is up again if paho has it
                self.up = client.is_connected()
                self.subscribed = self.up and self._subscribed_at_death
            except Exception as exc:
                self.faults.record("mqtt-source", exc, recovered=False)

    # ---- paho's callbacks (paho's thread; none may raise) ---------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            self._answered = True
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
            elif not self._answered and not self._stopped:
                self.last_error = f"no answer to CONNECT: {reason_code}"
            self._answered = False
            self.up = self.subscribed = False
        except Exception as exc:
            self.faults.record("mqtt-source", exc)

    def _on_connect_fail(self, client, userdata) -> None:
        self.up = self.subscribed = False
        self._answered = False
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
            self._judge.judge(msg, local)
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

"""MQTT in, protocol v1 out: a bridge that makes a city's MQTT broker a ZeroMQ feed. No Qt.

    python -m feeds.mqtt_bridge --mqtt mqtt://broker.city:1883 --feed tcp://127.0.0.1:5560 \\
        [--mqtt-user U --mqtt-password-file F --mqtt-ca CA.pem --mqtt-cert C.pem
         --mqtt-key C.key --mqtt-sub 'senml sensors/# kind_level=2'] \\
        [--roster roster.csv] [--src mqtt-bridge] [--key SECRET --trust DIR] [--config FILE]

Every ``--mqtt`` broker (with its ``--mqtt-*`` flags, ``feeds.mqtt_args``, as the wall takes
them) is read by a ``feeds.mqtt_source.MqttSource`` (its default subscriptions: ``citywall/#``
protocol, ``senml/#`` SenML, ``owntracks/+/+`` OwnTracks, the devices from the roster's
``device`` column) with the protocol's own frame (GCJ-02) as the display frame, and every record
it keeps is published on a PUB socket bound at ``--feed``, re-stamped under the bridge's own
``src`` with the bridge's ``seq`` (+1 per record): the bridge is the publisher a wall sees,
whatever came in over MQTT (protocol records too; their content is kept). A heartbeat (``hb``,
with the rate) goes out every half second while at least one broker is up, so a wall sees the
bridge up while the brokers are quiet — and, with every broker down, none goes out (a line on
stderr says so, and another when one is back): the wall then shows the bridge's src down after
3 s, the honest signal that the MQTT side is gone. One record that cannot be framed costs only
itself (counted ``(src, "unsendable")``, a fault recorded; its seq is a gap the wall counts),
never the turn's other records or its heartbeat. Refusals are logged every ``REPORT_S`` when
they grew. If the bridge's thread ends by itself (an error), ``main`` says why in one line and
exits 1. ``--key SECRET --trust DIR`` serve
the feed over CURVE as the other publishers do (``feeds.key_args``); binding beyond loopback
without them needs ``--insecure``.

``--config FILE`` reads the site config's ``[mqtt_bridge]`` section (keys as the long options:
``feed``, ``roster``, ``src``, ``key``, ``trust``, and ``[[mqtt_bridge.mqtt]]`` tables like
``[[wall.mqtt]]``'s).
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

import msgspec
import zmq

from feeds.batch import Batch
from feeds.bounds import valid_id
from feeds.crs import PROTOCOL_DEFAULT
from feeds.faults import Faults
from feeds.mqtt_config import MqttSettings
from feeds.mqtt_source import MqttSource
from feeds.schema import Heartbeat, frames, topic_of
from feeds.source import take_all

LOG = logging.getLogger("feeds.mqtt_bridge")
DEFAULT_SRC = "mqtt-bridge"
LOOP_S = 0.05
HEARTBEAT_S = 0.5
REPORT_S = 10.0
DOWN_SAY_S = 3.0                # no broker up this long after the start: say so
MAX_PER_MESSAGE = 100           # records in one feed message (a batch of one topic)
FEED_DOMAIN = "feed"            # the ZAP domain of a publisher's CURVE server


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Bridge:
    """Takes from the sources and publishes on ``sock`` under ``src``. ``step()`` is one turn;
    ``run(stop)`` turns until ``stop`` is set."""

    def __init__(self, sources: list, sock: zmq.Socket, *, src: str = DEFAULT_SRC,
                 now_ms: Callable[[], int] | None = None, faults: Faults | None = None):
        if not valid_id(src):
            raise ValueError(f"--src: not a valid id: {src!r}")
        self.sources = sources
        self.sock = sock
        self.src = src
        self.now_ms = now_ms or _wall_ms
        self.seq = -1
        self.sent = 0
        self.refused: Counter = Counter()
        self.failures = 0
        self.unsendable = 0             # records that could not be framed (each cost itself)
        self.faults = faults if faults is not None else Faults()
        self.crashed: str | None = None     # why run() ended without being told to stop
        self.beating: bool | None = None    # heartbeats go out (None: no broker up yet)
        self._started = time.monotonic()
        self._sent_times: list[tuple[float, int]] = []
        self._next_hb = 0.0
        self._next_report = time.monotonic() + REPORT_S
        self._reported: Counter = Counter()

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def step(self) -> Batch:
        batch = take_all(self.sources)
        self.refused.update(batch.rejects)
        wall = time.monotonic()
        try:
            self._publish(batch.records, wall)
        except zmq.ZMQError:
            raise
        except Exception as exc:            # a bug costs these records, never the heartbeat
            self.faults.record("mqtt-bridge", exc)
        if self._some_source_up(wall) and wall >= self._next_hb:
            self._sent_times = [(w, n) for w, n in self._sent_times if wall - w <= 1.0]
            rate = float(sum(n for _, n in self._sent_times))
            hb = Heartbeat(v=1, src=self.src, seq=self._next_seq(), ts=self.now_ms(), rate=rate)
            self.sock.send_multipart(frames(hb))
            self._next_hb = wall + HEARTBEAT_S
        if wall >= self._next_report:
            self._next_report = wall + REPORT_S
            self.report()
        return batch

    def _publish(self, records: list, wall: float) -> None:
        by_topic: dict[str, list] = {}
        for rec in records:
            out = msgspec.structs.replace(rec, src=self.src, seq=self._next_seq())
            try:
                topic = topic_of(out)
            except Exception as exc:
                self._unsendable(out, exc)
                continue
            by_topic.setdefault(topic, []).append(out)
        for recs in by_topic.values():
            for i in range(0, len(recs), MAX_PER_MESSAGE):
                chunk = recs[i:i + MAX_PER_MESSAGE]
                try:
                    fr = frames(chunk if len(chunk) > 1 else chunk[0])
                except Exception:                   # one bad record: send the rest one by one
                    for rec in chunk:
                        try:
                            self._send([frames(rec)], 1, wall)
                        except zmq.ZMQError:
                            raise
                        except Exception as exc:
                            self._unsendable(rec, exc)
                    continue
                self._send([fr], len(chunk), wall)

    def _send(self, messages: list, n: int, wall: float) -> None:
        for fr in messages:
            self.sock.send_multipart(fr)
        self._sent_times.append((wall, n))
        self.sent += n

    def _unsendable(self, rec, exc: Exception) -> None:
        """A record that cannot be framed costs itself (its seq is a gap the wall counts)."""
        self.unsendable += 1
        self.refused[(self.src, "unsendable")] += 1
        self.faults.record("mqtt-bridge record", f"{type(rec).__name__} not sent: "
                                                 f"{type(exc).__name__}: {exc}")

    def _some_source_up(self, wall: float) -> bool:
        """Heartbeats only while some broker is up: with every one down, the wall's link
        health shows the bridge's src down (after 3 s) — the MQTT side is gone."""
        if any(getattr(s, "up", True) for s in self.sources):
            if self.beating is False:
                LOG.warning("mqtt bridge: an MQTT broker is up again; heartbeats resume")
            self.beating = True
            return True
        if self.beating or (self.beating is None and wall - self._started >= DOWN_SAY_S):
            LOG.warning("mqtt bridge: every MQTT broker is down; no heartbeats until one is "
                        "up (a wall shows %s down)", self.src)
            self.beating = False
        return False

    def report(self) -> None:
        if self.refused != self._reported:
            top = ", ".join(f"{src} {reason} ×{n}" for (src, reason), n
                            in self.refused.most_common(8))
            LOG.warning("mqtt bridge: %d records sent; refused so far: %s", self.sent, top)
            self._reported = Counter(self.refused)

    def run(self, stop: threading.Event) -> None:
        try:
            self._run(stop)
        except Exception as exc:            # the thread ends; main() says why and exits 1
            self.crashed = f"{type(exc).__name__}: {exc}"[:300]
            LOG.error("mqtt bridge: stopped by an error: %s", self.crashed)
            LOG.debug("mqtt bridge: the error", exc_info=True)

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.step()
            except zmq.ZMQError:
                if stop.is_set():
                    return
                raise
            except Exception as exc:        # a bug costs this turn, never the bridge
                self.failures += 1
                self.faults.record("mqtt-bridge", exc)
                if self.failures <= 10 or self.failures % 1000 == 0:
                    LOG.exception("mqtt bridge: a turn failed (%d so far)", self.failures)
            stop.wait(LOOP_S)


class Running(NamedTuple):
    thread: threading.Thread
    stop: threading.Event
    endpoint: str           # as bound: tcp://127.0.0.1:* becomes the port chosen
    bridge: Bridge


def bind_feed(endpoint: str, context: zmq.Context, keys=None) -> zmq.Socket:
    sock = context.socket(zmq.PUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 200_000)
    if keys is not None:
        from feeds.security import serve
        serve(sock, keys.key, keys.trust, FEED_DOMAIN)
    try:
        sock.bind(endpoint)
    except zmq.ZMQError:
        sock.close(0)
        raise
    return sock


def start_in_thread(settings: list[MqttSettings], endpoint: str, *, src: str = DEFAULT_SRC,
                    devices: dict[str, str] | None = None, keys=None,
                    context: zmq.Context | None = None,
                    now_ms: Callable[[], int] | None = None) -> Running:
    """Bind (a port in use raises here), start the MQTT sources, bridge from a thread.
    Stopping: set ``stop``, join the thread (it stops the sources and closes the socket)."""
    ctx = context or zmq.Context.instance()
    sock = bind_feed(endpoint, ctx, keys)
    bound = sock.getsockopt_string(zmq.LAST_ENDPOINT) or endpoint
    sources = []
    try:
        for s in settings:
            sources.append(MqttSource(s, display_crs=PROTOCOL_DEFAULT, now_ms=now_ms,
                                      devices=devices).start())
        bridge = Bridge(sources, sock, src=src, now_ms=now_ms)
    except BaseException:
        for source in sources:
            source.stop()
        sock.close(0)
        raise
    stop = threading.Event()

    def run():
        try:
            bridge.run(stop)
        finally:
            for source in sources:
                source.stop()
            sock.close(0)

    thread = threading.Thread(target=run, name="mqtt-bridge", daemon=True)
    thread.start()
    return Running(thread, stop, bound, bridge)


def build_parser():
    from feeds.args import OneLineParser, endpoint, positive_float
    from feeds.key_args import add_insecure_arg, add_key_arg, add_trust_arg
    from feeds.mqtt_args import add_mqtt_args
    p = OneLineParser(prog="feeds.mqtt_bridge",
                      description="Republish an MQTT broker's SenML, OwnTracks and protocol "
                                  "messages as a protocol v1 ZeroMQ feed.")
    add_mqtt_args(p)
    p.add_argument("--feed", type=endpoint, default=None, metavar="ENDPOINT",
                   help="bind the feed here (PUB), e.g. tcp://127.0.0.1:5560")
    p.add_argument("--roster", default=None, metavar="FILE",
                   help="roster CSV unit_id,district,shift,device: OwnTracks USER/DEVICE → unit")
    p.add_argument("--src", default=DEFAULT_SRC, help=f"the bridge's src (default {DEFAULT_SRC})")
    p.add_argument("--run-for", dest="run_for", type=positive_float, default=None,
                   metavar="SECONDS")
    add_key_arg(p, "the bridge's own CURVE key pair (NAME.key_secret, mode 600): with --trust, "
                   "the feed is a CURVE server")
    add_trust_arg(p, "the consoles")
    add_insecure_arg(p)
    return p


def main(argv: list[str] | None = None) -> int:
    from feeds.gc_tuning import tune_for_ingest
    tune_for_ingest()          # the collector less often: see feeds.gc_tuning
    from feeds.key_args import own_key, server_keys
    from feeds.mqtt_args import mqtt_settings
    from feeds.roster_devices import load_devices
    from feeds.security import SecurityError
    from feeds.site_config import apply_config

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    p = build_parser()
    argv = apply_config(p, list(sys.argv[1:] if argv is None else argv), "mqtt_bridge",
                        prog=p.prog)
    args = p.parse_args(argv)
    if not args.mqtt:
        p.error("give at least one --mqtt URL")
    if not args.feed:
        p.error("give --feed ENDPOINT (where the bridge publishes)")
    if not valid_id(args.src):
        p.error(f"--src: not a valid id (1-128 printable characters): {args.src[:40]!r}")
    try:
        settings = mqtt_settings(args)
        devices = load_devices(args.roster) if args.roster else {}
        keys = server_keys(own_key(args.key, args.insecure), args.trust, args.feed,
                           args.insecure)
    except SecurityError as exc:
        p.error(str(exc))
    except (OSError, ValueError) as exc:
        p.error(str(exc))
    ctx = zmq.Context.instance()
    try:
        running = start_in_thread(settings, args.feed, src=args.src, devices=devices,
                                  keys=keys, context=ctx)
    except zmq.ZMQError as exc:
        print(f"feeds.mqtt_bridge: error: cannot bind {args.feed}: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"feeds.mqtt_bridge: error: {exc}", file=sys.stderr)
        return 2
    how = f"CURVE, key {keys.key.name}" if keys else "UNENCRYPTED"
    print(f"mqtt bridge: {', '.join(s.name for s in settings)} → {running.endpoint} ({how}, "
          f"src {args.src}, {len(devices)} devices); Ctrl-C stops", file=sys.stderr)
    try:
        running.thread.join(args.run_for)
    except KeyboardInterrupt:
        pass
    crashed = not running.thread.is_alive() and not running.stop.is_set()
    running.stop.set()
    running.thread.join(10)
    running.bridge.report()
    if crashed:
        print(f"feeds.mqtt_bridge: error: the bridge stopped by itself: "
              f"{running.bridge.crashed or 'no reason given'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

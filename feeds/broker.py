"""The broker: one place publishers send to, every wall subscribes to, and late joiners ask.

    python -m feeds.broker --in tcp://*:5559 --out tcp://*:5560 --state tcp://*:5561 \\
        --key keys/broker.key_secret --trust keys/walls --in-trust keys/publishers

- **Fan-out in C.** Publishers connect to ``--in`` (an XSUB; ``--upstream EP`` connects it to a
  publisher that binds, or to another broker's ``--out``: brokers chain); walls subscribe to
  ``--out`` (an XPUB). ``zmq.proxy_steerable`` moves the bytes between them in libzmq's own
  thread, never decoded or re-encoded in Python. A subscriber that does not keep up loses
  messages at its own high-water mark (``--sndhwm``) and nobody else does; libzmq does not say
  how many, so each wall counts what it missed by ``seq`` (its feed health and metrics).
- **State for late joiners** (the ZeroMQ guide's Clone pattern). The proxy copies every
  message to a capture socket; ``feeds.broker_state`` keeps every open case, every unit, each
  sensor's latest reading and each source's last ``seq``, and serves them on ``--state`` (a
  ROUTER): a wall asks once, is whole at once, and follows the feed past those ``seq`` values
  with no gap and no double. Before answering, the state takes in every message already
  captured, so it is never behind what the wall's subscription has seen. A chained broker
  with ``--upstream-state`` rebuilds its state from the upstream broker at start; until then
  it answers "not ready, ask again" and walls wait or carry on with the live feed.
- **CURVE.** ``--key`` with ``--trust DIR`` (the walls that may subscribe and ask) and
  ``--in-trust DIR`` (the publishers that may send): two lists, so a wall's key cannot
  publish. Every TCP bind beyond loopback needs them (or ``--insecure``).
- **Its own health** — publishers and walls connected, messages and records forwarded, rates,
  losses on its input (by ``seq``), publisher restarts, state requests — in ``--status-out``
  JSON and on ``--metrics-port``.

No Qt. ``python -m feeds.broker --config centre.toml`` reads the ``[broker]`` section.
"""
from __future__ import annotations

import logging
import sys
import threading
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

from feeds.bounds import DEFAULT_MAX_MESSAGE_BYTES
from feeds.broker_answers import StateAnswers
from feeds.broker_state import WELCOME, BrokerState, request
from feeds.decode import MessageDecoder
from feeds.faults import Faults
from feeds.keys import Key
from feeds.security import TrustStore, connect_as, serve
from feeds.state_join import judge_state_reply

LOG = logging.getLogger("feeds.broker")
PROG = "python -m feeds.broker"
IN_DOMAIN = "broker-in"
OUT_DOMAIN = "broker-out"
DEFAULT_SNDHWM = 20_000         # messages queued for one wall before it loses them
RCVHWM = 100_000
CAPTURE_HWM = 200_000           # messages waiting for the state (past it the state loses them:
                                # seen as gaps on its input)
UPSTREAM_STATE_TIMEOUT_S = 3.0  # a chained broker waits this long for its upstream's state
# Connections by their file descriptor (a handshake's event carries none): a key the broker
# does not trust is accepted, then dropped at once.
PEER_EVENTS = (zmq.EVENT_ACCEPTED | zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)


class Broker:
    def __init__(self, ins: list[str], out: str, state: str | None = None, *,
                 upstreams: list[tuple[str, Key | None, str | None]] = (),
                 key: Key | None = None, trust: TrustStore | None = None,
                 in_trust: TrustStore | None = None, context: zmq.Context | None = None,
                 sndhwm: int = DEFAULT_SNDHWM, faults: Faults | None = None,
                 publishers: dict[str, frozenset[str]] | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES):
        self.ins, self.out, self.state_endpoint = list(ins), out, state
        self.upstreams = list(upstreams)
        self.key, self.trust, self.in_trust = key, trust, in_trust
        self.ctx = context or zmq.Context.instance()
        self.sndhwm = sndhwm
        self.faults = faults if faults is not None else Faults()
        self.max_message_bytes = max_message_bytes
        self.state = BrokerState(max_message_bytes=max_message_bytes)
        # --publishers: the publishers' messages pass a gate that checks each src against
        # the key that sent it (feeds.broker_gate) before they reach the proxy.
        self.gate = None
        if publishers is not None and self.ins:
            from feeds.broker_gate import PublisherGate
            serve_keys = None
            if key is not None:
                serve_keys = lambda sock: serve(sock, key, in_trust, IN_DOMAIN)  # noqa: E731
            self.gate = PublisherGate(self.ctx, self.ins, f"inproc://citywall-broker-gate-"
                                      f"{id(self)}", publishers, serve_keys=serve_keys,
                                      max_message_bytes=max_message_bytes, rcvhwm=RCVHWM)
        self._lock = threading.Lock()          # the state thread's figures, read by status()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self._capture_ready = threading.Event()     # the state's SUB is in place
        self._running = threading.Event()           # the proxy runs
        self._control_ep = f"inproc://citywall-broker-control-{id(self)}"
        self._capture_ep = f"inproc://citywall-broker-capture-{id(self)}"
        self._monitors: dict[str, zmq.Socket] = {}
        self.peers = {"publishers": set(), "subscribers": set()}
        self.answers = StateAnswers()
        self.frames_seen = 0                        # frames the state took in (its own SUB)
        self.rebuilt: bool | None = None if any(u[2] for u in self.upstreams) else True
        self.started_at = time.monotonic()
        self._rate = (0.0, 0, 0, 0.0, 0.0)   # (monotonic, records, frames, records/s, frames/s)
        self._proxy_stats: list[int] = [0] * 8

    # ---- running --------------------------------------------------------------------------
    def start(self) -> "Broker":
        if self.gate is not None:
            g = threading.Thread(target=self._gate, name="broker-gate", daemon=True)
            g.start()
            self._threads.append(g)
            self._ready.wait(10)
            if self._error is not None:
                raise self._error
            self._ready.clear()
        t = threading.Thread(target=self._proxy, name="broker-proxy", daemon=True)
        t.start()
        self._threads.append(t)
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        s = threading.Thread(target=self._state_loop, name="broker-state", daemon=True)
        s.start()
        self._threads.append(s)
        self._running.wait(10)
        if self._error is not None:
            self.stop()
            raise self._error
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in reversed(self._threads):
            t.join(5)

    def _proxy(self) -> None:
        socks: list[zmq.Socket] = []
        try:
            xsub = self._socket(zmq.XSUB, socks)
            xsub.setsockopt(zmq.RCVHWM, RCVHWM)
            xpub = self._socket(zmq.XPUB, socks)
            xpub.setsockopt(zmq.SNDHWM, self.sndhwm)
            xpub.setsockopt(zmq.XPUB_WELCOME_MSG, WELCOME)
            # The state hears the stream as a subscriber of its own (an in-process SUB on the
            # XPUB), never through the proxy's capture: the capture would also carry what a
            # peer sends *up* the XPUB (an XSUB holding a wall's key can), and the state must
            # hold only what publishers sent down.
            xpub.bind(self._capture_ep)
            control = self._socket(zmq.REP, socks)
            control.bind(self._control_ep)
            if self.gate is None:
                self._monitors["publishers"] = xsub.get_monitor_socket(PEER_EVENTS)
            else:                       # the publishers reach the gate; the gate reaches us
                self._monitors["publishers"] = self.gate.monitor
                xsub.connect(self.gate.inner)
            self._monitors["subscribers"] = xpub.get_monitor_socket(PEER_EVENTS)
            if self.key is not None:
                serve(xpub, self.key, self.trust, OUT_DOMAIN)
            xsub.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes + 1024)
            for ep in self.ins if self.gate is None else ():
                if self.key is not None and not ep.startswith("inproc://"):
                    serve(xsub, self.key, self.in_trust, IN_DOMAIN)
                xsub.bind(ep)
            xpub.bind(self.out)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            for s in socks:
                s.close(0)
            return
        self._ready.set()
        # Nothing flows until the state's SUB is attached (polling the XPUB lets it take the
        # attachment): the state sees every message from the first.
        while not self._capture_ready.is_set() and self._error is None \
                and not self._stop.is_set():
            xpub.poll(10)
        try:
            if self._error is not None or self._stop.is_set():
                raise RuntimeError("the broker's state did not start")
            for ep, server, _ in self.upstreams:
                # Options are taken at each bind and connect: the same XSUB serves --in as a
                # CURVE server and connects upstream as a client. An upstream (a broker or a
                # publisher known by its key) is not size-limited here: libzmq would drop the
                # link for good on one oversized message; each wall limits what it reads.
                xsub.setsockopt(zmq.MAXMSGSIZE, -1)
                if server is not None:
                    xsub.setsockopt(zmq.CURVE_SERVER, 0)
                    connect_as(xsub, self.key, server)
                xsub.connect(ep)
            # Everything, whoever subscribes downstream: the state needs every message, and a
            # chained broker's upstream sends only what is subscribed.
            xsub.send(b"\x01")
        except BaseException as exc:
            self._error = self._error or exc
            self._running.set()
            for s in socks:
                s.close(0)
            return
        self._running.set()
        try:
            zmq.proxy_steerable(xsub, xpub, None, control)
        except zmq.ZMQError as exc:
            if not self._stop.is_set():
                self.faults.record("broker proxy", exc, recovered=False)
        finally:
            for s in socks:
                s.close(0)

    def _gate(self) -> None:
        try:
            sub, pub = self.gate.open()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self.gate.pump(sub, pub, self._stop)
        except BaseException as exc:        # no publisher is heard: said, and fatal
            self.faults.record("broker publishers' gate", exc, recovered=False)
            LOG.exception("broker publishers' gate stopped")
        finally:
            sub.close(0)
            pub.close(0)

    def _socket(self, kind: int, socks: list) -> zmq.Socket:
        s = self.ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        socks.append(s)
        return s

    # ---- the state thread -------------------------------------------------------------------
    def _state_loop(self) -> None:
        socks: list[zmq.Socket] = []
        try:
            capture = self._socket(zmq.SUB, socks)
            capture.setsockopt(zmq.RCVHWM, CAPTURE_HWM)
            capture.setsockopt(zmq.SUBSCRIBE, b"")
            capture.connect(self._capture_ep)
            # Our own welcome first: the subscription is in place (the proxy thread holds the
            # stream back until then).
            if not capture.poll(5000) or capture.recv_multipart() != [WELCOME]:
                raise RuntimeError("the state's subscription to the broker's own XPUB "
                                   "was not welcomed")
            self._capture_ready.set()
            control = self._socket(zmq.REQ, socks)
            control.setsockopt(zmq.RCVTIMEO, 2000)
            control.connect(self._control_ep)
            router = None
            if self.state_endpoint:
                router = self._socket(zmq.ROUTER, socks)
                router.setsockopt(zmq.MAXMSGSIZE, 4096)
                # Two replies queued for a wall at most (a reply can be the whole city); past
                # that the answer is dropped and counted, never piled up in memory.
                router.setsockopt(zmq.SNDHWM, 2)
                router.setsockopt(zmq.ROUTER_MANDATORY, 1)
                if self.key is not None and not self.state_endpoint.startswith("inproc://"):
                    serve(router, self.key, self.trust, OUT_DOMAIN)
                router.bind(self.state_endpoint)
            upstream = _Upstreams(self, socks) if self.rebuilt is None else None
        except BaseException as exc:
            self.faults.record("broker state", exc, recovered=False)
            self._error = self._error or exc
            self._capture_ready.set()
            for s in socks:
                s.close(0)
            if self._running.wait(5):
                self._terminate_proxy()
            return
        poller = zmq.Poller()
        poller.register(capture, zmq.POLLIN)
        if router is not None:
            poller.register(router, zmq.POLLIN)
        for mon in self._monitors.values():
            poller.register(mon, zmq.POLLIN)
        if upstream is not None:
            for s in upstream.sockets():
                poller.register(s, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                events = dict(poller.poll(1 if self.answers.waiting else 100))
                if capture in events:
                    self._absorb(capture, upstream, 5_000)
                for what, mon in self._monitors.items():
                    if mon in events:
                        self._peer_events(what, mon)
                if upstream is not None:
                    upstream.step(events)
                    if upstream.done:
                        for s in upstream.sockets():
                            poller.unregister(s)
                        upstream = None
                if router is not None:
                    if router in events:
                        self.answers.take(router, upstream is not None,
                                          lambda: self._proxy_frames(control))
                    self.answers.answer_due(router, self.frames_seen, self._reply)
                self._tick(control)
        except BaseException as exc:       # said in the status; the proxy goes on forwarding
            self.faults.record("broker state", exc, recovered=False)
            LOG.exception("broker state thread stopped")
        finally:
            self._terminate_proxy(control)
            for mon in self._monitors.values():
                mon.close(0)
            for s in socks:
                s.close(0)

    def _absorb(self, capture: zmq.Socket, upstream, most: int) -> None:
        for _ in range(most):
            try:
                frames = capture.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.frames_seen += len(frames)
            if len(frames) == 1:
                if frames[0] == WELCOME and upstream is not None:
                    upstream.live()           # our subscription upstream is in place
                continue
            try:
                with self._lock:
                    self.state.absorb(frames)
            except Exception as exc:          # a bug costs this message's state only
                self.faults.record("broker state message", exc)

    def _reply(self, req) -> list[bytes]:
        with self._lock:
            return self.state.reply(req)

    def _peer_events(self, what: str, mon: zmq.Socket) -> None:
        peers = self.peers[what]
        while True:
            try:
                ev = recv_monitor_message(mon, zmq.NOBLOCK)
            except zmq.Again:
                return
            if ev["event"] in (zmq.EVENT_ACCEPTED, zmq.EVENT_CONNECTED):
                peers.add(ev["value"])
            elif ev["event"] == zmq.EVENT_DISCONNECTED:
                peers.discard(ev["value"])

    def _tick(self, control: zmq.Socket) -> None:
        """Once a second: the proxy's statistics and the rates."""
        now = time.monotonic()
        at, records, frames, _, _ = self._rate
        if now - at < 1.0:
            return
        self._proxy_frames(control)
        with self._lock:
            done = self.state.records
        sent = self._proxy_stats[6]
        span = now - at if at else 0.0
        self._rate = (now, done, sent, (done - records) / span if span else 0.0,
                      (sent - frames) / span if span else 0.0)

    def _proxy_frames(self, control: zmq.Socket) -> int:
        """The frames the proxy has taken in from the publishers' side, now (its
        STATISTICS: libzmq counts each frame of a message)."""
        try:
            control.send(b"STATISTICS")
            self._proxy_stats = [int.from_bytes(f, sys.byteorder)
                                 for f in control.recv_multipart()]
        except zmq.ZMQError as exc:
            self.faults.record("broker statistics", exc)
        return self._proxy_stats[0]

    def _terminate_proxy(self, control: zmq.Socket | None = None) -> None:
        own = control is None
        try:
            if own:
                control = self.ctx.socket(zmq.REQ)
                control.setsockopt(zmq.LINGER, 0)
                control.connect(self._control_ep)
            control.setsockopt(zmq.RCVTIMEO, 1000)
            control.send(b"TERMINATE")
            control.recv()
        except zmq.ZMQError:
            pass
        finally:
            if own and control is not None:
                control.close(0)

    # ---- what it says -------------------------------------------------------------------------
    def status(self) -> dict:
        with self._lock:
            st = self.state.status()
            restarts = st.pop("restarts_by_src")
        stats = self._proxy_stats
        doc = {
            "in": self.ins, "upstreams": [u[0] for u in self.upstreams], "out": self.out,
            "state_endpoint": self.state_endpoint,
            "secured": self.key is not None,
            "publishers": len(self.peers["publishers"]),
            "subscribers": len(self.peers["subscribers"]),
            # The proxy's own counts (frames: a feed message is two), and the state's.
            "forwarded_frames": stats[6], "forwarded_bytes": stats[7],
            "rate_frames": round(self._rate[4], 1),
            "state_messages": st["messages"], "state_records": st["records"],
            "state_rate": round(self._rate[3], 1),
            "state_behind_frames": max(0, stats[0] - self.frames_seen),
            "input_gaps": st["input_gaps"], "input_missed": st["input_missed"],
            "input_restarts": st["input_restarts"], "restarts_by_src": restarts,
            **self.answers.status(),
            "state_ready": self.rebuilt is True,
            "state": {k: st[k] for k in ("cases", "units", "positions", "sensors", "sources")},
            "rejected": st["rejected"], "refused_ids": st["refused_ids"],
            "proxy": dict(zip(("in_msgs", "in_bytes", "in_sent_msgs", "in_sent_bytes",
                               "out_recv_msgs", "out_recv_bytes", "out_msgs", "out_bytes"),
                              stats)),
            "gate": self.gate.status() if self.gate is not None else None,
            "faults": self.faults.snapshot(),
            "uptime_s": round(time.monotonic() - self.started_at, 1),
        }
        if self.key is not None:
            from feeds.security import Gate
            doc["auth_refused"] = {"in": Gate.of(self.ctx).status(IN_DOMAIN),
                                   "out": Gate.of(self.ctx).status(OUT_DOMAIN)}
        return doc


class _Upstreams:
    """A chained broker's state, fetched once at start from the upstream brokers that have a
    ``--upstream-state``: asked when our subscription upstream is live (its welcome came
    through the proxy), taken in as it arrives; after ``UPSTREAM_STATE_TIMEOUT_S`` without it
    the broker serves what it has gathered live, and says so."""

    def __init__(self, broker: Broker, socks: list):
        self.broker = broker
        self.decoder = MessageDecoder()
        self.pending: dict[zmq.Socket, str] = {}
        for ep, server, state_ep in broker.upstreams:
            if not state_ep:
                continue
            s = broker._socket(zmq.DEALER, socks)
            s.setsockopt(zmq.MAXMSGSIZE, 64 * 1024 * 1024)
            if server is not None:
                connect_as(s, broker.key, server)
            s.connect(state_ep)
            self.pending[s] = state_ep
        self.asked = False
        self.retry_at: dict[zmq.Socket, float] = {}
        self.deadline = time.monotonic() + UPSTREAM_STATE_TIMEOUT_S
        self.done = not self.pending

    def sockets(self) -> list[zmq.Socket]:
        return list(self.pending)

    def live(self) -> None:
        if not self.asked:
            self.asked = True
            for s in self.pending:
                s.send(request("upstream"))

    def step(self, events: dict) -> None:
        now = time.monotonic()
        for s, at in list(self.retry_at.items()):
            if now >= at and s in self.pending:
                del self.retry_at[s]
                s.send(request("upstream"))
        for s in list(self.pending):
            if s not in events:
                continue
            try:
                frames = s.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                continue
            reply = judge_state_reply(frames, self.decoder)
            if reply.retry_ms is not None:
                self.retry_at[s] = now + reply.retry_ms / 1000
                continue
            if reply.problem is None:
                with self.broker._lock:
                    self.broker.state.load(reply.records, reply.seqs, reply.newest_ts)
            else:
                self.broker.faults.record("broker upstream state",
                                          f"{self.pending[s]}: {reply.problem}")
            del self.pending[s]
        if self.pending and time.monotonic() > self.deadline:
            for s, ep in self.pending.items():
                self.broker.faults.record("broker upstream state",
                                          f"{ep}: no answer in {UPSTREAM_STATE_TIMEOUT_S:.0f} s; "
                                          "serving the state gathered live")
            self.pending.clear()
        if not self.pending:
            self.done = True
            self.broker.rebuilt = True


if __name__ == "__main__":
    import sys as _sys

    from feeds.broker_cli import main
    _sys.exit(main())

"""The broker's door for publishers when it is told who may publish what (``--publishers``).

Behind a broker every wall sees one server key, the broker's: it can no longer tell which
publisher sent a record, so the check a console makes with ``--publishers`` (a record's
``src`` must be one its publisher's key may use, ``feeds.publishers``) moves here. With
``--publishers`` the broker's ``--in`` is this gate's SUB (a CURVE server taking the keys in
``--in-trust``): each message is read with the key that sent it (ZeroMQ's ``User-Id``, set by
the ZAP handler to the key's name), the ``src`` of each of its records is read — nothing else
is decoded — and the message goes on, byte for byte, to the proxy over an in-process socket
only when every ``src`` in it is one that key may use. Otherwise the whole message is
refused and counted by key and reason: ``src_not_allowed``, ``unknown_publisher`` (a key the
file does not name), ``unjudged`` (no ``src`` can be read: not JSON, wrong frames; a wall
would refuse it anyway). The fan-out to the walls stays in libzmq's proxy.

No Qt. Runs on a thread of its own; a message it cannot judge costs that message only.
"""
from __future__ import annotations

import threading
from collections import Counter
from typing import Union

import msgspec
import zmq

MAX_KEYS_COUNTED = 1_000        # publisher names counted one by one; the rest as "other"
BURST = 2_000


class _Src(msgspec.Struct):
    src: str


_srcs = msgspec.json.Decoder(Union[_Src, list[_Src]])


def srcs_of(payload: bytes) -> set[str] | None:
    """The ``src`` of every record of a feed message's payload, or None when unreadable."""
    try:
        got = _srcs.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    if isinstance(got, list):
        return {r.src for r in got} if got else None
    return {got.src}


class PublisherGate:
    def __init__(self, context: zmq.Context, ins: list[str], inner: str,
                 allowed: dict[str, frozenset[str]], *, serve_keys=None,
                 max_message_bytes: int, rcvhwm: int):
        self.ctx, self.ins, self.inner = context, list(ins), inner
        self.allowed = allowed
        self.serve_keys = serve_keys            # callable(sock): make it the CURVE server
        self.max_message_bytes = max_message_bytes
        self.rcvhwm = rcvhwm
        self.passed = 0
        self.refused: Counter = Counter()       # (publisher, reason) → messages
        self._lock = threading.Lock()
        self.monitor: zmq.Socket | None = None

    def open(self) -> tuple[zmq.Socket, zmq.Socket]:
        """The SUB the publishers reach and the PUB the proxy's XSUB connects to (called on
        the thread that will run ``pump``)."""
        sub = self.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVHWM, self.rcvhwm)
        sub.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes + 1024)
        pub = self.ctx.socket(zmq.PUB)
        pub.setsockopt(zmq.LINGER, 0)
        pub.setsockopt(zmq.SNDHWM, self.rcvhwm)
        try:
            self.monitor = sub.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
            if self.serve_keys is not None:
                self.serve_keys(sub)
            for ep in self.ins:
                sub.bind(ep)
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            pub.bind(self.inner)
        except BaseException:
            sub.close(0)
            pub.close(0)
            raise
        return sub, pub

    def pump(self, sub: zmq.Socket, pub: zmq.Socket, stop: threading.Event) -> None:
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        while not stop.is_set():
            if not poller.poll(100):
                continue
            for _ in range(BURST):
                try:
                    frames = sub.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                if self.judge(frames):
                    pub.send_multipart(frames, copy=False)

    def judge(self, frames: list) -> bool:
        who = "?"
        try:
            who = frames[-1].get("User-Id") or "?"
        except zmq.ZMQError:
            pass
        if len(frames) != 2:
            self._refuse(who, "unjudged")
            return False
        srcs = srcs_of(frames[1].buffer)
        if srcs is None:
            self._refuse(who, "unjudged")
            return False
        allowed = self.allowed.get(who)
        if allowed is None:
            self._refuse(who, "unknown_publisher")
            return False
        if not srcs <= allowed:
            self._refuse(who, "src_not_allowed")
            return False
        with self._lock:
            self.passed += 1
        return True

    def _refuse(self, who: str, reason: str) -> None:
        with self._lock:
            if (who, reason) not in self.refused and len(self.refused) >= MAX_KEYS_COUNTED:
                who = "other"
            self.refused[(who, reason)] += 1

    def status(self) -> dict:
        with self._lock:
            by: dict[str, dict[str, int]] = {}
            for (who, reason), n in self.refused.items():
                by.setdefault(who, {})[reason] = n
            return {"passed_messages": self.passed, "refused_messages": by}

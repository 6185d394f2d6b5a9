"""The training dispatch desk: the ROUTER a trainee's console orders, inside this process.

    desk = TrainingDesk()                          # binds inproc://citywall-training
    for identity, order in desk.take():            # Order, or Problem (answer it rejected)
        desk.reply(identity, order.order_id, Ack(...))

Only the wire lives here: the orders are judged against the replayed picture by
``situation.training.Exercise``, which calls ``take()`` and ``reply()`` from the thread that
owns the situation (no thread of its own, so the picture is touched by one thread).

Like the live service (``feeds.dispatch_service``), the same ``order_id`` twice is one order:
the repeat gets the earlier reply byte for byte, and ``take()`` never hands it out again — so
the exercise acts on it once. The endpoint must be ``inproc://``: a training desk can only be
reached from inside this process, so it can never stand in for, or be mistaken for, the live
service (and a ``DispatchClient`` in TRAINING mode refuses anything else). No Qt.
"""
from __future__ import annotations

from collections import Counter, OrderedDict

import zmq

from feeds.endpoints import check_endpoint
from feeds.orders import (MAX_ORDER_BYTES, Ack, Order, Problem, SnapshotReply, decode_order,
                          encode)

DEFAULT_ENDPOINT = "inproc://citywall-training"
MAX_TAKE = 256              # orders taken per call: a flood cannot stall the consumer's thread
REPLY_KEEP = 10_000         # answered order ids remembered (an exercise is a few hundred)

Envelope = tuple[bytes, ...]      # the ROUTER's routing frames for one sender (opaque)


class TrainingDesk:
    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, context: zmq.Context | None = None):
        check_endpoint(endpoint)
        if not endpoint.startswith("inproc://"):
            raise ValueError(f"a training desk is in-process only (inproc://NAME), not "
                             f"{endpoint!r}: it must never be reachable as a dispatch service")
        self.endpoint = endpoint
        self._replies: OrderedDict[str, bytes] = OrderedDict()   # order_id → reply sent
        self._waiting: dict[str, list[Envelope]] = {}             # taken, not yet answered
        self.counts: Counter = Counter()
        self.dropped: Counter = Counter()     # reason → requests with no order_id to answer
        sock = (context or zmq.Context.instance()).socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_ORDER_BYTES)
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            sock.close(0)
            raise ValueError(f"cannot bind the training desk at {endpoint}: "
                             f"{exc.strerror}") from None
        self._sock = sock

    def take(self, limit: int = MAX_TAKE) -> list[tuple[Envelope, Order | Problem]]:
        """The orders waiting, oldest first, without blocking. A repeat of an answered order
        is answered here with the earlier reply; a repeat of one taken and not yet answered
        gets the same reply when it comes. A request without a readable ``order_id`` cannot
        be answered: it is counted in ``dropped``."""
        out: list[tuple[Envelope, Order | Problem]] = []
        while len(out) < limit:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            self.counts["received"] += 1
            if len(frames) == 2:
                envelope, payload = (frames[0],), frames[1]
            elif len(frames) == 3 and frames[1] == b"":        # a REQ socket's envelope
                envelope, payload = (frames[0], b""), frames[2]
            else:
                self.dropped["bad_frames"] += 1
                continue
            order = decode_order(payload)
            oid = order.order_id
            if oid is None:
                self.dropped[order.code] += 1
                continue
            if oid in self._replies:
                self.counts["duplicates"] += 1
                self._sock.send_multipart([*envelope, self._replies[oid]])
            elif oid in self._waiting:
                self.counts["duplicates"] += 1
                self._waiting[oid].append(envelope)
            else:
                self._waiting[oid] = [envelope]
                out.append((envelope, order))
        return out

    def reply(self, identity: Envelope, order_id: str, reply: Ack | SnapshotReply) -> bytes:
        """Answer an order taken (and every repeat of it waiting); the bytes sent. An ack is
        kept for repeats; a snapshot is not (it changes nothing: a repeat gets a fresh one)."""
        data = encode(reply)
        envelopes = self._waiting.pop(order_id, None) or [tuple(identity)]
        if isinstance(reply, Ack):
            self._replies[order_id] = data
            if len(self._replies) > REPLY_KEEP:
                self._replies.popitem(last=False)
        for envelope in envelopes:
            self._sock.send_multipart([*envelope, data])
        self.counts["answered"] += 1
        return data

    def wait(self, timeout_ms: int) -> bool:
        """Wait up to ``timeout_ms`` until an order is waiting (a headless loop, tests)."""
        return bool(self._sock.poll(timeout_ms))

    def status(self) -> dict:
        return {"endpoint": self.endpoint, "waiting": len(self._waiting),
                **{k: self.counts[k] for k in ("received", "answered", "duplicates")},
                "dropped": dict(self.dropped)}

    def close(self) -> None:
        self._sock.close(0)

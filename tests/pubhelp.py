"""A protocol publisher for tests: a real XPUB socket on tcp loopback.

XPUB rather than PUB so a test can wait until a subscriber has joined (it receives the
subscription) instead of sleeping and hoping.
"""
from __future__ import annotations

import json
import socket

import zmq

from feeds.receiver import wait_for


def free_port() -> int:
    """A TCP port free on loopback now (for a program that binds it itself)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def record(topic: str, src: str = "t", seq: int = 0, ts: int = 1_700_000_000_000, **fields):
    base = {"v": 1, "src": src, "seq": seq, "ts": ts}
    if topic == "case":
        base.update(case_id="C1", status="registered", category="event.street_order.vending",
                    title="占道经营", description="x", lat=39.91, lon=116.40, source="patrol",
                    priority=2, reported_at=ts, due_at=ts + 3_600_000, unit_id=None)
    elif topic == "unit":
        base.update(unit_id="U1", callsign="东城-巡01", kind="foot_patrol", status="available",
                    lat=39.91, lon=116.40, case_id=None)
    elif topic.startswith("sensor."):
        base.update(id="S1", kind=topic.split(".", 1)[1], lat=39.91, lon=116.40,
                    metrics={"pm25": 40.0})
    base.update(fields)
    return base


def rec(kind, **fields):
    """A typed protocol record (``feeds.schema``) made like ``record``."""
    import msgspec
    from feeds.schema import Case, Heartbeat, SensorReading, Unit
    rtype = {"case": Case, "unit": Unit, "hb": Heartbeat}.get(kind, SensorReading)
    return msgspec.convert(record(kind, **fields), rtype)


def batch_of(*records):
    """A receiver's hand-over of these records, with their seq bookkeeping."""
    from feeds.batch import Batch, SeqTracker
    b = Batch(records=list(records))
    tracker = SeqTracker()
    for r in records:
        tracker.observe(r.src, r.seq, b)
    return b


class TestPublisher:
    __test__ = False

    def __init__(self, context: zmq.Context | None = None):
        self.ctx = context or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 0)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"

    def wait_subscriber(self, timeout_s: float = 5.0) -> None:
        if not self.sock.poll(int(timeout_s * 1000)):
            raise TimeoutError("no subscriber joined")
        self.sock.recv()

    def send_frames(self, frames: list[bytes]) -> None:
        self.sock.send_multipart(frames)

    def send(self, topic: str, payload) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.sock.send_multipart([topic.encode(), data])

    def close(self) -> None:
        self.sock.close(0)


def drain_until(receiver, situation, predicate, timeout_s: float = 5.0) -> bool:
    """Apply what the receiver got until ``predicate()`` holds (bounded wait)."""
    def step():
        batch, heard = receiver.drain()
        situation.apply(batch, heard)
        return predicate()
    return wait_for(step, timeout_s)


def write_foreign_mcap(path, messages) -> None:
    """An MCAP file as another tool might write it, with mcap's own Writer: ``messages`` are
    (topic, encoding, log_ms, data); one channel per (topic, encoding), no schema."""
    from mcap.writer import Writer
    with open(path, "wb") as f:
        w = Writer(f)
        w.start()
        channels: dict[tuple[str, str], int] = {}
        for topic, encoding, log_ms, data in messages:
            if (topic, encoding) not in channels:
                channels[topic, encoding] = w.register_channel(topic, encoding, 0)
            w.add_message(channels[topic, encoding], log_ms * 1_000_000, data, log_ms * 1_000_000)
        w.finish()

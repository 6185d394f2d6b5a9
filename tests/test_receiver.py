"""The receiver over real sockets: a publisher that dies and comes back on the same port is
reconnected by itself, its restart is seen, and its source goes down and up on the clock."""
from __future__ import annotations

import zmq

from feeds.receiver import Receiver, wait_for
from situation.clock import ManualClock
from situation.store import Situation
from tests.pubhelp import TestPublisher, drain_until, record

T0 = 1_700_000_000_000


def _try_bind(sock, endpoint) -> bool:
    try:
        sock.bind(endpoint)
        return True
    except zmq.ZMQError:
        return False


def test_publisher_restart_reconnect_and_down_up():
    ctx = zmq.Context()
    pub = TestPublisher(ctx)
    endpoint = pub.endpoint
    receiver = Receiver([endpoint], context=ctx).start()
    clock = ManualClock(T0)
    s = Situation(clock)
    sock = None
    try:
        pub.wait_subscriber()
        for seq in range(5):
            pub.send("hb", record("hb", src="gw", seq=seq, ts=T0))
        assert drain_until(receiver, s, lambda: s.sources.get("gw") and
                           s.sources["gw"].last_seq == 4)
        assert s.source_up("gw") and s.endpoint_up(endpoint)

        pub.close()                                   # the publisher dies
        clock.advance(3_001)
        s.apply(*receiver.drain())
        assert not s.source_up("gw")
        assert not s.endpoint_up(endpoint)
        assert s.status()["sources"]["gw"]["up"] is False

        # It comes back on the same port, counting from 0 again (a restart).
        sock = ctx.socket(zmq.XPUB)
        sock.setsockopt(zmq.LINGER, 0)
        # ZeroMQ closes the old listener on its I/O thread a moment later: retry, bounded.
        assert wait_for(lambda: _try_bind(sock, endpoint), timeout_s=5), "port never freed"
        assert sock.poll(10_000), "the receiver did not reconnect by itself"
        sock.recv()
        for seq in range(3):
            sock.send_multipart([b"hb", zmq.utils.jsonapi.dumps(
                record("hb", src="gw", seq=seq, ts=T0 + 4_000))])
        assert drain_until(receiver, s, lambda: s.sources["gw"].last_seq == 2)
        health = s.sources["gw"]
        assert (health.restarts, health.gaps, health.records) == (1, 0, 8)
        assert s.source_up("gw") and s.endpoint_up(endpoint)
    finally:
        receiver.stop()
        if sock is not None:
            sock.close(0)
        ctx.term()


def test_gap_over_the_wire(publisher):
    receiver = Receiver([publisher.endpoint]).start()
    s = Situation(ManualClock(T0))
    try:
        publisher.wait_subscriber()
        for seq in (0, 1, 2, 10, 11):
            publisher.send("hb", record("hb", src="gw", seq=seq, ts=T0))
        assert drain_until(receiver, s, lambda: s.sources.get("gw") and
                           s.sources["gw"].last_seq == 11)
        assert (s.gaps, s.sources["gw"].missed) == (1, 7)
    finally:
        receiver.stop()


def test_several_endpoints_one_receiver():
    ctx = zmq.Context()
    a, b = TestPublisher(ctx), TestPublisher(ctx)
    receiver = Receiver([a.endpoint, b.endpoint], context=ctx).start()
    s = Situation(ManualClock(T0))
    try:
        a.wait_subscriber()
        b.wait_subscriber()
        a.send("unit", record("unit", src="a", seq=0, unit_id="UA"))
        b.send("unit", record("unit", src="b", seq=0, unit_id="UB"))
        assert drain_until(receiver, s, lambda: set(s.units) == {"UA", "UB"})
    finally:
        receiver.stop()
        a.close()
        b.close()
        ctx.term()

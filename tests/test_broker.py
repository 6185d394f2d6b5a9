"""The broker and late joiners, in one process: real sockets on loopback, real receivers and
situations. (tests/test_centre.py runs the same as separate processes over CURVE.)"""
from __future__ import annotations

import random
import threading
import time

import msgspec
import pytest
import zmq
from hypothesis import given, settings, strategies as st

from feeds.batch import Batch, SeqDedup
from feeds.broker import Broker
from feeds.broker_state import STATE_TAG, WELCOME, BrokerState
from feeds.receiver import Receiver, wait_for
from situation.clock import WallClock
from situation.store import Situation
from tests.pubhelp import TestPublisher, record

NOW = lambda: time.time_ns() // 1_000_000        # noqa: E731


def free_endpoint() -> str:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


class City:
    """What a publisher has said: the truth every wall must end up holding."""

    def __init__(self, pub: TestPublisher, src: str = "city"):
        self.pub, self.src, self.seq = pub, src, 0
        self.cases: dict[str, dict] = {}
        self.units: dict[str, dict] = {}
        self.sensors: dict[str, dict] = {}

    def send(self, topic: str, **fields) -> dict:
        rec = record(topic, src=self.src, seq=self.seq, ts=NOW(), **fields)
        self.seq += 1
        self.pub.send(topic, rec)
        table = {"case": self.cases, "unit": self.units}.get(topic, self.sensors)
        key = rec.get("case_id") or rec.get("unit_id") or rec["id"]
        table[key] = rec
        return rec

    def batch(self, topic: str, many: list[dict]) -> None:
        recs = []
        for fields in many:
            rec = record(topic, src=self.src, seq=self.seq, ts=NOW(), **fields)
            self.seq += 1
            recs.append(rec)
            table = {"case": self.cases, "unit": self.units}.get(topic, self.sensors)
            table[rec.get("case_id") or rec.get("unit_id") or rec["id"]] = rec
        self.pub.send(topic, recs)

    def open_cases(self) -> set[str]:
        return {k for k, c in self.cases.items() if c["status"] not in ("closed", "rejected")}


def lat_lon(i: int) -> dict:
    return {"lat": 39.90 + (i % 50) * 0.001, "lon": 116.39 + (i % 40) * 0.001}


def follow(receiver: Receiver, sit: Situation, until, timeout_s: float = 10.0) -> bool:
    def step():
        batch, heard = receiver.drain()
        sit.apply(batch, heard)
        return until()
    return wait_for(step, timeout_s)


def holds_exactly(sit: Situation, city: City) -> bool:
    open_held = {k for k, c in sit.cases.items() if sit.is_open(c)}
    return (open_held == city.open_cases()
            and all(sit.cases[k].status == c["status"] for k, c in city.cases.items()
                    if k in sit.cases)
            and set(sit.units) == set(city.units)
            and all(sit.units[k].status == u["status"] for k, u in city.units.items())
            and set(sit.sensors) == set(city.sensors)
            and all(sit.sensors[k].metrics == s["metrics"] for k, s in city.sensors.items()))


@pytest.fixture
def centre():
    """A publisher (binding, like the simulator) and a broker that connects to it."""
    pub = TestPublisher()
    out, state = free_endpoint(), free_endpoint()
    broker = Broker([], out, state, upstreams=[(pub.endpoint, None, None)]).start()
    pub.wait_subscriber()
    parts = []

    class C:
        publisher, city, broker_out, broker_state = pub, City(pub), out, state
        b = broker

        @staticmethod
        def wall(*feeds: tuple[str, str | None]) -> tuple[Receiver, Situation]:
            r = Receiver([f for f, _ in feeds], state={f: s for f, s in feeds if s},
                         now_ms=NOW).start()
            parts.append(r)
            return r, Situation(WallClock())
    yield C
    for p in parts:
        p.stop()
    broker.stop()
    pub.close()


def test_a_late_wall_is_whole_at_once_and_then_follows_with_no_gap_and_no_double(centre):
    city = centre.city
    for i in range(0, 2000, 100):
        city.batch("case", [dict(case_id=f"C{j}", **lat_lon(j)) for j in range(i, i + 100)])
    city.batch("unit", [dict(unit_id=f"U{j}", **lat_lon(j)) for j in range(300)])
    city.batch("sensor.air", [dict(id=f"S{j}", metrics={"pm25": float(j)}) for j in range(500)])
    assert wait_for(lambda: centre.b.status()["state_records"] == 2800, 5)

    # The publisher goes on while the wall joins: closes, dispatches, new readings.
    stop = threading.Event()
    sent = threading.Event()

    def keep_publishing():
        rng = random.Random(7)
        n = 0
        while not stop.is_set() and n < 3000:
            k = rng.randrange(3)
            if k == 0:
                city.send("case", case_id=f"C{rng.randrange(2100)}",
                          status=rng.choice(["dispatched", "closed", "on_scene"]), **lat_lon(n))
            elif k == 1:
                city.send("unit", unit_id=f"U{rng.randrange(300)}",
                          status=rng.choice(["available", "en_route"]), **lat_lon(n))
            else:
                city.send("sensor.air", id=f"S{rng.randrange(600)}",
                          metrics={"pm25": float(n)})
            n += 1
            if n % 50 == 0:
                time.sleep(0.001)
        sent.set()

    t = threading.Thread(target=keep_publishing)
    t.start()
    receiver, sit = centre.wall((centre.broker_out, centre.broker_state))
    assert wait_for(lambda: sent.is_set(), 30)
    stop.set()
    t.join(5)
    assert follow(receiver, sit, lambda: holds_exactly(sit, city)), (
        len(sit.cases), len(city.cases), sit.status()["state_joins"])
    doc = sit.status()
    join = doc["state_joins"][0]
    assert join["outcome"] == "joined" and join["records"] >= 2000   # some closed meanwhile
    src = doc["sources"]["city"]
    assert (src["gaps"], src["missed"], src["restarts"]) == (0, 0, 0)
    assert src["last_seq"] == city.seq - 1


def test_a_wall_without_a_state_endpoint_sees_only_what_follows(centre):
    city = centre.city
    city.batch("case", [dict(case_id=f"C{j}") for j in range(50)])
    assert wait_for(lambda: centre.b.status()["state_records"] == 50, 5)
    receiver, sit = centre.wall((centre.broker_out, None))
    n = 0

    def a_late_one_came():              # send until the subscription is in place
        nonlocal n
        city.send("case", case_id=f"late{n}")
        n += 1
        return follow(receiver, sit, lambda: any(k.startswith("late") for k in sit.cases),
                      0.1)
    assert wait_for(a_late_one_came, 10)
    # the Clone pattern is what makes a wall whole: without it, none of the 50 before
    assert not any(k.startswith("C") for k in sit.cases)


def test_a_broken_state_reply_is_refused_counted_and_the_wall_follows_the_feed():
    """A 'broker' whose state endpoint answers garbage: the wall says so and goes live."""
    pub = TestPublisher()
    ctx = zmq.Context.instance()
    fake = ctx.socket(zmq.ROUTER)
    fake.setsockopt(zmq.LINGER, 0)
    state = f"tcp://127.0.0.1:{fake.bind_to_random_port('tcp://127.0.0.1')}"
    pub.sock.setsockopt(zmq.XPUB_WELCOME_MSG, WELCOME)
    receiver = Receiver([pub.endpoint], state={pub.endpoint: state}, now_ms=NOW).start()
    sit = Situation(WallClock())
    try:
        pub.wait_subscriber()
        assert fake.poll(5000)
        ident, _req = fake.recv_multipart()
        fake.send_multipart([ident, STATE_TAG, b'{"v":1,"type":"state","seqs":{"a":-1}}',
                             b"case", b"[]"])
        city = City(pub)
        city.send("case", case_id="live")
        assert follow(receiver, sit, lambda: "live" in sit.cases)
        join = sit.status()["state_joins"][0]
        assert join["outcome"] == "refused" and "seq" in join["problem"]
    finally:
        receiver.stop()
        fake.close(0)
        pub.close()


@pytest.mark.parametrize("reply", [
    [b"nope"],
    [STATE_TAG, b"{not json"],
    [STATE_TAG, b'{"v":2,"type":"state"}'],
    [STATE_TAG, b'{"v":1,"type":"error","reason":"x"}'],
    [STATE_TAG, b'{"v":1,"type":"state"}', b"case"],                       # odd frames
    [STATE_TAG, b'{"v":1,"type":"state","seqs":{"\\ud800":1}}'],
    [STATE_TAG, b'{"v":1,"type":"state","seqs":{"a":1e400}}'],
    [STATE_TAG, b"[" * 100_000 + b"]" * 100_000],
])
def test_every_malformed_state_reply_is_judged_without_raising(reply):
    from feeds.decode import MessageDecoder
    from feeds.state_join import judge_state_reply
    assert judge_state_reply(reply, MessageDecoder()).problem


def test_records_inside_a_state_reply_are_judged_like_the_feed():
    from feeds.decode import MessageDecoder
    from feeds.state_join import judge_state_reply
    good = record("case", src="a", seq=1, ts=NOW(), case_id="ok")
    bad = dict(good, case_id="bad", lat=1e400)
    frames = [STATE_TAG, b'{"v":1,"type":"state","seqs":{"a":1}}', b"case",
              msgspec.json.encode([good]).replace(b"]", b",") + b'{"v":1}]']
    reply = judge_state_reply(frames, MessageDecoder())
    assert reply.problem is None and [r.case_id for r in reply.records] == ["ok"]
    assert sum(reply.rejects.values()) == 1
    del bad


def test_a_chained_broker_rebuilds_from_upstream_and_walls_behind_it_are_whole(centre):
    city = centre.city
    city.batch("case", [dict(case_id=f"C{j}") for j in range(500)])
    city.batch("unit", [dict(unit_id=f"U{j}") for j in range(40)])
    assert wait_for(lambda: centre.b.status()["state_records"] == 540, 5)
    out2, state2 = free_endpoint(), free_endpoint()
    district = Broker([], out2, state2, upstreams=[
        (centre.broker_out, None, centre.broker_state)]).start()
    try:
        assert wait_for(lambda: district.status()["state_ready"], 5)
        assert district.status()["state"]["cases"] == 500
        city.send("case", case_id="after")
        receiver, sit = centre.wall((out2, state2))
        assert follow(receiver, sit, lambda: len(sit.cases) == 501)
        city.send("unit", unit_id="U1", status="en_route")
        assert follow(receiver, sit, lambda: holds_exactly(sit, city))
        src = sit.status()["sources"]["city"]
        assert (src["gaps"], src["restarts"]) == (0, 0)
    finally:
        district.stop()


def test_a_wall_asking_while_the_state_is_rebuilt_waits_then_is_whole():
    """The district broker's upstream state answers late: meanwhile walls are told 'not
    ready' and ask again; they are whole once it has come."""
    pub = TestPublisher()
    ctx = zmq.Context.instance()
    slow = ctx.socket(zmq.ROUTER)                 # an upstream state that answers when told
    slow.setsockopt(zmq.LINGER, 0)
    slow_state = f"tcp://127.0.0.1:{slow.bind_to_random_port('tcp://127.0.0.1')}"
    pub.sock.setsockopt(zmq.XPUB_WELCOME_MSG, WELCOME)
    out, state = free_endpoint(), free_endpoint()
    broker = Broker([], out, state, upstreams=[(pub.endpoint, None, slow_state)]).start()
    receiver = None
    try:
        pub.wait_subscriber()
        assert slow.poll(5000)
        ident, _ = slow.recv_multipart()
        receiver = Receiver([out], state={out: state}, now_ms=NOW).start()
        sit = Situation(WallClock())
        assert wait_for(lambda: broker.status()["state_not_ready"] >= 1, 5)
        upstream = BrokerState()
        upstream.absorb([b"case", msgspec.json.encode(
            [record("case", src="up", seq=i, ts=NOW(), case_id=f"K{i}") for i in range(30)])])
        slow.send_multipart([ident, *upstream.reply("upstream")])
        assert follow(receiver, sit, lambda: len(sit.cases) == 30)
        assert sit.status()["state_joins"][0]["outcome"] == "joined"
    finally:
        if receiver is not None:
            receiver.stop()
        broker.stop()
        slow.close(0)
        pub.close()


def test_two_brokers_for_one_wall_apply_every_record_once(centre):
    pub = centre.publisher
    pub.sock.setsockopt(zmq.XPUB_VERBOSE, 1)      # see the second broker's subscription too
    out2, state2 = free_endpoint(), free_endpoint()
    second = Broker([], out2, state2, upstreams=[(pub.endpoint, None, None)]).start()
    try:
        pub.wait_subscriber()
        city = centre.city
        city.batch("case", [dict(case_id=f"C{j}") for j in range(300)])
        receiver, sit = centre.wall((centre.broker_out, centre.broker_state), (out2, state2))
        assert wait_for(lambda: len(receiver.join_outcomes) == 2, 10)
        for i in range(400):
            city.send("sensor.air", id=f"S{i % 37}", metrics={"pm25": float(i)})
        # every one came twice: wait for the slower broker's copies too
        assert follow(receiver, sit, lambda: holds_exactly(sit, city) and sit.duplicates >= 400)
        doc = sit.status()
        src = doc["sources"]["city"]
        assert (src["gaps"], src["missed"], src["restarts"]) == (0, 0, 0)
        assert src["records"] == 400             # the live ones, each once
        assert len(sit.sensor_history["S0"]) == len(range(0, 400, 37))
    finally:
        second.stop()


def test_a_publisher_that_restarts_keeps_the_state_and_is_counted(centre):
    city = centre.city
    city.batch("case", [dict(case_id=f"C{j}") for j in range(20)])
    assert wait_for(lambda: centre.b.status()["state_records"] == 20, 5)
    city.seq = 0                             # the publisher came back with a fresh counter
    time.sleep(0.002)
    city.send("case", case_id="after-restart")
    assert wait_for(lambda: centre.b.status()["input_restarts"] == 1, 5)
    assert centre.b.status()["state"]["cases"] == 21


def test_a_slow_wall_loses_only_its_own_messages():
    pub = TestPublisher()
    out, state = free_endpoint(), free_endpoint()
    broker = Broker([], out, state, upstreams=[(pub.endpoint, None, None)], sndhwm=50).start()
    ctx = zmq.Context.instance()
    slow = ctx.socket(zmq.SUB)
    slow.setsockopt(zmq.RCVHWM, 10)
    slow.setsockopt(zmq.RCVBUF, 4096)
    slow.setsockopt(zmq.LINGER, 0)
    slow.setsockopt(zmq.SUBSCRIBE, b"")
    slow.connect(out)
    receiver = Receiver([out], state={out: state}, now_ms=NOW).start()
    sit = Situation(WallClock())
    try:
        pub.wait_subscriber()
        assert wait_for(lambda: broker.status()["subscribers"] == 2, 5)
        assert follow(receiver, sit, lambda: bool(sit.state_joins), 5)
        city = City(pub)
        for i in range(0, 20_000, 100):
            city.batch("sensor.air", [dict(id=f"S{j % 900}", metrics={"pm25": float(j)})
                                      for j in range(i, i + 100)])
        assert follow(receiver, sit, lambda: sit.status()["sources"].get("city", {}).get(
            "last_seq") == city.seq - 1, 20)
        assert sit.status()["sources"]["city"]["gaps"] == 0
        got = 0
        while slow.poll(200):
            slow.recv_multipart()
            got += 1
        assert got < 200                          # the slow one lost most: nobody else did
    finally:
        receiver.stop()
        slow.close(0)
        broker.stop()
        pub.close()


# ---- the seq check of a wall with two paths --------------------------------------------------
@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.data())
def test_two_paths_in_any_order_apply_each_record_once(data):
    """Two brokers deliver the same run of seqs, each in order but interleaved any way, each
    losing any records: every seq that came by either path is applied exactly once (from the
    first the wall heard: what came before it is history it joined after), and what neither
    path brought is what is left missing."""
    n = data.draw(st.integers(1, 60))
    lost_a = data.draw(st.sets(st.integers(0, n - 1)))
    lost_b = data.draw(st.sets(st.integers(0, n - 1)))
    path_a = [s for s in range(n) if s not in lost_a]
    path_b = [s for s in range(n) if s not in lost_b]
    order = data.draw(st.permutations([0] * len(path_a) + [1] * len(path_b)))
    dedup, batch = SeqDedup(), Batch()
    applied = []
    ia = ib = 0
    for which in order:
        if which == 0:
            seq, ia = path_a[ia], ia + 1
        else:
            seq, ib = path_b[ib], ib + 1
        if dedup.judge("s", seq, 1000 + seq, batch):
            applied.append(seq)
    if not applied:
        return
    first = applied[0]
    came = sorted(s for s in set(path_a) | set(path_b) if s >= first)
    assert sorted(applied) == came
    missed = sum(got - exp for _, exp, got in batch.gaps) - batch.filled["s"]
    inside = [s for s in range(first, came[-1] + 1) if s not in came]
    assert missed == len(inside)


def test_a_restart_is_told_from_a_copy_by_its_newer_time():
    dedup, batch = SeqDedup(), Batch()
    for seq in range(10):
        assert dedup.judge("p", seq, 1000 + seq, batch)
    assert not dedup.judge("p", 3, 1003, batch)           # a copy from the other broker
    assert dedup.judge("p", 0, 5000, batch)               # the publisher came back
    assert batch.restarts == [("p", 9, 0)] and batch.duplicates == 1


def test_the_broker_state_is_bounded_against_a_million_ids():
    state = BrokerState(max_sensors=1000, max_sources=10)
    for i in range(0, 5000, 500):
        state.absorb([b"sensor.air", msgspec.json.encode(
            [record("sensor.air", src=f"s{i + j}", seq=0, ts=NOW(), id=f"X{i + j}")
             for j in range(500)])])
    doc = state.status()
    assert doc["sensors"] == 1000 and doc["sources"] == 10
    assert doc["refused_ids"]["sensors"] == 4000


def test_a_state_request_that_is_not_one_gets_an_error_and_the_broker_goes_on(centre):
    ctx = zmq.Context.instance()

    def ask(payload: bytes) -> list[bytes] | None:
        d = ctx.socket(zmq.DEALER)           # a fresh connection each: an oversized request
        d.setsockopt(zmq.LINGER, 0)          # costs its connection (libzmq drops it)
        d.connect(centre.broker_state)
        try:
            d.send(payload)
            return d.recv_multipart() if d.poll(1500) else None
        finally:
            d.close(0)
    for junk in (b"", b'{"v":1,"type":"dispatch"}', b'{"v":1,"type":"state","req":"' +
                 b"x" * 200 + b'"}', "\ud800".encode("utf-8", "surrogatepass")):
        tag, body = ask(junk)
        assert tag == STATE_TAG and b"bad_request" in body
    for oversized in (b"x" * 10_000, b"[" * 5000):
        assert ask(oversized) is None          # never read
    reply = ask(b'{"v":1,"type":"state","req":1}')
    assert reply[0] == STATE_TAG and b'"ready":true' in reply[1]
    assert centre.b.status()["state_refused"]["bad_request"] == 4


# ---- what a hostile review found (each held before the fix) ----------------------------------
def test_a_peer_of_the_out_side_cannot_write_into_the_state(centre):
    """An XSUB on --out (a wall's key can do this) sends records *up*: the proxy passes them
    upstream, but the state keeps only what publishers sent down."""
    city = centre.city
    city.batch("case", [dict(case_id="REAL-1"), dict(case_id="REAL-2")])
    assert wait_for(lambda: centre.b.status()["state"]["cases"] == 2, 5)
    ctx = zmq.Context.instance()
    evil = ctx.socket(zmq.XSUB)
    evil.setsockopt(zmq.LINGER, 0)
    evil.connect(centre.broker_out)
    try:
        assert wait_for(lambda: centre.b.status()["subscribers"] >= 1, 5)
        for rec in (record("case", src="city", seq=10**15, ts=NOW() + 1, case_id="REAL-1",
                           status="closed"),
                    record("case", src="city", seq=10**15 + 1, ts=NOW(), case_id="FAKE")):
            evil.send_multipart([b"case", msgspec.json.encode(rec)])
        time.sleep(0.5)
        city.send("case", case_id="REAL-3")
        assert wait_for(lambda: centre.b.status()["state"]["cases"] == 3, 5)
        assert set(centre.b.state.cases) == {"REAL-1", "REAL-2", "REAL-3"}
        assert centre.b.state.seqs["city"] == city.seq - 1
    finally:
        evil.close(0)


def test_the_seq_check_stays_small_whatever_the_seqs_do():
    from feeds.batch import HOLE_RANGES_MAX
    dedup, batch = SeqDedup(max_sources=1000), Batch()
    for i in range(1000):                               # every source leaps to 2**62
        dedup.judge(f"s{i}", 0, 1, batch)
        dedup.judge(f"s{i}", 2**62, 2, batch)
    assert sum(len(r) for r in dedup.holes.values()) == 0     # a leap is a loss, not a lag
    seq = 0
    for _ in range(1000):                               # one source skipping 5,000 each time
        seq += 5001
        dedup.judge("s0", seq, 3, batch)
    assert len(dedup.holes["s0"]) == HOLE_RANGES_MAX
    for i in range(2000):                               # a flood of new sources: not followed
        dedup.judge(f"new{i}", 5, 1, batch)
    assert len(dedup.last) == 1000


def test_a_restart_seen_on_one_path_is_not_undone_by_the_other_paths_late_copies():
    dedup, batch = SeqDedup(), Batch()
    for seq in range(5005):                              # broker A, all before the restart
        dedup.judge("p", seq, 1000 + seq, batch)
    assert dedup.judge("p", 0, 100_000, batch)           # A: the publisher restarted
    assert not dedup.judge("p", 5003, 6003, batch)       # B, lagging: copies from before it
    assert not dedup.judge("p", 5004, 6004, batch)
    for seq in range(1, 50):                             # A goes on
        assert dedup.judge("p", seq, 100_000 + seq, batch)
    assert batch.restarts == [("p", 5004, 0)] and batch.gaps == []


def test_a_heartbeat_kept_during_the_join_is_not_taken_for_a_restart():
    """The state's newest ts per source counts heartbeats, which the state's records do not
    carry: a kept heartbeat at or below the floor is a copy."""
    state, t0 = BrokerState(), NOW() - 60_000
    state.absorb([b"case", msgspec.json.encode(
        [record("case", src="p", seq=i, ts=t0, case_id=f"C{i}") for i in range(5)])])
    state.absorb([b"hb", msgspec.json.encode(record("hb", src="p", seq=5, ts=t0 + 9_000))])
    from feeds.decode import MessageDecoder
    from feeds.state_join import judge_state_reply
    reply = judge_state_reply(state.reply(1), MessageDecoder())
    assert reply.problem is None and reply.newest_ts == {"p": t0 + 9_000}
    newest = dict(reply.newest_ts)
    dedup, batch = SeqDedup(), Batch()
    dedup.floor(reply.seqs, newest)
    assert not dedup.judge("p", 5, t0 + 9_000, batch)        # the heartbeat, kept meanwhile
    assert dedup.judge("p", 6, t0 + 9_500, batch)
    assert batch.restarts == [] and batch.duplicates == 1


@pytest.mark.parametrize("batch_of, problem", [(1001, "more than 1000"), (0, "every record")])
def test_a_state_reply_out_of_bounds_is_refused(batch_of, problem):
    from feeds.decode import MessageDecoder
    from feeds.state_join import judge_state_reply
    if batch_of:
        body = msgspec.json.encode([record("sensor.air", src="p", seq=i, ts=NOW(), id=f"S{i}")
                                    for i in range(batch_of)])
    else:
        body = msgspec.json.encode([dict(record("case", src="p", seq=1, ts=NOW()), lat=95.0)])
    reply = judge_state_reply([STATE_TAG, b'{"v":1,"type":"state","seqs":{"p":1}}',
                               b"sensor.air" if batch_of else b"case", body],
                              MessageDecoder())
    assert problem in reply.problem


def test_asking_again_on_a_new_connection_does_not_dodge_the_limit(centre):
    from feeds.broker_answers import STATE_BURST
    ctx = zmq.Context.instance()
    answers = []
    for _ in range(STATE_BURST + 3):
        d = ctx.socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        d.connect(centre.broker_state)
        d.send(b'{"v":1,"type":"state","req":1}')
        assert d.poll(3000)
        answers.append(b'"ready":true' in d.recv_multipart()[1])
        d.close(0)
    assert answers.count(True) == STATE_BURST
    assert centre.b.status()["state_refused"]["rate_limited"] == 3


def test_a_message_larger_than_the_limit_never_reaches_the_state_or_the_walls():
    """A publisher on --in sends 9 MB: the broker never reads it (libzmq drops that
    connection; the publisher connects again), and the walls go on."""
    ins, out, state = free_endpoint(), free_endpoint(), free_endpoint()
    broker = Broker([ins], out, state).start()
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.setsockopt(zmq.XPUB_VERBOSE, 1)          # see the subscription of each connection
    pub.connect(ins)
    receiver = Receiver([out], state={out: state}, now_ms=NOW).start()
    sit = Situation(WallClock())
    try:
        assert pub.poll(5000)
        pub.recv()
        assert follow(receiver, sit, lambda: bool(sit.state_joins), 5)
        big = msgspec.json.encode([record("case", src="city", seq=0, ts=NOW(), case_id="BIG",
                                          description="x" * 7_000)] * 1300)    # ~9 MB
        assert len(big) > 8 * 1024 * 1024
        pub.send_multipart([b"case", big])
        assert pub.poll(10_000)              # connected again: the broker subscribes anew
        pub.recv()
        pub.send_multipart([b"case", msgspec.json.encode(
            record("case", src="city", seq=1, ts=NOW(), case_id="after"))])
        assert follow(receiver, sit, lambda: "after" in sit.cases, 10)
        assert "BIG" not in sit.cases and "BIG" not in broker.state.cases
    finally:
        receiver.stop()
        pub.close(0)
        broker.stop()


def test_an_answer_waits_until_the_state_has_what_the_proxy_had_taken_in():
    """The state service answers once the state has taken in as many frames as the proxy had
    when the wall asked; one still short when its time is up goes as it is, counted."""
    from feeds.broker_answers import DUE_S, StateAnswers
    ctx = zmq.Context.instance()
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    for s in (router, dealer):
        s.setsockopt(zmq.LINGER, 0)
    ep = free_endpoint()
    router.bind(ep)
    dealer.connect(ep)
    try:
        answers = StateAnswers()
        dealer.send(b'{"v":1,"type":"state","req":7}')
        assert router.poll(3000)
        answers.take(router, False, lambda: 100)
        reply = lambda req: [STATE_TAG, b'{"req":%d}' % req]       # noqa: E731
        answers.answer_due(router, 99, reply)
        assert not dealer.poll(200)                  # the state is one frame short
        answers.answer_due(router, 100, reply)
        assert dealer.poll(3000) and dealer.recv_multipart()[1] == b'{"req":7}'
        dealer.send(b'{"v":1,"type":"state","req":8}')
        assert router.poll(3000)
        answers.take(router, False, lambda: 500)
        answers.waiting[0].due = time.monotonic() - 1          # its time is up
        answers.answer_due(router, 120, reply)
        assert dealer.poll(3000) and dealer.recv_multipart()[1] == b'{"req":8}'
        assert answers.status()["state_answered_behind"] == 1 and DUE_S > 0
    finally:
        router.close(0)
        dealer.close(0)


def test_a_join_that_fell_back_catches_up_later(monkeypatch):
    """A broker too busy to answer in time: the wall follows the feed, then asks again and
    fills in what it lacked."""
    import feeds.receiver
    import feeds.state_join
    monkeypatch.setattr(feeds.state_join, "JOIN_TIMEOUT_S", 0.5)
    monkeypatch.setattr(feeds.receiver, "CATCH_UP_AFTER_S", (0.3, 0.3))
    pub = TestPublisher()
    pub.sock.setsockopt(zmq.XPUB_WELCOME_MSG, WELCOME)
    ctx = zmq.Context.instance()
    slow = ctx.socket(zmq.ROUTER)
    slow.setsockopt(zmq.LINGER, 0)
    state = f"tcp://127.0.0.1:{slow.bind_to_random_port('tcp://127.0.0.1')}"
    receiver = Receiver([pub.endpoint], state={pub.endpoint: state}, now_ms=NOW).start()
    sit = Situation(WallClock())
    try:
        pub.wait_subscriber()
        assert slow.poll(5000)
        slow.recv_multipart()                        # the first request: never answered
        city = City(pub)
        city.seq = 10
        city.send("case", case_id="live")
        assert follow(receiver, sit, lambda: "live" in sit.cases, 5)
        assert slow.poll(5000)                       # the catch-up asks again
        ident, _ = slow.recv_multipart()
        held = BrokerState()
        held.absorb([b"case", msgspec.json.encode(
            [record("case", src="city", seq=i, ts=NOW(), case_id=f"OLD{i}") for i in range(5)])])
        slow.send_multipart([ident, *held.reply(1)])
        assert follow(receiver, sit, lambda: {"OLD0", "OLD4", "live"} <= set(sit.cases), 5)
        outcomes = [j["outcome"] for j in sit.status()["state_joins"]]
        assert outcomes == ["fell_back", "caught_up"]
        assert sit.status()["sources"]["city"]["restarts"] == 0
    finally:
        receiver.stop()
        slow.close(0)
        pub.close()

"""The dispatch service and client over real sockets on loopback: a test publisher is the
case system, the service learns from it, consoles order over DEALER → ROUTER and watch the
service's feed with a real Receiver; a real SQLite file underneath."""
from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import zmq

from feeds.dispatch_client import DispatchClient, LiveOrderRefused
from feeds.dispatch_service import DispatchService
from feeds.orders import Ack, SnapshotReply, encode, reason_code
from feeds.receiver import Receiver, wait_for
from feeds.schema import Case, Heartbeat, Unit
from situation.clock import ManualClock
from tests.pubhelp import TestPublisher, record

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_795_449_600_000                    # 2026-11-24 00:00 Beijing time
NOW = T0 + 60_000                         # the service's clock in these tests


def city_records(ts: int = T0) -> list[tuple[str, list[dict]]]:
    """Four cases and four units, as a case system and a unit tracker would publish them."""
    seq = iter(range(100))
    case = lambda **f: record("case", src="cases", seq=next(seq), ts=ts, **f)   # noqa: E731
    unit = lambda **f: record("unit", src="units", seq=next(seq), ts=ts, **f)   # noqa: E731
    return [
        ("case", [case(case_id="C1", category="event.street_order.vending"),          # 1 h
                  case(case_id="C2", category="event.city_appearance.exposed_garbage"),
                  case(case_id="C3", status="closed"),
                  case(case_id="C4", status="on_scene", unit_id="U3")]),
        ("unit", [unit(unit_id="U1", callsign="东城-巡01"),
                  unit(unit_id="U2", callsign="东城-巡02"),
                  unit(unit_id="U3", callsign="东城-巡03", status="on_scene", case_id="C4"),
                  unit(unit_id="U4", callsign="东城-巡04", status="off_duty")]),
    ]


class Feed:
    """A console's view of the service's feed, through a real Receiver."""

    def __init__(self, endpoint: str, ctx: zmq.Context):
        self.rx = Receiver([endpoint], context=ctx).start()
        self.records = []                     # from src "dispatch", in arrival order
        self.restarts = []

    def pull(self) -> None:
        batch, _ = self.rx.drain()
        self.records += [r for r in batch.records if r.src == "dispatch"]
        self.restarts += batch.restarts

    def wait(self, predicate, timeout_s: float = 5.0) -> bool:
        return wait_for(lambda: (self.pull(), predicate())[1], timeout_s)

    def changes(self) -> list:
        return [r for r in self.records if not isinstance(r, Heartbeat)]

    def through(self, seq: int) -> None:
        """Wait until every record up to ``seq`` has arrived."""
        assert self.wait(lambda: self.records and self.records[-1].seq >= seq), seq


def answer(client: DispatchClient, oid: str, timeout_s: float = 5.0):
    got = []

    def step():
        got.extend(ev[2] for ev in client.poll(20) if ev[0] in ("ack", "snapshot")
                   and ev[1] == oid)
        return bool(got)
    assert wait_for(step, timeout_s, step_s=0), f"no answer to {oid}"
    return got[0]


def order(type_: str, oid: str, **fields) -> bytes:
    return json.dumps({"v": 1, "type": type_, "order_id": oid, "console": "raw", "ts": T0,
                       **fields}).encode()


def dealer(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def ask(sock: zmq.Socket, payload: bytes) -> bytes:
    sock.send(payload)
    assert sock.poll(5000), "no reply"
    return sock.recv()


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def start_city(ctx, db, **kw):
    # These tests ask for snapshots as often as they like: the limit has tests of its own
    # (tests/test_dispatch_hardening.py).
    kw.setdefault("snapshot_burst", 10_000)
    clock = ManualClock(NOW)
    pub = TestPublisher(ctx)
    svc = DispatchService([pub.endpoint], "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", db,
                          now_ms=clock.now_ms, context=ctx, **kw).start()
    pub.wait_subscriber()
    for topic, recs in city_records():
        pub.send(topic, recs)
    assert wait_for(lambda: svc.status()["cases"] == 4 and svc.status()["units"] == 4, 5)
    feed = Feed(svc.feed_endpoint, ctx)
    assert feed.wait(lambda: feed.records)           # greeted: the console is on the feed
    clients = []

    def client(name="console-1", **kw):
        c = DispatchClient(svc.dispatch_endpoint, name, context=ctx, **kw)
        clients.append(c)
        return c
    return SimpleNamespace(clock=clock, pub=pub, svc=svc, feed=feed, client=client,
                           clients=clients)


@pytest.fixture
def city(ctx, tmp_path):
    c = start_city(ctx, tmp_path / "dispatch.sqlite3")
    yield c
    for cl in c.clients:
        cl.close()
    c.feed.rx.stop()
    c.svc.stop()
    c.pub.close()


# ---- accept -----------------------------------------------------------------------------
def test_dispatch_is_acknowledged_then_published_on_the_feed(city):
    console = city.client()
    oid = console.send("dispatch", case_id="C1", unit_id="U1", note="最近的巡查员")
    assert oid in console.pending()
    ack = answer(console, oid)
    assert isinstance(ack, Ack) and ack.result == "accepted" and ack.reason is None
    assert ack.order_id == oid and ack.ts == NOW
    assert console.pending() == {}

    assert city.feed.wait(lambda: len(city.feed.changes()) == 2)
    case, unit = city.feed.changes()
    assert isinstance(case, Case) and isinstance(unit, Unit)
    assert (case.case_id, case.status, case.unit_id) == ("C1", "dispatched", "U1")
    assert case.due_at == NOW + 3_600_000                   # street vending: 1 h to resolve
    assert (case.title, case.category) == ("占道经营", "event.street_order.vending")
    assert (unit.unit_id, unit.status, unit.case_id, unit.callsign) == (
        "U1", "dispatched", "C1", "东城-巡01")
    assert case.ts == unit.ts == NOW
    assert unit.seq == case.seq + 1                         # +1 per record, one src
    st = city.svc.status()
    assert st["accepted"] == 1 and st["rejected"] == {} and st["storage"] == "ok"


def test_same_order_id_twice_same_reply_acts_once(city, ctx):
    raw = dealer(ctx, city.svc.dispatch_endpoint)
    try:
        payload = order("dispatch", "dup-1", case_id="C2", unit_id="U2")
        raw.send(payload)
        raw.send(payload)                                   # a console's resend
        assert raw.poll(5000)
        first = raw.recv()
        assert raw.poll(5000)
        second = raw.recv()
        city.clock.advance(5_000)
        third = ask(raw, payload)                           # later still: the stored reply
        snap = json.loads(ask(raw, order("snapshot", "snap-1")))
    finally:
        raw.close(0)
    assert first == second == third
    assert json.loads(first)["result"] == "accepted"
    city.feed.through(snap["seq"])
    assert [(type(r).__name__, r.status) for r in city.feed.changes()] == [
        ("Case", "dispatched"), ("Unit", "dispatched")]
    st = city.svc.status()
    assert st["accepted"] == 1 and st["duplicates"] == 2


# ---- two consoles, one truth --------------------------------------------------------------
def test_two_consoles_one_unit_one_wins_the_other_is_told_why(city):
    a, b = city.client("console-a"), city.client("console-b")
    oa = a.send("dispatch", case_id="C1", unit_id="U1")
    ob = b.send("dispatch", case_id="C2", unit_id="U1")    # same unit, other case, at once
    acks = {"a": answer(a, oa), "b": answer(b, ob)}
    won = [k for k, ack in acks.items() if ack.result == "accepted"]
    lost = [k for k, ack in acks.items() if ack.result == "rejected"]
    assert len(won) == 1 and len(lost) == 1
    winner_case = {"a": "C1", "b": "C2"}[won[0]]
    why = acks[lost[0]].reason
    assert reason_code(why) == "unit_assigned"
    assert "东城-巡01" in why and winner_case in why and "already" in why

    snap = a.snapshot()
    cases = {c.case_id: c for c in snap.cases}
    units = {u.unit_id: u for u in snap.units}
    assert units["U1"].case_id == winner_case and units["U1"].status == "dispatched"
    loser_case = {"C1": "C2", "C2": "C1"}[winner_case]
    assert cases[loser_case].status == "registered" and cases[loser_case].unit_id is None
    city.feed.through(snap.seq)
    assert len(city.feed.changes()) == 2                     # only the winner's change


def test_recall_frees_the_unit_and_returns_the_case(city):
    console = city.client()
    ack = answer(console, console.send("dispatch", case_id="C1", unit_id="U1"))
    assert ack.result == "accepted"
    city.clock.advance(60_000)
    ack = answer(console, console.send("recall", unit_id="U1"))
    assert ack.result == "accepted"
    assert city.feed.wait(lambda: len(city.feed.changes()) == 4)
    case, unit = city.feed.changes()[2:]
    assert (case.case_id, case.status, case.unit_id) == ("C1", "registered", None)
    assert case.due_at == NOW + 60_000 + 30 * 60_000        # priority 2: 30 min to dispatch
    assert (unit.unit_id, unit.status, unit.case_id) == ("U1", "available", None)
    again = answer(console, console.send("recall", unit_id="U1"))
    assert again.result == "rejected" and reason_code(again.reason) == "unit_not_assigned"
    # and the freed unit can be sent again
    ack = answer(console, console.send("dispatch", case_id="C2", unit_id="U1"))
    assert ack.result == "accepted"


def test_learning_newer_ts_wins_and_older_records_do_not_undo_a_dispatch(city):
    console = city.client()
    ack = answer(console, console.send("dispatch", case_id="C1", unit_id="U1"))
    assert ack.result == "accepted"
    # The case system, late: its older view of C1 and U1 (and a tie on C1's ts), then a
    # new unit as a marker that all of it was read.
    city.pub.send("unit", [record("unit", src="units", seq=50, ts=T0, unit_id="U1",
                                  callsign="东城-巡01")])
    city.pub.send("case", [record("case", src="cases", seq=51, ts=NOW, case_id="C1")])
    city.pub.send("unit", [record("unit", src="units", seq=52, ts=T0, unit_id="U5",
                                  callsign="东城-巡05")])
    assert wait_for(lambda: city.svc.status()["units"] == 5, 5)
    assert city.svc.unit("U1").status == "dispatched"
    assert (city.svc.case("C1").status, city.svc.case("C1").src) == ("dispatched", "dispatch")
    # The unit tracker's newer word is taken: the unit is on its way.
    city.pub.send("unit", [record("unit", src="units", seq=53, ts=NOW + 30_000, unit_id="U1",
                                  callsign="东城-巡01", status="en_route", case_id="C1")])
    assert wait_for(lambda: city.svc.unit("U1").status == "en_route", 5)
    recall = answer(console, console.send("recall", unit_id="U1"))
    assert recall.result == "accepted"
    assert city.svc.unit("U1").ts == NOW + 30_001            # newer than what it replaced


def test_orders_the_picture_forbids_are_rejected_in_plain_words(city):
    console = city.client()
    for case_id, unit_id, code, words in [
        ("C3", "U1", "case_not_open", "case C3 is closed"),
        ("C4", "U1", "case_assigned", "东城-巡03"),
        ("C1", "U3", "unit_assigned", "东城-巡03 is already working case C4 (on_scene)"),
        ("C1", "U4", "unit_not_available", "东城-巡04 is off_duty, not available"),
        ("C9", "U1", "unknown_case", "case C9 is not known"),
        ("C1", "U9", "unknown_unit", "unit U9 is not known"),
    ]:
        ack = answer(console, console.send("dispatch", case_id=case_id, unit_id=unit_id))
        assert ack.result == "rejected", (case_id, unit_id)
        assert reason_code(ack.reason) == code and words in ack.reason, ack.reason
        assert " / " in ack.reason                         # and in Chinese after the slash
    snap = console.snapshot()
    city.feed.through(snap.seq)
    assert city.feed.changes() == []                       # nothing was published
    st = city.svc.status()
    assert st["accepted"] == 0 and sum(st["rejected"].values()) == 6


# ---- bad input --------------------------------------------------------------------------
def test_malformed_requests_are_rejected_or_dropped_and_the_service_keeps_serving(city, ctx):
    raw = dealer(ctx, city.svc.dispatch_endpoint)
    try:
        raw.send(b"not json")
        raw.send(b"[1, 2]")
        raw.send_multipart([b"two", b"frames"])
        # (a frame over the size limit never reaches the service: ZeroMQ drops it and the
        # sender's connection, see tests/test_dispatch_hardening.py)
        assert wait_for(lambda: sum(city.svc.status()["dropped"].values()) == 3, 5)
        replies = {
            "unknown_type": ask(raw, order("launch", "m-1", case_id="C1")),
            "missing_field": ask(raw, order("dispatch", "m-2", case_id="C1")),
            "wrong_type": ask(raw, order("dispatch", "m-3", case_id="C1", unit_id=5)),
            "unknown_version": ask(raw, json.dumps({"v": 2, "type": "dispatch",
                                                    "order_id": "m-4"}).encode()),
        }
        good = json.loads(ask(raw, order("dispatch", "m-5", case_id="C1", unit_id="U1")))
    finally:
        raw.close(0)
    assert city.svc.status()["dropped"] == {"not_json": 1, "not_object": 1, "bad_frames": 1}
    for code, data in replies.items():
        reply = json.loads(data)
        assert reply["type"] == "ack" and reply["result"] == "rejected", reply
        assert reason_code(reply["reason"]) == "bad_order", reply["reason"]
        assert reply["reason"].startswith(f"bad_order: {code}: "), reply["reason"]
    assert city.svc.status()["bad_orders"] == {code: 1 for code in replies}
    assert "unit_id" in json.loads(replies["missing_field"])["reason"]
    assert good["result"] == "accepted"                     # still serving
    assert city.feed.wait(lambda: len(city.feed.changes()) == 2)


def test_client_drops_replies_nobody_asked_for_and_still_reports_a_late_ack(ctx):
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    clock = ManualClock(0)
    client = DispatchClient(f"tcp://127.0.0.1:{port}", "console-1", now_ms=clock.now_ms,
                            timeout_ms=1000, retries=1, context=ctx)
    try:
        oid = client.send("dispatch", case_id="C1", unit_id="U1")
        assert wait_for(lambda: (client.poll(), router.poll(0))[1], 5)
        ident, payload = router.recv_multipart()
        assert json.loads(payload)["order_id"] == oid
        stray = encode(Ack(order_id="nobody-sent-this", result="accepted", reason=None, ts=1))
        for frame in (stray, b"garbage", b'{"v":9,"type":"ack","order_id":"x"}',
                      b'{"v":1,"type":"hello","order_id":"x"}'):
            router.send_multipart([ident, frame])
        events = []
        assert wait_for(lambda: (events.extend(client.poll(20)), len(events) == 4)[1], 5)
        assert events == [("dropped", "unknown_order"), ("dropped", "not_json"),
                          ("dropped", "unknown_version"), ("dropped", "unknown_type")]
        assert oid in client.pending()
        clock.advance(1000)
        assert client.poll() == [("resent", oid)]
        assert router.poll(5000)
        assert router.recv_multipart()[1] == payload           # the same order, same id
        clock.advance(1000)
        assert client.poll() == [("unconfirmed", oid)] and client.pending() == {}
        late = Ack(order_id=oid, result="accepted", reason=None, ts=2)
        router.send_multipart([ident, encode(late)])
        events = []
        assert wait_for(lambda: (events.extend(client.poll(20)), events)[1], 5)
        assert events == [("ack", oid, late)]                  # it did happen: say so
        router.send_multipart([ident, encode(late)])
        events = []
        assert wait_for(lambda: (events.extend(client.poll(20)), events)[1], 5)
        assert events == [("dropped", "duplicate_reply")]
        st = client.status()
        assert st["dropped"] == {"unknown_order": 1, "not_json": 1, "unknown_version": 1,
                                 "unknown_type": 1, "duplicate_reply": 1}
        assert (st["resent"], st["unconfirmed"], st["late"]) == (1, 1, 1)
    finally:
        client.close()
        router.close(0)


def test_no_service_one_resend_then_unconfirmed(ctx):
    with socket.socket() as s:                              # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clock = ManualClock(0)
    client = DispatchClient(f"tcp://127.0.0.1:{port}", "console-1", now_ms=clock.now_ms,
                            timeout_ms=500, retries=1, context=ctx)
    try:
        oid = client.send("recall", unit_id="U1")
        assert client.poll() == []
        clock.advance(499)
        assert client.poll() == []
        clock.advance(1)
        assert client.poll() == [("resent", oid)]
        clock.advance(500)
        assert client.poll() == [("unconfirmed", oid)]
        assert client.pending() == {} and client.poll() == []
        with pytest.raises(ValueError, match="unit_id"):
            client.send("recall")                           # refused before the socket
        with pytest.raises(ValueError, match="unknown order type"):
            client.send("launch")
    finally:
        client.close()


# ---- a console started mid-shift ----------------------------------------------------------
def test_snapshot_then_feed_without_a_gap(city):
    console = city.client()
    ack = answer(console, console.send("dispatch", case_id="C2", unit_id="U2"))
    assert ack.result == "accepted"
    city.pub.close()                                        # the case system goes quiet
    city.clock.advance(600_000)
    snap = console.snapshot()
    assert isinstance(snap, SnapshotReply) and snap.src == "dispatch"
    assert sorted(c.case_id for c in snap.cases) == ["C1", "C2", "C4"]   # open ones
    assert sorted(u.unit_id for u in snap.units) == ["U1", "U2", "U3", "U4"]
    # The console applies the snapshot, then follows the feed from its seq.
    cases = {c.case_id: c for c in snap.cases}
    units = {u.unit_id: u for u in snap.units}
    assert cases["C2"].status == "dispatched" and units["U2"].case_id == "C2"
    follow = console.follow_from(snap.seq, snap.src)

    ack = answer(console, console.send("dispatch", case_id="C1", unit_id="U1"))
    assert ack.result == "accepted"
    assert city.feed.wait(lambda: any(isinstance(r, Unit) and r.unit_id == "U1"
                                      for r in city.feed.records))
    new = [r for r in city.feed.records if follow.is_new(r)]
    assert follow.gap is None and city.feed.restarts == []
    assert [r.seq for r in new] == list(range(snap.seq + 1, snap.seq + 1 + len(new)))
    for r in new:
        if isinstance(r, Case):
            cases[r.case_id] = r
        elif isinstance(r, Unit):
            units[r.unit_id] = r
    assert cases["C1"].status == "dispatched" and units["U1"].case_id == "C1"
    assert cases["C2"].status == "dispatched"              # from the snapshot, kept
    # what was in the snapshot is recognised as such
    old = [r for r in city.feed.records if r.seq <= snap.seq]
    assert old and not any(follow.is_new(r) for r in old)


# ---- storage ------------------------------------------------------------------------------
def _spawn(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, str, str]:
    err = open(tmp_path / f"service-{len(list(tmp_path.glob('service-*')))}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "feeds.dispatch_service", *args,
                             "--run-for", "60"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=err, text=True)
    err.close()
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    m = re.search(r"orders (\S+) feed (\S+)", line)
    if not m:
        proc.kill()
        raise AssertionError(f"service did not start: {line!r}")
    return proc, m.group(1), m.group(2)


def test_sigkill_and_restart_lose_nothing(ctx, tmp_path):
    db = tmp_path / "dispatch.sqlite3"
    pub = TestPublisher(ctx)
    procs = []
    raw = client = feed = None
    try:
        proc, orders_ep, feed_ep = _spawn(tmp_path, "--source", pub.endpoint, "--dispatch",
                                          "tcp://127.0.0.1:*", "--feed", "tcp://127.0.0.1:*",
                                          "--db", str(db), "--snapshot-burst", "10000")
        procs.append(proc)
        pub.wait_subscriber(20)
        now = time.time_ns() // 1_000_000
        for topic, recs in city_records(now):
            pub.send(topic, recs)
        client = DispatchClient(orders_ep, "console-1", context=ctx)
        assert wait_for(lambda: len(client.snapshot().units) == 4, 10)
        feed = Feed(feed_ep, ctx)
        assert feed.wait(lambda: feed.records)
        raw = dealer(ctx, orders_ep)
        payload = order("dispatch", "before-kill", case_id="C1", unit_id="U1")
        first = ask(raw, payload)
        assert json.loads(first)["result"] == "accepted"
        assert feed.wait(lambda: len(feed.changes()) == 2)
        seq_before = feed.records[-1].seq

        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
        proc, _, _ = _spawn(tmp_path, "--source", pub.endpoint, "--dispatch", orders_ep,
                            "--feed", feed_ep, "--db", str(db))
        procs.append(proc)

        assert ask(raw, payload) == first                   # same reply, byte for byte
        snap = client.snapshot(10)
        cases = {c.case_id: c for c in snap.cases}
        units = {u.unit_id: u for u in snap.units}
        assert (cases["C1"].status, cases["C1"].unit_id) == ("dispatched", "U1")
        assert (units["U1"].status, units["U1"].case_id) == ("dispatched", "C1")
        assert set(cases) == {"C1", "C2", "C4"} and set(units) == {"U1", "U2", "U3", "U4"}
        assert snap.seq >= seq_before                        # seq carried on, never back
        # The console's SUB has found the new service (its greeting) before the next order:
        # what is published while nobody is subscribed is missed, as with any PUB.
        assert feed.wait(lambda: feed.records[-1].seq > seq_before, 10)
        oid = client.send("dispatch", case_id="C2", unit_id="U2")
        assert answer(client, oid, 10).result == "accepted"
        assert feed.wait(lambda: len(feed.changes()) == 4, 10)
        assert feed.restarts == []                           # consoles saw no restart
        seqs = [r.seq for r in feed.records]
        assert seqs == sorted(set(seqs)) and feed.changes()[2].seq > snap.seq
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)
            p.stdout.close()
        if raw is not None:
            raw.close(0)
        if client is not None:
            client.close()
        if feed is not None:
            feed.rx.stop()
        pub.close()


def test_unwritable_database_refuses_orders_and_keeps_serving(ctx, tmp_path):
    not_a_file = tmp_path / "db-is-a-directory"
    not_a_file.mkdir()
    c = start_city(ctx, not_a_file)
    try:
        console = c.client()
        assert c.svc.status()["storage"] != "ok"
        oid = console.send("dispatch", case_id="C1", unit_id="U1")
        ack = answer(console, oid)
        assert ack.result == "rejected" and reason_code(ack.reason) == "storage_unavailable"
        assert "unable to open database file" in ack.reason and "未执行" in ack.reason
        snap = console.snapshot()                           # reads still answered
        assert {u.unit_id: u.status for u in snap.units}["U1"] == "available"
        c.feed.through(snap.seq)
        assert c.feed.changes() == []
        assert c.svc.status()["rejected"] == {"storage_unavailable": 1}
    finally:
        for cl in c.clients:
            cl.close()
        c.feed.rx.stop()
        c.svc.stop()
        c.pub.close()


def test_full_database_refuses_orders_and_changes_nothing(ctx, tmp_path):
    # The cap is the size the empty database already has: the first order that needs one
    # more page finds the disk "full".
    c = start_city(ctx, tmp_path / "dispatch.sqlite3", max_db_bytes=1)
    try:
        console = c.client()
        refused = None
        for i in range(200):
            kind = ("dispatch", {"case_id": "C1", "unit_id": "U1"}) if i % 2 == 0 \
                else ("recall", {"unit_id": "U1"})
            before = console.snapshot()
            ack = answer(console, console.send(kind[0], **kind[1]))
            if ack.result == "rejected":
                refused = (ack, before)
                break
            c.clock.advance(1000)
        assert refused is not None, "the database never filled"
        ack, before = refused
        assert reason_code(ack.reason) == "storage_unavailable" and "full" in ack.reason
        after = console.snapshot()
        assert {u.unit_id: (u.status, u.case_id, u.ts) for u in after.units} == \
            {u.unit_id: (u.status, u.case_id, u.ts) for u in before.units}
        assert {x.case_id: (x.status, x.ts) for x in after.cases} == \
            {x.case_id: (x.status, x.ts) for x in before.cases}
        c.feed.through(after.seq)
        assert len(c.feed.changes()) == 2 * i                 # the accepted ones only
    finally:
        for cl in c.clients:
            cl.close()
        c.feed.rx.stop()
        c.svc.stop()
        c.pub.close()


# ---- the training guard -------------------------------------------------------------------
def test_a_training_console_cannot_order_the_live_service(ctx, tmp_path):
    with pytest.raises(LiveOrderRefused, match="live dispatch service"):
        DispatchClient("tcp://127.0.0.1:5557", "trainee", mode="TRAINING", context=ctx)
    with pytest.raises(ValueError, match="REPLAY"):
        DispatchClient("tcp://127.0.0.1:5557", "trainee", mode="REPLAY", context=ctx)

    # A training service inside this process is fine to order about.
    train = DispatchService([], "inproc://training-dispatch", "inproc://training-feed",
                            tmp_path / "training.sqlite3", context=ctx).start()
    trainee = DispatchClient("inproc://training-dispatch", "trainee", mode="TRAINING",
                             context=ctx)
    # A live console switched to REPLAY refuses to send before anything reaches the socket.
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    live = DispatchClient(f"tcp://127.0.0.1:{port}", "console-1", context=ctx)
    try:
        ack = answer(trainee, trainee.send("recall", unit_id="U1"))
        assert reason_code(ack.reason) == "unknown_unit"     # it reached the training service
        live.set_mode("REPLAY")
        with pytest.raises(LiveOrderRefused, match="REPLAY"):
            live.send("dispatch", case_id="C1", unit_id="U1")
        assert live.pending() == {}
        live.set_mode("LIVE")
        oid = live.send("recall", unit_id="U1")
        assert wait_for(lambda: (live.poll(), router.poll(0))[1], 5)
        assert json.loads(router.recv_multipart()[1])["order_id"] == oid   # the first to arrive
    finally:
        live.close()
        trainee.close()
        train.stop()
        router.close(0)


# ---- the command line ---------------------------------------------------------------------
def _cli(*args):
    return subprocess.run([sys.executable, "-m", "feeds.dispatch_service", *args,
                           "--run-for", "1"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_cli_bad_endpoint_or_port_in_use_exit_2_with_one_line(tmp_path):
    out = _cli("--source", "tcp//nowhere", "--db", str(tmp_path / "d.sqlite3"))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "malformed endpoint" in out.stderr and "tcp//nowhere" in out.stderr
    ctx = zmq.Context()
    holder = ctx.socket(zmq.ROUTER)
    port = holder.bind_to_random_port("tcp://127.0.0.1")
    try:
        out = _cli("--source", "tcp://127.0.0.1:5556", "--dispatch", f"tcp://127.0.0.1:{port}",
                   "--feed", "tcp://127.0.0.1:*", "--db", str(tmp_path / "d.sqlite3"))
    finally:
        holder.close(0)
        ctx.term()
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "cannot bind" in out.stderr and "in use" in out.stderr.lower()

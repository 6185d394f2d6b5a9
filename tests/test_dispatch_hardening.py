"""Nothing a sender does blinds, stalls, crashes or poisons the dispatch service (issue #12).

Real sockets on tcp loopback, a real SQLite file, and for the crash a real process killed with
SIGKILL between a commit and its publication. Every wait has a timeout; nothing asserts on time.
"""
from __future__ import annotations

import json
import os
import re
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import msgspec
import pytest
import zmq
from hypothesis import HealthCheck, given, settings, strategies as st
from zmq.utils.monitor import recv_monitor_message

import feeds.dispatch_service as service_module
from feeds.bounds import MAX_TS_MS, MIN_TS_MS, valid_id, valid_text
from feeds.dispatch_client import DispatchClient, SnapshotRefused
from feeds.dispatch_service import RateLimit
from feeds.orders import (Ack, DispatchOrder, Order, Problem, RecallOrder, SnapshotOrder,
                          bad_order, decode_order, decode_reply, encode, reason_code)
from feeds.receiver import Receiver, wait_for
from feeds.schema import Case, Heartbeat, Unit
from tests.pubhelp import TestPublisher, record
from tests.test_dispatch import T0, answer, city_records, dealer, start_city

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def stop_city(c) -> None:
    for cl in c.clients:
        cl.close()
    c.feed.rx.stop()
    c.svc.stop()
    c.pub.close()


def order_bytes(oid, type_="dispatch", raw: dict[str, str] | None = None, **fields) -> bytes:
    """An order as JSON; ``raw`` puts tokens JSON has no Python value for (1e400) in place."""
    doc = {"v": 1, "type": type_, "order_id": oid, "console": "raw", "ts": T0, **fields}
    text = json.dumps(doc)                   # lone surrogates come out as \\ud800 escapes
    for name, token in (raw or {}).items():
        text = text.replace(json.dumps(f"@{name}@"), token)
    return text.encode()


def collect(sock: zmq.Socket, want: set[str], timeout_s: float = 10.0) -> dict[str, dict]:
    """Replies on ``sock`` until every order id in ``want`` has one (each id: its last)."""
    got: dict[str, dict] = {}
    deadline = time.monotonic() + timeout_s
    while not want <= got.keys() and time.monotonic() < deadline:
        if sock.poll(100):
            reply = json.loads(sock.recv())
            got[reply["order_id"]] = reply
    assert want <= got.keys(), f"no reply to {sorted(want - got.keys())[:5]}"
    return got


def deep(depth: int, oid: str | None = None) -> bytes:
    inner = b"[" * depth + b"]" * depth
    if oid is None:
        return inner
    return order_bytes(oid, case_id="C1", unit_id="U1")[:-1] + b', "a": ' + inner + b"}"


# ---- bad orders among good ones ------------------------------------------------------------
# Every field of a dispatch order with a JSON type it must not have; the order_id stays
# readable, so each one is answered.
WRONG_TYPES = [("v", "1"), ("v", [1]), ("v", {"v": 1}), ("type", 1), ("type", ["dispatch"]),
               ("type", None), ("console", 5), ("console", True), ("console", None),
               ("console", []), ("ts", "now"), ("ts", 1.5), ("ts", True), ("ts", None),
               ("ts", {}), ("case_id", 7), ("case_id", []), ("unit_id", False),
               ("unit_id", 3.0), ("note", 12), ("note", ["x"])]


def test_every_bad_order_is_answered_or_counted_and_the_real_ones_beside_it_are_answered(
        ctx, tmp_path):
    # Room for a 100,000-deep frame (200 KB), so it is judged rather than cut at the socket.
    city = start_city(ctx, tmp_path / "d.sqlite3", max_order_bytes=256 * 1024)
    raw = dealer(ctx, city.svc.dispatch_endpoint)
    try:
        good = [  # (order_id, payload, result, reason code) in the order they are judged
            ("good-1", order_bytes("good-1", case_id="C1", unit_id="U1"), "accepted", None),
            ("good-2", order_bytes("good-2", case_id="C2", unit_id="U1"), "rejected",
             "unit_assigned"),
            ("good-3", order_bytes("good-3", case_id="C2", unit_id="U2"), "accepted", None),
            ("good-4", order_bytes("good-4", "recall", unit_id="U1"), "accepted", None),
            ("good-5", order_bytes("good-5", case_id="C9", unit_id="U1"), "rejected",
             "unknown_case"),
            ("good-6", order_bytes("good-6", case_id="C1", unit_id="U1", note="再派 东城-巡01"),
             "accepted", None),
            ("good-7", order_bytes("good-7", "recall", unit_id="U2"), "accepted", None),
            ("good-8", order_bytes("good-8", case_id="C3", unit_id="U2"), "rejected",
             "case_not_open"),
        ]
        answered = {  # readable order_id: (payload, the bad_order sub-code or None for any)
            "deep-500": (deep(500, "deep-500"), "too_deep"),
            "surrogate-console": (order_bytes("surrogate-console", console="\ud800",
                                              case_id="C1", unit_id="U1"), "bad_text"),
            "control-console": (order_bytes("control-console", console="con\x01sole",
                                            case_id="C1", unit_id="U1"), "bad_text"),
            "control-case": (order_bytes("control-case", case_id="C\x1b1", unit_id="U1"),
                             "bad_text"),
            "control-unit": (order_bytes("control-unit", "recall", unit_id="U\x001"),
                             "bad_text"),
            "bell-note": (order_bytes("bell-note", case_id="C1", unit_id="U1", note="a\x07"),
                          "bad_text"),
            "ts-2**62": (order_bytes("ts-2**62", case_id="C1", unit_id="U1", ts=2**62),
                         "out_of_range"),
            "ts--1": (order_bytes("ts--1", case_id="C1", unit_id="U1", ts=-1), "out_of_range"),
            "ts-1e400": (order_bytes("ts-1e400", case_id="C1", unit_id="U1", ts="@ts@",
                                     raw={"ts": "1e400"}), "wrong_type"),
        }
        for i, (name, value) in enumerate(WRONG_TYPES):
            fields = {"case_id": "C1", "unit_id": "U1", name: value}
            answered[f"wrong-{i}-{name}"] = (order_bytes(f"wrong-{i}-{name}", **fields), None)
        dropped = [  # (payload, reason): nothing to answer
            (b"not json", "not_json"),
            (b'{"v":1,"type":"dispatch","order_id":"\xff\xfe"}', "not_utf8"),
            (b"[1, 2]", "not_object"),
            (order_bytes("\ud800", console="\udfff", case_id="C1", unit_id="U1"), "bad_text"),
            (order_bytes("\x01id", case_id="C1", unit_id="U1"), "bad_text"),
            (order_bytes(5, case_id="C1", unit_id="U1"), "wrong_type"),
            (order_bytes(["x"], case_id="C1", unit_id="U1"), "wrong_type"),
            (order_bytes(True, case_id="C1", unit_id="U1"), "wrong_type"),
            (deep(100_000), "too_deep"),
            (deep(30_000, "x"), "too_deep"),          # issue #12's order: past any decoder
        ]
        # Interleaved: a bad one after every good one, all sent at once so they are read in
        # the same groups.
        bad = [p for p, _ in answered.values()] + [p for p, _ in dropped]
        for i, payload in enumerate(bad):
            if i < len(good):
                raw.send(good[i][1])
            raw.send(payload)
        raw.send_multipart([b"three", b"frames", b"here"])
        console = city.client("console-b")
        b_oid = console.send("recall", unit_id="U4")            # another console, meanwhile
        replies = collect(raw, {oid for oid, *_ in good} | set(answered))
        assert reason_code(answer(console, b_oid).reason) == "unit_not_assigned"

        for oid, _, result, code in good:
            assert (replies[oid]["result"], reason_code(replies[oid]["reason"])) == (
                result, code), (oid, replies[oid])
        for oid, (_, code) in answered.items():
            reply = replies[oid]
            assert reply["type"] == "ack" and reply["result"] == "rejected", reply
            assert reason_code(reply["reason"]) == "bad_order", reply
            if code is not None:
                assert reply["reason"].startswith(f"bad_order: {code}: "), reply["reason"]
        assert set(replies) == {oid for oid, *_ in good} | set(answered)  # drops: no reply
        want_dropped = Counter(why for _, why in dropped) + Counter(bad_frames=1)
        assert wait_for(lambda: city.svc.status()["dropped"] == dict(want_dropped), 5), \
            city.svc.status()["dropped"]
        st = city.svc.status()
        assert st["rejected"]["bad_order"] == len(answered) == sum(st["bad_orders"].values())
        assert st["accepted"] == 5 and st["faults"] == {} and st["internal_errors"] == 0
        # still serving, and the feed carried exactly the accepted changes
        again = json.loads(ask_once(raw, order_bytes("after", "recall", unit_id="U1")))
        assert again["result"] == "accepted"
        assert city.feed.wait(lambda: len(city.feed.changes()) == 12)
        assert [(r.unit_id, r.status, r.case_id) for r in city.feed.changes()
                if isinstance(r, Unit)] == [
            ("U1", "dispatched", "C1"), ("U2", "dispatched", "C2"), ("U1", "available", None),
            ("U1", "dispatched", "C1"), ("U2", "available", None), ("U1", "available", None)]
    finally:
        raw.close(0)
        stop_city(city)


def ask_once(sock: zmq.Socket, payload: bytes) -> bytes:
    sock.send(payload)
    assert sock.poll(5000), "no reply"
    return sock.recv()


# ---- a frame over the limit ----------------------------------------------------------------
def _events(monitor: zmq.Socket) -> list[int]:
    out = []
    while monitor.poll(0):
        out.append(recv_monitor_message(monitor)["event"])
    return out


def test_an_oversize_frame_cuts_only_its_sender_who_is_answered_after_reconnecting(
        ctx, tmp_path):
    city = start_city(ctx, tmp_path / "d.sqlite3")          # MAX_ORDER_BYTES: 64 KiB
    legit = city.client("console-legit")
    legit_mon = legit._sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    rogue = dealer(ctx, city.svc.dispatch_endpoint)
    rogue_mon = rogue.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        assert answer(legit, legit.send("recall", unit_id="U4")).result == "rejected"
        assert city.svc._router.getsockopt(zmq.MAXMSGSIZE) == 64 * 1024
        rogue.send(deep(100_000))                            # 200 KB of brackets
        assert rogue_mon.poll(10_000), "the oversize sender was not disconnected"
        rogue.send(b"x" * 100_000_000)                       # 100 MB
        payload = order_bytes("rogue-1", case_id="C2", unit_id="U2")
        rogue.send(payload)
        oid = legit.send("dispatch", case_id="C1", unit_id="U1")
        assert answer(legit, oid).result == "accepted"
        # The rogue's good order: answered once its connection is back (a console resends
        # an unanswered order, same id, so do that here too).
        reply = None
        for _ in range(5):
            if rogue.poll(2000):
                reply = json.loads(rogue.recv())
                break
            rogue.send(payload)
        assert reply is not None and reply["result"] == "accepted", reply
        assert zmq.EVENT_DISCONNECTED in _events(rogue_mon)
        assert _events(legit_mon) == []                      # the other console: untouched
        assert legit.status()["resent"] == 0
        st = city.svc.status()
        assert st["accepted"] == 2 and st["dropped"] == {} and st["faults"] == {}
    finally:
        legit_mon.close(0)
        rogue_mon.close(0)
        rogue.close(0)
        stop_city(city)


def test_every_socket_has_a_size_limit(ctx, tmp_path):
    city = start_city(ctx, tmp_path / "d.sqlite3", max_order_bytes=1000)
    try:
        client = city.client(max_reply_bytes=5_000_000)
        assert client._sock.getsockopt(zmq.MAXMSGSIZE) == 5_000_000
        assert city.svc._router.getsockopt(zmq.MAXMSGSIZE) == 1000
        assert 0 < city.svc._feed.getsockopt(zmq.MAXMSGSIZE) <= 4096     # subscriptions
        assert city.svc.status()["limits"]["max_order_bytes"] == 1000
    finally:
        stop_city(city)


# ---- internal errors cost one order -------------------------------------------------------
def test_an_error_judging_one_order_costs_that_order_only(ctx, tmp_path, monkeypatch):
    city = start_city(ctx, tmp_path / "d.sqlite3")
    real_decide = service_module.decide

    def decide(order, case_of, unit_of, now, **kw):
        if getattr(order, "case_id", None) == "C2":
            raise ZeroDivisionError("a bug in the rules")
        return real_decide(order, case_of, unit_of, now, **kw)
    monkeypatch.setattr(service_module, "decide", decide)
    raw = dealer(ctx, city.svc.dispatch_endpoint)
    try:
        for oid, case in (("a", "C1"), ("boom", "C2"), ("c", "C9")):
            raw.send(order_bytes(oid, case_id=case, unit_id="U1"))
        replies = collect(raw, {"a", "boom", "c"})
        assert replies["a"]["result"] == "accepted"
        assert replies["boom"]["reason"].startswith("bad_order: internal: ")
        assert reason_code(replies["c"]["reason"]) == "unknown_case"
        st = city.svc.status()
        assert st["faults"]["dispatch order"]["count"] == 1
        assert "ZeroDivisionError" in st["faults"]["dispatch order"]["error"]
        assert st["bad_orders"] == {"internal": 1}
        assert city.feed.wait(lambda: len(city.feed.changes()) == 2)   # "a" only
        # A step of the loop that fails is a fault too; the loop goes on.
        calls = []

        def heartbeat():
            calls.append(1)
            raise RuntimeError("heartbeat broke")
        city.svc._heartbeat = heartbeat
        assert wait_for(lambda: calls, 5)
        del city.svc._heartbeat
        assert json.loads(ask_once(raw, order_bytes("d", "recall", unit_id="U1")))[
            "result"] == "accepted"
        assert city.svc.status()["faults"]["dispatch heartbeat"]["count"] >= 1
    finally:
        raw.close(0)
        stop_city(city)


def test_a_source_receiver_that_stops_is_restarted_and_counted(ctx, tmp_path):
    city = start_city(ctx, tmp_path / "d.sqlite3")
    try:
        def learn(unit_id, seq):
            city.pub.send("unit", [record("unit", src="units", seq=seq, ts=T0, unit_id=unit_id,
                                          callsign=unit_id)])
            return city.svc.unit(unit_id) is not None

        # Its thread dies of something no message check catches: restarted at the next drain.
        def die(*_):
            del city.svc._receiver._judge                   # once
            raise SystemExit("the receiver thread died")
        city.svc._receiver._judge = die
        assert wait_for(lambda: (learn("U8", 80), "feed-receiver" in city.svc.status()[
            "faults"])[1], 10)
        assert wait_for(lambda: learn("U5", 81), 10)
        # It stops and does not restart itself: the service replaces it.
        city.svc._receiver._stop.set()
        assert wait_for(lambda: "dispatch source receiver" in city.svc.status()["faults"], 10)
        assert wait_for(lambda: learn("U6", 82), 10)
    finally:
        stop_city(city)


# ---- snapshots -----------------------------------------------------------------------------
def test_snapshots_are_rate_limited_per_client_and_never_hold_up_an_order(ctx, tmp_path):
    city = start_city(ctx, tmp_path / "d.sqlite3", snapshots_per_minute=1, snapshot_burst=3)
    raw = dealer(ctx, city.svc.dispatch_endpoint)
    try:
        snaps = [f"snap-{i}" for i in range(300)]
        for oid in snaps[:150]:
            raw.send(order_bytes(oid, "snapshot"))
        raw.send(order_bytes("real", case_id="C1", unit_id="U1"))
        for oid in snaps[150:]:
            raw.send(order_bytes(oid, "snapshot"))
        replies = collect(raw, set(snaps) | {"real"})
        assert replies["real"]["result"] == "accepted"
        served = [oid for oid in snaps if replies[oid]["type"] == "snapshot"]
        refused = [replies[oid] for oid in snaps if replies[oid]["type"] == "ack"]
        # 1 a minute, 3 at once: within this test's minute, exactly the burst
        assert len(served) == 3 and len(refused) == 297
        for ack in refused:
            assert ack["result"] == "rejected" and reason_code(ack["reason"]) == "rate_limited"
            assert re.search(r"retry in \d+ s", ack["reason"]), ack["reason"]
        # The same picture is encoded once, not once per request.
        st = city.svc.status()
        assert st["snapshots"] == 3 and st["snapshot_encodes"] <= 2
        assert st["rejected"]["rate_limited"] == 297
        # Another client still gets its snapshot — even one claiming the same console id
        # (without keys a name is only a claim: per connection); the limited connection is
        # told at once.
        other = city.client("console-b")
        assert {u.unit_id for u in other.snapshot().units} == {"U1", "U2", "U3", "U4"}
        same_name = city.client("raw")
        assert {u.unit_id for u in same_name.snapshot().units} == {"U1", "U2", "U3", "U4"}
        raw.send(order_bytes("snap-again", "snapshot"))
        again = collect(raw, {"snap-again"})["snap-again"]
        assert reason_code(again["reason"]) == "rate_limited"
        same_name.snapshot()
        same_name.snapshot()
        with pytest.raises(SnapshotRefused) as refusal:
            same_name.snapshot(timeout_s=30)
        assert refusal.value.code == "rate_limited" and refusal.value.retry_s >= 1
        assert "snapshot refused: rate_limited" in str(refusal.value)
    finally:
        raw.close(0)
        stop_city(city)


def test_a_snapshot_larger_than_the_limit_is_refused_not_sent(ctx, tmp_path):
    city = start_city(ctx, tmp_path / "d.sqlite3", max_snapshot_bytes=500)
    try:
        with pytest.raises(SnapshotRefused) as refusal:
            city.client().snapshot()
        assert refusal.value.code == "snapshot_too_large"
        assert city.svc.status()["rejected"] == {"snapshot_too_large": 1}
    finally:
        stop_city(city)


def test_the_rate_limit_table_is_bounded_and_refills():
    now = [0.0]
    limit = RateLimit(per_minute=60, burst=2, max_keys=100, clock=lambda: now[0])
    for i in range(10_000):
        assert limit.take([("identity", i)]) == 0.0
    assert len(limit) == 100                                 # the oldest were forgotten
    assert limit.take(["a"]) == limit.take(["a"]) == 0.0
    assert limit.take(["a"]) == pytest.approx(1.0)           # one a second
    now[0] += 1.0
    assert limit.take(["a"]) == 0.0
    # Both keys must have a token; a refusal takes none from either.
    assert limit.take(["b"]) == 0.0 and limit.take(["b"]) == 0.0
    assert limit.take(["c", "b"]) > 0
    assert limit.take(["c"]) == 0.0 and limit.take(["c"]) == 0.0


def test_a_spliced_snapshot_reads_as_the_one_built_whole(ctx, tmp_path):
    city = start_city(ctx, tmp_path / "d.sqlite3")
    try:
        reply = decode_reply(city.svc._snapshot("snap-\u4e00"))
        assert not isinstance(reply, Problem) and reply.order_id == "snap-\u4e00"
        assert reply.src == "dispatch" and reply.seq == city.svc.seq
        assert {c.case_id for c in reply.cases} == {"C1", "C2", "C4"}
    finally:
        stop_city(city)


# ---- nothing committed is lost to the feed ------------------------------------------------
def spawn(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[subprocess.Popen, str, str]:
    log = open(tmp_path / f"service-{len(list(tmp_path.glob('service-*')))}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "feeds.dispatch_service", *args,
                             "--run-for", "60"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=log, text=True, env={**os.environ, **env})
    log.close()
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    m = re.search(r"orders (\S+) feed (\S+)", line)
    if not m:
        proc.kill()
        raise AssertionError(f"service did not start: {line!r}")
    return proc, m.group(1), m.group(2)


class Subscriber:
    """A console's SUB on the service's feed (a real Receiver): every record, gaps, falls."""

    def __init__(self, endpoint: str, ctx: zmq.Context):
        self.rx = Receiver([endpoint], context=ctx).start()
        self.records: list = []
        self.gaps: list = []
        self.restarts: list = []

    def pull(self) -> None:
        batch, _ = self.rx.drain()
        self.records += [r for r in batch.records if r.src == "dispatch"]
        self.gaps += [g for g in batch.gaps if g[0] == "dispatch"]
        self.restarts += [r for r in batch.restarts if r[0] == "dispatch"]

    def wait(self, predicate, timeout_s: float = 10.0) -> bool:
        return wait_for(lambda: (self.pull(), predicate())[1], timeout_s)

    def latest(self) -> dict:
        out = {}
        for r in self.records:
            if isinstance(r, (Case, Unit)):
                out[("case", r.case_id) if isinstance(r, Case) else ("unit", r.unit_id)] = r
        return out


def database_picture(db: Path) -> tuple[dict, set[int]]:
    """The service's own records in its database, and the seqs of its change log."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        out = {}
        for table, kind, rtype in (("cases", "case", Case), ("units", "unit", Unit)):
            for key, rec in conn.execute(f"SELECT {kind}_id, record FROM {table}"):
                rec = msgspec.json.decode(rec, type=rtype)
                if rec.src == "dispatch":
                    out[(kind, key)] = rec
        seqs = {s for (s,) in conn.execute("SELECT seq FROM changes")}
    finally:
        conn.close()
    return out, seqs


def test_changes_committed_before_a_sigkill_reach_the_feed_after_the_restart(ctx, tmp_path):
    db = tmp_path / "dispatch.sqlite3"
    pub = TestPublisher(ctx)
    procs: list[subprocess.Popen] = []
    client = sub = None
    common = ("--source", pub.endpoint, "--db", str(db), "--snapshot-burst", "10000")
    try:
        # The service kills itself right after its 3rd order commit, before the replies and
        # records of that commit leave.
        proc, orders_ep, feed_ep = spawn(tmp_path, {"CITYWALL_TEST_KILL_AFTER_COMMIT": "3"},
                                         *common, "--dispatch", "tcp://127.0.0.1:*",
                                         "--feed", "tcp://127.0.0.1:*")
        procs.append(proc)
        pub.wait_subscriber(20)
        now = time.time_ns() // 1_000_000
        for topic, recs in city_records(now):
            pub.send(topic, recs)
        client = DispatchClient(orders_ep, "console-1", context=ctx, timeout_ms=1000,
                                retries=20)
        assert wait_for(lambda: len(client.snapshot().units) == 4, 10)
        sub = Subscriber(feed_ep, ctx)
        assert sub.wait(lambda: sub.records)                 # greeted: listening
        assert answer(client, client.send("dispatch", case_id="C1", unit_id="U1")).accepted
        assert answer(client, client.send("recall", unit_id="U1")).accepted
        assert sub.wait(lambda: len(sub.latest()) == 2 and sub.latest()[
            ("unit", "U1")].status == "available")
        third = client.send("dispatch", case_id="C2", unit_id="U2")     # the fatal commit
        assert proc.wait(10) == -signal.SIGKILL
        client.poll()
        assert third in client.pending()                      # never answered
        picture, _ = database_picture(db)
        assert picture[("case", "C2")].status == "dispatched"  # committed …
        sub.pull()
        assert ("case", "C2") not in sub.latest()              # … and never published

        proc, _, _ = spawn(tmp_path, {}, *common, "--dispatch", orders_ep, "--feed", feed_ep)
        procs.append(proc)
        ack = answer(client, third, 20)                        # the resend: the stored reply
        assert ack.accepted
        assert sub.wait(lambda: sub.latest() == database_picture(db)[0], 20), (
            sub.latest(), database_picture(db)[0])
        # Carry on: a new order's change follows on the same feed.
        assert answer(client, client.send("dispatch", case_id="C1", unit_id="U1")).accepted
        assert sub.wait(lambda: sub.latest() == database_picture(db)[0]
                        and sub.latest()[("unit", "U1")].status == "dispatched", 20)
        picture, change_seqs = database_picture(db)
        seqs = [r.seq for r in sub.records]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs  # no gap, no repeat
        assert sub.gaps == [] and sub.restarts == []
        assert {r.seq for r in sub.records if not isinstance(r, Heartbeat)} == change_seqs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)
            p.stdout.close()
        if client is not None:
            client.close()
        if sub is not None:
            sub.rx.stop()
        pub.close()


# ---- the order parser under fuzz ------------------------------------------------------------
CODES = {"too_large", "not_json", "not_utf8", "not_object", "too_deep", "bad_text",
         "missing_field", "wrong_type", "out_of_range", "unknown_version", "unknown_type",
         "bad_value"}

_weird_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
_scalars = (st.none() | st.booleans() | st.integers(min_value=-2**80, max_value=2**80)
            | st.floats(allow_nan=True, allow_infinity=True) | _weird_text)
_json_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                            | st.dictionaries(_weird_text, inner, max_size=4), max_leaves=25)
_ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cf", "Zl", "Zp",
                                                               "Co", "Cn", "Zs")),
               min_size=1, max_size=128).filter(valid_id)
_notes = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)),
                 max_size=200).filter(valid_text)
_ts = st.integers(min_value=MIN_TS_MS, max_value=MAX_TS_MS)


def _frame_of(value) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


@st.composite
def _orders_with_odd_values(draw):
    doc = {"v": 1, "type": draw(st.sampled_from(["dispatch", "recall", "snapshot", "x"])),
           "order_id": "fuzz", "console": "c", "ts": T0, "case_id": "C1", "unit_id": "U1"}
    for field in draw(st.lists(st.sampled_from(sorted(doc) + ["note", "extra"]), max_size=4)):
        doc[field] = draw(_json_values | st.sampled_from(["\ud800", "\x00", "a\udfffb"]))
    text = json.dumps(doc)
    if draw(st.booleans()):                  # numbers JSON can write and Python cannot hold
        text = text.replace(str(T0), draw(st.sampled_from(["1e400", "-1e400", "1" * 5000,
                                                           "NaN", "2e-400"])))
    return text.encode("utf-8", "surrogatepass")


@st.composite
def _valid_orders(draw) -> Order:
    common = {"v": 1, "order_id": draw(_ids), "console": draw(_ids), "ts": draw(_ts)}
    kind = draw(st.sampled_from(["dispatch", "recall", "snapshot"]))
    if kind == "dispatch":
        return DispatchOrder(**common, case_id=draw(_ids), unit_id=draw(_ids),
                             note=draw(st.none() | _notes))
    if kind == "recall":
        return RecallOrder(**common, unit_id=draw(_ids))
    return SnapshotOrder(**common)


def _check_judged(data: bytes) -> None:
    got = decode_order(data)
    assert isinstance(got, (Order, Problem))
    if isinstance(got, Problem):
        assert got.code in CODES, got
        assert got.order_id is None or valid_id(got.order_id)
        # whatever it says can be sent back
        reason = bad_order(got.code, got.detail)
        assert valid_text(reason)
        if got.order_id is not None:
            encode(Ack(order_id=got.order_id, result="rejected", reason=reason, ts=T0))
    else:
        encode(got)


FUZZ = settings(derandomize=True, deadline=None, max_examples=300,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_are_judged_never_raised(data):
    _check_judged(data)


@FUZZ
@given(_json_values)
def test_fuzz_random_json_is_judged_never_raised(value):
    _check_judged(_frame_of(value))


@FUZZ
@given(st.integers(min_value=1, max_value=3000), st.sampled_from([b"[", b'{"a":', b"[{\"b\":"]))
def test_fuzz_deep_nesting_is_too_deep(depth, opener):
    got = decode_order(b'{"v":1,"order_id":"d","x":' + opener * depth)
    assert isinstance(got, Problem) and got.code in {"too_deep", "not_json"}


@FUZZ
@given(_orders_with_odd_values())
def test_fuzz_orders_with_odd_values_are_judged_never_raised(data):
    _check_judged(data)


@FUZZ
@given(_valid_orders())
def test_fuzz_a_valid_order_is_decoded_as_the_same_order(order):
    assert decode_order(encode(order)) == order
    doc = msgspec.to_builtins(order)
    assert decode_order(json.dumps(doc, ensure_ascii=False).encode()) == order


def test_decode_order_bounds_by_example():
    assert decode_order(deep(100_000), max_bytes=10**7).code == "too_deep"
    assert decode_order(deep(500, "d-1")) == Problem("too_deep", "", "d-1")
    assert decode_order(b"x" * 70_000).code == "too_large"
    lone = decode_order(b'{"v":1,"type":"recall","order_id":"\\ud800","console":"c",'
                        b'"ts":1795449600000,"unit_id":"U1"}')
    assert (lone.code, lone.order_id) == ("bad_text", None)
    assert bad_order("wrong_type", "Expected `int`, got `str` - at `$.ts`") == (
        "bad_order: wrong_type: Expected `int`, got `str` - at `$.ts` / "
        "指令无法受理（wrong_type），未执行")
    assert bad_order("too_deep").startswith("bad_order: too_deep: the request nests deeper")
    # a reply nested past any decoder is a drop for the client, not a crash
    assert decode_reply(b'{"v":1,"type":"ack","order_id":"x","reason":' + b"[" * 50_000
                        ).code in {"too_deep", "not_json"}

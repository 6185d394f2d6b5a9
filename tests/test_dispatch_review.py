"""The dispatch service after a review that attacked it over real sockets (F3, F4, F5, F11,
F13): source records dated far ahead, snapshot refusals that cost a copy of the picture,
learned tables with no cap, orders whose order_id is readable but whose frame is not, and a
rate limit spent by naming another console.

Real sockets on tcp loopback and a real SQLite file, as in ``tests/test_dispatch.py``. Every
wait has a timeout; nothing asserts on time.
"""
from __future__ import annotations

import json
import sqlite3

import pytest
import zmq

from feeds.bounds import DEFAULT_FUTURE_MS
from feeds.dispatch_client import SnapshotRefused
from feeds.dispatch_store import Storage
from feeds.orders import reason_code
from feeds.receiver import Receiver, wait_for
from feeds.schema import Case, Unit
from tests.pubhelp import record
from tests.test_dispatch import NOW, T0, answer, dealer, start_city
from tests.test_dispatch_hardening import collect, order_bytes, stop_city

YEAR_9999 = 253_402_300_000_000
DAY_MS = 24 * 3_600_000


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


class Console:
    """A console's receiver on the service's feed, judging time by its own clock (the
    service's, here): what the wall would take."""

    def __init__(self, city, ctx):
        self.rx = Receiver([city.svc.feed_endpoint], context=ctx,
                           now_ms=city.clock.now_ms).start()
        self.records: list = []
        self.refused: dict = {}

    def pull(self) -> None:
        batch, _ = self.rx.drain()
        self.records += [r for r in batch.records
                         if r.src == "dispatch" and isinstance(r, (Case, Unit))]
        for (src, why), n in batch.rejects.items():
            self.refused[why] = self.refused.get(why, 0) + n

    def wait(self, predicate, timeout_s: float = 5.0) -> bool:
        return wait_for(lambda: (self.pull(), predicate())[1], timeout_s)


def db_row(path, table: str, key: str):
    with sqlite3.connect(path) as conn:
        col = "case_id" if table == "cases" else "unit_id"
        return conn.execute(f"SELECT ts, status FROM {table} WHERE {col}=?", (key,)).fetchone()


# ---- F3: source records dated far ahead ----------------------------------------------------
def test_a_source_record_dated_year_9999_is_refused_and_the_real_one_wins(ctx, tmp_path):
    db = tmp_path / "d.sqlite3"
    city = start_city(ctx, db)
    console = Console(city, ctx)
    try:
        city.pub.send("unit", record("unit", src="units", seq=50, ts=YEAR_9999, unit_id="U2",
                                     callsign="东城-巡02", status="out_of_service"))
        city.pub.send("case", record("case", src="cases", seq=51, ts=YEAR_9999, case_id="C1",
                                     category="event.street_order.vending"))
        # Just inside the tolerance is still taken.
        city.pub.send("case", record("case", src="cases", seq=52,
                                     ts=NOW + DEFAULT_FUTURE_MS, case_id="C2"))
        city.pub.send("unit", record("unit", src="units", seq=53, ts=NOW, unit_id="U2",
                                     callsign="东城-巡02", status="available"))
        assert wait_for(lambda: city.svc.unit("U2").ts == NOW, 5), city.svc.unit("U2")
        assert wait_for(lambda: city.svc.case("C2").ts == NOW + DEFAULT_FUTURE_MS, 5)
        assert city.svc.case("C1").ts == T0
        assert city.svc.status()["source_rejects"] >= 2
        c = city.client()
        for case_id, unit_id in (("C1", "U2"), ("C2", "U1")):
            ack = answer(c, c.send("dispatch", case_id=case_id, unit_id=unit_id))
            assert ack.result == "accepted", ack.reason
        # Every record the service published is one the console takes.
        assert console.wait(lambda: len(console.records) == 4), console.refused
        assert console.refused.get("out_of_range", 0) == 0
        assert all(r.ts <= NOW + DEFAULT_FUTURE_MS for r in console.records)
        assert {(type(r).__name__, r.status) for r in console.records} == {
            ("Case", "dispatched"), ("Unit", "dispatched")}
        assert wait_for(lambda: db_row(db, "units", "U2")[0] <= NOW + DEFAULT_FUTURE_MS, 5)
    finally:
        console.rx.stop()
        stop_city(city)


def test_a_database_poisoned_by_a_far_future_record_recovers(ctx, tmp_path):
    """A held record dated beyond the tolerance (a database written before the fix) loses
    to the next real record."""
    db = tmp_path / "d.sqlite3"
    store = Storage(db)
    store.open()
    store.write(units=[Unit(v=1, src="units", seq=9, ts=YEAR_9999, unit_id="U2",
                            callsign="poisoned", kind="foot_patrol", status="available",
                            lat=39.91, lon=116.40, case_id=None)])
    store.close()
    city = start_city(ctx, db)
    console = Console(city, ctx)
    try:
        # The source's U2 (ts T0) replaces the poisoned one.
        assert wait_for(lambda: city.svc.unit("U2").callsign == "东城-巡02", 5), \
            city.svc.unit("U2")
        c = city.client()
        ack = answer(c, c.send("dispatch", case_id="C1", unit_id="U2"))
        assert ack.result == "accepted", ack.reason
        assert console.wait(lambda: len(console.records) == 2), console.refused
        assert all(r.ts == NOW for r in console.records)
    finally:
        console.rx.stop()
        stop_city(city)


def test_a_change_over_a_record_dated_ahead_is_dated_so_consoles_take_it(ctx, tmp_path):
    """A change is dated after what it replaces, but never further ahead of the service's
    clock than the tolerance: here a case learned 9 minutes ahead, and the clock set back."""
    city = start_city(ctx, tmp_path / "d.sqlite3")
    console = Console(city, ctx)
    try:
        ahead = NOW + 9 * 60_000
        city.pub.send("case", record("case", src="cases", seq=50, ts=ahead, case_id="C2"))
        assert wait_for(lambda: city.svc.case("C2").ts == ahead, 5)
        city.clock.set(NOW - 3_600_000)
        c = city.client()
        ack = answer(c, c.send("dispatch", case_id="C2", unit_id="U1"))
        assert ack.result == "accepted", ack.reason
        assert console.wait(lambda: len(console.records) == 2), console.refused
        assert all(r.ts <= city.clock.now_ms() + DEFAULT_FUTURE_MS for r in console.records)
    finally:
        console.rx.stop()
        stop_city(city)


# ---- F4: a snapshot too large is refused without building it -------------------------------
def test_a_snapshot_too_large_is_refused_without_copying_the_picture(ctx, tmp_path):
    city = start_city(ctx, tmp_path / "d.sqlite3", max_snapshot_bytes=2_000,
                      snapshots_per_minute=60, snapshot_burst=3)
    built = []
    real = city.svc._identity_fields
    city.svc._identity_fields = lambda caller: (built.append(1), real(caller))[1]
    socks = [dealer(ctx, city.svc.dispatch_endpoint) for _ in range(20)]
    try:
        city.pub.send("case", [record("case", src="cases", seq=60 + i, ts=T0,
                                      case_id=f"B{i}", description="x" * 200)
                               for i in range(20)])
        assert wait_for(lambda: city.svc.status()["cases"] == 24, 5)
        for i, sock in enumerate(socks):
            for j in range(3):
                sock.send(order_bytes(f"s{i}-{j}", "snapshot", console=f"c{i}"))
        socks[0].send(order_bytes("good", case_id="C1", unit_id="U1"))
        replies = {}
        for i, sock in enumerate(socks):
            replies.update(collect(sock, {f"s{i}-{j}" for j in range(3)} | (
                {"good"} if i == 0 else set())))
        assert replies.pop("good")["result"] == "accepted"
        assert len(replies) == 60
        for ack in replies.values():
            assert ack["type"] == "ack" and reason_code(ack["reason"]) == "snapshot_too_large"
            size = int(ack["reason"].split(" bytes")[0].rsplit(" ", 1)[1])
            assert size > 2_000
        assert built == []                     # nothing was spliced for a refusal
        st = city.svc.status()
        assert st["rejected"]["snapshot_too_large"] == 60 and st["snapshot_encodes"] <= 2
    finally:
        for sock in socks:
            sock.close(0)
        stop_city(city)


# ---- F5: the learned tables are capped and age out -----------------------------------------
def test_learned_tables_are_capped_and_open_cases_age_out(ctx, tmp_path):
    db = tmp_path / "d.sqlite3"
    city = start_city(ctx, db, max_cases=6, max_units=5, prune_s=0.05)
    try:
        city.pub.send("case", [record("case", src="cases", seq=100 + i, ts=T0,
                                      case_id=f"N{i}") for i in range(10)])
        city.pub.send("unit", [record("unit", src="units", seq=200 + i, ts=T0,
                                      unit_id=f"V{i}") for i in range(10)])
        assert wait_for(lambda: city.svc.status()["learn_refused"] == {"cases": 8,
                                                                       "units": 9}, 5), \
            city.svc.status()["learn_refused"]
        st = city.svc.status()
        assert st["cases"] == 6 and st["units"] == 5
        assert st["limits"]["max_cases"] == 6 and st["limits"]["max_units"] == 5
        # An id already held is still learned at the cap.
        city.pub.send("case", record("case", src="cases", seq=300, ts=T0 + 1, case_id="C2",
                                     title="更新"))
        assert wait_for(lambda: city.svc.case("C2").title == "更新", 5)
        with sqlite3.connect(db) as conn:
            assert wait_for(lambda: conn.execute("SELECT count(*) FROM cases").fetchone()[0]
                            == 6, 5)
        # 30 days on, only what was heard of since is kept; the room is free again.
        city.clock.advance(30 * DAY_MS + 1)
        now = city.clock.now_ms()
        city.pub.send("case", record("case", src="cases", seq=301, ts=now, case_id="C1"))
        city.pub.send("unit", record("unit", src="units", seq=302, ts=now, unit_id="U1"))
        assert wait_for(lambda: (city.svc.status()["cases"], city.svc.status()["units"]) == (1, 1),
                        5), city.svc.status()
        st = city.svc.status()
        assert city.svc.case("C1") is not None and city.svc.case("C2") is None
        assert st["units"] == 1 and st["aged_out"]["cases"] >= 4
        assert db_row(db, "cases", "C2") is None and db_row(db, "units", "U2") is None
        city.pub.send("case", record("case", src="cases", seq=303, ts=now, case_id="N9"))
        assert wait_for(lambda: city.svc.case("N9") is not None, 5)
    finally:
        stop_city(city)


def test_the_new_limits_reach_the_service_from_the_command_line(tmp_path, monkeypatch):
    import feeds.dispatch_cli as cli
    from feeds.dispatch_service import BindError
    made = []

    class Service:
        insecure_notes: list = []

        def __init__(self, *args, **kw):
            made.append(kw)

        def open(self):
            raise BindError("not binding in this test")
    monkeypatch.setattr(cli, "DispatchService", Service)
    base = ["--source", "tcp://127.0.0.1:1", "--db", str(tmp_path / "d.sqlite3")]
    assert cli.main(base + ["--max-cases", "7", "--max-units", "3", "--open-case-max-days",
                            "2", "--future-tolerance-s", "30"]) == 2
    assert cli.main(base) == 2
    flags, defaults = ({k: kw[k] for k in ("max_cases", "max_units", "open_case_max_age_ms",
                                           "future_ms")} for kw in made)
    assert flags == {"max_cases": 7, "max_units": 3, "open_case_max_age_ms": 2 * DAY_MS,
                     "future_ms": 30_000}
    assert defaults == {"max_cases": 200_000, "max_units": 20_000,
                        "open_case_max_age_ms": 30 * DAY_MS, "future_ms": 600_000}


# ---- F11: an order whose order_id can be read is answered ----------------------------------
def test_an_undecodable_order_with_a_readable_order_id_is_answered(ctx, tmp_path):
    city = start_city(ctx, tmp_path / "d.sqlite3")
    raw = dealer(ctx, city.svc.dispatch_endpoint)
    try:
        good = order_bytes("o7", case_id="C1", unit_id="U1", note="@note@")
        raw.send(good.replace(b'"@note@"', b'"a\xed\xa0\x80b"'))             # not UTF-8
        raw.send(order_bytes("o8", case_id="C1", unit_id="U1") + b" garbage")  # not JSON
        raw.send(b'{"order_id": "o9", "v":1, "type":"dispatch",')             # cut short
        raw.send(order_bytes("real", case_id="C1", unit_id="U1"))
        # Unreadable ids are still only counted: escaped, not an id, past the first 4 KiB.
        raw.send(b'{"order_id":"o\\u0031", "v":1 xx')
        raw.send(b'{"order_id":"\x01x", "v":1 xx')
        raw.send(b'{"note":"' + b"n" * 5000 + b'","order_id":"o10" xx')
        replies = collect(raw, {"o7", "o8", "o9", "real"})
        assert replies["real"]["result"] == "accepted"
        for oid, code in (("o7", "not_utf8"), ("o8", "not_json"), ("o9", "not_json")):
            assert replies[oid]["result"] == "rejected"
            assert replies[oid]["reason"].startswith(f"bad_order: {code}:"), replies[oid]
        assert wait_for(lambda: sum(city.svc.status()["dropped"].values()) == 3, 5), \
            city.svc.status()["dropped"]
        assert not raw.poll(200)                       # nothing else came back
        st = city.svc.status()
        assert st["bad_orders"] == {"not_utf8": 1, "not_json": 2}
    finally:
        raw.close(0)
        stop_city(city)


# ---- F13: a console's name costs nobody else their snapshots ------------------------------
def test_naming_another_console_does_not_spend_its_snapshots(ctx, tmp_path):
    city = start_city(ctx, tmp_path / "d.sqlite3", snapshots_per_minute=1, snapshot_burst=3)
    attacker = dealer(ctx, city.svc.dispatch_endpoint)
    try:
        oids = [f"a{i}" for i in range(4)]
        for oid in oids:
            attacker.send(json.dumps({"v": 1, "type": "snapshot", "order_id": oid,
                                      "console": "victim-console", "ts": T0}).encode())
        replies = collect(attacker, set(oids))
        assert [replies[o]["type"] for o in oids] == ["snapshot"] * 3 + ["ack"]
        assert reason_code(replies["a3"]["reason"]) == "rate_limited"   # its own connection
        victim = city.client("victim-console")
        assert {u.unit_id for u in victim.snapshot().units} == {"U1", "U2", "U3", "U4"}
        victim.snapshot()
        victim.snapshot()
        with pytest.raises(SnapshotRefused):               # its own burst is still 3
            victim.snapshot()
        assert city.svc.status()["snapshot_clients"] == 2   # one bucket per connection
    finally:
        attacker.close(0)
        stop_city(city)

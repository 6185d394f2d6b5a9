"""Position-only reports (``unit.pos``, issue #16): they move a unit, feed its track and keep it
fresh, and never undo an order — on a wall, in the dispatch service, in a broker's state and in
the demo city."""
from __future__ import annotations

import json

import msgspec
import pytest
import zmq

from feeds.decode import MessageDecoder
from feeds.schema import Unit, UnitPosition, frames
from situation.clock import ManualClock
from situation.store import UNIT_STALE_MS, Situation
from tests.districthelp import IN_CHAOYANG, IN_DONGCHENG, scoped
from tests.pubhelp import batch_of, rec, record

T0 = 1_795_449_600_000                    # 2026-11-24 00:00 Beijing time
NOW = T0 + 60_000
SEC = 1_000


def pos(seq: int, ts: int, unit_id: str = "U1", src: str = "gps", **fields) -> dict:
    base = {"v": 1, "src": src, "seq": seq, "ts": ts, "unit_id": unit_id,
            "lat": 39.91, "lon": 116.40}
    base.update(fields)
    return base


def typed_pos(seq: int, ts: int, **fields) -> UnitPosition:
    return msgspec.convert(pos(seq, ts, **fields), UnitPosition)


def payload(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


# ---- decode -------------------------------------------------------------------------------
def test_decode_a_good_position_and_a_batch():
    dec = MessageDecoder(now_ms=lambda: NOW)
    out = dec.decode([b"unit.pos", payload(pos(0, NOW, course=90.0, speed=1.2, accuracy=8.0))])
    assert out.rejects == [] and out.topic == "unit.pos"
    (p,) = out.records
    assert isinstance(p, UnitPosition) and (p.unit_id, p.course, p.accuracy) == ("U1", 90.0, 8.0)
    batch = [pos(i, NOW - 10 * SEC + i * SEC, unit_id=f"U{i % 3}") for i in range(10)]
    out = dec.decode([b"unit.pos", payload(batch)])
    assert out.rejects == [] and len(out.records) == 10
    assert frames(out.records) == [b"unit.pos", msgspec.json.encode(out.records)]


@pytest.mark.parametrize("bad, reason", [
    (dict(unit_id="U\n1"), "bad_text"),                 # an id with a control character
    (dict(unit_id=""), "bad_text"),
    (dict(unit_id=7), "wrong_type"),
    (dict(lat=91.0), "out_of_range"),
    (dict(lon=-181.0), "out_of_range"),
    (dict(lat="39.9"), "wrong_type"),
    (dict(ts=NOW + 3_600_000), "out_of_range"),         # an hour ahead of the clock
    (dict(v=2), "unknown_version"),
])
def test_decode_refuses_bad_positions_by_reason_fast_and_slow(bad, reason):
    dec = MessageDecoder(now_ms=lambda: NOW)
    bad_one = {**pos(1, NOW), **bad}
    one = dec.decode([b"unit.pos", payload(bad_one)])
    assert one.records == [] and [r.reason for r in one.rejects] == [reason]
    # In a batch with good ones (the lenient path): the good ones are kept.
    mixed = dec.decode([b"unit.pos", payload([pos(0, NOW), bad_one, pos(2, NOW)])])
    assert [r.seq for r in mixed.records] == [0, 2]
    assert [r.reason for r in mixed.rejects] == [reason]


def test_decode_refuses_a_lone_surrogate_and_a_position_under_another_topic():
    dec = MessageDecoder(now_ms=lambda: NOW)
    raw = b'[{"v":1,"src":"gps","seq":0,"ts":%d,"unit_id":"U\\ud800","lat":39.9,"lon":116.4},' \
          b'{"v":1,"src":"gps","seq":1,"ts":%d,"unit_id":"U2","lat":39.9,"lon":116.4}]' % (NOW, NOW)
    out = dec.decode([b"unit.pos", raw])
    assert [r.unit_id for r in out.records] == ["U2"]
    assert [r.reason for r in out.rejects] == ["bad_text"]
    # A position is not a unit record: on the ``unit`` topic it lacks the unit's fields.
    out = dec.decode([b"unit", payload(pos(0, NOW))])
    assert out.records == [] and [r.reason for r in out.rejects] == ["missing_field"]


# ---- the situation ------------------------------------------------------------------------
def _unit(seq, ts, **fields):
    return rec("unit", src="dispatch", seq=seq, ts=ts, **fields)


def test_sixty_fixes_keep_the_dispatch_and_feed_the_track():
    clock = ManualClock(NOW)
    s = Situation(clock)
    s.apply(batch_of(_unit(0, NOW, status="dispatched", case_id="C1")))
    for i in range(60):
        clock.advance(SEC)
        change = s.apply(batch_of(typed_pos(i, clock.now_ms(), lat=39.91 + i * 3e-4, speed=5.0)))
        assert change.units == {"U1"}
    u = s.units["U1"]
    assert (u.status, u.case_id, u.callsign) == ("dispatched", "C1", "东城-巡01")
    assert (u.lat, u.lon, u.speed, u.ts) == (pytest.approx(39.91 + 59 * 3e-4), 116.40, 5.0,
                                              NOW + 60 * SEC)
    track = s.tracks["U1"]
    assert len(track) >= 55 and track[-1] == (NOW + 60 * SEC, 116.40, u.lat)   # every 33 m kept
    assert s.status()["rejected_total"] == 0 and s.records_accepted == 61
    # Fixes keep it fresh: 60 s after the status record, a second after the last fix.
    clock.advance(SEC)
    assert not s.unit_stale(u) and s.status()["stale_units"] == 0
    clock.advance(UNIT_STALE_MS)
    assert s.unit_stale(s.units["U1"])


def test_status_and_position_are_ordered_apart_with_skewed_clocks():
    clock = ManualClock(NOW + 10 * SEC)          # the wall agrees with the phone
    s = Situation(clock)
    s.apply(batch_of(_unit(0, NOW, status="dispatched", case_id="C1")))
    # A phone 10 s ahead of the dispatch service.
    s.apply(batch_of(typed_pos(0, NOW + 10 * SEC, lat=39.95)))
    # The service's next status record: older than the fix, newer than its last status.
    change = s.apply(batch_of(_unit(1, NOW + 2 * SEC, status="en_route", case_id="C1",
                                    lat=39.92)))
    assert change.units == {"U1"}
    u = s.units["U1"]
    assert (u.status, u.case_id) == ("en_route", "C1")
    assert u.lat == 39.95 and u.ts == NOW + 10 * SEC          # the newer fix stays shown
    assert len(s.tracks["U1"]) == 2                            # (the record's old point: not)
    # An older status record is not taken (and moves nothing).
    before = s.superseded
    change = s.apply(batch_of(_unit(2, NOW + SEC, status="available", lat=39.80)))
    assert change.units == set() and s.superseded == before + 1
    assert (s.units["U1"].status, s.units["U1"].lat) == ("en_route", 39.95)
    # An older fix is not taken either; a newer full record moves the unit too.
    s.apply(batch_of(typed_pos(1, NOW + 5 * SEC, lat=39.70)))
    assert s.units["U1"].lat == 39.95 and s.superseded == before + 2
    s.apply(batch_of(_unit(3, NOW + 11 * SEC, status="on_scene", case_id="C1", lat=39.96)))
    assert (s.units["U1"].status, s.units["U1"].lat) == ("on_scene", 39.96)
    assert s.unit_pos_ts["U1"] == s.unit_status_ts["U1"] == NOW + 11 * SEC


def test_a_position_for_an_unknown_unit_is_counted_and_dropped():
    s = Situation(ManualClock(NOW))
    batch = batch_of(typed_pos(0, NOW, unit_id="NOPE"), typed_pos(1, NOW, unit_id="NOPE2"))
    change = s.apply(batch)
    assert change.units == set() and s.units == {} and s.tracks == {}
    st = s.status()
    assert st["rejected"] == {"unknown_unit": 2} and st["records_accepted"] == 0
    assert st["sources"]["gps"]["rejected_by_reason"] == {"unknown_unit": 2}
    # From a broker's state too (load).
    s.load([typed_pos(2, NOW, unit_id="NOPE3")])
    assert s.rejected["unknown_unit"] == 3 and s.units == {}


def test_a_district_wall_lets_a_unit_go_when_a_fix_takes_it_out():
    s = scoped("110101")                         # Dongcheng
    now = s.clock.now_ms()
    s.apply(batch_of(_unit(0, now, status="dispatched", case_id="C1", **IN_DONGCHENG)))
    change = s.apply(batch_of(typed_pos(0, now + SEC, **IN_DONGCHENG)))
    assert change.units == {"U1"} and "U1" in s.units
    change = s.apply(batch_of(typed_pos(1, now + 2 * SEC, **IN_CHAOYANG)))
    assert change.units == {"U1"} and "U1" not in s.units            # left, as a record would
    assert s.out_of_scope["unit"] == 1 and "U1" not in s.unit_status_ts
    assert "U1" not in s.unit_pos_ts and s.left_scope[("unit", "U1")] == now + 2 * SEC
    # A fix of a unit elsewhere is out of scope, not unknown; a late record inside, older
    # than the fix that took it out, changes nothing.
    s.apply(batch_of(typed_pos(2, now + 3 * SEC, **IN_CHAOYANG)))
    assert s.out_of_scope["unit"] == 2 and "unknown_unit" not in s.rejected
    s.apply(batch_of(_unit(1, now + SEC, status="en_route", case_id="C1", **IN_DONGCHENG)))
    assert "U1" not in s.units
    # Its next full record from inside brings it back.
    s.apply(batch_of(_unit(2, now + 4 * SEC, status="on_scene", case_id="C1", **IN_DONGCHENG)))
    assert s.units["U1"].status == "on_scene"
    assert "U1" not in s.units_away


def test_a_unit_that_leaves_a_district_wall_by_fixes_comes_back_by_fixes():
    s = scoped("110101")                         # Dongcheng
    now = s.clock.now_ms()
    s.apply(batch_of(_unit(0, now, status="dispatched", case_id="C1", **IN_DONGCHENG)))
    s.apply(batch_of(typed_pos(0, now + SEC, **IN_CHAOYANG)))       # across the border …
    assert "U1" not in s.units and s.units_away["U1"][0].status == "dispatched"
    s.apply(batch_of(typed_pos(1, now + 2 * SEC, **IN_CHAOYANG)))   # … still out …
    assert "U1" not in s.units
    s.apply(batch_of(typed_pos(2, now + SEC // 2, **IN_DONGCHENG)))  # a late fix: nothing
    assert "U1" not in s.units
    change = s.apply(batch_of(typed_pos(3, now + 3 * SEC, **IN_DONGCHENG)))   # … and back
    u = s.units["U1"]
    assert change.units == {"U1"}
    assert (u.status, u.case_id, u.ts) == ("dispatched", "C1", now + 3 * SEC)
    assert (u.lat, u.lon) == (IN_DONGCHENG["lat"], IN_DONGCHENG["lon"])
    assert "U1" not in s.units_away and s.unit_status_ts["U1"] == now
    # Its status order is the full record's: a status record older than that is late.
    s.apply(batch_of(_unit(1, now - SEC, status="available", **IN_DONGCHENG)))
    assert s.units["U1"].status == "dispatched"


def test_units_away_from_a_district_wall_are_bounded():
    from situation.limits import Limits
    s = scoped("110101")
    s.limits = Limits(max_units=10)
    now = s.clock.now_ms()
    for i in range(50):
        s.apply(batch_of(_unit(i, now, unit_id=f"U{i}", **IN_CHAOYANG)))
    assert len(s.units_away) == 10 and "U49" in s.units_away and "U0" not in s.units_away


def test_snapshot_and_restore_keep_both_orders():
    clock = ManualClock(NOW + 30 * SEC)
    s = Situation(clock)
    s.apply(batch_of(_unit(0, NOW, status="dispatched", case_id="C1")))
    s.apply(batch_of(typed_pos(0, NOW + 10 * SEC, lat=39.95)))
    snap = s.snapshot()
    s.apply(batch_of(_unit(1, NOW + 20 * SEC, status="available", lat=39.90)))
    s.apply(batch_of(typed_pos(1, NOW + 30 * SEC, lat=39.99)))
    assert s.units["U1"].status == "available"
    s.restore(snap)
    assert s.unit_status_ts == {"U1": NOW} and s.unit_pos_ts == {"U1": NOW + 10 * SEC}
    assert (s.units["U1"].status, s.units["U1"].lat) == ("dispatched", 39.95)
    snap["unit_pos_ts"]["U1"] = 0                # the snapshot's dicts are its own copies
    assert s.unit_pos_ts["U1"] == NOW + 10 * SEC
    # The restored orders still rule: a status record between the two is taken, its point not.
    s.apply(batch_of(_unit(2, NOW + 5 * SEC, status="en_route", case_id="C1", lat=39.80)))
    assert (s.units["U1"].status, s.units["U1"].lat) == ("en_route", 39.95)


def test_prune_forgets_both_orders_with_the_unit():
    clock = ManualClock(NOW)
    s = Situation(clock)
    s.apply(batch_of(_unit(0, NOW)))
    s.apply(batch_of(typed_pos(0, NOW + SEC)))
    clock.advance(s.limits.unit_max_age_ms + 2 * SEC)
    s.apply(batch_of(rec("hb", src="x", seq=0, ts=clock.now_ms())))
    assert s.units == {} and s.unit_status_ts == {} and s.unit_pos_ts == {}


# ---- the dispatch service, over real sockets ----------------------------------------------
@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def test_the_dispatch_service_keeps_an_order_through_sixty_fixes(ctx, tmp_path):
    from feeds.dispatch_store import Storage
    from feeds.receiver import wait_for
    from tests.test_dispatch import NOW as DNOW, answer, start_city
    city = start_city(ctx, tmp_path / "dispatch.sqlite3")
    svc = city.svc
    try:
        console = city.client()
        assert answer(console, console.send("dispatch", case_id="C1", unit_id="U1")).result \
            == "accepted"
        city.clock.advance(60 * SEC)
        now = city.clock.now_ms()
        # A phone ahead of the service: 60 fixes, the last 4 s in the service's future (within
        # POSITION_AHEAD_MS: a fix further ahead is ordered as if 5 s ahead).
        fixes = [pos(i, now - 55 * SEC + i * SEC, lat=39.91 + i * 1e-4, speed=1.5)
                 for i in range(60)]
        for i in range(0, 60, 20):
            city.pub.send("unit.pos", fixes[i:i + 20])
        city.pub.send("unit.pos", pos(60, now, unit_id="NOT-HELD"))
        assert wait_for(lambda: svc.status()["positions"]["unknown_unit"] == 1, 5)
        st = svc.status()["positions"]
        assert (st["learned"], st["superseded"]) == (60, 0)
        held = svc.unit("U1")
        assert (held.status, held.case_id) == ("dispatched", "C1")
        assert (held.lat, held.speed) == (fixes[-1]["lat"], 1.5)
        assert held.ts == DNOW                       # the status order: the dispatch's ts
        # An old fix changes nothing; a tracker's full record older than the newest fix
        # changes the status but not the position.
        city.pub.send("unit.pos", pos(61, now - 55 * SEC, lat=1.0))
        city.pub.send("unit", record("unit", src="units", seq=99, ts=now, unit_id="U1",
                                     status="en_route", case_id="C1", lat=39.0))
        assert wait_for(lambda: svc.unit("U1").status == "en_route", 5)
        assert svc.unit("U1").lat == fixes[-1]["lat"]
        assert svc.status()["positions"]["superseded"] == 1
        # The recall still works; its record carries the newest fix, dated by the service's
        # clock (not after the phone's).
        ack = answer(console, console.send("recall", unit_id="U1"))
        assert ack.result == "accepted"
        assert city.feed.wait(lambda: any(isinstance(r, Unit) and r.status == "available"
                                          for r in city.feed.changes()))
        freed = [r for r in city.feed.changes() if isinstance(r, Unit)][-1]
        assert (freed.unit_id, freed.case_id, freed.lat) == ("U1", None, fixes[-1]["lat"])
        assert freed.ts == now + 1                   # after the tracker's record, not the fix
        # A position that only moved is saved on close (not per fix).
        city.pub.send("unit.pos", pos(62, now + 20 * SEC, unit_id="U2", lat=39.99))
        assert wait_for(lambda: svc.unit("U2").lat == 39.99, 5)
        assert svc.status()["positions"]["unsaved"] >= 1
    finally:
        for cl in city.clients:
            cl.close()
        city.feed.rx.stop()
        svc.stop()
        city.pub.close()
    stored = Storage(tmp_path / "dispatch.sqlite3")
    stored.open()
    try:
        units = stored.load().units
    finally:
        stored.close()
    assert units["U2"].lat == 39.99 and units["U2"].status == "available"
    assert units["U1"].lat == fixes[-1]["lat"]


# ---- a broker's state ---------------------------------------------------------------------
def test_a_broker_state_sends_each_units_newest_fix_after_the_units():
    from feeds.broker_state import BrokerState
    from feeds.decode import MessageDecoder
    from feeds.state_join import judge_state_reply
    st = BrokerState()
    st.absorb([b"unit", payload(record("unit", src="d", seq=0, ts=NOW, unit_id="U1",
                                       status="dispatched", case_id="C1"))])
    st.absorb([b"unit", payload(record("unit", src="d", seq=1, ts=NOW, unit_id="U2"))])
    st.absorb([b"unit.pos", payload([pos(i, NOW + i * SEC, lat=39.91 + i * 1e-3)
                                     for i in range(1, 6)])])
    st.absorb([b"unit.pos", payload(pos(6, NOW - SEC, unit_id="U2", lat=1.0))])   # older
    st.absorb([b"unit.pos", payload(pos(7, NOW + 3 * SEC, lat=2.0))])    # older than held
    assert set(st.positions) == {"U1"} and st.positions["U1"].ts == NOW + 5 * SEC
    frames_ = st.reply("r1")
    topics = frames_[2::2]
    assert topics == [b"unit", b"unit.pos"]
    reply = judge_state_reply(frames_, MessageDecoder())
    assert reply.problem is None
    # A wall joining from it shows U1 where it is now, doing what it does.
    s = Situation(ManualClock(NOW + 6 * SEC))
    s.load(reply.records)
    u = s.units["U1"]
    assert (u.status, u.case_id, u.lat, u.ts) == ("dispatched", "C1",
                                                   pytest.approx(39.915), NOW + 5 * SEC)
    assert s.rejected == {} and len(s.tracks["U1"]) == 1
    # A newer full record carries a newer position: the fix held is let go.
    st.absorb([b"unit", payload(record("unit", src="d", seq=8, ts=NOW + 9 * SEC, unit_id="U1",
                                       status="en_route", case_id="C1"))])
    assert st.positions == {} and st.status()["positions"] == 0
    # Only units it holds (bounded like them): a position of an id no unit has is counted.
    small = BrokerState(max_units=2)
    small.absorb([b"unit", payload([record("unit", src="d", seq=i, ts=NOW, unit_id=f"U{i}")
                                    for i in range(2)])])
    small.absorb([b"unit.pos", payload([pos(i, NOW + SEC, unit_id=f"U{i}") for i in range(5)])])
    assert set(small.positions) == {"U0", "U1"} and small.rejected["unknown_unit"] == 3


def test_a_late_wall_behind_a_broker_gets_the_units_newest_fixes():
    from feeds.broker import Broker
    from feeds.receiver import Receiver, wait_for
    from situation.clock import WallClock
    from tests.pubhelp import TestPublisher
    from tests.test_broker import follow, free_endpoint, NOW as wall_now
    pub = TestPublisher()
    out, state = free_endpoint(), free_endpoint()
    broker = Broker([], out, state, upstreams=[(pub.endpoint, None, None)]).start()
    receiver = None
    try:
        pub.wait_subscriber()
        t = wall_now()
        pub.send("unit", [record("unit", src="svc", seq=i, ts=t - 30 * SEC, unit_id=f"U{i}",
                                 status="dispatched", case_id=f"C{i}") for i in range(20)])
        pub.send("unit.pos", [pos(i, t - 20 * SEC + i, unit_id=f"U{i}", lat=39.95)
                              for i in range(20)])
        assert wait_for(lambda: broker.state.status()["positions"] == 20, 5)
        receiver = Receiver([out], state={out: state}, now_ms=wall_now).start()
        sit = Situation(WallClock())
        assert follow(receiver, sit, lambda: len(sit.units) == 20)
        assert all((u.status, u.lat) == ("dispatched", 39.95) for u in sit.units.values())
        assert sit.status()["rejected_total"] == 0
    finally:
        if receiver is not None:
            receiver.stop()
        broker.stop()
        pub.close()


# ---- the demo city ------------------------------------------------------------------------
def test_the_demo_city_reports_fixes_and_full_records_now_and_then():
    from feeds.demo_units import UNIT_FULL_S, UNIT_REPORT_S
    from feeds.simulator import HOUR, DemoCity
    city = DemoCity(seed=7, start_ms=T0, warmup_ms=HOUR)
    batches = city.step(T0 + 10 * 60 * SEC)
    dec = MessageDecoder()
    fixes, full = {}, {}
    for topic, recs in batches:
        out = dec.decode(frames(recs))
        assert out.rejects == [] and out.topic == topic
        for r in out.records:
            if isinstance(r, UnitPosition):
                fixes.setdefault(r.unit_id, []).append(r.ts)
            elif isinstance(r, Unit):
                full.setdefault(r.unit_id, []).append(r.ts)
    assert len(fixes) >= 100 and set(full) >= set(fixes)
    # The whole state at least every UNIT_FULL_S (at the first fix due after it; a unit whose
    # radio is lost for a few minutes is the rare exception).
    late = [uid for uid, ts in full.items()
            if any(b - a > (UNIT_FULL_S + UNIT_REPORT_S) * SEC for a, b in zip(ts, ts[1:]))]
    assert len(late) <= 2, late
    n_fix = sum(map(len, fixes.values()))
    n_full = sum(map(len, full.values()))
    assert n_fix > 3 * n_full                  # most reports are fixes
    assert all(b - a >= UNIT_REPORT_S * SEC for ts in fixes.values() for a, b in zip(ts, ts[1:]))
    # A console joining gets each unit, then its fix when newer than its record.
    snap = dict(city.snapshot())
    assert len(snap["unit"]) >= 100
    assert {p.unit_id for p in snap["unit.pos"]} <= {u.unit_id for u in snap["unit"]}
    topics = [topic for topic, _ in city.snapshot()]
    assert topics.index("unit") + 1 == topics.index("unit.pos")


def test_a_wall_on_the_demo_agrees_with_the_dispatch_service(ctx, tmp_path):
    """The demo city, its dispatch service and a wall over real sockets: the city reports fixes
    while the service dispatches its units, and the wall holds every unit in the status and
    case the service holds."""
    from feeds.dispatch_client import DispatchClient
    from feeds.dispatch_service import DispatchService
    from feeds.receiver import Receiver, wait_for
    from feeds.schema import UnitPosition as Pos
    from feeds.simulator import HOUR, DemoCity, start_in_thread
    from tests.test_dispatch import answer
    start = T0 + 10 * HOUR
    clock = ManualClock(start)
    city = DemoCity(seed=5, start_ms=start, warmup_ms=2 * HOUR)
    demo, orders, feed = ("inproc://demo-city", "inproc://demo-orders", "inproc://demo-feed")
    svc = DispatchService([demo], orders, feed, tmp_path / "d.sqlite3", now_ms=clock.now_ms,
                          context=ctx).start()
    running = start_in_thread(demo, city=city, now_ms=clock.now_ms, context=ctx, follow=feed)
    wall_rx = Receiver([demo, feed], context=ctx).start()
    wall = Situation(clock)
    client = DispatchClient(orders, "console-1", context=ctx)
    fixes = 0

    def pull():
        nonlocal fixes
        batch, heard = wall_rx.drain()
        fixes += sum(isinstance(r, Pos) for r in batch.records)
        wall.apply(batch, heard)

    def agree() -> bool:
        pull()
        svc_units = {u.unit_id: u for u in (svc.unit(k) for k in list(wall.units)) if u}
        return len(svc_units) >= 100 and all(
            (wall.units[k].status, wall.units[k].case_id) == (u.status, u.case_id)
            for k, u in svc_units.items())
    try:
        assert wait_for(lambda: (pull(), len(wall.units) >= 100
                                 and svc.status()["units"] >= 100)[1], 10)
        # Dispatch free units to open cases the city has not sent anyone to.
        sent = {}
        for case in [c for c in city.cases.values() if c.status in ("registered", "reported")]:
            free = [u for u in city.units.values() if u.status == "available"
                    and u.id not in sent.values()]
            if not free or len(sent) >= 3:
                break
            ack = answer(client, client.send("dispatch", case_id=case.id, unit_id=free[0].id))
            if ack.result == "accepted":
                sent[case.id] = free[0].id
        assert sent
        for _ in range(36):                          # three minutes of the city, 5 s at a time
            clock.advance(5 * SEC)
            assert wait_for(lambda: (pull(), city.t >= clock.now_ms() - SEC)[1], 10)
        assert wait_for(agree, 10), "the wall and the service disagree"
        for cid, uid in sent.items():
            assert wall.units[uid].case_id == cid and wall.units[uid].status in (
                "dispatched", "en_route", "on_scene")
            assert wall.unit_pos_ts[uid] >= wall.unit_status_ts[uid]
        assert fixes > 500 and svc.status()["positions"]["learned"] > 500
        st = wall.status()
        # (A wall subscribing while the city sends another subscriber its snapshot may hear
        # that snapshot's fixes before its units — counted as unknown_unit, nothing else.)
        assert set(st["rejected"]) <= {"unknown_unit"}, st["rejected"]
        assert st["stale_units"] <= 10, st["stale_units"]
    finally:
        client.close()
        wall_rx.stop()
        running.stop.set()
        running.thread.join(5)
        svc.stop()


def test_a_fix_far_ahead_of_the_clock_is_shown_but_cannot_pin_the_unit():
    """One fix from a phone whose clock runs ten minutes fast: shown, but ordered as if at
    most 5 s ahead (feeds.bounds.POSITION_AHEAD_MS), so the next real fixes move the unit and a
    silent unit still goes stale."""
    from feeds.bounds import POSITION_AHEAD_MS
    clock = ManualClock(NOW)
    s = Situation(clock)
    s.apply(batch_of(_unit(0, NOW, status="dispatched", case_id="C1")))
    s.apply(batch_of(typed_pos(0, NOW + 590 * SEC, lat=39.95)))
    assert s.units["U1"].lat == 39.95 and s.unit_pos_ts["U1"] == NOW + POSITION_AHEAD_MS
    clock.advance(POSITION_AHEAD_MS + SEC)
    s.apply(batch_of(typed_pos(1, clock.now_ms(), lat=39.91)))
    assert s.units["U1"].lat == 39.91 and s.units["U1"].status == "dispatched"
    clock.advance(UNIT_STALE_MS + SEC)
    assert s.unit_stale(s.units["U1"])

"""Hostile review of issue #16 (sources, unit.pos, frames). Tests that fail name real bugs."""
from __future__ import annotations

import inspect

import msgspec
import pytest

from feeds.batch import Batch
from feeds.broker_state import BrokerState
from feeds.crs import GCJ02, WGS84, convert
from feeds.demo_day import write_demo_day
from feeds.districts import DistrictLocator
from feeds.recording import read_recording
from feeds.schema import UnitPosition, frames
from situation import replay as replay_mod
from situation.clock import ManualClock
from situation.replay import Replay, ReplayClock
from situation.store import Situation
from tests.districthelp import IN_CHAOYANG, IN_DONGCHENG, scoped
from tests.pubhelp import batch_of, rec, record

T0 = 1_795_449_600_000
NOW = T0 + 60_000
SEC = 1_000


def _unit(seq, ts, **fields):
    return rec("unit", src="dispatch", seq=seq, ts=ts, **fields)


def _pos(seq, ts, unit_id="U1", src="gps", **fields) -> UnitPosition:
    base = {"v": 1, "src": src, "seq": seq, "ts": ts, "unit_id": unit_id,
            "lat": 39.91, "lon": 116.40}
    base.update(fields)
    return msgspec.convert(base, UnitPosition)


# ---- (b) position-only reports ---------------------------------------------------------------
def test_a_fix_dated_ten_minutes_ahead_does_not_freeze_the_unit_for_ten_minutes():
    """A phone with a bad clock sends one fix dated +590 s (inside the 600 s tolerance). Every
    real fix after it is dropped as 'superseded' for ten minutes: the unit is frozen on the map
    while it moves, and (its merged ts being in the future) never goes stale either. The
    dispatch service has the same pin (_held_position_ts only discounts beyond the tolerance)."""
    clock = ManualClock(NOW)
    s = Situation(clock)
    s.apply(batch_of(_unit(0, NOW, status="dispatched", case_id="C1")))
    s.apply(batch_of(_pos(0, NOW + 590 * SEC, lat=39.95)))          # one bad fix
    for i in range(1, 31):                                           # 30 s of real fixes
        clock.advance(SEC)
        s.apply(batch_of(_pos(i, clock.now_ms(), lat=39.91 + i * 1e-4)))
    assert s.units["U1"].lat == pytest.approx(39.91 + 30 * 1e-4), \
        "real fixes ignored after one future-dated fix"


def test_record_and_fix_with_equal_ts_give_the_same_picture_in_either_order():
    def run(order):
        s = Situation(ManualClock(NOW))
        s.apply(batch_of(_unit(0, NOW - 5 * SEC, status="dispatched", case_id="C1")))
        for r in order:
            s.apply(batch_of(r))
        u = s.units["U1"]
        return (u.status, u.lat, u.ts)
    a = _unit(1, NOW, status="on_scene", case_id="C1", lat=39.92)
    b = _pos(0, NOW, lat=39.93)
    assert run([a, b]) == run([b, a])


def test_snapshot_restore_keeps_units_away_and_they_come_back_the_same():
    s = scoped("110101")
    now = s.clock.now_ms()
    s.apply(batch_of(_unit(0, now, status="dispatched", case_id="C1", **IN_DONGCHENG)))
    s.apply(batch_of(_pos(0, now + SEC, **IN_CHAOYANG)))
    assert "U1" in s.units_away
    snap = s.snapshot()
    s.apply(batch_of(_pos(1, now + 2 * SEC, **IN_DONGCHENG)))       # back
    assert "U1" in s.units and "U1" not in s.units_away
    s.restore(snap)
    assert "U1" not in s.units and s.units_away["U1"][0].status == "dispatched"
    s.apply(batch_of(_pos(1, now + 2 * SEC, **IN_DONGCHENG)))
    assert s.units["U1"].status == "dispatched" and s.units["U1"].case_id == "C1"
    assert snap["units_away"]["U1"][0].status == "dispatched"        # the snapshot untouched


def test_a_unit_away_longer_than_the_age_limit_is_not_resurrected_by_a_fix():
    """units_away is never aged out: a unit that left a district wall 31 days ago (longer than
    limits.unit_max_age_ms, after which the wall forgets any unit) comes back by one fix with
    its month-old status and case."""
    s = scoped("110101")
    now = s.clock.now_ms()
    s.apply(batch_of(_unit(0, now, status="dispatched", case_id="C1", **IN_DONGCHENG)))
    s.apply(batch_of(_pos(0, now + SEC, **IN_CHAOYANG)))
    later = now + s.limits.unit_max_age_ms + 86_400_000
    s.clock.set(later)
    s.apply(batch_of(rec("hb", src="x", seq=0, ts=later)))           # a prune runs
    s.apply(batch_of(_pos(1, later, **IN_DONGCHENG)))
    assert "U1" not in s.units, "a month-old dispatch came back from units_away"


def test_broker_state_positions_of_unheld_units_cannot_crowd_out_real_ones():
    """BrokerState keeps a unit.pos for a unit it does not hold (unit is None) and never prunes
    positions: a feed of positions for ids that are no unit (a misconfigured tracker, a typo'd
    roster) fills the positions table to max_units, and from then on every real unit's newest
    fix is refused — a late-joining wall never gets it."""
    st = BrokerState(max_units=10)
    for i in range(10):
        st.absorb(frames(_pos(i, T0 + i, unit_id=f"GHOST{i}", src="trk")))
    st.absorb(frames(_unit(0, T0, status="dispatched", case_id="C1")))
    st.absorb(frames(_pos(20, T0 + 5 * SEC, src="trk", lat=39.95)))
    assert "U1" in st.positions, f"refused: {dict(st.refused_ids)}"


# ---- (c) frames ------------------------------------------------------------------------------
class _Snap:
    def __init__(self, cases, units):
        self.cases, self.units, self.seq = cases, units, 7


class _Client:
    def __init__(self, snap):
        self._snap = snap

    def snapshot(self, timeout_s):
        return self._snap


def test_join_mid_shift_converts_the_services_snapshot_once_on_a_wgs84_wall():
    from ui.session import join_mid_shift
    s = Situation(ManualClock(NOW), locator=DistrictLocator(crs=WGS84))
    u = _unit(0, NOW, status="available", lat=39.91, lon=116.40)
    c = rec("case", src="dispatch", seq=1, ts=NOW, lat=39.92, lon=116.41)
    assert join_mid_shift(_Client(_Snap([c], [u])), s, WGS84) == 7
    want_u = convert(39.91, 116.40, GCJ02, WGS84)
    want_c = convert(39.92, 116.41, GCJ02, WGS84)
    assert (s.units["U1"].lat, s.units["U1"].lon) == pytest.approx(want_u, abs=1e-9)
    assert (s.cases["C1"].lat, s.cases["C1"].lon) == pytest.approx(want_c, abs=1e-9)
    # The district is found on WGS-84 outlines: the same as the GCJ-02 wall's.
    g = Situation(ManualClock(NOW))
    join_mid_shift(_Client(_Snap([c], [u])), g, GCJ02)
    assert s.cases["C1"].district == g.cases["C1"].district is not None


def test_open311_of_a_wgs84_wall_is_not_converted_again():
    from situation.open311 import open311_requests
    s = Situation(ManualClock(NOW), locator=DistrictLocator(crs=WGS84))
    w = convert(39.92, 116.41, GCJ02, WGS84)
    s.apply(batch_of(rec("case", src="f", seq=0, ts=NOW, lat=w[0], lon=w[1])))
    g = Situation(ManualClock(NOW))
    g.apply(batch_of(rec("case", src="f", seq=0, ts=NOW, lat=39.92, lon=116.41)))
    (a,), (b,) = open311_requests(s), open311_requests(g)
    assert a["lat"] == pytest.approx(w[0], abs=1e-9) and a["long"] == pytest.approx(w[1], abs=1e-9)
    assert (a["lat"], a["long"]) == pytest.approx((b["lat"], b["long"]), abs=1e-6)


def test_the_dispatch_service_can_be_told_a_sources_frame():
    """A wall takes '--feed EP --feed-crs wgs84'; the dispatch service learning from the same
    feed (it learns positions now, and republishes them in every unit record) has no way to be
    told: DispatchService builds its Receiver with no crs, so a WGS-84 tracker's fixes are
    held as GCJ-02 and every unit record it publishes puts the unit ~500 m off."""
    from feeds.dispatch_service import DispatchService
    params = inspect.signature(DispatchService.__init__).parameters
    assert any("crs" in p or "frame" in p for p in params), sorted(params)


# ---- (a) the replay as a source ----------------------------------------------------------------
def _picture(s: Situation) -> dict:
    return {"cases": dict(s.cases), "units": dict(s.units), "sensors": dict(s.sensors),
            "accepted": s.records_accepted, "rejected": dict(s.rejected), "gaps": s.gaps,
            "pos_ts": dict(s.unit_pos_ts), "status_ts": dict(s.unit_status_ts)}


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    path = tmp_path_factory.mktemp("rv16") / "day.mcap"
    write_demo_day(path, hours=0.25, seed=16, start_ms=T0)
    return path


def _replay(path, every=None, monkeypatch=None):
    if every is not None:
        monkeypatch.setattr(replay_mod, "KEYFRAME_EVERY", every)
    rec_ = read_recording(path)
    clock = ReplayClock(rec_.start_ms)
    clock.pause(True)
    return Replay(rec_, Situation(clock))


def _straight(path, t_ms):
    rp = _replay(path)
    t = rp.start_ms
    rp.advance()
    while t < t_ms:
        t = min(t + 7_000, t_ms)
        rp.clock.set(t)
        rp.advance()
    return _picture(rp.situation)


def _drain(rp, times):
    """As the bridge: one take and one apply per tick."""
    for t in times:
        rp.clock.set(t)
        rp.situation.apply(rp.take())


def test_play_by_takes_then_seek_back_and_forward_equals_a_straight_run(day, monkeypatch):
    rp = _replay(day, every=400, monkeypatch=monkeypatch)
    assert len(rp.recording) > 4 * rp.keyframe_every
    end = rp.end_ms
    ticks = list(range(rp.start_ms, end, 3_000)) + [end] * 50
    _drain(rp, ticks)
    assert rp.pos == len(rp.recording)
    assert len(rp._keyframes) > 3
    for t in (rp.start_ms + (end - rp.start_ms) // 3, rp.start_ms + (end - rp.start_ms) // 2,
              end - 1_000):
        rp.seek(t)
        assert _picture(rp.situation) == _straight(day, t), t
    t = rp.start_ms + 60_000
    rp.seek(t)
    rp.step(120_000)
    assert _picture(rp.situation) == _straight(day, t + 120_000)


def test_a_loop_by_takes_equals_a_straight_run_after_the_wrap(day, monkeypatch):
    rp = _replay(day, every=400, monkeypatch=monkeypatch)
    a, b = rp.start_ms + 100_000, rp.start_ms + 400_000
    rp.set_loop(a, b)
    _drain(rp, range(rp.start_ms, b, 2_000))
    rp.clock.set(b + 10)
    batch = rp.take()                  # the wrap
    assert batch.rebuilt is not None
    rp.situation.apply(batch)
    _drain(rp, range(a + 2_000, a + 90_000, 2_000))
    assert _picture(rp.situation) == _straight(day, rp.clock.now_ms())


def test_no_keyframe_is_taken_of_a_batch_the_consumer_did_not_apply(day, monkeypatch):
    """take() takes the keyframe for a boundary at the NEXT take, assuming the consumer applied
    the batch that ended there. When that apply raised (the bridge catches it as a fault and
    goes on), the keyframe is a picture missing that batch, and every later seek through it —
    and every loop wrap — rebuilds the wrong picture, for the rest of the session."""
    rp = _replay(day, every=400, monkeypatch=monkeypatch)
    every = rp.keyframe_every
    t = rp.start_ms
    while rp.pos < 2 * every + 5:
        t += 1_000
        rp.clock.set(t)
        batch = rp.take()
        if rp.pos == 2 * every:
            continue                    # this apply raised: the batch is lost
        rp.situation.apply(batch)
    target = t + 30_000
    rp.seek(rp.start_ms)                # back to the start …
    rp.seek(target)                     # … and forward past the boundary
    assert _picture(rp.situation) == _straight(day, target)


def test_a_replay_at_64x_keeps_up_with_one_take_per_tick(day):
    """The bridge takes once per 50 ms: at 64x that is 3.2 s of recording per take. take()
    now stops at keyframe boundaries too; it must still not fall behind."""
    rp = _replay(day)
    behind = []
    t = rp.start_ms
    while t < rp.end_ms:
        t += 3_200
        rp.clock.set(min(t, rp.end_ms))
        rp.situation.apply(rp.take())
        behind.append(rp.recording.index_at(rp.clock.now_ms()) - rp.pos)
    assert max(behind[-5:]) == 0


def test_a_seek_from_a_pending_boundary_leaves_no_hole_in_the_keyframes(day, monkeypatch):
    """take() stops exactly at a boundary and leaves its keyframe for the next take. A seek
    forward from there (a step, a drag) goes on with _apply_to, which keyframes only the
    boundaries it stops at — not the one it starts from — and index_step resumes from the
    furthest keyframe, so the hole is never filled: every later seek near it pays up to twice
    KEYFRAME_EVERY messages."""
    rp = _replay(day, every=400, monkeypatch=monkeypatch)
    every = rp.keyframe_every
    t = rp.start_ms
    while rp.pos < every:
        t += 500
        rp.clock.set(t)
        rp.situation.apply(rp.take())
    assert rp.pos == every and every not in rp._keyframes       # pending
    rp.step(600_000)
    rp.index_all()
    last = (len(rp.recording) // every) * every
    missing = [k for k in range(0, last + 1, every) if k not in rp._keyframes]
    assert missing == []


def test_a_wgs84_replay_converts_once_and_seeks_equal_a_straight_run(day):
    def run(display, t_ms, seek_from=None):
        rec_ = read_recording(day)
        clock = ReplayClock(rec_.start_ms)
        clock.pause(True)
        s = Situation(clock, locator=DistrictLocator(crs=display))
        rp = Replay(rec_, s, display_crs=display)
        if seek_from is not None:
            rp.seek(seek_from)
            rp.index_all()
        rp.seek(t_ms)
        return rp.situation
    rec_ = read_recording(day)
    t = rec_.start_ms + 300_000
    g = run(GCJ02, t)
    w = run(WGS84, t)
    w2 = run(WGS84, t, seek_from=rec_.end_ms)
    assert _picture(w) == _picture(w2)
    for uid, u in g.units.items():
        want = convert(u.lat, u.lon, GCJ02, WGS84)
        assert (w.units[uid].lat, w.units[uid].lon) == pytest.approx(want, abs=1e-9)
    for cid, c in g.cases.items():
        assert w.cases[cid].district == c.district


class _Learner:
    """The dispatch service's learning half on its own (no sockets)."""
    def __init__(self, now):
        from collections import Counter
        self.units, self.cases, self._unit_pos_ts = {}, {}, {}
        self._moved_units, self._dirty_units, self._dirty_cases = set(), set(), set()
        self.counts, self.learn_refused = Counter(), Counter()
        self._version, self.src, self.future_ms = 0, "dispatch", 600_000
        self.max_units = self.max_cases = 100
        self.source_auth_failed = Counter()
        self.t = now

    def now_ms(self):
        return self.t


def test_the_dispatch_service_is_not_frozen_by_one_future_fix_either():
    from feeds.dispatch_learning import SourceLearning

    class L(_Learner, SourceLearning):
        pass
    svc = L(NOW)
    svc._learn_batch(batch_of(rec("unit", src="city", seq=0, ts=NOW, status="dispatched",
                                   case_id="C1")))
    svc._learn_batch(batch_of(_pos(0, NOW + 590 * SEC, lat=39.95)))
    for i in range(1, 31):
        svc.t += SEC
        svc._learn_batch(batch_of(_pos(i, svc.t, lat=39.91 + i * 1e-4)))
    assert svc.units["U1"].lat == pytest.approx(39.91 + 30 * 1e-4)


def test_one_source_that_raises_does_not_lose_what_the_others_handed_over():
    """take_all merges in order; a source whose take() raises (a bug: the contract says it never
    raises for a sender, not that it cannot) throws away the batches the sources before it
    already handed over — a receiver's records are gone from its queue and never applied."""
    from feeds.source import take_all

    class Good:
        name, endpoints = "good", []

        def take(self):
            return batch_of(_unit(0, NOW))

    class Bad:
        name, endpoints = "bad", []

        def take(self):
            raise RuntimeError("bug")
    from feeds.faults import Faults
    s = Situation(ManualClock(NOW))
    good = Good()
    faults = Faults()
    try:
        batch = take_all([good, Bad()], faults)
    except RuntimeError:
        batch = Batch()
    s.apply(batch)
    assert "U1" in s.units, "the good source's records were lost with the bad one's error"
    assert "source bad" in faults.snapshot()          # and the wall says which source broke


def test_the_dispatch_services_position_order_survives_a_restart(tmp_path):
    """The service writes a moved unit to SQLite with the fix's position; the fix's ts goes
    with it (meta ``pos_ts:ID``), so after a restart a fix older than the one it shows (a late
    copy, a second broker) does not move the unit back. Real sockets, a real SQLite file."""
    import zmq

    from feeds.dispatch_service import DispatchService
    from feeds.receiver import wait_for
    from tests.pubhelp import TestPublisher, record
    ctx = zmq.Context()
    db = tmp_path / "d.sqlite3"
    clock = [NOW + 30 * SEC]

    def service(pub):
        return DispatchService([pub.endpoint], "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", db,
                               now_ms=lambda: clock[0], context=ctx).start()
    pub = TestPublisher(ctx)
    svc = service(pub)
    try:
        pub.wait_subscriber()
        pub.send("unit", record("unit", src="city", seq=0, ts=NOW, status="dispatched",
                                case_id="C1"))
        assert wait_for(lambda: svc.unit("U1") is not None, 5)
        pub.send("unit.pos", {"v": 1, "src": "gps", "seq": 0, "ts": NOW + 20 * SEC,
                              "unit_id": "U1", "lat": 39.95, "lon": 116.40})
        assert wait_for(lambda: svc.unit("U1").lat == 39.95, 5)
    finally:
        svc.stop()                                   # writes the moved unit and its fix's ts
        pub.close()
    pub = TestPublisher(ctx)
    again = service(pub)
    try:
        assert again.unit("U1").lat == 39.95 and again.unit("U1").status == "dispatched"
        pub.wait_subscriber()
        pub.send("unit.pos", {"v": 1, "src": "gps", "seq": 1, "ts": NOW + 10 * SEC,
                              "unit_id": "U1", "lat": 39.80, "lon": 116.40})   # an older fix
        assert wait_for(lambda: again.status()["positions"]["superseded"] == 1, 5)
        assert again.unit("U1").lat == 39.95
    finally:
        again.stop()
        pub.close()
        ctx.destroy(linger=0)

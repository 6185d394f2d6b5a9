"""The situation: upserts where the newer ts wins, staleness and health on its clock,
district from the point, gaps and restarts per source."""
from __future__ import annotations

from feeds.batch import Batch, SeqTracker
from situation.clock import ManualClock
from situation.store import Situation
from tests.pubhelp import batch_of, rec

T0 = 1_700_000_000_000




def test_newer_ts_wins_and_late_older_record_changes_nothing():
    s = Situation(ManualClock(T0))
    s.apply(batch_of(rec("case", seq=0, ts=T0 + 10, status="dispatched")))
    s.apply(batch_of(rec("case", seq=1, ts=T0 + 5, status="registered")))     # late, older
    assert s.cases["C1"].status == "dispatched"
    assert s.superseded == 1
    s.apply(batch_of(rec("case", seq=2, ts=T0 + 20, status="on_scene")))
    assert s.cases["C1"].status == "on_scene"
    # Equal ts: the same state sent again is taken (idempotent), nothing breaks.
    s.apply(batch_of(rec("case", seq=3, ts=T0 + 20, status="on_scene")))
    assert s.cases["C1"].status == "on_scene"


def test_unit_stale_after_60_seconds_of_the_situation_clock():
    clock = ManualClock(T0)
    s = Situation(clock)
    s.apply(batch_of(rec("unit", ts=T0)))
    unit = s.units["U1"]
    clock.advance(60_000)
    assert not s.unit_stale(unit)
    clock.advance(1)
    assert s.unit_stale(unit)
    assert s.status()["stale_units"] == 1


def test_district_found_from_point_when_missing():
    s = Situation(ManualClock(T0))
    s.apply(batch_of(rec("case", lat=39.9087, lon=116.3975, district=None),        # Tiananmen
                     rec("case", case_id="C2", lat=39.92, lon=116.48),              # Chaoyang
                     rec("case", case_id="C3", lat=10.0, lon=10.0),                 # far away
                     rec("case", case_id="C4", lat=39.92, lon=116.48, district="110108")))
    assert s.cases["C1"].district == "110101"
    assert s.cases["C2"].district == "110105"
    assert s.cases["C3"].district is None            # held and listed, no district
    assert s.cases["C4"].district == "110108"        # a district the record gives is kept


def test_gap_and_restart_detection():
    b = Batch()
    t = SeqTracker()
    for seq in (0, 1, 2, 5, 6, 2, 3):
        t.observe("p", seq, b)
    assert b.gaps == [("p", 3, 5)]
    assert b.restarts == [("p", 6, 2)]
    s = Situation(ManualClock(T0))
    s.apply(b)
    h = s.sources["p"]
    assert (h.gaps, h.missed, h.restarts, h.last_seq) == (1, 2, 1, 3)


def test_source_down_after_3_seconds_without_a_message_and_up_again():
    clock = ManualClock(T0)
    s = Situation(clock)
    s.apply(batch_of(rec("hb", src="p", seq=0, ts=T0)))
    assert s.source_up("p")
    clock.advance(3_000)
    assert s.source_up("p")
    clock.advance(1)
    assert not s.source_up("p")
    assert s.status()["sources"]["p"]["up"] is False
    s.apply(batch_of(rec("hb", src="p", seq=1, ts=T0 + 3_001)))
    assert s.source_up("p")


def test_open_and_overdue_on_the_clock():
    clock = ManualClock(T0)
    s = Situation(clock)
    s.apply(batch_of(rec("case", case_id="A", due_at=T0 + 1000),
                     rec("case", case_id="B", status="closed", due_at=None),
                     rec("case", case_id="C", status="rejected", due_at=None)))
    assert [c.case_id for c in s.open_cases()] == ["A"]
    assert not s.is_overdue(s.cases["A"])
    clock.advance(1001)
    assert s.is_overdue(s.cases["A"])
    st = s.status()
    assert (st["cases"], st["open_cases"], st["overdue_cases"]) == (3, 1, 1)


def test_sensor_history_is_bounded():
    s = Situation(ManualClock(T0), sensor_history=5)
    for i in range(20):
        s.apply(batch_of(rec("sensor.air", seq=i, ts=T0 + i, metrics={"pm25": float(i)})))
    hist = s.sensor_history["S1"]
    assert len(hist) == 5
    assert hist[-1] == (T0 + 19, {"pm25": 19.0})
    assert s.sensors["S1"].district == "110101"


def test_link_health_runs_in_real_seconds_whatever_the_city_speed():
    """A demo at 600x must not show its feed down between two drains 0.1 s apart (60 s of
    city time), while a unit's staleness still runs on the city's clock."""
    from feeds.batch import Batch
    from situation.clock import ScaledClock
    from tests.pubhelp import record
    from feeds.schema import Heartbeat, Unit
    import msgspec
    clock = ScaledClock(1_700_000_000_000, speed=600)
    s = Situation(clock)
    batch = Batch()
    batch.records += [msgspec.convert(record("hb", src="p", seq=0, ts=clock.now_ms()), Heartbeat),
                      msgspec.convert(record("unit", src="p", seq=1, ts=clock.now_ms()), Unit)]
    s.apply(batch)
    clock.set(clock.now_ms() + 120_000)             # two city minutes, no real time at all
    assert s.source_up("p")
    assert s.unit_stale(s.units["U1"])


def test_reading_level_is_the_worst_metric_level_written_out():
    """``reading_level`` is one loop for speed; it must say what the max of ``metric_level``
    over the reading's metrics says, unknown metrics and kinds, NaN and infinities included."""
    import math

    from hypothesis import given, seed, settings
    from hypothesis import strategies as st

    from situation.thresholds import THRESHOLDS, UNKNOWN, metric_level, reading_level
    kinds = st.sampled_from(sorted({k for k, _ in THRESHOLDS}) + ["other"])
    names = st.sampled_from(sorted({m for _, m in THRESHOLDS}) + ["x"])
    bounds = sorted({b for pair in THRESHOLDS.values() for b in pair})
    values = st.one_of(st.sampled_from(bounds + [math.nan, math.inf, -math.inf]),
                       st.floats(allow_nan=True, allow_infinity=True))

    @seed(18)
    @settings(max_examples=3000, deadline=None, database=None)
    @given(kinds, st.dictionaries(names, values, max_size=4))
    def same(kind, metrics):
        want = max((metric_level(kind, m, v) for m, v in metrics.items()), default=UNKNOWN)
        assert reading_level(kind, metrics) == want

    same()

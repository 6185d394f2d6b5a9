"""Bounded state: a flood of made-up sources, ids or cases costs counters, not memory for ever
(situation.limits); what nothing was heard of for long leaves the picture by the clock."""
from __future__ import annotations

import msgspec

from feeds.batch import Batch, SeqTracker
from feeds.schema import Case, Heartbeat, SensorReading, Unit
from situation.clock import ManualClock
from situation.limits import DAY_MS, Limits
from situation.store import CLOSED_KEEP_MS, Situation
from tests.pubhelp import record

T0 = 1_800_000_000_000


def rec(topic: str, **fields):
    rtype = {"case": Case, "unit": Unit, "hb": Heartbeat}.get(topic, SensorReading)
    return msgspec.convert(record(topic, **fields), rtype)


def batch(records=(), rejects=None) -> Batch:
    b = Batch(records=list(records))
    for key, n in (rejects or {}).items():
        b.rejects[key] += n
    b.heard |= {src for src, _ in (rejects or {})}
    return b


def test_sources_past_the_cap_are_counted_together():
    s = Situation(ManualClock(T0), limits=Limits(max_sources=10))
    s.apply(batch([rec("hb", src=f"pub{i}", ts=T0) for i in range(25)]))
    s.apply(batch(rejects={(f"bad{i}", "not_json"): 1 for i in range(100)}))
    assert len(s.sources) == 10
    status = s.status()
    assert len(status["sources"]) == 10
    assert status["too_many_sources"] == {"records": 15, "rejected": 100}
    assert status["rejected"] == {"not_json": 100}         # every refusal still counted
    assert status["records_accepted"] == 25


def test_a_flood_of_refused_sources_does_not_grow_anything():
    """200,000 made-up src values, every one in a refused record: the situation follows 1,000
    and counts the rest together; the seq tracker follows 1,000 too."""
    s = Situation(ManualClock(T0))
    tracker = SeqTracker(max_sources=1_000)
    for chunk in range(200):
        b = Batch()
        for i in range(chunk * 1_000, (chunk + 1) * 1_000):
            tracker.observe(f"src{i}", 1, b)
            b.rejects[(f"src{i}", "wrong_type")] += 1
        s.apply(b)
    assert len(tracker.last) == 1_000
    assert len(s.sources) == 1_000
    assert s.status()["too_many_sources"] == {"rejected": 199_000}
    assert s.rejected["wrong_type"] == 200_000


def test_a_new_id_past_a_table_cap_is_refused_as_too_many_ids():
    s = Situation(ManualClock(T0), limits=Limits(max_units=5, max_sensors=3))
    s.apply(batch([rec("unit", src="u", ts=T0, unit_id=f"U{i}") for i in range(8)]
                  + [rec("sensor.air", src="s", ts=T0, id=f"S{i}") for i in range(4)]))
    assert len(s.units) == 5 and len(s.sensors) == 3
    assert s.rejected["too_many_ids"] == 4
    assert s.sources["u"].rejected["too_many_ids"] == 3 and s.sources["u"].records == 5
    s.apply(batch([rec("unit", src="u", ts=T0 + 1, unit_id="U0", status="on_scene")]))
    assert s.units["U0"].status == "on_scene"              # held ids still update
    assert s.status()["records_accepted"] == 5 + 3 + 1


def test_a_full_case_table_makes_room_from_closed_cases_first():
    clock = ManualClock(T0)
    s = Situation(clock, limits=Limits(max_cases=10, max_closed_cases=2))
    s.apply(batch())                                       # the minute's prune is done
    s.apply(batch([rec("case", ts=T0, case_id=f"X{i}", status="closed") for i in range(10)]))
    assert len(s.cases) == 10
    s.apply(batch([rec("case", ts=T0 + 1, case_id="NEW")]))
    assert "NEW" in s.cases and len(s.cases) == 3          # the two newest closed stay
    assert s.rejected["too_many_ids"] == 0


def test_cases_units_and_sensors_nothing_was_heard_of_leave_by_the_clock():
    clock = ManualClock(T0)
    s = Situation(clock)
    s.apply(batch([rec("case", ts=T0, case_id="OPEN"), rec("case", ts=T0, case_id="SHUT",
                                                          status="closed"),
                   rec("unit", ts=T0, unit_id="U1"), rec("sensor.air", ts=T0, id="S1")]))
    clock.advance(DAY_MS + 61_000)
    s.apply(batch([rec("case", ts=clock.now_ms(), case_id="FRESH")]))
    assert "S1" not in s.sensors and "S1" not in s.sensor_history     # a day unheard
    assert "OPEN" in s.cases and "SHUT" in s.cases and "U1" in s.units
    clock.set(T0 + CLOSED_KEEP_MS + 61_000)
    s.apply(batch())
    assert "SHUT" not in s.cases and "OPEN" in s.cases
    clock.set(T0 + 30 * DAY_MS + 61_000)
    s.apply(batch())
    assert "OPEN" not in s.cases and "U1" not in s.units and "OPEN" not in s.case_stages
    assert s.status()["aged_out"] == 3                     # the sensor, the unit, the case


def test_the_report_log_keeps_at_most_its_cap():
    s = Situation(ManualClock(T0), limits=Limits(max_reports=100))
    for i in range(5):
        s.apply(batch([rec("case", ts=T0, case_id=f"C{i}-{j}", status="closed")
                       for j in range(50)]))
    assert len(s.reports) == 100 and "C4-49" in s.reports and "C0-0" not in s.reports


def test_a_snapshot_record_that_would_be_refused_on_the_feed_is_refused_when_loaded():
    s = Situation(ManualClock(T0))
    s.load([rec("case", ts=2**62, case_id="FROZEN"), rec("case", ts=T0, case_id="OK"),
            rec("unit", ts=T0, unit_id="U\x00")])
    assert set(s.cases) == {"OK"} and not s.units
    assert dict(s.rejected) == {"out_of_range": 1, "bad_text": 1}


def test_a_feed_clock_follows_one_source_only():
    """--clock feed: another publisher's heartbeats dated ahead cannot push the clock (records
    are judged by it: whoever moves it could date anything)."""
    from situation.clock import FeedClock
    clock = FeedClock()
    s = Situation(clock)
    s.apply(batch([rec("hb", src="city", ts=T0)]))
    for i in range(50):
        s.apply(batch([rec("hb", src="evil", ts=T0 + (i + 1) * 540_000)]))
    assert clock.source == "city" and clock.now_ms() < T0 + 60_000
    s.apply(batch([rec("hb", src="city", ts=T0 + 120_000)]))
    assert clock.now_ms() >= T0 + 120_000

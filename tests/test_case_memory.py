"""Issue #17 part 4: what a held case costs, without losing what it held — the decoder's
bounded intern table, the compact stage history (``situation.case_times``), the compact report
log, snapshot/restore of them. No timing; memory only as a generous tracemalloc bound."""
from __future__ import annotations

import tracemalloc

import msgspec

from feeds import decode
from feeds.batch import Batch
from feeds.decode import MAX_INTERNED, MessageDecoder, intern_str
from feeds.schema import Case
from situation.case_times import StageTable
from situation.clock import ManualClock
from situation.reports import Report, ReportLog
from situation.store import MAX_FLAGS_SEEN, Situation

T = 1_795_449_600_000
MIN = 60_000


def case(cid: str, ts: int, status: str = "reported", **kw) -> Case:
    fields = dict(v=1, src="t", seq=0, ts=ts, case_id=cid, status=status,
                  category="event.street_order.vending", title="占道经营", description="市民反映",
                  lat=39.9, lon=116.4, source="citizen", priority=2, reported_at=T)
    fields.update(kw)
    return Case(**fields)


def test_intern_table_bounded_under_a_million_distinct_values():
    for n in range(1_000_000):
        intern_str(f"v{n}")
    assert len(decode._INTERNED) <= MAX_INTERNED
    long = "x" * 1_000                         # never kept, however often it comes
    assert intern_str(long) is long and long not in decode._INTERNED


def test_decoded_records_share_repeating_strings_and_stay_equal():
    dec = MessageDecoder(now_ms=lambda: T + MIN)
    recs = [case(f"C{i}", T + i, flags=["rework"]) for i in range(3)]
    payload = msgspec.json.encode(recs)
    a = dec.decode([b"case", payload]).records
    b = dec.decode([b"case", payload]).records
    assert a == recs == b                         # the same values
    assert a[0].category is b[2].category and a[1].status is b[1].status
    assert a[0].src is b[0].src and a[0].flags[0] is b[1].flags[0]


def test_stage_table_reads_like_the_dict_of_dicts_it_was():
    table, plain = StageTable(), {}
    steps = [("A", "reported", 1), ("A", "dispatched", 5), ("A", "reported", 9),
             ("B", "closed", 3), ("A", "closed", 7), ("C", "odd_status", 2), ("C", "reported", 4),
             ("C", "odd_status", 8), ("D", "dispatched", -5)]
    for cid, status, ts in steps:
        table.note(cid, status, ts)
        plain.setdefault(cid, {}).setdefault(status, ts)
    assert table == plain and dict(table.items()) == plain
    assert list(table["A"]) == ["reported", "dispatched", "closed"]       # first-seen order
    assert table.get("A") == plain["A"] and table.get("Z") is None and table.get("Z", {}) == {}
    assert set(table) == set(plain) and len(table) == 4 and "B" in table and "Z" not in table
    assert sorted(map(sorted, table.values())) == sorted(map(sorted, plain.values()))
    copy = table.copy()
    table["A"]["reported"] = 99                   # a value read is the reader's own
    assert table == plain
    assert table.pop("B") == {"closed": 3} and table.pop("B", None) is None and "B" in copy
    assert StageTable(plain) == plain


def _day(s: Situation) -> None:
    recs = []
    for i in range(200):
        recs.append(case(f"C{i}", T + i))
        if i % 3 == 0:
            recs.append(case(f"C{i}", T + 10 * MIN + i, "dispatched", unit_id="U1",
                             flags=["escalated"] if i % 9 == 0 else []))
        if i % 6 == 0:
            recs.append(case(f"C{i}", T + 60 * MIN + i, "closed"))
    recs.sort(key=lambda c: c.ts)
    s.apply(Batch(records=recs))


def test_stage_history_as_before_and_snapshot_restores_an_equal_picture():
    s = Situation(ManualClock(T + 2 * 60 * MIN))
    _day(s)
    assert s.case_stages["C0"] == {"reported": T, "dispatched": T + 10 * MIN,
                                   "closed": T + 60 * MIN}
    assert s.case_stages["C1"] == {"reported": T + 1}
    assert s.case_flags["C0"] == {"escalated": T + 10 * MIN} and "C3" not in s.case_flags
    snap = s.snapshot()
    before = (dict(s.case_stages.items()), list(s.reports), set(s.reports._ids), dict(s.cases))
    s.apply(Batch(records=[case("NEW", T + 100 * MIN), case("C1", T + 101 * MIN, "closed")]))
    assert "NEW" in s.reports and s.case_stages["C1"]["closed"] == T + 101 * MIN
    s.restore(snap)
    assert (dict(s.case_stages.items()), list(s.reports), set(s.reports._ids),
            dict(s.cases)) == before
    assert "NEW" not in s.reports and "closed" not in s.case_stages["C1"]
    s.apply(Batch(records=[case("NEW", T + 100 * MIN)]))     # the snapshot is untouched
    assert "NEW" not in snap["reports"] and "NEW" not in snap["case_stages"]


def test_report_log_order_bound_discard_prune():
    log = ReportLog(keep_ms=1_000, max_entries=3)
    for i in range(5):
        assert log.add(f"C{i}", Report(100 + i, None, "x"), 100 + i)
    assert not log.add("C4", Report(104, None, "x"), 104)          # once
    assert [r.reported_at for r in log] == [102, 103, 104] and "C1" not in log
    log.discard("C3")
    assert [r.reported_at for r in log] == [102, 104] and "C3" not in log
    assert len(log._ids) == len(log._entries) == len(log._logged) == len(log._order) == 2
    log.prune(1_103)
    assert [r.reported_at for r in log] == [104] and list(log._order) == ["C4"]


def test_flags_per_case_bounded():
    s = Situation(ManualClock(T + MIN))
    s.apply(Batch(records=[case("F", T + k, flags=[f"f{k}-{j}" for j in range(8)])
                           for k in range(100)]))
    assert len(s.case_flags["F"]) == MAX_FLAGS_SEEN


def test_bytes_per_case_generous_bound():
    dec = MessageDecoder(now_ms=lambda: T + MIN)
    payloads = [msgspec.json.encode([case(f"C{j}-{i}", T + i, district=None,
                                          description=f"市民反映：{i}号附近有占道经营，请尽快处理。")
                                     for i in range(100)]) for j in range(50)]
    s = Situation(ManualClock(T + MIN))
    s.apply(Batch(records=dec.decode([b"case", payloads[0]]).records))      # warm
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for p in payloads[1:]:
            s.apply(Batch(records=dec.decode([b"case", p]).records))
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    per_case = grown / (49 * 100)
    assert per_case < 1_200, per_case        # ~800 B measured; ~1,500 before issue #17


def test_track_behaves_as_the_bounded_deque_it_replaced():
    import bisect
    import pickle
    import random
    from collections import deque

    from situation.tracks import Track
    rng = random.Random(5)
    for maxlen in (3, 50, 3_000, None):
        d, t = deque(maxlen=maxlen), Track(maxlen=maxlen)
        ts = 1_795_449_600_000
        for _ in range(6_000):
            if rng.random() < 0.7 or not d:
                ts += rng.randrange(0, 3)              # same-ms points too
                p = (ts, 116 + rng.random(), 39 + rng.random())
                d.append(p)
                t.append(p)
            else:
                assert t.popleft() == d.popleft()
            assert len(t) == len(d) and bool(t) == bool(d)
        assert list(t) == list(d) and t == d
        if d:
            assert t[0] == d[0] and t[-1] == d[-1] and t[len(d) // 2] == d[len(d) // 2]
            mid = d[len(d) // 2][0]
            assert (bisect.bisect_right(t, mid, key=lambda p: p[0])
                    == bisect.bisect_right(d, mid, key=lambda p: p[0]))
            arr = t.as_array()
            assert arr.shape == (len(d), 3) and arr[-1].tolist() == list(d[-1])
        back = pickle.loads(pickle.dumps(t, protocol=5))
        copy = t.copy()
        assert back == t == copy and back.maxlen == t.maxlen == copy.maxlen
        t.append((ts + 10, 1.0, 2.0))
        assert copy == back != t                       # a copy is its own


def test_track_snapshot_restore():
    from feeds.schema import Unit
    s = Situation(ManualClock(T + 10 * MIN))
    s.apply(Batch(records=[Unit(v=1, src="a", seq=i, ts=T + i * 1_000, unit_id="U1",
                                callsign="巡01", kind="vehicle", status="available",
                                lat=39.9 + i * 0.001, lon=116.4) for i in range(5)]))
    snap = s.snapshot()
    before = list(s.tracks["U1"])
    assert len(before) == 5 and before[0] == (T, 116.4, 39.9)
    s.apply(Batch(records=[Unit(v=1, src="a", seq=9, ts=T + 9_000, unit_id="U1",
                                callsign="巡01", kind="vehicle", status="available",
                                lat=39.99, lon=116.4)]))
    assert len(s.tracks["U1"]) == 6 and len(snap["tracks"]["U1"]) == 5
    s.restore(snap)
    assert list(s.tracks["U1"]) == before

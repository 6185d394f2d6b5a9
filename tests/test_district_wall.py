"""District walls (``--districts 110101,…``): the situation holds only its districts' cases,
units and sensors (a case or sensor by its ``district`` field, else the located one; a unit by
where it stands), counts the rest as out of scope (never as rejects; the feed's own counts
stay whole), drops a held record that moves out, and everything computed from it follows:
supervision, heat, the duty plan with its history and roster, exports, replays; and a real
headless console holds only its districts. What the wall shows of it (the header, the panels,
the map, the peak duty chart) is in ``test_district_wall_panels.py``; the shared records and
points in ``tests/districthelp.py``."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zmq

from situation.clock import ManualClock
from situation.scope import Scope
from situation.store import Situation
from tests.districthelp import (CHAOYANG, DONGCHENG, FAR_AWAY, HAIDIAN, IN_CHAOYANG,
                                IN_DONGCHENG, IN_HAIDIAN, T0, batch_of, city_day, rec, scoped)
from tests.pubhelp import TestPublisher, record

ROOT = Path(__file__).resolve().parent.parent


# ---- the scope itself --------------------------------------------------------------------------

def test_scope_knows_its_districts_and_refuses_unknown_ones():
    s = Scope((CHAOYANG, DONGCHENG, CHAOYANG))
    assert s.adcodes == (CHAOYANG, DONGCHENG) and len(s) == 2
    assert DONGCHENG in s and HAIDIAN not in s and None not in s
    assert s.names("zh") == ["朝阳区", "东城区"] and s.names("en") == ["Chaoyang", "Dongcheng"]
    assert Scope.of(None) is None and Scope.of(()) is None
    frame = pd.DataFrame({"ts": [1, 2, 3], "district": [DONGCHENG, HAIDIAN, CHAOYANG],
                          "category": ["a", "b", "c"]})
    assert list(s.events(frame)["district"]) == [DONGCHENG, CHAOYANG]
    assert s.events(None) is None and s.codes() == [DONGCHENG, CHAOYANG]   # the city's order
    with pytest.raises(ValueError):
        Scope(("999999",))


# ---- what a district wall holds ------------------------------------------------------------------

def test_only_the_scope_is_held_by_field_else_by_located_district():
    s = scoped(DONGCHENG)
    s.apply(batch_of(
        rec("case", seq=0, case_id="CA", district=DONGCHENG, **IN_DONGCHENG),
        rec("case", seq=1, case_id="CB", district=None, **IN_DONGCHENG),      # located: in
        rec("case", seq=2, case_id="CC", district=CHAOYANG, **IN_DONGCHENG),  # the field wins
        rec("case", seq=3, case_id="CD", district=None, **IN_CHAOYANG),       # located: out
        rec("case", seq=4, case_id="CE", district=DONGCHENG, **IN_HAIDIAN),   # the field wins
        rec("case", seq=5, case_id="CF", district=None, **FAR_AWAY),          # no district
        rec("unit", seq=6, unit_id="U1", **IN_DONGCHENG),
        rec("unit", seq=7, unit_id="U2", **IN_HAIDIAN),
        rec("sensor.air", seq=8, id="S1", **IN_DONGCHENG),
        rec("sensor.air", seq=9, id="S2", district=CHAOYANG, **IN_DONGCHENG),
        rec("sensor.air", seq=10, id="S3", **IN_HAIDIAN)))
    assert set(s.cases) == {"CA", "CB", "CE"}
    assert s.cases["CB"].district == DONGCHENG
    assert set(s.units) == {"U1"} and set(s.sensors) == {"S1"}
    assert s.out_of_scope == {"case": 3, "unit": 1, "sensor": 2}
    doc = s.status()
    assert doc["scope"] == {"districts": [DONGCHENG],
                            "out_of_scope": {"case": 3, "unit": 1, "sensor": 2}}
    # Received fine: not rejects, and the source's counts are whole.
    assert doc["rejected"] == {} and doc["rejected_total"] == 0
    assert doc["records_accepted"] == 11
    assert doc["sources"]["t"]["records"] == 11 and doc["sources"]["t"]["rejected"] == 0
    assert doc["sources"]["t"]["last_seq"] == 10 and doc["gaps"] == 0
    # The whole city's wall has no scope.
    assert Situation(ManualClock(T0)).status()["scope"] is None


def test_a_record_moving_out_removes_what_was_held_and_a_late_one_changes_nothing():
    s = scoped(DONGCHENG)
    s.apply(batch_of(rec("case", seq=0, ts=T0, case_id="CM", status="dispatched",
                         flags=["supervised"], **IN_DONGCHENG),
                     rec("unit", seq=1, ts=T0, unit_id="UM", **IN_DONGCHENG),
                     rec("sensor.air", seq=2, ts=T0, id="SM", **IN_DONGCHENG)))
    assert "CM" in s.cases and "CM" in s.reports and "CM" in s.case_stages
    assert "UM" in s.units and "UM" in s.tracks and "SM" in s.sensor_history
    # A late record (older ts) saying "out" changes nothing, as any late record.
    change = s.apply(batch_of(rec("case", seq=3, ts=T0 - 5, case_id="CM", **IN_CHAOYANG),
                              rec("unit", seq=4, ts=T0 - 5, unit_id="UM", **IN_CHAOYANG)))
    assert "CM" in s.cases and "UM" in s.units and not change.cases and not change.units
    assert s.superseded == 2 and not s.out_of_scope
    # The newer ones move them out: they leave, and the panels are told.
    change = s.apply(batch_of(
        rec("case", seq=5, ts=T0 + 10, case_id="CM", status="on_scene", **IN_CHAOYANG),
        rec("unit", seq=6, ts=T0 + 10, unit_id="UM", **IN_HAIDIAN),
        rec("sensor.air", seq=7, ts=T0 + 10, id="SM", district=CHAOYANG, **IN_DONGCHENG)))
    assert not s.cases and not s.units and not s.sensors
    assert change.cases == {"CM"} and change.units == {"UM"} and change.sensors == {"SM"}
    assert "CM" not in s.reports and "CM" not in s.case_stages and "CM" not in s.case_flags
    assert "SM" not in s.sensor_history
    assert "UM" in s.tracks          # where it patrolled inside stays for coverage
    assert s.out_of_scope == {"case": 1, "unit": 1, "sensor": 1}
    assert s.aged_out == 0 and s.rejected == {}
    assert s.records_accepted == 8
    # A late copy from before it left (a second broker's, say) does not bring it back …
    change = s.apply(batch_of(
        rec("case", seq=8, ts=T0 + 5, case_id="CM", **IN_DONGCHENG),
        rec("unit", seq=9, ts=T0 + 5, unit_id="UM", **IN_DONGCHENG),
        rec("sensor.air", seq=10, ts=T0 + 10, id="SM", **IN_DONGCHENG)))
    assert not s.cases and not s.units and not s.sensors and not change.cases
    assert s.superseded == 2 + 3
    # … and nor does one for an id first seen outside.
    s.apply(batch_of(rec("case", seq=11, ts=T0 + 30, case_id="NEW", **IN_CHAOYANG),
                     rec("case", seq=12, ts=T0 + 25, case_id="NEW", **IN_DONGCHENG)))
    assert "NEW" not in s.cases
    # Coming back in: held again.
    s.apply(batch_of(rec("unit", seq=13, ts=T0 + 20, unit_id="UM", **IN_DONGCHENG)))
    assert "UM" in s.units


def test_a_snapshot_loaded_goes_through_the_same_filter():
    s = scoped(DONGCHENG, CHAOYANG)
    change = s.load([rec("case", case_id="C1", **IN_DONGCHENG),
                     rec("case", case_id="C2", **IN_CHAOYANG),
                     rec("case", case_id="C3", district=HAIDIAN, **IN_DONGCHENG),
                     rec("unit", unit_id="U1", **IN_CHAOYANG),
                     rec("unit", unit_id="U2", **IN_HAIDIAN)])
    assert set(s.cases) == {"C1", "C2"} and set(s.units) == {"U1"}
    assert change.cases == {"C1", "C2"} and change.units == {"U1"}
    assert s.out_of_scope == {"case": 1, "unit": 1} and not s.rejected
    assert s.status()["scope"]["districts"] == [DONGCHENG, CHAOYANG]


def test_a_keyframe_neither_holds_nor_restores_the_scope():
    s = scoped(DONGCHENG)
    s.apply(batch_of(rec("case", case_id="C1", **IN_CHAOYANG)))
    snap = s.snapshot()
    assert "scope" not in snap and snap["out_of_scope"] == {"case": 1}
    s.apply(batch_of(rec("case", seq=1, case_id="C2", **IN_CHAOYANG)))
    s.restore(snap)
    assert s.scope == Scope((DONGCHENG,)) and s.out_of_scope == {"case": 1}


# ---- everything computed from it follows ------------------------------------------------------

def test_supervision_heat_and_exports_follow_the_scope(tmp_path):
    from situation import supervision
    from situation.heat import case_heat, district_hours
    from situation.open311 import open311_requests, write_open311
    from situation.public_map import build_public_map

    now = T0 + 4 * 3_600_000
    whole, wall = Situation(ManualClock(now)), scoped(DONGCHENG, clock=ManualClock(now))
    records = city_day(now)
    whole.apply(batch_of(*records))
    wall.apply(batch_of(*records))
    ours = {c for c in whole.cases if whole.cases[c].district == DONGCHENG}
    assert ours and set(wall.cases) == ours and len(whole.cases) > len(ours)
    # Supervision: the wall's figures are the city's figures for its district.
    assert supervision.kpis(wall) == supervision.kpis(whole, district=DONGCHENG)
    assert supervision.kpis(wall).dispatched > 0
    table = supervision.district_kpis(wall)
    city = supervision.district_kpis(whole)
    assert table.loc[DONGCHENG].equals(city.loc[DONGCHENG])
    assert (table.drop(index=[DONGCHENG, "city"])["open"] == 0).all()
    assert table.loc["city", "open"] == table.loc[DONGCHENG, "open"] > 0
    # Patrol coverage: only the unit inside the scope patrolled this wall's district.
    cov, cov_city = supervision.patrol_coverage(wall), supervision.patrol_coverage(whole)
    assert (cov.units, cov_city.units) == (1, 2)
    assert cov.share[DONGCHENG] == cov_city.share[DONGCHENG] > 0
    assert cov.share[CHAOYANG] == 0 < cov_city.share[CHAOYANG]
    # Heat: cases per cell and districts by hour count the scope's cases only.
    assert case_heat(wall, 6 * 3_600_000).total == len(ours)
    assert case_heat(whole, 6 * 3_600_000).total == len(whole.cases)
    hours = district_hours(wall)
    assert hours.today.drop(index=DONGCHENG).to_numpy().sum() == 0
    assert hours.today.loc[DONGCHENG].sum() == hours.today.to_numpy().sum() == len(ours)
    # Exports: Open311 and the public map carry the scope's cases only.
    open_ours = {c.case_id for c in wall.open_cases()}
    assert {r["service_request_id"] for r in open311_requests(wall)} == open_ours
    path = write_open311(wall, tmp_path / "open311.json", include_closed=True)
    assert {r["service_request_id"] for r in json.loads(Path(path).read_text())} == ours
    page = build_public_map(wall, "en")
    for c in whole.open_cases():
        assert (f'"{c.case_id}"' in page) == (c.case_id in open_ours), c.case_id


def test_peak_duty_history_and_roster_are_filtered_to_the_scope():
    from situation.peakduty import DutyConfig
    from widgets.peak_duty import PeakDuty, today_plan

    now = T0 + 10 * 3_600_000
    rng = np.random.default_rng(3)
    # Two weeks of events in three districts, each starting on the same day.
    ts = now - np.sort(rng.integers(3_600_000, 14 * 86_400_000, 1_500))[::-1]
    history = pd.DataFrame({"ts": np.repeat(ts.astype(np.int64), 3),
                            "district": [DONGCHENG, CHAOYANG, HAIDIAN] * len(ts),
                            "category": "event.street_order.vending"})
    roster = pd.DataFrame({"unit_id": ["A", "B", "C"], "district": [DONGCHENG, CHAOYANG, HAIDIAN],
                           "shift": [next(iter(DutyConfig().shifts))] * 3})
    saved = PeakDuty.history, PeakDuty.roster
    PeakDuty.history, PeakDuty.roster = history, roster
    try:
        cfg = DutyConfig()
        whole = today_plan(Situation(ManualClock(now)), cfg, now)
        wall = today_plan(scoped(DONGCHENG, CHAOYANG, clock=ManualClock(now)), cfg, now)
    finally:
        PeakDuty.history, PeakDuty.roster = saved
    assert set(wall["district"]) == {DONGCHENG, CHAOYANG}
    assert set(whole["district"]) > {DONGCHENG, CHAOYANG, HAIDIAN}
    ours = whole[whole["district"].isin([DONGCHENG, CHAOYANG])].reset_index(drop=True)
    pd.testing.assert_frame_equal(wall.reset_index(drop=True), ours)
    assert wall["units_rostered"].sum() > 0 and wall["forecast_cases"].sum() > 0


def test_a_replay_of_a_district_keeps_its_scope_through_seeks(tmp_path, monkeypatch):
    from feeds.recording import read_recording
    from situation import replay as replay_mod
    from situation.replay import Replay, ReplayClock
    from tests.pubhelp import write_foreign_mcap

    path = tmp_path / "day.mcap"
    msgs = []
    for i in range(12):
        where = IN_DONGCHENG if i % 2 == 0 else IN_CHAOYANG
        doc = record("case", src="rec", seq=i, ts=T0 + i * 1_000, case_id=f"C{i}", **where)
        msgs.append(("case", "json", T0 + i * 1_000, json.dumps(doc).encode()))
    write_foreign_mcap(path, msgs)
    monkeypatch.setattr(replay_mod, "KEYFRAME_EVERY", 3)
    monkeypatch.setattr(replay_mod, "MAX_KEYFRAMES", 100)
    recording = read_recording(path)
    clock = ReplayClock(recording.start_ms)
    clock.pause(True)
    rp = Replay(recording, Situation(clock, scope=Scope((DONGCHENG,))))
    rp.index_all()                     # keyframes taken by a second picture of its own
    for t in (T0 + 11_000, T0 + 4_500, T0 + 9_000, T0):
        rp.seek(t)
        held = set(rp.situation.cases)
        assert held == {f"C{i}" for i in range(0, 12, 2) if T0 + i * 1_000 <= t}, t
        assert rp.situation.scope.adcodes == (DONGCHENG,)


def test_replay_with_districts_on_the_command_line(tmp_path, capsys):
    import main
    from tests.pubhelp import write_foreign_mcap
    path = tmp_path / "day.mcap"
    msgs = []
    for i in range(6):
        where = IN_DONGCHENG if i < 2 else IN_HAIDIAN
        doc = record("case", src="rec", seq=i, ts=T0 + i * 100, case_id=f"C{i}", **where)
        msgs.append(("case", "json", T0 + i * 100, json.dumps(doc).encode()))
    write_foreign_mcap(path, msgs)
    out = tmp_path / "status.json"
    code = main.main(["--replay", str(path), "--districts", DONGCHENG, "--speed", "64",
                      "--headless", "--run-for", "0.5", "--status-out", str(out)])
    assert code == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc["mode"] == "REPLAY" and doc["cases"] == 2
    assert doc["scope"] == {"districts": [DONGCHENG],
                            "out_of_scope": {"case": 4, "unit": 0, "sensor": 0}}
    assert doc["sources"]["rec"]["records"] == 6 and doc["rejected_total"] == 0


# ---- a real publisher and a real headless console --------------------------------------------

def test_headless_district_console_holds_only_its_districts(tmp_path):
    ts = time.time_ns() // 1_000_000
    pub = TestPublisher(zmq.Context())
    status = tmp_path / "status.json"
    proc = subprocess.Popen([sys.executable, "main.py", "--headless", "--feed", pub.endpoint,
                             "--districts", DONGCHENG, "--run-for", "4",
                             "--status-out", str(status)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pub.wait_subscriber(timeout_s=20)
        seq = 0

        def send(topic, **fields):
            nonlocal seq
            pub.send(topic, record(topic, src="city", seq=seq, **{"ts": ts, **fields}))
            seq += 1
        send("case", case_id="CA", district=DONGCHENG, **IN_DONGCHENG)
        send("case", case_id="CB", **IN_DONGCHENG)                     # no district: located
        send("case", case_id="CC", district=CHAOYANG, **IN_DONGCHENG)   # its field says out
        send("case", case_id="CD", **IN_CHAOYANG)                      # located out
        send("case", case_id="CE", district=DONGCHENG, **IN_HAIDIAN)    # its field says in
        send("case", case_id="CF", **FAR_AWAY)                         # in no district
        send("case", case_id="CM", **IN_DONGCHENG)
        send("case", case_id="CM", ts=ts + 1_000, status="dispatched", **IN_CHAOYANG)  # moves out
        send("unit", unit_id="U1", **IN_DONGCHENG)
        send("unit", unit_id="U2", **IN_HAIDIAN)
        send("unit", unit_id="U3", **IN_DONGCHENG)
        send("unit", unit_id="U3", ts=ts + 1_000, **IN_CHAOYANG)       # drives out
        send("sensor.air", id="S1", **IN_DONGCHENG)
        send("sensor.air", id="S2", district=CHAOYANG, **IN_DONGCHENG)
        send("sensor.air", id="S3", **IN_HAIDIAN)
        seq += 3                                                       # a gap: 3 never sent
        send("case", case_id="BAD", lat=95.0)                          # rejected: bad input
        send("hb")
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        pub.close()
    assert proc.returncode == 0, err
    doc = json.loads(status.read_text())
    assert (doc["cases"], doc["units"], doc["sensors"]) == (3, 1, 1)
    assert doc["scope"] == {"districts": [DONGCHENG],
                            "out_of_scope": {"case": 4, "unit": 2, "sensor": 2}}
    # Out of scope is not bad input: only the bad record is a reject, anywhere.
    assert doc["rejected"] == {"out_of_range": 1} and doc["rejected_total"] == 1
    src = doc["sources"]["city"]
    assert src["rejected_by_reason"] == {"out_of_range": 1}
    # The feed's counts are whole: every good record was received and counted.
    assert doc["records_accepted"] == 15 + 1
    assert (src["records"], src["gaps"], src["missed"], src["last_seq"]) == (16, 1, 3, seq - 1)

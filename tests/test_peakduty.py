"""Peak-hour duty: Erlang C, the forecast, the duty plan and its command line, bad input."""
from __future__ import annotations

import math
import subprocess
import sys
from collections import deque
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import main as citywall
from feeds import demo_history as simulator_history
from feeds import simulator
from feeds.districts import load_districts
from feeds.schema import SensorReading
from situation.clock import ManualClock
from situation.history import HistoryError, events_from_situation, load_history, write_history
from situation.peakduty import (
    NEEDS_MORE, PLAN_COLUMNS, DutyConfig, TodayCounts, day_start_ms, duty_plan, erlang_c,
    forecast, holdout_mae, load_roster, peak_windows, prob_within, profile, rostered,
    units_needed,
)
from situation.store import Report, Situation

ROOT = Path(__file__).resolve().parent.parent
CODES = [d.adcode for d in load_districts()]
CHAOYANG = "110105"
CFG = DutyConfig()
DAY0 = date(2026, 11, 1)            # a Sunday
PLAN_DAY = date(2026, 11, 29)       # the day after 28 days of history
HOUR = 3_600_000


# ---- Erlang C ----------------------------------------------------------------------------------

def test_erlang_c_hand_worked():
    # λ = 10/h, S = 6 min → A = λ·S = 1 Erlang; c = 2:
    #   Erlang B(2, 1) = (A²/2!) / (1 + A + A²/2!) = 0.5 / 2.5 = 0.2
    #   C = c·B / (c − A·(1 − B)) = 0.4 / (2 − 0.8) = 1/3   (M/M/2 at ρ = 0.5: P(wait) = 1/3)
    #   within 15 min: 1 − C·exp(−(c − A)·t/S) = 1 − exp(−2.5)/3 = 0.97264
    assert erlang_c(10, 6, 2) == pytest.approx(1 / 3, abs=1e-12)
    assert prob_within(10, 6, 2, 15) == pytest.approx(1 - math.exp(-2.5) / 3, abs=1e-12)
    # one server: M/M/1, P(wait) = ρ
    assert erlang_c(5, 6, 1) == pytest.approx(0.5)


def test_erlang_c_call_centre_table():
    # The textbook call-centre case: 100 calls per 30 min, 3 min handling → A = 10 Erlangs;
    # published Erlang C tables give P(wait) 0.6821 / 0.4494 / 0.2853 / 0.1741 for 11–14 agents.
    for agents, pw in ((11, 0.6821), (12, 0.4494), (13, 0.2853), (14, 0.1741)):
        assert erlang_c(200, 3, agents) == pytest.approx(pw, abs=1e-4)
    # service level of 13 agents answering within 20 s: 1 − 0.2853·e^(−3·(20/60)/3) ≈ 0.796
    assert prob_within(200, 3, 13, 20 / 60) == pytest.approx(1 - 0.28527 * math.exp(-1 / 3),
                                                             abs=1e-4)


def test_units_needed_rises_with_load_and_falls_with_looser_target():
    needs = [units_needed(lam, 30, CFG) for lam in (0.5, 1, 2, 4, 8, 16, 32)]
    assert needs == sorted(needs) and needs[0] < needs[-1]
    shares = [units_needed(8, 30, DutyConfig(target_share=s)) for s in (0.99, 0.9, 0.8, 0.5)]
    assert shares == sorted(shares, reverse=True) and shares[0] > shares[-1]
    minutes = [units_needed(8, 30, DutyConfig(target_minutes=m)) for m in (1, 5, 15, 60)]
    assert minutes == sorted(minutes, reverse=True) and minutes[0] > minutes[-1]
    # the answer is the fewest: one unit less misses the target
    c = units_needed(8, 30, CFG)
    assert prob_within(8, 30, c, 15) >= 0.8 > prob_within(8, 30, c - 1, 15)


def test_load_at_or_above_capacity_and_zero_load():
    assert erlang_c(120, 30, 60) == 1.0          # A = 60 = c: never a free unit for sure
    assert erlang_c(240, 30, 60) == 1.0
    assert prob_within(120, 30, 60, 15) == 0.0
    assert units_needed(1e6, 30, CFG) is None    # more than max_units: says so, returns
    assert units_needed(30, 30, DutyConfig(max_units=10)) is None   # A = 15 > 10
    assert units_needed(0, 30, CFG) == 0
    assert erlang_c(0, 30, 3) == 0.0 and prob_within(0, 30, 0, 15) == 1.0
    with pytest.raises(ValueError):
        units_needed(5, 0, CFG)
    with pytest.raises(ValueError):
        units_needed(-1, 30, CFG)


@pytest.mark.parametrize("kwargs, words", [
    ({"slot_minutes": 7}, "divides a day"), ({"slot_minutes": 0}, "divides a day"),
    ({"target_share": 0}, "target share"), ({"target_share": -0.5}, "target share"),
    ({"target_share": 1.5}, "target share"), ({"target_minutes": 0}, "target minutes"),
    ({"target_minutes": -3}, "target minutes"), ({"tz": "Mars/Olympus"}, "time zone"),
])
def test_config_rejects(kwargs, words):
    with pytest.raises(ValueError, match=words):
        DutyConfig(**kwargs)


# ---- a history with a known peak ------------------------------------------------------------------

def peak_history(days: int = 28, start: date = DAY0) -> pd.DataFrame:
    """One event per district per hour, every day; Chaoyang ten a hour from 18:00 to 19:00."""
    rows = []
    for k in range(days):
        d0 = day_start_ms(date.fromordinal(start.toordinal() + k), CFG)
        for code in CODES:
            for h in range(24):
                n = 10 if (code == CHAOYANG and h == 18) else 1
                rows += [(d0 + h * HOUR + 60_000 * (i + 1), code, "event.test") for i in range(n)]
    ts, dist, cat = zip(*rows)
    return pd.DataFrame({"ts": np.array(ts, dtype=np.int64), "district": list(dist),
                         "category": list(cat)})


@pytest.fixture(scope="module")
def peak_events():
    return peak_history()


def roster_frame(per_district: int = 2) -> pd.DataFrame:
    rows = [(f"R{code}{i}{s}", code, s) for code in CODES for i in range(per_district)
            for s in ("白班", "夜班")]
    return pd.DataFrame(rows, columns=["unit_id", "district", "shift"])


def test_forecast_puts_the_peak_there_and_nowhere_else(peak_events):
    prof = profile(peak_events, CFG, before=PLAN_DAY)
    assert prof.days.sum() == 28
    fc = forecast(prof, day_start_ms(PLAN_DAY, CFG), CFG)
    assert fc.shape == (16, 24) and list(fc.index) == CODES
    assert fc.loc[CHAOYANG, 18] == pytest.approx(10.0)
    rest = fc.to_numpy().copy()
    rest[CODES.index(CHAOYANG), 18] = np.nan
    assert np.nanmax(rest) == pytest.approx(1.0) and np.nanmin(rest) == pytest.approx(1.0)


def test_forecast_corrected_by_today(peak_events):
    prof = profile(peak_events, CFG, before=PLAN_DAY)
    start = day_start_ms(PLAN_DAY, CFG)
    today = TodayCounts(start, CFG)
    # a busy morning: every district twice its usual up to 12:00
    busy = peak_history(1, PLAN_DAY)
    busy = pd.concat([busy, busy])
    today.add(busy[busy.ts < start + 12 * HOUR])
    fc = forecast(prof, start, CFG, today, now_ms=start + 12 * HOUR)
    ratio = fc.loc["110101", 20]
    assert 1.5 < ratio <= 2.0                       # pulled up, shrunk a little, bounded
    quiet = forecast(prof, start, CFG, TodayCounts(start, CFG), now_ms=start + 12 * HOUR)
    assert 0.5 <= quiet.loc["110101", 20] < 0.6      # nothing seen: down to the floor


def test_plan_and_peak_windows_name_the_peak(peak_events):
    plan = duty_plan(peak_events, PLAN_DAY, CFG, roster=roster_frame(2))
    assert list(plan.columns) == list(PLAN_COLUMNS) and len(plan) == 16 * 24
    short = plan[plan.shortfall > 0]
    assert list(short.district) == [CHAOYANG]
    assert list(short.slot_start) == ["2026-11-29T18:00"]
    peak = plan[short.index[0]:short.index[0] + 1].iloc[0]
    assert peak.units_needed == units_needed(10, CFG.handling_min, CFG)
    assert peak.shortfall == peak.units_needed - 2
    wins = peak_windows(plan)
    assert len(wins) == 1
    w = wins[0]
    assert (w.district, w.start, w.end, w.short_by) == (
        CHAOYANG, "2026-11-29T18:00", "2026-11-29T19:00", peak.shortfall)
    assert w.text == f"朝阳 18:00–19:00 缺 {peak.shortfall} 人"
    assert peak_windows(plan, "en")[0].text == f"Chaoyang 18:00–19:00 short by " \
                                               f"{peak.shortfall} units"


def test_peak_windows_merge_and_rank():
    rows = []
    for code, shorts in ((CHAOYANG, {17: 2, 18: 4, 19: 3}), ("110108", {9: 1})):
        for s in range(24):
            rows.append((code, f"2026-11-29T{s:02d}:00", 1.0, 3, 1, shorts.get(s, 0)))
    for code in CODES:
        if code not in (CHAOYANG, "110108"):
            rows += [(code, f"2026-11-29T{s:02d}:00", 0.0, 0, 0, 0) for s in range(24)]
    plan = pd.DataFrame(rows, columns=list(PLAN_COLUMNS))
    wins = peak_windows(plan)
    assert [w.text for w in wins] == ["朝阳 17:00–20:00 缺 4 人", "海淀 09:00–10:00 缺 1 人"]


def test_needs_more_than_is_written_as_such(peak_events):
    plan = duty_plan(peak_events, PLAN_DAY, DutyConfig(max_units=3), roster=roster_frame(1))
    row = plan[(plan.district == CHAOYANG) & (plan.slot_start == "2026-11-29T18:00")].iloc[0]
    assert row.units_needed == NEEDS_MORE and row.shortfall == 3 + 1 - 1
    w = peak_windows(plan)[0]
    assert w.more_than and "+" in w.text


def test_rostered_from_roster_and_situation(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text("unit_id,district,shift\nA,110105,白班\nB,110105,夜班\nC,999999,白班\n"
                    "D,110101,早班\n", encoding="utf-8")
    roster = load_roster(path, CFG)
    assert roster.attrs["skipped"] == 2 and "999999" in roster.attrs["problems"][0]
    ros = rostered(roster, day_start_ms(PLAN_DAY, CFG), CFG)
    assert list(ros.loc["110105"]) == [1] * 24
    assert ros.loc["110105", 6] == 1 and ros.drop(index="110105").to_numpy().sum() == 0


def test_today_counts_incremental_equals_recount(peak_events):
    start = day_start_ms(date(2026, 11, 10), CFG)
    rng = np.random.default_rng(3)
    ev = peak_events.sample(frac=1.0, random_state=4).reset_index(drop=True)
    inc = TodayCounts(start, CFG)
    for k in range(0, len(ev), 997):
        part = ev.iloc[k:k + 997]
        if rng.random() < 0.5:
            inc.add(part)
        else:
            inc.add(part.ts.to_numpy(), part.district.to_numpy())
    full = TodayCounts.from_events(ev, start, CFG)
    on = ev[(ev.ts >= start) & (ev.ts < start + 24 * HOUR)]
    assert (inc.frame() == full.frame()).all().all()
    assert inc.frame().to_numpy().sum() == len(on) and inc.outside == len(ev) - len(on)
    assert inc.frame().loc[CHAOYANG, 18] == 10


def test_events_from_situation_cases_and_sensor_crossings():
    sit = Situation(ManualClock(day_start_ms(PLAN_DAY, CFG)))
    sit.reports.add("C1", Report(sit.now_ms() - 1000, CHAOYANG, "event.x"), sit.now_ms())
    sit.reports.add("C2", Report(sit.now_ms() - 900, None, "event.x"), sit.now_ms())
    rec = SensorReading(v=1, src="t", seq=0, ts=sit.now_ms(), id="VC-1", kind="vendor",
                        lat=39.92, lon=116.45, metrics={"detections": 6.0}, district=CHAOYANG)
    sit.sensors["VC-1"] = rec
    t = sit.now_ms()
    sit.sensor_history["VC-1"] = deque([(t, {"detections": 6.0}), (t + 1, {"detections": 7.0}),
                                        (t + 2, {"detections": 0.0}),
                                        (t + 3, {"detections": 5.0})])
    ev = events_from_situation(sit)
    assert list(ev.category) == ["event.x", "sensor.vendor", "sensor.vendor"]
    assert set(ev.district) == {CHAOYANG} and ev.ts.dtype == np.int64


# ---- the demo history and the forecast's error ----------------------------------------------------

@pytest.fixture(scope="module")
def demo_history():
    return simulator_history.history_events(28, seed=1, end_ms=day_start_ms(PLAN_DAY, CFG))


def test_demo_history_is_believable_and_deterministic(demo_history):
    again = simulator_history.history_events(28, seed=1, end_ms=day_start_ms(PLAN_DAY, CFG))
    pd.testing.assert_frame_equal(demo_history, again)
    per_day = len(demo_history) / 28
    assert 300 < per_day < 900
    assert set(demo_history.district) == set(CODES)
    assert {"sensor.vendor", "sensor.crowd", "sensor.parking"} <= set(demo_history.category)


def test_holdout_mae_on_demo_history(demo_history):
    mae = holdout_mae(demo_history, 7, CFG)
    mean_cell = len(demo_history) / 28 / (16 * 24)
    print(f"hold-out MAE per district-slot: {mae:.3f} (mean count {mean_cell:.3f})")
    assert 0 < mae < mean_cell          # better than nothing by a wide margin
    assert holdout_mae(demo_history, 7, CFG, at_hour=12) > 0


# ---- files and the command line ---------------------------------------------------------------

def plan_cli(*args):
    return subprocess.run([sys.executable, "main.py", "duty-plan", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_duty_plan_cli_csv_columns_and_types(tmp_path, peak_events):
    hist = tmp_path / "h.parquet"
    write_history(peak_events, hist)
    roster = tmp_path / "roster.csv"
    roster_frame(2).to_csv(roster, index=False)
    out = tmp_path / "plan.csv"
    proc = plan_cli("--history", str(hist), "--day", "2026-11-29", "--out", str(out),
                    "--roster", str(roster))
    assert proc.returncode == 0, proc.stderr
    plan = pd.read_csv(out, dtype={"district": str})
    assert list(plan.columns) == list(PLAN_COLUMNS) and len(plan) == 16 * 24
    assert plan.slot_start.str.fullmatch(r"2026-11-29T\d\d:\d\d").all()
    assert plan.forecast_cases.dtype == float
    for col in ("units_needed", "units_rostered", "shortfall"):
        assert plan[col].dtype == np.int64
    assert (plan.shortfall >= 0).all() and set(plan.district) == set(CODES)
    assert list(plan[plan.shortfall > 0].slot_start) == ["2026-11-29T18:00"]
    assert not list(tmp_path.glob(".plan.csv.*"))          # no temporary left behind


def run_inline(capsys, *args) -> tuple[int, str]:
    try:
        code = citywall.main(["duty-plan", *args])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def good_csv(tmp_path_factory, peak_events):
    path = tmp_path_factory.mktemp("hist") / "h.csv"
    write_history(peak_events, path)
    return path


def bad_file(tmp_path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("case", [
    "missing", "unreadable", "directory", "wrong_columns", "empty", "header_only",
    "all_bad_ts", "bad_parquet",
])
def test_bad_history_exit_2_one_line(tmp_path, capsys, case):
    path = {
        "missing": lambda: tmp_path / "nope.csv",
        "unreadable": lambda: bad_file(tmp_path, "bin.csv", "x").with_name("bin.csv"),
        "directory": lambda: tmp_path,
        "wrong_columns": lambda: bad_file(tmp_path, "w.csv", "time,adcode,category\n1,2,3\n"),
        "empty": lambda: bad_file(tmp_path, "e.csv", ""),
        "header_only": lambda: bad_file(tmp_path, "h.csv", "ts,district,category\n"),
        "all_bad_ts": lambda: bad_file(tmp_path, "t.csv", "ts,district,category\n"
                                       "yesterday,110105,x\nsoon,110105,x\n"),
        "bad_parquet": lambda: bad_file(tmp_path, "p.parquet", "not parquet"),
    }[case]()
    if case == "unreadable":
        path.write_bytes(b"ts,district,category\n\xff\xfe\x00bad\n")
    code, err = run_inline(capsys, "--history", str(path), "--day", "2026-11-29",
                           "--out", str(tmp_path / "plan.csv"))
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert str(path) in err
    words = {"missing": "no such file", "unreadable": "not UTF-8", "directory": "directory",
             "wrong_columns": "missing column 'ts'", "empty": "empty",
             "header_only": "empty", "all_bad_ts": "column 'ts'", "bad_parquet": "Parquet"}
    assert words[case] in err
    if case == "all_bad_ts":
        assert "row 1 (line 2)" in err and "'yesterday'" in err
    assert not (tmp_path / "plan.csv").exists()


def test_bad_rows_are_counted_and_the_rest_used(tmp_path, capsys, good_csv):
    text = good_csv.read_text(encoding="utf-8").splitlines()
    text.insert(3, "notatime,110105,event.x")          # data row 3 (line 4)
    text.insert(5, "1795000000000,999999,event.x")     # unknown district, data row 5
    path = bad_file(tmp_path, "mixed.csv", "\n".join(text) + "\n")
    loaded = load_history(path)
    assert loaded.skipped == 2 and loaded.used == len(text) - 3
    assert any("column 'ts'" in p and "row 3 (line 4)" in p and "'notatime'" in p
               for p in loaded.problems)
    assert any("column 'district'" in p and "unknown district" in p and "'999999'" in p
               for p in loaded.problems)
    code, err = run_inline(capsys, "--history", str(path), "--day", "2026-11-29",
                           "--out", str(tmp_path / "plan.csv"))
    assert code == 0 and "2 skipped" in err and (tmp_path / "plan.csv").exists()


@pytest.mark.parametrize("extra, words", [
    (["--day", "2027-03-01"], "outside the history (2026-11-01 … 2026-11-28)"),
    (["--day", "2026-11-01"], "outside the history"),
    (["--day", "29/11/2026"], "not a day"),
    (["--target-share", "0"], "target share"),
    (["--target-share", "-0.2"], "target share"),
    (["--target-minutes", "0"], "target minutes"),
    (["--target-minutes", "-5"], "target minutes"),
    (["--slot-minutes", "7"], "divides a day"),
    (["--tz", "Nowhere/City"], "time zone"),
])
def test_bad_plan_arguments_exit_2(tmp_path, capsys, good_csv, extra, words):
    args = ["--history", str(good_csv), "--out", str(tmp_path / "plan.csv")]
    if "--day" not in extra:
        args += ["--day", "2026-11-29"]
    code, err = run_inline(capsys, *args, *extra)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert words in err


def test_bad_roster_exit_2(tmp_path, capsys, good_csv):
    roster = bad_file(tmp_path, "r.csv", "unit,district\nA,110105\n")
    code, err = run_inline(capsys, "--history", str(good_csv), "--day", "2026-11-29",
                           "--out", str(tmp_path / "plan.csv"), "--roster", str(roster))
    assert code == 2 and "missing column 'unit_id'" in err and str(roster) in err


def test_load_history_raises_history_error(tmp_path):
    with pytest.raises(HistoryError, match="no such file"):
        load_history(tmp_path / "none.parquet")


def test_simulator_writes_history(tmp_path, capsys):
    out = tmp_path / "h.parquet"
    assert simulator.main(["--history-days", "3", "--history-out", str(out),
                           "--start", "2026-11-29T08:00"]) == 0
    loaded = load_history(out)
    assert loaded.skipped == 0 and loaded.used > 500
    first = pd.Timestamp(int(loaded.events.ts.min()), unit="ms", tz="Asia/Shanghai")
    assert str(first.date()) == "2026-11-26"
    with pytest.raises(SystemExit) as exc:
        simulator.main(["--history-days", "3", "--history-out", str(tmp_path / "no" / "h.csv")])
    assert exc.value.code == 2
    assert "no such directory" in capsys.readouterr().err

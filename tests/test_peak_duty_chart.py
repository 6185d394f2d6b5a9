"""The peak-duty chart on a history with a known peak: the forecast, the shortfall and the
peak list put it where it is, the now line moves with the situation's clock, and a bad history
file is said on the chart."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from situation.peakduty import DutyConfig
from tests.scenario import Scenario
from widgets.peak_duty import PeakDuty

DAY0 = 1_795_449_600_000 - 14 * 86_400_000        # 2026-11-10 00:00 Beijing
HOUR = 3_600_000
CHAOYANG = "110105"


def history() -> pd.DataFrame:
    """Two weeks: one event an hour in every district, and ten in 朝阳 18:00–19:00."""
    from feeds.districts import load_districts
    rows = []
    for day in range(14):
        for h in range(24):
            for d in load_districts():
                n = 10 if (d.adcode == CHAOYANG and h == 18) else 1
                rows += [(DAY0 + day * 86_400_000 + h * HOUR + 60_000 * k, d.adcode, "x")
                         for k in range(n)]
    ts, district, category = zip(*rows)
    return pd.DataFrame({"ts": np.array(ts, dtype=np.int64), "district": district,
                         "category": category})


@pytest.fixture
def chart(qtbot):
    PeakDuty.history, PeakDuty.problem, PeakDuty.config = history(), None, DutyConfig()
    # The day after the history, at its first moment: nothing yet to correct the profile by
    # (at noon with no event seen, "today is quiet" would halve it, as it should).
    sc = Scenario(start_ms=DAY0 + 14 * 86_400_000)
    p = PeakDuty(sc.situation, "zh")
    qtbot.addWidget(p)
    p.resize(1400, 700)
    yield sc, p
    PeakDuty.history = PeakDuty.config = PeakDuty.problem = None


def test_the_chart_puts_the_known_peak_where_it_is(chart):
    sc, p = chart
    for i in range(6):          # three units a shift in 朝阳: enough for the usual hour
        sc.unit(f"CY{i}", callsign=f"朝阳-车{i}", shift="白班" if i < 3 else "夜班",
                lat=39.92, lon=116.45)
    p.district_box.setCurrentIndex(p.district_box.findData(CHAOYANG))
    p.refresh()
    x, forecast = p.forecast_line.getData()
    assert int(x[np.argmax(forecast)]) == 18                 # the slot 18:00-19:00
    assert forecast[18] == pytest.approx(10, rel=0.2) and forecast[3] == pytest.approx(1, rel=0.3)
    _, needed = p.needed_line.getData()
    assert needed[18] == needed.max() and needed[18] > needed[3]
    _, rostered = p.rostered_line.getData()
    assert rostered[3] == 3 and rostered[12] == 3
    assert p.peaks.text().splitlines()[0].startswith("朝阳 18:00–19:00")
    assert not p.grab().isNull()


def test_the_now_line_moves_with_the_situation_clock(chart):
    sc, p = chart
    p.refresh()
    assert p.now_line.value() == pytest.approx(0.0)
    sc.clock.advance(13 * HOUR + 30 * 60_000)
    p.refresh()
    assert p.now_line.value() == pytest.approx(13.5)


def test_a_day_the_history_cannot_speak_for_is_said_on_the_chart(qtbot):
    PeakDuty.history, PeakDuty.problem = history(), None
    sc = Scenario(start_ms=DAY0 + 40 * 86_400_000)          # weeks after the history ends
    p = PeakDuty(sc.situation, "zh")
    qtbot.addWidget(p)
    p.refresh()
    assert "outside the history" in p.notice.text() and p.plan is None
    PeakDuty.history = None


def test_a_bad_history_file_is_said_on_the_chart_and_the_wall_runs(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path
    bad = tmp_path / "history.csv"
    bad.write_text("when,where\n1,2\n")
    status = tmp_path / "status.json"
    shots = tmp_path / "shots"
    out = subprocess.run([sys.executable, "main.py", "--demo", "--run-for", "3",
                          "--history", str(bad), "--status-out", str(status),
                          "--screenshot-dir", str(shots)],
                         cwd=Path(__file__).resolve().parent.parent, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-1500:]
    assert json.loads(status.read_text())["units"] > 100


def test_the_menu_writes_todays_duty_plan(qtbot, tmp_path):
    from PySide6.QtGui import QGuiApplication
    from situation.peakduty import PLAN_COLUMNS
    from ui.wall import build_wall
    PeakDuty.history, PeakDuty.problem, PeakDuty.config = history(), None, DutyConfig()
    try:
        sc = Scenario(start_ms=DAY0 + 14 * 86_400_000 + 8 * HOUR)
        (w,) = build_wall(sc.situation, None, "zh", "LIVE", QGuiApplication.screens()[:1])
        qtbot.addWidget(w)
        assert any(a.text().startswith("导出今日勤务计划") for a in w.menu().actions())
        target = tmp_path / "plan.csv"
        assert w.export("duty_plan", str(target))
        plan = pd.read_csv(target)
        assert tuple(plan.columns) == PLAN_COLUMNS and len(plan) == 16 * 24
        assert plan["slot_start"].iloc[0].startswith("2026-11-24T00:00")
        late = Scenario(start_ms=DAY0 + 60 * 86_400_000)     # no history for that day
        (w2,) = build_wall(late.situation, None, "zh", "LIVE", QGuiApplication.screens()[:1])
        qtbot.addWidget(w2)
        assert not w2.export("duty_plan", str(tmp_path / "late.csv"))
        assert "无法生成勤务计划" in w2.header.message.text()
    finally:
        PeakDuty.history = PeakDuty.config = PeakDuty.problem = None


def test_the_chart_names_what_is_wrong_with_the_history_file(qtbot, tmp_path):
    from types import SimpleNamespace
    from ui.app import load_duty_history
    bad = tmp_path / "history.csv"
    bad.write_text("when,where\n1,2\n")
    sc = Scenario(start_ms=DAY0 + 14 * 86_400_000)
    load_duty_history(SimpleNamespace(mode="LIVE", clock=sc.clock),
                      SimpleNamespace(history=str(bad), roster=None, duty=DutyConfig(), seed=1))
    try:
        p = PeakDuty(sc.situation, "zh")
        qtbot.addWidget(p)
        p.refresh()
        assert str(bad) in p.notice.text() and "ts" in p.notice.text()
    finally:
        PeakDuty.history = PeakDuty.config = PeakDuty.problem = PeakDuty.roster = None

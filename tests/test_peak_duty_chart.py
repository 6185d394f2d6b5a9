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

"""Figures that cannot mislead (issue 14): a rate over too few cases is "暂无 (n 件)", never a
coloured percentage — in the Qt-free figures, on the strip, in the district table and in the
handover; a "peak" is a few hours at most and a shortfall held all day is said as such; a chart
with no past days compares with nothing; every chart axis says what it counts and in what; the
words are 城管's. All on a manual clock; nothing sleeps, nothing is timed."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feeds.districts import load_districts
from situation import supervision
from situation.handover import ShiftSpan, summarise, window_kpis
from situation.peakduty import (PLAN_COLUMNS, DutyConfig, peak_windows, shortfall_windows)
from situation.supervision import (MIN_CASES, Rate, district_kpis, figure_text, kpis,
                                   too_few_text)
from tests.scenario import MIN, Scenario
from widgets import theme
from widgets.theme import apply_theme

ROOT = Path(__file__).resolve().parent.parent
HOUR = 60 * MIN
MIDNIGHT = 1_795_449_600_000                 # 2026-11-24 00:00 Beijing time
NOW = MIDNIGHT + 9 * HOUR + 30 * MIN         # 09:30
DONG, CHAO, SHUNYI = "110101", "110105", "110113"
CODES = [d.adcode for d in load_districts()]


@pytest.fixture
def themed(qapp):
    apply_theme(qapp)
    return qapp


def shown(qtbot, qapp, panel, size=(1600, 600)):
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    qapp.processEvents()
    panel.refresh()
    return panel


def just_started() -> Scenario:
    """What the wall saw just after start: one case dispatched late (0/1 within 5 min), and
    seven due to close of which four closed (4/7) — 东城 — plus one closed case in 朝阳."""
    sc = Scenario(NOW)

    def case(cid, district, stages):
        for status, t, due in stages:
            sc.add("case", case_id=cid, status=status, ts=NOW + t * MIN,
                   due_at=None if due is None else NOW + due * MIN, district=district,
                   reported_at=NOW + stages[0][1] * MIN)

    case("SLOW", DONG, [("reported", -60, -30), ("registered", -59, -29),
                        ("dispatched", -40, 20)])                    # 19 min: slow; due +20
    for i in range(4):                                               # closed on time
        case(f"DONE-{i}", DONG, [("reported", -50, -20), ("registered", -49, -19),
                                 ("closed", -30 + i, None)])
    for i in range(3):                                               # owed: registered, late
        case(f"LATE-{i}", DONG, [("reported", -50, -20), ("registered", -49, -10)])
    case("CY", CHAO, [("reported", -50, -20), ("registered", -49, -19), ("closed", -20, None)])
    return sc


# ---- rates over too few cases: the Qt-free figures ------------------------------------------

def test_a_rate_over_too_few_cases_is_no_figure():
    k = kpis(just_started().situation)
    assert k.min_cases == MIN_CASES == 5
    assert (k.dispatched, k.dispatched_fast) == (1, 0)
    assert (k.due_to_close, k.closed) == (8, 5)                      # 东城 7 + 朝阳 1
    assert k.dispatch_fast_share is None                             # 0/1 is not "0 %"
    assert k.rate("fast") == Rate(0, 1, 5) and not k.rate("fast").enough
    assert k.close_rate == pytest.approx(5 / 8)                      # 8 cases: a figure
    assert k.dispatch_to_scene_min is None and k.rate("scene").cases == 0
    one = kpis(just_started().situation, min_cases=1)                # the setting moves it
    assert one.dispatch_fast_share == 0.0 and one.min_cases == 1
    assert kpis(just_started().situation, min_cases=10).close_rate is None


@pytest.mark.parametrize("lang, one, four, none", [
    ("zh", "暂无 (1 件)", "暂无 (4 件)", "暂无 (0 件)"),
    ("en", "n/a (1 case)", "n/a (4 cases)", "n/a (0 cases)")])
def test_the_words_of_too_few(lang, one, four, none):
    assert figure_text(Rate(0, 1, 5), lang) == too_few_text(1, lang) == one
    assert figure_text(Rate(4, 4, 5), lang) == four                  # not "100%"
    assert figure_text(Rate(0, 0, 5), lang) == none
    assert figure_text(Rate(4, 7, 5), lang) == "57.1%"               # enough: the share
    assert figure_text(Rate(30.0, 2, 1), lang, minutes=True) == "15.0"
    assert figure_text(Rate(30.0, 2, 5), lang, minutes=True) == \
        ("暂无 (2 件)" if lang == "zh" else "n/a (2 cases)")                # a mean of two


def test_the_district_table_has_no_rate_over_too_few():
    df = district_kpis(just_started().situation)
    assert df.attrs["min_cases"] == 5
    dong, chao = df.loc[DONG], df.loc[CHAO]
    assert dong["due_to_close"] == 7 and dong["close_rate"] == pytest.approx(4 / 7)
    assert np.isnan(dong["dispatch_fast_share"])                     # 0/1
    assert chao["due_to_close"] == 1 and np.isnan(chao["close_rate"])   # 1/1 is not 100 %
    assert np.isnan(district_kpis(just_started().situation, min_cases=10).loc[DONG, "close_rate"])


def test_the_configured_minimum_is_read_when_asked(monkeypatch):
    monkeypatch.setattr(supervision, "MIN_CASES", 2)
    assert kpis(just_started().situation).min_cases == 2
    with pytest.raises(ValueError):
        kpis(just_started().situation, min_cases=0)


def test_the_handover_figures_follow_the_same_rule():
    sc = just_started()
    shift = ShiftSpan("day", "白班", NOW - 2 * HOUR, NOW + 6 * HOUR)
    h = summarise(sc.situation, shift, None, NOW)
    assert h.kpis.min_cases == 5 and h.kpis.dispatch_fast_share is None
    assert figure_text(h.kpis.rate("fast"), "zh") == "暂无 (1 件)"
    from widgets.supervision import figure            # what the handover's tiles can show
    assert figure(h.kpis, "fast", "zh") == ("暂无 (1 件)", theme.DIM)
    assert figure(h.kpis, "fast", "en") == ("n/a (1 case)", theme.DIM)
    assert figure(h.kpis, "close", "zh") == ("62.5%", theme.ALARM)   # 5/8: a figure
    assert summarise(sc.situation, shift, None, NOW, min_cases=1).kpis.dispatch_fast_share == 0
    # window_kpis keeps its old reading (every ratio) for the training debrief unless asked
    assert window_kpis(sc.situation, shift.start_ms, NOW).dispatch_fast_share == 0.0
    assert window_kpis(sc.situation, shift.start_ms, NOW, None).dispatch_fast_share is None


# ---- rates over too few cases: on the wall -------------------------------------------------

@pytest.mark.parametrize("lang, word, count, rule", [
    ("zh", "暂无", "(1 件)", "不足 5 件"), ("en", "n/a", "(1 case)", "fewer than 5")])
def test_the_strip_says_too_few_in_a_neutral_colour(qtbot, themed, lang, word, count, rule):
    from widgets.supervision import SupervisionKpis
    p = shown(qtbot, themed, SupervisionKpis(just_started().situation, lang), (1900, 300))
    fast = p.tiles["fast"]
    assert (fast.value.text(), fast.unit.text()) == (word, count) and fast.unit.isVisible()
    assert rule in fast.detail.text() and "%" not in fast.value.text()
    assert theme.DIM in fast.value.styleSheet()                       # neither red nor amber
    assert theme.ALARM not in fast.value.styleSheet()
    scene = p.tiles["scene"]
    assert scene.value.text() == word and scene.unit.text() == count.replace("1", "0", 1) \
        .replace("case)", "cases)")
    close = p.tiles["close"]                                          # 5/8: a figure
    assert close.value.text() == "62.5%" and close.unit.text() == ""
    assert ("5/8 件" if lang == "zh" else "5 of 8") == close.detail.text()
    assert ("不足 5 件不计比率" if lang == "zh" else "no rate under 5 cases") in p.summary.text()
    assert not p.grab().isNull()
    if lang == "zh":
        p.grab().save("/tmp/honest_strip.png")


@pytest.mark.parametrize("lang, one", [("zh", "暂无 (1 件)"), ("en", "n/a (1 case)")])
def test_the_district_table_says_too_few(qtbot, themed, lang, one):
    from PySide6.QtCore import Qt
    from widgets.supervision import DistrictSupervision
    p = shown(qtbot, themed, DistrictSupervision(just_started().situation, lang), (1300, 900))
    m = p.model

    def row(code, role=Qt.DisplayRole):
        r = m.keys.index(code)
        return [m.data(m.index(r, c), role) for c in range(m.columnCount())]

    dong, chao = row(DONG), row(CHAO)
    assert dong[4] == "57.1%" and dong[7] == one                      # 4/7; 0/1 dispatched
    assert chao[4] == one and chao[8] == "—"                          # 1/1 closed: no "100%"
    assert row(CHAO, Qt.ForegroundRole)[4].color().name() == theme.DIM
    assert row(DONG, Qt.ForegroundRole)[7].color().name() == theme.DIM
    assert not any(c.endswith("%") for c in row(CHAO)[4:8])
    assert not p.grab().isNull()
    if lang == "zh":
        p.grab().save("/tmp/honest_table.png")


# ---- peaks ------------------------------------------------------------------------------------

def plan_of(shorts: dict[str, dict[int, int]], slot_minutes: int = 60) -> pd.DataFrame:
    """A plan whose shortfall is ``shorts[district][slot]`` (0 elsewhere)."""
    ns = 1440 // slot_minutes
    rows = []
    for code in CODES:
        for k in range(ns):
            hh, mm = divmod(k * slot_minutes, 60)
            s = shorts.get(code, {}).get(k, 0)
            rows.append((code, f"2026-11-24T{hh:02d}:{mm:02d}", 1.0, s + 1, 1, s))
    return pd.DataFrame(rows, columns=list(PLAN_COLUMNS))


def test_a_full_day_shortfall_is_said_as_such_never_a_peak():
    plan = plan_of({SHUNYI: {k: 2 for k in range(24)}})
    found = shortfall_windows(plan, "zh", 3)
    assert found.peaks == [] and peak_windows(plan) == []
    assert [w.text for w in found.held] == ["顺义 全天缺 2 人"]
    assert found.held[0].kind == "all_day" and found.worst.short_by == 2
    assert [w.text for w in shortfall_windows(plan, "en").held] == \
        ["Shunyi short by 2 units all day"]


def test_a_peak_list_never_names_a_window_longer_than_the_maximum():
    shorts = {SHUNYI: {k: 2 for k in range(24)} | {17: 4, 18: 5},      # all day, rising at 17
              CHAO: {k: 1 for k in range(7, 19)} | {k: 3 for k in range(12, 17)} | {14: 6},
              DONG: {9: 1, 10: 1}}
    plan = plan_of(shorts)
    for max_hours in (1, 2, 3, 4, 6):
        found = shortfall_windows(plan, "zh", max_hours)
        assert found.peaks and all(w.hours <= max_hours for w in found.peaks)
        assert all(w.hours > max_hours for w in found.held)
        assert all(w.kind in ("all_day", "held") for w in found.held)
        assert found.worst.short_by == 6 == plan.shortfall.max()     # the title agrees
        assert found.peaks[0].short_by == 6 or found.held[0].short_by == 6
    found = shortfall_windows(plan, "zh", 3)
    texts = [w.text for w in found.peaks]
    assert texts[0] == "朝阳 14:00–15:00 缺 6 人"                        # the most short first
    assert "顺义 17:00–19:00 缺 5 人" in texts and "东城 09:00–11:00 缺 1 人" in texts
    held = [w.text for w in found.held]
    assert "顺义 全天缺 2 人" in held
    assert "朝阳 07:00–19:00 持续缺 1 人（12 小时）" in held
    assert "朝阳 12:00–17:00 持续缺 3 人（5 小时）" in held
    en = [w.text for w in shortfall_windows(plan, "en", 3).held]
    assert "Chaoyang short by 1 unit 07:00–19:00 (12 h)" in en


def test_the_maximum_is_a_setting():
    assert DutyConfig().peak_max_hours == 3.0
    for bad in (0, -1, 25, float("nan")):
        with pytest.raises(ValueError):
            DutyConfig(peak_max_hours=bad)
    plan = plan_of({DONG: {k: 1 for k in range(8, 12)}})            # four hours
    assert [w.kind for w in shortfall_windows(plan, "zh", 3).held] == ["held"]
    assert [w.text for w in shortfall_windows(plan, "zh", 4).peaks] == ["东城 08:00–12:00 缺 1 人"]


def test_the_chart_lists_a_full_day_shortfall_apart_and_its_title_agrees(qtbot, themed):
    from widgets.peak_duty import PeakDuty
    sc = Scenario(NOW)
    p = PeakDuty(sc.situation, "zh")
    qtbot.addWidget(p)
    p.resize(1400, 700)
    p.plan = plan_of({SHUNYI: {k: 2 for k in range(24)}})
    day_start = MIDNIGHT
    p.draw(day_start, NOW)
    assert p.peaks.text() == "无集中于 3 小时内的缺口"
    assert p.held.text() == "顺义 全天缺 2 人" and not p.held.isHidden()
    assert "最大缺口 顺义 2 人" in p.summary.text()
    assert "24:00" not in p.peaks.text()
    # the city's shortfall is the districts' added up, even where the city has units to spare
    p.plan = plan_of({SHUNYI: {k: 2 for k in range(24)}}).assign(units_rostered=lambda f: np.where(
        f.district == CHAO, 9, f.units_rostered))                    # 朝阳: 8 to spare
    p.draw(day_start, NOW)
    _, top = p.short_top.getData()
    _, met = p.short_bottom.getData()
    _, needed = p.needed_line.getData()
    _, on_duty = p.rostered_line.getData()
    assert np.allclose(top - met, 2) and np.allclose(top, needed)
    assert (on_duty > needed).all()                                   # enough in all, yet short
    ticks = p.plot.getPlotItem().getAxis("right")._tickLevels[0]
    assert all(float(v).is_integer() for v, _ in ticks)                # whole people
    # "needs more than max_units": drawn as max_units + 1 and listed with its "+"
    more = plan_of({DONG: {18: 200}})
    more.loc[(more.district == DONG) & (more.slot_start == "2026-11-24T18:00"),
             "units_needed"] = -1
    p.plan = more
    p.draw(day_start, NOW)
    assert p.peaks.text() == "东城 18:00–19:00 缺 200+ 人"
    assert p.needed_line.getData()[1][18] == 15 + DutyConfig().max_units + 1
    p.district_box.setCurrentIndex(p.district_box.findData(DONG))
    p.plan = plan_of({})
    p.draw(day_start, NOW)
    assert p.peaks.text() == "今日各时段执法力量足够" and "无缺口" in p.summary.text()


# ---- no history: no comparison ------------------------------------------------------------

@pytest.mark.parametrize("lang", ["zh", "en"])
def test_districts_by_hour_with_no_past_day_compares_with_nothing(qtbot, themed, lang):
    from widgets.heat_panels import TemporalHeatPanel
    sc = Scenario(NOW)
    for i in range(5):                                 # five cases at 08:xx today in 东城
        sc.case(f"T-{i}", None, reported_at=MIDNIGHT + 8 * HOUR + i * MIN, district=DONG)
    p = shown(qtbot, themed, TemporalHeatPanel(sc.situation, lang), (1400, 860))
    assert p.hours.days == 0 and not p.comparing
    assert p.peaks == [] and not any(lb.isVisible() for lb in p.peak_labels)
    assert len(p.peak_boxes.data) == 0                               # nothing boxed
    label = p.bar.getAxis("left").labelText
    assert label == ("今日案件（起/时）" if lang == "zh" else "cases today (per hour)")
    assert "−" not in label and "average" not in label and "日均" not in label
    img = p.image.image
    assert img[CODES.index(DONG), 8] == 5 and np.isnan(img[CODES.index(DONG), 7])
    assert p.bar.levels() == (0.0, 5.0)                              # a count scale from 0
    assert p.summary.text() == ("今日 5 起 · 尚无往日数据" if lang == "zh"
                                else "Today 5 · no past days yet")
    assert not p.grab().isNull()
    if lang == "zh":
        p.grab().save("/tmp/honest_hours.png")
    # a day later it has a past day, and compares
    sc.clock.set(NOW + 24 * HOUR)
    sc.case("T-next", None, reported_at=NOW + 24 * HOUR - 10 * MIN, district=DONG)
    p.refresh()
    assert p.comparing and p.hours.days >= 1
    assert p.bar.getAxis("left").labelText.startswith("今日 − 日均" if lang == "zh"
                                                      else "today − average")


# ---- every axis says what it counts, in what ---------------------------------------------

UNIT = re.compile(r"（[^）]+）|\([^)]+\)|\bper\b|%")


def axis_labels(plot_item, names=("left", "bottom", "right")) -> dict[str, str]:
    out = {}
    for name in names:
        ax = plot_item.getAxis(name)
        if ax.isVisible():
            out[name] = ax.labelText
    return out


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_chart_axis_has_a_label_with_its_unit(qtbot, themed, lang):
    from widgets.heat_panels import SpatialHeatPanel, TemporalHeatPanel
    from widgets.peak_duty import PeakDuty
    from widgets.supervision import PatrolCoverage
    sc = Scenario(NOW)
    sc.case("X", None, district=DONG, lat=39.915, lon=116.404)
    saved = PeakDuty.config
    try:
        PeakDuty.config = DutyConfig()                       # 60-minute slots
        peak = PeakDuty(sc.situation, lang)
        qtbot.addWidget(peak)
        PeakDuty.config = DutyConfig(slot_minutes=30)
        half = PeakDuty(sc.situation, lang)
        qtbot.addWidget(half)
    finally:
        PeakDuty.config = saved
    labels = axis_labels(peak.plot.getPlotItem())
    assert set(labels) == {"left", "bottom", "right"}
    assert labels["left"] == ("案件与事件（起/时）" if lang == "zh" else "cases and events per hour")
    assert labels["right"] == ("执法力量（人）" if lang == "zh" else "field units (people)")
    assert labels["bottom"] == ("时（北京时间）" if lang == "zh" else "hour (Beijing)")
    assert axis_labels(half.plot.getPlotItem())["left"] == (
        "案件与事件（起/30分钟）" if lang == "zh" else "cases and events per 30 min")
    # a district axis counts nothing: the sixteen districts name it, tick by tick
    hours = shown(qtbot, themed, TemporalHeatPanel(sc.situation, lang))
    labels = axis_labels(hours.plot.getPlotItem())
    assert labels["bottom"] == ("时（北京时间）" if lang == "zh" else "hour (Beijing time)")
    assert len(hours.plot.getPlotItem().getAxis("left")._tickLevels[0]) == 16
    cov = shown(qtbot, themed, PatrolCoverage(sc.situation, lang))
    labels = axis_labels(cov.bars.getPlotItem())
    assert labels["bottom"] == ("100 m 网格覆盖率（%）" if lang == "zh"
                                else "100 m cells covered (%)")
    assert len(cov.bars.getPlotItem().getAxis("left")._tickLevels[0]) == 16
    heat = shown(qtbot, themed, SpatialHeatPanel(sc.situation, lang))
    assert axis_labels(heat.plot.getPlotItem()) == {}                # a map: no axes
    # every colour bar says what its colours count, in what
    for bar in (hours.bar, cov.bar, heat.bar):
        assert UNIT.search(bar.getAxis("left").labelText), bar.getAxis("left").labelText
    heat.set_layer(("air", "pm25"))
    assert "µg/m³" in heat.bar.getAxis("left").labelText


# ---- 城管's words -----------------------------------------------------------------------------

def test_no_police_vocabulary_on_the_wall():
    from widgets import i18n           # every panel's words (peak duty, supervision, heat…)
    from situation import catalog
    words = [v for pair in i18n.STRINGS.values() for v in pair]
    for table in (catalog.CATEGORIES, catalog.CASE_STAGES, catalog.UNIT_KINDS,
                  catalog.UNIT_STATUSES, catalog.SENSOR_KINDS, catalog.SOURCES):
        words += [str(v) for entry in table.values() for v in entry]
    text = "\n".join(words)
    assert "警力" not in text and "警员" not in text and "民警" not in text    # 告警 is fine
    assert not re.search(r"\bpolic(e|ing)\b", text, re.I)
    assert "执法力量" in i18n.tr("peak.needed", "zh") and "在岗" in i18n.tr("peak.rostered", "zh")


def test_the_files_here_do_not_say_jingli():
    out = subprocess.run(["git", "grep", "-n", "警力", "--", "*.py", "*.md", "*.toml", "*.js",
                          "*.html"], cwd=ROOT, capture_output=True, text=True)
    hits = [line for line in out.stdout.splitlines()
            if not line.startswith("tests/test_honest_figures.py")]
    assert hits == [], hits

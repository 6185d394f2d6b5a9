"""District walls in Qt: what a wall scoped to some districts shows of its scope — the header
names it (legibly, at wall size; a count past a few; none on the whole city's wall), in words
from ``widgets/i18n.py``; the district board, supervision table, heat and coverage panels and
the peak duty chart list its districts only, their whole as ``scope.total``; the map opens on
its work and marks its outlines. What the situation holds is in ``test_district_wall.py``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from situation.clock import ManualClock
from situation.store import Situation
from tests.districthelp import (CHAOYANG, DONGCHENG, IN_CHAOYANG, IN_DONGCHENG, IN_HAIDIAN, T0,
                                batch_of, city_day, rec, scoped)

SHOTS = Path("/tmp/citywall-district-wall")


def test_the_peak_duty_chart_offers_the_scope_districts_only(qtbot):
    from situation.catalog import district_name
    from widgets.i18n import tr
    from widgets.peak_duty import PeakDuty
    panel = PeakDuty(scoped(CHAOYANG, DONGCHENG), "zh")
    qtbot.addWidget(panel)
    box = panel.district_box
    items = [(box.itemText(i), box.itemData(i)) for i in range(box.count())]
    assert items == [(tr("scope.total", "zh"), None), (district_name(DONGCHENG), DONGCHENG),
                     (district_name(CHAOYANG), CHAOYANG)]


# ---- the header says it ---------------------------------------------------------------------

def header_at_wall_size(qtbot, situation, lang, slim=False):
    from widgets.header import Header
    h = Header(situation, lang, "LIVE", "" if not slim else "units", slim=slim)
    qtbot.addWidget(h)
    h.resize(1920, h.height())
    h.show()
    qtbot.waitExposed(h)
    h.refresh()
    h.layout().activate()           # the figures' new widths: a grab is right
    qtbot.wait(20)
    return h


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_header_names_the_scope_legibly(qtbot, lang):
    from widgets.header import MAX_SCOPE_NAMED, SCOPE_PX
    from widgets.i18n import tr
    s = scoped(DONGCHENG, CHAOYANG)
    s.apply(batch_of(rec("case", **IN_DONGCHENG)))
    h = header_at_wall_size(qtbot, s, lang)
    badge = h.scope_badge
    names = " · ".join(s.scope.names(lang))
    assert badge.isVisible() and badge.text() == tr("scope.names", lang, names=names)
    assert badge.text() == {"zh": "辖区：东城区 · 朝阳区",
                            "en": "Districts: Dongcheng · Chaoyang"}[lang]
    assert badge.toolTip() == tr("scope.tip", lang, names=names)
    assert badge.font().pixelSize() >= SCOPE_PX and badge.font().bold()
    # Whole on the wall, never cut: as wide as its words need, inside the header.
    assert badge.width() >= badge.sizeHint().width()
    at = badge.mapTo(h, badge.rect().topLeft())
    assert 0 <= at.x() and at.x() + badge.width() <= h.width()
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert h.grab().save(str(SHOTS / f"header-{lang}.png"))
    # A slim header (the other screens) says it too.
    slim = header_at_wall_size(qtbot, s, lang, slim=True)
    assert slim.scope_badge.isVisible() and slim.scope_badge.text() == badge.text()
    assert slim.grab().save(str(SHOTS / f"header-slim-{lang}.png"))
    # Many districts: a count, every name in the tooltip.
    many = scoped(*["110101", "110102", "110105", "110106", "110108"][:MAX_SCOPE_NAMED + 2])
    hm = header_at_wall_size(qtbot, many, lang)
    n = MAX_SCOPE_NAMED + 2
    assert hm.scope_badge.text() == tr("scope.count", lang, n=n)
    for name in many.scope.names(lang):
        assert name in hm.scope_badge.toolTip()
    assert hm.grab().save(str(SHOTS / f"header-many-{lang}.png"))


def test_the_whole_city_header_has_no_scope_badge(qtbot):
    h = header_at_wall_size(qtbot, Situation(ManualClock(T0)), "zh")
    assert not h.scope_badge.isVisible() and h.scope_badge.text() == ""


def test_the_scope_words_are_in_the_i18n_tables():
    from widgets.i18n import STRINGS
    for key in ("scope.names", "scope.count", "scope.tip", "scope.total"):
        zh, en = STRINGS[key]
        assert zh and en and zh != en


def test_the_district_panels_list_the_scope_districts_only(qtbot):
    from situation.catalog import district_name
    from widgets.district_board import DistrictBoard
    from widgets.i18n import tr
    from widgets.supervision import DistrictSupervision
    now = T0 + 4 * 3_600_000
    wall = scoped(CHAOYANG, DONGCHENG, clock=ManualClock(now))
    wall.apply(batch_of(*city_day(now)))
    board = DistrictBoard(wall, "en")
    qtbot.addWidget(board)
    keys, rows, _ = board.derive(now)
    assert sorted(keys) == [DONGCHENG, CHAOYANG]
    table = DistrictSupervision(wall, "en")
    qtbot.addWidget(table)
    keys, rows, _ = table.derive(now)
    assert keys[0] == "city" and sorted(keys[1:]) == [DONGCHENG, CHAOYANG]
    assert rows[0][0].text == tr("scope.total", "en")
    assert {r[0].text for r in rows[1:]} == {district_name(DONGCHENG, "en"),
                                             district_name(CHAOYANG, "en")}


def test_the_map_opens_on_the_scope_and_marks_its_outlines(qtbot):
    from feeds.districts import by_adcode
    from tests.test_city_map import loaded_map, run_js
    now = T0 + 4 * 3_600_000
    wall = scoped(CHAOYANG, clock=ManualClock(now))
    recs = []
    for i in range(12):         # the work in Chaoyang (and some elsewhere, never held)
        for where, d in ((IN_CHAOYANG, "C"), (IN_HAIDIAN, "H")):
            recs.append(rec("case", seq=len(recs), ts=now - 60_000, case_id=f"{d}{i}",
                            reported_at=now - 60_000, lat=where["lat"] + (i % 4) * 4e-3,
                            lon=where["lon"] + (i // 4) * 6e-3))
    wall.apply(batch_of(*recs))
    assert len(wall.cases) == 12
    m = loaded_map(qtbot, wall, "en")
    marked = run_js(qtbot, m, "window.__CW_DISTRICTS__.getLayers().filter(function (l) {"
                              " return l.options.weight === 3; }).map(function (l) {"
                              " return l.feature.properties.adcode; })")
    assert marked == [CHAOYANG]
    qtbot.waitUntil(lambda: m.map_view is not None, timeout=10000)
    (s, w), (n, e) = m.map_view["bounds"]
    x0, y0, x1, y1 = by_adcode()[CHAOYANG].bbox
    assert x0 <= (w + e) / 2 <= x1 and y0 <= (s + n) / 2 <= y1      # on the scope's work
    assert e - w < x1 - x0                                           # not the whole city
    SHOTS.mkdir(parents=True, exist_ok=True)
    qtbot.wait(500)
    assert m.grab().save(str(SHOTS / "map-chaoyang.png"))


# ---- the heat and coverage panels list the scope's districts ----------------------------------

def test_the_heat_and_coverage_panels_list_the_scope_districts_only(qtbot):
    """The case heat's district picker, the districts-by-hour rows and the patrol coverage
    list of a district wall: its districts (the city's order), their whole in the words of
    ``scope.total`` in place of 全市; a whole-city wall keeps all 16 and 全市."""
    from feeds.districts import load_districts
    from situation.catalog import district_name
    from situation.scope import district_codes
    from widgets.heat_panels import SpatialHeatPanel, TemporalHeatPanel
    from widgets.i18n import tr
    from widgets.supervision_coverage import PatrolCoverage
    now = T0 + 4 * 3_600_000
    every = [d.adcode for d in load_districts()]
    for lang in ("zh", "en"):
        wall = scoped(CHAOYANG, DONGCHENG, clock=ManualClock(now))
        whole = Situation(ManualClock(now))
        for s in (wall, whole):
            s.apply(batch_of(*city_day(now)))
        assert district_codes(wall) == [DONGCHENG, CHAOYANG] and district_codes(whole) == every
        for s, codes, word in ((wall, [DONGCHENG, CHAOYANG], {"heat": "scope.total",
                                                               "cov": "scope.total"}),
                               (whole, every, {"heat": "heat.city", "cov": "cov.city"})):
            names = [district_name(c, lang) for c in codes]
            heat = SpatialHeatPanel(s, lang)
            qtbot.addWidget(heat)
            box = heat.area_box
            assert [(box.itemText(i), box.itemData(i)) for i in range(box.count())] == \
                [(tr(word["heat"], lang), None)] + list(zip(names, codes))
            hours = TemporalHeatPanel(s, lang)
            qtbot.addWidget(hours)
            hours.refresh()
            assert hours.codes == codes and list(hours.hours.today.index) == codes
            ticks = hours.plot.getPlotItem().getAxis("left")._tickLevels[0]
            assert [t for _, t in ticks] == names
            assert hours.hours.today.to_numpy().sum() == len(s.cases) == 12
            cov = PatrolCoverage(s, lang)
            qtbot.addWidget(cov)
            box = cov.area_box
            assert [(box.itemText(i), box.itemData(i)) for i in range(box.count())] == \
                [(tr(word["cov"], lang), None)] + list(zip(names, codes))
            cov.refresh()
            assert cov.codes == codes
            left = cov.bars.getPlotItem().getAxis("left")._tickLevels[0]
            assert [t for _, t in left] == names
            assert len(cov.bar_texts) == len(codes)
            shown = [d.adcode for d, item in zip(load_districts(), cov.labels)
                     if item.isVisible()]
            assert set(shown) <= set(codes)
            total = tr("scope.total", lang) if s is wall else tr("cov.city", lang)
            if lang == "zh":
                assert total in cov.summary.text()
            # one district of the list, cell by cell: its own cells
            cov.show_area(codes[-1])
            assert cov.area == codes[-1]
            image, _ = cov.display()
            assert np.isfinite(image).any()
        # the wall's coverage summary: its districts' whole, not the city's
        cov = PatrolCoverage(wall, "en")
        qtbot.addWidget(cov)
        cov.refresh()
        c = cov.coverage
        ours = c.visited[[DONGCHENG, CHAOYANG]].sum() / c.cells[[DONGCHENG, CHAOYANG]].sum()
        from situation.supervision import share_text
        assert f"all our districts {share_text(ours)}" in cov.summary.text()

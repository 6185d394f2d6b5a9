"""Supervision (监察): the stage history and unit tracks the store keeps, the KPI arithmetic on a
fixed scenario worked out by hand, patrol coverage of known cells, and the three panels in zh
and en — all on a manual clock, nothing sleeps."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import Qt

from feeds.batch import Batch
from feeds.districts import load_districts, points_in_rings
from situation import store as store_mod
from situation.supervision import (CITY, district_cells, district_kpis, kpis, patrol_coverage,
                                   segment_cells)
from tests.scenario import MIN, Scenario
from widgets import theme
from widgets.theme import apply_theme
from widgets.supervision import DistrictSupervision, PatrolCoverage, SupervisionKpis

HOUR = 60 * MIN
NOW = 1_795_449_600_000 + 19 * HOUR + 30 * MIN     # 2026-11-24 19:30 Beijing time
DONG, CHAO = "110101", "110105"                    # 东城, 朝阳
CODES = [d.adcode for d in load_districts()]


def at(minutes: float) -> int:
    """Minutes relative to NOW as epoch ms."""
    return NOW + int(minutes * MIN)


def step(sc: Scenario, cid: str, status: str, t: float, due: float | None, district: str,
         reported: float, flags=()) -> None:
    """One whole-state record of a case at ``t`` minutes (relative to NOW) with the stage
    deadline ``due`` (minutes, relative to NOW)."""
    sc.add("case", case_id=cid, status=status, ts=at(t), due_at=None if due is None else at(due),
           district=district, reported_at=at(reported), flags=list(flags))


def history(sc, cid, district, reported, stages) -> None:
    for stage in stages:
        step(sc, cid, *stage[:3], district=district, reported=reported,
             flags=stage[3] if len(stage) > 3 else ())


@pytest.fixture
def fixed():
    """Ten cases with hand-picked stage times (minutes before NOW; the 24 h window is
    (−1440, 0]). Each stage: (status, at, due of that stage).

    东城 (110101)
      A  reported −300 → registered −298 → dispatched −295 (3 min: fast) → on scene −283 (12 min)
         → resolved −250 → verified −240 → closed −230; never past a deadline: on time.
      B  reported −200 → registered −196 → dispatched −186 (10 min: slow) → on scene −168
         (18 min) → resolved −150 → verified −140 (due −110) → closed −90: LATE.
      D2 reported −30 → registered −25 → dispatched −20 (5 min exactly: fast); due +40: open.
      F  everything first happened before the window (registered −1505, dispatched −1500);
         resolved −1300, sent back for REWORK −1250, dispatched again, closed −800 on time.
      R  reported −400 → rejected −390: not open, not owed.
    朝阳 (110105)
      C  reported −120 → registered −118 → dispatched −114 (4 min: fast), due −54: OVERDUE.
      E  first seen already dispatched (−50, due +10): open, its dispatch untimed.
      G  reported −70 → registered −60, due −30: OVERDUE (registered: owed a closing).
      H  reported −40, due −10: OVERDUE but never registered (not owed a closing).
      O  closed exactly at −1440, the window's open edge: outside.
    """
    sc = Scenario(NOW)
    history(sc, "A", DONG, -300, [("reported", -300, -270), ("registered", -298, -268),
                                  ("dispatched", -295, -235), ("on_scene", -283, -235),
                                  ("resolved", -250, -130), ("verified", -240, -180),
                                  ("closed", -230, None)])
    history(sc, "B", DONG, -200, [("reported", -200, -170), ("registered", -196, -166),
                                  ("dispatched", -186, -126), ("on_scene", -168, -126),
                                  ("resolved", -150, -30), ("verified", -140, -110),
                                  ("closed", -90, None)])
    history(sc, "D2", DONG, -30, [("reported", -30, 0), ("registered", -25, 5),
                                  ("dispatched", -20, 40)])
    history(sc, "F", DONG, -1510, [
        ("reported", -1510, -1480), ("registered", -1505, -1475), ("dispatched", -1500, -1260),
        ("on_scene", -1450, -1260), ("resolved", -1300, -1180),
        ("registered", -1250, -1220, ["rework"]), ("dispatched", -1230, -1000, ["rework"]),
        ("on_scene", -1200, -1000, ["rework"]), ("resolved", -1100, -900, ["rework"]),
        ("verified", -1000, -700, ["rework"]), ("closed", -800, None, ["rework"])])
    history(sc, "R", DONG, -400, [("reported", -400, -370), ("rejected", -390, None)])
    history(sc, "C", CHAO, -120, [("reported", -120, -90), ("registered", -118, -88),
                                  ("dispatched", -114, -54)])
    history(sc, "E", CHAO, -80, [("dispatched", -50, 10)])
    history(sc, "G", CHAO, -70, [("reported", -70, -40), ("registered", -60, -30)])
    history(sc, "H", CHAO, -40, [("reported", -40, -10)])
    history(sc, "O", CHAO, -1600, [("reported", -1600, -1570), ("registered", -1595, -1565),
                                   ("dispatched", -1590, -1400), ("on_scene", -1560, -1400),
                                   ("resolved", -1500, -1400), ("verified", -1480, -1400),
                                   ("closed", -1440, None)])
    return sc


# ---- the store: stage history, lateness, tracks ------------------------------------------

def test_stage_history_first_ts_flags_and_missed_deadlines(fixed):
    s = fixed.situation
    f = s.case_stages["F"]
    assert f["registered"] == at(-1505) and f["dispatched"] == at(-1500)   # first, not rework's
    assert f["closed"] == at(-800)
    assert s.case_flags["F"] == {"rework": at(-1250)}
    assert s.case_late == {"B": at(-110)}        # closed at −90 after the verified stage's −110
    assert s.case_stages["E"] == {"dispatched": at(-50)}
    # a late, older record changes nothing, history included
    step(fixed, "C", "registered", -116, -80, CHAO, -120)
    assert s.cases["C"].status == "dispatched" and s.case_stages["C"]["registered"] == at(-118)


def test_an_extension_granted_after_the_deadline_is_still_late():
    sc = Scenario(NOW)
    step(sc, "X", "dispatched", -60, -30, DONG, -70)
    step(sc, "X", "dispatched", -29, 0, DONG, -70, flags=["extended"])   # 1 min too late
    step(sc, "Y", "dispatched", -60, -30, DONG, -70)
    step(sc, "Y", "dispatched", -31, 0, DONG, -70, flags=["extended"])   # in time
    assert sc.situation.case_late == {"X": at(-30)}
    assert sc.situation.case_flags["Y"] == {"extended": at(-31)}


def test_history_leaves_with_the_case(fixed):
    s = fixed.situation
    fixed.clock.advance(49 * HOUR)                # closed cases stay 48 h after their last record
    fixed.unit("U-PING", ts=fixed.clock.now_ms())  # anything: the store prunes on intake
    for cid in ("A", "B", "F", "O", "R"):
        assert cid not in s.cases and cid not in s.case_stages
    assert "B" not in s.case_late and "F" not in s.case_flags
    assert set(s.case_stages) == set(s.cases) == {"C", "D2", "E", "G", "H"}


def _unit_at(sc, uid, t_ms, lon, lat):
    sc.add("unit", unit_id=uid, ts=t_ms, lon=float(lon), lat=float(lat))


def test_tracks_keep_accepted_positions_thinned_and_bounded(monkeypatch):
    sc = Scenario(NOW)
    s = sc.situation
    lon0, lat0 = 116.40, 39.91
    step6 = 6 / store_mod._M_PER_DEG_LON              # 6 m east
    for k in range(11):                               # 6 m every 10 s, −200 s … −100 s
        _unit_at(sc, "U1", NOW - 200_000 + k * 10_000, lon0 + k * step6, lat0)
    kept = [round((lon - lon0) / step6) for _, lon, _ in s.tracks["U1"]]
    assert kept == [0, 5, 10]            # every 25 m or more (30 m), within the 60 s refresh
    _unit_at(sc, "U1", NOW - 300_000, lon0 + 0.01, lat0)          # older: refused, not tracked
    assert len(s.tracks["U1"]) == 3 and s.superseded == 1
    _unit_at(sc, "U1", NOW - 40_000, lon0 + 10 * step6, lat0)      # parked 60 s: kept anyway
    _unit_at(sc, "U1", NOW - 30_000, lon0 + 10 * step6, lat0)      # parked 10 s more: not
    assert [ts for ts, _, _ in s.tracks["U1"]][-1] == NOW - 40_000
    assert len(s.tracks["U1"]) == 4
    _unit_at(sc, "U2", NOW - 25 * HOUR, lon0, lat0)                # older than a track keeps
    assert "U2" not in s.tracks and "U2" in s.units
    monkeypatch.setattr(store_mod, "TRACK_MAX", 5)
    for k in range(8):
        _unit_at(sc, "U3", NOW + k * MIN, lon0 + k * 0.01, lat0)
    assert [ts for ts, _, _ in s.tracks["U3"]] == [NOW + k * MIN for k in range(3, 8)]


def test_tracks_pruned_after_24_hours_of_the_situation_clock():
    sc = Scenario(NOW)
    s = sc.situation
    _unit_at(sc, "U1", NOW, 116.40, 39.91)
    _unit_at(sc, "U2", NOW, 116.40, 39.91)
    sc.clock.advance(23 * HOUR)
    _unit_at(sc, "U2", sc.clock.now_ms(), 116.41, 39.91)
    assert set(s.tracks) == {"U1", "U2"}
    sc.clock.advance(HOUR + 1)
    sc.add("hb")                                   # any intake prunes (at most once a minute)
    assert set(s.tracks) == {"U2"} and len(s.tracks["U2"]) == 1
    assert "U1" in s.units                         # the unit itself stays


# ---- KPI arithmetic ---------------------------------------------------------------------

def test_city_kpis_worked_out_by_hand(fixed):
    k = kpis(fixed.situation, min_cases=1)          # every ratio: the arithmetic by hand
    # open: C, D2, E, G, H; overdue (due before now): C (−54), G (−30), H (−10)
    assert (k.open, k.overdue) == (5, 3)
    # dispatched in the window and timed: A 3 min, B 10, C 4, D2 5 (≤ 5 counts) → 3 of 4
    # (F's and O's first dispatch were before the window; E was first seen dispatched)
    assert (k.dispatched, k.dispatched_fast) == (4, 3) and k.dispatch_fast_share == 0.75
    # on scene in the window: A after 12 min, B after 18 → mean 15
    assert k.on_scene == 2 and k.dispatch_to_scene_min == pytest.approx(15.0)
    # due to close = closed in window (A, B, F; O closed exactly at the open edge) + registered
    # open overdue (C, G; H was never registered) = 5
    assert (k.closed, k.due_to_close) == (3, 5) and k.close_rate == pytest.approx(0.6)
    # on time: A and F (B missed its verify deadline) → 2/5
    assert k.closed_on_time == 2 and k.on_time_rate == pytest.approx(0.4)
    # rework: F among the five → 1/5
    assert k.reworked == 1 and k.rework_rate == pytest.approx(0.2)


def test_district_kpis_for_two_districts_and_the_city_row(fixed):
    df = district_kpis(fixed.situation, min_cases=1)
    assert list(df.index) == CODES + [CITY]
    dong, chao, city = df.loc[DONG], df.loc[CHAO], df.loc[CITY]
    # 东城: D2 open; A, B, D2 dispatched (A, D2 fast); A, B on scene (12, 18);
    # A, B, F closed and owed, A and F on time, F reworked
    assert dong[["open", "overdue", "dispatched", "dispatched_fast", "on_scene"]].tolist() == \
        [1, 0, 3, 2, 2]
    assert dong["dispatch_fast_share"] == pytest.approx(2 / 3)
    assert dong["dispatch_to_scene_min"] == pytest.approx(15.0)
    assert dong[["due_to_close", "closed", "closed_on_time", "reworked"]].tolist() == [3, 3, 2, 1]
    assert dong["close_rate"] == 1.0 and dong["on_time_rate"] == pytest.approx(2 / 3)
    assert dong["rework_rate"] == pytest.approx(1 / 3)
    # 朝阳: C, E, G, H open; C, G, H overdue; C dispatched in 4 min; nothing on scene;
    # C and G owed, nothing closed
    assert chao[["open", "overdue", "dispatched", "dispatched_fast", "on_scene"]].tolist() == \
        [4, 3, 1, 1, 0]
    assert chao["dispatch_fast_share"] == 1.0 and math.isnan(chao["dispatch_to_scene_min"])
    assert chao[["due_to_close", "closed", "closed_on_time", "reworked"]].tolist() == [2, 0, 0, 0]
    assert chao["close_rate"] == 0.0 and chao["rework_rate"] == 0.0
    # the others: nothing, and no rate where there is nothing to divide by
    quiet = df.loc["110102"]
    assert quiet["open"] == 0 and math.isnan(quiet["close_rate"])
    assert city["due_to_close"] == 5 and city["close_rate"] == pytest.approx(0.6)
    k = kpis(fixed.situation, district=CHAO, min_cases=1)
    assert (k.open, k.overdue, k.due_to_close, k.close_rate) == (4, 3, 2, 0.0)


def test_window_edges_and_a_shorter_window(fixed):
    k = kpis(fixed.situation, window_ms=4 * HOUR, min_cases=1)        # (−240, 0]
    # dispatched: B (slow), C, D2 (fast); A's −295 is out → 2 of 3
    assert (k.dispatched, k.dispatched_fast) == (3, 2)
    # on scene: B only → 18 min
    assert k.on_scene == 1 and k.dispatch_to_scene_min == pytest.approx(18.0)
    # closed A (−230) and B (−90), F's −800 is out; owed C, G → 2/4, on time A → 1/4, no rework
    assert (k.closed, k.due_to_close, k.closed_on_time, k.reworked) == (2, 4, 1, 0)
    assert (k.close_rate, k.on_time_rate, k.rework_rate) == (0.5, 0.25, 0.0)
    # O closed exactly at the 24 h window's start: out; one millisecond later it would be in
    fixed.add("case", case_id="O2", status="closed", ts=at(-1440) + 1, due_at=None,
              district=CHAO, reported_at=at(-1500))
    assert kpis(fixed.situation).closed == 4


def test_the_figures_move_with_the_clock_alone(fixed):
    fixed.clock.advance(HOUR)                       # no record arrives
    k = kpis(fixed.situation)
    # D2 (due +40) and E (due +10) are overdue too, and owed: 3 closed of 7 due
    assert (k.open, k.overdue, k.due_to_close, k.closed) == (5, 5, 7, 3)
    assert k.close_rate == pytest.approx(3 / 7)


def test_no_cases_no_figures():
    k = kpis(Scenario(NOW).situation)
    assert (k.open, k.due_to_close) == (0, 0)
    assert k.close_rate is None and k.dispatch_to_scene_min is None
    df = district_kpis(Scenario(NOW).situation)
    assert len(df) == 17 and df["open"].sum() == 0 and df["close_rate"].isna().all()


# ---- patrol coverage ------------------------------------------------------------------------

def test_district_masks_match_points_in_rings():
    mask = district_cells()
    g = mask.frame
    d = load_districts()[0]                              # 东城
    x0, y0, x1, y1 = d.bbox
    c0, c1 = math.floor((x0 - g.west) / g.dlon), math.ceil((x1 - g.west) / g.dlon)
    r0, r1 = math.floor((y0 - g.south) / g.dlat), math.ceil((y1 - g.south) / g.dlat)
    lon, lat = np.meshgrid(g.west + (np.arange(c0, c1) + 0.5) * g.dlon,
                           g.south + (np.arange(r0, r1) + 0.5) * g.dlat)
    inside = points_in_rings(lon.ravel(), lat.ravel(), d.rings).reshape(lon.shape)
    labels = mask.labels[r0:r1, c0:c1]
    mine = labels == 0
    assert not (mine & ~inside).any()
    # a centre inside two districts (their borders overlap by a hair) counts for one of them
    lost = np.argwhere(inside & ~mine)
    assert len(lost) <= 3
    for y, x in lost:
        other = load_districts()[labels[y, x]]
        assert points_in_rings(lon[y, x:x + 1], lat[y, x:x + 1], other.rings)[0]
    assert mask.cells[0] == mine.sum()
    # 东城 is 41.8 km², Beijing 16,410 km²: a 100 m cell is 0.01 km²
    assert 4100 <= mask.cells[0] <= 4250
    assert 1.60e6 <= mask.cells.sum() <= 1.68e6


def test_segment_cells_exact_through_corners():
    # slope 1/3 passing exactly through the corner (2, 1): never enters (0, 2) or (1, 1)
    s, iy, ix = segment_cells(*map(np.array, ([0.5], [0.5], [3.5], [1.5])))
    assert sorted(zip(iy.tolist(), ix.tolist())) == [(0, 0), (0, 1), (1, 2), (1, 3)]
    s, iy, ix = segment_cells(*map(np.array, ([0.5], [0.2], [2.5], [1.2])))
    assert sorted(zip(iy.tolist(), ix.tolist())) == [(0, 0), (0, 1), (0, 2), (1, 2)]
    s, iy, ix = segment_cells(*map(np.array, ([4.2], [7.7], [4.2], [7.7])))    # a point
    assert list(zip(iy.tolist(), ix.tolist())) == [(7, 4)]


def _cell_centre(ix: int, iy: int) -> tuple[float, float]:
    g = district_cells().frame
    return g.west + (ix + 0.5) * g.dlon, g.south + (iy + 0.5) * g.dlat


def _dong_row():
    """The first of 31 cells in a row, all inside 东城 (checked on the mask)."""
    g = district_cells().frame
    labels = district_cells().labels
    ix, iy = g.cell_of(116.400, 39.900)[::-1]
    assert (labels[iy, ix:ix + 31] == 0).all()
    return ix, iy


def test_a_unit_driving_a_straight_line_covers_exactly_its_cells():
    sc = Scenario(NOW)
    ix, iy = _dong_row()
    # two reports a minute apart, 3 km apart (sparse): the 31 cells from start to end
    _unit_at(sc, "V1", NOW - 2 * MIN, *_cell_centre(ix, iy))
    _unit_at(sc, "V1", NOW - MIN, *_cell_centre(ix + 30, iy))
    cov = patrol_coverage(sc.situation, hours=2)
    assert cov.grid.total == 31 and cov.units == 1
    assert cov.grid.values[iy, ix:ix + 31].tolist() == [1.0] * 31
    cells = district_cells().cells
    assert cov.visited[DONG] == 31 and cov.cells[DONG] == cells[0]
    assert cov.share[DONG] == pytest.approx(31 / cells[0])
    assert cov.visited[CITY] == 31 and cov.visited[CHAO] == 0
    # a second unit along the same line: the cells count once, the grid counts two units
    _unit_at(sc, "V2", NOW - 2 * MIN, *_cell_centre(ix + 30, iy))
    _unit_at(sc, "V2", NOW - MIN, *_cell_centre(ix + 20, iy))
    cov = patrol_coverage(sc.situation, hours=2)
    assert cov.visited[DONG] == 31 and cov.grid.values[iy, ix + 25] == 2.0
    assert cov.grid.values.sum() == 31 + 11


def test_a_long_silence_is_not_bridged():
    sc = Scenario(NOW)
    ix, iy = _dong_row()
    _unit_at(sc, "V1", NOW - 30 * MIN, *_cell_centre(ix, iy))
    _unit_at(sc, "V1", NOW - 24 * MIN, *_cell_centre(ix + 10, iy))      # 6 min: not bridged
    _unit_at(sc, "V1", NOW - 20 * MIN, *_cell_centre(ix + 20, iy))      # 4 min: bridged
    cov = patrol_coverage(sc.situation, hours=2)
    assert cov.grid.total == 1 + 11                 # cell ix alone, then ix+10 … ix+20


def test_coverage_window_edges():
    sc = Scenario(NOW)
    ix, iy = _dong_row()
    # one cell (100 m) a minute east, at −149.25 … −89.25 min: cells ix … ix+60
    for k in range(61):
        lon, lat = _cell_centre(ix + k, iy)
        _unit_at(sc, "V1", NOW - 150 * MIN + 45_000 + k * MIN, lon, lat)
    # 2 h: from −120 min, when the unit was a quarter of the way from the centre of cell ix+29
    # (−120.25) to ix+30 (−119.25), still in ix+29: cells ix+29 … ix+60 = 32
    assert patrol_coverage(sc.situation, hours=2).grid.total == 32
    assert patrol_coverage(sc.situation, hours=8).grid.total == 61
    # half an hour later the window opens at −90, a quarter of the way from ix+59 (−90.25) to
    # ix+60 (−89.25): two cells; a minute later the last position is behind it: none
    sc.clock.advance(30 * MIN)
    assert patrol_coverage(sc.situation, hours=2).grid.total == 2
    sc.clock.advance(MIN)
    assert patrol_coverage(sc.situation, hours=2).grid.total == 0


# ---- panels -----------------------------------------------------------------------------

@pytest.fixture
def wall(qapp):
    apply_theme(qapp)
    return qapp


def cells(panel, key, role=Qt.DisplayRole):
    row = panel.model.keys.index(key)
    return [panel.model.data(panel.model.index(row, c), role)
            for c in range(panel.model.columnCount())]


def test_kpi_strip_zh_and_en(qtbot, wall, fixed):
    # every figure (where no full header is above it); every ratio (the default: 5)
    p = SupervisionKpis(fixed.situation, "zh", min_cases=1, keys=SupervisionKpis.ALL_KEYS)
    qtbot.addWidget(p)
    p.refresh()
    tiles = p.tiles
    assert p.title.text() == "监督考评"
    assert [tiles[k].value.text() for k in p.ALL_KEYS] == ["5", "3", "75%", "15.0", "60%",
                                                           "40%", "20%"]
    assert tiles["scene"].unit.text() == "分"
    assert tiles["fast"].detail.text() == "3/4 件" and tiles["close"].detail.text() == "3/5 件"
    assert tiles["overdue"].detail.text() == "占在办 60%"
    colour = {k: tiles[k].value.styleSheet() for k in p.ALL_KEYS}
    assert theme.ALARM in colour["overdue"] and theme.WARN in colour["fast"]
    assert theme.TEXT in colour["scene"] and theme.ALARM in colour["on_time"]
    assert "应结案 5 件" in p.summary.text() and "近24小时" in p.summary.text()
    assert not p.grab().isNull()
    en = SupervisionKpis(fixed.situation, "en", min_cases=1, keys=SupervisionKpis.ALL_KEYS)
    qtbot.addWidget(en)
    en.refresh()
    assert en.title.text() == "Supervision"
    assert en.tiles["on_time"].caption.text() == "Closed on time"
    assert en.tiles["fast"].detail.text() == "3 of 4" and en.tiles["scene"].unit.text() == "min"
    assert en.summary.text() == "Last 24 h · 5 due to close · 3 closed"
    fixed.clock.advance(HOUR)
    en.refresh()
    assert en.tiles["overdue"].value.text() == "5" and en.tiles["close"].value.text() == "42.9%"


def test_kpi_strip_does_not_repeat_the_headers_figures(qtbot, wall, fixed):
    """Right under the command screen's header the strip shows only what the header does
    not: open and overdue are the header's (overdue the largest figure on the wall)."""
    from widgets.header import Header
    header = Header(fixed.situation, "zh", "LIVE")
    qtbot.addWidget(header)
    p = SupervisionKpis(fixed.situation, "zh", min_cases=1)
    qtbot.addWidget(p)
    p.refresh()
    assert set(p.tiles) == set(p.KEYS) and not set(p.tiles) & set(header.kpis)
    captions = {tile.caption.text() for tile in p.tiles.values()}
    assert not captions & {kpi.label.text() for kpi in header.kpis.values()}
    assert [p.tiles[k].value.text() for k in p.KEYS] == ["75%", "15.0", "60%", "40%", "20%"]


def test_district_table_worst_first_and_red_overdue(qtbot, wall, fixed):
    p = DistrictSupervision(fixed.situation, "zh", min_cases=1)   # every ratio
    qtbot.addWidget(p)
    p.refresh()
    assert p.title.text() == "各区监督考评" and p.model.headers[4] == "结案率"
    assert p.model.keys[:3] == [CITY, CHAO, DONG]        # the city, then most overdue
    assert cells(p, CITY)[:8] == ["全市", "5", "3", "5", "60%", "40%", "20%", "75%"]
    assert cells(p, CHAO) == ["朝阳", "4", "3", "2", "0%", "0%", "0%", "100%", "—"]
    assert cells(p, DONG) == ["东城", "1", "0", "3", "100%", "66.7%", "33.3%", "66.7%", "15.0"]
    assert cells(p, CHAO, Qt.ForegroundRole)[2].color().name() == theme.ALARM
    assert cells(p, CHAO, Qt.BackgroundRole)[0].color().name() == theme.ALARM_BG   # 3 overdue
    assert cells(p, DONG, Qt.ForegroundRole)[6].color().name() == theme.ALARM      # rework 33 %
    assert cells(p, DONG, Qt.ToolTipRole)[5] == "<qt>2/3</qt>"
    assert cells(p, "110102")[4] == "—"
    p.sort_by("c.scene")                                 # slowest to the scene first
    assert p.model.keys[1] == DONG
    p.table.horizontalHeader().sectionClicked.emit(0)    # 区: the usual order
    assert p.model.keys == [CITY] + CODES
    assert not p.grab().isNull()
    en = DistrictSupervision(fixed.situation, "en", min_cases=1)
    qtbot.addWidget(en)
    en.refresh()
    assert en.model.headers[:3] == ["District", "Open", "Overdue"]
    assert cells(en, CHAO)[0] == "Chaoyang" and cells(en, CITY)[0] == "City"
    assert en.summary.text() == "Last 24 h · worst Overdue first"


def test_coverage_panel_numbers_views_and_recompute(qtbot, wall):
    sc = Scenario(NOW)
    ix, iy = _dong_row()
    _unit_at(sc, "V1", NOW - 2 * MIN, *_cell_centre(ix, iy))
    _unit_at(sc, "V1", NOW - MIN, *_cell_centre(ix + 30, iy))
    p = PatrolCoverage(sc.situation, "zh", hours=2)
    qtbot.addWidget(p)
    p.resize(1400, 800)
    p.refresh()
    assert p.title.text() == "巡查覆盖" and p.hours_box.currentText() == "近2小时"
    share = 31 / district_cells().cells[0]
    assert p.bar_texts[0].textItem.toPlainText().strip() == f"{share * 100:.1f}%"
    assert "1 个单元" in p.summary.text() and "31 格" in p.summary.text()
    shown, _ = p.display()                      # the city in 500 m blocks: 31 cells in ≥ 7
    assert np.nansum(shown > 0) >= 7 and np.nanmax(shown) <= 1
    p.show_area(DONG)                           # 东城 cell by cell
    shown, rect = p.display()
    assert np.nansum(shown) == 31 and np.isfinite(shown).sum() == district_cells().cells[0]
    # new track: not drawn until the recompute is due (10 s of link time) or settings change
    _unit_at(sc, "V2", NOW, *_cell_centre(ix, iy + 5))
    p.refresh()
    assert p.coverage.units == 1
    sc.clock.advance(10_000)
    p.refresh()
    assert p.coverage.units == 2
    _unit_at(sc, "V2", NOW + 10_000, *_cell_centre(ix + 3, iy + 5))
    p.set_hours(8)
    assert p.coverage.hours == 8 and p.coverage.grid.total == 31 + 4
    assert not p.grab().isNull()
    en = PatrolCoverage(sc.situation, "en")
    qtbot.addWidget(en)
    en.refresh()
    assert en.title.text() == "Patrol coverage" and en.hours_box.currentText() == "Last 8 h"
    assert "2 units" in en.summary.text()
    assert en.labels[0].textItem.toPlainText().startswith("Dongcheng ")


# ---- the demo city: screenshots ---------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_city():
    """Ten hours of the demo city from 06:00, applied every two minutes."""
    from feeds.simulator import DemoCity
    start = NOW - 13 * HOUR - 30 * MIN            # 06:00
    city = DemoCity(seed=1, start_ms=start)
    sc = Scenario(start)
    t = start
    while t < start + 10 * HOUR:
        t += 2 * MIN
        sc.clock.set(t)
        sc.situation.apply(Batch(records=[r for _, rs in city.step(t) for r in rs]))
    return sc


def test_panels_on_the_demo_city_screenshots(qtbot, wall, demo_city):
    s = demo_city.situation
    k = kpis(s)
    assert k.open > 20 and k.due_to_close > 50 and 0 < k.close_rate <= 1
    assert 0 <= k.on_time_rate <= k.close_rate and k.dispatch_to_scene_min > 0
    for cls, size, path in ((SupervisionKpis, (1900, 300), "/tmp/sup_kpis.png"),
                            (DistrictSupervision, (1300, 900), "/tmp/sup_districts.png"),
                            (PatrolCoverage, (1500, 900), "/tmp/sup_coverage.png")):
        panel = cls(s, "zh")
        qtbot.addWidget(panel)
        panel.resize(*size)
        panel.show()
        qtbot.waitExposed(panel)
        panel.refresh()
        img = panel.grab()
        assert not img.isNull() and img.width() == size[0]
        assert img.save(path)
    cov = patrol_coverage(s, hours=8)
    assert cov.units >= 100 and cov.share[DONG] > cov.share["110116"]     # the core is walked

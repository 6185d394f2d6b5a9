"""Charts read from four metres (issue #14): on every chart panel — peak duty, temporal and
spatial heat, patrol coverage, the replay timeline — every shown axis has tick labels of at
least 18 px and, where it carries figures, a label of at least 18 px naming what they are and
their unit; legends are at least 18 px; the sensor tiles never cut their key figure and their
worst-readings list names the sensor, its district, value and level; and none of these files
spells a colour of its own (the palette, ``situation/palette.py``, is the one place)."""
from __future__ import annotations

import re
from pathlib import Path

import pyqtgraph as pg
import pytest
from PySide6.QtGui import QFontMetrics

from tests.scenario import Scenario
from widgets import charts
from widgets.theme import apply_theme

ROOT = Path(__file__).resolve().parents[1]
NOW = 1_795_449_600_000 + 19 * 3_600_000 + 30 * 60_000     # 2026-11-24 19:30 Beijing
MIN_PX = 18
UNIT = re.compile(r"[（(].+[）)]|%|/|per |people|人|起|件|hour|时|district|区")


def shown_text(lab) -> str:
    """The characters a label shows: a rich-text label (the tiles' coloured counts) as
    plain text."""
    from PySide6.QtCore import Qt as _Qt
    from PySide6.QtGui import QTextDocumentFragment
    if lab.textFormat() == _Qt.RichText:
        return QTextDocumentFragment.fromHtml(lab.text()).toPlainText()
    return lab.text()


@pytest.fixture
def themed(qapp):
    apply_theme(qapp)
    return qapp


def _panels(sc, lang):
    from widgets.heat_panels import SpatialHeatPanel, TemporalHeatPanel
    from widgets.peak_duty import PeakDuty
    from widgets.supervision_coverage import PatrolCoverage
    return [PeakDuty(sc.situation, lang), TemporalHeatPanel(sc.situation, lang),
            SpatialHeatPanel(sc.situation, lang), PatrolCoverage(sc.situation, lang)]


def _axes(panel):
    """(where, axis) of every axis drawn with tick labels or a label."""
    out = []
    for pw in panel.findChildren(pg.PlotWidget):
        for item in pw.scene().items():
            if isinstance(item, pg.AxisItem) and item.isVisible():
                out.append(item)
    return out


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_chart_axis_and_legend_reads_from_four_metres(qtbot, themed, lang):
    sc = Scenario(NOW)
    sc.case("C1", 5, status="registered")
    for panel in _panels(sc, lang):
        qtbot.addWidget(panel)
        panel.resize(1400, 700)
        panel.show()
        panel.refresh()
        axes = _axes(panel)
        assert axes, panel.name
        for axis in axes:
            where = f"{panel.name} {axis.orientation}"
            shows_values = axis.style.get("showValues", True)
            if shows_values:
                assert axis.style["tickFont"] is not None, where
                assert axis.style["tickFont"].pixelSize() >= MIN_PX, where
            label = axis.labelText
            if axis.label.isVisible() and label:
                assert charts.label_px(axis) >= MIN_PX, where
            # every axis with figures names them and their unit (the colour bars' value side
            # is named by the bar's label beside it)
            if shows_values and axis.orientation in ("left", "bottom") \
                    and not isinstance(axis.parentItem(), pg.ColorBarItem):
                assert label and UNIT.search(label), (where, label)
        for bar in [i for pw in panel.findChildren(pg.PlotWidget) for i in pw.scene().items()
                    if isinstance(i, pg.ColorBarItem)]:
            left = bar.getAxis("left")
            assert left.labelText and UNIT.search(left.labelText), panel.name
            assert charts.label_px(left) >= MIN_PX
        for legend in [i for pw in panel.findChildren(pg.PlotWidget)
                       for i in pw.scene().items() if isinstance(i, pg.LegendItem)]:
            sizes = charts.legend_px(legend)
            assert sizes and min(sizes) >= MIN_PX, (panel.name, sizes)


def test_peak_duty_axes_name_cases_people_and_hours(qtbot, themed):
    from widgets.peak_duty import PeakDuty
    p = PeakDuty(Scenario(NOW).situation, "zh")
    qtbot.addWidget(p)
    pi = p.plot.getPlotItem()
    assert "起/时" in pi.getAxis("left").labelText or "起/" in pi.getAxis("left").labelText
    assert "（人）" in pi.getAxis("right").labelText
    assert "北京时间" in pi.getAxis("bottom").labelText
    assert min(charts.legend_px(p.legend)) >= MIN_PX


def test_the_timelines_axes_and_key(qtbot, themed):
    """The strip is ~100 px tall: its time axis is named in the key beside it (Beijing
    time), its volume axis in its top gridline's label (messages a minute); overdue is red
    like the alarms, told apart by a dashed line."""
    from PySide6.QtCore import Qt

    from widgets import theme
    from widgets.timeline import OVERDUE_SYMBOL, Timeline, legend_html
    tl = Timeline(NOW - 3_600_000, NOW, "zh")
    qtbot.addWidget(tl)
    pi = tl.getPlotItem()
    for side in ("bottom", "left"):
        assert pi.getAxis(side).style["tickFont"].pixelSize() >= MIN_PX
    assert "北京时间" in legend_html("zh") and "Beijing" in legend_html("en")
    assert tl.overdue.opts["pen"].color().name() == theme.ALARM
    assert tl.overdue.opts["pen"].style() == Qt.DashLine
    assert tl.alarms.opts["pen"].style() == Qt.SolidLine
    assert OVERDUE_SYMBOL in legend_html("zh") and theme.WARN not in legend_html("zh")


# ---- sensor tiles ----------------------------------------------------------------------------

def _sensors(sc):
    sc.sensor("AQ-1", "air", pm25=20.0, pm10=30.0)
    sc.sensor("AQ-2", "air", pm25=80.0, pm10=90.0)
    sc.sensor("AQ-3", "air", pm25=260.0, pm10=300.0)
    sc.sensor("NS-1", "noise", laeq=91.0)
    for i in range(40):
        sc.sensor(f"WB-{i:02d}", "waste", fill_pct=float(50 + i))


# the cells the layouts give the panel (replay's one screen, two and three screens, narrow)
SIZES = [(914, 300), (1150, 500), (1920, 400), (700, 330), (600, 260), (480, 620)]


def _tiles_at(qtbot, p, w: int, h: int, lang: str):
    """The sensor-tiles panel shown at w × h and redrawn; it must not ask for more room than
    that (a panel whose minimum is larger than its cell pushes its neighbours or is cut)."""
    qtbot.addWidget(p)
    p.resize(w, h)
    p.show()
    p.refresh()
    qtbot.wait(1)
    where = f"{lang} {w}x{h}"
    least = p.minimumSizeHint()
    assert least.width() <= w and least.height() <= h, (where, least)
    return p, where


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_sensor_tiles_never_cut_the_key_figure_nor_overlap(qtbot, themed, lang):
    from widgets.sensor_tiles import SensorTiles
    sc = Scenario(NOW)
    _sensors(sc)
    for w, h in SIZES:
        p, where = _tiles_at(qtbot, SensorTiles(sc.situation, lang), w, h, lang)
        rects = []
        for kind, tile in p.tiles.items():
            assert tile.value.isVisibleTo(tile), (where, kind)
            fm = QFontMetrics(tile.value.font())
            assert fm.horizontalAdvance(tile.value.text()) <= tile.value.width(), (where, kind)
            assert tile.value.geometry().right() <= tile.width(), (where, kind)
            for lab in tile.shown_texts():
                fm = QFontMetrics(lab.font())
                assert fm.horizontalAdvance(shown_text(lab)) <= lab.width() + 1, \
                    (where, kind, lab.text())
                assert lab.font().pixelSize() >= 20, (where, kind, lab.text())
            rects.append(tile.geometry())
        for i, a in enumerate(rects):                                   # no two overlap
            assert all(not a.intersects(b) for b in rects[i + 1:]), where
        # the dot row is left out only when the tile has no room, and the summary says so
        dropped = [t for t in p.tiles.values() if t.view.dots and not t.dots.isVisibleTo(t)]
        assert bool(dropped) == p.no_dots, where
        if dropped:
            assert ("状态点" if lang == "zh" else "dots") in p.summary.text() \
                or p.summary.text().count("·") >= 1, where


def test_the_worst_readings_say_which_sensor_where_value_and_level(qtbot, themed):
    from widgets import theme
    from widgets.sensor_tiles import SensorTiles
    sc = Scenario(NOW)
    _sensors(sc)
    p = SensorTiles(sc.situation, "zh")
    qtbot.addWidget(p)
    p.resize(1920, 420)
    p.show()
    p.refresh()
    assert p.worst.isVisibleTo(p)
    rows = [lab for lab in p.worst.rows if lab.isVisibleTo(p)]
    assert rows and rows[0].text().startswith("告警")
    assert "AQ-3" in rows[0].text() and "PM" in rows[0].text() and "µg/m³" in rows[0].text()
    assert theme.ALARM in rows[0].styleSheet()
    assert all(lab.font().pixelSize() >= 20 for lab in rows)
    from situation.thresholds import ALARM, reading_level
    alarms = sum(1 for r in sc.situation.sensors.values()
                 if reading_level(r.kind, r.metrics) == ALARM)
    assert p.alarm_count() == alarms                 # the header's 感知告警, itemised here
    en = SensorTiles(sc.situation, "en")
    qtbot.addWidget(en)
    en.resize(1150, 500)
    en.show()
    en.refresh()
    texts = [lab.text() for lab in en.worst.rows if lab.isVisibleTo(en)]
    assert texts and "AQ-3" in texts[0]


def _all_kinds(sc):
    """Every kind with a reading, alarms and warnings among them (the demo city's mix)."""
    _sensors(sc)
    sc.sensor("CR-1", "crowd", density=199.7)
    sc.sensor("VD-1", "vendor", detections=8.0)
    sc.sensor("PK-1", "parking", illegal=25.0)
    sc.sensor("MH-1", "manhole", open=1.0, tilt_deg=23.3)
    sc.sensor("MH-2", "manhole", open=1.0)


# the one-screen wall's bottom row at 1920×1080 and 2560×1440, and a little shorter
SHORT_WIDE = [(750, 164), (749, 171), (1005, 221), (720, 150)]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_short_wide_cell_gets_one_line_tiles_none_cut(qtbot, themed, lang):
    """The one-screen wall gives the panel about 750 × 164 px: the tiles go on one line each
    ("空气 118.5 µg/m³"), nothing under 18 px, no label cut by the tile or the panel, the key
    figure whole, and the summary says the worst reading (the list has no room)."""
    from PySide6.QtCore import QPoint, QRect
    from widgets.sensor_tiles import SensorTiles
    sc = Scenario(NOW)
    _all_kinds(sc)
    for w, h in SHORT_WIDE:
        p, where = _tiles_at(qtbot, SensorTiles(sc.situation, lang), w, h, lang)
        assert p.arrangement[0] == "compact", (where, p.arrangement)
        box = QRect(QPoint(0, 0), p.tile_box.size())
        rects = []
        for kind, tile in p.tiles.items():
            assert box.contains(tile.geometry()), (where, kind, tile.geometry(), box)
            assert tile.value.isVisibleTo(tile) and not tile.dots.isVisibleTo(tile), where
            assert tile.value.font().pixelSize() >= 20, (where, kind)
            inside = QRect(QPoint(0, 0), tile.size())
            for lab in tile.shown_texts():
                fm = QFontMetrics(lab.font())
                assert fm.horizontalAdvance(shown_text(lab)) <= lab.width() + 1, \
                    (where, kind, lab.text())
                assert fm.tightBoundingRect(lab.text()).height() <= lab.height(), \
                    (where, kind, lab.text())
                assert inside.contains(lab.geometry()), (where, kind, lab.text())
                assert lab.font().pixelSize() >= 18, (where, kind, lab.text())
                assert not lab.visibleRegion().isEmpty(), (where, kind, lab.text())
            assert tile.title.text() == tile.view.title                 # "空气", then the figure
            assert tile.value.text() == tile.view.value and tile.value.x() > tile.title.x()
            rects.append(tile.geometry())
        for i, a in enumerate(rects):                                   # no two overlap
            assert all(not a.intersects(b) for b in rects[i + 1:]), where
        assert p.no_dots, where
        assert not p.worst.isVisibleTo(p), where
        assert ("最差" if lang == "zh" else "orst") in p.summary.text(), (where, p.summary.text())
        assert p.worst_lines[0][0][1] in p.summary.text(), where      # its sensor
        summary_fm = QFontMetrics(p.summary.font())
        assert summary_fm.horizontalAdvance(p.summary.text()) <= p.summary.width() + 1, where
    # taller again: the tiles as they were, the worst list back
    p.resize(1150, 500)
    qtbot.wait(1)
    assert p.arrangement[0] != "compact" and p.worst.isVisibleTo(p)
    assert all(t.compact is None and t.title.font().pixelSize() == 24 for t in p.tiles.values())


# ---- colours come from the palette --------------------------------------------------------

MINE = ["widgets/sensor_tiles.py", "widgets/supervision.py", "widgets/supervision_coverage.py",
        "widgets/peak_duty.py", "widgets/heat_panels.py", "widgets/timeline.py",
        "widgets/header.py", "widgets/tiles.py", "widgets/format.py", "widgets/charts.py"]
LITERAL = re.compile(r"#[0-9a-fA-F]{6}\b|#[0-9a-fA-F]{3}\b|\brgba?\(\s*\d|QColor\(\s*\d"
                     r"|mkColor\(\s*\d|mkBrush\(\s*\d|mkPen\(\s*\d"
                     r"|Qt\.(red|green|blue|white|black|yellow|gray)\b"
                     r"|_RGBA\s*=\s*\(")


@pytest.mark.parametrize("path", MINE)
def test_chart_and_tile_files_spell_no_colour(path):
    text = (ROOT / path).read_text(encoding="utf-8")
    hits = [line for line in text.splitlines() if LITERAL.search(line)]
    assert not hits, hits

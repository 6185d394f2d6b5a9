"""Supervision panels (监察, 巡查即监察): the key figures of how the city answers its cases, the
same per district, and where the patrols went.

Everything is derived from the situation on refresh (``situation.supervision``), on the
situation's clock; what a panel keeps is view settings (sort column, window, area) and, for
patrol coverage, the figures of its last computation (recomputed at most every
``RECOMPUTE_MS`` of link time: the tracks of a day take a tenth of a second or two).
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout

from feeds.districts import by_adcode, city_bbox, load_districts
from situation.catalog import district_name
from situation.heat import COS_LAT, HOUR_MS
from situation.store import Change
from situation.supervision import (CITY, COVERAGE_HOURS, OUTSIDE, WINDOW_MS, Kpis, Rate,
                                   district_cells, district_kpis, figure_text, kpis,
                                   min_cases_or_default, minutes_text, patrol_coverage,
                                   share_text, too_few_parts)
from widgets import theme
from widgets.heat_panels import _colour_bar, _combo, _plot, _style_axis
from widgets.panel import Cell, Panel, TablePanel

# The panels' own words (zh, en); widgets/i18n.py has no entries for them.
STRINGS: dict[str, tuple[str, str]] = {
    "panel.supervision_kpis": ("监督考评", "Supervision"),
    "panel.district_supervision": ("各区监督考评", "Supervision by district"),
    "panel.patrol_coverage": ("巡查覆盖", "Patrol coverage"),
    "k.open": ("在办案件", "Open cases"),
    "k.overdue": ("超期", "Overdue"),
    "k.fast": ("5分钟派遣率", "Dispatched ≤ 5 min"),
    "k.scene": ("派遣→到场", "Dispatch → on scene"),
    "k.close": ("结案率", "Close rate"),
    "k.on_time": ("按期结案率", "Closed on time"),
    "k.rework": ("返工率", "Rework rate"),
    "unit.min": ("分", "min"),
    "d.of": ("{a}/{b} 件", "{a} of {b}"),
    "d.mean": ("{n} 件平均", "mean of {n}"),
    "d.share_open": ("占在办 {p}", "{p} of open"),
    "d.none": ("暂无", "none yet"),
    "d.too_few": ("不足 {n} 件，不计", "fewer than {n}: not rated"),
    "sum.kpis": ("近{h}小时 · 应结案 {due} 件 · 结案 {closed} 件",
                 "Last {h} h · {due} due to close · {closed} closed"),
    "sum.rule": (" · 不足 {n} 件不计比率", " · no rate under {n} cases"),
    "c.district": ("区", "District"),
    "c.open": ("在办", "Open"),
    "c.overdue": ("超期", "Overdue"),
    "c.due": ("应结案", "Due"),
    "c.close": ("结案率", "Closed"),
    "c.on_time": ("按期结案率", "On time"),
    "c.rework": ("返工率", "Rework"),
    "c.fast": ("5分钟派遣", "≤5 min disp."),
    "c.scene": ("到场(分)", "To scene (min)"),
    "city": ("全市", "City"),
    "sum.table": ("近{h}小时 · 按{col}排序，最差在前", "Last {h} h · worst {col} first"),
    "sum.table_plain": ("近{h}小时 · 按区排列", "Last {h} h · in district order"),
    "hours": ("时段", "Window"),
    "area": ("范围", "Area"),
    "win": ("近{h}小时", "Last {h} h"),
    "bar.share": ("已巡网格占比（%）", "share of cells patrolled (%)"),
    "axis.pct": ("100 m 网格覆盖率（%）", "100 m cells covered (%)"),
    "sum.cov": ("{win} · {units} 个单元 · 全市 {city} · {cells} 格",
                "{win} · {units} units · city {city} · {cells} cells"),
}


def t(key: str, lang: str, **values) -> str:
    zh, en = STRINGS[key]
    text = zh if lang == "zh" else en
    return text.format(**values) if values else text


# ---- how a figure reads: its words and its colour --------------------------------------------

# (warn, alarm) limits of each rate; "up" rates are good high, "down" rates good low.
LIMITS: dict[str, tuple[str, float, float]] = {
    "fast": ("up", 0.8, 0.5),
    "scene": ("down", 15.0, 30.0),            # minutes
    "close": ("up", 0.9, 0.8),
    "on_time": ("up", 0.9, 0.8),
    "rework": ("down", 0.05, 0.10),
}


CITY_ROW_BG = "#14243f"         # the city's row in the district table


def level_colour(kind: str, value: float | None) -> str:
    """TEXT when fine, WARN past the first limit, ALARM past the second; DIM for no figure."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return theme.DIM
    way, warn, alarm = LIMITS[kind]
    if way == "up":
        return theme.ALARM if value < alarm else theme.WARN if value < warn else theme.TEXT
    return theme.ALARM if value > alarm else theme.WARN if value > warn else theme.TEXT


pct = share_text           # 0.75 → 75%; None or NaN → — (situation.supervision.share_text)
minutes = minutes_text     # 15.0 → "15.0"; None or NaN → —


def figure(k: Kpis, key: str, lang: str) -> tuple[str, str]:
    """(text, colour) of the figure ``key`` (fast, scene, close, on_time, rework): "60%" in
    its level's colour, or "暂无 (1 件)" / "n/a (1 case)" in the neutral DIM over fewer than
    ``k.min_cases`` cases — for the strip's neighbours (the handover summary)."""
    r = k.rate(key)
    return figure_text(r, lang, minutes=key == "scene"), level_colour(key, r.value)


def _label(text: str, px: int, colour: str, bold: bool = False,
           align=Qt.AlignCenter) -> QLabel:
    return theme.label(text, px, colour, bold, align)      # centred: the tiles' default


class KpiTile(QFrame):
    """One figure: its name, the number large with its unit, and what it is made of."""

    def __init__(self, caption: str, unit: str = "", parent=None):
        super().__init__(parent)
        self.setObjectName("kpiTile")
        self.setStyleSheet(f"QFrame#kpiTile {{ background: {theme.HEADER};"
                           f" border: 1px solid {theme.PANEL_EDGE}; border-radius: 6px; }}")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(12, 8, 12, 8)
        lay.setSpacing(0)
        self.caption = _label(caption, 22, theme.MUTED)
        row = QHBoxLayout()
        row.setSpacing(4)
        self.value = _label("—", 64, theme.TEXT, True)
        self.unit = _label(unit, 26, theme.MUTED, False, Qt.AlignLeft | Qt.AlignBottom)
        self.unit.setContentsMargins(0, 0, 0, 12)
        self.unit.setVisible(bool(unit))
        self.default_unit = unit
        row.addStretch(1)
        row.addWidget(self.value)
        row.addWidget(self.unit)
        row.addStretch(1)
        self.detail = _label("", 19, theme.MUTED)
        lay.addWidget(self.caption)
        lay.addLayout(row)
        lay.addWidget(self.detail)

    def set_figure(self, text: str, colour: str, detail: str = "",
                   unit: str | None = None) -> None:
        """The figure, its colour and detail; ``unit`` beside the figure in small type
        (None: the tile's own unit)."""
        self.value.setText(text)
        self.value.setStyleSheet(f"color: {colour}; background: transparent;")
        unit = self.default_unit if unit is None else unit
        self.unit.setText(unit)
        self.unit.setVisible(bool(unit))
        self.detail.setText(detail)
        self.layout().activate()

    def set_rate(self, kind: str, rate: Rate, lang: str, detail: str = "") -> None:
        """A share (or the mean minutes of ``scene``) in its level's colour; over fewer than
        ``rate.min_cases`` cases "暂无" large with "(1 件)" beside it, in the neutral DIM, and
        what it takes below — never a coloured percentage of one or two cases."""
        if not rate.enough:
            word, count = too_few_parts(rate.cases, lang)
            self.set_figure(word, theme.DIM, t("d.too_few", lang, n=rate.min_cases), count)
            return
        text = minutes(rate.value) if kind == "scene" else pct(rate.value)
        self.set_figure(text, level_colour(kind, rate.value), detail)


class SupervisionKpis(Panel):
    """A strip of the supervision figures for the whole city over the last 24 h of the
    situation's clock: open, overdue (red when any), dispatched within 5 minutes, mean
    minutes from dispatch to on scene, 结案率, 按期结案率, 返工率 — amber and red past their
    limits (``LIMITS``); over fewer than ``min_cases`` cases (default
    ``situation.supervision.MIN_CASES``) "暂无 (n 件)", neutral."""

    name = "supervision_kpis"
    KEYS = ("open", "overdue", "fast", "scene", "close", "on_time", "rework")

    def __init__(self, situation, lang: str = "zh", parent=None, window_ms: int = WINDOW_MS,
                 min_cases: int | None = None):
        super().__init__(situation, lang, parent)
        self.title.setText(t(f"panel.{self.name}", lang))
        self.window_ms = window_ms
        self.min_cases = min_cases_or_default(min_cases)
        strip = QHBoxLayout()
        strip.setSpacing(12)
        self.tiles: dict[str, KpiTile] = {}
        for key in self.KEYS:
            tile = KpiTile(t(f"k.{key}", lang), t("unit.min", lang) if key == "scene" else "")
            self.tiles[key] = tile
            strip.addWidget(tile, 1)
        self.body.addLayout(strip, 1)
        self.figures: Kpis | None = None        # the figures last shown (derived)

    def on_changed(self, change: Change) -> None:
        if change.cases:
            self.dirty = True

    def refresh(self) -> None:
        k = self.figures = kpis(self.situation, self.window_ms, min_cases=self.min_cases)
        lang = self.lang
        tiles = self.tiles
        tiles["open"].set_figure(str(k.open), theme.TEXT)
        overdue_share = Rate(k.overdue, k.open, k.min_cases)
        tiles["overdue"].set_figure(str(k.overdue), theme.ALARM if k.overdue else theme.OK,
                                    t("d.share_open", lang, p=pct(overdue_share.value))
                                    if overdue_share.enough else "")
        for key in ("fast", "close", "on_time", "rework"):
            r = k.rate(key)
            tiles[key].set_rate(key, r, lang, t("d.of", lang, a=int(r.num), b=r.cases))
        tiles["scene"].set_rate("scene", k.rate("scene"), lang, t("d.mean", lang, n=k.on_scene))
        self.summary.setText(t("sum.kpis", lang, h=self.window_ms // HOUR_MS,
                               due=k.due_to_close, closed=k.closed)
                             + (t("sum.rule", lang, n=k.min_cases) if k.min_cases > 1 else ""))
        self.body.activate()          # new widths now, not at the next event: a grab is right
        self.dirty = False


class DistrictSupervision(TablePanel):
    """The same figures per district, the city on the first row. Sorted worst first by the
    column last clicked (overdue by default); clicking 区 puts the districts back in their
    usual order. Overdue cells red, rates amber and red past their limits, a district with
    three or more overdue cases on a red row; a rate over fewer than ``min_cases`` cases is
    "暂无 (n 件)", neutral, and sorts with the districts that have none."""

    name = "district_supervision"
    columns = ("c.district", "c.open", "c.overdue", "c.due", "c.close", "c.on_time",
               "c.rework", "c.fast", "c.scene")
    stretch_column = 0
    # column → (table column, worst is high?) — what "worst first" means for each
    SORTS: dict[str, tuple[str, bool]] = {
        "c.open": ("open", True),
        "c.overdue": ("overdue", True),
        "c.due": ("due_to_close", True),
        "c.close": ("close_rate", False),
        "c.on_time": ("on_time_rate", False),
        "c.rework": ("rework_rate", True),
        "c.fast": ("dispatch_fast_share", False),
        "c.scene": ("dispatch_to_scene_min", True),
    }

    def __init__(self, situation, lang: str = "zh", parent=None, window_ms: int = WINDOW_MS,
                 min_cases: int | None = None):
        super().__init__(situation, lang, parent)
        self.title.setText(t(f"panel.{self.name}", lang))
        self.window_ms = window_ms
        self.min_cases = min_cases_or_default(min_cases)
        self.model.headers = [t(c, lang) for c in self.columns]
        self.model.headerDataChanged.emit(Qt.Horizontal, 0, len(self.columns) - 1)
        self.sort_column: str | None = "c.overdue"
        header = self.table.horizontalHeader()
        header.setSectionsClickable(True)
        header.setSortIndicatorShown(True)
        header.sectionClicked.connect(self._clicked)
        self._show_sort()
        self.table.verticalHeader().setDefaultSectionSize(40)
        self.frame = None              # the figures last shown (derived)

    def refresh(self) -> None:
        super().refresh()
        self.body.activate()          # the summary's new width now: a grab is right

    def _clicked(self, section: int) -> None:
        self.sort_by(self.columns[section])

    def sort_by(self, column: str | None) -> None:
        """Worst first by ``column`` (one of ``columns``); None or 区: district order."""
        self.sort_column = column if column in self.SORTS else None
        self._show_sort()
        self.refresh()

    def _show_sort(self) -> None:
        header = self.table.horizontalHeader()
        if self.sort_column is None:
            header.setSortIndicator(-1, Qt.DescendingOrder)
        else:
            high = self.SORTS[self.sort_column][1]
            header.setSortIndicator(self.columns.index(self.sort_column),
                                    Qt.DescendingOrder if high else Qt.AscendingOrder)

    def on_changed(self, change: Change) -> None:
        if change.cases:
            self.dirty = True

    def order(self, frame) -> list[str]:
        codes = [d.adcode for d in load_districts()]
        if self.sort_column is None:
            return codes
        col, high = self.SORTS[self.sort_column]
        rank = {c: i for i, c in enumerate(codes)}

        def key(code: str):
            row = frame.loc[code]
            v = float(row[col])
            missing = math.isnan(v)
            primary = 0.0 if missing else (-v if high else v)
            # ties: more overdue, then lower on-time rate, then more open, then usual order
            ot = float(row["on_time_rate"])
            return (missing, primary, -int(row["overdue"]), 2.0 if math.isnan(ot) else ot,
                    -int(row["open"]), rank[code])

        return sorted(codes, key=key)

    @staticmethod
    def _text(figure: Rate, lang: str, minutes: bool = False) -> str:
        """A cell's figure: "—" for no case at all (a quiet table of sixteen districts reads
        calmer so), "暂无 (n 件)" for too few, else the share or the minutes."""
        return "—" if figure.cases == 0 else figure_text(figure, lang, minutes)

    def derive(self, now: int):
        frame = self.frame = district_kpis(self.situation, self.window_ms, self.min_cases)
        lang = self.lang
        keys, rows = [], []
        for code in [CITY] + self.order(frame):
            r = frame.loc[code]
            city = code == CITY
            late = int(r["overdue"])
            bg = CITY_ROW_BG if city else (theme.ALARM_BG if late >= 3 else None)
            due = int(r["due_to_close"])

            def rate(kind: str, col: str, num: str, den: str) -> Cell:
                v = float(r[col])             # NaN over fewer than min_cases: neutral
                figure = Rate(float(r[num]), int(r[den]), self.min_cases)
                tip = f"{int(r[num])}/{int(r[den])}" if int(r[den]) else None
                return Cell(self._text(figure, lang), level_colour(kind, v), bg, tip=tip)

            scene = float(r["dispatch_to_scene_min"])
            scene_figure = Rate(float(r["scene_min_sum"]), int(r["on_scene"]), self.min_cases)
            rows.append([
                Cell(t("city", lang) if city else district_name(code, lang), None, bg,
                     bold=True),
                Cell(str(int(r["open"])), None, bg, bold=city),
                Cell(str(late), theme.ALARM if late else theme.DIM, bg, bold=bool(late)),
                Cell(str(due), None if due else theme.DIM, bg),
                rate("close", "close_rate", "closed", "due_to_close"),
                rate("on_time", "on_time_rate", "closed_on_time", "due_to_close"),
                rate("rework", "rework_rate", "reworked", "due_to_close"),
                rate("fast", "dispatch_fast_share", "dispatched_fast", "dispatched"),
                Cell(self._text(scene_figure, lang, True), level_colour("scene", scene),
                     bg, tip=f"n={int(r['on_scene'])}" if int(r["on_scene"]) else None),
            ])
            keys.append(code)
        h = self.window_ms // HOUR_MS
        if self.sort_column is None:
            summary = t("sum.table_plain", lang, h=h)
        else:
            summary = t("sum.table", lang, h=h, col=t(self.sort_column, lang))
        if self.min_cases > 1:
            summary += t("sum.rule", lang, n=self.min_cases)
        return keys, rows, summary


# ---- patrol coverage --------------------------------------------------------------------

# unvisited cells of a district faint slate, visited teal → cyan → white by share covered
COVERAGE_STOPS = ((0.0, "#17233a"), (0.001, "#0c4a6e"), (0.2, "#0e7490"), (0.5, "#06b6d4"),
                  (1.0, "#7df0ff"))
POOL = 5                 # city view: 5 × 5 unit cells (500 m) per display cell


def coverage_colormap() -> pg.ColorMap:
    return pg.ColorMap([p for p, _ in COVERAGE_STOPS], [pg.mkColor(c) for _, c in COVERAGE_STOPS])


def _pool(a: np.ndarray, k: int) -> np.ndarray:
    """Sums over k × k blocks (the array padded with zeros to whole blocks)."""
    ny, nx = a.shape
    py, px = -ny % k, -nx % k
    a = np.pad(a, ((0, py), (0, px)))
    return a.reshape(a.shape[0] // k, k, a.shape[1] // k, k).sum(axis=(1, 3))


class PatrolCoverage(Panel):
    """Where the units went (巡查即监察): the 100 m unit-grid cells some unit's track passed
    through in the last 2, 8 or 24 h of the situation's clock, over the district outlines — the
    whole city in 500 m blocks coloured by the share of their cells covered, or one district
    cell by cell — and each district's coverage in % beside it."""

    name = "patrol_coverage"
    RECOMPUTE_MS = 10_000          # link time between recomputations (settings changes: now)
    LABEL_PX = 20

    def __init__(self, situation, lang: str = "zh", parent=None, hours: int = 8):
        super().__init__(situation, lang, parent)
        self.title.setText(t(f"panel.{self.name}", lang))
        self.codes = [d.adcode for d in load_districts()]
        controls = QHBoxLayout()
        controls.setSpacing(10)
        self.hours_box = _combo([(t("win", lang, h=h), h) for h in COVERAGE_HOURS],
                                COVERAGE_HOURS.index(hours))
        self.area_box = _combo([(t("city", lang), None)]
                               + [(district_name(c, lang), c) for c in self.codes])
        for key, box in (("hours", self.hours_box), ("area", self.area_box)):
            label = QLabel(t(key, lang))
            label.setFont(theme.font(18))
            label.setStyleSheet(f"color: {theme.MUTED};")
            controls.addWidget(label)
            controls.addWidget(box)
            controls.addSpacing(8)
        controls.addStretch(1)
        self.body.addLayout(controls)

        grid = QGridLayout()
        grid.setHorizontalSpacing(10)
        self.map = _plot(theme.PANEL)
        pi = self.map.getPlotItem()
        pi.hideAxis("left")
        pi.hideAxis("bottom")
        pi.getViewBox().setAspectLocked(True, ratio=COS_LAT)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.map.addItem(self.image)
        self._outlines()
        self.bar = _colour_bar(coverage_colormap(), t("bar.share", lang), self.image, self.map,
                               (0.0, 1.0))
        self.bar.getAxis("right").setTicks([[(v, f"{v:.0%}") for v in (0, 0.25, 0.5, 0.75, 1)]])
        self.bars = self._bar_plot()
        grid.addWidget(self.map, 0, 0)
        grid.addWidget(self.bars, 0, 1)
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(1, 2)
        self.body.addLayout(grid, 1)

        self.coverage = None            # the last computation (derived)
        self._computed: tuple | None = None
        self._pooled_inside = _pool((district_cells().labels != OUTSIDE).astype(np.int32), POOL)
        self.hours_box.currentIndexChanged.connect(lambda _i: self._settings_changed())
        self.area_box.currentIndexChanged.connect(lambda _i: self._settings_changed())
        self._zoom()

    # ---- building -------------------------------------------------------------------------
    def _outlines(self) -> None:
        xs, ys = [], []
        for d in load_districts():
            for ring in d.rings:
                xs.extend([ring[:, 0], [np.nan]])
                ys.extend([ring[:, 1], [np.nan]])
        outline = pg.PlotDataItem(np.concatenate(xs), np.concatenate(ys), connect="finite",
                                  pen=pg.mkPen(theme.MUTED, width=1.4))
        outline.setZValue(10)
        self.map.addItem(outline)
        self.labels = []
        for d in load_districts():
            item = pg.TextItem("", color=pg.mkColor(232, 238, 248, 230), anchor=(0.5, 0.5),
                               fill=pg.mkBrush(7, 13, 26, 150))
            item.setFont(theme.font(self.LABEL_PX, bold=True))
            item.setPos(*d.centroid)
            item.setZValue(12)
            self.map.addItem(item)
            self.labels.append(item)

    def _bar_plot(self) -> pg.PlotWidget:
        plot = _plot(theme.PANEL)
        pi = plot.getPlotItem()
        vb = pi.getViewBox()
        vb.invertY(True)
        vb.setMouseEnabled(x=False, y=False)
        left, bottom = pi.getAxis("left"), pi.getAxis("bottom")
        _style_axis(left, 19)
        _style_axis(bottom, 17)
        left.setTicks([[(i, district_name(c, self.lang)) for i, c in enumerate(self.codes)]])
        left.setWidth(80 if self.lang == "zh" else 120)     # districts: named by their ticks
        bottom.setLabel(t("axis.pct", self.lang), color=theme.MUTED, **{"font-size": "17px"})
        n = len(self.codes)
        self.bar_item = pg.BarGraphItem(x0=np.zeros(n), y=np.arange(n), height=0.66,
                                        width=np.zeros(n), brush=pg.mkBrush("#0891b2"),
                                        pen=pg.mkPen(None))
        plot.addItem(self.bar_item)
        self.bar_texts = []
        for i in range(n):
            item = pg.TextItem("", color=theme.TEXT, anchor=(0, 0.5))
            item.setFont(theme.font(18, bold=True))
            item.setPos(0, i)
            plot.addItem(item)
            self.bar_texts.append(item)
        vb.setRange(yRange=(-0.6, n - 0.4), xRange=(0, 10), padding=0)
        vb.disableAutoRange()
        return plot

    # ---- settings -------------------------------------------------------------------------
    @property
    def hours(self) -> int:
        return self.hours_box.currentData()

    @property
    def area(self) -> str | None:
        return self.area_box.currentData()

    def set_hours(self, hours: int) -> None:
        self.hours_box.setCurrentIndex(COVERAGE_HOURS.index(hours))

    def show_area(self, adcode: str | None) -> None:
        self.area_box.setCurrentIndex(0 if adcode is None else self.codes.index(adcode) + 1)

    def _settings_changed(self) -> None:
        self._zoom()
        self.dirty = True
        self.refresh()

    def _zoom(self) -> None:
        west, south, east, north = by_adcode()[self.area].bbox if self.area else city_bbox()
        vb = self.map.getPlotItem().getViewBox()
        vb.setRange(xRange=(west, east), yRange=(south, north), padding=0.03)
        vb.disableAutoRange()

    def on_changed(self, change: Change) -> None:
        if change.units:
            self.dirty = True

    # ---- drawing -------------------------------------------------------------------------
    def recompute(self) -> None:
        self.coverage = patrol_coverage(self.situation, self.hours)
        self._computed = (self.situation.clock.link_ms(), self.hours)

    def _due(self) -> bool:
        if self._computed is None or self._computed[1] != self.hours:
            return True
        if self.coverage is not None and not self.coverage.units and self.situation.tracks:
            return True              # nothing had reported yet: do not wait the full pause
        return self.situation.clock.link_ms() - self._computed[0] >= self.RECOMPUTE_MS

    def display(self) -> tuple[np.ndarray, QRectF]:
        """The image to draw (share of each display cell covered, NaN outside every district)
        and where it goes."""
        cov = self.coverage
        g = cov.grid
        mask = district_cells(g.cell_m)
        inside = mask.labels != OUTSIDE
        visited = (g.values > 0) & inside
        if self.area is None:
            hit = _pool(visited.astype(np.int32), POOL)
            room = self._pooled_inside
            with np.errstate(invalid="ignore", divide="ignore"):
                shown = np.where(room > 0, hit / room, np.nan)
            return shown, QRectF(g.west, g.south, shown.shape[1] * POOL * g.dlon,
                                 shown.shape[0] * POOL * g.dlat)
        x0, y0, x1, y1 = by_adcode()[self.area].bbox
        c0 = max(0, math.floor((x0 - g.west) / g.dlon) - 2)
        c1 = min(g.nx, math.ceil((x1 - g.west) / g.dlon) + 2)
        r0 = max(0, math.floor((y0 - g.south) / g.dlat) - 2)
        r1 = min(g.ny, math.ceil((y1 - g.south) / g.dlat) + 2)
        own = mask.labels[r0:r1, c0:c1] == self.codes.index(self.area)     # this district only
        shown = np.where(own, visited[r0:r1, c0:c1].astype(float), np.nan)
        return shown, QRectF(g.west + c0 * g.dlon, g.south + r0 * g.dlat,
                             (c1 - c0) * g.dlon, (r1 - r0) * g.dlat)

    def refresh(self) -> None:
        if self.coverage is None or self._due():
            self.recompute()
        cov = self.coverage
        shown, rect = self.display()
        self.image.setImage(shown, autoLevels=False)
        self.image.setRect(rect)
        self.bar.setLevels((0.0, 1.0))
        share = cov.share
        pcts = np.array([float(share[c]) * 100 if not math.isnan(share[c]) else 0.0
                         for c in self.codes])
        brushes = [pg.mkBrush(theme.ACCENT if c == self.area else "#0891b2")
                   for c in self.codes]         # the district in view stands out
        self.bar_item.setOpts(width=pcts, brushes=brushes)
        top = max(5.0, float(pcts.max()) * 1.3) if len(pcts) else 5.0
        self.bars.getPlotItem().getViewBox().setRange(xRange=(0, top), padding=0)
        for i, (c, item) in enumerate(zip(self.codes, self.bar_texts)):
            item.setText(" " + pct(share[c]))
            item.setPos(pcts[i], i)
        self._place_labels(share)
        self.summary.setText(t("sum.cov", self.lang, win=self.hours_box.currentText(),
                               units=cov.units, city=pct(share[CITY]),
                               cells=int(cov.visited[CITY])))
        self.body.activate()
        self.dirty = False

    def _place_labels(self, share) -> None:
        """Name and coverage on each district, where the text fits inside it at this zoom."""
        try:
            px = self.map.getPlotItem().getViewBox().viewPixelSize()
        except Exception:         # never shown: no size yet
            px = None
        if px is not None and not all(math.isfinite(v) and v > 0 for v in px):
            px = None
        (x0, x1), (y0, y1) = self.map.getPlotItem().getViewBox().viewRange()
        for d, item in zip(load_districts(), self.labels):
            text = f"{district_name(d.adcode, self.lang)} {pct(share[d.adcode])}"
            item.setText(text)
            if px is None:
                item.setVisible(True)
                continue
            wide = sum(1.0 if ord(ch) > 0x2e80 else 0.6 for ch in text) * self.LABEL_PX
            cx, cy = d.centroid
            half_w, half_h = wide / 2 * px[0], self.LABEL_PX * 0.7 * px[1]
            within = x0 + half_w <= cx <= x1 - half_w and y0 + half_h <= cy <= y1 - half_h
            item.setVisible(within and (d.bbox[2] - d.bbox[0]) / px[0] >= wide * 1.1)

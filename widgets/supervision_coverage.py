"""Patrol coverage (巡查即监察): where the units went — the 100 m unit-grid cells some unit's
track passed through over a window of the situation's clock, over the district outlines, and
each district's coverage in % beside it. Recomputed at most every ``RECOMPUTE_MS`` of link
time (the tracks of a day take a tenth of a second or two).
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QGridLayout

from feeds.districts import by_adcode, load_districts
from situation import palette
from situation.catalog import district_name
from situation.scope import district_codes, whole_bbox
from situation.heat import COS_LAT
from situation.store import Change
from situation.supervision import (CITY, COVERAGE_HOURS, OUTSIDE, district_cells,
                                   patrol_coverage, share_text)
from widgets import charts, theme
from widgets.i18n import tr
from widgets.panel import Panel

pct = share_text           # 0.75 → 75%; None or NaN → —


# ---- patrol coverage --------------------------------------------------------------------

# unvisited cells of a district faint slate, visited teal → cyan → white by share covered
COVERAGE_STOPS = palette.COVERAGE_RAMP
POOL = 5                 # city view: 5 × 5 unit cells (500 m) per display cell


coverage_colormap = charts.coverage_colormap


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
        self.title.setText(tr(f"panel.{self.name}", lang))
        self.codes = district_codes(situation)      # a district wall: its districts only
        self.scoped = getattr(situation, "scope", None) is not None
        self.hours_box = charts.combo([(tr("cov.win", lang, h=h), h) for h in COVERAGE_HOURS],
                                      COVERAGE_HOURS.index(hours))
        self.area_box = charts.combo([(tr("scope.total" if self.scoped else "cov.city", lang),
                                       None)]
                                     + [(district_name(c, lang), c) for c in self.codes])
        self.body.addLayout(charts.controls([(tr("cov.hours", lang), self.hours_box),
                                             (tr("cov.area", lang), self.area_box)]))

        grid = QGridLayout()
        grid.setHorizontalSpacing(10)
        self.map = charts.plot(theme.PANEL)
        pi = self.map.getPlotItem()
        pi.hideAxis("left")
        pi.hideAxis("bottom")
        pi.getViewBox().setAspectLocked(True, ratio=COS_LAT)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.map.addItem(self.image)
        self._outlines()
        self.bar = charts.colour_bar(coverage_colormap(), tr("cov.bar.share", lang),
                                     self.image, self.map, (0.0, 1.0))
        self.bar.getAxis("right").setTicks([[(v, f"{v:.0%}") for v in (0, 0.25, 0.5, 0.75, 1)]])
        self.bars = self._bar_plot()
        grid.addWidget(self.map, 0, 0)
        grid.addWidget(self.bars, 0, 1)
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(1, 2)
        self.body.addLayout(grid, 1)

        self.coverage = None            # the last computation (derived)
        self._computed: tuple | None = None
        self._pooled_inside = _pool((district_cells(crs=self.crs).labels != OUTSIDE)
                                    .astype(np.int32), POOL)
        self.hours_box.currentIndexChanged.connect(lambda _i: self._settings_changed())
        self.area_box.currentIndexChanged.connect(lambda _i: self._settings_changed())
        self._zoom()

    # ---- building -------------------------------------------------------------------------
    def _outlines(self) -> None:
        self.map.addItem(charts.district_outlines(self.crs))
        self.labels = []
        for d in load_districts(crs=self.crs):
            item = pg.TextItem("", color=charts.rgba(theme.TEXT, 230), anchor=(0.5, 0.5),
                               fill=pg.mkBrush(charts.rgba(theme.BG, 150)))
            item.setFont(theme.font(self.LABEL_PX, bold=True))
            item.setPos(*d.centroid)
            item.setZValue(12)
            self.map.addItem(item)
            self.labels.append(item)

    def _bar_plot(self) -> pg.PlotWidget:
        plot = charts.plot(theme.PANEL)
        pi = plot.getPlotItem()
        vb = pi.getViewBox()
        vb.invertY(True)
        vb.setMouseEnabled(x=False, y=False)
        left, bottom = pi.getAxis("left"), pi.getAxis("bottom")
        charts.style_axis(left, 20)
        charts.style_axis(bottom, 18)
        names = [district_name(c, self.lang) for c in self.codes]
        left.setTicks([list(enumerate(names))])
        left.setWidth(charts.names_width(names, 20))     # districts: named by their ticks
        charts.axis_label(left, tr("cov.axis.district", self.lang))
        charts.axis_label(bottom, tr("cov.axis.pct", self.lang))
        n = len(self.codes)
        self.bar_item = pg.BarGraphItem(x0=np.zeros(n), y=np.arange(n), height=0.66,
                                        width=np.zeros(n), brush=pg.mkBrush(palette.DATA),
                                        pen=pg.mkPen(None))
        plot.addItem(self.bar_item)
        self.bar_texts = []
        for i in range(n):
            item = pg.TextItem("", color=theme.TEXT, anchor=(0, 0.5))
            item.setFont(theme.font(20, bold=True))
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
        west, south, east, north = (by_adcode(self.crs)[self.area].bbox if self.area
                                    else whole_bbox(self.situation))
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
        mask = district_cells(g.cell_m, self.crs)
        inside = mask.labels != OUTSIDE
        visited = (g.values > 0) & inside
        if self.area is None:
            hit = _pool(visited.astype(np.int32), POOL)
            room = self._pooled_inside
            with np.errstate(invalid="ignore", divide="ignore"):
                shown = np.where(room > 0, hit / room, np.nan)
            return shown, QRectF(g.west, g.south, shown.shape[1] * POOL * g.dlon,
                                 shown.shape[0] * POOL * g.dlat)
        x0, y0, x1, y1 = by_adcode(self.crs)[self.area].bbox
        c0 = max(0, math.floor((x0 - g.west) / g.dlon) - 2)
        c1 = min(g.nx, math.ceil((x1 - g.west) / g.dlon) + 2)
        r0 = max(0, math.floor((y0 - g.south) / g.dlat) - 2)
        r1 = min(g.ny, math.ceil((y1 - g.south) / g.dlat) + 2)
        row = [d.adcode for d in load_districts()].index(self.area)      # its label in the mask
        own = mask.labels[r0:r1, c0:c1] == row                           # this district only
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
        brushes = [pg.mkBrush(theme.ACCENT if c == self.area else palette.DATA)
                   for c in self.codes]         # the district in view stands out
        self.bar_item.setOpts(width=pcts, brushes=brushes)
        top = max(5.0, float(pcts.max()) * 1.3) if len(pcts) else 5.0
        self.bars.getPlotItem().getViewBox().setRange(xRange=(0, top), padding=0)
        for i, (c, item) in enumerate(zip(self.codes, self.bar_texts)):
            item.setText(" " + pct(share[c]))
            item.setPos(pcts[i], i)
        self._place_labels(share)
        if self.scoped:         # a district wall: its districts' whole, not the city's
            cells = int(cov.visited[self.codes].sum())
            room = int(cov.cells[self.codes].sum())
            text = tr("cov.sum.scope", self.lang, win=self.hours_box.currentText(),
                      units=cov.units, share=pct(cells / room if room else None), cells=cells)
        else:
            text = tr("cov.sum.cov", self.lang, win=self.hours_box.currentText(),
                      units=cov.units, city=pct(share[CITY]), cells=int(cov.visited[CITY]))
        self.summary.setText(text)
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
        for d, item in zip(load_districts(crs=self.crs), self.labels):
            text = f"{district_name(d.adcode, self.lang)} {pct(share[d.adcode])}"
            item.setText(text)
            if d.adcode not in self.codes:          # a district wall: its districts' figures only
                item.setVisible(False)
                continue
            if px is None:
                item.setVisible(True)
                continue
            wide = sum(1.0 if ord(ch) > 0x2e80 else 0.6 for ch in text) * self.LABEL_PX
            cx, cy = d.centroid
            half_w, half_h = wide / 2 * px[0], self.LABEL_PX * 0.7 * px[1]
            within = x0 + half_w <= cx <= x1 - half_w and y0 + half_h <= cy <= y1 - half_h
            item.setVisible(within and (d.bbox[2] - d.bbox[0]) / px[0] >= wide * 1.1)

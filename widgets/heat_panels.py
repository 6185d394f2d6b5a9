"""Heatmap panels (pyqtgraph): where cases come from — a raster of case counts (or a sensor
metric) over the district outlines — and when — districts × hour of day, today against an
average day. Both derive everything from the situation on every refresh (``situation.heat``),
on the situation's clock; what they keep is view settings (window, layer, area, zoom).
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from feeds.districts import city_bbox, load_districts
from situation.catalog import METRIC_UNITS, district_name
from situation.scope import district_codes, whole_bbox
from situation.heat import (CITY_CELL_M, COS_LAT, HEAT_STOPS, HOUR_MS, SENSOR_LAYERS,
                            UNIT_CELL_M, WINDOWS_MS, case_heat, district_bbox, district_hours,
                            grid_for_view, heat_levels, local_day_hour, sensor_heat)
from situation.store import Change
from situation.thresholds import THRESHOLDS
from widgets import charts, theme
from widgets.i18n import tr
from widgets.panel import Panel

def heat_colormap() -> pg.ColorMap:
    """The case heat's scale (``situation.heat.HEAT_STOPS``, from the palette's HEAT_RAMP)."""
    return charts.colormap(HEAT_STOPS)


diverging_colormap = charts.diverging_colormap


# Colour scale of each sensor layer: its top is the alarm threshold.
SENSOR_LEVELS = {("air", "pm25"): (0.0, THRESHOLDS[("air", "pm25")][1]),
                 ("noise", "laeq"): (40.0, THRESHOLDS[("noise", "laeq")][1]),
                 ("crowd", "density"): (0.0, THRESHOLDS[("crowd", "density")][1]),
                 ("waste", "fill_pct"): (0.0, 100.0)}

class SpatialHeatPanel(Panel):
    """Cases per cell over a window of the situation's clock (or a sensor metric's latest
    mean per cell) as a raster over the 16 district outlines: 500 m cells for the city, the
    100 m unit grid for the visible area when the view spans about one district."""

    name = "spatial_heat"
    LABEL_PX = 22
    MIN_CELL_PX = 8

    def __init__(self, situation, lang: str = "zh", parent=None):
        super().__init__(situation, lang, parent)
        self.window_box = charts.combo([(tr(f"heat.win.{w // HOUR_MS}", lang), w)
                                        for w in WINDOWS_MS], 1)
        self.layer_box = charts.combo([(tr("heat.layer.cases", lang), None)]
                                      + [(tr(f"heat.layer.{k}.{m}", lang), (k, m))
                                         for k, m in SENSOR_LAYERS])
        # A district wall offers its own districts, and their whole in place of the city's.
        whole = tr("heat.city" if getattr(situation, "scope", None) is None else "scope.total",
                   lang)
        self.area_box = charts.combo([(whole, None)]
                                     + [(district_name(c, lang), c)
                                        for c in district_codes(situation)])
        self.body.addLayout(charts.controls(
            [(tr("heat.window", lang), self.window_box), (tr("heat.layer", lang), self.layer_box),
             (tr("heat.area", lang), self.area_box)]))

        self.plot = charts.plot(theme.PANEL)
        pi = self.plot.getPlotItem()
        pi.hideAxis("left")
        pi.hideAxis("bottom")
        vb = pi.getViewBox()
        # 1° of longitude is cos 40° as long as 1° of latitude on the ground
        vb.setAspectLocked(True, ratio=COS_LAT)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setZValue(0)
        self.plot.addItem(self.image)
        # At city scale a 500 m cell is two or three pixels: the cells holding something are
        # also drawn as squares big enough to see, in the same colours.
        self.cells = pg.ScatterPlotItem(pxMode=True, symbol="s", pen=None)
        self.cells.setZValue(15)
        self.plot.addItem(self.cells)
        self._lut = heat_colormap().getLookupTable(nPts=256, alpha=True)
        self._outlines()
        self.bar = charts.colour_bar(heat_colormap(), tr("heat.bar.cases", lang), self.image,
                                     self.plot, (0.0, 3.0))
        self.body.addWidget(self.plot, 1)
        self.grid = None           # the grid last drawn (derived, for tests and tooltips)
        self.show_area(None)
        vb.sigRangeChanged.connect(self._view_moved)
        self.window_box.currentIndexChanged.connect(self._settings_changed)
        self.layer_box.currentIndexChanged.connect(self._settings_changed)
        self.area_box.currentIndexChanged.connect(
            lambda _i: self.show_area(self.area_box.currentData()))

    def _outlines(self) -> None:
        self.plot.addItem(charts.district_outlines(self.crs))
        self.labels = []
        for d in load_districts(crs=self.crs):
            item = pg.TextItem(district_name(d.adcode, self.lang),
                               color=charts.rgba(theme.TEXT, 215), anchor=(0.5, 0.5))
            item.setFont(theme.font(self.LABEL_PX, bold=True))
            item.setPos(*d.centroid)
            item.setZValue(12)
            self.plot.addItem(item)
            self.labels.append(item)

    # ---- view settings ----------------------------------------------------------------
    def show_area(self, adcode: str | None) -> None:
        """Zoom to a district (its 100 m unit grid) or the whole city (None; a district wall:
        all its districts)."""
        west, south, east, north = (district_bbox(adcode, self.crs) if adcode
                                    else whole_bbox(self.situation))
        vb = self.plot.getPlotItem().getViewBox()
        vb.setRange(xRange=(west, east), yRange=(south, north), padding=0.03)
        vb.disableAutoRange()
        self.dirty = True
        self.refresh()

    def set_window(self, window_ms: int) -> None:
        self.window_box.setCurrentIndex(WINDOWS_MS.index(window_ms))

    def set_layer(self, layer: tuple[str, str] | None) -> None:
        """None: cases; (kind, metric): a sensor metric."""
        for i in range(self.layer_box.count()):
            if self.layer_box.itemData(i) == layer:
                self.layer_box.setCurrentIndex(i)
                return
        raise KeyError(layer)

    def _settings_changed(self, _index=None) -> None:
        self.window_box.setEnabled(self.layer_box.currentData() is None)
        self.dirty = True
        self.refresh()

    def _view_moved(self, *_args) -> None:
        self.dirty = True

    def on_changed(self, change: Change) -> None:
        if change.cases or change.sensors:
            self.dirty = True

    def view_bbox(self) -> tuple[float, float, float, float]:
        (x0, x1), (y0, y1) = self.plot.getPlotItem().getViewBox().viewRange()
        return x0, y0, x1, y1

    # ---- drawing -------------------------------------------------------------------------
    def derive(self):
        """The grid to draw: the city at 500 m, or the visible area at 100 m."""
        view = self.view_bbox()
        cell = grid_for_view(view)
        bbox = None
        if cell == UNIT_CELL_M:
            cw, cs, ce, cn = city_bbox(self.crs)
            bbox = (max(view[0], cw), max(view[1], cs), min(view[2], ce), min(view[3], cn))
            if bbox[0] >= bbox[2] or bbox[1] >= bbox[3]:
                bbox, cell = None, CITY_CELL_M          # looking off the city: show it all
        layer = self.layer_box.currentData()
        if layer is None:
            return case_heat(self.situation, self.window_box.currentData(), cell, bbox)
        return sensor_heat(self.situation, *layer, cell_m=cell, bbox=bbox)

    def refresh(self) -> None:
        grid = self.grid = self.derive()
        lang = self.lang
        if grid.counts:
            shown = np.where(grid.values > 0, grid.values, np.nan)     # no case: no colour
            levels = heat_levels(grid)
            label = tr("heat.bar.cases", lang)
        else:
            shown = grid.values
            layer = self.layer_box.currentData()
            levels = SENSOR_LEVELS.get(layer) or heat_levels(grid)
            unit = METRIC_UNITS.get(layer[1], "") if layer else ""
            label = f"{self.layer_box.currentText()} {unit}".strip()
        self.image.setImage(shown, autoLevels=False)
        self.image.setRect(QRectF(grid.west, grid.south, grid.nx * grid.dlon,
                                  grid.ny * grid.dlat))
        self.bar.setLevels(levels)
        self.bar.getAxis("right").setTicks([charts.count_ticks(levels[1])] if grid.counts else None)
        self._draw_cells(grid, shown, levels)
        self._place_labels()
        charts.axis_label(self.bar.getAxis("left"), label, colour=theme.TEXT)
        gridname = tr(f"heat.grid.{grid.cell_m}", lang)
        if grid.counts:
            win = self.window_box.currentText()
            whole_city = grid.cell_m == CITY_CELL_M
            text = tr("heat.sum.cases" if whole_city else "heat.sum.cases_view", lang, win=win,
                      n=int(grid.total), grid=gridname)
            if grid.outside and whole_city:
                text += tr("heat.sum.outside", lang, n=grid.outside)
        else:
            text = tr("heat.sum.sensors", lang, layer=self.layer_box.currentText(),
                     n=int(grid.total), grid=gridname)
        self.summary.setText(text)
        self.dirty = False


    def _pixel_deg(self) -> tuple[float, float] | None:
        """Degrees of longitude and latitude per screen pixel (None before the view has a
        size)."""
        try:
            px = self.plot.getPlotItem().getViewBox().viewPixelSize()
        except Exception:       # no size yet (never shown)
            return None
        if not all(math.isfinite(v) and v > 0 for v in px):
            return None
        return px

    def _draw_cells(self, grid, shown: np.ndarray, levels: tuple[float, float]) -> None:
        px = self._pixel_deg()
        cell_px = grid.dlon / px[0] if px else 0.0
        iy, ix = np.nonzero(np.isfinite(shown))
        if cell_px >= self.MIN_CELL_PX or iy.size == 0:
            self.cells.setData([], [])
            return
        lo, hi = levels
        v = shown[iy, ix]
        idx = np.clip((v - lo) / (hi - lo) * (len(self._lut) - 1), 0, len(self._lut) - 1)
        colours = self._lut[idx.astype(int)]
        brushes = [pg.mkBrush(*c) for c in colours]
        order = np.argsort(v)                        # the hottest drawn last, on top
        self.cells.setData(x=(grid.west + (ix[order] + 0.5) * grid.dlon),
                           y=(grid.south + (iy[order] + 0.5) * grid.dlat),
                           size=self.MIN_CELL_PX, brush=[brushes[i] for i in order])

    def _place_labels(self) -> None:
        """A district's name only where it fits inside the district at this zoom (东城 and
        西城 appear once the view is close enough not to pile them onto 朝阳)."""
        px = self._pixel_deg()
        x0, y0, x1, y1 = self.view_bbox()
        for d, item in zip(load_districts(crs=self.crs), self.labels):
            if px is None:
                item.setVisible(True)
                continue
            text = item.textItem.toPlainText()
            wide = sum(1.0 if ord(ch) > 0x2e80 else 0.6 for ch in text) * self.LABEL_PX
            half_w, half_h = wide / 2 * px[0], self.LABEL_PX * 0.7 * px[1]
            cx, cy = d.centroid
            within = x0 + half_w <= cx <= x1 - half_w and y0 + half_h <= cy <= y1 - half_h
            item.setVisible(within and (d.bbox[2] - d.bbox[0]) / px[0] >= wide * 1.25)


class TemporalHeatPanel(Panel):
    """Districts × hour of day (Beijing time): today's case counts against the average day
    before them. Colour is today − average (blue below, red above, blank for hours still to
    come; the hour under way is held against the share of its average elapsed so far); a cell
    where today is at least twice that and at least 3 cases is boxed and shows its count; a
    line marks now on the situation's clock. With no past day held there is nothing to compare
    with, and it claims nothing: today's counts alone on the case scale (dark to red), no
    "today − average" bar, no boxes — and the summary says there are no past days yet."""

    name = "temporal_heat"
    PEAK_FACTOR = 2.0
    PEAK_MIN = 3

    def __init__(self, situation, lang: str = "zh", parent=None):
        super().__init__(situation, lang, parent)
        self.codes = district_codes(situation)      # a district wall: its districts only
        n = len(self.codes)
        self.plot = charts.plot(theme.PANEL)
        pi = self.plot.getPlotItem()
        vb = pi.getViewBox()
        vb.invertY(True)                  # first district on top
        vb.setMouseEnabled(x=False, y=False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setRect(QRectF(0, 0, 24, n))
        self.plot.addItem(self.image)
        # thin panel-coloured lines between cells so each reads as a tile
        sep = pg.mkPen(theme.PANEL, width=2)
        for y in range(1, n):
            self.plot.addItem(pg.InfiniteLine(pos=y, angle=0, pen=sep))
        for x in range(1, 24):
            self.plot.addItem(pg.InfiniteLine(pos=x, angle=90, pen=sep))
        left, bottom = pi.getAxis("left"), pi.getAxis("bottom")
        charts.style_axis(left, 20)
        charts.style_axis(bottom, 18)
        left.setTicks([[(i + 0.5, district_name(c, lang)) for i, c in enumerate(self.codes)]])
        bottom.setTicks([[(h + 0.5, f"{h}") for h in range(0, 24, 2)],
                         [(h + 0.5, f"{h}") for h in range(1, 24, 2)]])
        # districts: named by their ticks, the axis' label beside them
        left.setWidth(charts.names_width([district_name(c, lang) for c in self.codes], 20))
        charts.axis_label(bottom, tr("heat.axis.hour", lang))
        charts.axis_label(left, tr("heat.axis.district", lang))
        self.now_line = pg.InfiniteLine(angle=90, pen=pg.mkPen(theme.ACCENT, width=3))
        self.now_line.setZValue(24)                # under the peak boxes and their counts
        self.plot.addItem(self.now_line)
        self.peak_boxes = pg.ScatterPlotItem(pxMode=False, symbol="s", size=0.92,
                                             brush=pg.mkBrush(None),
                                             pen=pg.mkPen(theme.TEXT, width=2.5))
        self.peak_boxes.setZValue(25)
        self.plot.addItem(self.peak_boxes)
        self.peak_labels: list[pg.TextItem] = []
        self.bar = charts.colour_bar(diverging_colormap(), tr("heat.bar.diff", lang),
                                     self.image, self.plot, (-2.0, 2.0))
        self.comparing = True      # a past day held: today against the average (else counts)
        vb.setRange(xRange=(0, 24), yRange=(0, n), padding=0)
        vb.disableAutoRange()
        self.body.addWidget(self.plot, 1)
        self.hours = None          # the figures last drawn (derived)
        self.peaks: list[tuple[str, int]] = []

    def on_changed(self, change: Change) -> None:
        if change.cases:
            self.dirty = True

    def _compare(self, comparing: bool) -> None:
        """Today against the average (diverging scale) or, with no past day, today's counts
        (the case scale)."""
        if comparing == self.comparing:
            return
        self.comparing = comparing
        self.bar.setColorMap(diverging_colormap() if comparing else heat_colormap())
        charts.axis_label(self.bar.getAxis("left"),
                          tr("heat.bar.diff" if comparing else "heat.bar.today", self.lang),
                          colour=theme.TEXT)

    def _peak_label(self, i: int) -> pg.TextItem:
        while len(self.peak_labels) <= i:
            item = pg.TextItem("", color=theme.TEXT, anchor=(0.5, 0.5))
            item.setFont(theme.font(18, bold=True))
            item.setZValue(26)
            self.plot.addItem(item)
            self.peak_labels.append(item)
        return self.peak_labels[i]

    def refresh(self) -> None:
        now = self.situation.now_ms()
        hours = self.hours = district_hours(self.situation)
        if len(self.codes) != len(hours.today):          # a district wall: its rows only
            hours = self.hours = hours._replace(today=hours.today.loc[self.codes],
                                                average=hours.average.loc[self.codes])
        today = hours.today.to_numpy(dtype=float)
        avg = hours.average.to_numpy(dtype=float)
        _, hour_now = local_day_hour(np.array([now]))
        h = int(hour_now[0])
        frac = (now % HOUR_MS) / HOUR_MS       # Beijing is a whole hours off UTC
        expected = avg.copy()
        expected[:, h] *= frac                   # the hour under way: its share so far
        self._compare(bool(hours.days))
        if self.comparing:
            shown = today - expected
            shown[:, h + 1:] = np.nan                # hours still to come: blank
            top = np.nanmax(np.abs(shown)) if np.isfinite(shown).any() else 0.0
            span = max(2.0, float(math.ceil(top)))
            levels = (-span, span)
        else:                                        # nothing to compare with: counts alone
            shown = np.where(today > 0, today, np.nan)
            shown[:, h + 1:] = np.nan
            top = float(np.nanmax(shown)) if np.isfinite(shown).any() else 0.0
            levels = (0.0, max(3.0, float(math.ceil(top))))
        self.image.setImage(shown, autoLevels=False)
        self.image.setRect(QRectF(0, 0, 24, len(self.codes)))
        self.bar.setLevels(levels)
        self.bar.getAxis("right").setTicks(None if self.comparing
                                           else [charts.count_ticks(levels[1])])
        self.now_line.setPos(h + frac)
        # peaks: today ≥ 2 × average and ≥ 3 cases — only against a past day actually held
        if self.comparing:
            peak = (today >= self.PEAK_FACTOR * expected) & (today >= self.PEAK_MIN)
        else:
            peak = np.zeros(today.shape, dtype=bool)
        rows, cols = np.nonzero(peak)
        self.peaks = [(self.codes[r], int(c)) for r, c in zip(rows, cols)]
        self.peak_boxes.setData(x=cols + 0.5, y=rows + 0.5)
        for i, (r, c) in enumerate(zip(rows, cols)):
            label = self._peak_label(i)
            label.setText(str(int(today[r, c])))
            label.setPos(c + 0.5, r + 0.5)
            label.setVisible(True)
        for label in self.peak_labels[len(rows):]:
            label.setVisible(False)
        # summary: today so far against the average day up to the same time
        total = int(today.sum())
        if hours.days:
            typical = avg[:, :h].sum() + avg[:, h].sum() * frac
            delta = (f"{(total - typical) / typical:+.0%}" if typical >= 1
                     else f"{total - typical:+.0f}")
            text = tr("heat.sum.hours", self.lang, today=total, typical=f"{typical:.0f}",
                      delta=delta)
            text += tr("heat.sum.days", self.lang, days=hours.days)
        else:
            text = tr("heat.sum.hours_new", self.lang, today=total)
        self.summary.setText(text)
        self.body.activate()          # the summary's new width now: a grab is right
        self.dirty = False

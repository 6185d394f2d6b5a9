"""What every chart panel shares (pyqtgraph): a plot without menus, a combo box in the wall's
look, axes and legends in type read from four metres, colour bars, colour maps from the one
palette (``situation.palette``) and a palette colour at an alpha.

Type on a 1080p screen (logical px): tick labels ``TICK_PX`` (18), axis labels ``LABEL_PX``
(20), legends ``LEGEND_PX`` (20) — nothing a commander reads under 18. Every axis that carries
numbers names what they count and in which unit ("案件（起/时）"); an axis labelled by its ticks
(districts) still says what they are.
"""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFontMetrics
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel

from situation import palette
from widgets import theme

TICK_PX = 18            # tick labels: the smallest type on any chart
LABEL_PX = 20           # axis labels (what and in which unit)
LEGEND_PX = 20          # legend entries
COMBO_PX = 20
MIN_PX = 18             # tests/test_chart_legibility.py holds every chart to this


def rgba(colour: str, alpha: int) -> QColor:
    """A palette colour (``theme.ALARM``…) at ``alpha`` (0–255): shades and fills."""
    c = QColor(colour)
    c.setAlpha(int(alpha))
    return c


def colormap(ramp) -> pg.ColorMap:
    """A pg.ColorMap from a palette ramp: (position, colour) or (position, colour, alpha)."""
    pos = [stop[0] for stop in ramp]
    colours = [rgba(stop[1], stop[2]) if len(stop) > 2 else QColor(stop[1]) for stop in ramp]
    return pg.ColorMap(pos, colours)


def heat_colormap() -> pg.ColorMap:
    return colormap(palette.HEAT_RAMP)


def diverging_colormap() -> pg.ColorMap:
    """Below average blue, average the panel's own dark, above amber then red."""
    return colormap(palette.DIVERGING_RAMP)


def coverage_colormap() -> pg.ColorMap:
    return colormap(palette.COVERAGE_RAMP)


def combo_style() -> str:
    """The combo boxes' style sheet in the palette in use."""
    return f"""
QComboBox {{ background: {theme.HEADER}; color: {theme.TEXT}; border: 1px solid {theme.PANEL_EDGE};
            border-radius: 4px; padding: 2px 10px; }}
QComboBox QAbstractItemView {{ background: {theme.HEADER}; color: {theme.TEXT};
            selection-background-color: {theme.SELECTION}; }}
"""


def combo(items: list[tuple[str, object]], current: int = 0, px: int = COMBO_PX) -> QComboBox:
    """A combo box of (text, data) in the wall's type; it takes no keyboard focus."""
    box = QComboBox()
    box.setFont(theme.font(px))
    box.setStyleSheet(combo_style())
    box.setFocusPolicy(Qt.NoFocus)
    for text, data in items:
        box.addItem(text, data)
    box.setCurrentIndex(current)
    return box


def controls(named: list[tuple[str, QComboBox]]) -> QHBoxLayout:
    """A chart's line of choices: each (name, combo box) as its name in muted 20 px type
    beside the box, left to right."""
    row = QHBoxLayout()
    row.setSpacing(10)
    for name, box in named:
        label = QLabel(name)
        label.setFont(theme.font(20))
        label.setStyleSheet(f"color: {theme.MUTED};")
        row.addWidget(label)
        row.addWidget(box)
        row.addSpacing(8)
    row.addStretch(1)
    return row


def plot(background: str | None = None, **kwargs) -> pg.PlotWidget:
    """A plot without pyqtgraph's context menu and buttons, on the panel's ground."""
    widget = pg.PlotWidget(background=background or theme.PANEL, **kwargs)
    widget.setMenuEnabled(False)
    widget.hideButtons()
    widget.getPlotItem().setContentsMargins(4, 4, 4, 4)
    return widget


def style_axis(axis: pg.AxisItem, px: int = TICK_PX, edge: str | None = None,
               text: str | None = None, **style) -> None:
    """Tick labels at ``px`` (never under ``MIN_PX``) in the text colour, the axis line in
    ``edge`` (the panel's edge unless told)."""
    style.setdefault("tickLength", 0)
    axis.setStyle(tickFont=theme.font(max(px, MIN_PX)), **style)
    axis.enableAutoSIPrefix(False)      # cases and people, never "(x0.001)"
    axis.setTextPen(pg.mkPen(text or theme.TEXT))
    axis.setPen(pg.mkPen(edge or theme.PANEL_EDGE))


def axis_label(axis: pg.AxisItem, text: str, px: int = LABEL_PX,
               colour: str | None = None) -> None:
    """The axis' label — what it counts and the unit, in the words (pyqtgraph's ``units``
    would put SI prefixes on cases and people)."""
    px = max(px, MIN_PX)
    axis.label.setFont(theme.font(px))
    axis.setLabel(text, color=colour or theme.MUTED, **{"font-size": f"{px}px"})


def label_px(axis: pg.AxisItem) -> int:
    """The pixel size an axis' label is drawn at (its style's font-size; 0 when none)."""
    size = str(axis.labelStyle.get("font-size", "")).strip()
    if size.endswith("px"):
        return int(float(size[:-2]))
    if size.endswith("pt"):
        return round(float(size[:-2]) * 96 / 72)
    return axis.label.font().pixelSize()


def legend(plot_item: pg.PlotItem, px: int = LEGEND_PX, **kwargs) -> pg.LegendItem:
    """A legend in the wall's type on a dark, slightly see-through ground."""
    kwargs.setdefault("offset", (10, 5))
    return plot_item.addLegend(labelTextColor=theme.TEXT, labelTextSize=f"{max(px, MIN_PX)}px",
                               brush=pg.mkBrush(rgba(theme.BG, 200)),
                               pen=pg.mkPen(theme.PANEL_EDGE), **kwargs)


def legend_px(item: pg.LegendItem) -> list[int]:
    """The pixel size of each of a legend's entries."""
    out = []
    for _sample, label in item.items:
        size = str(label.opts.get("size", ""))
        out.append(int(float(size[:-2])) if size.endswith("px") else 0)
    return out


def colour_bar(cmap: pg.ColorMap, label: str, image: pg.ImageItem, plot_widget: pg.PlotWidget,
               values: tuple[float, float], px: int = TICK_PX) -> pg.ColorBarItem:
    """A colour scale beside ``image``: its values on the right at ``px``, what they are (and
    their unit) along its left."""
    bar = pg.ColorBarItem(values=values, colorMap=cmap, interactive=False, width=22,
                          colorMapMenu=False)
    bar.setImageItem(image, insert_in=plot_widget.getPlotItem())
    axis = bar.getAxis("right")
    style_axis(axis, px)
    axis.setWidth(60)
    for key in ("top", "bottom", "left"):
        bar.getAxis(key).setPen(pg.mkPen(theme.PANEL_EDGE))
    left = bar.getAxis("left")
    left.setTextPen(pg.mkPen(theme.TEXT))       # the label's colour, not the frame's
    axis_label(left, label, LABEL_PX, theme.TEXT)
    return bar


def names_width(names, px: int = TICK_PX, label_px: int = LABEL_PX) -> int:
    """The width a vertical axis needs for tick labels ``names`` at ``px`` and its label."""
    fm = QFontMetrics(theme.font(max(px, MIN_PX)))
    return max((fm.horizontalAdvance(n) for n in names), default=0) + round(label_px * 1.6) + 14


def count_ticks(top: float) -> list[tuple[float, str]]:
    """Whole-number ticks for a count scale 0 … top, five or six of them."""
    step = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000, 10**9)
                if top / s <= 6)
    return [(float(v), str(v)) for v in range(0, int(top) + 1, step)]


def chart_axes(widget) -> list[tuple[str, pg.AxisItem]]:
    """Every shown axis of every plot in ``widget`` (a panel or a plot), with its place —
    for tests and for anyone checking the type."""
    plots = [widget] if isinstance(widget, pg.PlotWidget) else widget.findChildren(pg.PlotWidget)
    out = []
    for pw in plots:
        scene = pw.scene()
        for item in scene.items():
            if isinstance(item, pg.AxisItem) and item.isVisible():
                out.append((item.orientation, item))
    return out


def district_outlines(crs: str = "gcj02") -> pg.PlotDataItem:
    """Every district's border as one line item (over a heat or coverage raster), in frame
    ``crs`` (the situation's display frame: ``feeds.districts.frame_of``)."""
    import numpy as np

    from feeds.districts import load_districts
    xs, ys = [], []
    for d in load_districts(crs=crs):
        for ring in d.rings:
            xs.extend([ring[:, 0], [np.nan]])
            ys.extend([ring[:, 1], [np.nan]])
    item = pg.PlotDataItem(np.concatenate(xs), np.concatenate(ys), connect="finite",
                           pen=pg.mkPen(theme.MUTED, width=1.4))
    item.setZValue(10)
    return item

"""The replay's timeline: the whole recording along one strip — messages per bin (area), sensor
alarms (red, solid, filled) and open overdue cases (red too — overdue is an alarm — dashed,
unfilled) as curves, bars with ticks over the stretches where they piled up (alarms solid, overdue
hatched), the loop range shaded, and the now-line at the replay's time.

Click anywhere to go there; drag the now-line to scrub; drag across the strip to loop that
range, and the loop's edges or body to move it. The strip only asks (``seek_requested``,
``loop_requested``): the transport decides, and the strip redraws from the replay when told
(``show_time``). The volume has its scale on the left, in messages a minute (labelled
gridlines, the top label naming the unit); the alarm and overdue curves are scaled to their own
peaks (the tooltip gives the counts).

In training (``set_forward_only``) the strip cannot take the day back: the past is shaded and
says why, a click there does nothing, the now-line drags forward only, and no loop is drawn.

X is seconds since the recording's first message (epoch milliseconds as floats make the
view's transforms jitter); the axis labels them in Beijing time.
"""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor

from situation.replay_marks import BEIJING, ReplayMarks
from situation import palette
from widgets import charts, theme
from widgets.i18n import tr

TICK_STEPS_S = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)
TICK_LABEL_PX = 130            # room one "HH:MM" label needs at the axis' font size
AXIS_PX = 18                   # the axes' labels: the smallest type on the wall
VOLUME_STEPS = (1, 2, 5)       # the volume's gridlines at 1, 2 or 5 × 10ⁿ messages a minute
VOLUME_TICKS = 3               # at most this many above zero (the strip is ~100 px tall)
LABEL_GAP_PX = round(AXIS_PX * 1.15)   # between two gridlines' labels, at least
DENSITY_ALPHA = 110            # the volume: the palette's neutral data colour, see-through
DENSITY_LINE = palette.DATA_EDGE   # the volume's outline and its scale
PAST_ALPHA = 70                # training: the part of the day that cannot be gone back to
OVERDUE_BAND = (1.05, 0.11)    # (bottom, height) of the pile-up bars above the curves
ALARM_BAND = (1.18, 0.11)
TOP = 1.32


def hhmm(ms: float, seconds: bool = False) -> str:
    return datetime.fromtimestamp(ms / 1000, BEIJING).strftime("%H:%M:%S" if seconds
                                                               else "%H:%M")


# Sensor alarms and overdue cases are both alarms (the palette's ALARM): the lines tell them
# apart — alarms solid over a shaded area, overdue dashed — and so does the key.
ALARM_SYMBOL, OVERDUE_SYMBOL = "━━", "┅┅"


def legend_html(lang: str) -> str:
    """The strip's key, for a label beside it (big enough to read from the back of the room):
    what each mark is, and that the strip's time is Beijing time."""
    parts = [(palette.DATA, "■", tr("tp.density", lang)),
             (theme.ALARM, ALARM_SYMBOL, tr("tp.alarms", lang)),
             (theme.ALARM, OVERDUE_SYMBOL, tr("tp.overdue", lang)),
             (theme.TEXT, "▼", tr("tp.pileup", lang))]
    key = "&nbsp;&nbsp;&nbsp;".join(f'<span style="color:{c}">{sym}</span>&nbsp;{text}'
                                    for c, sym, text in parts)
    return key + "&nbsp;&nbsp;&nbsp;" + tr("tp.time_axis", lang)


class BeijingAxis(pg.AxisItem):
    """Seconds since ``start_ms`` shown as Beijing HH:MM, ticks on round clock minutes."""

    def __init__(self, start_ms: int):
        super().__init__("bottom")
        self.start_ms = start_ms

    def tickSpacing(self, minVal, maxVal, size):
        span = max(maxVal - minVal, 1.0)
        fits = max(2, int(size / TICK_LABEL_PX))
        step = next((s for s in TICK_STEPS_S if span / s <= fits), TICK_STEPS_S[-1])
        local = self.start_ms / 1000 + 8 * 3600          # ticks on Beijing's round times
        return [(step, -local % step), (step / 2 if step > 60 else step, -local % step)]

    def tickStrings(self, values, scale, spacing):
        return [hhmm(self.start_ms + v * 1000) for v in values]


def volume_step(peak: float, least: float, most: int = VOLUME_TICKS) -> float:
    """The gridlines' step, messages a minute: 1, 2 or 5 × 10ⁿ, at least ``least`` (so their
    labels do not touch), the finest giving at most ``most`` lines up to ``peak``; 0 when
    there is no volume or no room for one line."""
    least = max(least, 0.1)                 # a quiet recording: tenths of a message a minute
    if peak <= 0 or least > peak:
        return 0.0
    exp = int(np.floor(np.log10(least)))
    for e in range(exp, exp + 3):
        for m in VOLUME_STEPS:
            step = round(m * 10.0 ** e, 6)
            if step >= least and peak // step <= most:
                return step if step <= peak else 0.0
    return 0.0


class VolumeAxis(pg.AxisItem):
    """The volume's scale on the left: messages a minute at round values up to the busiest
    bin (above it are the pile-up bars, not volume); the top label names the unit."""

    def __init__(self, unit: str):
        super().__init__("left")
        self.unit = unit
        self.peak = 0.0            # messages a minute where the area is at its top (y = 1)
        self.drawn_lines: list[tuple[float, str]] = []     # as last laid out for drawing

    def gridlines(self, size_px: float, span: float = TOP) -> list[tuple[float, str]]:
        """(y in the strip, label) of each gridline, for an axis ``size_px`` tall showing
        ``span`` of y."""
        room = size_px / max(span, 1e-9)                # pixels from y 0 to y 1
        step = volume_step(self.peak, self.peak * LABEL_GAP_PX / max(room, 1e-9))
        if not step:
            return []
        # Not 0 (the strip's foot says that); the top one names the unit.
        digits = 0 if step >= 1 else 1
        out = [(step * k / self.peak, f"{step * k:,.{digits}f}")
               for k in range(1, int(self.peak // step) + 1)]
        if out:
            y, top = out[-1]
            out[-1] = (y, f"{top} {self.unit}")
        return out

    def tickValues(self, minVal, maxVal, size):
        self.drawn_lines = self.gridlines(size, maxVal - minVal)
        return [(1.0, [y for y, _ in self.drawn_lines])] if self.drawn_lines else []

    def tickStrings(self, values, scale, spacing):
        words = {round(y, 9): text for y, text in self.drawn_lines}
        return [words.get(round(v, 9), "") for v in values]


class StripBox(pg.ViewBox):
    """The strip's view: no pan or zoom; a left-drag across it marks a loop (a click seeks)."""

    def __init__(self):
        super().__init__(enableMenu=False)
        self.dragged = None          # callable(x from, x to, finished)

    def mouseDragEvent(self, ev, axis=None):
        if ev.button() != Qt.LeftButton or self.dragged is None:
            ev.ignore()
            return
        ev.accept()
        self.dragged(self.mapSceneToView(ev.buttonDownScenePos()).x(),
                     self.mapSceneToView(ev.scenePos()).x(), ev.isFinish())


class Timeline(pg.PlotWidget):
    # Times in ms since the epoch pass 32 bits: object, not int.
    seek_requested = Signal(object)            # a click, or the now-line dropped
    loop_requested = Signal(object, object)    # a range dragged across, or the loop moved

    def __init__(self, start_ms: int, end_ms: int, lang: str = "zh", parent=None):
        self.start_ms, self.end_ms, self.lang = int(start_ms), int(end_ms), lang
        box = StripBox()
        self.volume_axis = VolumeAxis(tr("tp.per_min", lang))
        super().__init__(parent, background=theme.PANEL, viewBox=box,
                         axisItems={"bottom": BeijingAxis(self.start_ms),
                                    "left": self.volume_axis})
        box.dragged = self._drawing
        self.marks: ReplayMarks | None = None
        self.forward_only = ""             # training: why the strip cannot go back or loop
        self.now_ms = self.start_ms        # the replay's time, as last shown
        self._setting = False              # drawing the replay's loop: not the user's drag
        self._drawn = False                # a loop being drawn by a drag across the strip
        pi = self.getPlotItem()
        pi.setMenuEnabled(False)
        pi.hideButtons()
        pi.setMouseEnabled(x=False, y=False)
        pi.layout.setContentsMargins(4, 2, 12, 0)
        charts.style_axis(pi.getAxis("bottom"), AXIS_PX, edge=theme.MUTED, tickLength=-8)
        # The volume's scale: messages a minute, in the volume's own colour, its gridlines
        # across the strip.
        vol = self.volume_axis
        charts.style_axis(vol, AXIS_PX, edge=theme.MUTED, text=DENSITY_LINE, tickLength=0,
                          tickTextOffset=6, autoExpandTextSpace=True)
        vol.setGrid(90)
        vol.setToolTip(tr("tp.volume_tip", lang))
        span_s = max((self.end_ms - self.start_ms) / 1000, 1.0)
        pi.setXRange(0, span_s, padding=0.005)
        pi.setYRange(0, TOP, padding=0)
        self.density = pg.PlotDataItem([], [], stepMode="center", fillLevel=0,
                                       brush=pg.mkBrush(charts.rgba(palette.DATA,
                                                                    DENSITY_ALPHA)),
                                       pen=pg.mkPen(DENSITY_LINE, width=2))
        self.alarms = pg.PlotDataItem([], [], stepMode="center", fillLevel=0,
                                      brush=pg.mkBrush(charts.rgba(theme.ALARM, 80)),
                                      pen=pg.mkPen(theme.ALARM, width=2))
        # overdue is an alarm too: the same red, dashed and unfilled (the key says so)
        self.overdue = pg.PlotDataItem([], [], stepMode="center",
                                       pen=pg.mkPen(theme.ALARM, width=3, style=Qt.DashLine))
        self.pile_bars = pg.BarGraphItem(x0=[], x1=[], y0=[], height=[], pen=pg.mkPen(None))
        self.pile_ticks = pg.ScatterPlotItem([], [], symbol="t", size=20, pen=pg.mkPen(theme.BG),
                                             tip=None)
        self.loop = pg.LinearRegionItem((0, 1), brush=pg.mkBrush(charts.rgba(theme.ACCENT, 55)),
                                        pen=pg.mkPen(theme.ACCENT, width=3),
                                        hoverBrush=pg.mkBrush(charts.rgba(theme.ACCENT, 90)))
        self.loop.setVisible(False)
        self.loop.sigRegionChangeFinished.connect(self._loop_dragged)
        past = charts.rgba(theme.MUTED, PAST_ALPHA)
        self.past = pg.LinearRegionItem((0, 0), movable=False, brush=pg.mkBrush(past),
                                        pen=pg.mkPen(None), hoverBrush=pg.mkBrush(past))
        self.past.setVisible(False)
        self.mark_a = pg.InfiniteLine(angle=90, pen=pg.mkPen(theme.ACCENT, width=3,
                                                             style=Qt.DashLine))
        self.mark_a.setVisible(False)
        self.now_line = pg.InfiniteLine(angle=90, movable=True,
                                        pen=pg.mkPen(theme.TEXT, width=4),
                                        hoverPen=pg.mkPen(theme.ACCENT, width=6))
        self.now_line.sigPositionChangeFinished.connect(
            lambda line: self.seek_requested.emit(self.ms_at(line.value())))
        for item in (self.density, self.alarms, self.overdue, self.past, self.loop,
                     self.pile_bars, self.pile_ticks, self.mark_a, self.now_line):
            pi.addItem(item)
        self.scene().sigMouseClicked.connect(self._clicked)
        self.scene().sigMouseMoved.connect(self._hovered)
        self.setMinimumHeight(96)

    # ---- coordinates ---------------------------------------------------------------------------
    def x_at(self, ms: int) -> float:
        return (ms - self.start_ms) / 1000

    def ms_at(self, x: float) -> int:
        return int(round(self.start_ms + x * 1000))

    def scene_x(self, ms: int) -> float:
        """Where ``ms`` is in the widget's own pixels (tests click there)."""
        vb = self.getPlotItem().vb
        scene = vb.mapViewToScene(pg.Point(self.x_at(ms), TOP / 2))
        return self.mapFromScene(scene).x()

    # ---- what the strip shows ------------------------------------------------------------------
    def set_marks(self, marks: ReplayMarks) -> None:
        self.marks = marks
        x = (marks.edges - self.start_ms) / 1000
        self.volume_axis.peak = marks.peak_per_minute()
        self.volume_axis.picture = None          # its gridlines follow the new peak
        self.volume_axis.update()
        for item, counts in ((self.density, marks.density), (self.alarms, marks.alarms),
                             (self.overdue, marks.overdue)):
            top = max(1, int(counts.max())) if len(counts) else 1
            item.setData(x, counts / top)
        piles = marks.marks
        if not piles:
            self.pile_bars.setOpts(x0=[], x1=[], y0=[], height=[])
            self.pile_ticks.setData([], [])
            return
        band = [ALARM_BAND if m.kind == "alarm" else OVERDUE_BAND for m in piles]
        # alarms solid red, overdue hatched red (both alarms; the hatching tells them apart)
        brushes = [pg.mkBrush(theme.ALARM) if m.kind == "alarm"
                   else QBrush(QColor(theme.ALARM), Qt.BDiagPattern) for m in piles]
        pens = [pg.mkPen(None) if m.kind == "alarm" else pg.mkPen(theme.ALARM, width=1)
                for m in piles]
        self.pile_bars.setOpts(x0=[self.x_at(m.start_ms) for m in piles],
                               x1=[self.x_at(m.end_ms) for m in piles],
                               y0=[b[0] for b in band], height=[b[1] for b in band],
                               brushes=brushes, pens=pens)
        self.pile_ticks.setData([self.x_at(m.peak_ms) for m in piles],
                                [b[0] + b[1] / 2 for b in band],
                                brush=[pg.mkBrush(theme.TEXT)] * len(piles))

    def show_time(self, now_ms: int, loop: tuple[int, int] | None,
                  pending_a: int | None) -> None:
        """Redraw the replay's time, loop and pending loop start (left alone while dragged)."""
        self.now_ms = int(now_ms)
        x = self.x_at(now_ms)
        self._show_past()
        if not self.now_line.moving:
            self.now_line.setValue(x)
        self.mark_a.setVisible(pending_a is not None)
        if pending_a is not None:
            self.mark_a.setValue(self.x_at(pending_a))
        if self._drawn:
            return
        self.loop.setVisible(loop is not None)
        if loop is not None and not any(line.moving for line in self.loop.lines) \
                and not self.loop.moving:
            self._show_loop(self.x_at(loop[0]), self.x_at(loop[1]))

    def set_forward_only(self, why: str) -> None:
        """Training (``why``: the reason, in words) or not (""): the past shaded and saying
        why, clicks there doing nothing, the now-line dragged forward only, no loop drawn."""
        if why == self.forward_only:
            return
        self.forward_only = why
        self.getPlotItem().vb.dragged = None if why else self._drawing
        self.past.setVisible(bool(why))
        self.loop.setMovable(not why)
        if why:
            self.loop.setVisible(False)
        else:
            self.now_line.setBounds((None, None))
        self._show_past()

    def _show_past(self) -> None:
        if not self.forward_only:
            return
        x = self.x_at(self.now_ms)
        self.now_line.setBounds((x, None))          # the now-line drags forward only
        self.past.setRegion((0, x))

    def _show_loop(self, a: float, b: float) -> None:
        self._setting = True
        try:
            self.loop.setRegion(sorted((a, b)))
        finally:
            self._setting = False

    def tip_at(self, ms: int) -> str:
        """The counts of the bin at ``ms`` and the pile-ups over it."""
        m = self.marks
        past = [self.forward_only] if self.forward_only and ms < self.now_ms else []
        if m is None or not len(m.density):
            return "\n".join(past + [hhmm(ms, seconds=True)])
        i = int(np.clip(np.searchsorted(m.edges, ms, side="right") - 1, 0, len(m.density) - 1))
        secs = m.bin_ms < 60_000                 # a bin under a minute: its seconds too
        span = f"{hhmm(m.edges[i], secs)}–{hhmm(m.edges[i + 1], secs)}"
        rate = f"{m.density[i] * m.per_minute:,.{0 if m.per_minute >= 1 else 1}f}"
        lines = past + [tr("tp.tip", self.lang, t=span, n=int(m.density[i]), a=int(m.alarms[i]),
                           o=int(m.overdue[i])) + f" · {rate} {tr('tp.per_min', self.lang)}"]
        lines += [p.label(self.lang) for p in m.marks if p.start_ms <= ms < p.end_ms]
        return "\n".join(lines)

    # ---- the user's hand -----------------------------------------------------------------------
    def _clicked(self, ev) -> None:
        if ev.button() != Qt.LeftButton or ev.isAccepted():
            return
        vb = self.getPlotItem().vb
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        ev.accept()
        ms = self.ms_at(vb.mapSceneToView(ev.scenePos()).x())
        if self.forward_only and ms < self.now_ms:
            return                  # the shaded past: nothing to do there (its tooltip says why)
        self.seek_requested.emit(ms)

    def _hovered(self, pos) -> None:
        vb = self.getPlotItem().vb
        if vb.sceneBoundingRect().contains(pos):
            self.setToolTip(self.tip_at(self.ms_at(vb.mapSceneToView(pos).x())))

    def _drawing(self, a: float, b: float, finished: bool) -> None:
        """A drag across the strip: the range shows as it grows, and is asked for at the end."""
        self._drawn = not finished
        self.loop.setVisible(True)
        self._show_loop(a, b)
        if finished:
            lo, hi = sorted((a, b))
            self.loop_requested.emit(self.ms_at(lo), self.ms_at(hi))

    def _loop_dragged(self) -> None:
        if not self._setting and not self.forward_only:
            a, b = self.loop.getRegion()
            self.loop_requested.emit(self.ms_at(a), self.ms_at(b))

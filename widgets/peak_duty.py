"""The peak-duty chart (高峰勤务): for a district or the whole city, today's demand (bars) and
the forecast (line) on the left axis (cases per slot), units needed against units on duty
(steps) with the shortfall shaded on the right axis (people), and a now line from the
situation's clock; beside it, the peaks (a shortfall concentrated in at most
``DutyConfig.peak_max_hours``) ranked by how short they are, and under them the shortfalls
held all day or longer than that, said as such ("顺义 全天缺 2 人"), never as peaks. The title's
最大缺口 is the largest of the windows listed. For the city, the shaded shortfall is the
districts' shortfalls added up (a surplus in one district does not fill another's gap).

Everything comes from ``situation.peakduty.duty_plan`` — the same code the ``duty-plan``
command writes its CSV with. The plan is recomputed every few seconds of link time, or at once
when the district changes; on a wall the chart can cycle through the districts.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout

from situation.scope import district_codes
from situation.catalog import district_name
from situation.store import Change
from situation import palette
from widgets import charts, theme
from widgets.i18n import tr
from widgets.panel import Panel

RECOMPUTE_MS = 15_000          # link time between plans: the forecast moves slowly
CYCLE_EVERY = 10               # refreshes (about ten seconds) per district when cycling
PEAKS_LISTED, HELD_LISTED = 8, 6       # lines of each list (then "另有 N 项")


def today_plan(situation, cfg, now_ms: int):
    """The duty plan of the situation's today — the chart's and the menu's one code path, the
    same function ``main.py duty-plan`` calls. Handling time: ``cfg.handling_min``, as the
    command line's default."""
    import pandas as pd

    from situation.history import events_from_situation
    from situation.peakduty import duty_plan
    history, roster = PeakDuty.history, PeakDuty.roster
    scope = getattr(situation, "scope", None)
    if scope is not None:       # a district wall: its districts' demand and staff, nobody else's
        history, roster = scope.events(history), scope.roster(roster)
    seen = events_from_situation(situation)      # the situation holds its scope only
    events = seen if history is None else pd.concat([history, seen], ignore_index=True)
    day = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(cfg.tz)).date().isoformat()
    plan = duty_plan(events, day, cfg, roster=roster, situation=situation,
                     now_ms=now_ms, handling_min=cfg.handling_min)
    return plan if scope is None else scope.events(plan)


class PeakDuty(Panel):
    name = "peak_duty"
    history = None             # events of the history file or the demo's (set by the app)
    problem = None             # what was wrong with the history file, said on the panel
    roster = None              # a roster CSV (``--roster``), else the units' own shifts
    config = None              # a situation.peakduty.DutyConfig (set by the app), else defaults

    def __init__(self, situation, lang="zh", parent=None):
        super().__init__(situation, lang, parent)
        self.title.setText(tr("panel.peak_duty", lang))
        from situation.peakduty import DutyConfig
        self.cfg = PeakDuty.config or DutyConfig()
        self.plan = None
        self._computed_at = None
        self._computed_units = 0
        self._ticks = 0
        row = QHBoxLayout()
        scope = getattr(situation, "scope", None)     # a district wall: its districts only
        codes = district_codes(situation)
        total = tr("peak.city", lang) if scope is None else tr("scope.total", lang)
        self.district_box = charts.combo([(total, None)]
                                         + [(district_name(c, lang), c) for c in codes])
        self.district_box.currentIndexChanged.connect(lambda _i: self.refresh())
        self.cycle = QCheckBox(tr("peak.cycle", lang))
        self.cycle.setFont(theme.font(20))
        row.addWidget(self.district_box)
        row.addWidget(self.cycle)
        row.addStretch(1)
        self.body.addLayout(row)
        line = QHBoxLayout()
        self.plot = charts.plot(theme.PANEL)
        pi = self.plot.getPlotItem()
        pi.showGrid(x=True, y=True, alpha=0.15)
        pi.setMouseEnabled(x=False, y=False)
        pi.showAxis("right")
        for axis in ("left", "bottom", "right"):
            charts.style_axis(pi.getAxis(axis), charts.TICK_PX, edge=theme.MUTED,
                              tickLength=5)
        charts.axis_label(pi.getAxis("bottom"), tr("peak.axis", lang))
        pi.getAxis("bottom").setTicks([[(h, str(h)) for h in range(0, 25, 3)]])
        slot = self.cfg.slot_minutes
        charts.axis_label(pi.getAxis("left"), tr("peak.axis.cases_h", lang) if slot == 60
                          else tr("peak.axis.cases_slot", lang, m=slot))
        charts.axis_label(pi.getAxis("right"), tr("peak.axis.people", lang))
        # Cases and people are different things: the units needed and on duty have their own
        # scale (the right axis), in a view box sharing the hours.
        self.people = pg.ViewBox()
        self.people.setMouseEnabled(x=False, y=False)
        pi.scene().addItem(self.people)
        pi.getAxis("right").linkToView(self.people)
        self.people.setXLink(pi)
        pi.getViewBox().sigResized.connect(self._sync_views)
        legend = self.legend = charts.legend(pi)
        legend.setColumnCount(3)          # a short band across the top, not a box over the hours
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush=pg.mkBrush(palette.DATA),
                                    pen=pg.mkPen(None), name=tr("peak.actual", lang))
        pi.addItem(self.bars)
        self.forecast_line = pi.plot([], [], pen=pg.mkPen(theme.ACCENT, width=3),
                                     name=tr("peak.forecast", lang))
        self.needed_line = pg.PlotDataItem([], [], stepMode="center",
                                           pen=pg.mkPen(theme.WARN, width=3))
        self.rostered_line = pg.PlotDataItem([], [], stepMode="center",
                                             pen=pg.mkPen(theme.OK, width=3))
        # The shortfall only: shaded from the need met to the need, so a surplus shades
        # nothing. For a district the need met is those on duty (when short); for the city it
        # is each district's need met, added up — a surplus in one district does not fill
        # another's gap, so the shade can reach below the on-duty line.
        self.short_top = pg.PlotDataItem([], [], stepMode="center", pen=pg.mkPen(None))
        self.short_bottom = pg.PlotDataItem([], [], stepMode="center", pen=pg.mkPen(None))
        self.short_fill = pg.FillBetweenItem(self.short_top, self.short_bottom,
                                             brush=pg.mkBrush(charts.rgba(theme.ALARM, 110)))
        for item in (self.short_top, self.short_bottom, self.short_fill, self.needed_line,
                     self.rostered_line):
            self.people.addItem(item)
        legend.addItem(self.needed_line, tr("peak.needed", lang))
        legend.addItem(self.rostered_line, tr("peak.rostered", lang))
        # the legend draws a sample of a bar, not of a fill between two curves: a stand-in
        legend.addItem(pg.BarGraphItem(x=[], height=[], width=1, pen=pg.mkPen(None),
                                       brush=pg.mkBrush(charts.rgba(theme.ALARM, 110))),
                       tr("peak.short", lang))
        self.now_line = pg.InfiniteLine(angle=90, pen=pg.mkPen(theme.TEXT, width=2,
                                                               style=Qt.DashLine))
        pi.addItem(self.now_line)
        line.addWidget(self.plot, 3)
        side = QVBoxLayout()
        hours = f"{self.cfg.peak_max_hours:g}"
        self.peaks_head = self._head(tr("peak.peaks", lang, h=hours))
        side.addWidget(self.peaks_head)
        self.peaks = self._list()
        side.addWidget(self.peaks, 3)
        self.held_head = self._head(tr("peak.held", lang))
        side.addWidget(self.held_head)
        self.held = self._list()
        side.addWidget(self.held, 2)
        self.plot.setMinimumHeight(160)
        line.addLayout(side, 1)
        self.body.addLayout(line, 1)
        self.windows = None        # the Shortfalls last listed (derived)
        self.notice = QLabel("")
        self.notice.setTextFormat(Qt.PlainText)
        self.notice.setStyleSheet(f"color: {theme.WARN};")
        self.notice.setFont(theme.font(20))
        self.body.addWidget(self.notice)

    @staticmethod
    def _head(text: str) -> QLabel:
        head = QLabel(text)
        head.setFont(theme.font(22, bold=True))
        head.setStyleSheet(f"color: {theme.WARN};")
        return head

    @staticmethod
    def _list() -> QLabel:
        label = QLabel("")
        label.setTextFormat(Qt.PlainText)
        label.setFont(theme.font(20))
        label.setWordWrap(False)     # height-for-width would make the row grab height
        label.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        # The list shows what fits; it must not push the chart's row taller than its share.
        label.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Ignored)
        return label

    def _listed(self, windows: list, most: int, label: QLabel | None = None) -> str:
        """At most ``most`` lines, and no more than ``label`` has room for (then the last
        line says how many more): a list cut mid-line at the panel's edge reads as complete."""
        if label is not None and label.height() > 0:
            room = max(1, label.height() // label.fontMetrics().lineSpacing())
            most = min(most, room if len(windows) <= room else room - 1)
        lines = [p.text for p in windows[:most]]
        if len(windows) > most:
            lines.append(tr("peak.and_more", self.lang, n=len(windows) - most))
        return "\n".join(lines)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.dirty = True                 # the lists fit the new height at the next redraw

    def _people_ticks(self, top: float) -> None:
        """Whole people on the right axis: five or six ticks, never 0.5 of a person."""
        step = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 10**9) if top / s <= 6)
        self.plot.getPlotItem().getAxis("right").setTicks(
            [[(float(v), str(v)) for v in range(0, int(top) + 1, step)], []])

    def _sync_views(self) -> None:
        pi = self.plot.getPlotItem()
        self.people.setGeometry(pi.getViewBox().sceneBoundingRect())
        self.people.linkedViewChanged(pi.getViewBox(), self.people.XAxis)

    def on_changed(self, change: Change) -> None:
        if change.cases:
            self.dirty = True

    @property
    def district(self) -> str | None:
        return self.district_box.currentData()

    def _day_start(self, now: int) -> int:
        tz = ZoneInfo(self.cfg.tz)
        local = datetime.fromtimestamp(now / 1000, tz)
        return int(local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)

    def compute(self) -> None:
        """Today's plan: the history (a file, or the demo's) and what the situation has seen."""
        st = self.situation
        now = st.now_ms()
        try:
            self.plan = today_plan(st, self.cfg, now)
            self.notice.setText(PeakDuty.problem or "")
        except ValueError as exc:            # no history for today, or bad settings: say so
            self.plan = None
            self.notice.setText(" · ".join(t for t in (PeakDuty.problem, str(exc)) if t))
        self._computed_at = st.clock.link_ms()
        self._computed_units = len(st.units)

    def refresh(self) -> None:
        self.dirty = False
        st = self.situation
        self._ticks += 1
        if self.cycle.isChecked() and self._ticks % CYCLE_EVERY == 0:
            self.district_box.setCurrentIndex((self.district_box.currentIndex() + 1)
                                              % self.district_box.count())
            return                                   # the index change refreshes
        if (self._computed_at is None or st.clock.link_ms() - self._computed_at >= RECOMPUTE_MS
                or self._computed_units != len(st.units)):   # the roster came in: at once
            self.compute()
        now = st.now_ms()
        day_start = self._day_start(now)
        self.now_line.setPos((now - day_start) / 3_600_000)
        if self.plan is None or self.plan.empty:
            for item in (self.forecast_line, self.needed_line, self.rostered_line,
                         self.short_top, self.short_bottom):
                item.setData([], [])
            self.bars.setOpts(x=[], height=[])
            self.peaks.setText("")
            self.held.setText("")
            self.windows = None
            # the day's hours still read along the bottom; no scale claims a figure
            self.plot.getPlotItem().setXRange(0, 24, padding=0.01)
            self.plot.getPlotItem().setYRange(0, 1, padding=0)
            self.people.setYRange(0, 1, padding=0)
            self._people_ticks(1)
            return
        self.draw(day_start, now)

    def draw(self, day_start: int, now: int) -> None:
        from situation.peakduty import NEEDS_MORE, shortfall_windows
        plan = self.plan
        lang = self.lang
        rows = plan if self.district is None else plan[plan["district"] == self.district]
        slot_h = self.cfg.slot_minutes / 60
        # "needs more than max_units" counts as max_units + 1, as the plan's shortfall does
        need = rows["units_needed"].to_numpy()
        wanted = rows.assign(units_needed=np.where(need == NEEDS_MORE, self.cfg.max_units + 1,
                                                   need))
        by_slot = wanted.groupby("slot_start", sort=True)
        forecast = by_slot["forecast_cases"].sum().to_numpy(float)
        needed = by_slot["units_needed"].sum().to_numpy(float)
        rostered = by_slot["units_rostered"].sum().to_numpy(float)
        short = by_slot["shortfall"].sum().to_numpy(float)      # each district's, added up
        n = len(forecast)
        x = np.arange(n) * slot_h + slot_h / 2
        edges = np.arange(n + 1) * slot_h
        actual = self.actual_counts(day_start, n)
        self.bars.setOpts(x=x[:len(actual)], height=actual, width=slot_h * 0.8)
        self.forecast_line.setData(x, forecast)
        self.needed_line.setData(edges, needed)
        self.rostered_line.setData(edges, rostered)
        self.short_top.setData(edges, needed)
        self.short_bottom.setData(edges, needed - short)
        pi = self.plot.getPlotItem()
        pi.setXRange(0, 24, padding=0.01)
        cases_top = max(1.0, float(np.nanmax(np.concatenate([forecast, actual]))))
        pi.setYRange(0, cases_top * 1.15, padding=0)
        people_top = max(1.0, float(np.nanmax(np.concatenate([needed, rostered]))))
        self.people.setYRange(0, people_top * 1.15, padding=0)
        self._people_ticks(people_top * 1.15)
        self._sync_views()
        found = self.windows = shortfall_windows(rows, lang, self.cfg.peak_max_hours)
        hours = f"{self.cfg.peak_max_hours:g}"
        if not found.peaks and not found.held:
            self.peaks.setText(tr("peak.none", lang))
        else:
            self.peaks.setText(self._listed(found.peaks, PEAKS_LISTED, self.peaks)
                               or tr("peak.no_peak", lang, h=hours))
        self.held.setText(self._listed(found.held, HELD_LISTED, self.held))
        self.held_head.setVisible(bool(found.held))
        self.held.setVisible(bool(found.held))
        text = tr("peak.summary", lang, f=float(forecast.sum()), a=float(actual.sum()))
        worst = found.worst
        if worst is None:
            text += tr("peak.worst_none", lang)
        else:
            name = district_name(worst.district, lang)
            by = f"{worst.short_by}{'+' if worst.more_than else ''}"
            text += tr("peak.worst", lang, where=f"{name} " if lang == "zh" else name, s=by)
        self.summary.setText(text)

    def actual_counts(self, day_start: int, slots: int) -> np.ndarray:
        """Today's cases per slot so far (the situation's report log), for the chosen area."""
        slot_ms = self.cfg.slot_minutes * 60_000
        counts = np.zeros(slots)
        now = self.situation.now_ms()
        for rep in self.situation.reports:
            if not day_start <= rep.reported_at <= now:
                continue
            if self.district is not None and rep.district != self.district:
                continue
            i = (rep.reported_at - day_start) // slot_ms
            if 0 <= i < slots:
                counts[i] += 1
        return counts

"""The peak-duty chart (高峰勤务): for a district or the whole city, today's demand (bars), the
forecast (line), units needed against units rostered (steps) with the shortfall shaded, and a
now line from the situation's clock; beside it, the peak windows ranked by how short they are.

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
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QSizePolicy,
                               QVBoxLayout)

from feeds.districts import load_districts
from situation.catalog import district_name
from situation.store import Change
from widgets import theme
from widgets.panel import Panel

RECOMPUTE_MS = 15_000          # link time between plans: the forecast moves slowly
CYCLE_EVERY = 10               # refreshes (about ten seconds) per district when cycling
WORDS = {
    "title": ("高峰勤务", "Peak duty"), "city": ("全市", "Whole city"),
    "cycle": ("轮播各区", "Cycle districts"), "actual": ("今日实际", "today"),
    "forecast": ("预测", "forecast"), "needed": ("需要警力", "units needed"),
    "rostered": ("在岗警力", "units rostered"), "short": ("缺口", "short"),
    "peaks": ("高峰缺口", "Peak shortfalls"), "none": ("今日各时段警力足够", "No shortfall today"),
    "axis": ("时（北京时间）", "hour (Beijing)"),
    "summary": ("今日预测 {f:.0f} 起 · 实际 {a:.0f} 起 · 最大缺口 {s} 人",
                "forecast {f:.0f} · actual {a:.0f} today · worst shortfall {s}"),
    "more": ("超过 {n} 人", "more than {n}"),
}


def w(key: str, lang: str, **kw) -> str:
    zh, en = WORDS[key]
    return (zh if lang == "zh" else en).format(**kw)


def today_plan(situation, cfg, now_ms: int):
    """The duty plan of the situation's today — the chart's and the menu's one code path, the
    same function ``main.py duty-plan`` calls. Handling time: ``cfg.handling_min``, as the
    command line's default."""
    import pandas as pd

    from situation.history import events_from_situation
    from situation.peakduty import duty_plan
    seen = events_from_situation(situation)
    events = seen if PeakDuty.history is None else pd.concat([PeakDuty.history, seen],
                                                             ignore_index=True)
    day = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(cfg.tz)).date().isoformat()
    return duty_plan(events, day, cfg, roster=PeakDuty.roster, situation=situation,
                     now_ms=now_ms, handling_min=cfg.handling_min)


class PeakDuty(Panel):
    name = "peak_duty"
    history = None             # events of the history file or the demo's (set by the app)
    problem = None             # what was wrong with the history file, said on the panel
    roster = None              # a roster CSV (``--roster``), else the units' own shifts
    config = None              # a situation.peakduty.DutyConfig (set by the app), else defaults

    def __init__(self, situation, lang="zh", parent=None):
        super().__init__(situation, lang, parent)
        self.title.setText(w("title", lang))
        from situation.peakduty import DutyConfig
        self.cfg = PeakDuty.config or DutyConfig()
        self.plan = None
        self._computed_at = None
        self._computed_units = 0
        self._ticks = 0
        row = QHBoxLayout()
        self.district_box = QComboBox()
        self.district_box.setFont(theme.font(18))
        self.district_box.addItem(w("city", lang), None)
        for d in load_districts():
            self.district_box.addItem(district_name(d.adcode, lang), d.adcode)
        self.district_box.currentIndexChanged.connect(lambda _i: self.refresh())
        self.cycle = QCheckBox(w("cycle", lang))
        self.cycle.setFont(theme.font(17))
        row.addWidget(self.district_box)
        row.addWidget(self.cycle)
        row.addStretch(1)
        self.body.addLayout(row)
        line = QHBoxLayout()
        self.plot = pg.PlotWidget(background=theme.PANEL)
        pi = self.plot.getPlotItem()
        pi.showGrid(x=True, y=True, alpha=0.15)
        pi.setMouseEnabled(x=False, y=False)
        for axis in ("left", "bottom"):
            ax = pi.getAxis(axis)
            ax.setPen(pg.mkPen(theme.MUTED))
            ax.setTextPen(pg.mkPen(theme.TEXT))
            ax.setStyle(tickFont=theme.font(16))
        pi.getAxis("bottom").setLabel(w("axis", lang), color=theme.MUTED)
        pi.getAxis("bottom").setTicks([[(h, str(h)) for h in range(0, 25, 3)]])
        legend = pi.addLegend(offset=(10, 5), labelTextColor=theme.TEXT,
                              labelTextSize="15px", brush=pg.mkBrush(7, 13, 26, 200))
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush=pg.mkBrush("#1e6fb8"),
                                    pen=pg.mkPen(None), name=w("actual", lang))
        pi.addItem(self.bars)
        self.forecast_line = pi.plot([], [], pen=pg.mkPen(theme.ACCENT, width=3),
                                     name=w("forecast", lang))
        self.needed_line = pi.plot([], [], stepMode="center", pen=pg.mkPen(theme.WARN, width=3),
                                   name=w("needed", lang))
        self.rostered_line = pi.plot([], [], stepMode="center", pen=pg.mkPen(theme.OK, width=3),
                                     name=w("rostered", lang))
        # The shortfall only: shaded between rostered and max(needed, rostered), so a surplus
        # shades nothing.
        self.short_top = pg.PlotDataItem([], [], stepMode="center", pen=pg.mkPen(None))
        pi.addItem(self.short_top)
        self.short_fill = pg.FillBetweenItem(self.short_top, self.rostered_line,
                                             brush=pg.mkBrush(239, 68, 68, 110))
        pi.addItem(self.short_fill)
        self.now_line = pg.InfiniteLine(angle=90, pen=pg.mkPen(theme.TEXT, width=2,
                                                               style=Qt.DashLine))
        pi.addItem(self.now_line)
        line.addWidget(self.plot, 3)
        side = QVBoxLayout()
        head = QLabel(w("peaks", lang))
        head.setFont(theme.font(22, bold=True))
        head.setStyleSheet(f"color: {theme.WARN};")
        side.addWidget(head)
        self.peaks = QLabel("")
        self.peaks.setTextFormat(Qt.PlainText)
        self.peaks.setFont(theme.font(20))
        self.peaks.setWordWrap(False)     # height-for-width would make the row grab height
        self.peaks.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        # The list shows what fits; it must not push the chart's row taller than its share.
        self.peaks.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Ignored)
        self.plot.setMinimumHeight(160)
        side.addWidget(self.peaks, 1)
        line.addLayout(side, 1)
        self.body.addLayout(line, 1)
        self.notice = QLabel("")
        self.notice.setTextFormat(Qt.PlainText)
        self.notice.setStyleSheet(f"color: {theme.WARN};")
        self.notice.setFont(theme.font(17))
        self.body.addWidget(self.notice)

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
                         self.short_top):
                item.setData([], [])
            self.bars.setOpts(x=[], height=[])
            self.peaks.setText("")
            return
        self.draw(day_start, now)

    def draw(self, day_start: int, now: int) -> None:
        from situation.peakduty import peak_windows
        plan = self.plan
        rows = plan if self.district is None else plan[plan["district"] == self.district]
        slot_h = self.cfg.slot_minutes / 60
        by_slot = rows.groupby("slot_start", sort=True)
        forecast = by_slot["forecast_cases"].sum().to_numpy(float)
        needed = by_slot["units_needed"].apply(lambda s: s.clip(lower=0).sum()).to_numpy(float)
        rostered = by_slot["units_rostered"].sum().to_numpy(float)
        n = len(forecast)
        x = np.arange(n) * slot_h + slot_h / 2
        edges = np.arange(n + 1) * slot_h
        actual = self.actual_counts(day_start, n)
        self.bars.setOpts(x=x[:len(actual)], height=actual, width=slot_h * 0.8)
        self.forecast_line.setData(x, forecast)
        self.needed_line.setData(edges, needed)
        self.rostered_line.setData(edges, rostered)
        self.short_top.setData(edges, np.maximum(needed, rostered))
        self.plot.getPlotItem().setXRange(0, 24, padding=0.01)
        top = max(1.0, float(np.nanmax(np.concatenate([forecast, needed, rostered, actual]))))
        self.plot.getPlotItem().setYRange(0, top * 1.15, padding=0)
        windows = peak_windows(rows, self.lang)
        self.peaks.setText("\n".join(p.text for p in windows[:8]) or w("none", self.lang))
        short = int((needed - rostered).clip(min=0).max()) if n else 0
        self.summary.setText(w("summary", self.lang, f=float(forecast.sum()),
                               a=float(actual.sum()), s=short))

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

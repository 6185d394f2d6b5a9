"""Sensor tiles (城市感知): one tile per kind. A headline figure, how many sensors are in
warning and alarm, a dot for every sensor coloured by its latest reading's level, and the
worst readings by name and district."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QGridLayout, QSizePolicy, QWidget

from situation.catalog import METRIC_UNITS, SENSOR_KINDS, district_name, sensor_kind_name
from situation.store import Change
from situation.thresholds import ALARM, OK, UNKNOWN, WARN, THRESHOLDS, metric_level, reading_level
from widgets import theme
from widgets.i18n import tr
from widgets.format import number
from widgets.panel import Panel

# kind → (metric shown, how many sensors make the headline, label zh, label en)
HEADLINE = {
    "air": ("pm25", "median", "PM2.5 中位", "PM2.5 median"),
    "noise": ("laeq", "median", "噪声中位", "median"),
    "crowd": ("density", "max", "最高密度", "peak density"),
    "vendor": ("detections", "sum", "识别游商", "detections"),
    "parking": ("illegal", "sum", "违停车辆", "vehicles"),
    "manhole": ("open", "sum", "井盖开启", "open covers"),
    "waste": ("fill_pct", "median", "满溢度中位", "median fill"),
}
LEVEL_COLOUR = {OK: theme.OK, WARN: theme.WARN, ALARM: theme.ALARM, UNKNOWN: theme.MUTED}


@dataclass
class TileView:
    title: str
    count: str
    headline: str = "—"
    headline_level: int = UNKNOWN
    warn: int = 0
    alarm: int = 0
    dots: list[int] = field(default_factory=list)
    worst: list[tuple[str, int]] = field(default_factory=list)   # (line, level)


def headline_of(kind: str, readings: list[dict[str, float]], lang: str) -> tuple[str, int]:
    spec = HEADLINE.get(kind)
    if spec is None or not readings:
        return "—", UNKNOWN
    metric, how, zh, en = spec
    values = [r[metric] for r in readings if metric in r]
    if not values:
        return "—", UNKNOWN
    value = {"median": statistics.median, "max": max, "sum": sum}[how](values)
    unit = METRIC_UNITS.get(metric, "")
    level = metric_level(kind, metric, value) if how != "sum" else (ALARM if kind == "manhole"
                                                                     and value else UNKNOWN)
    return f"{zh if lang == 'zh' else en} {number(value)}{(' ' + unit) if unit else ''}", level


def worst_metric(kind: str, metrics: dict[str, float]) -> str:
    """The metric that decides the reading's level, shown as name and value."""
    best, best_level = None, UNKNOWN - 1
    for m, v in metrics.items():
        lvl = metric_level(kind, m, v)
        if lvl > best_level:
            best, best_level = m, lvl
    if best is None:
        return ""
    unit = METRIC_UNITS.get(best, "")
    return f"{best} {number(metrics[best])}{unit}"


class SensorTile(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.view = TileView("", "")
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumSize(220, 110)
        self._fonts = {"title": theme.font(24, bold=True), "count": theme.font(17),
                       "head": theme.font(28, bold=True), "head_small": theme.font(22, bold=True), "small": theme.font(18),
                       "badge": theme.font(20, bold=True)}

    def set_view(self, view: TileView) -> None:
        self.view = view
        self.update()

    def paintEvent(self, _event) -> None:
        v = self.view
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        w, h = self.width(), self.height()
        p.setPen(QPen(QColor(theme.PANEL_EDGE), 1))
        edge = theme.ALARM if v.alarm else theme.WARN if v.warn else theme.PANEL_EDGE
        p.setBrush(QColor("#0a1424"))
        p.drawRoundedRect(QRectF(0.5, 0.5, w - 1, h - 1), 6, 6)
        p.fillRect(QRectF(0, 6, 5, h - 12), QColor(edge))
        pad = 14
        compact = h < 130          # a short tile: headline and counts share a line
        # Title and sensor count
        p.setFont(self._fonts["title"])
        p.setPen(QColor(theme.TEXT))
        p.drawText(QRectF(pad, 6, w - 2 * pad, 30), Qt.AlignLeft | Qt.AlignVCenter, v.title)
        p.setFont(self._fonts["count"])
        p.setPen(QColor(theme.MUTED))
        p.drawText(QRectF(pad, 6, w - 2 * pad, 30), Qt.AlignRight | Qt.AlignVCenter, v.count)
        # Warning / alarm counts (right of the headline when the tile is short)
        p.setFont(self._fonts["badge"])
        badges = [(f"{self._alarm_word} {v.alarm}", theme.ALARM if v.alarm else theme.DIM),
                  (f"{self._warn_word} {v.warn}", theme.WARN if v.warn else theme.DIM)]
        fm = p.fontMetrics()
        badge_w = sum(fm.horizontalAdvance(t) for t, _ in badges) + 20
        y, x = (40, w - pad - badge_w) if compact else (84, pad)
        for text, colour in badges:
            p.setPen(QColor(colour))
            p.drawText(QRectF(x, y, 200, 34 if compact else 28), Qt.AlignLeft | Qt.AlignVCenter,
                       text)
            x += fm.horizontalAdvance(text) + 20
        # Headline figure
        p.setFont(self._fonts["head_small" if compact else "head"])
        p.setPen(QColor(LEVEL_COLOUR.get(v.headline_level, theme.TEXT)
                        if v.headline_level != UNKNOWN else theme.TEXT))
        head_w = (w - 2 * pad - badge_w - 8) if compact else (w - 2 * pad)
        p.drawText(QRectF(pad, 38, head_w, 38), Qt.AlignLeft | Qt.AlignVCenter,
                   p.fontMetrics().elidedText(v.headline, Qt.ElideRight, int(head_w)))
        # One dot per sensor
        dot, gap = 11, 4
        per_row = max(1, int((w - 2 * pad + gap) // (dot + gap)))
        y0 = 82 if compact else 118
        if y0 + dot > h - 6:
            p.end()
            return
        p.setPen(Qt.NoPen)
        for i, lvl in enumerate(v.dots):
            r, c = divmod(i, per_row)
            if y0 + r * (dot + gap) + dot > h - 4:
                break                 # no room for more rows: the counts above still hold
            p.setBrush(QColor(LEVEL_COLOUR.get(lvl, theme.MUTED)))
            p.drawRoundedRect(QRectF(pad + c * (dot + gap), y0 + r * (dot + gap), dot, dot), 2, 2)
        rows = (len(v.dots) + per_row - 1) // per_row
        # The worst readings
        p.setFont(self._fonts["small"])
        y = y0 + rows * (dot + gap) + 8
        for line, lvl in v.worst:
            if y + 24 > h - 6:
                break
            p.setPen(QColor(LEVEL_COLOUR.get(lvl, theme.MUTED)))
            p.drawText(QRectF(pad, y, w - 2 * pad, 24), Qt.AlignLeft | Qt.AlignVCenter,
                       p.fontMetrics().elidedText(line, Qt.ElideRight, int(w - 2 * pad)))
            y += 26
        p.end()

    _alarm_word = "告警"
    _warn_word = "预警"


class SensorTiles(Panel):
    name = "sensor_tiles"
    COLUMNS = 4

    def __init__(self, situation, lang="zh", parent=None):
        super().__init__(situation, lang, parent)
        self.grid = QGridLayout()
        self.grid.setSpacing(10)
        self.body.addLayout(self.grid, 1)
        self.tiles: dict[str, SensorTile] = {}
        for kind in SENSOR_KINDS:
            self._tile(kind)

    def _tile(self, kind: str) -> SensorTile:
        tile = self.tiles.get(kind)
        if tile is None:
            tile = self.tiles[kind] = SensorTile()
            tile._alarm_word, tile._warn_word = tr("alarm", self.lang), tr("warn", self.lang)
            self._place()
        return tile

    def _columns(self) -> int:
        # As many tiles a row as fit at a readable width (about 300 px each).
        return max(2, min(self.COLUMNS, self.width() // 300))

    def _place(self) -> None:
        cols = self._columns()
        for i, tile in enumerate(self.tiles.values()):
            self.grid.addWidget(tile, i // cols, i % cols)
        self._placed_cols = cols

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if getattr(self, "_placed_cols", None) != self._columns():
            self._place()

    def on_changed(self, change: Change) -> None:
        if change.sensors:
            self.dirty = True

    def refresh(self) -> None:
        lang = self.lang
        by_kind: dict[str, list] = {k: [] for k in self.tiles}
        for rec in self.situation.sensors.values():
            by_kind.setdefault(rec.kind, []).append(rec)
        total_warn = total_alarm = 0
        for kind, recs in by_kind.items():
            tile = self._tile(kind)
            recs.sort(key=lambda r: r.id)
            levels = [reading_level(kind, r.metrics) for r in recs]
            headline, head_level = headline_of(kind, [r.metrics for r in recs], lang)
            ranked = sorted(zip(levels, recs), key=lambda lr: (-lr[0], -max(lr[1].metrics.values(), default=0)))
            worst = [(f"{r.id}  {district_name(r.district, lang)}  {worst_metric(kind, r.metrics)}", lvl)
                     for lvl, r in ranked[:4] if lvl >= WARN]
            if not worst and recs:
                worst = [(tr("all_normal", lang), OK)]
            view = TileView(
                title=sensor_kind_name(kind, lang), count=tr("sensors_n", lang, n=len(recs)),
                headline=headline, headline_level=head_level,
                warn=levels.count(WARN), alarm=levels.count(ALARM), dots=levels, worst=worst)
            total_warn += view.warn
            total_alarm += view.alarm
            tile.set_view(view)
        self.summary.setText(f"{tr('alarm', lang)} {total_alarm} · {tr('warn', lang)} {total_warn}")
        self.dirty = False

    def alarm_count(self) -> int:
        return sum(t.view.alarm for t in self.tiles.values())

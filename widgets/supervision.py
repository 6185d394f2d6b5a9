"""Supervision panels (监察, 巡查即监察): the key figures of how the city answers its cases, the
same per district; where the patrols went is ``widgets.supervision_coverage``
(``PatrolCoverage``, importable from here too).

Everything is derived from the situation on refresh (``situation.supervision``), on the
situation's clock; what a panel keeps is view settings (sort column, window).
"""
from __future__ import annotations

import math

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from situation.catalog import district_name
from situation.heat import HOUR_MS
from situation.scope import district_codes
from situation.store import Change
from situation.supervision import (CITY, WINDOW_MS, Kpis, Rate, district_kpis, figure_text,
                                   kpis, min_cases_or_default, minutes_text, share_text,
                                   too_few_parts)
from widgets import theme
from widgets.i18n import tr
from widgets.panel import Cell, Panel, PanelTitle, TablePanel
from widgets.supervision_coverage import PatrolCoverage  # noqa: F401  (registry, tests)

# ---- how a figure reads: its words and its colour --------------------------------------------

# (warn, alarm) limits of each rate; "up" rates are good high, "down" rates good low.
LIMITS: dict[str, tuple[str, float, float]] = {
    "fast": ("up", 0.8, 0.5),
    "scene": ("down", 15.0, 30.0),            # minutes
    "close": ("up", 0.9, 0.8),
    "on_time": ("up", 0.9, 0.8),
    "rework": ("down", 0.05, 0.10),
}




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
        self.detail = _label("", 20, theme.MUTED)
        lay.addWidget(self.caption)
        lay.addLayout(row)
        lay.addWidget(self.detail)
        self.row = row
        self.mode, self.px = "stack", 64

    def need(self, mode: str, px: int) -> QSize:
        """The room this tile's words and figure take in ``mode`` ("stack": name over the
        figure over its detail; "inline": name beside the figure, the detail in the tooltip)
        with the figure at ``px`` (QFontMetrics: advance across, the digits' height down)."""
        cap = QFontMetrics(self.caption.font())
        val = QFontMetrics(theme.font(px, bold=True, mono_digits=True))
        unit_px = self.unit_px(px)
        unit = QFontMetrics(theme.font(unit_px)).horizontalAdvance(self.unit.text()) + 4 \
            if self.unit.isVisibleTo(self) or self.unit.text() else 0
        value_w = val.horizontalAdvance(self.value.text()) + 4 + unit
        if mode == "stack":
            det = QFontMetrics(self.detail.font())
            w = max(cap.horizontalAdvance(self.caption.text()), value_w,
                    det.horizontalAdvance(self.detail.text())) + 26
            return QSize(w, cap.height() + round(px * 1.04) + det.height() + 18)
        return QSize(cap.horizontalAdvance(self.caption.text()) + 14 + value_w + 22,
                     max(round(px * 1.04), cap.height()) + 6)

    @staticmethod
    def unit_px(px: int) -> int:
        return max(18, min(26, round(px * 0.45)))

    def shape(self, mode: str, px: int) -> None:
        """Lay the tile out in ``mode`` with the figure at ``px`` (see ``need``)."""
        self.mode, self.px = mode, px
        lay = self.layout()
        self.value.setFont(theme.font(px, bold=True, mono_digits=True))
        self.value.setFixedHeight(round(px * 1.04))     # digits: no descenders
        self.unit.setFont(theme.font(self.unit_px(px)))
        lay.removeWidget(self.caption)
        self.row.removeWidget(self.caption)
        if mode == "stack":
            lay.setContentsMargins(12, 8, 12, 8)
            self.caption.setAlignment(Qt.AlignCenter)
            lay.insertWidget(0, self.caption)
            self.unit.setContentsMargins(0, 0, 0, round(px * 0.18))
            self.unit.setAlignment(Qt.AlignLeft | Qt.AlignBottom)
            self.detail.setVisible(True)
            self.setToolTip("")
        else:
            lay.setContentsMargins(10, 2, 10, 2)
            self.caption.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
            self.row.insertWidget(1, self.caption)      # after the first stretch
            self.row.insertSpacing(2, 10)
            self.unit.setContentsMargins(0, 0, 0, 0)
            self.unit.setAlignment(Qt.AlignLeft | Qt.AlignVCenter)
            self.detail.setVisible(False)
            self.setToolTip(self.detail.text())
        self.caption.show()

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
        if self.mode == "inline":
            self.setToolTip(detail)
        self.layout().activate()

    def set_rate(self, kind: str, rate: Rate, lang: str, detail: str = "") -> None:
        """A share (or the mean minutes of ``scene``) in its level's colour; over fewer than
        ``rate.min_cases`` cases "暂无" large with "(1 件)" beside it, in the neutral DIM, and
        what it takes below — never a coloured percentage of one or two cases."""
        if not rate.enough:
            word, count = too_few_parts(rate.cases, lang)
            self.set_figure(word, theme.DIM, tr("sup.d.too_few", lang, n=rate.min_cases),
                            count)
            return
        text = minutes(rate.value) if kind == "scene" else pct(rate.value)
        self.set_figure(text, level_colour(kind, rate.value), detail)


class SupervisionKpis(Panel):
    """A strip of the supervision figures for the whole city over the last 24 h of the
    situation's clock: open, overdue (red when any), dispatched within 5 minutes, mean
    minutes from dispatch to on scene, 结案率, 按期结案率, 返工率 — amber and red past their
    limits (``LIMITS``); over fewer than ``min_cases`` cases (default
    ``situation.supervision.MIN_CASES``) "暂无 (n 件)", neutral.

    The strip sits right under the command screen's header, which already shows open and
    overdue (overdue the largest figure on the wall): by default the strip shows only what the
    header does not (``KEYS``), one of each on the screen. ``keys`` (from ``ALL_KEYS``) asks
    for others, for a strip shown where there is no full header."""

    name = "supervision_kpis"
    ALL_KEYS = ("open", "overdue", "fast", "scene", "close", "on_time", "rework")
    HEADER_KEYS = ("open", "overdue")          # widgets/header.py shows these already
    KEYS = ("fast", "scene", "close", "on_time", "rework")     # ALL_KEYS less HEADER_KEYS

    def __init__(self, situation, lang: str = "zh", parent=None, window_ms: int = WINDOW_MS,
                 min_cases: int | None = None, keys: tuple[str, ...] | None = None):
        super().__init__(situation, lang, parent)
        self.title.setText(tr(f"panel.{self.name}", lang))
        self.window_ms = window_ms
        self.min_cases = min_cases_or_default(min_cases)
        strip = QHBoxLayout()
        strip.setSpacing(12)
        self.tiles: dict[str, KpiTile] = {}
        self.keys = tuple(keys) if keys is not None else self.KEYS
        for key in self.keys:
            tile = KpiTile(tr(f"sup.k.{key}", lang),
                           tr("sup.unit.min", lang) if key == "scene" else "")
            self.tiles[key] = tile
            strip.addWidget(tile, 1)
        # In a short cell (one row of a layout's grid) the panel's title and window go to
        # the strip's left end, and each figure stands beside its name (``fit``).
        self.side = QWidget()
        side = QVBoxLayout(self.side)
        side.setContentsMargins(0, 0, 6, 0)
        side.setSpacing(0)
        # Hidden, like the panel's own title, where a console dock's title bar names the panel.
        self.side_title = PanelTitle(tr(f"panel.{self.name}", lang), self)
        self.side_title.setFont(theme.font(22, bold=True, mono_digits=True))
        self.side_title.setStyleSheet(f"color: {theme.ACCENT}; background: transparent;")
        self.side_window = theme.label("", 20, theme.MUTED)
        side.addWidget(self.side_title)
        side.addWidget(self.side_window)
        self.side.hide()
        strip.insertWidget(0, self.side)
        self.strip = strip
        self.body.addLayout(strip, 1)
        self.figures: Kpis | None = None        # the figures last shown (derived)
        self.mode: tuple[str, int] | None = None

    def on_changed(self, change: Change) -> None:
        if change.cases:
            self.dirty = True

    def refresh(self) -> None:
        k = self.figures = kpis(self.situation, self.window_ms, min_cases=self.min_cases)
        lang = self.lang
        tiles = self.tiles
        if "open" in tiles:
            tiles["open"].set_figure(str(k.open), theme.TEXT)
        if "overdue" in tiles:
            overdue_share = Rate(k.overdue, k.open, k.min_cases)
            tiles["overdue"].set_figure(str(k.overdue), theme.ALARM if k.overdue else theme.OK,
                                        tr("sup.d.share_open", lang, p=pct(overdue_share.value))
                                        if overdue_share.enough else "")
        for key in ("fast", "close", "on_time", "rework"):
            if key in tiles:
                r = k.rate(key)
                tiles[key].set_rate(key, r, lang, tr("sup.d.of", lang, a=int(r.num), b=r.cases))
        if "scene" in tiles:
            tiles["scene"].set_rate("scene", k.rate("scene"), lang,
                                    tr("sup.d.mean", lang, n=k.on_scene))
        self.summary.setText(tr("sup.sum.kpis", lang, h=self.window_ms // HOUR_MS,
                               due=k.due_to_close, closed=k.closed)
                             + (tr("sup.sum.rule", lang, n=k.min_cases) if k.min_cases > 1
                                else ""))
        self.side_window.setText(tr("sup.win_short", lang, h=self.window_ms // HOUR_MS))
        self.side.setToolTip(self.summary.text())
        self.fit()
        self.body.activate()          # new widths now, not at the next event: a grab is right
        self.dirty = False

    STACK_PX = (64, 56, 48, 40)
    INLINE_PX = (64, 56, 48, 44, 40, 36, 32, 28, 24)

    def fit(self) -> None:
        """The largest figures the panel's size allows: stacked tiles (name, figure, detail)
        under the panel's title when it is tall enough, else one line — the title and window
        at the left, each name beside its figure, the details in the tooltips."""
        W, H = self.width(), self.height()
        if W <= 0 or H <= 0 or not self.tiles:
            return
        n, gap = len(self.tiles), self.strip.spacing()
        outer = self.layout()
        head = max(self.title.sizeHint().height(), self.summary.sizeHint().height())
        chosen = None
        for px in self.STACK_PX:
            tile_w = (W - 28 - gap * (n - 1)) // n
            need = [tile.need("stack", px) for tile in self.tiles.values()]
            if all(q.width() <= tile_w for q in need) \
                    and 22 + head + 8 + max(q.height() for q in need) <= H:
                chosen = ("stack", px)
                break
        if chosen is None:
            side_w = max(self.side_title.sizeHint().width(),
                         self.side_window.sizeHint().width()) + 6
            room_w = (W - 20 - side_w - gap * n) // n
            for px in self.INLINE_PX:
                need = [tile.need("inline", px) for tile in self.tiles.values()]
                if all(q.width() <= room_w for q in need) \
                        and 8 + max(q.height() for q in need) + 2 <= H:
                    chosen = ("inline", px)
                    break
        chosen = chosen or ("inline", self.INLINE_PX[-1])
        if chosen == self.mode:
            return
        self.mode = chosen
        mode, px = chosen
        stacked = mode == "stack"
        self.title.setVisible(stacked)
        self.summary.setVisible(stacked)
        self.side.setVisible(not stacked)
        outer.setContentsMargins(14, 10, 14, 12) if stacked else \
            outer.setContentsMargins(10, 4, 10, 4)
        outer.setSpacing(8 if stacked else 0)
        for tile in self.tiles.values():
            tile.shape(mode, px)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.fit()


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
        self.title.setText(tr(f"panel.{self.name}", lang))
        self.window_ms = window_ms
        self.min_cases = min_cases_or_default(min_cases)
        self.model.headers = [tr(f"sup.{c}", lang) for c in self.columns]
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
        codes = district_codes(self.situation)     # a district wall: its districts only
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
        # the total row: the whole city's, or a district wall's districts' (its scope)
        total = (tr("sup.city", lang) if getattr(self.situation, "scope", None) is None
                 else tr("scope.total", lang))
        keys, rows = [], []
        for code in [CITY] + self.order(frame):
            r = frame.loc[code]
            city = code == CITY
            late = int(r["overdue"])
            bg = theme.CITY_ROW if city else (theme.ALARM_BG if late >= 3 else None)
            due = int(r["due_to_close"])

            def rate(kind: str, col: str, num: str, den: str) -> Cell:
                v = float(r[col])             # NaN over fewer than min_cases: neutral
                figure = Rate(float(r[num]), int(r[den]), self.min_cases)
                tip = f"{int(r[num])}/{int(r[den])}" if int(r[den]) else None
                return Cell(self._text(figure, lang), level_colour(kind, v), bg, tip=tip)

            scene = float(r["dispatch_to_scene_min"])
            scene_figure = Rate(float(r["scene_min_sum"]), int(r["on_scene"]), self.min_cases)
            rows.append([
                Cell(total if city else district_name(code, lang), None, bg, bold=True),
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
            summary = tr("sup.sum.table_plain", lang, h=h)
        else:
            summary = tr("sup.sum.table", lang, h=h, col=tr(f"sup.{self.sort_column}", lang))
        if self.min_cases > 1:
            summary += tr("sup.sum.rule", lang, n=self.min_cases)
        return keys, rows, summary

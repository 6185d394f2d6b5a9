"""Sensor tiles (城市感知): one tile per kind — its key figure (value and unit) large, how many
sensors are in warning and alarm, a dot for every sensor coloured by its latest reading's
level — and beside or under the tiles the worst readings now: which sensor, in which district,
its value and level (the header's 感知告警 figure, itemised).

Nothing here is elided. A tile fits its parts to its size with QFontMetrics: the words give
way first (the caption "PM2.5 中位" moves onto the title's line, then goes — the tooltip keeps
it), then the dots shrink, and the dot row goes only when there is no room for it at all (the
panel's summary says so); the key figure always shows whole. The panel picks the tiles'
columns and rows (a QGridLayout) and where the worst list goes from its own size, so tiles
never overlap whatever cell a layout gives the panel.

A short, wide cell (the one-screen wall's bottom row: about 720 × 100 px of room) has no
arrangement of those tiles that fits. There each tile is one line — "空气 118.5 µg/m³", the
figure in its level's colour, the alarm and warning counts beside it where the line has room
— and the tiles flow on one to four lines, as many a line as fit (QFontMetrics; the figure as
large as fits, never under 18 px). The dots and the worst list go; the summary says the dots
are left out and gives the worst reading.
"""
from __future__ import annotations

import heapq
import math
from itertools import combinations

from PySide6.QtCore import QSize
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QBoxLayout, QGridLayout, QWidget

from situation.catalog import SENSOR_KINDS, district_name, sensor_kind_name
from situation.store import Change
from situation.thresholds import ALARM, OK, WARN, reading_level
from widgets.i18n import tr
from widgets.panel import Panel
# the tile, the worst list and the figures live in their own modules; their names are
# importable from here as before
from widgets.sensor_figures import (HEADLINE, TIGHT_UNITS, headline_of,  # noqa: F401
                                    headline_parts, severity, worst_metric)
from widgets.sensor_tile import (BADGE_PX, COMPACT_GAP, COMPACT_PAD_L,  # noqa: F401
                                 COMPACT_PAD_R, COMPACT_PAD_V, COMPACT_PX, COMPACT_SPACING,
                                 DOT_GAP, DOT_PX, LEVEL_COLOUR, SMALL_PX, STYLES, TITLE_PX,
                                 VALUE_MIN_GOOD, VALUE_PX, DotRow, SensorTile, TilePlan,
                                 TileView, badge_text, dot_rows)
from widgets.sensor_worst import (WORST_EACH_KIND, WORST_HEAD_PX, WORST_KEEP,  # noqa: F401
                                  WORST_MAX, WORST_PX,
                                  WorstList, colour_of)

QWIDGETSIZE_MAX = (1 << 24) - 1


def _splits(n: int, k: int):
    """Every way to cut n things in order into k non-empty runs (the cut points)."""
    return combinations(range(1, n), k - 1)


class SensorTiles(Panel):
    name = "sensor_tiles"
    COLUMNS = 4                 # at most (with seven kinds: 4 + 3)
    SPACING = 10

    def __init__(self, situation, lang="zh", parent=None):
        super().__init__(situation, lang, parent)
        self.area = QWidget()
        self.split = QBoxLayout(QBoxLayout.LeftToRight, self.area)
        self.split.setContentsMargins(0, 0, 0, 0)
        self.split.setSpacing(14)
        self.tile_box = QWidget()
        self.grid = QGridLayout(self.tile_box)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(self.SPACING)
        self.worst = WorstList(lang)
        self.split.addWidget(self.tile_box, 1)
        self.split.addWidget(self.worst, 0)
        self.body.addWidget(self.area, 1)
        self.area.installEventFilter(self)
        self.tiles: dict[str, SensorTile] = {}
        self.arrangement: tuple | None = None       # (worst side/below, cols, rows, size)
        self.no_dots = False
        self._summary = ""
        self.worst_lines: list[tuple[tuple[str, ...], int]] = []   # the worst WORST_KEEP
        for kind in SENSOR_KINDS:
            self._tile(kind)

    def eventFilter(self, obj, event) -> bool:
        if obj is self.area and event.type() == event.Type.Resize:
            self.arrange()
        return False

    def _tile(self, kind: str) -> SensorTile:
        tile = self.tiles.get(kind)
        if tile is None:
            tile = self.tiles[kind] = SensorTile(self.lang)
            tile.setParent(self.tile_box)
            self.arrangement = None
            self.arrange()
        return tile

    # ---- arranging ------------------------------------------------------------------------
    def _styles(self, w: int, h: int) -> tuple[int | None, int, list[TilePlan]]:
        """The first style every tile fits in at w × h (None: none), the key figures' size in
        it (the smallest of the tiles' largest), and each tile's plan."""
        opts = [t.options(w - 2, h - 2) for t in self.tiles.values()]      # rounding slack
        common = set.intersection(*(set(o) for o in opts)) if opts else set()
        if not common:
            return None, 0, [t.plan_for(w, h) for t in self.tiles.values()]
        style = min(common)
        px = min(o[style].value_px for o in opts)
        return style, px, [o[style] for o in opts]

    def _grid_plan(self, w: int, h: int) -> tuple[tuple, int, int, int | None, int]:
        """(quality, columns, rows, style, value px) of the best grid for the tiles in w × h
        (lower quality is better: tiles that do not fit, key figures under 26 px, then the
        style's rank)."""
        n = len(self.tiles)
        best = None
        for cols in range(1, min(n, self.COLUMNS) + 1):
            rows = math.ceil(n / cols)
            tw = (w - (cols - 1) * self.SPACING) // cols
            th = (h - (rows - 1) * self.SPACING) // rows
            if tw <= 0 or th <= 0:
                continue
            style, px, plans = self._styles(tw, th)
            quality = (sum(not p.fits for p in plans), sum(p.value_px < 26 for p in plans),
                       999 if style is None else style, -px)
            if best is None or quality < best[0]:
                best = (quality, cols, rows, style, px)
        return best or ((99, 99, 999, 0), min(n, self.COLUMNS),
                        math.ceil(n / min(n, self.COLUMNS)), None, 0)

    def _compact_plan(self, w: int, h: int) -> tuple[int, list[list[tuple]]] | None:
        """One-line tiles in w × h: (type px, lines of (tile, width, counts shown)), the tiles
        in their order, the type as large as fits (QFontMetrics); then the most counts shown
        (alarms count double), then as few lines as fit, then the evenest lines. None when even the smallest does not
        fit."""
        tiles = list(self.tiles.values())
        n, sp = len(tiles), COMPACT_SPACING
        for px in COMPACT_PX:
            line_h = tiles[0].compact_height(px)
            most = min(n, 4, (h + sp) // (line_h + sp))
            widths = [t.compact_widths(px) for t in tiles]
            best = None
            for k in range(1, most + 1):
                for cuts in _splits(n, k):
                    lines, shown, widest = [], 0, 0
                    for a, b in zip((0, *cuts), (*cuts, n)):
                        base = sum(widths[i][0] for i in range(a, b)) + sp * (b - a - 1)
                        if base > w:
                            break
                        widest = max(widest, base)
                        room = w - base
                        counts = set()
                        # the counts where the line has room, the worst tiles' first
                        for i in sorted(range(a, b), key=lambda i: (-tiles[i].view.alarm,
                                                                    -tiles[i].view.warn, i)):
                            if widths[i][1] and widths[i][1] <= room:
                                counts.add(i)
                                room -= widths[i][1]
                        shown += sum(2 if tiles[i].view.alarm else 1 for i in counts)
                        lines.append([(tiles[i], widths[i][0]
                                       + (widths[i][1] if i in counts else 0), i in counts)
                                      for i in range(a, b)])
                    else:
                        score = (-shown, k, widest)
                        if best is None or score < best[0]:
                            best = (score, lines)
            if best is not None:
                return px, best[1]
        return None

    def _place_compact(self, w: int, h: int, lines: list[list[tuple]]) -> None:
        """The one-line tiles in their lines, each line filling the width, the lines the
        height."""
        sp = COMPACT_SPACING
        k = len(lines)
        line_h = (h - sp * (k - 1)) // k
        y = 0
        for line in lines:
            slack = w - sum(width for _t, width, _c in line) - sp * (len(line) - 1)
            x = 0
            for j, (tile, width, _counts) in enumerate(line):
                share = slack // len(line) + (slack % len(line) if j == len(line) - 1 else 0)
                tile.setGeometry(x, y, width + share, line_h)
                tile.fit()
                x += width + share + sp
            y += line_h + sp

    def arrange(self) -> None:
        """Columns and rows of the tiles, and the worst list beside (a wide panel), under
        them, or — when there is no room for it — its first line in the summary, for the
        room the panel has. Tiles that fit with their figures large come first, then at
        least three lines of the worst list, then the tiles' words and dots. When no
        arrangement fits every tile (a short, wide cell), the tiles go on one line each
        (``_compact_plan``)."""
        if not self.tiles:
            return
        W, H = self.area.width(), self.area.height()
        if W <= 0 or H <= 0:
            return
        gap = self.split.spacing()
        wl = self.worst
        lines = max(1, min(WORST_MAX, len(wl.lines) or 1))
        side_w = min(max(wl.need_w(), 200), int(W * 0.42))
        options = []
        side = self._grid_plan(W - side_w - gap, H)
        side_rows = min(lines, max(0, (H - wl.head_h()) // wl.row_h()))
        options.append(((*side[0][:2], -min(side_rows, 3), *side[0][2:]), "side", 0, side))
        for k in (3, 2, 1):
            if k > lines:
                continue
            below_h = wl.head_h() + k * wl.row_h()
            below = self._grid_plan(W, H - below_h - gap)
            options.append(((*below[0][:2], -k, *below[0][2:]), "below", below_h, below))
        alone = self._grid_plan(W, H)
        options.append(((*alone[0][:2], -0.5, *alone[0][2:]), "none", 0, alone))
        _score, where, below_h, (quality, cols, rows, style, px) = min(options,
                                                                      key=lambda o: o[0])
        compact = self._compact_plan(W, H) if quality[0] else None
        if compact is not None:
            # the worst list under the one-line tiles when they keep their type there
            list_h = 0
            for k in (3, 2, 1):
                if k > lines:
                    continue
                below_h = wl.head_h() + k * wl.row_h()
                under = self._compact_plan(W, H - below_h - gap)
                if under is not None and under[0] >= compact[0]:
                    compact, list_h = under, below_h
                    break
            key = ("compact", compact[0], len(compact[1]), list_h, W, H)
            if key != self.arrangement:
                self.arrangement = key
                self._arrange_compact(W, H - (list_h + gap if list_h else 0), *compact,
                                      list_h=list_h)
            return
        key = (where, below_h, cols, rows, W, H)
        if key == self.arrangement:
            return
        self.arrangement = key
        for tile in self.tiles.values():
            tile.style, tile.style_px = style, px
            tile.compact = None
            tile.fit()
        # fixed across the split only: the list never asks the panel for more room
        wl.setVisible(where != "none")
        wl.setMinimumSize(0, 0)
        if where == "side":
            self.split.setDirection(QBoxLayout.LeftToRight)
            wl.hint = QSize(side_w, 0)
            wl.setMaximumSize(side_w, QWIDGETSIZE_MAX)
        elif where == "below":
            self.split.setDirection(QBoxLayout.TopToBottom)
            wl.hint = QSize(0, below_h)
            wl.setMaximumSize(QWIDGETSIZE_MAX, below_h)
        wl.updateGeometry()
        for i in range(self.grid.rowCount()):
            self.grid.setRowStretch(i, 0)
        for i in range(self.grid.columnCount()):
            self.grid.setColumnStretch(i, 0)
        for i, tile in enumerate(self.tiles.values()):
            self.grid.removeWidget(tile)
            self.grid.addWidget(tile, i // cols, i % cols)
        for r in range(rows):
            self.grid.setRowStretch(r, 1)
        for c in range(cols):
            self.grid.setColumnStretch(c, 1)
        self.columns, self.rows = cols, rows
        self.split.activate()
        self.grid.activate()
        self._say_dots()

    def _arrange_compact(self, w: int, h: int, px: int, lines: list[list[tuple]],
                         list_h: int = 0) -> None:
        """The one-line tiles in w × h, and the worst list ``list_h`` high under them (0: its
        first line goes in the summary)."""
        wl = self.worst
        wl.setVisible(bool(list_h))
        if list_h:
            self.split.setDirection(QBoxLayout.TopToBottom)
            wl.setMinimumSize(0, 0)
            wl.hint = QSize(0, list_h)
            wl.setMaximumSize(QWIDGETSIZE_MAX, list_h)
            wl.updateGeometry()
        for i in range(self.grid.rowCount()):
            self.grid.setRowStretch(i, 0)
        for i in range(self.grid.columnCount()):
            self.grid.setColumnStretch(i, 0)
        for tile in self.tiles.values():
            self.grid.removeWidget(tile)        # placed by hand, line by line
        for line in lines:
            for tile, _width, counts in line:
                tile.style, tile.style_px = None, None
                tile.compact = (px, counts)
        self.columns, self.rows = max(len(line) for line in lines), len(lines)
        self.split.activate()
        self._place_compact(w, h, lines)
        self._say_dots()

    def _say_dots(self) -> None:
        """The summary: alarm and warning counts; the worst reading when the list has no
        room; that the dots are left out when they are."""
        self.no_dots = any(t.plan is not None and not t.plan.dots and t.view.dots
                           for t in self.tiles.values())
        worst = mid = short = ""
        if not self.worst.isVisibleTo(self) and self.worst_lines:
            parts, _lvl = self.worst_lines[0]
            head = f" · {tr('tile.worst', self.lang)} "
            worst = head + self.worst.text(parts[1:])          # sensor, district, metric
            mid = head + self.worst.text((parts[1], parts[-1]))
            short = f" · {tr('tile.worst_short', self.lang)} {parts[1]} {parts[-1]}"
        dots = dot = ""
        if self.no_dots:
            dots, dot = tr("tile.no_dots", self.lang), tr("tile.no_dots_short", self.lang)
        # the summary never widens the panel: the words shorten, the notes give way — the
        # dots' note first, the worst reading last (it says something about the city)
        m = self.contentsMargins()
        lm = self.body.contentsMargins()
        room = (self.width() - m.left() - m.right() - lm.left() - lm.right()
                - self.title.sizeHint().width() - getattr(self, "head_reserve", 0) - 24)
        fm = QFontMetrics(self.summary.font())
        forms = ((worst, dots), (mid, dots), (mid, dot), (short, dot), (worst, ""),
                 (mid, ""), (short, ""), ("", dots), ("", dot), ("", ""))
        for w, d in forms:
            text = self._summary + w + d
            if fm.horizontalAdvance(text) + 4 <= room:
                break
        self.summary.setText(text)
        if hasattr(self, "fit_head"):
            self.fit_head()

    # ---- refreshing -----------------------------------------------------------------------
    def on_changed(self, change: Change) -> None:
        if change.sensors:
            self.dirty = True

    def refresh(self) -> None:
        lang = self.lang
        by_kind: dict[str, list] = {k: [] for k in self.tiles}
        for rec in self.situation.sensors.values():
            by_kind.setdefault(rec.kind, []).append(rec)
        total_warn = total_alarm = 0
        bad: list[tuple[int, float, str, str, object]] = []
        for kind, recs in by_kind.items():
            tile = self._tile(kind)
            recs.sort(key=lambda r: r.id)
            levels = [reading_level(kind, r.metrics) for r in recs]
            caption, value, head_level = headline_parts(kind, [r.metrics for r in recs], lang)
            # The worst first — only as many as any list can show: a haze that puts 10,000
            # air sensors in alarm must not cost the wall a sort and a line of each
            alarms = [(lvl, r) for lvl, r in zip(levels, recs) if lvl == ALARM]
            if len(alarms) < WORST_KEEP:      # enough alarms: no warning comes before them
                alarms += [(lvl, r) for lvl, r in zip(levels, recs) if lvl == WARN]
            ranked = heapq.nsmallest(
                WORST_KEEP, alarms,
                key=lambda lr: (-lr[0], -severity(kind, lr[1].metrics), lr[1].id))
            worst = [(f"{r.id}  {district_name(r.district, lang)}  "
                      f"{worst_metric(kind, r.metrics)}", lvl)
                     for lvl, r in ranked[:4]]
            if not worst and recs:
                worst = [(tr("all_normal", lang), OK)]
            bad += [(lvl, severity(kind, r.metrics), r.id, kind, r) for lvl, r in ranked]
            view = TileView(
                title=sensor_kind_name(kind, lang), count=tr("sensors_n", lang, n=len(recs)),
                headline=(f"{caption} {value}" if caption and value != "—" else value),
                headline_level=head_level, warn=levels.count(WARN),
                alarm=levels.count(ALARM), dots=levels, worst=worst, caption=caption,
                value=value)
            total_warn += view.warn
            total_alarm += view.alarm
            tile.set_view(view)
        # the worst WORST_KEEP of all, then each kind's worst few after them: in a narrow
        # panel a long line may not fit at all, and the list goes on to one that does
        order = lambda b: (-b[0], -b[1], b[2])             # noqa: E731
        top = heapq.nsmallest(WORST_KEEP, bad, key=order)
        taken = {b[2] for b in top}
        each: dict[str, int] = {}
        for b in sorted(bad, key=order):
            if b[2] not in taken and each.get(b[3], 0) < WORST_EACH_KIND:
                each[b[3]] = each.get(b[3], 0) + 1
                top.append(b)
        bad = top
        lines = [((tr("alarm" if lvl == ALARM else "warn", lang), r.id,
                   district_name(r.district, lang) if r.district else "—",
                   worst_metric(kind, r.metrics, lang)), lvl)
                 for lvl, _sev, _id, kind, r in bad]
        self.worst.set_lines(lines or [(("", tr("all_normal", lang)), OK)])
        self.worst_lines = lines
        self._summary = f"{tr('alarm', lang)} {total_alarm} · {tr('warn', lang)} {total_warn}"
        self.arrangement = None
        self.arrange()
        self._say_dots()
        self.dirty = False

    def alarm_count(self) -> int:
        return sum(t.view.alarm for t in self.tiles.values())

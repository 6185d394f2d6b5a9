"""The live city map: a Leaflet page made with folium, shown in QtWebEngine, fully offline.

The page is built once (``widgets.city_map_page``). Afterwards the panel sends it only what
changed, batched, at most a few times a second (``cw.update``), and the situation's clock once
a second (``cw.setNow``), so staleness and overdue run on the one clock. Clicking a marker
reports back through the page's console; details show in a Qt label as plain text.
"""
from __future__ import annotations

import base64
import json
import math

import msgspec
from PySide6.QtCore import QEvent, QSize, QUrl, Qt, Signal
from PySide6.QtWebEngineCore import QWebEnginePage, QWebEngineSettings
from PySide6.QtWebEngineWidgets import QWebEngineView
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QToolTip, QWidget

from feeds.districts import city_bbox, frame_of
from feeds.startup import STARTUP
from situation.catalog import (category_name, district_name, sensor_kind_name, stage_name,
                               unit_kind_name, unit_status_name)
from situation import heat
from situation.mapkit import base_url
from situation.store import Change
from widgets import theme
from widgets.i18n import tr
from widgets import tiles as tile_sources
from widgets.case_queue import UNIT_MIME
# The page (and the records its layers read) is built in widgets.city_map_page; its names are
# re-exported here, where the tests and the bench import them.
from widgets.city_map_page import (  # noqa: F401
    GRID_DEG, LABEL_PX, LEGEND_PX, MARKER_PX, MIN_FRAME_M, PAGE_JS, PAGE_WORDS, UNITS_IN_FRAME,
    WORK_QUANTILES, build_page, case_js, legend_entries, legend_html, page_colours, sensor_js,
    unit_js, with_alpha)
from widgets.format import ago, number, time_left
from widgets.panel import Panel

_encode = msgspec.json.Encoder().encode
HEAT_WINDOW_MS = 6 * 3_600_000
HEAT_BLOB_PX = 12                   # the heat's smoothing, in screen pixels (one sigma)
HEAT_EVERY_REFRESHES = 12           # refreshes come 1-4 times a second
KINDS = ("units", "cases", "sensors")


def parse_view(text: str) -> dict | None:
    """The page's report of its view (``cw:view:`` JSON) as ``{"center": [lat, lon], "zoom":
    z, "bounds": [[s, w], [n, e]]}``, or None when it is not that shape."""
    try:
        doc = json.loads(text)
        lat, lon = (float(v) for v in doc["center"])
        zoom = float(doc["zoom"])
        (s_, w_), (n_, e_) = ((float(a), float(b)) for a, b in doc["bounds"])
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if not all(math.isfinite(v) for v in (lat, lon, zoom, s_, w_, n_, e_)):
        return None
    return {"center": [lat, lon], "zoom": zoom, "bounds": [[s_, w_], [n_, e_]]}


class MapPage(QWebEnginePage):
    clicked = Signal(str, str)            # kind, id
    viewed = Signal(object)               # the view the page reports after a move (parse_view)

    def javaScriptConsoleMessage(self, level, message, line, source):
        if message.startswith("cw:view:"):
            view = parse_view(message[len("cw:view:"):])
            if view is not None:
                self.viewed.emit(view)
            return
        if message.startswith("cw:click:"):
            try:
                kind, ident = json.loads(message[len("cw:click:"):])
            except (ValueError, TypeError):
                return
            self.clicked.emit(str(kind), str(ident))


class _Toggles(QWidget):
    """The map's layer buttons. They ask for no width of their own: where they do not fit
    beside the title they move under it (``CityMap.fit_head``)."""

    def minimumSizeHint(self) -> QSize:
        return QSize(0, super().minimumSizeHint().height())


class CityMap(Panel):
    name = "city_map"
    unit_dropped = Signal(str, str)       # case id, unit id: a unit dragged onto a case
    tile_source: "tile_sources.TileSource | None" = None     # set once by the app
    permission = None       # (action, case_id, unit_id) → why this seat may not (the glue's)

    def __init__(self, situation, lang="zh", parent=None):
        super().__init__(situation, lang, parent)
        self.loaded = False
        self._pending = {k: set() for k in KINDS}
        self._sent_now = 0
        self.page_ms: list[float] = []     # time the page spent per update (benchmarks)
        self.page_updates = 0              # updates the page reported, and their time (metrics)
        self.page_ms_total = 0.0
        self.heat_on = False
        self._heat_countdown = 0
        self._heat_text = ""
        self.buttons = {}
        # The layer buttons share the title's line when the panel is wide enough (the map gets
        # the height), else they take a line of their own under it (``fit_head``): they never
        # make the map wider than its cell.
        self.toggles = _Toggles()
        row = QHBoxLayout(self.toggles)
        row.setContentsMargins(12, 0, 0, 0)
        row.setSpacing(6)
        for key in ("units", "cases", "sensors", "districts", "heat"):
            b = QPushButton(tr(f"map.layer.{key}", lang))
            b.setCheckable(True)
            b.setChecked(key != "heat")
            b.setFont(theme.font(18))
            b.setStyleSheet(f"QPushButton {{ background: {theme.PANEL}; color: {theme.MUTED};"
                            f" border: 1px solid {theme.PANEL_EDGE}; border-radius: 4px;"
                            " padding: 2px 10px; }"
                            f" QPushButton:checked {{ color: {theme.TEXT};"
                            f" border-color: {theme.ACCENT}; }}")
            b.toggled.connect(lambda on, k=key: self.show_layer(k, on))
            self.buttons[key] = b
            row.addWidget(b)
        self.head.insertWidget(1, self.toggles)
        self.view = QWebEngineView()
        self.view.setAcceptDrops(True)
        self.view.installEventFilter(self)       # unit drops: the view and the widget
        self.page = MapPage(self.view)
        self.page.settings().setAttribute(
            QWebEngineSettings.WebAttribute.LocalContentCanAccessFileUrls, True)
        self.page.settings().setAttribute(
            QWebEngineSettings.WebAttribute.LocalContentCanAccessRemoteUrls, False)
        self.view.setPage(self.page)
        self.page.clicked.connect(self.show_details)
        # What the map shows, as the page last reported it (on Leaflet's moveend): read by the
        # status file's windows[].map_view without asking the page. None until the first.
        self.map_view: dict | None = None
        self.page.viewed.connect(self._viewed)
        self.page.loadFinished.connect(self._on_loaded)
        self.body.addWidget(self.view, 1)
        # A clicked marker's details. Blank until then — no hint: the line is kept (a space),
        # so the map does not jump when the first details come.
        self.details = QLabel(" ")
        self.details.setTextFormat(Qt.PlainText)     # feed text is shown as text, always
        self.details.setWordWrap(True)
        self.details.setFont(theme.font(19))
        self.details.setStyleSheet(f"color: {theme.MUTED};")
        self.body.addWidget(self.details)
        src = CityMap.tile_source
        if src is not None and src.problem:
            self.notice(src.problem)            # and the district basemap: never blank
        if src is not None and src.handler is not None:
            tile_sources.install(self.page.profile(), src)
        self.page.setHtml(build_page(lang, src.url if src and not src.problem else None,
                                     frame_of(situation)),
                          QUrl(base_url()))

    def fit_head(self) -> None:
        """The panel's rule (title and summary side by side when they fit), counting the
        layer buttons beside the title when they fit there; else the buttons go under it."""
        toggles = getattr(self, "toggles", None)
        if toggles is None:
            return super().fit_head()
        m, lm = self.contentsMargins(), self.body.contentsMargins()
        room = self.width() - m.left() - m.right() - lm.left() - lm.right()
        beside = self.title.sizeHint().width() + self.head.spacing() + toggles.sizeHint().width()
        in_head = self.head.indexOf(toggles) >= 0
        if room > 0 and (beside <= room) != in_head:
            (self.head if in_head else self.body).removeWidget(toggles)
            if beside <= room:
                self.head.insertWidget(1, toggles)
            else:
                self.body.insertWidget(1, toggles)
            in_head = not in_head
        extra = toggles.sizeHint().width() + self.head.spacing() if in_head else 0
        self.head_reserve += extra
        try:
            super().fit_head()
        finally:
            self.head_reserve -= extra

    # ---- dropping a unit on a case ---------------------------------------------------------
    def eventFilter(self, obj, event) -> bool:
        proxy = self.view.focusProxy()
        if proxy is not None and not getattr(self, "_proxy_filtered", False):
            proxy.installEventFilter(self)         # Chromium's widget gets the real drags
            proxy.setAcceptDrops(True)
            self._proxy_filtered = True
        kind = event.type()
        if kind in (QEvent.DragEnter, QEvent.DragMove):
            if event.mimeData().hasFormat(UNIT_MIME):
                why = self.permission("dispatch") if self.permission else None
                if why and kind == QEvent.DragEnter:    # the drop will be refused: say why
                    QToolTip.showText(QCursor.pos(), why, self.view)
                event.acceptProposedAction()
                return True
        elif kind == QEvent.Drop and event.mimeData().hasFormat(UNIT_MIME):
            unit_id = bytes(event.mimeData().data(UNIT_MIME)).decode("utf-8", "replace")
            pos = event.position().toPoint()
            if obj is not self.view:
                pos = obj.mapTo(self.view, pos)
            self.drop_unit_at(unit_id, pos.x(), pos.y())
            event.acceptProposedAction()
            return True
        return super().eventFilter(obj, event)

    def drop_unit_at(self, unit_id: str, x: int, y: int) -> None:
        """Find the case under the drop (within a finger's width) and say so."""
        def found(case_id):
            if isinstance(case_id, str) and case_id:
                self.unit_dropped.emit(case_id, unit_id)
        self.js(f"cw.caseNear({int(x)}, {int(y)}, 28)", found)

    # ---- page life ----------------------------------------------------------------------
    def _viewed(self, view: dict) -> None:
        self.map_view = view

    def _on_loaded(self, ok: bool) -> None:
        self.loaded = ok
        if ok:
            self.js(f"cw.setScale({self.marker_scale()})")
            scope = getattr(self.situation, "scope", None)     # a district wall: its outlines
            if scope is not None:
                self.js(f"cw.setScope({json.dumps(list(scope.adcodes))})")
            self.full_sync()

    def marker_scale(self) -> float:
        """The screen's type scale (``theme.screen_scale``): markers and labels keep their
        physical size on a larger screen."""
        return theme.screen_scale(self.screen())

    def js(self, code: str, callback=None) -> None:
        if callback is None:
            self.page.runJavaScript(code)
        else:
            self.page.runJavaScript(code, 0, callback)

    def full_sync(self) -> None:
        st = self.situation
        patch = {"now": st.now_ms(),
                 "units": [unit_js(u) for u in st.units.values()],
                 "cases": [case_js(c) for c in st.open_cases()],
                 "sensors": [sensor_js(r) for r in st.sensors.values()]}
        for k in KINDS:
            self._pending[k].clear()
        self.js("cw.clear()")
        self._send(patch)

    def _send(self, patch: dict) -> None:
        # JSON is a JavaScript literal; msgspec writes it ~10x faster than json.dumps.
        drawn = any(patch.get(k) for k in KINDS)
        self.js(f"cw.update({_encode(patch).decode('utf-8')})",
                lambda ms: self._page_took(ms, drawn))

    def _page_took(self, ms, drawn: bool = False) -> None:
        if drawn:
            STARTUP.mark("map_markers_s")        # the page has drawn markers (issue #18)
        if isinstance(ms, (int, float)):
            self.page_ms.append(float(ms))
            self.page_updates += 1
            self.page_ms_total += float(ms)
            del self.page_ms[:-1000]

    # ---- the panel contract ---------------------------------------------------------------
    def on_changed(self, change: Change) -> None:
        if change.units or change.cases or change.sensors:
            self._pending["units"] |= change.units
            self._pending["cases"] |= change.cases
            self._pending["sensors"] |= change.sensors
            self.dirty = True

    def refresh(self) -> None:
        self.dirty = False
        st = self.situation
        now = st.now_ms()
        self._summary(now)
        if self.heat_on:
            self._heat_countdown -= 1
            if self._heat_countdown <= 0:      # a few seconds apart: heat moves slowly
                self._heat_countdown = HEAT_EVERY_REFRESHES
                self._update_heat()
        if not self.loaded:
            return
        if any(self._pending.values()):
            patch = {"now": now, "units": [], "cases": [], "sensors": [],
                     "removed": {k: [] for k in KINDS}}
            for uid in self._pending["units"]:
                u = st.units.get(uid)
                (patch["units"].append(unit_js(u)) if u is not None
                 else patch["removed"]["units"].append(uid))
            for cid in self._pending["cases"]:
                c = st.cases.get(cid)
                (patch["cases"].append(case_js(c)) if c is not None and st.is_open(c)
                 else patch["removed"]["cases"].append(cid))
            for sid in self._pending["sensors"]:
                r = st.sensors.get(sid)
                (patch["sensors"].append(sensor_js(r)) if r is not None
                 else patch["removed"]["sensors"].append(sid))
            for k in KINDS:
                self._pending[k].clear()
            self._send(patch)
        if now - self._sent_now >= 1000:           # the clock moved: stale, overdue, pulse
            self._sent_now = now
            self.js(f"cw.setNow({int(now)})")

    def _summary(self, now: int) -> None:
        x0, y0, x1, y1 = city_bbox(frame_of(self.situation))
        outside = sum(1 for c in self.situation.open_cases()
                      if not (x0 - 0.5 <= c.lon <= x1 + 0.5 and y0 - 0.5 <= c.lat <= y1 + 0.5))
        parts = [self._heat_text] if self.heat_on and self._heat_text else []
        if outside:
            parts.append(tr("map.outside", self.lang, n=outside))
        text = " · ".join(parts)
        self.summary.setText(text)
        self.summary.setStyleSheet(f"color: {theme.WARN if outside else theme.MUTED};")

    # ---- what a commander does with it -----------------------------------------------------
    def show_layer(self, key: str, on: bool) -> None:
        if key == "heat":
            self.heat_on = on
            self._heat_countdown = 0
            if on:
                self._update_heat()
            else:
                self.js("cw.setOverlay(null)")
                self._heat_text = ""
            return
        self.js(f"cw.show({json.dumps(key)}, {'true' if on else 'false'})")

    def _update_heat(self) -> None:
        """Ask the page what it shows, then lay the case heat of that view over it: 500 m
        cells city-wide, the 100 m unit grid when a district or less is in view."""
        self.js("JSON.stringify(cw.viewBounds())", self._heat_for_view)

    def _heat_sigma(self, south, west, north, east, cell: int) -> float:
        width_px = max(1, self.view.width())
        metres = (east - west) * 111_320 * math.cos(math.radians((south + north) / 2))
        per_px = metres / width_px
        return max(1.5, min(12.0, HEAT_BLOB_PX * per_px / cell))

    def _heat_for_view(self, bounds) -> None:
        if not self.heat_on or not isinstance(bounds, str):
            return
        south, west, north, east = json.loads(bounds)
        x0, y0, x1, y1 = city_bbox(frame_of(self.situation))
        view = (max(west, x0), max(south, y0), min(east, x1), min(north, y1))
        if view[0] >= view[2] or view[1] >= view[3]:
            self.js("cw.setOverlay(null)")
            return
        cell = heat.grid_for_view(view)
        grid = heat.case_heat(self.situation, HEAT_WINDOW_MS, cell_m=cell,
                              bbox=view if cell != heat.CITY_CELL_M else None)
        (s_, w_), (n_, e_) = grid.bounds()
        # Spread each case over some HEAT_BLOB_PX of screen, whatever the zoom: heat read at a
        # glance, not specks.
        shown = heat.density(grid, sigma_cells=self._heat_sigma(south, west, north, east, cell))
        peak = float(shown.values.max()) if shown.values.size else 0.0
        png = heat.overlay_png(shown, (0.0, peak if peak > 0 else 1.0))
        url = "data:image/png;base64," + base64.b64encode(png).decode()
        self.js(f"cw.setOverlay({json.dumps(url)}, {s_}, {w_}, {n_}, {e_})")
        # The figure is the city's (the view may show a part of it).
        total = grid.total if cell == heat.CITY_CELL_M else \
            heat.case_heat(self.situation, HEAT_WINDOW_MS).total
        self._heat_text = tr("map.heat_on", self.lang, n=int(total), cell=cell)
        self._summary(self.situation.now_ms())

    def zoom_to_case(self, case_id: str) -> None:
        """Frame the case with its neighbourhood: centred on it, wide enough for its nearest
        available units (``UNITS_IN_FRAME``) and at least ``MIN_FRAME_M`` across."""
        self.js(f"cw.frameCase({json.dumps(case_id)})")
        self.show_details("cases", case_id)

    def follow_case(self, case_id: str | None) -> None:
        if case_id is None:
            self.js("cw.follow(null)")
            return
        self.js(f"cw.frameCase({json.dumps(case_id)}); cw.follow('cases', {json.dumps(case_id)})")
        self.show_details("cases", case_id)

    def notice(self, text: str) -> None:
        self.details.setText(text)
        self.details.setStyleSheet(f"color: {theme.WARN};")

    def show_details(self, kind: str, ident: str) -> None:
        st, lang, now = self.situation, self.lang, self.situation.now_ms()
        if kind == "cases" and ident in st.cases:
            c = st.cases[ident]
            text = (f"{c.case_id} · {category_name(c.category, lang)} · "
                    f"{district_name(c.district, lang)} · {stage_name(c.status, lang)} · "
                    f"{time_left(c.due_at, now, lang)}\n{c.title} — {c.description}")
        elif kind == "units" and ident in st.units:
            u = st.units[ident]
            text = (f"{u.callsign} · {unit_kind_name(u.kind, lang)} · "
                    f"{unit_status_name(u.status, lang)} · {u.case_id or '—'} · "
                    f"{ago(now - u.ts, lang)}")
        elif kind == "sensors" and ident in st.sensors:
            r = st.sensors[ident]
            values = "  ".join(f"{k} {number(v)}" for k, v in r.metrics.items())
            text = (f"{r.id} · {sensor_kind_name(r.kind, lang)} · "
                    f"{district_name(r.district, lang)} · {values}")
        else:
            return
        self.details.setText(text)
        self.details.setStyleSheet(f"color: {theme.TEXT};")

"""The live city map: a Leaflet page made with folium, shown in QtWebEngine, fully offline.

The page is built once. Afterwards the panel sends it only what changed, batched, at most a
few times a second (``cw.update``), and the situation's clock once a second (``cw.setNow``), so
staleness and overdue run on the one clock. Clicking a marker reports back through the page's
console; details show in a Qt label as plain text.

Basemap: a local tile source when configured (an XYZ URL template on the local network, or an
``.mbtiles`` file the app serves itself); without one, the districts, their names and a light
grid, so the map is never blank.
"""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import folium
import msgspec
from branca.element import Element
from PySide6.QtCore import QEvent, QUrl, Qt, Signal
from PySide6.QtWebEngineCore import QWebEnginePage, QWebEngineSettings
from PySide6.QtWebEngineWidgets import QWebEngineView
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QToolTip

from feeds.districts import DATA_FILE, city_bbox, load_districts
from situation.catalog import (category_name, district_name, sensor_kind_name, stage_name,
                               unit_kind_name, unit_status_name)
from situation import heat
from situation.mapkit import base_url, offline_map
from situation.store import Change
from situation.thresholds import reading_level
from widgets import theme
from widgets.i18n import tr
from widgets import tiles as tile_sources
from widgets.case_queue import UNIT_MIME
from widgets.format import ago, number, time_left
from widgets.panel import Panel

PAGE_JS = Path(__file__).with_name("city_map.js")
_encode = msgspec.json.Encoder().encode
GRID_DEG = 0.05                     # the light grid of the district basemap (~5 km)
HEAT_WINDOW_MS = 6 * 3_600_000
HEAT_EVERY_REFRESHES = 12           # refreshes come 1-4 times a second
KINDS = ("units", "cases", "sensors")

STRINGS = {
    "layer.units": ("单元", "Units"), "layer.cases": ("案件", "Cases"),
    "layer.sensors": ("感知", "Sensors"), "layer.districts": ("区界", "Districts"),
    "layer.heat": ("热力 · 近6小时案件", "Heat · cases, last 6 h"),
    "heat_on": ("热力：近6小时 {n} 起 · {cell} m 网格", "heat: {n} cases in 6 h · {cell} m grid"),
    "outside": ("位置异常 {n}", "{n} outside the city"),
    "following": ("跟随 {id}", "following {id}"),
    "markers": ("单元 {units} · 案件 {cases} · 感知 {sensors}",
                "{units} units · {cases} cases · {sensors} sensors"),
}


def s(key: str, lang: str, **kw) -> str:
    zh, en = STRINGS[key]
    return (zh if lang == "zh" else en).format(**kw)


def build_page(lang: str = "zh", tiles_url: str | None = None) -> str:
    """The map page: districts basemap (or local tiles under it), live-layer script."""
    # No zoom or fade animations: no GPU here, and a wall jumps to where it is told at once.
    m = offline_map(inline=False, zoom_animation=False, fade_animation=False,
                    marker_zoom_animation=False, max_zoom=19, min_zoom=6, zoom_snap=0.25)
    x0, y0, x1, y1 = city_bbox()
    m.fit_bounds([[y0, x0], [y1, x1]])
    if tiles_url:
        folium.TileLayer(tiles=tiles_url, attr="local tiles", name="tiles", max_zoom=19,
                         max_native_zoom=18).add_to(m)
    fill = "#12213b" if not tiles_url else "transparent"
    districts = folium.GeoJson(
        json.loads(DATA_FILE.read_text(encoding="utf-8")), name="districts",
        style_function=lambda _f: {"color": "#3f6aa6", "weight": 1.5, "fillColor": fill,
                                   "fillOpacity": 0.55 if not tiles_url else 0.0},
        interactive=False)
    districts.add_to(m)
    if not tiles_url:
        lat = y0 - y0 % GRID_DEG
        while lat <= y1:
            folium.PolyLine([[lat, x0], [lat, x1]], color="#1b2d4d", weight=0.6,
                            interactive=False).add_to(m)
            lat += GRID_DEG
        lon = x0 - x0 % GRID_DEG
        while lon <= x1:
            folium.PolyLine([[y0, lon], [y1, lon]], color="#1b2d4d", weight=0.6,
                            interactive=False).add_to(m)
            lon += GRID_DEG
    for d in load_districts():
        lon, lat = d.centroid
        name = html.escape(d.short_zh if lang == "zh" else d.name_en)
        folium.Marker([lat, lon], interactive=False, icon=folium.DivIcon(
            html=f'<div class="cw-district">{name}</div>', icon_size=(120, 24),
            icon_anchor=(60, 12))).add_to(m)
    css = f"""<style>
      html, body, .folium-map {{ background: {theme.BG} !important; }}
      .leaflet-container {{ background: {theme.BG} !important;
                            font-family: "{theme.family()}", sans-serif !important; }}
      .cw-district {{ color: #6d8bbf; font-size: 18px; font-weight: bold; text-align: center;
                      text-shadow: 0 0 4px #000; white-space: nowrap; pointer-events: none; }}
      .leaflet-tooltip.cw-label {{ background: rgba(7,13,26,0.85); color: #e8eef8;
                   border: 1px solid #1d3154; font-size: 14px; box-shadow: none;
                   padding: 1px 5px; }}
      .leaflet-tooltip.cw-label::before {{ display: none; }}
      .leaflet-bar a, .leaflet-bar a:hover {{ background: #0d1729 !important;
                      color: #e8eef8 !important; border-color: #1d3154 !important; }}
      .cw-legend {{ background: rgba(7,13,26,0.88); color: #e8eef8; padding: 8px 12px;
                    border: 1px solid #1d3154; border-radius: 6px; font-size: 15px;
                    line-height: 22px; }}
      .cw-legend i {{ display: inline-block; width: 12px; height: 12px; border-radius: 6px;
                      margin-right: 6px; vertical-align: -1px; }}
      .cw-legend b {{ color: #38bdf8; font-weight: bold; }}
      .leaflet-control-attribution {{ display: none; }}
      .leaflet-control-scale-line {{ background: rgba(7,13,26,0.7); color: #cbd5e1;
                                     border-color: #64748b; }}
    </style>"""
    m.get_root().header.add_child(Element(css), name="cw_css")
    legend = html.escape  # our own words only, escaped all the same
    rows = "".join(f'<div><i style="background:{colour}"></i>{legend(text)}</div>'
                   for colour, text in legend_entries(lang))
    m.get_root().html.add_child(Element(
        f'<div id="cw-legend" class="cw-legend" style="position:absolute; right:12px;'
        f' bottom:24px; z-index:1000;">{rows}</div>'), name="cw_legend")
    script = (f"window.__CW_MAP__ = {m.get_name()};\n"
              f"window.__CW_CITY__ = {json.dumps([[y0, x0], [y1, x1]])};\n"
              f"window.__CW_DISTRICTS__ = {districts.get_name()};\n"
              + PAGE_JS.read_text(encoding="utf-8")
              + "\ncw.layers.districts = window.__CW_DISTRICTS__;\n")
    page = m.get_root().render()
    # After folium's own scripts, so the map exists when ours runs.
    return page.replace("</html>", f"<script>\n{script}\n</script>\n</html>")


def legend_entries(lang: str) -> list[tuple[str, str]]:
    zh = lang == "zh"
    return [
        ("#ef4444", "超期案件（闪烁）" if zh else "Overdue case (pulsing)"),
        ("#f97316", "案件 · 紧急" if zh else "Case · urgent"),
        ("#facc15", "案件 · 一般" if zh else "Case · normal"),
        ("#a5b4fc", "案件 · 常规" if zh else "Case · routine"),
        ("#22c55e", "单元 · 待命 / 感知正常" if zh else "Unit available / sensor normal"),
        ("#38bdf8", "单元 · 派遣、在途" if zh else "Unit dispatched, en route"),
        ("#f59e0b", "单元 · 处置中 / 感知预警" if zh else "Unit on scene / sensor warning"),
        ("#64748b", "单元 · 失联、下班" if zh else "Unit stale, off duty"),
    ]


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


def unit_js(u) -> dict:
    return {"id": u.unit_id, "lat": u.lat, "lon": u.lon, "status": u.status, "ts": u.ts,
            "callsign": u.callsign}


def case_js(c) -> dict:
    return {"id": c.case_id, "lat": c.lat, "lon": c.lon, "priority": c.priority,
            "due": c.due_at, "status": c.status}


def sensor_js(r) -> dict:
    return {"id": r.id, "lat": r.lat, "lon": r.lon, "level": reading_level(r.kind, r.metrics)}


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
        self.heat_on = False
        self._heat_countdown = 0
        self._heat_text = ""
        self.buttons = {}
        row = QHBoxLayout()
        row.setSpacing(6)
        for key in ("units", "cases", "sensors", "districts", "heat"):
            b = QPushButton(s(f"layer.{key}", lang))
            b.setCheckable(True)
            b.setChecked(key != "heat")
            b.setFont(theme.font(17))
            b.setStyleSheet(f"QPushButton {{ background: {theme.PANEL}; color: {theme.MUTED};"
                            f" border: 1px solid {theme.PANEL_EDGE}; border-radius: 4px;"
                            " padding: 2px 10px; }"
                            f" QPushButton:checked {{ color: {theme.TEXT};"
                            f" border-color: {theme.ACCENT}; }}")
            b.toggled.connect(lambda on, k=key: self.show_layer(k, on))
            self.buttons[key] = b
            row.addWidget(b)
        row.addStretch(1)
        self.body.addLayout(row)
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
        self.page.setHtml(build_page(lang, src.url if src and not src.problem else None),
                          QUrl(base_url()))

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
            self.full_sync()

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
        self.js(f"cw.update({_encode(patch).decode('utf-8')})", self._page_took)

    def _page_took(self, ms) -> None:
        if isinstance(ms, (int, float)):
            self.page_ms.append(float(ms))
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
        x0, y0, x1, y1 = city_bbox()
        outside = sum(1 for c in self.situation.open_cases()
                      if not (x0 - 0.5 <= c.lon <= x1 + 0.5 and y0 - 0.5 <= c.lat <= y1 + 0.5))
        parts = [self._heat_text] if self.heat_on and self._heat_text else []
        if outside:
            parts.append(s("outside", self.lang, n=outside))
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

    def _heat_for_view(self, bounds) -> None:
        if not self.heat_on or not isinstance(bounds, str):
            return
        south, west, north, east = json.loads(bounds)
        x0, y0, x1, y1 = city_bbox()
        view = (max(west, x0), max(south, y0), min(east, x1), min(north, y1))
        if view[0] >= view[2] or view[1] >= view[3]:
            self.js("cw.setOverlay(null)")
            return
        cell = heat.grid_for_view(view)
        grid = heat.case_heat(self.situation, HEAT_WINDOW_MS, cell_m=cell,
                              bbox=view if cell != heat.CITY_CELL_M else None)
        (s_, w_), (n_, e_) = grid.bounds()
        shown = heat.density(grid)
        peak = float(shown.values.max()) if shown.values.size else 0.0
        png = heat.overlay_png(shown, (0.0, peak if peak > 0 else 1.0))
        url = "data:image/png;base64," + base64.b64encode(png).decode()
        self.js(f"cw.setOverlay({json.dumps(url)}, {s_}, {w_}, {n_}, {e_})")
        self._heat_text = s("heat_on", self.lang, n=int(grid.total), cell=cell)
        self._summary(self.situation.now_ms())

    def zoom_to_case(self, case_id: str) -> None:
        self.js(f"cw.zoomTo('cases', {json.dumps(case_id)}, 16)")
        self.show_details("cases", case_id)

    def follow_case(self, case_id: str | None) -> None:
        if case_id is None:
            self.js("cw.follow(null)")
            return
        self.js(f"cw.follow('cases', {json.dumps(case_id)})")
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

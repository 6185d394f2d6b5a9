"""The city map's page: the Leaflet page folium builds for ``widgets.city_map.CityMap`` (the
basemap, district names, legend, CSS, and the colours, sizes and words its script
``city_map.js`` draws with), and the records its live layers read (``unit_js`` and kin).

Basemap: a local tile source when configured (an XYZ URL template on the local network, or an
``.mbtiles`` file the app serves itself); without one, the districts, their names and a light
grid, so the map is never blank. No widget here: the panel shows what this makes.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import folium
from branca.element import Element

from feeds.crs import GCJ02
from feeds.districts import city_bbox, districts_geojson, load_districts
from situation import heat
from situation.mapkit import offline_map
from situation.store import UNIT_STALE_MS
from situation.thresholds import reading_level
from widgets import theme
from widgets.i18n import tr
from widgets import case_queue
from widgets.case_queue import DUE_SOON_MS

PAGE_JS = Path(__file__).with_name("city_map.js")
GRID_DEG = 0.05                     # the light grid of the district basemap (~5 km)

# Words the page shows: "map.page.<key>" in widgets/i18n.py, handed over unformatted (the
# page fills in {n}; our own words, escaped all the same: the page puts them in textContent).
PAGE_WORDS = ("offview", "offview_late", "overdue", "escalated", "overview", "work",
              "no_basemap")

# Marker sizes at 1080p (CSS px, multiplied by the screen's type scale): read from 4 m on a
# 55-inch screen. The rule: a case is at least 11 px in radius (22 px across), an overdue case
# 15 px (pulsing to 18, with a ring and a label); a unit 9 px; a sensor 6 px (alarm 10 px).
MARKER_PX = {"case": 11, "case_urgent": 13, "case_late": 15, "case_pulse": 18, "ring": 5,
             "unit": 9, "sensor": 6, "sensor_warn": 8, "sensor_alarm": 10}
LABEL_PX = 20               # district names, unit callsigns, overdue labels
LEGEND_PX = 18
WORK_QUANTILES = (0.15, 0.85)   # the default view: the middle 70 % of cases and units, each way
MIN_FRAME_M = 1_500         # picking a case: at least this span around it
UNITS_IN_FRAME = 3          # … and its nearest available units


def _k(px: float) -> str:
    """A CSS length of ``px`` at 1080p, scaled by the screen's type scale (``cw.setScale``
    sets ``--cw-k``)."""
    return f"calc({px}px * var(--cw-k, 1))"


def with_alpha(colour: str, alpha: float) -> str:
    """A palette colour ("#rrggbb") with ``alpha`` (0–1), as CSS "#rrggbbaa"."""
    return f"{colour[:7]}{max(0, min(255, round(alpha * 255))):02x}"


def page_colours() -> dict[str, object]:
    """The colours the page draws with, all from the palette in use (``widgets.theme``):
    the markers' meanings, the chrome and the heat ramp."""
    return {
        "alarm": theme.ALARM, "warn": theme.WARN, "urgent": theme.URGENT, "case": theme.CASE,
        "ready": theme.READY, "busy": theme.BUSY, "on_scene": theme.ON_SCENE,
        "idle": theme.IDLE, "sensor": theme.SENSOR,
        "bg": theme.BG, "panel": theme.PANEL, "edge": theme.PANEL_EDGE, "text": theme.TEXT,
        "muted": theme.MUTED, "accent": theme.ACCENT, "land": theme.MAP_LAND,
        "map_edge": theme.MAP_EDGE, "grid": theme.MAP_GRID, "label": theme.MAP_LABEL,
        "marker_edge": theme.MARKER_EDGE,
        "heat": [[pos, colour, alpha] for pos, colour, alpha in heat.HEAT_STOPS],
    }


def _shape_svg(shape: str, fill: str, stroke: str, hollow: bool = False) -> str:
    """A legend swatch: the marker's shape in its colour (inline SVG, 22 px)."""
    fill_ = theme.BG if hollow else fill
    edge = fill if hollow else stroke
    body = {"diamond": '<path d="M11 1 L21 11 L11 21 L1 11 Z"/>',
            "circle": '<circle cx="11" cy="11" r="8"/>',
            "triangle": '<path d="M11 3 L20 19 L2 19 Z"/>'}[shape]
    return (f'<svg width="22" height="22" viewBox="0 0 22 22" fill="{fill_}" stroke="{edge}"'
            f' stroke-width="{3 if hollow else 1.5}">{body}</svg>')


def legend_entries(lang: str) -> list[tuple[str, list[tuple[str, str, str, bool]]]]:
    """Every marker the map can show, by kind: (group, [(shape, colour, words, hollow)])."""
    return [
        (tr("map.legend.cases", lang), [
            ("diamond", theme.CASE, tr("map.legend.open", lang), False),
            ("diamond", theme.URGENT, tr("map.legend.urgent", lang), False),
            ("diamond", theme.WARN, tr("map.legend.due_soon", lang), False),
            ("diamond", theme.ALARM, tr("map.legend.overdue", lang), False)]),
        (tr("map.legend.units", lang), [
            ("circle", theme.READY, tr("map.legend.available", lang), False),
            ("circle", theme.BUSY, tr("map.legend.busy", lang), False),
            ("circle", theme.ON_SCENE, tr("map.legend.on_scene", lang), False),
            ("circle", theme.ALARM, tr("map.legend.lost", lang), True),
            ("circle", theme.IDLE, tr("map.legend.off", lang), False)]),
        (tr("map.legend.sensors", lang), [
            ("triangle", theme.SENSOR, tr("map.legend.normal", lang), False),
            ("triangle", theme.WARN, tr("map.legend.warning", lang), False),
            ("triangle", theme.ALARM, tr("map.legend.alarm", lang), False)]),
    ]


def legend_html(lang: str) -> str:
    esc = html.escape
    rows = []
    for group, items in legend_entries(lang):
        cells = "".join(f'<span class="cw-key">{_shape_svg(shape, colour, theme.MARKER_EDGE, hollow)}'
                        f'{esc(words)}</span>' for shape, colour, words, hollow in items)
        rows.append(f'<div class="cw-legend-row"><b>{esc(group)}</b>{cells}</div>')
    return "".join(rows)


def build_page(lang: str = "zh", tiles_url: str | None = None, crs: str = GCJ02) -> str:
    """The map page: districts basemap (or local tiles under it), live-layer script. Every
    colour comes from the palette in use (``page_colours``), passed to the script as JSON.
    ``crs`` is the display frame (the situation's, ``feeds.districts.frame_of``): districts,
    names and the city's bounds are drawn in it, as the live layers' points are held in it;
    local tiles must be in it too (OSM and government tiles: WGS-84)."""
    # No zoom or fade animations: no GPU here, and a wall jumps to where it is told at once.
    m = offline_map(inline=False, zoom_animation=False, fade_animation=False,
                    marker_zoom_animation=False, max_zoom=19, min_zoom=6, zoom_snap=0.25)
    m.control_scale = False             # the page adds a metric-only scale bar itself
    x0, y0, x1, y1 = city_bbox(crs)
    m.fit_bounds([[y0, x0], [y1, x1]])
    if tiles_url:
        folium.TileLayer(tiles=tiles_url, attr="local tiles", name="tiles", max_zoom=19,
                         max_native_zoom=18).add_to(m)
    fill = theme.MAP_LAND if not tiles_url else "transparent"
    districts = folium.GeoJson(
        districts_geojson(crs), name="districts",
        style_function=lambda _f: {"color": theme.MAP_EDGE, "weight": 2, "fillColor": fill,
                                   "fillOpacity": 0.55 if not tiles_url else 0.0},
        interactive=False)
    districts.add_to(m)
    if not tiles_url:
        lat = y0 - y0 % GRID_DEG
        while lat <= y1:
            folium.PolyLine([[lat, x0], [lat, x1]], color=theme.MAP_GRID, weight=0.6,
                            interactive=False).add_to(m)
            lat += GRID_DEG
        lon = x0 - x0 % GRID_DEG
        while lon <= x1:
            folium.PolyLine([[y0, lon], [y1, lon]], color=theme.MAP_GRID, weight=0.6,
                            interactive=False).add_to(m)
            lon += GRID_DEG
    # District names: the largest districts first (the page hides a name that would overlap
    # one placed before it, at every zoom).
    for rank, d in enumerate(sorted(load_districts(crs=crs), key=lambda d: -(d.bbox[2] - d.bbox[0])
                                    * (d.bbox[3] - d.bbox[1]))):
        lon, lat = d.centroid
        name = html.escape(d.short_zh if lang == "zh" else d.name_en)
        folium.Marker([lat, lon], interactive=False, icon=folium.DivIcon(
            html=f'<div class="cw-district" data-rank="{rank}"><span>{name}</span></div>',
            icon_size=(200, 32), icon_anchor=(100, 16))).add_to(m)
    c = page_colours()
    shadow = f"0 0 4px {theme.BG}, 0 0 2px {theme.BG}"
    css = f"""<style>
      html, body, .folium-map {{ background: {theme.BG} !important;
                            font-family: "{theme.family()}", sans-serif; }}
      .leaflet-container {{ background: {theme.BG} !important;
                            font-family: "{theme.family()}", sans-serif !important; }}
      .cw-district {{ text-align: center; pointer-events: none; }}
      .cw-district span {{ color: {theme.MAP_LABEL}; font-size: {_k(LABEL_PX)};
                      font-weight: bold; text-shadow: {shadow}; white-space: nowrap; }}
      .cw-district.cw-hidden, .cw-alert.cw-hidden, .cw-label.cw-hidden {{
                      visibility: hidden; }}
      .leaflet-tooltip.cw-label {{ background: {with_alpha(theme.BG, 0.85)}; color: {theme.TEXT};
                   border: 1px solid {theme.PANEL_EDGE}; font-size: {_k(LABEL_PX - 2)};
                   box-shadow: none; padding: 1px 6px; }}
      .leaflet-tooltip.cw-alert {{ background: {with_alpha(theme.BG, 0.9)}; color: {theme.ALARM};
                   border: 2px solid {theme.ALARM}; font-size: {_k(LABEL_PX - 2)};
                   font-weight: bold; box-shadow: none; padding: 0 6px; }}
      .leaflet-tooltip.cw-label::before, .leaflet-tooltip.cw-alert::before {{ display: none; }}
      .leaflet-bar a, .leaflet-bar a:hover {{ background: {theme.PANEL} !important;
                      color: {theme.TEXT} !important; border-color: {theme.PANEL_EDGE} !important;
                      width: {_k(40)} !important; height: {_k(40)} !important;
                      line-height: {_k(40)} !important; font-size: {_k(26)} !important; }}
      .cw-legend {{ background: {with_alpha(theme.BG, 0.88)}; color: {theme.TEXT}; padding: 8px 12px;
                    border: 1px solid {theme.PANEL_EDGE}; border-radius: 6px;
                    font-size: {_k(LEGEND_PX)}; line-height: 1.55; }}
      .cw-legend-row {{ white-space: normal; }}
      #cw-legend {{ max-width: calc(100% - 24px); box-sizing: border-box; }}
      .cw-key {{ white-space: nowrap; display: inline-block; }}
      .cw-legend b {{ color: {theme.ACCENT}; font-weight: bold; margin-right: 8px; }}
      .cw-key {{ margin-right: 12px; }}
      .cw-key svg {{ vertical-align: -5px; margin-right: 4px; width: {_k(22)};
                     height: {_k(22)}; }}
      .leaflet-control-attribution {{ display: none; }}
      .leaflet-control-scale-line {{ background: {with_alpha(theme.BG, 0.75)}; color: {theme.TEXT};
                                     border-color: {theme.MUTED}; font-size: {_k(18)};
                                     line-height: 1.35; }}
      .cw-note {{ color: {theme.MUTED}; font-size: {_k(16)}; line-height: 1.3;
                  margin-top: 4px; white-space: normal; max-width: {_k(560)}; }}
      .cw-offview {{ background: {with_alpha(theme.BG, 0.9)}; color: {theme.TEXT};
                     border: 2px solid {theme.ACCENT}; border-radius: 6px; font-size: {_k(20)};
                     font-weight: bold; padding: 4px 12px; cursor: pointer; }}
      .cw-offview.cw-late {{ border-color: {theme.ALARM}; color: {theme.ALARM}; }}
      .cw-overview {{ border: 1px solid {theme.PANEL_EDGE}; border-radius: 4px;
                      background: {theme.BG}; }}
      .cw-home {{ font-size: {_k(18)} !important; width: auto !important; padding: 0 8px;
                  white-space: nowrap; }}
    </style>"""
    m.get_root().header.add_child(Element(css), name="cw_css")
    m.get_root().html.add_child(Element(
        f'<div id="cw-legend" class="cw-legend" style="position:absolute; right:12px;'
        f' bottom:24px; z-index:1000;">{legend_html(lang)}</div>'), name="cw_legend")
    words = {k: tr(f"map.page.{k}", lang) for k in PAGE_WORDS}
    config = {"colours": c, "sizes": MARKER_PX, "words": words, "tiles": bool(tiles_url),
              "dueSoonMs": DUE_SOON_MS, "workQuantiles": WORK_QUANTILES, "staleMs": UNIT_STALE_MS, "minFrameM": MIN_FRAME_M,
              "unitsInFrame": UNITS_IN_FRAME}
    script = (f"window.__CW_MAP__ = {m.get_name()};\n"
              f"window.__CW_CITY__ = {json.dumps([[y0, x0], [y1, x1]])};\n"
              f"window.__CW_DISTRICTS__ = {districts.get_name()};\n"
              f"window.__CW_CONFIG__ = {json.dumps(config, ensure_ascii=False)};\n"
              + PAGE_JS.read_text(encoding="utf-8")
              + "\ncw.layers.districts = window.__CW_DISTRICTS__;\n")
    page = m.get_root().render()
    # After folium's own scripts, so the map exists when ours runs.
    return page.replace("</html>", f"<script>\n{script}\n</script>\n</html>")


def unit_js(u) -> dict:
    return {"id": u.unit_id, "lat": u.lat, "lon": u.lon, "status": u.status, "ts": u.ts,
            "callsign": u.callsign}


# A case's id as the queue shows it (the tail that tells today's cases apart), for the labels.
_short_id = getattr(case_queue, "short_id", lambda case_id: case_id)


def case_js(c) -> dict:
    return {"id": c.case_id, "lat": c.lat, "lon": c.lon, "priority": c.priority,
            "due": c.due_at, "status": c.status, "esc": "escalated" in (c.flags or ()),
            "short": _short_id(c.case_id)}


def sensor_js(r) -> dict:
    return {"id": r.id, "lat": r.lat, "lon": r.lon, "level": reading_level(r.kind, r.metrics)}

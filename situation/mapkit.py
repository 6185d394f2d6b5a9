"""Offline Leaflet maps with folium: the wall's map page and the exported public map load
nothing from the network.

folium's defaults point at CDNs (Leaflet, jQuery, Bootstrap, Font Awesome); every map made
here replaces them with the Leaflet 1.9.4 the ``django-js-lib-leaflet`` package installs.
A live page references the files beside it (``base_url()``); an exported page carries them
inline, images included, so it works opened from disk with no network.

Frames: a map draws in the frame its caller gives it (the live page: the wall's display frame;
an export: WGS-84, ``feeds.crs_arrays.EXPORT_CRS``); ``CITY_CENTRE`` is only where a map
starts before it is fitted to the city, the same in either. No Qt here.
"""
from __future__ import annotations

import base64
import re
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import folium
from branca.element import Element

CITY_CENTRE = (39.93, 116.40)       # lat, lon: Tiananmen, roughly


def leaflet_dir() -> Path:
    return Path(str(files("js_lib_leaflet"))) / "static" / "js_lib_leaflet"


@lru_cache(maxsize=1)
def _inline_css() -> str:
    """leaflet.css with its images as data URIs (an exported page has no folder beside it)."""
    css = (leaflet_dir() / "leaflet.css").read_text(encoding="utf-8")

    def data_uri(match: re.Match) -> str:
        path = leaflet_dir() / match.group(1)
        if not path.is_file():
            return "url()"
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        return f"url(data:image/png;base64,{encoded})"

    return re.sub(r"url\((images/[^)]+\.png)\)", data_uri, css)


@lru_cache(maxsize=1)
def _inline_js() -> str:
    # A "</script" inside the library would end the inline element early.
    return (leaflet_dir() / "leaflet.js").read_text(encoding="utf-8").replace("</script",
                                                                               "<\\/script")


def offline_map(inline: bool, location=CITY_CENTRE, zoom_start: int = 10, **kwargs) -> folium.Map:
    """A folium map with no tiles and no CDN: Leaflet from the installed package, either
    referenced beside the page (``inline=False``; load the page with ``base_url()``) or
    carried inside it (``inline=True``)."""
    m = folium.Map(location=location, zoom_start=zoom_start, tiles=None,
                   prefer_canvas=True, control_scale=True, **kwargs)
    if inline:
        m.default_js = []
        m.default_css = []
        head = m.get_root().header
        head.add_child(Element(f"<style>{_inline_css()}</style>"), name="leaflet_css_inline")
        head.add_child(Element(f"<script>{_inline_js()}</script>"), name="leaflet_js_inline")
    else:
        m.default_js = [("leaflet", "leaflet.js")]
        m.default_css = [("leaflet_css", "leaflet.css")]
    return m


def base_url() -> str:
    """Where a live page's relative ``leaflet.js`` and ``leaflet.css`` resolve."""
    return leaflet_dir().as_uri() + "/"


# Things a page loads (not links a person may click): scripts, stylesheets, images, frames,
# CSS urls and imports.
_REMOTE = re.compile(r"""<(?:script|img|iframe|source|embed)\b[^>]*\bsrc\s*=\s*["']?\s*(?:https?:)?//"""
                     r"""|<link\b[^>]*\bhref\s*=\s*["']?\s*(?:https?:)?//"""
                     r"""|url\(\s*["']?\s*(?:https?:)?//|@import\s+["']?\s*(?:https?:)?//""", re.I)


def remote_references(html: str) -> list[str]:
    """Everything the page would load from off the machine (tests, exports)."""
    return [html[max(0, m.start() - 40):m.end() + 60] for m in _REMOTE.finditer(html)]

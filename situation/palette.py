"""The wall's one colour language: every colour CityWall draws is defined here, nowhere else.

Plain data (no Qt): ``widgets.theme`` turns it into fonts, style sheets and the names the panels
read (``theme.ALARM``); the map page (``as_json``), the printed debrief and handover (``PAPER``)
and the public map (``PUBLIC``, ``district_colours``) read it too. ``tests/test_palette.py``
checks that no other module spells a colour, that different meanings never share one, and that
the markers the map can show stay apart for people with protanopia, deuteranopia or tritanopia.

Meanings (``SIGNALS``) are the same by day and by night; only the chrome (backgrounds, text)
dims. The signal hues start from Okabe & Ito's colour-blind-safe set (2008), lightened to read on
the wall's dark ground, then tuned until the check below passed.

    meaning     colour                     where
    alarm       #df5946 vermillion red     overdue case, sensor alarm, feed down, fault, unit lost
                                           (stale), order unconfirmed or refused
    warn        #fef050 yellow             due within 15 minutes, sensor warning, feed late
    urgent      #db84d7 orchid (red-purple) a priority-1 (紧急) case not yet overdue
    case        #f3f9fd near-white         an open case of ordinary priority (its shape: "case")
    ready       #22bf91 bluish green       unit available (待命), feed up, order accepted
    busy        #2979ff blue               unit dispatched / en route / returning; an order
                                           sent and not yet answered (on its way)
    on_scene    #f5aa08 orange             unit on scene (处置中)
    idle        #737a8a slate grey         unit off duty or out of service
    sensor      #a8b2bc blue-grey          a sensor reading normal (normal needs no signal colour)

Stages of a case (``STAGES``) are a sequence: cyan (just reported) → deep teal (closed), equal
steps of lightness in a hue no signal uses, so "how far along" reads as lighter → deeper, also
without colour vision; "rejected" is olive, out of the sequence.

How the signals were checked (``CVD_FIGURES``; ``tests/test_palette.py`` recomputes them): each
colour as a dichromat sees it — Machado, Oliveira & Fernandes (2009) at severity 1.0, in linear
sRGB — and the difference of two colours as CIEDE2000 (Sharma, Wu & Dalal 2005). Markers of one
kind share a shape, so the states of one kind must stay clearly apart: case {case, urgent, warn,
alarm}, unit {ready, busy, on_scene, idle, alarm}, sensor {sensor, warn, alarm}, ΔE00 ≥ 15 for
every viewer; any two signals ≥ 10 (≥ 15 in normal vision); every signal ≥ 3:1 (WCAG non-text
contrast) on the map's land and on a panel, in both palettes, for every viewer. The smallest
differences found:

    viewer          one kind (ΔE00)           any two signals (ΔE00)    on the ground (ratio)
    normal          19.2  busy–idle           17.1  case–sensor         3.74  idle, day land
    protanopia      17.9  ready–on_scene      11.0  busy–urgent         3.25  alarm, day land
    deuteranopia    17.0  alarm–on_scene      11.0  warn–on_scene       3.78  idle, day land
    tritanopia      17.1  case–warn           11.9  urgent–on_scene     3.70  idle, day land
"""
from __future__ import annotations

import colorsys
import json
import math

# ---- meanings: the same by day and night ----------------------------------------------------
SIGNALS: dict[str, str] = {
    "alarm": "#df5946",
    "warn": "#fef050",
    "urgent": "#db84d7",
    "case": "#f3f9fd",
    "ready": "#22bf91",
    "busy": "#2979ff",
    "on_scene": "#f5aa08",
    "idle": "#737a8a",
    "sensor": "#a8b2bc",
}
# The smallest CIEDE2000 among the states of one kind and among any two signals, per viewer
# (the docstring's table; tests/test_palette.py recomputes them and says when they drift).
CVD_FIGURES: dict[str, tuple[float, float]] = {
    "normal": (19.22, 17.07), "protanopia": (17.90, 11.04),
    "deuteranopia": (17.02, 11.04), "tritanopia": (17.09, 11.91),
}

# Case stages, early → late: one hue family of their own (cyan → teal, a hue no signal uses),
# light → deep (CIELAB lightness 92 → 47, spaced so that each step is ≥ 5 CIEDE2000 for every
# viewer); "rejected" leaves the sequence and has a colour apart (olive).
STAGES: dict[str, str] = {
    "reported": "#a0f6fe",
    "registered": "#84dae1",
    "dispatched": "#6dc4ca",
    "on_scene": "#59b0b5",
    "resolved": "#449ea2",
    "verified": "#308c90",
    "closed": "#187c7e",
    "rejected": "#827946",
}

# ---- chrome: backgrounds and text, dimmed at night ----------------------------------------
CHROME: dict[str, dict[str, str]] = {
    "day": {
        "BG": "#070d1a", "PANEL": "#0d1729", "PANEL_EDGE": "#1d3154", "HEADER": "#0a1326",
        "TEXT": "#e8eef8", "MUTED": "#8393ad", "DIM": "#4d5b73", "ACCENT": "#38bdf8",
        "ALARM_BG": "#4a1218", "WARN_BG": "#3d360a", "GRID": "#16243d",
        "ALT_ROW": "#101c31", "SELECTION": "#1e3a64", "TRAINING": "#a78bfa",
        "ON_ALARM": "#e8eef8", "BUTTON": "#13233f", "CITY_ROW": "#14243f",
        "MAP_LAND": "#12213b", "MAP_EDGE": "#3f6aa6", "MAP_GRID": "#1b2d4d",
        "MAP_LABEL": "#8fa9d6", "MARKER_EDGE": "#0b1220", "TILE": "#12203a",
    },
    "night": {
        "BG": "#03060d", "PANEL": "#070c17", "PANEL_EDGE": "#13213a", "HEADER": "#050912",
        "TEXT": "#a9b3c2", "MUTED": "#5f6b80", "DIM": "#363f50", "ACCENT": "#2a8cba",
        "ALARM_BG": "#360d12", "WARN_BG": "#2a2607", "GRID": "#0e182a",
        "ALT_ROW": "#0a111f", "SELECTION": "#152a49", "TRAINING": "#8b74d0",
        "ON_ALARM": "#e8eef8", "BUTTON": "#0c1628", "CITY_ROW": "#0c1628",
        "MAP_LAND": "#0a1426", "MAP_EDGE": "#2b4a75", "MAP_GRID": "#101d33",
        "MAP_LABEL": "#6a7fa3", "MARKER_EDGE": "#03060d", "TILE": "#0b1528",
    },
}

# ---- ramps (position 0–1, colour) ----------------------------------------------------------
# Case heat: dark → amber → red (alpha per stop), shared by the heat panel and the map overlay.
HEAT_RAMP: tuple[tuple[float, str, int], ...] = (
    (0.0, "#6b2a0a", 215), (0.3, "#c2560c", 235), (0.55, "#f59e0b", 245),
    (0.8, "#ef4444", 250), (1.0, "#ff2e63", 255))
# Today − usual: below blue, average the panel's dark, above amber then red.
DIVERGING_RAMP: tuple[tuple[float, str], ...] = (
    (0.0, "#60a5fa"), (0.3, "#1e40af"), (0.5, "#18243a"), (0.65, "#7c2d12"),
    (0.82, "#f59e0b"), (1.0, "#ef4444"))
# Patrol coverage: unvisited faint slate, visited teal → cyan → white by share covered.
COVERAGE_RAMP: tuple[tuple[float, str], ...] = (
    (0.0, "#17233a"), (0.001, "#0c4a6e"), (0.2, "#0e7490"), (0.5, "#06b6d4"), (1.0, "#7df0ff"))

# Bars and areas of charts (counts, not signals): one neutral data colour and its highlight.
DATA = "#2f7fc1"
DATA_EDGE = "#7db4e6"

# ---- paper: printed and exported pages (white ground) ----------------------------------------
PAPER: dict[str, str] = {
    "TEXT": "#111111", "MUTED": "#555555", "ACCENT": "#0b5cad", "BG": "#ffffff",
    "RULE": "#999999", "HEAD_BG": "#eeeeee", "SOFT": "#333333", "FOOT": "#444444",
    "PANEL": "#eef2f7",
}

# ---- the public city map (我爱北京): a light web page for citizens ------------------------
# Its own light greys, the city's red for the title and the bars, white cards and outlines;
# the districts' colours come from ``district_colours``.
PUBLIC: dict[str, str] = {
    "TEXT": "#1f2937", "HEAD": "#111827", "LABEL": "#374151", "SUB": "#4b5563",
    "MUTED": "#6b7280", "FAINT": "#9ca3af", "RULE": "#e5e7eb", "GROUND": "#e8eef3",
    "CARD": "#ffffff", "SHADOW": "#0f172a", "BRAND": "#c8102e",
    "NO_DISTRICT": "#7d8590", "NO_DISTRICT_FILL": "#dddddd",
}
CARD_ALPHA = 0.96          # the cards over the map
SHADOW_ALPHA = 0.18        # their shadow


def district_colours(n: int) -> list[tuple[str, str]]:
    """(soft fill, deep marker colour) of one hue for each of ``n`` districts (in adcode
    order): hues step by the golden angle, so neighbours in the order differ."""
    out = []
    for i in range(n):
        hue = (i * 0.381966 + 0.02) % 1.0
        soft = colorsys.hls_to_rgb(hue, 0.85, 0.55)
        deep = colorsys.hls_to_rgb(hue, 0.36, 0.70)
        out.append(tuple("#" + "".join(f"{round(v * 255):02x}" for v in col)
                         for col in (soft, deep)))
    return out


def palette(name: str) -> dict[str, str]:
    """The names a wall reads in palette ``name`` ("day" or "night"): its chrome, the signal
    colours by their upper-case names (``ALARM``, ``READY``…) and ``OK`` (= ready)."""
    out = dict(CHROME[name])
    out.update({k.upper(): v for k, v in SIGNALS.items()})
    out["OK"] = SIGNALS["ready"]
    return out


def as_json(name: str) -> str:
    """Every colour a web page of the wall (the map) needs in palette ``name``, as one JSON
    object: ``palette`` (the name), ``signals`` and ``stages`` (meaning → "#rrggbb"),
    ``chrome`` (this palette's), ``names`` (what ``palette(name)`` gives: chrome + ALARM, OK…),
    ``heat`` ([position, colour, alpha], …), ``coverage`` and ``diverging`` ([position,
    colour], …), ``data`` and ``data_edge``. KeyError for a palette that does not exist."""
    return json.dumps({
        "palette": name, "signals": SIGNALS, "stages": STAGES, "chrome": CHROME[name],
        "names": palette(name), "heat": [list(s) for s in HEAT_RAMP],
        "coverage": [list(s) for s in COVERAGE_RAMP],
        "diverging": [list(s) for s in DIVERGING_RAMP],
        "data": DATA, "data_edge": DATA_EDGE}, ensure_ascii=False, sort_keys=True)


# ---- measuring colours (plain arithmetic; tests/test_palette.py and the docstring's figures) --
def rgb(colour: str) -> tuple[int, int, int]:
    """(r, g, b) 0–255 of "#rrggbb" (or "#rgb")."""
    h = colour.lstrip("#")
    if len(h) == 3:
        h = "".join(ch * 2 for ch in h)
    if len(h) != 6:
        raise ValueError(f"not a #rrggbb colour: {colour!r}")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _linear(v: float) -> float:
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def _encode(v: float) -> float:
    v = min(1.0, max(0.0, v))
    return 12.92 * v if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055


def linear_rgb(colour: str) -> tuple[float, float, float]:
    r, g, b = rgb(colour)
    return _linear(r / 255), _linear(g / 255), _linear(b / 255)


def luminance(colour: str) -> float:
    """WCAG 2 relative luminance: 0 black … 1 white."""
    r, g, b = linear_rgb(colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio, 1 … 21."""
    la, lb = sorted((luminance(a), luminance(b)))
    return (lb + 0.05) / (la + 0.05)


# Machado, Oliveira & Fernandes (2009), "A Physiologically-based Model for Simulation of Color
# Vision Deficiency", IEEE TVCG 15(6) 1291–1298, table of matrices at severity 1.0 (dichromacy),
# applied to linear sRGB; the same matrices colorspacious and the browsers' dev tools use.
MACHADO_2009: dict[str, tuple[tuple[float, float, float], ...]] = {
    "protanopia": ((0.152286, 1.052583, -0.204868),
                   (0.114503, 0.786281, 0.099216),
                   (-0.003882, -0.048116, 1.051998)),
    "deuteranopia": ((0.367322, 0.860646, -0.227968),
                     (0.280085, 0.672501, 0.047413),
                     (-0.011820, 0.042940, 0.968881)),
    "tritanopia": ((1.255528, -0.076749, -0.178779),
                   (-0.078411, 0.930809, 0.147602),
                   (0.004733, 0.691367, 0.303900)),
}


def simulate(colour: str, deficiency: str | None) -> str:
    """``colour`` as a dichromat sees it ("protanopia", "deuteranopia", "tritanopia"; None:
    as it is), as "#rrggbb"."""
    if deficiency is None:
        return colour
    m = MACHADO_2009[deficiency]
    lin = linear_rgb(colour)
    out = (sum(m[i][j] * lin[j] for j in range(3)) for i in range(3))
    return "#" + "".join(f"{round(_encode(v) * 255):02x}" for v in out)


def lab(colour: str) -> tuple[float, float, float]:
    """CIELAB (D65, 2°) of an sRGB colour."""
    r, g, b = linear_rgb(colour)
    x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047
    y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b
    z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29
    fx, fy, fz = f(x), f(y), f(z)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def ciede2000(lab1: tuple[float, float, float], lab2: tuple[float, float, float]) -> float:
    """CIEDE2000 colour difference of two CIELAB colours (kL = kC = kH = 1), as given by
    Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula: implementation notes,
    supplementary test data, and mathematical observations", Color Res. Appl. 30(1) 21–30."""
    l1, a1, b1 = lab1
    l2, a2, b2 = lab2
    c_bar = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(c_bar ** 7 / (c_bar ** 7 + 25 ** 7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1p = math.degrees(math.atan2(b1, a1p)) % 360 if c1p else 0.0
    h2p = math.degrees(math.atan2(b2, a2p)) % 360 if c2p else 0.0
    dl, dc = l2 - l1, c2p - c1p
    if c1p * c2p == 0:
        dh = 0.0
    else:
        dh = h2p - h1p
        if dh > 180:
            dh -= 360
        elif dh < -180:
            dh += 360
    dhh = 2 * math.sqrt(c1p * c2p) * math.sin(math.radians(dh) / 2)
    l_bar, cp_bar = (l1 + l2) / 2, (c1p + c2p) / 2
    if c1p * c2p == 0:
        h_bar = h1p + h2p
    elif abs(h1p - h2p) <= 180:
        h_bar = (h1p + h2p) / 2
    elif h1p + h2p < 360:
        h_bar = (h1p + h2p + 360) / 2
    else:
        h_bar = (h1p + h2p - 360) / 2
    t = (1 - 0.17 * math.cos(math.radians(h_bar - 30)) + 0.24 * math.cos(math.radians(2 * h_bar))
         + 0.32 * math.cos(math.radians(3 * h_bar + 6))
         - 0.20 * math.cos(math.radians(4 * h_bar - 63)))
    d_theta = 30 * math.exp(-(((h_bar - 275) / 25) ** 2))
    rc = 2 * math.sqrt(cp_bar ** 7 / (cp_bar ** 7 + 25 ** 7))
    sl = 1 + 0.015 * (l_bar - 50) ** 2 / math.sqrt(20 + (l_bar - 50) ** 2)
    sc = 1 + 0.045 * cp_bar
    sh = 1 + 0.015 * cp_bar * t
    rt = -math.sin(math.radians(2 * d_theta)) * rc
    return math.sqrt((dl / sl) ** 2 + (dc / sc) ** 2 + (dhh / sh) ** 2
                     + rt * (dc / sc) * (dhh / sh))


def delta_e(a: str, b: str, deficiency: str | None = None) -> float:
    """CIEDE2000 difference of two sRGB colours, both as seen with ``deficiency`` (None:
    normal vision)."""
    return ciede2000(lab(simulate(a, deficiency)), lab(simulate(b, deficiency)))

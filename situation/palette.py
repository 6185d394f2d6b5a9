"""The wall's one colour language: every colour CityWall draws is defined here, nowhere else.

Plain data (no Qt): ``widgets.theme`` turns it into fonts, style sheets and the names the panels
read (``theme.ALARM``); the map page, the printed debrief and the public map read it too.
``tests/test_palette.py`` checks that no other module spells a colour, that different meanings
never share one, and that the markers the map can show stay apart for people with protanopia,
deuteranopia or tritanopia (Machado, Oliveira & Fernandes 2009 simulation).

Meanings (``SIGNALS``) are the same by day and by night; only the chrome (backgrounds, text)
dims. The signal hues follow Okabe & Ito's colour-blind-safe set (2008), lightened to read on
the wall's dark ground.

    meaning     colour             where
    alarm       vermillion         overdue case, sensor alarm, feed down, fault, unit lost
                                   (stale), order unconfirmed or refused
    warn        yellow             due within the hour, sensor warning, feed late
    urgent      reddish purple     a priority-1 (紧急) case not yet overdue
    case        near-white         an open case of ordinary priority (its shape says "case")
    ready       bluish green       unit available (待命), feed up, order accepted
    busy        sky blue           unit dispatched / en route / returning
    on_scene    orange             unit on scene (处置中)
    idle        slate grey         unit off duty or out of service
    sensor      steel blue-grey    a sensor reading normal (normal needs no signal colour)

Stages of a case (``STAGES``) are a sequence, light (just reported) to deep (closed), in one
hue family of their own, so "how far along" reads as lighter → deeper.
"""
from __future__ import annotations

# ---- meanings: the same by day and night ----------------------------------------------------
SIGNALS: dict[str, str] = {
    "alarm": "#ff5a3c",
    "warn": "#f0e442",
    "urgent": "#e07bd0",
    "case": "#f1f5f9",
    "ready": "#1fbf8f",
    "busy": "#56b4e9",
    "on_scene": "#e69f00",
    "idle": "#6b7a90",
    "sensor": "#9fb3c8",
}

# Case stages, early → late: one hue family (blue-violet), light → deep.
STAGES: dict[str, str] = {
    "reported": "#e3e6ff",
    "registered": "#c5cbff",
    "dispatched": "#a7b0fb",
    "on_scene": "#8c96f0",
    "resolved": "#737de0",
    "verified": "#5d66c9",
    "closed": "#4a52ad",
    "rejected": "#7b8194",
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
        "MAP_LABEL": "#8fa9d6", "MARKER_EDGE": "#0b1220",
    },
    "night": {
        "BG": "#03060d", "PANEL": "#070c17", "PANEL_EDGE": "#13213a", "HEADER": "#050912",
        "TEXT": "#a9b3c2", "MUTED": "#5f6b80", "DIM": "#363f50", "ACCENT": "#2a8cba",
        "ALARM_BG": "#360d12", "WARN_BG": "#2a2607", "GRID": "#0e182a",
        "ALT_ROW": "#0a111f", "SELECTION": "#152a49", "TRAINING": "#8b74d0",
        "ON_ALARM": "#e8eef8", "BUTTON": "#0c1628", "CITY_ROW": "#0c1628",
        "MAP_LAND": "#0a1426", "MAP_EDGE": "#2b4a75", "MAP_GRID": "#101d33",
        "MAP_LABEL": "#6a7fa3", "MARKER_EDGE": "#03060d",
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
    "PANEL": "#eef2f7", "NO_DISTRICT": "#6b7280",
}


def palette(name: str) -> dict[str, str]:
    """The names a wall reads in palette ``name`` ("day" or "night"): its chrome, the signal
    colours by their upper-case names (``ALARM``, ``READY``…) and ``OK`` (= ready)."""
    out = dict(CHROME[name])
    out.update({k.upper(): v for k, v in SIGNALS.items()})
    out["OK"] = SIGNALS["ready"]
    return out

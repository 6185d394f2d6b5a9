"""The figures the sensor tiles show (widgets/sensor_tiles.py): a kind's key figure (its
caption, value with unit and level), the metric that decides a reading's level, and how far past
its warning threshold a reading is (the worst list's order)."""
from __future__ import annotations

import statistics

from situation.catalog import METRIC_UNITS
from situation.thresholds import ALARM, THRESHOLDS, UNKNOWN, metric_level
from widgets.format import number
from widgets.i18n import STRINGS, tr

# kind → (metric shown, how many sensors make the headline); its caption is "tile.cap.<kind>"
# in widgets/i18n.py, a metric's short name in the worst list "tile.metric.<metric>" (a metric
# without one is shown by its key)
HEADLINE = {
    "air": ("pm25", "median"),
    "noise": ("laeq", "median"),
    "crowd": ("density", "max"),
    "vendor": ("detections", "sum"),
    "parking": ("illegal", "sum"),
    "manhole": ("open", "sum"),
    "waste": ("fill_pct", "median"),
}


def headline_parts(kind: str, readings: list[dict[str, float]],
                   lang: str) -> tuple[str, str, int]:
    """(caption, value with unit, level) of a kind's key figure; ("", "—", UNKNOWN) when
    there is none."""
    spec = HEADLINE.get(kind)
    if spec is None or not readings:
        return "", "—", UNKNOWN
    metric, how = spec
    caption = tr(f"tile.cap.{kind}", lang)
    values = [r[metric] for r in readings if metric in r]
    if not values:
        return caption, "—", UNKNOWN
    value = {"median": statistics.median, "max": max, "sum": sum}[how](values)
    unit = METRIC_UNITS.get(metric, "")
    level = metric_level(kind, metric, value) if how != "sum" else (ALARM if kind == "manhole"
                                                                     and value else UNKNOWN)
    return caption, f"{number(value)}{(' ' + unit) if unit else ''}", level


def headline_of(kind: str, readings: list[dict[str, float]], lang: str) -> tuple[str, int]:
    caption, value, level = headline_parts(kind, readings, lang)
    return (f"{caption} {value}" if caption and value != "—" else value), level


TIGHT_UNITS = ("%", "°")       # no space before these


def worst_metric(kind: str, metrics: dict[str, float], lang: str | None = None) -> str:
    """The metric that decides the reading's level, shown as name and value (``lang``: the
    metric's short name in words, else its key)."""
    best, best_level = None, UNKNOWN - 1
    for m, v in metrics.items():
        lvl = metric_level(kind, m, v)
        if lvl > best_level:
            best, best_level = m, lvl
    if best is None:
        return ""
    unit = METRIC_UNITS.get(best, "")
    name = (tr(f"tile.metric.{best}", lang) if lang is not None
            and f"tile.metric.{best}" in STRINGS else best)
    space = " " if lang and unit and unit not in TIGHT_UNITS else ""
    return f"{name} {number(metrics[best])}{space}{unit}"


def severity(kind: str, metrics: dict[str, float]) -> float:
    """How far past its warning threshold a reading is (the worst metric, as a ratio)."""
    out = 0.0
    for m, v in metrics.items():
        bounds = THRESHOLDS.get((kind, m))
        if bounds and bounds[0]:
            out = max(out, v / bounds[0])
    return out

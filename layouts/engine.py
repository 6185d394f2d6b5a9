"""The layout engine: which panel goes on which screen, and which layout follows the shift.

Pure data in, pure data out: no Qt here, so everything is testable without a display. The
wall (ui/) turns a `Screen` into a QGridLayout; this module only reads, checks, folds, writes
and schedules.

Layout files are TOML (read with the standard library's `tomllib`, written by `to_toml`):

    name = "wall-2"
    [[screen]]
    match = 0            # or match = "wall-left" (the screen's name as Qt reports it)
    title = ["指挥调度", "Command"]
    rows = 6
    cols = 20
    # optional: row_stretch = [1, 5, ...] (one per row), col_stretch = [...] (one per column);
    # without them every row (column) of the grid has the same height (width).
    cells = [
      { panel = "supervision_kpis", row = 0, col = 0, colspan = 20 },
      { panel = "case_queue", row = 1, col = 0, rowspan = 5, colspan = 9 },
      { panel = "city_map", row = 1, col = 9, rowspan = 5, colspan = 11 },
    ]

`row`/`col` are 0-based; `rowspan`/`colspan` default to 1. Cells must lie inside the grid and
must not overlap; grid cells left empty are allowed. A ROTATION is a cell whose `panel` is a
list: `{ panel = ["peak_duty", "temporal_heat"], every = 20, row = 1, col = 0 }` shows the
panels in turn, each for `every` seconds (default 20, at least 1) — presentation pacing, not
domain time. A one-panel list is a plain cell. A panel may appear on several screens.
`[[screen.cells]]` tables work as well as the inline array. `palette = "night"` (top level;
default "day") dims the wall's colours for that layout. Unknown keys are errors (a typo
such as `colsapn` would otherwise silently become 1).

Screens are placed on attached screens (`assign`): by name first, then by index (the index
BY POSITION — left to right, then top to bottom, see `by_position` — whatever order Qt lists
the screens in), then any layout screen still unplaced takes the next free attached screen in
that order. Layout screens left over when every attached screen is taken FOLD onto the
last attached screen: their cells are appended below that screen's own as extra rows, each
folded screen getting the same share of the height as the target's own grid, so no panel is
lost; `fold_message` says so in both languages.

Shift schedules are TOML too (see `load_schedule`): the shifts must cover the whole day
without overlapping; a shift may run over midnight. All times come from a passed-in `now_ms`
(the situation's clock), never from the wall clock.
"""
from __future__ import annotations

import difflib
import json
import math
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from zoneinfo import ZoneInfo

from situation.atomic import write_text_atomic

PRESET_DIR = Path(__file__).resolve().parent
MAX_GRID = 240                     # rows or columns per screen: a sanity bound, not a design

SCREEN_KEYS = {"match", "title", "rows", "cols", "cells", "row_stretch", "col_stretch"}
CELL_KEYS = {"panel", "row", "col", "rowspan", "colspan", "every"}
ROTATE_EVERY_S = 20                # a rotation's default page time, in real seconds
TOP_KEYS = {"name", "screen", "palette"}
PALETTES = ("day", "night")       # widgets/theme.py PALETTES: the wall's colours, by name


# ---- data ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    panel: str                     # the panel shown (a rotation's first page)
    row: int
    col: int
    rowspan: int = 1
    colspan: int = 1
    then: tuple[str, ...] = ()     # a rotation: the panels that follow, in turn
    every: float = ROTATE_EVERY_S  # seconds a rotation's page stays (unused without `then`)

    @property
    def pages(self) -> tuple[str, ...]:
        return (self.panel, *self.then)


@dataclass(frozen=True)
class Screen:
    match: str | int
    title_zh: str
    title_en: str
    rows: int
    cols: int
    cells: tuple[Cell, ...]
    row_stretch: tuple[int, ...] | None = None
    col_stretch: tuple[int, ...] | None = None

    def panels(self) -> list[str]:
        """Every panel on the screen, a rotation's pages included: all are shown there."""
        return [p for c in self.cells for p in c.pages]


@dataclass(frozen=True)
class Layout:
    name: str
    screens: tuple[Screen, ...]
    source: str = field(default="", compare=False)   # where it was read from; not compared
    palette: str = "day"           # the wall's colours: "day", or "night" (dimmed)

    def panels(self) -> list[str]:
        return [p for s in self.screens for p in s.panels()]


class LayoutError(ValueError):
    """A layout (or schedule) file that cannot be used: `FILE:LINE: problem`."""

    def __init__(self, path: str, line: int, problem: str):
        self.path = str(path)
        self.line = int(line)
        self.problem = problem
        super().__init__(f"{self.path}:{self.line}: {problem}" if self.line > 0
                         else f"{self.path}: {problem}")


# ---- finding the line of a problem in the text -------------------------------------------
class _Lines:
    """Best-effort line numbers (1-based) for parts of a parsed TOML document."""

    def __init__(self, text: str, table: str):
        self.lines = text.splitlines()
        head = re.compile(r"^\s*\[\[\s*" + re.escape(table) + r"\s*\]\]")
        self.starts = [i for i, ln in enumerate(self.lines) if head.match(ln)]

    def section(self, i: int) -> tuple[int, int]:
        if i < len(self.starts):
            end = self.starts[i + 1] if i + 1 < len(self.starts) else len(self.lines)
            return self.starts[i], end
        return 0, len(self.lines)

    def of_section(self, i: int) -> int:
        return self.section(i)[0] + 1 if i < len(self.starts) else 1

    def of_key(self, i: int, key: str, nth: int = 0) -> int:
        """Line of the nth `key =` inside section i (the section's line when not found)."""
        lo, hi = self.section(i)
        pat = re.compile(r"(^|[\s{,])" + re.escape(key) + r"\s*=")
        seen = 0
        for k in range(lo, hi):
            if pat.search(strip_comment(self.lines[k])):
                if seen == nth:
                    return k + 1
                seen += 1
        return self.of_section(i)

    def of_cell(self, i: int, j: int) -> int:
        return self.of_key(i, "panel", j)


def strip_comment(line: str) -> str:
    """A TOML line without its comment (a "#" outside quotes, to the end of the line)."""
    out, quote = [], None
    for ch in line:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        out.append(ch)
    return "".join(out)


def _toml_error(path: str, err: tomllib.TOMLDecodeError) -> LayoutError:
    msg = str(err)
    m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
    if m:
        problem = msg[:m.start()].strip()
        return LayoutError(path, int(m.group(1)),
                           f"TOML syntax error: {problem} (column {m.group(2)})")
    m = re.search(r"\(at end of document\)", msg)
    return LayoutError(path, 0, f"TOML syntax error: {msg}" if not m
                       else f"TOML syntax error: {msg[:m.start()].strip()} at end of file")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _shorten(names, most: int = 8) -> str:
    names = sorted(names)
    text = ", ".join(names[:most])
    return text + (f", … ({len(names)} in all)" if len(names) > most else "")


# ---- reading ---------------------------------------------------------------------------------
def resolve(name_or_path: str | os.PathLike) -> Path:
    """A bare name ("wall-2") is a preset in this package; anything else is a path."""
    s = str(name_or_path)
    if os.sep in s or "/" in s or s.endswith(".toml") or (os.altsep and os.altsep in s):
        return Path(s)
    return PRESET_DIR / f"{s}.toml"


def presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml") if p.stem != "shifts")


def load_layout(name_or_path: str | os.PathLike, known_panels) -> Layout:
    path = resolve(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        extra = f" (presets: {', '.join(presets())})" if path.parent == PRESET_DIR else ""
        raise LayoutError(str(path), 0, f"no such layout file{extra}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LayoutError(str(path), 0, f"cannot read: {e}") from None
    return parse_layout(text, str(path), known_panels, default_name=path.stem)


def parse_layout(text: str, path: str, known_panels, default_name: str = "") -> Layout:
    known = set(known_panels)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _toml_error(path, e) from None
    lines = _Lines(text, "screen")

    def fail(line: int, problem: str):
        raise LayoutError(path, line, problem)

    for key in doc:
        if key not in TOP_KEYS:
            fail(_top_key_line(text, key), f"unknown key {key!r} "
                 "(expected: name, palette, [[screen]])")
    name = doc.get("name", default_name)
    if not isinstance(name, str) or not name:
        fail(_top_key_line(text, "name"), "name must be a non-empty string")
    palette = doc.get("palette", "day")
    if palette not in PALETTES:
        fail(_top_key_line(text, "palette"), f"palette must be one of: "
             f"{', '.join(map(repr, PALETTES))} (not {palette!r})")
    raw_screens = doc.get("screen")
    if not raw_screens:
        fail(1, "no screens: add at least one [[screen]] table")
    if not isinstance(raw_screens, list) or not all(isinstance(s, dict) for s in raw_screens):
        fail(_top_key_line(text, "screen"), "screen must be an array of tables ([[screen]])")

    screens: list[Screen] = []
    seen_match: dict[str | int, int] = {}
    for i, s in enumerate(raw_screens):
        at = lines.of_section(i)
        label = f"screen {i + 1}"
        for key in s:
            if key not in SCREEN_KEYS:
                fail(lines.of_key(i, key), f"{label}: unknown key {key!r} "
                     f"(expected: {', '.join(sorted(SCREEN_KEYS))})")
        match = s.get("match", i)
        if not (_is_int(match) and match >= 0) and not (isinstance(match, str) and match):
            fail(lines.of_key(i, "match"), f"{label}: match must be a screen index (0, 1, …) "
                 "or a screen name")
        if match in seen_match:
            fail(lines.of_key(i, "match"), f"{label}: match = {match!r} is already used by "
                 f"screen {seen_match[match] + 1}")
        seen_match[match] = i
        title = s.get("title", ["", ""])
        if isinstance(title, str):
            title = [title, title]
        if (not isinstance(title, list) or len(title) != 2
                or not all(isinstance(t, str) for t in title)):
            fail(lines.of_key(i, "title"), f'{label}: title must be ["中文", "English"]')
        dims = {}
        for key in ("rows", "cols"):
            if key not in s:
                fail(at, f"{label}: missing {key} (the grid's size)")
            v = s[key]
            if not _is_int(v) or not 1 <= v <= MAX_GRID:
                fail(lines.of_key(i, key), f"{label}: {key} must be a whole number 1…{MAX_GRID}")
            dims[key] = v
        rows, cols = dims["rows"], dims["cols"]
        stretch = {}
        for key, n in (("row_stretch", rows), ("col_stretch", cols)):
            v = s.get(key)
            if v is None:
                stretch[key] = None
                continue
            if (not isinstance(v, list) or len(v) != n
                    or not all(_is_int(x) and x >= 1 for x in v)):
                fail(lines.of_key(i, key), f"{label}: {key} must list {n} whole numbers ≥ 1 "
                     f"(one per {'row' if key == 'row_stretch' else 'column'})")
            stretch[key] = tuple(v)
        raw_cells = s.get("cells")
        if not raw_cells:
            fail(at, f"{label}: no panels (cells = [...] is missing or empty)")
        if not isinstance(raw_cells, list) or not all(isinstance(c, dict) for c in raw_cells):
            fail(lines.of_key(i, "cells"), f"{label}: cells must be a list of "
                 '{ panel = "...", row = …, col = … } tables')
        cells: list[Cell] = []
        owner: dict[tuple[int, int], int] = {}
        for j, c in enumerate(raw_cells):
            cl = lines.of_cell(i, j)
            for key in c:
                if key not in CELL_KEYS:
                    fail(cl, f"{label}: unknown cell key {key!r} "
                         f"(expected: {', '.join(sorted(CELL_KEYS))})")
            pages, every = _pages(c, known, lambda problem: fail(cl, f"{label}: {problem}"),
                                  j)
            panel = pages[0]
            vals = {}
            for key, lo in (("row", 0), ("col", 0), ("rowspan", 1), ("colspan", 1)):
                if key in ("row", "col") and key not in c:
                    fail(cl, f"{label}: panel {panel!r} has no {key}")
                v = c.get(key, 1)
                if not _is_int(v) or v < lo:
                    fail(cl, f"{label}: panel {panel!r}: {key} must be a whole number ≥ {lo}")
                vals[key] = v
            cell = Cell(panel, vals["row"], vals["col"], vals["rowspan"], vals["colspan"],
                        pages[1:], every)
            if cell.row + cell.rowspan > rows or cell.col + cell.colspan > cols:
                fail(cl, f"{label}: panel {panel!r} spans rows {cell.row}–"
                     f"{cell.row + cell.rowspan - 1}, columns {cell.col}–"
                     f"{cell.col + cell.colspan - 1}: outside the {rows}×{cols} grid "
                     f"(rows 0–{rows - 1}, columns 0–{cols - 1})")
            for r in range(cell.row, cell.row + cell.rowspan):
                for k in range(cell.col, cell.col + cell.colspan):
                    if (r, k) in owner:
                        other = cells[owner[(r, k)]].panel
                        fail(cl, f"{label}: panel {panel!r} overlaps panel {other!r} "
                             f"at row {r}, column {k}")
                    owner[(r, k)] = j
            cells.append(cell)
        screens.append(Screen(match, title[0], title[1], rows, cols, tuple(cells),
                              stretch["row_stretch"], stretch["col_stretch"]))
    return Layout(name, tuple(screens), path, palette)


def _pages(c: dict, known: set, fail, j: int) -> tuple[tuple[str, ...], float]:
    """A cell's panels — one name, or a rotation's list — and its page time in seconds."""
    raw = c.get("panel")
    rotation = isinstance(raw, list)
    names = raw if rotation else [raw]
    if rotation and not names:
        fail(f"cell {j + 1}: panel = [] names no panel (a rotation lists one or more)")
    for name in names:
        if not isinstance(name, str) or not name:
            fail(f"cell {j + 1} has no panel name" if not rotation else
                 f"cell {j + 1}: a rotation lists panel names, not {name!r}")
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            fail(f"unknown panel {name!r}{hint} (known: {_shorten(known)})")
    if len(set(names)) != len(names):
        fail(f"panel {names[0]!r}: a rotation lists a panel twice ({', '.join(names)})")
    every = c.get("every", ROTATE_EVERY_S)
    if "every" in c and not rotation:
        fail(f"panel {names[0]!r}: every is for a rotation (panel = [\"a\", \"b\"])")
    if (isinstance(every, bool) or not isinstance(every, (int, float))
            or not math.isfinite(every) or every < 1):
        fail(f"panel {names[0]!r}: every must be a number of seconds ≥ 1, not {every!r}")
    return tuple(names), every if len(names) > 1 else ROTATE_EVERY_S   # one page: no pacing


def _top_key_line(text: str, key: str) -> int:
    pat = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
    for k, ln in enumerate(text.splitlines()):
        if pat.match(ln):
            return k + 1
    return 1


def load_or_default(name_or_path, known_panels, default: Layout) -> tuple[Layout, str | None]:
    """The layout, or — when it cannot be used — the default and the message saying why."""
    try:
        return load_layout(name_or_path, known_panels), None
    except LayoutError as e:
        return default, (f"{e} — 使用内置默认布局 / using the built-in default layout "
                         f"{default.name!r}")


# ---- writing ---------------------------------------------------------------------------------
def _s(v: str) -> str:
    return json.dumps(v, ensure_ascii=False)     # a JSON string is a valid TOML basic string


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def to_toml(layout: Layout) -> str:
    out = [f"name = {_s(layout.name)}"]
    if layout.palette != "day":
        out.append(f"palette = {_s(layout.palette)}")
    for s in layout.screens:
        out += ["", "[[screen]]",
                f"match = {s.match if _is_int(s.match) else _s(s.match)}",
                f"title = [{_s(s.title_zh)}, {_s(s.title_en)}]",
                f"rows = {s.rows}", f"cols = {s.cols}"]
        if s.row_stretch is not None:
            out.append(f"row_stretch = [{', '.join(map(str, s.row_stretch))}]")
        if s.col_stretch is not None:
            out.append(f"col_stretch = [{', '.join(map(str, s.col_stretch))}]")
        out.append("cells = [")
        for c in s.cells:
            span = (f", rowspan = {c.rowspan}" if c.rowspan != 1 else "") + \
                   (f", colspan = {c.colspan}" if c.colspan != 1 else "")
            panel = _s(c.panel) if not c.then else (
                f"[{', '.join(map(_s, c.pages))}], every = {_num(c.every)}")
            out.append(f"  {{ panel = {panel}, row = {c.row}, col = {c.col}{span} }},")
        out.append("]")
    return "\n".join(out) + "\n"


def save_layout(layout: Layout, path: str | os.PathLike) -> Path:
    """Write atomically: a temporary file in the same directory, then os.replace."""
    path = Path(path)
    text = to_toml(layout)
    tomllib.loads(text)                        # never write what we could not read back
    return write_text_atomic(path, text)


# ---- geometry: exact proportions -----------------------------------------------------------
def _bounds(weights) -> list[Fraction]:
    total = sum(weights)
    acc, out = 0, [Fraction(0)]
    for w in weights:
        acc += w
        out.append(Fraction(acc, total))
    return out


def _as_ints(widths: list[Fraction]) -> tuple[int, ...] | None:
    """Fractions → the smallest whole-number stretches in the same proportions (None: equal)."""
    den = math.lcm(*(w.denominator for w in widths))
    ints = [int(w * den) for w in widths]
    g = math.gcd(*ints)
    ints = [x // g for x in ints]
    return None if len(set(ints)) == 1 else tuple(ints)


def rects(screen: Screen) -> list[tuple[str, Fraction, Fraction, Fraction, Fraction]]:
    """Each cell as (panel, x0, y0, x1, y1) in fractions of the screen: compare layouts by
    what they look like rather than by how their grid is written."""
    xs = _bounds(screen.col_stretch or [1] * screen.cols)
    ys = _bounds(screen.row_stretch or [1] * screen.rows)
    return sorted((c.panel, xs[c.col], ys[c.row], xs[c.col + c.colspan], ys[c.row + c.rowspan])
                  for c in screen.cells)


def from_rows(name: str, screens) -> Layout:
    """Today's ui/wall.py format — per screen (title_zh, title_en, rows), a row being
    (stretch, [(panel, stretch), …]) — as a Layout with the same proportions exactly."""
    out = []
    for index, (zh, en, rows) in enumerate(screens):
        row_bounds = [_bounds([st for _, st in cells]) for _, cells in rows]
        xs = sorted(set().union(*row_bounds))
        cells = []
        for r, ((_, row_cells), b) in enumerate(zip(rows, row_bounds)):
            for k, (panel, _) in enumerate(row_cells):
                c0, c1 = xs.index(b[k]), xs.index(b[k + 1])
                cells.append(Cell(panel, r, c0, 1, c1 - c0))
        col_stretch = _as_ints([b - a for a, b in zip(xs, xs[1:])])
        row_stretch = _as_ints([Fraction(st) for st, _ in rows])
        out.append(Screen(index, zh, en, len(rows), len(xs) - 1, tuple(cells),
                          row_stretch, col_stretch))
    return Layout(name, tuple(out), "built-in")


def merge(target: Screen, folded: list[Screen]) -> Screen:
    """The target screen with the folded screens' grids appended below as extra rows. Each
    screen keeps its proportions; each gets an equal share of the height."""
    parts = [target] + list(folded)
    col_bounds = [_bounds(s.col_stretch or [1] * s.cols) for s in parts]
    xs = sorted(set().union(*col_bounds))
    heights: list[Fraction] = []
    cells: list[Cell] = []
    for s, b in zip(parts, col_bounds):
        base = len(heights)
        rw = s.row_stretch or [1] * s.rows
        heights += [Fraction(w, sum(rw)) for w in rw]
        for c in s.cells:
            c0, c1 = xs.index(b[c.col]), xs.index(b[c.col + c.colspan])
            cells.append(replace(c, row=base + c.row, col=c0, colspan=c1 - c0))
    return Screen(target.match,
                  " + ".join(s.title_zh for s in parts if s.title_zh),
                  " + ".join(s.title_en for s in parts if s.title_en),
                  len(heights), len(xs) - 1, tuple(cells),
                  _as_ints(heights), _as_ints([b - a for a, b in zip(xs, xs[1:])]))


# ---- placing a layout on the attached screens --------------------------------------------
def by_position(geometries) -> list[int]:
    """The order of screens by where they stand: left to right, then top to bottom (the
    left edge first, then the top edge), whatever order the window system lists them in.
    ``geometries``: per screen (x, y) or (x, y, width, height[, name]) in the virtual
    desktop's coordinates. Returns the indexes into ``geometries``, leftmost first; screens at
    the same place keep a stable order (by name, then as listed)."""
    def key(i):
        g = geometries[i]
        name = g[4] if len(g) > 4 else ""
        return (g[0], g[1], str(name or ""), i)
    return sorted(range(len(geometries)), key=key)


def fold_message(wanted: int, attached: int, folded: list[int], target: int) -> str:
    """folded: 1-based numbers of the layout's screens folded; target: 1-based attached."""
    zh_list = "、".join(map(str, folded))
    en = (f"screen {folded[0]}'s panels" if len(folded) == 1 else
          f"screens {', '.join(map(str, folded[:-1]))} and {folded[-1]}: panels")
    return (f"布局需要 {wanted} 块屏幕，只接了 {attached} 块：第 {zh_list} 屏的面板并入第 "
            f"{target} 屏 / layout wants {wanted} screens, {attached} attached: "
            f"{en} folded onto screen {target}")


def assign(layout: Layout, screen_names: list[str]
           ) -> tuple[list[tuple[int, Screen, list[Screen]]], str | None]:
    """Place the layout's screens on the attached ones, named in their order BY POSITION
    (`by_position`: the caller sorts, so `match = 0` is the leftmost screen).

    Returns ([(attached index, Screen to show, [layout screens folded into it]), …] sorted by
    attached index, message or None). The Screen to show already has the folded grids merged.
    Order: name matches; then index matches on free screens; then the rest in order onto the
    free screens left; anything still unplaced folds onto the last attached screen used.
    """
    n = len(screen_names)
    if n < 1:
        raise ValueError("no screens attached")
    placed: dict[int, int] = {}                      # attached index → layout screen index
    todo = list(range(len(layout.screens)))
    for phase in ("name", "index", "free"):
        for li in list(todo):
            m = layout.screens[li].match
            if phase == "name":
                hit = (screen_names.index(m) if isinstance(m, str) and m in screen_names
                       else None)
            elif phase == "index":
                hit = m if _is_int(m) and m < n else None
            else:
                hit = next((k for k in range(n) if k not in placed), None)
            if hit is not None and hit not in placed:
                placed[hit] = li
                todo.remove(li)
    message = None
    folded_into: dict[int, list[int]] = {k: [] for k in placed}
    if todo:
        target = max(placed)
        folded_into[target] = todo
        message = fold_message(len(layout.screens), n, [li + 1 for li in todo], target + 1)
    out = []
    for k in sorted(placed):
        own = layout.screens[placed[k]]
        extra = [layout.screens[li] for li in folded_into[k]]
        out.append((k, merge(own, extra) if extra else own, extra))
    return out, message


def fold(layout: Layout, n_attached: int) -> tuple[list[Screen], str | None]:
    """The screens to show on n anonymous attached screens (by index only)."""
    placements, message = assign(layout, [""] * n_attached)
    return [s for _, s, _ in placements], message


# ---- shift schedule --------------------------------------------------------------------------
DAY_MIN = 24 * 60
SHIFT_ZH = {"day": "白班", "evening": "中班", "night": "夜班"}


@dataclass(frozen=True)
class Shift:
    name: str
    start_min: int          # minutes after local midnight, 0…1439
    end_min: int            # 1…1440; end < start: the shift runs over midnight
    layout: str             # a preset name or a path (relative paths: to the schedule file)
    title_zh: str = ""

    def covers(self, minute: int) -> bool:
        if self.start_min < self.end_min:
            return self.start_min <= minute < self.end_min
        return minute >= self.start_min or minute < self.end_min


def _hhmm(v, path, line, what) -> int:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", v) if isinstance(v, str) else None
    if not m or int(m.group(2)) > 59 or int(m.group(1)) > 24 or (
            int(m.group(1)) == 24 and int(m.group(2)) != 0):
        raise LayoutError(path, line, f"{what} must be a time \"HH:MM\" (00:00…24:00), "
                          f"not {v!r}")
    return int(m.group(1)) * 60 + int(m.group(2))


def load_schedule(path: str | os.PathLike) -> list[Shift]:
    """[[shift]] name = "day"  start = "08:00"  end = "16:00"  layout = "wall-3"
    (optional title = "白班"). The shifts must cover all 24 hours with no overlap and no gap:
    there is always exactly one layout due."""
    path = resolve(path)
    spath = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LayoutError(spath, 0, f"cannot read: {e}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _toml_error(spath, e) from None
    lines = _Lines(text, "shift")
    raw = doc.get("shift")
    if not raw or not isinstance(raw, list) or not all(isinstance(s, dict) for s in raw):
        raise LayoutError(spath, 1, "no shifts: add [[shift]] tables")
    shifts: list[Shift] = []
    for i, s in enumerate(raw):
        at = lines.of_section(i)
        for key in s:
            if key not in {"name", "start", "end", "layout", "title"}:
                raise LayoutError(spath, lines.of_key(i, key), f"shift {i + 1}: unknown key "
                                  f"{key!r} (expected: name, start, end, layout, title)")
        for key in ("name", "start", "end", "layout"):
            if not isinstance(s.get(key), str) or not s[key]:
                raise LayoutError(spath, lines.of_key(i, key) if key in s else at,
                                  f"shift {i + 1}: {key} must be a non-empty string")
        start = _hhmm(s["start"], spath, lines.of_key(i, "start"), f"shift {s['name']!r}: start")
        end = _hhmm(s["end"], spath, lines.of_key(i, "end"), f"shift {s['name']!r}: end")
        if start == 24 * 60:
            start = 0
        if start == end or (start == 0 and end == DAY_MIN and len(raw) > 1):
            raise LayoutError(spath, at, f"shift {s['name']!r}: empty or whole-day shift "
                              "among others")
        layout = s["layout"]
        if resolve(layout) != PRESET_DIR / f"{layout}.toml" and not Path(layout).is_absolute():
            layout = str(path.parent / layout)      # a relative path: next to the schedule
        shifts.append(Shift(s["name"], start, end, layout, str(s.get("title", ""))))
    # coverage: every minute exactly once
    owner: list[int | None] = [None] * DAY_MIN
    for i, sh in enumerate(shifts):
        for minute in range(DAY_MIN):
            if sh.covers(minute):
                if owner[minute] is not None:
                    raise LayoutError(spath, lines.of_section(i),
                                      f"shift {sh.name!r} overlaps shift "
                                      f"{shifts[owner[minute]].name!r} at {_fmt(minute)}")
                owner[minute] = i
    if None in owner:
        first = owner.index(None)
        last = first
        while last + 1 < DAY_MIN and owner[last + 1] is None:
            last += 1
        raise LayoutError(spath, 1, f"the shifts leave {_fmt(first)}–{_fmt(last + 1)} "
                          "uncovered: they must cover all 24 hours")
    return shifts


def _fmt(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def current_shift(schedule: list[Shift], local_minutes: int) -> Shift:
    minute = int(local_minutes) % DAY_MIN
    for sh in schedule:
        if sh.covers(minute):
            return sh
    raise ValueError(f"no shift covers {_fmt(minute)}")


def _local(now_ms: int, tz: str) -> datetime:
    return datetime.fromtimestamp(now_ms / 1000, ZoneInfo(tz))


def shift_at(schedule: list[Shift], now_ms: int, tz: str = "Asia/Shanghai") -> Shift:
    t = _local(now_ms, tz)
    return current_shift(schedule, t.hour * 60 + t.minute)


def next_switch(schedule: list[Shift], now_ms: int, tz: str = "Asia/Shanghai"
                ) -> tuple[int, Shift]:
    """(when the current shift ends, in epoch ms; the shift that follows)."""
    t = _local(now_ms, tz)
    cur = current_shift(schedule, t.hour * 60 + t.minute)
    midnight = t.replace(hour=0, minute=0, second=0, microsecond=0)
    at = midnight + timedelta(minutes=cur.end_min)          # wall-clock arithmetic
    while at <= t:
        at += timedelta(days=1)
    at = at.replace(tzinfo=None).replace(tzinfo=ZoneInfo(tz))  # re-resolve the UTC offset
    return int(at.timestamp() * 1000), current_shift(schedule, cur.end_min % DAY_MIN)


def shift_window(schedule: list[Shift], now_ms: int, tz: str = "Asia/Shanghai"
                 ) -> tuple[Shift, int, int]:
    """(the shift covering now_ms, when this turn of it began, when it ends), epoch ms: the
    window a handover summary reports on. The shift before is ``shift_window(.., start - 1)``."""
    end, _ = next_switch(schedule, now_ms, tz)
    t = _local(now_ms, tz)
    cur = current_shift(schedule, t.hour * 60 + t.minute)
    begin = t.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
        minutes=cur.start_min)
    while begin > t:                              # a shift over midnight began yesterday
        begin -= timedelta(days=1)
    begin = begin.replace(tzinfo=None).replace(tzinfo=ZoneInfo(tz))
    return cur, int(begin.timestamp() * 1000), end


def shift_title(shift: Shift, lang: str = "zh") -> str:
    return (shift.title_zh or SHIFT_ZH.get(shift.name, shift.name)) if lang == "zh" \
        else shift.name


def banner(schedule: list[Shift], now_ms: int, tz: str = "Asia/Shanghai",
           held: bool = False, lead_s: int = 60) -> str | None:
    """The countdown text within the last `lead_s` seconds before a switch, else None.
    Held (the duty officer keeps the current layout): no countdown, and the caller keeps its
    layout — see `layout_due`."""
    if held:
        return None
    at, nxt = next_switch(schedule, now_ms, tz)
    left = at - now_ms
    if not 0 < left <= lead_s * 1000:
        return None
    secs = math.ceil(left / 1000)
    zh = shift_title(nxt, "zh")
    return f"{secs} 秒后切换到{zh}布局 / {nxt.name} layout in {secs} s"


def layout_due(schedule: list[Shift], now_ms: int, current: str | None, held: bool = False,
               tz: str = "Asia/Shanghai") -> str:
    """The layout the wall should show now: the current shift's, unless held."""
    if held and current:
        return current
    return shift_at(schedule, now_ms, tz).layout

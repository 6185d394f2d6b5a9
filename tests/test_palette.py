"""Issue 14, one colour language: every colour is defined in ``situation/palette.py`` and nowhere
else; different meanings never share a colour; the markers that can appear together stay apart
for people with protanopia, deuteranopia or tritanopia and read on their ground; the stages of a
case are a sequence (light → deep); the theme's names are the palette's.

The colour-blind check simulates each dichromacy with Machado, Oliveira & Fernandes (2009) at
severity 1.0 in linear sRGB and measures the difference with CIEDE2000 (Sharma, Wu & Dalal
2005), both implemented in ``situation.palette`` and checked here against published data."""
from __future__ import annotations

import io
import itertools
import json
import re
import tokenize
from pathlib import Path

import pytest

from situation import palette as P

ROOT = Path(__file__).resolve().parent.parent
THE_PALETTE = ROOT / "situation" / "palette.py"
SCANNED = ("feeds", "situation", "widgets", "ui", "layouts", "bench")
EXTENSIONS = {".py", ".js", ".toml", ".html", ".css"}

# ---- the scanner -----------------------------------------------------------------------------
# "#rgb", "#rrggbb", "#rrggbbaa" — not after a word character, "&" (an HTML entity "&#123;") or
# another "#", and not followed by a word character or "-" (so "#14" in a sentence, a URL's
# "#fragment", a CSS id "#cw-title" or "#1a" are not colours).
HEX = re.compile(r"(?<![\w&#])#(?:[0-9a-fA-F]{8}|[0-9a-fA-F]{6}|[0-9a-fA-F]{3})(?![\w-])")
CSS_FUNCTION = re.compile(r"\b(?:rgba?|hsla?|hwb|lab|lch|oklab|oklch)\(\s*[-+]?\.?\d", re.I)
NAMES = ("white|black|red|green|blue|yellow|orange|gr[ae]y|silver|cyan|magenta|purple|pink|"
         "navy|teal|maroon|olive|lime|aqua|fuchsia|gold|crimson|darkred|darkgreen|darkblue|"
         "lightgr[ae]y|darkgr[ae]y")
# A named colour as the value of a colour property, in a style sheet or an options object.
CSS_NAMED = re.compile(
    r"(?<![\w-])(?:color|background(?:-color)?|border(?:-[a-z]+)*|fill(?:color)?|stroke|"
    r"outline(?:-color)?|(?:text|box)-shadow|selection-(?:background-)?color|gridline-color|"
    r"alternate-background-color)[\"']?\s*[:=]\s*[\"']?(?:[-\w.#%]+\s+)*?(?:" + NAMES
    + r")\b(?![-\w])", re.I)
QT_GLOBAL = re.compile(
    r"\bQt(?:\.GlobalColor)?\.(?:white|black|red|darkRed|green|darkGreen|blue|darkBlue|cyan|"
    r"darkCyan|magenta|darkMagenta|yellow|darkYellow|gray|darkGray|lightGray|color0|color1)\b")
QCOLOR = re.compile(r"\bQColor(?:\.from(?:Rgb|Hsv|Hsl|Cmyk)F?)?\(\s*(?:[-+]?\.?\d|[\"'](?!#)"
                    r"[A-Za-z]+[\"'])")
PYQTGRAPH = re.compile(r"\b(?:mkColor|mkPen|mkBrush|setBackground|setForeground)\(\s*"
                       r"(?:\(\s*[-+]?\.?\d|\[\s*[-+]?\.?\d|[-+]?\.?\d|[\"'][rgbcmykw][\"']"
                       r"|[\"'](?:" + NAMES + r")[\"'])")
GENERATED = re.compile(r"\b(?:colorsys\.\w+_to_rgb|intColor)\(")
PATTERNS = {"hex colour": HEX, "css colour function": CSS_FUNCTION, "named colour": CSS_NAMED,
            "Qt global colour": QT_GLOBAL, "QColor from numbers/name": QCOLOR,
            "pyqtgraph colour": PYQTGRAPH, "generated colour": GENERATED}


def _python_code(text: str) -> str:
    """The source with its comments blanked (strings, docstrings and code kept)."""
    lines = text.splitlines(keepends=True)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT:
                (row, col), (_, end) = tok.start, tok.end
                line = lines[row - 1]
                lines[row - 1] = line[:col] + " " * (end - col) + line[end:]
    except (tokenize.TokenError, IndentationError):
        pass
    return "".join(lines)


def _c_like_code(text: str) -> str:
    """JS/CSS/HTML with its comments blanked (newlines kept, so line numbers hold)."""
    blank = lambda m: re.sub(r"[^\n]", " ", m.group(0))  # noqa: E731
    text = re.sub(r"/\*.*?\*/", blank, text, flags=re.S)
    text = re.sub(r"<!--.*?-->", blank, text, flags=re.S)
    return re.sub(r"(?<![:\"'\\\w/])//[^\n]*", blank, text)


def _toml_code(text: str) -> str:
    """TOML with its comments blanked (the layout engine's own reading of a line)."""
    from layouts.engine import strip_comment
    return "".join(strip_comment(line.rstrip("\n")) + "\n"
                   for line in text.splitlines(keepends=True))


def colour_literals(text: str, suffix: str) -> list[tuple[int, str, str]]:
    """(line number, what, the line) for each colour spelled in ``text`` (a file's content)."""
    code = {".py": _python_code, ".toml": _toml_code}.get(suffix, _c_like_code)(text)
    found = []
    for n, line in enumerate(code.splitlines(), 1):
        for what, pattern in PATTERNS.items():
            if suffix != ".py" and what in ("Qt global colour", "QColor from numbers/name"):
                continue
            if pattern.search(line):
                found.append((n, what, line.strip()))
    return found


def scanned_files() -> list[Path]:
    files = [ROOT / "main.py"]
    for top in SCANNED:
        files += [p for p in sorted((ROOT / top).rglob("*"))
                  if p.suffix in EXTENSIONS and p.is_file() and "__pycache__" not in p.parts]
    return [p for p in files if p.resolve() != THE_PALETTE.resolve()]


def offenders() -> list[str]:
    out = []
    for path in scanned_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for n, what, line in colour_literals(text, path.suffix):
            out.append(f"{path.relative_to(ROOT)}:{n}: {what}: {line[:100]}")
    return out


def test_only_the_palette_module_spells_colours():
    bad = offenders()
    assert not bad, ("colours defined outside situation/palette.py (use its names, or "
                     "widgets.theme's):\n" + "\n".join(bad))


FLAGGED = [
    ('c = "#ff0000"', ".py"), ("c = '#f00'", ".py"), ('c = "#ff000080"', ".py"),
    ('s = f"color: #abcdef; x: {y}"', ".py"), ('s = "background: rgba(15, 23, 42, 0.2)"', ".py"),
    ('s = "color: rgb(1,2,3)"', ".py"), ('s = "fill: hsl(120, 50%, 50%)"', ".py"),
    ("p.setPen(QColor(255, 0, 0))", ".py"), ('b = QColor("white")', ".py"),
    ("p.setBrush(Qt.red)", ".py"), ("p.setBrush(Qt.GlobalColor.darkGray)", ".py"),
    ("pen = pg.mkPen((255, 0, 0), width=2)", ".py"), ("pg.mkColor('w')", ".py"),
    ("b = pg.mkBrush(200, 30, 30, 80)", ".py"), ('s = "color: white;"', ".py"),
    ('opts = {"fillColor": "white"}', ".py"), ('s = "border: 2px solid black;"', ".py"), ("rgb = colorsys.hls_to_rgb(h, l, s)", ".py"),
    ('var c = {color: "#fff", weight: 2};', ".js"), ("e.style.color = 'white';", ".js"),
    ("div { background: #112233; }", ".css"), ('colour = "#0b5cad"', ".toml"),
]
NOT_FLAGGED = [
    ("# issue #14: the palette  #ff0000 in a comment", ".py"), ('s = "case #14 and #1234"', ".py"),
    ('url = "https://example.org/page#section"', ".py"), ('s = "&#123;&#125;"', ".py"),
    ('s = "#cw-title { top: 14px; }"', ".py"), ("x = overlay_rgba(grid)", ".py"),
    ('p.setPen(QColor(theme.TEXT))', ".py"), ("p.setBrush(Qt.NoBrush)", ".py"),
    ("pen = pg.mkPen(theme.ALARM, width=2)", ".py"), ("pg.mkPen(None)", ".py"),
    ('s = f"color: {theme.TEXT}; background: transparent;"', ".py"),
    ('test_id = "C-0123"', ".py"),
    ("// see #123 and #fff in a comment", ".js"), ("/* #ff0000 */ var a = 1;", ".js"),
    ('var u = "http://x/#abc-def";', ".js"), ("# a comment with #ff0000", ".toml"),
    ('name = "night"  # palette #ff0000', ".toml"), ("<!-- #ff0000 -->", ".html"),
    ('s = "the blue line is the forecast"', ".py"),
    ('"""Luminance of a "#rrggbb" colour: 0 black … 1 white."""', ".py"),
    ('s = "border-color: transparent; color: inherit"', ".py"),
]


@pytest.mark.parametrize("text,suffix", FLAGGED)
def test_the_scanner_finds_colours(text, suffix):
    assert colour_literals(text, suffix), text


@pytest.mark.parametrize("text,suffix", NOT_FLAGGED)
def test_the_scanner_leaves_what_is_not_a_colour(text, suffix):
    found = colour_literals(text, suffix)
    assert not found, (text, found)


def test_the_scanner_reads_every_package():
    names = {str(p.relative_to(ROOT)) for p in scanned_files()}
    assert "main.py" in names and "situation/palette.py" not in names
    assert {"widgets/city_map.js", "layouts/night.toml", "widgets/theme.py"} <= names
    for top in SCANNED:
        assert any(n.startswith(top + "/") for n in names), top


# ---- the measures are the published ones -----------------------------------------------------
# Sharma, Wu & Dalal (2005), table 1: pairs 1, 7, 17, 25, 34 and their CIEDE2000.
SHARMA = [((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
          ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
          ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
          ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
          ((2.0776, 0.0795, -1.135), (0.9033, -0.0636, -0.5514), 0.9082)]


@pytest.mark.parametrize("lab1,lab2,expected", SHARMA)
def test_ciede2000_matches_the_published_test_data(lab1, lab2, expected):
    assert P.ciede2000(lab1, lab2) == pytest.approx(expected, abs=1e-4)
    assert P.ciede2000(lab2, lab1) == pytest.approx(expected, abs=1e-4)


def test_the_simulation_is_machado_2009_at_full_severity():
    for m in P.MACHADO_2009.values():        # each row sums to 1: greys stay grey
        assert all(sum(row) == pytest.approx(1.0, abs=1e-5) for row in m)
    for kind in P.MACHADO_2009:
        for grey in ("#000000", "#808080", "#ffffff"):
            assert P.simulate(grey, kind) == grey
    # What colorspacious 1.1.2 ("sRGB1+CVD", severity 100) gives for the same colours.
    reference = {("#ff0000", "protanopia"): "#6d5f00", ("#ff0000", "deuteranopia"): "#a39000",
                 ("#ff0000", "tritanopia"): "#ff000f", ("#0000ff", "protanopia"): "#0059ff",
                 ("#0000ff", "deuteranopia"): "#003dfb", ("#0000ff", "tritanopia"): "#006b96"}
    for (colour, kind), seen in reference.items():
        got = P.rgb(P.simulate(colour, kind))
        assert all(abs(g - w) <= 1 for g, w in zip(got, P.rgb(seen))), (colour, kind, got)
    assert P.lab("#ffffff") == pytest.approx((100.0, 0.0, 0.0), abs=0.01)


# ---- meanings never share a colour -----------------------------------------------------------
# Chrome that itself says something: alarm and warning row grounds, the accent (titles, the
# play button), the training mark, the selection.
SAYING = ("ALARM_BG", "WARN_BG", "ACCENT", "TRAINING", "SELECTION")
HEX6 = re.compile(r"#[0-9a-f]{6}")


def test_every_colour_is_a_hex_and_meanings_never_share_one():
    meanings = list(P.SIGNALS.values()) + list(P.STAGES.values())
    assert len(set(meanings)) == len(meanings)
    for name, chrome in P.CHROME.items():
        saying = meanings + [chrome[k] for k in SAYING]
        assert len(set(saying)) == len(saying), name
        assert not set(chrome.values()) & set(meanings), name      # chrome is never a signal
        assert all(HEX6.fullmatch(c) for c in list(chrome.values()) + meanings), name
    assert set(P.CHROME["day"]) == set(P.CHROME["night"])
    assert not set(P.CHROME["day"]) & ({k.upper() for k in P.SIGNALS} | {"OK"})  # no shadow
    for page in (P.PAPER, P.PUBLIC):
        assert all(HEX6.fullmatch(c) for c in page.values())
        assert len(set(page.values())) == len(page)
    for _, colour, *_ in P.HEAT_RAMP + P.DIVERGING_RAMP + P.COVERAGE_RAMP:
        assert HEX6.fullmatch(colour)
    assert HEX6.fullmatch(P.DATA) and HEX6.fullmatch(P.DATA_EDGE)
    districts = P.district_colours(16)
    flat = [c for pair in districts for c in pair]
    assert len(set(flat)) == 32 and all(HEX6.fullmatch(c) for c in flat)


@pytest.mark.parametrize("name", sorted(P.CHROME))
def test_signals_are_not_mistaken_for_the_chrome_or_the_stages(name):
    """The accent (titles, the play button) and the training colour are chrome: a signal must
    not look like them, nor like a stage chip, in normal vision."""
    chrome = P.CHROME[name]
    for sig, colour in P.SIGNALS.items():
        for key in ("ACCENT", "TRAINING"):
            assert P.delta_e(colour, chrome[key]) >= OTHER_MIN, (sig, key)
        for stage, sc in P.STAGES.items():
            assert P.delta_e(colour, sc) >= STAGE_MIN, (sig, stage)


# ---- colour-blind safe -----------------------------------------------------------------------
# Markers of one kind share a shape, so only colour tells their states apart: these sets must
# stay clearly apart for every viewer. Markers of different kinds also differ in shape (a case is
# a square, a unit a circle, a sensor a diamond), so their pairs need only stay distinguishable.
KINDS = {"case": ("case", "urgent", "warn", "alarm"),
         "unit": ("ready", "busy", "on_scene", "idle", "alarm"),
         "sensor": ("sensor", "warn", "alarm")}
STRICT = sorted({tuple(sorted(p)) for names in KINDS.values()
                 for p in itertools.combinations(names, 2)})
OTHER_PAIRS = sorted({tuple(sorted(p)) for p in itertools.combinations(P.SIGNALS, 2)}
                     - set(STRICT))
VIEWERS = (None, "protanopia", "deuteranopia", "tritanopia")
# CIEDE2000 ≈ 1 is a just-noticeable difference between large patches side by side; a marker
# on a wall is a few millimetres seen from metres away, and Szafir (2018, "Modeling Color
# Difference for Visualization Design", IEEE TVCG 24(1)) measured that small marks need several
# times the difference of large patches to be told apart reliably. 15 for the states of one
# kind ("named apart at a glance"), 10 for any two signals, 10 from the accent and training
# colours, 8 from a stage chip.
STRICT_MIN = 15.0
PAIR_MIN = 10.0
OTHER_MIN = 10.0
STAGE_MIN = 8.0
# WCAG 2.1 SC 1.4.11 (non-text contrast): a graphical object needs 3:1 against what is
# around it. The markers also carry a dark edge (MARKER_EDGE); this is without it.
GROUND_MIN = 3.0


def test_every_signal_is_in_a_kind_or_said_why_not():
    assert set(itertools.chain(*KINDS.values())) == set(P.SIGNALS)


@pytest.mark.parametrize("viewer", VIEWERS, ids=lambda v: v or "normal")
def test_the_states_of_one_kind_stay_apart(viewer):
    worst = min((P.delta_e(P.SIGNALS[a], P.SIGNALS[b], viewer), a, b) for a, b in STRICT)
    assert worst[0] >= STRICT_MIN, worst
    assert worst[0] == pytest.approx(P.CVD_FIGURES[viewer or "normal"][0], abs=0.05), (
        "update the figures in situation/palette.py", worst)


@pytest.mark.parametrize("viewer", VIEWERS, ids=lambda v: v or "normal")
def test_any_two_signals_stay_distinguishable(viewer):
    worst = min((P.delta_e(P.SIGNALS[a], P.SIGNALS[b], viewer), a, b) for a, b in OTHER_PAIRS)
    assert worst[0] >= (STRICT_MIN if viewer is None else PAIR_MIN), worst
    assert worst[0] == pytest.approx(P.CVD_FIGURES[viewer or "normal"][1], abs=0.05), (
        "update the figures in situation/palette.py", worst)


@pytest.mark.parametrize("name", sorted(P.CHROME))
@pytest.mark.parametrize("ground", ["MAP_LAND", "PANEL"])
def test_every_signal_reads_on_its_ground(name, ground):
    g = P.CHROME[name][ground]
    for viewer in VIEWERS:
        for sig, colour in P.SIGNALS.items():
            ratio = P.contrast(P.simulate(colour, viewer), P.simulate(g, viewer))
            assert ratio >= GROUND_MIN, (name, ground, viewer, sig, round(ratio, 2))


# ---- stages: a sequence ----------------------------------------------------------------------
def test_the_stages_are_a_sequence_light_to_deep():
    from feeds.schema import CASE_STATUSES
    assert set(P.STAGES) == set(CASE_STATUSES)
    order = [s for s in CASE_STATUSES if s != "rejected"]      # rejected leaves the sequence
    for viewer in VIEWERS:
        lightness = [P.lab(P.simulate(P.STAGES[s], viewer))[0] for s in order]
        assert lightness == sorted(lightness, reverse=True), (viewer, lightness)
        steps = [P.delta_e(P.STAGES[a], P.STAGES[b], viewer) for a, b in zip(order, order[1:])]
        assert min(steps) >= 5, (viewer, steps)
    # rejected: apart from every stage of the sequence
    assert min(P.delta_e(P.STAGES["rejected"], P.STAGES[s]) for s in order) >= 8
    for name, chrome in P.CHROME.items():          # every stage chip reads on its panel
        for s, colour in P.STAGES.items():
            assert P.contrast(colour, chrome["PANEL"]) >= GROUND_MIN, (name, s)


# ---- the theme and the map page read the palette ---------------------------------------------
def test_the_theme_names_are_the_palette():
    from widgets import theme
    assert theme.PALETTES == {n: P.palette(n) for n in P.CHROME}
    assert theme.STAGES is P.STAGES
    try:
        for name in ("night", "day"):
            theme.use(name)
            for key, value in P.palette(name).items():
                assert getattr(theme, key) == value, key
            assert theme.ALARM == P.SIGNALS["alarm"] and theme.OK == P.SIGNALS["ready"]
    finally:
        theme.use("day")
    assert theme.rgba(P.SIGNALS["alarm"], 0.5) == "rgba({}, {}, {}, 0.5)".format(
        *P.rgb(P.SIGNALS["alarm"]))
    assert theme.rgba("#0a0b0c", 1) == "rgba(10, 11, 12, 1)"
    assert theme.rgba("#0a0b0c", 0.125) == "rgba(10, 11, 12, 0.125)"


def test_the_heat_ramp_is_the_palette_s():
    from situation import heat
    assert heat.HEAT_STOPS is P.HEAT_RAMP


@pytest.mark.parametrize("name", sorted(P.CHROME))
def test_the_map_page_gets_every_colour_as_json(name):
    data = json.loads(P.as_json(name))
    assert data["signals"] == P.SIGNALS and data["stages"] == P.STAGES
    assert data["chrome"] == P.CHROME[name] and data["palette"] == name
    assert data["heat"] == [[p, c, a] for p, c, a in P.HEAT_RAMP]
    assert data["coverage"] == [[p, c] for p, c in P.COVERAGE_RAMP]
    assert data["names"] == P.palette(name)
    with pytest.raises(KeyError):
        P.as_json("dusk")

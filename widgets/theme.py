"""The command-center look: dark, high contrast, large type, one palette for every panel.

Read from five metres: body text 20 px, numbers that matter 28–64 px (the header's figures
64 px, the overdue figure 88 px, on a 1080p screen; ``screen_scale`` keeps their physical size
on larger screens), and colour only where it means something (red overdue/alarm/down, amber
warning/due soon, green up/available). Two palettes, day and night (dimmed), the same meanings.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QFontDatabase, QPalette
from PySide6.QtWidgets import QApplication, QLabel

from situation import palette as _palette

# Two palettes with the same meanings: "day" (the default) and "night", a dimmed one for the
# quiet hours (lower luminance backgrounds and text). The colours themselves — and what each
# means — are defined in ``situation.palette`` (the one place); the signal colours (ALARM, WARN,
# READY, URGENT, BUSY, ON_SCENE, IDLE, CASE, SENSOR; OK = READY) are the same in both. A layout
# chooses its palette (``palette = "night"`` in the layout file); ``use(name)`` switches this
# module's names, so everything built or redrawn afterwards reads the chosen one.
PALETTES: dict[str, dict[str, str]] = {name: _palette.palette(name) for name in _palette.CHROME}
DEFAULT_PALETTE = "day"
current = DEFAULT_PALETTE           # the palette this module's names hold now
STAGES = _palette.STAGES            # case stage → colour, early (light) → late (deep)

# The names the widgets read (``theme.TEXT``, ``theme.ALARM``…): the day palette's until
# ``use(name)`` rewrites them.
globals().update(PALETTES[DEFAULT_PALETTE])

FAMILIES = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei",
            "Microsoft YaHei", "PingFang SC")

BASE_PX = 20


def family() -> str:
    """The first CJK font this machine has (Latin glyphs come from it too, so they match)."""
    have = set(QFontDatabase.families())
    for name in FAMILIES:
        if name in have:
            return name
    return QFont().defaultFamily()


def font(px: int = BASE_PX, bold: bool = False, mono_digits: bool = False) -> QFont:
    f = QFont(family())
    f.setPixelSize(px)
    f.setBold(bold)
    if mono_digits:        # countdowns must not jitter as digits change
        f.setFeature(QFont.Tag("tnum"), 1)
    return f


def style() -> str:
    """The application style sheet in the palette in use."""
    return f"""
    QWidget {{ background: {BG}; color: {TEXT}; }}
    QFrame#panel {{ background: {PANEL}; border: 1px solid {PANEL_EDGE}; border-radius: 6px; }}
    QLabel#panelTitle {{ background: transparent; color: {ACCENT}; font-weight: bold; }}
    QLabel#panelSummary {{ background: transparent; color: {MUTED}; }}
    QLabel {{ background: transparent; }}
    QTableView {{ background: {PANEL}; alternate-background-color: {ALT_ROW};
                 gridline-color: {GRID}; border: none; selection-background-color: {SELECTION};
                 selection-color: {TEXT}; }}
    QHeaderView::section {{ background: {HEADER}; color: {MUTED}; border: none;
                            border-bottom: 1px solid {PANEL_EDGE}; padding: 4px 8px; }}
    QScrollBar:vertical {{ background: {PANEL}; width: 10px; }}
    QScrollBar::handle:vertical {{ background: {PANEL_EDGE}; border-radius: 4px;
                                   min-height: 30px; }}
    QScrollBar::add-line, QScrollBar::sub-line {{ height: 0; }}
    """


STYLE = style()


def label(text: str, px: int, colour: str | None = None, bold: bool = False,
          align=Qt.AlignLeft | Qt.AlignVCenter) -> QLabel:
    """A plain label in the wall's type: figures in even-width digits, so they do not jump.
    ``colour`` defaults to the palette's text colour (the one in use when it is made)."""
    lab = QLabel(text)
    lab.setFont(font(px, bold=bold, mono_digits=True))
    lab.setStyleSheet(f"color: {colour or TEXT}; background: transparent;")
    lab.setAlignment(align)
    return lab


def use(name: str) -> bool:
    """Make ``name`` (a key of PALETTES) the palette this module's colour names hold; the
    style sheet follows. Widgets made or redrawn afterwards read it. True when it changed."""
    global current, STYLE
    if name not in PALETTES:
        raise ValueError(f"no palette {name!r} (palettes: {', '.join(PALETTES)})")
    changed = name != current
    globals().update(PALETTES[name])
    current = name
    STYLE = style()
    return changed


_themed_apps: set[int] = set()      # the applications apply_theme dressed (ids)


def _dress(app: QApplication) -> None:
    pal = QPalette()
    for role, colour in ((QPalette.Window, BG), (QPalette.Base, PANEL),
                         (QPalette.AlternateBase, ALT_ROW), (QPalette.Text, TEXT),
                         (QPalette.WindowText, TEXT), (QPalette.Button, PANEL),
                         (QPalette.ButtonText, TEXT), (QPalette.Highlight, SELECTION),
                         (QPalette.HighlightedText, TEXT), (QPalette.ToolTipBase, PANEL),
                         (QPalette.ToolTipText, TEXT)):
        pal.setColor(role, QColor(colour))
    app.setPalette(pal)
    app.setStyleSheet(STYLE)


def apply_theme(app: QApplication, palette: str = DEFAULT_PALETTE) -> None:
    """The wall's look on the whole application, in ``palette`` (day unless told)."""
    use(palette)
    app.setStyle("Fusion")
    app.setFont(font(BASE_PX))
    _dress(app)
    _themed_apps.add(id(app))


def choose_palette(name: str | None) -> None:
    """The palette a layout asks for (None: the day's), on this module and — when the wall's
    look was applied to the application — on the application's palette and style sheet."""
    changed = use(name or DEFAULT_PALETTE)
    app = QApplication.instance()
    if changed and app is not None and id(app) in _themed_apps:
        _dress(app)


def rgba(colour: str, alpha: float) -> str:
    """A CSS colour with opacity, "rgba(r, g, b, a)", from a palette's "#rrggbb" and an alpha
    0–1 (for style sheets and the map page; pyqtgraph has ``widgets.charts.rgba``)."""
    r, g, b = _palette.rgb(colour)
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha {alpha!r} is not within 0–1")
    return f"rgba({r}, {g}, {b}, {alpha:g})"


def luminance(colour: str) -> float:
    """Relative luminance (WCAG 2) of a "#rrggbb" colour: 0 black … 1 white."""
    c = QColor(colour)

    def lin(v: float) -> float:
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4
    return 0.2126 * lin(c.redF()) + 0.7152 * lin(c.greenF()) + 0.0722 * lin(c.blueF())


REFERENCE_HEIGHT = 1080     # type sizes are given for a 1080p screen (96 logical dpi)
REFERENCE_WIDTH = 1920
REFERENCE_DPI = 96.0


def screen_scale(screen) -> float:
    """How much larger than on a 1080p screen the wall's type must be on ``screen`` (a
    QScreen) to have the same physical size: by the screen's logical size (a 4K screen at a
    device pixel ratio of 1 has twice the logical pixels) or its logical DPI (one that reports
    more than 96), whichever says more — never both, and never less than 1 (on a small screen
    the type keeps its 1080p size). Qt's own high-DPI scaling (a 4K screen at ratio 2) already
    gives 1920×1080 logical pixels: 1."""
    if screen is None:
        return 1.0
    geo = screen.geometry()
    by_size = min(geo.width() / REFERENCE_WIDTH, geo.height() / REFERENCE_HEIGHT)
    by_dpi = screen.logicalDotsPerInchY() / REFERENCE_DPI
    return round(max(1.0, min(3.0, max(by_size, by_dpi))), 3)

"""The command-center look: dark, high contrast, large type, one palette for every panel.

Read from five metres: body text 20 px, numbers that matter 28–64 px, and colour only where it
means something (red overdue/alarm/down, amber warning/due soon, green up/available).
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QFontDatabase, QPalette
from PySide6.QtWidgets import QApplication, QLabel

BG = "#070d1a"
PANEL = "#0d1729"
PANEL_EDGE = "#1d3154"
HEADER = "#0a1326"
TEXT = "#e8eef8"
MUTED = "#8393ad"
DIM = "#4d5b73"
ACCENT = "#38bdf8"
OK = "#22c55e"
WARN = "#f59e0b"
ALARM = "#ef4444"
ALARM_BG = "#4a1218"
WARN_BG = "#3d2e0a"
GRID = "#16243d"

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


STYLE = f"""
QWidget {{ background: {BG}; color: {TEXT}; }}
QFrame#panel {{ background: {PANEL}; border: 1px solid {PANEL_EDGE}; border-radius: 6px; }}
QLabel#panelTitle {{ background: transparent; color: {ACCENT}; font-weight: bold; }}
QLabel#panelSummary {{ background: transparent; color: {MUTED}; }}
QLabel {{ background: transparent; }}
QTableView {{ background: {PANEL}; alternate-background-color: #101c31; gridline-color: {GRID};
             border: none; selection-background-color: #1e3a64; selection-color: {TEXT}; }}
QHeaderView::section {{ background: {HEADER}; color: {MUTED}; border: none;
                        border-bottom: 1px solid {PANEL_EDGE}; padding: 4px 8px; }}
QScrollBar:vertical {{ background: {PANEL}; width: 10px; }}
QScrollBar::handle:vertical {{ background: {PANEL_EDGE}; border-radius: 4px; min-height: 30px; }}
QScrollBar::add-line, QScrollBar::sub-line {{ height: 0; }}
"""


def label(text: str, px: int, colour: str = TEXT, bold: bool = False,
          align=Qt.AlignLeft | Qt.AlignVCenter) -> QLabel:
    """A plain label in the wall's type: figures in even-width digits, so they do not jump."""
    lab = QLabel(text)
    lab.setFont(font(px, bold=bold, mono_digits=True))
    lab.setStyleSheet(f"color: {colour}; background: transparent;")
    lab.setAlignment(align)
    return lab


def apply_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    app.setFont(font(BASE_PX))
    pal = QPalette()
    for role, colour in ((QPalette.Window, BG), (QPalette.Base, PANEL),
                         (QPalette.AlternateBase, "#101c31"), (QPalette.Text, TEXT),
                         (QPalette.WindowText, TEXT), (QPalette.Button, PANEL),
                         (QPalette.ButtonText, TEXT), (QPalette.Highlight, "#1e3a64"),
                         (QPalette.HighlightedText, TEXT), (QPalette.ToolTipBase, PANEL),
                         (QPalette.ToolTipText, TEXT)):
        pal.setColor(role, QColor(colour))
    app.setPalette(pal)
    app.setStyleSheet(STYLE)

"""The shift handover summary on the wall and on paper (situation/handover.py computes it).

One HTML body serves both: on the wall in large type on the dark theme, in a panel over the
first window that stays until someone closes it (Esc, the close button, a click beside the
panel) or its time on the situation's clock runs out; on paper through Qt's own PDF writer
(QPdfWriter, in QtGui), black on white. The summary is a snapshot of the handover moment:
it does not change while it is up, so the PDF says what the screen said.
"""
from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMarginsF, QSaveFile, Qt, Signal
from PySide6.QtGui import QFont, QPageLayout, QPageSize, QPdfWriter, QTextDocument
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QPushButton, QTextBrowser,
                               QVBoxLayout)

from situation import palette
from situation.catalog import category_name, district_name, sensor_kind_name
from situation.handover import Handover, Listed, ShiftSpan
from widgets import theme
from widgets.i18n import STRINGS, tr
from widgets.format import hm, number
from widgets.supervision import figure

SHOW_MS = 15 * 60_000       # on the situation's clock: a handover briefing, then the wall
# Paper: Latin text from a TrueType face, Chinese from the wall's CJK family. Qt's PDF writer
# gets the text layer of the CJK (CFF) font's Latin glyphs wrong — digits print right but copy
# and search as junk — so case numbers would not be findable in the PDF.
PAPER_LATIN = ("DejaVu Sans", "Liberation Sans", "Arial")


class Look(NamedTuple):
    """Colours and type sizes (px) of one rendering."""
    text: str
    muted: str
    accent: str
    tile: str
    big: int                 # the figures
    label: int               # under the figures
    head: int                # list headings
    body: int                # list rows


def screen_look() -> Look:
    """The wall's look in the palette in use (day or night)."""
    return Look(theme.TEXT, theme.MUTED, theme.ACCENT, theme.TILE, 56, 21, 29, 24)


SCREEN = screen_look()          # the day's; the panel asks screen_look() when it is made
PAPER = Look(palette.PAPER["TEXT"], palette.PAPER["MUTED"], palette.PAPER["ACCENT"],
             palette.PAPER["PANEL"], 26, 11, 15, 12)


# ---- words -----------------------------------------------------------------------------------
def clock(ms: int, tz: str, fmt: str = "%H:%M") -> str:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).strftime(fmt)


def span_text(span: ShiftSpan, lang: str, tz: str) -> str:
    """白班 08:00–16:00 (a shift ending at midnight ends at 24:00, as the schedule says)."""
    end = clock(span.end_ms, tz)
    end = "24:00" if end == "00:00" and span.end_ms > span.start_ms else end
    name = span.title_zh if lang == "zh" else span.name
    if not name:
        hours = round((span.end_ms - span.start_ms) / 3_600_000)
        name = tr("ho.last_hours", lang, h=hours)
    return f"{name} {clock(span.start_ms, tz)}–{end}"


def shifts_line(h: Handover, lang: str, tz: str) -> str:
    text = span_text(h.ending, lang, tz)
    if h.now_ms < h.ending.end_ms:
        text += tr("ho.so_far", lang, t=clock(h.now_ms, tz))
    if h.starting is not None:
        text += f"  →  {tr('ho.next', lang)} {span_text(h.starting, lang, tz)}"
    return text


def _colour(c: str, look: Look) -> str:
    """widgets.supervision colours are for the dark wall; on paper TEXT/DIM become ink."""
    return {theme.TEXT: look.text, theme.DIM: look.muted}.get(c, c)


def tiles(h: Handover, lang: str) -> list[tuple[str, str, str]]:
    """(figure, label, colour) for the row of key figures."""
    k = h.kpis

    def rate(key: str, label: str) -> tuple[str, str, str]:
        text, colour = figure(k, key, lang)      # "暂无 (1 件)" in DIM over too few cases
        return text, label, colour

    return [
        (str(h.open), tr("ho.open", lang), theme.TEXT),
        (str(h.overdue), tr("ho.overdue", lang), theme.ALARM if h.overdue else theme.OK),
        (str(h.new_cases), tr("ho.new", lang), theme.TEXT),
        (f"{k.closed}/{k.due_to_close}", tr("ho.closed", lang), theme.TEXT),
        rate("close", tr("sup.k.close", lang)),
        rate("on_time", tr("sup.k.on_time", lang)),
        rate("fast", tr("sup.k.fast", lang)),
        rate("scene", tr("sup.k.scene", lang) + " " + tr("sup.unit.min", lang)),
        rate("rework", tr("sup.k.rework", lang)),
    ]


def _red(text: str) -> str:
    return f"<span style='color:{theme.ALARM}'>{text}</span>"


def late_row(c, lang: str) -> tuple[str, ...]:
    return (f"<b>{html.escape(c.case_id)}</b>", html.escape(category_name(c.category, lang)),
            html.escape(district_name(c.district, lang)), _red(hm(c.late_ms, lang)))


def alarm_row(a, lang: str) -> tuple[str, ...]:
    key = f"ho.metric.{a.metric}"            # a metric without words: its key
    metric = tr(key, lang) if key in STRINGS else a.metric
    peak = f"{metric} {number(a.peak)}/{number(a.alarm_at)}"
    return (f"<b>{html.escape(a.sensor_id)}</b>",
            f"{sensor_kind_name(a.kind, lang)} {html.escape(district_name(a.district, lang))}",
            _red(peak) if a.still else peak, tr("ho.times", lang, n=a.readings))


def escalated_row(e, lang: str, tz: str) -> tuple[str, ...]:
    return (clock(e.at_ms, tz), f"<b>{html.escape(e.case_id)}</b>",
            html.escape(category_name(e.category, lang)))


def refused_row(r, lang: str, tz: str) -> tuple[str, ...]:
    return (clock(r.at_ms, tz), html.escape(r.reason),
            f"{html.escape(r.unit_id)} → {html.escape(r.case_id or '—')}")


# ---- the HTML body -----------------------------------------------------------------------------
def _list(title: str, listed: Listed, row, lang: str, look: Look, note: str = "",
          words: int = 1) -> str:
    """A heading over a table, one row an item (only column ``words`` may wrap); "none" or
    "and N more" in muted type below."""
    pad = look.body // 3

    def td(k: int, cell: str) -> str:
        wrap = "" if k == words else " white-space:nowrap;"
        return f"<td style='padding:0 {pad}px {pad}px 0;{wrap}'>{cell}</td>"
    rows = "".join("<tr>" + "".join(td(k, c) for k, c in enumerate(row(x))) + "</tr>"
                   for x in listed.items)
    quiet = ([tr("ho.none", lang)] if not listed.items else []) + (
        [tr("ho.more", lang, n=listed.more)] if listed.more else [])
    note = f" <span style='color:{look.muted}; font-size:{look.label}px'>{note}</span>" \
        if note else ""
    return (f"<p style='color:{look.accent}; font-size:{look.head}px; font-weight:bold;"
            f" margin:0 0 {pad}px 0'>{html.escape(title)}{note}</p>"
            + (f"<table width='100%' cellspacing='0' cellpadding='0'"
               f" style='font-size:{look.body}px'>"
               f"{rows}</table>" if rows else "")
            + "".join(f"<p style='color:{look.muted}; font-size:{look.body}px; margin:0'>{q}"
                      "</p>" for q in quiet))


def body_html(h: Handover, lang: str, tz: str, look: Look) -> str:
    cells = "".join(
        f"<td align='center' style='background-color:{look.tile}; padding:{look.label // 2}px'>"
        f"<span style='font-size:{look.big}px; font-weight:bold; color:{_colour(c, look)}'>"
        f"{html.escape(v)}</span><br><span style='font-size:{look.label}px;"
        f" color:{look.muted}'>{html.escape(label)}</span></td>"
        for v, label, c in tiles(h, lang))
    figures = (f"<table width='100%' cellspacing='{look.label // 2}' cellpadding='0'>"
               f"<tr>{cells}</tr></table>")
    sensors = tr("ho.sensors_n", lang, n=h.sensors_in_alarm) if h.sensors_in_alarm else ""
    sensors += f" · {tr('ho.peak_of', lang)}" if h.alarms.items else ""
    lists = [
        _list(tr("ho.late_list", lang), h.late, lambda c: late_row(c, lang), lang, look),
        _list(tr("ho.alarms", lang), h.alarms, lambda a: alarm_row(a, lang), lang, look,
              sensors),
        _list(tr("ho.escalated", lang), h.escalated, lambda e: escalated_row(e, lang, tz),
              lang, look, words=2)
        + "<br>" +
        _list(tr("ho.refused", lang), h.refused, lambda r: refused_row(r, lang, tz), lang,
              look),
    ]
    gap = look.label
    columns = "".join(f"<td width='{w}%' valign='top' style='padding-right:{gap}px'>{x}</td>"
                      for w, x in zip((36, 34, 30), lists))
    return (f"<div style='color:{look.text}'>{figures}<br>"
            f"<table width='100%' cellspacing='0' cellpadding='0'><tr>{columns}</tr></table>"
            "</div>")


def page_html(h: Handover, lang: str, tz: str) -> str:
    """The whole page for paper: title, shifts, the body, when it was made."""
    look = PAPER
    made = tr("ho.generated", lang, t=clock(h.now_ms, tz, "%Y-%m-%d %H:%M:%S"))
    return (f"<p style='font-size:{look.big}px; font-weight:bold; color:{look.text};"
            f" margin:0'>{tr('ho.title', lang)} · {tr('title', lang)}</p>"
            f"<p style='font-size:{look.head}px; color:{look.accent}; margin:4px 0 0 0'>"
            f"{html.escape(shifts_line(h, lang, tz))}</p>"
            f"<p style='font-size:{look.label}px; color:{look.muted}; margin:2px 0 12px 0'>"
            f"{made}</p>" + body_html(h, lang, tz, look))


# ---- PDF -------------------------------------------------------------------------------------
def pdf_bytes(h: Handover, lang: str = "zh", tz: str = "Asia/Shanghai") -> bytes:
    """The summary as an A4 PDF, fonts embedded (the CJK family the wall uses)."""
    doc = QTextDocument()
    font = QFont()
    font.setFamilies([*PAPER_LATIN, theme.family()])
    font.setPixelSize(PAPER.body)
    doc.setDefaultFont(font)
    doc.setDocumentMargin(0)
    doc.setHtml(page_html(h, lang, tz))
    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.WriteOnly)
    writer = QPdfWriter(buf)
    writer.setResolution(96)             # so the px sizes above are screen-sized on paper
    writer.setPageSize(QPageSize(QPageSize.A4))
    writer.setPageOrientation(QPageLayout.Landscape)     # three columns of lists
    writer.setPageMargins(QMarginsF(12, 12, 12, 12), QPageLayout.Millimeter)
    writer.setTitle(f"{tr('ho.title', lang)} {shifts_line(h, lang, tz)}")
    writer.setCreator("CityWall")
    doc.print_(writer)                   # paints and ends: the PDF is complete in data
    del writer
    buf.close()
    return bytes(data)


def write_pdf(h: Handover, path: str | Path, lang: str = "zh",
              tz: str = "Asia/Shanghai") -> Path:
    """Write atomically — Qt's QSaveFile writes beside the target and renames it over on
    commit, as situation/atomic.py does — so a failed write leaves any old file whole.
    Raises OSError with a reason a person can read."""
    data = pdf_bytes(h, lang, tz)
    if not data.startswith(b"%PDF"):
        raise OSError("Qt's PDF writer produced no PDF")
    out = QSaveFile(str(path))
    if not out.open(QIODevice.WriteOnly):
        raise OSError(out.errorString())
    if out.write(data) != len(data) or not out.commit():
        reason = out.errorString()
        out.cancelWriting()
        raise OSError(reason)
    return Path(path)


def pdf_name(h: Handover, tz: str = "Asia/Shanghai") -> str:
    return f"citywall-handover-{clock(h.now_ms, tz, '%Y%m%d-%H%M')}-{h.ending.name or 'last'}.pdf"


# ---- on the wall -------------------------------------------------------------------------------
class HandoverView(QFrame):
    """Over a wall window's panels (its header stays in view): the summary in large type.
    Nothing modal: the wall keeps running behind it."""

    dismissed = Signal()
    export_asked = Signal()

    def __init__(self, h: Handover, lang: str, tz: str, until_ms: int, parent=None):
        super().__init__(parent)
        self.handover, self.until_ms = h, until_ms
        self.setObjectName("handover")
        self.setAttribute(Qt.WA_StyledBackground, True)
        self.setStyleSheet(f"QFrame#handover {{ background: {theme.BG}; }}"
                           f" QFrame#handoverCard {{ background: {theme.PANEL};"
                           f" border: 3px solid {theme.ACCENT}; border-radius: 10px; }}"
                           f" QPushButton {{ background: {theme.HEADER}; color: {theme.TEXT};"
                           f" border: 2px solid {theme.PANEL_EDGE}; border-radius: 6px;"
                           " padding: 10px 28px; }"
                           f" QPushButton:hover {{ border-color: {theme.ACCENT}; }}")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(28, 20, 28, 20)
        self.card = QFrame()
        self.card.setObjectName("handoverCard")
        outer.addWidget(self.card)
        lay = QVBoxLayout(self.card)
        lay.setContentsMargins(32, 22, 32, 18)
        lay.setSpacing(10)
        top = QHBoxLayout()
        title = QLabel(tr("ho.title", lang))
        title.setFont(theme.font(46, bold=True))
        title.setStyleSheet(f"color: {theme.TEXT}; background: transparent;")
        self.shifts = QLabel(shifts_line(h, lang, tz))
        self.shifts.setFont(theme.font(34, bold=True, mono_digits=True))
        self.shifts.setStyleSheet(f"color: {theme.ACCENT}; background: transparent;")
        top.addWidget(title)
        top.addSpacing(28)
        top.addWidget(self.shifts, 1)
        self.export_button = QPushButton(tr("ho.export", lang))
        self.close_button = QPushButton(tr("ho.close", lang) + " (Esc)")
        for b in (self.export_button, self.close_button):
            b.setFont(theme.font(24, bold=True))
            b.setFocusPolicy(Qt.NoFocus)       # Esc and the wall's keys stay the window's
            top.addWidget(b)
        self.export_button.clicked.connect(self.export_asked)
        self.close_button.clicked.connect(self.dismissed)
        lay.addLayout(top)
        self.text = QTextBrowser()
        self.text.setFrameShape(QFrame.NoFrame)
        self.text.setFocusPolicy(Qt.NoFocus)
        self.text.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.text.setStyleSheet(f"background: {theme.PANEL}; color: {theme.TEXT};")
        look = screen_look()
        self.text.document().setDefaultFont(theme.font(look.body))
        self.text.setHtml(body_html(h, lang, tz, look))
        lay.addWidget(self.text, 1)
        hint = QLabel(tr("ho.hint", lang, t=clock(until_ms, tz)) + " · " +
                      tr("ho.generated", lang, t=clock(h.now_ms, tz, "%H:%M:%S")))
        hint.setFont(theme.font(20))
        hint.setStyleSheet(f"color: {theme.MUTED}; background: transparent;")
        lay.addWidget(hint)

    def mousePressEvent(self, event) -> None:
        """A click beside the summary puts it away; a click on it does nothing."""
        if not self.card.geometry().contains(event.position().toPoint()):
            self.dismissed.emit()
        event.accept()

    def expired(self, now_ms: int) -> bool:
        return now_ms >= self.until_ms

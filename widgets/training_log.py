"""The trainee's orders (学员指令): every order the training exercise served, newest first —
when, what, which unit, which case, and what became of it: accepted (and where the case or the
recalled unit stands now) or refused, with the reason in the live service's words.

Read at every refresh from the exercise's own log (``situation.training.Exercise.log``) and
the situation, never copied: the panel shows what the exercise decided, which is what the
debrief will say. Type for a trainee four metres away: 26 px rows, 24 px headers. Two rows an
order: the order, then its outcome across the whole width (a reason is long; a narrow column
would cut it). The exercise is given by the transport (``ui.transport.attach_transport``);
outside training the panel says it shows nothing.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import re

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QHeaderView

from situation.catalog import CASE_STAGES, UNIT_STATUSES, stage_name, unit_status_name
from situation.store import Change
from widgets import theme
from widgets.i18n import tr
from widgets.panel import Cell, TablePanel

CITY_TZ = ZoneInfo("Asia/Shanghai")
ROW_PX = 26                 # the orders and their outcomes
HEAD_PX = 24                # the column names and the summary
SHOWN = 100                 # the newest this many orders (a day's exercise has dozens)
PAD_PX = 12                 # a cell's padding, left and right together
KIND = {"dispatch": "tl.dispatch", "recall": "tl.recall"}
# The service's words name statuses by their codes ("当前状态为 off_duty"): in the trainee's
# panel they read as the wall names them ("下班", "off duty"). A unit's first: "dispatched" in
# a reason is the unit's (已派遣) more often than the case's.
STATUS_WORDS = {"zh": {"stale": tr("stale", "zh"), **{k: v[0] for k, v in CASE_STAGES.items()},
                       **{k: v[0] for k, v in UNIT_STATUSES.items()}},
                "en": {"stale": tr("stale", "en"),
                       **{k: v[1].lower() for k, v in CASE_STAGES.items()},
                       **{k: v[1].lower() for k, v in UNIT_STATUSES.items()}}}
_STATUS = re.compile(r"\b(" + "|".join(sorted(STATUS_WORDS["zh"], key=len, reverse=True))
                     + r")\b")


def reason_words(reason: str | None, lang: str) -> str:
    """The words of a service reason ``"code: English / 中文"`` in one language (the whole
    text when it is not in that form), status codes in the wall's words (off_duty: 下班, off
    duty)."""
    if not reason:
        return ""
    code, sep, rest = reason.partition(": ")
    en, slash, zh = (rest if sep else reason).rpartition(" / ")
    if not slash:
        return reason
    words = STATUS_WORDS["zh" if lang == "zh" else "en"]
    return _STATUS.sub(lambda m: words[m[1]], zh if lang == "zh" else en)


class TrainingLog(TablePanel):
    name = "training_log"
    columns = ("tl.time", "tl.order", "tl.unit", "tl.case")
    priority = ("tl.order", "tl.unit", "tl.case", "tl.time")
    stretch_column = 3
    exercise = None           # situation.training.Exercise (set by the transport in TRAINING)
    table_px = ROW_PX
    header_px = HEAD_PX

    def __init__(self, situation, lang="zh", parent=None):
        super().__init__(situation, lang, parent)
        t = self.table
        self.row_px = max(round(ROW_PX * 1.6), QFontMetrics(self.model._bold).height() + 10)
        t.verticalHeader().setDefaultSectionSize(self.row_px)
        t.verticalHeader().setMinimumSectionSize(self.row_px)
        t.setTextElideMode(Qt.ElideLeft)       # a long case id keeps its distinguishing end
        t.setWordWrap(True)                    # an outcome wraps over as many lines as it needs
        t.setAlternatingRowColors(False)       # an order's two rows read as one
        t.setVerticalScrollMode(t.ScrollMode.ScrollPerPixel)
        self.model._bold = theme.font(ROW_PX, bold=True)
        self.summary.setFont(theme.font(HEAD_PX))
        # The time column as wide as a time (its outcome row, spanning, must not widen it).
        head = t.horizontalHeader()
        head.setSectionResizeMode(0, QHeaderView.Fixed)
        t.setColumnWidth(0, QFontMetrics(t.font()).horizontalAdvance("00:00:00") + 2 * PAD_PX)

    def refresh(self) -> None:
        super().refresh()
        self.fit_rows()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.fit_rows()

    def fit_rows(self) -> None:
        """Each outcome row as tall as its words, wrapped across the table's width."""
        t, m = self.table, self.model
        width = max(60, t.viewport().width() - PAD_PX)
        fm = QFontMetrics(m._bold)
        for row, key in enumerate(m.keys):
            if key.endswith("/outcome"):
                text = m.rows[row][0].text
                high = fm.boundingRect(0, 0, width, 100_000, Qt.TextWordWrap, text).height()
                if t.rowHeight(row) != max(self.row_px, high + 10):
                    t.setRowHeight(row, max(self.row_px, high + 10))

    def on_changed(self, change: Change) -> None:
        self.dirty = True

    def spans(self, keys: list[str]) -> dict[int, tuple[int, int]]:
        """Each order's outcome row runs the whole width."""
        return {i: (0, len(self.columns)) for i, k in enumerate(keys) if k.endswith("/outcome")}

    def derive(self, now: int):
        ex = self.exercise
        if ex is None:
            return [], [], tr("tl.no_exercise", self.lang)
        log = ex.log
        keys, rows = [], []
        for i in range(len(log) - 1, max(-1, len(log) - 1 - SHOWN), -1):
            e = log[i]
            ok = e.get("result") == "accepted"
            colour = theme.READY if ok else theme.ALARM
            kind = KIND.get(e.get("type"))
            unit = e.get("callsign") or e.get("unit_id") or "—"
            case = e.get("case_id") or "—"
            when = datetime.fromtimestamp(e["t_ms"] / 1000, CITY_TZ).strftime("%H:%M:%S")
            keys.append(f"{i}")
            rows.append([Cell(when, theme.MUTED),
                         Cell(tr(kind, self.lang) if kind else tr("tl.malformed", self.lang),
                              bold=True),
                         Cell(unit, bold=True, tip=e.get("unit_id")),
                         Cell(case, tip=self._case_tip(case))])
            outcome = tr("tl.accepted" if ok else "tl.rejected", self.lang)
            words = self._progress(e) if ok else reason_words(e.get("reason"), self.lang)
            sep = "：" if self.lang == "zh" else ": "
            text = outcome + (sep + words if words else "")
            keys.append(f"{i}/outcome")
            rows.append([Cell(text, colour, bold=True, tip=e.get("reason") or text),
                         Cell(""), Cell(""), Cell("")])
        refused = sum(1 for e in log if e.get("result") != "accepted")
        summary = (tr("tl.summary", self.lang, n=len(log), k=refused) if log
                   else tr("tl.none", self.lang))
        return keys, rows, summary

    def _progress(self, e: dict) -> str:
        """Where an accepted order stands now, from the situation: the case's stage after a
        dispatch, the unit's status after a recall."""
        st = self.situation
        if e.get("type") == "dispatch":
            case = st.cases.get(e.get("case_id") or "")
            return tr("tl.case_now", self.lang, stage=stage_name(case.status, self.lang)) \
                if case is not None else ""
        unit = st.units.get(e.get("unit_id") or "")
        if unit is None:
            return ""
        return tr("tl.unit_now", self.lang, unit=unit.callsign,
                  status=unit_status_name(unit.status, self.lang))

    def _case_tip(self, case_id: str) -> str | None:
        case = self.situation.cases.get(case_id)
        return f"{case_id} · {case.title}" if case is not None else None

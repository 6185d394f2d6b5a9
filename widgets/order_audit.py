"""Order audit (指令记录): every order this console sent and what became of it — sent, by
whom to where, the service's answer and reason, resends — newest first. The service's SQLite
file holds every console's orders; this is the console's own account."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from situation.store import Change
from widgets import theme
from widgets.format import hm
from widgets.panel import Cell, TablePanel

CITY_TZ = ZoneInfo("Asia/Shanghai")
STATE = {"pending": ("待确认", "pending", theme.ACCENT), "acked": ("已受理", "accepted", theme.ACCENT),
         "done": ("已执行", "done", theme.OK), "rejected": ("未接受", "refused", theme.ALARM),
         "unconfirmed": ("未确认", "unconfirmed", theme.ALARM)}
KIND = {"dispatch": ("派遣", "dispatch"), "recall": ("召回", "recall")}
WORDS = {"col.time": ("时间", "Time"), "col.order": ("指令", "Order"), "col.case": ("案件", "Case"),
         "col.unit": ("单元", "Unit"), "col.state": ("结果", "Outcome"),
         "col.reason": ("原因", "Reason"), "col.took": ("用时", "Took"),
         "title": ("指令记录", "Order audit"), "none": ("本席位尚未发出指令", "No orders from this console yet")}


class OrderAudit(TablePanel):
    name = "order_audit"
    columns = ("col.time", "col.order", "col.case", "col.unit", "col.state", "col.took",
               "col.reason")
    stretch_column = 6
    orders = None            # the console's DispatchController (set by the wall)

    def __init__(self, situation, lang="zh", parent=None):
        super().__init__(situation, lang, parent)
        zh = lang == "zh"
        self.title.setText(WORDS["title"][0 if zh else 1])
        self.model.headers = [WORDS[c][0 if zh else 1] for c in self.columns]

    def on_changed(self, change: Change) -> None:
        self.dirty = True

    def derive(self, now: int):
        zh = self.lang == "zh"
        orders = sorted(self.orders.orders.values() if self.orders else [],
                        key=lambda o: -o.sent_ms)
        keys, rows = [], []
        for o in orders:
            unit = self.situation.units.get(o.unit_id)
            word_zh, word_en, colour = STATE.get(o.state, (o.state, o.state, theme.MUTED))
            took = hm(o.answered_ms - o.sent_ms, self.lang) if o.answered_ms else "—"
            resent = (f" · 重发 {o.resent}" if zh else f" · resent {o.resent}") if o.resent else ""
            keys.append(o.order_id)
            rows.append([
                Cell(datetime.fromtimestamp(o.sent_ms / 1000, CITY_TZ).strftime("%H:%M:%S"),
                     theme.MUTED),
                Cell(KIND.get(o.kind, (o.kind, o.kind))[0 if zh else 1]),
                Cell(o.case_id or "—"),
                Cell(unit.callsign if unit else o.unit_id, bold=True),
                Cell((word_zh if zh else word_en) + resent, colour, bold=True),
                Cell(took, theme.MUTED),
                Cell(o.reason or "", theme.ALARM if o.reason else None, tip=o.reason),
            ])
        summary = "" if orders else WORDS["none"][0 if zh else 1]
        return keys, rows, summary

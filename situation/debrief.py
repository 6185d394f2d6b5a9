"""The training debrief (培训讲评) as one self-contained HTML page: for a classroom, on a
projector or printed — light, black on white, tables that break cleanly across pages, no
script, no image, no network.

Everything shown comes from ``Exercise.debrief()``. Case titles come from citizens and are
untrusted: every text on the page goes through ``public_map.html_text`` (markup shown as
text). The page is written atomically; a failed write is an ``OSError`` naming the file.
No Qt.
"""
from __future__ import annotations

import os
from datetime import datetime

from situation.atomic import write_text_atomic
from situation.catalog import category_name, district_name, stage_name
from situation.palette import PAPER
from situation.public_map import CITY_TZ, html_text

TEXT = {
    "zh": {
        "title": "培训讲评", "console": "学员席位", "window": "演练时段",
        "totals": "总体", "cases_h": "案件逐一讲评", "kpis_h": "演练时段考核指标",
        "log_h": "操作记录", "none": "—", "yes": "是", "no": "否", "min": "分",
        "t_cases": "案件数", "t_dispatched": "已派遣", "t_fast": "5分钟内派遣",
        "t_nearest": "派最近单元", "t_overdue": "超期", "t_overdue_start": "开始时已超期",
        "t_orders": "指令数", "t_rejected": "被拒指令",
        "c_case": "案件", "c_title": "标题", "c_category": "类别", "c_district": "区",
        "c_appeared": "出现", "c_dispatched": "派遣", "c_after": "用时", "c_unit": "派遣单元",
        "c_nearest": "最近可用单元", "c_is_nearest": "最近", "c_overdue": "超期",
        "c_status": "当前环节", "c_rejected": "被拒", "at_start": "（开始时在办）",
        "k_open": "在办", "k_overdue": "超期", "k_dispatched": "派遣", "k_fast": "5分钟派遣率",
        "k_scene": "派遣→到场（分钟）", "k_due": "应结案数", "k_closed": "结案数",
        "k_close_rate": "结案率", "k_on_time": "按期结案率", "k_rework": "返工率",
        "l_time": "时间", "l_type": "指令", "l_result": "结果", "l_reason": "原因",
        "accepted": "接受", "rejected": "拒绝", "dispatch": "派遣", "recall": "召回",
        "late_start": "开始前", "footer": "时间均为北京时间。距离为直线距离；最近单元按预计到达时间。",
    },
    "en": {
        "title": "Training debrief", "console": "Trainee console", "window": "Exercise",
        "totals": "Totals", "cases_h": "Case by case", "kpis_h": "KPIs over the exercise",
        "log_h": "Action log", "none": "—", "yes": "yes", "no": "no", "min": "min",
        "t_cases": "Cases", "t_dispatched": "Dispatched", "t_fast": "Dispatched within 5 min",
        "t_nearest": "Nearest unit chosen", "t_overdue": "Overdue",
        "t_overdue_start": "Already overdue at start", "t_orders": "Orders",
        "t_rejected": "Orders refused",
        "c_case": "Case", "c_title": "Title", "c_category": "Category", "c_district": "District",
        "c_appeared": "Appeared", "c_dispatched": "Dispatched", "c_after": "After",
        "c_unit": "Unit sent", "c_nearest": "Nearest available", "c_is_nearest": "Nearest",
        "c_overdue": "Overdue", "c_status": "Stage now", "c_rejected": "Refused",
        "at_start": " (open at start)",
        "k_open": "Open", "k_overdue": "Overdue", "k_dispatched": "Dispatched",
        "k_fast": "Dispatched within 5 min", "k_scene": "Dispatch → on scene (min)",
        "k_due": "Due to close", "k_closed": "Closed", "k_close_rate": "Close rate",
        "k_on_time": "On-time close rate", "k_rework": "Rework rate",
        "l_time": "Time", "l_type": "Order", "l_result": "Result", "l_reason": "Reason",
        "accepted": "accepted", "rejected": "refused", "dispatch": "dispatch",
        "recall": "recall", "late_start": "before start",
        "footer": "Times are Beijing time. Distances are straight-line; the nearest unit is "
                  "the one with the shortest estimated time to arrive.",
    },
}

_CSS = f"""
body {{ font-family: "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", "Helvetica Neue",
       Arial, sans-serif; color: {PAPER["TEXT"]}; background: {PAPER["BG"]}; margin: 24px;
       font-size: 14px; }}
h1 {{ font-size: 24px; margin: 0 0 4px 0; }}
h2 {{ font-size: 17px; margin: 22px 0 8px 0; border-bottom: 2px solid {PAPER["TEXT"]}; }}
p.meta {{ margin: 2px 0; color: {PAPER["SOFT"]}; }}
table {{ border-collapse: collapse; width: 100%; margin-bottom: 8px; }}
th, td {{ border: 1px solid {PAPER["RULE"]}; padding: 4px 6px; text-align: left;
          vertical-align: top; }}
th {{ background: {PAPER["HEAD_BG"]}; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
.bad {{ font-weight: bold; }}
table.totals td.n {{ font-size: 18px; font-weight: bold; }}
tr {{ page-break-inside: avoid; }}
thead {{ display: table-header-group; }}
p.foot {{ color: {PAPER["FOOT"]}; font-size: 12px; margin-top: 16px; }}
@media print {{ body {{ margin: 10mm; font-size: 11px; }} h2 {{ page-break-after: avoid; }} }}
"""


def _t(ms: int | None, fmt: str = "%H:%M:%S") -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, tz=CITY_TZ).strftime(fmt)


def _m(metres: float | None) -> str:
    return "—" if metres is None else f"{metres:,.0f} m"


def _pct(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.0f}%"


def _row(cells: list[tuple[str, bool]], cls: str = "") -> str:
    """One table row; each cell is (text, numeric). Every text is escaped here."""
    tds = "".join(f"<td class='n'>{html_text(text)}</td>" if num else f"<td>{html_text(text)}</td>"
                  for text, num in cells)
    return f"<tr{f' class={cls!r}' if cls else ''}>{tds}</tr>"


def _table(head: list[str], rows: list[str], cls: str = "") -> str:
    ths = "".join(f"<th>{html_text(h)}</th>" for h in head)
    return (f"<table{f' class={cls!r}' if cls else ''}><thead><tr>{ths}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def render_debrief(doc: dict, lang: str = "zh") -> str:
    """The page for ``Exercise.debrief()``'s document."""
    if lang not in TEXT:
        raise ValueError(f"lang must be one of {', '.join(TEXT)}, not {lang!r}")
    tx = TEXT[lang]
    yes_no = {True: tx["yes"], False: tx["no"], None: tx["none"]}
    tot, k = doc["totals"], doc["kpis"]
    parts = [f"<h1>{html_text(tx['title'])}</h1>",
             f"<p class='meta'>{html_text(tx['console'])}: {html_text(doc.get('console') or '—')}"
             f"</p><p class='meta'>{html_text(tx['window'])}: "
             f"{html_text(_t(doc['started_ms'], '%Y-%m-%d %H:%M:%S'))} – "
             f"{html_text(_t(doc['now_ms']))}</p>"]

    share = f"{tot['nearest_chosen']} / {tot['dispatched']} ({_pct(tot['nearest_chosen_share'])})"
    parts.append(f"<h2>{html_text(tx['totals'])}</h2>" + _table(
        [tx["t_cases"], tx["t_dispatched"], tx["t_fast"], tx["t_nearest"], tx["t_overdue"],
         tx["t_overdue_start"], tx["t_orders"], tx["t_rejected"]],
        [_row([(str(tot["cases"]), True), (str(tot["dispatched"]), True),
               (str(tot["dispatched_within_5_min"]), True), (share, True),
               (str(tot["overdue"]), True), (str(tot["overdue_at_start"]), True),
               (str(tot["orders"]), True), (str(tot["rejected_orders"]), True)])],
        "totals"))

    rows = []
    for c in doc["cases"]:
        after = "—" if c["dispatch_after_s"] is None \
            else f"{c['dispatch_after_s'] / 60:.1f} {tx['min']}"
        unit = "—" if c["unit_id"] is None else f"{c['callsign'] or c['unit_id']} {_m(c['unit_m'])}"
        nearest = "—" if c["nearest_unit_id"] is None \
            else f"{c['nearest_callsign'] or c['nearest_unit_id']} {_m(c['nearest_m'])}"
        overdue = tx["no"] if not c["overdue"] else (
            f"{_t(c['overdue_at'])}" + (f" ({tx['late_start']})" if c["late_at_start"] else ""))
        rows.append(_row([
            (c["case_id"], False), (c["title"], False),
            (category_name(c["category"], lang), False),
            (district_name(c["district"], lang), False),
            (_t(c["appeared_at"]) + (tx["at_start"] if c["open_at_start"] else ""), False),
            (_t(c["dispatched_at"]), False), (after, True), (unit, False), (nearest, False),
            (yes_no[c["nearest_chosen"]], False), (overdue, False),
            (stage_name(c["status"], lang), False), (str(c["rejected_orders"]), True)],
            "bad" if c["overdue"] else ""))
    parts.append(f"<h2>{html_text(tx['cases_h'])}</h2>" + _table(
        [tx[h] for h in ("c_case", "c_title", "c_category", "c_district", "c_appeared",
                         "c_dispatched", "c_after", "c_unit", "c_nearest", "c_is_nearest",
                         "c_overdue", "c_status", "c_rejected")], rows))

    scene = k["dispatch_to_scene_min"]
    parts.append(f"<h2>{html_text(tx['kpis_h'])}</h2>" + _table(
        [tx[h] for h in ("k_open", "k_overdue", "k_dispatched", "k_fast", "k_scene", "k_due",
                         "k_closed", "k_close_rate", "k_on_time", "k_rework")],
        [_row([(str(k["open"]), True), (str(k["overdue"]), True), (str(k["dispatched"]), True),
               (_pct(k["dispatch_fast_share"]), True),
               ("—" if scene is None else f"{scene:.1f}", True), (str(k["due_to_close"]), True),
               (str(k["closed"]), True), (_pct(k["close_rate"]), True),
               (_pct(k["on_time_rate"]), True), (_pct(k["rework_rate"]), True)])]))

    log = [_row([(_t(e["t_ms"]), False), (tx.get(e["type"] or "", e["type"] or "?"), False),
                 (e["case_id"] or "—", False), (e.get("callsign") or e["unit_id"] or "—", False),
                 (tx[e["result"]], False), (e["reason"] or "", False)],
                "bad" if e["result"] == "rejected" else "")
           for e in doc["log"]]
    parts.append(f"<h2>{html_text(tx['log_h'])}</h2>" + _table(
        [tx["l_time"], tx["l_type"], tx["c_case"], tx["c_unit"], tx["l_result"],
         tx["l_reason"]], log))
    parts.append(f"<p class='foot'>{html_text(tx['footer'])}</p>")
    title = html_text(f"{tx['title']} {_t(doc['started_ms'], '%Y-%m-%d %H:%M')}")
    return (f"<!DOCTYPE html>\n<html lang='{'zh-CN' if lang == 'zh' else 'en'}'><head>"
            f"<meta charset='utf-8'><title>{title}</title><style>{_CSS}</style></head>"
            f"<body>{''.join(parts)}</body></html>\n")


def write_debrief_html(doc: dict, path: str | os.PathLike, lang: str = "zh") -> None:
    """Write the debrief page to ``path`` atomically. OSError saying which file and why."""
    text = render_debrief(doc, lang)
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write the debrief to {os.fspath(path)}: "
                      f"{exc.strerror or exc}") from exc

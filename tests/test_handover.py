"""The shift handover summary: computed from the situation over the shift's window on the
situation's clock (situation/handover.py), up on the wall at the switch until put away, and
written as a real PDF by Qt's own writer (ui/handover.py)."""
from __future__ import annotations

import unicodedata
from types import SimpleNamespace

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtPdf import QPdfDocument

from situation import supervision
from situation.handover import LIST_MAX, ShiftSpan, summarise, window_kpis
from tests.scenario import MIN, Scenario
from tests.test_wall_relayout import DAY, wall_at
from ui import handover as ui_handover
from ui.handover import SHOW_MS, write_pdf

H = 60 * MIN
DAY_SHIFT = ShiftSpan("day", "白班", DAY + 8 * H, DAY + 16 * H)
EVENING = ShiftSpan("evening", "中班", DAY + 16 * H, DAY + 24 * H)


def at(sc: Scenario, hour: float) -> None:
    sc.clock.set(DAY + int(hour * H))


@pytest.fixture
def day() -> Scenario:
    """A day shift: cases closed before and during it, cases late now, sensor alarms before
    and during it, cases escalated before and during it."""
    sc = Scenario(start_ms=DAY + 7 * H)
    sc.case("C-OLD", None, status="registered", district="110101")      # night shift
    sc.sensor("AQ-OLD", "air", pm25=400.0)                               # alarm before 08:00
    sc.case("E-OLD", 600, status="dispatched", flags=["escalated"])
    at(sc, 7.5)
    sc.case("C-OLD", None, status="closed", district="110101")
    at(sc, 9)
    sc.case("C-DONE", 60, status="registered", district="110105")
    sc.sensor("AQ-OLD", "air", pm25=20.0)
    at(sc, 10)
    sc.case("C-DONE", 60, status="closed", district="110105")          # closed on time
    sc.sensor("AQ-1", "air", pm25=300.0, pm10=100.0)                    # alarm, 2× the bound
    at(sc, 11)
    sc.sensor("AQ-1", "air", pm25=30.0, pm10=40.0)                      # over again
    sc.case("E-1", 360, status="dispatched", flags=["escalated"], district="110108")
    at(sc, 12)
    sc.sensor("MH-1", "manhole", tilt_deg=22.0)                          # alarm, still on
    sc.sensor("NS-1", "noise", laeq=75.0)                                # a warning only
    at(sc, 15)
    for i in range(LIST_MAX + 2):                                        # late by 10…100 min
        sc.case(f"L-{i:02d}", -10 * (i + 1), status="registered", priority=3 - i % 3)
    sc.case("L-TIE", -100, status="registered", priority=1)             # as late as L-09
    at(sc, 16 + 0.5 / 60)                                                # 16:00:30
    return sc


def test_the_summary_counts_what_the_next_shift_inherits(day):
    now = day.clock.now_ms()
    refused = [SimpleNamespace(state="rejected", case_id="L-00", unit_id="U9",
                               reason="unit busy", answered_ms=DAY + 14 * H),
               SimpleNamespace(state="rejected", case_id="C-OLD", unit_id="U8",
                               reason="too early", answered_ms=DAY + 7 * H),
               SimpleNamespace(state="done", case_id="C-DONE", unit_id="U7", reason=None,
                               answered_ms=DAY + 10 * H)]
    h = summarise(day.situation, DAY_SHIFT, EVENING, now, refused)
    late_ids = [f"L-{i:02d}" for i in range(LIST_MAX + 2)]
    assert h.open == len(late_ids) + 3 and h.overdue == len(late_ids) + 1     # + E-OLD, E-1
    # worst first: the longest past its deadline; a tie goes to the higher priority (1)
    worst = ["L-TIE", "L-09"] + late_ids[::-1][1:]
    assert [c.case_id for c in h.late.items] == worst[:LIST_MAX]
    assert h.late.more == h.overdue - LIST_MAX
    assert h.late.items[0].late_ms == 100 * MIN + 60 * MIN + 30_000
    # alarms in the window only, worst (value over its bound) first; AQ-OLD's was at 07:00
    assert [(a.sensor_id, a.metric, a.peak, a.still) for a in h.alarms.items] == [
        ("AQ-1", "pm25", 300.0, False), ("MH-1", "tilt_deg", 22.0, True)]
    assert h.sensors_in_alarm == 2
    assert [e.case_id for e in h.escalated.items] == ["E-1"]
    assert [(r.case_id, r.reason) for r in h.refused.items] == [("L-00", "unit busy")]
    assert h.new_cases == 1 + 1 + len(late_ids) + 1          # C-DONE, E-1, the late ones


def test_the_shifts_figures_are_supervisions_over_the_shifts_window(day):
    h = summarise(day.situation, DAY_SHIFT, EVENING, day.clock.now_ms())
    assert (h.kpis.start, h.kpis.end) == (DAY_SHIFT.start_ms, DAY_SHIFT.end_ms)
    assert h.kpis.closed == 1 and h.kpis.closed_on_time == 1          # C-DONE, not C-OLD
    # the same figures as the supervision panel's, for a window ending now
    at(day, 16)
    assert window_kpis(day.situation, DAY_SHIFT.start_ms, DAY_SHIFT.end_ms) == \
        supervision.kpis(day.situation, window_ms=8 * H)
    # a summary taken mid-shift covers the shift so far
    at(day, 9.5)
    mid = summarise(day.situation, DAY_SHIFT, EVENING, day.clock.now_ms())
    assert mid.kpis.end == DAY + int(9.5 * H) and mid.kpis.closed == 0


# ---- on the wall -----------------------------------------------------------------------------
def shown(qtbot, wall):
    for w in wall.windows:
        qtbot.addWidget(w)
        w.show()
    return wall.windows[0].handover_view


def test_the_switch_puts_the_handover_up_until_it_is_put_away(qtbot):
    sc, wall = wall_at(qtbot, 15 * 60 + 59)
    shown(qtbot, wall)
    assert wall.windows[0].handover_view is None
    sc.case("LATE", -30, status="dispatched")
    sc.clock.advance(2 * MIN)                                    # 16:01: the evening shift
    wall.follow_schedule()
    view = shown(qtbot, wall)
    assert wall.layout_key == "wall-2" and view is not None and view.isVisible()
    h = wall.handover
    assert (h.ending.name, h.ending.start_ms, h.ending.end_ms) == (
        "day", DAY + 8 * H, DAY + 16 * H)
    assert (h.starting.name, h.starting.start_ms) == ("evening", DAY + 16 * H)
    assert "白班 08:00–16:00" in view.shifts.text() and "中班 16:00–24:00" in view.shifts.text()
    assert "LATE" in view.text.toPlainText()
    # a screen plugged in or out keeps it up, on the new first window
    wall.relayout()
    view = shown(qtbot, wall)
    assert view is not None and view.handover is h
    # a click on it does nothing; a click beside it puts it away
    qtbot.mouseClick(view, Qt.LeftButton, pos=view.card.geometry().center())
    assert wall.handover is h
    qtbot.mouseClick(view, Qt.LeftButton, pos=QPoint(2, 2))
    assert wall.handover is None and wall.windows[0].handover_view is None


def test_esc_and_the_situations_clock_put_it_away(qtbot):
    sc, wall = wall_at(qtbot, 11 * 60)
    shown(qtbot, wall)
    wall.show_handover()
    w = wall.windows[0]
    assert w.handover_view is not None
    w.escape()
    assert wall.handover is None and w.handover_view is None
    wall.show_handover()
    sc.clock.advance(SHOW_MS - 1_000)
    wall.tick()
    assert wall.handover is not None                             # the briefing goes on
    sc.clock.advance(1_000)
    wall.tick()
    assert wall.handover is None


def test_a_held_layout_still_hands_over(qtbot):
    sc, wall = wall_at(qtbot, 15 * 60 + 59)
    shown(qtbot, wall)
    wall.hold(True)
    sc.clock.advance(2 * MIN)
    wall.follow_schedule()
    assert wall.layout_key == "wall-3" and wall.handover.ending.name == "day"


def test_the_menu_shows_the_current_shift_so_far_and_exports_it(qtbot, tmp_path):
    sc, wall = wall_at(qtbot, 11 * 60)
    shown(qtbot, wall)
    w = wall.windows[0]
    actions = {a.text(): a for a in w.menu().actions()}
    assert "导出交接班 PDF…" in actions
    actions["交接班摘要…"].trigger()
    h = wall.handover
    assert h.ending.name == "day" and h.ending.end_ms > h.now_ms
    assert "截至 11:00" in w.handover_view.shifts.text()
    target = tmp_path / "handover.pdf"
    assert w.export("handover", str(target), h)
    assert "已导出" in w.header.message.text()
    assert target.read_bytes().startswith(b"%PDF")


# ---- PDF -------------------------------------------------------------------------------------
def pdf_text(path) -> str:
    doc = QPdfDocument()
    assert doc.load(str(path)) == QPdfDocument.Error.None_
    text = "".join(doc.getAllText(i).text() for i in range(doc.pageCount()))
    return unicodedata.normalize("NFKC", text)       # CJK glyphs may map to radicals (⽩ → 白)


@pytest.mark.parametrize("lang, words", [
    ("zh", ["交接班摘要", "白班 08:00–16:00", "中班 16:00–24:00", "超期案件", "L-TIE", "AQ-1"]),
    ("en", ["Shift handover", "day 08:00–16:00", "evening 16:00–24:00", "L-TIE", "unit busy"]),
])
def test_the_pdf_is_a_real_pdf_with_its_text(qtbot, tmp_path, day, lang, words):
    refused = [SimpleNamespace(state="rejected", case_id="L-00", unit_id="U9",
                               reason="unit busy", answered_ms=DAY + 14 * H)]
    h = summarise(day.situation, DAY_SHIFT, EVENING, day.clock.now_ms(), refused)
    path = write_pdf(h, tmp_path / "handover.pdf", lang)
    data = path.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 1024
    text = pdf_text(path)
    for word in words:
        assert word in text
    assert [p.name for p in tmp_path.iterdir()] == ["handover.pdf"]     # no temporary left


def test_a_failed_pdf_write_says_why_and_loses_nothing(qtbot, tmp_path, day, monkeypatch):
    h = summarise(day.situation, DAY_SHIFT, EVENING, day.clock.now_ms())
    with pytest.raises(OSError):
        write_pdf(h, tmp_path / "no-such-folder" / "x.pdf")
    old = tmp_path / "handover.pdf"
    old.write_bytes(b"%PDF yesterday's")
    monkeypatch.setattr(ui_handover, "pdf_bytes", lambda *a, **k: b"")   # the writer fails
    with pytest.raises(OSError, match="no PDF"):
        write_pdf(h, old)
    assert old.read_bytes() == b"%PDF yesterday's"
    assert [p.name for p in tmp_path.iterdir()] == ["handover.pdf"]


def test_a_failed_export_is_said_on_the_wall(qtbot, tmp_path):
    sc, wall = wall_at(qtbot, 11 * 60)
    w = wall.windows[0]
    assert not w.export("handover", str(tmp_path / "missing" / "h.pdf"), wall.summary())
    assert "无法写入" in w.header.message.text()

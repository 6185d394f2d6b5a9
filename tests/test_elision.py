"""Issue 14, the wall at wall scale: nothing a commander reads is elided or clipped.

Every preset layout (``layouts/*.toml``, the built-in 1-, 2- and 3-screen walls) is built
offscreen on one running demo city (three hours of ``feeds.simulator.DemoCity``, shared), in
zh and en, at 1920×1080 and 2560×1440 (the header at that screen's type scale), and every
window is walked (every page of a rotation in turn):

- tables (every ``TablePanel``): each *kept* column's name and every value in it fit the
  column (QFontMetrics.horizontalAdvance against the section width less the delegate's and
  the header's padding); a cell running across columns (a span) fits their sum unless the
  table wraps; rows are at least as tall as their type; rows ≥ 24 px, column names ≥ 20 px;
  the columns a commander must see are kept (the queue: time left, stage, unit, category;
  the roster: callsign, status, case; feed health: source, state, gaps);
- labels (titles, summaries, header figures, tiles, KPIs — every visible QLabel without word
  wrap): the text's advance fits the label's contents rect, its ink fits its height, the
  label is not cut by its parent, no "…" put at its end by code (QFontMetrics.elidedText);
  none is smaller than 16 px.

The commander's console is walked the same way at its default 1600×1000 (tests in
test_console_size.py). Type sizes are pixel sizes of the fonts, not guessed from images.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QFontMetrics, QTextDocument
from PySide6.QtGui import Qt as GuiQt
from PySide6.QtWidgets import QLabel

from tests.scenario import MIN, T0, Scenario

ROOT = Path(__file__).resolve().parent.parent
SIZES = [(1920, 1080), (2560, 1440)]
LANGS = ["zh", "en"]
MIN_PX = 16                     # nothing a commander reads is smaller
ROW_PX, HEAD_PX = 24, 20
HEADER_PAD = 16                 # QHeaderView::section padding: 8 px each side (theme.style)
# The columns a commander must see, whatever the panel's width.
KEY_COLUMNS = {
    "case_queue": ("col.left", "col.stage", "col.unit", "col.category"),
    "unit_roster": ("col.callsign", "col.status", "col.case"),
    "feed_health": ("col.src", "col.state", "col.gaps"),
}


# ---- one demo city for every walk --------------------------------------------------------
def demo_situation(hours: int = 3, districts=()) -> Scenario:
    """``hours`` of the demo city up to T0, applied every two minutes as the receiver would
    hand it over (with the source heard and its seq), plus an endpoint nobody publishes on.
    ``districts``: a district wall's (``--districts``), holding only those."""
    from feeds.batch import Batch
    from feeds.simulator import DemoCity
    from situation.scope import Scope
    start = T0 - hours * 60 * MIN
    city = DemoCity(seed=1, start_ms=start)
    sc = Scenario(start)
    sc.situation.scope = Scope.of(districts)
    sc.situation.expect_endpoint("tcp://10.0.0.5:5556")
    t, seq = start, 0
    while t < T0:
        t += 2 * MIN
        sc.clock.set(t)
        recs = [r for _, rs in city.step(t) for r in rs]
        batch = Batch(records=recs, messages=len(recs))
        batch.heard.add(city.src)
        seq += len(recs)
        batch.last_seq[city.src] = seq
        sc.situation.apply(batch)
    return sc


@pytest.fixture(scope="module")
def demo(qapp):
    from widgets.theme import apply_theme
    apply_theme(qapp)
    sc = demo_situation()
    yield sc
    apply_theme(qapp)              # the day's palette again for the tests after


# ---- the walk ----------------------------------------------------------------------------
def _text_width(lab: QLabel) -> tuple[int, int]:
    """(advance, ink height) of a label's text in its own font; rich text laid out as Qt
    lays it out."""
    text = lab.text()
    fm = lab.fontMetrics()
    if lab.textFormat() == Qt.RichText or (lab.textFormat() == Qt.AutoText
                                            and GuiQt.mightBeRichText(text)):
        doc = QTextDocument()
        doc.setDefaultFont(lab.font())
        doc.setDocumentMargin(0)
        doc.setHtml(text)
        return int(doc.idealWidth() + 0.999), 0
    lines = text.split("\n")
    width = max(fm.horizontalAdvance(line) for line in lines)
    ink = fm.tightBoundingRect(text).height() if len(lines) == 1 else 0
    return width, ink


def label_problems(window, where: str) -> list[str]:
    out = []
    for lab in window.findChildren(QLabel):
        if not lab.isVisibleTo(window) or not lab.text().strip() or lab.wordWrap():
            continue
        if lab.visibleRegion().isEmpty() and not lab.parentWidget().visibleRegion().isEmpty():
            pass                    # cut away entirely by its parent: said below
        elif lab.visibleRegion().isEmpty():
            continue                # on a page behind another (a tab, a stacked page)
        if lab.pixmap() is not None and not lab.pixmap().isNull():
            continue
        name = f"{where} {type(lab.parent()).__name__}/{lab.objectName() or 'QLabel'}"
        text = lab.text()
        px = lab.font().pixelSize()
        if 0 < px < MIN_PX:
            out.append(f"{name}: {text!r} at {px} px (< {MIN_PX} px)")
        if text.rstrip().endswith("…") or "…\n" in text:     # QFontMetrics.elidedText's mark
            out.append(f"{name}: {text!r} was elided by code")
        need, ink = _text_width(lab)
        room = lab.contentsRect()
        if need > room.width() + 1:
            out.append(f"{name}: {text!r} needs {need} px, has {room.width()} px")
        elif ink and ink > room.height() + 1:
            out.append(f"{name}: {text!r} is {ink} px high, has {room.height()} px")
        else:
            seen = lab.visibleRegion().boundingRect()
            shown = QRect(room.topLeft(), room.size())
            want_w, want_h = min(need, room.width()), min(ink or room.height(), room.height())
            if seen.width() + 1 < want_w or seen.height() + 1 < want_h:
                out.append(f"{name}: {text!r} is cut by its parent: visible "
                           f"{seen.width()}×{seen.height()} of {shown.width()}×{shown.height()}")
    return out


def table_problems(panel, where: str) -> list[str]:
    from widgets.panel import cell_margin
    t, m = panel.table, panel.model
    name = f"{where} {panel.name}"
    out = []
    header = t.horizontalHeader()
    if t.font().pixelSize() < ROW_PX or m._bold.pixelSize() < ROW_PX:
        out.append(f"{name}: rows at {t.font().pixelSize()} px (< {ROW_PX} px)")
    if header.font().pixelSize() < HEAD_PX:
        out.append(f"{name}: column names at {header.font().pixelSize()} px (< {HEAD_PX} px)")
    for key in KEY_COLUMNS.get(panel.name, ()):
        c = panel.columns.index(key)
        if t.isColumnHidden(c):
            out.append(f"{name}: key column {m.headers[c]!r} dropped at table width "
                       f"{t.width()} (hidden: {panel.hidden_columns})")
    # Rows a person can read: at least two whole rows show (one when there is one).
    want_rows = min(len(m.rows), 2)
    if want_rows and panel.name != "training_log":    # its rows wrap: fit_rows sizes them
        seen = t.viewport().height()
        if seen < want_rows * t.rowHeight(0):
            out.append(f"{name}: {seen} px of table show, {want_rows} rows of "
                       f"{t.rowHeight(0)} px need {want_rows * t.rowHeight(0)}")
    head_fm = QFontMetrics(header.font())
    fonts = {False: QFontMetrics(t.font()), True: QFontMetrics(m._bold)}
    pad = cell_margin(t)
    sort = 20 if header.isSortIndicatorShown() else 0
    shown = [c for c in range(m.columnCount()) if not t.isColumnHidden(c)]
    for c in shown:
        width = header.sectionSize(c)
        need = head_fm.horizontalAdvance(m.headers[c]) + HEADER_PAD + sort
        if need > width:
            out.append(f"{name}: column name {m.headers[c]!r} needs {need} px, has {width} px")
    for r, row in enumerate(m.rows):
        if r == 0 and t.rowHeight(0) < fonts[True].height():
            out.append(f"{name}: rows {t.rowHeight(0)} px high, type needs "
                       f"{fonts[True].height()} px")
        for c in shown:
            cell = row[c]
            if not cell.text:
                continue
            span = t.columnSpan(r, c)
            if span > 1 and t.wordWrap():
                continue            # it wraps over as many lines as it needs (fit_rows)
            width = sum(header.sectionSize(k) for k in range(c, c + span)
                        if not t.isColumnHidden(k))
            need = max(fonts[cell.bold].horizontalAdvance(line)
                       for line in cell.text.split("\n")) + pad
            if need > width:
                out.append(f"{name}: {m.headers[c]!r} value {cell.text!r} needs {need} px, "
                           f"has {width} px")
                break               # one a column is enough to say
    return out


def none_cut(problems: list[str]) -> None:
    if problems:
        pytest.fail(f"{len(problems)} elided or clipped:\n" + "\n".join(problems),
                    pytrace=False)


def walk(window, where: str) -> list[str]:
    """Every problem in a window: its labels and every table, each rotation page in turn."""
    from widgets.panel import TablePanel
    out = []
    rotations = getattr(window, "rotations", [])
    pages = max([len(r.panels) for r in rotations] or [1])
    settle(window, redraw=True)             # the wall as it stands after a clock tick
    for i in range(pages):
        for r in rotations:
            r.show_page(i % len(r.panels))
        settle(window)
        out += label_problems(window, f"{where}[page {i + 1}]" if pages > 1 else where)
        for p in window.panels:
            if (isinstance(p, TablePanel) and p.isVisibleTo(window)
                    and not p.visibleRegion().isEmpty()):      # not a tab behind another
                out += table_problems(p, where)
    for r in rotations:
        r.show_page(0)
    return sorted(set(out))


def settle(window, redraw: bool = False) -> None:
    """Let the layouts and the panels' own re-arranging (on resize, on show) run; with
    ``redraw``, then redraw everything as the clock's tick does once a second."""
    from PySide6.QtWidgets import QApplication
    for _ in range(3):
        QApplication.processEvents()
    if redraw:
        window.refresh_now()
        QApplication.processEvents()


class _Screen:
    """What ``theme.screen_scale`` reads of a QScreen."""

    def __init__(self, w, h):
        self.w, self.h = w, h

    def geometry(self):
        return QRect(0, 0, self.w, self.h)

    def logicalDotsPerInchY(self):
        return 96.0


def presets():
    """(name, Layout) for every layout file and the built-in 1-, 2- and 3-screen walls."""
    from layouts import engine
    from ui.wall import default_layout
    from widgets.registry import PANELS
    out = []
    for path in sorted((ROOT / "layouts").glob("*.toml")):
        try:
            out.append((path.stem, engine.load_layout(str(path), set(PANELS))))
        except Exception:           # not a layout (the shift schedule)
            continue
    out += [(f"built-in-{n}", default_layout(n)) for n in (1, 2, 3)]
    return out


def build_windows(situation, layout, lang, size):
    from ui.wall import WallWindow, link_panels
    from widgets import theme
    theme.choose_palette(layout.palette)
    scale = theme.screen_scale(_Screen(*size))
    windows = []
    for i, screen in enumerate(layout.screens):
        w = WallWindow(situation, None, lang, "LIVE", screen, slim=i > 0, scale=scale)
        w.resize(*size)
        w.show()
        windows.append(w)
    link_panels(windows)
    return windows


def at_each_size(qtbot, situation, layout, lang):
    """(size, the layout's windows at that screen size) for each size, closed after."""
    for size in SIZES:
        windows = build_windows(situation, layout, lang, size)
        for w in windows:
            qtbot.addWidget(w)
        yield size, windows
        for w in windows:
            w.close()
            w.deleteLater()


PRESETS = [name for name, _ in presets()]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("preset", PRESETS)
def test_nothing_is_elided_or_clipped(qtbot, demo, preset, lang, tmp_path):
    from widgets import theme
    layout = dict(presets())[preset]
    problems = []
    try:
        for size, windows in at_each_size(qtbot, demo.situation, layout, lang):
            for i, w in enumerate(windows):
                problems += walk(w, f"{preset}/{lang}/{size[0]}x{size[1]}/screen {i}:")
    finally:
        theme.choose_palette(None)
    none_cut(problems)


# ---- a district wall (--districts): its header carries the districts badge ---------------
DISTRICT_WALL = ("110101", "110105")        # 东城 · 朝阳: the demo's "--districts 110101,110105"


@pytest.fixture(scope="module")
def district_demo(qapp):
    from widgets.theme import apply_theme
    apply_theme(qapp)
    sc = demo_situation(districts=DISTRICT_WALL)
    yield sc
    apply_theme(qapp)


def header_problems(window, where: str) -> list[str]:
    """The walk's label check on the header, and its district badge there, whole."""
    h = window.header
    out = label_problems(h, where)
    for lab in h.findChildren(QLabel):      # a framed badge indents its text: counted too
        if not lab.isVisibleTo(h) or not lab.text().strip() or lab.indent() >= 0:
            continue
        if lab.frameWidth() > 0 or lab.styleSheet().count("border-left"):
            indent = lab.fontMetrics().horizontalAdvance("x") // 2
            need, _ = _text_width(lab)
            if need + indent > lab.contentsRect().width() + 1:
                out.append(f"{where} {lab.text()!r} needs {need} px and a {indent} px indent, "
                           f"has {lab.contentsRect().width()} px")
    if not h.scope_badge.isVisibleTo(h) or not h.scope_badge.text():
        out.append(f"{where}: no districts badge on a district wall")
    return out


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("preset", ["built-in-1", "built-in-2"])
def test_a_district_wall_header_cuts_nothing(qtbot, district_demo, preset, lang):
    """The districts badge, the subtitle and the figures share the header: on an English
    1920×1080 wall the subtitle ("City operations") was cut mid-word behind the badge; now
    it gives way whole (in its tooltip), and the badge itself shows its names or its count."""
    from widgets import theme
    layout = dict(presets())[preset]
    problems = []
    try:
        for size, windows in at_each_size(qtbot, district_demo.situation, layout, lang):
            for i, w in enumerate(windows):
                settle(w, redraw=True)
                problems += header_problems(w, f"district {preset}/{lang}/{size[0]}x{size[1]}/"
                                               f"screen {i}:")
                sub = w.header.subtitle
                assert sub.toolTip() and sub.toolTip() == sub.forms[0]
    finally:
        theme.choose_palette(None)
    none_cut(problems)


@pytest.mark.parametrize("lang", LANGS)
def test_a_district_wall_is_walked_whole(qtbot, district_demo, lang):
    """The one-screen district wall at 1920×1080, walked as every preset is: nothing cut."""
    from ui.wall import default_layout
    from widgets import theme
    try:
        (w,) = build_windows(district_demo.situation, default_layout(1), lang, (1920, 1080))
        qtbot.addWidget(w)
        problems = walk(w, f"district built-in-1/{lang}/1920x1080:")
        w.close()
    finally:
        theme.choose_palette(None)
    none_cut(problems)


@pytest.mark.parametrize("lang", LANGS)
def test_a_district_console_header_cuts_nothing(qtbot, tmp_path, district_demo, lang):
    """The commander's console (1600×1000) of a district wall: the badge falls back to its
    count ("Districts: 2") rather than be cut; nothing in the console is cut."""
    from tests.test_console_size import console
    from widgets import theme
    try:
        c = console(qtbot, tmp_path, district_demo.situation, lang)
        settle(c, redraw=True)
        problems = header_problems(c, f"district console/{lang}/1600x1000:")
        problems += walk(c, f"district console/{lang}/1600x1000:")
    finally:
        theme.choose_palette(None)
    none_cut(problems)


# ---- the mechanism itself ------------------------------------------------------------------
def test_a_narrow_queue_drops_low_priority_columns_and_says_which(qtbot, demo):
    from widgets.case_queue import CaseQueue
    q = CaseQueue(demo.situation, "zh")
    qtbot.addWidget(q)
    q.resize(1600, 600)
    q.show()
    q.refresh()
    assert q.hidden_columns == []
    assert q.table.horizontalHeader().toolTip() == ""
    q.resize(700, 600)
    q.refresh()
    hidden = q.hidden_columns
    assert hidden and not set(hidden) & set(KEY_COLUMNS["case_queue"])
    order = list(q.priority) + [c for c in q.columns if c not in q.priority]
    kept = [c for c in order if c not in hidden]
    assert order[:len(kept)] == kept                     # the least important go first
    words = "、".join(q.model.headers[q.columns.index(k)] for k in hidden)
    assert q.table.horizontalHeader().toolTip() == "隐藏列：" + words
    assert q.summary.toolTip() == "隐藏列：" + words
    assert not table_problems(q, "narrow queue")
    q.resize(1600, 600)                                  # room again: every column back
    assert q.hidden_columns == [] and not any(q.table.isColumnHidden(c)
                                              for c in range(len(q.columns)))


def test_the_case_number_is_short_and_whole_in_its_tooltip(qtbot, demo):
    from widgets.case_queue import CaseQueue, short_id
    q = CaseQueue(demo.situation, "en")
    qtbot.addWidget(q)
    q.resize(1600, 600)
    q.show()
    q.refresh()
    case_id = q.model.keys[0]
    assert len(case_id) > 8 and short_id(case_id) == "…" + case_id[-5:]
    cell = q.model.rows[0][0]
    assert cell.text == short_id(case_id) and case_id in cell.tip
    needs = q.column_needs()
    assert needs[0] < max(needs)                         # not the widest column
    assert short_id("C-LATE") == "C-LATE"


def test_colours_are_the_themes_names(qtbot, demo):
    from widgets import theme
    from widgets.unit_roster import STATUS_COLOUR
    assert STATUS_COLOUR == {"available": theme.READY, "dispatched": theme.BUSY,
                             "en_route": theme.BUSY, "returning": theme.BUSY,
                             "on_scene": theme.ON_SCENE, "off_duty": theme.IDLE,
                             "out_of_service": theme.IDLE}
    import re
    for name in ("widgets/panel.py", "widgets/case_queue.py", "widgets/unit_roster.py",
                 "widgets/feed_health.py", "widgets/order_audit.py",
                 "widgets/district_board.py", "widgets/training_log.py", "ui/console.py",
                 "ui/wall.py", "ui/confirm_dispatch.py", "ui/order_toast.py"):
        text = (ROOT / name).read_text(encoding="utf-8")
        assert not re.search(r"#[0-9a-fA-F]{6}\b|#[0-9a-fA-F]{3}\b|rgba?\(", text), name
    from widgets.case_queue import CaseQueue
    q = CaseQueue(demo.situation, "zh")
    qtbot.addWidget(q)
    q.refresh()
    stage = q.columns.index("col.stage")
    for key, row in zip(q.model.keys, q.model.rows):
        case = demo.situation.cases[key]
        assert row[stage].fg == theme.STAGES[case.status]
        if case.priority == 1:
            assert row[q.columns.index("col.category")].fg == theme.URGENT


def test_the_rotation_mark_covers_no_column(qtbot, demo):
    from layouts import engine
    from widgets.registry import PANELS
    layout = engine.load_layout("night", set(PANELS))
    (w,) = build_windows(demo.situation, layout, "zh", (1920, 1080))
    qtbot.addWidget(w)
    try:
        settle(w)
        (rot,) = w.rotations
        for i in range(len(rot.panels)):
            rot.show_page(i)
            settle(w)
            page = rot.current()
            mark = rot.mark.geometry()
            table = page.table.geometry().translated(page.pos())
            summary = page.summary.geometry().translated(page.pos())
            title = page.title.geometry().translated(page.pos())
            assert not mark.intersects(table), (mark, table)
            assert not mark.intersects(summary), (mark, summary)
            assert mark.left() >= title.left() + page.title.sizeHint().width()
            assert rot.mark.font().pixelSize() >= MIN_PX
    finally:
        from widgets import theme
        theme.choose_palette(None)


# ---- the D-key picker, the far-unit question and the order toasts: read from 4 m ---------------
CARD_PX = 24


def card_problems(widget, where: str) -> list[str]:
    """Every label of a card or toast at least CARD_PX and not clipped; a table's cells fit."""
    from PySide6.QtWidgets import QTableWidget
    out = [p for p in label_problems(widget, where)]
    for lab in widget.findChildren(QLabel):
        if lab.isVisibleTo(widget) and lab.text().strip() and lab.font().pixelSize() < CARD_PX:
            out.append(f"{where}: {lab.text()!r} at {lab.font().pixelSize()} px "
                       f"(< {CARD_PX} px)")
    for t in widget.findChildren(QTableWidget):
        head = t.horizontalHeader()
        if t.font().pixelSize() < CARD_PX or head.font().pixelSize() < CARD_PX:
            out.append(f"{where}: table type {t.font().pixelSize()}/{head.font().pixelSize()} px")
        for r in range(t.rowCount()):
            for c in range(t.columnCount()):
                item = t.item(r, c)
                fm = QFontMetrics(item.font() if item.font().pixelSize() > 0 else t.font())
                need = fm.horizontalAdvance(item.text()) + 28        # item padding 14 px a side
                if need > t.columnWidth(c):
                    out.append(f"{where}: picker {item.text()!r} needs {need} px, has "
                               f"{t.columnWidth(c)} px")
    return out


@pytest.mark.parametrize("lang", LANGS)
def test_the_picker_the_question_and_the_toasts_read_from_four_metres(qtbot, demo, lang):
    from types import SimpleNamespace
    from situation.suggest import alternative, concern, nearest_available
    from ui.confirm_dispatch import ConfirmDispatch, UnitPicker
    from ui.order_toast import OrderToast, ToastStack, toast_words
    from ui.wall import default_layout
    st = demo.situation
    (w,) = build_windows(st, default_layout(1), lang, (1920, 1080))
    qtbot.addWidget(w)
    settle(w)
    problems = []
    case = max(st.open_cases(), key=lambda c: len(c.address or "") + len(c.case_id))
    rows = [(s, concern(st, case, s.unit, 3000)) for s in nearest_available(st, case, n=5)]
    assert rows
    picker = UnitPicker(w, case, rows, lang)
    settle(w)
    problems += card_problems(picker, f"picker/{lang}")
    picker.close_card()
    far = max(rows, key=lambda r: r[0].distance_m)
    worry = concern(st, case, far[0].unit, 10)            # everything is far: it asks
    other = alternative(st, case, far[0].unit.unit_id, 10)
    question = ConfirmDispatch(w, st, case, far[0].unit, worry, other, 10, lang)
    question.show_over()
    settle(w)
    problems += card_problems(question, f"question/{lang}")
    question.close_card()
    reason = ("unit_assigned: unit 东城-巡03 is already working case BJ2026112400038 / "
              "东城-巡03 已派往案件 BJ2026112400038")
    stack = ToastStack.of(w)
    for state in ("pending", "done", "rejected", "unconfirmed"):
        order = SimpleNamespace(kind="dispatch", case_id=case.case_id, state=state,
                                reason=reason, resent=0)
        toast = OrderToast(f"o-{state}")
        toast.show_words(*toast_words(order, far[0].unit.callsign, lang))
        stack.add(toast)
    settle(w)
    problems += card_problems(stack, f"toasts/{lang}")
    w.close()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_one_outlier_value_never_pushes_the_key_columns_off(qtbot):
    """A publisher's unknown 128-character category and a callsign of 64 wide characters (both
    valid by the protocol's bounds) in a queue and a roster as wide as the one-screen wall gives
    them: every key column stays; the long value is cut in its cell and whole in its tooltip."""
    from PySide6.QtCore import Qt as _Qt
    from tests.scenario import standard
    from widgets.case_queue import CaseQueue
    from widgets.unit_roster import UnitRoster
    sc = standard()
    long_category = "event." + "x" * 122
    long_callsign = "城" * 64
    sc.case("C-LONG", 30, category=long_category, status="registered")
    sc.unit("U-LONG", callsign=long_callsign, status="available", district="110101")
    for panel, size, key, text in ((CaseQueue(sc.situation, "en"), (727, 600), "C-LONG",
                                    long_category),
                                   (UnitRoster(sc.situation, "zh"), (572, 400), "U-LONG",
                                    long_callsign)):
        qtbot.addWidget(panel)
        panel.resize(*size)
        panel.show()
        panel.refresh()
        panel.fit_columns()
        kept = [k for k in KEY_COLUMNS[panel.name]
                if not panel.table.isColumnHidden(panel.columns.index(k))]
        assert kept == list(KEY_COLUMNS[panel.name]), (panel.name, panel.hidden_columns)
        row = panel.model.keys.index(key)
        cells = [panel.model.index(row, c) for c in range(panel.model.columnCount())]
        shown = [i for i in cells if text in (panel.model.data(i) or "")]
        assert shown, (panel.name, [panel.model.data(i) for i in cells])
        assert text in panel.model.data(shown[0], _Qt.ToolTipRole)

"""Issue 14, dispatch at wall scale: a far drop, or one outside the unit's district, asks first
(distance, time to arrive, the nearest available unit instead; send anyway, send that one,
cancel) and sends nothing until answered; every order is said in a large toast on the window
it came from, then its outcome; the D picker is full size. Against the demo's own dispatch
service (a real one, in process) as tests/test_dispatch_wall.py; the toasts' time and a
viewer's seat on a hand-made situation with a manual clock. Offscreen, pytest-qt; drops are
driven on the drop side (``QDrag.exec`` runs its own loop).

``CW_SHOTS=/tmp/shots/dispatch`` writes screenshots of the cards and a toast in zh and en."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication

from situation.suggest import concern, distance_m, home_district, nearest_available
from tests.test_dispatch_wall import START, drop, row_pos
from ui.bridge import SituationBridge
from ui.confirm_dispatch import ConfirmDispatch, UnitPicker, eta_words
from ui.dispatch import CONFIRM_KM, DispatchController
from ui.order_toast import ACCEPTED_MS, ToastStack
from ui.session import build_session
from ui.wall import build_wall
from widgets.case_queue import CASE_MIME, UNIT_MIME

LIMIT_M = CONFIRM_KM * 1000
SHOTS = os.environ.get("CW_SHOTS")


def cheap_layout(screens: int = 1):
    from layouts import engine
    return engine.from_rows("t", [("一", "One", [(1, [("case_queue", 1), ("unit_roster", 1)])])
                                  ] * screens)


def demo(qtbot, lang="zh", screens=1, layout=None, size=None):
    from PySide6.QtWidgets import QApplication
    from widgets.theme import apply_theme
    apply_theme(QApplication.instance())            # the wall's look, as the app sets it
    args = argparse.Namespace(demo=True, feed=None, demo_feed=None, speed=1.0, seed=4,
                              start_ms=START, clock="wall", max_record_bytes=65536,
                              dispatch=None, console_id="test-console")
    session = build_session(args)
    bridge = SituationBridge(session.situation, session.sources)
    orders = DispatchController(session.situation, session.client, lang)
    screen = QGuiApplication.screens()[0]
    windows = build_wall(session.situation, bridge, lang, "DEMO", [screen] * screens, orders,
                         layout)
    for w in windows:
        qtbot.addWidget(w)
        if size:
            w.resize(*size)
        w.show()
    bridge.start()
    st = session.situation
    qtbot.waitUntil(lambda: len(st.units) > 100 and any(
        c.status == "registered" and c.unit_id is None for c in st.cases.values()),
        timeout=20000)
    return session, bridge, orders, windows


@pytest.fixture
def wall(qtbot):
    session, bridge, orders, windows = demo(qtbot, layout=cheap_layout(1))
    yield session, windows[0], orders
    stop(session, bridge, orders)


def stop(session, bridge, orders):
    orders.put_away()
    bridge.stop()
    orders.stop()
    session.stop()


def free(st):
    return [u for u in st.units.values() if u.status == "available" and not st.unit_stale(u)]


def open_case(st):
    return next(c for c in st.cases.values() if c.status == "registered" and c.unit_id is None)


def far_pair(st):
    """A waiting case with a unit of its district near it, and the available unit furthest
    from it (tens of km in the demo)."""
    case, _ = near_pair(st)
    unit = max(free(st), key=lambda u: distance_m(u.lon, u.lat, case.lon, case.lat))
    assert distance_m(unit.lon, unit.lat, case.lon, case.lat) > 3 * LIMIT_M
    return case, unit


def near_pair(st):
    """A waiting case and an available unit of its district, within the limit."""
    for case in st.cases.values():
        if case.status != "registered" or case.unit_id is not None:
            continue
        for sug in nearest_available(st, case, n=20):
            if not concern(st, case, sug.unit, LIMIT_M).ask:
                return case, sug.unit
    pytest.fail("no waiting case with a unit of its district near it")


def queue_of(w):
    return next(p for p in w.panels if p.name == "case_queue")


def toasts_on(w):
    stack = ToastStack.of(w, create=False)
    return [t for t in stack.toasts] if stack is not None else []


def sent(orders):
    return [(o.case_id, o.unit_id) for o in orders.orders.values()]


def font_px(widget) -> int:
    return widget.font().pixelSize()


def shot(widget, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        assert widget.grab().save(str(Path(SHOTS) / f"{name}.png"))


# ---- the question ----------------------------------------------------------------------------
def test_a_far_drop_asks_and_sends_nothing_until_confirmed(qtbot, wall):
    session, w, orders = wall
    st = session.situation
    case, unit = far_pair(st)
    queue = queue_of(w)
    drop(queue.table.viewport(), row_pos(queue, case.case_id), UNIT_MIME, unit.unit_id)
    q = orders.question
    assert isinstance(q, ConfirmDispatch) and q.isVisible() and q.window() is w
    assert orders.orders == {} and session.services[0].counts["accepted"] == 0
    worry = concern(st, case, unit, LIMIT_M)
    text = q.text()
    assert f"{worry.suggestion.distance_m / 1000:.1f} km" in text        # the distance
    assert "分钟到达" in text or "分到达" in text                           # the time to arrive
    assert q.alternative is not None and orders.question is q
    alt_id = q_alt_id(orders, case, unit)
    assert st.units[alt_id].callsign in text and st.units[alt_id].callsign in q.alternative.text()
    assert min(font_px(lab) for lab in (q.what, *q.lines)) >= 24
    assert all(font_px(b) >= 24 for b in q.buttons())
    qtbot.wait(50)                                  # events run: still nothing goes out
    assert orders.orders == {}
    qtbot.mouseClick(q.send, Qt.LeftButton)          # send anyway
    assert sent(orders) == [(case.case_id, unit.unit_id)]
    assert orders.question is None and not q.isVisible()
    (order,) = orders.orders.values()
    qtbot.waitUntil(lambda: order.state in ("acked", "done"), timeout=10000)


def q_alt_id(orders, case, unit):
    from situation.suggest import alternative
    alt = alternative(orders.situation, case, unit.unit_id, LIMIT_M)
    assert alt is not None and alt.unit.unit_id != unit.unit_id
    return alt.unit.unit_id


def test_send_the_alternative_instead(qtbot, wall):
    session, w, orders = wall
    st = session.situation
    case, unit = far_pair(st)
    alt_id = q_alt_id(orders, case, unit)
    assert not concern(st, case, st.units[alt_id], LIMIT_M).ask    # a sane one
    queue = queue_of(w)
    drop(queue.table.viewport(), row_pos(queue, case.case_id), UNIT_MIME, unit.unit_id)
    qtbot.mouseClick(orders.question.alternative, Qt.LeftButton)
    assert sent(orders) == [(case.case_id, alt_id)]
    (order,) = orders.orders.values()
    qtbot.waitUntil(lambda: order.state == "done", timeout=10000)
    assert st.cases[case.case_id].unit_id == alt_id
    assert st.units[unit.unit_id].case_id is None                     # the far one stays


def test_cancel_sends_nothing_by_button_or_escape(qtbot, wall):
    session, w, orders = wall
    st = session.situation
    case, unit = far_pair(st)
    roster = next(p for p in w.panels if p.name == "unit_roster")
    drop(roster.table.viewport(), row_pos(roster, unit.unit_id), CASE_MIME, case.case_id)
    q = orders.question
    assert q is not None and orders.orders == {}
    qtbot.mouseClick(q.cancel, Qt.LeftButton)
    assert orders.question is None and not q.isVisible()
    queue = queue_of(w)
    drop(queue.table.viewport(), row_pos(queue, case.case_id), UNIT_MIME, unit.unit_id)
    q = orders.question
    qtbot.keyClick(q.send, Qt.Key_Escape)            # Esc, even on "send anyway": cancel
    assert orders.question is None
    qtbot.wait(50)
    assert orders.orders == {} and session.services[0].counts["accepted"] == 0
    assert not toasts_on(w)


def test_a_near_drop_in_the_units_district_sends_at_once_with_a_toast(qtbot, wall):
    session, w, orders = wall
    st = session.situation
    case, unit = near_pair(st)
    queue = queue_of(w)
    drop(queue.table.viewport(), row_pos(queue, case.case_id), UNIT_MIME, unit.unit_id)
    assert orders.question is None
    assert sent(orders) == [(case.case_id, unit.unit_id)]
    (order,) = orders.orders.values()
    (toast,) = toasts_on(w)
    assert toast.isVisible() and toast.window() is w
    assert toast.head.text() == f"已发送 {unit.callsign} → {case.case_id}"
    assert toast.status.text() == "等待受理…"
    assert font_px(toast.head) >= 28 and font_px(toast.status) >= 28
    qtbot.waitUntil(lambda: toast.status.text() == "已受理", timeout=10000)
    assert order.state in ("acked", "done")
    assert ToastStack.of(w).isVisible()                 # over the panels, clicks go through
    assert ToastStack.of(w).testAttribute(Qt.WA_TransparentForMouseEvents)


def test_a_drop_outside_the_units_district_asks(qtbot, wall):
    session, w, orders = wall
    st = session.situation
    found = None
    for case in st.cases.values():
        if case.status != "registered" or case.unit_id is not None:
            continue
        for sug in nearest_available(st, case, n=30):
            worry = concern(st, case, sug.unit, LIMIT_M)
            if worry.outside and not worry.far:
                found = case, sug.unit, worry
                break
        if found:
            break
    assert found, "no unit of another district near a waiting case"
    case, unit, worry = found
    queue = queue_of(w)
    drop(queue.table.viewport(), row_pos(queue, case.case_id), UNIT_MIME, unit.unit_id)
    q = orders.question
    assert q is not None and orders.orders == {}
    from situation.catalog import district_name
    assert f"{unit.callsign} 属{district_name(worry.home)}，案件在" \
           f"{district_name(worry.case_district)}" in q.text()
    qtbot.mouseClick(q.cancel, Qt.LeftButton)
    assert orders.orders == {}


def test_a_refusal_is_said_on_the_toast_with_the_reason(qtbot, wall):
    session, w, orders = wall
    st = session.situation
    case, unit = near_pair(st)
    first = orders.dispatch(case.case_id, unit.unit_id)          # code: no window, no toast
    qtbot.waitUntil(lambda: orders.orders[first].state == "done", timeout=10000)
    assert not toasts_on(w)
    other = next(c for c in st.cases.values() if c.status == "registered"
                 and c.unit_id is None and c.case_id != case.case_id)
    queue = queue_of(w)
    drop(queue.table.viewport(), row_pos(queue, other.case_id), UNIT_MIME, unit.unit_id)
    if orders.question is not None:                # far or foreign: send it anyway
        qtbot.mouseClick(orders.question.send, Qt.LeftButton)
    (oid,) = [o for o in orders.orders if o != first]
    toast = orders.toast_for(oid)
    assert toast is not None and toast.window() is w
    qtbot.waitUntil(lambda: orders.orders[oid].state == "rejected", timeout=10000)
    orders.poll()
    reason = orders.orders[oid].reason
    assert reason.startswith("unit_assigned: ")                 # the service's, both languages
    zh = reason.rsplit(" / ", 1)[1]
    assert unit.callsign in zh and toast.status.text() == f"未接受：{zh}"     # said in ours
    from widgets import theme
    assert theme.ALARM in toast.styleSheet()
    shot(ToastStack.of(w), "toast-zh-refused")


def test_the_toast_is_on_the_window_the_order_came_from(qtbot):
    session, bridge, orders, (w1, w2) = demo(qtbot, screens=2, layout=cheap_layout(2))
    try:
        st = session.situation
        case, unit = near_pair(st)
        queue = queue_of(w2)
        drop(queue.table.viewport(), row_pos(queue, case.case_id), UNIT_MIME, unit.unit_id)
        (oid,) = orders.orders
        assert [t.order_id for t in toasts_on(w2)] == [oid]
        assert toasts_on(w1) == []
        qtbot.waitUntil(lambda: toasts_on(w2)[0].status.text() == "已受理", timeout=10000)
        # A far drop on the first window asks there, not on the second.
        case, unit = far_pair(st)
        queue = queue_of(w1)
        drop(queue.table.viewport(), row_pos(queue, case.case_id), UNIT_MIME, unit.unit_id)
        assert orders.question.window() is w1
    finally:
        stop(session, bridge, orders)


# ---- the map and the picker go through the same check -----------------------------------------
def test_a_far_drop_on_the_map_asks_too(qtbot):
    session, bridge, orders, (w,) = demo(qtbot)         # the built-in screen, with the map
    try:
        st = session.situation
        city = next(p for p in w.panels if p.name == "city_map")
        qtbot.waitUntil(lambda: city.loaded, timeout=20000)
        case, unit = far_pair(st)
        city.on_changed(type("C", (), {"units": set(), "cases": {case.case_id},
                                       "sensors": set()})())
        city.refresh()
        box = []
        city.js(f"cw.zoomTo('cases', {json.dumps(case.case_id)}, 17); "
                f"JSON.stringify(__CW_MAP__.latLngToContainerPoint([{case.lat}, {case.lon}]))",
                box.append)
        qtbot.waitUntil(lambda: bool(box), timeout=5000)
        p = json.loads(box[0])
        drop(city.view, QPoint(int(p["x"]), int(p["y"])), UNIT_MIME, unit.unit_id)
        qtbot.waitUntil(lambda: orders.question is not None, timeout=5000)
        assert orders.question.window() is w and orders.orders == {}
        qtbot.mouseClick(orders.question.send, Qt.LeftButton)
        assert sent(orders) == [(case.case_id, unit.unit_id)]
    finally:
        stop(session, bridge, orders)


def expected_nearest(st, case):
    """The three nearest available units by time to arrive, worked out here."""
    import math
    speeds = {"foot_patrol": 1.3, "vehicle": 8.0, "enforcement": 6.0, "sanitation": 4.0}

    def eta_s(u):
        kx = 111_000 * math.cos(math.radians((u.lat + case.lat) / 2))
        d = math.hypot((u.lon - case.lon) * kx, (u.lat - case.lat) * 111_000)
        return d * 1.35 / speeds[u.kind]
    return [(u.unit_id, eta_s(u)) for u in sorted(free(st), key=lambda u: (eta_s(u),
                                                                          u.unit_id))[:3]]


def test_the_picker_is_full_size_and_its_choice_is_checked(qtbot, wall):
    session, w, orders = wall
    st = session.situation
    case = open_case(st)
    queue = queue_of(w)
    queue.refresh()
    queue.table.selectRow(queue.model.keys.index(case.case_id))
    queue._ask_dispatch()                                     # D
    p = orders.picker
    assert isinstance(p, UnitPicker) and p.isVisible() and p.window() is w
    expected = expected_nearest(st, case)
    assert p.unit_ids == [u for u, _ in expected]
    t = p.table
    assert font_px(t) >= 24 and t.horizontalHeader().font().pixelSize() >= 24
    assert all(t.rowHeight(r) >= 60 for r in range(t.rowCount()))
    heads = [t.horizontalHeaderItem(c).text() for c in range(t.columnCount())]
    assert "距离" in heads and "预计到达" in heads
    first = st.units[expected[0][0]]
    row = [t.item(0, c).text() for c in range(t.columnCount())]
    assert first.callsign in row
    assert f"约 {eta_words(expected[0][1], 'zh')}" in row             # 约 7 分钟, 约 1 小时 47 分
    assert row[heads.index("距离")].endswith(" km")
    assert orders.orders == {}
    # The choice goes through the same check: with a limit of 10 m, everything asks.
    orders.confirm_km = 0.01
    qtbot.mouseClick(t.viewport(), Qt.LeftButton, pos=t.visualItemRect(t.item(0, 1)).center())
    assert orders.picker is None and not p.isVisible()
    q = orders.question
    assert q is not None and orders.orders == {}
    qtbot.mouseClick(q.send, Qt.LeftButton)
    assert sent(orders) == [(case.case_id, first.unit_id)]


def test_the_picker_by_keys(qtbot, wall):
    session, w, orders = wall
    st = session.situation
    case = open_case(st)
    orders.pick(case.case_id, queue_of(w))
    qtbot.keyClick(orders.picker.table, Qt.Key_Escape)
    assert orders.picker is None and orders.orders == {}
    orders.pick(case.case_id, queue_of(w))
    ids = orders.picker.unit_ids
    orders.confirm_km = 1000.0                    # nothing asks: the key sends
    worry = concern(st, case, st.units[ids[1]], orders.confirm_km * 1000)
    qtbot.keyClick(orders.picker.table, Qt.Key_2)
    if worry.outside:                            # of another district: still asked
        qtbot.mouseClick(orders.question.send, Qt.LeftButton)
    assert sent(orders) == [(case.case_id, ids[1])]


# ---- role first; toasts on the situation's clock (a hand-made situation) -------------------------
class StubClient:
    """The dispatch client as the glue sees it: a role, what was sent, replies to hand back."""

    def __init__(self, role=None, districts=None):
        self.role, self.districts, self.sent, self.events = role, districts, [], []

    def send(self, type, **fields):
        self.sent.append((type, fields))
        return f"o{len(self.sent)}"

    def poll(self):
        out, self.events = self.events, []
        return out

    def close(self):
        pass


class Reply:
    def __init__(self, result, reason=None):
        self.result, self.reason = result, reason


@pytest.fixture
def sc(qapp):
    from tests.scenario import standard
    from widgets.theme import apply_theme
    apply_theme(qapp)
    sc = standard()
    sc.unit("UF", callsign="密云-巡09", kind="foot_patrol", status="available",
            lat=40.38, lon=116.84)                          # 密云, ~50 km from C-SOON
    return sc


def scenario_wall(qtbot, sc, client, lang="zh"):
    orders = DispatchController(sc.situation, client, lang)
    orders.stop()                                   # the test polls
    (w,) = build_wall(sc.situation, None, lang, "LIVE", QGuiApplication.screens()[:1], orders,
                      cheap_layout(1))
    qtbot.addWidget(w)
    w.show()
    w.refresh_now()
    return orders, w


def test_the_role_is_checked_before_the_distance(qtbot, sc):
    client = StubClient("viewer")
    orders, w = scenario_wall(qtbot, sc, client)
    queue = queue_of(w)
    drop(queue.table.viewport(), row_pos(queue, "C-SOON"), UNIT_MIME, "UF")
    assert orders.question is None and client.sent == []
    assert [r[0] for r in orders.refused] == ["dispatch"]
    orders.pick("C-SOON", queue)
    assert orders.picker is None and len(orders.refused) == 2


def test_toasts_follow_the_answer_and_go_on_the_situations_clock(qtbot, sc):
    from tests.scenario import MIN
    client = StubClient()
    orders, w = scenario_wall(qtbot, sc, client)
    queue = queue_of(w)
    drop(queue.table.viewport(), row_pos(queue, "C-SOON"), UNIT_MIME, "U2")   # 8 km, 朝阳
    assert client.sent == [("dispatch", {"case_id": "C-SOON", "unit_id": "U2"})]
    (toast,) = toasts_on(w)
    assert toast.text() == "已发送 朝阳-车02 → C-SOON · 等待受理…"
    client.events.append(("resent", "o1"))
    orders.poll()
    assert toast.status.text() == "等待受理…（已重发 1 次）"
    client.events.append(("ack", "o1", Reply("accepted")))
    orders.poll()
    assert toast.status.text() == "已受理"
    sc.clock.advance(ACCEPTED_MS - 1)
    orders.poll()
    assert toast.isVisible()
    sc.clock.advance(1)
    orders.poll()
    assert toasts_on(w) == [] and orders.toast_for("o1") is None
    # A far drop, sent anyway, refused; another never answered.
    drop(queue.table.viewport(), row_pos(queue, "C-SOON"), UNIT_MIME, "UF")
    qtbot.mouseClick(orders.question.send, Qt.LeftButton)
    client.events.append(("ack", "o2", Reply("rejected", "密云-巡09 当前状态为 on_scene，不可派遣")))
    orders.poll()
    assert orders.toast_for("o2").status.text() == "未接受：密云-巡09 当前状态为 on_scene，不可派遣"
    drop(queue.table.viewport(), row_pos(queue, "C-NODUE"), UNIT_MIME, "U2")
    if orders.question is not None:
        qtbot.mouseClick(orders.question.send, Qt.LeftButton)
    client.events.append(("unconfirmed", "o3"))
    orders.poll()
    assert orders.toast_for("o3").status.text() == "未确认：请电话核实"
    assert len(toasts_on(w)) == 2
    sc.clock.advance(MIN)
    orders.poll()
    assert toasts_on(w) == []


def test_an_unanswered_question_is_put_away_and_sends_nothing(qtbot, sc):
    from ui.dispatch import CONFIRM_MS
    client = StubClient()
    orders, w = scenario_wall(qtbot, sc, client, "en")
    queue = queue_of(w)
    drop(queue.table.viewport(), row_pos(queue, "C-SOON"), UNIT_MIME, "UF")
    q = orders.question
    assert "Send 密云-巡09 anyway" == q.send.text() and "Send 朝阳-车02 instead" == \
        q.alternative.text()
    assert "km away (over 10 km)" in q.text() and "密云-巡09 is a Miyun unit; the case is " \
        "in Chaoyang" in q.text()
    sc.clock.advance(CONFIRM_MS)
    orders.poll()
    assert orders.question is None and not q.isVisible() and client.sent == []


def test_words():
    from ui.order_toast import reason_in
    said = ("unit_assigned: 东城-巡01 is already working case C1 (dispatched) / "
            "东城-巡01 已派往案件 C1（dispatched）")
    assert reason_in(said, "zh") == "东城-巡01 已派往案件 C1（dispatched）"
    assert reason_in(said, "en") == "东城-巡01 is already working case C1 (dispatched)"
    assert reason_in("service busy", "zh") == "service busy" and reason_in(None, "en") == "?"
    assert [eta_words(s, "zh") for s in (10, 7 * 60, 3600, 20 * 3600 + 12 * 60)] == \
        ["1 分钟", "7 分钟", "1 小时 0 分", "20 小时 12 分"]
    assert eta_words(20 * 3600 + 12 * 60, "en") == "20 h 12 min"


def test_the_unit_district_and_the_alternative():
    from tests.scenario import standard
    from situation.suggest import alternative
    sc = standard()
    st = sc.situation
    sc.unit("UF", callsign="密云-巡09", kind="foot_patrol", status="available",
            lat=40.38, lon=116.84)
    sc.unit("UX", callsign="Patrol 7", kind="vehicle", status="available",
            lat=39.99, lon=116.47)                       # no district in its name: where it is
    assert home_district(st, st.units["UF"]) == "110118"
    assert home_district(st, st.units["UX"]) == "110105"
    case = st.cases["C-SOON"]
    worry = concern(st, case, st.units["UF"], LIMIT_M)
    assert worry.far and worry.outside and worry.ask
    assert not concern(st, case, st.units["U2"], LIMIT_M).ask
    alt = alternative(st, case, "UF", LIMIT_M)
    assert alt.unit.unit_id == "UX"                     # nearest by time to arrive, sane
    alt = alternative(st, case, "UF", LIMIT_M, allowed=lambda u: u != "UX")
    assert alt.unit.unit_id == "U2"
    assert alternative(st, case, "UF", LIMIT_M, allowed=lambda u: False) is None


# ---- what it looks like (CW_SHOTS=DIR) -----------------------------------------------------------
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_screenshots(qtbot, lang):
    session, bridge, orders, (w,) = demo(qtbot, lang, size=(1920, 1080))
    try:
        st = session.situation
        case, unit = far_pair(st)
        queue = queue_of(w)
        drop(queue.table.viewport(), row_pos(queue, case.case_id), UNIT_MIME, unit.unit_id)
        q = orders.question
        assert q.isVisible() and q.width() <= w.width()
        shot(w, f"confirm-{lang}-window")
        shot(q, f"confirm-{lang}")
        qtbot.mouseClick(q.alternative, Qt.LeftButton)
        (order,) = orders.orders.values()
        toast = orders.toast_for(order.order_id)
        shot(w, f"toast-{lang}-sent-window")
        qtbot.waitUntil(lambda: order.state in ("acked", "done"), timeout=10000)
        orders.poll()
        shot(w, f"toast-{lang}-accepted-window")
        shot(ToastStack.of(w), f"toast-{lang}-accepted")
        assert toast.isVisible()
        orders.pick(open_case(st).case_id, queue)
        assert orders.picker.isVisible()
        shot(w, f"picker-{lang}-window")
        shot(orders.picker, f"picker-{lang}")
    finally:
        stop(session, bridge, orders)

"""Dispatch from the wall, end to end: a drop on the case queue, on the unit roster and on the
map sends a real order through the demo's dispatch service (ROUTER/DEALER in process, its
SQLite file on disk); the service accepts, the demo city carries it out, and the console sees
the case and the unit move on."""
from __future__ import annotations

import argparse
import json

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import QApplication

from ui.bridge import SituationBridge
from ui.dispatch import DispatchController
from ui.session import build_session
from ui.wall import build_wall
from widgets.case_queue import CASE_MIME, UNIT_MIME

START = 1_795_483_800_000          # 2026-11-24 09:30 Beijing


@pytest.fixture
def wall(qtbot):
    args = argparse.Namespace(demo=True, feed=None, demo_feed=None, speed=1.0, seed=4,
                              start_ms=START, clock="wall", max_record_bytes=65536,
                              dispatch=None, console_id="test-console")
    session = build_session(args)
    bridge = SituationBridge(session.situation, session.sources)
    orders = DispatchController(session.situation, session.client, "zh")
    (w,) = build_wall(session.situation, bridge, "zh", "DEMO", QGuiApplication.screens()[:1],
                      orders)
    qtbot.addWidget(w)
    w.show()
    bridge.start()
    st = session.situation
    qtbot.waitUntil(lambda: len(st.units) > 100 and any(
        c.status == "registered" and c.unit_id is None for c in st.cases.values()),
        timeout=20000)
    yield session, w, orders
    bridge.stop()
    orders.stop()
    session.stop()


def pick(st):
    """A waiting case and an available unit of its district near it: a drop sends at once
    (a far or foreign one asks first: tests/test_dispatch_sanity.py)."""
    from situation.suggest import concern, nearest_available
    from ui.dispatch import CONFIRM_KM
    for case in st.cases.values():
        if case.status == "registered" and case.unit_id is None:
            for sug in nearest_available(st, case, n=20):
                if not concern(st, case, sug.unit, CONFIRM_KM * 1000).ask:
                    return case, sug.unit
    pytest.fail("no waiting case with a unit of its district near it")


def drop(widget, pos: QPoint, mime: str, key: str) -> None:
    data = QMimeData()
    data.setData(mime, key.encode())
    for cls in (QDragEnterEvent, QDragMoveEvent):
        QApplication.sendEvent(widget, cls(pos, Qt.CopyAction, data, Qt.LeftButton,
                                           Qt.NoModifier))
    QApplication.sendEvent(widget, QDropEvent(QPointF(pos), Qt.CopyAction, data, Qt.LeftButton,
                                              Qt.NoModifier))


def row_pos(panel, key) -> QPoint:
    """Where the row of ``key`` is in the table's viewport, scrolled into view (laid out
    first: a table just resized or refilled scrolls to where its rows were)."""
    panel.refresh()
    QApplication.processEvents()
    panel.table.doItemsLayout()
    row = panel.model.keys.index(key)
    panel.table.scrollTo(panel.model.index(row, 1))
    pos = panel.table.visualRect(panel.model.index(row, 1)).center()
    assert panel.table.viewport().rect().contains(pos), (key, pos)
    return pos


def assigned(st, case_id, unit_id) -> bool:
    c, u = st.cases.get(case_id), st.units.get(unit_id)
    return c is not None and u is not None and c.unit_id == unit_id and u.case_id == case_id


def test_drop_a_unit_on_a_case_in_the_queue(qtbot, wall):
    session, w, orders = wall
    st = session.situation
    queue = next(p for p in w.panels if p.name == "case_queue")
    case, unit = pick(st)
    drop(queue.table.viewport(), row_pos(queue, case.case_id), UNIT_MIME, unit.unit_id)
    assert len(orders.orders) == 1
    (order,) = orders.orders.values()
    assert (order.case_id, order.unit_id, order.state) == (case.case_id, unit.unit_id, "pending")
    queue.refresh()
    assert cells_text(queue, case.case_id)[6].startswith("⏳")      # shown pending
    qtbot.waitUntil(lambda: order.state == "done", timeout=10000)
    assert assigned(st, case.case_id, unit.unit_id)
    assert st.cases[case.case_id].status in ("dispatched", "on_scene")
    assert session.services[0].counts["accepted"] == 1


def test_drop_a_case_on_a_unit_in_the_roster_and_a_refusal_in_plain_words(qtbot, wall):
    session, w, orders = wall
    st = session.situation
    roster = next(p for p in w.panels if p.name == "unit_roster")
    case, unit = pick(st)
    drop(roster.table.viewport(), row_pos(roster, unit.unit_id), CASE_MIME, case.case_id)
    qtbot.waitUntil(lambda: any(o.state == "done" for o in orders.orders.values()), timeout=10000)
    # The same unit again, to another case: it is busy now; the service says so.
    other = next(c for c in st.cases.values() if c.status == "registered" and c.unit_id is None
                 and c.case_id != case.case_id)
    oid = orders.dispatch(other.case_id, unit.unit_id)
    qtbot.waitUntil(lambda: orders.orders[oid].state == "rejected", timeout=10000)
    assert orders.orders[oid].reason
    assert "派遣未获接受" in w.header.message.text()


def test_drop_a_unit_on_a_case_on_the_map(qtbot, wall):
    session, w, orders = wall
    st = session.situation
    city = next(p for p in w.panels if p.name == "city_map")
    qtbot.waitUntil(lambda: city.loaded, timeout=20000)
    case, unit = pick(st)
    city.on_changed(type("C", (), {"units": set(), "cases": {case.case_id}, "sensors": set()})())
    city.refresh()
    box = []
    city.js(f"cw.zoomTo('cases', {json.dumps(case.case_id)}, 17); "
            f"JSON.stringify(__CW_MAP__.latLngToContainerPoint([{case.lat}, {case.lon}]))",
            box.append)
    qtbot.waitUntil(lambda: bool(box), timeout=5000)
    p = json.loads(box[0])
    drop(city.view, QPoint(int(p["x"]), int(p["y"])), UNIT_MIME, unit.unit_id)
    qtbot.waitUntil(lambda: any(o.case_id == case.case_id for o in orders.orders.values()),
                    timeout=5000)
    qtbot.waitUntil(lambda: assigned(st, case.case_id, unit.unit_id), timeout=10000)


def test_keyboard_dispatch_suggests_the_three_nearest_units(qtbot, wall):
    import math
    session, w, orders = wall
    st = session.situation
    case, _unit = pick(st)
    speeds = {"foot_patrol": 1.3, "vehicle": 8.0, "enforcement": 6.0, "sanitation": 4.0}

    def eta_s(u):           # worked out here, independently: metres along the streets / speed
        kx = 111_000 * math.cos(math.radians((u.lat + case.lat) / 2))
        d = math.hypot((u.lon - case.lon) * kx, (u.lat - case.lat) * 111_000)
        return d * 1.35 / speeds[u.kind]
    free = [u for u in st.units.values() if u.status == "available" and not st.unit_stale(u)]
    expected = [u.unit_id for u in sorted(free, key=lambda u: (eta_s(u), u.unit_id))[:3]]
    queue = next(p for p in w.panels if p.name == "case_queue")
    orders.pick(case.case_id, queue)                        # D on the case: the picker
    picker = orders.picker
    assert picker.unit_ids == expected
    first = st.units[expected[0]]
    row = [picker.table.item(0, c).text() for c in range(picker.table.columnCount())]
    assert first.callsign in row
    minutes = max(1, round(eta_s(first) / 60))
    assert (f"约 {minutes} 分钟" if minutes < 60
            else f"约 {minutes // 60} 小时 {minutes % 60} 分") in row
    picker.cancel()
    assert orders.orders == {}


def cells_text(panel, key):
    row = panel.model.keys.index(key)
    return [panel.model.data(panel.model.index(row, c)) for c in range(panel.model.columnCount())]


def test_recall_and_the_order_audit(qtbot, wall):
    from widgets.order_audit import OrderAudit
    session, w, orders = wall
    st = session.situation
    audit = OrderAudit(st, "zh")
    audit.orders = orders
    qtbot.addWidget(audit)
    case, unit = pick(st)
    oid = orders.dispatch(case.case_id, unit.unit_id)
    qtbot.waitUntil(lambda: orders.orders[oid].state == "done", timeout=10000)
    rid = orders.recall(unit.unit_id)
    qtbot.waitUntil(lambda: orders.orders[rid].state == "done", timeout=10000)
    qtbot.waitUntil(lambda: st.units[unit.unit_id].case_id is None
                    and st.cases[case.case_id].unit_id is None, timeout=10000)
    audit.refresh()
    assert audit.model.keys == [rid, oid]                       # newest first
    assert [cells_text(audit, k)[1] for k in (rid, oid)] == ["召回", "派遣"]
    assert all(cells_text(audit, k)[4] == "已执行" for k in (rid, oid))


def test_a_console_started_mid_shift_shows_every_open_case_at_once(tmp_path):
    """The cases' own publisher has gone quiet; a new console learns them from the service's
    snapshot alone."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    import zmq

    from feeds.dispatch_service import DispatchService
    from tests.pubhelp import TestPublisher, record
    ctx = zmq.Context()
    pub = TestPublisher(ctx)
    svc = DispatchService([pub.endpoint], "tcp://127.0.0.1:*", "tcp://127.0.0.1:*",
                          tmp_path / "d.db", context=ctx).start()
    try:
        pub.wait_subscriber()
        now = time.time_ns() // 1_000_000
        for i in range(7):
            pub.send("case", record("case", src="cases", seq=i, ts=now, case_id=f"M{i}"))
        pub.send("unit", record("unit", src="cases", seq=7, ts=now, unit_id="MU"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(svc.cases) < 7:
            time.sleep(0.05)
        pub.close()
        status = tmp_path / "status.json"
        out = subprocess.run([sys.executable, "main.py", "--headless", "--feed",
                              svc.feed_endpoint, "--dispatch", svc.dispatch_endpoint,
                              "--run-for", "1", "--status-out", str(status)],
                             cwd=Path(__file__).resolve().parent.parent, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr[-1500:]
        doc = json.loads(status.read_text())
        assert doc["open_cases"] == 7 and doc["units"] == 1
        assert "cases" not in doc["sources"]        # held, but its publisher was never heard
    finally:
        svc.stop()
        ctx.term()

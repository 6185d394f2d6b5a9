"""Issue 13 on the wall: the red 未加密 / UNENCRYPTED badge on every screen, the seat's role in
the header, gestures by role (a viewer sends nothing, a dispatcher only inside its districts,
each told why), failed handshakes and src_not_allowed on feed health. Offscreen, pytest-qt;
the sockets and command lines are in test_console_security.py."""
from __future__ import annotations

import pytest


@pytest.fixture
def sc(qapp):
    from tests.scenario import standard
    from widgets.theme import apply_theme
    apply_theme(qapp)
    return standard()


def cheap_layout(screens: int = 2):
    from layouts import engine
    return engine.from_rows("t", [("一", "One", [(1, [("case_queue", 1), ("unit_roster", 1)])])
                                  ] * screens)


@pytest.mark.parametrize("lang,word", [("zh", "未加密"), ("en", "UNENCRYPTED")])
def test_every_screen_says_unencrypted_in_red(qtbot, sc, lang, word):
    from PySide6.QtGui import QGuiApplication
    from ui.wall import Wall
    from widgets import theme
    screen = QGuiApplication.screens()[0]
    wall = Wall(sc.situation, None, lang, "LIVE", layout=cheap_layout(2),
                unencrypted=["tcp://10.0.0.5:5556"])
    for windows in (wall.build([screen, screen], show=False), wall.relayout()):
        assert len(windows) == 2
        for w in windows:
            qtbot.addWidget(w)
            badge = w.header.unencrypted
            assert not badge.isHidden() and word in badge.text()
            assert theme.ALARM in badge.styleSheet()
            assert badge.font().pixelSize() >= 26
            assert "tcp://10.0.0.5:5556" in badge.toolTip()
    quiet = Wall(sc.situation, None, lang, "LIVE", layout=cheap_layout(1))
    (w,) = quiet.build([screen], show=False)
    qtbot.addWidget(w)
    assert w.header.unencrypted.isHidden()


def test_role_badge_words():
    from widgets.header import role_text
    assert role_text("dispatcher", ["110101", "110105"], "zh") == "调度员 · 东城 朝阳"
    assert role_text("dispatcher", ["110101", "110105"], "en") == \
        "dispatcher · Dongcheng Chaoyang"
    for role, zh, en in (("viewer", "观察员", "viewer"), ("commander", "指挥长", "commander"),
                         ("trainer", "培训", "trainer")):
        assert role_text(role, None, "zh") == zh and role_text(role, None, "en") == en
    assert role_text(None, None, "zh") == ""


class StubClient:
    """The dispatch client as the glue sees it: the role the service gave, and what was sent."""

    def __init__(self, role=None, districts=None):
        self.role, self.districts, self.sent = role, districts, []

    def send(self, type, **fields):
        self.sent.append((type, fields))
        return f"o{len(self.sent)}"

    def poll(self):
        return []

    def close(self):
        pass


def role_wall(qtbot, sc, client, lang="zh"):
    from PySide6.QtGui import QGuiApplication
    from ui.dispatch import DispatchController
    from ui.wall import build_wall
    orders = DispatchController(sc.situation, client, lang)
    (w,) = build_wall(sc.situation, None, lang, "LIVE", QGuiApplication.screens()[:1], orders,
                      cheap_layout(1))
    qtbot.addWidget(w)
    w.refresh_now()
    queue = next(p for p in w.panels if p.name == "case_queue")
    roster = next(p for p in w.panels if p.name == "unit_roster")
    return orders, w, queue, roster


def drop(panel, row_key: str, mime: str, key: str) -> None:
    from PySide6.QtCore import QMimeData, QPointF, Qt
    from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
    from PySide6.QtWidgets import QApplication
    panel.refresh()
    row = panel.model.keys.index(row_key)
    pos = panel.table.visualRect(panel.model.index(row, 1)).center()
    data = QMimeData()
    data.setData(mime, key.encode())
    target = panel.table.viewport()
    for cls in (QDragEnterEvent, QDragMoveEvent):
        QApplication.sendEvent(target, cls(pos, Qt.CopyAction, data, Qt.LeftButton,
                                           Qt.NoModifier))
    QApplication.sendEvent(target, QDropEvent(QPointF(pos), Qt.CopyAction, data, Qt.LeftButton,
                                              Qt.NoModifier))


def test_a_viewer_sends_nothing_and_is_told_why(qtbot, sc):
    from widgets.case_queue import UNIT_MIME
    from widgets.i18n import tr
    client = StubClient("viewer")
    orders, w, queue, roster = role_wall(qtbot, sc, client)
    why = tr("deny.viewer", "zh")
    assert w.header.role.text().strip() == "观察员" and not w.header.role.isHidden()
    drop(queue, "C-SOON", UNIT_MIME, "U2")
    assert client.sent == [] and orders.orders == {}
    assert w.header.message.text() == why            # said in the header, in red
    assert queue.table.toolTip() == why and not queue.table.dragEnabled()
    assert roster.table.toolTip() == why and not roster.table.dragEnabled()
    queue.table.selectRow(queue.model.keys.index("C-SOON"))
    queue._ask_dispatch()                             # D: no menu, the reason
    assert orders.recall("U1") is None                # nor a recall
    assert client.sent == [] and [r[0] for r in orders.refused] == ["dispatch"] * 2 + ["recall"]


def test_a_dispatcher_orders_inside_its_districts_only(qtbot, sc):
    from widgets.case_queue import CASE_MIME, UNIT_MIME
    st = sc.situation
    chaoyang = "110105"
    assert st.cases["C-SOON"].district == chaoyang                   # located from its point
    assert st.locator.locate(st.units["U2"].lon, st.units["U2"].lat) == chaoyang
    assert st.cases["C-LATE"].district == "110101"                   # 东城
    client = StubClient("dispatcher", [chaoyang])
    orders, w, queue, roster = role_wall(qtbot, sc, client)
    assert w.header.role.text().strip() == "调度员 · 朝阳"
    assert queue.table.dragEnabled()                  # a dispatcher drags
    drop(queue, "C-LATE", UNIT_MIME, "U2")            # a case in 东城: refused here
    assert client.sent == []
    said = w.header.message.text()
    assert "C-LATE" in said and "东城" in said and "朝阳" in said
    late = queue.model.keys.index("C-LATE")
    assert queue.model.rows[late][6].tip == orders.refusal("dispatch", "C-LATE")
    drop(queue, "C-SOON", UNIT_MIME, "U2")            # inside: one order goes out
    assert client.sent == [("dispatch", {"case_id": "C-SOON", "unit_id": "U2"})]
    drop(roster, "U2", CASE_MIME, "C-LATE")           # a case dropped on the unit: the same
    assert len(client.sent) == 1


def test_a_dispatcher_role_in_english(qtbot, sc):
    orders, w, queue, _ = role_wall(qtbot, sc, StubClient("dispatcher", ["110101", "110105"]),
                                    "en")
    assert w.header.role.text().strip() == "dispatcher · Dongcheng Chaoyang"
    assert orders.refusal("dispatch", "C-LATE", "U2") is None


def test_feed_health_shows_failed_handshakes_and_src_not_allowed(qtbot, sc):
    from feeds.batch import Batch
    from widgets.feed_health import FeedHealth
    from widgets import theme
    ep = "tcp://127.0.0.1:5999"
    sc.situation.expect_endpoint(ep)
    batch = Batch()
    batch.auth_failed[ep] += 3
    batch.rejects[("b-city", "src_not_allowed")] += 2
    sc.situation.apply(batch)
    for lang, words, why in (("zh", "认证失败 3", "来源未授权 2"), ("en", "auth failed 3",
                                                                 "src not allowed 2")):
        f = FeedHealth(sc.situation, lang)
        qtbot.addWidget(f)
        f.refresh()
        row = f.model.rows[f.model.keys.index(f"ep:{ep}")]
        assert words in row[1].text and row[1].fg == theme.ALARM
        src = f.model.rows[f.model.keys.index("src:b-city")]
        assert src[6].text == "2" and src[7].text == why

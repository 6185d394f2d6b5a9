"""The commander's console: docks that close, float and come back; the arrangement survives a
restart; "save layout as…" writes a layout file the wall can open."""
from __future__ import annotations

from PySide6.QtCore import QSettings

from layouts import engine
from tests.scenario import standard
from ui.console import CommanderConsole
from widgets.registry import PANELS


def console(qtbot, tmp_path, sc=None):
    sc = sc or standard()
    settings = QSettings(str(tmp_path / "console.ini"), QSettings.IniFormat)
    layout = engine.load_layout("commander", set(PANELS))
    c = CommanderConsole(sc.situation, None, "zh", "LIVE", layout.screens[0], settings)
    qtbot.addWidget(c)
    return sc, c


def test_panels_are_docks_around_the_map(qtbot, tmp_path):
    _, c = console(qtbot, tmp_path)
    assert c.centralWidget().name == "city_map"
    assert {d.widget().name for d in c.docks.values()} == {
        "supervision_kpis", "case_queue", "unit_roster", "feed_health"}
    assert c.panel_names()[0] == "clock"


def test_the_console_reopens_as_it_was_left(qtbot, tmp_path):
    sc, c = console(qtbot, tmp_path)
    c.show()
    roster = next(d for d in c.docks.values() if d.widget().name == "unit_roster")
    feeds = next(d for d in c.docks.values() if d.widget().name == "feed_health")
    feeds.close()                                    # the commander closes one
    roster.setFloating(True)                         # and floats another
    assert "feed_health" not in c.panel_names()
    c.close()                                        # saved on close
    _, again = console(qtbot, tmp_path, sc)
    again.show()
    names = {d.widget().name: d for d in again.docks.values()}
    assert names["feed_health"].isHidden() and names["unit_roster"].isFloating()
    assert any(a.text() == "恢复面板" for a in again.menu().actions())


def test_save_layout_as_writes_a_file_the_wall_can_open(qtbot, tmp_path):
    _, c = console(qtbot, tmp_path)
    next(d for d in c.docks.values() if d.widget().name == "feed_health").close()
    target = tmp_path / "mine.toml"
    c.save_layout_as(str(target))
    loaded = engine.load_layout(str(target), set(PANELS))
    shown = {cell.panel for cell in loaded.screens[0].cells}
    assert shown == {"supervision_kpis", "case_queue", "city_map", "unit_roster"}
    assert loaded == c.as_layout()

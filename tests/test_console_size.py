"""Issue 14: the commander's console (``--console``) at its default 1600×1000 — the map has a
large central area, the case queue keeps its key columns (time left, stage, unit, category),
no dock says its name twice, nothing is elided or clipped (the walk of test_elision.py), and
the console follows the layout's palette (night: dimmed)."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QDockWidget

from tests.test_elision import KEY_COLUMNS, demo, settle, walk  # noqa: F401 (the fixture)

SIZE = (1600, 1000)


def console(qtbot, tmp_path, situation, lang="zh", layout_name="commander"):
    from layouts import engine
    from ui.console import CommanderConsole
    from widgets.registry import PANELS
    settings = QSettings(str(tmp_path / f"console-{lang}-{layout_name}.ini"),
                         QSettings.IniFormat)
    layout = engine.load_layout(layout_name, set(PANELS))
    c = CommanderConsole(situation, None, lang, "LIVE", layout, settings)
    qtbot.addWidget(c)
    c.show()
    settle(c)
    return c


@pytest.fixture
def day_again():
    yield
    from widgets import theme
    theme.choose_palette(None)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_map_is_large_and_central_and_the_queue_keeps_its_key_columns(
        qtbot, tmp_path, demo, lang, day_again):
    c = console(qtbot, tmp_path, demo.situation, lang)
    assert (c.width(), c.height()) == SIZE
    city = c.centralWidget()
    assert city.name == "city_map"
    geo = city.geometry()
    share = geo.width() * geo.height() / (SIZE[0] * SIZE[1])
    # It was a 1000×150 strip (9 %); now the largest thing in the window, however wide the
    # queue's key columns are in this language.
    assert share >= 0.28, (geo, share)
    assert geo.width() >= SIZE[0] * 0.45 and geo.height() >= 550, geo
    for d in c.findChildren(QDockWidget):
        if d.isVisible():
            assert d.width() * d.height() < geo.width() * geo.height(), d.windowTitle()
    queue = next(p for p in c.panels if p.name == "case_queue")
    assert queue.isVisibleTo(c)
    hidden = set(queue.hidden_columns)
    assert not hidden & set(KEY_COLUMNS["case_queue"]), (lang, queue.hidden_columns,
                                                          queue.width())
    c.grab().save(str(tmp_path / f"console-{lang}.png"))


def test_no_dock_repeats_its_title(qtbot, tmp_path, demo, day_again):
    c = console(qtbot, tmp_path, demo.situation)
    docks = c.findChildren(QDockWidget)
    assert docks
    from PySide6.QtWidgets import QLabel
    for d in docks:
        panel = d.widget()
        assert d.windowTitle()                       # said once: in the dock's title bar
        assert panel.title.isHidden(), d.windowTitle()
        panel.title.show()                           # whoever asks: the dock names it
        assert panel.title.isHidden()
        for size in ((1500, 900), (1600, 1000)):     # however the panel re-arranges itself
            c.resize(*size)
            settle(c)
            again = [lab.text() for lab in panel.findChildren(QLabel)
                     if lab.isVisibleTo(c) and lab.text() == d.windowTitle()]
            assert not again, (d.windowTitle(), size)
        bar = d.titleBarWidget()
        assert bar.name.text() == d.windowTitle() and bar.name.font().pixelSize() >= 20


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_nothing_in_the_console_is_elided_or_clipped(qtbot, tmp_path, demo, lang, day_again):
    c = console(qtbot, tmp_path, demo.situation, lang)
    problems = walk(c, f"console/{lang}/1600x1000:")
    if problems:
        pytest.fail(f"{len(problems)} elided or clipped:\n" + "\n".join(problems),
                    pytrace=False)


def test_the_console_follows_the_night_palette(qtbot, tmp_path, demo, day_again):
    from widgets import theme
    c = console(qtbot, tmp_path, demo.situation, "zh", "night")
    night = theme.PALETTES["night"]
    assert theme.current == "night"
    assert night["BG"] in c.styleSheet()
    img = c.grab().toImage()
    assert img.pixelColor(4, 4).name() in (night["HEADER"], night["BG"])
    # the rotation's pages (feed health, districts) are tabs here: the commander picks
    docks = {d.widget().name: d for d in c.findChildren(QDockWidget)}
    assert {"feed_health", "district_board"} <= set(docks)
    assert c.tabifiedDockWidgets(docks["feed_health"]) or \
        c.tabifiedDockWidgets(docks["district_board"])
    c.close()
    day = console(qtbot, tmp_path, demo.situation, "zh", "commander")
    assert theme.current == "day" and theme.PALETTES["day"]["BG"] in day.styleSheet()

"""Issue 14, the wall at wall scale — screens and clutter, and the header's legibility: one full
header per wall (the command screen, the leftmost) and a slim one elsewhere, with the red fault
banner and 未加密 on every screen; a darker palette for the night layout; no endpoint address or
publisher id in feed health's cells; no hint under the map; the overdue figure the largest.

Several screens are Qt's offscreen platform with a screens file, in a child process (a
platform is chosen once per process); the rest runs in this one, offscreen."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from tests.scenario import MIN, standard

ROOT = Path(__file__).resolve().parent.parent
BADGE_EP = "tcp://10.0.0.5:5556"


def luminance(colour: str) -> float:
    """WCAG 2 relative luminance of "#rrggbb", computed here, not taken from the theme."""
    rgb = [int(colour.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def cheap_layout(screens: int):
    from layouts import engine
    return engine.from_rows("t", [("屏", "Screen", [(1, [("case_queue", 1),
                                                          ("feed_health", 1)])])] * screens)


# ---- several screens: the child process ----------------------------------------------------
def probe(n: int, lang: str, shots: str) -> None:
    """Run in a child whose QT_QPA_PLATFORM names a screens file: build the wall on every
    screen with a fault recorded and an unencrypted endpoint, print each window's header."""
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication
    from feeds.receiver import THREAD_NAME
    from ui.wall import Wall
    from widgets.theme import apply_theme
    app = QApplication([])
    apply_theme(app)
    sc = standard()
    sc.situation.faults.record(THREAD_NAME, "SystemExit: restarted")
    wall = Wall(sc.situation, None, lang, "LIVE", layout=cheap_layout(n),
                unencrypted=[BADGE_EP])
    out = []
    for i, w in enumerate(wall.build(QGuiApplication.screens(), show=False)):
        w.refresh_now()
        h = w.header
        w.grab().save(str(Path(shots) / f"wall{n}-{lang}-{i}.png"))
        out.append({"x": w.geometry().x(), "slim": h.slim, "kpis": sorted(h.kpis),
                    "title": not h.title.isHidden(), "height": h.height(),
                    "clock": h.clock.time.text(), "mode": h.mode.text().strip(),
                    "fault": not h.fault.isHidden(), "fault_text": h.fault.text(),
                    "badge": not h.unencrypted.isHidden(), "badge_text": h.unencrypted.text(),
                    "badge_px": h.unencrypted.font().pixelSize(),
                    "fault_px": h.fault.font().pixelSize()})
    print("PROBE " + json.dumps(out, ensure_ascii=False))
    app.quit()


def run_probe(tmp_path, n: int, lang: str) -> list[dict]:
    # Listed right to left: the wall takes them by position, whatever order Qt gives.
    screens = [{"name": f"s{i}", "x": 1920 * i, "y": 0, "width": 1920, "height": 1080,
                "logicalDpiX": 96, "logicalDpiY": 96} for i in reversed(range(n))]
    config = tmp_path / f"screens{n}.json"
    config.write_text(json.dumps({"screens": screens}))
    env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={config}")
    code = ("from tests.test_wall_look import probe; "
            f"probe({n}, {lang!r}, {str(tmp_path)!r})")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("PROBE "))
    return json.loads(line[len("PROBE "):])


@pytest.mark.parametrize("n,lang", [(2, "zh"), (3, "zh"), (3, "en")])
def test_one_full_header_per_wall_and_the_alarms_on_every_screen(tmp_path, n, lang):
    from PySide6.QtGui import QImage
    wins = run_probe(tmp_path, n, lang)
    assert [w["x"] for w in wins] == [1920 * i for i in range(n)]        # leftmost first
    first, *others = wins
    assert not first["slim"] and not first["title"]          # the fault banner in its place
    assert first["kpis"] == ["alarms", "available", "feeds", "open", "overdue"]
    assert others and all(w["slim"] and not w["title"] and w["kpis"] == [] for w in others)
    assert all(w["height"] < first["height"] for w in others)             # slim is slimmer
    word, fault = ("未加密", "数据接收线程停止") if lang == "zh" else ("UNENCRYPTED",
                                                                  "feed receiver stopped")
    mode = "实时" if lang == "zh" else "LIVE"
    for w in wins:            # no screen looks healthy while another says it is not
        assert w["fault"] and fault in w["fault_text"]
        assert w["badge"] and word in w["badge_text"]
        assert w["badge_px"] >= 26 and w["fault_px"] >= 26
        assert w["clock"] == "09:30:00" and w["mode"] == mode
    for i in range(n):
        img = QImage(str(tmp_path / f"wall{n}-{lang}-{i}.png"))
        assert (img.width(), img.height()) == (1920, 1080)


# ---- in this process -------------------------------------------------------------------------
@pytest.fixture
def sc(qapp):
    from widgets.theme import apply_theme
    apply_theme(qapp)
    yield standard()
    apply_theme(qapp)                  # the day's palette again for the tests after


def test_the_night_palette_is_darker_with_the_same_meanings():
    from widgets.theme import PALETTES
    day, night = PALETTES["day"], PALETTES["night"]
    assert set(day) == set(night)
    for key in ("BG", "PANEL", "HEADER", "ALT_ROW", "TEXT", "MUTED", "DIM", "ACCENT"):
        assert luminance(night[key]) < luminance(day[key]), key
    assert luminance(night["TEXT"]) <= 0.6 * luminance(day["TEXT"])      # visibly, not a hint
    for key in ("OK", "WARN", "ALARM"):                # green, amber, red mean the same
        assert night[key] == day[key]
    for pal in (day, night):                           # and text still reads on its panels
        assert (luminance(pal["TEXT"]) + 0.05) / (luminance(pal["PANEL"]) + 0.05) > 7
    from layouts.engine import PALETTES as NAMES
    assert set(NAMES) == set(PALETTES)
    from widgets import theme
    try:
        for name in ("night", "day"):
            theme.use(name)
            assert all(getattr(theme, k) == v for k, v in PALETTES[name].items())
            assert PALETTES[name]["PANEL"] in theme.STYLE and theme.current == name
    finally:
        theme.use("day")
    with pytest.raises(ValueError):
        theme.use("dusk")


def mean_luminance(img) -> float:
    total, n = 0.0, 0
    for y in range(0, img.height(), 9):
        for x in range(0, img.width(), 9):
            c = img.pixelColor(x, y)
            total += 0.2126 * c.redF() + 0.7152 * c.greenF() + 0.0722 * c.blueF()
            n += 1
    return total / n


def test_the_night_layout_windows_use_the_night_palette(qtbot, qapp, sc):
    from PySide6.QtGui import QGuiApplication, QPalette
    from PySide6.QtWidgets import QLabel
    from layouts.engine import load_layout
    from ui.wall import build_wall
    from widgets import theme
    from widgets.registry import PANELS
    night = load_layout("night", set(PANELS))
    screens = QGuiApplication.screens()[:1]
    looks = {}
    for layout in (replace(night, palette="day"), night):
        (w,) = build_wall(sc.situation, None, "zh", "LIVE", screens, layout=layout)
        qtbot.addWidget(w)
        w.resize(1920, 1080)
        w.refresh_now()
        pal = theme.PALETTES[layout.palette]
        assert theme.current == layout.palette and theme.TEXT == pal["TEXT"]
        assert pal["BG"] in w.styleSheet() and pal["HEADER"] in w.header.styleSheet()
        assert qapp.palette().color(QPalette.Window).name() == pal["BG"]
        assert pal["TEXT"] in w.header.clock.time.styleSheet()
        img = w.grab().toImage()
        assert img.pixelColor(4, 4).name() == pal["HEADER"]        # what the screen shows
        looks[layout.palette] = mean_luminance(img)
        # the hint under the map is gone; the details line is blank until a click
        assert not any("点击" in lab.text() for lab in w.findChildren(QLabel))
        city = next(p for p in w.panels if p.name == "city_map")
        assert city.details.text().strip() == ""
        city.show_details("cases", "C-LATE")
        assert "C-LATE" in city.details.text()
        w.close()
    assert looks["night"] < looks["day"]
    (w,) = build_wall(sc.situation, None, "zh", "LIVE", screens)        # the day comes back
    qtbot.addWidget(w)
    assert theme.current == "day" and theme.PALETTES["day"]["BG"] in w.styleSheet()


def test_the_map_hint_is_gone_from_the_code():
    import widgets.city_map as city_map
    from widgets.i18n import STRINGS
    text = Path(city_map.__file__).read_text(encoding="utf-8")
    assert "点击地图上的标记查看详情" not in text and "map.click_hint" not in STRINGS
    assert not any("点击地图上的标记" in zh for zh, _ in STRINGS.values())


def visible_cells(panel) -> list[str]:
    m = panel.model
    return [m.data(m.index(r, c)) for r in range(m.rowCount()) for c in range(m.columnCount())]


def tips(panel) -> list[str]:
    m = panel.model
    return [m.data(m.index(r, c), Qt.ToolTipRole) or ""
            for r in range(m.rowCount()) for c in range(m.columnCount())]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_feed_health_names_sources_in_words_and_keeps_addresses_in_tooltips(qtbot, lang):
    from feeds.batch import Batch
    from tests.scenario import Scenario
    from widgets.feed_health import FeedHealth
    sc = Scenario()
    eps = ["inproc://citywall-demo", "inproc://citywall-dispatch-feed", BADGE_EP,
           "tcp://10.0.0.6:5556"]
    for ep in eps:
        sc.situation.expect_endpoint(ep)
    for src in ("demo-city", "dispatch", "east-cases"):
        sc.unit(f"U-{src}", src=src, callsign="东城-巡01", status="available")
    batch = Batch()
    batch.auth_failed[BADGE_EP] += 2
    sc.situation.apply(batch, {BADGE_EP})
    f = FeedHealth(sc.situation, lang)
    qtbot.addWidget(f)
    f.refresh()
    shown = " | ".join(visible_cells(f) + [f.summary.text()])
    assert "://" not in shown and "demo-city" not in shown
    assert "10.0.0" not in shown and "citywall" not in shown
    words = {"zh": ["演示城市", "调度服务", "演示城市接入", "调度服务接入", "接入点 1",
                    "接入点 2", "认证失败 2"],
             "en": ["demo city", "dispatch", "demo feed", "dispatch feed", "endpoint 1",
                    "endpoint 2", "auth failed 2"]}[lang]
    cells = visible_cells(f)
    for w in words:
        assert any(w in c for c in cells), w
    assert "east-cases" in cells                       # a source the wall does not know: its id
    hidden = " ".join(tips(f))
    for ep in eps:
        assert ep in hidden
    assert "demo-city" in hidden and "dispatch" in hidden
    row = f.model.keys.index(f"ep:{BADGE_EP}")
    assert f.model.rows[row][0].text == words[4]      # numbered among the others, in order


# ---- the header's figures ------------------------------------------------------------------
def test_the_overdue_figure_is_the_largest_and_at_least_64_px(qtbot, sc):
    from widgets.header import Header
    for scale in (1.0, 2.0):
        h = Header(sc.situation, "zh", "LIVE", scale=scale)
        qtbot.addWidget(h)
        h.refresh()
        px = {k: lab.font().pixelSize() for k, lab in h.figures().items()}
        assert set(px) == {"open", "overdue", "available", "alarms", "feeds", "clock"}
        assert all(v >= 64 * scale for v in px.values())
        assert all(px["overdue"] > v for k, v in px.items() if k != "overdue")
        assert h.kpis["overdue"].value.text() == "1"
        assert not h.title.isHidden() and not h.slim       # no fault: the centre's name
        # the figures' labels are as tall as the digits, so they are not clipped
        for lab in h.figures().values():
            assert lab.height() >= lab.font().pixelSize()
        assert h.height() <= 150 * scale


class FakeScreen:
    def __init__(self, w, h, dpi):
        from PySide6.QtCore import QRect
        self.geo, self.dpi = QRect(0, 0, w, h), dpi

    def geometry(self):
        return self.geo

    def logicalDotsPerInchY(self):
        return self.dpi


def test_type_scales_with_the_screen_not_a_pixel_table():
    from widgets.theme import screen_scale
    assert screen_scale(FakeScreen(1920, 1080, 96)) == 1.0
    assert screen_scale(FakeScreen(3840, 2160, 96)) == 2.0        # 4K at a ratio of 1
    assert screen_scale(FakeScreen(3840, 2160, 192)) == 2.0       # size and DPI: not both
    assert screen_scale(FakeScreen(1920, 1080, 144)) == 1.5       # a DPI above 96
    assert screen_scale(FakeScreen(2560, 1440, 96)) == pytest.approx(4 / 3, abs=0.001)
    assert screen_scale(FakeScreen(1280, 720, 96)) == 1.0         # never below the 1080p size
    assert screen_scale(None) == 1.0


def test_a_rise_in_overdue_is_boxed_and_flashes_on_the_situation_clock(qtbot, sc):
    from widgets.header import OVERDUE_ROSE_MS, Header
    from widgets import theme
    h = Header(sc.situation, "en", "LIVE")
    qtbot.addWidget(h)
    kpi = h.kpis["overdue"]
    h.refresh()
    assert not kpi.boxed                       # the count at start is no rise
    sc.case("C-NEW", -5, category="event.street_order.vending", status="registered")
    h.refresh()
    assert kpi.value.text() == "2" and kpi.boxed and kpi.lit
    assert theme.ALARM in kpi.styleSheet()
    beats = []
    for _ in range(4):                         # one beat per second of the situation's clock
        sc.clock.advance(1_000)
        h.refresh()
        beats.append(kpi.lit)
    assert kpi.boxed and beats == [False, True, False, True]
    h.refresh()                                # the same second: no beat
    assert kpi.lit
    sc.clock.advance(OVERDUE_ROSE_MS)
    h.refresh()
    assert not kpi.boxed and "transparent" in kpi.styleSheet()
    assert kpi.value.text() == "2"             # still red: overdue, only no longer rising


def test_the_slim_header_keeps_the_alarms_and_the_clock(qtbot, sc):
    from feeds.receiver import THREAD_NAME
    from widgets.header import Header
    h = Header(sc.situation, "zh", "DEMO", "队伍与监察", slim=True)
    qtbot.addWidget(h)
    h.show_security([BADGE_EP])
    sc.situation.faults.record(THREAD_NAME, "SystemExit: restarted")
    h.refresh()
    assert h.kpis == {} and h.title.isHidden() and h.figures().keys() == {"clock"}
    assert h.clock.time.text() == "09:30:00" and h.mode.text().strip() == "演示"
    assert not h.fault.isHidden() and not h.unencrypted.isHidden()
    assert "队伍与监察" in h.subtitle.text()
    h.flash("导出完成")
    assert h.message.text() == "导出完成"

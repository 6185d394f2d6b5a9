"""The live city map in a real QtWebEngine page: offline, in step with the situation, safe
with hostile text, and never dragged away by a wild coordinate."""
from __future__ import annotations

import json
import math
import sqlite3

import pytest
from PySide6.QtCore import QBuffer, QByteArray, QIODevice
from PySide6.QtGui import QColor, QImage
from PySide6.QtWebEngineCore import QWebEngineProfile, QWebEngineUrlRequestInterceptor

from tests.scenario import MIN, Scenario, standard
from widgets.city_map import CityMap
from widgets.tiles import open_tile_source

LOCAL_SCHEMES = {"file", "data", "about", "qrc", "mbtiles", "blob"}


class Recorder(QWebEngineUrlRequestInterceptor):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def interceptRequest(self, info):
        self.urls.append(info.requestUrl().toString())


@pytest.fixture
def recorder():
    rec = Recorder()
    QWebEngineProfile.defaultProfile().setUrlRequestInterceptor(rec)
    yield rec
    QWebEngineProfile.defaultProfile().setUrlRequestInterceptor(None)


def run_js(qtbot, panel, code: str, timeout=5000):
    """Evaluate ``code`` in the page; its value comes back through JSON (Qt's conversion of
    JS arrays is not dependable)."""
    box = []
    panel.js(f"JSON.stringify((function () {{ return {code}; }})())", box.append)
    qtbot.waitUntil(lambda: bool(box), timeout=timeout)
    return None if box[0] in ("", None) else json.loads(box[0])


def loaded_map(qtbot, situation, lang="zh") -> CityMap:
    m = CityMap(situation, lang)
    qtbot.addWidget(m)
    m.resize(1200, 800)
    m.show()
    qtbot.waitUntil(lambda: m.loaded, timeout=20000)
    qtbot.waitUntil(lambda: run_js(qtbot, m, "cw.ready()") is True, timeout=10000)
    return m


def counts(qtbot, m) -> dict:
    return run_js(qtbot, m, "cw.count()")


def test_the_map_page_makes_no_network_request(qtbot, recorder):
    m = loaded_map(qtbot, standard().situation)
    m.refresh()
    run_js(qtbot, m, "cw.zoomTo('cases', 'C-LATE', 15)")
    qtbot.wait(300)
    assert recorder.urls, "the interceptor saw nothing: the test would prove nothing"
    leaving = [u for u in recorder.urls if u.split(":", 1)[0] not in LOCAL_SCHEMES]
    assert leaving == []
    assert any(u.endswith("leaflet.js") for u in recorder.urls)   # Leaflet came from disk


def test_markers_equal_the_situation_after_a_burst_of_updates(qtbot):
    sc = standard()
    m = loaded_map(qtbot, sc.situation)
    assert counts(qtbot, m) == {"units": 3, "cases": 4, "sensors": 5}
    # A burst: 300 units move twice, 200 cases open, 50 of them close, sensors report.
    for round_ in range(2):
        for i in range(300):
            sc.add("unit", unit_id=f"B{i}", callsign=f"东城-巡{i}", lat=39.9 + i * 1e-4 * round_,
                   lon=116.4)
            if round_ == 0:
                m.on_changed(sc.last_change)
    for i in range(200):
        sc.case(f"N{i}", 30, status="registered")
        m.on_changed(sc.last_change)
    for i in range(50):
        sc.clock.advance(1)
        sc.case(f"N{i}", None, status="closed")
        m.on_changed(sc.last_change)
    sc.case("C-LATE", None, status="closed")
    m.on_changed(sc.last_change)
    m.refresh()
    st = sc.situation
    want = {"units": len(st.units), "cases": len(st.open_cases()), "sensors": len(st.sensors)}
    assert want == {"units": 303, "cases": 153, "sensors": 5}
    qtbot.waitUntil(lambda: counts(qtbot, m) == want, timeout=5000)


def test_hostile_text_shows_as_text_and_never_runs(qtbot):
    sc = standard()
    evil = '<img src=x onerror="window.__pwned=1"></script><script>window.__pwned=2</script>\'"\\'
    sc.unit("U-EVIL", callsign=evil, lat=39.91, lon=116.40)
    sc.case("C-EVIL", 20, title=evil, description=evil, lat=39.911, lon=116.401)
    m = loaded_map(qtbot, sc.situation)
    run_js(qtbot, m, "cw.zoomTo('units', 'U-EVIL', 17)")   # callsign labels show when zoomed in
    qtbot.wait(300)
    assert run_js(qtbot, m, "String(window.__pwned)") == "undefined"
    m.show_details("cases", "C-EVIL")
    assert evil in m.details.text()                     # a plain-text label: shown as written
    texts = run_js(qtbot, m, "Array.from(document.querySelectorAll('.cw-label'))"
                             ".map(e => e.textContent).join('|')")
    assert evil in texts


def test_far_away_coordinates_are_held_but_do_not_move_the_map(qtbot):
    sc = standard()
    sc.case("C-NULL-ISLAND", 20, lat=0.0, lon=0.0)
    m = loaded_map(qtbot, sc.situation)
    m.refresh()
    lat, lon, _zoom = run_js(qtbot, m, "cw.centre()")
    assert 39.4 < lat < 41.1 and 115.4 < lon < 117.6
    assert "C-NULL-ISLAND" in [c.case_id for c in sc.situation.open_cases()]
    assert "1" in m.summary.text()                      # 位置异常 1: listed


def test_clicking_a_marker_shows_its_details(qtbot):
    sc = standard()
    m = loaded_map(qtbot, sc.situation)
    run_js(qtbot, m, "cw.zoomTo('cases', 'C-SOON', 16)")
    run_js(qtbot, m, "!!cw.layers.cases.getLayers().filter(l => l.cw.id === 'C-SOON')[0]"
                     ".fire('click')")
    qtbot.waitUntil(lambda: "C-SOON" in m.details.text(), timeout=5000)
    assert "井盖" in m.details.text()


def test_follow_keeps_a_moving_case_centred(qtbot):
    sc = standard()
    m = loaded_map(qtbot, sc.situation)
    m.follow_case("C-LATER")
    sc.case("C-LATER", 170, status="on_scene", lat=39.95, lon=116.30)
    m.on_changed(sc.last_change)
    m.refresh()
    # Within a pixel or two at the city-wide zoom.
    qtbot.waitUntil(lambda: abs(run_js(qtbot, m, "cw.centre()")[0] - 39.95) < 0.01, timeout=5000)
    assert abs(run_js(qtbot, m, "cw.centre()")[1] - 116.30) < 0.01


def _png(colour: str) -> bytes:
    img = QImage(256, 256, QImage.Format_RGB32)
    img.fill(QColor(colour))
    buf = QBuffer()
    buf.open(QIODevice.WriteOnly)
    img.save(buf, "PNG")
    return bytes(buf.data())


def test_mbtiles_are_served_by_the_app(qtbot, tmp_path, recorder):
    path = tmp_path / "city.mbtiles"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE tiles (zoom_level int, tile_column int, tile_row int, tile_data blob)")
    tile = _png("#334455")
    for z in range(7, 11):                       # the tiles around Beijing (Web Mercator)
        n = 1 << z
        cx = int((116.4 + 180) / 360 * n)
        cy = int((1 - math.asinh(math.tan(math.radians(40.0))) / math.pi) / 2 * n)
        for x in range(cx - 3, cx + 4):
            for y in range(cy - 3, cy + 4):
                db.execute("INSERT INTO tiles VALUES (?,?,?,?)", (z, x, n - 1 - y, tile))
    db.commit()
    db.close()
    source = open_tile_source(str(path))
    assert source.problem is None
    CityMap.tile_source = source
    try:
        loaded_map(qtbot, Scenario().situation)
        qtbot.waitUntil(lambda: source.handler.served > 0, timeout=10000)
    finally:
        CityMap.tile_source = None
    assert any(u.startswith("mbtiles:") for u in recorder.urls)


@pytest.mark.parametrize("content, says", [(None, "找不到"), (b"not a database at all", "损坏"),
                                           (b"", "损坏")])
def test_missing_or_corrupt_mbtiles_gives_a_notice_and_the_district_basemap(qtbot, tmp_path,
                                                                            content, says):
    path = tmp_path / "bad.mbtiles"
    if content is not None:
        path.write_bytes(content)
    source = open_tile_source(str(path))
    assert source.problem and says in source.problem
    CityMap.tile_source = source
    try:
        m = loaded_map(qtbot, standard().situation)
    finally:
        CityMap.tile_source = None
    assert says in m.details.text()
    assert run_js(qtbot, m, "cw.layers.districts.getLayers().length") == 16
    assert counts(qtbot, m)["cases"] == 4


def test_picking_a_case_in_the_queue_zooms_every_map_to_it(qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from ui.wall import build_wall
    sc = standard()
    (w,) = build_wall(sc.situation, None, "zh", "LIVE", QGuiApplication.screens()[:1])
    qtbot.addWidget(w)
    w.show()
    queue = next(p for p in w.panels if p.name == "case_queue")
    city = next(p for p in w.panels if p.name == "city_map")
    qtbot.waitUntil(lambda: city.loaded, timeout=20000)
    qtbot.waitUntil(lambda: run_js(qtbot, city, "cw.ready()") is True, timeout=10000)
    row = queue.model.keys.index("C-SOON")
    rect = queue.table.visualRect(queue.model.index(row, 1))
    qtbot.mouseClick(queue.table.viewport(), Qt.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: "C-SOON" in city.details.text(), timeout=5000)
    # Framed (#14): centred on the case, with its neighbourhood and nearest available units.
    qtbot.waitUntil(lambda: abs(run_js(qtbot, city, "cw.centre()")[0] - 39.99) < 1e-3,
                    timeout=5000)
    lat, lon, zoom = run_js(qtbot, city, "cw.centre()")
    assert abs(lat - 39.99) < 1e-3 and abs(lon - 116.48) < 1e-3
    assert 10 <= zoom <= 17
    check_frame(qtbot, city, "C-SOON")


def check_frame(qtbot, m, case_id, units=True):
    """The view around a picked case: at least MIN_FRAME_M across, its nearest available
    units inside."""
    from widgets.city_map import MIN_FRAME_M, UNITS_IN_FRAME
    s, w, n, e = run_js(qtbot, m, "cw.viewBounds()")
    lat = (s + n) / 2
    height_m = (n - s) * 111_320
    width_m = (e - w) * 111_320 * math.cos(math.radians(lat))
    assert min(height_m, width_m) >= MIN_FRAME_M * 0.95, (height_m, width_m)
    st = m.situation
    case = st.cases[case_id]
    free = sorted(((math.hypot((u.lat - case.lat) * 111_320,
                               (u.lon - case.lon) * 111_320 * math.cos(math.radians(lat))), u)
                   for u in st.units.values() if u.status == "available"
                   and not st.unit_stale(u)), key=lambda t: t[0])
    assert free or not units, "no available unit: the test would prove little"
    for _, u in free[:UNITS_IN_FRAME]:
        assert s <= u.lat <= n and w <= u.lon <= e, u.unit_id


def test_heat_overlay_counts_the_cases_of_the_last_six_hours(qtbot):
    from situation.heat import case_heat
    sc = standard()
    sc.case("C-OLD", 20, reported_at=sc.clock.now_ms() - 7 * 3_600_000)   # outside the window
    m = loaded_map(qtbot, sc.situation)
    m.buttons["heat"].setChecked(True)
    qtbot.waitUntil(lambda: run_js(qtbot, m, "cw.overlay !== null"), timeout=5000)
    grid = case_heat(sc.situation, 6 * 3_600_000)
    assert grid.total == 5                          # the five cases of the standard scenario
    assert f"近6小时 {int(grid.total)} 起" in m.summary.text()
    assert run_js(qtbot, m, "cw.overlay._url.startsWith('data:image/png')")
    m.buttons["heat"].setChecked(False)
    qtbot.waitUntil(lambda: run_js(qtbot, m, "cw.overlay === null"), timeout=5000)


def test_the_wall_menu_exports_the_public_map(qtbot, tmp_path):
    from PySide6.QtGui import QGuiApplication
    from ui.wall import build_wall
    sc = standard()
    (w,) = build_wall(sc.situation, None, "zh", "LIVE", QGuiApplication.screens()[:1])
    qtbot.addWidget(w)
    actions = [a.text() for a in w.menu().actions() if a.text()]
    assert actions[0].startswith("导出公众城市地图")
    target = tmp_path / "public.html"
    assert w.export("public_map", str(target))
    page = target.read_text(encoding="utf-8")
    assert "C-LATE" in page
    assert not any(f'"{uid}"' in page or f">{uid}<" in page for uid in ("U1", "U2", "U3"))
    assert str(target) in w.header.message.text()
    assert not w.export("open311", str(tmp_path / "missing" / "x.json"))
    assert "无法写入" in w.header.message.text()           # said on the wall, nothing lost


def test_the_wall_runs_on_with_a_missing_tile_file(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    status = tmp_path / "status.json"
    out = subprocess.run([sys.executable, "main.py", "--demo", "--run-for", "3", "--tiles",
                          str(tmp_path / "nowhere.mbtiles"), "--status-out", str(status)],
                         cwd=Path(__file__).resolve().parent.parent, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-1500:]
    doc = json.loads(status.read_text())
    assert "city_map" in doc["windows"][0]["panels"] and doc["units"] > 100

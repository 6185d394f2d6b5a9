"""The exports: the public city map (one self-contained HTML page) and the Open311 GeoReport
v2 file. Every open case and nothing private; citizens' text shown as text and never run,
in a real QtWebEngine page; no request leaves the machine; a wild coordinate is listed but
does not move the map; the command line writes both at exit."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PySide6.QtCore import QUrl
from PySide6.QtWebEngineCore import QWebEnginePage, QWebEngineProfile
from PySide6.QtWebEngineWidgets import QWebEngineView

from feeds.districts import city_bbox
from situation.mapkit import remote_references
from situation.open311 import REQUIRED_FIELDS, open311_requests, validate_open311, write_open311
from situation.public_map import build_public_map, write_public_map
from tests.scenario import MIN, Scenario
from tests.test_city_map import Recorder          # the map tests' request log

ROOT = Path(__file__).resolve().parent.parent
LOCAL_SCHEMES = {"file", "data", "about", "qrc", "blob"}

EVIL_TITLE = "</script><script>window.__pwned=1</script>{{ 7*7 }}"
EVIL_DESC = ('<img src=x onerror="window.__pwned=1"> it\'s "quoted" \\ back\\slash \\" '
             "line\u2028separator para\u2029graph ${window.__pwned=1} `tick` {% raw %} <!--")
EVIL_DESC_2 = '"\'><svg onload=window.__pwned=1></svg>\\u003c/script\\u003e'
EVIL_ADDRESS = '<iframe src="javascript:window.__pwned=1"></iframe>'
UNIT_IDS = ("UNIT-SECRET-7731", "UNIT-SECRET-8842")
CALLSIGN = "CALLSIGN-ZZ-91"
SRC = "PUBLISHER-SRC-QX"

PLACED = ("C-EVIL-1", "C-EVIL-2", "C-HAIDIAN", "C-CHAOYANG", "C-YANQING", "C-NODUE",
          "C-SANHE", "C-SURROGATE")
MISPLACED = ("C-NULL-ISLAND",)
CLOSED = ("C-CLOSED", "C-REJECTED")


def hostile() -> Scenario:
    """Open cases across the city (hostile text in two), one just over the border in Hebei,
    one at lat 0 lon 0, a closed and a rejected one, and units whose ids must not leak."""
    sc = Scenario()
    case = dict(src=SRC)
    sc.case("C-EVIL-1", 60, title=EVIL_TITLE, description=EVIL_DESC, status="dispatched",
            unit_id=UNIT_IDS[0], lat=39.915, lon=116.41, agency="城管执法", **case)
    sc.case("C-EVIL-2", 30, title="'\"\\", description=EVIL_DESC_2, address=EVIL_ADDRESS,
            category="part.public_facility.manhole", status="registered", priority=1,
            lat=39.92, lon=116.36, **case)
    sc.case("C-HAIDIAN", 120, category="event.advertising.illegal_flyers", status="on_scene",
            unit_id=UNIT_IDS[1], lat=39.98, lon=116.30, **case)
    sc.case("C-CHAOYANG", -15, category="event.construction.site_dust", status="resolved",
            lat=39.95, lon=116.50, **case)
    sc.case("C-YANQING", 240, category="part.public_facility.street_light", status="verified",
            lat=40.46, lon=115.97, **case)
    sc.case("C-NODUE", None, category="something.new.kind", status="reported",
            lat=39.86, lon=116.28, **case)
    sc.case("C-SANHE", 60, status="reported", lat=39.98, lon=116.98, **case)     # Hebei
    sc.case("C-SURROGATE", 60, description="bad \ud800 half", lat=39.80, lon=116.50, **case)
    sc.case("C-NULL-ISLAND", 60, title='<img src=x onerror="window.__pwned=1">',
            lat=0.0, lon=0.0, status="registered", **case)
    sc.case("C-CLOSED", None, status="closed", lat=39.90, lon=116.40, **case)
    sc.case("C-REJECTED", None, status="rejected", lat=39.90, lon=116.42, **case)
    sc.unit(UNIT_IDS[0], callsign=CALLSIGN, status="on_scene", case_id="C-EVIL-1",
            lat=39.915, lon=116.41, src=SRC)
    sc.unit(UNIT_IDS[1], callsign="东城-巡99", status="on_scene", case_id="C-HAIDIAN", src=SRC)
    sc.clock.advance(5 * MIN)
    return sc


def case_data(page: str) -> list[dict]:
    """The case records the page's script draws (the JSON literal after ``var cases =``)."""
    found = re.search(r"var cases = (\[.*?\]);\n", page)
    assert found, "no case data in the page"
    return json.loads(found.group(1))


class Tags(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.starts: list[str] = []
        self.ends: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.starts.append(tag)
        self._in_script = tag == "script"
        if tag == "script":
            self.scripts.append("")

    def handle_endtag(self, tag):
        self.ends.append(tag)
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)


# ---- the public map as a file -----------------------------------------------------------------
@pytest.fixture(scope="module")
def page() -> str:
    return build_public_map(hostile().situation, "zh")


def test_public_map_holds_every_open_case_and_nothing_private(page):
    drawn = {c["id"] for c in case_data(page)}
    assert drawn == set(PLACED)                     # the misplaced one is listed, not drawn
    for cid in PLACED + MISPLACED:
        assert cid in page
    for secret in (*UNIT_IDS, CALLSIGN, "东城-巡99", SRC, *CLOSED):
        assert secret not in page, secret
    for rec in case_data(page):
        assert not {"unit_id", "src", "seq", "ts", "flags", "source"} & set(rec)
    assert remote_references(page) == []
    assert "我爱北京 · 城市管理地图" in page
    assert 'id="cw-open-count">9<' in page            # 8 drawn + 1 misplaced


def test_public_map_parses_with_leaflet_inline_and_hostile_text_inert(page):
    tags = Tags()
    tags.feed(page)
    tags.close()
    # Every script element closed by its own end tag: the hostile "</script>" ended none.
    assert tags.starts.count("script") == tags.ends.count("script")
    assert not {"img", "svg", "iframe"} & set(tags.starts)
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert any(len(s) > 100_000 and "leaflet" in s.lower() for s in tags.scripts)  # inline
    # The citizens' text is data in the page: verbatim after JSON decoding, raw nowhere.
    recs = {c["id"]: c for c in case_data(page)}
    assert recs["C-EVIL-1"]["title"] == EVIL_TITLE               # "{{ 7*7 }}" not evaluated
    assert recs["C-EVIL-1"]["description"] == EVIL_DESC
    assert recs["C-EVIL-2"]["address"] == EVIL_ADDRESS
    assert recs["C-SURROGATE"]["description"] == "bad \ufffd half"
    for raw in (EVIL_TITLE, "</script><script>", "window.__pwned=1\"", "\u2028", "\u2029",
                "{{", "{%"):
        assert raw not in page, raw
    # The misplaced case is listed (as text) in the panel under 位置异常.
    panel = "".join(tags.text)
    assert "位置异常 (1)" in panel
    assert 'C-NULL-ISLAND' in panel and '<img src=x onerror="window.__pwned=1">' in panel
    assert "0.00000, 0.00000" in panel


def test_public_map_in_english():
    page = build_public_map(hostile().situation, "en")
    assert "I love Beijing · City management map" in page
    recs = {c["id"]: c for c in case_data(page)}
    assert recs["C-HAIDIAN"]["category"] == "Illegal flyers"
    assert recs["C-HAIDIAN"]["stage"] == "On scene"
    assert recs["C-HAIDIAN"]["district"] == "Haidian"
    assert "Location out of area (1)" in page
    with pytest.raises(ValueError):
        build_public_map(hostile().situation, "fr")


def test_public_map_time_is_the_situation_clock(page):
    # T0 is 09:30 Beijing time; the scenario's clock moved five minutes on.
    assert "生成于 2026-11-24 09:35（北京时间）" in page
    assert {c["reported"] for c in case_data(page)} == {"2026-11-24 09:00"}


def test_write_public_map_is_atomic_and_complete(tmp_path):
    target = tmp_path / "public.html"
    target.write_text("old")
    write_public_map(hostile().situation, target, "zh")
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["public.html"]     # no temp file left
    with pytest.raises(OSError):
        write_public_map(hostile().situation, tmp_path / "missing" / "x.html", "zh")


# ---- the public map in a real browser page ------------------------------------------------------
class ConsolePage(QWebEnginePage):
    def __init__(self, profile, parent=None):
        super().__init__(profile, parent)
        self.errors: list[str] = []

    def javaScriptConsoleMessage(self, level, message, line, source):
        if level == QWebEnginePage.JavaScriptConsoleMessageLevel.ErrorMessageLevel:
            self.errors.append(f"{source}:{line}: {message}")


def run_js(qtbot, page: QWebEnginePage, code: str, timeout=5000):
    """Evaluate ``code``; its value comes back as JSON (dependable for arrays and objects)."""
    box = []
    page.runJavaScript(f"JSON.stringify((function () {{ {code} }})())", 0, box.append)
    qtbot.waitUntil(lambda: bool(box), timeout=timeout)
    return None if box[0] in ("", None) else json.loads(box[0])


FIND_MAP = """
    var map = null;
    Object.keys(window).forEach(function (k) {
        try { if (!map && window[k] instanceof L.Map) { map = window[k]; } } catch (e) {}
    });
    function caseLayers() {
        var out = [];
        map.eachLayer(function (l) {
            if (l.options && l.options.caseId !== undefined) { out.push(l); }
        });
        return out;
    }
"""


def test_exported_map_in_a_browser_runs_nothing_and_loads_nothing_remote(qtbot, tmp_path):
    sc = hostile()
    path = write_public_map(sc.situation, tmp_path / "public.html", "zh")
    recorder = Recorder()
    profile = QWebEngineProfile.defaultProfile()
    profile.setUrlRequestInterceptor(recorder)
    view = QWebEngineView()
    page = ConsolePage(profile, view)
    view.setPage(page)
    qtbot.addWidget(view)
    view.resize(1400, 900)
    view.show()
    try:
        with qtbot.waitSignal(page.loadFinished, timeout=20000) as loaded:
            view.load(QUrl.fromLocalFile(str(path)))
        assert loaded.args == [True]
        qtbot.waitUntil(lambda: run_js(qtbot, page, "return typeof L;") == "object",
                        timeout=10000)

        # The view opens on Beijing: the case at lat 0 lon 0 did not drag it away.
        view_state = run_js(qtbot, page, FIND_MAP + """
            var c = map.getCenter(), b = map.getBounds();
            return {n: caseLayers().length, lat: c.lat, lon: c.lng, zoom: map.getZoom(),
                    south: b.getSouth(), north: b.getNorth(), west: b.getWest(),
                    east: b.getEast(), ids: caseLayers().map(function (l) {
                        return l.options.caseId; })};
        """)
        x0, y0, x1, y1 = city_bbox()
        assert view_state["n"] == len(PLACED)
        assert sorted(view_state["ids"]) == sorted(PLACED)
        assert x0 < view_state["lon"] < x1 and y0 < view_state["lat"] < y1
        assert view_state["zoom"] >= 8
        assert view_state["south"] > 30 and view_state["west"] > 100      # not out to (0, 0)

        # Open every popup and tooltip, then read back what they show.
        shown = run_js(qtbot, page, FIND_MAP + """
            var out = {};
            caseLayers().forEach(function (l) {
                l.openTooltip();
                var tip = l.getTooltip().getElement().textContent;
                l.openPopup();
                var pop = l.getPopup().getElement().querySelector(".leaflet-popup-content");
                out[l.options.caseId] = {tip: tip, popup: pop.textContent,
                                         popupImgs: pop.querySelectorAll("img,svg,iframe").length};
            });
            return out;
        """)
        qtbot.wait(400)             # an injected <img onerror> would fire by now
        pwned = run_js(qtbot, page, "return String(window.__pwned);")
        assert pwned == "undefined"
        assert run_js(qtbot, page, 'return document.querySelectorAll('
                                   '"img[src=x], svg[onload], iframe, #cw-panel img").length;') == 0
        evil1, evil2 = shown["C-EVIL-1"], shown["C-EVIL-2"]
        assert EVIL_TITLE in evil1["popup"] and EVIL_TITLE in evil1["tip"]
        assert EVIL_DESC in evil1["popup"]
        assert EVIL_DESC_2 in evil2["popup"] and EVIL_ADDRESS in evil2["popup"]
        assert "'\"\\" in evil2["tip"]
        assert all(v["popupImgs"] == 0 for v in shown.values())
        assert "路灯" in shown["C-YANQING"]["popup"] and "核查" in shown["C-YANQING"]["popup"]
        assert "延庆" in shown["C-YANQING"]["popup"]
        for secret in (*UNIT_IDS, CALLSIGN, SRC):
            assert all(secret not in v["popup"] for v in shown.values())

        # The side panel shows the misplaced case's hostile title as text.
        panel = run_js(qtbot, page, 'return document.getElementById("cw-panel").textContent;')
        assert '<img src=x onerror="window.__pwned=1">' in panel
        assert "C-NULL-ISLAND" in panel

        assert page.errors == []
        assert recorder.urls, "the interceptor saw nothing: the test would prove nothing"
        leaving = [u for u in recorder.urls if u.split(":", 1)[0] not in LOCAL_SCHEMES]
        assert leaving == []
    finally:
        profile.setUrlRequestInterceptor(None)
        view.close()
        page.deleteLater()          # before the profile goes, at the end of the session
        qtbot.wait(50)


# ---- Open311 ---------------------------------------------------------------------------------
def test_open311_open_cases_validate_with_exact_fields():
    sc = hostile()
    doc = open311_requests(sc.situation)
    assert validate_open311(doc) == []
    assert {r["service_request_id"] for r in doc} == set(PLACED + MISPLACED)
    for req in doc:
        assert set(req) == set(REQUIRED_FIELDS) | {"address"}
        assert req["status"] == "open"
        assert isinstance(req["lat"], float) and isinstance(req["long"], float)
        for name in ("requested_datetime", "updated_datetime"):
            dt = datetime.fromisoformat(req[name])
            assert dt.utcoffset() == timedelta(hours=8)
    evil = {r["service_request_id"]: r for r in doc}["C-EVIL-1"]
    case = sc.situation.cases["C-EVIL-1"]
    assert evil["service_code"] == "event.street_order.vending"
    assert evil["service_name"] == "占道经营"
    assert evil["agency_responsible"] == "城管执法"
    assert evil["requested_datetime"] == "2026-11-24T09:00:00+08:00"
    assert datetime.fromisoformat(evil["requested_datetime"]).timestamp() * 1000 == \
        case.reported_at
    assert datetime.fromisoformat(evil["updated_datetime"]).timestamp() * 1000 == case.ts
    assert datetime.fromisoformat(evil["expected_datetime"]).timestamp() * 1000 == case.due_at
    nodue = {r["service_request_id"]: r for r in doc}["C-NODUE"]
    assert nodue["expected_datetime"] is None and nodue["agency_responsible"] is None
    assert nodue["service_name"] == "something.new.kind"           # unknown code as it came
    island = {r["service_request_id"]: r for r in doc}["C-NULL-ISLAND"]
    assert (island["lat"], island["long"]) == (0.0, 0.0)            # held, exported as data
    en = {r["service_request_id"]: r for r in open311_requests(sc.situation, lang="en")}
    assert en["C-EVIL-1"]["service_name"] == "Street vending"


def test_open311_closed_only_when_asked():
    sc = hostile()
    assert not {r["service_request_id"] for r in open311_requests(sc.situation)} & set(CLOSED)
    every = {r["service_request_id"]: r for r in open311_requests(sc.situation, True)}
    assert every["C-CLOSED"]["status"] == every["C-REJECTED"]["status"] == "closed"
    assert len(every) == len(PLACED + MISPLACED + CLOSED)
    assert validate_open311(list(every.values())) == []


def test_open311_file_keeps_hostile_text_verbatim(tmp_path):
    path = write_open311(hostile().situation, tmp_path / "requests.json", "zh")
    raw = path.read_bytes()
    doc = json.loads(raw.decode("utf-8"))
    assert validate_open311(doc) == []
    by_id = {r["service_request_id"]: r for r in doc}
    assert by_id["C-EVIL-1"]["description"] == EVIL_DESC
    assert by_id["C-EVIL-2"]["description"] == EVIL_DESC_2
    assert by_id["C-EVIL-2"]["address"] == EVIL_ADDRESS
    assert by_id["C-SURROGATE"]["description"] == "bad \ufffd half"
    assert "占道经营".encode() in raw                                  # UTF-8, not \u escapes
    for secret in (*UNIT_IDS, CALLSIGN, SRC):
        assert secret.encode() not in raw
    assert [p.name for p in tmp_path.iterdir()] == ["requests.json"]


def test_open311_validator_names_the_problems():
    good = open311_requests(hostile().situation)[0]
    bad = [
        {k: v for k, v in good.items() if k != "service_name"},
        {**good, "service_request_id": "X2", "lat": "39.9"},
        {**good, "service_request_id": "X3", "requested_datetime": "2026-11-24T09:00:00"},
        {**good, "service_request_id": "X4", "status": "pending"},
        {**good, "service_request_id": "X5", "unit_id": "U1"},
        {**good, "service_request_id": "X6", "expected_datetime": "tomorrow"},
        {**good, "service_request_id": "X7", "long": 200.0, "description": None},
        {**good, "service_request_id": "X7"},
    ]
    problems = validate_open311(bad)
    for expected in ("service_name is missing", "lat is a str", "has no time zone",
                     "status is 'pending'", "unit_id is not a GeoReport v2 field",
                     "expected_datetime is not an ISO 8601 datetime", "long 200.0 is out of range",
                     "description is null", "appears twice"):
        assert any(expected in p for p in problems), (expected, problems)
    assert validate_open311({"requests": []}) != []


# ---- the command line -------------------------------------------------------------------------
def run_main(*args, timeout=60):
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_headless_demo_writes_both_exports(tmp_path):
    html_out, json_out, status = (tmp_path / "public.html", tmp_path / "open311.json",
                                  tmp_path / "status.json")
    out = run_main("--headless", "--demo", "--run-for", "3", "--export-public-map", str(html_out),
                   "--export-open311", str(json_out), "--status-out", str(status))
    assert out.returncode == 0, out.stderr
    doc = json.loads(json_out.read_text(encoding="utf-8"))
    assert validate_open311(doc) == []
    assert len(doc) == json.loads(status.read_text())["open_cases"] > 0
    page = html_out.read_text(encoding="utf-8")
    assert remote_references(page) == []
    drawn = {c["id"] for c in case_data(page)}
    assert drawn <= {r["service_request_id"] for r in doc}
    assert f'id="cw-open-count">{len(doc)}<' in page


def test_cli_export_into_a_missing_directory_is_exit_2_at_once(tmp_path):
    for option, name in (("--export-public-map", "map.html"), ("--export-open311", "o.json")):
        missing = tmp_path / "no-such-dir" / name
        started = time.monotonic()
        out = run_main("--headless", "--demo", "--run-for", "30", option, str(missing))
        assert out.returncode == 2, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert "no-such-dir" in out.stderr and option in out.stderr
        assert time.monotonic() - started < 20          # refused at parse time, not at exit
    out = run_main("--headless", "--export-open311", str(tmp_path))      # a directory
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1


def test_cli_export_that_cannot_be_written_is_exit_1_with_one_line(tmp_path):
    # The folder exists when the run starts and is gone when it ends.
    doomed = tmp_path / "doomed"
    doomed.mkdir()
    status = tmp_path / "status.json"
    proc = subprocess.Popen([sys.executable, "main.py", "--headless", "--demo", "--run-for", "3",
                             "--status-out", str(status), "--status-every", "0.5",
                             "--export-open311", str(doomed / "o.json"),
                             "--export-public-map", str(tmp_path / "fine.html")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not status.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert status.exists(), "the run never started"
        shutil.rmtree(doomed)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "cannot write" in lines[0] and "o.json" in lines[0], err
    assert (tmp_path / "fine.html").exists()          # the other export was still written
    assert json.loads(status.read_text())["open_cases"] > 0     # and the status


@pytest.mark.skipif(not os.environ.get("QT_QPA_PLATFORM", "").startswith("offscreen"),
                    reason="the windowed wall is run offscreen only")
def test_cli_windowed_wall_writes_the_exports_at_exit(tmp_path):
    json_out = tmp_path / "open311.json"
    out = run_main("--demo", "--run-for", "3", "--export-open311", str(json_out),
                   "--status-out", str(tmp_path / "status.json"), timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(json_out.read_text(encoding="utf-8"))
    assert validate_open311(doc) == [] and len(doc) > 0

"""Sources behind one interface (feeds.source), and a feed's coordinate frame on the way in.

Real parts: ZeroMQ on loopback, a real recording, the demo city in-process.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from feeds.batch import Batch
from feeds.crs import convert
from feeds.receiver import Receiver, wait_for
from feeds.schema import Case
from feeds.source import Source, take_all
from tests.pubhelp import TestPublisher, rec, record

ROOT = Path(__file__).resolve().parent.parent

# A point in Dongcheng given in WGS-84, and the same place in GCJ-02 (PRCoords' transform; the
# pairs themselves are checked against published ones in tests/test_frames.py).
WGS = (39.9087, 116.3975)
GCJ = convert(*WGS, "wgs84", "gcj02")


class OneShotSource:
    """A new kind of source, written the way a module would: the session takes from it with
    no change anywhere else."""

    name = "one-shot"
    endpoints = ["test://one-shot"]

    def __init__(self, records):
        self.records = list(records)
        self.started = self.stopped = False

    def start(self):
        self.started = True
        return self

    def take(self) -> Batch:
        out, self.records = Batch(records=self.records, endpoints=set(self.endpoints)), []
        return out

    def health(self) -> dict:
        return {"kind": "test", "name": self.name, "up": True}

    def stop(self) -> None:
        self.stopped = True


def _args(**over):
    import main
    argv = ["--headless", "--demo", "--speed", "1", "--start", "2026-11-24T09:00:00+08:00"]
    for k, v in over.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    args = main.build_parser().parse_args(argv)
    from feeds.mqtt_args import mqtt_settings
    args.mqtt_sources = mqtt_settings(args)
    return args


def test_every_kind_is_a_source_and_a_new_kind_needs_no_other_change(tmp_path):
    from ui.session import build_session
    session = build_session(_args())
    try:
        assert session.sources and all(isinstance(s, Source) for s in session.sources)
        assert [s.health()["kind"] for s in session.sources] == ["demo"]
        now = session.clock.now_ms()
        extra = OneShotSource([rec("case", case_id="X-1", src="one-shot", ts=now)])
        session.sources.append(extra.start())
        session.situation.expect_endpoint("test://one-shot")
        session.drain()
        assert "X-1" in session.situation.cases
        status = session.status()
        assert {"kind": "test", "name": "one-shot", "up": True} in status["inputs"]
        assert status["map_crs"] == "gcj02"
        assert status["endpoints"]["test://one-shot"]["up"] is True
        assert wait_for(lambda: (session.drain(), session.situation.units)[1], 10)
    finally:
        session.stop()
    assert extra.stopped


def test_a_source_that_fails_to_take_is_a_fault_not_the_end():
    from ui.session import build_session

    class Broken(OneShotSource):
        def take(self):
            raise RuntimeError("boom")

    session = build_session(_args())
    try:
        session.sources.append(Broken([]))
        session.drain()
        assert "source one-shot" in session.status()["faults"]
    finally:
        session.stop()


def test_take_all_merges_endpoints_and_rebuilds():
    a = Batch(endpoints={"a"}, rebuilt=({"C1"}, set(), set()))
    b = Batch(endpoints={"b"}, rebuilt=(set(), {"U1"}, set()))

    class S(OneShotSource):
        def __init__(self, batch):
            self.batch = batch

        def take(self):
            return self.batch

    out = take_all([S(a), S(b)])
    assert out.endpoints == {"a", "b"}
    assert out.rebuilt == ({"C1"}, {"U1"}, set())


@pytest.fixture
def pub():
    p = TestPublisher()
    yield p
    p.close()


def _receive(pub, receiver, payloads, want: int):
    receiver.start()
    try:
        pub.wait_subscriber()
        for topic, payload in payloads:
            pub.send(topic, payload)
        got = Batch()
        assert wait_for(lambda: (got.merge(receiver.take()),
                                 len(got.records) + sum(got.rejects.values()) >= want)[1], 5)
        return got
    finally:
        receiver.stop()


def test_a_wgs84_feed_is_moved_into_the_walls_gcj02_frame(pub):
    receiver = Receiver([pub.endpoint], crs={pub.endpoint: "wgs84"}, display_crs="gcj02")
    got = _receive(pub, receiver, [("case", record("case", lat=WGS[0], lon=WGS[1]))], 1)
    [case] = got.records
    assert isinstance(case, Case)
    assert (case.lat, case.lon) == pytest.approx(GCJ, abs=1e-9)
    assert (case.lat, case.lon) != pytest.approx(WGS, abs=1e-4)     # a few hundred metres
    assert pub.endpoint in got.endpoints
    assert receiver.health()["frames"] == {pub.endpoint: "wgs84"}


def test_a_protocol_feed_on_a_wgs84_wall_is_converted_and_outside_china_refused(pub):
    receiver = Receiver([pub.endpoint], display_crs="wgs84")      # the feed: GCJ-02 (default)
    far = record("case", case_id="FAR", seq=1, lat=51.5, lon=-0.12)        # London
    near = record("case", case_id="NEAR", seq=2, lat=GCJ[0], lon=GCJ[1])
    got = _receive(pub, receiver, [("case", [far, near])], 2)
    assert [r.case_id for r in got.records] == ["NEAR"]
    assert (got.records[0].lat, got.records[0].lon) == pytest.approx(WGS, abs=1e-7)
    assert got.rejects == {("t", "gcj02_outside_china"): 1}


def test_the_same_frame_is_left_untouched(pub):
    receiver = Receiver([pub.endpoint])                 # GCJ-02 in, GCJ-02 shown
    far = record("case", case_id="FAR", lat=0.0, lon=0.0)   # a bad fix: kept, 位置异常 on the wall
    got = _receive(pub, receiver, [("case", far)], 1)
    assert [(r.lat, r.lon) for r in got.records] == [(0.0, 0.0)]


def _main(*argv, timeout=30):
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("argv, says", [
    (["--feed-crs", "wgs84", "--feed", "tcp://127.0.0.1:1"], "right after its --feed"),
    (["--feed", "tcp://127.0.0.1:1", "--feed-crs", "bd09"], "unknown coordinate frame"),
    (["--map-crs", "utm"], "unknown coordinate frame"),
    (["--mqtt-user", "x", "--mqtt", "mqtt://127.0.0.1:1"], "right after its --mqtt"),
    (["--mqtt", "http://127.0.0.1:1"], "mqtt://"),
    (["--mqtt", "mqtt://127.0.0.1:1", "--mqtt-sub", "senml"], "FORMAT FILTER"),
    (["--mqtt", "mqtt://127.0.0.1:1", "--mqtt-password-file", "/nonexistent/pw"],
     "--mqtt-password-file"),
    (["--replay", "x.mcap", "--mqtt", "mqtt://127.0.0.1:1"], "--replay has no network"),
])
def test_bad_frame_and_mqtt_flags_are_one_line_and_exit_2(argv, says):
    done = _main("--headless", "--run-for", "0.1", *argv)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2          # usage line + the one problem


def test_the_site_config_gives_feeds_their_frames_and_walls_their_mqtt_brokers(tmp_path):
    import main
    from feeds.mqtt_args import mqtt_settings
    from feeds.site_config import apply_config
    from ui.session import feed_frames
    (tmp_path / "wall.pass").write_text("s3cret\n", encoding="utf-8")
    cfg = tmp_path / "centre.toml"
    cfg.write_text('''
[wall]
map_crs = "wgs84"
[[wall.feed]]
endpoint = "tcp://127.0.0.1:5556"
crs = "wgs84"
[[wall.feed]]
endpoint = "tcp://127.0.0.1:5557"
[[wall.mqtt]]
url = "mqtt://127.0.0.1:1883"
user = "wall"
password_file = "wall.pass"
sub = ["senml city/+/senml kind_level=2", "owntracks owntracks/+/+"]
''', encoding="utf-8")
    argv = apply_config(main.build_parser(), ["--config", str(cfg)], "wall", prog="citywall",
                        also_drops=main.CONFIG_DROPS)
    args = main.build_parser().parse_args(argv)
    assert args.map_crs == "wgs84"
    assert feed_frames(args) == {"tcp://127.0.0.1:5556": "wgs84"}
    [one] = mqtt_settings(args)
    assert (one.username, one.password, one.name) == ("wall", "s3cret", "mqtt://wall@127.0.0.1:1883")
    assert [(s.format, s.topic, s.crs) for s in one.subscriptions] == [
        ("senml", "city/+/senml", "wgs84"), ("owntracks", "owntracks/+/+", "wgs84")]
    assert "s3cret" not in repr(one)


def test_the_bridge_reads_its_own_section(tmp_path):
    (tmp_path / "roster.csv").write_text("unit_id,district,shift,device\nU1,110101,day,a/b\n",
                                         encoding="utf-8")
    cfg = tmp_path / "centre.toml"
    cfg.write_text('''
[mqtt_bridge]
feed = "tcp://127.0.0.1:*"
roster = "roster.csv"
run_for = 0.5
[[mqtt_bridge.mqtt]]
url = "mqtt://127.0.0.1:1"
sub = ["owntracks owntracks/+/+"]
''', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "feeds.mqtt_bridge", "--config", str(cfg)],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "1 devices" in done.stdout + done.stderr
    bad = cfg.read_text().replace('roster = "roster.csv"', 'rooster = "roster.csv"')
    cfg.write_text(bad, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "feeds.mqtt_bridge", "--config", str(cfg)],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "centre.toml:4" in done.stderr and "roster" in done.stderr


def test_with_a_publishers_file_an_mqtt_protocol_subscription_must_name_its_srcs():
    from feeds.faults import Faults
    from situation.clock import WallClock
    from ui.session import mqtt_sources
    args = _args(mqtt="mqtt://127.0.0.1:1")
    with pytest.raises(ValueError, match="srcs"):
        mqtt_sources(args, WallClock(), Faults(), "gcj02", require_srcs=True)
    named = _args(mqtt="mqtt://127.0.0.1:1", mqtt_sub="protocol citywall/# srcs=gw-1")
    [one] = mqtt_sources(named, WallClock(), Faults(), "gcj02", require_srcs=True)
    assert one.settings.subscriptions[0].srcs == ("gw-1",)


def test_a_demo_wall_hears_the_citys_first_snapshot_whole(tmp_path):
    """The demo's wall subscribes before the city publishes: it never hears the tail of a
    snapshot sent for the dispatch service (units' fixes without the units), which it counted
    as `unknown_unit` in about one start in three. Fresh processes, as a wall starts."""
    import json
    for i in range(4):
        status = tmp_path / f"s{i}.json"
        done = _main("--headless", "--demo", "--run-for", "1.5", "--status-out", str(status))
        assert done.returncode == 0, done.stderr
        doc = json.loads(status.read_text())
        assert doc["units"] >= 100 and doc["rejected"] == {}, doc["rejected"]


def test_the_feed_health_panel_names_mqtt_brokers_and_sources_in_words():
    from widgets.feed_health import endpoint_labels, source_label
    eps = ["inproc://citywall-demo", "tcp://10.0.0.5:5556", "mqtt://wall@10.0.0.9:1883",
           "mqtts://10.0.0.10:8883"]
    assert endpoint_labels(eps, "zh") == {eps[0]: "演示城市接入", eps[1]: "接入点 1",
                                           eps[2]: "MQTT 接入 1", eps[3]: "MQTT 接入 2"}
    assert endpoint_labels(eps, "en")[eps[3]] == "MQTT broker 2"
    assert source_label("mqtt:owntracks", "zh") == "OwnTracks 手机"
    assert source_label("mqtt:senml", "en") == "SenML sensors"


def test_a_wgs84_wall_joining_mid_shift_gets_the_services_snapshot_in_its_frame(tmp_path):
    """The dispatch service holds the protocol's frame (GCJ-02); its snapshot for a console
    joining mid-shift is moved into a WGS-84 wall's frame like any feed."""
    import zmq

    from feeds.dispatch_client import DispatchClient
    from feeds.dispatch_service import DispatchService
    from feeds.districts import DistrictLocator
    from situation.clock import ManualClock
    from situation.store import Situation
    from ui.session import join_mid_shift
    ctx = zmq.Context()
    pub = TestPublisher(ctx)
    now = 1_795_449_600_000
    svc = DispatchService([pub.endpoint], "tcp://127.0.0.1:*", "tcp://127.0.0.1:*",
                          tmp_path / "d.sqlite3", now_ms=lambda: now + 60_000,
                          context=ctx).start()
    client = DispatchClient(svc.dispatch_endpoint, "wall-1", context=ctx)
    try:
        pub.wait_subscriber()
        pub.send("case", record("case", src="cases", ts=now, lat=GCJ[0], lon=GCJ[1]))
        assert wait_for(lambda: svc.status()["cases"] == 1, 5)
        wall = Situation(ManualClock(now + 60_000), locator=DistrictLocator(crs="wgs84"))
        assert join_mid_shift(client, wall, "wgs84") is not None
        c1 = wall.cases["C1"]
        assert (c1.lat, c1.lon) == pytest.approx(WGS, abs=1e-7)
        assert c1.district == "110101"                      # found on WGS-84 outlines
    finally:
        client.close()
        svc.stop()
        pub.close()
        ctx.destroy(linger=0)


def test_the_live_services_never_import_the_demo_city():
    """The wall on live feeds, the dispatch service, the broker and the MQTT bridge run
    without the demo's modules (a fresh interpreter imports each and lists what came)."""
    code = ("import sys, importlib\n"
            "for m in ('feeds.dispatch_service', 'feeds.dispatch_cli', 'feeds.broker_cli',\n"
            "          'feeds.mqtt_bridge', 'ui.session', 'ui.headless', 'situation.training'):\n"
            "    importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m in ('feeds.simulator', 'feeds.demo_units',\n"
            "                                             'feeds.demo_source', 'feeds.demo_day')))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_dispatch_service_takes_a_wgs84_source_in_the_protocols_frame(tmp_path):
    """``--source EP --source-crs wgs84``: a tracker's WGS-84 points are held (and published in
    every unit record) in the protocol's GCJ-02."""
    import zmq

    from feeds import dispatch_cli
    from feeds.dispatch_service import DispatchService
    ctx = zmq.Context()
    pub = TestPublisher(ctx)
    now = 1_795_449_600_000
    svc = DispatchService([pub.endpoint], "tcp://127.0.0.1:*", "tcp://127.0.0.1:*",
                          tmp_path / "d.sqlite3", now_ms=lambda: now + 60_000, context=ctx,
                          source_crs={pub.endpoint: "wgs84"}).start()
    try:
        pub.wait_subscriber()
        pub.send("unit", record("unit", src="units", ts=now, lat=WGS[0], lon=WGS[1]))
        assert wait_for(lambda: svc.unit("U1") is not None, 5)
        u1 = svc.unit("U1")
        assert (u1.lat, u1.lon) == pytest.approx(GCJ, abs=1e-9)
    finally:
        svc.stop()
        pub.close()
        ctx.destroy(linger=0)
    with pytest.raises(SystemExit) as exc:
        dispatch_cli.parser().parse_args(["--source", "tcp://127.0.0.1:1", "--source-crs", "bd09"])
    assert exc.value.code == 2

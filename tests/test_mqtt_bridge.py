"""The MQTT bridge: MQTT in (a real Mosquitto, real paho publishers), protocol v1 out on a
ZeroMQ PUB that a real ``feeds.receiver.Receiver`` reads — every record under the bridge's own
src with its own seq, heartbeats between."""
from __future__ import annotations

import json
import time

import pytest

from feeds.mqtt_bridge import main, start_in_thread
from feeds.mqtt_config import MqttSettings
from feeds.receiver import Receiver, wait_for
from feeds.schema import Heartbeat, SensorReading, Unit, UnitPosition, encode
from tests.mosquitto import Mosquitto, mosquitto, mqtt_publisher  # noqa: F401

GCJ = (39.901404, 116.406243)           # WGS-84 (39.9, 116.4) in GCJ-02


@pytest.fixture
def bridge(mosquitto):
    running = start_in_thread([MqttSettings.from_url(mosquitto.url)], "tcp://127.0.0.1:*",
                              src="bridge-1", devices={"alice/phone": "U-01"})
    receiver = Receiver([running.endpoint]).start()
    try:
        yield running, receiver
    finally:
        receiver.stop()
        running.stop.set()
        running.thread.join(10)
        assert not running.thread.is_alive()


def test_mqtt_in_protocol_out_under_the_bridges_src(bridge, mqtt_publisher):
    running, receiver = bridge
    got = []

    def drain():
        batch, _ = receiver.drain()
        assert not batch.rejects, batch.rejects
        got.extend(batch.records)
        return got

    assert wait_for(lambda: any(isinstance(r, Heartbeat) for r in drain()), 5)
    assert wait_for(lambda: running.bridge.sources[0].subscribed, 5)
    now = time.time()
    mqtt_publisher.publish("senml/air/aq-1", json.dumps([
        {"bn": "aq-1:", "bt": now - 2, "n": "lat", "v": 39.9}, {"n": "lon", "v": 116.4},
        {"n": "PM2.5", "u": "ug/m3", "v": 42}]))
    mqtt_publisher.publish("owntracks/alice/phone", json.dumps(
        {"_type": "location", "lat": 39.9, "lon": 116.4, "tst": int(now) - 1, "vel": 7.2}))
    unit = Unit(v=1, src="gw", seq=77, ts=int(now * 1000) - 500, unit_id="U-02",
                callsign="巡02", kind="vehicle", status="available", lat=39.95, lon=116.3)
    mqtt_publisher.publish("citywall/unit", encode(unit))
    mqtt_publisher.publish("owntracks/alice/phone", json.dumps({"_type": "waypoint"}))

    def data():
        return [r for r in drain() if not isinstance(r, Heartbeat)]

    assert wait_for(lambda: len(data()) >= 3, 5), got
    reading, pos, relayed = data()
    assert isinstance(reading, SensorReading) and reading.id == "aq-1"
    assert reading.metrics == {"pm25": 42.0} and reading.kind == "air"
    assert abs(reading.lat - GCJ[0]) < 2e-6 and abs(reading.lon - GCJ[1]) < 2e-6
    assert isinstance(pos, UnitPosition) and pos.unit_id == "U-01" and pos.speed == 2.0
    assert abs(pos.lat - GCJ[0]) < 2e-6
    # a protocol record keeps its content, but the bridge is its publisher now
    assert relayed == Unit(**{**{f: getattr(unit, f) for f in unit.__struct_fields__},
                              "src": "bridge-1", "seq": relayed.seq})
    assert {r.src for r in got} == {"bridge-1"}
    seqs = [r.seq for r in got]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))      # +1 a record, hb too
    # the waypoint was refused at the bridge, counted, and sent on to nobody
    assert wait_for(lambda: running.bridge.refused[("mqtt:owntracks", "not_location")] == 1,
                    2)
    assert wait_for(lambda: sum(isinstance(r, Heartbeat) for r in drain()) >= 2, 3)
    assert all(r.rate is not None for r in got if isinstance(r, Heartbeat))


def test_heartbeats_stop_while_every_broker_is_down_and_resume(bridge, mosquitto):
    """With every MQTT broker down the bridge sends no heartbeat, so the wall shows its src
    down (after 3 s): the MQTT side is gone. They resume when the broker is back."""
    running, receiver = bridge

    def beats(within: float) -> int:
        heard = []
        end = time.monotonic() + within
        while time.monotonic() < end:
            batch, _ = receiver.drain()
            heard.extend(r for r in batch.records
                         if isinstance(r, Heartbeat) and r.src == "bridge-1")
            time.sleep(0.05)
        return len(heard)

    assert wait_for(lambda: running.bridge.sources[0].up, 5)
    assert beats(1.2) >= 2                          # beating while the broker is up
    mosquitto.stop()
    t0 = time.monotonic()
    assert wait_for(lambda: not running.bridge.sources[0].up, 3)
    beats(max(0.0, 0.5 - (time.monotonic() - t0)))  # what was on its way
    assert time.monotonic() - t0 < 3.0
    assert beats(2.0) == 0, "heartbeats went on with every broker down"
    assert running.bridge.beating is False
    mosquitto.start()
    assert wait_for(lambda: running.bridge.sources[0].up, 6)
    assert beats(1.5) >= 2, "heartbeats did not resume with the broker back"
    assert running.bridge.beating is True


def test_command_line_errors_are_one_line(capsys, tmp_path):
    for argv, words in ((["--feed", "tcp://127.0.0.1:1"], "--mqtt"),
                        (["--mqtt", "ftp://x", "--feed", "tcp://127.0.0.1:1"], "mqtt://"),
                        (["--mqtt", "mqtt://h"], "--feed"),
                        (["--mqtt", "mqtt://h", "--feed", "tcp://127.0.0.1:1", "--roster",
                          str(tmp_path / "none.csv")], "cannot read"),
                        (["--mqtt", "mqtt://h", "--feed", "tcp://0.0.0.0:1"], "--key"),
                        (["--mqtt", "mqtt://h", "--mqtt-sub", "senml", "--feed",
                          "tcp://127.0.0.1:1"], "FORMAT FILTER"),
                        (["--mqtt", "mqtt://h", "--src", "a\x01b", "--feed",
                          "tcp://127.0.0.1:1"], "--src")):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err


def test_command_line_runs_and_stops(tmp_path, capsys):
    broker = Mosquitto(tmp_path / "auth", users={"bridge": "pw-in-a-file"}).start()
    try:
        roster = tmp_path / "roster.csv"
        roster.write_text("unit_id,district,shift,device\nU-01,110101,白班,alice/phone\n")
        pw = tmp_path / "pass"
        pw.write_text("pw-in-a-file\n")
        assert main(["--mqtt", f"mqtt://127.0.0.1:{broker.port}", "--mqtt-user", "bridge",
                     "--mqtt-password-file", str(pw), "--feed", "tcp://127.0.0.1:*",
                     "--roster", str(roster), "--run-for", "0.3"]) == 0
        err = capsys.readouterr().err
        assert "1 devices" in err and "mqtt://bridge@127.0.0.1" in err
        assert "pw-in-a-file" not in err
    finally:
        broker.stop()


class _Sock:
    def __init__(self):
        self.sent = []

    def send_multipart(self, fr):
        self.sent.append(fr)


class _Source:
    def __init__(self, records, up=True):
        self.records, self.up = records, up

    def take(self):
        from feeds.batch import Batch
        batch = Batch()
        batch.records, self.records = self.records, []
        return batch


def test_a_record_that_cannot_be_framed_costs_only_itself():
    from feeds.faults import Faults
    from feeds.mqtt_bridge import Bridge
    now = int(time.time() * 1000)
    good = SensorReading(v=1, src="s", seq=0, ts=now, id="a", kind="air", lat=39.9, lon=116.4,
                         metrics={"pm25": 1.0})
    bad = SensorReading(v=1, src="s", seq=0, ts=now, id="b", kind="空气", lat=39.9,
                        lon=116.4, metrics={"pm25": 1.0})
    pos = UnitPosition(v=1, src="s", seq=0, ts=now, unit_id="U-1", lat=39.9, lon=116.4)
    sock, faults = _Sock(), Faults()
    bridge = Bridge([_Source([good, bad, pos])], sock, src="b1", faults=faults)
    bridge.step()
    topics = [fr[0] for fr in sock.sent]
    assert topics.count(b"sensor.air") == 1 and b"unit.pos" in topics and b"hb" in topics
    assert bridge.unsendable == 1 and bridge.refused[("b1", "unsendable")] == 1 and faults
    assert bridge.failures == 0


def test_no_heartbeat_while_every_source_is_down():
    from feeds.mqtt_bridge import Bridge
    sock = _Sock()
    sources = [_Source([], up=False), _Source([], up=False)]
    bridge = Bridge(sources, sock, src="b1")
    bridge.step()
    assert sock.sent == []
    sources[1].up = True
    bridge.step()
    assert [fr[0] for fr in sock.sent] == [b"hb"]


def test_a_bridge_that_stops_by_itself_exits_1(monkeypatch, mosquitto, capsys):
    import zmq

    from feeds.mqtt_bridge import Bridge

    def broken(self):
        raise zmq.ZMQError(zmq.ETERM, "context was terminated")

    monkeypatch.setattr(Bridge, "step", broken)
    assert main(["--mqtt", mosquitto.url, "--feed", "tcp://127.0.0.1:*",
                 "--run-for", "5"]) == 1
    err = capsys.readouterr().err
    assert "stopped by itself" in err and "ZMQError" in err

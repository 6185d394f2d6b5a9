"""Hostile review of the MQTT sources: the nastiest single message, config and broker.

Each test is one attack. Pure parsing where the attack needs no network; a real Mosquitto
(``tests.mosquitto``) where it does. A failing test is a bug (see the review report); a passing
one stays as a regression test. Every wait is bounded."""
from __future__ import annotations

import argparse
import json
import socket
import ssl
import threading
import time
from collections import Counter

import pytest

from feeds.batch import Batch
from feeds.decode import MessageDecoder
from feeds.faults import Faults
from feeds.mqtt_args import add_mqtt_args, mqtt_settings
from feeds.mqtt_bridge import Bridge
from feeds.mqtt_config import MqttSettings
from feeds.mqtt_source import MqttSource
from feeds.owntracks import read_location
from feeds.receiver import wait_for
from feeds.schema import SensorReading, UnitPosition, frames
from feeds.senml import SenmlReader
from tests.mosquitto import Mosquitto, Publisher, mosquitto, mqtt_publisher  # noqa: F401

NOW = time.time_ns() // 1_000_000
NOW_S = NOW / 1000
WGS = (39.9, 116.4)
DEVICES = {"alice/phone": "U-01"}
SECRET = "s3cr3t-Pa55"


# ---- helpers --------------------------------------------------------------------------------
class Msg:
    """What paho hands ``on_message``: topic, payload, retain."""

    def __init__(self, topic: str, payload, retain: bool = False):
        self.topic = topic
        self.payload = payload if isinstance(payload, bytes) else payload.encode("utf-8")
        self.retain = retain


def offline_source(**kw) -> MqttSource:
    """A source that is never started: its callbacks are driven by hand."""
    kw.setdefault("devices", DEVICES)
    kw.setdefault("now_ms", lambda: NOW)
    kw.setdefault("faults", Faults())
    return MqttSource(MqttSettings.from_url("mqtt://127.0.0.1:1"), **kw)


def feed(source: MqttSource, topic: str, payload) -> Batch:
    source._on_message(None, None, Msg(topic, payload))
    return source.take()


def zmq_accepts(rec) -> bool:
    """Whether the wall's ZeroMQ decoder would take this record as it stands."""
    try:
        fr = frames(rec)
    except Exception:
        return False
    out = MessageDecoder(now_ms=lambda: NOW).decode(fr)
    return len(out.records) == 1 and not out.rejects


def assert_all_zmq_clean(batch: Batch) -> None:
    for rec in batch.records:
        assert zmq_accepts(rec), f"the ZeroMQ decoder would refuse {rec!r}"


def pack(bn="urn:dev:aq-7:", **extra):
    recs = [{"bn": bn, "bt": NOW_S - 10, "n": "lat", "u": "lat", "v": WGS[0]},
            {"n": "lon", "u": "lon", "v": WGS[1]},
            {"n": "pm2.5", "u": "ug/m3", "v": 35.0}]
    recs[0].update(extra)
    return json.dumps(recs)


def location(**over):
    msg = {"_type": "location", "lat": WGS[0], "lon": WGS[1], "tst": int(NOW_S) - 3,
           "vel": 18, "cog": 45, "acc": 8}
    msg.update(over)
    return json.dumps(msg)


# ---- records must be what the ZeroMQ decoder would take -------------------------------------
def test_baseline_senml_and_owntracks_are_zmq_clean():
    src = offline_source()
    b = feed(src, "senml/air/s1", pack())
    assert len(b.records) == 1
    assert_all_zmq_clean(b)
    b = feed(src, "owntracks/alice/phone", location())
    assert len(b.records) == 1
    assert_all_zmq_clean(b)


def test_senml_unicode_kind_from_topic_is_not_a_topic_the_wall_can_read():
    """BUG: the kind comes from a topic level and is checked only by ``valid_id`` (printable
    Unicode), but a reading travels on ``sensor.<kind>`` and ``frames`` encodes that ASCII
    (UnicodeEncodeError), and the ZeroMQ decoder refuses a non-ASCII topic (bad_topic)."""
    src = offline_source()
    b = feed(src, "senml/空气/s1", pack())
    for rec in b.records:
        assert zmq_accepts(rec), f"kept a reading the wall's decoder refuses: kind {rec.kind!r}"
    assert not b.records or b.rejects      # either refused by reason, or clean


def test_senml_long_kind_makes_a_topic_longer_than_the_decoder_takes():
    """BUG: a 128-character kind passes ``valid_id`` but ``sensor.`` + kind is 135 characters,
    over the decoder's MAX_TOPIC_CHARS (128): refused bad_topic at the wall."""
    src = offline_source()
    b = feed(src, "senml/" + "k" * 128 + "/s1", pack())
    for rec in b.records:
        assert zmq_accepts(rec), f"kept a reading on a {len('sensor.' + rec.kind)}-char topic"


class FakeSock:
    def __init__(self):
        self.sent: list[list[bytes]] = []

    def send_multipart(self, fr):
        self.sent.append(fr)


class FakeSource:
    def __init__(self, batch: Batch):
        self.batch = batch

    def take(self) -> Batch:
        batch, self.batch = self.batch, Batch()
        return batch


def test_bridge_one_unicode_kind_costs_every_other_record_of_the_turn():
    """BUG: one SenML pack on ``senml/空气/x`` makes ``frames`` raise in ``Bridge.step``; the
    turn's records were already taken, so every other record of that turn (a unit's position,
    other sensors) is lost and the heartbeat is not sent. A publisher sending such a pack every
    50 ms silences the whole bridge."""
    src = offline_source()
    b = Batch()
    b.merge(feed(src, "owntracks/alice/phone", location()))
    b.merge(feed(src, "senml/空气/s1", pack()))
    b.merge(feed(src, "senml/air/s2", pack(bn="s2")))
    assert len(b.records) >= 2
    sock = FakeSock()
    bridge = Bridge([FakeSource(b)], sock, now_ms=lambda: NOW)
    try:
        bridge.step()
    except Exception as exc:
        pytest.fail(f"Bridge.step raised {type(exc).__name__}: {exc} - the turn's records "
                    "are lost")
    topics = [fr[0] for fr in sock.sent]
    assert b"unit.pos" in topics and b"sensor.air" in topics, topics


def test_owntracks_unicode_and_long_topic_levels_hold():
    src = offline_source(devices={"αλφα/电话": "U-02"})
    b = feed(src, "owntracks/αλφα/电话", location())
    assert len(b.records) == 1 and b.records[0].unit_id == "U-02"
    assert_all_zmq_clean(b)
    b = feed(src, "owntracks/" + "u" * 200 + "/p", location())
    assert not b.records and sum(b.rejects.values()) == 1
    b = feed(src, "owntracks/" + "u" * 400 + "/p", location())     # over MAX_TOPIC_CHARS
    assert not b.records and sum(b.rejects.values()) == 1


# ---- numbers: JSON integers msgspec decodes exactly, however large ---------------------------
BIG = "1" + "0" * 400          # a JSON integer: msgspec gives a Python int, float() overflows


@pytest.mark.parametrize("pack_text", [
    f'[{{"bn":"s1","n":"pm10","v":{BIG}}}]',
    f'[{{"bn":"s1","bt":{BIG},"n":"pm10","v":1}}]',
    f'[{{"bn":"s1","bv":{BIG},"n":"pm10","v":1}}]',
    f'[{{"bn":"s1","n":"pm10","v":1,"t":{BIG}}}]',
    f'[{{"bn":"s1","n":"pm10","v":1,"bver":{BIG}}}]',
])
def test_senml_huge_json_integer_is_refused_by_reason_not_as_an_internal_fault(pack_text):
    """BUG: ``float(int)`` / ``math.isfinite(int)`` raise OverflowError on a 400-digit JSON
    integer; ``SenmlReader.read`` turns it into ``internal`` and the source records a fault
    (the wall shows a bug, for ordinary hostile input) — and the whole pack is lost, not one
    record."""
    reader = SenmlReader()
    reader.positions["s1"] = WGS
    recs, refused = reader.read(pack_text.encode(), kind="air", src="t", now_ms=NOW)
    assert not recs
    assert "internal" not in refused, f"refused {dict(refused)}"
    faults = Faults()
    source = offline_source(faults=faults)
    source._senml.positions["s1"] = WGS
    b = feed(source, "senml/air/x", pack_text)
    assert not b.records
    assert not faults, f"a fault for hostile input: {faults._by}"


@pytest.mark.parametrize("field", ["lat", "lon", "vel", "cog", "acc"])
def test_owntracks_huge_json_integer_is_refused_by_reason_not_internal(field):
    """BUG: ``_number`` calls ``math.isfinite`` on a 400-digit int: OverflowError → ``internal``
    and a fault recorded by the source."""
    payload = location().replace(f'"{field}": ', f'"{field}": {BIG}, "x{field}": ')
    rec, reason = read_location(payload.encode(), device="alice/phone", devices=DEVICES,
                                src="t", now_ms=NOW)
    assert rec is None
    assert reason != "internal", reason


# ---- SenML attacks the code holds against ------------------------------------------------------
SENML_ATTACKS = {
    "ctrl_in_name": json.dumps([{"bn": "s1", "lat": 1, "n": "pm\x1b[2J", "v": 1}]),
    "ctrl_in_bn": json.dumps([{"bn": "s\x00 1", "n": "pm10", "v": 1}]),
    "c1_in_name": json.dumps([{"bn": "s1", "n": "pm\x9b10", "v": 1}]),
    "bidi_in_bn": json.dumps([{"bn": "s\u202e1", "n": "pm10", "v": 1}]),
    "bn_10kb": json.dumps([{"bn": "b" * 10_000, "n": "pm10", "v": 1}]),
    "name_10kb": json.dumps([{"bn": "s1", "n": "n" * 10_000, "v": 1}]),
    "v_overflow": '[{"bn":"s1","n":"pm10","v":1e309}]',
    "v_sum_overflow": '[{"bn":"s1","bv":1e308,"n":"pm10","v":1e308}]',
    "v_just_over_finite": '[{"bn":"s1","bv":1e306,"n":"pm10","v":1.7e308}]',
    "bt_1e300": '[{"bn":"s1","bt":1e300,"n":"pm10","v":1}]',
    "bt_neg_1e300": '[{"bn":"s1","bt":-1e300,"n":"pm10","v":1}]',
    "t_year_146M": '[{"bn":"s1","n":"pm10","v":1,"t":4.6e15}]',
    "t_neg_epoch": '[{"bn":"s1","bt":-1700000000,"n":"pm10","v":1}]',
    "t_relative_far_future": f'[{{"bn":"s1","n":"pm10","v":1,"t":{2 ** 28 - 1}}}]',
    "t_just_ahead": f'[{{"bn":"s1","n":"pm10","v":1,"t":{NOW_S + 3600}}}]',
    "nan_token": '[{"bn":"s1","n":"pm10","v":NaN}]',
    "inf_token": '[{"bn":"s1","n":"pm10","v":Infinity}]',
    "neg_inf": '[{"bn":"s1","n":"pm10","v":-Infinity}]',
    "lone_surrogate": '[{"bn":"s\\ud800","n":"pm10","v":1}]',
    "lone_surrogate_name": '[{"bn":"s1","n":"\\udfff","v":1}]',
    "deep_100k": "[" * 100_000 + "]" * 100_000,
    "deep_in_record": '[{"bn":"s1","n":"pm10","v":1,"x":' + "[" * 50_000 + "]" * 50_000 + "}]",
    "not_utf8": b'[{"bn":"s\xff","n":"pm10","v":1}]',
    "bool_bt": '[{"bn":"s1","bt":true,"n":"pm10","v":1}]',
    "string_v": '[{"bn":"s1","n":"pm10","v":"1"}]',
    "bool_v": '[{"bn":"s1","n":"pm10","v":true}]',
    "lat_out": '[{"bn":"s9","n":"lat","v":91},{"n":"lon","v":1},{"n":"pm10","v":1}]',
    "lat_via_bv": '[{"bn":"s9","bv":80,"n":"lat","v":80},{"n":"lon","v":1},{"n":"pm10","v":1}]',
    "must_understand": '[{"bn":"s1","n":"pm10","v":1,"foo_":1}]',
    "object_not_array": '{"bn":"s1","n":"pm10","v":1}',
    "empty": "[]",
    "too_many_records": json.dumps([{"bn": "s1", "n": f"m{i}", "v": 1} for i in range(65)]),
}


@pytest.mark.parametrize("name", sorted(SENML_ATTACKS))
def test_senml_attack_refused_or_clean(name):
    faults = Faults()
    src = offline_source(faults=faults)
    src._senml.positions["s1"] = WGS
    payload = SENML_ATTACKS[name]
    t0 = time.monotonic()
    b = feed(src, "senml/air/x", payload)
    assert time.monotonic() - t0 < 1.0
    assert b.records == [], f"{name}: kept {b.records}"
    assert b.rejects and ("mqtt:senml", "internal") not in b.rejects, dict(b.rejects)
    assert not faults, faults._by


def test_senml_33_metrics_for_one_sensor_refused_32_kept():
    src = offline_source()
    src._senml.positions["s1"] = WGS
    many = [{"bn": "s1", "n": "m0", "v": 0}] + [{"n": f"m{i}", "v": i} for i in range(1, 33)]
    b = feed(src, "senml/air/x", json.dumps(many))
    assert not b.records and b.rejects[("mqtt:senml", "too_large")] == 1
    b = feed(src, "senml/air/x", json.dumps(many[:32]))
    assert len(b.records) == 1 and len(b.records[0].metrics) == 32
    assert_all_zmq_clean(b)


def test_senml_case_variants_of_a_name_collapse_not_overflow():
    """``PM2.5``, ``pm2.5``, ``pm2_5`` all map to pm25: one metric, the last value."""
    src = offline_source()
    src._senml.positions["s1"] = WGS
    recs = [{"bn": "s1", "n": "PM2.5", "v": 1}, {"n": "pm2_5", "v": 2}, {"n": "pm25", "v": 3}]
    b = feed(src, "senml/air/x", json.dumps(recs))
    assert len(b.records) == 1 and b.records[0].metrics == {"pm25": 3.0}


def test_senml_100mb_payload_refused_fast():
    src = offline_source()
    t0 = time.monotonic()
    b = feed(src, "senml/air/x", b"[" + b" " * (100 * 1024 * 1024) + b"]")
    assert time.monotonic() - t0 < 1.0
    assert b.rejects == Counter({("mqtt:senml", "too_large"): 1})


def test_senml_million_base_names_memory_bounded():
    reader = SenmlReader(max_positions=500)
    for i in range(3_000):
        p = json.dumps([{"bn": f"dev-{i}", "n": "lat", "v": 30.0},
                        {"n": "lon", "v": 110.0}, {"n": "pm10", "v": 1}]).encode()
        recs, refused = reader.read(p, kind="air", src="t", now_ms=NOW)
        assert len(recs) == 1, refused
    assert len(reader.positions) == 500


def test_senml_records_in_pack_all_zmq_clean_under_random_fuzz():
    """Random packs of plausible-but-wild fields: whatever is kept, the decoder takes."""
    import random
    rnd = random.Random(1234)
    values = [0, -1, 1e308, -1e308, 1.7e308, 1e-320, 2 ** 63, -(2 ** 63), 91, -181, 1e13,
              NOW_S, NOW_S + 700, NOW_S - 1e9, 2 ** 28, -(2 ** 28), True, False, None, "x", "",
              "\u2028", "a" * 129, "ok"]
    keys = ["bn", "bt", "bv", "bu", "n", "u", "v", "vb", "vs", "t", "lat", "lon"]
    names = ["lat", "lon", "pm2.5", "LAT", "Longitude", "open", "noise", "a" * 128, "a" * 129,
             "x\u00a0y", "\u200b", "m"]
    src = offline_source()
    for _ in range(1500):
        recs = []
        for j in range(rnd.randint(1, 5)):
            r = {k: rnd.choice(values) for k in rnd.sample(keys, rnd.randint(1, 6))}
            if rnd.random() < 0.7:
                r["n"] = rnd.choice(names)
            if j == 0 and rnd.random() < 0.8:
                r["bn"] = rnd.choice(["s1", "s2:", "urn:dev:x/", "a" * 128 + ":"])
            recs.append(r)
        b = feed(src, "senml/air/x", json.dumps(recs))
        assert ("mqtt:senml", "internal") not in b.rejects, recs
        assert_all_zmq_clean(b)


# ---- OwnTracks attacks -------------------------------------------------------------------------
OT_ATTACKS = {
    "lat_string": location(lat="39.9"),
    "lat_bool": location(lat=True),
    "lat_null": location(lat=None),
    "tst_float_1e20": location(tst=1e20),
    "tst_float_small": location(tst=NOW_S),
    "tst_year_146M": location(tst=146_000_000 * 31_557_600),
    "tst_neg": location(tst=-1),
    "tst_future": location(tst=int(NOW_S) + 3600),
    "tst_bool": location(tst=True),
    "vel_huge": location(vel=1e300),
    "cog_over": location(cog=361),
    "acc_neg": location(acc=-1),
    "lat_nan_token": location().replace('"lat": 39.9', '"lat": NaN'),
    "lat_1e400": location().replace('"lat": 39.9', '"lat": 1e400'),
    "surrogate_type": location().replace('"location"', '"\\ud800"'),
    "deep": '{"_type":"location","x":' + "[" * 100_000 + "]" * 100_000 + "}",
    "array": "[" + location() + "]",
    "big": location(pad="x" * 20_000),
    "type_lwt": location(_type="lwt"),
}


@pytest.mark.parametrize("name", sorted(OT_ATTACKS))
def test_owntracks_attack_refused(name):
    faults = Faults()
    src = offline_source(faults=faults)
    b = feed(src, "owntracks/alice/phone", OT_ATTACKS[name])
    assert not b.records, f"{name}: kept {b.records}"
    assert b.rejects and ("mqtt:owntracks", "internal") not in b.rejects, dict(b.rejects)
    assert not faults


def test_owntracks_negative_vel_cog_left_out_and_clean():
    src = offline_source()
    b = feed(src, "owntracks/alice/phone", location(vel=-1, cog=-1))
    assert len(b.records) == 1 and b.records[0].speed is None and b.records[0].course is None
    assert_all_zmq_clean(b)


def test_owntracks_million_unknown_devices_keep_nothing():
    src = offline_source()
    for i in range(5_000):
        src._on_message(None, None, Msg(f"owntracks/u{i}/p{i}", location()))
    b = src.take()
    assert not b.records and b.rejects == Counter({("mqtt:owntracks", "unknown_device"): 5000})
    assert len(b.heard) == 1


# ---- protocol over MQTT ----------------------------------------------------------------------
def test_protocol_topic_with_unicode_and_control_levels_refused():
    src = offline_source()
    rec = json.dumps({"v": 1, "src": "p", "seq": 0, "ts": NOW, "unit_id": "U-1", "lat": 39.9,
                      "lon": 116.4})
    for topic in ("citywall/unit/pos\u00e9", "citywall/unit\x1b/pos", "citywall/" + "a/" * 100):
        b = feed(src, topic, rec)
        assert not b.records, topic
    b = feed(src, "citywall/unit/pos", rec)
    assert len(b.records) == 1
    assert_all_zmq_clean(b)


def test_protocol_record_cannot_take_a_subscription_own_src():
    """A protocol record over MQTT keeps whatever ``src`` it claims, including the src the
    source itself stamps SenML/OwnTracks records with (``mqtt:owntracks``) — two different
    records then share one (src, seq), and the "own seq" bookkeeping is worthless. (The same
    hole lets any MQTT publisher claim a ZeroMQ publisher's src, past ``--publishers``.)"""
    src = offline_source()
    forged = json.dumps({"v": 1, "src": "mqtt:owntracks", "seq": 0, "ts": NOW,
                         "unit_id": "U-01", "lat": 10.0, "lon": 10.0})
    b = Batch()
    b.merge(feed(src, "citywall/unit.pos", forged))
    b.merge(feed(src, "owntracks/alice/phone", location()))
    pairs = [(r.src, r.seq) for r in b.records]
    assert len(pairs) == len(set(pairs)), f"two records with one (src, seq): {b.records}"


def test_protocol_million_sources_tracker_bounded():
    src = offline_source()
    for i in range(3_000):
        rec = json.dumps({"v": 1, "src": f"p{i}", "seq": 5, "ts": NOW, "unit_id": "U-1",
                          "lat": 39.9, "lon": 116.4})
        src._on_message(None, None, Msg("citywall/unit.pos", rec))
    src.take()
    assert len(src._seq_tracker.last) <= src._seq_tracker.max_sources


def test_backlog_bounded_when_nobody_takes():
    src = offline_source(max_pending=100)
    for i in range(300):
        src._on_message(None, None, Msg("owntracks/alice/phone", location()))
    assert src.backlog() == 100
    b = src.take()
    assert b.rejects[("mqtt:owntracks", "backlog_full")] == 200


def test_an_exception_while_judging_costs_one_message_and_is_a_fault():
    faults = Faults()
    calls = {"n": 0}

    def clock():
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("clock broke")
        return NOW

    src = offline_source(faults=faults, now_ms=clock)
    b = feed(src, "owntracks/alice/phone", location())
    assert b.rejects[("?", "internal")] == 1 and faults
    b = feed(src, "owntracks/alice/phone", location())
    assert len(b.records) == 1


# ---- passwords -------------------------------------------------------------------------------
def _parse(argv):
    p = argparse.ArgumentParser()
    add_mqtt_args(p)
    return p.parse_args(argv)


def test_password_not_in_error_for_a_flag_given_twice(tmp_path):
    """BUG: ``mqtt_args.mqtt_settings`` says ``{one['url']!r} is given it twice``: the raw URL,
    password and all, goes to stderr (and any log of the wall's start-up)."""
    url = f"mqtt://wall:{SECRET}@broker.city:1883"
    for extra in (["--mqtt-user", "a", "--mqtt-user", "b"],
                  ["--mqtt-ca", "a", "--mqtt-ca", "b"]):
        args = _parse(["--mqtt", url, *extra])
        with pytest.raises(ValueError) as err:
            mqtt_settings(args)
        assert SECRET not in str(err.value), str(err.value)


@pytest.mark.parametrize("url", [
    f"mqtt://wall:{SECRET}@broker:99999",
    f"mqtt://wall:{SECRET}@broker:0",
    f"http://wall:{SECRET}@broker",
    f"mqtt://wall:{SECRET}@broker/path",
    f"mqtt://wall:{SECRET}@[::1",
    f"mqtt://wall:{SECRET}@",
    f"mqtt://wall:{SECRET}\n@broker:x",
    f"mqtt://:{SECRET}@broker",
    f"mqtt://wall:{SECRET}%00@broker",
])
def test_password_never_in_a_config_error(url):
    try:
        s = MqttSettings.from_url(url)
    except ValueError as exc:
        assert SECRET not in str(exc), str(exc)
    else:
        assert SECRET not in s.name and SECRET not in repr(s)


def test_password_not_in_name_health_or_repr():
    s = MqttSettings.from_url(f"mqtt://wall:{SECRET}@127.0.0.1:1")
    src = MqttSource(s)
    assert SECRET not in s.name and SECRET not in repr(s)
    assert SECRET not in json.dumps(src.health())


# ---- against a real broker ---------------------------------------------------------------------
def start_source(url, **kw) -> MqttSource:
    kw.setdefault("devices", DEVICES)
    kw.setdefault("now_ms", lambda: NOW)
    kw.setdefault("faults", Faults())
    return MqttSource(MqttSettings.from_url(url), **kw).start()


def test_wrong_password_says_so_and_never_leaks(tmp_path, caplog):
    with Mosquitto(tmp_path / "m", users={"wall": "right"}) as broker:
        url = f"mqtt://wall:{SECRET}@127.0.0.1:{broker.port}"
        src = start_source(url)
        try:
            assert wait_for(lambda: src.last_error is not None, 5), src.health()
            assert not src.up
            text = json.dumps(src.health()) + caplog.text + repr(src.faults._by)
            assert SECRET not in text
            assert src.name not in src.take().endpoints
        finally:
            t0 = time.monotonic()
            src.stop()
            assert time.monotonic() - t0 < 3


class SilentServer:
    """Accepts TCP and never says a word (a broker that never sends CONNACK)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                pass

    def close(self):
        self._stop = True
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


def test_broker_that_never_answers_connack_is_down_and_says_why():
    """``up`` stays False (the wall shows the link down) — but ``last_error`` stays None: paho
    drops the silent connection after the keepalive and ``_on_disconnect`` only records an error
    when it was up; nothing says *why* the broker is down."""
    server = SilentServer()
    src = start_source(f"mqtt://127.0.0.1:{server.port}")
    try:
        assert wait_for(lambda: src.health()["last_error"] is not None, 10), src.health()
        b = src.take()
        assert not src.up and src.name not in b.endpoints
    finally:
        took = _stop_timed(src, server)
    assert took < STOP_BOUND_S, f"stop() took {took:.1f} s"


# stop() waits at most STOP_WAIT_S (1.5 s) for paho's thread; before the fix a silent TLS
# broker held it 4.5 s. A liveness bound (stop returns), not a speed figure.
STOP_BOUND_S = 3.0


def _stop_timed(src, server) -> float:
    t0 = time.monotonic()
    src.stop()
    took = time.monotonic() - t0
    server.close()
    return took


def test_stop_while_connecting_to_a_silent_broker_is_quick():
    server = SilentServer()
    src = start_source(f"mqtt://127.0.0.1:{server.port}")
    try:
        assert wait_for(lambda: server.conns, 5)          # connecting: TCP accepted
    finally:
        took = _stop_timed(src, server)
    assert took < STOP_BOUND_S, f"stop() took {took:.1f} s"


def test_stop_while_tls_handshake_hangs_is_quick(tmp_path):
    """A TLS broker that accepts TCP but never finishes the handshake: paho blocks in
    ``do_handshake`` for its connect timeout (5 s) inside its thread, and ``stop()`` joins
    that thread without a timeout."""
    server = SilentServer()
    ca = tmp_path / "ca.pem"
    from tests.mosquitto import make_certs
    ca, _, _ = make_certs(tmp_path / "certs")
    src = MqttSource(MqttSettings.from_url(f"mqtts://127.0.0.1:{server.port}", ca=str(ca)),
                     now_ms=lambda: NOW).start()
    try:
        assert wait_for(lambda: server.conns, 5)          # in the handshake: TCP accepted
    finally:
        took = _stop_timed(src, server)
    assert took < STOP_BOUND_S, f"stop() took {took:.1f} s"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_paho_thread_dying_shows_down_in_health_and_take(mosquitto):     # (it dies on purpose)
    """Kill paho's network thread (a callback that raises, as paho re-raises callbacks'
    exceptions): the wall must hear of it. ``take()`` notices and restarts; ``health()`` on its
    own keeps saying up/subscribed."""
    faults = Faults()
    src = start_source(mosquitto.url, faults=faults)
    pub = Publisher(mosquitto.port)
    try:
        assert wait_for(lambda: src.subscribed, 5), src.health()
        client = src._client
        good = client.on_message

        def boom(c, u, m):
            client.on_message = good
            raise RuntimeError("callback exploded")

        client.on_message = boom
        pub.publish("owntracks/alice/phone", location())
        assert wait_for(lambda: client._thread is None, 5), "paho's thread did not die"
        health = src.health()
        dead_but_up = health["up"]
        b = src.take()                              # notices and restarts
        assert faults, "take() did not record the dead thread"
        assert src.name not in b.endpoints or client._thread is not None
        got = Batch()

        def arrived():
            pub.publish("owntracks/alice/phone", location())
            got.merge(src.take())
            return bool(got.records)

        assert wait_for(arrived, 5), "no records after the restart"
        assert not dead_but_up, f"health() said up with paho's thread dead: {health}"
    finally:
        pub.close()
        src.stop()


def test_retained_stale_senml_pack_is_not_shown_as_a_reading_taken_now(mosquitto):
    """A SenML pack without a time (or a relative one) is stamped "now" when it arrives. A
    retained one arrives again at every connect (clean session): a sensor that died a week ago
    shows a fresh reading each time the wall connects or reconnects."""
    pub = Publisher(mosquitto.port)
    stale = json.dumps([{"bn": "dead-sensor", "n": "lat", "v": WGS[0]},
                        {"n": "lon", "v": WGS[1]}, {"n": "pm10", "v": 999}])
    pub.publish("senml/air/dead", stale, retain=True)
    src = start_source(mosquitto.url)
    try:
        got = Batch()
        assert wait_for(lambda: (got.merge(src.take()), got.messages)[1] >= 1, 5), \
            "the retained pack did not arrive"
        fresh = [r for r in got.records if r.id == "dead-sensor" and r.ts >= NOW - 1000]
        assert not fresh, f"a retained pack of unknown age shown as taken now: {fresh}"
    finally:
        pub.close()
        src.stop()


def test_retained_flood_keeps_backlog_bounded(mosquitto):
    pub = Publisher(mosquitto.port)
    for i in range(1500):
        pub.client.publish(f"owntracks/alice/p{i}", location(), qos=0, retain=True)
    pub.publish("owntracks/alice/phone", location(), retain=True)
    src = start_source(mosquitto.url, max_pending=50)
    try:
        assert wait_for(lambda: src.messages >= 1501, 10), src.messages
        assert src.backlog() <= 50
        b = src.take()
        assert len(b.records) <= 50 and sum(b.rejects.values()) >= 1500
        assert src.up
    finally:
        pub.close()
        src.stop()


def test_big_message_through_the_broker_refused_and_source_stays_up(mosquitto):
    src = start_source(mosquitto.url)
    pub = Publisher(mosquitto.port)
    try:
        assert wait_for(lambda: src.subscribed, 5)
        pub.publish("senml/air/x", b"[" + b" " * (8 * 1024 * 1024) + b"]", timeout_s=10)
        pub.publish("owntracks/alice/phone", location())
        got = Batch()
        assert wait_for(lambda: (got.merge(src.take()), bool(got.records))[1], 10)
        assert got.rejects[("mqtt:senml", "too_large")] == 1
        assert src.up
    finally:
        pub.close()
        src.stop()


def test_unicode_kind_through_the_real_bridge_does_not_silence_it(mosquitto):
    """End to end: the bridge, a SenML pack on a non-ASCII kind, and a unit position in the
    same moment; the position must reach the ZeroMQ feed."""
    import zmq
    from feeds.mqtt_bridge import start_in_thread
    ctx = zmq.Context()
    running = start_in_thread([MqttSettings.from_url(mosquitto.url)], "tcp://127.0.0.1:*",
                              devices=DEVICES, context=ctx, now_ms=lambda: NOW)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"unit.pos")
    sub.setsockopt(zmq.SUBSCRIBE, b"hb")
    sub.connect(running.endpoint)
    pub = Publisher(mosquitto.port)
    try:
        assert wait_for(lambda: all(s.subscribed for s in running.bridge.sources), 5)
        assert sub.poll(5000)                   # a heartbeat: the SUB's subscription is in
        seen = 0
        for _ in range(10):
            # the hostile pack and a position, as close together as a broker delivers them
            pub.client.publish("senml/空气/s1", pack(), qos=0)
            pub.publish("owntracks/alice/phone", location())
            time.sleep(0.02)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            if sub.poll(100) and sub.recv_multipart()[0] == b"unit.pos":
                seen += 1
        assert running.bridge.failures == 0 and seen == 10, (
            f"{seen}/10 unit.pos published; bridge turns failed {running.bridge.failures}")
    finally:
        pub.close()
        running.stop.set()
        running.thread.join(5)
        sub.close(0)
        ctx.term()


# ---- files and flags ---------------------------------------------------------------------------
def test_roster_from_an_endless_file_is_refused_not_read_forever(tmp_path):
    """BUG: ``load_devices`` checks ``stat().st_size`` (0 for /dev/zero, a FIFO, a /proc file)
    and then ``read_bytes()`` the whole thing before cutting it to MAX_BYTES: /dev/zero is read
    until memory runs out. Run in a child with a 1 GB address-space limit and a 10 s bound."""
    import subprocess
    import sys
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
            "from feeds.roster_devices import load_devices\n"
            "try:\n    load_devices('/dev/zero')\n"
            "except ValueError as e:\n    print('REFUSED', e)\n"
            "except MemoryError:\n    print('MEMORYERROR')\n")
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=10, cwd=str(__import__("pathlib").Path(__file__).parents[1]))
        text = out.stdout + out.stderr[-500:]
    except subprocess.TimeoutExpired:
        text = "TIMEOUT (still reading after 10 s)"
    assert "REFUSED" in text, text


def test_roster_over_the_limit_through_a_pipe_is_refused_not_cut(tmp_path):
    """A roster larger than MAX_BYTES that ``stat`` cannot size (a FIFO) is cut silently at
    MAX_BYTES and parsed, instead of being refused as larger than the limit."""
    import os
    from feeds.roster_devices import MAX_BYTES, load_devices
    fifo = tmp_path / "roster.csv"
    os.mkfifo(fifo)
    row = b"U-%06d,day,user%06d/phone," + b"d" * 300 + b"\n"    # few, long rows
    body = b"unit_id,shift,device,district\n"
    n = 0
    chunks = [body]
    size = len(body)
    while size <= MAX_BYTES + 1000:
        line = row % (n, n)
        chunks.append(line)
        size += len(line)
        n += 1

    def writer():
        try:
            with open(fifo, "wb") as f:
                for c in chunks:
                    f.write(c)
        except BrokenPipeError:
            pass                      # the reader stopped at its limit: what the test wants

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        with pytest.raises(ValueError) as err:
            load_devices(fifo)
        assert "larger" in str(err.value) or "more than" in str(err.value), str(err.value)
    finally:
        t.join(5)
        if t.is_alive():                         # unblock a writer nobody reads
            with open(fifo, "rb") as f:
                f.read()


def test_kind_level_with_a_unicode_digit_is_a_flag_error():
    from feeds.mqtt_args import parse_sub
    with pytest.raises(ValueError) as err:
        parse_sub("senml senml/# kind_level=²")
    assert "--mqtt-sub" in str(err.value), str(err.value)


# ---- frames ----------------------------------------------------------------------------------
def test_crs_never_raises_and_never_returns_non_finite():
    import math
    import numpy as np
    from feeds.crs import convert
    from feeds.crs_arrays import convert_arrays
    pts = [(0.0, 0.0), (90.0, 180.0), (-90.0, -180.0), (55.8271, 137.8347), (0.8293, 72.004),
           (39.9, 116.4), (1e-320, 1e-320), (45.0, 1e300 * 0)]
    for lat, lon in pts:
        for a, b in (("wgs84", "gcj02"), ("gcj02", "wgs84")):
            out = convert(lat, lon, a, b)
            if out is not None:
                assert all(math.isfinite(v) for v in out) or not math.isfinite(lon)
                if math.isfinite(lon):
                    assert -90 <= out[0] <= 90 and -180 <= out[1] <= 180
    lat = np.array([float("nan"), float("inf"), 39.9, 1e308])
    lon = np.array([116.4, 116.4, float("nan"), 116.4])
    for a, b in (("wgs84", "gcj02"), ("gcj02", "wgs84")):
        la, lo, ok = convert_arrays(lat, lon, a, b)
        assert not ok[0] and not ok[1] and not ok[2]
        assert np.isfinite(la[ok]).all() and np.isfinite(lo[ok]).all()


# ---- cost of one message ------------------------------------------------------------------------
@pytest.mark.parametrize("unit", [b"{}", b"[]", b"0"])
def test_a_1mb_senml_pack_is_refused_without_decoding_it_all(unit):
    """BUG (stall): a pack may hold at most 64 records, yet a 1 MiB one (the source's
    ``max_message_bytes``) is decoded whole and walked by ``depth_exceeds`` before the count is
    checked: ~0.3 s of paho's one thread per message. Three such messages a second and every
    other MQTT message (units' positions) waits behind them; the broker drops what it cannot
    queue."""
    src = offline_source()
    n = (1024 * 1024 - 2) // (len(unit) + 1)
    payload = b"[" + b",".join([unit] * n) + b"]"
    assert len(payload) <= src.max_message_bytes
    best = min(_timed(src, payload) for _ in range(2))
    b = src.take()
    assert not b.records and b.rejects[("mqtt:senml", "too_large")] == 2
    assert best < 0.05, f"one hostile pack held paho's thread {best * 1000:.0f} ms"


def _timed(src, payload) -> float:
    t0 = time.perf_counter()
    src._on_message(None, None, Msg("senml/air/x", payload))
    return time.perf_counter() - t0

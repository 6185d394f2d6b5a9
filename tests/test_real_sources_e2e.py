"""The issue's end-to-end check, with every part real: a Mosquitto broker, a phone's OwnTracks
fixes sent by a real paho client, the MQTT bridge, the dispatch service (ZeroMQ, SQLite), and
two walls — one hearing the MQTT broker itself, one hearing only ZeroMQ feeds (the bridge's).

A dispatch, then 60 s of fixes for that unit (by the city's clock, run at 60×: a fix every
city second), keeps the unit dispatched on the service and on both walls, moves it where the
phone is (converted from WGS-84 into the walls' GCJ-02), and its track shows the fixes.
"""
from __future__ import annotations

import json
import time

import pytest
import zmq

from feeds import mqtt_bridge
from feeds.crs import convert
from feeds.dispatch_client import DispatchClient
from feeds.dispatch_service import DispatchService
from feeds.mqtt_config import MqttSettings
from feeds.mqtt_source import MqttSource
from feeds.receiver import Receiver, wait_for
from feeds.roster_devices import load_devices
from situation.clock import ScaledClock
from situation.store import Situation
from tests.mosquitto import Publisher, mosquitto  # noqa: F401  (the fixture)
from tests.pubhelp import TestPublisher, record

T0 = 1_795_449_600_000 + 9 * 3_600_000          # 2026-11-24 09:00 Beijing time
SPEED = 60.0                                     # a city second every 1/60 s
START = (39.9087, 116.3975)                      # WGS-84, Dongcheng
STEP_DEG = 0.0003                                # ~33 m north a fix: every fix is a track point


class Wall:
    """A wall's parts without windows: a situation and its sources, drained on demand."""

    def __init__(self, clock, sources):
        self.situation = Situation(clock)
        self.sources = sources

    def drain(self) -> None:
        for source in self.sources:
            self.situation.apply(source.take())

    def unit(self):
        self.drain()
        return self.situation.units.get("U1")

    def stop(self) -> None:
        for source in self.sources:
            source.stop()


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def _fix(i: int, tst_s: int) -> bytes:
    return json.dumps({"_type": "location", "lat": START[0] + i * STEP_DEG, "lon": START[1],
                       "tst": tst_s, "vel": 4, "cog": 0, "acc": 8, "tid": "al"}).encode()


def test_a_dispatch_then_60_s_of_owntracks_fixes_keeps_the_unit_dispatched_everywhere(
        ctx, tmp_path, mosquitto):
    clock = ScaledClock(T0, SPEED)
    roster = tmp_path / "roster.csv"
    roster.write_text("unit_id,district,shift,device\nU1,110101,day,alice/phone\n"
                      "U2,110101,day,bob/phone\n", encoding="utf-8")
    devices = load_devices(roster)
    mqtt = MqttSettings.from_url(mosquitto.url)

    # The case system and the units' roster feed (a ZeroMQ publisher), the bridge, the service.
    cases = TestPublisher(ctx)
    bridge = mqtt_bridge.start_in_thread([mqtt], "tcp://127.0.0.1:*",
                                         devices=devices, context=ctx, now_ms=clock.now_ms)
    service = DispatchService([cases.endpoint, bridge.endpoint], "tcp://127.0.0.1:*",
                              "tcp://127.0.0.1:*", tmp_path / "dispatch.sqlite3",
                              now_ms=clock.now_ms, context=ctx).start()
    opts = dict(context=ctx, now_ms=clock.now_ms)
    wall_mqtt = Wall(clock, [Receiver([cases.endpoint, service.feed_endpoint], **opts).start(),
                             MqttSource(mqtt, display_crs="gcj02", now_ms=clock.now_ms,
                                        devices=devices).start()])
    wall_zmq = Wall(clock, [Receiver([cases.endpoint, service.feed_endpoint,
                                      bridge.endpoint], **opts).start()])
    walls = (wall_mqtt, wall_zmq)
    client = DispatchClient(service.dispatch_endpoint, "console-1", context=ctx)
    phone = Publisher(mosquitto.port)
    try:
        assert wait_for(lambda: wall_mqtt.sources[1].health()["subscribed"], 10)
        cases.wait_subscriber()
        now = clock.now_ms()
        unit_at = convert(*START, "wgs84", "gcj02")
        # Subscribers join one by one: send until the service and both walls hold the city.
        def city_known() -> bool:
            cases.send("case", record("case", src="cases", seq=0, ts=now, case_id="C1",
                                      lat=unit_at[0], lon=unit_at[1]))
            cases.send("unit", record("unit", src="units", seq=0, ts=now, unit_id="U1",
                                      lat=unit_at[0], lon=unit_at[1]))
            return (service.unit("U1") is not None
                    and all(w.unit() is not None for w in walls))
        assert wait_for(city_known, 10, step_s=0.1)

        oid = client.send("dispatch", case_id="C1", unit_id="U1")
        acks = []
        assert wait_for(lambda: acks.extend(e for e in client.poll(20)
                                            if e[0] == "ack" and e[1] == oid) or acks, 10)
        assert acks[0][2].result == "accepted", acks[0][2].reason
        for w in walls:
            assert wait_for(lambda w=w: w.unit().status == "dispatched", 10)

        # 60 s of fixes, one a city second, each stamped with the city's clock.
        first_s = clock.now_ms() // 1000 + 1
        fixes = []
        for i in range(60):
            t_s = first_s + i
            assert wait_for(lambda t_s=t_s: clock.now_ms() >= t_s * 1000, 5, step_s=0.002)
            phone.publish("owntracks/alice/phone", _fix(i, t_s))
            fixes.append(convert(START[0] + i * STEP_DEG, START[1], "wgs84", "gcj02"))
        last = fixes[-1]

        def at_last_fix(u) -> bool:
            return u is not None and (u.lat, u.lon) == pytest.approx(last, abs=1e-9)
        for w in walls:
            assert wait_for(lambda w=w: at_last_fix(w.unit()), 10), w.situation.status()
        assert wait_for(lambda: at_last_fix(service.unit("U1")), 10)

        # Still dispatched to C1 everywhere: no fix undid the order.
        held = service.unit("U1")
        assert (held.status, held.case_id) == ("dispatched", "C1")
        for w in walls:
            u = w.unit()
            assert (u.status, u.case_id) == ("dispatched", "C1")
            assert w.situation.cases["C1"].unit_id == "U1"
            track = [(lat, lon) for _, lon, lat in w.situation.tracks["U1"]]
            assert len(track) >= 60
            flat = lambda pts: [x for p in pts for x in p]      # noqa: E731
            assert flat(track[-60:]) == pytest.approx(flat(fixes), abs=1e-9)
            assert not w.situation.unit_stale(u)
            assert not w.situation.rejected, w.situation.rejected

        # And the unit can still be recalled: the service's picture is whole.
        rid = client.send("recall", unit_id="U1")
        acks.clear()
        assert wait_for(lambda: acks.extend(e for e in client.poll(20)
                                            if e[0] == "ack" and e[1] == rid) or acks, 10)
        assert acks[0][2].result == "accepted", acks[0][2].reason
        for w in walls:
            assert wait_for(lambda w=w: w.unit().status == "available", 10)
            assert at_last_fix(w.unit())            # recalled where the phone last was
    finally:
        phone.close()
        client.close()
        for w in walls:
            w.stop()
        service.stop()
        bridge.stop.set()
        bridge.thread.join(5)
        cases.close()

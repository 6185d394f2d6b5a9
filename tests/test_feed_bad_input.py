"""Every bad input of PROTOCOL.md, sent over a real PUB socket: counted per source and reason,
never fatal, and nothing already held is lost or changed."""
from __future__ import annotations

import json

import pytest

from feeds.receiver import Receiver
from situation.clock import ManualClock
from situation.store import Situation
from tests.pubhelp import drain_until, record

T0 = 1_700_000_000_000


@pytest.fixture
def wired(publisher):
    receiver = Receiver([publisher.endpoint]).start()
    publisher.wait_subscriber()
    situation = Situation(ManualClock(T0))
    yield publisher, receiver, situation
    receiver.stop()


def fence(pub, receiver, situation, n: int) -> None:
    """A record from another src marks the end of what was sent before it."""
    pub.send("hb", record("hb", src="fence", seq=n, ts=T0))
    assert drain_until(receiver, situation,
                       lambda: situation.sources.get("fence") is not None
                       and situation.sources["fence"].last_seq == n)


def held(situation):
    return ({k: v for k, v in situation.cases.items()}, dict(situation.units),
            dict(situation.sensors))


BAD_INPUTS = [
    # (name, frames, reason, src it is counted under)
    ("not utf-8", [b"case", b"\xff\xfe\xfd"], "not_utf8", "?"),
    ("not json", [b"case", b'{"v":1,"src":"evil","seq":9,'], "not_json", "evil"),
    ("missing field", [b"case", json.dumps({k: v for k, v in record(
        "case", src="evil", seq=9).items() if k != "case_id"}).encode()], "missing_field", "evil"),
    ("wrong type", [b"unit", json.dumps(record("unit", src="evil", seq=9, lat="north")).encode()],
     "wrong_type", "evil"),
    ("lat out of range", [b"unit", json.dumps(record("unit", src="evil", seq=9, lat=91.0)).encode()],
     "out_of_range", "evil"),
    ("lon out of range", [b"case", json.dumps(record("case", src="evil", seq=9, lon=-181)).encode()],
     "out_of_range", "evil"),
    ("NaN", [b"sensor.air", json.dumps(record("sensor.air", src="evil", seq=9,
                                               metrics={"pm25": float("nan")})).encode()],
     "not_finite", "evil"),
    ("Infinity", [b"unit", json.dumps(record("unit", src="evil", seq=9,
                                              speed=float("inf"))).encode()], "not_finite", "evil"),
    ("unknown v", [b"case", json.dumps(record("case", src="evil", seq=9, v=2)).encode()],
     "unknown_version", "evil"),
    ("too large", [b"case", json.dumps(record("case", src="evil", seq=9,
                                              description="x" * 70_000)).encode()],
     "too_large", "evil"),
    ("one frame", [b"case"], "bad_frames", "?"),
    ("three frames", [b"case", b"{}", b"{}"], "bad_frames", "?"),
    ("bad status", [b"case", json.dumps(record("case", src="evil", seq=9,
                                               status="exploded")).encode()], "bad_value", "evil"),
    ("topic mismatch", [b"sensor.noise", json.dumps(record("sensor.air", src="evil",
                                                           seq=9)).encode()],
     "topic_mismatch", "evil"),
    ("not an object", [b"unit", b"42"], "not_object", "?"),
    ("unknown topic", [b"weather", json.dumps({"src": "evil"}).encode()], "unknown_topic",
     "evil"),
]


@pytest.mark.parametrize("name,frames,reason,src", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_counted_and_nothing_held_changes(wired, name, frames, reason, src):
    pub, receiver, situation = wired
    # What the console already holds: one case, one unit, one sensor.
    pub.send("case", record("case", src="good", seq=0, ts=T0))
    pub.send("unit", record("unit", src="good", seq=1, ts=T0))
    pub.send("sensor.air", record("sensor.air", src="good", seq=2, ts=T0))
    fence(pub, receiver, situation, 1)
    before = held(situation)
    assert len(before[0]) == len(before[1]) == len(before[2]) == 1

    pub.send_frames(frames)
    fence(pub, receiver, situation, 2)

    assert situation.rejected == {reason: 1}
    assert situation.sources[src].rejected == {reason: 1}
    assert held(situation) == before
    # And the console goes on accepting good records afterwards.
    pub.send("case", record("case", src="good", seq=3, ts=T0 + 1, case_id="C2"))
    assert drain_until(receiver, situation, lambda: "C2" in situation.cases)


def test_mixed_batch_keeps_good_records(wired):
    pub, receiver, situation = wired
    batch = [record("unit", src="mix", seq=0, unit_id="A"),
             record("unit", src="mix", seq=1, unit_id="B", lat=123.0),
             record("unit", src="mix", seq=2, unit_id="C", speed=float("nan")),
             {"not": "a record"},
             record("unit", src="mix", seq=3, unit_id="D")]
    pub.send("unit", json.dumps(batch).encode())     # json.dumps writes NaN literally
    fence(pub, receiver, situation, 1)
    assert set(situation.units) == {"A", "D"}
    assert situation.rejected == {"out_of_range": 1, "not_finite": 1, "missing_field": 1}
    assert situation.sources["mix"].gaps == 0       # rejected records still count in seq


def test_large_batch_of_small_records_is_accepted(wired):
    pub, receiver, situation = wired
    batch = [record("sensor.air", src="big", seq=i, id=f"S{i}") for i in range(1000)]
    payload = json.dumps(batch).encode()
    assert len(payload) > 64 * 1024               # over one record's limit, as a batch may be
    pub.send("sensor.air", payload)
    fence(pub, receiver, situation, 1)
    assert len(situation.sensors) == 1000
    assert situation.rejected == {}


def test_flood_of_garbage_does_not_stop_the_console(wired):
    pub, receiver, situation = wired
    for i in range(5000):
        pub.send_frames([b"case", b"\x00garbage" + str(i).encode()])
    pub.send("case", record("case", src="good", seq=0, ts=T0))
    fence(pub, receiver, situation, 1)
    assert sum(situation.rejected.values()) == 5000
    assert "C1" in situation.cases

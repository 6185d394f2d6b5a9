"""OwnTracks location messages → unit positions (``feeds.owntracks``), the roster's device
column (``feeds.roster_devices``), and a seeded fuzz: no payload makes the reader raise."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds.owntracks import read_location
from feeds.roster_devices import MAX_ROWS, load_devices, parse_devices
from feeds.schema import UnitPosition

NOW = 1_800_000_000_000
DEVICES = {"alice/phone": "东城-巡03"}


def loc(**over) -> bytes:
    msg = {"_type": "location", "lat": 39.9, "lon": 116.4, "tst": NOW // 1000 - 5,
           "vel": 36, "cog": 90, "acc": 12, "tid": "al", "batt": 80}
    msg.update(over)
    return json.dumps({k: v for k, v in msg.items() if v is not ...}).encode()


def read(payload, device="alice/phone"):
    return read_location(payload, device=device, devices=DEVICES, src="mqtt:owntracks",
                         now_ms=NOW)


def test_a_location_becomes_a_unit_position():
    rec, reason = read(loc())
    assert reason is None
    assert rec == UnitPosition(v=1, src="mqtt:owntracks", seq=0, ts=NOW - 5000,
                               unit_id="东城-巡03", lat=39.9, lon=116.4, course=90.0,
                               speed=10.0, accuracy=12.0)


def test_optional_fields_may_be_missing_and_negative_means_unknown():
    rec, reason = read(loc(vel=..., cog=..., acc=...))
    assert reason is None and (rec.speed, rec.course, rec.accuracy) == (None, None, None)
    rec, reason = read(loc(vel=-1, cog=-1))
    assert reason is None and (rec.speed, rec.course) == (None, None)


@pytest.mark.parametrize("payload,reason", [
    (loc(_type="transition"), "not_location"),
    (loc(_type="waypoint"), "not_location"),
    (loc(_type=...), "not_location"),
    (loc(tst=...), "no_time"),
    (loc(tst="now"), "wrong_type"),
    (loc(tst=NOW // 1000 + 3600), "out_of_range"),
    (loc(lat=91), "out_of_range"),
    (loc(lon=-181), "out_of_range"),
    (loc(lat="39.9"), "wrong_type"),
    (loc(lat=...), "missing_field"),
    (loc(acc=-3), "out_of_range"),
    (loc(cog=400), "out_of_range"),
    (b"not json", "not_json"),
    (b'{"_type": "location", "lat": 1e400}', "not_json"),
    (b'{"_type": "location\\ud800"}', "not_json"),
    (b"[" * 5_000 + b"]" * 5_000, "too_deep"),
    (b"[1, 2]", "not_object"),
    (b"\xff", "not_json"),
    (b'{"_type": "\xff"}', "not_utf8"),
    (b" " * 20_000, "too_large"),
    (loc(lat=10 ** 400), "not_finite"),          # a JSON integer: float() would overflow
    (loc(vel=-(10 ** 400)), "not_finite"),
    (loc(acc=10 ** 400), "not_finite"),
])
def test_bad_messages_refused_by_reason(payload, reason):
    assert read(payload) == (None, reason)


def test_unknown_device_refused():
    assert read(loc(), device="bob/phone") == (None, "unknown_device")


# ---- the roster's device column ----------------------------------------------------------
def test_roster_device_column(tmp_path):
    p = tmp_path / "roster.csv"
    p.write_text("unit_id,district,shift,device\nU1,110101,day,alice/phone\nU2,110101,day,\n"
                 "U3,110105,night\n", encoding="utf-8")
    assert load_devices(p) == {"alice/phone": "U1"}
    p.write_text("unit_id,district,shift\nU1,110101,day\n", encoding="utf-8")
    assert load_devices(p) == {}


def test_roster_extra_device_column_still_loads_for_peak_duty(tmp_path):
    from situation.peakduty import load_roster
    p = tmp_path / "roster.csv"
    p.write_text("unit_id,district,shift,device\nU1,110101,白班,alice/phone\nU2,110101,夜班,\n"
                 "U3,110105,白班\n", encoding="utf-8")
    frame = load_roster(p)
    assert list(frame["unit_id"]) == ["U1", "U2", "U3"] and frame.attrs["skipped"] == 0


@pytest.mark.parametrize("text,message", [
    ("", "empty file"),
    ("district,shift\n", "no unit_id column"),
    ("unit_id,device\nU1,alice\n", "roster.csv:2: device 'alice' is not USER/DEVICE"),
    ("unit_id,device\nU1,a/b/c\n", "not USER/DEVICE"),
    ("unit_id,device\nU1,a/+\n", "not USER/DEVICE"),
    ("unit_id,device\nU1,a/b\nU2,a/b\n", "roster.csv:3: device 'a/b' is given to two units"),
    ("unit_id,device\n,a/b\n", "no valid unit_id"),
])
def test_roster_bad_device_rows(tmp_path, text, message):
    p = tmp_path / "roster.csv"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as err:
        load_devices(p)
    assert message in str(err.value) and str(p) in str(err.value)
    assert "\n" not in str(err.value)


def test_roster_bounds_and_missing_file(tmp_path):
    with pytest.raises(OSError, match="nope.csv: cannot read"):
        load_devices(tmp_path / "nope.csv")
    text = "unit_id,device\n" + "".join(f"U{i},u/{i}\n" for i in range(MAX_ROWS + 1))
    with pytest.raises(ValueError, match="more than"):
        parse_devices(text)
    p = tmp_path / "bin.csv"
    p.write_bytes(b"unit_id,device\n\xff\xfe\n")
    with pytest.raises(ValueError, match="not UTF-8"):
        load_devices(p)


# ---- fuzz ------------------------------------------------------------------------------
FUZZ = settings(derandomize=True, deadline=None, max_examples=400,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
values = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                   st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=10),
                   st.just("location"), st.lists(st.integers(), max_size=3))
messages = st.dictionaries(st.sampled_from(["_type", "lat", "lon", "tst", "vel", "cog", "acc",
                                            "tid", "x"]), values, max_size=8)


@FUZZ
@given(messages, st.sampled_from(["alice/phone", "bob/phone"]))
def test_fuzz_messages_never_raise(msg, device):
    rec, reason = read(json.dumps(msg).encode(), device)
    assert (rec is None) != (reason is None) and reason != "internal"
    if rec is not None:
        assert -90 <= rec.lat <= 90 and -180 <= rec.lon <= 180 and rec.unit_id == "东城-巡03"


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_never_raise(data):
    rec, reason = read(data)
    assert rec is None and reason not in (None, "internal")

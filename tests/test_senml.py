"""SenML packs (RFC 8428 JSON) → sensor readings: the rules of ``feeds.senml``, every bad pack
refused by a named reason, and a seeded fuzz: no payload makes the reader raise."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds.schema import SensorReading
from feeds.senml import MAX_PACK_RECORDS, SenmlReader

NOW = 1_800_000_000_000          # ms
NOW_S = NOW / 1000


def pack(*records) -> bytes:
    return json.dumps(list(records)).encode()


def read(payload, reader=None, kind="air"):
    reader = reader or SenmlReader()
    return reader.read(payload, kind=kind, src="mqtt:senml", now_ms=NOW)


POS = [{"bn": "urn:dev:ow:10e2073a01080063:", "bt": NOW_S, "n": "lat", "u": "lat", "v": 39.9},
       {"n": "lon", "u": "lon", "v": 116.4}]


def test_a_pack_becomes_one_reading():
    recs, refused = read(pack(*POS, {"n": "pm2.5", "u": "ug/m3", "v": 35},
                              {"n": "PM10", "u": "ug/m3", "v": 80}))
    assert not refused
    assert recs == [SensorReading(v=1, src="mqtt:senml", seq=0, ts=NOW,
                                  id="urn:dev:ow:10e2073a01080063", kind="air", lat=39.9,
                                  lon=116.4, metrics={"pm25": 35.0, "pm10": 80.0})]


def test_names_are_mapped_and_unknown_names_kept():
    recs, refused = read(pack(*POS, {"n": "LAeq", "u": "dB", "v": 61},
                              {"n": "pm2_5", "v": 12}, {"n": "co2", "u": "ppm", "v": 410}))
    assert not refused
    assert recs[0].metrics == {"laeq": 61.0, "pm25": 12.0, "co2": 410.0}


def test_times_base_plus_offset_and_relative_to_now():
    recs, _ = read(pack({**POS[0], "bt": NOW_S - 120}, POS[1], {"n": "pm25", "v": 1, "t": 60}))
    assert recs[0].ts == NOW - 60_000
    # no bt at all: t is relative (below 2**28 s): -30 is half a minute ago, nothing is now
    rel = [{k: v for k, v in POS[0].items() if k != "bt"}, POS[1]]
    recs, _ = read(pack(*rel, {"n": "pm25", "v": 1, "t": -30}, {"n": "pm10", "v": 2}))
    assert [r.ts for r in recs] == [NOW - 30_000, NOW]
    assert recs[0].metrics == {"pm25": 1.0} and recs[1].metrics == {"pm10": 2.0}


def test_base_value_and_booleans():
    recs, refused = read(pack(*POS, {"bv": 100, "n": "pm25", "v": 5},
                              {"n": "open", "vb": True}), kind="manhole")
    assert not refused
    assert recs[0].metrics == {"pm25": 105.0, "open": 1.0}


def test_several_sensors_in_one_pack_each_get_a_reading():
    second = {"bn": "station-2/", "n": "lat", "v": 39.95}
    recs, refused = read(pack(*POS, {"n": "pm25", "v": 3}, second, {"n": "lon", "v": 116.3},
                              {"n": "pm25", "v": 4}))
    assert not refused
    assert [(r.id, r.lat, r.metrics["pm25"]) for r in recs] == [
        ("urn:dev:ow:10e2073a01080063", 39.9, 3.0), ("station-2", 39.95, 4.0)]


def test_position_remembered_from_an_earlier_pack_and_memory_bounded():
    reader = SenmlReader(max_positions=2)
    recs, refused = read(pack(*POS), reader)
    assert recs == [] and not refused                 # a position alone: remembered only
    recs, refused = read(pack({"bn": "urn:dev:ow:10e2073a01080063:", "n": "pm25", "v": 9}),
                         reader)
    assert not refused and (recs[0].lat, recs[0].lon) == (39.9, 116.4)
    for name in ("a", "b"):                           # two more sensors push it out
        read(pack({"bn": name, "n": "lat", "v": 1}, {"n": "lon", "v": 2}), reader)
    assert len(reader.positions) == 2
    recs, refused = read(pack({"bn": "urn:dev:ow:10e2073a01080063:", "n": "pm25", "v": 9}),
                         reader)
    assert recs == [] and refused == {"no_position": 1}


BAD = {
    "no_base_name": pack({"n": "pm25", "v": 1}),
    "senml_bad_value": pack(*POS, {"n": "pm25", "v": 1, "vs": "x"}),
    "unknown_measure_unit": pack(*POS, {"n": "pm25", "u": "furlongs", "v": 1}),
    "no_position": pack({"bn": "lonely", "n": "pm25", "v": 1}),
    "out_of_range": pack(*POS, {"n": "pm25", "v": 1, "t": 3600}),          # an hour ahead
    "too_large": pack(*POS, *[{"n": "pm25", "v": i} for i in range(MAX_PACK_RECORDS)]),
    "not_json": b'[{"bn": "x", "n": "pm25", "v": 1}',
    "too_deep": b"[" * 30_000 + b"]" * 30_000,
    "wrong_type": pack(*POS, {"n": 5, "v": 1}),
    "not_utf8": b'[{"bn": "\xff\xfe"}]',
}


def test_each_bad_pack_refused_by_its_reason():
    for reason, payload in BAD.items():
        recs, refused = read(payload)
        assert recs == [] and refused == {reason: 1}, (reason, refused)


def test_more_bad_input():
    cases = [
        (pack(*POS, {"n": "pm25", "v": 1, "vb": True}), "senml_bad_value"),
        (b'[{"bn": "x", "n": "lat", "v": 1e400}]', "not_json"),           # msgspec: no inf
        (b'[{"bn": "x\\ud800", "n": "pm25", "v": 1}]', "not_json"),      # a lone surrogate
        (pack(*POS, {"n": "pm\x1b[31m", "v": 1}), "bad_text"),
        (pack({**POS[0], "bver": 99}, POS[1]), "unknown_version"),
        (pack({**POS[0], "foo_": 1}, POS[1]), "unknown_version"),
        (pack({"bn": "x", "n": "lat", "v": 91}), "out_of_range"),
        (pack(*POS, {"n": "pm25", "vs": "high"}), "senml_bad_value"),
        (pack(*POS, {"n": "pm25"}), "senml_bad_value"),
        (pack(*POS, {"v": 1}), "missing_field"),
        (b"{}", "wrong_type"),
        (b"[]", "missing_field"),
        (pack(*POS, {"n": "pm25", "v": 1, "t": 1e300}), "out_of_range"),
        (pack(*POS, {"n": "pm25", "v": 1.7e308, "bv": 1.7e308}), "not_finite"),
        (pack(*POS, 7, {"n": "pm25", "v": 1}), "not_object"),
    ]
    for payload, reason in cases:
        recs, refused = read(payload)
        assert refused == {reason: 1}, (payload[:80], refused)
    # a bad record costs itself only: the pack's good ones are kept
    recs, refused = read(pack(*POS, {"n": "pm25", "u": "furlongs", "v": 1}, {"n": "pm10", "v": 2}))
    assert refused == {"unknown_measure_unit": 1} and recs[0].metrics == {"pm10": 2.0}


def test_far_future_absolute_time_refused_and_far_past():
    # every record of the pack carries the time, its position's too: each is refused
    recs, refused = read(pack({**POS[0], "bt": NOW_S + 86_400}, POS[1], {"n": "pm25", "v": 1}))
    assert recs == [] and refused == {"out_of_range": 3}
    recs, refused = read(pack({**POS[0], "bt": 900_000_000}, POS[1], {"n": "pm25", "v": 1}))
    assert recs == [] and refused == {"out_of_range": 3}      # 1998: before 2000


# ---- fuzz ------------------------------------------------------------------------------
FUZZ = settings(derandomize=True, deadline=None, max_examples=400,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
keys = st.sampled_from(["bn", "bt", "bu", "bv", "bver", "n", "u", "v", "vs", "vb", "vd", "t",
                        "s", "ut", "x_", "lat"])
names = st.sampled_from(["lat", "lon", "pm2.5", "LAeq", "open", "", "\x00", "a" * 200])
records = st.dictionaries(keys, st.one_of(scalars, names), max_size=8)
packs = st.lists(st.one_of(records, scalars), max_size=12)


@FUZZ
@given(packs)
def test_fuzz_structured_packs_never_raise(p):
    reader = SenmlReader()
    recs, refused = read(json.dumps(p).encode(), reader)
    assert "internal" not in refused
    for r in recs:
        assert -90 <= r.lat <= 90 and -180 <= r.lon <= 180 and len(r.metrics) <= 32
        assert all(isinstance(v, float) for v in r.metrics.values())
    assert recs or refused or not p or all(isinstance(x, dict) for x in p)


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_never_raise(data):
    recs, refused = read(data)
    assert "internal" not in refused
    assert recs or refused


def test_a_pack_over_max_bytes_is_refused_before_it_is_decoded():
    from feeds.senml import MAX_BYTES
    big = pack(*POS, {"n": "pm25", "v": 1, "x": "p" * MAX_BYTES})
    assert read(big) == ([], {"too_large": 1})
    recs, refused = read(b"[" + b"{}," * (MAX_BYTES // 3) + b"{}]")
    assert recs == [] and refused == {"too_large": 1}


def test_a_huge_json_integer_is_not_finite_not_a_fault():
    big = "1" + "0" * 400
    for text in (f'[{{"bn":"s1","n":"pm10","v":{big}}}]',
                 f'[{{"bn":"s1","n":"pm10","v":-{big}}}]',
                 f'[{{"bn":"s1","n":"pm10","v":1,"t":{big}}}]'):
        reader = SenmlReader()
        reader.positions["s1"] = (39.9, 116.4)
        assert read(text.encode(), reader) == ([], {"not_finite": 1}), text
    for text in (f'[{{"bn":"s1","bt":{big},"n":"pm10","v":1}}]',
                 f'[{{"bn":"s1","bv":{big},"n":"pm10","v":1}}]'):
        assert read(text.encode()) == ([], {"not_finite": 1}), text


def test_a_retained_pack_needs_an_absolute_time():
    reader = SenmlReader()

    def retained(payload):
        return reader.read(payload, kind="air", src="mqtt:senml", now_ms=NOW, retained=True)

    no_time = pack({"bn": "s9", "n": "lat", "v": 39.9}, {"n": "lon", "v": 116.4},
                   {"n": "pm25", "v": 1})
    assert retained(no_time) == ([], {"retained_no_time": 1})
    assert reader.positions["s9"] == (39.9, 116.4)         # the position is still taken
    relative = pack({"bn": "s9", "bt": -60, "n": "pm25", "v": 1})
    assert retained(relative) == ([], {"retained_no_time": 1})
    recs, refused = retained(pack({"bn": "s9", "bt": NOW_S - 60, "n": "pm25", "v": 1}))
    assert not refused and recs[0].ts == NOW - 60_000
    recs, refused = read(no_time)                          # not retained: "now"
    assert not refused and recs[0].ts == NOW

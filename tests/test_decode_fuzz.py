"""Fuzzing the feed decoder (Hypothesis, seeded and bounded): no frame makes it raise, nothing
it keeps holds text that cannot be written, and every valid record in a mixed batch is kept."""
from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds.decode import MessageDecoder, split_batch

NOW = 1_800_000_000_000
FUZZ = settings(derandomize=True, deadline=None, max_examples=600,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

TOPICS = ["case", "unit", "hb", "sensor.air", "sensor.noise"]
ids = st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs", "Cn", "Co", "Cf", "Zl",
                                                       "Zp", "Zs"]),
              min_size=1, max_size=12)
texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), max_size=60)


def valid_record(topic: str, seq: int, draw) -> dict:
    base = {"v": 1, "src": draw(ids), "seq": seq, "ts": NOW - draw(st.integers(0, 10**9))}
    lat = draw(st.floats(39.5, 40.9))
    lon = draw(st.floats(115.5, 117.4))
    if topic == "case":
        base.update(case_id=draw(ids), status="registered", category="event.x.y",
                    title=draw(texts), description=draw(texts), lat=lat, lon=lon,
                    source="citizen", priority=draw(st.integers(1, 3)),
                    reported_at=base["ts"], unit_id=None)
    elif topic == "unit":
        base.update(unit_id=draw(ids), callsign=draw(ids), kind="vehicle", status="available",
                    lat=lat, lon=lon)
    elif topic.startswith("sensor."):
        base.update(id=draw(ids), kind=topic.split(".")[1], lat=lat, lon=lon,
                    metrics={draw(ids): draw(st.floats(-1e6, 1e6))})
    return base


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)


@st.composite
def garbage_item(draw, topic: str) -> bytes:
    """One item of a batch that must be refused (or is at least no valid record of ours)."""
    kind = draw(st.sampled_from(["deep", "surrogate", "control", "wrong", "value", "future",
                                 "huge"]))
    rec = valid_record(topic, 10**9, draw)
    if kind == "deep":
        depth = draw(st.integers(6, 20_000))
        return b"[" * depth + b"]" * depth
    if kind == "surrogate":
        field = draw(st.sampled_from(sorted(rec)))
        rec[field] = "\ud800" + draw(st.text(max_size=3))
        return json.dumps(rec).encode()              # escaped as \ud800, as an attacker would
    if kind == "control":
        rec["src"] = "a\x00b"
        return json.dumps(rec).encode()
    if kind == "wrong":
        field = draw(st.sampled_from(sorted(rec)))
        rec[field] = draw(json_values)
        if field == "src" and isinstance(rec[field], str) and rec[field]:
            rec[field] += "\x07"                     # a src that is also refused
        return json.dumps(rec, allow_nan=True).encode()
    if kind == "future":
        rec["ts"] = draw(st.sampled_from([2**62, NOW + 3_600_000, 1, -5]))
        return json.dumps(rec).encode()
    if kind == "huge":
        return b'{"v":1,"seq":1,"ts":1e400,"src":"x"}'
    return json.dumps(draw(json_values), allow_nan=True).encode()


@st.composite
def mixed_batch(draw):
    topic = draw(st.sampled_from(TOPICS))
    n_good = draw(st.integers(0, 6))
    goods = [valid_record(topic, seq, draw) for seq in range(n_good)]
    items = [json.dumps(g, ensure_ascii=draw(st.booleans())).encode() for g in goods]
    for _ in range(draw(st.integers(0, 4))):
        items.insert(draw(st.integers(0, len(items))), draw(garbage_item(topic)))
    return topic, goods, b"[" + b",".join(items) + b"]"


@FUZZ
@given(mixed_batch())
def test_every_valid_record_in_a_mixed_batch_is_kept(batch):
    topic, goods, payload = batch
    out = MessageDecoder(now_ms=lambda: NOW).decode([topic.encode(), payload])
    kept = sorted(r.seq for r in out.records if r.seq < 10**9)
    assert kept == [g["seq"] for g in goods]
    for rec in out.records:                       # whatever is kept can be written out
        json.dumps([getattr(rec, f) for f in rec.__struct_fields__],
                   ensure_ascii=False).encode("utf-8")
        assert all(math.isfinite(getattr(rec, f)) for f in ("lat", "lon") if hasattr(rec, f))


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=4))
def test_random_frames_never_raise(frames):
    out = MessageDecoder(now_ms=lambda: NOW).decode(frames)
    assert len(out.records) + len(out.rejects) >= (0 if len(frames) == 2 else 1)


@FUZZ
@given(st.sampled_from(TOPICS), json_values)
def test_any_json_never_raises(topic, value):
    payload = json.dumps(value, allow_nan=True).encode()
    out = MessageDecoder(now_ms=lambda: NOW).decode([topic.encode(), payload])
    assert out.records == [] or isinstance(value, (dict, list))


@FUZZ
@given(st.lists(json_values, max_size=6))
def test_split_batch_finds_the_items_json_finds(items):
    texts = [json.dumps(i, allow_nan=True) for i in items]
    got = split_batch(("[" + ", ".join(texts) + "]").encode())
    assert got == [t.encode() for t in texts]

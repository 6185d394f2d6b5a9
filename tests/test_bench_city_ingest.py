"""bench/city_ingest.py's parts on a tiny load: the mixes, the publisher's templates, one short
headless run. No timing is asserted."""
from __future__ import annotations

import hashlib
import re
import time
from collections import Counter

from bench import city_ingest
from bench.city_pub import MARK_TS, Templates, fill, render
from bench.mix import SENSORS90, messages, records
from feeds.decode import MessageDecoder
from feeds.schema import Case, SensorReading, Unit

TS = 1_795_449_600_000


def test_default_mix_is_unchanged():
    # sha256 of messages(20000, TS) taken before sensor_share/sensors were added to mix.py:
    # bench/curve.py and bench/apply_mix.py must keep getting the very same bytes.
    got = hashlib.sha256(b"".join(b"".join(f) for f in messages(20_000, TS))).hexdigest()
    assert got == "6be91d7560f790dc24b103b55a0aebebdbd1abe302311fed87322a15c28627dd"


def _shares(recs):
    kinds = Counter("sensor" if t.startswith("sensor.") else t for t, _ in recs)
    return {k: v / len(recs) for k, v in kinds.items()}


def test_mix_shares():
    city = _shares(records(20_000, TS))
    assert abs(city["sensor"] - 0.6) < 0.02
    assert abs(city["case"] - 0.2) < 0.02 and abs(city["unit"] - 0.2) < 0.02
    recs = records(20_000, TS, **SENSORS90)
    s90 = _shares(recs)
    assert abs(s90["sensor"] - 0.9) < 0.01
    assert abs(s90["case"] - 0.05) < 0.01 and abs(s90["unit"] - 0.05) < 0.01
    ids = {r["id"] for t, r in recs if t.startswith("sensor.")}
    numbers = [int(i.split("-")[1]) for i in ids]
    assert max(numbers) >= 90_000                 # ids drawn from 100,000, not 20,000
    assert len(ids) > 15_000


def test_templates_make_valid_records_in_sending_order():
    now = time.time_ns() // 1_000_000
    for mix, sensor_share in (("city", 0.6), ("sensors90", 0.9)):
        tmpl = Templates(mix, 5_000)
        msgs = render(tmpl, "s1", now, seq=10)
        dec = MessageDecoder(now_ms=lambda: now)
        recs, rejects = [], []
        for m in msgs:
            d = dec.decode(m)
            recs += d.records
            rejects += d.rejects
        assert rejects == []
        assert len(recs) == tmpl.records == 5_000
        assert [r.seq for r in recs] == list(range(10, 5_010))
        assert {r.src for r in recs} == {"s1"} and {r.ts for r in recs} == {now}
        assert all(r.reported_at == now for r in recs if isinstance(r, Case))
        n_sensor = sum(isinstance(r, SensorReading) for r in recs)
        assert abs(n_sensor / len(recs) - sensor_share) < 0.03
        assert any(isinstance(r, Unit) for r in recs)


def test_render_changes_only_seq_ts_and_case_tag():
    tmpl = Templates("city", 3_000, src="bench")
    sent = render(tmpl, "bench", TS)              # default tag: the mix's own case ids
    mix = messages(3_000, TS)
    assert [t for t, _ in sent] == [t for t, _ in mix]
    no_seq = re.compile(rb'"seq":\d+')
    assert [no_seq.sub(b"", p) for _, p in sent] == [no_seq.sub(b"", p) for _, p in mix]
    assert all(b"%d" % MARK_TS not in p for _, p in sent)


def test_a_new_pass_makes_new_cases():
    tmpl = Templates("city", 2_000)
    topic, t, n, is_case = next(i for i in tmpl.items if i[3])
    dec = MessageDecoder()
    a = dec.decode([topic, fill(t, n, is_case, 0, TS, b"7.x.0")]).records
    b = dec.decode([topic, fill(t, n, is_case, n, TS, b"7.x.1")]).records
    assert len(a) == len(b) == n
    assert not {c.case_id for c in a} & {c.case_id for c in b}


def test_quick_headless_run_completes(capsys):
    rc = city_ingest.main(["--quick", "--no-wall", "--mix", "city", "--rates", "3000",
                           "--seconds", "1", "--pool", "3000", "--limit-records", "3000"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "limit used below" in out
    rows = [ln for ln in out.splitlines() if ln.startswith("city      headless")]
    assert len(rows) == 1 and "not measured" not in rows[0]
    assert "publisher did not finish" not in rows[0]
    assert "== summary ==" in out

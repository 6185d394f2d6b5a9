"""The machine's limit for ``bench/city_ingest.py``'s mixes, in one process, no sockets.

The messages are the very ones the publisher sends (``bench/city_pub.py``'s ``render``: seq in
sending order, ts now). Two figures a mix, each the better of two runs (both printed):

- bare: msgspec decoding into the protocol's typed structs (a ``list[Case]``/``list[Unit]``/
  ``list[SensorReading]`` decoder picked by topic, as ``bench/curve.py`` does) — the wire's
  own cost, nothing judged;
- decode+apply: the console's judged decoding (``feeds.decode.MessageDecoder``, every check)
  then ``Situation.apply`` in slices of 5,000 records (as a drain hands them over), on a fresh
  situation — what one core could take with no thread, socket or GIL sharing.
"""
from __future__ import annotations

import cProfile
import io
import pstats
import time

import msgspec

from bench.city_pub import Templates, render


def mix_messages(mix: str, n: int, src: str = "limit") -> list[list[bytes]]:
    return render(Templates(mix, n), src, time.time_ns() // 1_000_000)


def bare_decode(msgs) -> tuple[int, float]:
    from feeds.schema import Case, SensorReading, Unit
    decs = {t: msgspec.json.Decoder(list[t]) for t in (Case, SensorReading, Unit)}
    pick = {b"case": decs[Case], b"unit": decs[Unit]}
    n = 0
    t0 = time.perf_counter()
    for topic, payload in msgs:
        n += len(pick.get(topic, decs[SensorReading]).decode(payload))
    return n, time.perf_counter() - t0


def decode_apply(msgs) -> tuple[int, float, float, int]:
    """Records, seconds judging, seconds applying, records rejected."""
    from feeds.batch import Batch
    from feeds.decode import MessageDecoder
    from situation.clock import WallClock
    from situation.store import Situation
    decoder = MessageDecoder()
    situation = Situation(WallClock())
    records, rejects = [], 0
    t0 = time.perf_counter()
    for m in msgs:
        d = decoder.decode(m)
        records.extend(d.records)
        rejects += len(d.rejects)
    t1 = time.perf_counter()
    for i in range(0, len(records), 5_000):
        situation.apply(Batch(records=records[i:i + 5_000]))
    t2 = time.perf_counter()
    return len(records), t1 - t0, t2 - t1, rejects + sum(situation.rejected.values())


def limits(mixes, n: int) -> dict:
    out = {}
    for mix in mixes:
        msgs = mix_messages(mix, n)
        bares, das, lines = [], [], []
        for run in (1, 2):
            k, s = bare_decode(msgs)
            bares.append(k / s)
            k2, sd, sa, rej = decode_apply(msgs)
            das.append(k2 / (sd + sa))
            lines.append(f"{mix:<10} run {run}: bare msgspec decoding {k / s:>11,.0f} records/s"
                         f" · judged decode {k2 / sd:>9,.0f}/s · apply {k2 / sa:>9,.0f}/s · "
                         f"decode+apply {k2 / (sd + sa):>9,.0f}/s ({rej} refused) "
                         f"[{len(msgs):,} messages, {k2 / len(msgs):.1f} records a message]")
        out[mix] = {"bare": max(bares), "apply": max(das), "lines": lines + [
            f"{mix:<10} limit used below (better run): bare {max(bares):,.0f}/s, "
            f"decode+apply {max(das):,.0f}/s"]}
    return out


def profile_apply(mix: str, n: int, top: int = 14) -> str:
    """cProfile of judged decoding and apply of ``n`` records of the mix (tottime order)."""
    msgs = mix_messages(mix, n)
    prof = cProfile.Profile()
    prof.enable()
    decode_apply(msgs)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    text = buf.getvalue()
    start = text.find("   ncalls")
    return text[start:].rstrip() if start >= 0 else text

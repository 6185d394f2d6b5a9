"""Decode + apply on a city's mix, in one process: what one core does with the records a wall
takes, without sockets, threads or the GIL's sharing (``bench/ingest.py`` measures those).

The mix is ``bench/mix.py``'s (six sensor kinds over 20,000 ids, 20 % new cases with citizen
text, 20 % units, no ``district``, about ten records a message). Printed, each a rate over the
same records: bare msgspec decoding (the machine's limit for this JSON), the console's judged
decoding (``feeds.decode.MessageDecoder``), ``Situation.apply`` (in slices of 5,000, as a
drain hands them over), and both one after the other — with the collector thresholds the
console runs with (``feeds.gc_tuning``) and with Python's defaults.

    python bench/apply_mix.py [--records 200000] [--repeat 2]
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec  # noqa: E402

from bench.mix import messages  # noqa: E402
from feeds.batch import Batch  # noqa: E402
from feeds.decode import MessageDecoder  # noqa: E402
from feeds.gc_tuning import THRESHOLDS  # noqa: E402
from situation.clock import ManualClock  # noqa: E402
from situation.store import Situation  # noqa: E402

TS = 1_795_449_600_000


def once(msgs, n: int) -> tuple[float, float, float, float]:
    plain = msgspec.json.Decoder()
    t = time.perf_counter()
    for _, payload in msgs:
        plain.decode(payload)
    bare = n / (time.perf_counter() - t)
    decoder = MessageDecoder(now_ms=lambda: TS + 1000)
    situation = Situation(ManualClock(TS + 1000))
    t0 = time.perf_counter()
    records = []
    for m in msgs:
        records.extend(decoder.decode(m).records)
    t1 = time.perf_counter()
    for i in range(0, len(records), 5_000):
        situation.apply(Batch(records=records[i:i + 5_000]))
    t2 = time.perf_counter()
    k = len(records)
    return bare, k / (t1 - t0), k / (t2 - t1), k / (t2 - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    msgs = messages(args.records, TS)
    print(f"mix: {args.records} records in {len(msgs)} messages (bench/mix.py), one process")
    defaults = gc.get_threshold()
    for label, thresholds in (("console's collector thresholds", THRESHOLDS),
                              ("Python's default thresholds", defaults)):
        gc.set_threshold(*thresholds)
        for r in range(args.repeat):
            gc.collect()
            bare, judged, applied, both = once(msgs, args.records)
            print(f"  {label} {thresholds}, run {r + 1}: bare decode {bare:,.0f}/s · judged "
                  f"decode {judged:,.0f}/s · apply {applied:,.0f}/s · both {both:,.0f}/s "
                  f"({both / bare:.1%} of bare decoding)")
    gc.set_threshold(*defaults)


if __name__ == "__main__":
    main()

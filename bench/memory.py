"""Memory per held case and per unit track point (issue #17): the resident memory a real
``Situation`` takes for what it holds, fed as a wall is fed — protocol JSON judged by the real
decoder (``feeds.decode.MessageDecoder``), applied in drains (``Situation.apply``).

Cases are ``bench/mix.py``'s shape (a citizen's text, title, category, no ``district``: the
situation finds it from the point); some move on (reported → dispatched → closed, in later
records), a few carry flags. Tracks: units moving more than ``TRACK_MIN_MOVE_M`` every record,
so every record keeps a point (a full ``unit`` record first, then ``unit.pos`` fixes).

Prints, for each phase, the RSS growth (/proc/self/statm after ``gc.collect()``) per case and
per track point, and where it goes: ``sys.getsizeof`` of every object the phase's tables hold,
each object counted once (a string shared by many cases counts once), by part.

    python -m bench.memory [--cases 150000] [--units 2000] [--points 50]
"""
from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec  # noqa: E402

from bench.mix import CATEGORIES, TEXTS, _point  # noqa: E402
from feeds.batch import Batch  # noqa: E402
from feeds.decode import MessageDecoder  # noqa: E402
from situation.clock import ManualClock  # noqa: E402
from situation.limits import Limits  # noqa: E402
from situation.store import Situation  # noqa: E402

TS = 1_795_449_600_000
HOUR = 3_600_000
CHUNK = 5_000                    # records a drain hands over
FLAGS = (["escalated"], ["extended"], ["returned", "rework"])


class FreshClock(ManualClock):
    """A manual clock whose every reading is a new int object, as a wall clock's are (a
    ManualClock hands out one object, which would make every ``now`` stored look free)."""

    def now_ms(self) -> int:
        return (self._now + 1) - 1


def rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def case_plan(n: int, seed: int = 7) -> list[tuple]:
    """What each record will say, in sending order, as small tuples (made before the
    baseline is read; the records themselves are made a drain at a time): every case
    reported; 30 % then dispatched, a fifth of those closed after; 3 % carrying flags from
    their second record."""
    rng = __import__("random").Random(seed)
    first, later = [], []
    for i in range(n):
        lat, lon = _point(rng)
        ts = TS + i * 2_000                     # a case every 2 s: 150,000 in 3.5 days
        base = (i, lat, lon, rng.randrange(len(CATEGORIES)), rng.randrange(len(TEXTS)),
                rng.randint(1, 3), ts)
        first.append((ts, "reported", -1, -1) + base)
        r = rng.random()
        if r < 0.3:
            flags = rng.randrange(len(FLAGS)) if rng.random() < 0.1 else -1
            unit = rng.randrange(2000)
            later.append((ts + 600_000, "dispatched", flags, unit) + base)
            if r < 0.06:
                later.append((ts + 3_600_000, "closed", flags, -1) + base)
    later.sort(key=lambda p: p[0])
    return first + later


def case_record(seq: int, plan: tuple, seed: int = 7) -> tuple[str, dict]:
    ts, status, flags, unit, i, lat, lon, cat, text, prio, reported = plan
    rec = {"v": 1, "src": "cases", "seq": seq, "ts": ts, "case_id": f"C{seed}-{i:09d}",
           "status": status, "category": CATEGORIES[cat], "title": "市民上报",
           "description": TEXTS[text].format(f"{lat:.4f},{lon:.4f}"), "lat": lat, "lon": lon,
           "source": "citizen", "priority": prio, "reported_at": reported,
           "due_at": ts + 4 * HOUR}
    if flags >= 0:
        rec["flags"] = FLAGS[flags]
    if unit >= 0:
        rec["unit_id"] = f"U{unit:04d}"
    return "case", rec


def unit_plan(units: int, points: int) -> list[tuple[int, int]]:
    """Every unit's full record, then ``points - 1`` fixes each ~55 m from the last."""
    return [(0, u) for u in range(units)] + [(k, u) for k in range(1, points)
                                             for u in range(units)]


def unit_record(seq: int, plan: tuple[int, int]) -> tuple[str, dict]:
    k, u = plan
    rec = {"v": 1, "src": "avl", "seq": seq, "ts": TS + 3 * 24 * HOUR + k * 10_000,
           "unit_id": f"U{u:04d}", "lat": 39.8 + (u % 50) * 0.005 + k * 0.0005,
           "lon": 116.3 + (u // 50) * 0.005}
    if k == 0:
        rec.update(callsign=f"巡{u:04d}", kind="vehicle", status="available")
        return "unit", rec
    return "unit.pos", rec


def feed(situation: Situation, decoder: MessageDecoder, plan, make) -> float:
    """Encode (batches of 100 split by topic, as a publisher sends), judge and apply in drains
    of ``CHUNK`` records; returns the seconds spent in ``Situation.apply``."""
    enc = msgspec.json.Encoder()
    spent = 0.0
    for i in range(0, len(plan), CHUNK):
        decoded = []
        for j in range(i, min(i + CHUNK, len(plan)), 100):
            by_topic: dict[str, list] = {}
            for seq in range(j, min(j + 100, len(plan))):
                topic, rec = make(seq, plan[seq])
                by_topic.setdefault(topic, []).append(rec)
            for topic, group in by_topic.items():
                d = decoder.decode([topic.encode(), enc.encode(group)])
                assert not d.rejects, d.rejects[:3]
                decoded.extend(d.records)
        t = time.perf_counter()
        situation.apply(Batch(records=decoded))
        spent += time.perf_counter() - t
    return spent


# ---- where it goes: sys.getsizeof of every object held, each once --------------------------

class Tally:
    def __init__(self):
        self.seen: set[int] = set()
        self.parts: dict[str, int] = defaultdict(int)

    def add(self, part: str, obj) -> None:
        if obj is None or id(obj) in self.seen:
            return
        self.seen.add(id(obj))
        self.parts[part] += sys.getsizeof(obj)

    def deep(self, part: str, obj) -> None:
        """An object and everything in it (containers of strings and numbers)."""
        stack = [obj]
        while stack:
            o = stack.pop()
            if o is None or id(o) in self.seen or isinstance(o, (bool, type)):
                continue
            self.add(part, o)
            if isinstance(o, dict):
                stack.extend(o.keys())
                stack.extend(o.values())
            elif isinstance(o, (list, tuple, set, frozenset)) or type(o).__name__ == "deque":
                stack.extend(o)
            elif hasattr(o, "__slots__") or hasattr(o, "__struct_fields__"):
                fields = getattr(o, "__struct_fields__", None) or getattr(o, "__slots__", ())
                stack.extend(getattr(o, f, None) for f in fields)

    def total(self) -> int:
        return sum(self.parts.values())


def case_breakdown(s: Situation) -> Tally:
    t = Tally()
    t.add("cases dict", s.cases)
    for c in s.cases.values():
        t.add("Case structs", c)
    for c in s.cases.values():
        for f in c.__struct_fields__:
            v = getattr(c, f)
            if isinstance(v, str):
                t.add(f"str {f}", v)
            elif isinstance(v, list):
                t.deep(f"list {f}", v)
            elif v is not None and not isinstance(v, bool):
                t.add("numbers (ts, seq, reported_at, due_at, lat, lon…)", v)
    t.deep("case_stages", s.case_stages)
    t.deep("case_flags", s.case_flags)
    t.deep("case_late", s.case_late)
    t.deep("reports log", s.reports)
    for name in ("_entries", "_ids", "_order", "_logged"):
        if hasattr(s.reports, name):
            t.deep("reports log", getattr(s.reports, name))
    return t


def track_breakdown(s: Situation) -> Tally:
    t = Tally()
    t.add("tracks dict", s.tracks)
    for uid, track in s.tracks.items():
        t.deep("track containers and points", track)
        for name in ("_ts", "_lon", "_lat", "_data"):
            if hasattr(track, name):
                t.deep("track containers and points", getattr(track, name))
    t.deep("units, unit_status_ts, unit_pos_ts", [s.units, s.unit_status_ts, s.unit_pos_ts])
    return t


def show(t: Tally, per: int, label: str) -> None:
    for part, size in sorted(t.parts.items(), key=lambda kv: -kv[1]):
        print(f"    {part:<55} {size / per:8.1f} B/{label}")
    print(f"    {'(sum of the objects)':<55} {t.total() / per:8.1f} B/{label}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=150_000)
    ap.add_argument("--units", type=int, default=2_000)
    ap.add_argument("--points", type=int, default=50)
    args = ap.parse_args()
    now = TS + 4 * 24 * HOUR
    situation = Situation(FreshClock(now),
                          limits=Limits(max_cases=max(200_000, 2 * args.cases),
                                        max_closed_cases=max(50_000, args.cases),
                                        max_reports=max(400_000, 2 * args.cases)))
    situation.locator.locate(116.4, 39.9)                   # the district grid, built
    decoder = MessageDecoder(now_ms=lambda: now)
    cases = case_plan(args.cases)
    units = unit_plan(args.units, args.points)
    # warm up the decoder and apply with a handful of throw-away records
    feed(Situation(FreshClock(now)), decoder, case_plan(200, seed=3), case_record)

    base = rss()
    spent = feed(situation, decoder, cases, case_record)
    n_records = len(cases)
    after_cases = rss()
    held = len(situation.cases)
    print(f"cases: {held:,} held from {n_records:,} records "
          f"({len(situation.case_flags):,} with flags, "
          f"{sum(1 for c in situation.cases.values() if c.status == 'closed'):,} closed); "
          f"apply {n_records / spent:,.0f} records/s")
    print(f"  RSS +{(after_cases - base) / 2**20:.1f} MB: {(after_cases - base) / held:,.0f} B "
          f"per case")
    show(case_breakdown(situation), held, "case")

    spent = feed(situation, decoder, units, unit_record)
    after_tracks = rss()
    points = sum(len(t) for t in situation.tracks.values())
    print(f"tracks: {points:,} points of {len(situation.tracks):,} units; "
          f"apply {args.units * args.points / spent:,.0f} records/s")
    print(f"  RSS +{(after_tracks - after_cases) / 2**20:.1f} MB: "
          f"{(after_tracks - after_cases) / points:,.0f} B per track point (units' records "
          f"included)")
    show(track_breakdown(situation), points, "point")


if __name__ == "__main__":
    main()

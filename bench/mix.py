"""A city's realistic feed mix, as pre-encoded messages (no district, many ids, several topics).

Six sensor kinds over 20,000 sensor ids (60 % of records), 20 % cases — most of them new, with a
citizen's text — and 20 % units of 2,000; no record carries ``district`` or any optional field;
a batch of 100 records is split by topic, about ten records a message. Deterministic per seed.
Shared by the benchmarks that need a city rather than the easiest stream.
"""
from __future__ import annotations

import random

import msgspec

KINDS = {"air": ("pm25", "pm10"), "noise": ("laeq",), "crowd": ("density",),
         "parking": ("illegal",), "manhole": ("tilt_deg", "open"), "waste": ("fill_pct",)}
SENSORS = 20_000
UNITS = 2_000
TEXTS = ["市民反映：{}附近有占道经营，早晚高峰影响通行，希望尽快处理。",
         "{}人行道上堆放建筑垃圾，已有两天无人清理，请安排清运。",
         "Reported via hotline: illegal flyers on the bus shelter near {}, second time this week.",
         "{}井盖松动，车辆经过有响声，存在安全隐患。"]
CATEGORIES = ["event.street_order.vending", "event.city_appearance.exposed_garbage",
              "event.advertising.illegal_flyers", "part.public_facility.manhole"]
STATUSES = ["available", "dispatched", "en_route", "on_scene", "returning"]


def _point(rng: random.Random) -> tuple[float, float]:
    return round(39.75 + rng.random() * 0.35, 6), round(116.2 + rng.random() * 0.4, 6)


def records(n: int, ts: int, src: str = "bench", seed: int = 7):
    """``n`` records of the mix as dicts, ``seq`` 0..n-1, in sending order."""
    rng = random.Random(seed)
    out = []
    for seq in range(n):
        lat, lon = _point(rng)
        base = {"v": 1, "src": src, "seq": seq, "ts": ts}
        r = rng.random()
        if r < 0.6:
            kind = rng.choice(list(KINDS))
            base.update(id=f"{kind}-{rng.randrange(SENSORS):05d}", kind=kind, lat=lat, lon=lon,
                        metrics={m: round(rng.random() * 200, 1) for m in KINDS[kind]})
            topic = f"sensor.{kind}"
        elif r < 0.8:
            cid = f"C{seed}-{seq:09d}" if rng.random() < 0.8 else f"C{seed}-{rng.randrange(5000)}"
            base.update(case_id=cid, status="reported", category=rng.choice(CATEGORIES),
                        title="市民上报", description=rng.choice(TEXTS).format(f"{lat:.4f},{lon:.4f}"),
                        lat=lat, lon=lon, source="citizen", priority=rng.randint(1, 3),
                        reported_at=ts)
            topic = "case"
        else:
            uid = rng.randrange(UNITS)
            base.update(unit_id=f"U{uid:04d}", callsign=f"巡{uid:04d}", kind="foot_patrol",
                        status=rng.choice(STATUSES), lat=lat, lon=lon)
            topic = "unit"
        out.append((topic, base))
    return out


def messages(n: int, ts: int, src: str = "bench", seed: int = 7, batch: int = 100):
    """The mix as ``[topic, payload]`` frames: every ``batch`` records split by topic."""
    enc = msgspec.json.Encoder()
    recs = records(n, ts, src, seed)
    out = []
    for i in range(0, n, batch):
        by_topic: dict[str, list] = {}
        for topic, rec in recs[i:i + batch]:
            by_topic.setdefault(topic, []).append(rec)
        for topic, group in by_topic.items():
            out.append([topic.encode(), enc.encode(group)])
    return out

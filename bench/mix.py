"""A city's realistic feed mix, as pre-encoded messages (no district, many ids, several topics).

Six sensor kinds over 20,000 sensor ids (60 % of records), 20 % cases — most of them new, with a
citizen's text — and 20 % units of 2,000; no record carries ``district`` or any optional field;
a batch of 100 records is split by topic, about ten records a message. Deterministic per seed.
Shared by the benchmarks that need a city rather than the easiest stream.

Other mixes by parameter (the defaults give exactly the mix above): ``sensor_share`` of the
records are sensor readings over ``sensors`` ids, ``case_share`` cases (default: half of what
is left), the rest units — e.g. ``sensor_share=0.9, sensors=100_000`` (``SENSORS90``).
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


# A second mix: a sensor-heavy city (90 % readings over 100,000 ids, 5 % cases, 5 % units).
SENSORS90 = {"sensor_share": 0.9, "sensors": 100_000}


def records(n: int, ts: int, src: str = "bench", seed: int = 7, sensor_share: float = 0.6,
            sensors: int = SENSORS, case_share: float | None = None):
    """``n`` records of the mix as dicts, ``seq`` 0..n-1, in sending order."""
    if case_share is None:
        case_share = 0.2 if sensor_share == 0.6 else (1.0 - sensor_share) / 2
    case_edge = sensor_share + case_share       # 0.6 + 0.2 == 0.8 exactly, as before
    rng = random.Random(seed)
    out = []
    for seq in range(n):
        lat, lon = _point(rng)
        base = {"v": 1, "src": src, "seq": seq, "ts": ts}
        r = rng.random()
        if r < sensor_share:
            kind = rng.choice(list(KINDS))
            base.update(id=f"{kind}-{rng.randrange(sensors):05d}", kind=kind, lat=lat, lon=lon,
                        metrics={m: round(rng.random() * 200, 1) for m in KINDS[kind]})
            topic = f"sensor.{kind}"
        elif r < case_edge:
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


def messages(n: int, ts: int, src: str = "bench", seed: int = 7, batch: int = 100,
             **mix):
    """The mix as ``[topic, payload]`` frames: every ``batch`` records split by topic.
    ``mix``: ``records``' mix parameters (``sensor_share``, ``sensors``, ``case_share``)."""
    enc = msgspec.json.Encoder()
    recs = records(n, ts, src, seed, **mix)
    out = []
    for i in range(0, n, batch):
        by_topic: dict[str, list] = {}
        for topic, rec in recs[i:i + batch]:
            by_topic.setdefault(topic, []).append(rec)
        for topic, group in by_topic.items():
            out.append([topic.encode(), enc.encode(group)])
    return out

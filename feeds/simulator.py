"""The demo city: Beijing's 16 districts with sensors, field units and cases, publishing
exactly protocol v1 (../shared/PROTOCOL.md) on a ZeroMQ PUB socket.

    python -m feeds.simulator --feed tcp://127.0.0.1:5556 [--speed 10] [--seed 1]

``DemoCity`` is a pure, fixed-step model (one tick per city second): ``step(until_ms)`` runs
every whole tick up to ``until_ms`` and returns the records those ticks produced, so the city is
the same for a seed however its time is sliced. The publisher loop around it (``start_in_thread``)
adds heartbeats and re-sends the whole state when a console subscribes, so a console that
joins late still sees every open case. The units (GPS fixes as ``unit.pos``, full ``unit``
records on a change and every minute) are in ``feeds.demo_units``.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache

import msgspec
import numpy as np
import zmq

from feeds.district_grid import odd_crossings
from feeds.districts import District, load_districts
from feeds.schema import Case, Heartbeat, Record, SensorReading, Unit
# The units live in feeds.demo_units (with the city's time base); still importable from here.
from feeds.city_rules import (BUSY, CATEGORY_RULES, CLOSE_LIMIT, DISPATCH_LIMIT,  # noqa: F401
                              REGISTER_LIMIT, VERIFY_LIMIT)
from feeds.demo_units import (GPS_ACCURACY_M, HOUR, M_PER_DEG_LAT,  # noqa: F401
                              M_PER_DEG_LON, MINUTE, SHIFTS, TICK_MS, UNIT_COUNT, UNIT_FULL_S,
                              UNIT_MIX, UNIT_REPORT_S, DemoUnits, FieldUnit,
                              metres as _metres)

# The publisher loop is in feeds.demo_publisher (still importable from here).
from feeds.demo_publisher import (FEED_DOMAIN, HEARTBEAT_S, LOOP_S, Running,  # noqa: E402,F401
                                  publish_loop, start_in_thread)

DEMO_SRC = "demo-city"
DAY = 24 * HOUR
CITY_UTC_OFFSET_MS = 8 * HOUR      # Asia/Shanghai has no daylight saving
WARMUP_MS = 3 * HOUR               # the city has been running when the wall opens

# Where the city lives: the core districts get most sensors and units.
CORE = {"110101": 3.0, "110102": 3.0, "110105": 4.0, "110108": 4.0, "110106": 2.5,
        "110107": 1.5}
SENSOR_COUNTS = {"air": 40, "noise": 45, "crowd": 40, "vendor": 45, "parking": 45,
                 "manhole": 45, "waste": 45}
SENSOR_PERIOD_S = {"air": 60, "noise": 30, "crowd": 30, "vendor": 60, "parking": 60,
                   "manhole": 120, "waste": 120}
PERIODS = sorted({*SENSOR_PERIOD_S.values()})

CATEGORY_ZH = {
    "event.city_appearance.exposed_garbage": "暴露垃圾",
    "event.city_appearance.illegal_building": "私搭乱建",
    "event.advertising.illegal_flyers": "非法小广告",
    "event.construction.road_occupation": "施工占道",
    "event.construction.site_dust": "工地扬尘",
    "event.street_order.vending": "占道经营",
    "event.street_order.unlicensed_business": "无照经营",
    "event.emergency.road_collapse": "路面塌陷",
    "event.emergency.waterlogging": "道路积水",
    "part.public_facility.manhole": "井盖缺损",
    "part.public_facility.street_light": "路灯不亮",
    "part.city_appearance.waste_bin": "果皮箱满溢",
}
# What people report by hand, by hour of day: (category, weight at day, weight at evening)
REPORTED = (
    ("event.city_appearance.exposed_garbage", 3.0, 2.0),
    ("event.city_appearance.illegal_building", 1.0, 0.3),
    ("event.advertising.illegal_flyers", 2.0, 1.0),
    ("event.construction.road_occupation", 1.5, 0.4),
    ("event.street_order.vending", 1.0, 4.0),
    ("event.street_order.unlicensed_business", 1.0, 1.0),
    ("event.emergency.road_collapse", 0.1, 0.1),
    ("event.emergency.waterlogging", 0.2, 0.2),
    ("part.public_facility.street_light", 0.3, 2.0),
)
DESCRIPTIONS = {
    "patrol": "巡查发现{cat}，已拍照录入。",
    "citizen": "市民通过随手拍反映：{cat}，请尽快处理。",
    "hotline": "12345热线转办：来电人反映{cat}，影响通行。",
    "video": "视频智能识别：{cat}，置信度{conf}%。",
    "sensor": "感知设备 {sensor} 读数越限：{reading}。",
}


def local_hour(ts: int) -> float:
    return ((ts + CITY_UTC_OFFSET_MS) % DAY) / HOUR


@lru_cache(maxsize=256)           # pure: one tick asks the same few many times
def bump(hour: float, centre: float, width: float) -> float:
    """A smooth daily peak (wraps around midnight)."""
    d = min(abs(hour - centre), 24 - abs(hour - centre))
    return math.exp(-0.5 * (d / width) ** 2)


@lru_cache(maxsize=64)
def traffic(hour: float) -> float:
    """Morning and evening peaks, quiet nights: 0.1 … ~1."""
    return 0.1 + 0.8 * bump(hour, 8.0, 1.2) + 0.9 * bump(hour, 18.0, 1.5) + 0.3 * bump(hour, 13, 3)


def daytime(hour: float) -> float:
    return 1.0 if 7.0 <= hour < 19.0 else 0.0


@dataclass
class Sensor:
    id: str
    kind: str
    district: str
    lon: float
    lat: float
    phase: int                      # ms offset of its reporting slot
    base: float
    site: bool = False              # by a construction site / busy place
    fault: bool = False             # manhole lifted, bin overflowing, vendors present
    fill: float = 0.0
    over: int = 0                   # consecutive readings over the alarm line
    case_id: str | None = None      # the case its alarm raised, while open
    last: SensorReading | None = None
    warm: tuple | None = None       # (seq, ts, metrics) of its last warm-up reading


@dataclass
class CaseState:
    id: str
    category: str
    source: str
    district: str
    lon: float
    lat: float
    priority: int
    reported_at: int
    title: str
    description: str
    address: str
    status: str = "reported"
    flags: list[str] = field(default_factory=list)
    due_at: int | None = None
    unit_id: str | None = None
    next_at: int = 0                # when the workflow moves it next (0: waits for an event)
    work_ms: int = 0                # how long the work takes once on scene
    limit_ms: int = 0
    sensor_id: str | None = None
    late_judged: bool = False       # whether its lateness got an extension or not
    last: Case | None = None


class DemoCity(DemoUnits):
    """The model. Deterministic per ``seed``: numpy's generator is the only randomness and
    every table is walked in insertion order."""

    def __init__(self, seed: int = 1, start_ms: int = 1_795_000_000_000, src: str = DEMO_SRC,
                 warmup_ms: int = WARMUP_MS):
        self.src = src
        self.rng = np.random.default_rng(seed)
        self.districts = {d.adcode: d for d in load_districts()}
        self._weights = self._district_weights()
        self._seq = 0
        self._case_no = 0
        self.sensors: dict[str, Sensor] = {}
        self.units: dict[str, FieldUnit] = {}
        self.cases: dict[str, CaseState] = {}
        self._out: list[tuple[str, list[Record]]] = []
        self._warming = False
        self.haze = 0.0
        self.t = (start_ms - warmup_ms) // TICK_MS * TICK_MS
        self._slots: dict[tuple[int, int], list[Sensor]] = {}   # (period s, second) → due
        self._build_sensors()
        self._build_units()
        self._warm_up(start_ms)
        self._announce_units()              # each unit's first report is its whole state

    def __getstate__(self) -> dict:
        """Pickled without the district polygons (``feeds.demo_ahead`` hands a warmed-up city
        from a child process): they are the data file's, loaded again on the other side."""
        state = dict(self.__dict__)
        state.pop("districts", None)
        state.pop("_weights", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.districts = {d.adcode: d for d in load_districts()}
        self._weights = self._district_weights()

    # ---- building the city ------------------------------------------------------------
    def _district_weights(self) -> tuple[list[str], np.ndarray]:
        codes = list(self.districts)
        w = np.array([CORE.get(c, 0.6) for c in codes])
        return codes, w / w.sum()

    def _pick_district(self) -> District:
        codes, w = self._weights
        return self.districts[codes[int(self.rng.choice(len(codes), p=w))]]

    def _point_in(self, d: District, spread: float = 1.0) -> tuple[float, float]:
        """A point in the district, gathered around where people live (its centroid), not
        spread over its mountains."""
        cx, cy = d.centroid
        x0, y0, x1, y1 = d.bbox
        sx, sy = (x1 - x0) / 5 * spread, (y1 - y0) / 5 * spread
        for _ in range(200):
            lon, lat = self.rng.normal(cx, sx), self.rng.normal(cy, sy)
            if odd_crossings(lon, lat, d.edges):    # points_in_rings' arithmetic, vectorised
                return round(float(lon), 6), round(float(lat), 6)
        return round(cx, 6), round(cy, 6)

    def _build_sensors(self) -> None:
        prefix = {"air": "AQ", "noise": "NS", "crowd": "CR", "vendor": "VC", "parking": "PK",
                  "manhole": "MH", "waste": "WB"}
        for kind, count in SENSOR_COUNTS.items():
            period = SENSOR_PERIOD_S[kind] * 1000
            for i in range(count):
                d = self._pick_district()
                lon, lat = self._point_in(d)
                s = Sensor(id=f"{prefix[kind]}-{d.adcode[-2:]}{i + 1:03d}", kind=kind,
                           district=d.adcode, lon=lon, lat=lat,
                           phase=int(self.rng.integers(0, period // 1000)) * 1000,
                           base=float(self.rng.uniform(0.7, 1.3)),
                           site=bool(self.rng.random() < 0.35),
                           fill=float(self.rng.uniform(10, 70)))
                self.sensors[s.id] = s
                self._slots.setdefault((period // 1000, s.phase // 1000), []).append(s)

    # ---- running ------------------------------------------------------------------------
    def step(self, until_ms: int) -> list[tuple[str, list[Record]]]:
        """Run every whole tick up to ``until_ms``; the records they made, one batch per
        topic per tick, in the order they were made (``seq`` +1 each)."""
        out: list[tuple[str, list[Record]]] = []
        while self.t + TICK_MS <= until_ms:
            self.t += TICK_MS
            self._tick()
            out.extend(self._out)
            self._out = []
        return out

    def _warm_up(self, until_ms: int) -> None:
        """``step(until_ms)`` whose records go nowhere: each tick's are dropped as it ends
        (the city's state, seq and randomness end exactly as ``step``'s would)."""
        self._warming = True
        try:
            while self.t + TICK_MS <= until_ms:
                self.t += TICK_MS
                self._tick()
        finally:
            self._warming = False
        for s in self.sensors.values():       # each one's last reading, as step() makes it
            if s.warm is not None:
                seq, ts, metrics = s.warm
                s.last = SensorReading(v=1, src=self.src, seq=seq, ts=ts, id=s.id, kind=s.kind,
                                       lat=s.lat, lon=s.lon, metrics=metrics,
                                       district=s.district)
                s.warm = None
        self._warm_fixes()
    def snapshot(self) -> list[tuple[str, list[Record]]]:
        """The whole current state (every sensor's last reading, every unit, every case
        still held), as fresh records: what a console that just joined needs."""
        out: list[tuple[str, list[Record]]] = []
        by_topic: dict[str, list[Record]] = {}
        for s in self.sensors.values():
            if s.last is not None:
                by_topic.setdefault(f"sensor.{s.kind}", []).append(s.last)
        for topic, recs in by_topic.items():
            out.append((topic, [self._reseq(r) for r in recs]))
        out += self._units_snapshot()          # every unit, then its newer fix
        cases = [self._reseq(c.last) for c in self.cases.values() if c.last is not None]
        return out + [("case", cases)]

    def heartbeat(self, ts: int, rate: float | None = None) -> Heartbeat:
        return Heartbeat(v=1, src=self.src, seq=self._next_seq(), ts=ts,
                         rate=None if rate is None else round(rate, 1))

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    def _reseq(self, rec: Record) -> Record:
        return msgspec.structs.replace(rec, seq=self._next_seq())

    def _emit(self, topic: str, rec: Record) -> None:
        if self._warming:
            return                  # the warm-up's records go nowhere
        # Runs of one topic become one batch; a new topic starts a new one, so the wire
        # carries seq in order (+1 each) as the protocol asks.
        if self._out and self._out[-1][0] == topic:
            self._out[-1][1].append(rec)
        else:
            self._out.append((topic, [rec]))

    def _tick(self) -> None:
        t = self.t
        hour = local_hour(t)
        if t % (10 * MINUTE) == 0:          # weather drifts: hazy spells come and go
            self.haze = float(np.clip(self.haze + self.rng.normal(0, 0.08), -0.3, 1.2))
        self._sensors_tick(t, hour)
        self._reports_tick(t, hour)
        self._cases_tick(t)
        self._units_tick(t, hour)

    # ---- sensors --------------------------------------------------------------------------
    def _sensors_tick(self, t: int, hour: float) -> None:
        second = t // 1000
        due = [s for p in PERIODS for s in self._slots.get((p, second % p), ())]
        for s in due:
            period = SENSOR_PERIOD_S[s.kind] * 1000
            metrics = self._read(s, t, hour, period)
            if self._warming:                   # only the last one is ever read: made after
                s.last, s.warm = None, (self._next_seq(), t, metrics)
            else:
                rec = SensorReading(v=1, src=self.src, seq=self._next_seq(), ts=t, id=s.id,
                                    kind=s.kind, lat=s.lat, lon=s.lon, metrics=metrics,
                                    district=s.district)
                s.last = rec
                self._emit(f"sensor.{s.kind}", rec)
            self._maybe_raise(s, t, metrics)

    def _read(self, s: Sensor, t: int, hour: float, period: int) -> dict[str, float]:
        r = self.rng
        tr = traffic(hour)
        if s.kind == "air":
            pm25 = max(3.0, s.base * (28 + 45 * tr + 110 * max(self.haze, 0)) + r.normal(0, 6))
            pm10 = pm25 * 1.5 + r.normal(0, 8)
            if s.site and daytime(hour):
                pm10 += 40 + r.gamma(2.0, 24.0)        # dust from the site by day
            return {"pm25": round(pm25, 1), "pm10": round(max(pm10, pm25), 1)}
        if s.kind == "noise":
            level = 48 + 14 * tr * s.base + r.normal(0, 2.5)
            if s.site and 7 <= hour < 22:
                level += 12 + r.gamma(2.0, 3.0)        # construction by day
            return {"laeq": round(level, 1)}
        if s.kind == "crowd":
            if s.site:                                 # a station: commuter peaks
                dens = 260 * (bump(hour, 8.2, 0.8) + bump(hour, 18.2, 1.0)) * s.base + 20
            else:                                      # market or scenic spot: day and evening
                dens = 160 * (bump(hour, 11, 2.5) + 0.9 * bump(hour, 19.5, 1.8)) * s.base + 10
            return {"density": round(max(0.0, dens + r.normal(0, 12)), 1)}
        if s.kind == "vendor":
            evening = bump(hour, 20.0, 1.6) * (2.5 if s.site else 1.0)
            if s.fault:          # vendors set up until someone moves them on
                return {"detections": float(r.poisson(3 + 3 * evening))}
            if r.random() < 0.004 * evening:
                s.fault = True
            return {"detections": float(r.poisson(0.2 + 1.2 * evening))}
        if s.kind == "parking":
            busy = 1.5 * bump(hour, 12.5, 2) + 2.5 * bump(hour, 19.5, 1.5)
            return {"illegal": float(r.poisson(busy * s.base * (1.6 if s.site else 0.7)))}
        if s.kind == "manhole":
            if not s.fault and r.random() < 0.0004:
                s.fault = True                         # a cover lifted or broken
            if s.fault:
                return {"tilt_deg": round(float(r.uniform(16, 40)), 1), "open": 1.0}
            return {"tilt_deg": round(abs(float(r.normal(0.6, 0.4))), 1), "open": 0.0}
        if s.kind == "waste":
            if not s.fault and any(0 <= hour - h < period / HOUR for h in (0, 13)):
                s.fill = float(r.uniform(2, 8))        # the sanitation rounds empty the bins
            s.fill = min(100.0, s.fill + (0.3 + 1.6 * traffic(hour)) * s.base * (period / (10 * MINUTE)))
            return {"fill_pct": round(s.fill, 1)}
        return {}

    def _maybe_raise(self, s: Sensor, t: int, metrics: dict[str, float]) -> None:
        """Sensor crossings that become cases (感知发现): one open case per sensor at most."""
        if s.case_id is not None:
            return
        category = source = None
        reading = ""
        if s.kind == "air":      # dust above the smog must persist for three readings
            dust = metrics["pm10"] - 1.5 * metrics["pm25"]
            s.over = s.over + 1 if metrics["pm10"] >= 250 and dust > 130 else 0
        if s.kind == "air" and s.site and s.over >= 3:
            category, source, reading = "event.construction.site_dust", "sensor", f"PM10 {metrics['pm10']} µg/m³"
        elif s.kind == "vendor" and metrics["detections"] >= 5:
            category, source = "event.street_order.vending", "video"
        elif s.kind == "manhole" and metrics["open"] >= 1:
            category, source, reading = "part.public_facility.manhole", "sensor", f"倾角 {metrics['tilt_deg']}°"
        elif s.kind == "waste" and metrics["fill_pct"] >= 95:
            category, source, reading = "part.city_appearance.waste_bin", "sensor", f"满溢 {metrics['fill_pct']}%"
        if category is None:
            return
        # Jitter so the case marker does not sit exactly on the sensor.
        lon = s.lon + float(self.rng.normal(0, 0.0004))
        lat = s.lat + float(self.rng.normal(0, 0.0003))
        c = self._open_case(t, category, source, self.districts[s.district], lon, lat,
                            sensor=s.id, reading=reading)
        s.case_id = c.id
        s.fault = True

    # ---- cases ----------------------------------------------------------------------------
    def _reports_tick(self, t: int, hour: float) -> None:
        """Patrols (巡查即录入), citizens and the 12345 hotline report by hand."""
        activity = 0.15 + 0.85 * (bump(hour, 10, 2.5) + bump(hour, 19, 2.2)) / 1.2
        per_hour = 34.0 * activity
        if self.rng.random() >= per_hour / 3600:
            return
        evening = 18 <= hour or hour < 6
        weights = np.array([ev if evening else day for _, day, ev in REPORTED])
        category = REPORTED[int(self.rng.choice(len(REPORTED), p=weights / weights.sum()))][0]
        roll = self.rng.random()
        on_duty = [u for u in self.units.values()
                   if u.status == "available" and u.kind in ("foot_patrol", "vehicle")]
        if roll < 0.5 and on_duty:
            u = on_duty[int(self.rng.integers(len(on_duty)))]
            lon = u.lon + float(self.rng.normal(0, 0.0015))
            lat = u.lat + float(self.rng.normal(0, 0.001))
            self._open_case(t, category, "patrol", self.districts[u.district], lon, lat)
            return
        source = "citizen" if roll < 0.8 else "hotline"
        d = self._pick_district()
        lon, lat = self._point_in(d)
        self._open_case(t, category, source, d, lon, lat)

    def _open_case(self, t: int, category: str, source: str, d: District, lon: float,
                   lat: float, sensor: str | None = None, reading: str = "") -> CaseState:
        self._case_no += 1
        local = time.gmtime((t + CITY_UTC_OFFSET_MS) / 1000)
        cid = f"BJ{local.tm_year:04d}{local.tm_mon:02d}{local.tm_mday:02d}{self._case_no:05d}"
        agency, priority, _kinds, hours = CATEGORY_RULES[category]
        name = CATEGORY_ZH[category]
        grid = f"{d.adcode[-2:]}-{int((lon - 115) * 100) % 100:02d}{int((lat - 39) * 100) % 100:02d}"
        desc = DESCRIPTIONS[source].format(cat=name, sensor=sensor or "", reading=reading,
                                           conf=int(self.rng.integers(82, 99)))
        c = CaseState(id=cid, category=category, source=source, district=d.adcode,
                      lon=round(lon, 6), lat=round(lat, 6), priority=priority, reported_at=t,
                      title=f"{d.short_zh}{name}", description=desc,
                      address=f"{d.name_zh} 第{grid}网格", sensor_id=sensor,
                      limit_ms=int(hours * HOUR))
        # Patrol reports are registered on the spot; others wait for the call-taker.
        wait = self.rng.uniform(0.5, 3) if source == "patrol" else self.rng.uniform(3, 25)
        c.next_at = t + int(wait * MINUTE)
        c.due_at = t + REGISTER_LIMIT
        self.cases[cid] = c
        self._publish_case(c, t)
        return c

    def _publish_case(self, c: CaseState, t: int) -> None:
        rec = Case(v=1, src=self.src, seq=self._next_seq(), ts=t, case_id=c.id, status=c.status,
                   flags=list(c.flags), category=c.category, agency=CATEGORY_RULES[c.category][0],
                   title=c.title, description=c.description, lat=c.lat, lon=c.lon,
                   address=c.address, district=c.district, source=c.source, priority=c.priority,
                   reported_at=c.reported_at, due_at=c.due_at, unit_id=c.unit_id)
        c.last = rec
        self._emit("case", rec)

    def _cases_tick(self, t: int) -> None:
        # Only the cases something happens to this second, in the same order (what happens to
        # one case never changes another's times or status, so the city is the same).
        gone = t - 2 * HOUR
        due = [c for c in self.cases.values()
               if (c.next_at and t >= c.next_at)
               or (c.due_at and t > c.due_at and c.status in ("dispatched", "on_scene"))
               or (c.status in ("closed", "rejected") and c.last.ts < gone)]
        for c in due:
            if c.status == "registered":
                self._try_dispatch(c, t)
            elif c.next_at and t >= c.next_at:
                self._advance(c, t)
            if c.status in ("dispatched", "on_scene") and c.due_at and t > c.due_at:
                self._overdue(c, t)
            if c.status in ("closed", "rejected") and t - c.last.ts > 2 * HOUR:
                del self.cases[c.id]          # the wall keeps its own record of closed cases

    def _advance(self, c: CaseState, t: int) -> None:
        r = self.rng
        c.next_at = 0
        if c.status == "reported":
            if c.source in ("citizen", "hotline") and r.random() < 0.08:
                c.status, c.due_at = "rejected", None      # not a city-management matter
                self._free_sensor(c)
            else:
                c.status = "registered"
                c.due_at = t + DISPATCH_LIMIT[c.priority]
                # The district dispatcher looks at the queue every few minutes.
                c.next_at = t + int(r.uniform(1, 6 if c.priority == 1 else 20) * MINUTE)
        elif c.status == "on_scene":
            c.status = "resolved"
            c.due_at = t + VERIFY_LIMIT
            c.next_at = t + int(r.uniform(10, 70) * MINUTE)
            self._free_sensor(c)
        elif c.status == "resolved":
            if r.random() < 0.06:          # the check finds it not done: back to dispatch
                c.status, c.unit_id = "registered", None
                c.flags = sorted(set(c.flags) | {"rework"})
                c.due_at = t + DISPATCH_LIMIT[c.priority]
                c.next_at = t + int(r.uniform(2, 15) * MINUTE)
            else:
                c.status = "verified"
                c.due_at = t + CLOSE_LIMIT
                c.next_at = t + int(r.uniform(5, 30) * MINUTE)
        elif c.status == "verified":
            c.status, c.due_at = "closed", None
        else:
            return
        self._publish_case(c, t)

    def _free_sensor(self, c: CaseState) -> None:
        s = self.sensors.get(c.sensor_id) if c.sensor_id else None
        if s is not None:
            s.case_id, s.fault, s.over = None, False, 0
            if s.kind == "waste":
                s.fill = float(self.rng.uniform(2, 10))

    def _try_dispatch(self, c: CaseState, t: int) -> None:
        if not c.next_at or t < c.next_at:
            return
        kinds = CATEGORY_RULES[c.category][2]
        waited = t - (c.last.ts if c.last else t)
        # The district's own units of the right kind first; after a while, a neighbour's
        # within 8 km, and after longer any free unit at all.
        best, best_d = None, 0.0
        for u in self.units.values():
            if u.status != "available":
                continue
            own = u.district == c.district and u.kind in kinds
            dist = _metres(u.lon, u.lat, c.lon, c.lat)
            if not own and not (waited > 10 * MINUTE and dist < 8_000
                                and (u.kind in kinds or waited > 25 * MINUTE)):
                continue
            if best is None or dist < best_d:
                best, best_d = u, dist
        if best is None:
            c.next_at = t + 5 * MINUTE           # nobody free: look again later
            return
        self._assign(c, best, t)

    def _assign(self, c: CaseState, u: FieldUnit, t: int, due_at: int | None = None) -> None:
        c.next_at = 0
        c.status, c.unit_id = "dispatched", u.id
        # The time to resolve runs from dispatch; most cases make it, some do not.
        c.due_at = due_at if due_at is not None else t + c.limit_ms
        share = self.rng.uniform(0.15, 0.75) if self.rng.random() > 0.12 else self.rng.uniform(1.05, 1.6)
        c.work_ms = int(c.limit_ms * share)
        self._publish_case(c, t)
        self._move_unit(u, t)
        u.status, u.case_id, u.target = "dispatched", c.id, (c.lon, c.lat)
        self._at_work[u.id] = u          # looked at each second until its work is done
        u.until = t + int(self.rng.uniform(0.5, 2) * MINUTE)   # acknowledges, sets off
        self._publish_unit(u, t)

    # ---- what the dispatch service decided ------------------------------------------------------
    def follow(self, rec: Record) -> None:
        """A commander's order, as the dispatch service published it, becomes the city's truth:
        the unit sets off for the case (or, recalled, comes free and its case waits again)."""
        t = self.t
        if isinstance(rec, Case) and rec.status == "dispatched" and rec.unit_id:
            c, u = self.cases.get(rec.case_id), self.units.get(rec.unit_id)
            if c is None or u is None or (c.unit_id == u.id and c.status != "registered"):
                return
            if u.case_id and u.case_id != c.id and u.case_id in self.cases:
                self._requeue(self.cases[u.case_id], t)       # the commander's order wins
            if c.unit_id and c.unit_id != u.id and c.unit_id in self.units:
                self._free(self.units[c.unit_id], t)
            self._assign(c, u, t, rec.due_at)
        elif isinstance(rec, Unit) and rec.status == "available" and rec.case_id is None:
            u = self.units.get(rec.unit_id)
            if u is None or u.case_id is None:
                return
            if u.case_id in self.cases:
                self._requeue(self.cases[u.case_id], t)
            self._free(u, t)

    def _requeue(self, c: CaseState, t: int) -> None:
        c.status, c.unit_id = "registered", None
        c.due_at = t + DISPATCH_LIMIT[c.priority]
        c.next_at = t + 10 * MINUTE          # the district dispatcher looks again later
        self._publish_case(c, t)

    def _overdue(self, c: CaseState, t: int) -> None:
        late = t - c.due_at
        if not c.late_judged:
            c.late_judged = True
            if "extended" not in c.flags and self.rng.random() < 0.35:
                c.flags = sorted(set(c.flags) | {"extended"})      # 延期 granted once
                c.due_at += c.limit_ms // 2
                self._publish_case(c, t)
        elif late > min(c.limit_ms // 2, HOUR) and "escalated" not in c.flags:
            c.flags = sorted(set(c.flags) | {"escalated"})         # 督办: the centre steps in
            self._publish_case(c, t)

    def _move_case(self, c: CaseState, status: str, t: int) -> None:
        c.status = status
        # The work is done off the unit's clock: the case resolves when the work is done.
        c.next_at = max(t + MINUTE, c.reported_at + c.work_ms, t + int(c.work_ms * 0.4))
        self._publish_case(c, t)

def main(argv: list[str] | None = None) -> int:
    from feeds.args import (EXIT_USAGE, OneLineParser, endpoint, positive_float, positive_int,
                            time_ms)
    from feeds.key_args import add_insecure_arg, add_key_arg, add_trust_arg, own_key, server_keys
    from feeds.security import Gate, SecurityError
    from situation.clock import ScaledClock

    p = OneLineParser(prog="feeds.simulator",
                      description="The CityWall demo city: publishes protocol v1 on a PUB socket.")
    p.add_argument("--feed", type=endpoint, default="tcp://127.0.0.1:5556", metavar="ENDPOINT",
                   help="bind here (default tcp://127.0.0.1:5556); beyond loopback it needs "
                        "--key and --trust (or --insecure)")
    p.add_argument("--speed", type=positive_float, default=1.0, help="city clock x wall time")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start", type=time_ms, default=None,
                   help="city start time (ISO 8601, Beijing time if no zone; or ms); default now")
    p.add_argument("--run-for", type=positive_float, default=None, metavar="SECONDS")
    p.add_argument("--history-days", type=positive_int, default=None, metavar="N",
                   help="write N days of demand history (the city's rhythm) and exit")
    p.add_argument("--history-out", default=None, metavar="FILE.parquet|FILE.csv",
                   help="where --history-days writes")
    add_key_arg(p, "the publisher's own CURVE key pair (NAME.key_secret, mode 600): with "
                   "--trust, the feed is a CURVE server")
    add_trust_arg(p, "the consoles")
    add_insecure_arg(p)
    args = p.parse_args(argv)
    if (args.history_days is None) != (args.history_out is None):
        p.error("--history-days and --history-out go together")
    if args.history_days is not None:
        return _history_main(p, args)
    try:
        keys = server_keys(own_key(args.key, args.insecure), args.trust, args.feed,
                           args.insecure)
    except SecurityError as exc:
        p.error(str(exc))
    start = args.start if args.start is not None else time.time_ns() // 1_000_000
    city = DemoCity(seed=args.seed, start_ms=start)
    clock = ScaledClock(start, args.speed)
    ctx = zmq.Context.instance()
    try:
        thread, stop, _ = start_in_thread(args.feed, city=city, now_ms=clock.now_ms,
                                          context=ctx, keys=keys)
    except zmq.ZMQError as exc:
        print(f"feeds.simulator: error: cannot bind {args.feed}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    how = (f"CURVE, key {keys.key.name}, trusting {len(keys.trust.names())} keys in "
           f"{keys.trust.directory}" if keys else "UNENCRYPTED")
    print(f"demo city publishing on {args.feed} ({how}; speed {args.speed:g}, seed "
          f"{args.seed}); Ctrl-C stops", file=sys.stderr)
    try:
        thread.join(args.run_for)
    except KeyboardInterrupt:
        pass
    stop.set()
    thread.join(5)
    refused = Gate.of(ctx).status(FEED_DOMAIN) if keys else {}
    if refused:
        print("feeds.simulator: refused handshakes (keys not trusted): "
              + ", ".join(f"{peer} ×{n}" for peer, n in sorted(refused.items())), file=sys.stderr)
    return 0


def _history_main(p, args) -> int:
    from pathlib import Path

    from feeds.demo_history import write_history

    out = Path(args.history_out).expanduser()
    if out.suffix.lower() not in (".parquet", ".pq", ".csv"):
        p.error(f"--history-out: use a .parquet or .csv file name: {args.history_out!r}")
    if not out.parent.is_dir():
        p.error(f"--history-out: no such directory: {str(out.parent)!r}")
    if out.is_dir():
        p.error(f"--history-out: is a directory: {args.history_out!r}")
    end = args.start if args.start is not None else time.time_ns() // 1_000_000
    try:
        n = write_history(args.history_days, out, seed=args.seed, end_ms=end)
    except OSError as exc:
        print(f"feeds.simulator: error: cannot write {out}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    print(f"wrote {n} events over {args.history_days} days to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

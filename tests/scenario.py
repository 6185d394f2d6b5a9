"""A small, hand-made situation for widget tests: records built as the wire would carry them
and applied through the store, on a manual clock the test moves."""
from __future__ import annotations

import msgspec

from feeds.batch import Batch
from feeds.schema import Case, Heartbeat, SensorReading, Unit
from situation.clock import ManualClock
from situation.store import Situation
from tests.pubhelp import record

T0 = 1_795_483_800_000          # 2026-11-24 09:30 Beijing time
MIN = 60_000
TYPES = {"case": Case, "unit": Unit, "hb": Heartbeat}


class Scenario:
    def __init__(self, start_ms: int = T0):
        self.clock = ManualClock(start_ms)
        self.situation = Situation(self.clock)
        self.seq = 0

    def add(self, topic: str, **fields) -> None:
        fields.setdefault("ts", self.clock.now_ms())
        raw = record(topic, src=fields.pop("src", "scenario"), seq=self.seq, **fields)
        self.seq += 1
        rtype = TYPES.get(topic, SensorReading)
        batch = Batch()
        batch.records.append(msgspec.convert(raw, rtype))
        batch.heard.add(raw["src"])
        self.last_change = self.situation.apply(batch)

    def case(self, case_id: str, due_in_min: float | None, **fields) -> None:
        now = self.clock.now_ms()
        fields.setdefault("reported_at", now - 30 * MIN)
        self.add("case", case_id=case_id,
                 due_at=None if due_in_min is None else now + int(due_in_min * MIN), **fields)

    def unit(self, unit_id: str, **fields) -> None:
        self.add("unit", unit_id=unit_id, **fields)

    def sensor(self, sensor_id: str, kind: str, **metrics) -> None:
        self.add(f"sensor.{kind}", id=sensor_id, metrics=metrics)


def standard() -> Scenario:
    """Four open cases (one overdue, one due soon, one without a deadline), one closed; three
    units; sensors in each level."""
    sc = Scenario()
    sc.case("C-LATE", -20, category="event.street_order.vending", status="dispatched",
            unit_id="U1", district="110101")
    sc.case("C-SOON", 10, category="part.public_facility.manhole", status="registered",
            priority=1, district=None, lat=39.99, lon=116.48)      # district from the point
    sc.case("C-LATER", 180, category="event.advertising.illegal_flyers", status="on_scene")
    sc.case("C-NODUE", None, category="something.new.kind", status="reported",
            title="<b>not bold</b>")
    sc.case("C-DONE", None, category="event.street_order.vending", status="closed")
    sc.unit("U1", callsign="东城-巡01", status="on_scene", case_id="C-LATE")
    sc.unit("U2", callsign="朝阳-车02", kind="vehicle", status="available",
            lat=39.92, lon=116.45)
    sc.unit("U3", callsign="海淀-执03", kind="enforcement", status="available",
            ts=sc.clock.now_ms() - 2 * MIN)                          # silent for two minutes
    sc.sensor("AQ-1", "air", pm25=40.0, pm10=60.0)
    sc.sensor("AQ-2", "air", pm25=90.0, pm10=120.0)          # warning
    sc.sensor("AQ-3", "air", pm25=160.0, pm10=300.0)         # alarm
    sc.sensor("MH-1", "manhole", tilt_deg=22.0, open=1.0)    # alarm
    sc.sensor("XX-1", "radiation", usv=0.12)                 # a kind the wall does not know
    sc.add("hb", rate=12.5)
    return sc

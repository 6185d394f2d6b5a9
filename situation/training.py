"""Training mode: a trainee dispatches against a recorded day (the replay), and this exercise
plays the dispatch service and the field units the trainee commands. No Qt.

    desk = TrainingDesk(endpoint, ctx)             # feeds.training: the in-process ROUTER
    ex = Exercise(situation, desk, console_id="trainee-1")
    replay = Replay(recording, situation, exercise=ex)   # calls ex.controls / ex.pump
    ...
    write_debrief_html(ex.debrief(clock.now_ms()), path, lang)    # situation.debrief
    ex.close()

``pump(now)`` (once per replay step, on the thread that owns the situation) serves the orders
waiting at the desk, judged by the live service's own rules (``dispatch_service.decide``: the
same acceptances, the same reason codes and words) against the replayed picture, and moves the
units the trainee sent. Its records (src ``training``, ``seq`` +1 each) are applied by the
replay after the recorded ones.

Who owns what. A unit or case the trainee touched with an accepted order is the trainee's:
``controls(record)`` holds back the recorded day's records of it, so the picture shows what
the trainee made happen. The unit goes back to the recorded day when its job is done (the
case resolved); a unit recalled stays the trainee's, available where it stopped, until it is
sent again and that job is done. A case stays the trainee's (a recalled one waits in the
queue for the trainee's next dispatch) until the trainee's unit resolves it *and* the recorded
day has also reached ``resolved`` or beyond; the day's verify/close steps then flow again. If
the day already verified, closed or rejected the case while the trainee worked it, that
verdict (held back meanwhile) is applied right after the trainee's resolution, so the case
ends as the day ended it instead of staying open for ever. Limits: a recorded unit the day
sent to a case the trainee owns still shows the day's errand (its records are the day's).

Moving a unit: turnout ``TURNOUT_MS`` (``dispatched``), then ``en_route`` in a straight line at
the time ``situation.suggest`` promises (distance × detour ÷ the kind's speed: foot 1.3 m/s,
vehicle 8 m/s …, the demo city's speeds), reporting its position every ``REPORT_MS``;
``on_scene`` at arrival (the case too); after ``HANDLE_MS`` the case is ``resolved`` and the
unit ``available``. Each record is dated when that happened in replay time (not when
``pump`` ran), so figures do not depend on how often the replay steps, and always later than
the record it replaces (newer wins).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import msgspec

from feeds.dispatch_rules import change_ts, decide
from feeds.orders import (Ack, DispatchOrder, Problem, SnapshotOrder, SnapshotReply, bad_order,
                          reason, reason_code)
from feeds.schema import CLOSED_CASE_STATUSES, PROTOCOL_VERSION, Case, Record, Unit, UnitPosition
from feeds.city_rules import VERIFY_LIMIT
from situation.handover import window_kpis
from situation.suggest import DEFAULT_SPEED_MS, DETOUR, SPEED_MS, distance_m, nearest_available
from situation.supervision import DISPATCH_TARGET_MS, RATE_COLUMNS

SRC = "training"
MIN_MS = 60_000
TURNOUT_MS = MIN_MS         # acknowledging and setting off: the demo city takes 0.5-2 min
REPORT_MS = 10_000          # a unit's tracker reports every 10 s (the demo's): never stale
# On scene until resolved: a fixed 20 min (the demo city varies 8-35) so an exercise's
# timeline, and its debrief, can be worked out by hand.
HANDLE_MS = 20 * MIN_MS
DONE_STAGES = frozenset({"resolved", "verified", "closed", "rejected"})
VERDICTS = frozenset({"verified", "closed", "rejected"})    # the day's steps after the work
M_PER_DEG_LAT = 111_000.0


def travel(unit: Unit, case: Case) -> tuple[float, float]:
    """(straight-line metres, seconds to arrive), as ``situation.suggest`` estimates them."""
    d = distance_m(unit.lon, unit.lat, case.lon, case.lat)
    return d, d * DETOUR / SPEED_MS.get(unit.kind, DEFAULT_SPEED_MS)


@dataclass
class _Job:
    """A unit the trainee sent, on its way to or working a case."""
    order_id: str
    case_id: str
    unit_id: str
    origin: tuple[float, float]          # lon, lat
    target: tuple[float, float]
    depart_at: int
    arrive_at: int
    done_at: int
    phase: str = "dispatched"            # → en_route → on_scene

    def where(self, t: int) -> tuple[float, float]:
        span = self.arrive_at - self.depart_at
        f = 0.0 if t <= self.depart_at else 1.0 if t >= self.arrive_at or span <= 0 \
            else (t - self.depart_at) / span
        (x0, y0), (x1, y1) = self.origin, self.target
        return round(x0 + (x1 - x0) * f, 6), round(y0 + (y1 - y0) * f, 6)

    def course(self) -> float:
        (x0, y0), (x1, y1) = self.origin, self.target
        dx = (x1 - x0) * M_PER_DEG_LAT * math.cos(math.radians((y0 + y1) / 2))
        return round(math.degrees(math.atan2(dx, (y1 - y0) * M_PER_DEG_LAT)) % 360, 1)


class Exercise:
    def __init__(self, situation, desk, *, console_id: str | None = None, src: str = SRC):
        self.situation = situation
        self.desk = desk
        self.console_id = console_id
        self.src = src
        self.seq = -1                         # the last seq emitted
        self.started_ms: int | None = None    # the first pump's time: the exercise's start
        self.log: list[dict] = []             # every order served, in order
        self._units: dict[str, Unit] = {}     # the trainee's units: our newest record
        self._cases: dict[str, Case] = {}     # the trainee's cases: our newest record
        self._jobs: dict[str, _Job] = {}      # unit id → its job
        self._held: dict[str, Case] = {}      # case id → newest recorded record held back
        self._verdicts: dict[str, Case] = {}  # case id → the day's verdict to apply
        self._known: set[str] = set()         # case ids noticed
        self._seen: dict[str, dict] = {}      # case id → appeared_at, open_at_start, first
        self._first_dispatch: dict[str, dict] = {}   # case id → log entry
        self._out: list[Record] = []          # emitted this pump, not yet in the situation
        self._staged: dict[tuple[type, str], Record] = {}     # … the newest of each
        self._last_now = 0

    # ---- the replay's questions -----------------------------------------------------------
    def controls(self, rec) -> bool:
        """True: hold this recorded record back — the trainee took its unit or case over."""
        if isinstance(rec, (Unit, UnitPosition)):      # its fixes too: the desk moves it
            return rec.unit_id in self._units
        if isinstance(rec, Case) and rec.case_id in self._cases:
            return self._hold_case(rec)
        return False

    def _hold_case(self, rec: Case) -> bool:
        cid = rec.case_id
        ours = self._cases[cid]
        working = ours.status != "resolved" or any(j.case_id == cid for j in self._jobs.values())
        if working or rec.status not in DONE_STAGES:
            held = self._held.get(cid)
            if held is None or rec.ts >= held.ts:
                self._held[cid] = rec
            return True
        # The trainee resolved it and the day is done with the work too: hand it back.
        if rec.ts > ours.ts or rec.status not in VERDICTS:
            self._release_case(cid)
            return False                  # newer: it wins; older: the store discards it
        self._verdicts[cid] = rec         # older than ours, but the day's last word
        return True

    def pump(self, now_ms: int) -> list[Record]:
        """Serve the orders waiting and move the trainee's units up to ``now_ms``; the records
        that made (to apply after the recorded ones)."""
        now = self._last_now = max(int(now_ms), self._last_now)
        first = self.started_ms is None
        if first:
            self.started_ms = now
        self._notice_cases(first)
        for job in list(self._jobs.values()):
            self._advance(job, now)
        for envelope, order in self.desk.take():
            self._serve(envelope, order, now)
        self._apply_verdicts()
        for unit in list(self._units.values()):
            if now - unit.ts >= REPORT_MS and unit.unit_id not in self._jobs:
                self._emit(unit, now)         # a parked unit still reports: not stale
        out, self._out = self._out, []
        self._staged.clear()
        return out

    # ---- the picture as the trainee's orders see it ----------------------------------------
    def _case(self, case_id: str) -> Case | None:
        return (self._cases.get(case_id) or self._staged.get((Case, case_id))
                or self.situation.cases.get(case_id))

    def _unit(self, unit_id: str) -> Unit | None:
        return (self._units.get(unit_id) or self._staged.get((Unit, unit_id))
                or self.situation.units.get(unit_id))

    def _emit(self, rec: Case | Unit, t: int) -> None:
        """Stamp a record ours and take the entity over: dated ``t``, but later than what it
        replaces."""
        is_case = isinstance(rec, Case)
        table, key = (self._cases, rec.case_id) if is_case else (self._units, rec.unit_id)
        held = self._case(key) if is_case else self._unit(key)
        self.seq += 1
        rec = msgspec.structs.replace(rec, v=PROTOCOL_VERSION, src=self.src, seq=self.seq,
                                      ts=change_ts(t, held))
        table[key] = self._staged[(type(rec), key)] = rec
        self._out.append(rec)

    def _notice_cases(self, at_start: bool) -> None:
        """Which cases the debrief is about: those open when the exercise started (they
        appeared for the trainee at the start), and those first seen open after it (they
        appeared at the ``ts`` of their first record: when the case system said so, whatever
        the replay's step)."""
        st = self.situation
        new = st.cases.keys() - self._known
        if not new:
            return
        start = self.started_ms
        for cid in new:
            self._known.add(cid)
            case = st.cases[cid]
            stages = st.case_stages.get(cid, {})
            if at_start:
                if st.is_open(case):
                    self._seen[cid] = {"appeared_at": start, "open_at_start": True,
                                       "first": case}
            elif st.is_open(case) or any(s not in CLOSED_CASE_STATUSES for s in stages):
                first = min(stages.values(), default=case.ts)
                self._seen[cid] = {"appeared_at": max(first, start), "open_at_start": False,
                                   "first": case}

    # ---- moving the trainee's units ----------------------------------------------------------
    def _advance(self, job: _Job, now: int) -> None:
        if job.phase == "dispatched" and now >= job.depart_at:
            job.phase = "en_route"
            self._move(job, job.depart_at, "en_route")
        if job.phase == "en_route":
            t = self._units[job.unit_id].ts + REPORT_MS
            while t <= now and t < job.arrive_at:       # its track, as a tracker reports it
                self._move(job, t, "en_route")
                t += REPORT_MS
            if now >= job.arrive_at:
                job.phase = "on_scene"
                self._move(job, job.arrive_at, "on_scene")
                self._emit(msgspec.structs.replace(self._cases[job.case_id],
                                                   status="on_scene"), job.arrive_at)
        if job.phase == "on_scene" and now >= job.done_at:
            self._resolve(job)
        elif now - self._units[job.unit_id].ts >= REPORT_MS:
            self._move(job, now, job.phase)

    def _move(self, job: _Job, t: int, status: str) -> None:
        unit = self._units[job.unit_id]
        lon, lat = job.where(t)
        moving = status == "en_route"
        self._emit(msgspec.structs.replace(
            unit, status=status, lon=lon, lat=lat, course=job.course() if moving else unit.course,
            speed=SPEED_MS.get(unit.kind, DEFAULT_SPEED_MS) if moving else 0.0), t)

    def _resolve(self, job: _Job) -> None:
        t = job.done_at
        case = self._cases[job.case_id]
        self._emit(msgspec.structs.replace(case, status="resolved", due_at=t + VERIFY_LIMIT), t)
        self._emit(msgspec.structs.replace(self._units[job.unit_id], status="available",
                                           case_id=None, speed=0.0), t)
        del self._jobs[job.unit_id]
        del self._units[job.unit_id]          # the unit goes back to the recorded day
        held = self._held.get(job.case_id)
        if held is not None and held.status in DONE_STAGES:
            self._verdicts[job.case_id] = held    # the day is done too: its word, then its own

    def _apply_verdicts(self) -> None:
        for cid, day in self._verdicts.items():
            ours = self._cases.get(cid)
            if ours is None:              # the day's newer word came meanwhile: it stands
                continue
            self._emit(msgspec.structs.replace(ours, status=day.status, flags=list(day.flags),
                                               due_at=day.due_at), max(day.ts, ours.ts + 1))
            self._release_case(cid)
        self._verdicts.clear()

    def _release_case(self, case_id: str) -> None:
        self._cases.pop(case_id, None)
        self._held.pop(case_id, None)

    # ---- orders ---------------------------------------------------------------------------
    def _serve(self, envelope, order, now: int) -> None:
        if isinstance(order, SnapshotOrder):
            self.desk.reply(envelope, order.order_id, self._snapshot(order.order_id))
            return
        if isinstance(order, Problem):            # a malformed order: rejected, logged
            entry = {"t_ms": now, "order_id": order.order_id, "console": None, "type": None,
                     "case_id": None, "unit_id": None, "callsign": None}
            problem, records = bad_order(order.code, order.detail), []   # as the live service
        else:
            entry, problem, records = self._judge(order, now)
        entry.update(result="accepted" if problem is None else "rejected", reason=problem,
                     code=reason_code(problem))
        self.log.append(entry)
        if problem is None:
            self._accepted(order, records, now)
            if isinstance(order, DispatchOrder):
                self._first_dispatch.setdefault(order.case_id, entry)
        self.desk.reply(envelope, order.order_id,
                        Ack(order_id=order.order_id, result=entry["result"], reason=problem,
                            ts=now))

    def _judge(self, order, now: int) -> tuple[dict, str | None, list]:
        """The live service's decision, plus what the debrief needs to know about it."""
        unit = self._unit(order.unit_id)
        entry = {"t_ms": now, "order_id": order.order_id, "console": order.console,
                 "type": type(order).__struct_config__.tag,
                 "case_id": getattr(order, "case_id", unit.case_id if unit else None),
                 "unit_id": order.unit_id, "callsign": unit.callsign if unit else None}
        if isinstance(order, DispatchOrder):
            entry.update(self._nearest(order))
        problem, records = decide(order, self._case, self._unit, now)
        if (problem is None and isinstance(order, DispatchOrder)
                and unit.unit_id not in self._units and self.situation.unit_stale(unit, now)):
            # The live service keeps no positions; the replayed picture does.
            problem, records = reason("unit_not_available", callsign=unit.callsign,
                                      status="stale"), []
        return entry, problem, records

    def _accepted(self, order, records: list, now: int) -> None:
        job = self._jobs.pop(order.unit_id, None)      # a recall stops the unit where it is
        for rec in records:
            if isinstance(rec, Unit) and job is not None:
                lon, lat = job.where(now)
                rec = msgspec.structs.replace(rec, lon=lon, lat=lat, speed=0.0)
            self._emit(rec, rec.ts)
        if isinstance(order, DispatchOrder):
            unit, case = self._units[order.unit_id], self._cases[order.case_id]
            _, secs = travel(unit, case)
            depart = unit.ts + TURNOUT_MS
            arrive = depart + round(secs * 1000)
            self._jobs[unit.unit_id] = _Job(order.order_id, case.case_id, unit.unit_id,
                                            (unit.lon, unit.lat), (case.lon, case.lat),
                                            depart, arrive, arrive + HANDLE_MS)

    def _nearest(self, order: DispatchOrder) -> dict:
        """The nearest available unit as the console suggests it (``situation.suggest``:
        shortest time to arrive, not stale) against the one chosen, at this moment."""
        out = dict.fromkeys(("nearest_unit_id", "nearest_callsign", "nearest_m",
                             "nearest_eta_s", "chosen_m", "chosen_eta_s", "nearest_chosen"))
        case, chosen = self._case(order.case_id), self._unit(order.unit_id)
        if case is None:
            return out
        if chosen is not None:
            out["chosen_m"], out["chosen_eta_s"] = travel(chosen, case)
        # Orders earlier in this pump are not in the situation yet: ask our records.
        free = [s for s in nearest_available(self.situation, case, len(self.situation.units))
                if self._unit(s.unit.unit_id).status == "available"]
        if free:
            best = free[0]
            out.update(nearest_unit_id=best.unit.unit_id, nearest_callsign=best.unit.callsign,
                       nearest_m=best.distance_m, nearest_eta_s=best.eta_s,
                       # the chosen one is free too, and as quick to arrive (a tie counts)
                       nearest_chosen=any(s.unit.unit_id == order.unit_id
                                          and s.eta_s <= best.eta_s for s in free))
        return out

    def _snapshot(self, order_id: str) -> SnapshotReply:
        cases = {**self.situation.cases, **self._cases}
        units = {**self.situation.units, **self._units}
        return SnapshotReply(order_id=order_id, src=self.src, seq=max(self.seq, 0),
                             cases=[c for _, c in sorted(cases.items())
                                    if c.status not in CLOSED_CASE_STATUSES],
                             units=[u for _, u in sorted(units.items())])

    # ---- the debrief ------------------------------------------------------------------------
    def debrief(self, now_ms: int) -> dict:
        """The exercise in figures at ``now_ms`` (the situation's now): per case, totals, the
        KPIs over the exercise's window and the log. See ``situation.debrief`` for the page.

        - cases: open at the start, or first seen open after it (``_notice_cases``);
        - dispatched: the trainee's first accepted dispatch of the case (the recorded day's
          own dispatches are not the trainee's);
        - within 5 min: that dispatch at most 5 minutes after the case appeared;
        - nearest: the chosen unit had the shortest time to arrive among the available,
          not-stale units at that moment (ties count as nearest);
        - overdue: the case missed a stage deadline — ``Situation.case_late`` (a record of it
          came after the deadline of the one before, while open) or it is open at ``now_ms``
          past its ``due_at``; ``overdue_at`` is that deadline, and ``late_at_start`` says it
          had passed before the exercise began (not the trainee's doing).
        """
        now = int(now_ms)
        start = self.started_ms if self.started_ms is not None else now
        st = self.situation
        rejected_by_case: dict[str, int] = {}
        for e in self.log:
            if e["result"] == "rejected" and e["case_id"] is not None:
                rejected_by_case[e["case_id"]] = rejected_by_case.get(e["case_id"], 0) + 1
        rows = []
        for cid, seen in self._seen.items():
            case = self._case(cid) or seen["first"]
            first = self._first_dispatch.get(cid)
            late = st.case_late.get(cid)
            if late is None and st.is_overdue(case, now):
                late = case.due_at
            row = {"case_id": cid, "title": case.title, "category": case.category,
                   "priority": case.priority, "district": case.district, "status": case.status,
                   "reported_at": case.reported_at, "appeared_at": seen["appeared_at"],
                   "open_at_start": seen["open_at_start"],
                   "dispatched_at": None, "dispatch_after_s": None, "within_5_min": False,
                   "unit_id": None, "callsign": None, "unit_m": None, "nearest_unit_id": None,
                   "nearest_callsign": None, "nearest_m": None, "nearest_chosen": None,
                   "overdue": late is not None, "overdue_at": late,
                   "late_at_start": late is not None and late <= start,
                   "rejected_orders": rejected_by_case.get(cid, 0)}
            if first is not None:
                after = first["t_ms"] - seen["appeared_at"]
                row.update(dispatched_at=first["t_ms"], dispatch_after_s=after / 1000,
                           within_5_min=after <= DISPATCH_TARGET_MS, unit_id=first["unit_id"],
                           callsign=first["callsign"], unit_m=first["chosen_m"],
                           nearest_unit_id=first["nearest_unit_id"],
                           nearest_callsign=first["nearest_callsign"],
                           nearest_m=first["nearest_m"], nearest_chosen=first["nearest_chosen"])
            rows.append(row)
        # What the trainee worked first, then what came in during the exercise, then what was
        # already open: a debrief walks through the trainee's decisions.
        def order(r):
            idle = r["dispatched_at"] is None and not r["rejected_orders"]
            return idle, idle and r["open_at_start"], r["appeared_at"], r["case_id"]
        rows.sort(key=order)
        dispatched = [r for r in rows if r["dispatched_at"] is not None]
        nearest = sum(1 for r in dispatched if r["nearest_chosen"])
        totals = {"cases": len(rows), "dispatched": len(dispatched),
                  "dispatched_within_5_min": sum(1 for r in dispatched if r["within_5_min"]),
                  "nearest_chosen": nearest,
                  "nearest_chosen_share": nearest / len(dispatched) if dispatched else None,
                  "overdue": sum(1 for r in rows if r["overdue"]),
                  "overdue_at_start": sum(1 for r in rows if r["late_at_start"]),
                  "orders": len(self.log),
                  "rejected_orders": sum(1 for e in self.log if e["result"] == "rejected")}
        k = window_kpis(st, start, now)
        kpis = {**dataclasses.asdict(k), **{f: getattr(k, f) for f in RATE_COLUMNS}}
        return {"console": self.console_id, "src": self.src, "started_ms": start, "now_ms": now,
                "cases": rows, "totals": totals, "kpis": kpis,
                "log": [dict(e) for e in self.log]}

    def status(self) -> dict:
        """For the headless status document."""
        return {"started_ms": self.started_ms, "orders": len(self.log),
                "rejected": sum(1 for e in self.log if e["result"] == "rejected"),
                "units": sorted(self._units), "cases": sorted(self._cases),
                "moving": len(self._jobs), "seq": self.seq, "desk": self.desk.status()}

    def close(self) -> None:
        self.desk.close()

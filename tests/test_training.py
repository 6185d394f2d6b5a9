"""Training mode: a trainee's console (a real DispatchClient in TRAINING mode) orders the
in-process training desk (a real inproc ROUTER) while the exercise replays a day, on a clock
the test moves by hand. The debrief's figures are worked out by hand in the comments.

Geometry: every unit stands due north of the cases on one meridian, so a distance is just
the metres north (``north(m)``) and a time to arrive is metres × 1.35 (detour) ÷ speed
(foot 1.3 m/s, vehicle 8 m/s, enforcement 6 m/s: ``situation.suggest``).
"""
from __future__ import annotations

import json

import msgspec
import pytest
import zmq

from feeds.batch import Batch
from feeds.dispatch_client import DispatchClient, LiveOrderRefused
from feeds.orders import reason_code
from feeds.receiver import wait_for
from feeds.recording import RecordingWriter, read_recording
from feeds.schema import Case, Unit, frames
from feeds.training import TrainingDesk
from situation.debrief import render_debrief, write_debrief_html
from situation.replay import Replay, ReplayClock
from situation.store import Situation
from situation.training import Exercise
from tests.pubhelp import record
from tests.scenario import MIN, T0, TYPES, Scenario

pytestmark = pytest.mark.timeout(60)

LON = 116.40
SEC = 1000


def north(metres: float) -> float:
    return 39.90 + metres / 111_000


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


class Day:
    """The recorded day, by hand: each record goes through ``Exercise.controls`` first and is
    held back when the trainee has its unit or case, exactly as ``Replay`` does."""

    def __init__(self, situation: Situation, exercise: Exercise):
        self.situation, self.exercise = situation, exercise
        self.seq = 0
        self.held = 0

    def send(self, topic: str, **fields) -> None:
        fields.setdefault("ts", self.situation.now_ms())
        rec = msgspec.convert(record(topic, src="day", seq=self.seq, **fields), TYPES[topic])
        self.seq += 1
        if self.exercise.controls(rec):
            self.held += 1
        else:
            self.situation.apply(Batch(records=[rec], messages=1, heard={"day"}))


class Trainee:
    """The trainee's console: a real DispatchClient in TRAINING mode, its events kept."""

    def __init__(self, desk: TrainingDesk, clock, ctx):
        self.client = DispatchClient(desk.endpoint, "trainee-1", mode="TRAINING",
                                     clock_ms=clock.now_ms, context=ctx)
        self.events: list[tuple] = []

    def poll(self) -> None:
        self.events += self.client.poll()

    def ack(self, oid: str):
        def got():
            self.poll()
            return [e[2] for e in self.events if e[0] == "ack" and e[1] == oid]
        assert wait_for(lambda: bool(got()), 5), f"no ack for {oid}"
        return got()[0]


# ---- the fixed scenario ----------------------------------------------------------------
# Start T0 = 09:30 (Beijing). The exercise starts at the first pump, at T0.
#   C-A  vending (1 h to resolve), p2, at north(0): reported 09:27, seen registered 09:28,
#        due (dispatch) 09:58 — open when the exercise starts: it appears at 09:30.
#   C-B  exposed garbage (4 h), p3, at north(5000): appears 09:31, due 10:31.
#   C-C  road collapse (1 h), p1, at north(0) (beside C-A): appears 09:34, due 09:49;
#        nobody is ever sent: overdue from 09:49.
#   U1 foot 东城-巡01 at north(130); U2 vehicle 东城-车02 at north(1600); U3 foot 东城-巡03 at
#   north(2400): the day's tracker reports each 5 s before every step (one a minute).
#   U4 enforcement 东城-执04 at north(6000) last reported 09:28: stale from 09:29.
# The trainee:
#   09:32 U2 → C-A  accepted. Nearest for C-A: U1 130 m, 130×1.35/1.3 = 135 s; U2 1600 m,
#         1600×1.35/8 = 270 s; U3 2400 m → 2492 s. U2 is not the nearest.
#         U2 sets off 09:33 (1 min turnout), arrives 09:33 + 270 s = 09:37:30, C-A on scene;
#         20 min later, 09:57:30, C-A resolved and U2 free.
#   09:33 U2 → C-B  refused unit_assigned (U2 is en route since 09:33)
#         U9 → C-B  refused unknown_unit
#         recall U1 refused unit_not_assigned
#         U4 → C-B  refused unit_not_available: stale
#   09:40 U3 → C-B  accepted. Available and fresh: U1 4870 m → 5057 s, U3 2600 m → 2700 s
#         (U2 on scene, U4 stale): U3 is the nearest. Sets off 09:41, arrives 09:41 + 45 min
#         = 10:26, C-B on scene.
STEP = MIN
UNITS = {"U1": dict(callsign="东城-巡01", kind="foot_patrol", lat=north(130)),
         "U2": dict(callsign="东城-车02", kind="vehicle", lat=north(1600)),
         "U3": dict(callsign="东城-巡03", kind="foot_patrol", lat=north(2400))}
CASES = {
    "C-A": dict(category="event.street_order.vending", priority=2, lat=north(0),
                reported_at=T0 - 3 * MIN, due_at=T0 + 28 * MIN,
                title='<script>alert("x")</script>占道经营'),
    "C-B": dict(category="event.city_appearance.exposed_garbage", priority=3, lat=north(5000),
                reported_at=T0 + MIN, due_at=T0 + 61 * MIN, title="暴露垃圾"),
    "C-C": dict(category="event.emergency.road_collapse", priority=1, lat=north(0),
                reported_at=T0 + 4 * MIN, due_at=T0 + 19 * MIN, title="路面塌陷"),
}
ORDERS = {   # minute → the trainee's orders then
    2: [("dispatch", dict(case_id="C-A", unit_id="U2"))],
    3: [("dispatch", dict(case_id="C-B", unit_id="U2")),
        ("dispatch", dict(case_id="C-B", unit_id="U9")),
        ("recall", dict(unit_id="U1")),
        ("dispatch", dict(case_id="C-B", unit_id="U4"))],
    10: [("dispatch", dict(case_id="C-B", unit_id="U3"))],
}


class Exercised:
    """The scenario, run minute by minute up to a time."""

    def __init__(self, ctx, name: str):
        self.sc = Scenario(T0 - 2 * MIN)
        self.clock, self.situation = self.sc.clock, self.sc.situation
        self.desk = TrainingDesk(f"inproc://training-{name}", ctx)
        self.ex = Exercise(self.situation, self.desk, console_id="trainee-1")
        self.day = Day(self.situation, self.ex)
        self.trainee = Trainee(self.desk, self.clock, ctx)
        self.day.send("case", case_id="C-A", lon=LON, **CASES["C-A"])
        self.day.send("unit", unit_id="U4", callsign="东城-执04", kind="enforcement",
                      lat=north(6000), lon=LON)
        self.acks: dict[str, object] = {}
        self.now = None

    def pump(self) -> None:
        self.situation.apply(Batch(records=self.ex.pump(self.clock.now_ms())))

    def run_to(self, minute: int) -> None:
        start = 0 if self.now is None else self.now + 1
        for m in range(start, minute + 1):
            t = T0 + m * STEP
            self.clock.set(t)
            for cid in ("C-B", "C-C"):
                if CASES[cid]["reported_at"] == t:
                    self.day.send("case", case_id=cid, lon=LON, **CASES[cid])
            for uid, fields in UNITS.items():
                self.day.send("unit", unit_id=uid, lon=LON, ts=t - 5 * SEC, **fields)
            sent = [self.trainee.client.send(kind, **f) for kind, f in ORDERS.get(m, [])]
            want = len(self.ex.log) + len(sent)
            if sent:
                assert self.desk.wait(5000)
            assert wait_for(lambda: (self.trainee.poll(), self.pump(),
                                     len(self.ex.log) == want)[2], 5), m
            for oid in sent:
                self.acks[oid] = self.trainee.ack(oid)
            self.now = m

    def close(self) -> None:
        self.trainee.client.close()
        self.ex.close()


@pytest.fixture
def run(ctx, request):
    r = Exercised(ctx, request.node.name)
    yield r
    r.close()


# ---- the guard --------------------------------------------------------------------------
def test_training_cannot_reach_a_live_endpoint(ctx, run):
    live = ctx.socket(zmq.ROUTER)
    live.setsockopt(zmq.LINGER, 0)
    port = live.bind_to_random_port("tcp://127.0.0.1")
    endpoint = f"tcp://127.0.0.1:{port}"
    try:
        with pytest.raises(LiveOrderRefused, match="live dispatch service"):
            DispatchClient(endpoint, "trainee-1", mode="TRAINING", context=ctx)
        with pytest.raises(ValueError, match="in-process only"):
            TrainingDesk(endpoint.replace(str(port), "*"), ctx)
        run.run_to(10)                     # the whole exercise's orders, answered
        assert len(run.ex.log) == 6 and len(run.acks) == 6
        # The live ROUTER heard nothing: the first message it ever gets is this marker.
        marker = ctx.socket(zmq.DEALER)
        marker.setsockopt(zmq.LINGER, 0)
        marker.connect(endpoint)
        marker.send(b"marker")
        assert live.poll(5000)
        assert live.recv_multipart()[1:] == [b"marker"]
        assert live.poll(0) == 0
        marker.close(0)
    finally:
        live.close(0)


# ---- orders -----------------------------------------------------------------------------
def test_refusals_in_the_live_service_words(run):
    run.run_to(3)
    expected = [
        ("dispatch", "U2", None, None),
        ("dispatch", "U2", "unit_assigned", "东城-车02 is already working case C-A (en_route)"),
        ("dispatch", "U9", "unknown_unit", "unit U9 is not known to the dispatch service"),
        ("recall", "U1", "unit_not_assigned",
         "东城-巡01 is available with no case to recall it from"),
        ("dispatch", "U4", "unit_not_available", "东城-执04 is stale, not available"),
    ]
    assert len(run.ex.log) == len(expected)
    for e, (kind, unit, code, words) in zip(run.ex.log, expected):
        assert (e["type"], e["unit_id"], e["code"]) == (kind, unit, code), e
        if code is None:
            assert e["result"] == "accepted" and e["reason"] is None
        else:
            assert e["result"] == "rejected" and f"{code}: {words} / " in e["reason"], e
    acks = {a.order_id: a for a in run.acks.values()}
    for e in run.ex.log:                                      # the console got the same
        ack = acks[e["order_id"]]
        assert (ack.result, ack.reason, ack.ts) == (e["result"], e["reason"], e["t_ms"])
    assert [e["t_ms"] for e in run.ex.log] == [T0 + 2 * MIN] + [T0 + 3 * MIN] * 4
    assert run.situation.cases["C-B"].status == "registered"   # nothing refused changed it


def test_same_order_id_twice_same_reply_one_action(ctx, run):
    run.run_to(1)
    raw = ctx.socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(run.desk.endpoint)
    payload = json.dumps({"v": 1, "type": "dispatch", "order_id": "dup-1", "console": "raw",
                          "ts": T0, "case_id": "C-B", "unit_id": "U1"}).encode()
    try:
        raw.send(payload)
        raw.send(payload)                                     # a resend
        assert run.desk.wait(5000)
        records = run.ex.pump(T0 + MIN)
        run.situation.apply(Batch(records=records))
        replies = []
        for _ in range(2):
            assert raw.poll(5000)
            replies.append(raw.recv())
        raw.send(payload)                                     # later still
        assert run.desk.wait(5000)
        assert run.ex.pump(T0 + MIN) == []                   # answered at the desk, no action
        assert raw.poll(5000)
        replies.append(raw.recv())
    finally:
        raw.close(0)
    assert replies[0] == replies[1] == replies[2]
    assert json.loads(replies[0])["result"] == "accepted"
    assert [e["order_id"] for e in run.ex.log] == ["dup-1"]
    assert [(type(r).__name__, r.status) for r in records] == [("Case", "dispatched"),
                                                              ("Unit", "dispatched")]
    assert run.desk.status()["duplicates"] == 2


def test_malformed_orders_are_refused_or_dropped_and_logged(ctx, run):
    run.run_to(1)
    raw = ctx.socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(run.desk.endpoint)
    try:
        raw.send(b"not json")                                 # nothing to answer: dropped
        raw.send(json.dumps({"v": 1, "type": "dispatch", "order_id": "bad-1", "console": "raw",
                             "ts": T0, "case_id": "C-B"}).encode())
        assert run.desk.wait(5000)
        assert wait_for(lambda: (run.ex.pump(T0 + MIN), raw.poll(0))[1], 5)
        reply = json.loads(raw.recv())
    finally:
        raw.close(0)
    assert (reply["result"], reason_code(reply["reason"])) == ("rejected", "bad_order")
    assert "missing_field" in reply["reason"] and "unit_id" in reply["reason"]
    assert [(e["order_id"], e["type"], e["code"]) for e in run.ex.log] == [
        ("bad-1", None, "bad_order")]
    assert run.desk.status()["dropped"] == {"not_json": 1}
    assert "?" in render_debrief(run.ex.debrief(T0 + MIN), "en")


# ---- units move on the clock --------------------------------------------------------------
def test_unit_sets_off_moves_and_arrives_on_the_controlled_clock(run):
    run.run_to(2)
    u2 = run.situation.units["U2"]
    assert (u2.status, u2.case_id, u2.src, u2.ts) == ("dispatched", "C-A", "training", T0 + 2 * MIN)
    a = run.situation.cases["C-A"]
    assert (a.status, a.unit_id, a.due_at) == ("dispatched", "U2", T0 + 2 * MIN + 60 * MIN)
    run.run_to(5)
    # Set off 09:33; at 09:35 120 s of 270 s are behind it: 1600 × (1 − 120/270) = 888.9 m
    # north of C-A, heading south at 8 m/s.
    u2 = run.situation.units["U2"]
    assert (u2.status, u2.ts, u2.course, u2.speed) == ("en_route", T0 + 5 * MIN, 180.0, 8.0)
    assert u2.lat == pytest.approx(north(1600 * (1 - 120 / 270)), abs=1e-6)
    assert run.day.held == 3                  # the day's U2 at 09:32:55 … 09:34:55
    run.run_to(8)
    u2, a = run.situation.units["U2"], run.situation.cases["C-A"]
    assert (u2.status, u2.lat, a.status) == ("on_scene", round(north(0), 6), "on_scene")
    assert a.ts == T0 + 7 * MIN + 30 * SEC      # dated when it arrived, not when pumped
    assert u2.ts == T0 + 8 * MIN                # and the unit still reports while there
    run.run_to(28)
    u2, a = run.situation.units["U2"], run.situation.cases["C-A"]
    assert (a.status, a.ts) == ("resolved", T0 + 27 * MIN + 30 * SEC)
    assert (u2.status, u2.case_id) == ("available", None)
    # U2 is the day's again: its next recorded report is taken.
    assert not run.ex.controls(msgspec.structs.replace(u2, src="day"))
    run.run_to(29)
    assert run.situation.units["U2"].src == "day"
    assert not any(run.situation.unit_stale(u) for u in run.situation.units.values()
                   if u.unit_id != "U4")


# ---- the debrief --------------------------------------------------------------------------
def test_debrief_figures_worked_out_by_hand(run):
    run.run_to(60)                                            # 10:30
    doc = run.ex.debrief(run.clock.now_ms())
    assert doc["started_ms"] == T0 and doc["now_ms"] == T0 + 60 * MIN
    rows = {r["case_id"]: r for r in doc["cases"]}
    # The trainee's cases first, as they appeared; then the rest.
    assert [r["case_id"] for r in doc["cases"]] == ["C-A", "C-B", "C-C"]
    a, b, c = rows["C-A"], rows["C-B"], rows["C-C"]
    # C-A: open at the start (appears 09:30); U2 at 09:32, 2 min → within 5; 1600 m against
    # U1's 130 m: not the nearest; resolved 09:57:30, never late (dispatch due 09:58,
    # resolve due 10:32).
    assert (a["appeared_at"], a["open_at_start"], a["dispatched_at"]) == (T0, True, T0 + 2 * MIN)
    assert (a["dispatch_after_s"], a["within_5_min"]) == (120, True)
    assert (a["unit_id"], a["callsign"], a["nearest_unit_id"], a["nearest_chosen"]) == (
        "U2", "东城-车02", "U1", False)
    assert a["unit_m"] == pytest.approx(1600) and a["nearest_m"] == pytest.approx(130)
    assert (a["overdue"], a["status"], a["rejected_orders"]) == (False, "resolved", 0)
    # C-B: appears 09:31; U3 at 09:40, 9 min → not within 5; U3 is the nearest (2600 m);
    # on scene 10:26; due 13:40 now. Three orders naming it were refused (U2, U9, U4).
    assert (b["appeared_at"], b["open_at_start"], b["dispatched_at"]) == (
        T0 + MIN, False, T0 + 10 * MIN)
    assert (b["dispatch_after_s"], b["within_5_min"]) == (540, False)
    assert (b["unit_id"], b["nearest_unit_id"], b["nearest_chosen"]) == ("U3", "U3", True)
    assert b["unit_m"] == pytest.approx(2600) and b["nearest_m"] == pytest.approx(2600)
    assert (b["overdue"], b["status"], b["rejected_orders"]) == (False, "on_scene", 3)
    # C-C: appears 09:34, never dispatched, due 09:49: overdue from 09:49 (open past it now).
    assert (c["appeared_at"], c["dispatched_at"], c["unit_id"]) == (T0 + 4 * MIN, None, None)
    assert (c["overdue"], c["overdue_at"], c["late_at_start"]) == (True, T0 + 19 * MIN, False)
    assert doc["totals"] == {"cases": 3, "dispatched": 2, "dispatched_within_5_min": 1,
                             "nearest_chosen": 1, "nearest_chosen_share": 0.5, "overdue": 1,
                             "overdue_at_start": 0, "orders": 6, "rejected_orders": 4}
    # KPIs over (09:30, 10:30] (situation.supervision's definitions):
    #   open: C-A (resolved is still open), C-B, C-C = 3; overdue: C-C = 1
    #   dispatched: C-A (registered 09:28 → 09:32, 4 min: fast), C-B (09:31 → 09:40, 9 min)
    #   on scene: C-A 09:32 → 09:37:30 = 5.5 min, C-B 09:40 → 10:26 = 46 min: sum 51.5
    #   due to close: nothing closed + C-C (registered, past due) = 1; closed 0
    k = doc["kpis"]
    assert {f: k[f] for f in ("start", "end", "open", "overdue", "dispatched", "dispatched_fast",
                              "on_scene", "scene_min_sum", "due_to_close", "closed",
                              "closed_on_time", "reworked")} == {
        "start": T0, "end": T0 + 60 * MIN, "open": 3, "overdue": 1, "dispatched": 2,
        "dispatched_fast": 1, "on_scene": 2, "scene_min_sum": 51.5, "due_to_close": 1,
        "closed": 0, "closed_on_time": 0, "reworked": 0}
    assert (k["dispatch_fast_share"], k["dispatch_to_scene_min"], k["close_rate"],
            k["on_time_rate"], k["rework_rate"]) == (0.5, 25.75, 0.0, 0.0, 0.0)
    # the log: every action, with the nearest unit at that moment
    first = run.ex.log[0]
    assert {f: first[f] for f in ("t_ms", "type", "case_id", "unit_id", "result",
                                  "nearest_unit_id")} == {
        "t_ms": T0 + 2 * MIN, "type": "dispatch", "case_id": "C-A", "unit_id": "U2",
        "result": "accepted", "nearest_unit_id": "U1"}
    assert first["nearest_eta_s"] == pytest.approx(135) and first["chosen_eta_s"] == \
        pytest.approx(270)
    assert [e["result"] for e in run.ex.log] == ["accepted"] + ["rejected"] * 4 + ["accepted"]
    json.dumps(doc)                                           # plain data, for a status file


def test_debrief_page_escapes_citizen_text_and_shows_the_figures(run, tmp_path):
    run.run_to(60)
    doc = run.ex.debrief(run.clock.now_ms())
    path = tmp_path / "debrief.html"
    write_debrief_html(doc, path, lang="en")
    page = path.read_text(encoding="utf-8")
    assert "<script" not in page                              # no script at all
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;占道经营" in page
    for text in ("Training debrief", "trainee-1", "1 / 2 (50%)", "东城-车02 1,600 m",
                 "东城-巡01 130 m", "东城-巡03 2,600 m", "09:49:00",      # C-C's missed deadline
                 "09:34:00", "2.0 min", "9.0 min", "25.8", "unit_not_available",
                 "stale, not available"):
        assert text in page, text
    zh = render_debrief(doc, "zh")
    assert "培训讲评" in zh and "&lt;script&gt;" in zh and "<script" not in zh
    assert [p.name for p in tmp_path.iterdir()] == ["debrief.html"]   # no temp file left
    with pytest.raises(ValueError, match="lang"):
        render_debrief(doc, "fr")
    with pytest.raises(OSError, match="cannot write the debrief to .*no-such-dir"):
        write_debrief_html(doc, tmp_path / "no-such-dir" / "d.html")


# ---- with a real replay: the day's records of the trainee's units and cases held back -------
S = T0
#   Recording S … S+40 min. R1 vending at north(0), R2 vending at north(-3000), registered at
#   S. Tracker every 10 s: V1 foot at north(130), V3 foot at north(-2870) (130 m from R2),
#   V2 vehicle at north(1600). The day itself: V2 → R1 at S+5 (dispatched), on scene S+15,
#   R1 resolved S+25, closed S+30, V2 free S+25; R2 resolved S+3, closed S+6 (by others).
#   The trainee at S+1:05: V1 → R1 and V3 → R2 (both 130 m: 135 s). Each sets off S+2:05,
#   arrives S+4:20, resolves S+24:20 and is handed back. Steps of 5 s.


def _recording(path) -> None:
    seq = iter(range(10_000))
    msgs = []

    def put(topic: str, ts: int, **fields):
        rec = msgspec.convert(record(topic, src="day", seq=0, ts=ts, **fields), TYPES[topic])
        msgs.append((ts, rec))

    where = {"R1": north(0), "R2": north(-3000)}
    for cid, lat in where.items():
        put("case", S, case_id=cid, lat=lat, lon=LON, reported_at=S, due_at=S + 30 * MIN)
    put("case", S + 5 * MIN, case_id="R1", status="dispatched", unit_id="V2", lon=LON,
        lat=north(0), reported_at=S, due_at=S + 65 * MIN)
    for cid, status, at in (("R1", "on_scene", 15), ("R1", "resolved", 25), ("R1", "closed", 30),
                            ("R2", "resolved", 3), ("R2", "closed", 6)):
        put("case", S + at * MIN, case_id=cid, status=status, lat=where[cid], lon=LON,
            reported_at=S, due_at=None, unit_id="V2" if cid == "R1" else None)
    for t in range(S, S + 40 * MIN + 1, 10 * SEC):
        put("unit", t, unit_id="V1", callsign="西城-巡01", lat=north(130), lon=LON)
        put("unit", t, unit_id="V3", callsign="西城-巡03", lat=north(-2870), lon=LON)
        busy = S + 5 * MIN <= t < S + 25 * MIN
        put("unit", t, unit_id="V2", callsign="西城-车02", kind="vehicle", lat=north(1600),
            lon=LON, status="on_scene" if busy else "available", case_id="R1" if busy else None)
    w = RecordingWriter(path)
    try:
        for ts, rec in sorted(msgs, key=lambda m: m[0]):
            w.write(frames(msgspec.structs.replace(rec, seq=next(seq))), log_ms=ts)
    finally:
        w.close()


def test_replay_holds_back_the_days_records_of_what_the_trainee_took(ctx, tmp_path):
    _recording(tmp_path / "day.mcap")
    clock = ReplayClock(S, 1.0)
    clock.pause(True)
    situation = Situation(clock)
    desk = TrainingDesk("inproc://training-replay", ctx)
    ex = Exercise(situation, desk, console_id="trainee-1")
    replay = Replay(read_recording(tmp_path / "day.mcap"), situation, exercise=ex)
    trainee = Trainee(desk, clock, ctx)
    try:
        def at(t: int) -> None:
            clock.set(t)
            replay.advance()

        for t in range(S, S + MIN + 1, 5 * SEC):
            at(t)
        clock.set(S + MIN + 5 * SEC)                  # the trainee's orders, at S+1:05
        oids = [trainee.client.send("dispatch", case_id="R1", unit_id="V1"),
                trainee.client.send("dispatch", case_id="R2", unit_id="V3")]
        assert desk.wait(5000)
        assert wait_for(lambda: (trainee.poll(), replay.advance(), len(ex.log) == 2)[2], 5)
        assert [trainee.ack(o).result for o in oids] == ["accepted", "accepted"]
        for t in range(S + MIN + 10 * SEC, S + 10 * MIN + 1, 5 * SEC):
            at(t)
        # S+10: the day sent V2 to R1 at S+5 and says R2 was closed at S+6; the picture shows
        # the trainee's: V1 and V3 on scene since S+4:20, R1 and R2 on scene.
        v1, r1, r2 = situation.units["V1"], situation.cases["R1"], situation.cases["R2"]
        assert (v1.src, v1.status, v1.case_id) == ("training", "on_scene", "R1")
        assert (r1.src, r1.status, r1.unit_id, r1.ts) == ("training", "on_scene", "V1",
                                                         S + 4 * MIN + 20 * SEC)
        assert (r2.src, r2.status, r2.unit_id) == ("training", "on_scene", "V3")
        assert situation.units["V2"].src == "day"           # not the trainee's: the day's
        for t in range(S + 10 * MIN + 5 * SEC, S + 40 * MIN + 1, 5 * SEC):
            at(t)
        # Held back: V1's and V3's reports from S+1:10 to S+24:20 (140 each: the pump at
        # S+24:20 hands them back after that step's records were applied), R1's dispatched
        # (S+5) and on scene (S+15), R2's resolved (S+3) and closed (S+6): 140×2 + 4 = 284.
        assert replay.held_back == 284
        # R1: the trainee resolved it at S+24:20; the day's own resolved (S+25, newer) and
        # closed (S+30) then flowed again.
        r1 = situation.cases["R1"]
        assert (r1.src, r1.status, r1.ts) == ("day", "closed", S + 30 * MIN)
        assert situation.case_stages["R1"]["resolved"] == S + 24 * MIN + 20 * SEC
        # R2: the day closed it while the trainee worked it; its verdict follows the
        # trainee's resolution, so the case is not left open.
        r2 = situation.cases["R2"]
        assert (r2.src, r2.status, r2.ts) == ("training", "closed", S + 24 * MIN + 20 * SEC + 1)
        assert situation.units["V1"].src == situation.units["V3"].src == "day"
        assert ex.status()["units"] == [] and ex.status()["cases"] == []
        with pytest.raises(ValueError, match="forward only"):
            replay.seek(S)
    finally:
        trainee.client.close()
        ex.close()

"""Replay: a recorded stream replayed on a controlled clock equals the live console at the same
moments; seeking anywhere equals a straight run; the command line's replay and its bad input;
the classroom feed."""
from __future__ import annotations

import json
import threading

import pytest

import main
from feeds.batch import Batch
from feeds.demo_day import write_demo_day
from feeds.receiver import Receiver, wait_for
from feeds.recording import RecordingWriter, read_recording
from feeds.replay import REPLAY_SRC, Classroom
from feeds.schema import frames
from feeds.simulator import DemoCity
from situation import replay as replay_mod
from situation.clock import ManualClock
from situation.replay import Replay, ReplayClock
from situation.store import Situation
from tests.scenario import T0


def picture(s: Situation) -> dict:
    """What a commander sees, and the counts behind the feed-health panel."""
    return {"cases": dict(s.cases), "units": dict(s.units), "sensors": dict(s.sensors),
            "accepted": s.records_accepted, "rejected": dict(s.rejected), "gaps": s.gaps,
            "stages": {k: dict(v) for k, v in s.case_stages.items()},
            "overdue": sorted(c.case_id for c in s.cases.values() if s.is_overdue(c))}


@pytest.fixture(scope="module")
def demo_day(tmp_path_factory):
    path = tmp_path_factory.mktemp("rec") / "demo.mcap"
    write_demo_day(path, hours=0.5, seed=4, start_ms=T0)
    return path


def replay_on(path, speed=1.0, wall=None):
    rec = read_recording(path)
    clock = ReplayClock(rec.start_ms, speed, **({"wall_s": wall} if wall else {}))
    if wall is None:
        clock.pause(True)
    return Replay(rec, Situation(clock))


def straight(path, t_ms: int) -> dict:
    """A fresh replay run forward in 5 s steps to ``t_ms``: the reference for seeks."""
    rp = replay_on(path)
    t = rp.start_ms
    rp.advance()                        # what was received at the very first moment
    while t < t_ms:
        t = min(t + 5_000, t_ms)
        rp.clock.set(t)
        rp.advance()
    return picture(rp.situation)


def test_a_replay_at_10x_equals_the_live_console_at_the_same_moments(tmp_path, publisher):
    """A live console records what it receives over real sockets; the replay, driven at 10×
    by a wall clock the test moves, shows the same picture at the same moments."""
    city = DemoCity(seed=7, start_ms=T0)
    live_clock = ManualClock(T0)
    live = Situation(live_clock)
    path = tmp_path / "live.mcap"
    writer = RecordingWriter(path)
    rx = Receiver([publisher.endpoint],
                  tap=lambda _ep, fr, ts: writer.write(fr, live_clock.now_ms(), ts)).start()
    publisher.wait_subscriber()
    moments, sent, taken = {}, 0, 0
    for k in range(1, 301):                              # five minutes of the city
        t = T0 + k * 1_000
        live_clock.set(t)
        messages = [frames(recs) for _topic, recs in city.step(t) if recs]
        messages.append(frames(city.heartbeat(t)))
        if k == 100:                                     # what a console also sees: bad input
            messages += [[b"case", b"{not json"], [b"unit", b"a", b"b"]]
        for m in messages:
            publisher.send_frames(m)
        sent += len(messages)
        while taken < sent:
            assert wait_for(lambda: rx.backlog() or rx.messages >= sent, 5)
            batch, heard = rx.drain()
            taken += batch.messages
            live.apply(batch, heard)
            if taken < sent:
                assert wait_for(lambda: rx.messages >= sent, 5)
        if k % 60 == 0:
            moments[t] = picture(live)
    rx.stop()
    writer.close()

    wall = [0.0]
    rp = replay_on(path, speed=10, wall=lambda: wall[0])
    seen = {}
    while rp.clock.now_ms() < T0 + 300_000:
        wall[0] += 0.05                                  # 50 ms of wall: 500 ms of replay
        rp.advance()
        if rp.clock.now_ms() in moments:
            seen[rp.clock.now_ms()] = picture(rp.situation)
    assert seen.keys() == moments.keys()
    for t, expected in moments.items():
        assert seen[t] == expected, t
    assert seen[T0 + 300_000]["rejected"] == {"not_json": 1, "bad_frames": 1}


def test_seeking_forward_and_back_equals_a_straight_run(demo_day, monkeypatch):
    monkeypatch.setattr(replay_mod, "KEYFRAME_EVERY", 1_500)   # many keyframes in 30 min
    rp = replay_on(demo_day)
    start, end = rp.start_ms, rp.end_ms
    points = [start + (end - start) * f // 100 for f in (80, 20, 55, 54, 100, 0, 37)]
    for t in points:
        rp.seek(t)
        assert rp.clock.now_ms() == t
        assert picture(rp.situation) == straight(demo_day, t), t
    # The seek reports everything held before or after, so every panel redraws.
    before = set(rp.situation.cases)
    change = rp.seek(end)
    assert before | set(rp.situation.cases) <= change.cases and change.sources


def test_index_all_takes_every_keyframe_and_leaves_the_picture(demo_day, monkeypatch):
    monkeypatch.setattr(replay_mod, "KEYFRAME_EVERY", 2_000)
    rp = replay_on(demo_day)
    t = rp.start_ms + 600_000
    rp.seek(t)
    here = picture(rp.situation)
    rp.index_all()
    assert picture(rp.situation) == here and rp.clock.now_ms() == t
    assert len(rp._keyframes) == len(rp.recording) // 2_000 + 1


def test_keyframes_taken_ahead_make_a_far_jump_equal_a_straight_run(demo_day, monkeypatch):
    monkeypatch.setattr(replay_mod, "KEYFRAME_EVERY", 1_500)
    rp = replay_on(demo_day)
    here = picture(rp.situation)
    steps = 0
    while rp.index_step(700):                  # as the wall does, a little at a time
        steps += 1
    assert steps > 1 and rp.pos == 0 and picture(rp.situation) == here
    assert sorted(rp._keyframes) == list(range(0, len(rp.recording), 1_500))
    t = rp.start_ms + (rp.end_ms - rp.start_ms) * 9 // 10
    rp.seek(t)
    assert picture(rp.situation) == straight(demo_day, t)


def test_transport_play_pause_step_loop_and_end(demo_day):
    rp = replay_on(demo_day)
    t0 = rp.start_ms
    rp.step(60_000)
    assert rp.clock.now_ms() == t0 + 60_000
    rp.step(-120_000)                                   # clamped to the recording
    assert rp.clock.now_ms() == t0
    rp.set_loop(t0 + 60_000, t0 + 120_000)
    rp.clock.set(t0 + 130_000)
    rp.advance()                                        # past the loop's end: back to A
    assert rp.clock.now_ms() == t0 + 60_000
    assert picture(rp.situation) == straight(demo_day, t0 + 60_000)
    rp.clear_loop()
    rp.clock.set(rp.end_ms + 5_000)
    rp.clock.pause(False)
    rp.advance()                                        # the end: stops there, paused
    assert rp.ended and rp.paused and rp.clock.now_ms() == rp.end_ms
    with pytest.raises(ValueError):
        rp.set_speed(0)
    with pytest.raises(ValueError):
        rp.set_loop(t0, t0 + 10)


def test_a_replay_follows_its_own_clock_for_staleness_and_deadlines(demo_day):
    """One clock: units go stale and cases overdue by the replay's time, not the wall's."""
    rp = replay_on(demo_day)
    rp.seek(rp.start_ms + 600_000)
    s = rp.situation
    assert s.now_ms() == rp.start_ms + 600_000
    assert not any(s.unit_stale(u) for u in s.units.values() if u.status != "off_duty")
    assert all(s.source_up(src) for src in s.sources)     # link health on replay time too
    rp.pause()
    assert s.now_ms() == rp.start_ms + 600_000            # paused: time stands still


# ---- the command line ----------------------------------------------------------------------
def run_main(capsys, *argv) -> tuple[int, str]:
    try:
        code = main.main(list(argv))
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def test_headless_replay_writes_the_status(demo_day, tmp_path, capsys):
    out = tmp_path / "status.json"
    code, err = run_main(capsys, "--replay", str(demo_day), "--speed", "60", "--headless",
                         "--run-for", "1", "--status-out", str(out),
                         "--start", str(T0 + 600_000))
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["mode"] == "REPLAY"
    assert doc["replay"]["file"] == str(demo_day)
    # Started at 10 min in; a second of wall at 60× is about a minute more.
    assert T0 + 630_000 < doc["clock_ms"] < T0 + 900_000
    assert doc["open_cases"] > 0 and doc["units"] == 120


def truncated_copy(src, tmp_path, fraction: float):
    data = src.read_bytes()
    path = tmp_path / f"cut-{fraction}.mcap"
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def test_a_truncated_recording_replays_what_it_holds(demo_day, tmp_path, capsys):
    cut = truncated_copy(demo_day, tmp_path, 0.6)
    out = tmp_path / "status.json"
    code, err = run_main(capsys, "--replay", str(cut), "--speed", "64", "--headless",
                         "--run-for", "0.5", "--status-out", str(out))
    assert code == 0
    assert "warning" in err and "cut short" in err
    doc = json.loads(out.read_text())
    assert doc["replay"]["problems"] and doc["records_accepted"] > 0
    full = read_recording(demo_day)
    part = read_recording(cut)
    assert 0 < len(part) < len(full)
    assert list(part.payloads) == full.payloads[: len(part)]   # what replays is exactly what was there


@pytest.mark.parametrize("make, expected", [
    (lambda d, tmp: tmp / "missing.mcap", "no such file"),
    (lambda d, tmp: tmp, "is a directory"),
    (lambda d, tmp: _write(tmp / "notes.txt", b"shift notes, not a recording"), "not an MCAP"),
    (lambda d, tmp: _write(tmp / "junk.mcap", b"\x89MCAP0\r\n" + b"\xff" * 300), "no readable"),
    (lambda d, tmp: _write(tmp / "empty.mcap", b""), "empty"),
    (lambda d, tmp: truncated_copy(d, tmp, 0.001), "no readable"),
])
def test_a_recording_that_cannot_be_replayed_is_one_line_and_exit_2(demo_day, tmp_path, capsys,
                                                                    make, expected):
    path = make(demo_day, tmp_path)
    code, err = run_main(capsys, "--replay", str(path), "--headless", "--run-for", "1")
    assert code == 2
    assert expected in err and len(err.strip().splitlines()) == 1


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("argv, expected", [
    (["--speed", "0"], "greater than zero"),
    (["--speed", "-2"], "greater than zero"),
    (["--start", "2020-01-01T08:00"], "outside the recording"),
    (["--demo"], "no network"),
    (["--dispatch", "tcp://127.0.0.1:5557"], "no orders"),
    (["--record-dir", "/tmp"], "not a replay"),
])
def test_bad_replay_options_are_one_line_and_exit_2(demo_day, capsys, argv, expected):
    code, err = run_main(capsys, "--replay", str(demo_day), "--headless", "--run-for", "1",
                         *argv)
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1


def test_training_options_need_a_replay(capsys):
    code, err = run_main(capsys, "--training", "--headless", "--run-for", "1")
    assert code == 2 and "--replay" in err


def test_out_of_order_messages_and_unknown_encodings_replay_the_rest(tmp_path, capsys):
    from tests.pubhelp import write_foreign_mcap
    path = tmp_path / "odd.mcap"
    write_foreign_mcap(path, [
        ("hb", "json", T0 + t, json.dumps({"v": 1, "src": "gw", "seq": i, "ts": T0 + t}).encode())
        for i, t in enumerate((3_000, 1_000, 2_000, 4_000))] + [("camera", "cdr", T0, b"\x00")])
    rec = read_recording(path)
    assert list(rec.log_ms) == [T0 + 1_000, T0 + 2_000, T0 + 3_000, T0 + 4_000]
    assert any("out of time order" in p for p in rec.problems)
    assert any("camera (cdr)" in p for p in rec.problems)
    out = tmp_path / "status.json"
    code, err = run_main(capsys, "--replay", str(path), "--speed", "64", "--headless",
                         "--run-for", "0.3", "--status-out", str(out))
    assert code == 0 and "out of time order" in err and "cdr" in err
    assert json.loads(out.read_text())["sources"]["gw"]["records"] == 4


# ---- the classroom ---------------------------------------------------------------------------
def test_the_classroom_republishes_the_recording_as_it_was(demo_day, ctx):
    rec = read_recording(demo_day)
    room = Classroom(rec, "tcp://127.0.0.1:*", speed=1_000, start_ms=rec.start_ms + 600_000,
                     context=ctx)
    got: list[list[bytes]] = []
    rx = Receiver([room.endpoint], context=ctx,
                  tap=lambda _ep, fr, _ts: got.append(list(fr))).start()
    stop = threading.Event()
    thread = threading.Thread(target=lambda: room.wait_for_console(stop) and room.run(stop))
    thread.start()
    first = rec.index_at(rec.start_ms + 600_000 - 1)
    recorded = [rec.frames(i) for i in range(first, len(rec))]

    def played():
        return [f for f in list(got) if b'"src":"%s"' % REPLAY_SRC.encode() not in f[1]]
    try:
        thread.join(60)
        assert not thread.is_alive()
        assert wait_for(lambda: len(played()) >= len(recorded), 10)
    finally:
        stop.set()
        thread.join(5)
        rx.stop()
        room.close()
    played = played()
    assert played == recorded                       # every message, in order, byte for byte
    # The console joined mid-day: the state before the start came first, from ``replay``.
    s = Situation(ManualClock(rec.end_ms))
    batch = Batch()
    from feeds.decode import MessageDecoder
    dec = MessageDecoder()
    for f in got:
        batch.records.extend(dec.decode(f).records)
    s.apply(batch)
    straight_end = replay_on(demo_day)
    straight_end.seek(rec.end_ms)
    assert set(s.cases) == set(straight_end.situation.cases)
    assert s.units.keys() == straight_end.situation.units.keys()


@pytest.fixture
def ctx():
    import zmq
    return zmq.Context.instance()


# ---- training from the command line -------------------------------------------------------
def test_a_training_session_orders_only_its_in_process_service(demo_day, tmp_path, capsys):
    from ui.session import TRAINING_DISPATCH, build_session
    args = main.build_parser().parse_args(["--replay", str(demo_day), "--training"])
    main.check_replay_options(args)
    session = build_session(args)
    try:
        assert session.mode == "TRAINING"
        assert session.client.endpoint == TRAINING_DISPATCH.rstrip("/")
        assert session.client.endpoint.startswith("inproc://") and session.client.mode == "TRAINING"
        assert session.replay.exercise is session.exercise
    finally:
        session.stop()
    out, debrief = tmp_path / "status.json", tmp_path / "debrief.html"
    code, err = run_main(capsys, "--replay", str(demo_day), "--training", "--speed", "60",
                         "--headless", "--run-for", "0.5", "--status-out", str(out),
                         "--debrief-out", str(debrief))
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["mode"] == "TRAINING" and "training" in doc
    assert debrief.read_text().lstrip().lower().startswith("<!doctype html")


def test_the_console_records_what_it_receives_and_the_recording_replays(tmp_path, capsys):
    rec_dir, out = tmp_path / "rec", tmp_path / "status.json"
    code, err = run_main(capsys, "--demo", "--speed", "10", "--start", str(T0), "--headless",
                         "--run-for", "1.5", "--status-out", str(out), "--record-dir",
                         str(rec_dir), "--record-max-mb", "50")
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["recording"]["problem"] is None and doc["recording"]["messages"] > 0
    files = sorted(rec_dir.glob("citywall-*.mcap"))
    assert len(files) == 1
    rec = read_recording(files[0])
    # The status is the last before the file is finished: a few more may reach the file.
    assert rec.problems == [] and len(rec) >= doc["recording"]["messages"]
    # Receive times are on the console's clock: the demo city's, from its start.
    assert T0 <= rec.start_ms and rec.end_ms <= doc["clock_ms"] + 1_000
    rp = replay_on(files[0])
    rp.seek(rp.end_ms)
    assert rp.situation.records_accepted >= doc["records_accepted"] > 0
    assert len(rp.situation.cases) >= doc["cases"] and len(rp.situation.units) == doc["units"]


def test_a_long_recording_keeps_at_most_max_keyframes(demo_day, monkeypatch):
    monkeypatch.setattr(replay_mod, "KEYFRAME_EVERY", 100)
    monkeypatch.setattr(replay_mod, "MAX_KEYFRAMES", 8)
    rp = replay_on(demo_day)
    rp.index_all()
    assert len(rp._keyframes) <= 8 + 1 and rp.keyframe_every > 100
    t = rp.start_ms + (rp.end_ms - rp.start_ms) * 2 // 3
    rp.seek(t)
    assert picture(rp.situation) == straight(demo_day, t)


def test_a_headless_replay_without_run_for_stops_at_the_recordings_end(demo_day, tmp_path,
                                                                      capsys):
    out = tmp_path / "status.json"
    code, err = run_main(capsys, "--replay", str(demo_day), "--speed", "4000", "--headless",
                         "--status-out", str(out))
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["replay"]["ended"] and doc["clock_ms"] == doc["replay"]["end_ms"]
    assert doc["replay"]["position"] == doc["replay"]["messages"]

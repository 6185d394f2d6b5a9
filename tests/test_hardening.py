"""Nothing a sender does blinds, stalls or crashes a console, a recorder or the dispatch
service's learning — and a console never looks healthy while it is not.

Every message of issue #12 goes over a real socket (a real XPUB on tcp loopback) to the real
process, between good records; the good records are all held, the process keeps running, and
each refusal is counted by its reason, exactly.
"""
from __future__ import annotations

import ctypes
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq

from feeds.faults import Faults
from feeds.receiver import MAX_RESTARTS, THREAD_NAME, Receiver, wait_for
from feeds.recording import RecordingError, read_recording
from situation.clock import ManualClock
from situation.store import Situation
from tests.pubhelp import TestPublisher, drain_until, record

ROOT = Path(__file__).resolve().parent.parent


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def raw(obj) -> bytes:
    """JSON as Python writes it: lone surrogates become \\ud800 escapes, as an attacker's
    publisher would send them."""
    return json.dumps(obj).encode()


def poison(ts: int) -> list[tuple[str, list[bytes], str, int]]:
    """(name, frames, the reason it is refused for, how many refusals it makes)."""
    deep_metrics = (b'{"v":1,"src":"evil","seq":1,"ts":%d,"id":"s9","kind":"air","lat":39.9,'
                    b'"lon":116.4,"metrics":' % ts + b"[" * 500 + b"1" + b"]" * 500 + b"}")
    return [
        ("100,000 deep", [b"case", b"[" * 100_000 + b"]" * 100_000], "too_large", 1),
        ("30,000 deep", [b"case", b"[" * 30_000 + b"]" * 30_000], "too_deep", 1),
        ("500-deep metrics", [b"sensor.air", deep_metrics], "too_deep", 1),
        ("lone surrogate id with a list field",
         [b"case", raw(record("case", src="evil", seq=2, ts=ts, case_id="\ud800",
                              flags=["escalated"]))], "bad_text", 1),
        ("lone surrogate id with a dict field",
         [b"sensor.air", raw(record("sensor.air", src="evil", seq=3, ts=ts, id="\udfff",
                                    metrics={"pm25": 1.0}))], "bad_text", 1),
        ("hb whose src is a lone surrogate",
         [b"hb", raw({"v": 1, "src": "\ud800", "seq": 1, "ts": ts})], "bad_text", 1),
        ("control characters in an id",
         [b"unit", raw(record("unit", src="evil", seq=4, ts=ts, unit_id="U\x00\x1b[2J"))],
         "bad_text", 1),
        ("a terminal escape (C1 CSI) in a citizen's description",
         [b"case", raw(record("case", src="evil", seq=11, ts=ts, case_id="CSI",
                              description="a\x9b[2J"))], "bad_text", 1),
        ("1,000 flags on one case",
         [b"case", raw(record("case", src="evil", seq=12, ts=ts, case_id="FLAGS",
                              flags=["escalated"] * 1000))], "out_of_range", 1),
        ("ts = 2**62", [b"case", raw(record("case", src="evil", seq=5, ts=2**62,
                                            case_id="FUTURE"))], "out_of_range", 1),
        ("a year in the 146 millions",
         [b"unit", raw(record("unit", src="evil", seq=6, ts=4_607_000_000_000_000_000,
                              unit_id="U-LATE"))], "out_of_range", 1),
        ("before 2000", [b"case", raw(record("case", src="evil", seq=7, ts=1,
                                             case_id="OLD"))], "out_of_range", 1),
        ("ts 1e400", [b"hb", b'{"v":1,"src":"evil","seq":8,"ts":1e400}'], "not_finite", 1),
        ("metric 1e400", [b"sensor.air", b'{"v":1,"src":"evil","seq":9,"ts":%d,"id":"s8",'
                          b'"kind":"air","lat":39.9,"lon":116.4,"metrics":{"pm25":1e400}}' % ts],
         "not_finite", 1),
        ("2 MB of integers", [b"sensor.air", b"[" + b",".join([b"1"] * 1_000_000) + b"]"],
         "too_large", 1),
        ("a batch with a 5,000-deep record and a surrogate between good ones",
         [b"unit", b"[" + raw(record("unit", src="good", seq=0, ts=ts, unit_id="U-B1"))
          + b"," + b"[" * 5000 + b"]" * 5000 + b","
          + raw(record("unit", src="evil", seq=10, ts=ts, callsign="\ud800"))
          + b"," + raw(record("unit", src="good", seq=0, ts=ts, unit_id="U-B2")) + b"]"],
         "too_deep+bad_text", 2),
    ]


def good_records(ts: int, n: int, tag: str) -> list[tuple[str, dict]]:
    out = []
    for i in range(n):
        out.append(("case", record("case", src="good", seq=0, ts=ts, case_id=f"C-{tag}-{i}")))
        out.append(("unit", record("unit", src="good", seq=0, ts=ts, unit_id=f"U-{tag}-{i}")))
        out.append(("sensor.air", record("sensor.air", src="good", seq=0, ts=ts,
                                         id=f"S-{tag}-{i}")))
    return out


def expected_refusals(messages) -> dict[str, int]:
    out: dict[str, int] = {}
    for _, _, reason, _ in messages:
        for r in reason.split("+"):
            out[r] = out.get(r, 0) + 1
    return out


def send_all(pub: TestPublisher, ts: int) -> tuple[dict[str, int], int]:
    """Good records around every poison message; (refusals expected, good records sent)."""
    messages = poison(ts)
    seq = 0
    good = 0
    for i, (_, frames, _, _) in enumerate(messages):
        for topic, rec in good_records(ts, 2, f"before{i}"):
            pub.send(topic, {**rec, "seq": seq})
            seq += 1
            good += 1
        pub.send_frames(frames)
    for topic, rec in good_records(ts, 2, "after"):
        pub.send(topic, {**rec, "seq": seq})
        seq += 1
        good += 1
    return expected_refusals(messages), good + 2     # the batch's two good units


def test_every_poison_message_over_a_socket_to_the_headless_console(tmp_path):
    ts = now_ms()
    pub = TestPublisher(zmq.Context())
    status = tmp_path / "status.json"
    open311 = tmp_path / "open311.json"
    proc = subprocess.Popen([sys.executable, "main.py", "--headless", "--feed", pub.endpoint,
                             "--run-for", "60", "--status-every", "0.2", "--status-out",
                             str(status), "--export-open311", str(open311)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pub.wait_subscriber(timeout_s=20)
        refusals, good = send_all(pub, ts)
        pub.send("hb", {"v": 1, "src": "fence", "seq": 0, "ts": ts})

        def done():
            try:
                doc = json.loads(status.read_text())
            except (OSError, ValueError):
                return False
            return "fence" in doc["sources"]
        assert wait_for(done, 30, step_s=0.1)
        assert proc.poll() is None                               # still running
        proc.send_signal(signal.SIGINT)                         # as Ctrl-C: the final status
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        pub.close()
    assert proc.returncode == 0, err
    doc = json.loads(status.read_text())
    assert doc["faults"] == {}
    assert doc["rejected"] == refusals
    assert doc["records_accepted"] == good + 1                    # and the fence
    n_cases = len(poison(ts)) * 2 + 2
    assert (doc["cases"], doc["units"], doc["sensors"]) == (n_cases, n_cases + 2, n_cases)
    # Every refusal is counted under a source that can be written and shown.
    assert set(doc["sources"]) == {"good", "evil", "?", "fence"}
    assert doc["sources"]["good"]["rejected"] == 0
    requests = json.loads(open311.read_text())
    assert len(requests) == n_cases and all(r["requested_datetime"] for r in requests)


def test_a_frame_over_the_message_limit_is_dropped_and_the_feed_goes_on():
    """A 9 MB frame (over the default 8 MiB): ZeroMQ drops it and the connection; the console
    reconnects and takes what comes after. Not decoded, so it costs no memory or time."""
    ts = now_ms()
    pub = TestPublisher(zmq.Context())
    receiver = Receiver([pub.endpoint], now_ms=now_ms).start()
    situation = Situation(ManualClock(ts))
    try:
        pub.wait_subscriber()
        pub.send("case", record("case", src="good", seq=0, ts=ts, case_id="BEFORE"))
        assert drain_until(receiver, situation, lambda: "BEFORE" in situation.cases)
        pub.send_frames([b"case", b"[" + b"1," * (9 * 2**19) + b"1]"])
        assert until_heard(pub, receiver, situation,       # once it has joined again
                           record("case", src="good", seq=2, ts=ts, case_id="AFTER"))
        assert receiver.alive() and not receiver.faults
    finally:
        receiver.stop()
        pub.close()


def test_the_recorder_keeps_recording_after_every_poison_message(tmp_path):
    ts = now_ms()
    out = tmp_path / "poison.mcap"
    pub = TestPublisher(zmq.Context())
    proc = subprocess.Popen([sys.executable, "-m", "feeds.record", "--feed", pub.endpoint,
                             "--out", str(out), "--run-for", "60"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pub.wait_subscriber(timeout_s=20)
        send_all(pub, ts)
        pub.send("hb", {"v": 1, "src": "fence", "seq": 0, "ts": ts})
        sent = len(poison(ts)) * 7 + 6 + 1

        def flushed():
            try:
                return len(read_recording(out)) == sent
            except RecordingError:
                return False
        assert wait_for(flushed, 30, step_s=0.1)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        pub.close()
    assert proc.returncode == 0, stderr
    assert stdout.startswith(f"recorded {sent} messages")
    assert "fault" not in stderr


def test_the_dispatch_service_goes_on_learning_after_poison(tmp_path):
    from feeds.dispatch_client import DispatchClient
    from feeds.dispatch_service import DispatchService
    ts = now_ms()
    pub = TestPublisher(zmq.Context())
    ctx = zmq.Context()
    service = DispatchService([pub.endpoint], "tcp://127.0.0.1:*", "tcp://127.0.0.1:*",
                              tmp_path / "d.db", context=ctx).start()
    client = DispatchClient(service.dispatch_endpoint, "test-console", context=ctx)
    try:
        pub.wait_subscriber(timeout_s=10)
        send_all(pub, ts)
        pub.send("case", record("case", src="good", seq=99, ts=ts, case_id="LAST"))
        pub.send("unit", record("unit", src="good", seq=100, ts=ts, unit_id="U-LAST"))
        assert wait_for(lambda: service.case("LAST") is not None
                        and service.unit("U-LAST") is not None, 10)
        oid = client.send("dispatch", case_id="LAST", unit_id="U-LAST")
        acks = []
        assert wait_for(lambda: acks.extend(e[2] for e in client.poll(20) if e[0] == "ack"
                                            and e[1] == oid) or acks, 10)
        assert acks[0].result == "accepted", acks[0].reason
    finally:
        client.close()
        service.stop()
        pub.close()
        ctx.term()


def until_heard(pub, receiver, situation, rec: dict, timeout_s: float = 15) -> bool:
    """Send ``rec`` every 100 ms until the situation holds it: a socket that joins again after
    a drop is not announced to a non-verbose XPUB when the old one had not yet left."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pub.send("case", rec)
        if drain_until(receiver, situation, lambda: rec["case_id"] in situation.cases, 0.1):
            return True
    return False


# ---- a console never looks healthy while it is not ------------------------------------------
def kill_thread(thread: threading.Thread) -> None:
    """Raise SystemExit inside a running thread, as an unforeseen failure would stop it."""
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                                      ctypes.py_object(SystemExit))
    assert done == 1
    thread.join(5)
    assert not thread.is_alive()


def test_a_killed_receiver_thread_is_restarted_and_said(publisher):
    ts = 1_700_000_000_000
    faults = Faults()
    receiver = Receiver([publisher.endpoint], faults=faults).start()
    situation = Situation(ManualClock(ts), faults=faults)
    try:
        publisher.wait_subscriber()
        publisher.send("case", record("case", seq=0, ts=ts, case_id="A"))
        assert drain_until(receiver, situation, lambda: "A" in situation.cases)
        kill_thread(receiver._thread)
        assert not faults
        receiver.drain()                                   # the next drain sees it, at once
        fault = faults.snapshot()[THREAD_NAME]
        assert fault["count"] == 1 and fault["recovered"] and "SystemExit" in fault["error"]
        assert receiver.alive()
        assert until_heard(publisher, receiver, situation,  # once the new socket joined
                           record("case", seq=1, ts=ts, case_id="B"))
    finally:
        receiver.stop()


def test_the_header_says_a_fault_in_red_on_every_screen(qtbot):
    from widgets import theme
    from widgets.header import Header
    faults = Faults()
    situation = Situation(ManualClock(1_700_000_000_000), faults=faults)
    headers = {lang: Header(situation, lang, "LIVE") for lang in ("zh", "en")}
    for h in headers.values():
        qtbot.addWidget(h)
        h.refresh()
        assert h.fault.isHidden() and not h.subtitle.isHidden()
    faults.record(THREAD_NAME, "SystemExit: restarted")
    faults.record(THREAD_NAME, "SystemExit: restarted")
    for lang, h in headers.items():
        h.refresh()
        assert not h.fault.isHidden() and h.subtitle.isHidden()
        assert theme.ALARM in h.fault.styleSheet() and theme.ALARM in h.styleSheet()
    assert "数据接收线程停止" in headers["zh"].fault.text() and "2 次" in headers["zh"].fault.text()
    assert "feed receiver stopped ×2" in headers["en"].fault.text()
    faults.record("feed-receiver", "gave up", recovered=False)
    headers["en"].refresh()
    assert "stopped, not recovered" in headers["en"].fault.text()


def test_a_headless_console_whose_receiver_keeps_dying_exits_non_zero(tmp_path, publisher):
    """Killed more often than it may restart: the console stops, says why, exits 1."""
    import main
    status = tmp_path / "status.json"
    result = {}

    def run():
        result["rc"] = main.main(["--headless", "--feed", publisher.endpoint, "--run-for", "60",
                                  "--status-out", str(status)])
    runner = threading.Thread(target=run)
    runner.start()
    killed: list[threading.Thread] = []          # the thread objects, not their reusable ids

    def next_receiver_thread():
        return next((t for t in threading.enumerate() if t.name == THREAD_NAME
                     and t.is_alive() and not any(t is k for k in killed)), None)
    try:
        for _ in range(MAX_RESTARTS + 1):
            assert wait_for(lambda: next_receiver_thread() is not None, 10)
            thread = next_receiver_thread()
            killed.append(thread)
            kill_thread(thread)
        runner.join(30)
    finally:
        if runner.is_alive():                     # never leave a console running
            for t in threading.enumerate():
                if t.name == THREAD_NAME and t.is_alive():
                    kill_thread(t)
            runner.join(30)
        assert not runner.is_alive()
    assert result["rc"] == 1
    doc = json.loads(status.read_text())
    fault = doc["faults"][THREAD_NAME]
    assert fault["recovered"] is False and fault["count"] == MAX_RESTARTS + 1


def test_a_batch_the_situation_cannot_take_is_a_fault_and_the_next_is_taken(publisher):
    from ui.session import Session
    faults = Faults()
    situation = Situation(ManualClock(1_700_000_000_000), faults=faults)
    receiver = Receiver([publisher.endpoint], faults=faults).start()
    session = Session(situation.clock, situation, [receiver], "LIVE", faults=faults)
    real_apply = situation.apply
    calls = []

    def failing_once(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return real_apply(batch)
    situation.apply = failing_once
    try:
        publisher.wait_subscriber()
        session.drain()
        assert faults.snapshot()["situation"]["error"] == "RuntimeError: a bug"
        publisher.send("case", record("case", seq=0, case_id="A"))
        assert wait_for(lambda: (session.drain(), "A" in situation.cases)[1], 5)
        assert session.status()["faults"]["situation"]["count"] == 1
    finally:
        receiver.stop()


# ---- time is judged by the clock that runs the picture -----------------------------------------
def test_a_record_further_ahead_than_the_tolerance_is_refused(publisher):
    clock = ManualClock(1_800_000_000_000)
    receiver = Receiver([publisher.endpoint], now_ms=clock.now_ms, future_ms=600_000).start()
    situation = Situation(clock)
    try:
        publisher.wait_subscriber()
        publisher.send("case", record("case", seq=0, ts=clock.now_ms() + 599_000, case_id="NEAR"))
        publisher.send("case", record("case", seq=1, ts=clock.now_ms() + 601_000, case_id="FAR"))
        publisher.send("case", record("case", seq=2, ts=clock.now_ms(), case_id="REP",
                                      reported_at=clock.now_ms() + 3_600_000))
        publisher.send("case", record("case", seq=3, ts=clock.now_ms(), case_id="DUE",
                                      due_at=clock.now_ms() + 400 * 86_400_000))
        assert drain_until(receiver, situation,
                           lambda: situation.rejected.get("out_of_range") == 3)
        assert set(situation.cases) == {"NEAR"}
    finally:
        receiver.stop()



def test_a_large_batch_of_valid_records_takes_the_fast_path_whole():
    """7,000 valid cases in one 8 MB-class message — more commas than a batch may have items —
    are all kept; a batch whose records are refused in a row costs little and is counted."""
    from feeds.decode import MAX_BAD_IN_A_ROW, MessageDecoder
    ts = 1_800_000_000_000
    cases = [record("case", src="big", seq=i, ts=ts, case_id=f"C{i}",
                    description="逗号，很多, commas, " * 20) for i in range(7_000)]
    payload = raw(cases)
    assert payload.count(b",") > 100_000 and len(payload) > 64 * 1024
    out = MessageDecoder(now_ms=lambda: ts).decode([b"case", payload])
    assert len(out.records) == 7_000 and not out.rejects
    hopeless = b"[" + b",".join([b'{"p":"x"}'] * 50_000) + b"]"
    out = MessageDecoder().decode([b"case", hopeless])
    assert sum(r.count for r in out.rejects) == 50_000 and not out.records
    assert len(out.rejects) == MAX_BAD_IN_A_ROW + 1             # judged one by one, then given up


def test_a_receiver_that_falls_behind_says_so(publisher, monkeypatch):
    """More arrives than the console can judge: the queue never runs dry, and after
    BEHIND_S the wall is told it shows the city late (a decoder slowed down stands in for a
    flood; the refusals it makes are handed over while the flood goes on)."""
    import feeds.receiver as rx
    monkeypatch.setattr(rx, "BEHIND_S", 0.3)
    faults = Faults()
    receiver = Receiver([publisher.endpoint], faults=faults).start()
    slow = receiver._decoder.decode

    def decode(frames, now_ms=None):
        time.sleep(0.005)
        return slow(frames, now_ms)
    receiver._decoder.decode = decode
    try:
        publisher.wait_subscriber()
        for i in range(400):
            publisher.send_frames([b"case", b"not json"])
        handed = []
        assert wait_for(lambda: (handed.append(sum(receiver.drain()[0].rejects.values())),
                                 "feed-receiver behind" in faults.snapshot())[1], 10)
        assert sum(handed) < 400 and sum(handed) > 0       # refusals came while it was behind
    finally:
        receiver.stop()


def test_the_recorder_keeps_its_channels_bounded(tmp_path):
    """70,000 distinct topics and 300 topics of 100 KB: the file keeps at most MAX_CHANNELS
    channels, the rest on the raw channel, and reads back every message byte for byte."""
    from feeds.recording import MAX_CHANNELS, RecordingWriter
    path = tmp_path / "topics.mcap"
    w = RecordingWriter(path)
    sent = [[b"sensor.k%d" % i, b'{"v":1}'] for i in range(70_000)]
    sent += [[b"t" * 100_000, b"{}"] for _ in range(300)]
    for i, frames in enumerate(sent):
        w.write(frames, 1_800_000_000_000 + i)
    w.close()
    r = read_recording(path)
    assert len(r) == len(sent) and len(r.topics) <= MAX_CHANNELS
    assert [r.frames(i) for i in (0, 69_999, 70_299)] == [sent[0], sent[69_999], sent[70_299]]

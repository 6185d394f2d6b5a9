"""Headless end to end: a test publisher → ``main.py --headless`` → the status counts exact;
bad command lines exit 2 with one line."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import zmq

from tests.pubhelp import TestPublisher, record

ROOT = Path(__file__).resolve().parent.parent


def run_main(*args, timeout=60):
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_headless_status_counts_exact(tmp_path):
    # Records of today: the console forgets closed cases older than two days by its clock, and
    # units, sensors and open cases nothing was heard of for long (situation.limits).
    ts = time.time_ns() // 1_000_000
    pub = TestPublisher(zmq.Context())
    silent = TestPublisher(zmq.Context())       # an endpoint with no one publishing on it
    status = tmp_path / "status.json"
    proc = subprocess.Popen([sys.executable, "main.py", "--headless", "--feed", pub.endpoint,
                             "--feed", silent.endpoint, "--run-for", "4",
                             "--status-out", str(status)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pub.wait_subscriber(timeout_s=20)
        seq = 0
        for i in range(30):                                  # 30 cases, 10 of them closed
            pub.send("case", record("case", src="cases", seq=seq, ts=ts, case_id=f"C{i}",
                                    status="closed" if i % 3 == 0 else "registered"))
            seq += 1
        units = [record("unit", src="cases", seq=seq + i, ts=ts, unit_id=f"U{i}")
                 for i in range(12)]
        pub.send("unit", units)                              # one batch of 12
        seq += 12 + 5                                        # a gap: 5 records never sent
        pub.send("sensor.air", [record("sensor.air", src="cases", seq=seq + i, ts=ts,
                                       id=f"S{i % 7}") for i in range(20)])         # 20 readings of 7 sensors
        seq += 20
        pub.send("case", record("case", src="cases", seq=seq, lat=95.0))     # rejected
        pub.send_frames([b"unit", b"not json"])                              # rejected
        pub.send("hb", record("hb", src="cases", seq=seq + 1))
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        pub.close()
        silent.close()
    assert proc.returncode == 0, err
    doc = json.loads(status.read_text())
    assert doc["records_accepted"] == 30 + 12 + 20 + 1
    assert (doc["cases"], doc["open_cases"], doc["units"], doc["sensors"]) == (30, 20, 12, 7)
    assert doc["rejected"] == {"out_of_range": 1, "not_json": 1}
    assert doc["rejected_total"] == 2
    assert doc["gaps"] == 1
    src = doc["sources"]["cases"]
    assert (src["records"], src["gaps"], src["rejected"], src["last_seq"]) == (63, 1, 1, seq + 1)
    assert doc["endpoints"][silent.endpoint]["up"] is False
    # Headless, a start is the session then the first records; no wall, no map (issue #18)
    up = doc["startup"]
    assert set(up) == {"session_s", "first_records_s"}, up
    assert 0 < up["session_s"] < up["first_records_s"], up


def test_malformed_endpoint_is_one_line_and_exit_2():
    out = run_main("--headless", "--feed", "tcp//nowhere", "--run-for", "1")
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1
    assert "tcp//nowhere" in out.stderr


def test_bad_option_values_exit_2():
    for args in (["--run-for", "-3"], ["--speed", "0", "--demo"], ["--lang", "fr"],
                 ["--no-such-option"]):
        out = run_main("--headless", *args)
        assert out.returncode == 2, args
        assert len(out.stderr.strip().splitlines()) == 1, (args, out.stderr)


def test_endpoint_without_publisher_runs_and_shows_down(tmp_path):
    status = tmp_path / "s.json"
    out = run_main("--headless", "--feed", "tcp://127.0.0.1:1", "--run-for", "1.5",
                   "--status-out", str(status))
    assert out.returncode == 0, out.stderr
    doc = json.loads(status.read_text())
    assert doc["endpoints"] == {"tcp://127.0.0.1:1": {"up": False, "auth_failed": 0}}
    assert doc["records_accepted"] == 0


def test_demo_port_in_use_exit_2():
    ctx = zmq.Context()
    holder = ctx.socket(zmq.PUB)
    port = holder.bind_to_random_port("tcp://127.0.0.1")
    try:
        out = run_main("--headless", "--demo", "--demo-feed", f"tcp://127.0.0.1:{port}",
                       "--run-for", "1")
    finally:
        holder.close(0)
        ctx.term()
    assert out.returncode == 2
    assert str(port) in out.stderr

"""A centre end to end: a real broker process, a real publisher and several real headless
consoles, every socket over CURVE on loopback. Every console holds exactly what was published;
consoles started after the publisher has sent 2,000 cases hold them all from the broker's
state; a district wall holds only its district; a key the broker does not trust gets nothing;
the broker's metrics parse and equal its status file."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import zmq

from feeds.districts import by_adcode, random_points_in
from feeds.keys import load_key, new_key
from feeds.receiver import wait_for
from feeds.security import connect_as
from tests.pubhelp import free_port, record

ROOT = Path(__file__).resolve().parents[1]
NOW = lambda: time.time_ns() // 1_000_000        # noqa: E731
INSIDE = "110101"                                 # the district wall's (东城区)



def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@pytest.fixture
def site(tmp_path):
    keys = tmp_path / "keys"
    for name in ("broker", "pub", "wall-1", "wall-2", "wall-3", "wall-d", "stranger"):
        new_key(name, keys)
    walls, pubs = tmp_path / "trust-walls", tmp_path / "trust-publishers"
    walls.mkdir()
    pubs.mkdir()
    for name in ("wall-1", "wall-2", "wall-3", "wall-d"):
        (walls / f"{name}.key").write_bytes((keys / f"{name}.key").read_bytes())
    (pubs / "pub.key").write_bytes((keys / "pub.key").read_bytes())
    ports = {k: free_port() for k in ("in", "out", "state", "metrics")}
    ep = {k: f"tcp://127.0.0.1:{p}" for k, p in ports.items() if k != "metrics"}
    procs: list[subprocess.Popen] = []
    env = dict(os.environ, PYTHONUNBUFFERED="1")

    class Site:
        dir = tmp_path
        endpoints = ep
        metrics_port = ports["metrics"]
        broker_status = tmp_path / "broker.json"

        @staticmethod
        def broker() -> subprocess.Popen:
            p = subprocess.Popen(
                [sys.executable, "-m", "feeds.broker", "--in", ep["in"], "--out", ep["out"],
                 "--state", ep["state"], "--key", str(keys / "broker.key_secret"),
                 "--trust", str(walls), "--in-trust", str(pubs), "--status-out",
                 str(Site.broker_status), "--status-every", "0.2", "--metrics-port",
                 str(ports["metrics"]), "--run-for", "90"],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            procs.append(p)
            assert p.stdout.readline().startswith("broker ready"), p.stderr.read()
            return p

        @staticmethod
        def console(name: str, *more: str) -> tuple[subprocess.Popen, Path]:
            status = tmp_path / f"{name}.json"
            p = subprocess.Popen(
                [sys.executable, "main.py", "--headless", "--key",
                 str(keys / f"{name}.key_secret"), "--feed", ep["out"], "--server-key",
                 str(keys / "broker.key"), "--state", ep["state"], "--run-for", "60",
                 "--status-out", str(status), "--status-every", "0.2", *more],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            procs.append(p)
            return p, status

        @staticmethod
        def publisher() -> "Publisher":
            return Publisher(keys / "pub.key_secret", keys / "broker.key", ep["in"])
    yield Site
    stop_all(procs)


def stop_all(procs: list[subprocess.Popen]) -> None:
    """Ask each to stop (SIGINT: their final status is written), then make sure."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


class Publisher:
    """A third-party-style publisher: it connects to the broker's --in with its own key."""

    def __init__(self, secret: Path, broker_public: Path, endpoint: str):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.XPUB)        # XPUB: it sees the broker subscribe
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 0)
        connect_as(self.sock, load_key(secret, secret=True), load_key(broker_public))
        self.sock.connect(endpoint)
        assert self.sock.poll(10_000), "the broker never subscribed"
        self.sock.recv()
        self.seq = 0
        self.truth = {"case": {}, "unit": {}, "sensor": {}}

    def send(self, topic: str, many: list[dict]) -> None:
        recs = []
        for fields in many:
            rec = record(topic, src="city", seq=self.seq, ts=NOW(), **fields)
            self.seq += 1
            recs.append(rec)
            kind = "sensor" if topic.startswith("sensor.") else topic
            self.truth[kind][rec.get("case_id") or rec.get("unit_id") or rec["id"]] = rec
        self.sock.send_multipart([topic.encode(), json.dumps(recs).encode()])

    def heartbeat(self) -> None:
        self.sock.send_multipart([b"hb", json.dumps(record("hb", src="city", seq=self.seq,
                                                           ts=NOW())).encode()])
        self.seq += 1

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


def place(n: int, district: str, seed: int) -> np.ndarray:
    return random_points_in(by_adcode()[district], n, np.random.default_rng(seed))


def wait_status(path: Path, ok, timeout_s: float = 30.0) -> dict:
    doc = None

    def check():
        nonlocal doc
        doc = read_json(path)
        return doc is not None and ok(doc)
    assert wait_for(check, timeout_s, 0.1), json.dumps(doc)[:2000] if doc else "no status"
    return doc


def test_a_centre_of_walls_behind_one_broker_over_curve(site):
    site.broker()
    early, early_status = site.console("wall-1")
    pub = site.publisher()
    # The early console is subscribed before anything is published (its join is done).
    wait_status(early_status, lambda d: bool(d.get("state_joins")))
    inside, outside = place(600, INSIDE, 1), place(1400, "110108", 2)
    points = np.concatenate([inside, outside])
    for i in range(0, 2000, 100):
        pub.send("case", [dict(case_id=f"C{j:05d}", lon=float(points[j][0]),
                               lat=float(points[j][1]), district=None)
                          for j in range(i, i + 100)])
    pub.send("unit", [dict(unit_id=f"U{j}", lon=float(points[j * 5][0]),
                           lat=float(points[j * 5][1])) for j in range(300)])
    pub.send("sensor.air", [dict(id=f"S{j}", lon=float(points[j * 3][0]),
                                 lat=float(points[j * 3][1]), metrics={"pm25": float(j)})
                            for j in range(500)])
    pub.heartbeat()
    broker_doc = wait_status(site.broker_status,
                             lambda d: d["state"]["cases"] == 2000 and d["publishers"] == 1)

    # Late joiners: two walls and a district wall, after the 2,000 cases were sent.
    wall_metrics = free_port()
    late = [site.console("wall-2", "--metrics-port", str(wall_metrics)), site.console("wall-3")]
    district, district_status = site.console("wall-d", "--districts", INSIDE)
    stranger, stranger_status = site.console("stranger")

    def whole(d):
        return (d["open_cases"], d["units"], d["sensors"]) == (2000, 300, 500)
    for _proc, status in late:
        doc = wait_status(status, whole)
        join = doc["state_joins"][0]
        assert join["outcome"] == "joined" and join["records"] == 2800
        # Whole at once: the state came in one reply, within a second of asking for it.
        assert join["seconds"] <= 1.0, join
    # The wall's own metrics say how it joined, as its status does.
    from prometheus_client.parser import text_string_to_metric_families
    text = urllib.request.urlopen(f"http://127.0.0.1:{wall_metrics}/metrics",
                                  timeout=5).read().decode()
    joins = [s for f in text_string_to_metric_families(text) for s in f.samples
             if s.name == "citywall_state_join_seconds"]
    assert [(s.labels["endpoint"], s.labels["outcome"]) for s in joins] == [
        (site.endpoints["out"], "joined")]
    # The live feed follows: a case closes, a unit moves on; every console agrees.
    pub.send("case", [dict(case_id="C00001", status="closed",
                           lon=float(points[1][0]), lat=float(points[1][1]))])
    pub.send("unit", [dict(unit_id="U7", status="en_route", lon=float(points[35][0]),
                           lat=float(points[35][1]))])
    pub.heartbeat()
    last_seq = pub.seq - 1
    for status in [early_status] + [s for _, s in late]:
        doc = wait_status(status, lambda d: d["sources"].get("city", {}).get(
            "last_seq") == last_seq and d["open_cases"] == 1999)
        src = doc["sources"]["city"]
        assert (src["gaps"], src["missed"], src["restarts"]) == (0, 0, 0)
        assert (doc["units"], doc["sensors"]) == (300, 500)
        assert doc["security"]["encrypted"] is True

    # The district wall: only what lies in its district, the rest counted, not refused.
    in_cases = sum(1 for j in range(2000) if j < 600 and j != 1)
    in_units = sum(1 for j in range(300) if j * 5 < 600)
    in_sensors = sum(1 for j in range(500) if j * 3 < 600)
    doc = wait_status(district_status, lambda d: d["sources"].get("city", {}).get(
        "last_seq") == last_seq)
    assert (doc["open_cases"], doc["units"], doc["sensors"]) == (in_cases, in_units,
                                                                 in_sensors)
    assert doc["rejected_total"] == 0 and doc["scope"]["districts"] == [INSIDE]

    # A key the broker does not trust: no feed, no state, and both sides say so.
    doc = wait_status(stranger_status, lambda d: d["endpoints"] and all(
        e["auth_failed"] for e in d["endpoints"].values()))
    assert doc["cases"] == 0
    broker_doc = wait_status(site.broker_status, lambda d: d["auth_refused"]["out"])
    assert broker_doc["subscribers"] == 4 and broker_doc["input_gaps"] == 0

    # The broker's metrics parse and say what its status file says.
    pub.close()                    # quiet, so the two can be compared
    time.sleep(0.5)

    def agree():
        st = read_json(site.broker_status)
        text = urllib.request.urlopen(
            f"http://127.0.0.1:{site.metrics_port}/metrics", timeout=5).read().decode()
        got = {s.name: s.value for f in text_string_to_metric_families(text)
               for s in f.samples}
        return st is not None and (
            got.get("citywall_broker_state_records_total") == st["state_records"]
            and got.get("citywall_broker_forwarded_frames_total") == st["forwarded_frames"]
            and got.get("citywall_broker_state_cases") == st["state"]["cases"]
            and got.get("citywall_broker_state_requests_total") == st["state_requests"]
            and got.get("citywall_broker_subscribers") == st["subscribers"])
    assert wait_for(agree, 10, 0.2)


def test_chained_and_redundant_brokers_over_curve_each_record_once_and_no_spoofed_src(
        tmp_path):
    """A city broker that checks each publisher's src against its key, a district broker
    chained to it, and a wall that takes both (redundancy across the chain): every record
    once, nothing under a src its sender's key may not use."""
    keys = tmp_path / "keys"
    for name in ("city", "district", "pub", "spoofer", "wall"):
        new_key(name, keys)
    trust = {}
    for folder, names in (("city-walls", ("wall", "district")), ("district-walls", ("wall",)),
                          ("publishers", ("pub", "spoofer"))):
        trust[folder] = tmp_path / folder
        trust[folder].mkdir()
        for name in names:
            (trust[folder] / f"{name}.key").write_bytes((keys / f"{name}.key").read_bytes())
    (tmp_path / "publishers.toml").write_text(
        '[publisher.pub]\nsrc = ["city"]\n[publisher.spoofer]\nsrc = ["spoofer"]\n')
    ep = {k: f"tcp://127.0.0.1:{free_port()}" for k in ("in", "out", "state", "d_out",
                                                        "d_state")}
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    procs = []

    def start(*argv, module=("-m", "feeds.broker")):
        p = subprocess.Popen([sys.executable, *module, *argv], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(p)
        return p
    try:
        city_status, district_status = tmp_path / "city.json", tmp_path / "district.json"
        city = start("--in", ep["in"], "--out", ep["out"], "--state", ep["state"],
                     "--key", str(keys / "city.key_secret"), "--trust", str(trust["city-walls"]),
                     "--in-trust", str(trust["publishers"]), "--publishers",
                     str(tmp_path / "publishers.toml"), "--status-out", str(city_status),
                     "--status-every", "0.2", "--run-for", "90")
        assert city.stdout.readline().startswith("broker ready"), city.stderr.read()
        pub = Publisher(keys / "pub.key_secret", keys / "city.key", ep["in"])
        spoofer = Publisher(keys / "spoofer.key_secret", keys / "city.key", ep["in"])
        for i in range(0, 1000, 100):
            pub.send("case", [dict(case_id=f"C{j}") for j in range(i, i + 100)])
        pub.send("unit", [dict(unit_id=f"U{j}") for j in range(50)])
        spoofer.seq = 10_000
        spoofer.send("case", [dict(case_id="FAKE1", status="closed")])    # as "city": refused
        spoofer.truth["case"].clear()
        spoofer.sock.send_multipart([b"case", json.dumps([
            record("case", src="spoofer", seq=0, ts=NOW(), case_id="OWN1"),
            record("case", src="city", seq=99_999, ts=NOW(), case_id="FAKE2")]).encode()])
        spoofer.sock.send_multipart([b"case", json.dumps(
            record("case", src="spoofer", seq=1, ts=NOW(), case_id="OWN2")).encode()])
        wait_status(city_status, lambda d: d["state"]["cases"] == 1001)

        district = start("--upstream", ep["out"], "--server-key", str(keys / "city.key"),
                         "--upstream-state", ep["state"], "--out", ep["d_out"], "--state",
                         ep["d_state"], "--key", str(keys / "district.key_secret"), "--trust",
                         str(trust["district-walls"]), "--status-out", str(district_status),
                         "--status-every", "0.2", "--run-for", "90")
        assert district.stdout.readline().startswith("broker ready"), district.stderr.read()
        wait_status(district_status, lambda d: d["state_ready"] and d["state"]["cases"] == 1001)

        wall_status = tmp_path / "wall.json"
        start("--headless", "--key", str(keys / "wall.key_secret"),
              "--feed", ep["out"], "--server-key", str(keys / "city.key"), "--state", ep["state"],
              "--feed", ep["d_out"], "--server-key", str(keys / "district.key"),
              "--state", ep["d_state"], "--run-for", "60", "--status-out", str(wall_status),
              "--status-every", "0.2", module=("main.py",))
        wait_status(wall_status, lambda d: len(d["state_joins"]) == 2)
        for i in range(200):
            pub.send("sensor.air", [dict(id=f"S{i % 13}", metrics={"pm25": float(i)})])
        pub.send("case", [dict(case_id="C5", status="closed")])
        pub.heartbeat()
        last = pub.seq - 1
        doc = wait_status(wall_status, lambda d: d["sources"].get("city", {}).get(
            "last_seq") == last and d["duplicates"] >= 202)     # both brokers' copies came
        assert all(j["outcome"] == "joined" and j["records"] == 1051 for j in doc["state_joins"])
        assert (doc["open_cases"], doc["units"], doc["sensors"]) == (1000 - 1 + 1, 50, 13)
        src = doc["sources"]["city"]
        assert (src["gaps"], src["missed"], src["restarts"]) == (0, 0, 0)
        assert src["records"] == 200 + 1 + 1        # the live ones, each once
        gate = read_json(city_status)["gate"]["refused_messages"]
        assert gate == {"spoofer": {"src_not_allowed": 2}}
        # the publisher's 1,000 and the spoofer's one under its own src (C5 closed, held)
        assert doc["cases"] == 1001
    finally:
        stop_all(procs)


PUBLISHER = """
import json, sys, time, zmq
sys.path.insert(0, {root!r})
from tests.pubhelp import record
ctx = zmq.Context()
s = ctx.socket(zmq.XPUB)
s.connect({ep!r})
s.poll(10000); s.recv()                      # the broker subscribed
now = time.time_ns() // 1_000_000
s.send_multipart([b"case", json.dumps([record("case", src="gw", seq=i, ts=now,
                  case_id="{prefix}%d" % i) for i in range(50)]).encode()])
print("sent", flush=True)
time.sleep(600)
"""


def test_a_publisher_killed_and_started_again_keeps_the_brokers_state(tmp_path):
    """SIGKILL the publisher, start it again (its seq from 0): the broker keeps what it held,
    counts the restart, and a wall joining after holds both lives' cases."""
    ep = {k: f"tcp://127.0.0.1:{free_port()}" for k in ("in", "out", "state")}
    status = tmp_path / "broker.json"
    procs = []

    def start(*argv):
        p = subprocess.Popen([sys.executable, *argv], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        procs.append(p)
        return p
    try:
        broker = start("-m", "feeds.broker", "--in", ep["in"], "--out", ep["out"], "--state",
                       ep["state"], "--status-out", str(status), "--status-every", "0.2",
                       "--run-for", "60")
        assert broker.stdout.readline().startswith("broker ready"), broker.stderr.read()
        first = start("-c", PUBLISHER.format(root=str(ROOT), ep=ep["in"], prefix="A"))
        assert first.stdout.readline().strip() == "sent"
        wait_status(status, lambda d: d["state"]["cases"] == 50)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = start("-c", PUBLISHER.format(root=str(ROOT), ep=ep["in"], prefix="B"))
        assert second.stdout.readline().strip() == "sent"
        doc = wait_status(status, lambda d: d["state"]["cases"] == 100)
        assert doc["input_restarts"] == 1 and doc["restarts_by_src"] == {"gw": 1}
        wall = tmp_path / "wall.json"
        start("main.py", "--headless", "--feed", ep["out"], "--state", ep["state"],
              "--run-for", "30", "--status-out", str(wall), "--status-every", "0.2")
        doc = wait_status(wall, lambda d: d["open_cases"] == 100)
        assert doc["state_joins"][0]["outcome"] == "joined"
    finally:
        stop_all(procs)

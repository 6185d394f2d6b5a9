"""MQTT ingest: how many records a second a wall takes from a real Mosquitto, on a city's mix.

The mix (deterministic): 60 % SenML packs from 20,000 sensors of six kinds (position, one or two
metrics, no optional field), 20 % new cases with a citizen's text as protocol records on
``citywall/case``, 20 % OwnTracks fixes from 2,000 phones in the roster. One record a message,
as sensors and phones send them.

A publisher process sends the same messages (QoS 0, as fast as paho can) for each of:

- ``paho only``: a paho subscriber that counts messages and does nothing else — the limit of
  the transport on this machine (broker, sockets, paho's loop) for this work;
- ``MqttSource``: the wall's source, judging, converting (WGS-84 → GCJ-02) and batching, with
  ``take()`` called every 50 ms as the wall does.

and, in process, ``bare decode``: msgspec decoding every payload once, no judgement — the floor
of the per-message work. Figures are messages (= records) a second; the source's is also given
as a share of the paho-only figure in the same run.

    python bench/mqtt.py [--messages 60000] [--seed 7]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from bench.mix import CATEGORIES, KINDS, TEXTS  # noqa: E402
from feeds.mqtt_config import MqttSettings  # noqa: E402
from feeds.mqtt_source import MqttSource  # noqa: E402
from tests.mosquitto import Mosquitto  # noqa: E402

SENSORS = 20_000
PHONES = 2_000

PUBLISHER = r"""
import json, sys, time
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
port, path = int(sys.argv[1]), sys.argv[2]
msgs = [json.loads(line) for line in open(path, encoding="utf-8")]
c = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-pub")
c.max_queued_messages_set(0)
c.connect("127.0.0.1", port)
c.loop_start()
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
for topic, payload in msgs:
    while c.publish(topic, payload.encode(), qos=0).rc != 0:
        time.sleep(0.001)
time.sleep(0.5)
c.loop_stop()
"""


def mix(n: int, now_s: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        lat, lon = round(39.75 + rng.random() * 0.35, 6), round(116.2 + rng.random() * 0.4, 6)
        r = rng.random()
        if r < 0.6:
            kind = rng.choice(list(KINDS))
            sid = rng.randrange(SENSORS)
            pack = [{"bn": f"urn:dev:{kind}-{sid:05d}:", "bt": now_s, "n": "lat", "v": lat},
                    {"n": "lon", "v": lon}]
            pack += [{"n": m, "v": round(rng.random() * 200, 1)} for m in KINDS[kind]]
            out.append((f"senml/{kind}/{sid:05d}", json.dumps(pack)))
        elif r < 0.8:
            rec = {"v": 1, "src": "hotline", "seq": i, "ts": now_s * 1000,
                   "case_id": f"C{seed}-{i:09d}", "status": "reported",
                   "category": rng.choice(CATEGORIES), "title": "市民上报",
                   "description": rng.choice(TEXTS).format(f"{lat:.4f},{lon:.4f}"),
                   "lat": lat, "lon": lon, "source": "citizen", "priority": rng.randint(1, 3),
                   "reported_at": now_s * 1000}
            out.append(("citywall/case", json.dumps(rec, ensure_ascii=False)))
        else:
            p = rng.randrange(PHONES)
            fix = {"_type": "location", "lat": lat, "lon": lon, "tst": now_s}
            out.append((f"owntracks/u{p:04d}/phone", json.dumps(fix)))
    return out


def devices() -> dict[str, str]:
    return {f"u{p:04d}/phone": f"U{p:04d}" for p in range(PHONES)}


def bare_decode(messages) -> float:
    payloads = [p.encode() for _, p in messages]
    dec = msgspec.json.Decoder()
    t = time.perf_counter()
    for p in payloads:
        dec.decode(p)
    return len(payloads) / (time.perf_counter() - t)


def judge_only(messages, now_ms) -> float:
    """The source's own work per message, in process: no broker, no paho."""
    from types import SimpleNamespace
    from feeds.batch import Batch
    from feeds.faults import Faults
    from feeds.mqtt_judge import Judge
    judge = Judge(MqttSettings.from_url("mqtt://127.0.0.1:1"), display_crs="gcj02",
                  now_ms=now_ms, max_message_bytes=8 << 20, max_record_bytes=64 << 10,
                  devices=devices(), faults=Faults())
    msgs = [SimpleNamespace(topic=t, payload=p.encode(), retain=False) for t, p in messages]
    out = Batch()
    t = time.perf_counter()
    for m in msgs:
        judge.judge(m, out)
    rate = len(msgs) / (time.perf_counter() - t)
    assert len(out.records) == len(msgs), (len(out.records), dict(out.rejects))
    return rate


def run_publisher(port: int, path: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(port), path],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def paho_only(port: int, path: str, n: int) -> tuple[float, int]:
    got = [0, None, None]
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(c, u, msg):
        if got[0] == 0:
            got[1] = time.perf_counter()
        got[0] += 1
        got[2] = time.perf_counter()
        if got[0] >= n:
            done.set()

    c = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-sub")
    c.on_message = on_message
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_connect = lambda cl, *a: cl.subscribe([("citywall/#", 0), ("senml/#", 0),
                                                 ("owntracks/+/+", 0)])
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert subscribed.wait(10)
    pub = run_publisher(port, path)
    pub.stdin.write("go\n")
    pub.stdin.flush()
    done.wait(120)
    pub.wait(120)
    time.sleep(0.5)
    c.loop_stop()
    c.disconnect()
    return got[0] / (got[2] - got[1]), got[0]


def source(port: int, path: str, n: int, now_ms) -> tuple[float, int, dict]:
    src = MqttSource(MqttSettings.from_url(f"mqtt://127.0.0.1:{port}"), display_crs="gcj02",
                     now_ms=now_ms, devices=devices(), max_message_bytes=8 << 20).start()
    t_end = time.monotonic() + 10
    while not src.health().get("subscribed") and time.monotonic() < t_end:
        time.sleep(0.01)
    pub = run_publisher(port, path)
    records = refused = 0
    first = last = None
    rejects: dict = {}
    pub.stdin.write("go\n")
    pub.stdin.flush()
    deadline = time.monotonic() + 120
    while records + refused < n and time.monotonic() < deadline:
        time.sleep(0.05)
        batch = src.take()
        k = len(batch.records) + sum(batch.rejects.values())
        if k:
            now = time.perf_counter()
            first = first or now - 0.05
            last = now
        records += len(batch.records)
        refused += sum(batch.rejects.values())
        for key, v in batch.rejects.items():
            rejects[key] = rejects.get(key, 0) + v
    pub.wait(120)
    src.stop()
    rate = (records + refused) / (last - first) if first and last and last > first else 0.0
    return rate, records, rejects


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=60_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    now_s = int(time.time())
    msgs = mix(args.messages, now_s, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "mix.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for m in msgs:
                f.write(json.dumps(m, ensure_ascii=False) + "\n")
        broker = Mosquitto(Path(tmp) / "mosquitto").start()
        try:
            print(f"mix: {args.messages} messages (60 % SenML from {SENSORS} sensors, 20 % new "
                  f"cases with citizen text, 20 % OwnTracks from {PHONES} phones), one record "
                  "each; Mosquitto on loopback; QoS 0")
            now_ms = lambda: time.time_ns() // 1_000_000      # noqa: E731
            bare = bare_decode(msgs)
            print(f"  bare decode (msgspec, in process): {bare:12,.0f} msg/s")
            judged = judge_only(msgs, now_ms)
            print(f"  the source's judge (in process):   {judged:12,.0f} msg/s "
                  f"(bare decode is {bare / judged:.0f}x)")
            paho_rate, paho_n = paho_only(broker.port, path, args.messages)
            print(f"  paho only (count, nothing else):   {paho_rate:12,.0f} msg/s "
                  f"({paho_n} of {args.messages} arrived)")
            rate, kept, rejects = source(broker.port, path, args.messages, now_ms)
            print(f"  MqttSource (paho + judge, batch):   {rate:11,.0f} msg/s "
                  f"({kept} of {args.messages} arrived and kept, refused "
                  f"{rejects or 'none'}; the broker drops QoS 0 for a subscriber behind)")
            print(f"  the source at {rate / paho_rate:.0%} of paho-only in this run")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()

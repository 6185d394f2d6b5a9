#!/usr/bin/env python
"""Broker benchmark: one broker, one publisher at 50,000 records/s, 50 counting subscribers and
3 real headless consoles; then walls joining late from the broker's state.

    .venv/bin/python bench/broker.py [--rate 50000] [--seconds 10] [--subscribers 50]
                                     [--consoles 3] [--curve]

- The broker is its own process (``python -m feeds.broker``, loopback, no keys unless
  ``--curve``); the publisher is another (an XPUB that connects to the broker's ``--in`` and
  waits for the broker's subscription); the counting subscribers are raw SUB sockets in
  ``--sub-procs`` further processes; the consoles are ``main.py --headless`` processes that
  join from the broker's ``--state`` and follow ``--out``.
- The publisher first sends the city the late joiners must hold (``--cases`` open cases and
  ``--units`` units, in batches), then the load: ``--rate`` records/s for ``--seconds``, paced
  in 10 ms slices, ``--batch`` records a message of one topic (60 % sensor readings of six
  kinds over 20,000 ids, 20 % updates of those cases — with a citizen's text — and 20 % of
  those units), one ``src``, ``seq`` +1 a record, and a heartbeat (``hb``) each second.
- A subscriber counts a message's records from its bytes (``"seq":`` occurrences: a JSON
  string cannot hold an unescaped quote) and checks ``seq`` continuity per socket.
- Late joiners: an in-process ``Receiver`` + ``Situation`` joins halfway through the load and
  again once the publisher has stopped; the time from start to holding every case and unit is
  printed, with the join's own ``seconds``. A bare state request (a DEALER, no subscription)
  at 30 % of the load times the broker's answer alone.
- CPU: /proc/PID/stat (utime+stime) of each process over the load, and per thread of the
  broker /proc/PID/task/*/schedstat (time on a CPU, and time runnable but waiting for one);
  /proc/stat for the whole machine, so work that is not the bench's shows.
- The machine's limit, in the same run: bare msgspec decoding of the same messages, the
  console's own decoder on them, and a raw PUB→SUB loopback (no broker) with the same
  publisher, subscribers and consoles at the same rate.

Prints figures; asserts nothing. Every wait has a timeout; every process it starts is killed at
the end.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import msgspec  # noqa: E402
import zmq  # noqa: E402

PY = sys.executable
SRC = "bench"
RAW_SRC = "raw"
KINDS = {"air": ("pm25", "pm10"), "noise": ("laeq",), "crowd": ("density",),
         "parking": ("illegal",), "manhole": ("tilt_deg", "open"), "waste": ("fill_pct",)}
SENSORS = 20_000
TEXTS = ["市民反映：{}附近有占道经营，早晚高峰影响通行，希望尽快处理。",
         "{}人行道上堆放建筑垃圾，已有两天无人清理，请安排清运。",
         "Reported via hotline: illegal flyers on the bus shelter near {}, second time this week.",
         "{}井盖松动，车辆经过有响声，存在安全隐患。"]
CATEGORIES = ["event.street_order.vending", "event.city_appearance.exposed_garbage",
              "event.advertising.illegal_flyers", "part.public_facility.manhole"]
OPEN_STATUSES = ["reported", "registered", "dispatched", "on_scene", "resolved", "verified"]
UNIT_STATUSES = ["available", "dispatched", "en_route", "on_scene", "returning"]
UNIT_KINDS = ["foot_patrol", "vehicle", "enforcement", "sanitation"]
SEQ_MARK = 987_654_321_987_654          # placeholders in the pre-encoded templates
TS_MARK = 123_456_789_123_456
TEMPLATES = 400                         # distinct load messages the publisher cycles through
SLICE_S = 0.01
CLK = os.sysconf("SC_CLK_TCK")
NOW = lambda: time.time_ns() // 1_000_000        # noqa: E731


# =============================================================================================
# helpers
# =============================================================================================

def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def proc_cpu(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds; 0.0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / CLK
    except (OSError, IndexError, ValueError):
        return 0.0


def sched(pid: int) -> dict[str, list[float]]:
    """By thread name: [seconds on a CPU, seconds runnable but waiting for one] (schedstat)."""
    out: dict[str, list[float]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                run, wait, _ = (int(x) for x in f.read().split())
        except (OSError, ValueError):
            continue
        name = name if int(tid) != pid else f"{name} (main)"
        acc = out.setdefault(name, [0.0, 0.0])
        acc[0] += run / 1e9
        acc[1] += wait / 1e9
    return out


def sched_wait(pids: list[int]) -> float:
    return sum(v[1] for p in pids for v in sched(p).values())


def machine_cpu() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine so far, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return (sum(vals[:8]) - idle) / CLK, sum(vals[:8]) / CLK


def read_json(path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def wait_until(pred, timeout_s: float, step_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step_s)
    return bool(pred())


def pct(a: float, b: float) -> str:
    return f"{100 * a / b:.1f} %" if b else "-"


# =============================================================================================
# the city's messages, pre-encoded with placeholders for seq and ts
# =============================================================================================

def _point(rng: random.Random) -> tuple[float, float]:
    return round(39.75 + rng.random() * 0.35, 6), round(116.2 + rng.random() * 0.4, 6)


def _case(rng, cid: int, src: str, status: str | None = None) -> dict:
    lat, lon = _point(rng)
    return {"v": 1, "src": src, "seq": SEQ_MARK, "ts": TS_MARK, "case_id": f"C{cid:05d}",
            "status": status or rng.choice(OPEN_STATUSES), "category": rng.choice(CATEGORIES),
            "title": "市民上报",
            "description": rng.choice(TEXTS).format(f"{lat:.4f},{lon:.4f}"),
            "lat": lat, "lon": lon, "source": "citizen", "priority": rng.randint(1, 3),
            "reported_at": TS_MARK}


def _unit(rng, uid: int, src: str) -> dict:
    lat, lon = _point(rng)
    return {"v": 1, "src": src, "seq": SEQ_MARK, "ts": TS_MARK, "unit_id": f"U{uid:05d}",
            "callsign": f"巡{uid:05d}", "kind": UNIT_KINDS[uid % 4],
            "status": rng.choice(UNIT_STATUSES), "lat": lat, "lon": lon}


def _sensor(rng, kind: str, src: str) -> dict:
    lat, lon = _point(rng)
    return {"v": 1, "src": src, "seq": SEQ_MARK, "ts": TS_MARK,
            "id": f"{kind}-{rng.randrange(SENSORS):05d}", "kind": kind, "lat": lat, "lon": lon,
            "metrics": {m: round(rng.random() * 200, 1) for m in KINDS[kind]}}


class Template:
    """One message's bytes with ``%d`` where each record's seq and the send time go."""
    _mark = re.compile(rb"%d" % SEQ_MARK + rb"|" + rb"%d" % TS_MARK)

    def __init__(self, topic: str, records: list[dict]):
        self.topic = topic.encode()
        self.n = len(records)
        raw = msgspec.json.encode(records).replace(b"%", b"%%")
        slots = []
        rec = -1
        for m in self._mark.finditer(raw):
            if m.group() == b"%d" % SEQ_MARK:
                rec += 1
                slots.append(rec)
            else:
                slots.append(-1)
        self.slots = slots
        self.fmt = self._mark.sub(b"%d", raw)

    def fill(self, seq0: int, ts: int) -> bytes:
        return self.fmt % tuple([seq0 + s if s >= 0 else ts for s in self.slots])


def seed_templates(cases: int, units: int, batch: int, src: str, seed: int = 11):
    """The city a late joiner must hold: every case (open) and every unit, once each."""
    rng = random.Random(seed)
    out = []
    for i in range(0, cases, batch):
        out.append(Template("case", [_case(rng, c, src, "registered")
                                     for c in range(i, min(i + batch, cases))]))
    for i in range(0, units, batch):
        out.append(Template("unit", [_unit(rng, u, src) for u in range(i, min(i + batch, units))]))
    return out


def load_templates(cases: int, units: int, batch: int, src: str, n: int = TEMPLATES,
                   seed: int = 7):
    """The load: messages of one topic each, 60 % sensors, 20 % cases, 20 % units (by
    message, so by record too), ids from the same pools as the seed (no new case or unit)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.6:
            kind = rng.choice(list(KINDS))
            out.append(Template(f"sensor.{kind}", [_sensor(rng, kind, src) for _ in range(batch)]))
        elif r < 0.8:
            out.append(Template("case", [_case(rng, rng.randrange(cases), src)
                                         for _ in range(batch)]))
        else:
            out.append(Template("unit", [_unit(rng, rng.randrange(units), src)
                                         for _ in range(batch)]))
    return out


def sample_messages(templates, ts: int) -> list[list[bytes]]:
    seq = 0
    out = []
    for t in templates:
        out.append([t.topic, t.fill(seq, ts)])
        seq += t.n
    return out


# =============================================================================================
# the publisher process
# =============================================================================================

def publisher_main(conn, endpoint: str, bind: bool, subscribers: int, src: str, batch: int,
                   cases: int, units: int, curve: dict | None) -> None:
    """An XPUB that connects to the broker's --in (or binds, for the raw baseline). Commands
    on ``conn``: ("seed",), ("run", rate, seconds), ("stop",)."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 10_000)
    sock.setsockopt(zmq.XPUB_NODROP, 1)         # a full queue is EAGAIN: counted, retried
    sock.setsockopt(zmq.XPUB_VERBOSE, 1)        # every subscriber's subscription, not the first
    if curve:
        from feeds.keys import load_key
        from feeds.security import connect_as
        connect_as(sock, load_key(curve["key"], secret=True), load_key(curve["server"]))
    seed = seed_templates(cases, units, batch, src)
    load = load_templates(cases, units, batch, src)
    seq = 0
    try:
        if bind:
            sock.bind(endpoint)
        else:
            sock.connect(endpoint)
        conn.send(("up",))
        got = 0
        deadline = time.monotonic() + 60
        while got < subscribers and time.monotonic() < deadline:
            if sock.poll(200):
                if sock.recv()[:1] == b"\x01":
                    got += 1
        conn.send(("ready", got))
        while True:
            if not conn.poll(0.5):
                while sock.poll(0):
                    sock.recv()
                continue
            cmd = conn.recv()
            if cmd[0] == "stop":
                break
            if cmd[0] == "seed":
                t0 = time.perf_counter()
                blocked = 0.0
                n = 0
                for t in seed:
                    blocked += _send(sock, [t.topic, t.fill(seq, NOW())])
                    seq += t.n
                    n += t.n
                conn.send(("seeded", {"records": n, "last_seq": seq - 1,
                                      "seconds": time.perf_counter() - t0, "blocked_s": blocked}))
            elif cmd[0] == "run":
                stats = _run(sock, load, src, seq, cmd[1], cmd[2], batch)
                seq = stats["next_seq"]
                conn.send(("ran", stats))
    finally:
        sock.close(0)
        ctx.term()


def _send(sock: zmq.Socket, frames: list[bytes]) -> float:
    """Send, waiting while the queue is full (XPUB_NODROP); returns the seconds waited."""
    waited = 0.0
    while True:
        try:
            sock.send_multipart(frames, zmq.NOBLOCK)
            return waited
        except zmq.Again:
            t = time.perf_counter()
            sock.poll(5, zmq.POLLOUT)
            waited += time.perf_counter() - t
            if waited > 30:
                raise TimeoutError("publisher blocked for 30 s")


def _run(sock, load, src: str, seq: int, rate: float, seconds: float, batch: int) -> dict:
    srcb = src.encode()
    sent = msgs = hbs = 0
    blocked = 0.0
    k = 0
    late = 0.0                                  # the most the schedule was behind
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    next_hb = t0
    next_slice = t0
    while True:
        now = time.perf_counter()
        el = now - t0
        if el >= seconds:
            break
        if now >= next_hb:
            blocked += _send(sock, [b"hb", b'{"v":1,"src":"%s","seq":%d,"ts":%d,"rate":%.1f}'
                                    % (srcb, seq, NOW(), float(rate))])
            seq += 1
            hbs += 1
            next_hb += 1.0
        due = int(rate * el)
        while due - sent >= batch:
            t = load[k]
            k = (k + 1) % len(load)
            blocked += _send(sock, [t.topic, t.fill(seq, NOW())])
            seq += t.n
            sent += t.n
            msgs += 1
        late = max(late, (rate * (time.perf_counter() - t0) - sent) / rate)
        while sock.poll(0):                         # subscriptions: not ours to keep
            sock.recv()
        next_slice += SLICE_S
        pause = next_slice - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        else:
            next_slice = time.perf_counter()
    wall = time.perf_counter() - t0
    return {"records": sent, "messages": msgs, "heartbeats": hbs, "seconds": wall,
            "blocked_s": blocked, "cpu_s": time.process_time() - cpu0, "next_seq": seq,
            "last_seq": seq - 1, "late_s": late}


# =============================================================================================
# the counting subscribers' processes
# =============================================================================================

def subscribers_main(conn, endpoint: str, n: int, wait_welcome: bool, curve: dict | None) -> None:
    """``n`` raw SUB sockets; per socket: records, messages, gaps and records missed by seq."""
    ctx = zmq.Context()
    socks = []
    key = server = None
    if curve:
        from feeds.keys import load_key
        key, server = load_key(curve["key"], secret=True), load_key(curve["server"])
    for _ in range(n):
        s = ctx.socket(zmq.SUB)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVHWM, 100_000)           # as the console's receiver
        s.setsockopt(zmq.SUBSCRIBE, b"")
        if curve:
            from feeds.security import connect_as
            connect_as(s, key, server)
        s.connect(endpoint)
        socks.append(s)
    stats = [{"records": 0, "messages": 0, "gaps": 0, "missed": 0, "back": 0, "first": None,
              "next": None} for _ in socks]
    poller = zmq.Poller()
    for s in socks:
        poller.register(s, zmq.POLLIN)
    welcomed = set()
    index = {s: i for i, s in enumerate(socks)}
    ready_sent = not wait_welcome
    if ready_sent:
        conn.send(("ready", n))
    cpu0 = time.process_time()
    SEQ = b'"seq":'
    try:
        while True:
            if conn.poll(0):
                cmd = conn.recv()
                if cmd[0] == "stop":
                    break
                if cmd[0] == "peek":
                    conn.send(("peek", [st["records"] for st in stats],
                               sum(st["missed"] for st in stats)))
                    continue
                if cmd[0] == "cpu0":
                    cpu0 = time.process_time()
                    conn.send(("ok",))
                    continue
            for s, _ in poller.poll(100):
                st = stats[index[s]]
                for _ in range(1000):
                    try:
                        frames = s.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if len(frames) != 2:
                        welcomed.add(s)                 # the broker's welcome
                        continue
                    payload = frames[1]
                    i = payload.find(SEQ) + 6
                    seq = int(payload[i:payload.find(b",", i)])
                    count = payload.count(SEQ) if payload[:1] == b"[" else 1
                    st["messages"] += 1
                    st["records"] += count
                    nxt = st["next"]
                    if nxt is None:
                        st["first"] = seq
                    elif seq > nxt:
                        st["gaps"] += 1
                        st["missed"] += seq - nxt
                    elif seq < nxt:
                        st["back"] += 1
                    st["next"] = seq + count
            if not ready_sent and len(welcomed) == n:
                conn.send(("ready", n))
                ready_sent = True
    finally:
        try:
            conn.send(("done", stats, time.process_time() - cpu0))
        except (OSError, ValueError):
            pass
        for s in socks:
            s.close(0)
        ctx.term()


# =============================================================================================
# the runs
# =============================================================================================

class Procs:
    """Everything started, to be stopped at the end whatever happens."""

    def __init__(self):
        self.popen: list[subprocess.Popen] = []
        self.mp: list = []

    def close(self) -> None:
        for p in self.popen:
            if p.poll() is None:
                p.kill()
        for p in self.popen:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        for p in self.mp:
            if p.is_alive():
                p.kill()
            p.join(5)
        self.popen.clear()
        self.mp.clear()


def make_keys(tmp: Path) -> dict:
    """broker, walls (consoles and subscribers) and publishers, with python -m feeds.keys."""
    dirs = {name: tmp / "keys" / name for name in ("broker", "walls", "publishers")}
    for name, d, who in (("broker", dirs["broker"], "broker"), ("walls", dirs["walls"], "wall"),
                         ("publishers", dirs["publishers"], "pub")):
        subprocess.run([PY, "-m", "feeds.keys", "new", who, "--dir", str(d)], cwd=ROOT,
                       check=True, capture_output=True, timeout=30)
    return {"broker_secret": str(dirs["broker"] / "broker.key_secret"),
            "broker_public": str(dirs["broker"] / "broker.key"),
            "walls": str(dirs["walls"]), "publishers": str(dirs["publishers"]),
            "wall_secret": str(dirs["walls"] / "wall.key_secret"),
            "pub_secret": str(dirs["publishers"] / "pub.key_secret")}


def start_consoles(procs: Procs, tmp: Path, n: int, feed: str, state: str | None,
                   keys: dict | None, tag: str) -> list[tuple[subprocess.Popen, Path]]:
    out = []
    for i in range(n):
        status = tmp / f"console-{tag}-{i}.json"
        cmd = [PY, "main.py", "--headless", "--run-for", "3600", "--status-out", str(status),
               "--status-every", "1"]
        if keys:
            cmd += ["--key", keys["wall_secret"]]
        cmd += ["--feed", feed]
        if keys:
            cmd += ["--server-key", keys["broker_public"]]
        if state:
            cmd += ["--state", state]
        log = open(tmp / f"console-{tag}-{i}.log", "wb")
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        procs.popen.append(p)
        out.append((p, status))
    return out


def start_subscribers(procs: Procs, mpctx, endpoint: str, n: int, nprocs: int,
                      wait_welcome: bool, curve: dict | None):
    per = [n // nprocs + (1 if i < n % nprocs else 0) for i in range(nprocs)]
    subs = []
    for k in per:
        if not k:
            continue
        a, b = mpctx.Pipe()
        p = mpctx.Process(target=subscribers_main, args=(b, endpoint, k, wait_welcome, curve),
                          daemon=True)
        p.start()
        procs.mp.append(p)
        subs.append((p, a, k))
    return subs


def recv(conn, timeout_s: float, what: str):
    if not conn.poll(timeout_s):
        raise TimeoutError(f"no answer from {what} in {timeout_s:.0f} s")
    return conn.recv()


def peek_subs(subs) -> tuple[list[int], int]:
    counts, missed = [], 0
    for _, conn, _ in subs:
        conn.send(("peek",))
        msg = recv(conn, 10, "a subscriber process")
        counts += msg[1]
        missed += msg[2]
    return counts, missed


def stop_subs(subs) -> tuple[list[dict], float]:
    stats, cpu = [], 0.0
    for _, conn, _ in subs:
        conn.send(("stop",))
    for _, conn, _ in subs:
        msg = recv(conn, 15, "a subscriber process")
        while msg[0] != "done":
            msg = recv(conn, 15, "a subscriber process")
        stats += msg[1]
        cpu += msg[2]
    return stats, cpu


def stop_consoles(consoles, timeout_s: float = 30) -> list[dict | None]:
    """SIGINT (the headless loop ends and writes its final status), then the final status."""
    for p, _ in consoles:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout_s
    for p, _ in consoles:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
    return [read_json(st) for _, st in consoles]


def console_src(doc: dict | None, src: str) -> dict:
    return ((doc or {}).get("sources") or {}).get(src) or {}


class BrokerWatch:
    """Samples the broker's status file (written each second) while the load runs."""

    def __init__(self, path: Path):
        self.path = path
        self.samples: list[tuple[float, dict]] = []

    def sample(self) -> dict | None:
        doc = read_json(self.path)
        if doc is not None:
            self.samples.append((time.monotonic(), doc))
        return doc


def late_join(feed: str, state: str, keys: dict | None, cases: int, units: int,
              timeout_s: float = 30.0) -> dict:
    """An in-process wall joining now: time from start until it holds every case and unit."""
    from feeds.receiver import Receiver
    from situation.clock import WallClock
    from situation.store import Situation
    ck = None
    if keys:
        from feeds.keys import load_key
        from feeds.security import ClientKeys
        ck = ClientKeys(key=load_key(keys["wall_secret"], secret=True),
                        server=load_key(keys["broker_public"]))
    t0 = time.monotonic()
    rx = Receiver([feed], state={feed: state}, now_ms=NOW, keys=ck).start()
    sit = Situation(WallClock())
    whole_at = None
    try:
        while time.monotonic() - t0 < timeout_s:
            batch, heard = rx.drain()
            sit.apply(batch, heard)
            if len(sit.cases) >= cases and len(sit.units) >= units:
                whole_at = time.monotonic() - t0
                break
            time.sleep(0.005)
        outcome = rx.join_outcomes[0] if rx.join_outcomes else None
        return {"whole_s": whole_at, "cases": len(sit.cases), "units": len(sit.units),
                "sensors": len(sit.sensors), "join": outcome}
    finally:
        rx.stop()


def state_rtt(state: str, keys: dict | None, timeout_s: float = 30.0) -> dict:
    """One bare state request (a DEALER, no subscription): seconds until the reply is in."""
    from feeds.broker_state import request
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.MAXMSGSIZE, 64 * 1024 * 1024)
    if keys:
        from feeds.keys import load_key
        from feeds.security import connect_as
        connect_as(s, load_key(keys["wall_secret"], secret=True), load_key(keys["broker_public"]))
    try:
        s.connect(state)
        t0 = time.monotonic()
        s.send(request("bench-probe"))
        if not s.poll(int(timeout_s * 1000)):
            return {"seconds": None}
        frames = s.recv_multipart()
        return {"seconds": time.monotonic() - t0, "frames": len(frames),
                "bytes": sum(len(f) for f in frames)}
    finally:
        s.close(0)


def fmt_join(j: dict, cases: int, units: int) -> str:
    o = j.get("join") or {}
    whole = j.get("whole_s")
    return (f"whole in {whole:.3f} s" if whole is not None else
            f"NOT whole within the timeout ({j['cases']}/{cases} cases, {j['units']}/{units} "
            "units)") + (f"; join {o.get('outcome')} in {o.get('seconds')} s "
                         f"({o.get('records')} records in the state, {o.get('kept')} messages "
                         f"kept meanwhile{'; ' + o['problem'] if o.get('problem') else ''})"
                         if o else "; no join outcome")


def fanout_run(args, mpctx, tmp: Path, keys: dict | None, raw: bool) -> dict:
    """One run: the broker (or, raw, none: the publisher binds) with the subscribers and
    consoles. Returns the figures."""
    procs = Procs()
    res: dict = {"raw": raw}
    tag = "raw" if raw else "broker"
    src = RAW_SRC if raw else SRC
    curve = None
    try:
        broker = None
        status_path = tmp / "broker-status.json"
        if raw:
            out = free_endpoint()
            state = None
            pub_ep = out
        else:
            ins, out, state = free_endpoint(), free_endpoint(), free_endpoint()
            pub_ep = ins
            cmd = [PY, "-m", "feeds.broker", "--in", ins, "--out", out, "--state", state,
                   "--status-out", str(status_path), "--status-every", "1",
                   "--run-for", "3600"]
            if keys:
                cmd += ["--key", keys["broker_secret"], "--trust", keys["walls"],
                        "--in-trust", keys["publishers"]]
            log = open(tmp / "broker.log", "wb")
            broker = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            log.close()
            procs.popen.append(broker)
            res["broker_pid"] = broker.pid
            if not wait_until(lambda: read_json(status_path) is not None, 30):
                raise RuntimeError("the broker wrote no status in 30 s: "
                                   + (tmp / "broker.log").read_text()[-2000:])
        # raw: the publisher binds and the others connect to it, without CURVE
        pub_curve = ({"key": keys["pub_secret"], "server": keys["broker_public"]}
                     if keys and not raw else None)
        curve = ({"key": keys["wall_secret"], "server": keys["broker_public"]}
                 if keys and not raw else None)
        a, b = mpctx.Pipe()
        pub = mpctx.Process(target=publisher_main, daemon=True, args=(
            b, pub_ep, raw, (args.subscribers + args.consoles) if raw else 1, src, args.batch,
            args.cases, args.units, pub_curve))
        pub.start()
        procs.mp.append(pub)
        recv(a, 60, "the publisher")                                  # bound or connected
        subs = start_subscribers(procs, mpctx, out, args.subscribers, args.sub_procs,
                                 not raw, curve)
        consoles = start_consoles(procs, tmp, args.consoles, out, state,
                                  keys if not raw else None, tag)
        msg = recv(a, 90, "the publisher")
        res["publisher_subscribed"] = msg[1]
        for p, conn, _ in subs:
            recv(conn, 60, "a subscriber process")                     # every socket welcomed
        if not raw:
            need = args.subscribers + args.consoles
            ok = wait_until(lambda: (read_json(status_path) or {}).get("subscribers", 0) >= need,
                            60, 0.2)
            res["broker_subscribers_at_start"] = (read_json(status_path) or {}).get("subscribers")
            if not ok:
                print(f"  (only {res['broker_subscribers_at_start']} of {need} subscribers "
                      "connected to the broker after 60 s)")
        # The consoles: each has joined (or gone live) before anything is sent.
        wait_until(lambda: all((read_json(st) or {}).get("state_joins") or raw
                               for _, st in consoles), 60, 0.2)
        if raw:
            time.sleep(1.0)           # consoles' subscriptions: counted by the publisher
        # ---- the city first (the late joiners' state) -----------------------------------
        a.send(("seed",))
        seeded = recv(a, 120, "the publisher (seeding)")[1]
        res["seeded"] = seeded
        watch = BrokerWatch(status_path)
        if not raw:
            wait_until(lambda: (watch.sample() or {}).get("state_records", 0)
                       >= seeded["records"], 30, 0.2)
            time.sleep(1.1)
            res["state_after_seed"] = (watch.sample() or {}).get("state")
        # ---- the load ---------------------------------------------------------------------
        for _, conn, _ in subs:
            conn.send(("cpu0",))
            recv(conn, 10, "a subscriber process")
        pids = {"broker": [broker.pid] if broker else [],
                "subscribers": [p.pid for p, _, _ in subs],
                "consoles": [p.pid for p, _ in consoles], "publisher": [pub.pid],
                "bench (late joiner)": [os.getpid()]}
        cpu0 = {k: sum(proc_cpu(x) for x in v) for k, v in pids.items()}
        threads0 = sched(broker.pid) if broker else {}
        wait0 = {k: sched_wait(v) for k, v in pids.items()}
        mach0 = machine_cpu()
        watch.samples.clear()
        watch.sample()
        t0 = time.monotonic()
        a.send(("run", args.rate, args.seconds))
        joiner: dict = {}
        jt = None
        if not raw and args.late_join:
            def probe():
                time.sleep(args.seconds * 0.3)
                try:
                    joiner["probe"] = state_rtt(state, keys)
                except Exception as exc:
                    joiner["probe"] = {"error": f"{type(exc).__name__}: {exc}"}

            def mid_join():
                time.sleep(args.seconds * 0.5)
                try:
                    joiner.update(late_join(out, state, keys, args.cases, args.units))
                except Exception as exc:                      # a figure, not the bench's end
                    joiner["error"] = f"{type(exc).__name__}: {exc}"
            jt = threading.Thread(target=mid_join, daemon=True)
            jt.start()
            pt = threading.Thread(target=probe, daemon=True)
            pt.start()
        ran = None
        deadline = t0 + args.seconds + 120
        while ran is None and time.monotonic() < deadline:
            if a.poll(0.5):
                ran = a.recv()[1]
            watch.sample()
        if ran is None:
            raise TimeoutError("the publisher did not finish its run")
        t_end = time.monotonic()
        cpu1 = {k: sum(proc_cpu(x) for x in v) for k, v in pids.items()}
        threads1 = sched(broker.pid) if broker else {}
        wait1 = {k: sched_wait(v) for k, v in pids.items()}
        mach1 = machine_cpu()
        res["machine_busy"] = (mach1[0] - mach0[0]) / (t_end - t0)
        res["loadavg"] = os.getloadavg()[0]
        watch.sample()
        res["ran"] = ran
        res["wall_s"] = t_end - t0
        res["cpu"] = {k: (cpu1[k] - cpu0[k]) / (t_end - t0) for k in pids}
        res["wait"] = {k: (wait1[k] - wait0[k]) / (t_end - t0) for k in pids}
        res["broker_threads"] = {
            k: [(v[0] - threads0.get(k, [0.0, 0.0])[0]) / (t_end - t0),
                (v[1] - threads0.get(k, [0.0, 0.0])[1]) / (t_end - t0)]
            for k, v in threads1.items() if v[0] - threads0.get(k, [0.0, 0.0])[0] > 0.005}
        # ---- the tail: until everyone has what was sent, or no progress --------------------
        total = seeded["records"] + ran["records"] + ran["heartbeats"]
        res["total_published"] = total
        last_seq = ran["last_seq"]
        t_tail = time.monotonic()
        prev = None
        still = 0
        res["subs_at_end"], _ = peek_subs(subs)
        res["subs_all_after_s"] = 0.0 if all(c >= total for c in res["subs_at_end"]) else None
        res["consoles_all_after_s"] = None
        while time.monotonic() - t_tail < args.tail:
            counts, _ = peek_subs(subs)
            cons = [console_src(read_json(st), src).get("last_seq", -1) for _, st in consoles]
            if not raw:
                watch.sample()
            if res["subs_all_after_s"] is None and all(c >= total for c in counts):
                res["subs_all_after_s"] = time.monotonic() - t_tail
            if res["consoles_all_after_s"] is None and all(c >= last_seq for c in cons):
                res["consoles_all_after_s"] = time.monotonic() - t_tail
            done = all(c >= total for c in counts) and all(c >= last_seq for c in cons)
            if done:
                break
            now = (sum(counts), tuple(cons))
            still = still + 1 if now == prev else 0
            if still >= 6:                 # 3 s without any progress
                break
            prev = now
            time.sleep(0.5)
        res["tail_s"] = time.monotonic() - t_tail
        res["cpu_tail_consoles"] = sum(proc_cpu(x) for x in pids["consoles"]) - cpu1["consoles"]
        if jt is not None:
            jt.join(40)
            pt.join(40)
            res["join_under_load"] = dict(joiner)
        if not raw and args.late_join:
            m0, q0 = machine_cpu(), time.monotonic()
            try:
                res["join_quiet"] = late_join(out, state, keys, args.cases, args.units)
            except Exception as exc:
                res["join_quiet"] = {"error": f"{type(exc).__name__}: {exc}"}
            res["join_quiet"]["machine_busy"] = (machine_cpu()[0] - m0[0]) / max(
                1e-3, time.monotonic() - q0)
        if not raw:
            res["broker_samples"] = [(t - t0, d) for t, d in watch.samples]
            res["t_end"] = t_end - t0
            res["broker_final"] = watch.sample()
        res["subs"], res["subs_cpu_s"] = stop_subs(subs)
        res["consoles"] = stop_consoles(consoles)
        res["console_logs"] = [(tmp / f"console-{tag}-{i}.log").read_text(errors="replace")[-600:]
                               for i in range(len(consoles))]
        a.send(("stop",))
        if broker is not None:
            broker.send_signal(signal.SIGTERM)
            try:
                broker.wait(15)
            except subprocess.TimeoutExpired:
                pass
            res["broker_exit"] = broker.poll()
            res["broker_log"] = (tmp / "broker.log").read_text(errors="replace")[-1500:]
            res["broker_final"] = read_json(status_path) or res.get("broker_final")
        return res
    finally:
        procs.close()


# =============================================================================================
# the machine's limits
# =============================================================================================

def decode_limits(args) -> dict:
    from feeds.decode import MessageDecoder
    from feeds.schema import Case, SensorReading, Unit
    ts = NOW()
    msgs = sample_messages(load_templates(args.cases, args.units, args.batch, SRC), ts)
    n_rec = sum(m[1].count(b'"seq":') for m in msgs)
    n_bytes = sum(len(m[1]) for m in msgs)
    typed = {b"case": msgspec.json.Decoder(list[Case]), b"unit": msgspec.json.Decoder(list[Unit])}
    sensor = msgspec.json.Decoder(list[SensorReading])

    def bare():
        for topic, payload in msgs:
            typed.get(topic, sensor).decode(payload)

    def untyped():
        for _, payload in msgs:
            msgspec.json.decode(payload)

    dec = MessageDecoder()

    def console():
        for m in msgs:
            dec.decode(m)

    def count():
        for _, payload in msgs:
            payload.count(b'"seq":')

    out = {"records_per_msg": n_rec / len(msgs), "bytes_per_msg": n_bytes / len(msgs)}
    for name, fn in (("msgspec_typed", bare), ("msgspec_untyped", untyped),
                     ("console_decoder", console), ("subscriber_count", count)):
        fn()
        reps = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 1.0:
            fn()
            reps += 1
        out[name] = reps * n_rec / (time.perf_counter() - t0)
    return out


def machine() -> list[str]:
    lines = [f"python {platform.python_version()}, pyzmq {zmq.__version__}, libzmq "
             f"{zmq.zmq_version()}, msgspec {msgspec.__version__}, {os.cpu_count()} cores "
             f"({len(os.sched_getaffinity(0))} usable)"]
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                     if line.startswith("model name"))
        lines.append(model)
    except (OSError, StopIteration):
        pass
    return lines


# =============================================================================================
# printing
# =============================================================================================

def spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"min {min(values):,.0f} / median {statistics.median(values):,.0f} / max {max(values):,.0f}"


def print_run(res: dict, args) -> dict:
    """Print one run's figures; return the figures the aims are judged on."""
    raw = res["raw"]
    ran, seeded = res["ran"], res["seeded"]
    total = res["total_published"]
    print(f"  publisher: offered {args.rate:,.0f} records/s for {args.seconds:g} s; sent "
          f"{ran['records']:,} records in {ran['messages']:,} messages + {ran['heartbeats']} hb in "
          f"{ran['seconds']:.2f} s = {ran['records'] / ran['seconds']:,.0f} records/s "
          f"({pct(ran['records'] / ran['seconds'], args.rate)} of offered); blocked by a full "
          f"queue {ran['blocked_s']:.2f} s; at most {ran['late_s'] * 1000:.0f} ms behind "
          f"schedule; its CPU {res['cpu']['publisher'] * 100:.0f} % of a core")
    print(f"  before the load: {seeded['records']:,} records of the city ({args.cases:,} cases, "
          f"{args.units:,} units) in {seeded['seconds']:.2f} s; every subscriber should get "
          f"{total:,} records in all (seq 0..{ran['last_seq']:,})")
    out: dict = {}
    if not raw:
        samples = res.get("broker_samples") or []
        # Only the status files written while the load ran (the file is written once a second).
        fwd = [(d.get("uptime_s", 0.0), d.get("state_records", 0),
                d.get("forwarded_frames", 0), d)
               for t, d in samples if t <= res["wall_s"] + 0.5]
        if len(fwd) >= 2:
            (u0, r0, m0, _), (u1, r1, m1, _) = fwd[0], fwd[-1]
            rate = (r1 - r0) / (u1 - u0) if u1 > u0 else 0.0
            mrate = (m1 - m0) / (u1 - u0) if u1 > u0 else 0.0
            per_s = [d.get("state_rate", 0.0) for *_, d in fwd[2:]]
            sent_mps = (ran["messages"] + ran["heartbeats"]) / ran["seconds"]
            print(f"  broker during the load: its state took in (state_records) "
                  f"{r1 - r0:,} records over {u1 - u0:.1f} s of its uptime = {rate:,.0f} "
                  f"records/s ({pct(rate, args.rate)} of offered); the proxy forwarded "
                  f"{mrate:,.0f} frames/s (libzmq 4.3.5 counts frames: 2 a message; sent "
                  f"{sent_mps:,.0f} messages/s; its statistics lag up to 2 s); its own "
                  f"per-second 'state_rate' {spread(per_s)}")
        after = [(t, d.get("state_records", 0)) for t, d in samples]
        at_end = max((r for t, r in after if t <= res["wall_s"] + 0.5), default=0)
        caught = next((t - res["wall_s"] for t, r in after if r >= total), None)
        print(f"  broker's state at the end of the load: had taken in {at_end:,} of {total:,} "
              f"records ({total - at_end:,} behind, ~{(total - at_end) / args.rate:.1f} s of "
              f"feed); " + (f"caught up {caught:.1f} s after the load ended" if caught is not None
                            else "had not caught up when the bench stopped watching")
              + f"; subscribers connected at the start: {res.get('broker_subscribers_at_start')}")
        final = res.get("broker_final") or {}
        px = final.get("proxy") or {}
        print(f"  broker at the end: state_records {final.get('state_records', 0):,}, "
              f"state_messages {final.get('state_messages', 0):,}; state answers sent "
              f"behind {final.get('state_answered_behind', 0)}, longest wait "
              f"{final.get('state_answer_wait_s_max', 0)} s; proxy in_msgs "
              f"{px.get('in_msgs', 0):,}, out_msgs {px.get('out_msgs', 0):,}, "
              f"out_bytes {px.get('out_bytes', 0) / 1e6:,.0f} MB (once per message, not per "
              f"subscriber); input_gaps {final.get('input_gaps')} missed "
              f"{final.get('input_missed')}; rejected {final.get('rejected')}; "
              f"state {final.get('state')}; subscribers {final.get('subscribers')}; "
              f"faults {final.get('faults') or 'none'}; exit {res.get('broker_exit')}")
        print(f"  broker CPU during the load: {res['cpu']['broker'] * 100:.0f} % of one core "
              f"(/proc stat); by thread, on a CPU / runnable but waiting for one: " + ", ".join(
                  f"{k} {v[0] * 100:.0f} % / {v[1] * 100:.0f} %" for k, v in
                  sorted(res["broker_threads"].items(), key=lambda kv: -kv[1][0])))
    subs = res["subs"]
    got = [s["records"] for s in subs]
    every = sum(1 for s in subs if s["records"] >= total and s["missed"] == 0)
    missed = [s["missed"] for s in subs]
    print(f"  {len(subs)} subscribers: records {spread(got)}; {every} of {len(subs)} got every "
          f"record; missed by seq {spread(missed)} (total {sum(missed):,}, "
          f"{sum(s['gaps'] for s in subs):,} gaps); out of order {sum(s['back'] for s in subs)}; "
          f"their processes' CPU {res['cpu']['subscribers'] * 100:.0f} % of a core")
    at_end = res.get("subs_at_end") or []
    if at_end:
        print(f"  when the publisher finished, the subscribers had {spread(at_end)} records "
              f"({pct(min(at_end), total)} .. {pct(max(at_end), total)} of all); every one had "
              "everything " + (f"{res['subs_all_after_s']:.1f} s after the load ended"
                               if res.get("subs_all_after_s") is not None else
                               "never, within the tail"))
    out["every"] = every
    out["kept_up"] = res.get("subs_all_after_s") is not None and res["subs_all_after_s"] <= 1.0
    out["at_end_min"] = min(at_end) if at_end else 0
    out["caught_up_s"] = res.get("subs_all_after_s")
    out["subs"] = len(subs)
    out["sub_min"] = min(got) if got else 0
    for i, doc in enumerate(res["consoles"]):
        s = console_src(doc, RAW_SRC if raw else SRC)
        joins = (doc or {}).get("state_joins") or []
        j = joins[0] if joins else {}
        print(f"  console {i}: records {s.get('records', 0):,}, last_seq {s.get('last_seq')}, "
              f"gaps {s.get('gaps')}, missed {s.get('missed')}, records_accepted "
              f"{(doc or {}).get('records_accepted', 0):,}, rejected "
              f"{(doc or {}).get('rejected_total')}, cases {(doc or {}).get('cases')}, units "
              f"{(doc or {}).get('units')}"
              + (f"; join {j.get('outcome')} {j.get('seconds')} s" if j else "")
              + ("" if doc else " (no status)"))
    ca = res.get("consoles_all_after_s")
    print(f"  consoles' CPU during the load: {res['cpu']['consoles'] * 100:.0f} % of a core "
          f"(all {len(res['consoles'])}); they had every record "
          + (f"{ca:.1f} s after the load ended" if ca is not None else "never, within the tail")
          + f" (used {res['cpu_tail_consoles']:.1f} CPU s after the load)")
    print("  CPU during the load, % of one core (on a CPU / runnable but waiting for one): "
          + ", ".join(f"{k} {v * 100:.0f} / {res['wait'][k] * 100:.0f}"
                      for k, v in res["cpu"].items()))
    busy = sum(res["cpu"].values())
    print(f"  all of it during the load: {busy * 100:.0f} % of one core, of "
          f"{len(os.sched_getaffinity(0)) * 100} % this machine has; the whole machine was busy "
          f"{res['machine_busy'] * 100:.0f} % (so {max(0.0, res['machine_busy'] - busy) * 100:.0f} "
          f"% was other work: the kernel's softirqs, other users), load average "
          f"{res['loadavg']:.1f}")
    for name in ("join_under_load", "join_quiet"):
        j = res.get(name)
        if j is None:
            continue
        label = "late joiner during the load" if name == "join_under_load" else \
            (f"late joiner after the load (publisher stopped; machine busy "
             f"{j.get('machine_busy', 0) * 100:.0f} % of 200 % meanwhile)")
        if "error" in j:
            print(f"  {label}: error {j['error']}")
        else:
            print(f"  {label}: {fmt_join(j, args.cases, args.units)}; holds {j['cases']:,} "
                  f"cases, {j['units']:,} units, {j['sensors']:,} sensors")
        out[name] = j.get("whole_s")
        pr = j.get("probe")
        if pr:
            sec = pr.get("seconds")
            print(f"  a bare state request at {0.3 * args.seconds:g} s into the load (a DEALER, "
                  "no subscription): " + (f"answered in {sec:.3f} s ({pr['bytes'] / 1e6:.1f} MB, "
                                          f"{pr['frames']} frames)" if sec is not None else
                                          pr.get("error") or "no answer in 30 s"))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=50_000, help="records/s offered (default 50,000)")
    p.add_argument("--seconds", type=float, default=10.0, help="load duration (default 10)")
    p.add_argument("--subscribers", type=int, default=50, help="counting SUB sockets (50)")
    p.add_argument("--sub-procs", type=int, default=2, help="processes they live in (2)")
    p.add_argument("--consoles", type=int, default=3, help="headless consoles (3)")
    p.add_argument("--batch", type=int, default=100, help="records a message (100)")
    p.add_argument("--cases", type=int, default=10_000, help="open cases in the state (10,000)")
    p.add_argument("--units", type=int, default=5_000, help="units in the state (5,000)")
    p.add_argument("--tail", type=float, default=30.0,
                   help="at most this long after the load for everyone to catch up (30)")
    p.add_argument("--curve", action="store_true", help="keys everywhere (CURVE)")
    p.add_argument("--no-raw", action="store_true", help="skip the raw PUB→SUB baseline")
    p.add_argument("--no-late-join", dest="late_join", action="store_false")
    args = p.parse_args(argv)
    mpctx = mp.get_context("spawn")
    tmp = Path(tempfile.mkdtemp(prefix="citywall-bench-broker-"))
    try:
        print("CityWall broker benchmark  (" + "; ".join(machine()) + ")")
        print(f"  {args.subscribers} counting subscribers in {args.sub_procs} processes, "
              f"{args.consoles} headless consoles, {args.batch} records a message, "
              f"{'CURVE' if args.curve else 'no keys'}, tcp loopback")
        keys = make_keys(tmp) if args.curve else None
        print("\nthe machine's limit: decoding the load's messages in one process")
        lim = decode_limits(args)
        print(f"  {lim['records_per_msg']:.0f} records, {lim['bytes_per_msg'] / 1000:.1f} kB a "
              f"message; bare msgspec (typed) {lim['msgspec_typed']:,.0f} records/s, untyped "
              f"{lim['msgspec_untyped']:,.0f} records/s; the console's decoder "
              f"{lim['console_decoder']:,.0f} records/s; a subscriber's count "
              f"{lim['subscriber_count']:,.0f} records/s")
        print(f"  so {args.rate:,.0f} records/s is {args.rate / lim['msgspec_typed'] * 100:.0f} % "
              f"of a core to decode once (bare), {args.rate / lim['console_decoder'] * 100:.0f} % "
              f"with the console's checks: the broker's state decodes everything once, each "
              f"console once more")
        print(f"\nthrough the broker ({args.seconds:g} s at {args.rate:,.0f} records/s)")
        res = fanout_run(args, mpctx, tmp, keys, raw=False)
        fig = print_run(res, args)
        if res.get("broker_log", "").strip():
            tail = res["broker_log"].strip().splitlines()[-3:]
            print("  broker log (last lines): " + " | ".join(tail))
        raw_fig = None
        if not args.no_raw:
            print(f"\nthe machine's limit: raw PUB→SUB loopback, no broker (the same publisher, "
                  f"{args.subscribers} subscribers and {args.consoles} consoles, no state, no keys)")
            rres = fanout_run(args, mpctx, tmp, None, raw=True)
            raw_fig = print_run(rres, args)
        print("\naims")
        ok = fig["every"] == fig["subs"] and fig["kept_up"]

        def pace(f, r):
            c = f["caught_up_s"]
            return (f"{f['every']} of {f['subs']} got every record; when the publisher "
                    f"finished the slowest had {pct(f['at_end_min'], r['total_published'])}, "
                    + (f"all had everything {c:.1f} s later" if c is not None else
                       "and they never all had everything"))
        print(f"  every subscriber gets every record at {args.rate:,.0f}/s (all of them, and "
              f"keeping pace: everything within 1 s of the load's end): "
              f"{'MET' if ok else 'NOT MET'} (broker: {pace(fig, res)})"
              + (f"; raw PUB→SUB without the broker: {pace(raw_fig, rres)}" if raw_fig else ""))
        for name, label in (("join_under_load", "during the load"),
                            ("join_quiet", "when quiet")):
            if name in fig:
                w = fig[name]
                print(f"  a late joiner whole in under 1 s ({label}): "
                      f"{'MET' if w is not None and w < 1.0 else 'NOT MET'} "
                      f"({'never whole' if w is None else f'{w:.3f} s'})")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""The broker benchmark's load (``bench/broker.py``): the city's messages and the processes that
send and count them.

- The message mix, pre-encoded with placeholders for each record's ``seq`` and the send time:
  the seed (every case, open, and every unit once, the city a late joiner must hold) and the
  load (60 % sensor readings of six kinds over 20,000 ids, 20 % updates of those cases — with a
  citizen's text — and 20 % of those units; one topic a message).
- The publisher process: an XPUB that connects to the broker's ``--in`` (or binds, for the raw
  baseline), waits for its subscribers, then seeds and sends the load at a paced rate in 10 ms
  slices with a heartbeat each second, waiting (not dropping) while its queue is full.
- The counting subscribers' process: raw SUB sockets that count a message's records from its
  bytes and check ``seq`` continuity per socket.

Both processes take their commands on a multiprocessing pipe and answer on it.
"""
from __future__ import annotations

import random
import re
import time

import msgspec
import zmq

from bench.mix import CATEGORIES, KINDS, TEXTS   # the same city mix as bench/curve.py

SRC = "bench"
RAW_SRC = "raw"
SENSORS = 20_000
OPEN_STATUSES = ["reported", "registered", "dispatched", "on_scene", "resolved", "verified"]
UNIT_STATUSES = ["available", "dispatched", "en_route", "on_scene", "returning"]
UNIT_KINDS = ["foot_patrol", "vehicle", "enforcement", "sanitation"]
SEQ_MARK = 987_654_321_987_654          # placeholders in the pre-encoded templates
TS_MARK = 123_456_789_123_456
TEMPLATES = 400                         # distinct load messages the publisher cycles through
SLICE_S = 0.01
NOW = lambda: time.time_ns() // 1_000_000        # noqa: E731


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

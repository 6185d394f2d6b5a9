"""The city-scale publisher for ``bench/city_ingest.py``: ``bench/mix.py``'s messages, pre-encoded
once, re-stamped as they are sent, from a process of its own.

A pool of the mix's messages is encoded once (``mix.messages``) and turned into templates: in
every record ``seq`` and ``ts`` (and a case's ``reported_at``) become ``%d`` and a case id's
``C<seed>-`` prefix becomes ``C<tag>-``. Sending a message is then one ``%`` on bytes:

- ``seq`` is renumbered in sending order, +1 for every record of the ``src`` across all its
  topics and its heartbeats (``mix.messages`` groups a batch by topic, so its own seqs are
  not in sending order; a receiver would call them gaps and restarts);
- ``ts`` (and ``reported_at``) is the send time, ms since the epoch (``time.time_ns()``), so
  a record is judged against the console's clock as it would be live, and publish→situation
  latency can be read off any record: (time applied − ts), which over-reads by < 1 ms;
- the tag is new on every pass through the pool (``<seed>.<src>.<pass>``, the step's own
  ``src`` in it), so a "new case" of the mix is new every time, never an update of an old one.

No other byte of the mix's messages changes (``render`` gives them as sent, for the limit
measurements and the tests). Every second, and at the start and the end of a step, an ``hb``.
"""
from __future__ import annotations

import re
import time

import zmq

from bench.ingest import Publisher
from bench.mix import SENSORS90, messages

MARK_TS = 1_111_111_111_111           # the ts the pool is encoded with, then made a placeholder
SEED = 7
SLICE_S = 0.01                        # pacing slice

MIXES = {"city": {}, "sensors90": dict(SENSORS90)}

_SEQ = re.compile(rb'"seq":\d+')
_TS = re.compile(rb'"(ts|reported_at)":%d' % MARK_TS)


class Templates:
    """The pool of one mix as templates: ``(topic, template, n_records, is_case)``."""

    def __init__(self, mix: str, pool: int, src: str = "SRC"):
        self.mix = mix
        self.src = src
        msgs = messages(pool, MARK_TS, src=src, seed=SEED, **MIXES[mix])
        self.items: list[tuple[bytes, bytes, int, bool]] = []
        case_prefix = b'"case_id":"C%d-' % SEED
        for topic, payload in msgs:
            n = payload.count(b'"v":1,')
            t = payload.replace(b"%", b"%%")
            t = _SEQ.sub(b'"seq":%d', t)
            t = _TS.sub(rb'"\1":%d', t)
            is_case = topic == b"case"
            if is_case:
                t = t.replace(case_prefix, b'"case_id":"C%s-')
            per = 4 if is_case else 2
            if t.count(b"%") - 2 * t.count(b"%%") != per * n:
                raise ValueError(f"template of a {topic!r} message: placeholders do not match")
            self.items.append((topic, t, n, is_case))
        self.records = sum(n for _, _, n, _ in self.items)

    def for_src(self, src: str) -> list[tuple[bytes, bytes, int, bool]]:
        """The templates with ``src`` written in (once per step, before it is timed)."""
        old = b'"src":"%s"' % self.src.encode()
        new = b'"src":"%s"' % src.encode().replace(b"%", b"%%")
        return [(topic, t.replace(old, new), n, c) for topic, t, n, c in self.items]


def fill(template: bytes, n: int, is_case: bool, seq: int, ts: int, tag: bytes) -> bytes:
    """One message: its ``n`` records numbered from ``seq``, stamped ``ts``."""
    if is_case:
        args = [ts] * (4 * n)
        args[0::4] = range(seq, seq + n)
        args[2::4] = [tag] * n
    else:
        args = [ts] * (2 * n)
        args[0::2] = range(seq, seq + n)
    return template % tuple(args)


def render(tmpl: Templates, src: str, ts: int, seq: int = 0, tag: bytes = b"7"):
    """Every message of the pool as it would be sent: ``[topic, payload]`` frames."""
    out = []
    for topic, t, n, is_case in tmpl.for_src(src):
        out.append([topic, fill(t, n, is_case, seq, ts, tag)])
        seq += n
    return out


def heartbeat(src: bytes, seq: int, rate: float) -> list[bytes]:
    return [b"hb", b'{"v":1,"src":"%s","seq":%d,"ts":%d,"rate":%.1f}'
            % (src, seq, time.time_ns() // 1_000_000, float(rate))]


def publish(sock: zmq.Socket, tmpl: Templates, src: str, rate: float, duration: float) -> dict:
    """Send ``rate`` records a second for ``duration`` seconds, paced in 10 ms slices, whole
    messages of the pool in order (wrapping round it), with an ``hb`` at the start, every
    second and at the end. Returns what was sent and when (``time.time()``)."""
    items = tmpl.for_src(src)
    srcb = src.encode()
    send = sock.send_multipart
    seq = sent = msgs = hbs = i = passes = 0
    tag = b"%d.%s.0" % (SEED, srcb)
    cpu0 = time.process_time()
    wall0 = time.time()
    t0 = time.perf_counter()
    next_slice = next_hb = t0
    while True:
        now = time.perf_counter()
        el = now - t0
        last = el >= duration
        if now >= next_hb and not last:
            send(heartbeat(srcb, seq, rate))
            seq += 1
            hbs += 1
            next_hb += 1.0
        due = int(rate * min(el, duration))
        ts = time.time_ns() // 1_000_000
        while sent < due:
            topic, t, n, is_case = items[i]
            send([topic, fill(t, n, is_case, seq, ts, tag)])
            seq += n
            sent += n
            msgs += 1
            i += 1
            if i == len(items):
                i = 0
                passes += 1
                tag = b"%d.%s.%d" % (SEED, srcb, passes)
        if last:
            break
        next_slice += SLICE_S
        delay = next_slice - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    dur = time.perf_counter() - t0
    t_end = time.time()
    send(heartbeat(srcb, seq, rate))
    hbs += 1
    return {"sent": sent, "hbs": hbs, "msgs": msgs, "t_start": wall0, "t_end": t_end,
            "dur": dur, "offered": sent / dur if dur > 0 else 0.0,
            "cpu": time.process_time() - cpu0, "passes": passes}


def publisher_main(conn, mix: str, pool: int) -> None:
    """The publisher process. Says ("endpoint", ep), then ("ready", joined, pool records)
    once a subscriber joined; then ("run", src, rate, duration) → ("done", stats);
    ("quit",) ends it."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    try:
        port = sock.bind_to_random_port("tcp://127.0.0.1")
        conn.send(("endpoint", f"tcp://127.0.0.1:{port}"))
        tmpl = Templates(mix, pool)
        joined = bool(sock.poll(20_000))
        if joined:
            sock.recv()
        conn.send(("ready", joined, tmpl.records))
        while True:
            try:
                if not conn.poll(1.0):
                    continue
                cmd = conn.recv()
            except (EOFError, OSError):
                break
            if cmd[0] == "quit":
                break
            if cmd[0] == "run":
                _, src, rate, duration = cmd
                conn.send(("done", publish(sock, tmpl, src, rate, duration)))
    finally:
        sock.close(0)
        ctx.term()
        try:
            conn.close()
        except OSError:
            pass


class CityPublisher(Publisher):
    """The parent's handle on one publisher process (spawned); polling and closing as
    ``bench/ingest.py``'s."""

    def __init__(self, mpctx, mix: str, pool: int):
        self.conn, child = mpctx.Pipe()
        self.proc = mpctx.Process(target=publisher_main, args=(child, mix, pool),
                                  name=f"city-publisher-{mix}", daemon=True)
        self.proc.start()
        child.close()
        kind, self.endpoint = self._recv(60)
        if kind != "endpoint":
            raise RuntimeError(f"publisher said {kind!r}")
        self.pool_records = 0

    def wait_ready(self, timeout: float = 60) -> bool:
        kind, joined, self.pool_records = self._recv(timeout)
        return kind == "ready" and joined

    def run(self, src: str, rate: float, duration: float) -> None:
        self.conn.send(("run", src, rate, duration))

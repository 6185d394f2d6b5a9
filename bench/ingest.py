#!/usr/bin/env python
"""Ingest benchmark: how many protocol records a second the console takes in, and at what cost.

    .venv/bin/python bench/ingest.py [--quick] [--soak-seconds N] [--no-wall]

A publisher in a separate process (multiprocessing, spawn) binds an XPUB on tcp loopback and
sends valid protocol v1 ``sensor.air`` records at rising rates, unbatched and in batches of 100,
plus a heartbeat a second. The console side is the real ``feeds.receiver.Receiver`` and
``situation.store.Situation``, drained either by a headless loop (like ``ui.headless``) or by
``ui.bridge.SituationBridge`` on a Qt event loop (with the wall windows when ``ui.wall`` is
there). Each record carries its send time in ``metrics["t_send"]`` (wall clock, seconds), so
publish→situation latency is measured per record.

This script PRINTS figures; it never asserts. Every step is time-bounded and everything it
starts (publisher processes, receiver threads, sockets, contexts) is stopped at the end.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import gc  # noqa: E402
import multiprocessing as mp  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections import deque  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import zmq  # noqa: E402

SENSORS = 300                 # distinct sensor ids the publisher cycles through
TOPIC = b"sensor.air"
DISTRICT = b"110105"          # Chaoyang; records carry it, as the demo city's do
DRAIN_INTERVAL_S = 0.05       # the headless runner's and the bridge's drain period
TAIL_S = 5.0                  # how long after the load stops we wait for the backlog
SLICE_S = 0.01                # publisher pacing slice


# =============================================================================================
# The publisher process
# =============================================================================================

def _sensor_mids() -> list[bytes]:
    """The per-sensor middle of a record: everything between ``seq`` and the pm25 value."""
    mids = []
    for i in range(SENSORS):
        lat = 39.85 + (i % 20) * 0.005
        lon = 116.40 + (i // 20) * 0.005
        mids.append(b',"id":"air-%04d","kind":"air","lat":%.5f,"lon":%.5f,"district":"%s",'
                    b'"metrics":{"pm25":' % (i, lat, lon, DISTRICT))
    return mids


class _Templates:
    """Pre-built message templates: one ``%`` per message fills in every record's ``seq`` and
    the message's send time (keeps the publisher's own CPU low, the machine is shared)."""

    def __init__(self, src: str, mids: list[bytes]):
        self.head = (b'{"v":1,"src":"%s","seq":' % src.encode()).replace(b"%", b"%%")
        self.mids = [m.replace(b"%", b"%%") for m in mids]
        self._cache: dict[tuple[int, int], bytes] = {}

    def get(self, k: int, m: int) -> bytes:
        """Records for sensors k, k+1, … (mod SENSORS), m of them; unbatched when m == 0."""
        t = self._cache.get((k, m))
        if t is None:
            n = len(self.mids)
            parts = [self.head + b"%d" + self.mids[(k + j) % n] + b"%d.5" % ((k + j) % 97)
                     + b"%s" for j in range(max(m, 1))]
            t = parts[0] if m == 0 else b"[" + b",".join(parts) + b"]"
            t = self._cache[(k, m)] = t
        return t


def _publish(sock: zmq.Socket, src: str, rate: float, batch: int, duration: float,
             mids: list[bytes]) -> dict:
    """Send ``rate`` records a second for ``duration`` seconds, paced in 10 ms slices, in
    messages of ``batch`` records, plus an ``hb`` at the start, every second and at the end.
    ``seq`` moves +1 for every record of ``src`` (heartbeats included)."""
    srcb = src.encode()
    tmpl = _Templates(src, mids)
    n = len(mids)
    seq = sent = msgs = hbs = 0
    k = 0                         # which sensor comes next
    send = sock.send_multipart

    def heartbeat():
        nonlocal seq, hbs
        now_ms = time.time_ns() // 1_000_000
        send([b"hb", b'{"v":1,"src":"%s","seq":%d,"ts":%d,"rate":%.1f}'
              % (srcb, seq, now_ms, float(rate))])
        seq += 1
        hbs += 1

    cpu0 = time.process_time()
    wall0 = time.time()
    t0 = time.perf_counter()
    next_slice = t0
    next_hb = t0
    while True:
        now = time.perf_counter()
        el = now - t0
        last = el >= duration
        if now >= next_hb and not last:
            heartbeat()
            next_hb += 1.0
        due = int(rate * min(el, duration))
        while due - sent >= batch or (last and due > sent):
            m = min(batch, due - sent)
            t_send = time.time()
            tail = b',"t_send":%.6f},"ts":%d}' % (t_send, int(t_send * 1000))
            if batch == 1:
                payload = tmpl.get(k, 0) % (seq, tail)
            else:
                args = [tail] * (2 * m)
                args[0::2] = range(seq, seq + m)
                payload = tmpl.get(k, m) % tuple(args)
            send([TOPIC, payload])
            seq += m
            sent += m
            msgs += 1
            k = (k + m) % n
        if last:
            break
        next_slice += SLICE_S
        delay = next_slice - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    dur = time.perf_counter() - t0
    t_end = time.time()
    heartbeat()
    cpu = time.process_time() - cpu0
    return {"sent": sent, "hbs": hbs, "msgs": msgs, "t_start": wall0, "t_end": t_end,
            "dur": dur, "offered": sent / dur if dur > 0 else 0.0, "cpu": cpu}


def publisher_main(conn) -> None:
    """Entry point of the publisher process. Commands over ``conn``:
    ("run", src, rate, batch, duration) → ("done", stats); ("quit",)."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    try:
        port = sock.bind_to_random_port("tcp://127.0.0.1")
        conn.send(("endpoint", f"tcp://127.0.0.1:{port}"))
        # Wait for the subscriber: XPUB hands us its subscription message.
        joined = bool(sock.poll(20_000))
        if joined:
            sock.recv()
        conn.send(("ready", joined))
        mids = _sensor_mids()
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
                _, src, rate, batch, duration = cmd
                conn.send(("done", _publish(sock, src, rate, batch, duration, mids)))
    finally:
        sock.close(0)
        ctx.term()
        try:
            conn.close()
        except OSError:
            pass


class Publisher:
    """The parent's handle on one publisher process."""

    def __init__(self, mpctx):
        self.conn, child = mpctx.Pipe()
        self.proc = mpctx.Process(target=publisher_main, args=(child,), name="bench-publisher",
                                  daemon=True)
        self.proc.start()
        child.close()
        kind, self.endpoint = self._recv(30)
        assert kind == "endpoint"

    def _recv(self, timeout: float):
        if not self.conn.poll(timeout):
            raise TimeoutError("publisher process did not answer")
        return self.conn.recv()

    def wait_ready(self, timeout: float = 25) -> bool:
        kind, joined = self._recv(timeout)
        return kind == "ready" and joined

    def run(self, src: str, rate: float, batch: int, duration: float) -> None:
        self.conn.send(("run", src, rate, batch, duration))

    def poll_done(self) -> dict | None:
        if self.conn.poll():
            kind, stats = self.conn.recv()
            return stats
        return None

    def close(self) -> None:
        try:
            self.conn.send(("quit",))
        except (OSError, BrokenPipeError):
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        self.conn.close()


# =============================================================================================
# Measuring on the console side
# =============================================================================================

def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


_TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu_s(native_id: int | None) -> float:
    """CPU seconds (user+system) a thread of this process has used."""
    if native_id is None:
        return float("nan")
    try:
        with open(f"/proc/self/task/{native_id}/stat") as fh:
            data = fh.read()
    except OSError:
        return float("nan")
    fields = data[data.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


class LatencyHistogram:
    """Latencies in 0.1 ms bins: constant memory however long the run (a list of samples
    would itself grow by tens of MB over a 5 minute soak and spoil the RSS figure)."""

    def __init__(self):
        self.bins: dict[int, int] = {}
        self.n = 0

    def add_many(self, seconds) -> None:
        bins = self.bins
        for s in seconds:
            k = int(s * 10_000)
            bins[k] = bins.get(k, 0) + 1
            self.n += 1

    def percentile_ms(self, q: float) -> float:
        if not self.n:
            return float("nan")
        rank = q * (self.n - 1)
        seen = 0
        for k in sorted(self.bins):
            seen += self.bins[k]
            if seen > rank:
                return (k + 0.5) / 10
        return (max(self.bins) + 0.5) / 10


class Meter:
    """Latency samples and (time, records applied) points for the current step's ``src``."""

    SAMPLES_PER_DRAIN = 256

    def __init__(self, situation):
        self.situation = situation
        self.reset("")

    def reset(self, src: str) -> None:
        self.src = src
        self.lat = LatencyHistogram()
        # (time, records applied) after each drain; only the recent ones are needed (when the
        # last record landed), and a bounded deque keeps a long soak's memory flat.
        self.points: deque[tuple[float, int]] = deque(maxlen=4096)
        self.count = 0
        self.peak = 0             # most records in one drain
        self.max_drain_s = 0.0    # longest drain (+apply)
        self._pending: list[float] = []
        self._t0 = 0.0

    def take(self, records: list) -> None:
        """Before apply: remember the send times of a sample of the drained records."""
        self._t0 = time.perf_counter()
        n = len(records)
        if n > self.peak:
            self.peak = n
        if not n:
            return
        stride = n // self.SAMPLES_PER_DRAIN + 1
        out = self._pending
        for r in records[::stride]:
            m = getattr(r, "metrics", None)
            if m is not None:
                t = m.get("t_send")
                if t is not None:
                    out.append(t)

    def applied(self) -> None:
        """Right after apply: the records are in the situation now."""
        now = time.time()
        d = time.perf_counter() - self._t0
        if d > self.max_drain_s:
            self.max_drain_s = d
        if self._pending:
            self.lat.add_many([now - t for t in self._pending])
            self._pending = []
        h = self.situation.sources.get(self.src)
        self.count = h.records if h is not None else 0
        self.points.append((now, self.count))


@dataclass
class Row:
    mode: str
    batch: int
    target: float
    offered: float = 0.0
    accepted: float = 0.0
    gaps: int = 0
    missed: int = 0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    busy_drain: float = float("nan")     # wall-time share in drain+apply (bridge.busy_s)
    busy_loop: float = float("nan")      # dispatcher awake→aboutToBlock share
    busy_gui: float = float("nan")       # wall-time share the GUI thread spent in events
    main_cpu: float = float("nan")       # main (GUI) thread CPU, share of one core
    rx_cpu: float = float("nan")         # receiver thread CPU, share of one core
    pub_cpu: float = float("nan")        # publisher process CPU, share of one core
    peak: int = 0
    max_drain_ms: float = 0.0
    backlog_s: float | None = None
    left: int = 0
    error: str = ""

    @property
    def drained(self) -> bool:
        return self.backlog_s is not None

    def gui_busy(self) -> float:
        """The GUI-thread busy share judged against the aim: the widest measure we have."""
        vals = [v for v in (self.busy_drain, self.busy_gui) if v == v]
        return max(vals) if vals else float("nan")

    def qualifies(self, gui_limit: float | None = None) -> bool:
        ok = (not self.error and self.offered >= 0.95 * self.target and self.gaps == 0
              and self.drained and self.backlog_s <= 1.0)
        if gui_limit is not None:
            ok = ok and self.gui_busy() < gui_limit
        return ok


HEADER = (f"{'mode':<9}{'batch':>6}{'target/s':>10}{'offered/s':>11}{'accepted/s':>12}"
          f"{'gaps':>5}{'p50 ms':>8}{'p99 ms':>8}{'drain%':>7}{'loop%':>6}{'gui%':>6}"
          f"{'main%':>6}{'rx%':>5}{'pub%':>5}{'peak/drain':>11}{'max drain ms':>13}"
          f"  backlog after stop")


def fmt_row(r: Row) -> str:
    def f(v, spec):
        return "-" if v != v else format(v, spec)      # NaN → "-"
    if r.error:
        backlog = r.error
    elif r.drained:
        backlog = f"{r.backlog_s:.2f} s"
    else:
        backlog = f"not drained in {TAIL_S:.0f} s, {r.left:,} left"
    gaps = f"{r.gaps}" if not r.missed else f"{r.gaps}({r.missed:,})"
    return (f"{r.mode:<9}{r.batch:>6}{r.target:>10,.0f}{r.offered:>11,.0f}{r.accepted:>12,.0f}"
            f"{gaps:>5}{f(r.p50_ms, '.1f'):>8}{f(r.p99_ms, '.1f'):>8}"
            f"{f(r.busy_drain * 100, '.1f'):>7}{f(r.busy_loop * 100, '.1f'):>6}"
            f"{f(r.busy_gui * 100, '.1f'):>6}{f(r.main_cpu * 100, '.0f'):>6}"
            f"{f(r.rx_cpu * 100, '.0f'):>5}{f(r.pub_cpu * 100, '.0f'):>5}"
            f"{r.peak:>11,}{r.max_drain_ms:>13.1f}  {backlog}")


LEGEND = """\
   offered = the publisher's actual rate; accepted = records in the situation / (last one
   applied − first sent), backlog included; gaps = seq gaps seen (records missed);
   p50/p99 = publish→situation latency (t_send in the record → right after apply);
   drain% = wall-time share of the consumer thread inside drain+apply (the bridge's busy_s);
   loop% = share between the dispatcher's awake and aboutToBlock signals; gui% = CPU share of
   the GUI thread (wall mode), i.e. everything it did: drains, panel redraws, the map's patches;
   main%/rx%/pub% = CPU of the main thread / receiver thread / publisher process, of one core;
   peak/drain = most records handed over by one drain(); max drain ms = longest drain+apply;
   backlog = from the publisher's last send until every record sent is in the situation."""


def finish_row(row: Row, meter: Meter, situation, stats: dict | None, m: dict) -> Row:
    if stats is None:
        row.error = "publisher did not finish in time"
        return row
    row.offered = stats["offered"]
    total = stats["sent"] + stats["hbs"]
    t_start, t_end = stats["t_start"], stats["t_end"]
    drained_at = next((t for t, c in meter.points if c >= total), None)
    row.backlog_s = None if drained_at is None else max(0.0, drained_at - t_end)
    row.left = max(0, total - meter.count)
    last_t = drained_at if drained_at is not None else (
        meter.points[-1][0] if meter.points else t_end)
    row.accepted = meter.count / max(last_t - t_start, 1e-9)
    h = situation.sources.get(meter.src)
    if h is not None:
        row.gaps, row.missed = h.gaps, h.missed
    row.p50_ms = meter.lat.percentile_ms(0.50)
    row.p99_ms = meter.lat.percentile_ms(0.99)
    window = max(m.get("window", 0.0), 1e-9)
    row.busy_drain = m.get("drain", float("nan")) / window
    row.busy_loop = m.get("loop", float("nan")) / window
    row.busy_gui = m.get("gui", float("nan")) / window
    row.main_cpu = m.get("main", float("nan")) / window
    row.rx_cpu = m.get("rx", float("nan")) / window
    row.pub_cpu = stats.get("cpu", float("nan")) / max(stats["dur"], 1e-9)
    row.peak = meter.peak
    row.max_drain_ms = meter.max_drain_s * 1000
    return row


# =============================================================================================
# Headless
# =============================================================================================

class Feed:
    """One publisher process and one receiver subscribed to it."""

    def __init__(self, mpctx, zctx):
        from feeds.receiver import Receiver
        self.pub = Publisher(mpctx)
        self.rx = Receiver([self.pub.endpoint], context=zctx).start()
        if not self.pub.wait_ready():
            self.close()
            raise RuntimeError("the receiver never subscribed to the publisher")

    @property
    def rx_tid(self) -> int | None:
        t = self.rx._thread
        return t.native_id if t is not None else None

    def close(self) -> None:
        self.rx.stop()
        self.pub.close()


def headless_step(feed: Feed, situation, meter: Meter, src: str, rate: float, batch: int,
                  duration: float, on_tick=None) -> Row:
    row = Row("headless", batch, rate)
    meter.reset(src)
    rx0, main0 = thread_cpu_s(feed.rx_tid), time.thread_time()
    t_cmd = time.time()
    busy = 0.0
    stats = None
    measured: dict = {}
    feed.pub.run(src, rate, batch, duration)
    hard = time.monotonic() + duration + TAIL_S + 15
    while time.monotonic() < hard:
        time.sleep(DRAIN_INTERVAL_S)            # as ui.headless.run_headless does
        t0 = time.perf_counter()
        b, heard = feed.rx.drain()
        meter.take(b.records)
        situation.apply(b, heard)
        meter.applied()
        busy += time.perf_counter() - t0
        if on_tick is not None:
            on_tick()
        if stats is None:
            stats = feed.pub.poll_done()
            if stats is not None:     # the load window: command sent → publisher done
                measured = {"drain": busy, "rx": thread_cpu_s(feed.rx_tid) - rx0,
                            "main": time.thread_time() - main0, "window": time.time() - t_cmd}
        if stats is not None:
            if meter.count >= stats["sent"] + stats["hbs"]:
                break
            if time.time() - stats["t_end"] > TAIL_S:
                break
    return finish_row(row, meter, situation, stats, measured)


def run_series_headless(mpctx, zctx, situation, meter, batch, rates, duration,
                        rows: list[Row]) -> None:
    feed = Feed(mpctx, zctx)
    try:
        # Warm-up, not reported: one second at a low rate so the pipeline is flowing.
        headless_step(feed, situation, meter, f"warm-h{batch}", 1000, batch, 1.0)
        for rate in rates:
            row = headless_step(feed, situation, meter, f"h-b{batch}-r{rate}", rate, batch,
                                duration)
            rows.append(row)
            print(fmt_row(row), flush=True)
            if row.error or not row.drained:
                print(f"{'':9}(console overrun: higher rates of this series skipped)",
                      flush=True)
                break
    finally:
        feed.close()


# =============================================================================================
# The wall (Qt)
# =============================================================================================

class TapReceiver:
    """Stands in for a receiver in the bridge: drains the real one, lets the meter sample."""

    def __init__(self, rx, meter: Meter):
        self.rx = rx
        self.meter = meter

    def take(self):
        batch = self.rx.take()
        self.meter.take(batch.records)
        return batch


class LoopBusy:
    """GUI-thread time between the event dispatcher's ``awake`` and ``aboutToBlock`` signals.

    Note: Qt emits ``awake`` at the start of ``processEvents`` and ``aboutToBlock`` just before
    it sleeps; timers and socket notifiers fire *after* the sleep returns and before the next
    ``awake``, so this span holds posted events only, not timer work (the bridge's drain is a
    timer). ``gui%`` (the GUI thread's CPU time) is the whole-thread measure."""

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher
        self.busy = 0.0
        self.wakes = 0
        self._t: float | None = None
        dispatcher.awake.connect(self._awake)
        dispatcher.aboutToBlock.connect(self._block)

    def _awake(self) -> None:
        if self._t is None:
            self._t = time.perf_counter()
            self.wakes += 1

    def _block(self) -> None:
        if self._t is not None:
            self.busy += time.perf_counter() - self._t
            self._t = None

    def total(self) -> float:
        return self.busy + (time.perf_counter() - self._t if self._t is not None else 0.0)


def _make_app():
    """A QApplication that adds up the wall time of every outermost event delivery on the GUI
    thread: timers, posted events, paints, input, the bridge's drain. That is how long the
    GUI thread was not free to react."""
    # QtWebEngine (the wall's map) must be loaded, its scheme registered and Chromium's flags
    # set before the QApplication exists, as ui.app does.
    import PySide6.QtWebEngineWidgets  # noqa: F401
    from PySide6.QtWidgets import QApplication

    from ui.app import chromium_flags
    from widgets.tiles import register_scheme
    chromium_flags()
    register_scheme()

    # (An earlier version timed every event by overriding QApplication.notify; with
    # QtWebEngine loaded that crashes inside a nested event loop, so the GUI thread's busy
    # share is its own CPU time instead: everything it did, timers and paints included.)
    existing = QApplication.instance()
    return existing if existing is not None else QApplication([sys.argv[0]])


class Wall:
    def __init__(self, situation, meter: Meter):
        from PySide6.QtCore import QAbstractEventDispatcher
        from PySide6.QtGui import QGuiApplication

        from ui.bridge import SituationBridge
        self.app = _make_app()
        self.situation = situation
        self.meter = meter
        self.bridge = SituationBridge(situation, [])
        # Connected before the wall's own slots: latency is taken right after apply.
        self.bridge.changed.connect(lambda _change: meter.applied())
        self.windows = []
        self.window_count = 0
        self.note = ""
        try:
            from ui.wall import build_wall
        except Exception as exc:                      # noqa: BLE001 - any import failure
            self.note = f"wall: ui.wall not available, bridge only ({type(exc).__name__}: {exc})"
        else:
            try:
                try:
                    from widgets.theme import apply_theme
                    apply_theme(self.app)
                except Exception:                     # noqa: BLE001 - theme is optional here
                    pass
                self.windows = list(build_wall(situation, self.bridge, "zh", "LIVE",
                                               QGuiApplication.screens()))
                for w in self.windows:
                    w.show()
                self.window_count = len(self.windows)
                self.note = (f"wall: {len(self.windows)} window(s) open on "
                             f"{len(QGuiApplication.screens())} screen(s)")
            except Exception as exc:                  # noqa: BLE001
                self.windows = []
                self.note = (f"wall: build_wall failed, bridge only "
                             f"({type(exc).__name__}: {exc})")
        self.dispatcher = QAbstractEventDispatcher.instance(self.app.thread())
        self.loop_busy = LoopBusy(self.dispatcher)
        self.bridge.start()

    def gui_busy(self) -> float:
        return time.thread_time()          # this runs on the GUI thread

    def close(self) -> None:
        self.bridge.stop()
        for w in self.windows:
            try:
                w.close()
            except Exception:                         # noqa: BLE001
                pass
        self.windows = []
        self.app.processEvents()

    def step(self, feed: Feed, src: str, rate: float, batch: int, duration: float) -> Row:
        from PySide6.QtCore import QEventLoop, QTimer
        row = Row("wall", batch, rate)
        meter = self.meter
        meter.reset(src)
        self.bridge.sources = [TapReceiver(feed.rx, meter)]
        busy0, loop0, gui0 = self.bridge.busy_s, self.loop_busy.total(), self.gui_busy()
        rx0, main0 = thread_cpu_s(feed.rx_tid), time.thread_time()
        t_cmd = time.time()
        state: dict = {}
        loop = QEventLoop()
        hard = time.monotonic() + duration + TAIL_S + 15

        def check():
            if "stats" not in state:
                stats = feed.pub.poll_done()
                if stats is not None:       # the load window: command sent → publisher done
                    state["stats"] = stats
                    state["m"] = {"drain": self.bridge.busy_s - busy0,
                                  "loop": self.loop_busy.total() - loop0,
                                  "gui": self.gui_busy() - gui0,
                                  "rx": thread_cpu_s(feed.rx_tid) - rx0,
                                  "main": time.thread_time() - main0,
                                  "window": time.time() - t_cmd}
            stats = state.get("stats")
            if stats is not None and (meter.count >= stats["sent"] + stats["hbs"]
                                      or time.time() - stats["t_end"] > TAIL_S):
                loop.quit()
            if time.monotonic() > hard:
                loop.quit()

        timer = QTimer()
        timer.setInterval(20)
        timer.timeout.connect(check)
        feed.pub.run(src, rate, batch, duration)
        timer.start()
        loop.exec()
        timer.stop()
        return finish_row(row, meter, self.situation, state.get("stats"), state.get("m", {}))


def run_series_wall(mpctx, zctx, wall: Wall, batch, rates, duration,
                    rows: list[Row]) -> None:
    feed = Feed(mpctx, zctx)
    try:
        wall.step(feed, f"warm-w{batch}", 1000, batch, 1.0)
        for rate in rates:
            row = wall.step(feed, f"w-b{batch}-r{rate}", rate, batch, duration)
            rows.append(row)
            print(fmt_row(row), flush=True)
            if row.error or not row.drained:
                print(f"{'':9}(console overrun: higher rates of this series skipped)",
                      flush=True)
                break
    finally:
        wall.bridge.sources = []
        feed.close()


# =============================================================================================
# In-process cost per record (no sockets): where the time goes
# =============================================================================================

def micro(quick: bool) -> list[str]:
    import msgspec

    from feeds.batch import Batch
    from feeds.decode import MessageDecoder
    from feeds.receiver import Receiver
    from situation.clock import WallClock
    from situation.store import Situation

    mids = _sensor_mids()
    out = []
    reps = 20 if quick else 60

    def payload(n: int, with_district: bool = True) -> bytes:
        t = time.time()
        tail = b',"t_send":%.6f},"ts":%d}' % (t, int(t * 1000))
        recs = [b'{"v":1,"src":"m","seq":%d%s%d.5%s' % (s, mids[s % SENSORS], s % 97, tail)
                for s in range(n)]
        if not with_district:
            recs = [r.replace(b'"district":"110105",', b"") for r in recs]
        return recs[0] if n == 1 else b"[" + b",".join(recs) + b"]"

    def per_record_us(fn, n_records: int) -> float:
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            best = min(best, (time.perf_counter() - t0) / (reps * n_records))
        return best * 1e6

    dec = MessageDecoder()
    one, hundred = payload(1), payload(100)
    big = payload(400)                    # ~90 KiB: larger than the 64 KiB record limit
    out.append(f"decode 1 record/message      {per_record_us(lambda: [dec.decode([TOPIC, one]) for _ in range(100)], 100):6.2f} µs/record")
    out.append(f"decode batch of 100 ({len(hundred) // 1024} KiB)  {per_record_us(lambda: dec.decode([TOPIC, hundred]), 100):6.2f} µs/record")
    out.append(f"decode batch of 400 ({len(big) // 1024} KiB)  {per_record_us(lambda: dec.decode([TOPIC, big]), 400):6.2f} µs/record"
               "   (over max_record_bytes: slow path)")
    raw = msgspec.json.Decoder()
    out.append(f"  (plain msgspec.json.decode of the 100-batch: {per_record_us(lambda: raw.decode(hundred), 100):.2f} µs/record)")

    # The receiver's per-message work on its thread (decode + seq tracking + merge).
    mctx = zmq.Context()
    rx = Receiver(["inproc://bench-micro-unused"], context=mctx)     # never started
    seqs = iter(range(10**9))

    def take_one():
        b = Batch()
        for _ in range(100):
            s = next(seqs)
            rx._take([TOPIC, b'{"v":1,"src":"m2","seq":%d%s1.5,"t_send":1.0},"ts":1}'
                      % (s, mids[s % SENSORS])], b, "e")
    out.append(f"receiver _take, 1 record/msg {per_record_us(take_one, 100):6.2f} µs/record")

    # apply() per record, district given and not (then the locator and a struct copy run).
    for label, with_d in (("with district", True), ("no district  ", False)):
        sit = Situation(WallClock())
        recs = dec.decode([TOPIC, payload(100, with_d)]).records
        batch = Batch(records=recs)
        sit.apply(batch)
        out.append(f"Situation.apply, {label}  {per_record_us(lambda: sit.apply(batch), 100):6.2f} µs/record")
    mctx.term()
    return out


# =============================================================================================
# Main
# =============================================================================================

def machine() -> list[str]:
    import msgspec
    lines = []
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    lines.append(f"cpus: {os.cpu_count()} ({model or platform.processor() or 'unknown'}); "
                 f"affinity {len(os.sched_getaffinity(0))}")
    lines.append(f"os: {platform.platform()}")
    lines.append(f"python: {platform.python_version()} ({platform.python_implementation()})")
    lines.append(f"pyzmq: {zmq.__version__} (libzmq {zmq.zmq_version()}); msgspec: "
                 f"{msgspec.__version__}")
    try:
        import PySide6
        from PySide6 import QtCore
        lines.append(f"PySide6: {PySide6.__version__} (Qt {QtCore.qVersion()})")
    except Exception as exc:                          # noqa: BLE001
        lines.append(f"PySide6: not importable ({exc})")
    lines.append(f"QT_QPA_PLATFORM={os.environ.get('QT_QPA_PLATFORM', '')!r}")
    return lines


def soak(mpctx, zctx, seconds: float, every: float) -> dict:
    from situation.clock import WallClock
    from situation.store import Situation
    situation = Situation(WallClock())
    meter = Meter(situation)
    feed = Feed(mpctx, zctx)
    samples: list[tuple[float, float]] = []
    t0 = time.monotonic()
    next_at = [t0]

    def tick():
        now = time.monotonic()
        if now >= next_at[0]:
            mb = rss_mb()
            samples.append((now - t0, mb))
            print(f"  t={now - t0:6.0f} s  RSS {mb:8.1f} MB  records applied "
                  f"{meter.count:>10,}", flush=True)
            next_at[0] += every

    try:
        gc.collect()
        row = headless_step(feed, situation, meter, "soak", 5000, 1, seconds,
                            on_tick=tick)
        gc.collect()
        mb = rss_mb()
        samples.append((time.monotonic() - t0, mb))
        print(f"  end       RSS {mb:8.1f} MB  records applied {meter.count:>10,}", flush=True)
    finally:
        feed.close()
    h = situation.sources.get("soak")
    recent = len(h._recent) if h is not None else 0
    hist = sum(len(d) for d in situation.sensor_history.values())
    return {"row": row, "samples": samples, "recent": recent, "hist": hist,
            "sensors": len(situation.sensors)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 s steps, fewer rates, 20 s soak")
    p.add_argument("--soak-seconds", type=float, default=None,
                   help="memory soak length at 5,000 records/s (default 300, --quick 20; 0 skips)")
    p.add_argument("--no-wall", action="store_true", help="skip the Qt wall/bridge runs")
    args = p.parse_args(argv)

    quick = args.quick
    duration = 2.0 if quick else 5.0
    soak_s = args.soak_seconds if args.soak_seconds is not None else (20.0 if quick else 300.0)
    soak_every = 5.0 if quick else 30.0
    if quick:
        h1, h100 = [1000, 10000], [50000, 200000]
        w1, w100 = [1000, 10000], [50000]
    else:
        h1, h100 = [1000, 5000, 10000, 20000, 40000], [10000, 50000, 100000, 200000, 400000]
        w1, w100 = [1000, 5000, 10000, 20000], [10000, 50000, 100000]

    started = time.monotonic()
    print("== CityWall ingest benchmark" + (" (quick)" if quick else "") + " ==")
    for line in machine():
        print(line)
    print(f"records: sensor.air, {SENSORS} sensor ids, with district; steps of {duration:.0f} s "
          f"after a 1 s warm-up per series; drain every {DRAIN_INTERVAL_S * 1000:.0f} ms; "
          f"backlog wait {TAIL_S:.0f} s")
    print(LEGEND, flush=True)

    print("\n-- in-process cost per record (no sockets) --", flush=True)
    for line in micro(quick):
        print("  " + line, flush=True)

    from situation.clock import WallClock
    from situation.store import Situation

    mpctx = mp.get_context("spawn")
    zctx = zmq.Context()
    rows: list[Row] = []
    wall_note = "not run (--no-wall)"
    soak_res = None
    wall = None
    try:
        print(f"\n-- headless: main-thread loop drains every {DRAIN_INTERVAL_S * 1000:.0f} ms (like ui.headless) --")
        print(HEADER, flush=True)
        situation = Situation(WallClock())
        meter = Meter(situation)
        run_series_headless(mpctx, zctx, situation, meter, 1, h1, duration, rows)
        run_series_headless(mpctx, zctx, situation, meter, 100, h100, duration, rows)

        if not args.no_wall:
            print("\n-- wall: QApplication (offscreen) + SituationBridge(interval_ms=50) --")
            try:
                situation = Situation(WallClock())
                meter = Meter(situation)
                wall = Wall(situation, meter)
                wall_note = wall.note
            except Exception as exc:                  # noqa: BLE001
                wall = None
                wall_note = f"wall: Qt could not start ({type(exc).__name__}: {exc})"
            print(wall_note)
            if wall is not None:
                print(HEADER, flush=True)
                run_series_wall(mpctx, zctx, wall, 1, w1, duration, rows)
                run_series_wall(mpctx, zctx, wall, 100, w100, duration, rows)
                print(f"   during the wall runs the GUI thread woke {wall.loop_busy.wakes:,} times "
                      f"and delivered {getattr(wall.app, 'events', 0):,} events")

        if soak_s > 0:
            print(f"\n-- memory soak: headless, 5,000 records/s unbatched, {soak_s:.0f} s --",
                  flush=True)
            soak_res = soak(mpctx, zctx, soak_s, soak_every)
            print(HEADER)
            print(fmt_row(soak_res["row"]))
            print(f"  after the soak: SourceHealth._recent holds {soak_res['recent']:,} entries; "
                  f"sensor history {soak_res['hist']:,} readings for {soak_res['sensors']} "
                  f"sensors", flush=True)
    finally:
        if wall is not None:
            wall.close()
        zctx.term()

    # ---- summary ----------------------------------------------------------------------------
    def find(mode, batch, rate):
        return next((r for r in rows if (r.mode, r.batch, r.target) == (mode, batch, rate)),
                    None)

    def best(mode, batch, gui_limit=None):
        ok = [r for r in rows if r.mode == mode and r.batch == batch and r.qualifies(gui_limit)]
        return max(ok, key=lambda r: r.target) if ok else None

    print("\n-- sustained rate (highest step: offered ≥ 95 % of target, no gaps, every record "
          "applied ≤ 1 s after the load stops; wall also GUI thread < 20 % busy by drain% "
          "and gui%) --")
    for mode, batch in (("headless", 1), ("headless", 100), ("wall", 1), ("wall", 100)):
        if not any(r.mode == mode and r.batch == batch for r in rows):
            continue
        b = best(mode, batch, 0.20 if mode == "wall" else None)
        tried = max(r.target for r in rows if r.mode == mode and r.batch == batch)
        print(f"  {mode:<9} batch {batch:>3}: "
              + (f"{b.target:>9,.0f} records/s (accepted {b.accepted:,.0f}/s)" if b else
                 "       none of the steps")
              + f"   [rates tried up to {tried:,.0f}/s]")

    print("\n-- latency at 1,000 records/s, unbatched --")
    for mode in ("headless", "wall"):
        r = find(mode, 1, 1000)
        if r is not None:
            print(f"  {mode:<9} p50 {r.p50_ms:6.1f} ms   p99 {r.p99_ms:6.1f} ms   "
                  f"(samples: all records, drain every {DRAIN_INTERVAL_S * 1000:.0f} ms)")

    print("\n== summary ==")
    wall_label = (f"wall open, {wall.window_count} window(s)" if wall is not None
                  and wall.window_count else "bridge only")
    summary = []

    def why_not(r: Row, gui) -> str:
        if r.error:
            return r.error
        out = []
        if r.offered < 0.95 * r.target:
            out.append(f"offered only {r.offered:,.0f}/s")
        if r.gaps:
            out.append(f"{r.gaps} gaps")
        if not r.drained:
            out.append(f"not drained in {TAIL_S:.0f} s")
        elif r.backlog_s > 1.0:
            out.append(f"backlog {r.backlog_s:.2f} s")
        if gui is not None and not r.gui_busy() < gui:
            out.append(f"GUI busy {r.busy_gui * 100:.1f} % GUI-thread CPU, drain "
                       f"{r.busy_drain * 100:.1f} %")
        return ", ".join(out)

    def aim_rate(label, mode, batch, need, gui):
        if not any(r.mode == mode and r.batch == batch for r in rows):
            summary.append((label, "not measured", "not measured"))
            return
        b = best(mode, batch, gui)
        got = b.target if b else 0
        fig = f"{got:,.0f} records/s" if b else "no step qualified"
        if b and gui is not None:
            fig += (f" (GUI busy {b.busy_gui * 100:.1f} % GUI-thread CPU, drain "
                    f"{b.busy_drain * 100:.1f} %, awake→block {b.busy_loop * 100:.1f} %)")
        if b and mode == "headless":
            fig += f" (backlog {b.backlog_s:.2f} s)"
        at_need = find(mode, batch, need)
        if got < need and at_need is not None:
            fig += f"; at {need:,}/s: {why_not(at_need, gui)}"
        if mode == "wall":
            fig += f" [{wall_label}]"
        summary.append((label, fig, "met" if got >= need else "NOT met"))

    aim_rate("≥ 50,000 rec/s batched, wall open, GUI < 20 % busy", "wall", 100, 50_000, 0.20)
    aim_rate("≥ 10,000 rec/s unbatched, wall open, GUI < 20 % busy", "wall", 1, 10_000, 0.20)
    aim_rate("headless ≥ 200,000 rec/s batched, no backlog 1 s after stop", "headless", 100,
             200_000, None)
    for mode in ("wall", "headless"):
        r = find(mode, 1, 1000)
        label = f"p99 latency ≤ 100 ms at 1,000 rec/s ({mode})"
        if r is None or r.p99_ms != r.p99_ms:
            summary.append((label, "not measured", "not measured"))
        else:
            summary.append((label, f"p99 {r.p99_ms:.1f} ms (p50 {r.p50_ms:.1f})",
                            "met" if r.p99_ms <= 100 else "NOT met"))
    if soak_res is not None:
        samples = soak_res["samples"]
        warm = [mb for t, mb in samples if t >= min(30.0, soak_s / 4)] or [samples[-1][1]]
        first, last, peak = samples[0][1], samples[-1][1], max(mb for _, mb in samples)
        growth = last - warm[0]
        flat = growth <= max(5.0, 0.05 * warm[0])
        summary.append((f"memory flat over {soak_s:.0f} s at 5,000 rec/s",
                        f"RSS first {first:.1f} / last {last:.1f} / max {peak:.1f} MB; "
                        f"+{growth:.1f} MB after warm-up", "met" if flat else "NOT met"))
        if soak_s < 300:
            summary[-1] = (summary[-1][0], summary[-1][1],
                           summary[-1][2] + " (soak shorter than the 5 min of the aim)")
    else:
        summary.append(("memory flat over 5 min at 5,000 rec/s", "not measured (soak 0 s)",
                        "not measured"))
    w = max(len(a) for a, _, _ in summary)
    for aim, fig, res in summary:
        print(f"  {aim:<{w}}  {fig}  → {res}")
    print(f"  {wall_note}")
    print(f"total run time {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Starting, talking to and stopping the broker benchmark's processes (``bench/broker.py``):
free loopback endpoints, the CURVE keys, the headless consoles (``main.py --headless``) and the
counting subscribers' processes, their pipes (peek, stop), the consoles' and broker's status
files (read, waited on, sampled each second), and ``Procs``, which kills whatever was started."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.broker_load import subscribers_main

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


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

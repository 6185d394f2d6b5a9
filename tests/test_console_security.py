"""Issue 13, the console's side: keys on the command line, CURVE on every feed, who may publish
which src, the red 未加密 badge, and gestures by role. Over real CURVE sockets on loopback, with
real keys made in tmp_path; the consoles and the publishers' CLIs run as subprocesses.

No timing asserts: every wait is a poll with a timeout."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from feeds.keys import load_key, new_key
from feeds.receiver import wait_for
from feeds.security import Gate, TrustStore, serve
from tests.pubhelp import record

ROOT = Path(__file__).resolve().parent.parent
NOW = lambda: time.time_ns() // 1_000_000        # noqa: E731  records of today (see headless)


# ---- keys and publishers ---------------------------------------------------------------------
@pytest.fixture
def keys(tmp_path):
    """Key pairs in tmp_path/keys; the publishers trust the wall only (tmp_path/trust)."""
    d = tmp_path / "keys"
    for name in ("wall", "stranger", "pub-a", "pub-b", "classroom"):
        new_key(name, d)
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "wall.key").write_bytes((d / "wall.key").read_bytes())

    class K:
        dir = d
        trust_dir = trust

        @staticmethod
        def secret(name):
            return str(d / f"{name}.key_secret")

        @staticmethod
        def public(name):
            return str(d / f"{name}.key")
    return K


class CurvePublisher:
    """A simulator-like publisher: an XPUB made a CURVE server with feeds.security.serve, on
    its own context (its own ZAP gate), bound to a free loopback port."""

    def __init__(self, key_file: str, trust_dir):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 0)
        serve(self.sock, load_key(key_file, secret=True), TrustStore(trust_dir), "feed")
        self.endpoint = f"tcp://127.0.0.1:{self.sock.bind_to_random_port('tcp://127.0.0.1')}"
        self.seq = 0

    def wait_subscriber(self, timeout_s: float = 30.0) -> None:
        """A subscription arrives only once a handshake succeeded."""
        if not self.sock.poll(int(timeout_s * 1000)):
            raise TimeoutError("no subscriber joined")
        self.sock.recv()

    def send(self, topic: str, payload) -> None:
        self.sock.send_multipart([topic.encode(), json.dumps(payload).encode()])

    def case(self, case_id: str, src: str) -> None:
        self.send("case", record("case", src=src, seq=self.seq, ts=NOW(), case_id=case_id))
        self.seq += 1

    def refused(self) -> dict:
        return Gate.of(self.ctx).status("feed")

    def close(self) -> None:
        self.sock.close(0)
        Gate.of(self.ctx).stop()
        self.ctx.term()


@pytest.fixture
def publishers(keys):
    made = []

    def make(name: str = "pub-a") -> CurvePublisher:
        made.append(CurvePublisher(keys.secret(name), keys.trust_dir))
        return made[-1]
    yield make
    for p in made:
        p.close()


# ---- processes -------------------------------------------------------------------------------
class Proc:
    """A command as a subprocess; ``stop()`` sends SIGINT (the headless console and the
    recorder finish their files on it) and waits."""

    def __init__(self, *args, status: Path | None = None):
        self.status_path = status
        self.p = subprocess.Popen([sys.executable, *map(str, args)], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out = self.err = ""

    def status(self) -> dict:
        try:
            return json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return {}

    def wait_status(self, predicate, timeout_s: float = 30.0, tick=None) -> dict:
        def ok():
            if tick is not None:
                tick()
            assert self.p.poll() is None, self.p.communicate()[1]
            return predicate(self.status())
        assert wait_for(ok, timeout_s, step_s=0.1), self.status()
        return self.status()

    def stop(self) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
        try:
            self.out, self.err = self.p.communicate(timeout=60)
        finally:
            if self.p.poll() is None:
                self.p.kill()
        return self.p.returncode


@pytest.fixture
def procs():
    made = []

    def start(*args, status=None) -> Proc:
        made.append(Proc(*args, status=status))
        return made[-1]
    yield start
    for p in made:
        if p.p.poll() is None:
            p.p.kill()
            p.p.communicate()


def console(start, tmp_path, *args) -> Proc:
    status = tmp_path / "status.json"
    return start("main.py", "--headless", *args, "--run-for", "120", "--status-every", "0.2",
                 "--status-out", status, status=status)


def run(*args, timeout=60):
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def one_line_exit_2(out, *words) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for w in words:
        assert w in lines[0], lines[0]


def secrets_of(keys) -> list[str]:
    return [load_key(keys.secret(n), secret=True).secret.decode()
            for n in ("wall", "stranger", "pub-a", "pub-b", "classroom")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


# ---- a keyed console over CURVE --------------------------------------------------------------
def test_a_keyed_console_receives_from_a_curve_publisher(keys, publishers, procs, tmp_path):
    pub = publishers("pub-a")
    c = console(procs, tmp_path, "--feed", pub.endpoint, "--key", keys.secret("wall"),
                "--server-key", keys.public("pub-a"))
    pub.wait_subscriber()
    for i in range(5):
        pub.case(f"C{i}", "a-city")
    c.wait_status(lambda d: d.get("records_accepted") == 5)
    assert c.stop() == 0, c.err
    doc = c.status()
    assert doc["cases"] == 5
    assert doc["security"] == {"encrypted": True, "insecure": False, "key": "wall",
                               "auth_failed": {}, "unencrypted": [], "role": None,
                               "districts": []}
    assert doc["endpoints"][pub.endpoint] == {"up": True, "auth_failed": 0}
    text = Path(c.status_path).read_text() + c.err + c.out
    for secret in secrets_of(keys):                     # nothing secret leaks
        assert secret not in text


@pytest.mark.parametrize("how", ["no key", "untrusted key", "wrong server key"])
def test_without_the_right_keys_nothing_arrives_and_the_status_says_auth_failed(
        how, keys, publishers, procs, tmp_path):
    pub = publishers("pub-a")
    args = {"no key": [],
            "untrusted key": ["--key", keys.secret("stranger"),
                              "--server-key", keys.public("pub-a")],
            "wrong server key": ["--key", keys.secret("wall"),
                                 "--server-key", keys.public("pub-b")]}[how]
    c = console(procs, tmp_path, "--feed", pub.endpoint, *args)
    n = [0]

    def publish():                      # a publisher that keeps talking, to nobody
        pub.case(f"C{n[0]}", "a-city")
        n[0] += 1
    c.wait_status(lambda d: d.get("endpoints", {}).get(pub.endpoint, {}).get("auth_failed", 0)
                  >= 2, tick=publish)
    assert c.stop() == 0, c.err
    doc = c.status()
    assert doc["records_accepted"] == 0 and doc["cases"] == 0
    assert doc["endpoints"][pub.endpoint]["up"] is False
    assert doc["security"]["auth_failed"][pub.endpoint] >= 2
    if how == "no key":
        # A plain console on loopback is allowed; it is told nothing but that the handshake
        # failed (a CURVE server does not talk to a NULL client), and says it is unencrypted.
        assert doc["security"]["encrypted"] is False
        assert doc["security"]["unencrypted"] == [pub.endpoint]
        assert doc["security"]["key"] is None
    elif how == "untrusted key":            # the publisher refused it, and counted it
        assert doc["security"]["key"] == "stranger"
        assert pub.refused().get("127.0.0.1", 0) >= 1
    else:                                   # our key is fine; the server is not who we think
        assert doc["security"]["encrypted"] is True
        assert pub.refused() == {}


def test_publishers_file_refuses_another_publishers_src(keys, publishers, procs, tmp_path):
    listed = tmp_path / "publishers.toml"
    listed.write_text('[publisher.pub-a]\nsrc = ["a-city"]\n\n'
                      '[publisher.pub-b]\nsrc = ["b-city"]\n')
    pub = publishers("pub-a")               # trusted, with a key the console knows …
    c = console(procs, tmp_path, "--feed", pub.endpoint, "--key", keys.secret("wall"),
                "--server-key", keys.public("pub-a"), "--publishers", listed)
    pub.wait_subscriber()
    for i in range(3):
        pub.case(f"A{i}", "a-city")
    for i in range(4):                      # … posing as publisher B
        pub.case(f"B{i}", "b-city")
    pub.case("A0", "b-city")                # and trying to change one of A's cases
    c.wait_status(lambda d: d.get("records_accepted") == 3 and d.get("rejected_total") == 5)
    assert c.stop() == 0, c.err
    doc = c.status()
    assert doc["rejected"] == {"src_not_allowed": 5}
    assert doc["sources"]["b-city"]["rejected_by_reason"] == {"src_not_allowed": 5}
    assert doc["sources"]["b-city"]["records"] == 0
    assert doc["sources"]["a-city"]["records"] == 3
    assert doc["cases"] == 3                # nothing of B's arrived, nothing of A's changed


def test_per_feed_server_keys_pair_with_the_feed_before_them(keys, publishers, procs, tmp_path):
    a, b = publishers("pub-a"), publishers("pub-b")
    c = console(procs, tmp_path, "--key", keys.secret("wall"),
                "--feed", a.endpoint, "--server-key", keys.public("pub-a"),
                "--feed", b.endpoint, "--server-key", keys.public("pub-b"))
    a.wait_subscriber()
    b.wait_subscriber()
    a.case("A1", "a-city")
    b.case("B1", "b-city")
    c.wait_status(lambda d: d.get("records_accepted") == 2)
    assert c.stop() == 0, c.err
    doc = c.status()
    assert {ep: e["up"] for ep, e in doc["endpoints"].items()} == {a.endpoint: True,
                                                                  b.endpoint: True}
    assert doc["security"]["auth_failed"] == {}


def test_server_key_pairing_rules(keys):
    from feeds.key_args import pair_server_keys
    from feeds.security import SecurityError
    assert pair_server_keys([("feed", "A"), ("server_key", "k")]) == ("k", {})   # once: all
    assert pair_server_keys([("server_key", "k"), ("feed", "A"), ("feed", "B"),
                             ("server_key", "kb")]) == ("k", {"B": "kb"})
    assert pair_server_keys([("feed", "A"), ("server_key", "ka"), ("feed", "B"),
                             ("server_key", "kb")]) == (None, {"A": "ka", "B": "kb"})
    for order in ([("feed", "A"), ("server_key", "k1"), ("server_key", "k2")],
                  [("server_key", "k1"), ("server_key", "k2"), ("feed", "A")]):
        with pytest.raises(SecurityError):
            pair_server_keys(order)


# ---- what cannot be used: one line, exit 2 ---------------------------------------------------
def test_key_files_and_publishers_files_that_cannot_be_used_exit_2(keys, tmp_path):
    bad = tmp_path / "bad.key_secret"
    bad.write_text("this is not a key\n")
    bad.chmod(0o600)
    open_secret = tmp_path / "open.key_secret"
    open_secret.write_bytes(Path(keys.secret("wall")).read_bytes())
    open_secret.chmod(0o644)
    public_only = tmp_path / "public.key"
    public_only.write_bytes(Path(keys.public("wall")).read_bytes())
    public_only.chmod(0o600)
    toml = tmp_path / "broken.toml"
    toml.write_text("[publisher.pub-a\nsrc = 1\n")
    feed = ["--feed", "tcp://127.0.0.1:5999", "--run-for", "1"]
    server = ["--server-key", keys.public("pub-a")]
    cases = [
        (["--key", str(tmp_path / "missing.key_secret"), *server], "no such key file"),
        (["--key", str(bad), *server], "not a CURVE key file"),
        (["--key", str(public_only), *server], "holds no secret key"),
        (["--key", str(open_secret), *server], "others can read"),
        (["--key", keys.secret("wall"), "--server-key", str(tmp_path / "nope.key")],
         "no such key file"),
        (["--key", keys.secret("wall"), *server, "--publishers", str(toml)], "broken.toml"),
        (["--key", keys.secret("wall"), *server, "--publishers", str(tmp_path / "no.toml")],
         "cannot read"),
        (["--publishers", str(toml)], "--publishers needs --key"),
        (server, "--server-key needs --key"),
        (["--key", keys.secret("wall")], "no server key for tcp://127.0.0.1:5999"),
    ]
    secrets = secrets_of(keys)
    for args, words in cases:
        out = run("main.py", "--headless", *feed, *args)
        one_line_exit_2(out, "citywall: error:", words)
        assert not any(s in out.stderr for s in secrets)
    # A secret others can read is taken with --insecure (said in the status).
    status = tmp_path / "s.json"
    out = run("main.py", "--headless", *feed, "--key", open_secret, *server, "--insecure",
              "--status-out", status)
    assert out.returncode == 0, out.stderr
    assert json.loads(status.read_text())["security"]["insecure"] is True


def test_a_feed_on_another_machine_needs_keys_or_insecure(tmp_path):
    out = run("main.py", "--headless", "--feed", "tcp://0.0.0.0:5556", "--run-for", "1")
    one_line_exit_2(out, "tcp://0.0.0.0:5556", "--insecure")
    status = tmp_path / "s.json"
    out = run("main.py", "--headless", "--feed", "tcp://0.0.0.0:5556", "--insecure",
              "--run-for", "0.5", "--status-out", status)
    assert out.returncode == 0, out.stderr
    sec = json.loads(status.read_text())["security"]
    assert (sec["encrypted"], sec["insecure"], sec["unencrypted"]) == (
        False, True, ["tcp://0.0.0.0:5556"])


def test_demo_feed_beyond_loopback_needs_keys_or_insecure(keys, procs, tmp_path):
    endpoint = f"tcp://0.0.0.0:{free_port()}"
    out = run("main.py", "--headless", "--demo", "--demo-feed", endpoint, "--run-for", "1")
    one_line_exit_2(out, endpoint, "--trust")
    status = tmp_path / "s.json"
    out = run("main.py", "--headless", "--demo", "--demo-feed", endpoint, "--insecure",
              "--run-for", "2", "--status-out", status)
    assert out.returncode == 0, out.stderr
    doc = json.loads(status.read_text())
    assert doc["records_accepted"] > 0
    assert doc["security"]["insecure"] is True and doc["security"]["encrypted"] is False
    assert doc["security"]["unencrypted"] == [endpoint]
    # With --key and --trust the demo feed is a CURVE server another keyed console hears.
    port = free_port()
    server = procs("main.py", "--headless", "--demo", "--demo-feed", f"tcp://0.0.0.0:{port}",
                   "--key", keys.secret("pub-a"), "--trust", keys.trust_dir,
                   "--run-for", "120", "--status-every", "0.2",
                   "--status-out", tmp_path / "server.json", status=tmp_path / "server.json")
    server.wait_status(lambda d: d.get("records_accepted", 0) > 0)
    assert server.status()["security"]["encrypted"] is True
    wall = console(procs, tmp_path, "--feed", f"tcp://127.0.0.1:{port}",
                   "--key", keys.secret("wall"), "--server-key", keys.public("pub-a"))
    wall.wait_status(lambda d: d.get("units", 0) > 100)        # the demo city's state
    assert wall.stop() == 0 and server.stop() == 0


# ---- the publishers' own CLIs -----------------------------------------------------------------
def test_simulator_refuses_a_bind_beyond_loopback_without_keys_and_serves_a_keyed_console(
        keys, procs, tmp_path):
    out = run("-m", "feeds.simulator", "--feed", f"tcp://0.0.0.0:{free_port()}", "--run-for", "1")
    one_line_exit_2(out, "feeds.simulator: error:", "--trust")
    port = free_port()
    sim = procs("-m", "feeds.simulator", "--feed", f"tcp://127.0.0.1:{port}",
                "--key", keys.secret("pub-a"), "--trust", keys.trust_dir, "--run-for", "120")
    c = console(procs, tmp_path, "--feed", f"tcp://127.0.0.1:{port}",
                "--key", keys.secret("wall"), "--server-key", keys.public("pub-a"))
    c.wait_status(lambda d: d.get("units", 0) > 100 and d.get("sources", {})
                  .get("demo-city", {}).get("up"))
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    s = procs("main.py", "--headless", "--feed", f"tcp://127.0.0.1:{port}",
              "--key", keys.secret("stranger"), "--server-key", keys.public("pub-a"),
              "--run-for", "120", "--status-every", "0.2",
              "--status-out", stranger / "s.json", status=stranger / "s.json")
    s.wait_status(lambda d: d.get("security", {}).get("auth_failed"))
    assert s.stop() == 0 and s.status()["records_accepted"] == 0
    assert c.stop() == 0
    assert sim.stop() == 0, sim.err
    assert "CURVE, key pub-a, trusting 1 keys" in sim.err
    assert "refused handshakes (keys not trusted): 127.0.0.1 ×" in sim.err


def test_classroom_replay_refuses_its_default_feed_without_keys_and_serves_a_keyed_console(
        keys, procs, tmp_path):
    from feeds.recording import RecordingWriter
    day = tmp_path / "day.mcap"
    w = RecordingWriter(day)
    t = NOW()
    for i in range(20):
        rec = record("case", src="cases", seq=i, ts=t + i * 100, case_id=f"C{i}")
        w.write([b"case", json.dumps(rec).encode()], t + i * 100, t + i * 100)
    w.close()
    out = run("-m", "feeds.replay", day)                      # tcp://0.0.0.0:5560
    one_line_exit_2(out, "feeds.replay: error:", "tcp://0.0.0.0:5560", "--insecure")
    port = free_port()
    room = procs("-m", "feeds.replay", day, "--feed", f"tcp://127.0.0.1:{port}",
                 "--key", keys.secret("classroom"), "--trust", keys.trust_dir)
    c = console(procs, tmp_path, "--feed", f"tcp://127.0.0.1:{port}",
                "--key", keys.secret("wall"), "--server-key", keys.public("classroom"))
    c.wait_status(lambda d: d.get("cases") == 20)
    assert c.stop() == 0
    room.stop()
    assert "sent 20 messages" in room.err, room.err


def test_recorder_records_from_a_curve_publisher(keys, publishers, procs, tmp_path):
    from feeds.recording import RecordingError, read_recording
    a, b = publishers("pub-a"), publishers("pub-b")
    out = tmp_path / "rec.mcap"
    rec = procs("-m", "feeds.record", "--key", keys.secret("wall"),
                "--feed", a.endpoint, "--server-key", keys.public("pub-a"),
                "--feed", b.endpoint, "--server-key", keys.public("pub-b"),
                "--out", out, "--run-for", "120")
    a.wait_subscriber()
    b.wait_subscriber()
    for i in range(5):
        a.case(f"A{i}", "a-city")
        b.case(f"B{i}", "b-city")

    def recorded() -> int:
        try:
            return len(read_recording(out))      # a file cut short reads to its last chunk
        except RecordingError:
            return 0
    assert wait_for(lambda: recorded() == 10, 30, step_s=0.2)
    assert rec.stop() == 0, rec.err
    assert len(read_recording(out)) == 10
    for secret in secrets_of(keys):
        assert secret.encode() not in out.read_bytes()
        assert secret not in rec.err + rec.out


def test_recorder_without_keys_refuses_a_feed_on_another_machine(tmp_path):
    out = run("-m", "feeds.record", "--feed", "tcp://0.0.0.0:5556",
              "--out", tmp_path / "x.mcap", "--run-for", "1")
    one_line_exit_2(out, "feeds.record: error:", "--insecure")
    assert not (tmp_path / "x.mcap").exists()


# ---- with the dispatch service's keys: the role comes from its snapshot reply ----------------
def test_a_keyed_console_learns_its_role_from_the_dispatch_service(keys, publishers, procs,
                                                                   tmp_path):
    new_key("svc", keys.dir)
    (keys.trust_dir / "svc.key").write_bytes(Path(keys.public("svc")).read_bytes())
    pub = publishers("pub-a")                   # the service hears it with its own key
    roles = tmp_path / "roles.toml"
    roles.write_text('[client.wall]\nrole = "dispatcher"\ndistricts = ["110101", "110105"]\n')
    orders, feed = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    svc = procs("-m", "feeds.dispatch_service", "--source", pub.endpoint,
                "--source-server-key", keys.public("pub-a"), "--dispatch", orders,
                "--feed", feed, "--db", tmp_path / "d.db", "--key", keys.secret("svc"),
                "--trust", keys.trust_dir, "--roles", roles)
    pub.wait_subscriber()                       # the service is up: it subscribed
    c = console(procs, tmp_path, "--key", keys.secret("wall"),
                "--feed", pub.endpoint, "--server-key", keys.public("pub-a"),
                "--feed", feed, "--server-key", keys.public("svc"),
                "--dispatch", orders, "--dispatch-server-key", keys.public("svc"))
    doc = c.wait_status(lambda d: "security" in d)
    assert c.stop() == 0, c.err
    assert doc["security"]["role"] == "dispatcher", c.err
    assert doc["security"]["districts"] == ["110101", "110105"]
    assert doc["security"]["encrypted"] is True and doc["security"]["auth_failed"] == {}
    svc.stop()

"""A real Mosquitto broker for tests, on a free loopback port.

    with Mosquitto(tmp_path) as broker:            # or the ``mosquitto`` fixture
        url = broker.url                           # mqtt://127.0.0.1:PORT
        broker.stop(); broker.start()              # the broker goes away, and comes back
                                                   # on the same port
        broker.pause(); broker.resume()            # … or goes silent (SIGSTOP), and wakes

``Mosquitto(tmp_path, users={"wall": "secret"})`` writes a password file with
``mosquitto_passwd -b -c`` and refuses anonymous clients; ``tls=True`` serves TLS only
(``mqtts://``) with a throw-away CA (``broker.ca``) made by openssl. A missing ``/usr/sbin/mosquitto``
fails the test with what to install (the Debian package ``mosquitto``); tests never skip.
Also ``publish(url, topic, payload)``: a real paho publisher that waits until the broker has
the message (QoS 1).
"""
from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from tests.pubhelp import free_port

CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/bin/mosquitto")


def mosquitto_binary() -> str:
    for path in CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("mosquitto")
    if found:
        return found
    pytest.fail("mosquitto is not installed: the MQTT tests need a real broker "
                "(apt-get install mosquitto, which gives /usr/sbin/mosquitto)", pytrace=False)


def passwd_binary() -> str | None:
    return shutil.which("mosquitto_passwd") or (
        "/usr/bin/mosquitto_passwd" if os.access("/usr/bin/mosquitto_passwd", os.X_OK) else None)



def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def make_certs(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 (openssl): (ca, cert, key)."""
    tool = shutil.which("openssl")
    if tool is None:
        pytest.fail("openssl is not installed: the TLS test makes its certificates with it "
                    "(apt-get install openssl)", pytrace=False)
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    ext = directory / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for cmd in ([tool, "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
                 "-subj", "/CN=citywall-test-ca"],
                [tool, "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
                [tool, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
                 "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext]):
        subprocess.run([str(c) for c in cmd], check=True, timeout=20, capture_output=True)
    return ca, cert, key


class Mosquitto:
    def __init__(self, directory: Path, users: dict[str, str] | None = None,
                 tls: bool = False):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.binary = mosquitto_binary()
        self.port = free_port()
        self.users = users
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / "mosquitto.log"
        self.conf = self.dir / "mosquitto.conf"
        # As root, mosquitto drops to the user "mosquitto", which cannot read the test's files.
        lines = [f"listener {self.port} 127.0.0.1", "persistence false",
                 f"user {getpass.getuser()}",
                 "log_dest stderr", "log_type error", "log_type warning"]
        if users:
            tool = passwd_binary()
            if tool is None:
                pytest.fail("mosquitto_passwd is not installed (it comes with the mosquitto "
                            "package)", pytrace=False)
            pw = self.dir / "passwd"
            for i, (user, password) in enumerate(users.items()):
                subprocess.run([tool, "-b", *(["-c"] if i == 0 else []), str(pw), user,
                                password], check=True, timeout=10, capture_output=True)
            os.chmod(pw, 0o600)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        self.ca: Path | None = None
        if tls:
            self.ca, cert, key = make_certs(self.dir / "certs")
            lines += [f"cafile {self.ca}", f"certfile {cert}", f"keyfile {key}"]
        self.conf.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.ca else 'mqtt'}://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> "Mosquitto":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = open(self.log, "ab")
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log,
                                     stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"mosquitto exited ({self.proc.returncode}): "
                            f"{self.log.read_text(errors='replace')[-2000:]}", pytrace=False)
            if port_open(self.port):
                return self
            time.sleep(0.02)
        self.stop()
        pytest.fail(f"mosquitto did not listen on 127.0.0.1:{self.port} within {timeout_s} s",
                    pytrace=False)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGCONT)            # a paused broker must hear the TERM
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def pause(self) -> None:
        """The broker goes silent (SIGSTOP): connections stay open, nothing answers."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def __enter__(self) -> "Mosquitto":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Publisher:
    """A real paho client publishing with QoS 1 (``publish`` returns once the broker has it)."""

    def __init__(self, port: int, username: str | None = None, password: str | None = None):
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=f"test-pub-{os.urandom(4).hex()}")
        if username:
            self.client.username_pw_set(username, password)
        connected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: rc.is_failure or connected.set()
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert connected.wait(5), f"the test publisher could not connect to port {port}"

    def publish(self, topic: str, payload: bytes | str, retain: bool = False,
                timeout_s: float = 5.0) -> None:
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout_s)
        assert info.is_published(), f"not published within {timeout_s} s: {topic}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def mosquitto(tmp_path):
    broker = Mosquitto(tmp_path / "mosquitto").start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mqtt_publisher(mosquitto):
    pub = Publisher(mosquitto.port)
    try:
        yield pub
    finally:
        pub.close()

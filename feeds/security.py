"""CURVE on CityWall's sockets: who may connect, and who they are (the Ironhouse pattern).

Every server holds its own key pair and a directory of the public keys of the clients it
accepts (``--trust DIR``); every client holds its own key pair and the server's public key.
One ZAP handler per ZeroMQ context (``Gate``) answers the handshakes of all the CURVE servers
in it: a key that is not in the server's trust directory is refused and counted with the
peer's address; an accepted one is named by its file's stem, which reaches the server's code
as the message's ``User-Id`` (what the dispatch service records an order against, never a
name the order claims). A key file removed from the directory is refused for new connections
within ``RELOAD_S``; a connection already made stays (CURVE authenticates once, at the
handshake) — the dispatch service checks the key again with every order.

No Qt here; nothing here prints or logs a secret key.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import zmq
from zmq.utils import z85

from feeds.keys import PUBLIC_SUFFIX, Key, KeyFileError, load_key

LOG = logging.getLogger("feeds.security")
ZAP_ENDPOINT = "inproc://zeromq.zap.01"
RELOAD_S = 2.0              # a trust directory is read again at most this often (≤ 5 s promised)
MAX_REFUSED_PEERS = 1_000   # addresses counted one by one; the rest together as "other"


class SecurityError(ValueError):
    """A security setting that cannot be used: one line, and the command exits 2."""


# ---- trust ---------------------------------------------------------------------------------
class TrustStore:
    """The public keys in a directory, by Z85 key → name (file stem). Read again when asked
    and ``RELOAD_S`` has passed, so a key file added or removed counts within seconds."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory).expanduser()
        if not self.directory.is_dir():
            raise SecurityError(f"--trust: not a directory: {str(self.directory)!r}")
        self._lock = threading.Lock()
        self._keys: dict[bytes, str] = {}
        self._read_at = -1e9
        self.problems: list[str] = []
        self.reload()

    def reload(self) -> None:
        keys: dict[bytes, str] = {}
        problems = []
        for path in sorted(self.directory.glob("*" + PUBLIC_SUFFIX)):
            try:
                key = load_key(path)
            except KeyFileError as exc:
                problems.append(str(exc))
                continue
            keys[key.public] = key.name
        with self._lock:
            self._keys, self.problems, self._read_at = keys, problems, time.monotonic()

    def name_for(self, public_z85: bytes) -> str | None:
        if time.monotonic() - self._read_at >= RELOAD_S:
            self.reload()
        with self._lock:
            return self._keys.get(public_z85)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._keys.values())

    def trusts(self, name: str) -> bool:
        """Is a key of this name still in the directory (read again when stale)?"""
        if time.monotonic() - self._read_at >= RELOAD_S:
            self.reload()
        with self._lock:
            return name in self._keys.values()


# ---- the ZAP handler --------------------------------------------------------------------------
class Gate:
    """The one ZAP handler of a context: answers every CURVE handshake of its servers from the
    trust store of the server's domain. ``Gate.of(context)`` makes it on first use."""

    _gates: dict[int, "Gate"] = {}
    _gates_lock = threading.Lock()

    @classmethod
    def of(cls, context: zmq.Context) -> "Gate":
        with cls._gates_lock:
            gate = cls._gates.get(id(context))
            if (gate is None or gate._stop.is_set() or gate._ctx is not context
                    or not gate._thread.is_alive()):
                gate = cls._gates[id(context)] = cls(context)
            return gate

    def __init__(self, context: zmq.Context):
        self._ctx = context
        self._domains: dict[str, TrustStore] = {}
        self._lock = threading.Lock()
        self.refused: Counter = Counter()      # (domain, peer address) → handshakes refused
        self.accepted: Counter = Counter()     # (domain, key name) → handshakes accepted
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zap-gate", daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def trust(self, domain: str, store: TrustStore) -> None:
        with self._lock:
            self._domains[domain] = store

    def status(self, domain: str | None = None) -> dict:
        """``auth_refused``: peer address → count (for one domain, or all)."""
        with self._lock:
            refused = Counter()
            for (dom, address), n in self.refused.items():
                if domain is None or dom == domain:
                    refused[address] += n
            return dict(refused)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        sock = self._ctx.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.bind(ZAP_ENDPOINT)
        except zmq.ZMQError as exc:            # another handler holds the context: say so
            LOG.error("CURVE gate: cannot bind the ZAP handler: %s", exc)
            sock.close(0)
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                try:
                    if not sock.poll(100):
                        continue
                    request = sock.recv_multipart()
                except zmq.ZMQError:                 # the context is going: so are we
                    break
                try:
                    reply = self._answer(request)
                except Exception as exc:        # a bug refuses this one handshake only
                    LOG.exception("CURVE gate: error judging a handshake")
                    reply = [b"1.0", request[1] if len(request) > 1 else b"", b"500",
                             str(exc)[:60].encode(), b"", b""]
                try:
                    sock.send_multipart(reply)
                except zmq.ZMQError:
                    break
        finally:
            sock.close(0)

    def _answer(self, request: list[bytes]) -> list[bytes]:
        if len(request) < 6:
            return [b"1.0", request[1] if len(request) > 1 else b"", b"400", b"bad request",
                    b"", b""]
        version, request_id, domain_b, address_b, _identity, mechanism = request[:6]
        domain = domain_b.decode("utf-8", "replace")
        address = address_b.decode("utf-8", "replace")[:64]
        with self._lock:
            store = self._domains.get(domain)
        name = None
        if store is not None and mechanism == b"CURVE" and len(request) >= 7 \
                and len(request[6]) == 32:
            name = store.name_for(z85.encode(request[6]))
        with self._lock:
            if name is None:
                key = (domain, address)
                if key not in self.refused and len(self.refused) >= MAX_REFUSED_PEERS:
                    key = (domain, "other")
                self.refused[key] += 1
            else:
                self.accepted[(domain, name)] += 1
        if name is None:
            LOG.warning("CURVE gate: refused a %s handshake from %s on %s (key not trusted)",
                        mechanism.decode("ascii", "replace"), address, domain)
            return [b"1.0", request_id, b"400", b"key not trusted", b"", b""]
        return [b"1.0", request_id, b"200", b"OK", name.encode(), b""]


# ---- sockets ----------------------------------------------------------------------------------
def serve(sock: zmq.Socket, key: Key, trust: TrustStore, domain: str) -> None:
    """Make ``sock`` a CURVE server that takes only the clients ``trust`` holds."""
    Gate.of(sock.context).trust(domain, trust)
    sock.setsockopt(zmq.ZAP_DOMAIN, domain.encode())
    sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)        # no gate answering: nobody gets in
    sock.setsockopt(zmq.CURVE_SECRETKEY, key.secret)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, key.public)
    sock.setsockopt(zmq.CURVE_SERVER, 1)


def connect_as(sock: zmq.Socket, key: Key, server: Key) -> None:
    """Make ``sock`` a CURVE client that talks only to ``server``."""
    sock.setsockopt(zmq.CURVE_SECRETKEY, key.secret)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, key.public)
    sock.setsockopt(zmq.CURVE_SERVERKEY, server.public)


@dataclass
class ClientKeys:
    """A client process's keys: its own pair, and the server key of each endpoint (one for
    all unless an endpoint has its own)."""
    key: Key
    server: Key | None = None
    per_endpoint: dict[str, Key] = field(default_factory=dict)

    def server_for(self, endpoint: str) -> Key | None:
        return self.per_endpoint.get(endpoint, self.server)


@dataclass
class ServerKeys:
    key: Key
    trust: TrustStore


def is_loopback(endpoint: str) -> bool:
    """tcp://127.x, [::1], localhost; inproc and ipc never leave the machine."""
    if not endpoint.startswith("tcp://"):
        return True
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False                        # '*', an interface name, a host name


def check_bind(endpoint: str, secured: bool, insecure: bool, flag: str = "--key") -> None:
    """Binding a TCP port beyond loopback needs a key (or ``--insecure``)."""
    if not secured and not insecure and not is_loopback(endpoint):
        raise SecurityError(f"{endpoint} is reachable from other machines: give {flag} "
                            "SECRET and --trust DIR (or --insecure to run unencrypted)")


def load_own_key(path: str, insecure: bool) -> Key:
    try:
        return load_key(path, secret=True, insecure=insecure)
    except KeyFileError as exc:
        raise SecurityError(f"--key: {exc}") from None


def load_server_key(path: str) -> Key:
    try:
        return load_key(path)
    except KeyFileError as exc:
        raise SecurityError(f"--server-key: {exc}") from None

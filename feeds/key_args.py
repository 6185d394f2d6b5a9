"""The key options of every command that opens a socket, read the same way everywhere. No Qt.

Clients (the console, ``feeds.record``)::

    --key SECRET                 this process's own key pair (NAME.key_secret, mode 600)
    --server-key PUBLIC          the server's public key (NAME.key)
    --feed EP --server-key FILE  … one per feed: a --server-key right after a --feed is that
                                 feed's; one given before every --feed (or given only once)
                                 is for every endpoint without its own
    --insecure                   allow a plain (unencrypted, unauthenticated) connection to
                                 another machine, and a secret key file others can read

Servers (``feeds.simulator``, ``feeds.replay``, the console's ``--demo-feed``)::

    --key SECRET --trust DIR     a CURVE server taking only the clients whose public keys are
                                 in DIR; binding beyond loopback without them needs --insecure

Every problem is a ``SecurityError`` (one line; the command exits 2). Nothing here prints a
secret key: messages name files, never their contents.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from feeds.keys import Key
from feeds.security import (ClientKeys, SecurityError, ServerKeys, TrustStore, check_bind,
                            is_loopback, load_own_key, load_server_key)

ORDER = "_key_order"        # the namespace's list of (dest, value) in command-line order


class Ordered(argparse.Action):
    """``append``, and remember where on the command line each value came (for pairing a
    ``--server-key`` with the ``--feed`` before it)."""

    def __init__(self, option_strings, dest, **kwargs):
        kwargs.setdefault("default", None)
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), values])
        setattr(namespace, ORDER, [*(getattr(namespace, ORDER, None) or []),
                                   (self.dest, values)])


def add_key_arg(p, help: str | None = None) -> None:
    p.add_argument("--key", metavar="SECRET", default=None,
                   help=help or "this process's own CURVE key pair (NAME.key_secret, made with "
                                "python -m feeds.keys new NAME --dir DIR; mode 600)")


def add_server_key_arg(p) -> None:
    p.add_argument("--server-key", dest="server_key", action=Ordered, metavar="PUBLIC",
                   help="a server's public key (NAME.key). Right after a --feed: that feed's "
                        "own; before every --feed, or given only once: every endpoint's that "
                        "has none of its own")


def add_trust_arg(p, what: str = "the subscribers") -> None:
    p.add_argument("--trust", metavar="DIR", default=None,
                   help=f"with --key: serve as a CURVE server taking only {what} whose public "
                        "keys (NAME.key) are in DIR (read again within seconds of a change)")


def add_insecure_arg(p) -> None:
    p.add_argument("--insecure", action="store_true",
                   help="allow plain TCP (unencrypted, anyone may connect or listen) beyond "
                        "this machine, and a secret key file others can read")


# ---- clients --------------------------------------------------------------------------------
def pair_server_keys(order: list[tuple[str, str]], feed_dest: str = "feed",
                     key_dest: str = "server_key") -> tuple[str | None, dict[str, str]]:
    """(the key file for every endpoint, endpoint → its own key file) from the order of the
    ``--feed`` and ``--server-key`` options."""
    keys = [v for d, v in order if d == key_dest]
    if len(keys) == 1:
        return keys[0], {}
    common: str | None = None
    own: dict[str, str] = {}
    previous: tuple[str, str] | None = None
    seen_feed = False
    for dest, value in order:
        if dest == feed_dest:
            previous, seen_feed = (dest, value), True
            continue
        if dest != key_dest:
            continue
        if previous is not None and previous[0] == feed_dest:
            if previous[1] in own and own[previous[1]] != value:
                raise SecurityError(f"--server-key: {previous[1]} is given two server keys")
            own[previous[1]] = value
        elif not seen_feed and common is None:
            common = value
        else:
            raise SecurityError(f"--server-key {value}: put each feed's right after its --feed, "
                                "and the one for all before every --feed")
        previous = (dest, value)
    return common, own


def check_connect(endpoint: str, keyed: bool, insecure: bool) -> None:
    """A plain connection beyond this machine needs ``--insecure``. (``tcp://*:…`` names no
    machine: ZeroMQ refuses to connect there, and says so.)"""
    if endpoint.startswith("tcp://*:"):
        return
    if not keyed and not insecure and not is_loopback(endpoint):
        raise SecurityError(f"{endpoint} is on another machine: give --key SECRET and "
                            "--server-key PUBLIC (or --insecure to run unencrypted)")


@dataclass
class KeyFiles:
    """Key files loaded once each (several endpoints may share one)."""
    loaded: dict[str, Key] = field(default_factory=dict)

    def server(self, path: str) -> Key:
        if path not in self.loaded:
            self.loaded[path] = load_server_key(path)
        return self.loaded[path]


def client_keys(own: Key | None, order: list[tuple[str, str]], endpoints: list[str],
                insecure: bool, files: KeyFiles | None = None) -> ClientKeys | None:
    """The keys to connect to ``endpoints`` with (None: plain connections). With an own key
    every endpoint but an in-process one needs a server key; without one, an endpoint on
    another machine needs ``insecure``."""
    files = files or KeyFiles()
    network = [ep for ep in endpoints if not ep.startswith("inproc://")]
    common_path, own_paths = pair_server_keys(order)
    for ep in own_paths:
        if ep not in endpoints:                   # cannot happen from a command line
            raise SecurityError(f"--server-key: {ep} is not a feed")
    if own is None:
        if common_path or own_paths:
            raise SecurityError("--server-key needs --key SECRET (this process's own key pair)")
        for ep in network:
            check_connect(ep, False, insecure)
        return None
    if not network:
        return None
    common = files.server(common_path) if common_path else None
    per = {ep: files.server(path) for ep, path in own_paths.items()}
    for ep in network:
        if ep not in per and common is None:
            raise SecurityError(f"no server key for {ep}: give --server-key PUBLIC right after "
                                "its --feed (or one before every --feed, for all)")
    return ClientKeys(own, common, per)


# ---- servers --------------------------------------------------------------------------------
def server_keys(own: Key | None, trust_dir: str | None, endpoint: str, insecure: bool
                ) -> ServerKeys | None:
    """The keys to serve ``endpoint`` with (None: plain). Refuses a plain bind beyond
    loopback unless ``insecure``."""
    if trust_dir is not None and own is None:
        raise SecurityError("--trust needs --key SECRET (the server's own key pair)")
    if own is not None and trust_dir is None and not endpoint.startswith("inproc://"):
        raise SecurityError(f"--key needs --trust DIR to serve {endpoint} (the public keys "
                            "of those who may connect)")
    keys = ServerKeys(own, TrustStore(trust_dir)) if own is not None and trust_dir else None
    check_bind(endpoint, keys is not None, insecure)
    return keys


def own_key(path: str | None, insecure: bool) -> Key | None:
    return load_own_key(path, insecure) if path else None

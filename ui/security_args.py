"""The console's keys: its options, what they add up to, and what the status says. No Qt.

    --key SECRET                 the console's own key pair
    --server-key PUBLIC          the publishers' key; pairs with the --feed before it
    --dispatch-server-key PUBLIC the dispatch service's key (else the --server-key for all)
    --publishers FILE.toml       who may publish which src (needs keys: a feed's server key
                                 names its publisher)
    --trust DIR                  with --key and --demo-feed: the consoles that may subscribe
    --insecure                   plain TCP beyond this machine; a secret key others can read

What counts as unencrypted: a socket of this console that reaches beyond its process (TCP or
IPC) and runs without CURVE. The header's red 未加密 / UNENCRYPTED badge is shown when one of
them reaches beyond this machine (only possible with ``--insecure``); a plain connection on
loopback is still listed in the status (``security.unencrypted``) but has no badge.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

from feeds.key_args import (KeyFiles, add_insecure_arg, add_key_arg, add_server_key_arg,
                            add_trust_arg, check_connect, client_keys, own_key, pair_server_keys,
                            server_keys)
from feeds.keys import Key
from feeds.security import ClientKeys, Gate, SecurityError, ServerKeys, is_loopback

DEMO_FEED_DOMAIN = "demo-feed"


def add_console_security_args(p) -> None:
    sec = p.add_argument_group(
        "keys (CURVE; see python -m feeds.keys)",
        "A --server-key right after a --feed is that feed's; one before every --feed, or given "
        "only once, is for every endpoint without its own (and for --dispatch, unless "
        "--dispatch-server-key is given). Without keys, a TCP endpoint on another machine "
        "needs --insecure, and every screen then says UNENCRYPTED in red.")
    add_key_arg(sec, "this console's own key pair (NAME.key_secret, mode 600)")
    add_server_key_arg(sec)
    sec.add_argument("--dispatch-server-key", metavar="PUBLIC", default=None,
                     help="the dispatch service's public key (default: the --server-key for "
                          "all)")
    sec.add_argument("--publishers", metavar="FILE.toml", default=None,
                     help="who may publish which src ([publisher.NAME] src = [...], NAME the "
                          "stem of the feed's server key file); a record under another src is "
                          "refused as src_not_allowed. Needs --key and --server-key")
    add_trust_arg(sec, "the consoles (for --demo-feed)")
    add_insecure_arg(sec)


@dataclass
class ConsoleSecurity:
    """What the console's keys add up to, worked out before any socket opens."""
    insecure: bool = False
    key: Key | None = None
    feeds: ClientKeys | None = None             # the Receiver's
    dispatch: ClientKeys | None = None          # the DispatchClient's
    serve: ServerKeys | None = None             # the demo feed's (--demo-feed with --trust)
    allowed_src: dict[str, frozenset[str]] | None = None
    unencrypted: list[str] = field(default_factory=list)

    def exposed(self) -> list[str]:
        """Plain sockets that reach beyond this machine: the header's badge."""
        return [ep for ep in self.unencrypted if not is_loopback(ep)]

    def status(self, situation, client=None, context=None) -> dict:
        failed = {ep: n for ep, n in situation.auth_failed.items() if n}
        link = client.status() if hasattr(client, "status") else {}
        if link.get("auth_failed"):              # the dispatch service refused our key
            failed[link["endpoint"]] = link["auth_failed"]
        doc = {"encrypted": not self.unencrypted, "insecure": self.insecure,
               "key": self.key.name if self.key is not None else None,
               "auth_failed": failed,
               "unencrypted": list(self.unencrypted),
               "role": getattr(client, "role", None),
               "districts": list(getattr(client, "districts", None) or ())}
        if self.serve is not None and context is not None:
            doc["auth_refused"] = Gate.of(context).status(DEMO_FEED_DOMAIN)
        return doc


def _network(endpoint: str | None) -> bool:
    return bool(endpoint) and not endpoint.startswith("inproc://")


def console_security(args, feeds: list[str], dispatch: str | None) -> ConsoleSecurity:
    """From the parsed options (any may be missing: tests build namespaces by hand) to the
    keys of every socket. ``feeds``: the endpoints the receiver connects to; ``dispatch``: the
    dispatch service's. A ``SecurityError`` or ``PublishersError`` is one line, exit 2."""
    get = lambda name, default=None: getattr(args, name, default)   # noqa: E731
    insecure = bool(get("insecure", False))
    order = list(get("_key_order") or [])
    if not order and get("server_key"):                  # a namespace built by hand
        order = [("server_key", path) for path in get("server_key")]
    own = own_key(get("key"), insecure)
    files = KeyFiles()
    sec = ConsoleSecurity(insecure=insecure, key=own)
    sec.feeds = client_keys(own, order, feeds, insecure, files)
    if _network(dispatch):
        path = get("dispatch_server_key")
        if own is None:
            if path is not None:
                raise SecurityError("--dispatch-server-key needs --key SECRET")
            check_connect(dispatch, False, insecure)
        else:
            path = path or pair_server_keys(order)[0]
            if path is None:
                raise SecurityError(f"no server key for the dispatch service {dispatch}: give "
                                    "--dispatch-server-key PUBLIC (or one --server-key for all)")
            server = files.server(path)
            sec.dispatch = ClientKeys(own, server, {dispatch: server})
    elif get("dispatch_server_key"):
        raise SecurityError("--dispatch-server-key needs --dispatch ENDPOINT on the network")
    demo_feed = get("demo_feed") if get("demo", False) else None
    if demo_feed:
        trust = get("trust")
        sec.serve = server_keys(own if trust else None, trust, demo_feed, insecure)
    elif get("trust"):
        raise SecurityError("--trust is for --demo --demo-feed (the consoles that may "
                            "subscribe); a console's feeds need --server-key")
    if get("publishers"):
        sec.allowed_src = allowed_sources(get("publishers"), feeds, sec.feeds)
    sec.unencrypted = [ep for ep in feeds if _network(ep) and sec.feeds is None]
    if _network(dispatch) and sec.dispatch is None:
        sec.unencrypted.append(dispatch)
    if demo_feed and sec.serve is None and _network(demo_feed):
        sec.unencrypted.append(demo_feed)
    return sec


def allowed_sources(path: str, feeds: list[str], keys: ClientKeys | None
                    ) -> dict[str, frozenset[str]]:
    """The receiver's ``allowed_src``: each network feed's publisher is the stem of its server
    key file; one the publishers file does not name is refused whole (said on stderr)."""
    from feeds.publishers import load_publishers
    if keys is None:
        raise SecurityError("--publishers needs --key and --server-key: a publisher is known "
                            "by its key")
    publishers = load_publishers(path)
    allowed = {}
    for ep in feeds:
        if not _network(ep):
            continue
        name = keys.server_for(ep).name
        if name not in publishers:
            print(f"citywall: warning: {path} names no publisher {name!r} (the key of {ep}): "
                  "every record from it is refused", file=sys.stderr)
        allowed[ep] = publishers.get(name, frozenset())
    return allowed

"""ZeroMQ endpoint strings, checked before any socket sees them (a clear message, not a
ZMQError from deep inside a thread)."""
from __future__ import annotations

import re

# The demo city's in-process endpoints (feeds.demo_source runs it; the wall wires its client
# and keys to them): named here, where nothing imports the demo city.
DEMO_ENDPOINT = "inproc://citywall-demo"
DEMO_DISPATCH = "inproc://citywall-dispatch"            # the demo's own dispatch service
DEMO_DISPATCH_FEED = "inproc://citywall-dispatch-feed"

_TCP = re.compile(r"^tcp://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.*-]+):(?P<port>\*|\d{1,5})$")


def check_endpoint(text: str) -> str:
    """Return ``text`` if it is a usable endpoint; raise ValueError saying what is wrong."""
    if not isinstance(text, str) or not text:
        raise ValueError("an endpoint is needed, like tcp://127.0.0.1:5556")
    if text.startswith("tcp://"):
        m = _TCP.match(text)
        if not m:
            raise ValueError(f"malformed endpoint {text!r}: use tcp://HOST:PORT")
        port = m.group("port")
        if port != "*" and not 1 <= int(port) <= 65535:
            raise ValueError(f"malformed endpoint {text!r}: port must be 1-65535")
        return text
    for scheme in ("ipc://", "inproc://"):
        if text.startswith(scheme):
            if len(text) == len(scheme):
                raise ValueError(f"malformed endpoint {text!r}: a name is needed after {scheme}")
            return text
    raise ValueError(f"malformed endpoint {text!r}: use tcp://HOST:PORT, ipc://PATH or "
                     "inproc://NAME")

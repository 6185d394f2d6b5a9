"""The dispatch service's keys: CURVE on its sockets, who sent each order, what its role may do.

A mixin of ``DispatchService`` (``feeds.dispatch_service``). With ``keys`` (``ServerKeys``:
the service's key pair and the trust directory), its ROUTER (ZAP domain ``dispatch``) and its
feed XPUB (``dispatch-feed``) are CURVE servers answered by the context's ZAP gate
(``feeds.security.Gate``): a key not in ``--trust`` never gets a connection, and is counted by
peer address (``auth_refused``, ``feed_auth_refused``). Each order is then judged as sent by
the key the handshake named (the message's ``User-Id``), never by the ``console`` it claims:

- the key must still be in the trust directory (read again every ``RELOAD_S``): CURVE
  authenticates once, at the handshake, so a key removed while connected would otherwise keep
  ordering — its next order is ``not_allowed: key … is no longer trusted``;
- its role (``feeds.roles``) must allow the order, in the districts of the case and unit.

Should the context's ZAP handler be gone, libzmq would accept any CURVE key; both sockets set
``ZAP_ENFORCE_DOMAIN`` so that they refuse everyone instead.

Handshakes that fail before the ZAP gate is asked cannot be named by address (libzmq reports
them on the bound socket's monitor with the listening endpoint only); they are counted by kind
in ``handshakes_failed``: ``no_key`` (a client without CURVE: NULL meets CURVE, a mechanism
mismatch), ``wrong_server_key`` (the client's HELLO cannot be decrypted: it was made for
another server key), ``key_refused`` (the gate said no: these are in ``auth_refused`` by
address too), ``protocol``, ``other``.

It works on the service's ``keys``, ``roles``, ``insecure``, ``_monitors``,
``handshakes_failed``, ``not_allowed``, ``_districts_of`` and ``_ctx``. No secret key is ever
logged or shown: ``Key.__repr__`` hides it, and the status shows the public fingerprint only.
"""
from __future__ import annotations

import logging

import msgspec
import zmq
from zmq.utils.monitor import recv_monitor_message

from feeds.keys import PUBLIC_SUFFIX
from feeds.orders import Order
from feeds.roles import UNCHECKED, Caller, allowed, identify
from feeds.security import Gate, is_loopback, serve

LOG = logging.getLogger("feeds.dispatch")

ORDERS_DOMAIN = "dispatch"
FEED_DOMAIN = "dispatch-feed"
HANDSHAKE_EVENTS = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | zmq.EVENT_HANDSHAKE_FAILED_AUTH)

_enc = msgspec.json.Encoder()


def handshake_kind(event: int, value: int) -> str:
    """What a failed handshake on a CURVE server most likely was."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return "key_refused"
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            return "no_key"
        if value == zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
            return "wrong_server_key"
        return "protocol"
    return "other"


class KeyedOrders:
    """The keys' half of ``DispatchService``: a mixin, no state of its own."""

    @property
    def secured(self) -> bool:
        return self.keys is not None

    def _secure(self, sock: zmq.Socket, domain: str, label: str) -> None:
        """Make ``sock`` a CURVE server for ``domain`` and watch its failed handshakes."""
        if self.keys is None:
            return
        serve(sock, self.keys.key, self.keys.trust, domain)
        # Fail closed: without a ZAP handler libzmq would take ANY CURVE key (no User-Id).
        sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
        monitor = sock.get_monitor_socket(HANDSHAKE_EVENTS)
        self._monitors[monitor] = (sock, label)
        self._poller.register(monitor, zmq.POLLIN)

    def _close_monitors(self) -> None:
        for monitor, (sock, _) in list(self._monitors.items()):
            try:
                self._poller.unregister(monitor)
            except KeyError:
                pass
            try:
                sock.disable_monitor()
            except zmq.ZMQError:
                pass
            monitor.close(0)
        self._monitors.clear()

    def _handshakes(self, events: dict) -> None:
        """Count the failed handshakes the monitors saw."""
        for monitor, (_, label) in self._monitors.items():
            if monitor not in events:
                continue
            while True:
                try:
                    event = recv_monitor_message(monitor, zmq.NOBLOCK)
                except zmq.Again:
                    break
                kind = handshake_kind(event["event"], event["value"])
                counts = self.handshakes_failed.setdefault(label, {})
                counts[kind] = counts.get(kind, 0) + 1

    # ---- who sent it ------------------------------------------------------------------------
    def _caller_of(self, frame) -> Caller:
        """The caller behind a message (a ``zmq.Frame``): its handshake's key, checked
        against the trust directory now, and its role."""
        if self.keys is None:
            return UNCHECKED
        try:
            name = frame.get("User-Id") or None
        except zmq.ZMQError:                  # no metadata: not through a handshake (inproc)
            name = None
        return identify(name, name is not None and self._still_trusted(name), self.roles)

    def _still_trusted(self, name: str) -> bool:
        """Is this key still trusted? Its file must be in the trust directory now (one
        ``stat``: a key removed is refused from its very next order), and its name in the
        store as last read (read again when ``RELOAD_S`` has passed — asking for a key that
        cannot exist makes the store check — so a file that no longer holds a key counts
        too). By name: the handshake tells the service the key's name, not the key, so a
        file replaced by another key of the same name is caught at the next handshake."""
        trust = self.keys.trust
        if not (trust.directory / (name + PUBLIC_SUFFIX)).is_file():
            return False
        trust.name_for(b"")
        return name in trust.names()

    def _may(self, caller: Caller, order: Order, case_of=None, unit_of=None) -> str | None:
        problem = allowed(caller, order, case_of, unit_of, self._districts_of)
        if problem is not None:
            self.counts["not_allowed_logged"] += 1
            n = self.counts["not_allowed_logged"]
            if n & (n - 1) == 0:
                LOG.warning("refused an order from key %s (%s): %s [%d so far]",
                            caller.client, caller.label, problem, n)
        return problem

    def _identity_fields(self, caller: Caller) -> bytes:
        """The role and districts a snapshot reply tells the key that asked (nothing when
        the service is not secured: the fields are optional)."""
        if not caller.checked:
            return b""
        districts = caller.grant.district_list() if caller.grant is not None else None
        return (b'"role":' + _enc.encode(caller.role) + b',"districts":'
                + _enc.encode(districts) + b",")

    # ---- looking in -------------------------------------------------------------------------
    def _insecure_why(self) -> list[str]:
        why = list(self.insecure_notes)
        if self.keys is None:
            why += [f"{ep} unencrypted beyond loopback" for ep in
                    (self.dispatch_endpoint, self.feed_endpoint) if not is_loopback(ep)]
        if self.source_keys is None:
            why += [f"source {ep} unencrypted beyond loopback" for ep in self.sources
                    if not is_loopback(ep)]
        return why

    def _security_status(self) -> dict:
        why = self._insecure_why()
        out = {"secured": self.secured, "insecure": bool(why), "insecure_why": why,
               "not_allowed": dict(self.not_allowed),
               "handshakes_failed": {k: dict(v) for k, v in self.handshakes_failed.items()},
               "auth_refused": {}, "feed_auth_refused": {}, "key": None, "roles": None,
               "sources_secured": self.source_keys is not None}
        if self.keys is not None:
            gate = Gate.of(self._ctx)
            out.update(auth_refused=gate.status(ORDERS_DOMAIN),
                       feed_auth_refused=gate.status(FEED_DOMAIN),
                       key=f"{self.keys.key.name} {self.keys.key.fingerprint}",
                       trusted_keys=len(self.keys.trust.names()),
                       roles=self.roles.describe())
        return out

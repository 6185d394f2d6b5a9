"""Watching a connecting socket's link: drops, handshakes that fail, connecting again.

libzmq reconnects a dropped TCP connection by itself — except after a protocol error (a peer
that sent a frame over MAXMSGSIZE), when it ends the connection for good and the socket goes
silently deaf. ``LinkWatch`` sees every drop through the socket's monitor and, when libzmq has
not started connecting again within ``GRACE_S``, connects again itself. It also counts the
handshakes that failed (a wrong server key, a server that does not trust ours): the console
shows them on feed health. No Qt.
"""
from __future__ import annotations

import time

import zmq
from zmq.utils.monitor import recv_monitor_message

GRACE_S = 2.5        # longer than the receiver's RECONNECT_IVL_MAX (2 s)
EVENTS = (zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECTED | zmq.EVENT_CONNECT_RETRIED
          | zmq.EVENT_CONNECT_DELAYED | zmq.EVENT_HANDSHAKE_SUCCEEDED
          | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
          | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
LIVELY = (zmq.EVENT_CONNECTED | zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_CONNECT_DELAYED
          | zmq.EVENT_HANDSHAKE_SUCCEEDED)


class LinkWatch:
    """The monitor of one socket connected to one endpoint."""

    def __init__(self, sock: zmq.Socket, endpoint: str, curve: bool = True):
        self.sock, self.endpoint = sock, endpoint
        # On a plain socket a failed handshake is a key problem only when the server wanted
        # keys (a mechanism mismatch); anything else (a port that speaks no ZMTP) is not.
        self.curve = curve
        self.monitor = sock.get_monitor_socket(EVENTS)
        self.dropped_at: float | None = None
        self.drops = 0
        self.reconnects = 0           # connections we made again because libzmq did not
        self.auth_failed = 0          # handshakes refused (keys)
        self.secure = False           # the last handshake succeeded (on a CURVE socket: keys ok)

    def take_events(self) -> int:
        """Read what the monitor has; the number of failed handshakes among it."""
        failed = 0
        while True:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return failed
            kind = event["event"]
            if kind == zmq.EVENT_DISCONNECTED:
                self.drops += 1
                self.dropped_at = time.monotonic()
            elif kind & HANDSHAKE_FAILED:
                self.secure = False
                if self.curve or event.get("value") == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
                    failed += 1
                    self.auth_failed += 1
            elif kind & LIVELY:
                self.dropped_at = None
                if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    self.secure = True

    def reconnect_if_deaf(self) -> bool:
        """Connect again when a drop was not followed by libzmq's own attempt."""
        if self.dropped_at is None or time.monotonic() - self.dropped_at < GRACE_S:
            return False
        self.dropped_at = None
        self.reconnects += 1
        try:
            self.sock.disconnect(self.endpoint)
        except zmq.ZMQError:
            pass
        self.sock.connect(self.endpoint)
        return True

    def close(self) -> None:
        try:
            self.sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self.monitor.close(0)

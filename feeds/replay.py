"""The classroom: republish a recording as a live protocol feed, so one trainer drives several
trainee consoles.

    python -m feeds.replay day.mcap --feed tcp://0.0.0.0:5560 --key SECRET --trust DIR
                                            [--speed 4] [--start 09:30]
    python main.py --feed tcp://TRAINER:5560 --key SECRET --server-key PUBLIC --clock feed
                                                                (each trainee)

Every message goes out as it was recorded (the publishers' own src, seq and ts; bad ones too),
paced by its receive time. A trainee console should follow the feed's clock (``--clock feed``):
the recorded heartbeats carry the recorded day's time. A console that subscribes late gets the
state so far (the latest record of every case, unit and sensor) from the publisher ``replay``,
which also sends a heartbeat every second, like the demo city does for a late joiner.
"""
from __future__ import annotations

import signal
import sys
import threading
import time

import zmq

from feeds.bounds import MAX_SUBSCRIPTION_BYTES
from feeds.decode import MessageDecoder
from feeds.recording import Recording, RecordingError, read_recording
from feeds.schema import Case, Heartbeat, SensorReading, Unit, UnitPosition, frames

REPLAY_SRC = "replay"
LOOP_S = 0.02                # the pacing loop's longest sleep: subscriptions are seen this fast
HEARTBEAT_MS = 1_000         # of the replay's time
CLASSROOM_DOMAIN = "classroom"   # the ZAP domain of the classroom's CURVE server


class LatestState:
    """The latest record of every case, unit (and unit position) and sensor so far: a late
    joiner's snapshot."""

    def __init__(self):
        self._decoder = MessageDecoder()
        self.latest: dict[tuple[str, str], object] = {}

    def see(self, message: list[bytes]) -> None:
        for rec in self._decoder.decode(message).records:
            if isinstance(rec, Case):
                key = ("case", rec.case_id)
            elif isinstance(rec, Unit):
                key = ("unit", rec.unit_id)
            elif isinstance(rec, UnitPosition):
                key = ("unit.pos", rec.unit_id)
            elif isinstance(rec, SensorReading):
                key = (f"sensor.{rec.kind}", rec.id)
            else:
                continue
            held = self.latest.get(key)
            if held is None or rec.ts >= held.ts:
                self.latest[key] = rec

    def batches(self) -> dict[str, list]:
        """By topic; units' newest fixes last, after every unit (a wall needs the unit first),
        and only those newer than the unit's own record."""
        out: dict[str, list] = {}
        for (topic, uid), rec in self.latest.items():
            if topic == "unit.pos":
                unit = self.latest.get(("unit", uid))
                if unit is not None and unit.ts >= rec.ts:
                    continue
            out.setdefault(topic, []).append(rec)
        if "unit.pos" in out:
            out["unit.pos"] = out.pop("unit.pos")
        return out


class Classroom:
    """Plays ``recording`` from ``start_ms`` at ``speed`` on an XPUB socket bound to
    ``endpoint``. ``run(stop)`` returns at the recording's end or when ``stop`` is set."""

    def __init__(self, recording: Recording, endpoint: str, speed: float = 1.0,
                 start_ms: int | None = None, context: zmq.Context | None = None,
                 keys=None):
        if not speed > 0:
            raise ValueError(f"speed must be greater than zero, not {speed}")
        self.recording, self.speed = recording, float(speed)
        self.start_ms = recording.start_ms if start_ms is None else int(start_ms)
        if not recording.start_ms <= self.start_ms <= recording.end_ms:
            raise ValueError("the start time is outside the recording")
        ctx = context or zmq.Context.instance()
        self.sock = ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.sock.setsockopt(zmq.SNDHWM, 200_000)
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES)
        if keys is not None:        # feeds.security.ServerKeys: only the trusted consoles
            from feeds.security import serve
            serve(self.sock, keys.key, keys.trust, CLASSROOM_DOMAIN)
        try:
            self.sock.bind(endpoint)
        except zmq.ZMQError:
            self.sock.close(0)
            raise
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT) or endpoint
        self.state = LatestState()
        self.sent = 0
        self._seq = 0
        self._pos = 0

    def _record_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _snapshot(self, now: int) -> None:
        import msgspec
        for topic, recs in self.state.batches().items():
            fresh = [msgspec.structs.replace(r, src=REPLAY_SRC, seq=self._record_seq())
                     for r in recs]
            self.sock.send_multipart(frames(fresh))

    def _heartbeat(self, now: int) -> None:
        self.sock.send_multipart(frames(Heartbeat(v=1, src=REPLAY_SRC, seq=self._record_seq(),
                                                  ts=now)))

    def wait_for_console(self, stop: threading.Event) -> bool:
        """Block until the first console subscribes (so the class starts together and the
        first messages are not sent to nobody) or ``stop``; True when one did."""
        while not stop.is_set():
            if self.sock.poll(int(LOOP_S * 1000)) and self.sock.recv()[:1] == b"\x01":
                return True
        return False

    def run(self, stop: threading.Event) -> None:
        rec = self.recording
        # Skip what lies before the start, but remember it for late joiners' snapshots.
        self._pos = rec.index_at(self.start_ms - 1)
        for i in range(self._pos):
            self.state.see(rec.frames(i))
        if self._pos:
            self._snapshot(self.start_ms)     # the first console starts mid-day: the state
        began = time.monotonic()
        next_hb = self.start_ms
        while not stop.is_set():
            now = self.start_ms + int((time.monotonic() - began) * 1000 * self.speed)
            joined = False
            while self.sock.poll(0):
                joined |= self.sock.recv()[:1] == b"\x01"
            if joined:
                self._snapshot(now)
            target = rec.index_at(now)
            while self._pos < target:
                message = rec.frames(self._pos)
                self.sock.send_multipart(message)
                self.state.see(message)
                self._pos += 1
                self.sent += 1
            if now >= next_hb:
                self._heartbeat(now)
                next_hb = now + HEARTBEAT_MS
            if self._pos >= len(rec):
                return
            wait = (rec.log_ms[self._pos] - now) / 1000 / self.speed
            stop.wait(min(max(wait, 0.0), LOOP_S))

    def close(self) -> None:
        self.sock.close(0)


def main(argv: list[str] | None = None) -> int:
    from feeds.args import EXIT_USAGE, OneLineParser, endpoint, positive_float, time_ms
    from feeds.key_args import add_insecure_arg, add_key_arg, add_trust_arg, own_key, server_keys
    from feeds.security import Gate, SecurityError
    p = OneLineParser(prog="feeds.replay",
                      description="Republish a CityWall recording as a live protocol feed.")
    p.add_argument("recording", metavar="FILE.mcap")
    p.add_argument("--feed", type=endpoint, default="tcp://0.0.0.0:5560", metavar="ENDPOINT",
                   help="bind here (default tcp://0.0.0.0:5560, every interface: that needs "
                        "--key and --trust, or --insecure)")
    p.add_argument("--speed", type=positive_float, default=1.0)
    p.add_argument("--start", type=time_ms, default=None,
                   help="where to begin (ISO 8601, Beijing time if no zone; or ms)")
    p.add_argument("--no-wait", action="store_true",
                   help="start at once instead of when the first console subscribes")
    add_key_arg(p, "the classroom's own CURVE key pair (NAME.key_secret, mode 600): with "
                   "--trust, the feed is a CURVE server")
    add_trust_arg(p, "the trainees' consoles")
    add_insecure_arg(p)
    args = p.parse_args(argv)
    try:
        keys = server_keys(own_key(args.key, args.insecure), args.trust, args.feed,
                           args.insecure)
    except SecurityError as exc:
        p.error(str(exc))
    try:
        recording = read_recording(args.recording)
    except RecordingError as exc:
        p.error(str(exc))
    for problem in recording.problems:
        print(f"feeds.replay: warning: {problem}", file=sys.stderr)
    ctx = zmq.Context.instance()
    try:
        room = Classroom(recording, args.feed, args.speed, args.start, context=ctx, keys=keys)
    except ValueError as exc:
        p.error(f"--start: {exc}")
    except zmq.ZMQError as exc:
        print(f"feeds.replay: error: cannot bind {args.feed}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    keyed = (f" --key YOURS.key_secret --server-key {keys.key.name}.key" if keys else "")
    print(f"replaying {args.recording} ({len(recording)} messages) on {room.endpoint} at "
          f"{args.speed:g}×, {'CURVE' if keys else 'UNENCRYPTED'}, from when the first console "
          f"subscribes; trainees: python main.py --feed {room.endpoint}{keyed} --clock feed",
          file=sys.stderr)
    try:
        if args.no_wait or room.wait_for_console(stop):
            room.run(stop)
    except KeyboardInterrupt:
        pass
    finally:
        room.close()
    print(f"sent {room.sent} messages", file=sys.stderr)
    refused = Gate.of(ctx).status(CLASSROOM_DOMAIN) if keys else {}
    if refused:
        print("feeds.replay: refused handshakes (keys not trusted): "
              + ", ".join(f"{peer} ×{n}" for peer, n in sorted(refused.items())), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Recorders: every raw feed message into MCAP, as the receiver got it (see feeds.recording).

``Recorder`` writes one file (``python -m feeds.record``); ``RollingRecorder`` is the console's
``--record-dir``: hourly files, the oldest removed past a size. Both are a Receiver's ``tap``:
called on the receiver thread for every message, with the console's clock as the log time and
the record's ``ts`` (or the log time, for a reject) as the publish time. A tap never raises: a
write error (a full disk) stops the recording, says why in ``problem``, and the console goes on.

Flush policy: a chunk goes to the file when it reaches CHUNK_BYTES (mcap's writer does that)
or when its oldest message is FLUSH_S old, so a crash loses about a second at most. That age is
checked on every write, and by a small timer thread every FLUSH_S / 4 for a feed gone silent
(messages written, the next one never coming). The timer takes the same lock as the tap, so
the writer only ever has one thread in it. Flushes push to the OS (a killed process loses
nothing flushed); fsync only when a file is finished, so a slow disk never stalls the feed.
"""
from __future__ import annotations

import errno
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from feeds.recording import CHUNK_BYTES, RecordingError, RecordingWriter, read_recording

FLUSH_S = 1.0
RETRY_S = 60.0                 # after a write error, try a new file this much later …
HOUR_MS = 3_600_000            # … or when the hour turns, whichever comes first
DEFAULT_MAX_MB = 2048
PREFIX = "citywall"
# citywall-2026-11-25T16Z.mcap: the UTC hour of the log time; -1, -2 … when the console
# restarts within an hour or a retry starts a new file (an existing file is never reopened).
_NAME = re.compile(rf"^{PREFIX}-(\d{{4}}-\d\d-\d\dT\d\d)Z(?:-(\d+))?\.mcap$")
_KEYFRAMES = re.compile(r"^(.+)\.[0-9a-f]{16}\.keyframes$")     # situation.keyframes' name
RECHECK_S = 60.0        # keyframes a wall writes beside an old hour: counted within a minute

_WORDS = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded",
          errno.EFBIG: "file too large", errno.EIO: "I/O error",
          errno.EACCES: "permission denied", errno.EPERM: "permission denied",
          errno.EROFS: "read-only file system"}


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def describe(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return _WORDS.get(exc.errno) or (exc.strerror or str(exc)).lower()
    return f"{type(exc).__name__}: {exc}"


class _Tap:
    """What both recorders share: the lock, the flush policy, the timer, stopping on an error.

    A subclass says which writer a message at log time ``log`` goes to (``_writer_for``), what
    to do when the clock moves with no message (``_on_tick``) and after a failure (``_stopped``).
    """

    def __init__(self, now_ms: Callable[[], int] | None, flush_s: float,
                 mono: Callable[[], float], timer: bool):
        self._now_ms = now_ms or _wall_ms
        self._mono = mono
        self._flush_s = flush_s
        self._lock = threading.Lock()
        self._writer: RecordingWriter | None = None
        self._dirty_since: float | None = None     # mono time of the oldest unflushed message
        self._pending = 0                         # messages written since the last flush
        self._chunk_on_disk = False               # the current file has a complete chunk
        self._file_bytes = 0                      # the current file's size at its last flush
        self._bytes_done = 0                      # the files finished before it
        self._closed = False
        self._stop = threading.Event()
        self._timer = None
        self._want_timer = timer
        self.messages = 0      # in complete chunks or the chunk in progress
        self.dropped = 0       # not recorded: lost with an unflushed chunk, or while stopped
        self.problem: str | None = None

    def _start_timer(self) -> None:
        if self._want_timer:
            self._timer = threading.Thread(target=self._run_timer, name="recorder-flush",
                                           daemon=True)
            self._timer.start()

    def _run_timer(self) -> None:
        while not self._stop.wait(self._flush_s / 4):
            self.tick()

    # ---- called by the receiver thread, the timer, the owner --------------------------
    def tap(self, endpoint: str, frames: list[bytes], ts: int | None) -> None:
        with self._lock:
            if self._closed:
                return
            written = False
            try:
                log = int(self._now_ms())
                writer = self._writer_for(log)
                if writer is None:                 # stopped by an error, not retrying yet
                    self.dropped += 1
                    return
                writer.write(frames, log, ts if ts is not None else log)
                written = True
                self.messages += 1
                self._pending += 1
                if self._dirty_since is None:
                    self._dirty_since = self._mono()
                elif self._mono() - self._dirty_since >= self._flush_s:
                    self._flush()
            except Exception as exc:               # never into the receiver thread
                self._failed(exc, this_message=not written)

    def tick(self) -> None:
        """Flush a chunk that is due and let the hour turn with no message (the timer calls
        this; an owner may too)."""
        with self._lock:
            if self._closed:
                return
            try:
                self._on_tick()
                if (self._writer is not None and self._dirty_since is not None
                        and self._mono() - self._dirty_since >= self._flush_s):
                    self._flush()
            except Exception as exc:
                self._failed(exc, this_message=False)

    def close(self) -> None:
        """Finish the file (summary and index at its end). Never raises: a failure is said in
        ``problem``. Safe to call from any thread, and twice."""
        self._stop.set()
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.join(5)
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._finish_file()
            except Exception as exc:
                self._failed(exc, this_message=False)

    # ---- under the lock ----------------------------------------------------------------
    def _writer_for(self, log_ms: int) -> RecordingWriter | None:
        return self._writer

    def _on_tick(self) -> None:
        pass

    def _stopped(self) -> str:
        """After a failure: plan what comes next, and say it (appended to ``problem``)."""
        return ""

    def _abandoned(self, path: Path, had_chunk: bool) -> None:
        pass

    def _open(self, path: Path, metadata: dict[str, str] | None, chunk_bytes: int) -> None:
        self._writer = RecordingWriter(path, chunk_bytes=chunk_bytes, metadata=metadata)
        self._chunk_on_disk = False
        self._writer.flush()         # the header reaches the disk now: a full disk shows at once
        self._file_bytes = _size(path)

    def _flush(self) -> None:
        self._writer.flush()
        self._dirty_since = None
        self._pending = 0
        self._chunk_on_disk = True
        self._file_bytes = _size(self._writer.path)

    def _finish_file(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        except BaseException:
            self._writer = writer              # so _failed names it and counts its losses
            raise
        self._bytes_done += _size(writer.path)
        self._file_bytes = 0
        self._dirty_since = None
        self._pending = 0

    def _failed(self, exc: BaseException, *, this_message: bool) -> None:
        writer, self._writer = self._writer, None
        self.messages -= self._pending
        self.dropped += self._pending + (1 if this_message else 0)
        self._pending = 0
        self._dirty_since = None
        path = writer.path if writer is not None else getattr(exc, "filename", None)
        kept = ""
        if writer is not None:
            writer.abandon()
            self._abandoned(writer.path, self._chunk_on_disk)
            self._bytes_done += _size(writer.path)
            self._file_bytes = 0
            if self._chunk_on_disk:
                kept = "; what was written is kept up to its last complete chunk"
        self.problem = (f"recording stopped: {describe(exc)}{f': {path}' if path else ''}"
                        f"{kept}{self._stopped()}")

    @property
    def bytes(self) -> int:
        return self._bytes_done + self._file_bytes


def _stamp(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, timezone.utc).strftime("%Y-%m-%dT%HZ")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class Recorder(_Tap):
    """Records into one file. Opening it may raise OSError (the caller says it); after that
    nothing raises, and a write error ends the recording with ``problem`` set."""

    def __init__(self, path: str | os.PathLike, *, now_ms: Callable[[], int] | None = None,
                 flush_s: float = FLUSH_S, chunk_bytes: int = CHUNK_BYTES,
                 metadata: dict[str, str] | None = None,
                 mono: Callable[[], float] = time.monotonic, timer: bool = True):
        super().__init__(now_ms, flush_s, mono, timer)
        self.path = Path(path)
        try:
            self._open(self.path, metadata, chunk_bytes)
        except BaseException:
            if self._writer is not None:
                self._writer.abandon()
            raise
        self._start_timer()


class RollingRecorder(_Tap):
    """The console's continuous recording: ``DIR/citywall-YYYY-MM-DDTHHZ.mcap``, one file per
    UTC hour of the log time, finished when the hour turns (by the next message, or the timer
    when the feed is silent). Past ``max_bytes`` of recordings in the directory — each counted
    with the keyframe files replays left beside it — the oldest are removed with their
    keyframe files (only files named like ours; never the one being written). A write error abandons
    the file (it stays replayable to its last complete chunk), sets ``problem``, and a new file
    is tried at the next hour or after ``retry_s``, whichever comes first; messages in between
    are counted in ``dropped``. The directory is made if missing (OSError to the caller, at
    start-up); ``now_ms`` is called from the receiver and the timer threads."""

    def __init__(self, directory: str | os.PathLike, max_bytes: int = DEFAULT_MAX_MB << 20, *,
                 now_ms: Callable[[], int] | None = None, flush_s: float = FLUSH_S,
                 retry_s: float = RETRY_S, chunk_bytes: int = CHUNK_BYTES,
                 mono: Callable[[], float] = time.monotonic, timer: bool = True):
        super().__init__(now_ms, flush_s, mono, timer)
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be greater than zero, not {max_bytes}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)     # OSError to the caller
        self.max_bytes = int(max_bytes)
        self._capped_at = mono()                # when the directory was last looked over
        self._retry_s = retry_s
        self._chunk_bytes = chunk_bytes
        self._hour: int | None = None          # the hour of the file being written
        self._failed_hour: int | None = None   # set while stopped by an error
        self._retry_at = 0.0
        self._others_bytes = 0                 # our other files in the directory, last listed
        self.removed: list[str] = []           # names removed by the size cap, oldest first
        self.cleanup_problem: str | None = None
        self._start_timer()

    def status(self) -> dict:
        with self._lock:
            return {"dir": str(self.directory),
                    "file": str(self._writer.path) if self._writer is not None else None,
                    "messages": self.messages, "dropped": self.dropped, "bytes": self.bytes,
                    "removed": len(self.removed), "problem": self.problem,
                    "cleanup_problem": self.cleanup_problem}

    def path_for(self, hour: int) -> Path:
        """The next unused name for ``hour`` (hours since the epoch, UTC)."""
        stamp = _stamp(hour)
        path = self.directory / f"{PREFIX}-{stamp}.mcap"
        n = 0
        while os.path.lexists(path):
            n += 1
            path = self.directory / f"{PREFIX}-{stamp}-{n}.mcap"
        return path

    # ---- under the lock ----------------------------------------------------------------
    def _writer_for(self, log_ms: int) -> RecordingWriter | None:
        hour = log_ms // HOUR_MS
        if self._writer is not None and hour != self._hour:
            self._finish_file()
        if self._writer is None:
            if (self._failed_hour is not None and hour == self._failed_hour
                    and self._mono() < self._retry_at):
                return None
            self._failed_hour = None
            self._hour = hour
            path = self.path_for(hour)
            self._open(path, {"recorder": "feeds.record.RollingRecorder",
                              "hour_utc": _stamp(hour)}, self._chunk_bytes)
            self.problem = None                # recording again; the gap is in ``dropped``
            self._enforce_cap()
        return self._writer

    def _on_tick(self) -> None:
        if self._writer is not None and int(self._now_ms()) // HOUR_MS != self._hour:
            self._finish_file()
        elif (self._writer is not None and self._others_bytes
              and self._others_bytes + self._file_bytes > self.max_bytes):
            self._enforce_cap()                # the hour's file grew past the cap
        elif self._mono() - self._capped_at >= RECHECK_S:
            self._enforce_cap()                # keyframe files written beside old hours

    def _finish_file(self) -> None:
        super()._finish_file()
        self._enforce_cap()

    def _stopped(self) -> str:
        self._failed_hour = self._hour
        self._retry_at = self._mono() + self._retry_s
        return f"; trying a new file in {self._retry_s:g} s or at the next hour"

    def _abandoned(self, path: Path, had_chunk: bool) -> None:
        if had_chunk:
            return
        try:                # a chunk mcap wrote by size may be there; if not, leave no litter
            read_recording(path)
        except RecordingError:
            try:
                path.unlink()
            except OSError:
                pass

    def _enforce_cap(self) -> None:
        """One listing of the directory: our recordings, each with the keyframe files replays
        left beside it (a replayed week's are ~3.6 times the week: the cap holds for both),
        and keyframe files whose recording is gone (removed: nothing can use them)."""
        self._capped_at = self._mono()
        try:
            ours: dict[str, list] = {}          # name → [sort key, bytes, keyframe paths]
            keyframes: list[tuple[str, Path, int]] = []
            for entry in os.scandir(self.directory):
                if not entry.is_file(follow_symlinks=False):
                    continue
                m = _NAME.match(entry.name)
                if m:
                    held = ours.setdefault(entry.name, [None, 0, []])
                    held[0] = (m.group(1), int(m.group(2) or 0))
                    held[1] += entry.stat(follow_symlinks=False).st_size
                    continue
                k = _KEYFRAMES.match(entry.name)
                if k and _NAME.match(k.group(1)):
                    keyframes.append((k.group(1), Path(entry.path),
                                      entry.stat(follow_symlinks=False).st_size))
        except OSError as exc:
            self.cleanup_problem = f"cannot list {self.directory}: {describe(exc)}"
            return
        self.cleanup_problem = None
        for name, path, size in keyframes:
            held = ours.get(name)
            if held is None or held[0] is None:
                path.unlink(missing_ok=True)    # its recording is gone
            else:
                held[1] += size
                held[2].append(path)
        listed = sorted((held[0], name, held[1], held[2]) for name, held in ours.items()
                        if held[0] is not None)
        current = self._writer.path.name if self._writer is not None else None
        total = sum(size for _, _, size, _ in listed)
        kept = 0
        for _, name, size, frames in listed:
            if total <= self.max_bytes or name == current:
                kept += size if name != current else 0
                continue
            try:
                (self.directory / name).unlink()
                for kf in frames:               # a replay's, beside it
                    kf.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.cleanup_problem = f"cannot remove old recording {name}: {describe(exc)}"
                kept += size
                continue
            total -= size
            self.removed.append(name)
        self._others_bytes = kept


def main(argv: list[str] | None = None) -> int:
    import signal

    import zmq

    from feeds.args import EXIT_USAGE, OneLineParser, endpoint, positive_float, positive_int
    from feeds.key_args import (ORDER, Ordered, add_insecure_arg, add_key_arg,
                                add_server_key_arg, client_keys, own_key)
    from feeds.receiver import Receiver
    from feeds.security import SecurityError
    from feeds.bounds import DEFAULT_MAX_MESSAGE_BYTES
    from feeds.schema import DEFAULT_MAX_RECORD_BYTES

    p = OneLineParser(prog="feeds.record",
                      description="Record feeds, every message as it arrived, into an MCAP file.")
    p.add_argument("--feed", type=endpoint, action=Ordered, required=True, metavar="ENDPOINT",
                   help="a feed to subscribe to (repeat for more); on another machine it needs "
                        "--key and --server-key (or --insecure)")
    p.add_argument("--out", required=True, metavar="FILE.mcap")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--run-for", type=positive_float, default=None, metavar="SECONDS",
                   help="stop after this long (default: until Ctrl-C or SIGTERM)")
    p.add_argument("--max-record-bytes", type=positive_int, default=DEFAULT_MAX_RECORD_BYTES,
                   metavar="N", help="the receiver's record size limit (default 64 KiB)")
    p.add_argument("--max-message-bytes", type=positive_int, default=DEFAULT_MAX_MESSAGE_BYTES,
                   metavar="N", help="a larger frame is dropped by ZeroMQ (default 8 MiB)")
    add_key_arg(p, "the recorder's own CURVE key pair (NAME.key_secret, mode 600)")
    add_server_key_arg(p)
    add_insecure_arg(p)
    args = p.parse_args(argv)
    try:
        keys = client_keys(own_key(args.key, args.insecure), getattr(args, ORDER, None) or [],
                           args.feed, args.insecure)
    except SecurityError as exc:
        p.error(str(exc))
    out = Path(args.out).expanduser()
    if out.is_dir():
        p.error(f"--out: is a directory: {args.out!r}")
    if not out.parent.is_dir():
        p.error(f"--out: no such directory: {str(out.parent)!r}")
    if out.is_file() and not args.overwrite:
        p.error(f"--out: {args.out!r} exists; choose another name or pass --overwrite")
    existed = out.exists()
    try:
        recorder = Recorder(out, metadata={"recorder": "python -m feeds.record",
                                           "feeds": " ".join(args.feed)})
    except OSError as exc:
        p.error(f"--out: cannot write {args.out!r}: {describe(exc)}")
    try:
        receiver = Receiver(args.feed, tap=recorder.tap, max_record_bytes=args.max_record_bytes,
                            max_message_bytes=args.max_message_bytes, keys=keys).start()
    except (zmq.ZMQError, ValueError) as exc:
        recorder.close()
        if not existed:
            out.unlink(missing_ok=True)        # nothing recorded: leave nothing behind
        print(f"feeds.record: error: cannot subscribe to {' '.join(args.feed)}: {exc}",
              file=sys.stderr)
        return EXIT_USAGE

    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set())
                for s in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    deadline = None if args.run_for is None else started + args.run_for
    print(f"recording {' '.join(args.feed)} to {out} ({'CURVE' if keys else 'plain'}); "
          "Ctrl-C stops", file=sys.stderr)
    auth_failed: dict[str, int] = {}
    try:
        while not stop.is_set() and recorder.problem is None and not receiver.given_up:
            left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if left <= 0:
                break
            stop.wait(left)
            batch, _ = receiver.drain()        # discard: the receiver keeps reading
            for ep, n in batch.auth_failed.items():
                auth_failed[ep] = auth_failed.get(ep, 0) + n
    finally:
        receiver.stop()
        recorder.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    took = time.monotonic() - started
    for what, fault in receiver.faults.snapshot().items():
        print(f"feeds.record: fault: {what} ×{fault['count']}: {fault['error']}", file=sys.stderr)
    if receiver.given_up:
        print(f"feeds.record: error: the receiver stopped for good ({recorder.messages} "
              "messages recorded)", file=sys.stderr)
        return 1
    if recorder.problem is not None:
        print(f"feeds.record: error: {recorder.problem} ({recorder.messages} messages "
              f"recorded, {recorder.dropped} not)", file=sys.stderr)
        return 1
    if auth_failed:
        print("feeds.record: warning: handshakes failed (keys not accepted): "
              + ", ".join(f"{ep} ×{n}" for ep, n in sorted(auth_failed.items())),
              file=sys.stderr)
    if recorder.messages == 0:
        print(f"feeds.record: warning: nothing was received from {' '.join(args.feed)} "
              f"in {took:.1f} s", file=sys.stderr)
    print(f"recorded {recorder.messages} messages ({_size(out)} bytes) in {took:.1f} s "
          f"to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

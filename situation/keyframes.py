"""A replay's keyframes, compact and on disk: the picture every so many messages, so a seek
restores the nearest one and applies only the messages after it.

Each keyframe is packed (``situation.keyframe_pack``: pickled, compressed) by a worker thread
and appended to a keyframe file; memory holds only where each lies. The file sits beside the
recording (``day.mcap.<fingerprint>.keyframes``) when that directory can be written, so the
next wall that opens the same recording with the same settings jumps at once. A wall that
finds the file being written by another (or in a read-only archive) reads the keyframes already
in it and keeps its own new ones in a temporary file that goes with it. The fingerprint covers
what shapes the picture: the recording (size, time, messages), the wall's settings (frame,
districts, limits, record size, keyframe spacing), the code and data of ``feeds`` and
``situation``, and this user's key: any change and the keyframes are taken again.

Every entry is signed (HMAC-SHA256 with a key of this user's, ``keyframes.key`` in
``$XDG_STATE_HOME/citywall``, mode 0600), so a keyframe file someone else wrote or changed is
never unpickled; a bad or torn entry is dropped and taken again. No Qt here.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import stat
import struct
import tempfile
import threading
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path

from feeds.recording import keyframe_files
from situation.keyframe_pack import Keyframe, pack, unpack

__all__ = ["Keyframe", "KeyframeStore", "fingerprint", "pack", "unpack"]

MAGIC = b"CITYWALL-KEYFRAMES-2\n"
_ENTRY = struct.Struct("<QQ32s")            # message index, payload length, HMAC-SHA256
MAX_HEADER = 64 << 10
MAX_ENTRY = 256 << 20                        # a keyframe larger than this is not read
PENDING = 2                                  # keyframes waiting for the worker, at most
IDLE_S = 2.0                                 # the worker ends when idle this long
KEY_BYTES = 32

_CODE: str | None = None
_KEY: bytes | None = None


def code_fingerprint() -> str:
    """A hash of the code and data that make a picture from messages (``feeds``,
    ``situation``: their modules and ``feeds/data``)."""
    global _CODE
    if _CODE is None:
        h = hashlib.sha256()
        root = Path(__file__).resolve().parent.parent
        files = [f for pkg in ("feeds", "situation") for f in sorted((root / pkg).glob("*.py"))]
        files += sorted(p for p in (root / "feeds" / "data").rglob("*") if p.is_file())
        for f in files:
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
        _CODE = h.hexdigest()
    return _CODE


def user_key() -> bytes:
    """This user's key for signing keyframes: made once (mode 0600); a random key for this
    process alone when it cannot be kept (a read-only home)."""
    global _KEY
    if _KEY is None:
        state = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
        path = Path(state) / "citywall" / "keyframes.key"
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            except FileExistsError:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
                st = os.fstat(fd)
                key = os.read(fd, KEY_BYTES + 1)
                os.close(fd)
                if (len(key) != KEY_BYTES or st.st_uid != os.getuid()
                        or st.st_mode & 0o077):
                    raise OSError(f"{path}: not a key of this user's alone")
            else:
                key = secrets.token_bytes(KEY_BYTES)
                os.write(fd, key)
                os.close(fd)
            _KEY = key
        except OSError:
            _KEY = secrets.token_bytes(KEY_BYTES)
    return _KEY


def _plain(value):
    if is_dataclass(value):
        return asdict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(map(str, value))
    return value


def fingerprint(recording, settings: dict) -> tuple[str, dict]:
    """The keyframe file's name part and its header: what the keyframes depend on."""
    st = os.stat(recording.path)
    doc = {"recording": [st.st_size, st.st_mtime_ns, len(recording)],
           "code": code_fingerprint(),
           "key": hashlib.sha256(b"citywall keyframes" + user_key()).hexdigest()[:16],
           "settings": {k: _plain(v) for k, v in sorted(settings.items())}}
    text = json.dumps(doc, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest(), json.loads(text)


def _forget_stale(path: Path, recording_path: Path, header: dict) -> None:
    """Remove the recording's keyframe files that can never be used again: those of another
    version of the recording or of the code (another wall's settings or key stay)."""
    for other in keyframe_files(recording_path):
        if other == path:
            continue
        try:
            with open(other, "rb", opener=_no_follow) as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)    # in use: leave it
                head = f.read(MAX_HEADER)
                if not head.startswith(MAGIC):
                    other.unlink()                  # an older format
                    continue
                doc = json.loads(head[len(MAGIC):].split(b"\n", 1)[0])
                if (doc.get("recording"), doc.get("code")) != (header["recording"],
                                                              header["code"]):
                    other.unlink()
        except (OSError, ValueError):
            continue


def _no_follow(path, flags):
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)


class _File:
    """One file of entries: the keyframe file (written, or only read) or a temporary one."""

    def __init__(self, f, end: int):
        self.f, self.end = f, end


class KeyframeStore:
    """Keyframes by message index: ``k in store``, ``store[k]`` (a Keyframe, read from its
    file), ``store[k] = keyframe`` (written to it), ``keys()``.

    ``valid(index)`` says which indexes a keyframe may have (the replay's spacing); entries
    found for others are ignored."""

    def __init__(self, recording=None, settings: dict | None = None, *, beside: bool = True,
                 valid=None):
        self._key = user_key()
        self._valid = valid or (lambda index: index > 0)
        self._where: dict[int, tuple[_File, int, int, bytes]] = {}   # → (file, at, len, mac)
        self._first: Keyframe | None = None  # the picture before any message: in memory
        self._pending: dict[int, Keyframe] = {}   # taken, being packed by the worker
        self._work = threading.Condition()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self._files: list[_File] = []
        self._out: _File | None = None       # where new keyframes go
        self.failed: str | None = None       # why keyframes could not be written (disk full)
        self.path: Path | None = None        # the keyframe file beside the recording, if any
        self.shared = False                  # … only read: another wall writes it
        self.loaded = 0                      # keyframes found in it at open
        if recording is not None and beside:
            try:
                self._open_beside(recording, settings or {})
            except (OSError, ValueError):
                pass
        if self._out is None:
            f = tempfile.TemporaryFile(prefix="citywall-keyframes-")
            f.write(MAGIC)
            self._out = _File(f, len(MAGIC))
            self._files.append(self._out)

    # ---- the file beside the recording ---------------------------------------------------
    def _open_beside(self, recording, settings: dict) -> None:
        fp, doc = fingerprint(recording, settings)
        path = Path(recording.path)
        path = path.with_name(f"{path.name}.{fp[:16]}.keyframes")
        header = MAGIC + json.dumps({"fingerprint": fp, **doc}, sort_keys=True).encode() + b"\n"
        try:
            f = self._open(path, os.O_RDWR | os.O_CREAT, "r+b")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:           # another wall writes it now: read what it has
                f.close()
                raise
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES, errno.EROFS, errno.EPERM):
                raise
            f = self._open(path, os.O_RDONLY, "rb")   # read-only archive, or being written
            if f.read(len(header)) != header:
                f.close()
                return
            held = _File(f, len(header))
            self._read_entries(held)
            self._files.append(held)
            self.path, self.shared, self.loaded = path, True, len(self._where)
            return
        head = f.read(len(header))
        if head != header:                   # new, or another fingerprint: start it again
            f.seek(0)
            f.truncate()
            f.write(header)
            f.flush()
            _forget_stale(path, Path(recording.path), doc)
        out = _File(f, len(header))
        if head == header:
            self._read_entries(out)
            f.truncate(out.end)              # a torn last entry goes
        self._out = out
        self._files.append(out)
        self.path, self.loaded = path, len(self._where)

    @staticmethod
    def _open(path: Path, flags: int, mode: str):
        # Never through a link planted under the name (it would truncate its target).
        fd = os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(fd)
            raise ValueError(f"{path}: not a keyframe file of its own")
        return os.fdopen(fd, mode)

    def _read_entries(self, held: _File) -> None:
        """Index the entries of ``held`` from ``held.end``, which ends after the last whole
        one."""
        f, at = held.f, held.end
        size = os.fstat(f.fileno()).st_size
        while at + _ENTRY.size <= size:
            f.seek(at)
            index, length, mac = _ENTRY.unpack(f.read(_ENTRY.size))
            if length > MAX_ENTRY or at + _ENTRY.size + length > size:
                break
            if self._valid(index):           # (the first picture is made, never read)
                self._where[index] = (held, at + _ENTRY.size, length, mac)
            at += _ENTRY.size + length
        held.end = at

    def _mac(self, index: int, data: bytes) -> bytes:
        return hmac.new(self._key, struct.pack("<Q", index) + data, hashlib.sha256).digest()

    # ---- the mapping -----------------------------------------------------------------------
    def __contains__(self, index) -> bool:
        return (index in self._where or index in self._pending
                or (index == 0 and self._first is not None))

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def keys(self) -> list[int]:
        with self._work, self._lock:
            held = set(self._where) | set(self._pending)
        if self._first is not None:
            held.add(0)
        return sorted(held)

    def setdefault(self, index: int, frame: Keyframe) -> None:
        if index not in self:
            self[index] = frame

    def __setitem__(self, index: int, frame: Keyframe) -> None:
        """Keep a keyframe (a snapshot: it shares nothing mutable with the live picture). It
        is packed and written by a worker thread; at most ``PENDING`` wait, past that the
        caller packs it."""
        if index == 0:
            self._first = frame
            return
        with self._work:
            if len(self._pending) < PENDING:
                self._pending[index] = frame
                if self._worker is None:
                    self._worker = threading.Thread(target=self._pack_pending, daemon=True,
                                                    name="keyframes")
                    self._worker.start()
                self._work.notify()
                return
        self._write(index, frame)

    def _pack_pending(self) -> None:
        """The worker: packs and writes what is pending; ends when idle (so a store nobody
        holds any more goes, with its file and its lock)."""
        while True:
            with self._work:
                if not self._pending:
                    self._work.wait(IDLE_S)
                if not self._pending:
                    self._worker = None
                    return
                index = next(iter(self._pending))
                frame = self._pending[index]
            self._write(index, frame)
            with self._work:
                self._pending.pop(index, None)
                self._work.notify_all()

    def _write(self, index: int, frame: Keyframe) -> None:
        try:
            self._append(index, pack(frame))
        except Exception as exc:          # a full disk: keyframes stop, the replay goes on
            self.failed = f"keyframes cannot be written ({type(exc).__name__}: {exc})"

    def _append(self, index: int, data: bytes) -> None:
        mac = self._mac(index, data)
        with self._lock:
            out = self._out
            if out is None:
                return
            f = out.f
            try:
                f.seek(out.end)
                f.write(_ENTRY.pack(index, len(data), mac) + data)
                f.flush()
            except OSError:
                f.truncate(out.end)              # nothing half written stays
                raise
            self._where[index] = (out, out.end + _ENTRY.size, len(data), mac)
            out.end += _ENTRY.size + len(data)

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every keyframe taken is written (at most ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        with self._work:
            while self._pending and time.monotonic() < deadline:
                self._work.wait(0.5)

    def __getitem__(self, index: int) -> Keyframe:
        """The keyframe; KeyError when it is not held or does not read back whole and
        signed by this user (then it is forgotten, to be taken again)."""
        if index == 0 and self._first is not None:
            return self._first
        with self._work:
            pending = self._pending.get(index)
        if pending is not None:
            return pending
        held, at, length, mac = self._where[index]
        with self._lock:
            if held.f.closed:
                raise KeyError(index)
            data = os.pread(held.f.fileno(), length, at)
        try:
            if len(data) != length or not hmac.compare_digest(self._mac(index, data), mac):
                raise ValueError("it is not signed by this user's key, or damaged")
            return unpack(data)
        except Exception:
            with self._lock:
                if self._where.get(index, (None,))[0] is held:
                    del self._where[index]        # taken again as play or the indexer passes
            raise KeyError(index) from None

    def bytes_on_disk(self) -> int:
        """The size of the file new keyframes go to."""
        return self._out.end if self._out is not None else 0

    def close(self) -> None:
        """Write what is pending, then let go of the files."""
        self.flush()
        with self._work, self._lock:
            for held in self._files:
                held.f.close()
            self._out = None
            self._work.notify_all()

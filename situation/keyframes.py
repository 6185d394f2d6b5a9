"""A replay's keyframes, compact and on disk: the picture every so many messages, so a seek
restores the nearest one and applies only the messages after it.

Each keyframe is the situation's snapshot pickled and zstd-compressed, appended to a keyframe
file; memory holds only where each lies. The file sits beside the recording
(``day.mcap.<fingerprint>.keyframes``) when that directory can be written, so the next console
that opens the same recording with the same settings jumps at once; otherwise (a read-only
archive, or another console writing it now) it is an anonymous temporary file that goes with
the process. The fingerprint covers what shapes the picture: the recording (size, time,
messages), the wall's settings (frame, districts, limits, record size, keyframe spacing) and
the code of ``feeds`` and ``situation``: any change and the keyframes are taken again.

A keyframe file is trusted no more than the recording beside it: every entry carries its
SHA-256 and is checked when read; unpickling finds only the classes a picture is made of (an
allow-list, so a forged file cannot name a function to call); a bad or torn entry is dropped
and taken again. No Qt here.
"""
from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import pickle
import struct
import tempfile
import threading
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path

import zstandard

MAGIC = b"CITYWALL-KEYFRAMES-1\n"
_ENTRY = struct.Struct("<QQ32s")            # message index, payload length, sha256
MAX_HEADER = 64 << 10
MAX_ENTRY = 1 << 30                          # a keyframe larger than this is not read
LEVEL = 1                                    # zstd: fast; pickled pictures compress ~3×

# What a picture is made of: the only globals a keyframe may name.
_ALLOWED = {
    ("collections", "deque"), ("collections", "Counter"), ("collections", "OrderedDict"),
    ("msgspec._utils", "rebuild"),
    ("situation.sources", "Sources"), ("situation.sources", "SourceHealth"),
    ("situation.reports", "ReportLog"), ("situation.reports", "Report"),
    ("situation.case_times", "StageTable"), ("situation.tracks", "Track"),
}
_SCHEMA_MODULE = "feeds.schema"


@dataclass
class Keyframe:
    state: dict
    seq: dict


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module == _SCHEMA_MODULE:
            import msgspec
            found = super().find_class(module, name)
            if isinstance(found, type) and issubclass(found, msgspec.Struct):
                return found
        raise pickle.UnpicklingError(f"a keyframe names {module}.{name}, which a picture "
                                     "is not made of")


def pack(frame: Keyframe) -> bytes:
    return zstandard.ZstdCompressor(level=LEVEL).compress(
        pickle.dumps((frame.state, frame.seq), protocol=5))


def unpack(data: bytes) -> Keyframe:
    plain = zstandard.ZstdDecompressor().decompress(data, max_output_size=MAX_ENTRY)
    state, seq = _Unpickler(io.BytesIO(plain)).load()
    if not isinstance(state, dict) or not isinstance(seq, dict):
        raise pickle.UnpicklingError("a keyframe is not a picture")
    return Keyframe(state, seq)


_CODE: str | None = None


def code_fingerprint() -> str:
    """A hash of the code that makes a picture from messages (``feeds``, ``situation``)."""
    global _CODE
    if _CODE is None:
        h = hashlib.sha256()
        root = Path(__file__).resolve().parent.parent
        for pkg in ("feeds", "situation"):
            for f in sorted((root / pkg).glob("*.py")):
                h.update(f.name.encode() + b"\0" + f.read_bytes())
        _CODE = h.hexdigest()
    return _CODE


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
           "settings": {k: _plain(v) for k, v in sorted(settings.items())}}
    text = json.dumps(doc, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest(), json.loads(text)


def _forget_stale(path: Path, header: dict) -> None:
    """Remove the recording's keyframe files that can never be used again: those of another
    version of the recording or of the code (another wall's settings stay)."""
    for other in path.parent.glob(path.name.rsplit(".", 2)[0] + ".*.keyframes"):
        if other == path:
            continue
        try:
            with open(other, "rb") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)    # in use: leave it
                head = f.read(MAX_HEADER)
                if not head.startswith(MAGIC):
                    continue
                doc = json.loads(head[len(MAGIC):].split(b"\n", 1)[0])
                if (doc.get("recording"), doc.get("code")) != (header["recording"],
                                                              header["code"]):
                    other.unlink()
        except (OSError, ValueError):
            continue


class KeyframeStore:
    """Keyframes by message index: ``k in store``, ``store[k]`` (a Keyframe, read from the
    file), ``store[k] = keyframe`` (written to it), iteration over the indexes held."""

    def __init__(self, recording=None, settings: dict | None = None, *, beside: bool = True):
        self._where: dict[int, tuple[int, int, bytes]] = {}     # index → (at, length, sha)
        self._first: Keyframe | None = None  # the picture before any message: in memory
        self._lock = threading.Lock()
        self._file = None
        self.path: Path | None = None        # the keyframe file beside the recording, if any
        self.loaded = 0                      # keyframes found in it at open
        if recording is not None and beside:
            try:
                self._open_beside(recording, settings or {})
            except OSError:
                self._file = None
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="citywall-keyframes-")
            self._file.write(MAGIC)
            self._end = len(MAGIC)

    # ---- the file beside the recording ---------------------------------------------------
    def _open_beside(self, recording, settings: dict) -> None:
        fp, doc = fingerprint(recording, settings)
        path = Path(recording.path)
        path = path.with_name(f"{path.name}.{fp[:16]}.keyframes")
        header = MAGIC + json.dumps({"fingerprint": fp, **doc}, sort_keys=True).encode() + b"\n"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        f = os.fdopen(fd, "r+b")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)    # another console writes it now
        except OSError:
            f.close()
            raise
        head = f.read(len(header))
        if head != header:                   # new, or another fingerprint: start it again
            f.seek(0)
            f.truncate()
            f.write(header)
            f.flush()
            end = len(header)
            _forget_stale(path, doc)
        else:
            end = self._read_entries(f, len(header))
            f.truncate(end)                  # a torn last entry goes
        self._file, self._end, self.path = f, end, path
        self.loaded = len(self._where)

    def _read_entries(self, f, at: int) -> int:
        size = os.fstat(f.fileno()).st_size
        while at + _ENTRY.size <= size:
            f.seek(at)
            index, length, digest = _ENTRY.unpack(f.read(_ENTRY.size))
            if length > MAX_ENTRY or at + _ENTRY.size + length > size:
                break
            if index:                        # the first picture is made, never read
                self._where[index] = (at + _ENTRY.size, length, digest)
            at += _ENTRY.size + length
        return at

    # ---- the mapping -----------------------------------------------------------------------
    def __contains__(self, index) -> bool:
        return index in self._where or (index == 0 and self._first is not None)

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def keys(self) -> list[int]:
        held = set(self._where)
        if self._first is not None:
            held.add(0)
        return sorted(held)

    def setdefault(self, index: int, frame: Keyframe) -> None:
        if index not in self:
            self[index] = frame

    def __setitem__(self, index: int, frame: Keyframe) -> None:
        if index == 0:
            self._first = frame
            return
        self._append(index, pack(frame))

    def _append(self, index: int, data: bytes) -> None:
        digest = hashlib.sha256(data).digest()
        with self._lock:
            f = self._file
            f.seek(self._end)
            f.write(_ENTRY.pack(index, len(data), digest) + data)
            f.flush()
            self._where[index] = (self._end + _ENTRY.size, len(data), digest)
            self._end += _ENTRY.size + len(data)

    def __getitem__(self, index: int) -> Keyframe:
        """The keyframe; KeyError when it is not held or no longer reads back whole (then it
        is forgotten, to be taken again)."""
        if index == 0 and self._first is not None:
            return self._first
        at, length, digest = self._where[index]
        with self._lock:
            data = os.pread(self._file.fileno(), length, at)
        try:
            if len(data) != length or hashlib.sha256(data).digest() != digest:
                raise ValueError("it fails its checksum")
            return unpack(data)
        except Exception:
            with self._lock:
                self._where.pop(index, None)      # taken again as play or the indexer passes
            raise KeyError(index) from None

    def bytes_on_disk(self) -> int:
        return self._end

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

"""Reading an MCAP recording without holding it: the index from the file's own message indexes,
the payloads read from disk a chunk at a time when a replay needs them.

Opening walks the file's top-level records only (seeking past each chunk's data) and takes
every message's receive time and place from the MessageIndex records the writer puts after
each chunk: a few numpy arrays per chunk, no Python object per message, nothing decompressed.
A chunk without message indexes (another writer; the last chunk of a file cut short right after
it) is decompressed once and scanned. Channels come from the summary, or from the chunks that
first use them when a file has no summary.

Nothing in the file is trusted: a record running past the file's end stops the walk there
(everything before it replays); offsets are checked when a payload is read; a chunk that fails
to decompress or its CRC, when first read, gives its messages as empty payloads (refused by
the decoder like any bad message) and says so in ``problems``.
"""
from __future__ import annotations

import os
import struct
import threading
import zlib
from collections import OrderedDict

import numpy as np

JSON = "json"
FRAMES = "citywall-frames"
MS = 1_000_000                      # ns per ms: MCAP times are ns, the protocol's are ms
MAGIC = b"\x89MCAP0\r\n"

_OP_HEADER, _OP_FOOTER, _OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE = 0x01, 0x02, 0x03, 0x04, 0x05
_OP_CHUNK, _OP_MESSAGE_INDEX, _OP_METADATA, _OP_DATA_END = 0x06, 0x07, 0x0C, 0x0F
_RECORD = struct.Struct("<BQ")              # opcode, length
_MESSAGE = struct.Struct("<HIQQ")           # channel id, sequence, log time, publish time
_CHUNK_HEAD = struct.Struct("<QQQI")        # start, end, uncompressed size, uncompressed crc
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")
MAX_SMALL_RECORD = 64 << 20         # a channel, metadata or message index record read whole
MAX_CHUNK = 64 << 20                # a chunk larger than this (either way) is not read (ours: 1 MB)


class Damaged(Exception):
    """The file stops making sense here: everything before replays."""


def _string(buf: bytes, at: int) -> tuple[str, int]:
    (n,) = _U32.unpack_from(buf, at)
    if at + 4 + n > len(buf):
        raise Damaged("a string runs past its record")
    return buf[at + 4:at + 4 + n].decode("utf-8", "replace"), at + 4 + n


def _channel(body: bytes) -> tuple[int, str, str]:
    cid, _schema = struct.unpack_from("<HH", body, 0)
    topic, at = _string(body, 4)
    encoding, _ = _string(body, at)
    return cid, topic, encoding


def _metadata(body: bytes) -> tuple[str, dict[str, str]]:
    name, at = _string(body, 0)
    (n,) = _U32.unpack_from(body, at)
    at, end, out = at + 4, at + 4 + n, {}
    while at < end:
        key, at = _string(body, at)
        value, at = _string(body, at)
        out[key] = value
    return name, out


class Chunk:
    """Where one chunk's records lie in the file."""
    __slots__ = ("data_at", "length", "compression", "size", "crc", "indexes")

    def __init__(self, data_at: int, length: int, compression: str, size: int, crc: int):
        self.data_at, self.length, self.compression = data_at, length, compression
        self.size, self.crc = size, crc
        self.indexes: list[tuple[int, np.ndarray]] = []     # (channel id, [[log ns, offset]])


def decompress(compression: str, data: bytes, size: int) -> bytes:
    if size > MAX_CHUNK:
        raise ValueError("chunk too large")
    if compression == "zstd":
        import zstandard
        return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
    if compression == "lz4":
        import lz4.frame
        d = lz4.frame.LZ4FrameDecompressor()      # never past the size the chunk claims
        plain = d.decompress(data, max_length=size + 1)
        if len(plain) != size or not d.eof:
            raise ValueError("lz4 chunk of the wrong size")
        return plain
    if compression == "":
        return data
    raise ValueError(f"chunk compression {compression!r}")


class Walk:
    """One pass over a file's top-level records."""

    def __init__(self, fd: int, size: int):
        self.fd, self.size = fd, size
        self.chunks: list[Chunk] = []
        self.channels: dict[int, tuple[str, str]] = {}
        self.loose: list[tuple[int, int, int, bytes]] = []     # (channel, log ns, pub ns, data)
        self.metadata: dict[str, str] = {}
        self.damage: str | None = None
        self._buf, self._buf_at = b"", 0

    WINDOW = 64 << 10       # read ahead: a chunk's message indexes lie together after it

    def _read(self, at: int, n: int) -> bytes:
        """``n`` bytes at ``at``, from a window of the file read ahead (one read for a run of
        small records instead of two a record); a read past the file's end is cut short."""
        buf, start = self._buf, self._buf_at
        if not (start <= at and at + n <= start + len(buf)):
            want = max(n, self.WINDOW)
            buf = self._buf = os.pread(self.fd, want, at)
            start = self._buf_at = at
        data = buf[at - start:at - start + n]
        if len(data) != n:
            raise Damaged("cut short")
        return data

    def run(self) -> "Walk":
        at = len(MAGIC)
        try:
            while at + 9 <= self.size:
                op, n = _RECORD.unpack(self._read(at, 9))
                body, end = at + 9, at + 9 + n
                if end > self.size:
                    raise Damaged("cut short")
                if op == _OP_CHUNK:
                    self._chunk(body, n)
                elif op in (_OP_CHANNEL, _OP_MESSAGE_INDEX, _OP_METADATA, _OP_MESSAGE):
                    if n > MAX_SMALL_RECORD:
                        raise Damaged("a record too large")
                    self._small(op, self._read(body, n))
                elif op == _OP_FOOTER:
                    if os.pread(self.fd, len(MAGIC), end) != MAGIC:
                        raise Damaged("the file's end is damaged")
                    break
                at = end
            else:                    # no footer: the writer did not finish
                raise Damaged("cut short")
        except (Damaged, struct.error, UnicodeError, ValueError) as exc:
            self.damage = str(exc) or type(exc).__name__
        return self

    def _chunk(self, body: int, n: int) -> None:
        head = self._read(body, min(n, 28 + 4 + 64))
        start, end, size, crc = _CHUNK_HEAD.unpack_from(head, 0)
        (clen,) = _U32.unpack_from(head, 28)
        if clen > 64 or 28 + 4 + clen + 8 > n:
            raise Damaged("a chunk header makes no sense")
        compression = head[32:32 + clen].decode("ascii")
        (rlen,) = _U64.unpack(self._read(body + 32 + clen, 8))
        data_at = body + 32 + clen + 8
        if data_at + rlen > body + n or rlen > MAX_CHUNK:
            raise Damaged("a chunk's records run past it")
        self.chunks.append(Chunk(data_at, rlen, compression, size, crc))

    def _small(self, op: int, body: bytes) -> None:
        if op == _OP_MESSAGE_INDEX:
            if not self.chunks:
                return
            cid, (alen,) = struct.unpack_from("<H", body, 0)[0], _U32.unpack_from(body, 2)
            if alen % 16 or 6 + alen > len(body):
                raise Damaged("a message index makes no sense")
            entries = np.frombuffer(body, "<u8", alen // 8, 6).reshape(-1, 2)
            self.chunks[-1].indexes.append((cid, entries))
        elif op == _OP_CHANNEL:
            cid, topic, encoding = _channel(body)
            self.channels.setdefault(cid, (topic, encoding))
        elif op == _OP_METADATA:
            name, values = _metadata(body)
            if name == "citywall":
                self.metadata.update(values)
        elif op == _OP_MESSAGE:
            cid, _seq, log_ns, pub_ns = _MESSAGE.unpack_from(body, 0)
            self.loose.append((cid, log_ns, pub_ns, body[22:]))


def scan_chunk(plain: bytes, channels: dict) -> tuple[list, list, list]:
    """A chunk's channels (into ``channels``) and its messages: (channel ids, log ns,
    offsets), for a chunk without message indexes."""
    cids, logs, offsets = [], [], []
    at, end = 0, len(plain)
    while at < end:
        if at + 9 > end:
            raise Damaged("a record is cut short inside a chunk")
        op, n = _RECORD.unpack_from(plain, at)
        body, nxt = at + 9, at + 9 + n
        if nxt > end:
            raise Damaged("a record is cut short inside a chunk")
        if op == _OP_MESSAGE and n >= 22:
            cid, _seq, log_ns, _pub = _MESSAGE.unpack_from(plain, body)
            cids.append(cid)
            logs.append(log_ns)
            offsets.append(at)
        elif op == _OP_CHANNEL:
            cid, topic, encoding = _channel(plain[body:nxt])
            channels.setdefault(cid, (topic, encoding))
        at = nxt
    return cids, logs, offsets


class ChunkReader:
    """A file's chunks read and decompressed on demand, the last few kept (a replay reads
    them in order). Safe to share between threads."""

    KEEP = 4
    SAY_LOST = 10                            # chunks lost said one by one, at most

    def __init__(self, path: str, chunks: list[Chunk], problems: list[str],
                 fd: int | None = None):
        self.path, self.chunks, self.problems = path, chunks, problems
        self._cache: OrderedDict[int, bytes | None] = OrderedDict()
        self._lock = threading.Lock()
        self._fd: int | None = fd            # the file as opened (not its name, read again)
        self.lost: set[int] = set()          # chunks that could not be read (said once)

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        return self._fd

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def get(self, n: int) -> bytes | None:
        """Chunk ``n``'s records, or None when it cannot be read (said once in problems)."""
        with self._lock:
            if n in self.lost:
                return None
            plain = self._cache.get(n, b"")
            if plain == b"":
                plain = self._cache[n] = self._load(n)
                if len(self._cache) > self.KEEP:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(n)
            return plain

    def _load(self, n: int) -> bytes | None:
        c = self.chunks[n]
        try:
            data = os.pread(self._open(), c.length, c.data_at)
            if len(data) != c.length:
                raise ValueError("the file is shorter than when it was opened")
            plain = decompress(c.compression, data, c.size)
            if c.crc and zlib.crc32(plain) != c.crc:
                raise ValueError("it fails its CRC check")
            return plain
        except Exception as exc:           # OSError, zstd/lz4 errors, CRC: the chunk is lost
            self.lost.add(n)
            if len(self.lost) <= self.SAY_LOST:    # said for the first few, then once for all
                self.problems.append(f"{self.path}: chunk {n} cannot be read ({exc}); its "
                                     "messages are skipped")
            elif len(self.lost) == self.SAY_LOST + 1:
                self.problems.append(f"{self.path}: more chunks cannot be read; their "
                                     "messages are skipped")
            return None


def message_at(plain: bytes | None, at: int) -> tuple[int, bytes]:
    """(publish ns, payload) of the message record at ``at`` in a chunk; (0, b"") when the
    chunk is lost or the record is not a message there."""
    if plain is None or at + 9 + 22 > len(plain):
        return 0, b""
    op, n = _RECORD.unpack_from(plain, at)
    if op != _OP_MESSAGE or n < 22 or at + 9 + n > len(plain):
        return 0, b""
    (pub,) = _U64.unpack_from(plain, at + 9 + 14)
    return pub, plain[at + 31:at + 9 + n]

"""Recordings of feeds as MCAP files: the writer the recorders use and the reader replays use.

One channel per topic, message encoding ``json``, payloads exactly as they arrived (bad ones
too: a replay shows what the console saw, rejects included), the receive time as log time and
the record's ``ts`` as publish time, compressed chunks, indexed. A message that was not
``[topic, payload]`` goes on the channel ``RAW_TOPIC`` with our own ``citywall-frames``
encoding (the frames, each length-prefixed), so it too replays as it came.

Reading never trusts the file: a recording cut short by a crash or a full disk gives every
message up to its last complete chunk; channels in an encoding we cannot read, and messages out
of time order, are said in ``Recording.problems`` and the rest replays.
"""
from __future__ import annotations

import os
import struct
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

JSON = "json"
FRAMES = "citywall-frames"
RAW_TOPIC = "citywall.raw_frames"
PROFILE = "citywall"
ENCODINGS = (JSON, FRAMES)
CHUNK_BYTES = 1 << 20
MS = 1_000_000                      # ns per ms: MCAP times are ns, the protocol's are ms

# A loose JSON Schema, so tools that want one (Foxglove) can open the JSON channels: a record
# (object) or a batch (array of records); PROTOCOL.md is the real contract.
_JSON_SCHEMA = (b'{"title":"CityWall feed protocol v1 record or batch (see PROTOCOL.md)",'
                b'"type":["object","array"]}')


class RecordingError(Exception):
    """A file that cannot be replayed at all: missing, not MCAP, nothing readable."""


def pack_frames(frames: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(f)) + f for f in frames)


def unpack_frames(data: bytes) -> list[bytes]:
    frames, at = [], 0
    while at < len(data):
        if at + 4 > len(data):
            raise ValueError("frame length cut short")
        (n,) = struct.unpack_from("<I", data, at)
        at += 4
        if at + n > len(data):
            raise ValueError("frame cut short")
        frames.append(data[at:at + n])
        at += n
    return frames


# Channels a file may have (MCAP numbers them in 16 bits): messages on any further topic, and
# on a topic no console would take (over 128 characters), go on the raw channel, byte for byte.
MAX_CHANNELS = 256
MAX_TOPIC_CHARS = 128


def topic_of(frames: list[bytes]) -> str | None:
    """The channel a message belongs on, or None for the raw channel."""
    if len(frames) != 2 or not 0 < len(frames[0]) <= MAX_TOPIC_CHARS:
        return None
    try:
        topic = bytes(frames[0]).decode("ascii")
    except UnicodeDecodeError:
        return None
    return topic if topic.isprintable() and topic != RAW_TOPIC else None


class RecordingWriter:
    """Writes messages to one MCAP file. Not thread-safe: one thread writes.

    ``flush()`` ends the chunk in progress and pushes it to the file, so a crash after it
    loses nothing written before it. Errors (a full disk) are raised to the caller as OSError.
    """

    def __init__(self, path: str | os.PathLike, *, chunk_bytes: int = CHUNK_BYTES,
                 compression: str = "zstd", metadata: dict[str, str] | None = None):
        from mcap.writer import CompressionType, Writer
        self.path = Path(path)
        self._file = open(self.path, "wb")
        try:
            kind = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4,
                    "none": CompressionType.NONE}[compression]
            self._writer = Writer(self._file, chunk_size=chunk_bytes, compression=kind)
            self._writer.start(profile=PROFILE, library="citywall")
            self._schema = self._writer.register_schema(
                "citywall.v1", "jsonschema", _JSON_SCHEMA)
            if metadata:
                self._writer.add_metadata("citywall", dict(metadata))
        except BaseException:
            self._file.close()
            raise
        self._channels: dict[str, int] = {}
        self._seq = 0
        self.messages = 0
        self.closed = False

    def _channel(self, topic: str | None) -> int:
        key = RAW_TOPIC if topic is None else topic
        cid = self._channels.get(key)
        if cid is None:
            if topic is None:
                cid = self._writer.register_channel(RAW_TOPIC, FRAMES, 0)
            else:
                cid = self._writer.register_channel(topic, JSON, self._schema)
            self._channels[key] = cid
        return cid

    def write(self, frames: list[bytes], log_ms: int, publish_ms: int | None = None) -> None:
        topic = topic_of(frames)
        if topic is not None and topic not in self._channels \
                and len(self._channels) >= MAX_CHANNELS - 1:      # one kept for the raw one
            topic = None
        data = frames[1] if topic is not None else pack_frames(frames)
        self._seq += 1
        self._writer.add_message(self._channel(topic), int(log_ms) * MS, data,
                                 int(publish_ms if publish_ms is not None else log_ms) * MS,
                                 self._seq & 0xFFFFFFFF)
        self.messages += 1

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        """Finish the file: the summary and index go at its end. Closes the file even when
        finishing fails (a full disk), and then raises."""
        if self.closed:
            return
        self.closed = True
        try:
            self._writer.finish()
            self._file.flush()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()

    def abandon(self) -> None:
        """Close without finishing (after a write error): what reached the file stays
        replayable up to its last complete chunk."""
        if self.closed:
            return
        self.closed = True
        try:
            self._file.close()
        except OSError:
            pass


class _Chunks:
    """The file's chunks, held compressed; one decompressed on demand, the last few kept (a
    replay reads them in order), so a day's recording costs its file size in memory, not ten
    times that."""

    KEEP = 4

    def __init__(self):
        self.held: list[tuple[str, bytes, int]] = []      # (compression, data, size)
        self._cache: OrderedDict[int, bytes] = OrderedDict()

    def add(self, compression: str, data: bytes, size: int) -> tuple[int, bytes]:
        plain = _decompress(compression, data, size)
        self.held.append((compression, data, size))
        return len(self.held) - 1, plain

    def get(self, n: int) -> bytes:
        plain = self._cache.get(n)
        if plain is None:
            plain = self._cache[n] = _decompress(*self.held[n])
            if len(self._cache) > self.KEEP:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(n)
        return plain


def _decompress(compression: str, data: bytes, size: int) -> bytes:
    if compression == "zstd":
        import zstandard
        return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
    if compression == "lz4":
        import lz4.frame
        return lz4.frame.decompress(data)
    if compression == "":
        return data
    raise ValueError(f"chunk compression {compression!r}")


class Payloads(Sequence):
    """Message payloads by index, read from the chunks when asked for."""

    def __init__(self, chunks: _Chunks, chunk: np.ndarray, offset: np.ndarray,
                 length: np.ndarray, loose: dict[int, bytes]):
        self._chunks, self._chunk, self._offset, self._length = chunks, chunk, offset, length
        self._loose = loose            # messages outside chunks (an unchunked file)

    def __len__(self) -> int:
        return len(self._chunk)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        c = self._chunk[i]
        if c < 0:
            return self._loose[int(self._offset[i])]
        at = int(self._offset[i])
        return self._chunks.get(int(c))[at:at + int(self._length[i])]

    def span(self, start: int, stop: int):
        """Payloads ``start`` to ``stop`` in order: what a replay reads, without indexing the
        arrays one message at a time."""
        get, loose = self._chunks.get, self._loose
        held, plain = -2, b""
        for c, at, n in zip(self._chunk[start:stop].tolist(), self._offset[start:stop].tolist(),
                            self._length[start:stop].tolist()):
            if c < 0:
                yield loose[at]
                continue
            if c != held:
                held, plain = c, get(c)
            yield plain[at:at + n]


@dataclass
class Recording:
    """Every readable message of a file, in time order.

    ``log_ms[i]`` is message i's receive time; its frames are ``frames(i)``."""
    path: str
    log_ms: np.ndarray                      # int64, sorted
    publish_ms: np.ndarray                  # int64
    topics: list[bytes]                     # topic frame per channel slot
    topic_idx: np.ndarray                   # int16: index into topics, -1 for raw frames
    payloads: Sequence[bytes]
    problems: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.log_ms)

    @property
    def start_ms(self) -> int:
        return int(self.log_ms[0]) if len(self) else 0

    @property
    def end_ms(self) -> int:
        return int(self.log_ms[-1]) if len(self) else 0

    def frames(self, i: int) -> list[bytes]:
        return next(self.frames_span(i, i + 1))

    def frames_span(self, start: int, stop: int):
        """The frames of messages ``start`` to ``stop``, in order."""
        topics = self.topics
        for t, payload in zip(self.topic_idx[start:stop].tolist(),
                              self.payloads.span(start, stop)):
            if t >= 0:
                yield [topics[t], payload]
            else:
                try:
                    yield unpack_frames(payload)
                except ValueError:
                    yield [payload]

    def index_at(self, t_ms: int) -> int:
        """The index of the first message received after ``t_ms`` (messages at ``t_ms`` are
        before it)."""
        return int(np.searchsorted(self.log_ms, t_ms, side="right"))


_RECORD = struct.Struct("<BQ")              # opcode, length
_MESSAGE = struct.Struct("<HIQQ")           # channel id, sequence, log time, publish time
_OP_CHANNEL, _OP_MESSAGE = 0x04, 0x05


class _Index:
    """What reading gathers: channels and, per message, where its payload lies."""

    def __init__(self):
        self.channels: dict[int, tuple[str, str]] = {}      # id → (topic, encoding)
        self.slot: dict[int, int] = {}                      # JSON channel id → topics index
        self.topics: list[bytes] = []
        self.log, self.pub, self.tidx = [], [], []
        self.chunk, self.offset, self.length = [], [], []
        self.loose: dict[int, bytes] = {}
        self.skipped: dict[str, int] = {}

    def channel(self, cid: int, topic: str, encoding: str) -> None:
        # Every chunk and the summary repeat channels: one slot per channel.
        if self.channels.get(cid) == (topic, encoding):
            return
        self.channels[cid] = (topic, encoding)
        if encoding == JSON:
            self.slot[cid] = len(self.topics)
            self.topics.append(topic.encode("utf-8", "replace"))

    def message(self, cid: int, log_ns: int, pub_ns: int, chunk: int, offset: int,
                length: int) -> bool:
        """Index one message; False when it is skipped (a channel we cannot read)."""
        ch = self.channels.get(cid)
        if ch is None:
            self.skipped["(no channel record)"] = self.skipped.get("(no channel record)", 0) + 1
            return False
        if ch[1] == JSON:
            self.tidx.append(self.slot[cid])
        elif ch[1] == FRAMES:
            self.tidx.append(-1)
        else:
            key = f"{ch[0]} ({ch[1] or 'no encoding'})"
            self.skipped[key] = self.skipped.get(key, 0) + 1
            return False
        self.log.append(log_ns // MS)
        self.pub.append(pub_ns // MS)
        self.chunk.append(chunk)
        self.offset.append(offset)
        self.length.append(length)
        return True

    def scan_chunk(self, data: bytes, chunk: int) -> None:
        """The records inside one decompressed chunk (schemas, channels, messages)."""
        at, end = 0, len(data)
        while at < end:
            if at + 9 > end:
                raise ValueError("a record is cut short inside a chunk")
            op, n = _RECORD.unpack_from(data, at)
            body, at = at + 9, at + 9 + n
            if at > end:
                raise ValueError("a record is cut short inside a chunk")
            if op == _OP_MESSAGE:
                cid, _seq, log_ns, pub_ns = _MESSAGE.unpack_from(data, body)
                self.message(cid, log_ns, pub_ns, chunk, body + 22, n - 22)
            elif op == _OP_CHANNEL:
                cid, _schema = struct.unpack_from("<HH", data, body)
                (tl,) = struct.unpack_from("<I", data, body + 4)
                topic = data[body + 8:body + 8 + tl].decode("utf-8", "replace")
                (el,) = struct.unpack_from("<I", data, body + 8 + tl)
                enc = data[body + 12 + tl:body + 12 + tl + el].decode("utf-8", "replace")
                self.channel(cid, topic, enc)


def read_recording(path: str | os.PathLike) -> Recording:
    """Read a recording. RecordingError when nothing can be replayed; partial damage is said in
    ``problems`` and the readable part returned."""
    from mcap.exceptions import InvalidMagic
    from mcap.records import Channel, Chunk, Message, Metadata
    from mcap.stream_reader import StreamReader

    path = Path(path)
    if not path.exists():
        raise RecordingError(f"{path}: no such file")
    if path.is_dir():
        raise RecordingError(f"{path}: is a directory, not a recording")
    try:
        stream = open(path, "rb")
    except OSError as exc:
        raise RecordingError(f"{path}: cannot open: {exc.strerror or exc}") from None
    idx, chunks = _Index(), _Chunks()
    problems: list[str] = []
    metadata: dict[str, str] = {}
    with stream:
        head = stream.read(8)
        if not head:        # a recorder stopped before its first chunk reached the disk
            raise RecordingError(f"{path}: the file is empty, nothing was recorded in it")
        if head[:5] != b"\x89MCAP":
            raise RecordingError(f"{path}: not an MCAP file (it does not start with the MCAP "
                                 "magic bytes)")
        stream.seek(0)
        # Chunks come whole; we look inside them ourselves (twice as fast as the library's
        # record objects, and the payloads stay compressed until a replay needs them).
        reader = StreamReader(stream, emit_chunks=True, record_size_limit=1 << 30)
        try:
            for rec in reader.records:
                if isinstance(rec, Chunk):
                    n, plain = chunks.add(rec.compression, rec.data, rec.uncompressed_size)
                    if rec.uncompressed_crc and zlib.crc32(plain) != rec.uncompressed_crc:
                        raise ValueError("a chunk fails its CRC check")
                    idx.scan_chunk(plain, n)
                elif isinstance(rec, Message):          # a file written without chunks
                    n = len(idx.loose)
                    if idx.message(rec.channel_id, rec.log_time, rec.publish_time, -1, n,
                                   len(rec.data)):
                        idx.loose[n] = rec.data
                elif isinstance(rec, Channel):
                    idx.channel(rec.id, rec.topic, rec.message_encoding)
                elif isinstance(rec, Metadata) and rec.name == "citywall":
                    metadata.update(rec.metadata)
        except InvalidMagic:
            if not idx.log:
                raise RecordingError(f"{path}: not an MCAP file") from None
            problems.append(f"{path}: the file's end is damaged after {len(idx.log)} "
                            "messages; replaying those")
        except Exception as exc:        # struct, EOF, CRC, zstd/lz4 errors: all "damaged"
            what = type(exc).__name__
            if not idx.log:
                raise RecordingError(f"{path}: no readable messages (the file is cut short "
                                     f"or corrupt: {what})") from None
            problems.append(f"{path}: cut short or damaged after {len(idx.log)} messages "
                            f"({what}); replaying up to the last complete chunk")
    for key, n in sorted(idx.skipped.items()):
        problems.append(f"{path}: channel {key}: {n} messages in an encoding CityWall cannot "
                        "read; skipped")
    if not idx.log:
        raise RecordingError(f"{path}: no messages to replay")
    log_ms = np.asarray(idx.log, dtype=np.int64)
    arrays = [np.asarray(idx.pub, dtype=np.int64), np.asarray(idx.tidx, dtype=np.int16),
              np.asarray(idx.chunk, dtype=np.int32), np.asarray(idx.offset, dtype=np.int64),
              np.asarray(idx.length, dtype=np.int64)]
    backwards = int(np.count_nonzero(np.diff(log_ms) < 0))
    if backwards:
        problems.append(f"{path}: {backwards} messages out of time order; replayed in order "
                        "of their receive time")
        order = np.argsort(log_ms, kind="stable")
        log_ms = log_ms[order]
        arrays = [a[order] for a in arrays]
    pub_ms, topic_idx, chunk, offset, length = arrays
    return Recording(str(path), log_ms, pub_ms, idx.topics, topic_idx,
                     Payloads(chunks, chunk, offset, length, idx.loose), problems, metadata)

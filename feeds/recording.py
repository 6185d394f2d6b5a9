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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from feeds.mcap_read import (FRAMES, JSON, MAGIC, MS, ChunkReader, Damaged, Walk, message_at,
                             scan_chunk)

RAW_TOPIC = "citywall.raw_frames"
PROFILE = "citywall"
ENCODINGS = (JSON, FRAMES)
CHUNK_BYTES = 1 << 20

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


def keyframe_files(path: str | os.PathLike) -> list[Path]:
    """The keyframe files a replay keeps beside a recording (``situation.keyframes``):
    ``<name>.<16 hex>.keyframes``, this recording's only."""
    import glob
    path = Path(path)
    out = []
    for other in path.parent.glob(glob.escape(path.name) + ".*.keyframes"):
        mid = other.name[len(path.name) + 1:-len(".keyframes")]
        if len(mid) == 16 and not mid.strip("0123456789abcdef"):
            out.append(other)
    return sorted(out)


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


class Payloads(Sequence):
    """Message payloads by index, read from the file's chunks when asked for."""

    def __init__(self, reader: ChunkReader, chunk: np.ndarray, offset: np.ndarray,
                 loose: list[bytes]):
        self._reader, self._chunk, self._offset = reader, chunk, offset
        self._loose = loose            # messages outside chunks (an unchunked file)

    def __len__(self) -> int:
        return len(self._chunk)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return next(self.span(i, i + 1)) if -len(self) <= i < len(self) else [][i]

    def span(self, start: int, stop: int, publish: bool = False):
        """Payloads ``start`` to ``stop`` in order (with ``publish``: (publish ns, payload)):
        what a replay reads, without indexing the arrays one message at a time. A message of
        a chunk that cannot be read is an empty payload."""
        if start < 0:
            start += len(self)
        get, loose = self._reader.get, self._loose
        held, plain = -2, None
        for c, at in zip(self._chunk[start:stop].tolist(), self._offset[start:stop].tolist()):
            if c < 0:
                got = loose[at]
            else:
                if c != held:
                    held, plain = c, get(c)
                got = message_at(plain, at)
            yield got if publish else got[1]


@dataclass
class Recording:
    """Every readable message of a file, in time order.

    ``log_ms[i]`` is message i's receive time; its frames are ``frames(i)``."""
    path: str
    log_ms: np.ndarray                      # int64, sorted
    topics: list[bytes]                     # topic frame per channel slot
    topic_idx: np.ndarray                   # int16: index into topics, -1 for raw frames
    payloads: Payloads
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

    @property
    def publish_ms(self) -> np.ndarray:
        """Every message's publish time (the record's ``ts`` as recorded): read through the
        whole file when asked (tools, tests; a replay does not need it)."""
        return np.fromiter((pub // MS for pub, _ in self.payloads.span(0, len(self), True)),
                           np.int64, len(self))

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

    def close(self) -> None:
        """Let go of the file now (it is also let go when the recording is)."""
        self.payloads._reader.close()


def _slots(channels: dict[int, tuple[str, str]]) -> tuple[list[bytes], np.ndarray, dict]:
    """Topic slots for the JSON channels; per channel id: its slot, -1 raw frames, -2 an
    encoding we cannot read, -3 no channel record."""
    topics: list[bytes] = []
    slot = np.full(65536, -3, np.int32)
    names: dict[int, str] = {}
    for cid, (topic, encoding) in sorted(channels.items()):
        names[cid] = f"{topic} ({encoding or 'no encoding'})"
        if encoding == JSON:
            slot[cid] = len(topics)
            topics.append(topic.encode("utf-8", "replace"))
        elif encoding == FRAMES:
            slot[cid] = -1
        else:
            slot[cid] = -2
    return topics, slot, names


def read_recording(path: str | os.PathLike) -> Recording:
    """Read a recording's index (not its payloads: those are read as a replay reaches them).
    RecordingError when nothing can be replayed; partial damage is said in ``problems`` and
    the readable part returned."""
    path = Path(path)
    if not path.exists():
        raise RecordingError(f"{path}: no such file")
    if path.is_dir():
        raise RecordingError(f"{path}: is a directory, not a recording")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise RecordingError(f"{path}: cannot open: {exc.strerror or exc}") from None
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, 8, 0)
        if not head:        # a recorder stopped before its first chunk reached the disk
            raise RecordingError(f"{path}: the file is empty, nothing was recorded in it")
        if head[:5] != MAGIC[:5]:
            raise RecordingError(f"{path}: not an MCAP file (it does not start with the MCAP "
                                 "magic bytes)")
        walk = Walk(fd, size).run()
    except BaseException:
        os.close(fd)
        raise
    problems: list[str] = []
    # The payloads are read from this very file later, not from whatever then has its name.
    reader = ChunkReader(str(path), walk.chunks, problems, fd=fd)
    # Chunks that must be read now: those without indexes, those naming a channel the file
    # nowhere describes outside chunks, and the last one of a damaged file (its indexes may
    # be cut short).
    parts = []              # per chunk, in the order written: (chunk no, channel, log, offset)
    for n, chunk in enumerate(walk.chunks):
        cids = [cid for cid, _ in chunk.indexes]
        if (not chunk.indexes or any(c not in walk.channels for c in cids)
                or (walk.damage and n == len(walk.chunks) - 1)):
            plain = reader.get(n)
            if plain is None:
                continue
            try:
                cid, log, offset = (np.asarray(a, np.uint64) for a in
                                    scan_chunk(plain, walk.channels))
            except Damaged as exc:
                problems.append(f"{path}: chunk {n} is damaged inside ({exc}); its messages "
                                "are skipped")
                continue
        else:
            cid = np.concatenate([np.full(len(e), c, np.uint64) for c, e in chunk.indexes])
            log = np.concatenate([e[:, 0] for _, e in chunk.indexes])
            offset = np.concatenate([e[:, 1] for _, e in chunk.indexes])
            order = np.argsort(offset, kind="stable")
            cid, log, offset = cid[order], log[order], offset[order]
        if len(offset) and (offset.max() >= min(chunk.size, 1 << 32) or cid.max() >= 65536):
            problems.append(f"{path}: chunk {n}'s message index makes no sense; its messages "
                            "are skipped")
            continue
        parts.append((n, cid.astype(np.uint16), log, offset.astype(np.uint32)))
        chunk.indexes = []                  # (views of the records read: let them go)
    n_chunked = sum(len(p[1]) for p in parts)
    loose = walk.loose
    chunk_no = np.concatenate([np.full(len(p[1]), p[0], np.int32) for p in parts]
                              + [np.full(len(loose), -1, np.int32)])
    cid = np.concatenate([p[1] for p in parts]
                         + [np.asarray([m[0] for m in loose], np.uint16)])
    log_ns = np.concatenate([p[2] for p in parts]
                            + [np.asarray([m[1] for m in loose], np.uint64)])
    offset = np.concatenate([p[3] for p in parts] + [np.arange(len(loose), dtype=np.uint32)])
    del parts
    topics, slot, names = _slots(walk.channels)
    tidx = slot[cid]
    for c in np.unique(cid[tidx <= -2]).tolist():
        what = names.get(c, "(no channel record)")
        problems.append(f"{path}: channel {what}: {int((cid == c).sum())} messages in an "
                        "encoding CityWall cannot read; skipped")
    keep = tidx >= -1
    chunk_no, log_ns, offset, tidx = chunk_no[keep], log_ns[keep], offset[keep], tidx[keep]
    if walk.damage:
        problems.insert(0, f"{path}: cut short or damaged after {n_chunked} messages "
                           f"({walk.damage}); replaying up to the last complete chunk")
    if not len(log_ns):
        if walk.damage and not walk.chunks and not walk.loose:
            raise RecordingError(f"{path}: no readable messages (the file is cut short or "
                                 f"corrupt: {walk.damage})")
        raise RecordingError(f"{path}: no messages to replay")
    log_ms = (log_ns // MS).astype(np.int64)
    backwards = int(np.count_nonzero(np.diff(log_ms) < 0))
    if backwards:
        problems.append(f"{path}: {backwards} messages out of time order; replayed in order "
                        "of their receive time")
        order = np.argsort(log_ms, kind="stable")
        log_ms, tidx, chunk_no, offset = log_ms[order], tidx[order], chunk_no[order], offset[order]
    payloads = Payloads(reader, chunk_no, offset, [(m[2], m[3]) for m in loose])
    return Recording(str(path), log_ms, topics, tidx.astype(np.int16), payloads, problems,
                     walk.metadata)

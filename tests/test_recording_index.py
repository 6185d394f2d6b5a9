"""Opening a recording from its message indexes (issue #17): nothing decompressed at open, the
same messages as a file without indexes (scanned), and a damaged or lying file costs only what
it damages."""
from __future__ import annotations

import random
import struct

import pytest
from mcap.writer import CompressionType, IndexType, Writer

from feeds.decode import MessageDecoder
from feeds.recording import RecordingWriter, read_recording

T0 = 1_795_483_800_000


def _messages(n: int, seed: int = 3) -> list[tuple[list[bytes], int, int]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        topic = rng.choice([b"hb", b"case", b"sensor.air"])
        body = b'{"v":1,"src":"s","seq":%d,"ts":%d,"pad":"%s"}' % (
            i, T0 + i, rng.randbytes(rng.randrange(1, 300)).hex().encode())
        out.append(([topic, body], T0 + 10 * i, T0 + i))
    return out


def _write_ours(path, msgs, chunk_bytes=4_096):
    w = RecordingWriter(path, chunk_bytes=chunk_bytes)
    for frames, log, pub in msgs:
        w.write(frames, log, pub)
    w.close()


def _write_plain(path, msgs, **kw):
    """The same messages by the mcap library with other choices (no message indexes, no
    chunks): what another tool may write."""
    with open(path, "wb") as f:
        w = Writer(f, chunk_size=4_096, compression=CompressionType.ZSTD, **kw)
        w.start(profile="citywall", library="test")
        schema = w.register_schema("s", "jsonschema", b"{}")
        channels = {}
        for seq, (frames, log, pub) in enumerate(msgs):
            topic = frames[0].decode()
            if topic not in channels:
                channels[topic] = w.register_channel(topic, "json", schema)
            w.add_message(channels[topic], log * 1_000_000, frames[1], pub * 1_000_000, seq)
        w.finish()


def _all(rec):
    return [rec.frames(i) for i in range(len(rec))], rec.log_ms.tolist(), rec.publish_ms.tolist()


def test_opening_reads_the_indexes_and_decompresses_nothing(tmp_path):
    msgs = _messages(3_000)
    path = tmp_path / "a.mcap"
    _write_ours(path, msgs)
    rec = read_recording(path)
    assert len(rec.payloads._reader.chunks) > 20
    assert not rec.payloads._reader._cache            # not one chunk decompressed
    assert rec.problems == []
    frames, logs, pubs = _all(rec)
    assert frames == [m[0] for m in msgs]
    assert logs == [m[1] for m in msgs] and pubs == [m[2] for m in msgs]


@pytest.mark.parametrize("window", [9, 100, 4_097, 64 << 10])
def test_the_walk_reads_the_same_whatever_its_read_ahead(tmp_path, monkeypatch, window):
    """The walk reads the file through a read-ahead window (one read for a run of small
    records); a window smaller than a record, or ending inside one, changes nothing."""
    from feeds.mcap_read import Walk
    msgs = _messages(2_000)
    path = tmp_path / "w.mcap"
    _write_ours(path, msgs)
    monkeypatch.setattr(Walk, "WINDOW", 1)        # exactly what each record asks: no read-ahead
    whole = _all(read_recording(path))
    monkeypatch.setattr(Walk, "WINDOW", window)
    again = read_recording(path)
    assert _all(again) == whole and again.problems == []
    cut = tmp_path / "cut.mcap"                   # and a file cut inside a record: damage
    cut.write_bytes(path.read_bytes()[:path.stat().st_size * 2 // 3])
    monkeypatch.setattr(Walk, "WINDOW", 1)
    reference = read_recording(cut)
    monkeypatch.setattr(Walk, "WINDOW", window)
    damaged = read_recording(cut)
    assert _all(damaged) == _all(reference) and damaged.problems == reference.problems


@pytest.mark.parametrize("kw", [{"index_types": IndexType.NONE},
                                {"index_types": IndexType.NONE, "repeat_channels": False,
                                 "use_summary_offsets": False},
                                {"use_chunking": False}])
def test_a_file_without_message_indexes_or_chunks_reads_the_same(tmp_path, kw):
    msgs = _messages(1_500)
    ours, theirs = tmp_path / "ours.mcap", tmp_path / "theirs.mcap"
    _write_ours(ours, msgs)
    _write_plain(theirs, msgs, **kw)
    a, b = read_recording(ours), read_recording(theirs)
    assert b.problems == []
    assert _all(a) == _all(b)


def _top_records(data: bytes):
    at = 8
    while at + 9 <= len(data):
        op, n = struct.unpack_from("<BQ", data, at)
        yield op, at, n
        if op == 0x02:
            return
        at += 9 + n


def test_a_damaged_chunk_costs_its_messages_and_says_so(tmp_path):
    msgs = _messages(2_000)
    path = tmp_path / "a.mcap"
    _write_ours(path, msgs)
    data = bytearray(path.read_bytes())
    chunks = [(at, n) for op, at, n in _top_records(bytes(data)) if op == 0x06]
    at, n = chunks[3]
    for i in range(at + 9 + 100, at + 9 + n - 10, 7):        # inside its compressed records
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    rec = read_recording(path)
    assert len(rec) == len(msgs) and rec.problems == []       # found when read, not at open
    frames = [rec.frames(i) for i in range(len(rec))]
    lost = [i for i, f in enumerate(frames) if f[1] == b""]
    assert lost and lost == list(range(lost[0], lost[-1] + 1))       # one chunk's run
    assert all(frames[i] == msgs[i][0] for i in range(len(msgs)) if i not in lost)
    assert len(rec.problems) == 1 and "chunk 3 cannot be read" in rec.problems[0]
    dec = MessageDecoder()
    assert all(dec.decode(frames[i]).rejects for i in lost)    # refused, like any bad message


def test_a_message_index_that_lies_costs_its_chunk(tmp_path):
    msgs = _messages(2_000)
    path = tmp_path / "a.mcap"
    _write_ours(path, msgs)
    data = bytearray(path.read_bytes())
    first_index = next(at for op, at, n in _top_records(bytes(data)) if op == 0x07)
    struct.pack_into("<Q", data, first_index + 9 + 6 + 8, 1 << 40)     # an offset far away
    path.write_bytes(bytes(data))
    rec = read_recording(path)
    assert any("chunk 0's message index makes no sense" in p for p in rec.problems)
    assert 0 < len(rec) < len(msgs)
    assert [rec.frames(i) for i in range(len(rec))] == [m[0] for m in msgs][len(msgs) - len(rec):]


def test_a_huge_record_length_is_damage_not_a_huge_read(tmp_path):
    msgs = _messages(500)
    path = tmp_path / "a.mcap"
    _write_ours(path, msgs)
    data = bytearray(path.read_bytes())
    last_chunk = [at for op, at, n in _top_records(bytes(data)) if op == 0x06][-1]
    struct.pack_into("<Q", data, last_chunk + 1, (1 << 63) - 1)
    path.write_bytes(bytes(data))
    rec = read_recording(path)
    assert 0 < len(rec) < len(msgs) and "cut short or damaged" in rec.problems[0]


def test_a_lost_chunk_is_said_once_however_often_it_is_read(tmp_path):
    msgs = _messages(2_000)
    path = tmp_path / "a.mcap"
    _write_ours(path, msgs)
    data = bytearray(path.read_bytes())
    at, n = [(at, n) for op, at, n in _top_records(bytes(data)) if op == 0x06][2]
    data[at + 9 + n - 20] ^= 0xFF
    path.write_bytes(bytes(data))
    rec = read_recording(path)
    for _ in range(3):                      # a replay seeking back and forth over it
        list(rec.frames_span(0, len(rec)))
    assert len(rec.problems) == 1 and "chunk 2" in rec.problems[0]

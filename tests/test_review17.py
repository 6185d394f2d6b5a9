"""Review of #17 (compact recordings and keyframes on disk): each test shows one finding."""
from __future__ import annotations

import collections
import os
import resource
import shutil
import signal
import tracemalloc

import pytest

from feeds.demo_day import write_demo_day
from feeds.recording import read_recording
from situation import replay as replay_mod
from situation.keyframes import Keyframe, KeyframeStore
from situation.replay import Replay, ReplayClock
from situation.store import Situation
from tests.scenario import T0


@pytest.fixture(scope="module")
def small_day(tmp_path_factory):
    path = tmp_path_factory.mktemp("r17") / "day.mcap"
    write_demo_day(path, hours=0.1, seed=5, start_ms=T0)       # ~2,100 messages
    return path


@pytest.fixture
def day(small_day, tmp_path):
    """A private copy of the small day, in a directory of its own."""
    path = tmp_path / "day.mcap"
    shutil.copy2(small_day, path)
    return path


@pytest.fixture
def every_500(monkeypatch):
    monkeypatch.setattr(replay_mod, "KEYFRAME_EVERY", 500)


def replay(path, **kw) -> Replay:
    rec = read_recording(path)
    clock = ReplayClock(rec.start_ms)
    clock.pause(True)
    return Replay(rec, Situation(clock), **kw)


def straight_cases(path, t):
    rp = replay(path)
    rp.clock.set(t)
    rp.advance()
    return dict(rp.situation.cases)


# ---- 1. the keyframe file is opened through a symlink, then truncated -----------------------

def test_a_symlink_planted_as_the_keyframe_file_does_not_clobber_its_target(day, tmp_path):
    rp = replay(day, keyframe_file=True)
    kpath = rp._keyframes.path
    rp._keyframes.close()
    kpath.unlink()
    victim = tmp_path / "victim.txt"           # e.g. the operator's ~/.bashrc, a site config
    victim.write_bytes(b"precious\n")
    kpath.symlink_to(victim)                   # the name is predictable (size, mtime, code)
    rp = replay(day, keyframe_file=True)
    rp._keyframes.close()
    assert victim.read_bytes() == b"precious\n"


# ---- 2. a keyframe's state may set any attribute of the situation --------------------------

def test_a_forged_keyframe_cannot_replace_the_situations_clock(day, every_500):
    rp = replay(day, keyframe_file=True)
    store = rp._keyframes
    # Only allow-listed classes (collections.Counter), a valid checksum: what a forger writes.
    store[500] = Keyframe({"clock": collections.Counter(), "limits": collections.Counter()}, {})
    store.close()
    rp = replay(day, keyframe_file=True)
    clock = rp.situation.clock
    rp.seek(int(rp.recording.log_ms[700]))
    assert rp.situation.clock is clock
    rp.situation.now_ms()
    rp._keyframes.close()


# ---- 3. a full disk while writing a keyframe stops the replay -------------------------------

def test_a_full_disk_while_writing_keyframes_does_not_stop_the_replay(day, every_500):
    rp = replay(day, keyframe_file=True)
    limit = rp._keyframes.bytes_on_disk() + 100          # the next keyframe does not fit
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_sig = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, old[1]))
    try:
        t = rp.end_ms
        rp.seek(t)                                       # EFBIG (as ENOSPC) from the append
        rp.index_all()                                   # and this must end
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)
        signal.signal(signal.SIGXFSZ, old_sig)
    assert dict(rp.situation.cases) == straight_cases(day, t)
    rp._keyframes.close()


# ---- 4. the recording is read again by its path, later ---------------------------------------

def test_a_recording_removed_after_it_was_opened_still_replays(day):
    rec = read_recording(day)      # (no payload read yet: the chunks are opened later)
    os.unlink(day)                 # --record-dir's size cap, or the operator tidying up
    assert rec.frames(0)[1] != b"", rec.problems
    assert not rec.problems


def test_a_recording_replaced_after_it_was_opened_is_not_read_as_the_old_one(day, tmp_path):
    rec = read_recording(day)
    other = tmp_path / "other.mcap"
    write_demo_day(other, hours=0.1, seed=9, start_ms=T0)
    os.replace(other, day)          # a new day recorded to the same name (demo_day --out day.mcap)
    got = rec.frames(0)
    assert got[1] != b"" and not rec.problems, rec.problems


# ---- 5. opening one recording removes another recording's keyframe file ----------------------

@pytest.mark.parametrize("other_name", ["day.mcap.orig.mcap", "dayX.mcap"])
def test_opening_a_recording_leaves_other_recordings_keyframes_alone(tmp_path, small_day,
                                                                     other_name):
    mine = tmp_path / ("day.mcap" if "X" not in other_name else "day[X].mcap")
    other = tmp_path / other_name
    shutil.copy2(small_day, mine)
    shutil.copy2(small_day, other)
    os.utime(other, ns=(T0 * 1_000_000, T0 * 1_000_000))     # another recording
    o = replay(other, keyframe_file=True)
    theirs = o._keyframes.path
    o._keyframes.close()
    m = replay(mine, keyframe_file=True)
    m._keyframes.close()
    assert theirs.exists()


# ---- 6. an lz4 chunk is decompressed whole, whatever size it claims -------------------------

def test_an_lz4_chunk_is_not_decompressed_past_the_size_it_claims():
    import lz4.frame

    from feeds.mcap_read import decompress
    bomb = lz4.frame.compress(b"\0" * (48 << 20))              # 48 MB from ~200 KB
    tracemalloc.start()
    try:
        with pytest.raises(ValueError):
            decompress("lz4", bomb, 1_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


# ---- 7. a second wall cannot read the keyframes the first holds ------------------------------

def test_a_second_wall_uses_the_keyframes_already_on_disk(day, every_500):
    first = replay(day, keyframe_file=True)
    first.index_all()                      # (or --index-keyframes earlier)
    first._keyframes.flush()               # the last ones written by its worker thread
    n = len(first._keyframes)
    second = replay(day, keyframe_file=True)          # the first still open
    try:
        assert len(second._keyframes) == n
    finally:
        first._keyframes.close()
        second._keyframes.close()


# ---- 2b. a forged keyframe's records are not judged as a recording's are ---------------------

def test_a_forged_keyframe_cannot_put_a_record_the_decoder_would_refuse(day, every_500):
    import hashlib

    import msgspec

    from feeds.schema import Case
    from situation.keyframes import _ENTRY, pack
    rp = replay(day, keyframe_file=True)
    rp.seek(int(rp.recording.log_ms[499]))
    state = rp.situation.snapshot()
    good = next(iter(state["cases"].values()))
    path = rp._keyframes.path
    rp._keyframes.close()
    # msgspec._utils.rebuild (allow-listed) calls Case(**kwargs): no type is checked. Only a
    # signature of this user's key lets an entry be unpickled at all.
    bad = Case(**{**msgspec.structs.asdict(good), "due_at": "never", "lon": "x" * 100_000})
    state["cases"] = {**state["cases"], good.case_id: bad}
    forged = pack(Keyframe(state, dict(rp._seq.last)))
    with open(path, "ab") as f:
        f.write(_ENTRY.pack(500, len(forged), hashlib.sha256(forged).digest()) + forged)
    later = replay(day, keyframe_file=True)
    later.seek(int(later.recording.log_ms[520]))
    held = later.situation.cases.get(good.case_id)
    later._keyframes.close()
    assert held is None or isinstance(held.lon, float)
    if held is not None:
        later.situation.is_overdue(held)        # TypeError: '>' between int and str


# ---- 8. every unreadable chunk adds a line to the problems, without bound ---------------------

def test_a_file_of_many_bad_chunks_does_not_grow_the_problems_without_bound(tmp_path):
    from feeds.recording import RecordingWriter
    path = tmp_path / "bad.mcap"
    w = RecordingWriter(path, chunk_bytes=64, compression="none")
    for i in range(400):
        w.write([b"hb", b'{"v":1,"src":"s","seq":%d,"ts":%d,"MARK":1}' % (i, T0 + i)], T0 + i)
    w.close()
    data = path.read_bytes().replace(b'"MARK"', b'"MARX"')     # every chunk fails its CRC
    path.write_bytes(data)
    rec = read_recording(path)
    list(rec.frames_span(0, len(rec)))                           # a replay passes them all
    assert len(rec.problems) <= 20, len(rec.problems)


# ---- 9. (working tree, not HEAD) a replay dropped without stop() keeps its file and lock -----

def test_a_dropped_replay_lets_go_of_its_keyframe_file(day, every_500):
    import gc
    import threading
    from feeds.receiver import wait_for
    rp = replay(day, keyframe_file=True)
    rp.seek(rp.end_ms)
    del rp
    # The packing worker ends when idle (it holds the store while it works), then the store
    # goes, and its lock with it.
    assert wait_for(lambda: not any(t.name == "keyframes" for t in threading.enumerate()),
                    10, step_s=0.05)
    gc.collect()
    again = replay(day, keyframe_file=True)       # the same wall reopening the recording
    try:
        assert again._keyframes.path is not None
        assert not again._keyframes.shared        # it writes the file: nobody else holds it
    finally:
        again._keyframes.close()


# ---- 10. a tiny forged entry makes the unpickler allocate without bound ----------------------

def test_a_tiny_keyframe_entry_cannot_make_the_unpickler_allocate_much(day, every_500):
    import hashlib
    import struct

    import zstandard

    from situation.keyframes import _ENTRY
    # ({}, {}) with its memo put at index 2**23: the C unpickler sizes its memo to twice that.
    body = b"\x80\x05}r" + struct.pack("<I", 2 ** 23) + b"}\x86."    # (2**32-1: ~64 GB)
    data = zstandard.ZstdCompressor().compress(body)
    assert len(data) < 40
    rp = replay(day, keyframe_file=True)
    path = rp._keyframes.path
    rp._keyframes.close()
    with open(path, "ab") as f:                       # unsigned: never reaches the unpickler
        f.write(_ENTRY.pack(500, len(data), hashlib.sha256(data).digest()) + data)
    store = replay(day, keyframe_file=True)._keyframes
    tracemalloc.start()
    try:
        with pytest.raises(KeyError):
            store[500]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        store.close()
    assert peak < 32 << 20, peak


# ---- 11. a keyframe file may name any number of entries: all held in memory ------------------

def test_a_keyframe_file_holds_no_more_entries_than_the_recording_has_keyframes(day, every_500):
    import hashlib

    from situation.keyframes import _ENTRY
    rp = replay(day, keyframe_file=True)
    path = rp._keyframes.path
    rp._keyframes.close()
    empty = hashlib.sha256(b"").digest()
    with open(path, "ab") as f:                      # 200,000 entries: 9.6 MB on disk
        f.write(b"".join(_ENTRY.pack(i, 0, empty) for i in range(1, 200_001)))
    rp = replay(day, keyframe_file=True)
    try:
        assert len(rp._keyframes) <= len(rp.recording) // rp.keyframe_every + 1
    finally:
        rp._keyframes.close()


def test_recordings_give_back_their_file_when_let_go(small_day, tmp_path):
    from feeds.recording import RecordingError, RecordingWriter
    empty = tmp_path / "empty.mcap"
    RecordingWriter(empty).close()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(small_day.read_bytes()[:100])
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        for bad in (empty, cut):
            with pytest.raises(RecordingError):
                read_recording(bad)
        rec = read_recording(small_day)
        rec.frames(0)
        del rec
    assert len(os.listdir("/proc/self/fd")) == before

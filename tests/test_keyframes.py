"""Compact keyframes (issue #17): a keyframe restored from its compact form (pickled,
compressed, on disk) equals the live situation it was taken from; the keyframe file beside a
recording is found by the next console with the same settings and is not trusted: a forged,
flipped or torn entry is refused and taken again, and nothing in it can name a function."""
from __future__ import annotations

import hashlib
import os
import pickle

import msgspec
import pytest
import zstandard

from feeds.demo_day import write_demo_day
from feeds.recording import read_recording
from situation import keyframes as kf_mod
from situation import replay as replay_mod
from situation.keyframes import Keyframe, KeyframeStore, pack, unpack
from situation.replay import Replay, ReplayClock
from situation.scope import Scope
from situation.store import Situation
from tests.scenario import T0


def state_of(value, depth=0):
    """Everything a value holds, as plain comparable data (types, order and all)."""
    assert depth < 50
    if isinstance(value, msgspec.Struct):
        return (type(value).__name__, msgspec.structs.asdict(value))
    if isinstance(value, dict):
        return (type(value).__name__, [(k, state_of(v, depth + 1)) for k, v in value.items()],
                state_of(getattr(value, "__dict__", {}), depth + 1)
                if type(value) not in (dict,) and hasattr(value, "__dict__") else None)
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        return (type(value).__name__, [state_of(v, depth + 1) for v in value])
    if isinstance(value, (set, frozenset)):
        return (type(value).__name__, sorted(map(repr, value)))
    if hasattr(value, "__iter__") and hasattr(value, "maxlen"):           # deque, Track
        return (type(value).__name__, value.maxlen, [state_of(v, depth + 1) for v in value])
    if hasattr(value, "__dict__") or hasattr(value, "__slots__"):
        names = list(getattr(value, "__dict__", {}))
        for cls in type(value).__mro__:
            names += [n for n in getattr(cls, "__slots__", ()) if n not in names]
        return (type(value).__name__,
                [(n, state_of(getattr(value, n), depth + 1)) for n in names if hasattr(value, n)])
    return value


def whole(situation: Situation) -> dict:
    return {k: state_of(v) for k, v in situation.snapshot().items()}


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    path = tmp_path_factory.mktemp("kf") / "day.mcap"
    write_demo_day(path, hours=1.0, seed=5, start_ms=T0)
    return path


def replay(path, **kw) -> Replay:
    rec = read_recording(path)
    clock = ReplayClock(rec.start_ms)
    clock.pause(True)
    return Replay(rec, Situation(clock, scope=kw.pop("scope", None)), **kw)


def test_a_keyframe_restored_from_its_compact_form_equals_the_live_situation(day):
    rp = replay(day)
    rp.seek(rp.start_ms + 50 * 60_000)           # 50 minutes: cases, units, tracks, history
    live = rp.situation
    assert live.cases and live.units and live.tracks and live.sensor_history
    frame = Keyframe(live.snapshot(), dict(rp._seq.last))
    data = pack(frame)
    assert len(data) < len(pickle.dumps((frame.state, frame.seq))) / 2      # compressed
    fresh = Situation(ReplayClock(rp.start_ms))
    fresh.restore(unpack(data).state)
    assert whole(fresh) == {**whole(live), "version": whole(fresh)["version"]}
    assert unpack(data).seq == rp._seq.last


def test_seeks_from_keyframes_on_disk_equal_a_straight_run(day, monkeypatch):
    monkeypatch.setattr(replay_mod, "KEYFRAME_EVERY", 2_000)
    rp = replay(day)
    rp.index_all()
    assert len(rp._keyframes) == len(rp.recording) // 2_000 + 1
    for f in (0.9, 0.3, 0.61):
        t = rp.start_ms + int((rp.end_ms - rp.start_ms) * f)
        rp.seek(t)
        straight = replay(day)
        straight.clock.set(t)
        straight.advance()
        a, b = whole(rp.situation), whole(straight.situation)
        # Everything but when things were logged (the report log's clock, the sources' rate
        # windows: a seek applies at the clock it seeks to, as before keyframes were compact).
        assert {k for k in a if a[k] != b[k]} <= {"reports", "sources", "version",
                                                     "_last_prune"}, f
        assert list(rp.situation.reports._order) == list(straight.situation.reports._order)
        assert ({k: v.records for k, v in rp.situation.sources.items()}
                == {k: v.records for k, v in straight.situation.sources.items()})


def test_the_next_console_finds_the_keyframes_beside_the_recording(day, monkeypatch):
    monkeypatch.setattr(replay_mod, "KEYFRAME_EVERY", 2_000)
    for old in day.parent.glob("day.mcap.*.keyframes"):
        old.unlink()
    first = replay(day, keyframe_file=True)
    assert first._keyframes.path.parent == day.parent and first._keyframes.loaded == 0
    first.index_all()
    n = len(first._keyframes)
    first._keyframes.close()
    later = replay(day, keyframe_file=True)
    assert later._keyframes.loaded == n - 1 and len(later._keyframes) == n   # 0 is made, not read
    assert later.index_step(1_000) is False                                 # nothing to take
    t = later.start_ms + (later.end_ms - later.start_ms) * 3 // 4
    later.seek(t)
    straight = replay(day)
    straight.clock.set(t)
    straight.advance()
    assert whole(later.situation)["cases"] == whole(straight.situation)["cases"]
    # Another wall's settings (a district wall) are another file; so is a changed recording.
    district = replay(day, keyframe_file=True, scope=Scope.of(["110105"]))
    assert district._keyframes.path != later._keyframes.path and district._keyframes.loaded == 0
    later._keyframes.close()
    district._keyframes.close()
    os.utime(day, ns=(T0 * 1_000_000, T0 * 1_000_000))
    changed = replay(day, keyframe_file=True)
    assert changed._keyframes.loaded == 0
    # The files of the recording as it was can never be used again: they go.
    assert not later._keyframes.path.exists() and not district._keyframes.path.exists()
    assert changed._keyframes.path.exists()
    changed._keyframes.close()


def test_a_wall_finding_the_file_being_written_reads_what_it_holds(day, monkeypatch):
    monkeypatch.setattr(replay_mod, "KEYFRAME_EVERY", 2_000)
    one = replay(day, keyframe_file=True)
    one.seek(one.end_ms)                          # keyframes written as play passes them
    one._keyframes.flush()
    written = len(one._keyframes)
    two = replay(day, keyframe_file=True)         # the first still holds the file
    assert two._keyframes.path == one._keyframes.path and two._keyframes.shared
    assert two._keyframes.loaded == written - 1 > 0
    size = one._keyframes.path.stat().st_size
    two.index_all()                               # its own new ones: a temporary file
    t = two.start_ms + (two.end_ms - two.start_ms) // 2
    two.seek(t)
    straight = replay(day)
    straight.clock.set(t)
    straight.advance()
    assert whole(two.situation)["cases"] == whole(straight.situation)["cases"]
    assert one._keyframes.path.stat().st_size == size       # the other wall's file untouched
    one._keyframes.close()
    two._keyframes.close()


def test_a_keyframe_file_that_cannot_be_written_leaves_them_in_a_temporary_file(day, tmp_path):
    copy = tmp_path / "day.mcap"
    copy.write_bytes(day.read_bytes())
    rp = replay(copy, keyframe_file=True)
    path = rp._keyframes.path
    rp._keyframes.close()
    path.unlink()
    path.mkdir()                        # cannot be opened as a file (as a read-only archive)
    rp = replay(copy, keyframe_file=True)
    assert rp._keyframes.path is None
    rp.index_all()
    rp.seek(rp.start_ms + 1_000_000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["day.mcap", path.name]
    assert list(path.iterdir()) == []


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch /tmp/citywall-pwned",))


def test_a_keyframe_not_signed_by_this_user_is_never_unpickled(day, monkeypatch):
    monkeypatch.setattr(replay_mod, "KEYFRAME_EVERY", 2_000)
    for old in day.parent.glob("day.mcap.*.keyframes"):
        old.unlink()
    rp = replay(day, keyframe_file=True)
    rp.index_all()
    path = rp._keyframes.path
    rp._keyframes.close()
    # Someone who can write beside the recording appends an entry for 4,000 (the newest
    # entry of an index wins) with a valid SHA-256 but not this user's key.
    forged = zstandard.ZstdCompressor().compress(pickle.dumps(({"x": _Boom()}, {})))
    with open(path, "ab") as f:
        f.write(kf_mod._ENTRY.pack(4_000, len(forged), hashlib.sha256(forged).digest())
                + forged)
    calls, real_unpack = [], kf_mod.unpack
    monkeypatch.setattr(kf_mod, "unpack", lambda data: calls.append(data))
    store = replay(day, keyframe_file=True)._keyframes
    with pytest.raises(KeyError):
        store[4_000]
    assert calls == [] and 4_000 not in store and not os.path.exists("/tmp/citywall-pwned")
    store.close()
    monkeypatch.setattr(kf_mod, "unpack", real_unpack)
    # A flipped byte anywhere in an entry: refused by its checksum, the seek still right.
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    rp = replay(day, keyframe_file=True)
    t = rp.end_ms
    rp.seek(t)
    straight = replay(day)
    straight.clock.set(t)
    straight.advance()
    assert whole(rp.situation)["cases"] == whole(straight.situation)["cases"]
    last = max(rp._keyframes.keys())
    rp._keyframes.close()
    # A torn last entry (a console killed while writing it) is cut off at the next open.
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - 10)
    rp = replay(day, keyframe_file=True)
    assert rp._keyframes.bytes_on_disk() < size - 10
    assert path.stat().st_size == rp._keyframes.bytes_on_disk()      # the torn entry is gone
    rp.seek(rp.end_ms)
    assert last in rp._keyframes.keys()                              # taken again
    rp._keyframes.close()


def test_the_unpickler_refuses_every_global_but_a_pictures_parts():
    # The second wall behind the signature: even a signed entry names only a picture's parts.
    for bad in (os.system, eval, KeyframeStore, Situation, pickle.loads):
        with pytest.raises(pickle.UnpicklingError):
            unpack(zstandard.ZstdCompressor().compress(
                pickle.dumps(({"f": pickle.dumps(bad)}, pickle.dumps({})))))
        with pytest.raises(pickle.UnpicklingError):
            unpack(zstandard.ZstdCompressor().compress(pickle.dumps(({"f": bad}, {}))))
    with pytest.raises(pickle.UnpicklingError):
        unpack(zstandard.ZstdCompressor().compress(pickle.dumps(([1, 2], {}))))


def test_index_keyframes_prepares_a_recording_for_the_walls_that_open_it(day, tmp_path, capsys):
    import main
    from ui.session import build_session
    copy = tmp_path / "class.mcap"
    copy.write_bytes(day.read_bytes())
    assert main.main(["--replay", str(copy), "--index-keyframes"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(tuple(f"{n} keyframes" for n in range(2, 100)))
    assert str(copy) + "." in out and out.strip().endswith(".keyframes")
    session = build_session(main.build_parser().parse_args(["--replay", str(copy)]))
    try:
        status = session.replay.status()
        assert status["keyframe_file"] and status["keyframe_file"] in out
        assert session.replay._keyframes.loaded == status["keyframes"] - 1 > 0
    finally:
        session.stop()

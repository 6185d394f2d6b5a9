"""Recording: every message as it arrived, over real sockets, into MCAP files that survive being
cut short; the console's hourly recorder on a controlled clock, its size cap, and a disk that
fills up for real (a file size limit in a child process, /dev/full)."""
from __future__ import annotations

import errno
import itertools
import json
import random
import re
import resource
import signal
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from feeds.receiver import Receiver, wait_for
from feeds.record import HOUR_MS, Recorder, RollingRecorder
from feeds.recording import RecordingError, RecordingWriter, read_recording
from situation.clock import ManualClock
from tests.pubhelp import TestPublisher, record

ROOT = Path(__file__).resolve().parent.parent
T16 = int(datetime(2026, 11, 25, 16, tzinfo=timezone.utc).timestamp() * 1000)
T0 = T16 + 600_000                                   # 16:10 UTC


def dumps(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


class Mono:
    """A monotonic clock moved by hand: flushes happen exactly when a test says."""

    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def known_stream() -> list[tuple[list[bytes], int | None]]:
    """(frames, the ts the recording must carry as publish time, None for a reject)."""
    msgs: list[tuple[list[bytes], int | None]] = [
        ([b"hb", dumps(record("hb", seq=0, ts=T0 + 1))], T0 + 1),
        ([b"case", dumps(record("case", seq=1, ts=T0 + 2))], T0 + 2),
        ([b"unit", dumps(record("unit", seq=2, ts=T0 + 3))], T0 + 3),
        ([b"sensor.air", dumps([record("sensor.air", seq=3 + i, ts=T0 + 10 + i)
                                for i in range(5)])], T0 + 10),                  # a batch
        ([b"case", b'{"v": 1, "src": "t", not json'], None),
        ([b"hb", b"x", b"y"], None),                                               # 3 frames
        ([b"weather.rain", dumps(record("hb", seq=8, ts=T0 + 20))], None),         # unknown
        ([b"sensor.air", dumps([{"bad": 1}, record("sensor.air", seq=9, ts=T0 + 99)])],
         T0 + 99),                                   # mixed batch: its first good record's ts
        (["东城".encode(), b"{}"], None),                                  # non-ASCII topic
        ([b"hb", b"\xff\xfe not utf-8"], None),
    ]
    msgs += [([b"hb", dumps(record("hb", seq=10 + i, ts=T0 + 1000 + i))], T0 + 1000 + i)
             for i in range(300)]                                                  # several chunks
    return msgs


def test_record_a_known_stream_over_real_sockets(publisher, tmp_path):
    ticks = itertools.count()
    path = tmp_path / "known.mcap"
    rec = Recorder(path, now_ms=lambda: T0 + 7 * next(ticks), chunk_bytes=4096)
    receiver = Receiver([publisher.endpoint], tap=rec.tap).start()
    msgs = known_stream()
    try:
        publisher.wait_subscriber()
        for frames, _ in msgs:
            publisher.send_frames(frames)
        assert wait_for(lambda: rec.messages == len(msgs), 10), rec.messages
    finally:
        receiver.stop()
    rec.close()
    assert rec.problem is None and rec.dropped == 0
    r = read_recording(path)
    assert r.problems == []
    assert len(r) == len(msgs)
    for i, (frames, ts) in enumerate(msgs):
        assert r.frames(i) == frames, i
        assert r.log_ms[i] == T0 + 7 * i, i                        # in order, receive time
        assert r.publish_ms[i] == (ts if ts is not None else T0 + 7 * i), i
    assert sorted(r.topics) == [b"case", b"hb", b"sensor.air", b"unit", b"weather.rain"]


def _chunks_then_close(path, batches, **kw):
    """Write ``batches`` of hb messages, one chunk each; the file's size after each."""
    mono = Mono()
    rec = Recorder(path, now_ms=ManualClock(T0).now_ms, mono=mono, timer=False, **kw)
    sizes, frames = [], []
    for b, n in enumerate(batches):
        for i in range(n):
            f = [b"hb", dumps(record("hb", seq=len(frames), ts=T0 + len(frames)))]
            rec.tap("e", f, T0 + len(frames))
            frames.append(f)
        if b < len(batches) - 1:
            mono.t += 1.0
            rec.tick()
            sizes.append(path.stat().st_size)
    rec.close()
    sizes.append(path.stat().st_size)
    return sizes, frames


def test_a_chunk_reaches_the_file_a_second_after_its_first_message(tmp_path):
    path = tmp_path / "silent.mcap"
    mono = Mono()
    rec = Recorder(path, now_ms=lambda: T0, mono=mono, timer=False)
    header = path.stat().st_size                   # on disk at once: a full disk shows at once
    rec.tap("e", [b"hb", b"{}"], None)
    mono.t = 0.99
    rec.tick()
    assert path.stat().st_size == header           # still the chunk in progress
    mono.t = 1.0
    rec.tick()                                     # the feed went silent: the tick flushes
    assert len(read_recording(path)) == 1
    rec.tap("e", [b"hb", b"{}"], None)
    mono.t = 2.0
    rec.tap("e", [b"hb", b"{}"], None)             # a write finds the chunk due: flushed
    assert len(read_recording(path)) == 3
    rec.close()


@pytest.mark.parametrize("kind", ["single", "rolling"])
def test_the_timer_flushes_a_silent_feed(tmp_path, kind):
    if kind == "single":
        rec = Recorder(tmp_path / "a.mcap", flush_s=0.1, now_ms=lambda: T0)
    else:
        rec = RollingRecorder(tmp_path, flush_s=0.1, now_ms=lambda: T0)   # no hour turns
    try:
        for i in range(3):
            rec.tap("e", [b"hb", dumps(record("hb", seq=i))], None)

        def on_disk():
            files = list(tmp_path.glob("*.mcap"))
            try:
                return len(files) == 1 and len(read_recording(files[0])) == 3
            except RecordingError:
                return False
        assert wait_for(on_disk, 5, step_s=0.02)
    finally:
        rec.close()


def test_a_truncated_file_replays_its_complete_chunks(tmp_path):
    path = tmp_path / "full.mcap"
    (first, second, end), frames = _chunks_then_close(path, [5, 7, 4])
    data = path.read_bytes()
    # second - 1 cuts the message index after chunk 2: the chunk itself is whole.
    for cut, complete in [(first, 5), (first + 1, 5), (first + (second - first) // 2, 5),
                          (second - 1, 12), (second, 12), (second + 40, 12), (end - 1, 16),
                          (end - 9, 16)]:
        cut_path = tmp_path / f"cut-{cut}.mcap"
        cut_path.write_bytes(data[:cut])
        r = read_recording(cut_path)
        assert len(r) == complete, cut
        assert [r.frames(i) for i in range(len(r))] == frames[:complete]
        assert len(r.problems) == 1 and "after" in r.problems[0], r.problems
    for cut in (8, 30, first // 2):                 # inside the first chunk: nothing to replay
        cut_path = tmp_path / f"cut-{cut}.mcap"
        cut_path.write_bytes(data[:cut])
        with pytest.raises(RecordingError, match="no readable messages"):
            read_recording(cut_path)


def test_files_that_cannot_be_replayed(tmp_path):
    (tmp_path / "notes.mcap").write_bytes(b"these are not the bytes you are looking for\n")
    (tmp_path / "empty.mcap").write_bytes(b"")
    for name, says in [("notes.mcap", "not an MCAP file"), ("empty.mcap", "empty"),
                       ("missing.mcap", "no such file"), (".", "is a directory")]:
        with pytest.raises(RecordingError, match=says):
            read_recording(tmp_path / name)


def test_an_unknown_encoding_is_skipped_and_the_rest_read(tmp_path):
    from tests.pubhelp import write_foreign_mcap
    path = tmp_path / "mixed.mcap"
    write_foreign_mcap(path, [m for i in range(4) for m in (
        ("hb", "json", T0 + i, b'{"n": %d}' % i), ("/camera", "cdr", T0 + i, b"\x00\x01"))])
    r = read_recording(path)
    assert [r.frames(i) for i in range(len(r))] == [[b"hb", b'{"n": %d}' % i] for i in range(4)]
    assert len(r.problems) == 1 and "/camera (cdr)" in r.problems[0] and "4 messages" in \
        r.problems[0]


def test_messages_out_of_time_order_are_sorted(tmp_path):
    path = tmp_path / "order.mcap"
    w = RecordingWriter(path)
    for log, frames in [(30, [b"hb", b"3"]), (10, [b"a", b"b", b"c"]), (20, [b"hb", b"2"]),
                        (10, [b"hb", b"1"])]:
        w.write(frames, T0 + log)
    w.close()
    r = read_recording(path)
    assert list(r.log_ms - T0) == [10, 10, 20, 30]
    assert [r.frames(i) for i in range(4)] == [[b"a", b"b", b"c"], [b"hb", b"1"], [b"hb", b"2"],
                                               [b"hb", b"3"]]          # stable: as they came
    assert len(r.problems) == 1 and "out of time order" in r.problems[0]


def test_a_full_disk_is_seen_when_the_file_is_opened():
    with pytest.raises(OSError) as info:
        Recorder("/dev/full", timer=False)
    assert info.value.errno == errno.ENOSPC


def test_close_from_another_thread_while_the_tap_writes(tmp_path):
    path = tmp_path / "race.mcap"
    rec = Recorder(path, flush_s=0.01)
    go = threading.Event()
    errors = []

    def feed():
        try:
            go.set()
            for i in range(200_000):
                rec.tap("e", [b"hb", b'{"n":%d}' % i], None)
        except BaseException as exc:               # the tap must never raise
            errors.append(exc)

    t = threading.Thread(target=feed)
    t.start()
    go.wait(5)
    assert wait_for(lambda: rec.messages > 1000, 10)
    rec.close()
    t.join(30)
    assert not errors and rec.problem is None
    r = read_recording(path)
    assert r.problems == [] and len(r) == rec.messages
    assert [int(p[1][5:-1]) for p in (r.frames(i) for i in range(len(r)))] == \
        list(range(len(r)))


# ---- the command line -----------------------------------------------------------------------
def _cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "feeds.record", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_cli_records_until_sigterm_and_finishes_the_file(publisher, tmp_path):
    out = tmp_path / "cli.mcap"
    other = TestPublisher()
    proc = _cli("--feed", publisher.endpoint, "--feed", other.endpoint, "--out", out,
                "--run-for", 60)
    try:
        publisher.wait_subscriber(20)
        other.wait_subscriber(20)
        msgs = known_stream()[:40]
        for frames, _ in msgs:
            publisher.send_frames(frames)

        def flushed():          # the recorder's timer puts a silent feed's chunk on disk
            try:
                return len(read_recording(out)) == len(msgs)
            except RecordingError:
                return False
        assert wait_for(flushed, 15, step_s=0.05)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        other.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert stdout.splitlines() == [stdout.strip()]
    assert stdout.startswith(f"recorded {len(msgs)} messages (") and str(out) in stdout
    r = read_recording(out)
    assert r.problems == []                            # finished: summary and index written
    assert [r.frames(i) for i in range(len(r))] == [f for f, _ in msgs]
    assert all(r.publish_ms[i] == ts for i, (_, ts) in enumerate(msgs) if ts is not None)
    assert (r.log_ms[1:] >= r.log_ms[:-1]).all()
    assert r.metadata["feeds"] == f"{publisher.endpoint} {other.endpoint}"


def test_cli_run_for_with_nothing_received_warns(publisher, tmp_path):
    out = tmp_path / "quiet.mcap"
    proc = _cli("--feed", publisher.endpoint, "--out", out, "--run-for", 0.3)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "warning: nothing was received from " + publisher.endpoint in stderr
    assert stdout.startswith("recorded 0 messages")
    with pytest.raises(RecordingError, match="no messages"):
        read_recording(out)


def _file_size_limit(limit: int):
    """For a child: writes past ``limit`` bytes of a file fail with EFBIG, like a full disk."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE,
                           (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return apply


def test_cli_a_full_disk_is_one_line_and_exit_1(publisher, tmp_path):
    out = tmp_path / "full.mcap"
    proc = _cli("--feed", publisher.endpoint, "--out", out, preexec_fn=_file_size_limit(64_000))
    rng = random.Random(5)
    try:
        publisher.wait_subscriber(20)
        for i in range(5):
            publisher.send_frames(_hb(i, 2_000, rng))

        def flushed():
            try:
                return len(read_recording(out)) == 5
            except RecordingError:
                return False
        assert wait_for(flushed, 15, step_s=0.05)
        for i in range(40):                         # ~4 kB each on disk: past the limit
            publisher.send_frames(_hb(5 + i, 8_000, rng))
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, stderr
    assert stdout == ""
    last = re.fullmatch(
        f"feeds.record: error: recording stopped: file too large: {re.escape(str(out))}; what "
        r"was written is kept up to its last complete chunk \((\d+) messages recorded, "
        r"(\d+) not\)", stderr.splitlines()[-1])
    assert last, stderr
    kept, lost = int(last[1]), int(last[2])
    assert kept >= 5 and kept + lost == 45         # 5 unless the 40 were split across a flush
    r = read_recording(out)
    assert len(r) == kept and "cut short" in r.problems[0]


@pytest.mark.parametrize("args, says", [
    (["--feed", "http://x:1", "--out", "{d}/a.mcap"], "malformed endpoint"),
    (["--feed", "tcp://*:5556", "--out", "{d}/a.mcap"], "cannot subscribe"),
    (["--out", "{d}/a.mcap"], "the following arguments are required: --feed"),
    (["--feed", "tcp://127.0.0.1:1", "--out", "{d}/no/such/a.mcap"], "no such directory"),
    (["--feed", "tcp://127.0.0.1:1", "--out", "{d}"], "is a directory"),
    (["--feed", "tcp://127.0.0.1:1", "--out", "/sys/citywall-test.mcap"], "cannot write"),
    (["--feed", "tcp://127.0.0.1:1", "--out", "/dev/full"], "cannot write '/dev/full': disk full"),
    (["--feed", "tcp://127.0.0.1:1", "--out", "{d}/old.mcap"], "exists"),
    (["--feed", "tcp://127.0.0.1:1", "--out", "{d}/a.mcap", "--run-for", "0"], "greater than"),
    (["--feed", "tcp://127.0.0.1:1", "--out", "{d}/a.mcap", "--run-for", "-2"], "greater than"),
    (["--feed", "tcp://127.0.0.1:1", "--out", "{d}/a.mcap", "--max-record-bytes", "x"],
     "not a whole number"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, args, says):
    (tmp_path / "old.mcap").write_bytes(b"a recording already there")
    proc = _cli(*[a.format(d=tmp_path) for a in args])
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 2, stderr
    assert stdout == ""
    assert len(stderr.splitlines()) == 1 and stderr.startswith("feeds.record: error:"), stderr
    assert says in stderr
    assert (tmp_path / "old.mcap").read_bytes() == b"a recording already there"
    assert not (tmp_path / "a.mcap").exists()


# ---- the console's hourly recorder -----------------------------------------------------------
def _hb(i: int, size: int = 0, rng: random.Random | None = None) -> list[bytes]:
    rec = record("hb", seq=i, ts=T0 + i)
    if size:
        rec["pad"] = rng.randbytes(size // 2).hex()           # compresses poorly, like real data
    return [b"hb", dumps(rec)]


def test_hourly_files_on_a_controlled_clock(tmp_path):
    clock, mono = ManualClock(T0), Mono()
    rr = RollingRecorder(tmp_path, now_ms=clock.now_ms, mono=mono, timer=False)
    sent = {}
    for at, n in [(T0, 3), (T16 + 50 * 60_000, 2), (T16 + HOUR_MS + 5 * 60_000, 4)]:
        clock.set(at)
        for _ in range(n):
            frames = _hb(len(sent))
            rr.tap("e", frames, None)
            sent[len(sent)] = (at, frames)
    assert rr.status()["file"] == str(tmp_path / "citywall-2026-11-25T17Z.mcap")
    clock.set(T16 + 2 * HOUR_MS + 1)
    rr.tick()                                    # 18:00 with a silent feed: 17's file finished
    status = rr.status()
    assert status == {"dir": str(tmp_path), "file": None, "messages": 9, "dropped": 0,
                      "bytes": status["bytes"], "removed": 0, "problem": None,
                      "cleanup_problem": None}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["citywall-2026-11-25T16Z.mcap",
                                                          "citywall-2026-11-25T17Z.mcap"]
    assert status["bytes"] == sum(p.stat().st_size for p in tmp_path.iterdir())
    r16 = read_recording(tmp_path / "citywall-2026-11-25T16Z.mcap")
    r17 = read_recording(tmp_path / "citywall-2026-11-25T17Z.mcap")
    assert r16.problems == [] and r17.problems == []          # both finished
    assert r16.metadata["hour_utc"] == "2026-11-25T16Z"
    got = [(int(r.log_ms[i]), r.frames(i)) for r in (r16, r17) for i in range(len(r))]
    assert got == [sent[i] for i in range(9)]

    # The console restarts within the hour: a new file, the old one untouched.
    before = (tmp_path / "citywall-2026-11-25T17Z.mcap").read_bytes()
    rr.close()
    clock.set(T16 + HOUR_MS + 30 * 60_000)
    again = RollingRecorder(tmp_path, now_ms=clock.now_ms, mono=mono, timer=False)
    again.tap("e", _hb(99), None)
    again.close()
    assert (tmp_path / "citywall-2026-11-25T17Z.mcap").read_bytes() == before
    assert len(read_recording(tmp_path / "citywall-2026-11-25T17Z-1.mcap")) == 1


def _record_hour(rr, clock, mono, rng, hour: int) -> None:
    """Four heartbeats of ~3 kB in the hour T16 + ``hour`` (~12 kB a file)."""
    clock.set(T16 + hour * HOUR_MS)
    for i in range(4):
        rr.tap("e", _hb(i, 5_000, rng), None)
        mono.t += 1.0


def test_the_size_cap_removes_the_oldest(tmp_path):
    rng = random.Random(7)
    (tmp_path / "notes.txt").write_text("not ours")
    (tmp_path / "citywall-by-hand.mcap").write_bytes(b"x" * 100_000)      # not our name: kept
    clock, mono = ManualClock(T16), Mono()
    rr = RollingRecorder(tmp_path, max_bytes=40_000, now_ms=clock.now_ms, mono=mono,
                         timer=False)
    for hour in range(6):
        _record_hour(rr, clock, mono, rng, hour)
        # A wall replayed this hour's file: its keyframe file beside that recording.
        (tmp_path / f"citywall-2026-11-25T{16 + hour}Z.mcap.0123456789abcdef.keyframes"
         ).write_bytes(b"k")
        ours = sorted(tmp_path.glob("citywall-2026-*.mcap"))
        assert sum(p.stat().st_size for p in ours) <= 40_000 + 20_000
    rr.close()
    ours = sorted(p.name for p in tmp_path.glob("citywall-2026-*.mcap"))
    assert sum((tmp_path / n).stat().st_size for n in ours) <= 40_000
    assert ours[-1] == "citywall-2026-11-25T21Z.mcap"
    assert rr.removed == [f"citywall-2026-11-25T{h}Z.mcap" for h in range(16, 16 + len(rr.removed))]
    assert len(rr.removed) >= 2 and len(ours) + len(rr.removed) == 6
    for n in ours:
        r = read_recording(tmp_path / n)
        assert r.problems == [] and len(r) == 4
    assert (tmp_path / "notes.txt").exists() and (tmp_path / "citywall-by-hand.mcap").exists()
    assert rr.status()["removed"] == len(rr.removed)
    # A removed recording's keyframe files go with it; a kept one's stay.
    keyframes = sorted(p.name.split(".mcap")[0] for p in tmp_path.glob("*.keyframes"))
    assert keyframes == [n[:-len(".mcap")] for n in ours]


def test_the_size_cap_counts_the_keyframe_files_beside_the_recordings(tmp_path):
    """A replayed recording's keyframe files are several times its size: a cap of recordings
    alone would let them fill the disk. Past the cap with them, the oldest go (with theirs)."""
    rng = random.Random(8)
    clock, mono = ManualClock(T16), Mono()
    rr = RollingRecorder(tmp_path, max_bytes=60_000, now_ms=clock.now_ms, mono=mono,
                         timer=False)
    for hour in range(4):
        _record_hour(rr, clock, mono, rng, hour)
        (tmp_path / f"citywall-2026-11-25T{16 + hour}Z.mcap.0123456789abcdef.keyframes"
         ).write_bytes(b"k" * 30_000)                           # a wall replayed it
    rr.close()
    on_disk = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert on_disk <= 60_000 + 12_000 + 30_000      # the cap, and at most the newest hour's
    assert rr.removed[:2] == ["citywall-2026-11-25T16Z.mcap", "citywall-2026-11-25T17Z.mcap"]
    assert not list(tmp_path.glob("citywall-2026-11-25T16Z.mcap*"))


def test_a_vanished_directory_stops_and_a_retry_resumes(tmp_path):
    where = tmp_path / "rec"
    clock, mono = ManualClock(T0), Mono()
    rr = RollingRecorder(where, now_ms=clock.now_ms, mono=mono, timer=False, retry_s=60)
    where.rmdir()                                   # an unmounted disk, a removed directory
    rr.tap("e", _hb(0), None)
    assert rr.problem.startswith("recording stopped: no such file or directory: ")
    assert rr.problem.endswith("trying a new file in 60 s or at the next hour")
    where.mkdir()
    mono.t = 59.0
    rr.tap("e", _hb(1), None)                       # not yet
    assert rr.status()["file"] is None and rr.dropped == 2
    mono.t = 60.0
    rr.tap("e", _hb(2), None)
    assert rr.problem is None and rr.status()["file"] is not None
    rr.close()
    r = read_recording(where / "citywall-2026-11-25T16Z.mcap")
    assert [r.frames(i) for i in range(len(r))] == [_hb(2)]


FILL_THE_DISK = r"""
import json, random, resource, signal, sys
from feeds.record import RollingRecorder
from situation.clock import ManualClock
from tests.test_record import T16, HOUR_MS, Mono, _hb

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)       # a write past the limit fails with EFBIG
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
rng = random.Random(3)
clock, mono = ManualClock(T16 + 60_000), Mono()
rr = RollingRecorder(sys.argv[1], now_ms=clock.now_ms, mono=mono, timer=False, retry_s=60)
for i in range(20):                                  # hour 16: small, finished at 17:00
    rr.tap("e", _hb(i), None)
clock.set(T16 + HOUR_MS + 60_000)
n = 0
while rr.problem is None and n < 200:               # hour 17: until the file cannot grow
    rr.tap("e", _hb(n, 4_000, rng), None)
    mono.t += 0.4
    n += 1
at_failure = dict(rr.status(), sent=n)
for i in range(5):                                   # stopped: counted, not written
    rr.tap("e", _hb(i), None)
mono.t += 60
for i in range(3):                                   # a minute later: a new file
    rr.tap("e", _hb(i), None)
rr.close()
print(json.dumps({"at_failure": at_failure, "end": rr.status()}))
"""


def test_a_full_disk_keeps_what_was_written(tmp_path):
    proc = subprocess.run([sys.executable, "-c", FILL_THE_DISK, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr           # nothing raised into the "receiver"
    out = json.loads(proc.stdout)
    failed, end = out["at_failure"], out["end"]
    f16, f17, f17b = (tmp_path / f"citywall-2026-11-25T{n}.mcap" for n in ("16Z", "17Z", "17Z-1"))
    assert failed["problem"] == (
        f"recording stopped: file too large: {f17}; what was written is kept up to its last "
        "complete chunk; trying a new file in 60 s or at the next hour")
    assert failed["file"] is None
    r16 = read_recording(f16)                          # the finished hour: intact
    assert r16.problems == [] and [r16.frames(i) for i in range(20)] == [_hb(i) for i in range(20)]
    r17 = read_recording(f17)                          # replayable to its last complete chunk
    assert len(r17) == failed["messages"] - 20 > 0
    assert len(r17.problems) == 1 and "cut short" in r17.problems[0]
    rng = random.Random(3)
    assert [r17.frames(i) for i in range(len(r17))] == [_hb(i, 4_000, rng)
                                                        for i in range(len(r17))]
    r17b = read_recording(f17b)                        # recording again after the retry
    assert r17b.problems == [] and [r17b.frames(i) for i in range(3)] == [_hb(i) for i in range(3)]
    assert end["problem"] is None
    assert end["messages"] == 20 + len(r17) + 3
    assert end["dropped"] == failed["sent"] - len(r17) + 5


def test_keyframes_written_within_the_hour_and_orphans_are_counted_too(tmp_path):
    """A wall replaying an old hour writes its keyframe files while the recorder records:
    within a minute the cap sees them. A keyframe file whose recording is gone goes."""
    rng = random.Random(9)
    clock, mono = ManualClock(T16), Mono()
    (tmp_path / "citywall-2026-11-25T10Z.mcap.0123456789abcdef.keyframes").write_bytes(b"o" * 50)
    rr = RollingRecorder(tmp_path, max_bytes=60_000, now_ms=clock.now_ms, mono=mono,
                         timer=False)
    for hour in range(3):
        _record_hour(rr, clock, mono, rng, hour)
    assert not (tmp_path / "citywall-2026-11-25T10Z.mcap.0123456789abcdef.keyframes").exists()
    (tmp_path / "citywall-2026-11-25T16Z.mcap.0123456789abcdef.keyframes"
     ).write_bytes(b"k" * 60_000)                               # a wall replays 16:00 now
    mono.t += 61.0
    rr._on_tick()                                               # the recorder's timer
    assert "citywall-2026-11-25T16Z.mcap" in rr.removed
    assert not list(tmp_path.glob("citywall-2026-11-25T16Z.mcap*"))
    rr.close()

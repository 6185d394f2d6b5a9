"""Replaying a recording into the situation, on the replay's own clock.

The replay's clock is the situation's one clock: its time is the recording's receive time, so
every countdown, staleness check, heat window and now-line follows the replay. ``advance()``
(called where a live console drains its receivers) applies every message received up to that
time, through the same decoder and sequence check a live feed goes through, so rejects, gaps
and restarts show as the recording console saw them.

Seeking rebuilds the situation as it stood at that moment: from the nearest keyframe (the
whole picture every ``KEYFRAME_EVERY`` messages, sparser past ``MAX_KEYFRAMES``; compact, on
disk: ``situation.keyframes``) plus the messages after it. Keyframes are taken as play passes
them, ahead of it in small steps (``index_step``, the wall does this while it runs), or all at
once (``index_all``); with ``keyframe_file`` they are kept beside the recording for the next
console that opens it.
"""
from __future__ import annotations

import copy
import gc

import numpy as np

from feeds.batch import Batch, SeqTracker
from feeds.crs import GCJ02, OUTSIDE, PROTOCOL_DEFAULT, reframe
from feeds.decode import MessageDecoder
from feeds.recording import Recording
from feeds.schema import DEFAULT_MAX_RECORD_BYTES
from situation.clock import ScaledClock
from situation.keyframes import Keyframe, KeyframeStore
from situation.store import Change, Situation

KEYFRAME_EVERY = 10_000          # messages: a seek applies at most this many after a keyframe
MAX_KEYFRAMES = 200              # … or sparser, for a long recording (each a few MB on disk)
APPLY_SLICE = 10_000             # messages per situation.apply while catching up
SPEEDS = (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
STEP_MS = 60_000


class ReplayClock(ScaledClock):
    """The replay's time. Link health (a source silent for 3 s is down) follows it too: a
    recorded feed that went silent shows down at the moment it did."""

    def link_ms(self) -> int:
        return self.now_ms()


class Replay:
    """A recording played back: a source like any feed (``feeds.source``), and the
    transport's controls (seek, loop, speed) on the situation it drives."""
    endpoints: list[str] = []

    def __init__(self, recording: Recording, situation: Situation, *,
                 max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, exercise=None,
                 keyframes: KeyframeStore | None = None, display_crs: str = GCJ02,
                 keyframe_file: bool = False):
        if not isinstance(situation.clock, ReplayClock):
            raise TypeError("a replay needs the situation on a ReplayClock")
        self.recording = recording
        self.name = str(recording.path)
        self.situation = situation
        self.clock: ReplayClock = situation.clock
        self._decoder = MessageDecoder(max_record_bytes)
        self._seq = SeqTracker()
        self.pos = 0                                  # next message to apply
        self.loop: tuple[int, int] | None = None
        self.ended = False
        self.exercise = exercise                      # situation.training.Exercise in TRAINING
        self.held_back = 0                            # recorded records the trainee took over
        self.notices: list[str] = recording.problems   # grows if a chunk cannot be read later
        self._max_record_bytes = max_record_bytes
        # A recording holds what the feeds sent, in the protocol's frame: moved into the
        # wall's as it is played (a feed configured as WGS-84 is not told apart: see README).
        self.display_crs = display_crs
        self.keyframe_every = max(KEYFRAME_EVERY, -(-len(recording) // MAX_KEYFRAMES))
        # message index → the picture after the messages before it (shared with the indexer)
        if keyframes is None:
            every, n = self.keyframe_every, len(recording)
            keyframes = KeyframeStore(recording, self._settings(), beside=keyframe_file,
                                      valid=lambda i: 0 < i <= n and i % every == 0)
        self._keyframes: KeyframeStore = keyframes
        self._keyframes.setdefault(0, self._keyframe())
        self._indexer: Replay | None = None
        self._pending_keyframe: tuple[int, int] | None = None   # (message index, version)

    # ---- the picture at the clock's time ----------------------------------------------
    @property
    def start_ms(self) -> int:
        return self.recording.start_ms

    @property
    def end_ms(self) -> int:
        return self.recording.end_ms

    def advance(self) -> Change:
        """Apply everything received up to the clock's time (tests, the benchmark)."""
        change = Change()
        while True:
            batch = self.take()
            change = _merged(change, self.situation.apply(batch))
            if self.pos >= self.recording.index_at(self.clock.now_ms()):
                return change

    # ---- the source interface (feeds.source) ---------------------------------------------
    def start(self) -> "Replay":
        return self

    def stop(self) -> None:
        self._keyframes.close()              # what is taken is written, the file let go

    def health(self) -> dict:
        return {"kind": "replay", "name": self.recording.path, "up": not self.ended,
                "position": self.pos, "messages": len(self.recording)}

    def take(self) -> Batch:
        """The recorded messages received up to the clock's time, as one batch (at most up to
        the next keyframe boundary: the keyframe is taken at the next call, once the
        consumer has applied this batch). A loop's wrap rebuilds the situation here and says
        so in ``batch.rebuilt``."""
        rebuilt = None
        now = self.clock.now_ms()
        if self.loop is not None and now >= self.loop[1]:
            rebuilt = self.seek(self.loop[0])
            now = self.clock.now_ms()
        if now >= self.end_ms and not self.clock.paused:
            self.clock.pause(True)           # the recording is over: stop at its end
            self.clock.set(self.end_ms)
            self.ended = True
        self._settle_keyframe()
        every = self.keyframe_every
        target = self.recording.index_at(self.clock.now_ms())
        stop = min(target, (self.pos // every + 1) * every, self.pos + APPLY_SLICE)
        batch = self._decode(self.pos, stop) if stop > self.pos else Batch()
        self.pos = max(self.pos, stop)
        if (stop > 0 and stop % every == 0 and stop not in self._keyframes
                and self.exercise is None):
            # The keyframe is the picture once the consumer has applied this batch: taken at
            # the next call (or before a seek) if, and only if, it was applied.
            self._pending_keyframe = (stop, self.situation.version)
        if self.exercise is not None:
            batch.records.extend(self.exercise.pump(self.clock.now_ms()))
        if rebuilt is not None:
            batch.rebuilt = (rebuilt.cases, rebuilt.units, rebuilt.sensors)
        return batch

    def _settle_keyframe(self) -> None:
        """Take the keyframe a batch ending on a boundary was waiting for — only when the
        consumer applied that batch, and nothing else, since (``situation.version`` moved by
        exactly one); otherwise it is left for the indexer (``index_step``) to take."""
        pending, self._pending_keyframe = self._pending_keyframe, None
        if pending is None:
            return
        at, version = pending
        if (self.pos == at and self.situation.version == version + 1
                and at not in self._keyframes):
            self._keyframes[at] = self._keyframe()

    def _apply_to(self, target: int) -> Change:
        """Apply up to message ``target`` now (a seek; the indexer), keyframes as it passes."""
        change = Change()
        while self.pos < target:
            every = self.keyframe_every
            boundary = (self.pos // every + 1) * every
            stop = min(target, boundary, self.pos + APPLY_SLICE)
            change = _merged(change, self.situation.apply(self._decode(self.pos, stop)))
            self.pos = stop
            if stop % every == 0 and stop not in self._keyframes \
                    and self.exercise is None:
                self._keyframes[stop] = self._keyframe()
        return change

    def _decode(self, start: int, stop: int) -> Batch:
        batch = Batch()
        rec = self.recording
        decode, observe = self._decoder.decode, self._seq.observe
        held = self.exercise.controls if self.exercise is not None else None
        log_ms = rec.log_ms
        for i, message in enumerate(rec.frames_span(start, stop), start):
            # Judged by the replay's clock: the time the console received it.
            decoded = decode(message, int(log_ms[i]))
            batch.messages += 1
            for rej in decoded.rejects:
                batch.rejects[(rej.src, rej.reason)] += rej.count
                batch.heard.add(rej.src)
            for src, seq in decoded.seqs:
                observe(src, seq, batch)
            if self.display_crs != PROTOCOL_DEFAULT and decoded.records:
                decoded.records, refused = reframe(decoded.records, PROTOCOL_DEFAULT,
                                                   self.display_crs)
                for r in refused:
                    batch.rejects[(r.src, OUTSIDE)] += 1
            if held is None:
                batch.records.extend(decoded.records)
            else:
                for r in decoded.records:
                    if held(r):
                        self.held_back += 1
                    else:
                        batch.records.append(r)
        return batch

    def _apply_records(self, records: list) -> Change:
        if not records:
            return Change()
        return self.situation.apply(Batch(records=records, messages=0))

    # ---- keyframes and seeking ---------------------------------------------------------
    def _keyframe(self) -> Keyframe:
        return Keyframe(self.situation.snapshot(), copy.copy(self._seq.last))

    def _settings(self) -> dict:
        """What, besides the recording and the code, shapes the picture a keyframe holds."""
        s = self.situation
        scope = getattr(s, "scope", None)
        return {"display_crs": self.display_crs, "max_record_bytes": self._max_record_bytes,
                "keyframe_every": self.keyframe_every, "limits": s.limits,
                "scope": sorted(scope.adcodes) if scope is not None else None,
                "history": s._history_len}

    def _restore_from(self, target: int) -> None:
        """Put back the nearest keyframe at or before message ``target`` that reads back
        whole (one that does not is forgotten, to be taken again)."""
        for base in sorted((k for k in self._keyframes.keys() if k <= target), reverse=True):
            try:
                kf = self._keyframes[base]
            except KeyError:
                continue
            self.situation.restore(kf.state)
            self._seq.last = copy.copy(kf.seq)
            self.pos = base
            return
        raise RuntimeError("a replay without its first keyframe")

    def index_step(self, budget: int) -> bool:
        """Take keyframes ahead of time, ``budget`` messages' worth, so a jump far ahead is as
        quick as one back (the wall calls this in small steps while it runs). A second replay
        on a picture of its own does it, storing into the same keyframes; this one's picture
        does not move. False when every keyframe is taken (training keeps none)."""
        if self._keyframes.failed:
            if self._keyframes.failed not in self.notices:
                self.notices.append(self._keyframes.failed)     # said on the transport bar
            return False
        if self.exercise is not None:
            return False
        rec = self.recording
        if self._indexer is None:
            clock = ReplayClock(rec.start_ms)
            clock.pause(True)
            # A picture like this one: the same districts (a district wall's replay), the same
            # limits (--max-sources, --open-case-max-days), so a seek restores the same.
            ix_situation = Situation(clock, self.situation.locator,
                                     scope=getattr(self.situation, "scope", None),
                                     limits=self.situation.limits)
            self._indexer = Replay(rec, ix_situation,
                                   max_record_bytes=self._max_record_bytes,
                                   keyframes=self._keyframes, display_crs=self.display_crs)
        ix = self._indexer
        every = self.keyframe_every
        last = (len(rec) // every) * every
        # From the keyframe before the first one missing (the player may have taken later ones,
        # and left a hole where a batch it handed over was not applied).
        hole = next((k for k in range(every, last + 1, every) if k not in self._keyframes),
                    None)
        if hole is None:
            self._indexer = None              # done: its picture goes
            return False
        base = hole - every
        if not (base <= ix.pos < hole):
            ix._restore_from(base)
        if ix.pos >= last:
            self._indexer = None              # done: its picture goes
            return False
        target = min(last, ix.pos + budget)
        ix.clock.set(int(rec.log_ms[target - 1]))
        ix._apply_to(target)
        return True

    def index_all(self) -> None:
        """Take every keyframe now, so any later seek is quick. The picture stays."""
        while self.index_step(self.keyframe_every):
            pass

    def seek(self, t_ms: int) -> Change:
        """The situation as it stood at ``t_ms`` (clamped to the recording). Returns a change
        naming everything held before or after, so every panel redraws."""
        # A seek makes many objects and no cycles: the cyclic collector walking the whole
        # picture (and every keyframe) midway would only add a pause.
        paused_gc = gc.isenabled()
        gc.disable()
        try:
            return self._seek(t_ms)
        finally:
            if paused_gc:
                gc.enable()

    def _seek(self, t_ms: int) -> Change:
        self._settle_keyframe()              # a boundary reached by play, before leaving it
        t_ms = int(min(max(int(t_ms), self.start_ms), self.end_ms))
        target = self.recording.index_at(t_ms)
        before = _keys(self.situation)
        if self.exercise is not None:
            if target < self.pos:
                raise ValueError("training runs forward only: the trainee's orders cannot be "
                                 "taken back (restart the exercise to go back)")
        else:
            base = max(k for k in self._keyframes.keys() if k <= target)
            if not (base <= self.pos <= target):      # going back, or far ahead of here
                self._restore_from(target)
        self.clock.set(t_ms)
        self.ended = False
        self._apply_to(target)
        if self.exercise is not None:
            self._apply_records(self.exercise.pump(t_ms))
        after = _keys(self.situation)
        return Change(cases=before[0] | after[0], units=before[1] | after[1],
                      sensors=before[2] | after[2], sources=True)

    # ---- the transport -------------------------------------------------------------------
    def play(self) -> Change:
        """Play on; at the end, from the start (or the loop's start) again. The change is what
        that seek rebuilt, for the panels."""
        change = Change()
        if self.clock.now_ms() >= self.end_ms:
            if self.exercise is not None:
                return change           # the exercise is over: the day does not start again
            change = self.seek(self.loop[0] if self.loop else self.start_ms)
        self.ended = False
        self.clock.pause(False)
        return change

    def pause(self) -> None:
        self.clock.pause(True)

    @property
    def paused(self) -> bool:
        return self.clock.paused

    def set_speed(self, speed: float) -> None:
        self.clock.set_speed(speed)          # ValueError for zero or less

    def step(self, delta_ms: int) -> Change:
        return self.seek(self.clock.now_ms() + int(delta_ms))

    def set_loop(self, start_ms: int, end_ms: int) -> None:
        if self.exercise is not None:
            raise ValueError("no loops in training: the day runs forward as it did")
        a, b = sorted((int(start_ms), int(end_ms)))
        a, b = max(a, self.start_ms), min(b, self.end_ms)
        if b - a < 1_000:
            raise ValueError("a loop must be at least a second of the recording")
        self.loop = (a, b)

    def clear_loop(self) -> None:
        self.loop = None

    def status(self) -> dict:
        return {"time_ms": self.clock.now_ms(), "speed": self.clock.speed,
                "paused": self.clock.paused, "ended": self.ended,
                "start_ms": self.start_ms, "end_ms": self.end_ms,
                "position": self.pos, "messages": len(self.recording),
                "loop": list(self.loop) if self.loop else None,
                "held_back": self.held_back, "problems": list(self.notices),
                "keyframes": len(self._keyframes),
                "keyframes_problem": self._keyframes.failed,
                "keyframe_file": str(self._keyframes.path) if self._keyframes.path else None,
                "file": self.recording.path}


def _keys(situation: Situation) -> tuple[set, set, set]:
    return set(situation.cases), set(situation.units), set(situation.sensors)


def _merged(a: Change, b: Change) -> Change:
    a.cases |= b.cases
    a.units |= b.units
    a.sensors |= b.sensors
    a.sources = a.sources or b.sources
    return a


def density(recording: Recording, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Messages per time bin over the recording: (bin edges in ms, counts)."""
    lo, hi = recording.start_ms, max(recording.end_ms, recording.start_ms + 1)
    counts, edges = np.histogram(recording.log_ms, bins=bins, range=(lo, hi))
    return edges, counts

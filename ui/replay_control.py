"""The one shared control of the replay: every transport bar (``ui.transport``) on every
screen drives the replay through it, so bars on five screens always agree.

``ReplayControl`` holds the actions (play/pause, speed, a minute back or on, jump to a time,
loop a range), says what the mode forbids and why (``ReplayControl.refusal``: in training, a
minute back, the loop's A/B/✕, a jump to an earlier time and playing again at the end) and
what was refused; an action on any bar tells them all through ``ReplayControl.changed``, and
a seek is followed by ``bridge.show(change)`` so every panel redraws the rebuilt situation.
It also counts the timeline's marks off the GUI thread and indexes keyframes ahead of the
play a little at a time. ``jump_target`` (no Qt) reads a typed time.
"""
from __future__ import annotations

import re
import threading
import weakref
from datetime import date, datetime, timedelta

import shiboken6
from PySide6.QtCore import QObject, QTimer, Signal

from feeds.recording import RecordingError, read_recording
from situation import replay_marks
from situation.replay import SPEEDS, STEP_MS
from situation.replay_marks import BEIJING
from widgets import theme
from widgets.i18n import tr
from widgets.timeline import hhmm

REFRESH_MS = 250            # the bars follow a playing replay four times a second
NOTICE_MS = 20_000          # a refused action is said this long (or until the next good one)
_TIME = re.compile(r"^\s*(\d{1,2})\s*[:：.]\s*(\d{1,2})(?:\s*[:：.]\s*(\d{1,2}))?\s*$")


# ---- jump to a time (no Qt) --------------------------------------------------------------------
def jump_target(text: str, start_ms: int, end_ms: int, near_ms: int) -> int:
    """The replay time ``text`` (HH:MM or HH:MM:SS, Beijing time) names on the recording's
    day(s): the one nearest ``near_ms`` when the recording spans several days. A typed minute
    that overlaps the recording counts (07:00 finds a recording starting 07:00:01). ValueError
    ("bad" or "outside") otherwise."""
    m = _TIME.match(text or "")
    if not m or int(m[1]) > 23 or int(m[2]) > 59 or (m[3] and int(m[3]) > 59):
        raise ValueError("bad")
    h, mi, s = int(m[1]), int(m[2]), int(m[3] or 0)
    width = 1_000 if m[3] else 60_000                  # what the typed time names
    first = datetime.fromtimestamp(start_ms / 1000, BEIJING).date()
    last = datetime.fromtimestamp(end_ms / 1000, BEIJING).date()
    found = []
    day: date = first
    while day <= last:
        t = int(datetime(day.year, day.month, day.day, h, mi, s, tzinfo=BEIJING).timestamp()
                * 1000)
        if t <= end_ms and t + width > start_ms:
            found.append(min(max(t, start_ms), end_ms))
        day += timedelta(days=1)
    if not found:
        raise ValueError("outside")
    return min(found, key=lambda t: abs(t - near_ms))


# ---- the one controller every bar shares ---------------------------------------------------------
INDEX_MS, INDEX_MESSAGES = 100, 1_000


class ReplayControl(QObject):
    changed = Signal()          # the replay moved or was told something: every bar redraws
    acted = Signal()            # a person acted (the headers redraw their banner at once)
    marks_ready = Signal()
    _computed = Signal(object, str)

    def __init__(self, replay, bridge, lang: str, parent: QObject | None = None):
        super().__init__(parent if parent is not None else bridge)
        self.replay, self.bridge, self.lang = replay, bridge, lang
        self.loop_a: int | None = None        # a loop's start, set, waiting for its end
        self.notice = ""                      # the last refused action, until the next good one
        self.marks: replay_marks.ReplayMarks | None = None
        self.marks_problem = ""
        self.speeds = sorted({float(s) for s in SPEEDS} | {float(replay.clock.speed)})
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.changed.emit)
        self._timer.start()
        self._notice_timer = QTimer(self)
        self._notice_timer.setSingleShot(True)
        self._notice_timer.setInterval(NOTICE_MS)
        self._notice_timer.timeout.connect(self._forget_notice)
        self._computed.connect(self._marks_in)
        # Keyframes ahead of the play, a little at a time (~20 ms a step), so a jump far
        # ahead does not hold the wall for seconds.
        self._index_timer = QTimer(self)
        self._index_timer.setInterval(INDEX_MS)
        self._index_timer.timeout.connect(self._index_some)
        self._index_timer.start()
        # The marks cost about a second for a day's recording (and as much to read it again):
        # off the GUI thread.
        threading.Thread(target=self._compute_marks, name="replay-marks", daemon=True).start()

    def _index_some(self) -> None:
        if not self.replay.index_step(INDEX_MESSAGES):
            self._index_timer.stop()

    # ---- the marks, from a worker thread -----------------------------------------------------
    def _compute_marks(self) -> None:
        try:
            # A Recording of its own: the replay's chunk cache is not for two threads.
            own = read_recording(self.replay.recording.path)
            got, problem = replay_marks.compute(own), ""
        except RecordingError as exc:     # the file went or changed since the replay read it
            got, problem = None, tr("tp.no_marks", self.lang, why=str(exc))
        except Exception as exc:          # a damaged payload we did not foresee: say it
            got, problem = None, tr("tp.no_marks", self.lang, why=f"{type(exc).__name__}: {exc}")
        try:
            self._computed.emit(got, problem)        # queued to the GUI thread
        except RuntimeError:
            pass                                     # the console closed meanwhile

    def _marks_in(self, marks, problem: str) -> None:
        self.marks, self.marks_problem = marks, problem
        self.marks_ready.emit()

    # ---- what the bars say -------------------------------------------------------------------
    def say(self, text: str) -> None:
        self.notice = text
        self._notice_timer.start()
        self.changed.emit()

    def _forget_notice(self) -> None:
        self.notice = ""
        self.changed.emit()

    def notice_text(self) -> tuple[str, str]:
        """(text, colour): a refused action, else the recording's problems, else nothing."""
        if self.notice:
            return self.notice, theme.ALARM
        if self.replay.notices:
            return tr("tp.recording", self.lang, what="; ".join(self.replay.notices)), theme.WARN
        if self.marks_problem:
            return self.marks_problem, theme.WARN
        return "", theme.MUTED

    # ---- what the mode forbids ---------------------------------------------------------------
    def refusal(self, action: str) -> str:
        """Why the mode forbids ``action`` — "back" (any time before now: a minute back, a
        jump or a click behind the now-line), "loop" (A, B, ✕ and a drag across the strip),
        "play" (playing again) — in words; "" when it may be done. The words are the replay's
        own reasons (``situation.replay``), which it would raise if asked."""
        r = self.replay
        if r.exercise is None:
            return ""
        if action == "back":
            return tr("tp.training_back", self.lang)
        if action == "loop":
            return tr("tp.training_loop", self.lang)
        if action == "play" and r.clock.now_ms() >= r.end_ms:
            return tr("tp.training_over", self.lang)
        return ""

    def _refuse(self, why: str) -> bool:
        self.say(tr("tp.refused", self.lang, why=why))
        return False

    # ---- actions -------------------------------------------------------------------------------
    def _do(self, action) -> bool:
        """Run one transport action; a refusal (ValueError) is said and nothing changes."""
        try:
            change = action()
        except ValueError as exc:
            return self._refuse(str(exc))
        if change is not None:
            self.bridge.show(change)          # every panel redraws the rebuilt situation
        self.notice = ""
        self.acted.emit()                     # the headers first (the banner's pace) …
        self.changed.emit()                   # … then the bars: each sets its header's clock
        return True

    def toggle_play(self) -> bool:
        return self.play() if self.replay.paused else self._do(self.replay.pause)

    def play(self) -> bool:
        r = self.replay
        if why := self.refusal("play"):
            return self._refuse(why)

        def go():
            # At the end, play starts over (from the loop's start); seek here, so the panels
            # hear of the rebuilt situation (Replay.play seeks but keeps the change to itself).
            change = None
            if r.clock.now_ms() >= r.end_ms:
                change = r.seek(r.loop[0] if r.loop else r.start_ms)
            r.play()
            return change
        return self._do(go)

    def pause(self) -> bool:
        return self._do(self.replay.pause)

    def set_speed(self, speed: float) -> bool:
        return self._do(lambda: self.replay.set_speed(speed))

    def faster(self, steps: int = 1) -> bool:
        here = min(range(len(self.speeds)),
                   key=lambda i: abs(self.speeds[i] - self.replay.clock.speed))
        return self.set_speed(self.speeds[max(0, min(len(self.speeds) - 1, here + steps))])

    def step(self, minutes: int) -> bool:
        if minutes < 0 and (why := self.refusal("back")):
            return self._refuse(why)
        return self._do(lambda: self.replay.step(minutes * STEP_MS))

    def seek(self, t_ms: int) -> bool:
        if t_ms < self.replay.clock.now_ms() and (why := self.refusal("back")):
            return self._refuse(why)
        return self._do(lambda: self.replay.seek(t_ms))

    def jump_problem(self, text: str) -> tuple[int | None, str]:
        """(the time ``text`` names, "") or (None, why it cannot be gone to, in words)."""
        r = self.replay
        now = r.clock.now_ms()
        try:
            t = jump_target(text, r.start_ms, r.end_ms, now)
        except ValueError as exc:
            if str(exc) == "bad":
                return None, tr("tp.bad_time", self.lang, text=text.strip())
            return None, tr("tp.outside", self.lang, t=text.strip(), a=hhmm(r.start_ms, True),
                            b=hhmm(r.end_ms, True))
        if t < now and (why := self.refusal("back")):
            return None, why
        return t, ""

    def jump(self, text: str) -> bool:
        t, problem = self.jump_problem(text)
        if problem:
            self.say(problem)
            return False
        return self.seek(t)

    def set_a(self) -> bool:
        if why := self.refusal("loop"):
            return self._refuse(why)
        self.loop_a = self.replay.clock.now_ms()
        return self._do(lambda: None)

    def set_b(self) -> bool:
        if why := self.refusal("loop"):
            return self._refuse(why)
        if self.loop_a is None:
            self.say(tr("tp.need_a", self.lang))
            return False
        a = self.loop_a
        ok = self._do(lambda: self.replay.set_loop(a, self.replay.clock.now_ms()))
        if ok:
            self.loop_a = None
        return ok

    def set_loop(self, a_ms: int, b_ms: int) -> bool:
        if why := self.refusal("loop"):
            return self._refuse(why)
        ok = self._do(lambda: self.replay.set_loop(a_ms, b_ms))
        if not ok:
            self.changed.emit()               # the strip goes back to the replay's loop
        return ok

    def clear_loop(self) -> bool:
        if why := self.refusal("loop"):
            return self._refuse(why)
        self.loop_a = None
        return self._do(self.replay.clear_loop)


_controls: "weakref.WeakKeyDictionary[object, ReplayControl]" = weakref.WeakKeyDictionary()


def control_for(replay, bridge, lang: str) -> ReplayControl:
    """The one controller of this replay (made on first use): every bar shares it."""
    control = _controls.get(replay)
    if control is None or not shiboken6.isValid(control) or control.bridge is not bridge:
        control = _controls[replay] = ReplayControl(replay, bridge, lang)
    return control

"""The replay's transport bar, at the bottom of every window: play/pause, speed, a minute back
or on, jump to a time, loop a range, and the timeline of the whole recording.

Every bar drives the one replay through one shared ``ReplayControl`` and redraws from the
replay itself (its clock, its loop), never from a copy, so bars on five screens always agree:
an action on any bar (or its keys) tells them all through ``ReplayControl.changed``. A seek
is followed by ``bridge.show(change)`` so every panel redraws the rebuilt situation.

One clock on screen: a bar on a window with a header redraws that header's clock in the same
pass (four times a second, on every action and on the bridge's tick, after the header's own
redraw) and shows the very reading the header's clock made, so the two never differ.

What the mode forbids is disabled, its reason in the tooltip (``ReplayControl.refusal``): in
training, a minute back, the loop's A/B/✕, a jump to an earlier time, the timeline's past and
playing again at the end. Bad input — a time that is not a time, a time outside the recording,
a loop under a second, a trainee stepping back by key — is said on the bars and nothing
changes.
"""
from __future__ import annotations

import re
import threading
import weakref
from datetime import date, datetime, timedelta

import shiboken6
from PySide6.QtCore import QObject, QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QKeySequence, QPainter, QPolygonF, QShortcut
from PySide6.QtWidgets import (QBoxLayout, QComboBox, QFrame, QHBoxLayout, QLabel,
                               QLineEdit, QMainWindow, QPushButton, QSizePolicy, QToolBar,
                               QVBoxLayout)

from feeds.recording import RecordingError, read_recording
from situation import replay_marks
from situation.replay import SPEEDS, STEP_MS
from situation.replay_marks import BEIJING
from widgets import theme
from widgets.i18n import tr
from widgets.timeline import Timeline, hhmm, legend_html

REFRESH_MS = 250            # the bars follow a playing replay four times a second
NOTICE_MS = 20_000          # a refused action is said this long (or until the next good one)
BAR_HEIGHT = 176
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


# ---- the bar -------------------------------------------------------------------------------------
def _button(text: str, tip: str, slot, min_w: int = 120) -> QPushButton:
    b = QPushButton(text)
    b.setFont(theme.font(24, bold=True))
    b.setMinimumSize(min_w, 56)
    b.setToolTip(tip)
    b.setFocusPolicy(Qt.NoFocus)          # Space stays play/pause, never "press the button"
    b.clicked.connect(lambda _=False: slot())
    return b


BAR_STYLE = f"""
QFrame#transport {{ background: {theme.HEADER}; border-top: 2px solid {theme.PANEL_EDGE}; }}
QFrame#transport QLabel {{ background: transparent; }}
QFrame#transport QPushButton {{ background: #13233f; color: {theme.TEXT};
    border: 2px solid {theme.PANEL_EDGE}; border-radius: 8px; padding: 2px 14px; }}
QFrame#transport QPushButton:hover {{ border-color: {theme.ACCENT}; }}
QFrame#transport QPushButton:pressed {{ background: #1e3a64; }}
QFrame#transport QPushButton#play {{ background: {theme.ACCENT}; color: {theme.BG};
    border-color: {theme.ACCENT}; }}
QFrame#transport QPushButton:disabled, QFrame#transport QPushButton#play:disabled {{
    background: transparent; color: {theme.DIM}; border: 2px dashed {theme.DIM}; }}
QFrame#transport QLineEdit[bad="true"] {{ border-color: {theme.ALARM}; }}
QFrame#transport QComboBox, QFrame#transport QLineEdit {{ background: #13233f;
    color: {theme.TEXT}; border: 2px solid {theme.PANEL_EDGE}; border-radius: 8px;
    padding: 2px 10px; }}
QFrame#transport QLineEdit:focus, QFrame#transport QComboBox:hover {{
    border-color: {theme.ACCENT}; }}
QFrame#transport QComboBox::drop-down {{ border: none; width: 30px; }}
QFrame#transport QComboBox::down-arrow {{ image: none; }}
QFrame#transport QComboBox QAbstractItemView {{ background: {theme.PANEL}; color: {theme.TEXT};
    selection-background-color: #1e3a64; }}
"""


class SpeedBox(QComboBox):
    """The speed list, with an arrow big enough to see (a style-sheeted box draws none)."""

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        p.setPen(Qt.NoPen)
        p.setBrush(QColor(theme.TEXT))
        x, y = self.width() - 26, self.height() / 2 - 4
        p.drawPolygon(QPolygonF([QPointF(x, y), QPointF(x + 16, y), QPointF(x + 8, y + 9)]))
        p.end()


class TransportBar(QFrame):
    def __init__(self, replay, bridge, lang: str = "zh", parent=None):
        super().__init__(parent)
        self.replay, self.lang = replay, lang
        self.control = control_for(replay, bridge, lang)
        self.header_clock = None          # the window's header clock, kept to this bar's time
        self.setObjectName("transport")
        self.setStyleSheet(BAR_STYLE)
        self.setFixedHeight(BAR_HEIGHT)
        self.setToolTip(tr("tp.keys", lang))
        c = self.control
        lay = QHBoxLayout(self)
        lay.setContentsMargins(20, 8, 16, 8)
        lay.setSpacing(18)
        # The replay's time, large, and its pace.
        clock = QVBoxLayout()
        clock.setSpacing(0)
        self.time = QLabel("--:--:--")
        self.time.setFont(theme.font(54, bold=True, mono_digits=True))
        self.pace = QLabel("")
        self.pace.setFont(theme.font(26, bold=True))
        self.pace.setStyleSheet(f"color: {theme.ACCENT}; background: transparent;")
        clock.addStretch(1)
        clock.addWidget(self.time)
        clock.addWidget(self.pace)
        clock.addStretch(1)
        lay.addLayout(clock)
        # Two rows of big buttons.
        keys = QVBoxLayout()
        keys.setSpacing(10)
        self.back = _button(tr("tp.back", lang), "←", lambda: c.step(-1))
        self.play = _button(tr("tp.play", lang), tr("tp.keys", lang), c.toggle_play, 170)
        self.play.setObjectName("play")
        self.fwd = _button(tr("tp.fwd", lang), "→", lambda: c.step(+1))
        self.speed = SpeedBox()
        self.speed.setFont(theme.font(24, bold=True))
        self.speed.view().setFont(theme.font(24))
        self.speed.setMinimumSize(130, 56)
        self.speed.setFocusPolicy(Qt.NoFocus)
        self.speed.setToolTip("[ ]")
        for s in c.speeds:
            self.speed.addItem(f"×{s:g}", s)
        self.speed.currentIndexChanged.connect(lambda i: c.set_speed(self.speed.itemData(i)))
        self.when = QLineEdit()
        self.when.setFont(theme.font(26, mono_digits=True))
        self.when.setPlaceholderText(tr("tp.time_hint", lang))
        self.when.setFixedSize(150, 56)
        self.when.setFocusPolicy(Qt.ClickFocus)
        self.when.setToolTip("J")
        self.when.returnPressed.connect(self.jump)
        self.when.textChanged.connect(lambda _: self.show_allowed())
        self.go = _button(tr("tp.go", lang), "Enter", self.jump, 100)
        self.set_a = _button(tr("tp.loop_a", lang), "", c.set_a)
        self.set_b = _button(tr("tp.loop_b", lang), "", c.set_b)
        self.unloop = _button(tr("tp.loop_clear", lang), "", c.clear_loop)
        # Each control the mode may forbid: the refusal that disables it, its usual tooltip.
        self.forbiddable = {self.back: ("back", "←"),
                            self.play: ("play", tr("tp.keys", lang)),
                            self.set_a: ("loop", ""), self.set_b: ("loop", ""),
                            self.unloop: ("loop", "")}
        for row in ((self.back, self.play, self.fwd, self.speed),
                    (self.when, self.go, self.set_a, self.set_b, self.unloop)):
            line = QHBoxLayout()
            line.setSpacing(10)
            for w in row:
                line.addWidget(w)
            keys.addLayout(line)
        lay.addLayout(keys)
        # The timeline, with its key, the loop and any notice above it.
        right = QVBoxLayout()
        right.setSpacing(2)
        top = QHBoxLayout()
        top.setSpacing(18)
        self.legend = QLabel(legend_html(lang))
        self.legend.setFont(theme.font(19))
        self.legend.setStyleSheet(f"color: {theme.MUTED}; background: transparent;")
        self.loop_label = QLabel("")
        self.loop_label.setFont(theme.font(20, bold=True))
        self.loop_label.setStyleSheet(f"color: {theme.ACCENT}; background: transparent;")
        self.notice = QLabel("")
        self.notice.setFont(theme.font(20, bold=True))
        self.notice.setTextFormat(Qt.PlainText)
        self.notice.setAlignment(Qt.AlignLeft | Qt.AlignVCenter)
        self.notice.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        top.addWidget(self.legend)
        top.addWidget(self.loop_label)
        top.addWidget(self.notice, 1)
        right.addLayout(top)
        self.timeline = Timeline(replay.start_ms, replay.end_ms, lang)
        self.timeline.seek_requested.connect(c.seek)
        self.timeline.loop_requested.connect(c.set_loop)
        right.addWidget(self.timeline, 1)
        lay.addLayout(right, 1)
        c.changed.connect(self.refresh)
        c.marks_ready.connect(self.show_marks)
        self.show_marks()
        self.refresh()

    def jump(self) -> None:
        if self.control.jump(self.when.text()):
            self.when.clear()
            self.when.clearFocus()            # Space is play/pause again

    def show_marks(self) -> None:
        if self.control.marks is not None:
            self.timeline.set_marks(self.control.marks)
            self.legend.setText(legend_html(self.lang))
        elif not self.control.marks_problem:
            self.legend.setText(tr("tp.counting", self.lang))

    def follow_header(self, header) -> None:
        """Keep ``header``'s clock and this bar's time one reading: redrawn together on every
        refresh of the bar, and again after the header's own redraw on the bridge's tick."""
        self.header_clock = header.clock
        self.control.acted.connect(header.refresh)   # the banner's ×8 or pause at once
        self.control.bridge.tick.connect(self.refresh)
        self.refresh()

    def show_allowed(self) -> None:
        """Disable what the mode forbids, the reason in its tooltip; Go only for a time that
        can be gone to (else why not, in its tooltip, and the field framed red)."""
        c = self.control
        for button, (action, tip) in self.forbiddable.items():
            why = c.refusal(action)
            button.setEnabled(not why)
            button.setToolTip(why or tip)
        text = self.when.text()
        problem = c.jump_problem(text)[1] if text.strip() else tr("tp.type_time", self.lang)
        self.go.setEnabled(not problem)
        self.go.setToolTip(problem or "Enter")
        bad = bool(text.strip() and problem)
        if self.when.property("bad") != bad:
            self.when.setProperty("bad", bad)
            self.when.setToolTip(problem if bad else "J")
            self.when.style().unpolish(self.when)
            self.when.style().polish(self.when)
        elif bad:
            self.when.setToolTip(problem)
        self.timeline.set_forward_only(c.refusal("back"))

    def refresh(self) -> None:
        """Redraw from the replay (its clock and loop) and the shared controller."""
        r, c = self.replay, self.control
        clock = self.header_clock
        if clock is not None and shiboken6.isValid(clock):
            clock.refresh()                          # the header reads the situation's clock …
            self.time.setText(clock.time.text())     # … and this bar shows that very reading
        else:
            self.time.setText(hhmm(r.clock.now_ms(), seconds=True))
        now = r.clock.now_ms()
        if r.ended:
            pace = tr("tp.ended", self.lang)
        elif r.paused:
            pace = f"{tr('tp.paused', self.lang)}  ×{r.clock.speed:g}"
        else:
            pace = f"▶ ×{r.clock.speed:g}"
        self.pace.setText(pace)
        self.play.setText(tr("tp.play" if r.paused else "tp.pause", self.lang))
        i = self.speed.findData(float(r.clock.speed))
        self.speed.blockSignals(True)           # showing the speed is not choosing it
        if i < 0:                               # set from elsewhere: still shown as it is
            self.speed.addItem(f"×{r.clock.speed:g}", float(r.clock.speed))
            i = self.speed.count() - 1
        self.speed.setCurrentIndex(i)
        self.speed.blockSignals(False)
        if r.loop is not None:
            self.loop_label.setText(tr("tp.loop", self.lang, a=hhmm(r.loop[0], True),
                                       b=hhmm(r.loop[1], True)))
        elif c.loop_a is not None:
            self.loop_label.setText(tr("tp.loop_a_at", self.lang, a=hhmm(c.loop_a, True)))
        else:
            self.loop_label.setText("")
        text, colour = c.notice_text()
        self.legend.setVisible(not text)        # a notice needs the room more than the key
        self.notice.setToolTip(text)
        self.notice.setStyleSheet(f"color: {colour}; background: transparent;")
        self.notice.setText(self.notice.fontMetrics().elidedText(
            text, Qt.ElideRight, max(80, self.notice.width())))
        self.show_allowed()
        self.timeline.show_time(now, r.loop, c.loop_a)


# ---- on every window -----------------------------------------------------------------------------
def shortcuts(window, bar: TransportBar) -> list[QShortcut]:
    """The transport's keys on one window: Space, ←/→, [ ], J."""
    c = bar.control
    keys = ((Qt.Key_Space, c.toggle_play), (Qt.Key_Left, lambda: c.step(-1)),
            (Qt.Key_Right, lambda: c.step(+1)), (Qt.Key_BracketLeft, lambda: c.faster(-1)),
            (Qt.Key_BracketRight, lambda: c.faster(+1)),
            (Qt.Key_J, lambda: bar.when.setFocus(Qt.ShortcutFocusReason)))
    return [QShortcut(QKeySequence(key), window, slot) for key, slot in keys]


def attach_transport(windows, replay, bridge, lang: str = "zh") -> list[TransportBar]:
    """A bar at the bottom of every window that has none yet: a wall window's own box layout
    (under its grid), or the console's bottom toolbar area (the full width, under the docks).
    Call again after ``Wall.relaid``: the new windows get theirs."""
    bars = []
    for w in windows:
        for panel in getattr(w, "panels", ()):          # the trainee's orders: the exercise's
            if panel.name == "training_log":
                panel.exercise = getattr(replay, "exercise", None)
                panel.dirty = True
        old = getattr(w, "transport", None)
        if old is not None and shiboken6.isValid(old):
            continue
        bar = TransportBar(replay, bridge, lang)
        if isinstance(w, QMainWindow):
            holder = QToolBar("transport", w)
            holder.setObjectName("transport")
            holder.setMovable(False)
            holder.setFloatable(False)
            holder.toggleViewAction().setVisible(False)   # not closable by mistake
            holder.addWidget(bar)
            w.addToolBar(Qt.BottomToolBarArea, holder)
        else:
            lay = w.layout()
            if not isinstance(lay, QBoxLayout):
                raise TypeError(f"{type(w).__name__}: no box layout to put the transport in")
            lay.addWidget(bar)
        w.transport = bar
        w.transport_keys = shortcuts(w, bar)
        header = getattr(w, "header", None)
        if header is not None:          # one clock on screen; the banner's pace at once
            bar.follow_header(header)
        bars.append(bar)
    return bars

"""The replay's transport bar, at the bottom of every window: play/pause, speed, a minute back
or on, jump to a time, loop a range, and the timeline of the whole recording.

Every bar drives the one replay through one shared ``ReplayControl`` (``ui.replay_control``)
and redraws from the replay itself (its clock, its loop), never from a copy, so bars on five
screens always agree: an action on any bar (or its keys) tells them all through
``ReplayControl.changed``. A seek is followed by ``bridge.show(change)`` so every panel
redraws the rebuilt situation.

One clock on screen: on a window with a header the bar shows no time of its own (only the
pace, "▶ ×16") and redraws the header's clock with every refresh (four times a second, on
every action and on the bridge's tick), so the header's clock is the replay's, never late.
A bar without a header (a console's) shows the time itself.

What the mode forbids is disabled, its reason in the tooltip (``ReplayControl.refusal``): in
training, a minute back, the loop's A/B/✕, a jump to an earlier time, the timeline's past and
playing again at the end. Bad input — a time that is not a time, a time outside the recording,
a loop under a second, a trainee stepping back by key — is said on the bars and nothing
changes.
"""
from __future__ import annotations

import shiboken6
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QKeySequence, QPainter, QPolygonF, QShortcut
from PySide6.QtWidgets import (QBoxLayout, QComboBox, QFrame, QHBoxLayout, QLabel,
                               QLineEdit, QMainWindow, QPushButton, QSizePolicy, QToolBar,
                               QVBoxLayout)

from ui.replay_control import (INDEX_MESSAGES, INDEX_MS, NOTICE_MS,  # noqa: F401 (re-exported)
                               REFRESH_MS, ReplayControl, control_for, jump_target)
from widgets import theme
from widgets.i18n import tr
from widgets.timeline import Timeline, hhmm, legend_html

BAR_HEIGHT = 176


# ---- the bar -------------------------------------------------------------------------------------
def _button(text: str, tip: str, slot, min_w: int = 120) -> QPushButton:
    b = QPushButton(text)
    b.setFont(theme.font(24, bold=True))
    b.setMinimumSize(min_w, 56)
    b.setToolTip(tip)
    b.setFocusPolicy(Qt.NoFocus)          # Space stays play/pause, never "press the button"
    b.clicked.connect(lambda _=False: slot())
    return b


def bar_style() -> str:
    """The bar's style sheet in the palette in use."""
    return f"""
QFrame#transport {{ background: {theme.HEADER}; border-top: 2px solid {theme.PANEL_EDGE}; }}
QFrame#transport QLabel {{ background: transparent; }}
QFrame#transport QPushButton {{ background: {theme.BUTTON}; color: {theme.TEXT};
    border: 2px solid {theme.PANEL_EDGE}; border-radius: 8px; padding: 2px 14px; }}
QFrame#transport QPushButton:hover {{ border-color: {theme.ACCENT}; }}
QFrame#transport QPushButton:pressed {{ background: {theme.SELECTION}; }}
QFrame#transport QPushButton#play {{ background: {theme.ACCENT}; color: {theme.BG};
    border-color: {theme.ACCENT}; }}
QFrame#transport QPushButton:disabled, QFrame#transport QPushButton#play:disabled {{
    background: transparent; color: {theme.DIM}; border: 2px dashed {theme.DIM}; }}
QFrame#transport QLineEdit[bad="true"] {{ border-color: {theme.ALARM}; }}
QFrame#transport QComboBox, QFrame#transport QLineEdit {{ background: {theme.BUTTON};
    color: {theme.TEXT}; border: 2px solid {theme.PANEL_EDGE}; border-radius: 8px;
    padding: 2px 10px; }}
QFrame#transport QLineEdit:focus, QFrame#transport QComboBox:hover {{
    border-color: {theme.ACCENT}; }}
QFrame#transport QComboBox::drop-down {{ border: none; width: 30px; }}
QFrame#transport QComboBox::down-arrow {{ image: none; }}
QFrame#transport QComboBox QAbstractItemView {{ background: {theme.PANEL}; color: {theme.TEXT};
    selection-background-color: {theme.SELECTION}; }}
"""


BAR_STYLE = bar_style()         # the day's; a bar is dressed in the palette in use


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
        self.setStyleSheet(bar_style())
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
        self.time.hide()                             # one clock on screen: the header's
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
            clock.refresh()                          # the header's clock is the one on screen
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

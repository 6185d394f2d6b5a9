"""Rotating layout cells and the idle pointer they watch: a cell showing several panels in
turn (``Rotation``), held while someone has the mouse on its window (``IdlePointer``)."""
from __future__ import annotations

import shiboken6
from PySide6.QtCore import QObject, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import QApplication, QLabel, QStackedLayout, QWidget

from widgets import theme
from widgets.i18n import tr

IDLE_CURSOR_MS = 5_000      # the pointer hides after this long without moving
ROTATE_PAUSE_MS = 30_000   # a touch of the mouse over a window holds its rotations this long


class IdlePointer(QObject):
    """Hides the mouse pointer over the wall after a few idle seconds; a touch brings it back.
    It watches where the pointer is twice a second rather than filtering every event of the
    application: a Python filter on all events crashes beside QtWebEngine."""

    POLL_MS = 500
    polled = Signal()

    def __init__(self, app: QApplication):
        super().__init__(app)
        self.hidden = False
        self.still_ms = 0
        self.touched_ms = float("inf")          # since the last touch; none yet at start
        self.last = QCursor.pos()
        self.timer = QTimer(self)
        self.timer.setInterval(self.POLL_MS)
        self.timer.timeout.connect(self.poll)
        self.timer.start()

    def poll(self, pos=None) -> None:
        pos = QCursor.pos() if pos is None else pos
        if pos != self.last:                       # a touch of the mouse
            self.last, self.still_ms, self.touched_ms = pos, 0, 0
            if self.hidden:
                QApplication.restoreOverrideCursor()
                self.hidden = False
        else:
            self.still_ms += self.POLL_MS
            self.touched_ms += self.POLL_MS
            if self.still_ms >= IDLE_CURSOR_MS and not self.hidden:
                QApplication.setOverrideCursor(Qt.BlankCursor)
                self.hidden = True
        self.polled.emit()

    def touching(self, window: QWidget) -> bool:
        """Someone has the mouse on this window: it moved there in the last few seconds."""
        return (self.touched_ms < ROTATE_PAUSE_MS
                and window.frameGeometry().contains(self.last))


_idle_pointer: IdlePointer | None = None


def idle_pointer() -> IdlePointer:
    global _idle_pointer
    if _idle_pointer is None:
        _idle_pointer = IdlePointer(QApplication.instance())
    return _idle_pointer


class Rotation(QWidget):
    """A layout cell showing its panels in turn, each for ``every`` seconds (engine.Cell
    ``then``/``every``): presentation pacing in real seconds, not the situation's time. A
    touch of the mouse over the window holds it (``IdlePointer.touching``: a poll, not an
    event filter); a small mark in the corner says which page is up, and when it is held."""

    def __init__(self, panels: list, every_s: float, lang: str, parent=None):
        super().__init__(parent)
        self.panels, self.lang, self.index = panels, lang, 0
        self.stack = QStackedLayout(self)
        self.stack.setContentsMargins(0, 0, 0, 0)
        for p in panels:
            self.stack.addWidget(p)
        self.mark = QLabel(self)
        self.mark.setFont(theme.font(20, bold=True, mono_digits=True))
        self.mark.setStyleSheet(f"color: {theme.TEXT}; background: {theme.PANEL_EDGE};"
                                " border-radius: 4px; padding: 2px 8px;")
        self.timer = QTimer(self)
        self.timer.setInterval(int(every_s * 1000))
        self.timer.timeout.connect(self.step)
        self.timer.start()
        idle_pointer().polled.connect(self.show_mark)
        self.show_mark()

    def held(self) -> bool:
        return idle_pointer().touching(self.window())

    def step(self) -> None:
        """The timer's beat: the next page, unless someone is at the screen."""
        if not self.held():
            self.show_page((self.index + 1) % len(self.panels))
        self.show_mark()

    def show_page(self, index: int) -> None:
        self.index = index
        self.stack.setCurrentIndex(index)
        panel = self.panels[index]
        if panel.dirty:                     # it was not redrawn while it waited its turn
            panel.refresh()
        self.show_mark()

    def current(self):
        return self.panels[self.index]

    def show_mark(self) -> None:
        if not shiboken6.isValid(self.mark):
            return
        page = f"{self.index + 1}/{len(self.panels)}"
        self.mark.setText(f"{tr('rotation.paused', self.lang)} {page}" if self.held() else page)
        self.mark.adjustSize()
        self.place_mark()

    def place_mark(self) -> None:
        # In the page's title line, just after its title: the gap between the title and the
        # summary, kept free for it (Panel.head_reserve), so it covers no column, row or
        # figure. A page without a title line: bottom right, clear of the frame.
        panel = self.current()
        title = getattr(panel, "title", None)
        gap = 14
        if title is not None and hasattr(panel, "fit_head") and title.isVisibleTo(panel):
            want = self.mark.width() + 2 * gap
            if panel.head_reserve != want:
                panel.head_reserve = want
                panel.fit_head()
            at = title.mapTo(self, QPoint(title.sizeHint().width() + gap,
                                          (title.height() - self.mark.height()) // 2))
            self.mark.move(at)
        else:
            self.mark.move(self.width() - self.mark.width() - 16,
                           self.height() - self.mark.height() - 14)
        self.mark.raise_()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.place_mark()

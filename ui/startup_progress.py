"""The windowed start's progress line (issue #18): while the wall is being built, one window in
the middle of the main screen says what is loading — the demo city, a recording, the case
history, the wall and its map — instead of a blank screen. It appears only once the start has
taken half a second (``feeds.startup``'s age of the process), follows every stage the start
reaches (``STARTUP.stage``), and closes when the wall is up. Type at the wall's sizes for a
1080p screen (``widgets.theme``), scaled to the screen like the wall's, so it reads from the
room."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QLabel, QVBoxLayout, QWidget

from feeds.startup import STARTUP
from widgets import theme
from widgets.i18n import tr

SHOW_AFTER_S = 0.5
TITLE_PX, LINE_PX = 44, 34        # 1080p sizes: legible from 4 m on a 55-inch screen


class StartupProgress(QWidget):
    def __init__(self, lang: str = "zh"):
        super().__init__(None, Qt.WindowType.SplashScreen | Qt.WindowType.FramelessWindowHint)
        self.lang = lang
        self.setObjectName("startupProgress")
        screen = QGuiApplication.primaryScreen()
        scale = theme.screen_scale(screen)
        self.title = QLabel(tr("startup.title", lang))
        self.title.setFont(theme.font(round(TITLE_PX * scale), bold=True))
        self.title.setStyleSheet(f"color: {theme.ACCENT};")
        self.line = QLabel("")
        self.line.setFont(theme.font(round(LINE_PX * scale)))
        self.line.setStyleSheet(f"color: {theme.TEXT};")
        box = QVBoxLayout(self)
        box.setContentsMargins(round(48 * scale), round(36 * scale), round(48 * scale),
                               round(36 * scale))
        box.setSpacing(round(18 * scale))
        box.addWidget(self.title)
        box.addWidget(self.line)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(f"QWidget#startupProgress {{ background: {theme.PANEL}; "
                           f"border: 2px solid {theme.PANEL_EDGE}; }}")
        self._screen = screen

    def say(self, stage: str) -> None:
        """The stage the start is at now; shown once the start has taken half a second."""
        self.line.setText(tr(f"startup.{stage}", self.lang))
        if not self.isVisible() and STARTUP.age() < SHOW_AFTER_S:
            return
        self.adjustSize()                      # a longer line: wider, still centred
        if self._screen is not None:
            self.move(self._screen.geometry().center() - self.rect().center())
        self.show()
        QApplication.processEvents()           # paint it now: the next stage blocks

    def done(self) -> None:
        if STARTUP.listener == self.say:
            STARTUP.listener = None
        self.close()
        self.deleteLater()


_shown: StartupProgress | None = None


def start_progress(lang: str) -> StartupProgress:
    """The progress line, listening to the start's stages from now on."""
    global _shown
    progress = _shown = StartupProgress(lang)
    STARTUP.listener = progress.say
    return progress


def finish_progress() -> None:
    """The wall is up (or the start failed): the progress line goes, if there is one."""
    global _shown
    if _shown is not None:
        _shown.done()
        _shown = None
    STARTUP.listener = None

"""The order toast: every order this console sends is said, large, on the window it came from —
"已发送 东城-巡03 → C-123", then "已受理", "未接受：<reason>" or "未确认" — over the panels, bottom
centre, for a few seconds of the situation's clock after the answer. Not modal: clicks go
through it and it never takes the focus. ``ui.dispatch`` makes them and moves them on; this
module only draws.
"""
from __future__ import annotations

import re

import shiboken6
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QFrame, QVBoxLayout, QWidget

from widgets import theme
from widgets.i18n import tr

TOAST_PX = 30                   # read from 4 m: at least 28 px
ACCEPTED_MS = 6_000             # an accepted order's toast stays this long after the answer
ALARM_MS = 15_000               # a refusal or no answer, longer: someone has to act on it
MARGIN = 28                     # from the window's bottom edge


def toast_words(order, callsign: str, lang: str) -> tuple[str, str, str]:
    """(headline, status, colour) for an order as it stands now."""
    if order.kind == "recall":
        head = tr("dsp.sent_recall", lang, unit=callsign, case=order.case_id or "—")
    else:
        head = tr("dsp.sent", lang, unit=callsign, case=order.case_id or "—")
    if order.state in ("acked", "done"):
        return head, tr("dsp.accepted", lang), theme.READY
    if order.state == "rejected":
        return head, tr("dsp.refused", lang, reason=reason_in(order.reason, lang)), \
            theme.ALARM
    if order.state == "unconfirmed":
        return head, tr("dsp.unconfirmed", lang), theme.ALARM
    if order.resent:
        return head, tr("dsp.resent", lang, n=order.resent), theme.BUSY
    return head, tr("dsp.waiting", lang), theme.BUSY


_BILINGUAL = re.compile(r"^[a-z_]+: (?P<en>.+) / (?P<zh>[^/]+)$", re.S)


def reason_in(reason: str | None, lang: str) -> str:
    """The service's reason ("unit_assigned: … is already working case C1 / … 已派往案件 C1")
    in the wall's language only; any other text as it came."""
    m = _BILINGUAL.match(reason or "")
    if m is None:
        return reason or "?"
    return m.group("zh" if lang == "zh" else "en").strip()


def shown_for_ms(state: str) -> int | None:
    """How long a toast stays once the order is answered; None while it waits."""
    if state in ("acked", "done"):
        return ACCEPTED_MS
    if state in ("rejected", "unconfirmed"):
        return ALARM_MS
    return None


class OrderToast(QFrame):
    """One order's two lines, in a frame the colour of its outcome."""

    def __init__(self, order_id: str, parent=None):
        super().__init__(parent)
        self.order_id = order_id
        self.until: int | None = None       # situation ms; None while the order waits
        self.setObjectName("orderToast")
        self.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.setFocusPolicy(Qt.NoFocus)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(28, 16, 28, 16)
        lay.setSpacing(6)
        self.head = theme.label("", TOAST_PX, theme.TEXT, True, Qt.AlignCenter)
        self.status = theme.label("", TOAST_PX, theme.ACCENT, True, Qt.AlignCenter)
        self.status.setWordWrap(True)       # a long reason wraps, never runs off the screen
        lay.addWidget(self.head)
        lay.addWidget(self.status)
        self._colour = None

    def show_words(self, head: str, status: str, colour: str) -> bool:
        """True when something changed."""
        if (head, status, colour) == (self.head.text(), self.status.text(), self._colour):
            return False
        self.head.setText(head)
        self.status.setText(status)
        if colour != self._colour:
            self._colour = colour
            self.status.setStyleSheet(f"color: {colour}; background: transparent;")
            self.setStyleSheet(f"QFrame#orderToast {{ background: {theme.HEADER};"
                               f" border: 4px solid {colour}; border-radius: 10px; }}")
        return True

    def text(self) -> str:
        return f"{self.head.text()} · {self.status.text()}"

    def wanted_width(self) -> int:
        m = self.layout().contentsMargins()
        return max(lab.fontMetrics().horizontalAdvance(lab.text())
                   for lab in (self.head, self.status)) + m.left() + m.right() + 16


class ToastStack(QWidget):
    """A window's toasts, newest at the bottom, over its panels; clicks pass through."""

    def __init__(self, window: QWidget):
        super().__init__(window)
        self.setObjectName("orderToasts")
        self.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WA_TranslucentBackground)
        self.setStyleSheet("background: transparent;")
        self.setFocusPolicy(Qt.NoFocus)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(12)
        self.toasts: list[OrderToast] = []
        self._follow = _Resized(self.place, self)     # goes with the stack
        window.installEventFilter(self._follow)
        self.hide()

    @staticmethod
    def of(window: QWidget, create: bool = True) -> "ToastStack | None":
        stack = window.findChild(ToastStack, "orderToasts", Qt.FindDirectChildrenOnly)
        if stack is None and create:
            stack = ToastStack(window)
        return stack

    def add(self, toast: OrderToast) -> None:
        toast.setParent(self)
        self.toasts.append(toast)
        self.layout().addWidget(toast)
        toast.show()
        self.place()

    def remove(self, toast: OrderToast) -> None:
        if toast in self.toasts:
            self.toasts.remove(toast)
            self.layout().removeWidget(toast)
            toast.hide()
            toast.deleteLater()
        self.place()

    def place(self) -> None:
        window = self.parentWidget()
        if not self.toasts or window is None:
            self.hide()
            return
        width = min(window.width() - 2 * MARGIN,
                    max(max(t.wanted_width() for t in self.toasts), window.width() // 3))
        lay = self.layout()
        lay.activate()
        height = lay.heightForWidth(width) if lay.hasHeightForWidth() else \
            lay.sizeHint().height()
        height = min(height, window.height() - 2 * MARGIN)
        self.setGeometry((window.width() - width) // 2, window.height() - MARGIN - height,
                         width, height)
        self.show()
        self.raise_()


class _Resized(QObject):
    """Calls back when the watched window changes size."""

    def __init__(self, callback, parent):
        super().__init__(parent)
        self.callback = callback

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Resize and shiboken6.isValid(obj):
            self.callback()
        return False

"""Orders from this console: the glue between what a commander does (a drop, a key, a menu)
and the dispatch client in ``feeds/``. Commands go ui → feeds; the outcome comes back twice —
the service's reply and, for an accepted order, the case and unit records on the feed — and an
order stays pending until both are in.

The orders this console sent are console state, not the city's: they live here, and panels ask
``orders_for_case`` / ``order_for_unit`` to mark what is pending.

So does this seat's role. With keys, the dispatch service says in its snapshot reply what the
console's key may do (``client.role``, ``client.districts``): a viewer looks only; a dispatcher
orders within its districts; a commander (and a trainer) everywhere. ``refusal()`` says why a
gesture is not this seat's — panels ask it through the callable they are given, the header
shows ``role_now()`` — and ``dispatch``/``recall`` refuse locally, saying why, before anything
is sent (the service refuses too: this is the commander's warning, not the guard). Without a
role (no keys, the demo) every gesture is allowed, as before.

A gesture (a drop on the queue, the roster or the map; the D picker's choice) goes through
``ask_dispatch``: the role first, then a sanity check — a unit further than ``confirm_km``
(``CONFIRM_KM`` unless told) or of another district than the case's is not sent but asked
about, on the window it came from, with the nearest available unit instead
(``ui/confirm_dispatch.py``). ``dispatch`` itself sends at once (a confirmed question, code).
Every order sent from a window is said there, large, until answered and a few seconds after
(``ui/order_toast.py``); all of it on the situation's clock.
"""
from __future__ import annotations

from dataclasses import dataclass

import shiboken6
from PySide6.QtCore import QObject, QTimer, Signal

from situation.catalog import district_name
from situation.store import Situation
from situation.suggest import alternative, concern, nearest_available
from widgets.i18n import tr

POLL_MS = 20
CONFIRM_KM = 10.0           # a unit dropped further than this from the case: asked first
CONFIRM_MS = 120_000        # a question or picker nobody answers is put away (nothing sent)
PICK_N = 3                  # units offered by the D picker


@dataclass
class Order:
    order_id: str
    kind: str                   # dispatch | recall
    case_id: str | None
    unit_id: str
    state: str = "pending"      # pending → acked → done | rejected | unconfirmed
    reason: str | None = None
    resent: int = 0
    sent_ms: int = 0            # by the situation's clock
    answered_ms: int | None = None


class DispatchController(QObject):
    changed = Signal()                  # an order moved on: panels redraw their marks
    said = Signal(str, bool)            # a line for the commander; True for an alarm

    def __init__(self, situation: Situation, client, lang: str = "zh", parent=None, *,
                 confirm_km: float = CONFIRM_KM):
        super().__init__(parent)
        self.situation, self.client, self.lang = situation, client, lang
        self.confirm_km = confirm_km
        self.question = None                # the ConfirmDispatch on show, at most one
        self.picker = None                  # the UnitPicker on show, at most one
        self._card_until = 0                # when they are put away unanswered
        self.toasts: dict[str, object] = {}     # order id → its OrderToast
        self.orders: dict[str, Order] = {}
        self.role: str | None = None
        self.districts: tuple[str, ...] = ()     # as the service named them
        self._adcodes: frozenset[str] = frozenset()
        self.refused: list[tuple[str, str | None, str | None, str]] = []   # refused here
        self.learn_role()
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.poll)
        self._timer.start()

    def stop(self) -> None:
        """Before the client closes: nothing polls a closed socket."""
        self._timer.stop()

    # ---- the seat's role ---------------------------------------------------------------------
    def learn_role(self) -> bool:
        """Take the role the service gave (after a snapshot); True when it changed."""
        role = getattr(self.client, "role", None)
        districts = tuple(getattr(self.client, "districts", None) or ())
        if (role, districts) == (self.role, self.districts):
            return False
        self.role, self.districts = role, districts
        self._adcodes = frozenset(filter(None, (adcode_of(d) for d in districts)))
        return True

    def role_now(self) -> tuple[str | None, tuple[str, ...]]:
        return self.role, self.districts

    def refusal(self, action: str, case_id: str | None = None,
                unit_id: str | None = None) -> str | None:
        """Why this seat may not ``action`` ("dispatch", "recall") — this case, this unit, or
        at all when neither is given — or None when it may. As the service judges
        (feeds/roles.py): a dispatcher's case and unit must both lie in its districts."""
        if self.role == "viewer":
            return tr("deny.viewer", self.lang)
        if self.role == "trainer":
            return tr("deny.trainer", self.lang)
        if self.role != "dispatcher" or not self._adcodes:
            return None                 # commander, no role: the service decides
        st = self.situation
        unit = st.units.get(unit_id) if unit_id else None
        if action == "recall":
            case = st.cases.get(unit.case_id) if unit is not None and unit.case_id else None
        else:
            case = st.cases.get(case_id) if case_id else None
        mine = " ".join(district_name(d, self.lang) for d in sorted(self._adcodes))
        for what, where in ((case_id or (case.case_id if case else None),
                             case.district if case is not None else None),
                            (unit.callsign if unit is not None else unit_id,
                             st.locator.locate(unit.lon, unit.lat) if unit is not None
                             else None)):
            if where is not None and where not in self._adcodes:   # unknown: the service
                return tr("deny.district", self.lang, what=what,
                          district=district_name(where, self.lang), mine=mine,
                          act=tr(f"act.{action}", self.lang))
        return None

    def refuse(self, kind: str, case_id: str | None, unit_id: str | None, why: str) -> None:
        """A gesture this seat does not have: nothing is sent; the header says why."""
        self.refused.append((kind, case_id, unit_id, why))
        del self.refused[:-100]
        self.said.emit(why, True)

    # ---- what the commander does ------------------------------------------------------------
    def ask_dispatch(self, case_id: str, unit_id: str, origin=None) -> str | None:
        """A commander's gesture from ``origin`` (a panel or window): the role first; then a
        unit further than ``confirm_km`` or of another district is asked about on that window
        (the order id comes later, if at all: None now); otherwise sent at once."""
        why = self.refusal("dispatch", case_id, unit_id)
        if why is not None:
            self.refuse("dispatch", case_id, unit_id, why)
            return None
        st = self.situation
        case, unit = st.cases.get(case_id), st.units.get(unit_id)
        window = host_window(origin)
        if case is None or unit is None or window is None:
            return self.dispatch(case_id, unit_id, window)
        limit = self.confirm_km * 1000
        worry = concern(st, case, unit, limit)
        if not worry.ask:
            return self.dispatch(case_id, unit_id, window)
        other = alternative(st, case, unit_id, limit, allowed=lambda u: self.refusal(
            "dispatch", case_id, u) is None)
        from ui.confirm_dispatch import ConfirmDispatch
        self.put_away()
        q = self.question = ConfirmDispatch(window, st, case, unit, worry, other, limit,
                                            self.lang)
        self._card_until = st.now_ms() + CONFIRM_MS
        alt_id = other.unit.unit_id if other is not None else None
        q.answered.connect(lambda what: self._answered(q, what, case_id, unit_id, alt_id,
                                                       window))
        return None

    def _answered(self, q, what: str, case_id: str, unit_id: str, alt_id: str | None,
                  window) -> None:
        if self.question is q:
            self.question = None
        window = window if shiboken6.isValid(window) else None
        if what == "send":
            self.dispatch(case_id, unit_id, window)
        elif what == "alternative" and alt_id is not None:
            self.dispatch(case_id, alt_id, window)

    def pick(self, case_id: str, origin=None) -> None:
        """D on a case: the role first; then the nearest available units, large, on the
        window it came from; the one picked goes through ``ask_dispatch``."""
        why = self.refusal("dispatch", case_id)
        if why is not None:                 # not this seat's: no picker; the header says why
            self.refuse("dispatch", case_id, None, why)
            return
        st = self.situation
        case, window = st.cases.get(case_id), host_window(origin)
        if case is None or window is None:
            return
        limit = self.confirm_km * 1000
        rows = []
        for sug in nearest_available(st, case, n=len(st.units)):
            if self.refusal("dispatch", case_id, sug.unit.unit_id) is None:
                rows.append((sug, concern(st, case, sug.unit, limit)))
                if len(rows) == PICK_N:
                    break
        from ui.confirm_dispatch import UnitPicker
        self.put_away()
        p = self.picker = UnitPicker(window, case, rows, self.lang)
        self._card_until = st.now_ms() + CONFIRM_MS
        p.picked.connect(lambda unit_id: self._picked(p, case_id, unit_id, window))
        p.cancelled.connect(lambda: self._picked(p, case_id, None, window))

    def _picked(self, p, case_id: str, unit_id: str | None, window) -> None:
        if self.picker is p:
            self.picker = None
        if unit_id is not None and shiboken6.isValid(window):
            self.ask_dispatch(case_id, unit_id, window)

    def put_away(self) -> None:
        """The question and the picker on show, unanswered: nothing is sent."""
        for card in (self.question, self.picker):
            if card is not None and shiboken6.isValid(card):
                card.close_card()
        self.question = self.picker = None

    def dispatch(self, case_id: str, unit_id: str, origin=None) -> str | None:
        """Send now (the role still checked): a confirmed question, or code. An ``origin``
        (panel or window) shows the order's toast there."""
        st = self.situation
        case, unit = st.cases.get(case_id), st.units.get(unit_id)
        why = self.refusal("dispatch", case_id, unit_id)
        if why is not None:
            self.refuse("dispatch", case_id, unit_id, why)
            return None
        if case is None or unit is None:
            self.said.emit(tr("order.no_such", self.lang), True)
            return None
        try:
            order_id = self.client.send("dispatch", case_id=case_id, unit_id=unit_id)
        except (PermissionError, ValueError, OSError) as exc:      # training guard, socket
            self.said.emit(str(exc), True)
            return None
        order = self.orders[order_id] = Order(order_id, "dispatch", case_id, unit_id,
                                              sent_ms=st.now_ms())
        self._toast(order, origin)
        self.said.emit(tr("order.waiting", self.lang, unit=unit.callsign, case=case_id),
                       False)
        self.changed.emit()
        return order_id

    def recall(self, unit_id: str, origin=None) -> str | None:
        unit = self.situation.units.get(unit_id)
        if unit is None:
            return None
        why = self.refusal("recall", unit_id=unit_id)
        if why is not None:
            self.refuse("recall", unit.case_id, unit_id, why)
            return None
        try:
            order_id = self.client.send("recall", unit_id=unit_id)
        except (PermissionError, ValueError, OSError) as exc:
            self.said.emit(str(exc), True)
            return None
        order = self.orders[order_id] = Order(order_id, "recall", unit.case_id, unit_id,
                                              sent_ms=self.situation.now_ms())
        self._toast(order, origin)
        self.changed.emit()
        return order_id

    # ---- what comes back -----------------------------------------------------------------------
    def poll(self) -> None:
        moved = False
        for event in self.client.poll():
            moved |= self._event(event)
        moved |= self._settle()
        moved |= self.learn_role()          # a later snapshot may bring another role
        if moved:
            self.changed.emit()
        self._tend()

    # ---- what the commander sees of it: toasts, cards put away ---------------------------------
    def _toast(self, order: Order, origin) -> None:
        window = host_window(origin)
        if window is None:
            return
        from ui.order_toast import OrderToast, ToastStack
        toast = OrderToast(order.order_id)
        self.toasts[order.order_id] = toast
        self._show_toast(toast, order)
        ToastStack.of(window).add(toast)

    def _show_toast(self, toast, order: Order) -> None:
        from ui.order_toast import shown_for_ms, toast_words
        unit = self.situation.units.get(order.unit_id)
        if toast.show_words(*toast_words(order, unit.callsign if unit else order.unit_id,
                                         self.lang)):
            stack = toast.parentWidget()
            if stack is not None and hasattr(stack, "place"):
                stack.place()
        if toast.until is None:
            stay = shown_for_ms(order.state)
            if stay is not None:
                toast.until = self.situation.now_ms() + stay

    def _tend(self) -> None:
        """Toasts follow their orders and go once their time is up; a card nobody answers is
        put away. On the situation's clock."""
        now = self.situation.now_ms()
        for order_id, toast in list(self.toasts.items()):
            order = self.orders.get(order_id)
            if order is None or not shiboken6.isValid(toast):
                del self.toasts[order_id]
                continue
            self._show_toast(toast, order)
            if toast.until is not None and now >= toast.until:
                del self.toasts[order_id]
                stack = toast.parentWidget()
                if stack is not None and hasattr(stack, "remove"):
                    stack.remove(toast)
        if (self.question is not None or self.picker is not None) and now >= self._card_until:
            self.put_away()

    def toast_for(self, order_id: str):
        """The toast on show for an order, or None."""
        toast = self.toasts.get(order_id)
        return toast if toast is not None and shiboken6.isValid(toast) else None

    def _event(self, event) -> bool:
        kind, *rest = event
        if kind == "ack":
            order_id, reply = rest
            order = self.orders.get(order_id)
            if order is None:
                return False
            order.answered_ms = self.situation.now_ms()
            if getattr(reply, "result", None) == "accepted":
                order.state = "acked"
            else:
                order.state, order.reason = "rejected", getattr(reply, "reason", None) or "?"
                unit = self.situation.units.get(order.unit_id)
                who = unit.callsign if unit else order.unit_id
                self.said.emit(tr("order.refused", self.lang, unit=who, case=order.case_id, why=order.reason),
                               True)
            return True
        if kind == "resent":
            order = self.orders.get(rest[0])
            if order is not None:
                order.resent += 1
            return False
        if kind == "unconfirmed":
            order = self.orders.get(rest[0])
            if order is None:
                return False
            order.state = "unconfirmed"
            self.said.emit(tr("order.unconfirmed", self.lang),
                           True)
            return True
        return False

    def _settle(self) -> bool:
        """An accepted order is done once the feed shows what it changed."""
        moved = False
        st = self.situation
        for order in self.orders.values():
            if order.state != "acked":
                continue
            unit = st.units.get(order.unit_id)
            if order.kind == "dispatch":
                case = st.cases.get(order.case_id)
                seen = (case is not None and case.unit_id == order.unit_id
                        and unit is not None and unit.case_id == order.case_id)
            else:
                seen = unit is not None and unit.case_id is None
            if seen:
                order.state = "done"
                moved = True
        return moved

    # ---- what panels ask -----------------------------------------------------------------------
    def open_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.state in ("pending", "acked", "unconfirmed")]

    def order_for_case(self, case_id: str) -> Order | None:
        for o in self.open_orders():
            if o.case_id == case_id:
                return o
        return None

    def order_for_unit(self, unit_id: str) -> Order | None:
        for o in self.open_orders():
            if o.unit_id == unit_id:
                return o
        return None


def host_window(origin):
    """The top-level window a panel (or the window itself) is in; None without one."""
    if origin is None or not shiboken6.isValid(origin):
        return None
    window = origin.window()
    return window if window is not None and shiboken6.isValid(window) else None


def adcode_of(district: str) -> str | None:
    """A district as the service names it — adcode, 东城, 东城区, Dongcheng — as its adcode."""
    from feeds.districts import by_adcode
    table = by_adcode()
    if district in table:
        return district
    for code, d in table.items():
        english = d.name_en.removesuffix(" District")
        if district in (d.short_zh, d.name_zh, d.name_en, english) \
                or district.lower() == english.lower():
            return code
    return None

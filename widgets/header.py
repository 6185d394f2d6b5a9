"""The band across the top of every screen: who we are and in which mode, the key figures,
and the large clock of the situation (Beijing time)."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from situation.catalog import district_name
from situation.store import Change, Situation
from situation.thresholds import ALARM, reading_level
from widgets import theme
from widgets.i18n import tr

CITY_TZ = ZoneInfo("Asia/Shanghai")
REPLAY_MODES = ("REPLAY", "TRAINING")   # the badge is the replay banner: mode, speed, pause
MAX_ROLE_DISTRICTS = 2                  # named on the role badge; the rest counted
MAX_SCOPE_NAMED = 3                     # a district wall's districts named; more are counted
SCOPE_PX = 28                           # the districts badge (1080p px): read from 4 m

# Type sizes on a 1080p screen (logical px), scaled with the screen (``theme.screen_scale``):
# the header's figures are read across the room, the overdue figure most of all.
FIGURE_PX = 64              # open cases, units available, alarms, feeds; the clock's digits
OVERDUE_PX = 88             # the overdue figure: the largest on the wall
FULL_HEIGHT = 140           # the command screen's header
SLIM_HEIGHT = 76            # every other screen's: mode, badges, banner, the clock
OVERDUE_ROSE_MS = 60_000    # a rise in overdue cases is boxed, flashing, this long (situation)


def mode_colour(mode: str) -> str:
    """The mode badge's colour, in the palette in use."""
    return {"LIVE": theme.OK, "DEMO": theme.WARN, "REPLAY": theme.ACCENT,
            "TRAINING": theme.TRAINING}.get(mode, theme.MUTED)


_label = theme.label


def _tight(lab, px: int):
    """A figure's label as tall as its digits need (the font's line box is some 1.45 em with
    a CJK font; digits have no descenders), so large figures do not make the band taller."""
    lab.setFixedHeight(round(px * 1.04))
    return lab


class NameLabel(QLabel):
    """The centre's name, whole or not at all: the full name where it fits, else the short
    one, else nothing (never a name cut mid-word; the figures and the clock come first)."""

    def __init__(self, names: list[str], px: int, colour: str):
        super().__init__(names[0])
        self.names = names
        self.setFont(theme.font(px, bold=True, mono_digits=True))
        self.setStyleSheet(f"color: {colour}; background: transparent;")
        self.setMinimumWidth(1)
        self.setToolTip(names[0])

    def sizeHint(self):
        hint = super().sizeHint()
        hint.setWidth(self.fontMetrics().horizontalAdvance(self.names[-1]) + 4)
        return hint

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        room = self.contentsRect().width()
        fm = self.fontMetrics()
        text = next((n for n in self.names if fm.horizontalAdvance(n) <= room), "")
        if text != self.text():
            self.setText(text)


class GiveWayLabel(QLabel):
    """A line of the header that gives way to the badges, the figures and the clock, never
    cut mid-word: the first of its ``forms`` (longest first) that fits; else, with ``elide``,
    the first form cut at a word boundary with "…" (English: a whole word at least); else
    nothing. Its whole text is always in the tooltip. It asks for the room of its first
    form and takes as little as the layout leaves it (``fill``: asks for none, and takes
    the room its line leaves)."""

    def __init__(self, px: int, colour: str, bold: bool = False, *, elide: bool = False,
                 fill: bool = False):
        self.fill = fill            # asks for no room: takes what its line leaves (stretch)
        self.elide = elide
        self.keep_last = False      # never less than its last form (the districts badge)
        self.forms: list[str] = []
        self.tip = ""
        super().__init__("")
        self.setFont(theme.font(px, bold=bold))
        self.setStyleSheet(f"color: {colour}; background: transparent;")
        self.setAlignment(Qt.AlignLeft | Qt.AlignVCenter)
        self.setIndent(0)           # a framed label (a badge) indents its text by default

    def show_forms(self, forms, tip: str | None = None) -> None:
        """Say ``forms`` (the longest first; an empty list: nothing)."""
        self.forms = [f for f in forms if f]
        self.tip = tip if tip is not None else (self.forms[0] if self.forms else "")
        self.setToolTip(self.tip)
        self.updateGeometry()
        self._fit()

    def need(self, text: str) -> int:
        """The width this label needs to show ``text`` whole (its padding included)."""
        self.ensurePolished()
        pad = self.width() - self.contentsRect().width()
        return self.fontMetrics().horizontalAdvance(text) + pad + 2

    def sizeHint(self):
        hint = super().sizeHint()
        if self.fill:
            hint.setWidth(1)
        elif self.forms:
            hint.setWidth(self.need(self.forms[0]))
        return hint

    def minimumSizeHint(self):
        hint = super().minimumSizeHint()
        hint.setWidth(self.need(self.forms[-1]) if self.keep_last and self.forms else 1)
        return hint

    def event(self, event) -> bool:
        done = super().event(event)
        if event.type() in (QEvent.StyleChange, QEvent.ContentsRectChange, QEvent.FontChange,
                            QEvent.Polish):
            self.updateGeometry()   # its padding came (a style sheet polished): hints anew
            self._fit()
        return done

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._fit()

    def _fit(self) -> None:
        if not self.isVisible():        # not laid out yet: whole, until it has its width
            text = self.forms[0] if self.forms else ""
        else:
            text = fitting(self.forms, self.fontMetrics(), self.contentsRect().width(),
                           self.elide)
        if text != self.text():
            self.setText(text)


def fitting(forms: list[str], fm, room: int, elide: bool = False) -> str:
    """The first of ``forms`` whose advance fits ``room``; else (``elide``) the first form cut
    after its last whole word that fits with "…" (a form with no space: not cut); else ""."""
    for form in forms:
        if fm.horizontalAdvance(form) <= room:
            return form
    if elide and forms:
        words = forms[0].split(" ")
        for n in range(len(words) - 1, 0, -1):
            cut = " ".join(words[:n]).rstrip(" ·:：,，") + "…"
            if fm.horizontalAdvance(cut) <= room:
                return cut
    return ""


class ClockPanel(QWidget):
    """The situation's time, large: every countdown on the wall runs on this clock. Slim (the
    other screens): the date beside the time rather than under it."""
    name = "clock"

    def __init__(self, situation: Situation, lang: str = "zh", mode: str = "LIVE", parent=None,
                 *, scale: float = 1.0, slim: bool = False):
        super().__init__(parent)
        self.situation, self.lang, self.mode = situation, lang, mode
        self.dirty = True
        lay = QHBoxLayout(self) if slim else QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(round(16 * scale) if slim else 0)
        px = round((52 if slim else FIGURE_PX) * scale)
        self.time = _tight(_label("--:--:--", px, theme.TEXT, True,
                                  Qt.AlignRight | Qt.AlignVCenter), px)
        self.date = _label("", round(20 * scale), theme.MUTED, False,
                           Qt.AlignRight | Qt.AlignVCenter)
        if slim:
            self.date.setMinimumWidth(1)    # beside the time: gives way before it does
            lay.addWidget(self.date)
            lay.addWidget(self.time)
        else:
            lay.addWidget(self.time)
            lay.addWidget(self.date)

    def on_changed(self, change: Change) -> None:
        pass

    def refresh(self) -> None:
        now = datetime.fromtimestamp(self.situation.now_ms() / 1000, CITY_TZ)
        self.time.setText(now.strftime("%H:%M:%S"))
        weekday = tr("weekday", self.lang).split()[now.weekday()]
        if self.mode in REPLAY_MODES:     # the pace is on the mode badge; say whose time it is
            self.date.setText(f"{now:%Y-%m-%d} {weekday} · {tr('tp.replay_time', self.lang)}")
        else:
            speed = getattr(self.situation.clock, "speed", 1.0)
            pace = f" · ×{speed:g}" if speed != 1 else ""
            self.date.setText(f"{now:%Y-%m-%d} {weekday} · {tr('beijing_time', self.lang)}"
                              f"{pace}")
        self.dirty = False


class Kpi(QFrame):
    """One key figure over its name. ``boxed``: framed in red and flashing (the overdue
    figure when it rises)."""

    def __init__(self, label: str, px: int = FIGURE_PX, scale: float = 1.0, parent=None):
        super().__init__(parent)
        self.setObjectName("kpi")
        self.px, self.scale = px, scale
        lay = QVBoxLayout(self)
        side = round(14 * scale)
        lay.setContentsMargins(side, 0, side, round(2 * scale))
        lay.setSpacing(0)
        self.value = _tight(_label("—", px, theme.TEXT, True, Qt.AlignCenter), px)
        self.label = _label(label, round(20 * scale), theme.MUTED, False, Qt.AlignCenter)
        lay.addWidget(self.value)
        lay.addWidget(self.label)
        self.boxed, self.lit = False, False
        self._colour = theme.TEXT
        self._look = None
        self.box(False)

    def show_value(self, text: str, colour: str | None = None) -> None:
        self.value.setText(text)
        self._colour = colour or theme.TEXT
        self.box(self.boxed, self.lit)

    def box(self, boxed: bool, lit: bool = False) -> None:
        """Framed in red (``lit``: filled red, the flash's other beat) or plain."""
        self.boxed, self.lit = boxed, lit and boxed
        colour = self._colour
        look = (boxed, self.lit, colour)
        if look == self._look:
            return
        self._look = look
        edge = round(4 * self.scale)
        if boxed:
            fill = theme.ALARM if self.lit else theme.ALARM_BG
            self.setStyleSheet(f"QFrame#kpi {{ background: {fill}; border: {edge}px solid"
                               f" {theme.ALARM}; border-radius: {round(8 * self.scale)}px; }}")
            digits = theme.ON_ALARM if self.lit else colour
            words = theme.ON_ALARM if self.lit else theme.MUTED
        else:       # the same frame, unseen: the figure does not move when it is boxed
            self.setStyleSheet(f"QFrame#kpi {{ background: transparent; border: {edge}px solid"
                               " transparent; }")
            digits, words = colour, theme.MUTED
        self.value.setStyleSheet(f"color: {digits}; background: transparent; border: none;")
        self.label.setStyleSheet(f"color: {words}; background: transparent; border: none;")


class Header(QFrame):
    """The band across the top of a screen. The full one (the command screen, the first): the
    centre's name, the mode and badges, the five key figures and the large clock. ``slim``
    (every other screen): the mode and badges, the screen's title, the fault banner and the
    clock — the red banner and 未加密 are on every screen, so no screen looks healthy while
    another says it is not. ``scale``: the screen's (``theme.screen_scale``), so type has the
    same physical size on a 4K screen as on a 1080p one."""

    def __init__(self, situation: Situation, lang: str, mode: str, screen_title: str = "",
                 parent=None, *, slim: bool = False, scale: float = 1.0):
        super().__init__(parent)
        self.situation, self.lang, self.mode_key = situation, lang, mode
        self.slim, self.scale = slim, scale

        def px(n: float) -> int:
            return round(n * scale)
        self.setObjectName("header")
        self._edge(False)
        self.setFixedHeight(px(SLIM_HEIGHT if slim else FULL_HEIGHT))
        lay = QHBoxLayout(self)
        lay.setContentsMargins(px(24), px(6), px(24), px(6))
        lay.setSpacing(px(8))
        titles = QVBoxLayout()
        titles.setSpacing(px(2))
        # The name gives way before a figure or the clock: whole, short, or not at all.
        self.title = NameLabel([tr("title", lang), tr("title.short", lang)], px(34), theme.TEXT)
        sub = tr("subtitle", lang) + (f" · {screen_title}" if screen_title else "")
        if slim:            # the screen's own title is enough: the centre is on the first screen
            sub = screen_title or tr("subtitle", lang)
        row = QHBoxLayout()
        row.setSpacing(px(12))
        self.mode = _label(f" {tr('mode.' + mode, lang)} ",
                           px(30 if mode in REPLAY_MODES else 22), theme.BG, True)
        self.mode.setStyleSheet(f"color: {theme.BG}; background: {mode_colour(mode)};"
                                f" border-radius: 4px; padding: 1px {px(8)}px;")
        row.addWidget(self.mode)
        # A socket running plain beyond this machine (--insecure): said in red, large, beside
        # the mode, on every screen, for as long as the console runs.
        self.unencrypted = _label(f" {tr('sec.unencrypted', lang)} ", px(30), theme.ON_ALARM,
                                  True)
        self.unencrypted.setStyleSheet(f"color: {theme.ON_ALARM}; background: {theme.ALARM};"
                                       f" border-radius: 4px; padding: 1px {px(10)}px;")
        self.unencrypted.hide()
        row.addWidget(self.unencrypted)
        # This seat's role, from the dispatch service (ui/dispatch.py asks it; we show it).
        self.role = _label("", px(22), theme.TEXT, True)
        self.role.setStyleSheet(f"color: {theme.TEXT}; background: transparent;"
                                f" border: 2px solid {theme.ACCENT}; border-radius: 4px;"
                                f" padding: 0px {px(8)}px;")
        self.role.setToolTip(tr("role.tip", lang))
        self.role.setMinimumWidth(1)        # clipped before the alarms on a crowded header
        self.role.hide()
        self._role_of = None
        row.addWidget(self.role)
        # A district wall (--districts): its districts, on every screen, so no one reads its
        # figures as the whole city's. Read from the situation's scope (situation/scope.py).
        # Never hidden and never cut: its names where they fit, else the count ("辖区：2 个区").
        self.scope_badge = GiveWayLabel(px(SCOPE_PX), theme.TEXT, True)
        self.scope_badge.keep_last = True
        self.scope_badge.setStyleSheet(
            f"color: {theme.TEXT}; background: {theme.PANEL_EDGE}; border: none;"
            f" border-left: {px(6)}px solid {theme.ACCENT}; border-radius: 4px;"
            f" padding: 0px {px(10)}px;")
        self.scope_badge.hide()
        self._scope_shown = None
        row.addWidget(self.scope_badge)
        # Something inside stopped (feeds.faults): said in red, large, on every screen, in
        # place of the subtitle, until the console restarts. Never hidden by a flash.
        self.fault = _label("", px(26), theme.ON_ALARM, True)
        self.fault.setStyleSheet(f"color: {theme.ON_ALARM}; background: {theme.ALARM};"
                                 f" border-radius: 4px; padding: 1px {px(10)}px;")
        self.fault.hide()
        self.fault.setMinimumWidth(px(360))  # a long banner is clipped, never pushes the clock
        self._fault_version = 0
        if slim:        # in the subtitle's place; on the command screen, beside the name
            row.addWidget(self.fault)
        self.message = _label("", px(18 if not slim else 20), theme.OK)
        self.message.setMinimumWidth(1)     # a long flash is clipped (whole in its tooltip)
        self._message_until = 0
        row.addWidget(self.message)
        # The subtitle (the screen's title) last in the line, in the room the badges and a flash
        # leave (a district wall in English has little): whole or not at all, never cut
        # mid-word; whole in its tooltip.
        self.subtitle = GiveWayLabel(px(24 if slim else 22), theme.ACCENT, slim, fill=True)
        self.subtitle.show_forms([sub, screen_title] if screen_title else [sub])
        row.addWidget(self.subtitle, 1)
        row.addStretch(0)               # the room when the subtitle is hidden (a fault)
        if slim:
            self.title.hide()
            titles.addLayout(row)
            lay.addLayout(titles, 1)
        else:
            top = QHBoxLayout()
            top.setSpacing(px(16))
            top.addWidget(self.title, 1)
            top.addWidget(self.fault)
            titles.addStretch(1)
            titles.addLayout(top)
            titles.addLayout(row)
            titles.addStretch(1)
            lay.addLayout(titles, 1)        # all the room the figures and clock leave
        # The key figures, on the command screen only: one header per wall.
        self.kpis: dict[str, Kpi] = {}
        if not slim:
            for k in ("open", "overdue", "available", "alarms", "feeds"):
                size = OVERDUE_PX if k == "overdue" else FIGURE_PX
                self.kpis[k] = Kpi(tr(f"kpi.{k}", lang), px(size), scale)
                lay.addWidget(self.kpis[k], 0, Qt.AlignVCenter)
            lay.addSpacing(px(28))
        self._late_seen: int | None = None      # the overdue count at the last refresh
        self._late_rose_at: int | None = None   # situation ms of its last rise
        self._beat = None                       # the second the flash last turned on
        self.clock = ClockPanel(situation, lang, mode, scale=scale, slim=slim)
        lay.addWidget(self.clock, 0, Qt.AlignVCenter)
        self.show_scope()

    def _edge(self, fault: bool) -> None:
        edge = theme.ALARM if fault else theme.PANEL_EDGE
        width = round((6 if fault else 2) * self.scale)
        self.setStyleSheet(f"QFrame#header {{ background: {theme.HEADER};"
                           f" border-bottom: {width}px solid {edge}; }}")

    def figures(self) -> dict[str, QLabel]:
        """Every figure the header shows, by name: the key figures and the clock's digits."""
        return {**{k: kpi.value for k, kpi in self.kpis.items()}, "clock": self.clock.time}

    def show_security(self, unencrypted: list[str]) -> None:
        """The red 未加密 badge when any of these endpoints runs plain beyond this machine."""
        self.unencrypted.setVisible(bool(unencrypted))
        self.unencrypted.setToolTip(tr("sec.unencrypted_tip", self.lang,
                                       eps=" ".join(unencrypted)) if unencrypted else "")

    def follow_role(self, role_of) -> None:
        """``role_of()`` → (role or None, districts): asked at every refresh."""
        self._role_of = role_of
        self.show_role()

    def show_role(self) -> None:
        role, districts = self._role_of() if self._role_of is not None else (None, ())
        text = role_text(role, districts, self.lang)
        if text != self.role.text().strip():
            self.role.setText(f" {text} " if text else "")
            every = " ".join(district_name(d, self.lang) for d in districts or ())
            sep = "：" if self.lang == "zh" else ": "
            self.role.setToolTip(tr("role.tip", self.lang) + (sep + every if every else ""))
        self.role.setVisible(bool(text))

    def show_scope(self) -> None:
        """The districts badge, from the situation's scope (none: the whole city, no badge)."""
        scope = getattr(self.situation, "scope", None)
        if scope is self._scope_shown:
            return
        self._scope_shown = scope
        text, tip = scope_text(scope, self.lang)
        forms = [text, tr("scope.count", self.lang, n=len(scope))] if text else []
        self.scope_badge.show_forms(forms, tip)
        self.scope_badge.setVisible(bool(text))

    def flash(self, text: str, error: bool = False) -> None:
        """A short message in the subtitle line (an export written) for a minute."""
        self.message.setText(text)
        self.message.setToolTip(text)
        self.message.setStyleSheet(f"color: {theme.ALARM if error else theme.OK};"
                                   " background: transparent;")
        self._message_until = self.situation.now_ms() + 60_000

    def refresh(self) -> None:
        s = self.situation
        now = s.now_ms()
        if self.message.text() and now > self._message_until:
            self.message.setText("")
            self.message.setToolTip("")
        if self.kpis:
            self.show_figures(now)
        if self.mode_key in REPLAY_MODES:
            self.mode.setText(f" {replay_badge(self.mode_key, s.clock, self.lang)} ")
        if s.faults.version != self._fault_version:
            self._fault_version = s.faults.version
            self.show_faults(s.faults.snapshot())
        if self._role_of is not None:
            self.show_role()
        self.show_scope()
        self.clock.refresh()

    def show_figures(self, now: int) -> None:
        s = self.situation
        open_cases = s.open_cases()
        late = sum(1 for c in open_cases if s.is_overdue(c, now))
        free = sum(1 for u in s.units.values()
                   if u.status == "available" and not s.unit_stale(u, now))
        alarms = sum(1 for r in s.sensors.values() if reading_level(r.kind, r.metrics) == ALARM)
        link = s.clock.link_ms()
        srcs = [src for src in s.sources if src != "?"]
        up = sum(1 for src in srcs if s.source_up(src, link))
        eps_down = sum(1 for ep in s.endpoints if not s.endpoint_up(ep, link))
        self.kpis["open"].show_value(str(len(open_cases)))
        self.kpis["overdue"].show_value(str(late), theme.ALARM if late else theme.OK)
        self.kpis["available"].show_value(str(free), theme.OK if free else theme.WARN)
        self.kpis["alarms"].show_value(str(alarms), theme.ALARM if alarms else theme.OK)
        feeds_ok = srcs and up == len(srcs) and not eps_down
        self.kpis["feeds"].show_value(f"{up}/{len(srcs)}", theme.OK if feeds_ok else theme.ALARM)
        self.mark_overdue(late, now)

    def mark_overdue(self, late: int, now: int) -> None:
        """A rise in the overdue count boxes its figure, flashing once a second of the
        situation's clock, for OVERDUE_ROSE_MS of it (the first count seen is no rise)."""
        if self._late_seen is not None and late > self._late_seen:
            self._late_rose_at, self._beat = now, None
        self._late_seen = late
        rose = self._late_rose_at
        kpi = self.kpis["overdue"]
        if not (late > 0 and rose is not None and 0 <= now - rose < OVERDUE_ROSE_MS):
            kpi.box(False)
            return
        # The beat: the fill turns on and off as the clock's seconds change (a sped-up clock
        # still flashes: each new second shown is the next beat).
        second = now // 1000
        if second != self._beat:
            kpi.box(True, lit=self._beat is None or not kpi.lit)
            self._beat = second

    def show_faults(self, faults: dict[str, dict]) -> None:
        text = fault_text(faults, self.lang)
        self.fault.setText(text)
        self.fault.setToolTip(text)
        self.fault.setVisible(bool(text))
        self.subtitle.setVisible(not text)
        if not self.slim:           # on the command screen the banner takes the name's line
            self.title.setVisible(not text)
        self._edge(bool(text))


def fault_text(faults: dict[str, dict], lang: str) -> str:
    """The header's words for the faults: the latest, how often, whether it recovered, and
    how many more (a stopped part first: it is the one that leaves the wall blind)."""
    if not faults:
        return ""
    ordered = sorted(faults.values(), key=lambda f: (f.get("recovered", True),
                                                    -f.get("last_ms", 0)))
    top = ordered[0]
    when = datetime.fromtimestamp(top.get("last_ms", 0) / 1000, CITY_TZ).strftime("%H:%M:%S")
    key = f"fault.{top['what']}"
    what = tr(key, lang)
    what = top["what"] if what == key else what
    state = tr("fault.restarted" if top.get("recovered", True) else "fault.stopped", lang)
    text = (f"⚠ {tr('fault.banner', lang)}：{what} {tr('fault.times', lang, n=top['count'])}"
            f" · {state} · {when}")
    if len(ordered) > 1:
        text += f" · {tr('fault.more', lang, n=len(ordered) - 1)}"
    return text if lang == "zh" else text.replace("：", ": ")


def role_text(role: str | None, districts, lang: str) -> str:
    """"调度员 · 东城 朝阳" / "dispatcher · Dongcheng Chaoyang"; "观察员" / "viewer"; empty when
    the console has no role (no keys, or a service that gives none)."""
    if not role:
        return ""
    key = f"role.{role}"
    name = tr(key, lang)
    name = role if name == key else name
    if role != "dispatcher":
        return name
    names = [district_name(d, lang) for d in districts or ()]
    if len(names) > MAX_ROLE_DISTRICTS:      # the badge stays short; the tooltip has them all
        names = names[:MAX_ROLE_DISTRICTS] + [f"+{len(names) - MAX_ROLE_DISTRICTS}"]
    return f"{name} · {' '.join(names) or tr('role.all', lang)}"


def scope_text(scope, lang: str) -> tuple[str, str]:
    """The districts badge of a district wall and its tooltip: "辖区：东城区 · 朝阳区" /
    "Districts: Dongcheng · Chaoyang"; past ``MAX_SCOPE_NAMED`` districts a count ("辖区：5 个区")
    with every name in the tooltip. ("", "") for the whole city."""
    if scope is None:
        return "", ""
    names = scope.names(lang)
    every = " · ".join(names)
    if len(names) > MAX_SCOPE_NAMED:
        text = tr("scope.count", lang, n=len(names))
    else:
        text = tr("scope.names", lang, names=every)
    return text, tr("scope.tip", lang, names=every)


def replay_badge(mode: str, clock, lang: str) -> str:
    """The replay banner's words, from the situation's clock: "回放 ×8" or "回放 ❚❚ 暂停"."""
    pace = tr("tp.paused", lang) if getattr(clock, "paused", False) else f"×{clock.speed:g}"
    return f"{tr('mode.' + mode, lang)}  {pace}"

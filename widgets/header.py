"""The band across the top of every screen: who we are and in which mode, the key figures,
and the large clock of the situation (Beijing time)."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from situation.catalog import district_name
from situation.store import Change, Situation
from situation.thresholds import ALARM, reading_level
from widgets import theme
from widgets.i18n import tr

CITY_TZ = ZoneInfo("Asia/Shanghai")
MODE_COLOUR = {"LIVE": theme.OK, "DEMO": theme.WARN, "REPLAY": theme.ACCENT,
               "TRAINING": "#a78bfa"}
REPLAY_MODES = ("REPLAY", "TRAINING")   # the badge is the replay banner: mode, speed, pause
MAX_ROLE_DISTRICTS = 2                  # named on the role badge; the rest counted


_label = theme.label


class ClockPanel(QWidget):
    """The situation's time, large: every countdown on the wall runs on this clock."""
    name = "clock"

    def __init__(self, situation: Situation, lang: str = "zh", mode: str = "LIVE", parent=None):
        super().__init__(parent)
        self.situation, self.lang, self.mode = situation, lang, mode
        self.dirty = True
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        self.time = _label("--:--:--", 64, theme.TEXT, True, Qt.AlignRight | Qt.AlignVCenter)
        self.date = _label("", 20, theme.MUTED, False, Qt.AlignRight | Qt.AlignVCenter)
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


class Kpi(QWidget):
    def __init__(self, label: str, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(18, 0, 18, 0)
        lay.setSpacing(0)
        self.value = _label("—", 46, theme.TEXT, True, Qt.AlignCenter)
        self.label = _label(label, 19, theme.MUTED, False, Qt.AlignCenter)
        lay.addWidget(self.value)
        lay.addWidget(self.label)

    def show_value(self, text: str, colour: str = theme.TEXT) -> None:
        self.value.setText(text)
        self.value.setStyleSheet(f"color: {colour}; background: transparent;")


class Header(QFrame):
    def __init__(self, situation: Situation, lang: str, mode: str, screen_title: str = "",
                 parent=None):
        super().__init__(parent)
        self.situation, self.lang, self.mode_key = situation, lang, mode
        self.setObjectName("header")
        self.setStyleSheet(f"QFrame#header {{ background: {theme.HEADER};"
                           f" border-bottom: 2px solid {theme.PANEL_EDGE}; }}")
        self.setFixedHeight(118)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(24, 8, 24, 8)
        titles = QVBoxLayout()
        titles.setSpacing(2)
        self.title = _label(tr("title", lang), 34, theme.TEXT, True)
        sub = tr("subtitle", lang) + (f" · {screen_title}" if screen_title else "")
        row = QHBoxLayout()
        row.setSpacing(12)
        self.mode = _label(f" {tr('mode.' + mode, lang)} ", 30 if mode in REPLAY_MODES else 20,
                           theme.BG, True)
        self.mode.setStyleSheet(f"color: {theme.BG}; background: {MODE_COLOUR.get(mode, theme.MUTED)};"
                                " border-radius: 4px; padding: 1px 8px;")
        row.addWidget(self.mode)
        # A socket running plain beyond this machine (--insecure): said in red, large, beside
        # the mode, on every screen, for as long as the console runs.
        self.unencrypted = _label(f" {tr('sec.unencrypted', lang)} ", 30, theme.TEXT, True)
        self.unencrypted.setStyleSheet(f"color: {theme.TEXT}; background: {theme.ALARM};"
                                       " border-radius: 4px; padding: 1px 10px;")
        self.unencrypted.hide()
        row.addWidget(self.unencrypted)
        # This seat's role, from the dispatch service (ui/dispatch.py asks it; we show it).
        self.role = _label("", 22, theme.TEXT, True)
        self.role.setStyleSheet(f"color: {theme.TEXT}; background: transparent;"
                                f" border: 2px solid {theme.ACCENT}; border-radius: 4px;"
                                " padding: 0px 8px;")
        self.role.setToolTip(tr("role.tip", lang))
        self.role.hide()
        self._role_of = None
        row.addWidget(self.role)
        self.subtitle = _label(sub, 22, theme.ACCENT)
        self.subtitle.setMinimumWidth(1)    # gives way (clipped) to the badges on a narrow wall
        row.addWidget(self.subtitle)
        # Something inside stopped (feeds.faults): said in red, large, on every screen, in
        # place of the subtitle, until the console restarts. Never hidden by a flash.
        self.fault = _label("", 26, theme.TEXT, True)
        self.fault.setStyleSheet(f"color: {theme.TEXT}; background: {theme.ALARM};"
                                 " border-radius: 4px; padding: 1px 10px;")
        self.fault.hide()
        self.fault.setMinimumWidth(360)     # a long banner is clipped, never pushes the clock
        self._fault_version = 0
        row.addWidget(self.fault)
        self.message = _label("", 18, theme.OK)
        self.message.setMinimumWidth(1)     # a long flash is clipped (whole in its tooltip)
        self._message_until = 0
        row.addWidget(self.message)
        row.addStretch(1)
        titles.addWidget(self.title)
        titles.addLayout(row)
        lay.addLayout(titles, 3)
        self.kpis = {k: Kpi(tr(f"kpi.{k}", lang)) for k in
                     ("open", "overdue", "available", "alarms", "feeds")}
        for k in self.kpis.values():
            lay.addWidget(k)
        lay.addStretch(1)
        self.clock = ClockPanel(situation, lang, mode)
        lay.addWidget(self.clock, 2)

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
        if self.mode_key in REPLAY_MODES:
            self.mode.setText(f" {replay_badge(self.mode_key, s.clock, self.lang)} ")
        if s.faults.version != self._fault_version:
            self._fault_version = s.faults.version
            self.show_faults(s.faults.snapshot())
        if self._role_of is not None:
            self.show_role()
        self.clock.refresh()

    def show_faults(self, faults: dict[str, dict]) -> None:
        text = fault_text(faults, self.lang)
        self.fault.setText(text)
        self.fault.setToolTip(text)
        self.fault.setVisible(bool(text))
        self.subtitle.setVisible(not text)
        edge = theme.ALARM if text else theme.PANEL_EDGE
        self.setStyleSheet(f"QFrame#header {{ background: {theme.HEADER};"
                           f" border-bottom: {6 if text else 2}px solid {edge}; }}")


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


def replay_badge(mode: str, clock, lang: str) -> str:
    """The replay banner's words, from the situation's clock: "回放 ×8" or "回放 ❚❚ 暂停"."""
    pace = tr("tp.paused", lang) if getattr(clock, "paused", False) else f"×{clock.speed:g}"
    return f"{tr('mode.' + mode, lang)}  {pace}"

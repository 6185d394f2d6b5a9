"""How times and numbers read on the wall (pure functions, tested without Qt)."""
from __future__ import annotations

from widgets.i18n import tr


def hm(ms: int, lang: str = "zh") -> str:
    """A duration with its units, so 7 minutes never reads as 7 hours: 2时05分, 45分,
    7分23秒 (seconds only under ten minutes, when they matter); 2h05m, 45m, 7m23s."""
    s = max(0, int(ms) // 1000)
    h_, m_, s_ = ("时", "分", "秒") if lang == "zh" else ("h", "m", "s")
    if s < 600:
        return f"{s // 60}{m_}{s % 60:02d}{s_}" if s >= 60 else f"{s}{s_}"
    h, m = divmod(s // 60, 60)
    if h == 0:
        return f"{m}{m_}"
    if h >= 48:
        return f"{h // 24}{'天' if lang == 'zh' else 'd'}{h % 24}{h_}"
    return f"{h}{h_}{m:02d}{m_}"


def time_left(due_at: int | None, now: int, lang: str = "zh") -> str:
    """Countdown to a deadline; past it, how long overdue with the word for it."""
    if due_at is None:
        return "—"
    left = due_at - now
    if left >= 0:
        return hm(left, lang)
    return f"{tr('left.late', lang)} {hm(-left, lang)}"


def ago(ms: int, lang: str = "zh") -> str:
    s = max(0, int(ms) // 1000)
    if s < 60:
        return tr("ago_s", lang, n=s)
    if s < 3600:
        return tr("ago_m", lang, n=s // 60)
    return tr("ago_h", lang, n=s // 3600)


def number(value: float) -> str:
    """Readings: integers as integers, others to one decimal."""
    if value == int(value) and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.1f}"


def rate(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1_000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}"

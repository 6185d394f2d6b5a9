"""Feed health (数据接入): each source up or down (3 s of silence), its rate, seq gaps,
restarts and refused records by reason; each configured endpoint up or down.

The commander reads words: a source by its label ("演示城市" for demo-city; one the wall does
not know by its id), an endpoint by what it carries ("调度服务接入") or its number ("接入点 2").
The publisher id and the endpoint's address are in the row's tooltip, for whoever fixes it."""
from __future__ import annotations

from situation.store import Change
from widgets import theme
from widgets.i18n import tr
from widgets.format import rate
from widgets.panel import Cell, TablePanel

UNKNOWN_SRC = "?"


LOCAL_PREFIX = "inproc://citywall-"     # endpoints started inside the console (ui/session.py)


def source_label(src: str, lang: str) -> str:
    """A source in words: its label where the wall knows it, else its id."""
    if src == UNKNOWN_SRC:
        return tr("src.unknown", lang)
    words = tr(f"src.{src}", lang)
    return src if words == f"src.{src}" else words


def endpoint_labels(endpoints, lang: str) -> dict[str, str]:
    """Each endpoint in words: one the console runs itself by what it carries, any other by
    its place in the list ("接入点 1", "接入点 2"…; an MQTT broker "MQTT 接入 1"), so no
    address is on the wall."""
    out, n, m = {}, 0, 0
    for ep in endpoints:
        if ep.startswith(LOCAL_PREFIX):
            key = f"ep.{ep[len(LOCAL_PREFIX):]}"
            words = tr(key, lang)
            if words != key:
                out[ep] = words
                continue
        if ep.startswith(("mqtt://", "mqtts://")):
            m += 1
            out[ep] = tr("ep.mqtt_numbered", lang, n=m)
            continue
        n += 1
        out[ep] = tr("ep.numbered", lang, n=n)
    return out


def reason_words(reason: str, lang: str) -> str:
    """A refusal's reason in words where the catalog has them, else its code."""
    words = tr(f"why.{reason}", lang)
    return reason if words == f"why.{reason}" else words


class FeedHealth(TablePanel):
    name = "feed_health"
    columns = ("col.src", "col.state", "col.rate", "col.seq", "col.gaps", "col.restarts",
               "col.rejects", "col.why")
    # Kept first when the panel is narrow: which source, up or down, what it missed.
    priority = ("col.src", "col.state", "col.gaps", "col.rejects", "col.rate", "col.restarts",
                "col.why", "col.seq")
    stretch_column = 7

    def on_changed(self, change: Change) -> None:
        if change.sources:
            self.dirty = True

    def spans(self, keys):
        # An endpoint's note (handshakes failed) runs across the figures, which only sources have.
        return {i: (2, 6) for i, k in enumerate(keys) if k.startswith("ep:")}

    def derive(self, now: int):
        s = self.situation
        lang = self.lang
        link = s.clock.link_ms()
        keys, rows = [], []
        up_n = 0
        for src in sorted(s.sources):
            h = s.sources[src]
            up = s.source_up(src, link) if src != UNKNOWN_SRC else None
            up_n += bool(up)
            reasons = ", ".join(f"{reason_words(r, lang)} {n}"
                                for r, n in h.rejected.most_common(3))
            state = "—" if up is None else f"● {tr('up' if up else 'down', lang)}"
            keys.append(f"src:{src}")
            rows.append([
                Cell(source_label(src, lang), None, bold=True,
                     tip=tr("fh.src_tip", lang, src=src)),
                Cell(state, theme.MUTED if up is None else theme.READY if up else theme.ALARM,
                     None if up is not False else theme.ALARM_BG, bold=True),
                Cell(rate(s.source_rate(src, link)) if up is not None else "—"),
                Cell(str(h.last_seq) if h.last_seq is not None else "—", theme.MUTED),
                Cell(f"{h.gaps} ({h.lost})" if h.gaps else "0",
                     theme.WARN if h.gaps else theme.DIM),
                Cell(str(h.restarts), theme.WARN if h.restarts else theme.DIM),
                Cell(str(h.rejected_total), theme.ALARM if h.rejected_total else theme.DIM,
                     bold=bool(h.rejected_total), tip=reasons or None),
                Cell(reasons or "—", theme.MUTED),
            ])
        labels = endpoint_labels(s.endpoints, lang)
        for ep in s.endpoints:
            up = s.endpoint_up(ep, link)
            tip = tr("fh.ep_tip", lang, ep=ep)
            failed = s.auth_failed[ep]         # CURVE handshakes refused: the keys do not match
            keys.append(f"ep:{ep}")
            if failed and not up:
                state = Cell(f"● {tr('auth_failed', lang, n=failed)}", theme.ALARM,
                             theme.ALARM_BG, bold=True)
            else:
                state = Cell(f"● {tr('up' if up else 'down', lang)}",
                             theme.READY if up else theme.ALARM, None if up else theme.ALARM_BG,
                             bold=True)
            note = tr("auth_failed", lang, n=failed) if failed and up else ""
            rows.append([
                Cell(labels[ep], theme.MUTED, tip=tip),
                state._replace(tip=tip),
                Cell(note, theme.WARN if failed else theme.MUTED, tip=tip),
                *[Cell("")] * 5,
            ])
        known = [k for k in s.sources if k != UNKNOWN_SRC]
        summary = tr("summary.feeds", lang, up=up_n, n=len(known),
                     rejected=sum(s.rejected.values()), gaps=s.gaps)
        return keys, rows, summary

"""The metric families of a status document (Prometheus' names for what the console, the
dispatch service and the broker write in their status files): ``console_families``,
``dispatch_families``, ``broker_families``. Pure functions of a dict; the server that serves
them is ``feeds.metrics``. No Qt.

Names follow Prometheus' conventions: ``citywall_…``, counters end in ``_total``, durations
in ``_seconds``, sizes in ``_bytes``, shares in ``_ratio``; labels ``src``, ``reason``,
``endpoint``, ``what`` (and ``result``, ``mode``).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, SummaryMetricFamily)

PREFIX = "citywall"

Families = Callable[..., list]


# ---- building families ---------------------------------------------------------------------
def _num(value) -> float | None:
    """A figure as a float; None for anything that is not a number (a missing key)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


class _Out:
    """The families of one document, each declared with its labels (so a family with no
    samples yet still says HELP and TYPE, and a dashboard's names always exist)."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.families: list = []

    def _add(self, cls, name: str, doc: str, labels: Iterable[str], value, **kw):
        labels = list(labels)
        full = f"{self.prefix}_{name}"
        if labels or value is None:
            fam = cls(full, doc, labels=labels, **kw)
        else:
            fam = cls(full, doc, value=value, **kw)
        self.families.append(fam)
        return fam

    def counter(self, name: str, doc: str, value=None, labels: Iterable[str] = ()):
        """``name`` without ``_total``: prometheus_client adds it."""
        return self._add(CounterMetricFamily, name, doc, labels, _num(value))

    def gauge(self, name: str, doc: str, value=None, labels: Iterable[str] = ()):
        return self._add(GaugeMetricFamily, name, doc, labels, _num(value))

    def counter_by(self, name: str, doc: str, label: str, by: dict):
        fam = self.counter(name, doc, labels=[label])
        for key, value in sorted(_dict(by).items()):
            if _num(value) is not None:
                fam.add_metric([str(key)], _num(value))
        return fam

    def summary(self, name: str, doc: str, count, total) -> None:
        count, total = _num(count), _num(total)
        if count is not None and total is not None:
            self.families.append(SummaryMetricFamily(f"{self.prefix}_{name}", doc,
                                                     count_value=count, sum_value=total))
        else:
            self.families.append(SummaryMetricFamily(f"{self.prefix}_{name}", doc, labels=[]))

    def histogram(self, name: str, doc: str, buckets, total) -> None:
        """``buckets``: [[upper bound, cumulative count], …, ["+Inf", count]] as the status
        holds them (JSON has no infinity)."""
        full = f"{self.prefix}_{name}"
        pairs = []
        for le, n in buckets or ():
            if _num(n) is None:
                continue
            bound = "+Inf" if _num(le) is None or _num(le) == math.inf else repr(float(le))
            pairs.append((bound, float(n)))
        if pairs and pairs[-1][0] == "+Inf" and _num(total) is not None:
            self.families.append(HistogramMetricFamily(full, doc, buckets=pairs,
                                                       sum_value=_num(total)))
        else:
            self.families.append(HistogramMetricFamily(full, doc, labels=[]))


def _faults(out: _Out, faults) -> None:
    """``faults`` of any status: {what: {count, recovered, …}}."""
    faults = _dict(faults)
    fam = out.counter("faults", "internal failures, by what failed (feeds.faults)",
                      labels=["what"])
    fatal = 0
    for what, fault in sorted(faults.items()):
        fault = _dict(fault)
        if _num(fault.get("count")) is not None:
            fam.add_metric([str(what)], _num(fault.get("count")))
        if fault.get("recovered") is False:
            fatal += 1
    out.gauge("faults_fatal", "parts stopped for good (not recovered); >0 means restart it",
              fatal)


# ---- the console ---------------------------------------------------------------------------
def console_families(doc: dict, prefix: str = PREFIX) -> list:
    """A console's status (``Session.status()``, the ``--status-out`` file) as families."""
    doc = _dict(doc)
    o = _Out(prefix)
    info = o.gauge("console_info", "the console's mode (LIVE, DEMO, REPLAY, TRAINING)",
                   labels=["mode"])
    if doc.get("mode"):
        info.add_metric([str(doc["mode"])], 1)
    o.gauge("clock_seconds", "the situation's clock (Unix time; a replay's time in REPLAY)",
            _num(doc.get("clock_ms")) / 1000 if _num(doc.get("clock_ms")) is not None
            else None)
    # ingest
    o.counter("records_accepted", "records the situation took (status records_accepted)",
              doc.get("records_accepted"))
    o.counter_by("records_rejected", "records refused, by reason, all sources together "
                 "(status rejected)", "reason", doc.get("rejected"))
    o.counter("gaps", "sequence gaps seen, all sources (status gaps)", doc.get("gaps"))
    o.counter("records_superseded", "late records older than what was held (changed nothing)",
              doc.get("superseded"))
    o.counter("refused_ids", "records for a new id past a table's cap", doc.get("refused_ids"))
    o.counter("aged_out", "cases, units and sensors let go unheard-of (limits)",
              doc.get("aged_out"))
    overflow = _dict(doc.get("too_many_sources"))
    zero = 0 if "too_many_sources" in doc else None         # a Counter omits its zeros
    o.counter("untracked_source_records", "records from sources past --max-sources",
              overflow.get("records", zero))
    o.counter("untracked_source_rejected", "rejects from sources past --max-sources",
              overflow.get("rejected", zero))
    sources = _dict(doc.get("sources"))
    records = o.counter("source_records", "records taken, by source", labels=["src"])
    rejected = o.counter("source_rejected", "records refused, by source and reason",
                         labels=["src", "reason"])
    gaps = o.counter("source_gaps", "sequence gaps, by source", labels=["src"])
    missed = o.counter("source_missed_records", "records missing in sequence gaps, by "
                       "source (some may come later by a second broker: filled)", labels=["src"])
    filled = o.counter("source_filled_records", "records a gap missed that came later by "
                       "another path (a second broker), by source", labels=["src"])
    lost = o.gauge("source_lost_records", "records missed and never come, by source",
                   labels=["src"])
    restarts = o.counter("source_restarts", "publisher restarts (seq back to the start)",
                         labels=["src"])
    up = o.gauge("source_up", "1 while the source is heard from, else 0", labels=["src"])
    n_up = missed_all = 0
    for src, h in sorted(sources.items()):
        h = _dict(h)
        for fam, key in ((records, "records"), (gaps, "gaps"), (missed, "missed"),
                         (filled, "filled"), (lost, "lost"),
                         (restarts, "restarts"), (up, "up")):
            if _num(h.get(key)) is not None:
                fam.add_metric([str(src)], _num(h.get(key)))
        for reason, n in sorted(_dict(h.get("rejected_by_reason")).items()):
            if _num(n) is not None:
                rejected.add_metric([str(src), str(reason)], _num(n))
        n_up += 1 if h.get("up") else 0
        missed_all += _num(h.get("missed")) or 0
    o.counter("missed_records", "records lost in sequence gaps, all tracked sources",
              missed_all)
    # two paths to the same records (two brokers; a broker's state then its feed)
    o.counter("duplicate_records", "copies of records already applied, dropped",
              doc.get("duplicates"))
    joins = o.gauge("state_join_seconds", "how long the last join from a broker's state "
                    "took, by feed endpoint and outcome", labels=["endpoint", "outcome"])
    last_join: dict = {}
    for join in doc.get("state_joins") or ():
        join = _dict(join)
        if join.get("endpoint") is not None:
            last_join[str(join["endpoint"])] = join
    for ep, join in sorted(last_join.items()):
        if _num(join.get("seconds")) is not None:
            joins.add_metric([ep, str(join.get("outcome"))], _num(join.get("seconds")))
    scope = _dict(doc.get("scope"))
    o.counter_by("out_of_scope_records", "records outside a district wall's districts, by "
                 "kind (received fine, not held)", "kind", scope.get("out_of_scope"))
    o.gauge("sources", "sources known", len(sources))
    o.gauge("sources_up", "sources heard from now", n_up)
    endpoints = _dict(doc.get("endpoints"))
    ep_up = o.gauge("endpoint_up", "1 while the feed endpoint is heard from", labels=["endpoint"])
    ep_auth = o.counter("endpoint_auth_failed", "CURVE handshakes refused, by feed endpoint",
                        labels=["endpoint"])
    for ep, e in sorted(endpoints.items()):
        e = _dict(e)
        if _num(e.get("up")) is not None:
            ep_up.add_metric([str(ep)], _num(e.get("up")))
        if _num(e.get("auth_failed")) is not None:
            ep_auth.add_metric([str(ep)], _num(e.get("auth_failed")))
    inputs = doc.get("inputs") if isinstance(doc.get("inputs"), list) else []
    in_up = o.gauge("input_up", "1 while the source (a ZeroMQ receiver, an MQTT broker, a "
                    "recording, the demo) says it is working, by kind and name",
                    labels=["kind", "name"])
    for one in inputs:
        one = _dict(one)
        if _num(one.get("up")) is not None:
            in_up.add_metric([str(one.get("kind")), str(one.get("name"))], _num(one.get("up")))
    ingest = _dict(doc.get("ingest"))
    o.gauge("receive_backlog_records", "records received, not yet applied to the situation",
            ingest.get("backlog"))
    o.summary("drain_seconds", "time applying one batch to the situation (count: batches)",
              ingest.get("drains"), ingest.get("drain_total_s"))
    o.gauge("drain_last_seconds", "time the last batch took to apply", ingest.get("drain_last_s"))
    # the picture
    for key, what in (("cases", "cases held"), ("open_cases", "open cases"),
                      ("overdue_cases", "open cases past their stage's deadline"),
                      ("units", "units held"), ("stale_units", "units not heard of lately"),
                      ("sensors", "sensors held")):
        o.gauge(key, what, doc.get(key))
    # the windowed wall
    gui = _dict(doc.get("gui"))
    o.gauge("gui_busy_ratio", "share of the GUI thread spent applying and showing batches, "
            "over the last status interval (windowed only)", gui.get("busy_share"))
    o.gauge("map_update_last_seconds", "the map page's time for its last update (windowed)",
            gui.get("map_update_last_s"))
    o.summary("map_update_seconds", "the map page's time per update (windowed)",
              gui.get("map_updates"), gui.get("map_update_total_s"))
    # dispatch: the console's side of orders
    dispatch_client_families(o, _dict(doc.get("dispatch")))
    # recording
    rec = _dict(doc.get("recording"))
    o.counter("recording_written_bytes", "bytes written to the recording files (--record-dir)",
              rec.get("bytes"))
    o.counter("recording_messages", "messages recorded", rec.get("messages"))
    o.counter("recording_dropped_messages", "messages not recorded (a disk problem)",
              rec.get("dropped"))
    o.gauge("recording_problem", "1 while the recording is stopped by a problem",
            (1 if rec.get("problem") else 0) if rec else None)
    _faults(o, doc.get("faults"))
    return o.families


def dispatch_client_families(o: _Out, d: dict) -> None:
    """The console's dispatch client (``DispatchClient.status()``)."""
    acks = _dict(d.get("acks"))
    o.counter("dispatch_orders_sent", "orders (and snapshot requests) sent", d.get("sent"))
    fam = o.counter("dispatch_acks", "acks from the dispatch service, by result",
                    labels=["result"])
    for result in ("accepted", "rejected"):
        if _num(acks.get(result)) is not None:
            fam.add_metric([result], _num(acks.get(result)))
    o.counter("dispatch_ack_timeouts", "orders with no answer after the retries "
              "(unconfirmed)", acks.get("timeouts"))
    o.counter("dispatch_resent", "orders sent again after a timeout", d.get("resent"))
    o.gauge("dispatch_pending_orders", "orders waiting for their ack", d.get("pending"))
    o.histogram("dispatch_ack_latency_seconds", "time from sending an order to its ack",
                acks.get("latency_buckets"), acks.get("latency_sum_s"))
    o.counter_by("dispatch_dropped_replies", "replies dropped (unreadable, unknown order)",
                 "reason", d.get("dropped"))


# ---- the dispatch service ------------------------------------------------------------------
def dispatch_families(doc: dict, prefix: str = PREFIX) -> list:
    """The dispatch service's status (``DispatchService.status()``)."""
    doc = _dict(doc)
    o = _Out(prefix)
    p = "dispatch_service_"
    o.counter(p + "orders_received", "orders received", doc.get("received"))
    o.counter(p + "orders_accepted", "orders accepted (acked accepted)", doc.get("accepted"))
    o.counter_by(p + "orders_rejected", "orders rejected (acked rejected), by reason", "reason",
                 doc.get("rejected"))
    o.counter_by(p + "bad_orders", "malformed orders, by problem", "reason",
                 doc.get("bad_orders"))
    o.counter_by(p + "dropped", "frames dropped unanswered, by reason", "reason",
                 doc.get("dropped"))
    o.counter(p + "duplicate_orders", "orders seen again (answered from the log)",
              doc.get("duplicates"))
    o.counter(p + "snapshots", "snapshots served", doc.get("snapshots"))
    o.counter(p + "published_records", "records published on the feed", doc.get("published"))
    o.counter(p + "republished_records", "records published again", doc.get("republished"))
    o.counter(p + "learned_records", "source records learned", doc.get("learned"))
    o.counter(p + "source_rejects", "source records refused", doc.get("source_rejects"))
    o.counter(p + "storage_errors", "database errors", doc.get("storage_errors"))
    o.counter(p + "internal_errors", "internal errors", doc.get("internal_errors"))
    o.counter_by(p + "source_auth_failed", "CURVE handshakes refused by a source, by endpoint",
                 "endpoint", doc.get("source_auth_failed"))
    o.gauge(p + "seq", "the feed's last seq", doc.get("seq"))
    o.gauge(p + "unsent_records", "records waiting to be published", doc.get("unsent"))
    o.gauge(p + "feed_open", "1 when the feed is open, 0 while held",
            None if "feed_state" not in doc else doc.get("feed_state") == "open")
    o.gauge(p + "storage_ok", "1 when the database works",
            None if "storage" not in doc else doc.get("storage") == "ok")
    for key in ("cases", "open_cases", "units", "snapshot_clients"):
        o.gauge(p + key, key.replace("_", " ") + " held", doc.get(key))
    _faults(o, doc.get("faults"))
    return o.families


# ---- the broker ----------------------------------------------------------------------------
def broker_families(doc: dict, prefix: str = PREFIX) -> list:
    """A broker's status (``feeds.broker``): ``publishers``, ``subscribers``, the proxy's
    ``forwarded_frames``/``forwarded_bytes``/``rate_frames`` (libzmq counts frames: a feed
    message is two), the state's ``state_messages``/``state_records``/``state_rate`` and
    ``state_behind_frames``, ``input_*`` losses and restarts, the state service's figures,
    ``state`` {cases, units, positions, sensors, sources}, ``gate``, ``faults``. Any may be missing."""
    doc = _dict(doc)
    o = _Out(prefix)
    p = "broker_"
    o.gauge(p + "publishers", "publishers connected", doc.get("publishers"))
    o.gauge(p + "subscribers", "subscribers connected", doc.get("subscribers"))
    o.counter(p + "forwarded_frames", "frames the proxy sent to the walls' side (a feed "
              "message is two)", doc.get("forwarded_frames"))
    o.counter(p + "forwarded_bytes", "bytes the proxy sent to the walls' side",
              doc.get("forwarded_bytes"))
    o.gauge(p + "rate_frames_per_second", "frames forwarded per second, recently",
            doc.get("rate_frames"))
    o.counter(p + "state_messages", "feed messages the state took in", doc.get("state_messages"))
    o.counter(p + "state_records", "records the state took in", doc.get("state_records"))
    o.gauge(p + "state_rate_records_per_second", "records the state took in per second, "
            "recently", doc.get("state_rate"))
    o.gauge(p + "state_behind_frames", "frames forwarded the state has not taken in yet",
            doc.get("state_behind_frames"))
    o.counter(p + "state_answered_behind", "state answers sent before the state caught up "
              "(the wall sees the gap)", doc.get("state_answered_behind"))
    o.gauge(p + "state_waiting", "state requests waiting for the state to catch up",
            doc.get("state_waiting"))
    o.counter(p + "input_gaps", "sequence gaps on the input", doc.get("input_gaps"))
    o.counter(p + "input_restarts", "publisher restarts on the input", doc.get("input_restarts"))
    o.counter(p + "input_missed_records", "records lost before the broker (by seq)",
              doc.get("input_missed"))
    o.counter(p + "state_not_ready", "state requests answered 'not ready' (rebuilding)",
              doc.get("state_not_ready"))
    gate = _dict(doc.get("gate"))
    o.counter(p + "gate_passed_messages", "publishers' messages let through by --publishers",
              gate.get("passed_messages"))
    refused = o.counter(p + "gate_refused_messages", "publishers' messages refused by "
                        "--publishers, by key and reason", labels=["publisher", "reason"])
    for who, reasons in sorted(_dict(gate.get("refused_messages")).items()):
        for reason, n in sorted(_dict(reasons).items()):
            if _num(n) is not None:
                refused.add_metric([str(who), str(reason)], _num(n))
    o.counter(p + "state_requests", "state (snapshot) requests served", doc.get("state_requests"))
    refused = doc.get("state_refused")
    if isinstance(refused, dict):
        o.counter_by(p + "state_refused", "state requests refused, by reason", "reason", refused)
    else:
        o.counter(p + "state_refused", "state requests refused", refused)
    state = _dict(doc.get("state"))
    for key in ("cases", "units", "positions", "sensors", "sources"):
        o.gauge(p + "state_" + key, f"{key} held by the state service", state.get(key))
    _faults(o, doc.get("faults"))
    return o.families

"""The Prometheus endpoint (``--metrics-port``): a real headless console fed by a real
publisher, scraped over HTTP and parsed with prometheus_client's own parser — its counters
equal the status file's, figure for figure; the dispatch service's ack counts and a console's
ack-latency histogram; a port in use is one line and exit 2; and the Grafana dashboard asks
only for metrics that exist."""
from __future__ import annotations

import json
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import zmq
from prometheus_client.parser import text_string_to_metric_families

from feeds.dispatch_client import AckFigures, DispatchClient
from feeds.metrics import (MetricsServer, broker_families, console_families,
                           dispatch_families)
from tests.pubhelp import TestPublisher, free_port, record

ROOT = Path(__file__).resolve().parent.parent



def scrape(port: int) -> dict[tuple[str, tuple], float] | None:
    """Sample name and sorted labels → value; None while the endpoint does not answer."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return None
    out = {}
    for fam in text_string_to_metric_families(text.decode("utf-8")):
        for s in fam.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def wait(predicate, timeout_s: float, step_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step_s)


def by_label(samples: dict, name: str, *labels: str) -> dict:
    """{label values: value} of one metric's samples."""
    out = {}
    for (n, lab), v in samples.items():
        if n == name:
            d = dict(lab)
            out[tuple(d[k] for k in labels) if len(labels) > 1 else d[labels[0]]] = v
    return out


def status_figures(doc: dict) -> dict:
    """What the status file says, in the endpoint's terms."""
    src = doc["sources"]
    return {
        "accepted": doc["records_accepted"],
        "rejected": dict(doc["rejected"]),
        "gaps": doc["gaps"],
        "src_records": {s: h["records"] for s, h in src.items()},
        "src_rejected": {(s, r): n for s, h in src.items()
                         for r, n in h["rejected_by_reason"].items()},
        "src_gaps": {s: h["gaps"] for s, h in src.items()},
        "src_missed": {s: h["missed"] for s, h in src.items()},
        "missed": sum(h["missed"] for h in src.values()),
        "src_up": {s: int(h["up"]) for s, h in src.items()},
        "sources_up": sum(1 for h in src.values() if h["up"]),
        "faults": {w: f["count"] for w, f in doc["faults"].items()},
        "backlog": doc["ingest"]["backlog"],
        "drains": doc["ingest"]["drains"],
    }


def metric_figures(m: dict) -> dict:
    return {
        "accepted": m[("citywall_records_accepted_total", ())],
        "rejected": by_label(m, "citywall_records_rejected_total", "reason"),
        "gaps": m[("citywall_gaps_total", ())],
        "src_records": by_label(m, "citywall_source_records_total", "src"),
        "src_rejected": by_label(m, "citywall_source_rejected_total", "src", "reason"),
        "src_gaps": by_label(m, "citywall_source_gaps_total", "src"),
        "src_missed": by_label(m, "citywall_source_missed_records_total", "src"),
        "missed": m[("citywall_missed_records_total", ())],
        "src_up": by_label(m, "citywall_source_up", "src"),
        "sources_up": m[("citywall_sources_up", ())],
        "faults": by_label(m, "citywall_faults_total", "what"),
        "backlog": m[("citywall_receive_backlog_records", ())],
        "drains": m[("citywall_drain_seconds_count", ())],
    }


# ---- the console --------------------------------------------------------------------------
def test_console_metrics_equal_the_status_file(tmp_path):
    ts = time.time_ns() // 1_000_000
    port = free_port()
    status = tmp_path / "status.json"
    pub = TestPublisher(zmq.Context())
    proc = subprocess.Popen([sys.executable, "main.py", "--headless", "--feed", pub.endpoint,
                             "--run-for", "40", "--status-out", str(status),
                             "--status-every", "0.5", "--metrics-port", str(port)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pub.wait_subscriber(timeout_s=20)
        # src a: 5 good records, then seq 9 — a gap of 3 missed — and two it refuses
        for seq in range(1, 4):
            pub.send("case", record("case", src="a", seq=seq, ts=ts, case_id=f"C{seq}"))
        pub.send("unit", [record("unit", src="a", seq=4, ts=ts, unit_id="U1"),
                          record("unit", src="a", seq=5, ts=ts, unit_id="U2")])
        pub.send("case", record("case", src="a", seq=9, ts=ts, case_id="C9"))
        pub.send("case", record("case", src="a", seq=10, ts=ts, case_id="C10", lat=95.0))
        bad = record("unit", src="a", seq=11, ts=ts, unit_id="U3")
        del bad["callsign"]
        pub.send("unit", bad)
        # src b: sensors, one of them not JSON at all
        pub.send("sensor.air", [record("sensor.air", src="b", seq=i, ts=ts, id=f"S{i}")
                                for i in range(1, 6)])
        pub.send_frames([b"sensor.air", b"{not json"])
        # while the feed runs the endpoint answers and parses
        assert wait(lambda: scrape(port), 15), "the metrics endpoint never answered"

        def agreed():
            m = scrape(port)
            try:
                doc = json.loads(status.read_text())
            except (OSError, ValueError):
                return None
            if m is None or doc["records_accepted"] != 5 + 1 + 5:
                return None
            want, got = status_figures(doc), metric_figures(m)
            return (want, got, m, doc) if want == got else None

        found = wait(agreed, 20, 0.2)
        assert found, (f"status and metrics never agreed: {status_figures(json.loads(status.read_text()))}"
                       f" vs {metric_figures(scrape(port) or {})}")
        want, got, m, doc = found
        # the feed's troubles are in both, not zeros that agree
        assert sum(want["rejected"].values()) >= 3 and len(want["rejected"]) >= 2
        assert want["src_gaps"]["a"] == 1 and want["src_missed"]["a"] == 3
        assert want["src_up"]["a"] == 1 and want["sources_up"] >= 2
        assert any(src == "a" for src, _reason in want["src_rejected"])
        assert m[("citywall_open_cases", ())] == doc["open_cases"]
        assert m[("citywall_console_info", (("mode", "LIVE"),))] == 1
        assert m[("citywall_status_age_seconds", ())] < 5
        assert m[("citywall_faults_fatal", ())] == 0
        proc.send_signal(signal.SIGINT)          # the final status, then the port is freed
        _out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert scrape(port) is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
        pub.close()


def test_metrics_port_in_use_is_one_line_and_exit_2(tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        console = subprocess.run([sys.executable, "main.py", "--headless", "--feed",
                                  f"tcp://127.0.0.1:{free_port()}", "--run-for", "5",
                                  "--metrics-port", str(port)], cwd=ROOT, capture_output=True,
                                 text=True, timeout=60)
        service = subprocess.run([sys.executable, "-m", "feeds.dispatch_service", "--source",
                                  f"tcp://127.0.0.1:{free_port()}", "--dispatch",
                                  "tcp://127.0.0.1:*", "--feed", "tcp://127.0.0.1:*", "--db",
                                  str(tmp_path / "d.sqlite3"), "--run-for", "5",
                                  "--metrics-port", str(port)], cwd=ROOT, capture_output=True,
                                 text=True, timeout=60)
    for proc, prog in ((console, "citywall"), (service, "feeds.dispatch_service")):
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, proc.stderr
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith(f"{prog}: error: cannot serve metrics on 127.0.0.1:{port}")


# ---- the dispatch service and the console's acks --------------------------------------------
def test_dispatch_service_metrics_count_the_acks(tmp_path):
    ts = time.time_ns() // 1_000_000
    port = free_port()
    ctx = zmq.Context()
    pub = TestPublisher(ctx)
    proc = subprocess.Popen([sys.executable, "-m", "feeds.dispatch_service", "--source",
                             pub.endpoint, "--dispatch", "tcp://127.0.0.1:*", "--feed",
                             "tcp://127.0.0.1:*", "--db", str(tmp_path / "d.sqlite3"),
                             "--run-for", "40", "--metrics-port", str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    client = console = None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        orders = re.search(r"orders (\S+) feed", line)
        assert orders, f"service did not start: {line!r}"
        pub.wait_subscriber(20)
        pub.send("case", record("case", src="city", seq=1, ts=ts, case_id="C1"))
        pub.send("unit", record("unit", src="city", seq=2, ts=ts, unit_id="U1"))

        def learned():
            m = scrape(port)
            return m if m and m.get(("citywall_dispatch_service_cases", ())) == 1 \
                and m.get(("citywall_dispatch_service_units", ())) == 1 else None
        assert wait(learned, 15), "the service never learned the case and unit"
        client = DispatchClient(orders.group(1), "console-1", context=ctx)
        client.send("dispatch", case_id="C1", unit_id="U1")         # accepted
        client.send("dispatch", case_id="C404", unit_id="U1")       # rejected: no such case
        acks = []
        deadline = time.monotonic() + 10
        while len(acks) < 2 and time.monotonic() < deadline:
            acks += [e[2] for e in client.poll(200) if e[0] == "ack"]
        assert sorted(a.result for a in acks) == ["accepted", "rejected"]
        assert (client.acks.accepted, client.acks.rejected) == (1, 1)

        def counted():
            m = scrape(port)
            return m if m and m.get(("citywall_dispatch_service_orders_accepted_total", ())) == 1 \
                and sum(by_label(m, "citywall_dispatch_service_orders_rejected_total",
                                 "reason").values()) == 1 else None
        m = wait(counted, 10)
        assert m, "the service's metrics never counted the two acks"
        assert m[("citywall_dispatch_service_orders_received_total", ())] == 2
        assert m[("citywall_faults_fatal", ())] == 0

        # the console's side: its dispatch client's status as a console publishes it
        console = MetricsServer(0, "127.0.0.1", console_families, process=False).start()
        console.publish({"dispatch": client.status()})
        c = scrape(console.port)
        assert by_label(c, "citywall_dispatch_acks_total", "result") == {"accepted": 1,
                                                                          "rejected": 1}
        assert c[("citywall_dispatch_ack_latency_seconds_count", ())] == 2
        assert c[("citywall_dispatch_ack_latency_seconds_bucket", (("le", "+Inf"),))] == 2
        assert c[("citywall_dispatch_ack_latency_seconds_sum", ())] == \
            client.status()["acks"]["latency_sum_s"]
        assert c[("citywall_dispatch_ack_timeouts_total", ())] == 0
        console.close()
        assert scrape(console.port) is None             # close() frees the port
        console = None
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
        assert proc.returncode == 0
    finally:
        if console is not None:
            console.close()
        if client is not None:
            client.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
        pub.close()
        ctx.destroy(linger=0)


def test_ack_latency_buckets_are_cumulative():
    acks = AckFigures(buckets=(0.01, 0.1))
    for accepted, s in ((True, 0.004), (True, 0.05), (False, 0.05), (True, 3.0)):
        acks.add(accepted, s)
    st = acks.status(timeouts=2)
    assert st["latency_buckets"] == [[0.01, 1], [0.1, 3], ["+Inf", 4]]
    assert (st["accepted"], st["rejected"], st["timeouts"], st["latency_count"]) == (3, 1, 2, 4)


# ---- the Grafana dashboard ----------------------------------------------------------------
FULL_CONSOLE = {
    "mode": "LIVE", "clock_ms": 1, "records_accepted": 1, "rejected": {"not_json": 1},
    "gaps": 1, "superseded": 0, "refused_ids": 0, "aged_out": 0,
    "too_many_sources": {"records": 0, "rejected": 0},
    "sources": {"a": {"up": True, "records": 1, "gaps": 1, "missed": 1, "restarts": 0,
                      "rejected_by_reason": {"not_json": 1}}},
    "endpoints": {"tcp://127.0.0.1:1": {"up": True, "auth_failed": 0}},
    "ingest": {"backlog": 0, "drain_last_s": 0.001, "drain_total_s": 0.001, "drains": 1},
    "gui": {"busy_share": 0.1, "map_update_last_s": 0.01, "map_update_total_s": 0.01,
            "map_updates": 1},
    "dispatch": {"sent": 1, "resent": 0, "pending": 0, "dropped": {"unknown_order": 1},
                 "acks": AckFigures().status()},
    "recording": {"bytes": 1, "messages": 1, "dropped": 0, "problem": None},
    "faults": {"situation": {"count": 1, "recovered": True}},
    **{k: 1 for k in ("cases", "open_cases", "overdue_cases", "units", "stale_units",
                      "sensors")},
}
FULL_BROKER = {"publishers": 1, "subscribers": 1, "forwarded_frames": 2,
               "forwarded_bytes": 9, "rate_frames": 1.0, "state_messages": 1,
               "state_records": 1, "state_rate": 1.0, "input_gaps": 0, "input_restarts": 0,
               "state_requests": 0, "state_refused": 0,
               "state": {"cases": 1, "units": 1, "sensors": 1, "sources": 1}}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
            "summary": ("_count", "_sum"), "gauge": ("",)}


def emitted_names() -> set[str]:
    """Every series name the family functions emit (a family with no samples included)."""
    names = {"citywall_status_age_seconds"}
    for fams in (console_families(FULL_CONSOLE), dispatch_families({}),
                 broker_families(FULL_BROKER)):
        for fam in fams:
            names |= {fam.name + s for s in SUFFIXES[fam.type]}
    return names


def test_grafana_dashboard_asks_only_for_metrics_that_exist():
    dash = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    assert dash["schemaVersion"] >= 36
    assert any(v.get("type") == "datasource" and v.get("query") == "prometheus"
               for v in dash["templating"]["list"])
    names = emitted_names()
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", ())]
    assert len(exprs) >= 9
    asked = {n for e in exprs for n in re.findall(r"\b(citywall_[a-z0-9_]+)", e)}
    assert asked and not asked - names, f"not emitted: {sorted(asked - names)}"
    for p in dash["panels"]:
        if p.get("type") != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
    # the panels an IT desk asked for
    joined = " ".join(exprs)
    for needed in ("citywall_records_accepted_total", "citywall_source_rejected_total",
                   "citywall_source_up", "citywall_source_missed_records_total",
                   "citywall_receive_backlog_records", "citywall_gui_busy_ratio",
                   "citywall_dispatch_ack_latency_seconds_bucket",
                   "citywall_broker_state_records_total", "citywall_broker_subscribers"):
        assert needed in joined, needed
    assert "histogram_quantile(0.95" in joined


def test_clients_that_send_nothing_cannot_pile_up_and_a_scrape_still_answers():
    from feeds.metrics import MAX_SCRAPES
    server = MetricsServer(0, "127.0.0.1", broker_families, process=False).start()
    idle = []
    try:
        server.publish({"publishers": 2})
        for _ in range(MAX_SCRAPES * 3):            # each opens and never sends a request
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.sendall(b"GET /met")
            idle.append(s)
        assert wait_until(lambda: server._httpd.turned_away >= MAX_SCRAPES, 10)
        for s in idle:
            s.close()
        body = b""
        for _ in range(50):                          # a slot frees as each idle one goes
            try:
                body = urllib.request.urlopen(server.url, timeout=5).read()
                break
            except OSError:
                time.sleep(0.1)
        assert b"citywall_broker_publishers 2.0" in body
    finally:
        for s in idle:
            s.close()
        server.close()


def test_a_document_that_cannot_be_written_out_keeps_the_last_good_one():
    server = MetricsServer(0, "127.0.0.1", broker_families, process=False).start()
    try:
        server.publish({"publishers": 2})
        server.publish({"publishers": 3,
                        "gate": {"refused_messages": {"\ud800": {"src_not_allowed": 1}}}})
        assert server.errors == 1
        body = urllib.request.urlopen(server.url, timeout=5).read()
        assert b"citywall_broker_publishers 2.0" in body
    finally:
        server.close()


def wait_until(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()

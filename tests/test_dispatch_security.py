"""The dispatch service with keys (issue #13), over real CURVE sockets on tcp loopback with real
keys made in tmp_path: who may connect, what each role may order in which districts, orders
recorded against the authenticated key (never the ``console`` claimed), and the audit. In
every refusal case nothing changes, the refusal is counted in the status, and the service
goes on answering good orders. The command line: ``tests/test_dispatch_security_cli.py``."""
from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import zmq

from feeds.dispatch_client import DispatchClient, SnapshotRefused
from feeds.dispatch_service import DispatchService
from feeds.keys import load_key, new_key
from feeds.orders import reason_code
from feeds.receiver import Receiver, wait_for
from feeds.roles import parse_roles
from feeds.security import ClientKeys, Gate, ServerKeys, TrustStore, serve
from situation.clock import ManualClock
from tests.pubhelp import TestPublisher, record
from tests.test_dispatch import T0, answer, dealer

ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 20.0          # the longest any wait may take (a bound, never a measurement)
NOW = T0 + 60_000                                 # 2026-11-24T00:01+08:00
DONGCHENG = dict(lon=116.40, lat=39.91)           # 110101
HAIDIAN = dict(lon=116.30, lat=39.96)             # 110108
ROLES = """# who may order what
[client.chief]
role = "commander"

[client.dongcheng]
role = "dispatcher"
districts = ["110101"]

[client.lobby]
role = "viewer"

[client.trainee]
role = "trainer"

[client.ops]
role = "commander"
"""
TRUSTED = ("chief", "dongcheng", "lobby", "trainee", "ops", "unlisted")   # not "stranger"


def make_keys(root: Path) -> SimpleNamespace:
    own, trust = root / "keys", root / "trust"
    trust.mkdir(parents=True)
    for name in ("svc", "publisher", "stranger", *TRUSTED):
        new_key(name, own)
    for name in TRUSTED:
        shutil.copy(own / f"{name}.key", trust / f"{name}.key")
    return SimpleNamespace(own=own, trust=trust,
                           secret=lambda n: load_key(own / f"{n}.key_secret", secret=True),
                           public=lambda n: load_key(own / f"{n}.key"))


def city_records(ts: int = T0) -> list[tuple[str, list[dict]]]:
    """Cases and units in Dongcheng and Haidian. C6 says Haidian in its district field but
    lies in Dongcheng: the field is what counts."""
    seq = iter(range(100))
    case = lambda **f: record("case", src="cases", seq=next(seq), ts=ts, **f)   # noqa: E731
    unit = lambda **f: record("unit", src="units", seq=next(seq), ts=ts, **f)   # noqa: E731
    return [("case", [case(case_id="C1", **DONGCHENG), case(case_id="C2", **DONGCHENG),
                      case(case_id="C5", **HAIDIAN),
                      case(case_id="C6", district="110108", **DONGCHENG)]),
            ("unit", [unit(unit_id="U1", callsign="东城-巡01", **DONGCHENG),
                      unit(unit_id="U2", callsign="东城-巡02", **DONGCHENG),
                      unit(unit_id="U5", callsign="海淀-巡05", **HAIDIAN)])]


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    Gate.of(context).stop()
    context.destroy(linger=0)


def start(ctx, tmp_path, roles: str | None = ROLES, **kw) -> SimpleNamespace:
    keys = make_keys(tmp_path)
    clock = ManualClock(NOW)
    pub = TestPublisher(ctx)
    svc = DispatchService([pub.endpoint], "tcp://127.0.0.1:*", "tcp://127.0.0.1:*",
                          tmp_path / "dispatch.sqlite3", now_ms=clock.now_ms, context=ctx,
                          snapshot_burst=10_000, roles=parse_roles(roles) if roles else None,
                          keys=ServerKeys(keys.secret("svc"), TrustStore(keys.trust)),
                          **kw).start()
    pub.wait_subscriber(WAIT_S)
    for topic, recs in city_records():
        pub.send(topic, recs)
    assert wait_for(lambda: (svc.status()["cases"], svc.status()["units"]) == (4, 3),
                    WAIT_S), svc.status()
    made = []

    def client(name: str, console: str | None = None, server: str = "svc"):
        c = DispatchClient(svc.dispatch_endpoint, console or f"console-{name}", context=ctx,
                           timeout_ms=60_000, keys=ClientKeys(keys.secret(name),
                                                              keys.public(server)))
        made.append(c)
        return c
    return SimpleNamespace(keys=keys, clock=clock, pub=pub, svc=svc, client=client,
                           made=made, db=tmp_path / "dispatch.sqlite3")


@pytest.fixture
def cities(ctx, tmp_path):
    """``start``, stopped after the test."""
    made = []
    yield lambda **kw: made.append(start(ctx, tmp_path, **kw)) or made[-1]
    for c in made:
        for cl in c.made:
            cl.close()
        c.svc.stop()
        c.pub.close()


@pytest.fixture
def city(cities):
    return cities()


def curve_publisher(ctx, keys, directory: Path) -> tuple[zmq.Socket, str]:
    """A CURVE XPUB with the publisher's key, trusting the service's key only."""
    trust = directory / "pub-trust"
    trust.mkdir()
    shutil.copy(keys.own / "svc.key", trust / "svc.key")
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.LINGER, 0)
    serve(pub, keys.secret("publisher"), TrustStore(trust), "feed")
    return pub, f"tcp://127.0.0.1:{pub.bind_to_random_port('tcp://127.0.0.1')}"


def picture(svc) -> tuple:
    return ({k: svc.case(k) for k in ("C1", "C2", "C5", "C6")},
            {k: svc.unit(k) for k in ("U1", "U2", "U5")})


def refused(client: DispatchClient, type_: str, **fields) -> str:
    ack = answer(client, client.send(type_, **fields), WAIT_S)
    assert ack.result == "rejected" and reason_code(ack.reason) == "not_allowed", ack
    return ack.reason


def accepted(client: DispatchClient, type_: str, **fields) -> None:
    ack = answer(client, client.send(type_, **fields), WAIT_S)
    assert ack.result == "accepted", ack.reason


def unanswered(client: DispatchClient, oid: str, wait_s: float = 1.5) -> bool:
    """No answer to ``oid`` within ``wait_s`` (a bounded wait for something that must not
    come)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if any(ev[0] in ("ack", "snapshot") and ev[1] == oid for ev in client.poll(50)):
            return False
    return True


def still_serving(city) -> None:
    snap = city.client("chief").snapshot(WAIT_S)        # a good order is answered
    assert snap.role == "commander" and snap.districts is None


def handshakes(city, label: str, kind: str) -> int:
    return city.svc.status()["handshakes_failed"].get(label, {}).get(kind, 0)


# ---- who may connect ------------------------------------------------------------------------
def test_a_client_without_a_key_gets_nothing(ctx, city):
    before = picture(city.svc)
    raw = dealer(ctx, city.svc.dispatch_endpoint)     # NULL security
    feed = Receiver([city.svc.feed_endpoint], context=ctx).start()
    try:
        try:               # queued, or refused at once when the link is already gone
            raw.send(json.dumps({"v": 1, "type": "dispatch", "order_id": "nokey", "console":
                                 "chief", "ts": T0, "case_id": "C1", "unit_id": "U1"}
                                ).encode(), zmq.NOBLOCK)
        except zmq.Again:
            pass
        assert not raw.poll(1500)
        # NULL meets CURVE: refused before the ZAP gate is asked, so no peer address is
        # known; the bound socket's monitor counts it.
        assert wait_for(lambda: handshakes(city, "orders", "no_key") >= 1, WAIT_S)
        assert wait_for(lambda: handshakes(city, "feed", "no_key") >= 1, WAIT_S)
        batch, heard = feed.drain()
        assert batch.records == [] and not heard
        assert city.svc.status()["auth_refused"] == {}
        assert picture(city.svc) == before and city.svc.status()["received"] == 0
        still_serving(city)
    finally:
        raw.close(0)
        feed.stop()


def test_an_untrusted_key_is_refused_and_counted_by_address(city):
    before = picture(city.svc)
    stranger = city.client("stranger", console="console-chief")
    assert unanswered(stranger, stranger.send("dispatch", case_id="C1", unit_id="U1"))
    assert wait_for(lambda: city.svc.status()["auth_refused"].get("127.0.0.1", 0) >= 1, WAIT_S)
    assert handshakes(city, "orders", "key_refused") >= 1
    stranger.poll()
    assert stranger.status()["auth_failed"] >= 1          # the console can say why
    assert picture(city.svc) == before and city.svc.status()["received"] == 0
    still_serving(city)


def test_a_wrong_server_key_gets_nothing_and_breaks_nothing(city):
    before = picture(city.svc)
    lost = city.client("chief", server="publisher")        # the wrong server's key
    assert unanswered(lost, lost.send("dispatch", case_id="C1", unit_id="U1"))
    assert wait_for(lambda: handshakes(city, "orders", "wrong_server_key") >= 1, WAIT_S)
    assert picture(city.svc) == before and city.svc.status()["received"] == 0
    still_serving(city)


def test_without_its_zap_handler_the_service_lets_no_one_in(ctx, city):
    Gate.of(ctx).stop()              # libzmq alone would take any CURVE key (no User-Id)
    late = city.client("chief")
    assert unanswered(late, late.send("snapshot"))
    assert city.svc.status()["received"] == 0


def test_a_key_removed_while_connected(city):
    ops = city.client("ops")
    assert ops.snapshot(WAIT_S).role == "commander"                # connected and trusted
    before = picture(city.svc)
    (city.keys.trust / "ops.key").unlink()
    why = refused(ops, "dispatch", case_id="C1", unit_id="U1")      # its very next order
    assert "key ops is no longer trusted" in why and "已不再受信任" in why
    with pytest.raises(SnapshotRefused) as exc:
        ops.snapshot(WAIT_S)
    assert exc.value.code == "not_allowed"
    assert picture(city.svc) == before
    assert city.svc.status()["not_allowed"] == {"untrusted": 2}
    # A new connection with that key is refused at the handshake within 5 s.
    def refused_at_handshake() -> bool:
        c = city.client("ops")
        c.send("snapshot")
        return wait_for(lambda: (c.poll(), c.status()["auth_failed"] >= 1)[1], 1.0)
    assert wait_for(refused_at_handshake, 5.0, step_s=0)
    assert city.svc.status()["auth_refused"].get("127.0.0.1", 0) >= 1
    still_serving(city)


# ---- what each role may do ------------------------------------------------------------------
def test_a_viewer_may_look_but_not_order(city):
    lobby = city.client("lobby")
    snap = lobby.snapshot(WAIT_S)
    assert (snap.role, snap.districts) == ("viewer", None)
    assert (lobby.role, lobby.districts) == ("viewer", None)
    assert sorted(c.case_id for c in snap.cases) == ["C1", "C2", "C5", "C6"]
    before = picture(city.svc)
    why = refused(lobby, "dispatch", case_id="C1", unit_id="U1")
    assert why == ("not_allowed: viewer lobby may not dispatch / 观察员 lobby 无派遣权限")
    assert "may not recall" in refused(lobby, "recall", unit_id="U1")
    assert picture(city.svc) == before
    st = city.svc.status()
    assert st["not_allowed"] == {"viewer": 2} and st["rejected"] == {"not_allowed": 2}
    still_serving(city)


def test_a_district_dispatcher_orders_in_its_districts_only(city):
    d = city.client("dongcheng")
    snap = d.snapshot(WAIT_S)
    assert (snap.role, snap.districts) == ("dispatcher", ["110101"])
    assert d.districts == ["110101"]
    before = picture(city.svc)
    why = refused(d, "dispatch", case_id="C1", unit_id="U5")        # a Haidian unit
    assert "unit 海淀-巡05: it is in district 110108, not one of 110101" in why
    assert "case C5: it is in district 110108" in refused(d, "dispatch", case_id="C5",
                                                          unit_id="U1")
    assert "case C6: it is in district 110108" in refused(d, "dispatch", case_id="C6",
                                                          unit_id="U1")   # its field counts
    assert picture(city.svc) == before
    assert city.svc.status()["not_allowed"] == {"dispatcher": 3}
    accepted(d, "dispatch", case_id="C1", unit_id="U1")               # its own
    assert (city.svc.unit("U1").status, city.svc.case("C1").unit_id) == ("dispatched", "U1")
    accepted(d, "recall", unit_id="U1")
    assert city.svc.unit("U1").status == "available"


def test_a_commander_orders_anywhere_and_a_trainer_nowhere(ctx, city):
    feed = Receiver([city.svc.feed_endpoint], context=ctx, keys=ClientKeys(
        city.keys.secret("lobby"), city.keys.public("svc"))).start()   # a viewer watches
    chief, heard = city.client("chief"), []
    try:
        assert wait_for(lambda: (heard.extend(feed.drain()[0].records), heard)[1], WAIT_S)
        accepted(chief, "dispatch", case_id="C5", unit_id="U5")      # Haidian
        accepted(chief, "dispatch", case_id="C1", unit_id="U1")      # Dongcheng
        assert wait_for(lambda: (heard.extend(feed.drain()[0].records),
                                 {getattr(r, "unit_id", None) for r in heard
                                  if r.src == "dispatch"} >= {"U1", "U5"})[1], WAIT_S)
    finally:
        feed.stop()
    trainee = city.client("trainee")
    with pytest.raises(SnapshotRefused) as exc:                       # not even a look
        trainee.snapshot(WAIT_S)
    assert "trainer trainee may only order a training desk" in exc.value.reason
    before = picture(city.svc)
    refused(trainee, "recall", unit_id="U1")
    unlisted = city.client("unlisted")                     # trusted, but given no role
    assert "key unlisted has no role" in refused(unlisted, "dispatch", case_id="C2",
                                                 unit_id="U2")
    assert picture(city.svc) == before
    assert city.svc.status()["not_allowed"] == {"trainer": 2, "unlisted": 1}


def test_without_a_roles_file_every_trusted_key_commands(cities):
    c = cities(roles=None)
    anyone = c.client("unlisted")
    assert anyone.snapshot(WAIT_S).role == "commander"
    accepted(anyone, "dispatch", case_id="C5", unit_id="U5")
    assert c.svc.status()["roles"] == "every trusted key is a commander"


# ---- nothing spoofed -------------------------------------------------------------------------
def audit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "feeds.dispatch_service", "audit", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def rows(out: subprocess.CompletedProcess) -> list[dict]:
    assert out.returncode == 0, out.stderr
    return list(csv.DictReader(io.StringIO(out.stdout)))


def test_the_claimed_console_is_not_believed_and_the_audit_says_who(city):
    posing = city.client("lobby", console="console-chief")        # a viewer posing as chief
    refused(posing, "dispatch", case_id="C1", unit_id="U1")
    city.clock.advance(3_600_000)                                   # 01:01
    chief = city.client("chief", console="console-lobby")         # claims the lobby's
    accepted(chief, "dispatch", case_id="C2", unit_id="U2")
    db = str(city.db)
    got = rows(audit("--db", db))
    assert [(r["client"], r["role"], r["console"], r["result"]) for r in got] == [
        ("lobby", "viewer", "console-chief", "rejected"),
        ("chief", "commander", "console-lobby", "accepted")]
    first, second = got
    assert first["time"] == "2026-11-24T00:01:00.000+08:00" and first["type"] == "dispatch"
    assert (first["case_id"], first["unit_id"]) == ("C1", "U1")
    assert first["reason"].startswith("not_allowed: viewer lobby may not dispatch")
    assert second["time"] == "2026-11-24T01:01:00.000+08:00" and second["reason"] == ""
    assert len(first["order_id"]) == 32
    assert [r["client"] for r in rows(audit("--db", db, "--console", "chief"))] == ["chief"]
    assert rows(audit("--db", db, "--console", "console-chief")) == []   # claims don't count
    assert [r["client"] for r in rows(audit("--db", db, "--since", "2026-11-24T00:30"))] \
        == ["chief"]
    assert len(rows(audit("--db", db, "--since", str(T0)))) == 2
    out = audit("--db", str(city.db.parent / "missing.sqlite3"))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    out = audit("--db", db, "--since", "yesterday")
    assert out.returncode == 2 and "not a time" in out.stderr


OLD_ORDERS = """CREATE TABLE orders (order_id TEXT PRIMARY KEY, console TEXT NOT NULL,
    type TEXT NOT NULL, request TEXT NOT NULL, reply TEXT NOT NULL, result TEXT NOT NULL,
    ts INTEGER NOT NULL)"""


def test_a_database_from_before_keys_opens_and_keeps_its_orders(cities, tmp_path):
    db = tmp_path / "dispatch.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute(OLD_ORDERS)
    conn.execute("INSERT INTO orders VALUES (?,?,?,?,?,?,?)",
                 ("old-1", "console-1", "recall", '{"unit_id":"U9"}',
                  '{"reason":null}', "accepted", T0))
    conn.commit()
    conn.close()
    assert [(r["order_id"], r["client"], r["role"], r["unit_id"])
            for r in rows(audit("--db", str(db)))] == [("old-1", "-", "-", "U9")]
    c = cities()                                             # the same file: migrated
    accepted(c.client("chief"), "dispatch", case_id="C1", unit_id="U1")
    got = rows(audit("--db", str(db)))
    assert [(r["order_id"], r["client"]) for r in got][0] == ("old-1", "-")
    assert [(r["client"], r["role"]) for r in got][1:] == [("chief", "commander")]


def test_no_secret_key_leaks(city, caplog):
    refused(city.client("lobby"), "dispatch", case_id="C1", unit_id="U1")
    city.client("stranger").send("snapshot")
    wait_for(lambda: city.svc.status()["auth_refused"], WAIT_S)
    city.svc.stop()
    secrets = [load_key(p, secret=True).secret for p in city.keys.own.glob("*.key_secret")]
    places = [json.dumps(city.svc.status(), default=str).encode(), caplog.text.encode(),
              city.db.read_bytes(), audit("--db", str(city.db)).stdout.encode(),
              repr(city.keys.secret("svc")).encode()]
    assert all(s not in p for s in secrets for p in places)


# ---- sources over CURVE ------------------------------------------------------------------------
def test_the_service_hears_a_curve_publisher_with_its_own_key(ctx, tmp_path):
    keys = make_keys(tmp_path)
    pub, ep = curve_publisher(ctx, keys, tmp_path)
    svcs = []
    try:
        for server, db in (("publisher", "good.sqlite3"), ("stranger", "bad.sqlite3")):
            svcs.append(DispatchService(
                [ep], "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", tmp_path / db, context=ctx,
                keys=ServerKeys(keys.secret("svc"), TrustStore(keys.trust)),
                source_keys=ClientKeys(keys.secret("svc"), keys.public(server))).start())
        assert pub.poll(int(WAIT_S * 1000)) and pub.recv()[:1] == b"\x01"   # the good one
        for topic, recs in city_records():
            pub.send_multipart([topic.encode(), json.dumps(recs).encode()])
        good, bad = svcs
        assert wait_for(lambda: good.status()["units"] == 3, WAIT_S)
        assert wait_for(lambda: bad.status()["source_auth_failed"].get(ep, 0) >= 1, WAIT_S)
        assert bad.status()["units"] == 0 and good.status()["sources_secured"]
    finally:
        for s in svcs:
            s.stop()
        pub.close(0)

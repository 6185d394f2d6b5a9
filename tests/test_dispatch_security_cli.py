"""The dispatch service's command line with keys (issue #13): every setting it cannot use is
one line and exit 2 before anything is bound; secure unless told otherwise (``--insecure``);
and the whole secured command line end to end — a CURVE publisher, roles, orders, the audit.
The service runs as a subprocess (``python -m feeds.dispatch_service``)."""
from __future__ import annotations

import json
import re
import select
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from feeds.dispatch_client import DispatchClient
from feeds.dispatch_service import DispatchService
from feeds.keys import load_key
from feeds.receiver import wait_for
from feeds.roles import RolesError, parse_roles
from feeds.security import ClientKeys, SecurityError
from tests.test_dispatch_security import (ROLES, ROOT, WAIT_S, accepted, audit, city_records,
                                          ctx, curve_publisher, make_keys, refused, rows)

assert ctx                                   # the fixture, used by name below


# ---- the command line ------------------------------------------------------------------------
def cli(*args: str, run_for: str = "0.3") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "feeds.dispatch_service", *args,
                           "--run-for", run_for], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def one_line_exit_2(out: subprocess.CompletedProcess, *words: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    for word in words:
        assert word in out.stderr, out.stderr


@pytest.fixture
def cmd(tmp_path):
    keys = make_keys(tmp_path)
    base = ["--source", "tcp://127.0.0.1:1", "--dispatch", "tcp://127.0.0.1:*", "--feed",
            "tcp://127.0.0.1:*", "--db", str(tmp_path / "d.sqlite3")]
    secured = base + ["--key", str(keys.own / "svc.key_secret"), "--trust", str(keys.trust)]
    return SimpleNamespace(keys=keys, base=base, secured=secured, dir=tmp_path)


def test_cli_refuses_key_files_it_cannot_use(cmd):
    junk = cmd.dir / "junk.key_secret"
    junk.write_text("not a key\n")
    junk.chmod(0o600)
    one_line_exit_2(cli(*cmd.base, "--key", str(junk), "--trust", str(cmd.keys.trust)),
                    "--key", "not a CURVE key file")
    one_line_exit_2(cli(*cmd.base, "--key", str(cmd.dir / "none.key_secret"), "--trust",
                        str(cmd.keys.trust)), "no such key file")
    secret = cmd.keys.own / "svc.key_secret"
    secret.chmod(0o644)
    out = cli(*cmd.secured)
    one_line_exit_2(out, "others can read", "--insecure")
    assert load_key(secret, secret=True, insecure=True).secret.decode() not in out.stderr
    out = cli(*cmd.secured, "--insecure")
    assert out.returncode == 0 and "INSECURE: secret key svc is readable by others" in out.stdout
    one_line_exit_2(cli(*cmd.base, "--key", str(secret), "--insecure"), "--key needs --trust")
    one_line_exit_2(cli(*cmd.secured, "--insecure", "--source-server-key",
                        str(cmd.keys.own / "bad.key")), "--source-server-key", "no such")
    one_line_exit_2(cli(*cmd.secured, "--insecure", "--source", "tcp://127.0.0.1:2",
                        *["--source-server-key", str(cmd.keys.own / "publisher.key")] * 3),
                    "given 3 times for 2 --source")


@pytest.mark.parametrize("text, words", [
    ('[client.chief]\nrole = "boss"\n', ":2: [client.chief]: unknown role 'boss'"),
    ('[client.chief]\nrole = "commander\n', ":2: "),
    ('[clients.chief]\nrole = "viewer"\n', ":1: unknown table or key 'clients'"),
    ('[client.chief]\nrole = "viewer"\ncolour = "red"\n', ":3: [client.chief]: unknown key"),
    ('[client.d]\nrole = "dispatcher"\ndistricts = ["东城"]\n', ":3: [client.d]: district"),
    ('[client.d]\nrole = "dispatcher"\ndistricts = ["999999"]\n', "not one of the city's"),
])
def test_cli_refuses_a_roles_file_it_cannot_use(cmd, text, words):
    roles = cmd.dir / "roles.toml"
    roles.write_text(text)
    one_line_exit_2(cli(*cmd.secured, "--roles", str(roles)), f"{roles}", words)
    with pytest.raises(RolesError, match=re.escape(words)):
        parse_roles(text, str(roles))


@pytest.mark.parametrize("bind", ["tcp://0.0.0.0:*", "tcp://*:*"])
def test_cli_refuses_to_bind_beyond_loopback_without_a_key(cmd, bind):
    args = [a if a != "tcp://127.0.0.1:*" else bind for a in cmd.base]
    one_line_exit_2(cli(*args), bind, "--key", "--insecure")
    out = cli(*args, "--insecure")
    assert out.returncode == 0 and "not secured INSECURE: " in out.stdout, out.stderr
    out = cli(*cmd.secured[:-4], "--source", "tcp://0.0.0.0:5556", *cmd.secured[-4:])
    one_line_exit_2(out, "0.0.0.0:5556", "--source-server-key")


def test_in_process_the_same_rules_hold(ctx, tmp_path):
    with pytest.raises(SecurityError, match="0.0.0.0"):
        DispatchService([], "tcp://0.0.0.0:*", "tcp://127.0.0.1:*", tmp_path / "a.sqlite3",
                        context=ctx).open()
    svc = DispatchService([], "tcp://0.0.0.0:*", "tcp://127.0.0.1:*", tmp_path / "b.sqlite3",
                          context=ctx, insecure=True).open()
    try:
        st = svc.status()
        assert st["secured"] is False and st["insecure"] is True
        assert st["insecure_why"][0].endswith("unencrypted beyond loopback")
    finally:
        svc.close()


def test_cli_secured_end_to_end(ctx, cmd):
    """The command line with every key option: a CURVE publisher, roles, orders, the audit."""
    keys, roles = cmd.keys, cmd.dir / "roles.toml"
    roles.write_text(ROLES)
    pub, ep = curve_publisher(ctx, keys, cmd.dir)
    args = [a if a != "tcp://127.0.0.1:1" else ep for a in cmd.secured]
    proc = subprocess.Popen([sys.executable, "-m", "feeds.dispatch_service", *args,
                             "--roles", str(roles), "--source-server-key",
                             str(keys.own / "publisher.key"), "--run-for", "60"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    clients = []
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        assert "secured by key svc" in line and "INSECURE" not in line, line
        orders_ep = re.search(r"orders (\S+) feed", line).group(1)
        assert pub.poll(int(WAIT_S * 1000)) and pub.recv()[:1] == b"\x01"
        for topic, recs in city_records(time.time_ns() // 1_000_000):
            pub.send_multipart([topic.encode(), json.dumps(recs).encode()])
        for name in ("chief", "lobby"):
            clients.append(DispatchClient(orders_ep, f"console-{name}", context=ctx,
                                          keys=ClientKeys(keys.secret(name),
                                                          keys.public("svc"))))
        chief, lobby = clients
        assert wait_for(lambda: len(chief.snapshot(WAIT_S).units) == 3, WAIT_S)
        refused(lobby, "dispatch", case_id="C1", unit_id="U1")
        accepted(chief, "dispatch", case_id="C1", unit_id="U1")
        got = rows(audit("--db", str(cmd.dir / "d.sqlite3")))
        assert [(r["client"], r["role"], r["result"]) for r in got] == [
            ("lobby", "viewer", "rejected"), ("chief", "commander", "accepted")]
    finally:
        for c in clients:
            c.close()
        proc.kill()
        proc.wait(10)
        proc.stdout.close()
        pub.close(0)

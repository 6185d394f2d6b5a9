"""The site config (feeds/site_config.py): one TOML file describes a centre; each program
reads its own section, checked by the program's own parser, and every problem is one line
``FILE:LINE: problem`` with exit code 2."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import main
from feeds import broker_cli, dispatch_cli
from feeds.key_args import pair_server_keys
from feeds.keys import new_key
from feeds.publishers import load_publishers
from feeds.site_config import ConfigError, apply_config, config_argv, load_section
from tests.pubhelp import free_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "centre.toml"


def write(folder: Path, text: str, name: str = "centre.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    f = folder / name
    f.write_text(text, encoding="utf-8")
    return f


def wall_argv(f: Path, argv=(), wall=None) -> list[str]:
    return config_argv(main.build_parser(), str(f), "wall", list(argv), wall,
                       main.CONFIG_DROPS)


def wall_args(f: Path, argv=(), wall=None) -> argparse.Namespace:
    return main.build_parser().parse_args(wall_argv(f, argv, wall))


def problem(f: Path, argv=(), wall=None) -> str:
    with pytest.raises(ConfigError) as exc:
        wall_argv(f, argv, wall)
    text = str(exc.value)
    assert "\n" not in text
    return text


def line_of(f: Path, needle: str) -> int:
    for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return n
    raise AssertionError(needle)


def run_main(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def broker_args(f: Path, argv=()) -> argparse.Namespace:
    p = broker_cli.parser()
    return p.parse_args(config_argv(p, str(f), "broker", list(argv)))


def run_broker(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "feeds.broker", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)



TWO_FEEDS = """\
[wall]
lang = "zh"
record_max_mb = 100

[[wall.feed]]
endpoint = "tcp://10.0.0.1:5556"
server_key = "keys/broker.key"
state = "tcp://10.0.0.1:5559"

[[wall.feed]]
endpoint = "tcp://10.0.0.2:5558"
server_key = "keys/dispatch.key"
"""


@pytest.fixture
def keyed(tmp_path) -> Path:
    """A folder with keys/broker.key, keys/dispatch.key and keys/wall.key_secret."""
    keys = tmp_path / "site" / "keys"
    for name in ("broker", "dispatch", "wall"):
        new_key(name, str(keys))
    return tmp_path / "site"


# ---- a good config ---------------------------------------------------------------------------
def test_no_config_leaves_the_command_line_alone():
    p = main.build_parser()
    assert apply_config(p, ["--demo", "--lang", "en"], "wall", prog="citywall") == \
        ["--demo", "--lang", "en"]
    assert apply_config(p, [], "wall", prog="citywall") == []


def test_feeds_pair_with_their_server_key_and_state(keyed):
    f = write(keyed, TWO_FEEDS)
    args = wall_args(f)
    assert args.feed == ["tcp://10.0.0.1:5556", "tcp://10.0.0.2:5558"]
    assert args.lang == "zh" and args.record_max_mb == 100
    broker, dispatch = str(keyed / "keys" / "broker.key"), str(keyed / "keys" / "dispatch.key")
    common, own = pair_server_keys(args._key_order)
    assert common is None
    assert own == {"tcp://10.0.0.1:5556": broker, "tcp://10.0.0.2:5558": dispatch}
    assert args._key_order[:3] == [("feed", "tcp://10.0.0.1:5556"), ("server_key", broker),
                                   ("state", "tcp://10.0.0.1:5559")]
    assert args.state == ["tcp://10.0.0.1:5559"]


def test_flags_override_the_config(keyed):
    f = write(keyed, TWO_FEEDS)
    args = wall_args(f, ["--lang", "en", "--record-max", "7"])       # an abbreviation too
    assert args.lang == "en" and args.record_max_mb == 7
    argv = wall_argv(f, ["--lang", "en"])
    assert [t for t in argv if t.startswith("--lang")] == ["--lang"]
    # a --feed on the command line replaces the config's list, keys and state with it
    args = wall_args(f, ["--feed", "tcp://127.0.0.1:7000"])
    assert args.feed == ["tcp://127.0.0.1:7000"]
    assert args.server_key is None and args.state is None
    assert args._key_order == [("feed", "tcp://127.0.0.1:7000")]
    assert args.lang == "zh"
    # a replay on the command line drops the config's network (it would be refused with it)
    args = wall_args(f, ["--replay", "day.mcap"])
    assert args.replay == "day.mcap" and not args.feed and not args.server_key
    main.check_replay_options(args)


def test_walls_override_the_shared_wall(keyed):
    f = write(keyed, TWO_FEEDS + """
[walls.city]
lang = "en"
key = "keys/wall.key_secret"
metrics_port = 9101
districts = "110101,110105"

[walls.lobby]
console = true
districts = ["110101"]

[[walls.lobby.feed]]
endpoint = "tcp://10.0.0.9:5556"
""")
    city = wall_args(f, wall="city")
    assert city.lang == "en" and city.record_max_mb == 100 and city.metrics_port == 9101
    assert city.key == str(keyed / "keys" / "wall.key_secret")
    assert city.districts == ("110101", "110105")
    assert len(city.feed) == 2                            # the shared list
    lobby = wall_args(f, wall="lobby")
    assert lobby.console and lobby.lang == "zh" and lobby.districts == ("110101",)
    assert lobby.feed == ["tcp://10.0.0.9:5556"]          # its own list replaces the shared
    assert lobby.server_key is None and lobby.state is None
    g = write(keyed, '[wall]\nconsole_id = "-dash"\ninsecure = false\nheadless = true\n',
              "g.toml")
    args = wall_args(g)
    assert args.console_id == "-dash" and args.headless and not args.insecure


def test_relative_paths_are_taken_from_the_config_folder(keyed, tmp_path, monkeypatch):
    (keyed / "out").mkdir()
    f = write(keyed, """\
[wall]
key = "keys/wall.key_secret"
status_out = "out/status.json"
record_dir = "recordings"
layout = "wall-3"
shifts = "shifts"
""")
    monkeypatch.chdir(tmp_path)                 # not the config's folder
    args = wall_args(f.relative_to(tmp_path))
    assert args.key == str(keyed / "keys" / "wall.key_secret")
    assert args.status_out == str(keyed / "out" / "status.json")
    assert args.record_dir == str(keyed / "recordings")
    assert args.layout == "wall-3" and args.shifts == "shifts"      # presets stay names


def test_the_dispatch_service_reads_its_section(keyed, capsys):
    (keyed / "trust").mkdir()
    f = write(keyed, """\
[wall]
lang = "en"

[dispatch_service]
source = ["tcp://10.0.0.1:5556", "tcp://10.0.0.3:5556"]
dispatch = "tcp://0.0.0.0:5557"
key = "keys/dispatch.key_secret"
trust = "trust"
db = "dispatch.db"
max_cases = 500
""")
    p = dispatch_cli.parser()
    argv = apply_config(p, ["--config", str(f), "--max-cases", "9"], "dispatch_service",
                        prog=dispatch_cli.PROG)
    args = p.parse_args(argv)
    assert args.source == ["tcp://10.0.0.1:5556", "tcp://10.0.0.3:5556"]
    assert args.trust == str(keyed / "trust") and args.db == str(keyed / "dispatch.db")
    assert args.max_cases == 9
    bad = write(keyed, "[dispatch_service]\nsource = [\"tcp://10.0.0.1:5556\"]\nroles = "
                       "\"roles.toml\"\n", "bad.toml")
    with pytest.raises(SystemExit) as exc:
        dispatch_cli.main(["--config", str(bad)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == f"feeds.dispatch_service: error: {bad}:3: roles: no such file 'roles.toml'\n"


def test_the_example_centre_loads(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(EXAMPLE, site / "centre.toml")
    for name in ("city-wall", "commander-1", "commander-2", "dongcheng-wall", "broker",
                 "dispatch", "bridge"):
        new_key(name, str(site / "keys"))
    for folder in ("trust/walls", "trust/publishers", "trust/dispatch", "history"):
        (site / folder).mkdir(parents=True)
    (site / "publishers.toml").write_text('[publisher.simulator]\nsrc = ["demo-city"]\n')
    (site / "roles.toml").write_text('[client.commander-1]\nrole = "commander"\n')
    (site / "roster.csv").write_text("unit_id,district,shift\n")
    (site / "history" / "demand.parquet").write_bytes(b"")
    f = site / "centre.toml"
    walls = {w: wall_args(f, wall=w) for w in ("city", "commander-1", "commander-2",
                                               "dongcheng")}
    assert walls["city"].layout == "wall-3" and walls["city"].record_max_mb == 4096
    assert walls["city"].record_dir == str(site / "recordings")
    assert walls["city"].metrics_port == 9101
    assert walls["commander-1"].console and walls["commander-2"].console
    assert walls["commander-2"].lang == "en"
    assert walls["dongcheng"].districts == ("110101",)
    for args in walls.values():
        common, own = pair_server_keys(args._key_order)
        assert set(own) == set(args.feed) and len(args.feed) == 2
        assert os.path.isfile(args.key)
    with pytest.raises(ConfigError, match="several walls"):
        wall_argv(f)
    broker = broker_args(f)
    assert broker.ins == ["tcp://0.0.0.0:5555"] and broker.out == "tcp://0.0.0.0:5556"
    assert broker.state == "tcp://0.0.0.0:5559" and broker.metrics_port == 9102
    assert broker.key == str(site / "keys" / "broker.key_secret")
    assert broker.trust == str(site / "trust" / "walls")
    assert broker.in_trust == str(site / "trust" / "publishers")
    assert broker.publishers == str(site / "publishers.toml")
    assert load_publishers(broker.publishers) == {"simulator": frozenset({"demo-city"})}
    assert broker.status_out == str(site / "broker-status.json")
    assert not broker.upstream and not getattr(broker, "_key_order", None)
    # the commented-out upstream example, taken in: one --upstream with its key and state
    text = f.read_text(encoding="utf-8")
    start = text.index("# [[broker.upstream]]")
    end = text.index("\n\n", start)
    g = write(site, text[:start] + "\n".join(line[2:] for line in
                                             text[start:end].split("\n")) + text[end:], "g.toml")
    assert broker_args(g)._key_order == [
        ("upstream", "tcp://broker.centre.local:5556"),
        ("server_key", str(site / "keys" / "broker.key")),
        ("upstream_state", "tcp://broker.centre.local:5559")]
    (site / "keys" / "bridge.mqtt-pass").write_text("pw\n")
    (site / "keys" / "mqtt-ca.pem").write_text("")
    from feeds import mqtt_bridge
    from feeds.mqtt_args import mqtt_settings
    bridge = mqtt_bridge.build_parser().parse_args(
        config_argv(mqtt_bridge.build_parser(), str(f), "mqtt_bridge", []))
    assert bridge.feed == "tcp://0.0.0.0:5560" and bridge.roster == str(site / "roster.csv")
    [mqtt] = mqtt_settings(bridge)
    assert (mqtt.name, mqtt.password, mqtt.ca) == (
        "mqtts://citywall-bridge@mqtt.centre.local:8883", "pw", str(site / "keys" / "mqtt-ca.pem"))
    assert [s.format for s in mqtt.subscriptions] == ["senml", "owntracks", "protocol"]
    svc = dispatch_cli.parser().parse_args(
        config_argv(dispatch_cli.parser(), str(f), "dispatch_service", []))
    assert svc.roles == str(site / "roles.toml") and svc.source_server_key == [
        str(site / "keys" / "broker.key")]


def test_the_broker_reads_its_section(keyed):
    f = write(keyed, """\
[broker]
in = ["tcp://127.0.0.1:5555", "tcp://127.0.0.1:5565"]
out = "tcp://127.0.0.1:5556"
state = "tcp://127.0.0.1:5559"                 # the broker's own state service

[[broker.upstream]]
endpoint = "tcp://10.0.0.1:5556"
server_key = "keys/broker.key"
state = "tcp://10.0.0.1:5559"                  # the upstream's: --upstream-state

[[broker.upstream]]
state = "tcp://10.0.0.2:5559"                  # the argv order is the table's, not the file's
server_key = "keys/dispatch.key"
endpoint = "tcp://10.0.0.2:5556"
""")
    broker, dispatch = str(keyed / "keys" / "broker.key"), str(keyed / "keys" / "dispatch.key")
    args = broker_args(f)
    assert args.ins == ["tcp://127.0.0.1:5555", "tcp://127.0.0.1:5565"]
    assert args.state == "tcp://127.0.0.1:5559"
    assert args._key_order == [
        ("upstream", "tcp://10.0.0.1:5556"), ("server_key", broker),
        ("upstream_state", "tcp://10.0.0.1:5559"),
        ("upstream", "tcp://10.0.0.2:5556"), ("server_key", dispatch),
        ("upstream_state", "tcp://10.0.0.2:5559")]
    # the command line's --upstream replaces the tables, with their keys and states
    args = broker_args(f, ["--upstream", "tcp://127.0.0.1:7000", "--in", "tcp://127.0.0.1:7001"])
    assert args._key_order == [("upstream", "tcp://127.0.0.1:7000")]
    assert args.server_key is None and args.upstream_state is None
    assert args.ins == ["tcp://127.0.0.1:7001"] and args.state == "tcp://127.0.0.1:5559"
    g = write(keyed, '[broker]\nout = "tcp://127.0.0.1:5556"\n\n[[broker.upstream]]\n'
                     'endpoint = "tcp://10.0.0.1:5556"\nstate = "tcp://nowhere"\n'
                     'server_kee = "keys/broker.key"\n', "g.toml")
    with pytest.raises(ConfigError) as exc:
        broker_args(g)
    assert str(exc.value) == (f"{g}:7: unknown key 'server_kee' in [[broker.upstream]] "
                              "(did you mean 'server_key'?)")
    g.write_text(g.read_text().replace('server_kee = "keys/broker.key"\n', ""))
    with pytest.raises(ConfigError) as exc:
        broker_args(g)
    assert str(exc.value).startswith(f"{g}:6: upstream_state: malformed endpoint 'tcp://nowhere'")
    h = write(keyed, '[broker]\nout = "tcp://127.0.0.1:5556"\nin_trust = "nowhere"\n', "h.toml")
    with pytest.raises(ConfigError) as exc:
        broker_args(h)
    assert str(exc.value) == f"{h}:3: in_trust: no such directory 'nowhere'"


def test_the_broker_exits_2_with_one_line(tmp_path):
    f = write(tmp_path, """\
[broker]
in = "tcp://127.0.0.1:5555"
out = "tcp://127.0.0.1:5556"
key = "keys/nope.key_secret"
""")
    r = run_broker("--config", str(f))
    assert (r.returncode, r.stderr) == (
        2, f"python -m feeds.broker: error: {f}:4: key: no such file (the value given on "
           "line 4 is not shown: it may be a secret)\n")


def test_a_broker_runs_from_its_section(tmp_path):
    ep = {k: f"tcp://127.0.0.1:{free_port()}" for k in ("in1", "in2", "out", "state")}
    (tmp_path / "site" / "status").mkdir(parents=True)
    f = write(tmp_path / "site", f"""\
[broker]
in = ["{ep['in1']}", "{ep['in2']}"]
out = "{ep['out']}"
state = "{ep['state']}"
status_out = "status/broker.json"
status_every = 0.2
""")
    r = run_broker("--config", str(f), "--run-for", "1")
    assert r.returncode == 0, r.stderr
    assert f"in {ep['in1']} {ep['in2']} upstream - out {ep['out']} state {ep['state']}" \
        in r.stdout
    status = json.loads((tmp_path / "site" / "status" / "broker.json").read_text())
    assert status["in"] == [ep["in1"], ep["in2"]] and status["out"] == ep["out"]
    assert status["state_endpoint"] == ep["state"] and status["secured"] is False


# ---- mistakes: one line, the right line ------------------------------------------------------
def test_unknown_key_names_its_line_and_the_closest(tmp_path):
    f = write(tmp_path, '''\
[wall]
lang = "zh"
console_id = """
feeed = "this is inside a string"
"""
districts = [
  "110101",   # feeed = 1
]
"feeed" = "tcp://127.0.0.1:5556"
''')
    assert problem(f) == f"{f}:9: unknown key 'feeed' in [wall] (did you mean 'feed'?)"


def test_unknown_key_in_a_wall_and_in_a_feed_table(tmp_path):
    f = write(tmp_path, """\
[wall]
lang = "zh"

[walls.city]
console = true
record_max_mbb = 10

[walls.other]
lang = "en"
""")
    assert problem(f, wall="city") == (f"{f}:6: unknown key 'record_max_mbb' in [walls.city] "
                                       "(did you mean 'record_max_mb'?)")
    g = write(tmp_path, """\
[wall]
lang = "zh"

[[wall.feed]]
endpoint = "tcp://127.0.0.1:5556"

[[wall.feed]]
endpoint = "tcp://127.0.0.1:5557"
server_kee = "x.key"
""", "g.toml")
    assert problem(g).startswith(f"{g}:9: unknown key 'server_kee' in [[wall.feed]] "
                                 "(did you mean 'server_key'?)")
    h = write(tmp_path, '[wall]\nlang = "zh"\n\n[wal]\nlang = "en"\n', "h.toml")
    assert problem(h) == f"{h}:4: unknown section 'wal' (did you mean [wall]?)"


def test_note_key_is_unknown_at_its_own_line(tmp_path):
    f = write(tmp_path, '[wall]\nlang = "zh"\n\n\nzzzz = 1\n')
    msg = problem(f)
    assert msg.startswith(f"{f}:5: unknown key 'zzzz' in [wall] (known: ")
    assert "record_max_mb" in msg and "feed" in msg


@pytest.mark.parametrize("setting, expected", [
    ('record_max_mb = "big"', "record_max_mb: expected a number, got a string ('big')"),
    ('lang = ["zh"]', "lang: expected a string, got a list"),
    ('lang = "fr"', "lang: 'fr' is not one of zh, en"),
    ('headless = "yes"', "headless: expected true or false, got a string"),
    ('metrics_port = 70000', "metrics_port: a port is 1 to 65535: 70000"),
    ('dispatch = "http://x"', "dispatch: malformed endpoint 'http://x'"),
    ('districts = ["999999"]', "districts: unknown district 999999"),
    ('record_max_mb = -1', "record_max_mb: must be a finite number greater than zero"),
])
def test_wrong_values_name_their_line(tmp_path, setting, expected):
    f = write(tmp_path, f'[wall]\n# a comment\n\n{setting}\n')
    msg = problem(f)
    assert msg.startswith(f"{f}:4: {expected}"), msg


def test_a_bad_feed_endpoint_names_its_line(tmp_path):
    f = write(tmp_path, """\
[wall]
[[wall.feed]]
endpoint = "tcp://127.0.0.1:5556"
[[wall.feed]]
state = "tcp://127.0.0.1:5559"
endpoint = "tcp://nowhere"
""")
    assert problem(f) == f"{f}:6: feed: malformed endpoint 'tcp://nowhere': use tcp://HOST:PORT"
    g = write(tmp_path, "[wall]\n[[wall.feed]]\nstate = \"tcp://127.0.0.1:5559\"\n", "g.toml")
    assert problem(g) == f"{g}:2: [[wall.feed]] number 1 has no endpoint"


def test_missing_files_name_their_line(keyed):
    f = write(keyed, """\
[wall]
key = "keys/wall.key_secret"
[[wall.feed]]
endpoint = "tcp://10.0.0.1:5556"
server_key = "keys/nope.key"
""")
    assert problem(f) == (f"{f}:5: server_key: no such file (the value given on line 5 is "
                          "not shown: it may be a secret)")
    g = write(keyed, '[wall]\ntrust = "nowhere"\n', "g.toml")
    assert problem(g) == f"{g}:2: trust: no such directory 'nowhere'"
    h = write(keyed, '[wall]\n\nstatus_out = "no/such/dir/status.json"\n', "h.toml")
    assert problem(h).startswith(f"{h}:3: status_out: no such directory ")
    i = write(keyed, '[wall]\nlayout = "my-layout.toml"\n', "i.toml")
    assert problem(i) == f"{i}:2: layout: no such file 'my-layout.toml'"


def test_a_toml_syntax_error_keeps_file_line(tmp_path):
    f = write(tmp_path, '[wall]\nlang = "zh"\nrecord_max_mb = \n')
    msg = problem(f)
    assert msg.startswith(f"{f}:3: Invalid value"), msg


def test_wall_names(tmp_path):
    f = write(tmp_path, '[wall]\n[walls.city]\n[walls.commander-1]\n')
    assert problem(f) == f"{f}: several walls (city, commander-1): give --wall NAME"
    assert problem(f, wall="cty") == (f"{f}: unknown wall 'cty' (did you mean 'city'?); "
                                      "walls: city, commander-1")
    g = write(tmp_path, '[wall]\nlang = "en"\n', "g.toml")
    assert wall_args(g).lang == "en"
    assert "has no [walls.NAME]" in problem(g, wall="city")
    h = write(tmp_path, '[broker]\nout = "tcp://0.0.0.0:5556"\n', "h.toml")
    assert problem(h) == f"{h}: no [wall] section (nor [walls.NAME])"
    with pytest.raises(ConfigError, match=r"no \[dispatch_service\] section"):
        load_section(str(g), "dispatch_service")


# ---- through main.py: one line on stderr, exit 2 ---------------------------------------------
def test_main_exits_2_with_one_line(tmp_path):
    f = write(tmp_path, '[wall]\nlang = "zh"\n\n[walls.city]\nfeeed = "tcp://127.0.0.1:1"\n')
    r = run_main("--config", str(f), "--wall", "city", "--list-screens")
    assert r.returncode == 2
    assert r.stderr == (f"citywall: error: {f}:5: unknown key 'feeed' in [walls.city] "
                        "(did you mean 'feed'?)\n")
    r = run_main("--config", str(f), "--list-screens")
    assert (r.returncode, r.stderr) == (
        2, f"citywall: error: {f}: several walls (city): give --wall NAME\n")


EVIL = {
    "huge string": lambda: '[wall]\nconsole_id = "' + "x" * (10 << 20) + '"\n',
    "deep arrays": lambda: "[wall]\nlang = " + "[" * 100_000 + "]" * 100_000 + "\n",
    "deep tables": lambda: "[wall]\nlang = " + "{a = " * 100_000 + "1" + "}" * 100_000 + "\n",
    "deep headers": lambda: "[walls.city" + ".a" * 100_000 + "]\nb = 1\n",
    "lone surrogate": lambda: '[wall]\nconsole_id = "\\ud800"\n',
    "surrogate bytes": lambda: '[wall]\nconsole_id = "\udcc0"\n',
    "nul in a path": lambda: '[wall]\nkey = "a\\u0000b"\n',
    "newline in a value": lambda: '[wall]\nlang = "zh\\nen"\ndispatch = "tcp://\\n\\r"\n',
}


@pytest.mark.parametrize("name", list(EVIL))
def test_an_evil_config_is_one_line_and_exit_2(tmp_path, capsys, name):
    f = tmp_path / "evil.toml"
    text = EVIL[name]()
    f.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(SystemExit) as exc:
        apply_config(main.build_parser(), ["--config", str(f), "--wall", "city"], "wall",
                     prog="citywall")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"citywall: error: {f}") and err.count("\n") == 1, err[:500]
    assert len(err) < 1000 and "Traceback" not in err


def test_an_evil_config_through_main(tmp_path):
    f = tmp_path / "evil.toml"
    f.write_text("[wall]\nlang = " + "[" * 100_000 + "]" * 100_000 + "\n")
    r = run_main("--config", str(f), "--list-screens")
    assert (r.returncode, r.stderr) == (2, f"citywall: error: {f}: nested too deeply\n")
    g = tmp_path / "surrogate.toml"
    g.write_text('[wall]\n\nconsole_id = "\\ud800"\n')
    r = run_main("--config", str(g), "--list-screens")
    assert r.returncode == 2 and r.stderr.startswith(f"citywall: error: {g}:3: ")
    assert r.stderr.count("\n") == 1


# ---- review 2 ----------------------------------------------------------------------------
GOOD = '[wall]\nlang = "en"\n[[wall.feed]]\nendpoint = "tcp://127.0.0.1:7001"\n'


def test_a_byte_order_mark_is_accepted(tmp_path):
    f = tmp_path / "bom.toml"
    f.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())             # Windows Notepad
    assert wall_argv(f) == ["--lang=en", "--feed=tcp://127.0.0.1:7001"]
    f.write_bytes(b"\xef\xbb\xbf" + GOOD.replace('"en"', '"fr"').encode())
    assert problem(f) == f"{f}:2: lang: 'fr' is not one of zh, en"     # lines unchanged


@pytest.mark.parametrize("setting, problem_text", [
    ('status_out = "adir"', "status_out: 'adir' is a directory"),
    ('export_open311 = "adir"', "export_open311: 'adir' is a directory"),
    ('debrief_out = "adir"', "debrief_out: 'adir' is a directory"),
    ('roster = "adir"', "roster: 'adir' is a directory, not a file"),
    ('history = "adir"', "history: 'adir' is a directory, not a file"),
    ('replay = "adir"', "replay: 'adir' is a directory, not a file"),
    ('layout = "adir/"', "layout: 'adir/' is a directory, not a file"),
    ('tiles = "adir.mbtiles"', "tiles: 'adir.mbtiles' is a directory, not a file"),
    ('trust = "afile"', "trust: 'afile' is not a directory"),
    ('record_dir = "afile"', "record_dir: 'afile' is not a directory"),
    ('key = "adir"', "key: is a directory, not a file (the value given on line 3 is not "
                     "shown: it may be a secret)"),
])
def test_a_directory_for_a_file_and_a_file_for_a_directory(tmp_path, setting, problem_text):
    (tmp_path / "adir").mkdir()
    (tmp_path / "adir.mbtiles").mkdir()
    (tmp_path / "afile").write_text("x")
    f = write(tmp_path, f'[wall]\nlang = "en"\n{setting}\n')
    assert problem(f) == f"{f}:3: {problem_text}"
    (tmp_path / "status.json").write_text("{}")         # an existing output file is fine
    g = write(tmp_path, '[wall]\nstatus_out = "status.json"\nrecord_dir = "adir"\n', "g.toml")
    assert wall_argv(g) == [f"--status-out={tmp_path / 'status.json'}",
                            f"--record-dir={tmp_path / 'adir'}"]


SECRET = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"


@pytest.mark.parametrize("setting", [
    f'key = "{SECRET}"',
    f'server_key = "{SECRET}"',
    f'key = ["{SECRET}"]',
    f'key = {{ s = "{SECRET}" }}',
    'key = "a\\u0000b"',
    f'key = "{"x" * 5000}"',
])
def test_a_pasted_secret_is_never_echoed(tmp_path, capsys, setting):
    f = write(tmp_path, f"[wall]\n\n{setting}\n")
    with pytest.raises(SystemExit):
        apply_config(main.build_parser(), ["--config", str(f)], "wall", prog="citywall")
    err = capsys.readouterr().err
    assert err.startswith(f"citywall: error: {f}:3: "), err
    assert SECRET not in err and "rq:rM" not in err and "xxxx" not in err and "u0000" not in err
    b = write(tmp_path, f"[broker]\nin = \"tcp://127.0.0.1:5555\"\n{setting}\n", "b.toml")
    with pytest.raises(ConfigError) as exc:
        config_argv(broker_cli.parser(), str(b), "broker", [])
    assert SECRET not in str(exc.value) and "rq:rM" not in str(exc.value)


def test_a_key_problem_says_the_value_is_not_shown(tmp_path):
    f = write(tmp_path, f'[wall]\nlang = "en"\nkey = "{SECRET}"\n')
    assert problem(f) == (f"{f}:3: key: no such file (the value given on line 3 is not "
                          "shown: it may be a secret)")
    g = write(tmp_path, "[wall]\nkey = 5\n", "g.toml")
    assert problem(g) == (f"{g}:2: key: expected a string, got a number (the value given on "
                          "line 2 is not shown: it may be a secret)")


@pytest.mark.parametrize("text, line", [
    (GOOD + '[walls.x]\nlang = "en"\nfeed = []\n', 7),
    ('[wall]\nfeed = []\n[walls.x]\nlang = "en"\n', 2),
    ('[walls.x]\nfeed = [\n]\n', 2),
])
def test_an_empty_feed_list_is_an_error(tmp_path, text, line):
    f = write(tmp_path, text)
    msg = problem(f, wall="x")
    assert msg.startswith(f"{f}:{line}: no feed: give at least one [[wall")
    assert msg.endswith(".feed]] table, or leave the key out"), msg


def test_an_empty_upstream_list_is_an_error(tmp_path):
    f = write(tmp_path, '[broker]\nin = "tcp://127.0.0.1:5555"\nupstream = []\n')
    with pytest.raises(ConfigError) as exc:
        config_argv(broker_cli.parser(), str(f), "broker", [])
    assert str(exc.value) == (f"{f}:3: no upstream: give at least one [[broker.upstream]] "
                              "table, or leave the key out")


def test_a_bad_entry_of_a_multi_line_array_names_its_own_line(tmp_path):
    f = write(tmp_path, """\
[wall]
lang = "en"
feed = [
  {endpoint = "tcp://127.0.0.1:1"},   # [ { in a comment
  {endpoint = "tcp://127.0.0.1:2", state = "tcp://127.0.0.1:3"},
  {endpoint = "tcp://127.0.0.1:4", state = "bad"},
  {endpoint = "bad"}]
""")
    assert problem(f).startswith(f"{f}:6: state: malformed endpoint 'bad'")
    g = write(tmp_path, '[wall]\nfeed = [{endpoint = "tcp://127.0.0.1:1"}, {endpoint = "x"}]\n',
              "g.toml")
    assert problem(g).startswith(f"{g}:2: feed: malformed endpoint 'x'")
    h = write(tmp_path, '[wall]\nfeed = [\n  {endpoint = "tcp://127.0.0.1:1"},\n'
                        '  {endpoint = "tcp://127.0.0.1:2", nope = 1},\n]\n', "h.toml")
    assert problem(h).startswith(f"{h}:4: unknown key 'nope' in [[wall.feed]]")


def test_an_escaped_quoted_key_names_its_line(tmp_path):
    f = write(tmp_path, '[wall]\nconsole = true\n"la\\u006eg" = "fr"\n')
    assert problem(f) == f"{f}:3: lang: 'fr' is not one of zh, en"
    g = write(tmp_path, '[wall]\nconsole = true\n"la\\u006eg" = "fr"\n"x\\"y" = 1\n', "g.toml")
    assert problem(g) == f"{g}:3: lang: 'fr' is not one of zh, en"


def test_an_abbreviated_config_flag_is_refused_not_silently_unread(tmp_path):
    f = write(tmp_path, '[wall]\ndistricts = ["110101"]\n')
    for argv in (["--conf", str(f)], ["--config", str(f), "--wal", "x"]):
        out = run_main(*argv, "--headless", "--run-for", "0.1")
        assert out.returncode == 2 and "in full" in out.stderr, out.stderr


def test_a_feed_on_the_command_line_drops_the_files_demo(tmp_path):
    import main
    f = write(tmp_path, '[wall]\ndemo = true\n')
    argv = apply_config(main.build_parser(), ["--config", str(f), "--feed",
                                              "tcp://127.0.0.1:7009"], "wall", prog="citywall",
                        also_drops=main.CONFIG_DROPS)
    args = main.build_parser().parse_args(argv)
    assert not args.demo and args.feed == ["tcp://127.0.0.1:7009"]

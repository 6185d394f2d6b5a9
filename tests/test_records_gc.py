"""Records are not tracked by the cyclic garbage collector (``feeds.schema.Record``,
``gc=False``): they can be in no cycle, and a wall holds hundreds of thousands of them."""
from __future__ import annotations

import gc

import msgspec

from feeds.schema import Case, Heartbeat, SensorReading, Unit, UnitPosition
from tests.pubhelp import record


def test_no_record_type_is_tracked_by_the_collector():
    made = [msgspec.convert(record("case"), Case), msgspec.convert(record("unit"), Unit),
            msgspec.convert(record("sensor.air"), SensorReading),
            msgspec.convert(record("hb"), Heartbeat),
            UnitPosition(v=1, src="t", seq=0, ts=1, unit_id="U1", lat=39.9, lon=116.4)]
    assert [gc.is_tracked(r) for r in made] == [False] * len(made)
    # … and none holds anything that could point back at it: only text, numbers and
    # containers of them (a new field of another kind must be thought about here).
    allowed = (str, int, float, type(None), list, dict)
    for r in made:
        for name in r.__struct_fields__:
            value = getattr(r, name)
            assert isinstance(value, allowed), (type(r).__name__, name, type(value))
            if isinstance(value, (list, dict)):
                items = value.values() if isinstance(value, dict) else value
                assert all(isinstance(v, (str, int, float)) for v in items)


def test_every_long_running_program_runs_the_collector_less_often():
    import subprocess
    import sys
    from pathlib import Path

    from feeds.gc_tuning import THRESHOLDS
    root = Path(__file__).resolve().parent.parent
    code = ("import gc, sys\n"
            "import importlib\n"
            "mod, = sys.argv[1:]\n"
            "m = importlib.import_module(mod)\n"
            "try:\n"
            "    m.main(['--help'])\n"
            "except SystemExit:\n"
            "    pass\n"
            "print(gc.get_threshold())\n")
    for mod in ("main", "feeds.dispatch_cli", "feeds.broker_cli", "feeds.mqtt_bridge"):
        done = subprocess.run([sys.executable, "-c", code, mod], cwd=root, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == str(THRESHOLDS), (mod, done.stdout[-200:])

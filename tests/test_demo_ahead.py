"""The demo city warmed up in a child process while the console starts (issue #18): the same
city as one built in the console, and a child that fails, hangs or cannot be forked costs only
the time (the console builds the city itself). Each case runs in a fresh interpreter: a fork
is only made where no other thread runs, as in ``main.py``."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_the_city_from_the_child_is_the_city_built_here():
    out = run("""
        import os, threading
        from feeds.demo_ahead import CityAhead
        from feeds.simulator import DemoCity, HOUR
        from tests.test_simulator import START, _state, _wire
        start = START + 8 * HOUR + 1_234
        ahead = CityAhead(3, start).start()
        assert ahead.pid and ahead.pid != os.getpid(), ahead.problem
        got = ahead.result()
        here = DemoCity(seed=3, start_ms=start)
        assert got is not None, ahead.problem
        assert _state(got) == _state(here)
        assert got.districts.keys() == here.districts.keys()
        assert _wire(got.step(start + HOUR)) == _wire(here.step(start + HOUR))
        assert ahead.pid is None and ahead.fd is None          # reaped, pipe closed
        print("same")
    """)
    assert out.strip() == "same"


def test_a_child_that_fails_or_hangs_leaves_the_city_to_the_console():
    out = run("""
        import os, time
        import feeds.simulator as sim
        from feeds.demo_ahead import CityAhead
        from feeds.demo_source import DemoSource

        class Broken(sim.DemoCity):
            def __init__(self, **kw):
                raise RuntimeError("no city today")

        class Slow(sim.DemoCity):
            def __init__(self, **kw):
                time.sleep(60)

        real = sim.DemoCity
        sim.DemoCity = Broken
        broken = CityAhead(1, 1_795_449_600_000).start()
        assert broken.result() is None and "without a city" in broken.problem, broken.problem
        sim.DemoCity = Slow
        slow = CityAhead(1, 1_795_449_600_000).start()
        t0 = time.monotonic()
        assert slow.result(timeout_s=1.0) is None and "longer than" in slow.problem
        assert time.monotonic() - t0 < 10 and slow.pid is None     # killed and reaped
        sim.DemoCity = real
        # the demo source then builds the city itself: the same one
        hung = CityAhead(1, 1_795_449_600_000)
        hung.problem = "never started"
        import zmq
        src = DemoSource(seed=1, start_ms=1_795_449_600_000, now_ms=lambda: 0,
                         context=zmq.Context.instance(), receiver_options={}, ahead=hung)
        assert src.city.t == 1_795_449_600_000 and len(src.city.units) == 120
        src.service.stop()
        print("ok")
    """)
    assert out.strip() == "ok"


def test_no_fork_where_threads_already_run():
    out = run("""
        import threading, time
        from feeds.demo_ahead import CityAhead
        stop = threading.Event()
        t = threading.Thread(target=stop.wait); t.start()
        try:
            ahead = CityAhead(1, 1_795_449_600_000).start()
            assert ahead.pid is None and ahead.result() is None and "threads" in ahead.problem
        finally:
            stop.set(); t.join()
        print("ok")
    """)
    assert out.strip() == "ok"


def test_a_start_that_fails_after_the_fork_leaves_no_child_behind():
    """An option refused after the warm-up was forked (the duty plan's share): main exits 2
    and the child is gone — killed and reaped, not left writing to a pipe."""
    out = run("""
        import os
        import main
        try:
            main.main(["--demo", "--headless", "--run-for", "0.1", "--target-share", "2"])
        except SystemExit as exc:
            assert exc.code == 2, exc.code
        else:
            raise AssertionError("the bad share was taken")
        try:
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            print("no child")
    """)
    assert out.strip().endswith("no child")

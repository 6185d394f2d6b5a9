#!/usr/bin/env python
"""Map benchmark: markers in the live map page vs the cost of an update.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/map.py [--quick]

For 1,000, 5,000 and 20,000 units all moving at 2 updates a second, prints the time the page
spends applying one update (``cw.update``, measured inside the page), the GUI thread's time
per update on the Python side (building the patch and handing it to the page), the GUI
thread's busy share (its own CPU time over the run: the patch, the hand-over to the page and
every event it handled), and the page's clock restyle (``cw.setNow``). The page runs in
QtWebEngine's own process, so its time is not the GUI thread's. Figures only; nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from ui.app import chromium_flags  # noqa: E402

chromium_flags()
from widgets.tiles import register_scheme  # noqa: E402

register_scheme()

from PySide6.QtCore import QCoreApplication  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from feeds.batch import Batch  # noqa: E402
from feeds.schema import Unit  # noqa: E402
from situation.clock import ManualClock  # noqa: E402
from situation.store import Situation  # noqa: E402
from widgets.theme import apply_theme  # noqa: E402
from widgets.city_map import CityMap  # noqa: E402

T0 = 1_795_483_800_000


def pump(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.001)


def units(n: int, step: int, ts: int) -> Batch:
    b = Batch()
    for i in range(n):
        b.records.append(Unit(v=1, src="bench", seq=step * n + i, ts=ts, unit_id=f"U{i}",
                              callsign=f"U{i}", kind="vehicle", status="en_route",
                              lat=39.7 + (i % 200) * 0.003 + step * 0.0002,
                              lon=116.1 + (i // 200) * 0.006 + step * 0.0002))
    return b


def run(app, n: int, seconds: float) -> dict:
    clock = ManualClock(T0)
    st = Situation(clock)
    m = CityMap(st, "zh")
    m.resize(1600, 1000)
    m.show()
    deadline = time.perf_counter() + 30
    while not m.loaded and time.perf_counter() < deadline:
        pump(app, 0.05)
    m.on_changed(st.apply(units(n, 0, T0)))
    m.refresh()
    pump(app, 1.0)
    m.page_ms.clear()
    cpu0 = time.thread_time()          # the GUI thread's own CPU: everything it did
    py_ms, step = [], 1
    started = time.perf_counter()
    next_at = started
    while time.perf_counter() - started < seconds:
        now = time.perf_counter()
        if now >= next_at:
            clock.advance(500)
            change = st.apply(units(n, step, clock.now_ms()))
            t = time.perf_counter()
            m.on_changed(change)
            m.refresh()
            py_ms.append((time.perf_counter() - t) * 1000)
            step += 1
            next_at += 0.5                      # 2 updates a second
        app.processEvents()
        time.sleep(0.001)
    elapsed = time.perf_counter() - started
    gui_cpu = time.thread_time() - cpu0
    pump(app, 1.0)
    count = []
    m.js("JSON.stringify(cw.count())", count.append)
    pump(app, 0.5)
    restyle = []
    m.js(f"cw.setNow({clock.now_ms() + 1000})", restyle.append)
    pump(app, 1.0)
    page = list(m.page_ms)
    m.close()
    m.deleteLater()
    pump(app, 0.5)
    return {"n": n, "updates": step - 1, "page_p50": statistics.median(page) if page else None,
            "page_max": max(page) if page else None, "py_p50": statistics.median(py_ms),
            "py_max": max(py_ms), "busy": gui_cpu / elapsed * 100, "count": count[:1],
            "restyle": restyle[:1]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    app = QApplication(sys.argv[:1])
    apply_theme(app)
    seconds = 4.0 if args.quick else 10.0
    print(f"map benchmark: units moving at 2 updates/s, {seconds:g} s each, "
          f"{os.cpu_count()} cores, QT_QPA_PLATFORM={os.environ['QT_QPA_PLATFORM']}")
    print(f"{'markers':>8} {'updates':>7} {'page ms p50':>11} {'page max':>8} "
          f"{'GUI py ms p50':>13} {'py max':>7} {'GUI busy %':>10} {'setNow ms':>9}  in page")
    for n in (1_000, 5_000, 20_000):
        r = run(app, n, seconds)
        fmt = lambda v: "—" if v is None else f"{v:.1f}"   # noqa: E731
        restyle = r["restyle"][0] if r["restyle"] else None
        print(f"{r['n']:>8} {r['updates']:>7} {fmt(r['page_p50']):>11} {fmt(r['page_max']):>8} "
              f"{r['py_p50']:>13.1f} {r['py_max']:>7.1f} {r['busy']:>10.1f} "
              f"{fmt(restyle if isinstance(restyle, (int, float)) else None):>9}  {r['count']}")
    QCoreApplication.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())

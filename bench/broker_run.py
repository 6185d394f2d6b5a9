"""One run of the broker benchmark (``bench/broker.py``): the broker (or, for the raw PUB→SUB
baseline, none), the publisher, the counting subscribers and the headless consoles started;
the city seeded; the load sent while CPU is read from /proc and the late joiners join; the tail
until everyone has everything; everything stopped. Returns the figures; prints nothing but a
warning when subscribers fail to connect."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from bench.broker_join import late_join, state_rtt
from bench.broker_load import RAW_SRC, SRC, publisher_main
from bench.broker_procs import (PY, ROOT, BrokerWatch, Procs, console_src, free_endpoint,
                                peek_subs, read_json, recv, start_consoles, start_subscribers,
                                stop_consoles, stop_subs, wait_until)
from bench.procstat import machine_cpu, proc_cpu, sched, sched_wait


def fanout_run(args, mpctx, tmp: Path, keys: dict | None, raw: bool) -> dict:
    """One run: the broker (or, raw, none: the publisher binds) with the subscribers and
    consoles. Returns the figures."""
    procs = Procs()
    res: dict = {"raw": raw}
    tag = "raw" if raw else "broker"
    src = RAW_SRC if raw else SRC
    curve = None
    try:
        broker = None
        status_path = tmp / "broker-status.json"
        if raw:
            out = free_endpoint()
            state = None
            pub_ep = out
        else:
            ins, out, state = free_endpoint(), free_endpoint(), free_endpoint()
            pub_ep = ins
            cmd = [PY, "-m", "feeds.broker", "--in", ins, "--out", out, "--state", state,
                   "--status-out", str(status_path), "--status-every", "1",
                   "--run-for", "3600"]
            if keys:
                cmd += ["--key", keys["broker_secret"], "--trust", keys["walls"],
                        "--in-trust", keys["publishers"]]
            log = open(tmp / "broker.log", "wb")
            broker = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            log.close()
            procs.popen.append(broker)
            res["broker_pid"] = broker.pid
            if not wait_until(lambda: read_json(status_path) is not None, 30):
                raise RuntimeError("the broker wrote no status in 30 s: "
                                   + (tmp / "broker.log").read_text()[-2000:])
        # raw: the publisher binds and the others connect to it, without CURVE
        pub_curve = ({"key": keys["pub_secret"], "server": keys["broker_public"]}
                     if keys and not raw else None)
        curve = ({"key": keys["wall_secret"], "server": keys["broker_public"]}
                 if keys and not raw else None)
        a, b = mpctx.Pipe()
        pub = mpctx.Process(target=publisher_main, daemon=True, args=(
            b, pub_ep, raw, (args.subscribers + args.consoles) if raw else 1, src, args.batch,
            args.cases, args.units, pub_curve))
        pub.start()
        procs.mp.append(pub)
        recv(a, 60, "the publisher")                                  # bound or connected
        subs = start_subscribers(procs, mpctx, out, args.subscribers, args.sub_procs,
                                 not raw, curve)
        consoles = start_consoles(procs, tmp, args.consoles, out, state,
                                  keys if not raw else None, tag)
        msg = recv(a, 90, "the publisher")
        res["publisher_subscribed"] = msg[1]
        for p, conn, _ in subs:
            recv(conn, 60, "a subscriber process")                     # every socket welcomed
        if not raw:
            need = args.subscribers + args.consoles
            ok = wait_until(lambda: (read_json(status_path) or {}).get("subscribers", 0) >= need,
                            60, 0.2)
            res["broker_subscribers_at_start"] = (read_json(status_path) or {}).get("subscribers")
            if not ok:
                print(f"  (only {res['broker_subscribers_at_start']} of {need} subscribers "
                      "connected to the broker after 60 s)")
        # The consoles: each has joined (or gone live) before anything is sent.
        wait_until(lambda: all((read_json(st) or {}).get("state_joins") or raw
                               for _, st in consoles), 60, 0.2)
        if raw:
            time.sleep(1.0)           # consoles' subscriptions: counted by the publisher
        # ---- the city first (the late joiners' state) -----------------------------------
        a.send(("seed",))
        seeded = recv(a, 120, "the publisher (seeding)")[1]
        res["seeded"] = seeded
        watch = BrokerWatch(status_path)
        if not raw:
            wait_until(lambda: (watch.sample() or {}).get("state_records", 0)
                       >= seeded["records"], 30, 0.2)
            time.sleep(1.1)
            res["state_after_seed"] = (watch.sample() or {}).get("state")
        # ---- the load ---------------------------------------------------------------------
        for _, conn, _ in subs:
            conn.send(("cpu0",))
            recv(conn, 10, "a subscriber process")
        pids = {"broker": [broker.pid] if broker else [],
                "subscribers": [p.pid for p, _, _ in subs],
                "consoles": [p.pid for p, _ in consoles], "publisher": [pub.pid],
                "bench (late joiner)": [os.getpid()]}
        cpu0 = {k: sum(proc_cpu(x) for x in v) for k, v in pids.items()}
        threads0 = sched(broker.pid) if broker else {}
        wait0 = {k: sched_wait(v) for k, v in pids.items()}
        mach0 = machine_cpu()
        watch.samples.clear()
        watch.sample()
        t0 = time.monotonic()
        a.send(("run", args.rate, args.seconds))
        joiner: dict = {}
        jt = None
        if not raw and args.late_join:
            def probe():
                time.sleep(args.seconds * 0.3)
                try:
                    joiner["probe"] = state_rtt(state, keys)
                except Exception as exc:
                    joiner["probe"] = {"error": f"{type(exc).__name__}: {exc}"}

            def mid_join():
                time.sleep(args.seconds * 0.5)
                try:
                    joiner.update(late_join(out, state, keys, args.cases, args.units))
                except Exception as exc:                      # a figure, not the bench's end
                    joiner["error"] = f"{type(exc).__name__}: {exc}"
            jt = threading.Thread(target=mid_join, daemon=True)
            jt.start()
            pt = threading.Thread(target=probe, daemon=True)
            pt.start()
        ran = None
        deadline = t0 + args.seconds + 120
        while ran is None and time.monotonic() < deadline:
            if a.poll(0.5):
                ran = a.recv()[1]
            watch.sample()
        if ran is None:
            raise TimeoutError("the publisher did not finish its run")
        t_end = time.monotonic()
        cpu1 = {k: sum(proc_cpu(x) for x in v) for k, v in pids.items()}
        threads1 = sched(broker.pid) if broker else {}
        wait1 = {k: sched_wait(v) for k, v in pids.items()}
        mach1 = machine_cpu()
        res["machine_busy"] = (mach1[0] - mach0[0]) / (t_end - t0)
        res["loadavg"] = os.getloadavg()[0]
        watch.sample()
        res["ran"] = ran
        res["wall_s"] = t_end - t0
        res["cpu"] = {k: (cpu1[k] - cpu0[k]) / (t_end - t0) for k in pids}
        res["wait"] = {k: (wait1[k] - wait0[k]) / (t_end - t0) for k in pids}
        res["broker_threads"] = {
            k: [(v[0] - threads0.get(k, [0.0, 0.0])[0]) / (t_end - t0),
                (v[1] - threads0.get(k, [0.0, 0.0])[1]) / (t_end - t0)]
            for k, v in threads1.items() if v[0] - threads0.get(k, [0.0, 0.0])[0] > 0.005}
        # ---- the tail: until everyone has what was sent, or no progress --------------------
        total = seeded["records"] + ran["records"] + ran["heartbeats"]
        res["total_published"] = total
        last_seq = ran["last_seq"]
        t_tail = time.monotonic()
        prev = None
        still = 0
        res["subs_at_end"], _ = peek_subs(subs)
        res["subs_all_after_s"] = 0.0 if all(c >= total for c in res["subs_at_end"]) else None
        res["consoles_all_after_s"] = None
        while time.monotonic() - t_tail < args.tail:
            counts, _ = peek_subs(subs)
            cons = [console_src(read_json(st), src).get("last_seq", -1) for _, st in consoles]
            if not raw:
                watch.sample()
            if res["subs_all_after_s"] is None and all(c >= total for c in counts):
                res["subs_all_after_s"] = time.monotonic() - t_tail
            if res["consoles_all_after_s"] is None and all(c >= last_seq for c in cons):
                res["consoles_all_after_s"] = time.monotonic() - t_tail
            done = all(c >= total for c in counts) and all(c >= last_seq for c in cons)
            if done:
                break
            now = (sum(counts), tuple(cons))
            still = still + 1 if now == prev else 0
            if still >= 6:                 # 3 s without any progress
                break
            prev = now
            time.sleep(0.5)
        res["tail_s"] = time.monotonic() - t_tail
        res["cpu_tail_consoles"] = sum(proc_cpu(x) for x in pids["consoles"]) - cpu1["consoles"]
        if jt is not None:
            jt.join(40)
            pt.join(40)
            res["join_under_load"] = dict(joiner)
        if not raw and args.late_join:
            m0, q0 = machine_cpu(), time.monotonic()
            try:
                res["join_quiet"] = late_join(out, state, keys, args.cases, args.units)
            except Exception as exc:
                res["join_quiet"] = {"error": f"{type(exc).__name__}: {exc}"}
            res["join_quiet"]["machine_busy"] = (machine_cpu()[0] - m0[0]) / max(
                1e-3, time.monotonic() - q0)
        if not raw:
            res["broker_samples"] = [(t - t0, d) for t, d in watch.samples]
            res["t_end"] = t_end - t0
            res["broker_final"] = watch.sample()
        res["subs"], res["subs_cpu_s"] = stop_subs(subs)
        res["consoles"] = stop_consoles(consoles)
        res["console_logs"] = [(tmp / f"console-{tag}-{i}.log").read_text(errors="replace")[-600:]
                               for i in range(len(consoles))]
        a.send(("stop",))
        if broker is not None:
            broker.send_signal(signal.SIGTERM)
            try:
                broker.wait(15)
            except subprocess.TimeoutExpired:
                pass
            res["broker_exit"] = broker.poll()
            res["broker_log"] = (tmp / "broker.log").read_text(errors="replace")[-1500:]
            res["broker_final"] = read_json(status_path) or res.get("broker_final")
        return res
    finally:
        procs.close()

"""CPU readings from /proc for the benchmarks: a process's utime+stime (/proc/PID/stat), its
threads' time on a CPU and time runnable but waiting for one (/proc/PID/task/*/schedstat), and
the whole machine's busy and total CPU seconds (/proc/stat). Each returns zeros (or nothing)
when the process is gone or /proc cannot be read."""
from __future__ import annotations

import os

CLK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds; 0.0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / CLK
    except (OSError, IndexError, ValueError):
        return 0.0


def sched(pid: int) -> dict[str, list[float]]:
    """By thread name: [seconds on a CPU, seconds runnable but waiting for one] (schedstat)."""
    out: dict[str, list[float]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                run, wait, _ = (int(x) for x in f.read().split())
        except (OSError, ValueError):
            continue
        name = name if int(tid) != pid else f"{name} (main)"
        acc = out.setdefault(name, [0.0, 0.0])
        acc[0] += run / 1e9
        acc[1] += wait / 1e9
    return out


def sched_wait(pids: list[int]) -> float:
    return sum(v[1] for p in pids for v in sched(p).values())


def machine_cpu() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine so far, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return (sum(vals[:8]) - idle) / CLK, sum(vals[:8]) / CLK

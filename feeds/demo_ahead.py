"""The demo city warmed up in a child process while the console starts (issue #18).

``DemoCity`` opens three hours into its day by running those three hours (about 0.7 s of one
core, ``feeds.simulator``). The console has its own start to make meanwhile — its imports,
the session, Qt and the wall's windows — and a machine has more than one core, so ``main.py``
forks the warm-up off at its very beginning (``CityAhead(seed, start_ms).start()``) and takes
the city when the session asks for it (``result()``): the same city, built by the same code
from the same seed and start, handed over pickled through a pipe between this process and its
own child (nothing from outside is ever unpickled here).

Anything that goes wrong — no ``fork`` on the platform, threads already running (a fork would
copy their locks), the child failing, dying or taking longer than ``AHEAD_TIMEOUT_S`` — and
``result()`` is ``None``: the demo source builds the city itself, as before. No Qt.
"""
from __future__ import annotations

import os
import pickle
import select
import signal
import threading
import time

AHEAD_TIMEOUT_S = 30.0


class CityAhead:
    def __init__(self, seed: int, start_ms: int):
        self.seed, self.start_ms = seed, start_ms
        self.pid: int | None = None
        self.fd: int | None = None
        self.problem = ""

    def start(self) -> "CityAhead":
        if not hasattr(os, "fork") or threading.active_count() > 1:
            self.problem = "not forked: no fork here, or threads already running"
            return self
        from feeds.districts import load_districts
        from feeds.simulator import DemoCity         # imported before the fork: none after
        load_districts()
        try:
            r, w = os.pipe()
        except OSError as exc:                        # out of descriptors: build it here
            self.problem = f"not forked: {exc}"
            return self
        try:
            pid = os.fork()
        except OSError as exc:                        # out of processes or memory
            os.close(r)
            os.close(w)
            self.problem = f"not forked: {exc}"
            return self
        if pid == 0:                                  # the child: build, hand over, go
            code = 1
            try:
                os.close(r)
                city = DemoCity(seed=self.seed, start_ms=self.start_ms)
                data = pickle.dumps(city, protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(w, "wb") as f:
                    f.write(data)
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        self.pid, self.fd = pid, r
        return self

    def result(self, timeout_s: float = AHEAD_TIMEOUT_S):
        """The city the child built, or ``None`` (``problem`` says why)."""
        if self.fd is None:
            return None
        chunks, deadline = [], time.monotonic() + timeout_s
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                    self.problem = f"the warm-up took longer than {timeout_s:g} s"
                    return None
                chunk = os.read(self.fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
            if not chunks:
                self.problem = "the warm-up process ended without a city"
                return None
            return pickle.loads(b"".join(chunks))    # our own child's bytes, through a pipe
        except Exception as exc:                      # noqa: BLE001 - build it here instead
            self.problem = f"the warm-up's city could not be read: {exc}"
            return None
        finally:
            self.close()

    def close(self) -> None:
        """Let go of the child (killed if still running) and the pipe."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.pid = None

"""The windowed wall's status: the document written to ``--status-out`` every
``--status-every`` seconds and published to ``--metrics-port`` (``session.metrics``) at the
same moments — the very same document, so the file and the endpoint agree — and at least once
a second in between (or without a file).

Besides ``Session.status()`` it carries ``windows`` (``ui.app.window_status``) and ``gui``:
``busy_share`` (the share of the GUI thread the bridge spent applying and showing batches
since the previous document), ``map_update_last_s``, ``map_update_total_s`` and
``map_updates`` (the map pages' own time per update, as they report it)."""
from __future__ import annotations

import time
from typing import Callable

from PySide6.QtCore import QObject, QTimer

from ui.session import Session, write_json_atomic

PUBLISH_EVERY_S = 1.0


class WallStatus(QObject):
    def __init__(self, session: Session, args, bridge, windows: Callable[[], list],
                 window_status: Callable[[list], list], parent: QObject | None = None):
        super().__init__(parent)
        self.session, self.bridge = session, bridge
        self.status_out = getattr(args, "status_out", None)
        self.every = getattr(args, "status_every", None) or 2.0
        self.windows, self.window_status = windows, window_status
        self.metrics = getattr(session, "metrics", None)
        session.drains = bridge.drains          # the status' ingest: the bridge applies
        self._busy = (bridge.busy_s, time.monotonic())
        self._next_write = time.monotonic() + self.every
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.tick)

    def start(self) -> None:
        if self.metrics is not None:
            self.timer.start(int(min(self.every, PUBLISH_EVERY_S) * 1000))
        elif self.status_out:
            self.timer.start(int(self.every * 1000))

    def doc(self) -> dict:
        doc = self.session.status()
        doc["windows"] = self.window_status(self.windows())
        doc["gui"] = self.gui()
        return doc

    def gui(self) -> dict:
        now, busy = time.monotonic(), self.bridge.busy_s
        busy0, t0 = self._busy
        self._busy = (busy, now)
        maps = [p for w in self.windows() for p in getattr(w, "panels", ())
                if getattr(p, "name", None) == "city_map"]
        last = [m.page_ms[-1] for m in maps if getattr(m, "page_ms", None)]
        return {"busy_share": round(min(1.0, max(0.0, (busy - busy0) / (now - t0))), 4)
                if now > t0 else 0.0,
                "map_update_last_s": round(max(last) / 1000, 6) if last else None,
                "map_update_total_s": round(sum(getattr(m, "page_ms_total", 0.0)
                                                for m in maps) / 1000, 6),
                "map_updates": sum(getattr(m, "page_updates", 0) for m in maps)}

    def tick(self) -> None:
        try:
            doc = self.doc()
        except Exception as exc:                 # a status must never stop the wall
            self.session.faults.record("status", exc)
            return
        now = time.monotonic()
        if self.status_out and now >= self._next_write - 0.05:
            self._write(doc)
            self._next_write = now + self.every
        if self.metrics is not None:
            self.metrics.publish(doc)

    def final(self) -> None:
        """At the end: the last document, to the file and the endpoint alike."""
        self.timer.stop()
        doc = self.doc()
        if self.status_out:
            self._write(doc)
        if self.metrics is not None:
            self.metrics.publish(doc)

    def _write(self, doc: dict) -> None:
        try:
            write_json_atomic(self.status_out, doc)
        except Exception as exc:
            self.session.faults.record("status file", exc)

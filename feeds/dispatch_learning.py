"""How the dispatch service learns the picture: cases and units from its ``--source`` feeds.

A mixin of ``DispatchService`` (``feeds.dispatch_service``). The service keeps what it
learned after the publishers go quiet: records heard on the sources are taken when newer
(the greater ``ts`` wins, the service's own record on a tie), marked dirty and flushed to
SQLite now and then (not per record); closed cases are forgotten ``CLOSED_KEEP_MS`` after
they closed; a source receiver that stopped for good is replaced every
``RECEIVER_RETRY_S``. It works on the service's ``cases``, ``units``, ``_dirty_cases``,
``_dirty_units``, ``_receiver``, ``storage``, ``counts`` and ``_version``.
"""
from __future__ import annotations

import time

from feeds.batch import Batch
from feeds.dispatch_store import StorageError
from feeds.schema import CLOSED_CASE_STATUSES, Case, Unit
from feeds.simulator import HOUR

CLOSED_KEEP_MS = 48 * HOUR        # closed cases are forgotten this long after they closed
RECEIVER_RETRY_S = 10.0           # a source receiver that gave up is replaced this often


class SourceLearning:
    """The learning half of ``DispatchService``: a mixin, no state of its own."""

    def _learn(self) -> None:
        if self._receiver is None:
            return
        batch, _ = self._receiver.drain()        # restarts a thread that died (a fault)
        self._learn_batch(batch)
        if not self._receiver.alive():
            self._replace_receiver()

    def _replace_receiver(self) -> None:
        """The source receiver stopped and did not restart itself: a new one, now and then."""
        mono = time.monotonic()
        if mono - self._receiver_replaced < RECEIVER_RETRY_S:
            return
        self._receiver_replaced = mono
        self._fault("source receiver", "the source receiver stopped: replaced")
        old, self._receiver = self._receiver, None
        try:
            old.stop()
        finally:
            self._receiver = self._new_receiver()

    def _learn_batch(self, batch: Batch) -> None:
        for rec in batch.records:
            if rec.src == self.src:
                continue                     # our own feed, heard back
            if isinstance(rec, Case):
                if self._newer(self.cases.get(rec.case_id), rec):
                    self.cases[rec.case_id] = rec
                    self._dirty_cases.add(rec.case_id)
                    self.counts["learned"] += 1
                    self._version += 1
            elif isinstance(rec, Unit):
                if self._newer(self.units.get(rec.unit_id), rec):
                    self.units[rec.unit_id] = rec
                    self._dirty_units.add(rec.unit_id)
                    self.counts["learned"] += 1
                    self._version += 1
        self.counts["source_rejects"] += sum(batch.rejects.values())
        self.source_auth_failed.update(batch.auth_failed)   # a wrong --source-server-key

    def _newer(self, held: Case | Unit | None, rec: Case | Unit) -> bool:
        """The greater ``ts`` wins; on a tie, the service's own record stays."""
        if held is None:
            return True
        return rec.ts > held.ts or (rec.ts == held.ts and held.src != self.src)

    def _flush_learned(self) -> None:
        if not (self._dirty_cases or self._dirty_units) or self.storage.conn is None:
            return
        try:
            self.storage.write(cases=[self.cases[k] for k in self._dirty_cases],
                               units=[self.units[k] for k in self._dirty_units])
        except StorageError as exc:
            self._storage_failed(exc)
            return
        self._dirty_cases.clear()
        self._dirty_units.clear()

    def _prune(self) -> None:
        """Forget cases closed more than ``CLOSED_KEEP_MS`` ago (the wall keeps its own
        record of them; an order for one is refused as unknown)."""
        cutoff = self.now_ms() - CLOSED_KEEP_MS
        old = [k for k, c in self.cases.items()
               if c.status in CLOSED_CASE_STATUSES and c.ts < cutoff]
        if not old or self.storage.conn is None:
            return
        try:
            self.storage.write(forget=old)
        except StorageError as exc:
            self._storage_failed(exc)
            return
        for k in old:
            del self.cases[k]
            self._dirty_cases.discard(k)
        self._version += 1

"""How the dispatch service learns the picture: cases and units from its ``--source`` feeds.

A mixin of ``DispatchService`` (``feeds.dispatch_service``). The service keeps what it
learned after the publishers go quiet: records heard on the sources (judged by the service's
clock: none dated more than ``future_ms`` ahead) are taken when newer (the greater ``ts``
wins, the service's own record on a tie; a record held from before, dated beyond the
tolerance, loses to any), marked dirty and flushed to SQLite now and then (not per record);
a source receiver that stopped for good is replaced every ``RECEIVER_RETRY_S``.

Every table is bounded, like a console's (``situation.limits``): a record for a new id past
``max_cases`` / ``max_units`` is refused (``learn_refused`` in the status; when a table is
full it is pruned first, at most once a second, to make room); closed cases are forgotten
``CLOSED_KEEP_MS`` after they closed, open cases and units nothing was heard of for
``open_case_max_age_ms`` / ``unit_max_age_ms`` (30 days; ``aged_out``).

Positions (``unit.pos``, issue #16) move a held unit and nothing else: never its status or
case. The two are ordered apart, so a tracker's clock ahead cannot make the service's next
status record look older: ``units[uid].ts`` stays the ts of the unit's last full record (what
``change_ts`` dates an order's change after), and ``_unit_pos_ts[uid]`` is the ts of the
position held. A ``unit.pos`` is taken when newer than that position; a learned full record
when newer than the held record (as before), its position only when newer than the held
position too. So every ``unit`` record the service publishes for an order carries the newest
position it knows. A position for a unit not held is counted (``positions.unknown_unit``) and
dropped. Positions are not written to SQLite per fix: a unit's record is written with the
position it holds whenever it is written anyway (an order, a learned record), and units that
only moved are written at most every ``POSITION_FLUSH_S`` and on close — a restart may put a
unit back up to that far behind, and its next fix moves it again.

It works on the service's ``cases``, ``units``, ``_unit_pos_ts``, ``_moved_units``,
``_dirty_cases``, ``_dirty_units``, ``_receiver``, ``storage``, ``counts``,
``learn_refused``, ``aged_out`` and ``_version``.
"""
from __future__ import annotations

import time

import msgspec

from feeds.batch import Batch
from feeds.bounds import position_order_ts
from feeds.city_rules import HOUR
from feeds.dispatch_store import StorageError
from feeds.schema import CLOSED_CASE_STATUSES, Case, Unit, UnitPosition

CLOSED_KEEP_MS = 48 * HOUR        # closed cases are forgotten this long after they closed
OPEN_CASE_MAX_AGE_MS = 30 * 24 * HOUR   # open cases and units nothing was heard of for this
UNIT_MAX_AGE_MS = 30 * 24 * HOUR        # long are forgotten (as on a console)
DEFAULT_MAX_CASES = 200_000       # ids held per table (situation.limits: a console's caps)
DEFAULT_MAX_UNITS = 20_000
ROOM_PRUNE_S = 1.0                # a full table is pruned for room at most this often
RECEIVER_RETRY_S = 10.0           # a source receiver that gave up is replaced this often
POSITION_FLUSH_S = 60.0           # units that only moved reach SQLite at most this often


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
                self._learn_one(self.cases, rec.case_id, rec, self._dirty_cases, "cases",
                                self.max_cases)
            elif isinstance(rec, Unit):
                self._learn_one(self.units, rec.unit_id, self._keep_position(rec),
                                self._dirty_units, "units", self.max_units)
            elif isinstance(rec, UnitPosition):
                self._learn_position(rec)
        self.counts["source_rejects"] += sum(batch.rejects.values())
        self.source_auth_failed.update(batch.auth_failed)   # a wrong --source-server-key

    def _learn_one(self, table: dict, key: str, rec: Case | Unit, dirty: set[str], name: str,
                   cap: int) -> None:
        held = table.get(key)
        if held is None and len(table) >= cap and not self._room(table, cap):
            self.learn_refused[name] += 1
            return
        if self._newer(held, rec):
            table[key] = rec
            dirty.add(key)
            self.counts["learned"] += 1
            self._version += 1
            if isinstance(rec, Unit):
                self._moved_units.discard(key)          # written with its position
                self._unit_pos_ts[key] = max(rec.ts, self._held_position_ts(key))

    def _held_position_ts(self, uid: str) -> int:
        """The ts of the position held for a unit (-1: none, or one dated beyond the
        tolerance, which must not outlive the real ones)."""
        held = self.units.get(uid)
        if held is None:
            return -1
        ts = self._unit_pos_ts.get(uid, held.ts)
        return -1 if ts > self.now_ms() + self.future_ms else ts

    def _keep_position(self, rec: Unit) -> Unit:
        """A full record older than the held position: its status may be news, its position
        is not (the newer fix stays)."""
        if rec.ts >= self._held_position_ts(rec.unit_id):
            return rec
        held = self.units[rec.unit_id]
        return msgspec.structs.replace(rec, lat=held.lat, lon=held.lon, course=held.course,
                                       speed=held.speed)

    def _learn_position(self, rec: UnitPosition) -> None:
        """Move a held unit (never its status or case); a position for a unit not held is
        counted and dropped, and one not newer than the held position changes nothing."""
        uid = rec.unit_id
        held = self.units.get(uid)
        if held is None:
            self.counts["positions_unknown_unit"] += 1
            return
        order_ts = position_order_ts(rec.ts, self.now_ms())    # a fast clock cannot pin it
        if order_ts <= self._held_position_ts(uid):
            self.counts["positions_superseded"] += 1
            return
        self.units[uid] = msgspec.structs.replace(held, lat=rec.lat, lon=rec.lon,
                                                  course=rec.course, speed=rec.speed)
        self._unit_pos_ts[uid] = order_ts
        self._moved_units.add(uid)
        self.counts["positions"] += 1
        self._version += 1

    def _positions_status(self) -> dict:
        return {"learned": self.counts["positions"],
                "superseded": self.counts["positions_superseded"],
                "unknown_unit": self.counts["positions_unknown_unit"],
                "unsaved": len(self._moved_units)}

    def _room(self, table: dict, cap: int) -> bool:
        """A table is full: prune it now (at most once a second), and say if that made
        room. Past that, a new id is refused."""
        mono = time.monotonic()
        if mono - self._room_pruned >= ROOM_PRUNE_S:
            self._room_pruned = mono
            self._prune()
        return len(table) < cap

    def _newer(self, held: Case | Unit | None, rec: Case | Unit) -> bool:
        """The greater ``ts`` wins; on a tie, the service's own record stays. A record held
        dated beyond the tolerance (from a database written before sources were judged by
        the clock, or a clock set back) loses to any: it must not outlive the real ones."""
        if held is None or held.ts > self.now_ms() + self.future_ms:
            return True
        return rec.ts > held.ts or (rec.ts == held.ts and held.src != self.src)

    def _flush_learned(self, positions: bool = False) -> None:
        """Learned records to SQLite; units that only moved too when ``positions`` or every
        ``POSITION_FLUSH_S`` (not per fix)."""
        mono = time.monotonic()
        moved = self._moved_units if positions or mono >= self._next_position_flush else ()
        if not (self._dirty_cases or self._dirty_units or moved) or self.storage.conn is None:
            return
        units = self._dirty_units | set(moved)
        try:
            self.storage.write(cases=[self.cases[k] for k in self._dirty_cases],
                               units=[self.units[k] for k in units if k in self.units],
                               unit_pos_ts={k: self._unit_pos_ts[k] for k in units
                                            if k in self.units and k in self._unit_pos_ts})
        except StorageError as exc:
            self._storage_failed(exc)
            return
        self._dirty_cases.clear()
        self._dirty_units.clear()
        if moved:
            self._moved_units.clear()
            self._next_position_flush = mono + POSITION_FLUSH_S

    def _prune(self) -> None:
        """Forget cases closed more than ``CLOSED_KEEP_MS`` ago (the wall keeps its own
        record of them; an order for one is refused as unknown), and open cases and units
        nothing was heard of for their age limit (a wall has let them go too)."""
        now = self.now_ms()
        closed_cutoff = now - CLOSED_KEEP_MS
        open_cutoff = now - self.open_case_max_age_ms
        closed, stale = [], []
        for k, c in self.cases.items():
            if c.status in CLOSED_CASE_STATUSES:
                if c.ts < closed_cutoff:
                    closed.append(k)
            elif c.ts < open_cutoff:
                stale.append(k)
        pos_ts = self._unit_pos_ts          # a unit still sending fixes is still heard of
        units = [k for k, u in self.units.items()
                 if max(u.ts, pos_ts.get(k, u.ts)) < now - self.unit_max_age_ms]
        if not (closed or stale or units) or self.storage.conn is None:
            return
        try:
            self.storage.write(forget=closed + stale, forget_units=units)
        except StorageError as exc:
            self._storage_failed(exc)
            return
        for k in closed + stale:
            del self.cases[k]
            self._dirty_cases.discard(k)
        for k in units:
            del self.units[k]
            self._dirty_units.discard(k)
            self._moved_units.discard(k)
            self._unit_pos_ts.pop(k, None)
        self.aged_out["cases"] += len(stale)
        self.aged_out["units"] += len(units)
        self._version += 1

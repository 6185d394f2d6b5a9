"""How the situation holds units: full ``unit`` records and position-only ``unit.pos`` reports,
each in its own order (issue #16; ../shared/PROTOCOL.md "unit.pos"). The half of ``Situation``
that upserts units (``situation.store``), a mixin like ``situation.scope_tables``. No Qt.

Positions and assignments are different facts. ``units[uid]`` is the merged unit the widgets
read: ``status``, ``case_id``, ``callsign``, ``kind``, ``shift`` (and ``src``/``seq``) from the
newest full record, ``lat``/``lon``/``course``/``speed`` from the newest position, and ``ts``
the newer of the two — what staleness and ageing use: a fix keeps a unit fresh. The two
orders are kept apart, so neither blocks the other even when clocks disagree (a phone 10 s
ahead must not make the dispatch service's next status record look older):

* ``unit_status_ts[uid]``: the ts of the last full record taken. A full record is taken when
  its ts is ≥ it (a tie taken, as any upsert); its position only when its ts is ≥ the shown
  position's too (else the newer fix stays).
* ``unit_pos_ts[uid]``: the ts of the position shown — at most ``POSITION_AHEAD_MS`` (5 s)
  ahead of the clock, however far ahead the fix says it is (``feeds.bounds``): one fix from a
  phone whose clock runs fast cannot pin the unit. A ``unit.pos`` is taken when its ts is >
  it; it moves the unit, feeds its track (patrol coverage) and keeps it fresh, and never
  changes its status or case. A position for a unit not held cannot make one (no callsign,
  kind or status): it is counted as ``unknown_unit`` (rejected, per source) and dropped —
  nothing is kept pending. On a district wall one located outside the scope counts in
  ``out_of_scope`` instead, and a held unit a position moves outside leaves the wall as when
  a full record moves it out (``ScopedTables._outside``).
* On a district wall, a unit seen outside (by either kind of report) is remembered in
  ``units_away`` (its last full record with that record's ts; at most ``limits.max_units``,
  the least recently seen forgotten first), so a unit whose position reports bring it back
  inside shows again with the status and case it had — a patrol crossing the district's
  border and back by fixes alone does not vanish until its next status change.

Both dicts are plain dicts of ints keyed like ``units`` and dropped with the unit (prune, leaving
the scope), so a keyframe (``Situation.snapshot``) copies them with the rest. A unit held
without entries (a keyframe from before them) orders by its merged ``ts``.
"""
from __future__ import annotations

import msgspec

from feeds.bounds import position_order_ts
from feeds.schema import Unit, UnitPosition


class UnitTables:
    """Works on the situation's ``units``, ``unit_status_ts``, ``unit_pos_ts``, ``superseded``,
    ``out_of_scope``, ``_unknown_by``, its ``_track`` and ``_upsert``, and the scope half's
    ``_outside``/``_inside_but_late``."""

    def _upsert_unit(self, rec: Unit, now: int, track: bool = True) -> bool:
        """A full record: taken in the status order; its position only when it is newer than
        the one shown. True when the picture changed."""
        uid = rec.unit_id
        held = self.units.get(uid)
        status_ts = rec.ts
        pos_ts = position_order_ts(rec.ts, now)
        shown = rec
        if held is not None:
            if rec.ts < self.unit_status_ts.get(uid, held.ts):
                self.superseded += 1
                return False
            held_pos = self.unit_pos_ts.get(uid, held.ts)
            if pos_ts < held_pos:       # its status is news, its position is not
                pos_ts = None
                shown = msgspec.structs.replace(rec, lat=held.lat, lon=held.lon,
                                                course=held.course, speed=held.speed,
                                                ts=max(rec.ts, held_pos))
        changed = self._place_unit(shown, status_ts)
        if not changed or uid not in self.units:
            return changed                      # refused, or left the scope
        self.units_away.pop(uid, None)
        self.unit_status_ts[uid] = status_ts
        if pos_ts is not None:                  # its position was taken too
            self.unit_pos_ts[uid] = pos_ts
            if track:
                self._track(rec, now)
        return True

    def _upsert_position(self, rec: UnitPosition, now: int, track: bool = True) -> bool:
        """A position-only report: moves a held unit, never its status or case."""
        uid = rec.unit_id
        held = self.units.get(uid)
        if held is None and uid in self.units_away:
            return self._come_back(rec, now, track)
        if held is None:
            if self.scope is not None and self.locator.locate(rec.lon, rec.lat) not in self.scope:
                self.out_of_scope["unit"] += 1      # a unit elsewhere: received fine
            else:
                self._unknown_by[rec.src] += 1      # nothing to show it by: counted, dropped
            return False
        order_ts = position_order_ts(rec.ts, now)
        if order_ts <= self.unit_pos_ts.get(uid, held.ts):
            self.superseded += 1
            return False
        status_ts = self.unit_status_ts.get(uid, held.ts)
        shown = msgspec.structs.replace(held, lat=rec.lat, lon=rec.lon, course=rec.course,
                                        speed=rec.speed, ts=max(status_ts, order_ts))
        changed = self._place_unit(shown, status_ts)
        if not changed or uid not in self.units:
            return changed                      # left the scope (or refused)
        self.unit_status_ts[uid] = status_ts
        self.unit_pos_ts[uid] = order_ts
        if track:
            self._track(rec, now)
        return True

    def _come_back(self, rec: UnitPosition, now: int, track: bool) -> bool:
        """A position for a unit a district wall last saw outside it."""
        away, status_ts = self.units_away[rec.unit_id]
        order_ts = position_order_ts(rec.ts, now)
        if order_ts <= away.ts:
            self.superseded += 1
            return False
        if order_ts - away.ts > self.limits.unit_max_age_ms:
            del self.units_away[rec.unit_id]     # gone longer than a unit is kept: forgotten
            self._unknown_by[rec.src] += 1
            return False
        shown = msgspec.structs.replace(away, lat=rec.lat, lon=rec.lon, course=rec.course,
                                        speed=rec.speed, ts=max(status_ts, order_ts))
        changed = self._place_unit(shown, status_ts)
        if rec.unit_id not in self.units:
            return changed                      # still outside (remembered anew)
        self.units_away.pop(rec.unit_id, None)
        self.unit_status_ts[rec.unit_id] = status_ts
        self.unit_pos_ts[rec.unit_id] = order_ts
        if track:
            self._track(rec, now)
        return True

    def _place_unit(self, shown: Unit, status_ts: int) -> bool:
        """Hold ``shown`` (the merged unit) if its position is in the scope; one a newer report
        puts outside leaves the wall (``ScopedTables._outside``, as any record)."""
        uid = shown.unit_id
        if self.scope is not None and self.locator.locate(shown.lon, shown.lat) not in self.scope:
            left = self._outside("unit", self.units, uid, shown)
            if uid not in self.units:
                self._forget_unit_times(uid)
                self._remember_away(shown, status_ts)
            return left
        if self._inside_but_late("unit", self.units, uid, shown):
            return False
        return self._upsert(self.units, uid, shown, self.limits.max_units)

    def _remember_away(self, shown: Unit, status_ts: int) -> None:
        away = self.units_away
        held = away.get(shown.unit_id)
        if held is not None and held[0].ts > shown.ts:
            return                              # a late record: the newer stays
        away[shown.unit_id] = (shown, status_ts)
        away.move_to_end(shown.unit_id)
        while len(away) > self.limits.max_units:
            away.popitem(last=False)

    def _forget_unit_times(self, uid: str) -> None:
        self.unit_status_ts.pop(uid, None)
        self.unit_pos_ts.pop(uid, None)

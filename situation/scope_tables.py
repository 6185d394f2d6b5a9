"""How a district wall's situation keeps to its scope: the half of ``Situation`` that decides
what a record outside the scope does (``situation.store``; ``situation.scope`` is the scope).

A record outside the scope is counted in ``out_of_scope`` by kind, never held; a held record
of the same id it is newer than leaves the wall (with what hangs on it: a case's stages, flags
and demand report, a sensor's history; a unit's track stays for patrol coverage). The newest
``ts`` that put each id outside is remembered (the newest ``MAX_LEFT_SCOPE`` ids), so an older
record saying it is inside — a late copy by a second broker — changes nothing, as any late
record changes nothing. A mixin: it works on the situation's tables and counters. No Qt.
"""
from __future__ import annotations

MAX_LEFT_SCOPE = 100_000         # ids a district wall remembers seeing go outside


class ScopedTables:
    def _outside(self, kind: str, table: dict, key: str, rec) -> bool:
        """A record outside the scope: counted, not held. A held record of the same id that it
        is newer than leaves (True: something changed); an older one changes nothing, like
        any late record."""
        held = table.get(key)
        if held is not None and rec.ts < held.ts:
            self.superseded += 1
            return False
        self.out_of_scope[kind] += 1
        left = self.left_scope            # when it was last seen outside: an older record
        mark = (kind, key)                # saying it is inside, arriving late, is superseded
        if rec.ts > left.get(mark, -1):
            left[mark] = rec.ts
            left.move_to_end(mark)
            while len(left) > MAX_LEFT_SCOPE:
                left.popitem(last=False)
        if held is None:
            return False
        if kind == "case":
            self.cases.pop(key)
            self.case_stages.pop(key, None)
            self.case_flags.pop(key, None)
            self.case_late.pop(key, None)
            self.reports.discard(key)       # its demand was not this wall's after all
        elif kind == "sensor":
            del self.sensors[key]
            self.sensor_history.pop(key, None)
        else:               # the unit's track while inside stays for patrol coverage
            del self.units[key]
        return True

    def _inside_but_late(self, kind: str, table: dict, key: str, rec) -> bool:
        """On a district wall: a record inside the scope older than the one that last put the
        same id outside (a late copy by a second broker, say) changes nothing."""
        if self.scope is None or key in table:
            return False
        out_ts = self.left_scope.get((kind, key))
        if out_ts is None:
            return False
        if rec.ts <= out_ts:
            self.superseded += 1
            return True
        del self.left_scope[(kind, key)]
        return False

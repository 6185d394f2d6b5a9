"""The report log: every case as first seen, for the demand-by-hour figures. No Qt."""
from __future__ import annotations

from collections import deque
from typing import NamedTuple

REPORT_LOG_MS = 8 * 7 * 24 * 3_600_000   # the report log: eight weeks of first sightings
REPORT_LOG_MAX = 400_000


class Report(NamedTuple):
    reported_at: int
    district: str | None
    category: str


class ReportLog:
    """Every case as first seen: (reported_at, district, category), kept for
    ``REPORT_LOG_MS`` of the situation's clock after it was logged. Closed cases leave
    ``Situation.cases`` after 48 h; the log keeps what the demand-by-hour figures need.

    Bounded: entries leave in the order they came (by the clock when they were logged, not by
    the publisher's ``reported_at``, so one record dated far in the future cannot hold the log
    open), and the ids go with them, and at most ``max_entries`` are kept (the oldest leave
    first). A case reported longer ago than the log keeps is not logged at all.

    Held as parallel deques in the order logged (the reports, when each was logged, whose
    case) and a set of the ids, not a tuple and an ordered dict's node per entry (issue #17:
    ~265 B a case before, ~150 now); equal logging times share one int.
    """

    def __init__(self, keep_ms: int = REPORT_LOG_MS, max_entries: int = REPORT_LOG_MAX):
        self.keep_ms = keep_ms
        self.max_entries = max_entries
        self._entries: deque[Report] = deque()
        self._logged: deque[int] = deque()          # when each was logged (the clock's ms)
        self._order: deque[str] = deque()           # whose report each is
        self._ids: set[str] = set()

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self):
        return iter(self._entries)

    def __contains__(self, case_id: str) -> bool:
        return case_id in self._ids

    def add(self, case_id: str, report: Report, now: int) -> bool:
        if case_id in self._ids or report.reported_at <= now - self.keep_ms:
            return False
        logged = self._logged
        if logged and logged[-1] == now:
            now = logged[-1]
        self._ids.add(case_id)
        self._order.append(case_id)
        logged.append(now)
        self._entries.append(report)
        if len(self._entries) > self.max_entries:
            self._pop_oldest()
        return True

    def _pop_oldest(self) -> None:
        self._entries.popleft()
        self._logged.popleft()
        self._ids.discard(self._order.popleft())

    def discard(self, case_id: str) -> None:
        """Forget one case's report (a district wall's case that left its scope). Rare: a
        scan of the log."""
        if case_id not in self._ids:
            return
        i = self._order.index(case_id)
        self._ids.discard(case_id)
        for column in (self._order, self._logged, self._entries):
            del column[i]

    def prune(self, now: int) -> None:
        logged = self._logged
        while logged and now - logged[0] > self.keep_ms:
            self._pop_oldest()

    def copy(self) -> ReportLog:
        """A copy for a keyframe (the reports, immutable, shared)."""
        out = ReportLog(self.keep_ms, self.max_entries)
        out._entries, out._logged = deque(self._entries), deque(self._logged)
        out._order, out._ids = deque(self._order), set(self._ids)
        return out

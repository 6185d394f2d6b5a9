"""The report log: every case as first seen, for the demand-by-hour figures. No Qt."""
from __future__ import annotations

from collections import OrderedDict, deque
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
    """

    def __init__(self, keep_ms: int = REPORT_LOG_MS, max_entries: int = REPORT_LOG_MAX):
        self.keep_ms = keep_ms
        self.max_entries = max_entries
        self._entries: deque[tuple[int, Report]] = deque()      # (logged at, report)
        self._ids: OrderedDict[str, None] = OrderedDict()       # same order as _entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self):
        return (rep for _, rep in self._entries)

    def __contains__(self, case_id: str) -> bool:
        return case_id in self._ids

    def add(self, case_id: str, report: Report, now: int) -> bool:
        if case_id in self._ids or report.reported_at <= now - self.keep_ms:
            return False
        self._ids[case_id] = None
        self._entries.append((now, report))
        if len(self._entries) > self.max_entries:
            self._entries.popleft()
            self._ids.popitem(last=False)
        return True

    def discard(self, case_id: str) -> None:
        """Forget one case's report (a district wall's case that left its scope). Rare: a
        scan of the log (``_entries`` and ``_ids`` are in the same order)."""
        if case_id not in self._ids:
            return
        for i, key in enumerate(self._ids):
            if key == case_id:
                break
        del self._ids[case_id]
        del self._entries[i]

    def prune(self, now: int) -> None:
        entries, ids = self._entries, self._ids
        while entries and now - entries[0][0] > self.keep_ms:
            entries.popleft()
            ids.popitem(last=False)

"""How often Python's cyclic garbage collector runs in CityWall's processes. No Qt.

A wall takes tens of thousands of records a second and allocates a few objects for each;
with Python's default thresholds (700, 10, 10) the collector runs a young collection every few
hundred records and walks everything it tracks again and again. Records themselves are not
tracked (``feeds.schema.Record``, ``gc=False``); the rest (metrics dicts, change sets, track
deques) still is. Collecting a young generation every 100,000 allocations instead made decode
+ apply on a city's mix about a fifth faster in one process (two runs each: 119,900 and 119,000
records/s with the defaults, 145,900 and 146,500 with these), at the cost of holding up to that
many young objects between collections. The collector still runs; only less often.
"""
from __future__ import annotations

import gc

THRESHOLDS = (100_000, 50, 100)


def tune_for_ingest() -> None:
    """Called once at the start of a console, the dispatch service, the broker and the bridge."""
    gc.set_threshold(*THRESHOLDS)

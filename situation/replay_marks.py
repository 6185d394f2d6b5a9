"""What a replay's timeline shows of its recording, per time bin: how many messages came in,
how many sensor readings were at the alarm level, how many open cases were overdue; and the
marks — stretches where alarms or overdue cases piled up.

Computed once per recording, straight from its payloads (not by replaying it): sensor channels
are decoded into lean msgspec structs holding only the metrics that have an alarm line, the
``case`` channel into (case, status, due), in one pass in order: about 0.9 s for a 24-hour,
500k-message day on a two-core machine (0.15 s of it decompressing), which the console spends
off the GUI thread. The figures are for reading the timeline, not for reports: a record the
live decoder would refuse (a bad position, a wrong field) may still count here.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import msgspec
import numpy as np

from feeds.recording import Recording
from feeds.schema import CLOSED_CASE_STATUSES
from situation.thresholds import THRESHOLDS

# Bin widths a timeline may use; the narrowest giving at most MAX_BINS over the recording.
BIN_CHOICES_MS = (10_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000,
                  3_600_000)
MAX_BINS = 300
PILE_PERCENTILE = 90       # a pile-up bin is at or above this percentile of the recording …
PILE_OVER_MEDIAN = 2.0     # … and at least twice its typical (median) bin, and three
PILE_SIGMAS = 3.0          # Poisson sigmas over it (few counts a bin are noisy) …
MIN_ALARMS = 3             # … and at least this many alarm readings in the bin
MIN_OVERDUE = 2            # … or this many open overdue cases at the bin's end
MAX_MARKS = 12             # per kind, the highest peaks: more is noise on a wall
BEIJING = timezone(timedelta(hours=8))

_WORDS = {"alarm": ("告警堆积 {when}（峰值 {peak} 次/{per}）",
                    "alarms piled up {when} (peak {peak} per {per})"),
          "overdue": ("超期积压 {when}（最多 {peak} 件）",
                      "overdue piled up {when} (up to {peak})")}


@dataclass(frozen=True)
class Mark:
    kind: str               # "alarm" or "overdue"
    start_ms: int           # the stretch of bins at or over the line
    end_ms: int
    peak: int               # the highest bin's count
    peak_ms: int            # the middle of that bin
    bin_ms: int             # the bins' width

    def label(self, lang: str = "zh") -> str:
        zh, en = _WORDS[self.kind]
        start, end = (datetime.fromtimestamp(ms / 1000, BEIJING).strftime("%H:%M")
                      for ms in (self.start_ms, self.end_ms))
        when = start if start == end else f"{start}–{end}"
        secs = self.bin_ms // 1000
        per = (f"{secs} 秒" if lang == "zh" else f"{secs} s") if secs < 60 else \
            (f"{secs // 60} 分钟" if lang == "zh" else f"{secs // 60} min")
        return (zh if lang == "zh" else en).format(peak=self.peak, when=when, per=per)


@dataclass
class ReplayMarks:
    edges: np.ndarray        # bin edges, ms (bins + 1)
    density: np.ndarray      # messages per bin (``per_minute`` turns it into a minute's)
    alarms: np.ndarray       # sensor readings at the alarm level per bin
    overdue: np.ndarray      # open overdue cases as they stood at each bin's end
    marks: list[Mark] = field(default_factory=list)
    seconds: float = 0.0     # what computing it cost

    @property
    def bin_ms(self) -> int:
        return int(self.edges[1] - self.edges[0]) if len(self.edges) > 1 else 0

    @property
    def per_minute(self) -> float:
        """What one message a bin is in messages a minute (bins of 30 s: 2; of 5 min: 0.2):
        the timeline's volume scale is in messages a minute, whatever the bins' width."""
        return 60_000 / self.bin_ms if self.bin_ms else 0.0

    def peak_per_minute(self) -> float:
        """The busiest bin's messages a minute (0 for an empty recording)."""
        return float(self.density.max()) * self.per_minute if len(self.density) else 0.0


def bin_width(span_ms: int) -> int:
    for width in BIN_CHOICES_MS:
        if span_ms / width <= MAX_BINS:
            return width
    return BIN_CHOICES_MS[-1]


def compute(recording: Recording, bin_ms: int | None = None) -> ReplayMarks:
    """The timeline's figures and marks. Reads the recording once, in order (each chunk
    decompressed once); a Recording's chunk cache is not shared safely across threads, so a
    caller off the GUI thread gives it a Recording of its own."""
    started = time.perf_counter()
    lo = recording.start_ms
    span = max(recording.end_ms - lo, 1)
    width = bin_ms or bin_width(span)
    bins = max(1, -(-span // width))
    # Bins start at the recording's first message; the last one ends at or after its last.
    hi = lo + bins * width
    counts, edges = np.histogram(recording.log_ms, bins=bins, range=(lo, hi))
    alarm_t, case_records = _scan(recording)
    alarms = np.histogram(alarm_t, bins=bins, range=(lo, hi))[0]
    overdue = _overdue_at(*case_records, edges[1:])
    marks = (pile_ups("alarm", alarms, edges, MIN_ALARMS)
             + pile_ups("overdue", overdue, edges, MIN_OVERDUE))
    return ReplayMarks(edges.astype(np.int64), counts, alarms, overdue, marks,
                       time.perf_counter() - started)


def pile_ups(kind: str, counts: np.ndarray, edges: np.ndarray, minimum: int) -> list[Mark]:
    """Runs of bins at or over the line (see PILE_*), one bin's gap bridged, as marks; at most
    MAX_MARKS, the highest peaks, in time order."""
    if not len(counts):
        return []
    median = float(np.median(counts))
    line = max(minimum, float(np.percentile(counts, PILE_PERCENTILE)),
               PILE_OVER_MEDIAN * median, median + PILE_SIGMAS * median ** 0.5)
    hit = counts >= line
    hit[1:-1] |= hit[:-2] & hit[2:]               # a one-bin dip does not split a pile-up
    over = np.concatenate(([False], hit, [False]))
    starts = np.flatnonzero(~over[:-1] & over[1:])
    ends = np.flatnonzero(over[:-1] & ~over[1:])          # exclusive
    marks = []
    for a, b in zip(starts, ends):
        top = a + int(np.argmax(counts[a:b]))
        marks.append(Mark(kind, int(edges[a]), int(edges[b]), int(counts[top]),
                          int((edges[top] + edges[top + 1]) // 2),
                          int(edges[1] - edges[0])))
    marks = sorted(marks, key=lambda m: -m.peak)[:MAX_MARKS]
    return sorted(marks, key=lambda m: m.start_ms)


# ---- one pass over the recording: sensor readings at the alarm level, case records ----------
class _CaseState(msgspec.Struct, gc=False):
    case_id: str
    status: str
    due_at: int | None = None


_CASES = msgspec.json.Decoder(_CaseState | list[_CaseState])


def _alarm_decoder(kind: str) -> tuple[msgspec.json.Decoder, list[tuple[str, float]]] | None:
    """A decoder reading only the metrics of ``kind`` that have an alarm line (a reading
    without one reads -inf: below every line)."""
    lines = [(metric, bounds[1]) for (k, metric), bounds in THRESHOLDS.items() if k == kind]
    if not lines:
        return None
    # gc=False: hundreds of thousands of them holding only floats; the collector need not
    # walk them (it was half the cost).
    metrics = msgspec.defstruct(f"{kind}_metrics", [(m, float, float("-inf")) for m, _ in lines],
                                gc=False)
    reading = msgspec.defstruct(f"{kind}_reading", [("metrics", metrics)], gc=False)
    return msgspec.json.Decoder(reading | list[reading]), lines


_NEVER = np.iinfo(np.int64).max
_CASE = 1                      # what a channel slot holds, for the pass: skip (0), cases, …


def _scan(recording: Recording) -> tuple[np.ndarray, tuple[list, list, list]]:
    """One pass in order: the receive time of every sensor reading at the alarm level, and
    every case record as (case ids, receive times, due times; closed or no due: never)."""
    # Per channel slot: 0 skip, _CASE, or 2 + the index of its sensor kind in ``kinds``.
    kinds: list[tuple] = []                   # (decoder, lines, readings, receive times)
    by_name: dict[bytes, int] = {}
    code_of = np.zeros(len(recording.topics) + 1, np.int64)   # [-1]: raw frames, skipped
    for slot, topic in enumerate(recording.topics):
        if topic == b"case":
            code_of[slot] = _CASE
        elif topic.startswith(b"sensor."):
            if topic not in by_name:
                made = _alarm_decoder(topic[len(b"sensor."):].decode("ascii", "replace"))
                by_name[topic] = len(kinds) if made else -1
                if made:
                    kinds.append((*made, [], []))
            if by_name[topic] >= 0:
                code_of[slot] = 2 + by_name[topic]
    codes = code_of[recording.topic_idx].tolist()
    payloads = recording.payloads
    # Payloads.span reads chunk by chunk; a plain list of payloads is read as it is.
    every = payloads.span(0, len(recording)) if hasattr(payloads, "span") else iter(payloads)
    ids, times, due = [], [], []
    for code, t, payload in zip(codes, recording.log_ms.tolist(), every):
        if not code:
            continue
        if code == _CASE:
            try:
                got = _CASES.decode(payload)
            except (msgspec.DecodeError, ValueError):
                continue                 # a message the console refused: nothing held
            for c in got if isinstance(got, list) else (got,):
                ids.append(c.case_id)
                times.append(t)
                due.append(c.due_at if c.due_at is not None and c.status not in
                           CLOSED_CASE_STATUSES else _NEVER)
            continue
        decoder, _, readings, at = kinds[code - 2]
        try:
            got = decoder.decode(payload)
        except (msgspec.DecodeError, ValueError):
            continue
        if isinstance(got, list):
            readings.extend(got)
            at.extend([t] * len(got))
        else:
            readings.append(got)
            at.append(t)
    out = [np.empty(0, np.int64)]
    for _, lines, readings, at in kinds:
        if not readings:
            continue
        alarm = np.zeros(len(readings), bool)
        for metric, line in lines:       # numpy per metric, not Python per reading
            alarm |= np.fromiter((getattr(r.metrics, metric) for r in readings), float,
                                 len(readings)) >= line
        out.append(np.asarray(at, np.int64)[alarm])
    return np.concatenate(out), (ids, times, due)


# ---- open overdue cases ------------------------------------------------------------------------
def _overdue_at(ids: list, times: list, due: list, at_ms: np.ndarray) -> np.ndarray:
    """Open overdue cases at each of ``at_ms``: a case counts from when its latest record (by
    receive time) is open and past its due time, until its next record. Sampled at the bin's
    end, so a case overdue only inside one bin is not counted (the approximation)."""
    if not ids:
        return np.zeros(len(at_ms), np.int64)
    _, code = np.unique(np.asarray(ids, dtype=object).astype(str), return_inverse=True)
    times_a, due_a = np.asarray(times, np.int64), np.asarray(due, np.int64)
    order = np.lexsort((np.arange(len(code)), code))      # by case, then as recorded
    code, times_a, due_a = code[order], times_a[order], due_a[order]
    # Each record holds until the same case's next record (its last one: for ever).
    nxt = np.full(len(code), _NEVER, np.int64)
    same = code[1:] == code[:-1]
    nxt[:-1][same] = times_a[1:][same]
    begin = np.maximum(times_a, np.minimum(due_a, _NEVER - 1) + 1)
    keep = begin < nxt
    begin, end = np.sort(begin[keep]), np.sort(nxt[keep])
    at = np.asarray(at_ms, np.int64)
    return (np.searchsorted(begin, at, side="right")
            - np.searchsorted(end, at, side="right")).astype(np.int64)

"""The bounds every input is judged under: size, depth, text, time.

Pure functions, no sockets, no Qt: the feed decoder, the order parser, the recorder and the
dispatch service all judge input with these, so a message refused in one place is refused for
the same reason everywhere. Each function answers a reason code (the words in
``feeds.decode.REASONS``) or None; none of them raises on any input.
"""
from __future__ import annotations

import json
import re
from typing import Any

import msgspec

# Nesting a feed payload may have: a batch [ of records { with metrics { or flags [ — three.
# A little room above that; anything deeper is not a protocol message.
MAX_DEPTH = 6
# A message (one frame) larger than this is not read at all; sockets get it as MAXMSGSIZE, so
# ZeroMQ drops such a frame before it is even put together.
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# What a publisher's XPUB reads from a subscriber: subscriptions, a few bytes each.
MAX_SUBSCRIPTION_BYTES = 64 * 1024
# Items a batch may hold. Counted (cheaply, as commas) before anything is built from a
# payload that takes the slow path: four million items cost seconds and hundreds of MB.
MAX_BATCH_ITEMS = 100_000

# Time: nothing before 2000-01-01 UTC, nothing further ahead of the receiver's clock than
# this (a replay judges by its own clock).
MIN_TS_MS = 946_684_800_000
DEFAULT_FUTURE_MS = 10 * 60_000
# A position (``unit.pos``) dated further ahead of the clock than this is shown, but ordered as if
# dated this far ahead: one fix from a phone whose clock runs fast may not pin a unit (every
# real fix refused as older, the unit never stale) for the whole future tolerance.
POSITION_AHEAD_MS = 5_000


def position_order_ts(ts: int, now: int) -> int:
    """The ts a position is ordered (and kept fresh) by: its own, at most ``POSITION_AHEAD_MS``
    ahead of ``now``."""
    return min(int(ts), int(now) + POSITION_AHEAD_MS)
# A deadline (``due_at``) is in the future by nature: it may be at most this far past the
# record's own ``ts``.
MAX_DEADLINE_AHEAD_MS = 366 * 24 * 3_600_000
# The largest ms value any time field may hold whatever the clock says (year 9999): past it
# ``datetime`` cannot even show the value.
MAX_TS_MS = 253_402_300_799_999

# Longest text of an id (src, id, case_id, unit_id, kind, district, a metric's name).
MAX_ID_CHARS = 128

# Control characters free text may not hold: C0 but tab and line breaks, DEL, and C1 (U+0080 to
# U+009F: terminal escapes like CSI "\x9b").
_BAD_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def valid_id(s: str) -> bool:
    """An id is non-empty, short, printable Unicode: no lone surrogates, no control or format
    characters (``str.isprintable`` is False for all of them)."""
    return 0 < len(s) <= MAX_ID_CHARS and s.isprintable()


def valid_text(s: str) -> bool:
    """Free text (a title, a citizen's description) may hold any valid Unicode and line breaks
    and tabs, but no lone surrogate and no other control character (C0, DEL, C1)."""
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            return False
    elif s.isprintable():
        return True
    return _BAD_CONTROLS.search(s) is None


def depth_exceeds(obj: Any, limit: int = MAX_DEPTH) -> bool:
    """True when ``obj`` (decoded JSON) nests deeper than ``limit``. Iterative: a structure
    as deep as the decoder allowed cannot exhaust the stack here."""
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in value)
    return False


def loads(data: bytes, max_depth: int = MAX_DEPTH, *,
          lenient: bool = False) -> tuple[Any, str | None]:
    """Bounded untyped JSON decode: ``(value, None)`` or ``(None, reason)``. Never raises.

    msgspec's decoder refuses NaN/Infinity, overflowing numbers and lone surrogates, and stops
    at the interpreter's recursion limit (RecursionError, caught here). ``lenient`` then tries
    Python's ``json``, which takes NaN and 1e400 (so a batch holding one such record keeps its
    finite ones, the caller refusing the rest) but also lone surrogates: the caller must judge
    every string it keeps (``valid_id``, ``valid_text``). What comes back is checked for depth
    without recursion, so nothing that walks the value can recurse into a trap."""
    try:
        value = msgspec.json.decode(data)
    except RecursionError:
        return None, "too_deep"
    except msgspec.DecodeError as exc:
        if "UTF-8" in str(exc):
            return None, "not_utf8"
        if not lenient:
            return None, "not_json"
        try:
            value = json.loads(bytes(data))
        except RecursionError:
            return None, "too_deep"
        except UnicodeDecodeError:
            return None, "not_utf8"
        except (ValueError, TypeError, MemoryError):
            return None, "not_json"
    except (ValueError, TypeError, MemoryError):
        return None, "not_json"
    if depth_exceeds(value, max_depth):
        return None, "too_deep"
    return value, None


def time_problem(ms: int, now_ms: int | None, future_ms: int = DEFAULT_FUTURE_MS) -> str | None:
    """``out_of_range`` for a time before 2000, past year 9999, or further ahead of ``now_ms``
    (when a clock is given) than ``future_ms``."""
    if ms < MIN_TS_MS or ms > MAX_TS_MS:
        return "out_of_range"
    if now_ms is not None and ms > now_ms + future_ms:
        return "out_of_range"
    return None

"""A keyframe's compact form: the situation's snapshot pickled a part at a time and
zstd-compressed, and read back by an unpickler that can name only the classes a picture is
made of (an allow-list: no function, no other class). The keyframe file
(``situation.keyframes``) signs every entry, so only this user's walls' keyframes are read at
all; the allow-list is the second wall. No Qt here.
"""
from __future__ import annotations

import io
import pickle
from collections import deque
from dataclasses import dataclass

import msgspec
import zstandard

LEVEL = 1                                    # zstd: fast; pickled pictures compress ~2×
MAX_PLAIN = 256 << 20                        # a keyframe larger than this decompressed: refused


@dataclass
class Keyframe:
    state: dict
    seq: dict


# What a picture is made of: the only globals a keyframe may name.
_ALLOWED = {
    ("collections", "deque"), ("collections", "Counter"), ("collections", "OrderedDict"),
    ("msgspec._utils", "rebuild"),
    ("situation.sources", "Sources"), ("situation.sources", "SourceHealth"),
    ("situation.reports", "ReportLog"), ("situation.reports", "Report"),
    ("situation.case_times", "StageTable"), ("situation.tracks", "Track"),
}
_SCHEMA_MODULE = "feeds.schema"

class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module == _SCHEMA_MODULE:
            import msgspec
            found = super().find_class(module, name)
            if isinstance(found, type) and issubclass(found, msgspec.Struct):
                return found
        raise pickle.UnpicklingError(f"a keyframe names {module}.{name}, which a picture "
                                     "is not made of")


SLICE = 64                                   # dict items pickled at a time


_HISTORY = "readings"                         # a part held as msgpack (sensor_history's shape)
_History = dict[str, tuple[int | None, list[tuple[int, dict[str, float]]]]]
_history_decoder = msgspec.msgpack.Decoder(_History)


def _is_history(value) -> bool:
    """A dict of deques of (ts, {metric: float}) — the sensors' history — which msgspec
    packs several times faster than pickle, and reads back typed. (Each deque's first entry
    is looked at: the situation appends only decoded readings' (ts, metrics).)"""
    if type(value) is not dict or not value:
        return False
    for hist in value.values():
        if type(hist) is not deque:
            return False
        if hist:
            entry = hist[0]
            if not (type(entry) is tuple and len(entry) == 2 and type(entry[0]) is int
                    and type(entry[1]) is dict):
                return False
    return True


def _pickled(value) -> bytes | list[bytes] | tuple[str, bytes]:
    """One part of the picture: pickled whole, or a large dict a few items at a time (a
    worker thread packing it lets the GUI thread in between), or readings as msgpack."""
    if _is_history(value):
        return (_HISTORY, msgspec.msgpack.encode(
            {k: (h.maxlen, list(h)) for k, h in value.items()}))
    if type(value) is dict and len(value) > SLICE:
        items = list(value.items())
        return [pickle.dumps(items[i:i + SLICE], protocol=5)
                for i in range(0, len(items), SLICE)]
    return pickle.dumps(value, protocol=5)


def _unpickled(data):
    if isinstance(data, bytes):
        return _Unpickler(io.BytesIO(data)).load()
    if isinstance(data, tuple) and len(data) == 2 and data[0] == _HISTORY \
            and isinstance(data[1], bytes):
        try:
            got = _history_decoder.decode(data[1])
        except (msgspec.DecodeError, ValueError) as exc:
            raise pickle.UnpicklingError(f"a keyframe's readings: {exc}") from None
        if any(maxlen is not None and maxlen < 0 for maxlen, _ in got.values()):
            raise pickle.UnpicklingError("a keyframe's readings: a negative length")
        return {k: deque(entries, maxlen) for k, (maxlen, entries) in got.items()}
    if not isinstance(data, list):
        raise pickle.UnpicklingError("a keyframe is not a picture")
    out = {}
    for piece in data:
        items = _Unpickler(io.BytesIO(piece)).load() if isinstance(piece, bytes) else None
        if not isinstance(items, list) or not all(type(i) is tuple and len(i) == 2
                                                  for i in items):
            raise pickle.UnpicklingError("a keyframe is not a picture")
        out.update(items)
    return out


def pack(frame: Keyframe) -> bytes:
    """A keyframe as bytes: each part of the picture pickled on its own, then compressed."""
    parts = {k: _pickled(v) for k, v in frame.state.items()}
    return zstandard.ZstdCompressor(level=LEVEL).compress(
        pickle.dumps((parts, pickle.dumps(frame.seq, protocol=5)), protocol=5))


def unpack(data: bytes) -> Keyframe:
    plain = zstandard.ZstdDecompressor().decompress(data, max_output_size=MAX_PLAIN)
    parts, seq = _Unpickler(io.BytesIO(plain)).load()
    if not (isinstance(parts, dict) and isinstance(seq, bytes)
            and all(isinstance(k, str) for k in parts)):
        raise pickle.UnpicklingError("a keyframe is not a picture")
    state = {k: _unpickled(v) for k, v in parts.items()}
    seq = _Unpickler(io.BytesIO(seq)).load()
    if not isinstance(seq, dict):
        raise pickle.UnpicklingError("a keyframe is not a picture")
    return Keyframe(state, seq)

"""The stage history of the cases held, compact (issue #17: a dict per case cost ~240 B).

``Situation.case_stages`` maps a case id to the first ts seen in each status, and reads like
the dict of dicts it was (``get``, ``[]``, ``in``, iteration, ``items``, ``values``, ``pop``):
each value read is a new ``{status: ts}`` dict, in the order the statuses were first seen, so
a reader may keep or change it without touching the history. Held per case as one int
(``ts << 3 | status``) while a case has been seen in one status, a tuple of them after; a
status outside the protocol's eight (a record made in code, never judged) keeps a plain dict
for that case. No Qt.
"""
from __future__ import annotations

from feeds.schema import CASE_STATUSES

_CODE = {s: i for i, s in enumerate(CASE_STATUSES)}
assert len(_CODE) <= 8


def _unpack(held) -> dict[str, int]:
    if type(held) is int:
        return {CASE_STATUSES[held & 7]: held >> 3}
    if type(held) is tuple:
        return {CASE_STATUSES[p & 7]: p >> 3 for p in held}
    return dict(held)


class StageTable:
    __slots__ = ("_d",)

    def __init__(self, items=()):
        self._d: dict[str, int | tuple[int, ...] | dict[str, int]] = {}
        for cid, stages in dict(items).items():
            for status, ts in stages.items():
                self.note(cid, status, ts)

    def note(self, cid: str, status: str, ts: int) -> None:
        """The first ts ``cid`` was seen in ``status`` (a later one changes nothing)."""
        d = self._d
        held = d.get(cid)
        code = _CODE.get(status)
        if code is None:                       # not a protocol status: a dict for this case
            held = d[cid] = _unpack(held) if held is not None else {}
            held.setdefault(status, ts)
        elif held is None:
            d[cid] = ts << 3 | code
        elif type(held) is int:
            if held & 7 != code:
                d[cid] = (held, ts << 3 | code)
        elif type(held) is tuple:
            if all(p & 7 != code for p in held):
                d[cid] = held + (ts << 3 | code,)
        else:
            held.setdefault(status, ts)

    def copy(self) -> StageTable:
        out = StageTable()
        out._d = {k: (dict(v) if type(v) is dict else v) for k, v in self._d.items()}
        return out

    # ---- read like a dict of dicts ---------------------------------------------------------
    def get(self, cid: str, default=None):
        held = self._d.get(cid)
        return default if held is None else _unpack(held)

    def __getitem__(self, cid: str) -> dict[str, int]:
        return _unpack(self._d[cid])

    def __contains__(self, cid) -> bool:
        return cid in self._d

    def __iter__(self):
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def keys(self):
        return self._d.keys()

    def values(self):
        return (_unpack(v) for v in self._d.values())

    def items(self):
        return ((k, _unpack(v)) for k, v in self._d.items())

    def pop(self, cid: str, *default):
        if default:
            held = self._d.pop(cid, None)
            return default[0] if held is None else _unpack(held)
        return _unpack(self._d.pop(cid))

    def __eq__(self, other) -> bool:
        if isinstance(other, StageTable):
            other = dict(other.items())
        return isinstance(other, dict) and dict(self.items()) == other

    __hash__ = None

    def __repr__(self) -> str:
        return f"StageTable({dict(self.items())!r})"

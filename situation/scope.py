"""A district wall's scope (``--districts 110105,110101``): the districts this wall answers for.

The situation holds only the records of its scope (``Situation(..., scope=Scope(...))``):

* a case or a sensor by its ``district`` field or, when the record has none, the district
  the situation locates from its point (``DistrictLocator``, the same value it stores);
* a unit (units carry no district) by the district of its position.

A record outside the scope was received fine: it counts in the feed's figures (records per
source, seqs, gaps) and in ``Situation.out_of_scope`` by kind, never as a reject. A held
record that a newer one puts outside the scope (a unit driving out, a case re-filed to another
district) leaves the wall, as if it had never been held; a unit's track kept while it was
inside stays for patrol coverage until it ages out. A point outside every district is outside
every scope.

Everything computed from the situation then follows (supervision, heat, the duty plan's live
demand and the units' shifts, exports); what is read from files beside it (the duty chart's
``--history`` events and ``--roster``) goes through ``events`` and ``roster``.

No Qt; pandas only for the frames handed in.
"""
from __future__ import annotations

from dataclasses import dataclass

from feeds.districts import by_adcode

KINDS = ("case", "unit", "sensor")


def whole_bbox(situation):
    """Where a panel's whole view looks: the scope's districts, else the whole city (in the
    situation's display frame, ``feeds.districts.frame_of``)."""
    from feeds.districts import city_bbox, frame_of
    crs = frame_of(situation)
    scope = getattr(situation, "scope", None)
    if scope is not None:
        return scope.bbox(crs)
    return city_bbox(crs)


def district_codes(situation) -> list[str]:
    """The districts a panel lists for this situation: its scope's, else all 16 (in the
    city's order)."""
    scope = getattr(situation, "scope", None)
    if scope is not None:
        return scope.codes()
    from feeds.districts import load_districts
    return [d.adcode for d in load_districts()]


@dataclass(frozen=True)
class Scope:
    adcodes: tuple[str, ...]          # as given, each a known district (feeds.args.district_list)

    def __post_init__(self):
        known = by_adcode()
        codes = tuple(dict.fromkeys(str(c).strip() for c in self.adcodes))
        unknown = [c for c in codes if c not in known]
        if unknown or not codes:
            raise ValueError(f"unknown district {', '.join(unknown)}" if unknown
                             else "a scope needs at least one district")
        object.__setattr__(self, "adcodes", codes)
        object.__setattr__(self, "_set", frozenset(codes))

    @classmethod
    def of(cls, adcodes) -> "Scope | None":
        """The scope of ``--districts`` (None or empty: the whole city, no scope)."""
        return cls(tuple(adcodes)) if adcodes else None

    def __contains__(self, adcode) -> bool:
        return adcode in self._set

    def __len__(self) -> int:
        return len(self.adcodes)

    def names(self, lang: str = "zh") -> list[str]:
        """The districts' full names, in the order given: 东城区 / Dongcheng."""
        from situation.catalog import district_name
        return [district_name(c, lang, short=lang != "zh") for c in self.adcodes]

    def events(self, frame):
        """The rows of an events frame (``situation.history``: a ``district`` column) in the
        scope; None stays None."""
        if frame is None or "district" not in getattr(frame, "columns", ()):
            return frame
        return frame[frame["district"].isin(self.adcodes)].reset_index(drop=True)

    # A roster (``situation.peakduty.load_roster``) has a district column too.
    roster = events

    def codes(self) -> list[str]:
        """The scope's adcodes in the city's order (``load_districts``): a panel's rows."""
        from feeds.districts import load_districts
        return [d.adcode for d in load_districts() if d.adcode in self._set]

    def bbox(self, crs: str = "gcj02") -> tuple[float, float, float, float]:
        """(west, south, east, north) around all the scope's districts in frame ``crs``: where
        a panel's "all our districts" view looks."""
        boxes = [by_adcode(crs)[c].bbox for c in self.adcodes]
        return (min(b[0] for b in boxes), min(b[1] for b in boxes),
                max(b[2] for b in boxes), max(b[3] for b in boxes))

    def doc(self, out_of_scope) -> dict:
        """The status document's ``scope``."""
        return {"districts": list(self.adcodes),
                "out_of_scope": {k: int(out_of_scope.get(k, 0)) for k in KINDS}}

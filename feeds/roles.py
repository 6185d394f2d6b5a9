"""Who may order what, in which districts: the roles file and the decision. Pure: no sockets.

    # roles.toml — one table per client key; the name is the key file's stem in --trust
    [client.dongcheng-duty]
    role = "dispatcher"
    districts = ["110101", "110102"]     # adcodes: its cases and units must lie in these

    [client.chief]
    role = "commander"                   # everything, in every district

    [client.lobby-wall]
    role = "viewer"                      # snapshots only

Roles:

- ``viewer``: may ask for a snapshot, nothing else;
- ``dispatcher``: may ask for a snapshot, and dispatch and recall within its ``districts``
  only (required, at least one): a dispatch needs the case's district (its ``district`` field,
  else its position) AND the unit's district (its position) both in the list; a recall needs
  the unit's district, and its case's when it works one;
- ``commander``: everything, in every district (``districts`` is refused: it would mean
  nothing);
- ``trainer``: may only order a training desk (in-process, no keys): on the live service it
  may do nothing at all, not even ask for a snapshot.

When a roles file is given, a key it does not name may do nothing. When the service has keys
but no roles file, every key in ``--trust`` is a commander (``Roles.everyone_commands``): the
trust directory alone says who may order. Without keys there is no one to judge: anyone may do
anything (``UNCHECKED``), as before keys existed.

A roles file that cannot be used is one line, ``FILE:LINE: problem`` (or ``FILE: problem``),
``RolesError``: TOML syntax, a table or key the format does not have, an unknown role, a
district that is not a Beijing adcode, a dispatcher without districts.

Every refusal is a ``not_allowed`` reason (``feeds.orders.not_allowed``) naming the key and
what its role lacks.
"""
from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from feeds.bounds import valid_id
from feeds.orders import DispatchOrder, Order, RecallOrder, SnapshotOrder, not_allowed
from feeds.schema import Case, Unit

ROLES = ("viewer", "dispatcher", "commander", "trainer")
# What each role may do at all (before districts).
MAY = {"viewer": frozenset({"snapshot"}),
       "dispatcher": frozenset({"snapshot", "dispatch", "recall"}),
       "commander": frozenset({"snapshot", "dispatch", "recall"}),
       "trainer": frozenset()}
TABLE_KEYS = ("role", "districts")

CaseOf = Callable[[str], Case | None]
UnitOf = Callable[[str], Unit | None]
DistrictOf = Callable[[Case | Unit], str | None]


class RolesError(ValueError):
    """A roles file that cannot be used: one line, ``FILE:LINE: problem``."""


@dataclass(frozen=True)
class Grant:
    """What one key may do: its role, and for a dispatcher its districts (adcodes)."""
    name: str
    role: str
    districts: frozenset[str] | None = None     # None: every district (or none needed)

    def district_list(self) -> list[str] | None:
        return None if self.districts is None else sorted(self.districts)


class Roles:
    """The grants by key name. ``default_role``: the role of a key no grant names (None: it
    may do nothing)."""

    def __init__(self, grants: Mapping[str, Grant], *, default_role: str | None = None,
                 path: str | None = None):
        self.grants = dict(grants)
        self.default_role = default_role
        self.path = path

    @classmethod
    def everyone_commands(cls) -> "Roles":
        """Keys but no roles file: every trusted key is a commander."""
        return cls({}, default_role="commander")

    def grant_for(self, name: str) -> Grant | None:
        grant = self.grants.get(name)
        if grant is None and self.default_role is not None:
            grant = Grant(name, self.default_role)
        return grant

    def describe(self) -> str:
        if self.path is None:
            return f"every trusted key is a {self.default_role}"
        return f"{self.path} ({len(self.grants)} keys)"


@dataclass(frozen=True)
class Caller:
    """Who sent an order, as the service knows it from the handshake — never what the order's
    ``console`` field claims. ``refusal``: why this key may do nothing at all."""
    client: str = "-"                 # the key name; "-" when the service is not secured
    grant: Grant | None = None
    refusal: str | None = None        # untrusted, unlisted, unauthenticated
    checked: bool = False             # False: no keys, nothing to judge by

    @property
    def role(self) -> str | None:
        return self.grant.role if self.grant is not None else None

    @property
    def label(self) -> str:
        """What a refusal is counted under: the role, or why the key has none."""
        return self.role or self.refusal or "-"


UNCHECKED = Caller()


def identify(name: str | None, trusted: bool, roles: Roles) -> Caller:
    """The caller behind an authenticated key name (None: the order came without one)."""
    if name is None:
        return Caller("-", None, "unauthenticated", True)
    if not trusted:
        return Caller(name, None, "untrusted", True)
    grant = roles.grant_for(name)
    if grant is None:
        return Caller(name, None, "unlisted", True)
    return Caller(name, grant, None, True)


def allowed(caller: Caller, order: Order, case_of: CaseOf | None = None,
            unit_of: UnitOf | None = None,
            district_of: DistrictOf | None = None) -> str | None:
    """None when ``caller`` may give ``order`` (against the picture the look-ups give), else
    the ``not_allowed`` reason. A case or unit the picture does not hold is not judged here:
    the rules then refuse it as unknown."""
    if not caller.checked:
        return None
    if caller.refusal is not None or caller.grant is None:
        return not_allowed(caller.refusal or "unlisted", name=caller.client)
    grant, action = caller.grant, _action(order)
    if action not in MAY.get(grant.role, ()):
        return not_allowed("trainer" if grant.role == "trainer" else "role",
                           role=grant.role, name=grant.name, action=action)
    if grant.districts is None or action == "snapshot":
        return None
    district_of = district_of or DistrictsOf()
    if isinstance(order, DispatchOrder):
        held = [("case", order.case_id, case_of(order.case_id)),
                ("unit", order.unit_id, unit_of(order.unit_id))]
    else:
        unit = unit_of(order.unit_id)
        case = case_of(unit.case_id) if unit is not None and unit.case_id else None
        held = [("unit", order.unit_id, unit), ("case", case.case_id if case else "", case)]
    for what, key, rec in held:
        if rec is None:
            continue
        district = district_of(rec)
        if district not in grant.districts:
            return not_allowed("district", role=grant.role, name=grant.name, action=action,
                               what=what, id=rec.callsign if isinstance(rec, Unit) else key,
                               district=district or "-",
                               districts=",".join(sorted(grant.districts)))
    return None


def _action(order: Order) -> str:
    if isinstance(order, SnapshotOrder):
        return "snapshot"
    if isinstance(order, (DispatchOrder, RecallOrder)):
        return type(order).__struct_config__.tag
    return str(type(order).__struct_config__.tag)


class DistrictsOf:
    """The district (adcode) of a case — its ``district`` field, else its position — or of a
    unit (its position). The grid is loaded on first use."""

    def __init__(self, locator=None):
        self._locator = locator

    def __call__(self, rec: Case | Unit) -> str | None:
        if isinstance(rec, Case) and rec.district:
            return rec.district
        if self._locator is None:
            from feeds.districts import DistrictLocator
            self._locator = DistrictLocator()
        return self._locator.locate(rec.lon, rec.lat)


# ---- the file ---------------------------------------------------------------------------------
def load_roles(path: str | os.PathLike, adcodes: frozenset[str] | None = None) -> Roles:
    """Read and check a roles file; ``RolesError`` (one line) when it cannot be used.
    ``adcodes``: the districts there are (default: Beijing's 16)."""
    where = str(path)
    try:
        data = open(path, "rb").read()
    except OSError as exc:
        raise RolesError(f"{where}: cannot read it ({exc.strerror or type(exc).__name__})") \
            from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RolesError(f"{where}: not UTF-8 text") from None
    return parse_roles(text, where, adcodes)


def parse_roles(text: str, where: str = "roles",
                adcodes: frozenset[str] | None = None) -> Roles:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\s*\(at line (\d+), column \d+\)$", msg)
        if m:
            raise RolesError(f"{where}:{m.group(1)}: {msg[:m.start()]}") from None
        raise RolesError(f"{where}: {msg}") from None
    lines = text.splitlines()
    if adcodes is None:
        from feeds.districts import load_districts
        adcodes = frozenset(d.adcode for d in load_districts())

    def fail(problem: str, table: str | None = None, key: str | None = None):
        line = _line_of(lines, table, key)
        raise RolesError(f"{where}:{line}: {problem}" if line else f"{where}: {problem}")

    for top in doc:
        if top != "client":
            fail(f"unknown table or key {top!r}: a roles file holds [client.NAME] tables "
                 "only", top)
    clients = doc.get("client", {})
    if not isinstance(clients, dict):
        fail("client must be tables: [client.NAME]", "client")
    if not clients:
        fail("names no client: add a [client.NAME] table with a role")
    grants = {}
    for name, table in clients.items():
        head = f"[client.{name}]"
        if not valid_id(name):
            fail(f"{ascii(name)[:60]} is not a key name (1-128 printable characters)", name)
        if not isinstance(table, dict):
            fail(f"client.{name} must be a table: {head} with role = …", name)
        for key in table:
            if key not in TABLE_KEYS:
                fail(f"{head}: unknown key {key!r} (a table holds {', '.join(TABLE_KEYS)})",
                     name, key)
        role = table.get("role")
        if role is None:
            fail(f"{head}: no role (one of {', '.join(ROLES)})", name)
        if role not in ROLES:
            fail(f"{head}: unknown role {role!r} (one of {', '.join(ROLES)})", name, "role")
        districts = table.get("districts")
        if districts is not None:
            if not isinstance(districts, list) or not districts:
                fail(f"{head}: districts must be a list of adcodes, like [\"110101\"]",
                     name, "districts")
            for d in districts:
                if not isinstance(d, str) or not d.isascii() or not d.isdigit():
                    fail(f"{head}: district {d!r} is not an adcode (a string of digits, "
                         "like \"110101\")", name, "districts")
                if d not in adcodes:
                    fail(f"{head}: district {d!r} is not one of the city's districts",
                         name, "districts")
            districts = frozenset(districts)
        if role == "dispatcher" and districts is None:
            fail(f"{head}: a dispatcher needs districts = [\"1101..\", …] (a commander acts "
                 "in every district)", name)
        if role == "commander" and districts is not None:
            fail(f"{head}: a commander acts in every district: remove districts, or make it "
                 "a dispatcher", name, "districts")
        grants[name] = Grant(name, role, districts)
    return Roles(grants, path=where)


def _line_of(lines: list[str], table: str | None, key: str | None) -> int | None:
    """Best effort: the line of ``[client.TABLE]`` (or a top-level ``TABLE``), and of ``key``
    within it. None when it cannot be found (inline tables, dotted keys)."""
    if table is None:
        return None
    name = re.escape(table)
    quoted = rf"(?:{name}|\"{name}\"|'{name}')"
    patterns = [rf"^\s*\[\s*client\s*\.\s*{quoted}\s*\]", rf"^\s*client\s*\.\s*{quoted}\s*[.=]",
                rf"^\s*\[\s*{quoted}\s*[\].]", rf"^\s*{quoted}\s*[.=]"]
    start = None
    for pattern in patterns:
        start = next((i for i, line in enumerate(lines) if re.match(pattern, line)), None)
        if start is not None:
            break
    if start is None:
        return None
    if key is not None:
        for i in range(start + 1, len(lines)):
            if re.match(r"^\s*\[", lines[i]):
                break
            if re.match(rf"^\s*{re.escape(key)}\s*=", lines[i]):
                return i + 1
    return start + 1

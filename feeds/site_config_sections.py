"""A site config's sections as settings: which sections there are, a wall's ``[wall]`` with its
``[walls.NAME]`` over it, and the arrays of tables that pair an option with the ones that go
with it. No Qt.

``load_section(path, section, wall)`` gives the section's settings as ``Item`` s in file order,
each with its line; turning them into argv, with the program's parser, is
``feeds.site_config``'s job.

An array of tables (``ARRAYS_OF_TABLES``) becomes one repeated option per table, each followed
by the options paired with it, in a fixed order::

    [[walls.city.feed]]                  # --feed EP --server-key K --state S
    endpoint = "tcp://broker.local:5556"
    server_key = "keys/broker.key"
    state = "tcp://broker.local:5559"

    [[broker.upstream]]                  # --upstream EP --server-key K --upstream-state S
    endpoint = "tcp://broker.centre.local:5556"
    server_key = "keys/broker.key"
    state = "tcp://broker.centre.local:5559"
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

from feeds.site_config_text import ConfigError, Lines, read, type_name

SECTIONS = ("centre", "wall", "walls", "broker", "dispatch_service", "mqtt_bridge")
FREE_SECTIONS = ("centre",)         # documentation: any keys, read by nobody


@dataclass(frozen=True)
class TableArray:
    """An array of tables in a section: each table gives the option ``flag`` with its
    ``head`` key's value (required), then the options its other keys name, in ``parts``
    order. Options are config keys: ``upstream_state`` is ``--upstream-state``."""
    key: str                                # the array's name in the section: "feed"
    head: str                               # the table's required key: "endpoint"
    flag: str                               # … and the option it gives: "feed" (--feed)
    parts: tuple[tuple[str, str], ...]      # the table's other keys → their options, in order

    def keys(self) -> tuple[str, ...]:
        return (self.head, *(k for k, _ in self.parts))


FEEDS = TableArray("feed", "endpoint", "feed", (("server_key", "server_key"), ("state", "state"),
                                                ("crs", "feed_crs")))
MQTT = TableArray("mqtt", "url", "mqtt", (("user", "mqtt_user"),
                                          ("password_file", "mqtt_password_file"),
                                          ("ca", "mqtt_ca"), ("cert", "mqtt_cert"),
                                          ("key", "mqtt_key"), ("sub", "mqtt_sub")))
UPSTREAMS = TableArray("upstream", "endpoint", "upstream",
                       (("server_key", "server_key"), ("state", "upstream_state")))
ARRAYS_OF_TABLES: dict[str, tuple[TableArray, ...]] = {
    "wall": (FEEDS, MQTT),                  # [[wall.feed]], [[wall.mqtt]] (and walls.NAME's)
    "broker": (UPSTREAMS,),                 # [[broker.upstream]]
    "mqtt_bridge": (MQTT,),                 # [[mqtt_bridge.mqtt]]
}


@dataclass(frozen=True)
class Item:
    """One setting: the option's key (``record_max_mb``), its TOML value, its line; for the
    parts of an array of tables (``[[wall.feed]]``), the array's name (``table``), the table's
    index in it, and whether this is the table's own option (``head``: the ``--feed``) or one
    paired with it (its ``--server-key``, ``--state``)."""
    key: str
    value: object
    line: int
    table: str | None = None
    index: int | None = None
    head: bool = False


def load_section(path, section: str, wall: str | None = None) -> list[Item]:
    """The settings of one section, in file order. ``section == "wall"``: ``[wall]`` with
    ``[walls.NAME]`` over it (``wall`` picks NAME; needed when there are ``[walls.*]``)."""
    doc, lines = read(path)
    _check_top(path, doc, lines)
    arrays = ARRAYS_OF_TABLES.get(section, ())
    if section != "wall":
        if section not in doc:
            raise ConfigError(path, None, f"no [{section}] section")
        return _items(path, doc[section], (section,), lines, arrays)
    walls = doc.get("walls", {})
    if "wall" not in doc and not walls:
        raise ConfigError(path, None, "no [wall] section (nor [walls.NAME])")
    shared = _items(path, doc.get("wall", {}), ("wall",), lines, arrays)
    for it in shared:
        _check_wall_item(path, it)
    if wall is None:
        if walls:
            names = ", ".join(list(walls)[:8]) + (", …" if len(walls) > 8 else "")
            raise ConfigError(path, None, f"several walls ({names}): give --wall NAME")
        return shared
    if wall not in walls:
        if not walls:
            raise ConfigError(path, None, f"unknown wall {wall!r}: the file has no "
                                          "[walls.NAME] tables (drop --wall)")
        close = difflib.get_close_matches(wall, list(walls), n=1)
        names = ", ".join(list(walls)[:20])
        raise ConfigError(path, None, f"unknown wall {wall!r}"
                          + (f" (did you mean {close[0]!r}?)" if close else "")
                          + f"; walls: {names}")
    own = _items(path, walls[wall], ("walls", wall), lines, arrays)
    for it in own:
        _check_wall_item(path, it)
    merged = _groups(shared)
    for name, items in _groups(own).items():   # the wall's own replaces the shared, in place
        merged[name] = items
    flat = [it for items in merged.values() for it in items]
    return [it for it in flat if it.table is None] + [it for it in flat if it.table is not None]


def _check_top(path, doc: dict, lines: Lines) -> None:
    for name, value in doc.items():
        if name not in SECTIONS:
            close = difflib.get_close_matches(name, SECTIONS, n=1)
            hint = f"did you mean [{close[0]}]?" if close else f"known: {', '.join(SECTIONS)}"
            if not isinstance(value, (dict, list)):
                raise ConfigError(path, lines.table((name,)), f"key {name!r} outside any "
                                  f"section: put it under one ({', '.join(SECTIONS)})")
            raise ConfigError(path, lines.table((name,)), f"unknown section {name!r} ({hint})")
        if not isinstance(value, dict):
            raise ConfigError(path, lines.table((name,)),
                              f"{name} must be a table ([{name}]), not {type_name(value)}")
    walls = doc.get("walls", {})
    for name, value in walls.items():
        if not isinstance(value, dict):
            raise ConfigError(path, lines.key(("walls",), name),
                              f"walls.{name} must be a table ([walls.{name}]), not "
                              f"{type_name(value)}")


def _items(path, table: dict, where: tuple, lines: Lines,
           arrays: tuple[TableArray, ...]) -> list[Item]:
    """A table's settings as items; an array of tables (``[[wall.feed]]``) is flattened to
    its options' items (``feed``, ``server_key``, ``state``) tagged with the table's index."""
    by_key = {a.key: a for a in arrays}
    out: list[Item] = []
    for key, value in table.items():
        tables = isinstance(value, dict) or isinstance(value, list) and value and all(
            isinstance(v, dict) for v in value)
        if value == [] and key in by_key:     # feed = []: not "no key, so the default"
            raise ConfigError(path, lines.key(where, key), f"no {key}: give at least one "
                              f"[[{_name(where + (key,))}]] table, or leave the key out")
        if tables and key in by_key:
            out += _table_items(path, by_key[key], value if isinstance(value, list) else [value],
                                where, lines)
        elif tables:            # [[section.key]] that is no array of tables here: its line
            at = where + (key, 0) if isinstance(value, list) else where + (key,)
            out.append(Item(key, value, lines.table(at)))
        else:
            out.append(Item(key, value, lines.key(where, key)))
    return out


def _table_items(path, array: TableArray, entries: list[dict], where: tuple,
                 lines: Lines) -> list[Item]:
    out: list[Item] = []
    name = _name(where + (array.key,))
    known = array.keys()
    for i, entry in enumerate(entries):
        at = where + (array.key, i)
        for k in entry:
            if k not in known:
                close = difflib.get_close_matches(k, known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
                raise ConfigError(path, lines.key(at, k),
                                  f"unknown key {k!r} in [[{name}]] ({hint})")
        if array.head not in entry:
            raise ConfigError(path, lines.table(at),
                              f"[[{name}]] number {i + 1} has no {array.head}")
        out.append(Item(array.flag, entry[array.head], lines.key(at, array.head), array.key, i,
                        head=True))
        for k, option in array.parts:
            if k in entry:
                out.append(Item(option, entry[k], lines.key(at, k), array.key, i))
    return out


def _name(where: tuple) -> str:
    return ".".join(str(p) for p in where if not isinstance(p, int))


def _check_wall_item(path, it: Item) -> None:
    if it.key == "state" and it.table is None:
        raise ConfigError(path, it.line, "state goes with its feed: put it in the "
                                         "[[wall.feed]] table of the broker's out endpoint")


def _groups(items: list[Item]) -> dict[str, list[Item]]:
    """Settings by key; an array of tables (the feed list, with its per-feed parts) is one
    setting, under the array's name."""
    out: dict[str, list[Item]] = {}
    for it in items:
        out.setdefault(it.table or it.key, []).append(it)
    return out

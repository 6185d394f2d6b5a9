"""The site config: one TOML file describes a whole centre. No Qt.

    python main.py --config centre.toml --wall city [flags…]
    python -m feeds.dispatch_service --config centre.toml
    python -m feeds.broker --config centre.toml

Each program reads its own section — ``[wall]`` with ``[walls.NAME]`` for the consoles,
``[dispatch_service]``, ``[broker]`` — and the section becomes an argv *prefix* for the
program's own argparse parser: key ``record_max_mb`` is flag ``--record-max-mb``. Each value is
checked here against the parser's action (its TOML type, the action's ``type`` callable, its
``choices``, the files it names), so every check the flags already have applies, and a problem
is reported as ``FILE:LINE: problem``. An option given on the command line drops the config's
values for it (for a repeatable option such as ``--feed``, the command line's list replaces the
config's whole list, with its per-feed ``server_key`` and ``state``).

A wall's feeds are an array of tables, each becoming ``--feed EP [--server-key K] [--state S]``
(and a broker's ``[[broker.upstream]]`` tables ``--upstream EP [--server-key K]
[--upstream-state S]``; see ``feeds.site_config_sections``)::

    [[walls.city.feed]]
    endpoint = "tcp://broker.local:5560"
    server_key = "keys/broker.key"          # relative to the config file's folder
    state = "tcp://broker.local:5561"

A repeatable option takes a list or one value: ``in = ["tcp://0.0.0.0:5555", …]``.

Every problem is a ``ConfigError``: one line, never a traceback; ``apply_config`` prints it as
``PROG: error: FILE:LINE: problem`` and exits 2.

Three modules: ``feeds.site_config_text`` reads the file safely (size and depth limits, TOML
errors as ``FILE:LINE``) and finds each key's line; ``feeds.site_config_sections`` turns a
section into settings (``load_section``); this one checks each setting against the program's
parser and builds the argv (``config_argv``, ``apply_config``).
"""
from __future__ import annotations

import argparse
import difflib
import os
import sys
from datetime import date, datetime, time
from pathlib import Path

from feeds.site_config_sections import (ARRAYS_OF_TABLES, FREE_SECTIONS, SECTIONS, Item,
                                        TableArray, load_section)
from feeds.site_config_text import (MAX_BYTES, MAX_DEPTH, ConfigError, is_what, one_line, read,
                                    show, shown, type_name)

__all__ = ["ConfigError", "load_section", "config_argv", "apply_config", "config_tokens",
           "given_dests", "read", "Item", "TableArray", "ARRAYS_OF_TABLES", "SECTIONS",
           "FREE_SECTIONS", "MAX_BYTES", "MAX_DEPTH", "EXIT_USAGE"]

EXIT_USAGE = 2
NOT_KEYS = ("help", "config", "wall", "version")    # options a config cannot set

# Options naming files: relative values are taken from the config file's folder.
INPUT_FILES = {"key", "server_key", "dispatch_server_key", "publishers", "roster", "history",
               "roles", "source_server_key", "replay", "mqtt_password_file", "mqtt_ca",
               "mqtt_cert", "mqtt_key"}
INPUT_DIRS = {"trust", "in_trust"}
MAYBE_FILES = {"layout": lambda v: "/" in v or os.sep in v or v.endswith(".toml"),
               "shifts": lambda v: "/" in v or os.sep in v or v.endswith(".toml"),
               "tiles": lambda v: v.endswith(".mbtiles") and "://" not in v}
OUTPUT_PATHS = {"record_dir", "status_out", "db", "debrief_out", "screenshot_dir"}
OUTPUT_DIRS = {"record_dir", "screenshot_dir"}      # the other outputs are files
OUTPUT_PREFIXES = ("export_",)



# ---- to argv ---------------------------------------------------------------------------------
NUMBER_TYPES = {int, float}


def _is_number_type(fn) -> bool:
    return fn in NUMBER_TYPES or getattr(fn, "__name__", "") in (
        "positive_int", "positive_float", "port_number", "nonnegative_int",
        "nonnegative_float", "non_negative_float", "non_negative_int")


def _accepts_time(fn) -> bool:
    return getattr(fn, "__name__", "") == "time_ms"


def _comma_list(fn) -> bool:
    return getattr(fn, "__name__", "") in ("district_list",)


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Config key → the parser's action, for every long option a config may set."""
    out: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)) \
                or action.dest in NOT_KEYS or not action.option_strings:
            continue
        for opt in action.option_strings:
            if opt.startswith("--"):
                out.setdefault(opt[2:].replace("-", "_"), action)
    return out


def _repeatable(action: argparse.Action) -> bool:
    return isinstance(action, (argparse._AppendAction, argparse._ExtendAction)) or (
        action.__class__.__name__ == "Ordered")


def _flag(action: argparse.Action) -> str:
    return next(o for o in action.option_strings if o.startswith("--"))


def _resolve(path, key: str, dest: str, text: str, line: int) -> str:
    """A path relative to the config file's folder, made absolute; input files must exist,
    an output's folder must; a file is no directory and a directory no file. A ``…key``
    option's value is never shown (it may be a secret pasted in)."""
    is_input = dest in INPUT_FILES or dest in INPUT_DIRS or (
        dest in MAYBE_FILES and MAYBE_FILES[dest](text))
    is_output = dest in OUTPUT_PATHS or dest.startswith(OUTPUT_PREFIXES)
    if not (is_input or is_output):
        return text
    if not text:
        raise ConfigError(path, line, f"{key}: empty path")
    value = shown(dest, text, line)
    if "\0" in text:
        raise ConfigError(path, line, f"{key}: not a path: {value}")
    p = Path(text).expanduser()
    if not p.is_absolute():
        p = Path(path).resolve().parent / p
    p = Path(os.path.normpath(p))
    try:
        if is_input:
            if not p.exists():
                what = "directory" if dest in INPUT_DIRS else "file"
                raise ConfigError(path, line, f"{key}: no such {what} {value}")
            if dest in INPUT_DIRS and not p.is_dir():
                raise ConfigError(path, line, is_what(key, dest, text, line, "is not a directory"))
            if dest not in INPUT_DIRS and p.is_dir():
                raise ConfigError(path, line, is_what(key, dest, text, line,
                                                      "is a directory, not a file"))
        elif not p.parent.is_dir():
            raise ConfigError(path, line, f"{key}: no such directory {show(str(p.parent))} "
                                          f"(for {value})")
        elif dest in OUTPUT_DIRS and p.exists() and not p.is_dir():
            raise ConfigError(path, line, is_what(key, dest, text, line, "is not a directory"))
        elif dest not in OUTPUT_DIRS and p.is_dir():
            raise ConfigError(path, line, is_what(key, dest, text, line, "is a directory"))
    except OSError as exc:                      # a name too long, a loop of links…
        raise ConfigError(path, line, f"{key}: {exc.strerror or exc}: {value}") from None
    return str(p)


def _tokens(path, key: str, action: argparse.Action, value, line: int) -> list[str]:
    """The argv tokens for one setting, its value checked the way the parser would."""
    flag = _flag(action)
    if action.nargs == 0:                       # store_true / store_false / store_const
        if not isinstance(value, bool):
            raise ConfigError(path, line, f"{key}: expected true or false, got "
                                          f"{type_name(value)}")
        if isinstance(action, argparse._StoreFalseAction):
            return [flag] if value is False else []
        return [flag] if value is True else []
    if isinstance(value, list) and not value and _repeatable(action):
        return []
    values = value if isinstance(value, list) else [value]
    many = _repeatable(action) or action.nargs in ("+", "*") or (
        isinstance(action.nargs, int) and action.nargs > 1)
    if isinstance(value, list) and _comma_list(action.type):
        for v in values:
            if not isinstance(v, str):
                raise ConfigError(path, line, f"{key}: expected strings, got "
                                              f"{type_name(v)} in the list")
        values = [",".join(values)]
    elif isinstance(value, list) and not many:
        if all(isinstance(v, dict) for v in value):
            raise ConfigError(path, line, f"{key}: one value, not a list of tables")
        raise ConfigError(path, line, f"{key}: expected {_expected(action)}, got a list")
    texts = []
    for v in values:
        texts.append(_text(path, key, action, v, line))
    out: list[str] = []
    if action.nargs in ("+", "*") or isinstance(action.nargs, int):
        out = [flag, *texts] if texts else []
    else:
        for t in texts:
            out.append(f"{flag}={t}")           # "=": a value may begin with "-"
    return out


def _expected(action) -> str:
    if _is_number_type(action.type):
        return "a number"
    if _accepts_time(action.type):
        return "a time (a string like \"2026-11-24T08:00\" or ms)"
    if _comma_list(action.type):
        return "a list of strings (or one comma-separated string)"
    return "a string"


def _text(path, key: str, action: argparse.Action, v, line: int) -> str:
    """One value as the parser's string, after the same checks the parser makes."""
    number = _is_number_type(action.type)
    if isinstance(v, bool) or isinstance(v, (list, dict)):
        ok = False
    elif number:
        ok = isinstance(v, (int, float))
    elif _accepts_time(action.type):
        ok = isinstance(v, (str, int, datetime, date))
    else:
        ok = isinstance(v, str)
    if not ok:
        many = " (or a list of them)" if _repeatable(action) else ""
        raise ConfigError(path, line, f"{key}: expected {_expected(action)}{many}, got "
                                      f"{type_name(v)} {shown(action.dest, v, line, True)}")
    if isinstance(v, datetime):
        text = v.isoformat()
    elif isinstance(v, (date, time)):
        text = v.isoformat()
    elif isinstance(v, float):
        text = repr(v)
    else:
        text = str(v)
    if isinstance(v, str):
        text = _resolve(path, key, action.dest, text, line)
    if action.type is not None and callable(action.type):
        try:
            converted = action.type(text)
        except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
            msg = str(exc) or f"invalid value {show(text)}"
            if action.dest.endswith("key"):     # the message may quote the value
                msg = f"invalid value {shown(action.dest, text, line)}"
            raise ConfigError(path, line, f"{key}: {msg}") from None
    else:
        converted = text
    if action.choices is not None and converted not in action.choices:
        raise ConfigError(path, line, f"{key}: {shown(action.dest, v, line)} is not one of "
                                      f"{', '.join(map(str, action.choices))}")
    return text


def _section_name(section: str, wall: str | None) -> str:
    return f"walls.{wall}" if section == "wall" and wall else section


def config_tokens(parser: argparse.ArgumentParser, path, section: str,
                  wall: str | None = None) -> list[tuple[Item, str, list[str]]]:
    """(item, its action's dest, its argv tokens) for every setting of the section."""
    options = _options(parser)
    out = []
    where = _section_name(section, wall)
    for it in load_section(path, section, wall):
        action = options.get(it.key)
        if action is None:
            close = difflib.get_close_matches(it.key, list(options), n=1)
            hint = f"did you mean {close[0]!r}?" if close else \
                f"known: {', '.join(sorted(options))}"
            raise ConfigError(path, it.line, f"unknown key {it.key!r} in [{where}] ({hint})")
        if it.head and not _repeatable(action):
            raise ConfigError(path, it.line, f"{it.key}: one value, not a list of tables")
        out.append((it, action.dest, _tokens(path, it.key, action, it.value, it.line)))
    return out


def given_dests(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The dests of the options the command line gives (abbreviations as argparse takes
    them)."""
    strings = parser._option_string_actions
    longs = [o for o in strings if o.startswith("--")]
    out: set[str] = set()
    for token in argv:
        if token == "--":
            break
        if not token.startswith("-") or token == "-":
            continue
        name = token.split("=", 1)[0]
        action = strings.get(name)
        if action is None and name.startswith("--") and parser.allow_abbrev:
            hits = {strings[o] for o in longs if o.startswith(name)}
            action = hits.pop() if len(hits) == 1 else None
        if action is not None:
            out.add(action.dest)
    return out


def config_argv(parser: argparse.ArgumentParser, path, section: str, argv: list[str],
                wall: str | None = None, also_drops: dict[str, set[str]] | None = None
                ) -> list[str]:
    """The config's tokens for ``section``, then ``argv``; an option ``argv`` gives drops the
    config's values for it (a command line ``--feed`` drops the config's feeds with their
    per-feed ``server_key`` and ``state``, an ``--upstream`` the ``[[broker.upstream]]``
    tables). ``also_drops``: a dest given on the command line drops these dests of the config
    too (``--replay`` drops the config's network)."""
    given = given_dests(parser, argv)
    for dest in list(given):
        given |= (also_drops or {}).get(dest, set())
    settings = config_tokens(parser, path, section, wall)
    dropped = {it.table for it, dest, _ in settings if it.head and dest in given}
    tokens: list[str] = []
    for it, dest, toks in settings:
        if dest in given or (it.table is not None and it.table in dropped):
            continue
        tokens += toks
    return tokens + list(argv)


def _pop_option(argv: list[str], flag: str) -> tuple[list[str], str | None, bool]:
    """argv without ``flag VALUE`` / ``flag=VALUE`` (before a ``--``); its last value; given."""
    out: list[str] = []
    value, given, i = None, False, 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            out += argv[i:]
            break
        if token == flag:
            if i + 1 >= len(argv):
                out.append(token)               # the parser says "expected one argument"
                i += 1
                continue
            value, given, i = argv[i + 1], True, i + 2
            continue
        if token.startswith(flag + "="):
            value, given, i = token[len(flag) + 1:], True, i + 1
            continue
        out.append(token)
        i += 1
    return out, value, given


def apply_config(parser: argparse.ArgumentParser, argv: list[str], section: str, *,
                 prog: str, also_drops: dict[str, set[str]] | None = None) -> list[str]:
    """``argv`` with ``--config FILE`` (and ``--wall NAME``) taken out and the file's
    ``section`` put in front. A problem: ``PROG: error: FILE:LINE: problem``, exit 2."""
    argv = list(argv)
    argv, path, has_config = _pop_option(argv, "--config")
    argv, wall, has_wall = _pop_option(argv, "--wall")
    if not has_config:
        if has_wall:
            _fail(prog, "--wall NAME needs --config FILE (the site config naming the walls)")
        return argv
    if not path:
        _fail(prog, "--config: empty file name")
    if has_wall and not wall:
        _fail(prog, "--wall: empty name")
    try:
        return config_argv(parser, path, section, argv,
                           wall if section == "wall" else None, also_drops)
    except ConfigError as exc:
        _fail(prog, str(exc))
    except RecursionError:
        _fail(prog, f"{path}: nested too deeply")
    except MemoryError:
        _fail(prog, f"{path}: too large")
    return argv                                 # not reached


def _fail(prog: str, message: str) -> None:
    sys.stderr.write(f"{prog}: error: {one_line(message, 1500)}\n")
    sys.stderr.flush()
    sys.exit(EXIT_USAGE)

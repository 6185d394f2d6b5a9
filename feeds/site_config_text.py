"""Reading a site config's text safely, and finding each key's line. No Qt.

``read(path)`` gives the parsed TOML document and a ``Lines`` finder, or a one-line
``ConfigError``: a file too large (``MAX_BYTES``) or nested too deeply (``MAX_DEPTH``) is
refused before ``tomllib`` sees it, and a TOML syntax error is reported as ``FILE:LINE: problem``.
``tomllib`` keeps no line numbers, so ``Lines`` scans the text once and maps every
``(table path, key)`` and every table to the line it is written on.

The helpers ``one_line``, ``show`` and ``type_name`` word the problems the same way
everywhere.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

MAX_BYTES = 1 << 20                 # a site config is a page or two; 1 MiB is plenty
MAX_DEPTH = 16                      # tables in tables: [walls.city.feed] is 3


class ConfigError(ValueError):
    """A site config that cannot be used; ``str()`` is one line: ``FILE:LINE: problem``."""

    def __init__(self, path, line: int | None, problem: str):
        where = f"{path}:{line}" if line else f"{path}"
        super().__init__(one_line(f"{where}: {problem}", 1200))


# ---- wording ---------------------------------------------------------------------------------
def one_line(text: str, most: int = 400) -> str:
    """``text`` on one line of at most ``most`` characters, encodable as UTF-8."""
    text = " ".join(str(text).split())
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= most else text[:most - 1] + "…"


def show(value, most: int = 60) -> str:
    """A value as it is quoted in a problem: its repr, cut short."""
    try:
        text = repr(value)
    except RecursionError:
        text = "(nested too deeply)"
    return text if len(text) <= most else text[:most - 1] + "…"


def shown(dest: str, value, line: int, paren: bool = False) -> str:
    """A value as quoted in a problem; never a ``…key`` option's: it may be a pasted secret."""
    if dest.endswith("key"):
        return f"(the value given on line {line} is not shown: it may be a secret)"
    return f"({show(value)})" if paren else show(value)


def is_what(key: str, dest: str, text: str, line: int, what: str) -> str:
    """``KEY: 'VALUE' WHAT``; for a ``…key`` option ``KEY: WHAT (the value … not shown…)``."""
    if dest.endswith("key"):
        return f"{key}: {what} {shown(dest, text, line)}"
    return f"{key}: {show(text)} {what}"


def type_name(value) -> str:
    """A TOML value's type in words: "a string", "a list" …"""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


# ---- reading ---------------------------------------------------------------------------------
def read(path) -> tuple[dict, "Lines"]:
    """The parsed document and its line finder. ``ConfigError`` on an unreadable, oversized
    or malformed file."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if not p.is_file():
            raise ConfigError(path, None, "not a file")
        if size > MAX_BYTES:
            raise ConfigError(path, None, f"{size} bytes: a site config is at most "
                                          f"{MAX_BYTES // 1024} KiB")
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, None, "no such file") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(path, line, "not UTF-8 text") from None
    if text.startswith("\ufeff"):     # a byte order mark (Windows Notepad): on line 1,
        text = text[1:]                 # so every line keeps its number
    lines = Lines(text, path)          # first: it refuses a header nested too deeply,
    try:                                # which tomllib would take quadratic time over
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\s*\(at line (\d+), column (\d+)\)", msg)
        if m:
            raise ConfigError(path, int(m.group(1)), f"{msg[:m.start()]} (column "
                                                     f"{m.group(2)})") from None
        m = re.search(r"\s*\(at end of document\)", msg)
        if m:
            raise ConfigError(path, text.count("\n") + 1, msg[:m.start()]) from None
        raise ConfigError(path, None, msg) from None
    except RecursionError:
        raise ConfigError(path, None, "nested too deeply") from None
    return doc, lines


_KEY_PART = r'(?:"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|[A-Za-z0-9_-]+)'
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER = re.compile(rf"\s*(\[\[?)\s*({_DOTTED})\s*(\]\]?)")
_KEY = re.compile(rf"\s*({_DOTTED})\s*=")
_PART = re.compile(rf"\s*({_KEY_PART})\s*\.?")
_TOKEN = re.compile(r'"""|\'\'\'|"(?:[^"\\\n]|\\.)*"?|\'[^\'\n]*\'?|#|[\[\]{}]')


def _parts(dotted: str) -> tuple[str, ...]:
    out = []
    for m in _PART.finditer(dotted):
        part = m.group(1)
        if part[:1] == '"' and "\\" in part:      # escapes: "la\u006eg" is lang
            try:
                part = tomllib.loads(f"k = {part}")["k"]
            except (tomllib.TOMLDecodeError, KeyError):
                part = part[1:-1]
        elif part[:1] in "\"'":
            part = part[1:-1]
        out.append(part)
    return tuple(out)


class Lines:
    """Best-effort line numbers: tomllib gives none. Scans the text once, following the
    ``[table]`` / ``[[array.table]]`` headers (each array table counted), multi-line strings
    and arrays, so that every key written on a line of its own maps to that line."""

    def __init__(self, text: str, file="config"):
        self.keys: dict[tuple, int] = {}        # (table path, key) → line
        self.tables: dict[tuple, int] = {}      # table path → its header's line
        self.entries: dict[tuple, list[int]] = {}   # (table, key) → its inline tables' lines
        counts: dict[tuple, int] = {}
        table: tuple = ()
        closing: str | None = None              # inside a multi-line string
        depth = 0                               # inside a multi-line array / inline table
        entries: list[int] | None = None        # the open array's inline tables' lines
        for number, line in enumerate(text.split("\n"), 1):
            rest = line
            if closing is not None:
                end = _close(rest, closing)
                if end < 0:
                    continue
                closing, rest = None, rest[end:]
            elif depth == 0:
                m = _HEADER.match(rest)
                if m and (m.group(1) == "[[") == (m.group(3) == "]]"):
                    path = _parts(m.group(2))
                    if len(path) > MAX_DEPTH:
                        raise ConfigError(file, number, "nested too deeply")
                    if m.group(1) == "[[":
                        counts[path] = counts.get(path, -1) + 1
                        path = path + (counts[path],)
                        for prefix in range(1, len(path) - 1):
                            self.tables.setdefault(path[:prefix], number)
                    else:
                        path = _indexed(path, counts)
                        for prefix in range(1, len(path)):
                            self.tables.setdefault(path[:prefix], number)
                    self.tables.setdefault(path, number)
                    table = path
                    continue
                m = _KEY.match(rest)
                if m:
                    parts = _parts(m.group(1))
                    if len(parts) + len(table) > MAX_DEPTH:
                        raise ConfigError(file, number, "nested too deeply")
                    for k in range(1, len(parts)):
                        self.keys.setdefault((table + parts[:k - 1], parts[k - 1]), number)
                        self.tables.setdefault(table + parts[:k], number)
                    self.keys.setdefault((table + parts[:-1], parts[-1]), number)
                    rest = rest[m.end():]
                    entries = None
                    if rest.lstrip().startswith("["):
                        entries = self.entries.setdefault((table + parts[:-1], parts[-1]), [])
            closing, depth = _scan(rest, depth, entries, number)
            if depth == 0:
                entries = None

    def key(self, table: tuple, key: str) -> int:
        line = self.keys.get((tuple(table), key))
        return line if line is not None else self.table(table)

    def table(self, table: tuple) -> int:
        table = tuple(table)
        while table:
            if table in self.tables:
                return self.tables[table]
            if len(table) >= 2 and isinstance(table[-1], int) \
                    and (table[:-2], table[-2]) in self.keys:    # an inline array of tables
                entries = self.entries.get((table[:-2], table[-2]), [])
                if table[-1] < len(entries):                     # the entry's own line
                    return entries[table[-1]]
                return self.keys[(table[:-2], table[-2])]
            if (table[:-1], table[-1]) in self.keys:
                return self.keys[(table[:-1], table[-1])]
            table = table[:-1]
        return 1


def _indexed(path: tuple, counts: dict) -> tuple:
    """``[a.b]`` under ``[[a]]``: the last ``a`` table's ``b``."""
    out: tuple = ()
    for part in path:
        out = out + (part,)
        plain = tuple(p for p in out if not isinstance(p, int))
        if plain in counts and plain != path:
            out = out + (counts[plain],)
    return out


def _close(text: str, closing: str) -> int:
    """The index just after the end of a multi-line string in ``text``, or -1."""
    i = 0
    while True:
        j = text.find(closing, i)
        if j < 0:
            return -1
        if closing == '"""':
            slashes = len(text[:j]) - len(text[:j].rstrip("\\"))
            if slashes % 2:
                i = j + 1
                continue
        k = j + 3
        while k < len(text) and text[k] == closing[0] and k - j < 5:
            k += 1                              # up to two quotes may end the content
        return k


def _scan(text: str, depth: int, entries: list[int] | None = None,
          number: int = 0) -> tuple[str | None, int]:
    """Follow strings, comments and brackets through the rest of a line; an inline table
    opened directly in a key's array adds this line to ``entries``."""
    i = 0
    while True:
        m = _TOKEN.search(text, i)
        if m is None:
            return None, depth
        tok = m.group(0)
        if tok in ('"""', "'''"):
            end = _close(text[m.end():], tok)
            if end < 0:
                return tok, depth
            i = m.end() + end
            continue
        if tok == "#":
            return None, depth
        if tok in "[{":
            if tok == "{" and depth == 1 and entries is not None:
                entries.append(number)
            depth += 1
        elif tok in "]}":
            depth = max(0, depth - 1)
        i = m.end()

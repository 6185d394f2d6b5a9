"""Who may publish what: the publishers file a console reads (``--publishers FILE.toml``).

    [publisher.demo-city]            # NAME: the stem of the publisher's server key file
    src = ["demo-city", "dispatch"]  # the src ids records from it may carry

A console that connects to an endpoint with the server key NAME accepts from it only records
whose ``src`` is in NAME's list; any other is refused as ``src_not_allowed`` (counted per
source, changing nothing). An endpoint whose key the file does not name is refused whole. No Qt.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

from feeds.bounds import valid_id


class PublishersError(ValueError):
    """``FILE:LINE: problem`` (or ``FILE: problem``): one line, exit 2."""


def load_publishers(path: str) -> dict[str, frozenset[str]]:
    """Key name → the src ids it may publish."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PublishersError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PublishersError(f"{path}:{getattr(exc, 'lineno', '?')}: {exc}") from None
    unknown = set(doc) - {"publisher"}
    if unknown:
        raise PublishersError(f"{path}: unknown table {sorted(unknown)[0]!r} (only [publisher.NAME])")
    out: dict[str, frozenset[str]] = {}
    for name, table in (doc.get("publisher") or {}).items():
        where = f"{path}: [publisher.{name}]"
        if not isinstance(table, dict) or set(table) != {"src"}:
            raise PublishersError(f"{where}: needs exactly one key, src = [\"…\"]")
        src = table["src"]
        if not isinstance(src, list) or not src or not all(
                isinstance(s, str) and valid_id(s) for s in src):
            raise PublishersError(f"{where}: src must be a non-empty list of ids")
        out[name] = frozenset(src)
    if not out:
        raise PublishersError(f"{path}: names no publisher")
    return out

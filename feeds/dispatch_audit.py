"""Who ordered what: the dispatch service's order log as CSV.

    python -m feeds.dispatch_service audit --db FILE [--since TIME] [--console KEY]

One row per order the service judged (accepted or rejected; snapshots are not orders and are
not logged), oldest first: ``time`` (ISO 8601, Beijing time), ``client`` (the authenticated
key's name: who really sent it; ``-`` when the service ran without keys), ``role`` (its role
then), ``console`` (the console the order claimed to come from — kept as claimed, believed by
nothing), ``type``, ``order_id``, ``case_id``, ``unit_id``, ``result``, ``reason``.

``--console KEY`` keeps the orders of one authenticated key (the ``client`` column, not the
claimed ``console``); ``--since TIME`` those judged at or after TIME (ISO 8601, Beijing time
when no zone is given, or milliseconds since the epoch). The database is opened read-only, so
an audit can run beside the service; a database made before keys (no ``client`` column) reads
as ``-``. Errors are one line and exit 2.
"""
from __future__ import annotations

import csv
import json
import sqlite3
import sys
from datetime import datetime
from pathlib import Path

from feeds.args import CITY_TZ, EXIT_USAGE, OneLineParser, time_ms

COLUMNS = ("time", "client", "role", "console", "type", "order_id", "case_id", "unit_id",
           "result", "reason")


class AuditError(Exception):
    """The order log cannot be read: one line."""


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, CITY_TZ).isoformat(timespec="milliseconds")


def audit_rows(db: str | Path, since_ms: int | None = None,
               client: str | None = None) -> list[dict]:
    """The orders in ``db`` as rows of ``COLUMNS``, oldest first."""
    path = Path(db).expanduser()
    if not path.is_file():
        raise AuditError(f"no such database: {str(path)!r}")
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error as exc:
        raise AuditError(f"{path}: {exc}") from None
    try:
        have = {row[1] for row in conn.execute("PRAGMA table_info(orders)")}
        if not have:
            raise AuditError(f"{path}: not a dispatch database (no orders table)")
        who = [c if c in have else f"'-' AS {c}" for c in ("client", "role")]
        where, params = [], []
        if since_ms is not None:
            where.append("ts >= ?")
            params.append(since_ms)
        if client is not None:
            if "client" not in have:
                return []
            where.append("client = ?")
            params.append(client)
        sql = (f"SELECT ts, {', '.join(who)}, console, type, order_id, request, reply, result "
               "FROM orders" + (f" WHERE {' AND '.join(where)}" if where else "")
               + " ORDER BY ts, rowid")
        rows = conn.execute(sql, params).fetchall()
    except sqlite3.Error as exc:
        raise AuditError(f"{path}: {exc}") from None
    finally:
        conn.close()
    out = []
    for ts, client_, role, console, type_, order_id, request, reply, result in rows:
        req, rep = _object(request), _object(reply)
        out.append({"time": iso(ts), "client": client_, "role": role, "console": console,
                    "type": type_, "order_id": order_id,
                    "case_id": req.get("case_id") or "", "unit_id": req.get("unit_id") or "",
                    "result": result, "reason": rep.get("reason") or ""})
    return out


def _object(text: str) -> dict:
    try:
        obj = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="feeds.dispatch_service audit",
                      description="Print the dispatch service's order log as CSV: who "
                                  "(the authenticated key) ordered what, and the answer.")
    p.add_argument("--db", required=True, metavar="FILE", help="the service's SQLite file")
    p.add_argument("--since", type=time_ms, default=None, metavar="TIME",
                   help="only orders judged at or after TIME (ISO 8601, Beijing time unless "
                        "a zone is given, or ms since the epoch)")
    p.add_argument("--console", default=None, metavar="KEY",
                   help="only the orders sent with this key (the authenticated key name, the "
                        "client column — not the console an order claims)")
    args = p.parse_args(argv)
    try:
        rows = audit_rows(args.db, args.since, args.console)
    except AuditError as exc:
        print(f"feeds.dispatch_service audit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    writer = csv.DictWriter(sys.stdout, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return 0

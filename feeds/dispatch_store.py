"""The dispatch service's SQLite file: orders, the picture, the change log and the feed's marks.

One writer (the service's loop). Every order (accepted or rejected), its reply, the records it
made and the feed's ``seq`` are written in one transaction (WAL, synchronous=FULL) before the
reply leaves, so SIGKILL loses nothing that was acknowledged.

Two marks in ``meta`` say where the feed stands:

- ``seq``: the last seq given out (stored with every transaction, heartbeats included), so a
  restarted service carries on from the next number;
- ``published``: the last seq actually sent on the feed. Every record but heartbeats is kept in
  ``changes`` by its seq, so the records committed but not yet sent when the process died are
  ``changes_after(published)``: the restarted service sends them first (``published`` is
  written right after each send, cheaply, so it lags the truth by microseconds at most).

Every order row says who really sent it: ``client``, the authenticated key's name (the CURVE
handshake's User-Id; ``-`` when the service is not secured), and ``role``, its role then —
never the ``console`` the order claims, which is kept as claimed. A database made before these
columns gets them on open (``migrate``). ``python -m feeds.dispatch_service audit`` reads them.

Every method raises ``StorageError`` and leaves no transaction open. No Qt, no sockets.
"""
from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from feeds.schema import Case, Unit

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    console  TEXT NOT NULL,
    type     TEXT NOT NULL,
    request  TEXT NOT NULL,      -- the order as understood (JSON)
    reply    TEXT NOT NULL,      -- the reply sent, byte for byte (JSON)
    result   TEXT NOT NULL,      -- accepted | rejected
    ts       INTEGER NOT NULL,   -- service clock when judged
    client   TEXT NOT NULL DEFAULT '-',  -- the authenticated key's name ('-': not secured)
    role     TEXT NOT NULL DEFAULT '-'   -- its role then ('-': none)
);
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY, ts INTEGER NOT NULL, status TEXT NOT NULL,
    record  TEXT NOT NULL        -- the newest record held (learned or its own), JSON
);
CREATE TABLE IF NOT EXISTS units (
    unit_id TEXT PRIMARY KEY, ts INTEGER NOT NULL, status TEXT NOT NULL,
    record  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (    -- every record the service published but heartbeats
    seq      INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL,
    topic    TEXT NOT NULL,
    key      TEXT NOT NULL,      -- case_id or unit_id
    status   TEXT NOT NULL,
    ts       INTEGER NOT NULL,
    record   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_by_order ON changes(order_id);
-- 'seq': the last seq given out; 'published': the last seq sent on the feed
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);
"""
# Columns added since the first schema: a database made before them gets them on open.
ADDED_COLUMNS = {"orders": (("client", "TEXT NOT NULL DEFAULT '-'"),
                            ("role", "TEXT NOT NULL DEFAULT '-'"))}
ORDER_COLUMNS = ("order_id", "console", "type", "request", "reply", "result", "ts", "client",
                 "role")

_case_dec = msgspec.json.Decoder(Case)
_unit_dec = msgspec.json.Decoder(Unit)
_enc = msgspec.json.Encoder()


def default_db_path() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(state) / "citywall" / "dispatch.sqlite3"


class StorageError(Exception):
    """The database could not be opened, read or written; the text says why."""


POS_TS, POS_TS_END = "pos_ts:", "pos_ts;"       # meta keys of units' position ts (a range)


@dataclass
class Stored:
    """What a database holds at start-up."""
    cases: dict[str, Case] = field(default_factory=dict)
    units: dict[str, Unit] = field(default_factory=dict)
    seq: int | None = None            # the last seq given out (None: a new database)
    published: int | None = None      # the last seq sent on the feed (None: not known)
    unit_pos_ts: dict[str, int] = field(default_factory=dict)   # a unit's position's ts, when
                                      # a fix newer than its record moved it (meta pos_ts:ID)


def change_row(order_id: str, rec: Case | Unit) -> tuple:
    """The ``changes`` row of one record the service makes."""
    topic, key = ("case", rec.case_id) if isinstance(rec, Case) else ("unit", rec.unit_id)
    return (rec.seq, order_id, topic, key, rec.status, rec.ts, _enc.encode(rec).decode())


def migrate(conn: sqlite3.Connection) -> None:
    """Add the columns a database made by an older version lacks (``ADDED_COLUMNS``); rows
    already there get the default (an order from before keys: client '-', role '-')."""
    for table, columns in ADDED_COLUMNS.items():
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, decl in columns:
            if name not in have:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")


class Storage:
    """The service's SQLite file. Every method raises ``StorageError`` and leaves no
    transaction open."""

    def __init__(self, path: str | os.PathLike, max_bytes: int | None = None):
        self.path = str(path)
        self.max_bytes = max_bytes
        self.conn: sqlite3.Connection | None = None

    def open(self) -> None:
        conn = None
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=1.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(SCHEMA)
            migrate(conn)
            if self.max_bytes:
                page = conn.execute("PRAGMA page_size").fetchone()[0]
                conn.execute(f"PRAGMA max_page_count={max(1, self.max_bytes // page)}")
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise StorageError(f"{self.path}: {exc}") from None
        self.conn = conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _conn(self) -> sqlite3.Connection:
        if self.conn is None:
            raise StorageError(f"{self.path} is not open")
        return self.conn

    def load(self) -> Stored:
        try:
            c = self._conn()
            cases = {k: _case_dec.decode(r)
                     for k, r in c.execute("SELECT case_id, record FROM cases")}
            units = {k: _unit_dec.decode(r)
                     for k, r in c.execute("SELECT unit_id, record FROM units")}
            # The last seq given out: kept in meta with every transaction; the change log
            # is a floor under it should meta ever lag.
            seq = c.execute("SELECT max(coalesce((SELECT value FROM meta WHERE key='seq'), -1),"
                            " coalesce((SELECT max(seq) FROM changes), -1))").fetchone()[0]
            row = c.execute("SELECT value FROM meta WHERE key='published'").fetchone()
            pos_ts = {k[len(POS_TS):]: int(v) for k, v in c.execute(
                "SELECT key, value FROM meta WHERE key >= ? AND key < ?", (POS_TS, POS_TS_END))
                if k[len(POS_TS):] in units and isinstance(v, int)}
        except (sqlite3.Error, msgspec.DecodeError) as exc:
            raise StorageError(f"{self.path}: {exc}") from None
        return Stored(cases, units, None if seq < 0 else int(seq),
                      None if row is None else int(row[0]), pos_ts)

    def changes_after(self, seq: int) -> list[Case | Unit]:
        """The records of the change log after ``seq``, in seq order."""
        try:
            rows = self._conn().execute("SELECT topic, record FROM changes WHERE seq > ? "
                                        "ORDER BY seq", (seq,)).fetchall()
            return [(_case_dec if topic == "case" else _unit_dec).decode(record)
                    for topic, record in rows]
        except (sqlite3.Error, msgspec.DecodeError) as exc:
            raise StorageError(f"{self.path}: {exc}") from None

    def reply_for(self, order_id: str) -> bytes | None:
        try:
            row = self._conn().execute("SELECT reply FROM orders WHERE order_id=?",
                                       (order_id,)).fetchone()
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from None
        return None if row is None else row[0].encode()

    def write(self, *, orders: Iterable[tuple] = (), cases: Iterable[Case] = (),
              units: Iterable[Unit] = (), changes: Iterable[tuple] = (),
              seq: int | None = None, published: int | None = None,
              forget: Iterable[str] = (), forget_units: Iterable[str] = (),
              unit_pos_ts: dict[str, int] | None = None) -> None:
        """One transaction: all of it or none of it. ``forget``: case ids to delete,
        ``forget_units``: unit ids; ``unit_pos_ts``: units' position ts (from fixes)."""
        c = self._conn()
        try:
            c.execute("BEGIN IMMEDIATE")
            c.executemany(f"INSERT INTO orders ({','.join(ORDER_COLUMNS)}) VALUES "
                          f"({','.join('?' * len(ORDER_COLUMNS))})", orders)
            c.executemany("INSERT OR REPLACE INTO cases VALUES (?,?,?,?)",
                          [(r.case_id, r.ts, r.status, _enc.encode(r).decode()) for r in cases])
            c.executemany("INSERT OR REPLACE INTO units VALUES (?,?,?,?)",
                          [(r.unit_id, r.ts, r.status, _enc.encode(r).decode()) for r in units])
            c.executemany("INSERT INTO changes VALUES (?,?,?,?,?,?,?)", changes)
            c.executemany("DELETE FROM cases WHERE case_id=?", [(k,) for k in forget])
            c.executemany("DELETE FROM units WHERE unit_id=?", [(k,) for k in forget_units])
            c.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                          [(POS_TS + k, int(v)) for k, v in (unit_pos_ts or {}).items()])
            c.executemany("DELETE FROM meta WHERE key=?", [(POS_TS + k,) for k in forget_units])
            if seq is not None:
                c.execute("INSERT OR REPLACE INTO meta VALUES ('seq', ?)", (seq,))
            if published is not None:
                c.execute("INSERT OR REPLACE INTO meta VALUES ('published', ?)", (published,))
            c.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                c.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise StorageError(str(exc)) from None

    def mark_published(self, seq: int) -> None:
        """Note that everything up to ``seq`` has been sent on the feed. Without an fsync
        (synchronous=NORMAL: the OS has it, so a killed process loses nothing; a power cut may
        lose the mark, and the records after it are then sent once more — harmless upserts).
        The next FULL commit makes it durable with everything else."""
        c = self._conn()
        try:
            c.execute("PRAGMA synchronous=NORMAL")
            try:
                c.execute("INSERT OR REPLACE INTO meta VALUES ('published', ?)", (seq,))
            finally:
                c.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from None

"""SQLite adapter: WAL, foreign keys, one writer at a time, a connection per thread.

Writes take an in-process lock before BEGIN IMMEDIATE so threads of this server queue on the
lock instead of spinning on SQLITE_BUSY; busy_timeout covers other processes.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from torc.storage.base import Connection, Row, Store
from torc.storage.migrations import load_migrations


def _dict_row(cursor: sqlite3.Cursor, row: tuple) -> Row:
    return {d[0]: v for d, v in zip(cursor.description, row, strict=True)}


class SqliteConnection(Connection):
    def __init__(self, raw: sqlite3.Connection):
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.raw.execute(sql, params).rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.raw.executemany(sql, rows)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.raw.execute(sql, params).fetchall()

    def iterate(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        return iter(self.raw.execute(sql, params))

    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.raw.execute(sql, params).lastrowid

    def column(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        cursor = self.raw.cursor()
        cursor.row_factory = None  # plain tuples: no dict per row for a single column
        return [row[0] for row in cursor.execute(sql, params)]

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cursor = self.raw.cursor()
        cursor.row_factory = None
        row = cursor.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[int]:
        # Inside the single write transaction nobody else allocates ids, so taking the next
        # block of ids ourselves is safe and lets executemany do the bulk work.
        if not rows:
            return []
        seq = self.raw.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
        top = self.raw.execute(f"SELECT MAX(id) AS m FROM {table}").fetchone()["m"] or 0
        start = max(top, seq["seq"] if seq else 0) + 1
        ids = list(range(start, start + len(rows)))
        cols = ", ".join(("id", *columns))
        marks = ", ".join("?" for _ in range(len(columns) + 1))
        self.raw.executemany(
            f"INSERT INTO {table} ({cols}) VALUES ({marks})", [(i, *row) for i, row in zip(ids, rows, strict=True)]
        )
        return ids


class SqliteStore(Store):
    dialect = "sqlite"

    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._migrate()

    def _connect(self) -> sqlite3.Connection:
        raw = getattr(self._local, "conn", None)
        if raw is None:
            raw = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=45)
            raw.row_factory = _dict_row
            raw.execute("PRAGMA journal_mode=WAL")
            raw.execute("PRAGMA synchronous=NORMAL")
            raw.execute("PRAGMA foreign_keys=ON")
            raw.execute("PRAGMA busy_timeout=45000")
            raw.execute("PRAGMA cache_size=-65536")
            self._local.conn = raw
            with self._all_lock:
                self._all.append(raw)
        return raw

    @contextmanager
    def read(self) -> Iterator[Connection]:
        raw = self._connect()
        if raw.in_transaction:  # nested inside a write on this thread
            yield SqliteConnection(raw)
            return
        raw.execute("BEGIN")
        try:
            yield SqliteConnection(raw)
        finally:
            raw.execute("COMMIT")

    @contextmanager
    def write(self) -> Iterator[Connection]:
        raw = self._connect()
        with self._write_lock:
            if raw.in_transaction:
                yield SqliteConnection(raw)  # nested: the outer write commits
                return
            raw.execute("BEGIN IMMEDIATE")
            try:
                yield SqliteConnection(raw)
            except BaseException:
                raw.execute("ROLLBACK")
                raise
            else:
                raw.execute("COMMIT")

    def close(self) -> None:
        with self._all_lock:
            for raw in self._all:
                try:
                    raw.close()
                except sqlite3.ProgrammingError:
                    pass
            self._all.clear()
        self._local = threading.local()

    @property
    def schema_version(self) -> int:
        with self.read() as conn:
            return conn.scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") or 0

    def json_field(self, column: str, key: str) -> str:
        return f"json_extract({column}, '$.{key}')"

    def _migrate(self) -> None:
        with self.write() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            applied = set(conn.column("SELECT version FROM schema_migrations"))
            for migration in load_migrations(self.dialect):
                if migration.version in applied:
                    continue
                for statement in migration.statements():
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, datetime.now(UTC).isoformat()),
                )

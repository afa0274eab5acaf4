"""The Store port: what the service layer needs from a database.

SQL text is written once, with `?` placeholders, in the portable subset SQLite and PostgreSQL
share (CTEs, RETURNING, ON CONFLICT DO NOTHING). Each adapter translates placeholders and
owns connections, transactions and migrations.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

Row = dict[str, Any]


class Connection(ABC):
    """One connection inside a transaction (write) or a read snapshot (read)."""

    # Appended to a claim's SELECT of ready jobs (inside Store.claim): PostgreSQL locks the rows it
    # returns and skips those other claims hold; SQLite's claims are exclusive anyway.
    lock_claimed_rows = ""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; return the number of affected rows."""

    @abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    @abstractmethod
    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    @abstractmethod
    def iterate(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]: ...

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        for row in self.iterate(sql, params):
            return row
        return None

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.fetchone(sql, params)
        return None if row is None else next(iter(row.values()))

    def column(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return [next(iter(r.values())) for r in self.iterate(sql, params)]

    @abstractmethod
    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an INSERT and return the new row's id."""

    def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[int]:
        """Insert rows and return their new ids in order. Adapters override this with a bulk path."""
        cols = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {table} ({cols}) VALUES ({marks})"
        return [self.insert(sql, row) for row in rows]


class Store(ABC):
    dialect: str

    @abstractmethod
    def read(self) -> AbstractContextManager[Connection]:
        """A consistent read-only snapshot."""

    @abstractmethod
    def write(self) -> AbstractContextManager[Connection]:
        """An exclusive write transaction: commit on success, roll back on any exception."""

    def claim(self) -> AbstractContextManager[Connection]:
        """A transaction for claiming ready jobs: exclusive of every other write, but not
        necessarily of other claims (which then select rows with `lock_claimed_rows`)."""
        return self.write()

    @abstractmethod
    def close(self) -> None: ...

    @property
    @abstractmethod
    def schema_version(self) -> int: ...

    @abstractmethod
    def json_field(self, column: str, key: str) -> str:
        """SQL expression reading one top-level key of a JSON text column (names are trusted)."""

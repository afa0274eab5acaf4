"""PostgreSQL adapter: psycopg 3 with a connection pool, for shared sites and many runners.

The services' SQL is shared with SQLite: `?` placeholders become `%s` (and a literal `%` becomes
`%%`) and the reserved word `user` is quoted, once per distinct statement. Python booleans go in as
0/1 because flags are integer columns, as on SQLite, and every int as BIGINT; NUMERIC results (SUM, AVG) come back as int or
float, never Decimal.

Transactions. `write()` is one transaction that first takes a transaction-level advisory lock for
this store's schema, so writers run one at a time across every server process using the database:
the same guarantee as SQLite's BEGIN IMMEDIATE that the services (completions, unblocking) are
written for. `claim()` takes the same lock shared: claims run beside each other, their candidate
rows selected `FOR UPDATE SKIP LOCKED` (Connection.lock_claimed_rows) so no two get the same job,
and no other write overlaps them.
`read()` is a REPEATABLE READ transaction: one consistent snapshot, running beside writers.

Errors. A constraint violation becomes a ConflictError (409) and a value PostgreSQL cannot store
(a NUL character in text, an integer beyond 64 bits) an InvalidInputError (422), as the SQLite path
answers those through the server's IntegrityError and OverflowError handlers.
"""

from __future__ import annotations

import re
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.adapt import Loader
from psycopg.rows import dict_row, tuple_row
from psycopg.types.numeric import Int8Dumper

from torc.core.errors import ConflictError, InvalidInputError, TorcError
from torc.storage.base import Connection, Row, Store
from torc.storage.migrations import load_migrations

# A single-quoted literal, a double-quoted name, a placeholder, a percent sign or a bare `user`.
_TOKEN = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|\?|%|(?<![.\w\"])user(?![\w\"])")
_LOCK_CLASS = 0x746F7263  # "torc": the advisory lock key's high half; the low half is the schema's crc32
_CACHE_LIMIT = 4096


def _translate_token(match: re.Match) -> str:
    token = match.group(0)
    if token == "?":
        return "%s"
    if token == "%":
        return "%%"
    if token == "user":
        return '"user"'
    return token.replace("%", "%%")  # psycopg reads `%` inside literals too


class _SqlCache:
    """Translated statements keyed by their SQLite/portable text (services build few distinct ones)."""

    def __init__(self) -> None:
        self._cache: dict[str, str] = {}

    def __call__(self, sql: str) -> str:
        out = self._cache.get(sql)
        if out is None:
            out = _TOKEN.sub(_translate_token, sql)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[sql] = out
        return out


translate = _SqlCache()


_INT64 = range(-(1 << 63), 1 << 63)


def _params(params: Sequence[Any]) -> Sequence[Any]:
    """Booleans as 0/1; an integer beyond 64 bits is an OverflowError, as sqlite3 raises (a 422)."""
    out = None
    for i, p in enumerate(params):
        if type(p) is int:
            if p not in _INT64:
                raise OverflowError("Python int too large to convert to a 64-bit integer")
        elif isinstance(p, bool):
            if out is None:
                out = list(params)
            out[i] = int(p)
    return params if out is None else out


class _NumberLoader(Loader):
    """NUMERIC (what SUM/AVG of integers give) as int when whole, else float, like SQLite."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        try:
            return int(text)
        except ValueError:
            return float(text)


def _translate_error(exc: psycopg.Error) -> TorcError | None:
    if isinstance(exc, psycopg.errors.IntegrityError):
        return ConflictError(f"the change conflicts with existing data: {exc}".strip())
    if isinstance(exc, psycopg.DataError):
        return InvalidInputError(f"a value in the request cannot be stored: {exc}".strip())
    return None


class PostgresConnection(Connection):
    lock_claimed_rows = " FOR UPDATE SKIP LOCKED"

    def __init__(self, raw: psycopg.Connection):
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.raw.execute(translate(sql), _params(params)).rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.raw.cursor() as cur:
            cur.executemany(translate(sql), [_params(r) for r in rows])

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.raw.execute(translate(sql), _params(params)).fetchall()

    def iterate(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        return iter(self.raw.execute(translate(sql), _params(params)).fetchall())

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return self.raw.execute(translate(sql), _params(params)).fetchone()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self.raw.cursor(row_factory=tuple_row) as cur:
            row = cur.execute(translate(sql), _params(params)).fetchone()
        return None if row is None else row[0]

    def column(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.raw.cursor(row_factory=tuple_row) as cur:
            return [row[0] for row in cur.execute(translate(sql), _params(params))]

    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        row = self.raw.execute(translate(sql) + " RETURNING id", _params(params)).fetchone()
        return row["id"]

    def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[int]:
        # Take a block of ids from the table's sequence, then send every row in one pipeline.
        if not rows:
            return []
        ids = self.column(
            "SELECT nextval(pg_get_serial_sequence(?, 'id')) FROM generate_series(1, ?)", (table, len(rows))
        )
        cols = ", ".join(("id", *columns))
        marks = ", ".join("?" for _ in range(len(columns) + 1))
        self.executemany(
            f"INSERT INTO {table} ({cols}) VALUES ({marks})", [(i, *row) for i, row in zip(ids, rows, strict=True)]
        )
        return ids


def redact(url: str) -> str:
    """The URL without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


class PostgresStore(Store):
    dialect = "postgres"

    def __init__(self, url: str, *, max_size: int = 16, timeout: float = 30.0):
        from psycopg_pool import ConnectionPool

        self.url = url
        try:  # fail fast with one clear line; the pool would retry until its timeout
            psycopg.connect(url, connect_timeout=10).close()
        except psycopg.Error as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InvalidInputError(f"cannot connect to PostgreSQL at {redact(url)}: {detail}") from None
        self._size = max_size
        self._local = threading.local()
        self._write_lock = threading.Lock()  # threads of this process queue here, not in the database
        self._pool = ConnectionPool(
            url,
            # A fixed size: every connection is opened up front, none while requests wait for one.
            min_size=max_size,
            max_size=max_size,
            timeout=timeout,
            kwargs={"autocommit": True, "row_factory": dict_row},
            configure=self._configure,
            open=False,
            name="torc",
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
            with self._pool.connection() as raw:
                schema = raw.execute("SELECT current_schema() AS s").fetchone()["s"]
            if schema is None:
                raise InvalidInputError(f"database {redact(url)}: no schema on the search_path to create tables in")
            self.schema = schema
            lock_key = (_LOCK_CLASS << 32) | zlib.crc32(schema.encode())
            self._begin_write = f"BEGIN; SELECT pg_advisory_xact_lock({lock_key})"
            # claims share the lock: they run beside each other (their rows kept apart by FOR
            # UPDATE SKIP LOCKED), never beside another write
            self._begin_claim = f"BEGIN; SELECT pg_advisory_xact_lock_shared({lock_key})"
            self._migrate()
        except BaseException:
            self._pool.close()
            raise

    @staticmethod
    def _configure(raw: psycopg.Connection) -> None:
        raw.adapters.register_loader("numeric", _NumberLoader)
        # Every Python int as BIGINT (the type of every integer column), not the smallest type that
        # fits: a bare `?` in a SELECT list or CTE then has the column's type.
        raw.adapters.register_dumper(int, Int8Dumper)

    def _checkout(self, begin: str) -> psycopg.Connection:
        """A pooled connection with `begin` sent. A connection the database dropped (a restart, an
        idle timeout) fails here, before anything was done, so it goes back to the pool, which
        replaces it, and the next one is tried: a restarted database costs no failed request."""
        for attempt in range(self._size + 1):
            raw = self._pool.getconn()
            try:
                raw.execute(begin)  # no parameters: BEGIN and the writer lock go in one round trip
                return raw
            except psycopg.OperationalError:
                self._pool.putconn(raw)
                if attempt == self._size:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[Connection]:
        try:
            raw = self._checkout(begin)
        except psycopg.OperationalError as exc:
            unavailable = TorcError(f"the database is unavailable: {str(exc).strip()}")
            unavailable.status_code = 503
            raise unavailable from exc
        self._local.raw = raw
        try:
            yield PostgresConnection(raw)
        except psycopg.Error as exc:
            self._rollback(raw)
            translated = _translate_error(exc)
            if translated is None:
                raise
            raise translated from exc
        except BaseException:
            self._rollback(raw)
            raise
        else:
            raw.execute("COMMIT")
        finally:
            self._local.raw = None
            self._pool.putconn(raw)

    @staticmethod
    def _rollback(raw: psycopg.Connection) -> None:
        try:
            raw.execute("ROLLBACK")
        except psycopg.Error:  # a broken connection: the pool discards it
            pass

    @contextmanager
    def read(self) -> Iterator[Connection]:
        raw = getattr(self._local, "raw", None)
        if raw is not None:  # nested inside a transaction of this thread
            yield PostgresConnection(raw)
            return
        with self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        raw = getattr(self._local, "raw", None)
        if raw is not None:  # nested: the outer write commits
            yield PostgresConnection(raw)
            return
        with self._write_lock, self._transaction(self._begin_write) as conn:
            yield conn

    @contextmanager
    def claim(self) -> Iterator[Connection]:
        raw = getattr(self._local, "raw", None)
        if raw is not None:  # nested inside a write: already exclusive
            yield PostgresConnection(raw)
            return
        with self._transaction(self._begin_claim) as conn:
            yield conn

    def close(self) -> None:
        self._pool.close()

    @property
    def schema_version(self) -> int:
        with self.read() as conn:
            return conn.scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") or 0

    def json_field(self, column: str, key: str) -> str:
        return f"({column}::jsonb ->> '{key}')"

    def _migrate(self) -> None:
        with self.write() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            applied = set(conn.column("SELECT version FROM schema_migrations"))
            raw = conn.raw
            for migration in load_migrations(self.dialect):
                if migration.version in applied:
                    continue
                raw.execute(migration.sql)  # no parameters: one round trip runs every statement
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, datetime.now(UTC).isoformat()),
                )

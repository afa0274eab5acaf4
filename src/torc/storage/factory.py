"""Choose a Store adapter from a database path or URL."""

from __future__ import annotations

from torc.core.errors import InvalidInputError
from torc.storage.base import Store


def is_postgres_url(database: str) -> bool:
    return database.startswith(("postgres://", "postgresql://"))


def open_store(database: str) -> Store:
    """`path/to/torc.db` or `sqlite:///path` -> SQLite; `postgresql://user:pass@host:port/db` -> PostgreSQL.

    A PostgreSQL URL takes libpq's query parameters, e.g. `?options=-csearch_path%3Dtorc` for a schema
    other than `public`, and `pool_size=N` (this adapter's own, default 16) for the connection pool.
    """
    if is_postgres_url(database):
        try:
            from torc.storage.postgres import PostgresStore
        except ImportError as exc:  # pragma: no cover - psycopg is a dependency
            raise InvalidInputError(f"PostgreSQL support needs psycopg 3 ({exc})") from None
        url, pool_size = _pop_pool_size(database)
        return PostgresStore(url, max_size=pool_size)
    from torc.storage.sqlite import SqliteStore

    path = database.removeprefix("sqlite://").removeprefix("sqlite:")
    if path.startswith("//"):
        path = path[1:]
    return SqliteStore(path)


def _pop_pool_size(url: str) -> tuple[str, int]:
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    sizes = [v for k, v in query if k == "pool_size"]
    if not sizes:
        return url, 16
    try:
        size = int(sizes[-1])
        if size < 1:
            raise ValueError
    except ValueError:
        raise InvalidInputError(f"pool_size must be a positive integer, got {sizes[-1]!r}") from None
    rest = urlencode([(k, v) for k, v in query if k != "pool_size"])
    return urlunsplit(parts._replace(query=rest)), size

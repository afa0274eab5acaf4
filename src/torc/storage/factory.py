"""Choose a Store adapter from a database path or URL."""

from __future__ import annotations

from torc.core.errors import InvalidInputError
from torc.storage.base import Store


def open_store(database: str) -> Store:
    """`path/to/torc.db` or `sqlite:///path` -> SQLite. PostgreSQL URLs come with its adapter."""
    if database.startswith(("postgres://", "postgresql://")):
        raise InvalidInputError("PostgreSQL is not supported yet; use a SQLite database path")
    from torc.storage.sqlite import SqliteStore

    path = database.removeprefix("sqlite://").removeprefix("sqlite:")
    if path.startswith("//"):
        path = path[1:]
    return SqliteStore(path)

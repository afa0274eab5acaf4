"""Helpers shared by the services: time stamps, existence checks, paged listing."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from torc.core.errors import InvalidInputError, NotFoundError
from torc.storage.base import Connection, Row
from torc.storage.tables import Table


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ms() -> int:
    return int(time.time() * 1000)


def require_workflow(conn: Connection, workflow_id: int) -> Row:
    row = conn.fetchone("SELECT * FROM workflow WHERE id = ?", (workflow_id,))
    if row is None:
        raise NotFoundError.for_id("workflow", workflow_id)
    return row


def require_row(conn: Connection, table: Table, id_: int) -> Row:
    row = conn.fetchone(f"SELECT * FROM {table.name} WHERE id = ?", (id_,))
    if row is None:
        raise NotFoundError.for_id(table.kind, id_)
    return row


def run_id_of(conn: Connection, workflow_id: int) -> int:
    return conn.scalar("SELECT run_id FROM workflow_status WHERE id = ?", (workflow_id,))


def order_clause(table: Table, sort_by: str | None, reverse: bool, alias: str = "") -> str:
    """ORDER BY from a whitelisted column; anything else is a 422, never SQL text."""
    column = sort_by or "id"
    if column not in table.sort_columns:
        allowed = ", ".join(sorted(table.sort_columns))
        raise InvalidInputError(f"cannot sort {table.kind} by {column!r}; sortable columns: {allowed}")
    prefix = f"{alias}." if alias else ""
    direction = "DESC" if reverse else "ASC"
    tiebreak = f", {prefix}id {direction}" if column != "id" else ""
    return f" ORDER BY {prefix}{column} {direction}{tiebreak}"


def page_bounds(offset: int, limit: int | None, max_limit: int) -> tuple[int, int]:
    if offset < 0:
        raise InvalidInputError(f"offset must be >= 0, got {offset}")
    if limit is None:
        limit = max_limit
    if limit < 0:
        raise InvalidInputError(f"limit must be >= 0, got {limit}")
    return offset, min(limit, max_limit)


def paged(
    conn: Connection,
    select_from: str,
    where: Sequence[str],
    params: Sequence[Any],
    order: str,
    offset: int,
    limit: int,
    max_limit: int,
    convert: Callable[[Row], dict[str, Any]],
    columns: str = "*",
) -> dict[str, Any]:
    """Run a filtered, ordered, paged listing and wrap it in torc's six-field envelope."""
    where_sql = (" WHERE " + " AND ".join(where)) if where else ""
    total = conn.scalar(f"SELECT COUNT(*) FROM {select_from}{where_sql}", params)
    rows = conn.fetchall(
        f"SELECT {columns} FROM {select_from}{where_sql}{order} LIMIT ? OFFSET ?", (*params, limit, offset)
    )
    items = [convert(r) for r in rows]
    return envelope(items, offset, max_limit, total)


def envelope(items: list[Any], offset: int, max_limit: int, total: int) -> dict[str, Any]:
    return {
        "items": items,
        "offset": offset,
        "max_limit": max_limit,
        "count": len(items),
        "total_count": total,
        "has_more": offset + len(items) < total,
    }

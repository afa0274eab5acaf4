"""Loading a job's relationship id lists (dependencies, files, user data) in bulk."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from torc.storage.base import Connection

# wire field -> (link table, column holding the other id)
LINKS: dict[str, tuple[str, str]] = {
    "depends_on_job_ids": ("job_depends_on", "depends_on_job_id"),
    "input_file_ids": ("job_input_file", "file_id"),
    "output_file_ids": ("job_output_file", "file_id"),
    "input_user_data_ids": ("job_input_user_data", "user_data_id"),
    "output_user_data_ids": ("job_output_user_data", "user_data_id"),
}

CHUNK = 500


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i : i + CHUNK]


def load_relationships(
    conn: Connection,
    workflow_id: int,
    job_ids: Iterable[int] | None = None,
    fields: Iterable[str] = LINKS,
) -> dict[int, dict[str, list[int]]]:
    """job id -> {field: sorted ids}. job_ids None loads the whole workflow in one pass per table."""
    out: dict[int, dict[str, list[int]]] = defaultdict(dict)
    for field in fields:
        table, other = LINKS[field]
        if job_ids is None:
            rows: Iterable[Any] = conn.iterate(
                f"SELECT job_id, {other} AS o FROM {table} WHERE workflow_id = ? ORDER BY job_id, {other}",
                (workflow_id,),
            )
            for row in rows:
                out[row["job_id"]].setdefault(field, []).append(row["o"])
        else:
            for chunk in _chunks(list(job_ids)):
                marks = ", ".join("?" for _ in chunk)
                for row in conn.iterate(
                    f"SELECT job_id, {other} AS o FROM {table} WHERE job_id IN ({marks}) ORDER BY job_id, {other}",
                    chunk,
                ):
                    out[row["job_id"]].setdefault(field, []).append(row["o"])
    return out


def in_clause(ids: list[int]) -> str:
    """A literal IN list of integers (ids are ints we produced, never request text)."""
    return "(" + ",".join(str(int(i)) for i in ids) + ")" if ids else "(NULL)"

"""Content hashes of a workflow's input files (an extension): the baseline `torc workflows
reinitialize --hash` compares files against. The client computes the hashes; the server keeps
them, one row per file (table file_content_hash), replaced as a whole set in one transaction.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from torc.core.errors import InvalidInputError
from torc.service.common import require_workflow
from torc.service.context import Context
from torc.service.relationships import in_clause

Values = dict[str, Any]
_CHUNK = 500


def _wire(row: Values) -> Values:
    return {k: v for k, v in row.items() if v is not None}


def list_file_hashes(ctx: Context, workflow_id: int) -> Values:
    with ctx.store.read() as conn:
        require_workflow(conn, workflow_id)
        rows = conn.fetchall(
            "SELECT file_id, sha256, st_mtime, size FROM file_content_hash WHERE workflow_id = ? ORDER BY file_id",
            (workflow_id,))
    return {"items": [_wire(r) for r in rows]}


def replace_file_hashes(ctx: Context, workflow_id: int, items: list[Values]) -> Values:
    """Replace the workflow's whole set with `items` ({file_id, sha256, st_mtime?, size?} each);
    every file must belong to the workflow and appear once. Returns the stored set."""
    ids = [item["file_id"] for item in items]
    repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
    if repeated:
        raise InvalidInputError(f"file ids appear more than once: {', '.join(map(str, repeated))}")
    with ctx.store.write() as conn:
        require_workflow(conn, workflow_id)
        unique = sorted(set(ids))
        known: set[int] = set()
        for start in range(0, len(unique), _CHUNK):
            known.update(conn.column(
                f"SELECT id FROM file WHERE workflow_id = ? AND id IN {in_clause(unique[start:start + _CHUNK])}",
                (workflow_id,)))
        foreign = [i for i in unique if i not in known]
        if foreign:
            shown = ", ".join(map(str, foreign[:10])) + (f" and {len(foreign) - 10} more" if len(foreign) > 10 else "")
            raise InvalidInputError(f"file ids that are not files of workflow {workflow_id}: {shown}")
        conn.execute("DELETE FROM file_content_hash WHERE workflow_id = ?", (workflow_id,))
        conn.executemany(
            "INSERT INTO file_content_hash (file_id, workflow_id, sha256, st_mtime, size) VALUES (?, ?, ?, ?, ?)",
            [(item["file_id"], workflow_id, item["sha256"].lower(), item.get("st_mtime"), item.get("size"))
             for item in items])
    return list_file_hashes(ctx, workflow_id)

"""Workflows: create (with its status row and default resource requirements), read, update,
delete, list, and the workflow-level queries (status, completion, relationships, ...)."""

from __future__ import annotations

from typing import Any

from torc.core.claim import SORT_METHODS
from torc.core.errors import InvalidInputError, NotFoundError
from torc.core.status import ACTIVE, FINISHED, JobStatus
from torc.core.units import parse_duration_seconds, parse_memory_bytes
from torc.service.authz import ACCESSIBLE_WORKFLOW_SQL
from torc.service.common import (
    envelope,
    now_iso,
    order_clause,
    page_bounds,
    paged,
    require_workflow,
)
from torc.service.context import Context
from torc.service.events import Event, record_event
from torc.service.unblock import release_dependents
from torc.storage.base import Connection
from torc.storage.tables import FAILURE_HANDLER, WORKFLOW, WORKFLOW_STATUS

Values = dict[str, Any]

DEFAULT_RR = {"name": "default", "num_cpus": 1, "num_gpus": 0, "num_nodes": 1, "memory": "1m", "runtime": "P0DT1M"}


def _check_sort_method(values: Values) -> None:
    method = values.get("jobs_sort_method")
    if method is not None and method not in SORT_METHODS:
        raise InvalidInputError(f"invalid jobs_sort_method {method!r}; expected one of {', '.join(SORT_METHODS)}")


def insert_workflow(conn: Connection, body: Values) -> int:
    """Insert a workflow, its status row and its default resource requirements."""
    values = WORKFLOW.to_row(body)
    values.pop("status_id", None)
    _check_sort_method(values)
    values["timestamp"] = body.get("timestamp") or now_iso()
    cols = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    workflow_id = conn.insert(f"INSERT INTO workflow ({cols}) VALUES ({marks})", tuple(values.values()))
    conn.execute("INSERT INTO workflow_status (id) VALUES (?)", (workflow_id,))
    conn.execute("UPDATE workflow SET status_id = ? WHERE id = ?", (workflow_id, workflow_id))
    conn.execute(
        "INSERT INTO resource_requirements (workflow_id, name, num_cpus, num_gpus, num_nodes, memory, runtime,"
        " memory_bytes, runtime_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (workflow_id, *DEFAULT_RR.values(), parse_memory_bytes(DEFAULT_RR["memory"]),
         parse_duration_seconds(DEFAULT_RR["runtime"])),
    )
    return workflow_id


def create_workflow(ctx: Context, body: Values) -> Values:
    with ctx.store.write() as conn:
        workflow_id = insert_workflow(conn, body)
        return _wire(conn, workflow_id)


def _wire(conn: Connection, workflow_id: int) -> Values:
    return WORKFLOW.to_wire(require_workflow(conn, workflow_id))


def get_workflow(ctx: Context, workflow_id: int) -> Values:
    with ctx.store.read() as conn:
        return _wire(conn, workflow_id)


def update_workflow(ctx: Context, workflow_id: int, body: Values) -> Values:
    with ctx.store.write() as conn:
        require_workflow(conn, workflow_id)
        values = WORKFLOW.to_row(body)
        for key in WORKFLOW.immutable:
            values.pop(key, None)
        _check_sort_method(values)
        if values:
            assignments = ", ".join(f"{c} = ?" for c in values)
            conn.execute(f"UPDATE workflow SET {assignments} WHERE id = ?", (*values.values(), workflow_id))
        return _wire(conn, workflow_id)


def delete_workflow(ctx: Context, workflow_id: int) -> Values:
    with ctx.store.write() as conn:
        row = _wire(conn, workflow_id)
        conn.execute("DELETE FROM workflow WHERE id = ?", (workflow_id,))
        return row


def list_workflows(
    ctx: Context,
    filters: Values,
    offset: int = 0,
    limit: int | None = None,
    sort_by: str | None = None,
    reverse_sort: bool = False,
) -> Values:
    max_limit = ctx.settings.max_page_size
    offset, limit = page_bounds(offset, limit, max_limit)
    where: list[str] = []
    params: list[Any] = []
    for key in WORKFLOW.filters:
        if filters.get(key) is not None:
            where.append(f"w.{key} = ?")
            params.append(filters[key])
    if filters.get("is_archived") is not None:
        where.append("s.is_archived = ?")
        params.append(int(bool(filters["is_archived"])))
    if filters.get("visible_to") is not None:  # access control: only the user's own and shared workflows
        where.append(ACCESSIBLE_WORKFLOW_SQL)
        params += [filters["visible_to"], filters["visible_to"]]
    with ctx.store.read() as conn:
        return paged(
            conn, "workflow w JOIN workflow_status s ON s.id = w.id", where, params,
            order_clause(WORKFLOW, sort_by, reverse_sort, alias="w"), offset, limit, max_limit,
            WORKFLOW.to_wire, columns="w.*",
        )


# ---- workflow status ----------------------------------------------------------------------


def get_status(ctx: Context, workflow_id: int) -> Values:
    with ctx.store.read() as conn:
        require_workflow(conn, workflow_id)
        return WORKFLOW_STATUS.to_wire(conn.fetchone("SELECT * FROM workflow_status WHERE id = ?", (workflow_id,)))


def update_status(ctx: Context, workflow_id: int, body: Values) -> Values:
    with ctx.store.write() as conn:
        require_workflow(conn, workflow_id)
        values = {k: v for k, v in WORKFLOW_STATUS.to_row(body).items() if v is not None}
        if "run_id" in values and values["run_id"] < 0:
            raise InvalidInputError(f"run_id must be >= 0, got {values['run_id']}")
        if values:
            assignments = ", ".join(f"{c} = ?" for c in values)
            conn.execute(f"UPDATE workflow_status SET {assignments} WHERE id = ?", (*values.values(), workflow_id))
        return WORKFLOW_STATUS.to_wire(conn.fetchone("SELECT * FROM workflow_status WHERE id = ?", (workflow_id,)))


def cancel_workflow(ctx: Context, workflow_id: int) -> Values:
    """Mark the workflow canceled and cancel every job a runner holds; runners see it and stop."""
    with ctx.store.write() as conn:
        require_workflow(conn, workflow_id)
        run_id = conn.scalar("SELECT run_id FROM workflow_status WHERE id = ?", (workflow_id,))
        conn.execute("UPDATE workflow_status SET is_canceled = 1 WHERE id = ?", (workflow_id,))
        active = ", ".join(str(int(s)) for s in ACTIVE)
        held = conn.column(f"SELECT id FROM job WHERE workflow_id = ? AND status IN ({active})", (workflow_id,))
        conn.execute(
            f"UPDATE job SET status = ?, active_compute_node_id = NULL WHERE workflow_id = ? AND status IN ({active})",
            (int(JobStatus.CANCELED), workflow_id),
        )
        count = len(held)
        # Keep the graph consistent: dependents of the canceled jobs are released (and mostly canceled).
        release_dependents(conn, held)
        record_event(conn, workflow_id, {"category": "workflow_canceled", "run_id": run_id, "canceled_jobs": count})
    ctx.bus.publish(Event(workflow_id, "workflow_canceled", "warning", {"canceled_jobs": count}))
    return {"workflow_id": workflow_id, "is_canceled": True, "canceled_jobs": count}


def is_complete(ctx: Context, workflow_id: int) -> Values:
    with ctx.store.read() as conn:
        require_workflow(conn, workflow_id)
        canceled = bool(conn.scalar("SELECT is_canceled FROM workflow_status WHERE id = ?", (workflow_id,)))
        if canceled:
            complete = True
        else:
            finished = ", ".join(str(int(s)) for s in FINISHED)
            complete = not conn.scalar(
                f"SELECT EXISTS (SELECT 1 FROM job WHERE workflow_id = ? AND status NOT IN ({finished}))",
                (workflow_id,),
            )
    return {"is_complete": complete, "is_canceled": canceled, "needs_to_run_completion_script": False}


def is_uninitialized(ctx: Context, workflow_id: int) -> Values:
    with ctx.store.read() as conn:
        require_workflow(conn, workflow_id)
        other = conn.scalar(
            "SELECT EXISTS (SELECT 1 FROM job WHERE workflow_id = ? AND status NOT IN (?, ?))",
            (workflow_id, int(JobStatus.UNINITIALIZED), int(JobStatus.DISABLED)),
        )
    return {"is_uninitialized": not other}


def job_counts(ctx: Context, workflow_id: int) -> Values:
    """How many jobs are in each status (every status listed, zeros included)."""
    with ctx.store.read() as conn:
        require_workflow(conn, workflow_id)
        rows = conn.fetchall("SELECT status, COUNT(*) AS n FROM job WHERE workflow_id = ? GROUP BY status",
                             (workflow_id,))
    counts = {s.wire: 0 for s in JobStatus}
    for row in rows:
        counts[JobStatus(row["status"]).wire] = row["n"]
    return {"workflow_id": workflow_id, "total": sum(counts.values()), "counts": counts}


def job_ids(ctx: Context, workflow_id: int) -> Values:
    with ctx.store.read() as conn:
        require_workflow(conn, workflow_id)
        ids = conn.column("SELECT id FROM job WHERE workflow_id = ? ORDER BY id", (workflow_id,))
    return {"job_ids": ids, "count": len(ids)}


def latest_event_timestamp(ctx: Context, workflow_id: int) -> Values:
    with ctx.store.read() as conn:
        require_workflow(conn, workflow_id)
        ts = conn.scalar("SELECT MAX(timestamp) FROM event WHERE workflow_id = ?", (workflow_id,))
    if ts is None:
        raise NotFoundError(f"no events found for workflow {workflow_id}")
    return {"timestamp": ts}


def missing_user_data(ctx: Context, workflow_id: int) -> Values:
    """User data some job reads that is null and that no job produces, plus null outputs of
    completed jobs."""
    with ctx.store.read() as conn:
        require_workflow(conn, workflow_id)
        ids = conn.column(
            "SELECT u.id FROM user_data u WHERE u.workflow_id = ? AND u.data IS NULL AND ("
            " (EXISTS (SELECT 1 FROM job_input_user_data i WHERE i.user_data_id = u.id)"
            "  AND NOT EXISTS (SELECT 1 FROM job_output_user_data o WHERE o.user_data_id = u.id))"
            " OR EXISTS (SELECT 1 FROM job_output_user_data o JOIN job j ON j.id = o.job_id"
            "            WHERE o.user_data_id = u.id AND j.status = ?)) ORDER BY u.id",
            (workflow_id, int(JobStatus.COMPLETED)),
        )
    return {"user_data": ids}


def required_existing_files(ctx: Context, workflow_id: int) -> Values:
    """Files that must exist before running: inputs no job produces, and outputs of completed jobs."""
    with ctx.store.read() as conn:
        require_workflow(conn, workflow_id)
        ids = conn.column(
            "SELECT f.id FROM file f WHERE f.workflow_id = ? AND ("
            " (EXISTS (SELECT 1 FROM job_input_file i WHERE i.file_id = f.id)"
            "  AND NOT EXISTS (SELECT 1 FROM job_output_file o WHERE o.file_id = f.id))"
            " OR EXISTS (SELECT 1 FROM job_output_file o JOIN job j ON j.id = o.job_id"
            "            WHERE o.file_id = f.id AND j.status = ?)) ORDER BY f.id",
            (workflow_id, int(JobStatus.COMPLETED)),
        )
    return {"files": ids}


# ---- relationship listings -----------------------------------------------------------------


def _paged_plain(ctx: Context, workflow_id: int, sql: str, count_sql: str, offset: int, limit: int | None) -> Values:
    max_limit = ctx.settings.max_page_size
    offset, limit = page_bounds(offset, limit, max_limit)
    with ctx.store.read() as conn:
        require_workflow(conn, workflow_id)
        total = conn.scalar(count_sql, (workflow_id,))
        rows = conn.fetchall(sql + " LIMIT ? OFFSET ?", (workflow_id, limit, offset))
    items = [{k: v for k, v in r.items() if v is not None} for r in rows]
    return envelope(items, offset, max_limit, total)


def job_dependencies(ctx: Context, workflow_id: int, offset: int = 0, limit: int | None = None) -> Values:
    return _paged_plain(
        ctx, workflow_id,
        "SELECT d.job_id, j.name AS job_name, d.depends_on_job_id, b.name AS depends_on_job_name, d.workflow_id"
        " FROM job_depends_on d JOIN job j ON j.id = d.job_id JOIN job b ON b.id = d.depends_on_job_id"
        " WHERE d.workflow_id = ? ORDER BY d.job_id, d.depends_on_job_id",
        "SELECT COUNT(*) FROM job_depends_on WHERE workflow_id = ?", offset, limit,
    )


def _data_relationships(kind: str, extra_cols: str) -> tuple[str, str]:
    """Producer/consumer pairs per file or user data; unmatched sides are null."""
    sql = (
        f"SELECT x.id AS {kind}_id, x.name AS {kind}_name{extra_cols},"
        " p.job_id AS producer_job_id, pj.name AS producer_job_name,"
        " c.job_id AS consumer_job_id, cj.name AS consumer_job_name, x.workflow_id"
        f" FROM {kind} x"
        f" LEFT JOIN job_output_{kind} p ON p.{kind}_id = x.id LEFT JOIN job pj ON pj.id = p.job_id"
        f" LEFT JOIN job_input_{kind} c ON c.{kind}_id = x.id LEFT JOIN job cj ON cj.id = c.job_id"
        " WHERE x.workflow_id = ? AND (p.job_id IS NOT NULL OR c.job_id IS NOT NULL)"
    )
    count = f"SELECT COUNT(*) FROM ({sql}) q"
    return sql + " ORDER BY x.id, p.job_id, c.job_id", count


def job_file_relationships(ctx: Context, workflow_id: int, offset: int = 0, limit: int | None = None) -> Values:
    sql, count = _data_relationships("file", ", x.path AS file_path")
    return _paged_plain(ctx, workflow_id, sql, count, offset, limit)


def job_user_data_relationships(ctx: Context, workflow_id: int, offset: int = 0, limit: int | None = None) -> Values:
    sql, count = _data_relationships("user_data", "")
    return _paged_plain(ctx, workflow_id, sql, count, offset, limit)


def list_failure_handlers(ctx: Context, workflow_id: int, offset: int = 0, limit: int | None = None) -> Values:
    max_limit = ctx.settings.max_page_size
    offset, limit = page_bounds(offset, limit, max_limit)
    with ctx.store.read() as conn:
        require_workflow(conn, workflow_id)
        return paged(conn, "failure_handler", ["workflow_id = ?"], [workflow_id], " ORDER BY id", offset, limit,
                     max_limit, FAILURE_HANDLER.to_wire)


# ---- remote workers ------------------------------------------------------------------------


def add_remote_workers(ctx: Context, workflow_id: int, workers: list[str]) -> list[Values]:
    cleaned = []
    for worker in workers:
        if not isinstance(worker, str) or not worker.strip():
            raise InvalidInputError(f"invalid remote worker {worker!r}: expected [user@]host[:port]")
        cleaned.append(worker.strip())
    with ctx.store.write() as conn:
        require_workflow(conn, workflow_id)
        conn.executemany(
            "INSERT INTO remote_worker (worker, workflow_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [(w, workflow_id) for w in cleaned],
        )
    return [{"worker": w, "workflow_id": workflow_id} for w in cleaned]


def list_remote_workers(ctx: Context, workflow_id: int) -> list[Values]:
    with ctx.store.read() as conn:
        require_workflow(conn, workflow_id)
        return conn.fetchall(
            "SELECT worker, workflow_id FROM remote_worker WHERE workflow_id = ? ORDER BY worker", (workflow_id,)
        )


def delete_remote_worker(ctx: Context, workflow_id: int, worker: str) -> Values:
    with ctx.store.write() as conn:
        require_workflow(conn, workflow_id)
        if not conn.execute("DELETE FROM remote_worker WHERE workflow_id = ? AND worker = ?", (workflow_id, worker)):
            raise NotFoundError(f"remote worker {worker!r} not found in workflow {workflow_id}")
    return {"worker": worker, "workflow_id": workflow_id}

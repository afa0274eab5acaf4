"""Jobs: bulk creation with relationship rows, read, update rules, delete, list."""

from __future__ import annotations

from typing import Any

from torc.core.errors import InvalidInputError, NotFoundError
from torc.core.status import JobStatus
from torc.service.common import order_clause, page_bounds, paged, require_workflow
from torc.service.context import Context
from torc.service.relationships import LINKS, in_clause, load_relationships
from torc.storage.base import Connection, Row
from torc.storage.tables import JOB

Values = dict[str, Any]

_INSERT_COLUMNS = (
    "workflow_id", "name", "command", "invocation_script", "status", "cancel_on_blocking_job_failure",
    "supports_termination", "resource_requirements_id", "scheduler_id", "failure_handler_id", "attempt_id",
)
# Fields of an uninitialized job a PUT may change.
_EDITABLE_WHEN_UNINITIALIZED = (
    "name", "command", "invocation_script", "cancel_on_blocking_job_failure", "supports_termination",
    "failure_handler_id",
)
_EDITABLE_ANY_TIME = ("resource_requirements_id", "scheduler_id")


def job_to_wire(row: Row, relationships: dict[str, list[int]] | None = None) -> Values:
    out = JOB.to_wire(row)
    if relationships:
        out.update(relationships)
    return out


def _ids_in_workflow(conn: Connection, table: str, workflow_id: int) -> set[int]:
    return set(conn.column(f"SELECT id FROM {table} WHERE workflow_id = ?", (workflow_id,)))


def _missing_ids(conn: Connection, table: str, workflow_id: int, ids: set[int]) -> set[int]:
    """The ids that are not rows of this workflow, checked in chunks (only what was referenced)."""
    found: set[int] = set()
    ordered = sorted(ids)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start:start + 500]
        found.update(conn.column(f"SELECT id FROM {table} WHERE workflow_id = ? AND id IN {in_clause(chunk)}",
                                 (workflow_id,)))
    return ids - found


def insert_jobs(conn: Connection, workflow_id: int, jobs: list[Values]) -> tuple[list[int], list[tuple]]:
    """Validate references, insert jobs and their relationship rows; return the new ids in order
    and the inserted column values."""
    default_rr = conn.scalar(
        "SELECT id FROM resource_requirements WHERE workflow_id = ? AND name = 'default'", (workflow_id,)
    )
    known = {
        "resource_requirements_id": _ids_in_workflow(conn, "resource_requirements", workflow_id),
        "failure_handler_id": _ids_in_workflow(conn, "failure_handler", workflow_id),
    }
    tables = {
        "depends_on_job_ids": "job", "input_file_ids": "file", "output_file_ids": "file",
        "input_user_data_ids": "user_data", "output_user_data_ids": "user_data",
    }
    # Referenced ids that do not exist in this workflow, per relationship (one query per chunk).
    unknown = {
        field: _missing_ids(conn, tables[field], workflow_id, {i for job in jobs for i in job.get(field) or ()})
        for field in LINKS
    }
    rows = []
    for index, job in enumerate(jobs):
        label = f"job {job.get('name')!r} (index {index})"
        if job.get("workflow_id") != workflow_id:
            raise InvalidInputError(
                f"{label}: every job in a batch must have workflow_id {workflow_id}, found {job.get('workflow_id')}"
            )
        if not job.get("name"):
            raise InvalidInputError(f"job at index {index}: name must not be empty")
        rr = job.get("resource_requirements_id")
        if rr is None:
            rr = default_rr
        elif rr not in known["resource_requirements_id"]:
            raise NotFoundError(f"{label}: resource requirements {rr} not found in workflow {workflow_id}")
        fh = job.get("failure_handler_id")
        if fh is not None and fh not in known["failure_handler_id"]:
            raise NotFoundError(f"{label}: failure handler {fh} not found in workflow {workflow_id}")
        for field in LINKS:
            missing = [i for i in job.get(field) or () if i in unknown[field]]
            if missing:
                kind = tables[field].replace("_", " ")
                raise NotFoundError(f"{label}: {field} refers to {kind} id(s) {missing} not in workflow {workflow_id}")
        status = JobStatus.parse(job["status"]) if job.get("status") is not None else JobStatus.UNINITIALIZED
        if status not in (JobStatus.UNINITIALIZED, JobStatus.DISABLED):
            raise InvalidInputError(
                f"{label}: a new job's status must be uninitialized or disabled, found {status.wire}; "
                "initialize_jobs computes the rest"
            )
        rows.append((
            workflow_id, job["name"], job["command"], job.get("invocation_script"), int(status),
            int(job.get("cancel_on_blocking_job_failure", True) is not False),
            int(bool(job.get("supports_termination", False))), rr, job.get("scheduler_id"), fh,
            job.get("attempt_id") or 1,
        ))
    ids = conn.insert_many("job", _INSERT_COLUMNS, rows)
    _insert_links(conn, workflow_id, ids, jobs)
    return ids, rows


def _insert_links(conn: Connection, workflow_id: int, ids: list[int], jobs: list[Values]) -> None:
    for field, (table, other) in LINKS.items():
        links = [
            (job_id, other_id, workflow_id)
            for job_id, job in zip(ids, jobs, strict=True)
            for other_id in dict.fromkeys(job.get(field) or [])
        ]
        if links:
            conn.executemany(f"INSERT INTO {table} (job_id, {other}, workflow_id) VALUES (?, ?, ?)", links)


def create_jobs(ctx: Context, jobs: list[Values]) -> Values:
    if not jobs:
        return {"jobs": []}
    workflow_id = jobs[0].get("workflow_id")
    with ctx.store.write() as conn:
        require_workflow(conn, workflow_id)
        ids, rows = insert_jobs(conn, workflow_id, jobs)
    # Built from what was inserted: reading 10,000 rows back would double the work.
    return {"jobs": [_wire_from_insert(i, row, job) for i, row, job in zip(ids, rows, jobs, strict=True)]}


def _wire_from_insert(job_id: int, row: tuple, job: Values) -> Values:
    out = JOB.to_wire({"id": job_id, **dict(zip(_INSERT_COLUMNS, row, strict=True))})
    for field in LINKS:
        if job.get(field):
            out[field] = sorted(set(job[field]))
    return out


def create_job(ctx: Context, job: Values) -> Values:
    with ctx.store.write() as conn:
        require_workflow(conn, job["workflow_id"])
        (job_id,), _ = insert_jobs(conn, job["workflow_id"], [job])
        return _load_wire(conn, job["workflow_id"], [job_id])[0]


def _load_wire(conn: Connection, workflow_id: int, ids: list[int], relationships: bool = True) -> list[Values]:
    rows: dict[int, Row] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        for row in conn.iterate(f"SELECT * FROM job WHERE id IN ({marks})", chunk):
            rows[row["id"]] = row
    rel = load_relationships(conn, workflow_id, ids) if relationships else {}
    return [job_to_wire(rows[i], rel.get(i)) for i in ids if i in rows]


def require_job(conn: Connection, job_id: int) -> Row:
    row = conn.fetchone("SELECT * FROM job WHERE id = ?", (job_id,))
    if row is None:
        raise NotFoundError.for_id("job", job_id)
    return row


def get_job(ctx: Context, job_id: int) -> Values:
    with ctx.store.read() as conn:
        row = require_job(conn, job_id)
        return job_to_wire(row, load_relationships(conn, row["workflow_id"], [job_id]).get(job_id))


def update_job(ctx: Context, job_id: int, body: Values) -> Values:
    """PUT a job: relationships are fixed; most fields change only while uninitialized;
    resource requirements and scheduler change any time; status may only become disabled."""
    with ctx.store.write() as conn:
        row = require_job(conn, job_id)
        workflow_id = row["workflow_id"]
        if body.get("workflow_id") not in (None, workflow_id):
            raise InvalidInputError(f"job {job_id}: workflow_id cannot be changed")
        current = load_relationships(conn, workflow_id, [job_id]).get(job_id, {})
        for field in LINKS:
            if field in body and body[field] is not None and sorted(set(body[field])) != current.get(field, []):
                raise InvalidInputError(f"job {job_id}: {field} cannot be changed after the job is created")
        changes: Values = {}
        status = JobStatus(row["status"])
        if body.get("status") is not None:
            new_status = JobStatus.parse(body["status"])
            if new_status != status:
                if new_status != JobStatus.DISABLED:
                    raise InvalidInputError(
                        f"job {job_id}: update_job can only set status to disabled (found {new_status.wire}); "
                        "use manage_status_change or complete_job"
                    )
                changes["status"] = int(new_status)
        for field in ("name", "command"):
            if field in body and body[field] is not None and not str(body[field]).strip():
                raise InvalidInputError(f"job {job_id}: {field} must not be empty")
        stored = JOB.to_row(body)
        for field in _EDITABLE_WHEN_UNINITIALIZED:
            if field in body and body[field] is not None and stored[field] != row[field]:
                if status != JobStatus.UNINITIALIZED:
                    raise InvalidInputError(
                        f"job {job_id}: {field} can only change while the job is uninitialized (it is {status.wire})"
                    )
                changes[field] = stored[field]
        for field in _EDITABLE_ANY_TIME:
            if field in body and stored.get(field) != row[field]:
                changes[field] = stored.get(field)
        rr = changes.get("resource_requirements_id")
        if "resource_requirements_id" in changes:
            if rr is None:
                raise InvalidInputError(f"job {job_id}: resource_requirements_id cannot be removed")
            if not conn.scalar(
                "SELECT 1 FROM resource_requirements WHERE id = ? AND workflow_id = ?", (rr, workflow_id)
            ):
                raise NotFoundError(f"job {job_id}: resource requirements {rr} not found in workflow {workflow_id}")
        fh = changes.get("failure_handler_id")
        if fh is not None and not conn.scalar(
            "SELECT 1 FROM failure_handler WHERE id = ? AND workflow_id = ?", (fh, workflow_id)
        ):
            raise NotFoundError(f"job {job_id}: failure handler {fh} not found in workflow {workflow_id}")
        if changes:
            assignments = ", ".join(f"{c} = ?" for c in changes)
            conn.execute(f"UPDATE job SET {assignments} WHERE id = ?", (*changes.values(), job_id))
        return job_to_wire(require_job(conn, job_id), current)


def delete_job(ctx: Context, job_id: int) -> Values:
    with ctx.store.write() as conn:
        row = require_job(conn, job_id)
        wire = job_to_wire(row, load_relationships(conn, row["workflow_id"], [job_id]).get(job_id))
        conn.execute("DELETE FROM job WHERE id = ?", (job_id,))
        return wire


def delete_jobs(ctx: Context, workflow_id: int) -> Values:
    with ctx.store.write() as conn:
        require_workflow(conn, workflow_id)
        return {"count": conn.execute("DELETE FROM job WHERE workflow_id = ?", (workflow_id,))}


def list_jobs(
    ctx: Context,
    workflow_id: int,
    status: str | None = None,
    needs_file_id: int | None = None,
    upstream_job_id: int | None = None,
    active_compute_node_id: int | None = None,
    offset: int = 0,
    limit: int | None = None,
    sort_by: str | None = None,
    reverse_sort: bool = False,
    include_relationships: bool = False,
) -> Values:
    max_limit = ctx.settings.max_page_size
    offset, limit = page_bounds(offset, limit, max_limit)
    where, params = ["workflow_id = ?"], [workflow_id]
    if status is not None:
        where.append("status = ?")
        params.append(int(JobStatus.parse(status)))
    if needs_file_id is not None:
        where.append("id IN (SELECT job_id FROM job_input_file WHERE file_id = ?)")
        params.append(needs_file_id)
    if upstream_job_id is not None:
        where.append("id IN (SELECT job_id FROM job_depends_on WHERE depends_on_job_id = ?)")
        params.append(upstream_job_id)
    if active_compute_node_id is not None:
        where.append("active_compute_node_id = ?")
        params.append(active_compute_node_id)
    with ctx.store.read() as conn:
        require_workflow(conn, workflow_id)
        page = paged(conn, "job", where, params, order_clause(JOB, sort_by, reverse_sort), offset, limit,
                     max_limit, JOB.to_wire)
        if include_relationships and page["items"]:
            rel = load_relationships(conn, workflow_id, [j["id"] for j in page["items"]])
            for item in page["items"]:
                item.update(rel.get(item["id"], {}))
        return page

"""Create, read, update, delete and list for the simple workflow-scoped resources
(files, user data, resource requirements, results, events, compute nodes, schedulers).
Per-resource rules live in the small hook tables at the bottom.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torc.core.errors import InvalidInputError, NotFoundError
from torc.core.status import JobStatus
from torc.core.units import parse_duration_seconds, parse_memory_bytes, parse_walltime_seconds
from torc.service.common import (
    now_iso,
    now_ms,
    order_clause,
    page_bounds,
    paged,
    require_row,
    require_workflow,
)
from torc.service.context import Context
from torc.service.events import Event
from torc.storage.base import Connection
from torc.storage.tables import (
    COMPUTE_NODE,
    EVENT,
    FILE,
    RESOURCE_REQUIREMENTS,
    RESULT,
    SCHEDULED_COMPUTE_NODE,
    SLURM_SCHEDULER,
    USER_DATA,
    Table,
)

Values = dict[str, Any]


def create(ctx: Context, table: Table, body: Values, **extra: Any) -> Values:
    with ctx.store.write() as conn:
        require_workflow(conn, body["workflow_id"])
        values = table.to_row(body)
        _before_write(conn, table, values, None)
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        new_id = conn.insert(f"INSERT INTO {table.name} ({cols}) VALUES ({marks})", tuple(values.values()))
        _after_create(conn, table, new_id, values, extra)
        created = table.to_wire(require_row(conn, table, new_id))
    _announce(ctx, table, None, created)
    return created


def heartbeat(ctx: Context, node_id: int) -> Values:
    """A runner says it is alive: stamp last_heartbeat (stale nodes are found by sync-status)."""
    with ctx.store.write() as conn:
        require_row(conn, COMPUTE_NODE, node_id)
        conn.execute("UPDATE compute_node SET last_heartbeat = ? WHERE id = ?", (now_iso(), node_id))
        return COMPUTE_NODE.to_wire(require_row(conn, COMPUTE_NODE, node_id))


def create_many(ctx: Context, table: Table, bodies: list[Values]) -> list[Values]:
    """Create many records of one workflow in one transaction (an extension for big workflows)."""
    if not bodies:
        return []
    workflow_id = bodies[0]["workflow_id"]
    rows = []
    with ctx.store.write() as conn:
        require_workflow(conn, workflow_id)
        columns = tuple(c for c in table.columns if any(c in b and b[c] is not None for b in bodies))
        for index, body in enumerate(bodies):
            if body.get("workflow_id") != workflow_id:
                raise InvalidInputError(f"{table.kind} at index {index}: every record in a batch must have "
                                        f"workflow_id {workflow_id}, found {body.get('workflow_id')}")
            values = table.to_row(body)
            _before_write(conn, table, values, None)
            rows.append(tuple(values.get(c) for c in columns))
        ids = conn.insert_many(table.name, columns, rows)
    return [table.to_wire({"id": i, **dict(zip(columns, row, strict=True))}) for i, row in zip(ids, rows, strict=True)]


def _announce(ctx: Context, table: Table, before: Values | None, after: Values) -> None:
    """Live events for runner and allocation changes (reference §3.10)."""
    if table is COMPUTE_NODE:
        if before is None:
            event = "compute_node_started"
        elif before.get("is_active") and not after.get("is_active"):
            event = "compute_node_stopped"
        else:
            return
        data = {k: after.get(k) for k in ("id", "hostname", "pid", "compute_node_type", "num_cpus", "num_gpus")}
        ctx.bus.publish(Event(after["workflow_id"], event, "info", data))
    elif table is SCHEDULED_COMPUTE_NODE and before is None:
        ctx.bus.publish(Event(after["workflow_id"], "scheduler_node_created", "info", after))


def get(ctx: Context, table: Table, id_: int) -> Values:
    with ctx.store.read() as conn:
        return table.to_wire(require_row(conn, table, id_))


def update(ctx: Context, table: Table, id_: int, body: Values) -> Values:
    """PUT semantics: the fields sent replace the stored ones; echoing the model back is a no-op."""
    with ctx.store.write() as conn:
        existing = require_row(conn, table, id_)
        values = table.to_row(body)
        for key in table.immutable:
            if key in values and values[key] != existing.get(key):
                raise InvalidInputError(f"{table.kind} {id_}: {key} cannot be changed")
            values.pop(key, None)
        _before_write(conn, table, values, existing)
        if values:
            assignments = ", ".join(f"{c} = ?" for c in values)
            conn.execute(f"UPDATE {table.name} SET {assignments} WHERE id = ?", (*values.values(), id_))
        updated = table.to_wire(require_row(conn, table, id_))
    _announce(ctx, table, table.to_wire(existing), updated)
    return updated


def delete(ctx: Context, table: Table, id_: int) -> Values:
    with ctx.store.write() as conn:
        row = require_row(conn, table, id_)
        _before_delete(conn, table, "id = ?", (id_,))
        conn.execute(f"DELETE FROM {table.name} WHERE id = ?", (id_,))
        return table.to_wire(row)


def delete_all(ctx: Context, table: Table, workflow_id: int) -> Values:
    with ctx.store.write() as conn:
        require_workflow(conn, workflow_id)
        spare = _before_delete(conn, table, "workflow_id = ?", (workflow_id,))
        count = conn.execute(f"DELETE FROM {table.name} WHERE workflow_id = ?{spare}", (workflow_id,))
        return {"count": count}


def list_(
    ctx: Context,
    table: Table,
    workflow_id: int,
    filters: Values,
    offset: int = 0,
    limit: int | None = None,
    sort_by: str | None = None,
    reverse_sort: bool = False,
) -> Values:
    max_limit = ctx.settings.max_page_size
    offset, limit = page_bounds(offset, limit, max_limit)
    where, params = ["workflow_id = ?"], [workflow_id]
    special = _LIST_FILTERS.get(table.name, {})
    for key, value in filters.items():
        if value is None:
            continue
        if key in special:
            clause, extra = special[key](ctx, value, workflow_id)
            if clause:
                where.append(clause)
                params.extend(extra)
        elif key in table.filters:
            where.append(f"{key} = ?")
            params.append(table.to_row({key: value}).get(key, value))
    with ctx.store.read() as conn:
        require_workflow(conn, workflow_id)
        if table is RESULT and not filters.get("all_runs"):
            where.append("id IN (SELECT result_id FROM workflow_result WHERE workflow_id = ?)")
            params.append(workflow_id)
        return paged(
            conn, table.name, where, params, order_clause(table, sort_by, reverse_sort),
            offset, limit, max_limit, table.to_wire,
        )


# ---- per-resource rules ------------------------------------------------------------------


def _check_resource_requirements(conn: Connection, values: Values, existing: Values | None) -> None:
    name = values.get("name", existing and existing["name"])
    was_default = existing is not None and existing["name"] == "default"
    if name == "default" and not was_default:
        raise InvalidInputError("the resource requirements name 'default' is reserved for the workflow default")
    if was_default and name != "default":
        raise InvalidInputError("the workflow's default resource requirements cannot be renamed")
    for key in ("num_cpus", "num_gpus", "num_nodes"):
        if key in values and values[key] is not None and values[key] < (1 if key == "num_nodes" else 0):
            raise InvalidInputError(f"resource requirements {name!r}: {key} must be >= "
                                    f"{1 if key == 'num_nodes' else 0}, got {values[key]}")
    for field, derived, parse, default in (("memory", "memory_bytes", parse_memory_bytes, "1m"),
                                           ("runtime", "runtime_s", parse_duration_seconds, "P0DT1M")):
        if values.get(field) is None and existing is not None:
            continue
        values.setdefault(field, default)
        try:
            values[derived] = parse(values[field])
        except InvalidInputError as exc:
            raise InvalidInputError(f"resource requirements {name!r}: {field}: {exc.message}") from None


def _check_result(conn: Connection, values: Values, existing: Values | None) -> None:
    job_id = values.get("job_id", existing and existing["job_id"])
    workflow_id = values.get("workflow_id", existing and existing["workflow_id"])
    job = conn.fetchone("SELECT workflow_id FROM job WHERE id = ?", (job_id,))
    if job is None:
        raise NotFoundError.for_id("job", job_id)
    if job["workflow_id"] != workflow_id:
        raise InvalidInputError(f"job {job_id} does not belong to workflow {workflow_id}")
    values.setdefault("attempt_id", existing["attempt_id"] if existing else 1)


def _check_event(conn: Connection, values: Values, existing: Values | None) -> None:
    if existing is None and values.get("timestamp") is None:
        values["timestamp"] = now_ms()


def _check_slurm_scheduler(conn: Connection, values: Values, existing: Values | None) -> None:
    if values.get("walltime") is not None:
        try:
            parse_walltime_seconds(values["walltime"])
        except InvalidInputError as exc:
            raise InvalidInputError(f"slurm scheduler walltime: {exc.message}") from None


_BEFORE_WRITE: dict[str, Callable[[Connection, Values, Values | None], None]] = {
    RESOURCE_REQUIREMENTS.name: _check_resource_requirements,
    RESULT.name: _check_result,
    EVENT.name: _check_event,
    SLURM_SCHEDULER.name: _check_slurm_scheduler,
}


def _before_write(conn: Connection, table: Table, values: Values, existing: Values | None) -> None:
    hook = _BEFORE_WRITE.get(table.name)
    if hook:
        hook(conn, values, existing)


def _before_delete(conn: Connection, table: Table, where: str, params: tuple) -> str:
    """Refuse deletes that would break jobs; return an extra WHERE condition to apply."""
    if table is RESOURCE_REQUIREMENTS:
        if where == "id = ?" and conn.scalar(f"SELECT name FROM {table.name} WHERE id = ?", params) == "default":
            raise InvalidInputError("the workflow's default resource requirements cannot be deleted")
        used = conn.scalar(
            "SELECT COUNT(*) FROM job WHERE resource_requirements_id IN"
            f" (SELECT id FROM {table.name} WHERE {where} AND name != 'default')",
            params,
        )
        if used:
            raise InvalidInputError(
                f"cannot delete resource requirements still used by {used} job(s); "
                "point those jobs at other resource requirements first"
            )
        return " AND name != 'default'"
    return ""


def _after_create(conn: Connection, table: Table, new_id: int, values: Values, extra: Values) -> None:
    if table is USER_DATA:
        for key, link in (("consumer_job_id", "job_input_user_data"), ("producer_job_id", "job_output_user_data")):
            job_id = extra.get(key)
            if job_id is None:
                continue
            job = conn.fetchone("SELECT workflow_id FROM job WHERE id = ?", (job_id,))
            if job is None or job["workflow_id"] != values["workflow_id"]:
                raise NotFoundError(f"{key}: job {job_id} not found in workflow {values['workflow_id']}")
            conn.execute(
                f"INSERT INTO {link} (job_id, user_data_id, workflow_id) VALUES (?, ?, ?)",
                (job_id, new_id, values["workflow_id"]),
            )


def _json_field(ctx: Context, column: str, key: str) -> str:
    return ctx.store.json_field(column, key)


Filter = Callable[[Context, Any, int], tuple[str, list[Any]]]

_LIST_FILTERS: dict[str, dict[str, Filter]] = {
    FILE.name: {
        "produced_by_job_id": lambda ctx, v, w: ("id IN (SELECT file_id FROM job_output_file WHERE job_id = ?)", [v]),
        "is_output": lambda ctx, v, w: (
            ("" if v else "NOT ") + "EXISTS (SELECT 1 FROM job_output_file o WHERE o.file_id = file.id)", []),
    },
    USER_DATA.name: {
        "consumer_job_id": lambda ctx, v, w: (
            "id IN (SELECT user_data_id FROM job_input_user_data WHERE job_id = ?)", [v]),
        "producer_job_id": lambda ctx, v, w: (
            "id IN (SELECT user_data_id FROM job_output_user_data WHERE job_id = ?)", [v]),
    },
    RESOURCE_REQUIREMENTS.name: {
        "job_id": lambda ctx, v, w: ("id = (SELECT resource_requirements_id FROM job WHERE id = ?)", [v]),
        "runtime": lambda ctx, v, w: (
            ("runtime_s = ?", [float(v)]) if str(v).isdigit() else ("runtime = ?", [v])),
    },
    RESULT.name: {
        "status": lambda ctx, v, w: ("status = ?", [int(JobStatus.parse(v))]),
        "all_runs": lambda ctx, v, w: ("", []),
    },
    EVENT.name: {
        "after_timestamp": lambda ctx, v, w: ("timestamp > ?", [v]),
        "category": lambda ctx, v, w: (f"{_json_field(ctx, 'data', 'category')} = ?", [v]),
    },
    COMPUTE_NODE.name: {
        "scheduled_compute_node_id": lambda ctx, v, w: (
            # compared as text: a JSON number reads back as text on PostgreSQL (`->>`), a number on SQLite
            f"CAST({_json_field(ctx, 'scheduler', 'scheduled_compute_node_id')} AS TEXT) = CAST(? AS TEXT)", [v]),
    },
}

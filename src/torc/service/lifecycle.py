"""The job lifecycle on the server: initialize, claim, start, complete, retry, status changes,
resets, cancellation cascade and change detection. Each use case is one transaction; events
are published after it commits.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict, deque
from typing import Any

import orjson

from torc.core.claim import GIB, SORT_METHODS, Candidate, Offer, pack
from torc.core.errors import InvalidInputError, NotFoundError
from torc.core.status import (
    ACTIVE,
    DONE,
    JobStatus,
    check_completion,
    check_status_change,
)
from torc.core.units import format_duration, parse_duration_seconds
from torc.service import actions
from torc.service.common import now_iso, require_workflow, run_id_of
from torc.service.context import Context
from torc.service.events import Event, record_event
from torc.service.jobs import _load_wire, job_to_wire, require_job
from torc.service.relationships import in_clause, load_relationships
from torc.service.unblock import Released, release_dependents, release_waiting
from torc.storage import queries as q
from torc.storage.base import Connection, Row
from torc.storage.tables import RESULT, WORKFLOW_STATUS

Values = dict[str, Any]
S = JobStatus
_CHUNK = 500


def _severity(status: JobStatus) -> str:
    if status in (S.FAILED, S.PENDING_FAILED):
        return "error"
    if status in (S.CANCELED, S.TERMINATED):
        return "warning"
    return "info"


def _set_status(conn: Connection, ids: list[int], status: JobStatus, extra: str = "") -> None:
    for start in range(0, len(ids), _CHUNK):
        conn.execute(f"UPDATE job SET status = {int(status)}{extra} WHERE id IN {in_clause(ids[start:start + _CHUNK])}")


def _check_run_id(conn: Connection, workflow_id: int, job_id: int, run_id: int) -> None:
    current = run_id_of(conn, workflow_id)
    if run_id != current:
        raise InvalidInputError(
            f"job {job_id}: run_id {run_id} does not match the workflow's current run_id {current}; "
            "the workflow was restarted since this job was claimed"
        )


def _check_cycles(conn: Connection, workflow_id: int) -> None:
    """Kahn's algorithm over all edges; report one cycle by job names."""
    blockers: dict[int, list[int]] = defaultdict(list)
    indegree: dict[int, int] = defaultdict(int)
    ids = conn.column("SELECT id FROM job WHERE workflow_id = ?", (workflow_id,))
    dependents: dict[int, list[int]] = defaultdict(list)
    for row in conn.iterate(q.WORKFLOW_EDGES, (workflow_id,)):
        dependents[row["depends_on_job_id"]].append(row["job_id"])
        blockers[row["job_id"]].append(row["depends_on_job_id"])
        indegree[row["job_id"]] += 1
    queue = deque(i for i in ids if indegree[i] == 0)
    seen = 0
    while queue:
        node = queue.popleft()
        seen += 1
        for dep in dependents[node]:
            indegree[dep] -= 1
            if indegree[dep] == 0:
                queue.append(dep)
    if seen == len(ids):
        return
    # Walk blockers from any job left in the cycle remainder until a node repeats.
    node = next(i for i in ids if indegree[i] > 0)
    path: list[int] = []
    position: dict[int, int] = {}
    while node not in position:
        position[node] = len(path)
        path.append(node)
        node = next(b for b in blockers[node] if indegree[b] > 0)
    cycle = path[position[node]:] + [node]
    names = dict((r["id"], r["name"]) for r in conn.iterate(
        f"SELECT id, name FROM job WHERE id IN {in_clause(cycle)}"))
    raise InvalidInputError("dependency cycle: " + " -> ".join(f"{names[i]} ({i})" for i in reversed(cycle)))


_HASHED_LINKS = (  # relationship field -> name of its part in a stored input hash
    ("depends_on_job_ids", "depends_on"),
    ("input_file_ids", "input_files"),
    ("output_file_ids", "output_files"),
    ("input_user_data_ids", "input_user_data"),
    ("output_user_data_ids", "output_user_data"),
)


def _short_hash(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def compute_input_hashes(conn: Connection, workflow_id: int, job_ids: list[int] | None = None) -> dict[int, str]:
    """SHA-256 over a job's command and relationships and the contents of its input user data.

    The stored value is that hash (torc's, over the same canonical JSON), then `;part=short-hash`
    for each component, so a change can be explained: `command`, `invocation_script`, each
    relationship list, and `user_data` as `id:hash,...` per input user data item."""
    rel = load_relationships(conn, workflow_id, job_ids)
    data = {r["id"]: r["data"] for r in conn.iterate(
        "SELECT id, data FROM user_data WHERE workflow_id = ?", (workflow_id,))}
    sql = "SELECT id, command, invocation_script FROM job WHERE workflow_id = ?"
    rows = conn.iterate(sql, (workflow_id,))
    wanted = set(job_ids) if job_ids is not None else None
    out = {}
    for row in rows:
        if wanted is not None and row["id"] not in wanted:
            continue
        r = rel.get(row["id"], {})
        contents = [
            {"id": u, "data": json.loads(data[u]) if data.get(u) else None} for u in r.get("input_user_data_ids", [])
        ]
        doc = {
            "command": row["command"],
            "invocation_script": row["invocation_script"],
            **{field: r.get(field, []) for field, _ in _HASHED_LINKS},
            "input_user_data_contents": contents,
        }
        parts = [hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest(),
                 f"command={_short_hash(row['command'])}",
                 f"invocation_script={_short_hash(row['invocation_script'])}"]
        parts += [f"{part}={_short_hash(r.get(field, []))}" for field, part in _HASHED_LINKS]
        parts.append("user_data=" + ",".join(f"{c['id']}:{_short_hash(c['data'])}" for c in contents))
        out[row["id"]] = ";".join(parts)
    return out


_CHANGE_LABELS = {
    "command": "command changed",
    "invocation_script": "invocation script changed",
    "depends_on": "dependencies changed",
    "input_files": "input files changed",
    "output_files": "output files changed",
    "input_user_data": "input user data changed",
    "output_user_data": "output user data changed",
}


def _hash_parts(stored: str) -> dict[str, str]:
    total, *rest = stored.split(";")
    return {"": total, **dict(p.split("=", 1) for p in rest if "=" in p)}


def describe_input_change(before: str, after: str, user_data_names: dict[int, str]) -> list[str]:
    """What differs between two stored input hashes, in words."""
    old, new = _hash_parts(before), _hash_parts(after)
    if old[""] == new[""]:
        return []
    if len(old) == 1:  # stored before the hash carried its parts
        return ["command, dependencies or input data changed"]
    reasons = [label for part, label in _CHANGE_LABELS.items() if old.get(part) != new.get(part)]
    if "input user data changed" not in reasons:
        def items(parts: dict[str, str]) -> dict[int, str]:
            pairs = (p.split(":", 1) for p in parts.get("user_data", "").split(",") if ":" in p)
            return {int(i): h for i, h in pairs}
        was, now = items(old), items(new)
        reasons += [f"user data {user_data_names.get(i, i)} changed" for i in sorted(now) if was.get(i) != now[i]]
    return reasons or ["command, dependencies or input data changed"]


# ---- initialize ---------------------------------------------------------------------------


def initialize_jobs(ctx: Context, workflow_id: int, only_uninitialized: bool = False) -> Values:
    """Derive file/user-data edges, then set every job to be (re)considered to blocked, ready
    or canceled from the state of its blockers."""
    with ctx.store.write() as conn:
        require_workflow(conn, workflow_id)
        for kind in ("file", "user_data"):
            conn.execute(q.DERIVE_EDGES.format(kind=kind), (workflow_id,))
        _check_cycles(conn, workflow_id)
        conn.execute(q.SPREAD_UNINITIALIZED if only_uninitialized else q.UNSETTLE_WAITING, (workflow_id,))
        candidates = conn.column(q.UNINITIALIZED_IDS, (workflow_id,))
        conn.execute(q.BLOCK_WAITING, (workflow_id,))
        doomed = conn.column(q.DOOMED_BY_FAILED_BLOCKER, (workflow_id,))
        _set_status(conn, doomed, S.CANCELED)
        released = release_dependents(conn, doomed) if doomed else Released()
        conn.execute(q.READY_THE_REST, (workflow_id,))
        conn.execute(q.DROP_STALE_CURRENT_RESULTS, (workflow_id, workflow_id))
        hashes = compute_input_hashes(conn, workflow_id)
        conn.executemany("UPDATE job SET input_hash = ? WHERE id = ?", [(h, i) for i, h in hashes.items()])
        actions.reset_for_initialize(conn, workflow_id)
        ready = conn.column(q.READY_IDS, (workflow_id,))
    event_type = "workflow_reinitialized" if only_uninitialized else "workflow_started"
    ctx.bus.publish(Event(workflow_id, event_type, "info", {
        "considered_jobs": len(candidates), "ready_jobs": len(ready), "canceled_jobs": len(doomed) + len(released.canceled),
    }))
    return {"message": "Initialized job status"}


# ---- claiming -----------------------------------------------------------------------------


def _canceled(conn: Connection, workflow_id: int) -> bool:
    return bool(conn.scalar("SELECT is_canceled FROM workflow_status WHERE id = ?", (workflow_id,)))


_RR_ORDER = {
    "gpus_runtime_memory": " ORDER BY num_gpus DESC, runtime_s DESC, memory_bytes DESC, id",
    "gpus_memory_runtime": " ORDER BY num_gpus DESC, memory_bytes DESC, runtime_s DESC, id",
    "none": " ORDER BY id",
}


def _candidates(conn: Connection, workflow_id: int, offer: Offer, sort_method: str, scheduler_filter: str,
                params: tuple, limit: int):
    """Yield ready jobs that fit alone, resource group by resource group in sort order.

    Grouping by resource requirements keeps each claim cheap on huge workflows: the ordering
    is over the few distinct requirement rows, not over every ready job.
    """
    time_cond, time_params = ("", ())
    if offer.time_limit_s is not None:
        time_cond, time_params = " AND runtime_s <= ?", (offer.time_limit_s,)
    groups = conn.fetchall(
        q.FITTING_REQUIREMENTS.format(time_condition=time_cond, order=_RR_ORDER[sort_method]),
        (workflow_id, offer.num_cpus, offer.memory_bytes, offer.num_gpus, offer.num_nodes, *time_params),
    )
    if sort_method == "none":
        # Plain job order, as the jobs were created.
        by_rr = {rr["id"]: rr for rr in groups}
        for row in conn.iterate(q.READY_IN_ORDER.format(scheduler=scheduler_filter, lock=conn.lock_claimed_rows),
                                (workflow_id, *params)):
            rr = by_rr.get(row["rr"])
            if rr is not None:
                yield Candidate(row["id"], rr["num_cpus"], rr["memory_bytes"], rr["num_gpus"], rr["num_nodes"],
                                rr["runtime_s"])
        return
    for rr in groups:
        room = max(limit, 1) * 4
        rows = conn.column(q.READY_IN_GROUP.format(scheduler=scheduler_filter, lock=conn.lock_claimed_rows),
                           (workflow_id, rr["id"], *params, room))
        for job_id in rows:
            yield Candidate(job_id, rr["num_cpus"], rr["memory_bytes"], rr["num_gpus"], rr["num_nodes"],
                            rr["runtime_s"])


def _mark_claimed(conn: Connection, workflow_id: int, ids: list[int], compute_node_id: int | None) -> list[Values]:
    # Recording the claiming runner lets orphan detection give back the pending jobs of a runner
    # that died (a runner claims ahead of its free resources when jobs are short).
    extra = f", active_compute_node_id = {int(compute_node_id)}" if compute_node_id is not None else ""
    _set_status(conn, ids, S.PENDING, extra)
    return _load_wire(conn, workflow_id, ids)


def claim_jobs_based_on_resources(
    ctx: Context,
    workflow_id: int,
    limit: int,
    resources: Values,
    sort_method: str | None = None,
    strict_scheduler_match: bool = False,
    prefetch: bool = False,
) -> Values:
    """With prefetch (an extension) every claimed job fits the offered resources on its own and
    only `limit` bounds the batch: a runner of short jobs claims work ahead of its free resources."""
    if limit < 0:
        raise InvalidInputError(f"limit must be >= 0, got {limit}")
    time_limit = resources.get("time_limit")
    try:
        time_limit_s = parse_duration_seconds(time_limit) if time_limit else None
    except InvalidInputError as exc:
        raise InvalidInputError(f"time_limit: {exc.message}") from None
    offer = Offer(
        num_cpus=resources["num_cpus"],
        memory_bytes=int(resources["memory_gb"] * GIB),
        num_gpus=resources["num_gpus"],
        num_nodes=resources["num_nodes"],
        time_limit_s=time_limit_s,
    )
    budget = None
    if prefetch:
        budget = Offer(num_cpus=offer.num_cpus * limit, memory_bytes=offer.memory_bytes * limit,
                       num_gpus=offer.num_gpus * limit, num_nodes=offer.num_nodes * limit, time_limit_s=time_limit_s)
    with ctx.store.claim() as conn:
        workflow = require_workflow(conn, workflow_id)
        if _canceled(conn, workflow_id):
            return {"jobs": [], "reason": "Workflow is canceled"}
        method = sort_method or workflow["jobs_sort_method"] or "gpus_runtime_memory"
        if method not in SORT_METHODS:
            raise InvalidInputError(f"invalid sort_method {method!r}; expected one of {', '.join(SORT_METHODS)}")
        scheduler_id = resources.get("scheduler_config_id")
        chosen: list[int] = []
        if scheduler_id is not None:
            chosen = pack(_candidates(conn, workflow_id, offer, method,
                                      " AND (scheduler_id IS NULL OR scheduler_id = ?)", (scheduler_id,), limit),
                          offer, limit, budget)
        if not chosen and (scheduler_id is None or not strict_scheduler_match):
            chosen = pack(_candidates(conn, workflow_id, offer, method, "", (), limit), offer, limit, budget)
        jobs = _mark_claimed(conn, workflow_id, chosen, resources.get("id"))
    return {"jobs": jobs}


def claim_next_jobs(ctx: Context, workflow_id: int, limit: int = 10, compute_node_id: int | None = None) -> Values:
    if limit < 0:
        raise InvalidInputError(f"limit must be >= 0, got {limit}")
    with ctx.store.claim() as conn:
        require_workflow(conn, workflow_id)
        if _canceled(conn, workflow_id) or limit == 0:
            return {"jobs": []}
        ids = conn.column(q.NEXT_READY.format(lock=conn.lock_claimed_rows), (workflow_id, limit))
        return {"jobs": _mark_claimed(conn, workflow_id, ids, compute_node_id)}


def release_jobs(ctx: Context, workflow_id: int, job_ids: list[int]) -> Values:
    """Extension: give claimed jobs a runner did not start back (pending -> ready). Jobs that are
    no longer pending (started, canceled, reset meanwhile) are left alone."""
    with ctx.store.write() as conn:
        require_workflow(conn, workflow_id)
        released: list[int] = []
        for start in range(0, len(job_ids), _CHUNK):
            chunk = job_ids[start:start + _CHUNK]
            released += conn.column(
                f"SELECT id FROM job WHERE workflow_id = ? AND status = {int(S.PENDING)} AND id IN {in_clause(chunk)}",
                (workflow_id,))
        _set_status(conn, released, S.READY, ", active_compute_node_id = NULL")
    return {"released_job_ids": released}


def ready_job_requirements(ctx: Context, workflow_id: int, scheduler_config_id: int | None = None) -> Values:
    """Totals over ready jobs: what an allocation would need to run all of them at once."""
    sched = ""
    params: tuple = (workflow_id,)
    if scheduler_config_id is not None:
        sched, params = " AND (j.scheduler_id IS NULL OR j.scheduler_id = ?)", (workflow_id, scheduler_config_id)
    with ctx.store.read() as conn:
        require_workflow(conn, workflow_id)
        row = conn.fetchone(
            "SELECT COUNT(*) AS n, COALESCE(SUM(r.num_cpus), 0) AS cpus, COALESCE(SUM(r.num_gpus), 0) AS gpus,"
            " COALESCE(SUM(r.memory_bytes), 0) AS mem, COALESCE(MAX(r.num_nodes), 0) AS nodes,"
            " COALESCE(MAX(r.runtime_s), 0) AS runtime FROM job j"
            " JOIN resource_requirements r ON r.id = j.resource_requirements_id"
            f" WHERE j.workflow_id = ? AND j.status = {int(S.READY)}{sched}",
            params,
        )
    return {
        "num_jobs": row["n"], "num_cpus": row["cpus"], "num_gpus": row["gpus"],
        "memory_gb": row["mem"] / GIB, "max_num_nodes": row["nodes"], "max_runtime": format_duration(row["runtime"]),
    }


# ---- per-job transitions ------------------------------------------------------------------


def _start_in_tx(conn: Connection, job_id: int, run_id: int, compute_node_id: int) -> tuple[Values, Event]:
    job = require_job(conn, job_id)
    _check_run_id(conn, job["workflow_id"], job_id, run_id)
    _check_startable(job)
    conn.execute("UPDATE job SET status = ?, active_compute_node_id = ? WHERE id = ?",
                 (int(S.RUNNING), compute_node_id, job_id))
    return _started(job, compute_node_id)


def _check_startable(job: Row) -> None:
    if job["status"] != S.PENDING:
        raise InvalidInputError(
            f"job {job['id']}: start_job needs a pending (claimed) job, but its status is {S(job['status']).wire}"
        )


def _started(job: Row, compute_node_id: int) -> tuple[Values, Event]:
    event = Event(job["workflow_id"], "job_started", "info",
                  {"job_id": job["id"], "job_name": job["name"], "compute_node_id": compute_node_id})
    return job_to_wire({**job, "status": int(S.RUNNING)}), event


def _batch_rows(conn: Connection, workflow_id: int, job_ids: list[int], run_id: int) -> dict[int, Row]:
    """The job rows of a batch request, read at once: every job must be in the workflow, listed
    once, and the run must be the workflow's current one."""
    rows: dict[int, Row] = {}
    for start in range(0, len(job_ids), _CHUNK):
        for row in conn.iterate(f"SELECT * FROM job WHERE id IN {in_clause(job_ids[start:start + _CHUNK])}"):
            rows[row["id"]] = row
    seen: set[int] = set()
    for job_id in job_ids:
        row = rows.get(job_id)
        if row is None or row["workflow_id"] != workflow_id:
            raise NotFoundError(f"job {job_id} not found in workflow {workflow_id}")
        if job_id in seen:
            raise InvalidInputError(f"job {job_id} is listed more than once")
        seen.add(job_id)
    if job_ids:
        _check_run_id(conn, workflow_id, job_ids[0], run_id)
    return rows


def start_job(ctx: Context, job_id: int, run_id: int, compute_node_id: int) -> Values:
    with ctx.store.write() as conn:
        wire, event = _start_in_tx(conn, job_id, run_id, compute_node_id)
    ctx.bus.publish(event)
    return wire


def start_jobs(ctx: Context, workflow_id: int, run_id: int, compute_node_id: int, job_ids: list[int]) -> Values:
    """Batch extension: start many claimed jobs of one runner in one transaction (all or nothing)."""
    with ctx.store.write() as conn:
        require_workflow(conn, workflow_id)
        rows = _batch_rows(conn, workflow_id, job_ids, run_id)
        for job_id in job_ids:
            _check_startable(rows[job_id])
        _set_status(conn, job_ids, S.RUNNING, f", active_compute_node_id = {int(compute_node_id)}")
        started = [_started(rows[job_id], compute_node_id) for job_id in job_ids]
    ctx.bus.publish(*(event for _, event in started))
    return {"jobs": [wire for wire, _ in started]}


def _insert_result(conn: Connection, job: Values, status: JobStatus, run_id: int, result: Values) -> int:
    for key, expected in (("job_id", job["id"]), ("workflow_id", job["workflow_id"])):
        if result.get(key) is not None and result[key] != expected:
            raise InvalidInputError(f"result {key} {result[key]} does not match the job's {key} {expected}")
    if result.get("run_id") is not None and result["run_id"] != run_id:
        raise InvalidInputError(f"result run_id {result['run_id']} does not match the path run_id {run_id}")
    values = RESULT.to_row({
        **result,
        "job_id": job["id"],
        "workflow_id": job["workflow_id"],
        "run_id": run_id,
        "status": status,
        "attempt_id": result.get("attempt_id") or job["attempt_id"],
        "compute_node_id": result.get("compute_node_id") if result.get("compute_node_id") is not None
        else (job["active_compute_node_id"] or 0),
        "return_code": result.get("return_code", 0),
        "exec_time_minutes": result.get("exec_time_minutes", 0.0),
        "completion_time": result.get("completion_time") or now_iso(),
    })
    cols = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    return conn.insert(f"INSERT INTO result ({cols}) VALUES ({marks})", tuple(values.values()))


def _complete_in_tx(conn: Connection, job_id: int, status: JobStatus, run_id: int, result: Values,
                    release: bool = True, job: Row | None = None) -> tuple[Values, list[Event]]:
    """job: the row, read (and the run checked) by the caller for a batch."""
    if job is None:
        job = require_job(conn, job_id)
        _check_run_id(conn, job["workflow_id"], job_id, run_id)
    workflow_id = job["workflow_id"]
    current = S(job["status"])
    if current in DONE:
        raise InvalidInputError(f"job {job_id} is already complete (status {current.wire})")
    check_completion(job_id, current, status)
    result_id = _insert_result(conn, job, status, run_id, result)
    conn.execute(
        "INSERT INTO workflow_result (workflow_id, job_id, result_id) VALUES (?, ?, ?)"
        " ON CONFLICT (workflow_id, job_id) DO UPDATE SET result_id = excluded.result_id",
        (workflow_id, job_id, result_id),
    )
    conn.execute("UPDATE job SET status = ?, active_compute_node_id = NULL, unblocking_processed = ? WHERE id = ?",
                 (int(status), 0 if status in DONE else 1, job_id))
    events = [Event(workflow_id, f"job_{status.wire}", _severity(status),
                    {"job_id": job_id, "job_name": job["name"], "return_code": result.get("return_code", 0),
                     "run_id": run_id, "attempt_id": job["attempt_id"]})]
    if release and status in DONE:
        events += _release_finished(conn, workflow_id, [job_id])
    wire = job_to_wire({**job, "status": int(status), "active_compute_node_id": None})
    return wire, events


def _release_finished(conn: Connection, workflow_id: int, finished: list[int]) -> list[Event]:
    """Release the dependents of newly finished jobs and fire the job triggers."""
    released = release_dependents(conn, finished)
    actions.trigger(conn, workflow_id, "on_jobs_complete", [*finished, *released.canceled])
    if released.ready:
        actions.trigger(conn, workflow_id, "on_jobs_ready", released.ready)
    return [Event(workflow_id, "job_canceled", "warning", {"job_id": cid, "reason": "a blocking job did not succeed"})
            for cid in released.canceled]


def _after_completion(conn: Connection, workflow_id: int) -> list[Event]:
    if conn.scalar(q.ANY_UNFINISHED, (workflow_id,)):
        return []
    actions.trigger(conn, workflow_id, "on_workflow_complete")
    return [Event(workflow_id, "workflow_completed", "info", {})]


def complete_job(ctx: Context, job_id: int, status: str | int, run_id: int, result: Values) -> Values:
    new_status = JobStatus.parse(status)
    with ctx.store.write() as conn:
        wire, events = _complete_in_tx(conn, job_id, new_status, run_id, result)
        events += _after_completion(conn, wire["workflow_id"])
    ctx.bus.publish(*events)
    return wire


def complete_jobs(ctx: Context, workflow_id: int, run_id: int, items: list[Values]) -> Values:
    """Batch extension: complete many jobs in one transaction (all or nothing)."""
    events: list[Event] = []
    jobs = []
    finished: list[int] = []
    with ctx.store.write() as conn:
        require_workflow(conn, workflow_id)
        rows = _batch_rows(conn, workflow_id, [item["job_id"] for item in items], run_id)
        for item in items:
            job_id = item["job_id"]
            status = JobStatus.parse(item["status"])
            wire, evs = _complete_in_tx(conn, job_id, status, run_id, item.get("result") or {}, release=False,
                                        job=rows[job_id])
            jobs.append(wire)
            events += evs
            if status in DONE:
                finished.append(job_id)
        # One release for the whole batch: each dependent is looked at once.
        if finished:
            events += _release_finished(conn, workflow_id, finished)
        events += _after_completion(conn, workflow_id)
    ctx.bus.publish(*events)
    return {"jobs": jobs}


def retry_job(ctx: Context, job_id: int, run_id: int, max_retries: int = 3, result: Values | None = None) -> Values:
    """Send a failed attempt back to ready with attempt_id + 1. max_retries counts retries."""
    with ctx.store.write() as conn:
        job = require_job(conn, job_id)
        workflow_id = job["workflow_id"]
        _check_run_id(conn, workflow_id, job_id, run_id)
        current = S(job["status"])
        if current not in (S.RUNNING, S.FAILED, S.TERMINATED, S.PENDING_FAILED):
            raise InvalidInputError(
                f"job {job_id}: only running, failed, terminated or pending_failed jobs can be retried "
                f"(status is {current.wire})"
            )
        retries_done = job["attempt_id"] - 1
        if retries_done >= max_retries:
            raise InvalidInputError(f"job {job_id}: max retries ({max_retries}) reached after {job['attempt_id']} attempts")
        if result and result.get("return_code") is not None:
            failed_status = current if current in DONE or current == S.PENDING_FAILED else S.FAILED
            if current == S.RUNNING and result.get("status") in ("terminated", int(S.TERMINATED)):
                failed_status = S.TERMINATED  # stopped from outside (its allocation ended), then requeued
            _insert_result(conn, job, failed_status, run_id, result)
        conn.execute(
            "UPDATE job SET status = ?, attempt_id = attempt_id + 1, active_compute_node_id = NULL,"
            " unblocking_processed = 1 WHERE id = ?",
            (int(S.READY), job_id),
        )
        conn.execute("DELETE FROM workflow_result WHERE workflow_id = ? AND job_id = ?", (workflow_id, job_id))
        # Dependents canceled because this attempt failed wait again for the retry.
        restored = _restore_cascade_cancels(conn, job_id)
        record_event(conn, workflow_id, {
            "category": "job", "event_type": "job_retried", "job_id": job_id, "job_name": job["name"],
            "previous_attempt": job["attempt_id"], "new_attempt": job["attempt_id"] + 1, "run_id": run_id,
            "restored_dependents": len(restored),
        })
        actions.trigger(conn, workflow_id, "on_jobs_ready", [job_id])
        wire = job_to_wire(require_job(conn, job_id))
    ctx.bus.publish(Event(workflow_id, "job_retried", "warning",
                          {"job_id": job_id, "new_attempt": job["attempt_id"] + 1}))
    return wire


def _downstream(conn: Connection, job_ids: list[int]) -> list[int]:
    """Every transitive dependent of the given jobs."""
    seen: set[int] = set()
    frontier = list(job_ids)
    while frontier:
        nxt = []
        for start in range(0, len(frontier), _CHUNK):
            for dep in conn.column(q.DIRECT_DEPENDENTS.format(ids=in_clause(frontier[start:start + _CHUNK]))):
                if dep not in seen:
                    seen.add(dep)
                    nxt.append(dep)
        frontier = nxt
    return sorted(seen)


def _restore_cascade_cancels(conn: Connection, job_id: int) -> list[int]:
    """Canceled dependents with no result of their own were canceled by the cascade: block them again."""
    down = _downstream(conn, [job_id])
    restored = []
    for start in range(0, len(down), _CHUNK):
        chunk = down[start:start + _CHUNK]
        restored += conn.column(
            f"SELECT id FROM job WHERE id IN {in_clause(chunk)} AND status = {int(S.CANCELED)}"
            " AND NOT EXISTS (SELECT 1 FROM workflow_result r WHERE r.job_id = job.id)"
        )
    _set_status(conn, restored, S.BLOCKED)
    return restored


def manage_status_change(ctx: Context, job_id: int, status: str | int, run_id: int) -> Values:
    new = JobStatus.parse(status)
    with ctx.store.write() as conn:
        job = require_job(conn, job_id)
        workflow_id = job["workflow_id"]
        _check_run_id(conn, workflow_id, job_id, run_id)
        current = S(job["status"])
        check_status_change(job_id, current, new)
        extra = ", active_compute_node_id = NULL" if new not in ACTIVE else ""
        conn.execute(f"UPDATE job SET status = ?{extra} WHERE id = ?", (int(new), job_id))
        if current in DONE and new == S.UNINITIALIZED:
            conn.execute("DELETE FROM workflow_result WHERE workflow_id = ? AND job_id = ?", (workflow_id, job_id))
            # Reverting a finished job invalidates direct dependents that already ran.
            conn.execute(
                f"UPDATE job SET status = {int(S.UNINITIALIZED)} WHERE id IN"
                " (SELECT job_id FROM job_depends_on WHERE depends_on_job_id = ?)"
                f" AND status IN {in_clause(sorted(DONE))}",
                (job_id,),
            )
        if new == S.READY:
            actions.trigger(conn, workflow_id, "on_jobs_ready", [job_id])
        wire = job_to_wire(require_job(conn, job_id))
    ctx.bus.publish(Event(workflow_id, "job_status_changed", "info",
                          {"job_id": job_id, "from": current.wire, "to": new.wire}))
    return wire


# ---- workflow-wide resets -----------------------------------------------------------------


def reset_job_status(ctx: Context, workflow_id: int, failed_only: bool = False) -> Values:
    with ctx.store.write() as conn:
        require_workflow(conn, workflow_id)
        if failed_only:
            failed = conn.column(q.FAILED_IDS, (workflow_id,))
            targets = sorted(set(failed) | set(_downstream(conn, failed)))
            # Jobs a runner holds right now are left alone.
            keep = set(conn.column(q.ACTIVE_IDS, (workflow_id,)))
            targets = [t for t in targets if t not in keep]
            _set_status(conn, targets, S.UNINITIALIZED, ", active_compute_node_id = NULL, unblocking_processed = 1")
            count = len(targets)
        else:
            count = conn.execute(
                f"UPDATE job SET status = {int(S.UNINITIALIZED)}, active_compute_node_id = NULL,"
                " unblocking_processed = 1 WHERE workflow_id = ?",
                (workflow_id,),
            )
        record_event(conn, workflow_id, {"category": "user_action", "action": "reset_job_status",
                                         "failed_only": failed_only, "updated_count": count})
    out: Values = {"workflow_id": workflow_id, "updated_count": count, "status": S.UNINITIALIZED.wire}
    out["reset_type"] = "failed_only" if failed_only else "all"
    return out


def reset_workflow_status(ctx: Context, workflow_id: int, force: bool = False) -> Values:
    with ctx.store.write() as conn:
        require_workflow(conn, workflow_id)
        status = conn.fetchone("SELECT * FROM workflow_status WHERE id = ?", (workflow_id,))
        if status["is_archived"] and not force:
            raise InvalidInputError(f"workflow {workflow_id} is archived; unarchive it before resetting")
        if not force:
            active = conn.scalar(q.ACTIVE_COUNT, (workflow_id,))
            if active:
                raise InvalidInputError(
                    f"workflow {workflow_id} has {active} pending or running job(s); wait for them or use force"
                )
            nodes = conn.scalar(
                "SELECT COUNT(*) FROM scheduled_compute_node WHERE workflow_id = ? AND status IN ('pending', 'active')",
                (workflow_id,),
            )
            if nodes:
                raise InvalidInputError(
                    f"workflow {workflow_id} has {nodes} pending or active allocation(s); wait for them or use force"
                )
        conn.execute("UPDATE workflow_status SET is_canceled = 0, is_archived = 0 WHERE id = ?", (workflow_id,))
        record_event(conn, workflow_id, {"category": "user_action", "action": "reset_workflow_status"})
        return WORKFLOW_STATUS.to_wire(conn.fetchone("SELECT * FROM workflow_status WHERE id = ?", (workflow_id,)))


def process_changed_job_inputs(ctx: Context, workflow_id: int, dry_run: bool = False) -> Values:
    """Jobs whose command, relationships or input user data changed since the last initialize
    go back to uninitialized (unless dry_run); returns their names, and (an extension) what
    changed for each under `changes`."""
    with ctx.store.write() as conn:
        require_workflow(conn, workflow_id)
        stored = {r["id"]: (r["input_hash"], r["name"]) for r in conn.iterate(
            "SELECT id, input_hash, name FROM job WHERE workflow_id = ? AND input_hash IS NOT NULL", (workflow_id,))}
        current = compute_input_hashes(conn, workflow_id, list(stored))
        changed = sorted(i for i, (h, _) in stored.items()
                         if _hash_parts(current.get(i, ""))[""] != _hash_parts(h)[""])
        names = {r["id"]: r["name"] for r in conn.iterate(
            "SELECT id, name FROM user_data WHERE workflow_id = ?", (workflow_id,))} if changed else {}
        changes = {stored[i][1]: describe_input_change(stored[i][0], current.get(i, ""), names) for i in changed}
        if changed and not dry_run:
            _set_status(conn, changed, S.UNINITIALIZED, ", active_compute_node_id = NULL")
    return {"reinitialized_jobs": [stored[i][1] for i in changed], "changes": changes}


# ---- safety net ---------------------------------------------------------------------------


def process_pending_unblocks(ctx: Context) -> int:
    """Release dependents of done jobs not yet processed (e.g. written by another process).
    Normal completions unblock in their own request; this is the periodic safety net."""
    with ctx.store.write() as conn:
        rows = conn.fetchall(q.UNPROCESSED_COMPLETIONS)
        by_workflow: dict[int, list[int]] = defaultdict(list)
        for row in rows:
            by_workflow[row["workflow_id"]].append(row["id"])
        for workflow_id, ids in by_workflow.items():
            released = release_dependents(conn, ids)
            if released.ready:
                actions.trigger(conn, workflow_id, "on_jobs_ready", released.ready)
        waiting = release_waiting(conn)
        for workflow_id, released in waiting.items():
            if released.ready:
                actions.trigger(conn, workflow_id, "on_jobs_ready", released.ready)
    return len(rows) + sum(len(r.ready) + len(r.canceled) for r in waiting.values())

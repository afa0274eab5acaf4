"""pending_failed jobs (workflows with use_pending_failed): list them and record a decision, retry
or fail. Shared by `torc jobs pending-failed` / `torc jobs resolve` and the MCP server."""

from __future__ import annotations

from typing import Any

from torc.client.http import TorcClient
from torc.core.errors import InvalidInputError, TorcError

# Result fields a `fail` decision copies from the pending_failed result into the failed one.
RESULT_BODY_FIELDS = ("attempt_id", "compute_node_id", "return_code", "exec_time_minutes", "completion_time",
                      "peak_memory_bytes", "avg_memory_bytes", "peak_cpu_percent", "avg_cpu_percent")
DECISIONS = ("retry", "fail")


def pending_failed_jobs(client: TorcClient, workflow_id: int) -> list[dict[str, Any]]:
    """The workflow's pending_failed jobs, each with its current result (`result`) and return code."""
    results = {r["job_id"]: r for r in client.iter_items("results", workflow_id=workflow_id, status="pending_failed")}
    return [{**job, "return_code": results.get(job["id"], {}).get("return_code"), "result": results.get(job["id"])}
            for job in client.iter_items("jobs", workflow_id=workflow_id, status="pending_failed")]


def pick(client: TorcClient, workflow_id: int, job_ids: list[int] | None) -> list[dict[str, Any]]:
    """The pending_failed jobs named (all when job_ids is None); a TorcError naming every job that
    is not pending_failed in this workflow, so that nothing changes."""
    waiting = {job["id"]: job for job in pending_failed_jobs(client, workflow_id)}
    if job_ids is None:
        return list(waiting.values())
    problems = []
    for job_id in dict.fromkeys(job_ids):
        if job_id in waiting:
            continue
        try:
            job = client.get(f"jobs/{job_id}")
        except TorcError as exc:
            problems.append(exc.message)
            continue
        if job["workflow_id"] != workflow_id:
            problems.append(f"job {job_id} ({job['name']}) belongs to workflow {job['workflow_id']}, not {workflow_id}")
        else:
            problems.append(f"job {job_id} ({job['name']}) is {job['status']}, not pending_failed")
    if problems:
        raise InvalidInputError("; ".join(problems) + "; nothing was changed")
    return [waiting[job_id] for job_id in dict.fromkeys(job_ids)]


def resolve(client: TorcClient, workflow_id: int, jobs: list[dict[str, Any]], decision: str,
            max_retries: int | None = None) -> list[dict[str, Any]]:
    """Retry (back to ready, next attempt) or fail (recorded failed, dependents canceled) the jobs
    (from `pick`); returns the updated job records. With max_retries, a retry of a job that had
    that many retries already is refused before anything changes."""
    if decision not in DECISIONS:
        raise InvalidInputError(f"decision must be 'retry' or 'fail', not {decision!r}")
    if decision == "retry" and max_retries is not None:
        used_up = [f"job {job['id']} ({job['name']}) already had {job['attempt_id'] - 1} retries"
                   for job in jobs if job["attempt_id"] - 1 >= max_retries]
        if used_up:
            raise InvalidInputError("; ".join(used_up) + f" (max retries {max_retries}); nothing was changed")
    run_id = client.run_id(workflow_id)
    updated = []
    for job in jobs:
        if decision == "retry":
            limit = job["attempt_id"] if max_retries is None else max_retries  # no limit: always one more
            updated.append(client.post(f"jobs/{job['id']}/retry/{run_id}", max_retries=limit))
        else:
            result = job.get("result") or {}
            body = {key: result[key] for key in RESULT_BODY_FIELDS if result.get(key) is not None}
            body.setdefault("attempt_id", job["attempt_id"])
            updated.append(client.post(f"jobs/{job['id']}/complete_job/failed/{run_id}", body))
    return updated

"""Allocations Slurm no longer runs while torc still thinks they do: a node failed, the allocation
was killed (SIGKILL, `scancel --signal=KILL`, the time limit with no time to clean up) and its runner
could not report. Their jobs go back to ready — the job is not at fault — each keeping a terminated
result (return code -128, as torc records orphans) with Slurm's account of what happened; their
runners are marked inactive and the scheduled compute nodes complete.

Called by `torc workflows sync-status`, `torc recover` and `torc watch` before they look at the
workflow, so nobody waits for the 180-s heartbeat timeout to notice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from torc.client import TorcClient
from torc.client.manager import ORPHAN_RETURN_CODE
from torc.core.errors import TorcError
from torc.slurm.commands import SlurmError, sacct, squeue_states

log = logging.getLogger("torc.slurm")
REQUEUE_LIMIT = 5  # retries of one job after lost allocations before it stays terminated for `torc recover`


@dataclass
class LostAllocation:
    slurm_job_id: str
    state: str  # sacct's State (NODE_FAIL, TIMEOUT, CANCELLED, ...) or "unknown"
    requeued: list[dict[str, Any]] = field(default_factory=list)  # jobs back to ready
    terminated: list[dict[str, Any]] = field(default_factory=list)  # jobs past REQUEUE_LIMIT
    released: list[int] = field(default_factory=list)  # claimed, never started

    def describe(self) -> str:
        parts = [f"Slurm allocation {self.slurm_job_id} is gone ({self.state})"]
        if self.requeued:
            parts.append("requeued " + ", ".join(f"{j['name']} (id {j['id']})" for j in self.requeued))
        if self.terminated:
            parts.append("left terminated after too many lost allocations: "
                         + ", ".join(f"{j['name']} (id {j['id']})" for j in self.terminated))
        if self.released:
            parts.append(f"{len(self.released)} claimed job(s) back to ready")
        return "; ".join(parts)


def _slurm_job_id(node: dict[str, Any]) -> str | None:
    info = node.get("scheduler")
    if node.get("compute_node_type") != "slurm" or not isinstance(info, dict) or not info.get("slurm_job_id"):
        return None
    return str(info["slurm_job_id"])


def _state(slurm_job_id: str) -> str:
    try:
        accounting = sacct(slurm_job_id)
    except SlurmError:
        return "unknown"
    return accounting.state.split()[0] if accounting else "unknown"


def reconcile_lost_allocations(client: TorcClient, workflow_id: int) -> list[LostAllocation]:
    """Find the workflow's active Slurm runners whose allocation Slurm no longer lists and put their
    jobs back (see the module docstring). Nothing happens when Slurm cannot be asked."""
    nodes = [n for n in client.iter_items("compute_nodes", workflow_id=workflow_id, is_active=True)
             if _slurm_job_id(n)]
    scheduled = [n for n in client.iter_items("scheduled_compute_nodes", workflow_id=workflow_id)
                 if n.get("status") in ("pending", "active") and n.get("scheduler_type", "slurm") == "slurm"
                 and str(n.get("scheduler_id") or "0") != "0"]
    if not nodes and not scheduled:
        return []
    try:
        listed = squeue_states(retry_for=10.0)
    except SlurmError as exc:
        log.warning("cannot check the workflow's Slurm allocations: %s", exc.message)
        return []
    lost: dict[str, LostAllocation] = {}
    run_id = None
    for node in nodes:
        slurm_id = _slurm_job_id(node)
        if slurm_id in listed:
            continue
        gone = lost.setdefault(slurm_id, LostAllocation(slurm_id, _state(slurm_id)))
        run_id = run_id or client.run_id(workflow_id)
        jobs = list(client.iter_items("jobs", workflow_id=workflow_id, active_compute_node_id=node["id"]))
        pending = [j["id"] for j in jobs if j["status"] == "pending"]
        if pending:
            client.post(f"workflows/{workflow_id}/release_jobs", {"job_ids": pending})
            gone.released += pending
        for job in (j for j in jobs if j["status"] == "running"):
            result = {"status": "terminated", "return_code": ORPHAN_RETURN_CODE, "exec_time_minutes": 0.0,
                      "compute_node_id": node["id"], "attempt_id": job.get("attempt_id", 1)}
            try:
                client.post(f"jobs/{job['id']}/retry/{run_id}", result, max_retries=REQUEUE_LIMIT)
                gone.requeued.append(job)
            except TorcError:  # retried too often: record it terminated, for `torc recover`
                client.post(f"jobs/{job['id']}/complete_job/terminated/{run_id}", result)
                gone.terminated.append(job)
        client.put(f"compute_nodes/{node['id']}", {**node, "is_active": False})
    for record in scheduled:
        slurm_id = str(record["scheduler_id"])
        if slurm_id in listed:
            continue
        lost.setdefault(slurm_id, LostAllocation(slurm_id, _state(slurm_id)))
        client.put(f"scheduled_compute_nodes/{record['id']}", {**record, "status": "complete"})
    # an allocation that ended normally (its runner reported and exited) is not news
    return [g for g in lost.values() if g.requeued or g.terminated or g.released]

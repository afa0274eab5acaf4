"""Workflow-level procedures that combine several API calls: initialize with its checks,
reinitialize with change detection, and finding orphaned jobs."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torc.client.http import TorcClient
from torc.core.errors import InvalidInputError

MTIME_TOLERANCE = 0.01


@dataclass
class InitializePlan:
    missing_inputs: list[str] = field(default_factory=list)
    missing_user_data: list[str] = field(default_factory=list)
    existing_outputs: list[str] = field(default_factory=list)


def _files(client: TorcClient, workflow_id: int) -> dict[int, dict[str, Any]]:
    return {f["id"]: f for f in client.iter_items("files", workflow_id=workflow_id)}


def check_initialize(client: TorcClient, workflow_id: int) -> InitializePlan:
    """What would stop (or deserve a warning before) initializing a workflow."""
    plan = InitializePlan()
    files = _files(client, workflow_id)
    for file_id in client.get(f"workflows/{workflow_id}/required_existing_files")["files"]:
        path = files[file_id]["path"]
        if not Path(path).exists():
            plan.missing_inputs.append(path)
    missing = set(client.get(f"workflows/{workflow_id}/missing_user_data")["user_data"])
    if missing:
        plan.missing_user_data = [u["name"] for u in client.iter_items("user_data", workflow_id=workflow_id)
                                  if u["id"] in missing]
    produced = {f["id"] for f in client.iter_items("files", workflow_id=workflow_id, is_output=True)}
    plan.existing_outputs = [files[i]["path"] for i in sorted(produced) if Path(files[i]["path"]).exists()]
    return plan


def _record_mtimes(client: TorcClient, files: dict[int, dict[str, Any]]) -> None:
    for f in files.values():
        path = Path(f["path"])
        mtime = path.stat().st_mtime if path.exists() else None
        if mtime != f.get("st_mtime"):
            client.put(f"files/{f['id']}", {**f, "st_mtime": mtime})


def initialize(client: TorcClient, workflow_id: int, force: bool = False) -> InitializePlan:
    """Start a fresh run: check inputs, reset everything, bump run_id, record file times, initialize."""
    status = client.get(f"workflows/{workflow_id}/status")
    if status.get("is_archived"):
        raise InvalidInputError(f"workflow {workflow_id} is archived; unarchive it first")
    plan = check_initialize(client, workflow_id)
    if not force:
        problems = []
        if plan.missing_inputs:
            problems.append("input files that no job produces do not exist: " + ", ".join(plan.missing_inputs))
        if plan.missing_user_data:
            problems.append("user data that no job produces has no value: " + ", ".join(plan.missing_user_data))
        if problems:
            raise InvalidInputError(f"workflow {workflow_id} cannot start: " + "; ".join(problems)
                                    + " (use --force to start anyway)")
    client.post(f"workflows/{workflow_id}/reset_status", force=force or None)
    client.post(f"workflows/{workflow_id}/reset_job_status")
    status = client.get(f"workflows/{workflow_id}/status")
    client.put(f"workflows/{workflow_id}/status", {**status, "run_id": status["run_id"] + 1})
    _record_mtimes(client, _files(client, workflow_id))
    client.post(f"workflows/{workflow_id}/initialize_jobs")
    return plan


@dataclass
class ReinitializePlan:
    changed_files: list[str] = field(default_factory=list)
    missing_outputs: list[str] = field(default_factory=list)
    changed_jobs: list[str] = field(default_factory=list)
    rerun: list[str] = field(default_factory=list)  # jobs that go back to run, with a reason each


def reinitialize(client: TorcClient, workflow_id: int, dry_run: bool = False) -> ReinitializePlan:
    """Rerun exactly what changed: jobs reading changed input files, jobs whose outputs are gone,
    jobs whose command/relationships/input data changed, and everything downstream of them."""
    plan = ReinitializePlan()
    files = _files(client, workflow_id)
    jobs = {j["id"]: j for j in client.iter_items("jobs", workflow_id=workflow_id, include_relationships=True)}
    reset: dict[int, str] = {}
    for f in files.values():
        path = Path(f["path"])
        now = path.stat().st_mtime if path.exists() else None
        before = f.get("st_mtime")
        changed = (now is None) != (before is None) or (
            now is not None and before is not None and abs(now - before) > MTIME_TOLERANCE)
        if not changed:
            continue
        plan.changed_files.append(f["path"])
        for job in jobs.values():
            if f["id"] in (job.get("input_file_ids") or []) and job["status"] in ("completed", "failed", "canceled"):
                reset.setdefault(job["id"], f"input {f['path']} changed")
    for job in jobs.values():
        if job["status"] != "completed":
            continue
        for file_id in job.get("output_file_ids") or []:
            if not Path(files[file_id]["path"]).exists():
                plan.missing_outputs.append(files[file_id]["path"])
                reset.setdefault(job["id"], f"output {files[file_id]['path']} is missing")
    changed = client.post(f"workflows/{workflow_id}/process_changed_job_inputs", dry_run=True)["reinitialized_jobs"]
    plan.changed_jobs = changed
    by_name = {j["name"]: j["id"] for j in jobs.values()}
    for name in changed:
        reset.setdefault(by_name[name], "command, dependencies or input data changed")
    plan.rerun = [f"{jobs[i]['name']}: {why}" for i, why in sorted(reset.items())]
    if dry_run:
        return plan
    status = client.get(f"workflows/{workflow_id}/status")
    client.put(f"workflows/{workflow_id}/status", {**status, "run_id": status["run_id"] + 1})
    run_id = status["run_id"] + 1
    for job_id in sorted(reset):
        if jobs[job_id]["status"] != "uninitialized":
            client.put(f"jobs/{job_id}/manage_status_change/uninitialized/{run_id}")
    client.post(f"workflows/{workflow_id}/process_changed_job_inputs")
    _record_mtimes(client, files)
    client.post(f"workflows/{workflow_id}/initialize_jobs", only_uninitialized=True)
    return plan


ORPHAN_RETURN_CODE = -128  # torc's code for "the runner holding this job went away"


def _runner_gone(node: dict[str, Any]) -> bool:
    """A compute node whose runner no longer runs: marked inactive, or a local runner on this
    host whose process has died."""
    if not node.get("is_active"):
        return True
    if node.get("compute_node_type") == "local" and node.get("hostname") == socket.gethostname():
        try:
            os.kill(int(node["pid"]), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return False


def find_orphans(client: TorcClient, workflow_id: int) -> list[dict[str, Any]]:
    """Running or pending jobs whose runner is gone. Pending jobs carry no runner, so they count
    only when no runner of the workflow is alive at all."""
    nodes = list(client.iter_items("compute_nodes", workflow_id=workflow_id))
    gone = [n for n in nodes if _runner_gone(n)]
    orphans: list[dict[str, Any]] = []
    for node in gone:
        for job in client.iter_items("jobs", workflow_id=workflow_id, active_compute_node_id=node["id"]):
            if job["status"] in ("running", "pending"):
                orphans.append({**job, "compute_node_id": node["id"]})
    if len(gone) == len(nodes):
        seen = {j["id"] for j in orphans}
        for status in ("running", "pending"):
            orphans += [j for j in client.iter_items("jobs", workflow_id=workflow_id, status=status)
                        if j["id"] not in seen]
    return orphans


def fail_orphans(client: TorcClient, workflow_id: int, orphans: list[dict[str, Any]]) -> None:
    """Record each orphan as failed (return code -128) and mark dead runners inactive."""
    run_id = client.run_id(workflow_id)
    for job in orphans:
        client.post(f"jobs/{job['id']}/complete_job/failed/{run_id}", {
            "return_code": ORPHAN_RETURN_CODE, "exec_time_minutes": 0.0,
            "compute_node_id": job.get("compute_node_id") or 0,
        })
    for node in client.iter_items("compute_nodes", workflow_id=workflow_id):
        if node.get("is_active") and _runner_gone(node):
            client.put(f"compute_nodes/{node['id']}", {**node, "is_active": False})

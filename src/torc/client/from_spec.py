"""Turning a spec file into a workflow on the server, all or nothing: any failure deletes the
half-created workflow. (Client side: it sends what torc.spec loads and checks.)"""

from __future__ import annotations

import getpass
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

from torc.client import TorcClient
from torc.core.errors import TorcError
from torc.core.graph import stages
from torc.spec.load import SpecError, parse_file, spec_from_data
from torc.spec.model import ResourceMonitorConfig, WorkflowSpec
from torc.spec.resolve import ResolvedJob, edges, resolve

BATCH = 10_000


def current_user() -> str:
    """The owner of new workflows: the authenticated user (TORC_USER) when set, else the login name."""
    return os.environ.get("TORC_USER") or os.environ.get("USER") or os.environ.get("USERNAME") or getpass.getuser()


def _levels(jobs: list[ResolvedJob]) -> list[list[ResolvedJob]]:
    """Jobs grouped so that every explicit blocker sits in an earlier group."""
    by_name = {j.spec.name: j for j in jobs}
    return [[by_name[n] for n in stage] for stage in stages({j.spec.name: j.depends_on for j in jobs})]


DEFAULT_MONITOR = {"enabled": True, "granularity": "summary", "sample_interval_seconds": 5}


def create_workflow(client: TorcClient, spec: WorkflowSpec, source: str,
                    progress: Callable[[int, int], None] | None = None, monitoring: bool = True,
                    broken: set[str] | frozenset[str] = frozenset()) -> int:
    jobs = resolve(spec, source, broken)
    if monitoring and spec.resource_monitor is None:
        spec = spec.model_copy(update={"resource_monitor": ResourceMonitorConfig(**DEFAULT_MONITOR)})
    body = {
        "name": spec.name,
        "user": spec.user or current_user(),
        "description": spec.description,
        "project": spec.project,
        "metadata": json.dumps(spec.metadata) if spec.metadata is not None and not isinstance(spec.metadata, str)
        else spec.metadata,
        "use_pending_failed": spec.use_pending_failed,
        "jobs_sort_method": spec.jobs_sort_method,
        "compute_node_expiration_buffer_seconds": spec.compute_node_expiration_buffer_seconds,
        "compute_node_wait_for_new_jobs_seconds": spec.compute_node_wait_for_new_jobs_seconds,
        "compute_node_ignore_workflow_completion": spec.compute_node_ignore_workflow_completion,
        "compute_node_wait_for_healthy_database_minutes": spec.compute_node_wait_for_healthy_database_minutes,
        "resource_monitor_config": spec.resource_monitor.model_dump_json() if spec.resource_monitor else None,
        "slurm_defaults": json.dumps(spec.slurm_defaults) if spec.slurm_defaults else None,
    }
    workflow = client.post("workflows", {k: v for k, v in body.items() if v is not None})
    wf = workflow["id"]
    try:
        _populate(client, wf, spec, jobs, progress)
    except BaseException as exc:
        try:
            client.delete(f"workflows/{wf}")
        except TorcError as cleanup:  # e.g. the server went down: say what was left behind
            if isinstance(exc, TorcError):
                exc.message = (f"{exc.message}; workflow {wf} was left half-created and could not be deleted "
                               f"({cleanup.message}): delete it with `torc workflows delete {wf}`")
                exc.args = (exc.message,)
            raise exc from None
        raise
    return wf


def _create_batched(client: TorcClient, path: str, key: str, records: list[dict]) -> dict[str, int]:
    """Create records through a bulk endpoint; name -> new id."""
    ids: dict[str, int] = {}
    for start in range(0, len(records), BATCH):
        chunk = [{k: v for k, v in r.items() if v is not None} for r in records[start:start + BATCH]]
        for created in client.post(path, {key: chunk})[key]:
            ids[created["name"]] = created["id"]
    return ids


def _populate(client: TorcClient, wf: int, spec: WorkflowSpec, jobs: list[ResolvedJob],
              progress: Callable[[int, int], None] | None) -> None:
    file_ids = _create_batched(client, "bulk_files", "files",
                               [{"workflow_id": wf, "name": f.name, "path": f.path} for f in spec.files or []])
    data_ids = _create_batched(client, "bulk_user_data", "user_data", [
        {"workflow_id": wf, "name": u.name, "is_ephemeral": u.is_ephemeral, "data": u.data}
        for u in spec.user_data or [] if u.name
    ])
    rr_ids = {r["name"]: r["id"] for r in client.get("resource_requirements", workflow_id=wf)["items"]}
    for r in spec.resource_requirements or []:
        rr_ids[r.name] = client.post("resource_requirements", {"workflow_id": wf, **r.model_dump()})["id"]
    handler_ids = {
        h.name: client.post("failure_handlers", {
            "workflow_id": wf, "name": h.name, "rules": json.dumps([r.model_dump(exclude_none=True) for r in h.rules]),
        })["id"]
        for h in spec.failure_handlers or []
    }
    scheduler_ids = {
        s.name: client.post("slurm_schedulers", {"workflow_id": wf, **s.model_dump(exclude_none=True)})["id"]
        for s in spec.slurm_schedulers or []
    }
    job_ids: dict[str, int] = {}
    done = 0
    for group in _levels(jobs):
        for start in range(0, len(group), BATCH):
            batch = group[start:start + BATCH]
            payload = [{
                "workflow_id": wf,
                "name": j.spec.name,
                "command": j.command,
                "invocation_script": j.invocation_script,
                "cancel_on_blocking_job_failure": j.spec.cancel_on_blocking_job_failure,
                "supports_termination": j.spec.supports_termination,
                "resource_requirements_id": rr_ids[j.spec.resource_requirements] if j.spec.resource_requirements
                else None,
                "failure_handler_id": handler_ids.get(j.spec.failure_handler) if j.spec.failure_handler else None,
                "scheduler_id": scheduler_ids.get(j.spec.scheduler) if j.spec.scheduler else None,
                "depends_on_job_ids": [job_ids[d] for d in j.depends_on],
                "input_file_ids": [file_ids[f] for f in j.input_files],
                "output_file_ids": [file_ids[f] for f in j.output_files],
                "input_user_data_ids": [data_ids[u] for u in j.input_user_data],
                "output_user_data_ids": [data_ids[u] for u in j.output_user_data],
            } for j in batch]
            payload = [{k: v for k, v in p.items() if v not in (None, [])} for p in payload]
            created = client.post("bulk_jobs", {"jobs": payload})["jobs"]
            for j, c in zip(batch, created, strict=True):
                job_ids[j.spec.name] = c["id"]
            done += len(batch)
            if progress:
                progress(done, len(jobs))
    for action in spec.actions or []:
        names = list(action.jobs or [])
        config: dict = {}
        if action.action_type == "run_commands":
            config["commands"] = action.commands or []
        elif action.action_type == "schedule_nodes":
            config = {"scheduler_type": action.scheduler_type or "slurm",
                      "scheduler_id": scheduler_ids.get(action.scheduler or "", 0),
                      "num_allocations": action.num_allocations or 1,
                      "start_one_worker_per_node": bool(action.start_one_worker_per_node)}
            if action.max_parallel_jobs:
                config["max_parallel_jobs"] = action.max_parallel_jobs
        for pattern in action.job_name_regexes or []:
            names += [n for n in job_ids if re.search(pattern, n)]
        body = {"trigger_type": action.trigger_type, "action_type": action.action_type, "action_config": config,
                "persistent": action.persistent}
        if names:
            body["job_ids"] = sorted({job_ids[n] for n in names if n in job_ids})
        client.post(f"workflows/{wf}/actions", body)


def create_from_file(client: TorcClient, path: str | Path, progress: Callable[[int, int], None] | None = None,
                     monitoring: bool = True) -> int:
    """Validate a spec file completely, then create its workflow (nothing is created on error)."""
    data, source = parse_file(path)
    spec, broken = spec_from_data(data, source)
    return create_workflow(client, spec, source, progress, monitoring, broken)


def blockers_from_file(path: str | Path) -> dict[str, list[str]]:
    """job name -> names it waits for, from a spec file (for execution plans)."""
    data, source = parse_file(path)
    spec, broken = spec_from_data(data, source)
    return {name: sorted(b) for name, b in edges(resolve(spec, source, broken)).items()}


def dry_run_summary(path: str | Path) -> dict:
    """What `workflows create --dry-run` reports: validity, every problem, warnings, a summary."""
    try:
        data, source = parse_file(path)
        raw_jobs = len(data.get("jobs") or []) if isinstance(data, dict) else 0
        raw_files = len(data.get("files") or []) if isinstance(data, dict) else 0
        spec, broken = spec_from_data(data, source)
        jobs = resolve(spec, source, broken)
    except SpecError as exc:
        return {"valid": False, "errors": exc.problems, "warnings": [], "summary": None}
    warnings = []
    if spec.slurm_schedulers and any(not j.spec.scheduler for j in jobs):
        warnings.append("some jobs name no scheduler; any allocation may run them")
    summary = {
        "workflow_name": spec.name, "description": spec.description, "job_count": len(jobs),
        "job_count_before_expansion": raw_jobs, "file_count": len(spec.files or []),
        "file_count_before_expansion": raw_files, "user_data_count": len(spec.user_data or []),
        "resource_requirements_count": len(spec.resource_requirements or []),
        "slurm_scheduler_count": len(spec.slurm_schedulers or []), "action_count": len(spec.actions or []),
        "has_schedule_nodes_action": any(a.action_type == "schedule_nodes" for a in spec.actions or []),
        "job_names": [j.spec.name for j in jobs], "scheduler_names": [s.name for s in spec.slurm_schedulers or []],
        "stages": len(stages({name: b for name, b in edges(jobs).items()})),
    }
    return {"valid": True, "errors": [], "warnings": warnings, "summary": summary}

"""`torc recover` / `torc watch --recover`: find out why the jobs of a finished run failed, give the
ones that ran out of memory or time more of it, and put them back to run.

Three steps, each usable alone:

- `preflight` cleans up jobs of runners that are gone (as `workflows sync-status` does) and refuses
  while the workflow is still running;
- `plan_recovery` classifies every failed or terminated job of the current run (OOM, timeout or
  unknown, with the evidence) and works out the new resource requirements, changing nothing;
- `apply_plan` creates those requirements, points the jobs at them, and resets the jobs (and their
  downstream) in a new run, ready for the local runner.

Resource requirements are never edited in place: a requirement may be shared by jobs that did not
fail. Each group of jobs that share an old record and need the same change gets one new record named
`<old>_recovered_<n>`. The diagnosis reuses `torc.reports.diagnose_failure` (the logic of
`reports check-resource-utilization --include-failed`) plus what the local runner writes in a job's
stderr log when it kills the job at a limit.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torc.client import manager
from torc.client.http import TorcClient
from torc.core.errors import InvalidInputError, TorcError
from torc.core.units import format_duration, parse_duration_seconds, parse_memory_bytes
from torc.reports import (
    SIGKILL_CODES,
    SIGXCPU_CODES,
    diagnose_failure,
    format_bytes,
    format_seconds,
    latest_per_job,
    stdio_paths,
)

RECOVERABLE_STATUSES = ("failed", "terminated")
NEAR_MEMORY_FRACTION = 0.95  # a sampled peak this close to the limit counts as running out of memory
DEFAULT_MEMORY_MULTIPLIER = 1.5
DEFAULT_RUNTIME_MULTIPLIER = 1.4
LOG_TAIL_BYTES = 64 * 1024

# what the local runner writes into a job's stderr log (src/torc/runner/local.py)
_MEMORY_NOTE = re.compile(r"killed: memory use (\d+) MiB exceeded the job's limit of (\d+) MiB")
_RUNTIME_NOTE = re.compile(r"stopped: the job reached its runtime limit \((SIGTERM|SIGKILL)\)")
_RECOVERED_SUFFIX = re.compile(r"_recovered_\d+$")

OOM, TIMEOUT, UNKNOWN = "oom", "timeout", "unknown"


@dataclass
class JobDiagnosis:
    job_id: int
    job_name: str
    status: str
    return_code: int | None
    causes: list[str]  # OOM and/or TIMEOUT, or [UNKNOWN]
    evidence: list[str]
    action: str  # "retry" or "skip"
    resource_requirements_id: int | None
    resource_requirements_name: str | None
    old_memory: str | None
    old_runtime: str | None
    new_memory: str | None = None
    new_runtime: str | None = None
    new_resource_requirements: str | None = None
    observed_memory_bytes: int | None = None  # max of the sampled peak and the runner's kill note
    exec_seconds: float | None = None

    @property
    def cause(self) -> str:
        return "+".join(self.causes)


@dataclass
class NewRequirement:
    name: str
    from_id: int | None
    from_name: str | None
    record: dict[str, Any]  # the resource_requirements body to create (without workflow_id)
    job_ids: list[int]


@dataclass
class RecoveryPlan:
    workflow_id: int
    run_id: int
    memory_multiplier: float
    runtime_multiplier: float
    jobs: list[JobDiagnosis] = field(default_factory=list)
    new_requirements: list[NewRequirement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def to_retry(self) -> list[JobDiagnosis]:
        return [j for j in self.jobs if j.action == "retry"]

    @property
    def skipped(self) -> list[JobDiagnosis]:
        return [j for j in self.jobs if j.action == "skip"]

    def to_json(self) -> dict[str, Any]:
        jobs = []
        for job in self.jobs:
            entry = asdict(job)
            entry["cause"] = job.cause
            jobs.append(entry)
        return {
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "memory_multiplier": self.memory_multiplier,
            "runtime_multiplier": self.runtime_multiplier,
            "jobs": jobs,
            "new_resource_requirements": [
                {"name": r.name, "from_id": r.from_id, "from_name": r.from_name, "job_ids": r.job_ids, **r.record}
                for r in self.new_requirements
            ],
            "retry_job_ids": [j.job_id for j in self.to_retry],
            "skipped_job_ids": [j.job_id for j in self.skipped],
            "notes": self.notes,
        }


# ---- preconditions ----------------------------------------------------------------------------


def check_workflow(client: TorcClient, workflow_id: int) -> dict[str, Any]:
    """The workflow record; a clear error for an unknown, archived or never-run workflow."""
    workflow = client.get(f"workflows/{workflow_id}")  # NotFoundError for an unknown id
    status = client.get(f"workflows/{workflow_id}/status")
    if status.get("is_archived"):
        raise InvalidInputError(f"workflow {workflow_id} is archived; unarchive it first")
    never_ran = not status.get("run_id") or client.get(f"workflows/{workflow_id}/is_uninitialized")["is_uninitialized"]
    if never_ran:
        raise InvalidInputError(f"workflow {workflow_id} has never run; start it with: torc run {workflow_id}")
    return workflow


def active_runners(client: TorcClient, workflow_id: int) -> list[dict[str, Any]]:
    """Compute nodes of the workflow whose runner is still alive."""
    return [n for n in client.iter_items("compute_nodes", workflow_id=workflow_id)
            if n.get("is_active") and not manager._runner_gone(n)]


def preflight(client: TorcClient, workflow_id: int, dry_run: bool = False) -> list[str]:
    """Clean up jobs of runners that are gone (only reported with dry_run), then refuse while any
    runner is active or any job is running or pending. Returns what was done, one line each."""
    notes: list[str] = []
    orphans = manager.find_orphans(client, workflow_id)
    orphan_ids = {j["id"] for j in orphans}
    if dry_run:
        if orphans:
            notes.append(f"{len(orphans)} job(s) of runners that are gone would be cleaned up first "
                         f"(torc workflows sync-status {workflow_id})")
    else:
        manager.fail_orphans(client, workflow_id, orphans)
        failed = sum(1 for j in orphans if j["status"] != "pending")
        if failed:
            notes.append(f"{failed} job(s) of runners that are gone were marked failed (return code "
                         f"{manager.ORPHAN_RETURN_CODE})")
        if len(orphans) > failed:
            notes.append(f"{len(orphans) - failed} job(s) claimed by runners that are gone went back to ready")
    nodes = active_runners(client, workflow_id)
    busy = {status: [j for j in client.iter_items("jobs", workflow_id=workflow_id, status=status)
                     if not (dry_run and j["id"] in orphan_ids)]
            for status in ("running", "pending")}
    if nodes or busy["running"] or busy["pending"]:
        raise InvalidInputError(
            f"workflow {workflow_id} is still running ({len(nodes)} active runner(s), {len(busy['running'])} "
            f"running and {len(busy['pending'])} pending job(s)); wait for it to finish, or use "
            f"`torc watch {workflow_id} --recover`")
    return notes


# ---- diagnosis --------------------------------------------------------------------------------


def _log_tail(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _memory_text(value: int) -> str:
    """Bytes -> the smallest whole number of MiB (or GiB when exact) at least that large: '450m'."""
    mib = math.ceil(value / 2**20)
    return f"{mib // 1024}g" if mib % 1024 == 0 else f"{mib}m"


def _safe_memory(text: Any) -> int | None:
    try:
        return parse_memory_bytes(text) if text else None
    except TorcError:
        return None


def _safe_runtime(text: Any) -> float | None:
    try:
        seconds = parse_duration_seconds(text) if text else None
    except TorcError:
        return None
    return seconds if seconds else None


def diagnose_job(job: dict[str, Any], result: dict[str, Any] | None, rr: dict[str, Any] | None,
                 workflow_id: int, output_dir: Path | None) -> JobDiagnosis:
    """Why one failed/terminated job failed, from its latest result, its resource requirements and
    the local runner's note in its stderr log (when output_dir holds the logs)."""
    diagnosis = JobDiagnosis(
        job_id=job["id"], job_name=job["name"], status=job["status"],
        return_code=None if result is None else result.get("return_code"), causes=[], evidence=[],
        action="skip", resource_requirements_id=(rr or {}).get("id"),
        resource_requirements_name=(rr or {}).get("name"), old_memory=(rr or {}).get("memory"),
        old_runtime=(rr or {}).get("runtime"),
    )
    if result is None:
        diagnosis.causes = [UNKNOWN]
        diagnosis.evidence.append("no result recorded for the current run")
        return diagnosis
    report = diagnose_failure(result, job, rr)
    rc = report["return_code"]
    peak = report["peak_memory_bytes"]
    memory = report["memory_bytes"]
    diagnosis.exec_seconds = None if result.get("exec_time_minutes") is None else float(
        result["exec_time_minutes"]) * 60
    log = ""
    if output_dir is not None:
        log = _log_tail(stdio_paths(output_dir, workflow_id, job["id"], int(result.get("run_id") or 0),
                                    int(result.get("attempt_id") or 1))[1])
    memory_note = _MEMORY_NOTE.search(log)
    runtime_note = _RUNTIME_NOTE.search(log)
    observed = [int(peak)] if peak is not None else []

    # out of memory
    oom: str | None = None
    if memory_note:
        observed.append(int(memory_note.group(1)) * 2**20)
        oom = (f"the runner killed it at its memory limit: {memory_note.group(1)} MiB used, limit "
               f"{memory_note.group(2)} MiB (return code {rc})")
    elif report["likely_oom"] and peak is not None and memory is not None and peak > memory:
        oom = report["oom_reason"]
    elif peak is not None and memory and peak >= NEAR_MEMORY_FRACTION * memory:
        oom = f"peak memory {format_bytes(peak)} reached {peak / memory:.0%} of the requested {format_bytes(memory)}"
    elif (report["likely_oom"] and job["status"] == "failed" and rc in SIGKILL_CODES and not runtime_note):
        oom = f"{report['oom_reason']} (likely the kernel's out-of-memory killer)"
    if oom:
        diagnosis.causes.append(OOM)
        diagnosis.evidence.append(oom)

    # out of time
    timeout: str | None = None
    if runtime_note:
        timeout = (f"the runner stopped it at its runtime limit {format_seconds(report['runtime_seconds'])} "
                   f"({runtime_note.group(1)}, return code {rc})")
    elif report["likely_timeout"]:
        timeout = report["timeout_reason"]
    elif rc in SIGXCPU_CODES:
        timeout = f"killed by SIGXCPU (return code {rc}): CPU time limit"
    if timeout:
        diagnosis.causes.append(TIMEOUT)
        diagnosis.evidence.append(timeout)

    if not diagnosis.causes:
        diagnosis.causes = [UNKNOWN]
        if rc == manager.ORPHAN_RETURN_CODE:
            diagnosis.evidence.append(f"its runner went away (return code {rc})")
        elif job["status"] == "terminated":
            diagnosis.evidence.append(f"stopped before its limits (return code {rc}): an interrupted run? "
                                      f"`torc run {workflow_id}` resumes those")
        else:
            diagnosis.evidence.append(f"{job['status']} with return code {rc}; no sign of a memory or time limit")
    diagnosis.observed_memory_bytes = max(observed) if observed else None
    return diagnosis


def diagnose(client: TorcClient, workflow_id: int, output_dir: Path | None) -> list[JobDiagnosis]:
    """Every failed or terminated job of the workflow, diagnosed."""
    jobs = [j for status in RECOVERABLE_STATUSES for j in client.iter_items("jobs", workflow_id=workflow_id,
                                                                             status=status)]
    if not jobs:
        return []
    requirements = {r["id"]: r for r in client.iter_items("resource_requirements", workflow_id=workflow_id)}
    wanted = {j["id"] for j in jobs}
    results = {r["job_id"]: r for r in latest_per_job(
        r for r in client.iter_items("results", workflow_id=workflow_id) if r["job_id"] in wanted)}
    return [diagnose_job(job, results.get(job["id"]), requirements.get(job.get("resource_requirements_id")),
                         workflow_id, output_dir) for job in sorted(jobs, key=lambda j: j["id"])]


# ---- the plan ---------------------------------------------------------------------------------


def _new_name(base: str, taken: set[str]) -> str:
    stem = _RECOVERED_SUFFIX.sub("", base)
    n = 1
    while f"{stem}_recovered_{n}" in taken:
        n += 1
    name = f"{stem}_recovered_{n}"
    taken.add(name)
    return name


def plan_recovery(client: TorcClient, workflow_id: int, output_dir: Path | None,
                  memory_multiplier: float = DEFAULT_MEMORY_MULTIPLIER,
                  runtime_multiplier: float = DEFAULT_RUNTIME_MULTIPLIER,
                  retry_unknown: bool = False) -> RecoveryPlan:
    """Diagnose the failed/terminated jobs and decide what each gets; changes nothing.

    OOM: memory = (max observed peak, or the current requirement if larger) x memory_multiplier, over
    the OOM jobs sharing a requirement. Timeout: runtime = current runtime x runtime_multiplier.
    Unknown failures are retried unchanged only with retry_unknown."""
    if memory_multiplier <= 1 or runtime_multiplier <= 1:
        raise InvalidInputError("the memory and runtime multipliers must be greater than 1")
    plan = RecoveryPlan(workflow_id, client.run_id(workflow_id), memory_multiplier, runtime_multiplier)
    plan.jobs = diagnose(client, workflow_id, output_dir)
    waiting = client.get(f"workflows/{workflow_id}/job_counts")["counts"].get("pending_failed", 0)
    if waiting:
        plan.notes.append(f"{waiting} job(s) are pending_failed and wait for a decision (torc jobs resolve); "
                          "recover leaves them alone")
    requirements = {r["id"]: r for r in client.iter_items("resource_requirements", workflow_id=workflow_id)}
    taken = {r["name"] for r in requirements.values()}
    groups: dict[tuple[int | None, tuple[str, ...]], list[JobDiagnosis]] = {}
    for job in plan.jobs:
        if job.causes == [UNKNOWN]:
            job.action = "retry" if retry_unknown else "skip"
            continue
        job.action = "retry"
        groups.setdefault((job.resource_requirements_id, tuple(job.causes)), []).append(job)
    for (rr_id, causes), members in groups.items():
        old = requirements.get(rr_id) if rr_id is not None else None
        record: dict[str, Any] = {key: (old or {}).get(key) for key in ("num_cpus", "num_gpus", "num_nodes",
                                                                        "memory", "runtime")}
        if OOM in causes:
            current = _safe_memory((old or {}).get("memory")) or 0
            observed = max((j.observed_memory_bytes or 0 for j in members), default=0)
            base = max(current, observed)
            if base <= 0:
                raise InvalidInputError(f"cannot size memory for {members[0].job_name}: no requirement and no "
                                        "measured peak")
            record["memory"] = _memory_text(int(base * memory_multiplier))
        if TIMEOUT in causes:
            current_s = _safe_runtime((old or {}).get("runtime"))
            if current_s is None:
                current_s = max((j.exec_seconds or 0 for j in members), default=0) or 60.0
            record["runtime"] = format_duration(math.ceil(current_s * runtime_multiplier))
        base_name = (old or {}).get("name") or f"job_{members[0].job_name}"
        name = _new_name(base_name, taken)
        record = {k: v for k, v in record.items() if v is not None}
        plan.new_requirements.append(NewRequirement(name, rr_id, (old or {}).get("name"), record,
                                                    [j.job_id for j in members]))
        for job in members:
            job.new_resource_requirements = name
            job.new_memory = record.get("memory")
            job.new_runtime = record.get("runtime")
    return plan


# ---- applying it ------------------------------------------------------------------------------


def run_hook(command: str, workflow_id: int, api_url: str | None = None) -> None:
    """Run `COMMAND WORKFLOW_ID` through bash with TORC_WORKFLOW_ID (and TORC_API_URL) set; a
    non-zero exit is an error."""
    env = {**os.environ, "TORC_WORKFLOW_ID": str(workflow_id)}
    if api_url:
        env["TORC_API_URL"] = api_url
    try:
        proc = subprocess.run(["bash", "-c", f'{command} "$TORC_WORKFLOW_ID"'], env=env)
    except OSError as exc:
        raise InvalidInputError(f"recovery hook {command!r} could not start: {exc}; nothing was changed") from None
    if proc.returncode != 0:
        raise InvalidInputError(f"recovery hook `{command} {workflow_id}` failed with exit code {proc.returncode}; "
                                "nothing was changed")


def apply_plan(client: TorcClient, plan: RecoveryPlan) -> list[str]:
    """Create the new requirements, point the jobs at them, then reset the jobs to retry (and their
    downstream) in a new run. A failure while creating requirements or repointing jobs undoes those
    changes. Returns what was done, one line each."""
    workflow_id = plan.workflow_id
    created: list[int] = []
    repointed: list[tuple[int, int | None]] = []
    try:
        for req in plan.new_requirements:
            record = client.post("resource_requirements", {"workflow_id": workflow_id, "name": req.name, **req.record})
            created.append(record["id"])
            for job_id in req.job_ids:
                old = next(j.resource_requirements_id for j in plan.jobs if j.job_id == job_id)
                client.put(f"jobs/{job_id}", {"resource_requirements_id": record["id"]})
                repointed.append((job_id, old))
    except TorcError:
        for job_id, old in reversed(repointed):
            if old is not None:
                try:
                    client.put(f"jobs/{job_id}", {"resource_requirements_id": old})
                except TorcError:
                    pass
        for rr_id in created:
            try:
                client.delete(f"resource_requirements/{rr_id}")
            except TorcError:
                pass
        raise
    retry = plan.to_retry
    for job in retry:
        client.put(f"jobs/{job.job_id}/manage_status_change/uninitialized/{plan.run_id}")
    status = client.get(f"workflows/{workflow_id}/status")
    client.post(f"workflows/{workflow_id}/reset_status")
    new_run = status["run_id"] + 1
    client.put(f"workflows/{workflow_id}/status", {**status, "run_id": new_run, "is_canceled": False})
    client.post(f"workflows/{workflow_id}/initialize_jobs", only_uninitialized=True)
    notes = [f"created resource requirements {r.name} ({', '.join(f'{k} {v}' for k, v in r.record.items() if k in ('memory', 'runtime'))}) "
             f"for {len(r.job_ids)} job(s)" for r in plan.new_requirements]
    notes.append(f"{len(retry)} job(s) and their downstream will run again (run {new_run})")
    return notes

"""What the MCP server's tools do, as plain methods over a TorcClient (testable without MCP).

Each method returns JSON-ready data and raises TorcError (or InvalidInputError) with a message an
assistant can act on. READ_ONLY lists the tools that change nothing; MUTATING the others.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from torc.client import manager
from torc.client.http import TorcClient
from torc.core.errors import TorcError
from torc.reports import check_resource_utilization, diagnose_failure, format_bytes, latest_per_job

FINISHED_BAD = ("failed", "terminated", "canceled", "pending_failed")
# Return codes that say the job was killed from outside (signals, a runner that went away): worth a retry.
TRANSIENT_CODES = {-9, 137, -15, 143, -1, 129, -2, 130, manager.ORPHAN_RETURN_CODE}
SPEC_FORMATS = ("yaml", "json", "json5", "kdl")


def _tail(path: Path, lines: int) -> str | None:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    return "".join(text.splitlines(keepends=True)[-lines:]) if lines > 0 else ""


class TorcTools:
    """The tools, bound to one server (client) and the runners' output directory (job logs)."""

    def __init__(self, client: TorcClient, output_dir: str | Path = "torc_output", torc_command: list[str] | None = None):
        self.client = client
        self.output_dir = Path(output_dir)
        self.torc_command = torc_command or [sys.executable, "-m", "torc.cli.main"]
        self.children: list[subprocess.Popen] = []  # background `torc run`s, reaped as they end

    # ---- read-only ---------------------------------------------------------------------------

    def list_workflows(self, user: str | None = None, name: str | None = None, limit: int = 50) -> dict[str, Any]:
        """List workflows (newest first), optionally only one user's or with a given name."""
        page = self.client.get("workflows", user=user, name=name, limit=max(1, min(limit, 10_000)),
                               sort_by="id", reverse_sort=True)
        rows = [{k: w.get(k) for k in ("id", "name", "user", "description", "timestamp")} for w in page["items"]]
        return {"workflows": rows, "total_count": page.get("total_count", len(rows))}

    def get_workflow_status(self, workflow_id: int) -> dict[str, Any]:
        """A workflow's record, run id, flags, job counts by status and whether it is complete."""
        c = self.client
        workflow = c.get(f"workflows/{workflow_id}")
        status = c.get(f"workflows/{workflow_id}/status")
        counts = {k: v for k, v in c.get(f"workflows/{workflow_id}/job_counts")["counts"].items() if v}
        return {"workflow": {k: workflow.get(k) for k in ("id", "name", "user", "description", "project",
                                                             "use_pending_failed")},
                "run_id": status.get("run_id"), "is_canceled": status.get("is_canceled"),
                "is_archived": status.get("is_archived"), "job_counts": counts, "total_jobs": sum(counts.values()),
                "is_complete": c.get(f"workflows/{workflow_id}/is_complete")["is_complete"]}

    def list_jobs(self, workflow_id: int, status: str | None = None, limit: int = 200) -> dict[str, Any]:
        """A workflow's jobs (id, name, status, command), optionally only those in one status
        (uninitialized, blocked, ready, pending, running, completed, failed, canceled, terminated,
        disabled, pending_failed)."""
        page = self.client.get("jobs", workflow_id=workflow_id, status=status, limit=max(1, min(limit, 10_000)))
        jobs = [{k: j.get(k) for k in ("id", "name", "status", "attempt_id", "command")} for j in page["items"]]
        return {"workflow_id": workflow_id, "jobs": jobs, "total_count": page.get("total_count", len(jobs)),
                "has_more": page.get("has_more", False)}

    def get_job_details(self, job_id: int) -> dict[str, Any]:
        """One job: its record, resource requirements and every result (attempt) it has."""
        c = self.client
        job = c.get(f"jobs/{job_id}")
        rr = c.get(f"resource_requirements/{job['resource_requirements_id']}") \
            if job.get("resource_requirements_id") else None
        results = list(c.iter_items("results", workflow_id=job["workflow_id"], job_id=job_id, all_runs=True))
        return {"job": job, "resource_requirements": rr, "results": results}

    def _latest_result(self, job: dict[str, Any]) -> dict[str, Any] | None:
        results = latest_per_job(self.client.iter_items("results", workflow_id=job["workflow_id"], job_id=job["id"],
                                                        all_runs=True))
        return results[-1] if results else None

    def get_job_logs(self, job_id: int, tail_lines: int = 50) -> dict[str, Any]:
        """The last lines of a job's stdout and stderr (latest attempt), from the runner's output
        directory (the server's machine must share it)."""
        from torc.reports import stdio_paths

        job = self.client.get(f"jobs/{job_id}")
        result = self._latest_result(job)
        if result is None:
            return {"job_id": job_id, "status": job["status"], "note": "the job has not run yet: no logs"}
        stdout, stderr = stdio_paths(self.output_dir, job["workflow_id"], job_id, int(result.get("run_id") or 1),
                                     int(result.get("attempt_id") or 1))
        out = {"job_id": job_id, "run_id": result.get("run_id"), "attempt_id": result.get("attempt_id"),
               "stdout_path": str(stdout), "stderr_path": str(stderr),
               "stdout": _tail(stdout, tail_lines), "stderr": _tail(stderr, tail_lines)}
        if out["stdout"] is None and out["stderr"] is None:
            out["note"] = (f"no log files under {self.output_dir}; start the MCP server with --output-dir "
                           "set to the runner's output directory")
        return out

    def explain_job_failure(self, job_id: int, tail_lines: int = 30) -> dict[str, Any]:
        """Why a job failed: its status, return code, likely cause (out of memory, out of time or
        unknown), resource use vs. its request, the tail of its logs, and what to do next."""
        c = self.client
        job = c.get(f"jobs/{job_id}")
        result = self._latest_result(job)
        rr = c.get(f"resource_requirements/{job['resource_requirements_id']}") \
            if job.get("resource_requirements_id") else None
        out: dict[str, Any] = {"job_id": job_id, "job_name": job["name"], "status": job["status"],
                               "command": job["command"]}
        if job["status"] not in FINISHED_BAD:
            out["note"] = f"the job is {job['status']}, not failed"
        if result is None:
            out["diagnosis"] = "no result recorded: the job never ran (or its runner died before reporting)"
            return out
        report = diagnose_failure(result, job, rr)
        out.update({"return_code": result.get("return_code"), "attempt_id": result.get("attempt_id"),
                    "run_id": result.get("run_id"), "likely_oom": report["likely_oom"],
                    "oom_reason": report["oom_reason"], "likely_timeout": report["likely_timeout"],
                    "timeout_reason": report["timeout_reason"],
                    "resources": {"requested_memory": (rr or {}).get("memory"),
                                  "peak_memory": report["peak_memory_formatted"],
                                  "requested_runtime": (rr or {}).get("runtime"),
                                  "exec_time_minutes": result.get("exec_time_minutes"),
                                  "requested_cpus": (rr or {}).get("num_cpus"),
                                  "peak_cpu_percent": result.get("peak_cpu_percent")}})
        logs = self.get_job_logs(job_id, tail_lines)
        out["stdout_tail"], out["stderr_tail"] = logs.get("stdout"), logs.get("stderr")
        if report["likely_oom"] or report["likely_timeout"]:
            out["suggestion"] = ("recover_workflow gives it more memory/runtime and runs it again "
                                 "(call it with dry_run=true first)")
        elif job["status"] == "pending_failed":
            out["suggestion"] = "decide with resolve_pending_failed_jobs (retry or fail)"
        else:
            out["suggestion"] = "read the stderr tail; fix the command or its inputs, then reset_failed_jobs"
        return out

    def list_results(self, workflow_id: int, status: str | None = None, all_runs: bool = False) -> dict[str, Any]:
        """A workflow's results: one row per job attempt (job name, status, return code, time, peak memory)."""
        names = {j["id"]: j["name"] for j in self.client.iter_items("jobs", workflow_id=workflow_id)}
        rows = [{"job_id": r["job_id"], "job_name": names.get(r["job_id"]), "run_id": r.get("run_id"),
                 "attempt_id": r.get("attempt_id"), "status": r.get("status"), "return_code": r.get("return_code"),
                 "exec_time_minutes": r.get("exec_time_minutes"),
                 "peak_memory": format_bytes(r["peak_memory_bytes"]) if r.get("peak_memory_bytes") else None}
                for r in self.client.iter_items("results", workflow_id=workflow_id, status=status,
                                                all_runs=all_runs or None)]
        return {"workflow_id": workflow_id, "results": rows}

    def check_resource_utilization(self, workflow_id: int) -> dict[str, Any]:
        """Jobs whose peak memory, CPU or runtime exceeded their requirements, and failed jobs'
        likely causes (as `torc reports check-resource-utilization --include-failed`)."""
        c = self.client
        return check_resource_utilization(
            list(c.iter_items("jobs", workflow_id=workflow_id)), list(c.iter_items("results", workflow_id=workflow_id)),
            list(c.iter_items("resource_requirements", workflow_id=workflow_id)), include_failed=True)

    def validate_workflow_spec(self, spec_text: str, format: str = "yaml") -> dict[str, Any]:  # noqa: A002
        """Check a workflow spec (YAML, JSON, JSON5 or KDL text) without creating anything: every
        problem, or a summary of the jobs it would create."""
        from torc.spec.load import SpecError

        try:
            spec, _, jobs = _parse_spec(spec_text, format)
        except SpecError as exc:
            return {"valid": False, "errors": exc.problems}
        return {"valid": True, "errors": [], "workflow_name": spec.name, "job_count": len(jobs),
                "job_names": [j.spec.name for j in jobs][:200]}

    def plan_recovery(self, workflow_id: int, memory_multiplier: float = 1.5, runtime_multiplier: float = 1.4,
                      retry_unknown: bool = False) -> dict[str, Any]:
        """What recover_workflow would do (diagnosis of every failed/terminated job and the new
        resource requirements); changes nothing."""
        from torc.client import recovery

        recovery.check_workflow(self.client, workflow_id)
        notes = recovery.preflight(self.client, workflow_id, dry_run=True)
        plan = recovery.plan_recovery(self.client, workflow_id, self.output_dir, memory_multiplier,
                                      runtime_multiplier, retry_unknown)
        out = plan.to_json()
        out["notes"] = notes + out["notes"]
        return out

    def list_pending_failed_jobs(self, workflow_id: int) -> dict[str, Any]:
        """Jobs waiting in pending_failed (no failure-handler rule matched their return code), each
        classified: `retry` (killed from outside: signal, OOM, timeout, lost runner) or `fail`
        (the command itself failed), with the reason."""
        from torc.client.pending import pending_failed_jobs

        rrs = {r["id"]: r for r in self.client.iter_items("resource_requirements", workflow_id=workflow_id)}
        jobs = []
        for job in pending_failed_jobs(self.client, workflow_id):
            decision, reason = classify_failure(job, job["result"], rrs.get(job.get("resource_requirements_id")))
            jobs.append({"id": job["id"], "name": job["name"], "attempt_id": job.get("attempt_id"),
                         "return_code": job["return_code"], "recommendation": decision, "reason": reason})
        return {"workflow_id": workflow_id, "jobs": jobs}

    # ---- mutating ----------------------------------------------------------------------------

    def create_workflow(self, spec_text: str, format: str = "yaml", initialize: bool = True) -> dict[str, Any]:  # noqa: A002
        """Create a workflow from spec text (YAML, JSON, JSON5 or KDL); nothing is created when the
        spec has problems (they are all listed). With initialize, its jobs become ready to run."""
        from torc.client.from_spec import create_workflow

        spec, broken, _ = _parse_spec(spec_text, format)  # SpecError lists every problem
        workflow_id = create_workflow(self.client, spec, "<spec>", broken=broken)
        if initialize:
            manager.initialize(self.client, workflow_id, force=True)
        return {"workflow_id": workflow_id, "name": spec.name, "initialized": initialize,
                **self.get_workflow_status(workflow_id)}

    def run_workflow(self, workflow_id: int, max_parallel_jobs: int | None = None) -> dict[str, Any]:
        """Start `torc run WORKFLOW_ID` on the MCP server's machine in the background (jobs run
        there, logs go to the output directory); poll get_workflow_status to follow it."""
        self.client.get(f"workflows/{workflow_id}")  # NotFoundError for an unknown id
        log = self.output_dir / f"mcp_run_wf{workflow_id}.log"
        args = [*self.torc_command, "--url", self.client.url, "run", str(workflow_id), "-o", str(self.output_dir),
                "--no-progress"]
        if max_parallel_jobs:
            args += ["--max-parallel-jobs", str(max_parallel_jobs)]
        from torc.background import launch_detached

        proc = launch_detached(args, log, env=_child_env())
        self.children = [p for p in self.children if p.poll() is None] + [proc]
        return {"workflow_id": workflow_id, "pid": proc.pid, "log": str(log),
                "note": "running in the background; poll get_workflow_status until is_complete"}

    def submit_workflow(self, workflow_id: int) -> dict[str, Any]:
        """Submit a workflow to Slurm (`torc submit`): its schedule_nodes actions request allocations."""
        args = [*self.torc_command, "--url", self.client.url, "submit", str(workflow_id), "-o", str(self.output_dir)]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=300, env=_child_env())
        if proc.returncode != 0:
            raise TorcError(f"torc submit failed (exit code {proc.returncode}): {proc.stderr.strip() or proc.stdout}")
        return {"workflow_id": workflow_id, "output": proc.stdout.strip()}

    def cancel_workflow(self, workflow_id: int) -> dict[str, Any]:
        """Cancel a workflow: its runners stop, unfinished jobs are canceled, and its pending or
        active Slurm allocations are canceled (scancel)."""
        from torc.slurm.submit import cancel_workflow

        _, slurm_ids, problem = cancel_workflow(self.client, workflow_id)
        extra: dict[str, Any] = {"slurm_jobs_canceled": slurm_ids}
        if problem:
            extra["warning"] = f"the workflow is canceled but its Slurm allocations may not be: {problem}"
        return {"workflow_id": workflow_id, "canceled": True, **extra, **self.get_workflow_status(workflow_id)}

    def reset_failed_jobs(self, workflow_id: int) -> dict[str, Any]:
        """Reset failed, canceled, terminated and pending_failed jobs (and their downstream) and
        start a new run in which they are ready again; completed jobs stay completed."""
        c = self.client
        manager.reset_jobs(c, workflow_id, failed_only=True)
        manager.reinitialize(c, workflow_id)
        return {"workflow_id": workflow_id, **self.get_workflow_status(workflow_id)}

    def recover_workflow(self, workflow_id: int, memory_multiplier: float = 1.5, runtime_multiplier: float = 1.4,
                         retry_unknown: bool = False, dry_run: bool = False) -> dict[str, Any]:
        """Give jobs that ran out of memory or time more of it (new resource requirements) and
        reset them (and their downstream) in a new run; other failures are retried only with
        retry_unknown. dry_run shows the plan only. Refused while the workflow is running."""
        from torc.client import recovery

        if dry_run:
            return self.plan_recovery(workflow_id, memory_multiplier, runtime_multiplier, retry_unknown)
        recovery.check_workflow(self.client, workflow_id)
        notes = recovery.preflight(self.client, workflow_id)
        plan = recovery.plan_recovery(self.client, workflow_id, self.output_dir, memory_multiplier,
                                      runtime_multiplier, retry_unknown)
        out = plan.to_json()
        if not plan.to_retry:
            out["notes"] = notes + out["notes"] + ["nothing to recover"]
            out["applied"] = False
            return out
        out["notes"] = notes + out["notes"] + recovery.apply_plan(self.client, plan)
        out["applied"] = True
        return out

    def resolve_pending_failed_jobs(self, workflow_id: int, decision: str,
                                    job_ids: list[int] | None = None) -> dict[str, Any]:
        """Decide about pending_failed jobs: decision 'retry' runs them again (next attempt),
        'fail' records them failed (dependents are canceled). job_ids: which ones (default: all)."""
        from torc.client import pending

        jobs = pending.pick(self.client, workflow_id, list(job_ids) if job_ids else None)
        updated = pending.resolve(self.client, workflow_id, jobs, decision)
        done = [{"id": u["id"], "name": u["name"], "status": u.get("status")} for u in updated]
        return {"workflow_id": workflow_id, "decision": decision, "jobs": done}


def classify_failure(job: dict[str, Any], result: dict[str, Any] | None,
                     rr: dict[str, Any] | None) -> tuple[str, str]:
    """('retry' or 'fail', why) for a failed attempt: killed from outside -> retry."""
    if result is None:
        return "retry", "no result recorded (the runner may have died before reporting)"
    report = diagnose_failure(result, job, rr)
    rc = result.get("return_code")
    if report["likely_oom"]:
        return "retry", f"{report['oom_reason']}; consider recover_workflow to raise its memory"
    if report["likely_timeout"]:
        return "retry", f"{report['timeout_reason']}; consider recover_workflow to raise its runtime"
    if rc in TRANSIENT_CODES:
        return "retry", f"return code {rc}: killed by a signal or its runner went away (transient)"
    return "fail", f"return code {rc}: the command itself failed; retrying would likely fail again"


def _parse_spec(spec_text: str, fmt: str) -> tuple[Any, set[str], list[Any]]:
    from torc.spec.load import SpecError, parse_text, spec_from_data
    from torc.spec.resolve import resolve

    fmt = fmt.lower().lstrip(".")
    fmt = "yaml" if fmt == "yml" else fmt
    if fmt not in SPEC_FORMATS:
        raise SpecError("<spec>", [f"unknown format {fmt!r}; expected one of {', '.join(SPEC_FORMATS)}"])
    data = parse_text(spec_text, fmt, "<spec>")
    spec, broken = spec_from_data(data, "<spec>")
    return spec, broken, resolve(spec, "<spec>", broken)


def _child_env() -> dict[str, str]:
    return dict(os.environ)


READ_ONLY = ("list_workflows", "get_workflow_status", "list_jobs", "get_job_details", "get_job_logs",
             "explain_job_failure", "list_results", "check_resource_utilization", "validate_workflow_spec",
             "plan_recovery", "list_pending_failed_jobs")
MUTATING = ("create_workflow", "run_workflow", "submit_workflow", "cancel_workflow", "reset_failed_jobs",
            "recover_workflow", "resolve_pending_failed_jobs")

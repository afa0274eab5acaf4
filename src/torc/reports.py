"""Reports over a workflow's records: summary, resource utilization with OOM/timeout diagnosis, and
results with their log files.

Everything here is a pure function of records already fetched through the API (jobs, results,
resource requirements, compute nodes as the server returns them); nothing is printed and nothing is
sent. The CLI (`torc reports ...`) and `torc recover` build on these.

Units in the returned dicts are raw numbers (bytes, seconds, minutes, CPU percent); the `format_*`
helpers turn them into text for tables.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from torc.core.errors import TorcError
from torc.core.status import FINISHED, JobStatus
from torc.core.units import parse_duration_seconds, parse_memory_bytes

Record = Mapping[str, Any]

ALL_STATUSES = [s.wire for s in JobStatus]
FAILED_RESULT_STATUSES = frozenset({"failed", "terminated", "pending_failed"})

# Diagnosis thresholds (torc's `recover` rules, see the reference §5).
UNDER_USE_FRACTION = 0.5  # --all: a resource used below half of what was requested
OOM_MAX_RUNTIME_FRACTION = 0.8  # SIGKILL this early in the runtime is a memory kill, not a time limit
TIMEOUT_RUNTIME_FRACTION = 0.9  # ran past this fraction of the requested runtime
NEAR_LIMIT_FRACTION = 0.8  # a SIGTERM/SIGXCPU this close to the limit is the limit

# Return codes: a shell reports a signal as 128+N, the runner as -N (project decision).
SIGKILL_CODES = frozenset({-signal.SIGKILL, 128 + signal.SIGKILL})  # -9, 137
SIGXCPU_CODES = frozenset({-signal.SIGXCPU, 128 + signal.SIGXCPU})  # -24, 152
SIGTERM_CODES = frozenset({-signal.SIGTERM, 128 + signal.SIGTERM})  # -15, 143


# ---- formatting (for tables) -------------------------------------------------------------------


def format_bytes(value: float | None) -> str:
    """1610612736 -> '1.50 GiB'; None -> ''."""
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.2f} TiB"


def format_seconds(value: float | None) -> str:
    """0.5 -> '0.50 s', 42.25 -> '42.2 s', 150 -> '2.5 min', 7200 -> '2.00 h'; None -> ''."""
    if value is None:
        return ""
    seconds = float(value)
    if abs(seconds) < 10:
        return f"{seconds:.2f} s"
    if abs(seconds) < 60:
        return f"{seconds:.1f} s"
    if abs(seconds) < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def format_minutes(value: float | None) -> str:
    return "" if value is None else format_seconds(float(value) * 60)


def format_percent(value: float | None) -> str:
    return "" if value is None else f"{float(value):.1f}%"


def format_quantity(value: float | None, unit: str) -> str:
    """A violation's specified/peak_used value in its unit (bytes, seconds or percent)."""
    if unit == "bytes":
        return format_bytes(value)
    if unit == "seconds":
        return format_seconds(value)
    return format_percent(value)


# ---- small helpers -----------------------------------------------------------------------------


def _status(value: Any) -> str:
    try:
        return JobStatus.parse(value).wire
    except TorcError:
        return str(value)


def _attempt(result: Record) -> int:
    return int(result.get("attempt_id") or 1)


def _order_key(result: Record) -> tuple[int, int, int]:
    return int(result.get("run_id") or 0), _attempt(result), int(result.get("id") or 0)


def latest_per_job(results: Iterable[Record]) -> list[Record]:
    """The newest result (highest run, then attempt, then id) of each job, in job id order."""
    latest: dict[int, Record] = {}
    for result in results:
        job_id = result["job_id"]
        if job_id not in latest or _order_key(result) > _order_key(latest[job_id]):
            latest[job_id] = result
    return [latest[job_id] for job_id in sorted(latest)]


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _memory_bytes(rr: Record | None) -> int | None:
    if not rr or not rr.get("memory"):
        return None
    try:
        return parse_memory_bytes(rr["memory"])
    except TorcError:
        return None


def _runtime_seconds(rr: Record | None) -> float | None:
    if not rr or not rr.get("runtime"):
        return None
    try:
        seconds = parse_duration_seconds(rr["runtime"])
    except TorcError:
        return None
    return seconds if seconds > 0 else None


def _exec_seconds(result: Record) -> float | None:
    minutes = result.get("exec_time_minutes")
    return None if minutes is None else float(minutes) * 60


def _change(used: float, specified: float) -> str:
    """How far `used` is over (+) or under (-) `specified`: '+35.2%'."""
    return f"{(used / specified - 1) * 100:+.1f}%"


def _requirements_by_id(requirements: Iterable[Record] | Mapping[int, Record]) -> dict[int, Record]:
    if isinstance(requirements, Mapping):
        return {int(k): v for k, v in requirements.items()}
    return {rr["id"]: rr for rr in requirements}


# ---- summary -----------------------------------------------------------------------------------


def summarize(workflow: Record, jobs: Iterable[Record], results: Iterable[Record], *,
              is_canceled: bool = False) -> dict[str, Any]:
    """Counts per status (all 11, zeros included), run-time statistics and failures of a workflow.

    `results` may hold every run and attempt (results list --all-runs): runs and attempts are counted
    over all of them, while the run-time statistics use each job's latest result only.
    The workflow is complete when it is canceled or every job is completed, failed, canceled,
    terminated or disabled (the server's rule).
    """
    jobs = list(jobs)
    results = list(results)
    counts = dict.fromkeys(ALL_STATUSES, 0)
    failed: list[str] = []
    terminated: list[str] = []
    unfinished = 0
    for job in sorted(jobs, key=lambda j: j["id"]):
        status = _status(job.get("status"))
        counts[status] = counts.get(status, 0) + 1
        if status == "failed":
            failed.append(job["name"])
        elif status == "terminated":
            terminated.append(job["name"])
        if status not in {s.wire for s in FINISHED}:
            unfinished += 1
    current = latest_per_job(results)
    times = [float(r["exec_time_minutes"]) for r in current if r.get("exec_time_minutes") is not None]
    stamped = [(t, r["completion_time"]) for r in results if (t := _parse_time(r.get("completion_time")))]
    first = min(stamped, key=lambda pair: pair[0])[1] if stamped else None
    last = max(stamped, key=lambda pair: pair[0])[1] if stamped else None
    return {
        "workflow_id": workflow.get("id"),
        "workflow_name": workflow.get("name"),
        "user": workflow.get("user"),
        "is_complete": is_canceled or unfinished == 0,
        "is_canceled": is_canceled,
        "total_jobs": len(jobs),
        "status_counts": counts,
        "jobs_with_results": len(current),
        "num_runs": len({r.get("run_id") for r in results}),
        "num_attempts": len(results),
        "max_attempt_id": max((_attempt(r) for r in results), default=0),
        "total_exec_time_minutes": sum(times),
        "mean_exec_time_minutes": sum(times) / len(times) if times else None,
        "max_exec_time_minutes": max(times) if times else None,
        "total_exec_time_all_attempts_minutes": sum(float(r.get("exec_time_minutes") or 0) for r in results),
        "failed_jobs": failed,
        "terminated_jobs": terminated,
        "first_completion_time": first,
        "last_completion_time": last,
    }


# ---- resource utilization ----------------------------------------------------------------------


def _entry(result: Record, job: Record | None, resource_type: str, specified: float, used: float,
           unit: str) -> dict[str, Any]:
    return {
        "job_id": result["job_id"],
        "job_name": job.get("name") if job else None,
        "run_id": result.get("run_id"),
        "attempt_id": _attempt(result),
        "resource_type": resource_type,
        "unit": unit,
        "specified": specified,
        "peak_used": used,
        "over_utilization": _change(used, specified),
        "utilization_percent": round(used / specified * 100, 1),
    }


def _measurements(result: Record, rr: Record | None) -> list[tuple[str, float | None, float | None, str]]:
    """(resource_type, specified, used, unit) for memory, cpu and runtime; None where unknown."""
    num_cpus = (rr or {}).get("num_cpus")
    peak_memory = result.get("peak_memory_bytes")
    peak_cpu = result.get("peak_cpu_percent")
    return [
        ("memory", _memory_bytes(rr), None if peak_memory is None else float(peak_memory), "bytes"),
        ("cpu", float(num_cpus) * 100 if num_cpus else None, None if peak_cpu is None else float(peak_cpu),
         "percent"),
        ("runtime", _runtime_seconds(rr), _exec_seconds(result), "seconds"),
    ]


def diagnose_failure(result: Record, job: Record | None, rr: Record | None) -> dict[str, Any]:
    """Why a failed/terminated result probably failed: out of memory, out of time, or unknown.

    OOM: peak memory above the requested memory, or killed by SIGKILL (137 / -9) having used less
    than 80% of its runtime (or with no runtime to compare). Timeout: ran longer than 90% of the
    requested runtime, or got SIGXCPU (152 / -24) or SIGTERM (143 / -15) within 80% of the limit
    (SIGXCPU with no runtime to compare counts too). Both can be true.
    """
    rc = result.get("return_code")
    memory = _memory_bytes(rr)
    runtime = _runtime_seconds(rr)
    used = _exec_seconds(result)
    peak = result.get("peak_memory_bytes")
    fraction = used / runtime if used is not None and runtime else None

    oom_reason = None
    if peak is not None and memory is not None and peak > memory:
        oom_reason = (f"peak memory {format_bytes(peak)} exceeded the requested {format_bytes(memory)} "
                      f"({_change(peak, memory)})")
    elif rc in SIGKILL_CODES and (fraction is None or fraction < OOM_MAX_RUNTIME_FRACTION):
        share = "with no runtime limit to compare" if fraction is None else f"after {fraction:.0%} of its runtime"
        oom_reason = f"killed by SIGKILL (return code {rc}) {share}"

    timeout_reason = None
    if fraction is not None and fraction > TIMEOUT_RUNTIME_FRACTION:
        timeout_reason = (f"ran {format_seconds(used)}, {fraction:.0%} of the requested runtime "
                          f"{format_seconds(runtime)}")
    elif rc in SIGXCPU_CODES and (fraction is None or fraction >= NEAR_LIMIT_FRACTION):
        timeout_reason = f"killed by SIGXCPU (return code {rc})" + (
            f" after {fraction:.0%} of its runtime" if fraction is not None else "")
    elif rc in SIGTERM_CODES and fraction is not None and fraction >= NEAR_LIMIT_FRACTION:
        timeout_reason = f"terminated by SIGTERM (return code {rc}) after {fraction:.0%} of its runtime"

    return {
        "job_id": result["job_id"],
        "job_name": job.get("name") if job else None,
        "run_id": result.get("run_id"),
        "attempt_id": _attempt(result),
        "status": _status(result.get("status")),
        "return_code": rc,
        "likely_oom": oom_reason is not None,
        "oom_reason": oom_reason,
        "likely_timeout": timeout_reason is not None,
        "timeout_reason": timeout_reason,
        "peak_memory_bytes": peak,
        "peak_memory_formatted": format_bytes(peak) if peak is not None else None,
        "memory": (rr or {}).get("memory"),
        "memory_bytes": memory,
        "exec_time_minutes": result.get("exec_time_minutes"),
        "runtime": (rr or {}).get("runtime"),
        "runtime_seconds": runtime,
        "runtime_fraction": None if fraction is None else round(fraction, 4),
        "resource_requirements_id": (rr or {}).get("id"),
    }


def check_resource_utilization(jobs: Iterable[Record], results: Iterable[Record],
                               requirements: Iterable[Record] | Mapping[int, Record],
                               include_all: bool = False, include_failed: bool = False) -> dict[str, Any]:
    """Compare each result's peak use with its job's resource requirements.

    Checks every result given (pass the current results, or one run's latest per job):
    memory (peak_memory_bytes vs RR memory), CPU (peak_cpu_percent vs 100 x num_cpus) and runtime
    (exec time vs RR runtime). Results without peak data skip the memory/CPU checks but are still
    checked for runtime. `under_utilized` (with include_all) lists completed results that used less
    than half of a requested resource; `failed_jobs` (with include_failed) diagnoses every failed,
    terminated or pending_failed result (see diagnose_failure).
    """
    job_by_id = {job["id"]: job for job in jobs}
    rr_by_id = _requirements_by_id(requirements)
    results = sorted(results, key=lambda r: (r["job_id"], *_order_key(r)))
    violations: list[dict[str, Any]] = []
    under: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    without_peak = 0
    for result in results:
        job = job_by_id.get(result["job_id"])
        rr = rr_by_id.get((job or {}).get("resource_requirements_id"))
        status = _status(result.get("status"))
        if result.get("peak_memory_bytes") is None and result.get("peak_cpu_percent") is None:
            without_peak += 1
        for resource_type, specified, used, unit in _measurements(result, rr):
            if specified is None or used is None or specified <= 0:
                continue
            if used > specified:
                violations.append(_entry(result, job, resource_type, specified, used, unit))
            elif include_all and status == "completed" and used < UNDER_USE_FRACTION * specified:
                under.append(_entry(result, job, resource_type, specified, used, unit))
        if include_failed and status in FAILED_RESULT_STATUSES:
            failed.append(diagnose_failure(result, job, rr))
    report: dict[str, Any] = {
        "total_results": len(results),
        "results_without_peak_data": without_peak,
        "over_utilization_count": len(violations),
        "violations": violations,
    }
    if include_all:
        report["under_utilized"] = under
    if include_failed:
        report["failed_jobs"] = failed
        report["likely_oom_count"] = sum(1 for f in failed if f["likely_oom"])
        report["likely_timeout_count"] = sum(1 for f in failed if f["likely_timeout"])
    return report


# ---- results with log paths --------------------------------------------------------------------


def stdio_paths(output_dir: Path | str, workflow_id: int, job_id: int, run_id: int, attempt_id: int) -> tuple[Path, Path]:
    """Where the local and Slurm runners write a job attempt's stdout and stderr."""
    stem = Path(output_dir) / "job_stdio" / f"job_wf{workflow_id}_j{job_id}_r{run_id}_a{attempt_id}"
    return stem.with_suffix(".o"), stem.with_suffix(".e")


def _existing(path: Path) -> str | None:
    return str(path) if path.is_file() else None


def _slurm_job_id(node: Record | None) -> str | None:
    scheduler = (node or {}).get("scheduler")
    if isinstance(scheduler, Mapping):
        for key in ("slurm_job_id", "scheduler_id", "job_id"):
            if scheduler.get(key) is not None:
                return str(scheduler[key])
    return None


def _runner_logs(output_dir: Path, workflow_id: int, run_id: int, node: Record | None) -> tuple[str | None, str | None,
                                                                                                str | None, str | None]:
    """(runner log, slurm job id, slurm stdout, slurm stderr) that exist for the result's compute node."""
    slurm_id = _slurm_job_id(node)
    runner_log = None
    if slurm_id is not None:
        pid = (node or {}).get("pid")
        pattern = f"job_runner_slurm_wf{workflow_id}_sl{slurm_id}_n*_pid{pid if pid is not None else '*'}.log"
        found = sorted(output_dir.glob(pattern))
        runner_log = str(found[0]) if found else None
    if runner_log is None:
        host = (node or {}).get("hostname")
        if host:
            runner_log = _existing(output_dir / f"job_runner_{host}_wf{workflow_id}_r{run_id}.log")
    slurm_out = slurm_err = None
    if slurm_id is not None:
        slurm_out = _existing(output_dir / f"slurm_output_wf{workflow_id}_sl{slurm_id}.o")
        slurm_err = _existing(output_dir / f"slurm_output_wf{workflow_id}_sl{slurm_id}.e")
    return runner_log, slurm_id, slurm_out, slurm_err


def result_rows(results: Iterable[Record], jobs: Iterable[Record], output_dir: Path | str, workflow_id: int,
                compute_nodes: Iterable[Record] = ()) -> list[dict[str, Any]]:
    """One row per result: status, return code, times, compute node and the log files of that attempt.

    Log paths are given only for files that exist under output_dir (None otherwise); `exists` says
    whether the attempt's stdout or stderr file was found. Compute nodes (optional) add the hostname
    and the runner/Slurm logs.
    """
    output_dir = Path(output_dir)
    names = {job["id"]: job.get("name") for job in jobs}
    nodes = {node["id"]: node for node in compute_nodes}
    rows = []
    for result in sorted(results, key=lambda r: (r["job_id"], *_order_key(r))):
        run_id = int(result.get("run_id") or 0)
        attempt = _attempt(result)
        stdout, stderr = stdio_paths(output_dir, workflow_id, result["job_id"], run_id, attempt)
        node = nodes.get(result.get("compute_node_id"))
        runner_log, slurm_id, slurm_out, slurm_err = _runner_logs(output_dir, workflow_id, run_id, node)
        job_stdout, job_stderr = _existing(stdout), _existing(stderr)
        rows.append({
            "result_id": result.get("id"),
            "job_id": result["job_id"],
            "job_name": names.get(result["job_id"]),
            "run_id": run_id,
            "attempt_id": attempt,
            "status": _status(result.get("status")),
            "return_code": result.get("return_code"),
            "exec_time_minutes": result.get("exec_time_minutes"),
            "completion_time": result.get("completion_time"),
            "compute_node_id": result.get("compute_node_id"),
            "hostname": (node or {}).get("hostname"),
            "compute_node_type": (node or {}).get("compute_node_type"),
            "peak_memory_bytes": result.get("peak_memory_bytes"),
            "peak_cpu_percent": result.get("peak_cpu_percent"),
            "job_stdout": job_stdout,
            "job_stderr": job_stderr,
            "exists": job_stdout is not None or job_stderr is not None,
            "job_runner_log": runner_log,
            "slurm_job_id": slurm_id,
            "slurm_stdout": slurm_out,
            "slurm_stderr": slurm_err,
        })
    return rows

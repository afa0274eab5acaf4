"""`torc reports`: summary, results with their log files, and resource utilization checks.

The numbers come from torc.reports (pure functions over records fetched here). `-f json` prints
one JSON object per command with raw numbers (bytes, minutes, seconds, CPU percent); tables show
them human-readable. Notes go to stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from torc.cli.common import Record, note, pass_session, show_record, show_rows
from torc.cli.output import emit
from torc.cli.resource_cmds import id_list_option
from torc.cli.session import Session
from torc.reports import (
    ALL_STATUSES,
    check_resource_utilization,
    format_bytes,
    format_minutes,
    format_quantity,
    latest_per_job,
    result_rows,
    summarize,
)

workflow_arg = click.argument("workflow_id", type=int)

RESULT_TABLE_COLUMNS = ["job_id", "job_name", "run", "attempt", "status", "return_code", "exec_time", "completed",
                        "node", "stdout", "stderr"]
VIOLATION_COLUMNS = ["job_id", "job_name", "resource", "specified", "peak_used", "over_utilization"]
UNDER_COLUMNS = ["job_id", "job_name", "resource", "specified", "peak_used", "utilization"]
FAILED_COLUMNS = ["job_id", "job_name", "status", "return_code", "diagnosis", "reason", "peak_memory", "memory",
                  "exec_time", "runtime"]


@click.group()
def reports() -> None:
    """Reports: workflow summary, results with log paths, resource utilization."""


# ---- summary ----------------------------------------------------------------------------------


def summary_table(summary: Record) -> Record:
    """The summary as one field/value table: every status count on its own line."""
    row: dict[str, Any] = {
        "workflow_id": summary["workflow_id"], "workflow_name": summary["workflow_name"], "user": summary["user"],
        "is_complete": summary["is_complete"], "total_jobs": summary["total_jobs"],
    }
    row.update({f"jobs {status}": summary["status_counts"][status] for status in ALL_STATUSES})
    row.update({
        "jobs with results": summary["jobs_with_results"], "runs": summary["num_runs"],
        "attempts (result rows)": summary["num_attempts"],
        "total exec time": format_minutes(summary["total_exec_time_minutes"]),
        "mean exec time": format_minutes(summary["mean_exec_time_minutes"]),
        "max exec time": format_minutes(summary["max_exec_time_minutes"]),
        "exec time, all attempts": format_minutes(summary["total_exec_time_all_attempts_minutes"]),
        "first completion": summary["first_completion_time"] or "",
        "last completion": summary["last_completion_time"] or "",
        "failed jobs": ", ".join(summary["failed_jobs"]),
        "terminated jobs": ", ".join(summary["terminated_jobs"]),
    })
    return row


@reports.command("summary")
@workflow_arg
@pass_session
def summary_cmd(session: Session, workflow_id: int) -> None:
    """Job counts for every status, run times and failures of a workflow (every run and attempt)."""
    client = session.client()
    workflow = client.get(f"workflows/{workflow_id}")
    jobs = list(client.iter_items("jobs", workflow_id=workflow_id))
    results = list(client.iter_items("results", workflow_id=workflow_id, all_runs=True))
    state = client.get(f"workflows/{workflow_id}/is_complete")
    summary = summarize(workflow, jobs, results, is_canceled=bool(state.get("is_canceled")))
    if not summary["is_complete"]:
        note(f"Workflow {workflow_id} is not complete yet; this is a snapshot.")
    if session.fmt == "json":
        emit("json", summary)
    else:
        show_record(session, summary_table(summary), f"summary of workflow {workflow_id}")


# ---- results ----------------------------------------------------------------------------------


def result_table_row(row: Record) -> Record:
    return {"job_id": row["job_id"], "job_name": row["job_name"], "run": row["run_id"], "attempt": row["attempt_id"],
            "status": row["status"], "return_code": row["return_code"],
            "exec_time": format_minutes(row["exec_time_minutes"]), "completed": row["completion_time"],
            "node": row["hostname"] or row["compute_node_id"], "stdout": row["job_stdout"] or "",
            "stderr": row["job_stderr"] or ""}


@reports.command("results")
@workflow_arg
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("torc_output"),
              show_default=True, help="The runner's output directory (where job_stdio/ is).")
@click.option("--all-runs", is_flag=True, help="Every run and attempt, not only each job's current result.")
@id_list_option("-j", "--job-ids", help="Only these jobs")
@pass_session
def results_cmd(session: Session, workflow_id: int, output_dir: Path, all_runs: bool,
                job_ids: list[int] | None) -> None:
    """Results with status, return code, times, compute node and the paths of their log files.

    Only log files that exist under OUTPUT_DIR are listed.
    """
    client = session.client()
    workflow = client.get(f"workflows/{workflow_id}")
    results = list(client.iter_items("results", workflow_id=workflow_id, all_runs=all_runs or None))
    if job_ids:
        wanted = set(job_ids)
        results = [r for r in results if r["job_id"] in wanted]
    jobs = list(client.iter_items("jobs", workflow_id=workflow_id))
    nodes = list(client.iter_items("compute_nodes", workflow_id=workflow_id)) if results else []
    rows = result_rows(results, jobs, output_dir, workflow_id, nodes)
    if rows and not any(r["exists"] for r in rows):
        note(f"No job log files found under {output_dir / 'job_stdio'}; pass -o with the runner's output directory.")
    if session.fmt == "json":
        emit("json", {"workflow_id": workflow_id, "workflow_name": workflow.get("name"),
                      "workflow_user": workflow.get("user"), "output_dir": str(output_dir), "all_runs": all_runs,
                      "total_results": len(rows), "results": rows})
    else:
        show_rows(session, rows, RESULT_TABLE_COLUMNS, f"results of workflow {workflow_id}", result_table_row)


# ---- resource utilization ---------------------------------------------------------------------


def usage_row(entry: Record) -> Record:
    unit = entry["unit"]
    return {"job_id": entry["job_id"], "job_name": entry["job_name"], "resource": entry["resource_type"].capitalize()
            if entry["resource_type"] != "cpu" else "CPU",
            "specified": format_quantity(entry["specified"], unit), "peak_used": format_quantity(entry["peak_used"], unit),
            "over_utilization": entry["over_utilization"], "utilization": f"{entry['utilization_percent']:.1f}%"}


def failed_row(entry: Record) -> Record:
    causes = [name for flag, name in (("likely_oom", "OOM"), ("likely_timeout", "timeout")) if entry[flag]]
    reasons = [entry[key] for key in ("oom_reason", "timeout_reason") if entry[key]]
    return {"job_id": entry["job_id"], "job_name": entry["job_name"], "status": entry["status"],
            "return_code": entry["return_code"], "diagnosis": " + ".join(causes) or "unknown",
            "reason": "; ".join(reasons), "peak_memory": format_bytes(entry["peak_memory_bytes"]),
            "memory": entry["memory"] or "", "exec_time": format_minutes(entry["exec_time_minutes"]),
            "runtime": entry["runtime"] or ""}


@reports.command("check-resource-utilization")
@workflow_arg
@click.option("-r", "--run-id", type=int, help="Check this run (each job's last attempt in it) instead of the "
                                                 "current results.")
@click.option("-a", "--all", "include_all", is_flag=True, help="Also list jobs that used under half of a "
                                                                "requested resource.")
@click.option("--include-failed", is_flag=True, help="Also diagnose failed and terminated jobs (likely OOM or "
                                                     "timeout).")
@pass_session
def check_utilization_cmd(session: Session, workflow_id: int, run_id: int | None, include_all: bool,
                          include_failed: bool) -> None:
    """Compare peak memory, CPU and run time of each result with the job's resource requirements."""
    client = session.client()
    if run_id is None:
        results = list(client.iter_items("results", workflow_id=workflow_id))
    else:
        results = latest_per_job(client.iter_items("results", workflow_id=workflow_id, run_id=run_id, all_runs=True))
    jobs = list(client.iter_items("jobs", workflow_id=workflow_id))
    requirements = list(client.iter_items("resource_requirements", workflow_id=workflow_id))
    report = check_resource_utilization(jobs, results, requirements, include_all=include_all,
                                        include_failed=include_failed)
    report = {"workflow_id": workflow_id, "run_id": run_id, **report}
    if session.fmt == "json":
        emit("json", report)
        return
    if report["results_without_peak_data"]:
        note(f"{report['results_without_peak_data']} of {report['total_results']} results have no peak memory or CPU "
             "data (resource monitoring off?); only their run time was checked.")
    violations = report["violations"]
    if violations:
        click.echo(f"Found {len(violations)} resource over-utilization violation(s) in {report['total_results']} "
                   "result(s):")
        show_rows(session, violations, VIOLATION_COLUMNS, "over-utilization", usage_row)
    else:
        click.echo(f"All {report['total_results']} result(s) stayed within their resource requirements.")
    if include_all:
        show_rows(session, report["under_utilized"], UNDER_COLUMNS, "under-utilized resources (< 50% used)",
                  usage_row)
    if include_failed:
        show_rows(session, report["failed_jobs"], FAILED_COLUMNS, "failed jobs", failed_row)


GROUPS = [reports]

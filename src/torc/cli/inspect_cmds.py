"""Read-only commands to look at workflows, jobs and results."""

from __future__ import annotations

import click

from torc.cli.output import emit
from torc.cli.session import Session


@click.command()
@click.pass_obj
def ping(session: Session) -> None:
    """Check that the server answers."""
    client = session.client()
    emit(session.fmt, {**client.ping(), "url": client.url, "version": client.get("version")})


@click.group()
def workflows() -> None:
    """Workflows: list, show, status."""


@workflows.command("list")
@click.option("-l", "--limit", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0)
@click.pass_obj
def workflows_list(session: Session, limit: int, offset: int) -> None:
    """List workflows."""
    page = session.client().get("workflows", limit=limit, offset=offset)
    emit(session.fmt, page["items"], ["id", "name", "user", "description", "timestamp"], "workflows")


@workflows.command("get")
@click.argument("workflow_id", type=int)
@click.pass_obj
def workflows_get(session: Session, workflow_id: int) -> None:
    """Show one workflow."""
    emit(session.fmt, session.client().get(f"workflows/{workflow_id}"))


@workflows.command("status")
@click.argument("workflow_id", type=int)
@click.pass_obj
def workflows_status(session: Session, workflow_id: int) -> None:
    """Run id, cancel/archive flags and job counts by status."""
    client = session.client()
    status = client.get(f"workflows/{workflow_id}/status")
    counts: dict[str, int] = {}
    for job in client.iter_items("jobs", workflow_id=workflow_id):
        counts[job["status"]] = counts.get(job["status"], 0) + 1
    emit(session.fmt, {**status, "job_counts": counts} if session.fmt == "json"
         else {**status, **{f"jobs {k}": v for k, v in sorted(counts.items())}})


@click.group()
def jobs() -> None:
    """Jobs of a workflow."""


@jobs.command("list")
@click.argument("workflow_id", type=int)
@click.option("-s", "--status", default=None, help="Only jobs with this status.")
@click.pass_obj
def jobs_list(session: Session, workflow_id: int, status: str | None) -> None:
    """List the jobs of a workflow."""
    items = list(session.client().iter_items("jobs", workflow_id=workflow_id, status=status))
    emit(session.fmt, items, ["id", "name", "status", "attempt_id", "command"], "jobs")


@click.group()
def results() -> None:
    """Job results (return codes, run times)."""


@results.command("list")
@click.argument("workflow_id", type=int)
@click.option("--all-runs", is_flag=True, help="Every attempt of every run, not only current results.")
@click.pass_obj
def results_list(session: Session, workflow_id: int, all_runs: bool) -> None:
    """List job results."""
    items = list(session.client().iter_items("results", workflow_id=workflow_id, all_runs=all_runs or None))
    emit(session.fmt, items, ["id", "job_id", "run_id", "attempt_id", "status", "return_code", "exec_time_minutes"],
         "results")


COMMANDS = [ping, workflows, jobs, results]

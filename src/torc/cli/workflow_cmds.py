"""`torc workflows ...`: create, inspect, control and move whole workflows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from torc.cli.common import confirm, done, note, paging_options, pass_session, show_record, update_record
from torc.cli.output import emit
from torc.cli.session import Session
from torc.client import manager
from torc.client.export import export_workflow, import_workflow
from torc.core.errors import InvalidInputError
from torc.core.graph import collapse_names, stages

WORKFLOW_COLUMNS = ["id", "name", "user", "description", "timestamp"]


@click.group()
def workflows() -> None:
    """Workflows: create from specs, list, inspect, initialize, cancel, reset, export and import."""


@workflows.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False))
@click.option("--no-resource-monitoring", is_flag=True, help="Do not turn on per-job resource monitoring.")
@click.option("--skip-checks", is_flag=True, help="Skip checks that need the cluster (kept for torc compatibility).")
@click.option("--dry-run", is_flag=True, help="Validate and summarize the spec; create nothing.")
@pass_session
def create(session: Session, spec: str, no_resource_monitoring: bool, skip_checks: bool, dry_run: bool) -> None:
    """Create a workflow from a spec file (YAML, JSON, JSON5 or KDL)."""
    from torc.client.from_spec import create_from_file, dry_run_summary

    if dry_run:
        report = dry_run_summary(spec)
        if session.fmt == "json":
            emit("json", report)
        else:
            _print_dry_run(spec, report)
        if not report["valid"]:
            raise SystemExit(1)
        return
    workflow_id = create_from_file(session.client(), spec, monitoring=not no_resource_monitoring)
    done(session, f"Created workflow {workflow_id} from {spec}", {"workflow_id": workflow_id})


def _print_dry_run(spec: str, report: dict[str, Any]) -> None:
    """Every problem on its own line (a table cell would cut them off), or the summary of a valid spec."""
    if not report["valid"]:
        click.echo(f"{spec} is not valid; {len(report['errors'])} problem(s):")
        for problem in report["errors"]:
            click.echo(f"  - {problem}")
        return
    summary = report["summary"]
    click.echo(f"{spec} is valid. Nothing was created (dry run).")
    for key, value in summary.items():
        if key == "job_names":
            value = ", ".join(collapse_names(value, limit=20))
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        click.echo(f"  {key.replace('_', ' ')}: {value}")
    for warning in report["warnings"]:
        click.echo(f"warning: {warning}")


@workflows.command()
@click.option("-n", "--name", required=True, help="Workflow name.")
@click.option("-d", "--description", default=None, help="Description.")
@pass_session
def new(session: Session, name: str, description: str | None) -> None:
    """Create an empty workflow (add jobs with `torc jobs create`)."""
    from torc.client.from_spec import current_user

    emit(session.fmt, session.client().create_workflow(name, user=current_user(), description=description),
         WORKFLOW_COLUMNS)


@workflows.command("list")
@paging_options()
@click.option("--archived-only", is_flag=True, help="Only archived workflows.")
@click.option("--include-archived", is_flag=True, help="Archived workflows too.")
@click.option("-u", "--user", default=None, help="Only workflows of this user.")
@pass_session
def list_(session: Session, limit: int, offset: int, sort_by: str | None, reverse_sort: bool, archived_only: bool,
          include_archived: bool, user: str | None) -> None:
    """List workflows (archived ones are hidden unless asked for)."""
    archived = True if archived_only else (None if include_archived else False)
    page = session.client().get("workflows", limit=limit, offset=offset, sort_by=sort_by,
                                reverse_sort=reverse_sort or None, is_archived=archived, user=user)
    emit(session.fmt, page["items"], WORKFLOW_COLUMNS, "workflows")


@workflows.command()
@click.argument("workflow_id", type=int)
@pass_session
def get(session: Session, workflow_id: int) -> None:
    """Show one workflow."""
    show_record(session, session.client().get(f"workflows/{workflow_id}"))


@workflows.command()
@click.argument("workflow_id", type=int)
@click.option("-n", "--name", default=None)
@click.option("-d", "--description", default=None)
@click.option("--owner-user", default=None, help="Give the workflow to another user.")
@pass_session
def update(session: Session, workflow_id: int, name: str | None, description: str | None,
           owner_user: str | None) -> None:
    """Change a workflow's name, description or owner."""
    changes = {"name": name, "description": description, "user": owner_user}
    show_record(session, update_record(session, f"workflows/{workflow_id}", changes))


@workflows.command()
@click.argument("workflow_id", type=int)
@pass_session
def cancel(session: Session, workflow_id: int) -> None:
    """Cancel a workflow: runners stop, pending and running jobs are canceled, and its pending or
    active Slurm allocations are canceled (scancel)."""
    from torc.slurm.submit import cancel_workflow

    record, slurm_ids, problem = cancel_workflow(session.client(), workflow_id)
    if slurm_ids:
        note(f"canceled Slurm job(s) {', '.join(slurm_ids)}")
    if problem:
        note(f"warning: the workflow is canceled but its Slurm allocations may not be: {problem}")
    show_record(session, record)


@workflows.command()
@click.argument("workflow_ids", type=int, nargs=-1, required=True)
@click.option("--no-prompts", is_flag=True, help="Do not ask for confirmation.")
@pass_session
def delete(session: Session, workflow_ids: tuple[int, ...], no_prompts: bool) -> None:
    """Delete workflows and everything in them."""
    client = session.client()
    names = {wid: client.get(f"workflows/{wid}")["name"] for wid in workflow_ids}
    confirm(session, "Delete " + ", ".join(f"{wid} ({n})" for wid, n in names.items()) + "?", no_prompts)
    deleted = [client.delete(f"workflows/{wid}") for wid in workflow_ids]
    emit(session.fmt, deleted, WORKFLOW_COLUMNS, "deleted workflows")


@workflows.command()
@click.argument("archived", type=click.BOOL)
@click.argument("workflow_ids", type=int, nargs=-1, required=True)
@pass_session
def archive(session: Session, archived: bool, workflow_ids: tuple[int, ...]) -> None:
    """Archive (true) or unarchive (false) workflows; archived ones are hidden and cannot run."""
    client = session.client()
    out = []
    for wid in workflow_ids:
        status = client.get(f"workflows/{wid}/status")
        out.append(client.put(f"workflows/{wid}/status", {**status, "is_archived": archived}))
    emit(session.fmt, out, ["id", "run_id", "is_archived", "is_canceled"], "workflow status")


@workflows.command()
@click.argument("workflow_id", type=int)
@click.option("--force", is_flag=True, help="Start even if required inputs are missing.")
@click.option("--no-prompts", is_flag=True, help="Do not ask before resetting a workflow that has run.")
@click.option("--dry-run", is_flag=True, help="Only report what would block or be overwritten.")
@pass_session
def initialize(session: Session, workflow_id: int, force: bool, no_prompts: bool, dry_run: bool) -> None:
    """Start a fresh run: reset every job, then mark jobs ready or blocked."""
    client = session.client()
    if dry_run:
        show_record(session, manager.check_initialize(client, workflow_id).__dict__)
        return
    if not client.get(f"workflows/{workflow_id}/is_uninitialized")["is_uninitialized"]:
        confirm(session, f"Workflow {workflow_id} has run before; reset all of its jobs?", no_prompts)
    plan = manager.initialize(client, workflow_id, force=force)
    for path in plan.existing_outputs:
        note(f"warning: output file already exists and will be overwritten by its job: {path}")
    _report_counts(session, workflow_id)


@workflows.command()
@click.argument("workflow_id", type=int)
@click.option("--force", is_flag=True, help="Reinitialize even while jobs are running or pending.")
@click.option("--dry-run", is_flag=True, help="List what would rerun and why; change nothing.")
@click.option("--hash", "--content-hash", "content_hash", is_flag=True,
              help="Compare input files by content (SHA-256), not modification time: a touch reruns nothing. "
                   "Records the inputs' hashes afterwards; files without a recorded hash are compared by time.")
@pass_session
def reinitialize(session: Session, workflow_id: int, force: bool, dry_run: bool, content_hash: bool) -> None:
    """Rerun only what changed: changed inputs, missing outputs, changed commands, and their downstream.

    Completed jobs whose inputs, command, relationships and input user data are unchanged stay
    completed; failed and canceled jobs are not rerun (use `reset-status --failed-only`). Refused,
    changing nothing, while jobs are running or pending, unless --force."""
    client = session.client()
    plan = manager.reinitialize(client, workflow_id, force=force, dry_run=dry_run, content_hash=content_hash)
    if dry_run:
        counts = client.get(f"workflows/{workflow_id}/job_counts")["counts"]
        active = counts.get("running", 0) + counts.get("pending", 0)
        if active and not force:
            note(f"note: {active} job(s) are running or pending; reinitialize would be refused without --force")
    if session.fmt == "json":
        emit("json", plan.__dict__)
        return
    if not plan.rerun:
        click.echo("Nothing changed; no job needs to rerun.")
    for line in plan.rerun:
        click.echo(f"{'would rerun' if dry_run else 'rerun'}: {line}")
    if not dry_run:
        _report_counts(session, workflow_id)


def _counts(session: Session, workflow_id: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in session.client().iter_items("jobs", workflow_id=workflow_id):
        counts[job["status"]] = counts.get(job["status"], 0) + 1
    return dict(sorted(counts.items()))


def _report_counts(session: Session, workflow_id: int) -> None:
    counts = _counts(session, workflow_id)
    done(session, f"Workflow {workflow_id}: " + ", ".join(f"{n} {s}" for s, n in counts.items()),
         {"workflow_id": workflow_id, "job_counts": counts})


@workflows.command()
@click.argument("workflow_id", type=int)
@pass_session
def status(session: Session, workflow_id: int) -> None:
    """Run id, canceled/archived flags, and how many jobs are in each status."""
    status = session.client().get(f"workflows/{workflow_id}/status")
    counts = _counts(session, workflow_id)
    if session.fmt == "json":
        emit("json", {**status, "job_counts": counts})
    else:
        show_record(session, {**status, **{f"jobs {k}": v for k, v in counts.items()}})


@workflows.command("reset-status")
@click.argument("workflow_id", type=int)
@click.option("--failed-only", is_flag=True,
              help="Only failed, canceled, terminated, pending_failed jobs and their downstream.")
@click.option("-r", "--reinitialize", "then_initialize", is_flag=True, help="Initialize the reset jobs again.")
@click.option("--force", is_flag=True, help="Reset even while jobs are running.")
@click.option("--no-prompts", is_flag=True)
@pass_session
def reset_status(session: Session, workflow_id: int, failed_only: bool, then_initialize: bool, force: bool,
                 no_prompts: bool) -> None:
    """Put jobs back to uninitialized so they can run again.

    With --failed-only: failed, canceled, terminated and pending_failed jobs and everything
    downstream of them; completed jobs stay completed. Then `torc run ID` (or -r here) runs them."""
    client = session.client()
    confirm(session, f"Reset {'failed' if failed_only else 'all'} jobs of workflow {workflow_id}?", no_prompts)
    result = manager.reset_jobs(client, workflow_id, failed_only, force)
    if then_initialize:  # a new run (its own run_id, so reruns do not overwrite the old logs)
        manager.reinitialize(client, workflow_id, force=force)
        result = {**result, "run_id": client.run_id(workflow_id), "job_counts": _counts(session, workflow_id)}
    show_record(session, result)


@workflows.command("is-complete")
@click.argument("workflow_id", type=int)
@pass_session
def is_complete(session: Session, workflow_id: int) -> None:
    """Whether every job has finished (or the workflow was canceled)."""
    show_record(session, session.client().get(f"workflows/{workflow_id}/is_complete"))


@workflows.command("list-actions")
@click.argument("workflow_id", type=int)
@pass_session
def list_actions(session: Session, workflow_id: int) -> None:
    """Workflow actions with their trigger counts."""
    emit(session.fmt, session.client().get(f"workflows/{workflow_id}/actions"),
         ["id", "trigger_type", "action_type", "trigger_count", "required_triggers", "executed", "persistent"],
         "actions")


@workflows.command("execution-plan")
@click.argument("spec_or_id")
@pass_session
def execution_plan(session: Session, spec_or_id: str) -> None:
    """The stages a workflow runs in: which jobs start first and which wait for which."""
    if Path(spec_or_id).is_file():
        from torc.client.from_spec import blockers_from_file

        blockers = blockers_from_file(spec_or_id)
    else:
        blockers = _blockers_from_server(session, _workflow_id(spec_or_id))
    plan = stages(blockers)
    if session.fmt == "json":
        emit("json", [{"stage": i + 1, "jobs": jobs} for i, jobs in enumerate(plan)])
        return
    for i, jobs in enumerate(plan):
        trigger = "Workflow start" if i == 0 else f"After stage {i} completes"
        click.echo(f"Stage {i + 1} ({trigger}): {len(jobs)} job(s)")
        for line in collapse_names(jobs):
            click.echo(f"    {line}")


def _workflow_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidInputError(f"{text!r} is neither a spec file nor a workflow id") from None


def _blockers_from_server(session: Session, workflow_id: int) -> dict[str, list[str]]:
    """Explicit edges plus producer -> consumer edges of files and user data (before initialize
    the server has not derived those yet)."""
    client = session.client()
    names = {j["id"]: j["name"] for j in client.iter_items("jobs", workflow_id=workflow_id)}
    by_id: dict[int, set[str]] = {i: set() for i in names}
    for dep in client.iter_items(f"workflows/{workflow_id}/job_dependencies"):
        by_id[dep["job_id"]].add(names[dep["depends_on_job_id"]])
    for listing in ("job_file_relationships", "job_user_data_relationships"):
        for rel in client.iter_items(f"workflows/{workflow_id}/{listing}"):
            if rel.get("producer_job_id") and rel.get("consumer_job_id"):
                by_id[rel["consumer_job_id"]].add(names[rel["producer_job_id"]])
    return {names[i]: sorted(b - {names[i]}) for i, b in by_id.items()}


@workflows.command()
@click.argument("workflow_id", type=int)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="File to write (default stdout).")
@click.option("--include-results", is_flag=True)
@click.option("--include-events", is_flag=True)
@pass_session
def export(session: Session, workflow_id: int, output: str | None, include_results: bool,
           include_events: bool) -> None:
    """Export a workflow (and optionally its results and events) as JSON."""
    doc = export_workflow(session.client(), workflow_id, include_results, include_events)
    text = json.dumps(doc, indent=2)
    if output:
        Path(output).write_text(text + "\n")
        note(f"Exported workflow {workflow_id} ({len(doc['jobs'])} jobs) to {output}")
    else:
        click.echo(text)


@workflows.command("import")
@click.argument("source", type=click.File("r"))
@click.option("--name", default=None, help="Name of the new workflow (default: the exported name).")
@click.option("--skip-results", is_flag=True)
@click.option("--skip-events", is_flag=True)
@pass_session
def import_(session: Session, source: Any, name: str | None, skip_results: bool, skip_events: bool) -> None:
    """Import a workflow exported with `torc workflows export` (SOURCE may be - for stdin)."""
    try:
        doc = json.load(source)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{source.name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    workflow_id = import_workflow(session.client(), doc, name, skip_results, skip_events)
    done(session, f"Imported workflow {workflow_id}; initialize it to run: torc workflows initialize {workflow_id}",
         {"workflow_id": workflow_id})


@workflows.command("sync-status")
@click.argument("workflow_id", type=int)
@click.option("--dry-run", is_flag=True, help="Only list the orphaned jobs.")
@pass_session
def sync_status(session: Session, workflow_id: int, dry_run: bool) -> None:
    """Find jobs held by runners that are gone (inactive or dead compute nodes): running ones are failed
    (return code -128) so they can be reset; claimed ones that never started go back to ready.

    Jobs of Slurm allocations that Slurm no longer lists (node failure, killed allocation) go back
    to ready at once, each keeping a terminated result."""
    if not dry_run:
        from torc.cli.slurm_cmds import reconcile_slurm

        reconcile_slurm(session.client(), workflow_id)  # lost Slurm allocations: their jobs back to ready
    orphans = manager.find_orphans(session.client(), workflow_id)
    if not dry_run:
        manager.fail_orphans(session.client(), workflow_id, orphans)
    emit(session.fmt, [{"job_id": j["id"], "name": j["name"], "status": j["status"],
                        "compute_node_id": j.get("compute_node_id")} for j in orphans],
         ["job_id", "name", "status", "compute_node_id"], "orphaned jobs")
    if session.fmt != "json" and orphans and not dry_run:
        failed = sum(1 for j in orphans if j["status"] != "pending")
        note(f"Failed {failed} orphaned job(s) ({len(orphans) - failed} unstarted ones back to ready); rerun them with: torc workflows reset-status {workflow_id} "
            "--failed-only --reinitialize")

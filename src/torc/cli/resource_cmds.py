"""Commands for the records of a workflow: jobs, files, user data, events, results, resource
requirements, failure handlers, job dependencies, compute nodes and scheduled compute nodes.

Every command takes ids as arguments (no interactive picker). `-f json` prints the full records
on stdout (a list for list commands, an object otherwise); notes go to stderr.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from torc.cli.common import (
    Record,
    data_option,
    delete_all,
    done,
    fetch_records,
    list_records,
    note,
    paging_options,
    pass_session,
    show_record,
    show_rows,
    update_record,
)
from torc.cli.event_stream import StreamTarget, make_sink, run_monitor
from torc.cli.output import emit
from torc.cli.session import Session
from torc.core.errors import TorcError

JOB_COLUMNS = ["id", "name", "status", "command", "resource_requirements_id", "attempt_id"]
RELATIONSHIP_COLUMNS = ["depends_on_job_ids", "input_file_ids", "output_file_ids", "input_user_data_ids",
                        "output_user_data_ids"]
FILE_COLUMNS = ["id", "name", "path", "st_mtime"]
USER_DATA_COLUMNS = ["id", "name", "is_ephemeral", "data"]
EVENT_COLUMNS = ["id", "time", "category", "data"]
RESULT_COLUMNS = ["id", "job_id", "run_id", "attempt_id", "status", "return_code", "exec_time_minutes",
                  "compute_node_id", "completion_time"]
RR_COLUMNS = ["id", "name", "num_cpus", "num_gpus", "num_nodes", "memory", "runtime"]
FH_COLUMNS = ["id", "name", "rules"]
COMPUTE_NODE_COLUMNS = ["id", "hostname", "pid", "is_active", "start_time", "duration_seconds", "num_cpus",
                        "memory_gb", "num_gpus", "compute_node_type"]
SCHEDULED_NODE_COLUMNS = ["id", "scheduler_id", "scheduler_config_id", "scheduler_type", "status"]
RR_JOIN_COLUMNS = ["job_id", "job_name", "resource_requirements_id", "resource_requirements_name", "num_cpus",
                   "num_gpus", "num_nodes", "memory", "runtime"]
BULK_JOBS_CHUNK = 10_000
LEVELS = ("debug", "info", "warning", "error")

workflow_arg = click.argument("workflow_id", type=int)
id_arg = click.argument("id", type=int)


def _ids(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[int] | None:
    """Ids given as repeated options and/or comma/space separated lists: -b 1 -b 2,3."""
    out: list[int] = []
    for token in " ".join(values).replace(",", " ").split():
        try:
            out.append(int(token))
        except ValueError:
            raise click.BadParameter(f"{token!r} is not an integer id") from None
    return out or None


def id_list_option(*decls: str, help: str) -> Callable:
    return click.option(*decls, multiple=True, callback=_ids, help=help + " (repeat, or separate with commas)")


def to_time(ms: Any) -> str:
    if not isinstance(ms, int | float):
        return ""
    return datetime.fromtimestamp(ms / 1000).isoformat(sep=" ", timespec="milliseconds")


# ---- jobs -------------------------------------------------------------------------------------


@click.group()
def jobs() -> None:
    """Jobs of a workflow: create, list, update, delete."""


@jobs.command("create")
@workflow_arg
@click.option("-n", "--name", required=True, help="Job name.")
@click.option("-c", "--command", required=True, help="Command line to run.")
@click.option("-r", "--resource-requirements-id", type=int, help="Resource requirements id.")
@id_list_option("-b", "--blocking-job-ids", help="Ids of jobs that must finish first")
@id_list_option("-i", "--input-file-ids", help="Ids of files the job reads")
@id_list_option("-o", "--output-file-ids", help="Ids of files the job writes")
@pass_session
def jobs_create(session: Session, workflow_id: int, name: str, command: str, resource_requirements_id: int | None,
                blocking_job_ids: list[int] | None, input_file_ids: list[int] | None,
                output_file_ids: list[int] | None) -> None:
    """Create one job."""
    body = {"workflow_id": workflow_id, "name": name, "command": command,
            "resource_requirements_id": resource_requirements_id, "depends_on_job_ids": blocking_job_ids,
            "input_file_ids": input_file_ids, "output_file_ids": output_file_ids}
    job = session.client().post("jobs", {k: v for k, v in body.items() if v is not None})
    show_record(session, job, f"job {job['id']}")


def read_commands(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


@jobs.command("create-from-file")
@workflow_arg
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--cpus-per-job", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--memory-per-job", default="1m", show_default=True, help="Memory per job, e.g. 500m, 2g.")
@click.option("--runtime-per-job", default="P0DT1M", show_default=True, help="ISO 8601 duration per job.")
@pass_session
def jobs_create_from_file(session: Session, workflow_id: int, file: Path, cpus_per_job: int, memory_per_job: str,
                          runtime_per_job: str) -> None:
    """Create one job per command line of FILE ('#' comments and blank lines are skipped).

    The jobs share one new resource requirements record and are named job_<n>.
    """
    commands = read_commands(file)
    if not commands:
        raise click.UsageError(f"{file} has no commands")
    client = session.client()
    rr = client.post("resource_requirements", {"workflow_id": workflow_id, "name": f"from_file_{file.stem}",
                                               "num_cpus": cpus_per_job, "memory": memory_per_job,
                                               "runtime": runtime_per_job})
    first = client.get("jobs", workflow_id=workflow_id, limit=1)["total_count"] + 1
    bodies = [{"workflow_id": workflow_id, "name": f"job_{first + i}", "command": command,
               "resource_requirements_id": rr["id"]} for i, command in enumerate(commands)]
    created = [job for start in range(0, len(bodies), BULK_JOBS_CHUNK)
               for job in client.post("bulk_jobs", {"jobs": bodies[start:start + BULK_JOBS_CHUNK]})["jobs"]]
    note(f"Created {len(created)} jobs in workflow {workflow_id} with resource requirements {rr['id']}.")
    if session.fmt == "json":
        emit("json", {"resource_requirements": rr, "jobs": created})
    else:
        show_rows(session, created, JOB_COLUMNS, "jobs")


@jobs.command("list")
@workflow_arg
@click.option("-s", "--status", help="Only jobs with this status (e.g. ready, completed, failed).")
@click.option("--upstream-job-id", type=int, help="Only jobs that this job blocks.")
@click.option("--include-relationships", is_flag=True, help="Add dependency, file and user-data ids (slower).")
@paging_options()
@pass_session
def jobs_list(session: Session, workflow_id: int, status: str | None, upstream_job_id: int | None,
              include_relationships: bool, **paging: Any) -> None:
    """List the jobs of a workflow."""
    columns = JOB_COLUMNS + (RELATIONSHIP_COLUMNS if include_relationships else [])
    items = fetch_records(session, "jobs", **paging, workflow_id=workflow_id, status=status,
                          upstream_job_id=upstream_job_id, include_relationships=include_relationships or None)
    show_rows(session, items, columns, "jobs")


@jobs.command("get")
@id_arg
@pass_session
def jobs_get(session: Session, id: int) -> None:
    """Show one job."""
    show_record(session, session.client().get(f"jobs/{id}"), f"job {id}")


@jobs.command("update")
@id_arg
@click.option("-n", "--name", help="New name.")
@click.option("-c", "--command", help="New command.")
@pass_session
def jobs_update(session: Session, id: int, name: str | None, command: str | None) -> None:
    """Change a job's name or command (only while it is uninitialized)."""
    job = update_record(session, f"jobs/{id}", {"name": name, "command": command}, drop=["status"])
    show_record(session, job, f"job {id}")


@jobs.command("delete")
@click.argument("ids", type=int, nargs=-1, required=True)
@pass_session
def jobs_delete(session: Session, ids: tuple[int, ...]) -> None:
    """Delete jobs by id."""
    deleted = [session.client().delete(f"jobs/{job_id}") for job_id in ids]
    done(session, f"Deleted job(s) {', '.join(map(str, ids))}.", deleted if len(ids) > 1 else deleted[0])


@jobs.command("delete-all")
@workflow_arg
@click.option("--no-prompts", is_flag=True, help="Do not ask for confirmation.")
@pass_session
def jobs_delete_all(session: Session, workflow_id: int, no_prompts: bool) -> None:
    """Delete every job of a workflow."""
    delete_all(session, "jobs", workflow_id, "jobs", no_prompts)


def workflow_jobs(session: Session, workflow_id: int, job_id: int | None) -> list[Record]:
    if job_id is None:
        return list(session.client().iter_items("jobs", workflow_id=workflow_id))
    job = session.client().get(f"jobs/{job_id}")
    if job["workflow_id"] != workflow_id:
        raise TorcError(f"job {job_id} does not belong to workflow {workflow_id}")
    return [job]


def rr_row(job: Record, rr: Record) -> Record:
    return {"job_id": job["id"], "job_name": job["name"], "resource_requirements_id": rr.get("id"),
            "resource_requirements_name": rr.get("name"),
            **{key: rr.get(key) for key in ("num_cpus", "num_gpus", "num_nodes", "memory", "runtime")}}


@jobs.command("list-resource-requirements")
@workflow_arg
@click.option("-j", "--job-id", type=int, help="Only this job.")
@pass_session
def jobs_list_resource_requirements(session: Session, workflow_id: int, job_id: int | None) -> None:
    """Jobs with their resource requirements (name, CPUs, memory, runtime)."""
    rrs = {r["id"]: r for r in session.client().iter_items("resource_requirements", workflow_id=workflow_id)}
    rows = [rr_row(job, rrs.get(job.get("resource_requirements_id"), {}))
            for job in workflow_jobs(session, workflow_id, job_id)]
    show_rows(session, rows, RR_JOIN_COLUMNS, "job resource requirements")


@jobs.command("list-failure-handlers")
@workflow_arg
@click.option("-j", "--job-id", type=int, help="Only this job.")
@pass_session
def jobs_list_failure_handlers(session: Session, workflow_id: int, job_id: int | None) -> None:
    """Jobs that have a failure handler, with its rules."""
    handlers = {h["id"]: h for h in session.client().iter_items(f"workflows/{workflow_id}/failure_handlers")}
    rows = [{"job_id": job["id"], "job_name": job["name"], "failure_handler_id": job["failure_handler_id"],
             "failure_handler_name": handlers.get(job["failure_handler_id"], {}).get("name"),
             "rules": handlers.get(job["failure_handler_id"], {}).get("rules")}
            for job in workflow_jobs(session, workflow_id, job_id) if job.get("failure_handler_id") is not None]
    show_rows(session, rows, ["job_id", "job_name", "failure_handler_id", "failure_handler_name", "rules"],
              "job failure handlers")


PENDING_FAILED_COLUMNS = ["id", "name", "attempt_id", "return_code", "failure_handler_id", "command"]


@jobs.command("pending-failed")
@workflow_arg
@pass_session
def jobs_pending_failed(session: Session, workflow_id: int) -> None:
    """Jobs that failed with no failure-handler rule for their return code in a workflow with
    use_pending_failed: they wait for `torc jobs resolve` (retry or fail)."""
    from torc.client.pending import pending_failed_jobs

    rows = pending_failed_jobs(session.client(), workflow_id)
    if not rows and session.fmt != "json":
        note(f"No pending_failed jobs in workflow {workflow_id}.")
        return
    show_rows(session, rows, PENDING_FAILED_COLUMNS, f"pending_failed jobs of workflow {workflow_id}")


@jobs.command("resolve")
@workflow_arg
@click.argument("job_ids", type=int, nargs=-1)
@click.option("--retry", "decision", flag_value="retry", help="Run the jobs again (back to ready, next attempt).")
@click.option("--fail", "decision", flag_value="fail",
              help="Record the jobs failed (their dependents are canceled as for any failed job).")
@click.option("--all", "all_jobs", is_flag=True, help="Every pending_failed job of the workflow.")
@click.option("--max-retries", type=click.IntRange(min=0), default=None,
              help="With --retry: refuse jobs that already had this many retries [default: no limit].")
@pass_session
def jobs_resolve(session: Session, workflow_id: int, job_ids: tuple[int, ...], decision: str | None, all_jobs: bool,
                 max_retries: int | None) -> None:
    """Decide about pending_failed jobs: --retry runs them again (the next `torc run` picks them
    up), --fail records them failed. Name the jobs (JOB_ID ...) or use --all. Nothing changes
    when a named job is not pending_failed."""
    if decision is None:
        raise click.UsageError("say what to do: --retry or --fail")
    if bool(job_ids) == all_jobs:
        raise click.UsageError("give JOB_ID ... or --all (not both)")
    from torc.client import pending

    client = session.client()
    targets = pending.pick(client, workflow_id, None if all_jobs else list(job_ids))
    if not targets:
        done(session, f"No pending_failed jobs in workflow {workflow_id}; nothing to do.",
             {"workflow_id": workflow_id, "decision": decision, "jobs": []})
        return
    updated = pending.resolve(client, workflow_id, targets, decision, max_retries)
    names = ", ".join(f"{job['name']} ({job['id']})" for job in targets)
    message = (f"Retrying {len(targets)} job(s): {names}; `torc run {workflow_id}` runs them" if decision == "retry"
               else f"Recorded {len(targets)} job(s) failed: {names}")
    done(session, message, {"workflow_id": workflow_id, "decision": decision, "jobs": updated})


# ---- files ------------------------------------------------------------------------------------


@click.group()
def files() -> None:
    """Files that jobs read and write."""


@files.command("create")
@workflow_arg
@click.option("-n", "--name", required=True, help="File name (how jobs refer to it).")
@click.option("-p", "--path", required=True, help="Path of the file.")
@pass_session
def files_create(session: Session, workflow_id: int, name: str, path: str) -> None:
    """Create a file record."""
    record = session.client().post("files", {"workflow_id": workflow_id, "name": name, "path": path})
    show_record(session, record, f"file {record['id']}")


@files.command("list")
@workflow_arg
@click.option("--produced-by-job-id", type=int, help="Only files this job writes.")
@paging_options()
@pass_session
def files_list(session: Session, workflow_id: int, produced_by_job_id: int | None, **paging: Any) -> None:
    """List the files of a workflow."""
    list_records(session, "files", FILE_COLUMNS, "files", **paging, workflow_id=workflow_id,
                 produced_by_job_id=produced_by_job_id)


@files.command("get")
@id_arg
@pass_session
def files_get(session: Session, id: int) -> None:
    """Show one file."""
    show_record(session, session.client().get(f"files/{id}"), f"file {id}")


@files.command("update")
@id_arg
@click.option("-n", "--name", help="New name.")
@click.option("-p", "--path", help="New path.")
@pass_session
def files_update(session: Session, id: int, name: str | None, path: str | None) -> None:
    """Change a file's name or path."""
    show_record(session, update_record(session, f"files/{id}", {"name": name, "path": path}), f"file {id}")


@files.command("delete")
@id_arg
@pass_session
def files_delete(session: Session, id: int) -> None:
    """Delete a file record (not the file itself)."""
    done(session, f"Deleted file {id}.", session.client().delete(f"files/{id}"))


@files.command("list-required-existing")
@workflow_arg
@pass_session
def files_list_required_existing(session: Session, workflow_id: int) -> None:
    """Files that must exist before the workflow runs, and whether each exists on this machine."""
    client = session.client()
    wanted = set(client.get(f"workflows/{workflow_id}/required_existing_files")["files"])
    rows = [{"id": f["id"], "name": f["name"], "path": f["path"], "exists": Path(f["path"]).exists()}
            for f in client.iter_items("files", workflow_id=workflow_id) if f["id"] in wanted]
    show_rows(session, rows, ["id", "name", "path", "exists"], "required existing files")
    missing = sum(not r["exists"] for r in rows)
    if missing:
        note(f"{missing} required file(s) do not exist on this machine.")


# ---- user data --------------------------------------------------------------------------------


@click.group("user-data")
def user_data() -> None:
    """User data: JSON values that jobs consume and produce."""


@user_data.command("create")
@workflow_arg
@click.option("-n", "--name", required=True, help="Name.")
@data_option("The value, as JSON.")
@click.option("--ephemeral", is_flag=True, help="Cleared when the workflow is reinitialized.")
@click.option("--consumer-job-id", type=int, help="A job that reads it.")
@click.option("--producer-job-id", type=int, help="A job that writes it.")
@pass_session
def user_data_create(session: Session, workflow_id: int, name: str, data: Any, ephemeral: bool,
                     consumer_job_id: int | None, producer_job_id: int | None) -> None:
    """Create a user data record."""
    body = {"workflow_id": workflow_id, "name": name, "is_ephemeral": ephemeral, "data": data}
    record = session.client().post("user_data", body, consumer_job_id=consumer_job_id,
                                   producer_job_id=producer_job_id)
    show_record(session, record, f"user data {record['id']}")


@user_data.command("list")
@workflow_arg
@click.option("--name", help="Only records with this name.")
@click.option("--is-ephemeral/--not-ephemeral", default=None, help="Only ephemeral (or only persistent) records.")
@click.option("--consumer-job-id", type=int, help="Only records this job reads.")
@click.option("--producer-job-id", type=int, help="Only records this job writes.")
@paging_options(default_limit=50)
@pass_session
def user_data_list(session: Session, workflow_id: int, name: str | None, is_ephemeral: bool | None,
                   consumer_job_id: int | None, producer_job_id: int | None, **paging: Any) -> None:
    """List the user data of a workflow."""
    items = fetch_records(session, "user_data", **paging, workflow_id=workflow_id, name=name,
                          is_ephemeral=is_ephemeral, consumer_job_id=consumer_job_id,
                          producer_job_id=producer_job_id)
    show_rows(session, items, USER_DATA_COLUMNS, "user data")


@user_data.command("get")
@id_arg
@pass_session
def user_data_get(session: Session, id: int) -> None:
    """Show one user data record."""
    show_record(session, session.client().get(f"user_data/{id}"), f"user data {id}")


@user_data.command("update")
@id_arg
@click.option("-n", "--name", help="New name.")
@data_option("The new value, as JSON.")
@click.option("--ephemeral/--not-ephemeral", default=None, help="Make it ephemeral or persistent.")
@pass_session
def user_data_update(session: Session, id: int, name: str | None, data: Any, ephemeral: bool | None) -> None:
    """Change a user data record's name, value or ephemeral flag."""
    changes = {"name": name, "data": data, "is_ephemeral": ephemeral}
    show_record(session, update_record(session, f"user_data/{id}", changes), f"user data {id}")


@user_data.command("delete")
@id_arg
@pass_session
def user_data_delete(session: Session, id: int) -> None:
    """Delete a user data record."""
    done(session, f"Deleted user data {id}.", session.client().delete(f"user_data/{id}"))


@user_data.command("delete-all")
@workflow_arg
@click.option("--no-prompts", is_flag=True, help="Do not ask for confirmation.")
@pass_session
def user_data_delete_all(session: Session, workflow_id: int, no_prompts: bool) -> None:
    """Delete every user data record of a workflow."""
    delete_all(session, "user_data", workflow_id, "user data records", no_prompts)


@user_data.command("list-missing")
@workflow_arg
@pass_session
def user_data_list_missing(session: Session, workflow_id: int) -> None:
    """User data that jobs need but that has no value yet and that no job produces."""
    client = session.client()
    missing = set(client.get(f"workflows/{workflow_id}/missing_user_data")["user_data"])
    rows = [r for r in client.iter_items("user_data", workflow_id=workflow_id) if r["id"] in missing]
    show_rows(session, rows, ["id", "name", "is_ephemeral"], "missing user data")


# ---- events -----------------------------------------------------------------------------------


@click.group()
def events() -> None:
    """Workflow events: stored records and the live stream."""


def event_row(event: Record) -> Record:
    data = event.get("data") or {}
    return {"id": event.get("id"), "time": to_time(event.get("timestamp")),
            "category": data.get("category") if isinstance(data, dict) else None, "data": data}


@events.command("create")
@workflow_arg
@data_option("The event, a JSON object.", required=True, want_object=True)
@pass_session
def events_create(session: Session, workflow_id: int, data: dict[str, Any]) -> None:
    """Store an event."""
    event = session.client().post("events", {"workflow_id": workflow_id, "data": data})
    show_record(session, event, f"event {event['id']}")


@events.command("list")
@workflow_arg
@click.option("-t", "--category", help="Only events whose data has this category.")
@click.option("--after-timestamp", type=int, help="Only events after this time (ms since the epoch).")
@paging_options()
@pass_session
def events_list(session: Session, workflow_id: int, category: str | None, after_timestamp: int | None,
                **paging: Any) -> None:
    """List the stored events of a workflow."""
    items = fetch_records(session, "events", **paging, workflow_id=workflow_id, category=category,
                          after_timestamp=after_timestamp)
    show_rows(session, items, EVENT_COLUMNS, "events", event_row)


@events.command("get-latest-event")
@workflow_arg
@pass_session
def events_get_latest(session: Session, workflow_id: int) -> None:
    """Show the most recent stored event."""
    page = session.client().get("events", workflow_id=workflow_id, sort_by="timestamp", reverse_sort=True, limit=1)
    if not page["items"]:
        raise TorcError(f"no events found for workflow {workflow_id}")
    event = page["items"][0]
    show_record(session, event if session.fmt == "json" else event_row(event), "latest event")


@events.command("delete")
@id_arg
@pass_session
def events_delete(session: Session, id: int) -> None:
    """Delete a stored event."""
    done(session, f"Deleted event {id}.", session.client().delete(f"events/{id}"))


@events.command("monitor")
@workflow_arg
@click.option("-d", "--duration", type=click.FloatRange(min=0, min_open=True),
              help="Stop after this many minutes [default: until Ctrl-C].")
@click.option("--level", type=click.Choice(LEVELS), default="info", show_default=True,
              help="Lowest severity to show.")
@click.option("--filename", type=click.Path(dir_okay=False), help="Also append each event to this file (JSON lines).")
@pass_session
def events_monitor(session: Session, workflow_id: int, duration: float | None, level: str,
                   filename: str | None) -> None:
    """Follow a workflow's live events: job started/completed/failed, workflow started, ...

    Prints one line per event (time, type, severity, data), or one JSON object per line with -f json.
    Reconnects when the connection drops; events sent while disconnected are lost.
    """
    client = session.client()
    target = StreamTarget(client.url, workflow_id, level, client.http.auth)
    run_monitor(target, make_sink(session.fmt, filename), note, duration)


# ---- results ----------------------------------------------------------------------------------


@click.group()
def results() -> None:
    """Job results: return codes, run times, resource use."""


@results.command("list")
@workflow_arg
@click.option("-j", "--job-id", type=int, help="Only this job's results.")
@click.option("-r", "--run-id", type=int, help="Only this run.")
@click.option("--return-code", type=int, help="Only results with this return code.")
@click.option("--failed", is_flag=True, help="Only results with a non-zero return code.")
@click.option("-s", "--status", help="Only results with this status.")
@click.option("--all-runs", is_flag=True, help="Every attempt of every run, not only the current results.")
@click.option("--compute-node", "compute_node_id", type=int, help="Only results from this compute node.")
@paging_options()
@pass_session
def results_list(session: Session, workflow_id: int, failed: bool, all_runs: bool, **options: Any) -> None:
    """List job results (current results only unless --all-runs)."""
    items = fetch_records(session, "results", workflow_id=workflow_id, all_runs=all_runs or None, **options)
    if failed:
        items = [r for r in items if r.get("return_code") != 0]
    show_rows(session, items, RESULT_COLUMNS, "results")


@results.command("get")
@id_arg
@pass_session
def results_get(session: Session, id: int) -> None:
    """Show one result."""
    show_record(session, session.client().get(f"results/{id}"), f"result {id}")


@results.command("delete")
@id_arg
@pass_session
def results_delete(session: Session, id: int) -> None:
    """Delete a result."""
    done(session, f"Deleted result {id}.", session.client().delete(f"results/{id}"))


# ---- resource requirements --------------------------------------------------------------------


@click.group("resource-requirements")
def resource_requirements() -> None:
    """Resource requirements (CPUs, GPUs, nodes, memory, runtime) that jobs refer to."""


def rr_options(defaults: bool) -> Callable:
    """The resource options; with defaults for create, all optional (unchanged) for update."""

    def default(value: Any) -> dict[str, Any]:
        return {"default": value, "show_default": True} if defaults else {"default": None}

    def decorate(func: Callable) -> Callable:
        for decl, kind, value, help_text in reversed([
            (("--num-cpus",), click.IntRange(min=0), 1, "CPUs per job."),
            (("--num-gpus",), click.IntRange(min=0), 0, "GPUs per job."),
            (("--num-nodes",), click.IntRange(min=1), 1, "Nodes per job."),
            (("-m", "--memory"), str, "1m", "Memory, e.g. 500m, 2g."),
            (("-r", "--runtime"), str, "P0DT1M", "Runtime as an ISO 8601 duration, e.g. PT30M."),
        ]):
            func = click.option(*decl, type=kind, help=help_text, **default(value))(func)
        return func

    return decorate


@resource_requirements.command("create")
@workflow_arg
@click.option("-n", "--name", required=True, help="Name.")
@rr_options(defaults=True)
@pass_session
def rr_create(session: Session, workflow_id: int, name: str, **resources: Any) -> None:
    """Create resource requirements."""
    record = session.client().post("resource_requirements", {"workflow_id": workflow_id, "name": name, **resources})
    show_record(session, record, f"resource requirements {record['id']}")


@resource_requirements.command("list")
@workflow_arg
@paging_options()
@pass_session
def rr_list(session: Session, workflow_id: int, **paging: Any) -> None:
    """List the resource requirements of a workflow."""
    list_records(session, "resource_requirements", RR_COLUMNS, "resource requirements", **paging,
                 workflow_id=workflow_id)


@resource_requirements.command("get")
@id_arg
@pass_session
def rr_get(session: Session, id: int) -> None:
    """Show one resource requirements record."""
    show_record(session, session.client().get(f"resource_requirements/{id}"), f"resource requirements {id}")


@resource_requirements.command("update")
@id_arg
@click.option("-n", "--name", help="New name.")
@rr_options(defaults=False)
@pass_session
def rr_update(session: Session, id: int, **changes: Any) -> None:
    """Change resource requirements; only the options given change."""
    record = update_record(session, f"resource_requirements/{id}", changes)
    show_record(session, record, f"resource requirements {id}")


@resource_requirements.command("delete")
@id_arg
@pass_session
def rr_delete(session: Session, id: int) -> None:
    """Delete resource requirements that no job uses."""
    done(session, f"Deleted resource requirements {id}.", session.client().delete(f"resource_requirements/{id}"))


# ---- failure handlers -------------------------------------------------------------------------


@click.group("failure-handlers")
def failure_handlers() -> None:
    """Failure handlers: rules that retry failed jobs by return code."""


@failure_handlers.command("list")
@workflow_arg
@pass_session
def fh_list(session: Session, workflow_id: int) -> None:
    """List the failure handlers of a workflow."""
    items = list(session.client().iter_items(f"workflows/{workflow_id}/failure_handlers"))
    show_rows(session, items, FH_COLUMNS, "failure handlers")


@failure_handlers.command("get")
@id_arg
@pass_session
def fh_get(session: Session, id: int) -> None:
    """Show one failure handler with its rules pretty-printed."""
    handler = session.client().get(f"failure_handlers/{id}")
    if session.fmt == "json":
        emit("json", handler)
        return
    show_record(session, {k: v for k, v in handler.items() if k != "rules"}, f"failure handler {id}")
    try:
        rules = json.dumps(json.loads(handler.get("rules") or "null"), indent=2)
    except json.JSONDecodeError:
        rules = handler.get("rules")
    click.echo(f"rules:\n{rules}")


# ---- job dependencies -------------------------------------------------------------------------


@click.group("job-dependencies")
def job_dependencies() -> None:
    """How jobs depend on each other, directly or through files and user data."""


def relationship_command(name: str, path: str, columns: list[str], title: str, doc: str) -> None:
    @job_dependencies.command(name, help=doc)
    @workflow_arg
    @click.option("-l", "--limit", type=click.IntRange(min=1), default=10_000, show_default=True,
                  help="Show at most this many records.")
    @click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True, help="Skip this many.")
    @pass_session
    def command(session: Session, workflow_id: int, limit: int, offset: int) -> None:
        items = fetch_records(session, f"workflows/{workflow_id}/{path}", limit, offset, None, False)
        show_rows(session, items, columns, title)


relationship_command("job-job", "job_dependencies",
                     ["job_id", "job_name", "depends_on_job_id", "depends_on_job_name"], "job dependencies",
                     "Job -> job dependencies (the job waits for depends_on_job).")
relationship_command("job-file", "job_file_relationships",
                     ["file_id", "file_name", "file_path", "producer_job_id", "producer_job_name", "consumer_job_id",
                      "consumer_job_name"], "job-file relationships",
                     "Files with the jobs that produce and consume them.")
relationship_command("job-user-data", "job_user_data_relationships",
                     ["user_data_id", "user_data_name", "producer_job_id", "producer_job_name", "consumer_job_id",
                      "consumer_job_name"], "job-user-data relationships",
                     "User data with the jobs that produce and consume it.")


# ---- compute nodes ----------------------------------------------------------------------------


@click.group("compute-nodes")
def compute_nodes() -> None:
    """Compute nodes: the job runners that have run jobs of a workflow."""


@compute_nodes.command("get")
@id_arg
@pass_session
def cn_get(session: Session, id: int) -> None:
    """Show one compute node."""
    show_record(session, session.client().get(f"compute_nodes/{id}"), f"compute node {id}")


@compute_nodes.command("list")
@workflow_arg
@click.option("--scheduled-compute-node", "scheduled_compute_node_id", type=int,
              help="Only nodes of this scheduled compute node (allocation).")
@paging_options()
@pass_session
def cn_list(session: Session, workflow_id: int, scheduled_compute_node_id: int | None, **paging: Any) -> None:
    """List the compute nodes of a workflow."""
    list_records(session, "compute_nodes", COMPUTE_NODE_COLUMNS, "compute nodes", **paging,
                 workflow_id=workflow_id, scheduled_compute_node_id=scheduled_compute_node_id)


# ---- scheduled compute nodes ------------------------------------------------------------------


@click.group("scheduled-compute-nodes")
def scheduled_compute_nodes() -> None:
    """Scheduled compute nodes: allocations requested from a scheduler (e.g. Slurm jobs)."""


@scheduled_compute_nodes.command("get")
@id_arg
@pass_session
def scn_get(session: Session, id: int) -> None:
    """Show one scheduled compute node."""
    show_record(session, session.client().get(f"scheduled_compute_nodes/{id}"), f"scheduled compute node {id}")


@scheduled_compute_nodes.command("list")
@workflow_arg
@click.option("--scheduler-id", type=int, help="Only this scheduler id (e.g. the Slurm job id).")
@click.option("--scheduler-config-id", type=int, help="Only this scheduler configuration.")
@click.option("--status", help="Only this status (e.g. pending, active, complete).")
@paging_options()
@pass_session
def scn_list(session: Session, workflow_id: int, **options: Any) -> None:
    """List the scheduled compute nodes of a workflow."""
    list_records(session, "scheduled_compute_nodes", SCHEDULED_NODE_COLUMNS, "scheduled compute nodes",
                 workflow_id=workflow_id, **options)


@scheduled_compute_nodes.command("list-jobs")
@id_arg
@pass_session
def scn_list_jobs(session: Session, id: int) -> None:
    """Jobs that ran on the compute nodes of this allocation (from their results, every run)."""
    client = session.client()
    workflow_id = client.get(f"scheduled_compute_nodes/{id}")["workflow_id"]
    rows: list[Record] = []
    for node in client.iter_items("compute_nodes", workflow_id=workflow_id, scheduled_compute_node_id=id):
        for result in client.iter_items("results", workflow_id=workflow_id, compute_node_id=node["id"],
                                        all_runs=True):
            rows.append({"job_id": result["job_id"], "compute_node_id": node["id"], "hostname": node["hostname"],
                         "run_id": result["run_id"], "attempt_id": result.get("attempt_id"),
                         "status": result["status"], "return_code": result["return_code"]})
    names = {j["id"]: j["name"] for j in client.iter_items("jobs", workflow_id=workflow_id)} if rows else {}
    rows = [{"job_id": r["job_id"], "job_name": names.get(r["job_id"]), **r} for r in rows]
    show_rows(session, rows, ["job_id", "job_name", "compute_node_id", "hostname", "run_id", "attempt_id", "status",
                              "return_code"], f"jobs of scheduled compute node {id}")


GROUPS = [jobs, files, user_data, events, results, resource_requirements, failure_handlers, job_dependencies,
          compute_nodes, scheduled_compute_nodes]

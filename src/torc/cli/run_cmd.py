"""`torc run`: create (or resume) a workflow and run its jobs on this machine."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import click

from torc.cli.output import emit
from torc.cli.session import Session
from torc.client import DEFAULT_URL, TorcClient, manager
from torc.core.errors import InvalidInputError, TorcError
from torc.runner.local import LocalRunner, RunnerOptions, RunSummary
from torc.runner.progress import Progress
from torc.runner.resources import detect_cpus, detect_gpus, detect_memory_gb
from torc.spec.load import FORMATS

SPEC_SUFFIXES = tuple(FORMATS)


def _is_spec(arg: str) -> bool:
    return arg.lower().endswith(SPEC_SUFFIXES) or Path(arg).is_file()


def _connect(session: Session, output_dir: Path) -> TorcClient:
    if session.url is None and session.database is None and session.config().client.api_url is None:
        from torc.cli.embedded import server_reachable

        if not server_reachable(DEFAULT_URL):
            session.database = output_dir / "torc.db"
            click.echo(f"No torc server at {DEFAULT_URL}; using an embedded server on {session.database}")
    return session.client()


def _start_workflow(client: TorcClient, spec_or_id: str, skip_checks: bool,
                    note: Callable[[str], Any] = click.echo, verb: str = "run") -> int:
    """Create from a spec and initialize, or resume an existing workflow; `note` shows what was done
    (`torc submit` sends it to stderr), `verb` names the command in the refusal of an archived one."""
    if _is_spec(spec_or_id):
        from torc.client.from_spec import create_from_file

        workflow_id = create_from_file(client, spec_or_id)
        note(f"Created workflow {workflow_id} from {spec_or_id}")
        manager.initialize(client, workflow_id, force=skip_checks)
        return workflow_id
    try:
        workflow_id = int(spec_or_id)
    except ValueError:
        raise InvalidInputError(f"{spec_or_id!r} is neither a spec file nor a workflow id") from None
    if client.get(f"workflows/{workflow_id}/status").get("is_archived"):
        raise InvalidInputError(f"workflow {workflow_id} is archived; unarchive it to {verb} it")
    if client.get(f"workflows/{workflow_id}/is_uninitialized")["is_uninitialized"]:
        manager.initialize(client, workflow_id, force=skip_checks)
    else:
        for line in manager.prepare_resume(client, workflow_id):
            note(line)
    return workflow_id


def _monitor(client: TorcClient, workflow_id: int, output_dir: Path, runner: LocalRunner):
    """The resource monitor the workflow asks for (summary by default, time series on request).
    Memory limits need one: with --enforce-memory-limits and monitoring off, a summary monitor
    sampling every second runs anyway."""
    raw = client.get(f"workflows/{workflow_id}").get("resource_monitor_config")
    config = json.loads(raw) if raw else {"enabled": True, "granularity": "summary", "sample_interval_seconds": 5}
    if not config.get("enabled", False):
        if not runner.options.enforce_memory_limits:
            return None
        click.echo("Resource monitoring is off for this workflow; sampling memory every 1 s to enforce limits")
        config = {"enabled": True, "granularity": "summary", "sample_interval_seconds": 1}
    from torc.runner.monitor import ResourceMonitor

    db = None
    if config.get("granularity") == "time_series":
        import socket

        folder = output_dir / "resource_utilization"
        folder.mkdir(parents=True, exist_ok=True)
        db = folder / f"resource_metrics_{socket.gethostname()}_{workflow_id}_{runner.run_id}.db"
    return ResourceMonitor(float(config.get("sample_interval_seconds") or 5), time_series_db=db,
                           on_over_limit=runner.on_over_limit)


def _summary(session: Session, client: TorcClient, workflow_id: int, summary: RunSummary,
             extra: dict | None = None) -> None:
    counts = {k: v for k, v in client.get(f"workflows/{workflow_id}/job_counts")["counts"].items() if v}
    complete = client.get(f"workflows/{workflow_id}/is_complete")["is_complete"]
    if session.fmt == "json":
        emit("json", {"workflow_id": workflow_id, "completed": summary.completed, "failed": summary.failed,
                      "terminated": summary.terminated, "interrupted": summary.interrupted,
                      "job_counts": counts, "is_complete": complete, **(extra or {})})
        return
    emit("table", [{"status": status, "jobs": n} for status, n in counts.items()], ["status", "jobs"],
         f"workflow {workflow_id}")
    click.echo(f"Workflow {workflow_id}: {summary.completed} completed, {summary.failed} failed, "
               f"{summary.terminated} terminated here; workflow {'complete' if complete else 'not complete'} ("
               + ", ".join(f"{n} {s}" for s, n in counts.items()) + ")")


@dataclass
class RunSettings:
    """The options of `torc run` that shape the local runner (shared by `torc recover` and `torc watch`)."""

    max_parallel_jobs: int | None = None
    num_cpus: int | None = None
    memory_gb: float | None = None
    num_gpus: int | None = None
    poll_interval: float | None = None
    output_dir: Path | None = None
    enforce_memory_limits: bool = False
    termination_grace: float = 10.0
    idle_timeout: float | None = None
    no_progress: bool = False


RUN_SETTING_NAMES = tuple(f.name for f in fields(RunSettings))


def run_options(poll_interval: bool = True) -> Callable:
    """The runner options of `torc run` (all but -p/--poll-interval when `poll_interval` is False,
    for commands that use -p for themselves)."""
    options = [
        click.option("--max-parallel-jobs", type=click.IntRange(min=1), default=None,
                     help="Run at most N jobs at once and ignore resource requirements (queue mode)."),
        click.option("--num-cpus", type=click.IntRange(min=1), default=None, help="CPUs to offer [default: all]."),
        click.option("--memory-gb", type=click.FloatRange(min=0), default=None,
                     help="Memory to offer [default: all]."),
        click.option("--num-gpus", type=click.IntRange(min=0), default=None, help="GPUs to offer [default: detected]."),
    ]
    if poll_interval:
        options.append(click.option(
            "-p", "--poll-interval", type=click.FloatRange(min=0.01), default=None,
            help="Seconds between checks while no job of this runner is active [config client.run; 5]."))
    options += [
        click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Job logs, runner files and (embedded server) the database go here "
                          "[config client.run; torc_output]."),
        click.option("--enforce-memory-limits", is_flag=True,
                     help="Kill a job whose memory use exceeds its resource requirement."),
        click.option("--termination-grace", type=click.FloatRange(min=0), default=10.0, show_default=True,
                     help="Seconds between SIGTERM and SIGKILL for jobs that support termination."),
        click.option("--idle-timeout", type=click.FloatRange(min=0), default=None,
                     help="Stop after this many seconds with nothing to run [default: the workflow's setting, 90]."),
        click.option("--no-progress", is_flag=True, help="No live progress panel (plain lines only)."),
    ]

    def decorate(func: Callable) -> Callable:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def pop_run_settings(kwargs: dict[str, Any]) -> RunSettings:
    """Take the run_options() values out of a command's keyword arguments."""
    return RunSettings(**{name: kwargs.pop(name) for name in RUN_SETTING_NAMES if name in kwargs})


def output_dir_of(session: Session, settings: RunSettings) -> Path:
    """The resolved output directory, created and checked (settings.output_dir is set to it)."""
    output_dir = (settings.output_dir or Path(session.config().client.run.output_dir)).resolve()
    _prepare_output_dir(output_dir)
    settings.output_dir = output_dir
    return output_dir


def connect(session: Session, settings: RunSettings) -> TorcClient:
    """A client for the run: the configured server, or an embedded one on OUTPUT_DIR/torc.db."""
    return _connect(session, output_dir_of(session, settings))


def run_local(session: Session, client: TorcClient, workflow_id: int, settings: RunSettings) -> RunSummary:
    """Run a prepared (initialized or resumed) workflow's jobs on this machine until it is done:
    the runner with its resource monitor and progress display, exactly as `torc run ID` does."""
    defaults = session.config().client.run
    output_dir = settings.output_dir or output_dir_of(session, settings)
    workflow = client.get(f"workflows/{workflow_id}")
    options = RunnerOptions(
        output_dir=output_dir,
        num_cpus=settings.num_cpus or defaults.num_cpus or detect_cpus(),
        memory_gb=next(v for v in (settings.memory_gb, defaults.memory_gb, detect_memory_gb()) if v is not None),
        num_gpus=next(v for v in (settings.num_gpus, defaults.num_gpus, detect_gpus()) if v is not None),
        max_parallel_jobs=settings.max_parallel_jobs or defaults.max_parallel_jobs,
        poll_interval=settings.poll_interval or defaults.poll_interval,
        idle_timeout=settings.idle_timeout,
        termination_grace=settings.termination_grace,
        enforce_memory_limits=settings.enforce_memory_limits,
        # the runner waits this long for an unreachable (restarting) server; Ctrl-C cuts it short
        server_retry_seconds=60.0 * float(workflow.get("compute_node_wait_for_healthy_database_minutes") or 20),
    )
    progress = Progress(workflow_id, lambda: client.get(f"workflows/{workflow_id}/job_counts")["counts"],
                        enabled=False if settings.no_progress or session.fmt == "json" else None)
    with progress:
        runner = LocalRunner(client, workflow_id, options, say=progress.say, on_progress=progress.update)
        runner.run_id = client.run_id(workflow_id)
        monitor = _monitor(client, workflow_id, output_dir, runner)
        runner.monitor = monitor
        if monitor is not None:
            monitor.start()
        try:
            return runner.run()
        finally:
            if monitor is not None:
                monitor.stop()


def report_run(session: Session, client: TorcClient, workflow_id: int, summary: RunSummary,
               settings: RunSettings, extra: dict | None = None) -> None:
    """The summary after a run, where the logs are, and (Ctrl-C) how to carry on."""
    try:
        _summary(session, client, workflow_id, summary, extra)
    except TorcError as exc:  # e.g. the server went away and the run was interrupted
        click.echo(f"No summary: {exc.message}")
    click.echo(f"Job logs: {Path(settings.output_dir or '.') / 'job_stdio'}")
    if session.database is not None:
        click.echo(f"Inspect it with: torc --database {session.database} jobs list {workflow_id}")
    if summary.interrupted:
        click.echo(f"Interrupted. Carry on with: torc{_server_hint(session)} run {workflow_id}")


def exit_code(summary: RunSummary) -> int:
    """130 after Ctrl-C, 1 when a job failed or was terminated here, else 0."""
    if summary.interrupted:
        return 130
    return 1 if summary.failed or summary.terminated else 0


@click.command()
@click.argument("spec_or_id")
@run_options()
@click.option("--skip-checks", is_flag=True, help="Do not check that required input files exist.")
@click.pass_obj
def run(session: Session, spec_or_id: str, skip_checks: bool, **kwargs: Any) -> None:
    """Run a workflow on this machine: SPEC_OR_ID is a spec file (YAML, JSON, JSON5, KDL) or a workflow id.

    With no server configured or reachable, torc starts one itself on OUTPUT_DIR/torc.db. A workflow id
    that already ran resumes: completed jobs stay completed, unfinished ones run again. Ctrl-C stops the
    running jobs and records them as terminated; `torc run ID` carries on later.
    """
    settings = pop_run_settings(kwargs)
    client = connect(session, settings)
    workflow_id = _start_workflow(client, spec_or_id, skip_checks)
    summary = run_local(session, client, workflow_id, settings)
    report_run(session, client, workflow_id, summary, settings)
    code = exit_code(summary)
    if code:
        raise SystemExit(code)


def _prepare_output_dir(output_dir: Path) -> None:
    """Create the output directory (and job_stdio) up front: a clean error, not a traceback or a
    runner whose every job fails, when it cannot be created or written."""
    try:
        (output_dir / "job_stdio").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create output directory {output_dir}: {exc.strerror or exc}") from None
    for folder in (output_dir, output_dir / "job_stdio"):
        if not os.access(folder, os.W_OK | os.X_OK):
            raise InvalidInputError(f"output directory {folder} is not writable")


def _server_hint(session: Session) -> str:
    if session.database is not None:
        return f" --database {session.database}"
    return f" --url {session.url}" if session.url else ""

"""`torc remote`: keep a workflow's list of remote workers and run `torc run` on them over SSH."""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import click

from torc.cli.common import done, note, show_rows
from torc.cli.output import emit
from torc.cli.session import Session
from torc.client import manager
from torc.core.errors import InvalidInputError
from torc.remote import operations as ops
from torc.remote.ssh import DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_PARALLEL_SSH, SshSettings, fan_out
from torc.remote.workers import Worker, check_duplicates, parse_worker, parse_worker_file, parse_workers

DEFAULT_OUTPUT_DIR = "torc_output"
DIR_HELP = ("Output directory on the workers, relative to the remote home directory; {host}, {port} and "
            "{user} are filled in per worker")


def ssh_options(func: Callable) -> Callable:
    """--ssh-config / --ssh-option / --connect-timeout / --max-parallel-ssh, as `ssh_settings` and
    `max_parallel_ssh` keyword arguments."""
    func = click.option("--max-parallel-ssh", type=click.IntRange(min=1), default=DEFAULT_MAX_PARALLEL_SSH,
                        show_default=True, help="Hosts handled at once.")(func)
    func = click.option("--connect-timeout", type=click.IntRange(min=1), default=DEFAULT_CONNECT_TIMEOUT,
                        show_default=True, help="ssh ConnectTimeout in seconds.")(func)
    func = click.option("--ssh-option", "ssh_option", multiple=True, metavar="KEY=VALUE",
                        help="Extra ssh -o option (repeatable) [env TORC_SSH_OPTIONS, space-separated].")(func)
    func = click.option("--ssh-config", type=click.Path(exists=True, dir_okay=False), default=None,
                        help="ssh client config file, as ssh -F [env TORC_SSH_CONFIG].")(func)
    return func


def _settings(kwargs: dict[str, Any]) -> SshSettings:
    return SshSettings.from_env(kwargs.pop("ssh_config"), kwargs.pop("ssh_option"), kwargs.pop("connect_timeout"))


@click.group()
def remote() -> None:
    """Run workflow workers on other machines over SSH.

    \b
    Workers are `[user@]host[:port]` (IPv6 in brackets: `[::1]:2222`). Key-based SSH
    authentication is needed (BatchMode); each worker needs `torc` (or --torc-path) and
    network access to the server.
    \b
      torc remote add-workers 12 node1 alice@node2:2222
      torc remote run 12
      torc remote status 12
      torc remote collect-logs 12 -l remote_logs
    """


# ---- the stored worker list -------------------------------------------------------------------


def stored_workers(session: Session, workflow_id: int) -> list[Worker]:
    rows = session.client().get(f"workflows/{workflow_id}/remote_workers")
    workers = []
    for row in rows:
        try:
            workers.append(parse_worker(row["worker"]))
        except InvalidInputError as exc:
            note(f"warning: ignoring stored worker: {exc.message}")
    return workers


def _require_workers(session: Session, workflow_id: int) -> list[Worker]:
    workers = stored_workers(session, workflow_id)
    if not workers:
        raise InvalidInputError(f"workflow {workflow_id} has no remote workers; add some with "
                                f"`torc remote add-workers {workflow_id} HOST...` or `run -w FILE`")
    return workers


def _add(session: Session, workflow_id: int, workers: list[Worker], settings: SshSettings | None,
         max_parallel_ssh: int, strict: bool = True) -> list[Worker]:
    """Store new workers (after an SSH check unless settings is None). Already stored hosts are an
    error; hosts that fail the check are reported and left out, the others still added (then an
    error if strict)."""
    session.client().get(f"workflows/{workflow_id}")  # a clean "not found" before any SSH
    existing = stored_workers(session, workflow_id)
    check_duplicates([*existing, *workers], f"workflow {workflow_id} (already stored: "
                     + (", ".join(w.original for w in existing) or "none") + ")")
    good, failed = workers, []
    if settings is not None:
        results = fan_out(workers, lambda w: ops.check_connectivity(settings, w), max_parallel_ssh)
        good = [r.worker for r in results if r.ok]
        failed = [r for r in results if not r.ok]
        for r in failed:
            note(f"  [FAILED] {r.worker}: {r.message}")
    if good:
        session.client().post(f"workflows/{workflow_id}/remote_workers", [w.original for w in good])
    if failed and strict:
        raise InvalidInputError(f"{len(failed)} of {len(workers)} workers failed the SSH check and were not "
                                "added" + (f"; added {', '.join(w.original for w in good)}" if good else "")
                                + " (--skip-ssh-check adds them anyway)")
    return good


def _show_added(session: Session, workflow_id: int, added: list[Worker]) -> None:
    done(session, f"Added {len(added)} worker(s) to workflow {workflow_id}: " + ", ".join(w.original for w in added),
         {"workflow_id": workflow_id, "added": [w.original for w in added]})


@remote.command("add-workers")
@click.argument("workflow_id", type=int)
@click.argument("workers", nargs=-1, required=True)
@click.option("--skip-ssh-check", is_flag=True, help="Add the workers without checking that ssh reaches them.")
@ssh_options
@click.pass_obj
def add_workers(session: Session, workflow_id: int, workers: tuple[str, ...], skip_ssh_check: bool,
                **kwargs: Any) -> None:
    """Add WORKERS ([user@]host[:port]) to workflow WORKFLOW_ID, after checking that ssh reaches them."""
    settings = _settings(kwargs)
    parsed = parse_workers(list(workers))
    added = _add(session, workflow_id, parsed, None if skip_ssh_check else settings, kwargs["max_parallel_ssh"])
    _show_added(session, workflow_id, added)


@remote.command("add-workers-from-file")
@click.argument("worker_file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("workflow_id", type=int)
@click.option("--skip-ssh-check", is_flag=True, help="Add the workers without checking that ssh reaches them.")
@ssh_options
@click.pass_obj
def add_workers_from_file(session: Session, worker_file: Path, workflow_id: int, skip_ssh_check: bool,
                          **kwargs: Any) -> None:
    """Add the workers listed in WORKER_FILE (one per line, `#` comments) to workflow WORKFLOW_ID."""
    settings = _settings(kwargs)
    parsed = parse_worker_file(worker_file)
    added = _add(session, workflow_id, parsed, None if skip_ssh_check else settings, kwargs["max_parallel_ssh"])
    _show_added(session, workflow_id, added)


@remote.command("remove-worker")
@click.argument("worker")
@click.argument("workflow_id", type=int)
@click.pass_obj
def remove_worker(session: Session, worker: str, workflow_id: int) -> None:
    """Remove WORKER from workflow WORKFLOW_ID's remote workers."""
    wanted = parse_worker(worker)
    stored = {w.key: w for w in stored_workers(session, workflow_id)}
    match = stored.get(wanted.key)
    if match is None:
        raise InvalidInputError(f"{worker!r} is not a remote worker of workflow {workflow_id} (workers: "
                                + (", ".join(w.original for w in stored.values()) or "none") + ")")
    session.client().delete(f"workflows/{workflow_id}/remote_workers/{quote(match.original, safe='')}")
    done(session, f"Removed worker {match.original} from workflow {workflow_id}",
         {"workflow_id": workflow_id, "removed": match.original})


@remote.command("list-workers")
@click.argument("workflow_id", type=int)
@click.pass_obj
def list_workers(session: Session, workflow_id: int) -> None:
    """List workflow WORKFLOW_ID's remote workers."""
    rows = [{"worker": w.original, "user": w.user, "host": w.host, "port": w.port}
            for w in stored_workers(session, workflow_id)]
    show_rows(session, rows, ["worker", "user", "host", "port"], f"remote workers of workflow {workflow_id}")


# ---- operations on the hosts ------------------------------------------------------------------


def _report(session: Session, outcomes: list[ops.Outcome], summary: str) -> None:
    if session.fmt == "json":
        emit("json", [o.to_json() for o in outcomes])
        return
    for o in outcomes:
        click.echo(f"  [{'OK' if o.ok else 'FAILED'}] {o.worker}: {o.message}")
    click.echo(summary)


def _exit_if_failed(outcomes: list[ops.Outcome]) -> None:
    if any(not o.ok for o in outcomes):
        sys.exit(1)


def _local_version() -> str:
    try:
        return version("torc")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        from torc import __version__

        return __version__


LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def _check_url(session: Session, url: str, workers: list[Worker]) -> None:
    if session.database is not None:
        raise InvalidInputError("remote workers need a torc server they can reach: give --url, not --database")
    host = urlsplit(url).hostname or ""
    if host in LOCAL_NAMES and any(w.host.lower() not in LOCAL_NAMES for w in workers):
        note(f"note: the server URL {url} names this machine as {host!r}; workers on other machines cannot "
             "reach it there (give --url http://<this host's name>:PORT/torc-service/v1)")


@remote.command("run")
@click.argument("workflow_id", type=int)
@click.option("-w", "--workers", "worker_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Worker file: check and add these workers first.")
@click.option("-o", "--output-dir", default=DEFAULT_OUTPUT_DIR, show_default=True, help=DIR_HELP + ".")
@click.option("-p", "--poll-interval", type=click.FloatRange(min=0.01), default=5.0, show_default=True,
              help="Workers' poll interval in seconds.")
@click.option("--max-parallel-jobs", type=click.IntRange(min=1), default=None, help="Per worker (queue mode).")
@click.option("--num-cpus", type=click.IntRange(min=1), default=None, help="CPUs each worker offers [all].")
@click.option("--memory-gb", type=click.FloatRange(min=0), default=None, help="Memory each worker offers [all].")
@click.option("--num-gpus", type=click.IntRange(min=0), default=None, help="GPUs each worker offers [detected].")
@click.option("--skip-version-check", is_flag=True, help="Do not compare the workers' torc version with this one.")
@click.option("--torc-path", default="torc", show_default=True, envvar="TORC_REMOTE_TORC",
              help="The torc command on the workers [env TORC_REMOTE_TORC].")
@ssh_options
@click.pass_obj
def run(session: Session, workflow_id: int, worker_file: Path | None, output_dir: str, poll_interval: float,
        max_parallel_jobs: int | None, num_cpus: int | None, memory_gb: float | None, num_gpus: int | None,
        skip_version_check: bool, torc_path: str, **kwargs: Any) -> None:
    """Start `torc run WORKFLOW_ID` on every remote worker, detached (nohup); it keeps running after
    this command returns. Watch it with `torc remote status`, stop it with `torc remote stop`."""
    settings = _settings(kwargs)
    parallel = kwargs["max_parallel_ssh"]
    client = session.client()
    status = client.get(f"workflows/{workflow_id}/status")
    if status.get("is_archived"):
        raise InvalidInputError(f"workflow {workflow_id} is archived; unarchive it to run it")
    if worker_file is not None:
        listed = parse_worker_file(worker_file)
        stored = {w.key for w in stored_workers(session, workflow_id)}
        new = [w for w in listed if w.key not in stored]
        if new:
            click.echo(f"Adding {len(new)} worker(s) from {worker_file}", err=session.fmt == "json")
            _add(session, workflow_id, new, settings, parallel, strict=False)
    workers = _require_workers(session, workflow_id)
    _check_url(session, client.url, workers)
    click.echo(f"{len(workers)} worker(s) for workflow {workflow_id}", err=session.fmt == "json")

    if skip_version_check:
        usable = workers
        checks = []
    else:
        local = _local_version()
        checks = fan_out(workers, lambda w: ops.remote_version(settings, w, torc_path), parallel)
        for check in checks:
            if check.ok and check.data["version"] != local:
                check.ok = False
                check.message = (f"torc {check.data['version']} there, {local} here "
                                 "(install the same version, or --skip-version-check)")
        usable = [c.worker for c in checks if c.ok]
    failed_checks = [c for c in checks if not c.ok]
    if not usable:
        _report(session, failed_checks, f"Started 0/{len(workers)} workers")
        sys.exit(1)

    # initialize here, once, so the workers do not race to do it
    if client.get(f"workflows/{workflow_id}/is_uninitialized")["is_uninitialized"]:
        manager.initialize(client, workflow_id)
        click.echo(f"Initialized workflow {workflow_id}", err=session.fmt == "json")

    def start(worker: Worker) -> ops.Outcome:
        directory = ops.output_dir_for(output_dir, worker)
        command = ops.worker_command(torc_path, client.url, workflow_id, directory, poll_interval,
                                     num_cpus, memory_gb, num_gpus, max_parallel_jobs)
        return ops.start_worker(settings, worker, ops.Paths.of(directory, workflow_id), command)

    started = fan_out(usable, start, parallel)
    by_key = {o.worker.key: o for o in [*failed_checks, *started]}
    outcomes = [by_key[w.key] for w in workers]
    ok = sum(o.ok for o in outcomes)
    _report(session, outcomes, f"Started {ok}/{len(workers)} workers")
    _exit_if_failed(outcomes)


def _per_worker(session: Session, workflow_id: int, output_dir: str, kwargs: dict[str, Any],
                action: Callable[[SshSettings, Worker, ops.Paths], ops.Outcome]) -> list[ops.Outcome]:
    settings = _settings(kwargs)
    workers = _require_workers(session, workflow_id)
    return fan_out(workers, lambda w: action(settings, w, ops.Paths.of(ops.output_dir_for(output_dir, w),
                                                                       workflow_id)),
                   kwargs["max_parallel_ssh"])


@remote.command("status")
@click.argument("workflow_id", type=int)
@click.option("-o", "--output-dir", default=DEFAULT_OUTPUT_DIR, show_default=True,
              help=DIR_HELP + " (as given to run).")
@ssh_options
@click.pass_obj
def status(session: Session, workflow_id: int, output_dir: str, **kwargs: Any) -> None:
    """Show whether each worker of WORKFLOW_ID is running, done, failed or stopped."""
    outcomes = _per_worker(session, workflow_id, output_dir, kwargs, ops.worker_state)
    if session.fmt == "json":
        emit("json", [o.to_json() for o in outcomes])
    else:
        emit("table", [{"worker": o.worker.original, "state": o.data.get("state"),
                        "detail": o.message} for o in outcomes], ["worker", "state", "detail"],
             f"remote workers of workflow {workflow_id}")
        running = sum(o.data.get("state") == "running" for o in outcomes)
        click.echo(f"{running}/{len(outcomes)} workers running")
    _exit_if_failed(outcomes)


@remote.command("stop")
@click.argument("workflow_id", type=int)
@click.option("-o", "--output-dir", default=DEFAULT_OUTPUT_DIR, show_default=True,
              help=DIR_HELP + " (as given to run).")
@click.option("--force", is_flag=True, help="SIGKILL instead of SIGTERM (the worker cannot clean up its jobs).")
@ssh_options
@click.pass_obj
def stop(session: Session, workflow_id: int, output_dir: str, force: bool, **kwargs: Any) -> None:
    """Stop the workers of WORKFLOW_ID: SIGTERM, so each records its running jobs as terminated."""
    if session.fmt != "json":
        click.echo(f"Stopping workers (SIG{'KILL' if force else 'TERM'})...")
    outcomes = _per_worker(session, workflow_id, output_dir, kwargs,
                           lambda s, w, p: ops.stop_worker(s, w, p, force))
    _report(session, outcomes, f"{sum(o.ok for o in outcomes)}/{len(outcomes)} workers handled")
    _exit_if_failed(outcomes)


@remote.command("collect-logs")
@click.argument("workflow_id", type=int)
@click.option("-l", "--local-output-dir", type=click.Path(file_okay=False, path_type=Path), default="remote_logs",
              show_default=True, help="Logs go to LOCAL_OUTPUT_DIR/<worker>/.")
@click.option("--remote-output-dir", "-o", default=DEFAULT_OUTPUT_DIR, show_default=True,
              help=DIR_HELP + " (as given to run).")
@click.option("--delete", is_flag=True, help="Delete each remote directory once its logs are here.")
@ssh_options
@click.pass_obj
def collect_logs(session: Session, workflow_id: int, local_output_dir: Path, remote_output_dir: str, delete: bool,
                 **kwargs: Any) -> None:
    """Copy each worker's output directory (worker log, job logs) here with scp."""
    try:
        local_output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create {local_output_dir}: {exc.strerror or exc}") from None
    outcomes = _per_worker(session, workflow_id, remote_output_dir, kwargs,
                           lambda s, w, p: ops.collect_logs(s, w, p, local_output_dir, delete))
    _report(session, outcomes,
            f"Collected logs from {sum(o.ok for o in outcomes)}/{len(outcomes)} workers into {local_output_dir}")
    _exit_if_failed(outcomes)


@remote.command("delete-logs")
@click.argument("workflow_id", type=int)
@click.option("--remote-output-dir", "-o", default=DEFAULT_OUTPUT_DIR, show_default=True,
              help=DIR_HELP + " (as given to run).")
@ssh_options
@click.pass_obj
def delete_logs(session: Session, workflow_id: int, remote_output_dir: str, **kwargs: Any) -> None:
    """Delete the output directory on every worker (refused where a worker still runs)."""
    outcomes = _per_worker(session, workflow_id, remote_output_dir, kwargs, ops.delete_logs)
    _report(session, outcomes, f"{sum(o.ok for o in outcomes)}/{len(outcomes)} workers cleaned")
    _exit_if_failed(outcomes)

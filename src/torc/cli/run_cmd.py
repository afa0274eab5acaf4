"""`torc run`: create (or resume) a workflow and run its jobs on this machine."""

from __future__ import annotations

from pathlib import Path

import click

from torc.cli.session import Session
from torc.client import DEFAULT_URL, TorcClient
from torc.core.errors import InvalidInputError
from torc.runner.local import LocalRunner, RunnerOptions
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


def _check_required_files(client: TorcClient, workflow_id: int) -> None:
    ids = client.get(f"workflows/{workflow_id}/required_existing_files")["files"]
    missing = [f["path"] for f in (client.get(f"files/{i}") for i in ids) if not Path(f["path"]).exists()]
    if missing:
        raise InvalidInputError(
            f"workflow {workflow_id} needs input files that do not exist: {', '.join(missing)} "
            "(create them, or pass --skip-checks)"
        )


@click.command()
@click.argument("spec_or_id")
@click.option("--max-parallel-jobs", type=click.IntRange(min=1), default=None,
              help="Run at most N jobs at once and ignore resource requirements (queue mode).")
@click.option("--num-cpus", type=click.IntRange(min=1), default=None, help="CPUs to offer [default: all].")
@click.option("--memory-gb", type=click.FloatRange(min=0), default=None, help="Memory to offer [default: all].")
@click.option("--num-gpus", type=click.IntRange(min=0), default=None, help="GPUs to offer [default: detected].")
@click.option("-p", "--poll-interval", type=click.FloatRange(min=0.01), default=None,
              help="Seconds between checks while no job of this runner is active [config client.run; 5].")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Job logs, runner files and (embedded server) the database go here "
                   "[config client.run; torc_output].")
@click.option("--skip-checks", is_flag=True, help="Do not check that required input files exist.")
@click.pass_obj
def run(session: Session, spec_or_id: str, max_parallel_jobs: int | None, num_cpus: int | None,
        memory_gb: float | None, num_gpus: int | None, poll_interval: float | None, output_dir: Path | None,
        skip_checks: bool) -> None:
    """Run a workflow on this machine: SPEC_OR_ID is a spec file (YAML, JSON, JSON5) or a workflow id.

    With no server configured or reachable, torc starts one itself on OUTPUT_DIR/torc.db.
    A workflow id that already ran resumes: only jobs that are not complete run.
    """
    defaults = session.config().client.run
    output_dir = (output_dir or Path(defaults.output_dir)).resolve()
    poll_interval = poll_interval or defaults.poll_interval
    max_parallel_jobs = max_parallel_jobs or defaults.max_parallel_jobs
    num_cpus = num_cpus or defaults.num_cpus
    memory_gb = memory_gb if memory_gb is not None else defaults.memory_gb
    num_gpus = num_gpus if num_gpus is not None else defaults.num_gpus
    output_dir.mkdir(parents=True, exist_ok=True)
    client = _connect(session, output_dir)
    if _is_spec(spec_or_id):
        from torc.spec.create import create_from_file

        workflow_id = create_from_file(client, spec_or_id)
        click.echo(f"Created workflow {workflow_id} from {spec_or_id}")
        fresh = True
    else:
        try:
            workflow_id = int(spec_or_id)
        except ValueError:
            raise InvalidInputError(f"{spec_or_id!r} is neither a spec file nor a workflow id") from None
        client.get(f"workflows/{workflow_id}")
        fresh = client.get(f"workflows/{workflow_id}/is_uninitialized")["is_uninitialized"]
    if fresh:
        if not skip_checks:
            _check_required_files(client, workflow_id)
        client.post(f"workflows/{workflow_id}/initialize_jobs")
    options = RunnerOptions(
        output_dir=output_dir,
        num_cpus=num_cpus or detect_cpus(),
        memory_gb=memory_gb if memory_gb is not None else detect_memory_gb(),
        num_gpus=num_gpus if num_gpus is not None else detect_gpus(),
        max_parallel_jobs=max_parallel_jobs,
        poll_interval=poll_interval,
    )
    summary = LocalRunner(client, workflow_id, options, log=click.echo).run()
    counts = client.get(f"workflows/{workflow_id}/is_complete")
    click.echo(f"Workflow {workflow_id}: {summary.completed} completed, {summary.failed} failed here"
               f"{'; workflow complete' if counts['is_complete'] else ''}. Job logs: {output_dir / 'job_stdio'}")
    if session.database is not None:
        click.echo(f"Inspect it with: torc --database {session.database} jobs list {workflow_id}")
    if summary.failed:
        raise SystemExit(1)

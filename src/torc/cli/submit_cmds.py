"""Submitting workflows to Slurm: `torc submit`, `torc submit-slurm`, `torc slurm schedule-nodes`, `torc slurm sacct`,
and the runner inside each allocation, `torc slurm-job-runner` (also `torc-slurm-job-runner`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from torc.cli.common import note, pass_session
from torc.cli.output import emit
from torc.cli.session import Session
from torc.cli.slurm_cmds import planning_options
from torc.client import manager
from torc.core.errors import InvalidInputError, TorcError

SCHEDULED_COLUMNS = ["id", "scheduler_id", "scheduler_config_id", "status"]
SACCT_COLUMNS = ["scheduled_node", "slurm_job_id", "status", "state", "exit_code", "elapsed", "max_rss"]


def _require_server(session: Session) -> Any:
    """Runners in allocations reach the server over the network: no embedded server here."""
    if session.database is not None:
        raise InvalidInputError("Slurm allocations need a torc-server that compute nodes can reach: give --url "
                                "(or TORC_API_URL / client.api_url), not --database")
    return session.client()


def _poll_interval(session: Session, given: float | None) -> float:
    return given or float(session.config().client.slurm.poll_interval)


def _output_dir(session: Session, given: Path | None) -> Path:
    out = (given or Path(session.config().client.run.output_dir)).resolve()
    (out / "job_stdio").mkdir(parents=True, exist_ok=True)
    return out


@click.command()
@click.argument("spec_or_id")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Batch scripts, Slurm output, runner logs and job logs go here [config client.run; torc_output].")
@click.option("-p", "--poll-interval", type=click.FloatRange(min=0.1), default=None,
              help="Poll interval of the runners in the allocations [config client.slurm.poll_interval; 30].")
@click.option("--keep-submission-scripts", is_flag=True,
              help="Keep the generated sbatch scripts [config client.slurm.keep_submission_scripts].")
@click.option("--skip-checks", is_flag=True, help="Do not check that required input files exist.")
@pass_session
def submit(session: Session, spec_or_id: str, output_dir: Path | None, poll_interval: float | None,
           keep_submission_scripts: bool, skip_checks: bool) -> None:
    """Submit a workflow to Slurm: SPEC_OR_ID is a spec file (created first) or a workflow id.

    The workflow is initialized (a workflow id that already ran resumes, as with `torc run ID`), then
    its on_workflow_start schedule_nodes actions with scheduler_type slurm (and on_jobs_ready ones whose
    jobs are ready already) are claimed and their allocations requested with sbatch. Later stages are
    requested by the runners inside the allocations when their jobs become ready.
    """
    client = _require_server(session)
    workflow_id = _prepare(client, spec_or_id, skip_checks)
    _submit_start_actions(session, client, workflow_id, output_dir, poll_interval, keep_submission_scripts)


def _submit_start_actions(session: Session, client: Any, workflow_id: int, output_dir: Path | None,
                          poll_interval: float | None, keep_submission_scripts: bool) -> None:
    """Request the allocations of a workflow's start actions (see `submit`) and show them."""
    from torc.slurm.submit import schedule_slurm_nodes

    out = _output_dir(session, output_dir)
    poll = _poll_interval(session, poll_interval)
    keep = keep_submission_scripts or session.config().client.slurm.keep_submission_scripts
    host = urlsplit(client.url).hostname or ""
    if host in ("localhost", "127.0.0.1", "::1"):
        note(f"note: the runners will reach the server at {client.url}; that works only for allocations on this "
             "machine (give --url with a name compute nodes can reach)")
    # on_workflow_start actions, and on_jobs_ready ones whose jobs are ready already (a resumed
    # pipeline's later stage): nothing else would fire them
    pending = client.get(f"workflows/{workflow_id}/actions/pending", trigger_type=["on_workflow_start", "on_jobs_ready"])
    actions = [a for a in pending
               if a["action_type"] == "schedule_nodes" and a["action_config"].get("scheduler_type") == "slurm"]
    if not actions:
        raise InvalidInputError(
            f"workflow {workflow_id} has no pending on_workflow_start schedule_nodes action with scheduler_type "
            f"slurm; request allocations with `torc slurm schedule-nodes {workflow_id}`")
    submitted = []
    for action in actions:
        try:
            client.post(f"workflows/{workflow_id}/actions/{action['id']}/claim", {"compute_node_id": None})
        except TorcError:
            continue  # claimed meanwhile
        config = action["action_config"]
        nodes = schedule_slurm_nodes(
            client, workflow_id, int(config["scheduler_id"]), int(config.get("num_allocations") or 1), out,
            poll_interval=poll, max_parallel_jobs=config.get("max_parallel_jobs"),
            start_one_worker_per_node=bool(config.get("start_one_worker_per_node")), keep_submission_scripts=keep)
        submitted += nodes
    _show_submitted(session, workflow_id, submitted, out)


@click.command("submit-slurm")
@click.argument("spec_file", metavar="SPEC", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@planning_options("the spec's")
@click.option("--overwrite", is_flag=True, help="Replace the spec's own Slurm schedulers and actions.")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Batch scripts, Slurm output, runner logs, job logs and the planned spec go here "
                   "[config client.run; torc_output].")
@click.option("-p", "--poll-interval", type=click.FloatRange(min=0.1), default=None,
              help="Poll interval of the runners in the allocations [config client.slurm.poll_interval; 30].")
@click.option("--keep-submission-scripts", is_flag=True, help="Keep the generated sbatch scripts.")
@click.option("--skip-checks", is_flag=True, help="Do not check that required input files exist.")
@pass_session
def submit_slurm(session: Session, spec_file: Path, account: str | None, profile_name: str | None,
                 single_allocation: bool, group_by: str, walltime_strategy: str, walltime_multiplier: float,
                 overwrite: bool, output_dir: Path | None, poll_interval: float | None, keep_submission_scripts: bool,
                 skip_checks: bool) -> None:
    """Plan Slurm allocations for SPEC from the HPC profile, create the workflow and submit it.

    The same as `torc slurm generate` (schedulers sized from the profile's partitions and
    schedule_nodes actions: start allocations now, later stages when their jobs become ready)
    followed by `torc submit` on the result. The planned spec is kept as
    OUTPUT_DIR/<name>.slurm.yaml. Nothing is created when planning fails.
    """
    from torc.cli.slurm_cmds import dump_spec, plan_spec
    from torc.client.from_spec import create_workflow
    from torc.spec.load import spec_from_data

    client = _require_server(session)
    plan = plan_spec(session, spec_file, account=account, profile_name=profile_name,
                     single_allocation=single_allocation, group_by=group_by, walltime_strategy=walltime_strategy,
                     walltime_multiplier=walltime_multiplier, overwrite=overwrite)
    source = str(spec_file)
    spec, broken = spec_from_data(json.loads(json.dumps(plan.spec)), source)
    out = _output_dir(session, output_dir)
    planned = out / f"{spec_file.stem}.slurm.yaml"
    planned.write_text(dump_spec(plan.spec, "yaml"))
    workflow_id = create_workflow(client, spec, source, broken=broken)
    note(f"Created workflow {workflow_id} from {spec_file}: {len(plan.schedulers)} Slurm scheduler(s), "
         f"{plan.total_allocations} allocation(s) planned with profile {plan.profile} (plan: {planned})")
    manager.initialize(client, workflow_id, force=skip_checks)
    _submit_start_actions(session, client, workflow_id, out, poll_interval, keep_submission_scripts)


def _prepare(client: Any, spec_or_id: str, skip_checks: bool) -> int:
    """Create (from a spec) and initialize, or resume an existing workflow, as `torc run` does;
    messages on stderr so that -f json output stays JSON."""
    from torc.cli.run_cmd import _start_workflow

    return _start_workflow(client, spec_or_id, skip_checks, note=note, verb="submit")


def _show_submitted(session: Session, workflow_id: int, nodes: list[dict[str, Any]], out: Path) -> None:
    if session.fmt == "json":
        emit("json", {"workflow_id": workflow_id, "output_dir": str(out), "scheduled_compute_nodes": nodes})
        return
    ids = ", ".join(str(n["scheduler_id"]) for n in nodes)
    click.echo(f"Workflow {workflow_id}: submitted {len(nodes)} Slurm allocation(s) (job id(s) {ids}); "
               f"output in {out}. Follow it with `torc workflows status {workflow_id}` / `squeue`.")


@click.command("schedule-nodes")
@click.argument("workflow_id", type=int)
@click.option("--scheduler-config-id", type=int, default=None,
              help="The Slurm scheduler config to use [default: the workflow's only one].")
@click.option("-n", "--num", "num_allocations", type=click.IntRange(min=1), default=1, show_default=True,
              help="Number of allocations.")
@click.option("-j", "--job-prefix", default="worker", show_default=True, help="Prefix of the Slurm job names.")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Batch scripts, Slurm output, runner logs and job logs [config client.run; torc_output].")
@click.option("-p", "--poll-interval", type=click.FloatRange(min=0.1), default=None,
              help="Poll interval of the runners [config client.slurm.poll_interval; 30].")
@click.option("-m", "--max-parallel-jobs", type=click.IntRange(min=1), default=None,
              help="Runners run at most N jobs at once and ignore resource requirements.")
@click.option("--start-one-worker-per-node", is_flag=True, help="One runner per node of the allocation (srun).")
@click.option("--keep-submission-scripts", is_flag=True, help="Keep the generated sbatch scripts.")
@pass_session
def schedule_nodes(session: Session, workflow_id: int, scheduler_config_id: int | None, num_allocations: int,
                   job_prefix: str, output_dir: Path | None, poll_interval: float | None,
                   max_parallel_jobs: int | None, start_one_worker_per_node: bool,
                   keep_submission_scripts: bool) -> None:
    """Request Slurm allocations for a workflow now (each runs torc-slurm-job-runner)."""
    from torc.slurm.submit import schedule_slurm_nodes

    client = _require_server(session)
    if scheduler_config_id is None:
        configs = list(client.iter_items("slurm_schedulers", workflow_id=workflow_id))
        if len(configs) != 1:
            names = ", ".join(f"{c['id']} ({c.get('name')})" for c in configs) or "none"
            raise click.UsageError(f"workflow {workflow_id} has {len(configs)} Slurm scheduler configs ({names}); "
                                   "choose one with --scheduler-config-id")
        scheduler_config_id = configs[0]["id"]
    keep = keep_submission_scripts or session.config().client.slurm.keep_submission_scripts
    out = _output_dir(session, output_dir)
    nodes = schedule_slurm_nodes(client, workflow_id, scheduler_config_id, num_allocations, out, prefix=job_prefix,
                                 poll_interval=_poll_interval(session, poll_interval),
                                 max_parallel_jobs=max_parallel_jobs,
                                 start_one_worker_per_node=start_one_worker_per_node, keep_submission_scripts=keep)
    _show_submitted(session, workflow_id, nodes, out)


@click.command("sacct")
@click.argument("workflow_id", type=int)
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where --save-json writes [default: torc_output].")
@click.option("--save-json", is_flag=True, help="Also write sacct_wf<W>.json to the output directory.")
@pass_session
def sacct_cmd(session: Session, workflow_id: int, output_dir: Path | None, save_json: bool) -> None:
    """Slurm's accounting for each allocation of a workflow: state, exit code, elapsed time, MaxRSS.

    A scheduled compute node whose Slurm job has ended (its runner killed before it could say so) is
    set complete.
    """
    from torc.slurm.commands import sacct

    client = session.client()
    rows = []
    for node in client.iter_items("scheduled_compute_nodes", workflow_id=workflow_id):
        if node.get("scheduler_type") != "slurm" or not int(node.get("scheduler_id") or 0):
            continue
        acct = sacct(str(node["scheduler_id"]))
        if acct is not None and acct.finished and node["status"] != "complete":
            node = client.put(f"scheduled_compute_nodes/{node['id']}", {**node, "status": "complete"})
        row = {"scheduled_node": node["id"], "slurm_job_id": str(node["scheduler_id"]), "status": node["status"]}
        if acct is None:
            row.update(state="UNKNOWN (not in sacct yet)")
        else:
            row.update(state=acct.state, exit_code=acct.exit_code, elapsed=acct.elapsed, max_rss=acct.max_rss,
                       nodes=acct.nodes, submit=acct.submit, start=acct.start, end=acct.end)
        rows.append(row)
    if save_json:
        path = _output_dir(session, output_dir) / f"sacct_wf{workflow_id}.json"
        path.write_text(json.dumps(rows, indent=2))
        note(f"wrote {path}")
    if session.fmt == "json":
        emit("json", rows)
    else:
        emit("table", rows, SACCT_COLUMNS, f"Slurm allocations of workflow {workflow_id}")


def _run_allocation(url: str, workflow_id: int, output_dir: Path, max_parallel_jobs: int | None,
                    poll_interval: float | None) -> int:
    from torc.cli.run_cmd import _monitor
    from torc.config import load_config
    from torc.slurm.allocation import run_allocation

    config = load_config().client.slurm
    summary = run_allocation(url, workflow_id, output_dir, max_parallel_jobs=max_parallel_jobs,
                             poll_interval=poll_interval or float(config.poll_interval),
                             strict_scheduler_match=config.strict_scheduler_match, monitor_factory=_monitor)
    return 130 if summary.interrupted else 0


RUNNER_PARAMS = [
    click.argument("url"),
    click.argument("workflow_id", type=int),
    click.argument("output_dir", type=click.Path(file_okay=False, path_type=Path)),
    click.option("--max-parallel-jobs", type=click.IntRange(min=1), default=None,
                 help="Run at most N jobs at once and ignore resource requirements."),
    click.option("-p", "--poll-interval", type=click.FloatRange(min=0.1), default=None,
                 help="Seconds between checks [config client.slurm.poll_interval; 30]."),
]


def _runner_params(func: Any) -> Any:
    for param in reversed(RUNNER_PARAMS):
        func = param(func)
    return func


@click.command("slurm-job-runner")
@_runner_params
def slurm_job_runner(url: str, workflow_id: int, output_dir: Path, max_parallel_jobs: int | None,
                     poll_interval: float | None) -> None:
    """The job runner inside a Slurm allocation (started by the generated batch script)."""
    try:
        code = _run_allocation(url, workflow_id, output_dir, max_parallel_jobs, poll_interval)
    except TorcError as exc:
        click.secho(f"Error: {exc.message}", fg="red", err=True)
        raise SystemExit(1) from None
    if code:
        raise SystemExit(code)


def slurm_job_runner_main() -> None:
    """Console script `torc-slurm-job-runner`."""
    slurm_job_runner(prog_name="torc-slurm-job-runner")


COMMANDS = (submit, submit_slurm, slurm_job_runner)  # top-level `torc` commands
SLURM_COMMANDS = (schedule_nodes, sacct_cmd)  # under `torc slurm`

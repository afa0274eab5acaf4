"""`torc slurm`: Slurm scheduler configs of a workflow (create/update/list/get/delete) and
`slurm generate`, which plans schedulers and schedule_nodes actions for a spec file,
`slurm regenerate`, which re-plans them for a workflow's unfinished jobs, and `slurm parse-logs`,
which finds known failures in the allocations' Slurm output.

Other Slurm commands are added to the `slurm` group by importing it from this module.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml

from torc.cli.common import done, list_records, note, paging_options, pass_session, show_record, update_record
from torc.cli.output import emit
from torc.cli.session import Session
from torc.core.errors import InvalidInputError

SLURM_COLUMNS = ["id", "name", "account", "partition", "nodes", "walltime", "mem", "gres", "qos"]
PLAN_COLUMNS = ["scheduler", "partition", "resource_requirements", "jobs", "nodes", "walltime", "mem", "gres",
                "allocations", "trigger"]


@click.group()
def slurm() -> None:
    """Slurm scheduler configs of a workflow, and planning them for a spec (`slurm generate`)."""


def _check_walltime(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from torc.core.units import parse_walltime_seconds

    try:
        parse_walltime_seconds(value)
    except InvalidInputError as exc:
        raise click.BadParameter(exc.message) from None
    return value


def scheduler_options(create: bool):
    """The sbatch options of a scheduler config; defaults for create, all optional for update."""

    def default(value: Any) -> dict[str, Any]:
        return {"default": value, "show_default": True} if create else {"default": None}

    def decorate(func):
        options = [
            (("-n", "--name"), str, {"required": True} if create else {}, "Name of the scheduler config."),
            (("-a", "--account"), str, {"required": True} if create else {}, "Slurm account."),
            (("-g", "--gres"), str, {}, "Generic resources, e.g. gpu:2."),
            (("-m", "--mem"), str, {}, "Memory per node, e.g. 180G."),
            (("-N", "--nodes"), click.IntRange(min=1), default(1), "Nodes per allocation."),
            (("-p", "--partition"), str, {}, "Partition."),
            (("-q", "--qos"), str, default("normal"), "Quality of service."),
            (("-t", "--tmp"), str, {}, "Local disk per node, e.g. 100G."),
            (("-W", "--walltime"), str, {**default("04:00:00"), "callback": _check_walltime},
             "Time limit, HH:MM:SS or D-HH:MM:SS."),
            (("--ntasks-per-node",), click.IntRange(min=1), {}, "Tasks per node."),
            (("-e", "--extra"), str, {}, "Extra sbatch options, written as they are."),
        ]
        for decls, kind, extra, help_text in reversed(options):
            func = click.option(*decls, type=kind, help=help_text, **extra)(func)
        return func

    return decorate


@slurm.command("create")
@click.argument("workflow_id", type=int)
@scheduler_options(create=True)
@pass_session
def slurm_create(session: Session, workflow_id: int, **fields: Any) -> None:
    """Create a Slurm scheduler config in a workflow."""
    body = {"workflow_id": workflow_id, **{k: v for k, v in fields.items() if v is not None}}
    record = session.client().post("slurm_schedulers", body)
    show_record(session, record, f"Slurm scheduler {record['id']}")


@slurm.command("update")
@click.argument("id", type=int)
@scheduler_options(create=False)
@pass_session
def slurm_update(session: Session, id: int, **changes: Any) -> None:
    """Change a Slurm scheduler config; only the options given change."""
    record = update_record(session, f"slurm_schedulers/{id}", changes)
    show_record(session, record, f"Slurm scheduler {id}")


@slurm.command("list")
@click.argument("workflow_id", type=int)
@paging_options()
@pass_session
def slurm_list(session: Session, workflow_id: int, **paging: Any) -> None:
    """List the Slurm scheduler configs of a workflow."""
    list_records(session, "slurm_schedulers", SLURM_COLUMNS, "Slurm schedulers", **paging, workflow_id=workflow_id)


@slurm.command("get")
@click.argument("id", type=int)
@pass_session
def slurm_get(session: Session, id: int) -> None:
    """Show one Slurm scheduler config."""
    show_record(session, session.client().get(f"slurm_schedulers/{id}"), f"Slurm scheduler {id}")


@slurm.command("delete")
@click.argument("ids", type=int, nargs=-1, required=True)
@pass_session
def slurm_delete(session: Session, ids: tuple[int, ...]) -> None:
    """Delete Slurm scheduler configs by id."""
    deleted = [session.client().delete(f"slurm_schedulers/{i}") for i in ids]
    done(session, f"Deleted Slurm scheduler(s) {', '.join(map(str, ids))}.", deleted if len(ids) > 1 else deleted[0])


# ---- generate ---------------------------------------------------------------------------------


class _SpecDumper(yaml.SafeDumper):
    """YAML with multi-line strings (commands, scripts) as literal blocks."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value and not any(c in value for c in "\r\t") else None
    if style and value != value.rstrip(" "):
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_SpecDumper.add_representer(str, _str_representer)


def dump_spec(data: dict[str, Any], fmt: str) -> str:
    """A spec dict as YAML or JSON text."""
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    return yaml.dump(data, Dumper=_SpecDumper, sort_keys=False, allow_unicode=True, width=120)


def _output_format(path: Path | None, spec_path: Path) -> str:
    suffix = (path or spec_path).suffix.lower()
    if suffix in (".json", ".json5"):
        return "json"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    if path is not None:
        raise click.BadParameter(f"cannot write {suffix or 'a file without extension'}: use .yaml, .yml or .json",
                                 param_hint="-o/--output")
    return "yaml"


def planning_options(whose: str) -> Callable[[Any], Any]:
    """The planning options `slurm generate`, `slurm regenerate` and `submit-slurm` share; `whose`
    names where the default account comes from ("the spec's", "the workflow's")."""
    options = [
        click.option("-a", "--account", help=f"Slurm account [default: {whose} slurm_defaults.account, the "
                                               "profile's or client.hpc.default_account]."),
        click.option("--profile", "profile_name",
                     help="HPC profile [default: the one detected here, else the live cluster]."),
        click.option("--single-allocation", is_flag=True,
                     help="One allocation (of as many nodes as needed) per scheduler."),
        click.option("--group-by", type=click.Choice(["resource-requirements", "partition"]),
                     default="resource-requirements", show_default=True,
                     help="One scheduler per resource requirements, or per partition they map to."),
        click.option("--walltime-strategy", type=click.Choice(["max-job-runtime", "max-partition-time"]),
                     default="max-job-runtime", show_default=True,
                     help="Allocation walltime: longest job runtime x multiplier, or the partition maximum."),
        click.option("--walltime-multiplier", type=click.FloatRange(min=1.0), default=1.5, show_default=True,
                     help="Multiplier for max-job-runtime."),
    ]

    def apply(func: Any) -> Any:
        for option in reversed(options):
            func = option(func)
        return func

    return apply


def plan_spec(session: Session, spec_file: Path, *, account: str | None, profile_name: str | None,
              single_allocation: bool = False, group_by: str = "resource-requirements",
              walltime_strategy: str = "max-job-runtime", walltime_multiplier: float = 1.5, overwrite: bool = False,
              add_actions: bool = True) -> Any:
    """The Slurm plan for a spec file (torc.slurm.plan.plan_schedulers) with the profile resolved and
    the account defaulted as the CLI does; its spec is checked to load. Warnings go to stderr."""
    from torc.cli.hpc_cmds import registry, resolve_profile
    from torc.slurm.plan import plan_schedulers
    from torc.spec.load import parse_file, spec_from_data

    data, source = parse_file(spec_file)
    if not isinstance(data, dict):
        raise InvalidInputError(f"{source}: expected a mapping of workflow fields at the top level")
    reg = registry(session)
    profile = resolve_profile(session, profile_name, reg=reg)
    if not account:
        defaults = data.get("slurm_defaults")
        account = (defaults.get("account") if isinstance(defaults, dict) else None) or reg.account_for(profile)
    plan = plan_schedulers(data, profile, account=account, single_allocation=single_allocation, group_by=group_by,
                           walltime_strategy=walltime_strategy, walltime_multiplier=walltime_multiplier,
                           overwrite=overwrite, add_actions=add_actions, source=source)
    spec_from_data(json.loads(json.dumps(plan.spec)), source)  # what we write must load
    for warning in plan.warnings:
        note(f"Warning: {warning}")
    return plan


@slurm.command("generate")
@click.argument("spec_file", metavar="SPEC", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@planning_options("the spec's")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the spec here (.yaml/.yml/.json) instead of stdout.")
@click.option("--no-actions", is_flag=True, help="Add schedulers only, no schedule_nodes actions.")
@click.option("--overwrite", is_flag=True, help="Replace the spec's existing Slurm schedulers and actions.")
@click.option("--dry-run", is_flag=True, help="Show the plan; write nothing.")
@pass_session
def slurm_generate(session: Session, spec_file: Path, account: str | None, profile_name: str | None,
                   output: Path | None, single_allocation: bool, group_by: str, walltime_strategy: str,
                   walltime_multiplier: float, no_actions: bool, overwrite: bool, dry_run: bool) -> None:
    """Add Slurm schedulers and schedule_nodes actions to SPEC, sized from the HPC profile's partitions.

    Jobs without dependencies start at workflow start; jobs with dependencies get a `_deferred`
    scheduler whose allocations are requested when they become ready.
    """
    fmt = _output_format(output, spec_file)
    plan = plan_spec(session, spec_file, account=account, profile_name=profile_name,
                     single_allocation=single_allocation, group_by=group_by, walltime_strategy=walltime_strategy,
                     walltime_multiplier=walltime_multiplier, overwrite=overwrite, add_actions=not no_actions)
    if dry_run:
        if session.fmt == "json":
            emit("json", {"profile": plan.profile, "account": plan.account, "schedulers": plan.summary_rows(),
                          "total_allocations": plan.total_allocations, "warnings": plan.warnings,
                          "spec": plan.spec})
        else:
            emit("table", plan.summary_rows(), PLAN_COLUMNS,
                 f"Slurm plan for {spec_file.name} (profile {plan.profile}, account {plan.account})")
            click.echo(f"{len(plan.schedulers)} scheduler(s), {plan.total_allocations} allocation(s). "
                       "Dry run: nothing written.")
        return
    text = dump_spec(plan.spec, fmt)
    summary = (f"Planned {len(plan.schedulers)} Slurm scheduler(s), {plan.total_allocations} allocation(s) "
               f"with profile {plan.profile}, account {plan.account}.")
    if output is None:
        sys.stdout.write(text)
        note(summary)
    else:
        output.write_text(text)
        note(f"{summary} Wrote {output}.")


# ---- parse-logs -------------------------------------------------------------------------------

LOG_COLUMNS = ["slurm_job_id", "scheduled_node", "kind", "severity", "jobs", "file", "line"]


@slurm.command("parse-logs")
@click.argument("workflow_id", type=int)
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the allocations wrote slurm_output_wf<W>_sl<JOB>.o/.e [config client.run; torc_output].")
@click.option("--errors-only", is_flag=True, help="Only errors (OOM, time limit, node failure, cancel, srun), "
                                                  "not warnings (signals).")
@pass_session
def slurm_parse_logs(session: Session, workflow_id: int, output_dir: Path | None, errors_only: bool) -> None:
    """Scan the Slurm output files of a workflow's allocations for known failures (out of memory,
    time limit, node failure, cancelled, srun/launch errors) and name the torc jobs that ran in each
    affected allocation."""
    from torc.slurm.logs import correlate, log_files, scan_files

    out = (output_dir or Path(session.config().client.run.output_dir)).resolve()
    files = log_files(out, workflow_id)
    findings = scan_files(files)
    if errors_only:
        findings = [f for f in findings if f.severity == "error"]
    if findings:
        client = session.client()
        findings = correlate(findings, client.iter_items("scheduled_compute_nodes", workflow_id=workflow_id),
                             client.iter_items("compute_nodes", workflow_id=workflow_id),
                             client.iter_items("results", workflow_id=workflow_id),
                             client.iter_items("jobs", workflow_id=workflow_id))
    if session.fmt == "json":
        emit("json", {"workflow_id": workflow_id, "output_dir": str(out), "files_scanned": len(files),
                      "findings": [f.as_dict() for f in findings]})
        return
    rows = [{"slurm_job_id": f.slurm_job_id, "scheduled_node": f.scheduled_compute_node_id, "kind": f.kind,
             "severity": f.severity,
             "jobs": ", ".join(f"{n} ({i})" for i, n in zip(f.job_ids, f.job_names, strict=True)),
             "file": Path(f.file).name, "line": f.line} for f in findings]
    if not files:
        note(f"No Slurm output files of workflow {workflow_id} in {out}.")
    emit("table", rows, LOG_COLUMNS, f"Slurm log findings of workflow {workflow_id} ({len(files)} file(s) scanned)")


# ---- regenerate -------------------------------------------------------------------------------


@slurm.command("regenerate")
@click.argument("workflow_id", type=int)
@planning_options("the workflow's")
@click.option("--submit", "submit_now", is_flag=True, help="Request the start allocations now.")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="With --submit: batch scripts, Slurm output and logs [config client.run; torc_output].")
@click.option("-p", "--poll-interval", type=click.FloatRange(min=0.1), default=None,
              help="With --submit: poll interval of the runners [config client.slurm.poll_interval; 30].")
@click.option("--dry-run", is_flag=True, help="Show the plan; change nothing.")
@pass_session
def slurm_regenerate(session: Session, workflow_id: int, account: str | None, profile_name: str | None,
                     single_allocation: bool, group_by: str, walltime_strategy: str, walltime_multiplier: float,
                     submit_now: bool, output_dir: Path | None, poll_interval: float | None, dry_run: bool) -> None:
    """Plan new Slurm schedulers for a workflow's unfinished jobs (ready, blocked, uninitialized),
    e.g. after its allocations were cancelled or ran out of time.

    The workflow's Slurm schedule_nodes actions that have not run (triggered or not) are retired; new scheduler configs
    and schedule_nodes actions (is_recovery) are created: jobs waiting on others get on_jobs_ready
    actions, the rest start allocations, requested now with --submit (otherwise with
    `torc slurm schedule-nodes`).
    """
    from torc.slurm.regenerate import apply_regeneration

    client = _regenerate_client(session, submit_now)
    plan, jobs = plan_workflow(session, client, workflow_id, account, profile_name, single_allocation=single_allocation,
                               group_by=group_by, walltime_strategy=walltime_strategy,
                               walltime_multiplier=walltime_multiplier)
    if dry_run:
        count = sum(len(p.jobs) for p in plan.schedulers)
        if session.fmt == "json":
            emit("json", {"workflow_id": workflow_id, "profile": plan.profile, "account": plan.account,
                          "jobs": count, "schedulers": plan.summary_rows(),
                          "total_allocations": plan.total_allocations, "warnings": plan.warnings})
        else:
            emit("table", plan.summary_rows(), PLAN_COLUMNS,
                 f"Slurm plan for workflow {workflow_id} (profile {plan.profile}, account {plan.account})")
            click.echo(f"{len(plan.schedulers)} scheduler(s), {plan.total_allocations} allocation(s) for "
                       f"{count} job(s). Dry run: nothing changed.")
        return
    regen = apply_regeneration(client, workflow_id, plan, jobs)
    if not submit_now:
        if session.fmt == "json":
            emit("json", {"workflow_id": workflow_id, "retired_action_ids": regen.retired, "created": regen.created})
        else:
            emit("table", regen.created, ["scheduler", "scheduler_id", "action_id", "trigger", "allocations", "jobs"],
                 "New Slurm schedulers and actions")
        note(regen.summary())
        for scheduler_id, config in regen.start:
            note(f"  request its start allocations with `torc slurm schedule-nodes {workflow_id} "
                 f"--scheduler-config-id {scheduler_id} -n {config['num_allocations']}` (or pass --submit)")
        return
    note(regen.summary())
    submit_regeneration(session, client, regen, output_dir, poll_interval)


def _regenerate_client(session: Session, submit_now: bool) -> Any:
    from torc.cli.submit_cmds import _require_server

    return _require_server(session) if submit_now else session.client()


def plan_workflow(session: Session, client: Any, workflow_id: int, account: str | None, profile_name: str | None,
                  **planning: Any) -> tuple[Any, list[dict[str, Any]]]:
    """torc.slurm.regenerate.plan_for_workflow with the profile and default account the CLI resolves."""
    from torc.cli.hpc_cmds import registry, resolve_profile
    from torc.slurm.regenerate import plan_for_workflow

    reg = registry(session)
    profile = resolve_profile(session, profile_name, reg=reg)
    plan, jobs = plan_for_workflow(client, workflow_id, profile, account, default_account=reg.account_for(profile),
                                   **planning)
    for warning in plan.warnings:
        note(f"Warning: {warning}")
    return plan, jobs


def submit_regeneration(session: Session, client: Any, regen: Any, output_dir: Path | None,
                        poll_interval: float | None, show: bool = True) -> list[dict[str, Any]]:
    """Request a regenerated plan's start allocations (and show them)."""
    from torc.cli.submit_cmds import _output_dir, _poll_interval, _show_submitted
    from torc.slurm.regenerate import submit_start_allocations

    out = _output_dir(session, output_dir)
    submitted = submit_start_allocations(client, regen, out, poll_interval=_poll_interval(session, poll_interval),
                                         keep_submission_scripts=session.config().client.slurm.keep_submission_scripts)
    if show:
        _show_submitted(session, regen.workflow_id, submitted, out)
    return submitted


def reconcile_slurm(client: Any, workflow_id: int) -> int:
    """Put back the jobs of allocations Slurm lost (torc.slurm.lost), a note for each; how many."""
    from torc.slurm.lost import reconcile_lost_allocations

    lost = reconcile_lost_allocations(client, workflow_id)
    for gone in lost:
        note(gone.describe())
    return len(lost)

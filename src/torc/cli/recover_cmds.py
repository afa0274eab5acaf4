"""`torc recover` and `torc watch`: diagnose the failures of a local run, give jobs that ran out of
memory or time more of it, and run them again (see docs/recovery.md)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click

from torc.cli.common import note
from torc.cli.output import emit
from torc.cli.run_cmd import (
    RunSettings,
    connect,
    exit_code,
    pop_run_settings,
    report_run,
    run_local,
    run_options,
)
from torc.cli.session import Session
from torc.client import TorcClient, manager, recovery
from torc.client.recovery import RecoveryPlan
from torc.reports import format_seconds

PLAN_COLUMNS = ["id", "job", "status", "rc", "cause", "memory", "runtime", "action"]
FAILED_STATUSES = ("failed", "terminated")


def recover_options(func: Callable) -> Callable:
    """The options that shape a recovery (shared by `torc recover` and `torc watch --recover`)."""
    multiplier = click.FloatRange(min=1, min_open=True)
    for option in reversed([
        click.option("--memory-multiplier", type=multiplier, default=recovery.DEFAULT_MEMORY_MULTIPLIER,
                     show_default=True,
                     help="OOM jobs get (max observed peak, or current memory if larger) x this."),
        click.option("--runtime-multiplier", type=multiplier, default=recovery.DEFAULT_RUNTIME_MULTIPLIER,
                     show_default=True, help="Jobs that ran out of time get their runtime x this."),
        click.option("--retry-unknown", is_flag=True,
                     help="Also retry failures of unknown cause (resources unchanged)."),
        click.option("--recovery-hook", metavar="CMD", default=None,
                     help="Run `CMD WORKFLOW_ID` (TORC_WORKFLOW_ID set) before resetting; failures of unknown "
                          "cause are then retried too. A failing hook stops the recovery."),
    ]):
        func = option(func)
    return func


def _change(old: str | None, new: str | None) -> str:
    if new is None or new == old:
        return old or ""
    return f"{old or '-'}->{new}"


def plan_rows(plan: RecoveryPlan) -> list[dict[str, Any]]:
    return [{"id": j.job_id, "job": j.job_name, "status": j.status, "rc": j.return_code, "cause": j.cause,
             "memory": _change(j.old_memory, j.new_memory), "runtime": _change(j.old_runtime, j.new_runtime),
             "action": j.action} for j in plan.jobs]


def show_plan(plan: RecoveryPlan, title: str) -> None:
    emit("table", plan_rows(plan), PLAN_COLUMNS, title)
    for job in plan.jobs:  # evidence below the table: too long for a column
        moved = f" -> {job.new_resource_requirements}" if job.new_resource_requirements else ""
        click.echo(f"{job.job_name} (id {job.job_id}), {job.cause}{moved}: " + "; ".join(job.evidence))
    for req in plan.new_requirements:
        click.echo(f"New resource requirements {req.name} (from {req.from_name or 'none'}): "
                   + ", ".join(f"{k} {v}" for k, v in req.record.items()) + f"; jobs {req.job_ids}")


def _hint_skipped(plan: RecoveryPlan) -> None:
    if plan.skipped:
        names = ", ".join(j.job_name for j in plan.skipped)
        note(f"Left alone (unknown cause): {names}. Retry them with --retry-unknown or a --recovery-hook.")


def make_plan(client: TorcClient, workflow_id: int, settings: RunSettings, dry_run: bool,
              memory_multiplier: float, runtime_multiplier: float, retry_unknown: bool,
              recovery_hook: str | None) -> RecoveryPlan:
    """Check the workflow, clean up orphans (unless dry_run), refuse while it runs, and plan."""
    recovery.check_workflow(client, workflow_id)
    notes = recovery.preflight(client, workflow_id, dry_run=dry_run)
    plan = recovery.plan_recovery(client, workflow_id, settings.output_dir, memory_multiplier, runtime_multiplier,
                                  retry_unknown=retry_unknown or recovery_hook is not None)
    plan.notes = notes + plan.notes
    return plan


def apply(client: TorcClient, plan: RecoveryPlan, recovery_hook: str | None) -> list[str]:
    """Run the hook (before anything changes), then apply the plan."""
    if recovery_hook:
        note(f"Running recovery hook: {recovery_hook} {plan.workflow_id}")
        recovery.run_hook(recovery_hook, plan.workflow_id, client.url)
    return recovery.apply_plan(client, plan)


def where_option(func: Callable) -> Callable:
    return click.option("--slurm/--local", "on_slurm", default=None,
                        help="Rerun in new Slurm allocations / on this machine [default: Slurm when the workflow "
                             "has Slurm schedulers].")(func)


def slurm_mode(client: TorcClient, workflow_id: int, on_slurm: bool | None) -> bool:
    """Whether recovery reruns in Slurm allocations; lost allocations are reconciled first."""
    from torc.cli.slurm_cmds import reconcile_slurm
    from torc.slurm.regenerate import runs_on_slurm

    if on_slurm is None:
        on_slurm = runs_on_slurm(client, workflow_id)
    if on_slurm:
        reconcile_slurm(client, workflow_id)
    return on_slurm


def resubmit(session: Session, client: TorcClient, workflow_id: int, settings: RunSettings,
             show: bool = True) -> list[dict[str, Any]] | None:
    """New Slurm allocations for the workflow's unfinished jobs, unless allocations that are still
    queued or running will take them; None when no job is left to run."""
    from torc.cli.slurm_cmds import plan_workflow, submit_regeneration
    from torc.cli.submit_cmds import _require_server
    from torc.slurm.regenerate import allocations_in_slurm, apply_regeneration

    _require_server(session)
    counts = client.get(f"workflows/{workflow_id}/job_counts")["counts"]
    if not any(counts.get(s) for s in ("ready", "blocked", "uninitialized")):
        return None
    live = allocations_in_slurm(client, workflow_id)
    if live:
        note(f"{len(live)} Slurm allocation(s) of workflow {workflow_id} are still queued or running; they take the "
             "jobs (no new allocation requested)")
        return []
    plan, jobs = plan_workflow(session, client, workflow_id, None, None)
    regen = apply_regeneration(client, workflow_id, plan, jobs)
    note(regen.summary())
    return submit_regeneration(session, client, regen, settings.output_dir, settings.poll_interval, show=show)


@click.command()
@click.argument("workflow_id", type=int)
@recover_options
@click.option("--dry-run", is_flag=True, help="Only show the plan (job, cause, evidence, old -> new resources).")
@click.option("--no-run", is_flag=True, help="Apply the plan but do not run the workflow (run it with `torc run ID`).")
@where_option
@run_options()
@click.pass_obj
def recover(session: Session, workflow_id: int, memory_multiplier: float, runtime_multiplier: float,
            retry_unknown: bool, recovery_hook: str | None, dry_run: bool, no_run: bool, on_slurm: bool | None,
            **kwargs: Any) -> None:
    """Rerun the failed jobs of a finished run with more memory or time where they ran out of it.

    Each failed or terminated job is diagnosed: out of memory (killed at its memory limit, or a peak
    at its requirement), out of time (stopped at its runtime limit, or ran >90% of it), or unknown.
    OOM and timeout jobs get NEW resource requirements (`<old>_recovered_<n>`, shared records are
    never edited), then they and their downstream run again on this machine as `torc run ID` would.
    Unknown failures are left alone unless --retry-unknown or --recovery-hook.

    Workflows with Slurm schedulers rerun in new allocations instead (see `torc slurm regenerate`):
    jobs of allocations Slurm lost go back to ready first, and unfinished jobs get allocations sized
    for their (new) requirements unless allocations that are still queued or running will take them.
    """
    settings = pop_run_settings(kwargs)
    client = connect(session, settings)
    on_slurm = slurm_mode(client, workflow_id, on_slurm) if not dry_run else bool(on_slurm)
    plan = make_plan(client, workflow_id, settings, dry_run, memory_multiplier, runtime_multiplier,
                     retry_unknown, recovery_hook)
    for line in plan.notes:
        note(line)
    if not plan.jobs:
        submitted = resubmit(session, client, workflow_id, settings, show=session.fmt != "json") \
            if on_slurm and not no_run else None
        if submitted is None:
            note(f"Nothing to recover: workflow {workflow_id} has no failed or terminated jobs.")
        if session.fmt == "json":
            emit("json", {**plan.to_json(), "applied": False, "scheduled_compute_nodes": submitted or []})
        return
    if dry_run:
        if session.fmt == "json":
            emit("json", {**plan.to_json(), "applied": False})
        else:
            show_plan(plan, f"recovery plan for workflow {workflow_id} (dry run: nothing changed)")
        _hint_skipped(plan)
        return
    if not plan.to_retry:
        if session.fmt == "json":
            emit("json", {**plan.to_json(), "applied": False})
        else:
            show_plan(plan, f"recovery plan for workflow {workflow_id}")
        note(f"Nothing to recover: no failure of workflow {workflow_id} has a known cause.")
        _hint_skipped(plan)
        return
    if session.fmt != "json":
        show_plan(plan, f"recovery plan for workflow {workflow_id}")
    for line in apply(client, plan, recovery_hook):
        note(line)
    _hint_skipped(plan)
    if no_run:
        if session.fmt == "json":
            emit("json", {**plan.to_json(), "applied": True})
        else:
            click.echo(f"Run it with: torc {'slurm regenerate --submit' if on_slurm else 'run'} {workflow_id}")
        return
    if on_slurm:
        submitted = resubmit(session, client, workflow_id, settings, show=session.fmt != "json")
        if session.fmt == "json":
            emit("json", {**plan.to_json(), "applied": True, "scheduled_compute_nodes": submitted or []})
        else:
            click.echo(f"Follow it with: torc watch {workflow_id}")
        return
    summary = run_local(session, client, workflow_id, settings)
    report_run(session, client, workflow_id, summary, settings, {"recovery": {**plan.to_json(), "applied": True}})
    code = exit_code(summary)
    if code:
        raise SystemExit(code)


def _counts_line(counts: dict[str, int]) -> str:
    shown = {k: v for k, v in counts.items() if v}
    return ", ".join(f"{n} {s}" for s, n in shown.items()) or "no jobs"


def _failures(client: TorcClient, workflow_id: int) -> list[dict[str, Any]]:
    return [j for status in FAILED_STATUSES for j in client.iter_items("jobs", workflow_id=workflow_id, status=status)]


@click.command()
@click.argument("workflow_id", type=int)
@click.option("-p", "--poll-interval", type=click.FloatRange(min=0.01), default=10.0, show_default=True,
              help="Seconds between checks.")
@click.option("--recover", "auto_recover", is_flag=True,
              help="When the workflow finishes with failures, recover them (see `torc recover`) and run again.")
@click.option("--max-retries", type=click.IntRange(min=0), default=3, show_default=True,
              help="With --recover: at most this many recovery rounds.")
@recover_options
@where_option
@run_options(poll_interval=False)
@click.pass_obj
def watch(session: Session, workflow_id: int, poll_interval: float, auto_recover: bool, max_retries: int,
          memory_multiplier: float, runtime_multiplier: float, retry_unknown: bool, recovery_hook: str | None,
          on_slurm: bool | None, **kwargs: Any) -> None:
    """Follow a workflow until it finishes: a line whenever the job counts change, jobs of dead
    runners cleaned up every round. Exits 0 when it completes without failures, 1 (listing them)
    otherwise; with --recover, failures are recovered and run again here (or, for workflows with
    Slurm schedulers, in new allocations), up to --max-retries rounds.
    """
    settings = pop_run_settings(kwargs)
    client = connect(session, settings)
    client.get(f"workflows/{workflow_id}")  # a clear error for an unknown id
    started = time.monotonic()
    rounds = 0
    last: dict[str, int] | None = None
    waiting_noted = False
    while True:
        on_slurm_now = slurm_mode(client, workflow_id, on_slurm)
        orphans = manager.find_orphans(client, workflow_id)
        if orphans:
            manager.fail_orphans(client, workflow_id, orphans)
            note(f"{len(orphans)} job(s) of runners that are gone were cleaned up")
        counts = client.get(f"workflows/{workflow_id}/job_counts")["counts"]
        if counts != last:
            stamp = datetime.now().strftime("%H:%M:%S")
            note(f"{stamp} workflow {workflow_id}: {_counts_line(counts)}")
            last = counts
        state = client.get(f"workflows/{workflow_id}/is_complete")
        if not state["is_complete"] and auto_recover and on_slurm_now and rounds < max_retries \
                and counts.get("ready") and _stranded(client, workflow_id):
            rounds += 1
            note(f"Recovery round {rounds} of at most {max_retries}: {counts['ready']} ready job(s) and no "
                 "allocation to run them")
            resubmit(session, client, workflow_id, settings, show=session.fmt != "json")
            continue
        if not state["is_complete"]:
            if not waiting_noted and client.get(f"workflows/{workflow_id}/is_uninitialized")["is_uninitialized"]:
                note(f"Workflow {workflow_id} has not started; waiting (start it with: torc run {workflow_id})")
                waiting_noted = True
            time.sleep(poll_interval)
            continue
        failures = _failures(client, workflow_id)
        if state.get("is_canceled"):
            _finish(session, workflow_id, counts, failures, rounds, started, "canceled")
        if not failures:
            _finish(session, workflow_id, counts, failures, rounds, started, "complete")
        if not auto_recover or rounds >= max_retries:
            why = "complete with failures" if not auto_recover else f"still failing after {rounds} recovery round(s)"
            _finish(session, workflow_id, counts, failures, rounds, started, why)
        if recovery.active_runners(client, workflow_id):  # finished, but a runner is still shutting down
            time.sleep(poll_interval)
            continue
        plan = make_plan(client, workflow_id, settings, False, memory_multiplier, runtime_multiplier,
                         retry_unknown, recovery_hook)
        for line in plan.notes:
            note(line)
        if not plan.to_retry:
            _hint_skipped(plan)
            _finish(session, workflow_id, counts, failures, rounds, started, "complete with failures of unknown cause")
        rounds += 1
        note(f"Recovery round {rounds} of at most {max_retries}")
        if session.fmt != "json":
            show_plan(plan, f"recovery plan for workflow {workflow_id}, round {rounds}")
        for line in apply(client, plan, recovery_hook):
            note(line)
        _hint_skipped(plan)
        if on_slurm_now:
            resubmit(session, client, workflow_id, settings, show=session.fmt != "json")
            last = None
            continue
        summary = run_local(session, client, workflow_id, settings)
        if summary.interrupted:
            note(f"Interrupted. Carry on with: torc run {workflow_id}")
            raise SystemExit(130)
        last = None


def _stranded(client: TorcClient, workflow_id: int) -> bool:
    """No runner and no queued or running allocation is left to take the ready jobs."""
    from torc.slurm.regenerate import allocations_in_slurm

    return not recovery.active_runners(client, workflow_id) and not allocations_in_slurm(client, workflow_id)


def _finish(session: Session, workflow_id: int, counts: dict[str, int], failures: list[dict[str, Any]],
            rounds: int, started: float, outcome: str) -> None:
    ok = outcome == "complete" and not failures
    if session.fmt == "json":
        emit("json", {"workflow_id": workflow_id, "outcome": outcome, "success": ok,
                      "job_counts": {k: v for k, v in counts.items() if v}, "recovery_rounds": rounds,
                      "failed_jobs": [{"id": j["id"], "name": j["name"], "status": j["status"]} for j in failures]})
    else:
        elapsed = format_seconds(time.monotonic() - started)
        if ok:
            click.echo(f"Workflow {workflow_id} is complete: {_counts_line(counts)} ({elapsed}, "
                       f"{rounds} recovery round(s))")
        else:
            click.echo(f"Workflow {workflow_id}: {outcome} ({_counts_line(counts)}; {rounds} recovery round(s))")
            if failures:
                emit("table", [{"job_id": j["id"], "job_name": j["name"], "status": j["status"]} for j in failures],
                     ["job_id", "job_name", "status"], "failed jobs")
                click.echo(f"Diagnose them with: torc recover {workflow_id} --dry-run")
    raise SystemExit(0 if ok else 1)

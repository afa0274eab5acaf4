"""New Slurm allocations for a workflow's unfinished jobs: `torc slurm regenerate`, and `torc recover`
/ `torc watch --recover` for workflows that run on Slurm.

The old plan's Slurm schedule_nodes actions that have not run are retired (triggered or not); new
scheduler configs are created and the jobs pinned to them, with one action per stage (is_recovery,
so reinitializing drops them): jobs waiting on others get on_jobs_ready actions, the rest start
allocations, requested by `submit_start_allocations`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torc.client import TorcClient
from torc.core.errors import InvalidInputError
from torc.slurm.commands import SlurmError, squeue_states
from torc.slurm.plan import REGENERATE_STATUSES, plan_schedulers, spec_from_records
from torc.slurm.profiles import HpcProfile
from torc.slurm.submit import live_allocations, schedule_slurm_nodes


@dataclass
class Regeneration:
    workflow_id: int
    plan: Any  # torc.slurm.plan.SchedulerPlan
    jobs: int  # how many jobs the plan covers
    retired: list[int] = field(default_factory=list)  # old action ids
    created: list[dict[str, Any]] = field(default_factory=list)  # one row per new action
    start: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (scheduler id, config) to request now

    def summary(self) -> str:
        return (f"Workflow {self.workflow_id}: {len(self.plan.schedulers)} new Slurm scheduler(s) for {self.jobs} "
                f"job(s) (profile {self.plan.profile}, account {self.plan.account}); {len(self.retired)} old "
                "action(s) retired.")


def runs_on_slurm(client: TorcClient, workflow_id: int) -> bool:
    """Whether the workflow's allocations come from Slurm (it has Slurm scheduler configs)."""
    return bool(client.get("slurm_schedulers", workflow_id=workflow_id, limit=1).get("items"))


def allocations_in_slurm(client: TorcClient, workflow_id: int) -> list[dict[str, Any]]:
    """The workflow's pending or active allocations that Slurm still lists (one it forgot, e.g.
    after a node failure, does not count; when Slurm cannot be asked, all of them count)."""
    nodes = live_allocations(client, workflow_id)
    if not nodes:
        return []
    try:
        listed = squeue_states([str(n["scheduler_id"]) for n in nodes], retry_for=10.0)
    except SlurmError:
        return nodes  # cannot tell: assume they live rather than requesting twice
    return [n for n in nodes if str(n["scheduler_id"]) in listed]


def plan_for_workflow(client: TorcClient, workflow_id: int, profile: HpcProfile, account: str | None, *,
                      single_allocation: bool = False, group_by: str = "resource-requirements",
                      walltime_strategy: str = "max-job-runtime", walltime_multiplier: float = 1.5,
                      default_account: str | None = None) -> tuple[Any, list[dict[str, Any]]]:
    """The plan for the workflow's unfinished jobs, and the workflow's jobs."""
    workflow = client.get(f"workflows/{workflow_id}")
    jobs = list(client.iter_items("jobs", workflow_id=workflow_id, include_relationships=True))
    rrs = list(client.iter_items("resource_requirements", workflow_id=workflow_id))
    spec = spec_from_records(workflow, jobs, rrs)
    if not spec["jobs"]:
        raise InvalidInputError(f"workflow {workflow_id} has no jobs that are {', '.join(REGENERATE_STATUSES)}: "
                                "nothing to plan (rerun failed or terminated jobs with `torc recover` first)")
    if not account:  # the workflow's defaults, else the account its allocations used so far
        defaults = spec.get("slurm_defaults")
        used = [s.get("account") for s in client.iter_items("slurm_schedulers", workflow_id=workflow_id)]
        account = (defaults.get("account") if isinstance(defaults, dict) else None) \
            or next((a for a in reversed(used) if a), None) or default_account
    plan = plan_schedulers(spec, profile, account=account, single_allocation=single_allocation, group_by=group_by,
                           walltime_strategy=walltime_strategy, walltime_multiplier=walltime_multiplier,
                           source=f"workflow {workflow_id}")
    return plan, jobs


def _unique_name(name: str, taken: set[str]) -> str:
    if name not in taken:
        taken.add(name)
        return name
    base = name.removesuffix("_scheduler")
    n = 2
    while f"{base}_regen{n}_scheduler" in taken:
        n += 1
    taken.add(f"{base}_regen{n}_scheduler")
    return f"{base}_regen{n}_scheduler"


def retire_slurm_actions(client: TorcClient, workflow_id: int) -> list[int]:
    """Retire the workflow's Slurm schedule_nodes actions that have not run, triggered or not."""
    retired = []
    for action in client.get(f"workflows/{workflow_id}/actions"):
        config = action.get("action_config") or {}
        if action["action_type"] == "schedule_nodes" and config.get("scheduler_type") == "slurm" \
                and (not action.get("executed") or action.get("persistent")):
            client.post(f"workflows/{workflow_id}/actions/{action['id']}/retire")
            retired.append(action["id"])
    return retired


def apply_regeneration(client: TorcClient, workflow_id: int, plan: Any, jobs: list[dict[str, Any]]) -> Regeneration:
    """Retire the old Slurm actions, create the plan's schedulers and actions, pin the jobs."""
    regen = Regeneration(workflow_id, plan, sum(len(p.jobs) for p in plan.schedulers))
    regen.retired = retire_slurm_actions(client, workflow_id)
    job_ids = {j["name"]: j["id"] for j in jobs}
    taken = {s.get("name") for s in client.iter_items("slurm_schedulers", workflow_id=workflow_id)}
    for planned in plan.schedulers:
        body = {**planned.spec, "name": _unique_name(planned.spec["name"], taken), "workflow_id": workflow_id}
        scheduler = client.post("slurm_schedulers", body)
        for name in planned.jobs:  # pin the jobs to their new scheduler (what strict matching claims by)
            client.put(f"jobs/{job_ids[name]}", {"scheduler_id": scheduler["id"]})
        for action in planned.actions:
            config = {"scheduler_type": "slurm", "scheduler_id": scheduler["id"],
                      "num_allocations": action["num_allocations"],
                      "start_one_worker_per_node": bool(action.get("start_one_worker_per_node"))}
            new = {"trigger_type": action["trigger_type"], "action_type": "schedule_nodes", "action_config": config,
                   "is_recovery": True}
            if action.get("jobs"):
                new["job_ids"] = sorted(job_ids[n] for n in action["jobs"])
            record = client.post(f"workflows/{workflow_id}/actions", new)
            regen.created.append({"scheduler": scheduler["name"], "scheduler_id": scheduler["id"],
                                  "action_id": record["id"], "trigger": action["trigger_type"],
                                  "allocations": action["num_allocations"],
                                  "jobs": len(action.get("jobs") or planned.jobs)})
            if action["trigger_type"] == "on_workflow_start":
                regen.start.append((scheduler["id"], config))
    return regen


def submit_start_allocations(client: TorcClient, regen: Regeneration, output_dir: Path, *, poll_interval: float,
                             keep_submission_scripts: bool = False) -> list[dict[str, Any]]:
    """Request the allocations of the plan's first stage; later stages come from their actions."""
    submitted: list[dict[str, Any]] = []
    for scheduler_id, config in regen.start:
        submitted += schedule_slurm_nodes(client, regen.workflow_id, scheduler_id, int(config["num_allocations"]),
                                          output_dir, poll_interval=poll_interval,
                                          start_one_worker_per_node=config["start_one_worker_per_node"],
                                          keep_submission_scripts=keep_submission_scripts)
    return submitted

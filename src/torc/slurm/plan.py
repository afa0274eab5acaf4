"""Planning Slurm allocations for a workflow spec (reference §6.1): `torc slurm generate`,
`torc submit-slurm`.

Jobs are grouped by resource requirements (or by the partition those map to). Each group is split
into jobs without dependencies, started by an ``on_workflow_start`` ``schedule_nodes`` action, and
jobs with dependencies, which get a ``<group>_deferred_scheduler`` and ``on_jobs_ready`` actions on
those jobs. Differences from torc, on purpose:

- A deferred group whose jobs sit at different depths of the dependency graph gets one
  ``on_jobs_ready`` action per depth (same scheduler). torc's single action waits until *every*
  listed job is ready, so a chain a -> b -> c of one requirement would wait for c before starting an
  allocation for b.
- Sequential time slots per allocation are counted from the allocation's own walltime, not from the
  partition's maximum (an allocation asking for 1.5 h cannot run 48 one-hour jobs in a row).
- An allocation asks for what the jobs it runs at once need: ``mem`` = jobs per node x job memory,
  ``gres=gpu:`` jobs per node x job GPUs, and ``--cpus-per-task`` (in ``extra``) jobs per node x job
  CPUs, so the runner inside sees the resources the plan counted on, on shared nodes too.
- ``--single-allocation`` asks for one allocation of as many nodes as the jobs need (one worker
  per node), capped at the partition's node limit.
- Multi-node jobs (``num_nodes`` > 1) get allocations of that many nodes.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from torc.core.errors import InvalidInputError
from torc.core.units import parse_duration_seconds, parse_memory_bytes
from torc.slurm.profiles import HpcPartition, HpcProfile, format_walltime

__all__ = ["GROUP_BY", "WALLTIME_STRATEGIES", "PlannedScheduler", "SchedulerPlan", "add_slurm_schedulers",
           "plan_schedulers"]

GROUP_BY = ("resource-requirements", "partition")
WALLTIME_STRATEGIES = ("max-job-runtime", "max-partition-time")
MERGE_THRESHOLD = 2  # with --group-by partition, merge a partition's two halves when they need <= 2 allocations
DEFAULT_RR = {"name": "default", "num_cpus": 1, "memory": "1m", "num_gpus": 0, "num_nodes": 1, "runtime": "P0DT1M"}
MIB = 1024 * 1024


@dataclass
class _Need:
    """What one job of a group needs (maxima over the group's resource requirements)."""

    cpus: int
    memory_mb: int
    runtime_secs: int
    gpus: int
    nodes: int

    def merge(self, other: _Need) -> _Need:
        return _Need(*(max(a, b) for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def astuple(self) -> tuple[int, ...]:
        return (self.cpus, self.memory_mb, self.runtime_secs, self.gpus, self.nodes)


@dataclass
class _Group:
    key: str  # RR name or partition name
    deferred: bool
    need: _Need
    partition: HpcPartition
    rr_names: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)


@dataclass
class PlannedScheduler:
    name: str
    partition: str
    resource_requirements: list[str]
    deferred: bool
    spec: dict[str, Any]  # the slurm_schedulers entry
    actions: list[dict[str, Any]]  # its schedule_nodes actions
    jobs: list[str]
    jobs_per_node: int
    jobs_per_allocation: int

    @property
    def num_allocations(self) -> int:
        return sum(a["num_allocations"] for a in self.actions) or 1


@dataclass
class SchedulerPlan:
    profile: str
    account: str
    schedulers: list[PlannedScheduler]
    warnings: list[str]
    spec: dict[str, Any]  # the new spec

    @property
    def total_allocations(self) -> int:
        return sum(s.num_allocations for s in self.schedulers)

    def summary_rows(self) -> list[dict[str, Any]]:
        return [{"scheduler": s.name, "partition": s.partition, "resource_requirements": ",".join(s.resource_requirements),
                 "jobs": len(s.jobs), "nodes": s.spec["nodes"], "walltime": s.spec["walltime"],
                 "mem": s.spec.get("mem"), "gres": s.spec.get("gres"), "allocations": s.num_allocations,
                 "trigger": ",".join(sorted({a["trigger_type"] for a in s.actions})) or "-"}
                for s in self.schedulers]


# ---- entry points -----------------------------------------------------------------------------


def add_slurm_schedulers(spec: dict, profile: HpcProfile, *, account: str | None, single_allocation: bool = False,
                         group_by: str = "resource-requirements", walltime_strategy: str = "max-job-runtime",
                         walltime_multiplier: float = 1.5, overwrite: bool = False) -> dict:
    """A copy of ``spec`` (a parsed spec dict, as torc.spec.load reads it) with ``slurm_schedulers``,
    ``schedule_nodes`` actions and each job's ``scheduler`` added.

    ``account`` falls back to ``slurm_defaults.account`` and then the profile's default account.
    Raises InvalidInputError when the spec is invalid, already has Slurm schedulers (unless
    ``overwrite``), has no account, or a job fits no partition of the profile.
    """
    return plan_schedulers(spec, profile, account=account, single_allocation=single_allocation, group_by=group_by,
                           walltime_strategy=walltime_strategy, walltime_multiplier=walltime_multiplier,
                           overwrite=overwrite).spec


def plan_schedulers(spec: dict, profile: HpcProfile, *, account: str | None, single_allocation: bool = False,
                    group_by: str = "resource-requirements", walltime_strategy: str = "max-job-runtime",
                    walltime_multiplier: float = 1.5, overwrite: bool = False, add_actions: bool = True,
                    source: str = "workflow spec") -> SchedulerPlan:
    """The full plan (schedulers, allocation counts, warnings) and the new spec; see add_slurm_schedulers."""
    from torc.spec.load import spec_from_data
    from torc.spec.parameters import JOB_FIELDS, ParameterError, expand_items
    from torc.spec.resolve import edges, resolve

    group_by = group_by.replace("_", "-").lower()
    walltime_strategy = walltime_strategy.replace("_", "-").lower()
    if group_by not in GROUP_BY:
        raise InvalidInputError(f"invalid group-by {group_by!r}: expected one of {', '.join(GROUP_BY)}")
    if walltime_strategy not in WALLTIME_STRATEGIES:
        raise InvalidInputError(f"invalid walltime strategy {walltime_strategy!r}: expected one of "
                                f"{', '.join(WALLTIME_STRATEGIES)}")
    if not walltime_multiplier or walltime_multiplier < 1:
        raise InvalidInputError(f"walltime multiplier must be at least 1, got {walltime_multiplier}")
    if not isinstance(spec, dict):
        raise InvalidInputError(f"{source}: expected a mapping of workflow fields, found {type(spec).__name__}")
    if not profile.partitions:
        raise InvalidInputError(f"HPC profile {profile.name!r} has no partitions")

    data = _without_slurm_plan(copy.deepcopy(spec), overwrite, source)
    account = account or _defaults_account(data) or profile.default_account
    if not account:
        raise InvalidInputError(f"no Slurm account: pass --account, set slurm_defaults.account in the spec, or "
                                f"set default_account for profile {profile.name!r} (client.hpc.profile_overrides)")

    validated, _ = spec_from_data(copy.deepcopy(data), source)
    resolved = resolve(validated, source)
    blockers = edges(resolved)
    depth = _depths(blockers)
    rrs = {"default": dict(DEFAULT_RR)}
    rrs.update({rr.name: rr.model_dump() for rr in validated.resource_requirements or []})

    warnings: list[str] = []
    groups = _groups(validated.jobs, blockers, rrs, profile)
    if group_by == "partition":
        groups = _merge_by_partition(groups, profile, single_allocation, walltime_strategy, walltime_multiplier)

    used: set[str] = set()
    planned = []
    for group in groups:
        planned.append(_plan_group(group, profile, account, single_allocation, walltime_strategy, walltime_multiplier,
                                   add_actions, depth, used, warnings))

    assignment = {job: s.name for s in planned for job in s.jobs}
    jobs_out = []
    for raw in data.get("jobs") or []:
        try:
            names = [j.get("name") for j in expand_items([raw], data.get("parameters"), JOB_FIELDS)]
        except ParameterError:  # already reported by spec_from_data; cannot happen here
            names = [raw.get("name")]
        targets = {assignment.get(n) for n in names}
        if len(targets) == 1:
            jobs_out.append({**raw, "scheduler": targets.pop()})
        else:  # the copies of one parameterized job land in different schedulers: write them out expanded
            for item in expand_items([raw], data.get("parameters"), JOB_FIELDS):
                jobs_out.append({**item, "scheduler": assignment.get(item.get("name"))})
    data["jobs"] = jobs_out
    data["slurm_schedulers"] = [s.spec for s in planned]
    actions = [a for s in planned for a in s.actions]
    if actions or data.get("actions"):
        data["actions"] = list(data.get("actions") or []) + actions
    return SchedulerPlan(profile=profile.name, account=account, schedulers=planned, warnings=warnings, spec=data)


# ---- steps ------------------------------------------------------------------------------------


def _is_slurm_action(action: Any) -> bool:
    return (isinstance(action, dict) and action.get("action_type") == "schedule_nodes"
            and (action.get("scheduler_type") or "slurm") == "slurm")


def _without_slurm_plan(data: dict[str, Any], overwrite: bool, source: str) -> dict[str, Any]:
    schedulers = data.get("slurm_schedulers") or []
    actions = data.get("actions") or []
    slurm_actions = [a for a in actions if _is_slurm_action(a)] if isinstance(actions, list) else []
    if (schedulers or slurm_actions) and not overwrite:
        names = [s.get("name") for s in schedulers if isinstance(s, dict)] if isinstance(schedulers, list) else []
        what = (f"slurm_schedulers ({', '.join(map(str, names))})" if schedulers
                else f"{len(slurm_actions)} Slurm schedule_nodes action(s)")
        raise InvalidInputError(f"{source} already has {what}; pass --overwrite to replace them")
    data.pop("slurm_schedulers", None)
    if isinstance(actions, list):
        kept = [a for a in actions if not _is_slurm_action(a)]
        if kept:
            data["actions"] = kept
        else:
            data.pop("actions", None)
    for job in data.get("jobs") or []:
        if isinstance(job, dict):
            job.pop("scheduler", None)
    return data


def _defaults_account(data: dict[str, Any]) -> str | None:
    defaults = data.get("slurm_defaults")
    value = defaults.get("account") if isinstance(defaults, dict) else None
    return str(value) if value else None


def _depths(blockers: dict[str, set[str]]) -> dict[str, int]:
    depth: dict[str, int] = {}

    def visit(name: str) -> int:  # iterative enough for real specs; cycles were rejected by resolve()
        stack = [name]
        while stack:
            current = stack[-1]
            pending = [b for b in blockers.get(current, ()) if b not in depth]
            if pending:
                stack.extend(pending)
                continue
            depth[current] = 1 + max((depth[b] for b in blockers.get(current, ())), default=-1)
            stack.pop()
        return depth[name]

    for name in blockers:
        if name not in depth:
            visit(name)
    return depth


def _need(rr: dict[str, Any]) -> _Need:
    return _Need(cpus=int(rr.get("num_cpus") or 0),
                 memory_mb=math.ceil(parse_memory_bytes(rr.get("memory") or "0") / MIB),
                 runtime_secs=math.ceil(parse_duration_seconds(rr.get("runtime") or "PT1H")),
                 gpus=int(rr.get("num_gpus") or 0), nodes=max(1, int(rr.get("num_nodes") or 1)))


def _best(profile: HpcProfile, need: _Need, what: str) -> HpcPartition:
    partition = profile.find_best_partition(need.cpus, need.memory_mb, need.runtime_secs, need.gpus, need.nodes)
    if partition is None:
        raise InvalidInputError(
            f"{what} fits no partition of HPC profile {profile.name!r} (needs {need.cpus} CPUs, "
            f"{need.memory_mb} MB memory, {need.gpus} GPUs, {need.nodes} node(s), runtime "
            f"{format_walltime(need.runtime_secs)}): "
            + profile.no_fit_reasons(need.cpus, need.memory_mb, need.runtime_secs, need.gpus, need.nodes))
    return partition


def _groups(jobs: list[Any], blockers: dict[str, set[str]], rrs: dict[str, dict[str, Any]],
            profile: HpcProfile) -> list[_Group]:
    groups: dict[tuple[str, bool], _Group] = {}
    for job in jobs:
        rr_name = job.resource_requirements or "default"
        deferred = bool(blockers.get(job.name))
        key = (rr_name, deferred)
        if key not in groups:
            need = _need(rrs[rr_name])
            what = f"job {job.name!r} (resource requirements {rr_name!r})"
            groups[key] = _Group(rr_name, deferred, need, _best(profile, need, what), [rr_name])
        groups[key].jobs.append(job.name)
    # jobs without dependencies first, each half in order of first appearance
    return [g for g in groups.values() if not g.deferred] + [g for g in groups.values() if g.deferred]


def _merge_by_partition(groups: list[_Group], profile: HpcProfile, single_allocation: bool, strategy: str,
                        multiplier: float) -> list[_Group]:
    merged: dict[tuple[str, bool], _Group] = {}
    for g in groups:
        key = (g.partition.name, g.deferred)
        if key not in merged:
            merged[key] = _Group(g.partition.name, g.deferred, g.need, g.partition, list(g.rr_names), list(g.jobs))
        else:
            m = merged[key]
            m.need = m.need.merge(g.need)
            m.rr_names += [n for n in g.rr_names if n not in m.rr_names]
            m.jobs += g.jobs
    for name in {k[0] for k in merged}:
        early, late = merged.get((name, False)), merged.get((name, True))
        if early is None or late is None:
            continue
        total = sum(_allocations(g.need, g.partition, len(g.jobs), single_allocation, strategy, multiplier)[0]
                    for g in (early, late))
        if total <= MERGE_THRESHOLD:
            early.need = early.need.merge(late.need)
            early.rr_names += [n for n in late.rr_names if n not in early.rr_names]
            early.jobs += late.jobs
            del merged[(name, True)]
    return list(merged.values())


def _walltime(need: _Need, partition: HpcPartition, strategy: str, multiplier: float,
              warnings: list[str] | None = None, name: str = "") -> int:
    limit = partition.max_walltime_secs
    if strategy == "max-partition-time":
        if limit is not None:
            return limit
        if warnings is not None:
            warnings.append(f"{name}: partition {partition.name!r} has no time limit; walltime is the longest "
                            f"job runtime x {multiplier} instead")
    wanted = max(60, math.ceil(need.runtime_secs * multiplier))
    return wanted if limit is None else min(limit, wanted)


def _jobs_per_node(need: _Need, partition: HpcPartition, job_count: int) -> int:
    limits = []
    if need.cpus > 0:
        limits.append(partition.cpus_per_node // need.cpus)
    if need.memory_mb > 0:
        limits.append(partition.memory_mb // need.memory_mb)
    if need.gpus > 0:
        limits.append((partition.gpus_per_node or 0) // need.gpus)
    return max(1, min(limits) if limits else job_count)


def _allocations(need: _Need, partition: HpcPartition, job_count: int, single_allocation: bool, strategy: str,
                 multiplier: float) -> tuple[int, int, int]:
    """(allocations, nodes per allocation, jobs per node) for job_count jobs."""
    per_node = _jobs_per_node(need, partition, job_count)
    walltime = _walltime(need, partition, strategy, multiplier)
    slots = max(1, walltime // need.runtime_secs) if need.runtime_secs > 0 else 1
    units = max(1, math.ceil(job_count / (per_node * slots)))
    if single_allocation:
        return 1, units * need.nodes, per_node
    return units, need.nodes, per_node


def _mem_text(mb: int) -> str:
    return f"{mb // 1024}g" if mb % 1024 == 0 else f"{mb}m"


def _plan_group(group: _Group, profile: HpcProfile, account: str, single_allocation: bool, strategy: str,
                multiplier: float, add_actions: bool, depth: dict[str, int], used: set[str],
                warnings: list[str]) -> PlannedScheduler:
    need, partition = group.need, group.partition
    base = f"{group.key}_deferred" if group.deferred else group.key
    name = f"{base}_scheduler"
    suffix = 2
    while name in used:
        name = f"{base}_{suffix}_scheduler"
        suffix += 1
    used.add(name)

    count, nodes, per_node = _allocations(need, partition, len(group.jobs), single_allocation, strategy, multiplier)
    limit = partition.node_limit
    if limit is not None and nodes > limit:
        warnings.append(f"{name}: {nodes} nodes needed in one allocation, but partition {partition.name!r} allows "
                        f"{limit}; asking for {limit}")
        nodes = limit
    walltime = _walltime(need, partition, strategy, multiplier, warnings, name)
    concurrent = min(per_node, len(group.jobs)) if not single_allocation else per_node
    spec: dict[str, Any] = {"name": name, "account": account}
    default_partition = profile.metadata.get("default_partition")
    if partition.requires_explicit_request or (default_partition and default_partition != partition.name):
        spec["partition"] = partition.name
    spec["nodes"] = nodes
    spec["walltime"] = format_walltime(walltime)
    if need.memory_mb > 0:
        spec["mem"] = _mem_text(min(partition.memory_mb, concurrent * need.memory_mb))
    if need.gpus > 0:
        spec["gres"] = f"gpu:{min(partition.gpus_per_node or need.gpus, concurrent * need.gpus)}"
    if partition.default_qos:
        spec["qos"] = partition.default_qos
    if need.cpus > 0:
        spec["extra"] = f"--cpus-per-task={min(partition.cpus_per_node, concurrent * need.cpus)}"

    slots = max(1, walltime // need.runtime_secs) if need.runtime_secs > 0 else 1
    actions: list[dict[str, Any]] = []
    if add_actions:
        worker_per_node = nodes > 1 and need.nodes == 1
        if not group.deferred:
            stages = [("on_workflow_start", None, count)]
        else:
            by_depth: dict[int, list[str]] = defaultdict(list)
            for job in group.jobs:
                by_depth[depth.get(job, 1)].append(job)
            stages = []
            for level in sorted(by_depth):
                jobs = by_depth[level]
                n = 1 if single_allocation else max(1, math.ceil(len(jobs) / (per_node * slots)))
                stages.append(("on_jobs_ready", jobs, n))
        for trigger, jobs, n in stages:
            action: dict[str, Any] = {"trigger_type": trigger, "action_type": "schedule_nodes"}
            if jobs is not None:
                action["jobs"] = jobs
            action.update({"scheduler": name, "scheduler_type": "slurm", "num_allocations": n})
            if worker_per_node:
                action["start_one_worker_per_node"] = True
            actions.append(action)
    return PlannedScheduler(name=name, partition=partition.name, resource_requirements=group.rr_names,
                            deferred=group.deferred, spec=spec, actions=actions, jobs=group.jobs,
                            jobs_per_node=per_node, jobs_per_allocation=per_node * slots)


# ---- regenerate: planning from a workflow's records --------------------------------------------

REGENERATE_STATUSES = ("uninitialized", "blocked", "ready")
RR_FIELDS = ("num_cpus", "memory", "runtime", "num_gpus", "num_nodes")


def spec_from_records(workflow: dict[str, Any], jobs: list[dict[str, Any]],
                      resource_requirements: list[dict[str, Any]],
                      statuses: tuple[str, ...] = REGENERATE_STATUSES) -> dict[str, Any]:
    """The spec dict that plan_schedulers takes, built from a workflow's existing records (for
    `torc slurm regenerate`): its jobs in ``statuses`` with their resource requirements, and
    ``depends_on`` only between those jobs (a finished blocker no longer holds a job back, so a
    job whose blockers are all done starts with the first allocations). The workflow's
    slurm_defaults are kept (the account may come from them)."""
    keep = [j for j in jobs if j.get("status") in statuses]
    names = {j["id"]: j["name"] for j in keep}
    rr_by_id = {r["id"]: r for r in resource_requirements}
    used_rrs: dict[str, dict[str, Any]] = {}
    out_jobs = []
    for job in keep:
        entry: dict[str, Any] = {"name": job["name"], "command": job.get("command") or "true"}
        rr = rr_by_id.get(job.get("resource_requirements_id"))
        if rr is not None:
            used_rrs[rr["name"]] = {"name": rr["name"], **{k: rr[k] for k in RR_FIELDS if rr.get(k) is not None}}
            entry["resource_requirements"] = rr["name"]
        blockers = [names[d] for d in job.get("depends_on_job_ids") or [] if d in names]
        if blockers:
            entry["depends_on"] = blockers
        out_jobs.append(entry)
    spec: dict[str, Any] = {"name": workflow.get("name") or f"workflow_{workflow.get('id')}", "jobs": out_jobs}
    if used_rrs:
        spec["resource_requirements"] = list(used_rrs.values())
    defaults = workflow.get("slurm_defaults")
    if isinstance(defaults, str) and defaults:
        import json

        try:
            defaults = json.loads(defaults)
        except ValueError:
            defaults = None
    if isinstance(defaults, dict) and defaults:
        spec["slurm_defaults"] = defaults
    return spec

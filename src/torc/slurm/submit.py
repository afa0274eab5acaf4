"""Requesting Slurm allocations for a workflow (reference §6.2).

For each allocation: a scheduled_compute_node row (status pending), the batch script
`<out>/<prefix>_<scn_id>.sh` (#SBATCH lines from the workflow's slurm_defaults, then the
scheduler config, then its `extra` verbatim; the torc-slurm-job-runner line, under `srun` with
one runner per node when asked), `sbatch`, and the Slurm job id stored as the row's
scheduler_id. When sbatch refuses, the row and the script are deleted and the SlurmError (which
quotes Slurm) goes to the caller: nothing is left half-created.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from torc.core.errors import InvalidInputError, TorcError
from torc.slurm.commands import SlurmError, sbatch, scancel

log = logging.getLogger("torc.slurm")

# scheduler fields that become #SBATCH options, in this order (account/job-name/time/output first)
OPTION_FIELDS = ("partition", "nodes", "ntasks_per_node", "mem", "gres", "qos", "tmp")
NOT_OPTIONS = {"id", "workflow_id", "name", "walltime", "extra", "account"}


def runner_command() -> list[str]:
    """How an allocation starts the runner: torc-slurm-job-runner of this installation (an absolute
    path, so compute nodes sharing the file system need nothing on PATH), else `python -m`."""
    beside = Path(sys.executable).parent / "torc-slurm-job-runner"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("torc-slurm-job-runner")
    if found:
        return [found]
    return [sys.executable, "-m", "torc.cli.main", "slurm-job-runner"]


def _option(key: str, value: Any) -> str:
    key = key.replace("_", "-")
    if value is True:
        return f"#SBATCH --{key}"
    return f"#SBATCH --{key}={value}"


def batch_script(*, workflow_id: int, scn_id: int, url: str, output_dir: Path, scheduler: dict[str, Any],
                 defaults: dict[str, Any], prefix: str, poll_interval: float | None, max_parallel_jobs: int | None,
                 start_one_worker_per_node: bool) -> str:
    options: dict[str, Any] = {}
    for key, value in defaults.items():  # slurm_defaults first; scheduler fields override
        if value is not None and value is not False:
            options[key.replace("-", "_")] = value
    for key in OPTION_FIELDS:
        if scheduler.get(key) is not None:
            options[key] = scheduler[key]
    account = scheduler.get("account") or options.get("account")
    walltime = scheduler.get("walltime") or options.get("walltime") or options.get("time") or "01:00:00"
    for key in NOT_OPTIONS | {"time", "job_name", "output", "error"}:
        options.pop(key, None)
    lines = ["#!/bin/bash"]
    if account:
        lines.append(f"#SBATCH --account={account}")
    lines += [
        f"#SBATCH --job-name={prefix}_wf{workflow_id}_{scn_id}",
        f"#SBATCH --time={walltime}",
        f"#SBATCH --output={output_dir}/slurm_output_wf{workflow_id}_sl%j.o",
        f"#SBATCH --error={output_dir}/slurm_output_wf{workflow_id}_sl%j.e",
    ]
    lines += [_option(k, v) for k, v in options.items()]
    extra = (scheduler.get("extra") or "").strip()
    if extra:
        lines += [line if line.startswith("#") else f"#SBATCH {line}" for line in extra.splitlines() if line.strip()]
    lines.append("")
    lines.append(f"export TORC_SCHEDULED_COMPUTE_NODE_ID={scn_id}")
    runner = [*runner_command(), url, str(workflow_id), str(output_dir)]
    if poll_interval:
        runner += ["--poll-interval", str(poll_interval)]
    if max_parallel_jobs:
        runner += ["--max-parallel-jobs", str(max_parallel_jobs)]
    line = shlex.join(runner)
    if start_one_worker_per_node:
        # srun must not see the per-CPU/GPU memory request; the runner still needs it to size its offer
        lines.append('export TORC_SLURM_MEM_PER_CPU="${SLURM_MEM_PER_CPU:-}"')
        lines.append("unset SLURM_MEM_PER_CPU SLURM_MEM_PER_GPU")
        line = "srun --ntasks-per-node=1 --nodes=$SLURM_JOB_NUM_NODES " + line
    lines.append(line)
    return "\n".join(lines) + "\n"


def _credentials_env(client: Any) -> dict[str, str]:
    """The submitting client's login for the allocation's runner (environment, not script text)."""
    auth = getattr(client, "auth", None) or getattr(getattr(client, "raw", None), "auth", None)
    return {"TORC_USER": auth[0], "TORC_PASSWORD": auth[1]} if auth else {}


def _defaults(workflow: dict[str, Any]) -> dict[str, Any]:
    raw = workflow.get("slurm_defaults")
    if not raw:
        return {}
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def schedule_slurm_nodes(client: Any, workflow_id: int, scheduler_config_id: int, num_allocations: int,
                         output_dir: Path, *, prefix: str = "worker", poll_interval: float | None = None,
                         max_parallel_jobs: int | None = None, start_one_worker_per_node: bool = False,
                         keep_submission_scripts: bool = False) -> list[dict[str, Any]]:
    """Submit `num_allocations` allocations of one Slurm scheduler config; return the scheduled
    compute node rows (status pending, scheduler_id = Slurm job id)."""
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        scheduler = client.get(f"slurm_schedulers/{scheduler_config_id}")
    except TorcError as exc:
        raise InvalidInputError(f"Slurm scheduler config {scheduler_config_id}: {exc.message}") from None
    if scheduler.get("workflow_id") != workflow_id:
        raise InvalidInputError(f"Slurm scheduler config {scheduler_config_id} belongs to workflow "
                                f"{scheduler.get('workflow_id')}, not {workflow_id}")
    defaults = _defaults(client.get(f"workflows/{workflow_id}"))
    nodes = []
    for _ in range(max(1, num_allocations)):
        scn = client.post("scheduled_compute_nodes", {
            "workflow_id": workflow_id, "scheduler_id": 0, "scheduler_config_id": scheduler_config_id,
            "scheduler_type": "slurm", "status": "pending"})
        script = output_dir / f"{prefix}_{scn['id']}.sh"
        try:
            script.write_text(batch_script(
                workflow_id=workflow_id, scn_id=scn["id"], url=client.url, output_dir=output_dir,
                scheduler=scheduler, defaults=defaults, prefix=prefix, poll_interval=poll_interval,
                max_parallel_jobs=max_parallel_jobs, start_one_worker_per_node=start_one_worker_per_node))
            job_id = sbatch(script, cwd=output_dir, extra_env=_credentials_env(client))
        except (SlurmError, OSError) as exc:
            _undo(client, scn["id"], script)
            if isinstance(exc, OSError):
                raise TorcError(f"cannot write the batch script {script}: {exc}") from None
            what = f"scheduler {scheduler.get('name')!r} (config {scheduler_config_id}) of workflow {workflow_id}"
            raise SlurmError(exc.message.replace("the allocation request", f"the allocation request of {what}", 1)
                             if "the allocation request" in exc.message else f"{what}: {exc.message}") from None
        except BaseException:
            _undo(client, scn["id"], script)
            raise
        try:  # the runner may already have set it active: change only scheduler_id
            current = client.get(f"scheduled_compute_nodes/{scn['id']}")
            if int(current.get("scheduler_id") or 0) != int(job_id):
                current = client.put(f"scheduled_compute_nodes/{scn['id']}", {**current, "scheduler_id": int(job_id)})
        except TorcError:
            scancel([job_id])
            _undo(client, scn["id"], script)
            raise
        if not keep_submission_scripts:
            script.unlink(missing_ok=True)
        log.info("submitted Slurm job %s for workflow %s (scheduled compute node %s)", job_id, workflow_id, scn["id"])
        nodes.append(current)
    return nodes


def _undo(client: Any, scn_id: int, script: Path) -> None:
    script.unlink(missing_ok=True)
    try:
        client.delete(f"scheduled_compute_nodes/{scn_id}")
    except TorcError as exc:
        log.warning("could not delete scheduled compute node %s: %s", scn_id, exc.message)


def live_allocations(client: Any, workflow_id: int) -> list[dict[str, Any]]:
    """The workflow's Slurm scheduled compute nodes that are pending or active."""
    return [n for n in client.iter_items("scheduled_compute_nodes", workflow_id=workflow_id)
            if n.get("scheduler_type") == "slurm" and n.get("status") in ("pending", "active")
            and int(n.get("scheduler_id") or 0) > 0]


def cancel_allocations(client: Any, workflow_id: int) -> list[str]:
    """scancel every pending or active Slurm allocation of the workflow and mark it complete;
    returns the Slurm job ids."""
    nodes = live_allocations(client, workflow_id)
    ids = [str(n["scheduler_id"]) for n in nodes]
    scancel(ids)
    for node in nodes:
        try:
            client.put(f"scheduled_compute_nodes/{node['id']}", {**node, "status": "complete"})
        except TorcError as exc:
            log.warning("could not update scheduled compute node %s: %s", node["id"], exc.message)
    return ids


def cancel_workflow(client: Any, workflow_id: int) -> tuple[dict[str, Any], list[str], str | None]:
    """`torc workflows cancel`: cancel on the server (runners stop, unfinished jobs are canceled),
    then scancel the workflow's pending or active Slurm allocations. Returns the workflow record,
    the Slurm job ids canceled, and why the allocations may not be canceled (None when fine)."""
    record = client.put(f"workflows/{workflow_id}/cancel")
    if not live_allocations(client, workflow_id):
        return record, [], None
    try:
        return record, cancel_allocations(client, workflow_id), None
    except TorcError as exc:
        return record, [], exc.message

"""The job runner inside a Slurm allocation (`torc-slurm-job-runner URL WF OUTPUT_DIR`).

It finds its scheduled compute node by SLURM_JOB_ID (or TORC_SCHEDULED_COMPUTE_NODE_ID, which the
batch script exports, when the submitter has not stored the job id yet) and sets it active,
offers the allocation's resources (SLURM_CPUS_ON_NODE, SLURM_MEM_PER_NODE or SLURM_MEM_PER_CPU x
CPUs, SLURM_JOB_GPUS, SLURM_JOB_NUM_NODES), registers a compute node of type `slurm`, and runs the
local runner's loop with:

- an end: the allocation's EndTime (`scontrol show job`) less the workflow's
  compute_node_expiration_buffer_seconds (at most a quarter of the allocation's time limit, so a
  short allocation is not used up by the buffer). Claims carry the time left as `time_limit`, so
  jobs that cannot finish are not claimed; at the end the running jobs are stopped and recorded
  `terminated` (those whose runtime was not up yet go back to ready for another allocation), and
  the runner exits before Slurm kills it. In queue mode, whose claims ignore runtimes, no new
  claims once less than compute_node_min_time_for_new_jobs_seconds (300, at most a quarter of the
  time limit) is left;
- SIGTERM (Slurm's at its time limit, or scancel) handled as an interrupt: running jobs are
  recorded `terminated`, so `torc recover` or `workflows reset-status --failed-only` reruns them;
- Slurm schedule_nodes actions fired here: a staged pipeline's next allocation is requested by the
  runner that sees its jobs become ready.

It exits when idle or when the workflow is done, and sets the scheduled node `complete`. It logs to
`<out>/job_runner_slurm_wf<W>_sl<JOB>_n<NODE>_pid<PID>.log`.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torc.client import TorcClient
from torc.core.errors import TorcError
from torc.runner.local import LocalRunner, RunnerOptions, RunSummary
from torc.slurm.commands import SlurmError, job_end_time, show_job

log = logging.getLogger("torc.slurm")


def slurm_resources(env: dict[str, str]) -> dict[str, Any]:
    """CPUs, memory (GiB), GPUs and nodes of this allocation (this node's share) from SLURM_* variables."""
    cpus = int(env.get("SLURM_CPUS_ON_NODE") or env.get("SLURM_JOB_CPUS_PER_NODE", "1").split("(")[0] or 1)
    if env.get("SLURM_MEM_PER_NODE"):
        memory_mb = float(env["SLURM_MEM_PER_NODE"])
    elif env.get("SLURM_MEM_PER_CPU") or env.get("TORC_SLURM_MEM_PER_CPU"):  # the latter: saved before srun
        memory_mb = float(env.get("SLURM_MEM_PER_CPU") or env["TORC_SLURM_MEM_PER_CPU"]) * cpus
    else:
        memory_mb = 0.0
    gpus = 0
    if env.get("SLURM_JOB_GPUS"):
        gpus = len([g for g in env["SLURM_JOB_GPUS"].split(",") if g.strip()])
    elif env.get("SLURM_GPUS_ON_NODE"):
        gpus = int(env["SLURM_GPUS_ON_NODE"])
    # one runner per node (srun) offers its own node; a single runner offers every node of the allocation
    nodes = 1 if env.get("SLURM_STEP_ID") not in (None, "") else int(env.get("SLURM_JOB_NUM_NODES") or 1)
    return {"num_cpus": max(1, cpus), "memory_gb": memory_mb / 1024, "num_gpus": gpus, "num_nodes": max(1, nodes)}


def _time_limit_seconds(fields: dict[str, str]) -> float | None:
    from torc.core.units import parse_walltime_seconds

    try:
        return float(parse_walltime_seconds(fields.get("TimeLimit", "")))
    except (TorcError, ValueError):
        return None


def find_scheduled_node(client: TorcClient, workflow_id: int, slurm_job_id: str) -> dict[str, Any] | None:
    """This allocation's scheduled compute node: by Slurm job id, else by the id the batch script exports."""
    deadline = time.monotonic() + 10
    while True:
        page = client.get("scheduled_compute_nodes", workflow_id=workflow_id, scheduler_id=int(slurm_job_id))
        if page["items"]:
            return page["items"][0]
        scn_id = os.environ.get("TORC_SCHEDULED_COMPUTE_NODE_ID")
        if scn_id:
            try:
                return client.get(f"scheduled_compute_nodes/{scn_id}")
            except TorcError:
                pass
        if time.monotonic() > deadline:
            return None
        time.sleep(0.5)


def _set_status(client: TorcClient, node: dict[str, Any], status: str, slurm_job_id: str) -> dict[str, Any]:
    try:
        current = client.get(f"scheduled_compute_nodes/{node['id']}")
        return client.put(f"scheduled_compute_nodes/{node['id']}",
                          {**current, "status": status, "scheduler_id": int(slurm_job_id)})
    except TorcError as exc:
        log.warning("could not set scheduled compute node %s %s: %s", node["id"], status, exc.message)
        return node


class _Say:
    """Runner messages: to the runner's log file and to stdout (Slurm's .o file)."""

    def __init__(self, path: Path):
        self.file = open(path, "a", buffering=1)  # noqa: SIM115 - open for the runner's life

    def __call__(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}"
        self.file.write(line + "\n")
        print(line, flush=True)

    def close(self) -> None:
        self.file.close()


def run_allocation(url: str, workflow_id: int, output_dir: Path, *, max_parallel_jobs: int | None = None,
                   poll_interval: float | None = None, strict_scheduler_match: bool = False,
                   monitor_factory: Callable[..., Any] | None = None) -> RunSummary:
    env = dict(os.environ)
    slurm_job_id = env.get("SLURM_JOB_ID")
    if not slurm_job_id:
        raise TorcError("torc-slurm-job-runner runs inside a Slurm allocation: SLURM_JOB_ID is not set")
    node_index = env.get("SLURM_NODEID", "0")
    head = node_index == "0"
    output_dir = Path(output_dir).resolve()
    (output_dir / "job_stdio").mkdir(parents=True, exist_ok=True)
    stem = f"wf{workflow_id}_sl{slurm_job_id}_n{node_index}_pid{os.getpid()}"
    say = _Say(output_dir / f"job_runner_slurm_{stem}.log")
    handler = logging.FileHandler(output_dir / f"job_runner_slurm_{stem}.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("torc").addHandler(handler)
    (output_dir / f"slurm_env_{stem}.log").write_text(
        "".join(f"{k}={v}\n" for k, v in sorted(env.items()) if k.startswith("SLURM_")))
    try:
        with TorcClient(url, retry_seconds=20 * 60.0) as patient:
            patient.ping()
            workflow = patient.get(f"workflows/{workflow_id}")
        with TorcClient(url) as client:
            scn = find_scheduled_node(client, workflow_id, slurm_job_id)
            if scn is None:
                say(f"no scheduled compute node of workflow {workflow_id} has Slurm job id {slurm_job_id}; "
                    "running without one")
            elif head:
                scn = _set_status(client, scn, "active", slurm_job_id)
            resources = slurm_resources(env)
            end_time = None
            try:
                fields = show_job(slurm_job_id)
                end = job_end_time(slurm_job_id)
            except SlurmError as exc:
                say(f"cannot read the allocation's end time ({exc.message}); running without one")
                fields, end = {}, None
            buffer = workflow.get("compute_node_expiration_buffer_seconds")
            buffer = 60.0 if buffer is None else max(0.0, float(buffer))
            limit = _time_limit_seconds(fields)
            min_time = workflow.get("compute_node_min_time_for_new_jobs_seconds")
            min_time = 300.0 if min_time is None else max(0.0, float(min_time))
            if limit:  # neither may use up a short allocation
                buffer = min(buffer, limit / 4)
                min_time = min(min_time, limit / 4)
            if end is not None:
                end_time = end - buffer
            say(f"Slurm job {slurm_job_id} (node {node_index}, {socket.gethostname()}): {resources['num_cpus']} CPUs, "
                f"{resources['memory_gb']:.2f} GiB, {resources['num_gpus']} GPUs, {resources['num_nodes']} node(s); "
                + (f"stops by {time.strftime('%H:%M:%S', time.localtime(end_time))} ({buffer:.0f} s before the "
                   "allocation ends)" if end_time else "no end time"))
            options = RunnerOptions(
                output_dir=output_dir, **resources, max_parallel_jobs=max_parallel_jobs,
                poll_interval=poll_interval or 30.0, progress=False,
                server_retry_seconds=60.0 * float(workflow.get("compute_node_wait_for_healthy_database_minutes") or 20),
                end_time=end_time, min_time_for_new_jobs=min_time if max_parallel_jobs else None,
                scheduler_config_id=scn["scheduler_config_id"] if scn else None,
                strict_scheduler_match=strict_scheduler_match, compute_node_type="slurm",
                scheduler_info={"slurm_job_id": slurm_job_id, "scheduled_compute_node_id": scn["id"] if scn else None,
                                "node_id": node_index, "nodelist": env.get("SLURM_JOB_NODELIST"),
                                "partition": env.get("SLURM_JOB_PARTITION")},
                slurm_actions=True, slurm_poll_interval=poll_interval)
            runner = LocalRunner(client, workflow_id, options, say=say)
            monitor = None
            try:
                if monitor_factory is not None:
                    runner.run_id = client.run_id(workflow_id)
                    monitor = monitor_factory(client, workflow_id, output_dir, runner)
                    if monitor is not None:
                        monitor.start()
                summary = runner.run()
            finally:
                if monitor is not None:
                    monitor.stop()
                if scn is not None and head:
                    _set_status(client, scn, "complete", slurm_job_id)
            say(f"done: {summary.completed} completed, {summary.failed} failed, {summary.terminated} terminated"
                + (" (interrupted)" if summary.interrupted else ""))
            return summary
    except TorcError as exc:
        say(f"error: {exc.message}")
        raise
    finally:
        logging.getLogger("torc").removeHandler(handler)
        handler.close()
        say.close()
        sys.stdout.flush()

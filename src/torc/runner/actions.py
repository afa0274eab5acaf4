"""Running workflow actions in a runner: claim each pending action atomically, then run it.

run_commands runs its commands in order through bash with the output directory as cwd; the first
failure stops that action (the workflow carries on). schedule_nodes with scheduler_type "local"
starts more local runners for the workflow. schedule_nodes with scheduler_type "slurm" submits Slurm
allocations (torc.slurm.submit), but only in a runner that itself runs inside a Slurm allocation
(`slurm=True`): that is how a staged pipeline's later allocations are requested when their jobs
become ready. A local `torc run` leaves Slurm actions alone (`torc submit` fires the
on_workflow_start ones)."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torc.client import TorcClient
from torc.core.errors import ConflictError, TorcError

log = logging.getLogger("torc.runner")


class ActionRunner:
    def __init__(self, client: TorcClient, workflow_id: int, output_dir: Path, node_id: int,
                 say: Callable[[str], None], env: dict[str, str], slurm: bool = False,
                 slurm_poll_interval: float | None = None):
        self.client = client
        self.workflow_id = workflow_id
        self.output_dir = output_dir
        self.node_id = node_id
        self.say = say
        self.env = env
        self.slurm = slurm
        self.slurm_poll_interval = slurm_poll_interval
        self.done_persistent: set[int] = set()  # persistent actions run once per runner
        # Asking for pending job-triggered actions after every finished job only pays when there are some.
        self.has_job_actions = any(a["trigger_type"] in ("on_jobs_ready", "on_jobs_complete")
                                   for a in client.get(f"workflows/{workflow_id}/actions"))
        self.children: list[subprocess.Popen] = []

    def run_pending(self, trigger_types: tuple[str, ...]) -> int:
        """Claim and run every pending action of these trigger types; return how many ran."""
        pending = self.client.get(f"workflows/{self.workflow_id}/actions/pending",
                                  trigger_type=list(trigger_types))
        ran = 0
        for action in pending:
            if action["id"] in self.done_persistent:
                continue
            if not self._handles(action):
                continue
            try:
                self.client.post(f"workflows/{self.workflow_id}/actions/{action['id']}/claim",
                                 {"compute_node_id": self.node_id})
            except ConflictError:
                continue  # another runner took it
            if action.get("persistent"):
                self.done_persistent.add(action["id"])
            self._execute(action)
            ran += 1
        return ran

    def has_pending_work(self) -> bool:
        """Job-triggered actions this runner could still be asked to run keep it alive."""
        for action in self.client.get(f"workflows/{self.workflow_id}/actions"):
            if action["trigger_type"] in ("on_jobs_ready", "on_jobs_complete") and not action.get("executed") \
                    and self._handles(action):
                return True
        return False

    def _handles(self, action: dict[str, Any]) -> bool:
        if action["action_type"] == "run_commands":
            return True
        if action["action_type"] != "schedule_nodes":
            return False
        kind = action["action_config"].get("scheduler_type")
        return kind == "local" or (kind == "slurm" and self.slurm)

    def _execute(self, action: dict[str, Any]) -> None:
        config = action.get("action_config") or {}
        label = f"action {action['id']} ({action['trigger_type']}, {action['action_type']})"
        if action["action_type"] == "run_commands":
            for command in config.get("commands", []):
                self.say(f"{label}: running {command!r}")
                proc = subprocess.run(["bash", "-c", command], cwd=self.output_dir, env=self.env,
                                      capture_output=True, text=True)
                self._log_output(action["id"], command, proc)
                if proc.returncode != 0:
                    self.say(f"{label}: {command!r} failed with return code {proc.returncode}; "
                             "skipping the rest of this action")
                    return
        elif config.get("scheduler_type") == "slurm":
            self._submit_slurm(label, config)
        else:
            count = int(config.get("num_allocations") or 1)
            for _ in range(count):
                cmd = [sys.executable, "-m", "torc.cli.main", "--url", self.client.url, "run", str(self.workflow_id),
                       "-o", str(self.output_dir)]
                if config.get("max_parallel_jobs"):
                    cmd += ["--max-parallel-jobs", str(config["max_parallel_jobs"])]
                log_path = self.output_dir / f"local_runner_wf{self.workflow_id}_action{action['id']}.log"
                with open(log_path, "a") as out:
                    self.children.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                                          stdin=subprocess.DEVNULL, start_new_session=True))
            self.say(f"{label}: started {count} more local runner(s)")

    def _submit_slurm(self, label: str, config: dict[str, Any]) -> None:
        from torc.slurm.submit import schedule_slurm_nodes

        try:
            nodes = schedule_slurm_nodes(
                self.client, self.workflow_id, int(config["scheduler_id"]), int(config.get("num_allocations") or 1),
                self.output_dir, poll_interval=self.slurm_poll_interval,
                max_parallel_jobs=config.get("max_parallel_jobs"),
                start_one_worker_per_node=bool(config.get("start_one_worker_per_node")))
        except TorcError as exc:
            self.say(f"{label}: {exc.message}")
            return
        self.say(f"{label}: submitted Slurm job(s) " + ", ".join(str(n["scheduler_id"]) for n in nodes))

    def _log_output(self, action_id: int, command: str, proc: subprocess.CompletedProcess) -> None:
        path = self.output_dir / f"action_wf{self.workflow_id}_a{action_id}.log"
        with open(path, "a") as out:
            out.write(f"$ {command}\n{proc.stdout}{proc.stderr}[return code {proc.returncode}]\n")

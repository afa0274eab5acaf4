"""The local job runner: claim jobs that fit the free resources, run each in its own process
group under bash, and report results. A finished child wakes the loop at once, so freed
resources are reused without waiting for a poll interval."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from torc.client import TorcClient
from torc.core.errors import TorcError
from torc.core.units import parse_memory_bytes

GIB = 1024**3


@dataclass
class RunnerOptions:
    output_dir: Path
    num_cpus: int
    memory_gb: float
    num_gpus: int = 0
    max_parallel_jobs: int | None = None
    poll_interval: float = 5.0
    idle_timeout: float | None = None  # default: the workflow's compute_node_wait_for_new_jobs_seconds


@dataclass
class RunningJob:
    job: dict[str, Any]
    process: subprocess.Popen
    started: float
    cpus: int
    memory: int
    gpus: int
    stdout: Any
    stderr: Any


@dataclass
class RunSummary:
    completed: int = 0
    failed: int = 0
    canceled: int = 0
    by_name: dict[str, int] = field(default_factory=dict)


def build_command(job: dict[str, Any]) -> str:
    """The shell text for a job: an invocation script wraps the command. A one-line script is a
    prefix (`srun`, `env X=1`); a multi-line script runs first, in the same shell."""
    command = job["command"]
    script = job.get("invocation_script")
    if not script:
        return command
    return f"{script}\n{command}" if "\n" in script.strip() else f"{script} {command}"


class LocalRunner:
    def __init__(self, client: TorcClient, workflow_id: int, options: RunnerOptions, log=print):
        self.client = client
        self.workflow_id = workflow_id
        self.options = options
        self.log = log
        self.running: dict[int, RunningJob] = {}
        self.wake = threading.Event()
        self.summary = RunSummary()
        self.free_cpus = options.num_cpus
        self.free_memory = int(options.memory_gb * GIB)
        self.free_gpus = options.num_gpus
        self.rr_cache: dict[int, dict[str, Any]] = {}
        self.stdio = options.output_dir / "job_stdio"

    # ---- setup ----------------------------------------------------------------------------

    def _register(self) -> dict[str, Any]:
        return self.client.post("compute_nodes", {
            "workflow_id": self.workflow_id, "hostname": socket.gethostname(), "pid": os.getpid(),
            "start_time": datetime.now(UTC).isoformat(), "is_active": True, "num_cpus": self.options.num_cpus,
            "memory_gb": self.options.memory_gb, "num_gpus": self.options.num_gpus, "num_nodes": 1,
            "compute_node_type": "local",
        })

    def _requirements(self, rr_id: int | None) -> tuple[int, int, int]:
        if rr_id is None:
            return 1, 0, 0
        if rr_id not in self.rr_cache:
            self.rr_cache[rr_id] = self.client.get(f"resource_requirements/{rr_id}")
        rr = self.rr_cache[rr_id]
        return rr.get("num_cpus", 1), parse_memory_bytes(rr.get("memory", "0")), rr.get("num_gpus", 0)

    # ---- the loop -------------------------------------------------------------------------

    def run(self) -> RunSummary:
        self.stdio.mkdir(parents=True, exist_ok=True)
        workflow = self.client.get(f"workflows/{self.workflow_id}")
        idle_timeout = self.options.idle_timeout
        if idle_timeout is None:
            idle_timeout = float(workflow.get("compute_node_wait_for_new_jobs_seconds") or 90)
        self.run_id = self.client.run_id(self.workflow_id)
        node = self._register()
        self.node_id = node["id"]
        started = time.monotonic()
        idle_since: float | None = None
        try:
            while True:
                self._reap()
                status = self.client.get(f"workflows/{self.workflow_id}/is_complete")
                if status["is_canceled"]:
                    self.log("workflow was canceled; stopping running jobs")
                    self._kill_all()
                    break
                if status["is_complete"] and not self.running:
                    break
                claimed = self._claim_and_start()
                if self.running or claimed:
                    idle_since = None
                    self.wake.wait(0.5)
                    self.wake.clear()
                    continue
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > idle_timeout:
                    self.log(f"no jobs became ready for {idle_timeout:.0f} s; exiting")
                    break
                self.wake.wait(min(self.options.poll_interval, 1.0))
                self.wake.clear()
        finally:
            self._kill_all()
            self.client.put(f"compute_nodes/{self.node_id}",
                            {**node, "is_active": False, "duration_seconds": time.monotonic() - started})
        return self.summary

    def _claim_and_start(self) -> int:
        if self.options.max_parallel_jobs:
            room = self.options.max_parallel_jobs - len(self.running)
            if room <= 0:
                return 0
            jobs = self.client.post(f"workflows/{self.workflow_id}/claim_next_jobs", limit=room)["jobs"]
        else:
            if self.free_cpus <= 0:
                return 0
            jobs = self.client.post(
                f"workflows/{self.workflow_id}/claim_jobs_based_on_resources/{self.free_cpus}",
                {"num_cpus": self.free_cpus, "memory_gb": self.free_memory / GIB, "num_gpus": self.free_gpus,
                 "num_nodes": 1},
            )["jobs"]
        for job in jobs:
            self._start(job)
        return len(jobs)

    def _start(self, job: dict[str, Any]) -> None:
        cpus, memory, gpus = (0, 0, 0) if self.options.max_parallel_jobs else self._requirements(
            job.get("resource_requirements_id"))
        self._prepare_outputs(job)
        self.client.put(f"jobs/{job['id']}/start_job/{self.run_id}/{self.node_id}")
        stem = f"job_wf{self.workflow_id}_j{job['id']}_r{self.run_id}_a{job.get('attempt_id', 1)}"
        stdout = open(self.stdio / f"{stem}.o", "wb")
        stderr = open(self.stdio / f"{stem}.e", "wb")
        env = {
            **os.environ,
            "TORC_WORKFLOW_ID": str(self.workflow_id), "TORC_JOB_ID": str(job["id"]), "TORC_JOB_NAME": job["name"],
            "TORC_OUTPUT_DIR": str(self.options.output_dir), "TORC_ATTEMPT_ID": str(job.get("attempt_id", 1)),
            "TORC_RUN_ID": str(self.run_id), "TORC_API_URL": self.client.url,
        }
        process = subprocess.Popen(["bash", "-c", build_command(job)], stdout=stdout, stderr=stderr, env=env,
                                   start_new_session=True)
        self.running[job["id"]] = RunningJob(job, process, time.monotonic(), cpus, memory, gpus, stdout, stderr)
        self.free_cpus -= cpus
        self.free_memory -= memory
        self.free_gpus -= gpus
        threading.Thread(target=self._wait_child, args=(process,), daemon=True).start()

    def _prepare_outputs(self, job: dict[str, Any]) -> None:
        """Create the parent directories of the job's declared output files."""
        for file_id in job.get("output_file_ids") or []:
            Path(self._file(file_id)["path"]).parent.mkdir(parents=True, exist_ok=True)

    def _file(self, file_id: int) -> dict[str, Any]:
        return self.client.get(f"files/{file_id}")

    def _wait_child(self, process: subprocess.Popen) -> None:
        process.wait()
        self.wake.set()

    def _reap(self) -> None:
        finished = [r for r in self.running.values() if r.process.poll() is not None]
        if not finished:
            return
        completions = []
        for r in finished:
            del self.running[r.job["id"]]
            r.stdout.close()
            r.stderr.close()
            self.free_cpus += r.cpus
            self.free_memory += r.memory
            self.free_gpus += r.gpus
            rc = r.process.returncode
            status = "completed" if rc == 0 else "failed"
            if rc == 0:
                missing = self._missing_outputs(r.job)
                if missing:
                    status, rc = "failed", 1
                    with open(Path(r.stderr.name), "a") as err:
                        err.write(f"torc: job succeeded but its output files are missing: {', '.join(missing)}\n")
                    self.log(f"job {r.job['name']}: output files missing: {', '.join(missing)}")
            minutes = (time.monotonic() - r.started) / 60
            completions.append({"job_id": r.job["id"], "status": status, "result": {
                "return_code": rc, "exec_time_minutes": minutes, "compute_node_id": self.node_id,
                "attempt_id": r.job.get("attempt_id", 1),
                "completion_time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            }})
            if status == "completed":
                self.summary.completed += 1
            else:
                self.summary.failed += 1
            self.summary.by_name[r.job["name"]] = rc
            self.log(f"job {r.job['name']} (id {r.job['id']}) {status} (return code {rc})")
        try:
            self.client.post(f"workflows/{self.workflow_id}/complete_jobs",
                             {"run_id": self.run_id, "jobs": completions})
        except TorcError as exc:
            self.log(f"could not report results: {exc.message}")

    def _missing_outputs(self, job: dict[str, Any]) -> list[str]:
        missing = []
        for file_id in job.get("output_file_ids") or []:
            f = self._file(file_id)
            path = Path(f["path"])
            if path.exists():
                self.client.put(f"files/{file_id}", {**f, "st_mtime": path.stat().st_mtime})
            else:
                missing.append(f["path"])
        return missing

    def _kill_all(self) -> None:
        for r in list(self.running.values()):
            if r.process.poll() is None:
                try:
                    os.killpg(r.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            r.process.wait()
            r.stdout.close()
            r.stderr.close()
            self.summary.canceled += 1
        self.running.clear()

"""The local job runner: claim jobs that fit the free resources, run each in its own process
group under bash, enforce runtime (and optionally memory) limits, and report results.

A finished child, an expiring runtime limit or a monitor alarm wakes the loop at once, so freed
resources are reused without waiting for a poll interval."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from torc.client import TorcClient
from torc.client.http import ServerUnreachable
from torc.core.errors import InvalidInputError, TorcError
from torc.core.units import parse_duration_seconds, parse_memory_bytes
from torc.runner.actions import ActionRunner
from torc.runner.process import JobProcess, build_command, stdio_stem

GIB = 1024**3
log = logging.getLogger("torc.runner")


@dataclass
class RunnerOptions:
    output_dir: Path
    num_cpus: int
    memory_gb: float
    num_gpus: int = 0
    max_parallel_jobs: int | None = None
    poll_interval: float = 5.0
    idle_timeout: float | None = None  # default: the workflow's compute_node_wait_for_new_jobs_seconds
    termination_grace: float = 10.0  # SIGTERM -> SIGKILL, for jobs that support termination
    enforce_memory_limits: bool = False
    heartbeat_interval: float = 30.0
    progress: bool | None = None  # None: a live panel when stdout is a terminal
    server_retry_seconds: float = 20 * 60.0  # how long to wait for an unreachable (restarting) server


@dataclass
class RunSummary:
    completed: int = 0
    failed: int = 0
    terminated: int = 0
    interrupted: bool = False
    return_codes: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return self.completed + self.failed + self.terminated


class RunnerInterrupted(ServerUnreachable):
    """Ctrl-C while the server could not be reached: the runner stopped waiting for it."""


class PatientClient:
    """The runner's view of a TorcClient (which should not retry itself): a request that cannot
    reach the server, which may be restarting, is retried for `retry_seconds`, like TorcClient's
    own retries, except that the wait ends as soon as `give_up()` turns true (Ctrl-C), raising
    RunnerInterrupted. `poke` is set to cut a wait short."""

    def __init__(self, client: TorcClient, retry_seconds: float, give_up: Callable[[], bool],
                 poke: threading.Event):
        self.client = client
        self.url = client.url
        self.retry_seconds = retry_seconds
        self.give_up = give_up
        self.poke = poke

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None) -> Any:
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.2
        while True:
            try:
                return self.client.request(method, path, params=params, json=json)
            except ServerUnreachable as exc:
                self.poke.clear()
                if self.give_up():
                    raise RunnerInterrupted(f"interrupted while waiting for the server ({exc.message})") from None
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("torc server unreachable (%s); retrying in %.1f s", exc.message, delay)
                self.poke.wait(delay)
                delay = min(delay * 2, 10.0)

    get = TorcClient.get
    post = TorcClient.post
    put = TorcClient.put
    delete = TorcClient.delete
    iter_items = TorcClient.iter_items
    run_id = TorcClient.run_id


def _now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LocalRunner:
    def __init__(self, client: TorcClient, workflow_id: int, options: RunnerOptions,
                 say: Callable[[str], None] = print, monitor: Any = None,
                 on_progress: Callable[[int, int], None] | None = None):
        # First Ctrl-C: stop waiting for an unreachable server so the jobs can be stopped, then
        # wait again to record them; a second Ctrl-C gives up on the server altogether.
        self.poke = threading.Event()
        self.client = PatientClient(client, options.server_retry_seconds, poke=self.poke,
                                    give_up=lambda: self.interrupts > 1 or (self.interrupts == 1 and not self.stopping))
        self.workflow_id = workflow_id
        self.options = options
        self.say = say
        self.monitor = monitor  # torc.runner.monitor.ResourceMonitor or None
        self.on_progress = on_progress  # (running here, finished here) after every change
        self.running: dict[int, JobProcess] = {}
        self.wake = threading.Event()
        self.summary = RunSummary()
        self.free_cpus = options.num_cpus
        self.free_memory = int(options.memory_gb * GIB)
        self.free_gpus = options.num_gpus
        self.requirements: dict[int, dict[str, Any]] = {}
        self.files: dict[int, dict[str, Any]] = {}
        self.stdio = options.output_dir / "job_stdio"
        self.interrupts = 0
        self.stopping = False  # stopping the jobs after an interrupt
        self.unreported: list[dict[str, Any]] = []  # completions the server has not accepted yet
        self.over_limit: dict[int, tuple[int, int]] = {}  # job id -> (rss, limit), set by the monitor thread

    # ---- lifecycle ------------------------------------------------------------------------

    def run(self) -> RunSummary:
        self.stdio.mkdir(parents=True, exist_ok=True)
        workflow = self.client.get(f"workflows/{self.workflow_id}")
        idle_timeout = self.options.idle_timeout
        if idle_timeout is None:
            idle_timeout = float(workflow.get("compute_node_wait_for_new_jobs_seconds") or 90)
        self.run_id = self.client.run_id(self.workflow_id)
        self.node = self._register()
        self.env = self._base_env()
        self.actions = ActionRunner(self.client, self.workflow_id, self.options.output_dir, self.node["id"], self.say,
                                    self.env)
        started = time.monotonic()
        restore = self._install_signal_handlers()
        try:
            self.actions.run_pending(("on_workflow_start", "on_worker_start"))
            self._loop(idle_timeout)
            if not self.summary.interrupted:
                self.actions.run_pending(("on_workflow_complete", "on_worker_complete"))
        except RunnerInterrupted:  # a second Ctrl-C while the server was unreachable
            self.summary.interrupted = True
            lost = len(self.unreported) + len(self.running)
            self.say(f"interrupted while the server was unreachable: {lost} job result(s) not recorded; once the "
                     f"server is back, `torc workflows sync-status {self.workflow_id}` fails jobs left running")
        finally:
            self._stop_all("runner exiting", graceful=False)
            restore()
            try:
                self.client.put(f"compute_nodes/{self.node['id']}", {
                    **self.node, "is_active": False, "duration_seconds": time.monotonic() - started})
            except TorcError as exc:
                log.warning("could not mark compute node %s inactive: %s", self.node["id"], exc.message)
        return self.summary

    def _register(self) -> dict[str, Any]:
        return self.client.post("compute_nodes", {
            "workflow_id": self.workflow_id, "hostname": socket.gethostname(), "pid": os.getpid(),
            "start_time": _now_text(), "is_active": True, "num_cpus": self.options.num_cpus,
            "memory_gb": self.options.memory_gb, "num_gpus": self.options.num_gpus, "num_nodes": 1,
            "compute_node_type": "local",
        })

    def _base_env(self) -> dict[str, str]:
        return {**os.environ, "TORC_WORKFLOW_ID": str(self.workflow_id), "TORC_OUTPUT_DIR": str(self.options.output_dir),
                "TORC_RUN_ID": str(self.run_id), "TORC_API_URL": self.client.url,
                "TORC_COMPUTE_NODE_ID": str(self.node["id"])}

    def _install_signal_handlers(self) -> Callable[[], None]:
        """First SIGINT/SIGTERM: stop jobs gracefully and record them; a second one: kill at once."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum: int, frame: Any) -> None:
            self.interrupts += 1
            self.wake.set()
            self.poke.set()

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore

    def _loop(self, idle_timeout: float) -> None:
        try:
            self._work(idle_timeout)
        except RunnerInterrupted:  # Ctrl-C while waiting for an unreachable server
            pass
        if self.interrupts:
            self._interrupt()

    def _work(self, idle_timeout: float) -> None:
        idle_since: float | None = None
        next_heartbeat = time.monotonic() + self.options.heartbeat_interval
        next_status = 0.0
        while True:
            now = time.monotonic()
            if self.interrupts:
                return
            self._enforce_limits(now)
            finished = self._reap()
            if now >= next_heartbeat:
                self.client.post(f"compute_nodes/{self.node['id']}/heartbeat")
                next_heartbeat = now + self.options.heartbeat_interval
            checked = now >= next_status or not self.running
            if checked:
                status = self.client.get(f"workflows/{self.workflow_id}/is_complete")
                next_status = now + min(self.options.poll_interval, 2.0)
                if status["is_canceled"]:
                    self.say(f"workflow {self.workflow_id} was canceled; stopping its jobs")
                    self._stop_all("workflow canceled", graceful=False)
                    self._reap()
                    return
                if status["is_complete"] and not self.running:
                    return
            if checked or (finished and self.actions.has_job_actions):
                self.actions.run_pending(("on_jobs_ready", "on_jobs_complete"))
            claimed = self._claim_and_start()
            if self.on_progress is not None:
                self.on_progress(len(self.running), self.summary.finished)
            if self.running or claimed:
                idle_since = None
                self._sleep(self._next_timer(0.5))
                continue
            idle_since = idle_since or now
            if now - idle_since > idle_timeout and not self.actions.has_pending_work():
                self.say(f"no job became ready for {idle_timeout:.0f} s; this runner stops")
                return
            self._sleep(self.options.poll_interval)

    def _sleep(self, seconds: float) -> None:
        self.wake.wait(max(seconds, 0.0))
        self.wake.clear()

    def _next_timer(self, cap: float) -> float:
        """Seconds until the next runtime limit or SIGKILL escalation, at most cap."""
        now = time.monotonic()
        times = [p.deadline for p in self.running.values() if p.deadline and p.stop_reason is None]
        times += [p.kill_at for p in self.running.values() if p.kill_at]
        return min([cap, *(t - now for t in times)])

    # ---- claiming and starting ------------------------------------------------------------

    def _claim_and_start(self) -> int:
        if self.options.max_parallel_jobs:
            room = self.options.max_parallel_jobs - len(self.running)
            if room <= 0:
                return 0
            jobs = self.client.post(f"workflows/{self.workflow_id}/claim_next_jobs", limit=room)["jobs"]
        else:
            if self.free_cpus <= 0 or self.free_memory <= 0:
                return 0
            jobs = self.client.post(
                f"workflows/{self.workflow_id}/claim_jobs_based_on_resources/{self.free_cpus}",
                {"num_cpus": self.free_cpus, "memory_gb": self.free_memory / GIB, "num_gpus": self.free_gpus,
                 "num_nodes": 1},
            )["jobs"]
        if not jobs:
            return 0
        try:  # one request marks them all running
            self.client.post(f"workflows/{self.workflow_id}/start_jobs", {
                "run_id": self.run_id, "compute_node_id": self.node["id"], "job_ids": [j["id"] for j in jobs]})
        except InvalidInputError:  # e.g. a job was canceled meanwhile: start them one by one
            jobs = [job for job in jobs if self._start_one(job)]
        for job in jobs:
            self._start(job)
        return len(jobs)

    def _start_one(self, job: dict[str, Any]) -> bool:
        try:
            self.client.put(f"jobs/{job['id']}/start_job/{self.run_id}/{self.node['id']}")
            return True
        except InvalidInputError as exc:
            log.warning("job %s not started: %s", job["id"], exc.message)
            return False

    def _requirement(self, rr_id: int | None) -> dict[str, Any] | None:
        if rr_id is None:
            return None
        if rr_id not in self.requirements:
            self.requirements[rr_id] = self.client.get(f"resource_requirements/{rr_id}")
        return self.requirements[rr_id]

    def _file(self, file_id: int) -> dict[str, Any]:
        if file_id not in self.files:
            self.files[file_id] = self.client.get(f"files/{file_id}")
        return self.files[file_id]

    def _start(self, job: dict[str, Any]) -> None:
        rr = self._requirement(job.get("resource_requirements_id"))
        cpus = memory = gpus = memory_limit = 0
        runtime_s = None
        if rr is not None:
            runtime_s = parse_duration_seconds(rr.get("runtime", "P0DT1M"))
            memory_limit = parse_memory_bytes(rr.get("memory", "0"))
            if not self.options.max_parallel_jobs:  # queue mode ignores requirements (but not limits)
                cpus, memory, gpus = rr.get("num_cpus", 1), memory_limit, rr.get("num_gpus", 0)
        attempt = job.get("attempt_id", 1)
        stem = stdio_stem(self.workflow_id, job["id"], self.run_id, attempt)
        env = {**self.env, "TORC_JOB_ID": str(job["id"]), "TORC_JOB_NAME": job["name"], "TORC_ATTEMPT_ID": str(attempt)}
        try:
            for file_id in job.get("output_file_ids") or []:
                Path(self._file(file_id)["path"]).parent.mkdir(parents=True, exist_ok=True)
            deadline = time.monotonic() + runtime_s if runtime_s else None
            proc = JobProcess.spawn(job, build_command(job), env, self.stdio / f"{stem}.o", self.stdio / f"{stem}.e",
                                    deadline, cpus, memory, gpus)
        except OSError as exc:  # e.g. a full or read-only output directory
            self.say(f"job {job['name']} (id {job['id']}) could not start: {exc}")
            self._report([self._completion(job, "failed", 126, 0.0, None)])
            self.summary.failed += 1
            return
        self.running[job["id"]] = proc
        self.free_cpus -= cpus
        self.free_memory -= memory
        self.free_gpus -= gpus
        if self.monitor is not None:
            limit = memory_limit if self.options.enforce_memory_limits and memory_limit else None
            self.monitor.add_job(job["id"], proc.pid, job["name"], memory_limit_bytes=limit)
        threading.Thread(target=self._wait_child, args=(proc,), daemon=True).start()

    def _wait_child(self, proc: JobProcess) -> None:
        proc.process.wait()
        self.wake.set()

    def on_over_limit(self, job_id: int, rss: int, limit: int) -> None:
        """Called by the resource monitor's thread; the loop does the killing."""
        self.over_limit[job_id] = (rss, limit)
        self.wake.set()

    # ---- limits ---------------------------------------------------------------------------

    def _enforce_limits(self, now: float) -> None:
        for job_id, (rss, limit) in list(self.over_limit.items()):
            proc = self.running.get(job_id)
            del self.over_limit[job_id]
            if proc is not None and proc.stop_reason is None:
                proc.note(f"killed: memory use {rss / 2**20:.0f} MiB exceeded the job's limit of {limit / 2**20:.0f} MiB")
                self.say(f"job {proc.job['name']} (id {job_id}) exceeded its memory limit; killing it")
                proc.stop("memory limit", graceful=False, grace_seconds=0)
        for proc in self.running.values():
            if proc.deadline is not None and now >= proc.deadline and proc.stop_reason is None:
                graceful = bool(proc.job.get("supports_termination"))
                proc.note(f"stopped: the job reached its runtime limit ({'SIGTERM' if graceful else 'SIGKILL'})")
                self.say(f"job {proc.job['name']} (id {proc.job['id']}) reached its runtime limit; stopping it")
                proc.stop("runtime limit", graceful=graceful, grace_seconds=self.options.termination_grace)
            proc.escalate(now)

    def _stop_all(self, reason: str, graceful: bool) -> None:
        for proc in self.running.values():
            if proc.poll() is None:
                graceful_here = graceful and bool(proc.job.get("supports_termination"))
                proc.stop(reason, graceful=graceful_here, grace_seconds=self.options.termination_grace)

    def _interrupt(self) -> None:
        """Ctrl-C / SIGTERM: stop every running job (SIGTERM first where supported), record
        them as terminated, and return. A second signal kills at once."""
        self.summary.interrupted = True
        self.stopping = True
        self.say(f"interrupted: stopping {len(self.running)} running job(s); they will be recorded as terminated "
                 "(interrupt again to stop at once)")
        self._stop_all("interrupted", graceful=True)
        self._report([])  # anything an unreachable server did not take yet
        while self.running:
            if self.interrupts > 1:
                self._stop_all("interrupted", graceful=False)
            now = time.monotonic()
            for proc in self.running.values():
                proc.escalate(now)
            self._reap()
            self._sleep(self._next_timer(0.2))

    # ---- results --------------------------------------------------------------------------

    def _reap(self) -> int:
        done = [p for p in self.running.values() if p.poll() is not None]
        if not done:
            return 0
        completions = []
        for proc in done:
            del self.running[proc.job["id"]]
            proc.finish()
            self.free_cpus += proc.cpus
            self.free_memory += proc.memory
            self.free_gpus += proc.gpus
            usage = self.monitor.remove_job(proc.job["id"]) if self.monitor is not None else None
            rc = proc.process.returncode
            if proc.stop_reason in ("runtime limit", "interrupted", "runner exiting", "workflow canceled"):
                status = "terminated"
            elif rc != 0 or proc.stop_reason is not None:
                status = "failed"
            else:
                status = "completed"
                missing = self._missing_outputs(proc.job)
                if missing:
                    status, rc = "failed", 1
                    proc.note(f"the job succeeded but its output files are missing: {', '.join(missing)}")
                    self.say(f"job {proc.job['name']}: output files missing: {', '.join(missing)}")
            minutes = (time.monotonic() - proc.started) / 60
            completions.append(self._completion(proc.job, status, rc, minutes, usage))
            setattr(self.summary, status, getattr(self.summary, status) + 1)
            self.summary.return_codes[proc.job["name"]] = rc
            suffix = f" ({proc.stop_reason})" if proc.stop_reason else ""
            self.say(f"job {proc.job['name']} (id {proc.job['id']}) {status} (return code {rc}){suffix}")
        self._report(completions)
        return len(done)

    def _completion(self, job: dict[str, Any], status: str, rc: int, minutes: float, usage: Any) -> dict[str, Any]:
        result: dict[str, Any] = {"return_code": rc, "exec_time_minutes": minutes, "compute_node_id": self.node["id"],
                                  "attempt_id": job.get("attempt_id", 1), "completion_time": _now_text()}
        if usage is not None and usage.num_samples:
            result.update(peak_memory_bytes=usage.peak_memory_bytes, avg_memory_bytes=usage.avg_memory_bytes,
                          peak_cpu_percent=usage.peak_cpu_percent, avg_cpu_percent=usage.avg_cpu_percent)
        return {"job_id": job["id"], "status": status, "result": result}

    def _report(self, completions: list[dict[str, Any]]) -> None:
        """Send completions (with any the server could not take before); they stay in
        self.unreported until it has them all."""
        self.unreported += completions
        if not self.unreported:
            return
        try:
            self.client.post(f"workflows/{self.workflow_id}/complete_jobs",
                             {"run_id": self.run_id, "jobs": self.unreported})
        except InvalidInputError:  # e.g. one job was completed meanwhile (workflow canceled): one by one
            for item in self.unreported:
                try:
                    self.client.post(f"jobs/{item['job_id']}/complete_job/{item['status']}/{self.run_id}",
                                     item["result"])
                except InvalidInputError as exc:
                    log.warning("result of job %s not recorded: %s", item["job_id"], exc.message)
        self.unreported = []

    def _missing_outputs(self, job: dict[str, Any]) -> list[str]:
        missing = []
        for file_id in job.get("output_file_ids") or []:
            record = self._file(file_id)
            path = Path(record["path"])
            if path.exists():
                try:
                    self.client.put(f"files/{file_id}", {**record, "st_mtime": path.stat().st_mtime})
                except ServerUnreachable as exc:  # not worth losing the job's result over
                    log.warning("modification time of %s not recorded: %s", record["path"], exc.message)
            else:
                missing.append(record["path"])
        return missing

"""The local job runner: claim jobs that fit the free resources, run each in its own process
group under bash, enforce runtime (and optionally memory) limits, and report results.

One loop does the local work: reap finished children, enforce limits, start queued jobs. A
finished child, an expiring limit, a monitor alarm, a signal or a batch of results reaching the
server wakes it at once (torc.runner.children), so freed resources are reused without waiting for
a poll interval. Talking to the server about each job is off the loop: starts and results go in
batches from a background thread (torc.runner.reporter).

Short jobs are claimed ahead: once jobs turn out to take less than PREFETCH_SECONDS, the runner
keeps a local queue of claimed (pending) jobs worth about that much work, so claiming costs one
request per many jobs. Long jobs are claimed only when resources are free, so several runners
share the work fairly. Queued jobs a runner does not start go back to ready when it stops; a
runner that dies leaves them to `workflows sync-status`, which finds them by its compute node.

A failed job with a failure handler is retried (after its rule's recovery script, run off the
loop) instead of recorded failed, and with `use_pending_failed` a failed job that no rule covers
is recorded `pending_failed` (torc.runner.failures, docs/failure-handling.md)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from torc.client import TorcClient
from torc.client.http import ServerUnreachable
from torc.core.errors import TorcError
from torc.core.units import format_duration, parse_duration_seconds, parse_memory_bytes
from torc.runner.actions import ActionRunner
from torc.runner.children import ChildWatcher
from torc.runner.failures import (
    RECOVERY_TIMEOUT,
    Handler,
    Recoveries,
    Recovery,
    Rule,
    parse_handler,
    pick_rule,
)
from torc.runner.process import JobProcess, append_note, build_command, stdio_stem
from torc.runner.reporter import Reporter

GIB = 1024**3
log = logging.getLogger("torc.runner")

PREFETCH_SECONDS = 0.5  # claim ahead about this much work when jobs are shorter than this
MAX_QUEUED = 1000  # never hold more claimed-but-unstarted jobs than this
ALLOCATION_REQUEUES = 5  # a job stopped by its allocation's end goes back to ready at most this often
FILES_IN_BULK = 8  # more unknown output files than this in one claim: load the workflow's file list


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
    prefetch: bool = True  # claim short jobs ahead of free resources
    recovery_timeout: float = RECOVERY_TIMEOUT  # seconds a failure handler's recovery script may run
    # Inside an allocation (torc.slurm.allocation): when to stop (epoch seconds, the allocation's end
    # minus the expiration buffer; claims carry the time left as time_limit, running jobs are
    # terminated then), what the runner registers as, and whether it submits Slurm allocations for
    # schedule_nodes actions.
    end_time: float | None = None
    # queue mode claims ignore runtimes: no new claims once less than this is left before end_time
    min_time_for_new_jobs: float | None = None
    scheduler_config_id: int | None = None
    strict_scheduler_match: bool = False
    compute_node_type: str = "local"
    scheduler_info: dict[str, Any] | None = None
    num_nodes: int = 1
    slurm_actions: bool = False
    slurm_poll_interval: float | None = None  # poll interval of the runners of allocations it submits


@dataclass
class RunSummary:
    """What this runner recorded. `failed` counts jobs recorded failed or pending_failed (those
    are also counted in `pending_failed`); `retried` counts failed attempts a failure handler
    sent back for another attempt (not counted as failed)."""
    completed: int = 0
    failed: int = 0
    terminated: int = 0
    retried: int = 0
    pending_failed: int = 0
    interrupted: bool = False
    return_codes: dict[str, int] = field(default_factory=dict)  # job name -> return code of its last attempt here

    @property
    def finished(self) -> int:
        return self.completed + self.failed + self.terminated + self.retried


class RunnerInterrupted(ServerUnreachable):
    """Ctrl-C while the server could not be reached: the runner stopped waiting for it."""


class PatientClient:
    """The runner's view of a TorcClient (which should not retry itself): a request that cannot
    reach the server, which may be restarting, is retried for `retry_seconds`, like TorcClient's
    own retries, except that the wait ends as soon as `give_up()` turns true (Ctrl-C), raising
    RunnerInterrupted. Safe to share between the runner's threads."""

    def __init__(self, client: TorcClient, retry_seconds: float, give_up: Callable[[], bool]):
        self.client = client
        self.url = client.url
        self.retry_seconds = retry_seconds
        self.give_up = give_up

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None) -> Any:
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.2
        while True:
            try:
                return self.client.request(method, path, params=params, json=json)
            except ServerUnreachable as exc:
                if self.give_up():
                    raise RunnerInterrupted(f"interrupted while waiting for the server ({exc.message})") from None
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("torc server unreachable (%s); retrying in %.1f s", exc.message, delay)
                until = time.monotonic() + delay
                while time.monotonic() < until and not self.give_up():  # a signal cuts the wait short
                    time.sleep(0.05)
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
        self.client = PatientClient(client, options.server_retry_seconds,
                                    give_up=lambda: self.interrupts > 1 or (self.interrupts == 1 and not self.stopping))
        self.workflow_id = workflow_id
        self.options = options
        self.say = say
        self.monitor = monitor  # torc.runner.monitor.ResourceMonitor or None
        self.on_progress = on_progress  # (running here, finished here) after every change
        self.children = ChildWatcher()
        self.running: dict[int, JobProcess] = {}
        self.queue: deque[dict[str, Any]] = deque()  # claimed here, not started yet (pending on the server)
        self.summary = RunSummary()
        self.free_cpus = options.num_cpus
        self.free_memory = int(options.memory_gb * GIB)
        self.free_gpus = options.num_gpus
        self.needs: dict[int, tuple[int, int, int, int, float | None]] = {}  # per requirement id, see _needs_of
        self.files: dict[int, dict[str, Any]] = {}
        self.all_files_loaded = False
        self.stdio = options.output_dir / "job_stdio"
        self.interrupts = 0
        self.stopping = False  # stopping the jobs after an interrupt
        self.over_limit: dict[int, tuple[int, int]] = {}  # job id -> (rss, limit), set by the monitor thread
        self.job_seconds: float | None = None  # moving average of how long jobs run here
        self.claim_after = 0.0  # no claim before this time (monotonic) after one that found nothing ...
        self.claim_seen_results = -1  # ... unless results reached the server since
        self.reporter: Reporter | None = None
        self.lost_reported = False  # "results not recorded" said once
        self.handlers: dict[int, Handler] = {}  # failure handlers of the claimed jobs, by id
        self.use_pending_failed = False
        self.recoveries = Recoveries(self.children.wake, timeout=options.recovery_timeout)
        # the allocation's end on the monotonic clock (None: no end)
        self.end_at = None if options.end_time is None else time.monotonic() + options.end_time - time.time()

    # ---- lifecycle ------------------------------------------------------------------------

    def run(self) -> RunSummary:
        self.stdio.mkdir(parents=True, exist_ok=True)
        workflow = self.client.get(f"workflows/{self.workflow_id}")
        idle_timeout = self.options.idle_timeout
        if idle_timeout is None:
            idle_timeout = float(workflow.get("compute_node_wait_for_new_jobs_seconds") or 90)
        self.use_pending_failed = bool(workflow.get("use_pending_failed"))
        self.run_id = self.client.run_id(self.workflow_id)
        self.node = self._register()
        self.env = self._base_env()
        self.actions = ActionRunner(self.client, self.workflow_id, self.options.output_dir, self.node["id"], self.say,
                                    self.env, slurm=self.options.slurm_actions,
                                    slurm_poll_interval=self.options.slurm_poll_interval)
        self.reporter = Reporter(self.client, self.workflow_id, self.run_id, self.node["id"],
                                 on_sent=self.children.wake)
        started = time.monotonic()
        restore = self._install_signal_handlers()
        try:
            self.actions.run_pending(("on_workflow_start", "on_worker_start"))
            self._loop(idle_timeout)
            if not self.summary.interrupted:
                self.actions.run_pending(("on_workflow_complete", "on_worker_complete"))
        except RunnerInterrupted:  # a second Ctrl-C while the server was unreachable
            self.summary.interrupted = True
            self._report_lost()
        finally:
            self._stop_all("runner exiting", graceful=False)
            try:
                self._shut_down(started)
            finally:
                restore()
        return self.summary

    def _shut_down(self, started: float) -> None:
        """Unstarted claims back to ready, every result sent (unless given up on), node inactive."""
        try:
            self._settle()
            given_up = self.interrupts > 1 or self.reporter.error is not None
            if not self.reporter.close(5.0 if given_up else None):
                self._report_lost()
            self.client.put(f"compute_nodes/{self.node['id']}", {
                **self.node, "is_active": False, "duration_seconds": time.monotonic() - started})
        except TorcError as exc:
            log.warning("could not finish with the server cleanly: %s", exc.message)
        finally:
            self.children.close()

    def _report_lost(self) -> None:
        lost = self.reporter.unsent() + len(self.running)
        if lost and not self.lost_reported:
            self.lost_reported = True
            self.say(f"interrupted while the server was unreachable: {lost} job result(s) not recorded; once the "
                     f"server is back, `torc workflows sync-status {self.workflow_id}` fails jobs left running")

    def _register(self) -> dict[str, Any]:
        return self.client.post("compute_nodes", {
            "workflow_id": self.workflow_id, "hostname": socket.gethostname(), "pid": os.getpid(),
            "start_time": _now_text(), "is_active": True, "num_cpus": self.options.num_cpus,
            "memory_gb": self.options.memory_gb, "num_gpus": self.options.num_gpus, "num_nodes": self.options.num_nodes,
            "compute_node_type": self.options.compute_node_type, "scheduler": self.options.scheduler_info,
            "scheduler_config_id": self.options.scheduler_config_id, "time_limit": self._time_limit(),
        })

    def _seconds_left(self) -> float | None:
        """Seconds until this runner must stop (the allocation's end less its buffer), or None."""
        return None if self.end_at is None else self.end_at - time.monotonic()

    def _time_limit(self) -> str | None:
        left = self._seconds_left()
        return None if left is None else format_duration(max(0.0, left))

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
            self.children.wake()  # a pipe write: no locks in a signal handler

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
        seen_results = 0
        while True:
            now = time.monotonic()
            if self.interrupts:
                return
            if self.end_at is not None and now >= self.end_at:
                self._end_of_allocation()
                return
            self._check_reporter()
            self._finish_recoveries()
            self._enforce_limits(now)
            if now >= next_heartbeat:
                self.client.post(f"compute_nodes/{self.node['id']}/heartbeat")
                next_heartbeat = now + self.options.heartbeat_interval
            busy = bool(self.running or self.queue or self.recoveries.pending)
            if not busy:  # the server must know everything before we ask what is left
                self.reporter.flush()
                self._check_reporter()
            reported = self.reporter.results_sent != seen_results
            seen_results = self.reporter.results_sent
            checked = now >= next_status or not busy
            if checked:
                status = self.client.get(f"workflows/{self.workflow_id}/is_complete")
                next_status = now + min(self.options.poll_interval, 2.0)
                if status["is_canceled"]:
                    self.say(f"workflow {self.workflow_id} was canceled; stopping its jobs")
                    self._stop_all("workflow canceled", graceful=False)
                    self._release_queue()
                    while self.running:
                        self._reap(self.children.wait(1.0))
                    return
                if status["is_complete"] and not busy:
                    return
            if checked or (reported and self.actions.has_job_actions):
                self.actions.run_pending(("on_jobs_ready", "on_jobs_complete"))
            claimed = self._claim(now)
            self._start_queued()
            if self.on_progress is not None:
                self.on_progress(len(self.running), self.summary.finished)
            if self.running or self.queue or claimed or self.recoveries.pending:
                idle_since = None
                self._reap(self.children.wait(self._next_timer(now, next_status)))
                continue
            idle_since = idle_since or now
            if self.use_pending_failed and self._only_decisions_left():
                return
            if now - idle_since > idle_timeout and not self.actions.has_pending_work():
                self.say(f"no job became ready for {idle_timeout:.0f} s; this runner stops")
                return
            wait = self.options.poll_interval
            if self.end_at is not None:
                wait = max(0.0, min(wait, self.end_at - now))
            self._reap(self.children.wait(wait))

    def _next_timer(self, now: float, next_status: float) -> float:
        """Seconds until the next runtime limit, SIGKILL escalation or status check."""
        times = [p.deadline for p in self.running.values() if p.deadline and p.stop_reason is None]
        times += [p.kill_at for p in self.running.values() if p.kill_at and p.kill_at > now]
        times.append(next_status)
        if self.end_at is not None:
            times.append(self.end_at)
        if self.claim_after > now and (self.queue or self._has_room()):
            times.append(self.claim_after)
        return max(0.0, min(t - now for t in times))

    def _check_reporter(self) -> None:
        """Stop jobs the server no longer lets us run; give up when results cannot be sent."""
        for job_id in self.reporter.rejected & self.running.keys():
            proc = self.running[job_id]
            if proc.stop_reason is None:
                self.say(f"job {proc.job['name']} (id {job_id}) was canceled or reset meanwhile; stopping it")
                proc.stop("taken back by the server", graceful=False, grace_seconds=0)
        for job_id, why in self.reporter.take_refused_retries():
            self.say(f"job {job_id} was not retried ({why}); recorded failed")
            self.summary.retried -= 1
            self.summary.failed += 1
        error = self.reporter.error
        if isinstance(error, RunnerInterrupted):
            raise error
        if error is not None and not self.reporter.idle() and isinstance(error, ServerUnreachable):
            raise error

    # ---- claiming -------------------------------------------------------------------------

    def _slots(self) -> int:
        """About how many jobs run here at once."""
        return self.options.max_parallel_jobs or max(1, self.options.num_cpus)

    def _prefetching(self) -> bool:
        return self.options.prefetch and self.job_seconds is not None and self.job_seconds < PREFETCH_SECONDS

    def _queue_target(self) -> int:
        """Claimed-ahead jobs to keep: about PREFETCH_SECONDS of work for the slots."""
        per_slot = PREFETCH_SECONDS / max(self.job_seconds or PREFETCH_SECONDS, 1e-3)
        return max(self._slots(), min(MAX_QUEUED, int(self._slots() * per_slot)))

    def _has_room(self) -> bool:
        if self.options.max_parallel_jobs:
            return len(self.running) < self.options.max_parallel_jobs
        return self.free_cpus > 0 and self.free_memory > 0

    def _claim(self, now: float) -> int:
        """Claim more jobs into the queue when it runs low. After a claim that found nothing, the
        next waits until results reached the server (which may have released jobs) or the poll
        interval passed."""
        if now < self.claim_after and self.reporter.results_sent == self.claim_seen_results:
            return 0
        prefetch = self._prefetching()
        if prefetch:
            target = self._queue_target()
            if len(self.queue) > target // 2:
                return 0
            limit = target - len(self.queue)
        else:
            if self.queue or not self._has_room():
                return 0
            limit = self.options.max_parallel_jobs - len(self.running) if self.options.max_parallel_jobs else 0
        seen = self.reporter.results_sent
        left = self._seconds_left()
        if left is not None and left < 1:
            return 0  # no time left in the allocation for anything
        if left is not None and self.options.max_parallel_jobs and left < (self.options.min_time_for_new_jobs or 0):
            return 0  # a job claimed now would likely be stopped by the allocation's end
        sched = {"time_limit": self._time_limit(), "scheduler_config_id": self.options.scheduler_config_id}
        sched = {k: v for k, v in sched.items() if v is not None}
        strict = True if self.options.strict_scheduler_match and self.options.scheduler_config_id else None
        if self.options.max_parallel_jobs:
            jobs = self.client.post(f"workflows/{self.workflow_id}/claim_next_jobs", limit=limit,
                                    compute_node_id=self.node["id"])["jobs"]
        elif prefetch:  # jobs that fit this runner, ahead of its free resources
            jobs = self.client.post(
                f"workflows/{self.workflow_id}/claim_jobs_based_on_resources/{limit}",
                {"id": self.node["id"], "num_cpus": self.options.num_cpus, "memory_gb": self.options.memory_gb,
                 "num_gpus": self.options.num_gpus, "num_nodes": self.options.num_nodes, **sched}, prefetch=True,
                strict_scheduler_match=strict)["jobs"]
        else:  # jobs that fit the free resources now
            jobs = self.client.post(
                f"workflows/{self.workflow_id}/claim_jobs_based_on_resources/{self.free_cpus}",
                {"id": self.node["id"], "num_cpus": self.free_cpus, "memory_gb": self.free_memory / GIB,
                 "num_gpus": self.free_gpus, "num_nodes": self.options.num_nodes, **sched},
                strict_scheduler_match=strict)["jobs"]
        if not jobs:
            self.claim_after = now + self.options.poll_interval
            self.claim_seen_results = seen
            return 0
        self.claim_after = 0.0
        self._load_records(jobs)
        self.queue.extend(jobs)
        return len(jobs)

    def _release_queue(self) -> None:
        if not self.queue:
            return
        ids = [job["id"] for job in self.queue]
        self.queue.clear()
        try:
            self.client.post(f"workflows/{self.workflow_id}/release_jobs", {"job_ids": ids})
        except TorcError as exc:
            log.warning("%d claimed job(s) not given back (sync-status will): %s", len(ids), exc.message)

    def _load_records(self, jobs: list[dict[str, Any]]) -> None:
        """Resource requirements and output-file records the claimed jobs need, fetched once."""
        for job in jobs:
            rr_id = job.get("resource_requirements_id")
            if rr_id is not None and rr_id not in self.needs:
                self.needs[rr_id] = self._needs_of(self.client.get(f"resource_requirements/{rr_id}"))
        unknown = {f for job in jobs for f in job.get("output_file_ids") or [] if f not in self.files}
        if len(unknown) > FILES_IN_BULK and not self.all_files_loaded:
            self.files.update((f["id"], f) for f in self.client.iter_items("files", workflow_id=self.workflow_id))
            self.all_files_loaded = True
            unknown -= self.files.keys()
        for file_id in unknown:
            self.files[file_id] = self.client.get(f"files/{file_id}")
        for job in jobs:
            handler_id = job.get("failure_handler_id")
            if handler_id is not None and handler_id not in self.handlers:
                self._load_handler(handler_id)

    def _load_handler(self, handler_id: int) -> Handler:
        handler = parse_handler(self.client.get(f"failure_handlers/{handler_id}"))
        if handler.problem:
            self.say(f"failure handler {handler.name!r} (id {handler_id}) is not applied: {handler.problem}")
        self.handlers[handler_id] = handler
        return handler

    # ---- starting -------------------------------------------------------------------------

    def _needs_of(self, rr: dict[str, Any]) -> tuple[int, int, int, int, float | None]:
        """(cpus, memory, gpus) a job of this requirement holds here, its memory limit and runtime limit."""
        runtime_s = parse_duration_seconds(rr.get("runtime", "P0DT1M"))
        memory_limit = parse_memory_bytes(rr.get("memory", "0"))
        if self.options.max_parallel_jobs:  # queue mode ignores requirements (but not limits)
            return 0, 0, 0, memory_limit, runtime_s
        return rr.get("num_cpus", 1), memory_limit, rr.get("num_gpus", 0), memory_limit, runtime_s

    def _needs(self, job: dict[str, Any]) -> tuple[int, int, int, int, float | None]:
        return self.needs.get(job.get("resource_requirements_id"), (0, 0, 0, 0, None))

    def _start_queued(self) -> None:
        """Start queued jobs, in order, that fit what is free now (a job that does not fit yet
        waits; smaller ones behind it may go first)."""
        skipped: deque[dict[str, Any]] = deque()
        while self.queue and not self.interrupts and self._has_room():
            job = self.queue.popleft()
            cpus, memory, gpus, memory_limit, runtime_s = self._needs(job)
            if cpus > self.free_cpus or memory > self.free_memory or gpus > self.free_gpus:
                skipped.append(job)
                continue
            self._start(job, cpus, memory, gpus, memory_limit, runtime_s)
        skipped.extend(self.queue)
        self.queue = skipped

    def _start(self, job: dict[str, Any], cpus: int, memory: int, gpus: int, memory_limit: int,
               runtime_s: float | None) -> None:
        attempt = job.get("attempt_id", 1)
        stem = stdio_stem(self.workflow_id, job["id"], self.run_id, attempt)
        env = {**self.env, "TORC_JOB_ID": str(job["id"]), "TORC_JOB_NAME": job["name"], "TORC_ATTEMPT_ID": str(attempt)}
        try:
            for file_id in job.get("output_file_ids") or []:
                Path(self.files[file_id]["path"]).parent.mkdir(parents=True, exist_ok=True)
            deadline = time.monotonic() + runtime_s if runtime_s else None
            proc = JobProcess.spawn(job, build_command(job), env, self.stdio / f"{stem}.o", self.stdio / f"{stem}.e",
                                    deadline, cpus, memory, gpus)
        except OSError as exc:  # e.g. a full or read-only output directory
            self.say(f"job {job['name']} (id {job['id']}) could not start: {exc}")
            self.reporter.finished(self._completion(job, "failed", 126, 0.0, None))
            self.summary.failed += 1
            return
        self.running[job["id"]] = proc
        self.children.watch(proc, proc.output.streams if proc.output is not None else ())
        self.reporter.started(job["id"])
        self.free_cpus -= cpus
        self.free_memory -= memory
        self.free_gpus -= gpus
        if self.monitor is not None:
            limit = memory_limit if self.options.enforce_memory_limits and memory_limit else None
            self.monitor.add_job(job["id"], proc.pid, job["name"], memory_limit_bytes=limit,
                                 sample_now=self.monitor.time_series_db is not None)

    def on_over_limit(self, job_id: int, rss: int, limit: int) -> None:
        """Called by the resource monitor's thread; the loop does the killing."""
        self.over_limit[job_id] = (rss, limit)
        self.children.wake()

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
            if proc.returncode is None:
                graceful_here = graceful and bool(proc.job.get("supports_termination"))
                proc.stop(reason, graceful=graceful_here, grace_seconds=self.options.termination_grace)

    def _interrupt(self) -> None:
        """Ctrl-C / SIGTERM: stop every running job (SIGTERM first where supported), record
        them as terminated, and return. A second signal kills at once."""
        self.summary.interrupted = True
        self.stopping = True
        self.say(f"interrupted: stopping {len(self.running)} running job(s); they will be recorded as terminated "
                 "(interrupt again to stop at once)")
        self.recoveries.stop()  # a job whose recovery script is stopped is recorded failed, not retried
        self._stop_all("interrupted", graceful=True)
        while self.running:
            if self.interrupts > 1:
                self._stop_all("interrupted", graceful=False)
            now = time.monotonic()
            for proc in self.running.values():
                proc.escalate(now)
            self._reap(self.children.wait(self._next_timer(now, now + 0.2)))
        self._settle()

    def _end_of_allocation(self) -> None:
        """The allocation is about to end: stop the running jobs (SIGTERM first where supported),
        record them terminated and return, before Slurm kills everything."""
        if self.running:
            self.say(f"the allocation ends soon: stopping {len(self.running)} running job(s); they are recorded "
                     "as terminated")
        else:
            self.say("the allocation ends soon; this runner stops")
        self.recoveries.stop()
        self._stop_all("allocation ending", graceful=True)
        while self.running and not self.interrupts:
            now = time.monotonic()
            for proc in self.running.values():
                proc.escalate(now)
            self._reap(self.children.wait(0.2))
        self._settle()

    def _settle(self) -> None:
        """Unstarted claims back to ready; recovery scripts still running are stopped and their
        jobs recorded failed."""
        self._release_queue()
        self.recoveries.close()
        self._finish_recoveries()

    # ---- results --------------------------------------------------------------------------

    def _reap(self, exited: list[JobProcess]) -> None:
        for proc in exited:
            job = proc.job
            del self.running[job["id"]]
            proc.finish()
            self.free_cpus += proc.cpus
            self.free_memory += proc.memory
            self.free_gpus += proc.gpus
            usage = self.monitor.remove_job(job["id"]) if self.monitor is not None else None
            seconds = (proc.ended or time.monotonic()) - proc.started
            self.job_seconds = seconds if self.job_seconds is None else 0.8 * self.job_seconds + 0.2 * seconds
            if job["id"] in self.reporter.rejected:
                continue  # the server took the job back: its result is not ours to record
            rc = proc.returncode
            if proc.stop_reason is None and self.interrupts and rc is not None and rc < 0:
                proc.stop_reason = "interrupted"  # signalled with the runner (e.g. Slurm's SIGTERM at the time limit)
            if proc.stop_reason in ("runtime limit", "interrupted", "runner exiting", "workflow canceled",
                                    "allocation ending"):
                status = "terminated"
            elif rc != 0 or proc.stop_reason is not None:
                status = "failed"
            else:
                status = "completed"
                missing = self._check_outputs(job)
                if missing:
                    status, rc = "failed", 1
                    proc.note(f"the job succeeded but its output files are missing: {', '.join(missing)}")
                    self.say(f"job {job['name']}: output files missing: {', '.join(missing)}")
            lost_logs = proc.output.errors if proc.output is not None else []
            if lost_logs:  # a job whose output could not be kept is not a success
                self.say(f"job {job['name']} (id {job['id']}): its output could not be saved: {'; '.join(lost_logs)}")
                if status == "completed":
                    status, rc = "failed", 1
            item = self._completion(job, status, rc, seconds / 60, usage, proc)
            suffix = f" ({proc.stop_reason})" if proc.stop_reason else ""
            if proc.stop_reason == "allocation ending" and self._requeue(job, item, seconds):
                continue
            if status == "failed":
                decision = self._apply_handler(job, rc, item, suffix)
                if decision is True:  # retried (perhaps after its recovery script)
                    continue
                if decision is None and self.use_pending_failed:  # no handler or no rule: a person decides
                    status = item["status"] = "pending_failed"
                    handler = self.handlers.get(job.get("failure_handler_id"))
                    why = f"no rule of failure handler {handler.name!r} covers" if handler else "no failure handler for"
                    self._note(job, f"recorded pending_failed: {why} return code {rc}; decide with "
                                    f"`torc jobs resolve {self.workflow_id} --retry|--fail {job['id']}`")
            self.reporter.finished(item)
            self._count(job, status, rc)
            self.say(f"job {job['name']} (id {job['id']}) {status} (return code {rc}){suffix}")

    def _requeue(self, job: dict[str, Any], item: dict[str, Any], seconds: float) -> bool:
        """A job stopped by its allocation's end before its own runtime was up is not at fault: it
        goes back to ready for another allocation (this attempt keeps its terminated result). One
        that overran its runtime stays terminated, for `torc recover` to give it more time."""
        runtime_s = self._needs(job)[4]
        if runtime_s and seconds >= runtime_s:
            return False
        if job.get("attempt_id", 1) > ALLOCATION_REQUEUES:
            self._note(job, f"stopped by the end of its allocation again; not requeued after "
                            f"{job.get('attempt_id', 1)} attempts")
            return False
        item["result"]["status"] = "terminated"
        self._note(job, "stopped: its allocation ended before the job's runtime was up; requeued for another "
                        "allocation")
        self.reporter.retry(item, ALLOCATION_REQUEUES)
        self.summary.retried += 1
        self.summary.return_codes[job["name"]] = item["result"]["return_code"]
        self.say(f"job {job['name']} (id {job['id']}) stopped by the allocation's end; requeued (attempt "
                 f"{job.get('attempt_id', 1) + 1} can run in another allocation)")
        return True

    def _count(self, job: dict[str, Any], status: str, rc: int) -> None:
        if status == "pending_failed":
            self.summary.pending_failed += 1
            status = "failed"
        setattr(self.summary, status, getattr(self.summary, status) + 1)
        self.summary.return_codes[job["name"]] = rc

    def _note(self, job: dict[str, Any], message: str) -> None:
        """A line in the job's stderr log (of the attempt that just ended)."""
        stem = stdio_stem(self.workflow_id, job["id"], self.run_id, job.get("attempt_id", 1))
        try:
            append_note(self.stdio / f"{stem}.e", message)
        except OSError as exc:
            log.warning("could not write to the log of job %s: %s", job["id"], exc)

    # ---- failure handlers -----------------------------------------------------------------

    def _apply_handler(self, job: dict[str, Any], rc: int, item: dict[str, Any], suffix: str) -> bool | None:
        """A failed job's handler: True when it is being retried, False when its rule has no
        retry left (it stays failed), None when it has no handler or no rule covers rc."""
        handler_id = job.get("failure_handler_id")
        if handler_id is None:
            return None
        handler = self.handlers.get(handler_id) or self._load_handler(handler_id)
        rule = pick_rule(handler, rc)
        if rule is None:
            return None
        attempt = job.get("attempt_id", 1)
        if attempt - 1 >= rule.max_retries:
            self._note(job, f"failure handler {handler.name!r} ({rule.describe()}): no retry left after "
                            f"{attempt} attempt(s) (max_retries {rule.max_retries}); the job stays failed")
            self.say(f"job {job['name']} (id {job['id']}): no retry left after {attempt} attempt(s)")
            return False
        if not rule.recovery_script:
            self._send_retry(job, item, handler, rule, suffix)
            return True
        stem = stdio_stem(self.workflow_id, job["id"], self.run_id, attempt)
        env = {**self.env, "TORC_JOB_ID": str(job["id"]), "TORC_JOB_NAME": job["name"],
               "TORC_ATTEMPT_ID": str(attempt), "TORC_RETURN_CODE": str(rc), "TORC_RETRY": str(attempt),
               "TORC_MAX_RETRIES": str(rule.max_retries), "TORC_FAILURE_HANDLER_ID": str(handler.id),
               "TORC_FAILURE_HANDLER_NAME": handler.name, "TORC_JOB_STDOUT": str(self.stdio / f"{stem}.o"),
               "TORC_JOB_STDERR": str(self.stdio / f"{stem}.e")}
        self.recoveries.submit(Recovery(job, item, handler, rule, env, self.options.output_dir,
                                        self.stdio / f"{stem}.recovery.log"))
        self.say(f"job {job['name']} (id {job['id']}) failed (return code {rc}){suffix}; running its recovery "
                 f"script before retry {attempt} of {rule.max_retries}")
        return True

    def _send_retry(self, job: dict[str, Any], item: dict[str, Any], handler: Handler, rule: Rule,
                    suffix: str = "", recovered: bool = False) -> None:
        attempt = job.get("attempt_id", 1)
        rc = item["result"]["return_code"]
        self._note(job, f"failure handler {handler.name!r} ({rule.describe()}): retry {attempt} of "
                        f"{rule.max_retries}; the next attempt is {attempt + 1}")
        self.reporter.retry(item, rule.max_retries)
        self.summary.retried += 1
        self.summary.return_codes[job["name"]] = rc
        what = "recovery script succeeded" if recovered else f"failed (return code {rc}){suffix}"
        self.say(f"job {job['name']} (id {job['id']}) {what}; retry {attempt} of {rule.max_retries} "
                 f"(failure handler {handler.name!r})")

    def _finish_recoveries(self) -> None:
        """Retry the jobs whose recovery script succeeded; record the others failed."""
        for recovery in self.recoveries.take_done():
            job = recovery.job
            if recovery.ok:
                self._send_retry(job, recovery.item, recovery.handler, recovery.rule, recovered=True)
                continue
            message = (f"job {job['name']} (id {job['id']}): recovery script {recovery.rule.recovery_script!r} of "
                       f"failure handler {recovery.handler.name!r} {recovery.failure()}; the job is not retried "
                       f"and is recorded failed (script output: {recovery.log_path})")
            self._note(job, message)
            self.say(message)
            self.reporter.finished(recovery.item)
            self._count(job, "failed", recovery.item["result"]["return_code"])

    def _only_decisions_left(self) -> bool:
        """True (and says so) when nothing in the workflow can run until someone decides about its
        pending_failed jobs: none ready, pending or running anywhere."""
        if self.actions.has_pending_work():
            return False
        counts = self.client.get(f"workflows/{self.workflow_id}/job_counts")["counts"]
        waiting = counts.get("pending_failed", 0)
        if not waiting or any(counts.get(s, 0) for s in ("ready", "pending", "running")):
            return False
        self.say(f"{waiting} job(s) are pending_failed and wait for a decision; nothing else can run. List them "
                 f"with `torc jobs pending-failed {self.workflow_id}`, then `torc jobs resolve {self.workflow_id} "
                 "--retry|--fail JOB_ID...|--all`; this runner stops")
        return True

    def _completion(self, job: dict[str, Any], status: str, rc: int, minutes: float, usage: Any,
                    proc: JobProcess | None = None) -> dict[str, Any]:
        result: dict[str, Any] = {"return_code": rc, "exec_time_minutes": minutes, "compute_node_id": self.node["id"],
                                  "attempt_id": job.get("attempt_id", 1), "completion_time": _now_text()}
        if self.monitor is not None and proc is not None:
            result.update(_usage_figures(usage, proc, minutes * 60))
        return {"job_id": job["id"], "status": status, "result": result}

    def _check_outputs(self, job: dict[str, Any]) -> list[str]:
        """Declared output files that are missing; the others' modification times are recorded."""
        missing = []
        for file_id in job.get("output_file_ids") or []:
            record = self.files[file_id]
            try:
                mtime = os.stat(record["path"]).st_mtime
            except OSError:
                missing.append(record["path"])
                continue
            self.reporter.file_modified({**record, "st_mtime": mtime})
        return missing


def _usage_figures(usage: Any, proc: JobProcess, seconds: float) -> dict[str, Any]:
    """Peak and average CPU and memory for a result, from the monitor's samples of the process
    tree; the average CPU is wait4's exact CPU time over the job's life instead, which is also
    all there is for a job that ended before its first sample. (wait4's peak RSS is no use: it
    counts the runner's own memory, copied at fork.)"""
    figures: dict[str, Any] = {}
    if usage is not None and usage.num_samples:
        figures.update(peak_memory_bytes=usage.peak_memory_bytes, avg_memory_bytes=usage.avg_memory_bytes,
                       peak_cpu_percent=usage.peak_cpu_percent, avg_cpu_percent=usage.avg_cpu_percent)
    if proc.cpu_seconds is not None and seconds > 0:
        figures["avg_cpu_percent"] = round(proc.cpu_seconds / seconds * 100, 2)
        figures["peak_cpu_percent"] = max(figures.get("peak_cpu_percent", 0.0), figures["avg_cpu_percent"])
    return figures

"""Resource monitoring of running jobs: one background thread samples each job's whole process
tree (the root PID plus all descendants) every `interval` seconds and sums CPU %, RSS and the
process count.

Summary mode keeps peak and average per job (`JobUsage`). With `time_series_db` every sample is
also written to SQLite, in torc's layout:

    job_resource_samples(id INTEGER PRIMARY KEY, job_id, timestamp REAL, cpu_percent REAL,
                         memory_bytes INTEGER, num_processes INTEGER)
    job_metadata(job_id INTEGER PRIMARY KEY, job_name TEXT)

The file is in WAL mode and committed once per sample round, so it can be read while written.

How a tree is found, cheapest first (chosen once per monitor):
  1. Linux `/proc/<pid>/task/<tid>/children` (kernels with CONFIG_PROC_CHILDREN): cost grows
     with the size of the tracked trees only.
  2. Linux without it: one scan of `/proc/*/stat` per sample round, shared by all jobs.
  3. Elsewhere: one `psutil.process_iter(["ppid"])` pass per round.

CPU %: 100 means one core busy, as psutil and torc report it (a tree can exceed 100). It is
computed from psutil `cpu_times()` of cached `psutil.Process` objects, as `cpu_percent()` does,
with the state kept per process across samples, plus two refinements:
  - a process first seen in a round was born after the previous round, so all its CPU time
    belongs to this interval (`cpu_percent()` would report 0.0 for it);
  - the children times (`children_user/children_system`) are included, so CPU of descendants
    that started and were reaped between two samples is not lost. The last seen CPU time of a
    tracked process that died is subtracted, since its parent's children times now include it.
    A transient negative interval (parent not yet reaped it) is carried to the next round.
The immediate sample taken by `add_job` has no previous sample: it reports 0 % CPU (in the
time series too) but is left out of the average CPU, so short jobs are not averaged down.

Processes that vanish between listing and sampling, zombies and processes we may not inspect
are skipped; the monitor thread never dies from them. Memory is the plain sum of RSS (shared
pages count once per process, as in torc).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

OverLimitCallback = Callable[[int, int, int], None]

FIRST_SAMPLE_DELAY = 0.05  # seconds after add_job(sample_now=False)

_PSUTIL_ERRORS = (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied)

SCHEMA = """
CREATE TABLE IF NOT EXISTS job_resource_samples (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL,
    timestamp REAL NOT NULL,
    cpu_percent REAL NOT NULL,
    memory_bytes INTEGER NOT NULL,
    num_processes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_job_resource_samples_job_id ON job_resource_samples(job_id);
CREATE TABLE IF NOT EXISTS job_metadata (
    job_id INTEGER PRIMARY KEY,
    job_name TEXT
);
"""


@dataclass(frozen=True)
class JobUsage:
    """Peak and average over a job's samples. CPU % is per core (200 = two cores busy); the
    average CPU leaves out the first sample, which has nothing to measure CPU time against."""

    peak_memory_bytes: int
    avg_memory_bytes: int
    peak_cpu_percent: float
    avg_cpu_percent: float
    num_samples: int
    peak_processes: int


# ---- finding process trees -------------------------------------------------------------------


def _proc_children_supported() -> bool:
    return os.path.exists(f"/proc/{os.getpid()}/task/{threading.get_native_id()}/children")


def _read_children(pid: int) -> list[int]:
    """Direct children of pid from /proc/<pid>/task/*/children (every thread can fork)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    children: list[int] = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb", buffering=0) as f:
                data = f.read()
        except OSError:
            continue
        children.extend(int(c) for c in data.split())
    return children


def _linux_children_map() -> dict[int, list[int]]:
    """parent pid -> child pids, from one pass over /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb", buffering=0) as f:
                data = f.read()
            ppid = int(data[data.rfind(b")") + 2:].split(maxsplit=2)[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    return children


def _psutil_children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for proc in psutil.process_iter(["ppid"]):
        ppid = proc.info.get("ppid")
        if ppid is not None:
            children.setdefault(ppid, []).append(proc.pid)
    return children


def _walk(root: int, children_of: Callable[[int], list[int]]) -> list[int]:
    seen = {root}
    order = [root]
    i = 0
    while i < len(order):
        for child in children_of(order[i]):
            if child not in seen:
                seen.add(child)
                order.append(child)
        i += 1
    return order


class _TreeLister:
    """Lists process trees; for the scan strategies one parent map serves a whole round."""

    def __init__(self) -> None:
        if _proc_children_supported():
            self.strategy = "proc_children"
        elif os.path.isdir("/proc") and os.path.exists(f"/proc/{os.getpid()}/stat"):
            self.strategy = "proc_scan"
        else:
            self.strategy = "psutil_scan"
        self._map: dict[int, list[int]] | None = None

    def new_round(self) -> None:
        self._map = None

    def tree(self, root: int) -> list[int]:
        if self.strategy == "proc_children":
            return _walk(root, _read_children)
        if self._map is None:
            self._map = _linux_children_map() if self.strategy == "proc_scan" else _psutil_children_map()
        parents = self._map
        return _walk(root, lambda pid: parents.get(pid, []))


# ---- per-job state ---------------------------------------------------------------------------


@dataclass
class _Proc:
    process: psutil.Process
    cpu_seconds: float  # own plus reaped children's user+system time at the last sample


@dataclass
class _Job:
    job_id: int
    pid: int
    name: str
    memory_limit: int | None
    procs: dict[int, _Proc] = field(default_factory=dict)
    last_sample: float | None = None  # monotonic time of the last sample
    cpu_debt: float = 0.0  # negative CPU seconds carried to the next interval
    num_samples: int = 0
    cpu_samples: int = 0  # samples with a previous one to measure CPU against
    sum_cpu: float = 0.0
    sum_memory: int = 0
    peak_cpu: float = 0.0
    peak_memory: int = 0
    peak_processes: int = 0
    over_limit_reported: bool = False
    first_due: float = 0.0  # when the monitor thread takes the first sample (unless sampled at add)
    failed: bool = False  # a sampling error was logged for this job

    def usage(self) -> JobUsage:
        n = self.num_samples
        return JobUsage(
            peak_memory_bytes=self.peak_memory,
            avg_memory_bytes=self.sum_memory // n if n else 0,
            peak_cpu_percent=self.peak_cpu,
            avg_cpu_percent=self.sum_cpu / self.cpu_samples if self.cpu_samples else 0.0,
            num_samples=n,
            peak_processes=self.peak_processes,
        )


def _cpu_seconds(times) -> float:
    return times.user + times.system + getattr(times, "children_user", 0.0) + getattr(times, "children_system", 0.0)


class ResourceMonitor:
    """Samples the process trees of running jobs in one background thread.

    `add_job` right after starting a job (takes a first sample at once), `remove_job` after it
    exited (returns its `JobUsage`). `on_over_limit(job_id, rss_bytes, limit_bytes)` is called
    once per job, from the monitor thread, when the tree's RSS exceeds `memory_limit_bytes`.
    """

    def __init__(self, interval: float = 5.0, time_series_db: Path | None = None,
                 on_over_limit: OverLimitCallback | None = None):
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = float(interval)
        self.time_series_db = Path(time_series_db) if time_series_db is not None else None
        self.on_over_limit = on_over_limit
        self._jobs: dict[int, _Job] = {}
        self._lock = threading.Lock()  # jobs, process caches, pending rows and callbacks
        self._db_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._db: sqlite3.Connection | None = None
        self._pending_rows: list[tuple[int, float, float, int, int]] = []
        self._pending_metadata: list[tuple[int, str]] = []
        self._pending_callbacks: list[tuple[int, int, int]] = []
        self._lister = _TreeLister()
        self._first_due: list[_Job] = []  # added without a first sample, oldest first

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> ResourceMonitor:
        if self._thread is not None:
            return self
        if self.time_series_db is not None:
            self._open_db(self.time_series_db)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="torc-resource-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling, join the thread, write what is pending and close the database. Idempotent."""
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._lock:
            self._pending_callbacks.clear()  # callbacks come from the monitor thread only
        self._flush()
        with self._db_lock:
            if self._db is not None:
                try:
                    self._db.close()
                except sqlite3.Error as exc:  # pragma: no cover - close rarely fails
                    log.warning("closing the resource database failed: %s", exc)
                self._db = None

    def __enter__(self) -> ResourceMonitor:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def tree_strategy(self) -> str:
        """How process trees are found: proc_children, proc_scan or psutil_scan."""
        return self._lister.strategy

    # ---- jobs --------------------------------------------------------------------------------

    def add_job(self, job_id: int, pid: int, name: str, memory_limit_bytes: int | None = None,
                sample_now: bool = True) -> None:
        """sample_now: take a first sample at once, so even the shortest job has one (about 1 ms
        each). Otherwise the monitor thread takes it FIRST_SAMPLE_DELAY later: a job living
        longer than that still gets a sample before the first round, and the many jobs of a big
        sweep that end sooner cost nothing (the runner has their CPU time from wait4)."""
        job = _Job(job_id, pid, name, memory_limit_bytes or None)
        job.first_due = time.monotonic() + FIRST_SAMPLE_DELAY
        with self._lock:
            self._jobs[job_id] = job
            if self.time_series_db is not None:
                self._pending_metadata.append((job_id, name))
            if sample_now:
                self._lister.new_round()
                self._sample_safely(job, time.monotonic(), time.time())
            else:
                self._first_due.append(job)
            wake = bool(self._pending_callbacks) or len(self._first_due) == 1
        if wake:
            self._wake.set()  # the monitor thread runs the callback

    def remove_job(self, job_id: int) -> JobUsage | None:
        """Stop tracking a job; its usage so far, or None for an unknown job."""
        with self._lock:
            job = self._jobs.pop(job_id, None)
        return job.usage() if job is not None else None

    def usage(self, job_id: int) -> JobUsage | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return job.usage() if job is not None else None

    # ---- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        next_round = time.monotonic() + self.interval
        while True:
            with self._lock:
                first = self._first_due[0].first_due if self._first_due else next_round
            self._wake.wait(max(0.0, min(next_round, first) - time.monotonic()))
            self._wake.clear()
            if self._stopping:
                return
            now = time.monotonic()
            self._first_samples(now)
            if now >= next_round:
                try:
                    self._round()
                except Exception:  # never let one bad round end monitoring
                    log.exception("resource monitor sample round failed")
                next_round += self.interval
                if next_round <= now:
                    next_round = now + self.interval
                self._flush()
            self._fire_callbacks()

    def _first_samples(self, now: float) -> None:
        """The delayed first sample of jobs that are still tracked and not sampled yet."""
        with self._lock:
            due = [job for job in self._first_due if job.first_due <= now]
            if not due:
                return
            self._first_due = self._first_due[len(due):]
            self._lister.new_round()
            wall = time.time()
            for job in due:
                if self._jobs.get(job.job_id) is job and job.last_sample is None:
                    self._sample_safely(job, now, wall)
        self._flush()

    def _round(self) -> None:
        with self._lock:
            if not self._jobs:
                return
            self._lister.new_round()
            now, wall = time.monotonic(), time.time()
            min_gap = self.interval / 2  # a sample right after add_job's would be all noise
            for job in self._jobs.values():
                if job.last_sample is None or now - job.last_sample >= min_gap:
                    self._sample_safely(job, now, wall)

    def _sample_safely(self, job: _Job, now: float, wall: float) -> None:
        try:
            self._sample(job, now, wall)
        except Exception:  # one job's trouble must not stop the others (logged once per job)
            if not job.failed:
                job.failed = True
                log.exception("sampling the processes of job %s failed", job.job_id)

    def _sample(self, job: _Job, now: float, wall: float) -> None:
        """One sample of a job's tree (caller holds the lock). A gone or zombie root: no sample."""
        pids = self._lister.tree(job.pid)
        seen: dict[int, _Proc] = {}
        cpu = 0.0
        rss = 0
        count = 0
        for pid in pids:
            entry = job.procs.get(pid)
            try:
                process = entry.process if entry is not None else psutil.Process(pid)
                with process.oneshot():
                    zombie = process.status() == psutil.STATUS_ZOMBIE
                    seconds = _cpu_seconds(process.cpu_times())
                    memory = 0 if zombie else process.memory_info().rss
            except _PSUTIL_ERRORS:
                if pid == job.pid:
                    return
                continue
            if pid == job.pid and zombie:
                return  # the job has exited; its children (if any) were reparented
            if entry is None or seconds < entry.cpu_seconds:  # new (or a reused pid)
                cpu += seconds if job.last_sample is not None else 0.0
            else:
                cpu += seconds - entry.cpu_seconds
            seen[pid] = _Proc(process, seconds)
            if not zombie:
                rss += memory
                count += 1
        for pid, entry in job.procs.items():
            if pid not in seen and not _alive(entry.process):
                cpu -= entry.cpu_seconds  # now part of its parent's children times
        job.procs = seen
        cpu += job.cpu_debt
        job.cpu_debt = min(cpu, 0.0)
        cpu = max(cpu, 0.0)
        percent = 0.0
        if job.last_sample is not None and now > job.last_sample:
            percent = cpu / (now - job.last_sample) * 100.0
            job.cpu_samples += 1
            job.sum_cpu += percent
        job.last_sample = now
        job.num_samples += 1
        job.sum_memory += rss
        job.peak_cpu = max(job.peak_cpu, percent)
        job.peak_memory = max(job.peak_memory, rss)
        job.peak_processes = max(job.peak_processes, count)
        if self.time_series_db is not None:
            self._pending_rows.append((job.job_id, wall, percent, rss, count))
        if job.memory_limit is not None and rss > job.memory_limit and not job.over_limit_reported:
            job.over_limit_reported = True
            if self.on_over_limit is not None:
                self._pending_callbacks.append((job.job_id, rss, job.memory_limit))

    def _fire_callbacks(self) -> None:
        with self._lock:
            callbacks = [c for c in self._pending_callbacks if c[0] in self._jobs]  # not for removed jobs
            self._pending_callbacks = []
        for job_id, rss, limit in callbacks:
            try:
                self.on_over_limit(job_id, rss, limit)  # type: ignore[misc]
            except Exception:
                log.exception("on_over_limit callback failed for job %s", job_id)

    # ---- the time-series database ------------------------------------------------------------

    def _open_db(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            db.commit()
        except sqlite3.Error:
            db.close()
            raise
        self._db = db

    def _flush(self) -> None:
        with self._lock:
            rows, self._pending_rows = self._pending_rows, []
            metadata, self._pending_metadata = self._pending_metadata, []
        if not rows and not metadata:
            return
        with self._db_lock:
            if self._db is None:
                return
            try:
                with self._db:
                    self._db.executemany("INSERT OR REPLACE INTO job_metadata (job_id, job_name) VALUES (?, ?)",
                                         metadata)
                    self._db.executemany(
                        "INSERT INTO job_resource_samples (job_id, timestamp, cpu_percent, memory_bytes, "
                        "num_processes) VALUES (?, ?, ?, ?, ?)", rows)
            except sqlite3.Error as exc:
                log.error("writing %d resource samples failed: %s", len(rows), exc)


def _alive(process: psutil.Process) -> bool:
    """False once the process was reaped (a zombie outside the tree was reparented: still alive)."""
    try:
        return process.is_running()
    except _PSUTIL_ERRORS:
        return False

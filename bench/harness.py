"""Shared plumbing for the torc benchmarks: a real torc-server subprocess, timers, result rows.

Nothing here asserts on timings. The only checks are correctness sanity checks (every job was
claimed once, the fan-in job became ready) so that a broken run is not mistaken for a fast one.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from torc.client import TorcClient
from torc.core.errors import TorcError
from torc.server.process import ServerProcess, spawn_server

# The offer used by the claim benchmarks: with the default requirements (1 CPU, 1 MiB)
# eight jobs fit, so claim_jobs_based_on_resources/8 returns up to eight jobs.
OFFER = {"num_cpus": 8, "memory_gb": 8, "num_gpus": 0, "num_nodes": 1}
BULK_BATCH = 10_000
CLIENT_TIMEOUT = 900.0


class BenchError(RuntimeError):
    """A benchmark could not run or produced an inconsistent state (not a timing complaint)."""


@dataclass
class Server:
    """A torc-server child process (torc.server.process) plus an optional py-spy profiler."""

    proc: ServerProcess
    workdir: Path
    profiler: subprocess.Popen | None = None

    @property
    def process(self) -> subprocess.Popen:
        return self.proc.process

    @property
    def url(self) -> str:
        return self.proc.url

    @property
    def log(self) -> Path:
        return self.proc.log

    def client(self) -> TorcClient:
        return TorcClient(self.url, timeout=CLIENT_TIMEOUT)

    def stop(self) -> None:
        if self.profiler is not None and self.profiler.poll() is None:
            self.profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                self.profiler.wait(60)
            except subprocess.TimeoutExpired:
                self.profiler.kill()
        self.proc.stop(timeout=30)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(workdir: Path, name: str, profile_dir: Path | None = None, py_spy: str | None = None,
                 database: str | None = None) -> Server:
    """Start `torc-server run --port 0` on a fresh SQLite file under workdir (or on `database`, a
    PostgreSQL URL) and wait for /ping."""
    workdir.mkdir(parents=True, exist_ok=True)
    extra = ("--database", database) if database else ()  # given twice, click keeps the last
    try:
        proc = spawn_server(workdir / f"{name}.db", workdir / f"{name}.server.log", "--log-level", "warning", *extra)
    except TorcError as exc:
        raise BenchError(exc.message) from None
    server = Server(proc, workdir)
    if profile_dir is not None and py_spy:
        profile_dir.mkdir(parents=True, exist_ok=True)
        out = profile_dir / f"{name}.folded.txt"
        server.profiler = subprocess.Popen(
            [py_spy, "record", "--pid", str(proc.process.pid), "--format", "raw", "--rate", "250",
             "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=open(profile_dir / f"{name}.py-spy.log", "w"),
        )
        time.sleep(1.0)  # let py-spy attach before the measured work starts
    return server


def make_workdir(keep: bool) -> Path:
    path = Path(tempfile.mkdtemp(prefix="torc-bench-"))
    if not keep:
        import atexit

        atexit.register(shutil.rmtree, path, True)
    return path


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds used so far by process pid (all its threads); NaN if unknown.
    CPU time is far less disturbed than wall time by other load on a shared machine."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return float("nan")


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def create_jobs_in_batches(api: TorcClient, jobs: list[dict[str, Any]], batch: int = BULK_BATCH) -> list[int]:
    ids: list[int] = []
    for start in range(0, len(jobs), batch):
        created = api.post("bulk_jobs", {"jobs": jobs[start:start + batch]})["jobs"]
        ids.extend(j["id"] for j in created)
    if len(ids) != len(jobs):
        raise BenchError(f"bulk_jobs created {len(ids)} jobs, expected {len(jobs)}")
    return ids


def plain_jobs(workflow_id: int, n: int, prefix: str = "j") -> list[dict[str, Any]]:
    return [{"workflow_id": workflow_id, "name": f"{prefix}{i}", "command": "true"} for i in range(n)]


# ---- results ------------------------------------------------------------------------------


@dataclass
class Figure:
    """One reported number, with the baseline it is compared to (ratio = value / baseline unless
    the figure says otherwise)."""

    key: str
    label: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    ratio: float | None = None
    cpu_ratio: float | None = None  # the same comparison in server CPU seconds instead of wall seconds
    extra: dict[str, Any] = field(default_factory=dict)


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.1f}"
    elif abs(value) >= 10:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".rstrip()


def machine_info() -> dict[str, Any]:
    import httpx

    info: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "sqlite": sqlite3.sqlite_version,
        "httpx": httpx.__version__,
    }
    try:
        info["loadavg_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    try:
        import uvicorn

        info["uvicorn"] = uvicorn.__version__
    except Exception:  # pragma: no cover
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            info["mem_total_gib"] = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return info

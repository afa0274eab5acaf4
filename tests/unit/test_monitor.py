"""ResourceMonitor against real processes: memory, process trees, CPU, limits, time series."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from torc.runner.monitor import JobUsage, ResourceMonitor

MB = 1024 * 1024
PY = sys.executable
HOLD_100MB = f"{PY} -c 'import time; b = b\"x\" * (100 * 1024 * 1024); time.sleep(60)'"
BUSY = f"{PY} -c 'while True: pass'"
STRATEGIES = ["proc_children", "proc_scan", "psutil_scan"]


@pytest.fixture
def spawn() -> Iterator[Callable[[str], subprocess.Popen]]:
    """Start `bash -c CMD` in its own session, as the local runner does; kill leftovers afterwards."""
    started: list[subprocess.Popen] = []

    def start(command: str) -> subprocess.Popen:
        process = subprocess.Popen(["bash", "-c", command], start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(process)
        return process

    yield start
    for process in started:
        kill(process)


def kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def wait_for(condition: Callable[[], object], timeout: float = 8.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def monitor(strategy: str | None = None, **kwargs) -> ResourceMonitor:
    m = ResourceMonitor(kwargs.pop("interval", 0.2), **kwargs)
    if strategy is not None:
        if strategy == "proc_children" and m.tree_strategy != "proc_children":
            pytest.skip("this kernel has no /proc/<pid>/task/<tid>/children")
        if strategy == "proc_scan" and not os.path.isdir("/proc"):
            pytest.skip("no /proc")
        m._lister.strategy = strategy
    return m


def usage_when(m: ResourceMonitor, job_id: int, test: Callable[[JobUsage], bool], what: str) -> JobUsage:
    return wait_for(lambda: (u := m.usage(job_id)) is not None and test(u) and u, what=what)  # type: ignore[return-value]


def test_peak_memory_of_a_job_holding_100_mb(spawn) -> None:
    with monitor() as m:
        job = spawn(HOLD_100MB)
        m.add_job(1, job.pid, "hog")
        usage = usage_when(m, 1, lambda u: u.peak_memory_bytes >= 90 * MB, "peak memory >= 90 MB")
        assert usage.peak_processes >= 1
        kill(job)
        final = m.remove_job(1)
    assert final is not None and final.peak_memory_bytes >= 90 * MB
    assert 0 < final.avg_memory_bytes <= final.peak_memory_bytes
    assert m.remove_job(1) is None and m.usage(1) is None


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_process_tree_counts_every_process(spawn, strategy: str) -> None:
    with monitor(strategy) as m:
        job = spawn("sleep 30 & sleep 30 & sleep 30 & wait")
        m.add_job(7, job.pid, "tree")
        usage = usage_when(m, 7, lambda u: u.peak_processes >= 4, "bash plus 3 sleeps")
        assert usage.peak_processes == 4
        assert usage.peak_memory_bytes > 0


def test_busy_loop_shows_cpu(spawn) -> None:
    with monitor() as m:
        job = spawn(BUSY)
        m.add_job(3, job.pid, "busy")
        usage = usage_when(m, 3, lambda u: u.peak_cpu_percent > 50, "CPU > 50 %")
        assert usage.peak_cpu_percent < 100 * (os.cpu_count() or 1) + 20


def test_cpu_of_short_lived_children_is_counted(spawn) -> None:
    """Children that start and end between two samples still show up through the children times."""
    burst = f"{PY} -c 'import time; t = time.process_time()\nwhile time.process_time() - t < 0.03: pass'"
    with monitor(interval=0.3) as m:
        job = spawn(f"while true; do {burst}; done")
        m.add_job(5, job.pid, "bursts")
        usage_when(m, 5, lambda u: u.num_samples >= 6, "six samples")
        usage = m.usage(5)
    assert usage is not None and usage.avg_cpu_percent > 30


def test_over_limit_callback_fires_once(spawn) -> None:
    calls: list[tuple[int, int, int, str]] = []
    limit = 50 * MB

    def over(job_id: int, rss: int, limit_bytes: int) -> None:
        calls.append((job_id, rss, limit_bytes, threading.current_thread().name))

    with monitor(on_over_limit=over) as m:
        hog = spawn(HOLD_100MB)
        small = spawn("sleep 30")
        m.add_job(11, hog.pid, "hog", memory_limit_bytes=limit)
        m.add_job(12, small.pid, "small", memory_limit_bytes=limit)
        wait_for(lambda: calls, what="the over-limit callback")
        samples = m.usage(11).num_samples
        usage_when(m, 11, lambda u: u.num_samples >= samples + 3, "three more samples")
    assert len(calls) == 1
    job_id, rss, limit_bytes, thread_name = calls[0]
    assert (job_id, limit_bytes) == (11, limit) and rss > limit
    assert thread_name == "torc-resource-monitor"


def test_a_job_that_exits_at_once_still_has_usage(spawn) -> None:
    with monitor(interval=5) as m:
        instant = spawn("exit 0")
        m.add_job(1, instant.pid, "instant")
        instant.wait()
        short = spawn("sleep 0.3")
        m.add_job(2, short.pid, "short")
        short.wait()
        usage_instant = m.remove_job(1)
        usage_short = m.remove_job(2)
    assert isinstance(usage_instant, JobUsage)
    assert usage_short is not None and usage_short.num_samples >= 1 and usage_short.peak_processes == 1
    assert usage_short.peak_memory_bytes > 0


def test_vanished_or_unknown_pids_do_not_break_the_thread(spawn) -> None:
    with monitor() as m:
        m.add_job(1, 2**22 + 12345, "no such pid")  # beyond the usual pid_max
        job = spawn("sleep 30")
        m.add_job(2, job.pid, "alive")
        usage_when(m, 2, lambda u: u.num_samples >= 3, "samples of the live job")
        kill(job)
        assert m._thread is not None and m._thread.is_alive()
        assert m.remove_job(1) == JobUsage(0, 0, 0.0, 0.0, 0, 0)


def test_time_series_database_is_readable_while_written(spawn, tmp_path: Path) -> None:
    db_path = tmp_path / "resource_utilization" / "resource_metrics_host_1_1.db"
    with monitor(time_series_db=db_path) as m:
        job = spawn("sleep 30 & wait")
        m.add_job(21, job.pid, "sleeper")
        reader = sqlite3.connect(db_path)
        try:
            wait_for(lambda: reader.execute("SELECT count(*) FROM job_resource_samples").fetchone()[0] >= 3,
                     what="three rows visible to a second connection")
            assert reader.execute("SELECT job_name FROM job_metadata WHERE job_id = 21").fetchone() == ("sleeper",)
            assert reader.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            reader.close()
        kill(job)
        m.remove_job(21)
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT id, job_id, timestamp, cpu_percent, memory_bytes, num_processes "
                          "FROM job_resource_samples ORDER BY id").fetchall()
    assert len(rows) >= 3
    assert all(r[1] == 21 and r[4] > 0 and r[5] in (1, 2) for r in rows) and rows[-1][5] == 2
    timestamps = [r[2] for r in rows]
    assert timestamps == sorted(timestamps) and abs(timestamps[-1] - time.time()) < 60


def test_stop_is_idempotent_and_joins() -> None:
    m = ResourceMonitor(0.2)
    m.stop()  # never started: a no-op
    m.start()
    thread = m._thread
    assert thread is not None and thread.is_alive()
    started = time.monotonic()
    m.stop()
    assert not thread.is_alive() and time.monotonic() - started < 1.0
    m.stop()
    assert not thread.is_alive()


def test_fifty_idle_jobs_cost_little_cpu(spawn) -> None:
    jobs = [spawn("exec sleep 60") for _ in range(50)]
    with monitor() as m:
        for i, job in enumerate(jobs):
            m.add_job(i, job.pid, f"idle{i}")
        tid = m._thread.native_id

        def thread_cpu() -> float:
            times = {t.id: t.user_time + t.system_time for t in psutil.Process().threads()}
            return times[tid]

        usage_when(m, 0, lambda u: u.num_samples >= 2, "the first rounds")
        cpu0, wall0 = thread_cpu(), time.monotonic()
        usage_when(m, 0, lambda u: u.num_samples >= 12, "ten more rounds")
        cpu, wall = thread_cpu() - cpu0, time.monotonic() - wall0
        assert all(m.usage(i).peak_processes == 1 for i in range(50))
    assert cpu / wall < 0.15, f"monitor thread used {cpu / wall:.0%} of a CPU"

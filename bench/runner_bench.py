"""The runner benchmark: N trivial jobs through `torc run`, against a bare Python process pool.

Workflow: one `start` job fans out to N-2 `work_i` jobs, which fan in to one `end` job; every
command is `true`. It is created through `POST /bulk_jobs` (with `depends_on_job_ids`) and
initialized the way `torc run` initializes a new workflow (`manager.initialize`); that setup is
timed and reported on its own, not as part of the runner figure. Then `torc --url URL run ID
--no-progress` runs as a subprocess, timed from launch until it exits.

Floor: the same N commands, `bash -c true` (the runner runs every job through `bash -c`), run by a
`concurrent.futures` pool of as many workers as CPUs, each worker doing
`subprocess.run(["bash", "-c", "true"])`, in the bench process. Two pools are timed, threads and
processes, and the faster is the floor. Each `torc run` mode (resource-based, then
`--max-parallel-jobs nproc`) is compared with a floor measured right before it.

CPU ratio: CPU seconds of the runner, the jobs it ran (its waited-for children, from wait4) and
the server, over CPU seconds of the floor pool and its commands; much less disturbed by other
load than wall time. A third pool run, every command with its own new stdout and stderr file as
the runner gives each job, is reported as a detail (what capturing output costs), not as the floor.

Nothing here asserts on timings; the correctness check is that all N jobs completed with return
code 0, one result each, and the workflow is complete.
"""

from __future__ import annotations

import os
import resource
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from harness import BenchError, Figure, create_jobs_in_batches, proc_cpu, start_server

from torc.client import TorcClient, manager

perf = time.perf_counter


def _log(msg: str) -> None:
    print(f"  .. {msg}", flush=True)


def nproc() -> int:
    """The CPUs this process may use (what `torc run` offers by default)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# ---- the floor ------------------------------------------------------------------------------


def _one_true(_: int = 0) -> int:
    return subprocess.run(["bash", "-c", "true"]).returncode


def _chunk_of_trues(count: int) -> int:
    """A process-pool task: run `count` commands in this worker; return how many failed."""
    return sum(1 for _ in range(count) if _one_true() != 0)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def floor_threads(n: int, workers: int) -> tuple[float, float]:
    """Wall and CPU seconds (this process + the commands) for n `bash -c true` through a
    ThreadPoolExecutor of `workers` threads."""
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda _: None, range(workers)))  # threads started before the clock
        c0 = _self_cpu() + _children_cpu()
        t0 = perf()
        failed = sum(1 for rc in pool.map(_one_true, range(n), chunksize=64) if rc != 0)
        elapsed = perf() - t0
        cpu = _self_cpu() + _children_cpu() - c0
    if failed:
        raise BenchError(f"floor: {failed} of {n} `bash -c true` failed")
    return elapsed, cpu


def floor_processes(n: int, workers: int) -> tuple[float, float]:
    """Wall and CPU seconds (workers + the commands, counted once the workers are joined) for n
    `bash -c true` through a ProcessPoolExecutor of `workers` processes. Work is handed out in
    small chunks so that the pool's own IPC stays out of the way but the load still balances."""
    chunk = max(1, min(50, n // (workers * 8) or 1))
    sizes = [chunk] * (n // chunk) + ([n % chunk] if n % chunk else [])
    c0 = _self_cpu() + _children_cpu()
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_chunk_of_trues, [0] * workers))  # workers started before the clock
        t0 = perf()
        failed = sum(pool.map(_chunk_of_trues, sizes))
        elapsed = perf() - t0
    cpu = _self_cpu() + _children_cpu() - c0
    if failed:
        raise BenchError(f"floor: {failed} of {n} `bash -c true` failed")
    return elapsed, cpu


def floor_stdio(n: int, workers: int, folder: Path) -> float:
    """Not the floor, a diagnostic: wall seconds for the thread pool when every command also gets
    a new stdout and stderr file, as the runner gives each job (job_stdio/*.o, *.e)."""
    folder.mkdir(parents=True, exist_ok=True)

    def one(i: int) -> int:
        with open(folder / f"{i}.o", "wb") as out, open(folder / f"{i}.e", "wb") as err:
            return subprocess.run(["bash", "-c", "true"], stdout=out, stderr=err).returncode

    try:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda _: None, range(workers)))
            t0 = perf()
            failed = sum(1 for rc in pool.map(one, range(n), chunksize=64) if rc != 0)
            elapsed = perf() - t0
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if failed:
        raise BenchError(f"floor with stdio files: {failed} of {n} `bash -c true` failed")
    return elapsed


def measure_floor(n: int, workers: int, workdir: Path) -> dict[str, float]:
    """Both pools; the faster one is the floor (its wall and CPU seconds). Then the diagnostic
    thread pool with stdio files."""
    threads, threads_cpu = floor_threads(n, workers)
    processes, processes_cpu = floor_processes(n, workers)
    best, best_cpu = (threads, threads_cpu) if threads <= processes else (processes, processes_cpu)
    load = round(os.getloadavg()[0], 2)
    return {"threads_s": threads, "processes_s": processes, "floor_s": best, "floor_cpu_s": best_cpu,
            "loadavg": load, "stdio_s": floor_stdio(n, workers, workdir / "floor-stdio")}


# ---- the workflow ---------------------------------------------------------------------------


def create_fan_workflow(api: TorcClient, n_jobs: int, name: str) -> tuple[int, dict[str, float]]:
    """start -> work_1..work_{N-2} -> end, all `true`, created with bulk_jobs, then initialized as
    `torc run` does for a new workflow. Returns the workflow id and the setup timings."""
    if n_jobs < 3:
        raise BenchError("the runner benchmark needs at least 3 jobs (start, work, end)")
    t0 = perf()
    wf = api.create_workflow(name)["id"]
    start = create_jobs_in_batches(api, [{"workflow_id": wf, "name": "start", "command": "true"}])[0]
    work = create_jobs_in_batches(api, [{"workflow_id": wf, "name": f"work_{i}", "command": "true",
                                         "depends_on_job_ids": [start]} for i in range(1, n_jobs - 1)])
    create_jobs_in_batches(api, [{"workflow_id": wf, "name": "end", "command": "true", "depends_on_job_ids": work}])
    t_create = perf() - t0
    t1 = perf()
    manager.initialize(api, wf)
    t_init = perf() - t1
    counts = api.get(f"workflows/{wf}/job_counts")["counts"]
    if counts.get("ready") != 1 or counts.get("blocked") != n_jobs - 1:
        raise BenchError(f"after initialize: {counts}, expected 1 ready and {n_jobs - 1} blocked")
    return wf, {"create_s": t_create, "initialize_s": t_init}


def _parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def check_and_span(api: TorcClient, wf: int, n_jobs: int) -> dict[str, Any]:
    """Raise unless all n_jobs completed with return code 0 and one result each; return the span
    from the first job start to the last job end, from the results (completion_time minus
    exec_time_minutes is when the job started)."""
    counts = {k: v for k, v in api.get(f"workflows/{wf}/job_counts")["counts"].items() if v}
    if counts != {"completed": n_jobs}:
        raise BenchError(f"after torc run: job counts {counts}, expected {n_jobs} completed")
    if not api.get(f"workflows/{wf}/is_complete")["is_complete"]:
        raise BenchError("after torc run: workflow not complete")
    results = list(api.iter_items("results", workflow_id=wf))
    jobs = {r["job_id"] for r in results}
    bad = [r for r in results if r["return_code"] != 0 or r["status"] != "completed"]
    if len(results) != n_jobs or len(jobs) != n_jobs or bad:
        raise BenchError(f"after torc run: {len(results)} results for {len(jobs)} jobs, {len(bad)} not completed/0; "
                         f"expected {n_jobs} completed results")
    ends = [_parse_time(r["completion_time"]) for r in results]
    starts = [e - r["exec_time_minutes"] * 60 for e, r in zip(ends, results, strict=True)]
    exec_ms = sorted(r["exec_time_minutes"] * 60e3 for r in results)
    return {"first_start": min(starts), "last_end": max(ends), "span_s": max(ends) - min(starts),
            "exec_ms_p50": exec_ms[len(exec_ms) // 2], "exec_ms_p95": exec_ms[int(len(exec_ms) * 0.95)]}


class _CpuSampler:
    """Samples a process's own CPU seconds (not its children's) every `interval` until it exits;
    the last sample is at most `interval` before the exit."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid, self.interval, self.last = pid, interval, 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            value = proc_cpu(self.pid)
            if value == value:
                self.last = value
            self.stop.wait(self.interval)

    def finish(self) -> float:
        self.stop.set()
        self.thread.join()
        return self.last


def run_torc(server: Any, wf: int, output_dir: Path, extra: list[str], log: Path,
             profile_out: Path | None = None, torc_cmd: str | None = None) -> dict[str, Any]:
    """`torc --url URL run WF --no-progress -o DIR [extra]` as a subprocess; seconds from launch
    to exit, CPU seconds of the runner alone, of the runner with every job it ran (wait4's
    rusage), and of the server over that time. torc_cmd replaces `python -m torc.cli.main` (a
    shell-quoted command line, e.g. another build of torc). With profile_out, the runner runs
    under cProfile (which slows it: do not take figures from such a run)."""
    if torc_cmd:
        cmd = shlex.split(torc_cmd)
    elif profile_out is not None:
        cmd = [sys.executable, "-m", "cProfile", "-o", str(profile_out), "-m", "torc.cli.main"]
    else:
        cmd = [sys.executable, "-m", "torc.cli.main"]
    cmd += ["--url", server.url, "run", str(wf), "--no-progress", "-o", str(output_dir), *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("TORC_API_URL", None)
    server_pid = server.process.pid
    s0 = proc_cpu(server_pid)
    with open(log, "wb") as out:
        wall0, t0 = time.time(), perf()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        sampler = _CpuSampler(proc.pid)
        _, wait_status, usage = os.wait4(proc.pid, 0)
        elapsed = perf() - t0
    proc.returncode = rc = os.waitstatus_to_exitcode(wait_status)
    runner_cpu = sampler.finish()
    server_cpu = proc_cpu(server_pid) - s0
    if rc != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise BenchError(f"torc run exited with {rc}; log {log}:\n{tail}")
    total = usage.ru_utime + usage.ru_stime  # the runner and everything it waited for: the jobs
    return {"seconds": elapsed, "launched_at": wall0, "runner_cpu_s": runner_cpu,
            "runner_and_jobs_cpu_s": total, "server_cpu_s": server_cpu}


def bench_runner(workdir: Path, n_jobs: int, profile: dict[str, Any], cprofile_dir: Path | None = None,
                 torc_cmd: str | None = None) -> list[Figure]:
    """Per mode: the floor, then a fresh server and workflow, then `torc run`. Each mode is
    compared with the floor measured right before it, so both see about the same background load."""
    cpus = nproc()
    modes = [("resources", [], f"resource-based, {cpus} CPUs offered"),
             ("queue", ["--max-parallel-jobs", str(cpus)], f"--max-parallel-jobs {cpus}")]
    figures = []
    for key, extra, label in modes:
        name = f"runner-{key}"
        _log(f"runner: floor, {n_jobs:,} x `bash -c true` through a pool of {cpus} workers (threads, then processes)")
        floor = measure_floor(n_jobs, cpus, workdir)
        _log(f"runner: floor {floor['floor_s']:.2f} s (threads {floor['threads_s']:.2f} s, "
             f"processes {floor['processes_s']:.2f} s), {floor['floor_cpu_s']:.2f} CPU s; "
             f"threads with stdio files {floor['stdio_s']:.2f} s")
        with start_server(workdir, name, **profile) as server, server.client() as api:
            _log(f"runner: creating start -> {n_jobs - 2:,} work -> end ({n_jobs:,} jobs) and initializing")
            wf, setup = create_fan_workflow(api, n_jobs, f"bench-{name}")
            _log(f"runner: created in {setup['create_s']:.2f} s, initialized in {setup['initialize_s']:.2f} s; "
                 f"torc run {wf} --no-progress {' '.join(extra)}".rstrip())
            prof = cprofile_dir / f"{name}.pstats" if cprofile_dir is not None else None
            if prof is not None:
                cprofile_dir.mkdir(parents=True, exist_ok=True)
            load0 = os.getloadavg()[0]
            got = run_torc(server, wf, workdir / f"{name}-output", extra, workdir / f"{name}.torc-run.log", prof,
                           torc_cmd)
            load1 = os.getloadavg()[0]
            span = check_and_span(api, wf, n_jobs)
        elapsed = got["seconds"]
        torc_cpu = got["runner_and_jobs_cpu_s"] + got["server_cpu_s"]
        _log(f"runner: torc run ({label}) {elapsed:.2f} s, {n_jobs / elapsed:,.0f} jobs/s, {torc_cpu:.2f} CPU s "
             f"(runner {got['runner_cpu_s']:.2f}, server {got['server_cpu_s']:.2f}); all {n_jobs:,} completed")
        notes = "ratio = torc run wall time / floor wall time (lower is better; target <= 2); cpu ratio = CPU " \
                "seconds of runner + jobs + server / CPU seconds of the floor pool + its commands"
        if prof is not None:
            notes += "; PROFILED under cProfile: not a figure"
        if torc_cmd:
            notes += f"; torc command: {torc_cmd}"
        figures.append(Figure(
            f"runner_{key}_jobs_per_s", f"torc run, {n_jobs:,} `true` jobs, {label}",
            n_jobs / elapsed, "jobs/s", n_jobs / floor["floor_s"], f"pool of {cpus} workers, jobs/s",
            elapsed / floor["floor_s"], torc_cpu / floor["floor_cpu_s"],
            extra={"torc_run_s": round(elapsed, 3), "floor_s": round(floor["floor_s"], 3),
                   "floor_threads_s": round(floor["threads_s"], 3),
                   "floor_processes_s": round(floor["processes_s"], 3),
                   "floor_threads_with_stdio_files_s": round(floor["stdio_s"], 3),
                   "first_start_to_last_end_s": round(span["span_s"], 3),
                   "launch_to_first_start_s": round(span["first_start"] - got["launched_at"], 3),
                   "last_end_to_exit_s": round(got["launched_at"] + elapsed - span["last_end"], 3),
                   "span_ratio": round(span["span_s"] / floor["floor_s"], 3),
                   "ms_per_job": round(elapsed / n_jobs * 1e3, 3),
                   "job_exec_ms_p50": round(span["exec_ms_p50"], 2), "job_exec_ms_p95": round(span["exec_ms_p95"], 2),
                   "runner_cpu_ms_per_job": round(got["runner_cpu_s"] / n_jobs * 1e3, 3),
                   "server_cpu_ms_per_job": round(got["server_cpu_s"] / n_jobs * 1e3, 3),
                   "jobs_cpu_ms_per_job": round((got["runner_and_jobs_cpu_s"] - got["runner_cpu_s"]) / n_jobs * 1e3,
                                                3),
                   "floor_cpu_ms_per_job": round(floor["floor_cpu_s"] / n_jobs * 1e3, 3),
                   "loadavg_1m": {"floor_end": floor["loadavg"], "torc_start": round(load0, 2),
                                  "torc_end": round(load1, 2)},
                   "setup_create_s": round(setup["create_s"], 3), "setup_initialize_s": round(setup["initialize_s"], 3),
                   "note": notes},
        ))
    return figures

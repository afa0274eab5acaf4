"""Helpers shared by the end-to-end runner tests (test_runner.py, test_recover.py,
test_failure_handlers.py, test_server_crash.py): `torc` as a subprocess, workflows from specs,
polling, a torc-server on a fixed port. The `client` fixture is in conftest.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from torc.cli.embedded import server_reachable
from torc.client import TorcClient, manager
from torc.client.from_spec import create_from_file

TORC = [sys.executable, "-m", "torc.cli.main"]
PY = sys.executable
FAST = ["--no-progress", "-p", "0.2", "--idle-timeout", "20"]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TORC_")}


def torc(url: str, *args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*TORC, "--url", url, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=clean_env())


def run(url: str, target: str | int, *args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """`torc run` to the end; output dir `out` under cwd unless -o is given."""
    out = [] if "-o" in args else ["-o", str(cwd / "out")]
    return torc(url, "run", str(target), *out, *FAST, *args, cwd=cwd, timeout=timeout)


def start_run(url: str, target: str | int, *args: str, cwd: Path, log_name: str = "runner.log") -> subprocess.Popen:
    """`torc run` in the background; its output goes to a file (no pipe to fill up)."""
    out = [] if "-o" in args else ["-o", str(cwd / "out")]
    log = open(cwd / log_name, "w")
    proc = subprocess.Popen([*TORC, "--url", url, "run", str(target), *out, *FAST, *args], cwd=cwd, stdout=log,
                            stderr=subprocess.STDOUT, env=clean_env())
    log.close()
    return proc


def explain(proc: subprocess.CompletedProcess) -> str:
    return f"rc {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def create(client: TorcClient, spec: dict[str, Any], folder: Path, initialize: bool = True) -> int:
    path = folder / f"{spec['name']}.json"
    path.write_text(json.dumps(spec))
    workflow_id = create_from_file(client, path)
    if initialize:
        manager.initialize(client, workflow_id)
    return workflow_id


def jobs_by_name(client: TorcClient, workflow_id: int) -> dict[str, dict[str, Any]]:
    return {j["name"]: j for j in client.iter_items("jobs", workflow_id=workflow_id)}


def results_by_name(client: TorcClient, workflow_id: int, all_runs: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Result rows per job name, oldest first: the current ones, or those of every run."""
    names = {j["id"]: j["name"] for j in client.iter_items("jobs", workflow_id=workflow_id)}
    out: dict[str, list[dict[str, Any]]] = {}
    for r in client.iter_items("results", workflow_id=workflow_id, all_runs=all_runs or None):
        out.setdefault(names[r["job_id"]], []).append(r)
    for rows in out.values():
        rows.sort(key=lambda r: (r["run_id"], r["attempt_id"]))
    return out


def wait_for(condition: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def wait_status(client: TorcClient, workflow_id: int, names: list[str], status: str, timeout: float = 30) -> None:
    def ok() -> bool:
        jobs = jobs_by_name(client, workflow_id)
        return all(jobs[n]["status"] == status for n in names)

    wait_for(ok, timeout, f"jobs {names} to be {status}")


def stdio(out: Path, workflow_id: int, job_id: int, suffix: str) -> str:
    files = sorted((out / "job_stdio").glob(f"job_wf{workflow_id}_j{job_id}_r*_a*.{suffix}"))
    assert files, f"no .{suffix} file for job {job_id}"
    return files[-1].read_text()


def runs_of(path: Path) -> int:
    """How many times a job ran, from the lines it appends to its own file."""
    return len(path.read_text().splitlines()) if path.exists() else 0


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def kill_all(*procs: subprocess.Popen | None) -> None:
    """Clean-up after a test: kill (and reap) each process that still runs; None is skipped."""
    for p in procs:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rr(name: str, cpus: int = 1, memory: str = "10m", runtime: str = "PT1H") -> dict[str, Any]:
    return {"name": name, "num_cpus": cpus, "memory": memory, "runtime": runtime}


def spawn_server_on(database: Path, log: Path, port: int) -> subprocess.Popen:
    """`torc-server run` on a fixed port (so the runner finds the new one where the old one was)."""
    with open(log, "a") as err:
        process = subprocess.Popen([sys.executable, "-m", "torc.server.cli", "run", "--host", "127.0.0.1", "--port",
                                    str(port), "--database", str(database), "--completion-check-interval-secs",
                                    "0.5"], stdout=subprocess.DEVNULL, stderr=err, env=clean_env())
    url = f"http://127.0.0.1:{port}/torc-service/v1"

    def answers() -> bool:
        assert process.poll() is None, log.read_text()
        return server_reachable(url)

    wait_for(answers, 30, "the server to answer")
    return process

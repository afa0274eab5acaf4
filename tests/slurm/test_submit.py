"""`torc submit` on the real single-node Slurm: allocations, the runner inside them, staged
pipelines, cancel and refused requests (time limits and recovery: test_slurm_recover.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from torc.client import TorcClient
from torc.server.process import ServerProcess

# Allocations wait in Slurm's queue while other tests hold the node's 2 CPUs: generous start-up waits.
START = 240
pytestmark = pytest.mark.timeout(START + 240)


@pytest.fixture
def client(server) -> Iterator[TorcClient]:
    with server.client() as client:
        yield client


def torc(server: ServerProcess, *args: str, env: dict[str, str] | None = None,
         check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "torc.cli.main", "--url", server.url, *args], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "TORC_CLIENT__SLURM__POLL_INTERVAL": "1", **(env or {})})
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def squeue_ids() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=30)
    return set(out.stdout.split())


def slurm_ids(client: TorcClient, workflow_id: int) -> list[str]:
    return [str(n["scheduler_id"]) for n in client.iter_items("scheduled_compute_nodes", workflow_id=workflow_id)]


def cancel_all(client: TorcClient, workflow_id: int | None) -> None:
    if workflow_id is None:
        return
    ids = [i for i in slurm_ids(client, workflow_id) if i != "0"]
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=30)


def allocation_states(client: TorcClient, workflow_id: int) -> list[str]:
    return [n["status"] for n in client.iter_items("scheduled_compute_nodes", workflow_id=workflow_id)]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(interval)


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def submit(server: ServerProcess, spec: Path | str, out: Path, env: dict[str, str] | None = None) -> int:
    proc = torc(server, "-f", "json", "submit", str(spec), "-o", str(out), env=env)
    return json.loads(proc.stdout)["workflow_id"]


def statuses(client: TorcClient, workflow_id: int) -> dict[str, str]:
    return {j["name"]: j["status"] for j in client.iter_items("jobs", workflow_id=workflow_id)}


def slurm_local_time(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").astimezone().timestamp()


def test_two_stage_workflow_runs_across_allocations_requesting_stage_two_when_ready(slurm, server, client, tmp_path):
    out = tmp_path / "out"
    data = tmp_path / "data"
    spec = write_spec(tmp_path / "two_stage.yaml", {
        "name": "two_stage",
        "compute_node_wait_for_new_jobs_seconds": 3,
        "resource_requirements": [{"name": "small", "num_cpus": 1, "memory": "100m", "runtime": "PT2M"}],
        "slurm_schedulers": [{"name": "stage1", "account": "test", "walltime": "00:10:00"},
                             {"name": "stage2", "account": "test", "walltime": "00:10:00"}],
        "files": [{"name": n, "path": str(data / f"{n}.txt")} for n in ("a", "b", "c")],
        "jobs": [
            {"name": "a", "command": f"sleep 2; echo A > {data}/a.txt", "resource_requirements": "small",
             "scheduler": "stage1", "output_files": ["a"]},
            {"name": "b", "command": f"sleep 2; echo B > {data}/b.txt", "resource_requirements": "small",
             "scheduler": "stage1", "output_files": ["b"]},
            {"name": "c", "command": f"mkdir -p {data}; cat {data}/a.txt {data}/b.txt > {data}/c.txt",
             "resource_requirements": "small", "scheduler": "stage2", "input_files": ["a", "b"],
             "output_files": ["c"]},
        ],
        "actions": [
            {"trigger_type": "on_workflow_start", "action_type": "schedule_nodes", "scheduler": "stage1",
             "scheduler_type": "slurm"},
            {"trigger_type": "on_jobs_ready", "action_type": "schedule_nodes", "scheduler": "stage2",
             "scheduler_type": "slurm", "jobs": ["c"]},
        ],
    })
    data.mkdir()
    env = {"TORC_CLIENT__SLURM__STRICT_SCHEDULER_MATCH": "true"}  # stage 2 runs in its own allocation
    workflow_id = None
    try:
        workflow_id = submit(server, spec, out, env)
        nodes = list(client.iter_items("scheduled_compute_nodes", workflow_id=workflow_id))
        assert len(nodes) == 1, "only stage 1 is requested at submit time"
        assert nodes[0]["status"] in ("pending", "active") and int(nodes[0]["scheduler_id"]) > 0
        wait_for(lambda: statuses(client, workflow_id)["a"] != "ready", START, "stage 1 to start")
        wait_for(lambda: client.get(f"workflows/{workflow_id}/is_complete")["is_complete"], START, "the workflow")
        assert statuses(client, workflow_id) == {"a": "completed", "b": "completed", "c": "completed"}
        assert (data / "c.txt").read_text() == "A\nB\n"
        nodes = wait_for(lambda: [n for n in client.iter_items("scheduled_compute_nodes", workflow_id=workflow_id)
                                  if n["status"] == "complete"] if all(
            n["status"] == "complete" for n in client.iter_items("scheduled_compute_nodes", workflow_id=workflow_id))
            else None, 30, "both allocations to complete")
        assert len(nodes) == 2
        first, second = (str(n["scheduler_id"]) for n in sorted(nodes, key=lambda n: n["id"]))
        # stage 1 ran in the first allocation, stage 2 in the second
        runners = {n["id"]: n for n in client.iter_items("compute_nodes", workflow_id=workflow_id)}
        assert {r["compute_node_type"] for r in runners.values()} == {"slurm"}
        ran_in = {}
        for result in client.iter_items("results", workflow_id=workflow_id):
            ran_in[result["job_id"]] = runners[result["compute_node_id"]]["scheduler"]["slurm_job_id"]
        jobs = {j["name"]: j["id"] for j in client.iter_items("jobs", workflow_id=workflow_id)}
        assert ran_in[jobs["a"]] == ran_in[jobs["b"]] == first
        assert ran_in[jobs["c"]] == second
        # the second allocation was requested only after stage 1 finished
        stage1_done = max(datetime.fromisoformat(r["completion_time"].replace("Z", "+00:00")).timestamp()
                          for r in client.iter_items("results", workflow_id=workflow_id)
                          if r["job_id"] in (jobs["a"], jobs["b"]))
        report = json.loads(torc(server, "-f", "json", "slurm", "sacct", str(workflow_id)).stdout)
        by_id = {r["slurm_job_id"]: r for r in report}
        assert by_id[first]["state"] == by_id[second]["state"] == "COMPLETED"
        assert by_id[first]["exit_code"] == "0:0"
        assert slurm_local_time(by_id[second]["submit"]) >= int(stage1_done)
        assert slurm_local_time(by_id[second]["submit"]) >= slurm_local_time(by_id[first]["start"])
        assert list(out.glob(f"job_runner_slurm_wf{workflow_id}_sl{first}_n0_pid*.log"))
        assert (out / f"slurm_output_wf{workflow_id}_sl{second}.o").exists()
        assert not list(out.glob("worker_*.sh")), "submission scripts are removed unless kept"
    finally:
        cancel_all(client, workflow_id)


def _long_job_spec(tmp_path: Path, name: str, walltime: str, **extra) -> Path:
    return write_spec(tmp_path / f"{name}.yaml", {
        "name": name,
        "compute_node_wait_for_new_jobs_seconds": 5,
        "slurm_schedulers": [{"name": "one", "account": "test", "walltime": walltime}],
        "jobs": [{"name": "long", "command": "sleep 300"}],
        "actions": [{"trigger_type": "on_workflow_start", "action_type": "schedule_nodes", "scheduler": "one",
                     "scheduler_type": "slurm", "max_parallel_jobs": 1}],  # queue mode: no requirements needed
        **extra,
    })


def test_cancel_leaves_no_slurm_job(slurm, server, client, tmp_path):
    workflow_id = None
    try:
        workflow_id = submit(server, _long_job_spec(tmp_path, "cancel_me", "00:10:00"), tmp_path / "out")
        wait_for(lambda: statuses(client, workflow_id)["long"] == "running", START, "the job to run")
        ids = slurm_ids(client, workflow_id)
        assert ids and set(ids) <= squeue_ids()
        proc = torc(server, "workflows", "cancel", str(workflow_id))
        assert f"canceled Slurm job(s) {ids[0]}" in proc.stderr
        wait_for(lambda: not set(ids) & squeue_ids(), 30, "the Slurm job to go")
        assert client.get(f"workflows/{workflow_id}/status")["is_canceled"]
        assert statuses(client, workflow_id)["long"] in ("canceled", "terminated")
        wait_for(lambda: allocation_states(client, workflow_id) == ["complete"], 30, "the allocation to be complete")
    finally:
        cancel_all(client, workflow_id)


def test_sigterm_from_slurm_records_running_jobs_terminated(slurm, server, client, tmp_path):
    """scancel (like the time limit) sends SIGTERM to the allocation, then SIGKILL after KillWait."""
    workflow_id = None
    try:
        workflow_id = submit(server, _long_job_spec(tmp_path, "scancel_me", "00:10:00"), tmp_path / "out")
        wait_for(lambda: statuses(client, workflow_id)["long"] == "running", START, "the job to run")
        subprocess.run(["scancel", *slurm_ids(client, workflow_id)], check=True, timeout=30)
        wait_for(lambda: statuses(client, workflow_id)["long"] == "terminated", 30, "the job to be terminated")
        result = next(client.iter_items("results", workflow_id=workflow_id))
        assert result["return_code"] < 0
        wait_for(lambda: allocation_states(client, workflow_id) == ["complete"], 30, "the allocation to be complete")
    finally:
        cancel_all(client, workflow_id)


def test_a_refused_request_names_the_scheduler_and_leaves_nothing(slurm, server, client, tmp_path):
    spec = write_spec(tmp_path / "too_big.yaml", {
        "name": "too_big",
        "slurm_schedulers": [{"name": "huge", "account": "test", "walltime": "00:05:00", "mem": "100000"}],
        "jobs": [{"name": "j", "command": "true"}],
        "actions": [{"trigger_type": "on_workflow_start", "action_type": "schedule_nodes", "scheduler": "huge",
                     "scheduler_type": "slurm"}],
    })
    out = tmp_path / "out"
    proc = torc(server, "submit", str(spec), "-o", str(out), check=False)
    assert proc.returncode == 1
    error = proc.stderr
    assert "Slurm scheduler refused the allocation request of scheduler 'huge'" in error, error
    assert "sbatch: error: Memory specification can not be satisfied" in error \
        or "Requested node configuration is not available" in error, error
    workflow_id = max(w["id"] for w in client.iter_items("workflows"))
    assert client.get(f"workflows/{workflow_id}")["name"] == "too_big"
    assert list(client.iter_items("scheduled_compute_nodes", workflow_id=workflow_id)) == []
    assert not list(out.glob("*.sh"))


def test_one_runner_per_node_starts_under_srun(slurm, server, client, tmp_path):
    """start_one_worker_per_node: the batch script starts the runner as a job step (srun), one per
    node — on this one-node cluster, one step whose runner finishes the jobs."""
    out = tmp_path / "out"
    spec = write_spec(tmp_path / "per_node.yaml", {
        "name": "per_node",
        "compute_node_wait_for_new_jobs_seconds": 2,
        "resource_requirements": [{"name": "small", "num_cpus": 1, "memory": "50m", "runtime": "PT1M"}],
        "slurm_schedulers": [{"name": "one", "account": "test", "walltime": "00:05:00"}],
        "jobs": [{"name": f"j{i}", "command": "echo $SLURM_STEP_ID", "resource_requirements": "small"}
                 for i in range(2)],
        "actions": [{"trigger_type": "on_workflow_start", "action_type": "schedule_nodes", "scheduler": "one",
                     "scheduler_type": "slurm", "start_one_worker_per_node": True}],
    })
    workflow_id = None
    try:
        workflow_id = submit(server, spec, out, env={"TORC_CLIENT__SLURM__KEEP_SUBMISSION_SCRIPTS": "true"})
        [script] = out.glob("*.sh")
        assert "srun --ntasks-per-node=1" in script.read_text()
        wait_for(lambda: client.get(f"workflows/{workflow_id}/is_complete")["is_complete"], START, "the workflow")
        assert set(statuses(client, workflow_id).values()) == {"completed"}
        [node] = client.iter_items("compute_nodes", workflow_id=workflow_id)
        assert node["compute_node_type"] == "slurm" and node["scheduler"]["node_id"] == "0"
        stdout = [p.read_text().strip() for p in (out / "job_stdio").glob("*.o")]
        assert stdout and all(s.isdigit() for s in stdout), "jobs ran inside a job step (SLURM_STEP_ID set)"
    finally:
        cancel_all(client, workflow_id)

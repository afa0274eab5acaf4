"""Allocations that end under running jobs, on the real single-node Slurm: the allocation's time
limit (jobs requeued, `torc recover` requests a new allocation), a job past its own runtime
(`torc recover` gives it more time in a new allocation), and an allocation killed without warning
(`workflows sync-status` puts its jobs back at once)."""

from __future__ import annotations

import json
import os
import signal
import socket

import pytest

from tests.slurm.test_submit import (
    START,
    cancel_all,
    client,  # noqa: F401 - fixture
    slurm_ids,
    squeue_ids,
    statuses,
    submit,
    torc,
    wait_for,
    write_spec,
)

pytestmark = pytest.mark.timeout(2 * START + 240)


def _spec(tmp_path, name: str, command: str, runtime: str, walltime: str, queue_mode: bool):
    action = {"trigger_type": "on_workflow_start", "action_type": "schedule_nodes", "scheduler": "one",
              "scheduler_type": "slurm"}
    if queue_mode:
        action["max_parallel_jobs"] = 1  # claims ignore resources and the time left
    return write_spec(tmp_path / f"{name}.yaml", {
        "name": name,
        "compute_node_wait_for_new_jobs_seconds": 3,
        "resource_requirements": [{"name": "small", "num_cpus": 1, "memory": "100m", "runtime": runtime}],
        "slurm_schedulers": [{"name": "one", "account": "test", "walltime": walltime}],
        "jobs": [{"name": "long", "command": command, "resource_requirements": "small"}],
        "actions": [action],
    })


def results(client, workflow_id):  # noqa: F811
    return sorted(client.iter_items("results", workflow_id=workflow_id, all_runs=True),
                  key=lambda r: (r["run_id"], r["attempt_id"]))


def test_time_limit_terminates_and_requeues_the_job_and_recover_requests_a_new_allocation(
        slurm, server, client, tmp_path):  # noqa: F811
    """A one-minute allocation ends under a 50-s job that asked for 3 minutes: the runner stops it
    before Slurm's time limit, records it terminated and puts it back to ready (the allocation's
    fault, not the job's). `torc recover` sees no live allocation and requests one sized for the
    job's runtime, where it completes."""
    out = tmp_path / "out"
    workflow_id = None
    try:
        workflow_id = submit(server, _spec(tmp_path, "time_limit", "sleep 50", "PT3M", "00:01:00", True), out)
        first = slurm_ids(client, workflow_id)
        wait_for(lambda: statuses(client, workflow_id)["long"] == "running", START, "the job to run")
        wait_for(lambda: results(client, workflow_id), 120, "the terminated attempt", interval=2)
        [stopped] = results(client, workflow_id)
        assert stopped["status"] == "terminated" and stopped["return_code"] < 0
        assert 20 / 60 < stopped["exec_time_minutes"] < 1
        wait_for(lambda: not set(first) & squeue_ids(), 90, "the allocation to end")
        job = client.get(f"jobs/{next(j['id'] for j in client.iter_items('jobs', workflow_id=workflow_id))}")
        assert job["status"] == "ready" and job["attempt_id"] == 2, job

        proc = torc(server, "-f", "json", "recover", str(workflow_id), "-o", str(out))
        submitted = json.loads(proc.stdout)["scheduled_compute_nodes"]
        assert len(submitted) == 1, proc.stdout + proc.stderr
        assert "new Slurm scheduler(s)" in proc.stderr
        assert str(submitted[0]["scheduler_id"]) not in first
        wait_for(lambda: statuses(client, workflow_id)["long"] == "completed", START + 90, "the job to complete",
                 interval=2)
        assert [r["status"] for r in results(client, workflow_id)] == ["terminated", "completed"]
        new = {s["name"]: s for s in client.iter_items("slurm_schedulers", workflow_id=workflow_id)}
        assert set(new) == {"one", "small_scheduler"}, new
        assert new["small_scheduler"]["walltime"] >= "00:03:00", "the new allocation fits the job's runtime"
    finally:
        cancel_all(client, workflow_id)


def test_a_job_past_its_runtime_is_recovered_with_more_time_in_a_new_allocation(
        slurm, server, client, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    workflow_id = None
    try:
        workflow_id = submit(server, _spec(tmp_path, "overrun", "sleep 30", "PT15S", "00:05:00", False), out)
        wait_for(lambda: statuses(client, workflow_id)["long"] == "terminated", START + 60, "the runtime limit")
        wait_for(lambda: not set(slurm_ids(client, workflow_id)) & squeue_ids(), 90, "the allocation to end")

        dry = json.loads(torc(server, "-f", "json", "recover", str(workflow_id), "--dry-run", "-o", str(out)).stdout)
        [diagnosis] = dry["jobs"]
        assert diagnosis["cause"] == "timeout", diagnosis
        proc = torc(server, "-f", "json", "recover", str(workflow_id), "--runtime-multiplier", "3", "-o", str(out))
        report = json.loads(proc.stdout)
        assert report["applied"] and len(report["scheduled_compute_nodes"]) == 1, proc.stdout + proc.stderr
        wait_for(lambda: statuses(client, workflow_id)["long"] == "completed", START + 60, "the job to complete",
                 interval=2)
        job = next(client.iter_items("jobs", workflow_id=workflow_id))
        rr = client.get(f"resource_requirements/{job['resource_requirements_id']}")
        assert rr["name"] == "small_recovered_1" and rr["runtime"] == "PT45S", rr
    finally:
        cancel_all(client, workflow_id)


def test_an_allocation_killed_without_warning_gives_its_jobs_back_at_sync_status(
        slurm, server, client, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    workflow_id = None
    try:
        workflow_id = submit(server, _spec(tmp_path, "node_fail", "sleep 300", "PT10M", "00:10:00", True), out)
        wait_for(lambda: statuses(client, workflow_id)["long"] == "running", START, "the job to run")
        ids = slurm_ids(client, workflow_id)
        # the runner dies without a word (as on a failed node); the allocation then ends and Slurm
        # kills what is left of it
        [runner] = [n for n in client.iter_items("compute_nodes", workflow_id=workflow_id) if n["is_active"]]
        assert runner["compute_node_type"] == "slurm" and runner["hostname"] == socket.gethostname()
        os.kill(runner["pid"], signal.SIGKILL)
        wait_for(lambda: not set(ids) & squeue_ids(), 60, "the allocation to go")
        assert statuses(client, workflow_id)["long"] == "running", "torc has not noticed yet"

        proc = torc(server, "workflows", "sync-status", str(workflow_id))
        assert f"Slurm allocation {ids[0]} is gone" in proc.stderr and "requeued long" in proc.stderr, proc.stderr
        job = next(client.iter_items("jobs", workflow_id=workflow_id))
        assert job["status"] == "ready" and job["attempt_id"] == 2
        [lost] = results(client, workflow_id)
        assert lost["status"] == "terminated" and lost["return_code"] == -128
        assert not any(n["is_active"] for n in client.iter_items("compute_nodes", workflow_id=workflow_id))
        assert [n["status"] for n in client.iter_items("scheduled_compute_nodes", workflow_id=workflow_id)] \
            == ["complete"]
    finally:
        cancel_all(client, workflow_id)

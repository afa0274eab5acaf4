"""`torc slurm regenerate` on the real single-node Slurm: a workflow whose allocation was
cancelled gets a new plan from its unfinished jobs, and the new allocations finish it."""

from __future__ import annotations

import json
import subprocess

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

pytestmark = pytest.mark.timeout(START + 240)


def test_regenerate_submit_finishes_a_workflow_whose_allocation_was_cancelled(slurm, server, client,  # noqa: F811
                                                                             tmp_path):
    out = tmp_path / "out"
    spec = write_spec(tmp_path / "regen.yaml", {
        "name": "regen",
        "compute_node_wait_for_new_jobs_seconds": 3,
        "resource_requirements": [{"name": "small", "num_cpus": 1, "memory": "100m", "runtime": "PT1M"}],
        # an allocation that cannot start for an hour: it is cancelled while pending
        "slurm_schedulers": [{"name": "held", "account": "test", "walltime": "00:05:00",
                              "extra": "--begin=now+3600"}],
        "jobs": [
            {"name": "a", "command": "sleep 1", "resource_requirements": "small", "scheduler": "held"},
            {"name": "b", "command": "sleep 1", "resource_requirements": "small", "scheduler": "held"},
            {"name": "c", "command": "echo c", "resource_requirements": "small", "scheduler": "held",
             "depends_on": ["a", "b"]},
        ],
        "actions": [{"trigger_type": "on_workflow_start", "action_type": "schedule_nodes", "scheduler": "held",
                     "scheduler_type": "slurm"}],
    })
    workflow_id = None
    try:
        workflow_id = submit(server, spec, out)
        old = slurm_ids(client, workflow_id)
        assert len(old) == 1
        subprocess.run(["scancel", *old], check=True, timeout=30)
        wait_for(lambda: not set(old) & squeue_ids(), 60, "the allocation to go")
        assert statuses(client, workflow_id) == {"a": "ready", "b": "ready", "c": "blocked"}

        plan = json.loads(torc(server, "-f", "json", "slurm", "regenerate", str(workflow_id), "-a", "test",
                               "--dry-run").stdout)
        assert plan["jobs"] == 3 and {s["trigger"] for s in plan["schedulers"]} == {"on_workflow_start",
                                                                                     "on_jobs_ready"}
        assert len(list(client.iter_items("slurm_schedulers", workflow_id=workflow_id))) == 1, "dry run"

        result = json.loads(torc(server, "-f", "json", "slurm", "regenerate", str(workflow_id), "-a", "test",
                                 "--submit", "-o", str(out), "-p", "1",
                                 env={"TORC_CLIENT__SLURM__STRICT_SCHEDULER_MATCH": "true"}).stdout)
        new = [str(n["scheduler_id"]) for n in result["scheduled_compute_nodes"]]
        assert len(new) == 1 and new != old
        schedulers = {s["name"] for s in client.iter_items("slurm_schedulers", workflow_id=workflow_id)}
        assert schedulers == {"held", "small_scheduler", "small_deferred_scheduler"}
        by_name = {s["name"]: s["id"] for s in client.iter_items("slurm_schedulers", workflow_id=workflow_id)}
        pins = {j["name"]: j["scheduler_id"] for j in client.iter_items("jobs", workflow_id=workflow_id)}
        assert pins == {"a": by_name["small_scheduler"], "b": by_name["small_scheduler"],
                        "c": by_name["small_deferred_scheduler"]}
        recovery = [a for a in client.get(f"workflows/{workflow_id}/actions") if a["is_recovery"]]
        assert sorted(a["trigger_type"] for a in recovery) == ["on_jobs_ready", "on_workflow_start"]

        wait_for(lambda: client.get(f"workflows/{workflow_id}/is_complete")["is_complete"], START, "the workflow")
        assert statuses(client, workflow_id) == {"a": "completed", "b": "completed", "c": "completed"}
    finally:
        cancel_all(client, workflow_id)


def test_regenerate_retires_the_pending_start_action_and_prints_how_to_submit(slurm, server, client,  # noqa: F811
                                                                             tmp_path):
    spec = write_spec(tmp_path / "unsubmitted.yaml", {
        "name": "unsubmitted",
        "resource_requirements": [{"name": "small", "num_cpus": 1, "memory": "100m", "runtime": "PT1M"}],
        "slurm_schedulers": [{"name": "small_scheduler", "account": "test", "walltime": "00:05:00"},
                             {"name": "stage2", "account": "test", "walltime": "00:05:00"}],
        "jobs": [{"name": "a", "command": "true", "resource_requirements": "small"},
                 {"name": "b", "command": "true", "resource_requirements": "small", "depends_on": ["a"],
                  "scheduler": "stage2"}],
        "actions": [{"trigger_type": "on_workflow_start", "action_type": "schedule_nodes",
                     "scheduler": "small_scheduler", "scheduler_type": "slurm"},
                    {"trigger_type": "on_jobs_ready", "action_type": "schedule_nodes", "jobs": ["b"],
                     "scheduler": "stage2", "scheduler_type": "slurm"}],
    })
    workflow_id = json.loads(torc(server, "-f", "json", "workflows", "create", str(spec)).stdout)["workflow_id"]
    torc(server, "workflows", "initialize", str(workflow_id))
    [old] = client.get(f"workflows/{workflow_id}/actions/pending")
    [untriggered] = [a["id"] for a in client.get(f"workflows/{workflow_id}/actions") if a["id"] != old["id"]]
    proc = torc(server, "-f", "json", "slurm", "regenerate", str(workflow_id), "-a", "test")
    result = json.loads(proc.stdout)
    assert result["retired_action_ids"] == [old["id"], untriggered], "the stage-2 action that has not fired too"
    assert client.get(f"workflows/{workflow_id}/actions/pending") == []
    names = {s["name"] for s in client.iter_items("slurm_schedulers", workflow_id=workflow_id)}
    assert names == {"small_scheduler", "stage2", "small_regen2_scheduler", "small_deferred_scheduler"}
    # the old stage-2 action stays retired when its job becomes ready
    client.post(f"workflows/{workflow_id}/actions/{untriggered}/retire")  # idempotent
    old_b = next(a for a in client.get(f"workflows/{workflow_id}/actions") if a["id"] == untriggered)
    assert old_b["executed"] is True
    assert "torc slurm schedule-nodes" in proc.stderr
    assert slurm_ids(client, workflow_id) == [], "nothing submitted without --submit"

"""Job lifecycle on the server: initialize, claim, start, complete, unblock, cascade, retry, reset."""

from __future__ import annotations

import pytest

from tests.helpers import claim_all, make_jobs, make_workflow, run_job, statuses
from torc.core.errors import InvalidInputError


def _diamond(api):
    wf = make_workflow(api, "diamond")
    (a,) = make_jobs(api, wf, [{"name": "a"}])
    b, c = make_jobs(api, wf, [{"name": "b", "depends_on_job_ids": [a["id"]]},
                               {"name": "c", "depends_on_job_ids": [a["id"]]}])
    make_jobs(api, wf, [{"name": "d", "depends_on_job_ids": [b["id"], c["id"]]}])
    return wf


def _by_name(api, wf, name):
    return next(j for j in api.iter_items("jobs", workflow_id=wf) if j["name"] == name)


def _claim_named(api, wf, name):
    jobs = claim_all(api, wf)
    chosen = [j for j in jobs if j["name"] == name]
    for other in jobs:  # give back the rest
        if other["name"] != name:
            api.put(f"jobs/{other['id']}/manage_status_change/ready/{api.run_id(wf)}")
    return chosen[0]


def test_initialize_uses_file_and_user_data_edges(api):
    wf = make_workflow(api)
    f = api.post("files", {"workflow_id": wf, "name": "f", "path": "f.txt"})
    u = api.post("user_data", {"workflow_id": wf, "name": "u"})
    make_jobs(api, wf, [
        {"name": "producer", "output_file_ids": [f["id"]]},
        {"name": "consumer", "input_file_ids": [f["id"]], "output_user_data_ids": [u["id"]]},
        {"name": "last", "input_user_data_ids": [u["id"]]},
    ])
    api.post(f"workflows/{wf}/initialize_jobs")
    assert statuses(api, wf) == {"producer": "ready", "consumer": "blocked", "last": "blocked"}
    deps = api.get(f"workflows/{wf}/job_dependencies")["items"]
    assert {(d["job_name"], d["depends_on_job_name"]) for d in deps} == {("consumer", "producer"), ("last", "consumer")}
    run_id = api.run_id(wf)
    for name in ("producer", "consumer", "last"):
        (job,) = claim_all(api, wf)
        assert job["name"] == name
        run_job(api, job, run_id)
    assert api.get(f"workflows/{wf}/is_complete")["is_complete"]


def test_dependents_ready_immediately_after_completion(api):
    """No periodic pass is needed: the completing request releases the dependents."""
    wf = _diamond(api)
    api.post(f"workflows/{wf}/initialize_jobs")
    (a,) = claim_all(api, wf)
    run_job(api, a, api.run_id(wf))
    assert statuses(api, wf) == {"a": "completed", "b": "ready", "c": "ready", "d": "blocked"}


def test_failure_cancels_downstream_by_default(api):
    wf = _diamond(api)
    api.post(f"workflows/{wf}/initialize_jobs")
    run_id = api.run_id(wf)
    (a,) = claim_all(api, wf)
    run_job(api, a, run_id, return_code=1)
    assert statuses(api, wf) == {"a": "failed", "b": "canceled", "c": "canceled", "d": "canceled"}
    assert api.get(f"workflows/{wf}/is_complete")["is_complete"] is True


def test_failure_without_cancel_flag_lets_dependents_run(api):
    wf = make_workflow(api)
    (a,) = make_jobs(api, wf, [{"name": "a"}])
    make_jobs(api, wf, [{"name": "b", "depends_on_job_ids": [a["id"]], "cancel_on_blocking_job_failure": False}])
    api.post(f"workflows/{wf}/initialize_jobs")
    (a,) = claim_all(api, wf)
    run_job(api, a, api.run_id(wf), return_code=3)
    assert statuses(api, wf) == {"a": "failed", "b": "ready"}


def test_job_waits_for_all_blockers(api):
    wf = _diamond(api)
    api.post(f"workflows/{wf}/initialize_jobs")
    run_id = api.run_id(wf)
    run_job(api, claim_all(api, wf)[0], run_id)
    b = _claim_named(api, wf, "b")
    run_job(api, b, run_id)
    assert statuses(api, wf)["d"] == "blocked"
    (c,) = claim_all(api, wf)
    run_job(api, c, run_id, return_code=2)
    # d's blockers are all done and c failed: d is canceled (flag defaults to true)
    assert statuses(api, wf)["d"] == "canceled"


def test_reset_failed_only_resets_downstream_and_keeps_completed(api):
    wf = make_workflow(api)
    (a,) = make_jobs(api, wf, [{"name": "a"}])
    (b,) = make_jobs(api, wf, [{"name": "b", "depends_on_job_ids": [a["id"]]}])
    make_jobs(api, wf, [{"name": "c", "depends_on_job_ids": [b["id"]]}, {"name": "other"}])
    api.post(f"workflows/{wf}/initialize_jobs")
    run_id = api.run_id(wf)
    for job in claim_all(api, wf):
        run_job(api, job, run_id)  # a, other
    (b,) = claim_all(api, wf)
    run_job(api, b, run_id, return_code=1)
    assert statuses(api, wf) == {"a": "completed", "b": "failed", "c": "canceled", "other": "completed"}
    out = api.post(f"workflows/{wf}/reset_job_status", failed_only=True)
    assert out["updated_count"] == 2 and out["reset_type"] == "failed_only"
    assert statuses(api, wf) == {"a": "completed", "b": "uninitialized", "c": "uninitialized", "other": "completed"}
    api.post(f"workflows/{wf}/initialize_jobs", only_uninitialized=True)
    assert statuses(api, wf) == {"a": "completed", "b": "ready", "c": "blocked", "other": "completed"}


def test_full_reset_then_initialize(api):
    wf = _diamond(api)
    api.post(f"workflows/{wf}/initialize_jobs")
    run_job(api, claim_all(api, wf)[0], api.run_id(wf))
    api.post(f"workflows/{wf}/reset_job_status")
    assert set(statuses(api, wf).values()) == {"uninitialized"}
    api.post(f"workflows/{wf}/initialize_jobs")
    assert statuses(api, wf) == {"a": "ready", "b": "blocked", "c": "blocked", "d": "blocked"}


def test_run_id_checks(api, http):
    wf = make_workflow(api)
    make_jobs(api, wf, [{"name": "a"}])
    api.post(f"workflows/{wf}/initialize_jobs")
    (job,) = claim_all(api, wf)
    r = http.put(f"jobs/{job['id']}/start_job/7/0")
    assert r.status_code == 422 and "run_id" in r.json()["error"]["message"]
    api.put(f"jobs/{job['id']}/start_job/0/0")
    stale = {"job_id": job["id"], "workflow_id": wf, "run_id": 5, "compute_node_id": 0, "return_code": 0,
             "exec_time_minutes": 1.0, "completion_time": "x", "status": "completed"}
    r = http.post(f"jobs/{job['id']}/complete_job/completed/5", json=stale)
    assert r.status_code == 422
    assert api.get(f"jobs/{job['id']}")["status"] == "running"  # the failed request changed nothing


def test_illegal_transitions_are_rejected(api, http):
    wf = make_workflow(api)
    (a,) = make_jobs(api, wf, [{"name": "a"}])
    # start_job needs a claimed job
    r = http.put(f"jobs/{a['id']}/start_job/0/0")
    assert r.status_code == 422 and "pending" in r.json()["error"]["message"]
    # manage_status_change cannot complete a job
    r = http.put(f"jobs/{a['id']}/manage_status_change/completed/0")
    assert r.status_code == 422 and "complete_job" in r.json()["error"]["message"]
    # bad status string
    r = http.put(f"jobs/{a['id']}/manage_status_change/finished/0")
    assert r.status_code == 422 and "finished" in r.json()["error"]["message"]
    api.post(f"workflows/{wf}/initialize_jobs")
    (job,) = claim_all(api, wf)
    run_job(api, job, 0)
    result = {"return_code": 0, "exec_time_minutes": 0, "completion_time": "x", "compute_node_id": 0}
    r = http.post(f"jobs/{a['id']}/complete_job/completed/0", json=result)
    assert r.status_code == 422 and "already complete" in r.json()["error"]["message"]
    r = http.post(f"jobs/{a['id']}/complete_job/running/0", json=result)
    assert r.status_code == 422


def test_results_keep_attempts_and_retry(api):
    wf = make_workflow(api)
    (a,) = make_jobs(api, wf, [{"name": "a"}])
    make_jobs(api, wf, [{"name": "b", "depends_on_job_ids": [a["id"]]}])
    api.post(f"workflows/{wf}/initialize_jobs")
    run_id = api.run_id(wf)
    (job,) = claim_all(api, wf)
    run_job(api, job, run_id, return_code=1)
    assert statuses(api, wf)["b"] == "canceled"
    retried = api.post(f"jobs/{job['id']}/retry/{run_id}", max_retries=2)
    assert retried["status"] == "ready" and retried["attempt_id"] == 2
    assert statuses(api, wf)["b"] == "blocked"  # waiting again for the retry
    (job,) = claim_all(api, wf)
    assert job["attempt_id"] == 2
    run_job(api, job, run_id)
    assert statuses(api, wf)["b"] == "ready"
    rows = api.get("results", workflow_id=wf, all_runs=True)["items"]
    assert [(r["attempt_id"], r["return_code"]) for r in rows] == [(1, 1), (2, 0)]
    current = api.get("results", workflow_id=wf)["items"]
    assert [(r["attempt_id"], r["status"]) for r in current] == [(2, "completed")]


def test_retry_limit(api, http):
    wf = make_workflow(api)
    make_jobs(api, wf, [{"name": "a"}])
    api.post(f"workflows/{wf}/initialize_jobs")
    for _ in range(2):
        (job,) = claim_all(api, wf)
        run_job(api, job, 0, return_code=1)
        api.post(f"jobs/{job['id']}/retry/0", max_retries=2)
    (job,) = claim_all(api, wf)
    run_job(api, job, 0, return_code=1)
    r = http.post(f"jobs/{job['id']}/retry/0", params={"max_retries": 2})
    assert r.status_code == 422 and "max retries" in r.json()["error"]["message"]


def test_pending_failed_keeps_workflow_open(api):
    wf = make_workflow(api, use_pending_failed=True)
    make_jobs(api, wf, [{"name": "a"}])
    api.post(f"workflows/{wf}/initialize_jobs")
    (job,) = claim_all(api, wf)
    run_job(api, job, 0, return_code=9, status="pending_failed")
    assert statuses(api, wf) == {"a": "pending_failed"}
    assert api.get(f"workflows/{wf}/is_complete")["is_complete"] is False
    api.post(f"jobs/{job['id']}/retry/0")
    assert statuses(api, wf) == {"a": "ready"}


def test_cancel_workflow(api):
    wf = _diamond(api)
    api.post(f"workflows/{wf}/initialize_jobs")
    (a,) = claim_all(api, wf)
    api.put(f"jobs/{a['id']}/start_job/0/0")
    status = api.put(f"workflows/{wf}/cancel")
    assert status["is_canceled"] is True
    assert statuses(api, wf)["a"] == "canceled"
    assert api.get(f"workflows/{wf}/is_complete") == {"is_complete": True, "is_canceled": True,
                                                     "needs_to_run_completion_script": False}
    assert claim_all(api, wf) == []
    claim = api.post(f"workflows/{wf}/claim_jobs_based_on_resources/10",
                     {"num_cpus": 4, "memory_gb": 4, "num_gpus": 0, "num_nodes": 1})
    assert claim == {"jobs": [], "reason": "Workflow is canceled"}
    api.post(f"workflows/{wf}/reset_status")
    assert api.get(f"workflows/{wf}/status")["is_canceled"] is False


def test_reset_status_refuses_active_jobs_unless_forced(api, http):
    wf = make_workflow(api)
    make_jobs(api, wf, [{"name": "a"}])
    api.post(f"workflows/{wf}/initialize_jobs")
    claim_all(api, wf)
    r = http.post(f"workflows/{wf}/reset_status")
    assert r.status_code == 422 and "pending or running" in r.json()["error"]["message"]
    assert http.post(f"workflows/{wf}/reset_status", params={"force": True}).status_code == 200


def test_manage_status_change_reversal_resets_direct_dependents(api):
    wf = make_workflow(api)
    (a,) = make_jobs(api, wf, [{"name": "a"}])
    make_jobs(api, wf, [{"name": "b", "depends_on_job_ids": [a["id"]]}])
    api.post(f"workflows/{wf}/initialize_jobs")
    for _ in range(2):
        run_job(api, claim_all(api, wf)[0], 0)
    api.put(f"jobs/{a['id']}/manage_status_change/uninitialized/0")
    assert statuses(api, wf) == {"a": "uninitialized", "b": "uninitialized"}


def test_process_changed_job_inputs(api):
    wf = make_workflow(api)
    u = api.post("user_data", {"workflow_id": wf, "name": "cfg", "data": {"x": 1}})
    make_jobs(api, wf, [{"name": "uses_cfg", "input_user_data_ids": [u["id"]]}, {"name": "plain"}])
    api.post(f"workflows/{wf}/initialize_jobs")
    for job in claim_all(api, wf):
        run_job(api, job, 0)
    assert api.post(f"workflows/{wf}/process_changed_job_inputs")["reinitialized_jobs"] == []
    api.put(f"user_data/{u['id']}", {"workflow_id": wf, "name": "cfg", "data": {"x": 2}})
    dry = api.post(f"workflows/{wf}/process_changed_job_inputs", dry_run=True)
    assert dry["reinitialized_jobs"] == ["uses_cfg"]
    assert statuses(api, wf)["uses_cfg"] == "completed"
    api.post(f"workflows/{wf}/process_changed_job_inputs")
    assert statuses(api, wf) == {"uses_cfg": "uninitialized", "plain": "completed"}


def test_initialize_reports_dependency_cycle(api, http):
    wf = make_workflow(api)
    f = api.post("files", {"workflow_id": wf, "name": "f", "path": "f"})
    g = api.post("files", {"workflow_id": wf, "name": "g", "path": "g"})
    make_jobs(api, wf, [{"name": "x", "input_file_ids": [f["id"]], "output_file_ids": [g["id"]]},
                        {"name": "y", "input_file_ids": [g["id"]], "output_file_ids": [f["id"]]}])
    r = http.post(f"workflows/{wf}/initialize_jobs")
    assert r.status_code == 422
    message = r.json()["error"]["message"]
    assert "cycle" in message and "x (" in message and "y (" in message
    assert set(statuses(api, wf).values()) == {"uninitialized"}  # nothing half-written
    assert api.get(f"workflows/{wf}/job_dependencies")["total_count"] == 0


def test_required_existing_files_and_missing_user_data(api):
    wf = make_workflow(api)
    given = api.post("files", {"workflow_id": wf, "name": "given", "path": "in.txt"})
    made = api.post("files", {"workflow_id": wf, "name": "made", "path": "out.txt"})
    need = api.post("user_data", {"workflow_id": wf, "name": "need"})
    make_jobs(api, wf, [{"name": "p", "input_file_ids": [given["id"]], "output_file_ids": [made["id"]],
                         "input_user_data_ids": [need["id"]]}])
    assert api.get(f"workflows/{wf}/required_existing_files") == {"files": [given["id"]]}
    assert api.get(f"workflows/{wf}/missing_user_data") == {"user_data": [need["id"]]}


def test_batch_completion_extension(api):
    wf = make_workflow(api)
    (a,) = make_jobs(api, wf, [{"name": "a"}])
    make_jobs(api, wf, [{"name": f"n{i}"} for i in range(3)] + [{"name": "z", "depends_on_job_ids": [a["id"]]}])
    api.post(f"workflows/{wf}/initialize_jobs")
    jobs = claim_all(api, wf)
    out = api.post(f"workflows/{wf}/complete_jobs", {"run_id": 0, "jobs": [
        {"job_id": j["id"], "status": "completed", "result": {"return_code": 0, "exec_time_minutes": 0.1}}
        for j in jobs]})
    assert [j["status"] for j in out["jobs"]] == ["completed"] * 4
    assert statuses(api, wf)["z"] == "ready"
    assert api.get("results", workflow_id=wf)["total_count"] == 4


def test_update_job_to_disabled_blocks_dependents(api):
    wf = make_workflow(api)
    (a,) = make_jobs(api, wf, [{"name": "a"}])
    make_jobs(api, wf, [{"name": "b", "depends_on_job_ids": [a["id"]]}])
    job = api.get(f"jobs/{a['id']}")
    api.put(f"jobs/{a['id']}", {**job, "status": "disabled"})
    api.post(f"workflows/{wf}/initialize_jobs")
    assert statuses(api, wf) == {"a": "disabled", "b": "blocked"}
    assert api.get(f"workflows/{wf}/is_complete")["is_complete"] is False


@pytest.mark.parametrize("bad", ["PT", "forever", "1h"])
def test_claim_rejects_bad_time_limit(api, bad):
    wf = make_workflow(api)
    with pytest.raises(InvalidInputError, match="time_limit"):
        api.post(f"workflows/{wf}/claim_jobs_based_on_resources/5",
                 {"num_cpus": 1, "memory_gb": 1, "num_gpus": 0, "num_nodes": 1, "time_limit": bad})


def test_fan_in_released_only_by_last_blocker_in_any_order(api):
    wf = make_workflow(api)
    leaves = make_jobs(api, wf, [{"name": f"leaf{i}"} for i in range(30)])
    make_jobs(api, wf, [{"name": "collect", "depends_on_job_ids": [j["id"] for j in leaves]}])
    api.post(f"workflows/{wf}/initialize_jobs")
    claimed = claim_all(api, wf)
    for job in reversed(claimed[1:]):
        run_job(api, job, 0)
        assert statuses(api, wf)["collect"] == "blocked"
    run_job(api, claimed[0], 0)
    assert statuses(api, wf)["collect"] == "ready"


def test_deleting_an_unfinished_blocker_releases_its_dependent(api):
    import time

    wf = make_workflow(api)
    a, b = make_jobs(api, wf, [{"name": "a"}, {"name": "b"}])
    make_jobs(api, wf, [{"name": "c", "depends_on_job_ids": [a["id"], b["id"]]}])
    api.post(f"workflows/{wf}/initialize_jobs")
    run_job(api, claim_all(api, wf, limit=1)[0], 0)  # a done, b ready
    api.delete(f"jobs/{b['id']}")
    deadline = time.monotonic() + 10  # the background pass (0.2 s in tests) releases c
    while statuses(api, wf)["c"] != "ready":
        assert time.monotonic() < deadline, statuses(api, wf)
        time.sleep(0.05)


def test_retry_with_malformed_result_body_is_422(api, http):
    wf = make_workflow(api)
    (job,) = make_jobs(api, wf, [{"name": "a"}])
    r = http.post(f"jobs/{job['id']}/retry/0", json={"run_id": {}, "return_code": "x"})
    assert r.status_code == 422
    assert "run_id" in r.json()["error"]["message"] and "return_code" in r.json()["error"]["message"]
    r = http.post(f"jobs/{job['id']}/retry/0", json={"max_retries": -1})
    assert r.status_code == 422 and "max_retries" in r.json()["error"]["message"]


def test_batch_start_extension(api, http):
    wf = make_workflow(api)
    make_jobs(api, wf, [{"name": f"j{i}"} for i in range(3)])
    api.post(f"workflows/{wf}/initialize_jobs")
    jobs = claim_all(api, wf)
    out = api.post(f"workflows/{wf}/start_jobs", {"run_id": 0, "compute_node_id": 5,
                                                   "job_ids": [j["id"] for j in jobs]})
    assert [j["status"] for j in out["jobs"]] == ["running"] * 3
    # all or nothing: a job that is not pending fails the whole batch and changes nothing
    (extra,) = make_jobs(api, wf, [{"name": "late"}])
    r = http.post(f"workflows/{wf}/start_jobs", json={"run_id": 0, "compute_node_id": 5, "job_ids": [extra["id"]]})
    assert r.status_code == 422 and "pending" in r.json()["error"]["message"]
    assert statuses(api, wf)["late"] == "uninitialized"

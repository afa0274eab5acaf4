from tests.helpers import claim_all, make_jobs, make_workflow, run_job, statuses


def test_ping_and_version(api):
    assert api.ping() == {"status": "ok"}
    assert isinstance(api.get("version"), str)


def test_diamond_lifecycle(api):
    wf = make_workflow(api)
    a, = make_jobs(api, wf, [{"name": "a"}])
    b, c = make_jobs(api, wf, [{"name": "b", "depends_on_job_ids": [a["id"]]},
                               {"name": "c", "depends_on_job_ids": [a["id"]]}])
    make_jobs(api, wf, [{"name": "d", "depends_on_job_ids": [b["id"], c["id"]]}])
    api.post(f"workflows/{wf}/initialize_jobs")
    assert statuses(api, wf) == {"a": "ready", "b": "blocked", "c": "blocked", "d": "blocked"}
    run_id = api.run_id(wf)
    (job,) = claim_all(api, wf)
    run_job(api, job, run_id)
    assert statuses(api, wf) == {"a": "completed", "b": "ready", "c": "ready", "d": "blocked"}
    for job in claim_all(api, wf):
        run_job(api, job, run_id)
    assert statuses(api, wf)["d"] == "ready"
    for job in claim_all(api, wf):
        run_job(api, job, run_id)
    assert api.get(f"workflows/{wf}/is_complete")["is_complete"] is True

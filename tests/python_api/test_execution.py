"""Running workflows from Python (run_workflow, wait_for_completion) and reading results back."""

from __future__ import annotations

import json
import threading

import pytest

import torc

FAST = {"poll_interval": 0.1, "idle_timeout": 5}


def two_jobs(name: str = "two", fail: bool = True) -> torc.WorkflowBuilder:
    wf = torc.WorkflowBuilder(name)
    wf.add_resource_requirements("small", num_cpus=1, memory="100m", runtime="PT1M")
    first = wf.add_job("first", "echo hello from first; echo oops >&2", resource_requirements="small")
    wf.add_job("second", "echo second; exit 3" if fail else "echo second", depends_on=[first],
               resource_requirements="small")
    return wf


def test_run_workflow_with_a_private_server(tmp_path) -> None:
    run = torc.run_workflow(two_jobs(), output_dir=tmp_path / "out", **FAST)
    assert run.database == (tmp_path / "out" / "torc.db").resolve() and run.database.exists()
    assert run.is_complete and not run.succeeded
    assert run.job_statuses == {"first": "completed", "second": "failed"}
    assert run.job_counts == {"completed": 1, "failed": 1}
    logs = run.logs("first")
    assert logs["stdout"] == "hello from first\n" and logs["stderr"] == "oops\n"
    assert {r["return_code"] for r in run.results} == {0, 3}
    with pytest.raises(torc.InvalidInputError, match="no job named"):
        run.logs("third")


def test_run_workflow_on_a_server_then_read_results(client, tmp_path) -> None:
    run = torc.run_workflow(two_jobs("ok", fail=False), client=client, output_dir=tmp_path, **FAST)
    assert run.succeeded and run.database is None and run.url == client.url
    frame = torc.results_dataframe(client, run.workflow_id)
    assert sorted(frame["job_name"]) == ["first", "second"]
    assert list(frame["return_code"]) == [0, 0]
    assert set(frame["status"]) == {"completed"}
    assert list(frame.columns[:3]) == ["job_name", "job_id", "run_id"]
    jobs = torc.jobs_dataframe(client, run.workflow_id)
    assert sorted(jobs["name"]) == ["first", "second"]
    second = next(j for j in run.jobs if j["name"] == "second")
    logs = torc.job_logs(client, second["id"], output_dir=tmp_path, tail=1)
    assert logs["stdout"] == "second\n" and not logs["stderr"]  # an empty stderr file is not kept


def test_run_workflow_accepts_a_spec_dict_a_file_and_an_id(client, tmp_path) -> None:
    spec = {"name": "from_dict", "jobs": [{"name": "j", "command": "echo dict"}]}
    assert torc.run_workflow(spec, client=client, output_dir=tmp_path, **FAST).succeeded
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({**spec, "name": "from_file"}))
    run = torc.run_workflow(path, client=client, output_dir=tmp_path, **FAST)
    assert run.succeeded
    again = torc.run_workflow(run.workflow_id, client=client, output_dir=tmp_path, **FAST)  # resume: nothing left
    assert again.workflow_id == run.workflow_id and again.job_counts == {"completed": 1}
    with pytest.raises(torc.InvalidInputError, match="cannot run"):
        torc.run_workflow(3.5, client=client, output_dir=tmp_path)
    with pytest.raises(torc.SpecError):
        torc.run_workflow({"name": "bad", "jobs": [{"name": "j"}]}, client=client, output_dir=tmp_path)


def test_empty_results_give_an_empty_frame_with_columns(client) -> None:
    workflow_id = two_jobs("never_run").create(client)
    frame = torc.results_dataframe(client, workflow_id)
    assert frame.empty and "job_name" in frame.columns


def test_wait_for_completion(client, tmp_path) -> None:
    workflow_id = two_jobs("waited", fail=False).create(client, initialize=True)
    with pytest.raises(TimeoutError, match=f"workflow {workflow_id}"):
        torc.wait_for_completion(client, workflow_id, timeout=0.3, poll_interval=0.1)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            torc.run_workflow(workflow_id, client=client.url, output_dir=tmp_path, **FAST)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        counts = torc.wait_for_completion(client, workflow_id, timeout=60, poll_interval=0.1)
    finally:
        thread.join(60)
    assert not errors
    assert counts == {"completed": 2}

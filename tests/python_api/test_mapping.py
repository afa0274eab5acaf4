"""map_function_to_jobs: a Python function over parameter sets, run by the real local runner."""

from __future__ import annotations

import textwrap

import pytest

import torc
from torc.mapping import check_function, main

FAST = {"poll_interval": 0.1, "idle_timeout": 5}


@pytest.fixture
def module_dir(tmp_path):
    folder = tmp_path / "mods"
    folder.mkdir()
    (folder / "mapped_funcs.py").write_text(textwrap.dedent("""
        def square(params):
            if params.get("boom"):
                raise ValueError("boom requested")
            return {"x": params["x"], "y": params["x"] ** 2}

        def total(results):
            return sum(r["y"] for r in results)
    """))
    return folder


def test_mapped_jobs_run_and_postprocess(client, module_dir, tmp_path) -> None:
    with torc.connect(client.url) as api:
        workflow = api.workflows.create(name="mapped")
        jobs = torc.map_function_to_jobs(api, workflow.id, "mapped_funcs", "square", [{"x": i} for i in (1, 2, 3)],
                                         postprocess_func="total", module_directory=module_dir,
                                         name_prefix="sq_")
        assert [j["name"] for j in jobs] == ["sq_1", "sq_2", "sq_3", "sq_postprocess"]
        run = torc.run_workflow(workflow.id, client=api, output_dir=tmp_path / "out", **FAST)
        assert run.succeeded, run.job_counts
        results = torc.mapped_results(api, workflow.id, name_prefix="sq_")
        assert results == {"sq_1": {"x": 1, "y": 1}, "sq_2": {"x": 2, "y": 4}, "sq_3": {"x": 3, "y": 9},
                           "postprocess_result": 14}


def test_a_raising_function_fails_its_job_with_the_traceback(client, module_dir, tmp_path) -> None:
    workflow_id = client.create_workflow("mapped_fail")["id"]
    torc.map_function_to_jobs(client.url, workflow_id, "mapped_funcs", "square", [{"x": 1}, {"x": 2, "boom": True}],
                              module_directory=module_dir, start_index=10)
    run = torc.run_workflow(workflow_id, client=client, output_dir=tmp_path, **FAST)
    assert run.job_statuses == {"job_10": "completed", "job_11": "failed"}
    stderr = run.logs("job_11")["stderr"]
    assert "ValueError: boom requested" in stderr
    assert torc.mapped_results(client.url, workflow_id) == {"job_10": {"x": 1, "y": 1}, "job_11": None}


def test_mistakes_are_caught_before_any_job_is_created(client, module_dir) -> None:
    workflow_id = client.create_workflow("mapped_bad")["id"]
    with pytest.raises(torc.InvalidInputError, match="has no function 'sqaure'"):
        torc.map_function_to_jobs(client, workflow_id, "mapped_funcs", "sqaure", [{"x": 1}],
                                  module_directory=module_dir)
    with pytest.raises(torc.InvalidInputError, match="cannot import module"):
        torc.map_function_to_jobs(client, workflow_id, "no_such_module_xyz", "f", [{"x": 1}])
    with pytest.raises(torc.InvalidInputError, match="empty"):
        torc.map_function_to_jobs(client, workflow_id, "mapped_funcs", "square", [], module_directory=module_dir)
    with pytest.raises(torc.InvalidInputError, match="list of dicts"):
        torc.map_function_to_jobs(client, workflow_id, "mapped_funcs", "square", [1], module_directory=module_dir)
    assert list(client.iter_items("jobs", workflow_id=workflow_id)) == []
    assert callable(check_function("mapped_funcs", "total", module_dir))


def test_the_job_command_outside_a_job_fails_cleanly(capsys) -> None:
    assert main(["run-function"]) == 1
    assert "TORC_API_URL, TORC_WORKFLOW_ID, TORC_JOB_ID not set" in capsys.readouterr().err

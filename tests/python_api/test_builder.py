"""WorkflowBuilder: the same validation as spec files, and one call to create the workflow."""

from __future__ import annotations

import json

import pytest

import torc
from torc.spec.load import spec_from_data


def diamond() -> torc.WorkflowBuilder:
    wf = torc.WorkflowBuilder("diamond", description="d", project="p")
    wf.add_resource_requirements("small", num_cpus=1, memory="100m", runtime="PT1M")
    wf.add_file("raw", "/tmp/raw.txt")
    wf.add_file("a_out", "/tmp/a.txt")
    wf.add_user_data("settings", {"n": 3})
    pre = wf.add_job("pre", "echo pre", output_files=["raw"], resource_requirements="small")
    a = wf.add_job("a", "echo a", input_files="raw", output_files=["a_out"], input_user_data=["settings"])
    b = wf.add_job("b", "echo b", depends_on=pre)
    wf.add_job("post", "echo post", depends_on=[a, b])
    wf.add_failure_handler("retry_10", [{"exit_codes": [10], "max_retries": 2}])
    wf.add_action("on_workflow_start", "run_commands", commands=["echo start"])
    return wf


def test_to_spec_is_a_spec_file_dict() -> None:
    spec = diamond().to_spec()
    assert spec["name"] == "diamond" and spec["project"] == "p"
    assert [j["name"] for j in spec["jobs"]] == ["pre", "a", "b", "post"]
    assert spec["jobs"][1]["input_files"] == ["raw"]  # a single name becomes a list
    assert spec["jobs"][3]["depends_on"] == ["a", "b"]
    # it is exactly what a spec file holds: the spec loader takes it as is
    model, broken = spec_from_data(json.loads(diamond().to_json()), "<test>")
    assert not broken and len(model.jobs) == 4


def test_validate_reports_every_problem_like_a_spec_file() -> None:
    wf = torc.WorkflowBuilder("bad")
    wf.add_resource_requirements("huge", memory="lots")
    wf.add_job("x", "true", depends_on=["missing"])
    wf.add_job("y", "true", resource_requirements="nope", colour="red")
    with pytest.raises(torc.SpecError) as info:
        wf.validate()
    text = "\n".join(info.value.problems)
    assert "missing" in text
    assert "unknown key 'colour'" in text
    assert "lots" in text
    assert isinstance(info.value, torc.InvalidInputError)


def test_validate_finds_cycles() -> None:
    wf = torc.WorkflowBuilder("cycle")
    wf.add_job("a", "true", depends_on=["b"])
    wf.add_job("b", "true", depends_on=["a"])
    with pytest.raises(torc.SpecError, match="cycle"):
        wf.validate()


def test_parameters_expand_as_in_spec_files() -> None:
    wf = torc.WorkflowBuilder("params")
    wf.add_job("work_{i}", "echo {i}", parameters={"i": "1:3"})
    assert [j.name for j in wf.validate().jobs] == ["work_1", "work_2", "work_3"]


def test_create_makes_the_workflow_in_one_call(client) -> None:
    workflow_id = diamond().create(client, initialize=True)
    jobs = {j["name"]: j for j in client.iter_items("jobs", workflow_id=workflow_id, include_relationships=True)}
    assert set(jobs) == {"pre", "a", "b", "post"}
    assert jobs["pre"]["status"] == "ready"
    assert jobs["a"]["status"] == "blocked" and jobs["post"]["status"] == "blocked"
    assert set(jobs["post"]["depends_on_job_ids"]) == {jobs["a"]["id"], jobs["b"]["id"]}
    assert len(list(client.iter_items("user_data", workflow_id=workflow_id))) == 1
    assert len(client.get(f"workflows/{workflow_id}/actions")) == 1
    workflow = client.get(f"workflows/{workflow_id}")
    assert workflow["description"] == "d" and workflow["project"] == "p"


def test_create_accepts_a_url_and_a_typed_client(server) -> None:
    first = diamond().create(server.url)
    with torc.connect(server.url) as api:
        second = diamond().create(api)
        assert api.workflows.get(first).name == api.workflows.get(second).name == "diamond"


def test_create_with_an_invalid_spec_creates_nothing(client) -> None:
    before = client.get("workflows")["total_count"]
    wf = torc.WorkflowBuilder("invalid")
    wf.add_job("x", "true", depends_on=["nope"])
    with pytest.raises(torc.SpecError):
        wf.create(client)
    assert client.get("workflows")["total_count"] == before

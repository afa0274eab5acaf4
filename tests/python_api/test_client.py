"""The typed client (torc.connect / torc.TorcApi) against a real torc-server process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import torc
from torc.client.api import File, Job, ResourceRequirements, UserData, Workflow, auth_from_env


@pytest.fixture
def api(server) -> Iterator[torc.TorcApi]:
    with torc.connect(server.url) as client:
        yield client


def test_connect_reaches_the_server(api: torc.TorcApi, server) -> None:
    assert api.url == server.url
    assert api.ping()
    assert api.version()


def test_crud_through_typed_resources(api: torc.TorcApi) -> None:
    wf = api.workflows.create(name="typed", description="typed client test")
    assert isinstance(wf, Workflow) and wf.id and wf.name == "typed"
    rr = api.resource_requirements.create(workflow_id=wf.id, name="small", num_cpus=2, memory="1g", runtime="PT5M")
    assert isinstance(rr, ResourceRequirements) and rr.num_cpus == 2
    f = api.files.create(workflow_id=wf.id, name="in", path="/tmp/in.txt")
    assert isinstance(f, File) and f.path == "/tmp/in.txt"
    ud = api.user_data.create(workflow_id=wf.id, name="cfg", data={"a": 1})
    assert isinstance(ud, UserData) and ud.data == {"a": 1}
    job = api.jobs.create(workflow_id=wf.id, name="j1", command="echo 1", resource_requirements_id=rr.id,
                          input_file_ids=[f.id], input_user_data_ids=[ud.id])
    assert isinstance(job, Job) and job.status == "uninitialized"
    more = api.jobs.create_many([{"workflow_id": wf.id, "name": f"bulk{i}", "command": "true"} for i in range(3)])
    assert [j.name for j in more] == ["bulk0", "bulk1", "bulk2"]

    assert {j.name for j in api.jobs.list(wf.id)} == {"j1", "bulk0", "bulk1", "bulk2"}
    assert [j.name for j in api.jobs.list(wf.id, status="uninitialized")][:1] == ["j1"]
    assert api.jobs.get(job.id).command == "echo 1"
    updated = api.jobs.update(job.id, command="echo 2")
    assert updated.command == "echo 2" and api.jobs.get(job.id).command == "echo 2"
    assert api.user_data.update(ud.id, data={"a": 2}).data == {"a": 2}

    api.workflows.initialize(wf.id, force=True)
    counts = api.workflows.job_counts(wf.id)
    assert sum(counts.values()) == 4 and "uninitialized" not in counts
    assert api.workflows.status(wf.id).run_id >= 1
    assert api.workflows.is_complete(wf.id) is False

    api.jobs.delete(more[0].id)
    with pytest.raises(torc.NotFoundError):
        api.jobs.get(more[0].id)
    api.workflows.cancel(wf.id)
    assert api.workflows.status(wf.id).is_canceled is True
    assert api.workflows.is_complete(wf.id) is True
    api.workflows.delete(wf.id)
    with pytest.raises(torc.NotFoundError):
        api.workflows.get(wf.id)


def test_every_collection_lists(api: torc.TorcApi) -> None:
    wf = api.workflows.create(name="collections")
    for name in ("jobs", "files", "user_data", "resource_requirements", "results", "events", "compute_nodes",
                 "scheduled_compute_nodes", "slurm_schedulers", "local_schedulers"):
        assert isinstance(getattr(api, name).list(wf.id), list), name
    assert api.workflows.actions(wf.id) == []
    assert api.workflows.failure_handlers(wf.id) == []
    assert any(w.id == wf.id for w in api.workflows.list())


def test_server_errors_become_torc_errors(api: torc.TorcApi) -> None:
    with pytest.raises(torc.NotFoundError, match="999999"):
        api.workflows.get(999999)
    with pytest.raises(torc.TorcError):
        api.jobs.create(workflow_id=999999, name="x", command="true")


def test_unreachable_server_raises_server_unreachable() -> None:
    with torc.connect("http://127.0.0.1:9/torc-service/v1", timeout=2) as api, \
            pytest.raises(torc.ServerUnreachable):
        api.ping()


def test_auth_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert auth_from_env() is None
    monkeypatch.setenv("TORC_PASSWORD", "s3cret")
    monkeypatch.setenv("TORC_USER", "alice")
    assert auth_from_env() == ("alice", "s3cret")
    assert auth_from_env(user="bob", password="pw") == ("bob", "pw")
    api = torc.connect("http://127.0.0.1:9/torc-service/v1")
    assert api.raw.http.auth is not None
    api.close()

"""CRUD, listing and input validation for every REST resource of the torc server.

`api` (TorcClient) is used where a call must succeed; `http` (raw TestClient) where the test
asserts status codes and error bodies. Every test builds its own workflows in a fresh database.

Each test starts a fresh app, and FastAPI builds an app's routes lazily on its first requests,
which costs far more than the requests themselves; so checks that share their setup are grouped
into one test rather than parametrized one by one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers import assert_error, claim_all, create_many, make_jobs, make_workflow, run_job
from torc.core.errors import ConflictError, InvalidInputError, NotFoundError

MISSING = 999_999
ENVELOPE_KEYS = {"items", "offset", "max_limit", "count", "total_count", "has_more"}
ACCESS_ENVELOPE_KEYS = {"items", "offset", "limit", "total_count", "has_more"}  # the contract's access-group lists
DEFAULT_RR = {"name": "default", "num_cpus": 1, "num_gpus": 0, "num_nodes": 1, "memory": "1m", "runtime": "P0DT1M"}
JSON_HEADERS = {"content-type": "application/json"}


# ---- sample bodies for the generic workflow-scoped resources -------------------------------------


def _result_body(api, wf: int) -> dict[str, Any]:
    (job,) = make_jobs(api, wf, [{"name": "producer"}])
    return {"job_id": job["id"], "run_id": 1, "compute_node_id": 7, "return_code": 0, "exec_time_minutes": 0.5,
            "completion_time": "2026-01-01T00:00:00.000Z", "status": "completed", "peak_memory_bytes": 1024}


def _compute_node_body(api, wf: int) -> dict[str, Any]:
    return {"hostname": "node1", "pid": 4242, "start_time": "2026-01-01T00:00:00Z", "is_active": True, "num_cpus": 8,
            "memory_gb": 16.0, "num_gpus": 0, "num_nodes": 1, "compute_node_type": "local",
            "scheduler": {"scheduled_compute_node_id": 3}}


# segment -> (body builder without workflow_id, a change a PUT should apply)
SAMPLES: dict[str, tuple[Callable[[Any, int], dict[str, Any]], dict[str, Any]]] = {
    "files": (lambda api, wf: {"name": "input.csv", "path": "/data/input.csv", "st_mtime": 1.5},
              {"path": "/data/other.csv", "st_mtime": 2.5}),
    "user_data": (lambda api, wf: {"name": "params", "is_ephemeral": False, "data": {"alpha": 1}},
                  {"data": {"alpha": 2, "beta": [1, 2]}, "is_ephemeral": True}),
    "resource_requirements": (lambda api, wf: {"name": "big", "num_cpus": 4, "num_gpus": 1, "num_nodes": 1,
                                               "memory": "8g", "runtime": "PT2H"},
                              {"num_cpus": 8, "memory": "16g"}),
    "results": (_result_body, {"return_code": 3, "status": "failed"}),
    "events": (lambda api, wf: {"timestamp": 1_000, "data": {"category": "user", "message": "hi"}},
               {"data": {"category": "user", "message": "bye"}}),
    "compute_nodes": (_compute_node_body, {"is_active": False, "duration_seconds": 12.5}),
    "scheduled_compute_nodes": (lambda api, wf: {"scheduler_id": 1, "scheduler_config_id": 2,
                                                 "scheduler_type": "slurm", "status": "pending"},
                                {"status": "active"}),
    "slurm_schedulers": (lambda api, wf: {"name": "short", "account": "proj", "nodes": 1, "walltime": "01:00:00",
                                          "partition": "debug"},
                         {"walltime": "04:00:00", "nodes": 2}),
    "local_schedulers": (lambda api, wf: {"name": "local", "num_cpus": 4, "memory": "8g"}, {"num_cpus": 2}),
}
SEGMENTS = list(SAMPLES)
LIST_ALL = {"results": {"all_runs": True}}  # results listings show only current results unless all_runs is set


def sample(api, segment: str, wf: int) -> dict[str, Any]:
    return {"workflow_id": wf, **SAMPLES[segment][0](api, wf)}


def create(api, segment: str, wf: int) -> dict[str, Any]:
    return api.post(segment, sample(api, segment, wf))


def listing(api, segment: str, wf: int, **params: Any) -> dict[str, Any]:
    return api.get(segment, workflow_id=wf, **{**LIST_ALL.get(segment, {}), **params})


# ---- generic CRUD over the workflow-scoped resources ---------------------------------------------


@pytest.mark.parametrize("segment", SEGMENTS)
def test_create_get_update_delete(api, http, segment):
    wf, other = make_workflow(api), make_workflow(api, "other")
    body = sample(api, segment, wf)

    created = api.post(segment, body)
    assert isinstance(created["id"], int)
    assert {k: created[k] for k in body} == body
    path = f"{segment}/{created['id']}"
    assert api.get(path) == created

    assert api.put(path, created) == created, "echoing the model back must change nothing"
    assert api.get(path) == created

    change = SAMPLES[segment][1]
    updated = api.put(path, {**created, **change})
    assert updated == {**created, **change}
    assert api.get(path) == updated

    assert_error(http.put(path, json={**updated, "workflow_id": other}), 422, "workflow_id")
    assert api.get(path) == updated

    assert api.delete(path) == updated
    for method, kwargs in (("get", {}), ("put", {"json": updated}), ("delete", {})):
        assert_error(getattr(http, method)(path, **kwargs), 404, "not found", str(created["id"]))


@pytest.mark.parametrize("segment", SEGMENTS)
def test_list_and_delete_all_are_scoped_to_one_workflow(api, segment):
    wf, other = make_workflow(api), make_workflow(api, "other")
    mine = [create(api, segment, wf), create(api, segment, wf)]
    theirs = create(api, segment, other)

    page = listing(api, segment, wf)
    assert set(page) == ENVELOPE_KEYS
    assert [i for i in page["items"] if i.get("name") != "default"] == mine
    assert page["count"] == len(page["items"]) == page["total_count"]
    assert (page["offset"], page["has_more"]) == (0, False) and page["max_limit"] >= page["count"]

    deleted = api.delete(segment, workflow_id=wf)["count"]
    left = listing(api, segment, wf)
    assert deleted + left["total_count"] == page["total_count"]
    assert [i for i in left["items"] if i.get("name") != "default"] == []  # the default RR may be kept
    assert theirs in listing(api, segment, other)["items"]


@pytest.mark.parametrize("segment", [*SEGMENTS, "jobs"])
def test_bad_requests_are_rejected_and_change_nothing(api, http, segment):
    wf = make_workflow(api)
    body = {"workflow_id": wf, "name": "j", "command": "c"} if segment == "jobs" else sample(api, segment, wf)
    api.post(segment, body)
    before = api.get(segment, workflow_id=wf, **LIST_ALL.get(segment, {}))
    jobs_before = api.get("jobs", workflow_id=wf)

    assert_error(http.post(segment, json={**body, "workflow_id": MISSING}), 404, "workflow", str(MISSING))
    assert_error(http.post(segment, json={k: v for k, v in body.items() if k != "workflow_id"}), 422, "workflow_id")
    assert_error(http.post(segment, json={**body, "workflow_id": "one"}), 422, "workflow_id")
    assert_error(http.post(segment, json=[body]), 422)
    assert_error(http.post(segment, content=b'{"workflow_id": 1,', headers=JSON_HEADERS), 422, "JSON")

    assert_error(http.get(segment), 422, "workflow_id")
    assert_error(http.get(segment, params={"workflow_id": "abc"}), 422, "workflow_id")
    assert_error(http.get(segment, params={"workflow_id": MISSING}), 404, "workflow")
    assert_error(http.delete(segment, params={"workflow_id": MISSING}), 404, "workflow")
    assert_error(http.get(f"{segment}/abc"), 422, "id")

    injection = http.get(segment, params={"workflow_id": wf, "sort_by": "name; DROP TABLE job"})
    assert_error(injection, 422, "sort")
    assert_error(http.get(segment, params={"workflow_id": wf, "sort_by": "no_such_column"}), 422, "no_such_column")
    assert api.get(segment, workflow_id=wf, **LIST_ALL.get(segment, {})) == before
    assert api.get("jobs", workflow_id=wf) == jobs_before  # the job table is still there, unchanged


# ---- paging and sorting ---------------------------------------------------------------------------


def _make_25(api, kind: str) -> tuple[str, dict[str, Any], list[int]]:
    """25 records of one kind; returns (list path, list params, ids in creation order)."""
    if kind == "workflows":
        return "workflows", {}, [make_workflow(api, f"w{i:02d}") for i in range(25)]
    wf = make_workflow(api)
    if kind == "jobs":
        jobs = make_jobs(api, wf, [{"name": f"j{(i * 7) % 25:02d}"} for i in range(25)])
        return "jobs", {"workflow_id": wf}, [j["id"] for j in jobs]
    files = create_many(api, "files", [{"workflow_id": wf, "name": f"f{(i * 7) % 25:02d}", "path": f"/p/{i}"}
                                       for i in range(25)])
    return "files", {"workflow_id": wf}, [f["id"] for f in files]


@pytest.mark.parametrize("kind", ["files", "jobs", "workflows"])
def test_paging_and_sorting(api, kind):
    path, params, ids = _make_25(api, kind)

    seen = []
    for offset, count, has_more in [(0, 10, True), (10, 10, True), (20, 5, False)]:
        page = api.get(path, offset=offset, limit=10, **params)
        assert (page["offset"], page["count"], page["total_count"], page["has_more"]) == (offset, count, 25, has_more)
        assert len(page["items"]) == count
        seen += [item["id"] for item in page["items"]]
    assert seen == sorted(ids)
    past_end = api.get(path, offset=30, limit=10, **params)
    assert (past_end["items"], past_end["has_more"], past_end["total_count"]) == ([], False, 25)
    empty = api.get(path, limit=0, **params)
    assert (empty["count"], empty["has_more"]) == (0, True)
    huge = api.get(path, limit=10**6, **params)  # clamped to max_limit, not an error
    assert (huge["count"], huge["has_more"]) == (25, False) and huge["max_limit"] < 10**6

    names = [i["name"] for i in api.get(path, sort_by="name", **params)["items"]]
    assert names == sorted(names) and len(set(names)) == 25
    assert [i["name"] for i in api.get(path, sort_by="name", reverse_sort=True, **params)["items"]] == names[::-1]
    assert [i["id"] for i in api.get(path, reverse_sort=True, **params)["items"]] == sorted(ids, reverse=True)
    second_page = api.get(path, sort_by="name", offset=10, limit=10, **params)["items"]
    assert [i["name"] for i in second_page] == names[10:20]


def test_bad_paging_values_are_422(api, http):
    wf = make_workflow(api)
    for path in ("files", "jobs", "events", "workflows", "access_groups", f"workflows/{wf}/failure_handlers"):
        for param in ("limit", "offset"):
            assert_error(http.get(path, params={"workflow_id": wf, param: -1}), 422, param)
            assert_error(http.get(path, params={"workflow_id": wf, param: "ten"}), 422, param)


# ---- resource-specific list filters ---------------------------------------------------------------


def test_file_filters(api, http):
    wf = make_workflow(api)
    raw, out, other = create_many(api, "files", [{"workflow_id": wf, "name": n, "path": f"/d/{n}"}
                                                 for n in ("raw", "out", "other")])
    producer, consumer = make_jobs(api, wf, [
        {"name": "p", "input_file_ids": [raw["id"]], "output_file_ids": [out["id"]]},
        {"name": "c", "input_file_ids": [out["id"]]},
    ])

    def ids(**params):
        return [f["id"] for f in api.get("files", workflow_id=wf, **params)["items"]]

    assert ids(produced_by_job_id=producer["id"]) == [out["id"]]
    assert ids(produced_by_job_id=consumer["id"]) == []
    assert ids(is_output=True) == [out["id"]]
    assert ids(is_output=False) == [raw["id"], other["id"]]
    assert ids(name="other") == [other["id"]]
    # "path" collides with the client's own argument, so this one goes over raw HTTP
    by_path = http.get("files", params={"workflow_id": wf, "path": "/d/raw"}).json()
    assert [f["id"] for f in by_path["items"]] == [raw["id"]]


def test_user_data_consumer_and_producer(api, http):
    wf, other = make_workflow(api), make_workflow(api, "other")
    producer, consumer = make_jobs(api, wf, [{"name": "p"}, {"name": "c"}])
    linked = api.post("user_data", {"workflow_id": wf, "name": "shared", "data": {"x": 1}},
                      consumer_job_id=consumer["id"], producer_job_id=producer["id"])
    plain = api.post("user_data", {"workflow_id": wf, "name": "plain", "is_ephemeral": True})
    via_job_a, via_job_b = create_many(api, "user_data", [{"workflow_id": wf, "name": n} for n in ("in", "out")])
    (job,) = make_jobs(api, wf, [{"name": "j", "input_user_data_ids": [via_job_a["id"]],
                                  "output_user_data_ids": [via_job_b["id"]]}])

    def ids(**params):
        return [u["id"] for u in api.get("user_data", workflow_id=wf, **params)["items"]]

    assert ids(consumer_job_id=consumer["id"]) == [linked["id"]]
    assert ids(producer_job_id=producer["id"]) == [linked["id"]]
    assert ids(consumer_job_id=producer["id"]) == []
    assert ids(consumer_job_id=job["id"]) == [via_job_a["id"]]
    assert ids(producer_job_id=job["id"]) == [via_job_b["id"]]
    assert ids(is_ephemeral=True) == [plain["id"]]
    assert ids(name="shared") == [linked["id"]]
    assert api.get(f"jobs/{consumer['id']}")["input_user_data_ids"] == [linked["id"]]
    assert api.get(f"jobs/{producer['id']}")["output_user_data_ids"] == [linked["id"]]

    (foreign,) = make_jobs(api, other, [{"name": "elsewhere"}])
    before = api.get("user_data", workflow_id=wf)
    for link in ("consumer_job_id", "producer_job_id"):
        for job_id in (MISSING, foreign["id"]):
            response = http.post("user_data", params={link: job_id}, json={"workflow_id": wf, "name": "bad"})
            assert_error(response, 404, link)
        assert_error(http.post("user_data", params={link: "x"}, json={"workflow_id": wf, "name": "bad"}), 422, link)
    assert api.get("user_data", workflow_id=wf) == before, "a rejected create must not leave a record behind"


def test_job_filters_and_relationships(api, http):
    wf = make_workflow(api)
    f_in, f_out = create_many(api, "files", [{"workflow_id": wf, "name": n, "path": n} for n in ("in", "out")])
    (a,) = make_jobs(api, wf, [{"name": "a", "output_file_ids": [f_out["id"]]}])
    b, c = make_jobs(api, wf, [{"name": "b", "depends_on_job_ids": [a["id"]], "input_file_ids": [f_in["id"]]},
                               {"name": "c"}])
    api.post(f"workflows/{wf}/initialize_jobs")

    def names(**params):
        return [j["name"] for j in api.get("jobs", workflow_id=wf, **params)["items"]]

    assert names(status="ready") == ["a", "c"]
    assert names(status="blocked") == ["b"]
    assert names(status="BLOCKED") == ["b"]
    assert names(status="completed") == []
    assert names(upstream_job_id=a["id"]) == ["b"]
    assert names(upstream_job_id=c["id"]) == []
    assert names(needs_file_id=f_in["id"]) == ["b"]
    assert names(needs_file_id=f_out["id"]) == []
    assert names(sort_by="status", reverse_sort=True) == ["c", "a", "b"]  # ready (2) before blocked (1)
    assert_error(http.get("jobs", params={"workflow_id": wf, "status": "exploded"}), 422, "status")

    plain = api.get("jobs", workflow_id=wf)["items"]
    assert not any(key.endswith("_ids") for job in plain for key in job)
    full = {j["name"]: j for j in api.get("jobs", workflow_id=wf, include_relationships=True)["items"]}
    assert full["a"]["output_file_ids"] == [f_out["id"]]
    assert (full["b"]["depends_on_job_ids"], full["b"]["input_file_ids"]) == ([a["id"]], [f_in["id"]])
    assert full["b"] == api.get(f"jobs/{b['id']}")


def test_results_list_current_by_default_all_runs_on_request(api, http):
    wf = make_workflow(api)
    make_jobs(api, wf, [{"name": "flaky"}])
    api.post(f"workflows/{wf}/initialize_jobs")
    run_id = api.run_id(wf)
    (job,) = claim_all(api, wf)
    run_job(api, job, run_id, return_code=1)
    api.post(f"jobs/{job['id']}/retry/{run_id}", max_retries=2)
    (job,) = claim_all(api, wf)
    run_job(api, job, run_id, return_code=0)

    current = api.get("results", workflow_id=wf)
    assert current["total_count"] == 1
    assert (current["items"][0]["status"], current["items"][0]["return_code"]) == ("completed", 0)
    assert api.get("results", workflow_id=wf, all_runs=False) == current
    everything = api.get("results", workflow_id=wf, all_runs=True)
    assert sorted(r["status"] for r in everything["items"]) == ["completed", "failed"]
    assert api.get("results", workflow_id=wf, all_runs=True, status="failed")["items"][0]["return_code"] == 1
    assert api.get("results", workflow_id=wf, all_runs=True, return_code=0)["total_count"] == 1
    assert api.get("results", workflow_id=wf, all_runs=True, job_id=job["id"])["total_count"] == 2
    assert api.get("results", workflow_id=wf, all_runs=True, run_id=run_id + 1)["total_count"] == 0
    assert_error(http.get("results", params={"workflow_id": wf, "status": "exploded"}), 422, "status")


def test_event_filters(api):
    wf = make_workflow(api)
    create_many(api, "events", [{"workflow_id": wf, "timestamp": ts, "data": {"category": cat}}
                                for ts, cat in [(1_000, "a"), (2_000, "b"), (3_000, "a")]])

    def stamps(**params):
        return [e["timestamp"] for e in api.get("events", workflow_id=wf, **params)["items"]]

    assert stamps(after_timestamp=1_000) == [2_000, 3_000]
    assert stamps(after_timestamp=3_000) == []
    assert stamps(category="a") == [1_000, 3_000]
    assert stamps(category="a", after_timestamp=1_500) == [3_000]
    assert stamps(sort_by="timestamp", reverse_sort=True) == [3_000, 2_000, 1_000]
    unstamped = api.post("events", {"workflow_id": wf, "data": {"category": "now"}})
    assert isinstance(unstamped["timestamp"], int) and unstamped["timestamp"] > 1_600_000_000_000


def test_resource_requirements_filters(api):
    wf = make_workflow(api)
    big = api.post("resource_requirements", {"workflow_id": wf, "name": "big", "num_cpus": 16, "runtime": "PT1H"})
    (job,) = make_jobs(api, wf, [{"name": "j", "resource_requirements_id": big["id"]}])

    def names(**params):
        return [r["name"] for r in api.get("resource_requirements", workflow_id=wf, **params)["items"]]

    assert names(job_id=job["id"]) == ["big"]
    assert names(num_cpus=1) == ["default"]
    assert names(name="big") == ["big"]
    assert names(runtime=3600) == ["big"]
    assert names(sort_by="num_cpus", reverse_sort=True) == ["big", "default"]


def test_compute_node_filters(api):
    wf = make_workflow(api)
    active = create(api, "compute_nodes", wf)
    idle = api.post("compute_nodes", {**sample(api, "compute_nodes", wf), "hostname": "node2", "is_active": False,
                                      "scheduler": {"scheduled_compute_node_id": 9}})

    def ids(**params):
        return [n["id"] for n in api.get("compute_nodes", workflow_id=wf, **params)["items"]]

    assert ids(is_active=True) == [active["id"]]
    assert ids(is_active=False) == [idle["id"]]
    assert ids(hostname="node2") == [idle["id"]]
    assert ids(scheduled_compute_node_id=3) == [active["id"]]


def test_workflow_list_filters(api):
    mine = make_workflow(api, "alpha")
    api.post("workflows", {"name": "beta", "user": "someone_else"})
    assert [w["id"] for w in api.get("workflows", user="tester")["items"]] == [mine]
    assert [w["name"] for w in api.get("workflows", name="beta")["items"]] == ["beta"]
    assert api.get("workflows", is_archived=True)["total_count"] == 0
    api.put(f"workflows/{mine}/status", {"is_archived": True})
    assert [w["id"] for w in api.get("workflows", is_archived=True)["items"]] == [mine]
    assert [w["name"] for w in api.get("workflows", is_archived=False)["items"]] == ["beta"]


# ---- workflows ------------------------------------------------------------------------------------


def test_workflow_crud(api, http):
    created = api.post("workflows", {"name": "wf", "user": "tester", "description": "d", "project": "p"})
    assert isinstance(created["id"], int) and (created["description"], created["project"]) == ("d", "p")
    path = f"workflows/{created['id']}"
    assert api.get(path) == created
    assert api.put(path, created) == created
    assert api.get(path) == created

    updated = api.put(path, {**created, "description": "new", "jobs_sort_method": "none",
                             "timestamp": "1999-01-01T00:00:00Z"})
    assert (updated["description"], updated["jobs_sort_method"]) == ("new", "none")
    assert updated["timestamp"] == created["timestamp"], "timestamp is immutable"

    assert_error(http.put(path, json={**updated, "jobs_sort_method": "fastest"}), 422, "jobs_sort_method")
    assert api.get(path) == updated

    assert api.delete(path) == updated
    for method, kwargs in (("get", {}), ("put", {"json": {}}), ("delete", {})):
        assert_error(getattr(http, method)(path, **kwargs), 404, "workflow", str(created["id"]))


def test_create_workflow_rejects_bad_input(api, http):
    for body, field in [
        ({"user": "u"}, "name"),
        ({"name": "w"}, "user"),
        ({"name": "w", "user": "u", "jobs_sort_method": "fastest"}, "jobs_sort_method"),
        ({"name": "w", "user": "u", "compute_node_wait_for_new_jobs_seconds": "soon"},
         "compute_node_wait_for_new_jobs_seconds"),
        ({"name": "w", "user": "u", "use_pending_failed": "maybe"}, "use_pending_failed"),
        ({"name": 3, "user": "u"}, "name"),
    ]:
        assert_error(http.post("workflows", json=body), 422, field)
    assert api.get("workflows")["total_count"] == 0


def test_delete_workflow_cascades_to_everything_it_owns(api, http):
    wf, survivor = make_workflow(api), make_workflow(api, "survivor")
    owned = {segment: create(api, segment, wf) for segment in SEGMENTS}
    (job,) = make_jobs(api, wf, [{"name": "j"}])
    owned["jobs"] = job
    owned["failure_handlers"] = api.post("failure_handlers", {"workflow_id": wf, "name": "fh", "rules": "[]"})
    group = api.post("access_groups", {"name": "team"})
    api.post(f"workflows/{wf}/access_groups", {"group_id": group["id"]})
    api.post(f"workflows/{wf}/remote_workers", ["host1"])
    kept = create(api, "files", survivor)

    assert api.delete(f"workflows/{wf}")["id"] == wf

    for segment, record in owned.items():
        assert_error(http.get(f"{segment}/{record['id']}"), 404, "not found")
    for sub in ("status", "remote_workers", "access_groups", "failure_handlers"):
        assert_error(http.get(f"workflows/{wf}/{sub}"), 404, "workflow")
    assert api.get(f"access_groups/{group['id']}") == group  # groups outlive the workflows they were linked to
    assert api.get(f"files/{kept['id']}") == kept
    assert [w["id"] for w in api.get("workflows")["items"]] == [survivor]


# ---- the default resource requirements ------------------------------------------------------------


def test_default_resource_requirements(api, http):
    wf = make_workflow(api)
    (default,) = api.get("resource_requirements", workflow_id=wf)["items"]
    assert {k: default[k] for k in DEFAULT_RR} == DEFAULT_RR and default["workflow_id"] == wf

    assert_error(http.post("resource_requirements", json={"workflow_id": wf, "name": "default"}), 422, "default")
    assert api.get("resource_requirements", workflow_id=wf)["total_count"] == 1

    big = api.post("resource_requirements", {"workflow_id": wf, "name": "big", "num_cpus": 8})
    single = api.post("jobs", {"workflow_id": wf, "name": "single", "command": "true"})
    bulk, explicit = make_jobs(api, wf, [{"name": "bulk"}, {"name": "explicit", "resource_requirements_id": big["id"]}])
    assert single["resource_requirements_id"] == bulk["resource_requirements_id"] == default["id"]
    assert explicit["resource_requirements_id"] == big["id"]

    rename = http.put(f"resource_requirements/{default['id']}", json={**default, "name": "renamed"})
    assert_error(rename, 422, "default")
    edited = api.put(f"resource_requirements/{default['id']}", {**default, "num_cpus": 2, "memory": "2g"})
    assert (edited["name"], edited["num_cpus"], edited["memory"]) == ("default", 2, "2g")
    assert_error(http.put(f"resource_requirements/{big['id']}", json={**big, "name": "default"}), 422, "default")
    assert api.get("resource_requirements", workflow_id=wf, name="default")["items"] == [edited]


def test_rr_in_use_cannot_be_deleted(api, http):
    wf = make_workflow(api)
    big = api.post("resource_requirements", {"workflow_id": wf, "name": "big"})
    make_jobs(api, wf, [{"name": "j", "resource_requirements_id": big["id"]}])
    assert_error(http.delete(f"resource_requirements/{big['id']}"), 422, "used")
    assert_error(http.delete("resource_requirements", params={"workflow_id": wf}), 422, "used")
    assert api.get("resource_requirements", workflow_id=wf)["total_count"] == 2


def test_rr_rejects_invalid_values(api, http):
    wf = make_workflow(api)
    rr = api.post("resource_requirements", {"workflow_id": wf, "name": "r"})
    for change, fragment in [({"memory": "lots"}, "memory"), ({"runtime": "soon"}, "runtime"),
                             ({"num_cpus": -1}, "num_cpus"), ({"num_gpus": -1}, "num_gpus"),
                             ({"num_nodes": 0}, "num_nodes"), ({"num_cpus": "many"}, "num_cpus")]:
        assert_error(http.post("resource_requirements", json={"workflow_id": wf, "name": "x", **change}), 422, fragment)
        assert_error(http.put(f"resource_requirements/{rr['id']}", json={**rr, **change}), 422, fragment)
    assert api.get(f"resource_requirements/{rr['id']}") == rr
    assert api.get("resource_requirements", workflow_id=wf)["total_count"] == 2


@pytest.mark.parametrize("how", ["one", "all"])
def test_jobs_always_get_resource_requirements(api, http, how):
    wf = make_workflow(api)
    (default,) = api.get("resource_requirements", workflow_id=wf)["items"]
    if how == "one":
        response = http.delete(f"resource_requirements/{default['id']}")
    else:
        response = http.delete("resource_requirements", params={"workflow_id": wf})
    assert response.status_code in (200, 422), response.text
    (job,) = make_jobs(api, wf, [{"name": "j"}])
    assert job.get("resource_requirements_id") is not None
    assert api.get(f"resource_requirements/{job['resource_requirements_id']}")["workflow_id"] == wf
    api.post(f"workflows/{wf}/initialize_jobs")
    assert api.get(f"workflows/{wf}/ready_job_requirements")["num_jobs"] == 1


# ---- jobs CRUD ------------------------------------------------------------------------------------


def test_job_crud(api, http):
    wf, other = make_workflow(api), make_workflow(api, "other")
    created = api.post("jobs", {"workflow_id": wf, "name": "j", "command": "echo hi", "supports_termination": True})
    assert (created["status"], created["supports_termination"], created["attempt_id"]) == ("uninitialized", True, 1)
    assert created["cancel_on_blocking_job_failure"] is True
    path = f"jobs/{created['id']}"
    assert api.get(path) == created
    assert api.put(path, created) == created
    assert api.get(path) == created
    assert api.delete(path) == created
    for method, kwargs in (("get", {}), ("put", {"json": created}), ("delete", {})):
        assert_error(getattr(http, method)(path, **kwargs), 404, "job", str(created["id"]))

    make_jobs(api, wf, [{"name": "a"}, {"name": "b"}])
    (kept,) = make_jobs(api, other, [{"name": "c"}])
    assert api.delete("jobs", workflow_id=wf) == {"count": 2}
    assert api.get("jobs", workflow_id=wf)["total_count"] == 0
    assert api.get(f"jobs/{kept['id']}") == kept


def test_deleting_a_job_removes_its_edges_and_results(api):
    wf = make_workflow(api)
    (a,) = make_jobs(api, wf, [{"name": "a"}])
    (b,) = make_jobs(api, wf, [{"name": "b", "depends_on_job_ids": [a["id"]]}])
    result = api.post("results", {**_result_body(api, wf), "workflow_id": wf, "job_id": a["id"]})
    api.delete(f"jobs/{a['id']}")
    assert "depends_on_job_ids" not in api.get(f"jobs/{b['id']}")
    with pytest.raises(NotFoundError):
        api.get(f"results/{result['id']}")


def test_result_must_belong_to_a_job_of_its_workflow(api, http):
    wf, other = make_workflow(api), make_workflow(api, "other")
    body = {**_result_body(api, wf), "workflow_id": wf}
    (foreign,) = make_jobs(api, other, [{"name": "x"}])
    assert_error(http.post("results", json={**body, "job_id": MISSING}), 404, "job")
    assert_error(http.post("results", json={**body, "job_id": foreign["id"]}), 422, "workflow")
    assert_error(http.post("results", json={**body, "status": "exploded"}), 422, "status")
    assert api.get("results", workflow_id=wf, all_runs=True)["total_count"] == 0


# ---- update_job rules -----------------------------------------------------------------------------


@pytest.fixture
def ready_job(api) -> dict[str, Any]:
    """A job that has been initialized (status ready), so only some fields may change."""
    wf = make_workflow(api)
    (job,) = make_jobs(api, wf, [{"name": "j"}])
    api.post(f"workflows/{wf}/initialize_jobs")
    job = api.get(f"jobs/{job['id']}")
    assert job["status"] == "ready"
    return job


def test_uninitialized_job_fields_are_editable(api):
    wf = make_workflow(api)
    handler = api.post("failure_handlers", {"workflow_id": wf, "name": "fh", "rules": "[]"})
    (job,) = make_jobs(api, wf, [{"name": "j"}])
    change = {"name": "renamed", "command": "echo new", "invocation_script": "bash", "supports_termination": True,
              "cancel_on_blocking_job_failure": False, "failure_handler_id": handler["id"]}
    updated = api.put(f"jobs/{job['id']}", {**job, **change})
    assert updated == {**job, **change}
    assert api.get(f"jobs/{job['id']}") == updated


def test_initialized_job_fields_are_frozen(api, http, ready_job):
    path = f"jobs/{ready_job['id']}"
    assert api.put(path, ready_job) == ready_job, "echoing the model back must succeed"
    for change in ({"name": "renamed"}, {"command": "echo other"}, {"invocation_script": "bash -x"},
                   {"cancel_on_blocking_job_failure": False}, {"supports_termination": True}):
        assert_error(http.put(path, json={**ready_job, **change}), 422, next(iter(change)), "uninitialized")
    assert api.get(path) == ready_job


def test_rr_and_scheduler_change_any_time(api, ready_job):
    wf = ready_job["workflow_id"]
    big = api.post("resource_requirements", {"workflow_id": wf, "name": "big"})
    slurm = create(api, "slurm_schedulers", wf)
    change = {"resource_requirements_id": big["id"], "scheduler_id": slurm["id"]}
    updated = api.put(f"jobs/{ready_job['id']}", {**ready_job, **change})
    assert updated == {**ready_job, **change}
    assert api.get(f"jobs/{ready_job['id']}") == updated


def test_job_references_must_exist_in_the_jobs_workflow(api, http, ready_job):
    path = f"jobs/{ready_job['id']}"
    (foreign,) = api.get("resource_requirements", workflow_id=make_workflow(api, "other"))["items"]
    for rr in (MISSING, foreign["id"]):
        assert_error(http.put(path, json={**ready_job, "resource_requirements_id": rr}), 404, "resource requirements")
    assert_error(http.put(path, json={**ready_job, "resource_requirements_id": None}), 422, "resource_requirements_id")
    assert api.get(path) == ready_job

    (fresh,) = make_jobs(api, ready_job["workflow_id"], [{"name": "fresh"}])
    response = http.put(f"jobs/{fresh['id']}", json={**fresh, "failure_handler_id": MISSING})
    assert_error(response, 404, "failure handler")
    assert api.get(f"jobs/{fresh['id']}") == fresh


def test_job_status_may_only_change_to_disabled(api, http, ready_job):
    path = f"jobs/{ready_job['id']}"
    for status in ("uninitialized", "blocked", "pending", "running", "completed", "failed", "pending_failed"):
        assert_error(http.put(path, json={**ready_job, "status": status}), 422, "disabled")
    for status in ("exploded", 42, ""):
        assert_error(http.put(path, json={**ready_job, "status": status}), 422, "status")
    assert api.get(path) == ready_job
    assert api.put(path, {**ready_job, "status": "DISABLED"})["status"] == "disabled"
    assert api.get(path)["status"] == "disabled"


def test_job_relationship_lists_are_immutable(api, http):
    wf = make_workflow(api)
    f1, f2 = create_many(api, "files", [{"workflow_id": wf, "name": n, "path": n} for n in ("f1", "f2")])
    u1, u2 = create_many(api, "user_data", [{"workflow_id": wf, "name": n} for n in ("u1", "u2")])
    up1, up2 = make_jobs(api, wf, [{"name": "up1"}, {"name": "up2"}])
    (job,) = make_jobs(api, wf, [{
        "name": "j", "depends_on_job_ids": [up1["id"]], "input_file_ids": [f1["id"]], "output_file_ids": [f2["id"]],
        "input_user_data_ids": [u1["id"]], "output_user_data_ids": [u2["id"]],
    }])
    path = f"jobs/{job['id']}"
    replacements = {"depends_on_job_ids": up2["id"], "input_file_ids": f2["id"], "output_file_ids": f1["id"],
                    "input_user_data_ids": u2["id"], "output_user_data_ids": u1["id"]}
    for field, replacement in replacements.items():
        for new in ([replacement], [*job[field], replacement], []):
            assert_error(http.put(path, json={**job, field: new}), 422, field)
        assert api.put(path, {**job, field: job[field] * 2}) == job, "the same ids, repeated, are no change"
    assert api.get(path) == job


def test_rejected_job_update_applies_no_part_of_it(api, http, ready_job):
    wf, other = ready_job["workflow_id"], make_workflow(api, "other")
    big = api.post("resource_requirements", {"workflow_id": wf, "name": "big"})
    path = f"jobs/{ready_job['id']}"
    assert_error(http.put(path, json={**ready_job, "resource_requirements_id": big["id"], "name": "renamed"}), 422,
                 "name")
    assert_error(http.put(path, json={**ready_job, "resource_requirements_id": big["id"], "workflow_id": other}), 422,
                 "workflow_id")
    assert_error(http.put(path, json={**ready_job, "scheduler_id": 5, "status": "completed"}), 422, "disabled")
    assert api.get(path) == ready_job


def test_update_job_rejects_empty_name_and_command(api, http):
    wf = make_workflow(api)
    (job,) = make_jobs(api, wf, [{"name": "j"}])
    for field in ("name", "command"):
        for empty in ("", "   "):
            assert_error(http.put(f"jobs/{job['id']}", json={**job, field: empty}), 422, field, "empty")
    assert api.get(f"jobs/{job['id']}") == job


# ---- /bulk_jobs -----------------------------------------------------------------------------------


def test_bulk_jobs_response(api, http):
    wf = make_workflow(api)
    assert api.post("bulk_jobs", {"jobs": []}) == {"jobs": []}

    names = ["zeta", "alpha", "mid", "beta"]
    response = http.post("bulk_jobs", json={"jobs": [{"workflow_id": wf, "name": n, "command": f"run {n}"}
                                                     for n in names]})
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["jobs"]
    jobs = body["jobs"]
    assert [j["name"] for j in jobs] == names
    assert [j["command"] for j in jobs] == [f"run {n}" for n in names]
    assert all(type(j["id"]) is int and type(j["workflow_id"]) is int for j in jobs)
    assert {j["status"] for j in jobs} == {"uninitialized"}
    assert [j["id"] for j in jobs] == sorted(j["id"] for j in jobs)

    (disabled,) = make_jobs(api, wf, [{"name": "off", "status": "DISABLED"}])
    assert disabled["status"] == "disabled"


def test_bulk_jobs_returns_relationships(api):
    wf = make_workflow(api)
    (f,) = create_many(api, "files", [{"workflow_id": wf, "name": "f", "path": "/f"}])
    a, b = make_jobs(api, wf, [{"name": "a", "output_file_ids": [f["id"]]}, {"name": "b", "input_file_ids": [f["id"]]}])
    (c,) = make_jobs(api, wf, [{"name": "c", "depends_on_job_ids": [b["id"], a["id"], a["id"]]}])
    assert (a["output_file_ids"], b["input_file_ids"]) == ([f["id"]], [f["id"]])
    assert c["depends_on_job_ids"] == sorted([a["id"], b["id"]])
    assert api.get(f"jobs/{c['id']}") == c


def test_large_bulk_batch_keeps_order_and_ids_are_never_reused(api):
    wf = make_workflow(api)
    (root,) = make_jobs(api, wf, [{"name": "root"}])
    jobs = make_jobs(api, wf, [{"name": f"j{i}", "depends_on_job_ids": [root["id"]]} for i in range(1_200)])
    assert [j["name"] for j in jobs] == [f"j{i}" for i in range(1_200)]
    assert all(j["depends_on_job_ids"] == [root["id"]] for j in jobs)
    assert api.get("jobs", workflow_id=wf, upstream_job_id=root["id"])["total_count"] == 1_200
    api.delete(f"jobs/{jobs[-1]['id']}")
    (new,) = make_jobs(api, wf, [{"name": "new"}])
    assert new["id"] > jobs[-1]["id"]


def test_bulk_jobs_workflow_rules(api, http):
    wf, other = make_workflow(api), make_workflow(api, "other")
    mixed = [{"workflow_id": wf, "name": "a", "command": "c"}, {"workflow_id": other, "name": "b", "command": "c"}]
    assert_error(http.post("bulk_jobs", json={"jobs": mixed}), 422, "workflow_id")
    unknown = [{"workflow_id": MISSING, "name": "a", "command": "c"}]
    assert_error(http.post("bulk_jobs", json={"jobs": unknown}), 404, "workflow", str(MISSING))
    assert api.get("jobs", workflow_id=wf)["total_count"] == api.get("jobs", workflow_id=other)["total_count"] == 0


def test_bulk_jobs_one_bad_job_fails_the_whole_batch(api, http):
    wf, other = make_workflow(api), make_workflow(api, "other")
    (foreign_job,) = make_jobs(api, other, [{"name": "x"}])
    foreign_file = create(api, "files", other)
    (foreign_rr,) = api.get("resource_requirements", workflow_id=other)["items"]
    cases = [
        ({"depends_on_job_ids": [MISSING]}, 404, "depends_on_job_ids"),
        ({"depends_on_job_ids": [foreign_job["id"]]}, 404, "depends_on_job_ids"),
        ({"input_file_ids": [MISSING]}, 404, "input_file_ids"),
        ({"input_file_ids": [foreign_file["id"]]}, 404, "input_file_ids"),
        ({"output_file_ids": [MISSING]}, 404, "output_file_ids"),
        ({"input_user_data_ids": [MISSING]}, 404, "input_user_data_ids"),
        ({"output_user_data_ids": [MISSING]}, 404, "output_user_data_ids"),
        ({"resource_requirements_id": MISSING}, 404, "resource requirements"),
        ({"resource_requirements_id": foreign_rr["id"]}, 404, "resource requirements"),
        ({"failure_handler_id": MISSING}, 404, "failure handler"),
        ({"status": "exploded"}, 422, "status"),
        ({"name": ""}, 422, "name"),
        ({"attempt_id": 0}, 422, "attempt_id"),
        ({"command": None}, 422, "command"),
        ({"depends_on_job_ids": "1"}, 422, "depends_on_job_ids"),
        ({"supports_termination": "perhaps"}, 422, "supports_termination"),
    ]
    for bad, status, fragment in cases:
        batch = [{"workflow_id": wf, "name": f"ok{i}", "command": "c"} for i in range(3)]
        batch.insert(2, {"workflow_id": wf, "name": "bad", "command": "c", **bad})
        assert_error(http.post("bulk_jobs", json={"jobs": batch}), status, fragment)
    assert api.get("jobs", workflow_id=wf)["total_count"] == 0


def test_bulk_jobs_malformed_body(api, http):
    wf = make_workflow(api)
    for body, fragment in [
        ({}, "jobs"),
        ({"jobs": {"name": "a"}}, "jobs"),
        ({"jobs": [{"name": "a", "command": "c"}]}, "workflow_id"),
        ({"jobs": [{"workflow_id": wf, "command": "c"}]}, "name"),
        ({"jobs": [{"workflow_id": wf, "name": "a"}]}, "command"),
    ]:
        assert_error(http.post("bulk_jobs", json=body), 422, fragment)
    assert_error(http.post("bulk_jobs", content=b'{"jobs": [', headers=JSON_HEADERS), 422, "JSON")
    assert api.get("jobs", workflow_id=wf)["total_count"] == 0


# ---- failure handlers -----------------------------------------------------------------------------


def test_failure_handler_crud(api, http):
    wf = make_workflow(api)
    body = {"workflow_id": wf, "name": "gpu", "rules": '[{"exit_codes": [137], "max_retries": 2}]'}
    created = api.post("failure_handlers", body)
    assert created == {"id": created["id"], **body}
    path = f"failure_handlers/{created['id']}"
    assert api.get(path) == created
    page = api.get(f"workflows/{wf}/failure_handlers")
    assert set(page) == ENVELOPE_KEYS and page["items"] == [created] and page["total_count"] == 1
    assert_error(http.put(path, json=body), 405, "PUT")  # the contract has no update_failure_handler
    assert api.delete(path) == created
    assert_error(http.get(path), 404, "failure handler")
    assert_error(http.delete(path), 404, "failure handler")
    assert api.get(f"workflows/{wf}/failure_handlers")["total_count"] == 0

    create_many(api, "failure_handlers", [{"workflow_id": wf, "name": f"h{i}", "rules": "[]"} for i in range(5)])
    page = api.get(f"workflows/{wf}/failure_handlers", offset=2, limit=2)
    assert [h["name"] for h in page["items"]] == ["h2", "h3"] and (page["has_more"], page["total_count"]) == (True, 5)


def test_failure_handler_bad_input(api, http):
    wf = make_workflow(api)
    assert_error(http.post("failure_handlers", json={"workflow_id": wf, "name": "x"}), 422, "rules")
    assert_error(http.post("failure_handlers", json={"workflow_id": wf, "name": "x", "rules": []}), 422, "rules")
    missing_wf = {"workflow_id": MISSING, "name": "x", "rules": "[]"}
    assert_error(http.post("failure_handlers", json=missing_wf), 404, "workflow")
    assert_error(http.get(f"failure_handlers/{MISSING}"), 404, str(MISSING))
    assert_error(http.get(f"workflows/{MISSING}/failure_handlers"), 404, "workflow")
    assert api.get(f"workflows/{wf}/failure_handlers")["total_count"] == 0


def test_deleting_failure_handler_detaches_jobs(api):
    wf = make_workflow(api)
    handler = api.post("failure_handlers", {"workflow_id": wf, "name": "fh", "rules": "[]"})
    (job,) = make_jobs(api, wf, [{"name": "j", "failure_handler_id": handler["id"]}])
    assert job["failure_handler_id"] == handler["id"]
    api.delete(f"failure_handlers/{handler['id']}")
    assert api.get(f"jobs/{job['id']}") == {k: v for k, v in job.items() if k != "failure_handler_id"}


# ---- access groups --------------------------------------------------------------------------------


def test_access_group_crud_and_paging(api, http):
    created = api.post("access_groups", {"name": "team", "description": "the team"})
    assert isinstance(created["id"], int) and (created["name"], created["description"]) == ("team", "the team")
    assert created["created_at"]
    path = f"access_groups/{created['id']}"
    assert api.get(path) == created
    page = api.get("access_groups")
    assert set(page) == ACCESS_ENVELOPE_KEYS and page["items"] == [created] and page["total_count"] == 1
    assert api.delete(path) == created
    assert_error(http.get(path), 404, "access group")
    assert_error(http.delete(path), 404, "access group")
    assert api.get("access_groups")["total_count"] == 0

    create_many(api, "access_groups", [{"name": f"g{i}"} for i in range(5)])
    page = api.get("access_groups", offset=3, limit=10)
    assert [g["name"] for g in page["items"]] == ["g3", "g4"]
    assert (page["offset"], page["total_count"], page["has_more"]) == (3, 5, False)
    assert api.get("access_groups", limit=2)["has_more"] is True


def test_access_group_bad_input(api, http):
    api.post("access_groups", {"name": "team"})
    assert_error(http.post("access_groups", json={"name": "team"}), 409, "team")
    assert_error(http.post("access_groups", json={"name": "   "}), 422, "name")
    assert_error(http.post("access_groups", json={}), 422, "name")
    assert_error(http.post("access_groups", json={"name": 5}), 422, "name")
    assert_error(http.get("access_groups/abc"), 422, "id")
    assert_error(http.get(f"access_groups/{MISSING}"), 404, str(MISSING))
    assert [g["name"] for g in api.get("access_groups")["items"]] == ["team"]


def test_group_members(api, http):
    group = api.post("access_groups", {"name": "team"})
    other = api.post("access_groups", {"name": "other"})
    members = f"access_groups/{group['id']}/members"
    alice = api.post(members, {"user_name": "alice"})
    assert (alice["user_name"], alice["group_id"], alice["role"]) == ("alice", group["id"], "member")
    bob = api.post(members, {"user_name": "bob", "role": "admin"})
    api.post(f"access_groups/{other['id']}/members", {"user_name": "alice"})

    listed = api.get(members)
    assert set(listed) == ACCESS_ENVELOPE_KEYS and listed["items"] == [alice, bob]
    assert [m["user_name"] for m in api.get(members, offset=1, limit=1)["items"]] == ["bob"]
    assert [g["name"] for g in api.get("users/alice/groups")["items"]] == ["team", "other"]
    assert api.get("users/nobody/groups")["items"] == []

    assert api.delete(f"{members}/alice") == alice
    assert [m["user_name"] for m in api.get(members)["items"]] == ["bob"]
    assert [g["name"] for g in api.get("users/alice/groups")["items"]] == ["other"]

    api.delete(f"access_groups/{other['id']}")
    assert api.get("users/alice/groups")["total_count"] == 0, "deleting a group removes its memberships"


def test_group_member_bad_input(api, http):
    group = api.post("access_groups", {"name": "team"})
    members = f"access_groups/{group['id']}/members"
    api.post(members, {"user_name": "alice"})
    assert_error(http.post(members, json={"user_name": "alice"}), 409, "alice")
    assert_error(http.post(members, json={"user_name": "bob", "role": "king"}), 422, "role")
    assert_error(http.post(members, json={}), 422, "user_name")
    assert_error(http.post(members, json={"user_name": ""}), 422, "user_name")
    assert_error(http.post(f"access_groups/{MISSING}/members", json={"user_name": "bob"}), 404, str(MISSING))
    assert_error(http.get(f"access_groups/{MISSING}/members"), 404, str(MISSING))
    assert_error(http.delete(f"{members}/nobody"), 404, "nobody")
    assert [m["user_name"] for m in api.get(members)["items"]] == ["alice"]


def test_workflow_access_groups_and_access_check(api, http):
    wf = make_workflow(api)  # owned by "tester"
    group = api.post("access_groups", {"name": "team"})
    api.post(f"access_groups/{group['id']}/members", {"user_name": "alice"})

    def has_access(user):
        return api.get(f"access_check/{wf}/{user}")["has_access"]

    assert api.get(f"access_check/{wf}/tester") == {"has_access": True, "user_name": "tester", "workflow_id": wf}
    assert has_access("alice") is False

    link = api.post(f"workflows/{wf}/access_groups", {"group_id": group["id"]})
    assert (link["workflow_id"], link["group_id"]) == (wf, group["id"])
    listed = api.get(f"workflows/{wf}/access_groups")
    assert set(listed) == ACCESS_ENVELOPE_KEYS and listed["items"] == [group]
    assert (has_access("alice"), has_access("mallory")) == (True, False)
    assert_error(http.post(f"workflows/{wf}/access_groups", json={"group_id": group["id"]}), 409, "already")

    removed = api.delete(f"workflows/{wf}/access_groups/{group['id']}")
    assert (removed["workflow_id"], removed["group_id"]) == (wf, group["id"])
    assert api.get(f"workflows/{wf}/access_groups")["items"] == []
    assert has_access("alice") is False


def test_workflow_access_group_bad_input(api, http):
    wf = make_workflow(api)
    group = api.post("access_groups", {"name": "team"})
    links = f"workflows/{wf}/access_groups"
    assert_error(http.post(links, json={}), 422, "group_id")
    assert_error(http.post(links, json={"group_id": "x"}), 422, "group_id")
    assert_error(http.post(links, json={"group_id": MISSING}), 404, str(MISSING))
    assert_error(http.post(f"workflows/{MISSING}/access_groups", json={"group_id": group["id"]}), 404, "workflow")
    assert_error(http.get(f"workflows/{MISSING}/access_groups"), 404, "workflow")
    assert_error(http.delete(f"{links}/{group['id']}"), 404, "not linked")
    assert_error(http.get(f"access_check/{MISSING}/alice"), 404, "workflow")
    assert api.get(links)["total_count"] == 0


# ---- remote workers -------------------------------------------------------------------------------


def test_remote_workers(api, http):
    wf, other = make_workflow(api), make_workflow(api, "other")
    workers = f"workflows/{wf}/remote_workers"
    added = api.post(workers, ["user@hostb:22", "hosta"])
    assert added == [{"worker": "user@hostb:22", "workflow_id": wf}, {"worker": "hosta", "workflow_id": wf}]
    api.post(workers, ["hosta"])  # adding a worker twice keeps one
    api.post(f"workflows/{other}/remote_workers", ["hostc"])
    assert api.get(workers) == [{"worker": "hosta", "workflow_id": wf}, {"worker": "user@hostb:22", "workflow_id": wf}]

    assert api.delete(f"{workers}/hosta") == {"worker": "hosta", "workflow_id": wf}
    assert [w["worker"] for w in api.get(workers)] == ["user@hostb:22"]
    assert_error(http.delete(f"{workers}/hosta"), 404, "hosta")
    assert [w["worker"] for w in api.get(f"workflows/{other}/remote_workers")] == ["hostc"]


def test_remote_workers_bad_input(api, http):
    wf = make_workflow(api)
    workers = f"workflows/{wf}/remote_workers"
    assert_error(http.post(workers, json=["good", ""]), 422, "remote worker")
    assert_error(http.post(workers, json="hosta"), 422, "list")
    assert_error(http.post(workers, json=[1, 2]), 422, "string")
    assert_error(http.post(workers, content=b'["a",', headers=JSON_HEADERS), 422, "JSON")
    assert api.get(workers) == [], "a rejected batch adds no worker"
    assert_error(http.post(f"workflows/{MISSING}/remote_workers", json=["h"]), 404, "workflow")
    assert_error(http.get(f"workflows/{MISSING}/remote_workers"), 404, "workflow")
    assert_error(http.delete(f"workflows/{MISSING}/remote_workers/h"), 404, "workflow")


# ---- bad input across the API ---------------------------------------------------------------------


BAD_INPUT = [
    # (method, path, request kwargs, a word the error must contain); "WF" stands for a real workflow id
    ("get", "files/1.5", {}, "id"),
    ("get", "jobs", {"params": {"workflow_id": "WF", "include_relationships": "maybe"}}, "include_relationships"),
    ("get", "jobs", {"params": {"workflow_id": "WF", "upstream_job_id": "x"}}, "upstream_job_id"),
    ("get", "jobs", {"params": {"workflow_id": "WF", "reverse_sort": "maybe"}}, "reverse_sort"),
    ("get", "files", {"params": {"workflow_id": "WF", "is_output": "maybe"}}, "is_output"),
    ("get", "events", {"params": {"workflow_id": "WF", "after_timestamp": "yesterday"}}, "after_timestamp"),
    ("get", "results", {"params": {"workflow_id": "WF", "all_runs": "sometimes"}}, "all_runs"),
    ("post", "jobs", {"json": {"workflow_id": "WF", "name": "j"}}, "command"),
    ("post", "jobs", {"json": {"workflow_id": "WF", "name": "j", "command": "c", "status": "exploded"}}, "status"),
    ("post", "jobs", {"json": {"workflow_id": "WF", "name": "j", "command": "c", "depends_on_job_ids": ["a"]}},
     "depends_on_job_ids"),
    ("post", "files", {"json": {"workflow_id": "WF", "name": "f"}}, "path"),
    ("post", "files", {"json": {"workflow_id": "WF", "name": "f", "path": "p", "st_mtime": "noon"}}, "st_mtime"),
    ("post", "user_data", {"json": {"workflow_id": "WF", "name": "u", "is_ephemeral": "x"}}, "is_ephemeral"),
    ("post", "events", {"json": {"workflow_id": "WF", "data": [1, 2]}}, "data"),
    ("post", "events", {"json": {"workflow_id": "WF"}}, "data"),
    ("post", "events", {"json": {"workflow_id": "WF", "timestamp": "now", "data": {}}}, "timestamp"),
    ("post", "results", {"json": {"workflow_id": "WF", "job_id": 1}}, "run_id"),
    ("post", "compute_nodes", {"json": {"workflow_id": "WF", "hostname": "h"}}, "pid"),
    ("post", "compute_nodes", {"json": {**_compute_node_body(None, 0), "workflow_id": "WF", "num_cpus": -1}},
     "num_cpus"),
    ("post", "scheduled_compute_nodes", {"json": {"workflow_id": "WF", "scheduler_id": 1}}, "scheduler_config_id"),
    ("post", "slurm_schedulers", {"json": {"workflow_id": "WF", "account": "a", "walltime": "1:00:00", "nodes": 0}},
     "nodes"),
    ("post", "slurm_schedulers", {"json": {"workflow_id": "WF", "account": "a", "nodes": 1}}, "walltime"),
    ("post", "local_schedulers", {"json": {"workflow_id": "WF", "num_cpus": "four"}}, "num_cpus"),
    ("put", "workflows/WF", {"json": {"compute_node_expiration_buffer_seconds": "x"}},
     "compute_node_expiration_buffer_seconds"),
    ("put", "workflows/WF", {"json": []}, "body"),
    ("put", "workflows/WF", {"content": b"[[", "headers": JSON_HEADERS}, "JSON"),
]


def _with_workflow(value: Any, wf: int) -> Any:
    if value == "WF":
        return wf
    if isinstance(value, str):
        return value.replace("WF", str(wf))
    if isinstance(value, dict):
        return {k: _with_workflow(v, wf) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_workflow(v, wf) for v in value]
    return value


def test_bad_input_is_a_422_naming_the_field_and_changes_nothing(api, http):
    wf = make_workflow(api)
    before = api.get(f"workflows/{wf}")
    for method, path, kwargs, fragment in BAD_INPUT:
        response = getattr(http, method)(_with_workflow(path, wf), **_with_workflow(kwargs, wf))
        assert_error(response, 422, fragment)
        assert response.headers["content-type"].startswith("application/json")
    assert api.get(f"workflows/{wf}") == before
    for segment in [*SEGMENTS, "jobs"]:
        expected = 1 if segment == "resource_requirements" else 0  # just the default
        assert api.get(segment, workflow_id=wf, **LIST_ALL.get(segment, {}))["total_count"] == expected, segment


def test_malformed_json_is_422_everywhere(http):
    for path in ("workflows", "jobs", "bulk_jobs", *SEGMENTS, "failure_handlers", "access_groups"):
        response = http.post(path, content=b'{"name": "x",', headers=JSON_HEADERS)
        assert_error(response, 422, "JSON")


def test_unknown_routes_and_methods_are_json_errors(http):
    assert_error(http.get("no_such_thing"), 404, "no_such_thing")
    assert_error(http.patch("workflows"), 405, "PATCH")


def test_client_maps_error_statuses_to_exceptions(api):
    wf = make_workflow(api)
    with pytest.raises(NotFoundError):
        api.get(f"files/{MISSING}")
    with pytest.raises(InvalidInputError):
        api.post("resource_requirements", {"workflow_id": wf, "name": "default"})
    api.post("access_groups", {"name": "g"})
    with pytest.raises(ConflictError):
        api.post("access_groups", {"name": "g"})


def test_out_of_range_integers_are_422_not_500(api, http):
    wf = make_workflow(api)
    for method, path, kwargs in [
        ("get", f"jobs/{2**63}", {}),
        ("delete", f"files/{2**64}", {}),
        ("get", "files", {"params": {"workflow_id": 2**70}}),
        ("get", "files", {"params": {"workflow_id": wf, "offset": 2**64}}),
        ("post", "files", {"json": {"workflow_id": 2**70, "name": "f", "path": "p"}}),
        ("post", "files", {"json": {"workflow_id": wf, "name": "f", "path": "p", "st_mtime": 10**400}}),
        ("post", "bulk_jobs", {"json": {"jobs": [{"workflow_id": wf, "name": "j", "command": "c",
                                                 "depends_on_job_ids": [2**63]}]}}),
    ]:
        assert getattr(http, method)(path, **kwargs).status_code in (404, 422), (method, path)
    assert api.get("files", workflow_id=wf)["total_count"] == 0
    assert api.get("jobs", workflow_id=wf)["total_count"] == 0


def test_explicit_null_means_not_set(api, http):
    """torc's clients send null for optional fields they did not set; it must never be a 409 or 500."""
    wf = make_workflow(api)
    workflow = http.post("workflows", json={"name": "w", "user": "u", "use_pending_failed": None,
                                            "compute_node_expiration_buffer_seconds": None})
    assert workflow.status_code == 200, workflow.text
    created = workflow.json()
    assert (created["use_pending_failed"], created["compute_node_expiration_buffer_seconds"]) == (False, 60)
    user_data = api.post("user_data", {"workflow_id": wf, "name": "u", "is_ephemeral": None, "data": None})
    assert user_data["is_ephemeral"] is False
    rr = api.post("resource_requirements", {"workflow_id": wf, "name": "r", "num_cpus": None, "memory": None})
    assert (rr["num_cpus"], rr["memory"]) == (1, "1m")
    assert api.put(f"resource_requirements/{rr['id']}", {**rr, "memory": None, "runtime": None}) == rr

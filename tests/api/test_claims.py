"""claim_jobs_based_on_resources and claim_next_jobs."""

from __future__ import annotations

import pytest

from tests.helpers import make_jobs, make_workflow


def _rr(api, wf, name, cpus=1, mem="1g", gpus=0, nodes=1, runtime="PT1H"):
    return api.post("resource_requirements", {"workflow_id": wf, "name": name, "num_cpus": cpus, "memory": mem,
                                              "num_gpus": gpus, "num_nodes": nodes, "runtime": runtime})["id"]


def _offer(cpus=4, mem_gb=8.0, gpus=0, nodes=1, **extra):
    return {"num_cpus": cpus, "memory_gb": mem_gb, "num_gpus": gpus, "num_nodes": nodes, **extra}


def _claim(api, wf, limit=100, **offer):
    body = _offer(**{k: v for k, v in offer.items() if k in ("cpus", "mem_gb", "gpus", "nodes")})
    body.update({k: v for k, v in offer.items() if k in ("time_limit", "scheduler_config_id")})
    params = {k: v for k, v in offer.items() if k in ("sort_method", "strict_scheduler_match")}
    return api.post(f"workflows/{wf}/claim_jobs_based_on_resources/{limit}", body, **params)["jobs"]


@pytest.fixture
def wf(api):
    return make_workflow(api, "claims")


def _ready(api, wf, jobs):
    make_jobs(api, wf, jobs)
    api.post(f"workflows/{wf}/initialize_jobs")


def test_packs_by_cpu_and_memory(api, wf):
    big = _rr(api, wf, "big", cpus=2, mem="3g")
    _ready(api, wf, [{"name": f"j{i}", "resource_requirements_id": big} for i in range(5)])
    claimed = _claim(api, wf, cpus=4, mem_gb=8)
    assert len(claimed) == 2 and all(j["status"] == "pending" for j in claimed)
    claimed = _claim(api, wf, cpus=8, mem_gb=7)
    assert len(claimed) == 2  # memory-bound: 3g + 3g <= 7g < 9g
    assert len(_claim(api, wf, cpus=1, mem_gb=100)) == 0  # no job fits 1 CPU


def test_limit_caps_the_count(api, wf):
    _ready(api, wf, [{"name": f"j{i}"} for i in range(10)])
    assert len(_claim(api, wf, limit=3, cpus=100, mem_gb=100)) == 3
    assert len(_claim(api, wf, limit=0, cpus=100, mem_gb=100)) == 0


def test_gpus_and_skip_non_fitting(api, wf):
    gpu = _rr(api, wf, "gpu", gpus=2)
    cpu = _rr(api, wf, "cpu")
    _ready(api, wf, [{"name": "g1", "resource_requirements_id": gpu}, {"name": "g2", "resource_requirements_id": gpu},
                     {"name": "c1", "resource_requirements_id": cpu}])
    claimed = _claim(api, wf, cpus=8, mem_gb=16, gpus=3)
    # gpus first (sort gpus_runtime_memory); the second GPU job does not fit but the CPU job does
    assert [j["name"] for j in claimed] == ["g1", "c1"]
    assert _claim(api, wf, cpus=8, mem_gb=16, gpus=0) == []


def test_time_limit_filters_long_jobs(api, wf):
    long = _rr(api, wf, "long", runtime="PT2H")
    short = _rr(api, wf, "short", runtime="PT10M")
    _ready(api, wf, [{"name": "long", "resource_requirements_id": long},
                     {"name": "short", "resource_requirements_id": short}])
    claimed = _claim(api, wf, cpus=8, mem_gb=16, time_limit="PT1H")
    assert [j["name"] for j in claimed] == ["short"]
    assert [j["name"] for j in _claim(api, wf, cpus=8, mem_gb=16)] == ["long"]


def test_multi_node_jobs_consume_nodes(api, wf):
    two = _rr(api, wf, "two", nodes=2)
    _ready(api, wf, [{"name": f"m{i}", "resource_requirements_id": two} for i in range(3)])
    assert len(_claim(api, wf, cpus=64, mem_gb=64, nodes=5)) == 2
    assert len(_claim(api, wf, cpus=64, mem_gb=64, nodes=1)) == 0


@pytest.mark.parametrize("method,expected", [
    ("gpus_runtime_memory", ["long_small", "short_big"]),
    ("gpus_memory_runtime", ["short_big", "long_small"]),
    ("none", ["short_big", "long_small"]),
])
def test_sort_methods(api, wf, method, expected):
    long_small = _rr(api, wf, "long_small", mem="1g", runtime="PT5H")
    short_big = _rr(api, wf, "short_big", mem="4g", runtime="PT1M")
    _ready(api, wf, [{"name": "short_big", "resource_requirements_id": short_big},
                     {"name": "long_small", "resource_requirements_id": long_small}])
    claimed = _claim(api, wf, cpus=8, mem_gb=16, sort_method=method)
    assert [j["name"] for j in claimed] == expected


def test_scheduler_matching(api, wf):
    s1 = api.post("slurm_schedulers", {"workflow_id": wf, "name": "s1", "account": "a", "nodes": 1,
                                       "walltime": "01:00:00"})["id"]
    s2 = api.post("slurm_schedulers", {"workflow_id": wf, "name": "s2", "account": "a", "nodes": 1,
                                       "walltime": "01:00:00"})["id"]
    _ready(api, wf, [{"name": "for_s1", "scheduler_id": s1}, {"name": "any"}, {"name": "for_s2", "scheduler_id": s2}])
    claimed = _claim(api, wf, cpus=8, mem_gb=16, scheduler_config_id=s1)
    assert sorted(j["name"] for j in claimed) == ["any", "for_s1"]
    # nothing left for s1: strict gets nothing, non-strict falls back to other jobs
    assert _claim(api, wf, cpus=8, mem_gb=16, scheduler_config_id=s1, strict_scheduler_match=True) == []
    assert [j["name"] for j in _claim(api, wf, cpus=8, mem_gb=16, scheduler_config_id=s1)] == ["for_s2"]


def test_claimed_jobs_carry_relationships_and_invocation_script(api, wf):
    f = api.post("files", {"workflow_id": wf, "name": "out", "path": "out.txt"})
    _ready(api, wf, [{"name": "a", "output_file_ids": [f["id"]], "invocation_script": "env FOO=1"}])
    (job,) = _claim(api, wf)
    assert job["output_file_ids"] == [f["id"]]
    assert job["invocation_script"] == "env FOO=1"


def test_claim_next_jobs_ignores_resources(api, wf):
    huge = _rr(api, wf, "huge", cpus=1000, mem="100t")
    _ready(api, wf, [{"name": f"j{i}", "resource_requirements_id": huge} for i in range(15)])
    first = api.post(f"workflows/{wf}/claim_next_jobs")["jobs"]
    assert len(first) == 10  # torc's server default
    rest = api.post(f"workflows/{wf}/claim_next_jobs", limit=100)["jobs"]
    assert len(rest) == 5
    assert not {j["id"] for j in first} & {j["id"] for j in rest}


def test_only_ready_jobs_are_claimed(api, wf):
    (a,) = make_jobs(api, wf, [{"name": "a"}])
    make_jobs(api, wf, [{"name": "b", "depends_on_job_ids": [a["id"]]}])
    assert _claim(api, wf) == []  # nothing initialized yet
    api.post(f"workflows/{wf}/initialize_jobs")
    assert [j["name"] for j in _claim(api, wf)] == ["a"]
    assert _claim(api, wf) == []


def test_unknown_workflow_is_404(http):
    r = http.post("workflows/999/claim_jobs_based_on_resources/5", json=_offer())
    assert r.status_code == 404
    r = http.post("workflows/999/claim_next_jobs")
    assert r.status_code == 404


def test_bad_offer_is_422(http, api, wf):
    r = http.post(f"workflows/{wf}/claim_jobs_based_on_resources/5", json={"num_cpus": "many"})
    assert r.status_code == 422
    body = r.json()["error"]["message"]
    assert "num_cpus" in body and "memory_gb" in body


def test_prefetch_claims_ahead_but_each_job_must_fit(api, wf):
    """prefetch (extension): the offer bounds each job, `limit` bounds the batch."""
    small, big = _rr(api, wf, "small", cpus=1), _rr(api, wf, "big", cpus=4)
    _ready(api, wf, [{"name": f"s{i}", "resource_requirements_id": small} for i in range(6)]
           + [{"name": "b", "resource_requirements_id": big}])
    got = api.post(f"workflows/{wf}/claim_jobs_based_on_resources/5", _offer(cpus=2, mem_gb=2), prefetch=True)["jobs"]
    assert len(got) == 5 and all(j["name"].startswith("s") for j in got)  # 5 x 1 CPU > 2 CPUs offered
    got = api.post(f"workflows/{wf}/claim_jobs_based_on_resources/5", _offer(cpus=2, mem_gb=2), prefetch=True)["jobs"]
    assert [j["name"] for j in got] == ["s5"]  # the 4-CPU job never fits a 2-CPU runner


def test_claims_record_the_compute_node_and_release_gives_jobs_back(api, http, wf):
    node = api.post("compute_nodes", {"workflow_id": wf, "hostname": "h", "pid": 1, "start_time": "t",
                                      "is_active": True, "num_cpus": 2, "memory_gb": 2, "num_gpus": 0,
                                      "num_nodes": 1, "compute_node_type": "local"})["id"]
    _ready(api, wf, [{"name": f"j{i}"} for i in range(4)])
    a = api.post(f"workflows/{wf}/claim_jobs_based_on_resources/2", _offer(cpus=100, mem_gb=100, id=node))["jobs"]
    b = api.post(f"workflows/{wf}/claim_next_jobs", limit=1, compute_node_id=node)["jobs"]
    held = api.get("jobs", workflow_id=wf, active_compute_node_id=node)["items"]
    assert sorted(j["id"] for j in held) == sorted(j["id"] for j in a + b)
    api.put(f"jobs/{a[0]['id']}/start_job/0/{node}")
    out = api.post(f"workflows/{wf}/release_jobs", {"job_ids": [j["id"] for j in a + b]})
    assert sorted(out["released_job_ids"]) == sorted([a[1]["id"], b[0]["id"]])  # the started one stays running
    jobs = {j["name"]: j for j in api.get("jobs", workflow_id=wf)["items"]}
    assert [jobs[j["name"]]["status"] for j in a + b] == ["running", "ready", "ready"]
    assert [j["id"] for j in api.get("jobs", workflow_id=wf, active_compute_node_id=node)["items"]] == [a[0]["id"]]
    assert http.post(f"workflows/{wf}/release_jobs", json={"job_ids": "x"}).status_code == 422
    assert http.post("workflows/999999/release_jobs", json={"job_ids": []}).status_code == 404

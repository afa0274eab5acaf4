"""Many runners claiming from thousands of ready jobs over real HTTP: no job twice, none lost."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.conftest import BACKENDS, postgres_schema
from tests.server_support import start_server
from torc.client import TorcClient
from torc.server.process import ServerProcess

N_JOBS = 3000
N_RUNNERS = 64


@pytest.fixture(params=BACKENDS)
def claim_server(request, tmp_path) -> Iterator[ServerProcess]:
    """A real torc-server on SQLite, or on PostgreSQL (a schema of its own; skipped without a server)."""
    if request.param == "sqlite":
        server = start_server(tmp_path / "torc.db", tmp_path / "server.log")
        yield server
        server.stop()
        return
    with postgres_schema("torc_claims") as url:
        # `--database` given twice: click keeps the last, the URL.
        server = start_server(tmp_path / "unused.db", tmp_path / "server.log", "--database", url)
        yield server
        server.stop()


def test_concurrent_claims_are_exclusive(claim_server):
    """64 runners, each with its own client, claim and complete 3,000 jobs: none twice, none lost."""
    live_server = claim_server
    with live_server.client() as api:
        wf = api.create_workflow("concurrency")["id"]
        api.post("bulk_jobs", {"jobs": [{"workflow_id": wf, "name": f"j{i}", "command": "true"}
                                        for i in range(N_JOBS)]})
        api.post(f"workflows/{wf}/initialize_jobs")
        run_id = api.run_id(wf)

    claimed: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def runner(index: int) -> None:
        try:
            with TorcClient(live_server.url) as client:
                while True:
                    if index % 2:
                        jobs = client.post(f"workflows/{wf}/claim_next_jobs", limit=7)["jobs"]
                    else:
                        jobs = client.post(f"workflows/{wf}/claim_jobs_based_on_resources/8",
                                           {"num_cpus": 8, "memory_gb": 8, "num_gpus": 0, "num_nodes": 1})["jobs"]
                    if not jobs:
                        return
                    with lock:
                        claimed.extend(j["id"] for j in jobs)
                    done = [{"job_id": j["id"], "status": "completed",
                             "result": {"return_code": 0, "exec_time_minutes": 0.0}} for j in jobs]
                    client.post(f"workflows/{wf}/complete_jobs", {"run_id": run_id, "jobs": done})
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(N_RUNNERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads), "a runner was still claiming after 240 s"
    counts = Counter(claimed)
    assert [job for job, n in counts.items() if n > 1] == []
    assert len(counts) == N_JOBS
    with live_server.client() as api:
        assert api.get(f"workflows/{wf}/is_complete")["is_complete"] is True
        assert api.get("results", workflow_id=wf, limit=1)["total_count"] == N_JOBS


def test_concurrent_start_and_complete_single_jobs(claim_server):
    """The per-job endpoints (claim, start_job, complete_job) under contention, with a dependency fan-in."""
    live_server = claim_server
    with live_server.client() as api:
        wf = api.create_workflow("fan-in")["id"]
        leaves = api.post("bulk_jobs", {"jobs": [{"workflow_id": wf, "name": f"leaf{i}", "command": "true"}
                                                 for i in range(400)]})["jobs"]
        api.post("bulk_jobs", {"jobs": [{"workflow_id": wf, "name": "collect", "command": "true",
                                         "depends_on_job_ids": [j["id"] for j in leaves]}]})
        api.post(f"workflows/{wf}/initialize_jobs")
    seen: list[str] = []
    lock = threading.Lock()

    def runner() -> None:
        with TorcClient(live_server.url) as client:
            idle = 0
            while idle < 20:
                jobs = client.post(f"workflows/{wf}/claim_next_jobs", limit=3)["jobs"]
                if not jobs:
                    if client.get(f"workflows/{wf}/is_complete")["is_complete"]:
                        return
                    idle += 1
                    continue
                for job in jobs:
                    client.put(f"jobs/{job['id']}/start_job/0/1")
                    client.post(f"jobs/{job['id']}/complete_job/completed/0",
                                {"return_code": 0, "exec_time_minutes": 0.0, "completion_time": "t",
                                 "compute_node_id": 1})
                    with lock:
                        seen.append(job["name"])

    threads = [threading.Thread(target=runner) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert len(seen) == 401 and len(set(seen)) == 401
    assert seen[-1] == "collect"

"""64 runners, each with its own TorcClient (own connection pool), claiming and completing against one
real server: no job is claimed twice, none is lost, dependents are released exactly once, and the
database invariants hold at the end. Backend-agnostic: it only needs `backend_server`'s URL
(tests/integration/test_concurrent_claims.py covers 16 runners; this is the 64-runner version)."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from tests.conftest import check_invariants
from torc.client import TorcClient

pytestmark = pytest.mark.timeout(240)

N_RUNNERS = 64
N_LEAVES = 1500
N_MIDDLE = 60  # each waits for 25 leaves
N_FINAL = 1  # waits for every middle job


def test_64_runners_claim_and_complete_every_job_exactly_once(backend_server):
    with backend_server.client() as api:
        wf = api.post("workflows", {"name": "load", "user": "u"})["id"]
        leaves = api.post("bulk_jobs", {"jobs": [{"workflow_id": wf, "name": f"leaf{i}", "command": "true"}
                                                 for i in range(N_LEAVES)]})["jobs"]
        leaf_ids = [j["id"] for j in leaves]
        middle = api.post("bulk_jobs", {"jobs": [
            {"workflow_id": wf, "name": f"mid{i}", "command": "true", "depends_on_job_ids": leaf_ids[i * 25:(i + 1) * 25]}
            for i in range(N_MIDDLE)]})["jobs"]
        api.post("bulk_jobs", {"jobs": [{"workflow_id": wf, "name": "final", "command": "true",
                                         "depends_on_job_ids": [j["id"] for j in middle]}]})
        api.post(f"workflows/{wf}/initialize_jobs")
        run_id = api.run_id(wf)
    total = N_LEAVES + N_MIDDLE + N_FINAL

    claimed: list[tuple[int, str]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    stop = threading.Event()

    def runner(index: int) -> None:
        try:
            with TorcClient(backend_server.url) as client:
                deadline = time.monotonic() + 180
                while not stop.is_set() and time.monotonic() < deadline:
                    if index % 2:
                        jobs = client.post(f"workflows/{wf}/claim_next_jobs", limit=1 + index % 5)["jobs"]
                    else:
                        jobs = client.post(f"workflows/{wf}/claim_jobs_based_on_resources/4",
                                           {"num_cpus": 4, "memory_gb": 8, "num_gpus": 0, "num_nodes": 1})["jobs"]
                    if not jobs:
                        if client.get(f"workflows/{wf}/is_complete")["is_complete"]:
                            return
                        time.sleep(0.02)
                        continue
                    with lock:
                        claimed.extend((j["id"], j["name"]) for j in jobs)
                    if index % 3 == 0:  # the per-job endpoints
                        for j in jobs:
                            client.put(f"jobs/{j['id']}/start_job/{run_id}/1")
                            client.post(f"jobs/{j['id']}/complete_job/completed/{run_id}",
                                        {"return_code": 0, "exec_time_minutes": 0.0, "completion_time": "t",
                                         "compute_node_id": 1})
                    else:  # the batch endpoint
                        done = [{"job_id": j["id"], "status": "completed",
                                 "result": {"return_code": 0, "exec_time_minutes": 0.0}} for j in jobs]
                        client.post(f"workflows/{wf}/complete_jobs", {"run_id": run_id, "jobs": done})
        except BaseException as exc:  # surfaced below
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=runner, args=(i,), daemon=True) for i in range(N_RUNNERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=200)
    assert not any(t.is_alive() for t in threads), "a runner did not finish"
    assert not errors, errors[:3]

    counts = Counter(job_id for job_id, _ in claimed)
    assert [job for job, n in counts.items() if n > 1] == [], "a job was claimed twice"
    assert len(counts) == total, f"{total - len(counts)} jobs were never claimed"
    assert claimed[-1][1] == "final"
    with backend_server.client() as api:
        assert api.get(f"workflows/{wf}/is_complete")["is_complete"] is True
        job_counts = api.get(f"workflows/{wf}/job_counts")["counts"]
        assert job_counts.get("completed") == total, job_counts
        assert api.get("results", workflow_id=wf, limit=1)["total_count"] == total
    if backend_server.database.suffix == ".db":
        from torc.storage.sqlite import SqliteStore

        store = SqliteStore(backend_server.database)
        try:
            check_invariants(store)
        finally:
            store.close()

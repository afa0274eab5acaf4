"""SIGKILL a real torc-server several times during heavy write activity (bulk creates of workflows from
a spec, claims and completions from concurrent runners) and restart it on the same SQLite database.

After every kill, with the server down: the database opens, `PRAGMA integrity_check` is ok, the
workflow invariants hold (tests/conftest.check_invariants), no job is both finished and claimable,
and the per-status counts add up. At the end: no job was handed to two runners, and every workflow
whose creation reported success has all of its jobs exactly once.

A creation that the kill interrupts cannot delete its half-made workflow (the server is down): the
client then says which workflow was left behind (client/from_spec.py); the test checks that such a
leftover is never reported as created and never counts as complete.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import check_invariants
from tests.integration.runner_support import free_port, kill_all, spawn_server_on, wait_for
from torc.client import TorcClient
from torc.client.from_spec import create_from_file
from torc.core.errors import TorcError
from torc.storage.sqlite import SqliteStore

pytestmark = pytest.mark.timeout(240)

LEAVES, MIDDLE = 2000, 80  # the runners' workflow: each middle job waits for 25 leaves
SPEC_LEVELS, SPEC_WIDTH = 4, 600  # each created workflow: 4 levels of 600 jobs, each waiting on one above
KILL_AFTER = (0.4, 1.0, 1.8, 0.1)  # seconds of activity before each SIGKILL: different points in the work


def _spec(folder: Path) -> tuple[Path, int]:
    jobs = []
    for level in range(SPEC_LEVELS):
        for i in range(SPEC_WIDTH):
            job = {"name": f"l{level}_{i}", "command": "true", "output_files": [f"o{level}_{i}"]}
            if level:
                job["depends_on"] = [f"l{level - 1}_{i}"]
                job["input_files"] = [f"o{level - 1}_{i}"]
            jobs.append(job)
    files = [{"name": f"o{level}_{i}", "path": f"/out/{level}/{i}"} for level in range(SPEC_LEVELS)
             for i in range(SPEC_WIDTH)]
    path = folder / "spec.json"
    path.write_text(json.dumps({"name": "created", "jobs": jobs, "files": files}))
    return path, len(jobs)


def _check_database(db: Path) -> None:
    """With the server dead: the file opens, is intact, and the workflow invariants hold."""
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # finished (has a current result) but claimable again: would run twice
        twice = conn.execute(
            "SELECT j.id FROM job j JOIN workflow_result r ON r.job_id = j.id WHERE j.status IN (1, 2, 3, 4)"
        ).fetchall()
        assert not twice, f"jobs with a current result that are claimable or claimed again: {twice}"
        per_wf = conn.execute(
            "SELECT w.id, (SELECT COUNT(*) FROM job j WHERE j.workflow_id = w.id) FROM workflow w").fetchall()
        for wf, n in per_wf:
            by_status = conn.execute("SELECT COUNT(*) FROM job WHERE workflow_id = ? GROUP BY status", (wf,)).fetchall()
            assert sum(c for (c,) in by_status) == n
    store = SqliteStore(db)
    try:
        check_invariants(store)
    finally:
        store.close()


def test_sigkill_during_heavy_writes_leaves_a_consistent_database(tmp_path):
    db, log = tmp_path / "torc.db", tmp_path / "server.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}/torc-service/v1"
    spec, spec_jobs = _spec(tmp_path)
    server = spawn_server_on(db, log, port)
    servers = [server]
    try:
        with TorcClient(url) as api:
            wf = api.post("workflows", {"name": "run", "user": "u"})["id"]
            leaves = api.post("bulk_jobs", {"jobs": [{"workflow_id": wf, "name": f"leaf{i}", "command": "true"}
                                                     for i in range(LEAVES)]})["jobs"]
            ids = [j["id"] for j in leaves]
            api.post("bulk_jobs", {"jobs": [{"workflow_id": wf, "name": f"mid{i}", "command": "true",
                                             "depends_on_job_ids": ids[i * 25:(i + 1) * 25]} for i in range(MIDDLE)]})
            api.post(f"workflows/{wf}/initialize_jobs")
            run_id = api.run_id(wf)

        stop = threading.Event()
        claimed: list[int] = []
        created: list[int] = []
        failed_creates: list[str] = []
        lock = threading.Lock()
        surprises: list[BaseException] = []

        def runner(index: int) -> None:
            with TorcClient(url, timeout=10) as client:
                while not stop.is_set():
                    try:
                        jobs = client.post(f"workflows/{wf}/claim_next_jobs", limit=5 + index)["jobs"]
                        with lock:
                            claimed.extend(j["id"] for j in jobs)
                        if not jobs:
                            time.sleep(0.02)
                            continue
                        done = [{"job_id": j["id"], "status": "completed",
                                 "result": {"return_code": 0, "exec_time_minutes": 0.0}} for j in jobs]
                        client.post(f"workflows/{wf}/complete_jobs", {"run_id": run_id, "jobs": done})
                    except TorcError:  # the server is down (or came back mid-request): carry on
                        time.sleep(0.05)
                    except BaseException as exc:
                        surprises.append(exc)
                        return

        def creator() -> None:
            with TorcClient(url, timeout=10) as client:
                while not stop.is_set():
                    try:
                        new = create_from_file(client, spec, monitoring=False)
                        with lock:
                            created.append(new)
                    except TorcError as exc:
                        with lock:
                            failed_creates.append(exc.message)
                        time.sleep(0.05)
                    except BaseException as exc:
                        surprises.append(exc)
                        return

        threads = [threading.Thread(target=runner, args=(i,), daemon=True) for i in range(4)]
        threads.append(threading.Thread(target=creator, daemon=True))
        for t in threads:
            t.start()
        for delay in KILL_AFTER:
            time.sleep(delay)
            server.kill()  # SIGKILL
            server.wait()
            _check_database(db)
            server = spawn_server_on(db, log, port)
            servers.append(server)
        # carry on until a creation has gone through after the last restart
        created_before = len(created)
        wait_for(lambda: len(created) > created_before or surprises, 120, "a creation after the last restart")
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        assert not surprises, surprises
        server.terminate()
        server.wait()
        _check_database(db)
        server = spawn_server_on(db, log, port)
        servers.append(server)

        repeats = [job for job, n in Counter(claimed).items() if n > 1]
        assert repeats == [], f"jobs handed to two runners: {repeats}"
        with TorcClient(url) as api:
            counts = api.get(f"workflows/{wf}/job_counts")["counts"]
            assert sum(counts.values()) == LEAVES + MIDDLE, counts
            done = api.get("results", workflow_id=wf, limit=1)["total_count"]
            assert done == counts.get("completed", 0), (done, counts)
            names_by_wf = {w["id"]: w for w in api.iter_items("workflows", name="created")}
            for new in created:  # every creation that reported success is whole
                names = [j["name"] for j in api.iter_items("jobs", workflow_id=new)]
                assert len(names) == spec_jobs and len(set(names)) == spec_jobs, (new, len(names))
                assert api.get("files", workflow_id=new, limit=1)["total_count"] == spec_jobs
            leftovers = {left: api.get("jobs", workflow_id=left, limit=1)["total_count"]
                         for left in set(names_by_wf) - set(created)}
            for left, n in leftovers.items():
                # An interrupted creation the client could not delete. With jobs, they are uninitialized:
                # never complete, nothing runs until initialized. Without jobs it is an empty workflow,
                # which (as in torc) counts as complete.
                complete = api.get(f"workflows/{left}/is_complete")["is_complete"]
                assert complete is (n == 0), (left, n, complete)
                assert api.get(f"workflows/{left}/is_uninitialized")["is_uninitialized"] is True
        # A leftover with jobs is named in the error the creator got, so the user can delete it. (One
        # without jobs may come from a kill after the server committed the workflow but before the
        # client read its id: nobody can name that one.)
        for left, n in leftovers.items():
            if n:
                assert any(f"workflow {left} " in m for m in failed_creates), (left, failed_creates[-5:])
    finally:
        kill_all(*servers)

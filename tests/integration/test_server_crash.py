"""A torc-server killed with SIGKILL in the middle of a run: a new server on the same port and
database carries on from what was committed, the runner (`torc run ID`, a real subprocess)
reconnects on its own, and every job runs exactly once (or, if it was in flight at the kill and
had to run again, is recorded as a new attempt). Nothing the runner reported is lost: it queues
starts and results while the server is down and sends them when it is back."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.integration.runner_support import TORC, clean_env, free_port, kill_all, wait_for
from tests.integration.runner_support import spawn_server_on as spawn_server
from torc.client import TorcClient, manager
from torc.client.from_spec import create_from_file


def counter(folder: Path, name: str) -> int:
    path = folder / f"{name}.runs"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_server_sigkilled_mid_run_restarts_from_its_database_and_the_runner_carries_on(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/torc-service/v1"
    db, log, counts = tmp_path / "torc.db", tmp_path / "server.log", tmp_path / "counts"
    counts.mkdir()
    short = [f"s{i:02d}" for i in range(30)]
    jobs = [{"name": name, "command": f"sleep 0.3; echo run >> {counts}/{name}.runs"} for name in short]
    jobs += [{"name": name, "command": f"sleep 4; echo run >> {counts}/{name}.runs"} for name in ("long1", "long2")]
    # a job that needs every other one: its release happens after the restart
    jobs.append({"name": "final", "command": f"echo run >> {counts}/final.runs",
                 "depends_on": [*short, "long1", "long2"]})
    spec = tmp_path / "crash.json"
    spec.write_text(json.dumps({"name": "crash", "jobs": jobs}))
    servers = [spawn_server(db, log, port)]
    runner = None
    runner_log = tmp_path / "runner.log"
    try:
        with TorcClient(url) as c:
            wf = create_from_file(c, spec)
            manager.initialize(c, wf)
            with open(runner_log, "w") as out:
                runner = subprocess.Popen(
                    [*TORC, "--url", url, "run", str(wf), "-o", str(tmp_path / "out"), "--no-progress",
                     "-p", "0.2", "--idle-timeout", "30", "--max-parallel-jobs", "4"],
                    cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, env=clean_env())

            def mid_run() -> bool:  # some jobs done, others running
                counts = c.get(f"workflows/{wf}/job_counts")["counts"]
                return counts["completed"] >= 6 and counts["running"] >= 2

            wait_for(mid_run, 30, "some jobs to complete while others run")
        servers[0].kill()  # SIGKILL: no shutdown, no flush beyond what SQLite committed
        servers[0].wait()
        killed_at = {name: counter(counts, name) for name in [*short, "long1", "long2", "final"]}
        # committed rows survive the kill: the database opens and holds the finished jobs
        with sqlite3.connect(db) as conn:
            completed_in_db = conn.execute("SELECT COUNT(*) FROM job WHERE status = 5").fetchone()[0]
        assert completed_in_db >= 6
        # jobs keep running while the server is down; their results queue up in the runner
        wait_for(lambda: "torc server unreachable" in runner_log.read_text(), 20, "the runner to notice")
        time.sleep(2)
        assert runner.poll() is None, runner_log.read_text()
        # jobs in flight at the kill finished while it was down (each writes its line at the end)
        ran_while_down = sum(counter(counts, n) for n in killed_at) - sum(killed_at.values())
        assert ran_while_down > 0, "no job finished while the server was down"
        servers.append(spawn_server(db, log, port))
        assert runner.wait(120) == 0, runner_log.read_text()

        with TorcClient(url) as c:
            statuses = {j["name"]: j["status"] for j in c.iter_items("jobs", workflow_id=wf)}
            assert set(statuses.values()) == {"completed"}, statuses
            assert c.get(f"workflows/{wf}/is_complete")["is_complete"] is True
            names = {j["id"]: j["name"] for j in c.iter_items("jobs", workflow_id=wf)}
            results: dict[str, list[dict[str, Any]]] = {}
            for r in c.iter_items("results", workflow_id=wf, all_runs=True):
                results.setdefault(names[r["job_id"]], []).append(r)
        for name in names.values():
            runs = counter(counts, name)
            rows = results.get(name, [])
            # every run of a job left exactly one result row: nothing was lost, nothing doubled
            assert runs == len(rows), (name, runs, rows)
            assert runs >= 1 and all(r["return_code"] == 0 for r in rows), (name, rows)
            if runs > 1:  # ran again after the crash: a new attempt, not an overwritten result
                assert len({(r["run_id"], r["attempt_id"]) for r in rows}) == runs, (name, rows)
        # the runner queued what finished while the server was down, so nothing had to run twice
        assert {name: counter(counts, name) for name in names.values()} == dict.fromkeys(names.values(), 1)
        assert sum(killed_at.values()) < len(names), "the kill came too late to test anything"
        assert "torc server unreachable" in runner_log.read_text()
    finally:
        kill_all(runner, *servers)

"""The record commands of the `torc` CLI (jobs, files, user-data, events, results, ...) run
through click's CliRunner against one real torc-server process shared by the module."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import Result

from tests.helpers import claim_all, make_jobs, make_workflow, run_job
from tests.integration.cli.support import (
    Invoke,
    assert_error,
    assert_usage_error,
    make_invoke,
    ok,
    start,
    table,
)
from torc.cli.event_stream import format_event
from torc.cli.resource_cmds import GROUPS
from torc.client import TorcClient
from torc.core.errors import TorcError


def test_all_groups_are_registered_with_reference_names():
    assert [g.name for g in GROUPS] == [
        "jobs", "files", "user-data", "events", "results", "resource-requirements", "failure-handlers",
        "job-dependencies", "compute-nodes", "scheduled-compute-nodes"]


def test_resource_requirements(cli, api):
    wf = make_workflow(api, "rr")
    rr = ok(cli, "resource-requirements", "create", wf, "-n", "big", "--num-cpus", 4, "-m", "2g", "-r", "PT30M")
    assert (rr["name"], rr["num_cpus"], rr["num_gpus"], rr["num_nodes"], rr["memory"], rr["runtime"]) == (
        "big", 4, 0, 1, "2g", "PT30M")
    assert ok(cli, "resource-requirements", "get", rr["id"]) == rr
    updated = ok(cli, "resource-requirements", "update", rr["id"], "--num-gpus", 2)
    assert updated == {**rr, "num_gpus": 2}
    listed = ok(cli, "resource-requirements", "list", wf)
    assert [r["name"] for r in listed] == ["default", "big"]
    out = table(cli, "resource-requirements", "list", wf, "--sort-by", "num_cpus", "--reverse-sort")
    assert out.index("big") < out.index("default") and "PT30M" in out
    assert ok(cli, "resource-requirements", "delete", rr["id"])["id"] == rr["id"]
    assert_error(cli("resource-requirements", "get", rr["id"]), "not found")
    assert_usage_error(cli("resource-requirements", "update", 1), "nothing to update")
    assert_error(cli("resource-requirements", "create", wf, "-n", "bad", "-m", "lots"), "memory")


def test_files(cli, api, tmp_path):
    wf = make_workflow(api, "files")
    present = tmp_path / "present.txt"
    present.write_text("x")
    f_in = ok(cli, "files", "create", wf, "-n", "in", "-p", present)
    f_gone = ok(cli, "files", "create", wf, "-n", "gone", "-p", tmp_path / "missing.txt")
    f_out = ok(cli, "files", "create", wf, "-n", "out", "-p", tmp_path / "out.txt")
    job = ok(cli, "jobs", "create", wf, "-n", "j", "-c", "true", "-i", f"{f_in['id']},{f_gone['id']}",
             "-o", f_out["id"])
    assert ok(cli, "files", "get", f_in["id"]) == f_in
    assert [f["name"] for f in ok(cli, "files", "list", wf)] == ["in", "gone", "out"]
    assert [f["name"] for f in ok(cli, "files", "list", wf, "--produced-by-job-id", job["id"])] == ["out"]
    assert ok(cli, "files", "update", f_out["id"], "-p", "/x/y")["path"] == "/x/y"
    required = ok(cli, "files", "list-required-existing", wf)
    assert {r["name"]: r["exists"] for r in required} == {"in": True, "gone": False}
    result = cli("files", "list-required-existing", wf, fmt="table")
    assert "present.txt" in result.stdout and "1 required file(s) do not exist" in result.stderr
    assert ok(cli, "files", "delete", f_out["id"])["name"] == "out"
    assert_error(cli("files", "get", f_out["id"]), "not found")


def test_jobs(cli, api, tmp_path):
    wf = make_workflow(api, "jobs")
    rr = ok(cli, "resource-requirements", "create", wf, "-n", "small", "--num-cpus", 2)
    a = ok(cli, "jobs", "create", wf, "-n", "a", "-c", "echo a", "-r", rr["id"])
    b = ok(cli, "jobs", "create", wf, "-n", "b", "-c", "echo b", "-b", a["id"])
    assert (a["status"], a["resource_requirements_id"], b["depends_on_job_ids"]) == (
        "uninitialized", rr["id"], [a["id"]])
    commands = tmp_path / "commands.txt"
    commands.write_text("# a comment\necho one\n\n   \necho two\n")
    made = ok(cli, "jobs", "create-from-file", wf, commands, "--cpus-per-job", 3, "--memory-per-job", "2g")
    assert [j["command"] for j in made["jobs"]] == ["echo one", "echo two"]
    assert [j["name"] for j in made["jobs"]] == ["job_3", "job_4"]
    assert (made["resource_requirements"]["num_cpus"], made["resource_requirements"]["memory"]) == (3, "2g")
    assert {j["resource_requirements_id"] for j in made["jobs"]} == {made["resource_requirements"]["id"]}

    listed = ok(cli, "jobs", "list", wf)
    assert [j["name"] for j in listed] == ["a", "b", "job_3", "job_4"]
    assert "depends_on_job_ids" not in listed[1]
    with_rel = ok(cli, "jobs", "list", wf, "--include-relationships")
    assert with_rel[1]["depends_on_job_ids"] == [a["id"]]
    assert [j["name"] for j in ok(cli, "jobs", "list", wf, "--upstream-job-id", a["id"])] == ["b"]
    assert [j["name"] for j in ok(cli, "jobs", "list", wf, "-l", 2, "--offset", 1)] == ["b", "job_3"]
    assert ok(cli, "jobs", "list", wf, "-s", "ready") == []
    out = table(cli, "jobs", "list", wf)
    assert "echo one" in out and "uninitialized" in out
    assert ok(cli, "jobs", "get", a["id"])["name"] == "a"

    renamed = ok(cli, "jobs", "update", a["id"], "-n", "a2", "-c", "echo a2")
    assert (renamed["name"], renamed["command"], renamed["resource_requirements_id"]) == ("a2", "echo a2", rr["id"])
    assert_usage_error(cli("jobs", "update", a["id"]), "nothing to update")

    joined = ok(cli, "jobs", "list-resource-requirements", wf)
    assert {r["job_name"]: (r["resource_requirements_name"], r["num_cpus"]) for r in joined} == {
        "a2": ("small", 2), "b": ("default", 1), "job_3": ("from_file_commands", 3),
        "job_4": ("from_file_commands", 3)}
    one = ok(cli, "jobs", "list-resource-requirements", wf, "-j", b["id"])
    assert [r["job_name"] for r in one] == ["b"]
    assert "from_file_commands" in table(cli, "jobs", "list-resource-requirements", wf)

    deleted = ok(cli, "jobs", "delete", made["jobs"][0]["id"], made["jobs"][1]["id"])
    assert [j["name"] for j in deleted] == ["job_3", "job_4"]
    assert_error(cli("jobs", "get", made["jobs"][0]["id"]), "not found")
    assert_error(cli("jobs", "list-resource-requirements", make_workflow(api, "other"), "-j", b["id"]),
                 "does not belong")
    result = cli("jobs", "delete-all", wf, fmt="table", input="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output
    assert len(ok(cli, "jobs", "list", wf)) == 2
    assert ok(cli, "jobs", "delete-all", wf, "--no-prompts") == {"workflow_id": wf, "deleted_count": 2}
    assert ok(cli, "jobs", "list", wf) == []


def test_jobs_errors(cli, api):
    wf = make_workflow(api, "job-errors")
    assert_error(cli("jobs", "get", 987654), "987654")
    assert_error(cli("jobs", "list", 987654), "not found")
    assert_error(cli("jobs", "create", wf, "-n", "x", "-c", "true", "-b", 987654))
    assert_usage_error(cli("jobs", "create", wf, "-n", "x", "-c", "true", "-b", "one"), "not an integer")
    assert_usage_error(cli("jobs", "create", wf, "-n", "x"), "--command")


def test_failure_handlers(cli, api):
    wf = make_workflow(api, "fh")
    rules = [{"exit_codes": [10], "max_retries": 2}]
    handler = api.post("failure_handlers", {"workflow_id": wf, "name": "retry10", "rules": json.dumps(rules)})
    a, _ = make_jobs(api, wf, [{"name": "a", "failure_handler_id": handler["id"]}, {"name": "b"}])
    assert ok(cli, "failure-handlers", "list", wf) == [handler]
    assert ok(cli, "failure-handlers", "get", handler["id"]) == handler
    out = table(cli, "failure-handlers", "get", handler["id"])
    assert "retry10" in out and '"max_retries": 2' in out  # rules pretty-printed
    assert "retry10" in table(cli, "failure-handlers", "list", wf)
    per_job = ok(cli, "jobs", "list-failure-handlers", wf)
    assert [(r["job_name"], r["failure_handler_name"]) for r in per_job] == [("a", "retry10")]
    assert json.loads(per_job[0]["rules"]) == rules
    assert ok(cli, "jobs", "list-failure-handlers", wf, "-j", a["id"])[0]["failure_handler_id"] == handler["id"]
    assert_error(cli("failure-handlers", "get", 987654), "not found")


def test_user_data(cli, api):
    wf = make_workflow(api, "ud")
    producer, consumer = make_jobs(api, wf, [{"name": "producer"}, {"name": "consumer"}])
    made = ok(cli, "user-data", "create", wf, "-n", "params", "-d", '{"alpha": [1, 2]}',
              "--consumer-job-id", consumer["id"])
    assert (made["name"], made["data"], made["is_ephemeral"]) == ("params", {"alpha": [1, 2]}, False)
    eph = ok(cli, "user-data", "create", wf, "-n", "scratch", "--ephemeral", "--producer-job-id", producer["id"])
    ok(cli, "user-data", "create", wf, "-n", "needed", "--consumer-job-id", consumer["id"])
    assert ok(cli, "user-data", "get", made["id"]) == made
    assert [u["name"] for u in ok(cli, "user-data", "list", wf)] == ["params", "scratch", "needed"]
    assert [u["name"] for u in ok(cli, "user-data", "list", wf, "--is-ephemeral")] == ["scratch"]
    assert [u["name"] for u in ok(cli, "user-data", "list", wf, "--not-ephemeral")] == ["params", "needed"]
    assert [u["name"] for u in ok(cli, "user-data", "list", wf, "--name", "params")] == ["params"]
    assert [u["name"] for u in ok(cli, "user-data", "list", wf, "--consumer-job-id", consumer["id"])] == [
        "params", "needed"]
    assert [u["name"] for u in ok(cli, "user-data", "list", wf, "--producer-job-id", producer["id"])] == ["scratch"]
    assert '{"alpha":[1,2]}' in table(cli, "user-data", "list", wf)
    assert [u["name"] for u in ok(cli, "user-data", "list-missing", wf)] == ["needed"]

    updated = ok(cli, "user-data", "update", eph["id"], "-d", "42", "--not-ephemeral", "-n", "kept")
    assert (updated["name"], updated["data"], updated["is_ephemeral"]) == ("kept", 42, False)
    assert_usage_error(cli("user-data", "update", eph["id"], "-d", "{nope"), "not valid JSON", "--data")
    assert_usage_error(cli("user-data", "create", wf, "-n", "x", "-d", "[1,"), "not valid JSON")
    assert ok(cli, "user-data", "delete", made["id"])["name"] == "params"
    assert_error(cli("user-data", "get", made["id"]), "not found")
    assert ok(cli, "user-data", "delete-all", wf) == {"workflow_id": wf, "deleted_count": 2}
    assert ok(cli, "user-data", "list", wf) == []


def test_events(cli, api):
    wf = make_workflow(api, "events")
    first = ok(cli, "events", "create", wf, "-d", '{"category": "user", "message": "hello"}')
    second = ok(cli, "events", "create", wf, "-d", '{"category": "other", "n": 2}')
    assert first["data"] == {"category": "user", "message": "hello"} and first["timestamp"] > 0
    assert [e["id"] for e in ok(cli, "events", "list", wf)] == [first["id"], second["id"]]
    assert [e["id"] for e in ok(cli, "events", "list", wf, "-t", "user")] == [first["id"]]
    assert [e["id"] for e in ok(cli, "events", "list", wf, "--after-timestamp", second["timestamp"])] == []
    latest = ok(cli, "events", "get-latest-event", wf)
    assert latest["id"] in (first["id"], second["id"]) and latest["timestamp"] == max(
        first["timestamp"], second["timestamp"])
    out = table(cli, "events", "list", wf)
    assert '"message":"hello"' in out and "other" in out
    assert_usage_error(cli("events", "create", wf, "-d", "not json"), "not valid JSON")
    assert_usage_error(cli("events", "create", wf, "-d", "[1, 2]"), "JSON object")
    assert_usage_error(cli("events", "create", wf), "--data")
    assert ok(cli, "events", "delete", first["id"])["id"] == first["id"]
    assert ok(cli, "events", "delete", second["id"])["id"] == second["id"]
    assert_error(cli("events", "get-latest-event", wf), "no events")
    assert_error(cli("events", "delete", first["id"]), "not found")


def _run_workflow(api: TorcClient, wf: int, node: int = 0) -> dict[str, dict[str, Any]]:
    """Initialize and run jobs a (ok), b (fails, rc 3) on compute node `node`."""
    make_jobs(api, wf, [{"name": "a"}, {"name": "b"}])
    api.post(f"workflows/{wf}/initialize_jobs")
    run_id = api.run_id(wf)
    jobs = {j["name"]: j for j in claim_all(api, wf)}
    run_job(api, jobs["a"], run_id, node=node)
    run_job(api, jobs["b"], run_id, return_code=3, node=node)
    return jobs


def test_results(cli, api):
    wf = make_workflow(api, "results")
    jobs = _run_workflow(api, wf)
    results = ok(cli, "results", "list", wf)
    assert sorted((r["job_id"], r["return_code"], r["status"]) for r in results) == [
        (jobs["a"]["id"], 0, "completed"), (jobs["b"]["id"], 3, "failed")]
    failed = ok(cli, "results", "list", wf, "--failed")
    assert [r["job_id"] for r in failed] == [jobs["b"]["id"]]
    assert [r["job_id"] for r in ok(cli, "results", "list", wf, "--return-code", 0)] == [jobs["a"]["id"]]
    assert [r["job_id"] for r in ok(cli, "results", "list", wf, "-s", "failed")] == [jobs["b"]["id"]]
    assert [r["job_id"] for r in ok(cli, "results", "list", wf, "-j", jobs["a"]["id"])] == [jobs["a"]["id"]]
    assert len(ok(cli, "results", "list", wf, "-r", api.run_id(wf), "--all-runs", "--compute-node", 0)) == 2
    assert ok(cli, "results", "list", wf, "-r", 999) == []
    assert ok(cli, "results", "get", failed[0]["id"]) == failed[0]
    out = table(cli, "results", "list", wf)
    assert "completed" in out and "failed" in out
    assert ok(cli, "results", "delete", failed[0]["id"])["id"] == failed[0]["id"]
    assert_error(cli("results", "get", failed[0]["id"]), "not found")


def test_job_dependencies(cli, api):
    wf = make_workflow(api, "deps")
    f = api.post("files", {"workflow_id": wf, "name": "f", "path": "/tmp/f"})
    u = api.post("user_data", {"workflow_id": wf, "name": "u"})
    a, b = make_jobs(api, wf, [{"name": "a", "output_file_ids": [f["id"]], "output_user_data_ids": [u["id"]]},
                               {"name": "b", "input_file_ids": [f["id"]], "input_user_data_ids": [u["id"]]}])
    c = make_jobs(api, wf, [{"name": "c", "depends_on_job_ids": [a["id"], b["id"]]}])[0]
    job_job = ok(cli, "job-dependencies", "job-job", wf)
    assert [(d["job_name"], d["depends_on_job_name"]) for d in job_job] == [("c", "a"), ("c", "b")]
    assert len(ok(cli, "job-dependencies", "job-job", wf, "-l", 1, "--offset", 1)) == 1
    job_file = ok(cli, "job-dependencies", "job-file", wf)
    assert [(r["file_name"], r["producer_job_name"], r["consumer_job_name"]) for r in job_file] == [("f", "a", "b")]
    job_ud = ok(cli, "job-dependencies", "job-user-data", wf)
    assert [(r["user_data_name"], r["producer_job_id"], r["consumer_job_id"]) for r in job_ud] == [
        ("u", a["id"], b["id"])]
    out = table(cli, "job-dependencies", "job-job", wf)
    assert "depends_on_job_name" in out and str(c["id"]) in out
    assert_error(cli("job-dependencies", "job-file", 987654), "not found")


def test_compute_nodes_and_scheduled_compute_nodes(cli, api):
    wf = make_workflow(api, "nodes")
    scn = api.post("scheduled_compute_nodes", {"workflow_id": wf, "scheduler_id": 4242, "scheduler_config_id": 1,
                                               "scheduler_type": "slurm", "status": "active"})
    other = api.post("scheduled_compute_nodes", {"workflow_id": wf, "scheduler_id": 4343, "scheduler_config_id": 2,
                                                 "scheduler_type": "slurm", "status": "pending"})
    node = {"workflow_id": wf, "hostname": "n1", "pid": 11, "start_time": "2026-01-01T00:00:00Z", "num_cpus": 4,
            "memory_gb": 8, "num_gpus": 0, "num_nodes": 1, "compute_node_type": "local", "is_active": True}
    cn = api.post("compute_nodes", {**node, "scheduler": {"scheduled_compute_node_id": scn["id"]}})
    api.post("compute_nodes", {**node, "hostname": "n2", "pid": 12})
    _run_workflow(api, wf, node=cn["id"])

    assert ok(cli, "compute-nodes", "get", cn["id"]) == cn
    assert [n["hostname"] for n in ok(cli, "compute-nodes", "list", wf)] == ["n1", "n2"]
    assert [n["hostname"] for n in ok(cli, "compute-nodes", "list", wf, "--scheduled-compute-node", scn["id"])] == [
        "n1"]
    assert "n2" in table(cli, "compute-nodes", "list", wf)
    assert_error(cli("compute-nodes", "get", 987654), "not found")

    assert ok(cli, "scheduled-compute-nodes", "get", scn["id"]) == scn
    assert [s["id"] for s in ok(cli, "scheduled-compute-nodes", "list", wf)] == [scn["id"], other["id"]]
    assert [s["id"] for s in ok(cli, "scheduled-compute-nodes", "list", wf, "--status", "pending")] == [other["id"]]
    assert [s["id"] for s in ok(cli, "scheduled-compute-nodes", "list", wf, "--scheduler-id", 4242)] == [scn["id"]]
    assert [s["id"] for s in ok(cli, "scheduled-compute-nodes", "list", wf, "--scheduler-config-id", 2)] == [
        other["id"]]
    ran = ok(cli, "scheduled-compute-nodes", "list-jobs", scn["id"])
    assert sorted((r["job_name"], r["return_code"], r["hostname"]) for r in ran) == [("a", 0, "n1"), ("b", 3, "n1")]
    assert ok(cli, "scheduled-compute-nodes", "list-jobs", other["id"]) == []
    assert "4343" in table(cli, "scheduled-compute-nodes", "list", wf)
    assert_error(cli("scheduled-compute-nodes", "list-jobs", 987654), "not found")


# ---- events monitor -----------------------------------------------------------------------------


class Monitor:
    """`torc events monitor` running in a thread; it appends each event (JSON line) to a file."""

    def __init__(self, invoke: Invoke, wf: int, log: Path, minutes: float, fmt: str = "json"):
        self.log, self.result = log, None
        args = ("events", "monitor", wf, "-d", minutes, "--filename", log)
        self.thread = threading.Thread(target=self._run, args=(invoke, args, fmt), daemon=True)
        self.thread.start()

    def _run(self, invoke: Invoke, args: tuple, fmt: str) -> None:
        self.result = invoke(*args, fmt=fmt)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def types(self) -> list[str]:
        return [e["event_type"] for e in self.events()]

    def wait_for(self, trigger: Callable[[], Any], seen: Callable[[list[str]], bool], timeout: float = 10) -> None:
        """Call `trigger` until the monitor has logged what `seen` wants (the stream has no replay)."""
        deadline = time.monotonic() + timeout
        while not seen(self.types()):
            assert time.monotonic() < deadline and self.thread.is_alive(), (self.types(), self.result)
            trigger()
            time.sleep(0.1)

    def finish(self) -> Result:
        self.thread.join(30)
        assert not self.thread.is_alive() and self.result is not None
        return self.result


def test_events_monitor_follows_job_events(cli, api, tmp_path):
    wf = make_workflow(api, "monitor")
    make_jobs(api, wf, [{"name": "a"}, {"name": "b"}])
    monitor = Monitor(cli, wf, tmp_path / "events.jsonl", minutes=0.05)
    # initialize publishes workflow_started / workflow_reinitialized; repeat until subscribed
    monitor.wait_for(lambda: api.post(f"workflows/{wf}/initialize_jobs", only_uninitialized=True),
                     lambda types: bool(types))
    run_id = api.run_id(wf)
    jobs = {j["name"]: j for j in claim_all(api, wf)}
    run_job(api, jobs["a"], run_id)
    run_job(api, jobs["b"], run_id, return_code=1)
    result = monitor.finish()
    assert result.exit_code == 0, result.output
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert printed == monitor.events()
    types = [e["event_type"] for e in printed]
    assert {"job_started", "job_completed", "job_failed"} <= set(types)
    assert types.index("job_completed") > types.index("job_started")
    completed = next(e for e in printed if e["event_type"] == "job_completed")
    assert completed["workflow_id"] == wf and completed["severity"] == "info" and completed["timestamp"] > 0
    assert completed["data"]["job_id"] == jobs["a"]["id"]
    assert "Connected to the event stream" in result.stderr and "Stopped after" in result.stderr


def test_events_monitor_errors(cli):
    assert_error(cli("events", "monitor", 987654, "-d", 0.01), "not found")
    assert_usage_error(cli("events", "monitor", 1, "--level", "loud"), "--level")
    assert_usage_error(cli("events", "monitor", 1, "-d", 0), "--duration")


def test_format_event_line():
    line = format_event({"timestamp": 1_700_000_000_123, "event_type": "job_failed", "severity": "error",
                         "data": {"job_id": 7, "return_code": 1, "text": "x" * 500}})
    assert ".123  job_failed" in line and " error " in line and '{"job_id":7,"return_code":1' in line
    assert line.endswith("...") and len(line) < 250


def test_events_monitor_reconnects_after_server_restart(tmp_path):
    """Kill the server under a table-format monitor, start it again on the same port: events flow again."""
    first = start(tmp_path)
    port = first.url.split(":")[2].split("/")[0]
    with first.client() as api:
        wf = make_workflow(api, "restart")
    invoke = make_invoke(first.url)
    monitor = Monitor(invoke, wf, tmp_path / "events.jsonl", minutes=0.12, fmt="table")
    with first.client() as api:
        monitor.wait_for(lambda: api.post(f"workflows/{wf}/initialize_jobs"), lambda types: bool(types))
    first.stop(signal.SIGKILL)
    second = _server_on_port(tmp_path, port)
    try:
        with TorcClient(first.url) as api:
            before = len(monitor.types())
            monitor.wait_for(lambda: api.post(f"workflows/{wf}/initialize_jobs"),
                             lambda types: len(types) > before, timeout=15)
        result = monitor.finish()
    finally:
        second.terminate()
        second.wait(15)
    assert result.exit_code == 0, result.output
    assert "Reconnected to the event stream" in result.stderr and "reconnecting in" in result.stderr
    assert result.stdout.count("workflow_started") == len(monitor.types())  # one line per event


def _server_on_port(tmp: Path, port: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torc.server.cli", "run", "--host", "127.0.0.1", "--port", port,
           "--database", str(tmp / "torc.db")]
    with open(tmp / "server2.log", "a") as err:
        process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    with TorcClient(f"http://127.0.0.1:{port}/torc-service/v1", timeout=2) as client:
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return process
            except TorcError:
                assert time.monotonic() < deadline and process.poll() is None, (tmp / "server2.log").read_text()
                time.sleep(0.05)

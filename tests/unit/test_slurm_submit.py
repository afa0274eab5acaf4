"""Slurm submission without a cluster: batch scripts, fake sbatch/sacct on PATH (refusals, a busy
controller), allocation resources from SLURM_* variables, and the runner's allocation end."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from torc.client import TorcClient
from torc.runner.local import LocalRunner, RunnerOptions
from torc.slurm import commands
from torc.slurm.allocation import slurm_resources
from torc.slurm.commands import SlurmError, sacct
from torc.slurm.submit import batch_script, cancel_allocations, schedule_slurm_nodes


def fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def fake_bin(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("TORC_SLURM_RETRY_SECONDS", "5")
    return folder


def workflow_with_scheduler(api: TorcClient, **scheduler) -> tuple[int, int]:
    wf = api.create_workflow("slurm_unit", slurm_defaults='{"account": "dflt", "qos": "high", "exclusive": true}')
    config = api.post("slurm_schedulers", {"workflow_id": wf["id"], "name": "s", "account": "acct",
                                           "walltime": "00:30:00", "nodes": 1, **scheduler})
    return wf["id"], config["id"]


def test_batch_script_options_runner_line_and_srun():
    text = batch_script(workflow_id=3, scn_id=7, url="http://h:1/torc-service/v1", output_dir=Path("/o"),
                        scheduler={"account": "acct", "walltime": "01:00:00", "nodes": 2, "mem": "8G",
                                   "partition": "short", "qos": "normal", "extra": "--constraint=x"},
                        defaults={"account": "dflt", "qos": "high", "exclusive": True, "partition": "debug"},
                        prefix="wk", poll_interval=5.0, max_parallel_jobs=4, start_one_worker_per_node=True)
    lines = text.splitlines()
    assert lines[:6] == ["#!/bin/bash", "#SBATCH --account=acct", "#SBATCH --job-name=wk_wf3_7",
                         "#SBATCH --time=01:00:00", "#SBATCH --output=/o/slurm_output_wf3_sl%j.o",
                         "#SBATCH --error=/o/slurm_output_wf3_sl%j.e"]
    assert "#SBATCH --qos=normal" in lines and "#SBATCH --qos=high" not in lines  # the scheduler overrides
    assert "#SBATCH --partition=short" in lines and "#SBATCH --exclusive" in lines
    assert "#SBATCH --nodes=2" in lines and "#SBATCH --mem=8G" in lines
    assert lines.index("#SBATCH --constraint=x") > lines.index("#SBATCH --mem=8G")  # extra comes last
    assert "export TORC_SCHEDULED_COMPUTE_NODE_ID=7" in lines
    assert lines.index('export TORC_SLURM_MEM_PER_CPU="${SLURM_MEM_PER_CPU:-}"') \
        < lines.index("unset SLURM_MEM_PER_CPU SLURM_MEM_PER_GPU")
    assert lines[-1].startswith("srun --ntasks-per-node=1 --nodes=$SLURM_JOB_NUM_NODES ")
    assert lines[-1].endswith("http://h:1/torc-service/v1 3 /o --poll-interval 5.0 --max-parallel-jobs 4")


def test_submission_stores_the_slurm_job_id_and_removes_the_script(api, fake_bin, tmp_path):
    fake(fake_bin, "sbatch", 'cp "$2" "$(dirname "$2")/submitted.sh"; echo "4242;cluster"\n')
    wf, config = workflow_with_scheduler(api)
    nodes = schedule_slurm_nodes(api, wf, config, 2, tmp_path / "out")
    assert [(n["scheduler_id"], n["status"], n["scheduler_type"]) for n in nodes] == [(4242, "pending", "slurm")] * 2
    assert not list((tmp_path / "out").glob("worker_*.sh"))
    assert "#SBATCH --account=acct" in (tmp_path / "out" / "submitted.sh").read_text()
    schedule_slurm_nodes(api, wf, config, 1, tmp_path / "kept", keep_submission_scripts=True)
    assert len(list((tmp_path / "kept").glob("worker_*.sh"))) == 1


def test_a_refused_request_names_the_scheduler_quotes_slurm_and_leaves_nothing(api, fake_bin, tmp_path):
    fake(fake_bin, "sbatch", 'echo "sbatch: error: Memory specification can not be satisfied" >&2; exit 1\n')
    wf, config = workflow_with_scheduler(api, mem="100000")
    with pytest.raises(SlurmError) as err:
        schedule_slurm_nodes(api, wf, config, 1, tmp_path / "out")
    assert "Slurm scheduler refused the allocation request" in err.value.message
    assert "Memory specification can not be satisfied" in err.value.message
    assert api.get("scheduled_compute_nodes", workflow_id=wf)["items"] == []
    assert not list((tmp_path / "out").glob("*.sh"))


def test_a_busy_controller_is_retried_then_reported(api, fake_bin, tmp_path, monkeypatch):
    count = tmp_path / "count"
    fake(fake_bin, "sbatch", f'n=$(cat {count} 2>/dev/null || echo 0); echo $((n+1)) > {count}\n'
                             'if [ "$n" -lt 1 ]; then echo "sbatch: error: Batch job submission failed: '
                             'Socket timed out on send/recv operation" >&2; exit 1; fi\necho 77\n')
    wf, config = workflow_with_scheduler(api)
    assert schedule_slurm_nodes(api, wf, config, 1, tmp_path / "out")[0]["scheduler_id"] == 77
    assert count.read_text().strip() == "2"
    fake(fake_bin, "sbatch", 'echo "sbatch: error: Unable to contact slurm controller (connect failure)" >&2; exit 1\n')
    monkeypatch.setenv("TORC_SLURM_RETRY_SECONDS", "0")
    with pytest.raises(SlurmError, match="Unable to contact slurm controller"):
        schedule_slurm_nodes(api, wf, config, 1, tmp_path / "out")
    assert len(api.get("scheduled_compute_nodes", workflow_id=wf)["items"]) == 1


def test_cancel_allocations_scancels_live_ones(api, fake_bin, tmp_path):
    fake(fake_bin, "sbatch", "echo 900\n")
    fake(fake_bin, "scancel", f'echo "$@" >> {tmp_path}/scanceled\n')
    wf, config = workflow_with_scheduler(api)
    schedule_slurm_nodes(api, wf, config, 1, tmp_path / "out")
    assert cancel_allocations(api, wf) == ["900"]
    assert (tmp_path / "scanceled").read_text().split() == ["900"]
    assert [n["status"] for n in api.get("scheduled_compute_nodes", workflow_id=wf)["items"]] == ["complete"]
    assert cancel_allocations(api, wf) == []


def test_sacct_summary_takes_the_largest_step_rss(fake_bin):
    fake(fake_bin, "sacct", "cat <<'EOF'\n"
                            "55|TIMEOUT|0:0|00:01:02||localhost|2026-01-01T10:00:00|2026-01-01T10:00:01|2026-01-01T10:01:03\n"
                            "55.batch|CANCELLED|0:15|00:01:03|2048K|localhost|x|y|z\n"
                            "55.0|COMPLETED|0:0|00:00:10|1.5M|localhost|x|y|z\nEOF\n")
    acct = sacct("55")
    assert (acct.state, acct.exit_code, acct.elapsed, acct.max_rss, acct.finished) == \
        ("TIMEOUT", "0:0", "00:01:02", "2048K", True)
    fake(fake_bin, "sacct", "true\n")
    assert sacct("56") is None


def test_missing_slurm_commands_are_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SlurmError, match="squeue not found on PATH"):
        commands.squeue_states()


def test_resources_from_slurm_variables():
    assert slurm_resources({"SLURM_CPUS_ON_NODE": "4", "SLURM_MEM_PER_NODE": "8192", "SLURM_JOB_GPUS": "0,1",
                            "SLURM_JOB_NUM_NODES": "2"}) == {"num_cpus": 4, "memory_gb": 8.0, "num_gpus": 2,
                                                              "num_nodes": 2}
    assert slurm_resources({"SLURM_CPUS_ON_NODE": "2", "SLURM_MEM_PER_CPU": "512", "SLURM_JOB_NUM_NODES": "3"}) \
        == {"num_cpus": 2, "memory_gb": 1.0, "num_gpus": 0, "num_nodes": 3}
    # one runner per node under srun, after the script unset SLURM_MEM_PER_CPU (saved for the runner)
    assert slurm_resources({"SLURM_CPUS_ON_NODE": "2", "TORC_SLURM_MEM_PER_CPU": "512", "SLURM_JOB_NUM_NODES": "3",
                            "SLURM_STEP_ID": "0"}) == {"num_cpus": 2, "memory_gb": 1.0, "num_gpus": 0, "num_nodes": 1}


def _runner_workflow(client: TorcClient, jobs: dict[str, tuple[str, str | None]]) -> int:
    wf = client.create_workflow("allocation")["id"]
    for name, (command, runtime) in jobs.items():
        body = {"workflow_id": wf, "name": name, "command": command}
        if runtime:
            body["resource_requirements_id"] = client.post("resource_requirements", {
                "workflow_id": wf, "name": name, "num_cpus": 1, "memory": "10m", "runtime": runtime})["id"]
        client.post("jobs", body)
    client.post(f"workflows/{wf}/initialize_jobs")
    return wf


def test_the_runner_claims_what_fits_before_the_end_and_stops_at_it(tmp_path):
    from tests.integration.conftest import start_server

    server = start_server(tmp_path / "torc.db", tmp_path / "server.log")
    try:
        with server.client() as client:
            # claims carry the time left: the 1-minute job fits in 90 s, the 2-hour one does not
            wf = _runner_workflow(client, {"fits": ("true", "PT1M"), "too_long": ("true", "PT2H")})
            options = RunnerOptions(output_dir=tmp_path / "out", num_cpus=2, memory_gb=1, poll_interval=0.2,
                                    idle_timeout=1, end_time=time.time() + 90, progress=False,
                                    compute_node_type="slurm", scheduler_info={"slurm_job_id": "1"})
            LocalRunner(client, wf, options, say=lambda m: None).run()
            jobs = {j["name"]: j["status"] for j in client.iter_items("jobs", workflow_id=wf)}
            assert jobs == {"fits": "completed", "too_long": "ready"}
            node = next(client.iter_items("compute_nodes", workflow_id=wf))
            assert node["compute_node_type"] == "slurm" and node["scheduler"] == {"slurm_job_id": "1"}
            assert node["time_limit"].startswith("PT1M")
            # at the end, running jobs are stopped and recorded terminated; one whose runtime was not up
            # goes back to ready for another allocation (queue mode claims ignore runtimes), one past
            # its runtime was stopped by its runtime limit and stays terminated
            wf = _runner_workflow(client, {"long": ("sleep 60", "PT1H"), "over": ("sleep 60", "PT1S")})
            options.end_time, options.max_parallel_jobs, options.idle_timeout = time.time() + 4, 2, 30
            started = time.monotonic()
            summary = LocalRunner(client, wf, options, say=lambda m: None).run()
            assert time.monotonic() - started < 15
            jobs = {j["name"]: j for j in client.iter_items("jobs", workflow_id=wf)}
            assert (jobs["long"]["status"], jobs["long"]["attempt_id"]) == ("ready", 2)
            assert (jobs["over"]["status"], jobs["over"]["attempt_id"]) == ("terminated", 1)
            results = {r["job_id"]: r for r in client.iter_items("results", workflow_id=wf, all_runs=True)}
            assert results[jobs["long"]["id"]]["status"] == "terminated", "the stopped attempt keeps its result"
            assert summary.terminated == 1 and summary.retried == 1 and not summary.interrupted
            # queue mode: no claims once less than min_time_for_new_jobs is left
            wf = _runner_workflow(client, {"late": ("true", None)})
            options.end_time, options.min_time_for_new_jobs, options.idle_timeout = time.time() + 3, 10, 1
            LocalRunner(client, wf, options, say=lambda m: None).run()
            assert [j["status"] for j in client.iter_items("jobs", workflow_id=wf)] == ["ready"]
    finally:
        server.stop()


def test_cli_schedule_nodes_and_submit_without_slurm_actions(tmp_path, fake_bin):
    from tests.integration.conftest import start_server

    fake(fake_bin, "sbatch", "echo 31337\n")
    server = start_server(tmp_path / "torc.db", tmp_path / "server.log")

    def torc(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "torc.cli.main", "--url", server.url, *args],
                              capture_output=True, text=True, timeout=60)

    try:
        spec = tmp_path / "plain.yaml"
        spec.write_text("name: plain\nslurm_schedulers:\n  - {name: s, account: a, walltime: '00:05:00'}\n"
                        "jobs:\n  - {name: j, command: 'true'}\n")
        proc = torc("submit", str(spec), "-o", str(tmp_path / "out"))
        assert proc.returncode == 1
        assert "no pending on_workflow_start schedule_nodes action with scheduler_type slurm" in proc.stderr
        assert "torc slurm schedule-nodes 1" in proc.stderr
        proc = torc("-f", "json", "slurm", "schedule-nodes", "1", "-n", "2", "-o", str(tmp_path / "out"))
        assert proc.returncode == 0, proc.stderr
        nodes = json.loads(proc.stdout)["scheduled_compute_nodes"]
        assert [(n["scheduler_id"], n["status"]) for n in nodes] == [(31337, "pending")] * 2
        # on_jobs_ready actions whose jobs are ready at once are submitted too
        staged = tmp_path / "staged.yaml"
        staged.write_text("name: staged\nslurm_schedulers:\n  - {name: s, account: a, walltime: '00:05:00'}\n"
                          "jobs:\n  - {name: j, command: 'true'}\n  - {name: k, command: 'true', depends_on: [j]}\n"
                          "actions:\n  - {trigger_type: on_jobs_ready, action_type: schedule_nodes, scheduler: s,"
                          " scheduler_type: slurm, jobs: [j]}\n  - {trigger_type: on_jobs_ready, action_type:"
                          " schedule_nodes, scheduler: s, scheduler_type: slurm, jobs: [k]}\n")
        proc = torc("-f", "json", "submit", str(staged), "-o", str(tmp_path / "out"))
        assert proc.returncode == 0, proc.stderr
        assert len(json.loads(proc.stdout)["scheduled_compute_nodes"]) == 1  # k's waits for j
        proc = torc("--database", str(tmp_path / "other.db"), "slurm", "schedule-nodes", "1")
        assert proc.returncode == 1 and "need a torc-server that compute nodes can reach" in proc.stderr
    finally:
        server.stop()

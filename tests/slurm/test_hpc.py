"""`torc hpc` against the real single-node Slurm (partition `debug`, 2 CPUs, 4000 MB), and the
`torc slurm create/list/get/update/delete` scheduler configs against a real server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from torc.slurm.detect import cluster_profile

TORC = [sys.executable, "-m", "torc.cli.main"]


def torc(*args: str, cwd: Path, url: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORC_")}
    env["XDG_CONFIG_HOME"] = str(cwd / "xdg")  # no user config file leaks in
    cmd = [*TORC, *(["--url", url] if url else []), *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, env=env)
    if check:
        assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


# ---- the live cluster ---------------------------------------------------------------------------


def test_cluster_profile_finds_the_debug_partition(slurm):
    notes: list[str] = []
    profile = cluster_profile(notes=notes)
    assert notes == []
    debug = profile.get_partition("debug")
    assert debug.cpus_per_node == 2
    assert 3500 <= debug.memory_mb <= 4000
    assert debug.max_walltime_secs is None  # MaxTime=UNLIMITED
    assert not debug.has_gpus
    assert profile.metadata.get("default_partition") == "debug"
    assert profile.detect(env={})  # the hostname pattern matches this machine


def test_hpc_detect_falls_back_to_the_live_cluster(slurm, tmp_path):
    out = json.loads(torc("-f", "json", "hpc", "detect", cwd=tmp_path).stdout)
    assert out["detected"] is True
    assert out["profile"]["source"] == "cluster"
    assert [p["name"] for p in out["profile"]["partitions"]] == ["debug"]
    assert "live Slurm cluster" in out["how"]
    text = torc("hpc", "detect", cwd=tmp_path).stdout
    assert "debug" in text and "live Slurm cluster" in text


def test_hpc_generate_writes_a_profile_that_torc_then_detects(slurm, tmp_path):
    torc("hpc", "generate", "--name", "ci", "-o", "profile.toml", cwd=tmp_path)
    text = (tmp_path / "profile.toml").read_text()
    table = tomllib.loads(text)["client"]["hpc"]["custom_profiles"]["ci"]
    (debug,) = table["partitions"]
    assert debug["name"] == "debug" and debug["cpus_per_node"] == 2 and 3500 <= debug["memory_mb"] <= 4000
    assert "max_walltime_secs" not in debug
    # used as ./torc.toml, it is a configured profile that matches here
    (tmp_path / "torc.toml").write_text(text)
    rows = json.loads(torc("-f", "json", "hpc", "list", cwd=tmp_path).stdout)
    assert {r["name"]: r["detected"] for r in rows} == {"kestrel": False, "ci": True}
    detected = json.loads(torc("-f", "json", "hpc", "detect", cwd=tmp_path).stdout)
    assert detected["profile"]["name"] == "ci" and detected["profile"]["source"] == "config"
    shown = torc("hpc", "show", "ci", cwd=tmp_path).stdout
    assert "debug" in shown
    assert "debug" in torc("hpc", "partitions", "ci", "--cpu", cwd=tmp_path).stdout
    assert json.loads(torc("-f", "json", "hpc", "partitions", "ci", "--gpu", cwd=tmp_path).stdout) == []


def test_hpc_match_on_the_live_cluster(slurm, tmp_path):
    out = json.loads(torc("-f", "json", "hpc", "match", "--cpus", "2", "--memory", "3g", "--walltime", "8h",
                          cwd=tmp_path).stdout)
    assert out["best"] == "debug" and [p["name"] for p in out["partitions"]] == ["debug"]
    too_big = torc("hpc", "match", "--cpus", "4", "--memory", "1g", "--walltime", "1h", cwd=tmp_path, check=False)
    assert too_big.returncode == 1
    assert "debug: 4 CPUs > 2 per node" in too_big.stdout
    assert torc("hpc", "match", "--cpus", "1", "--memory", "8g", cwd=tmp_path, check=False).returncode == 1
    kestrel = json.loads(torc("-f", "json", "hpc", "match", "--profile", "kestrel", "--cpus", "2", "--memory", "3g",
                              "--walltime", "8h", cwd=tmp_path).stdout)
    assert kestrel["best"] == "standard"


def test_slurm_generate_with_the_live_cluster_plans_requests_slurm_accepts(slurm, tmp_path):
    spec = {
        "name": "two_stage",
        "resource_requirements": [{"name": "one", "num_cpus": 1, "memory": "1g", "runtime": "PT2M"}],
        "jobs": [{"name": f"a{i}", "command": "true", "resource_requirements": "one"} for i in range(3)]
        + [{"name": "b", "command": "true", "resource_requirements": "one", "depends_on": ["a0", "a1", "a2"]}],
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    dry = torc("slurm", "generate", "--account", "acct", "--dry-run", "spec.yaml", cwd=tmp_path)
    assert "2 scheduler(s), 3 allocation(s). Dry run" in dry.stdout
    plan = json.loads(torc("-f", "json", "slurm", "generate", "-a", "acct", "--dry-run", "spec.yaml",
                           cwd=tmp_path).stdout)
    assert [(s["scheduler"], s["partition"], s["jobs"], s["allocations"]) for s in plan["schedulers"]] == [
        ("one_scheduler", "debug", 3, 2), ("one_deferred_scheduler", "debug", 1, 1)]
    assert not (tmp_path / "out.yaml").exists()
    torc("slurm", "generate", "--account", "acct", "-o", "out.yaml", "spec.yaml", cwd=tmp_path)
    out = yaml.safe_load((tmp_path / "out.yaml").read_text())
    schedulers = {s["name"]: s for s in out["slurm_schedulers"]}
    assert set(schedulers) == {"one_scheduler", "one_deferred_scheduler"}
    first = schedulers["one_scheduler"]
    assert first == {"name": "one_scheduler", "account": "acct", "nodes": 1, "walltime": "00:03:00", "mem": "2g",
                     "extra": "--cpus-per-task=2"}
    assert [a["trigger_type"] for a in out["actions"]] == ["on_workflow_start", "on_jobs_ready"]
    assert out["actions"][0]["num_allocations"] == 2  # 3 jobs, 2 at a time per node, one 2-minute slot
    # Slurm accepts the request as planned (no account: the test cluster has none)
    check = subprocess.run(["sbatch", "--test-only", f"--nodes={first['nodes']}", f"--time={first['walltime']}",
                            f"--mem={first['mem']}", first["extra"], "--wrap", "true"],
                           capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    # a second run refuses to replace the schedulers unless asked
    again = torc("slurm", "generate", "-a", "acct", "out.yaml", cwd=tmp_path, check=False)
    assert again.returncode == 1 and "--overwrite" in again.stderr
    torc("slurm", "generate", "-a", "acct", "--overwrite", "-o", "out.json", "out.yaml", cwd=tmp_path)
    assert json.loads((tmp_path / "out.json").read_text())["slurm_schedulers"] == out["slurm_schedulers"]


def test_slurm_generate_reports_a_job_that_fits_nowhere(slurm, tmp_path):
    spec = {"name": "big", "resource_requirements": [{"name": "huge", "num_cpus": 8, "memory": "1g"}],
            "jobs": [{"name": "crunch", "command": "true", "resource_requirements": "huge"}]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    out = torc("slurm", "generate", "-a", "acct", "spec.json", cwd=tmp_path, check=False)
    assert out.returncode == 1
    assert "job 'crunch' (resource requirements 'huge') fits no partition" in out.stderr
    assert "debug: 8 CPUs > 2 per node" in out.stderr


# ---- scheduler configs on a real server (no Slurm needed) ---------------------------------------


def test_slurm_scheduler_configs_crud(server, tmp_path):
    with server.client() as client:
        wf = client.create_workflow("slurm_crud")["id"]
    url = server.url
    created = json.loads(torc("-f", "json", "slurm", "create", str(wf), "-n", "work", "-a", "proj", "-N", "2",
                              "-W", "02:00:00", "-m", "3g", "-p", "debug", "-e", "--exclusive", cwd=tmp_path,
                              url=url).stdout)
    assert {k: created[k] for k in ("workflow_id", "name", "account", "nodes", "walltime", "mem", "partition",
                                    "qos", "extra")} == {
        "workflow_id": wf, "name": "work", "account": "proj", "nodes": 2, "walltime": "02:00:00", "mem": "3g",
        "partition": "debug", "qos": "normal", "extra": "--exclusive"}
    sid = created["id"]
    torc("slurm", "create", str(wf), "-n", "other", "-a", "proj", cwd=tmp_path, url=url)
    listed = json.loads(torc("-f", "json", "slurm", "list", str(wf), cwd=tmp_path, url=url).stdout)
    assert [s["name"] for s in listed] == ["work", "other"]
    assert listed[1]["walltime"] == "04:00:00" and listed[1]["nodes"] == 1
    table = torc("slurm", "list", str(wf), cwd=tmp_path, url=url).stdout
    assert "work" in table and "other" in table
    updated = json.loads(torc("-f", "json", "slurm", "update", str(sid), "-W", "1-00:00:00", "-N", "1",
                              cwd=tmp_path, url=url).stdout)
    assert (updated["walltime"], updated["nodes"], updated["account"]) == ("1-00:00:00", 1, "proj")
    got = json.loads(torc("-f", "json", "slurm", "get", str(sid), cwd=tmp_path, url=url).stdout)
    assert got == updated
    assert "1-00:00:00" in torc("slurm", "get", str(sid), cwd=tmp_path, url=url).stdout
    bad = torc("slurm", "update", str(sid), "-W", "soon", cwd=tmp_path, url=url, check=False)
    assert bad.returncode == 2 and "walltime" in bad.stderr
    nothing = torc("slurm", "update", str(sid), cwd=tmp_path, url=url, check=False)
    assert nothing.returncode == 2 and "nothing to update" in nothing.stderr
    assert "Deleted" in torc("slurm", "delete", str(sid), cwd=tmp_path, url=url).stdout
    missing = torc("slurm", "get", str(sid), cwd=tmp_path, url=url, check=False)
    assert missing.returncode == 1 and "not found" in missing.stderr
    listed = json.loads(torc("-f", "json", "slurm", "list", str(wf), cwd=tmp_path, url=url).stdout)
    assert [s["name"] for s in listed] == ["other"]


@pytest.mark.timeout(480)
def test_a_generated_plan_runs_on_the_cluster(slurm, server, tmp_path):
    """End to end: plan with the live profile (`slurm generate`), then `torc submit-slurm` (plan +
    create + submit): every stage gets its allocation and every job completes."""
    spec = {
        "name": "planned_e2e",
        "resource_requirements": [{"name": "one", "num_cpus": 1, "memory": "500m", "runtime": "PT2M"}],
        "jobs": [{"name": "a1", "command": "echo a1", "resource_requirements": "one"},
                 {"name": "a2", "command": "echo a2", "resource_requirements": "one"},
                 {"name": "b", "command": "echo b", "resource_requirements": "one", "depends_on": ["a1", "a2"]},
                 {"name": "c", "command": "echo c", "resource_requirements": "one", "depends_on": ["b"]}],
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    torc("slurm", "generate", "-a", "acct", "-o", "planned.yaml", "spec.yaml", cwd=tmp_path)
    planned = yaml.safe_load((tmp_path / "planned.yaml").read_text())
    assert [(a["trigger_type"], a.get("jobs")) for a in planned["actions"]] == [
        ("on_workflow_start", None), ("on_jobs_ready", ["b"]), ("on_jobs_ready", ["c"])]
    # `torc submit-slurm` = the same planning + create + submit, in one command
    out = torc("submit-slurm", "spec.yaml", "-a", "acct", "-o", str(tmp_path / "out"), "-p", "1", cwd=tmp_path,
               url=server.url)
    wf = int(re.search(r"Created workflow (\d+)", out.stdout + out.stderr).group(1))
    assert yaml.safe_load((tmp_path / "out" / "spec.slurm.yaml").read_text()) == planned
    with server.client() as client:
        try:
            deadline = time.monotonic() + 420  # the one test node is shared with other Slurm tests
            while True:
                jobs = {j["name"]: j["status"] for j in client.iter_items("jobs", workflow_id=wf)}
                if all(s == "completed" for s in jobs.values()):
                    break
                assert time.monotonic() < deadline, f"jobs did not finish: {jobs}"
                time.sleep(1)
            schedulers = {s["id"]: s["name"] for s in client.iter_items("slurm_schedulers", workflow_id=wf)}
            nodes = list(client.iter_items("scheduled_compute_nodes", workflow_id=wf))
        finally:  # never leave this test's allocations in the queue
            ids = [str(n["scheduler_id"]) for n in client.iter_items("scheduled_compute_nodes", workflow_id=wf)
                   if n["scheduler_id"]]
            if ids:
                subprocess.run(["scancel", *ids], capture_output=True, timeout=30)
    used = sorted(schedulers[n["scheduler_config_id"]] for n in nodes)
    assert used == ["one_deferred_scheduler", "one_deferred_scheduler", "one_scheduler"]

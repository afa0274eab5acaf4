"""The local job runner end to end: a real torc-server, `torc run` as a subprocess, real job
processes. Every test asserts concrete outcomes (statuses, return codes, result rows, files);
times appear only as loose upper bounds that prove nothing hangs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.runner_support import (
    FAST,
    PY,
    TORC,
    clean_env,
    create,
    explain,
    free_port,
    gone,
    jobs_by_name,
    kill_all,
    results_by_name,
    rr,
    run,
    runs_of,
    spawn_server_on,
    start_run,
    stdio,
    torc,
    wait_for,
    wait_status,
)
from torc.client import TorcClient

# ---- runtime limits ------------------------------------------------------------------------


def test_runtime_limit_sigkills_a_job_without_termination_support(client, server, tmp_path):
    wf = create(client, {"name": "rt_kill", "resource_requirements": [rr("short", runtime="PT2S")],
                         "jobs": [{"name": "sleeper", "command": "sleep 60", "resource_requirements": "short"}]},
                tmp_path)
    started = time.monotonic()
    proc = run(server.url, wf, cwd=tmp_path)
    assert time.monotonic() - started < 30
    assert proc.returncode == 1, explain(proc)
    assert "sleeper (id" in proc.stdout and "terminated (return code -9) (runtime limit)" in proc.stdout
    job = jobs_by_name(client, wf)["sleeper"]
    assert job["status"] == "terminated"
    (result,) = results_by_name(client, wf)["sleeper"]
    assert result["return_code"] == -9 and result["status"] == "terminated"
    assert result["exec_time_minutes"] < 0.5
    err = stdio(tmp_path / "out", wf, job["id"], "e")
    assert "torc: stopped: the job reached its runtime limit (SIGKILL)" in err


def test_runtime_limit_sigterm_first_when_supported(client, server, tmp_path):
    """SIGTERM goes first: a plain job dies of it (-15), a trapping job exits with its own code,
    a job that ignores SIGTERM is SIGKILLed after the grace period."""
    trap = "trap 'echo caught-term; exit 42' TERM; sleep 60 & wait"
    stubborn = "trap '' TERM; echo ignoring; sleep 60"
    jobs = [{"name": name, "command": cmd, "resource_requirements": "short", "supports_termination": True}
            for name, cmd in (("plain", "sleep 60"), ("trapper", trap), ("stubborn", stubborn))]
    wf = create(client, {"name": "rt_term", "resource_requirements": [rr("short", runtime="PT2S")], "jobs": jobs},
                tmp_path)
    started = time.monotonic()
    proc = run(server.url, wf, "--termination-grace", "1", "--num-cpus", "3", cwd=tmp_path)
    assert time.monotonic() - started < 30
    assert proc.returncode == 1, explain(proc)
    results = results_by_name(client, wf)
    codes = {name: rows[-1]["return_code"] for name, rows in results.items()}
    assert codes == {"plain": -15, "trapper": 42, "stubborn": -9}
    assert {name: j["status"] for name, j in jobs_by_name(client, wf).items()} == dict.fromkeys(codes, "terminated")
    jobs_ = jobs_by_name(client, wf)
    out = tmp_path / "out"
    assert "caught-term" in stdio(out, wf, jobs_["trapper"]["id"], "o")
    for name in codes:
        assert "torc: stopped: the job reached its runtime limit (SIGTERM)" in stdio(out, wf, jobs_[name]["id"], "e")


# ---- memory limits -------------------------------------------------------------------------


MONITOR = {"enabled": True, "granularity": "summary", "sample_interval_seconds": 0.2}


def _hog(seconds: float) -> str:
    """A python job that holds ~300 MiB (pages really touched) for a while."""
    return f"{PY} -c 'import time; x = b\"\\x01\" * (300 * 2**20); time.sleep({seconds})'"


@pytest.mark.parametrize("case", ["enforced", "not_enforced", "enforced_queue_mode", "enforced_monitoring_off"])
def test_memory_limit(client, server, tmp_path, case):
    monitor = {"enabled": False} if case == "enforced_monitoring_off" else MONITOR
    hold = 3 if case == "enforced_monitoring_off" else 1.5  # unmonitored workflows are sampled every 1 s
    wf = create(client, {"name": f"mem_{case}", "resource_monitor": monitor,
                         "resource_requirements": [rr("small", memory="100m")],
                         "jobs": [{"name": "hog", "command": _hog(hold), "resource_requirements": "small"}]},
                tmp_path)
    extra = [] if case == "not_enforced" else ["--enforce-memory-limits"]
    if case == "enforced_queue_mode":
        extra += ["--max-parallel-jobs", "2"]
    proc = run(server.url, wf, *extra, cwd=tmp_path)
    (result,) = results_by_name(client, wf)["hog"]
    job = jobs_by_name(client, wf)["hog"]
    assert result["peak_memory_bytes"] > 100 * 2**20
    if case == "not_enforced":
        assert proc.returncode == 0, explain(proc)
        assert job["status"] == "completed" and result["return_code"] == 0
    else:
        assert proc.returncode == 1, explain(proc)
        assert job["status"] == "failed" and result["status"] == "failed"
        assert result["return_code"] == -9
        assert "exceeded the job's limit of 100 MiB" in stdio(tmp_path / "out", wf, job["id"], "e")


# ---- resource accounting -------------------------------------------------------------------


def test_two_one_cpu_jobs_overlap_and_a_two_cpu_job_runs_alone(client, server, tmp_path):
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    cmd = f"date +%s.%N > {stamps}/$TORC_JOB_NAME.start; sleep 2; date +%s.%N > {stamps}/$TORC_JOB_NAME.end"
    wf = create(client, {"name": "accounting", "resource_requirements": [rr("one", 1), rr("two", 2)],
                         "jobs": [{"name": "one_a", "command": cmd, "resource_requirements": "one"},
                                  {"name": "one_b", "command": cmd, "resource_requirements": "one"},
                                  {"name": "two", "command": cmd, "resource_requirements": "two"}]}, tmp_path)
    proc = run(server.url, wf, "--num-cpus", "2", "--memory-gb", "1", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)

    def span(name: str) -> tuple[float, float]:
        return float((stamps / f"{name}.start").read_text()), float((stamps / f"{name}.end").read_text())

    a, b, two = span("one_a"), span("one_b"), span("two")

    def overlap(x: tuple[float, float], y: tuple[float, float]) -> bool:
        return x[0] < y[1] and y[0] < x[1]

    assert overlap(a, b)
    assert not overlap(two, a) and not overlap(two, b)


# ---- monitoring ----------------------------------------------------------------------------


def test_results_carry_monitoring_data_and_time_series_plots(client, server, tmp_path):
    # 1.5 s of CPU time (not wall time: on a busy machine it takes longer but still burns it)
    burn = f"{PY} -c 'import time\nwhile time.process_time() < 1.5: pass'"
    monitor = {"enabled": True, "granularity": "time_series", "sample_interval_seconds": 0.2}
    wf = create(client, {"name": "monitored", "resource_monitor": monitor,
                         "jobs": [{"name": "burner", "command": burn}]}, tmp_path)
    proc = run(server.url, wf, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    (result,) = results_by_name(client, wf)["burner"]
    # loose bounds: other processes may share the CPUs; an idle job would show about 0 %
    assert result["peak_cpu_percent"] > 25
    assert 10 < result["avg_cpu_percent"] <= result["peak_cpu_percent"]
    assert result["peak_memory_bytes"] > 2**20
    assert 0 < result["avg_memory_bytes"] <= result["peak_memory_bytes"]
    (db,) = (tmp_path / "out" / "resource_utilization").glob("resource_metrics_*.db")
    job_id = jobs_by_name(client, wf)["burner"]["id"]
    with sqlite3.connect(db) as conn:
        samples = conn.execute("SELECT cpu_percent, memory_bytes FROM job_resource_samples WHERE job_id = ?",
                               (job_id,)).fetchall()
        (name,) = conn.execute("SELECT job_name FROM job_metadata WHERE job_id = ?", (job_id,)).fetchone()
    assert name == "burner"
    assert len(samples) >= 4
    assert max(s[0] for s in samples) > 25 and all(s[1] > 0 for s in samples)
    plots = torc(server.url, "plot-resources", str(db), "-o", str(tmp_path / "plots"), cwd=tmp_path)
    assert plots.returncode == 0, explain(plots)
    written = {Path(line).name for line in plots.stdout.split()}
    assert f"resource_plot_job_{job_id}.html" in written
    assert "resource_plot_summary.html" in written
    page = (tmp_path / "plots" / f"resource_plot_job_{job_id}.html").read_text()
    assert "burner" in page


# ---- environment and invocation scripts ----------------------------------------------------


def test_job_environment_and_invocation_scripts(client, server, tmp_path):
    show = "for v in WORKFLOW_ID JOB_ID JOB_NAME OUTPUT_DIR ATTEMPT_ID API_URL; do eval echo $v=\\$TORC_$v; done"
    wf = create(client, {"name": "env", "jobs": [
        {"name": "show_env", "command": show},
        {"name": "prefixed", "command": "printenv WRAPPED", "invocation_script": "env WRAPPED=by-prefix"},
        {"name": "scripted", "command": "echo \"$FROM_SCRIPT $PWD_AT_START\"",
         "invocation_script": "export FROM_SCRIPT=by-script\nPWD_AT_START=set\necho script-first"},
    ]}, tmp_path)
    proc = run(server.url, wf, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    jobs = jobs_by_name(client, wf)
    out = tmp_path / "out"
    seen = dict(line.split("=", 1) for line in stdio(out, wf, jobs["show_env"]["id"], "o").splitlines())
    assert seen == {"WORKFLOW_ID": str(wf), "JOB_ID": str(jobs["show_env"]["id"]), "JOB_NAME": "show_env",
                    "OUTPUT_DIR": str(out.resolve()), "ATTEMPT_ID": "1", "API_URL": server.url}
    assert stdio(out, wf, jobs["prefixed"]["id"], "o").strip() == "by-prefix"
    assert stdio(out, wf, jobs["scripted"]["id"], "o").splitlines() == ["script-first", "by-script set"]


# ---- faults --------------------------------------------------------------------------------


def test_missing_command_fails_with_127_and_the_runner_carries_on(client, server, tmp_path):
    wf = create(client, {"name": "nocmd", "jobs": [
        {"name": "ghost", "command": "definitely-not-a-command-torc-xyz --flag"},
        {"name": "after_ghost", "command": "echo never", "depends_on": ["ghost"]},
        {"name": "fine", "command": "echo fine"},
    ]}, tmp_path)
    proc = run(server.url, wf, cwd=tmp_path)
    assert proc.returncode == 1, explain(proc)
    statuses = {n: j["status"] for n, j in jobs_by_name(client, wf).items()}
    assert statuses == {"ghost": "failed", "after_ghost": "canceled", "fine": "completed"}
    assert results_by_name(client, wf)["ghost"][0]["return_code"] == 127
    ghost_id = jobs_by_name(client, wf)["ghost"]["id"]
    assert "command not found" in stdio(tmp_path / "out", wf, ghost_id, "e")


def test_job_flooding_stdout_completes_with_all_output(client, server, tmp_path):
    size = 50 * 10**6
    wf = create(client, {"name": "flood", "jobs": [
        {"name": "flood", "command": f"head -c {size} /dev/zero | tr '\\0' x; echo; echo done >&2"}]}, tmp_path)
    proc = run(server.url, wf, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    job_id = jobs_by_name(client, wf)["flood"]["id"]
    (o_file,) = (tmp_path / "out" / "job_stdio").glob(f"job_wf{wf}_j{job_id}_*.o")
    assert o_file.stat().st_size == size + 1
    with open(o_file, "rb") as f:
        f.seek(size - 10)
        assert f.read() == b"x" * 10 + b"\n"
    assert len(proc.stdout) < 10_000  # the flood went to the file, not the runner's output


def test_background_children_of_a_finished_job_are_killed(client, server, tmp_path):
    pids = tmp_path / "pids"
    wf = create(client, {"name": "forker", "jobs": [
        {"name": "forker", "command": f"sleep 300 & echo $! >> {pids}; (sleep 301 & echo $! >> {pids}); "
                                      f"nohup sleep 302 > /dev/null 2>&1 & echo $! >> {pids}; echo parent-done"},
        {"name": "after", "command": "echo after", "depends_on": ["forker"]},
    ]}, tmp_path)
    started = time.monotonic()
    proc = run(server.url, wf, cwd=tmp_path)
    assert time.monotonic() - started < 30
    assert proc.returncode == 0, explain(proc)
    children = [int(p) for p in pids.read_text().split()]
    assert len(children) == 3
    wait_for(lambda: all(gone(p) for p in children), 5, "the job's children to be gone")
    assert {n: j["status"] for n, j in jobs_by_name(client, wf).items()} == {"forker": "completed",
                                                                             "after": "completed"}


def test_output_directory_that_cannot_be_created_is_a_clear_error(client, server, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    wf = create(client, {"name": "noout", "jobs": [{"name": "a", "command": "echo a"}]}, tmp_path)
    proc = run(server.url, wf, "-o", str(blocker / "out"), cwd=tmp_path, timeout=30)
    assert proc.returncode == 1, explain(proc)
    assert "Traceback" not in proc.stderr
    assert f"Error: cannot create output directory {blocker / 'out'}: Not a directory" in proc.stderr
    assert jobs_by_name(client, wf)["a"]["status"] == "ready"  # nothing was claimed


def _read_only_prefix(folder: Path) -> list[str]:
    """Make folder read-only for a command: chmod for a normal user; for root (who ignores
    permissions) a read-only bind mount in a private mount namespace, or skip when not allowed."""
    if os.geteuid() != 0:
        for path in (folder / "job_stdio", folder):
            os.chmod(path, 0o500)
        return []
    if not shutil.which("unshare"):
        pytest.skip("running as root without unshare: cannot make a read-only directory")
    prefix = ["unshare", "-m", "sh", "-c", f"mount --bind -o ro '{folder}' '{folder}' && exec \"$@\"", "sh"]
    probe = subprocess.run([*prefix, "touch", str(folder / "probe")], capture_output=True, text=True)
    if probe.returncode == 0 or "Read-only" not in probe.stderr:
        pytest.skip(f"cannot make a read-only mount here: {probe.stderr.strip()}")
    return prefix


def test_read_only_output_directory_is_a_clear_error(client, server, tmp_path):
    readonly = tmp_path / "ro"
    (readonly / "job_stdio").mkdir(parents=True)
    wf = create(client, {"name": "ro", "jobs": [{"name": "a", "command": "echo a"}]}, tmp_path)
    prefix = _read_only_prefix(readonly)
    try:
        proc = subprocess.run([*prefix, *TORC, "--url", server.url, "run", str(wf), "-o", str(readonly), *FAST],
                              cwd=tmp_path, capture_output=True, text=True, timeout=30, env=clean_env())
    finally:
        for path in (readonly, readonly / "job_stdio"):
            os.chmod(path, 0o700)
    assert proc.returncode == 1, explain(proc)
    assert "Traceback" not in proc.stderr
    assert "Error: output directory" in proc.stderr and "is not writable" in proc.stderr
    assert jobs_by_name(client, wf)["a"]["status"] == "ready"


def test_output_directory_removed_mid_run_fails_the_next_job_and_nothing_hangs(client, server, tmp_path):
    wf = create(client, {"name": "vanish", "jobs": [
        {"name": "vandal", "command": "rm -rf \"$TORC_OUTPUT_DIR/job_stdio\""},
        {"name": "victim", "command": "echo victim", "depends_on": ["vandal"]},
        {"name": "downstream", "command": "echo downstream", "depends_on": ["victim"]},
    ]}, tmp_path)
    started = time.monotonic()
    proc = run(server.url, wf, cwd=tmp_path, timeout=30)
    assert time.monotonic() - started < 30
    assert proc.returncode == 1, explain(proc)
    assert "victim (id" in proc.stdout and "could not start" in proc.stdout and "No such file" in proc.stdout
    statuses = {n: j["status"] for n, j in jobs_by_name(client, wf).items()}
    assert statuses == {"vandal": "completed", "victim": "failed", "downstream": "canceled"}
    assert results_by_name(client, wf)["victim"][-1]["return_code"] == 126


def test_runner_survives_a_server_restart(tmp_path):
    """The server dies (SIGKILL) while a job runs; the job finishes while it is down; a new
    server on the same port and database takes over and the runner reports and carries on."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/torc-service/v1"
    db, log, marker = tmp_path / "fixed.db", tmp_path / "server.log", tmp_path / "long.done"
    first = spawn_server_on(db, log, port)
    second = None
    runner = None
    try:
        with TorcClient(url) as c:
            wf = create(c, {"name": "restart", "jobs": [
                {"name": "long", "command": f"sleep 2; echo long-done; touch {marker}"},
                {"name": "next", "command": "echo next", "depends_on": ["long"]}]}, tmp_path)
            runner = start_run(url, wf, cwd=tmp_path)
            wait_status(c, wf, ["long"], "running")
        first.kill()
        first.wait()
        wait_for(marker.exists, 30, "the job to finish while the server is down")
        time.sleep(0.5)  # the runner tries to report meanwhile
        assert runner.poll() is None, (tmp_path / "runner.log").read_text()
        second = spawn_server_on(db, log, port)
        assert runner.wait(60) == 0, (tmp_path / "runner.log").read_text()
        with TorcClient(url) as c:
            statuses = {n: j["status"] for n, j in jobs_by_name(c, wf).items()}
            assert statuses == {"long": "completed", "next": "completed"}
            assert [r["return_code"] for r in results_by_name(c, wf)["long"]] == [0]
        assert "torc server unreachable" in (tmp_path / "runner.log").read_text()
    finally:
        kill_all(runner, first, second)


@pytest.mark.parametrize("server_returns", [True, False], ids=["server_returns", "second_ctrl_c"])
def test_ctrl_c_while_the_server_is_down(tmp_path, server_returns):
    """Ctrl-C stops the jobs at once even while the runner waits for an unreachable server; it
    then waits to record them (the server comes back) or gives up on a second Ctrl-C, and
    `workflows sync-status` cleans up later."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/torc-service/v1"
    db, log, pid_file = tmp_path / "fixed.db", tmp_path / "server.log", tmp_path / "job.pid"
    servers = [spawn_server_on(db, log, port)]
    runner = None
    try:
        with TorcClient(url) as c:
            wf = create(c, {"name": "down", "jobs": [{"name": "long", "command": f"echo $$ > {pid_file}; sleep 60"}]},
                        tmp_path)
            runner = start_run(url, wf, cwd=tmp_path)
            wait_status(c, wf, ["long"], "running")
            wait_for(pid_file.exists, 10, "the job to start")
        servers[0].kill()
        servers[0].wait()
        wait_for(lambda: "torc server unreachable" in (tmp_path / "runner.log").read_text(), 10, "a retry")
        runner.send_signal(signal.SIGINT)
        job_pid = int(pid_file.read_text())
        wait_for(lambda: gone(job_pid), 10, "the job to be stopped")
        if server_returns:
            assert runner.poll() is None  # waiting to record the result
            servers.append(spawn_server_on(db, log, port))
            assert runner.wait(60) == 130, (tmp_path / "runner.log").read_text()
            with TorcClient(url) as c:
                assert jobs_by_name(c, wf)["long"]["status"] == "terminated"
                assert [r["return_code"] for r in results_by_name(c, wf)["long"]] == [-9]
        else:
            runner.send_signal(signal.SIGINT)
            assert runner.wait(30) == 130, (tmp_path / "runner.log").read_text()
            assert "1 job result(s) not recorded" in (tmp_path / "runner.log").read_text()
            servers.append(spawn_server_on(db, log, port))
            synced = torc(url, "-f", "json", "workflows", "sync-status", str(wf), cwd=tmp_path)
            assert [j["name"] for j in json.loads(synced.stdout)] == ["long"], explain(synced)
            with TorcClient(url) as c:
                assert jobs_by_name(c, wf)["long"]["status"] == "failed"
    finally:
        kill_all(runner, *servers)


def _counting(name: str, folder: Path, long: bool = False) -> str:
    """Appends a line per run to folder/<name>.runs; with long, the first run sleeps 60 s."""
    record = f"echo run >> {folder}/{name}.runs"
    if long:
        return f"{record}; if [ $(wc -l < {folder}/{name}.runs) -lt 2 ]; then sleep 60; fi"
    return record


@pytest.mark.parametrize("sync_first", [True, False], ids=["sync_status_then_run", "run_directly"])
def test_runner_killed_with_sigkill_then_resume(client, server, tmp_path, sync_first):
    """`workflows sync-status` fails the dead runner's job (-128); `torc run ID` (which does the
    same itself when needed) reruns it and what waits for it, not the completed job."""
    counts = tmp_path / "counts"
    counts.mkdir()
    wf = create(client, {"name": "sigkill", "jobs": [
        {"name": "quick", "command": _counting("quick", counts)},
        {"name": "long", "command": f"echo $$ > {counts}/long.pid; " + _counting("long", counts, long=True)},
        {"name": "last", "command": _counting("last", counts), "depends_on": ["long", "quick"]},
    ]}, tmp_path)
    runner = start_run(server.url, wf, cwd=tmp_path)
    try:
        wait_status(client, wf, ["quick"], "completed")
        wait_status(client, wf, ["long"], "running")
        wait_for(lambda: (counts / "long.runs").exists(), 10, "the long job to start")
    finally:
        runner.kill()
        runner.wait()
    # the job outlives its runner (own session); end it as a dead machine would
    os.killpg(int((counts / "long.pid").read_text()), signal.SIGKILL)
    (node,) = client.iter_items("compute_nodes", workflow_id=wf)
    assert node["is_active"] and node["pid"] == runner.pid
    if sync_first:
        synced = torc(server.url, "-f", "json", "workflows", "sync-status", str(wf), cwd=tmp_path)
        assert synced.returncode == 0, explain(synced)
        assert [j["name"] for j in json.loads(synced.stdout)] == ["long"]
        assert jobs_by_name(client, wf)["long"]["status"] == "failed"
        assert results_by_name(client, wf)["long"][-1]["return_code"] == -128
        assert not client.get(f"compute_nodes/{node['id']}")["is_active"]
    proc = run(server.url, wf, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    if not sync_first:
        assert "1 job(s) of runners that are gone were marked failed" in proc.stdout
    assert {n: j["status"] for n, j in jobs_by_name(client, wf).items()} == dict.fromkeys(
        ("quick", "long", "last"), "completed")
    assert {n: runs_of(counts / f"{n}.runs") for n in ("quick", "long", "last")} == {"quick": 1, "long": 2,
                                                                                    "last": 1}
    assert [r["return_code"] for r in results_by_name(client, wf, all_runs=True)["long"]] == [-128, 0]


# ---- Ctrl-C --------------------------------------------------------------------------------


def test_ctrl_c_terminates_records_and_resumes(client, server, tmp_path):
    counts = tmp_path / "counts"
    counts.mkdir()
    wf = create(client, {"name": "ctrlc", "jobs": [
        {"name": "quick", "command": _counting("quick", counts)},
        {"name": "long_a", "command": _counting("long_a", counts, long=True), "depends_on": ["quick"]},
        {"name": "long_b", "command": _counting("long_b", counts, long=True), "depends_on": ["quick"],
         "supports_termination": True},
        {"name": "last", "command": _counting("last", counts), "depends_on": ["long_a", "long_b"]},
    ]}, tmp_path)
    runner = start_run(server.url, wf, "--num-cpus", "2", cwd=tmp_path)
    try:
        wait_status(client, wf, ["long_a", "long_b"], "running")
        wait_for(lambda: runs_of(counts / "long_a.runs") and runs_of(counts / "long_b.runs"), 10, "both long jobs")
        runner.send_signal(signal.SIGINT)
        assert runner.wait(30) == 130, (tmp_path / "runner.log").read_text()
    finally:
        kill_all(runner)
    log = (tmp_path / "runner.log").read_text()
    assert "Interrupted. Carry on with" in log
    jobs = jobs_by_name(client, wf)
    assert {n: j["status"] for n, j in jobs.items()} == {"quick": "completed", "long_a": "terminated",
                                                         "long_b": "terminated", "last": "canceled"}
    results = results_by_name(client, wf)
    assert results["long_a"][-1]["status"] == "terminated" and results["long_a"][-1]["return_code"] == -9
    assert results["long_b"][-1]["status"] == "terminated" and results["long_b"][-1]["return_code"] == -15
    proc = run(server.url, wf, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert {n: j["status"] for n, j in jobs_by_name(client, wf).items()} == dict.fromkeys(jobs, "completed")
    assert {n: runs_of(counts / f"{n}.runs") for n in jobs} == {"quick": 1, "long_a": 2, "long_b": 2, "last": 1}
    history = results_by_name(client, wf, all_runs=True)
    assert {n: [r["status"] for r in rows] for n, rows in history.items()} == {
        "quick": ["completed"], "long_a": ["terminated", "completed"], "long_b": ["terminated", "completed"],
        "last": ["completed"]}


def test_second_ctrl_c_kills_at_once(client, server, tmp_path):
    """A job that ignores SIGTERM would get the whole grace period (60 s here); a second
    SIGINT kills it at once."""
    started_file = tmp_path / "started"
    wf = create(client, {"name": "ctrlc2", "jobs": [
        {"name": "stubborn", "command": f"trap '' TERM; touch {started_file}; sleep 60",
         "supports_termination": True}]}, tmp_path)
    runner = start_run(server.url, wf, "--termination-grace", "60", cwd=tmp_path)
    try:
        wait_for(started_file.exists, 30, "the job to start")
        runner.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert runner.poll() is None  # waiting for the grace period
        started = time.monotonic()
        runner.send_signal(signal.SIGINT)
        assert runner.wait(30) == 130, (tmp_path / "runner.log").read_text()
        assert time.monotonic() - started < 20
    finally:
        kill_all(runner)
    (result,) = results_by_name(client, wf)["stubborn"]
    assert result["status"] == "terminated" and result["return_code"] == -9


# ---- actions -------------------------------------------------------------------------------


def test_actions_fire_exactly_once_with_two_runners(client, server, tmp_path):
    def append(word: str) -> list[str]:
        return [f"echo {word} >> actions.log"]

    jobs = [{"name": f"j{i}", "command": "sleep 0.5"} for i in range(6)]
    jobs.append({"name": "final", "command": "echo final", "depends_on": [f"j{i}" for i in range(6)]})
    actions = [
        {"trigger_type": "on_workflow_start", "action_type": "run_commands", "commands": append("workflow_start")},
        {"trigger_type": "on_jobs_ready", "action_type": "run_commands", "jobs": ["final"],
         "commands": append("final_ready")},
        {"trigger_type": "on_jobs_complete", "action_type": "run_commands", "jobs": ["j0", "j5"],
         "commands": append("j0_j5_complete")},
        {"trigger_type": "on_workflow_complete", "action_type": "run_commands",
         "commands": append("workflow_complete")},
        {"trigger_type": "on_worker_start", "action_type": "run_commands", "persistent": True,
         "commands": ["echo $TORC_COMPUTE_NODE_ID >> workers.log"]},
    ]
    wf = create(client, {"name": "actions", "jobs": jobs, "actions": actions}, tmp_path)
    runners = [start_run(server.url, wf, "--num-cpus", "2", cwd=tmp_path, log_name=f"runner{i}.log")
               for i in range(2)]
    try:
        codes = [r.wait(60) for r in runners]
    finally:
        kill_all(*runners)
    assert codes == [0, 0], [(tmp_path / f"runner{i}.log").read_text() for i in range(2)]
    out = tmp_path / "out"
    lines = sorted((out / "actions.log").read_text().split())
    assert lines == sorted(["workflow_start", "final_ready", "j0_j5_complete", "workflow_complete"])
    workers = (out / "workers.log").read_text().split()
    nodes = {n["id"] for n in client.iter_items("compute_nodes", workflow_id=wf)}
    assert len(workers) == 2 and {int(w) for w in workers} == nodes


# ---- several runners -----------------------------------------------------------------------


def test_two_runners_share_a_workflow_and_no_job_runs_twice(client, server, tmp_path):
    ran, go = tmp_path / "ran", tmp_path / "go"
    ran.mkdir()
    # every job waits for the go file, so both runners have claimed jobs before any finishes
    cmd = (f"while [ ! -e {go} ]; do sleep 0.05; done; echo $TORC_COMPUTE_NODE_ID >> {ran}/$TORC_JOB_NAME; "
           "sleep 0.1")
    wf = create(client, {"name": "shared", "jobs": [{"name": f"job{i:02d}", "command": cmd} for i in range(40)]},
                tmp_path)
    runners = [start_run(server.url, wf, "--num-cpus", "3", cwd=tmp_path, log_name=f"runner{i}.log")
               for i in range(2)]
    try:
        wait_for(lambda: len(list(client.iter_items("compute_nodes", workflow_id=wf))) == 2, 30, "two runners")
        wait_for(lambda: len([j for j in client.iter_items("jobs", workflow_id=wf, status="running")]) >= 6, 30,
                 "both runners to start jobs")
        go.touch()
        codes = [r.wait(90) for r in runners]
    finally:
        go.touch()
        kill_all(*runners)
    assert codes == [0, 0], [(tmp_path / f"runner{i}.log").read_text() for i in range(2)]
    assert {j["status"] for j in client.iter_items("jobs", workflow_id=wf)} == {"completed"}
    per_job = {p.name: p.read_text().split() for p in ran.iterdir()}
    assert len(per_job) == 40 and all(len(v) == 1 for v in per_job.values())
    by_node: dict[str, int] = {}
    for (node,) in per_job.values():
        by_node[node] = by_node.get(node, 0) + 1
    assert len(by_node) == 2 and min(by_node.values()) >= 3, by_node
    results = list(client.iter_items("results", workflow_id=wf))
    assert len(results) == 40 and {str(r["compute_node_id"]) for r in results} == set(by_node)


# ---- claiming ahead, batched reporting, log files ------------------------------------------


def test_short_jobs_are_claimed_ahead_and_given_back_on_ctrl_c(client, server, tmp_path):
    """Short jobs make the runner claim ahead of its free CPUs; on Ctrl-C the claimed jobs it
    did not start go back to ready (none is left pending), and `torc run ID` finishes the rest."""
    wf = create(client, {"name": "ahead", "jobs": [
        {"name": f"quick_{i:03d}", "command": "sleep 0.02"} for i in range(400)]}, tmp_path)
    runner = start_run(server.url, wf, "--num-cpus", "2", cwd=tmp_path)
    try:
        def ahead() -> bool:
            counts = client.get(f"workflows/{wf}/job_counts")["counts"]
            return counts["completed"] >= 20 and counts["pending"] + counts["running"] > 2
        wait_for(ahead, 30, "jobs claimed beyond the 2 CPUs")
        runner.send_signal(signal.SIGINT)
        assert runner.wait(30) == 130, (tmp_path / "runner.log").read_text()
    finally:
        kill_all(runner)
    counts = {k: v for k, v in client.get(f"workflows/{wf}/job_counts")["counts"].items() if v}
    assert "pending" not in counts and "running" not in counts, counts
    assert counts.get("ready", 0) > 0, counts
    proc = run(server.url, wf, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert {j["status"] for j in jobs_by_name(client, wf).values()} == {"completed"}
    assert all(len(r) >= 1 for r in results_by_name(client, wf).values())


def test_log_files_are_created_only_for_output_that_was_written(client, server, tmp_path):
    wf = create(client, {"name": "logs", "jobs": [
        {"name": "silent", "command": "true"},
        {"name": "talks", "command": "echo to-stdout"},
        {"name": "complains", "command": "echo to-stderr >&2"},
        {"name": "both", "command": "echo a; echo b >&2; exit 3"},
    ]}, tmp_path)
    proc = run(server.url, wf, cwd=tmp_path)
    assert proc.returncode == 1, explain(proc)
    folder = tmp_path / "out" / "job_stdio"
    ids = {n: j["id"] for n, j in jobs_by_name(client, wf).items()}

    def files(name: str) -> set[str]:
        return {p.suffix for p in folder.glob(f"job_wf{wf}_j{ids[name]}_*")}

    assert files("silent") == set()
    assert files("talks") == {".o"} and stdio(tmp_path / "out", wf, ids["talks"], "o") == "to-stdout\n"
    assert files("complains") == {".e"} and stdio(tmp_path / "out", wf, ids["complains"], "e") == "to-stderr\n"
    assert files("both") == {".o", ".e"}
    assert [r["return_code"] for r in results_by_name(client, wf)["both"]] == [3]


def test_reporter_stops_a_job_the_server_took_back(client, server, tmp_path):
    """A start the server refuses (the workflow was canceled between claim and start report) is
    listed as rejected, and that job's result is not sent."""
    from torc.runner.reporter import Reporter

    wf = create(client, {"name": "taken", "jobs": [{"name": "a", "command": "true"},
                                                   {"name": "b", "command": "true"}]}, tmp_path)
    claimed = client.post(f"workflows/{wf}/claim_next_jobs", limit=2)["jobs"]
    client.put(f"jobs/{claimed[0]['id']}/manage_status_change/ready/{client.run_id(wf)}")  # taken back
    sent = []
    reporter = Reporter(client, wf, client.run_id(wf), 0, on_sent=lambda: sent.append(1))
    try:
        for job in claimed:
            reporter.started(job["id"])
            reporter.finished({"job_id": job["id"], "status": "completed",
                               "result": {"return_code": 0, "exec_time_minutes": 0.0}})
        assert reporter.flush(30)
    finally:
        reporter.close(5)
    assert reporter.rejected == {claimed[0]["id"]} and sent
    statuses = {n: j["status"] for n, j in jobs_by_name(client, wf).items()}
    assert statuses[claimed[0]["name"]] == "ready" and statuses[claimed[1]["name"]] == "completed"
    assert reporter.results_sent == 1

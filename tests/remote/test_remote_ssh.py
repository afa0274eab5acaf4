"""`torc remote` end to end: a real sshd on 127.0.0.1 (scripts/sshd-up.sh), a real torc-server
process, and `torc run` workers started over SSH with this checkout's torc."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.remote.conftest import TORC, Sshd
from torc.cli.main import main

pytestmark = pytest.mark.timeout(180)


def torc(server, *args: str):
    return CliRunner().invoke(main, ["--url", server.url, *args], catch_exceptions=False)


def ok(server, *args: str) -> str:
    result = torc(server, *args)
    assert result.exit_code == 0, result.output
    return result.output


def new_workflow(server, tmp_path: Path, name: str, jobs: list[dict]) -> int:
    spec = tmp_path / f"{name}.json"
    spec.write_text(json.dumps({"name": name, "jobs": jobs}))
    out = ok(server, "workflows", "create", str(spec))
    return int(out.split("workflow", 1)[1].split()[0]) if "workflow" in out else int(out.split()[-1])


def states(server, sshd: Sshd, wf: int, out_dir: str) -> dict[str, str]:
    result = torc(server, "-f", "json", "remote", "status", str(wf), "-o", out_dir, *sshd.ssh_args)
    return {row["worker"]: row.get("state") for row in json.loads(result.output)}


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def job_counts(server, wf: int) -> dict[str, int]:
    with server.client() as client:
        return {k: v for k, v in client.get(f"workflows/{wf}/job_counts")["counts"].items() if v}


def test_add_list_remove_workers(server, sshd, tmp_path):
    wf = new_workflow(server, tmp_path, "workers", [{"name": "a", "command": "true"}])
    a, b = sshd.worker("127.0.0.1"), sshd.worker("localhost")
    out = ok(server, "remote", "add-workers", str(wf), a, b, *sshd.ssh_args)
    assert f"Added 2 worker(s) to workflow {wf}" in out
    listed = json.loads(ok(server, "-f", "json", "remote", "list-workers", str(wf)))
    assert [(w["worker"], w["host"], w["port"]) for w in listed] == [(a, "127.0.0.1", sshd.port),
                                                                      (b, "localhost", sshd.port)]
    bad = torc(server, "remote", "add-workers", str(wf), "good-host", "bad::host", "--skip-ssh-check")
    assert bad.exit_code == 1 and "invalid worker 'bad::host'" in bad.output and "brackets" in bad.output
    dup = torc(server, "remote", "add-workers", str(wf), "n1", "n1:22", "--skip-ssh-check")
    assert dup.exit_code == 1 and "duplicate worker" in dup.output
    again = torc(server, "remote", "add-workers", str(wf), a, "--skip-ssh-check")
    assert again.exit_code == 1 and "duplicate worker" in again.output and "already stored" in again.output
    # a host ssh cannot reach is refused (reported per host); the reachable one is still added
    dead = f"127.0.0.1:{free_port()}"
    mixed = torc(server, "remote", "add-workers", str(wf), dead, "[::1]:1", *sshd.ssh_args)
    assert mixed.exit_code == 1 and f"[FAILED] {dead}: cannot connect to {dead}" in mixed.output
    workers_file = tmp_path / "workers.txt"
    workers_file.write_text(f"# spare machines\nspare1   # first\nuser@[::1]:{sshd.port}\n")
    ok(server, "remote", "add-workers-from-file", str(workers_file), str(wf), "--skip-ssh-check")
    ok(server, "remote", "remove-worker", "spare1:22", str(wf))
    ok(server, "remote", "remove-worker", f"user@[::1]:{sshd.port}", str(wf))
    ok(server, "remote", "remove-worker", b, str(wf))
    missing = torc(server, "remote", "remove-worker", "nowhere", str(wf))
    assert missing.exit_code == 1 and "'nowhere' is not a remote worker" in missing.output
    assert [w["worker"] for w in json.loads(ok(server, "-f", "json", "remote", "list-workers", str(wf)))] == [a]
    gone = torc(server, "remote", "list-workers", "999999")
    assert gone.exit_code == 1 and "not found" in gone.output


def test_run_two_workers_to_completion_then_collect_logs(server, sshd, tmp_path):
    jobs = [{"name": f"job{i}", "command": f"echo hello {i} from $TORC_JOB_NAME; sleep 2"} for i in range(6)]
    wf = new_workflow(server, tmp_path, "two_workers", jobs)
    out_dir = str(tmp_path / "out_{host}")
    ok(server, "remote", "add-workers", str(wf), sshd.worker("127.0.0.1"), sshd.worker("localhost"),
       "--skip-ssh-check")
    out = ok(server, "remote", "run", str(wf), "-o", out_dir, "-p", "0.2", "--max-parallel-jobs", "1",
             "--torc-path", TORC, *sshd.ssh_args)
    assert "Started 2/2 workers" in out and "Initialized workflow" in out
    for host in ("127.0.0.1", "localhost"):
        assert (tmp_path / f"out_{host}" / f"torc_worker_{wf}.pid").read_text().strip().isdigit()
    first = states(server, sshd, wf, out_dir)
    assert set(first) == {sshd.worker("127.0.0.1"), sshd.worker("localhost")}
    assert set(first.values()) <= {"running", "done"} and "running" in first.values()
    wait_for(lambda: set(states(server, sshd, wf, out_dir).values()) == {"done"}, what="both workers done")
    assert job_counts(server, wf) == {"completed": 6}
    table = ok(server, "remote", "status", str(wf), "-o", out_dir, *sshd.ssh_args)
    assert "0/2 workers running" in table and "exit status 0" in table
    logs = tmp_path / "collected"
    out = ok(server, "remote", "collect-logs", str(wf), "-o", out_dir, "-l", str(logs), "--delete", *sshd.ssh_args)
    assert "Collected logs from 2/2 workers" in out
    printed = []
    for host in ("127.0.0.1", "localhost"):
        folder = logs / f"{host}_{sshd.port}"
        assert "Workflow" in (folder / f"torc_worker_{wf}.log").read_text()
        printed += [p.read_text() for p in (folder / "job_stdio").glob("*.o")]
        assert not (tmp_path / f"out_{host}").exists()  # --delete removed the remote directory
    assert sorted(printed) == sorted(f"hello {i} from job{i}\n" for i in range(6))


def test_stop_a_long_run_and_delete_logs(server, sshd, tmp_path):
    wf = new_workflow(server, tmp_path, "long", [{"name": "long", "command": "sleep 300",
                                                 "supports_termination": True}])
    out_dir = str(tmp_path / "out")
    ok(server, "remote", "add-workers", str(wf), sshd.worker(), "--skip-ssh-check")
    ok(server, "remote", "run", str(wf), "-o", out_dir, "-p", "0.2", "--torc-path", TORC, *sshd.ssh_args)
    wait_for(lambda: job_counts(server, wf).get("running") == 1, what="the job to start")
    assert states(server, sshd, wf, out_dir) == {sshd.worker(): "running"}
    again = torc(server, "remote", "run", str(wf), "-o", out_dir, "--torc-path", TORC, *sshd.ssh_args)
    assert again.exit_code == 1 and "already running" in again.output
    refused = torc(server, "remote", "delete-logs", str(wf), "-o", out_dir, *sshd.ssh_args)
    assert refused.exit_code == 1 and "still running" in refused.output and Path(out_dir).is_dir()
    out = ok(server, "remote", "stop", str(wf), "-o", out_dir, *sshd.ssh_args)
    assert "sent SIGTERM to PID" in out
    # well within the job's 1-minute default runtime limit: the worker itself stopped it
    wait_for(lambda: states(server, sshd, wf, out_dir)[sshd.worker()] != "running", timeout=20,
             what="the worker to stop")
    assert job_counts(server, wf) == {"terminated": 1}
    out = ok(server, "remote", "stop", str(wf), "-o", out_dir, *sshd.ssh_args)
    assert "not running" in out
    out = ok(server, "remote", "delete-logs", str(wf), "-o", out_dir, *sshd.ssh_args)
    assert "deleted" in out and not Path(out_dir).exists()


def test_force_stop(server, sshd, tmp_path):
    wf = new_workflow(server, tmp_path, "forced", [{"name": "long", "command": "sleep 300"}])
    out_dir = str(tmp_path / "out")
    ok(server, "remote", "add-workers", str(wf), sshd.worker(), "--skip-ssh-check")
    ok(server, "remote", "run", str(wf), "-o", out_dir, "-p", "0.2", "--torc-path", TORC, *sshd.ssh_args)
    wait_for(lambda: job_counts(server, wf).get("running") == 1, what="the job to start")
    out = ok(server, "remote", "stop", str(wf), "-o", out_dir, "--force", *sshd.ssh_args)
    assert "SIGKILL" in out
    wait_for(lambda: states(server, sshd, wf, out_dir)[sshd.worker()] == "stopped", timeout=20,
             what="the worker killed")
    ok(server, "workflows", "cancel", str(wf))  # the orphaned `sleep` is the job's; cancel cleans up
    subprocess_cleanup(tmp_path)


def subprocess_cleanup(tmp_path: Path) -> None:
    """SIGKILL leaves the worker's job running (as in torc): end the `sleep 300` it started."""
    import psutil

    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            env = proc.info["environ"] or {}
            if proc.info["cmdline"] and "sleep 300" in " ".join(proc.info["cmdline"]) and \
                    str(tmp_path) in env.get("TORC_OUTPUT_DIR", ""):
                proc.kill()
        except psutil.Error:
            continue


def test_unreachable_host_does_not_stop_the_others(server, sshd, tmp_path):
    wf = new_workflow(server, tmp_path, "partial", [{"name": f"j{i}", "command": "true"} for i in range(3)])
    out_dir = str(tmp_path / "out")
    dead = f"127.0.0.1:{free_port()}"
    ok(server, "remote", "add-workers", str(wf), dead, "--skip-ssh-check")
    workers_file = tmp_path / "workers.txt"
    workers_file.write_text(f"{sshd.worker()}  # reachable\n127.0.0.1:{free_port()}  # not added: fails the check\n")
    result = torc(server, "remote", "run", str(wf), "-w", str(workers_file), "-o", out_dir, "-p", "0.2",
                  "--torc-path", TORC, *sshd.ssh_args)
    assert result.exit_code == 1
    listed = json.loads(ok(server, "-f", "json", "remote", "list-workers", str(wf)))
    assert sorted(w["worker"] for w in listed) == sorted([dead, sshd.worker()])
    assert f"[FAILED] {dead}: cannot connect to {dead}" in result.output
    assert f"[OK] {sshd.worker()}: started" in result.output and "Started 1/2 workers" in result.output
    wait_for(lambda: job_counts(server, wf) == {"completed": 3}, what="the workflow to finish")
    status = torc(server, "-f", "json", "remote", "status", str(wf), "-o", out_dir, *sshd.ssh_args)
    rows = {r["worker"]: r for r in json.loads(status.output)}
    assert status.exit_code == 1 and rows[dead]["state"] == "unreachable" and not rows[dead]["ok"]
    wait_for(lambda: states(server, sshd, wf, out_dir)[sshd.worker()] == "done", what="the worker done")


def test_version_check(server, sshd, tmp_path):
    wf = new_workflow(server, tmp_path, "versions", [{"name": "a", "command": "true"}])
    ok(server, "remote", "add-workers", str(wf), sshd.worker(), "--skip-ssh-check")
    fake = tmp_path / "old-torc"
    fake.write_text("#!/bin/sh\necho 'torc, version 0.0.1'\n")
    fake.chmod(0o755)
    result = torc(server, "remote", "run", str(wf), "--torc-path", str(fake), *sshd.ssh_args)
    assert result.exit_code == 1 and "torc 0.0.1 there" in result.output and "--skip-version-check" in result.output
    missing = torc(server, "remote", "run", str(wf), "--torc-path", "no-such-torc", *sshd.ssh_args)
    assert missing.exit_code == 1 and "'no-such-torc' not found on the PATH" in missing.output
    # nothing was started, so the workflow was not even initialized
    assert job_counts(server, wf) == {"uninitialized": 1}


def test_ipv6_worker_run_and_collect(server, sshd, tmp_path):
    worker = f"[::1]:{sshd.port}"
    wf = new_workflow(server, tmp_path, "ipv6", [{"name": "v6", "command": "echo over ipv6"}])
    added = torc(server, "remote", "add-workers", str(wf), worker, *sshd.ssh_args)
    if added.exit_code != 0:
        pytest.skip(f"the test sshd does not answer on ::1: {added.output.strip()}")
    out_dir = str(tmp_path / "out_{host}")
    ok(server, "remote", "run", str(wf), "-o", out_dir, "-p", "0.2", "--torc-path", TORC, *sshd.ssh_args)
    wait_for(lambda: states(server, sshd, wf, out_dir) == {worker: "done"}, what="the IPv6 worker done")
    logs = tmp_path / "logs"
    ok(server, "remote", "collect-logs", str(wf), "-o", out_dir, "-l", str(logs), *sshd.ssh_args)
    (stdout,) = (logs / f"__1_{sshd.port}" / "job_stdio").glob("*.o")
    assert stdout.read_text() == "over ipv6\n"
    assert (tmp_path / "out___1").is_dir()  # no --delete: the remote directory stays

"""`torc run` end to end: a real CLI process, an embedded server, real job subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TORC = [sys.executable, "-m", "torc.cli.main"]


def torc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORC_")}
    env["TORC_API_URL"] = "http://127.0.0.1:9/torc-service/v1"  # nothing listens: force the embedded server
    proc = subprocess.run([*TORC, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"torc {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_demo_pipeline_runs_with_embedded_server(tmp_path):
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    out = torc("--database", "torc_output/torc.db", "run", "examples/demo_pipeline.yaml", cwd=tmp_path)
    assert "4 completed, 0 failed, 0 terminated here; workflow complete" in out.stdout
    assert (tmp_path / "demo_output" / "total.txt").read_text().strip() == "sum of squares 1..10 = 385"
    listing = torc("--database", "torc_output/torc.db", "-f", "json", "jobs", "list", "1", cwd=tmp_path)
    jobs = json.loads(listing.stdout)
    assert {j["name"]: j["status"] for j in jobs} == {
        "generate": "completed", "square_a": "completed", "square_b": "completed", "total": "completed"}
    stdio = sorted(p.name for p in (tmp_path / "torc_output" / "job_stdio").iterdir())
    assert "job_wf1_j4_r1_a1.o" in stdio
    assert "job_wf1_j4_r1_a1.e" not in stdio  # nothing on stderr: no empty file


def test_run_without_url_starts_embedded_server_in_output_dir(tmp_path):
    from torc.cli.embedded import server_reachable
    from torc.client import DEFAULT_URL

    if server_reachable(DEFAULT_URL):
        pytest.skip("a torc server is listening on localhost:8080 on this machine")
    spec = tmp_path / "one.yaml"
    spec.write_text("name: one\njobs:\n  - name: hello\n    command: echo hello-from-torc\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORC_")}
    proc = subprocess.run([*TORC, "run", str(spec), "-o", "out"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "No torc server" in proc.stdout
    assert (tmp_path / "out" / "torc.db").exists()
    (stdout,) = (tmp_path / "out" / "job_stdio").glob("*.o")
    assert stdout.read_text().strip() == "hello-from-torc"


def test_failure_cascade_and_exit_code(tmp_path):
    spec = tmp_path / "fail.yaml"
    spec.write_text(
        "name: fail\njobs:\n"
        "  - name: bad\n    command: 'echo oops >&2; exit 3'\n"
        "  - name: after\n    command: echo never\n    depends_on: [bad]\n"
        "  - name: free\n    command: 'echo TORC_JOB_NAME=$TORC_JOB_NAME'\n"
    )
    proc = torc("--database", "w.db", "run", str(spec), cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert "bad (id 1) failed (return code 3)" in proc.stdout
    jobs = json.loads(torc("--database", "w.db", "-f", "json", "jobs", "list", "1", cwd=tmp_path).stdout)
    assert {j["name"]: j["status"] for j in jobs} == {"bad": "failed", "after": "canceled", "free": "completed"}
    err = next((tmp_path / "torc_output" / "job_stdio").glob("job_wf1_j1_*.e")).read_text()
    assert "oops" in err
    free_id = next(j["id"] for j in jobs if j["name"] == "free")
    out = next((tmp_path / "torc_output" / "job_stdio").glob(f"job_wf1_j{free_id}_*.o")).read_text()
    assert out.strip() == "TORC_JOB_NAME=free"


def test_missing_output_file_fails_the_job(tmp_path):
    spec = tmp_path / "out.yaml"
    spec.write_text("name: outs\njobs:\n  - name: liar\n    command: 'true ${files.output.result}'\n"
                    "files:\n  - name: result\n    path: never_written.txt\n")
    proc = torc("--database", "w.db", "run", str(spec), cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert "output files missing: never_written.txt" in proc.stdout


def test_bad_spec_is_a_clean_error_and_creates_nothing(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: bad\njobs:\n  - name: a\n    comand: echo typo\n")
    proc = torc("--database", "w.db", "run", str(spec), cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "job 'a' (jobs[0]): unknown key 'comand'; did you mean 'command'?" in proc.stderr
    spec.write_text("name: bad\njobs:\n  - name: b\n    command: x ${files.input.data}\n    depends_on: [nope]\n")
    proc = torc("--database", "w.db", "run", str(spec), cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert "job 'b': depends_on refers to undefined job 'nope'" in proc.stderr
    assert "job 'b': ${files.input.data} refers to an undefined file" in proc.stderr
    listing = torc("--database", "w.db", "-f", "json", "workflows", "list", cwd=tmp_path)
    assert json.loads(listing.stdout) == []

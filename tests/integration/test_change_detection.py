"""Change detection end to end: `torc workflows reinitialize` (by modification time or, with
--hash, by content), `reset-status --failed-only` after a failure, against the module's real
torc-server, with `torc` and `torc run ID` as subprocesses. Each job appends a line to its own
counter file, so "ran exactly once / again" is read from the files, not from the server."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from torc.client import TorcClient

TORC = [sys.executable, "-m", "torc.cli.main"]


# ---- helpers -------------------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TORC_")}


def torc(server, *args: Any, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*TORC, "--url", server.url, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=clean_env())


def explain(proc: subprocess.CompletedProcess) -> str:
    return f"rc {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def ok(server, *args: Any, cwd: Path) -> Any:
    """`torc -f json ...`: must succeed and print nothing but JSON."""
    proc = torc(server, "-f", "json", *args, cwd=cwd)
    assert proc.returncode == 0, explain(proc)
    return json.loads(proc.stdout)


def run(server, wf: int, cwd: Path, expect: int = 0) -> subprocess.CompletedProcess:
    proc = torc(server, "run", wf, "-o", cwd / "out", "--no-progress", "-p", "0.2", "--idle-timeout", "20",
                cwd=cwd, timeout=120)
    assert proc.returncode == expect, explain(proc)
    return proc


def runs(folder: Path) -> dict[str, int]:
    """job name -> how many times it ran (lines in its counter file)."""
    return {p.stem: len(p.read_text().splitlines()) for p in sorted((folder / "counts").glob("*.runs"))}


def counting(folder: Path, name: str, command: str) -> str:
    return f"echo run >> {folder}/counts/{name}.runs && {command}"


def statuses(server, wf: int) -> dict[str, str]:
    with server.client() as c:
        return {j["name"]: j["status"] for j in c.iter_items("jobs", workflow_id=wf)}


def create(server, spec: dict[str, Any], folder: Path) -> int:
    path = folder / f"{spec['name']}.json"
    path.write_text(json.dumps(spec))
    return ok(server, "workflows", "create", path, cwd=folder)["workflow_id"]


def bump(path: Path, seconds: float = 5) -> None:
    """A `touch` that moves the modification time surely past the tolerance."""
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + seconds))


def three_stage(server, folder: Path) -> int:
    """A reads in1 -> mid1; B reads in2 -> mid2; C reads mid1 + mid2 -> out. Run once to the end."""
    (folder / "counts").mkdir()
    (folder / "in1.txt").write_text("one\n")
    (folder / "in2.txt").write_text("two\n")
    wf = create(server, {
        "name": "three_stage",
        "jobs": [
            {"name": "A", "command": counting(folder, "A", "cat ${files.input.in1} > ${files.output.mid1}")},
            {"name": "B", "command": counting(folder, "B", "cat ${files.input.in2} > ${files.output.mid2}")},
            {"name": "C", "command": counting(
                folder, "C", "cat ${files.input.mid1} ${files.input.mid2} > ${files.output.out}")},
        ],
        "files": [{"name": n, "path": str(folder / f"{n}.txt")} for n in ("in1", "in2", "mid1", "mid2", "out")],
    }, folder)
    run(server, wf, folder)
    assert runs(folder) == {"A": 1, "B": 1, "C": 1}
    assert (folder / "out.txt").read_text() == "one\ntwo\n"
    return wf


def reasons(plan: dict[str, Any]) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in plan["rerun"])


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


# ---- reinitialize by modification time -----------------------------------------------------------


def test_touching_one_input_reruns_only_its_consumer_and_downstream(server, tmp_path):
    wf = three_stage(server, tmp_path)
    assert ok(server, "workflows", "reinitialize", wf, "--dry-run", cwd=tmp_path)["rerun"] == []

    bump(tmp_path / "in1.txt")
    plan = ok(server, "workflows", "reinitialize", wf, "--dry-run", cwd=tmp_path)
    assert reasons(plan) == {"A": f"input {tmp_path / 'in1.txt'} changed", "C": "downstream of A"}
    assert plan["changed_files"] == [str(tmp_path / "in1.txt")]
    table = torc(server, "workflows", "reinitialize", wf, "--dry-run", cwd=tmp_path)
    assert table.returncode == 0, explain(table)
    assert table.stdout.splitlines() == [f"would rerun: A: input {tmp_path / 'in1.txt'} changed",
                                         "would rerun: C: downstream of A"]
    # a dry run changes nothing
    assert statuses(server, wf) == dict.fromkeys("ABC", "completed")

    assert ok(server, "workflows", "reinitialize", wf, cwd=tmp_path)["rerun"] == plan["rerun"]
    assert statuses(server, wf) == {"A": "ready", "B": "completed", "C": "blocked"}
    run(server, wf, tmp_path)
    assert runs(tmp_path) == {"A": 2, "B": 1, "C": 2}
    assert statuses(server, wf) == dict.fromkeys("ABC", "completed")
    # the rerun recorded the new times: nothing left to do
    assert ok(server, "workflows", "reinitialize", wf, "--dry-run", cwd=tmp_path)["rerun"] == []


def test_deleting_an_output_reruns_its_producer_and_downstream(server, tmp_path):
    wf = three_stage(server, tmp_path)
    (tmp_path / "mid2.txt").unlink()
    plan = ok(server, "workflows", "reinitialize", wf, "--dry-run", cwd=tmp_path)
    assert plan["missing_outputs"] == [str(tmp_path / "mid2.txt")]
    assert reasons(plan) == {"B": f"output {tmp_path / 'mid2.txt'} is missing",
                             "C": f"input {tmp_path / 'mid2.txt'} changed"}
    ok(server, "workflows", "reinitialize", wf, cwd=tmp_path)
    run(server, wf, tmp_path)
    assert runs(tmp_path) == {"A": 1, "B": 2, "C": 2}
    assert (tmp_path / "mid2.txt").read_text() == "two\n"


def test_changing_a_command_reruns_the_job_and_downstream(server, tmp_path):
    wf = three_stage(server, tmp_path)
    with server.client() as c:
        b = next(j for j in c.iter_items("jobs", workflow_id=wf) if j["name"] == "B")
        # torc lets a job's command change only while it is uninitialized
        with pytest.raises(Exception, match="uninitialized"):
            c.put(f"jobs/{b['id']}", {**b, "command": "true"})
        c.put(f"jobs/{b['id']}/manage_status_change/uninitialized/{c.run_id(wf)}")
        b = c.get(f"jobs/{b['id']}")
        command = counting(tmp_path, "B", f"tr a-z A-Z < {tmp_path}/in2.txt > {tmp_path}/mid2.txt")
        c.put(f"jobs/{b['id']}", {**b, "command": command})
    plan = ok(server, "workflows", "reinitialize", wf, "--dry-run", cwd=tmp_path)
    assert plan["changed_jobs"] == ["B"]
    assert reasons(plan) == {"B": "command changed", "C": "downstream of B"}
    ok(server, "workflows", "reinitialize", wf, cwd=tmp_path)
    run(server, wf, tmp_path)
    assert runs(tmp_path) == {"A": 1, "B": 2, "C": 2}
    assert (tmp_path / "out.txt").read_text() == "one\nTWO\n"
    assert ok(server, "workflows", "reinitialize", wf, "--dry-run", cwd=tmp_path)["rerun"] == []


def test_changing_user_data_reruns_its_consumer_and_downstream(server, tmp_path):
    (tmp_path / "counts").mkdir()
    wf = create(server, {
        "name": "user_data",
        "jobs": [
            {"name": "reader", "command": counting(tmp_path, "reader", "echo ${user_data.input.cfg}")},
            {"name": "after", "command": counting(tmp_path, "after", "true"), "depends_on": ["reader"]},
            {"name": "other", "command": counting(tmp_path, "other", "true")},
        ],
        "user_data": [{"name": "cfg", "data": {"alpha": 1}}],
    }, tmp_path)
    run(server, wf, tmp_path)
    cfg = ok(server, "user-data", "list", wf, cwd=tmp_path)[0]
    ok(server, "user-data", "update", cfg["id"], "-d", '{"alpha": 2}', cwd=tmp_path)
    plan = ok(server, "workflows", "reinitialize", wf, "--dry-run", cwd=tmp_path)
    assert reasons(plan) == {"reader": "user data cfg changed", "after": "downstream of reader"}
    ok(server, "workflows", "reinitialize", wf, cwd=tmp_path)
    run(server, wf, tmp_path)
    assert runs(tmp_path) == {"after": 2, "other": 1, "reader": 2}


# ---- reinitialize --hash ------------------------------------------------------------------------


def hashes(server, wf: int) -> dict[str, dict[str, Any]]:
    """file name -> its entry in the workflow's content-hash baseline."""
    with server.client() as c:
        names = {f["id"]: f["name"] for f in c.iter_items("files", workflow_id=wf)}
        return {names[h["file_id"]]: h for h in c.get(f"workflows/{wf}/file_hashes")["items"]}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_content_hash_option_ignores_a_touch_but_not_a_content_change(server, tmp_path):
    wf = three_stage(server, tmp_path)
    assert hashes(server, wf) == {}  # nobody asked for hashes: `torc run` read no input to hash it

    # without a baseline, --hash judges by time (and a dry run records nothing)
    bump(tmp_path / "in1.txt")
    by_time = {"A": f"input {tmp_path / 'in1.txt'} changed", "C": "downstream of A"}
    assert reasons(ok(server, "workflows", "reinitialize", wf, "--dry-run", "--hash", cwd=tmp_path)) == by_time
    assert hashes(server, wf) == {}
    bump(tmp_path / "in1.txt", -5)

    # the first --hash records the baseline after deciding: every input that exists
    proc = torc(server, "workflows", "reinitialize", wf, "--hash", cwd=tmp_path)
    assert proc.returncode == 0 and "Nothing changed; no job needs to rerun." in proc.stdout, explain(proc)
    baseline = hashes(server, wf)
    assert set(baseline) == {"in1", "in2", "mid1", "mid2"}
    assert baseline["in1"]["sha256"] == sha("one\n") and baseline["in1"]["size"] == 4
    assert baseline["in1"]["st_mtime"] == (tmp_path / "in1.txt").stat().st_mtime

    bump(tmp_path / "in1.txt")
    assert reasons(ok(server, "workflows", "reinitialize", wf, "--dry-run", cwd=tmp_path)) == by_time
    for flag in ("--hash", "--content-hash"):
        assert ok(server, "workflows", "reinitialize", wf, "--dry-run", flag, cwd=tmp_path)["rerun"] == []
    proc = torc(server, "workflows", "reinitialize", wf, "--hash", cwd=tmp_path)
    assert proc.returncode == 0 and "Nothing changed; no job needs to rerun." in proc.stdout, explain(proc)
    assert statuses(server, wf) == dict.fromkeys("ABC", "completed")
    run(server, wf, tmp_path)
    assert runs(tmp_path) == {"A": 1, "B": 1, "C": 1}
    # the touch is now the recorded time: plain reinitialize sees nothing either
    assert ok(server, "workflows", "reinitialize", wf, "--dry-run", cwd=tmp_path)["rerun"] == []
    assert hashes(server, wf)["in1"]["st_mtime"] == (tmp_path / "in1.txt").stat().st_mtime

    # a real change of content (same size, time put back to the recorded one does not hide it)
    (tmp_path / "in2.txt").write_text("TWO\n")
    bump(tmp_path / "in2.txt")
    plan = ok(server, "workflows", "reinitialize", wf, "--hash", cwd=tmp_path)
    assert reasons(plan) == {"B": f"input {tmp_path / 'in2.txt'} content changed", "C": "downstream of B"}
    assert hashes(server, wf)["in2"]["sha256"] == sha("TWO\n")
    run(server, wf, tmp_path)
    assert runs(tmp_path) == {"A": 1, "B": 2, "C": 2}
    assert (tmp_path / "out.txt").read_text() == "one\nTWO\n"

    # an intermediate file its producer rewrote is hashed at the next reinitialize; touching it
    # afterwards reruns nothing with --hash
    ok(server, "workflows", "reinitialize", wf, "--hash", cwd=tmp_path)
    bump(tmp_path / "mid1.txt")
    assert ok(server, "workflows", "reinitialize", wf, "--hash", "--dry-run", cwd=tmp_path)["rerun"] == []
    assert reasons(ok(server, "workflows", "reinitialize", wf, "--dry-run", cwd=tmp_path)) == {
        "C": f"input {tmp_path / 'mid1.txt'} changed"}
    assert set(hashes(server, wf)) == {"in1", "in2", "mid1", "mid2"}
    # the baseline is no event of the workflow
    with server.client() as c:
        assert not any("torc_input_file_hashes" in json.dumps(e) for e in c.iter_items("events", workflow_id=wf))


def test_a_file_without_a_baseline_entry_is_judged_by_time(server, tmp_path):
    wf = three_stage(server, tmp_path)
    ok(server, "workflows", "reinitialize", wf, "--hash", cwd=tmp_path)
    with server.client() as c:  # only in1 keeps an entry
        kept = [h for h in c.get(f"workflows/{wf}/file_hashes")["items"] if h["sha256"] == sha("one\n")]
        c.put(f"workflows/{wf}/file_hashes", {"items": kept})
    bump(tmp_path / "in1.txt")
    bump(tmp_path / "in2.txt")
    assert reasons(ok(server, "workflows", "reinitialize", wf, "--dry-run", "--hash", cwd=tmp_path)) == {
        "B": f"input {tmp_path / 'in2.txt'} changed", "C": "downstream of B"}


# ---- reinitialize while jobs run ----------------------------------------------------------------


def test_reinitialize_is_refused_while_a_job_runs_and_changes_nothing(server, tmp_path):
    (tmp_path / "counts").mkdir()
    gate = tmp_path / "gate"
    wf = create(server, {"name": "busy", "jobs": [
        {"name": "quick", "command": counting(tmp_path, "quick", "true")},
        {"name": "slow", "command": counting(tmp_path, "slow", f"while [ ! -e {gate} ]; do sleep 0.05; done")},
    ]}, tmp_path)
    log = open(tmp_path / "runner.log", "w")
    runner = subprocess.Popen([*TORC, "--url", server.url, "run", str(wf), "-o", str(tmp_path / "out"),
                               "--no-progress", "-p", "0.2"], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                              env=clean_env())
    log.close()
    try:
        wait_for(lambda: statuses(server, wf) == {"quick": "completed", "slow": "running"}, 30, "slow to run")
        with server.client() as c:
            run_id = c.run_id(wf)
        proc = torc(server, "workflows", "reinitialize", wf, cwd=tmp_path)
        assert proc.returncode == 1, explain(proc)
        assert "1 running or pending job(s): slow (running)" in proc.stderr and "--force" in proc.stderr
        assert "nothing was changed" in proc.stderr
        with server.client() as c:
            assert c.run_id(wf) == run_id
        assert statuses(server, wf) == {"quick": "completed", "slow": "running"}
        # a dry run still answers, with a note
        dry = torc(server, "-f", "json", "workflows", "reinitialize", wf, "--dry-run", cwd=tmp_path)
        assert dry.returncode == 0 and json.loads(dry.stdout)["rerun"] == [], explain(dry)
        assert "would be refused without --force" in dry.stderr
        # reset-status is refused the same way
        reset = torc(server, "workflows", "reset-status", wf, "--failed-only", "--no-prompts", cwd=tmp_path)
        assert reset.returncode == 1 and "running" in reset.stderr, explain(reset)
        gate.touch()
        assert runner.wait(60) == 0, (tmp_path / "runner.log").read_text()
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runs(tmp_path) == {"quick": 1, "slow": 1}
    assert ok(server, "workflows", "reinitialize", wf, cwd=tmp_path)["rerun"] == []


# ---- reset-status --failed-only -----------------------------------------------------------------


@pytest.mark.parametrize("then_initialize", [False, True], ids=["then_torc_run", "with_reinitialize"])
def test_reset_failed_only_after_fixing_the_cause_reruns_failed_and_canceled_jobs_once(
        server, tmp_path, then_initialize):
    """prep -> broken -> mid -> end; solo alone. broken needs a file nobody declared, so it fails and
    mid and end are canceled; create the file, reset the failed ones, `torc run ID` again."""
    (tmp_path / "counts").mkdir()
    needed = tmp_path / "needed.txt"
    wf = create(server, {"name": "fails", "jobs": [
        {"name": "prep", "command": counting(tmp_path, "prep", "true")},
        {"name": "broken", "command": counting(tmp_path, "broken", f"cat {needed}"), "depends_on": ["prep"]},
        {"name": "mid", "command": counting(tmp_path, "mid", "true"), "depends_on": ["broken"]},
        {"name": "end", "command": counting(tmp_path, "end", "true"), "depends_on": ["mid"]},
        {"name": "solo", "command": counting(tmp_path, "solo", "true")},
    ]}, tmp_path)
    run(server, wf, tmp_path, expect=1)
    assert statuses(server, wf) == {"prep": "completed", "broken": "failed", "mid": "canceled",
                                    "end": "canceled", "solo": "completed"}
    assert runs(tmp_path) == {"broken": 1, "prep": 1, "solo": 1}

    needed.write_text("here now\n")
    args = ["workflows", "reset-status", wf, "--failed-only", "--no-prompts"]
    reset = ok(server, *args, *(["--reinitialize"] if then_initialize else []), cwd=tmp_path)
    assert (reset["reset_type"], reset["updated_count"]) == ("failed_only", 3)
    if then_initialize:
        assert reset["job_counts"] == {"blocked": 2, "completed": 2, "ready": 1}
    else:
        assert statuses(server, wf) == {"prep": "completed", "broken": "uninitialized", "mid": "uninitialized",
                                        "end": "uninitialized", "solo": "completed"}
    run(server, wf, tmp_path)
    assert statuses(server, wf) == dict.fromkeys(["prep", "broken", "mid", "end", "solo"], "completed")
    assert runs(tmp_path) == {"broken": 2, "end": 1, "mid": 1, "prep": 1, "solo": 1}
    with server.client() as c:
        assert c.get(f"workflows/{wf}/is_complete")["is_complete"] is True
        names = {j["id"]: j["name"] for j in c.iter_items("jobs", workflow_id=wf)}
        rows: dict[str, list[int]] = {}
        for r in c.iter_items("results", workflow_id=wf, all_runs=True):
            rows.setdefault(names[r["job_id"]], []).append(r["return_code"])
    # every run kept its own result: broken failed once then succeeded; canceled jobs had none
    assert rows["broken"][0] != 0 and rows["broken"][1:] == [0]
    assert {n: len(v) for n, v in rows.items()} == {"prep": 1, "broken": 2, "mid": 1, "end": 1, "solo": 1}


def test_initialize_records_the_content_hashes_of_existing_inputs(server, tmp_path, monkeypatch):
    """initialize hashes nothing on a workflow without a baseline; once `reinitialize --hash` made
    one, each initialize refreshes it for the inputs that exist and no job produces, reading only
    the files whose size or modification time changed."""
    from torc.client import manager

    read: list[str] = []
    real = manager.file_sha256

    def counting_sha256(path: Path) -> str:
        read.append(path.name)
        return real(path)

    monkeypatch.setattr(manager, "file_sha256", counting_sha256)
    wf = three_stage(server, tmp_path)
    with TorcClient(server.url) as c:
        manager.initialize(c, wf)
        assert read == [] and hashes(server, wf) == {}

        manager.reinitialize(c, wf, content_hash=True)  # the baseline: every input that exists
        assert sorted(read) == ["in1.txt", "in2.txt", "mid1.txt", "mid2.txt"]
        assert set(hashes(server, wf)) == {"in1", "in2", "mid1", "mid2"}

        read.clear()
        (tmp_path / "in2.txt").write_text("TWO\n")
        bump(tmp_path / "in2.txt")
        manager.initialize(c, wf)
        assert read == ["in2.txt"]  # in1 is unchanged: its hash is kept, not computed again
        recorded = hashes(server, wf)
        assert set(recorded) == {"in1", "in2"}  # the outputs of jobs are rewritten by this run
        assert recorded["in1"]["sha256"] == sha("one\n") and recorded["in2"]["sha256"] == sha("TWO\n")
        assert recorded["in2"]["st_mtime"] == (tmp_path / "in2.txt").stat().st_mtime

        read.clear()
        manager.initialize(c, wf)
        assert read == [] and hashes(server, wf) == recorded


# ---- docs/rerunning.md ---------------------------------------------------------------------------


DOC = Path(__file__).resolve().parents[2] / "docs" / "rerunning.md"


def bash_blocks(text: str) -> list[str]:
    blocks, current = [], None
    for line in text.splitlines():
        if current is None and line.strip() == "```bash":
            current = []
        elif current is not None and line.strip() == "```":
            blocks.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def test_the_bash_blocks_of_the_rerunning_doc_run_as_written(server, tmp_path):
    blocks = bash_blocks(DOC.read_text())
    assert len(blocks) >= 4
    script = "set -euo pipefail\n" + "\n".join(blocks) + "\n"
    env = {**clean_env(), "TORC_API_URL": server.url,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, explain(proc)
    demo = tmp_path / "demo"
    lines = proc.stdout.splitlines()
    assert [line for line in lines if line.startswith("would rerun:")][:2] == [
        f"would rerun: A: input {demo / 'in1.txt'} changed", "would rerun: C: downstream of A"]
    assert f"rerun: B: input {demo / 'in2.txt'} content changed" in lines
    assert "Nothing changed; no job needs to rerun." in lines
    assert (demo / "out.txt").read_text() == "one\nTWO\n"
    assert "torc run: some jobs failed" in lines
    with server.client() as c:
        fails = max(w["id"] for w in c.iter_items("workflows") if w["name"] == "fails")
        assert {j["name"]: j["status"] for j in c.iter_items("jobs", workflow_id=fails)} == dict.fromkeys(
            ["prep", "broken", "after", "solo"], "completed")
        names = {j["id"]: j["name"] for j in c.iter_items("jobs", workflow_id=fails)}
        per_job: dict[str, int] = {}
        for r in c.iter_items("results", workflow_id=fails, all_runs=True):
            per_job[names[r["job_id"]]] = per_job.get(names[r["job_id"]], 0) + 1
    assert per_job == {"prep": 1, "broken": 2, "after": 1, "solo": 1}


def test_describing_an_input_hash_change():
    from torc.service.lifecycle import describe_input_change

    base = "aa;command=1;invocation_script=2;depends_on=3;input_files=4;output_files=5;input_user_data=6;" \
           "output_user_data=7;user_data=10:x,11:y"
    assert describe_input_change(base, base, {}) == []
    assert describe_input_change(base, base.replace("aa;command=1", "bb;command=9"), {}) == ["command changed"]
    assert describe_input_change(base, base.replace("aa", "bb").replace("11:y", "11:z"), {11: "cfg"}) == [
        "user data cfg changed"]
    assert describe_input_change(base, base.replace("aa", "bb").replace("depends_on=3", "depends_on=0"), {}) == [
        "dependencies changed"]
    # a hash stored before it carried its parts
    assert describe_input_change("aa", base.replace("aa", "bb"), {}) == ["command, dependencies or input data changed"]

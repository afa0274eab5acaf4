"""Every example spec from torc that needs no Slurm cluster runs to completion through `torc run`.

Each example (tests/data/examples, copies of torc's examples) runs as a real `torc run` subprocess
against a real torc-server process, with real job subprocesses, in a temporary working directory
prepared like this:

- The spec is copied in unchanged, except that absolute data paths (/data/..., /results/...,
  /models/... in `files` and in commands) become relative ones under `fs/` (`/data/raw/x.csv` ->
  `fs/data/raw/x.csv`): the tests must not write into /, and they run as root here.
- torc's helper programs are not included, so stand-ins are put where the commands look for them:
  - the relative script paths the commands name (`python scripts/prepare_data.py`, `python train.py`,
    `./run_simulation`, `bash tests/scripts/work.sh`, failure-handler `recovery_script`s) get the
    stand-in of the same path from tests/data/stand_ins/tree/ when there is one (real diamond
    transforms, a deterministic flaky job, small CPU/memory workloads), and otherwise
    tests/data/stand_ins/generic.py, which writes the job's declared output files (from a manifest
    made from the resolved spec) and every `--output`-like argument;
  - a `bin/` directory first on PATH holds stand-ins only for commands that would reach the network
    (wget = generic.py, curl, aws) and `python`/`python3` wrappers that run the interpreter running
    these tests, so `python X.py` does not depend on the machine's python setup.
- Input files that no job produces are created before the run (torc refuses to start without them).

The runner gets `-o .` (actions run in the output directory and jobs in the runner's cwd; the
examples' actions create directories the jobs use, so both must be the same directory), a short
poll interval, and a virtual node (`--num-cpus 16 --memory-gb 64 --num-gpus 1`) large enough for
every resource requirement of these examples, so resource-based claiming runs jobs sized for a
cluster node on a small test machine. The big barrier example runs in queue mode instead.

Checked for every example: the number and names of the jobs created equal the expanded spec, the
workflow is complete, every job completed with return code 0, every declared output file exists,
and every job that calls a generic stand-in really called it. The failure-handler examples are
checked attempt by attempt against their handlers' rules (see FAILURE_EXAMPLES).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.conftest import LiveServer
from torc.client import TorcClient
from torc.core.units import parse_memory_bytes
from torc.spec.load import parse_file, spec_from_data
from torc.spec.model import WorkflowSpec
from torc.spec.resolve import ResolvedJob, edges, resolve

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "tests" / "data" / "examples"
STAND_INS = REPO / "tests" / "data" / "stand_ins"
GENERIC = STAND_INS / "generic.py"
TORC = [sys.executable, "-m", "torc.cli.main"]

# Examples that need a Slurm cluster, with the reason. sample_workflow.{yaml,json5} assign their
# jobs to Slurm schedulers too, but nothing in them allocates nodes and their commands are small:
# the local runner claims such jobs (its scheduler match is not strict) and they run here.
SKIPPED = {
    "slurm_staged_pipeline.yaml":
        "a Slurm pipeline: every job is assigned to a Slurm scheduler and sized for cluster nodes "
        "(8-32 CPUs, 32-300 GB); the jobs write 10 x 1 GiB + 10 x 512 MiB of /dev/urandom data to "
        "/scratch, run numpy FFTs on 800 MB arrays with 60 s sleeps, and use BSD `stat -f%z`",
    "workflow_actions_ml_training.yaml":
        "its train_model_* jobs are run by an on_jobs_ready schedule_nodes action with "
        "scheduler_type slurm (2 sbatch allocations of 2 GPU nodes); its on_workflow_start action also "
        "needs PyTorch",
    "workflow_actions_simple_slurm.yaml":
        "every stage is started by schedule_nodes actions with scheduler_type slurm (sbatch "
        "allocations); no local runner is meant to run it",
}

# The diamond examples run in test_diamond_with_real_files, with content checks.
DIAMONDS = ("diamond_workflow.yaml", "diamond_workflow.kdl")

# Jobs of these examples fail on purpose (the deterministic failure_demo_job.sh stand-in decides
# from the job name, the attempt and FAILURE_SEED). The runner applies their failure handlers
# (docs/failure-handling.md): a job whose code a rule covers is retried, after the rule's recovery
# script, while the rule has retries left (max_retries counts retries); a job that ends failed
# cancels its dependents (cancel_on_blocking_job_failure defaults to true) and the workflow still
# runs to its end. Recorded here: the return code of every attempt of each job that did not succeed
# at once. FAILURE_SEED picks draws with retries that end in success and jobs that end failed.
FAILURE_SEED = "17"
FAILURE_EXAMPLES: dict[str, dict[str, list[int]]] = {
    # flaky_job_2 fails with 11 (rule: recovery script, 2 retries) and succeeds on its retry: every
    # job completes.
    "failure_handler_demo.yaml": {"flaky_job_2": [11, 0]},
    # Two simulations recover on a retry; simulate_m0_s0 uses up the 2 retries of code 11; three
    # fail with 1, which no rule covers (no retry), and simulate_m2_s2 fails with 1 on its retry;
    # aggregate_results is canceled.
    "failure_handler_simulation.yaml": {
        "simulate_m0_s0": [11, 11, 11], "simulate_m0_s1": [1], "simulate_m1_s1": [10, 0], "simulate_m1_s2": [1],
        "simulate_m2_s0": [1], "simulate_m2_s1": [12, 11, 0], "simulate_m2_s2": [11, 1]},
    # flaky_job fails with 12, match_all_exit_codes retries it and it succeeds: summary runs.
    "simple_retry.yaml": {"flaky_job": [12, 0]},
}

# Runner options per example beyond the common ones: queue mode for the 2104-job barrier example.
RUNNER_OPTIONS = {
    "multi_stage_barrier_pattern.yaml": ["--max-parallel-jobs", "8"],
}
SLOW = {"multi_stage_barrier_pattern.yaml"}

VIRTUAL_NODE = {"num_cpus": 16, "memory_gb": 64, "num_gpus": 1}
COMMON_OPTIONS = ["-o", ".", "--no-progress", "-p", "0.1", "--idle-timeout", "30"]

# Absolute data paths in the examples, rewritten to relative ones under fs/. A URL's path
# (https://example.com/data/...) is preceded by a word character or '/' and left alone.
DATA_ROOTS = ("data", "results", "reports", "models", "configs", "logs", "analysis", "scripts", "scratch")
ABSOLUTE_DATA_PATH = re.compile(r"(?<![\w.:/~$-])/(" + "|".join(DATA_ROOTS) + r")(?=[/\s'\"]|$)")

# `python X.py`, `python3 X.py`, `bash X.sh`, `sh X.sh` and `./X` in a command.
PROGRAM = re.compile(
    r"(?:^|[\s;&|(])(?:(?:python3?|bash|sh)\s+(?P<script>[^\s;&|'\"-][^\s;&|'\"]*)|(?P<exe>\./[^\s;&|'\"]+))",
    re.M,
)


def all_examples() -> list[str]:
    return sorted(p.name for p in EXAMPLES.iterdir() if p.suffix in (".yaml", ".yml", ".json", ".json5", ".kdl"))


def run_examples() -> list[pytest.param]:
    """Every example but the diamonds; the Slurm ones are listed as skipped, with their reason."""
    params = []
    for name in all_examples():
        if name in DIAMONDS:
            continue
        marks = [pytest.mark.skip(reason=f"needs a Slurm cluster: {SKIPPED[name]}")] if name in SKIPPED else []
        marks += [pytest.mark.slow] if name in SLOW else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


# ---- preparing a working directory ---------------------------------------------------------------


@dataclass
class Call:
    program: str
    job: str | None  # None: called by an action
    return_code: int
    argv: list[str]


@dataclass
class Prepared:
    example: str
    workdir: Path
    spec_path: Path
    spec: WorkflowSpec
    jobs: list[ResolvedJob]
    files: dict[str, str]  # file name -> path (relative to workdir)
    generic_jobs: set[str] = field(default_factory=set)  # jobs whose command calls a generic stand-in

    @property
    def calls(self) -> list[Call]:
        """What the stand-ins recorded, in order: one tab-separated line per call."""
        log = self.workdir / "standin_calls.tsv"
        if not log.exists():
            return []
        calls = []
        for line in log.read_text().splitlines():
            program, job, code, *argv = line.split("\t")
            calls.append(Call(program, job or None, int(code), argv))
        return calls


def _load(spec_path: Path) -> tuple[WorkflowSpec, list[ResolvedJob]]:
    data, source = parse_file(spec_path)
    spec, broken = spec_from_data(data, source)
    return spec, resolve(spec, source, broken)


def _programs(spec: WorkflowSpec, jobs: list[ResolvedJob]) -> dict[str, set[str | None]]:
    """Relative program paths the spec's commands call -> names of the jobs calling them (None for
    actions and recovery scripts)."""
    found: dict[str, set[str | None]] = {}

    def scan(text: str | None, job: str | None) -> None:
        for match in PROGRAM.finditer(text or ""):
            path = match.group("script") or match.group("exe")
            if not Path(path).is_absolute():
                found.setdefault(path, set()).add(job)

    for job in jobs:
        scan(job.command, job.spec.name)
        scan(job.invocation_script, job.spec.name)
    for action in spec.actions or []:
        for command in action.commands or []:
            scan(command, None)
    for handler in spec.failure_handlers or []:
        for rule in handler.rules:
            if rule.recovery_script:
                found.setdefault(rule.recovery_script.split()[0], set()).add(None)
    return found


def _install(program: str, workdir: Path) -> bool:
    """Put a stand-in at workdir/program; True if it is the generic one."""
    target = workdir / program
    target.parent.mkdir(parents=True, exist_ok=True)
    specific = STAND_INS / "tree" / program
    if specific.is_file():
        shutil.copy2(specific, target)
        return False
    if program.endswith(".sh"):
        target.write_text(f'#!/usr/bin/env bash\nSTANDIN_PROGRAM="$0" exec python3 {GENERIC} "$@"\n')
    else:
        shutil.copy2(GENERIC, target)
    target.chmod(0o755)
    return True


def _make_bin(workdir: Path) -> Path:
    bin_dir = workdir / "bin"
    bin_dir.mkdir()
    for name in ("curl", "aws"):
        shutil.copy2(STAND_INS / "bin" / name, bin_dir / name)
    shutil.copy2(GENERIC, bin_dir / "wget")
    for name in ("python", "python3"):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        (bin_dir / name).chmod(0o755)
    return bin_dir


def _check_fits(spec: WorkflowSpec, example: str) -> None:
    if example in RUNNER_OPTIONS:
        return
    for rr in spec.resource_requirements or []:
        assert rr.num_cpus <= VIRTUAL_NODE["num_cpus"] and rr.num_gpus <= VIRTUAL_NODE["num_gpus"] \
            and parse_memory_bytes(rr.memory) <= VIRTUAL_NODE["memory_gb"] * 2**30, \
            f"{example}: resource requirement {rr.name} does not fit the virtual node {VIRTUAL_NODE}"


def prepare(example: str, workdir: Path) -> Prepared:
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path = workdir / example
    spec_path.write_text(ABSOLUTE_DATA_PATH.sub(r"fs/\1", (EXAMPLES / example).read_text()))
    spec, jobs = _load(spec_path)
    files = {f.name: f.path for f in spec.files or []}
    absolute = sorted(p for p in files.values() if Path(p).is_absolute())
    assert not absolute, f"{example}: absolute file paths left after the rewrite: {absolute}"
    _check_fits(spec, example)
    _make_bin(workdir)
    prepared = Prepared(example, workdir, spec_path, spec, jobs, files)
    for program, callers in _programs(spec, jobs).items():
        if _install(program, workdir):
            prepared.generic_jobs |= {job for job in callers if job is not None}
    produced = {name for job in jobs for name in job.output_files}
    for job in jobs:
        for name in job.input_files:
            path = workdir / files[name]
            if name not in produced and not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("[1, 2, 3, 4]\n" if path.suffix == ".json" else f"input {name}\n")
    manifest = [f"{job.spec.name}\t{files[name]}\n" for job in jobs for name in job.output_files]
    (workdir / "standin_manifest.tsv").write_text("".join(manifest))
    return prepared


# ---- running -------------------------------------------------------------------------------------


@dataclass
class Outcome:
    proc: subprocess.CompletedProcess
    workflow_id: int
    seconds: float
    jobs: dict[str, dict]  # name -> job record from the server
    results: dict[int, dict]  # job id -> current result
    is_complete: bool

    def statuses(self) -> dict[str, str]:
        return {name: job["status"] for name, job in self.jobs.items()}

    def return_code(self, name: str) -> int:
        return self.results[self.jobs[name]["id"]]["return_code"]


def run_example(server: LiveServer, prepared: Prepared, timeout: float = 240) -> Outcome:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORC_")}
    env["PATH"] = f"{prepared.workdir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["STANDIN_MANIFEST"] = str(prepared.workdir / "standin_manifest.tsv")
    env["STANDIN_CALLS"] = str(prepared.workdir / "standin_calls.tsv")
    env["STANDIN_SEED"] = FAILURE_SEED
    options = RUNNER_OPTIONS.get(prepared.example) or [
        "--num-cpus", str(VIRTUAL_NODE["num_cpus"]), "--memory-gb", str(VIRTUAL_NODE["memory_gb"]),
        "--num-gpus", str(VIRTUAL_NODE["num_gpus"])]
    cmd = [*TORC, "--url", server.url, "run", prepared.spec_path.name, *COMMON_OPTIONS, *options]
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=prepared.workdir, env=env, capture_output=True, text=True, timeout=timeout)
    seconds = time.monotonic() - started
    created = re.search(r"Created workflow (\d+)", proc.stdout)
    assert created, f"torc run did not create the workflow ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    workflow_id = int(created.group(1))
    with TorcClient(server.url) as api:
        jobs = list(api.iter_items("jobs", workflow_id=workflow_id))
        results = {r["job_id"]: r for r in api.iter_items("results", workflow_id=workflow_id)}
        is_complete = api.get(f"workflows/{workflow_id}/is_complete")["is_complete"]
    by_name = {job["name"]: job for job in jobs}
    assert len(by_name) == len(jobs), "duplicate job names on the server"
    return Outcome(proc, workflow_id, seconds, by_name, results, is_complete)


def describe(outcome: Outcome) -> str:
    return f"torc run exited {outcome.proc.returncode}:\n{outcome.proc.stdout[-6000:]}\n{outcome.proc.stderr[-4000:]}"


def check_ran_to_completion(prepared: Prepared, outcome: Outcome) -> None:
    """The common checks for an example whose jobs all succeed."""
    assert sorted(outcome.jobs) == sorted(j.spec.name for j in prepared.jobs), "jobs created != expanded spec"
    assert outcome.proc.returncode == 0, describe(outcome)
    assert outcome.is_complete, describe(outcome)
    not_completed = {n: s for n, s in outcome.statuses().items() if s != "completed"}
    assert not not_completed, f"{not_completed}\n{describe(outcome)}"
    assert {outcome.return_code(n) for n in outcome.jobs} == {0}
    declared = {prepared.files[name] for job in prepared.jobs for name in job.output_files}
    missing = sorted(path for path in declared if not (prepared.workdir / path).exists())
    assert not missing, f"declared output files missing: {missing}"
    called = {call.job for call in prepared.calls}
    assert prepared.generic_jobs <= called, f"jobs that never called their stand-in: {prepared.generic_jobs - called}"


# ---- per-example checks beyond the common ones ---------------------------------------------------


def _check_actions_simple(prepared: Prepared, outcome: Outcome) -> None:
    log = (prepared.workdir / "workflow_log.txt").read_text()
    assert "Workflow started at" in log and "Workflow completed at" in log
    with tarfile.open(prepared.workdir / "output" / "results.tar.gz") as archive:
        assert archive.getnames() == ["workflow_log.txt"]
    assert not (prepared.workdir / "temp").exists()  # removed by the on_workflow_complete action


def _check_actions_data_pipeline(prepared: Prepared, outcome: Outcome) -> None:
    work = prepared.workdir
    log = (work / "pipeline.log").read_text()
    for line in ("=== Data Pipeline Started", "Download phase starting", "Validation complete",
                 "Transformation complete", "=== Pipeline Completed"):
        assert line in log, (line, log)
    for dataset in ("users", "transactions", "products", "reviews"):
        assert (work / "raw" / dataset / "data.csv").is_file()  # the download jobs' tar -xzf
        assert (work / "transformed" / dataset).is_file()
    assert not list((work / "raw").glob("*.tar.gz"))  # removed by the on_jobs_complete(validate_*) action
    assert (work / "aggregated" / "final.parquet").is_file()
    assert (work / "reports" / "summary.html").is_file()
    assert (work / "reports" / "metrics.json").is_file()  # scripts/metrics.py of on_workflow_complete
    # The example never creates archives/, so its `tar -czf archives/...` fails; the first failing
    # command ends that action (reference 3.9) and its `rm -rf validated/` does not run.
    assert (work / "validated").is_dir()


def _check_resource_monitoring(prepared: Prepared, outcome: Outcome) -> None:
    """The stand-ins run 3 s and the example samples every 2 s (time series)."""
    usage = {name: outcome.results[job["id"]] for name, job in outcome.jobs.items()}
    assert usage["memory_heavy_job"]["peak_memory_bytes"] >= 100 * 2**20, usage["memory_heavy_job"]
    assert usage["mixed_workload_job"]["peak_memory_bytes"] >= 50 * 2**20, usage["mixed_workload_job"]
    assert usage["cpu_heavy_job"]["peak_cpu_percent"] > 20, usage["cpu_heavy_job"]
    (db,) = (prepared.workdir / "resource_utilization").glob(f"resource_metrics_*_{outcome.workflow_id}_*.db")
    with sqlite3.connect(db) as conn:
        names = dict(conn.execute("SELECT job_id, job_name FROM job_metadata"))
        samples = dict(conn.execute("SELECT job_id, COUNT(*) FROM job_resource_samples GROUP BY job_id"))
    assert sorted(names.values()) == sorted(outcome.jobs)
    assert all(samples.get(job_id, 0) >= 2 for job_id in names), samples


def _check_barrier(prepared: Prepared, outcome: Outcome) -> None:
    output = prepared.workdir / "output"
    assert len(list(output.glob("stage1_*.dat"))) == 1000
    assert len(list(output.glob("stage2_*.json"))) == 1000
    assert len(list(output.glob("stage3_*.csv"))) == 100
    assert (prepared.workdir / "final_report.html").is_file()


def _check_sample_workflow(prepared: Prepared, outcome: Outcome) -> None:
    assert (prepared.workdir / "input_data.csv").is_file()  # wget -O input_data.csv
    assert (prepared.workdir / "results.json").is_file()  # analyze_data.py --output results.json


EXTRA_CHECKS: dict[str, Callable[[Prepared, Outcome], None]] = {
    "workflow_actions_simple.yaml": _check_actions_simple,
    "workflow_actions_data_pipeline.yaml": _check_actions_data_pipeline,
    "resource_monitoring_demo.yaml": _check_resource_monitoring,
    "multi_stage_barrier_pattern.yaml": _check_barrier,
    "sample_workflow.yaml": _check_sample_workflow,
    "sample_workflow.json5": _check_sample_workflow,
}


def _rule_for(rules: list, code: int):
    """The failure-handler rule the runner picks for a return code (first listing it, else the first
    match_all one), or None."""
    return next((r for r in rules if code in r.exit_codes), None) or \
        next((r for r in rules if r.match_all_exit_codes), None)


def check_failure_example(prepared: Prepared, outcome: Outcome, server: LiveServer) -> dict[str, list[int]]:
    """Failure handlers are applied: each attempt of a job follows from its handler's rules (retry
    while a rule covers the code and has retries left, with the rule's recovery script run before
    each retry), every attempt has its own result row, jobs behind one that ended failed are
    canceled, and the workflow is complete. Returns the return codes of the attempts of every job
    that did not succeed at once."""
    assert sorted(outcome.jobs) == sorted(j.spec.name for j in prepared.jobs), "jobs created != expanded spec"
    assert outcome.is_complete, describe(outcome)
    attempts: dict[str, list[int]] = {}
    for call in prepared.calls:
        if call.program.endswith("failure_demo_job.sh"):
            attempts.setdefault(call.job, []).append(call.return_code)
    recoveries = {}
    for call in prepared.calls:
        if call.program.endswith("recovery_demo.sh"):
            recoveries[call.job] = recoveries.get(call.job, 0) + 1
    handlers = {h.name: h for h in prepared.spec.failure_handlers or []}
    specs = {j.spec.name: j.spec for j in prepared.jobs}
    for name, codes in attempts.items():
        rules = handlers[specs[name].failure_handler].rules if specs[name].failure_handler else []
        scripts = 0
        for retries_done, code in enumerate(codes):
            rule = _rule_for(rules, code)
            retried = code != 0 and rule is not None and retries_done < rule.max_retries
            assert retried == (retries_done < len(codes) - 1), (name, codes)
            scripts += bool(retried and rule.recovery_script)
        assert recoveries.get(name, 0) == scripts, (name, codes, recoveries)
    with TorcClient(server.url) as api:
        rows: dict[int, list[tuple[int, str, int]]] = {}
        for r in api.iter_items("results", workflow_id=outcome.workflow_id, all_runs=True):
            rows.setdefault(r["job_id"], []).append((r["attempt_id"], r["status"], r["return_code"]))
    for name, codes in attempts.items():
        expected_rows = [(i + 1, "failed", code) for i, code in enumerate(codes)]
        if codes[-1] == 0:
            expected_rows[-1] = (len(codes), "completed", 0)
        assert sorted(rows[outcome.jobs[name]["id"]]) == expected_rows, name
        assert outcome.jobs[name]["attempt_id"] == len(codes)
    blockers = edges(prepared.jobs)
    expected: dict[str, str] = {}

    def status(name: str) -> str:
        if name not in expected:
            if any(status(b) != "completed" for b in blockers[name]):
                expected[name] = "canceled"
            elif name in attempts:
                expected[name] = "completed" if attempts[name][-1] == 0 else "failed"
            else:
                expected[name] = "completed"
        return expected[name]

    for name in outcome.jobs:
        status(name)
    assert outcome.statuses() == expected, describe(outcome)
    for name, codes in attempts.items():
        assert outcome.return_code(name) == codes[-1]
    failed = any(s == "failed" for s in expected.values())
    assert outcome.proc.returncode == (1 if failed else 0), describe(outcome)
    return {name: codes for name, codes in attempts.items() if codes != [0]}


# ---- tests ---------------------------------------------------------------------------------------




def test_every_example_is_run_or_skipped_with_a_reason():
    names = set(all_examples())
    assert set(SKIPPED) <= names and set(DIAMONDS) <= names and set(FAILURE_EXAMPLES) <= names
    for name in SKIPPED:  # each skipped example really is a Slurm one
        spec, _ = _load(EXAMPLES / name)
        slurm_actions = [a for a in spec.actions or [] if a.action_type == "schedule_nodes"
                         and a.scheduler_type == "slurm"]
        slurm_jobs = [j for j in spec.jobs if j.scheduler]
        assert slurm_actions or (slurm_jobs and len(slurm_jobs) == len(spec.jobs)), name


@pytest.mark.parametrize("example", run_examples())
def test_example_runs_to_completion(example, server, tmp_path):
    prepared = prepare(example, tmp_path / "work")
    outcome = run_example(server, prepared)
    print(f"{example}: {len(outcome.jobs)} jobs in {outcome.seconds:.1f} s")
    if example in FAILURE_EXAMPLES:
        retried = check_failure_example(prepared, outcome, server)
        print(f"{example}: return codes of the attempts of jobs that did not succeed at once: {retried}")
        assert retried == FAILURE_EXAMPLES[example]
        return
    check_ran_to_completion(prepared, outcome)
    if example in EXTRA_CHECKS:
        EXTRA_CHECKS[example](prepared, outcome)


@pytest.mark.parametrize("example", DIAMONDS)
def test_diamond_with_real_files(example, server, tmp_path):
    """preprocess splits the list in f1 in two (f2, f3), work1/work2 square them (f4, f5) and
    postprocess sums both (f6): the stand-ins really transform JSON, so f6 proves the data flowed
    through the diamond in dependency order."""
    prepared = prepare(example, tmp_path / "work")
    assert prepared.files == {f"f{i}": f"f{i}.json" for i in range(1, 7)}
    work = prepared.workdir
    (work / "f1.json").write_text(json.dumps(list(range(1, 11))))
    outcome = run_example(server, prepared)
    check_ran_to_completion(prepared, outcome)

    def read(name: str):
        return json.loads((work / name).read_text())

    assert read("f2.json") == [1, 2, 3, 4, 5]
    assert read("f3.json") == [6, 7, 8, 9, 10]
    assert read("f4.json") == [1, 4, 9, 16, 25]
    assert read("f5.json") == [36, 49, 64, 81, 100]
    assert read("f6.json") == {"count": 10, "sum": 385}
    ends = {name: outcome.results[job["id"]]["completion_time"] for name, job in outcome.jobs.items()}
    assert ends["preprocess"] <= min(ends["work1"], ends["work2"])
    assert max(ends["work1"], ends["work2"]) <= ends["postprocess"]

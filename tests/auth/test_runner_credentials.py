"""Runners started by torc get the credentials without a password on any command line or in any
file: remote workers through ssh's stdin, Slurm allocations through sbatch's environment."""

from __future__ import annotations

import subprocess
from pathlib import Path

from torc.remote import operations
from torc.remote.ssh import SshSettings
from torc.remote.workers import parse_worker
from torc.slurm import commands, submit


def test_remote_worker_gets_the_password_on_stdin(monkeypatch):
    calls: list[tuple[list[str], str | None]] = []

    def fake_run(cmd, **kwargs):
        calls.append((cmd, kwargs.get("input")))
        out = "4242\n" if len(calls) == 1 else "running 4242\n"
        return subprocess.CompletedProcess(cmd, 0, stdout=out, stderr="")

    monkeypatch.setattr(operations.ssh_run.__globals__["subprocess"], "run", fake_run)
    paths = operations.Paths.of("torc_output", 7)
    outcome = operations.start_worker(SshSettings(), parse_worker("node1"), paths,
                                      ["torc", "--url", "http://server/torc-service/v1", "run", "7"],
                                      settle_seconds=0, credentials=("alice", "s3cret-pw"))
    assert outcome.ok, outcome.message
    start_cmd, start_input = calls[0]
    assert start_input == "s3cret-pw\n"
    assert all("s3cret-pw" not in arg for cmd, _ in calls for arg in cmd)
    assert "read -r TORC_PASSWORD" in start_cmd[-1] and "TORC_USER=alice" in start_cmd[-1]
    assert calls[1][1] is None  # other ssh calls send nothing


def test_remote_worker_credentials_default_to_the_environment(monkeypatch):
    monkeypatch.setenv("TORC_USER", "bob")
    monkeypatch.setenv("TORC_PASSWORD", "env-pw")
    inputs: list[str | None] = []

    def fake_run(cmd, **kwargs):
        inputs.append(kwargs.get("input"))
        return subprocess.CompletedProcess(cmd, 0, stdout="1\n" if len(inputs) == 1 else "running 1\n", stderr="")

    monkeypatch.setattr(operations.ssh_run.__globals__["subprocess"], "run", fake_run)
    operations.start_worker(SshSettings(), parse_worker("node1"), operations.Paths.of("out", 1), ["torc"],
                            settle_seconds=0)
    assert inputs[0] == "env-pw\n"


def test_sbatch_passes_credentials_in_the_environment_not_the_script(monkeypatch, tmp_path: Path):
    seen: dict[str, dict[str, str]] = {}

    def fake_run_slurm(args, **kwargs):
        seen["env"] = kwargs["env"]
        return subprocess.CompletedProcess(args, 0, stdout="1234\n", stderr="")

    monkeypatch.setattr(commands, "run_slurm", fake_run_slurm)

    class Client:
        auth = ("carol", "slurm-pw")

    env = submit._credentials_env(Client())
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\ntorc-slurm-job-runner http://server 1 out\n")
    assert commands.sbatch(script, extra_env=env) == "1234"
    assert seen["env"]["TORC_USER"] == "carol" and seen["env"]["TORC_PASSWORD"] == "slurm-pw"
    assert "slurm-pw" not in script.read_text()
    assert submit._credentials_env(object()) == {}

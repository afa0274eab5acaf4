"""Each example in examples/python runs as a subprocess: against the module's real server, and
(with no URL) on its own private server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"


def run_example(name: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORC_")}
    return subprocess.run([sys.executable, str(EXAMPLES / name), "--output-dir", str(tmp_path / "out"), *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_every_example_is_tested() -> None:
    runnable = {p.name for p in EXAMPLES.glob("*.py") if "__main__" in p.read_text()}
    assert runnable == {"diamond_workflow.py", "map_function_across_workers.py"}


@pytest.mark.parametrize("with_server", [True, False], ids=["server", "private_server"])
def test_diamond_workflow(server, tmp_path, with_server: bool) -> None:
    proc = run_example("diamond_workflow.py", tmp_path, *(["--url", server.url] if with_server else []))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "{'completed': 4}" in proc.stdout
    assert "postprocess printed: 9" in proc.stdout  # 3*1 + 3*2, through the files
    if with_server:
        assert "job_name" in proc.stdout and "completed" in proc.stdout  # the DataFrame
    else:
        assert (tmp_path / "out" / "torc.db").exists()


def test_map_function_across_workers(server, tmp_path) -> None:
    proc = run_example("map_function_across_workers.py", tmp_path, "--url", server.url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "job counts: {'completed': 5}" in proc.stdout
    assert "summary: {'count': 4, 'best_frequency': 1.5" in proc.stdout

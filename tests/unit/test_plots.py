"""`torc plot-resources` over small monitoring databases built by hand and by the monitor."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from torc.cli.plot_cmds import plot_resources
from torc.plots import load_series
from torc.runner.monitor import SCHEMA, ResourceMonitor

JOBS = {1: "preprocess_alpha", 2: "train_beta", 3: "report_gamma"}


def make_db(path: Path, jobs: dict[int, str] = JOBS, samples: int = 5) -> Path:
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA)
        db.executemany("INSERT INTO job_metadata VALUES (?, ?)", jobs.items())
        start = 1_700_000_000.0
        db.executemany(
            "INSERT INTO job_resource_samples (job_id, timestamp, cpu_percent, memory_bytes, num_processes) "
            "VALUES (?, ?, ?, ?, ?)",
            [(job_id, start + job_id + 5 * i, 10.0 * i * job_id, (i + 1) * 50 * 1024**2, 1 + i % 2)
             for job_id in jobs for i in range(samples)])
    db.close()
    return path


def invoke(*args: str):
    return CliRunner().invoke(plot_resources, list(args))


def written_paths(output: str) -> list[Path]:
    return [Path(line) for line in output.splitlines() if line.strip()]


def test_html_plots_are_offline_and_name_the_jobs(tmp_path: Path) -> None:
    db = make_db(tmp_path / "resource_metrics_host_1_1.db")
    out = tmp_path / "plots"
    result = invoke(str(db), "-o", str(out))
    assert result.exit_code == 0, result.output
    paths = written_paths(result.stdout)
    names = {p.name for p in paths}
    assert names == {"plotly.min.js", "resource_plot_job_1.html", "resource_plot_job_2.html",
                     "resource_plot_job_3.html", "resource_plot_cpu_all_jobs.html",
                     "resource_plot_memory_all_jobs.html", "resource_plot_summary.html"}
    assert all(p.is_file() and p.parent == out for p in paths)
    for path in paths:
        if path.suffix != ".html":
            continue
        html = path.read_text()
        assert html.lstrip().lower().startswith("<!doctype html>") and html.rstrip().endswith("</html>")
        assert html.count("<body>") == 1 and html.count("</body>") == 1
        scripts = re.findall(r"<script[^>]*\bsrc=\"([^\"]+)\"", html)
        assert scripts == ["plotly.min.js"], (path.name, scripts)
        assert "https://cdn" not in html
    for job_id, name in JOBS.items():
        assert name in (out / f"resource_plot_job_{job_id}.html").read_text()
        for overview in ("cpu_all_jobs", "memory_all_jobs", "summary"):
            assert name in (out / f"resource_plot_{overview}.html").read_text()
    assert (out / "plotly.min.js").stat().st_size > 1_000_000

    again = invoke(str(db), "-o", str(out))  # the bundle is only rewritten when it differs
    assert again.exit_code == 0 and "plotly.min.js" not in again.stdout


def test_json_format_prefix_and_job_selection(tmp_path: Path) -> None:
    db = make_db(tmp_path / "m.db")
    result = invoke(str(db), "-o", str(tmp_path), "-f", "json", "-p", "run7", "-j", "2,3", "-j", "9")
    assert result.exit_code == 0, result.output
    assert "No samples for job ID(s) 9" in result.stderr
    names = sorted(p.name for p in written_paths(result.stdout))
    assert names == ["run7_cpu_all_jobs.json", "run7_job_2.json", "run7_job_3.json",
                     "run7_memory_all_jobs.json", "run7_summary.json"]
    job = json.loads((tmp_path / "run7_job_2.json").read_text())
    assert "train_beta" in job["layout"]["title"]["text"]
    assert [t["name"] for t in job["data"]] == ["CPU %", "Memory (MiB)", "Processes"]
    cpu = json.loads((tmp_path / "run7_cpu_all_jobs.json").read_text())
    assert [t["name"] for t in cpu["data"]] == ["Job 2 (train_beta)", "Job 3 (report_gamma)"]
    summary = json.loads((tmp_path / "run7_summary.json").read_text())
    peak_cpu = next(t for t in summary["data"] if t["name"] == "Peak CPU %")
    assert list(peak_cpu["x"]) == ["2", "3"] and list(peak_cpu["y"]) == [80.0, 120.0]
    assert not list(tmp_path.glob("*.html")) and not (tmp_path / "plotly.min.js").exists()


def test_several_databases_are_merged(tmp_path: Path) -> None:
    a = make_db(tmp_path / "a.db", {1: "one"})
    b = make_db(tmp_path / "b.db", {2: "two"}, samples=3)
    series = load_series([a, b])
    assert {j: (s.name, len(s.timestamps)) for j, s in series.items()} == {1: ("one", 5), 2: ("two", 3)}
    result = invoke(str(a), str(b), "-o", str(tmp_path / "out"), "-f", "json")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "resource_plot_job_2.json").exists()


def test_plots_from_a_database_written_by_the_monitor(tmp_path: Path) -> None:
    db = tmp_path / "resource_utilization" / "resource_metrics.db"
    process = subprocess.Popen(["bash", "-c", "sleep 30 & wait"], start_new_session=True)
    try:
        with ResourceMonitor(0.1, time_series_db=db) as monitor:
            monitor.add_job(42, process.pid, "monitored_job")
            deadline = time.monotonic() + 5
            while monitor.usage(42).num_samples < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            result = invoke(str(db), "-o", str(tmp_path / "live"), "-f", "json")  # while it is written
            assert result.exit_code == 0, result.output
    finally:
        process.kill()
        process.wait()
    result = invoke(str(db), "-o", str(tmp_path / "plots"))
    assert result.exit_code == 0, result.output
    assert "monitored_job" in (tmp_path / "plots" / "resource_plot_job_42.html").read_text()


@pytest.mark.parametrize("setup, message", [
    (lambda d: d / "missing.db", "no such file"),
    (lambda d: _write(d / "notes.db", b"just some text, not a database" * 100), "not a torc resource monitoring"),
    (lambda d: _other_sqlite(d / "other.db"), "no job_resource_samples table"),
    (lambda d: _empty_monitor_db(d / "empty.db"), "no resource samples"),
    (lambda d: d, "is a directory"),
])
def test_errors_are_one_clear_line(tmp_path: Path, setup, message: str) -> None:
    result = invoke(str(setup(tmp_path)), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_requested_jobs_without_samples(tmp_path: Path) -> None:
    db = make_db(tmp_path / "m.db")
    result = invoke(str(db), "-j", "8", "-j", "9", "-o", str(tmp_path / "out"))
    assert result.exit_code == 1 and "no samples for job ID(s) 8, 9" in result.output
    bad = invoke(str(db), "-j", "x")
    assert bad.exit_code == 2 and "'x' is not a job ID" in bad.output
    bad_prefix = invoke(str(db), "-p", "a/b")
    assert bad_prefix.exit_code == 2


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _other_sqlite(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE jobs (id INTEGER)")
    db.close()
    return path


def _empty_monitor_db(path: Path) -> Path:
    return make_db(path, {}, samples=0)

"""The dashboard's routes in-process (starlette TestClient) over the in-process API: fast checks of
every page, the actions and the spec errors, beside the browser tests."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from tests.dashboard.conftest import FakeLauncher
from torc.client import TorcClient, manager
from torc.dashboard import data, pages
from torc.dashboard.actions import create_from_text
from torc.reports import stdio_paths
from torc.server.app import ServerConfig, create_app

SPEC = {
    "name": "sweep",
    "jobs": [
        {"name": "prep", "command": "echo prep"},
        {"name": "work_{i}", "command": "echo {i}", "depends_on": ["prep"], "parameters": {"i": "1:30"}},
        {"name": "final", "command": "echo done", "depends_on_regexes": ["work_.*"]},
    ],
}


def make(api: TorcClient, spec: dict[str, Any] = SPEC, initialize: bool = True) -> int:
    workflow_id = create_from_text(api, json.dumps(spec), "json", "test spec")
    if initialize:
        manager.initialize(api, workflow_id)
    return workflow_id


def test_workflow_list_archive_and_delete(dash: TestClient, api: TorcClient) -> None:
    keep, gone = make(api), make(api, {**SPEC, "name": "old"})
    page = dash.get("/")
    assert page.status_code == 200
    assert f'data-workflow-id="{keep}"' in page.text and f'data-workflow-id="{gone}"' in page.text
    assert "0 / 32 done" in page.text

    moved = dash.post(f"/workflows/{gone}/action/archive")
    assert moved.status_code == 303 and "Archived" in moved.headers["location"]
    assert api.get(f"workflows/{gone}/status")["is_archived"] is True
    assert f'data-workflow-id="{gone}"' not in dash.get("/").text
    assert f'data-workflow-id="{gone}"' in dash.get("/?archived=only").text

    dash.post(f"/workflows/{gone}/action/delete")
    assert gone not in [w["id"] for w in api.get("workflows", is_archived=True)["items"]]
    assert "No workflows of nobody" in dash.get("/?user=nobody").text


def test_detail_filters_and_pages_on_the_server(dash: TestClient, api: TorcClient) -> None:
    workflow_id = make(api)
    text = dash.get(f"/workflows/{workflow_id}?limit=25").text
    assert text.count("data-job-id=") == 25
    assert "1–25 of 32" in text and "offset=25" in text
    last = dash.get(f"/workflows/{workflow_id}?limit=25&offset=25").text
    assert last.count("data-job-id=") == 7 and "26–32 of 32" in last

    ready = dash.get(f"/workflows/{workflow_id}?status=ready").text
    assert ready.count("data-job-id=") == 1 and ">prep<" in ready
    blocked = dash.get(f"/workflows/{workflow_id}?status=blocked&name=work_1").text
    # work_1 and work_10 .. work_19
    assert blocked.count("data-job-id=") == 11 and "of 11" in blocked
    assert "No jobs match." in dash.get(f"/workflows/{workflow_id}?name=nothing-like-this").text


def test_pages_of_unknown_things_say_so(dash: TestClient, api: TorcClient) -> None:
    missing = dash.get("/workflows/999999")
    assert missing.status_code == 404 and 'id="error-message"' in missing.text
    assert dash.get("/workflows/999999/progress.json").status_code == 404
    bad = dash.get(f"/workflows/{make(api)}?offset=many")
    assert bad.status_code == 422 and "offset" in bad.text


def test_job_page_shows_logs_or_says_there_are_none(dash: TestClient, api: TorcClient, dash_config) -> None:
    workflow_id = make(api)
    job = data.job_page(api, workflow_id, "ready", None, 0, 1).items[0]
    fresh = dash.get(f"/workflows/{workflow_id}/jobs/{job['id']}")
    assert fresh.status_code == 200 and 'id="no-attempts"' in fresh.text

    run_id = api.run_id(workflow_id)
    api.post("results", {
        "job_id": job["id"], "workflow_id": workflow_id, "run_id": run_id, "attempt_id": 1, "compute_node_id": 7,
        "return_code": 0, "exec_time_minutes": 0.01, "completion_time": "2026-01-01T00:00:00Z", "status": "completed"})
    stdout, _ = stdio_paths(dash_config.output_dir, workflow_id, job["id"], run_id, 1)
    stdout.parent.mkdir(parents=True)
    stdout.write_text("hello from prep\n")
    page = dash.get(f"/workflows/{workflow_id}/jobs/{job['id']}").text
    assert "hello from prep" in page
    assert "No output: the job wrote nothing to stderr" in page


def test_read_log_keeps_the_end_of_big_files(tmp_path: Path) -> None:
    path = tmp_path / "big.o"
    path.write_bytes(b"a" * 100 + b"THE END")
    log = data.read_log("stdout", path, limit=10)
    assert log.truncated and log.text == "aaaTHE END"
    assert data.read_log("stderr", tmp_path / "none.e").text is None


def test_create_from_pasted_and_uploaded_specs(dash: TestClient, api: TorcClient) -> None:
    bad = "name: broken\njobs:\n  - name: a\n    comand: echo hi\n"
    before = api.get("workflows")["total_count"]
    response = dash.post("/workflows/new", data={"text": bad, "format": "auto"})
    assert response.status_code == 422
    assert "job &#39;a&#39; (jobs[0]): missing required field &#39;command&#39;" in response.text
    assert "did you mean &#39;command&#39;?" in response.text
    assert api.get("workflows")["total_count"] == before  # nothing created

    uploaded = dash.post("/workflows/new", files={"file": ("bad.kdl", b'name "x"\njob "a" {\n}\n')},
                         data={"format": "auto"})
    assert uploaded.status_code == 422 and "bad.kdl" in uploaded.text

    good = dash.post("/workflows/new", files={"file": ("sweep.json", json.dumps(SPEC).encode())},
                     data={"format": "auto", "monitoring": "on"})
    assert good.status_code == 303
    workflow_id = int(good.headers["location"].split("?")[0].rsplit("/", 1)[1])
    assert api.get(f"workflows/{workflow_id}")["name"] == "sweep"
    assert "Created workflow" in dash.get(good.headers["location"]).text


def test_actions(dash: TestClient, api: TorcClient, launcher: FakeLauncher, dash_config) -> None:
    workflow_id = make(api)
    response = dash.post(f"/workflows/{workflow_id}/action/run")
    assert response.status_code == 303
    argv, log = launcher.calls[-1]
    assert argv[-4:] == ["run", str(workflow_id), "-o", str(dash_config.output_dir.resolve())]
    assert argv[argv.index("--url") + 1] == "http://testserver/torc-service/v1"
    assert log.parent == dash_config.output_dir.resolve() / "dashboard"
    dash.post(f"/workflows/{workflow_id}/action/submit")
    assert launcher.calls[-1][0][-4] == "submit"

    canceled = dash.post(f"/workflows/{workflow_id}/action/cancel")
    assert "Canceled" in canceled.headers["location"]
    assert api.get(f"workflows/{workflow_id}/status")["is_canceled"] is True
    dash.post(f"/workflows/{workflow_id}/action/reset")
    counts = api.get(f"workflows/{workflow_id}/job_counts")["counts"]
    assert counts["uninitialized"] == 32
    unknown = dash.post(f"/workflows/{workflow_id}/action/explode")
    assert "error=" in unknown.headers["location"]
    assert "unknown action" in dash.get(unknown.headers["location"]).text


def test_dag_groups_parameterized_jobs(dash: TestClient, api: TorcClient) -> None:
    workflow_id = make(api)
    jobs, blockers = data.job_blockers(api, workflow_id)
    graph = data.build_dag(jobs, blockers)
    assert [(n.key, n.count, n.layer) for n in graph.nodes] == [("prep", 1, 0), ("work_#", 30, 1), ("final", 1, 2)]
    assert graph.edges == [("prep", "work_#"), ("work_#", "final")]
    assert graph.nodes[1].label == "work_{1..30} (30 jobs)"
    page = dash.get(f"/workflows/{workflow_id}/dag").text
    assert 'data-key="work_#" data-count="30"' in page
    ungrouped = dash.get(f"/workflows/{workflow_id}/dag?group=0").text
    assert ungrouped.count('class="dag-node') == 32


def test_dag_too_large_is_refused_not_drawn() -> None:
    jobs = {i: {"id": i, "name": "x" * i, "status": "ready"} for i in range(1, data.MAX_DAG_GROUPS + 2)}
    graph = data.build_dag(jobs, {i: set() for i in jobs})
    assert graph.too_large and not graph.nodes


def test_progress_and_resources(dash: TestClient, api: TorcClient, dash_config) -> None:
    workflow_id = make(api)
    assert dash.get(f"/workflows/{workflow_id}/progress.json").json() == {"workflow_id": workflow_id, "series": []}
    assert dash.get(f"/workflows/{workflow_id}/counts.json").json()["counts"]["blocked"] == 31
    page = dash.get(f"/workflows/{workflow_id}/resources").text
    assert 'id="no-plots"' in page and "stayed within their resource requirements" in page

    folder = dash_config.output_dir / "resource_utilization"
    folder.mkdir(parents=True)
    db = sqlite3.connect(folder / f"resource_metrics_host_{workflow_id}_1.db")
    db.execute("CREATE TABLE job_resource_samples (job_id, timestamp, cpu_percent, memory_bytes, num_processes)")
    db.execute("CREATE TABLE job_metadata (job_id, job_name)")
    db.executemany("INSERT INTO job_resource_samples VALUES (1, ?, ?, ?, 1)",
                   [(1_700_000_000 + t, 10.0 * t, 1_000_000 * t) for t in range(5)])
    db.execute("INSERT INTO job_metadata VALUES (1, 'prep')")
    db.commit()
    db.close()
    plotted = dash.get(f"/workflows/{workflow_id}/resources").text
    assert 'id="plot-cpu"' in plotted and 'id="plot-summary"' in plotted
    assert dash.get("/dash-static/plotly.min.js").text.startswith("/**")


def test_event_frames_are_relayed_as_one_event_type() -> None:
    async def lines():
        for line in [": connected", "", "event: job_status_changed", 'data: {"job_id": 3}', "", "data: plain", ""]:
            yield line

    async def collect() -> list[bytes]:
        return [frame async for frame in pages._frames(lines())]

    frames = asyncio.run(collect())
    assert frames[0] == b": connected\n\n"
    assert frames[1] == b'event: torc\ndata: {"type": "job_status_changed", "data": {"job_id": 3}}\n\n'
    assert frames[2] == b'event: torc\ndata: {"type": "message", "data": "plain"}\n\n'


def test_torc_server_serves_the_dashboard_at_root(store) -> None:
    app = create_app(ServerConfig(completion_check_interval_secs=5), store=store)
    with TestClient(app) as http:
        assert http.get("/dash-static/dash.css").status_code == 200
        missing = http.get("/torc-service/v1/no-such-route")
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/json")
        assert http.get("/torc-service/v1/ping").status_code == 200

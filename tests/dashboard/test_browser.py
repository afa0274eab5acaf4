"""The dashboard in real headless Chromium (Playwright, sync API) against a real torc-server serving it
at `/`, and once against a `torc dash` process. Waiting is Playwright's auto-waiting `expect`, never
sleeps. Screenshots go to the artifacts folder (see conftest.py)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.conftest import CHROMIUM, artifacts_dir
from tests.integration.runner_support import TORC, clean_env, create, explain, run, wait_for
from torc.client import TorcClient, manager

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (scripts/chromium-up.sh "
                                "installs it as root on Debian)")
expect = pytest.importorskip("playwright.sync_api").expect

TINY = {
    "name": "tiny",
    "jobs": [
        {"name": "hello", "command": "echo hello from the dashboard test"},
        {"name": "quiet", "command": "true"},
        {"name": "shout", "command": "echo oops >&2", "depends_on": ["hello"]},
    ],
}


def base(server) -> str:
    return server.url.removesuffix("/torc-service/v1")


@pytest.fixture
def client(dash_server):
    with dash_server.client() as c:
        yield c


def _sweep(count: int, name: str) -> dict[str, Any]:
    return {"name": name, "jobs": [
        {"name": "setup", "command": "echo setup"},
        {"name": "job_{i}", "command": "echo {i}", "depends_on": ["setup"], "parameters": {"i": f"1:{count}"}},
        {"name": "collect", "command": "echo collect", "depends_on_regexes": ["^job_"]},
    ]}


@pytest.fixture(scope="module")
def big_workflow(dash_server, dash_folder: Path) -> int:
    with dash_server.client() as c:
        return create(c, _sweep(2000, "big_sweep"), dash_folder)


def test_workflow_list_and_open_a_workflow(page, dash_server, client: TorcClient, dash_folder: Path) -> None:
    workflow_id = create(client, {**TINY, "name": "listed"}, dash_folder)
    page.goto(base(dash_server) + "/")
    row = page.locator(f'tr[data-workflow-id="{workflow_id}"]')
    expect(row).to_contain_text("listed")
    row.get_by_role("link", name="listed").click()
    expect(page.locator("#wf-name")).to_have_text("listed")
    expect(page.locator("#jobs tbody tr")).to_have_count(3)
    expect(page.locator("#progress-plot")).to_contain_text("No finished jobs yet")


def test_filter_jobs(page, dash_server, big_workflow: int) -> None:
    page.goto(f"{base(dash_server)}/workflows/{big_workflow}")
    page.locator("#filter-status").select_option("blocked")
    page.locator("#filter-name").fill("job_123")
    page.locator("#filter-apply").click()
    rows = page.locator("#jobs tbody tr")
    expect(rows).to_have_count(11)  # job_123 and job_1230 .. job_1239
    expect(page.locator("#page-info")).to_have_text("1–11 of 11")
    page.locator("#filter-status").select_option("ready")
    page.locator("#filter-name").fill("")
    page.locator("#filter-apply").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("setup")


def test_pagination_over_2000_jobs(page, dash_server, big_workflow: int) -> None:
    page.goto(f"{base(dash_server)}/workflows/{big_workflow}")
    info = page.locator("#page-info")
    expect(info).to_have_text("1–50 of 2002")
    expect(page.locator("#jobs tbody tr")).to_have_count(50)
    page.locator("#page-next").click()
    expect(info).to_have_text("51–100 of 2002")
    page.locator("#page-last").click()
    expect(info).to_have_text("2001–2002 of 2002")
    expect(page.locator("#jobs tbody tr").last).to_contain_text("collect")
    page.locator("#page-first").click()
    expect(info).to_have_text("1–50 of 2002")


def test_dag_groups_parameterized_jobs(page, dash_server, big_workflow: int) -> None:
    page.goto(f"{base(dash_server)}/workflows/{big_workflow}/dag")
    expect(page.locator("g.dag-node")).to_have_count(3)
    group = page.locator('g.dag-node[data-key="job_#"]')
    expect(group).to_have_attribute("data-count", "2000")
    expect(group).to_contain_text("job_{1..2000} (2000 jobs)")
    expect(page.locator("path.dag-edge")).to_have_count(2)
    page.screenshot(path=str(artifacts_dir() / "dag_grouped.png"))
    group.locator("a").click()  # a group opens the job table filtered to its members
    expect(page.locator("#filter-name")).to_have_value("job_")


def test_job_logs_after_a_run(page, dash_server, client: TorcClient, dash_folder: Path) -> None:
    workflow_id = create(client, TINY, dash_folder)
    proc = run(dash_server.url, workflow_id, cwd=dash_folder)
    assert proc.returncode == 0, explain(proc)
    jobs = {j["name"]: j["id"] for j in client.iter_items("jobs", workflow_id=workflow_id)}
    url = f"{base(dash_server)}/workflows/{workflow_id}"
    page.goto(url)
    page.get_by_role("link", name="hello", exact=True).click()
    expect(page.locator("#job-status")).to_have_text("completed")
    expect(page.locator('.log[data-stream="stdout"] pre')).to_have_text("hello from the dashboard test\n")
    expect(page.locator('.log[data-stream="stderr"]')).to_contain_text("No output")
    page.goto(f"{url}/jobs/{jobs['shout']}")
    expect(page.locator('.log[data-stream="stderr"] pre')).to_have_text("oops\n")
    page.goto(url)
    expect(page.locator("#progress-plot .main-svg").first).to_be_visible()  # plotly drew the progress
    page.goto(f"{url}/resources")
    expect(page.locator("#utilization-summary")).to_contain_text("result(s)")


def test_cancel_a_workflow(page, dash_server, client: TorcClient, dash_folder: Path) -> None:
    workflow_id = create(client, {**TINY, "name": "to_cancel"}, dash_folder)
    page.goto(f"{base(dash_server)}/workflows/{workflow_id}")
    page.locator("#action-cancel").click()
    expect(page.locator("#flash")).to_have_text(f"Canceled workflow {workflow_id}")
    expect(page.locator("#wf-canceled")).to_be_visible()
    assert client.get(f"workflows/{workflow_id}/status")["is_canceled"] is True


def test_run_button_runs_the_workflow(page, dash_server, client: TorcClient, dash_folder: Path) -> None:
    workflow_id = create(client, {**TINY, "name": "run_me"}, dash_folder)
    page.goto(f"{base(dash_server)}/workflows/{workflow_id}")
    page.locator("#action-run").click()
    expect(page.locator("#flash")).to_contain_text(f"Started `torc run {workflow_id}`")
    wait_for(lambda: client.get(f"workflows/{workflow_id}/is_complete")["is_complete"], 60, "the run to finish")
    page.reload()
    expect(page.locator("#counts")).to_contain_text("completed 3")
    (log,) = (dash_folder / "out" / "dashboard").glob(f"run_wf{workflow_id}_*.log")
    wait_for(lambda: "workflow complete" in log.read_text(), 30, "the runner's last words in its log")


def test_live_events(page, dash_server, client: TorcClient, dash_folder: Path) -> None:
    workflow_id = create(client, {**TINY, "name": "live"}, dash_folder, initialize=False)
    page.goto(f"{base(dash_server)}/workflows/{workflow_id}")
    expect(page.locator("#counts")).to_contain_text("uninitialized 3")
    expect(page.locator("#events-state")).to_have_text("live")
    manager.initialize(client, workflow_id)  # from elsewhere: the page must hear of it
    expect(page.locator('#events li[data-type="workflow_started"]')).to_contain_text("ready_jobs")
    expect(page.locator("#counts")).to_contain_text("ready 2")  # counts refreshed after the event
    client.put(f"workflows/{workflow_id}/cancel")
    expect(page.locator('#events li[data-type="workflow_canceled"]')).to_contain_text("canceled_jobs")


def test_upload_an_invalid_spec_shows_its_problems(page, dash_server, client: TorcClient, tmp_path: Path) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text("name: broken\njobs:\n  - name: train\n    comand: python train.py\n")
    before = client.get("workflows")["total_count"]
    page.goto(f"{base(dash_server)}/workflows/new")
    page.locator("#spec-file").set_input_files(str(spec))
    page.locator("#spec-submit").click()
    errors = page.locator("#spec-errors")
    expect(errors).to_contain_text("broken.yaml")
    expect(errors).to_contain_text("job 'train' (jobs[0]): missing required field 'command'")
    expect(errors).to_contain_text("unknown key 'comand'; did you mean 'command'?")
    assert client.get("workflows")["total_count"] == before

    page.locator("#spec-text").fill(json.dumps(TINY))
    page.locator("#spec-file").set_input_files([])
    page.locator("#spec-submit").click()
    expect(page.locator("#flash")).to_contain_text("Created workflow")
    expect(page.locator("#wf-name")).to_have_text("tiny")


def test_torc_dash_command(page, dash_server, client: TorcClient, dash_folder: Path) -> None:
    workflow_id = create(client, {**TINY, "name": "via_torc_dash"}, dash_folder)
    log = open(dash_folder / "dash.log", "w")
    proc = subprocess.Popen([*TORC, "--url", dash_server.url, "dash", "--port", "0", "-o", str(dash_folder / "out")],
                            stdout=subprocess.PIPE, stderr=log, text=True, env=clean_env())
    log.close()
    try:
        line = proc.stdout.readline()
        match = re.fullmatch(r"TORC_DASH_PORT=(\d+)\n", line)
        assert match, f"unexpected first line {line!r}; see {dash_folder / 'dash.log'}"
        page.goto(f"http://127.0.0.1:{match[1]}/workflows/{workflow_id}")
        expect(page.locator("#wf-name")).to_have_text("via_torc_dash")
        expect(page.locator("#events-state")).to_have_text("live")
        page.screenshot(path=str(artifacts_dir() / "torc_dash_workflow.png"), full_page=True)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        proc.stdout.close()

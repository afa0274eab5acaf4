"""`torc mcp` as a subprocess, driven by the official MCP SDK's ClientSession over stdio (and one
streamable-HTTP test), against a real torc-server."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import torc
from mcp import ClientSession, StdioServerParameters, stdio_client
from torc.mcp.tools import MUTATING, READ_ONLY

TORC = str(Path(sys.executable).with_name("torc"))
FAST = {"poll_interval": 0.1, "idle_timeout": 5}


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TORC_")}


@contextlib.asynccontextmanager
async def session(url: str | None, output_dir: Path, *args: str,
                  global_args: tuple[str, ...] = ()) -> AsyncIterator[ClientSession]:
    target = ["--url", url] if url else []
    params = StdioServerParameters(command=TORC, args=[*global_args, "mcp", *target, "-o", str(output_dir), *args],
                                   env=clean_env())
    with open(output_dir.parent / "mcp.stderr", "a") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            yield s


async def call(s: ClientSession, tool: str, **arguments: Any) -> Any:
    """The tool's JSON answer; fails the test on an error result."""
    result = await s.call_tool(tool, arguments)
    text = result.content[0].text
    assert not result.is_error, f"{tool} failed: {text}"
    return json.loads(text)


async def call_error(s: ClientSession, tool: str, **arguments: Any) -> str:
    """The text of an error result (fails the test when the call succeeds)."""
    result = await s.call_tool(tool, arguments)
    assert result.is_error, f"{tool} unexpectedly succeeded: {result.content[0].text}"
    return result.content[0].text


@pytest.fixture
def out(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture
def api(server):
    with torc.connect(server.url) as client:
        yield client


@pytest.mark.asyncio
async def test_tools_listed_with_read_only_hints(server, out) -> None:
    async with session(server.url, out) as s:
        tools = {t.name: t for t in (await s.list_tools()).tools}
    assert set(tools) == set(READ_ONLY) | set(MUTATING)
    for name, tool in tools.items():
        assert tool.description, name
        assert tool.annotations is not None and tool.annotations.read_only_hint is (name in READ_ONLY)
    assert tools["get_job_logs"].input_schema["required"] == ["job_id"]


@pytest.mark.asyncio
async def test_read_only_mode_hides_mutating_tools(server, out) -> None:
    async with session(server.url, out, "--read-only") as s:
        names = {t.name for t in (await s.list_tools()).tools}
        assert names == set(READ_ONLY)
        result = await s.call_tool("cancel_workflow", {"workflow_id": 1})
        assert result.is_error  # not there at all
        assert (await call(s, "list_workflows"))["workflows"] is not None


@pytest.mark.asyncio
async def test_create_inspect_run_and_explain(server, out) -> None:
    spec = "\n".join([
        "name: mcp_demo",
        "resource_requirements:",
        "  - {name: small, num_cpus: 1, memory: 100m, runtime: PT1M}",
        "jobs:",
        "  - {name: good, command: 'echo all good', resource_requirements: small}",
        "  - {name: bad, command: 'echo about to fail >&2; exit 7', resource_requirements: small, depends_on: [good]}",
        "  - {name: after, command: 'echo never', depends_on: [bad]}",
    ])
    async with session(server.url, out) as s:
        checked = await call(s, "validate_workflow_spec", spec_text=spec)
        assert checked == {"valid": True, "errors": [], "workflow_name": "mcp_demo", "job_count": 3,
                           "job_names": ["good", "bad", "after"]}
        created = await call(s, "create_workflow", spec_text=spec)
        wf = created["workflow_id"]
        assert created["job_counts"] == {"ready": 1, "blocked": 2}
        listed = await call(s, "list_workflows")
        assert listed["workflows"][0]["id"] == wf and listed["workflows"][0]["name"] == "mcp_demo"

        started = await call(s, "run_workflow", workflow_id=wf)
        assert started["pid"] > 0
        deadline = time.monotonic() + 60
        while not (status := await call(s, "get_workflow_status", workflow_id=wf))["is_complete"]:
            assert time.monotonic() < deadline, status
            await anyio.sleep(0.2)
        assert status["job_counts"] == {"completed": 1, "failed": 1, "canceled": 1}

        jobs = {j["name"]: j for j in (await call(s, "list_jobs", workflow_id=wf))["jobs"]}
        assert {n: j["status"] for n, j in jobs.items()} == {"good": "completed", "bad": "failed",
                                                              "after": "canceled"}
        failed = (await call(s, "list_jobs", workflow_id=wf, status="failed"))["jobs"]
        assert [j["name"] for j in failed] == ["bad"]

        why = await call(s, "explain_job_failure", job_id=jobs["bad"]["id"])
        assert why["status"] == "failed" and why["return_code"] == 7
        assert "about to fail" in why["stderr_tail"]
        assert why["likely_oom"] is False and why["likely_timeout"] is False
        assert why["resources"]["requested_memory"] == "100m"
        assert "reset_failed_jobs" in why["suggestion"]

        logs = await call(s, "get_job_logs", job_id=jobs["good"]["id"], tail_lines=5)
        assert logs["stdout"] == "all good\n"
        details = await call(s, "get_job_details", job_id=jobs["bad"]["id"])
        assert details["job"]["name"] == "bad" and details["resource_requirements"]["name"] == "small"
        assert [r["return_code"] for r in details["results"]] == [7]
        results = await call(s, "list_results", workflow_id=wf)
        assert sorted((r["job_name"], r["return_code"]) for r in results["results"]) == [("bad", 7), ("good", 0)]
        usage = await call(s, "check_resource_utilization", workflow_id=wf)
        assert [f["job_name"] for f in usage["failed_jobs"]] == ["bad"]

        reset = await call(s, "reset_failed_jobs", workflow_id=wf)
        assert reset["job_counts"] == {"completed": 1, "ready": 1, "blocked": 1}
        assert reset["run_id"] == status["run_id"] + 1
        canceled = await call(s, "cancel_workflow", workflow_id=wf)
        assert canceled["is_canceled"] is True and canceled["is_complete"] is True


@pytest.mark.asyncio
async def test_errors_come_back_as_text_the_assistant_can_act_on(server, out, api) -> None:
    async with session(server.url, out) as s:
        bad = "name: broken\njobs:\n  - name: a\n    comand: echo\n  - name: b\n    command: x\n    depends_on: [zz]\n"
        checked = await call(s, "validate_workflow_spec", spec_text=bad)
        assert checked["valid"] is False
        assert any("did you mean 'command'" in e for e in checked["errors"])
        text = await call_error(s, "create_workflow", spec_text=bad)
        assert "did you mean 'command'" in text and "undefined job 'zz'" in text
        assert "invalid JSON" in await call_error(s, "create_workflow", spec_text="{", format="json")
        assert "unknown format" in await call_error(s, "create_workflow", spec_text="x", format="toml")
        assert "not found" in await call_error(s, "get_workflow_status", workflow_id=987654)
        assert "not found" in await call_error(s, "explain_job_failure", job_id=987654)
        assert "decision must be" in await call_error(s, "resolve_pending_failed_jobs", workflow_id=1,
                                                      decision="maybe")
    assert not any(w.name == "broken" for w in api.workflows.list())  # nothing was created


@pytest.mark.asyncio
async def test_an_unreachable_server_is_reported_not_crashed(out) -> None:
    async with session("http://127.0.0.1:9/torc-service/v1", out) as s:
        assert "cannot reach the torc server" in await call_error(s, "list_workflows")
        checked = await call(s, "validate_workflow_spec", spec_text="name: offline\njobs: []\n")
        assert checked["valid"] is True  # needs no server


@pytest.mark.asyncio
async def test_embedded_server_on_a_database(tmp_path, out) -> None:
    """`torc --database FILE mcp`: no server running, torc starts one on the file."""
    database = tmp_path / "embedded.db"
    async with session(None, out, global_args=("--database", str(database))) as s:
        created = await call(s, "create_workflow", spec_text="name: local\njobs:\n  - {name: a, command: 'true'}\n")
        listed = await call(s, "list_workflows")
    assert [w["name"] for w in listed["workflows"]] == ["local"] and created["workflow_id"] == 1
    assert database.exists()


@pytest.mark.asyncio
async def test_pending_failed_classified_and_resolved(server, out, api) -> None:
    wf = torc.WorkflowBuilder("pending", use_pending_failed=True)
    wf.add_job("usage_error", "exit 3")
    wf.add_job("killed", "kill -9 $$")
    wf.add_job("downstream", "echo after", depends_on=["usage_error"])
    run = torc.run_workflow(wf, client=api, output_dir=out, **FAST)
    assert run.job_statuses["usage_error"] == "pending_failed"
    assert run.job_statuses["killed"] == "pending_failed"
    ids = {j["name"]: j["id"] for j in run.jobs}
    async with session(server.url, out) as s:
        listed = {j["name"]: j for j in (await call(s, "list_pending_failed_jobs", workflow_id=run.workflow_id))["jobs"]}
        assert listed["usage_error"]["recommendation"] == "fail" and listed["usage_error"]["return_code"] == 3
        assert listed["killed"]["recommendation"] == "retry"
        assert "signal" in listed["killed"]["reason"] or "SIGKILL" in listed["killed"]["reason"]
        assert "not pending_failed" in await call_error(s, "resolve_pending_failed_jobs", workflow_id=run.workflow_id,
                                                        decision="fail", job_ids=[ids["downstream"]])
        done = await call(s, "resolve_pending_failed_jobs", workflow_id=run.workflow_id, decision="fail",
                          job_ids=[ids["usage_error"]])
        assert done["jobs"] == [{"id": ids["usage_error"], "name": "usage_error", "status": "failed"}]
        await call(s, "resolve_pending_failed_jobs", workflow_id=run.workflow_id, decision="retry")
    assert api.jobs.get(ids["usage_error"]).status == "failed"
    assert api.jobs.get(ids["killed"]).status == "ready"
    assert api.jobs.get(ids["downstream"]).status == "canceled"


@pytest.mark.asyncio
async def test_recover_a_job_that_ran_out_of_time(server, out, api) -> None:
    wf = torc.WorkflowBuilder("slow")
    wf.add_resource_requirements("short", num_cpus=1, memory="100m", runtime="PT1S")
    wf.add_job("slow", "sleep 30", resource_requirements="short", supports_termination=True)
    run = torc.run_workflow(wf, client=api, output_dir=out, **FAST)
    assert run.job_statuses["slow"] in ("failed", "terminated")
    job_id = run.jobs[0]["id"]
    async with session(server.url, out) as s:
        why = await call(s, "explain_job_failure", job_id=job_id)
        assert why["likely_timeout"] is True, why
        assert "recover_workflow" in why["suggestion"]
        plan = await call(s, "recover_workflow", workflow_id=run.workflow_id, dry_run=True)
        assert plan["retry_job_ids"] == [job_id] and plan["jobs"][0]["cause"] == "timeout"
        assert api.jobs.get(job_id).status == run.job_statuses["slow"]  # dry run: nothing changed
        done = await call(s, "recover_workflow", workflow_id=run.workflow_id)
        assert done["applied"] is True
        assert done["new_resource_requirements"][0]["runtime"] == "PT2S"
    job = api.jobs.get(job_id)
    assert job.status == "ready"
    assert api.resource_requirements.get(job.resource_requirements_id).runtime == "PT2S"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.asyncio
async def test_streamable_http_transport(server, out) -> None:
    from mcp.client.streamable_http import streamable_http_client

    port = _free_port()
    log = open(out / "mcp_http.log", "w")
    proc = subprocess.Popen([TORC, "--url", server.url, "mcp", "--transport", "http", "--port", str(port),
                             "--read-only", "-o", str(out)], stdout=log, stderr=subprocess.STDOUT, env=clean_env())
    log.close()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert proc.poll() is None, (out / "mcp_http.log").read_text()
                assert time.monotonic() < deadline, "torc mcp --transport http did not start"
                time.sleep(0.1)
        async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write), \
                ClientSession(read, write) as s:
            if True:
                await s.initialize()
                names = {t.name for t in (await s.list_tools()).tools}
                assert names == set(READ_ONLY)
                listed = await call(s, "list_workflows")
                assert "workflows" in listed
    finally:
        proc.terminate()
        proc.wait(15)

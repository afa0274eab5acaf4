"""torc-server as users run it: flags, port 0, SSE over a real socket, shutdown and restart."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

import httpx

from tests.integration.conftest import start_server


def test_sigterm_shuts_down_cleanly_and_data_survives_restart(tmp_path):
    server = start_server(tmp_path / "db" / "torc.db", tmp_path / "a.log")
    with server.client() as api:
        wf = api.create_workflow("persisted")["id"]
    assert server.stop(signal.SIGTERM) == 0
    assert "Shutting down" in server.log.read_text() or "shutdown" in server.log.read_text().lower()
    again = start_server(tmp_path / "db" / "torc.db", tmp_path / "b.log")
    try:
        with again.client() as api:
            assert api.get(f"workflows/{wf}")["name"] == "persisted"
    finally:
        again.stop()


def test_sigkill_mid_run_loses_nothing_committed(tmp_path):
    server = start_server(tmp_path / "torc.db", tmp_path / "a.log")
    with server.client() as api:
        wf = api.create_workflow("crash")["id"]
        api.post("bulk_jobs", {"jobs": [{"workflow_id": wf, "name": f"j{i}", "command": "true"} for i in range(50)]})
        api.post(f"workflows/{wf}/initialize_jobs")
        jobs = api.post(f"workflows/{wf}/claim_next_jobs", limit=20)["jobs"]
        api.post(f"workflows/{wf}/complete_jobs", {"run_id": 0, "jobs": [
            {"job_id": j["id"], "status": "completed", "result": {"return_code": 0}} for j in jobs]})
    server.stop(signal.SIGKILL)
    again = start_server(tmp_path / "torc.db", tmp_path / "b.log")
    try:
        with again.client() as api:
            done = api.get("jobs", workflow_id=wf, status="completed", limit=1)["total_count"]
            ready = api.get("jobs", workflow_id=wf, status="ready", limit=1)["total_count"]
            assert (done, ready) == (20, 30)
    finally:
        again.stop()


def test_bad_database_path_is_a_clean_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = subprocess.run([sys.executable, "-m", "torc.server.cli", "run", "--port", "0", "--database",
                           str(blocker / "torc.db")], capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert "Error:" in proc.stderr and "Traceback" not in proc.stderr


def test_help_lists_torc_flags():
    out = subprocess.run([sys.executable, "-m", "torc.server.cli", "run", "--help"], capture_output=True,
                         text=True, timeout=30).stdout
    for flag in ("--database", "--host", "--port", "--completion-check-interval-secs", "--log-level", "-u", "-p"):
        assert flag in out


def test_sse_stream_delivers_job_events(live_server):
    with live_server.client() as api:
        wf = api.create_workflow("sse")["id"]
        api.post("bulk_jobs", {"jobs": [{"workflow_id": wf, "name": "a", "command": "true"}]})
    frames: list[tuple[str, dict]] = []
    connected = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{live_server.url}/workflows/{wf}/events/stream", params={"level": "info"},
                          timeout=20) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            event_type = None
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    connected.set()
                elif line.startswith("event: "):
                    event_type = line[7:]
                elif line.startswith("data: "):
                    frames.append((event_type, json.loads(line[6:])))
                    if event_type == "job_completed":
                        return

    listener = threading.Thread(target=listen)
    listener.start()
    assert connected.wait(10)
    with live_server.client() as api:
        api.post(f"workflows/{wf}/initialize_jobs")
        (job,) = api.post(f"workflows/{wf}/claim_next_jobs")["jobs"]
        api.put(f"jobs/{job['id']}/start_job/0/0")
        api.post(f"jobs/{job['id']}/complete_job/completed/0", {"return_code": 0})
    listener.join(15)
    types = [t for t, _ in frames]
    assert types == ["workflow_started", "job_started", "job_completed"]
    data = frames[-1][1]
    assert data["workflow_id"] == wf and data["severity"] == "info" and data["data"]["job_id"] == job["id"]
    assert isinstance(data["timestamp"], int)


def test_sse_unknown_workflow_is_404(live_server):
    response = httpx.get(f"{live_server.url}/workflows/999/events/stream", timeout=10)
    assert response.status_code == 404
    assert "workflow" in response.json()["error"]["message"]


def test_open_event_stream_does_not_delay_shutdown(tmp_path):
    import time

    server = start_server(tmp_path / "torc.db", tmp_path / "a.log")
    with server.client() as api:
        wf = api.create_workflow("stream")["id"]
    opened = threading.Event()
    ended: list[float] = []

    def listen() -> None:
        with httpx.stream("GET", f"{server.url}/workflows/{wf}/events/stream", timeout=30) as response:
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    opened.set()
        ended.append(time.monotonic())

    listener = threading.Thread(target=listen)
    listener.start()
    assert opened.wait(10)
    started = time.monotonic()
    assert server.stop(signal.SIGTERM) == 0
    listener.join(10)
    assert ended and ended[0] - started < 3  # not uvicorn's 5 s graceful timeout
    assert "CancelledError" not in server.log.read_text()


def test_compute_node_events_are_streamed(live_server):
    with live_server.client() as api:
        wf = api.create_workflow("nodes")["id"]
    seen: list[str] = []
    connected = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{live_server.url}/workflows/{wf}/events/stream", timeout=20) as response:
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    connected.set()
                elif line.startswith("event: "):
                    seen.append(line[7:])
                    if line[7:] == "compute_node_stopped":
                        return

    listener = threading.Thread(target=listen)
    listener.start()
    assert connected.wait(10)
    with live_server.client() as api:
        node = api.post("compute_nodes", {"workflow_id": wf, "hostname": "h", "pid": 1, "start_time": "t",
                                          "num_cpus": 1, "memory_gb": 1, "num_gpus": 0, "num_nodes": 1,
                                          "compute_node_type": "local", "is_active": True})
        api.put(f"compute_nodes/{node['id']}", {**node, "is_active": False})
    listener.join(15)
    assert seen == ["compute_node_started", "compute_node_stopped"]

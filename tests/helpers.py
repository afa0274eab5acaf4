"""Small builders shared by tests."""

from __future__ import annotations

from typing import Any

from torc.client import TorcClient


def make_workflow(api: TorcClient, name: str = "wf", **fields: Any) -> int:
    return api.post("workflows", {"name": name, "user": "tester", **fields})["id"]


def make_jobs(api: TorcClient, workflow_id: int, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for job in jobs:
        job.setdefault("workflow_id", workflow_id)
        job.setdefault("command", f"echo {job['name']}")
    return api.post("bulk_jobs", {"jobs": jobs})["jobs"]


def statuses(api: TorcClient, workflow_id: int) -> dict[str, str]:
    return {j["name"]: j["status"] for j in api.iter_items("jobs", workflow_id=workflow_id)}


def claim_all(api: TorcClient, workflow_id: int, limit: int = 1000) -> list[dict[str, Any]]:
    return api.post(f"workflows/{workflow_id}/claim_next_jobs", limit=limit)["jobs"]


def run_job(api: TorcClient, job: dict[str, Any], run_id: int, return_code: int = 0, status: str | None = None,
            node: int = 0) -> dict[str, Any]:
    """start + complete one claimed job, the way a runner does."""
    api.put(f"jobs/{job['id']}/start_job/{run_id}/{node}")
    status = status or ("completed" if return_code == 0 else "failed")
    result = {"job_id": job["id"], "workflow_id": job["workflow_id"], "run_id": run_id, "compute_node_id": node,
              "return_code": return_code, "exec_time_minutes": 0.01, "completion_time": "2026-01-01T00:00:00.000Z",
              "status": status}
    return api.post(f"jobs/{job['id']}/complete_job/{status}/{run_id}", result)


def assert_error(response: Any, status: int, *fragments: str) -> str:
    """Assert an error response: the status, torc's JSON error body, and words its message must contain."""
    where = f"{response.request.method} {response.request.url}"
    assert response.status_code == status, (where, response.status_code, response.text)
    message = response.json()["error"]["message"]
    assert isinstance(message, str) and message, where
    for fragment in fragments:
        assert fragment.lower() in message.lower(), (where, fragment, message)
    return message


def create_many(api: TorcClient, path: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [api.post(path, body) for body in bodies]

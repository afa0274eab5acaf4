"""Workflow export and import as one versioned JSON document, with id remapping on import."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from torc.client.http import TorcClient
from torc.core.errors import InvalidInputError
from torc.core.graph import stages

EXPORT_VERSION = "1.0"
BATCH = 10_000
_SECTIONS = {
    "files": "files", "user_data": "user_data", "resource_requirements": "resource_requirements",
    "slurm_schedulers": "slurm_schedulers", "local_schedulers": "local_schedulers",
}
_JOB_LINKS = {
    "input_file_ids": "files", "output_file_ids": "files",
    "input_user_data_ids": "user_data", "output_user_data_ids": "user_data",
}


def export_workflow(client: TorcClient, workflow_id: int, include_results: bool = False,
                    include_events: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "export_version": EXPORT_VERSION,
        "exported_at": datetime.now(UTC).isoformat(),
        "workflow": client.get(f"workflows/{workflow_id}"),
        "jobs": list(client.iter_items("jobs", workflow_id=workflow_id, include_relationships=True)),
        "failure_handlers": list(client.iter_items(f"workflows/{workflow_id}/failure_handlers")),
        "workflow_actions": client.get(f"workflows/{workflow_id}/actions"),
    }
    for key, path in _SECTIONS.items():
        doc[key] = list(client.iter_items(path, workflow_id=workflow_id))
    if include_results:
        doc["results"] = list(client.iter_items("results", workflow_id=workflow_id, all_runs=True))
    if include_events:
        doc["events"] = list(client.iter_items("events", workflow_id=workflow_id))
    return doc


def _strip(record: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("id", *keys)}


def _levels(jobs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Jobs grouped so that every explicit blocker is created in an earlier group."""
    by_id = {j["id"]: j for j in jobs}
    blockers = {j["id"]: [d for d in j.get("depends_on_job_ids") or [] if d in by_id] for j in jobs}
    return [[by_id[i] for i in stage] for stage in stages(blockers)]


def import_workflow(client: TorcClient, doc: dict[str, Any], name: str | None = None, skip_results: bool = False,
                    skip_events: bool = False) -> int:
    """Recreate an exported workflow with new ids; jobs start uninitialized. All or nothing."""
    if doc.get("export_version") != EXPORT_VERSION:
        raise InvalidInputError(f"unsupported export_version {doc.get('export_version')!r}; expected {EXPORT_VERSION}")
    body = _strip(doc["workflow"], "status_id", "timestamp")
    if name:
        body["name"] = name
    workflow_id = client.post("workflows", body)["id"]
    try:
        _populate(client, workflow_id, doc, skip_results, skip_events)
    except BaseException:
        client.delete(f"workflows/{workflow_id}")
        raise
    return workflow_id


def _populate(client: TorcClient, wf: int, doc: dict[str, Any], skip_results: bool, skip_events: bool) -> None:
    ids: dict[str, dict[int, int]] = {key: {} for key in (*_SECTIONS, "failure_handlers", "jobs")}
    default_rr = client.get("resource_requirements", workflow_id=wf, name="default")["items"][0]["id"]
    for key, path in _SECTIONS.items():
        for record in doc.get(key, []):
            if key == "resource_requirements" and record["name"] == "default":
                client.put(f"resource_requirements/{default_rr}", {**_strip(record), "workflow_id": wf})
                ids[key][record["id"]] = default_rr
                continue
            ids[key][record["id"]] = client.post(path, {**_strip(record), "workflow_id": wf})["id"]
    for record in doc.get("failure_handlers", []):
        ids["failure_handlers"][record["id"]] = client.post("failure_handlers", {**_strip(record), "workflow_id": wf})["id"]
    for group in _levels(doc.get("jobs", [])):
        for start in range(0, len(group), BATCH):
            batch = group[start:start + BATCH]
            payload = []
            for job in batch:
                new = _strip(job, "status", "attempt_id")
                new["workflow_id"] = wf
                new["depends_on_job_ids"] = [ids["jobs"][d] for d in job.get("depends_on_job_ids") or []]
                for link, section in _JOB_LINKS.items():
                    new[link] = [ids[section][i] for i in job.get(link) or []]
                if job.get("resource_requirements_id") is not None:
                    new["resource_requirements_id"] = ids["resource_requirements"][job["resource_requirements_id"]]
                if job.get("failure_handler_id") is not None:
                    new["failure_handler_id"] = ids["failure_handlers"][job["failure_handler_id"]]
                if job.get("scheduler_id") is not None:
                    new["scheduler_id"] = ids["slurm_schedulers"].get(job["scheduler_id"], job["scheduler_id"])
                if job.get("status") == "disabled":
                    new["status"] = "disabled"
                payload.append(new)
            created = client.post("bulk_jobs", {"jobs": payload})["jobs"]
            for old, new in zip(batch, created, strict=True):
                ids["jobs"][old["id"]] = new["id"]
    for action in doc.get("workflow_actions", []):
        new = _strip(action, "workflow_id", "executed", "executed_at", "executed_by", "trigger_count",
                     "required_triggers")
        if action.get("job_ids"):
            new["job_ids"] = [ids["jobs"][j] for j in action["job_ids"]]
        config = dict(new.get("action_config") or {})
        if config.get("scheduler_id") in ids["slurm_schedulers"]:
            config["scheduler_id"] = ids["slurm_schedulers"][config["scheduler_id"]]
        new["action_config"] = config
        client.post(f"workflows/{wf}/actions", new)
    if not skip_results:
        for result in doc.get("results", []):
            client.post("results", {**_strip(result), "workflow_id": wf, "job_id": ids["jobs"][result["job_id"]],
                                    "compute_node_id": 0})
    if not skip_events:
        for event in doc.get("events", []):
            client.post("events", {**_strip(event), "workflow_id": wf})

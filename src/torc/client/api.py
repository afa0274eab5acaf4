"""A typed client for torc's whole REST API: a thin layer over TorcClient with one object per
resource, returning pydantic models.

    with torc.connect("http://localhost:8080/torc-service/v1") as api:
        for wf in api.workflows.list(user="alice"):
            print(wf.id, wf.name, api.workflows.job_counts(wf.id))
        job = api.jobs.get(42)          # torc.Job: job.status, job.command, ...
        api.jobs.update(42, command="echo hi")

Every model keeps the fields the server sent that it does not declare (extra="allow"), so nothing
is lost when the server is newer than the client; `raw` is the underlying TorcClient for any
endpoint not wrapped here. Errors are the TorcError subclasses of torc.core.errors.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from torc.api import models
from torc.client.http import TorcClient, auth_from_env


class Workflow(models.workflow_model):
    """A workflow record."""

    model_config = ConfigDict(extra="allow")


class WorkflowStatus(models.workflow_status_model):
    """A workflow's run id and flags."""

    model_config = ConfigDict(extra="allow")


class Job(models.job_model):
    """A job record (status is a string such as 'completed')."""

    model_config = ConfigDict(extra="allow")


class File(models.file_model):
    """A file record (a path a job reads or writes)."""

    model_config = ConfigDict(extra="allow")


class UserData(models.user_data_model):
    """A user_data record (JSON a job reads or writes)."""

    model_config = ConfigDict(extra="allow")


class ResourceRequirements(models.resource_requirements_model):
    """A named set of resource requirements (CPUs, memory, GPUs, runtime)."""

    model_config = ConfigDict(extra="allow")


class Result(models.result_model):
    """The result of one job attempt."""

    model_config = ConfigDict(extra="allow")


class Event(models.event_model):
    """A workflow event."""

    model_config = ConfigDict(extra="allow")


class ComputeNode(models.compute_node_model):
    """A job runner registered with the server."""

    model_config = ConfigDict(extra="allow")


class ScheduledComputeNode(models.scheduled_compute_nodes_model):
    """A scheduled (e.g. Slurm) allocation."""

    model_config = ConfigDict(extra="allow")


class SlurmScheduler(models.slurm_scheduler_model):
    """A Slurm scheduler configuration."""

    model_config = ConfigDict(extra="allow")


class LocalScheduler(models.local_scheduler_model):
    """A local scheduler configuration."""

    model_config = ConfigDict(extra="allow")


class FailureHandler(models.failure_handler_model):
    """A failure handler (rules are JSON text)."""

    model_config = ConfigDict(extra="allow")


class WorkflowAction(models.workflow_action_model):
    """A workflow action."""

    model_config = ConfigDict(extra="allow")


M = TypeVar("M", bound=BaseModel)


class Resource(Generic[M]):
    """One REST collection (`/jobs`, `/files`, ...): list, iterate, get, create, update, delete."""

    def __init__(self, client: TorcClient, path: str, model: type[M]):
        self.client = client
        self.path = path
        self.model = model

    def iter(self, workflow_id: int | None = None, **filters: Any) -> Iterator[M]:
        """Every matching record, fetched page by page (filters are the endpoint's query parameters)."""
        for item in self.client.iter_items(self.path, workflow_id=workflow_id, **filters):
            yield self.model.model_validate(item)

    def list(self, workflow_id: int | None = None, **filters: Any) -> list[M]:
        """Every matching record (all pages)."""
        return list(self.iter(workflow_id, **filters))

    def get(self, record_id: int) -> M:
        """One record by id (NotFoundError when there is none)."""
        return self.model.model_validate(self.client.get(f"{self.path}/{record_id}"))

    def create(self, record: BaseModel | dict[str, Any] | None = None, **fields: Any) -> M:
        """Create a record from a model, a dict and/or keyword fields; returns it with its id."""
        body = _body(record, fields)
        return self.model.model_validate(self.client.post(self.path, body))

    def update(self, record_id: int, record: BaseModel | dict[str, Any] | None = None, **fields: Any) -> M:
        """Change the given fields of a record; returns the updated record."""
        current = self.client.get(f"{self.path}/{record_id}")
        body = {**current, **_body(record, fields)}
        return self.model.model_validate(self.client.put(f"{self.path}/{record_id}", body))

    def delete(self, record_id: int) -> Any:
        """Delete one record."""
        return self.client.delete(f"{self.path}/{record_id}")


def _body(record: BaseModel | dict[str, Any] | None, fields: dict[str, Any]) -> dict[str, Any]:
    if isinstance(record, BaseModel):
        base = record.model_dump(exclude_unset=True)
    else:
        base = dict(record or {})
    return {**base, **fields}


class Workflows(Resource[Workflow]):
    """`/workflows` and the workflow-level operations."""

    def iter(self, workflow_id: int | None = None, **filters: Any) -> Iterator[Workflow]:
        """Every workflow matching the filters (name, user, description, is_archived)."""
        for item in self.client.iter_items(self.path, **filters):
            yield self.model.model_validate(item)

    def create(self, record: BaseModel | dict[str, Any] | None = None, **fields: Any) -> Workflow:
        """Create a workflow (user defaults to $USER); returns it with its id."""
        body = _body(record, fields)
        auth = getattr(self.client, "auth", None)
        body.setdefault("user", auth[0] if auth else (os.environ.get("TORC_USER") or os.environ.get("USER")
                                                      or os.environ.get("USERNAME") or "unknown"))
        return self.model.model_validate(self.client.post(self.path, body))

    def status(self, workflow_id: int) -> WorkflowStatus:
        """Run id and the canceled/archived flags."""
        return WorkflowStatus.model_validate(self.client.get(f"workflows/{workflow_id}/status"))

    def job_counts(self, workflow_id: int) -> dict[str, int]:
        """How many jobs are in each status (statuses with no job are left out)."""
        counts = self.client.get(f"workflows/{workflow_id}/job_counts")["counts"]
        return {status: n for status, n in counts.items() if n}

    def is_complete(self, workflow_id: int) -> bool:
        """Whether every job has finished (or the workflow was canceled)."""
        return bool(self.client.get(f"workflows/{workflow_id}/is_complete")["is_complete"])

    def initialize(self, workflow_id: int, force: bool = False) -> None:
        """Mark jobs ready or blocked (checks that required input files exist unless force)."""
        from torc.client import manager

        manager.initialize(self.client, workflow_id, force=force)

    def reinitialize(self, workflow_id: int, force: bool = False) -> None:
        """A new run that reruns jobs whose inputs changed, and failed jobs."""
        from torc.client import manager

        manager.reinitialize(self.client, workflow_id, force=force)

    def reset(self, workflow_id: int, failed_only: bool = False, force: bool = False) -> Any:
        """Put jobs (all, or only failed/canceled/terminated/pending_failed and their downstream)
        back to uninitialized; `initialize` or `reinitialize` then makes them runnable."""
        self.client.post(f"workflows/{workflow_id}/reset_status", force=force or None)
        return self.client.post(f"workflows/{workflow_id}/reset_job_status", failed_only=failed_only or None)

    def cancel(self, workflow_id: int) -> Any:
        """Cancel the workflow: runners stop and unfinished jobs are canceled."""
        return self.client.put(f"workflows/{workflow_id}/cancel")

    def actions(self, workflow_id: int) -> list[WorkflowAction]:
        """The workflow's actions."""
        return [WorkflowAction.model_validate(a) for a in self._items(f"workflows/{workflow_id}/actions")]

    def failure_handlers(self, workflow_id: int) -> list[FailureHandler]:
        """The workflow's failure handlers."""
        return [FailureHandler.model_validate(h)
                for h in self._items(f"workflows/{workflow_id}/failure_handlers")]

    def _items(self, path: str) -> list[dict[str, Any]]:
        """A listing that may be a plain list or a page."""
        body = self.client.get(path)
        if isinstance(body, dict) and "items" in body:
            return list(self.client.iter_items(path))
        return list(body or [])


class Jobs(Resource[Job]):
    """`/jobs`, plus bulk creation and retrying."""

    def create_many(self, jobs: list[dict[str, Any]]) -> list[Job]:
        """Create many jobs in one request per 10,000 (POST /bulk_jobs)."""
        created: list[dict[str, Any]] = []
        for start in range(0, len(jobs), 10_000):
            created += self.client.post("bulk_jobs", {"jobs": jobs[start:start + 10_000]})["jobs"]
        return [self.model.model_validate(j) for j in created]


class TorcApi:
    """The typed client: one attribute per REST collection. `raw` is the TorcClient underneath."""

    def __init__(self, url: str | None = None, *, user: str | None = None, password: str | None = None,
                 client: TorcClient | None = None, timeout: float = 120.0):
        self.raw = client or TorcClient(url, timeout=timeout, auth=auth_from_env(user, password))
        self._owns_client = client is None
        raw = self.raw
        self.workflows = Workflows(raw, "workflows", Workflow)
        self.jobs = Jobs(raw, "jobs", Job)
        self.files: Resource[File] = Resource(raw, "files", File)
        self.user_data: Resource[UserData] = Resource(raw, "user_data", UserData)
        self.resource_requirements: Resource[ResourceRequirements] = Resource(raw, "resource_requirements", ResourceRequirements)
        self.results: Resource[Result] = Resource(raw, "results", Result)
        self.events: Resource[Event] = Resource(raw, "events", Event)
        self.compute_nodes: Resource[ComputeNode] = Resource(raw, "compute_nodes", ComputeNode)
        self.scheduled_compute_nodes: Resource[ScheduledComputeNode] = Resource(raw, "scheduled_compute_nodes", ScheduledComputeNode)
        self.slurm_schedulers: Resource[SlurmScheduler] = Resource(raw, "slurm_schedulers", SlurmScheduler)
        self.local_schedulers: Resource[LocalScheduler] = Resource(raw, "local_schedulers", LocalScheduler)
        self.failure_handlers: Resource[FailureHandler] = Resource(raw, "failure_handlers", FailureHandler)

    @property
    def url(self) -> str:
        """The server's API URL."""
        return self.raw.url

    def ping(self) -> dict[str, Any]:
        """The server's ping answer (raises ServerUnreachable when it is down)."""
        return self.raw.ping()

    def version(self) -> Any:
        """The server's version."""
        return self.raw.get("version")

    def close(self) -> None:
        """Close the connection (only when this object created the TorcClient)."""
        if self._owns_client:
            self.raw.close()

    def __enter__(self) -> TorcApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(url: str | None = None, *, user: str | None = None, password: str | None = None,
            timeout: float = 120.0) -> TorcApi:
    """A typed client of the server at `url` (default: TORC_API_URL, else localhost:8080), with
    basic auth from `password`/TORC_PASSWORD when set."""
    return TorcApi(url, user=user, password=password, timeout=timeout)


def as_client(target: TorcApi | TorcClient | str | None) -> TorcClient:
    """The TorcClient behind a TorcApi, a TorcClient, or a URL (a new client, with env auth)."""
    if isinstance(target, TorcApi):
        return target.raw
    if isinstance(target, TorcClient):
        return target
    return TorcClient(target, auth=auth_from_env())

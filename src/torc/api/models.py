"""Request and response models of torc's REST API (names follow torc's OpenAPI schemas).

Requests are validated with these; unknown keys are ignored, as torc's server does.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from torc.core.errors import InvalidInputError
from torc.core.status import JobStatus


def _status(value: Any) -> str:
    try:
        return JobStatus.parse(value).wire
    except InvalidInputError as exc:
        raise ValueError(exc.message) from None


Status = Annotated[str, BeforeValidator(_status)]


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore")

    def values(self) -> dict[str, Any]:
        """The fields the client actually sent."""
        return self.model_dump(exclude_unset=True)


class workflow_model(Model):
    id: int | None = None
    name: str
    user: str
    description: str | None = None
    timestamp: str | None = None
    project: str | None = None
    metadata: str | None = None
    compute_node_expiration_buffer_seconds: int | None = None
    compute_node_wait_for_new_jobs_seconds: int | None = None
    compute_node_ignore_workflow_completion: bool | None = None
    compute_node_wait_for_healthy_database_minutes: int | None = None
    compute_node_min_time_for_new_jobs_seconds: int | None = None
    jobs_sort_method: str | None = None
    resource_monitor_config: str | None = None
    slurm_defaults: str | None = None
    use_pending_failed: bool | None = None
    status_id: int | None = None


class workflow_update_model(workflow_model):
    name: str | None = None  # type: ignore[assignment]
    user: str | None = None  # type: ignore[assignment]


class workflow_status_model(Model):
    id: int | None = None
    is_canceled: bool | None = None
    is_archived: bool | None = None
    run_id: int | None = None
    has_detected_need_to_run_completion_script: bool | None = None


class job_model(Model):
    id: int | None = None
    workflow_id: int
    name: str
    command: str
    invocation_script: str | None = None
    status: Status | None = None
    cancel_on_blocking_job_failure: bool | None = None
    supports_termination: bool | None = None
    depends_on_job_ids: list[int] | None = None
    input_file_ids: list[int] | None = None
    output_file_ids: list[int] | None = None
    input_user_data_ids: list[int] | None = None
    output_user_data_ids: list[int] | None = None
    resource_requirements_id: int | None = None
    scheduler_id: int | None = None
    failure_handler_id: int | None = None
    attempt_id: int | None = Field(default=None, ge=1)


class job_update_model(job_model):
    workflow_id: int | None = None  # type: ignore[assignment]
    name: str | None = None  # type: ignore[assignment]
    command: str | None = None  # type: ignore[assignment]


class jobs_model(Model):
    jobs: list[job_model]


class file_model(Model):
    id: int | None = None
    workflow_id: int
    name: str
    path: str
    st_mtime: float | None = None


class files_model(Model):
    files: list[file_model]


class user_data_model(Model):
    id: int | None = None
    workflow_id: int
    name: str
    is_ephemeral: bool | None = None
    data: Any = None


class user_data_batch_model(Model):
    user_data: list[user_data_model]


class resource_requirements_model(Model):
    id: int | None = None
    workflow_id: int
    name: str
    num_cpus: int | None = Field(default=None, ge=0)
    num_gpus: int | None = Field(default=None, ge=0)
    num_nodes: int | None = Field(default=None, ge=1)
    memory: str | None = None
    runtime: str | None = None


class result_model(Model):
    id: int | None = None
    job_id: int
    workflow_id: int
    run_id: int
    attempt_id: int | None = Field(default=None, ge=1)
    compute_node_id: int
    return_code: int
    exec_time_minutes: float
    completion_time: str
    status: Status
    peak_memory_bytes: int | None = None
    avg_memory_bytes: int | None = None
    peak_cpu_percent: float | None = None
    avg_cpu_percent: float | None = None


class completion_result_model(Model):
    """The result body of complete_job / retry: ids and status come from the path."""

    id: int | None = None
    job_id: int | None = None
    workflow_id: int | None = None
    run_id: int | None = None
    attempt_id: int | None = Field(default=None, ge=1)
    compute_node_id: int | None = None
    return_code: int | None = None
    exec_time_minutes: float | None = None
    completion_time: str | None = None
    status: Status | None = None
    peak_memory_bytes: int | None = None
    avg_memory_bytes: int | None = None
    peak_cpu_percent: float | None = None
    avg_cpu_percent: float | None = None


class event_model(Model):
    id: int | None = None
    workflow_id: int
    timestamp: int | None = None
    data: dict[str, Any]


class compute_node_model(Model):
    id: int | None = None
    workflow_id: int
    hostname: str
    pid: int
    start_time: str
    duration_seconds: float | None = None
    is_active: bool | None = None
    num_cpus: int = Field(ge=0)
    memory_gb: float = Field(ge=0)
    num_gpus: int = Field(ge=0)
    num_nodes: int = Field(ge=0)
    time_limit: str | None = None
    scheduler_config_id: int | None = None
    compute_node_type: str
    scheduler: Any = None


class scheduled_compute_nodes_model(Model):
    id: int | None = None
    workflow_id: int
    scheduler_id: int
    scheduler_config_id: int
    scheduler_type: str
    status: str


class slurm_scheduler_model(Model):
    id: int | None = None
    workflow_id: int
    name: str | None = None
    account: str
    gres: str | None = None
    mem: str | None = None
    nodes: int = Field(ge=1)
    ntasks_per_node: int | None = None
    partition: str | None = None
    qos: str | None = None
    tmp: str | None = None
    walltime: str
    extra: str | None = None


class local_scheduler_model(Model):
    id: int | None = None
    workflow_id: int
    name: str | None = None
    memory: str | None = None
    num_cpus: int | None = Field(default=None, ge=0)


class failure_handler_model(Model):
    id: int | None = None
    workflow_id: int
    name: str
    rules: str


class workflow_action_model(Model):
    id: int | None = None
    workflow_id: int | None = None
    trigger_type: str
    action_type: str
    action_config: Any
    job_ids: list[int] | None = None
    executed: bool | None = None
    executed_at: str | None = None
    executed_by: int | None = None
    persistent: bool | None = None
    is_recovery: bool | None = None


class compute_nodes_resources(Model):
    id: int | None = None
    num_cpus: int = Field(ge=0)
    memory_gb: float = Field(ge=0)
    num_gpus: int = Field(ge=0)
    num_nodes: int = Field(ge=0)
    time_limit: str | None = None
    scheduler_config_id: int | None = None


class access_group_model(Model):
    id: int | None = None
    name: str
    description: str | None = None
    created_at: str | None = None


class user_group_membership_model(Model):
    id: int | None = None
    user_name: str
    group_id: int | None = None
    role: str | None = None
    created_at: str | None = None


class workflow_access_group_model(Model):
    workflow_id: int | None = None
    group_id: int
    created_at: str | None = None


class job_completion(Model):
    job_id: int
    status: Status
    result: completion_result_model | None = None


class start_jobs_model(Model):
    """Batch start (an extension): many start_job calls of one runner in one transaction."""

    run_id: int
    compute_node_id: int
    job_ids: list[int]


class release_jobs_model(Model):
    """Batch release (an extension): claimed jobs a runner gives back unstarted."""

    job_ids: list[int]


class complete_jobs_model(Model):
    """Batch completion (an extension): many complete_job calls in one transaction."""

    run_id: int
    jobs: list[job_completion]


class file_content_hash_model(Model):
    """The SHA-256 of an input file's content (an extension, the baseline of `reinitialize
    --hash`), with the modification time and size of the version that was hashed."""

    file_id: int
    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]
    st_mtime: Annotated[float | None, Field(allow_inf_nan=False)] = None
    size: Annotated[int | None, Field(ge=0, le=2**63 - 1)] = None


class file_content_hashes_model(Model):
    """A workflow's whole set of file content hashes (GET and PUT /workflows/{id}/file_hashes)."""

    items: list[file_content_hash_model]


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    offset: int
    max_limit: int
    count: int
    total_count: int
    has_more: bool

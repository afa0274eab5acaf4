"""The typed model of a workflow spec (reference §1). Unknown keys are errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from torc.core.errors import InvalidInputError
from torc.core.units import parse_duration_seconds, parse_memory_bytes, parse_walltime_seconds


def _checked(parse: Callable[[str], object]) -> AfterValidator:
    """A string field checked by one of torc.core.units' parsers, with its message on failure."""

    def check(value: str) -> str:
        try:
            parsed = parse(value)
        except InvalidInputError as exc:
            raise ValueError(exc.message) from None
        if isinstance(parsed, int | float) and not abs(parsed) < 2**63:  # the server stores 64-bit integers
            raise ValueError(f"{value!r} is too large")
        return value

    return AfterValidator(check)


Walltime = Annotated[str, _checked(parse_walltime_seconds)]
Memory = Annotated[str, _checked(parse_memory_bytes)]
Duration = Annotated[str, _checked(parse_duration_seconds)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobSpec(Strict):
    name: str = Field(min_length=1)  # the server refuses empty job names
    command: str
    invocation_script: str | None = None
    resource_requirements: str | None = None
    failure_handler: str | None = None
    scheduler: str | None = None
    cancel_on_blocking_job_failure: bool = True
    supports_termination: bool = False
    depends_on: list[str] | None = None
    depends_on_regexes: list[str] | None = None
    input_files: list[str] | None = None
    input_file_regexes: list[str] | None = None
    output_files: list[str] | None = None
    output_file_regexes: list[str] | None = None
    input_user_data: list[str] | None = None
    input_user_data_regexes: list[str] | None = None
    output_user_data: list[str] | None = None
    output_user_data_regexes: list[str] | None = None
    parameters: dict[str, Any] | None = None
    parameter_mode: str | None = None
    use_parameters: list[str] | None = None


class FileSpec(Strict):
    name: str
    path: str
    parameters: dict[str, Any] | None = None
    parameter_mode: str | None = None
    use_parameters: list[str] | None = None


class UserDataSpec(Strict):
    name: str | None = None
    data: Any = None
    is_ephemeral: bool = False


class ResourceRequirementsSpec(Strict):
    name: str
    num_cpus: int = Field(ge=0)
    memory: Memory
    num_gpus: int = Field(default=0, ge=0)
    num_nodes: int = Field(default=1, ge=1)
    runtime: Duration = "PT1H"


class FailureHandlerRule(Strict):
    exit_codes: list[int] = Field(default_factory=list)
    match_all_exit_codes: bool = False
    recovery_script: str | None = None
    max_retries: int = Field(default=3, ge=0)


class FailureHandlerSpec(Strict):
    name: str
    rules: list[FailureHandlerRule]


class SlurmSchedulerSpec(Strict):
    name: str
    account: str
    partition: str | None = None
    nodes: int = Field(default=1, ge=1)
    walltime: Walltime = "01:00:00"
    mem: str | None = None
    gres: str | None = None
    qos: str | None = None
    ntasks_per_node: int | None = None
    tmp: str | None = None
    extra: str | None = None


class ResourceMonitorConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")
    enabled: bool = False
    granularity: Literal["summary", "time_series"] = "summary"
    sample_interval_seconds: float = 5
    generate_plots: bool = False


# The server's lists (service/actions.py): checked here so a typo is reported with the file and action,
# before anything is created.
Trigger = Literal["on_workflow_start", "on_workflow_complete", "on_jobs_ready", "on_jobs_complete",
                  "on_worker_start", "on_worker_complete"]


class WorkflowActionSpec(Strict):
    trigger_type: Trigger
    action_type: Literal["run_commands", "schedule_nodes"]
    jobs: list[str] | None = None
    job_name_regexes: list[str] | None = None
    commands: list[str] | None = None
    scheduler: str | None = None
    scheduler_type: str | None = None
    num_allocations: int | None = None
    start_one_worker_per_node: bool | None = None
    max_parallel_jobs: int | None = None
    persistent: bool = False


class WorkflowSpec(Strict):
    name: str
    user: str | None = None
    description: str | None = None
    project: str | None = None
    metadata: Any = None
    parameters: dict[str, Any] | None = None
    jobs: list[JobSpec] = Field(default_factory=list)
    files: list[FileSpec] | None = None
    user_data: list[UserDataSpec] | None = None
    resource_requirements: list[ResourceRequirementsSpec] | None = None
    failure_handlers: list[FailureHandlerSpec] | None = None
    slurm_schedulers: list[SlurmSchedulerSpec] | None = None
    slurm_defaults: dict[str, Any] | None = None
    resource_monitor: ResourceMonitorConfig | None = None
    actions: list[WorkflowActionSpec] | None = None
    use_pending_failed: bool = False
    compute_node_expiration_buffer_seconds: int | None = None
    compute_node_wait_for_new_jobs_seconds: int | None = None
    compute_node_ignore_workflow_completion: bool | None = None
    compute_node_wait_for_healthy_database_minutes: int | None = None
    jobs_sort_method: Literal["none", "gpus_runtime_memory", "gpus_memory_runtime"] | None = None

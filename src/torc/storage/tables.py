"""Table descriptors: which columns each resource stores, how they map to the wire, and
which of them clients may filter and sort by. Every column name that reaches SQL text comes
from here, never from a request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from torc.core.status import JobStatus
from torc.storage.base import Row


@dataclass(frozen=True)
class Table:
    name: str  # SQL table
    kind: str  # what users call it, for error messages
    columns: tuple[str, ...]  # wire fields stored as columns, id excluded
    bools: frozenset[str] = frozenset()
    json_objects: frozenset[str] = frozenset()  # stored as JSON text, sent as JSON values
    statuses: frozenset[str] = frozenset()  # job status ints stored, wire strings sent
    filters: tuple[str, ...] = ()  # query parameters that filter by equality on a column
    sortable: tuple[str, ...] = ()
    immutable: frozenset[str] = frozenset({"workflow_id"})
    hidden: frozenset[str] = frozenset()  # stored but never sent
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def sort_columns(self) -> frozenset[str]:
        return frozenset(("id", *self.sortable))

    def to_wire(self, row: Row) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in row.items():
            if value is None or key in self.hidden:
                continue
            if key in self.bools:
                value = bool(value)
            elif key in self.json_objects:
                value = json.loads(value)
            elif key in self.statuses:
                value = JobStatus(value).wire
            out[key] = value
        return out

    def to_row(self, wire: dict[str, Any]) -> dict[str, Any]:
        """Wire values -> column values for the given keys. Unknown keys and nulls are dropped:
        torc's clients send null for "not set", so null never overwrites or clears a column."""
        out: dict[str, Any] = {}
        for key, value in wire.items():
            if key not in self.columns or value is None:
                continue
            if key in self.bools:
                value = int(bool(value))
            elif key in self.json_objects:
                value = json.dumps(value, separators=(",", ":"))
            elif key in self.statuses:
                value = int(JobStatus.parse(value))
            out[key] = value
        return out


WORKFLOW = Table(
    "workflow",
    "workflow",
    (
        "name", "description", "user", "timestamp", "project", "metadata",
        "compute_node_expiration_buffer_seconds", "compute_node_wait_for_new_jobs_seconds",
        "compute_node_ignore_workflow_completion", "compute_node_wait_for_healthy_database_minutes",
        "compute_node_min_time_for_new_jobs_seconds", "jobs_sort_method", "resource_monitor_config",
        "slurm_defaults", "use_pending_failed", "status_id",
    ),
    bools=frozenset({"compute_node_ignore_workflow_completion", "use_pending_failed"}),
    filters=("name", "user", "description"),
    sortable=("name", "user", "description", "timestamp", "project"),
    immutable=frozenset({"status_id", "timestamp"}),
)

WORKFLOW_STATUS = Table(
    "workflow_status",
    "workflow status",
    ("run_id", "is_canceled", "is_archived", "has_detected_need_to_run_completion_script"),
    bools=frozenset({"is_canceled", "is_archived", "has_detected_need_to_run_completion_script"}),
)

JOB = Table(
    "job",
    "job",
    (
        "workflow_id", "name", "command", "invocation_script", "status",
        "cancel_on_blocking_job_failure", "supports_termination", "resource_requirements_id",
        "scheduler_id", "failure_handler_id", "attempt_id",
    ),
    bools=frozenset({"cancel_on_blocking_job_failure", "supports_termination"}),
    statuses=frozenset({"status"}),
    filters=("active_compute_node_id",),
    sortable=("name", "command", "status", "resource_requirements_id", "scheduler_id", "attempt_id"),
    hidden=frozenset({"unblocking_processed", "input_hash", "active_compute_node_id", "unfinished_blockers"}),
)

FILE = Table(
    "file",
    "file",
    ("workflow_id", "name", "path", "st_mtime"),
    filters=("name", "path"),
    sortable=("name", "path", "st_mtime"),
)

USER_DATA = Table(
    "user_data",
    "user data",
    ("workflow_id", "name", "is_ephemeral", "data"),
    bools=frozenset({"is_ephemeral"}),
    json_objects=frozenset({"data"}),
    filters=("name", "is_ephemeral"),
    sortable=("name", "is_ephemeral"),
)

RESOURCE_REQUIREMENTS = Table(
    "resource_requirements",
    "resource requirements",
    ("workflow_id", "name", "num_cpus", "num_gpus", "num_nodes", "memory", "runtime"),
    filters=("name", "memory", "num_cpus", "num_gpus", "num_nodes", "runtime"),
    sortable=("name", "num_cpus", "num_gpus", "num_nodes", "memory_bytes", "runtime_s", "memory", "runtime"),
    hidden=frozenset({"memory_bytes", "runtime_s"}),
)

FAILURE_HANDLER = Table(
    "failure_handler",
    "failure handler",
    ("workflow_id", "name", "rules"),
    sortable=("name",),
)

SLURM_SCHEDULER = Table(
    "slurm_scheduler",
    "slurm scheduler",
    ("workflow_id", "name", "account", "gres", "mem", "nodes", "ntasks_per_node", "partition", "qos", "tmp",
     "walltime", "extra"),
    filters=("name", "account", "gres", "mem", "nodes", "partition", "qos", "tmp", "walltime"),
    sortable=("name", "account", "nodes", "partition", "walltime"),
)

LOCAL_SCHEDULER = Table(
    "local_scheduler",
    "local scheduler",
    ("workflow_id", "name", "memory", "num_cpus"),
    filters=("memory", "num_cpus"),
    sortable=("name", "memory", "num_cpus"),
)

COMPUTE_NODE = Table(
    "compute_node",
    "compute node",
    ("workflow_id", "hostname", "pid", "start_time", "duration_seconds", "is_active", "num_cpus", "memory_gb",
     "num_gpus", "num_nodes", "time_limit", "scheduler_config_id", "compute_node_type", "scheduler"),
    bools=frozenset({"is_active"}),
    json_objects=frozenset({"scheduler"}),
    filters=("hostname", "is_active"),
    sortable=("hostname", "pid", "start_time", "is_active", "compute_node_type", "last_heartbeat"),
)

SCHEDULED_COMPUTE_NODE = Table(
    "scheduled_compute_node",
    "scheduled compute node",
    ("workflow_id", "scheduler_id", "scheduler_config_id", "scheduler_type", "status"),
    filters=("scheduler_id", "scheduler_config_id", "status"),
    sortable=("scheduler_id", "scheduler_config_id", "scheduler_type", "status"),
)

RESULT = Table(
    "result",
    "result",
    ("workflow_id", "job_id", "run_id", "attempt_id", "compute_node_id", "return_code", "exec_time_minutes",
     "completion_time", "status", "peak_memory_bytes", "avg_memory_bytes", "peak_cpu_percent",
     "avg_cpu_percent"),
    statuses=frozenset({"status"}),
    filters=("job_id", "run_id", "return_code", "status", "compute_node_id"),
    sortable=("job_id", "run_id", "attempt_id", "return_code", "exec_time_minutes", "completion_time", "status",
              "peak_memory_bytes", "peak_cpu_percent", "compute_node_id"),
)

EVENT = Table(
    "event",
    "event",
    ("workflow_id", "timestamp", "data"),
    json_objects=frozenset({"data"}),
    sortable=("timestamp",),
)

WORKFLOW_ACTION = Table(
    "workflow_action",
    "workflow action",
    ("workflow_id", "trigger_type", "action_type", "action_config", "job_ids", "executed", "executed_at",
     "executed_by", "persistent"),
    bools=frozenset({"executed", "persistent", "is_recovery"}),
    json_objects=frozenset({"action_config", "job_ids"}),
)

ACCESS_GROUP = Table(
    "access_group",
    "access group",
    ("name", "description", "created_at"),
    immutable=frozenset(),
    hidden=frozenset({"is_system"}),
    sortable=("name",),
)

MEMBERSHIP = Table(
    "user_group_membership",
    "group membership",
    ("user_name", "group_id", "role", "created_at"),
    immutable=frozenset(),
)

# Resources served by the generic CRUD routes, keyed by URL segment.
CRUD_TABLES: dict[str, Table] = {
    "files": FILE,
    "user_data": USER_DATA,
    "resource_requirements": RESOURCE_REQUIREMENTS,
    "results": RESULT,
    "events": EVENT,
    "compute_nodes": COMPUTE_NODE,
    "scheduled_compute_nodes": SCHEDULED_COMPUTE_NODE,
    "slurm_schedulers": SLURM_SCHEDULER,
    "local_schedulers": LOCAL_SCHEDULER,
}

"""torc: distributed workflow orchestration (a Python re-implementation of NREL's torc).

The Python API (docs/python-api.md):

- `torc.connect(url)` -> `torc.TorcApi`, a typed client of the whole REST API;
- `torc.WorkflowBuilder` to define a workflow in code (checked like a spec file);
- `torc.run_workflow(...)` / `torc.wait_for_completion(...)` to run one and wait for it;
- `torc.map_function_to_jobs(...)` to turn a Python function and parameter sets into jobs;
- `torc.results_dataframe(...)`, `torc.job_logs(...)` to read back what happened.

Everything but the errors and JobStatus is imported on first use, so `import torc` (and the CLI) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from torc.core.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    TorcError,
)
from torc.core.status import JobStatus

if TYPE_CHECKING:
    from torc.builder import WorkflowBuilder
    from torc.client.api import TorcApi, auth_from_env, connect
    from torc.client.http import ServerUnreachable, TorcClient
    from torc.execution import (
        WorkflowRun,
        job_logs,
        jobs_dataframe,
        results_dataframe,
        run_workflow,
        wait_for_completion,
    )
    from torc.mapping import map_function_to_jobs, mapped_results
    from torc.spec.load import SpecError

__version__ = "0.1.0"

__all__ = [
    "ConflictError",
    "ForbiddenError",
    "InvalidInputError",
    "JobStatus",
    "NotFoundError",
    "ServerUnreachable",
    "SpecError",
    "TorcApi",
    "TorcClient",
    "TorcError",
    "WorkflowBuilder",
    "WorkflowRun",
    "__version__",
    "auth_from_env",
    "connect",
    "job_logs",
    "jobs_dataframe",
    "map_function_to_jobs",
    "mapped_results",
    "results_dataframe",
    "run_workflow",
    "wait_for_completion",
]

_LAZY = {
    "ServerUnreachable": "torc.client.http",
    "SpecError": "torc.spec.load",
    "TorcApi": "torc.client.api",
    "TorcClient": "torc.client.http",
    "WorkflowBuilder": "torc.builder",
    "WorkflowRun": "torc.execution",
    "auth_from_env": "torc.client.api",
    "connect": "torc.client.api",
    "job_logs": "torc.execution",
    "jobs_dataframe": "torc.execution",
    "map_function_to_jobs": "torc.mapping",
    "mapped_results": "torc.mapping",
    "results_dataframe": "torc.execution",
    "run_workflow": "torc.execution",
    "wait_for_completion": "torc.execution",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'torc' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

"""Define a workflow in Python and create it in one call.

    wf = WorkflowBuilder("diamond", description="fan out and in")
    wf.add_resource_requirements("small", num_cpus=1, memory="1g", runtime="PT10M")
    prep = wf.add_job("prep", "python prep.py", resource_requirements="small")
    work = [wf.add_job(f"work_{i}", f"python work.py {i}", depends_on=[prep]) for i in range(3)]
    wf.add_job("join", "python join.py", depends_on=work)
    workflow_id = wf.create(client)

The builder only collects a spec dict (the same keys as a YAML spec file); `validate()` and
`create()` send it through torc.spec exactly as `torc workflows create spec.yaml` does, so every
check and error message of spec files applies (parameters, ${files.*} substitution, regexes, cycles).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from torc.client.http import TorcClient
from torc.spec.model import WorkflowSpec


def _names(items: Any) -> list[str] | None:
    if items is None:
        return None
    if isinstance(items, str):
        return [items]
    return [str(i) for i in items]


class WorkflowBuilder:
    """Collects jobs, files, user data, resource requirements, failure handlers, schedulers and
    actions; `to_spec()` gives the spec dict, `create(client)` makes the workflow."""

    def __init__(self, name: str, *, description: str | None = None, user: str | None = None,
                 project: str | None = None, **workflow_fields: Any):
        self.spec: dict[str, Any] = {"name": name, "jobs": []}
        for key, value in {"description": description, "user": user, "project": project,
                           **workflow_fields}.items():
            if value is not None:
                self.spec[key] = value

    def _append(self, section: str, item: dict[str, Any]) -> dict[str, Any]:
        clean = {k: v for k, v in item.items() if v is not None}
        self.spec.setdefault(section, []).append(clean)
        return clean

    def add_job(self, name: str, command: str, *, depends_on: Any = None, input_files: Any = None,
                output_files: Any = None, input_user_data: Any = None, output_user_data: Any = None,
                resource_requirements: str | None = None, failure_handler: str | None = None,
                scheduler: str | None = None, **fields: Any) -> str:
        """Add a job; returns its name (pass it to depends_on of later jobs). Dependencies on
        jobs that write this job's input files or user data are inferred, as in spec files."""
        self._append("jobs", {"name": name, "command": command, "depends_on": _names(depends_on),
                              "input_files": _names(input_files), "output_files": _names(output_files),
                              "input_user_data": _names(input_user_data),
                              "output_user_data": _names(output_user_data),
                              "resource_requirements": resource_requirements, "failure_handler": failure_handler,
                              "scheduler": scheduler, **fields})
        return name

    def add_file(self, name: str, path: str | Path, **fields: Any) -> str:
        """Add a file (a path jobs read or write); returns its name."""
        self._append("files", {"name": name, "path": str(path), **fields})
        return name

    def add_user_data(self, name: str, data: Any = None, *, is_ephemeral: bool = False) -> str:
        """Add a named JSON value jobs read or write; returns its name."""
        self._append("user_data", {"name": name, "data": data, "is_ephemeral": is_ephemeral or None})
        return name

    def add_resource_requirements(self, name: str, *, num_cpus: int = 1, memory: str = "1g", num_gpus: int = 0,
                                  num_nodes: int = 1, runtime: str = "PT1H") -> str:
        """Add a named set of resource requirements (memory '512m', '4g'; runtime ISO 8601 'PT30M')."""
        self._append("resource_requirements", {"name": name, "num_cpus": num_cpus, "memory": memory,
                                               "num_gpus": num_gpus, "num_nodes": num_nodes, "runtime": runtime})
        return name

    def add_failure_handler(self, name: str, rules: list[dict[str, Any]]) -> str:
        """Add a failure handler: rules such as {"exit_codes": [10], "max_retries": 2}."""
        self._append("failure_handlers", {"name": name, "rules": rules})
        return name

    def add_slurm_scheduler(self, name: str, *, account: str, **fields: Any) -> str:
        """Add a Slurm scheduler (partition, nodes, walltime, mem, gres, qos, ...)."""
        self._append("slurm_schedulers", {"name": name, "account": account, **fields})
        return name

    def add_action(self, trigger_type: str, action_type: str, **fields: Any) -> dict[str, Any]:
        """Add a workflow action (e.g. on_workflow_start / run_commands, commands=[...])."""
        return self._append("actions", {"trigger_type": trigger_type, "action_type": action_type, **fields})

    def to_spec(self) -> dict[str, Any]:
        """The spec as a dict, with the keys of a YAML/JSON spec file."""
        return copy.deepcopy(self.spec)

    def to_json(self) -> str:
        """The spec as JSON text (a file `torc run` accepts)."""
        return json.dumps(self.spec, indent=2)

    def validate(self) -> WorkflowSpec:
        """Check the spec as a spec file is checked; raises torc.spec.load.SpecError (an
        InvalidInputError) listing every problem."""
        spec, _ = validate_spec(self.to_spec(), self._source())
        return spec

    def create(self, client: Any, *, initialize: bool = False, monitoring: bool = True) -> int:
        """Validate, then create the workflow (all or nothing); returns its id. `client` is a
        TorcClient, a torc.TorcApi, or a URL."""
        from torc.client.api import as_client
        from torc.client.from_spec import create_workflow

        raw = as_client(client)
        try:
            spec, broken = validate_spec(self.to_spec(), self._source())
            workflow_id = create_workflow(raw, spec, self._source(), monitoring=monitoring, broken=broken)
            if initialize:
                from torc.client import manager

                manager.initialize(raw, workflow_id)
            return workflow_id
        finally:
            if not isinstance(client, TorcClient) and raw is not getattr(client, "raw", None):
                raw.close()

    def _source(self) -> str:
        return f"<WorkflowBuilder {self.spec['name']!r}>"


def validate_spec(data: dict[str, Any], source: str) -> tuple[WorkflowSpec, set[str]]:
    """Expand, validate and resolve spec data; SpecError lists every problem."""
    from torc.spec.load import spec_from_data
    from torc.spec.resolve import resolve

    spec, broken = spec_from_data(data, source)
    resolve(spec, source, broken)  # references, substitution and cycles
    return spec, broken

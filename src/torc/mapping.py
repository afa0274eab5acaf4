"""Map a Python function over a list of parameter sets: one torc job per set.

    jobs = map_function_to_jobs(client, workflow_id, "mymodule", "simulate",
                                [{"x": 1}, {"x": 2}], postprocess_func="summarize")

For each parameter set this creates an input user_data record `{module, func, params, job_name
[, module_directory]}`, an empty output user_data record, and a job whose command is
`python -m torc.mapping run-function`. When the job runs, that command reads its input record
(TORC_API_URL, TORC_WORKFLOW_ID and TORC_JOB_ID are set by every torc runner), imports the module,
calls `func(params)` and stores the return value (anything JSON can hold) in the output record. An
exception makes the job fail (exit code 1, traceback in the job's stderr).

With `postprocess_func`, one more job (`run-postprocess`) waits for all of them and calls
`postprocess(results)` with the list of every job's return value, in parameter order; its return
value goes to the user_data record `postprocess_result`. `mapped_results()` reads everything back.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from torc.client.http import TorcClient
from torc.core.errors import InvalidInputError

POSTPROCESS_NAME = "postprocess"
POSTPROCESS_RESULT = "postprocess_result"


def check_function(module: str, func: str, module_directory: str | Path | None = None) -> Any:
    """Import module.func (with module_directory first on sys.path) and return it; a clear
    InvalidInputError when it cannot be found or is not callable."""
    if module_directory is not None:
        path = str(Path(module_directory).resolve())
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise InvalidInputError(f"cannot import module {module!r}: {exc}") from None
    fn = getattr(mod, func, None)
    if not callable(fn):
        raise InvalidInputError(f"module {module!r} has no function {func!r}")
    return fn


def _job_name(prefix: str, index: int) -> str:
    return f"{prefix}{index}" if prefix else f"job_{index}"


def map_function_to_jobs(client: Any, workflow_id: int, module: str, func: str, params: list[dict[str, Any]], *,
                         postprocess_func: str | None = None, module_directory: str | Path | None = None,
                         resource_requirements_id: int | None = None, scheduler_id: int | None = None,
                         start_index: int = 1, name_prefix: str = "", depends_on_job_ids: list[int] | None = None,
                         python: str | None = None) -> list[dict[str, Any]]:
    """Add one job per parameter set to a workflow (and a postprocess job when asked); returns the
    created job records, the postprocess job last. `client` is a TorcClient, a torc.TorcApi or a
    URL. The function is imported here first, so a typo fails now rather than in every job.
    `python` is the interpreter the jobs run (default: this one)."""
    from torc.client.api import as_client

    if not params:
        raise InvalidInputError("params is empty: give one dict of arguments per job")
    if not all(isinstance(p, dict) for p in params):
        raise InvalidInputError("params must be a list of dicts (one per job)")
    check_function(module, func, module_directory)
    if postprocess_func is not None:
        check_function(module, postprocess_func, module_directory)
    raw = as_client(client)
    try:
        return _map(raw, workflow_id, module, func, params, postprocess_func, module_directory,
                    resource_requirements_id, scheduler_id, start_index, name_prefix, depends_on_job_ids,
                    python or sys.executable)
    finally:
        if isinstance(client, str):
            raw.close()


def _map(raw: TorcClient, workflow_id: int, module: str, func: str, params: list[dict[str, Any]],
         postprocess_func: str | None, module_directory: str | Path | None, resource_requirements_id: int | None,
         scheduler_id: int | None, start_index: int, name_prefix: str, depends_on_job_ids: list[int] | None,
         python: str) -> list[dict[str, Any]]:
    directory = str(Path(module_directory).resolve()) if module_directory is not None else None
    names = [f"{name_prefix}{i}" if name_prefix else _job_name("", i)
             for i in range(start_index, start_index + len(params))]
    inputs = [{"workflow_id": workflow_id, "name": f"input_{name}",
               "data": {k: v for k, v in {"module": module, "func": func, "params": p, "job_name": name,
                                          "module_directory": directory}.items() if v is not None}}
              for name, p in zip(names, params, strict=True)]
    outputs = [{"workflow_id": workflow_id, "name": f"output_{name}", "data": None} for name in names]
    records = raw.post("bulk_user_data", {"user_data": inputs + outputs})["user_data"]
    ids = {r["name"]: r["id"] for r in records}
    common = {k: v for k, v in {"resource_requirements_id": resource_requirements_id,
                                "scheduler_id": scheduler_id}.items() if v is not None}
    jobs = [{"workflow_id": workflow_id, "name": name, "command": f"{python} -m torc.mapping run-function",
             "input_user_data_ids": [ids[f"input_{name}"]], "output_user_data_ids": [ids[f"output_{name}"]],
             **({"depends_on_job_ids": list(depends_on_job_ids)} if depends_on_job_ids else {}), **common}
            for name in names]
    created = raw.post("bulk_jobs", {"jobs": jobs})["jobs"]
    if postprocess_func is not None:
        pp_name = f"{name_prefix}{POSTPROCESS_NAME}"
        data = {k: v for k, v in {"module": module, "func": postprocess_func, "job_name": pp_name,
                                  "module_directory": directory}.items() if v is not None}
        pp_in = raw.post("user_data", {"workflow_id": workflow_id, "name": f"input_{pp_name}", "data": data})
        pp_out = raw.post("user_data", {"workflow_id": workflow_id, "name": f"{name_prefix}{POSTPROCESS_RESULT}",
                                        "data": None})
        created += raw.post("bulk_jobs", {"jobs": [{
            "workflow_id": workflow_id, "name": pp_name, "command": f"{python} -m torc.mapping run-postprocess",
            "input_user_data_ids": [pp_in["id"], *(ids[f"output_{n}"] for n in names)],
            "output_user_data_ids": [pp_out["id"]], "depends_on_job_ids": [j["id"] for j in created], **common,
        }]})["jobs"]
    return created


def mapped_results(client: Any, workflow_id: int, name_prefix: str = "") -> dict[str, Any]:
    """job name -> the value its function returned (None until it ran), plus `postprocess_result`
    when there is a postprocess job."""
    from torc.client.api import as_client

    raw = as_client(client)
    out: dict[str, Any] = {}
    try:
        for record in raw.iter_items("user_data", workflow_id=workflow_id):
            name = record["name"]
            if name.startswith(f"output_{name_prefix}"):
                out[name.removeprefix("output_")] = record.get("data")
            elif name == f"{name_prefix}{POSTPROCESS_RESULT}":
                out[POSTPROCESS_RESULT] = record.get("data")
    finally:
        if isinstance(client, str):
            raw.close()
    return out


# ---- inside the job --------------------------------------------------------------------------


def _job_context() -> tuple[TorcClient, int, dict[str, Any]]:
    from torc.client.api import auth_from_env

    missing = [k for k in ("TORC_API_URL", "TORC_WORKFLOW_ID", "TORC_JOB_ID") if not os.environ.get(k)]
    if missing:
        raise InvalidInputError(f"{', '.join(missing)} not set: this command runs inside a torc job")
    raw = TorcClient(os.environ["TORC_API_URL"], auth=auth_from_env(), retry_seconds=60)
    job = raw.get(f"jobs/{int(os.environ['TORC_JOB_ID'])}")
    return raw, int(os.environ["TORC_WORKFLOW_ID"]), job


def _store(raw: TorcClient, record: dict[str, Any], value: Any) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"the function's return value cannot be stored as JSON: {exc}") from None
    raw.put(f"user_data/{record['id']}", {**record, "data": value})


def _records(raw: TorcClient, ids: list[int]) -> list[dict[str, Any]]:
    return [raw.get(f"user_data/{i}") for i in ids]


def run_function() -> None:
    """The command of a mapped job: call func(params) and store its return value."""
    raw, _, job = _job_context()
    (spec,) = _records(raw, job.get("input_user_data_ids") or [])[:1]
    data = spec["data"]
    fn = check_function(data["module"], data["func"], data.get("module_directory"))
    value = fn(data.get("params") or {})
    outputs = _records(raw, job.get("output_user_data_ids") or [])
    if outputs:
        _store(raw, outputs[0], value)


def run_postprocess() -> None:
    """The command of the postprocess job: call postprocess(list of results) and store it."""
    raw, _, job = _job_context()
    records = _records(raw, job.get("input_user_data_ids") or [])
    spec = next(r for r in records if isinstance(r.get("data"), dict) and "func" in r["data"]
                and r["name"].startswith("input_"))
    results = [r.get("data") for r in sorted((r for r in records if r is not spec), key=lambda r: r["id"])]
    data = spec["data"]
    fn = check_function(data["module"], data["func"], data.get("module_directory"))
    value = fn(results)
    outputs = _records(raw, job.get("output_user_data_ids") or [])
    if outputs:
        _store(raw, outputs[0], value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m torc.mapping",
                                     description="Run a mapped Python function inside a torc job.")
    parser.add_argument("command", choices=["run-function", "run-postprocess"])
    args = parser.parse_args(argv)
    try:
        (run_function if args.command == "run-function" else run_postprocess)()
    except Exception:  # the job fails; the traceback goes to its stderr log
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

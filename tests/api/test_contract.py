"""Contract tests: the app against torc's published REST contract (tests/data/torc-api/openapi.yaml, a copy of shared/torc-api/openapi.yaml).

1. Every contract operation exists in the app's own OpenAPI document under the same operationId,
   and that document is served at /torc-service/v1/openapi.json.
2. Response shapes: a realistic workflow is built through the API, then every operation is called
   and each 200 body is validated against the contract's response schema, with strict JSON types
   (ids are integers, never floats or bools; statuses are lowercase strings; ...).
3. A schemathesis fuzz of every operation: no request ever gets a 500, and every 4xx carries
   {"error": {"message": str}}.

Where the contract and torc's real server differ, NOTES.md beside it wins (see _PATCHES).
"""

from __future__ import annotations

import copy
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator, validators

from tests.conftest import postgres_or_skip
from torc.server.app import API_PREFIX, ServerConfig, create_app
from torc.storage.postgres import PostgresStore
from torc.storage.sqlite import SqliteStore

# The project's own copy of torc 0.12's contract (from shared/torc-api/), so the tests never depend
# on what sits outside the repository.
CONTRACT_PATH = Path(__file__).resolve().parents[1] / "data" / "torc-api" / "openapi.yaml"


HTTP_METHODS = ("get", "put", "post", "delete", "patch")


CONTRACT: dict[str, Any] = yaml.safe_load(CONTRACT_PATH.read_text())
# operationId -> (METHOD, path template, operation object)
OPERATIONS: dict[str, tuple[str, str, dict[str, Any]]] = {
    op["operationId"]: (method.upper(), path, op)
    for path, item in CONTRACT["paths"].items()
    for method, op in item.items()
    if method in HTTP_METHODS
}
COMPONENTS = CONTRACT["components"]["schemas"]

# The server's statuses (NOTES: pending_failed is legal although the contract's enum lacks it).
JOB_STATUSES = [*COMPONENTS.get("job_status", {}).get("enum", []), "pending_failed"]


# ---------------------------------------------------------------------------------------------
# Schema handling
# ---------------------------------------------------------------------------------------------

def _strict_integer(checker: Any, instance: Any) -> bool:
    # The Python client uses StrictInt and the Rust client i64: 3.0 or true is not an integer.
    return isinstance(instance, int) and not isinstance(instance, bool)


StrictValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integer),
)

_STATUS_SCHEMA = {"type": "string", "enum": JOB_STATUSES}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def normalize(schema: Any, *, response: bool, seen: tuple[str, ...] = ()) -> Any:
    """A self-contained JSON Schema for one contract schema: $refs inlined and the contract's quirks
    made explicit.

    - `status: {schema: {$ref: job_status}}` (a nested `schema:` key) means a lowercase status string,
      pending_failed included.
    - A schema with `properties` but no `type` is an object (the generated clients treat it so).
    - `nullable: true` and optional properties may be null (both clients map them to Option/None).
    - In responses, every model that has an `id` property must carry it: clients need it.
    """
    if isinstance(schema, list):
        return [normalize(s, response=response, seen=seen) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        assert name not in seen, f"recursive schema {name}"
        return normalize(COMPONENTS[name], response=response, seen=(*seen, name))
    if "schema" in schema and "type" not in schema:
        return dict(_STATUS_SCHEMA)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("example", "examples", "description", "nullable", "default"):
            continue
        if key == "properties":
            out[key] = {name: normalize(sub, response=response, seen=seen) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "allOf", "anyOf", "oneOf", "not"):
            out[key] = normalize(value, response=response, seen=seen)
        else:
            out[key] = copy.deepcopy(value)
    if "properties" in out:
        out.setdefault("type", "object")
        required = list(out.get("required", []))
        if response and "id" in out["properties"] and "id" not in required:
            required.append("id")
        if required:
            out["required"] = required
        out["properties"] = {
            name: sub if name in required else _nullable(sub) for name, sub in out["properties"].items()
        }
    if schema.get("nullable"):
        return _nullable(out)
    return out


# NOTES.md: where the real server differs from the contract, the server's shape is the wire contract.
_PATCHES: dict[str, dict[str, Any]] = {
    # "/version returns a JSON string (the full version), not an object"
    "get_version": {"type": "string", "minLength": 1},
    # "GET /ping returns {"status":"ok"}"
    "ping": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
    # Not in NOTES, but the contract's `files: [string]` is wrong: torc's server and Rust client type the
    # field `Vec<i64>` (ListRequiredExistingFilesResponse in torc's api models): it holds file ids.
    "list_required_existing_files": {"type": "object", "required": ["files"], "properties": {
        "files": {"type": "array", "items": {"type": "integer"}}}},
}
# NOTES: /bulk_jobs returns {"jobs": [...]}; the claim responses always carry their jobs list.
_REQUIRED_EXTRA = {
    "create_jobs": ["jobs"],
    "claim_next_jobs": ["jobs"],
    "claim_jobs_based_on_resources": ["jobs"],
    "get_latest_event_timestamp": ["timestamp"],
}


def response_schema(op_id: str) -> dict[str, Any]:
    if op_id in _PATCHES:
        return _PATCHES[op_id]
    op = OPERATIONS[op_id][2]
    raw = op["responses"]["200"]["content"]["application/json"]["schema"]
    schema = normalize(raw, response=True)
    if op_id in _REQUIRED_EXTRA:
        schema["required"] = sorted({*schema.get("required", []), *_REQUIRED_EXTRA[op_id]})
        if op_id == "get_latest_event_timestamp":
            schema.setdefault("properties", {})["timestamp"] = {"type": "integer"}
    return schema


def schema_errors(op_id: str, body: Any) -> list[str]:
    validator = StrictValidator(response_schema(op_id))
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
    problems += _consistency_errors(body)
    return problems


def _consistency_errors(body: Any) -> list[str]:
    """Listing envelopes: count matches the page."""
    problems = []
    if isinstance(body, dict):
        if isinstance(body.get("items"), list) and isinstance(body.get("count"), int):
            if body["count"] != len(body["items"]):
                problems.append(f"count {body['count']} != len(items) {len(body['items'])}")
        if isinstance(body.get("job_ids"), list) and isinstance(body.get("count"), int):
            if body["count"] != len(body["job_ids"]):
                problems.append(f"count {body['count']} != len(job_ids) {len(body['job_ids'])}")
    return problems


def assert_error_body(resp: Any) -> None:
    """NOTES: error bodies look like {"error": {"message": "..."}}."""
    try:
        body = resp.json()
    except ValueError:
        pytest.fail(f"{resp.status_code} without a JSON body: {resp.text[:200]!r}")
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    assert isinstance(body["error"].get("message"), str) and body["error"]["message"], body


# ---------------------------------------------------------------------------------------------
# Fixtures and a contract-aware client
# ---------------------------------------------------------------------------------------------

def _open_client(app: Any) -> TestClient:
    return TestClient(app, base_url=f"http://testserver{API_PREFIX}/", raise_server_exceptions=False)


class ContractClient:
    """Calls operations by operationId and validates every 200 body against the contract."""

    def __init__(self, http: TestClient):
        self.http = http
        self.validated: set[str] = set()

    def call(self, op_id: str, *, params: dict[str, Any] | None = None, body: Any = None, expect: int = 200,
             **path: Any) -> Any:
        method, template, _ = OPERATIONS[op_id]
        url = template.format(**path).lstrip("/")
        kwargs: dict[str, Any] = {"params": params}
        if body is not None:
            kwargs["json"] = body
        resp = self.http.request(method, url, **kwargs)
        assert resp.status_code == expect, f"{op_id} {method} /{url}: {resp.status_code} {resp.text[:500]}"
        if expect != 200:
            assert_error_body(resp)
            return resp.json()
        assert resp.headers["content-type"].startswith("application/json"), resp.headers
        data = resp.json()
        problems = schema_errors(op_id, data)
        assert not problems, f"{op_id}: response violates the contract:\n  " + "\n  ".join(problems) + (
            f"\nbody: {json.dumps(data)[:2000]}")
        self.validated.add(op_id)
        return data


@pytest.fixture
def contract(http) -> ContractClient:
    return ContractClient(http)


def build_world(c: ContractClient) -> dict[str, Any]:
    """A realistic workflow, built only through the API; returns the ids of what it made."""
    ids: dict[str, Any] = {}
    wf = c.call("create_workflow", body={
        "name": "contract", "user": "tester", "description": "contract test workflow", "project": "p1",
        "metadata": '{"k": "v"}', "compute_node_wait_for_new_jobs_seconds": 0,
        "jobs_sort_method": "gpus_runtime_memory", "resource_monitor_config": '{"enabled": false}',
    })
    ids["workflow"] = w = wf["id"]

    group = c.call("create_access_group", body={"name": "team", "description": "the team"})
    ids["group"] = group["id"]
    c.call("add_user_to_group", id=group["id"], body={"user_name": "alice", "group_id": group["id"]})
    c.call("add_workflow_to_group", id=w, body={"workflow_id": w, "group_id": group["id"]})

    ids["file_in"] = c.call("create_file", body={"workflow_id": w, "name": "in", "path": "data/in.txt",
                                                  "st_mtime": 1700000000.5})["id"]
    ids["file_mid"] = c.call("create_file", body={"workflow_id": w, "name": "mid", "path": "data/mid.txt"})["id"]
    ids["file_out"] = c.call("create_file", body={"workflow_id": w, "name": "out", "path": "data/out.txt"})["id"]
    ids["ud_in"] = c.call("create_user_data", body={"workflow_id": w, "name": "config", "data": {"a": 1}})["id"]
    ids["ud_mid"] = c.call("create_user_data", body={"workflow_id": w, "name": "mid", "is_ephemeral": True})["id"]
    ids["rr"] = c.call("create_resource_requirements", body={
        "workflow_id": w, "name": "small", "num_cpus": 2, "num_gpus": 0, "num_nodes": 1, "memory": "2g",
        "runtime": "PT30M"})["id"]
    ids["fh"] = c.call("create_failure_handler", body={
        "workflow_id": w, "name": "retry", "rules": json.dumps([{"exit_codes": [42], "max_retries": 2}])})["id"]
    ids["slurm"] = c.call("create_slurm_scheduler", body={
        "workflow_id": w, "name": "short", "account": "acct", "nodes": 1, "walltime": "04:00:00",
        "partition": "debug", "qos": "normal", "mem": "10G", "gres": "gpu:1", "tmp": "1G",
        "ntasks_per_node": 4, "extra": "--exclusive"})["id"]
    ids["local"] = c.call("create_local_scheduler", body={"workflow_id": w, "name": "local", "memory": "8g",
                                                          "num_cpus": 4})["id"]

    prep, work = c.call("create_jobs", body={"jobs": [
        {"workflow_id": w, "name": "prep", "command": "python prep.py", "input_file_ids": [ids["file_in"]],
         "output_file_ids": [ids["file_mid"]], "input_user_data_ids": [ids["ud_in"]],
         "output_user_data_ids": [ids["ud_mid"]], "resource_requirements_id": ids["rr"],
         "scheduler_id": ids["local"], "failure_handler_id": ids["fh"], "supports_termination": True},
        {"workflow_id": w, "name": "work", "command": "python work.py", "input_file_ids": [ids["file_mid"]],
         "output_file_ids": [ids["file_out"]], "input_user_data_ids": [ids["ud_mid"]],
         "cancel_on_blocking_job_failure": True},
    ]})["jobs"]
    post = c.call("create_job", body={"workflow_id": w, "name": "post", "command": "python post.py",
                                      "depends_on_job_ids": [work["id"]], "invocation_script": "bash -l -c"})
    ids.update(prep=prep["id"], work=work["id"], post=post["id"])

    ids["action"] = c.call("create_workflow_action", id=w, body={
        "workflow_id": w, "trigger_type": "on_workflow_start", "action_type": "run_commands",
        "action_config": {"commands": ["echo start"]}})["id"]
    ids["job_action"] = c.call("create_workflow_action", id=w, body={
        "workflow_id": w, "trigger_type": "on_jobs_complete", "action_type": "run_commands",
        "action_config": {"commands": ["echo done"]}, "job_ids": [ids["post"]], "persistent": True})["id"]
    workers = c.call("create_remote_workers", id=w, body=["alice@node1:22", "node2"])
    ids["worker"] = workers[0]["worker"]

    c.call("initialize_jobs", id=w)
    ids["run_id"] = run_id = c.call("get_workflow_status", id=w)["run_id"]

    ids["compute_node"] = node = c.call("create_compute_node", body={
        "workflow_id": w, "hostname": "node1", "pid": 4242, "start_time": "2026-01-01T00:00:00Z",
        "num_cpus": 8, "memory_gb": 16.0, "num_gpus": 0, "num_nodes": 1, "time_limit": "PT1H",
        "is_active": True, "compute_node_type": "local", "scheduler": {"kind": "local"}})["id"]
    ids["scheduled_node"] = c.call("create_scheduled_compute_node", body={
        "workflow_id": w, "scheduler_id": 12345, "scheduler_config_id": ids["slurm"], "scheduler_type": "slurm",
        "status": "complete"})["id"]
    ids["event"] = c.call("create_event", body={"workflow_id": w, "timestamp": 1767225600000,
                                                "data": {"category": "test", "message": "hello"}})["id"]

    # Run prep to completion the way a runner does; this writes a result and unblocks work.
    (claimed,) = c.call("claim_next_jobs", id=w, params={"limit": 1})["jobs"]
    assert claimed["id"] == ids["prep"]
    c.call("start_job", id=ids["prep"], run_id=run_id, compute_node_id=node)
    c.call("complete_job", id=ids["prep"], status="completed", run_id=run_id, body={
        "job_id": ids["prep"], "workflow_id": w, "run_id": run_id, "compute_node_id": node, "return_code": 0,
        "exec_time_minutes": 0.5, "completion_time": "2026-01-01T00:01:00.000Z", "status": "completed",
        "peak_memory_bytes": 1024, "avg_memory_bytes": 512, "peak_cpu_percent": 150.5, "avg_cpu_percent": 80.0})
    # The contract's claim_action schema names `success`, torc's server answers {"claimed": true, "action_id"}.
    claim = c.call("claim_action", id=w, action_id=ids["action"], body={"compute_node_id": node})
    assert claim == {"claimed": True, "action_id": ids["action"]}
    return ids


@pytest.fixture
def world(contract) -> dict[str, Any]:
    return build_world(contract)


# ---------------------------------------------------------------------------------------------
# 1. Operations
# ---------------------------------------------------------------------------------------------

def test_contract_is_loaded():
    # Guards the parametrizations below against silently testing nothing.
    assert len(OPERATIONS) >= 100
    assert {"create_workflow", "claim_next_jobs", "complete_job", "get_version"} <= set(OPERATIONS)


@pytest.fixture(scope="module")
def app_openapi() -> dict[str, Any]:
    """The app's own OpenAPI document (generating it takes a while, so once per module; building
    the app opens no database)."""
    return create_app(ServerConfig(database=":memory:")).openapi()


@pytest.mark.parametrize("op_id", sorted(OPERATIONS))
def test_operation_exists_with_same_operation_id(app_openapi, op_id):
    method, path, op = OPERATIONS[op_id]
    doc = app_openapi
    item = doc["paths"].get(API_PREFIX + path)
    assert item is not None, f"{method} {path} is missing from the app"
    assert method.lower() in item, f"{method} {path} is missing from the app (has {sorted(item)})"
    assert item[method.lower()]["operationId"] == op_id
    # Every parameter the contract declares is accepted under the same name and location.
    declared = {(p["name"], p["in"]) for p in item[method.lower()].get("parameters", [])}
    missing = [(p["name"], p["in"]) for p in op.get("parameters", []) if (p["name"], p["in"]) not in declared]
    assert not missing, f"{op_id}: parameters missing from the app: {missing}"


def test_operation_ids_are_unique_in_app(app_openapi):
    ids = [op["operationId"] for item in app_openapi["paths"].values() for m, op in item.items()
           if m in HTTP_METHODS]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates


def test_openapi_document_is_served(app, http):
    resp = http.get("openapi.json")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    served = resp.json()
    assert served == json.loads(json.dumps(app.openapi()))
    assert served["openapi"].startswith("3.")
    served_ops = {op["operationId"] for item in served["paths"].values() for m, op in item.items()
                  if m in HTTP_METHODS}
    assert set(OPERATIONS) <= served_ops


# ---------------------------------------------------------------------------------------------
# 2. Response shapes
# ---------------------------------------------------------------------------------------------

def test_schema_normalization_is_strict():
    """The validator itself: catches the wire mistakes that break torc's clients."""
    job = {"id": 1, "workflow_id": 2, "name": "a", "command": "echo", "status": "ready"}
    assert not schema_errors("get_job", job)
    assert not schema_errors("get_job", {**job, "status": "pending_failed"})
    assert schema_errors("get_job", {**job, "id": 1.0})  # float id
    assert schema_errors("get_job", {**job, "id": True})  # bool id
    assert schema_errors("get_job", {**job, "id": "1"})  # string id
    assert schema_errors("get_job", {**job, "status": 2})  # status as int
    assert schema_errors("get_job", {**job, "status": "READY"})  # status not lowercase
    assert schema_errors("get_job", {k: v for k, v in job.items() if k != "id"})  # id missing
    assert schema_errors("get_job", {**job, "supports_termination": 1})  # int for bool
    assert schema_errors("get_event", {"id": 1, "workflow_id": 1, "timestamp": "2026-01-01", "data": {}})
    assert schema_errors("get_user_data", {"id": 1, "workflow_id": 1, "name": "x", "data": [1]})
    assert schema_errors("get_version", {"version": "1"})
    assert schema_errors("list_jobs", {"items": [job], "offset": 0, "max_limit": 10, "count": 2,
                                       "total_count": 1, "has_more": False})


GET_OPERATIONS = sorted(op_id for op_id, (method, _, _) in OPERATIONS.items() if method == "GET")


def test_every_get_response_matches_contract(contract, world):
    """Every GET operation, called on the realistic workflow, returns a body of the contract's shape."""
    c, w = contract, world["workflow"]
    listed: dict[str, Any] = {}

    def page(op_id: str, **kwargs: Any) -> list[Any]:
        body = c.call(op_id, **kwargs)
        listed[op_id] = body
        return body["items"]

    assert c.call("ping") == {"status": "ok"}
    assert isinstance(c.call("get_version"), str)

    wf = c.call("get_workflow", id=w)
    assert wf["name"] == "contract" and wf["jobs_sort_method"] == "gpus_runtime_memory"
    assert any(x["id"] == w for x in page("list_workflows"))
    assert page("list_workflows", params={"user": "tester", "is_archived": False})
    status = c.call("get_workflow_status", id=w)
    assert status["is_canceled"] is False and status["run_id"] == world["run_id"]
    assert c.call("is_workflow_complete", id=w)["is_complete"] is False
    assert c.call("is_workflow_uninitialized", id=w)["is_uninitialized"] is False
    assert c.call("list_job_ids", id=w)["job_ids"] == sorted([world["prep"], world["work"], world["post"]])
    c.call("get_latest_event_timestamp", id=w)
    c.call("list_missing_user_data", id=w)
    files = c.call("list_required_existing_files", id=w)
    assert files["files"], files
    assert page("list_job_dependencies", id=w)
    assert page("list_job_file_relationships", id=w)
    assert page("list_job_user_data_relationships", id=w)
    reqs = c.call("get_ready_job_requirements", id=w)
    assert reqs["num_jobs"] == 1  # work was unblocked by prep's completion

    jobs = page("list_jobs", params={"workflow_id": w})
    assert {j["status"] for j in jobs} == {"completed", "ready", "blocked"}
    page("list_jobs", params={"workflow_id": w, "include_relationships": True, "status": "ready"})
    page("list_jobs", params={"workflow_id": w, "upstream_job_id": world["work"]})
    page("list_jobs", params={"workflow_id": w, "needs_file_id": world["file_mid"]})
    prep = c.call("get_job", id=world["prep"])
    assert prep["status"] == "completed"
    assert prep["resource_requirements_id"] == world["rr"]
    work = c.call("get_job", id=world["work"])
    assert work["status"] == "ready"
    assert c.call("get_job", id=world["post"])["depends_on_job_ids"] == [world["work"]]

    assert page("list_files", params={"workflow_id": w})
    assert c.call("get_file", id=world["file_in"])["st_mtime"] == 1700000000.5
    assert page("list_user_data", params={"workflow_id": w})
    assert c.call("get_user_data", id=world["ud_in"])["data"] == {"a": 1}
    rrs = page("list_resource_requirements", params={"workflow_id": w})
    assert {r["name"] for r in rrs} == {"default", "small"}  # NOTES: create_workflow adds "default"
    c.call("get_resource_requirements", id=world["rr"])
    results = page("list_results", params={"workflow_id": w})
    assert [(r["job_id"], r["status"], r["return_code"]) for r in results] == [(world["prep"], "completed", 0)]
    page("list_results", params={"workflow_id": w, "all_runs": True})
    c.call("get_result", id=results[0]["id"])
    events = page("list_events", params={"workflow_id": w})
    assert any(e["id"] == world["event"] for e in events)
    event = c.call("get_event", id=world["event"])
    assert event["timestamp"] == 1767225600000 and event["data"]["message"] == "hello"
    assert page("list_compute_nodes", params={"workflow_id": w})
    node = c.call("get_compute_node", id=world["compute_node"])
    assert node["is_active"] is True and node["memory_gb"] == 16.0
    assert page("list_scheduled_compute_nodes", params={"workflow_id": w})
    c.call("get_scheduled_compute_node", id=world["scheduled_node"])
    assert page("list_slurm_schedulers", params={"workflow_id": w})
    c.call("get_slurm_scheduler", id=world["slurm"])
    assert page("list_local_schedulers", params={"workflow_id": w})
    c.call("get_local_scheduler", id=world["local"])
    assert page("list_failure_handlers", id=w)
    c.call("get_failure_handler", id=world["fh"])

    actions = c.call("get_workflow_actions", id=w)
    assert {a["id"] for a in actions} == {world["action"], world["job_action"]}
    claimed = next(a for a in actions if a["id"] == world["action"])
    assert claimed["executed"] is True and claimed["executed_by"] == world["compute_node"]
    c.call("get_pending_actions", id=w)
    c.call("get_pending_actions", id=w, params={"trigger_type": ["on_workflow_start", "on_jobs_complete"]})
    workers = c.call("list_remote_workers", id=w)
    assert {x["worker"] for x in workers} == {"alice@node1:22", "node2"}

    assert page("list_access_groups")
    c.call("get_access_group", id=world["group"])
    assert [m["user_name"] for m in page("list_group_members", id=world["group"])] == ["alice"]
    assert [g["id"] for g in page("list_user_groups", user_name="alice")] == [world["group"]]
    assert [g["id"] for g in page("list_workflow_groups", id=w)] == [world["group"]]
    assert c.call("check_workflow_access", workflow_id=w, user_name="alice")["has_access"] is True
    assert c.call("check_workflow_access", workflow_id=w, user_name="mallory")["has_access"] is False

    # Every list operation above returned at least one item, so item schemas were really exercised.
    empty = sorted(op for op, body in listed.items() if not body["items"])
    assert not empty, f"listings returned no items: {empty}"
    not_called = sorted(set(GET_OPERATIONS) - c.validated)
    assert not not_called, f"GET operations not exercised: {not_called}"


def test_every_operation_response_matches_contract(contract, world):
    """The remaining operations (updates, lifecycle, deletes) on the same workflow: every one of the
    contract's operations returns a 200 body of the contract's shape at least once."""
    c, w, run_id = contract, world["workflow"], world["run_id"]
    node = world["compute_node"]

    # PUT the full model back unchanged: accepted and a no-op (NOTES: echoing must succeed).
    for get_op, put_op, key in [
        ("get_workflow", "update_workflow", "workflow"),
        ("get_job", "update_job", "work"),
        ("get_file", "update_file", "file_in"),
        ("get_user_data", "update_user_data", "ud_in"),
        ("get_resource_requirements", "update_resource_requirements", "rr"),
        ("get_event", "update_event", "event"),
        ("get_compute_node", "update_compute_node", "compute_node"),
        ("get_scheduled_compute_node", "update_scheduled_compute_node", "scheduled_node"),
        ("get_slurm_scheduler", "update_slurm_scheduler", "slurm"),
        ("get_local_scheduler", "update_local_scheduler", "local"),
    ]:
        before = c.call(get_op, id=world[key])
        after = c.call(put_op, id=world[key], body=before)
        assert after == before, f"{put_op}: echoing the model changed it"
    result = c.call("list_results", params={"workflow_id": w})["items"][0]
    assert c.call("update_result", id=result["id"], body=result) == result
    status = c.call("get_workflow_status", id=w)
    assert c.call("update_workflow_status", id=w, body=status) == status

    # Lifecycle: work runs and fails; retry it, fail it for good, then reset and re-run.
    c.call("process_changed_job_inputs", id=w, params={"dry_run": True})
    claimed = c.call("claim_jobs_based_on_resources", id=w, limit=5, body={
        "num_cpus": 8, "memory_gb": 16.0, "num_gpus": 0, "num_nodes": 1, "time_limit": "P0DT1H"})["jobs"]
    assert [j["id"] for j in claimed] == [world["work"]]
    job = c.call("start_job", id=world["work"], run_id=run_id, compute_node_id=node)
    assert job["status"] == "running"
    failure = {"job_id": world["work"], "workflow_id": w, "run_id": run_id, "compute_node_id": node,
               "return_code": 1, "exec_time_minutes": 0.1, "completion_time": "2026-01-01T00:02:00Z",
               "status": "failed"}
    job = c.call("complete_job", id=world["work"], status="failed", run_id=run_id, body=failure)
    assert job["status"] == "failed"
    job = c.call("retry_job", id=world["work"], run_id=run_id)
    assert job["status"] == "ready" and job["attempt_id"] == 2
    job = c.call("manage_status_change", id=world["work"], status="pending", run_id=run_id)
    assert job["status"] == "pending"
    c.call("reset_job_status", id=w, params={"failed_only": True})
    reset = c.call("reset_job_status", id=w)
    assert reset["status"] == "uninitialized" and reset["updated_count"] == 3
    c.call("reset_workflow_status", id=w)
    c.call("initialize_jobs", id=w, params={"only_uninitialized": False})
    c.call("claim_next_jobs", id=w)
    c.call("cancel_workflow", id=w)
    assert c.call("get_workflow_status", id=w)["is_canceled"] is True

    # Direct creates not covered by the world.
    extra = c.call("create_result", body={**failure, "job_id": world["post"], "status": "canceled",
                                          "return_code": -1})
    assert extra["status"] == "canceled"

    # Deletes, one record at a time, then every "delete all".
    c.call("remove_user_from_group", id=world["group"], user_name="alice")
    c.call("remove_workflow_from_group", id=w, group_id=world["group"])
    c.call("delete_access_group", id=world["group"])
    c.call("delete_remote_worker", id=w, worker=world["worker"])
    c.call("delete_result", id=extra["id"])
    c.call("delete_event", id=world["event"])
    c.call("delete_compute_node", id=node)
    c.call("delete_scheduled_compute_node", id=world["scheduled_node"])
    c.call("delete_job", id=world["post"])
    c.call("delete_file", id=world["file_out"])
    c.call("delete_user_data", id=world["ud_mid"])
    c.call("delete_failure_handler", id=world["fh"])
    c.call("delete_jobs", params={"workflow_id": w})
    c.call("delete_resource_requirement", id=world["rr"])
    c.call("delete_slurm_scheduler", id=world["slurm"])
    c.call("delete_local_scheduler", id=world["local"])
    for op_id in ("delete_files", "delete_all_user_data", "delete_resource_requirements", "delete_results",
                  "delete_events", "delete_compute_nodes", "delete_scheduled_compute_nodes",
                  "delete_local_schedulers", "delete_slurm_schedulers"):
        c.call(op_id, params={"workflow_id": w})
    deleted = c.call("delete_workflow", id=w)
    assert deleted["id"] == w
    c.call("get_workflow", id=w, expect=404)

    missing = sorted(set(OPERATIONS) - set(GET_OPERATIONS) - c.validated)
    assert not missing, f"operations not exercised: {missing}"


def test_error_responses_have_contract_shape(contract, world):
    """404s and 422s carry {"error": {"message": str}} (NOTES), for typical client mistakes."""
    c = contract
    c.call("get_workflow", id=10**6, expect=404)
    c.call("get_job", id=10**6, expect=404)
    c.call("get_failure_handler", id=10**6, expect=404)
    c.call("list_jobs", params={"workflow_id": "abc"}, expect=422)
    c.call("create_job", body={"workflow_id": world["workflow"], "name": 5}, expect=422)
    c.call("create_jobs", body={"jobs": [{"workflow_id": 10**6, "name": "x", "command": "y"}]}, expect=404)
    c.call("complete_job", id=world["work"], status="not-a-status", run_id=world["run_id"], body={}, expect=422)
    c.call("create_resource_requirements", body={"workflow_id": world["workflow"], "name": "default"},
           expect=422)


def test_out_of_range_integers_are_client_errors(contract, world):
    """Integers beyond 64 bits (legal JSON; torc's server parses ids as i64) are a 4xx, never a 500."""
    c, big = contract, 2**64
    c.call("get_workflow", id=big, expect=422)
    c.call("list_jobs", params={"workflow_id": big}, expect=422)
    c.call("list_files", params={"workflow_id": world["workflow"], "offset": big}, expect=422)
    c.call("create_job", body={"workflow_id": big, "name": "a", "command": "b"}, expect=422)
    c.call("create_event", body={"workflow_id": world["workflow"], "timestamp": big, "data": {}}, expect=422)


# ---------------------------------------------------------------------------------------------
# 3. Fuzz: schemathesis cases from the contract, sent to the app in-process
# ---------------------------------------------------------------------------------------------

FUZZ_EXAMPLES = 6  # per operation and generation mode (and at most): ~1,300 requests in all, 20-30 s


@pytest.fixture(scope="module")
def fuzz_templates(tmp_path_factory) -> Iterator[Callable[[str], tuple[str, dict[str, Any]]]]:
    """Per backend, a database holding the realistic workflow, built once; every fuzzed operation gets
    a copy (SQLite: a file backup; PostgreSQL: CREATE DATABASE ... TEMPLATE, ~80 ms)."""
    built: dict[str, tuple[str, dict[str, Any]]] = {}
    dropped: list[str] = []

    def build(store: Any) -> dict[str, Any]:
        try:
            app = create_app(ServerConfig(completion_check_interval_secs=0.2), store=store)
            with _open_client(app) as http:
                ids = build_world(ContractClient(http))
                ids["result"] = http.get("results", params={"workflow_id": ids["workflow"]}).json()["items"][0]["id"]
        finally:
            store.close()
        return ids

    def get(backend: str) -> tuple[str, dict[str, Any]]:
        if backend not in built:
            if backend == "sqlite":
                path = tmp_path_factory.mktemp("fuzz") / "template.db"
                built[backend] = (str(path), build(SqliteStore(path)))
            else:
                url, name = _pg_database("torc_fuzz_template")
                dropped.append(name)
                built[backend] = (name, build(PostgresStore(url, max_size=2)))
        return built[backend]

    yield get
    for name in dropped:
        _pg_admin(f"DROP DATABASE IF EXISTS {name}")


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(postgres_or_skip(), autocommit=True) as conn:
        conn.execute(sql)


def _pg_database(prefix: str, template: str | None = None) -> tuple[str, str]:
    """A new database on the test server (a copy of `template` if given): (its URL, its name)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _pg_admin(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    return make_conninfo(**{**conninfo_to_dict(postgres_or_skip()), "dbname": name}), name


@pytest.fixture
def fuzz_http(tmp_path, backend, fuzz_templates) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    template, ids = fuzz_templates(backend)
    if backend == "sqlite":
        copy_path = tmp_path / "fuzz.db"
        src, dst = sqlite3.connect(template), sqlite3.connect(copy_path)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        store: Any = SqliteStore(copy_path)
        name = None
    else:
        url, name = _pg_database("torc_fuzz", template=template)
        store = PostgresStore(url, max_size=4)
    try:
        with _open_client(create_app(ServerConfig(completion_check_interval_secs=0.2), store=store)) as http:
            yield http, ids
    finally:
        store.close()
        if name:
            _pg_admin(f"DROP DATABASE IF EXISTS {name}")


# Which id a path's `{id}` means, by its first segment.
_ID_BY_SEGMENT = {
    "workflows": "workflow", "access_check": "workflow", "jobs": "work", "files": "file_in", "user_data": "ud_in",
    "resource_requirements": "rr", "results": "result", "events": "event", "compute_nodes": "compute_node",
    "scheduled_compute_nodes": "scheduled_node", "slurm_schedulers": "slurm", "local_schedulers": "local",
    "failure_handlers": "fh", "access_groups": "group",
}


def _known_path_parameters(path: str, op: dict[str, Any], ids: dict[str, Any]) -> dict[str, Any]:
    """Path parameters naming records that exist, so fuzzed bodies reach the handlers' logic."""
    known = {"action_id": ids["action"], "group_id": ids["group"], "user_name": "alice", "worker": "node2",
             "workflow_id": ids["workflow"], "run_id": ids["run_id"], "compute_node_id": ids["compute_node"],
             "status": "completed", "limit": 5}
    segment = path.split("/")[1]
    if segment in _ID_BY_SEGMENT:
        known["id"] = ids[_ID_BY_SEGMENT[segment]]
    return {p["name"]: known[p["name"]] for p in op.get("parameters", []) if p["in"] == "path"}


def _fuzz_problem(resp: Any) -> str | None:
    if resp.status_code >= 500:
        return f"server error {resp.status_code}: {resp.text[:300]}"
    if resp.status_code >= 400:
        try:
            body = resp.json()
        except ValueError:
            return f"{resp.status_code} without a JSON body: {resp.text[:200]!r}"
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict) or not isinstance(error.get("message"), str) or not error["message"]:
            return f"{resp.status_code} without {{'error': {{'message': str}}}}: {resp.text[:300]}"
    return None


def test_fuzz_oracle_flags_bad_responses():
    import httpx

    def resp(status: int, body: Any) -> httpx.Response:
        return httpx.Response(status, content=body if isinstance(body, bytes) else json.dumps(body).encode())

    assert _fuzz_problem(resp(200, {"id": 1})) is None
    assert _fuzz_problem(resp(422, {"error": {"message": "bad"}})) is None
    assert _fuzz_problem(resp(404, {"error": {"message": "no such job"}, "code": 404})) is None
    assert _fuzz_problem(resp(500, {"error": {"message": "internal server error"}}))
    assert _fuzz_problem(resp(422, {"detail": [{"msg": "field required"}]}))  # FastAPI's default shape
    assert _fuzz_problem(resp(400, {"error": "bad"}))
    assert _fuzz_problem(resp(404, {"error": {"message": ""}}))
    assert _fuzz_problem(resp(405, b"Method Not Allowed"))


@pytest.mark.slow
@pytest.mark.parametrize("op_id", sorted(OPERATIONS))
def test_fuzz_operation_never_errors(fuzz_http, op_id):
    """Schemathesis cases for one operation, valid (positive) and schema-violating (negative: wrong
    types, missing fields, malformed JSON), with random ids and with ids that exist: no 500s, and
    every 4xx carries {"error": {"message": str}}."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    http, ids = fuzz_http
    method, path, op = OPERATIONS[op_id]
    operation = _fuzz_schema().find_operation_by_id(op_id)
    has_query = any(p["in"] == "query" for p in op.get("parameters", []))
    has_body = "requestBody" in op
    known_path = _known_path_parameters(path, op, ids)
    known_query = {"workflow_id": ids["workflow"]} if any(
        p["in"] == "query" and p["name"] == "workflow_id" for p in op.get("parameters", [])) else None

    problems: dict[tuple[int, str], str] = {}
    sent = {"count": 0}

    def send(case: Any) -> None:
        kwargs = case.as_transport_kwargs(base_url=f"http://testserver{API_PREFIX}")
        request: dict[str, Any] = {"params": kwargs.get("params") or None}
        if "json" in kwargs:
            request["json"] = kwargs["json"]
        elif kwargs.get("data") is not None:
            request["content"] = kwargs["data"]
        headers = {k: v for k, v in kwargs["headers"].items() if k.lower() == "content-type"}
        resp = http.request(kwargs["method"], kwargs["url"], headers=headers, **request)
        sent["count"] += 1
        problem = _fuzz_problem(resp)
        if problem:
            body = kwargs.get("json", kwargs.get("data"))
            problems.setdefault((resp.status_code, problem[:60]), (
                f"{kwargs['method']} {kwargs['url']} params={kwargs.get('params')} body={body!r:.300}\n"
                f"      -> {problem}"))

    modes = [GenerationMode.POSITIVE]
    if op.get("parameters") or has_body:
        modes.append(GenerationMode.NEGATIVE)
    for mode in modes:
        strategies = [operation.as_strategy(mode)]
        # Negative cases need something left to break once the ids are fixed.
        if (known_path or known_query) and (mode == GenerationMode.POSITIVE or has_query or has_body):
            strategies.append(operation.as_strategy(mode, path_parameters=known_path or None, query=known_query))

        @settings(max_examples=FUZZ_EXAMPLES, derandomize=True, database=None, deadline=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=st.one_of(strategies))
        def run(case: Any) -> None:
            send(case)

        run()

    # Operations without inputs have a single case; the others get FUZZ_EXAMPLES per mode at most.
    assert sent["count"] >= (FUZZ_EXAMPLES if has_body else 1), f"only {sent['count']} requests were sent"
    assert not problems, f"{op_id}: {len(problems)} kinds of bad responses:\n  " + "\n  ".join(problems.values())


_FUZZ_SCHEMA: list[Any] = []


def _fuzz_schema() -> Any:
    """The contract loaded by schemathesis (once: loading it takes a while)."""
    if not _FUZZ_SCHEMA:
        import schemathesis

        _FUZZ_SCHEMA.append(schemathesis.openapi.from_dict(copy.deepcopy(CONTRACT)))
    return _FUZZ_SCHEMA[0]

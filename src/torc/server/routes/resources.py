"""Generic CRUD routes for the simple workflow-scoped resources, generated from one template.

Each resource gets create/list/delete-all on /{segment} and get/update/delete on
/{segment}/{id}, with its own body model and list filters so the OpenAPI document is exact.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query

from torc.api import models as m
from torc.server.deps import get_ctx
from torc.server.fastjson import FastJSONRoute
from torc.server.responses import JSON
from torc.service import crud
from torc.service.context import Context
from torc.storage import tables as t

router = APIRouter(route_class=FastJSONRoute)
Ctx = Annotated[Context, Depends(get_ctx)]
AnyBody = Annotated[dict[str, Any] | None, Body()]

# segment -> (table, body model, singular op name, plural op name, list filters, create-only query params)
RESOURCES: dict[str, tuple[t.Table, type[m.Model], str, str, dict[str, type], dict[str, type]]] = {
    "files": (t.FILE, m.file_model, "file", "files",
              {"produced_by_job_id": int, "name": str, "path": str, "is_output": bool}, {}),
    "user_data": (t.USER_DATA, m.user_data_model, "user_data", "user_data",
                  {"consumer_job_id": int, "producer_job_id": int, "name": str, "is_ephemeral": bool},
                  {"consumer_job_id": int, "producer_job_id": int}),
    "resource_requirements": (t.RESOURCE_REQUIREMENTS, m.resource_requirements_model, "resource_requirements",
                              "resource_requirements",
                              {"job_id": int, "name": str, "memory": str, "num_cpus": int, "num_gpus": int,
                               "num_nodes": int, "runtime": str}, {}),
    "results": (t.RESULT, m.result_model, "result", "results",
                {"job_id": int, "run_id": int, "return_code": int, "status": str, "all_runs": bool,
                 "compute_node_id": int}, {}),
    "events": (t.EVENT, m.event_model, "event", "events", {"category": str, "after_timestamp": int}, {}),
    "compute_nodes": (t.COMPUTE_NODE, m.compute_node_model, "compute_node", "compute_nodes",
                      {"hostname": str, "is_active": bool, "scheduled_compute_node_id": int}, {}),
    "scheduled_compute_nodes": (t.SCHEDULED_COMPUTE_NODE, m.scheduled_compute_nodes_model,
                                "scheduled_compute_node", "scheduled_compute_nodes",
                                {"scheduler_id": int, "scheduler_config_id": int, "status": str}, {}),
    "slurm_schedulers": (t.SLURM_SCHEDULER, m.slurm_scheduler_model, "slurm_scheduler", "slurm_schedulers",
                         {"name": str, "account": str, "gres": str, "mem": str, "nodes": int, "partition": str,
                          "qos": str, "tmp": str, "walltime": str}, {}),
    "local_schedulers": (t.LOCAL_SCHEDULER, m.local_scheduler_model, "local_scheduler", "local_schedulers",
                         {"memory": str, "num_cpus": int}, {}),
}

# Operation ids torc uses where they do not follow the singular/plural pattern.
_OP_OVERRIDES = {
    ("user_data", "delete_all"): "delete_all_user_data",
    ("resource_requirements", "delete_one"): "delete_resource_requirement",
}


def _query_params(params: dict[str, type]) -> list[inspect.Parameter]:
    return [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[kind | None, Query()],
                          default=None)
        for name, kind in params.items()
    ]


def _ctx_param() -> inspect.Parameter:
    return inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Ctx)


def _register(segment: str) -> None:
    table, model, one, many, filters, create_params = RESOURCES[segment]

    def op(kind: str, default: str) -> str:
        return _OP_OVERRIDES.get((segment, kind), default)

    def create(ctx: Context, body: Any, **extra: Any):
        return JSON(crud.create(ctx, table, body.values(), **extra))

    create.__signature__ = inspect.Signature([
        _ctx_param(),
        inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=model),
        *_query_params(create_params),
    ])
    router.add_api_route(f"/{segment}", create, methods=["POST"], operation_id=op("create", f"create_{one}"),
                         response_model=model, name=f"create_{one}")

    def list_(ctx: Context, workflow_id: int, offset: int = 0, limit: int | None = None, sort_by: str | None = None,
              reverse_sort: bool = False, **flt: Any):
        return JSON(crud.list_(ctx, table, workflow_id, flt, offset, limit, sort_by, reverse_sort))

    list_.__signature__ = inspect.Signature([
        _ctx_param(),
        inspect.Parameter("workflow_id", inspect.Parameter.KEYWORD_ONLY, annotation=int),
        inspect.Parameter("offset", inspect.Parameter.KEYWORD_ONLY, annotation=int, default=0),
        inspect.Parameter("limit", inspect.Parameter.KEYWORD_ONLY, annotation=int | None, default=None),
        inspect.Parameter("sort_by", inspect.Parameter.KEYWORD_ONLY, annotation=str | None, default=None),
        inspect.Parameter("reverse_sort", inspect.Parameter.KEYWORD_ONLY, annotation=bool, default=False),
        *_query_params(filters),
    ])
    router.add_api_route(f"/{segment}", list_, methods=["GET"], operation_id=op("list", f"list_{many}"),
                         response_model=m.Page[model], name=f"list_{many}")

    def delete_all(ctx: Ctx, workflow_id: int, body: AnyBody = None):
        result = crud.delete_all(ctx, table, workflow_id)
        return JSON({**result, "deleted_count": result["count"]})

    router.add_api_route(f"/{segment}", delete_all, methods=["DELETE"],
                         operation_id=op("delete_all", f"delete_{many}"), name=f"delete_{many}")

    def get(ctx: Ctx, id: int):
        return JSON(crud.get(ctx, table, id))

    router.add_api_route(f"/{segment}/{{id}}", get, methods=["GET"], operation_id=op("get", f"get_{one}"),
                         response_model=model, name=f"get_{one}")

    update_model = type(f"{model.__name__}_update", (model,), {
        "__annotations__": {"workflow_id": int | None}, "workflow_id": None,
    })

    def update(ctx: Context, id: int, body: Any):
        return JSON(crud.update(ctx, table, id, body.values()))

    update.__signature__ = inspect.Signature([
        _ctx_param(),
        inspect.Parameter("id", inspect.Parameter.KEYWORD_ONLY, annotation=int),
        inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=update_model),
    ])
    router.add_api_route(f"/{segment}/{{id}}", update, methods=["PUT"], operation_id=op("update", f"update_{one}"),
                         response_model=model, name=f"update_{one}")

    def delete_one(ctx: Ctx, id: int, body: AnyBody = None):
        return JSON(crud.delete(ctx, table, id))

    router.add_api_route(f"/{segment}/{{id}}", delete_one, methods=["DELETE"],
                         operation_id=op("delete_one", f"delete_{one}"), response_model=model, name=f"delete_{one}")


for _segment in RESOURCES:
    _register(_segment)


@router.post("/compute_nodes/{id}/heartbeat", operation_id="compute_node_heartbeat")
def compute_node_heartbeat(ctx: Ctx, id: int, body: AnyBody = None):
    """Extension: a runner's periodic sign of life."""
    return JSON(crud.heartbeat(ctx, id))


@router.post("/bulk_files", operation_id="create_files")
def create_files(ctx: Ctx, body: m.files_model):
    """Extension: create many files of one workflow in one request (returned in input order)."""
    return JSON({"files": crud.create_many(ctx, t.FILE, [f.values() for f in body.files])})


@router.post("/bulk_user_data", operation_id="create_many_user_data")
def create_many_user_data(ctx: Ctx, body: m.user_data_batch_model):
    """Extension: create many user data records of one workflow in one request."""
    return JSON({"user_data": crud.create_many(ctx, t.USER_DATA, [u.values() for u in body.user_data])})


# Failure handlers: create/get/delete here, listing under /workflows/{id}/failure_handlers.
@router.post("/failure_handlers", operation_id="create_failure_handler", response_model=m.failure_handler_model)
def create_failure_handler(ctx: Ctx, body: m.failure_handler_model):
    return JSON(crud.create(ctx, t.FAILURE_HANDLER, body.values()))


@router.get("/failure_handlers/{id}", operation_id="get_failure_handler", response_model=m.failure_handler_model)
def get_failure_handler(ctx: Ctx, id: int):
    return JSON(crud.get(ctx, t.FAILURE_HANDLER, id))


@router.delete("/failure_handlers/{id}", operation_id="delete_failure_handler", response_model=m.failure_handler_model)
def delete_failure_handler(ctx: Ctx, id: int, body: AnyBody = None):
    return JSON(crud.delete(ctx, t.FAILURE_HANDLER, id))

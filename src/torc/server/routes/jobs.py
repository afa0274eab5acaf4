"""/jobs, /bulk_jobs and the per-job lifecycle operations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends

from torc.api import models as m
from torc.core.errors import InvalidInputError
from torc.server.deps import get_ctx
from torc.server.fastjson import FastJSONRoute
from torc.server.responses import JSON
from torc.service import jobs, lifecycle
from torc.service.context import Context

router = APIRouter(route_class=FastJSONRoute)
Ctx = Annotated[Context, Depends(get_ctx)]
AnyBody = Annotated[dict[str, Any] | None, Body()]


@router.post("/bulk_jobs", operation_id="create_jobs")
def create_jobs(ctx: Ctx, body: m.jobs_model):
    return JSON(jobs.create_jobs(ctx, [j.values() for j in body.jobs]))


@router.post("/jobs", operation_id="create_job", response_model=m.job_model)
def create_job(ctx: Ctx, body: m.job_model):
    return JSON(jobs.create_job(ctx, body.values()))


@router.get("/jobs", operation_id="list_jobs", response_model=m.Page[m.job_model])
def list_jobs(
    ctx: Ctx,
    workflow_id: int,
    status: str | None = None,
    needs_file_id: int | None = None,
    upstream_job_id: int | None = None,
    offset: int = 0,
    limit: int | None = None,
    sort_by: str | None = None,
    reverse_sort: bool = False,
    include_relationships: bool = False,
    active_compute_node_id: int | None = None,
):
    return JSON(jobs.list_jobs(
        ctx, workflow_id, status, needs_file_id, upstream_job_id, active_compute_node_id, offset, limit, sort_by,
        reverse_sort, include_relationships,
    ))


@router.delete("/jobs", operation_id="delete_jobs")
def delete_jobs(ctx: Ctx, workflow_id: int, body: AnyBody = None):
    return JSON(jobs.delete_jobs(ctx, workflow_id))


@router.get("/jobs/{id}", operation_id="get_job", response_model=m.job_model)
def get_job(ctx: Ctx, id: int):
    return JSON(jobs.get_job(ctx, id))


@router.put("/jobs/{id}", operation_id="update_job", response_model=m.job_model)
def update_job(ctx: Ctx, id: int, body: m.job_update_model):
    return JSON(jobs.update_job(ctx, id, body.values()))


@router.delete("/jobs/{id}", operation_id="delete_job", response_model=m.job_model)
def delete_job(ctx: Ctx, id: int, body: AnyBody = None):
    return JSON(jobs.delete_job(ctx, id))


@router.post("/jobs/{id}/complete_job/{status}/{run_id}", operation_id="complete_job", response_model=m.job_model)
def complete_job(ctx: Ctx, id: int, status: str, run_id: int, body: m.completion_result_model):
    return JSON(lifecycle.complete_job(ctx, id, status, run_id, body.values()))


@router.put("/jobs/{id}/manage_status_change/{status}/{run_id}", operation_id="manage_status_change",
            response_model=m.job_model)
def manage_status_change(ctx: Ctx, id: int, status: str, run_id: int, body: AnyBody = None):
    return JSON(lifecycle.manage_status_change(ctx, id, status, run_id))


@router.put("/jobs/{id}/start_job/{run_id}/{compute_node_id}", operation_id="start_job", response_model=m.job_model)
def start_job(ctx: Ctx, id: int, run_id: int, compute_node_id: int, body: AnyBody = None):
    return JSON(lifecycle.start_job(ctx, id, run_id, compute_node_id))


@router.post("/jobs/{id}/retry/{run_id}", operation_id="retry_job", response_model=m.job_model)
def retry_job(ctx: Ctx, id: int, run_id: int, max_retries: int | None = None, body: AnyBody = None):
    # torc's client sends max_retries as a query parameter; the contract models a body, which
    # may also carry the failed attempt's result so that every attempt keeps a result row.
    body = dict(body or {})
    if max_retries is None:
        max_retries = body.pop("max_retries", None)
    if max_retries is not None and (not isinstance(max_retries, int) or max_retries < 0):
        raise InvalidInputError(f"max_retries must be a non-negative integer, found {max_retries!r}")
    result = m.completion_result_model.model_validate(body).values() if body else {}
    return JSON(lifecycle.retry_job(ctx, id, run_id, 3 if max_retries is None else max_retries, result))

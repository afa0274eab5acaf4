"""/workflows and the workflow-level operations under /workflows/{id}/..."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request

from torc.api import models as m
from torc.server.authz import visible_to
from torc.server.deps import get_ctx
from torc.server.fastjson import FastJSONRoute
from torc.server.responses import JSON
from torc.service import access, actions, file_hashes, lifecycle, workflows
from torc.service.context import Context

router = APIRouter(route_class=FastJSONRoute)
Ctx = Annotated[Context, Depends(get_ctx)]
AnyBody = Annotated[dict[str, Any] | None, Body()]


@router.get("/workflows", operation_id="list_workflows", response_model=m.Page[m.workflow_model])
def list_workflows(
    ctx: Ctx,
    request: Request,
    offset: int = 0,
    limit: int | None = None,
    sort_by: str | None = None,
    reverse_sort: bool = False,
    name: str | None = None,
    user: str | None = None,
    description: str | None = None,
    is_archived: bool | None = None,
):
    filters = {"name": name, "user": user, "description": description, "is_archived": is_archived,
               "visible_to": visible_to(request)}
    return JSON(workflows.list_workflows(ctx, filters, offset, limit, sort_by, reverse_sort))


@router.post("/workflows", operation_id="create_workflow", response_model=m.workflow_model)
def create_workflow(ctx: Ctx, body: m.workflow_model):
    return JSON(workflows.create_workflow(ctx, body.values()))


@router.get("/workflows/{id}", operation_id="get_workflow", response_model=m.workflow_model)
def get_workflow(ctx: Ctx, id: int):
    return JSON(workflows.get_workflow(ctx, id))


@router.put("/workflows/{id}", operation_id="update_workflow", response_model=m.workflow_model)
def update_workflow(ctx: Ctx, id: int, body: m.workflow_update_model):
    return JSON(workflows.update_workflow(ctx, id, body.values()))


@router.delete("/workflows/{id}", operation_id="delete_workflow", response_model=m.workflow_model)
def delete_workflow(ctx: Ctx, id: int, body: AnyBody = None):
    return JSON(workflows.delete_workflow(ctx, id))


@router.get("/workflows/{id}/status", operation_id="get_workflow_status", response_model=m.workflow_status_model)
def get_workflow_status(ctx: Ctx, id: int):
    return JSON(workflows.get_status(ctx, id))


@router.put("/workflows/{id}/status", operation_id="update_workflow_status", response_model=m.workflow_status_model)
def update_workflow_status(ctx: Ctx, id: int, body: m.workflow_status_model):
    return JSON(workflows.update_status(ctx, id, body.values()))


@router.put("/workflows/{id}/cancel", operation_id="cancel_workflow")
def cancel_workflow(ctx: Ctx, id: int, body: AnyBody = None):
    workflows.cancel_workflow(ctx, id)
    return JSON(workflows.get_status(ctx, id))


@router.post("/workflows/{id}/initialize_jobs", operation_id="initialize_jobs")
def initialize_jobs(
    ctx: Ctx, id: int, only_uninitialized: bool = False, clear_ephemeral_user_data: bool = True, body: AnyBody = None
):
    return JSON(lifecycle.initialize_jobs(ctx, id, only_uninitialized))


@router.get("/workflows/{id}/is_complete", operation_id="is_workflow_complete")
def is_workflow_complete(ctx: Ctx, id: int):
    return JSON(workflows.is_complete(ctx, id))


@router.get("/workflows/{id}/is_uninitialized", operation_id="is_workflow_uninitialized")
def is_workflow_uninitialized(ctx: Ctx, id: int):
    return JSON(workflows.is_uninitialized(ctx, id))


@router.get("/workflows/{id}/job_counts", operation_id="get_job_counts")
def get_job_counts(ctx: Ctx, id: int):
    """Extension: the number of jobs in each status, for progress displays."""
    return JSON(workflows.job_counts(ctx, id))


@router.get("/workflows/{id}/job_ids", operation_id="list_job_ids")
def list_job_ids(ctx: Ctx, id: int):
    return JSON(workflows.job_ids(ctx, id))


@router.get("/workflows/{id}/latest_event_timestamp", operation_id="get_latest_event_timestamp")
def get_latest_event_timestamp(ctx: Ctx, id: int):
    return JSON(workflows.latest_event_timestamp(ctx, id))


@router.get("/workflows/{id}/missing_user_data", operation_id="list_missing_user_data")
def list_missing_user_data(ctx: Ctx, id: int):
    return JSON(workflows.missing_user_data(ctx, id))


@router.get("/workflows/{id}/required_existing_files", operation_id="list_required_existing_files")
def list_required_existing_files(ctx: Ctx, id: int):
    return JSON(workflows.required_existing_files(ctx, id))


@router.post("/workflows/{id}/process_changed_job_inputs", operation_id="process_changed_job_inputs")
def process_changed_job_inputs(ctx: Ctx, id: int, dry_run: bool = False, body: AnyBody = None):
    return JSON(lifecycle.process_changed_job_inputs(ctx, id, dry_run))


@router.get("/workflows/{id}/ready_job_requirements", operation_id="get_ready_job_requirements")
def get_ready_job_requirements(ctx: Ctx, id: int, scheduler_config_id: int | None = None):
    return JSON(lifecycle.ready_job_requirements(ctx, id, scheduler_config_id))


@router.post("/workflows/{id}/claim_jobs_based_on_resources/{limit}", operation_id="claim_jobs_based_on_resources")
def claim_jobs_based_on_resources(
    ctx: Ctx,
    id: int,
    limit: int,
    body: m.compute_nodes_resources,
    sort_method: str | None = None,
    strict_scheduler_match: bool = False,
    prefetch: bool = False,
):
    """The body's `id`, when given, is the claiming compute node. `prefetch` (an extension): each
    job must fit the offer on its own; only `limit` bounds how many are claimed."""
    return JSON(lifecycle.claim_jobs_based_on_resources(
        ctx, id, limit, body.model_dump(), sort_method, strict_scheduler_match, prefetch))


@router.post("/workflows/{id}/claim_next_jobs", operation_id="claim_next_jobs")
def claim_next_jobs(ctx: Ctx, id: int, limit: int = 10, compute_node_id: int | None = None, body: AnyBody = None):
    """`compute_node_id` (an extension) records the claiming runner on the jobs."""
    return JSON(lifecycle.claim_next_jobs(ctx, id, limit, compute_node_id))


@router.post("/workflows/{id}/release_jobs", operation_id="release_jobs")
def release_jobs(ctx: Ctx, id: int, body: m.release_jobs_model):
    """Extension: claimed (pending) jobs a runner did not start go back to ready."""
    return JSON(lifecycle.release_jobs(ctx, id, body.job_ids))


@router.post("/workflows/{id}/reset_status", operation_id="reset_workflow_status")
def reset_workflow_status(ctx: Ctx, id: int, force: bool = False, body: AnyBody = None):
    return JSON(lifecycle.reset_workflow_status(ctx, id, force))


@router.post("/workflows/{id}/reset_job_status", operation_id="reset_job_status")
def reset_job_status(ctx: Ctx, id: int, failed_only: bool = False, body: AnyBody = None):
    return JSON(lifecycle.reset_job_status(ctx, id, failed_only))


@router.post("/workflows/{id}/start_jobs", operation_id="start_jobs")
def start_jobs(ctx: Ctx, id: int, body: m.start_jobs_model):
    """Extension: mark many claimed jobs running in one request and transaction."""
    return JSON(lifecycle.start_jobs(ctx, id, body.run_id, body.compute_node_id, body.job_ids))


@router.post("/workflows/{id}/complete_jobs", operation_id="complete_jobs")
def complete_jobs(ctx: Ctx, id: int, body: m.complete_jobs_model):
    """Extension: complete many jobs of one run in a single request and transaction."""
    items = [{"job_id": j.job_id, "status": j.status, "result": j.result.values() if j.result else {}}
             for j in body.jobs]
    return JSON(lifecycle.complete_jobs(ctx, id, body.run_id, items))


@router.get("/workflows/{id}/file_hashes", operation_id="list_file_hashes", response_model=m.file_content_hashes_model)
def list_file_hashes(ctx: Ctx, id: int):
    """Extension: the SHA-256 content hashes of the workflow's input files (`reinitialize --hash`)."""
    return JSON(file_hashes.list_file_hashes(ctx, id))


@router.put("/workflows/{id}/file_hashes", operation_id="replace_file_hashes",
            response_model=m.file_content_hashes_model)
def replace_file_hashes(ctx: Ctx, id: int, body: m.file_content_hashes_model):
    """Extension: replace the workflow's whole set of file content hashes in one transaction."""
    return JSON(file_hashes.replace_file_hashes(ctx, id, [i.values() for i in body.items]))


@router.get("/workflows/{id}/job_dependencies", operation_id="list_job_dependencies")
def list_job_dependencies(ctx: Ctx, id: int, offset: int = 0, limit: int | None = None):
    return JSON(workflows.job_dependencies(ctx, id, offset, limit))


@router.get("/workflows/{id}/job_file_relationships", operation_id="list_job_file_relationships")
def list_job_file_relationships(ctx: Ctx, id: int, offset: int = 0, limit: int | None = None):
    return JSON(workflows.job_file_relationships(ctx, id, offset, limit))


@router.get("/workflows/{id}/job_user_data_relationships", operation_id="list_job_user_data_relationships")
def list_job_user_data_relationships(ctx: Ctx, id: int, offset: int = 0, limit: int | None = None):
    return JSON(workflows.job_user_data_relationships(ctx, id, offset, limit))


@router.get("/workflows/{id}/failure_handlers", operation_id="list_failure_handlers")
def list_failure_handlers(ctx: Ctx, id: int, offset: int = 0, limit: int | None = None):
    return JSON(workflows.list_failure_handlers(ctx, id, offset, limit))


@router.post("/workflows/{id}/actions", operation_id="create_workflow_action", response_model=m.workflow_action_model)
def create_workflow_action(ctx: Ctx, id: int, body: m.workflow_action_model):
    return JSON(actions.create_action(ctx, id, body.values()))


@router.get("/workflows/{id}/actions", operation_id="get_workflow_actions")
def get_workflow_actions(ctx: Ctx, id: int):
    return JSON(actions.list_actions(ctx, id))


@router.get("/workflows/{id}/actions/pending", operation_id="get_pending_actions")
def get_pending_actions(ctx: Ctx, id: int, trigger_type: Annotated[list[str] | None, Query()] = None):
    return JSON(actions.pending_actions(ctx, id, trigger_type))


@router.post("/workflows/{id}/actions/{action_id}/claim", operation_id="claim_action")
def claim_action(ctx: Ctx, id: int, action_id: int, body: AnyBody = None):
    node = (body or {}).get("compute_node_id")
    if node is not None and not isinstance(node, int):
        from torc.core.errors import InvalidInputError

        raise InvalidInputError(f"compute_node_id must be an integer, found {node!r}")
    return JSON(actions.claim_action(ctx, id, action_id, node))


@router.post("/workflows/{id}/actions/{action_id}/retire", operation_id="retire_action")
def retire_action(ctx: Ctx, id: int, action_id: int):
    """Extension: mark an action executed whether or not it has triggered (regenerated plans)."""
    return JSON(actions.retire_action(ctx, id, action_id))


@router.post("/workflows/{id}/remote_workers", operation_id="create_remote_workers")
def create_remote_workers(ctx: Ctx, id: int, body: Annotated[list[str], Body()]):
    return JSON(workflows.add_remote_workers(ctx, id, body))


@router.get("/workflows/{id}/remote_workers", operation_id="list_remote_workers")
def list_remote_workers(ctx: Ctx, id: int):
    return JSON(workflows.list_remote_workers(ctx, id))


@router.delete("/workflows/{id}/remote_workers/{worker}", operation_id="delete_remote_worker")
def delete_remote_worker(ctx: Ctx, id: int, worker: str):
    return JSON(workflows.delete_remote_worker(ctx, id, worker))


@router.post("/workflows/{id}/access_groups", operation_id="add_workflow_to_group")
def add_workflow_to_group(ctx: Ctx, id: int, body: m.workflow_access_group_model):
    return JSON(access.add_workflow_group(ctx, id, body.group_id))


@router.get("/workflows/{id}/access_groups", operation_id="list_workflow_groups")
def list_workflow_groups(ctx: Ctx, id: int):
    return JSON(access.list_workflow_groups(ctx, id))


@router.delete("/workflows/{id}/access_groups/{group_id}", operation_id="remove_workflow_from_group")
def remove_workflow_from_group(ctx: Ctx, id: int, group_id: int, body: AnyBody = None):
    return JSON(access.remove_workflow_group(ctx, id, group_id))

"""Access groups, memberships and access checks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request

from torc.api import models as m
from torc.server.authz import visible_to
from torc.server.deps import get_ctx
from torc.server.fastjson import FastJSONRoute
from torc.server.responses import JSON
from torc.service import access
from torc.service.context import Context

router = APIRouter(route_class=FastJSONRoute)
Ctx = Annotated[Context, Depends(get_ctx)]
AnyBody = Annotated[dict[str, Any] | None, Body()]


@router.post("/access_groups", operation_id="create_access_group", response_model=m.access_group_model)
def create_access_group(ctx: Ctx, body: m.access_group_model):
    return JSON(access.create_group(ctx, body.values()))


@router.get("/access_groups", operation_id="list_access_groups")
def list_access_groups(ctx: Ctx, request: Request, offset: int = 0, limit: int | None = None):
    return JSON(access.list_groups(ctx, offset, limit, member=visible_to(request)))


@router.get("/access_groups/{id}", operation_id="get_access_group", response_model=m.access_group_model)
def get_access_group(ctx: Ctx, id: int):
    return JSON(access.get_group(ctx, id))


@router.delete("/access_groups/{id}", operation_id="delete_access_group", response_model=m.access_group_model)
def delete_access_group(ctx: Ctx, id: int, body: AnyBody = None):
    return JSON(access.delete_group(ctx, id))


@router.post("/access_groups/{id}/members", operation_id="add_user_to_group",
             response_model=m.user_group_membership_model)
def add_user_to_group(ctx: Ctx, id: int, body: m.user_group_membership_model):
    return JSON(access.add_member(ctx, id, body.values()))


@router.get("/access_groups/{id}/members", operation_id="list_group_members")
def list_group_members(ctx: Ctx, id: int, offset: int = 0, limit: int | None = None):
    return JSON(access.list_members(ctx, id, offset, limit))


@router.delete("/access_groups/{id}/members/{user_name}", operation_id="remove_user_from_group")
def remove_user_from_group(ctx: Ctx, id: int, user_name: str, body: AnyBody = None):
    return JSON(access.remove_member(ctx, id, user_name))


@router.get("/users/{user_name}/groups", operation_id="list_user_groups")
def list_user_groups(ctx: Ctx, user_name: str, offset: int = 0, limit: int | None = None):
    return JSON(access.list_user_groups(ctx, user_name, offset, limit))


@router.get("/access_check/{workflow_id}/{user_name}", operation_id="check_workflow_access")
def check_workflow_access(ctx: Ctx, workflow_id: int, user_name: str):
    return JSON(access.check_access(ctx, workflow_id, user_name))

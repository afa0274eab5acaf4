"""Access control (`torc-server run --enforce-access-control`) on every API endpoint.

`authorize` is a dependency of every API router. It finds the rule of the matched route and checks
it before the handler runs:

- routes under /workflows/{id}/... check workflow `id`;
- routes by record id (/jobs/{id}/..., /files/{id}, /results/{id}, ...) look up the record's
  workflow and check it;
- collection routes (GET/DELETE /files?workflow_id=...) check the `workflow_id` query parameter;
  creates check the body's workflow_id (every record of a bulk create);
- the few routes that fit no pattern have an explicit rule in OVERRIDES (access groups, creating a
  workflow, ping/version). A route with no rule is refused (fail closed), so a new endpoint cannot
  silently skip the check; tests/auth/test_access_control.py walks every route.

List endpoints that are not workflow-scoped filter instead (list_workflows, list_access_groups),
through `visible_to`. Admins (--admin-user) pass every check; anonymous callers get 401.
Decision: a record that exists but belongs to a workflow the caller may not access is a 403 (as in
torc); a record that does not exist is a 404.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from fastapi import Request

from torc.core.errors import ForbiddenError, UnauthorizedError
from torc.server.auth import Identity, current_identity
from torc.service import authz
from torc.service.context import Context
from torc.storage.base import Connection

log = logging.getLogger("torc.server.authz")


@dataclass(frozen=True)
class Call:
    """What a rule may look at: the caller, path and query parameters, and the JSON body."""

    who: Identity
    path: dict[str, Any]
    query: Any
    body: Any


Check = Callable[[Connection, Call], None]

# URL segment -> (table, what to call a record in messages)
SEGMENTS: dict[str, tuple[str, str]] = {
    "jobs": ("job", "job"),
    "files": ("file", "file"),
    "user_data": ("user_data", "user data"),
    "resource_requirements": ("resource_requirements", "resource requirements"),
    "results": ("result", "result"),
    "events": ("event", "event"),
    "compute_nodes": ("compute_node", "compute node"),
    "scheduled_compute_nodes": ("scheduled_compute_node", "scheduled compute node"),
    "slurm_schedulers": ("slurm_scheduler", "Slurm scheduler"),
    "local_schedulers": ("local_scheduler", "local scheduler"),
    "failure_handlers": ("failure_handler", "failure handler"),
}
BULK_SEGMENTS = {"bulk_jobs": "jobs", "bulk_files": "files", "bulk_user_data": "user_data"}


def _int(value: Any) -> int | None:
    """An id from the request, or None when it is not an integer (the handler then answers 422)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def require_workflow_access(conn: Connection, who: Identity, workflow_id: Any) -> None:
    workflow_id = _int(workflow_id)
    if workflow_id is None:
        return
    if not authz.can_access(conn, who.name, workflow_id):
        raise ForbiddenError(f"user {who.name!r} has no access to workflow {workflow_id}")


# ---- rule builders ---------------------------------------------------------------------------


def workflow_in_path(param: str = "id") -> Check:
    return lambda conn, call: require_workflow_access(conn, call.who, call.path.get(param))


def record_in_path(table: str, kind: str, param: str = "id") -> Check:
    def check(conn: Connection, call: Call) -> None:
        record_id = _int(call.path.get(param))
        if record_id is not None:
            require_workflow_access(conn, call.who, authz.workflow_of(conn, table, record_id, kind))
        workflow_in_body(conn, call)  # an update must not move a record into someone else's workflow
    return check


def workflow_in_query(conn: Connection, call: Call) -> None:
    require_workflow_access(conn, call.who, call.query.get("workflow_id"))


def workflow_in_body(conn: Connection, call: Call) -> None:
    if isinstance(call.body, dict):
        require_workflow_access(conn, call.who, call.body.get("workflow_id"))


def workflows_in_body_list(key: str) -> Check:
    def check(conn: Connection, call: Call) -> None:
        items = call.body.get(key) if isinstance(call.body, dict) else None
        ids = {item.get("workflow_id") for item in items or () if isinstance(item, dict)}
        for workflow_id in sorted(i for i in ids if _int(i) is not None):
            require_workflow_access(conn, call.who, workflow_id)
    return check


def anyone_authenticated(conn: Connection, call: Call) -> None:
    """Allowed; the handler filters what it returns (visible_to)."""


def admin_only(conn: Connection, call: Call) -> None:
    raise ForbiddenError(f"only administrators may do this (user {call.who.name!r} is not one)")


def create_workflow(conn: Connection, call: Call) -> None:
    owner = call.body.get("user") if isinstance(call.body, dict) else None
    if owner is not None and owner != call.who.name:
        raise ForbiddenError(f"user {call.who.name!r} may not create a workflow owned by {owner!r}")


def group_member(param: str = "id") -> Check:
    def check(conn: Connection, call: Call) -> None:
        group_id = _int(call.path.get(param))
        if group_id is not None and authz.group_role(conn, call.who.name, group_id) is None:
            raise ForbiddenError(f"user {call.who.name!r} is not a member of access group {group_id}")
    return check


def group_admin(param: str = "id") -> Check:
    def check(conn: Connection, call: Call) -> None:
        group_id = _int(call.path.get(param))
        if group_id is not None and authz.group_role(conn, call.who.name, group_id) != "admin":
            raise ForbiddenError(f"user {call.who.name!r} is not an admin of access group {group_id}")
    return check


def self_only(param: str = "user_name") -> Check:
    def check(conn: Connection, call: Call) -> None:
        if call.path.get(param) != call.who.name:
            raise ForbiddenError(f"user {call.who.name!r} may only list their own groups")
    return check


def workflow_owner_or_group_admin(group_from: str) -> Check:
    """Linking a workflow to a group: the workflow's owner, or an admin of the group."""
    def check(conn: Connection, call: Call) -> None:
        workflow_id = _int(call.path.get("id"))
        if workflow_id is None:
            return
        if authz.workflow_owner(conn, workflow_id) == call.who.name:
            return
        source = call.body if group_from == "body" else call.path
        group_id = _int(source.get("group_id")) if isinstance(source, dict) else None
        if group_id is not None and authz.group_role(conn, call.who.name, group_id) == "admin":
            return
        raise ForbiddenError(f"user {call.who.name!r} neither owns workflow {workflow_id} nor administers "
                             f"access group {group_id}")
    return check


PUBLIC = "public"
OVERRIDES: dict[str, Check | str] = {
    "ping": PUBLIC,
    "get_version": PUBLIC,
    "list_workflows": anyone_authenticated,
    "create_workflow": create_workflow,
    "add_workflow_to_group": workflow_owner_or_group_admin("body"),
    "remove_workflow_from_group": workflow_owner_or_group_admin("path"),
    "create_access_group": admin_only,
    "delete_access_group": admin_only,
    "list_access_groups": anyone_authenticated,
    "get_access_group": group_member(),
    "list_group_members": group_member(),
    "add_user_to_group": group_admin(),
    "remove_user_from_group": group_admin(),
    "list_user_groups": self_only(),
    "check_workflow_access": workflow_in_path("workflow_id"),
}


def rule_for(operation_id: str | None, path: str, method: str) -> Check | str | None:
    """The check of one route: its override, else derived from the path template."""
    if operation_id in OVERRIDES:
        return OVERRIDES[operation_id]
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "workflows" and parts[1] == "{id}":
        return workflow_in_path()
    if not parts:
        return None
    if parts[0] in BULK_SEGMENTS and len(parts) == 1 and method == "POST":
        return workflows_in_body_list(BULK_SEGMENTS[parts[0]])
    if parts[0] in SEGMENTS:
        table, kind = SEGMENTS[parts[0]]
        if len(parts) >= 2 and parts[1] == "{id}":
            return record_in_path(table, kind)
        if len(parts) == 1:
            return workflow_in_body if method == "POST" else workflow_in_query
    return None


def _strip_prefix(path: str) -> str:
    from torc.server.app import API_PREFIX

    return path.removeprefix(API_PREFIX)


async def authorize(request: Request) -> None:
    """The access check of every API route (a no-op unless --enforce-access-control)."""
    policy = getattr(request.app.state, "auth_settings", None)
    if policy is None or not policy.enforce_access_control:
        return
    route = request.scope.get("route")
    operation_id = getattr(route, "operation_id", None)
    path = _strip_prefix(getattr(route, "path", ""))
    rule = rule_for(operation_id, path, request.method)
    if rule is None:
        log.error("no access rule for %s %s (%s): refused", request.method, path, operation_id)
        raise ForbiddenError(f"no access rule for {request.method} {path}; refused")
    if rule == PUBLIC:
        return
    who = current_identity(request)
    if not who.authenticated:
        raise UnauthorizedError("authentication required: this server enforces access control")
    if who.is_admin or rule is anyone_authenticated:
        return
    body = None
    if request.method in ("POST", "PUT", "PATCH"):
        try:
            body = await request.json()
        except ValueError:
            body = None  # the handler answers 422
    call = Call(who, dict(request.path_params), request.query_params, body)
    ctx: Context = request.app.state.ctx

    def run() -> None:
        with ctx.store.read() as conn:
            rule(conn, call)

    await anyio.to_thread.run_sync(run)


def visible_to(request: Request) -> str | None:
    """For list endpoints that filter: the user whose records to show, or None for everything."""
    policy = getattr(request.app.state, "auth_settings", None)
    if policy is None or not policy.enforce_access_control:
        return None
    who = current_identity(request)
    return None if who.is_admin else who.name

"""Access groups: teams of users that can be granted access to workflows.

Enforcement (who may call what) comes with authentication; this module keeps the records
and answers "can this user access this workflow".
"""

from __future__ import annotations

from typing import Any

from torc.core.errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError
from torc.service.common import now_iso, page_bounds, require_workflow
from torc.service.context import Context
from torc.storage.base import Connection
from torc.storage.tables import ACCESS_GROUP, MEMBERSHIP

Values = dict[str, Any]
ROLES = ("member", "admin")


def _access_page(conn: Connection, sql: str, params: tuple, count_sql: str, offset: int, limit: int | None,
                 convert) -> Values:
    offset, limit = page_bounds(offset, limit, 10_000)
    total = conn.scalar(count_sql, params)
    rows = conn.fetchall(sql + " LIMIT ? OFFSET ?", (*params, limit, offset))
    items = [convert(r) for r in rows]
    return {"items": items, "offset": offset, "limit": limit, "total_count": total,
            "has_more": offset + len(items) < total}


def _require_group(conn: Connection, group_id: int) -> Values:
    row = conn.fetchone("SELECT * FROM access_group WHERE id = ?", (group_id,))
    if row is None:
        raise NotFoundError.for_id("access group", group_id)
    return row


def create_group(ctx: Context, body: Values) -> Values:
    name = (body.get("name") or "").strip()
    if not name:
        raise InvalidInputError("access group name must not be empty")
    with ctx.store.write() as conn:
        if conn.scalar("SELECT 1 FROM access_group WHERE name = ?", (name,)):
            raise ConflictError(f"access group {name!r} already exists")
        group_id = conn.insert("INSERT INTO access_group (name, description, created_at) VALUES (?, ?, ?)",
                               (name, body.get("description"), now_iso()))
        return ACCESS_GROUP.to_wire(_require_group(conn, group_id))


def list_groups(ctx: Context, offset: int = 0, limit: int | None = None, member: str | None = None) -> Values:
    """All groups, or only those `member` belongs to (access control for non-admins)."""
    with ctx.store.read() as conn:
        if member is not None:
            mine = " WHERE id IN (SELECT group_id FROM user_group_membership WHERE user_name = ?)"
            return _access_page(conn, f"SELECT * FROM access_group{mine} ORDER BY id", (member,),
                                f"SELECT COUNT(*) FROM access_group{mine}", offset, limit, ACCESS_GROUP.to_wire)
        return _access_page(conn, "SELECT * FROM access_group ORDER BY id", (),
                            "SELECT COUNT(*) FROM access_group", offset, limit, ACCESS_GROUP.to_wire)


def get_group(ctx: Context, group_id: int) -> Values:
    with ctx.store.read() as conn:
        return ACCESS_GROUP.to_wire(_require_group(conn, group_id))


def delete_group(ctx: Context, group_id: int) -> Values:
    with ctx.store.write() as conn:
        row = _require_group(conn, group_id)
        if row["is_system"]:
            raise ForbiddenError(f"access group {row['name']!r} is a system group and cannot be deleted")
        conn.execute("DELETE FROM access_group WHERE id = ?", (group_id,))
        return ACCESS_GROUP.to_wire(row)


def add_member(ctx: Context, group_id: int, body: Values) -> Values:
    user = (body.get("user_name") or "").strip()
    role = body.get("role") or "member"
    if not user:
        raise InvalidInputError("user_name must not be empty")
    if role not in ROLES:
        raise InvalidInputError(f"invalid role {role!r}; expected one of {', '.join(ROLES)}")
    with ctx.store.write() as conn:
        group = _require_group(conn, group_id)
        if group["is_system"]:
            raise ForbiddenError(f"system group {group['name']!r} is managed by the server configuration")
        if conn.scalar("SELECT 1 FROM user_group_membership WHERE user_name = ? AND group_id = ?", (user, group_id)):
            raise ConflictError(f"user {user!r} is already a member of group {group_id}")
        member_id = conn.insert(
            "INSERT INTO user_group_membership (user_name, group_id, role, created_at) VALUES (?, ?, ?, ?)",
            (user, group_id, role, now_iso()),
        )
        return MEMBERSHIP.to_wire(conn.fetchone("SELECT * FROM user_group_membership WHERE id = ?", (member_id,)))


def list_members(ctx: Context, group_id: int, offset: int = 0, limit: int | None = None) -> Values:
    with ctx.store.read() as conn:
        _require_group(conn, group_id)
        return _access_page(conn, "SELECT * FROM user_group_membership WHERE group_id = ? ORDER BY id", (group_id,),
                            "SELECT COUNT(*) FROM user_group_membership WHERE group_id = ?", offset, limit,
                            MEMBERSHIP.to_wire)


def remove_member(ctx: Context, group_id: int, user_name: str) -> Values:
    with ctx.store.write() as conn:
        group = _require_group(conn, group_id)
        if group["is_system"]:
            raise ForbiddenError(f"system group {group['name']!r} is managed by the server configuration")
        row = conn.fetchone("SELECT * FROM user_group_membership WHERE group_id = ? AND user_name = ?",
                            (group_id, user_name))
        if row is None:
            raise NotFoundError(f"user {user_name!r} is not a member of access group {group_id}")
        conn.execute("DELETE FROM user_group_membership WHERE id = ?", (row["id"],))
        return MEMBERSHIP.to_wire(row)


def list_user_groups(ctx: Context, user_name: str, offset: int = 0, limit: int | None = None) -> Values:
    with ctx.store.read() as conn:
        return _access_page(
            conn, "SELECT g.* FROM access_group g JOIN user_group_membership m ON m.group_id = g.id"
            " WHERE m.user_name = ? ORDER BY g.id", (user_name,),
            "SELECT COUNT(*) FROM user_group_membership WHERE user_name = ?", offset, limit, ACCESS_GROUP.to_wire)


def add_workflow_group(ctx: Context, workflow_id: int, group_id: int) -> Values:
    with ctx.store.write() as conn:
        require_workflow(conn, workflow_id)
        _require_group(conn, group_id)
        if conn.scalar("SELECT 1 FROM workflow_access_group WHERE workflow_id = ? AND group_id = ?",
                       (workflow_id, group_id)):
            raise ConflictError(f"access group {group_id} already has access to workflow {workflow_id}")
        created = now_iso()
        conn.execute("INSERT INTO workflow_access_group (workflow_id, group_id, created_at) VALUES (?, ?, ?)",
                     (workflow_id, group_id, created))
    return {"workflow_id": workflow_id, "group_id": group_id, "created_at": created}


def list_workflow_groups(ctx: Context, workflow_id: int) -> Values:
    with ctx.store.read() as conn:
        require_workflow(conn, workflow_id)
        return _access_page(
            conn, "SELECT g.* FROM access_group g JOIN workflow_access_group w ON w.group_id = g.id"
            " WHERE w.workflow_id = ? ORDER BY g.id", (workflow_id,),
            "SELECT COUNT(*) FROM workflow_access_group WHERE workflow_id = ?", 0, None, ACCESS_GROUP.to_wire)


def remove_workflow_group(ctx: Context, workflow_id: int, group_id: int) -> Values:
    with ctx.store.write() as conn:
        require_workflow(conn, workflow_id)
        row = conn.fetchone("SELECT * FROM workflow_access_group WHERE workflow_id = ? AND group_id = ?",
                            (workflow_id, group_id))
        if row is None:
            raise NotFoundError(f"access group {group_id} is not linked to workflow {workflow_id}")
        conn.execute("DELETE FROM workflow_access_group WHERE workflow_id = ? AND group_id = ?",
                     (workflow_id, group_id))
        return row


def check_access(ctx: Context, workflow_id: int, user_name: str) -> Values:
    with ctx.store.read() as conn:
        workflow = require_workflow(conn, workflow_id)
        allowed = workflow["user"] == user_name or bool(conn.scalar(
            "SELECT EXISTS (SELECT 1 FROM user_group_membership m JOIN access_group g ON g.id = m.group_id"
            " WHERE m.user_name = ? AND (g.is_system = 1 AND g.name = 'admin' OR m.group_id IN"
            " (SELECT group_id FROM workflow_access_group WHERE workflow_id = ?)))",
            (user_name, workflow_id),
        ))
    return {"has_access": allowed, "user_name": user_name, "workflow_id": workflow_id}

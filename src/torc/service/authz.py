"""The questions access control asks the database: which workflow a record belongs to, whether a
user may access a workflow, a user's role in an access group, and the system `admin` group.

A user may access a workflow when they own it (workflow.user) or belong to an access group linked
to it. Admins (members of the system `admin` group) may access everything; that is decided by the
caller from the server's --admin-user list, which this module copies into the database at start.
"""

from __future__ import annotations

import logging

from torc.core.errors import NotFoundError
from torc.service.common import now_iso
from torc.service.context import Context
from torc.storage.base import Connection

log = logging.getLogger("torc.service.authz")
ADMIN_GROUP = "admin"

# Tables whose rows carry a workflow_id, as named in the schema (the callers map URL segments here).
WORKFLOW_SCOPED_TABLES = frozenset({
    "job", "file", "user_data", "resource_requirements", "failure_handler", "slurm_scheduler",
    "local_scheduler", "compute_node", "scheduled_compute_node", "result", "event",
})

# SQL condition on workflow alias `w`: the workflow is accessible to the user (two parameters: user, user).
ACCESSIBLE_WORKFLOW_SQL = (
    '(w."user" = ? OR'
    " w.id IN (SELECT a.workflow_id FROM workflow_access_group a"
    " JOIN user_group_membership m ON m.group_id = a.group_id WHERE m.user_name = ?))"
)


def workflow_of(conn: Connection, table: str, record_id: int, kind: str) -> int:
    """The workflow id of one record; NotFoundError when there is no such record."""
    if table not in WORKFLOW_SCOPED_TABLES:
        raise ValueError(f"{table} is not a workflow-scoped table")
    row = conn.fetchone(f"SELECT workflow_id FROM {table} WHERE id = ?", (record_id,))
    if row is None:
        raise NotFoundError.for_id(kind, record_id)
    return row["workflow_id"]


def workflow_owner(conn: Connection, workflow_id: int) -> str:
    # "user" quoted: a reserved word in PostgreSQL
    row = conn.fetchone('SELECT "user" AS owner FROM workflow WHERE id = ?', (workflow_id,))
    if row is None:
        raise NotFoundError.for_id("workflow", workflow_id)
    return row["owner"]


def can_access(conn: Connection, user: str, workflow_id: int) -> bool:
    """Owner or member of a linked group; NotFoundError when the workflow does not exist."""
    if workflow_owner(conn, workflow_id) == user:
        return True
    return bool(conn.scalar(
        "SELECT 1 FROM workflow_access_group a JOIN user_group_membership m ON m.group_id = a.group_id"
        " WHERE a.workflow_id = ? AND m.user_name = ? LIMIT 1", (workflow_id, user)))


def group_role(conn: Connection, user: str, group_id: int) -> str | None:
    """The user's role in the group ("member" or "admin"), None when not a member;
    NotFoundError when the group does not exist."""
    if not conn.scalar("SELECT 1 FROM access_group WHERE id = ?", (group_id,)):
        raise NotFoundError.for_id("access group", group_id)
    row = conn.fetchone("SELECT role FROM user_group_membership WHERE group_id = ? AND user_name = ?",
                        (group_id, user))
    return row["role"] if row else None


def rebuild_admin_group(ctx: Context, users: tuple[str, ...] | list[str]) -> None:
    """Make the system `admin` group hold exactly `users` (called at every server start)."""
    with ctx.store.write() as conn:
        row = conn.fetchone("SELECT id, is_system FROM access_group WHERE name = ?", (ADMIN_GROUP,))
        if row is None and not users:
            return
        if row is None:
            group_id = conn.insert(
                "INSERT INTO access_group (name, description, is_system, created_at) VALUES (?, ?, 1, ?)",
                (ADMIN_GROUP, "System administrators (from torc-server --admin-user)", now_iso()))
        else:
            group_id = row["id"]
            if not row["is_system"]:
                log.warning("the access group 'admin' becomes the system admin group; its members are replaced")
                conn.execute("UPDATE access_group SET is_system = 1 WHERE id = ?", (group_id,))
        conn.execute("DELETE FROM user_group_membership WHERE group_id = ?", (group_id,))
        for user in dict.fromkeys(users):
            conn.execute("INSERT INTO user_group_membership (user_name, group_id, role, created_at)"
                         " VALUES (?, ?, 'admin', ?)", (user, group_id, now_iso()))

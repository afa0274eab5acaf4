"""`torc access-groups`: teams of users that share workflows (enforced with torc-server
--enforce-access-control). Creating and deleting groups needs a server admin; adding members needs
a server or group admin; sharing a workflow needs its owner or a group admin."""

from __future__ import annotations

import click

from torc.cli.common import done, note, pass_session, show_record, show_rows
from torc.cli.session import Session

GROUP_COLUMNS = ["id", "name", "description", "created_at"]
MEMBER_COLUMNS = ["id", "user_name", "group_id", "role", "created_at"]


@click.group("access-groups")
def access_groups() -> None:
    """Access groups: share workflows with teams of users."""


@access_groups.command("create")
@click.argument("name")
@click.option("-d", "--description", default=None, help="What the group is for.")
@pass_session
def create(session: Session, name: str, description: str | None) -> None:
    """Create a group (server admins only)."""
    group = session.client().post("access_groups", {"name": name, "description": description})
    done(session, f"Created access group {group['name']!r} (id {group['id']}).", group)


@access_groups.command("list")
@pass_session
def list_(session: Session) -> None:
    """List groups (all for admins, otherwise the groups you belong to when access control is on)."""
    show_rows(session, list(session.client().iter_items("access_groups")), GROUP_COLUMNS, "access groups")


@access_groups.command("get")
@click.argument("group_id", type=int)
@pass_session
def get(session: Session, group_id: int) -> None:
    """Show one group."""
    show_record(session, session.client().get(f"access_groups/{group_id}"), f"access group {group_id}")


@access_groups.command("delete")
@click.argument("group_id", type=int)
@pass_session
def delete(session: Session, group_id: int) -> None:
    """Delete a group (server admins only; the system admin group cannot be deleted)."""
    group = session.client().delete(f"access_groups/{group_id}")
    done(session, f"Deleted access group {group['name']!r} (id {group_id}).", group)


@access_groups.command("add-user")
@click.argument("group_id", type=int)
@click.argument("user_name")
@click.option("-r", "--role", type=click.Choice(["member", "admin"]), default="member", show_default=True,
              help="A group admin may add and remove members and share workflows with the group.")
@pass_session
def add_user(session: Session, group_id: int, user_name: str, role: str) -> None:
    """Add a user to a group."""
    member = session.client().post(f"access_groups/{group_id}/members", {"user_name": user_name, "role": role})
    done(session, f"Added {user_name} to access group {group_id} as {role}.", member)


@access_groups.command("remove-user")
@click.argument("group_id", type=int)
@click.argument("user_name")
@pass_session
def remove_user(session: Session, group_id: int, user_name: str) -> None:
    """Remove a user from a group."""
    member = session.client().delete(f"access_groups/{group_id}/members/{user_name}")
    done(session, f"Removed {user_name} from access group {group_id}.", member)


@access_groups.command("list-members")
@click.argument("group_id", type=int)
@pass_session
def list_members(session: Session, group_id: int) -> None:
    """List the members of a group."""
    members = list(session.client().iter_items(f"access_groups/{group_id}/members"))
    show_rows(session, members, MEMBER_COLUMNS, f"members of access group {group_id}")


@access_groups.command("list-user-groups")
@click.argument("user_name")
@pass_session
def list_user_groups(session: Session, user_name: str) -> None:
    """List the groups a user belongs to."""
    groups = list(session.client().iter_items(f"users/{user_name}/groups"))
    show_rows(session, groups, GROUP_COLUMNS, f"access groups of {user_name}")


@access_groups.command("add-workflow")
@click.argument("workflow_id", type=int)
@click.argument("group_id", type=int)
@pass_session
def add_workflow(session: Session, workflow_id: int, group_id: int) -> None:
    """Share a workflow with a group."""
    link = session.client().post(f"workflows/{workflow_id}/access_groups", {"group_id": group_id})
    done(session, f"Shared workflow {workflow_id} with access group {group_id}.", link)


@access_groups.command("remove-workflow")
@click.argument("workflow_id", type=int)
@click.argument("group_id", type=int)
@pass_session
def remove_workflow(session: Session, workflow_id: int, group_id: int) -> None:
    """Stop sharing a workflow with a group."""
    link = session.client().delete(f"workflows/{workflow_id}/access_groups/{group_id}")
    done(session, f"Workflow {workflow_id} is no longer shared with access group {group_id}.", link)


@access_groups.command("list-workflow-groups")
@click.argument("workflow_id", type=int)
@pass_session
def list_workflow_groups(session: Session, workflow_id: int) -> None:
    """List the groups a workflow is shared with."""
    groups = session.client().get(f"workflows/{workflow_id}/access_groups")["items"]
    show_rows(session, groups, GROUP_COLUMNS, f"access groups of workflow {workflow_id}")


@access_groups.command("check")
@click.argument("workflow_id", type=int)
@click.argument("user_name")
@pass_session
def check(session: Session, workflow_id: int, user_name: str) -> None:
    """Whether a user may access a workflow."""
    result = session.client().get(f"access_check/{workflow_id}/{user_name}")
    if session.fmt != "json":
        note(f"User {user_name} {'has' if result['has_access'] else 'does not have'} access to "
             f"workflow {workflow_id}.")
    else:
        done(session, "", result)

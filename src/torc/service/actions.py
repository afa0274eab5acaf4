"""Workflow actions: stored commands or allocations that fire when their trigger is met.

trigger_count rises as trigger events happen; an action is pending once it reaches
required_triggers and is not yet executed (persistent actions stay claimable by every worker).
"""

from __future__ import annotations

import json
from typing import Any

from torc.core.errors import ConflictError, InvalidInputError, NotFoundError
from torc.core.status import DONE, JobStatus
from torc.service.common import now_iso, require_workflow
from torc.service.context import Context
from torc.service.relationships import in_clause
from torc.storage.base import Connection
from torc.storage.tables import WORKFLOW_ACTION

Values = dict[str, Any]

JOB_TRIGGERS = ("on_jobs_ready", "on_jobs_complete")
TRIGGERS = ("on_workflow_start", "on_workflow_complete", *JOB_TRIGGERS, "on_worker_start", "on_worker_complete")
WORKER_TRIGGERS = ("on_worker_start", "on_worker_complete")
ACTION_TYPES = ("run_commands", "schedule_nodes")


def _validate(body: Values) -> None:
    trigger = body.get("trigger_type")
    if trigger not in TRIGGERS:
        raise InvalidInputError(f"invalid trigger_type {trigger!r}; expected one of {', '.join(TRIGGERS)}")
    action = body.get("action_type")
    if action not in ACTION_TYPES:
        raise InvalidInputError(f"invalid action_type {action!r}; expected one of {', '.join(ACTION_TYPES)}")
    config = body.get("action_config")
    if not isinstance(config, dict):
        raise InvalidInputError(f"action_config must be a JSON object, found {type(config).__name__}")
    if action == "run_commands":
        commands = config.get("commands")
        if not isinstance(commands, list) or not commands or not all(isinstance(c, str) for c in commands):
            raise InvalidInputError("run_commands action_config needs 'commands': a non-empty list of strings")
    if action == "schedule_nodes":
        if not config.get("scheduler_type"):
            raise InvalidInputError("schedule_nodes action_config needs 'scheduler_type' (e.g. 'slurm')")
        if "scheduler_id" not in config:
            raise InvalidInputError("schedule_nodes action_config needs 'scheduler_id'")
    if trigger in JOB_TRIGGERS and not body.get("job_ids"):
        raise InvalidInputError(f"{trigger} actions need a non-empty job_ids list")


def create_action(ctx: Context, workflow_id: int, body: Values) -> Values:
    body = {**body, "workflow_id": workflow_id}
    _validate(body)
    job_ids = sorted(set(body.get("job_ids") or []))
    with ctx.store.write() as conn:
        require_workflow(conn, workflow_id)
        if job_ids:
            found = set(conn.column(f"SELECT id FROM job WHERE workflow_id = ? AND id IN {in_clause(job_ids)}",
                                    (workflow_id,)))
            missing = [j for j in job_ids if j not in found]
            if missing:
                raise NotFoundError(f"action job_ids {missing} not found in workflow {workflow_id}")
        required = len(job_ids) if body["trigger_type"] in JOB_TRIGGERS else 1
        action_id = conn.insert(
            "INSERT INTO workflow_action (workflow_id, trigger_type, action_type, action_config, job_ids,"
            " required_triggers, persistent, is_recovery) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (workflow_id, body["trigger_type"], body["action_type"], json.dumps(body["action_config"]),
             json.dumps(job_ids) if job_ids else None, required, int(bool(body.get("persistent"))),
             int(bool(body.get("is_recovery")))),
        )
        return WORKFLOW_ACTION.to_wire(conn.fetchone("SELECT * FROM workflow_action WHERE id = ?", (action_id,)))


def list_actions(ctx: Context, workflow_id: int) -> list[Values]:
    with ctx.store.read() as conn:
        require_workflow(conn, workflow_id)
        rows = conn.fetchall("SELECT * FROM workflow_action WHERE workflow_id = ? ORDER BY id", (workflow_id,))
    return [WORKFLOW_ACTION.to_wire(r) for r in rows]


def pending_actions(ctx: Context, workflow_id: int, trigger_types: list[str] | None = None) -> list[Values]:
    for t in trigger_types or []:
        if t not in TRIGGERS:
            raise InvalidInputError(f"invalid trigger_type {t!r}; expected one of {', '.join(TRIGGERS)}")
    with ctx.store.read() as conn:
        require_workflow(conn, workflow_id)
        rows = conn.fetchall(
            "SELECT * FROM workflow_action WHERE workflow_id = ? AND trigger_count >= required_triggers"
            " AND (executed = 0 OR persistent = 1) ORDER BY id",
            (workflow_id,),
        )
    return [WORKFLOW_ACTION.to_wire(r) for r in rows if not trigger_types or r["trigger_type"] in trigger_types]


def claim_action(ctx: Context, workflow_id: int, action_id: int, compute_node_id: int | None) -> Values:
    with ctx.store.write() as conn:
        row = conn.fetchone("SELECT * FROM workflow_action WHERE id = ? AND workflow_id = ?", (action_id, workflow_id))
        if row is None:
            raise NotFoundError(f"action {action_id} not found in workflow {workflow_id}")
        if row["trigger_count"] < row["required_triggers"]:
            raise ConflictError(f"action {action_id} is not triggered yet")
        if row["persistent"]:
            conn.execute("UPDATE workflow_action SET executed_at = ?, executed_by = ? WHERE id = ?",
                         (now_iso(), compute_node_id, action_id))
        elif not conn.execute(
            "UPDATE workflow_action SET executed = 1, executed_at = ?, executed_by = ? WHERE id = ? AND executed = 0",
            (now_iso(), compute_node_id, action_id),
        ):
            raise ConflictError(f"Action {action_id} already claimed")
    return {"claimed": True, "action_id": action_id}


def retire_action(ctx: Context, workflow_id: int, action_id: int) -> Values:
    """Take an action out of play whether or not it has triggered (`torc slurm regenerate` replaces
    a workflow's allocation plan): it is marked executed and no longer persistent. Reinitializing
    the workflow arms it again."""
    with ctx.store.write() as conn:
        if conn.fetchone("SELECT id FROM workflow_action WHERE id = ? AND workflow_id = ?",
                         (action_id, workflow_id)) is None:
            raise NotFoundError(f"action {action_id} not found in workflow {workflow_id}")
        conn.execute("UPDATE workflow_action SET executed = 1, persistent = 0, executed_at = COALESCE(executed_at, ?)"
                     " WHERE id = ?", (now_iso(), action_id))
    return {"retired": True, "action_id": action_id}


def trigger(conn: Connection, workflow_id: int, trigger_type: str, changed_ids: list[int] | None = None) -> None:
    """Advance trigger counts for one trigger event, inside the caller's transaction."""
    rows = conn.fetchall(
        "SELECT id, job_ids FROM workflow_action WHERE workflow_id = ? AND trigger_type = ? AND executed = 0",
        (workflow_id, trigger_type),
    )
    for row in rows:
        if trigger_type not in JOB_TRIGGERS:
            increment = 1
        else:
            job_ids = set(json.loads(row["job_ids"] or "[]"))
            increment = len(job_ids.intersection(changed_ids or ()))
        if increment:
            conn.execute("UPDATE workflow_action SET trigger_count = trigger_count + ? WHERE id = ?",
                         (increment, row["id"]))


def reset_for_initialize(conn: Connection, workflow_id: int) -> None:
    """Drop recovery actions, clear executed flags, recount job triggers from current states and
    arm worker triggers; then fire on_workflow_start."""
    conn.execute("DELETE FROM workflow_action WHERE workflow_id = ? AND is_recovery = 1", (workflow_id,))
    conn.execute(
        "UPDATE workflow_action SET executed = 0, executed_at = NULL, executed_by = NULL, trigger_count = 0"
        " WHERE workflow_id = ?",
        (workflow_id,),
    )
    conn.execute(
        "UPDATE workflow_action SET trigger_count = required_triggers WHERE workflow_id = ? AND trigger_type IN (?, ?)",
        (workflow_id, *WORKER_TRIGGERS),
    )
    satisfied = {
        "on_jobs_ready": in_clause(sorted({JobStatus.READY, *DONE})),
        "on_jobs_complete": in_clause(sorted(DONE)),
    }
    for trigger_type, statuses in satisfied.items():
        ids = conn.column(f"SELECT id FROM job WHERE workflow_id = ? AND status IN {statuses}", (workflow_id,))
        if ids:
            trigger(conn, workflow_id, trigger_type, ids)
    trigger(conn, workflow_id, "on_workflow_start")

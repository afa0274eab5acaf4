"""Workflow-level procedures that combine several API calls: initialize with its checks,
reinitialize with change detection, and finding orphaned jobs."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from torc.client.http import TorcClient
from torc.core.errors import InvalidInputError, NotFoundError

MTIME_TOLERANCE = 0.01


@dataclass
class InitializePlan:
    missing_inputs: list[str] = field(default_factory=list)
    missing_user_data: list[str] = field(default_factory=list)
    existing_outputs: list[str] = field(default_factory=list)


def _files(client: TorcClient, workflow_id: int) -> dict[int, dict[str, Any]]:
    return {f["id"]: f for f in client.iter_items("files", workflow_id=workflow_id)}


def check_initialize(client: TorcClient, workflow_id: int) -> InitializePlan:
    """What would stop (or deserve a warning before) initializing a workflow."""
    plan = InitializePlan()
    files = _files(client, workflow_id)
    produced = {f["id"] for f in client.iter_items("files", workflow_id=workflow_id, is_output=True)}
    # the server also requires the outputs of completed jobs; a fresh run recreates those
    for file_id in client.get(f"workflows/{workflow_id}/required_existing_files")["files"]:
        path = files[file_id]["path"]
        if file_id not in produced and not Path(path).exists():
            plan.missing_inputs.append(path)
    missing = set(client.get(f"workflows/{workflow_id}/missing_user_data")["user_data"])
    if missing:
        plan.missing_user_data = [u["name"] for u in client.iter_items("user_data", workflow_id=workflow_id)
                                  if u["id"] in missing]
    plan.existing_outputs = [files[i]["path"] for i in sorted(produced) if Path(files[i]["path"]).exists()]
    return plan


def _record_mtimes(client: TorcClient, files: dict[int, dict[str, Any]]) -> None:
    for f in files.values():
        path = Path(f["path"])
        mtime = path.stat().st_mtime if path.exists() else None
        if mtime != f.get("st_mtime"):
            client.put(f"files/{f['id']}", {**f, "st_mtime": mtime})


def _refuse_archived(client: TorcClient, workflow_id: int) -> None:
    if client.get(f"workflows/{workflow_id}/status").get("is_archived"):
        raise InvalidInputError(f"workflow {workflow_id} is archived; unarchive it first")


def _refuse_missing_inputs(workflow_id: int, plan: InitializePlan) -> None:
    problems = []
    if plan.missing_inputs:
        problems.append("input files that no job produces do not exist: " + ", ".join(plan.missing_inputs))
    if plan.missing_user_data:
        problems.append("user data that no job produces has no value: " + ", ".join(plan.missing_user_data))
    if problems:
        raise InvalidInputError(f"workflow {workflow_id} cannot start: " + "; ".join(problems)
                                + " (use --force to start anyway)")


def initialize(client: TorcClient, workflow_id: int, force: bool = False) -> InitializePlan:
    """Start a fresh run: check inputs, reset everything, bump run_id, record file times (and the
    content hashes of the inputs, where the workflow keeps a `reinitialize --hash` baseline), initialize."""
    _refuse_archived(client, workflow_id)
    plan = check_initialize(client, workflow_id)
    if not force:
        _refuse_missing_inputs(workflow_id, plan)
    client.post(f"workflows/{workflow_id}/reset_status", force=force or None)
    client.post(f"workflows/{workflow_id}/reset_job_status")
    status = client.get(f"workflows/{workflow_id}/status")
    client.put(f"workflows/{workflow_id}/status", {**status, "run_id": status["run_id"] + 1})
    files = _files(client, workflow_id)
    _record_mtimes(client, files)
    stored = _opted_in_hashes(client, workflow_id) if files else {}
    if stored:  # the workflow keeps a `reinitialize --hash` baseline: refresh it for the inputs no job produces
        produced = {f["id"] for f in client.iter_items("files", workflow_id=workflow_id, is_output=True)}
        record_hashes(client, workflow_id, files, set(files) - produced, stored)
    client.post(f"workflows/{workflow_id}/initialize_jobs")
    return plan


@dataclass
class ReinitializePlan:
    changed_files: list[str] = field(default_factory=list)
    missing_outputs: list[str] = field(default_factory=list)
    changed_jobs: list[str] = field(default_factory=list)
    rerun: list[str] = field(default_factory=list)  # jobs that go back to run, with a reason each
    missing_inputs: list[str] = field(default_factory=list)  # required inputs that are gone (refused unless force)


# ---- content hashes of input files --------------------------------------------------------------
#
# `reinitialize --hash` compares input files by content instead of modification time, against a
# baseline kept on the server (GET/PUT /workflows/{id}/file_hashes, an extension): per file the
# SHA-256 of its content and the modification time and size of the version that was hashed.
# Hashing costs a full read of each input, so nothing is hashed until the user asks:
# `reinitialize --hash` records the baseline after it has decided, and from then on (the workflow
# has stored hashes) initialize and reinitialize keep it up to date. An entry is only trusted for
# the version of the file the server knows (the one jobs read); a file without an entry, or one
# rewritten by its producer since it was hashed, is judged by its modification time, as without
# --hash. The server drops a file's entry when the file record moves to another path.

_HASH_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def stored_hashes(client: TorcClient, workflow_id: int) -> dict[int, dict[str, Any]]:
    """file id -> {file_id, sha256, st_mtime, size}: the baseline the server keeps."""
    return {h["file_id"]: h for h in client.get(f"workflows/{workflow_id}/file_hashes")["items"]}


def _opted_in_hashes(client: TorcClient, workflow_id: int) -> dict[int, dict[str, Any]]:
    """The stored baseline, or {} where there is none (a server without the extension has none)."""
    try:
        return stored_hashes(client, workflow_id)
    except NotFoundError:
        return {}


def _input_file_ids(jobs: Any) -> set[int]:
    return {i for job in jobs for i in job.get("input_file_ids") or []}


def record_hashes(client: TorcClient, workflow_id: int, files: dict[int, dict[str, Any]],
                  inputs: set[int], before: dict[int, dict[str, Any]] | None = None) -> None:
    """Store the SHA-256 of every input file that exists, replacing the previous set (`before`,
    fetched when not given). A file whose size and modification time match its entry is not read
    again (its path is the entry's: the server drops an entry whose file moved)."""
    if before is None:
        before = stored_hashes(client, workflow_id)
    entries: dict[int, dict[str, Any]] = {}
    for file_id in sorted(inputs):
        path = Path(files[file_id]["path"])
        try:
            info = path.stat()
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        old = before.get(file_id)
        if old and (old.get("st_mtime"), old.get("size")) == (info.st_mtime, info.st_size):
            entries[file_id] = old
        else:
            entries[file_id] = {"file_id": file_id, "sha256": file_sha256(path), "st_mtime": info.st_mtime,
                                "size": info.st_size}
    if entries != before:
        client.put(f"workflows/{workflow_id}/file_hashes", {"items": list(entries.values())})


def _content_unchanged(path: Path, known_mtime: float | None, entry: dict[str, Any] | None) -> bool:
    """True when the file's content is the one hashed for the version the server knows."""
    if entry is None or known_mtime is None or entry.get("st_mtime") is None or not path.is_file():
        return False
    if abs(float(entry["st_mtime"]) - known_mtime) > MTIME_TOLERANCE:
        return False  # the hash is of an older version (its producer rewrote it since)
    return file_sha256(path) == entry.get("sha256")


def _dependents(jobs: dict[int, dict[str, Any]]) -> dict[int, set[int]]:
    """job id -> ids of the jobs that wait for it: explicit dependencies and file/user-data producers."""
    links = (("input_file_ids", "output_file_ids"), ("input_user_data_ids", "output_user_data_ids"))
    producers: dict[tuple[str, int], set[int]] = {}
    for job in jobs.values():
        for consumed, produced in links:
            for item in job.get(produced) or []:
                producers.setdefault((consumed, item), set()).add(job["id"])
    out: dict[int, set[int]] = {}
    for job in jobs.values():
        blockers = set(job.get("depends_on_job_ids") or [])
        for consumed, _ in links:
            for item in job.get(consumed) or []:
                blockers |= producers.get((consumed, item), set())
        for blocker in blockers - {job["id"]}:
            out.setdefault(blocker, set()).add(job["id"])
    return out


def _refuse_active(workflow_id: int, jobs: dict[int, dict[str, Any]]) -> None:
    active = [j for j in jobs.values() if j["status"] in ("running", "pending")]
    if active:
        names = ", ".join(f"{j['name']} ({j['status']})" for j in active[:5])
        more = f" and {len(active) - 5} more" if len(active) > 5 else ""
        raise InvalidInputError(
            f"workflow {workflow_id} has {len(active)} running or pending job(s): {names}{more}; nothing was "
            "changed. Wait for them to finish (or stop their runner), or use --force")


def _file_change(f: dict[str, Any], stored: dict[int, dict[str, Any]] | None) -> str | None:
    """Why a file counts as changed since the server recorded it, or None. `stored` (content
    hashes) is given with --hash: a file whose content is unchanged then counts as unchanged."""
    path = Path(f["path"])
    now = path.stat().st_mtime if path.exists() else None
    before = f.get("st_mtime")
    if now is None and before is None:
        return None
    if now is None or before is None:  # appeared or disappeared
        return f"input {f['path']} changed"
    if abs(now - before) <= MTIME_TOLERANCE:
        return None
    if stored is None:
        return f"input {f['path']} changed"
    if _content_unchanged(path, before, stored.get(f["id"])):
        return None
    return f"input {f['path']} content changed" if f["id"] in stored else f"input {f['path']} changed"


def reinitialize(client: TorcClient, workflow_id: int, force: bool = False,
                 dry_run: bool = False, content_hash: bool = False) -> ReinitializePlan:
    """Rerun exactly what changed: jobs reading changed input files, jobs whose outputs are gone,
    jobs whose command/relationships/input data changed, jobs already reset to uninitialized, and
    everything downstream of them. Like initialize it clears a cancel; it refuses (changing
    nothing) while jobs run or are pending, unless `force`. With `content_hash`, an input file
    whose modification time changed but whose content did not (a `touch`) counts as unchanged
    (where there is a baseline: files without one are judged by time), and the content hashes of
    the inputs are recorded afterwards as the next baseline."""
    _refuse_archived(client, workflow_id)
    plan = ReinitializePlan()
    jobs = {j["id"]: j for j in client.iter_items("jobs", workflow_id=workflow_id, include_relationships=True)}
    if not force and not dry_run:
        _refuse_active(workflow_id, jobs)
    checks = check_initialize(client, workflow_id)
    plan.missing_inputs = checks.missing_inputs
    if not force and not dry_run:
        _refuse_missing_inputs(workflow_id, checks)
    files = _files(client, workflow_id)
    stored = stored_hashes(client, workflow_id) if content_hash else None
    reset: dict[int, str] = {}
    for f in files.values():
        why = _file_change(f, stored)
        if why is None:
            continue
        plan.changed_files.append(f["path"])
        for job in jobs.values():
            if f["id"] in (job.get("input_file_ids") or []) and job["status"] in ("completed", "failed", "canceled"):
                reset.setdefault(job["id"], why)
    for job in jobs.values():
        if job["status"] != "completed":
            continue
        for file_id in job.get("output_file_ids") or []:
            if not Path(files[file_id]["path"]).exists():
                plan.missing_outputs.append(files[file_id]["path"])
                reset.setdefault(job["id"], f"output {files[file_id]['path']} is missing")
    changed = client.post(f"workflows/{workflow_id}/process_changed_job_inputs", dry_run=True)
    plan.changed_jobs = changed["reinitialized_jobs"]
    by_name = {j["name"]: j["id"] for j in jobs.values()}
    for name in plan.changed_jobs:
        what = (changed.get("changes") or {}).get(name) or ["command, dependencies or input data changed"]
        reset.setdefault(by_name[name], ", ".join(what))
    direct = sorted(reset)
    dependents = _dependents(jobs)

    def spread(queue: list[int]) -> None:
        """initialize_jobs resets everything downstream of a reset job too (it walks through
        running, pending and disabled jobs, which it leaves alone: only with --force are there any)."""
        seen = set(queue)
        while queue:
            job_id = queue.pop(0)
            for dependent in sorted(dependents.get(job_id, ())):
                if dependent in seen or dependent in reset:
                    continue
                seen.add(dependent)
                queue.append(dependent)
                if jobs[dependent]["status"] not in ("disabled", "running", "pending"):
                    reset[dependent] = f"downstream of {jobs[job_id]['name']}"

    spread(list(direct))
    # jobs reset by hand (or by reset-status) run again too; name those not below another one
    waiting = {i for i, j in jobs.items() if j["status"] == "uninitialized" and i not in reset}
    below, queue = set(), list(waiting)
    while queue:
        for dependent in dependents.get(queue.pop(), ()):
            if dependent not in below:
                below.add(dependent)
                queue.append(dependent)
    roots = sorted(waiting - below)
    for job_id in roots:
        reset[job_id] = "was reset to uninitialized"
    spread(roots)
    direct = sorted({*direct, *roots})
    plan.rerun = [f"{jobs[i]['name']}: {why}" for i, why in sorted(reset.items())]
    if dry_run:
        return plan
    client.post(f"workflows/{workflow_id}/reset_status", force=force or None)
    status = client.get(f"workflows/{workflow_id}/status")
    client.put(f"workflows/{workflow_id}/status", {**status, "run_id": status["run_id"] + 1})
    run_id = status["run_id"] + 1
    for job_id in direct:
        if jobs[job_id]["status"] not in ("uninitialized", "disabled"):
            client.put(f"jobs/{job_id}/manage_status_change/uninitialized/{run_id}")
    client.post(f"workflows/{workflow_id}/process_changed_job_inputs")
    _record_mtimes(client, files)
    if stored is None:  # without --hash, keep a baseline the workflow already has up to date
        stored = _opted_in_hashes(client, workflow_id) or None
    if stored is not None:  # with --hash: the baseline of the next `--hash`, recorded after deciding
        record_hashes(client, workflow_id, files, _input_file_ids(jobs.values()), stored)
    client.post(f"workflows/{workflow_id}/initialize_jobs", only_uninitialized=True)
    return plan


def reset_jobs(client: TorcClient, workflow_id: int, failed_only: bool = False, force: bool = False) -> dict[str, Any]:
    """`torc workflows reset-status [--failed-only]`: clear the workflow's canceled state, then put
    every job — or the failed, canceled, terminated and pending_failed ones and their downstream —
    back to uninitialized (completed jobs stay completed with --failed-only)."""
    client.post(f"workflows/{workflow_id}/reset_status", force=force or None)
    return client.post(f"workflows/{workflow_id}/reset_job_status", failed_only=failed_only or None) or {}


ORPHAN_RETURN_CODE = -128  # torc's code for "the runner holding this job went away"


STALE_AFTER_SECONDS = 180.0  # runners heartbeat every 30 s; six missed beats mean it is gone


def _age_seconds(stamp: str | None, now: datetime) -> float | None:
    if not stamp:
        return None
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return (now - then).total_seconds()


def _runner_gone(node: dict[str, Any], now: datetime | None = None) -> bool:
    """A compute node whose runner no longer runs: marked inactive; a local runner on this host
    whose process has died; or (any host) no heartbeat for STALE_AFTER_SECONDS."""
    if not node.get("is_active"):
        return True
    if node.get("compute_node_type") == "local" and node.get("hostname") == socket.gethostname():
        try:
            os.kill(int(node["pid"]), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
    age = _age_seconds(node.get("last_heartbeat") or node.get("start_time"), now or datetime.now(UTC))
    return age is not None and age > STALE_AFTER_SECONDS


def find_orphans(client: TorcClient, workflow_id: int) -> list[dict[str, Any]]:
    """Running or pending jobs whose runner is gone. Pending jobs claimed without naming a runner
    count only when no runner of the workflow is alive at all."""
    nodes = list(client.iter_items("compute_nodes", workflow_id=workflow_id))
    gone = [n for n in nodes if _runner_gone(n)]
    orphans: list[dict[str, Any]] = []
    for node in gone:
        for job in client.iter_items("jobs", workflow_id=workflow_id, active_compute_node_id=node["id"]):
            if job["status"] in ("running", "pending"):
                orphans.append({**job, "compute_node_id": node["id"]})
    if len(gone) == len(nodes):
        seen = {j["id"] for j in orphans}
        for status in ("running", "pending"):
            orphans += [j for j in client.iter_items("jobs", workflow_id=workflow_id, status=status)
                        if j["id"] not in seen]
    return orphans


def fail_orphans(client: TorcClient, workflow_id: int, orphans: list[dict[str, Any]]) -> None:
    """Record each running orphan as failed (return code -128), give pending ones (claimed but
    never started) back to ready, and mark dead runners inactive."""
    run_id = client.run_id(workflow_id)
    unstarted = [job["id"] for job in orphans if job["status"] == "pending"]
    if unstarted:
        client.post(f"workflows/{workflow_id}/release_jobs", {"job_ids": unstarted})
    for job in orphans:
        if job["status"] == "pending":
            continue
        client.post(f"jobs/{job['id']}/complete_job/failed/{run_id}", {
            "return_code": ORPHAN_RETURN_CODE, "exec_time_minutes": 0.0,
            "compute_node_id": job.get("compute_node_id") or 0,
        })
    for node in client.iter_items("compute_nodes", workflow_id=workflow_id):
        if node.get("is_active") and _runner_gone(node):
            client.put(f"compute_nodes/{node['id']}", {**node, "is_active": False})


def prepare_resume(client: TorcClient, workflow_id: int) -> list[str]:
    """Before `torc run ID` on a workflow that has run: fail jobs held by dead runners, then, when
    no other runner is active, put every unfinished job back to run in a new run (completed jobs
    stay completed). Returns what was done, one line each."""
    notes = []
    orphans = find_orphans(client, workflow_id)
    if orphans:
        fail_orphans(client, workflow_id, orphans)
        unstarted = sum(1 for j in orphans if j["status"] == "pending")
        if len(orphans) > unstarted:
            notes.append(f"{len(orphans) - unstarted} job(s) of runners that are gone were marked failed")
        if unstarted:
            notes.append(f"{unstarted} job(s) claimed by runners that are gone went back to ready")
    active = [n for n in client.iter_items("compute_nodes", workflow_id=workflow_id) if n.get("is_active")]
    if active:
        notes.append(f"{len(active)} other runner(s) are active; joining them")
        return notes
    counts = client.get(f"workflows/{workflow_id}/job_counts")["counts"]
    again = sum(counts.get(s, 0) for s in ("failed", "canceled", "terminated", "pending_failed"))
    waiting = counts.get("uninitialized", 0)  # e.g. after `workflows reset-status --failed-only`
    if again or waiting:
        status = client.get(f"workflows/{workflow_id}/status")
        client.post(f"workflows/{workflow_id}/reset_status")
        client.put(f"workflows/{workflow_id}/status", {**status, "run_id": status["run_id"] + 1,
                                                        "is_canceled": False})
        if again:
            client.post(f"workflows/{workflow_id}/reset_job_status", failed_only=True)
        client.post(f"workflows/{workflow_id}/initialize_jobs", only_uninitialized=True)
        if again:
            notes.append(f"{again} unfinished job(s) and their downstream will run again (run {status['run_id'] + 1})")
        if waiting:
            notes.append(f"{waiting} uninitialized job(s) and their downstream will run (run {status['run_id'] + 1})")
    return notes

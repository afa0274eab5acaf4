"""Named queries of the job lifecycle: the SQL that encodes scheduling policy, in one place.

Placeholders are `?`; status codes are constants of core.status, never request text. Queries
that take an id list have an `{ids}` slot filled with service.relationships.in_clause().
"""

from __future__ import annotations

from torc.core.status import ACTIVE, DONE, FAILED_LIKE, FINISHED, RESETTABLE_FAILURES, JobStatus

S = JobStatus


def _set(statuses) -> str:
    return "(" + ", ".join(str(int(s)) for s in sorted(statuses)) + ")"


DONE_SET = _set(DONE)
FAILED_SET = _set(FAILED_LIKE)
FINISHED_SET = _set(FINISHED)
ACTIVE_SET = _set(ACTIVE)
RESETTABLE_SET = _set(RESETTABLE_FAILURES)

# Implicit edges: every consumer of a file waits for its producers (format with kind=file|user_data).
DERIVE_EDGES = (
    "INSERT INTO job_depends_on (job_id, depends_on_job_id, workflow_id)"
    " SELECT DISTINCT i.job_id, o.job_id, i.workflow_id FROM job_input_{kind} i"
    " JOIN job_output_{kind} o ON o.{kind}_id = i.{kind}_id"
    " WHERE i.workflow_id = ? AND i.job_id != o.job_id ON CONFLICT DO NOTHING"
)

# Every edge of a workflow, for cycle detection.
WORKFLOW_EDGES = "SELECT job_id, depends_on_job_id FROM job_depends_on WHERE workflow_id = ?"

# Spread "uninitialized" to every transitive dependent, except disabled jobs and jobs a runner holds.
SPREAD_UNINITIALIZED = (
    "WITH RECURSIVE down(id) AS ("
    f" SELECT id FROM job WHERE workflow_id = ? AND status = {int(S.UNINITIALIZED)}"
    " UNION SELECT d.job_id FROM job_depends_on d JOIN down ON d.depends_on_job_id = down.id)"
    f" UPDATE job SET status = {int(S.UNINITIALIZED)} WHERE id IN (SELECT id FROM down)"
    f" AND status NOT IN {_set([S.DISABLED, *ACTIVE])}"
)

# A full initialize reconsiders blocked and ready jobs too.
UNSETTLE_WAITING = (
    f"UPDATE job SET status = {int(S.UNINITIALIZED)} WHERE workflow_id = ?"
    f" AND status IN {_set([S.BLOCKED, S.READY])}"
)

UNINITIALIZED_IDS = f"SELECT id FROM job WHERE workflow_id = ? AND status = {int(S.UNINITIALIZED)}"

# Uninitialized jobs with a blocker that is not done wait.
BLOCK_WAITING = (
    f"UPDATE job SET status = {int(S.BLOCKED)} WHERE workflow_id = ? AND status = {int(S.UNINITIALIZED)}"
    " AND unfinished_blockers > 0"
)

# Uninitialized jobs whose blockers are done but one failed, and that ask to be canceled then.
DOOMED_BY_FAILED_BLOCKER = (
    f"SELECT id FROM job WHERE workflow_id = ? AND status = {int(S.UNINITIALIZED)}"
    " AND cancel_on_blocking_job_failure = 1"
    " AND EXISTS (SELECT 1 FROM job_depends_on d JOIN job b ON b.id = d.depends_on_job_id"
    f" WHERE d.job_id = job.id AND b.status IN {FAILED_SET})"
)

# What is left is free to run.
READY_THE_REST = (
    f"UPDATE job SET status = {int(S.READY)}, unblocking_processed = 1"
    f" WHERE workflow_id = ? AND status = {int(S.UNINITIALIZED)}"
)

# Only finished jobs keep a current result.
DROP_STALE_CURRENT_RESULTS = (
    "DELETE FROM workflow_result WHERE workflow_id = ? AND job_id IN"
    f" (SELECT id FROM job WHERE workflow_id = ? AND status NOT IN {DONE_SET})"
)

READY_IDS = f"SELECT id FROM job WHERE workflow_id = ? AND status = {int(S.READY)}"

# Resource groups that fit an offer alone, in a sort method's order (format with order=...).
FITTING_REQUIREMENTS = (
    "SELECT id, num_cpus, memory_bytes, num_gpus, num_nodes, runtime_s FROM resource_requirements"
    " WHERE workflow_id = ? AND num_cpus <= ? AND memory_bytes <= ? AND num_gpus <= ? AND num_nodes <= ?"
    "{time_condition}{order}"
)

# Ready jobs of one resource group, oldest first (format with scheduler=... condition).
READY_IN_GROUP = (
    f"SELECT id FROM job WHERE workflow_id = ? AND status = {int(S.READY)} AND resource_requirements_id = ?"
    "{scheduler} ORDER BY id LIMIT ?{lock}"
)

# Ready jobs in creation order with their resource group (sort method "none").
READY_IN_ORDER = (
    f"SELECT id, resource_requirements_id AS rr FROM job WHERE workflow_id = ? AND status = {int(S.READY)}"
    "{scheduler} ORDER BY id{lock}"
)

NEXT_READY = f"SELECT id FROM job WHERE workflow_id = ? AND status = {int(S.READY)} ORDER BY id LIMIT ?{{lock}}"

# Blocked dependents of some just-finished jobs that no longer wait for anyone
# (job.unfinished_blockers is kept exact by triggers; see migration 0002).
RELEASABLE_DEPENDENTS = (
    "SELECT DISTINCT d.job_id, j.cancel_on_blocking_job_failure AS flag FROM job_depends_on d"
    " JOIN job j ON j.id = d.job_id"
    f" WHERE d.depends_on_job_id IN {{ids}} AND j.status = {int(S.BLOCKED)} AND j.unfinished_blockers = 0"
)

# Blocked jobs that wait for nobody, whatever released them (e.g. a deleted blocker).
RELEASABLE = (
    "SELECT id, workflow_id, cancel_on_blocking_job_failure AS flag FROM job"
    f" WHERE status = {int(S.BLOCKED)} AND unfinished_blockers = 0 ORDER BY id LIMIT 10000"
)

HAS_FAILED_BLOCKER = (
    "SELECT 1 AS x FROM job_depends_on d JOIN job b ON b.id = d.depends_on_job_id"
    f" WHERE d.job_id = ? AND b.status IN {FAILED_SET} LIMIT 1"
)

DIRECT_DEPENDENTS = "SELECT job_id FROM job_depends_on WHERE depends_on_job_id IN {ids}"

# Is any job still unfinished (workflow not complete)?
ANY_UNFINISHED = f"SELECT EXISTS (SELECT 1 FROM job WHERE workflow_id = ? AND status NOT IN {FINISHED_SET})"

FAILED_IDS = f"SELECT id FROM job WHERE workflow_id = ? AND status IN {RESETTABLE_SET}"
ACTIVE_IDS = f"SELECT id FROM job WHERE workflow_id = ? AND status IN {ACTIVE_SET}"
ACTIVE_COUNT = f"SELECT COUNT(*) FROM job WHERE workflow_id = ? AND status IN {ACTIVE_SET}"

# Done jobs whose dependents were not released yet (the background safety net).
UNPROCESSED_COMPLETIONS = (
    f"SELECT id, workflow_id FROM job WHERE unblocking_processed = 0 AND status IN {DONE_SET}"
    " ORDER BY id LIMIT 10000"
)

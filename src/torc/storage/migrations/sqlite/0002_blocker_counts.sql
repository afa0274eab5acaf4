-- Each job counts its blockers that are not done (completed, failed, canceled, terminated).
-- Triggers keep the count exact on every status change, edge change and job deletion, so
-- releasing dependents is a lookup of zero counts instead of a scan of every blocker.

ALTER TABLE job ADD COLUMN unfinished_blockers INTEGER NOT NULL DEFAULT 0;

UPDATE job SET unfinished_blockers = (
    SELECT COUNT(*) FROM job_depends_on d JOIN job b ON b.id = d.depends_on_job_id
    WHERE d.job_id = job.id AND b.status NOT IN (5, 6, 7, 8)
);

CREATE INDEX job_releasable ON job(workflow_id) WHERE status = 1 AND unfinished_blockers = 0;

CREATE TRIGGER job_done_changed AFTER UPDATE OF status ON job
WHEN (old.status IN (5, 6, 7, 8)) != (new.status IN (5, 6, 7, 8))
BEGIN
    UPDATE job SET unfinished_blockers = unfinished_blockers + (CASE WHEN new.status IN (5, 6, 7, 8) THEN -1 ELSE 1 END)
    WHERE id IN (SELECT job_id FROM job_depends_on WHERE depends_on_job_id = new.id);
END;

CREATE TRIGGER job_edge_added AFTER INSERT ON job_depends_on
WHEN EXISTS (SELECT 1 FROM job WHERE id = new.depends_on_job_id AND status NOT IN (5, 6, 7, 8))
BEGIN
    UPDATE job SET unfinished_blockers = unfinished_blockers + 1 WHERE id = new.job_id;
END;

-- A deleted edge whose blocker still exists and is unfinished no longer holds its job back.
CREATE TRIGGER job_edge_removed AFTER DELETE ON job_depends_on
WHEN EXISTS (SELECT 1 FROM job WHERE id = old.depends_on_job_id AND status NOT IN (5, 6, 7, 8))
BEGIN
    UPDATE job SET unfinished_blockers = unfinished_blockers - 1 WHERE id = old.job_id;
END;

-- Deleting an unfinished job releases its dependents' count (its edges go by cascade after
-- the row itself, when the edge trigger can no longer see it).
CREATE TRIGGER job_removed BEFORE DELETE ON job
WHEN old.status NOT IN (5, 6, 7, 8)
BEGIN
    UPDATE job SET unfinished_blockers = unfinished_blockers - 1
    WHERE id IN (SELECT job_id FROM job_depends_on WHERE depends_on_job_id = old.id);
END

-- Each job counts its blockers that are not done (completed, failed, canceled, terminated); the
-- PostgreSQL twin of sqlite/0002. Triggers keep the count exact on every status change, edge change
-- and job deletion.
--
-- Deletions differ from SQLite on purpose: PostgreSQL refuses a BEFORE DELETE trigger that updates
-- rows the same statement deletes later (deleting a workflow deletes all of its jobs in one cascade
-- statement), and a trigger WHEN clause cannot hold a subquery. So removed edges (explicit, or by
-- cascade from a deleted job) recount their dependents once per statement, when every deleted job and
-- edge is gone: a deleted blocker, finished or not, simply stops being counted.

ALTER TABLE job ADD COLUMN unfinished_blockers BIGINT NOT NULL DEFAULT 0;

UPDATE job SET unfinished_blockers = (
    SELECT COUNT(*) FROM job_depends_on d JOIN job b ON b.id = d.depends_on_job_id
    WHERE d.job_id = job.id AND b.status NOT IN (5, 6, 7, 8)
);

CREATE INDEX job_releasable ON job(workflow_id) WHERE status = 1 AND unfinished_blockers = 0;

CREATE FUNCTION torc_job_done_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE job SET unfinished_blockers = unfinished_blockers
        + (CASE WHEN NEW.status IN (5, 6, 7, 8) THEN -1 ELSE 1 END)
    WHERE id IN (SELECT job_id FROM job_depends_on WHERE depends_on_job_id = NEW.id);
    RETURN NULL;
END $$;

CREATE TRIGGER job_done_changed AFTER UPDATE OF status ON job FOR EACH ROW
WHEN ((OLD.status IN (5, 6, 7, 8)) IS DISTINCT FROM (NEW.status IN (5, 6, 7, 8)))
EXECUTE FUNCTION torc_job_done_changed();

CREATE FUNCTION torc_job_edge_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM job WHERE id = NEW.depends_on_job_id AND status NOT IN (5, 6, 7, 8)) THEN
        UPDATE job SET unfinished_blockers = unfinished_blockers + 1 WHERE id = NEW.job_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER job_edge_added AFTER INSERT ON job_depends_on FOR EACH ROW
EXECUTE FUNCTION torc_job_edge_added();

CREATE FUNCTION torc_job_edges_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE job SET unfinished_blockers = (
        SELECT COUNT(*) FROM job_depends_on d JOIN job b ON b.id = d.depends_on_job_id
        WHERE d.job_id = job.id AND b.status NOT IN (5, 6, 7, 8))
    WHERE id IN (SELECT DISTINCT job_id FROM gone);
    RETURN NULL;
END $$;

CREATE TRIGGER job_edges_removed AFTER DELETE ON job_depends_on
REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
EXECUTE FUNCTION torc_job_edges_removed();

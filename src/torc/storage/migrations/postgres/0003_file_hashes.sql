-- Content hashes of input files, the baseline of `torc workflows reinitialize --hash` (an extension:
-- GET/PUT /workflows/{id}/file_hashes); the PostgreSQL twin of sqlite/0003. One row per file: the
-- SHA-256 of its content and the modification time and size of the version that was hashed.

CREATE TABLE file_content_hash (
    file_id BIGINT PRIMARY KEY REFERENCES file(id) ON DELETE CASCADE,
    workflow_id BIGINT NOT NULL REFERENCES workflow(id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    st_mtime DOUBLE PRECISION,
    size BIGINT
);
CREATE INDEX file_content_hash_workflow ON file_content_hash(workflow_id);

-- A hash belongs to the file at its path: a file record moved to another path loses it.
CREATE FUNCTION torc_file_path_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM file_content_hash WHERE file_id = NEW.id;
    RETURN NULL;
END $$;

CREATE TRIGGER file_content_hash_path_changed AFTER UPDATE OF path ON file FOR EACH ROW
WHEN (OLD.path IS DISTINCT FROM NEW.path)
EXECUTE FUNCTION torc_file_path_changed();

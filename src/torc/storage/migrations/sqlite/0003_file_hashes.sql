-- Content hashes of input files, the baseline of `torc workflows reinitialize --hash` (an extension:
-- GET/PUT /workflows/{id}/file_hashes). One row per file: the SHA-256 of its content and the
-- modification time and size of the version that was hashed. They go with their file and workflow.

CREATE TABLE file_content_hash (
    file_id INTEGER PRIMARY KEY REFERENCES file(id) ON DELETE CASCADE,
    workflow_id INTEGER NOT NULL REFERENCES workflow(id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    st_mtime REAL,
    size INTEGER
);
CREATE INDEX file_content_hash_workflow ON file_content_hash(workflow_id);

-- A hash belongs to the file at its path: a file record moved to another path loses it.
CREATE TRIGGER file_content_hash_path_changed AFTER UPDATE OF path ON file
WHEN old.path IS NOT new.path
BEGIN
    DELETE FROM file_content_hash WHERE file_id = new.id;
END;

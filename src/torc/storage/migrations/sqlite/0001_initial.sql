-- Initial schema: every table of torc's data model (reference §2).
-- Everything hangs off workflow and is removed with it (ON DELETE CASCADE).

CREATE TABLE workflow (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    description TEXT,
    user TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    project TEXT,
    metadata TEXT,
    compute_node_expiration_buffer_seconds INTEGER NOT NULL DEFAULT 60,
    compute_node_wait_for_new_jobs_seconds INTEGER NOT NULL DEFAULT 90,
    compute_node_ignore_workflow_completion INTEGER NOT NULL DEFAULT 0,
    compute_node_wait_for_healthy_database_minutes INTEGER NOT NULL DEFAULT 20,
    compute_node_min_time_for_new_jobs_seconds INTEGER NOT NULL DEFAULT 300,
    jobs_sort_method TEXT NOT NULL DEFAULT 'gpus_runtime_memory',
    resource_monitor_config TEXT,
    slurm_defaults TEXT,
    use_pending_failed INTEGER NOT NULL DEFAULT 0,
    status_id INTEGER
);
CREATE INDEX workflow_user ON workflow(user);

-- One row per workflow, same id as the workflow.
CREATE TABLE workflow_status (
    id INTEGER PRIMARY KEY REFERENCES workflow(id) ON DELETE CASCADE,
    run_id INTEGER NOT NULL DEFAULT 0,
    is_canceled INTEGER NOT NULL DEFAULT 0,
    is_archived INTEGER NOT NULL DEFAULT 0,
    has_detected_need_to_run_completion_script INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE resource_requirements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id INTEGER NOT NULL REFERENCES workflow(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    num_cpus INTEGER NOT NULL DEFAULT 1,
    num_gpus INTEGER NOT NULL DEFAULT 0,
    num_nodes INTEGER NOT NULL DEFAULT 1,
    memory TEXT NOT NULL DEFAULT '1m',
    runtime TEXT NOT NULL DEFAULT 'P0DT1M',
    memory_bytes INTEGER NOT NULL,
    runtime_s REAL NOT NULL
);
CREATE INDEX resource_requirements_workflow ON resource_requirements(workflow_id);

CREATE TABLE failure_handler (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id INTEGER NOT NULL REFERENCES workflow(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    rules TEXT NOT NULL
);
CREATE INDEX failure_handler_workflow ON failure_handler(workflow_id);

CREATE TABLE slurm_scheduler (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id INTEGER NOT NULL REFERENCES workflow(id) ON DELETE CASCADE,
    name TEXT,
    account TEXT NOT NULL,
    gres TEXT,
    mem TEXT,
    nodes INTEGER NOT NULL DEFAULT 1,
    ntasks_per_node INTEGER,
    partition TEXT,
    qos TEXT DEFAULT 'normal',
    tmp TEXT,
    walltime TEXT NOT NULL,
    extra TEXT
);
CREATE INDEX slurm_scheduler_workflow ON slurm_scheduler(workflow_id);

CREATE TABLE local_scheduler (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id INTEGER NOT NULL REFERENCES workflow(id) ON DELETE CASCADE,
    name TEXT DEFAULT 'default',
    memory TEXT,
    num_cpus INTEGER
);
CREATE INDEX local_scheduler_workflow ON local_scheduler(workflow_id);

CREATE TABLE job (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id INTEGER NOT NULL REFERENCES workflow(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    command TEXT NOT NULL,
    invocation_script TEXT,
    status INTEGER NOT NULL DEFAULT 0,
    cancel_on_blocking_job_failure INTEGER NOT NULL DEFAULT 1,
    supports_termination INTEGER NOT NULL DEFAULT 0,
    -- NO ACTION: deleting a resource requirement still used by a job is refused.
    resource_requirements_id INTEGER REFERENCES resource_requirements(id),
    scheduler_id INTEGER,
    failure_handler_id INTEGER REFERENCES failure_handler(id) ON DELETE SET NULL,
    attempt_id INTEGER NOT NULL DEFAULT 1,
    unblocking_processed INTEGER NOT NULL DEFAULT 1,
    input_hash TEXT,
    active_compute_node_id INTEGER
);
CREATE INDEX job_workflow_status ON job(workflow_id, status, resource_requirements_id);
CREATE INDEX job_unprocessed ON job(workflow_id) WHERE unblocking_processed = 0;

CREATE TABLE job_depends_on (
    job_id INTEGER NOT NULL REFERENCES job(id) ON DELETE CASCADE,
    depends_on_job_id INTEGER NOT NULL REFERENCES job(id) ON DELETE CASCADE,
    workflow_id INTEGER NOT NULL REFERENCES workflow(id) ON DELETE CASCADE,
    PRIMARY KEY (job_id, depends_on_job_id)
);
CREATE INDEX job_depends_on_blocker ON job_depends_on(depends_on_job_id);
CREATE INDEX job_depends_on_workflow ON job_depends_on(workflow_id);

CREATE TABLE file (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id INTEGER NOT NULL REFERENCES workflow(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    st_mtime REAL
);
CREATE INDEX file_workflow ON file(workflow_id);

CREATE TABLE job_input_file (
    job_id INTEGER NOT NULL REFERENCES job(id) ON DELETE CASCADE,
    file_id INTEGER NOT NULL REFERENCES file(id) ON DELETE CASCADE,
    workflow_id INTEGER NOT NULL REFERENCES workflow(id) ON DELETE CASCADE,
    PRIMARY KEY (job_id, file_id)
);
CREATE INDEX job_input_file_file ON job_input_file(file_id);
CREATE INDEX job_input_file_workflow ON job_input_file(workflow_id);

CREATE TABLE job_output_file (
    job_id INTEGER NOT NULL REFERENCES job(id) ON DELETE CASCADE,
    file_id INTEGER NOT NULL REFERENCES file(id) ON DELETE CASCADE,
    workflow_id INTEGER NOT NULL REFERENCES workflow(id) ON DELETE CASCADE,
    PRIMARY KEY (job_id, file_id)
);
CREATE INDEX job_output_file_file ON job_output_file(file_id);
CREATE INDEX job_output_file_workflow ON job_output_file(workflow_id);

CREATE TABLE user_data (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id INTEGER NOT NULL REFERENCES workflow(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    is_ephemeral INTEGER NOT NULL DEFAULT 0,
    data TEXT
);
CREATE INDEX user_data_workflow ON user_data(workflow_id);

CREATE TABLE job_input_user_data (
    job_id INTEGER NOT NULL REFERENCES job(id) ON DELETE CASCADE,
    user_data_id INTEGER NOT NULL REFERENCES user_data(id) ON DELETE CASCADE,
    workflow_id INTEGER NOT NULL REFERENCES workflow(id) ON DELETE CASCADE,
    PRIMARY KEY (job_id, user_data_id)
);
CREATE INDEX job_input_user_data_ud ON job_input_user_data(user_data_id);
CREATE INDEX job_input_user_data_workflow ON job_input_user_data(workflow_id);

CREATE TABLE job_output_user_data (
    job_id INTEGER NOT NULL REFERENCES job(id) ON DELETE CASCADE,
    user_data_id INTEGER NOT NULL REFERENCES user_data(id) ON DELETE CASCADE,
    workflow_id INTEGER NOT NULL REFERENCES workflow(id) ON DELETE CASCADE,
    PRIMARY KEY (job_id, user_data_id)
);
CREATE INDEX job_output_user_data_ud ON job_output_user_data(user_data_id);
CREATE INDEX job_output_user_data_workflow ON job_output_user_data(workflow_id);

CREATE TABLE compute_node (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id INTEGER NOT NULL REFERENCES workflow(id) ON DELETE CASCADE,
    hostname TEXT NOT NULL,
    pid INTEGER NOT NULL,
    start_time TEXT NOT NULL,
    duration_seconds REAL,
    is_active INTEGER,
    num_cpus INTEGER NOT NULL,
    memory_gb REAL NOT NULL,
    num_gpus INTEGER NOT NULL,
    num_nodes INTEGER NOT NULL,
    time_limit TEXT,
    scheduler_config_id INTEGER,
    compute_node_type TEXT NOT NULL,
    scheduler TEXT,
    last_heartbeat TEXT
);
CREATE INDEX compute_node_workflow ON compute_node(workflow_id);

CREATE TABLE scheduled_compute_node (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id INTEGER NOT NULL REFERENCES workflow(id) ON DELETE CASCADE,
    scheduler_id INTEGER NOT NULL,
    scheduler_config_id INTEGER NOT NULL,
    scheduler_type TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX scheduled_compute_node_workflow ON scheduled_compute_node(workflow_id);

CREATE TABLE result (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id INTEGER NOT NULL REFERENCES workflow(id) ON DELETE CASCADE,
    job_id INTEGER NOT NULL REFERENCES job(id) ON DELETE CASCADE,
    run_id INTEGER NOT NULL,
    attempt_id INTEGER NOT NULL DEFAULT 1,
    compute_node_id INTEGER NOT NULL,
    return_code INTEGER NOT NULL,
    exec_time_minutes REAL NOT NULL,
    completion_time TEXT NOT NULL,
    status INTEGER NOT NULL,
    peak_memory_bytes INTEGER,
    avg_memory_bytes INTEGER,
    peak_cpu_percent REAL,
    avg_cpu_percent REAL
);
CREATE INDEX result_workflow ON result(workflow_id, job_id);
CREATE INDEX result_job_run ON result(job_id, run_id);

-- The current result of each job.
CREATE TABLE workflow_result (
    workflow_id INTEGER NOT NULL REFERENCES workflow(id) ON DELETE CASCADE,
    job_id INTEGER NOT NULL REFERENCES job(id) ON DELETE CASCADE,
    result_id INTEGER NOT NULL REFERENCES result(id) ON DELETE CASCADE,
    PRIMARY KEY (workflow_id, job_id)
);
CREATE INDEX workflow_result_result ON workflow_result(result_id);

CREATE TABLE workflow_action (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id INTEGER NOT NULL REFERENCES workflow(id) ON DELETE CASCADE,
    trigger_type TEXT NOT NULL,
    action_type TEXT NOT NULL,
    action_config TEXT NOT NULL,
    job_ids TEXT,
    trigger_count INTEGER NOT NULL DEFAULT 0,
    required_triggers INTEGER NOT NULL DEFAULT 1,
    executed INTEGER NOT NULL DEFAULT 0,
    executed_at TEXT,
    executed_by INTEGER,
    persistent INTEGER NOT NULL DEFAULT 0,
    is_recovery INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX workflow_action_workflow ON workflow_action(workflow_id);

CREATE TABLE event (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id INTEGER NOT NULL REFERENCES workflow(id) ON DELETE CASCADE,
    timestamp INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX event_workflow_ts ON event(workflow_id, timestamp);

CREATE TABLE remote_worker (
    worker TEXT NOT NULL,
    workflow_id INTEGER NOT NULL REFERENCES workflow(id) ON DELETE CASCADE,
    PRIMARY KEY (worker, workflow_id)
);

CREATE TABLE access_group (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    is_system INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

CREATE TABLE user_group_membership (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_name TEXT NOT NULL,
    group_id INTEGER NOT NULL REFERENCES access_group(id) ON DELETE CASCADE,
    role TEXT NOT NULL DEFAULT 'member',
    created_at TEXT NOT NULL,
    UNIQUE (user_name, group_id)
);

CREATE TABLE workflow_access_group (
    workflow_id INTEGER NOT NULL REFERENCES workflow(id) ON DELETE CASCADE,
    group_id INTEGER NOT NULL REFERENCES access_group(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (workflow_id, group_id)
);

"""The SQLite store: migrations from empty, idempotent re-open, pragmas, transactions."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from torc.core.errors import InvalidInputError
from torc.storage import open_store
from torc.storage.migrations import load_migrations
from torc.storage.sqlite import SqliteStore


def test_migrates_an_empty_database(tmp_path):
    path = tmp_path / "sub" / "new.db"
    store = SqliteStore(path)
    assert path.exists()
    latest = load_migrations("sqlite")[-1].version
    assert store.schema_version == latest
    with store.read() as conn:
        tables = set(conn.column("SELECT name FROM sqlite_master WHERE type = 'table'"))
        assert conn.scalar("PRAGMA journal_mode") == "wal"
        assert conn.scalar("PRAGMA foreign_keys") == 1
    expected = {"workflow", "workflow_status", "job", "job_depends_on", "file", "job_input_file", "job_output_file",
                "user_data", "job_input_user_data", "job_output_user_data", "resource_requirements",
                "failure_handler", "slurm_scheduler", "local_scheduler", "compute_node", "scheduled_compute_node",
                "result", "workflow_result", "workflow_action", "event", "remote_worker", "access_group",
                "user_group_membership", "workflow_access_group", "schema_migrations"}
    assert expected <= tables
    store.close()
    again = SqliteStore(path)  # re-opening applies nothing twice
    with again.read() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM schema_migrations") == len(load_migrations("sqlite"))
    again.close()


def test_write_rolls_back_on_error(store):
    with pytest.raises(RuntimeError):
        with store.write() as conn:
            conn.execute("INSERT INTO access_group (name, created_at) VALUES ('g', 'now')")
            raise RuntimeError("boom")
    with store.read() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM access_group") == 0


def test_foreign_keys_cascade(store):
    with store.write() as conn:
        wf = conn.insert("INSERT INTO workflow (name, user, timestamp) VALUES ('w', 'u', 't')")
        conn.insert("INSERT INTO file (workflow_id, name, path) VALUES (?, 'f', 'p')", (wf,))
    with store.write() as conn:
        conn.execute("DELETE FROM workflow WHERE id = ?", (wf,))
    with store.read() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM file") == 0
    with pytest.raises(sqlite3.IntegrityError):
        with store.write() as conn:
            conn.insert("INSERT INTO file (workflow_id, name, path) VALUES (12345, 'f', 'p')")


def test_insert_many_returns_ids_in_order(store):
    with store.write() as conn:
        wf = conn.insert("INSERT INTO workflow (name, user, timestamp) VALUES ('w', 'u', 't')")
        first = conn.insert_many("file", ("workflow_id", "name", "path"), [(wf, "a", "a"), (wf, "b", "b")])
        second = conn.insert_many("file", ("workflow_id", "name", "path"), [(wf, "c", "c")])
        names = {r["id"]: r["name"] for r in conn.fetchall("SELECT id, name FROM file")}
    assert [names[i] for i in first + second] == ["a", "b", "c"]
    assert first[1] + 1 == second[0]


def test_concurrent_writers_serialize(store):
    def add(n: int) -> None:
        for i in range(50):
            with store.write() as conn:
                conn.execute("INSERT INTO access_group (name, created_at) VALUES (?, 'now')", (f"g{n}-{i}",))

    threads = [threading.Thread(target=add, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with store.read() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM access_group") == 300


def test_open_store_paths(tmp_path):
    s = open_store(f"sqlite:///{tmp_path}/x.db")
    assert (tmp_path / "x.db").exists()
    s.close()
    # PostgreSQL URLs open the PostgreSQL adapter (tests/storage); an unreachable server is one clear line.
    with pytest.raises(InvalidInputError, match="cannot connect to PostgreSQL at postgresql://u:\\*\\*\\*@"):
        open_store("postgresql://u:secret@127.0.0.1:1/torc")

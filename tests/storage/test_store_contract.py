"""The Store port's contract, run against every adapter (SQLite and PostgreSQL, by the `backend`
parametrization of tests/conftest.py): migrations, transactions, ids, triggers, the SQL dialect the
services share, and exclusive writers."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from tests.conftest import open_test_store, postgres_schema
from torc.core.errors import ConflictError, InvalidInputError
from torc.storage import open_store
from torc.storage.migrations import load_migrations

TABLES = {"workflow", "workflow_status", "job", "job_depends_on", "file", "job_input_file", "job_output_file",
          "user_data", "job_input_user_data", "job_output_user_data", "resource_requirements", "failure_handler",
          "slurm_scheduler", "local_scheduler", "compute_node", "scheduled_compute_node", "result",
          "workflow_result", "workflow_action", "event", "remote_worker", "access_group",
          "user_group_membership", "workflow_access_group", "file_content_hash", "schema_migrations"}


def _tables(store) -> set[str]:
    with store.read() as conn:
        if store.dialect == "sqlite":
            return set(conn.column("SELECT name FROM sqlite_master WHERE type = 'table'"))
        return set(conn.column("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"))


def _workflow(conn, name: str = "w") -> int:
    return conn.insert("INSERT INTO workflow (name, user, timestamp) VALUES (?, ?, ?)", (name, "me", "t"))


def _jobs(conn, wf: int, n: int, status: int = 1) -> list[int]:
    return conn.insert_many("job", ("workflow_id", "name", "command", "status"),
                            [(wf, f"j{i}", "true", status) for i in range(n)])


def _counts(conn) -> dict[int, int]:
    return {r["id"]: r["unfinished_blockers"] for r in conn.fetchall("SELECT id, unfinished_blockers FROM job")}


def test_dialects_have_the_same_migrations():
    sqlite_m, pg_m = load_migrations("sqlite"), load_migrations("postgres")
    assert [(m.version, m.name) for m in sqlite_m] == [(m.version, m.name) for m in pg_m]


def test_migrated_to_latest_with_every_table(store):
    assert store.schema_version == load_migrations(store.dialect)[-1].version
    assert TABLES <= _tables(store)


def test_reopening_applies_nothing_twice(backend, tmp_path):
    if backend == "sqlite":
        first = open_store(str(tmp_path / "x.db"))
        first.close()
        again = open_store(str(tmp_path / "x.db"))
        with again.read() as conn:
            assert conn.scalar("SELECT COUNT(*) FROM schema_migrations") == len(load_migrations("sqlite"))
        again.close()
        return
    with postgres_schema() as url:
        open_store(url).close()
        again = open_store(url)  # through the factory, as torc-server does
        try:
            assert again.dialect == "postgres"
            with again.read() as conn:
                assert conn.scalar("SELECT COUNT(*) FROM schema_migrations") == len(load_migrations("postgres"))
        finally:
            again.close()


def test_write_rolls_back_on_error(store):
    with pytest.raises(RuntimeError):
        with store.write() as conn:
            conn.execute("INSERT INTO access_group (name, created_at) VALUES ('g', 'now')")
            raise RuntimeError("boom")
    with store.read() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM access_group") == 0


def test_nested_transactions_share_the_outer_one(store):
    with store.write() as conn:
        wf = _workflow(conn)
        with store.read() as inner:  # sees the outer write's uncommitted row
            assert inner.scalar("SELECT name FROM workflow WHERE id = ?", (wf,)) == "w"
        with store.write() as inner:
            inner.execute("UPDATE workflow SET name = 'x' WHERE id = ?", (wf,))
    with store.read() as conn:
        assert conn.scalar("SELECT name FROM workflow WHERE id = ?", (wf,)) == "x"


def test_constraint_violations_raise_and_cascades_delete(store):
    with store.write() as conn:
        wf = _workflow(conn)
        conn.insert("INSERT INTO file (workflow_id, name, path) VALUES (?, 'f', 'p')", (wf,))
    with store.write() as conn:
        conn.execute("DELETE FROM workflow WHERE id = ?", (wf,))
    with store.read() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM file") == 0
    # SQLite's IntegrityError is answered 409 by the server; PostgreSQL's becomes a ConflictError (409).
    with pytest.raises((sqlite3.IntegrityError, ConflictError)):
        with store.write() as conn:
            conn.insert("INSERT INTO file (workflow_id, name, path) VALUES (12345, 'f', 'p')")
    with store.write() as conn:  # the store is usable after a failed transaction
        assert _workflow(conn) > 0


def test_insert_and_insert_many_return_ids_in_order_never_reused(store):
    with store.write() as conn:
        wf = _workflow(conn)
        first = conn.insert_many("file", ("workflow_id", "name", "path"), [(wf, "a", "a"), (wf, "b", "b")])
        second = conn.insert_many("file", ("workflow_id", "name", "path"), [(wf, "c", "c")])
        single = conn.insert("INSERT INTO file (workflow_id, name, path) VALUES (?, 'd', 'd')", (wf,))
        assert conn.insert_many("file", ("workflow_id", "name", "path"), []) == []
        names = {r["id"]: r["name"] for r in conn.fetchall("SELECT id, name FROM file")}
    assert [names[i] for i in [*first, *second, single]] == ["a", "b", "c", "d"]
    assert first[1] + 1 == second[0] and second[0] + 1 == single
    with store.write() as conn:
        conn.execute("DELETE FROM file WHERE id = ?", (single,))
        again = conn.insert("INSERT INTO file (workflow_id, name, path) VALUES (?, 'e', 'e')", (wf,))
    assert again > single


def test_shared_sql_dialect(store):
    """What the services write once for both: `?`, a literal `%`, bare `user`, booleans as 0/1,
    SUM as a plain int, EXISTS, CTEs, ON CONFLICT DO NOTHING, UPDATE ... RETURNING, json_field."""
    with store.write() as conn:
        wf = _workflow(conn, "50% done")
        assert conn.scalar("SELECT user FROM workflow WHERE user = ? AND name LIKE '%\\%%' ESCAPE '\\'",
                           ("me",)) == "me"
        assert conn.fetchone("SELECT w.user AS u FROM workflow w WHERE w.id = ?", (wf,)) == {"u": "me"}
        conn.execute("UPDATE workflow SET compute_node_ignore_workflow_completion = ? WHERE id = ?", (True, wf))
        assert conn.scalar("SELECT compute_node_ignore_workflow_completion FROM workflow") == 1
        rr = conn.insert_many("resource_requirements", ("workflow_id", "name", "memory_bytes", "runtime_s"),
                              [(wf, "a", 3 << 40, 1.5), (wf, "b", 1 << 40, 2.25)])
        total = conn.scalar("SELECT SUM(memory_bytes) FROM resource_requirements")
        assert total == 4 << 40 and type(total) is int
        assert conn.scalar("SELECT SUM(runtime_s) FROM resource_requirements") == 3.75
        assert bool(conn.scalar("SELECT EXISTS (SELECT 1 FROM resource_requirements WHERE id = ?)", (rr[0],)))
        jobs = _jobs(conn, wf, 3, status=0)
        conn.execute("INSERT INTO job_depends_on (job_id, depends_on_job_id, workflow_id) VALUES (?, ?, ?)",
                     (jobs[1], jobs[0], wf))
        conn.execute("INSERT INTO job_depends_on (job_id, depends_on_job_id, workflow_id) VALUES (?, ?, ?)"
                     " ON CONFLICT DO NOTHING", (jobs[1], jobs[0], wf))
        down = conn.column("WITH RECURSIVE down(id) AS (SELECT ? UNION SELECT d.job_id FROM job_depends_on d"
                           " JOIN down ON d.depends_on_job_id = down.id) SELECT id FROM down ORDER BY id", (jobs[0],))
        assert down == jobs[:2]
        changed = conn.column("UPDATE job SET status = 2 WHERE id IN (?, ?) RETURNING id", (jobs[0], jobs[2]))
        assert sorted(changed) == [jobs[0], jobs[2]]
        ev = conn.insert("INSERT INTO event (workflow_id, timestamp, data) VALUES (?, ?, ?)",
                         (wf, 1_700_000_000_000, '{"category": "job", "n": 5}'))
        field = store.json_field("data", "category")
        assert conn.column(f"SELECT id FROM event WHERE {field} = ?", ("job",)) == [ev]
        number = store.json_field("data", "n")
        assert conn.column(f"SELECT id FROM event WHERE CAST({number} AS TEXT) = CAST(? AS TEXT)", (5,)) == [ev]


def test_integers_beyond_64_bits_are_overflow_errors(store):
    # The server answers OverflowError with a 422, on either backend.
    with pytest.raises(OverflowError):
        with store.read() as conn:
            conn.fetchall("SELECT id FROM workflow WHERE id = ?", (2**64,))
    with store.read() as conn:
        assert conn.fetchall("SELECT id FROM workflow WHERE id = ?", (2**63 - 1,)) == []


def test_nul_characters_in_text(store):
    """SQLite stores them; PostgreSQL cannot (a 422 naming the problem, not a 500)."""
    with store.write() as conn:
        wf = _workflow(conn)
    if store.dialect == "sqlite":
        with store.write() as conn:
            conn.execute("UPDATE workflow SET description = ? WHERE id = ?", ("a\x00b", wf))
        return
    with pytest.raises(InvalidInputError, match="cannot be stored"):
        with store.write() as conn:
            conn.execute("UPDATE workflow SET description = ? WHERE id = ?", ("a\x00b", wf))


def test_blocker_counts_follow_status_edges_and_deletions(store):
    with store.write() as conn:
        wf = _workflow(conn)
        a, b, c, d = _jobs(conn, wf, 4, status=0)
        edges = [(c, a), (c, b), (d, c)]
        for job, blocker in edges:
            conn.execute("INSERT INTO job_depends_on (job_id, depends_on_job_id, workflow_id) VALUES (?, ?, ?)",
                         (job, blocker, wf))
        assert _counts(conn) == {a: 0, b: 0, c: 2, d: 1}
        conn.execute("UPDATE job SET status = 5 WHERE id IN (?, ?)", (a, c))  # done: a and c in one statement
        assert _counts(conn) == {a: 0, b: 0, c: 1, d: 0}
        conn.execute("UPDATE job SET status = 0 WHERE id = ?", (c,))  # reset: d waits again
        assert _counts(conn)[d] == 1
        conn.execute("DELETE FROM job_depends_on WHERE job_id = ? AND depends_on_job_id = ?", (c, a))
        assert _counts(conn)[c] == 1  # a was done: no change
        conn.execute("DELETE FROM job WHERE id = ?", (b,))  # an unfinished blocker goes: c waits for nobody
        assert _counts(conn) == {a: 0, c: 0, d: 1}
    with store.write() as conn:  # deleting a workflow of unfinished, dependent jobs in one cascade
        wf2 = _workflow(conn, "w2")
        x, y = _jobs(conn, wf2, 2, status=0)
        conn.execute("INSERT INTO job_depends_on (job_id, depends_on_job_id, workflow_id) VALUES (?, ?, ?)",
                     (y, x, wf2))
        conn.execute("DELETE FROM workflow WHERE id = ?", (wf2,))
        assert conn.scalar("SELECT COUNT(*) FROM job WHERE workflow_id = ?", (wf2,)) == 0
        conn.execute("DELETE FROM job WHERE workflow_id = ?", (wf,))  # all jobs of a workflow at once
        assert _counts(conn) == {}


def test_file_hash_goes_when_the_path_changes(store):
    with store.write() as conn:
        wf = _workflow(conn)
        f = conn.insert("INSERT INTO file (workflow_id, name, path) VALUES (?, 'f', 'p')", (wf,))
        conn.execute("INSERT INTO file_content_hash (file_id, workflow_id, sha256) VALUES (?, ?, 'h')", (f, wf))
        conn.execute("UPDATE file SET path = 'p' WHERE id = ?", (f,))
        assert conn.scalar("SELECT COUNT(*) FROM file_content_hash") == 1
        conn.execute("UPDATE file SET path = 'q' WHERE id = ?", (f,))
        assert conn.scalar("SELECT COUNT(*) FROM file_content_hash") == 0


def test_writers_are_exclusive_across_stores(backend, tmp_path):
    """Read-modify-write from many threads and two store objects (two server processes on one
    database): no update is lost, because writers take turns."""
    with open_test_store(backend, tmp_path) as store:
        with store.write() as conn:
            wf = _workflow(conn)
        other = open_store(store.url if backend == "postgres" else store.path)
        try:
            def bump(s, n: int) -> None:
                for _ in range(n):
                    with s.write() as conn:
                        value = conn.scalar("SELECT compute_node_wait_for_new_jobs_seconds FROM workflow WHERE id = ?",
                                            (wf,))
                        conn.execute("UPDATE workflow SET compute_node_wait_for_new_jobs_seconds = ? WHERE id = ?",
                                     (value + 1, wf))

            threads = [threading.Thread(target=bump, args=(s, 40)) for s in (store, other) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            with store.read() as conn:
                assert conn.scalar("SELECT compute_node_wait_for_new_jobs_seconds FROM workflow") == 90 + 8 * 40
        finally:
            other.close()


def test_claims_get_disjoint_rows_and_exclude_other_writes(store):
    """Two claims at once take different ready jobs (PostgreSQL: side by side, FOR UPDATE SKIP
    LOCKED; SQLite: one after the other); a write waits for a claim in progress."""
    from torc.storage import queries as q

    with store.write() as conn:
        wf = _workflow(conn)
        _jobs(conn, wf, 6, status=2)  # ready
    holding, release = threading.Event(), threading.Event()
    claimed: dict[str, list[int]] = {}
    order: list[str] = []

    def first() -> None:
        with store.claim() as conn:
            claimed["first"] = conn.column(q.NEXT_READY.format(lock=conn.lock_claimed_rows), (wf, 3))
            conn.execute(f"UPDATE job SET status = 3 WHERE id IN ({','.join(map(str, claimed['first']))})")
            holding.set()
            release.wait(10)
            order.append("first committed")

    def second() -> None:
        with store.claim() as conn:
            claimed["second"] = conn.column(q.NEXT_READY.format(lock=conn.lock_claimed_rows), (wf, 3))
            order.append("second claimed")

    def writer() -> None:
        with store.write() as conn:
            conn.execute("UPDATE workflow SET description = 'x' WHERE id = ?", (wf,))
            order.append("write")

    a = threading.Thread(target=first)
    a.start()
    assert holding.wait(10)
    b, w = threading.Thread(target=second), threading.Thread(target=writer)
    b.start()
    w.start()
    if store.dialect == "postgres":
        b.join(10)
        assert not b.is_alive(), "a second claim does not wait for the first"
    release.set()
    for t in (a, b, w):
        t.join(10)
    assert len(claimed["first"]) == len(claimed["second"]) == 3
    assert not set(claimed["first"]) & set(claimed["second"])
    assert order.index("write") > order.index("first committed"), "writes wait for claims in progress"
    if store.dialect == "postgres":
        assert order.index("second claimed") < order.index("first committed")


def test_postgres_survives_dropped_connections(backend):
    """Connections the database dropped (a restart, an idle timeout) are replaced on the next use."""
    if backend != "postgres":
        pytest.skip("PostgreSQL only: SQLite has no server to lose")
    import uuid

    import psycopg

    from torc.storage.postgres import PostgresStore

    tag = f"torc_test_{uuid.uuid4().hex[:8]}"
    with postgres_schema() as url:
        store = PostgresStore(f"{url}&application_name={tag}", max_size=3)
        try:
            with store.write() as conn:
                wf = _workflow(conn)
            with psycopg.connect(url, autocommit=True) as admin:  # only this store's connections
                killed = admin.execute("SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                       " WHERE application_name = %s", (tag,)).fetchone()[0]
            assert killed == 3
            for _ in range(4):
                with store.read() as conn:
                    assert conn.scalar("SELECT name FROM workflow WHERE id = ?", (wf,)) == "w"
            with store.write() as conn:
                conn.execute("UPDATE workflow SET name = 'again' WHERE id = ?", (wf,))
        finally:
            store.close()

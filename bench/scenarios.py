"""The torc server benchmarks (`torc run`: runner_bench.py). Each returns Figures; no timing asserts."""

from __future__ import annotations

import sqlite3
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import (
    BULK_BATCH,
    OFFER,
    BenchError,
    Figure,
    create_jobs_in_batches,
    percentile,
    plain_jobs,
    proc_cpu,
    start_server,
)

from torc.client import TorcClient
from torc.storage.postgres import PostgresStore
from torc.storage.sqlite import SqliteStore

perf = time.perf_counter


def _log(msg: str) -> None:
    print(f"  .. {msg}", flush=True)


def _count(api: TorcClient, workflow_id: int, status: str | None = None) -> int:
    params: dict[str, Any] = {"workflow_id": workflow_id, "limit": 1}
    if status:
        params["status"] = status
    return api.get("jobs", **params)["total_count"]


# ---- 1. workflow creation -----------------------------------------------------------------


def sqlite_insert_baseline(workdir: Path, n_rows: int, repeats: int = 3) -> tuple[float, float]:
    """Median wall and CPU seconds to executemany n_rows plain job-like rows into a fresh WAL
    SQLite file (one transaction, synchronous=NORMAL like the server) from this process."""
    rows = [(i + 1, 1, f"j{i}", "true", 0) for i in range(n_rows)]
    times, cpu = [], []
    for r in range(repeats):
        path = workdir / f"baseline-{r}.sqlite"
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE job (id INTEGER PRIMARY KEY, workflow_id INTEGER NOT NULL, name TEXT NOT NULL,"
                     " command TEXT NOT NULL, status INTEGER NOT NULL)")
        t0, c0 = perf(), time.process_time()
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO job VALUES (?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
        times.append(perf() - t0)
        cpu.append(time.process_time() - c0)
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return statistics.median(times), statistics.median(cpu)


def bench_creation(workdir: Path, n_jobs: int, profile: dict[str, Any]) -> list[Figure]:
    half = n_jobs // 2
    stage1_n = n_jobs - half
    _log(f"creation: sqlite3 executemany baseline, {n_jobs:,} rows")
    baseline, baseline_cpu = sqlite_insert_baseline(workdir, n_jobs)
    with start_server(workdir, "creation", **profile) as server, server.client() as api:
        wf = api.create_workflow("bench-creation")["id"]
        stage1 = plain_jobs(wf, stage1_n, "s1_")
        _log(f"creation: {n_jobs:,} jobs via bulk_jobs in batches of {BULK_BATCH:,} ({half:,} with one dependency)")
        batch_s: list[float] = []
        ids1: list[int] = []
        pid = server.process.pid
        c0, p0 = proc_cpu(pid), time.process_time()
        t0 = perf()
        for start in range(0, stage1_n, BULK_BATCH):
            tb = perf()
            ids1 += create_jobs_in_batches(api, stage1[start:start + BULK_BATCH])
            batch_s.append(perf() - tb)
        for start in range(0, half, BULK_BATCH):
            tb = perf()
            chunk = [{"workflow_id": wf, "name": f"s2_{i}", "command": "true", "depends_on_job_ids": [ids1[i]]}
                     for i in range(start, min(start + BULK_BATCH, half))]
            create_jobs_in_batches(api, chunk)
            batch_s.append(perf() - tb)
        t_create = perf() - t0
        c1, p1 = proc_cpu(pid), time.process_time()
        _log(f"creation: created in {t_create:.2f} s; initialize_jobs")
        t1 = perf()
        api.post(f"workflows/{wf}/initialize_jobs")
        t_init = perf() - t1
        c2 = proc_cpu(pid)
        ready, blocked = _count(api, wf, "ready"), _count(api, wf, "blocked")
        if (ready, blocked) != (stage1_n, half):
            raise BenchError(f"after initialize: {ready} ready / {blocked} blocked, expected {stage1_n} / {half}")
        edges = api.get(f"workflows/{wf}/job_dependencies", limit=1)["total_count"]
        if edges != half:
            raise BenchError(f"expected {half} dependency rows, found {edges}")
    total = t_create + t_init
    base_label = f"sqlite3 executemany {n_jobs:,} rows"
    return [
        Figure("creation_create_s", f"create {n_jobs:,} jobs (bulk_jobs x{len(batch_s)})", t_create, "s",
               baseline, base_label, t_create / baseline, (c1 - c0) / baseline_cpu,
               extra={"batch_s": [round(b, 3) for b in batch_s], "dependency_rows": half,
                      "server_cpu_s": round(c1 - c0, 2), "client_cpu_s": round(p1 - p0, 2),
                      "baseline_cpu_s": round(baseline_cpu, 4)}),
        Figure("creation_initialize_s", f"initialize_jobs on {n_jobs:,} jobs", t_init, "s",
               baseline, base_label, t_init / baseline, (c2 - c1) / baseline_cpu,
               extra={"server_cpu_s": round(c2 - c1, 2)}),
        Figure("creation_jobs_per_s", "create + initialize throughput", n_jobs / total, "jobs/s",
               n_jobs / baseline, "sqlite3 executemany rows/s", total / baseline, (c2 - c0) / baseline_cpu,
               extra={"note": "ratio = torc (create+initialize) time / baseline time"}),
    ]


# ---- 2. claim throughput --------------------------------------------------------------------


class _Phases:
    """K threads, each with its own client: warm up, run `work` together, then the same
    number of GET /ping round trips each did in `work`, together. Returns both wall times."""

    def __init__(self, server: Any, runners: int,
                 work: Callable[[TorcClient], tuple[int, dict[str, list[float]]]]):
        self.url, self.pid, self.runners, self.work = server.url, server.process.pid, runners, work
        self.cpu: tuple[float, float] = (float("nan"), float("nan"))
        self.client_cpu: tuple[float, float] = (float("nan"), float("nan"))
        self.start = threading.Barrier(runners + 1)
        self.middle = threading.Barrier(runners + 1)
        self.work_end = [0.0] * runners
        self.ping_end = [0.0] * runners
        self.requests = [0] * runners
        self.latency: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        self.errors: list[BaseException] = []

    def _thread(self, index: int) -> None:
        try:
            with TorcClient(self.url, timeout=600) as client:
                client.ping()  # open the connection before the clock starts
                self.start.wait()
                n, lat = self.work(client)
                self.work_end[index] = perf()
                self.requests[index] = n
                with self.lock:
                    for key, values in lat.items():
                        self.latency.setdefault(key, []).extend(values)
                self.middle.wait()
                ping_lat = []
                for _ in range(n):
                    t = perf()
                    client.get("ping")
                    ping_lat.append(perf() - t)
                self.ping_end[index] = perf()
                with self.lock:
                    self.latency.setdefault("ping", []).extend(ping_lat)
        except threading.BrokenBarrierError:
            pass
        except BaseException as exc:  # reported by run()
            self.errors.append(exc)
            self.start.abort()
            self.middle.abort()

    def run(self) -> tuple[float, float]:
        threads = [threading.Thread(target=self._thread, args=(i,), daemon=True) for i in range(self.runners)]
        for t in threads:
            t.start()
        t0 = t1 = c0 = c1 = p0 = p1 = 0.0
        try:
            self.start.wait()
            t0, c0, p0 = perf(), proc_cpu(self.pid), time.process_time()
            self.middle.wait()
            t1, c1, p1 = perf(), proc_cpu(self.pid), time.process_time()
        except threading.BrokenBarrierError:
            pass
        for t in threads:
            t.join()
        self.cpu = (c1 - c0, proc_cpu(self.pid) - c1)
        self.client_cpu = (p1 - p0, time.process_time() - p1)
        if self.errors:
            raise BenchError(f"runner failed: {self.errors[0]!r}") from self.errors[0]
        return max(self.work_end) - t0, max(self.ping_end) - t1


def _ready_workflow(api: TorcClient, name: str, n_jobs: int) -> tuple[int, int]:
    wf = api.create_workflow(name)["id"]
    create_jobs_in_batches(api, plain_jobs(wf, n_jobs))
    api.post(f"workflows/{wf}/initialize_jobs")
    return wf, api.run_id(wf)


def _lat_summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": round(percentile(values, 50) * 1e3, 2),
            "p95_ms": round(percentile(values, 95) * 1e3, 2), "max_ms": round(max(values) * 1e3, 2)}


def bench_claims(workdir: Path, n_jobs: int, runners: int, limit: int, profile: dict[str, Any],
                 database: str | None = None, name: str = "claims") -> list[Figure]:
    with start_server(workdir, name, database=database, **profile) as server:
        with server.client() as api:
            wf, run_id = _ready_workflow(api, "bench-claims", n_jobs)
        claimed: list[int] = []
        claimed_lock = threading.Lock()
        claim_path = f"workflows/{wf}/claim_jobs_based_on_resources/{limit}"

        def batch_work(client: TorcClient) -> tuple[int, dict[str, list[float]]]:
            n, mine = 0, []
            lat_claim, lat_complete, sizes = [], [], []
            while True:
                t = perf()
                jobs = client.post(claim_path, OFFER)["jobs"]
                lat_claim.append(perf() - t)
                n += 1
                if not jobs:
                    break
                sizes.append(len(jobs))
                mine += [j["id"] for j in jobs]
                done = [{"job_id": j["id"], "status": "completed",
                         "result": {"return_code": 0, "exec_time_minutes": 0.0}} for j in jobs]
                t = perf()
                client.post(f"workflows/{wf}/complete_jobs", {"run_id": run_id, "jobs": done})
                lat_complete.append(perf() - t)
                n += 1
            with claimed_lock:
                claimed.extend(mine)
            return n, {"claim": lat_claim, "complete_jobs": lat_complete, "batch_size": sizes}

        _log(f"claims: {runners} runners, claim_jobs_based_on_resources/{limit} + complete_jobs over {n_jobs:,} jobs")
        phases = _Phases(server, runners, batch_work)
        work_s, ping_s = phases.run()
        _check_claims(server, wf, claimed, n_jobs)
        requests = sum(phases.requests)
        lat = phases.latency
        sizes = lat.pop("batch_size", [])
        batch_fig = Figure(
            "claims_batch_jobs_per_s", f"{runners} runners: claim/{limit} + complete_jobs, {n_jobs:,} jobs",
            n_jobs / work_s, "jobs/s", n_jobs / ping_s, f"same {requests:,} round trips as GET /ping, jobs/s",
            work_s / ping_s,
            phases.cpu[0] / phases.cpu[1],
            extra={"seconds": round(work_s, 3), "ping_seconds": round(ping_s, 3), "requests": requests,
                   "server_cpu_s": round(phases.cpu[0], 2), "ping_server_cpu_s": round(phases.cpu[1], 2),
                   "client_cpu_s": round(phases.client_cpu[0], 2), "ping_client_cpu_s": round(phases.client_cpu[1], 2),
                   "ms_per_job": round(work_s / n_jobs * 1e3, 3),
                   "mean_claim_batch": round(statistics.mean(sizes), 2) if sizes else 0,
                   "latency": {k: _lat_summary(v) for k, v in lat.items()},
                   "note": "ratio = wall time / wall time of the same number of /ping round trips"},
        )

    return [batch_fig]


def bench_claims_pg(workdir: Path, n_jobs: int, runners: int, limit: int, profile: dict[str, Any],
                    postgres_url: str) -> list[Figure]:
    """The batched claims benchmark on PostgreSQL (a fresh database on the server at postgres_url),
    next to the same benchmark on SQLite in this run: ratio = PostgreSQL jobs/s / SQLite jobs/s."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    try:
        admin = psycopg.connect(postgres_url, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        raise BenchError(f"claims-pg: no PostgreSQL at {postgres_url} ({exc}); run scripts/postgres-up.sh "
                         "or pass --postgres-url") from None
    db = f"torc_bench_{uuid.uuid4().hex[:8]}"
    with admin:
        admin.execute(f"CREATE DATABASE {db}")
        try:
            # A URL (torc-server takes postgresql:// URLs, not libpq key=value strings).
            url = urlunsplit(urlsplit(postgres_url)._replace(path=f"/{db}"))
            if not url.startswith(("postgres://", "postgresql://")):
                raise BenchError(f"claims-pg: --postgres-url must be a postgresql:// URL, got {postgres_url!r}")
            version = admin.execute("SHOW server_version").fetchone()[0]
            _log(f"claims-pg: SQLite first, then PostgreSQL {version} (database {db})")
            lite = bench_claims(workdir, n_jobs, runners, limit, profile, name="claims-sqlite")[0]
            pg = bench_claims(workdir, n_jobs, runners, limit, profile, database=url, name="claims-pg")[0]
            with psycopg.connect(url) as check:  # the server really used PostgreSQL
                stored = check.execute("SELECT COUNT(*) FROM job").fetchone()[0]
            if stored != n_jobs:
                raise BenchError(f"claims-pg: {stored} jobs in {db}, expected {n_jobs}: did the server use it?")
            admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {db}")
            direct_n = min(n_jobs, 8000)
            _log(f"claims-pg: the same work through the service layer in this process (no HTTP), {direct_n:,} jobs")
            lite_direct = _direct_claims(lambda: SqliteStore(workdir / "claims-direct.db"), direct_n, runners, limit)
            pg_direct = _direct_claims(lambda: PostgresStore(url), direct_n, runners, limit)
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    return [
        lite,
        Figure(
            "claims_pg_jobs_per_s", f"PostgreSQL {version}, {runners} runners: claim/{limit} + complete_jobs, "
            f"{n_jobs:,} jobs", pg.value, "jobs/s", lite.value, "the same on SQLite, jobs/s",
            pg.value / lite.value,
            pg.extra["server_cpu_s"] / lite.extra["server_cpu_s"] if lite.extra.get("server_cpu_s") else None,
            extra={**pg.extra, "pg_vs_ping_ratio": round(pg.ratio, 3) if pg.ratio else None,
                   "note": "ratio = PostgreSQL jobs/s / SQLite jobs/s (above 1: PostgreSQL is faster); "
                           "cpu ratio = torc-server CPU seconds on PostgreSQL / on SQLite "
                           "(the PostgreSQL backend's own CPU is not counted)"},
        ),
        Figure(
            "claims_pg_direct_jobs_per_s", f"PostgreSQL, service layer only (no HTTP), {runners} threads: "
            f"claim_next_jobs/{limit} + complete_jobs, {direct_n:,} jobs", pg_direct, "jobs/s", lite_direct,
            "the same on SQLite, jobs/s", pg_direct / lite_direct,
            extra={"note": "ratio = PostgreSQL / SQLite; the database is all there is here, so this is the "
                           "per-transaction cost (round trips) that HTTP handling hides in the figure above"},
        ),
    ]


def _direct_claims(open_store: Callable[[], Any], n_jobs: int, threads: int, limit: int) -> float:
    """jobs/s of claim_next_jobs + complete_jobs called by `threads` threads on one Context."""
    from torc.service import jobs as job_service
    from torc.service import lifecycle, workflows
    from torc.service.common import run_id_of
    from torc.service.context import Context

    store = open_store()
    try:
        ctx = Context(store=store)
        wf = workflows.create_workflow(ctx, {"name": "bench-direct", "user": "bench"})["id"]
        job_service.create_jobs(ctx, [{"workflow_id": wf, "name": f"j{i}", "command": "true"} for i in range(n_jobs)])
        lifecycle.initialize_jobs(ctx, wf)
        with store.read() as conn:
            run_id = run_id_of(conn, wf)
        claimed: list[int] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def work() -> None:
            try:
                while jobs := lifecycle.claim_next_jobs(ctx, wf, limit)["jobs"]:
                    with lock:
                        claimed.extend(j["id"] for j in jobs)
                    lifecycle.complete_jobs(ctx, wf, run_id, [
                        {"job_id": j["id"], "status": "completed", "result": {"return_code": 0, "exec_time_minutes": 0.0}}
                        for j in jobs])
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        t = perf()
        pool = [threading.Thread(target=work) for _ in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        seconds = perf() - t
        if errors:
            raise BenchError(f"direct claims failed: {errors[0]!r}") from errors[0]
        if len(claimed) != n_jobs or len(set(claimed)) != n_jobs:
            raise BenchError(f"direct claims inconsistent: {len(set(claimed))} distinct of {len(claimed)} / {n_jobs}")
        return n_jobs / seconds
    finally:
        store.close()


def bench_claims_per_job(workdir: Path, n_jobs: int, runners: int, profile: dict[str, Any]) -> list[Figure]:
    with start_server(workdir, "claims-per-job", **profile) as server:
        with server.client() as api:
            wf, run_id = _ready_workflow(api, "bench-claims-per-job", n_jobs)
        claimed: list[int] = []
        claimed_lock = threading.Lock()
        stamp = datetime.now(UTC).isoformat()

        def single_work(client: TorcClient) -> tuple[int, dict[str, list[float]]]:
            n, mine = 0, []
            lat_claim, lat_start, lat_complete = [], [], []
            while True:
                t = perf()
                jobs = client.post(f"workflows/{wf}/claim_next_jobs", limit=1)["jobs"]
                lat_claim.append(perf() - t)
                n += 1
                if not jobs:
                    break
                job_id = jobs[0]["id"]
                mine.append(job_id)
                t = perf()
                client.put(f"jobs/{job_id}/start_job/{run_id}/1")
                lat_start.append(perf() - t)
                t = perf()
                client.post(f"jobs/{job_id}/complete_job/completed/{run_id}",
                            {"return_code": 0, "exec_time_minutes": 0.0, "completion_time": stamp,
                             "compute_node_id": 1})
                lat_complete.append(perf() - t)
                n += 2
            with claimed_lock:
                claimed.extend(mine)
            return n, {"claim_next_jobs": lat_claim, "start_job": lat_start, "complete_job": lat_complete}

        _log(f"claims: {runners} runners, claim_next_jobs(1) + start_job + complete_job over {n_jobs:,} jobs")
        phases = _Phases(server, runners, single_work)
        work_s, ping_s = phases.run()
        _check_claims(server, wf, claimed, n_jobs)
        requests = sum(phases.requests)
    return [Figure(
        "claims_per_job_ms", f"{runners} runners: per-job claim/start/complete, {n_jobs:,} jobs",
        work_s / n_jobs * 1e3, "ms/job", ping_s / n_jobs * 1e3, f"same {requests:,} round trips as GET /ping, ms/job",
        work_s / ping_s, phases.cpu[0] / phases.cpu[1],
        extra={"seconds": round(work_s, 3), "ping_seconds": round(ping_s, 3), "requests": requests,
               "server_cpu_s": round(phases.cpu[0], 2), "ping_server_cpu_s": round(phases.cpu[1], 2),
               "client_cpu_s": round(phases.client_cpu[0], 2), "ping_client_cpu_s": round(phases.client_cpu[1], 2),
               "jobs_per_s": round(n_jobs / work_s, 1),
               "latency": {k: _lat_summary(v) for k, v in phases.latency.items()},
               "note": "ratio = wall time / wall time of the same number of /ping round trips"},
    )]


def _check_claims(server: Any, wf: int, claimed: list[int], n_jobs: int) -> None:
    counts = Counter(claimed)
    twice = [j for j, c in counts.items() if c > 1]
    if twice or len(counts) != n_jobs:
        raise BenchError(f"claims inconsistent: {len(counts)} distinct of {n_jobs}, {len(twice)} claimed twice")
    with server.client() as api:
        if not api.get(f"workflows/{wf}/is_complete")["is_complete"]:
            raise BenchError("workflow not complete after every job was completed")


# ---- 3. fan-in unblocking -----------------------------------------------------------------


def _fanin_run(workdir: Path, name: str, leaves: int, batch: int, with_dependent: bool, reverse: bool,
               profile: dict[str, Any]) -> tuple[float, float, list[float]]:
    """Seconds to complete every leaf through complete_jobs in batches (claiming is not timed)."""
    with start_server(workdir, name, **profile) as server, server.client() as api:
        wf = api.create_workflow(name)["id"]
        leaf_ids = create_jobs_in_batches(api, plain_jobs(wf, leaves, "leaf"))
        collect = None
        if with_dependent:
            collect = api.post("bulk_jobs", {"jobs": [{"workflow_id": wf, "name": "collect", "command": "true",
                                                       "depends_on_job_ids": leaf_ids}]})["jobs"][0]["id"]
        api.post(f"workflows/{wf}/initialize_jobs")
        run_id = api.run_id(wf)
        got: list[int] = []
        while True:
            jobs = api.post(f"workflows/{wf}/claim_next_jobs", limit=BULK_BATCH)["jobs"]
            if not jobs:
                break
            got += [j["id"] for j in jobs]
        if sorted(got) != sorted(leaf_ids):
            raise BenchError(f"{name}: claimed {len(got)} jobs, expected the {leaves} leaves")
        order = sorted(leaf_ids, reverse=reverse)
        batch_s = []
        c0 = proc_cpu(server.process.pid)
        t0 = perf()
        for start in range(0, leaves, batch):
            tb = perf()
            api.post(f"workflows/{wf}/complete_jobs", {"run_id": run_id, "jobs": [
                {"job_id": j, "status": "completed", "result": {"return_code": 0, "exec_time_minutes": 0.0}}
                for j in order[start:start + batch]]})
            batch_s.append(perf() - tb)
        elapsed = perf() - t0
        cpu = proc_cpu(server.process.pid) - c0
        if collect is not None:
            status = api.get(f"jobs/{collect}")["status"]
            if status != "ready":
                raise BenchError(f"{name}: collect job is {status!r} after all leaves completed, expected ready")
        elif not api.get(f"workflows/{wf}/is_complete")["is_complete"]:
            raise BenchError(f"{name}: workflow not complete")
    return elapsed, cpu, batch_s


def _edge_batches(batch_s: list[float]) -> dict[str, float]:
    k = max(1, len(batch_s) // 10)
    return {"first_10pct_batch_ms": round(statistics.mean(batch_s[:k]) * 1e3, 2),
            "last_10pct_batch_ms": round(statistics.mean(batch_s[-k:]) * 1e3, 2)}


def bench_fanin(workdir: Path, leaves: int, batch: int, reverse_variant: bool, profile: dict[str, Any]
                ) -> list[Figure]:
    figures = []
    orders = [False, True] if reverse_variant else [False]
    for reverse in orders:
        tag = "reverse" if reverse else "id"
        _log(f"fan-in: {leaves:,} leaves, completed in {tag} order in batches of {batch}, no dependent (baseline)")
        base_s, base_c, base_b = _fanin_run(workdir, f"leaves-{tag}", leaves, batch, False, reverse, profile)
        _log(f"fan-in: {leaves:,} leaves -> 1 collect job, {tag} order")
        fan_s, fan_c, fan_b = _fanin_run(workdir, f"fanin-{tag}", leaves, batch, True, reverse, profile)
        suffix = "" if not reverse else "_reverse"
        figures.append(Figure(
            f"fanin_us_per_leaf{suffix}",
            f"fan-in {leaves:,}->1, leaves completed in {tag} order (batches of {batch})",
            fan_s / leaves * 1e6, "us/leaf", base_s / leaves * 1e6, "same leaves, no dependent (us/leaf)",
            fan_s / base_s, fan_c / base_c if base_c else None,
            extra={"seconds": round(fan_s, 3), "baseline_seconds": round(base_s, 3),
                   "server_cpu_s": round(fan_c, 2), "baseline_server_cpu_s": round(base_c, 2), **_edge_batches(fan_b),
                   "baseline": _edge_batches(base_b)},
        ))
    return figures


# ---- 4. a parameterized spec -> workflow ------------------------------------------------------


def bench_spec(workdir: Path, n_pairs: int, profile: dict[str, Any]) -> list[Figure]:
    """torc's whole create path for a spec that expands to 2*n_pairs jobs and files: expansion,
    validation, reference resolution, bulk requests, then initialize_jobs. Baseline: executemany of
    the same number of job rows into SQLite (as in the creation benchmark)."""
    from torc.client.from_spec import create_from_file

    n_jobs = 2 * n_pairs
    spec = workdir / "spec_bench.yaml"
    spec.write_text(
        f'name: bench-spec\nparameters:\n  i: "1:{n_pairs}"\n'
        "jobs:\n"
        '  - {name: "work_{i}", command: "cat ${files.input.in_{i}} > ${files.output.out_{i}}", use_parameters: [i]}\n'
        '  - {name: "post_{i}", command: "wc -l ${files.input.out_{i}}", use_parameters: [i]}\n'
        "files:\n"
        '  - {name: "in_{i}", path: "data/in_{i}.txt", use_parameters: [i]}\n'
        '  - {name: "out_{i}", path: "data/out_{i}.txt", use_parameters: [i]}\n'
    )
    _log(f"spec: sqlite3 executemany baseline, {n_jobs:,} rows")
    baseline, _ = sqlite_insert_baseline(workdir, n_jobs)
    with start_server(workdir, "spec", **profile) as server, server.client() as api:
        _log(f"spec: create_from_file for {n_jobs:,} jobs and {n_jobs:,} files")
        t0 = perf()
        wf = create_from_file(api, spec)
        t_create = perf() - t0
        t1 = perf()
        api.post(f"workflows/{wf}/initialize_jobs")
        t_init = perf() - t1
        ready, blocked = _count(api, wf, "ready"), _count(api, wf, "blocked")
        if (ready, blocked) != (n_pairs, n_pairs):
            raise BenchError(f"after initialize: {ready} ready / {blocked} blocked, expected {n_pairs} each")
    total = t_create + t_init
    return [Figure("spec_create_initialize_s", f"spec -> workflow: {n_jobs:,} jobs + {n_jobs:,} files, create + initialize",
                   total, "s", baseline, f"sqlite3 executemany {n_jobs:,} rows", total / baseline,
                   extra={"create_s": round(t_create, 2), "initialize_s": round(t_init, 2),
                          "jobs_per_s": round(n_jobs / total)})]

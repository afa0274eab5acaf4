"""No SQL is built from client text: SQL-injection strings in every query parameter (filters, sort_by,
paging) and string path parameter of every list endpoint get a 4xx or a normal (empty) page, and the
database is intact afterwards.

Audit (issue 9): src/torc/service and src/torc/storage build SQL with f-strings only from
- table and column names of the schema (storage/tables.py): sort_by must be in `Table.sort_columns`
  (service/common.order_clause, a 422 otherwise), filters in `Table.filters` / `_LIST_FILTERS`, and
  INSERT/UPDATE columns come from `Table.to_row`, which keeps only the table's own columns;
- integers the server produced or validated (`in_clause` writes `int(i)`, JobStatus values);
- fixed query fragments (storage/queries.py, the claim order of a validated sort method).
Every request value is a bound `?` parameter.
"""

from __future__ import annotations

import re
import sqlite3
from urllib.parse import quote

import httpx
import pytest

from torc.server.app import API_PREFIX, ServerConfig, create_app

pytestmark = pytest.mark.timeout(120)

INJECTIONS = [
    "' OR '1'='1",
    "1 OR 1=1",
    "x'; DROP TABLE job; --",
    "id; DROP TABLE workflow",
    "name DESC, (SELECT 1)",
    "1) UNION SELECT * FROM workflow --",
    '" OR ""="',
    "%' --",
    "name`",
    "(SELECT sqlite_version())",
    "id\u0000; DELETE FROM job",
    "name COLLATE NOCASE; UPDATE job SET status = 5",
]
PAGING = {"offset", "limit"}


def _list_endpoints() -> list[tuple[str, list[str]]]:
    doc = create_app(ServerConfig()).openapi()
    out = []
    for path, item in doc["paths"].items():
        op = item.get("get")
        if not op or path.endswith("/stream"):
            continue
        params = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
        if params:
            out.append((path.removeprefix(API_PREFIX), params))
    return out


ENDPOINTS = _list_endpoints()


def _snapshot(client) -> dict[str, int]:
    wfs = client.get("workflows", limit=1)["total_count"]
    per_wf = {}
    for wf in client.iter_items("workflows"):
        per_wf[wf["id"]] = client.get("jobs", workflow_id=wf["id"], limit=1)["total_count"]
    return {"workflows": wfs, **{f"jobs_{k}": v for k, v in per_wf.items()}}


def test_every_list_endpoint_has_query_parameters_to_attack():
    names = {p for _, params in ENDPOINTS for p in params}
    assert {"sort_by", "name", "status", "offset", "limit"} <= names
    assert len(ENDPOINTS) >= 15


def test_sql_injection_in_every_list_parameter_is_refused_or_harmless(backend_server):
    with backend_server.client() as c:
        wf = c.post("workflows", {"name": "target", "user": "alice"})["id"]
        c.post("bulk_jobs", {"jobs": [{"workflow_id": wf, "name": f"j{i}", "command": "true"} for i in range(5)]})
        c.post("bulk_files", {"files": [{"workflow_id": wf, "name": "f", "path": "/p"}]})
        c.post("workflows", {"name": "other", "user": "bob"})
        before = _snapshot(c)
    leaks = []
    with httpx.Client(base_url=backend_server.url, timeout=30) as http:
        for path, params in ENDPOINTS:
            for param in params:
                for text in INJECTIONS:
                    url = re.sub(r"\{id\}|\{workflow_id\}", str(wf), path).replace("{user_name}", "alice")
                    query = {"workflow_id": wf} if "workflow_id" in params else {}
                    query[param] = text
                    response = http.get(url, params=query)
                    assert response.status_code < 500, (url, param, text, response.text[:300])
                    body = response.json()
                    if response.status_code >= 400:
                        assert isinstance(body["error"]["message"], str), body
                        continue
                    items = body.get("items") if isinstance(body, dict) else None
                    if items and param not in PAGING | {"sort_by", "reverse_sort"}:
                        leaks.append((url, param, text, len(items)))  # a filter no row matches let rows through
            # path parameters that are text
            if "{user_name}" in path:
                for text in INJECTIONS:
                    url = path.replace("{user_name}", quote(text, safe=""))
                    response = http.get(url)
                    assert response.status_code < 500, (url, response.text[:300])
    assert not leaks, leaks
    with backend_server.client() as c:
        assert _snapshot(c) == before
        assert c.get("jobs", workflow_id=wf, sort_by="name")["count"] == 5
    if backend_server.database.suffix == ".db":
        with sqlite3.connect(backend_server.database) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"workflow", "job", "file", "result"} <= tables


def test_sort_by_takes_only_known_columns(backend_server):
    with backend_server.client() as c:
        wf = c.post("workflows", {"name": "sort", "user": "u"})["id"]
    with httpx.Client(base_url=backend_server.url, timeout=30) as http:
        ok = http.get("jobs", params={"workflow_id": wf, "sort_by": "name", "reverse_sort": True})
        assert ok.status_code == 200
        for text in ("name; DROP TABLE job", "name DESC", "1", "(SELECT 1)", "job.name", "NAME"):
            response = http.get("jobs", params={"workflow_id": wf, "sort_by": text})
            assert response.status_code == 422, (text, response.text)
            assert "sortable columns" in response.json()["error"]["message"]

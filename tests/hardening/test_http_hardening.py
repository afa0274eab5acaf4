"""A real torc-server over real sockets: oversized and malformed requests always get a 4xx with a
JSON error body ({"error": {"message": ...}}), never a 500 and never a traceback. The in-process
schemathesis fuzz (tests/api/test_contract.py) cannot see these: the HTTP parser, Content-Length,
chunked bodies, raw bytes in paths and bodies."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.hardening.conftest import LIMIT, raw_request, read_response
from torc.server.app import API_PREFIX, ServerConfig, create_app
from torc.server.limits import DEFAULT_MAX_REQUEST_BYTES

pytestmark = pytest.mark.timeout(60)


def assert_json_error(status: int, headers: dict[str, str], body: bytes, expected: int | None = None) -> dict:
    assert 400 <= status < 500, (status, body[:500])
    if expected is not None:
        assert status == expected, (status, body[:500])
    assert headers.get("content-type", "").startswith("application/json"), (headers, body[:500])
    payload = json.loads(body)
    assert isinstance(payload["error"]["message"], str) and payload["error"]["message"], payload
    assert "Traceback" not in body.decode("utf-8", "replace")
    return payload


def path_of(url: str) -> str:
    return urlsplit(url).path


# ---- request size limit -------------------------------------------------------------------------


def test_declared_content_length_over_the_limit_is_refused_before_the_body_is_sent(hardened_server):
    # Only the headers go out: the 413 must come back without the server waiting for 10 GB.
    head = (f"POST {path_of(hardened_server.url)}/bulk_jobs HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {10 * 1024**3}")
    status, headers, body = raw_request(hardened_server.url, head)
    payload = assert_json_error(status, headers, body, 413)
    assert str(LIMIT) in payload["error"]["message"]


def test_chunked_body_over_the_limit_is_refused_while_streaming(hardened_server):
    parts = urlsplit(hardened_server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as sock:
        sock.sendall(f"POST {parts.path}/workflows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"x" * 65536
        sent = 0
        try:  # keep streaming well past the limit; the server may answer and close at any point
            while sent < 8 * LIMIT:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, headers, body = read_response(sock)
    assert_json_error(status, headers, body, 413)


def test_lying_content_length_cannot_smuggle_a_larger_body(hardened_server):
    """Content-Length is the framing: a body past it is the next request, never part of this one."""
    big = json.dumps({"name": "x" * (2 * LIMIT)}).encode()
    head = (f"POST {path_of(hardened_server.url)}/workflows HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nContent-Length: 10\r\nConnection: close")
    status, headers, body = raw_request(hardened_server.url, head, big)
    assert_json_error(status, headers, body, 422)  # the first 10 bytes are not JSON


def test_bodies_under_the_limit_are_served(hardened_server):
    with hardened_server.client() as c:
        wf = c.post("workflows", {"name": "under-limit", "user": "u"})["id"]
        jobs = [{"workflow_id": wf, "name": f"j{i}", "command": "echo " + "x" * 100} for i in range(LIMIT // 200)]
        body = json.dumps({"jobs": jobs}).encode()
        assert LIMIT // 2 < len(body) < LIMIT
        created = c.post("bulk_jobs", {"jobs": jobs})["jobs"]
        assert len(created) == len(jobs)


def test_invalid_content_length_is_a_client_error(hardened_server):
    head = (f"POST {path_of(hardened_server.url)}/workflows HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nContent-Length: -5\r\nConnection: close")
    status, _, _ = raw_request(hardened_server.url, head)
    assert 400 <= status < 500  # the HTTP parser refuses it (plain text) before the app is called


def test_default_limit_lets_a_full_workflows_create_batch_through(tmp_path):
    """`torc workflows create` posts 10,000 jobs per request (~3 MB for realistic commands): far under
    the default limit; and the limit can be turned off."""
    from torc.storage.sqlite import SqliteStore

    assert DEFAULT_MAX_REQUEST_BYTES >= 16 * 3 * 1024 * 1024
    store = SqliteStore(tmp_path / "torc.db")
    try:
        for limit in (DEFAULT_MAX_REQUEST_BYTES, 0):
            app = create_app(ServerConfig(max_request_bytes=limit), store=store)
            with TestClient(app, base_url=f"http://testserver{API_PREFIX}/") as http:
                wf = http.post("workflows", json={"name": "big", "user": "u"}).json()["id"]
                jobs = [{"workflow_id": wf, "name": f"job_{i:06d}", "command": f"python simulate.py --scenario {i}"
                         f" --output /scratch/user/out/{i}.parquet"} for i in range(10_000)]
                response = http.post("bulk_jobs", json={"jobs": jobs})
                assert response.status_code == 200, response.text[:500]
                assert len(response.json()["jobs"]) == 10_000
    finally:
        store.close()


def test_the_limit_applies_in_process_too(tmp_path):
    from torc.storage.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "torc.db")
    try:
        app = create_app(ServerConfig(max_request_bytes=1000), store=store)
        with TestClient(app, base_url=f"http://testserver{API_PREFIX}/") as http:
            response = http.post("workflows", json={"name": "x" * 2000, "user": "u"})
            assert response.status_code == 413
            assert "1000 bytes" in response.json()["error"]["message"]

            def stream():  # no Content-Length: counted as it arrives
                for _ in range(10):
                    yield b" " * 500

            response = http.post("workflows", content=stream(), headers={"Content-Type": "application/json"})
            assert response.status_code == 413, response.text
            assert http.post("workflows", json={"name": "ok", "user": "u"}).status_code == 200
    finally:
        store.close()


# ---- malformed requests -------------------------------------------------------------------------

JSON_HEADERS = {"Content-Type": "application/json"}
BAD_BODIES = {
    "malformed_json": (b'{"name": "x",', JSON_HEADERS),
    "truncated_string": (b'{"name": "x', JSON_HEADERS),
    "empty_body": (b"", JSON_HEADERS),
    "array_body": (b"[]", JSON_HEADERS),
    "number_body": (b"1", JSON_HEADERS),
    "string_body": (b'"workflow"', JSON_HEADERS),
    "null_body": (b"null", JSON_HEADERS),
    "nan": (b'{"name": "x", "user": "u", "compute_node_expiration_buffer_seconds": NaN}', JSON_HEADERS),
    "huge_integer": (b'{"name": "x", "user": "u", "compute_node_expiration_buffer_seconds": ' + b"9" * 40 + b"}",
                     JSON_HEADERS),
    "huge_negative": (b'{"name": "x", "user": "u", "compute_node_wait_for_new_jobs_seconds": -' + b"9" * 25 + b"}",
                      JSON_HEADERS),
    "invalid_utf8": (b'{"name": "caf\xe9", "user": "u"}', JSON_HEADERS),
    "lone_surrogate": (b'{"name": "\\ud800", "user": "u"}', JSON_HEADERS),
    "deep_nesting": (b'{"name": "x", "user": "u", "metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                     JSON_HEADERS),
    "wrong_types": (b'{"name": ["x"], "user": {"a": 1}}', JSON_HEADERS),
    "text_plain": (b'{"name": "x", "user": "u"', {"Content-Type": "text/plain"}),
    "form_encoded": (b"name=x&user=u", {"Content-Type": "application/x-www-form-urlencoded"}),
    "multipart_garbage": (b"--xx\r\ngarbage", {"Content-Type": "multipart/form-data; boundary=xx"}),
    "xml": (b"<workflow><name>x</name></workflow>", {"Content-Type": "application/xml"}),
    "bad_charset": (b'{"name": "x"', {"Content-Type": "application/json; charset=klingon"}),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
@pytest.mark.parametrize("endpoint", ["workflows", "bulk_jobs", "jobs", "workflows/1/claim_next_jobs"])
def test_malformed_bodies_get_a_json_4xx(hardened_server, case, endpoint):
    body, headers = BAD_BODIES[case]
    with httpx.Client(base_url=hardened_server.url + "/", timeout=20) as http:
        response = http.post(endpoint, content=body, headers=headers)
    if response.status_code < 400:  # a body the endpoint does not read (claim_next_jobs) may be ignored
        assert endpoint.endswith("claim_next_jobs") or case == "text_plain", response.text[:300]
        return
    assert_json_error(response.status_code, dict(response.headers), response.content)


BAD_PATHS = [
    "workflows/-1", "workflows/0", "workflows/" + "9" * 30, "workflows/-" + "9" * 30, "workflows/1e5",
    "workflows/0x10", "workflows/1.5", "workflows/%00", "workflows/%FF", "workflows/%C3%A9", "workflows/NaN",
    "workflows/" + "1" * 20_000, "workflows/" + "a" * 20_000, "jobs/..%2F..%2Fetc%2Fpasswd", "jobs/%2e%2e/%2e%2e",
    "workflows/1/../../etc/passwd", "files/..%5c..%5cwindows", "workflows/%E2%80%AE1", "no_such_endpoint",
    "workflows/1/no_such_action", "jobs/1/start_job/-1/" + "9" * 25, "jobs/9223372036854775808",
    "jobs/9223372036854775807", "results/-9223372036854775809",
]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_bad_paths_get_a_json_4xx(hardened_server, path):
    with httpx.Client(base_url=hardened_server.url + "/", timeout=20) as http:
        for method in ("GET", "PUT", "DELETE", "POST"):
            response = http.request(method, path, json={} if method in ("PUT", "POST") else None)
            assert_json_error(response.status_code, dict(response.headers), response.content)


@pytest.mark.parametrize("path", [
    "/dash-static/../../../../etc/passwd", "/dash-static/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/dash-static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/torc-service/v1/../../../../etc/passwd",
])
def test_path_traversal_reads_no_file_outside_the_static_folder(hardened_server, path):
    parts = urlsplit(hardened_server.url)
    status, _, body = raw_request(hardened_server.url, f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                                                       "Connection: close")
    assert b"root:" not in body
    assert status in (400, 404, 200) and status != 500
    if status == 200:  # normalized to a page of the dashboard, not a file
        assert b"<html" in body.lower() or b"<!doctype" in body.lower()


QUERIES = [
    {"offset": -1}, {"limit": -1}, {"offset": "9" * 30}, {"limit": "9" * 30}, {"offset": "abc"},
    {"workflow_id": "9" * 30}, {"workflow_id": -1}, {"status": "nope"}, {"sort_by": "nope"},
    {"sort_by": "name; DROP TABLE job"}, {"reverse_sort": "maybe"}, {"unknown_param": "x" * 5000},
    {"include_relationships": "2"}, {"name": "\u0000\u202e\U0001f600"}, {"limit": "1e3"},
]


@pytest.mark.parametrize("params", QUERIES, ids=lambda p: next(iter(p)))
@pytest.mark.parametrize("endpoint", ["workflows", "jobs", "files", "user_data", "results", "events",
                                      "compute_nodes", "resource_requirements"])
def test_bad_query_parameters_are_a_json_4xx_or_ignored(hardened_server, endpoint, params):
    with hardened_server.client() as c:
        wf = c.post("workflows", {"name": "queries", "user": "u"})["id"]
    query = {"workflow_id": wf, **params} if endpoint != "workflows" else params
    with httpx.Client(base_url=hardened_server.url + "/", timeout=20) as http:
        response = http.get(endpoint, params=query)
        if response.status_code == 200:
            assert isinstance(response.json()["items"], list)
        else:
            assert_json_error(response.status_code, dict(response.headers), response.content)


def test_raw_bytes_in_the_request_line_never_reach_a_handler_as_a_500(hardened_server):
    parts = urlsplit(hardened_server.url)
    for target in (f"{parts.path}/workflows/\xff\xfe", f"{parts.path}/jobs?status=\xff",
                   f"{parts.path}/workflows?name=%ZZ", f"{parts.path}/workflows/{'%' * 3}"):
        status, headers, body = raw_request(hardened_server.url, f"GET {target} HTTP/1.1\r\nHost: x\r\n"
                                                                 "Connection: close")
        assert 200 <= status < 500 and status != 500, (target, status, body[:300])
        assert b"Traceback" not in body


def test_unicode_and_control_characters_round_trip(hardened_server):
    names = ["ジョブ", "\u202eevil", "tab\tnewline\n", "emoji \U0001f600", "nul\u0000byte", "x" * 10_000]
    with hardened_server.client() as c:
        for name in names:
            wf = c.post("workflows", {"name": name, "user": name})
            assert c.get(f"workflows/{wf['id']}")["name"] == name

"""GET/PUT /workflows/{id}/file_hashes: the content-hash baseline of `reinitialize --hash` (an extension)."""

from __future__ import annotations

import pytest

from tests.helpers import make_workflow

SHA_A = "a" * 64
SHA_B = "0123456789abcdef" * 4


@pytest.fixture
def wf(api):
    return make_workflow(api, "hashes")


def _file(api, wf, name):
    return api.post("files", {"workflow_id": wf, "name": name, "path": f"/data/{name}.txt"})["id"]


def _error(resp, status):
    assert resp.status_code == status, resp.text
    message = resp.json()["error"]["message"]
    assert isinstance(message, str) and message
    return message


def test_a_new_workflow_has_no_hashes(api, wf):
    assert api.get(f"workflows/{wf}/file_hashes") == {"items": []}


def test_put_replaces_the_whole_set(api, wf):
    f1, f2, f3 = (_file(api, wf, n) for n in ("one", "two", "three"))
    first = [{"file_id": f2, "sha256": SHA_A, "st_mtime": 1700000000.25, "size": 12},
             {"file_id": f1, "sha256": SHA_B.upper(), "st_mtime": 1700000001.5, "size": 0}]
    out = api.put(f"workflows/{wf}/file_hashes", {"items": first})
    expected = [{"file_id": f1, "sha256": SHA_B, "st_mtime": 1700000001.5, "size": 0},
                {"file_id": f2, "sha256": SHA_A, "st_mtime": 1700000000.25, "size": 12}]
    assert out == {"items": expected}  # ordered by file id, hex digests in lower case
    assert api.get(f"workflows/{wf}/file_hashes") == {"items": expected}

    api.put(f"workflows/{wf}/file_hashes", {"items": [{"file_id": f3, "sha256": SHA_A}]})
    assert api.get(f"workflows/{wf}/file_hashes") == {"items": [{"file_id": f3, "sha256": SHA_A}]}
    api.put(f"workflows/{wf}/file_hashes", {"items": []})
    assert api.get(f"workflows/{wf}/file_hashes") == {"items": []}


def test_workflows_keep_their_own_sets(api, wf):
    other = make_workflow(api, "other")
    mine, theirs = _file(api, wf, "mine"), _file(api, other, "theirs")
    api.put(f"workflows/{wf}/file_hashes", {"items": [{"file_id": mine, "sha256": SHA_A}]})
    api.put(f"workflows/{other}/file_hashes", {"items": [{"file_id": theirs, "sha256": SHA_B}]})
    api.put(f"workflows/{wf}/file_hashes", {"items": []})
    assert api.get(f"workflows/{other}/file_hashes")["items"] == [{"file_id": theirs, "sha256": SHA_B}]


def test_files_of_another_workflow_are_refused_and_nothing_changes(api, http, wf):
    other = make_workflow(api, "other")
    mine, theirs = _file(api, wf, "mine"), _file(api, other, "theirs")
    api.put(f"workflows/{wf}/file_hashes", {"items": [{"file_id": mine, "sha256": SHA_A}]})
    bad = {"items": [{"file_id": mine, "sha256": SHA_B}, {"file_id": theirs, "sha256": SHA_B}]}
    message = _error(http.put(f"workflows/{wf}/file_hashes", json=bad), 422)
    assert str(theirs) in message and f"workflow {wf}" in message
    missing = {"items": [{"file_id": 987654, "sha256": SHA_B}]}
    assert "987654" in _error(http.put(f"workflows/{wf}/file_hashes", json=missing), 422)
    assert api.get(f"workflows/{wf}/file_hashes")["items"] == [{"file_id": mine, "sha256": SHA_A}]


def test_unknown_workflow_is_404(http):
    assert "workflow with id 999999 not found" in _error(http.get("workflows/999999/file_hashes"), 404)
    assert "999999" in _error(http.put("workflows/999999/file_hashes", json={"items": []}), 404)


@pytest.mark.parametrize("body", [
    None,
    [],
    "items",
    {},
    {"items": "x"},
    {"items": [1]},
    {"items": [{"sha256": SHA_A}]},
    {"items": [{"file_id": "x", "sha256": SHA_A}]},
    {"items": [{"file_id": 1}]},
    {"items": [{"file_id": 1, "sha256": "not a digest"}]},
    {"items": [{"file_id": 1, "sha256": SHA_A + "0"}]},
    {"items": [{"file_id": 1, "sha256": 5}]},
    {"items": [{"file_id": 1, "sha256": SHA_A, "size": -1}]},
    {"items": [{"file_id": 1, "sha256": SHA_A, "size": 2**70}]},
    {"items": [{"file_id": 2**70, "sha256": SHA_A}]},
    {"items": [{"file_id": 1, "sha256": SHA_A, "st_mtime": "yesterday"}]},
])
def test_malformed_bodies_are_422(http, wf, body):
    _error(http.put(f"workflows/{wf}/file_hashes", json=body), 422)


def test_malformed_json_and_non_finite_times_are_422(api, http, wf):
    f = _file(api, wf, "f")
    headers = {"content-type": "application/json"}
    _error(http.put(f"workflows/{wf}/file_hashes", content=b"{not json", headers=headers), 422)
    nan = b'{"items": [{"file_id": %d, "sha256": "%s", "st_mtime": NaN}]}' % (f, SHA_A.encode())
    _error(http.put(f"workflows/{wf}/file_hashes", content=nan, headers=headers), 422)


def test_a_file_listed_twice_is_422(api, http, wf):
    f = _file(api, wf, "f")
    body = {"items": [{"file_id": f, "sha256": SHA_A}, {"file_id": f, "sha256": SHA_B}]}
    assert "more than once" in _error(http.put(f"workflows/{wf}/file_hashes", json=body), 422)


def test_hashes_go_with_their_file_and_workflow(api, store, wf):
    keep, drop = _file(api, wf, "keep"), _file(api, wf, "drop")
    api.put(f"workflows/{wf}/file_hashes", {"items": [{"file_id": keep, "sha256": SHA_A},
                                                      {"file_id": drop, "sha256": SHA_B}]})
    api.delete(f"files/{drop}")
    assert api.get(f"workflows/{wf}/file_hashes")["items"] == [{"file_id": keep, "sha256": SHA_A}]
    api.delete(f"workflows/{wf}")
    with store.read() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM file_content_hash") == 0


def test_a_file_moved_to_another_path_loses_its_hash(api, wf):
    moved, kept = _file(api, wf, "moved"), _file(api, wf, "kept")
    api.put(f"workflows/{wf}/file_hashes", {"items": [{"file_id": moved, "sha256": SHA_A, "st_mtime": 5.0},
                                                      {"file_id": kept, "sha256": SHA_B, "st_mtime": 5.0}]})
    api.put(f"files/{kept}", {**api.get(f"files/{kept}"), "st_mtime": 6.0})  # same path: the hash stays
    api.put(f"files/{moved}", {**api.get(f"files/{moved}"), "path": "/elsewhere/moved.txt"})
    assert [h["file_id"] for h in api.get(f"workflows/{wf}/file_hashes")["items"]] == [kept]

"""--enforce-access-control on every endpoint: the route walk below takes the operations from the
app itself, so a new route without an access rule fails here."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.test_crud import SAMPLES, sample
from tests.auth.conftest import ADMINS, PASSWORDS
from tests.conftest import BACKENDS
from torc.client import TorcClient
from torc.server.app import API_PREFIX
from torc.server.authz import PUBLIC, rule_for

pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)  # the access queries on every adapter

# Operations every authenticated user may call; what they return is filtered (tested below).
FILTERED = {"list_workflows", "list_access_groups"}
# Operations open to everyone, even anonymous callers: health and version checks.
GLOBAL = {"ping", "get_version"}
EXCEPTIONS = FILTERED | GLOBAL


def headers(user: str | None) -> dict[str, str]:
    if user is None:
        return {}
    token = base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def as_user(app, user: str | None) -> TestClient:
    """Another client of the same running app, sending `user`'s credentials."""
    return TestClient(app, base_url=f"http://testserver{API_PREFIX}/", raise_server_exceptions=False,
                      headers=headers(user))


def torc_client(app, user: str) -> TorcClient:
    client = TorcClient("http://testserver" + API_PREFIX, auth=(user, PASSWORDS[user]))
    client.http = as_user(app, user)
    return client


def operations(app) -> list[tuple[str, str, str]]:
    """(operation id, method, path) of every API operation the app serves."""
    return sorted((op["operationId"], method.upper(), path)
                  for path, ops in app.openapi()["paths"].items() for method, op in ops.items())


@pytest.fixture
def enforced(make_client, auth_file):
    client = make_client(auth_file=str(auth_file), enforce_access_control=True, admin_users=ADMINS)
    return client.app


@pytest.fixture
def world(enforced) -> dict[str, Any]:
    """alice's workflow with one record of every kind, bob's workflow, and group `team` (alice its
    admin, carol a member) that alice's workflow is shared with."""
    alice, root = torc_client(enforced, "alice"), torc_client(enforced, "root")
    wf = alice.post("workflows", {"name": "a", "user": "alice"})["id"]
    ids: dict[str, Any] = {"workflows": wf}
    for segment in SAMPLES:
        ids[segment] = alice.post(segment, sample(alice, segment, wf))["id"]
    ids["jobs"] = alice.post("bulk_jobs", {"jobs": [{"workflow_id": wf, "name": "j", "command": "true"}]})["jobs"][0]["id"]
    ids["failure_handlers"] = alice.post("failure_handlers", {"workflow_id": wf, "name": "fh", "rules": "[]"})["id"]
    ids["action"] = alice.post(f"workflows/{wf}/actions", {"trigger_type": "on_workflow_start",
                                                           "action_type": "run_commands",
                                                           "action_config": {"commands": ["true"]}})["id"]
    group = root.post("access_groups", {"name": "team"})["id"]
    root.post(f"access_groups/{group}/members", {"user_name": "alice", "role": "admin"})
    alice.post(f"access_groups/{group}/members", {"user_name": "carol"})
    alice.post(f"workflows/{wf}/access_groups", {"group_id": group})
    ids["access_groups"] = group
    ids["bob_wf"] = torc_client(enforced, "bob").post("workflows", {"name": "b", "user": "bob"})["id"]
    return ids


def request_for(method: str, path: str, ids: dict[str, Any]) -> dict[str, Any]:
    """A request aimed at alice's records: every path parameter, workflow_id and body field point there."""
    path = path.removeprefix(API_PREFIX)
    segment = path.split("/")[1]
    values = {"id": ids.get(segment, ids["workflows"]), "action_id": ids["action"], "group_id": ids["access_groups"],
              "limit": 1, "status": "completed", "run_id": 1, "compute_node_id": ids["compute_nodes"],
              "worker": "host1", "user_name": "alice", "workflow_id": ids["workflows"]}
    wf = ids["workflows"]
    body = {"workflow_id": wf, "user": "alice", "name": "x", "group_id": ids["access_groups"], "user_name": "bob",
            "jobs": [{"workflow_id": wf, "name": "x", "command": "true"}],
            "files": [{"workflow_id": wf, "name": "x", "path": "x"}],
            "user_data": [{"workflow_id": wf, "name": "x"}]}
    return {"method": method, "url": path.lstrip("/").format(**values), "params": {"workflow_id": wf},
            "json": body if method in ("POST", "PUT") else None}


def test_every_operation_has_an_access_rule(enforced):
    missing = [op for op, method, path in operations(enforced)
               if rule_for(op, path.removeprefix(API_PREFIX), method) is None]
    assert not missing, f"operations without an access rule (add one to torc.server.authz): {missing}"
    assert {op for op, m, p in operations(enforced) if rule_for(op, p.removeprefix(API_PREFIX), m) == PUBLIC} == GLOBAL
    assert rule_for("brand_new", "/brand_new_things", "GET") is None  # unknown shapes are refused


def test_other_users_get_403_on_every_operation(enforced, world):
    bob, anonymous = as_user(enforced, "bob"), as_user(enforced, None)
    wrong = []
    for op, method, path in operations(enforced):
        if op in EXCEPTIONS:
            continue
        request = request_for(method, path, world)
        response = bob.request(**request)
        if response.status_code != 403:
            wrong.append((op, "bob", response.status_code, response.text[:120]))
        response = anonymous.request(**request)
        if response.status_code != 401:
            wrong.append((op, "anonymous", response.status_code, response.text[:120]))
    assert not wrong, "\n".join(map(str, wrong))
    # nothing of alice's changed
    alice = torc_client(enforced, "alice")
    assert alice.get(f"workflows/{world['workflows']}")["name"] == "a"
    assert alice.get(f"jobs/{world['jobs']}")["name"] == "j"


def test_owner_group_member_and_admin_pass(enforced, world):
    """Every read of alice's records works for alice, carol (group member) and root (admin)."""
    wrong = []
    for user in ("alice", "carol", "root"):
        client = as_user(enforced, user)
        for op, method, path in operations(enforced):
            if method != "GET" or op == "stream_workflow_events" or op in EXCEPTIONS:
                continue
            if op == "list_user_groups" and user == "carol":
                continue  # the request asks for alice's groups: only alice and admins may
            response = client.request(**request_for(method, path, world))
            if response.status_code in (401, 403):
                wrong.append((op, user, response.status_code, response.text[:120]))
    assert not wrong, "\n".join(map(str, wrong))


def test_missing_records_are_404_not_403(enforced, world):
    bob = as_user(enforced, "bob")
    for url in ("jobs/999999", "files/999999", "workflows/999999", "workflows/999999/status",
                "results/999999", "access_groups/999999"):
        assert bob.get(url).status_code == 404, url


def test_list_endpoints_are_filtered(enforced, world):
    wf, bob_wf = world["workflows"], world["bob_wf"]

    def visible(user: str) -> set[int]:
        return {w["id"] for w in as_user(enforced, user).get("workflows").json()["items"]}

    assert visible("alice") == {wf}
    assert visible("bob") == {bob_wf}
    assert visible("carol") == {wf}  # shared with her group
    assert visible("root") == {wf, bob_wf}
    page = as_user(enforced, "bob").get("workflows").json()
    assert page["total_count"] == 1
    assert as_user(enforced, None).get("workflows").status_code == 401
    # workflow-scoped lists check the workflow
    assert as_user(enforced, "bob").get("jobs", params={"workflow_id": bob_wf}).status_code == 200
    assert as_user(enforced, "bob").get("jobs", params={"workflow_id": wf}).status_code == 403
    assert len(as_user(enforced, "carol").get("jobs", params={"workflow_id": wf}).json()["items"]) == 2
    # access groups: members see their groups, admins all
    names = {g["name"] for g in as_user(enforced, "carol").get("access_groups").json()["items"]}
    assert names == {"team"}
    assert as_user(enforced, "bob").get("access_groups").json()["items"] == []
    assert {g["name"] for g in as_user(enforced, "root").get("access_groups").json()["items"]} == {"team", "admin"}


def test_workflow_creation_and_sharing_rules(enforced, world):
    bob, carol, root = as_user(enforced, "bob"), as_user(enforced, "carol"), as_user(enforced, "root")
    response = bob.post("workflows", json={"name": "x", "user": "alice"})
    assert response.status_code == 403 and "owned by 'alice'" in response.json()["error"]["message"]
    assert bob.post("workflows", json={"name": "x", "user": "bob"}).status_code == 200
    assert root.post("workflows", json={"name": "x", "user": "alice"}).status_code == 200  # admins may
    group = world["access_groups"]
    # carol is a plain member: she may not add members or share bob's workflow; bob may not join himself
    assert carol.post(f"access_groups/{group}/members", json={"user_name": "bob"}).status_code == 403
    assert bob.post(f"access_groups/{group}/members", json={"user_name": "bob"}).status_code == 403
    assert bob.post(f"workflows/{world['bob_wf']}/access_groups", json={"group_id": group}).status_code == 200
    assert carol.get(f"workflows/{world['bob_wf']}").status_code == 200  # bob shared it with her group
    # the system admin group cannot be changed through the API, not even by an admin
    admin_group = next(g["id"] for g in root.get("access_groups").json()["items"] if g["name"] == "admin")
    assert root.post(f"access_groups/{admin_group}/members", json={"user_name": "bob"}).status_code == 403
    assert root.delete(f"access_groups/{admin_group}/members/root").status_code == 403
    assert root.delete(f"access_groups/{admin_group}").status_code == 403
    members = root.get(f"access_groups/{admin_group}/members").json()["items"]
    assert [(m["user_name"], m["role"]) for m in members] == [("root", "admin")]


def test_admin_group_is_rebuilt_at_start(make_client, auth_file):
    first = make_client(auth_file=str(auth_file), admin_users=("root", "alice"))
    store = first.app.state.ctx.store
    from torc.server.app import ServerConfig, create_app
    from torc.server.auth import AuthSettings

    app = create_app(ServerConfig(auth=AuthSettings(auth_file=str(auth_file), admin_users=("bob",))), store=store)
    with TestClient(app, base_url=f"http://testserver{API_PREFIX}/") as again:
        group = next(g for g in again.get("access_groups").json()["items"] if g["name"] == "admin")
        members = again.get(f"access_groups/{group['id']}/members").json()["items"]
    assert [m["user_name"] for m in members] == ["bob"]


def test_without_enforcement_everything_is_allowed(make_client, auth_file):
    client = make_client(auth_file=str(auth_file))
    wf = client.post("workflows", json={"name": "a", "user": "alice"}, auth=("alice", "alice-pw")).json()["id"]
    assert client.get(f"workflows/{wf}", auth=("bob", "bob-pw")).status_code == 200
    assert client.get(f"workflows/{wf}").status_code == 200


def test_an_update_cannot_move_a_record_into_another_users_workflow(enforced, world):
    bob = torc_client(enforced, "bob")
    mine = bob.post("files", {"workflow_id": world["bob_wf"], "name": "f", "path": "f"})
    response = as_user(enforced, "bob").put(f"files/{mine['id']}", json={**mine, "workflow_id": world["workflows"]})
    assert response.status_code == 403, response.text

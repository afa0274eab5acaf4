"""torc-htpasswd: add, verify, list, remove and hash, on a real file."""

from __future__ import annotations

import stat

from click.testing import CliRunner

from torc.cli.htpasswd_cmd import main
from torc.server import htpasswd


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def test_add_verify_list_remove(tmp_path):
    path = tmp_path / "htpasswd"
    result = run("add", "--file", str(path), "--password", "s3cret", "--cost", "4", "alice")
    assert result.exit_code == 0 and "Added user alice" in result.output
    result = run("add", "--file", str(path), "--cost", "4", "bob", input="pw\npw\n")  # prompted, confirmed
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert run("list", "--file", str(path)).output.split() == ["alice", "bob"]
    assert run("verify", "--file", str(path), "--password", "s3cret", "alice").exit_code == 0
    wrong = run("verify", "--file", str(path), "--password", "nope", "alice")
    assert wrong.exit_code == 1 and "NOT correct" in wrong.output
    # changing a password keeps one line per user
    assert "Updated" in run("add", "--file", str(path), "--password", "new", "--cost", "4", "alice").output
    assert run("verify", "--file", str(path), "--password", "new", "alice").exit_code == 0
    assert run("list", "--file", str(path)).output.split() == ["alice", "bob"]
    assert run("remove", "--file", str(path), "alice").exit_code == 0
    assert run("list", "--file", str(path)).output.split() == ["bob"]
    missing = run("remove", "--file", str(path), "alice")
    assert missing.exit_code == 1 and "not in" in missing.output
    # the server reads what the tool wrote
    assert set(htpasswd.load(path)) == {"bob"}


def test_hash_prints_a_line_for_the_admin(tmp_path, monkeypatch):
    monkeypatch.setenv("USER", "dana")
    result = run("hash", "--password", "pw", "--cost", "4")
    user, _, hashed = result.output.strip().partition(":")
    assert user == "dana" and hashed.startswith("$2b$04$")
    assert htpasswd.check_password("pw", hashed)


def test_comments_are_kept_and_bad_names_refused(tmp_path):
    path = tmp_path / "htpasswd"
    path.write_text("# admins below\n")
    run("add", "--file", str(path), "--password", "pw", "--cost", "4", "erin")
    assert path.read_text().startswith("# admins below\nerin:$2b$04$")
    result = run("add", "--file", str(path), "--password", "pw", "bad:name")
    assert result.exit_code == 1 and "invalid user name" in result.output
    assert run("list", "--file", str(tmp_path / "missing")).exit_code == 1

"""Worker address syntax and worker files (no SSH needed)."""

from __future__ import annotations

import pytest

from torc.core.errors import InvalidInputError
from torc.remote.operations import output_dir_for, worker_command
from torc.remote.ssh import SshSettings
from torc.remote.workers import parse_worker, parse_worker_file, parse_worker_lines, parse_workers


@pytest.mark.parametrize(("text", "user", "host", "port"), [
    ("node1", None, "node1", None),
    ("alice@node1", "alice", "node1", None),
    ("alice@node1.example.org:2222", "alice", "node1.example.org", 2222),
    ("10.0.0.5:22", None, "10.0.0.5", 22),
    ("[::1]", None, "::1", None),
    ("[::1]:2222", None, "::1", 2222),
    ("bob@[fe80::1%eth0]:22", "bob", "fe80::1%eth0", 22),
    ("  host  ", None, "host", None),
])
def test_parse_worker(text, user, host, port):
    worker = parse_worker(text)
    assert (worker.user, worker.host, worker.port) == (user, host, port)


@pytest.mark.parametrize(("text", "hint"), [
    ("", "empty"),
    ("host:", "expected [user@]host[:port]"),
    ("host:abc", "expected"),
    ("host:70000", "between 1 and 65535"),
    ("::1", "put IPv6 addresses in brackets"),
    ("[notipv6]:22", "not an IPv6 address"),
    ("a@b@c", "expected"),
    ("host name", "expected"),
    ("-oProxyCommand=x", "expected"),
])
def test_bad_worker_is_a_clear_error(text, hint):
    with pytest.raises(InvalidInputError, match="invalid worker") as info:
        parse_worker(text)
    assert hint in info.value.message


def test_worker_file_comments_and_duplicates(tmp_path):
    path = tmp_path / "workers.txt"
    path.write_text("# cluster A\nnode1\n\n  alice@node2:2222   # fast one\n[::1]:2200\n")
    assert [w.original for w in parse_worker_file(path)] == ["node1", "alice@node2:2222", "[::1]:2200"]
    with pytest.raises(InvalidInputError, match=r"workers.txt:2: invalid worker 'no de'"):
        parse_worker_lines("ok\nno de\n", "workers.txt")
    with pytest.raises(InvalidInputError, match="duplicate worker.*'bob@node1:22'.*same host as 'node1'"):
        parse_worker_lines("node1\nbob@node1:22\n", "w.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(InvalidInputError, match="no workers in"):
        parse_worker_file(tmp_path / "empty.txt")
    with pytest.raises(InvalidInputError, match="cannot read worker file"):
        parse_worker_file(tmp_path / "missing.txt")


def test_same_host_other_port_is_not_a_duplicate():
    assert len(parse_workers(["node1:22", "node1:2222", "Node1:2200"])) == 3
    with pytest.raises(InvalidInputError, match="duplicate"):
        parse_workers(["NODE1", "node1:22"])


def test_ssh_and_scp_command_lines():
    settings = SshSettings(config_file="/tmp/cfg", options=["User=x"], connect_timeout=7)
    ssh = settings.ssh_command(parse_worker("me@[::1]:2222"), "true")
    assert ssh[:5] == ["ssh", "-F", "/tmp/cfg", "-o", "User=x"]
    assert {"BatchMode=yes", "ConnectTimeout=7", "StrictHostKeyChecking=accept-new"} <= set(ssh)
    assert ssh[-4:] == ["-T", "--", "me@::1", "true"] and ssh[ssh.index("-p") + 1] == "2222"
    scp = settings.scp_from_command(parse_worker("me@[::1]:2222"), "d/x.tgz", "/tmp/x")
    assert scp[-2:] == ["me@[::1]:d/x.tgz", "/tmp/x"] and scp[scp.index("-P") + 1] == "2222"


def test_ssh_settings_from_env(monkeypatch):
    monkeypatch.setenv("TORC_SSH_CONFIG", "/etc/cfg")
    monkeypatch.setenv("TORC_SSH_OPTIONS", "Port=2 'IdentityFile=/k k'")
    settings = SshSettings.from_env(options=["User=u"])
    assert settings.config_file == "/etc/cfg"
    assert settings.options == ["Port=2", "IdentityFile=/k k", "User=u"]


def test_worker_command_and_output_dir_placeholders():
    assert worker_command("torc", "http://h:1/torc-service/v1", 3, "out", 0.5, num_cpus=2, memory_gb=1.5,
                          num_gpus=0, max_parallel_jobs=4) == [
        "torc", "--url", "http://h:1/torc-service/v1", "run", "3", "--output-dir", "out", "--poll-interval", "0.5",
        "--num-cpus", "2", "--memory-gb", "1.5", "--num-gpus", "0", "--max-parallel-jobs", "4"]
    assert output_dir_for("/tmp/o_{host}_{port}_{user}", parse_worker("u@h1:2222")) == "/tmp/o_h1_2222_u"
    assert output_dir_for("o_{host}", parse_worker("[::1]")) == "o___1"

"""Shared by the CLI tests: one real torc-server per test module and a CliRunner bound to it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from tests.integration.conftest import start_server
from torc.cli.main import main
from torc.server.process import ServerProcess

Invoke = Callable[..., Result]


def start(tmp: Path) -> ServerProcess:
    return start_server(tmp / "torc.db", tmp / "server.log")


def make_invoke(url: str) -> Invoke:
    runner = CliRunner(env={"COLUMNS": "250"})

    def invoke(*args: Any, fmt: str = "json", input: str | None = None) -> Result:
        return runner.invoke(main, ["--url", url, "-f", fmt, *map(str, args)], input=input)

    return invoke


def ok(cli: Invoke, *args: Any) -> Any:
    """Run with -f json; stdout must be nothing but JSON."""
    result = cli(*args)
    assert result.exit_code == 0, (args, result.output)
    return json.loads(result.stdout)


def table(cli: Invoke, *args: Any) -> str:
    result = cli(*args, fmt="table")
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


def assert_error(result: Result, *fragments: str) -> None:
    """A server error: exit code 1, nothing on stdout, exactly one 'Error:' line on stderr."""
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def assert_usage_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    for fragment in fragments:
        assert fragment in result.stderr

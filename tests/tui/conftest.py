"""Fixtures of the TUI tests: a client of the module's real server (`server` in tests/conftest.py),
and the app wired to its own client of that server."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot

from torc.client import TorcClient
from torc.server.process import ServerProcess
from torc.tui import TorcApp, TuiData


@pytest.fixture
def client(server: ServerProcess) -> Iterator[TorcClient]:
    with server.client() as c:
        yield c


@pytest.fixture
def make_app(server: ServerProcess, tmp_path: Path) -> Iterator[Callable[..., TorcApp]]:
    """make_app(output_dir=..., refresh_seconds=...) -> a TorcApp on its own client of the server."""
    clients: list[TorcClient] = []

    def make(output_dir: Path | None = None, refresh_seconds: float = 0.3) -> TorcApp:
        clients.append(TorcClient(server.url))
        return TorcApp(TuiData(clients[-1], output_dir or tmp_path / "out"), server_label="test server",
                       refresh_seconds=refresh_seconds)

    yield make
    for c in clients:
        c.close()


async def until(pilot: Pilot, condition: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    """Let the app run until `condition()` is true (polled), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await pilot.pause(0.05)


def text_of(renderable: Any, width: int = 200) -> str:
    """Plain text of what a widget shows (a Rich renderable or a markup string)."""
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()

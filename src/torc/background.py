"""Starting long `torc` commands in the background for the TUI, the dashboard and the MCP server."""

from __future__ import annotations

import subprocess
from pathlib import Path


def launch_detached(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start argv in its own session (it outlives whoever started it), stdin closed, stdout and
    stderr appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)

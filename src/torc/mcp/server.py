"""The MCP server: TorcTools' methods registered as MCP tools with the official `mcp` SDK.

Read-only tools carry the read-only hint; with `read_only=True` the mutating tools are not
registered at all, so a client cannot even list them. Every tool answers JSON text; a failure
(unknown id, invalid spec, refused operation) is an error result whose text says what was wrong.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from torc.core.errors import TorcError
from torc.mcp.tools import MUTATING, READ_ONLY, TorcTools

log = logging.getLogger("torc.mcp")

INSTRUCTIONS = """Tools for torc, a workflow orchestration system: workflows are sets of jobs
(shell commands) with dependencies, run by job runners that report to a torc server. Start with
list_workflows and get_workflow_status; explain_job_failure tells why a job failed. To fix
failures: recover_workflow (out of memory / time; try dry_run first), reset_failed_jobs,
list_pending_failed_jobs + resolve_pending_failed_jobs. create_workflow takes a spec as text;
validate_workflow_spec checks one without creating it."""


def _as_tool(method: Callable[..., Any]) -> Callable[..., str]:
    """The method, answering indented JSON text and turning torc errors into tool errors."""

    @functools.wraps(method)
    def tool(**kwargs: Any) -> str:
        try:
            value = method(**kwargs)
        except TorcError as exc:
            raise ToolError(exc.message) from None
        return json.dumps(value, indent=1, default=str)

    return tool


def build_server(tools: TorcTools, read_only: bool = False) -> MCPServer:
    """An MCPServer exposing the torc tools (read-only ones only, with read_only)."""
    from torc import __version__

    server: MCPServer = MCPServer("torc", instructions=INSTRUCTIONS, version=__version__)
    for name in READ_ONLY:
        server.add_tool(_as_tool(getattr(tools, name)), name=name, structured_output=False,
                        annotations=ToolAnnotations(read_only_hint=True))
    if not read_only:
        for name in MUTATING:
            server.add_tool(_as_tool(getattr(tools, name)), name=name, structured_output=False,
                            annotations=ToolAnnotations(read_only_hint=False,
                                                        destructive_hint=name in ("cancel_workflow",
                                                                                  "reset_failed_jobs")))
    return server

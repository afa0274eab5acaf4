"""Request-scoped access to the server context."""

from __future__ import annotations

from fastapi import Request

from torc.service.context import Context


def get_ctx(request: Request) -> Context:
    return request.app.state.ctx

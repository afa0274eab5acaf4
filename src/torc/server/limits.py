"""Request size limit: bodies over `max_bytes` get 413 and a JSON error body, before they are read.

A declared Content-Length over the limit is refused at once, without reading a byte of the body.
A chunked body (or one whose Content-Length lies) is counted chunk by chunk as the app receives
it, and refused as soon as the count passes the limit, so no more than the limit is ever held.

The default (64 MiB) is about twenty times the largest request `torc workflows create` sends for a
100,000-job workflow: it posts jobs in batches of 10,000, about 3 MB each (docs/server.md).
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from torc.server.responses import error_response

DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024


def _too_large(limit: int) -> str:
    return f"request body too large: the limit is {limit} bytes (torc-server --max-request-bytes)"


class RequestSizeLimit:
    """Pure ASGI middleware (no buffering): 413 for bodies over `max_bytes`; 0 or None turns it off."""

    def __init__(self, app: ASGIApp, max_bytes: int | None = DEFAULT_MAX_REQUEST_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_bytes
        if scope["type"] != "http" or not limit:
            await self.app(scope, receive, send)
            return
        declared = [v for k, v in scope.get("headers", ()) if k.lower() == b"content-length"]
        if declared:
            try:
                length = int(declared[0])
            except ValueError:
                length = -1
            if length < 0:
                await error_response(400, "invalid Content-Length header")(scope, receive, send)
                return
            if length > limit:
                await error_response(413, _too_large(limit))(scope, receive, send)
                return

        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the app's body read; the app's HTTPException handler answers
                    # 413 with the JSON error body (FastAPI re-raises HTTPException from body reads).
                    raise HTTPException(413, _too_large(limit))
            return message

        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except HTTPException as exc:  # one that got past the app's handlers (e.g. a raw ASGI route)
            if exc.status_code != 413 or started:
                raise
            await error_response(413, str(exc.detail))(scope, receive, send)

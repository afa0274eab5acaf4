"""Server-Sent Events: GET /workflows/{id}/events/stream?level=info, live only, no replay."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import StreamingResponse

from torc.core.errors import InvalidInputError
from torc.server.deps import get_ctx
from torc.server.fastjson import FastJSONRoute
from torc.service import workflows
from torc.service.context import Context
from torc.service.events import SEVERITIES

router = APIRouter(route_class=FastJSONRoute)
KEEPALIVE_SECONDS = 15.0


def _frame(event_type: str, data: dict) -> bytes:
    return f"event: {event_type}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@router.get("/workflows/{id}/events/stream", operation_id="stream_workflow_events",
            responses={200: {"content": {"text/event-stream": {}}}})
async def stream_workflow_events(request: Request, ctx: Annotated[Context, Depends(get_ctx)], id: int,
                                 level: str = "info"):
    if level not in SEVERITIES:
        raise InvalidInputError(f"invalid level {level!r}; expected one of {', '.join(SEVERITIES)}")
    await asyncio.to_thread(workflows.get_workflow, ctx, id)  # 404 before the stream opens
    subscription = ctx.bus.subscribe(id, level)

    async def frames():
        try:
            yield b": connected\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(subscription.queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield b": keep-alive\n\n"
                    continue
                if event is None:  # the server is shutting down
                    return
                dropped = subscription.take_dropped()
                if dropped:
                    yield _frame("warning", {"dropped": dropped})
                yield _frame(event.event_type, event.to_json())
        finally:
            subscription.close()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(frames(), media_type="text/event-stream", headers=headers)

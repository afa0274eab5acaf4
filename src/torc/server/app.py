"""The ASGI app factory. Nothing is built at import time: settings come from the entry point."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import FastAPI

import torc
from torc.server.errors import install_error_handlers
from torc.server.routes import access, events_stream, jobs, resources, service, workflows
from torc.service import lifecycle
from torc.service.context import Context, Settings
from torc.storage import Store, open_store

API_PREFIX = "/torc-service/v1"
log = logging.getLogger("torc.server")


@dataclass
class ServerConfig:
    database: str = "torc.db"
    completion_check_interval_secs: float = 30.0
    threads: int | None = None


async def _safety_net(ctx: Context, interval: float) -> None:
    """Periodically release dependents of completions that were not processed in-request."""
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(lifecycle.process_pending_unblocks, ctx)
        except Exception:  # keep the loop alive; the next tick retries
            log.exception("background unblocking pass failed")


def create_app(config: ServerConfig | None = None, store: Store | None = None) -> FastAPI:
    config = config or ServerConfig()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = store is None
        ctx = Context(
            store=store or open_store(config.database),
            settings=Settings(completion_check_interval_secs=config.completion_check_interval_secs),
        )
        app.state.ctx = ctx
        if config.threads:
            import anyio.to_thread

            anyio.to_thread.current_default_thread_limiter().total_tokens = config.threads
        await asyncio.to_thread(lifecycle.process_pending_unblocks, ctx)  # catch up after a restart
        task = asyncio.create_task(_safety_net(ctx, max(config.completion_check_interval_secs, 0.05)))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if owned:
                ctx.store.close()

    app = FastAPI(
        title="torc",
        version=torc.__version__,
        description="Distributed workflow orchestration: torc's REST API (wire-compatible with torc 0.12).",
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    install_error_handlers(app)
    for module in (service, workflows, jobs, resources, access, events_stream):
        app.include_router(module.router, prefix=API_PREFIX)
    from torc.dashboard import mount_dashboard

    mount_dashboard(app)  # the web dashboard at `/`, after the API routes
    return app

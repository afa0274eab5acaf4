"""The ASGI app factory. Nothing is built at import time: settings come from the entry point."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import Depends, FastAPI

import torc
from torc.server.auth import Authenticator, AuthMiddleware, AuthSettings
from torc.server.authz import authorize
from torc.server.errors import install_error_handlers
from torc.server.limits import DEFAULT_MAX_REQUEST_BYTES, RequestSizeLimit
from torc.server.routes import access, events_stream, jobs, resources, service, workflows
from torc.service import authz, lifecycle
from torc.service.context import Context, Settings
from torc.storage import Store, open_store

API_PREFIX = "/torc-service/v1"
log = logging.getLogger("torc.server")


@dataclass
class ServerConfig:
    database: str = "torc.db"
    completion_check_interval_secs: float = 30.0
    threads: int | None = None
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES  # 413 above this; 0 turns the limit off
    auth: AuthSettings = field(default_factory=AuthSettings)


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
        await asyncio.to_thread(authz.rebuild_admin_group, ctx, config.auth.admin_users)
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
    app.add_middleware(RequestSizeLimit, max_bytes=config.max_request_bytes)
    authenticator = Authenticator(config.auth)  # a bad auth file fails here, naming the line
    app.state.auth_settings = config.auth
    app.state.authenticator = authenticator
    if authenticator.enabled:
        app.add_middleware(AuthMiddleware, authenticator=authenticator,
                           public_paths=frozenset({f"{API_PREFIX}/ping"}))
    for module in (service, workflows, jobs, resources, access, events_stream):
        app.include_router(module.router, prefix=API_PREFIX, dependencies=[Depends(authorize)])
    from torc.dashboard import mount_dashboard

    mount_dashboard(app)  # the web dashboard at `/`, after the API routes
    return app

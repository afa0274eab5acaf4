"""The dashboard as Starlette routes: a standalone app for `torc dash`, or routes added to torc-server.

Every page is rendered on the server from data the dashboard fetches with TorcClient over the REST
API, so the browser only ever talks to the dashboard (no CORS, even when the API is elsewhere), and
the dashboard can read the runner's log files and monitoring databases next to it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from torc.client import TorcClient
from torc.dashboard.actions import Launcher, launch_detached

HERE = Path(__file__).parent
API_PATH = "torc-service/v1"
STATIC_PREFIX = "/dash-static"
OUTPUT_DIR_ENV = "TORC_DASH_OUTPUT_DIR"


@dataclass
class DashboardConfig:
    """api_url None: the API of the server the dashboard is served by (torc-server at `/`).
    output_dir: the runners' output directory (job_stdio/, resource_utilization/) and where runs
    started from the dashboard write."""

    api_url: str | None = None
    output_dir: Path = field(default_factory=lambda: Path(os.environ.get(OUTPUT_DIR_ENV) or "torc_output"))
    client_factory: Callable[[str], TorcClient] | None = None  # tests inject an in-process client
    launcher: Launcher = launch_detached
    _clients: dict[tuple[str, str | None], TorcClient] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def api_url_for(self, request: Request) -> str:
        """The API URL; served by torc-server, its own listening socket (not the Host header, which
        may name a reverse proxy)."""
        if self.api_url:
            return self.api_url.rstrip("/")
        server = request.scope.get("server")
        if server and server[1]:
            host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(server[0], server[0])
            return f"http://{f'[{host}]' if ':' in host else host}:{server[1]}/{API_PATH}"
        return f"{str(request.base_url).rstrip('/')}/{API_PATH}"

    def client(self, request: Request) -> TorcClient:
        """The API client for this request. The browser's Basic credentials (torc-server with
        --require-auth asks for them) are passed on, so the API answers as that user; without
        them the client uses this process's own (TORC_PASSWORD)."""
        url = self.api_url_for(request)
        authorization = request.headers.get("authorization")
        key = (url, authorization)
        with self._lock:
            if key not in self._clients:
                factory = self.client_factory or (lambda u: TorcClient(u, timeout=60))
                client = factory(url)
                if authorization:
                    client.http.auth = None
                    client.http.headers["Authorization"] = authorization
                self._clients[key] = client
            return self._clients[key]

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals["static"] = STATIC_PREFIX
    return templates


Handler = Callable[[Request], Awaitable[Response]]


def dashboard_routes(config: DashboardConfig) -> list[BaseRoute]:
    from torc.dashboard import pages

    templates = make_templates()

    def page(func: Callable[..., Awaitable[Response]]) -> Handler:
        @functools.wraps(func)
        async def endpoint(request: Request) -> Response:
            return await pages.guarded(func, request, config, templates)
        return endpoint

    wid = "/workflows/{workflow_id:int}"
    return [
        Route("/", page(pages.workflow_list), name="dash_home"),
        Route("/workflows/new", page(pages.new_workflow), methods=["GET", "POST"]),
        Route(wid, page(pages.workflow_detail)),
        Route(f"{wid}/progress.json", page(pages.progress)),
        Route(f"{wid}/counts.json", page(pages.counts)),
        Route(f"{wid}/events", page(pages.events)),
        Route(f"{wid}/dag", page(pages.dag)),
        Route(f"{wid}/resources", page(pages.resources)),
        Route(f"{wid}/jobs/{{job_id:int}}", page(pages.job_detail)),
        Route(f"{wid}/action/{{action}}", page(pages.action), methods=["POST"]),
        Route(f"{STATIC_PREFIX}/plotly.min.js", pages.plotly_js),
        Mount(STATIC_PREFIX, app=StaticFiles(directory=str(HERE / "static")), name="dash_static"),
    ]


def create_dashboard(config: DashboardConfig | None = None) -> Starlette:
    """The standalone dashboard app (`torc dash`)."""
    config = config or DashboardConfig()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            config.close()

    app = Starlette(routes=dashboard_routes(config), lifespan=lifespan)
    app.state.dashboard = config
    return app


def mount_dashboard(app: Starlette, config: DashboardConfig | None = None) -> None:
    """Serve the dashboard from torc-server at `/`. Its routes are added after the API's, one by one
    (not a catch-all mount), so unknown API paths keep the API's own JSON 404."""
    config = config or DashboardConfig()
    app.router.routes.extend(dashboard_routes(config))
    app.state.dashboard = config

"""Request handlers of the dashboard: parse the request, fetch through data.py or act through
actions.py (in a worker thread: the client is synchronous), render a template."""

from __future__ import annotations

import asyncio
import functools
import json
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import anyio
import anyio.to_thread
import httpx
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.templating import Jinja2Templates

from torc.core.errors import InvalidInputError, TorcError
from torc.dashboard import actions, data
from torc.spec.load import FORMATS, SpecError

if TYPE_CHECKING:
    from torc.dashboard.app import DashboardConfig

MAX_SPEC_BYTES = 20 * 1024 * 1024


async def guarded(func: Callable[..., Awaitable[Response]], request: Request, config: DashboardConfig,
                  templates: Jinja2Templates) -> Response:
    """Run a handler; a TorcError (unknown workflow, server unreachable, refused action) becomes an
    error page with the server's message instead of a traceback."""
    try:
        return await func(request, config, templates)
    except TorcError as exc:
        status = exc.status_code if 400 <= exc.status_code < 600 else 500
        if request.url.path.endswith(".json"):
            return JSONResponse({"error": exc.message}, status_code=status)
        return templates.TemplateResponse(request, "error.html", {"message": exc.message}, status_code=status)


def _int(request: Request, name: str, default: int, low: int = 0, high: int | None = None) -> int:
    raw = request.query_params.get(name)
    try:
        value = int(raw) if raw not in (None, "") else default
    except ValueError:
        raise InvalidInputError(f"query parameter {name!r} must be an integer, not {raw!r}") from None
    value = max(low, value)
    return min(value, high) if high is not None else value


_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = weakref.WeakKeyDictionary()
BLOCKING_THREADS = 8


def _blocking(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
    """Run blocking client calls in worker threads of the dashboard's own limiter: inside torc-server
    the API calls they make need the default thread pool, which dashboard pages must not exhaust."""
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = anyio.CapacityLimiter(BLOCKING_THREADS)
    return anyio.to_thread.run_sync(functools.partial(func, *args, **kwargs), limiter=limiter)


def _redirect(path: str, **params: Any) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)


def _flash(request: Request) -> dict[str, str | None]:
    return {"msg": request.query_params.get("msg"), "error": request.query_params.get("error")}


# ---- workflows --------------------------------------------------------------------------------


def _workflow_rows(client, page: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for workflow in page["items"]:
        status = client.get(f"workflows/{workflow['id']}/status")
        counts = data.job_counts(client, workflow["id"])
        done = sum(counts["counts"].get(s, 0) for s in ("completed", "failed", "canceled", "terminated"))
        rows.append({**workflow, "status": status, "counts": counts, "done": done})
    return rows


async def workflow_list(request: Request, config: DashboardConfig, templates: Jinja2Templates) -> Response:
    archived = request.query_params.get("archived", "no")
    archived = archived if archived in ("no", "only", "all") else "no"
    user = request.query_params.get("user", "").strip()
    offset = _int(request, "offset", 0)
    limit = _int(request, "limit", 25, 1, 500)
    client = config.client(request)

    def fetch() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        page = data.list_workflows(client, archived, user, offset, limit)
        return page, _workflow_rows(client, page)

    page, rows = await _blocking(fetch)
    return templates.TemplateResponse(request, "workflows.html", {
        "rows": rows, "page": page, "archived": archived, "user": user, "offset": offset, "limit": limit,
        **_flash(request)})


async def workflow_detail(request: Request, config: DashboardConfig, templates: Jinja2Templates) -> Response:
    workflow_id = request.path_params["workflow_id"]
    status = request.query_params.get("status", "")
    status = status if status in data.STATUSES else ""
    name = request.query_params.get("name", "").strip()
    limit = _int(request, "limit", data.DEFAULT_PAGE_SIZE, 1, max(data.PAGE_SIZES))
    offset = _int(request, "offset", 0)
    client = config.client(request)

    def fetch() -> dict[str, Any]:
        return {
            "workflow": client.get(f"workflows/{workflow_id}"),
            "wf_status": client.get(f"workflows/{workflow_id}/status"),
            "counts": data.job_counts(client, workflow_id),
            "jobs": data.job_page(client, workflow_id, status, name, offset, limit),
        }

    context = await _blocking(fetch)
    filters = {"status": status, "name": name, "limit": limit}
    return templates.TemplateResponse(request, "workflow.html", {
        **context, "filters": filters, "statuses": data.STATUSES, "page_sizes": data.PAGE_SIZES,
        "query": lambda **kw: urlencode({k: v for k, v in {**filters, **kw}.items() if v not in (None, "")}),
        **_flash(request)})


async def progress(request: Request, config: DashboardConfig, templates: Jinja2Templates) -> Response:
    workflow_id = request.path_params["workflow_id"]
    return JSONResponse(await _blocking(data.progress_series, config.client(request), workflow_id))


async def counts(request: Request, config: DashboardConfig, templates: Jinja2Templates) -> Response:
    workflow_id = request.path_params["workflow_id"]
    return JSONResponse(await _blocking(data.job_counts, config.client(request), workflow_id))


async def dag(request: Request, config: DashboardConfig, templates: Jinja2Templates) -> Response:
    workflow_id = request.path_params["workflow_id"]
    group = request.query_params.get("group", "1") != "0"
    client = config.client(request)

    def fetch() -> tuple[dict[str, Any], data.Dag]:
        workflow = client.get(f"workflows/{workflow_id}")
        jobs, blockers = data.job_blockers(client, workflow_id)
        return workflow, data.build_dag(jobs, blockers, group)

    workflow, graph = await _blocking(fetch)
    return templates.TemplateResponse(request, "dag.html", {
        "workflow": workflow, "dag": graph, "group": group, "max_groups": data.MAX_DAG_GROUPS})


async def resources(request: Request, config: DashboardConfig, templates: Jinja2Templates) -> Response:
    workflow_id = request.path_params["workflow_id"]
    client = config.client(request)

    def fetch() -> dict[str, Any]:
        databases = data.resource_databases(config.output_dir, workflow_id)
        try:
            figures, plot_error = data.resource_figures(databases), None
        except TorcError as exc:
            figures, plot_error = [], exc.message
        return {"workflow": client.get(f"workflows/{workflow_id}"), "report": data.utilization(client, workflow_id),
                "databases": databases, "figures": figures, "plot_error": plot_error}

    context = await _blocking(fetch)
    return templates.TemplateResponse(request, "resources.html", {**context, "output_dir": config.output_dir})


async def job_detail(request: Request, config: DashboardConfig, templates: Jinja2Templates) -> Response:
    workflow_id = request.path_params["workflow_id"]
    job_id = request.path_params["job_id"]
    client = config.client(request)

    def fetch() -> dict[str, Any]:
        job = client.get(f"jobs/{job_id}")
        if job["workflow_id"] != workflow_id:
            raise InvalidInputError(f"job {job_id} is not in workflow {workflow_id}")
        rr_id = job.get("resource_requirements_id")
        return {"workflow": client.get(f"workflows/{workflow_id}"), "job": job,
                "requirements": client.get(f"resource_requirements/{rr_id}") if rr_id else None,
                "attempts": data.job_attempts(client, workflow_id, job_id, config.output_dir)}

    context = await _blocking(fetch)
    return templates.TemplateResponse(request, "job.html", {**context, "output_dir": config.output_dir})


# ---- creating workflows -----------------------------------------------------------------------


async def new_workflow(request: Request, config: DashboardConfig, templates: Jinja2Templates) -> Response:
    context: dict[str, Any] = {"formats": sorted(set(FORMATS.values())), "text": "", "fmt": "auto",
                               "problems": None, "source": None}
    if request.method == "GET":
        return templates.TemplateResponse(request, "new.html", context)
    async with request.form(max_part_size=MAX_SPEC_BYTES) as form:
        upload = form.get("file")
        text = str(form.get("text") or "")
        filename = None
        if isinstance(upload, UploadFile) and upload.filename:
            filename = upload.filename
            text = (await upload.read()).decode("utf-8", errors="replace")
        chosen = str(form.get("format") or "auto")
        monitoring = form.get("monitoring") is not None
    source = filename or "pasted spec"
    fmt = actions.spec_format(filename, chosen)
    client = config.client(request)
    try:
        workflow_id = await _blocking(actions.create_from_text, client, text, fmt, source, monitoring)
    except SpecError as exc:
        context.update(text=text, fmt=chosen, problems=exc.problems, source=exc.source)
        return templates.TemplateResponse(request, "new.html", context, status_code=422)
    return _redirect(f"/workflows/{workflow_id}", msg=f"Created workflow {workflow_id} from {source}")


# ---- actions ----------------------------------------------------------------------------------


async def action(request: Request, config: DashboardConfig, templates: Jinja2Templates) -> Response:
    workflow_id = request.path_params["workflow_id"]
    name = request.path_params["action"]
    client = config.client(request)
    back = f"/workflows/{workflow_id}"
    simple: dict[str, Callable[[], str]] = {
        "cancel": lambda: actions.cancel(client, workflow_id),
        "reset": lambda: actions.reset(client, workflow_id, failed_only=False),
        "reset-failed": lambda: actions.reset(client, workflow_id, failed_only=True),
        "archive": lambda: actions.archive(client, workflow_id, True),
        "unarchive": lambda: actions.archive(client, workflow_id, False),
        "delete": lambda: actions.delete(client, workflow_id),
    }
    if name in ("archive", "unarchive", "delete"):
        back = "/"
    try:
        if name in simple:
            message = await _blocking(simple[name])
        elif name in actions.LAUNCHED:
            pid, log = await _blocking(actions.launch_command, config.api_url_for(request), name, workflow_id,
                                       config.output_dir.resolve(), config.launcher)
            message = f"Started `torc {name} {workflow_id}` (pid {pid}); its log: {log}"
        else:
            raise InvalidInputError(f"unknown action {name!r}")
    except TorcError as exc:
        return _redirect(back, error=f"{name} failed: {exc.message}")
    return _redirect(back, msg=message)


# ---- live events and assets -------------------------------------------------------------------


async def events(request: Request, config: DashboardConfig, templates: Jinja2Templates) -> Response:
    """The API's SSE stream of this workflow, relayed so the browser needs no access to the API. A
    `connected` event tells the page that the upstream subscription is open."""
    workflow_id = request.path_params["workflow_id"]
    level = request.query_params.get("level", "info")
    url = f"{config.api_url_for(request)}/workflows/{workflow_id}/events/stream"

    async def relay() -> AsyncIterator[bytes]:
        timeout = httpx.Timeout(10.0, read=None)
        async with httpx.AsyncClient(timeout=timeout) as http:
            try:
                async with http.stream("GET", url, params={"level": level}) as upstream:
                    if upstream.status_code != 200:
                        body = (await upstream.aread()).decode(errors="replace")
                        yield _sse("dash_error", {"message": f"event stream: HTTP {upstream.status_code} {body}"})
                        return
                    yield _sse("connected", {"workflow_id": workflow_id})
                    async for frame in _frames(upstream.aiter_lines()):
                        yield frame
            except httpx.HTTPError as exc:
                yield _sse("dash_error", {"message": f"event stream lost: {exc}"})

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(relay(), media_type="text/event-stream", headers=headers)


async def _frames(lines: AsyncIterator[str]) -> AsyncIterator[bytes]:
    """Upstream frames as one `torc` event each, {"type": ..., "data": ...}, so the page needs no list
    of event names; comments (keep-alives) pass through to keep idle connections open."""
    event, payload = "message", []
    async for line in lines:
        if line.startswith(":"):
            yield f"{line}\n\n".encode()
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            payload.append(line[5:].strip())
        elif not line and payload:
            text = "\n".join(payload)
            try:
                body: Any = json.loads(text)
            except ValueError:
                body = text
            yield _sse("torc", {"type": event, "data": body})
            event, payload = "message", []


def _sse(event: str, payload: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(payload)}\n\n".encode()


@functools.cache
def _plotly_bundle() -> bytes:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode("utf-8")


async def plotly_js(request: Request) -> Response:
    """plotly.min.js from the installed plotly package (never a CDN)."""
    body = await run_in_threadpool(_plotly_bundle)
    return Response(body, media_type="application/javascript", headers={"Cache-Control": "max-age=86400"})

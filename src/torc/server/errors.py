"""Every failure leaves the server as a JSON error body with a 4xx or 5xx status, never a traceback."""

from __future__ import annotations

import logging
import sqlite3

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from torc.core.errors import TorcError
from torc.server.responses import error_response

log = logging.getLogger("torc.server")


def _location(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TorcError)
    async def torc_error(request: Request, exc: TorcError):
        response = error_response(exc.status_code, exc.message)
        if exc.status_code == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="Torc"'
        return response

    @app.exception_handler(RequestValidationError)
    @app.exception_handler(ValidationError)  # models validated inside a handler (e.g. retry's body)
    async def validation_error(request: Request, exc: RequestValidationError | ValidationError):
        problems = []
        for err in exc.errors():
            where = _location(tuple(err.get("loc", ())))
            msg = err.get("msg", "invalid value")
            if err.get("type") == "json_invalid":
                msg = f"request body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})"
            elif "input" in err and err.get("type") != "missing":
                found = repr(err["input"])
                msg = f"{msg} (found {found[:80]})"
            problems.append(f"{where}: {msg}")
        return error_response(422, "; ".join(problems) or "invalid request", details=problems)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        if exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        return error_response(exc.status_code, message)

    @app.exception_handler(sqlite3.IntegrityError)
    async def integrity_error(request: Request, exc: sqlite3.IntegrityError):
        return error_response(409, f"the change conflicts with existing data: {exc}")

    @app.exception_handler(OverflowError)
    async def overflow_error(request: Request, exc: OverflowError):
        return error_response(422, "a number in the request is out of range (integers must fit in 64 bits)")

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal server error: {type(exc).__name__}")

"""A small synchronous client for torc's REST API.

The transport is injectable (httpx.ASGITransport(app) in tests, a real socket otherwise).
Error responses become the matching TorcError subclass, carrying the server's message.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson

from torc.core.errors import TorcError, error_for_status

DEFAULT_URL = "http://localhost:8080/torc-service/v1"
log = logging.getLogger("torc.client")


class ServerUnreachable(TorcError):
    """The server could not be reached (after retrying, where retries were asked for)."""


def auth_from_env(user: str | None = None, password: str | None = None) -> tuple[str, str] | None:
    """Basic-auth credentials: the password given or TORC_PASSWORD, the user given or TORC_USER,
    USER, USERNAME. None when there is no password (anonymous access)."""
    password = password if password is not None else os.environ.get("TORC_PASSWORD")
    if not password:
        return None
    user = user or os.environ.get("TORC_USER") or os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
    return user, password


def tls_verify(ca_cert: str | None = None) -> ssl.SSLContext | bool:
    """httpx's `verify`: trust the CA certificate given or TORC_CA_CERT (a PEM file), else the system CAs."""
    path = ca_cert or os.environ.get("TORC_CA_CERT")
    if not path:
        return True
    try:
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise TorcError(f"cannot load the CA certificate {path}: {exc}") from None


def _unreachable_message(url: str, exc: Exception) -> str:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return (f"cannot verify the TLS certificate of the torc server at {url} ({text}); if the server uses "
                "a private or self-signed certificate, pass --ca-cert FILE or set TORC_CA_CERT")
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return f"cannot reach the torc server at {url}: TLS handshake failed ({text}); is the URL's scheme right?"
    return f"cannot reach the torc server at {url}: {text}"


def error_message(response: httpx.Response) -> str:
    """The message of a torc error response ({"error": {"message": ...}}), or its text."""
    try:
        body = response.json()
    except ValueError:
        return response.text or response.reason_phrase
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if body.get("message"):
            return str(body["message"])
    return str(body)


class TorcClient:
    """The synchronous HTTP client of torc's REST API: request/get/post/put/delete, iter_items for
    paged listings, and TorcError subclasses for error responses."""

    def __init__(self, url: str | None = None, transport: httpx.BaseTransport | None = None, timeout: float = 120.0,
                 auth: tuple[str, str] | None = None, retry_seconds: float = 0.0, ca_cert: str | None = None):
        """retry_seconds > 0: keep retrying requests that could not reach the server (it may be
        restarting) for that long, with backoff, before giving up. auth None: TORC_PASSWORD (with
        TORC_USER or $USER) when set, so every runner torc starts inherits its credentials.
        ca_cert: a PEM file to verify an https server with (default TORC_CA_CERT, else the system CAs)."""
        self.url = (url or os.environ.get("TORC_API_URL") or DEFAULT_URL).rstrip("/")
        self.auth = auth if auth is not None else auth_from_env()
        self.http = httpx.Client(base_url=self.url, transport=transport, timeout=timeout, auth=self.auth,
                                 verify=tls_verify(ca_cert))
        self.retry_seconds = retry_seconds

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> TorcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        # orjson: several times faster than the stdlib for the 10,000-record batches torc sends.
        content = orjson.dumps(json) if json is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.2
        while True:
            try:
                response = self.http.request(method, path.lstrip("/"), params=clean, content=content, headers=headers)
                break
            except httpx.TransportError as exc:
                if time.monotonic() + delay > deadline:
                    raise ServerUnreachable(_unreachable_message(self.url, exc)) from None
                log.warning("torc server unreachable (%s); retrying in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
        if response.status_code >= 400:
            raise error_for_status(response.status_code, error_message(response))
        return orjson.loads(response.content) if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None, **params: Any) -> Any:
        return self.request("POST", path, params=params, json=json if json is not None else {})

    def put(self, path: str, json: Any = None, **params: Any) -> Any:
        return self.request("PUT", path, params=params, json=json if json is not None else {})

    def delete(self, path: str, **params: Any) -> Any:
        return self.request("DELETE", path, params=params)

    def iter_items(self, path: str, page_size: int = 10_000, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paged listing, fetched page by page."""
        offset = 0
        while True:
            page = self.get(path, offset=offset, limit=page_size, **params)
            yield from page["items"]
            if not page["has_more"] or not page["items"]:
                return
            offset += len(page["items"])

    # A few named operations used across torc.
    def ping(self) -> dict[str, Any]:
        return self.get("ping")

    def create_workflow(self, name: str, user: str | None = None, **fields: Any) -> dict[str, Any]:
        user = (user or (self.auth[0] if self.auth else None) or os.environ.get("TORC_USER")
                or os.environ.get("USER") or os.environ.get("USERNAME") or "unknown")
        return self.post("workflows", {"name": name, "user": user, **fields})

    def run_id(self, workflow_id: int) -> int:
        return self.get(f"workflows/{workflow_id}/status")["run_id"]

"""Following a workflow's live event stream (GET /workflows/{id}/events/stream, Server-Sent Events).

The stream has no replay: events published while disconnected are lost, so a dropped
connection is re-opened at once and then with a growing (bounded) delay.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import click
import httpx

from torc.client.http import error_message
from torc.core.errors import TorcError, error_for_status

KEEPALIVE_GRACE_SECONDS = 45.0  # the server sends a keep-alive comment every 15 s
MAX_BACKOFF_SECONDS = 30.0
MAX_FAILED_CONNECTS = 10

Sink = Callable[[str, dict[str, Any]], None]


@dataclass
class StreamTarget:
    url: str
    workflow_id: int
    level: str = "info"
    auth: Any = None


async def sse_frames(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event type, data) for each frame; comments (keep-alives) are skipped."""
    event_type, data = "message", []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield event_type, "\n".join(data)
            event_type, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event_type = value
        elif name == "data":
            data.append(value)


def _payload(event_type: str, data: str) -> dict[str, Any]:
    try:
        payload = json.loads(data)
    except json.JSONDecodeError:
        payload = {"data": data}
    if not isinstance(payload, dict) or "event_type" not in payload:
        payload = {"event_type": event_type, "severity": "warning" if event_type == "warning" else "info",
                   "timestamp": int(time.time() * 1000), "data": payload}
    return payload


async def _stream_once(http: httpx.AsyncClient, target: StreamTarget, sink: Sink, on_open: Callable[[], None]) -> None:
    path = f"workflows/{target.workflow_id}/events/stream"
    async with http.stream("GET", path, params={"level": target.level}) as response:
        if response.status_code >= 400:
            await response.aread()
            error = error_for_status(response.status_code, error_message(response))
            if response.status_code >= 500:  # a restarting server or proxy: worth another try
                raise httpx.TransportError(f"HTTP {response.status_code}: {error.message}")
            raise error
        on_open()
        async for event_type, data in sse_frames(response):
            sink(event_type, _payload(event_type, data))


class _Reconnects:
    """Bounded backoff: 0 s after a connection that lasted, then 1, 2, 4 ... 30 s; give up after
    MAX_FAILED_CONNECTS connection attempts in a row that fail."""

    def __init__(self) -> None:
        self.failures, self.delay, self.opened = 0, 0.0, 0
        self.opened_at: float | None = None

    def on_open(self) -> int:
        self.failures, self.opened, self.opened_at = 0, self.opened + 1, time.monotonic()
        return self.opened

    def next_delay(self) -> float:
        """The wait before the next attempt; a connection attempt that never opened counts as failed."""
        was_open, self.opened_at = self.opened_at, None
        self.failures += was_open is None
        if self.failures > MAX_FAILED_CONNECTS:
            raise TorcError(f"giving up after {MAX_FAILED_CONNECTS} failed attempts to reach the event stream")
        lasted = was_open is not None and time.monotonic() - was_open > MAX_BACKOFF_SECONDS
        delay = 0.0 if lasted else self.delay
        self.delay = min(MAX_BACKOFF_SECONDS, max(1.0, delay * 2))
        return delay


async def follow(target: StreamTarget, sink: Sink, note: Callable[[str], None]) -> None:
    """Stream events into `sink` forever, reconnecting when the connection drops."""
    timeout = httpx.Timeout(10.0, read=KEEPALIVE_GRACE_SECONDS)
    retry = _Reconnects()

    def on_open() -> None:
        first = retry.on_open() == 1
        note(f"{'Connected' if first else 'Reconnected'} to the event stream of workflow {target.workflow_id}"
             f" (level {target.level}).")

    async with httpx.AsyncClient(base_url=target.url, auth=target.auth, timeout=timeout) as http:
        while True:
            try:
                await _stream_once(http, target, sink, on_open)
                reason = "the server closed the event stream"
            except httpx.TransportError as exc:
                reason = f"event stream connection failed ({type(exc).__name__}: {exc})"
            delay = retry.next_delay()
            note(f"{reason}; reconnecting in {delay:.0f} s")
            await asyncio.sleep(delay)


def run_monitor(target: StreamTarget, sink: Sink, note: Callable[[str], None], minutes: float | None) -> None:
    """Follow the stream for `minutes` (None: until Ctrl-C); returns normally either way."""

    async def bounded() -> None:
        try:
            async with asyncio.timeout(None if minutes is None else minutes * 60):
                await follow(target, sink, note)
        except TimeoutError:
            note(f"Stopped after {minutes:g} minute(s).")

    try:
        asyncio.run(bounded())
    except KeyboardInterrupt:
        note("Stopped.")


def format_event(payload: dict[str, Any], width: int = 160) -> str:
    """One human line: local time, type, severity, compact data."""
    ts = payload.get("timestamp")
    when = (datetime.fromtimestamp(ts / 1000).isoformat(sep=" ", timespec="milliseconds")
            if isinstance(ts, int | float) else "-")
    data = json.dumps(payload.get("data", {}), separators=(",", ":"), default=str)
    if len(data) > width:
        data = data[: width - 3] + "..."
    return f"{when}  {payload.get('event_type', '?'):<24} {payload.get('severity', '?'):<8} {data}"


def make_sink(fmt: str, filename: str | None) -> Sink:
    """Print each event (a line of text, or a JSON line with -f json) and append JSON lines to `filename`."""

    def sink(event_type: str, payload: dict[str, Any]) -> None:
        line = json.dumps(payload, separators=(",", ":"), default=str)
        click.echo(line if fmt == "json" else format_event(payload))
        if filename:
            with open(filename, "a", encoding="utf-8") as out:
                out.write(line + "\n")

    return sink

"""Workflow events: persisted rows (the `event` table) and a live in-process broadcast for SSE.

Services publish after their transaction commits, from worker threads; subscribers are
asyncio queues on the server's event loop, so publishing hands each event over with
call_soon_threadsafe. A subscriber that falls behind loses events and is told how many.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from torc.service.common import now_ms
from torc.storage.base import Connection

SEVERITIES = ("debug", "info", "warning", "error")
QUEUE_CAPACITY = 512


@dataclass(frozen=True)
class Event:
    workflow_id: int
    event_type: str
    severity: str = "info"
    data: dict[str, Any] = field(default_factory=dict)
    timestamp: int = field(default_factory=now_ms)

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "timestamp": self.timestamp,
            "event_type": self.event_type,
            "severity": self.severity,
            "data": self.data,
        }


class Subscription:
    def __init__(self, bus: EventBus, workflow_id: int, level: str, loop: asyncio.AbstractEventLoop):
        self.bus = bus
        self.workflow_id = workflow_id
        self.min_rank = SEVERITIES.index(level)
        self.loop = loop
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_CAPACITY)  # None ends the stream
        self.dropped = 0

    def wants(self, event: Event) -> bool:
        rank = SEVERITIES.index(event.severity) if event.severity in SEVERITIES else 1
        return event.workflow_id == self.workflow_id and rank >= self.min_rank

    def _offer(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    def _close(self) -> None:
        """Wake the reader with the end-of-stream marker, making room for it if needed."""
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(None)

    def take_dropped(self) -> int:
        dropped, self.dropped = self.dropped, 0
        return dropped

    def close(self) -> None:
        self.bus._remove(self)


class EventBus:
    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()

    def subscribe(self, workflow_id: int, level: str = "info") -> Subscription:
        sub = Subscription(self, workflow_id, level, asyncio.get_running_loop())
        with self._lock:
            self._subs.append(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def close_all(self) -> None:
        """End every open stream (server shutdown): readers see None and finish their response."""
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(sub._close)
            except RuntimeError:
                self._remove(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def publish(self, *events: Event) -> None:
        if not self._subs:
            return
        with self._lock:
            subs = list(self._subs)
        for event in events:
            for sub in subs:
                if sub.wants(event):
                    try:
                        sub.loop.call_soon_threadsafe(sub._offer, event)
                    except RuntimeError:  # loop closed: the subscriber is gone
                        self._remove(sub)


def record_event(conn: Connection, workflow_id: int, data: dict[str, Any], timestamp: int | None = None) -> int:
    """Persist one event row inside the caller's transaction."""
    return conn.insert(
        "INSERT INTO event (workflow_id, timestamp, data) VALUES (?, ?, ?)",
        (workflow_id, timestamp or now_ms(), json.dumps(data, separators=(",", ":"))),
    )

"""What every service function needs: the store, the event bus and the server settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from torc.service.events import EventBus
from torc.storage.base import Store


@dataclass
class Settings:
    completion_check_interval_secs: float = 30.0
    max_page_size: int = 10_000


@dataclass
class Context:
    store: Store
    bus: EventBus = field(default_factory=EventBus)
    settings: Settings = field(default_factory=Settings)

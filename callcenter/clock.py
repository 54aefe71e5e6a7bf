"""Time is injected: domain code receives `now`; only `SystemClock` reads the wall clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from callcenter.config import Settings


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until moved; for tests and simulations."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, instant: datetime) -> None:
        with self._lock:
            self._now = instant.astimezone(UTC)

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now


class FileClock:
    """A clock read from a file holding one ISO 8601 instant: lets a test drive the time of
    separate processes (a scheduler replica) from outside. Never for production."""

    def __init__(self, path: str) -> None:
        self._path = path

    def now(self) -> datetime:
        with open(self._path, encoding="utf-8") as handle:
            instant = datetime.fromisoformat(handle.read().strip())
        if instant.tzinfo is None:
            raise ValueError(f"{self._path}: the instant has no UTC offset")
        return instant.astimezone(UTC)


def make_clock(settings: Settings) -> Clock:
    """The wall clock, or the test clock file when the settings name one."""
    return FileClock(str(settings.clock_file)) if settings.clock_file else SystemClock()

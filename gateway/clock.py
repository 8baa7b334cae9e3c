"""Time sources: wall-clock UTC for timestamps, a monotonic clock for durations.

Everything that measures time takes a `Clock`, so tests can inject `ManualClock`
and walk a whole day of patrols or a month of pump tests in milliseconds, and so
a wall-clock step (NTP setting the time after boot) never distorts a duration.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current wall-clock time, timezone-aware UTC."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps; only differences mean anything."""


class SystemClock:
    """The machine's clocks."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock tests move by hand. `advance` moves both clocks; `step_wall` only the wall clock."""

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._wall = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
        if self._wall.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._mono = 1000.0

    def now(self) -> datetime:
        with self._lock:
            return self._wall

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._wall += timedelta(seconds=seconds)
            self._mono += seconds

    def step_wall(self, seconds: float) -> None:
        """Jump the wall clock only, as NTP does after boot."""
        with self._lock:
            self._wall += timedelta(seconds=seconds)


def iso_utc(ts: datetime) -> str:
    """`2026-11-23T13:05:07.123Z`: UTC with milliseconds, as an event's `ts` (docs/mqtt.md)."""
    ts = ts.astimezone(timezone.utc)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def parse_iso_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)

"""Debouncing and chatter detection for one contact input: pure logic fed with timestamps.

Neither class reads a clock or starts a timer. The caller hands every raw edge
in with the instant it was seen (monotonic seconds, and the wall-clock time
for event timestamps), calls `poll(now)` when `deadline()` has come, and gets
back the changes it should act on. So the same code runs on real GPIO edges,
on simulated pins and in tests that walk a `ManualClock` by hand.

A level is *accepted* when it has held for `debounce_s` without a further edge;
the accepted change carries the instant of the edge that started it, not the
instant the debounce ran out, so events are stamped at the edge.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime

_EPS = 1e-9


@dataclass(frozen=True)
class Change:
    """A debounced change: the new level and when its first edge was seen."""

    level: bool
    mono: float
    wall: datetime


class Debouncer:
    """Accepts a level once it has been stable for `debounce_s`."""

    def __init__(self, debounce_s: float, level: bool, mono: float, wall: datetime) -> None:
        self.debounce_s = max(0.0, debounce_s)
        self.stable = level
        self.stable_since = mono
        self.stable_since_wall = wall
        self._pending: Change | None = None

    @property
    def raw(self) -> bool:
        """The last level seen on the wire, debounced or not."""
        return self._pending.level if self._pending is not None else self.stable

    def edge(self, level: bool, mono: float, wall: datetime) -> Change | None:
        """Feed one raw edge; returns a change accepted by the time of this edge, if any."""
        out = self.poll(mono)
        if level == self.raw:
            return out                      # repeated report of the same level
        if level == self.stable:
            self._pending = None            # a glitch shorter than the debounce: forgotten
        else:
            self._pending = Change(level, mono, wall)
            if self.debounce_s <= 0:
                out = self.poll(mono)
        return out

    def poll(self, now: float) -> Change | None:
        """Accept the pending level if it has held long enough by `now`."""
        p = self._pending
        if p is None or now - p.mono < self.debounce_s - _EPS:
            return None
        self._pending = None
        self.stable, self.stable_since, self.stable_since_wall = p.level, p.mono, p.wall
        return p

    def deadline(self) -> float | None:
        """When `poll` may next accept something (monotonic seconds), or None."""
        return None if self._pending is None else self._pending.mono + self.debounce_s


class ChatterDetector:
    """Flags an input that makes `edges` raw edges within `window_s`; clears after `quiet_s` without one."""

    def __init__(self, edges: int, window_s: float, quiet_s: float) -> None:
        self.window_s = window_s
        self.quiet_s = quiet_s
        self._times: deque[float] = deque(maxlen=max(2, edges))
        self.chattering = False
        self.last_edge = float("-inf")
        self.edges_total = 0

    def edge(self, mono: float) -> bool:
        """Record a raw edge; True exactly when this edge starts a chatter episode."""
        self.edges_total += 1
        self.last_edge = mono
        t = self._times
        t.append(mono)
        if not self.chattering and len(t) == t.maxlen and mono - t[0] <= self.window_s:
            self.chattering = True
            return True
        return False

    def edge_rate(self) -> float:
        """Edges per second over the newest half of the edges remembered (for the report)."""
        t = self._times
        k = max(2, len(t) // 2)
        if len(t) < k or t[-1] <= t[-k]:
            return 0.0
        return (k - 1) / (t[-1] - t[-k])

    def poll(self, now: float) -> bool:
        """True exactly when a chatter episode ends (no edge for `quiet_s`)."""
        if self.chattering and now - self.last_edge >= self.quiet_s - _EPS:
            self.chattering = False
            self._times.clear()
            return True
        return False

    def deadline(self) -> float | None:
        return self.last_edge + self.quiet_s if self.chattering else None

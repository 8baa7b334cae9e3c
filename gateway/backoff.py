"""Retry delays: the one backoff every part of the gateway uses.

A broker reconnect, a driver restart, a serial port reopened by path, a Modbus
panel that stopped answering, a camera stream that dropped: each waits before
trying again, longer after each failure, up to a cap. Written once here so
that every family behaves the same and a technician can predict it.

Two shapes of the same rule:

- `backoff_delay(attempt, lo, hi, rng)`: exponential with full jitter, for
  clients of a shared server (a fleet of gateways must not reconnect to a
  broker in step after an outage);
- `Backoff`: a stateful doubling delay (optionally jittered) for one local
  device, reset by a success.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


def backoff_delay(attempt: int, lo: float, hi: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [lo, min(hi, lo * 2**attempt)].

    Without `rng` the delay is the upper end of that window (deterministic).
    """
    cap = min(hi, lo * (2 ** min(max(attempt, 0), 30)))
    if rng is None:
        return max(lo, cap)
    return rng.uniform(lo, max(lo, cap))


@dataclass
class Backoff:
    """A delay that doubles from `initial` to `maximum` after each failure; `reset()` on success.

    With `jitter=True` each delay is drawn uniformly from [initial, current]
    (full jitter), so devices that failed together do not retry together.
    """

    initial: float = 0.5
    maximum: float = 30.0
    jitter: bool = False
    rng: random.Random = field(default_factory=random.Random, repr=False)
    attempts: int = 0
    current: float = 0.0

    def next(self) -> float:
        """The delay before the next try; counts one more failure."""
        self.current = min(self.maximum, self.initial * (2 ** min(self.attempts, 30)))
        self.attempts += 1
        if self.jitter:
            return self.rng.uniform(self.initial, max(self.initial, self.current))
        return self.current

    def reset(self) -> None:
        """A success: the next failure waits `initial` again."""
        self.attempts = 0
        self.current = 0.0

"""What the forwarder reports and hands on: its counters, incoming commands, reconnect backoff.

Apart from `gateway.forwarder` so that the gateway process, when the
connection runs in the uplink process, needs neither paho nor ssl.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


@dataclass
class ForwarderStats:
    connected: bool = False
    connects: int = 0
    disconnects: int = 0
    published: int = 0
    acked: int = 0
    rejected: int = 0
    telemetry_sent: int = 0
    evidence_sent: int = 0
    last_error: str = ""
    last_seq_acked: int = 0
    window: int = 0             # events in flight at most on this connection
    connected_since: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "connected_since"}


@dataclass
class IncomingCommand:
    name: str
    payload: bytes
    response_topic: str | None
    correlation: bytes | None


def backoff_delay(attempt: int, lo: float, hi: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [lo, min(hi, lo * 2**attempt)]."""
    cap = min(hi, lo * (2 ** min(attempt, 30)))
    return rng.uniform(lo, max(lo, cap))

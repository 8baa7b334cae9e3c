"""The broker link as the gateway sees it: the interface, its counters, incoming commands.

Apart from `gateway.forwarder` so that the gateway process, when the
connection runs in the uplink process, needs neither paho nor ssl.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol



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


class BrokerLink(Protocol):
    """What the supervisor runs and watches as the broker connection: the forwarder in a
    thread (`gateway.forwarder.Forwarder`) or in the uplink process (`gateway.uplink.Uplink`)."""

    stats: ForwarderStats
    last_progress: float        # the clock's monotonic time of the link's last turn (for the watchdog)

    @property
    def alive(self) -> bool:
        """The thread or process still runs."""

    def start(self) -> None:
        """Connect and forward, in a thread or process of its own; returns at once."""

    def stop(self, timeout: float = ...) -> None:
        """Publish `offline`, disconnect cleanly, and stop."""

    def health_soon(self) -> None:
        """Publish `health` at the next turn."""

    def publish_reply(self, topic: str, payload: bytes, correlation: bytes | None) -> bool:
        """Queue a command reply (QoS 1); False if not connected."""


@dataclass
class IncomingCommand:
    name: str
    payload: bytes
    response_topic: str | None
    correlation: bytes | None


__all__ = ["BrokerLink", "ForwarderStats", "IncomingCommand"]

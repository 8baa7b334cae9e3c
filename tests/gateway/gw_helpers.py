"""Building and running a real gateway (supervisor + store + forwarder) inside a test."""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any

from gateway.config import GatewayConfig, parse_config
from gateway.supervisor import Supervisor
from sim.broker import LocalBroker
from sim.registry import driver_types


def gateway_config(state_dir: Path, broker: LocalBroker | None, *, probes: list[dict[str, Any]] | None = None,
                   mqtt: dict[str, Any] | None = None, store: dict[str, Any] | None = None,
                   extra: dict[str, Any] | None = None, watch_interval: float = 0.1) -> GatewayConfig:
    raw: dict[str, Any] = {
        "gateway": {"site": "s1", "id": "gw1", "state_dir": str(state_dir)},
        "mqtt": {"host": "127.0.0.1", "port": broker.port if broker else 1, "health_interval_s": 1.0,
                 "reconnect_min_s": 0.05, "reconnect_max_s": 0.5, "keepalive_s": 5, **(mqtt or {})},
        "supervisor": {"watch_interval_s": watch_interval, "restart_backoff_min_s": 0.1, "restart_backoff_max_s": 1.0},
    }
    if store:
        raw["store"] = store
    if probes:
        raw["sim_probe"] = probes
    raw.update(extra or {})
    return parse_config(raw, driver_types=driver_types(raw))


class RunningGateway:
    """A Supervisor running in a thread; `stop()` shuts it down cleanly."""

    def __init__(self, config: GatewayConfig, resources: dict[str, Any] | None = None, notifier: Any = None) -> None:
        self.supervisor = Supervisor(config, resources=resources or {}, notifier=notifier)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.supervisor.run, args=(self.stop_event,), daemon=True)

    def __enter__(self) -> "RunningGateway":
        self.thread.start()
        from tests.helpers import wait_until
        wait_until(lambda: self.supervisor.store is not None and self.supervisor.forwarder is not None, 10,
                   message="gateway start")
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(30)

    def __exit__(self, *exc: object) -> None:
        self.stop()


def probe_orders(resources: dict[str, Any], name: str) -> "queue.Queue[tuple[str, dict]]":
    q: "queue.Queue[tuple[str, dict]]" = queue.Queue()
    resources[f"probe:{name}"] = q
    return q

"""`anfang sim`: the real supervisor, every device simulated, events printed as forwarded.

The runner builds the simulated devices of a scenario, asks each for its part
of the gateway config, starts a local mosquitto (unless a broker URL is
given), runs the real `Supervisor` on that config, plays the scenario's
timeline, and prints every event the broker delivers on the gateway's event
topics, one JSON object per line, on stdout.

Fault actions (gateway-level, no `device`; see sim/scenario.py and
docs/faults.md): `broker_down`/`broker_up` stop and start the simulator's own
mosquitto; `network_blackhole`, `network_slow`, `network_reset` and
`network_ok` switch a `FaultProxy` that the gateway is pointed at whenever the
scenario uses a network action (or `proxy=True`); `clock_step` steps the wall
clock the supervisor and drivers use (monotonic time untouched); `disk_full`
caps the event database at its current size plus `headroom_kb`, `disk_ok`
lifts the cap (the gateway's store is a `sim.disk.FillableDiskStore`). Each takes an optional `until` (seconds from start) that undoes
it. Device faults are the families' own actions (patrol `unplug`, fire_pump
`garbage_replies`, camera `freeze`).
"""

from __future__ import annotations

import json
import logging
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, TextIO
from urllib.parse import urlparse


from gateway.config import GatewayConfig, parse_config
from gateway.configfile import ConfigError, Problem
from gateway.supervisor import Supervisor
from sim.base import SimDevice, SimWorld
from sim.broker import LocalBroker
from sim.disk import FillableDiskStore
from sim.faults import FaultProxy, SteppableClock
from sim.registry import driver_types, load_sim_type
from sim.scenario import Action, Scenario
from sim.subscriber import EventSubscriber

log = logging.getLogger(__name__)

SITE = "sim"
GATEWAY = "gw1"


def merge_fragment(config: dict[str, Any], fragment: dict[str, Any]) -> None:
    """Arrays of tables are appended to; tables are merged; anything else replaced."""
    for key, value in fragment.items():
        if isinstance(value, list) and isinstance(config.get(key), list):
            config[key].extend(value)
        elif isinstance(value, dict) and isinstance(config.get(key), dict):
            merge_fragment(config[key], value)
        else:
            config[key] = value


class EventPrinter:
    """Prints each event a subscriber receives as one JSON line on `out`."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
            self.out.flush()


class SimRun:
    """One `anfang sim` run; `run()` returns the exit code."""

    def __init__(self, scenario: Scenario, *, broker_url: str | None = None, state_dir: Path | None = None,
                 duration: float | None = None, out: TextIO = sys.stdout,
                 config_overrides: dict[str, Any] | None = None, print_events: bool = True,
                 proxy: bool | None = None) -> None:
        self.scenario = scenario
        self.broker_url = broker_url
        self._tmp = None if state_dir else tempfile.TemporaryDirectory(prefix="anfang-sim-")
        self.state_dir = Path(state_dir or self._tmp.name)  # type: ignore[union-attr]
        self.duration = duration if duration is not None else (scenario.duration or 60.0)
        self.out = out
        self.overrides = config_overrides or {}
        self.print_events = print_events
        self.broker: LocalBroker | None = None
        self.supervisor: Supervisor | None = None
        self.devices: dict[str, SimDevice] = {}
        self.stop_event = threading.Event()
        self.world = SimWorld(state_dir=self.state_dir / "sim", rng=random.Random(scenario.seed))
        self.started = 0.0
        # a fault proxy between gateway and broker when the scenario needs one
        self.use_proxy = proxy if proxy is not None else any(
            a.device is None and a.do.startswith("network_") for a in scenario.actions)
        self.proxy: FaultProxy | None = None
        self.clock = SteppableClock()       # wall time that `clock_step` moves; monotonic untouched
        self.ready = threading.Event()      # set once the supervisor has started
        self._timers: list[threading.Timer] = []

    def build_config(self, host: str, port: int) -> GatewayConfig:
        raw: dict[str, Any] = {
            "gateway": {"site": SITE, "id": GATEWAY, "state_dir": str(self.state_dir / "gateway"),
                        "timezone": "Asia/Shanghai"},
            "mqtt": {"host": host, "port": port, "health_interval_s": 5.0, "reconnect_max_s": 2.0},
            "supervisor": {"restart_backoff_min_s": 0.5, "restart_backoff_max_s": 5.0},
        }
        for dev in self.devices.values():
            merge_fragment(raw, dev.config())
        merge_fragment(raw, self.overrides)
        return parse_config(raw, base_dir=self.world.state_dir, source="simulated gateway config",
                            driver_types=driver_types(raw))

    def run(self) -> int:
        self.world.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            for spec in self.scenario.devices:
                self.devices[spec.name] = load_sim_type(spec.kind)(spec.name, spec.params, self.world)
            if self.broker_url:
                u = urlparse(self.broker_url)
                if not u.hostname:
                    raise ConfigError([Problem("--broker", f"not a broker URL: {self.broker_url!r}")])
                host, port = u.hostname, u.port or 1883
            else:
                self.broker = LocalBroker(workdir=self.state_dir / "broker", persistent=True)
                self.broker.workdir.mkdir(parents=True, exist_ok=True)
                self.broker.start()
                host, port = self.broker.host, self.broker.port
                log.info("local broker on %s", self.broker.url)
            printer_host, printer_port = host, port
            if self.use_proxy:
                self.proxy = FaultProxy(host, port).start()
                host, port = self.proxy.host, self.proxy.port
                log.info("gateway reaches the broker through a fault proxy on %s", self.proxy.url)
            config = self.build_config(host, port)
            printer = (EventSubscriber(printer_host, printer_port, config.topic_prefix, EventPrinter(self.out),
                                       name="anfang-sim-printer").start() if self.print_events else None)
            if printer:
                printer.wait_subscribed(10)
            for dev in self.devices.values():
                dev.start()
            self.supervisor = Supervisor(config, resources=self.world.resources, clock=self.clock,
                                         store_type=FillableDiskStore)
            timeline = threading.Thread(target=self._play, name="sim-timeline", daemon=True)
            self.started = time.monotonic()
            sup_thread = threading.Thread(target=self.supervisor.run, args=(self.stop_event,),
                                          name="supervisor", daemon=True)
            sup_thread.start()
            while not self.stop_event.is_set() and self.supervisor.store is None and sup_thread.is_alive():
                time.sleep(0.01)
            self.ready.set()
            timeline.start()
            self.stop_event.wait(self.duration)
            self.stop_event.set()
            sup_thread.join(30)
            if printer:
                # let the last forwarded events reach the printer: wait until it goes quiet
                deadline, seen = time.monotonic() + 3.0, -1
                while time.monotonic() < deadline and printer.count != seen:
                    seen = printer.count
                    time.sleep(0.3)
                printer.close()
            return 0
        finally:
            self.stop_event.set()
            self.world.stopping.set()
            for t in self._timers:
                t.cancel()
            if self.proxy:
                self.proxy.close()
            for dev in self.devices.values():
                try:
                    dev.stop()
                except Exception:
                    log.exception("simulated device %s failed to stop", dev.name)
            if self.broker:
                self.broker.close()
            if self._tmp:
                self._tmp.cleanup()

    def request_stop(self) -> None:
        self.stop_event.set()

    def _play(self) -> None:
        for action in self.scenario.actions:
            wait = self.started + action.at - time.monotonic()
            if wait > 0 and self.stop_event.wait(wait):
                return
            try:
                self.perform(action)
            except Exception as exc:
                log.error("scenario action %s at %.1f s failed: %s", action.do, action.at, exc)

    def perform(self, action: Action) -> None:
        log.info("t=%.1f s: %s %s %s", action.at, action.device or "gateway", action.do, action.params or "")
        if action.device is None:
            self.perform_gateway(action.do, action.params, at=action.at)
            return
        self.devices[action.device].act(action.do, action.params)

    def perform_gateway(self, do: str, params: dict[str, Any], at: float | None = None) -> None:
        """A gateway-level fault action (see the module docstring); `until` schedules its undoing."""
        undo: Callable[[], None] | None = None
        if do in ("broker_down", "broker_up"):
            if self.broker is None:
                log.warning("action %s needs the simulator's own broker; skipped", do)
                return
            if do == "broker_down":
                self.broker.stop()
                undo = self._broker_up
            else:
                self._broker_up()
        elif do.startswith("network_"):
            if self.proxy is None:
                log.warning("action %s needs the fault proxy (scenario without network actions); skipped", do)
                return
            mode = {"network_blackhole": "blackhole", "network_slow": "slow", "network_reset": "reset",
                    "network_ok": "pass"}[do]
            self.proxy.set_mode(mode, latency=float(params.get("latency", 2.0)) if mode == "slow" else None)
            undo = lambda: self.proxy.set_mode("pass") if self.proxy else None  # noqa: E731
        elif do == "clock_step":
            self.clock.step(float(params["seconds"]))
            log.info("wall clock stepped by %+.0f s (offset now %+.0f s)", float(params["seconds"]),
                     self.clock.offset_s)
        elif do in ("disk_full", "disk_ok"):
            store = self.supervisor.store if self.supervisor else None
            if not isinstance(store, FillableDiskStore):
                log.warning("action %s: the gateway's store is not open; skipped", do)
                return
            if do == "disk_full":
                store.fill(int(float(params.get("headroom_kb", 64)) * 1024))
                undo = lambda: self._disk_ok()  # noqa: E731
            else:
                self._disk_ok()
        else:
            raise ValueError(f"unknown gateway action {do!r}")
        until = params.get("until")
        if until is not None and undo is not None:
            elapsed = time.monotonic() - self.started if self.started else (at or 0.0)
            t = threading.Timer(max(0.0, float(until) - elapsed), self._guarded(undo))
            t.daemon = True
            self._timers.append(t)
            t.start()

    def _guarded(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            if self.stop_event.is_set():
                return
            try:
                fn()
            except Exception as exc:
                log.error("undoing a fault failed: %s", exc)
        return run

    def _disk_ok(self) -> None:
        store = self.supervisor.store if self.supervisor else None
        if isinstance(store, FillableDiskStore):
            store.free()

    def _broker_up(self) -> None:
        if self.broker is not None and not self.stop_event.is_set():
            self.broker.start()

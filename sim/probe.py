"""A simulated test device: a driver that emits ordinary events, and its sim side.

`sim_probe` is the simplest possible driver. It exists so the gateway itself
(store, forwarder, supervisor) can be exercised without any device family:
steady ticks for the demo, floods for throughput, and scripted failures
(`crash`, `stall`) for the supervisor's restart logic.

Config (`[[sim_probe]]`): `name`, `interval` (seconds between ticks; 0 means
as fast as the store accepts them), `emitters` (threads emitting at once),
`severity`, `wait` (true: each tick waits until its event is on disk,
`ctx.emit`; false: it is handed over without waiting, `ctx.submit`, the way a
source that holds no device can feed the store at full speed).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

from gateway.configfile import Problems, Section
from gateway.driver import CommandRefused, Driver, Emission
from gateway.events import DEVICE_PATTERN
from gateway.store import StoreUnavailable
from sim.base import SimDevice


@dataclass(frozen=True)
class ProbeConfig:
    name: str
    interval: float
    emitters: int
    severity: str
    wait: bool


class ProbeDriver(Driver):
    """Emits `sim_tick` events; obeys `crash` / `stall` / `burst` orders from its ProbeSim."""

    event_class: ClassVar[str] = "gateway"
    stall_timeout: ClassVar[float] = 5.0

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], problems: Problems, base_dir: Path | None = None) -> list[ProbeConfig]:
        out = []
        root = Section(raw, "", problems, base_dir)
        for sec in root.sections("sim_probe"):
            out.append(ProbeConfig(name=sec.str("name", pattern=DEVICE_PATTERN),
                                   interval=sec.float("interval", 1.0, min=0.0, max=3600.0),
                                   emitters=sec.int("emitters", 1, min=1, max=64),
                                   severity=sec.str("severity", "info", choices=("info", "warning", "alarm", "critical")),
                                   wait=sec.bool("wait", True)))
            sec.finish()
        return out

    def __init__(self, name: str, config: list[ProbeConfig], ctx: Any) -> None:
        super().__init__(name, config, ctx)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._counts: dict[str, int] = {}
        self._count_lock = threading.Lock()

    def start(self) -> None:
        self._stop.clear()
        for probe in self.config:
            orders = self.ctx.resources.get(f"probe:{probe.name}")
            for i in range(probe.emitters):
                t = threading.Thread(target=self._emit_loop, args=(probe, orders if i == 0 else None),
                                     name=f"probe-{probe.name}-{i}", daemon=True)
                t.start()
                self._threads.append(t)
        self.set_state("ok")
        self.progress()

    def _emit_loop(self, probe: ProbeConfig, orders: "queue.Queue[tuple[str, dict]] | None") -> None:
        stalled = False
        while not self._stop.is_set():
            if orders is not None:
                try:
                    order, params = orders.get_nowait()
                except queue.Empty:
                    pass
                else:
                    if order == "crash":
                        self.set_state("fault", "simulated crash")
                        return
                    if order == "stall":
                        stalled = True
                    if order == "burst":
                        for _ in range(int(params.get("count", 100))):
                            self._tick(probe)
            if not stalled:
                self.progress()
            self._tick(probe)
            if probe.interval:
                self._stop.wait(probe.interval)

    def _tick(self, probe: ProbeConfig) -> None:
        with self._count_lock:
            n = self._counts.get(probe.name, 0) + 1
            self._counts[probe.name] = n
        try:
            if probe.wait:
                self.ctx.emit(probe.name, "sim_tick", probe.severity, {"n": n})
            else:
                self.ctx.submit([Emission(probe.name, "sim_tick", probe.severity, {"n": n})])
        except StoreUnavailable as exc:
            self.log.error("probe %s: %s", probe.name, exc)
            self._stop.wait(0.5)
        self.count("emitted")

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        self.set_state("stopped")

    def commands(self) -> Mapping[str, Any]:
        def probe_count(args: Mapping[str, Any]) -> dict[str, Any]:
            unknown = set(args) - {"device"}
            if unknown:
                raise CommandRefused(f"unknown argument(s): {', '.join(sorted(unknown))}")
            dev = args.get("device")
            if dev is not None and not isinstance(dev, str):
                raise CommandRefused("device must be a string")
            if dev is not None and dev not in self._counts:
                raise CommandRefused(f"no probe named {dev!r}")
            return {"counts": {k: v for k, v in self._counts.items() if dev in (None, k)}}
        return {"probe_count": probe_count}


class ProbeSim(SimDevice):
    """The sim side of a probe: passes `crash`, `stall` and `burst` orders to the driver."""

    kind: ClassVar[str] = "probe"
    actions: ClassVar[tuple[str, ...]] = ("crash", "stall", "burst")

    def __init__(self, name: str, params: Mapping[str, Any], world: Any) -> None:
        super().__init__(name, params, world)
        self.orders: "queue.Queue[tuple[str, dict]]" = queue.Queue()
        world.resources[f"probe:{name}"] = self.orders

    def config(self) -> dict[str, Any]:
        entry = {"name": self.name}
        for key in ("interval", "emitters", "severity", "wait"):
            if key in self.params:
                entry[key] = self.params[key]
        return {"sim_probe": [entry]}

    def act(self, action: str, params: Mapping[str, Any]) -> None:
        if action not in self.actions:
            super().act(action, params)
        self.orders.put((action, dict(params)))

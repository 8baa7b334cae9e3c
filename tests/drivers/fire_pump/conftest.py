"""A rig for end-to-end fire pump tests: simulated panels (real pymodbus servers) + the real driver."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from gateway.configfile import Problems
from gateway.clock import Clock
from sim.base import SimWorld
from sim.fire_pump import FirePumpSim
from drivers.fire_pump import FirePumpDriver

FAST = {"poll_s": 0.1, "timeout_s": 0.2, "retries": 0, "comm_loss_after": 3, "telemetry_s": 1.0}


class Rig:
    def __init__(self, make_ctx: Callable[..., Any], tmp_path: Path) -> None:
        self.make_ctx = make_ctx
        self.tmp_path = tmp_path
        self.world = SimWorld(state_dir=tmp_path / "sim")
        self.sims: dict[str, FirePumpSim] = {}
        self.driver: FirePumpDriver | None = None
        self.ctx: Any = None

    def sim(self, name: str, **params: Any) -> FirePumpSim:
        merged = {**FAST, **params}
        s = FirePumpSim(name, merged, self.world)
        self.sims[name] = s
        return s

    def config(self, overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
        entries = []
        for name, s in self.sims.items():
            entry = s.config()["fire_pump"][0]
            entry.update((overrides or {}).get(name, {}))
            entries.append(entry)
        return {"fire_pump": entries}

    def start(self, clock: Clock | None = None, overrides: dict[str, dict[str, Any]] | None = None,
              ctx: Any = None) -> Any:
        raw = self.config(overrides)
        problems = Problems()
        cfg = FirePumpDriver.parse_config(raw, problems, self.tmp_path)
        assert not problems, [str(p) for p in problems.items]
        for s in self.sims.values():
            if s._thread is None:
                s.start()
        self.ctx = ctx or self.make_ctx("fire_pump", event_class="fire_pump", clock=clock)
        self.driver = FirePumpDriver("fire_pump", cfg, self.ctx)
        self.driver.start()
        return self.ctx

    def stop_driver(self) -> None:
        if self.driver is not None:
            self.driver.stop(5.0)
            assert not self.driver.alive
            self.driver = None

    def close(self) -> None:
        self.stop_driver()
        for s in self.sims.values():
            s.stop()


@pytest.fixture
def rig(make_ctx: Callable[..., Any], tmp_path: Path) -> Iterator[Rig]:
    r = Rig(make_ctx, tmp_path)
    try:
        yield r
    finally:
        r.close()

"""The interface of a simulated device, and the world they share.

A `SimDevice` stands in for one piece of hardware. It does not fake the
driver: the real driver runs, and the simulated device sits on the other side
of the real interface (gpiozero mock pins, a pseudo-terminal carrying real
serial frames, a real pymodbus server, a synthetic camera scene).

    dev = IrBeamSim("north-wall-1", params, world)
    fragment = dev.config()   # what to add to the gateway config: {"ir_beam": [{...}]}
    dev.start()               # before the supervisor starts its drivers
    dev.act("intrude", {"duration": 1.5})   # scenario timeline actions
    dev.stop()

Each device also makes its own steady stream of ordinary activity once started
(guards walking, pressure leaking), so the `default` scenario is never silent.
"""

from __future__ import annotations

import abc
import logging
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

from gateway.clock import Clock, SystemClock


@dataclass
class SimWorld:
    """What all simulated devices of one run share."""

    state_dir: Path                      # a scratch folder for ptys' links, data files, clips
    rng: random.Random = field(default_factory=lambda: random.Random(1))
    clock: Clock = field(default_factory=SystemClock)
    # Objects handed to the drivers in place of hardware (DriverContext.resources),
    # e.g. {"gpio_pin_factory": gpiozero.pins.mock.MockFactory()}.
    resources: dict[str, Any] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)


class UnknownAction(ValueError):
    """A scenario asked a simulated device for an action it does not know."""


class SimDevice(abc.ABC):
    """One simulated device."""

    kind: ClassVar[str]                  # the driver type it pairs with, e.g. "ir_beam"
    actions: ClassVar[tuple[str, ...]] = ()   # the scenario actions it understands

    def __init__(self, name: str, params: Mapping[str, Any], world: SimWorld) -> None:
        self.name = name
        self.params = dict(params)
        self.world = world
        self.log = logging.getLogger(f"anfang.sim.{name}")

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """The gateway-config fragment for the driver side of this device.

        Arrays of tables are appended to, tables merged, e.g. {"ir_beam": [{...}]}.
        """

    def start(self) -> None:
        """Bring the device up (open ptys, start servers, start steady activity)."""

    def stop(self) -> None:
        """Tear down; must return within a few seconds."""

    def act(self, action: str, params: Mapping[str, Any]) -> None:
        """Perform a scenario action; unknown actions raise UnknownAction."""
        raise UnknownAction(f"{self.kind} device {self.name!r} has no action {action!r} "
                            f"(it knows: {', '.join(self.actions) or 'none'})")

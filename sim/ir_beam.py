"""Simulated active infrared beam receivers on gpiozero `MockFactory` pins.

Each receiver's relay contacts are `ContactPin`s: mock GPIO inputs wired to a
dry contact, so the pin reads the contact (closed: the wire's level; open:
the pull resistor's level) whatever pull the driver sets, exactly as a real
wire would. They live in the shared `MockFactory` that the world hands the
driver as the `gpio_pin_factory` resource; the real `IrBeamDriver` opens them.

Scenario actions: `intrude` (duration, s), `tamper` (duration, s), `fog`
(duration, s: the environmental output, or the beam itself on a receiver
without one), `cut_cable` (every contact open until `realign`), `chatter`
(duration, hz: a loose alarm wire), `realign` (everything back to normal).
Steady activity: a short interruption (a pass along the wall) every
`activity_s` seconds on average (0: none).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, ClassVar, Mapping

from gpiozero.exc import PinFixedPull, PinInvalidPull
from gpiozero.pins.mock import MockFactory, MockPin

from sim.base import SimDevice, SimWorld, UnknownAction

PIN_POOL = tuple(range(27, 3, -1))   # from the top: other simulated families count up from 5
RESOURCE_KEY = "gpio_pin_factory"


class ContactPin(MockPin):
    """A mock GPIO input wired to a dry contact.

    `wired_to_ground` (the usual wiring with a pull-up): a closed contact pulls
    the pin low; otherwise the contact goes to 3V3 and pulls it high. An open
    contact leaves the pin to the pull resistor: the internal one the driver
    chose, or, when the driver leaves the pin floating, the external resistor
    (up when wired to ground, down otherwise).
    """

    def __init__(self, factory: Any, info: Any, closed: bool = True, wired_to_ground: bool = True) -> None:
        super().__init__(factory, info)
        self.closed = closed
        self.wired_to_ground = wired_to_ground
        self._settle()

    def _set_pull(self, value: str) -> None:
        if self.function != "input":
            raise PinFixedPull(f"cannot set pull on non-input pin {self!r}")
        if self.info.pull and value != self.info.pull:
            raise PinFixedPull(f"{self!r} has a fixed pull resistor")
        if value not in ("floating", "up", "down"):
            raise PinInvalidPull("pull must be floating, up, or down")
        self._pull = value
        self._settle()

    def level_now(self) -> bool:
        if self.closed:
            return not self.wired_to_ground
        if self._pull == "up":
            return True
        if self._pull == "down":
            return False
        return self.wired_to_ground          # external resistor

    def _settle(self) -> None:
        if self._function != "input":
            return
        if self.level_now():
            self.drive_high()
        else:
            self.drive_low()

    def set_contact(self, closed: bool) -> None:
        self.closed = closed
        self._settle()


def shared_factory(world: SimWorld) -> MockFactory:
    """The world's `MockFactory`, created on first use."""
    factory = world.resources.get(RESOURCE_KEY)
    if factory is None:
        factory = MockFactory()
        world.resources[RESOURCE_KEY] = factory
    return factory


class IrBeamSim(SimDevice):
    """One beam pair: a receiver's alarm, tamper and (optionally) environmental contacts."""

    kind: ClassVar[str] = "ir_beam"
    actions: ClassVar[tuple[str, ...]] = ("intrude", "tamper", "fog", "cut_cable", "chatter", "realign")

    def __init__(self, name: str, params: Mapping[str, Any], world: SimWorld) -> None:
        super().__init__(name, params, world)
        p = self.params
        self.factory = shared_factory(world)
        self.contact = str(p.get("contact", "nc"))
        self.pull = str(p.get("pull", "up"))
        self.group = str(p.get("group", "perimeter"))
        self.schedule = p.get("schedule", "always")
        self.activity_s = float(p.get("activity_s", 0.0))
        self.has_env = bool(p.get("env", False)) or "env_pin" in p
        to_ground = self.pull in ("up", "external-up")
        self.pins: dict[str, ContactPin] = {}
        for inp in ("alarm", "tamper") + (("env",) if self.has_env else ()):
            spec = p.get(f"{inp}_pin")
            if spec is None:
                spec = next(n for n in PIN_POOL if not self._taken(n))
            # the normal state: an NC contact is closed, an NO contact open
            self.pins[inp] = self.factory.pin(spec, pin_class=ContactPin, closed=self.contact == "nc",
                                              wired_to_ground=to_ground)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._cond = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._chatter: threading.Thread | None = None
        self._cut = False

    def _taken(self, n: int) -> bool:
        return any(info.name == f"GPIO{n}" for info in self.factory.pins)

    # -- config ------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        p = self.params
        entry: dict[str, Any] = {"zone": self.name, "group": self.group, "contact": self.contact, "pull": self.pull,
                                 "alarm_pin": self.pins["alarm"].info.name, "tamper_pin": self.pins["tamper"].info.name}
        if "env" in self.pins:
            entry["env_pin"] = self.pins["env"].info.name
        if self.schedule:
            entry["schedule"] = self.schedule
        for key in ("debounce_ms", "adjacent", "swinger_limit", "trouble_after_s"):
            if key in p:
                entry[key] = p[key]
        return {"ir_beam_settings": {"pin_factory": "mock"}, "ir_beam": [entry]}

    # -- contacts ----------------------------------------------------------
    def set_active(self, inp: str, active: bool) -> None:
        """Put an input in its alarm (active) or normal position."""
        if self._cut:
            return
        nc = self.contact == "nc"
        self.pins[inp].set_contact(closed=(not active) if nc else active)

    # -- life cycle ----------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._timeline, name=f"sim-ir_beam-{self.name}", daemon=True)
        self._thread.start()
        if self.activity_s > 0:
            self._after(self._next_activity(), self._activity)

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for t in (self._thread, self._chatter):
            if t is not None:
                t.join(3.0)

    def _next_activity(self) -> float:
        return self.activity_s * (0.5 + self.world.rng.random())

    def _activity(self) -> None:
        self.set_active("alarm", True)
        self._after(0.3, lambda: self.set_active("alarm", False))
        self._after(self._next_activity(), self._activity)

    def _after(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cond:
            self._seq += 1
            self._timers.append((time.monotonic() + delay, self._seq, fn))
            self._timers.sort()
            self._cond.notify_all()

    def _timeline(self) -> None:
        while not self._stop.is_set() and not self.world.stopping.is_set():
            with self._cond:
                now = time.monotonic()
                if not self._timers or self._timers[0][0] > now:
                    wait = 0.5 if not self._timers else min(0.5, self._timers[0][0] - now)
                    self._cond.wait(wait)
                    continue
                _, _, fn = self._timers.pop(0)
            try:
                fn()
            except Exception:
                self.log.exception("simulated %s action failed", self.name)

    # -- scenario actions ------------------------------------------------------
    def act(self, action: str, params: Mapping[str, Any]) -> None:
        if action == "intrude":
            self._pulse("alarm", float(params.get("duration", 1.0)))
        elif action == "tamper":
            self._pulse("tamper", float(params.get("duration", 5.0)))
        elif action == "fog":
            self._pulse("env" if "env" in self.pins else "alarm", float(params.get("duration", 10.0)))
        elif action == "cut_cable":
            for pin in self.pins.values():
                pin.set_contact(closed=False)
            self._cut = True
        elif action == "chatter":
            self._start_chatter(float(params.get("duration", 2.0)), float(params.get("hz", 500.0)))
        elif action == "realign":
            self._cut = False
            with self._cond:
                self._timers = [t for t in self._timers if t[2] == self._activity]
            for inp in self.pins:
                self.set_active(inp, False)
        else:
            super().act(action, params)

    def _pulse(self, inp: str, duration: float) -> None:
        self.set_active(inp, True)
        self._after(duration, lambda: self.set_active(inp, False))

    def _start_chatter(self, duration: float, hz: float) -> None:
        if self._chatter is not None and self._chatter.is_alive():
            return
        half = 0.5 / max(1.0, hz)

        def run() -> None:
            end = time.monotonic() + duration
            nxt = time.monotonic()
            active = False
            while time.monotonic() < end and not self._stop.is_set():
                active = not active
                self.set_active("alarm", active)
                nxt += half
                delay = nxt - time.monotonic()
                if delay > 0:
                    time.sleep(delay)      # pacing the toggles, not synchronisation
            self.set_active("alarm", False)

        self._chatter = threading.Thread(target=run, name=f"sim-ir_beam-{self.name}-chatter", daemon=True)
        self._chatter.start()

"""GPIO access for the IR beam driver, through gpiozero with an explicit pin factory.

The factory is chosen by `ir_beam_settings.pin_factory`: "mock" takes the
host's `gpio_pin_factory` resource (the simulator's `MockFactory`, so it can
drive the pins) or makes a fresh `MockFactory`; "lgpio" imports lgpio only
then; "default" lets gpiozero pick as it would on its own. Debouncing is not
done here (mock pins ignore `bounce_time` and lgpio drops edges with it):
every edge goes to the callback, which stamps it.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from drivers.ir_beam.config import InputConfig

RESOURCE_KEY = "gpio_pin_factory"


def make_factory(kind: str, resources: Mapping[str, Any]) -> tuple[Any, bool]:
    """The pin factory to use and whether we own it (and must close it)."""
    if kind == "mock":
        shared = resources.get(RESOURCE_KEY)
        if shared is not None:
            return shared, False
        from gpiozero.pins.mock import MockFactory
        return MockFactory(), True
    if kind == "lgpio":
        from gpiozero.pins.lgpio import LGPIOFactory   # needs the `pi` extra
        return LGPIOFactory(), True
    from gpiozero import Device
    return Device._default_pin_factory(), True


class ContactInput:
    """One contact on one GPIO input; calls `on_edge(level)` on every edge."""

    def __init__(self, factory: Any, cfg: InputConfig, on_edge: Callable[[bool], None]) -> None:
        from gpiozero import InputDevice
        pull_up = {"up": True, "down": False}.get(cfg.pull)
        self._on_edge = on_edge
        self.device = InputDevice(cfg.pin, pull_up=pull_up,
                                  active_state=True if pull_up is None else None,
                                  pin_factory=factory)
        try:
            pin = self.device.pin
            pin.bounce = None
            pin.edges = "both"
            pin.when_changed = self._changed   # held weakly by gpiozero: the driver keeps us
        except Exception:
            self.device.close()
            raise

    def _changed(self, ticks: Any, state: Any) -> None:
        self._on_edge(bool(state))

    def level(self) -> bool:
        return bool(self.device.pin.state)

    def close(self) -> None:
        try:
            pin = self.device.pin
            if pin is not None:
                pin.when_changed = None
        except Exception:
            pass
        self.device.close()

"""Which simulated device class stands in for which device family, and which drivers a simulation may use.

Simulated device types (`[[device]] kind = ...` in a scenario) come from the
entry-point group `anfang.sim_devices`, as drivers come from `anfang.drivers`:
the entry-point name is the kind, the value a `sim.base.SimDevice` subclass.
An integrator's driver package can so bring its own simulator, and a kind's
module (a camera scene, a Modbus panel) is imported only when a scenario
names it.

The simulated gateway may also run the simulator's test drivers
(`anfang.sim_drivers`: `sim_probe`), which a production gateway never offers.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any, Mapping

from gateway.driver import WITH_SIM_DRIVERS, Driver, discover_driver_types
from sim.base import SimDevice

SIM_DEVICES_ENTRY_POINT_GROUP = "anfang.sim_devices"


class UnknownSimKind(ValueError):
    pass


def sim_device_kinds() -> dict[str, EntryPoint]:
    """Installed simulated device kinds (name -> entry point, not loaded)."""
    return {ep.name: ep for ep in entry_points(group=SIM_DEVICES_ENTRY_POINT_GROUP)}


def load_sim_type(kind: str) -> type[SimDevice]:
    kinds = sim_device_kinds()
    if kind not in kinds:
        raise UnknownSimKind(f"unknown simulated device kind {kind!r} (known: {', '.join(sorted(kinds))})")
    try:
        obj = kinds[kind].load()
    except ImportError as exc:
        raise UnknownSimKind(f"simulated {kind} devices are not available: {exc}") from exc
    if not (isinstance(obj, type) and issubclass(obj, SimDevice)):
        raise UnknownSimKind(f"simulated device kind {kind!r} ({kinds[kind].value}) is not a sim.base.SimDevice")
    return obj


def driver_types(raw: Mapping[str, Any]) -> dict[str, type[Driver]]:
    """The driver types a gateway config's sections need, the simulator's test drivers included."""
    from gateway.config import GATEWAY_TABLES

    return discover_driver_types(set(raw) - set(GATEWAY_TABLES), WITH_SIM_DRIVERS)[0]

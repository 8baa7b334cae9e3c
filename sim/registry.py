"""Which simulated device class stands in for which device family (`[[device]] kind = ...`)."""

from __future__ import annotations

import importlib

from sim.base import SimDevice

SIM_DEVICE_TYPES: dict[str, str] = {
    "probe": "sim.probe:ProbeSim",
    "ir_beam": "sim.ir_beam:IrBeamSim",
    "patrol": "sim.patrol:PatrolSim",
    "fire_pump": "sim.fire_pump:FirePumpSim",
    "camera": "sim.camera:CameraSim",
}


class UnknownSimKind(ValueError):
    pass


def load_sim_type(kind: str) -> type[SimDevice]:
    if kind not in SIM_DEVICE_TYPES:
        raise UnknownSimKind(f"unknown simulated device kind {kind!r} (known: {', '.join(SIM_DEVICE_TYPES)})")
    module_name, _, attr = SIM_DEVICE_TYPES[kind].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownSimKind(f"simulated {kind} devices are not available: {exc}") from exc
    return getattr(module, attr)

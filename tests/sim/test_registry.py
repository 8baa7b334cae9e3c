"""Simulated device kinds and the simulator's test drivers come from entry points, not a list in the code."""

from __future__ import annotations

import pytest

from gateway.driver import discover_driver_types
from sim.base import SimDevice
from sim.registry import UnknownSimKind, driver_types, load_sim_type, sim_device_kinds


def test_every_installed_kind_loads_a_sim_device_of_that_kind() -> None:
    kinds = sim_device_kinds()
    assert {"probe", "ir_beam", "patrol", "fire_pump", "camera"} <= set(kinds)
    for name in kinds:
        cls = load_sim_type(name)
        assert issubclass(cls, SimDevice) and cls.kind == name


def test_an_unknown_kind_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(UnknownSimKind, match=r"unknown simulated device kind 'door'.*fire_pump.*probe"):
        load_sim_type("door")


def test_the_probe_driver_is_the_simulators_not_the_gateways() -> None:
    assert "sim_probe" not in discover_driver_types()[0]
    assert set(driver_types({"gateway": {}, "sim_probe": []})) == {"sim_probe"}

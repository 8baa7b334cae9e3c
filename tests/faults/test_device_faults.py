"""Device faults through the families' own simulated devices: what the gateway reports, nothing lost.

A serial reader unplugged (patrol), a Modbus panel answering garbage
(fire_pump), the camera picture freezing (camera). Each runs beside a probe
device, so the test also shows the other drivers carry on untouched.
"""

from __future__ import annotations

from pathlib import Path

from tests.faults.fault_helpers import SimInThread, assert_no_loss, probe_devices
from tests.helpers import wait_until


def _types(sim: SimInThread, device: str | None = None) -> list[str]:
    return [e["type"] for e in sim.out.events() if device is None or e["device"] == device]


def _events(sim: SimInThread, type_: str) -> list[dict]:
    return [e for e in sim.out.events() if e["type"] == type_]


def test_serial_reader_unplugged_is_a_reader_fault_then_a_restore(tmp_path: Path) -> None:
    scenario = probe_devices(interval=0.2) + """
[[device]]
kind = "patrol"
name = "patrol"
params = { readers = ["em4100", "pn532"], leg_s = 1.0, noise = 0.0, corrupt = 0.0 }

[[action]]
at = 1.5
device = "patrol"
do = "unplug"
reader = 1

[[action]]
at = 5.0
device = "patrol"
do = "replug"
reader = 1
"""
    with SimInThread(tmp_path, scenario) as sim:
        fault = wait_until(lambda: _events(sim, "reader_fault"), 15, message=lambda: f"reader_fault; saw {_types(sim)}")[0]
        assert fault["class"] == "patrol" and fault["severity"] == "warning"
        assert fault["data"]["reader"] == "patrol-cp1"
        health = sim.sup.health()["drivers"]["patrol"]
        assert health["supervisor_state"] == "running", "one unplugged reader does not take the driver down"
        wait_until(lambda: _events(sim, "reader_restore"), 20, message=lambda: f"reader_restore; saw {_types(sim)}")
        sim.wait_drained()
        assert sim.sup.health()["drivers"]["sim_probe"]["restarts"] == 0
    assert_no_loss(sim.verdict())


def test_modbus_panel_answering_garbage_is_comm_loss_then_restore(tmp_path: Path) -> None:
    scenario = probe_devices(interval=0.2) + """
[[device]]
kind = "fire_pump"
name = "pump-room"
params = { transport = "tcp", map = "electric", poll_s = 0.3, timeout_s = 0.3, retries = 0, telemetry_s = 5.0 }

[[action]]
at = 2.0
device = "pump-room"
do = "garbage_replies"
mode = "noise"
duration = 4.0
"""
    with SimInThread(tmp_path, scenario) as sim:
        loss = wait_until(lambda: _events(sim, "comm_loss"), 15, message=lambda: f"comm_loss; saw {_types(sim)}")[0]
        assert loss["class"] == "fire_pump" and loss["device"] == "pump-room" and loss["severity"] == "warning"
        panel = sim.sup.health()["drivers"]["fire_pump"]
        assert panel["supervisor_state"] == "running"
        wait_until(lambda: _events(sim, "comm_loss_restore"), 20,
                   message=lambda: f"comm_loss_restore; saw {_types(sim)}")
        sim.wait_drained()
    assert "data_fault" not in _types(sim), "garbage must not be read as values"
    assert_no_loss(sim.verdict())


def test_camera_freezing_is_a_camera_fault_frozen_then_a_restore(tmp_path: Path) -> None:
    scenario = probe_devices(interval=0.2) + """
[[device]]
kind = "camera"
name = "tower"
params = { width = 320, height = 180, fps = 8, floors = 10, seed = 3, bird_every_s = 0 }

[[action]]
at = 1.0
device = "tower"
do = "freeze"
duration = 8.0
"""
    with SimInThread(tmp_path, scenario) as sim:
        fault = wait_until(lambda: _events(sim, "camera_fault"), 20,
                           message=lambda: f"camera_fault; saw {_types(sim)}")[0]
        assert fault["class"] == "camera" and fault["data"]["reason"] == "frozen"
        wait_until(lambda: _events(sim, "camera_restore"), 25, message=lambda: f"camera_restore; saw {_types(sim)}")
        sim.wait_drained()
        assert sim.sup.health()["drivers"]["camera"]["supervisor_state"] == "running"
    assert "thrown_object" not in _types(sim), "a frozen picture raises no alarm"
    assert_no_loss(sim.verdict())

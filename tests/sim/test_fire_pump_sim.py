"""The simulated fire pump panel on its own: a real Modbus server with physics and faults."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

import pytest

from gateway.configfile import Problems
from sim.base import SimWorld, UnknownAction
from sim.fire_pump import FirePumpSim
from drivers.fire_pump.regmap import decode_block, load_map, plan_reads
from drivers.fire_pump.poller import Endpoint, Link, PanelPoll
from tests.helpers import wait_until


def read_once(sim: FirePumpSim, unit: int | None = None, timeout: float = 0.3) -> tuple[bool, dict, str]:
    """Poll the panel once with the driver's own link; returns (ok, values, reason)."""
    ep = (Endpoint("tcp", host="127.0.0.1", port=sim.port) if sim.transport == "tcp"
          else Endpoint("rtu", serial_port=sim.serial_port))
    poll = PanelPoll(sim.name, unit or sim.unit, plan_reads(sim.map.points), 1.0, timeout, 0)

    async def go():
        link = Link(ep, [poll], lambda p, r: None)
        try:
            return await link.poll(poll)
        finally:
            link.drop()
    res = asyncio.run(go())
    values: dict = {}
    for block, data in res.data:
        values.update(decode_block(block, data)[0])
    return res.ok, values, res.reason


@pytest.fixture
def world(tmp_path):
    w = SimWorld(state_dir=tmp_path)
    yield w


@pytest.fixture
def sims():
    made: list[FirePumpSim] = []
    yield made
    for s in made:
        s.stop()


def make(sims, world, name, **params):
    s = FirePumpSim(name, params, world)
    sims.append(s)
    return s


def test_config_names_the_port_before_start(sims, world):
    tcp = make(sims, world, "a", transport="tcp")
    rtu = make(sims, world, "b", transport="rtu", unit=4, map="diesel", poll_s=0.5)
    t = tcp.config()["fire_pump"][0]
    r = rtu.config()["fire_pump"][0]
    assert t["host"] == "127.0.0.1" and t["port"] > 0
    assert r["serial_port"].startswith("/dev/pts/") and r["unit"] == 4 and r["poll_s"] == 0.5
    assert (world.state_dir / "fire_pump-rtu0.tty").resolve() == Path(r["serial_port"])


def test_pressure_leaks_jockey_tops_up_main_pump_starts_below_start_pressure(sims, world):
    s = make(sims, world, "p", transport="tcp", leak_bar_per_s=1.0, jockey_start_bar=6.5,
             main_start_bar=5.5, operator_stop_after_s=0.5)
    s.start()
    ok, v, _ = read_once(s)
    assert ok and v["mode"] == "auto" and v["pump_running"] is False
    wait_until(lambda: s.state.jockey)                   # leak 1 bar/s, jockey (0.15 bar/s) cannot keep up
    ok, v, _ = wait_until(lambda: (r := read_once(s))[1].get("pump_running") and r)
    assert v["start_cause"] == "pressure"
    assert v["current_l1"] > 0


def test_weekly_inspection_run_comes_on_its_compressed_schedule(sims, world):
    s = make(sims, world, "p", transport="tcp", weekly_every_s=0.3, weekly_run_s=0.5)
    s.start()
    ok, v, _ = wait_until(lambda: (r := read_once(s))[1].get("pump_running") and r)
    assert v["start_cause"] == "weekly_test"
    wait_until(lambda: not read_once(s)[1].get("pump_running"))


def test_actions_show_in_the_registers(sims, world):
    s = make(sims, world, "p", transport="tcp")
    s.start()
    s.act("phase_loss", {})
    s.act("switch_to_manual", {})
    ok, v, _ = read_once(s)
    assert v["phase_loss"] is True and v["mode"] == "manual" and v["voltage_l1"] == 0.0
    s.act("clear", {})
    ok, v, _ = read_once(s)
    assert v["phase_loss"] is False and v["mode"] == "auto"
    s.act("garbage_replies", {"mode": "exception", "code": 2})
    ok, _, reason = read_once(s)
    assert not ok and "exception response 2" in reason
    s.act("clear", {})
    s.act("panel_offline", {"duration": 5})
    ok, _, reason = read_once(s)
    assert not ok and "timeout" in reason
    with pytest.raises(UnknownAction):
        s.act("explode", {})


def test_rtu_bus_answers_each_unit_and_nothing_for_an_absent_one(sims, world):
    a = make(sims, world, "a", transport="rtu", unit=1, map="electric")
    b = make(sims, world, "b", transport="rtu", unit=2, map="diesel")
    a.config(), b.config()
    a.start(), b.start()
    assert a.serial_port == b.serial_port
    b.act("set_alarm", {"alarm": "overspeed"})
    ok, va, _ = read_once(a)
    ok2, vb, _ = read_once(b)
    assert ok and ok2 and "overspeed" not in va and vb["overspeed"] is True
    ok, _, reason = read_once(a, unit=9)
    assert not ok and "timeout" in reason
    a.act("garbage_replies", {"mode": "crc"})
    ok, _, reason = read_once(a)
    assert not ok and "timeout" in reason              # a bad CRC is dropped like noise
    assert read_once(b)[0]


def test_default_scenario_uses_known_actions():
    path = Path(__file__).parents[2] / "sim" / "scenarios" / "default" / "fire_pump.toml"
    doc = tomllib.loads(path.read_text())
    names = {d["name"]: d for d in doc["device"] if d["kind"] == "fire_pump"}
    assert len(names) >= 2 and {d["params"]["transport"] for d in names.values()} == {"tcp", "rtu"}
    for action in doc["action"]:
        assert action["device"] in names and action["do"] in FirePumpSim.actions
    for d in names.values():
        assert load_map(d["params"]["map"], Problems()) is not None

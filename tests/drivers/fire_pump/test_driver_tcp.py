"""End to end over Modbus TCP: the real driver against a simulated panel (a real pymodbus server)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from gateway.clock import ManualClock
from gateway.configfile import Problems
from gateway.driver import CommandRefused
from drivers.fire_pump.regmap import load_map
from tests.helpers import wait_until

ELECTRIC_ALARMS = [p.name for p in load_map("electric", Problems()).by_role("alarm")]


def test_quiet_panel_gives_telemetry_and_no_alarms(rig):
    rig.sim("pump-1")
    ctx = rig.start()
    wait_until(lambda: any(d == "pump-1" and "discharge_pressure" in v for d, v in ctx.telemetry_seen),
             message="telemetry")
    _, values = next((d, v) for d, v in ctx.telemetry_seen if d == "pump-1")
    assert 5.0 < values["discharge_pressure"] < 8.0 and values["mode"] == "auto"
    assert values["voltage_l1"] == 380.0 and values["running"] is False
    wait_until(lambda: rig.driver.health().devices.get("pump-1") == "ok", message="device ok")
    assert [e.type for e in ctx.events()] == []


def test_every_alarm_and_its_restore(rig):
    sim = rig.sim("pump-1", operator_stop_after_s=0.5)
    ctx = rig.start()
    wait_until(lambda: rig.driver.health().devices.get("pump-1") == "ok", message="first poll")
    for alarm in ELECTRIC_ALARMS:
        sim.act("set_alarm", {"alarm": alarm})
        ev = ctx.wait_event(alarm)
        assert ev.cls == "fire_pump" and ev.device == "pump-1" and ev.data["state"] == "active"
        sim.act("clear_alarm", {"alarm": alarm})
        ctx.wait_event(f"{alarm}_restore")


def test_phase_loss_and_power_loss_actions_with_restore(rig):
    sim = rig.sim("pump-1")
    ctx = rig.start()
    wait_until(lambda: rig.driver.health().devices.get("pump-1") == "ok", message="first poll")
    sim.act("phase_loss", {"duration": 0.5})
    assert ctx.wait_event("phase_loss").severity == "alarm"
    ctx.wait_event("phase_loss_restore")
    sim.act("power_loss", {})
    assert ctx.wait_event("power_loss").severity == "critical"
    wait_until(lambda: any(v.get("voltage_l2") == 0.0 for d, v in ctx.telemetry_seen), message="0 V telemetry")
    sim.act("clear", {})
    ctx.wait_event("power_loss_restore")


def test_pressure_drop_starts_the_pump_with_cause_and_start_pressure(rig):
    sim = rig.sim("pump-1", operator_stop_after_s=1.0)
    ctx = rig.start()
    wait_until(lambda: rig.driver.health().devices.get("pump-1") == "ok", message="first poll")
    sim.act("pressure_drop", {"to": 4.5})
    started = ctx.wait_event("pump_started")
    assert started.data["cause"] == "pressure" and started.data["mode"] == "auto"
    assert started.data["start_pressure"] is not None and started.data["start_pressure"] < 5.5
    assert started.data["time_to_running_s"] is not None
    stopped = ctx.wait_event("pump_stopped")
    assert stopped.data["cause"] == "pressure" and 0.5 <= stopped.data["run_s"] <= 3.0
    assert ctx.events("test_run") == []          # a demand start is not a test


def test_fail_to_start(rig):
    sim = rig.sim("pump-1")
    ctx = rig.start()
    wait_until(lambda: rig.driver.health().devices.get("pump-1") == "ok", message="first poll")
    sim.act("fail_to_start", {})
    assert ctx.wait_event("fail_to_start").severity == "critical"
    assert ctx.events("pump_started") == []
    sim.act("clear", {})
    ctx.wait_event("fail_to_start_restore")


def test_switch_to_manual_is_not_in_auto(rig):
    sim = rig.sim("pump-1")
    ctx = rig.start()
    sim.act("switch_to_manual", {})
    ev = ctx.wait_event("not_in_auto")
    assert ev.severity == "alarm" and ev.data["mode"] == "manual"
    sim.act("switch_to_auto", {})
    ctx.wait_event("not_in_auto_restore")


@pytest.mark.parametrize("action, params", [
    ("panel_offline", {}),
    ("garbage_replies", {"mode": "short"}),
    ("garbage_replies", {"mode": "noise"}),
    ("garbage_replies", {"mode": "exception", "code": 4}),
    ("garbage_replies", {"mode": "exception", "code": 11}),
    ("reset_storm", {"duration": 60}),
])
def test_comm_loss_and_restore_polling_carries_on(rig, action, params):
    sim = rig.sim("pump-1")
    ctx = rig.start()
    wait_until(lambda: rig.driver.health().devices.get("pump-1") == "ok", message="first poll")
    sim.act(action, params)
    lost = ctx.wait_event("comm_loss")
    assert lost.severity == "warning" and lost.data["failed_polls"] == 3
    if params.get("mode") == "exception":
        assert f"exception response {params['code']}" in lost.data["reason"]
    assert rig.driver.health().devices["pump-1"] == "comm_loss"
    assert rig.driver.alive
    sim.act("clear", {})
    back = ctx.wait_event("comm_loss_restore")
    assert back.data["outage_s"] > 0
    sim.act("set_alarm", {"alarm": "low_suction"})       # and it still sees the panel
    ctx.wait_event("low_suction")


def test_panel_reboot_mid_poll_recovers(rig):
    sim = rig.sim("pump-1")
    ctx = rig.start()
    wait_until(lambda: rig.driver.health().devices.get("pump-1") == "ok", message="first poll")
    sim.act("reboot", {"duration": 0.6, "busy_s": 0.4})
    ctx.wait_event("comm_loss")
    ctx.wait_event("comm_loss_restore")
    assert rig.driver.alive


def test_reconnects_after_the_server_is_gone_and_back(rig):
    sim = rig.sim("pump-1")
    ctx = rig.start()
    wait_until(lambda: rig.driver.health().devices.get("pump-1") == "ok", message="first poll")
    sim.stop()
    ctx.wait_event("comm_loss")
    sim._stop.clear()
    sim._thread = None
    sim.start()                                          # same port
    ctx.wait_event("comm_loss_restore", timeout=10)


def test_wrong_word_order_is_a_data_fault_not_a_reading(rig, tmp_path):
    panel_map = tmp_path / "panel.toml"
    panel_map.write_text('''
name = "panel"
[[point]]
name = "pump_running"
role = "running"
fc = 3
address = 0
type = "bit"
[[point]]
name = "discharge_pressure"
role = "reading"
fc = 4
address = 0
type = "uint32"
word_order = "ABCD"
scale = 0.001
unit = "bar"
min = 0
max = 40
''')
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(panel_map.read_text().replace('"ABCD"', '"CDAB"'))
    rig.sim("pump-1", map=str(panel_map))
    ctx = rig.start(overrides={"pump-1": {"map": str(wrong)}})
    ev = ctx.wait_event("data_fault")
    assert ev.data["point"] == "discharge_pressure" and "above the possible 40" in ev.data["reason"]
    wait_until(lambda: ctx.telemetry_seen, message="telemetry")
    assert all("discharge_pressure" not in v for _, v in ctx.telemetry_seen)
    assert rig.driver.health().devices["pump-1"] == "data_fault"


def test_write_without_allow_write_is_refused_and_never_sent(rig):
    sim = rig.sim("pump-1")
    ctx = rig.start(overrides={"pump-1": {"write": [{"address": 40, "allow_write": True, "note": "reset"},
                                                    {"address": 41, "allow_write": False}]}})
    wait_until(lambda: rig.driver.health().devices.get("pump-1") == "ok", message="first poll")
    write = rig.driver.commands()["fire_pump_write"]
    for address in (1, 41):                               # not named / named without allow_write
        with pytest.raises(CommandRefused, match="allow_write"):
            write({"device": "pump-1", "address": address, "value": 0})
    with pytest.raises(CommandRefused):
        write({"device": "pump-1", "address": "1", "value": 0})
    with pytest.raises(CommandRefused):
        write({"device": "nope", "address": 40, "value": 0})
    assert sim.writes == []
    assert write({"device": "pump-1", "address": 40, "value": 7}) == {
        "device": "pump-1", "address": 40, "value": 7, "written": True}
    assert sim.writes == [(6, 40, [7])]
    assert ctx.wait_event("register_written").data["address"] == 40


def test_status_command(rig):
    sim = rig.sim("pump-1")
    rig.start()
    sim.act("set_alarm", {"alarm": "overcurrent"})
    st = wait_until(lambda: (s := rig.driver.commands()["fire_pump_status"]({}))["pump-1"]["alarms"] and s,
                  message="status with alarm")
    assert st["pump-1"]["alarms"] == ["overcurrent"] and st["pump-1"]["mode"] == "auto"


def test_weekly_run_recorded_and_overdue_found_on_an_injected_clock(rig):
    clock = ManualClock(datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc))
    sim = rig.sim("pump-1")
    ctx = rig.start(clock=clock)
    wait_until(lambda: rig.driver.health().devices.get("pump-1") == "ok", message="first poll")
    sim.act("weekly_test", {"run_s": 1.0})
    started = ctx.wait_event("pump_started")
    assert started.data["cause"] == "weekly_test" and started.severity == "info"
    clock.advance(11 * 60)                               # the run lasts 11 minutes on the gateway's clock
    run = ctx.wait_event("test_run")
    assert run.data["kind"] == "weekly" and run.data["meets_minimum"] is True
    assert run.data["run_s"] >= 660 and run.data["start_pressure"] is not None
    assert run.data["discharge_pressure"] is not None and run.data["suction_pressure"] is not None
    history = rig.driver.commands()["fire_pump_tests"]({"device": "pump-1"})["tests"]
    assert len(history) == 1 and history[0]["kind"] == "weekly"
    clock.advance(7.5 * 86400)
    ev = ctx.wait_event("test_overdue")
    assert ev.data["test"] == "weekly"
    clock.advance(24 * 86400)
    ctx.wait_event(lambda e: e.type == "test_overdue" and e.data["test"] == "monthly")

"""End to end over Modbus RTU: panels on one simulated RS-485 bus (pty pairs, a real pymodbus serial server)."""

from __future__ import annotations

from gateway.configfile import Problems
from drivers.fire_pump.regmap import load_map
from tests.helpers import wait_until

DIESEL_ALARMS = [p.name for p in load_map("diesel", Problems()).by_role("alarm")]


def ok(rig, name):
    return lambda: rig.driver.health().devices.get(name) == "ok"


def test_two_panels_on_one_bus_each_report_their_own_alarms(rig):
    electric = rig.sim("elec-1", transport="rtu", unit=1, map="electric")
    diesel = rig.sim("diesel-1", transport="rtu", unit=2, map="diesel")
    ctx = rig.start()
    assert rig.config()["fire_pump"][0]["serial_port"].startswith("/dev/pts/")
    wait_until(ok(rig, "elec-1"), message="electric panel polled")
    wait_until(ok(rig, "diesel-1"), message="diesel panel polled")
    electric.act("phase_loss", {})
    ev = ctx.wait_event("phase_loss")
    assert ev.device == "elec-1"
    for alarm in DIESEL_ALARMS:
        diesel.act("set_alarm", {"alarm": alarm})
        ev = ctx.wait_event(lambda e, a=alarm: e.type == a and e.device == "diesel-1")
        diesel.act("clear_alarm", {"alarm": alarm})
        ctx.wait_event(lambda e, a=alarm: e.type == f"{a}_restore" and e.device == "diesel-1")
    electric.act("clear", {})
    ctx.wait_event(lambda e: e.type == "phase_loss_restore" and e.device == "elec-1")
    values = [v for d, v in ctx.telemetry_seen if d == "diesel-1"][-1]
    assert values["battery_1_voltage"] == 27.2 and values["mode"] == "auto"


def test_diesel_weekly_run_and_not_in_auto(rig):
    diesel = rig.sim("diesel-1", transport="rtu", unit=2, map="diesel")
    ctx = rig.start()
    wait_until(ok(rig, "diesel-1"), message="diesel panel polled")
    diesel.act("weekly_test", {"run_s": 0.5})
    started = ctx.wait_event("pump_started")
    assert started.data["cause"] == "weekly_test"
    run = ctx.wait_event("test_run")
    assert run.data["kind"] == "weekly" and run.data["pump_type"] == "diesel"
    assert run.data["min_run_s"] == 1800 and run.data["meets_minimum"] is False
    diesel.act("switch_to_manual", {})
    assert ctx.wait_event("not_in_auto").data["mode"] == "manual"


def test_dead_panel_beside_a_live_one_on_one_bus(rig):
    live = rig.sim("live", transport="rtu", unit=1, map="electric", poll_s=0.2, timeout_s=0.3)
    dead = rig.sim("dead", transport="rtu", unit=2, map="electric", poll_s=0.5, timeout_s=0.3)
    ctx = rig.start()
    wait_until(ok(rig, "live"), message="live panel polled")
    dead.act("panel_offline", {})
    ctx.wait_event(lambda e: e.type == "comm_loss" and e.device == "dead")
    # the live panel's own clock: its request times over a window while the dead one times out
    blocks = 2                                          # the electric map is read in two requests
    window_start = live.requests_of()[-1]
    wait_until(lambda: live.requests_of()[-1] - window_start >= 4.0, timeout=8, message="a 4 s window")
    times = live.requests_of(window_start)
    span = times[-1] - times[0]
    polls_per_s = (len(times) - 1) / blocks / span
    assert polls_per_s >= 0.9 * (1 / 0.2), f"live panel slowed to {polls_per_s:.2f} polls/s"
    assert dead.requests_of(window_start) == []            # it really was silent (answered nothing)
    # and an alarm on the live panel still arrives promptly
    live.act("set_alarm", {"alarm": "overvoltage"})
    ev = ctx.wait_event(lambda e: e.type == "overvoltage" and e.device == "live", timeout=2)
    assert ev.device == "live"
    assert not any(e.device == "live" and e.type == "comm_loss" for e in ctx.events())
    dead.act("panel_online", {})
    ctx.wait_event(lambda e: e.type == "comm_loss_restore" and e.device == "dead")


def test_crc_errors_and_exception_replies_are_comm_loss_then_restore(rig):
    panel = rig.sim("p1", transport="rtu", unit=3, map="electric")
    ctx = rig.start()
    wait_until(ok(rig, "p1"), message="first poll")
    panel.act("garbage_replies", {"mode": "crc"})
    lost = ctx.wait_event("comm_loss")
    assert "timeout" in lost.data["reason"]            # a frame with a bad CRC is no reply at all
    panel.act("clear", {})
    ctx.wait_event("comm_loss_restore")
    panel.act("garbage_replies", {"mode": "exception", "code": 6})
    lost = ctx.wait_event(lambda e: e.type == "comm_loss" and "exception response 6" in e.data["reason"])
    panel.act("garbage_replies", {"mode": "short"})
    panel.act("clear", {})
    ctx.wait_event(lambda e: e.type == "comm_loss_restore" and e.seq > lost.seq)


def test_panel_reboot_mid_poll_on_the_bus(rig):
    panel = rig.sim("p1", transport="rtu", unit=1, map="generic")
    ctx = rig.start()
    wait_until(ok(rig, "p1"), message="first poll")
    panel.act("reboot", {"duration": 0.5, "busy_s": 0.5})
    ctx.wait_event("comm_loss")
    ctx.wait_event("comm_loss_restore")
    panel.act("power_loss", {})
    ctx.wait_event("power_loss")


def test_missing_serial_port_is_comm_loss_and_the_driver_keeps_trying(make_ctx, tmp_path):
    import time

    from gateway.configfile import Problems
    from drivers.fire_pump import FirePumpDriver
    problems = Problems()
    cfg = FirePumpDriver.parse_config({"fire_pump": [{
        "name": "p1", "transport": "rtu", "serial_port": str(tmp_path / "ttyUSB9"), "map": "generic",
        "poll_s": 0.1, "timeout_s": 0.1, "retries": 0, "comm_loss_after": 2}]}, problems, tmp_path)
    assert not problems
    ctx = make_ctx("fire_pump", event_class="fire_pump")
    driver = FirePumpDriver("fire_pump", cfg, ctx)
    driver.start()
    try:
        ev = ctx.wait_event("comm_loss")
        assert "cannot connect" in ev.data["reason"]
        h = wait_until(lambda: (h := driver.health()).counters.get("polls_failed", 0) >= 4 and h,
                     message="more failed polls")
        assert h.state == "degraded" and h.devices["p1"] == "comm_loss"
    finally:
        t0 = time.monotonic()
        driver.stop(5.0)
        assert not driver.alive and time.monotonic() - t0 < 5.0

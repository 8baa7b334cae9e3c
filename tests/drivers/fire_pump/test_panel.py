"""Panel state machine: alarms and restores, pump runs, mode, comm loss, data faults, telemetry."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gateway.configfile import Problems
from drivers.fire_pump.compliance import Compliance, ComplianceSettings
from drivers.fire_pump.panel import PanelMonitor, PanelSettings
from drivers.fire_pump.regmap import load_map

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
ELECTRIC_ALARMS = [p.name for p in load_map("electric", Problems()).by_role("alarm")]


class Feed:
    """Feeds a monitor polls on a virtual clock."""

    def __init__(self, map_name="electric", comm_loss_after=3, compliance=None, tele=60.0):
        self.map = load_map(map_name, Problems())
        self.mon = PanelMonitor("pump-1", self.map, PanelSettings(comm_loss_after, tele), compliance)
        self.t = 0.0
        self.values = {"pump_running": False, "start_demand": False, "mode": "auto", "start_cause": "none",
                       "discharge_pressure": 7.0, "suction_pressure": 1.5, "voltage_l1": 380.0}
        self.values.update({a: False for a in ELECTRIC_ALARMS})

    def poll(self, dt=1.0, faults=None, **changes):
        self.t += dt
        self.values.update(changes)
        return self.mon.poll_ok(dict(self.values), dict(faults or {}), T0 + timedelta(seconds=self.t), self.t)

    def fail(self, dt=1.0, reason="timeout after 0.5 s"):
        self.t += dt
        return self.mon.poll_failed(reason, T0 + timedelta(seconds=self.t), self.t)


def types(events):
    return [e.type for e in events]


def test_quiet_panel_in_auto_reports_nothing():
    f = Feed()
    assert f.poll() == []
    assert f.poll() == []


@pytest.mark.parametrize("alarm", ELECTRIC_ALARMS)
def test_every_alarm_and_its_restore(alarm):
    f = Feed()
    f.poll()
    on = f.poll(**{alarm: True})
    assert types(on) == [alarm]
    assert on[0].severity in ("warning", "alarm", "critical")
    assert on[0].data["state"] == "active"
    assert f.poll(**{alarm: True}) == []          # reported once
    off = f.poll(dt=4.0, **{alarm: False})
    assert types(off) == [f"{alarm}_restore"]
    assert off[0].severity == "info" and off[0].data["active_s"] == 5.0   # first seen at t=2, gone at t=7


def test_alarm_active_at_startup_is_reported():
    f = Feed()
    f.values["phase_loss"] = True
    assert types(f.poll()) == ["phase_loss"]


def test_not_in_auto_and_restore():
    f = Feed()
    f.poll()
    ev = f.poll(mode="manual")
    assert types(ev) == ["not_in_auto"] and ev[0].severity == "alarm" and ev[0].data["mode"] == "manual"
    assert f.poll(mode="off") == []
    assert types(f.poll(mode="auto")) == ["not_in_auto_restore"]


def test_diesel_in_auto_bit():
    f = Feed("diesel")
    f.values = {"engine_running": False, "in_auto": True, "start_cause": "none"}
    f.poll()
    assert types(f.poll(in_auto=False)) == ["not_in_auto"]
    assert types(f.poll(in_auto=True)) == ["not_in_auto_restore"]


def test_pump_started_and_stopped_with_cause_start_pressure_and_duration():
    f = Feed()
    f.poll(discharge_pressure=5.6)
    f.poll(discharge_pressure=5.3, start_demand=True, start_cause="pressure")
    ev = f.poll(dt=2.0, discharge_pressure=6.0, start_demand=False, pump_running=True)
    assert types(ev) == ["pump_started"]
    assert ev[0].data == {"cause": "pressure", "mode": "auto", "start_pressure": 5.3,
                          "time_to_running_s": 2.0}
    assert ev[0].severity == "warning"
    f.poll(dt=30, discharge_pressure=9.5)
    ev = f.poll(dt=30, pump_running=False, start_cause="none")
    assert types(ev) == ["pump_stopped"]
    assert ev[0].data["run_s"] == 60.0 and ev[0].data["cause"] == "pressure"


def test_comm_loss_after_n_failed_polls_and_restore():
    f = Feed(comm_loss_after=3)
    f.poll()
    assert f.fail() == [] and f.fail() == []
    ev = f.fail(reason="exception response 4 (server device failure)")
    assert types(ev) == ["comm_loss"] and ev[0].data["failed_polls"] == 3
    assert "exception response 4" in ev[0].data["reason"]
    assert f.fail() == []
    ev = f.poll(dt=5)
    assert types(ev) == ["comm_loss_restore"] and ev[0].data["outage_s"] == 8.0   # first failure t=2, back t=10


def test_alarm_that_cleared_during_an_outage_is_restored_after_it():
    f = Feed()
    f.poll(power_loss=True)
    for _ in range(4):
        f.fail()
    assert types(f.poll(power_loss=False)) == ["comm_loss_restore", "power_loss_restore"]


def test_data_fault_is_reported_once_and_value_is_not_passed_on():
    f = Feed(tele=1000)
    f.poll()
    assert f.mon.telemetry_due(f.t)["discharge_pressure"] == 7.0
    faults = {"discharge_pressure": "6000 bar is above the possible 40"}
    vals = dict(f.values)
    del vals["discharge_pressure"]
    f.values = vals
    ev = f.poll(faults=faults)
    assert types(ev) == ["data_fault"] and ev[0].data["point"] == "discharge_pressure"
    assert f.poll(faults=faults) == []
    assert "discharge_pressure" not in f.mon.values
    ev = f.poll(discharge_pressure=7.1)
    assert types(ev) == ["data_fault_restore"]


def test_faulty_alarm_point_keeps_its_last_state():
    f = Feed()
    f.poll(phase_loss=True)
    vals = dict(f.values)
    del vals["phase_loss"]
    f.values = vals
    ev = f.poll(faults={"phase_loss": "short reply: 1 of 5 values"})
    assert types(ev) == ["data_fault"]
    assert "phase_loss" in f.mon.alarms


def test_telemetry_on_period_and_on_change_beyond_deadband():
    f = Feed(tele=60)
    f.poll()
    first = f.mon.telemetry_due(f.t)
    assert first["discharge_pressure"] == 7.0 and first["running"] is False and first["mode"] == "auto"
    f.poll(discharge_pressure=7.1)                      # within the 0.2 bar deadband
    assert f.mon.telemetry_due(f.t) is None
    f.poll(discharge_pressure=7.5)                      # beyond it
    assert f.mon.telemetry_due(f.t)["discharge_pressure"] == 7.5
    f.poll(dt=61)
    assert f.mon.telemetry_due(f.t) is not None          # the period
    f.poll(pump_running=True)
    assert f.mon.telemetry_due(f.t)["running"] is True   # a state change


def test_weekly_run_goes_to_compliance(tmp_path):
    comp = Compliance("pump-1", ComplianceSettings("electric"), tmp_path, T0)
    f = Feed(compliance=comp)
    f.poll()
    f.poll(start_demand=True, start_cause="weekly_test", discharge_pressure=7.0)
    ev = f.poll(pump_running=True, start_demand=False)
    assert ev[0].severity == "info"
    for _ in range(10):
        f.poll(dt=60, discharge_pressure=9.5, suction_pressure=1.2)
    ev = f.poll(dt=1, pump_running=False, start_cause="none")
    assert types(ev) == ["pump_stopped", "test_run"]
    rec = ev[1].data
    assert rec["kind"] == "weekly" and rec["meets_minimum"] is True and rec["run_s"] == 601.0
    assert rec["start_pressure"] == 7.0 and rec["time_to_running_s"] == 1.0
    assert rec["discharge_pressure"] == 9.5 and rec["suction_pressure"] == 1.2


def test_what_one_poll_finds_is_emissions_of_this_panel_in_order(tmp_path):
    """The monitor's and compliance's events are `Emission`s the driver commits as one `emit_many`."""
    from gateway.driver import Emission

    comp = Compliance("pump-1", ComplianceSettings("electric", min_run_s=1.0), tmp_path, T0)
    f = Feed(compliance=comp)
    f.poll()
    f.poll(pump_running=True, start_cause="manual", mode="manual")
    ev = f.poll(dt=5, pump_running=False, mode="auto", phase_loss=True)
    assert types(ev) == ["not_in_auto_restore", "phase_loss", "pump_stopped", "test_run"]
    assert all(isinstance(e, Emission) and e.device == "pump-1" and e.ts == T0 + timedelta(seconds=7)
               for e in ev)

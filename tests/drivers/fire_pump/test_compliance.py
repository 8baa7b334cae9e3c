"""Test-run compliance over simulated weeks, on an injected clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gateway.clock import ManualClock
from drivers.fire_pump.compliance import (Compliance, ComplianceSettings, RunInfo, classify,
                                          history_path, read_history)

DAY = 86400.0
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)   # a Monday


def run(clock: ManualClock, comp: Compliance, cause="weekly_test", mode="auto", minutes=10.5):
    started = clock.now()
    clock.advance(minutes * 60)
    return comp.run_finished(RunInfo(started, cause, mode, 6.8, 4.0, 1.2, 9.4, minutes * 60), clock.now())


def overdue_over(clock: ManualClock, comp: Compliance, days: float, step_h: float = 6) -> list:
    out = []
    for _ in range(int(days * 24 / step_h)):
        clock.advance(step_h * 3600)
        out += comp.check(clock.now())
    return out


@pytest.mark.parametrize("cause, mode, kind", [
    ("weekly_test", "auto", "weekly"), ("test", "auto", "weekly"), ("manual", "manual", "monthly"),
    ("none", "manual", "monthly"), ("pressure", "auto", None), ("deluge", "auto", None),
    ("remote", "auto", None)])
def test_classify(cause, mode, kind):
    assert classify(cause, mode) == kind


def test_weekly_runs_for_three_months_keep_weekly_compliance_but_not_monthly(tmp_path):
    clock = ManualClock(T0)
    comp = Compliance("pump-1", ComplianceSettings("electric"), tmp_path, clock.now())
    found = []
    for week in range(12):
        found += overdue_over(clock, comp, 6.9)
        ev = run(clock, comp)
        assert ev[0].type == "test_run" and ev[0].data["meets_minimum"]
    assert [e.data["test"] for e in found if e.type == "test_overdue"] == ["monthly", "monthly"]
    assert len(list(read_history(history_path(tmp_path, "pump-1")))) == 12


def test_missed_week_is_overdue_once_per_period_and_restored_by_a_run(tmp_path):
    clock = ManualClock(T0)
    comp = Compliance("pump-1", ComplianceSettings("electric", monthly_period_s=1000 * DAY), tmp_path, clock.now())
    run(clock, comp)
    ev = overdue_over(clock, comp, 6.5)
    assert ev == []
    ev = overdue_over(clock, comp, 1)
    assert [(e.type, e.data["test"]) for e in ev] == [("test_overdue", "weekly")]
    assert ev[0].severity == "warning" and ev[0].data["last_run"] is not None
    assert overdue_over(clock, comp, 6) == []            # not repeated within the period
    ev = overdue_over(clock, comp, 1.5)
    assert [e.type for e in ev] == ["test_overdue"]      # a second missed week
    ev = run(clock, comp)
    assert [e.type for e in ev] == ["test_run", "test_overdue_restore"]


def test_short_run_does_not_qualify(tmp_path):
    clock = ManualClock(T0)
    comp = Compliance("pump-1", ComplianceSettings("electric"), tmp_path, clock.now())
    ev = run(clock, comp, minutes=4)
    assert ev[0].severity == "warning" and ev[0].data["meets_minimum"] is False
    assert ev[0].data["min_run_s"] == 600
    assert [e.data["test"] for e in overdue_over(clock, comp, 7.5)] == ["weekly"]


def test_diesel_needs_thirty_minutes_and_minimum_is_configurable(tmp_path):
    clock = ManualClock(T0)
    diesel = Compliance("d-1", ComplianceSettings("diesel"), tmp_path, clock.now())
    assert run(clock, diesel, minutes=20)[0].data["meets_minimum"] is False
    assert run(clock, diesel, minutes=31)[0].data["meets_minimum"] is True
    custom = Compliance("e-1", ComplianceSettings("electric", min_run_s=300), tmp_path, clock.now())
    assert run(clock, custom, minutes=6)[0].data["meets_minimum"] is True


def test_monthly_manual_run_counts_for_the_week_too(tmp_path):
    clock = ManualClock(T0)
    comp = Compliance("pump-1", ComplianceSettings("electric"), tmp_path, clock.now())
    overdue_over(clock, comp, 3)
    ev = run(clock, comp, cause="manual", mode="manual")
    assert ev[0].data["kind"] == "monthly"
    assert overdue_over(clock, comp, 6.5) == []


def test_demand_runs_are_not_tests(tmp_path):
    clock = ManualClock(T0)
    comp = Compliance("pump-1", ComplianceSettings("electric"), tmp_path, clock.now())
    assert run(clock, comp, cause="pressure") == []
    assert list(read_history(history_path(tmp_path, "pump-1"))) == []


def test_overdue_state_survives_a_restart(tmp_path):
    clock = ManualClock(T0)
    comp = Compliance("pump-1", ComplianceSettings("electric"), tmp_path, clock.now())
    run(clock, comp)
    clock.advance(8 * DAY)
    assert [e.data["test"] for e in comp.check(clock.now())] == ["weekly"]
    again = Compliance("pump-1", ComplianceSettings("electric"), tmp_path, clock.now())
    assert again.check(clock.now()) == []                # already reported before the restart
    assert again.summary()["last"]["weekly"] == comp.summary()["last"]["weekly"]
    clock.advance(32 * DAY)
    assert {e.data["test"] for e in again.check(clock.now())} == {"weekly", "monthly"}


def test_history_skips_damaged_lines(tmp_path):
    clock = ManualClock(T0)
    comp = Compliance("pump-1", ComplianceSettings("electric"), tmp_path, clock.now())
    run(clock, comp)
    with history_path(tmp_path, "pump-1").open("a") as fh:
        fh.write("{not json\n")
    run(clock, comp)
    assert len(comp.history()) == 2

"""`anfang pump-report` over histories the compliance module wrote."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from gateway.cli import main
from gateway.clock import ManualClock
from drivers.fire_pump.compliance import Compliance, ComplianceSettings, RunInfo


def _history(state_dir):
    folder = state_dir / "drivers" / "fire_pump"
    clock = ManualClock(datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc))
    comp = Compliance("pump-1", ComplianceSettings("electric"), folder, clock.now())
    comp.run_finished(RunInfo(clock.now(), "weekly_test", "auto", 6.8, 3.5, 1.2, 9.4, 640), clock.now())
    clock.advance(86400 * 7)
    comp.run_finished(RunInfo(clock.now(), "manual", "manual", 6.9, 4.0, 1.1, 9.3, 300), clock.now())
    other = Compliance("diesel-1", ComplianceSettings("diesel"), folder, clock.now())
    other.run_finished(RunInfo(clock.now(), "weekly_test", "auto", 6.7, 9.0, 1.0, 9.0, 1900), clock.now())


def test_pump_report_prints_history(tmp_path, capsys):
    _history(tmp_path)
    assert main(["pump-report", "--state-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert "pump-1" in lines[0] and "weekly" in lines[0] and "ok" in lines[0] and "6.8 bar" in lines[0]
    assert "diesel-1" in lines[1] and "monthly" in lines[2] and "SHORT (< 10 min)" in lines[2]
    assert main(["pump-report", "--state-dir", str(tmp_path), "--device", "diesel-1", "--json"]) == 0
    recs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["device"], r["meets_minimum"]) for r in recs] == [("diesel-1", True)]


def test_pump_report_bad_folder_is_one_line_exit_2(tmp_path, capsys):
    assert main(["pump-report", "--state-dir", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such state folder" in err


def test_pump_report_empty(tmp_path, capsys):
    assert main(["pump-report", "--state-dir", str(tmp_path)]) == 0
    assert "no test runs" in capsys.readouterr().out

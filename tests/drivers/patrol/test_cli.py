"""`anfang patrol-verify` and `anfang patrol-report` on a record log the engine wrote."""

from __future__ import annotations

import json
from datetime import timezone
from pathlib import Path

from gateway.cli import main
from gateway.clock import ManualClock

from drivers.patrol.engine import PatrolEngine
from drivers.patrol.records import FILE_NAME, RecordLog

from .helpers import LI, TZ, ZHANG, load, local, write_plan

READER = {"gate": "r-gate", "carpark": "r-carpark", "garden": "r-garden", "back": "r-back"}


def record_a_day(tmp_path: Path, state_dir: Path) -> Path:
    """23 Nov: 02:00 and 14:00 not started, 08:00 complete (one late), 20:00 skips the garden, alone."""
    reg, plan = load(tmp_path)
    clock = ManualClock(local(2026, 11, 23, 0, 0).astimezone(timezone.utc))
    engine = PatrolEngine(reg, plan, TZ)
    path = state_dir / "drivers" / "patrol" / FILE_NAME
    log = RecordLog(path)

    def put(outs):
        for o in outs:
            log.append(o.type, o.device, o.ts, o.data)

    def until(when):
        while clock.now() < when.astimezone(timezone.utc):
            clock.advance(10)
            put(engine.tick(clock.now(), clock.monotonic()))

    def scan(cp, card):
        put(engine.scan(READER[cp], card, clock.now(), clock.monotonic()))

    put(engine.tick(clock.now(), clock.monotonic()))
    for cp, at in (("gate", (8, 2)), ("carpark", (8, 8)), ("garden", (8, 21)), ("back", (8, 25))):
        until(local(2026, 11, 23, *at))
        scan(cp, ZHANG)
    for cp, at in (("gate", (20, 1)), ("carpark", (20, 5)), ("back", (20, 12))):
        until(local(2026, 11, 23, *at))
        scan(cp, LI)
    until(local(2026, 11, 24, 0, 10))
    log.close()
    return path


def test_report_prints_the_days_compliance_per_route(tmp_path, capsys):
    state = tmp_path / "state"
    record_a_day(tmp_path, state)
    assert main(["patrol-report", "--state-dir", str(state), "--date", "2026-11-23", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    g = data["routes"]["grounds"]
    assert (g["completed"], g["incomplete"], g["not_started"]) == (1, 1, 2)
    assert g["missed"] == 1 and g["missed_checkpoints"] == ["garden (20:00)"]
    assert g["late"] == 1 and g["late_minutes"] == 3.0
    assert g["out_of_order"] == 1 and g["single_guard"] == 3
    assert main(["patrol-report", "--state-dir", str(state), "--date", "2026-11-23"]) == 0
    text = capsys.readouterr().out
    assert "Patrol compliance 2026-11-23 (Asia/Shanghai)" in text
    assert "grounds: missed garden (20:00)" in text


def test_report_with_the_gateway_config_counts_planned_rounds(tmp_path, capsys):
    state = tmp_path / "state"
    record_a_day(tmp_path, state)
    reg, plan = write_plan(tmp_path)
    regtext = reg.read_text()
    for r in ("r-carpark", "r-garden", "r-back"):
        regtext = regtext.replace(f'reader = "{r}"', f'tag = "TAG-{r}"')
    reg.write_text(regtext)
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f"""
[gateway]
site = "s1"
id = "gw1"
state_dir = "{state}"
timezone = "Asia/Shanghai"
[patrol_plan]
registry = "registry.toml"
plan = "plan.toml"
[[patrol]]
name = "r-gate"
type = "em4100"
serial_port = "/dev/serial/by-id/usb-rdm6300-if00-port0"
""")
    assert main(["patrol-report", "--config", str(cfg), "--date", "2026-11-23", "--json"]) == 0
    g = json.loads(capsys.readouterr().out)["routes"]["grounds"]
    assert g["planned"] == 4 and g["unaccounted"] == 0
    assert main(["patrol-verify", "--config", str(cfg)]) == 0
    assert "ok:" in capsys.readouterr().out


def test_verify_names_the_first_broken_record(tmp_path, capsys):
    state = tmp_path / "state"
    path = record_a_day(tmp_path, state)
    assert main(["patrol-verify", "--state-dir", str(state)]) == 0
    lines = path.read_text().splitlines()
    rec = json.loads(lines[5])
    rec["ts"] = rec["ts"].replace("T0", "T1", 1)          # someone moves a check-in's time
    lines[5] = json.dumps(rec)
    path.write_text("\n".join(lines) + "\n")
    assert main(["patrol-verify", "--state-dir", str(state)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("broken at line 6 (record n=6): hash does not match the record's content (edited)")
    assert len(err.splitlines()) == 1


def test_bad_usage_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["patrol-report", "--state-dir", str(tmp_path), "--date", "23/11/2026"]) == 2
    assert main(["patrol-verify", "--state-dir", str(tmp_path)]) == 2
    assert main(["patrol-verify"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("anfang: ") for line in err)
    assert "no patrol record log" in err[1]

"""What the patrol engine finds in one step is one record-log write and one event commit.

And the keys renamed to one spelling per idea are refused with a line naming the new key.
"""

from __future__ import annotations

from datetime import timezone
from pathlib import Path

import pytest

from gateway.clock import ManualClock
from gateway.configfile import Problems
from gateway.driver import Emission

from drivers.patrol import PatrolDriver
from drivers.patrol.em4100 import em4100_frame
from drivers.patrol.engine import patrol_event
from drivers.patrol.records import verify
from sim.patrol import PtyDevice

from .helpers import PLAN, REGISTRY, local, reader_up, write_plan


def _driver(tmp_path: Path, make_ctx, link: Path, clock: ManualClock) -> PatrolDriver:
    registry = REGISTRY
    for name in ("r-carpark", "r-garden", "r-back"):
        registry = registry.replace(f'reader = "{name}"', f'tag = "TAG-{name}"')
    reg, plan = write_plan(tmp_path, registry=registry)
    problems = Problems()
    cfg = PatrolDriver.parse_config({"patrol": [{"name": "r-gate", "type": "em4100", "serial_port": str(link)}],
                                     "patrol_plan": {"registry": str(reg), "plan": str(plan)}},
                                    problems, tmp_path)
    assert not problems, [str(p) for p in problems.items]
    return PatrolDriver("patrol", cfg, make_ctx("patrol", event_class="patrol", clock=clock))


def test_a_round_starting_check_in_is_one_commit_with_its_round_started(tmp_path, make_ctx) -> None:
    dev = PtyDevice(tmp_path / "usb-rdm6300-if00-port0")
    dev.plug()
    drv = _driver(tmp_path, make_ctx, dev.link, ManualClock(local(2026, 11, 23, 8, 0).astimezone(timezone.utc)))
    drv.start()
    try:
        reader_up(drv, "r-gate")
        commits = drv.ctx.store.commits
        dev.write(em4100_frame(0x01, 0x00D507D0))          # the first checkpoint of the 08:00 round
        started = drv.ctx.wait_event("round_started")
        checkin = drv.ctx.wait_event("checkin")
        assert drv.ctx.store.commits == commits + 1, "one engine step, one transaction"
        assert started.seq == checkin.seq + 1 and started.severity == "info"
    finally:
        drv.stop()
        dev.unplug()
    result = verify(drv.records_path)
    assert result.ok and result.records == len(drv.ctx.events())


@pytest.mark.parametrize("kind, severity", [("reader_fault", "warning"), ("reader_restore", "info"),
                                            ("checkpoint_missed", "alarm")])
def test_every_patrol_event_is_an_emission_with_its_severity(kind: str, severity: str) -> None:
    ev = patrol_event(kind, "r-gate", local(2026, 11, 23, 8, 0), {"reader": "r-gate"})
    assert isinstance(ev, Emission) and ev.severity == severity and ev.device == "r-gate"


def test_old_key_spellings_are_refused_naming_the_new_key(tmp_path) -> None:
    reg, plan = write_plan(tmp_path, plan=PLAN.replace("pair_s = 60", "pair_seconds = 60"))
    problems = Problems()
    PatrolDriver.parse_config({"patrol": [], "patrol_plan": {
        "registry": str(reg), "plan": str(plan), "dedup_seconds": 2.0, "clock_step_tolerance_seconds": 5.0}},
        problems, tmp_path)
    text = [str(p) for p in problems.items]
    assert "patrol_plan.dedup_seconds: renamed: use 'dedup_s' instead" in text
    assert "patrol_plan.clock_step_tolerance_seconds: renamed: use 'clock_step_tolerance_s' instead" in text
    assert "patrol_plan.plan(plan.toml).schedule[1].pair_seconds: renamed: use 'pair_s' instead" in text


def test_a_reader_port_is_a_serial_port_as_for_a_fire_pump(tmp_path) -> None:
    reg, plan = write_plan(tmp_path)
    problems = Problems()
    PatrolDriver.parse_config({"patrol": [{"name": "r-gate", "type": "em4100", "port": "/dev/ttyUSB0"}],
                               "patrol_plan": {"registry": str(reg), "plan": str(plan)}}, problems, tmp_path)
    text = [str(p) for p in problems.items]
    assert "patrol[0].port: renamed: use 'serial_port' instead" in text
    assert "patrol[0].serial_port: is required" in text

"""PatrolDriver end to end: real ptys carrying real frames, mock GPIO pins, a real event store."""

from __future__ import annotations

import os
import threading
from datetime import timezone
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from gateway.clock import ManualClock
from gateway.configfile import Problems

from drivers.patrol import PatrolDriver
from drivers.patrol.em4100 import em4100_frame
from drivers.patrol.records import verify
from drivers.patrol.wiegand import encode26
from sim.base import SimWorld
from sim.patrol import Pn532Sim, PtyDevice, WiegandSim

from tests.helpers import wait_until

from .helpers import LI, REGISTRY, WANG, ZHANG, local, reader_up, write_plan

READERS_REG = REGISTRY + """
[[checkpoint]]
id = "tower"
place = "Tower door"
reader = "r-tower"
"""


def make_driver(tmp_path: Path, make_ctx, readers: list[dict], clock=None, resources=None,
                registry: str = READERS_REG) -> PatrolDriver:
    # checkpoints whose reader this test does not run get a tag instead (a reader in the
    # registry that the config lacks is a config error)
    for name in ("r-gate", "r-carpark", "r-garden", "r-back", "r-tower"):
        if name not in {r["name"] for r in readers}:
            registry = registry.replace(f'reader = "{name}"', f'tag = "TAG-{name}"')
    reg, plan = write_plan(tmp_path, registry=registry)
    raw = {"patrol": readers, "patrol_plan": {"registry": str(reg), "plan": str(plan)}}
    problems = Problems()
    cfg = PatrolDriver.parse_config(raw, problems, tmp_path)
    assert not problems, [str(p) for p in problems.items]
    ctx = make_ctx("patrol", event_class="patrol", clock=clock, resources=resources or {})
    return PatrolDriver("patrol", cfg, ctx)


@pytest.fixture
def pty_device(tmp_path):
    dev = PtyDevice(tmp_path / "usb-rdm6300-if00-port0")
    dev.plug()
    yield dev
    dev.unplug()


def test_em4100_reads_on_a_pty_are_one_checkin_each(tmp_path, make_ctx, pty_device):
    drv = make_driver(tmp_path, make_ctx, [{"name": "r-gate", "type": "em4100", "serial_port": str(pty_device.link)}])
    drv.start()
    try:
        reader_up(drv, "r-gate")
        # the card held for a while: the frame repeats, with garbage and a corrupt frame mixed in
        frame = em4100_frame(0x01, 0x00D507D0)
        for i in range(6):
            pty_device.write(b"\xff\x13" + frame + (frame[:9] + b"\x02" if i == 2 else b""))
        ev = drv.ctx.wait_event("checkin")
        assert ev.device == "r-gate" and ev.cls == "patrol"
        assert ev.data == {"reader": "r-gate", "card": ZHANG, "guard": "Zhang Wei",
                           "checkpoint": "gate", "place": "Main gate"}
        pty_device.write(em4100_frame(0x0A, 0x0B0C0D0E))
        unknown = drv.ctx.wait_event("unknown_card")
        assert unknown.data["card"] == "0A0B0C0D0E" and unknown.severity == "warning"
        assert len(drv.ctx.events("checkin")) == 1
        assert drv.health().counters["r-gate.bad_frames"] >= 1
        assert drv.health().devices["r-gate"] == "ok"
    finally:
        drv.stop()
    # every event is in the hash-chained record log too
    result = verify(drv.records_path)
    assert result.ok and result.records == len(drv.ctx.events())


def test_unplugged_reader_is_a_fault_and_comes_back(tmp_path, make_ctx, pty_device):
    drv = make_driver(tmp_path, make_ctx, [{"name": "r-gate", "type": "em4100", "serial_port": str(pty_device.link)}])
    drv.start()
    try:
        reader_up(drv, "r-gate")
        pty_device.write(em4100_frame(0x01, 0x00D507D0))
        drv.ctx.wait_event("checkin")
        pty_device.unplug()                      # the USB adapter is pulled out
        fault = drv.ctx.wait_event("reader_fault")
        assert fault.device == "r-gate" and fault.data["port"] == str(pty_device.link)
        wait_until(lambda: drv.health().state == "degraded", message="driver degraded")
        assert "r-gate" in drv.health().detail
        pty_device.plug()                        # back, on a new /dev/pts/N behind the same link
        restore = drv.ctx.wait_event("reader_restore", timeout=10)
        assert restore.data["down_seconds"] > 0
        assert len(drv.ctx.events("reader_fault")) == 1      # one fault, not one per retry
        reader_up(drv, "r-gate")
        pty_device.write(em4100_frame(0x01, 0x00D507D1))
        ev = drv.ctx.wait_event(lambda e: e.type == "checkin" and e.data["card"] == LI)
        assert ev.data["guard"] == "Li Na"
    finally:
        drv.stop()


def test_reader_missing_at_start_is_reported_and_others_keep_working(tmp_path, make_ctx, pty_device):
    drv = make_driver(tmp_path, make_ctx, [
        {"name": "r-tower", "type": "em4100", "serial_port": str(tmp_path / "not-plugged-in")},
        {"name": "r-gate", "type": "em4100", "serial_port": str(pty_device.link)}])
    drv.start()
    try:
        fault = drv.ctx.wait_event("reader_fault")
        assert fault.device == "r-tower"
        reader_up(drv, "r-gate")
        pty_device.write(em4100_frame(0x01, 0x00D507D0))
        assert drv.ctx.wait_event("checkin").device == "r-gate"
    finally:
        drv.stop()


def test_wiegand_on_mock_pins(tmp_path, make_ctx):
    factory = MockFactory()
    try:
        drv = make_driver(tmp_path, make_ctx, [{"name": "r-carpark", "type": "wiegand", "d0": 5, "d1": 6}],
                          resources={"gpio_pin_factory": factory})
        drv.start()
        try:
            sim = WiegandSim(factory, 5, 6, SimWorld(tmp_path), corrupt=0.0)
            bad = encode26(123, 4567)
            bad[3] ^= 1
            sim.send_bits(bad)                  # parity error: rejected and counted
            sim.send_bits(encode26(123, 4567)[:-2])   # 24 bits: wrong length
            sim.send_bits(encode26(123, 4567))
            ev = drv.ctx.wait_event("checkin")
            assert ev.data["card"] == WANG and ev.data["guard"] == "Wang Fang"
            assert ev.data["checkpoint"] == "carpark"
            counters = drv.health().counters
            assert counters["r-carpark.bad_parity"] == 1 and counters["r-carpark.bad_length"] == 1
            assert len(drv.ctx.events("checkin")) == 1
        finally:
            drv.stop()
    finally:
        factory.close()


def test_pn532_polling_on_a_pty(tmp_path, make_ctx, pty_device):
    uid = bytes.fromhex("04A1B2C3D4E580")
    reg = READERS_REG.replace(f'cards = ["{ZHANG}"]', f'cards = ["{ZHANG}", "{uid.hex().upper()}"]')
    halt = threading.Event()
    sim = Pn532Sim(pty_device, SimWorld(tmp_path), corrupt=0.0, halt=halt)
    sim.start()
    drv = make_driver(tmp_path, make_ctx, [{"name": "r-tower", "type": "pn532", "serial_port": str(pty_device.link),
                                            "poll_ms": 50}], registry=reg)
    drv.start()
    try:
        sim.present(uid, seconds=1.0)
        ev = drv.ctx.wait_event("checkin")
        assert ev.data["card"] == "04A1B2C3D4E580" and ev.data["guard"] == "Zhang Wei"
        assert ev.data["checkpoint"] == "tower"
        assert sim.commands >= 3                 # SAMConfiguration, RFConfiguration, polls
        assert len(drv.ctx.events("checkin")) == 1
        halt.set()                               # the PN532 stops answering
        fault = drv.ctx.wait_event("reader_fault", timeout=10)
        assert "does not answer" in fault.data["reason"]
    finally:
        halt.set()
        drv.stop()


def test_daily_report_once_a_day(tmp_path, make_ctx, pty_device):
    clock = ManualClock(local(2026, 11, 23, 8, 0).astimezone(timezone.utc))
    drv = make_driver(tmp_path, make_ctx, [{"name": "r-gate", "type": "em4100", "serial_port": str(pty_device.link)}],
                      clock=clock)
    drv.start()
    try:
        reader_up(drv, "r-gate")
        pty_device.write(em4100_frame(0x01, 0x00D507D0))
        drv.ctx.wait_event("round_started")
        clock.advance(16 * 60)                   # the car park never comes
        missed = drv.ctx.wait_event("checkpoint_missed")
        assert missed.data["checkpoint"] == "carpark" and missed.severity == "alarm"
        clock.advance(16 * 3600 + 6 * 60)        # 00:06 the next day
        report = drv.ctx.wait_event("daily_report")
        assert report.data["date"] == "2026-11-23"
        grounds = report.data["routes"]["grounds"]
        assert grounds["planned"] == 4 and grounds["incomplete"] == 1 and grounds["missed"] == 3
        # 14:00 and 20:00 not started; 02:00 was before the gateway started watching
        assert grounds["not_started"] == 2 and grounds["unaccounted"] == 1
        assert len(report.data["chain_head"]) == 64
        clock.advance(150 * 60)                  # 02:36: the engine ticks on past the report time
        drv.ctx.wait_event(lambda e: e.type == "round_not_started"
                           and e.data["planned_start"].startswith("2026-11-24T02:00"))
    finally:
        drv.stop()
    assert len(drv.ctx.events("daily_report")) == 1


def test_config_problems_name_their_keys(tmp_path):
    reg, plan = write_plan(tmp_path)
    raw = {"patrol": [{"name": "r-gate", "type": "rfid", "serial_port": "/dev/ttyUSB0"},
                      {"name": "r-gate", "type": "wiegand", "d0": 5, "d1": 5, "debounce": 1}],
           "patrol_plan": {"registry": str(reg), "plan": "missing.toml", "retention_days": 0}}
    problems = Problems()
    PatrolDriver.parse_config(raw, problems, tmp_path)
    text = "\n".join(str(p) for p in problems.items)
    assert "patrol[0].type: must be one of" in text
    assert "patrol[1].name: reader 'r-gate' is defined twice" in text
    assert "patrol[1].d1: must be another pin than d0" in text
    assert "patrol[1].debounce: unknown key" in text
    assert "patrol_plan.plan: file not found" in text
    assert "patrol_plan.retention_days: must be at least 1" in text


def test_example_files_are_valid(tmp_path):
    """The registry, plan and config a technician copies are valid as shipped."""
    import tomllib

    root = Path(__file__).resolve().parents[3]
    raw = tomllib.loads((root / "examples/patrol.toml").read_text())
    problems = Problems()
    cfg = PatrolDriver.parse_config(raw, problems, root / "examples")
    assert not problems, [str(p) for p in problems.items]
    assert [r.type for r in cfg.readers] == ["em4100", "wiegand", "pn532", "em4100"]
    assert sum(len(s.starts) for s in cfg.plan.schedules if s.route == "grounds") == 7
    assert cfg.registry.checkpoint_by_tag["0200AABBCC"] == "pump-room"


def test_plan_problems_name_file_and_key(tmp_path):
    from .helpers import PLAN
    bad = PLAN.replace('checkpoints = ["gate", "carpark", "garden", "back"]',
                       'checkpoints = ["gate", "carpark", "pond", "back"]').replace('"02:00"', '"26:00"')
    reg, plan = write_plan(tmp_path, plan=bad)
    problems = Problems()
    PatrolDriver.parse_config({"patrol": [], "patrol_plan": {"registry": str(reg), "plan": str(plan)}},
                              problems, tmp_path)
    text = [str(p) for p in problems.items]
    assert "patrol_plan.plan(plan.toml).route[0].checkpoints[2]: unknown checkpoint 'pond'" in text
    assert any(t.startswith("patrol_plan.plan(plan.toml).schedule[1].starts[1]: expected a time of day")
               for t in text)


def test_a_restarted_driver_carries_on_the_round_in_progress(tmp_path, make_ctx, pty_device):
    clock = ManualClock(local(2026, 11, 23, 8, 0).astimezone(timezone.utc))
    readers = [{"name": "r-gate", "type": "em4100", "serial_port": str(pty_device.link)}]
    first = make_driver(tmp_path, make_ctx, readers, clock=clock)
    first.start()
    try:
        reader_up(first, "r-gate")
        pty_device.write(em4100_frame(0x01, 0x00D507D0))
        first.ctx.wait_event("round_started")
    finally:
        first.stop()                              # the supervisor restarts the driver
    clock.advance(60)
    second = PatrolDriver("patrol", first.config, first.ctx)
    second.start()
    try:
        assert second.health().counters["replayed_checkins"] == 1
        assert len(second.engine.rounds) == 1     # the 08:00 round is still in progress
        clock.advance(50 * 60)                    # past the start window and every checkpoint window
        second.ctx.wait_event("checkpoint_missed")
        wait_until(lambda: not second.engine.rounds, message="round finished")
    finally:
        second.stop()
    assert first.ctx.events("round_not_started") == []
    assert len(first.ctx.events("round_started")) == 1

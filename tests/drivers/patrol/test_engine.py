"""The compliance engine across a whole day and night, on a ManualClock."""

from __future__ import annotations

from datetime import timezone
from pathlib import Path

import pytest

from gateway.clock import ManualClock

from drivers.patrol.engine import PatrolEngine
from gateway.driver import Emission
from .helpers import LI, TZ, UNKNOWN, WANG, ZHANG, load, local

READER = {"gate": "r-gate", "carpark": "r-carpark", "garden": "r-garden", "back": "r-back"}


class Site:
    """An engine on a manual clock, ticked every few seconds as the driver does."""

    def __init__(self, tmp: Path, start) -> None:
        reg, plan = load(tmp)
        self.clock = ManualClock(start.astimezone(timezone.utc))
        self.engine = PatrolEngine(reg, plan, TZ)
        self.out: list[Emission] = []
        self.out += self.engine.tick(self.clock.now(), self.clock.monotonic())

    def wait(self, minutes: float, step_s: float = 5.0) -> list[Emission]:
        got: list[Emission] = []
        left = minutes * 60
        while left > 0:
            dt = min(step_s, left)
            self.clock.advance(dt)
            left -= dt
            got += self.engine.tick(self.clock.now(), self.clock.monotonic())
        self.out += got
        return got

    def until(self, when) -> list[Emission]:
        return self.wait((when - self.clock.now()).total_seconds() / 60)

    def scan(self, cp: str, card: str) -> list[Emission]:
        got = self.engine.scan(READER[cp], card, self.clock.now(), self.clock.monotonic())
        self.out += got
        return got

    def walk(self, card: str, cps=("gate", "carpark", "garden", "back"), minutes: float = 5,
             pair: str | None = None) -> None:
        for i, cp in enumerate(cps):
            if i:
                self.wait(minutes)
            self.scan(cp, card)
            if pair:
                self.wait(0.3)
                self.scan(cp, pair)

    def types(self, outs=None) -> list[str]:
        return [o.type for o in (self.out if outs is None else outs)]


def test_known_good_day_round_starts_checks_in_and_completes(tmp_path):
    site = Site(tmp_path, local(2026, 11, 23, 7, 50))
    site.until(local(2026, 11, 23, 8, 5))
    site.walk(ZHANG)
    assert site.types() == ["round_started", "checkin", "checkin", "checkin", "checkin", "round_completed"] or \
        site.types() == ["checkin", "round_started", "checkin", "checkin", "checkin", "round_completed"]
    done = [o for o in site.out if o.type == "round_completed"][0]
    assert done.data["status"] == "complete"
    assert done.data["visited"] == ["gate", "carpark", "garden", "back"]
    assert done.data["guards"] == ["Zhang Wei"]
    assert done.data["round"] == "grounds@2026-11-23T08:00"
    checkin = [o for o in site.out if o.type == "checkin"][0]
    assert checkin.data == {"reader": "r-gate", "card": ZHANG, "guard": "Zhang Wei",
                            "checkpoint": "gate", "place": "Main gate"}
    assert checkin.device == "r-gate"


def test_repeated_reads_within_two_seconds_are_one_checkin(tmp_path):
    site = Site(tmp_path, local(2026, 11, 23, 8, 1))
    for _ in range(10):               # an RDM6300 repeats while the card is held
        site.scan("gate", ZHANG)
        site.wait(0.2 / 60, step_s=0.2)
    assert site.types().count("checkin") == 1
    site.wait(3 / 60, step_s=1)
    site.scan("gate", ZHANG)          # presented again later: a second check-in
    assert site.types().count("checkin") == 2


def test_missed_checkpoint_is_raised_the_minute_its_window_closes(tmp_path):
    site = Site(tmp_path, local(2026, 11, 23, 8, 0))
    site.scan("gate", ZHANG)
    # carpark is due within 10 min, late up to 15: nothing yet at 14:59
    assert "checkpoint_missed" not in site.types(site.wait(14 + 59 / 60, step_s=1))
    got = site.wait(2 / 60, step_s=1)
    missed = [o for o in got if o.type == "checkpoint_missed"]
    assert len(missed) == 1 and missed[0].data["checkpoint"] == "carpark"
    assert missed[0].data["reason"] == "timeout"
    assert missed[0].severity == "alarm"
    assert missed[0].ts.astimezone(timezone.utc) == local(2026, 11, 23, 8, 15).astimezone(timezone.utc)


def test_late_early_and_out_of_order(tmp_path):
    site = Site(tmp_path, local(2026, 11, 23, 8, 0))
    site.scan("gate", ZHANG)
    site.wait(0.5)
    early = site.scan("carpark", ZHANG)            # 30 s after the gate, min is 1 min
    assert [o.data["minutes_early"] for o in early if o.type == "checkpoint_early"] == [0.5]
    site.wait(12)
    late = site.scan("garden", ZHANG)              # 12 min, max 10
    assert [o.data["minutes_late"] for o in late if o.type == "checkpoint_late"] == [2.0]
    site.wait(3)
    site.scan("back", ZHANG)
    done = [o for o in site.out if o.type == "round_completed"][0]
    assert done.data["status"] == "complete"
    assert done.data["early"] == ["carpark"] and done.data["late"][0]["checkpoint"] == "garden"

    site2 = Site(tmp_path, local(2026, 11, 23, 14, 0))
    site2.scan("gate", ZHANG)
    site2.wait(3)
    got = site2.scan("garden", ZHANG)              # skipped the car park
    assert site2.types(got) == ["checkin", "out_of_order", "checkpoint_missed"]
    assert got[1].data["expected"] == "carpark"
    assert got[2].data["checkpoint"] == "carpark" and got[2].data["reason"] == "skipped"
    site2.wait(3)
    site2.scan("back", ZHANG)
    done = [o for o in site2.out if o.type == "round_completed"][0]
    assert done.data["status"] == "incomplete" and done.data["missed"] == ["carpark"]
    assert done.severity == "warning"


def test_round_not_started_at_window_close_and_unknown_card(tmp_path):
    site = Site(tmp_path, local(2026, 11, 23, 7, 0))
    got = site.until(local(2026, 11, 23, 8, 34, 55))
    assert "round_not_started" not in site.types(got)
    got = site.wait(10 / 60, step_s=1)               # window 30 min + grace 5 min
    assert site.types(got) == ["round_not_started"]
    assert got[0].data["planned_start"].startswith("2026-11-23T08:00")
    got = site.scan("gate", UNKNOWN)
    assert site.types(got) == ["unknown_card"] and got[0].data["card"] == UNKNOWN


def test_two_guards_at_night_and_a_lone_guard(tmp_path):
    site = Site(tmp_path, local(2026, 11, 23, 19, 55))
    site.until(local(2026, 11, 23, 20, 0))
    site.walk(ZHANG, pair=LI)                        # together at every checkpoint
    done = [o for o in site.out if o.type == "round_completed"]
    assert done and done[0].data["guards"] == ["Zhang Wei", "Li Na"]
    assert "single_guard_at_night" not in site.types()
    site.until(local(2026, 11, 24, 2, 1))
    site.scan("gate", WANG)                          # Wang walks the 02:00 round alone
    got = site.wait(1.1, step_s=1)
    lone = [o for o in got if o.type == "single_guard_at_night"]
    assert len(lone) == 1 and lone[0].data["guard"] == "Wang Fang" and lone[0].severity == "alarm"
    assert lone[0].data["checkpoint"] == "gate"


def test_whole_day_and_night(tmp_path):
    """00:00 to 24:00: one good day round, one missed day round start, a night pair, a night skip."""
    site = Site(tmp_path, local(2026, 11, 23, 0, 0))
    # 02:00 night round: a pair, complete
    site.until(local(2026, 11, 23, 2, 5))
    site.walk(ZHANG, pair=LI)
    # 08:00 day round: on time, complete
    site.until(local(2026, 11, 23, 8, 10))
    site.walk(WANG, minutes=6)
    # 14:00 day round: nobody comes
    # 20:00 night round: a lone guard who skips the garden and stops at the back wall
    site.until(local(2026, 11, 23, 20, 2))
    site.walk(ZHANG, cps=("gate", "carpark"), minutes=4)
    site.until(local(2026, 11, 24, 0, 0))
    types = site.types()
    assert types.count("round_started") == 3
    completed = [o.data["status"] for o in site.out if o.type == "round_completed"]
    assert completed == ["complete", "complete", "incomplete"]
    not_started = [o.data["planned_start"][11:16] for o in site.out if o.type == "round_not_started"]
    assert not_started == ["14:00"]
    missed = [(o.data["checkpoint"], o.ts.astimezone(local(2026, 1, 1, 0).tzinfo).strftime("%H:%M"))
              for o in site.out if o.type == "checkpoint_missed"]
    # garden due 15 min after the car park (20:06), then back 15 min after that window closed
    assert missed == [("garden", "20:21"), ("back", "20:36")]
    assert types.count("single_guard_at_night") == 2          # gate and car park
    # events come in time order
    stamps = [o.ts for o in site.out]
    assert stamps == sorted(stamps)


def test_ntp_step_after_boot_creates_no_false_misses(tmp_path):
    # the gateway boots believing it is 07:00; NTP then steps the clock to 11:00
    site = Site(tmp_path, local(2026, 11, 23, 7, 0))
    site.wait(1)
    site.clock.step_wall(4 * 3600)
    got = site.wait(1)
    assert "round_not_started" not in site.types(got)
    steps = [o for o in got if o.type == "clock_step"]
    assert len(steps) == 1 and steps[0].data["step_seconds"] == pytest.approx(4 * 3600)
    assert steps[0].data["windows_not_judged"] == ["day@2026-11-23T08:00"]
    # a round in progress keeps its monotonic deadlines across a step
    site.until(local(2026, 11, 23, 14, 0))
    site.scan("gate", ZHANG)
    site.wait(3)
    site.clock.step_wall(3600)            # an hour forward: not an hour of waiting
    got = site.wait(3)
    assert "checkpoint_missed" not in site.types(got)
    site.scan("carpark", ZHANG)
    assert "checkpoint_late" not in site.types(site.out[-3:])
    # a step backwards does not re-raise windows already judged
    site.clock.step_wall(-5 * 3600)
    got = site.wait(60)
    assert site.types(got).count("round_not_started") == 0


def test_guard_session_for_checkpoint_tags(tmp_path):
    from .helpers import REGISTRY
    reg = REGISTRY + '\n[[checkpoint]]\nid = "pump-room"\nplace = "Pump room"\ntag = "0200000001"\n'
    regs, plan = load(tmp_path, registry=reg)
    eng = PatrolEngine(regs, plan, TZ)
    clock = ManualClock(local(2026, 11, 23, 9, 0).astimezone(timezone.utc))
    eng.tick(clock.now(), clock.monotonic())
    eng.scan("handheld-1", ZHANG, clock.now(), clock.monotonic())     # guard logs in on his wand
    clock.advance(60)
    got = eng.scan("handheld-1", "0200000001", clock.now(), clock.monotonic())
    assert got[0].type == "checkin"
    assert got[0].data["checkpoint"] == "pump-room" and got[0].data["guard"] == "Zhang Wei"


def test_guard_turning_up_after_a_miss_is_late_and_the_round_goes_on_from_there(tmp_path):
    site = Site(tmp_path, local(2026, 11, 23, 8, 0))
    site.scan("gate", ZHANG)
    site.wait(16)                                  # car park missed at 08:15
    got = site.scan("carpark", ZHANG)              # he was only slow
    late = [o for o in got if o.type == "checkpoint_late"]
    assert late and late[0].data["after_missed"] is True
    site.wait(5)
    assert "checkpoint_missed" not in site.types(site.scan("garden", ZHANG))
    site.wait(5)
    site.scan("back", ZHANG)
    done = [o for o in site.out if o.type == "round_completed"][0]
    assert done.data["status"] == "incomplete" and done.data["missed"] == ["carpark"]

"""The IR beam driver end to end: real driver, MockFactory contact pins, real event store.

Time is a ManualClock walked by the test (edges are stamped from it at the edge),
so debounce, trouble timers and schedules are exact; the driver's worker runs
in its own thread, so every check waits for events with a deadline."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from gpiozero.pins.mock import MockFactory

from gateway.clock import Clock, ManualClock
from gateway.configfile import Problems
from drivers.ir_beam import IrBeamDriver
from sim.ir_beam import ContactPin
from tests.helpers import wait_until

# Monday 2026-11-23 12:00 in Shanghai
MONDAY_NOON_SH = datetime(2026, 11, 23, 4, 0, tzinfo=timezone.utc)


def detector(zone: str, alarm: int, tamper: int, **extra: Any) -> dict[str, Any]:
    return {"zone": zone, "alarm_pin": alarm, "tamper_pin": tamper, **extra}


class Rig:
    """One driver instance; `restart()` makes a new instance on the same state folder and pins."""

    def __init__(self, make_ctx: Callable[..., Any], detectors: list[dict[str, Any]], *,
                 settings: dict[str, Any] | None = None, schedules: dict[str, Any] | None = None,
                 clock: Clock | None = None, timezone: str = "Asia/Shanghai",
                 factory: MockFactory | None = None, start: bool = True) -> None:
        self.make_ctx = make_ctx
        self.clock = clock if clock is not None else ManualClock(MONDAY_NOON_SH)
        self.factory = factory or MockFactory()
        self.timezone = timezone
        self.raw: dict[str, Any] = {"ir_beam": detectors,
                                    "ir_beam_settings": {"pin_factory": "mock", **(settings or {})}}
        if schedules:
            self.raw["ir_beam_schedules"] = schedules
        self.pins: dict[tuple[str, str], ContactPin] = {}
        for d in detectors:
            nc = {i: d.get(f"{i}_contact", d.get("contact", "nc")) == "nc" for i in ("alarm", "tamper", "env")}
            ground = d.get("pull", "up") in ("up", "external-up")
            for inp in ("alarm", "tamper", "env"):
                if f"{inp}_pin" in d and str(d[f"{inp}_pin"]) != "GPIO77":   # GPIO77: no such pin
                    self.pins[(d["zone"], inp)] = self.factory.pin(
                        d[f"{inp}_pin"], pin_class=ContactPin, closed=nc[inp], wired_to_ground=ground)
                    self.pins[(d["zone"], inp)].nc = nc[inp]  # type: ignore[attr-defined]
        self.driver: IrBeamDriver | None = None
        self.ctx: Any = None
        if start:
            self.start()

    def config(self) -> Any:
        problems = Problems()
        cfg = IrBeamDriver.parse_config(self.raw, problems)
        assert not problems, problems.items
        return cfg

    def start(self) -> IrBeamDriver:
        self.ctx = self.make_ctx("ir_beam", event_class="ir_beam", clock=self.clock,
                                 resources={"gpio_pin_factory": self.factory}, timezone=self.timezone)
        self.driver = IrBeamDriver("ir_beam", self.config(), self.ctx)
        self.driver.start()
        wait_until(lambda: self.driver.health().state in ("ok", "degraded"), message="driver started")
        return self.driver

    def stop(self) -> None:
        if self.driver is not None:
            self.driver.stop()

    def restart(self) -> IrBeamDriver:
        self.stop()
        return self.start()

    # -- the world side ------------------------------------------------------
    def set(self, zone: str, inp: str, active: bool) -> None:
        pin = self.pins[(zone, inp)]
        pin.set_contact(closed=(not active) if pin.nc else active)  # type: ignore[attr-defined]

    def open(self, zone: str, inp: str = "alarm") -> None:
        self.set(zone, inp, True)

    def close(self, zone: str, inp: str = "alarm") -> None:
        self.set(zone, inp, False)

    def advance(self, seconds: float) -> None:
        assert isinstance(self.clock, ManualClock)
        self.clock.advance(seconds)

    def pulse(self, zone: str, seconds: float, inp: str = "alarm", settle: float = 0.1) -> None:
        """Interrupt for `seconds` of manual time, then let the debounce run out."""
        self.open(zone, inp)
        self.advance(seconds)
        self.close(zone, inp)
        self.advance(settle)

    # -- what the driver did ----------------------------------------------------
    def types(self, device: str | None = None) -> list[str]:
        return [e.type for e in self.ctx.events() if device is None or e.device == device]

    def wait(self, type_: str, device: str | None = None, n: int = 1, timeout: float = 5.0) -> Any:
        def found() -> Any:
            evs = [e for e in self.ctx.events() if e.type == type_ and (device is None or e.device == device)]
            return evs[n - 1] if len(evs) >= n else None
        return wait_until(found, timeout, message=lambda: f"{n} x {type_} on {device}; saw "
                          f"{[(e.device, e.type) for e in self.ctx.events()][-20:]}")


import json  # noqa: E402

import pytest  # noqa: E402
from gpiozero import InputDevice  # noqa: E402

from gateway.clock import parse_iso_utc  # noqa: E402
from gateway.driver import CommandRefused  # noqa: E402

ALWAYS = {"schedule": "always"}
NIGHT = {"night": [{"days": ["mon", "tue", "wed", "thu", "fri"], "from": "22:00", "to": "06:00"}]}


def sh_time(day: int, hour: int, minute: int = 0) -> datetime:
    """A Shanghai wall time in the week of Monday 2026-11-23, as UTC."""
    from zoneinfo import ZoneInfo
    return datetime(2026, 11, day, hour, minute, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(timezone.utc)


@pytest.fixture
def rigs(make_ctx: Callable[..., Any]):
    made: list[Rig] = []

    def make(*args: Any, **kwargs: Any) -> Rig:
        r = Rig(make_ctx, *args, **kwargs)
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


# -- debounce and timestamps ------------------------------------------------------------

def test_20ms_glitch_ignored_40ms_interruption_reported_with_edge_times(rigs: Any) -> None:
    rig = rigs([detector("north-1", 17, 27, debounce_ms=30, **ALWAYS)])
    rig.wait("armed", "north-1")
    t_glitch = rig.clock.now()
    rig.pulse("north-1", 0.020, settle=0.5)           # 20 ms: shorter than the debounce
    t_edge = rig.clock.now()
    rig.pulse("north-1", 0.040, settle=0.5)           # 40 ms: reported
    alarm = rig.wait("alarm", "north-1")
    restore = rig.wait("restore", "north-1")
    assert t_glitch < t_edge
    assert parse_iso_utc(alarm.ts) == t_edge.replace(microsecond=t_edge.microsecond // 1000 * 1000)
    assert alarm.severity == "alarm" and alarm.cls == "ir_beam"
    assert restore.data["duration_s"] == pytest.approx(0.040, abs=1e-6)
    assert (parse_iso_utc(restore.ts) - parse_iso_utc(alarm.ts)).total_seconds() == pytest.approx(0.040)
    assert rig.types("north-1") == ["armed", "alarm", "restore"]


def test_no_contact_with_pull_down_alarms_when_it_closes(rigs: Any) -> None:
    rig = rigs([detector("gate-1", 5, 6, contact="no", pull="down", **ALWAYS)])
    rig.wait("armed", "gate-1")
    assert rig.pins[("gate-1", "alarm")].state is False       # idle: NO contact open, pulled down
    rig.pulse("gate-1", 0.2)
    assert rig.wait("restore", "gate-1").data["duration_s"] == pytest.approx(0.2)


# -- arming ------------------------------------------------------------------------------

def test_disarmed_zone_counts_interruptions_and_still_reports_tamper(rigs: Any) -> None:
    rig = rigs([detector("north-1", 17, 27)])            # no schedule: by command only, starts disarmed
    first = rig.wait("disarmed", "north-1")
    assert first.data["source"] == "default"
    rig.pulse("north-1", 0.5)
    rig.pulse("north-1", 0.5)
    rig.pulse("north-1", 0.5, inp="tamper")
    tamper = rig.wait("tamper", "north-1")
    assert tamper.severity == "warning" and tamper.data["armed"] is False
    rig.wait("tamper_restore", "north-1")
    wait_until(lambda: rig.driver.health().counters.get("north-1.interruptions_not_armed") == 2)
    assert "alarm" not in rig.types()
    reply = rig.driver.commands()["arm"]({"zones": ["north-1"]})
    assert reply["changed"] == [{"zone": "north-1", "from": "disarmed", "to": "armed", "until": None}]
    assert rig.wait("armed", "north-1").data["source"] == "command"
    rig.pulse("north-1", 0.5, inp="tamper")
    assert rig.wait("tamper", "north-1", n=2).severity == "alarm"
    rig.pulse("north-1", 0.5)
    rig.wait("alarm", "north-1")


def test_schedule_arms_and_disarms_across_midnight(rigs: Any) -> None:
    clock = ManualClock(sh_time(23, 21, 59))              # Monday 21:59
    rig = rigs([detector("north-1", 17, 27, schedule="night")], schedules=NIGHT, clock=clock)
    assert rig.wait("disarmed", "north-1").data["source"] == "schedule"
    rig.pulse("north-1", 0.5)
    rig.advance(60)                                       # 22:00
    armed = rig.wait("armed", "north-1")
    assert parse_iso_utc(armed.ts) >= sh_time(23, 22, 0)
    rig.advance(2 * 3600)                                 # Tuesday 00:00: still armed
    rig.pulse("north-1", 0.5)
    rig.wait("restore", "north-1")
    rig.advance(6 * 3600 - 60 - 2)                        # Tuesday 05:59
    rig.pulse("north-1", 0.5)
    rig.wait("restore", "north-1", n=2)
    rig.advance(61)                                       # 06:00
    rig.wait("disarmed", "north-1", n=2)
    assert rig.types("north-1") == ["disarmed", "armed", "alarm", "restore", "alarm", "restore", "disarmed"]


def test_command_overrides_until_the_next_schedule_change(rigs: Any) -> None:
    clock = ManualClock(sh_time(23, 23, 0))               # Monday 23:00, inside the night window
    rig = rigs([detector("north-1", 17, 27, schedule="night", group="north"),
                detector("north-2", 22, 23, schedule="night", group="north")],
               schedules=NIGHT, clock=clock)
    rig.wait("armed", "north-2")
    reply = rig.driver.commands()["disarm"]({"group": "north"})
    assert [c["zone"] for c in reply["changed"]] == ["north-1", "north-2"]
    assert parse_iso_utc(reply["changed"][0]["until"]) == sh_time(24, 6, 0)
    rig.wait("disarmed", "north-2")
    assert rig.driver.commands()["disarm"]({"zones": ["north-1"]})["unchanged"] == ["north-1"]
    rig.pulse("north-1", 0.5)                             # disarmed by command: no alarm
    rig.advance(7 * 3600)                                 # Tuesday 06:00: schedule says disarmed too
    rig.advance(16 * 3600)                                # Tuesday 22:00: the schedule arms again
    armed = rig.wait("armed", "north-1", n=2)
    assert armed.data["source"] == "schedule"
    assert "alarm" not in rig.types()


def test_bad_command_arguments_are_refused_and_change_nothing(rigs: Any) -> None:
    rig = rigs([detector("north-1", 17, 27, group="north")])
    rig.wait("disarmed", "north-1")
    arm = rig.driver.commands()["arm"]
    for bad in ({}, {"zones": []}, {"zones": "north-1"}, {"zones": ["nowhere"]}, {"group": "south"},
                {"group": 3}, {"zones": ["north-1"], "group": "north"}, {"zone": ["north-1"]},
                {"zones": ["north-1", 7]}):
        with pytest.raises(CommandRefused):
            arm(bad)
    assert rig.types() == ["disarmed"]
    assert set(rig.driver.commands()) == {"arm", "disarm", "bypass"}
    reply = rig.driver.commands()["bypass"]({"zones": ["north-1"]})
    assert reply["changed"][0]["to"] == "bypassed"
    assert rig.wait("bypassed", "north-1").severity == "warning"
    rig.pulse("north-1", 0.5)
    rig.driver.commands()["arm"]({"group": "north"})
    rig.wait("armed", "north-1")
    assert "alarm" not in rig.types()


def test_swinger_zone_is_bypassed_after_n_alarms_and_rearmed_by_command(rigs: Any) -> None:
    rig = rigs([detector("north-1", 17, 27, swinger_limit=3, **ALWAYS)])
    rig.wait("armed", "north-1")
    for _ in range(3):
        rig.pulse("north-1", 0.3, settle=1.0)
    bypassed = rig.wait("bypassed", "north-1")
    assert bypassed.data["source"] == "swinger" and bypassed.data["alarms_in_period"] == 3
    rig.pulse("north-1", 0.3, settle=1.0)                 # bypassed: no fourth alarm
    rig.pulse("north-1", 0.3, inp="tamper")               # tamper still reported (24-hour input)
    rig.wait("tamper_restore", "north-1")
    assert rig.types("north-1").count("alarm") == 3
    rig.driver.commands()["arm"]({"zones": ["north-1"]})
    rig.wait("armed", "north-1", n=2)
    rig.pulse("north-1", 0.3)
    assert rig.wait("alarm", "north-1", n=4).data["alarms_in_period"] == 1


# -- trouble, environment, chatter, faults ---------------------------------------------------

def test_stuck_open_contact_is_one_trouble_then_restores(rigs: Any) -> None:
    rig = rigs([detector("north-1", 17, 27, **ALWAYS)])
    rig.wait("armed", "north-1")
    opened = rig.clock.now()
    rig.open("north-1")
    rig.advance(5)
    rig.wait("alarm", "north-1")
    rig.advance(6)
    trouble = rig.wait("trouble", "north-1")
    assert trouble.data["reason"] == "stuck_open" and trouble.severity == "warning"
    assert (parse_iso_utc(trouble.ts) - opened).total_seconds() == pytest.approx(10.0, abs=0.002)
    for _ in range(5):
        rig.advance(30)
    rig.close("north-1")
    rig.advance(0.1)
    rig.wait("trouble_restore", "north-1")
    assert rig.wait("restore", "north-1").data["duration_s"] == pytest.approx(161.0)
    assert rig.types("north-1") == ["armed", "alarm", "trouble", "restore", "trouble_restore"]


def test_environmental_output(rigs: Any) -> None:
    rig = rigs([detector("east-1", 17, 27, env_pin=22, env_contact="no")])
    rig.wait("disarmed", "east-1")
    rig.pulse("east-1", 30.0, inp="env")
    env = rig.wait("environmental", "east-1")
    assert env.severity == "warning"
    assert rig.wait("environmental_restore", "east-1").data["duration_s"] == pytest.approx(30.0)


def test_1khz_chatter_is_one_trouble_not_a_flood(rigs: Any) -> None:
    rig = rigs([detector("north-1", 17, 27, **ALWAYS), detector("north-2", 22, 23, **ALWAYS)])
    rig.wait("armed", "north-2")
    for _ in range(5000):                                 # 5 s of a loose wire at 1 kHz
        rig.open("north-1")
        rig.advance(0.0005)
        rig.close("north-1")
        rig.advance(0.0005)
    rig.pulse("north-2", 0.5)                             # the neighbour still works meanwhile
    rig.wait("restore", "north-2")
    trouble = rig.wait("trouble", "north-1")
    assert trouble.data["reason"] == "chatter" and trouble.data["input"] == "alarm"
    rig.advance(6)                                        # quiet for longer than chatter_quiet_s
    rig.wait("trouble_restore", "north-1")
    assert rig.types("north-1") == ["armed", "trouble", "trouble_restore"]


def test_slow_chatter_is_bounded_and_its_final_state_reported(rigs: Any) -> None:
    rig = rigs([detector("north-1", 17, 27, swinger_limit=0, **ALWAYS)])
    rig.wait("armed", "north-1")
    for _ in range(300):                                  # 10 Hz for 30 s: every level passes the debounce
        rig.open("north-1")
        rig.advance(0.05)
        rig.close("north-1")
        rig.advance(0.05)
    rig.open("north-1")                                   # ... and the wire ends up open
    rig.advance(6)
    rig.wait("trouble_restore", "north-1")
    rig.advance(5)
    rig.wait("trouble", "north-1", n=2)                   # stuck open
    evs = [e for e in rig.ctx.events() if e.device == "north-1"]
    types = [e.type for e in evs]
    # ten alarm/restore pairs pass before the 20th edge within 10 s marks it as chatter;
    # then nothing until it is quiet; the alarm still outstanding is not repeated, and the
    # wire left open becomes a stuck-open trouble
    assert len(types) <= 25, ",".join(types)
    assert types[-4:] == ["alarm", "trouble", "trouble_restore", "trouble"], ",".join(types)
    assert [e.data["reason"] for e in evs[-3:]] == ["chatter", "chatter", "stuck_open"]
    assert evs[-2].data["held_back"] > 100


def test_pin_that_cannot_be_opened_is_reported_once_and_retried(rigs: Any) -> None:
    rig = rigs([detector("north-1", 17, 27, **ALWAYS), detector("north-2", 22, 23, **ALWAYS)], start=False)
    squatter = InputDevice(27, pin_factory=rig.factory)   # someone else holds north-1's tamper pin
    rig.start()
    trouble = rig.wait("trouble", "north-1")
    assert trouble.data["reason"] == "pin_fault" and trouble.data["input"] == "tamper"
    assert "in use" in trouble.data["error"]
    assert rig.driver.health().state == "degraded"
    for _ in range(3):                                    # several retries fail: still one report
        failures = rig.driver.health().counters.get("pin_open_failures", 0)
        rig.advance(60)
        wait_until(lambda: rig.driver.health().counters.get("pin_open_failures", 0) > failures)
    rig.pulse("north-2", 0.5)
    rig.wait("restore", "north-2")
    rig.pulse("north-1", 0.5)                             # its alarm pin works regardless
    rig.wait("restore", "north-1")
    squatter.close()
    rig.advance(60)
    rig.wait("trouble_restore", "north-1")
    wait_until(lambda: rig.driver.health().state == "ok")
    rig.pulse("north-1", 0.5, inp="tamper")
    rig.wait("tamper_restore", "north-1")
    assert rig.types("north-1").count("trouble") == 1


def test_unknown_pin_name_is_a_fault_not_a_crash(rigs: Any) -> None:
    rig = rigs([detector("north-1", 17, 27, env_pin="GPIO77")])
    trouble = rig.wait("trouble", "north-1")
    assert trouble.data["input"] == "env" and trouble.data["pin"] == "GPIO77"
    assert rig.driver.alive


# -- cross-zone ----------------------------------------------------------------------------------

def test_two_adjacent_zones_within_the_window_confirm_an_intrusion(rigs: Any) -> None:
    rig = rigs([detector("n1", 5, 6, adjacent=["n2"], **ALWAYS), detector("n2", 12, 13, **ALWAYS),
                detector("n3", 16, 19, **ALWAYS)], settings={"confirm_window_s": 8})
    rig.wait("armed", "n3")
    rig.pulse("n1", 0.5, settle=3)
    rig.pulse("n3", 0.5, settle=3)                        # not adjacent to n1
    rig.pulse("n2", 0.5, settle=30)                       # 7 s after n1: confirmed
    confirmed = rig.wait("intrusion_confirmed")
    assert confirmed.severity == "critical" and confirmed.device == "n2"
    assert confirmed.data["zones"] == ["n1", "n2"] and confirmed.data["interval_s"] == pytest.approx(7.0)
    rig.pulse("n1", 0.5)                                  # 31 s later: too late to pair again
    rig.wait("alarm", "n1", n=2)
    rig.pulse("n3", 0.5)
    rig.wait("alarm", "n3", n=2)
    assert len(rig.ctx.events("intrusion_confirmed")) == 1


# -- restarts and persistence -----------------------------------------------------------------------

def test_arm_state_survives_a_restart(rigs: Any) -> None:
    rig = rigs([detector("north-1", 17, 27)])
    rig.wait("disarmed", "north-1")
    rig.driver.commands()["arm"]({"zones": ["north-1"]})
    rig.wait("armed", "north-1")
    path = Path(rig.ctx.state_dir) / "ir_beam_state.json"
    wait_until(lambda: path.exists() and json.loads(path.read_text())["zones"]["north-1"]["mode"] == "armed",
               message="arm state saved")
    rig.restart()
    rig.pulse("north-1", 0.5)
    rig.wait("restore", "north-1")
    assert rig.types("north-1") == ["alarm", "restore"]      # still armed, and not re-announced


def test_restart_in_the_middle_of_an_alarm(rigs: Any) -> None:
    rig = rigs([detector("north-1", 17, 27, **ALWAYS)])
    rig.wait("armed", "north-1")
    rig.open("north-1")
    rig.advance(1)
    first = rig.wait("alarm", "north-1")
    rig.restart()                                         # the beam is still interrupted
    rig.advance(2)
    rig.close("north-1")
    rig.advance(0.5)
    restore = rig.wait("restore", "north-1")
    assert rig.types("north-1") == ["restore"]            # no second alarm, no second "armed"
    assert restore.data["duration_s"] == pytest.approx(3.0, abs=0.002)
    assert first.ts < restore.ts
    # and if it restores while the gateway is down, the restore comes at the next start
    rig.open("north-1")
    rig.advance(1)
    rig.wait("alarm", "north-1")
    rig.stop()
    rig.close("north-1")
    rig.advance(4)
    rig.start()
    assert rig.wait("restore", "north-1").data["duration_s"] == pytest.approx(5.0, abs=0.002)


def test_time_zone_change_in_config_moves_the_schedule(rigs: Any) -> None:
    clock = ManualClock(sh_time(23, 23, 0))               # 15:00 UTC: 23:00 in Shanghai
    rig = rigs([detector("north-1", 17, 27, schedule="night")], schedules=NIGHT, clock=clock)
    rig.wait("armed", "north-1")
    rig.stop()
    rig.raw["ir_beam_settings"]["timezone"] = "Asia/Kolkata"   # 20:30 there: not yet night
    rig.start()
    disarmed = rig.wait("disarmed", "north-1")
    assert disarmed.data["source"] == "schedule"
    rig.advance(90 * 60)                                  # 22:00 in Kolkata
    rig.wait("armed", "north-1")


# -- committing: one engine step, one transaction, off the engine lock -------------------

def test_what_one_engine_step_returns_is_committed_together_in_its_order(rigs: Any) -> None:
    rig = rigs([detector("north-1", 17, 27)])
    rig.wait("disarmed", "north-1")
    rig.open("north-1")                                   # interrupted while disarmed: no event yet
    rig.advance(1)
    commits = rig.ctx.store.commits
    rig.driver.commands()["arm"]({"zones": ["north-1"]})  # arming an interrupted zone: armed, then alarm
    armed, alarm = rig.wait("armed", "north-1"), rig.wait("alarm", "north-1")
    assert rig.ctx.store.commits == commits + 1, "one step's events are one transaction (one fsync)"
    assert alarm.seq == armed.seq + 1


def test_a_slow_commit_does_not_stop_other_zones_being_debounced(rigs: Any) -> None:
    import threading

    rig = rigs([detector("north-1", 17, 27, **ALWAYS), detector("north-2", 22, 23, **ALWAYS)])
    rig.wait("armed", "north-2")
    real, entered, disk = rig.ctx.emit_many, threading.Event(), threading.Event()

    def slow_disk(emissions: Any) -> Any:                  # an SD card taking its time over one fsync
        entered.set()
        disk.wait(10)
        return real(emissions)

    rig.ctx.emit_many = slow_disk
    try:
        rig.open("north-1")
        rig.advance(0.1)
        wait_until(entered.is_set, message="north-1's alarm being committed")
        rig.open("north-2")
        rig.advance(0.1)
        wait_until(lambda: "alarm" in rig.driver.health().devices.get("north-2", ""),
                   message="north-2 debounced and in alarm while north-1's commit hangs")
        assert "alarm" not in rig.types()
    finally:
        disk.set()
    rig.wait("alarm", "north-2")
    assert [e.device for e in rig.ctx.events("alarm")] == ["north-1", "north-2"]

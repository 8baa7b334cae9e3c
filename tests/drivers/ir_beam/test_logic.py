"""Pure timing logic of the IR beam driver: debouncer, chatter detector, schedules, config."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from gateway.configfile import Problems
from drivers.ir_beam.config import parse_config
from drivers.ir_beam.debounce import ChatterDetector, Debouncer
from drivers.ir_beam.schedule import Schedule, Window, parse_schedule

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
SH = ZoneInfo("Asia/Shanghai")


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


# -- debouncer -------------------------------------------------------------

def feed(deb: Debouncer, edges: list[tuple[float, bool]], until: float) -> list[tuple[bool, float]]:
    """Feed edges, polling every millisecond as a worker would, and collect accepted changes."""
    out = []
    todo = sorted(edges)
    t = 0.0
    while t <= until + 1e-9:
        while todo and todo[0][0] <= t + 1e-9:
            et, lvl = todo.pop(0)
            c = deb.edge(lvl, et, at(et))
            if c:
                out.append((c.level, round(c.mono, 4)))
        c = deb.poll(t)
        if c:
            out.append((c.level, round(c.mono, 4)))
        t = round(t + 0.001, 6)
    return out


def test_a_20ms_glitch_is_ignored_at_30ms_debounce() -> None:
    deb = Debouncer(0.030, False, 0.0, at(0))
    assert feed(deb, [(1.0, True), (1.020, False)], until=2.0) == []
    assert deb.stable is False


def test_a_40ms_interruption_is_reported_stamped_at_its_edges() -> None:
    deb = Debouncer(0.030, False, 0.0, at(0))
    assert feed(deb, [(1.0, True), (1.040, False)], until=2.0) == [(True, 1.0), (False, 1.04)]


def test_debounce_outcome_does_not_depend_on_when_the_worker_polls() -> None:
    # the worker may see both edges late, in one batch: same result, same stamps
    deb = Debouncer(0.030, False, 0.0, at(0))
    assert deb.edge(True, 1.0, at(1.0)) is None
    c = deb.edge(False, 1.040, at(1.040))      # the first level held 40 ms before this edge
    assert c is not None and c.level is True and c.mono == 1.0 and c.wall == at(1.0)
    c = deb.poll(5.0)
    assert c is not None and c.level is False and c.mono == 1.040


def test_repeated_levels_and_zero_debounce() -> None:
    deb = Debouncer(0.0, False, 0.0, at(0))
    c = deb.edge(True, 1.0, at(1.0))
    assert c is not None and c.level is True
    assert deb.edge(True, 1.1, at(1.1)) is None
    assert deb.deadline() is None


def test_bouncing_contact_is_accepted_once_it_settles() -> None:
    deb = Debouncer(0.030, False, 0.0, at(0))
    edges = [(1.0 + i * 0.005, i % 2 == 0) for i in range(9)]   # bounces for 40 ms, ends high
    assert feed(deb, edges, until=2.0) == [(True, 1.04)]


# -- chatter ---------------------------------------------------------------

def test_chatter_starts_once_and_ends_after_quiet_time() -> None:
    cd = ChatterDetector(edges=20, window_s=10.0, quiet_s=5.0)
    starts = [cd.edge(i * 0.001) for i in range(2000)]
    assert starts.count(True) == 1 and starts.index(True) == 19
    assert cd.deadline() == 1.999 + 5.0
    assert not cd.poll(6.0)
    assert cd.poll(7.0)
    assert not cd.chattering and cd.deadline() is None


def test_ordinary_intrusions_are_not_chatter() -> None:
    cd = ChatterDetector(edges=20, window_s=10.0, quiet_s=5.0)
    # one intrusion (2 edges) every 2 s for a minute
    assert not any(cd.edge(t + d) for t in range(0, 60, 2) for d in (0.0, 0.5))


# -- schedules ----------------------------------------------------------------

def sh(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SH).astimezone(timezone.utc)


NIGHT = Schedule("night", (Window(frozenset({0, 1, 2, 3, 4}), 22 * 60, 6 * 60),))   # Mon-Fri 22:00-06:00


def test_overnight_window_runs_past_midnight_into_the_next_day() -> None:
    # 2026-11-23 is a Monday
    assert not NIGHT.armed_at(sh(2026, 11, 23, 21, 59), SH)
    assert NIGHT.armed_at(sh(2026, 11, 23, 22, 0), SH)
    assert NIGHT.armed_at(sh(2026, 11, 24, 0, 0), SH)           # Tuesday just after midnight
    assert NIGHT.armed_at(sh(2026, 11, 24, 5, 59), SH)
    assert not NIGHT.armed_at(sh(2026, 11, 24, 6, 0), SH)
    # Friday night runs into Saturday morning; Saturday night is not armed
    assert NIGHT.armed_at(sh(2026, 11, 28, 3, 0), SH)
    assert not NIGHT.armed_at(sh(2026, 11, 28, 23, 0), SH)
    # Monday 03:00 belongs to Sunday night, which is not in the schedule
    assert not NIGHT.armed_at(sh(2026, 11, 23, 3, 0), SH)


def test_next_change_crosses_midnight_and_skips_non_changes() -> None:
    assert NIGHT.next_change(sh(2026, 11, 23, 12, 0), SH) == sh(2026, 11, 23, 22, 0)
    assert NIGHT.next_change(sh(2026, 11, 23, 23, 0), SH) == sh(2026, 11, 24, 6, 0)
    # Friday 23:00: next change is Saturday 06:00, then nothing until Monday 22:00
    assert NIGHT.next_change(sh(2026, 11, 27, 23, 0), SH) == sh(2026, 11, 28, 6, 0)
    assert NIGHT.next_change(sh(2026, 11, 28, 6, 0), SH) == sh(2026, 11, 30, 22, 0)
    # two windows that touch make one armed stretch: no change at the seam
    touching = Schedule("t", (Window(frozenset({0}), 18 * 60, 1440), Window(frozenset({1}), 0, 7 * 60)))
    assert touching.next_change(sh(2026, 11, 23, 19, 0), SH) == sh(2026, 11, 24, 7, 0)
    always = Schedule("a", (Window(frozenset(range(7)), 0, 1440),))
    assert always.next_change(sh(2026, 11, 23, 19, 0), SH) is None


def test_the_same_instant_in_another_dst_free_zone() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")              # UTC+5:30, no DST, like Shanghai (UTC+8)
    instant = sh(2026, 11, 23, 23, 0)               # 15:00 UTC = 20:30 in Kolkata
    assert NIGHT.armed_at(instant, SH)
    assert not NIGHT.armed_at(instant, kolkata)
    assert NIGHT.next_change(instant, kolkata) == datetime(2026, 11, 23, 22, 0, tzinfo=kolkata)


def test_dst_zone_change_is_followed() -> None:
    berlin = ZoneInfo("Europe/Berlin")              # 2026-10-25 03:00 CEST -> 02:00 CET
    sched = Schedule("s", (Window(frozenset(range(7)), 22 * 60, 6 * 60),))
    end = sched.next_change(datetime(2026, 10, 24, 23, 0, tzinfo=berlin), berlin)
    assert end == datetime(2026, 10, 25, 6, 0, tzinfo=berlin)
    assert end.astimezone(timezone.utc).hour == 5    # CET, not CEST


def test_schedule_problems_name_their_keys() -> None:
    problems = Problems()
    parse_schedule("night", [{"days": ["mon", "funday"], "from": "25:00", "to": "06:00", "x": 1},
                             {"days": ["tue"], "from": "07:00", "to": "07:00"}],
                   "ir_beam_schedules.night", problems)
    keys = {p.key for p in problems.items}
    assert keys == {"ir_beam_schedules.night[0].days[1]", "ir_beam_schedules.night[0].from",
                    "ir_beam_schedules.night[0].x", "ir_beam_schedules.night[1]"}


# -- config -----------------------------------------------------------------

def test_config_problems_name_their_keys() -> None:
    raw = {
        "ir_beam_settings": {"pin_factory": "magic", "timezone": "Mars/Olympus", "debouce": 1},
        "ir_beam_schedules": {"night": [{"days": ["mon"], "from": "22:00", "to": "06:00"}]},
        "ir_beam": [
            {"zone": "a", "alarm_pin": 17, "tamper_pin": 27, "schedule": "nite", "adjacent": ["zz"]},
            {"zone": "a", "alarm_pin": "GPIO17", "contact": "nx", "debounce_ms": -1},
            {"zone": "bad name!", "alarm_pin": 99, "tamper_pin": True, "adjacent": ["bad name!"]},
        ],
    }
    problems = Problems()
    cfg = parse_config(raw, problems)
    keys = {p.key for p in problems.items}
    assert {"ir_beam_settings.pin_factory", "ir_beam_settings.timezone", "ir_beam_settings.debouce",
            "ir_beam[0].schedule", "ir_beam[0].adjacent[0]", "ir_beam[1].zone", "ir_beam[1].alarm_pin",
            "ir_beam[1].contact", "ir_beam[1].debounce_ms", "ir_beam[1].tamper_pin",
            "ir_beam[2].zone", "ir_beam[2].alarm_pin", "ir_beam[2].tamper_pin"} <= keys
    assert len(cfg.detectors) == 3


def test_a_valid_config_with_defaults() -> None:
    problems = Problems()
    cfg = parse_config({"ir_beam": [{"zone": "north-1", "alarm_pin": 17, "tamper_pin": 27, "env_pin": 22,
                                     "contact": "no", "pull": "down"}]}, problems)
    assert not problems
    det = cfg.detectors[0]
    assert (det.debounce_ms, det.group, det.schedule, det.trouble_after_s, det.swinger_limit) == \
        (30.0, "default", None, 10.0, 3)
    # NO contact with a pull-down: the contact switches the pin to 3V3, so alarm reads high
    assert det.alarm.active_level is True
    assert cfg.settings.pin_factory == "default"


# -- the zone state machine, fed with timestamps ------------------------------------------

def engine_for(detectors: list[dict], settings: dict | None = None, saved: dict | None = None,
               schedules: dict | None = None):
    from drivers.ir_beam.engine import Engine
    raw = {"ir_beam": detectors, "ir_beam_settings": settings or {}}
    if schedules:
        raw["ir_beam_schedules"] = schedules
    problems = Problems()
    cfg = parse_config(raw, problems)
    assert not problems, problems.items
    return Engine(cfg, SH, saved)


def test_engine_alarm_restore_swinger_and_snapshot_round_trip() -> None:
    eng = engine_for([{"zone": "z", "alarm_pin": 17, "tamper_pin": 27, "schedule": "always",
                       "swinger_limit": 2}])
    assert [o.type for o in eng.begin(0.0, at(0))] == ["armed"]
    eng.input_opened("z", "alarm", False, 0.0, at(0))     # NC + pull-up: low = closed = normal
    eng.input_opened("z", "tamper", False, 0.0, at(0))
    outs = []
    for start in (10.0, 20.0):
        outs += eng.edge("z", "alarm", True, start, at(start))
        outs += eng.tick(start + 0.05, at(start + 0.05))
        outs += eng.edge("z", "alarm", False, start + 1, at(start + 1))
        outs += eng.tick(start + 1.05, at(start + 1.05))
    assert [o.type for o in outs] == ["alarm", "restore", "alarm", "bypassed", "restore"]
    assert outs[0].ts == at(10.0) and outs[1].data["duration_s"] == 1.0
    # open again and save in the middle of it: a new engine neither repeats nor loses it
    eng.edge("z", "tamper", True, 30.0, at(30.0))
    assert [o.type for o in eng.tick(30.1, at(30.1))] == ["tamper"]
    saved = eng.snapshot()
    again = engine_for([{"zone": "z", "alarm_pin": 17, "tamper_pin": 27, "schedule": "always",
                         "swinger_limit": 2}], saved=saved)
    assert again.begin(100.0, at(40)) == []
    assert again.zones["z"].mode == "bypassed"
    assert again.input_opened("z", "tamper", True, 100.0, at(40)) == []
    outs = again.edge("z", "tamper", False, 101.0, at(41)) + again.tick(101.1, at(41.1))
    assert [(o.type, o.data["duration_s"]) for o in outs] == [("tamper_restore", 11.0)]


def test_engine_next_deadline_drives_the_worker() -> None:
    eng = engine_for([{"zone": "z", "alarm_pin": 17, "tamper_pin": 27, "schedule": "always"}])
    eng.begin(0.0, at(0))
    eng.input_opened("z", "alarm", False, 0.0, at(0))
    eng.input_opened("z", "tamper", False, 0.0, at(0))
    assert eng.next_deadline() is None
    eng.edge("z", "alarm", True, 5.0, at(5))
    assert eng.next_deadline() == 5.030                   # the debounce
    eng.tick(5.030, at(5.03))
    assert eng.next_deadline() == 15.0                    # stuck-open trouble at 10 s
    assert [o.data["reason"] for o in eng.tick(15.0, at(15))] == ["stuck_open"]
    assert eng.next_deadline() is None

"""The IR beam driver's config: `[[ir_beam]]` detectors, `[ir_beam_settings]`, `[ir_beam_schedules]`.

`parse_config` is pure: it reads the raw TOML values, reports every problem
with its full key (`ir_beam[1].alarm_pin`) and returns an `IrBeamConfig`
that the driver and `anfang check-config` both use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.configfile import Problems, Section
from gateway.events import DEVICE_PATTERN
from drivers.ir_beam.schedule import ALWAYS, Schedule, parse_schedule

DETECTORS_KEY = "ir_beam"
SETTINGS_KEY = "ir_beam_settings"
SCHEDULES_KEY = "ir_beam_schedules"

PIN_FACTORIES = ("default", "lgpio", "mock")
CONTACTS = ("nc", "no")
PULLS = ("up", "down", "external-up", "external-down")
INPUTS = ("alarm", "tamper", "env")


@dataclass(frozen=True)
class InputConfig:
    """One contact input on one GPIO."""

    pin: int | str          # BCM number, or a gpiozero pin name ("GPIO17", "BOARD11")
    contact: str            # "nc": opens on alarm; "no": closes on alarm
    pull: str               # see PULLS

    @property
    def open_level(self) -> bool:
        """The pin level while the contact is open (what the pull resistor gives)."""
        return self.pull in ("up", "external-up")

    @property
    def active_level(self) -> bool:
        """The pin level that means alarm / tamper / fog."""
        return self.open_level if self.contact == "nc" else not self.open_level


@dataclass(frozen=True)
class DetectorConfig:
    """One beam receiver: one zone."""

    zone: str
    group: str
    alarm: InputConfig
    tamper: InputConfig
    env: InputConfig | None
    debounce_ms: float
    schedule: str | None           # a name in `schedules`, "always", or None: by command only
    adjacent: tuple[str, ...]
    trouble_after_s: float
    swinger_limit: int

    def inputs(self) -> dict[str, InputConfig]:
        out = {"alarm": self.alarm, "tamper": self.tamper}
        if self.env is not None:
            out["env"] = self.env
        return out


@dataclass(frozen=True)
class Settings:
    pin_factory: str = "default"
    timezone: str = ""             # empty: the site's time zone
    confirm_window_s: float = 10.0
    swinger_limit: int = 3
    trouble_after_s: float = 10.0
    chatter_edges: int = 20
    chatter_window_s: float = 10.0
    chatter_quiet_s: float = 5.0
    retry_max_s: float = 60.0


@dataclass(frozen=True)
class IrBeamConfig:
    settings: Settings = field(default_factory=Settings)
    detectors: tuple[DetectorConfig, ...] = ()
    schedules: Mapping[str, Schedule] = field(default_factory=dict)

    def schedule_for(self, det: DetectorConfig) -> Schedule | None:
        if det.schedule is None:
            return None
        if det.schedule == "always":
            return self.schedules.get("always", ALWAYS)
        return self.schedules.get(det.schedule)


def parse_config(raw: Mapping[str, Any], problems: Problems, base_dir: Path | None = None) -> IrBeamConfig:
    top = Section(dict(raw), "", problems, base_dir)
    settings = _parse_settings(top.section(SETTINGS_KEY))
    schedules = _parse_schedules(raw.get(SCHEDULES_KEY), problems)
    top.mark_seen(SCHEDULES_KEY)
    detectors = [_parse_detector(s, settings) for s in top.sections(DETECTORS_KEY)]
    top.finish()
    _cross_check(detectors, schedules, problems)
    return IrBeamConfig(settings, tuple(detectors), schedules)


def _parse_settings(s: Section) -> Settings:
    d = Settings()
    tz = s.str("timezone", d.timezone, nonempty=False)
    if tz:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            s.error("timezone", f"unknown time zone {tz!r} (use an IANA name like \"Asia/Shanghai\")")
    out = Settings(
        pin_factory=s.str("pin_factory", d.pin_factory, choices=PIN_FACTORIES),
        timezone=tz,
        confirm_window_s=s.float("confirm_window_s", d.confirm_window_s, min=0.0, max=3600.0),
        swinger_limit=s.int("swinger_limit", d.swinger_limit, min=0, max=1000),
        trouble_after_s=s.float("trouble_after_s", d.trouble_after_s, min=0.5, max=3600.0),
        chatter_edges=s.int("chatter_edges", d.chatter_edges, min=4, max=100000),
        chatter_window_s=s.float("chatter_window_s", d.chatter_window_s, min=0.01, max=3600.0),
        chatter_quiet_s=s.float("chatter_quiet_s", d.chatter_quiet_s, min=0.1, max=3600.0),
        retry_max_s=s.float("retry_max_s", d.retry_max_s, min=1.0, max=3600.0),
    )
    s.finish()
    return out


def _parse_schedules(raw: Any, problems: Problems) -> dict[str, Schedule]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.add(SCHEDULES_KEY, "expected a table of schedules, e.g. night = [{days = [...], from = ..., to = ...}]")
        return {}
    out: dict[str, Schedule] = {}
    for name, windows in raw.items():
        out[name] = parse_schedule(name, windows, f"{SCHEDULES_KEY}.{name}", problems)
    return out


def _pin(s: Section, name: str, required: bool) -> int | str | None:
    if not s.has(name):
        s.mark_seen(name)
        if required:
            s.error(name, "is required (a BCM GPIO number like 17, or a pin name like \"GPIO17\")")
        return None
    value = s.raw[name]
    s.mark_seen(name)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        s.error(name, "expected a BCM GPIO number like 17, or a pin name like \"GPIO17\"")
        return None
    if isinstance(value, int) and not 0 <= value <= 53:
        s.error(name, f"GPIO number must be between 0 and 53, got {value}")
        return None
    if isinstance(value, str) and not value.strip():
        s.error(name, "must not be empty")
        return None
    return value


def _parse_detector(s: Section, settings: Settings) -> DetectorConfig:
    zone = s.str("zone", pattern=DEVICE_PATTERN)
    group = s.str("group", "default", pattern=DEVICE_PATTERN)
    contact = s.str("contact", "nc", choices=CONTACTS)
    pull = s.str("pull", "up", choices=PULLS)
    tamper_contact = s.str("tamper_contact", contact, choices=CONTACTS)
    env_contact = s.str("env_contact", contact, choices=CONTACTS)
    alarm_pin = _pin(s, "alarm_pin", True)
    tamper_pin = _pin(s, "tamper_pin", True)
    env_pin = _pin(s, "env_pin", False)
    debounce = s.float("debounce_ms", 30.0, min=0.0, max=5000.0)
    schedule = s.str("schedule", "") or None
    adjacent = s.list("adjacent", [], item_type=str)
    trouble_after = s.float("trouble_after_s", settings.trouble_after_s, min=0.5, max=3600.0)
    swinger = s.int("swinger_limit", settings.swinger_limit, min=0, max=1000)
    s.finish()
    return DetectorConfig(
        zone=zone, group=group,
        alarm=InputConfig(alarm_pin if alarm_pin is not None else -1, contact, pull),
        tamper=InputConfig(tamper_pin if tamper_pin is not None else -1, tamper_contact, pull),
        env=InputConfig(env_pin, env_contact, pull) if env_pin is not None else None,
        debounce_ms=debounce, schedule=schedule,
        adjacent=tuple(a for a in adjacent if isinstance(a, str)),
        trouble_after_s=trouble_after, swinger_limit=swinger)


def _pin_key(pin: int | str) -> str:
    if isinstance(pin, int):
        return f"GPIO{pin}"
    p = pin.strip().upper()
    if p.startswith("BCM") and p[3:].isdigit():
        return f"GPIO{int(p[3:])}"
    if p.startswith("GPIO") and p[4:].isdigit():
        return f"GPIO{int(p[4:])}"
    if p.isdigit():
        return f"GPIO{int(p)}"
    return p


def _cross_check(dets: list[DetectorConfig], schedules: Mapping[str, Schedule], problems: Problems) -> None:
    zones: dict[str, int] = {}
    pins: dict[str, str] = {}
    for i, d in enumerate(dets):
        key = f"{DETECTORS_KEY}[{i}]"
        if d.zone in zones:
            problems.add(f"{key}.zone", f"zone {d.zone!r} is already used by {DETECTORS_KEY}[{zones[d.zone]}]")
        elif d.zone:
            zones[d.zone] = i
        for name, inp in d.inputs().items():
            if inp.pin == -1:
                continue
            pk = _pin_key(inp.pin)
            here = f"{key}.{name}_pin"
            if pk in pins:
                problems.add(here, f"pin {inp.pin!r} is already used by {pins[pk]}")
            else:
                pins[pk] = here
        if d.schedule is not None and d.schedule != "always" and d.schedule not in schedules:
            known = ", ".join(sorted(set(schedules) | {"always"}))
            problems.add(f"{key}.schedule", f"no schedule named {d.schedule!r} (known: {known})")
    for i, d in enumerate(dets):
        for j, a in enumerate(d.adjacent):
            if a == d.zone:
                problems.add(f"{DETECTORS_KEY}[{i}].adjacent[{j}]", "a zone cannot be adjacent to itself")
            elif a not in zones:
                problems.add(f"{DETECTORS_KEY}[{i}].adjacent[{j}]", f"no zone named {a!r}")

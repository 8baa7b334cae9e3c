"""Scenarios: which simulated devices exist, and a timeline of what happens to them.

A scenario is TOML (a file, or a built-in name: `sim/scenarios/NAME.toml`, or
a folder `sim/scenarios/NAME/` whose files are merged, one per device family):

    description = "an intrusion during a broker outage"
    duration = 40            # seconds, unless `anfang sim --duration` says otherwise
    seed = 7

    [[device]]
    kind = "ir_beam"         # see sim/registry.py
    name = "north-wall-1"
    params = { ... }         # for that simulated device

    [[action]]
    at = 3.0                 # seconds after start
    device = "north-wall-1"  # omitted for gateway-level actions
    do = "intrude"
    duration = 1.5           # any other key is a parameter of the action

Gateway-level actions (no `device`), each with an optional `until` (seconds
from start) that undoes it:

- `broker_down`, `broker_up` (only when `anfang sim` runs its own broker);
- `network_blackhole`, `network_slow` (`latency`, seconds, default 2),
  `network_reset`, `network_ok`: the gateway then reaches the broker through a
  fault proxy (sim/faults.py);
- `clock_step` (`seconds`, forward or back): the wall clock of the gateway;
- `disk_full` (`headroom_kb`, default 64): the event database may grow only
  that much more; `disk_ok` lifts the cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.configfile import ConfigError, Problems, Section, load_toml
from gateway.events import DEVICE_PATTERN

# gateway-level action -> {parameter: (type, required)}
GATEWAY_ACTION_PARAMS: dict[str, dict[str, tuple[type, bool]]] = {
    "broker_down": {"until": (float, False)},
    "broker_up": {},
    "network_blackhole": {"until": (float, False)},
    "network_slow": {"latency": (float, False), "until": (float, False)},
    "network_reset": {"until": (float, False)},
    "network_ok": {},
    "clock_step": {"seconds": (float, True)},
    "disk_full": {"headroom_kb": (float, False), "until": (float, False)},
    "disk_ok": {},
}
GATEWAY_ACTIONS = tuple(GATEWAY_ACTION_PARAMS)


def check_gateway_action(do: str, params: dict[str, Any], key: str, problems: Problems) -> None:
    """Report unknown gateway actions, unknown parameters and parameters of the wrong type."""
    spec = GATEWAY_ACTION_PARAMS.get(do)
    if spec is None:
        problems.add(f"{key}.do", f"{do!r} needs a device (gateway-level actions: {', '.join(GATEWAY_ACTIONS)})")
        return
    for name, value in params.items():
        if name not in spec:
            problems.add(f"{key}.{name}", f"unknown parameter of {do} (known: {', '.join(spec) or 'none'})")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.add(f"{key}.{name}", f"expected a number, got {type(value).__name__}")
        elif name in ("until", "latency", "headroom_kb") and value < 0:
            problems.add(f"{key}.{name}", f"must be at least 0, got {value}")
        elif value != value or value in (float("inf"), float("-inf")):
            problems.add(f"{key}.{name}", "must be a finite number")
    for name, (_t, required) in spec.items():
        if required and name not in params:
            problems.add(f"{key}.{name}", f"is required for {do}")


@dataclass(frozen=True)
class DeviceSpec:
    kind: str
    name: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Action:
    at: float
    do: str
    device: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scenario:
    name: str
    description: str = ""
    duration: float | None = None
    seed: int = 1
    devices: list[DeviceSpec] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)


def _builtin_root() -> Path:
    return Path(str(resources.files("sim").joinpath("scenarios")))


def builtin_scenarios() -> list[str]:
    root = _builtin_root()
    names = {p.stem for p in root.glob("*.toml")} | {p.name for p in root.iterdir() if p.is_dir()}
    return sorted(n for n in names if not n.startswith("_"))


def _parse(raw: dict[str, Any], key: str, problems: Problems, base: Scenario) -> None:
    root = Section(raw, key, problems)
    desc = root.str("description", "", nonempty=False)
    if desc:
        base.description = f"{base.description} {desc}".strip()
    if root.has("duration"):
        base.duration = root.float("duration", min=0.1)
    if root.has("seed"):
        base.seed = root.int("seed")
    for sec in root.sections("device"):
        base.devices.append(DeviceSpec(kind=sec.str("kind"), name=sec.str("name", pattern=DEVICE_PATTERN),
                                       params=dict(sec.section("params").raw)))
        sec.finish()
    for sec in root.sections("action"):
        at = sec.float("at", min=0.0)
        do = sec.str("do")
        device = sec.str("device", "") or None
        sec.mark_seen(*sec.raw.keys())
        params = {k: v for k, v in sec.raw.items() if k not in ("at", "do", "device")}
        base.actions.append(Action(at=at, do=do, device=device, params=params))
    root.finish()


def load_scenario(name_or_path: str) -> Scenario:
    """Load a built-in scenario by name, or a scenario file by path; ConfigError on problems."""
    problems = Problems()
    path = Path(name_or_path)
    root = _builtin_root()
    if path.suffix == ".toml" or path.exists():
        files = [path]
        scenario = Scenario(name=path.stem)
    elif (root / f"{name_or_path}.toml").exists():
        files = [root / f"{name_or_path}.toml"]
        scenario = Scenario(name=name_or_path)
    elif (root / name_or_path).is_dir():
        files = sorted((root / name_or_path).glob("*.toml"))
        scenario = Scenario(name=name_or_path)
    else:
        raise ConfigError([_problem("scenario", f"no scenario file or built-in scenario {name_or_path!r} "
                                                f"(built-in: {', '.join(builtin_scenarios())})")])
    raws: list[tuple[str, dict[str, Any]]] = []
    for f in files:
        raw, load_problems = load_toml(f, "scenario")
        problems.items.extend(load_problems.items)
        raws.append((f.stem if len(files) > 1 else "", raw))
    return scenario_from_raw(raws, scenario, problems, source=f"scenario {name_or_path}")


def scenario_from_raw(raws: list[tuple[str, dict[str, Any]]], scenario: Scenario, problems: Problems | None = None,
                      source: str = "scenario") -> Scenario:
    """Build a scenario from parsed TOML documents (one per file); ConfigError listing every problem."""
    problems = problems or Problems()
    for key, raw in raws:
        _parse(raw, key, problems, scenario)
    names = [d.name for d in scenario.devices]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.add("device", f"device name {dup!r} used more than once")
    for i, act in enumerate(scenario.actions):
        if act.device is None:
            check_gateway_action(act.do, act.params, f"action[{i}]", problems)
        if act.device is not None and act.device not in names:
            problems.add(f"action[{i}].device", f"no device named {act.device!r} in the scenario")
    problems.raise_if_any(source)
    scenario.actions.sort(key=lambda a: a.at)
    return scenario


def _problem(key: str, message: str):  # noqa: ANN202 - tiny helper
    from gateway.configfile import Problem
    return Problem(key, message)

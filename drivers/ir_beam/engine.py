"""The zone state machine: debounced contacts + arm state -> the events of issue 3.

`Engine` is pure logic: no threads, no clock, no pins, no disk. The driver
feeds it raw edges (with the instant they were seen), calls `tick(now)` when
`next_deadline()` comes or the schedule may have moved, hands it command
arguments, and writes out the `Emission` records it returns as events, in order.
Its `snapshot()` is what survives a restart; `Engine(..., saved=snapshot)`
takes it back, so an alarm open across a restart is neither repeated nor lost.

Rules (see docs/ir_beam.md):
- alarm / restore: only while the zone is armed (restore follows any alarm);
  interruptions of a zone that is not armed are counted for health.
- tamper / tamper_restore: at any time; severity alarm when armed, else warning.
- environmental / environmental_restore: at any time.
- trouble reason=stuck_open once when the alarm contact stays active past
  `trouble_after_s`; trouble_restore when it closes.
- chatter: `chatter_edges` raw edges within `chatter_window_s` on one input is
  one trouble reason=chatter; that input's events are held back until it has
  been quiet for `chatter_quiet_s`, then its settled state is reported.
- swinger: after `swinger_limit` alarms in one armed period the zone is bypassed.
- intrusion_confirmed: alarms on two adjacent zones within `confirm_window_s`.
- schedules arm and disarm; a command overrides until the schedule's next change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from gateway.clock import iso_utc, parse_iso_utc
from gateway.driver import Emission
from drivers.ir_beam.config import DetectorConfig, InputConfig, IrBeamConfig, Settings
from drivers.ir_beam.debounce import Change, ChatterDetector, Debouncer
from drivers.ir_beam.schedule import Schedule

STATE_VERSION = 1
MODES = ("armed", "disarmed", "bypassed")
COMMAND_MODES = {"arm": "armed", "disarm": "disarmed", "bypass": "bypassed"}
SCHEDULE_CHECK_S = 0.25
_ACTIVE_EVENT = {"alarm": "alarm", "tamper": "tamper", "env": "environmental"}
_RESTORE_EVENT = {"alarm": "restore", "tamper": "tamper_restore", "env": "environmental_restore"}


class BadCommand(ValueError):
    """Command arguments the engine refuses; the message says why."""


@dataclass
class InputState:
    name: str                       # alarm | tamper | env
    cfg: InputConfig
    chatter: ChatterDetector
    deb: Debouncer | None = None    # None while the pin is not open
    reported: bool = False          # an alarm/tamper/environmental event is outstanding
    since_mono: float | None = None
    since_wall: datetime | None = None
    fault: str = ""                 # why the pin could not be opened


@dataclass
class Zone:
    cfg: DetectorConfig
    schedule: Schedule | None
    inputs: dict[str, InputState]
    mode: str = "disarmed"
    source: str = "default"         # schedule | command | swinger | default
    until: datetime | None = None   # when a command/swinger override ends (next schedule change)
    alarms_in_period: int = 0
    troubles: set[str] = field(default_factory=set)   # stuck_open, chatter:<input>, pin_fault:<input>
    interruptions_not_armed: int = 0
    suppressed: int = 0             # debounced changes held back by chatter
    restored: bool = False          # state came from a snapshot

    @property
    def name(self) -> str:
        return self.cfg.zone

    def base(self) -> dict[str, Any]:
        return {"zone": self.cfg.zone, "group": self.cfg.group}


def _dur(start_mono: float | None, start_wall: datetime | None, end_mono: float, end_wall: datetime) -> float:
    if start_mono is not None:
        return round(max(0.0, end_mono - start_mono), 3)
    if start_wall is not None:
        return round(max(0.0, (end_wall - start_wall).total_seconds()), 3)
    return 0.0


class Engine:
    """All zones of one driver."""

    def __init__(self, config: IrBeamConfig, tz: ZoneInfo, saved: Mapping[str, Any] | None = None) -> None:
        self.config = config
        self.settings: Settings = config.settings
        self.tz = tz
        self.zones: dict[str, Zone] = {}
        self.adjacent: dict[str, set[str]] = {}
        self._last_alarm: dict[str, float] = {}
        self._confirmed: dict[frozenset[str], float] = {}
        self._last_schedule_check = float("-inf")
        self.dirty = True
        s = self.settings
        for det in config.detectors:
            inputs = {name: InputState(name, inp, ChatterDetector(s.chatter_edges, s.chatter_window_s,
                                                                  s.chatter_quiet_s))
                      for name, inp in det.inputs().items()}
            self.zones[det.zone] = Zone(det, config.schedule_for(det), inputs)
            self.adjacent.setdefault(det.zone, set())
        for det in config.detectors:
            for a in det.adjacent:
                if a in self.zones and a != det.zone:
                    self.adjacent[det.zone].add(a)
                    self.adjacent[a].add(det.zone)
        self._load(saved or {})

    # -- persistence -----------------------------------------------------
    def _load(self, saved: Mapping[str, Any]) -> None:
        zones = saved.get("zones") if saved.get("version") == STATE_VERSION else None
        if not isinstance(zones, Mapping):
            return
        same_tz = saved.get("timezone") == self.tz.key
        for name, rec in zones.items():
            z = self.zones.get(name)
            if z is None or not isinstance(rec, Mapping):
                continue
            try:
                mode = rec["mode"] if rec.get("mode") in MODES else "disarmed"
                until = parse_iso_utc(rec["until"]) if rec.get("until") else None
                z.mode, z.source, z.until = mode, str(rec.get("source", "default")), until
                z.alarms_in_period = int(rec.get("alarms_in_period", 0))
                z.troubles = {str(t) for t in rec.get("troubles", [])}
                for inp_name, since in dict(rec.get("active", {})).items():
                    inp = z.inputs.get(inp_name)
                    if inp is not None:
                        inp.reported, inp.since_wall = True, parse_iso_utc(since)
            except (KeyError, TypeError, ValueError):
                continue
            if z.schedule is not None and (rec.get("schedule") != z.cfg.schedule or not same_tz):
                z.source, z.until = "schedule", None     # the schedule or its time zone changed
            elif z.schedule is None and z.source == "schedule":
                z.source, z.until = "default", None
            z.restored = True

    def snapshot(self) -> dict[str, Any]:
        zones: dict[str, Any] = {}
        for z in self.zones.values():
            zones[z.name] = {
                "mode": z.mode, "source": z.source,
                "until": iso_utc(z.until) if z.until else None,
                "schedule": z.cfg.schedule, "alarms_in_period": z.alarms_in_period,
                "troubles": sorted(z.troubles),
                "active": {i.name: iso_utc(i.since_wall) for i in z.inputs.values()
                           if i.reported and i.since_wall is not None},
            }
        return {"version": STATE_VERSION, "timezone": self.tz.key, "zones": zones}

    # -- life cycle ------------------------------------------------------
    def begin(self, mono: float, wall: datetime) -> list[Emission]:
        """Settle every zone's arm state at start (restored or first time)."""
        outs: list[Emission] = []
        for z in self.zones.values():
            if z.restored:
                outs += self._apply_schedule(z, mono, wall)
            elif z.schedule is not None:
                desired = "armed" if z.schedule.armed_at(wall, self.tz) else "disarmed"
                outs += self._set_mode(z, desired, "schedule", None, mono, wall, initial=True)
            else:
                outs += self._set_mode(z, "disarmed", "default", None, mono, wall, initial=True)
        self._last_schedule_check = mono
        return outs

    def input_opened(self, zone: str, name: str, level: bool, mono: float, wall: datetime) -> list[Emission]:
        """A pin is open and reads `level`; start debouncing from there."""
        z = self.zones[zone]
        inp = z.inputs[name]
        inp.deb = Debouncer(z.cfg.debounce_ms / 1000.0, level == inp.cfg.active_level, mono, wall)
        inp.fault = ""
        outs: list[Emission] = []
        key = f"pin_fault:{name}"
        if key in z.troubles:
            z.troubles.discard(key)
            self.dirty = True
            outs.append(Emission(zone, "trouble_restore", "info",
                                 {**z.base(), "reason": "pin_fault", "input": name, "pin": inp.cfg.pin}, wall))
        return outs + self._reconcile(z, inp, mono, wall, new=False)

    def input_failed(self, zone: str, name: str, error: str, wall: datetime) -> list[Emission]:
        """A pin could not be opened; reported once until it opens."""
        z = self.zones[zone]
        inp = z.inputs[name]
        inp.deb, inp.fault = None, error
        key = f"pin_fault:{name}"
        if key in z.troubles:
            return []
        z.troubles.add(key)
        self.dirty = True
        return [Emission(zone, "trouble", "warning",
                         {**z.base(), "reason": "pin_fault", "input": name, "pin": inp.cfg.pin, "error": error}, wall)]

    # -- signals ---------------------------------------------------------
    def edge(self, zone: str, name: str, level: bool, mono: float, wall: datetime) -> list[Emission]:
        """One raw edge, stamped when it was seen."""
        z = self.zones[zone]
        inp = z.inputs[name]
        if inp.deb is None:
            return []
        outs: list[Emission] = []
        change = inp.deb.edge(level == inp.cfg.active_level, mono, wall)
        if change is not None:
            outs += self._changed(z, inp, change, mono, wall)
        if inp.chatter.edge(mono):
            z.troubles.add(f"chatter:{name}")
            self.dirty = True
            outs.append(Emission(zone, "trouble", "warning",
                                 {**z.base(), "reason": "chatter", "input": name,
                                  "edges_per_s": round(inp.chatter.edge_rate(), 1)}, wall))
        return outs

    def tick(self, mono: float, wall: datetime) -> list[Emission]:
        """Run what is due by `mono`: debounce ends, chatter ends, stuck contacts, schedules."""
        outs: list[Emission] = []
        for z in self.zones.values():
            for inp in z.inputs.values():
                if inp.deb is None:
                    continue
                change = inp.deb.poll(mono)
                if change is not None:
                    outs += self._changed(z, inp, change, mono, wall)
                if inp.chatter.poll(mono):
                    z.troubles.discard(f"chatter:{inp.name}")
                    self.dirty = True
                    outs.append(Emission(z.name, "trouble_restore", "info",
                                         {**z.base(), "reason": "chatter", "input": inp.name,
                                          "held_back": z.suppressed}, wall))
                    outs += self._reconcile(z, inp, mono, wall, new=False)
            outs += self._check_stuck(z, mono)
        if mono - self._last_schedule_check >= SCHEDULE_CHECK_S:
            self._last_schedule_check = mono
            for z in self.zones.values():
                outs += self._apply_schedule(z, mono, wall)
        return outs

    def next_deadline(self) -> float | None:
        """The earliest monotonic instant at which `tick` has something to do."""
        best: float | None = None
        for z in self.zones.values():
            for inp in z.inputs.values():
                if inp.deb is None:
                    continue
                for d in (inp.deb.deadline(), inp.chatter.deadline(), self._stuck_deadline(z, inp)):
                    if d is not None and (best is None or d < best):
                        best = d
        return best

    # -- commands --------------------------------------------------------
    def command(self, action: str, args: Mapping[str, Any], mono: float, wall: datetime
                ) -> tuple[dict[str, Any], list[Emission]]:
        if action not in COMMAND_MODES:
            raise BadCommand(f"unknown action {action!r}")
        targets = self._targets(args)
        mode = COMMAND_MODES[action]
        outs: list[Emission] = []
        changed: list[dict[str, Any]] = []
        unchanged: list[str] = []
        for z in targets:
            if z.mode == mode:
                unchanged.append(z.name)
                continue
            until = z.schedule.next_change(wall, self.tz) if z.schedule is not None else None
            before = z.mode
            outs += self._set_mode(z, mode, "command", until, mono, wall)
            changed.append({"zone": z.name, "from": before, "to": mode,
                            "until": iso_utc(until) if until else None})
        return {"action": action, "changed": changed, "unchanged": unchanged}, outs

    def _targets(self, args: Mapping[str, Any]) -> list[Zone]:
        if not isinstance(args, Mapping):
            raise BadCommand("arguments must be a JSON object like {\"zones\": [...]} or {\"group\": \"...\"}")
        unknown = sorted(set(args) - {"zones", "group"})
        if unknown:
            raise BadCommand(f"unknown argument(s) {', '.join(unknown)}; give \"zones\" or \"group\"")
        if ("zones" in args) == ("group" in args):
            raise BadCommand("give exactly one of \"zones\" (a list of zone names) or \"group\" (a group name)")
        if "zones" in args:
            zones = args["zones"]
            if not isinstance(zones, list) or not zones or not all(isinstance(x, str) for x in zones):
                raise BadCommand("\"zones\" must be a non-empty list of zone names")
            missing = [x for x in zones if x not in self.zones]
            if missing:
                raise BadCommand(f"unknown zone(s): {', '.join(missing)} (known: {', '.join(self.zones)})")
            wanted = set(zones)
            return [z for z in self.zones.values() if z.name in wanted]
        group = args["group"]
        if not isinstance(group, str):
            raise BadCommand("\"group\" must be a string")
        found = [z for z in self.zones.values() if z.cfg.group == group]
        if not found:
            groups = sorted({z.cfg.group for z in self.zones.values()})
            raise BadCommand(f"unknown group {group!r} (known: {', '.join(groups)})")
        return found

    # -- internals -------------------------------------------------------
    def _changed(self, z: Zone, inp: InputState, change: Change, mono: float, wall: datetime) -> list[Emission]:
        if inp.chatter.chattering:
            z.suppressed += 1
            return []
        return self._reconcile(z, inp, mono, wall, new=True)

    def _reconcile(self, z: Zone, inp: InputState, mono: float, wall: datetime, *, new: bool,
                   at_arming: bool = False) -> list[Emission]:
        """Bring the reported state of one input in line with its debounced state."""
        if inp.deb is None or inp.chatter.chattering:
            return []
        active = inp.deb.stable
        t_mono, t_wall = inp.deb.stable_since, inp.deb.stable_since_wall
        outs: list[Emission] = []
        if active and not inp.reported:
            if inp.name == "alarm":
                if z.mode != "armed":
                    if new:
                        z.interruptions_not_armed += 1
                    return outs
                if at_arming:
                    t_mono, t_wall = mono, wall
                inp.reported, inp.since_mono, inp.since_wall = True, t_mono, t_wall
                z.alarms_in_period += 1
                self.dirty = True
                data = {**z.base(), "alarms_in_period": z.alarms_in_period}
                if at_arming:
                    data["at_arming"] = True
                outs.append(Emission(z.name, "alarm", "alarm", data, t_wall))
                if not at_arming:
                    outs += self._confirm(z, t_mono, t_wall)
                limit = z.cfg.swinger_limit
                if limit and z.alarms_in_period >= limit:
                    until = z.schedule.next_change(wall, self.tz) if z.schedule is not None else None
                    outs += self._set_mode(z, "bypassed", "swinger", until, mono, wall)
            else:
                inp.reported, inp.since_mono, inp.since_wall = True, t_mono, t_wall
                self.dirty = True
                sev = ("alarm" if z.mode == "armed" else "warning") if inp.name == "tamper" else "warning"
                outs.append(Emission(z.name, _ACTIVE_EVENT[inp.name], sev, {**z.base(), "armed": z.mode == "armed"}
                                     if inp.name == "tamper" else z.base(), t_wall))
        elif not active and inp.reported:
            duration = _dur(inp.since_mono, inp.since_wall, t_mono, t_wall)
            inp.reported, inp.since_mono, inp.since_wall = False, None, None
            self.dirty = True
            outs.append(Emission(z.name, _RESTORE_EVENT[inp.name], "info", {**z.base(), "duration_s": duration},
                                 t_wall))
        if inp.name == "alarm" and not active and "stuck_open" in z.troubles:
            z.troubles.discard("stuck_open")
            self.dirty = True
            outs.append(Emission(z.name, "trouble_restore", "info",
                                 {**z.base(), "reason": "stuck_open", "input": "alarm"}, t_wall))
        return outs

    def _stuck_deadline(self, z: Zone, inp: InputState) -> float | None:
        if (inp.name != "alarm" or inp.deb is None or not inp.deb.stable or inp.chatter.chattering
                or "stuck_open" in z.troubles):
            return None
        return inp.deb.stable_since + z.cfg.trouble_after_s

    def _check_stuck(self, z: Zone, mono: float) -> list[Emission]:
        inp = z.inputs["alarm"]
        deadline = self._stuck_deadline(z, inp)
        if deadline is None or inp.deb is None or mono < deadline - 1e-9:
            return []
        z.troubles.add("stuck_open")
        self.dirty = True
        ts = inp.deb.stable_since_wall + timedelta(seconds=z.cfg.trouble_after_s)
        return [Emission(z.name, "trouble", "warning",
                         {**z.base(), "reason": "stuck_open", "input": "alarm",
                          "open_s": z.cfg.trouble_after_s}, ts)]

    def _confirm(self, z: Zone, t_mono: float, t_wall: datetime) -> list[Emission]:
        window = self.settings.confirm_window_s
        self._last_alarm[z.name] = t_mono
        outs: list[Emission] = []
        if window <= 0:
            return outs
        for other in sorted(self.adjacent.get(z.name, ())):
            t_other = self._last_alarm.get(other)
            if t_other is None or abs(t_mono - t_other) > window:
                continue
            pair = frozenset((z.name, other))
            last = self._confirmed.get(pair)
            if last is not None and t_mono - last <= window:
                continue
            self._confirmed[pair] = t_mono
            outs.append(Emission(z.name, "intrusion_confirmed", "critical",
                                 {"zones": [other, z.name], "group": z.cfg.group,
                                  "interval_s": round(abs(t_mono - t_other), 3)}, t_wall))
        return outs

    def _apply_schedule(self, z: Zone, mono: float, wall: datetime) -> list[Emission]:
        if z.schedule is None:
            return []
        if z.source != "schedule":
            if z.until is None or wall < z.until:
                return []                       # a command or swinger override still holds
            z.source, z.until = "schedule", None
            self.dirty = True
        desired = "armed" if z.schedule.armed_at(wall, self.tz) else "disarmed"
        if z.mode == desired:
            return []
        return self._set_mode(z, desired, "schedule", None, mono, wall)

    def _set_mode(self, z: Zone, mode: str, source: str, until: datetime | None, mono: float,
                  wall: datetime, *, initial: bool = False) -> list[Emission]:
        before = z.mode
        z.mode, z.source, z.until = mode, source, until
        self.dirty = True
        if mode == "armed" and (before != "armed" or initial):
            z.alarms_in_period = 0
        data: dict[str, Any] = {**z.base(), "source": source, "previous": None if initial else before,
                                "until": iso_utc(until) if until else None}
        if source == "swinger":
            data["alarms_in_period"] = z.alarms_in_period
        severity = "warning" if mode == "bypassed" else "info"
        outs = [Emission(z.name, mode, severity, data, wall)]
        if mode == "armed":
            outs += self._reconcile(z, z.inputs["alarm"], mono, wall, new=False, at_arming=True)
        return outs

    # -- health ----------------------------------------------------------
    def device_states(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for z in self.zones.values():
            parts = [z.mode]
            if z.inputs["alarm"].reported:
                parts.append("alarm")
            if z.troubles:
                parts.append("trouble: " + ", ".join(sorted(z.troubles)))
            out[z.name] = "; ".join(parts)
        return out

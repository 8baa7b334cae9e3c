"""The state of one supervised fire pump panel, and the events its polls produce.

`PanelMonitor` is fed the outcome of each poll (decoded values and per-point
faults, or a failure) and returns what to report: alarm / restore pairs
(`phase_loss` / `phase_loss_restore`, ...), `pump_started` / `pump_stopped`
with cause and run duration, `not_in_auto`, `comm_loss` after N failed polls
(and its restore), `data_fault` for values that make no physical sense, and
the test-run records of `compliance`. Telemetry is offered on a period and on
a change beyond a reading's deadband. No I/O here: times come in as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.driver import Emission
from drivers.fire_pump.compliance import Compliance, RunInfo
from drivers.fire_pump.regmap import RegisterMap

TEST_CAUSES = ("weekly_test", "manual", "test")


@dataclass
class PanelSettings:
    comm_loss_after: int = 3           # failed polls in a row before `comm_loss`
    telemetry_s: float = 60.0


@dataclass
class _Run:
    started: datetime
    started_mono: float
    cause: str | None
    mode: str | None
    start_pressure: float | None
    time_to_running_s: float | None
    suction: list[float] = field(default_factory=list)
    discharge: list[float] = field(default_factory=list)


class PanelMonitor:
    """Turns polls of one panel into events and telemetry."""

    def __init__(self, device: str, regmap: RegisterMap, settings: PanelSettings,
                 compliance: Compliance | None = None) -> None:
        self.device = device
        self.map = regmap
        self.settings = settings
        self.compliance = compliance
        self._alarm_pts = {p.name: p for p in regmap.by_role("alarm")}
        self._reading_pts = {p.name: p for p in regmap.points if p.role in ("reading", "status")}
        self._running_pt = next(iter(regmap.by_role("running")), None)
        self._demand_pt = next(iter(regmap.by_role("start_demand")), None)
        self._mode_pt = next(iter(regmap.by_role("mode")), None)
        self._auto_pt = next(iter(regmap.by_role("in_auto")), None)
        self._cause_pt = next(iter(regmap.by_role("start_cause")), None)
        self.first = True
        self.alarms: dict[str, float] = {}          # active alarm -> monotonic since
        self.faults: dict[str, str] = {}            # point -> reason
        self.running = False
        self.mode: str | None = None
        self.not_in_auto = False
        self.values: dict[str, Any] = {}            # last good values
        self.failed_polls = 0
        self.comm_lost_since: float | None = None
        self._first_fail: float | None = None
        self.last_failure = ""
        self.polls_ok = 0
        self.polls_failed = 0
        self._run: _Run | None = None
        self._demand_since: float | None = None
        self._pressure_before: float | None = None
        self._tele_sent: dict[str, Any] = {}
        self._tele_mono: float | None = None

    # -- polls -----------------------------------------------------------------
    def poll_failed(self, reason: str, ts: datetime, mono: float) -> list[Emission]:
        self.polls_failed += 1
        self.failed_polls += 1
        self.last_failure = reason
        if self._first_fail is None:
            self._first_fail = mono
        if self.comm_lost_since is None and self.failed_polls >= self.settings.comm_loss_after:
            self.comm_lost_since = mono
            return [Emission(self.device, "comm_loss", "warning", {
                "failed_polls": self.failed_polls, "reason": reason}, ts)]
        return []

    def poll_ok(self, values: dict[str, Any], faults: dict[str, str], ts: datetime,
                mono: float) -> list[Emission]:
        self.polls_ok += 1
        out: list[Emission] = []
        if self.comm_lost_since is not None:
            out.append(Emission(self.device, "comm_loss_restore", "info", {
                "outage_s": round(mono - (self._first_fail or self.comm_lost_since), 1),
                "failed_polls": self.failed_polls}, ts))
            self.comm_lost_since = None
        self.failed_polls = 0
        self._first_fail = None
        out += self._faults(faults, ts)
        prev = self.values
        self.values = {**self.values, **values}
        for name in faults:
            self.values.pop(name, None)
        out += self._mode(ts)
        out += self._alarms(values, ts, mono)
        out += self._pump(values, prev, ts, mono)
        self.first = False
        return out

    def _faults(self, faults: dict[str, str], ts: datetime) -> list[Emission]:
        out = []
        for name, reason in faults.items():
            if self.faults.get(name) != reason and name not in self.faults:
                out.append(Emission(self.device, "data_fault", "warning", {"point": name, "reason": reason}, ts))
            self.faults[name] = reason
        for name in [n for n in self.faults if n not in faults]:
            del self.faults[name]
            out.append(Emission(self.device, "data_fault_restore", "info", {"point": name}, ts))
        return out

    def _mode(self, ts: datetime) -> list[Emission]:
        if self._mode_pt is not None and self._mode_pt.name in self.values:
            mode = self.values[self._mode_pt.name]
        elif self._auto_pt is not None and self._auto_pt.name in self.values:
            mode = "auto" if self.values[self._auto_pt.name] else "manual"
        else:
            return []
        self.mode = mode
        if mode != "auto" and not self.not_in_auto:
            self.not_in_auto = True
            return [Emission(self.device, "not_in_auto", "alarm", {"mode": mode}, ts)]
        if mode == "auto" and self.not_in_auto:
            self.not_in_auto = False
            return [Emission(self.device, "not_in_auto_restore", "info", {"mode": mode}, ts)]
        return []

    def _alarms(self, values: dict[str, Any], ts: datetime, mono: float) -> list[Emission]:
        out = []
        for name, p in self._alarm_pts.items():
            if name not in values:            # not read or data fault: keep the last state
                continue
            active = bool(values[name])
            if active and name not in self.alarms:
                self.alarms[name] = mono
                out.append(Emission(self.device, name, p.severity,
                                    {"state": "active", "point": name, **self._context()}, ts))
            elif not active and name in self.alarms:
                since = self.alarms.pop(name)
                out.append(Emission(self.device, f"{name}_restore", "info", {
                    "state": "restored", "point": name, "active_s": round(mono - since, 1)}, ts))
        return out

    def _context(self) -> dict[str, Any]:
        ctx: dict[str, Any] = {"running": self.running, "mode": self.mode}
        for key in ("discharge_pressure", "suction_pressure"):
            if key in self.values:
                ctx[key] = self.values[key]
        return ctx

    def _pump(self, values: dict[str, Any], prev: dict[str, Any], ts: datetime,
              mono: float) -> list[Emission]:
        out: list[Emission] = []
        demand = bool(self._demand_pt and values.get(self._demand_pt.name))
        if demand and self._demand_since is None and not self.running:
            self._demand_since = mono
            self._pressure_before = _low(prev.get("discharge_pressure"), values.get("discharge_pressure"))
        if self._running_pt is None or self._running_pt.name not in values:
            return out
        running = bool(values[self._running_pt.name])
        cause = values.get(self._cause_pt.name) if self._cause_pt else None
        if running and not self.running:
            if self._demand_since is not None:
                ttr: float | None = mono - self._demand_since
                start_p = self._pressure_before
            else:
                ttr = None
                start_p = None if self.first else _low(prev.get("discharge_pressure"),
                                                        values.get("discharge_pressure"))
            self._run = _Run(ts, mono, cause, self.mode, start_p, ttr)
            self.running = True
            self._demand_since = None
            data = {"cause": cause, "mode": self.mode, "start_pressure": start_p,
                    "time_to_running_s": None if ttr is None else round(ttr, 2)}
            if self.first:
                data["at_startup"] = True
            sev = "info" if cause in TEST_CAUSES else "warning"
            out.append(Emission(self.device, "pump_started", sev, data, ts))
        elif running and self._run is not None:
            if self._run.cause in (None, "none") and cause not in (None, "none"):
                self._run.cause = cause
            self._sample(values)
        elif not running and self.running:
            self.running = False
            run, self._run = self._run, None
            run_s = round(mono - run.started_mono, 1) if run else None
            data = {"cause": run.cause if run else None, "run_s": run_s, "mode": self.mode}
            out.append(Emission(self.device, "pump_stopped", "info", data, ts))
            if run is not None and self.compliance is not None:
                info = RunInfo(run.started, run.cause, run.mode, run.start_pressure,
                               run.time_to_running_s, _avg(run.suction), _avg(run.discharge),
                               mono - run.started_mono)
                out += self.compliance.run_finished(info, ts)
        if not running and not demand:
            self._demand_since = None
        return out

    def _sample(self, values: dict[str, Any]) -> None:
        assert self._run is not None
        if isinstance(values.get("suction_pressure"), (int, float)):
            self._run.suction.append(float(values["suction_pressure"]))
        if isinstance(values.get("discharge_pressure"), (int, float)):
            self._run.discharge.append(float(values["discharge_pressure"]))

    # -- telemetry -------------------------------------------------------------
    def telemetry_due(self, mono: float) -> dict[str, Any] | None:
        """The readings to offer now (period passed or a change beyond deadband), or None."""
        current = {n: v for n, v in self.values.items() if n in self._reading_pts}
        current["running"] = self.running
        if self.mode is not None:
            current["mode"] = self.mode
        due = self._tele_mono is None or mono - self._tele_mono >= self.settings.telemetry_s
        if not due:
            for name, value in current.items():
                old = self._tele_sent.get(name)
                p = self._reading_pts.get(name)
                if p is None:
                    if old != value:
                        due = True
                elif old is None or (p.deadband is not None and abs(value - old) > p.deadband):
                    due = True
                if due:
                    break
        if not due:
            return None
        self._tele_sent = current
        self._tele_mono = mono
        return dict(current)

    def status(self) -> dict[str, Any]:
        return {"running": self.running, "mode": self.mode, "alarms": sorted(self.alarms),
                "data_faults": dict(self.faults), "comm_lost": self.comm_lost_since is not None,
                "failed_polls": self.failed_polls, "polls_ok": self.polls_ok,
                "polls_failed": self.polls_failed, "values": dict(self.values)}


def _avg(xs: list[float]) -> float | None:
    return round(sum(xs) / len(xs), 2) if xs else None


def _low(*xs: Any) -> float | None:
    """The lowest of the pressures known around a start: the pressure the pump started at."""
    nums = [float(x) for x in xs if isinstance(x, (int, float)) and not isinstance(x, bool)]
    return min(nums) if nums else None

"""Test-run compliance: recognise test runs, record them, and find missing ones.

GB 50974-2014 14.0.4 and NFPA 25 ask for a weekly automatic inspection run
(started by the controller's test timer) and a monthly manual run, electric
pumps for at least 10 minutes and diesel pumps for at least 30. A run is
recognised from the start cause and the controller mode the panel reported
when the pump started; a run the panel started on low pressure is a demand,
not a test. A qualifying monthly run also counts as that week's run.

The history is a JSON-lines file per device under the driver's state folder,
and the last qualifying runs are kept in a small JSON file, so overdue tests
are found across restarts. All times come from the injected clock.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator

from gateway.atomicfile import write_atomic
from gateway.clock import iso_utc, parse_iso_utc
from gateway.driver import Emission

DAY = 86400.0
DEFAULT_MIN_RUN_S: dict[str, float] = {"electric": 600.0, "diesel": 1800.0}
KINDS: tuple[str, ...] = ("weekly", "monthly")


@dataclass
class ComplianceSettings:
    pump_type: str = "electric"
    min_run_s: float | None = None           # None: 600 s electric, 1800 s diesel
    weekly_period_s: float = 7 * DAY
    monthly_period_s: float = 31 * DAY

    @property
    def minimum(self) -> float:
        return self.min_run_s if self.min_run_s is not None else DEFAULT_MIN_RUN_S[self.pump_type]

    def period(self, kind: str) -> float:
        return self.weekly_period_s if kind == "weekly" else self.monthly_period_s


@dataclass
class RunInfo:
    """What the panel monitor knows about one finished pump run."""

    started: datetime
    cause: str | None
    mode: str | None
    start_pressure: float | None
    time_to_running_s: float | None
    suction_pressure: float | None
    discharge_pressure: float | None
    run_s: float


@dataclass
class TestRun:
    """One recognised test run, as stored in the history and sent in `test_run`."""

    device: str
    kind: str                       # weekly | monthly
    started: str                    # ISO UTC
    cause: str | None
    mode: str | None
    start_pressure: float | None
    time_to_running_s: float | None
    suction_pressure: float | None
    discharge_pressure: float | None
    run_s: float
    min_run_s: float
    meets_minimum: bool
    pump_type: str


@dataclass
class _State:
    since: str = ""                                       # when supervision of this pump began
    last: dict[str, str] = field(default_factory=dict)    # kind -> started of last qualifying run
    overdue: dict[str, str] = field(default_factory=dict) # kind -> due time already reported


def classify(cause: str | None, mode: str | None) -> str | None:
    """Which test a run is, from its start cause and the controller mode; None: not a test."""
    if cause == "weekly_test":
        return "weekly"
    if cause == "test":
        return "weekly" if mode == "auto" else "monthly"
    if cause == "manual" or (cause in (None, "none") and mode in ("manual", "off")):
        return "monthly"
    return None


def history_path(state_dir: Path, device: str) -> Path:
    return state_dir / f"{device}.pumptests.jsonl"


def read_history(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a history file, oldest first; a damaged line is skipped."""
    try:
        with path.open("r", encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict):
                    yield rec
    except FileNotFoundError:
        return


class Compliance:
    """Test-run bookkeeping of one pump."""

    def __init__(self, device: str, settings: ComplianceSettings, state_dir: Path | None,
                 now: datetime) -> None:
        self.device = device
        self.settings = settings
        self.state_dir = state_dir
        self._state = self._load()
        if not self._state.since:
            self._state.since = iso_utc(now)
            self._save()

    # -- persistence ---------------------------------------------------------
    @property
    def _state_path(self) -> Path | None:
        return self.state_dir / f"{self.device}.compliance.json" if self.state_dir else None

    def _load(self) -> _State:
        p = self._state_path
        if p is None:
            return _State()
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
            return _State(str(raw.get("since", "")), dict(raw.get("last", {})), dict(raw.get("overdue", {})))
        except (OSError, ValueError, AttributeError):
            return _State()

    def _save(self) -> None:
        p = self._state_path
        if p is None:
            return
        p.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(p, json.dumps(asdict(self._state)))

    def _append(self, run: TestRun) -> None:
        if self.state_dir is None:
            return
        p = history_path(self.state_dir, self.device)
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(run)) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def history(self) -> list[dict[str, Any]]:
        return list(read_history(history_path(self.state_dir, self.device))) if self.state_dir else []

    # -- runs ----------------------------------------------------------------
    def run_finished(self, info: RunInfo, now: datetime) -> list[Emission]:
        """Record a finished run if it was a test; returns `test_run` (and restores)."""
        kind = classify(info.cause, info.mode)
        if kind is None:
            return []
        minimum = self.settings.minimum
        run = TestRun(self.device, kind, iso_utc(info.started), info.cause, info.mode,
                      info.start_pressure, _r(info.time_to_running_s), info.suction_pressure,
                      info.discharge_pressure, round(info.run_s, 1), minimum,
                      info.run_s >= minimum, self.settings.pump_type)
        self._append(run)
        events = [Emission(self.device, "test_run", "info" if run.meets_minimum else "warning",
                           asdict(run), now)]
        if run.meets_minimum:
            satisfied = ("weekly", "monthly") if kind == "monthly" else ("weekly",)
            for k in satisfied:
                self._state.last[k] = run.started
                if k in self._state.overdue:
                    del self._state.overdue[k]
                    events.append(Emission(self.device, "test_overdue_restore", "info",
                                           {"test": k, "last_run": run.started}, now))
            self._save()
        return events

    def due(self, kind: str) -> datetime:
        base = self._state.last.get(kind) or self._state.since
        return parse_iso_utc(base) + timedelta(seconds=self.settings.period(kind))

    def check(self, now: datetime) -> list[Emission]:
        """`test_overdue` for each test whose period has passed without a qualifying run.

        Reported once per missed period: still overdue a period later, it is reported again.
        """
        events: list[Emission] = []
        for kind in KINDS:
            due = self.due(kind)
            reported = self._state.overdue.get(kind)
            if reported:
                due = parse_iso_utc(reported) + timedelta(seconds=self.settings.period(kind))
            if now < due:
                continue
            self._state.overdue[kind] = iso_utc(due)
            self._save()
            last = self._state.last.get(kind)
            events.append(Emission(self.device, "test_overdue", "warning", {
                "test": kind, "last_run": last, "due": iso_utc(due),
                "period_days": round(self.settings.period(kind) / DAY, 3),
                "min_run_s": self.settings.minimum}, now))
        return events

    def summary(self) -> dict[str, Any]:
        return {"since": self._state.since, "last": dict(self._state.last),
                "overdue": sorted(self._state.overdue),
                "next_due": {k: iso_utc(self.due(k)) for k in KINDS}}


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)

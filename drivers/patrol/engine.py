"""The live patrol-compliance engine: check-ins and time in, events out. Pure.

The engine is fed `scan(reader, card, wall, mono)` for every card read and
`tick(wall, mono)` often (the driver ticks a few times a second); both return
the events that became certain, each as soon as it is certain:

- a checkpoint is missed the moment its window closes (previous checkpoint +
  the leg's `max_minutes` + the route's `late_grace_minutes`), or the moment a
  guard checks in further along the route (skipped);
- a planned round is not started the moment its start window closes;
- a night round's lone guard is reported `pair_seconds` after the first card.

In-round deadlines run on the monotonic clock. Planned start times are wall
times in the site's time zone; the engine watches the offset between the wall
and monotonic clocks, and when the wall clock steps (NTP setting the time after
boot) the start windows jumped over are not reported as missed (a `clock_step`
event says so). Windows that closed before the engine's first tick are not
reported either: the gateway was not watching then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from gateway.driver import Emission
from drivers.patrol.plan import Plan, Registry, Route, Schedule, normalize_card

ENGINE_DEVICE = "engine"
SEVERITY: dict[str, str] = {
    "checkin": "info", "round_started": "info", "round_completed": "info",
    "checkpoint_missed": "alarm", "checkpoint_late": "warning", "checkpoint_early": "warning",
    "out_of_order": "warning", "single_guard_at_night": "alarm", "round_not_started": "alarm",
    "unknown_card": "warning", "clock_step": "info",
    "reader_fault": "warning", "reader_restore": "info", "daily_report": "info",
}


def patrol_event(type: str, device: str, ts: datetime, data: dict[str, Any]) -> Emission:
    """One patrol event, its severity from its type (a round completed with misses is a warning)."""
    severity = SEVERITY[type]
    if type == "round_completed" and data.get("status") != "complete":
        severity = "warning"
    return Emission(device, type, severity, data, ts)


def _iso(ts: datetime) -> str:
    return ts.isoformat(timespec="seconds")


@dataclass
class Round:
    id: str
    route: Route
    slot: "Slot"
    guards: list[str | None]
    started_wall: datetime
    next_index: int = 1
    last_mono: float = 0.0
    last_wall: datetime | None = None
    visited: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    missed_timeout_last: str | None = None   # last checkpoint missed by timeout (a late arrival may re-anchor)
    late: list[dict[str, Any]] = field(default_factory=list)
    early: list[str] = field(default_factory=list)
    out_of_order: int = 0
    single_guard: list[str] = field(default_factory=list)
    pair: tuple[str, str | None, float, datetime] | None = None   # checkpoint, guard, deadline mono, wall
    finishing: bool = False      # last checkpoint reached, waiting for the second guard

    def base(self) -> dict[str, Any]:
        return {"route": self.route.id, "round": self.id, "schedule": self.slot.schedule.name,
                "planned_start": _iso(self.slot.start)}


@dataclass
class Slot:
    """One planned round: a schedule's start time on one date."""

    key: str
    schedule: Schedule
    start: datetime        # site-local, aware
    open: datetime         # start - early_minutes
    due: datetime          # start + start_window_minutes
    close: datetime        # due + the route's late grace
    state: str = "pending"   # pending | started | not_started | skipped
    round: Round | None = None


class PatrolEngine:
    """Compares check-ins with the plan, live. Not thread-safe: one caller."""

    def __init__(self, registry: Registry, plan: Plan, tz: str = "Asia/Shanghai",
                 dedup_seconds: float = 2.0, step_tolerance_s: float = 5.0,
                 guard_session_minutes: float = 120.0) -> None:
        self.registry = registry
        self.plan = plan
        self.tz = ZoneInfo(tz)
        self.dedup_seconds = dedup_seconds
        self.step_tolerance_s = step_tolerance_s
        self.guard_session_s = guard_session_minutes * 60
        self.slots: dict[str, Slot] = {}
        self.rounds: list[Round] = []              # in progress
        self.duplicates = 0
        self._last_read: dict[tuple[str, str], float] = {}
        self._reader_guard: dict[str, tuple[str, float]] = {}
        self._offset: float | None = None          # wall epoch - mono
        self._evaluated: datetime | None = None    # wall time up to which start windows were judged
        self._planned_dates: set[date] = set()

    # -- inputs ----------------------------------------------------------
    def tick(self, wall: datetime, mono: float) -> list[Emission]:
        out: list[Emission] = []
        self._watch_clock(wall, mono, out)
        self._plan_slots(wall)
        for rnd in list(self.rounds):
            self._round_deadlines(rnd, wall, mono, out)
        assert self._evaluated is not None
        for slot in sorted(self.slots.values(), key=lambda s: s.close):
            if slot.state == "pending" and self._evaluated < slot.close <= wall:
                slot.state = "not_started"
                out.append(patrol_event("round_not_started", slot.schedule.route, slot.close.astimezone(timezone.utc), {
                    "route": slot.schedule.route, "schedule": slot.schedule.name,
                    "planned_start": _iso(slot.start), "window_closed": _iso(slot.close)}))
        self._evaluated = max(self._evaluated, wall)
        self._prune(wall, mono)
        return out

    def scan(self, reader: str, card: str, wall: datetime, mono: float) -> list[Emission]:
        out = self.tick(wall, mono)
        card = normalize_card(card)
        key = (reader, card)
        last = self._last_read.get(key)
        self._last_read[key] = mono
        if last is not None and mono - last < self.dedup_seconds:
            self.duplicates += 1
            return out
        reg = self.registry
        guard: str | None
        if card in reg.guard_by_card:
            guard = reg.guard_by_card[card]
            cp_id = reg.checkpoint_by_reader.get(reader)
            self._reader_guard[reader] = (guard, mono)
        elif card in reg.checkpoint_by_tag:
            cp_id = reg.checkpoint_by_tag[card]
            session = self._reader_guard.get(reader)
            guard = session[0] if session and mono - session[1] <= self.guard_session_s else None
        else:
            out.append(patrol_event("unknown_card", reader, wall, {"reader": reader, "card": card,
                                                                   "checkpoint": reg.checkpoint_by_reader.get(reader)}))
            return out
        cp = reg.checkpoint(cp_id) if cp_id else None
        out.append(patrol_event("checkin", reader, wall, {"reader": reader, "card": card, "guard": guard,
                                                          "checkpoint": cp_id, "place": cp.place if cp else None}))
        if cp_id is not None:
            self._comply(cp_id, guard, wall, mono, out)
        return out

    # -- compliance --------------------------------------------------------
    def _joins(self, rnd: Round, guard: str | None) -> bool:
        return guard is None or None in rnd.guards or guard in rnd.guards

    def _comply(self, cp: str, guard: str | None, wall: datetime, mono: float, out: list[Emission]) -> None:
        handled = False
        for rnd in list(self.rounds):             # 1. the second guard of a night pair
            if rnd.pair and rnd.pair[0] == cp and guard != rnd.pair[1]:
                rnd.pair = None
                if guard not in rnd.guards:
                    rnd.guards.append(guard)
                handled = True
                if rnd.finishing:
                    self._complete(rnd, wall, out)
        if handled:
            return
        for rnd in list(self.rounds):             # 2. the checkpoint a round expects next
            if not rnd.finishing and self._joins(rnd, guard) and rnd.route.checkpoints[rnd.next_index] == cp:
                self._visit(rnd, cp, guard, wall, mono, out)
                handled = True
        if handled:
            return
        if self._start(cp, guard, wall, mono, out):   # 3. the first checkpoint of a planned round
            return
        for rnd in list(self.rounds):             # 4. elsewhere on a round in progress
            if rnd.finishing or not self._joins(rnd, guard) or cp not in rnd.route.checkpoints:
                continue
            idx = rnd.route.checkpoints.index(cp)
            expected = rnd.route.checkpoints[rnd.next_index]
            if idx > rnd.next_index:
                out.append(patrol_event("out_of_order", rnd.route.id, wall, {**rnd.base(), "checkpoint": cp,
                                                                            "expected": expected, "guard": guard}))
                rnd.out_of_order += 1
                for skipped in rnd.route.checkpoints[rnd.next_index:idx]:
                    self._miss(rnd, skipped, "skipped", wall, None, out)
                rnd.next_index = idx
                self._visit(rnd, cp, guard, wall, mono, out, judge=False)
            elif cp == rnd.missed_timeout_last:
                # arrived after its window closed: the miss stands, the round goes on from here
                rnd.missed_timeout_last = None
                rnd.late.append({"checkpoint": cp, "minutes": None, "after_missed": True})
                out.append(patrol_event("checkpoint_late", rnd.route.id, wall, {
                    **rnd.base(), "checkpoint": cp, "guard": guard, "minutes_late": None,
                    "after_missed": True}))
                rnd.last_mono, rnd.last_wall = mono, wall
            elif cp in rnd.missed:
                rnd.out_of_order += 1
                out.append(patrol_event("out_of_order", rnd.route.id, wall, {**rnd.base(), "checkpoint": cp,
                                                                            "expected": expected, "guard": guard}))

    def _start(self, cp: str, guard: str | None, wall: datetime, mono: float, out: list[Emission]) -> bool:
        candidates = [s for s in self.slots.values()
                      if s.state == "pending" and self.plan.routes[s.schedule.route].checkpoints[0] == cp
                      and s.open <= wall <= s.close]
        if not candidates:
            return False
        slot = min(candidates, key=lambda s: s.start)
        route = self.plan.routes[slot.schedule.route]
        rnd = Round(id=f"{route.id}@{slot.start.strftime('%Y-%m-%dT%H:%M')}", route=route, slot=slot,
                    guards=[guard], started_wall=wall, last_mono=mono, last_wall=wall, visited=[cp])
        slot.state, slot.round = "started", rnd
        self.rounds.append(rnd)
        out.append(patrol_event("round_started", route.id, wall, {**rnd.base(), "guard": guard, "checkpoint": cp}))
        if wall < slot.start:
            minutes = round((slot.start - wall).total_seconds() / 60, 1)
            rnd.early.append(cp)
            out.append(patrol_event("checkpoint_early", route.id, wall, {**rnd.base(), "checkpoint": cp,
                                                                        "guard": guard, "minutes_early": minutes}))
        elif wall > slot.due:
            minutes = round((wall - slot.due).total_seconds() / 60, 1)
            rnd.late.append({"checkpoint": cp, "minutes": minutes})
            out.append(patrol_event("checkpoint_late", route.id, wall, {**rnd.base(), "checkpoint": cp,
                                                                       "guard": guard, "minutes_late": minutes}))
        self._want_pair(rnd, cp, guard, wall, mono)
        return True

    def _want_pair(self, rnd: Round, cp: str, guard: str | None, wall: datetime, mono: float) -> None:
        if rnd.slot.schedule.two_guards:
            rnd.pair = (cp, guard, mono + rnd.slot.schedule.pair_seconds, wall)

    def _visit(self, rnd: Round, cp: str, guard: str | None, wall: datetime, mono: float,
               out: list[Emission], judge: bool = True) -> None:
        leg = rnd.route.legs[rnd.next_index - 1]
        elapsed = mono - rnd.last_mono
        if judge and elapsed < leg.min_minutes * 60:
            rnd.early.append(cp)
            out.append(patrol_event("checkpoint_early", rnd.route.id, wall, {
                **rnd.base(), "checkpoint": cp, "guard": guard,
                "minutes_early": round(leg.min_minutes - elapsed / 60, 1)}))
        elif judge and elapsed > leg.max_minutes * 60:
            minutes = round(elapsed / 60 - leg.max_minutes, 1)
            rnd.late.append({"checkpoint": cp, "minutes": minutes})
            out.append(patrol_event("checkpoint_late", rnd.route.id, wall, {
                **rnd.base(), "checkpoint": cp, "guard": guard, "minutes_late": minutes}))
        if rnd.pair is not None:                  # a new checkpoint before the pair came: decide now
            self._lone(rnd, wall, out)
        rnd.visited.append(cp)
        rnd.missed_timeout_last = None
        rnd.last_mono, rnd.last_wall = mono, wall
        rnd.next_index += 1
        self._want_pair(rnd, cp, guard, wall, mono)
        if rnd.next_index >= len(rnd.route.checkpoints):
            if rnd.pair is not None:
                rnd.finishing = True
            else:
                self._complete(rnd, wall, out)

    def _lone(self, rnd: Round, wall: datetime, out: list[Emission]) -> None:
        assert rnd.pair is not None
        cp, guard, _, _ = rnd.pair
        rnd.pair = None
        rnd.single_guard.append(cp)
        out.append(patrol_event("single_guard_at_night", rnd.route.id, wall, {
            **rnd.base(), "checkpoint": cp, "guard": guard,
            "pair_seconds": rnd.slot.schedule.pair_seconds}))

    def _miss(self, rnd: Round, cp: str, reason: str, ts: datetime, expected_by: datetime | None,
              out: list[Emission]) -> None:
        rnd.missed.append(cp)
        place = (c.place if (c := self.registry.checkpoint(cp)) else "")
        out.append(patrol_event("checkpoint_missed", rnd.route.id, ts, {
            **rnd.base(), "checkpoint": cp, "place": place, "reason": reason,
            "expected_by": _iso(expected_by.astimezone(self.tz)) if expected_by else None,
            "previous": rnd.visited[-1] if rnd.visited else None, "guards": list(rnd.guards)}))

    def _complete(self, rnd: Round, wall: datetime, out: list[Emission]) -> None:
        if rnd.pair is not None:
            self._lone(rnd, wall, out)
        if rnd in self.rounds:
            self.rounds.remove(rnd)
        status = "complete" if not rnd.missed else "incomplete"
        out.append(patrol_event("round_completed", rnd.route.id, wall, {
            **rnd.base(), "status": status, "started": _iso(rnd.started_wall.astimezone(self.tz)),
            "finished": _iso(wall.astimezone(self.tz)),
            "duration_minutes": round((wall - rnd.started_wall).total_seconds() / 60, 1),
            "guards": list(rnd.guards), "visited": list(rnd.visited), "missed": list(rnd.missed),
            "late": list(rnd.late), "early": list(rnd.early), "out_of_order": rnd.out_of_order,
            "single_guard": list(rnd.single_guard)}))

    def _round_deadlines(self, rnd: Round, wall: datetime, mono: float, out: list[Emission]) -> None:
        if rnd.pair is not None and mono >= rnd.pair[2]:
            at = wall - timedelta(seconds=mono - rnd.pair[2])
            self._lone(rnd, at, out)
            if rnd.finishing:
                self._complete(rnd, at, out)
        while rnd in self.rounds and not rnd.finishing:
            leg = rnd.route.legs[rnd.next_index - 1]
            deadline = rnd.last_mono + (leg.max_minutes + rnd.route.late_grace_minutes) * 60
            if mono < deadline:
                return
            at = wall - timedelta(seconds=mono - deadline)
            cp = rnd.route.checkpoints[rnd.next_index]
            self._miss(rnd, cp, "timeout", at, at, out)
            rnd.missed_timeout_last = cp
            rnd.last_mono, rnd.last_wall = deadline, at
            rnd.next_index += 1
            if rnd.next_index >= len(rnd.route.checkpoints):
                self._complete(rnd, at, out)

    # -- time ------------------------------------------------------------
    def _watch_clock(self, wall: datetime, mono: float, out: list[Emission]) -> None:
        offset = wall.timestamp() - mono
        if self._offset is None or self._evaluated is None:
            self._offset, self._evaluated = offset, wall
            return
        step = offset - self._offset
        self._offset = offset
        if abs(step) <= self.step_tolerance_s:
            return
        skipped = []
        if step > 0:
            for slot in self.slots.values():
                if slot.state == "pending" and self._evaluated < slot.close <= wall:
                    slot.state = "skipped"
                    skipped.append(slot.key)
        self._evaluated = wall
        out.append(patrol_event("clock_step", ENGINE_DEVICE, wall, {"step_seconds": round(step, 3),
                                                                   "windows_not_judged": skipped}))

    def _plan_slots(self, wall: datetime) -> None:
        today = wall.astimezone(self.tz).date()
        for d in (today - timedelta(days=1), today, today + timedelta(days=1)):
            if d in self._planned_dates:
                continue
            self._planned_dates.add(d)
            for sch in self.plan.schedules:
                route = self.plan.routes.get(sch.route)
                if route is None:
                    continue
                for t in sch.starts:
                    start = datetime.combine(d, t, tzinfo=self.tz)
                    due = start + timedelta(minutes=sch.start_window_minutes)
                    key = f"{sch.name}@{start.strftime('%Y-%m-%dT%H:%M')}"
                    self.slots[key] = Slot(key, sch, start, start - timedelta(minutes=sch.early_minutes), due,
                                           due + timedelta(minutes=route.late_grace_minutes))

    def _prune(self, wall: datetime, mono: float) -> None:
        horizon = wall - timedelta(days=2)
        for key in [k for k, s in self.slots.items() if s.close < horizon and s.round not in self.rounds]:
            del self.slots[key]
        self._planned_dates = {d for d in self._planned_dates if d >= horizon.astimezone(self.tz).date()}
        if len(self._last_read) > 1000:
            self._last_read = {k: v for k, v in self._last_read.items() if mono - v < self.dedup_seconds}

    def planned_slots(self, day: date) -> list[Slot]:
        return [s for s in self.slots.values() if s.start.date() == day]

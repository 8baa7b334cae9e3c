"""The day's patrol compliance per route, computed from the record log (and the plan).

A round belongs to the date of its planned start in the site's time zone
(a 02:00 night round is on the date it starts). Per route:

    planned      rounds the plan schedules that day (from the plan; without a plan,
                 the rounds the log knows of)
    completed    rounds with every checkpoint visited
    incomplete   rounds finished with at least one checkpoint missed
    not_started  rounds whose start window closed without a start
    unaccounted  planned rounds with none of those outcomes (gateway down, clock stepped)
    missed, late, early, out_of_order, single_guard   counts of those events
    late_minutes total minutes late
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from drivers.patrol.plan import Plan
from drivers.patrol.records import iter_records


@dataclass
class RouteDay:
    route: str
    planned: int = 0
    completed: int = 0
    incomplete: int = 0
    not_started: int = 0
    missed: int = 0
    late: int = 0
    late_minutes: float = 0.0
    early: int = 0
    out_of_order: int = 0
    single_guard: int = 0
    unaccounted: int = 0        # planned rounds with no outcome (gateway down, clock stepped, in progress)
    missed_checkpoints: list[str] = field(default_factory=list)


def _planned_date(data: dict[str, Any]) -> date | None:
    text = data.get("planned_start")
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        return None


def day_report(records: Iterable[dict[str, Any]], day: date, plan: Plan | None) -> dict[str, RouteDay]:
    routes: dict[str, RouteDay] = {}
    if plan is not None:
        for rid in plan.routes:
            routes[rid] = RouteDay(rid)
        for sch in plan.schedules:
            if sch.route in routes:
                routes[sch.route].planned += len(sch.starts)
    seen_rounds: dict[str, set[str]] = {}
    for rec in records:
        data = rec.get("data")
        if not isinstance(data, dict) or _planned_date(data) != day:
            continue
        rid = data.get("route")
        if not isinstance(rid, str):
            continue
        r = routes.setdefault(rid, RouteDay(rid))
        kind = rec.get("type")
        seen_rounds.setdefault(rid, set()).add(str(data.get("round") or data.get("planned_start")))
        if kind == "round_completed":
            if data.get("status") == "complete":
                r.completed += 1
            else:
                r.incomplete += 1
        elif kind == "round_not_started":
            r.not_started += 1
        elif kind == "checkpoint_missed":
            r.missed += 1
            r.missed_checkpoints.append(f"{data.get('checkpoint')} ({data.get('planned_start', '')[11:16]})")
        elif kind == "checkpoint_late":
            r.late += 1
            if isinstance(data.get("minutes_late"), (int, float)):
                r.late_minutes = round(r.late_minutes + data["minutes_late"], 1)
        elif kind == "checkpoint_early":
            r.early += 1
        elif kind == "out_of_order":
            r.out_of_order += 1
        elif kind == "single_guard_at_night":
            r.single_guard += 1
    if plan is None:
        for rid, keys in seen_rounds.items():
            routes[rid].planned = len(keys)
    for r in routes.values():
        r.unaccounted = max(0, r.planned - r.completed - r.incomplete - r.not_started)
    return dict(sorted(routes.items()))


def report_from_log(path: Path, day: date, plan: Plan | None) -> dict[str, RouteDay]:
    return day_report(iter_records(path), day, plan)


def report_data(day: date, routes: dict[str, RouteDay]) -> dict[str, Any]:
    """The `daily_report` event's data."""
    return {"date": day.isoformat(), "routes": {rid: asdict(r) for rid, r in routes.items()}}


def format_report(day: date, routes: dict[str, RouteDay], tz: str) -> str:
    lines = [f"Patrol compliance {day.isoformat()} ({tz})"]
    if not routes:
        lines.append("  no routes planned and no rounds recorded")
    header = ("route", "planned", "completed", "incomplete", "not started", "missed", "late", "late min",
              "early", "order", "lone", "unknown")
    rows = [header] + [(r.route, str(r.planned), str(r.completed), str(r.incomplete), str(r.not_started),
                        str(r.missed), str(r.late), f"{r.late_minutes:g}", str(r.early),
                        str(r.out_of_order), str(r.single_guard), str(r.unaccounted)) for r in routes.values()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        lines.append("  " + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
    for r in routes.values():
        if r.missed_checkpoints:
            lines.append(f"  {r.route}: missed {', '.join(r.missed_checkpoints)}")
    return "\n".join(lines)


def today_in(tz: str, now: datetime) -> date:
    return now.astimezone(ZoneInfo(tz)).date()

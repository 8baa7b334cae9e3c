"""The registry (guards' cards, checkpoints) and the plan (routes, schedules), read from TOML.

Registry file:

    [[guard]]
    name = "Zhang Wei"
    cards = ["0100D507D0", "123:04567"]      # as the readers report them
    [[checkpoint]]
    id = "gate-north"                        # [A-Za-z0-9_.-]+
    place = "North gate, by the barrier"
    reader = "gate-north"                    # a fixed reader here (a [[patrol]] name), and/or
    tag = "0100AABBCC"                       # a tag fixed here, read by the reader a guard carries

Plan file:

    [[route]]
    id = "grounds"
    checkpoints = ["gate-north", "car-park", "garden"]
    max_minutes = 15          # most minutes between two consecutive checkpoints
    min_minutes = 1           # fewer is checkpoint_early (0: never early)
    late_grace_minutes = 5    # after max: late; after max + grace: missed
    legs = [{to = "garden", max_minutes = 20}]   # per-leg overrides
    [[schedule]]
    name = "grounds-night"
    route = "grounds"
    starts = ["20:00", "23:00", "02:00", "05:00"]   # site time zone
    start_window_minutes = 30 # a round must start within this after each start
    early_minutes = 10        # starting up to this much before counts (as early)
    two_guards = true         # two different guard cards at each checkpoint ...
    pair_s = 60               # ... within this many seconds

Both are validated with `gateway.configfile.Section`: every problem is reported
with its key, prefixed by the file name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any

from gateway.configfile import Problems, Section, load_toml

ID_PATTERN = r"[A-Za-z0-9_.-]+"
_TIME_RE = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def normalize_card(card: str) -> str:
    """Card ids compare upper-case, without surrounding blanks."""
    return card.strip().upper()


@dataclass(frozen=True)
class Guard:
    name: str
    cards: tuple[str, ...]


@dataclass(frozen=True)
class Checkpoint:
    id: str
    place: str = ""
    reader: str | None = None
    tag: str | None = None


@dataclass(frozen=True)
class Registry:
    guards: tuple[Guard, ...] = ()
    checkpoints: tuple[Checkpoint, ...] = ()
    guard_by_card: dict[str, str] = field(default_factory=dict)
    checkpoint_by_tag: dict[str, str] = field(default_factory=dict)
    checkpoint_by_reader: dict[str, str] = field(default_factory=dict)

    def checkpoint(self, cp_id: str) -> Checkpoint | None:
        for cp in self.checkpoints:
            if cp.id == cp_id:
                return cp
        return None


@dataclass(frozen=True)
class Leg:
    to: str
    min_minutes: float
    max_minutes: float


@dataclass(frozen=True)
class Route:
    id: str
    name: str
    checkpoints: tuple[str, ...]
    legs: tuple[Leg, ...]          # legs[i] leads to checkpoints[i + 1]
    late_grace_minutes: float


@dataclass(frozen=True)
class Schedule:
    name: str
    route: str
    starts: tuple[time, ...]
    start_window_minutes: float
    early_minutes: float
    two_guards: bool
    pair_seconds: float


@dataclass(frozen=True)
class Plan:
    routes: dict[str, Route] = field(default_factory=dict)
    schedules: tuple[Schedule, ...] = ()


def parse_registry(doc: Any, key: str, problems: Problems) -> Registry:
    top = Section(doc, key, problems)
    guards: list[Guard] = []
    checkpoints: list[Checkpoint] = []
    by_card: dict[str, str] = {}
    by_tag: dict[str, str] = {}
    by_reader: dict[str, str] = {}
    for s in top.sections("guard"):
        name = s.str("name")
        cards = tuple(normalize_card(c) for c in s.list("cards", item_type=str, min_len=1) if isinstance(c, str))
        s.finish()
        for c in cards:
            if c in by_card:
                s.error("cards", f"card {c} is already {by_card[c]}'s")
            by_card[c] = name
        guards.append(Guard(name, cards))
    seen_ids: set[str] = set()
    for s in top.sections("checkpoint"):
        cp_id = s.str("id", pattern=ID_PATTERN)
        place = s.str("place", "", nonempty=False)
        reader = s.str("reader", None) if s.has("reader") else None
        tag = normalize_card(s.str("tag")) if s.has("tag") else None
        s.mark_seen("reader", "tag")
        s.finish()
        if cp_id in seen_ids:
            s.error("id", f"checkpoint {cp_id} is defined twice")
        seen_ids.add(cp_id)
        if reader is None and tag is None:
            s.error("", "needs a reader or a tag")
        if reader is not None:
            if reader in by_reader:
                s.error("reader", f"reader {reader} is already at checkpoint {by_reader[reader]}")
            by_reader[reader] = cp_id
        if tag is not None:
            if tag in by_card:
                s.error("tag", f"tag {tag} is also {by_card[tag]}'s guard card")
            if tag in by_tag:
                s.error("tag", f"tag {tag} is already at checkpoint {by_tag[tag]}")
            by_tag[tag] = cp_id
        checkpoints.append(Checkpoint(cp_id, place, reader, tag))
    top.finish()
    return Registry(tuple(guards), tuple(checkpoints), by_card, by_tag, by_reader)


def _parse_time(s: Section, name: str, value: Any, index: int) -> time | None:
    m = _TIME_RE.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        s.problems.add(f"{s.child_key(name)}[{index}]", f"expected a time of day like \"20:00\", got {value!r}")
        return None
    return time(int(m.group(1)), int(m.group(2)))


def parse_plan(doc: Any, key: str, problems: Problems, registry: Registry) -> Plan:
    top = Section(doc, key, problems)
    routes: dict[str, Route] = {}
    known = {cp.id for cp in registry.checkpoints}
    for s in top.sections("route", required=True):
        rid = s.str("id", pattern=ID_PATTERN)
        name = s.str("name", rid)
        cps = [c for c in s.list("checkpoints", item_type=str, min_len=2) if isinstance(c, str)]
        max_m = s.float("max_minutes", min=0.1)
        min_m = s.float("min_minutes", 0.0, min=0.0)
        grace = s.float("late_grace_minutes", 5.0, min=0.0)
        for i, c in enumerate(cps):
            if c not in known:
                problems.add(f"{s.child_key('checkpoints')}[{i}]", f"unknown checkpoint {c!r}")
        if len(set(cps)) != len(cps):
            s.error("checkpoints", "a checkpoint may appear only once in a route")
        overrides: dict[str, tuple[float, float]] = {}
        for j, leg in enumerate(s.list("legs", [])):
            ls = Section(leg, f"{s.child_key('legs')}[{j}]", problems)
            to = ls.str("to")
            if to and to not in cps[1:]:
                ls.error("to", f"{to!r} is not a checkpoint after the first of this route")
            lmax = ls.float("max_minutes", max_m, min=0.1)
            lmin = ls.float("min_minutes", min_m, min=0.0)
            ls.finish()
            overrides[to] = (lmin, lmax)
        legs = []
        for c in cps[1:]:
            lmin, lmax = overrides.get(c, (min_m, max_m))
            if lmax > 0 and lmin >= lmax:
                s.error("min_minutes", f"leg to {c}: min_minutes {lmin} must be below max_minutes {lmax}")
            legs.append(Leg(c, lmin, lmax))
        s.finish()
        if rid in routes:
            s.error("id", f"route {rid} is defined twice")
        routes[rid] = Route(rid, name, tuple(cps), tuple(legs), grace)
    schedules: list[Schedule] = []
    names: set[str] = set()
    for s in top.sections("schedule"):
        name = s.str("name", pattern=ID_PATTERN)
        route = s.str("route")
        if route and route not in routes:
            s.error("route", f"unknown route {route!r}")
        starts = [t for i, v in enumerate(s.list("starts", min_len=1))
                  if (t := _parse_time(s, "starts", v, i)) is not None]
        window = s.float("start_window_minutes", 30.0, min=1.0)
        early = s.float("early_minutes", 10.0, min=0.0)
        two = s.bool("two_guards", False)
        pair = s.float("pair_s", 60.0, min=1.0)
        s.renamed("pair_seconds", "pair_s")
        s.finish()
        if name in names:
            s.error("name", f"schedule {name} is defined twice")
        names.add(name)
        schedules.append(Schedule(name, route, tuple(sorted(set(starts))), window, early, two, pair))
    top.finish()
    return Plan(routes, tuple(schedules))


def load_registry(path: Path, problems: Problems, key: str = "") -> Registry:
    doc, p = load_toml(path, key or path.name)
    problems.items.extend(p.items)
    return parse_registry(doc, key or path.name, problems) if not p else Registry()


def load_plan(path: Path, registry: Registry, problems: Problems, key: str = "") -> Plan:
    doc, p = load_toml(path, key or path.name)
    problems.items.extend(p.items)
    return parse_plan(doc, key or path.name, problems, registry) if not p else Plan()

"""Eviction: which events go when the buffer is full, and the one report that names them.

Two things fill the buffer: the configured cap (`max_events`, `max_bytes`) and
the disk itself (SQLite "database or disk is full", or the `max_db_bytes` cap).
Both are handled here, the same way: the lowest severity goes first, and the
oldest within a severity; the victims are deleted and a `gateway/events_dropped`
event naming their seq ranges is returned, for the caller to commit in the
same transaction, so a gap never exists on disk without the event that names
it. An earlier `events_dropped` report that is itself evicted has its ranges
carried into the new one, so no gap goes unexplained.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from gateway.clock import Clock
from gateway.events import SEVERITY_RANK, Event, EventDraft
from gateway.store.records import StoreLimits

log = logging.getLogger(__name__)

EVICT_LOW_WATER = 0.9        # the cap evicts down to this share of it: one report per tenth, not per event
DISK_FULL_SHARE = 0.05       # a full disk evicts this share of the stored events...
DISK_FULL_MIN = 100          # ...and at least this many
REPORT_ROOM_BYTES = 1024     # room kept for the report itself
SEVERITY_NAME = {rank: name for name, rank in SEVERITY_RANK.items()}


@dataclass(frozen=True)
class Need:
    """How much must go: at least `events` events and `bytes` bytes of payload."""

    events: int
    bytes: int = 0


@dataclass(frozen=True)
class Dropped:
    """What one eviction deleted, and the report for the caller to commit."""

    count: int
    bytes: int
    report: EventDraft


def need_for_cap(count: int, nbytes: int, limits: StoreLimits) -> Need | None:
    """Down to the low-water mark of the cap, or None while under it."""
    if count <= limits.max_events and nbytes <= limits.max_bytes:
        return None
    return Need(count + 1 - int(limits.max_events * EVICT_LOW_WATER),
                nbytes + REPORT_ROOM_BYTES - int(limits.max_bytes * EVICT_LOW_WATER))


def need_for_disk(count: int) -> Need:
    return Need(max(DISK_FULL_MIN, int(count * DISK_FULL_SHARE)))


def ranges(seqs: Iterable[int], more: Iterable[Sequence[int]] = ()) -> list[list[int]]:
    """Seqs [1,2,3,7,9,10] and ranges [[8,8]] -> [[1,3],[7,10]]: merged, sorted, inclusive."""
    out: list[list[int]] = []
    for lo, hi in sorted([[s, s] for s in seqs] + [[r[0], r[1]] for r in more]):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return out


class Evictor:
    """Chooses the victims and writes the report, on the writer's connection."""

    def __init__(self, limits: StoreLimits, gateway: str, clock: Clock,
                 delete: Callable[[list[int]], tuple[int, int]]) -> None:
        self.limits = limits
        self.gateway = gateway
        self.clock = clock
        self._delete = delete
        self._own_topic = f"event/gateway/{gateway}"

    def evict(self, db: sqlite3.Connection, need: Need, reason: str) -> Dropped | None:
        """Delete lowest-severity, oldest events until `need` is met; None if nothing is stored."""
        victims: list[int] = []
        carried: list[list[int]] = []
        by_sev: dict[str, int] = {}
        freed = 0
        cur = db.execute("SELECT seq, severity, length(payload), topic FROM events ORDER BY severity, seq")
        for seq, sev, size, topic in cur:
            if len(victims) >= need.events and freed >= need.bytes:
                break
            victims.append(seq)
            freed += size
            by_sev[SEVERITY_NAME[sev]] = by_sev.get(SEVERITY_NAME[sev], 0) + 1
            if topic == self._own_topic:
                carried.extend(self._dropped_ranges_in(db, seq))
        cur.close()
        if not victims:
            return None
        n, b = self._delete(victims)
        named = ranges(victims, carried)
        limits = {"max_events": self.limits.max_events, "max_bytes": self.limits.max_bytes}
        if self.limits.max_db_bytes:
            limits["max_db_bytes"] = self.limits.max_db_bytes
        log.warning("event store full (%s): dropped %d event(s) %s, seq ranges %s%s", reason, n, by_sev,
                    named[:5], " ..." if len(named) > 5 else "")
        report = EventDraft(cls="gateway", device=self.gateway, type="events_dropped", severity="warning",
                            ts=self.clock.now(),
                            data={"reason": reason, "count": n, "ranges": named, "by_severity": by_sev,
                                  "limits": limits})
        return Dropped(n, b, report)

    @staticmethod
    def _dropped_ranges_in(db: sqlite3.Connection, seq: int) -> list[list[int]]:
        row = db.execute("SELECT payload FROM events WHERE seq=?", (seq,)).fetchone()
        try:
            ev = Event.from_json(row[0])
        except (TypeError, ValueError, KeyError):
            return []
        return [list(r) for r in ev.data.get("ranges", [])] if ev.type == "events_dropped" else []

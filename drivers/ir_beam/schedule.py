"""Weekly arming schedules: time windows per weekday in the site's local time.

A window `{days = ["mon"], from = "22:00", to = "06:00"}` arms from Monday
22:00 to Tuesday 06:00: a window whose end is not after its start runs past
midnight into the next day, and `to = "24:00"` means the end of the day.
Everything here is a pure function of the instant and the time zone, so a
schedule is tested with plain datetimes and any `zoneinfo` zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Any, Sequence
from zoneinfo import ZoneInfo

DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)|24:00")


def parse_hhmm(text: str) -> int | None:
    """'07:30' -> 450 (minutes after midnight); '24:00' -> 1440; None when malformed."""
    if not isinstance(text, str) or not _HHMM.fullmatch(text):
        return None
    if text == "24:00":
        return 1440
    return int(text[:2]) * 60 + int(text[3:])


@dataclass(frozen=True)
class Window:
    """Armed from `start` (minutes after local midnight) on each of `days` until `end`.

    `end <= start` means the window ends on the following day.
    """

    days: frozenset[int]      # 0 = Monday
    start: int
    end: int

    @property
    def overnight(self) -> bool:
        return self.end <= self.start

    def covers(self, weekday: int, minute: float) -> bool:
        if not self.overnight:
            return weekday in self.days and self.start <= minute < self.end
        return ((weekday in self.days and minute >= self.start)
                or ((weekday - 1) % 7 in self.days and minute < self.end))


@dataclass(frozen=True)
class Schedule:
    """A named set of windows; armed whenever any window covers the local time."""

    name: str
    windows: tuple[Window, ...]

    def armed_at(self, instant: datetime, tz: ZoneInfo) -> bool:
        local = instant.astimezone(tz)
        minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
        return any(w.covers(local.weekday(), minute) for w in self.windows)

    def next_change(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        """The first instant after `after` at which `armed_at` changes, or None if it never does."""
        local_day = after.astimezone(tz).date()
        candidates: set[datetime] = set()
        for offset in range(-1, 9):
            day = local_day + timedelta(days=offset)
            for w in self.windows:
                if day.weekday() not in w.days:
                    continue
                for minute, extra_day in ((w.start, 0), (w.end, 1 if w.overnight else 0)):
                    d = day + timedelta(days=extra_day + minute // 1440)
                    m = minute % 1440
                    local = datetime.combine(d, time(m // 60, m % 60), tzinfo=tz)
                    utc = local.astimezone(timezone.utc)
                    if utc > after:
                        candidates.add(utc)
        for c in sorted(candidates):
            if self.armed_at(c, tz) != self.armed_at(c - timedelta(seconds=1), tz):
                return c
        return None


ALWAYS = Schedule("always", (Window(frozenset(range(7)), 0, 1440),))


def parse_schedule(name: str, raw: Any, key: str, problems: Any) -> Schedule:
    """Build a schedule from its TOML array of windows, adding every problem under `key`."""
    windows: list[Window] = []
    if not isinstance(raw, list) or not raw:
        problems.add(key, "expected a non-empty array of windows like "
                          "{days = [\"mon\"], from = \"22:00\", to = \"06:00\"}")
        return Schedule(name, ())
    for i, item in enumerate(raw):
        wkey = f"{key}[{i}]"
        if not isinstance(item, dict):
            problems.add(wkey, "expected a table {days = [...], from = \"HH:MM\", to = \"HH:MM\"}")
            continue
        unknown = set(item) - {"days", "from", "to"}
        for k in sorted(unknown):
            problems.add(f"{wkey}.{k}", "unknown key")
        days = _parse_days(item.get("days"), f"{wkey}.days", problems)
        start = parse_hhmm(item.get("from"))  # type: ignore[arg-type]
        end = parse_hhmm(item.get("to"))  # type: ignore[arg-type]
        if start is None or start == 1440:
            problems.add(f"{wkey}.from", "expected a time \"HH:MM\" (00:00 to 23:59)")
        if end is None:
            problems.add(f"{wkey}.to", "expected a time \"HH:MM\" (00:00 to 24:00)")
        if start is not None and end is not None and start == end:
            problems.add(wkey, "from and to are equal; use from = \"00:00\", to = \"24:00\" for a whole day")
        if days is not None and start is not None and end is not None and start != end and start != 1440:
            windows.append(Window(days, start, end))
    return Schedule(name, tuple(windows))


def _parse_days(raw: Any, key: str, problems: Any) -> frozenset[int] | None:
    if not isinstance(raw, list) or not raw:
        problems.add(key, f"expected a non-empty array of days from {', '.join(DAYS)}")
        return None
    out: set[int] = set()
    ok = True
    for i, d in enumerate(raw):
        if isinstance(d, str) and d.lower() in DAYS:
            out.add(DAYS.index(d.lower()))
        else:
            problems.add(f"{key}[{i}]", f"expected one of {', '.join(DAYS)}, got {d!r}")
            ok = False
    return frozenset(out) if ok else None


def describe(windows: Sequence[Window]) -> str:
    """Short human text of a schedule, for health and logs."""
    parts = []
    for w in windows:
        days = ",".join(DAYS[d] for d in sorted(w.days))
        parts.append(f"{days} {w.start // 60:02d}:{w.start % 60:02d}-{w.end // 60:02d}:{w.end % 60:02d}")
    return "; ".join(parts)

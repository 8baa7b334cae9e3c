"""The simulated state disk: an event store whose free space a scenario can take away.

`disk_full` in a scenario (and in `anfang chaos`) must make the gateway's own
store meet a full disk while it runs. The store has no switch for that in its
API: a real disk fills up from outside. So the simulator runs the gateway with
this subclass, which caps the database file the way `[store] max_db_mb` does
(SQLite's `max_page_count`), at its size when the fault starts plus some
headroom. The cap is applied on the store's writer thread, just before its next
commit: the only moment a full disk can matter, and the only thread that uses
the write connection.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any

from gateway.store import EventStore
from gateway.store.schema import set_page_limit

log = logging.getLogger(__name__)

_LIFT = object()


class FillableDiskStore(EventStore):
    """`EventStore` on a disk that `fill(headroom)` fills up and `free()` empties again."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._disk_lock = threading.Lock()
        self._disk_change: object | int | None = None    # headroom in bytes, _LIFT, or None: no change
        super().__init__(*args, **kwargs)

    def fill(self, headroom_bytes: int) -> None:
        """From the next commit on, the database may grow only `headroom_bytes` more."""
        with self._disk_lock:
            self._disk_change = max(0, int(headroom_bytes))

    def free(self) -> None:
        """Give the room back: only `[store] max_db_mb` (if set) caps the file again."""
        with self._disk_lock:
            self._disk_change = _LIFT

    def _commit(self, batch, acks):      # type: ignore[no-untyped-def]
        with self._disk_lock:
            change, self._disk_change = self._disk_change, None
        try:
            if change is _LIFT:
                set_page_limit(self._db, self.limits.max_db_bytes)
                log.info("state disk has room again")
            elif isinstance(change, int):
                current = set_page_limit(self._db, 1)      # SQLite keeps it at the file's current size
                cap = set_page_limit(self._db, current + change)
                log.info("state disk full: event database capped at %d kB", cap // 1024)
        except sqlite3.Error as exc:
            log.error("simulated disk: cannot change the database cap: %s", exc)
        return super()._commit(batch, acks)

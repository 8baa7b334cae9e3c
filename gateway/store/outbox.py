"""The outbox reader: committed events, read from the database file in seq order.

Readers never see an event before its commit: SQLite's WAL shows a reader only
committed transactions. That is what makes "nothing is published before it is
on disk" hold by construction: the forwarder (in a thread, or in the uplink
process) reads only through here. `anfang outbox` uses `read_outbox`, which
opens the file read-only and never writes.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from gateway.events import Event
from gateway.store.records import StoreDepth, StoredEvent
from gateway.store.schema import LAST_SEQ_SQL

_READ_AFTER = ("SELECT seq, topic, payload, severity, created FROM events WHERE seq > ? "
               "ORDER BY seq LIMIT ?")


class OutboxReader:
    """A read-only connection to the store's file; thread-safe."""

    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, check_same_thread=False,
                                   isolation_level=None)
        self._lock = threading.Lock()

    def read_after(self, seq: int, limit: int) -> list[StoredEvent]:
        """Up to `limit` committed events with seq greater than `seq`, in seq order."""
        with self._lock:
            rows = self._db.execute(_READ_AFTER, (seq, limit)).fetchall()
        return [StoredEvent(r[0], r[1], bytes(r[2]), r[3], r[4]) for r in rows]

    def oldest_created(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT created FROM events ORDER BY seq LIMIT 1").fetchone()
        return row[0] if row else None

    def close(self) -> None:
        with self._lock:
            self._db.close()


def read_outbox(path: Path | str, limit: int = 50) -> tuple[StoreDepth, list[Event]]:
    """Inspect a store file without opening it for writing (for `anfang outbox`)."""
    db = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    try:
        count, nbytes = db.execute("SELECT count(*), coalesce(sum(length(payload)),0) FROM events").fetchone()
        oldest = db.execute("SELECT created FROM events ORDER BY seq LIMIT 1").fetchone()
        last_seq = db.execute(LAST_SEQ_SQL).fetchone()[0]
        rows = db.execute("SELECT payload FROM events ORDER BY seq LIMIT ?", (limit,)).fetchall()
    finally:
        db.close()
    return (StoreDepth(count, nbytes, oldest[0] if oldest else None, last_seq or 0),
            [Event.from_json(r[0]) for r in rows])

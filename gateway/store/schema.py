"""The database file: its schema, how it is opened, and what happens when it is found corrupt.

SQLite in WAL mode with `synchronous=FULL`: a commit returns only after the
write-ahead log is fsynced, so a committed event survives SIGKILL and power
loss, and readers (the forwarder, the uplink process, `anfang outbox`) read
committed rows while the writer writes.

A file that fails `quick_check` is moved aside (with its `-wal` and `-shm`)
and a new one is started after the seq reservation, so no seq is ever used
twice; the loss is reported as a `gateway/store_recovered` event.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from gateway.clock import Clock
from gateway.events import EventDraft
from gateway.store.records import StoreLimits
from gateway.store.seqreserve import SeqReservation

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq      INTEGER PRIMARY KEY,
    severity INTEGER NOT NULL,
    created  REAL    NOT NULL,
    topic    TEXT    NOT NULL,
    payload  BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_eviction ON events(severity, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

# the last seq ever given: the meta row (kept by transactions that delete), or the highest stored
LAST_SEQ_SQL = ("SELECT max((SELECT coalesce(max(value), 0) FROM meta WHERE key='last_seq'), "
                "(SELECT coalesce(max(seq), 0) FROM events))")
UNLIMITED_PAGES = 4294967294


@dataclass
class OpenedDatabase:
    """The write connection and the books it was found with."""

    db: sqlite3.Connection
    last_seq: int
    count: int
    bytes: int
    recovered: EventDraft | None    # the `store_recovered` report to commit first, if the file was corrupt


def connect(path: Path, limits: StoreLimits) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=5000")
    db.executescript(SCHEMA)
    set_page_limit(db, limits.max_db_bytes)
    return db


def set_page_limit(db: sqlite3.Connection, max_bytes: int | None) -> int:
    """Cap the file at `max_bytes` (None: the disk's own size); returns the cap applied, in bytes.
    SQLite never sets it below the file's current size."""
    page = db.execute("PRAGMA page_size").fetchone()[0]
    pages = max(16, max_bytes // page) if max_bytes else UNLIMITED_PAGES
    applied = db.execute(f"PRAGMA max_page_count={int(pages)}").fetchone()[0]
    return int(applied) * page


def set_last_seq(db: sqlite3.Connection, value: int) -> None:
    db.execute("INSERT INTO meta(key, value) VALUES('last_seq', ?) "
               "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (value,))


def open_database(path: Path, limits: StoreLimits, reservation: SeqReservation,
                  clock: Clock, gateway: str) -> OpenedDatabase:
    """Open (or recover) the database and bring the reservation ahead of its last seq."""
    reserved = reservation.read()
    try:
        db = connect(path, limits)
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"quick_check: {check}")
        last_seq = db.execute(LAST_SEQ_SQL).fetchone()[0] or 0
    except sqlite3.DatabaseError as exc:
        moved = _move_aside(path)
        log.error("event store %s is corrupt (%s); moved aside to %s and started anew", path, exc, moved)
        db = connect(path, limits)
        last_seq = reserved or 0
        set_last_seq(db, last_seq)
        reservation.start_after(last_seq)
        report = EventDraft(cls="gateway", device=gateway, type="store_recovered", severity="alarm",
                            ts=clock.now(),
                            data={"reason": f"database file corrupt: {exc}", "moved_to": str(moved),
                                  "unsent_events_lost_up_to_seq": last_seq,
                                  "note": "events still unsent in the corrupt file are lost; "
                                          "seq continues after every number that may have been used"})
        return OpenedDatabase(db, last_seq, 0, 0, report)
    if reserved is None or reserved < last_seq:
        reservation.start_after(last_seq)
    count, nbytes = db.execute("SELECT count(*), coalesce(sum(length(payload)), 0) FROM events").fetchone()
    return OpenedDatabase(db, last_seq, count, nbytes, None)


def _move_aside(path: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(path) + suffix)
        if src.exists():
            os.replace(src, Path(str(target) + suffix))
    return target

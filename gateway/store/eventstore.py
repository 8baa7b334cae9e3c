"""`EventStore`: the durable, ordered, capped event buffer every event goes through.

It puts the store's parts together and owns the one transaction that commits
a batch: its events get their seq there (dense, never reused), the events the
broker acknowledged are deleted there, and an eviction, if the cap is passed,
is reported there. Events leave the store only when the forwarder reports the
broker's PUBACK (`ack`).

Callers either wait until their events are on disk (`append`, `append_many`)
or hand them over without waiting (`submit`, `submit_many`); see
`gateway.store.groupcommit` for both, and for what a power cut can take.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from gateway.clock import Clock, SystemClock
from gateway.events import Event, EventDraft
from gateway.store.eviction import Evictor, Need, need_for_cap, need_for_disk
from gateway.store.groupcommit import GroupCommit, Request
from gateway.store.outbox import OutboxReader
from gateway.store.records import ReadyEvent, StoreDepth, StoredEvent, StoreLimits, StoreUnavailable
from gateway.store.schema import open_database, set_last_seq
from gateway.store.seqreserve import SeqReservation

log = logging.getLogger(__name__)

# rows inserted or deleted by one SQL statement: 5 parameters a row stay under 999,
# the parameter limit of SQLite before 3.32
ROWS_PER_STATEMENT = 190

_Row = tuple[int, int, float, str, bytes]


class EventStore:
    """Durable, ordered, capped event buffer with group commit. Thread-safe."""

    def __init__(self, path: Path | str, *, site: str, gateway: str,
                 limits: StoreLimits = StoreLimits(), clock: Clock | None = None) -> None:
        self.path = Path(path)
        self.site = site
        self.gateway = gateway
        self.limits = limits
        self.clock = clock or SystemClock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.reservation = SeqReservation(self.path.with_name(self.path.name + ".seq-reserve"))
        self.dropped_total = 0
        self.commits = 0
        self.generation = 0     # +1 after every commit that added events (see add_listener)
        self.last_error: str = ""
        self._listeners: list[Callable[[], None]] = []
        opened = open_database(self.path, limits, self.reservation, self.clock, gateway)
        self._db = opened.db
        self.last_seq, self.count, self.bytes = opened.last_seq, opened.count, opened.bytes
        self._evictor = Evictor(limits, gateway, self.clock, self._delete)
        self._reader = OutboxReader(self.path)
        self._group = GroupCommit(self._commit, self._committed)
        if opened.recovered is not None:
            self.append(opened.recovered)

    # -- handing events over ---------------------------------------------
    def append(self, draft: EventDraft) -> Event:
        """Commit one event durably; returns it with its seq once it is on disk."""
        return self.append_many([draft])[0]

    def append_many(self, drafts: Sequence[EventDraft]) -> list[Event]:
        """Commit several events in one transaction, in the given order; returns once on disk."""
        return self._group.wait_for(self._ready(drafts))

    def submit(self, draft: EventDraft) -> None:
        """Hand one event over without waiting for the disk (see `submit_many`)."""
        self.submit_many([draft])

    def submit_many(self, drafts: Sequence[EventDraft]) -> None:
        """Queue events for the next commit (together, in order) and return at once.

        Blocks only while the queue is full (back-pressure). Data that cannot be
        serialised raises here (TypeError) and nothing is queued.
        """
        self._group.submit(self._ready(drafts))

    def _ready(self, drafts: Sequence[EventDraft]) -> list[ReadyEvent]:
        return [ReadyEvent.of(d, self.site, self.gateway) for d in drafts]

    @property
    def pending(self) -> int:
        """Events handed over and not yet committed (what a power cut now would take)."""
        return self._group.queued

    def ack(self, seqs: Iterable[int]) -> None:
        """The broker acknowledged these events: they may leave the disk."""
        self._group.ack(seqs)

    def add_listener(self, on_commit: Callable[[], None]) -> None:
        """`on_commit()` is called on the writer thread after every commit that added
        events (after `generation` went up); it must only poke, never block."""
        self._listeners.append(on_commit)

    def _committed(self) -> None:
        self.generation += 1
        for on_commit in self._listeners:
            on_commit()

    # -- the commit (on the writer thread) --------------------------------
    def _commit(self, batch: list[Request], acks: list[int]) -> bool:
        try:
            try:
                return self._commit_once(batch, acks)
            except sqlite3.OperationalError as exc:
                if "full" not in str(exc).lower():
                    raise
                log.error("event store: disk full (%s); evicting low-severity events to make room", exc)
                self._make_room()
                return self._commit_once(batch, acks)
        except (sqlite3.Error, OSError) as exc:
            self._fail(batch, exc)
        except Exception as exc:
            # a bug: the writer thread must live on, or every caller waits forever
            log.exception("event store: unexpected error committing %d event(s)",
                          sum(len(r.items) for r in batch))
            self._fail(batch, exc)
        return False

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _commit_once(self, batch: list[Request], acks: list[int]) -> bool:
        first = seq = self.last_seq
        created = time.time()
        rows: list[_Row] = []
        for req in batch:
            for item in req.items:
                seq += 1
                rows.append((seq, item.severity, created, item.topic_suffix, item.payload(seq)))
        self.reservation.cover(seq + 1)    # + 1: an eviction report may follow
        count, nbytes, dropped = self.count, self.bytes, 0
        with self._transaction():
            if acks:
                n, b = self._delete(acks)
                count, nbytes = count - n, nbytes - b
            if rows:
                self._insert(rows)
                count += len(rows)
                nbytes += sum(len(r[4]) for r in rows)
                need = need_for_cap(count, nbytes, self.limits)
                if need is not None:
                    seq, dropped, dn, db_ = self._drop(need, "buffer_full", seq, created)
                    count, nbytes = count + dn, nbytes + db_
            if acks or dropped:
                # last_seq on open is max(meta, max(seq) of the events kept): only a
                # transaction that deletes events needs to record it (one call fewer per commit)
                set_last_seq(self._db, seq)
        self.last_seq = seq
        self.count, self.bytes = count, nbytes
        self.dropped_total += dropped
        self.commits += 1
        self.last_error = self.reservation.error
        first += 1
        for req in batch:
            if req.done is not None:
                req.events = [item.event(first + i, self.site, self.gateway) for i, item in enumerate(req.items)]
            first += len(req.items)
        return bool(rows)

    def _drop(self, need: Need, reason: str, seq: int, created: float) -> tuple[int, int, int, int]:
        """Inside a transaction: evict for `reason` and insert the report after `seq`.
        Returns (last seq, events dropped, change of count, change of bytes)."""
        dropped = self._evictor.evict(self._db, need, reason)
        if dropped is None:
            return seq, 0, 0, 0
        seq += 1
        self.reservation.cover(seq)
        report = ReadyEvent.of(dropped.report, self.site, self.gateway)
        payload = report.payload(seq)
        self._insert([(seq, report.severity, created, report.topic_suffix, payload)])
        return seq, dropped.count, 1 - dropped.count, len(payload) - dropped.bytes

    def _make_room(self) -> None:
        """Disk full: evict a share of the events, and report it, in a transaction of its own."""
        with self._transaction():
            seq, dropped, dn, db_ = self._drop(need_for_disk(self.count), "disk_full", self.last_seq, time.time())
            if dropped:
                set_last_seq(self._db, seq)
        self.last_seq = seq
        self.count += dn
        self.bytes += db_
        self.dropped_total += dropped

    def _fail(self, batch: list[Request], exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        waiting = sum(len(r.items) for r in batch if r.done is not None)
        submitted = sum(len(r.items) for r in batch if r.done is None)
        log.error("event store: cannot commit %d event(s): %s%s", waiting + submitted, exc,
                  f"; {submitted} of them were submitted without waiting and are lost" if submitted else "")
        err = StoreUnavailable(f"event store cannot commit: {exc}")
        for req in batch:
            req.error = err

    # Python's sqlite3 lets go of the GIL for every step of a statement: one step per
    # row (executemany, RETURNING) hands the GIL to a waiting thread once per event and
    # then waits to get it back. So rows go in, and out, a chunk per statement.
    def _insert(self, rows: list[_Row]) -> None:
        for i in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[i:i + ROWS_PER_STATEMENT]
            values = ",".join(["(?,?,?,?,?)"] * len(chunk))
            self._db.execute(f"INSERT INTO events(seq, severity, created, topic, payload) VALUES {values}",
                             [field for row in chunk for field in row])

    def _delete(self, seqs: list[int]) -> tuple[int, int]:
        """Delete these events if still stored; returns (count, bytes) deleted."""
        total_n, total_b = 0, 0
        for i in range(0, len(seqs), ROWS_PER_STATEMENT):
            chunk = seqs[i:i + ROWS_PER_STATEMENT]
            marks = ",".join("?" * len(chunk))
            n, b = self._db.execute(f"SELECT count(*), coalesce(sum(length(payload)), 0) FROM events "
                                    f"WHERE seq IN ({marks})", chunk).fetchone()
            if n:
                self._db.execute(f"DELETE FROM events WHERE seq IN ({marks})", chunk)
            total_n += n
            total_b += b
        return total_n, total_b

    # -- reading ---------------------------------------------------------
    def read_after(self, seq: int, limit: int) -> list[StoredEvent]:
        """Up to `limit` committed events with seq greater than `seq`, in seq order."""
        return self._reader.read_after(seq, limit)

    def depth(self) -> StoreDepth:
        return StoreDepth(self.count, self.bytes, self._reader.oldest_created(), self.last_seq)

    def all_events(self) -> list[Event]:
        """Every stored event, decoded (tests and `anfang outbox`)."""
        return [Event.from_json(e.payload) for e in self.read_after(0, 1 << 62)]

    # -- closing ---------------------------------------------------------
    def close(self) -> None:
        """Commit what was handed over, flush the acks, then close. Idempotent."""
        if self._db is None:
            return
        self._group.close()
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        self._db.close()
        self._reader.close()
        self._db = None   # type: ignore[assignment]

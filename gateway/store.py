"""The durable event store: every event is on disk before anyone moves on.

SQLite in WAL mode with `synchronous=FULL`: a commit returns only after the
write-ahead log is fsynced, so a committed event survives SIGKILL and power
loss. One writer thread owns the write connection and commits in groups: all
`append` calls waiting at that moment share one transaction and one fsync
(group commit), so durability costs latency, not throughput. `seq` is given
inside that same transaction, so it is dense and never reused.

Events leave the store only when the forwarder reports the broker's PUBACK
(`ack`). When the configured cap (count or bytes) is exceeded, the lowest
severity and then the oldest events are deleted, and a `gateway/events_dropped`
event naming the dropped seq ranges is written in the same transaction.

Seq numbers are also reserved ahead in a small side file (`seq.reserve`,
fsynced every RESERVE_BLOCK events), so that if the database file is found
corrupt it can be moved aside and a new one started without ever reusing a seq;
the loss is reported as a `gateway/store_recovered` event.
"""

from __future__ import annotations

import collections
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Sequence

from gateway.clock import Clock, SystemClock
from gateway.events import SEVERITY_RANK, Event, EventDraft, number

log = logging.getLogger(__name__)

RESERVE_BLOCK = 10_000
MAX_BATCH = 2_000
RECENT_CACHE = 20_000
ACK_FLUSH_SECONDS = 0.05
EVICT_LOW_WATER = 0.9
# rows inserted or deleted by one SQL statement: 5 parameters a row stay under 999,
# the parameter limit of SQLite before 3.32
ROWS_PER_STATEMENT = 190
CHAIN_WAIT = 0.002      # seconds the writer waits at most for the callers of the last commit to resume


class StoreUnavailable(Exception):
    """The store cannot take an event at all (disk full even after eviction, closed)."""


@dataclass(frozen=True)
class StoreLimits:
    max_events: int = 1_000_000
    max_bytes: int = 512 * 1024 * 1024
    # Hard limit of the database file (SQLite's max_page_count): a full partition
    # in miniature. None = only the disk's own size. Reaching it is handled as a full disk.
    max_db_bytes: int | None = None


@dataclass(frozen=True)
class StoredEvent:
    """An event as it waits in the store: its seq, topic suffix and exact payload."""

    seq: int
    topic_suffix: str
    payload: bytes
    severity: int
    created: float   # unix time it was committed


@dataclass(frozen=True)
class StoreDepth:
    count: int
    bytes: int
    oldest_created: float | None   # unix time of the oldest unsent event
    last_seq: int


class _AppendRequest:
    """One caller's events waiting for the writer. `done` is a lock held until the
    commit: a bare lock is the cheapest way to park a thread and wake it (far cheaper
    than threading.Event, which matters when thousands of emits a second wait).

    The callers of one commit are woken in a chain: the writer releases the first,
    and each caller releases the `next` as it resumes. Waking them all at once
    would have them fight over the GIL (a dozen futex calls per event); the chain
    lets them run one after another. The writer starts the next commit once the
    chain has ended (or after CHAIN_WAIT): callers that emit again at once then
    share that commit instead of each paying for an fsync of its own."""

    __slots__ = ("drafts", "done", "events", "error", "next", "on_chain_end")

    def __init__(self, drafts: Sequence[EventDraft]) -> None:
        self.drafts = drafts
        self.done = threading.Lock()
        self.done.acquire()
        self.events: list[Event] = []
        self.error: BaseException | None = None
        self.next: _AppendRequest | None = None
        self.on_chain_end: Callable[[], None] | None = None   # set on the last of a commit

    def finish(self) -> None:
        self.done.release()

    def wait(self) -> None:
        try:
            self.done.acquire()
        except BaseException:
            # interrupted (KeyboardInterrupt in the main thread): pass the wake-up on
            # once the commit is done, so the callers after this one are not stranded
            threading.Thread(target=self._pass_on, name="event-store-wake", daemon=True).start()
            raise
        self._pass_on_now()

    def _pass_on(self) -> None:
        self.done.acquire()
        self._pass_on_now()

    def _pass_on_now(self) -> None:
        if self.next is not None:
            self.next.finish()
        elif self.on_chain_end is not None:
            self.on_chain_end()


_SCHEMA = """
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


def _merge_ranges(ranges: list[list[int]]) -> list[list[int]]:
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return out


def _ranges(seqs: Iterable[int]) -> list[list[int]]:
    """[1,2,3,7,9,10] -> [[1,3],[7,7],[9,10]]"""
    out: list[list[int]] = []
    for s in sorted(seqs):
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return out


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
        self._reserve_path = self.path.with_name(self.path.name + ".seq-reserve")
        self._queue: collections.deque[_AppendRequest] = collections.deque()
        self._cond = threading.Condition()
        self._acks: list[int] = []
        self._closed = False
        self._waking = False        # the callers of the last commit are still being woken
        self._reserve_error = ""
        self._recent: collections.deque[StoredEvent] = collections.deque(maxlen=RECENT_CACHE)
        self._recent_lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self._db_lock = threading.Lock()     # the writer connection: writer thread vs set_db_limit
        self.dropped_total = 0
        self.commits = 0
        self.generation = 0     # +1 after every commit that added events (see add_listener)
        self.last_error: str = ""

        recovered = self._open_write_connection()
        self._reader = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._reader.execute("PRAGMA query_only=ON")
        self._reader_lock = threading.Lock()
        self._writer = threading.Thread(target=self._write_loop, name="event-store", daemon=True)
        self._writer.start()
        if recovered is not None:
            self.append(recovered)

    # -- opening and recovery --------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(_SCHEMA)
        if self.limits.max_db_bytes:
            page = db.execute("PRAGMA page_size").fetchone()[0]
            db.execute(f"PRAGMA max_page_count={max(16, self.limits.max_db_bytes // page)}")
        return db

    def _open_write_connection(self) -> EventDraft | None:
        """Open (or recover) the database; return a draft reporting a recovery, if one happened."""
        reserved = self._read_reserve()
        try:
            db = self._connect()
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check}")
            row = db.execute("SELECT max((SELECT coalesce(max(value), 0) FROM meta WHERE key='last_seq'), "
                             "(SELECT coalesce(max(seq), 0) FROM events))").fetchone()
        except sqlite3.DatabaseError as exc:
            moved = self._move_aside()
            log.error("event store %s is corrupt (%s); moved aside to %s and started anew",
                      self.path, exc, moved)
            db = self._connect()
            self._db = db
            self.last_seq = reserved or 0
            self._set_meta_last_seq(self.last_seq)
            self._write_reserve(self.last_seq + RESERVE_BLOCK)
            self.count, self.bytes = 0, 0
            return EventDraft(cls="gateway", device=self.gateway, type="store_recovered",
                              severity="alarm", ts=self.clock.now(),
                              data={"reason": f"database file corrupt: {exc}",
                                    "moved_to": str(moved),
                                    "unsent_events_lost_up_to_seq": self.last_seq,
                                    "note": "events still unsent in the corrupt file are lost; "
                                            "seq continues after every number that may have been used"})
        self._db = db
        self.last_seq = max(row[0] if row else 0, 0)
        if reserved is not None and reserved < self.last_seq:
            reserved = None
        if reserved is None:
            self._write_reserve(self.last_seq + RESERVE_BLOCK)
        self.count, self.bytes = db.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0) FROM events").fetchone()
        return None

    def _move_aside(self) -> Path:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                os.replace(src, Path(str(target) + suffix))
        return target

    def _read_reserve(self) -> int | None:
        try:
            return int(self._reserve_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def _write_reserve(self, value: int) -> None:
        tmp = self._reserve_path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            fh.write(f"{value}\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._reserve_path)
        dirfd = os.open(self._reserve_path.parent, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)
        self._reserved = value

    def _reserve_beyond(self, seq: int) -> None:
        """Keep the reservation ahead of `seq`. If the side file cannot be written (a
        full or failing disk), events still go in: losing them now would be worse than
        the seq reuse the reservation guards against, which needs a corrupt database
        on top. The problem is logged and shown as the store's error, and retried."""
        if seq <= getattr(self, "_reserved", 0):
            return
        try:
            self._write_reserve(seq + RESERVE_BLOCK)
        except OSError as exc:
            message = f"cannot write the seq reservation {self._reserve_path}: {exc}"
            if message != self._reserve_error:
                log.error("event store: %s; events are still committed", message)
                self._reserve_error = message
            self.last_error = message
            return
        self._reserve_error = ""

    def _set_meta_last_seq(self, value: int) -> None:
        self._db.execute("INSERT INTO meta(key, value) VALUES('last_seq', ?) "
                         "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (value,))

    # -- appending -------------------------------------------------------
    def append(self, draft: EventDraft) -> Event:
        """Commit one event durably; returns it with its seq once it is on disk."""
        return self.append_many([draft])[0]

    def append_many(self, drafts: Sequence[EventDraft]) -> list[Event]:
        """Commit several events in one transaction, in the given order."""
        req = _AppendRequest(list(drafts))
        with self._cond:
            if self._closed:
                raise StoreUnavailable("event store is closed")
            self._queue.append(req)
            if not self._waking:    # while the wake-up chain runs, its end wakes the writer
                self._cond.notify()
        req.wait()
        if req.error is not None:
            raise req.error
        return req.events

    def ack(self, seqs: Iterable[int]) -> None:
        """The broker acknowledged these events: they may leave the disk."""
        with self._cond:
            idle = not self._acks
            self._acks.extend(seqs)
            if idle:      # wake a writer that sleeps with nothing to do, so the acks get flushed
                self._cond.notify()

    def set_db_limit(self, max_bytes: int | None) -> int:
        """Change the hard cap of the database file while running (None: lift it); returns the cap applied.

        The cap cannot go below the file's current size (SQLite keeps it there);
        reaching it is handled like a full disk. Used by fault injection.
        """
        with self._db_lock:
            page = self._db.execute("PRAGMA page_size").fetchone()[0]
            pages = max(16, max_bytes // page) if max_bytes else 4294967294
            applied = self._db.execute(f"PRAGMA max_page_count={int(pages)}").fetchone()[0]
        return int(applied) * page

    def add_listener(self, on_commit: Callable[[], None]) -> None:
        """`on_commit()` is called on the writer thread after every commit that added
        events (after `generation` went up); it must only poke, never block."""
        self._listeners.append(on_commit)

    # -- the writer thread ----------------------------------------------
    def _write_loop(self) -> None:
        last_ack_flush = time.monotonic()
        while True:
            with self._cond:
                chain_deadline = None
                while not self._closed:
                    if self._queue:
                        if not self._waking:
                            break
                        now = time.monotonic()
                        chain_deadline = chain_deadline or now + CHAIN_WAIT
                        if now >= chain_deadline:
                            break
                        self._cond.wait(chain_deadline - now)
                        continue
                    timeout = ACK_FLUSH_SECONDS if self._acks else None
                    if self._waking:
                        timeout = min(timeout or CHAIN_WAIT, CHAIN_WAIT)
                    if not self._cond.wait(timeout) and self._acks:
                        break
                batch: list[_AppendRequest] = []
                n = 0
                while self._queue and n < MAX_BATCH:
                    req = self._queue.popleft()
                    batch.append(req)
                    n += len(req.drafts)
                acks = []
                now = time.monotonic()
                if self._acks and (batch or now - last_ack_flush >= ACK_FLUSH_SECONDS or self._closed):
                    acks, self._acks = self._acks, []
                    last_ack_flush = now
                closing = self._closed and not self._queue
            if batch or acks:
                with self._db_lock:
                    self._commit(batch, acks)
            if closing:
                return

    def _commit(self, batch: list[_AppendRequest], acks: list[int]) -> None:
        try:
            added = self._commit_once(batch, acks)
        except sqlite3.OperationalError as exc:
            if "full" not in str(exc).lower():
                self._fail(batch, exc)
                return
            log.error("event store: disk full (%s); evicting low-severity events to make room", exc)
            try:
                self._evict_for_space()
                added = self._commit_once(batch, acks)
            except (sqlite3.Error, OSError) as exc2:
                self._fail(batch, exc2)
                return
        except (sqlite3.Error, OSError) as exc:
            self._fail(batch, exc)
            return
        except Exception as exc:
            # Bad data or a bug: the writer thread must live on, or every caller
            # waits forever. These callers get the error; the next commit is new.
            log.exception("event store: unexpected error committing %d event(s)",
                          sum(len(r.drafts) for r in batch))
            self._fail(batch, exc)
            return
        if not self._reserve_error:
            self.last_error = ""
        for req, following in zip(batch, batch[1:]):
            req.next = following
        if batch:
            with self._cond:
                self._waking = True
            batch[-1].on_chain_end = self._chain_ended
            batch[0].finish()
        if added:
            self.generation += 1
            for on_commit in self._listeners:
                on_commit()

    def _chain_ended(self) -> None:
        with self._cond:
            self._waking = False
            self._cond.notify()

    def _fail(self, batch: list[_AppendRequest], exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.error("event store: cannot commit %d event(s): %s", sum(len(r.drafts) for r in batch), exc)
        err = StoreUnavailable(f"event store cannot commit: {exc}")
        for req in batch:
            req.error = err
            req.finish()

    def _commit_once(self, batch: list[_AppendRequest], acks: list[int]) -> bool:
        db = self._db
        seq = self.last_seq
        created = time.time()
        rows: list[tuple[int, int, float, str, bytes]] = []
        fresh: list[StoredEvent] = []
        taken: list[tuple[_AppendRequest, list[Event]]] = []
        for req in batch:
            events: list[Event] = []
            first = len(rows)
            try:
                for draft in req.drafts:
                    ev = number(draft, seq + len(events) + 1, self.site, self.gateway)
                    payload = ev.to_json()
                    sev = SEVERITY_RANK[ev.severity]
                    rows.append((ev.seq, sev, created, ev.topic_suffix, payload))
                    fresh.append(StoredEvent(ev.seq, ev.topic_suffix, payload, sev, created))
                    events.append(ev)
            except (TypeError, ValueError) as exc:
                # this caller's data cannot be serialised: its emit() raises, the others' events go in
                del rows[first:], fresh[first:]
                req.error = exc
                continue
            seq += len(events)
            taken.append((req, events))
        self._reserve_beyond(seq)
        count, nbytes = self.count, self.bytes
        db.execute("BEGIN IMMEDIATE")
        try:
            if acks:
                deleted = self._delete(acks)
                count -= deleted[0]
                nbytes -= deleted[1]
            dropped_report = None
            if rows:
                self._insert(rows)
                count += len(rows)
                nbytes += sum(len(r[4]) for r in rows)
                if count > self.limits.max_events or nbytes > self.limits.max_bytes:
                    dropped_report, dcount, dbytes = self._evict(count, nbytes, "buffer_full")
                    count -= dcount
                    nbytes -= dbytes
                if dropped_report is not None:
                    seq += 1
                    ev = number(dropped_report, seq, self.site, self.gateway)
                    payload = ev.to_json()
                    sev = SEVERITY_RANK[ev.severity]
                    db.execute("INSERT INTO events(seq, severity, created, topic, payload) "
                               "VALUES (?, ?, ?, ?, ?)", (seq, sev, created, ev.topic_suffix, payload))
                    count += 1
                    nbytes += len(payload)
                    fresh = []   # the recent cache may hold dropped events: forget it
                    with self._recent_lock:
                        self._recent.clear()
            if acks or dropped_report is not None:
                # last_seq on open is max(meta, max(seq) of the events kept): only a
                # transaction that deletes events needs to record it (one call fewer per commit)
                self._set_meta_last_seq(seq)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self.last_seq = seq
        self.count, self.bytes = count, nbytes
        self.commits += 1
        for req, events in taken:
            req.events = events
        if acks:
            self._forget_recent(acks)
        if fresh:
            with self._recent_lock:
                if self._recent and self._recent[-1].seq != fresh[0].seq - 1:
                    self._recent.clear()
                self._recent.extend(fresh)
        return bool(rows)

    def _forget_recent(self, acks: list[int]) -> None:
        """Acknowledged events leave the read cache too (acks come in seq order, nearly always)."""
        acked = set(acks)
        with self._recent_lock:
            recent = self._recent
            while recent and recent[0].seq in acked:
                recent.popleft()
            if recent and max(acked) >= recent[0].seq:
                recent.clear()

    # Python's sqlite3 lets go of the GIL for every step of a statement: one step per
    # row (executemany, RETURNING) hands the GIL to a waiting thread once per event and
    # then waits to get it back. So rows go in, and out, a chunk per statement.
    def _insert(self, rows: list[tuple[int, int, float, str, bytes]]) -> None:
        for i in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[i:i + ROWS_PER_STATEMENT]
            values = ",".join(["(?,?,?,?,?)"] * len(chunk))
            self._db.execute(f"INSERT INTO events(seq, severity, created, topic, payload) VALUES {values}",
                             [field for row in chunk for field in row])

    def _delete(self, seqs: list[int]) -> tuple[int, int]:
        """Delete these events if still stored; returns (count, bytes) deleted."""
        db = self._db
        total_n, total_b = 0, 0
        for i in range(0, len(seqs), ROWS_PER_STATEMENT):
            chunk = seqs[i:i + ROWS_PER_STATEMENT]
            marks = ",".join("?" * len(chunk))
            n, b = db.execute(f"SELECT count(*), coalesce(sum(length(payload)), 0) FROM events "
                              f"WHERE seq IN ({marks})", chunk).fetchone()
            if n:
                db.execute(f"DELETE FROM events WHERE seq IN ({marks})", chunk)
            total_n += n
            total_b += b
        return total_n, total_b

    def _evict(self, count: int, nbytes: int, reason: str) -> tuple[EventDraft | None, int, int]:
        """Delete lowest-severity, oldest events down to the low-water mark (90 % of the cap).

        The low-water mark keeps drop reports rare: one per tenth of the cap, not
        one per event. An earlier `events_dropped` report that is itself evicted
        has its ranges carried into the new report, so no gap goes unexplained.
        """
        low_n = int(self.limits.max_events * EVICT_LOW_WATER)
        low_b = int(self.limits.max_bytes * EVICT_LOW_WATER)
        over_n = count + 1 - low_n
        over_b = nbytes + 1024 - low_b
        victims: list[int] = []
        carried: list[list[int]] = []
        by_sev: dict[str, int] = {}
        freed_b = 0
        names = {v: k for k, v in SEVERITY_RANK.items()}
        own_topic = f"event/gateway/{self.gateway}"
        cur = self._db.execute("SELECT seq, severity, length(payload), topic FROM events "
                               "ORDER BY severity, seq")
        for seq, sev, size, topic in cur:
            if len(victims) >= over_n and freed_b >= over_b:
                break
            victims.append(seq)
            freed_b += size
            by_sev[names[sev]] = by_sev.get(names[sev], 0) + 1
            if topic == own_topic:
                carried.extend(self._dropped_ranges_in(seq))
        cur.close()
        if not victims:
            return None, 0, 0
        n, b = self._delete(victims)
        self.dropped_total += n
        ranges = _merge_ranges(_ranges(victims) + carried)
        log.warning("event store full: dropped %d event(s) %s, seq ranges %s%s", n, by_sev,
                    ranges[:5], " ..." if len(ranges) > 5 else "")
        return EventDraft(cls="gateway", device=self.gateway, type="events_dropped", severity="warning",
                          ts=self.clock.now(),
                          data={"reason": reason, "count": n, "ranges": ranges,
                                "by_severity": by_sev,
                                "limits": {"max_events": self.limits.max_events,
                                           "max_bytes": self.limits.max_bytes}}), n, b

    def _dropped_ranges_in(self, seq: int) -> list[list[int]]:
        row = self._db.execute("SELECT payload FROM events WHERE seq=?", (seq,)).fetchone()
        try:
            ev = Event.from_json(row[0])
        except (TypeError, ValueError, KeyError):
            return []
        if ev.type == "events_dropped":
            return [list(r) for r in ev.data.get("ranges", [])]
        return []

    def _evict_for_space(self) -> None:
        """Disk full: drop the lowest 5 % (at least 100) of events and record that.

        The `events_dropped` report is written in the same transaction as the
        deletion (the deletion makes room for it), so a gap never exists on
        disk without the event that names it, whatever happens next.
        """
        target = max(100, self.count // 20)
        db = self._db
        names = {v: k for k, v in SEVERITY_RANK.items()}
        own_topic = f"event/gateway/{self.gateway}"
        db.execute("BEGIN IMMEDIATE")
        try:
            rows = db.execute("SELECT seq, severity, topic FROM events ORDER BY severity, seq LIMIT ?",
                              (target,)).fetchall()
            victims = [r[0] for r in rows]
            carried: list[list[int]] = []
            by_sev: dict[str, int] = {}
            for seq, sev, topic in rows:
                by_sev[names[sev]] = by_sev.get(names[sev], 0) + 1
                if topic == own_topic:
                    carried.extend(self._dropped_ranges_in(seq))
            n, b = self._delete(victims)
            seq = self.last_seq
            report = None
            if victims:
                seq += 1
                self._reserve_beyond(seq)
                report = number(EventDraft(
                    cls="gateway", device=self.gateway, type="events_dropped", severity="warning",
                    ts=self.clock.now(),
                    data={"reason": "disk_full", "count": n, "ranges": _merge_ranges(_ranges(victims) + carried),
                          "by_severity": by_sev,
                          "limits": {"max_events": self.limits.max_events, "max_bytes": self.limits.max_bytes,
                                     "max_db_bytes": self.limits.max_db_bytes}}),
                    seq, self.site, self.gateway)
                payload = report.to_json()
                db.execute("INSERT INTO events(seq, severity, created, topic, payload) VALUES (?, ?, ?, ?, ?)",
                           (seq, SEVERITY_RANK[report.severity], time.time(), report.topic_suffix, payload))
                self._set_meta_last_seq(seq)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self.count -= n
        self.bytes -= b
        self.dropped_total += n
        if report is not None:
            self.last_seq = seq
            self.count += 1
            self.bytes += len(payload)
            log.warning("event store full (disk): dropped %d event(s) %s, seq ranges %s", n, by_sev,
                        report.data["ranges"][:5])
        with self._recent_lock:
            self._recent.clear()

    # -- reading ---------------------------------------------------------
    def read_after(self, seq: int, limit: int) -> list[StoredEvent]:
        """Up to `limit` stored events with seq greater than `seq`, in seq order."""
        with self._recent_lock:
            if self._recent:
                first = self._recent[0].seq
                last = self._recent[-1].seq
                if first <= seq + 1 <= last:
                    start = seq + 1 - first
                    return [self._recent[i] for i in range(start, min(start + limit, len(self._recent)))]
                if seq >= last:
                    return []
        with self._reader_lock:
            rows = self._reader.execute(
                "SELECT seq, topic, payload, severity, created FROM events WHERE seq > ? "
                "ORDER BY seq LIMIT ?", (seq, limit)).fetchall()
        return [StoredEvent(r[0], r[1], bytes(r[2]), r[3], r[4]) for r in rows]

    def depth(self) -> StoreDepth:
        with self._reader_lock:
            row = self._reader.execute("SELECT created FROM events ORDER BY seq LIMIT 1").fetchone()
        return StoreDepth(self.count, self.bytes, row[0] if row else None, self.last_seq)

    def all_events(self) -> list[Event]:
        """Every stored event, decoded (tests and `anfang outbox`)."""
        return [Event.from_json(e.payload) for e in self.read_after(0, 1 << 62)]

    # -- closing ---------------------------------------------------------
    def close(self) -> None:
        """Flush pending appends and acks, then close. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._writer.join()
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        self._db.close()
        self._reader.close()


def read_outbox(path: Path | str, limit: int = 50) -> tuple[StoreDepth, list[Event]]:
    """Inspect a store file without opening it for writing (for `anfang outbox`)."""
    uri = f"file:{Path(path)}?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        count, nbytes = db.execute("SELECT count(*), coalesce(sum(length(payload)),0) FROM events").fetchone()
        oldest = db.execute("SELECT created FROM events ORDER BY seq LIMIT 1").fetchone()
        row = db.execute("SELECT max((SELECT coalesce(max(value), 0) FROM meta WHERE key='last_seq'), "
                         "(SELECT coalesce(max(seq), 0) FROM events))").fetchone()
        rows = db.execute("SELECT payload FROM events ORDER BY seq LIMIT ?", (limit,)).fetchall()
    finally:
        db.close()
    return (StoreDepth(count, nbytes, oldest[0] if oldest else None, row[0] if row else 0),
            [Event.from_json(r[0]) for r in rows])

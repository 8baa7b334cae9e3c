"""Group commit: the writer thread, the callers that wait for it, and those that do not.

One thread owns the write connection. Everything handed to the store waits in
one queue, in the order it was handed over, and the writer takes all of it at
once (up to `MAX_BATCH` events) into one transaction and one fsync. While an
fsync runs, the queue fills; the next commit takes it all: the slower the disk
(an SD card: 5 to 20 ms an fsync), the more each fsync carries, so the rate
holds where a commit per event would collapse (adaptive batching).

Two ways in:
- `wait_for(items)` parks the caller until its events are committed, and
  returns them with their seq (`ctx.emit`: a driver that holds a device until
  the event is durable).
- `submit(items)` queues them and returns at once (`ctx.submit`: a source that
  need not wait). Seq is still given in the committing transaction, in queue
  order, so it stays dense and ordered; the forwarder reads only committed
  rows, so nothing is published before it is on disk. What a power cut can
  take is what was handed over and not yet committed: at most `SUBMIT_LIMIT`
  queued events plus the commit in progress (`MAX_BATCH`), about one commit
  interval. Back-pressure: a submitter that finds `SUBMIT_LIMIT` events
  waiting is held until the writer has taken them, so a source faster than
  the disk is slowed, never buffered without bound.

Parked callers of one commit are woken in a chain: the writer releases the
first, and each caller releases the next as it resumes. Waking them all at
once would have them fight over the GIL (a dozen futex calls per event); the
chain lets them run one after another. The writer starts the next commit once
the chain has ended (or after `CHAIN_WAIT`): callers that emit again at once
then share that commit instead of each paying for an fsync of its own. A
parked caller sleeps on a bare lock, the cheapest way to park a thread and
wake it (far cheaper than threading.Event).
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Callable, Iterable, Sequence

from gateway.events import Event
from gateway.store.records import ReadyEvent, StoreUnavailable

MAX_BATCH = 2_000         # events one commit takes at most
SUBMIT_LIMIT = 2_000      # submitted events waiting for the writer at most; a submitter waits beyond
ACK_FLUSH_SECONDS = 0.05  # acknowledged seqs wait at most this long for a commit to delete them
CHAIN_WAIT = 0.002        # seconds the writer waits at most for the callers of the last commit to resume


class Request:
    """Events handed over together: committed together, in order. `done` is None for a
    submission (nobody waits); otherwise a lock held until the commit."""

    __slots__ = ("items", "done", "events", "error", "next", "on_chain_end")

    def __init__(self, items: Sequence[ReadyEvent], parked: bool) -> None:
        self.items = items
        self.done: threading.Lock | None = None
        if parked:
            self.done = threading.Lock()
            self.done.acquire()
        self.events: list[Event] = []
        self.error: BaseException | None = None
        self.next: Request | None = None
        self.on_chain_end: Callable[[], None] | None = None   # set on the last parked caller of a commit

    def finish(self) -> None:
        assert self.done is not None
        self.done.release()

    def wait(self) -> None:
        assert self.done is not None
        try:
            self.done.acquire()
        except BaseException:
            # interrupted (KeyboardInterrupt in the main thread): pass the wake-up on
            # once the commit is done, so the callers after this one are not stranded
            threading.Thread(target=self._pass_on_later, name="event-store-wake", daemon=True).start()
            raise
        self._pass_on()

    def _pass_on_later(self) -> None:
        assert self.done is not None
        self.done.acquire()
        self._pass_on()

    def _pass_on(self) -> None:
        if self.next is not None:
            self.next.finish()
        elif self.on_chain_end is not None:
            self.on_chain_end()


Commit = Callable[[list[Request], list[int]], bool]
"""Commits a batch and deletes acknowledged seqs in one transaction; sets each request's
`events` or `error`; returns True if events were added. Never raises."""


class GroupCommit:
    """The queue and the writer thread; see the module docstring."""

    def __init__(self, commit: Commit, on_commit: Callable[[], None]) -> None:
        self._commit = commit
        self._on_commit = on_commit      # after each commit that added events
        self._queue: collections.deque[Request] = collections.deque()
        self._cond = threading.Condition()
        self._room = threading.Condition(self._cond)      # same lock: submitters wait here
        self._acks: list[int] = []
        self._submitted = 0        # submitted events in the queue
        self._queued = 0           # all events in the queue
        self._closed = False
        self._waking = False       # the parked callers of the last commit are still being woken
        self._thread = threading.Thread(target=self._run, name="event-store", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        """Events handed over and not yet taken into a commit."""
        return self._queued

    def wait_for(self, items: Sequence[ReadyEvent]) -> list[Event]:
        req = self._put(items, parked=True)
        req.wait()
        if req.error is not None:
            raise req.error
        return req.events

    def submit(self, items: Sequence[ReadyEvent]) -> None:
        self._put(items, parked=False)

    def _put(self, items: Sequence[ReadyEvent], parked: bool) -> Request:
        req = Request(items, parked)
        with self._cond:
            while not parked and self._submitted >= SUBMIT_LIMIT and not self._closed:
                self._room.wait()
            if self._closed:
                raise StoreUnavailable("event store is closed")
            if not parked:
                self._submitted += len(items)
            self._queue.append(req)
            self._queued += len(items)
            if not self._waking:    # while the wake-up chain runs, its end wakes the writer
                self._cond.notify()
        return req

    def ack(self, seqs: Iterable[int]) -> None:
        with self._cond:
            idle = not self._acks
            self._acks.extend(seqs)
            if idle:      # wake a writer that sleeps with nothing to do, so the acks get flushed
                self._cond.notify()

    def close(self) -> None:
        """Commit what is queued, flush the acks, stop the writer. Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            self._room.notify_all()     # a submitter held back by a full queue: refused now
        self._thread.join()

    # -- the writer thread ----------------------------------------------
    def _run(self) -> None:
        last_ack_flush = time.monotonic()
        while True:
            with self._cond:
                self._wait_for_work()
                batch: list[Request] = []
                n = submitted = 0
                while self._queue and n < MAX_BATCH:
                    req = self._queue.popleft()
                    batch.append(req)
                    n += len(req.items)
                    if req.done is None:
                        submitted += len(req.items)
                self._queued -= n
                if submitted:
                    self._submitted -= submitted
                    self._room.notify_all()
                acks: list[int] = []
                now = time.monotonic()
                if self._acks and (batch or now - last_ack_flush >= ACK_FLUSH_SECONDS or self._closed):
                    acks, self._acks = self._acks, []
                    last_ack_flush = now
                closing = self._closed and not self._queue
            if batch or acks:
                added = self._commit(batch, acks)
                self._wake(batch)
                if added:
                    self._on_commit()
            if closing:
                return

    def _wait_for_work(self) -> None:
        """Holding the lock: return when there is a batch to take, acks are due, or closing."""
        chain_deadline = None
        while not self._closed:
            if self._queue:
                if not self._waking:
                    return
                now = time.monotonic()
                chain_deadline = chain_deadline or now + CHAIN_WAIT
                if now >= chain_deadline:
                    return
                self._cond.wait(chain_deadline - now)
                continue
            timeout = ACK_FLUSH_SECONDS if self._acks else None
            if self._waking:
                timeout = min(timeout or CHAIN_WAIT, CHAIN_WAIT)
            if not self._cond.wait(timeout) and self._acks:
                return

    def _wake(self, batch: list[Request]) -> None:
        parked = [req for req in batch if req.done is not None]
        if not parked:
            return
        for req, following in zip(parked, parked[1:]):
            req.next = following
        with self._cond:
            self._waking = True
        parked[-1].on_chain_end = self._chain_ended
        parked[0].finish()

    def _chain_ended(self) -> None:
        with self._cond:
            self._waking = False
            self._cond.notify()

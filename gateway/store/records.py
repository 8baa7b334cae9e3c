"""The store's records: its limits, an event as it waits on disk, the buffer's depth, and
an event made ready for the writer."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.events import SEVERITY_RANK, Event, EventDraft, number


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


_SEQ_MARK = b',"seq":0,'


@dataclass(frozen=True)
class ReadyEvent:
    """A draft serialised by its caller, waiting only for its seq.

    The JSON is built on the caller's thread, before the event is queued, so
    that data which cannot be serialised fails there (the caller gets the
    TypeError, no seq is used) and the writer only splices the seq in: its
    turn per event is a concatenation, not a `json.dumps`.
    """

    draft: EventDraft
    head: bytes          # the payload up to and including `"seq":`
    tail: bytes          # the payload after the seq's digits
    severity: int
    topic_suffix: str

    @classmethod
    def of(cls, draft: EventDraft, site: str, gateway: str) -> "ReadyEvent":
        ev = number(draft, 0, site, gateway)
        payload = ev.to_json()
        cut = payload.index(_SEQ_MARK)      # `id` comes first and is a UUID: the first match is ours
        return cls(draft, payload[:cut + 7], payload[cut + 8:], SEVERITY_RANK[ev.severity], ev.topic_suffix)

    def payload(self, seq: int) -> bytes:
        return b"%s%d%s" % (self.head, seq, self.tail)

    def event(self, seq: int, site: str, gateway: str) -> Event:
        return number(self.draft, seq, site, gateway)

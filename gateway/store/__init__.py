"""The durable event store: every event is on disk before anyone publishes it.

The package, one job a module:
- `records`: the limits, an event as stored, the buffer's depth, an event made
  ready (serialised) for the writer;
- `schema`: the SQLite file (WAL, `synchronous=FULL`), opening it, and moving
  a corrupt one aside;
- `seqreserve`: the side file that keeps a seq from ever being used twice;
- `groupcommit`: the writer thread, the callers that wait for their commit and
  those that hand events over without waiting, and back-pressure;
- `eviction`: which events go when the buffer or the disk is full, and the one
  `events_dropped` report that names them;
- `outbox`: reading committed events (the forwarder, the uplink process,
  `anfang outbox`);
- `eventstore`: `EventStore`, which puts these together around one transaction.
"""

from gateway.store.eventstore import EventStore
from gateway.store.outbox import OutboxReader, read_outbox
from gateway.store.records import StoreDepth, StoredEvent, StoreLimits, StoreUnavailable

__all__ = ["EventStore", "OutboxReader", "StoreDepth", "StoreLimits", "StoreUnavailable", "StoredEvent",
           "read_outbox"]

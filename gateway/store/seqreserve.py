"""The seq reservation: a side file that keeps seq numbers from ever being used twice.

`seq` is given inside the transaction that commits an event, so it is dense
and survives SIGKILL and power loss with the database. One case the database
cannot cover: its file found corrupt and moved aside. Then the new file would
start at seq 1 again, and upstream would see old numbers for new events. So
the store writes a number ahead of every seq it gives (`RESERVE_BLOCK` at a
time, one fsynced file write per block, through `write_atomic`) and, after a
corruption, starts after the reservation.
"""

from __future__ import annotations

import logging
from pathlib import Path

from gateway.atomicfile import write_atomic

log = logging.getLogger(__name__)

RESERVE_BLOCK = 10_000   # seqs reserved per write of the side file


class SeqReservation:
    """The highest seq that may have been used, kept on disk ahead of the store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.error = ""          # why the last write failed; "" once one succeeds
        self.reserved = self.read() or 0

    def read(self) -> int | None:
        """The reservation on disk, or None if there is none (or it is unreadable)."""
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None

    def write(self, value: int) -> None:
        """Reserve up to `value`, durably; raises OSError."""
        write_atomic(self.path, f"{value}\n")
        self.reserved = value

    def start_after(self, seq: int) -> None:
        """Reserve a block after `seq` (on opening the database); raises OSError."""
        self.write(seq + RESERVE_BLOCK)

    def cover(self, seq: int) -> None:
        """Keep the reservation ahead of `seq`.

        If the side file cannot be written (a full or failing disk), events still
        go in: losing them now would be worse than the seq reuse the reservation
        guards against, which needs a corrupt database on top. The problem is
        logged once, kept in `error`, and the write is tried again next time.
        """
        if seq <= self.reserved:
            return
        try:
            self.start_after(seq)
        except OSError as exc:
            message = f"cannot write the seq reservation {self.path}: {exc}"
            if message != self.error:
                log.error("event store: %s; events are still committed", message)
            self.error = message
            return
        self.error = ""

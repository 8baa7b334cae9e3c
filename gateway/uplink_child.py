"""The uplink child process: runs the `Forwarder` for the gateway process that started it.

    python -m gateway.uplink_child CTL_FD POKE_FD

Started only by `gateway.uplink.Uplink`, which documents the two sockets and
the messages. This process reads events from the store's SQLite file (read
only: the gateway process is the one writer), and everything else arrives on
`ctl`. Its log records go back to the gateway process, so there is one log.

SIGINT and SIGTERM are ignored: under systemd and in a terminal they reach the
whole process group, and the gateway process decides when the connection is
closed (`stop` publishes `offline` first). End-of-file on `ctl` means the
gateway process is gone: exit at once.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from gateway.forwarder import Forwarder
from gateway.lanes import EvidenceItem, EvidenceSpool, TelemetryLane
from gateway.store import OutboxReader, StoredEvent
from gateway.uplink import UplinkSpec

ACK_BUNCH = 1000        # acknowledged seqs sent to the gateway process at once at most...
ACK_DELAY = 0.02        # ...or after this many seconds
STATS_EVERY = 0.1       # seconds between stats messages while something changes
HEARTBEAT_EVERY = 1.0   # stats at least this often: the gateway's watchdog reads progress from them


class _Link:
    """The `ctl` connection, shared by the threads of this process."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def send(self, msg: tuple[Any, ...]) -> None:
        with self._lock:
            try:
                self.conn.send(msg)
            except (OSError, ValueError):
                os._exit(0)      # the gateway process is gone


class _LogToGateway(logging.Handler):
    def __init__(self, link: _Link) -> None:
        super().__init__()
        self.link = link

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        self.link.send(("log", record.levelno, record.name, text))


class StoreFollower:
    """The forwarder's `EventSource` in this process: committed events read from the file the
    gateway process writes, commits learnt from the poke socket, acks sent back on `ctl`."""

    def __init__(self, path: str, link: _Link) -> None:
        self._reader = OutboxReader(path)
        self._link = link
        self._listeners: list[Any] = []
        self._ack_lock = threading.Lock()
        self._acks: list[int] = []
        self._acks_since = 0.0
        self.generation = 0

    def add_listener(self, on_commit: Any) -> None:
        self._listeners.append(on_commit)

    def committed(self) -> None:
        self.generation += 1
        for on_commit in self._listeners:
            on_commit()

    def read_after(self, seq: int, limit: int) -> list[StoredEvent]:
        return self._reader.read_after(seq, limit)

    def ack(self, seqs: list[int]) -> None:
        """Acknowledged seqs go to the gateway process in bunches: each message wakes a
        thread there, and deleting them is not urgent (they are never sent twice by us)."""
        with self._ack_lock:
            if not self._acks:
                self._acks_since = time.monotonic()
            self._acks.extend(seqs)
            due = len(self._acks) >= ACK_BUNCH or time.monotonic() - self._acks_since >= ACK_DELAY
        if due:
            self.flush_acks()

    @property
    def acks_pending(self) -> bool:
        return bool(self._acks)

    def flush_acks(self) -> None:
        with self._ack_lock:
            acks, self._acks = self._acks, []
        if acks:
            self._link.send(("acks", acks))


class _ChildSpool(EvidenceSpool):
    """The evidence spool folder, read by this process; the gateway process adds to it."""

    def __init__(self, folder: Path, link: _Link) -> None:
        super().__init__(folder, owner=False)
        self._link = link

    def done(self, item: EvidenceItem) -> None:
        super().done(item)
        self._link.send(("evidence_done", str(item.path)))


class _RawSocket:
    """The poke socket: raw bytes, waited on with multiprocessing's `wait`."""

    def __init__(self, fd: int) -> None:
        self._sock = socket.socket(fileno=fd)

    def fileno(self) -> int:
        return self._sock.fileno()

    def recv_bytes(self, n: int) -> bytes:
        data = self._sock.recv(n)
        if not data:
            raise EOFError
        return data


def _report_stats(fwd: Forwarder, follower: StoreFollower, link: _Link, stop: threading.Event) -> None:
    """Flush the last acks of a burst, and send the forwarder's figures when they
    change (at most every STATS_EVERY) or at least every HEARTBEAT_EVERY."""
    last: dict[str, Any] = {}
    last_sent = last_check = 0.0
    while not stop.wait(ACK_DELAY if follower.acks_pending else STATS_EVERY):
        follower.flush_acks()
        now = time.monotonic()
        if now - last_check < STATS_EVERY:
            continue
        last_check = now
        stats = fwd.stats.to_dict()
        if stats != last or now - last_sent >= HEARTBEAT_EVERY:
            last, last_sent = dict(stats), now
            stats["progress_age"] = max(0.0, fwd.clock.monotonic() - fwd.last_progress)
            link.send(("stats", stats))


def serve(ctl: Connection, poke: _RawSocket) -> None:
    link = _Link(ctl)
    first = ctl.recv()
    spec: UplinkSpec = first[1]
    root = logging.getLogger()
    root.handlers[:] = [_LogToGateway(link)]
    root.setLevel(spec.log_level)
    latest_health: dict[str, Any] | None = None
    follower = StoreFollower(spec.db_path, link)
    telemetry = TelemetryLane()
    spool = _ChildSpool(Path(spec.spool_dir), link)
    # health is published when the gateway process sends a fresh one, not on a timer of our own
    cfg = dataclasses.replace(spec.mqtt, health_interval=1e9)

    def health() -> dict[str, Any] | None:
        # the gateway process built it; the connection's own figures are fresher here
        return None if latest_health is None else {**latest_health, "forwarder": fwd.stats.to_dict()}

    fwd = Forwarder(cfg, spec.prefix, follower, telemetry, spool, site=spec.site, gateway=spec.gateway,
                    health=health, on_command=lambda cmd: link.send(("command", cmd)))
    fwd.start()
    stop = threading.Event()
    threading.Thread(target=_report_stats, args=(fwd, follower, link, stop), name="uplink-stats", daemon=True).start()
    while True:
        for ready in wait([ctl, poke]):
            if ready is poke:
                try:
                    data = poke.recv_bytes(4096)   # a byte per commit; several commits, one wake-up
                except (EOFError, OSError):
                    os._exit(0)
                if data:
                    follower.committed()
                continue
            try:
                msg = ctl.recv()
            except (EOFError, OSError):
                os._exit(0)      # the gateway process died: the broker publishes our will
            kind = msg[0]
            if kind == "telemetry":
                for reading in msg[1]:
                    telemetry.put(reading)
                fwd.wake()
            elif kind == "health":
                latest_health = msg[1]
                fwd.health_soon()
            elif kind == "evidence":
                spool.rescan()
                fwd.wake()
            elif kind == "reply":
                fwd.publish_reply(msg[1], msg[2], msg[3])
            elif kind == "stop":
                fwd.stop()
                stop.set()
                follower.flush_acks()
                link.send(("stats", {**fwd.stats.to_dict(), "progress_age": 0.0}))
                return


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve(Connection(int(args[0])), _RawSocket(int(args[1])))


if __name__ == "__main__":
    main()

"""Faults between the gateway and the world: a TCP proxy with bad-network modes, a steppable clock.

`FaultProxy` listens on a free loopback port and forwards every connection
to the broker. Its mode can change at any time:

- `pass`:      bytes flow both ways untouched.
- `blackhole`: bytes vanish in both directions; connections stay open, nothing
               is reset (a cable pulled behind a switch, a dead uplink). New
               connections are accepted and then hear nothing. Bytes already
               lost cannot come back, so a connection that went through a
               blackhole stays silent after the mode changes: only the
               gateway's keepalive can find it dead, as on a real network.
- `slow`:      every chunk is delivered `latency` seconds after it arrived
               (in order, both directions): a saturated 3G link.
- `reset`:     every open connection is reset (RST, SO_LINGER 0) and new ones
               are reset as soon as they are accepted.

`SteppableClock` is the gateway's `Clock` for fault runs: the wall clock can
be stepped forward or back (NTP setting the time after boot) while the
monotonic clock is the machine's and never moves.

Threads only (no asyncio): one accept thread, two pump threads per
connection and, in `slow` mode, one delivery thread per direction.
"""

from __future__ import annotations

import collections
import logging
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

log = logging.getLogger(__name__)

MODES = ("pass", "blackhole", "slow", "reset")


class SteppableClock:
    """System time with a wall-clock offset that `step()` changes; monotonic untouched."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(0)

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(timezone.utc) + self._offset

    def monotonic(self) -> float:
        return time.monotonic()

    def step(self, seconds: float) -> None:
        """Jump the wall clock by `seconds` (negative: back in time)."""
        with self._lock:
            self._offset += timedelta(seconds=seconds)

    @property
    def offset_s(self) -> float:
        with self._lock:
            return self._offset.total_seconds()


def _reset(sock: socket.socket) -> None:
    """Close with an RST rather than a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


@dataclass
class _Conn:
    client: socket.socket
    upstream: socket.socket
    blackholed: bool = False
    closed: bool = False
    ended: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self, reset: bool = False) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for s in (self.client, self.upstream):
            if reset:
                _reset(s)
            else:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


class FaultProxy:
    """A loopback TCP proxy to `target` whose mode simulates a bad network (see module doc)."""

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(64)
        self.host, self.port = self._listener.getsockname()
        self._mode = "pass"
        self.latency = 0.0
        self._lock = threading.Lock()
        self._conns: list[_Conn] = []
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.accepted = 0
        self.resets = 0
        self.bytes_dropped = 0

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def mode(self) -> str:
        return self._mode

    def set_mode(self, mode: str, latency: float | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown network mode {mode!r} (known: {', '.join(MODES)})")
        with self._lock:
            self._mode = mode
            if latency is not None:
                self.latency = float(latency)
            conns = list(self._conns)
        log.info("network %s%s", mode, f" ({self.latency:.1f} s latency)" if mode == "slow" else "")
        if mode == "reset":
            for c in conns:
                self.resets += 1
                c.close(reset=True)
        elif mode == "blackhole":
            for c in conns:
                c.blackholed = True

    def open_connections(self) -> int:
        with self._lock:
            self._conns = [c for c in self._conns if not c.closed]
            return len(self._conns)

    # -- life cycle ----------------------------------------------------------
    def start(self) -> "FaultProxy":
        self._thread = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stopped.set()
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            c.close()
        if self._thread is not None:
            self._thread.join(2)

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the work ------------------------------------------------------------
    def _accept_loop(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stopped.is_set():
            try:
                client, _addr = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            if self._mode == "reset":
                self.resets += 1
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                # the far end refuses: so does the proxy (as a router would pass the RST on)
                _reset(client)
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(client, upstream, blackholed=self._mode == "blackhole")
            with self._lock:
                self._conns.append(conn)
            for src, dst, name in ((client, upstream, "up"), (upstream, client, "down")):
                threading.Thread(target=self._pump, args=(conn, src, dst), name=f"proxy-{name}",
                                 daemon=True).start()

    def _pump(self, conn: _Conn, src: socket.socket, dst: socket.socket) -> None:
        delayed: collections.deque[tuple[float, bytes]] = collections.deque()
        ready = threading.Condition()
        sender: threading.Thread | None = None

        def deliver() -> None:
            while True:
                with ready:
                    while not delayed and not conn.closed:
                        ready.wait(0.5)
                    if conn.closed:
                        return
                    due, data = delayed[0]
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(min(wait, 0.05))
                    continue
                with ready:
                    delayed.popleft()
                try:
                    dst.sendall(data)
                except OSError:
                    conn.close()
                    return

        try:
            while not conn.closed:
                try:
                    data = src.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                mode = self._mode
                if conn.blackholed or mode == "blackhole":
                    conn.blackholed = True
                    self.bytes_dropped += len(data)
                    continue
                if mode == "slow" or delayed:
                    if sender is None:
                        sender = threading.Thread(target=deliver, name="proxy-slow", daemon=True)
                        sender.start()
                    with ready:
                        delayed.append((time.monotonic() + (self.latency if mode == "slow" else 0.0), data))
                        ready.notify()
                    continue
                try:
                    dst.sendall(data)
                except OSError:
                    break
        finally:
            if conn.blackholed and not self._stopped.is_set():
                # one side closed a blackholed connection: nothing reaches the other side,
                # not even a FIN, as in a real black hole; the other side ends on its own
                _close_quietly(src)
                with conn.lock:
                    conn.ended += 1
                    if conn.ended >= 2:
                        conn.closed = True
            else:
                conn.close()
            with ready:
                ready.notify_all()


def _close_quietly(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass

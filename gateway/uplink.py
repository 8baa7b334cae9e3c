"""The uplink: the MQTT connection in a process of its own, seen from the gateway.

Under CPython one process runs Python on one core at a time (the GIL). The
drivers, the store's writer and the forwarder together need more than one
core at full rate, and a thread that does a system call per message (the
forwarder) loses the GIL to busy threads on every call. So the forwarder runs
in a child process (`gateway.uplink_child`) and this class stands in for it in
the gateway process, with the same face the supervisor uses (`start`, `stop`,
`health_soon`, `publish_reply`, `stats`, `alive`, `last_progress`).

The child reads events straight from the SQLite file (WAL lets it read while
the writer writes) and holds the one broker connection: events, status and
will, health, telemetry, evidence and commands, exactly as the in-thread
`Forwarder` does. Only the gateway process writes the database: the child
reports PUBACKed seqs and the store deletes them, so there is still one writer.

Two sockets join the processes:
- `poke`: one byte after each commit, written without blocking (dropped when the
  child is behind: it reads the store every turn anyway), so the store's writer
  can never be held up by the child;
- `ctl`: pickled tuples both ways.
  gateway -> child: ("spec", UplinkSpec) first, then ("telemetry", [readings]),
  ("health", dict), ("evidence",) after a file was spooled,
  ("reply", topic, payload, correlation), ("stop",).
  child -> gateway: ("acks", [seq]), ("stats", dict), ("command", IncomingCommand),
  ("evidence_done", path), ("log", level, logger, message).

If the gateway process dies, the child sees end-of-file and exits at once
(without a clean DISCONNECT, so the broker publishes the will). If the child
dies, it is started again with backoff; events not yet acknowledged are sent
again (at least once, same `id`).
"""

from __future__ import annotations

import logging
import random
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, fields
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from gateway.clock import Clock, SystemClock
from gateway.backoff import backoff_delay
from gateway.linkstate import ForwarderStats, IncomingCommand
from gateway.mqttconfig import MqttConfig

if TYPE_CHECKING:     # the uplink process imports this module too: keep it light
    from gateway.lanes import EvidenceSpool, TelemetryLane
    from gateway.store import EventStore

log = logging.getLogger(__name__)

STATS_FIELDS = {f.name for f in fields(ForwarderStats)} - {"connected_since"}
RESTART_MIN = 0.5
RESTART_MAX = 30.0
STOP_TIMEOUT = 8.0
SILENT_LIMIT = 20.0     # seconds without a message from the child (it sends stats every second): hung, kill it
CHECK_EVERY = 5.0


@dataclass(frozen=True)
class UplinkSpec:
    """Everything the child needs to run the connection (sent over `ctl`, never on argv)."""

    mqtt: MqttConfig
    prefix: str
    site: str
    gateway: str
    db_path: str
    spool_dir: str
    log_level: int


class Uplink:
    """The forwarder, run in a child process; see the module docstring."""

    def __init__(self, cfg: MqttConfig, prefix: str, store: EventStore, telemetry: TelemetryLane,
                 evidence: EvidenceSpool, *, site: str, gateway: str,
                 health: Callable[[], dict[str, Any]] | None = None,
                 on_command: Callable[[IncomingCommand], None] | None = None,
                 clock: Clock | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.telemetry = telemetry
        self.evidence = evidence
        self.health_source = health
        self.on_command = on_command
        self.clock = clock or SystemClock()
        self.spec = UplinkSpec(cfg, prefix, site, gateway, str(store.path), str(evidence.folder),
                               logging.getLogger("gateway").getEffectiveLevel())
        self.stats = ForwarderStats()
        self.last_progress = self.clock.monotonic()
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._ctl: Connection | None = None
        self._poke: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._feed = threading.Event()      # telemetry waiting, or health wanted now
        self._health_now = True
        self._threads: list[threading.Thread] = []
        self._rng = random.Random()
        self._last_heard = time.monotonic()
        store.add_listener(self._on_commit)
        telemetry.add_listener(self._feed.set)
        evidence.add_listener(lambda: self._send(("evidence",)))

    # -- life cycle ------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._launch()
        self._threads = [threading.Thread(target=self._watch, name="uplink-watch", daemon=True),
                         threading.Thread(target=self._feeder, name="uplink-feed", daemon=True)]
        for t in self._threads:
            t.start()

    def _launch(self) -> None:
        ctl_here, ctl_there = socket.socketpair()
        poke_here, poke_there = socket.socketpair()
        poke_here.setblocking(False)
        fds = (ctl_there.fileno(), poke_there.fileno())
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.uplink_child", str(fds[0]), str(fds[1])],
            pass_fds=fds, stdin=subprocess.DEVNULL, close_fds=True)
        ctl_there.close()
        poke_there.close()
        self._ctl = Connection(ctl_here.detach())
        self._poke = poke_here
        self._health_now = True
        self._last_heard = time.monotonic()
        self._send(("spec", self.spec))
        self._feed.set()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Ask the child to publish `offline` and disconnect; kill it if it does not exit."""
        self._stop.set()
        self._feed.set()
        self._send(("stop",))
        proc = self._proc
        if proc is not None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("uplink process %d did not stop within %.0f s; killing it", proc.pid, timeout)
                proc.kill()
                proc.wait()
        for t in self._threads:
            t.join(2)
        self._close_sockets()

    def _close_sockets(self) -> None:
        with self._send_lock:
            for closable in (self._ctl, self._poke):
                if closable is not None:
                    try:
                        closable.close()
                    except OSError:
                        pass
            self._ctl, self._poke = None, None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def wake(self) -> None:
        self._on_commit()

    def health_soon(self) -> None:
        self._health_now = True
        self._feed.set()

    def publish_reply(self, topic: str, payload: bytes, correlation: bytes | None) -> bool:
        """Hand a command reply to the child, which queues it on its connection.

        Not gated on `stats.connected`: that is the child's last report, which
        lags behind the connection (a command can arrive before the first
        stats message does), and the child knows better whether it can send.
        """
        return self._send(("reply", topic, payload, correlation))

    # -- to the child ----------------------------------------------------
    def _on_commit(self) -> None:
        """On the store's writer thread: never blocks (a full socket means a poke is pending)."""
        poke = self._poke
        if poke is not None:
            try:
                poke.send(b"c")
            except OSError:
                pass

    def _send(self, msg: tuple[Any, ...]) -> bool:
        with self._send_lock:
            if self._ctl is None:
                return False
            try:
                self._ctl.send(msg)
                return True
            except (OSError, ValueError) as exc:
                log.debug("uplink: cannot send %s: %s", msg[0], exc)
                return False

    def _feeder(self) -> None:
        """Telemetry as it comes (latest wins in the lane meanwhile), health every interval,
        and a look every CHECK_EVERY seconds that the child still talks."""
        next_health = self.clock.monotonic()
        while not self._stop.is_set():
            timeout = CHECK_EVERY if self.health_source is None else \
                max(0.0, min(next_health - self.clock.monotonic(), self.cfg.health_interval, CHECK_EVERY))
            self._feed.wait(timeout)
            self._feed.clear()
            if self._stop.is_set():
                return
            self._kill_if_silent()
            readings = self.telemetry.drain()
            if readings:
                self._send(("telemetry", readings))
            now = self.clock.monotonic()
            if self.health_source is not None and (self._health_now or now >= next_health):
                self._health_now = False
                next_health = now + self.cfg.health_interval
                try:
                    self._send(("health", self.health_source()))
                except Exception:
                    log.exception("uplink: building the health message failed")

    def _kill_if_silent(self) -> None:
        """A child that sends nothing (not even its stats heartbeat) is hung: kill it,
        and `_watch` starts a new one. Real time, not the gateway's clock."""
        proc = self._proc
        silent = time.monotonic() - self._last_heard
        if proc is not None and proc.poll() is None and silent > SILENT_LIMIT:
            log.error("uplink process %d silent for %.0f s; killing it", proc.pid, silent)
            proc.kill()

    # -- from the child --------------------------------------------------
    def _watch(self) -> None:
        """Read the child's messages; start it again with backoff if it dies."""
        while not self._stop.is_set():
            ctl = self._ctl
            try:
                while ctl is not None:
                    msg = ctl.recv()
                    self._last_heard = time.monotonic()
                    try:
                        self._handle(msg)
                    except Exception:       # one bad message must not stop the acks
                        log.exception("uplink: handling %r from the uplink process failed", msg[0])
            except (EOFError, OSError):
                pass
            if self._stop.is_set():
                return
            proc = self._proc
            code = proc.wait() if proc is not None else None
            self.stats.connected = False
            delay = backoff_delay(self.restarts, RESTART_MIN, RESTART_MAX, self._rng)
            self.restarts += 1
            self.stats.last_error = f"uplink process exited (code {code}); restarted in {delay:.1f} s"
            log.error("uplink process exited with code %s; starting it again in %.1f s "
                      "(unacknowledged events are sent again)", code, delay)
            self._close_sockets()
            if self._stop.wait(delay):
                return
            self._launch()

    def _handle(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "acks":
            seqs = msg[1]
            self.store.ack(seqs)
            self.stats.last_seq_acked = max(self.stats.last_seq_acked, max(seqs))
        elif kind == "stats":
            was = self.stats.connected
            for key, value in msg[1].items():
                if key in STATS_FIELDS and key != "last_seq_acked":
                    setattr(self.stats, key, value)
            self.last_progress = self.clock.monotonic() - msg[1].get("progress_age", 0.0)
            if self.stats.connected and not was:
                self.health_soon()     # a fresh health for the new connection
        elif kind == "command":
            if self.on_command is not None:
                self.on_command(msg[1])
        elif kind == "evidence_done":
            self.evidence.forget(Path(msg[1]))
        elif kind == "log":
            _, level, name, text = msg
            logging.getLogger(name).log(level, "%s", text)

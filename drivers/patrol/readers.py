"""Reader front ends: each turns one physical reader into card reads on a queue.

- `Em4100Reader`: RDM6300-style module on a serial port (passive: it talks, we listen).
- `Pn532Reader`: PN532 over UART (active: wake, SAMConfiguration, then InListPassiveTarget polls).
- `WiegandReader`: D0/D1 on two GPIO pins (falling edges -> bits -> frames after a gap).

Serial readers run in a thread each and survive their device going away:
`on_fault(reader, reason)` once when it goes, `on_restore(reader, down_seconds)`
when it is back; in between the port is reopened by path with backoff.
A reader only finds cards; de-duplication and compliance are the engine's.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Protocol

from gateway.backoff import Backoff
from gateway.clock import Clock

from drivers.patrol import pn532
from drivers.patrol.em4100 import Em4100Parser
from drivers.patrol.transport import PortLost, ReopeningPort
from drivers.patrol.wiegand import WiegandDecoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CardRead:
    reader: str
    card: str
    wall: datetime
    mono: float


class Sink(Protocol):
    def card(self, read: CardRead) -> None: ...
    def fault(self, reader: str, port: str, reason: str) -> None: ...
    def restore(self, reader: str, port: str, down_seconds: float) -> None: ...
    def up(self, reader: str) -> None: ...
    def progress(self, reader: str) -> None: ...


class SerialReader:
    """Common life of a serial reader thread: open, talk, lose, reopen."""

    def __init__(self, name: str, path: str, baud: int, clock: Clock, sink: Sink,
                 backoff: Backoff | None = None) -> None:
        self.name = name
        self.clock = clock
        self.sink = sink
        self.port = ReopeningPort(path, baud, time.monotonic, backoff)   # physical timing: real time
        self.faulted_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.counters: dict[str, int] = {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=f"patrol-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.port.close()

    def _main(self) -> None:
        while not self._stop.is_set():
            self.sink.progress(self.name)
            if not self.port.ensure_open():
                self._fault(self.port.last_error or "cannot open")
                self._stop.wait(min(0.2, max(0.01, self.port.retry_in)))
                continue
            try:
                self.session()
            except PortLost as exc:
                self._fault(str(exc))
            except Exception as exc:   # a reader bug must not kill the other readers
                log.exception("reader %s failed", self.name)
                self.port.drop(f"{type(exc).__name__}: {exc}")
                self._fault(self.port.last_error)

    def _fault(self, reason: str) -> None:
        if self.faulted_at is None and not self._stop.is_set():
            self.faulted_at = self.clock.monotonic()
            self.sink.fault(self.name, self.port.path, reason)

    def opened(self) -> None:
        """Call once the device answers: reports the restore after a fault."""
        self.sink.up(self.name)
        if self.faulted_at is not None:
            down = self.clock.monotonic() - self.faulted_at
            self.faulted_at = None
            self.sink.restore(self.name, self.port.path, round(down, 3))

    def emit_card(self, card: str) -> None:
        self.sink.card(CardRead(self.name, card, self.clock.now(), self.clock.monotonic()))

    def session(self) -> None:
        raise NotImplementedError


class Em4100Reader(SerialReader):
    def session(self) -> None:
        parser = Em4100Parser()
        self.opened()
        while not self._stop.is_set():
            self.sink.progress(self.name)
            chunk = self.port.read(256)
            if not chunk:
                continue
            for read in parser.feed(chunk):
                self.emit_card(read.card_id)
            self.counters = {"frames_ok": parser.frames_ok, "bad_checksum": parser.bad_checksum,
                             "bad_frames": parser.bad_frames, "garbage_bytes": parser.garbage_bytes}


class Pn532Reader(SerialReader):
    """Wakes the PN532, configures it, then polls for ISO 14443A cards."""

    ack_timeout = 0.5
    response_timeout = 1.0
    max_failures = 3

    def __init__(self, *args: Any, poll_interval: float = 0.2, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.poll_interval = poll_interval
        self.parser = pn532.Pn532Parser()

    def _transact(self, frame: bytes, code: int, preamble: bytes = b"") -> bytes | None:
        """Send a command; its response parameters, or None after repeated silence/errors."""
        failures = 0
        while not self._stop.is_set() and failures < self.max_failures:
            self.port.write(preamble + frame)
            got = self._await(code)
            if got is not None:
                return got
            failures += 1
            self.counters["retries"] = self.counters.get("retries", 0) + 1
        return None

    def _await(self, code: int) -> bytes | None:
        acked = False
        deadline = time.monotonic() + self.ack_timeout
        while not self._stop.is_set() and time.monotonic() < deadline:
            chunk = self.port.read(64)
            for f in self.parser.feed(chunk):
                if f.kind == "ack" and not acked:
                    acked = True
                    deadline = time.monotonic() + self.response_timeout
                elif f.kind == "nack" or f.kind == "error":
                    return None
                elif f.kind == "data" and f.tfi == pn532.TFI_PN532 and f.code == code + 1:
                    if not acked:
                        self.counters["missing_ack"] = self.counters.get("missing_ack", 0) + 1
                    return f.payload[1:]
        return None

    def _give_up(self, what: str) -> None:
        if self._stop.is_set():           # stopping, not a dead reader
            raise PortLost("stopping")
        self.port.drop(f"PN532 does not answer {what}")
        raise PortLost(self.port.last_error)

    def session(self) -> None:
        self.parser = pn532.Pn532Parser()
        self.port.reset_input()
        if self._transact(pn532.SAM_CONFIGURATION, pn532.CMD_SAM_CONFIGURATION, pn532.WAKEUP) is None:
            self._give_up("SAMConfiguration")
        if self._transact(pn532.RF_RETRIES, pn532.CMD_RF_CONFIGURATION) is None:
            self._give_up("RFConfiguration")
        self.opened()
        while not self._stop.is_set():
            self.sink.progress(self.name)
            params = self._transact(pn532.IN_LIST_PASSIVE_TARGET, pn532.CMD_IN_LIST_PASSIVE_TARGET)
            if params is None:
                self._give_up("InListPassiveTarget")
            targets = pn532.parse_in_list_passive_target(params or b"")
            if targets is None:
                self.counters["bad_responses"] = self.counters.get("bad_responses", 0) + 1
            else:
                for t in targets:
                    self.emit_card(t.card_id)
            self.counters.update({"frames_ok": self.parser.frames_ok, "bad_lcs": self.parser.bad_lcs,
                                  "bad_dcs": self.parser.bad_dcs})
            self._stop.wait(self.poll_interval)


class WiegandReader:
    """D0/D1 falling edges from a gpiozero pin factory into a WiegandDecoder."""

    def __init__(self, name: str, factory: Any, d0: int | str, d1: int | str, gap_s: float,
                 clock: Clock, sink: Sink) -> None:
        self.name = name
        self.factory = factory
        self.clock = clock
        self.sink = sink
        self.decoder = WiegandDecoder(gap_s=gap_s)
        self._lock = threading.Lock()
        self._t0 = factory.ticks()
        self.pins = [factory.pin(d0), factory.pin(d1)]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _now(self) -> float:
        return float(self.factory.ticks_diff(self.factory.ticks(), self._t0))

    def _edge(self, bit: int, ticks: Any, state: Any) -> None:
        if state:                       # only the falling edge (start of the low pulse) is a bit
            return
        t = float(self.factory.ticks_diff(ticks, self._t0))
        with self._lock:
            reads = self.decoder.feed(bit, t)
        for r in reads:
            self.sink.card(CardRead(self.name, r.card_id, self.clock.now(), self.clock.monotonic()))

    def _on_d0(self, ticks: Any, state: Any) -> None:
        self._edge(0, ticks, state)

    def _on_d1(self, ticks: Any, state: Any) -> None:
        self._edge(1, ticks, state)

    def start(self) -> None:
        for pin, cb in zip(self.pins, (self._on_d0, self._on_d1)):
            pin.function = "input"
            pin.edges = "falling"
            pin.pull = "up"
            pin.when_changed = cb
        self._thread = threading.Thread(target=self._main, name=f"patrol-{self.name}", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        while not self._stop.wait(0.005):
            self.sink.progress(self.name)
            with self._lock:
                reads = self.decoder.flush(self._now())
            for r in reads:
                self.sink.card(CardRead(self.name, r.card_id, self.clock.now(), self.clock.monotonic()))

    @property
    def counters(self) -> dict[str, int]:
        d = self.decoder
        return {"frames_ok": d.frames_ok, "bad_length": d.bad_length, "bad_parity": d.bad_parity}

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        for pin in self.pins:
            try:
                pin.when_changed = None
            except Exception:   # a pin already closed by its factory
                pass
        if self._thread is not None:
            self._thread.join(timeout)

"""A serial port that is reopened by path, with backoff, when it goes away.

USB serial adapters get unplugged and re-enumerated; ptys close. Opening by a
stable path (`/dev/serial/by-id/...`, or the simulator's link) means that once
the device is back, reopening the same path finds it. Reads and writes raise
`PortLost` when the device is gone; `ensure_open` retries no faster than the
backoff allows (`gateway.backoff.Backoff`: 0.5 s doubling to 30 s, reset by a
successful open).
"""

from __future__ import annotations

from typing import Any, Callable

import serial

from gateway.backoff import Backoff


class PortLost(Exception):
    """The device behind the port went away (or never came)."""


class ReopeningPort:
    """One serial device by path; `ensure_open(mono)` opens it when due."""

    def __init__(self, path: str, baud: int, monotonic: Callable[[], float],
                 backoff: Backoff | None = None, read_timeout: float = 0.05,
                 opener: Callable[..., Any] = serial.Serial) -> None:
        self.path = path
        self.baud = baud
        self.monotonic = monotonic
        self.backoff = backoff or Backoff()
        self.read_timeout = read_timeout
        self._opener = opener
        self._port: Any = None
        self._next_try = 0.0
        self.last_error = ""

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def ensure_open(self) -> bool:
        """Open if closed and the backoff allows; True when open. Never raises."""
        if self._port is not None:
            return True
        now = self.monotonic()
        if now < self._next_try:
            return False
        try:
            self._port = self._opener(port=self.path, baudrate=self.baud, bytesize=8, parity="N",
                                      stopbits=1, timeout=self.read_timeout, write_timeout=1.0,
                                      exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            self.last_error = _short(exc)
            self._next_try = now + self.backoff.next()
            return False
        self.backoff.reset()
        self.last_error = ""
        return True

    @property
    def retry_in(self) -> float:
        return max(0.0, self._next_try - self.monotonic())

    def read(self, size: int = 256) -> bytes:
        """Up to `size` bytes, waiting at most the read timeout; raises PortLost."""
        if self._port is None:
            raise PortLost(self.last_error or "not open")
        try:
            waiting = self._port.in_waiting
            return self._port.read(max(1, min(size, waiting)) if waiting else 1)
        except (serial.SerialException, OSError, TypeError) as exc:
            self._lost(exc)
            raise PortLost(self.last_error) from None

    def write(self, data: bytes) -> None:
        if self._port is None:
            raise PortLost(self.last_error or "not open")
        try:
            self._port.write(data)
            self._port.flush()
        except (serial.SerialException, OSError, TypeError) as exc:
            self._lost(exc)
            raise PortLost(self.last_error) from None

    def reset_input(self) -> None:
        if self._port is not None:
            try:
                self._port.reset_input_buffer()
            except (serial.SerialException, OSError, TypeError) as exc:
                self._lost(exc)
                raise PortLost(self.last_error) from None

    def _lost(self, exc: BaseException) -> None:
        self.last_error = _short(exc)
        self.close()
        self._next_try = self.monotonic() + self.backoff.next()

    def drop(self, reason: str) -> None:
        """Close on purpose (the device stopped answering) and retry after the backoff."""
        self.last_error = reason
        self.close()
        self._next_try = self.monotonic() + self.backoff.next()

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except Exception:  # closing a vanished device may fail; it is closed either way
                pass


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]

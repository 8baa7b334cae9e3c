"""systemd's notify protocol (sd_notify), in the standard library only.

Under systemd with `Type=notify`, the service manager puts the path of a
datagram socket in `NOTIFY_SOCKET`; the service tells it how it is doing by
sending newline-separated `KEY=value` assignments there:

    READY=1        start-up is finished (the unit becomes "active")
    STATUS=...     one line shown by `systemctl status`
    WATCHDOG=1     "still alive": must come more often than WatchdogSec
    STOPPING=1     a clean stop has begun

A path starting with '@' names a socket in Linux's abstract namespace (the
'@' stands for a leading NUL byte). Without `NOTIFY_SOCKET` (run by hand,
under tests) every call is a no-op, so callers never need to check.

A failed send never raises: the gateway must keep working even if the
service manager went away (daemon-reexec, a container). The first failure of
a run of failures is logged as a warning, the rest at debug level.

`watchdog_interval()` reads `WATCHDOG_USEC` (and `WATCHDOG_PID`, which names
the process the watchdog is meant for) and returns how often to ping: half
the timeout, as sd_watchdog_enabled(3) recommends.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from typing import Mapping

log = logging.getLogger(__name__)

STATUS_MAX_CHARS = 200
"""A STATUS line longer than this is cut (with an ellipsis): `systemctl status`
shows one line, and the whole datagram must stay well under the manager's
receive buffer (systemd reads at most 4 KiB per message)."""


_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")


def one_line(text: str, limit: int = STATUS_MAX_CHARS) -> str:
    """`text` as one line for STATUS=: whitespace runs (newlines too) become
    one space, control characters go, and it is cut to `limit` characters."""
    text = "".join(ch if ch.isprintable() or ch.isspace() else "" for ch in str(text))
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "\u2026"
    return text


class SdNotifier:
    """Sends notify messages to one socket address, or does nothing.

    Thread-safe: the supervisor's watchdog thread and its main thread may
    both send.
    """

    def __init__(self, address: str | None, environ: Mapping[str, str] | None = None) -> None:
        """`address` is `NOTIFY_SOCKET`'s value ('/path' or '@abstract'), or None
        for a no-op notifier. `environ` is where `watchdog_interval()` looks."""
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self._address: str | None = None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._failing = False
        if not address:
            return
        if address.startswith("@"):
            target = "\0" + address[1:]
        elif address.startswith("/"):
            target = address
        else:
            # systemd >= 253 also knows "vsock:CID:PORT" (for VMs); a gateway on
            # a wall never gets one, so it is reported, not implemented.
            log.warning("NOTIFY_SOCKET %r is not a unix socket address; "
                        "systemd notifications are off", address)
            return
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        except OSError as exc:
            log.warning("cannot open a socket for systemd notifications: %s", exc)
            return
        # Non-blocking: when the manager's queue is full (it is stuck; systemd
        # gives its socket megabytes) the send fails at once instead of stalling
        # the supervisor. poll() cannot wait for room on an unconnected unix
        # datagram socket, so a timeout would only spin. A lost WATCHDOG=1 is
        # sent again at the next interval.
        sock.setblocking(False)
        self._sock = sock
        self._address = target

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "SdNotifier":
        """The notifier `NOTIFY_SOCKET` asks for; a no-op one when it is unset."""
        return cls(environ.get("NOTIFY_SOCKET") or None, environ)

    @property
    def enabled(self) -> bool:
        """Whether messages go anywhere (we run under a service manager)."""
        return self._sock is not None

    def notify(self, **fields: object) -> bool:
        """Send `KEY=value` assignments in one datagram, in the order given:
        `notify(READY=1, STATUS="up")`. Values become one line each.

        Returns whether the message was handed to the manager; False when
        disabled or the send failed (never raises for a send failure).
        Raises ValueError for a malformed key: that is a programming error.
        """
        lines = []
        for key, value in fields.items():
            if not _KEY.match(key):
                raise ValueError(f"sd_notify key {key!r} is not an upper-case name")
            lines.append(f"{key}={one_line(str(value), limit=1024)}")
        if not lines:
            return False
        return self._send("\n".join(lines))

    def ready(self, status: str | None = None) -> bool:
        """READY=1 (optionally with a STATUS line in the same message)."""
        if status is None:
            return self.notify(READY=1)
        return self.notify(READY=1, STATUS=one_line(status))

    def status(self, line: str) -> bool:
        """STATUS=line: what `systemctl status` shows under "Status:"."""
        return self.notify(STATUS=one_line(line))

    def watchdog(self) -> bool:
        """WATCHDOG=1: the keep-alive ping."""
        return self.notify(WATCHDOG=1)

    def stopping(self, status: str | None = None) -> bool:
        """STOPPING=1, sent when a clean stop begins."""
        if status is None:
            return self.notify(STOPPING=1)
        return self.notify(STOPPING=1, STATUS=one_line(status))

    def extend_timeout(self, seconds: float) -> bool:
        """EXTEND_TIMEOUT_USEC: ask for more time to start or stop (a long
        store recovery), counted from now."""
        return self.notify(EXTEND_TIMEOUT_USEC=max(1, int(seconds * 1_000_000)))

    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when
        no watchdog is set for this process."""
        raw = self._environ.get("WATCHDOG_USEC")
        if not raw:
            return None
        try:
            usec = int(raw)
        except ValueError:
            log.warning("WATCHDOG_USEC=%r is not a number; watchdog ignored", raw)
            return None
        if usec <= 0:
            return None
        pid = self._environ.get("WATCHDOG_PID")
        if pid:
            try:
                if int(pid) != os.getpid():
                    return None
            except ValueError:
                log.warning("WATCHDOG_PID=%r is not a number; watchdog ignored", pid)
                return None
        return usec / 2_000_000

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def __enter__(self) -> "SdNotifier":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, message: str) -> bool:
        with self._lock:
            if self._sock is None or self._address is None:
                return False
            try:
                self._sock.sendto(message.encode("utf-8"), self._address)
            except OSError as exc:
                if not self._failing:
                    log.warning("systemd notification failed (%s); will keep trying", exc)
                    self._failing = True
                else:
                    log.debug("systemd notification failed again: %s", exc)
                return False
            if self._failing:
                log.info("systemd notifications delivered again")
                self._failing = False
            return True

"""Commands in over MQTT (`cmd/{name}`), answered over MQTT 5 request/response.

Only commands that a driver (or the gateway itself) registered are accepted;
each handler validates its own arguments. A command is a JSON object (or an
empty payload, meaning `{}`); the reply is `{"ok": true, "command", "result"}`
or `{"ok": false, "command", "error"}` with the reason, published to the
request's Response Topic with its Correlation Data. Requests without a
Response Topic (MQTT 3.1.1) are answered on `{prefix}/reply/{name}`.

Handlers run on a worker thread of the router, never on paho's network thread.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
from typing import Any, Callable, Mapping

from gateway.driver import CommandHandler, CommandRefused
from gateway.linkstate import IncomingCommand

log = logging.getLogger(__name__)

MAX_COMMAND_BYTES = 64 * 1024
_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")

ReplySender = Callable[[str, bytes, "bytes | None"], bool]


class CommandRouter:
    """Routes commands to their handlers and sends the replies."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._handlers: dict[str, tuple[str, CommandHandler]] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[IncomingCommand | None] = queue.Queue(maxsize=100)
        self._thread: threading.Thread | None = None
        self.send_reply: ReplySender | None = None
        self.handled = 0
        self.refused = 0

    def register(self, owner: str, handlers: Mapping[str, CommandHandler]) -> list[str]:
        """Register an owner's handlers; returns the names refused because another owner has them."""
        clashes = []
        with self._lock:
            for name, handler in handlers.items():
                if not _NAME_RE.fullmatch(name):
                    raise ValueError(f"command name {name!r} must be lower_snake_case")
                if name in self._handlers and self._handlers[name][0] != owner:
                    clashes.append(name)
                    continue
                self._handlers[name] = (owner, handler)
        return clashes

    def unregister(self, owner: str) -> None:
        with self._lock:
            for name in [n for n, (o, _) in self._handlers.items() if o == owner]:
                del self._handlers[name]

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._handlers)

    # -- called on paho's thread: queue only -----------------------------
    def submit(self, cmd: IncomingCommand) -> None:
        try:
            self._queue.put_nowait(cmd)
        except queue.Full:
            log.warning("command %s dropped: %d commands already waiting", cmd.name, self._queue.qsize())

    # -- worker ----------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="commands", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(5)

    def _run(self) -> None:
        while True:
            cmd = self._queue.get()
            if cmd is None:
                return
            reply = self.execute(cmd.name, cmd.payload)
            topic = cmd.response_topic or f"{self.prefix}/reply/{cmd.name}"
            if self.send_reply is not None:
                self.send_reply(topic, json.dumps(reply).encode(), cmd.correlation)

    def execute(self, name: str, payload: bytes) -> dict[str, Any]:
        """Run one command; always returns a reply, never raises."""
        def refuse(reason: str) -> dict[str, Any]:
            self.refused += 1
            log.warning("command %r refused: %s", name, reason)
            return {"ok": False, "command": name, "error": reason}

        with self._lock:
            entry = self._handlers.get(name)
        if entry is None:
            allowed = ", ".join(self.names()) or "none"
            return refuse(f"unknown command {name!r}; allowed: {allowed}")
        if len(payload) > MAX_COMMAND_BYTES:
            return refuse(f"command payload too large ({len(payload)} bytes, at most {MAX_COMMAND_BYTES})")
        try:
            args = json.loads(payload) if payload.strip() else {}
        except (ValueError, UnicodeDecodeError) as exc:
            return refuse(f"payload is not JSON: {exc}")
        if not isinstance(args, dict):
            return refuse("payload must be a JSON object of arguments")
        owner, handler = entry
        try:
            result = handler(args)
        except CommandRefused as exc:
            return refuse(str(exc))
        except Exception as exc:
            log.exception("command %r failed in %s", name, owner)
            return refuse(f"command failed in {owner}: {type(exc).__name__}: {exc}")
        self.handled += 1
        log.info("command %r done by %s", name, owner)
        return {"ok": True, "command": name, "result": dict(result or {})}

"""The event record (docs/mqtt.md, "event") and the one place that builds it.

A driver describes what happened as an `EventDraft` (class, device, type,
severity, data, and the instant it happened at the device). The event store
turns a draft into an `Event` by giving it `seq` inside the transaction that
commits it, so `seq` is dense and never reused. `id` is a UUIDv7: unique,
time-ordered, fixed at draft time, and therefore the same on every redelivery.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any, Mapping

from gateway.clock import iso_utc

SEVERITIES: tuple[str, ...] = ("info", "warning", "alarm", "critical")
SEVERITY_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}
EVENT_CLASSES: tuple[str, ...] = ("ir_beam", "patrol", "fire_pump", "camera", "gateway")
NAME_PATTERN = r"[a-z0-9_-]+"
DEVICE_PATTERN = r"[A-Za-z0-9_.-]+"
_NAME_RE = re.compile(NAME_PATTERN)
_DEVICE_RE = re.compile(DEVICE_PATTERN)
_TYPE_RE = re.compile(r"[a-z][a-z0-9_]*")


class _Uuid7:
    """UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then a counter and random bits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def __call__(self) -> str:
        rand = int.from_bytes(os.urandom(10), "big")
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms <= self._last_ms:
                self._counter += 1
                ms = self._last_ms
            else:
                self._counter = rand >> 70  # a random start (10 bits) leaves room to count
                self._last_ms = ms
            counter = self._counter & 0xFFF
        h = f"{(ms & 0xFFFFFFFFFFFF) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | (rand & ((1 << 62) - 1)):032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


new_event_id = _Uuid7()


@dataclass(frozen=True)
class EventDraft:
    """An event before the store numbers it."""

    cls: str
    device: str
    type: str
    severity: str
    ts: datetime
    data: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_event_id)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITY_RANK:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        if not _NAME_RE.fullmatch(self.cls):
            raise ValueError(f"event class {self.cls!r} must match {NAME_PATTERN}")
        if not _DEVICE_RE.fullmatch(self.device):
            raise ValueError(f"device name {self.device!r} must match {DEVICE_PATTERN}")
        if not _TYPE_RE.fullmatch(self.type):
            raise ValueError(f"event type {self.type!r} must be lower_snake_case")
        if self.ts.tzinfo is None:
            raise ValueError("event ts must be timezone-aware")


@dataclass(frozen=True)
class Event:
    """A committed event, exactly as it goes upstream."""

    id: str
    seq: int
    ts: str
    site: str
    gateway: str
    cls: str
    device: str
    type: str
    severity: str
    data: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "seq": self.seq, "ts": self.ts, "site": self.site,
                "gateway": self.gateway, "class": self.cls, "device": self.device,
                "type": self.type, "severity": self.severity, "data": dict(self.data)}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False,
                          default=_json_default).encode("utf-8")

    @property
    def topic_suffix(self) -> str:
        return f"event/{self.cls}/{self.device}"

    @classmethod
    def from_json(cls, payload: bytes | str) -> "Event":
        d = json.loads(payload)
        return cls(id=d["id"], seq=d["seq"], ts=d["ts"], site=d["site"], gateway=d["gateway"],
                   cls=d["class"], device=d["device"], type=d["type"], severity=d["severity"],
                   data=d.get("data", {}))


def number(draft: EventDraft, seq: int, site: str, gateway: str) -> Event:
    """Give a draft its sequence number: the only way an Event is made."""
    return Event(id=draft.id, seq=seq, ts=iso_utc(draft.ts), site=site, gateway=gateway,
                 cls=draft.cls, device=draft.device, type=draft.type, severity=draft.severity,
                 data=draft.data)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"event data value of type {type(value).__name__} is not JSON-serialisable")


def dumps_data(data: Any) -> str:
    """Serialise event data the way events are serialised (datetimes as ISO UTC, numpy as lists)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def event_schema() -> dict[str, Any]:
    """The JSON Schema of an event, as shipped in the package."""
    text = resources.files("gateway").joinpath("event.schema.json").read_text(encoding="utf-8")
    return json.loads(text)

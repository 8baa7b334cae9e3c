"""The two lanes beside the event lane: telemetry (latest wins) and evidence (large, resumable).

Telemetry readings are kept in memory, one slot per (class, device): a new
reading replaces one not yet sent, so under pressure telemetry thins out and
never delays an event. Evidence files are spooled to disk and leave the spool
only after the broker's PUBACK, so an upload interrupted by an outage or a
restart is simply sent again; the forwarder sends them only while the event
lane is empty.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping

from gateway.clock import iso_utc
from gateway.events import dumps_data

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TelemetryReading:
    cls: str
    device: str
    ts: datetime
    values: Mapping[str, Any]

    @property
    def topic_suffix(self) -> str:
        return f"telemetry/{self.cls}/{self.device}"

    def payload(self, site: str, gateway: str) -> bytes:
        return dumps_data({"ts": iso_utc(self.ts), "site": site, "gateway": gateway,
                           "class": self.cls, "device": self.device,
                           "values": dict(self.values)}).encode("utf-8")


class TelemetryLane:
    """Latest reading per (class, device); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[tuple[str, str], TelemetryReading] = {}
        self._listeners: list[Callable[[], None]] = []
        self.offered = 0
        self.thinned = 0

    def add_listener(self, on_put: Callable[[], None]) -> None:
        """`on_put()` is called after each new reading; it must only poke, never block."""
        self._listeners.append(on_put)

    def put(self, reading: TelemetryReading) -> None:
        key = (reading.cls, reading.device)
        with self._lock:
            self.offered += 1
            if key in self._slots:
                self.thinned += 1
            self._slots[key] = reading
        for on_put in self._listeners:
            on_put()

    def drain(self) -> list[TelemetryReading]:
        with self._lock:
            out = list(self._slots.values())
            self._slots.clear()
        return out

    def __len__(self) -> int:
        with self._lock:
            return len(self._slots)


@dataclass(frozen=True)
class EvidenceItem:
    """One spooled evidence file."""

    path: Path          # the spooled copy
    meta_path: Path
    event_id: str
    name: str           # the original file name, e.g. "clip.mp4"
    content_type: str
    size: int

    @property
    def topic_suffix(self) -> str:
        return f"evidence/{self.event_id}"


class EvidenceSpool:
    """A folder of files waiting for the evidence lane, oldest first, with a size cap."""

    def __init__(self, folder: Path, max_bytes: int = 1 << 30, *, owner: bool = True) -> None:
        """`owner`: this process adds files (and clears unfinished copies on start);
        the uplink process opens the same folder with owner=False and only sends."""
        self.folder = folder
        self.max_bytes = max_bytes
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self.dropped = 0
        if owner:
            for tmp in self.folder.glob("*.tmp"):
                tmp.unlink(missing_ok=True)
        self._pending = self._scan()     # kept in memory: the forwarder asks every turn

    def add_listener(self, on_add: Callable[[], None]) -> None:
        """`on_add()` is called after each file is spooled."""
        self._listeners.append(on_add)

    def rescan(self) -> None:
        """Read the folder again (files added by another process)."""
        found = self._scan()
        with self._lock:
            self._pending = found

    def forget(self, path: Path) -> None:
        """Another process sent and removed this item."""
        with self._lock:
            self._pending = [i for i in self._pending if i.path != path]

    def add(self, event_id: str, source: Path, content_type: str) -> EvidenceItem:
        """Copy `source` into the spool; the item is visible only once complete."""
        stamp = f"{time.time_ns():020d}"
        base = f"{stamp}-{event_id}-{source.name}"
        data_path = self.folder / base
        tmp = self.folder / (base + ".tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, data_path)
        meta = {"event_id": event_id, "name": source.name, "content_type": content_type}
        meta_path = self.folder / (base + ".json")
        tmp_meta = self.folder / (base + ".json.tmp")
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp_meta, meta_path)
        item = EvidenceItem(data_path, meta_path, event_id, source.name, content_type, data_path.stat().st_size)
        with self._lock:
            self._pending.append(item)
        self._enforce_cap()
        for on_add in self._listeners:
            on_add()
        return item

    def items(self) -> list[EvidenceItem]:
        with self._lock:
            return list(self._pending)

    def _scan(self) -> list[EvidenceItem]:
        out = []
        metas = sorted(self.folder.glob("*.json"))
        for meta_path in metas:
            data_path = meta_path.with_suffix("")
            try:
                meta = json.loads(meta_path.read_text())
                size = data_path.stat().st_size
            except (OSError, ValueError) as exc:
                log.error("evidence spool: unreadable item %s (%s); removing it", meta_path.name, exc)
                meta_path.unlink(missing_ok=True)
                data_path.unlink(missing_ok=True)
                continue
            out.append(EvidenceItem(data_path, meta_path, meta["event_id"], meta["name"],
                                    meta["content_type"], size))
        return out

    def next(self) -> EvidenceItem | None:
        with self._lock:
            return self._pending[0] if self._pending else None

    def done(self, item: EvidenceItem) -> None:
        with self._lock:
            item.meta_path.unlink(missing_ok=True)
            item.path.unlink(missing_ok=True)
            if item in self._pending:
                self._pending.remove(item)

    def _enforce_cap(self) -> None:
        items = self.items()
        total = sum(i.size for i in items)
        while items and total > self.max_bytes:
            victim = items.pop(0)
            log.warning("evidence spool over %d bytes: dropping %s of event %s",
                        self.max_bytes, victim.name, victim.event_id)
            self.done(victim)
            self.dropped += 1
            total -= victim.size

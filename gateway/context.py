"""The real `DriverContext`: how a driver's events reach the store and the lanes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from gateway.clock import Clock
from gateway.driver import Emission
from gateway.events import Event, EventDraft
from gateway.lanes import EvidenceSpool, TelemetryLane, TelemetryReading
from gateway.store import EventStore

if TYPE_CHECKING:
    from gateway.signing import EvidenceKey

log = logging.getLogger(__name__)


@dataclass
class GatewayContext:
    """Handed to one driver; binds its event class and its own state folder."""

    site: str
    gateway: str
    clock: Clock
    state_dir: Path
    timezone: str
    store: EventStore
    telemetry_lane: TelemetryLane
    evidence_spool: EvidenceSpool
    event_class: str
    resources: Mapping[str, Any] = field(default_factory=dict)
    evidence_key: "EvidenceKey | None" = None

    def __post_init__(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)

    def emit(self, device: str, type: str, severity: str, data: Mapping[str, Any] | None = None,
             ts: datetime | None = None, cls: str | None = None, id: str | None = None) -> Event:
        draft = EventDraft(cls=cls or self.event_class, device=device, type=type, severity=severity,
                           ts=ts or self.clock.now(), data=dict(data or {}), **({"id": id} if id else {}))
        return self.store.append(draft)

    def emit_many(self, emissions: Sequence[Emission]) -> list[Event]:
        return self.store.append_many(self._drafts(emissions))

    def submit(self, emissions: Sequence[Emission]) -> None:
        self.store.submit_many(self._drafts(emissions))

    def _drafts(self, emissions: Sequence[Emission]) -> list[EventDraft]:
        now = self.clock.now()
        return [EventDraft(cls=e.cls or self.event_class, device=e.device, type=e.type, severity=e.severity,
                           ts=e.ts or now, data=dict(e.data or {})) for e in emissions]

    def telemetry(self, device: str, values: Mapping[str, Any], ts: datetime | None = None,
                  cls: str | None = None) -> None:
        self.telemetry_lane.put(TelemetryReading(cls or self.event_class, device,
                                                 ts or self.clock.now(), dict(values)))

    def evidence(self, event_id: str, path: Path, content_type: str) -> None:
        self.evidence_spool.add(event_id, Path(path), content_type)

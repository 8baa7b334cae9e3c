"""Shared fixtures: a real mosquitto broker, and real driver contexts over a real event store."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from gateway.clock import Clock, SystemClock
from gateway.context import GatewayContext
from gateway.events import Event
from gateway.lanes import EvidenceSpool, TelemetryLane, TelemetryReading
from gateway.signing import EvidenceKey
from gateway.store import EventStore
from sim.broker import LocalBroker
from tests.helpers import wait_until


@pytest.fixture
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A real mosquitto on a free localhost port: `.host`, `.port`, `.url`, `.stop()`, `.start()`."""
    b = LocalBroker(workdir=tmp_path_factory.mktemp("broker"))
    b.start()
    try:
        yield b
    finally:
        b.close()


class _RecordingLane(TelemetryLane):
    def __init__(self, seen: list[tuple[str, dict[str, Any]]]) -> None:
        super().__init__()
        self._seen = seen

    def put(self, reading: TelemetryReading) -> None:
        self._seen.append((reading.device, dict(reading.values)))
        super().put(reading)


class _RecordingSpool(EvidenceSpool):
    def __init__(self, folder: Path, seen: list[tuple[str, Path]]) -> None:
        super().__init__(folder)
        self._seen = seen

    def add(self, event_id: str, source: Path, content_type: str):  # type: ignore[override]
        item = super().add(event_id, source, content_type)
        self._seen.append((event_id, Path(source)))
        return item


class TestContext(GatewayContext):
    """A real GatewayContext with helpers for asserting on what a driver did."""

    __test__ = False  # not a test class

    telemetry_seen: list[tuple[str, dict[str, Any]]]
    evidence_seen: list[tuple[str, Path]]

    def events(self, type: str | None = None) -> list[Event]:
        evs = self.store.all_events()
        return [e for e in evs if type is None or e.type == type]

    def wait_event(self, type_or_predicate: str | Callable[[Event], bool], timeout: float = 5.0) -> Event:
        pred = (lambda e: e.type == type_or_predicate) if isinstance(type_or_predicate, str) else type_or_predicate

        def find() -> Event | None:
            return next((e for e in self.events() if pred(e)), None)

        return wait_until(find, timeout, message=lambda: f"event {type_or_predicate!r}; saw "
                          f"{[(e.device, e.type) for e in self.events()][-20:]}")


@pytest.fixture
def make_ctx(tmp_path: Path) -> Iterator[Callable[..., TestContext]]:
    """Factory for real driver contexts: make_ctx(driver_name, *, event_class, clock, resources, timezone)."""
    stores: list[EventStore] = []

    def make(driver_name: str = "test", *, event_class: str = "gateway", clock: Clock | None = None,
             resources: dict[str, Any] | None = None, timezone: str = "Asia/Shanghai",
             state_dir: Path | None = None) -> TestContext:
        base = state_dir or tmp_path / "state"
        clock = clock or SystemClock()
        store = EventStore(base / f"events-{driver_name}-{len(stores)}.db", site="s1", gateway="gw1", clock=clock)
        stores.append(store)
        telemetry_seen: list[tuple[str, dict[str, Any]]] = []
        evidence_seen: list[tuple[str, Path]] = []
        ctx = TestContext(site="s1", gateway="gw1", clock=clock, state_dir=base / "drivers" / driver_name,
                          timezone=timezone, store=store, telemetry_lane=_RecordingLane(telemetry_seen),
                          evidence_spool=_RecordingSpool(base / "evidence-outbox", evidence_seen),
                          event_class=event_class, resources=resources or {},
                          evidence_key=EvidenceKey.load_or_create(base))
        ctx.telemetry_seen = telemetry_seen
        ctx.evidence_seen = evidence_seen
        return ctx

    yield make
    for s in stores:
        s.close()



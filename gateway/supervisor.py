"""The supervisor: runs the store, the forwarder and every driver, and watches them.

Concurrency model: threads. Each driver runs in threads of its own (a driver
that needs asyncio, like the Modbus poller, runs its own event loop inside its
thread); the event store has one writer thread; commands one worker thread.
The MQTT connection (the forwarder) runs in a child process of its own
(`gateway.uplink`, one Python core more: see there why), or with
`[mqtt] process = false` in one thread of this process. The supervisor's own loop
runs in the caller's thread (`run`), waking every `watch_interval_s` seconds.
Threads hand work to each other through the store (durable) or small
thread-safe queues; nothing is shared without a lock. Threads were chosen over
asyncio because the device libraries (gpiozero callbacks, pyserial, SQLite)
are blocking, and a stuck driver must not be able to stall the others.

Watching: a driver whose health says `fault`, or which has not called
`progress()` for its `stall_timeout`, is reported as a `gateway/driver_fault`
event, stopped, and started again as a new instance after a backoff (doubling
from `restart_backoff_min_s` to `restart_backoff_max_s`, `gateway.backoff`);
the other drivers are not touched. Under systemd, `WATCHDOG=1` is sent only
while the forwarder and every driver show progress (or are waiting out a
restart backoff), and a one-line `STATUS=` says how the gateway is doing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from gateway import __version__
from gateway.backoff import backoff_delay
from gateway.clock import Clock, SystemClock
from gateway.commands import CommandRouter
from gateway.config import GatewayConfig
from gateway.context import GatewayContext
from gateway.driver import Driver
from gateway.events import EventDraft
from gateway.lanes import EvidenceSpool, TelemetryLane
from gateway.linkstate import BrokerLink
from gateway.sdnotify import SdNotifier
from gateway.signing import EvidenceKey, EvidenceKeyError
from gateway.store import EventStore, StoreUnavailable
from gateway.uplink import Uplink

if TYPE_CHECKING:
    from gateway.forwarder import Forwarder

log = logging.getLogger(__name__)

HEALTHY_RESET_SECONDS = 60.0   # a driver up this long has its restart backoff reset
FORWARDER_STALL_SECONDS = 30.0


@dataclass
class DriverSlot:
    """One driver type's place in the supervisor: its current instance and restart state."""

    name: str
    cls: type[Driver]
    config: Any
    driver: Driver | None = None
    state: str = "waiting"        # running | backoff | stuck | waiting
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0
    last_fault: str = ""


class Supervisor:
    """Owns the gateway's parts; see the module docstring."""

    def __init__(self, config: GatewayConfig, *, clock: Clock | None = None, notifier: SdNotifier | None = None,
                 resources: Mapping[str, Any] | None = None, store_type: type[EventStore] = EventStore) -> None:
        """`store_type`: the simulator passes a store on a disk it can fill (`sim.disk`)."""
        self.config = config
        self.clock = clock or SystemClock()
        self.notifier = notifier or SdNotifier.from_env()
        self.resources = dict(resources or {})
        self.slots = [DriverSlot(name, spec.cls, spec.config) for name, spec in config.drivers.items()]
        self.store_type = store_type
        self.store: EventStore | None = None
        self.forwarder: BrokerLink | None = None
        self.telemetry = TelemetryLane()
        self.evidence: EvidenceSpool | None = None
        self.evidence_key: EvidenceKey | None = None
        self.evidence_key_error = ""
        self.commands = CommandRouter(config.topic_prefix)
        self.started_mono = 0.0
        self._stop = threading.Event()
        self._watchdog_interval = self.notifier.watchdog_interval()
        self._last_watchdog = 0.0
        self._last_status = ""

    # -- start -------------------------------------------------------------
    def start(self) -> None:
        cfg = self.config
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.started_mono = self.clock.monotonic()
        self.store = self.store_type(cfg.state_dir / "events.db", site=cfg.site, gateway=cfg.gateway,
                                limits=cfg.store, clock=self.clock)
        self.evidence = EvidenceSpool(cfg.state_dir / "evidence-outbox", cfg.evidence_spool_bytes)
        self._load_evidence_key()
        self.commands.register("gateway", {"ping": self._cmd_ping, "health": lambda _a: self.health()})
        if cfg.mqtt.process:
            uplink_type: type[Forwarder] | type[Uplink] = Uplink
        else:
            from gateway.forwarder import Forwarder   # paho and ssl only where the connection runs
            uplink_type = Forwarder
        self.forwarder = uplink_type(cfg.mqtt, cfg.topic_prefix, self.store, self.telemetry, self.evidence,
                                     site=cfg.site, gateway=cfg.gateway, health=self.health,
                                     on_command=self.commands.submit, clock=self.clock)
        self.commands.send_reply = self.forwarder.publish_reply
        self.commands.start()
        self.forwarder.start()
        self._gateway_event("gateway_started", "info",
                            {"version": __version__, "drivers": [s.name for s in self.slots],
                             "buffered": self.store.count})
        for slot in self.slots:
            self._start_driver(slot)
        self.notifier.ready()
        self.forwarder.health_soon()
        self._update_status(force=True)
        log.info("gateway %s/%s running with drivers: %s", cfg.site, cfg.gateway,
                 ", ".join(s.name for s in self.slots) or "none")

    def _load_evidence_key(self) -> None:
        """The gateway's evidence key, made on first start; unreadable, it is reported and evidence goes unsigned."""
        try:
            self.evidence_key = EvidenceKey.load_or_create(self.config.state_dir)
            self.evidence_key_error = ""
        except EvidenceKeyError as exc:
            self.evidence_key, self.evidence_key_error = None, str(exc)
            log.error("evidence will not be signed: %s", exc)

    def _context(self, slot: DriverSlot) -> GatewayContext:
        assert self.store is not None and self.evidence is not None
        return GatewayContext(site=self.config.site, gateway=self.config.gateway, clock=self.clock,
                              state_dir=self.config.state_dir / "drivers" / slot.name,
                              timezone=self.config.timezone, store=self.store,
                              telemetry_lane=self.telemetry, evidence_spool=self.evidence,
                              event_class=slot.cls.event_class, resources=self.resources,
                              evidence_key=self.evidence_key)

    def _start_driver(self, slot: DriverSlot) -> None:
        now = self.clock.monotonic()
        try:
            driver = slot.cls(slot.name, slot.config, self._context(slot))
            clashes = self.commands.register(slot.name, driver.commands())
            if clashes:
                log.error("driver %s: commands %s already belong to another driver; ignored", slot.name, clashes)
            driver.start()
        except Exception as exc:
            log.exception("driver %s failed to start", slot.name)
            self.commands.unregister(slot.name)
            self._fault(slot, f"failed to start: {type(exc).__name__}: {exc}")
            return
        slot.driver = driver
        slot.state = "running"
        slot.started_at = now
        if slot.restarts:
            self._gateway_event("driver_restarted", "info", {"driver": slot.name, "restarts": slot.restarts},
                                device=slot.name)

    def _fault(self, slot: DriverSlot, reason: str) -> None:
        cfg = self.config.supervisor
        delay = backoff_delay(slot.restarts, cfg.restart_backoff_min, cfg.restart_backoff_max)
        slot.restarts += 1
        slot.last_fault = reason
        slot.state = "backoff"
        slot.next_start = self.clock.monotonic() + delay
        log.error("driver %s fault: %s; restarting in %.1f s", slot.name, reason, delay)
        self._gateway_event("driver_fault", "warning",
                            {"driver": slot.name, "reason": reason, "restarts": slot.restarts,
                             "retry_in_s": round(delay, 3)}, device=slot.name)
        if self.forwarder is not None:
            self.forwarder.health_soon()

    def _gateway_event(self, type_: str, severity: str, data: dict[str, Any], device: str | None = None) -> None:
        assert self.store is not None
        try:
            self.store.append(EventDraft(cls="gateway", device=device or self.config.gateway, type=type_,
                                         severity=severity, ts=self.clock.now(), data=data))
        except StoreUnavailable as exc:
            log.error("cannot record gateway event %s: %s", type_, exc)

    # -- watching ----------------------------------------------------------
    def watch_once(self) -> None:
        """One turn of supervision: check drivers, restart, status, watchdog."""
        now = self.clock.monotonic()
        for slot in self.slots:
            if slot.state == "running" and slot.driver is not None:
                h = slot.driver.health()
                stalled = now - h.last_progress > slot.cls.stall_timeout
                if h.state == "fault" or stalled:
                    reason = h.detail or "fault" if h.state == "fault" else \
                        f"no progress for {now - h.last_progress:.0f} s (stall timeout {slot.cls.stall_timeout:.0f} s)"
                    self._stop_driver(slot)
                    if slot.state != "stuck":
                        self._fault(slot, reason)
                elif slot.restarts and now - slot.started_at > HEALTHY_RESET_SECONDS:
                    slot.restarts = 0
            elif slot.state == "backoff" and now >= slot.next_start:
                self._start_driver(slot)
        self._update_status()
        if self._watchdog_interval and now - self._last_watchdog >= self._watchdog_interval and self.healthy():
            self.notifier.watchdog()
            self._last_watchdog = now

    def _stop_driver(self, slot: DriverSlot, timeout: float = 5.0) -> None:
        driver = slot.driver
        slot.driver = None
        self.commands.unregister(slot.name)
        if driver is None:
            return
        done = threading.Event()

        def stopper() -> None:
            try:
                driver.stop(timeout)
            except Exception:
                log.exception("driver %s raised while stopping", slot.name)
            done.set()

        threading.Thread(target=stopper, name=f"stop-{slot.name}", daemon=True).start()
        if not done.wait(timeout + 1):
            slot.state = "stuck"
            slot.last_fault = f"did not stop within {timeout:.0f} s"
            log.critical("driver %s did not stop within %.0f s; the watchdog will restart the gateway",
                         slot.name, timeout)
            self._gateway_event("driver_fault", "alarm",
                                {"driver": slot.name, "reason": slot.last_fault, "restarts": slot.restarts,
                                 "retry_in_s": None}, device=slot.name)

    def healthy(self) -> bool:
        """True while the forwarder and every driver show progress (WATCHDOG=1 is sent only then)."""
        now = self.clock.monotonic()
        fwd = self.forwarder
        if fwd is None or not fwd.alive or now - fwd.last_progress > FORWARDER_STALL_SECONDS:
            return False
        for slot in self.slots:
            if slot.state == "stuck":
                return False
            if slot.state == "running" and slot.driver is not None:
                if now - slot.driver.health().last_progress > slot.cls.stall_timeout:
                    return False
        return True

    def status_line(self) -> str:
        fwd = self.forwarder
        store = self.store
        link = "broker connected" if fwd and fwd.stats.connected else "broker DISCONNECTED"
        running = sum(1 for s in self.slots if s.state == "running")
        bad = [f"{s.name} {s.state}" for s in self.slots if s.state != "running"]
        depth = store.count if store else 0
        parts = [link, f"{running}/{len(self.slots)} drivers running"]
        if bad:
            parts.append("(" + ", ".join(bad) + ")")
        parts.append(f"{depth} event(s) buffered")
        if store and store.last_error:
            parts.append(f"STORE ERROR: {store.last_error}")
        return "; ".join(parts)

    def _update_status(self, force: bool = False) -> None:
        line = self.status_line()
        if force or line != self._last_status:
            self.notifier.status(line)
            self._last_status = line

    def health(self) -> dict[str, Any]:
        """The retained `health` payload: uptime, buffer, forwarder, drivers."""
        now = self.clock.monotonic()
        store = self.store
        depth = store.depth() if store else None
        drivers = {}
        for slot in self.slots:
            h = slot.driver.health().to_dict() if slot.driver else {"state": slot.state, "detail": slot.last_fault,
                                                                    "devices": {}, "counters": {}}
            h["supervisor_state"] = slot.state
            h["restarts"] = slot.restarts
            if slot.last_fault:
                h["last_fault"] = slot.last_fault
            drivers[slot.name] = h
        return {
            "ts": self.clock.now().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "version": __version__,
            "uptime_s": round(now - self.started_mono, 1),
            "status": self.status_line(),
            "buffer": {
                "events": depth.count if depth else 0,
                "bytes": depth.bytes if depth else 0,
                "oldest_unsent_age_s": round(time.time() - depth.oldest_created, 1)
                if depth and depth.oldest_created else None,
                "last_seq": depth.last_seq if depth else 0,
                "dropped_total": store.dropped_total if store else 0,
                "uncommitted": store.pending if store else 0,   # handed over (ctx.submit), not yet on disk
            },
            "forwarder": self.forwarder.stats.to_dict() if self.forwarder else {},
            "telemetry": {"offered": self.telemetry.offered, "thinned": self.telemetry.thinned},
            "evidence": {"queued": len(self.evidence.items()) if self.evidence else 0,
                         "dropped": self.evidence.dropped if self.evidence else 0},
            "evidence_key": self.evidence_key.public.to_dict() if self.evidence_key
            else {"error": self.evidence_key_error or "not loaded"},
            "commands": {"allowed": self.commands.names(), "handled": self.commands.handled,
                         "refused": self.commands.refused},
            "drivers": drivers,
        }

    def _cmd_ping(self, _args: Mapping[str, Any]) -> dict[str, Any]:
        return {"pong": self.clock.now().isoformat(), "version": __version__}

    # -- running and stopping -------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        """Start, supervise until `stop` is set (or `request_stop()`), then shut down."""
        stop = stop or self._stop
        self.start()
        try:
            while not stop.wait(self.config.supervisor.watch_interval) and not self._stop.is_set():
                self.watch_once()
        finally:
            self.shutdown()

    def request_stop(self) -> None:
        self._stop.set()

    def shutdown(self) -> None:
        """Stop drivers, then the forwarder (sending `offline`), then the store. Idempotent."""
        self.notifier.stopping()
        for slot in self.slots:
            if slot.driver is not None:
                self._stop_driver(slot)
                slot.state = "waiting"
        self.commands.stop()
        if self.forwarder is not None:
            self.forwarder.stop()
            self.forwarder = None
        if self.store is not None:
            self.store.close()
            self.store = None
        log.info("gateway stopped; unsent events stay buffered on disk")

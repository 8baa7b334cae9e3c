"""The driver interface: what a device family implements, and what the gateway gives it.

A driver turns device signals into events and telemetry. It knows nothing of
MQTT or of the event store: it calls `ctx.emit(...)`, which returns only once
the event is committed to disk (`ctx.emit_many([...])` commits several in one
transaction; `ctx.submit([...])` hands events over without waiting for the
disk, for sources that hold no device meanwhile), and `ctx.telemetry(...)` for
readings.

Life cycle, driven by the supervisor (one instance per driver type, holding
all that type's devices):

    config = DriverType.parse_config(raw, problems)   # pure; check-config uses it too
    driver = DriverType("ir_beam", config, ctx)
    driver.start()        # returns promptly; work happens in the driver's own threads
    driver.health()       # polled every second: state, detail, progress heartbeat
    driver.stop()         # returns within `timeout` seconds

A driver that raises in its thread, reports state "fault", or shows no progress
(`progress()` not called) for `stall_timeout` seconds is stopped, reported as a
`gateway/driver_fault` event and started again (a new instance) with backoff.

Third-party drivers register under the entry-point group `anfang.drivers`;
the entry-point name is the top-level config key the driver owns. Drivers that
exist only to exercise the gateway (`sim_probe`) register under
`anfang.sim_drivers` instead, so a production `anfang run` never offers them;
`anfang sim`, the tests and `--sim-drivers` ask for both groups.
"""

from __future__ import annotations

import abc
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Protocol, Sequence

from gateway.clock import Clock
from gateway.configfile import Problems
from gateway.events import Event

if TYPE_CHECKING:
    from gateway.signing import EvidenceKey

ENTRY_POINT_GROUP = "anfang.drivers"
SIM_ENTRY_POINT_GROUP = "anfang.sim_drivers"
WITH_SIM_DRIVERS = (ENTRY_POINT_GROUP, SIM_ENTRY_POINT_GROUP)

log = logging.getLogger(__name__)


class CommandRefused(Exception):
    """Raised by a command handler to refuse a command; the message is the reason sent back."""


CommandHandler = Callable[[Mapping[str, Any]], Mapping[str, Any]]
"""Takes the command's JSON arguments, returns the JSON reply's `result`."""


@dataclass(frozen=True)
class Emission:
    """One event for `ctx.emit_many`: the same fields as the arguments of `ctx.emit`."""

    device: str
    type: str
    severity: str
    data: Mapping[str, Any] | None = None
    ts: datetime | None = None
    cls: str | None = None


class DriverContext(Protocol):
    """What the gateway hands a driver."""

    site: str
    gateway: str
    clock: Clock
    state_dir: Path  # this driver's own persistent folder (arm state, logs, evidence)
    timezone: str    # the site's IANA time zone, for schedules
    # Objects the host provides in place of hardware. `anfang sim` and tests put
    # e.g. {"gpio_pin_factory": MockFactory()} here; empty on a real gateway.
    resources: Mapping[str, Any]
    # The gateway's evidence key (gateway/signing.py): signs evidence manifests
    # (gateway/manifest.py). None only where the key could not be read (logged).
    evidence_key: "EvidenceKey | None"

    def emit(self, device: str, type: str, severity: str, data: Mapping[str, Any] | None = None,
             ts: datetime | None = None, cls: str | None = None, id: str | None = None) -> Event:
        """Commit an event durably and return it (with its seq). Blocks until on disk.

        `ts` is when it happened at the device (default: now); `cls` defaults to the
        driver's `event_class`; `id` is the event's id when the driver had to know it
        before the event (evidence captioned with it; from `gateway.events.new_event_id()`,
        default: a new one). Raises `gateway.store.StoreUnavailable` only if the
        store cannot take the event at all (the gateway reports that itself).
        """

    def emit_many(self, emissions: Sequence[Emission]) -> list[Event]:
        """Commit several events in one transaction, in the given order; returns them.

        For a driver that finds several things at once (one Modbus poll, one
        patrol round closing): one fsync instead of one per event, and the
        events are never split by a crash. Blocks until on disk, like `emit`.
        """

    def submit(self, emissions: Sequence[Emission]) -> None:
        """Hand events over to be committed, in the given order, without waiting for the disk.

        For a source that need not hold anything until its events are durable (a
        counter, a feed, a flood of readings): the call returns at once and the
        next group commit takes the events, gives them their seq (dense, in
        order) and only then can they be published. A power cut before that
        commit loses them (at most the events queued and the commit in progress;
        see docs/faults.md). Blocks only when the store's queue is full, so a
        source faster than the disk is slowed down, not buffered without bound.
        Data that cannot be serialised raises `TypeError` here; nothing is queued.
        """

    def telemetry(self, device: str, values: Mapping[str, Any], ts: datetime | None = None,
                  cls: str | None = None) -> None:
        """Offer readings to the telemetry lane: latest value wins, never blocks."""

    def evidence(self, event_id: str, path: Path, content_type: str) -> None:
        """Queue a file for the evidence lane (`evidence/{event_id}`); the file is copied."""


@dataclass
class DriverHealth:
    """A driver's own account of itself, published in `health` and used by the supervisor."""

    state: str = "starting"          # starting | ok | degraded | fault | stopped
    detail: str = ""                 # one line a technician can read
    devices: dict[str, str] = field(default_factory=dict)   # device -> its state
    counters: dict[str, float] = field(default_factory=dict)
    last_progress: float = 0.0       # ctx.clock.monotonic() of the last progress

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "detail": self.detail, "devices": dict(self.devices),
                "counters": dict(self.counters)}


class Driver(abc.ABC):
    """Base of every device driver."""

    event_class: ClassVar[str] = "gateway"   # the topic's {class} for this driver's events (docs/mqtt.md)
    config_keys: ClassVar[tuple[str, ...]] = ()  # extra top-level config keys this driver owns
    stall_timeout: ClassVar[float] = 30.0      # seconds without progress() that count as a hang

    def __init__(self, name: str, config: Any, ctx: DriverContext) -> None:
        self.name = name
        self.config = config
        self.ctx = ctx
        self.log = logging.getLogger(f"anfang.driver.{name}")
        self._health_lock = threading.Lock()
        self._health = DriverHealth(last_progress=ctx.clock.monotonic())

    # -- to implement ----------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def parse_config(cls, raw: Mapping[str, Any], problems: Problems, base_dir: Path | None = None) -> Any:
        """Validate this driver's config. `raw` maps each key the driver owns (its
        entry-point name plus `config_keys`) that is present in the file to its value.
        Record every problem with its full key (use `gateway.configfile.Section`);
        return a config object (a dataclass) that `__init__` receives."""

    @abc.abstractmethod
    def start(self) -> None:
        """Open devices and start working. Must return promptly."""

    @abc.abstractmethod
    def stop(self, timeout: float = 5.0) -> None:
        """Stop working and release devices within `timeout` seconds."""

    def commands(self) -> Mapping[str, CommandHandler]:
        """Commands this driver accepts on `cmd/{name}`; names must be unique per gateway."""
        return {}

    # -- given -----------------------------------------------------------
    def health(self) -> DriverHealth:
        with self._health_lock:
            h = self._health
            return DriverHealth(h.state, h.detail, dict(h.devices), dict(h.counters), h.last_progress)

    def progress(self) -> None:
        """Call whenever the driver did its work (a poll, a frame, a loop turn)."""
        now = self.ctx.clock.monotonic()
        with self._health_lock:
            self._health.last_progress = now

    def set_state(self, state: str, detail: str = "") -> None:
        with self._health_lock:
            self._health.state = state
            self._health.detail = detail

    def set_device_state(self, device: str, state: str) -> None:
        with self._health_lock:
            self._health.devices[device] = state

    def count(self, counter: str, delta: float = 1) -> None:
        with self._health_lock:
            self._health.counters[counter] = self._health.counters.get(counter, 0) + delta

    def set_counter(self, counter: str, value: float) -> None:
        with self._health_lock:
            self._health.counters[counter] = value


class ThreadedDriver(Driver):
    """A driver whose work is one loop, `run(stop)`, in a thread of its own.

    An exception escaping `run` marks the driver `fault` with the exception as
    detail; the supervisor then restarts it.
    """

    def __init__(self, name: str, config: Any, ctx: DriverContext) -> None:
        super().__init__(name, config, ctx)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @abc.abstractmethod
    def run(self, stop: threading.Event) -> None:
        """The driver's loop; return when `stop` is set. Call `progress()` each turn."""

    def start(self) -> None:
        self._stop.clear()
        self.set_state("starting")
        self.progress()
        self._thread = threading.Thread(target=self._main, name=f"driver-{self.name}", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            self.run(self._stop)
            if not self._stop.is_set():
                self.set_state("fault", "driver loop returned on its own")
        except Exception as exc:  # the supervisor reports and restarts
            self.log.exception("driver %s failed", self.name)
            self.set_state("fault", f"{type(exc).__name__}: {exc}")
        else:
            if self._stop.is_set():
                self.set_state("stopped")

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


class BrokenPlugin:
    """A driver plug-in whose entry point failed to load; reported only if the config needs it."""

    def __init__(self, name: str, target: str, error: str) -> None:
        self.name = name
        self.target = target
        self.error = error

    def __repr__(self) -> str:
        return f"BrokenPlugin({self.name}: {self.error})"


def discover_driver_types(wanted: "set[str] | None" = None, groups: Sequence[str] = (ENTRY_POINT_GROUP,)
                          ) -> tuple[dict[str, type[Driver]], dict[str, BrokenPlugin]]:
    """Installed driver types (name -> class), and the plug-ins that failed to load.

    `groups`: the entry-point groups searched (`WITH_SIM_DRIVERS` adds the simulator's).

    With `wanted` (the top-level keys of a config), plug-ins named by those keys
    are loaded first, and the others only if some wanted key is still not owned
    (a driver may own extra keys, its `config_keys`). A gateway without cameras
    therefore never imports the vision stack: less memory, quicker start.
    """
    found: dict[str, type[Driver]] = {}
    broken: dict[str, BrokenPlugin] = {}
    eps = [ep for group in groups for ep in entry_points(group=group)]
    if wanted is not None:
        first = [ep for ep in eps if ep.name in wanted]
        rest = [ep for ep in eps if ep.name not in wanted]
    else:
        first, rest = eps, []

    def load(batch: list) -> None:
        for ep in batch:
            try:
                obj = ep.load()
            except Exception as exc:
                broken[ep.name] = BrokenPlugin(ep.name, ep.value, f"{type(exc).__name__}: {exc}")
                log.debug("driver plug-in %s (%s) cannot be loaded: %s", ep.name, ep.value, exc)
                continue
            if not (isinstance(obj, type) and issubclass(obj, Driver)):
                broken[ep.name] = BrokenPlugin(ep.name, ep.value, "not a gateway.driver.Driver subclass")
                continue
            found[ep.name] = obj

    load(first)
    if wanted is not None:
        owned = {key for name, cls in found.items() for key in (name, *cls.config_keys)}
        if wanted - owned - set(broken):
            load(rest)
    return found, broken


def available_driver_types() -> dict[str, type[Driver]]:
    """Every driver type that loads: name (its top-level config key) -> class."""
    return discover_driver_types()[0]

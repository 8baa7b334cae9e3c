"""`IrBeamDriver`: active infrared beam pairs on GPIO contacts -> `ir_beam` events.

One instance holds every `[[ir_beam]]` detector. GPIO edge callbacks only
stamp the edge (ctx.clock, at the edge) and queue it; one worker thread feeds
the queue to the pure `Engine`, runs its deadlines (debounce, stuck contact,
chatter end, schedule) and emits what it returns; after each change a saver
thread writes the arm/alarm state file (atomically, off the edge-to-event
path, only the latest snapshot). A pin that cannot be opened is reported once as trouble
and retried with backoff while the other zones keep working. Commands `arm`,
`disarm` and `bypass` run under the same lock as the worker.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.configfile import Problems
from gateway.driver import CommandHandler, CommandRefused, ThreadedDriver
from drivers.ir_beam.config import SCHEDULES_KEY, SETTINGS_KEY, IrBeamConfig, parse_config
from drivers.ir_beam.engine import COMMAND_MODES, BadCommand, Engine, Out
from drivers.ir_beam.pins import ContactInput, make_factory
from drivers.ir_beam.state import STATE_FILE, load_state, save_state

Key = tuple[str, str]   # (zone, input)


class IrBeamDriver(ThreadedDriver):
    """Perimeter IR beam detectors read from GPIO contacts."""

    event_class = "ir_beam"
    config_keys = (SETTINGS_KEY, SCHEDULES_KEY)
    stall_timeout = 30.0
    max_idle_s = 0.2          # longest the worker sleeps without looking at the clock
    retry_first_s = 1.0       # first pin-open retry; doubles up to settings.retry_max_s
    health_every_s = 0.5

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], problems: Problems, base_dir: Path | None = None
                     ) -> IrBeamConfig:
        return parse_config(raw, problems, base_dir)

    def __init__(self, name: str, config: IrBeamConfig, ctx: Any) -> None:
        super().__init__(name, config, ctx)
        tzname = config.settings.timezone or ctx.timezone or "UTC"
        try:
            self.tz = ZoneInfo(tzname)
        except (ZoneInfoNotFoundError, ValueError):
            self.log.error("unknown time zone %r; schedules run in UTC", tzname)
            self.tz = ZoneInfo("UTC")
        self._state_path = Path(ctx.state_dir) / STATE_FILE
        self._lock = threading.RLock()          # engine, pins, emission order
        self._edge_lock = threading.Lock()      # edge stamping vs. the worker taking "now"
        self._edges: deque[tuple[Key, bool, float, datetime]] = deque()
        self._wake = threading.Event()
        self._ready = threading.Event()
        self._engine: Engine | None = None
        self._inputs: dict[Key, ContactInput] = {}
        self._retry: dict[Key, tuple[float, float]] = {}     # key -> (when, current delay)
        self._factory: Any = None
        self._own_factory = False
        self._last_health = float("-inf")
        self._save_cond = threading.Condition()
        self._save_pending: dict[str, Any] | None = None
        self._save_stop = False
        self._saver: threading.Thread | None = None
        self._save_error = ""

    # -- life cycle ------------------------------------------------------
    def start(self) -> None:
        self._ready.clear()
        self._engine = Engine(self.config, self.tz, load_state(self._state_path))
        self._save_stop = False
        self._saver = threading.Thread(target=self._save_loop, name=f"driver-{self.name}-state", daemon=True)
        self._saver.start()
        super().start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        super().stop(timeout)
        with self._lock:
            for inp in self._inputs.values():
                try:
                    inp.close()
                except Exception as exc:
                    self.log.warning("closing a pin: %s", exc)
            self._inputs.clear()
            if self._own_factory and self._factory is not None:
                try:
                    self._factory.close()
                except Exception as exc:
                    self.log.warning("closing the pin factory: %s", exc)
            self._factory = None
            self._save()
        with self._save_cond:
            self._save_stop = True
            self._save_cond.notify_all()
        if self._saver is not None:
            self._saver.join(timeout)
        self.set_state("stopped")

    def run(self, stop: threading.Event) -> None:
        engine = self._engine
        assert engine is not None
        with self._lock:
            mono, wall = self._now()
            self._emit(engine.begin(mono, wall))
            for zone in engine.zones.values():
                for name in zone.inputs:
                    self._emit(self._open((zone.name, name)))
            self._save()
            self._update_health(force=True)
        self._ready.set()
        while not stop.is_set():
            with self._lock:
                self._step()
                due = self._next_deadline()
            self.progress()
            self._update_health()
            now = self.ctx.clock.monotonic()
            timeout = self.max_idle_s if due is None else min(self.max_idle_s, max(0.0005, due - now))
            self._wake.wait(timeout)
            self._wake.clear()

    # -- work --------------------------------------------------------------
    def _now(self) -> tuple[float, datetime]:
        clock = self.ctx.clock
        return clock.monotonic(), clock.now()

    def _on_edge(self, key: Key, level: bool) -> None:
        """Pin callback (any thread): stamp the edge now and hand it to the worker."""
        clock = self.ctx.clock
        with self._edge_lock:
            self._edges.append((key, level, clock.monotonic(), clock.now()))
        self._wake.set()

    def _step(self) -> None:
        """Feed queued edges, run what is due, retry pins, emit, save. Caller holds `_lock`."""
        engine = self._engine
        assert engine is not None
        with self._edge_lock:
            mono, wall = self._now()
            batch = list(self._edges)
            self._edges.clear()
        outs: list[Out] = []
        for key, level, m, w in batch:
            outs += engine.edge(key[0], key[1], level, m, w)
        if batch:
            self.count("edges", len(batch))
        outs += engine.tick(mono, wall)
        for key, (when, _delay) in list(self._retry.items()):
            if mono >= when:
                outs += self._open(key)
        self._emit(outs)
        self._save()

    def _next_deadline(self) -> float | None:
        assert self._engine is not None
        due = self._engine.next_deadline()
        for when, _delay in self._retry.values():
            due = when if due is None else min(due, when)
        return due

    def _open(self, key: Key) -> list[Out]:
        """Open one input's pin; on failure report once (engine) and schedule a retry."""
        engine = self._engine
        assert engine is not None
        zone, name = key
        cfg = engine.zones[zone].inputs[name].cfg
        try:
            if self._factory is None:
                self._factory, self._own_factory = make_factory(self.config.settings.pin_factory,
                                                                self.ctx.resources)
            inp = ContactInput(self._factory, cfg, partial(self._on_edge, key))
        except Exception as exc:
            mono, wall = self._now()
            _, delay = self._retry.get(key, (0.0, 0.0))
            delay = self.retry_first_s if delay == 0 else min(delay * 2, self.config.settings.retry_max_s)
            self._retry[key] = (mono + delay, delay)
            self.count("pin_open_failures")
            error = f"{type(exc).__name__}: {exc}"
            self.log.debug("%s %s pin %r cannot be opened (retry in %.0f s): %s", zone, name, cfg.pin, delay, error)
            return engine.input_failed(zone, name, error, wall)
        self._retry.pop(key, None)
        old = self._inputs.pop(key, None)
        if old is not None:
            old.close()
        self._inputs[key] = inp
        with self._edge_lock:
            level = inp.level()
            mono, wall = self._now()
            # edges queued before this read are older than the level we start from
            kept = [e for e in self._edges if e[0] != key]
            self._edges.clear()
            self._edges.extend(kept)
        return engine.input_opened(zone, name, level, mono, wall)

    def _emit(self, outs: list[Out]) -> None:
        for o in outs:
            self.ctx.emit(o.device, o.type, o.severity, o.data, ts=o.ts)
            self.count(f"events.{o.type}")

    def _save(self) -> None:
        """Hand the latest state to the saver thread (caller holds `_lock`)."""
        engine = self._engine
        if engine is None or not engine.dirty:
            return
        snapshot = engine.snapshot()
        engine.dirty = False
        with self._save_cond:
            self._save_pending = snapshot
            self._save_cond.notify_all()

    def _save_loop(self) -> None:
        """Write each snapshot handed over; on stop, write the last one and return."""
        while True:
            with self._save_cond:
                self._save_cond.wait_for(lambda: self._save_pending is not None or self._save_stop)
                snapshot, self._save_pending = self._save_pending, None
                stopping = self._save_stop
            if snapshot is not None:
                try:
                    save_state(self._state_path, snapshot)
                    self._save_error = ""
                except OSError as exc:
                    if not self._save_error:
                        self.log.error("cannot save the arm state to %s: %s", self._state_path, exc)
                    self._save_error = str(exc)
            if stopping:
                with self._save_cond:
                    if self._save_pending is None:
                        return

    def _update_health(self, force: bool = False) -> None:
        engine = self._engine
        if engine is None:
            return
        now = time.monotonic()      # real time: how often to refresh a report, not zone logic
        if not force and now - self._last_health < self.health_every_s:
            return
        self._last_health = now
        with self._lock:
            for device, state in engine.device_states().items():
                self.set_device_state(device, state)
            faults = []
            for z in engine.zones.values():
                self.set_counter(f"{z.name}.interruptions_not_armed", z.interruptions_not_armed)
                self.set_counter(f"{z.name}.held_back_by_chatter", z.suppressed)
                faults += [f"{z.name}.{i.name} (pin {i.cfg.pin!r}): {i.fault}"
                           for i in z.inputs.values() if i.fault]
        if faults:
            self.set_state("degraded", "cannot open " + "; ".join(faults))
        elif self._save_error:
            self.set_state("degraded", f"cannot save the arm state: {self._save_error}")
        else:
            self.set_state("ok", f"{len(engine.zones)} zone(s)")

    # -- commands ----------------------------------------------------------
    def commands(self) -> Mapping[str, CommandHandler]:
        return {action: partial(self._command, action) for action in COMMAND_MODES}

    def _command(self, action: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
        if not self._ready.wait(5.0):
            raise CommandRefused("the ir_beam driver is still starting; try again")
        with self._lock:
            engine = self._engine
            assert engine is not None
            self._step()            # edges that happened before the command come first
            mono, wall = self._now()
            try:
                reply, outs = engine.command(action, args, mono, wall)
            except BadCommand as exc:
                raise CommandRefused(str(exc)) from None
            self._emit(outs)
            self._save()
        self._wake.set()
        return reply

"""`IrBeamDriver`: active infrared beam pairs on GPIO contacts -> `ir_beam` events.

One instance holds every `[[ir_beam]]` detector. GPIO edge callbacks only
stamp the edge (ctx.clock, at the edge) and queue it; one worker thread feeds
the queue to the pure `Engine` and runs its deadlines (debounce, stuck contact,
chatter end, schedule). What one engine step returns is handed, in order, to a
committer thread that writes it with one `ctx.emit_many` (one transaction, one
fsync), so the worker never holds the engine lock while the disk is slow: a
second zone's edges are debounced while the first zone's alarm is being
committed. Only after a commit does the committer hand the engine snapshot
taken with those events to the saver thread, which writes the arm/alarm state
file (atomically, off the edge-to-event path, only the latest snapshot), so
the file never records an alarm as reported before its event is on disk. A
pin that cannot be opened is reported once as trouble and retried with
backoff while the other zones keep working. Commands `arm`, `disarm` and
`bypass` run under the same lock as the worker and reply once their events
are committed.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.backoff import Backoff
from gateway.configfile import Problems
from gateway.driver import CommandHandler, CommandRefused, Emission, ThreadedDriver
from drivers.ir_beam.config import SCHEDULES_KEY, SETTINGS_KEY, IrBeamConfig, parse_config
from drivers.ir_beam.engine import COMMAND_MODES, BadCommand, Engine
from drivers.ir_beam.pins import ContactInput, make_factory
from drivers.ir_beam.state import STATE_FILE, load_state, save_state

Key = tuple[str, str]   # (zone, input)


@dataclass
class _Batch:
    """What one engine step produced: its events in order, and the state to save once they are on disk."""

    emissions: list[Emission]
    snapshot: dict[str, Any] | None
    done: threading.Event = field(default_factory=threading.Event)
    error: str = ""


class IrBeamDriver(ThreadedDriver):
    """Perimeter IR beam detectors read from GPIO contacts."""

    event_class = "ir_beam"
    config_keys = (SETTINGS_KEY, SCHEDULES_KEY)
    stall_timeout = 30.0
    max_idle_s = 0.2          # longest the worker sleeps without looking at the clock
    retry_first_s = 1.0       # first pin-open retry; doubles up to settings.retry_max_s
    health_every_s = 0.5
    command_commit_timeout_s = 30.0   # longest a command waits for its events to be on disk

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
        self._retry: dict[Key, float] = {}                  # key -> when to try opening again
        self._backoff: dict[Key, Backoff] = {}
        self._factory: Any = None
        self._own_factory = False
        self._last_health = float("-inf")
        self._save_cond = threading.Condition()
        self._save_pending: dict[str, Any] | None = None
        self._save_stop = False
        self._saver: threading.Thread | None = None
        self._save_error = ""
        self._commit_cond = threading.Condition()
        self._commit_queue: list[_Batch] = []
        self._commit_stop = False
        self._committer: threading.Thread | None = None
        self._commit_error = ""
        self._committing_since: float | None = None   # ctx.clock.monotonic() when the commit under way began

    # -- life cycle ------------------------------------------------------
    def start(self) -> None:
        self._ready.clear()
        self._engine = Engine(self.config, self.tz, load_state(self._state_path))
        self._save_stop = False
        self._saver = threading.Thread(target=self._save_loop, name=f"driver-{self.name}-state", daemon=True)
        self._saver.start()
        self._commit_stop = False
        self._commit_error = ""
        self._committer = threading.Thread(target=self._commit_loop, name=f"driver-{self.name}-commit",
                                           daemon=True)
        self._committer.start()
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
            self._hand_over([])
        with self._commit_cond:
            self._commit_stop = True
            self._commit_cond.notify_all()
        if self._committer is not None:
            self._committer.join(timeout)
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
            outs = engine.begin(mono, wall)
            for zone in engine.zones.values():
                for name in zone.inputs:
                    outs += self._open((zone.name, name))
            self._hand_over(outs)
            self._update_health(force=True)
        self._ready.set()
        while not stop.is_set():
            if self._commit_error:
                raise RuntimeError(f"cannot commit events: {self._commit_error}")
            with self._lock:
                self._step()
                due = self._next_deadline()
            since = self._committing_since
            if since is None or self.ctx.clock.monotonic() - since < self.stall_timeout:
                self.progress()         # a store stuck in one commit is a stall, as it was when we emitted here
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

    def _step(self) -> _Batch | None:
        """Feed queued edges, run what is due, retry pins, hand the events over. Caller holds `_lock`."""
        engine = self._engine
        assert engine is not None
        with self._edge_lock:
            mono, wall = self._now()
            batch = list(self._edges)
            self._edges.clear()
        outs: list[Emission] = []
        for key, level, m, w in batch:
            outs += engine.edge(key[0], key[1], level, m, w)
        if batch:
            self.count("edges", len(batch))
        outs += engine.tick(mono, wall)
        for key, when in list(self._retry.items()):
            if mono >= when:
                outs += self._open(key)
        return self._hand_over(outs)

    def _next_deadline(self) -> float | None:
        assert self._engine is not None
        due = self._engine.next_deadline()
        for when in self._retry.values():
            due = when if due is None else min(due, when)
        return due

    def _open(self, key: Key) -> list[Emission]:
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
            backoff = self._backoff.setdefault(
                key, Backoff(self.retry_first_s, self.config.settings.retry_max_s))
            delay = backoff.next()
            self._retry[key] = mono + delay
            self.count("pin_open_failures")
            error = f"{type(exc).__name__}: {exc}"
            self.log.debug("%s %s pin %r cannot be opened (retry in %.0f s): %s", zone, name, cfg.pin, delay, error)
            return engine.input_failed(zone, name, error, wall)
        self._retry.pop(key, None)
        self._backoff.pop(key, None)
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

    def _hand_over(self, outs: list[Emission]) -> _Batch | None:
        """Queue one step's events, and the state they leave, for the committer (caller holds `_lock`).

        Batches queue in engine order, so events of one device are committed in
        the order the engine returned them.
        """
        engine = self._engine
        snapshot = None
        if engine is not None and engine.dirty:
            snapshot = engine.snapshot()
            engine.dirty = False
        if not outs and snapshot is None:
            return None
        batch = _Batch(list(outs), snapshot)
        with self._commit_cond:
            self._commit_queue.append(batch)
            self._commit_cond.notify_all()
        return batch

    def _commit_loop(self) -> None:
        """Commit what the engine handed over, all queued steps in one `emit_many`; then save the state."""
        while True:
            with self._commit_cond:
                self._commit_cond.wait_for(lambda: bool(self._commit_queue) or self._commit_stop)
                batches, self._commit_queue = self._commit_queue, []
                stopping = self._commit_stop
            emissions = [e for b in batches for e in b.emissions]
            error = self._commit_error     # after a failed commit nothing more: the restart starts from the saved state
            if emissions and not error:
                self._committing_since = self.ctx.clock.monotonic()
                try:
                    self.ctx.emit_many(emissions)
                except Exception as exc:   # the worker raises it: fault, restart from the saved state
                    error = f"{type(exc).__name__}: {exc}"
                    self.log.error("cannot commit %d ir_beam event(s): %s", len(emissions), error)
                    self._commit_error = error
                else:
                    for e in emissions:
                        self.count(f"events.{e.type}")
                finally:
                    self._committing_since = None
            snapshot = next((b.snapshot for b in reversed(batches) if b.snapshot is not None), None)
            if snapshot is not None and not error:
                with self._save_cond:
                    self._save_pending = snapshot
                    self._save_cond.notify_all()
            for b in batches:
                b.error = error
                b.done.set()
            if stopping:
                with self._commit_cond:
                    if not self._commit_queue:
                        return

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
            batch = self._hand_over(outs)
        self._wake.set()
        if batch is not None:
            if not batch.done.wait(self.command_commit_timeout_s):
                raise CommandRefused("the event store did not take the command's events in time")
            if batch.error:
                raise CommandRefused(f"the command's events could not be stored: {batch.error}")
        return reply

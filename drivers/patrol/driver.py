"""PatrolDriver: readers -> card reads -> compliance engine -> records and events.

Config (see docs/patrol.md):

    [patrol_plan]
    registry = "patrol-registry.toml"    # guards' cards, checkpoints
    plan = "patrol-plan.toml"            # routes, schedules
    dedup_s = 2.0                        # repeated reads of a card at a reader within this: one check-in
    retention_days = 90                  # records kept this long
    report_time = "00:05"                # daily_report for the day before, site time
    clock_step_tolerance_s = 5.0
    guard_session_minutes = 120          # a guard card read on a reader signs that reader in (tags)

    [[patrol]]
    name = "r-gate"                      # the reader (device) name; checkpoints refer to it
    type = "em4100"                      # em4100 | pn532 | wiegand
    serial_port = "/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0"
    baud = 9600                          # em4100 9600, pn532 115200 by default
    # wiegand: d0 = 17, d1 = 27, gap_ms = 25;  pn532: poll_ms = 200

One thread per serial reader (a dead reader never stalls the others), GPIO
callbacks for Wiegand, and one engine thread that owns the engine, the record
log and the emitting; readers hand it card reads through a queue.
"""

from __future__ import annotations

import json
import queue
import re
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from gateway.atomicfile import write_atomic
from gateway.clock import parse_iso_utc
from gateway.configfile import Problems, Section
from gateway.driver import CommandRefused, Driver, DriverContext, Emission
from gateway.events import DEVICE_PATTERN

from drivers.patrol.engine import PatrolEngine, patrol_event
from drivers.patrol.plan import Plan, Registry, load_plan, load_registry
from drivers.patrol.readers import CardRead, Em4100Reader, Pn532Reader, WiegandReader
from drivers.patrol.records import FILE_NAME, RecordLog, iter_records, verify
from drivers.patrol.report import report_data, report_from_log

READER_TYPES = ("em4100", "pn532", "wiegand")
PLAN_KEY = "patrol_plan"
# Old spellings of [patrol_plan] keys (durations in seconds end in `_s`): refused, naming the new key.
RENAMED_PLAN_KEYS = {"dedup_seconds": "dedup_s", "clock_step_tolerance_seconds": "clock_step_tolerance_s"}
_TIME_RE = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


@dataclass(frozen=True)
class ReaderConfig:
    name: str
    type: str
    port: str = ""
    baud: int = 9600
    d0: int | str = 0
    d1: int | str = 0
    gap_ms: float = 25.0
    poll_ms: float = 200.0


@dataclass(frozen=True)
class PatrolConfig:
    readers: tuple[ReaderConfig, ...]
    registry: Registry
    plan: Plan
    dedup_seconds: float = 2.0
    retention_days: float = 90.0
    report_time: time = time(0, 5)
    clock_step_tolerance_seconds: float = 5.0
    guard_session_minutes: float = 120.0
    plan_paths: tuple[str, str] = ("", "")


def parse_patrol_config(raw: Mapping[str, Any], problems: Problems, base_dir: Path | None = None) -> PatrolConfig:
    readers: list[ReaderConfig] = []
    top = Section({"patrol": raw.get("patrol", [])}, "", problems, base_dir)
    names: set[str] = set()
    for s in top.sections("patrol"):
        name = s.str("name", pattern=DEVICE_PATTERN)
        kind = s.str("type", choices=READER_TYPES)
        if name in names:
            s.error("name", f"reader {name!r} is defined twice")
        names.add(name)
        if kind == "wiegand":
            d0 = s.raw.get("d0")
            d1 = s.raw.get("d1")
            for key, pin in (("d0", d0), ("d1", d1)):
                s.mark_seen(key)
                if isinstance(pin, bool) or not isinstance(pin, (int, str)) or pin == "":
                    s.error(key, "is required: a GPIO number (17) or pin name (\"GPIO17\", \"BOARD11\")")
            if d0 is not None and d0 == d1:
                s.error("d1", "must be another pin than d0")
            gap = s.float("gap_ms", 25.0, min=5.0, max=500.0)
            readers.append(ReaderConfig(name, kind, d0=d0 if isinstance(d0, (int, str)) else 0,
                                        d1=d1 if isinstance(d1, (int, str)) else 0, gap_ms=gap))
        else:
            port = s.str("serial_port")
            baud = s.int("baud", 115200 if kind == "pn532" else 9600, min=1200, max=921600)
            poll = s.float("poll_ms", 200.0, min=20.0, max=10000.0) if kind == "pn532" else 200.0
            readers.append(ReaderConfig(name, kind, port=port, baud=baud, poll_ms=poll))
            s.renamed("port", "serial_port")   # as for a fire pump on RS-485, where `port` is TCP
        s.finish()

    ps = Section(raw.get(PLAN_KEY), PLAN_KEY, problems, base_dir)
    if PLAN_KEY not in raw:
        problems.add(PLAN_KEY, "is required: a table naming the registry and plan files")
    reg_path = ps.path("registry", must_exist=True)
    plan_path = ps.path("plan", must_exist=True)
    dedup = ps.float("dedup_s", 2.0, min=0.0, max=60.0)
    retention = ps.float("retention_days", 90.0, min=1.0)
    rt = ps.str("report_time", "00:05")
    m = _TIME_RE.fullmatch(rt)
    if m is None:
        ps.error("report_time", f"expected a time of day like \"00:05\", got {rt!r}")
    report_time = time(int(m.group(1)), int(m.group(2))) if m else time(0, 5)
    step = ps.float("clock_step_tolerance_s", 5.0, min=0.5)
    session = ps.float("guard_session_minutes", 120.0, min=0.0)
    for old, new in RENAMED_PLAN_KEYS.items():
        ps.renamed(old, new)
    ps.finish()
    registry, plan = Registry(), Plan()
    if reg_path.is_file():
        registry = load_registry(reg_path, problems, f"{PLAN_KEY}.registry({reg_path.name})")
        for cp in registry.checkpoints:
            if cp.reader is not None and cp.reader not in names:
                problems.add(f"{PLAN_KEY}.registry({reg_path.name})",
                             f"checkpoint {cp.id}: reader {cp.reader!r} is not a [[patrol]] reader")
        if plan_path.is_file():
            plan = load_plan(plan_path, registry, problems, f"{PLAN_KEY}.plan({plan_path.name})")
    return PatrolConfig(tuple(readers), registry, plan, dedup, retention, report_time, step, session,
                        (str(reg_path), str(plan_path)))


@dataclass
class _Sink:
    """What reader threads call; hands everything to the engine thread."""

    driver: "PatrolDriver"
    q: "queue.Queue[tuple[str, Any]]" = field(default_factory=queue.Queue)

    def card(self, read: CardRead) -> None:
        self.q.put(("card", read))

    def fault(self, reader: str, port: str, reason: str) -> None:
        self.driver.set_device_state(reader, "fault")
        self.q.put(("fault", (reader, port, reason, self.driver.ctx.clock.now())))

    def restore(self, reader: str, port: str, down_seconds: float) -> None:
        self.driver.set_device_state(reader, "ok")
        self.q.put(("restore", (reader, port, down_seconds, self.driver.ctx.clock.now())))

    def up(self, reader: str) -> None:
        self.driver.set_device_state(reader, "ok")

    def progress(self, reader: str) -> None:
        pass


class PatrolDriver(Driver):
    """All patrol readers of this gateway, the compliance engine, the record log."""

    event_class = "patrol"
    config_keys = (PLAN_KEY,)

    def __init__(self, name: str, config: PatrolConfig, ctx: DriverContext) -> None:
        super().__init__(name, config, ctx)
        self.tz = ctx.timezone
        self.engine = PatrolEngine(config.registry, config.plan, ctx.timezone, config.dedup_seconds,
                                   config.clock_step_tolerance_seconds, config.guard_session_minutes)
        self.records_path = Path(ctx.state_dir) / FILE_NAME
        self.records: RecordLog | None = None
        self.sink = _Sink(self)
        self.readers: list[Any] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state_file = Path(ctx.state_dir) / "patrol-state.json"

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], problems: Problems, base_dir: Path | None = None) -> PatrolConfig:
        return parse_patrol_config(raw, problems, base_dir)

    # -- life cycle --------------------------------------------------------
    def start(self) -> None:
        self.set_state("starting")
        Path(self.ctx.state_dir).mkdir(parents=True, exist_ok=True)
        self.records = RecordLog(self.records_path, self.config.retention_days)
        self._replay()
        if self._last_reported() is None:
            # a fresh install reports from its first whole day on, not the day before it existed
            self._mark_reported(self.ctx.clock.now().astimezone(ZoneInfo(self.tz)).date() - timedelta(days=1))
        for rc in self.config.readers:
            self.set_device_state(rc.name, "starting")
            if rc.type == "wiegand":
                try:
                    factory = self._pin_factory()
                    r: Any = WiegandReader(rc.name, factory, rc.d0, rc.d1, rc.gap_ms / 1000, self.ctx.clock,
                                           self.sink)
                except Exception as exc:   # no GPIO here, pin in use: this reader is down, the rest work
                    self.sink.fault(rc.name, f"GPIO d0={rc.d0} d1={rc.d1}", f"{type(exc).__name__}: {exc}")
                    continue
                self.set_device_state(rc.name, "ok")
            elif rc.type == "pn532":
                r = Pn532Reader(rc.name, rc.port, rc.baud, self.ctx.clock, self.sink, poll_interval=rc.poll_ms / 1000)
            else:
                r = Em4100Reader(rc.name, rc.port, rc.baud, self.ctx.clock, self.sink)
            self.readers.append(r)
        self._stop.clear()
        self._thread = threading.Thread(target=self._main, name=f"driver-{self.name}", daemon=True)
        self._thread.start()
        for r in self.readers:
            try:
                r.start()
            except Exception as exc:      # e.g. a pin that cannot be set up
                self.sink.fault(r.name, "GPIO", f"{type(exc).__name__}: {exc}")

    def _replay(self) -> None:
        """Rebuild rounds in progress from the last day of check-ins (after a restart).

        The outputs are dropped: they were emitted before. Deadlines that passed
        while the driver was down are raised by the first live tick.
        """
        wall_now, mono_now = self._instant()
        since = wall_now - timedelta(hours=26)
        replayed = 0
        last: datetime | None = None
        for rec in iter_records(self.records_path):
            try:
                ts = parse_iso_utc(rec["ts"])
            except (KeyError, TypeError, ValueError):
                continue
            if ts < since or ts > wall_now:
                continue
            mono = mono_now - (wall_now - ts).total_seconds()
            if last is None:
                self.engine.tick(ts, mono)
            last = ts
            data = rec.get("data")
            if rec.get("type") == "checkin" and isinstance(data, dict):
                self.engine.scan(str(data.get("reader")), str(data.get("card")), ts, mono)
                replayed += 1
            else:
                self.engine.tick(ts, mono)
        self.set_counter("replayed_checkins", replayed)

    def _pin_factory(self) -> Any:
        factory = self.ctx.resources.get("gpio_pin_factory")
        if factory is None:
            from gpiozero import Device   # real pins only when the config asks for Wiegand
            if Device.pin_factory is None:
                Device.pin_factory = Device._default_pin_factory()
            factory = Device.pin_factory
        return factory

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for r in self.readers:
            r.stop(timeout=min(2.0, timeout))
        if self._thread is not None:
            self._thread.join(timeout)
        if self.records is not None:
            self.records.close()
        self.set_state("stopped")

    # -- the engine thread -----------------------------------------------
    def _main(self) -> None:
        try:
            self.set_state("ok", f"{len(self.readers)} reader(s)")
            while not self._stop.is_set():
                self.progress()
                try:
                    kind, item = self.sink.q.get(timeout=0.2)
                except queue.Empty:
                    kind, item = "tick", None
                if kind == "card":
                    self._publish(self.engine.scan(item.reader, item.card, item.wall, item.mono))
                elif kind == "fault":
                    reader, port, reason, ts = item
                    self._publish([patrol_event("reader_fault", reader, ts, {"reader": reader, "port": port,
                                                                            "reason": reason})])
                elif kind == "restore":
                    reader, port, down, ts = item
                    self._publish([patrol_event("reader_restore", reader, ts, {"reader": reader, "port": port,
                                                                              "down_seconds": down})])
                wall, mono = self._instant()
                self._publish(self.engine.tick(wall, mono))
                self._daily(wall)
                self._update_health()
        except Exception as exc:
            self.log.exception("patrol engine failed")
            self.set_state("fault", f"{type(exc).__name__}: {exc}")

    def _instant(self) -> tuple[datetime, float]:
        """Wall and monotonic time read together (a clock moved between the reads is read again)."""
        clock = self.ctx.clock
        while True:
            m1 = clock.monotonic()
            wall = clock.now()
            m2 = clock.monotonic()
            if 0 <= m2 - m1 < 0.05:
                return wall, m2

    def _publish(self, outs: list[Emission]) -> None:
        """Record and commit what one engine step found: one fsync of the record log, one commit."""
        assert self.records is not None
        if not outs:
            return
        self.records.append_many(outs)
        self.ctx.emit_many(outs)
        for o in outs:
            self.count(f"events.{o.type}")

    def _update_health(self) -> None:
        faulty = []
        for r in self.readers:
            for k, v in r.counters.items():
                self.set_counter(f"{r.name}.{k}", v)
            if getattr(r, "faulted_at", None) is not None:
                faulty.append(r.name)
        self.set_counter("duplicate_reads", self.engine.duplicates)
        self.set_counter("rounds_in_progress", len(self.engine.rounds))
        if faulty:
            self.set_state("degraded", f"reader(s) down: {', '.join(faulty)}")
        else:
            self.set_state("ok", f"{len(self.readers)} reader(s), {len(self.engine.rounds)} round(s) in progress")

    # -- daily report ------------------------------------------------------
    def _last_reported(self) -> date | None:
        try:
            return date.fromisoformat(json.loads(self._state_file.read_text())["last_report"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _daily(self, wall: datetime) -> None:
        """After the report time, once per day: the day before's report (the engine has ticked to `wall`)."""
        now_local = wall.astimezone(ZoneInfo(self.tz))
        if now_local.time() < self.config.report_time:
            return
        day = now_local.date() - timedelta(days=1)
        last = self._last_reported()
        if last is not None and last >= day:
            return
        self.publish_report(day)
        self._mark_reported(day)

    def _mark_reported(self, day: date) -> None:
        write_atomic(self._state_file, json.dumps({"last_report": day.isoformat()}))

    def publish_report(self, day: date) -> None:
        assert self.records is not None
        pruned = self.records.prune(self.ctx.clock.now())
        routes = report_from_log(self.records_path, day, self.config.plan)
        data = {**report_data(day, routes), "timezone": self.tz, "chain_head": self.records.head,
                "records": self.records.count, "records_pruned": pruned}
        self._publish([patrol_event("daily_report", self.name, self.ctx.clock.now(), data)])

    # -- commands ----------------------------------------------------------
    def commands(self) -> Mapping[str, Any]:
        return {"patrol_verify": self._cmd_verify}

    def _cmd_verify(self, args: Mapping[str, Any]) -> Mapping[str, Any]:
        if args:
            raise CommandRefused(f"patrol_verify takes no arguments, got {', '.join(sorted(args))}")
        result = verify(self.records_path)
        return {"ok": result.ok, "records": result.records, "detail": result.describe()}

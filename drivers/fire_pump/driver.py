"""The fire pump driver: config, the poll loop in its own thread, events and commands.

One driver instance holds every `[[fire_pump]]` panel. Panels are grouped by
connection (a TCP endpoint, or a serial port shared by several panels on one
RS-485 bus); each connection is a `poller.Link` polled by its own task of an
asyncio loop that runs in the driver's thread. Poll outcomes go through each
panel's `PanelMonitor` (events, telemetry) and `Compliance` (test runs).

Read-only by design: polls use function codes 1-4; the `fire_pump_write`
command writes one holding register only when the config names that register
with `allow_write = true`, and nothing ever stops a pump.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from gateway.configfile import Problems, Section
from gateway.driver import CommandHandler, CommandRefused, ThreadedDriver
from drivers.fire_pump.compliance import DAY, Compliance, ComplianceSettings
from drivers.fire_pump.panel import PanelMonitor, PanelSettings
from drivers.fire_pump.poller import Endpoint, Link, PanelPoll, PollError, PollResult
from drivers.fire_pump.regmap import RegisterMap, decode_block, load_map, plan_reads

DEVICE_RE = r"[A-Za-z0-9_.-]+"
# Old spellings of [[fire_pump]] keys (one spelling per idea across families):
# refused with a line naming the new key.
RENAMED_KEYS = {"baudrate": "baud", "period_s": "poll_s", "telemetry_period_s": "telemetry_s"}


@dataclass
class WriteAllow:
    address: int
    note: str = ""


@dataclass
class PanelConfig:
    name: str
    endpoint: Endpoint
    unit: int
    regmap: RegisterMap
    pump_type: str
    poll_s: float = 1.0
    timeout_s: float = 0.5
    retries: int = 1
    comm_loss_after: int = 3
    telemetry_s: float = 60.0
    compliance: ComplianceSettings = field(default_factory=ComplianceSettings)
    writable: dict[int, WriteAllow] = field(default_factory=dict)


@dataclass
class FirePumpConfig:
    panels: list[PanelConfig] = field(default_factory=list)


def parse_panel(s: Section, problems: Problems) -> PanelConfig | None:
    before = len(problems)
    name = s.str("name", pattern=DEVICE_RE)
    transport = s.str("transport", "tcp", choices=("tcp", "rtu"))
    if transport == "tcp":
        ep = Endpoint("tcp", host=s.str("host"), port=s.int("port", 502, min=1, max=65535))
        s.mark_seen("serial_port", "baud", "parity", "stopbits", "bytesize")
        for k in ("serial_port", "baud", "parity", "stopbits", "bytesize"):
            if s.has(k):
                s.error(k, "only for transport = \"rtu\"")
    else:
        ep = Endpoint("rtu", serial_port=s.str("serial_port"),
                      baudrate=s.int("baud", 9600, min=300, max=921600),
                      parity=s.str("parity", "N", choices=("N", "E", "O")),
                      stopbits=s.int("stopbits", 1, min=1, max=2),
                      bytesize=s.int("bytesize", 8, min=7, max=8))
        s.mark_seen("host", "port")
        for k in ("host", "port"):
            if s.has(k):
                s.error(k, "only for transport = \"tcp\"")
    unit = s.int("unit", 1, min=0 if transport == "tcp" else 1, max=247 if transport == "rtu" else 255)
    map_ref = s.str("map", "generic")
    regmap = load_map(map_ref, problems, s.child_key("map"), s.base_dir) if map_ref else None
    pump_type = s.str("pump_type", regmap.pump_type if regmap else "electric", choices=("electric", "diesel"))
    period = s.float("poll_s", 1.0, min=0.05, max=3600)
    timeout = s.float("timeout_s", 0.5, min=0.01, max=30)
    retries = s.int("retries", 1, min=0, max=10)
    comm_loss_after = s.int("comm_loss_after", 3, min=1, max=1000)
    tele = s.float("telemetry_s", 60.0, min=0.1, max=86400)
    min_run = s.float("min_run_s", min=0) if s.has("min_run_s") else None
    s.mark_seen("min_run_s")
    weekly = s.float("weekly_period_days", 7.0, min=0.0001, max=366)
    monthly = s.float("monthly_period_days", 31.0, min=0.0001, max=366)
    writable: dict[int, WriteAllow] = {}
    for ws in s.sections("write"):
        addr = ws.int("address", min=0, max=65535)
        allow = ws.bool("allow_write", False)
        note = ws.str("note", "", nonempty=False)
        ws.finish()
        if allow:
            writable[addr] = WriteAllow(addr, note)
    for old, new in RENAMED_KEYS.items():
        s.renamed(old, new)
    s.finish()
    if timeout * (retries + 1) > period * 10:
        s.error("timeout_s", f"timeout_s x (retries + 1) = {timeout * (retries + 1):g} s is far beyond poll_s")
    if len(problems) > before or regmap is None:
        return None
    return PanelConfig(name, ep, unit, regmap, pump_type, period, timeout, retries, comm_loss_after,
                       tele, ComplianceSettings(pump_type, min_run, weekly * DAY, monthly * DAY), writable)


def parse_config(raw: Mapping[str, Any], problems: Problems, base_dir: Path | None = None) -> FirePumpConfig:
    top = Section(raw, "", problems, base_dir)
    cfg = FirePumpConfig()
    names: set[str] = set()
    buses: dict[tuple[Any, ...], list[PanelConfig]] = {}
    for i, s in enumerate(top.sections("fire_pump")):
        p = parse_panel(s, problems)
        if p is None:
            continue
        if p.name in names:
            s.error("name", f"duplicate panel name {p.name!r}")
            continue
        names.add(p.name)
        same = buses.setdefault(p.endpoint.key, [])
        for other in same:
            if other.unit == p.unit:
                s.error("unit", f"unit {p.unit} on {p.endpoint} is already panel {other.name!r}")
            if p.endpoint.kind == "rtu" and other.endpoint != p.endpoint:
                s.error("baud", f"serial settings differ from panel {other.name!r} on the same port")
        same.append(p)
        cfg.panels.append(p)
    top.finish()
    return cfg


class FirePumpDriver(ThreadedDriver):
    """Supervises fire pump controllers over Modbus TCP and RTU."""

    event_class = "fire_pump"
    stall_timeout = 30.0

    def __init__(self, name: str, config: FirePumpConfig, ctx: Any) -> None:
        super().__init__(name, config, ctx)
        self.panels: dict[str, PanelConfig] = {p.name: p for p in config.panels}
        self.monitors: dict[str, PanelMonitor] = {}
        self.compliance: dict[str, Compliance] = {}
        self.polls: dict[str, PanelPoll] = {}
        self.links: list[Link] = []
        self._link_of: dict[str, Link] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        state_dir = Path(ctx.state_dir)
        now = ctx.clock.now()
        for p in config.panels:
            comp = Compliance(p.name, p.compliance, state_dir, now)
            self.compliance[p.name] = comp
            self.monitors[p.name] = PanelMonitor(
                p.name, p.regmap, PanelSettings(p.comm_loss_after, p.telemetry_s), comp)
            self.polls[p.name] = PanelPoll(p.name, p.unit, plan_reads(p.regmap.points),
                                           p.poll_s, p.timeout_s, p.retries)

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], problems: Problems,
                     base_dir: Path | None = None) -> FirePumpConfig:
        return parse_config(raw, problems, base_dir)

    # -- the loop --------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.set_exception_handler(self._loop_exception)
            loop.run_until_complete(self._amain(stop))
        finally:
            self._loop = None
            loop.close()

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # pymodbus raises from its protocol callbacks on undecodable replies; the poll then
        # times out and is counted. One line in the log, not a traceback.
        exc = context.get("exception")
        self.log.debug("modbus transport: %s", f"{type(exc).__name__}: {exc}" if exc else context.get("message"))
        self.count("transport_errors")

    async def _amain(self, stop: threading.Event) -> None:
        stopping = asyncio.Event()
        groups: dict[tuple[Any, ...], list[PanelConfig]] = {}
        for p in self.config.panels:
            groups.setdefault(p.endpoint.key, []).append(p)
        self.links = []
        for members in groups.values():
            link = Link(members[0].endpoint, [self.polls[m.name] for m in members], self._on_result,
                        monotonic=self.ctx.clock.monotonic)
            self.links.append(link)
            for m in members:
                self._link_of[m.name] = link
        tasks = [asyncio.create_task(link.run(stopping), name=f"link {link.endpoint}")
                 for link in self.links]
        self.set_state("ok", f"{len(self.panels)} panel(s) on {len(self.links)} link(s)")
        try:
            while not stop.is_set():
                self.progress()
                self._check_compliance()
                self._update_health()
                for t in tasks:
                    if t.done() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
                await asyncio.sleep(0.25)
        finally:
            stopping.set()
            done, pending = await asyncio.wait(tasks, timeout=3.0) if tasks else (set(), set())
            for t in pending:
                t.cancel()
            for link in self.links:
                link.drop()

    def _check_compliance(self) -> None:
        now = self.ctx.clock.now()
        for name, comp in self.compliance.items():
            found = comp.check(now)
            if found:
                self.ctx.emit_many(found)

    @staticmethod
    def _device_state(mon: PanelMonitor) -> str:
        if mon.comm_lost_since is not None:
            return "comm_loss"
        if mon.alarms or mon.not_in_auto:
            return "alarm"
        if mon.faults:
            return "data_fault"
        return "starting" if mon.polls_ok == 0 else "ok"

    def _update_health(self) -> None:
        worst = "ok"
        for name, mon in self.monitors.items():
            state = self._device_state(mon)
            self.set_device_state(name, state)
            if state in ("comm_loss", "data_fault"):
                worst = "degraded"
        self.set_counter("polls_ok", sum(m.polls_ok for m in self.monitors.values()))
        self.set_counter("polls_failed", sum(m.polls_failed for m in self.monitors.values()))
        self.set_state(worst, f"{len(self.panels)} panel(s) on {len(self.links)} link(s)")

    def _on_result(self, poll: PanelPoll, result: PollResult) -> None:
        """Runs in the loop, right after a poll: decode, update state, emit, offer telemetry."""
        ts = self.ctx.clock.now()
        mono = self.ctx.clock.monotonic()
        mon = self.monitors[poll.name]
        with self._lock:
            if result.ok:
                values: dict[str, Any] = {}
                faults: dict[str, str] = {}
                for block, data in result.data:
                    v, f = decode_block(block, data)
                    values.update(v)
                    faults.update(f)
                events = mon.poll_ok(values, faults, ts, mono)
                tele = mon.telemetry_due(mono)
            else:
                events = mon.poll_failed(result.reason, ts, mono)
                tele = None
        self.set_device_state(poll.name, self._device_state(mon))
        if events:     # what one poll found is committed together: one fsync, never split by a crash
            self.ctx.emit_many(events)
        if tele is not None:
            self.ctx.telemetry(poll.name, tele, ts=ts)
        self.progress()

    # -- commands --------------------------------------------------------------------
    def commands(self) -> Mapping[str, CommandHandler]:
        return {"fire_pump_status": self._cmd_status, "fire_pump_tests": self._cmd_tests,
                "fire_pump_write": self._cmd_write}

    def _device_arg(self, args: Mapping[str, Any]) -> str:
        device = args.get("device")
        if not isinstance(device, str) or device not in self.panels:
            raise CommandRefused(f"unknown device {device!r}; known: {', '.join(sorted(self.panels))}")
        return device

    def _cmd_status(self, args: Mapping[str, Any]) -> Mapping[str, Any]:
        names = [self._device_arg(args)] if "device" in args else sorted(self.panels)
        with self._lock:
            return {n: {**self.monitors[n].status(), "compliance": self.compliance[n].summary()}
                    for n in names}

    def _cmd_tests(self, args: Mapping[str, Any]) -> Mapping[str, Any]:
        device = self._device_arg(args)
        return {"device": device, "tests": self.compliance[device].history()}

    def _cmd_write(self, args: Mapping[str, Any]) -> Mapping[str, Any]:
        device = self._device_arg(args)
        address, value = args.get("address"), args.get("value")
        if isinstance(address, bool) or not isinstance(address, int) or not 0 <= address <= 65535:
            raise CommandRefused("address must be an integer 0..65535")
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
            raise CommandRefused("value must be an integer 0..65535")
        allow = self.panels[device].writable.get(address)
        if allow is None:
            self.count("writes_refused")
            raise CommandRefused(f"write refused: holding register {address} of {device} is not named "
                                 f"with allow_write = true in the config (the driver is read-only)")
        loop, link = self._loop, self._link_of.get(device)
        if loop is None or link is None:
            raise CommandRefused("driver not running")
        panel = self.panels[device]

        async def job() -> None:
            await link.write_register(panel.unit, address, value, panel.timeout_s * (panel.retries + 1))

        async def submit() -> None:
            await link.submit(job)

        try:
            asyncio.run_coroutine_threadsafe(submit(), loop).result(panel.poll_s + panel.timeout_s * 4 + 5)
        except PollError as exc:
            raise CommandRefused(f"write failed: {exc}") from None
        except TimeoutError:
            raise CommandRefused("write timed out") from None
        self.ctx.emit(device, "register_written", "info",
                      {"address": address, "value": value, "note": allow.note})
        return {"device": device, "address": address, "value": value, "written": True}

"""A simulated fire pump controller: a real pymodbus server over TCP or RTU on a pty pair.

The panel's registers are encoded from its state with the same register map
the driver decodes with (`drivers.fire_pump.regmap`). Simple physics run in a
thread of their own: system pressure leaks slowly, the jockey pump tops it up,
the main pump starts when the pressure falls below its start pressure (and is
stopped after a while by a simulated operator, since a controller never stops
a fire pump on its own), and the weekly inspection run comes on a schedule
that params can compress (`weekly_every_s`).

Transports: `transport = "tcp"` serves on 127.0.0.1 (a free port unless
`port` is given). `transport = "rtu"` puts the panel on a simulated RS-485
bus (`bus`, default "rtu0") shared with every other panel of that bus: two
pseudo-terminal pairs joined by a relay, one end served by a pymodbus serial
server answering for each panel's unit id, the other end the port the driver
opens. A panel that is offline simply does not answer, as on a real bus.

Scenario actions: phase_loss, power_loss, fail_to_start, switch_to_manual,
switch_to_auto, pressure_drop, weekly_test, manual_run, panel_offline,
panel_online, garbage_replies (mode crc|short|noise|exception), reboot,
reset_storm (TCP), set_alarm / clear_alarm (any alarm point by name), and
clear (every injected fault restored).
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import termios
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

from gateway.configfile import Problems
from sim.base import SimDevice, SimWorld, UnknownAction
from drivers.fire_pump.regmap import Point, RegisterMap, load_map, put

TABLE_SIZE = 256
BUS_RESOURCE = "fire_pump_sim_buses"


def _pack_bits(bits: list[int]) -> list[int]:
    regs = []
    for i in range(0, len(bits), 16):
        word = 0
        for j, b in enumerate(bits[i:i + 16]):
            if b:
                word |= 1 << j
        regs.append(word)
    return regs


def _crc16(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


@dataclass
class PanelState:
    """What the simulated controller knows; encoded into its registers each tick."""

    pressure: float = 7.0
    suction: float = 1.5
    running: bool = False
    jockey: bool = False
    demand: bool = False
    demand_since: float = 0.0
    mode: str = "auto"
    cause: str = "none"
    run_since: float = 0.0
    run_until: float | None = None          # a timed run (inspection, manual test, operator)
    alarms: set[str] = field(default_factory=set)
    fail_next_start: bool = False
    hydrant_until: float = 0.0


class _Server:
    """A pymodbus server in its own asyncio loop thread (one per TCP panel or RTU bus)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=f"sim-modbus-{name}", daemon=True)
        self.server: Any = None
        self.panels: dict[int, "FirePumpSim"] = {}   # unit -> panel (0: any unit, TCP)
        self._unit = 0

    def start(self) -> None:
        self.thread.start()

    def shutdown(self) -> None:
        """Stop serving and end the server's event loop (the Modbus server may never have come up)."""
        if self.server is not None:
            try:
                self.call(self.server.shutdown(), 3.0)
            except Exception:
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(3.0)

    def call(self, coro: Any, timeout: float = 5.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def _device(self) -> Any:
        from pymodbus.simulator import DataType, SimData, SimDevice as MbDevice
        bits = lambda: [SimData(0, count=TABLE_SIZE, values=False, datatype=DataType.BITS)]  # noqa: E731
        regs = lambda: [SimData(0, count=TABLE_SIZE, values=0, datatype=DataType.REGISTERS)]  # noqa: E731
        return MbDevice(0, simdata=(bits(), bits(), regs(), regs()), action=self._action)

    def panel_for(self, unit: int) -> "FirePumpSim | None":
        return self.panels.get(unit) or self.panels.get(0)

    # hooks called by pymodbus in the server loop
    def _trace_pdu(self, sending: bool, pdu: Any) -> Any:
        if not sending:
            self._unit = pdu.dev_id
        return pdu

    async def _action(self, fc: int, start: int, address: int, count: int, registers: list[int],
                      values: Any) -> Any:
        panel = self.panel_for(self._unit)
        if panel is None:
            return None
        return panel.serve(fc, address, count, registers, values)

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending or not data:
            return data
        rtu = self.name.startswith("rtu:")
        unit = data[0] if rtu else (data[6] if len(data) > 6 else 0)
        panel = self.panel_for(unit)
        if panel is None:
            return b""
        if not rtu and time.monotonic() < panel._storm_until:
            self.loop.call_soon(self.reset_connections)
            return b""
        return panel.mangle(data, rtu)

    def reset_connections(self) -> None:
        """Abort every client connection (TCP RST), as a panel or a switch in trouble does."""
        for conn in list(getattr(self.server, "active_connections", {}).values()):
            t = getattr(conn, "transport", None)
            if t is not None:
                t.abort()


class _RtuBus:
    """Two pty pairs joined by a relay: the driver opens `port`, the pymodbus server the other end."""

    def __init__(self, name: str, state_dir: Path) -> None:
        self.name = name
        self.server = _Server(f"rtu:{name}")
        self.users = 0
        self.started = False
        self._fds: list[int] = []
        ma, sa = os.openpty()
        mb, sb = os.openpty()
        for fd in (sa, sb):
            tty.setraw(fd)
            attrs = termios.tcgetattr(fd)
            attrs[3] &= ~termios.ECHO
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
        self._fds = [ma, sa, mb, sb]
        self.server_port = os.ttyname(sa)
        self.port = os.ttyname(sb)
        self.link = state_dir / f"fire_pump-{name}.tty"
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            if self.link.is_symlink() or self.link.exists():
                self.link.unlink()
            self.link.symlink_to(self.port)
        except OSError:
            pass
        self._ma, self._mb = ma, mb
        self._stop = threading.Event()
        self._relay = threading.Thread(target=self._pump, name=f"sim-rtu-relay-{name}", daemon=True)

    def _pump(self) -> None:
        import select
        pair = {self._ma: self._mb, self._mb: self._ma}
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(list(pair), [], [], 0.2)
            except (OSError, ValueError):
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if data:
                    try:
                        os.write(pair[fd], data)
                    except OSError:
                        pass

    def start(self) -> None:
        from pymodbus.framer import FramerType
        from pymodbus.server import ModbusSerialServer
        self.started = True
        self._relay.start()
        self.server.start()
        srv = self.server

        async def up() -> None:
            srv.server = ModbusSerialServer(srv._device(), framer=FramerType.RTU, port=self.server_port,
                                            baudrate=9600, trace_packet=srv._trace_packet,
                                            trace_pdu=srv._trace_pdu, ignore_missing_devices=True)
            await srv.server.serve_forever(background=True)

        srv.call(up())

    def stop(self) -> None:
        if not self.started:
            self._close_fds()
            return
        self.server.shutdown()
        self._stop.set()
        self._relay.join(3.0)
        self._close_fds()

    def _close_fds(self) -> None:
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self.link.unlink()
        except OSError:
            pass


# params handed on to the driver's config under their config names, old spellings refused
RENAMED_PARAMS = {"period_s": "poll_s", "telemetry_period_s": "telemetry_s"}


class FirePumpSim(SimDevice):
    """One simulated fire pump controller."""

    kind: ClassVar[str] = "fire_pump"
    actions: ClassVar[tuple[str, ...]] = (
        "phase_loss", "power_loss", "fail_to_start", "switch_to_manual", "switch_to_auto",
        "pressure_drop", "weekly_test", "manual_run", "panel_offline", "panel_online",
        "garbage_replies", "reboot", "reset_storm", "set_alarm", "clear_alarm", "clear")

    def __init__(self, name: str, params: Mapping[str, Any], world: SimWorld) -> None:
        super().__init__(name, params, world)
        p = self.params
        for old, new in RENAMED_PARAMS.items():
            if old in p:
                raise ValueError(f"fire_pump sim {name}: param {old!r} is renamed: use {new!r} instead")
        self.transport = str(p.get("transport", "tcp"))
        self.unit = int(p.get("unit", 1))
        self.bus_name = str(p.get("bus", "rtu0"))
        self.map_ref = str(p.get("map", "electric"))
        problems = Problems()
        m = load_map(self.map_ref, problems, "map")
        if m is None:
            raise ValueError(f"fire_pump sim {name}: {problems.items[0] if problems.items else 'bad map'}")
        self.map: RegisterMap = m
        self.pump_type = str(p.get("pump_type", m.pump_type))
        self.tick_s = float(p.get("tick_s", 0.05))
        self.leak = float(p.get("leak_bar_per_s", 0.02))
        self.jockey_start = float(p.get("jockey_start_bar", 6.5))
        self.jockey_stop = float(p.get("jockey_stop_bar", 7.2))
        self.main_start = float(p.get("main_start_bar", 5.5))
        self.start_delay = float(p.get("start_delay_s", 0.4))
        self.fail_after = float(p.get("fail_to_start_after_s", 1.0))
        self.operator_stop = float(p.get("operator_stop_after_s", 15.0))
        self.weekly_every = p.get("weekly_every_s")
        self.weekly_run = float(p.get("weekly_run_s", 5.0))
        self.state = PanelState()
        self.lock = threading.Lock()
        self.tables: dict[int, list[int]] = {fc: [0] * TABLE_SIZE for fc in (1, 2, 3, 4)}
        self.offline_until: float | None = None         # None: online; inf: until panel_online
        self.busy_until = 0.0
        self.garbage: str | None = None
        self.garbage_code = 4
        self.garbage_until: float | None = None
        self.requests: list[tuple[float, int, int]] = []    # (monotonic, fc, address) answered
        self.writes: list[tuple[int, int, list[int]]] = []  # (fc, address, values) received
        self.rng = random.Random(hash(name) & 0xFFFF)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: _Server | None = None
        self._bus: _RtuBus | None = None
        self._storm_until = 0.0
        self.port = int(p.get("port", 0))
        self._last_weekly = time.monotonic()
        self._encode()

    # -- config for the driver side ----------------------------------------------
    def _prepare(self) -> None:
        """Choose the TCP port or join the RTU bus, so config() can name them before start()."""
        if self.transport == "tcp":
            if not self.port:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", 0))
                    self.port = s.getsockname()[1]
            return
        if self._bus is None:
            buses = self.world.resources.setdefault(BUS_RESOURCE, {})
            bus = buses.get(self.bus_name)
            if bus is None:
                bus = _RtuBus(self.bus_name, self.world.state_dir)
                buses[self.bus_name] = bus
            if self.unit in bus.server.panels:
                raise ValueError(f"fire_pump sim {self.name}: unit {self.unit} already on bus {self.bus_name}")
            bus.users += 1
            bus.server.panels[self.unit] = self
            self._bus = bus

    def config(self) -> dict[str, Any]:
        self._prepare()
        entry: dict[str, Any] = {"name": self.name, "transport": self.transport, "unit": self.unit,
                                 "map": self.map_ref}
        if self.transport == "tcp":
            entry.update(host="127.0.0.1", port=self.port)
        else:
            entry.update(serial_port=self._bus.port if self._bus else "", baud=9600)
        for k in ("poll_s", "timeout_s", "retries", "comm_loss_after", "telemetry_s",
                  "min_run_s", "weekly_period_days", "monthly_period_days", "pump_type"):
            if k in self.params:
                entry[k] = self.params[k]
        return {"fire_pump": [entry]}

    # -- life cycle ------------------------------------------------------------------
    def start(self) -> None:
        self._prepare()
        if self.transport == "tcp":
            self._start_tcp()
        else:
            assert self._bus is not None
            if not self._bus.started:
                self._bus.start()
        self._thread = threading.Thread(target=self._physics, name=f"sim-pump-{self.name}", daemon=True)
        self._thread.start()

    def _start_tcp(self) -> None:
        from pymodbus.server import ModbusTcpServer
        srv = _Server(f"tcp:{self.name}")
        srv.panels[0] = self
        srv.start()

        async def up() -> None:
            srv.server = ModbusTcpServer(srv._device(), address=("127.0.0.1", self.port),
                                         trace_packet=srv._trace_packet, trace_pdu=srv._trace_pdu)
            await srv.server.serve_forever(background=True)

        srv.call(up())
        self._server = srv

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(3.0)
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._bus is not None:
            bus = self._bus
            bus.server.panels.pop(self.unit, None)
            bus.users -= 1
            if bus.users <= 0:
                bus.stop()
                self.world.resources.get(BUS_RESOURCE, {}).pop(bus.name, None)
            self._bus = None

    @property
    def serial_port(self) -> str:
        return self._bus.port if self._bus else ""

    # -- serving (called in the server loop) --------------------------------------------
    def serve(self, fc: int, address: int, count: int, registers: list[int], values: Any) -> Any:
        from pymodbus.constants import ExcCodes
        now = time.monotonic()
        if values is not None and fc not in (1, 2, 3, 4):
            with self.lock:
                self.writes.append((fc, address, [int(v) for v in values]))
                if fc in (6, 16):
                    for i, v in enumerate(values):
                        self.tables[3][address + i] = int(v) & 0xFFFF
        if now < self.busy_until:
            return ExcCodes.DEVICE_BUSY
        if self.garbage == "exception" and self._garbage_on(now):
            return ExcCodes(self.garbage_code)
        with self.lock:
            if self.offline_until is None or now >= self.offline_until:
                self.requests.append((now, fc, address))
            if len(self.requests) > 20000:
                del self.requests[:10000]
            if fc in (1, 2, 5, 15):
                packed = _pack_bits(self.tables[1 if fc in (1, 5, 15) else 2])
                registers[:len(packed)] = packed
            else:
                table = self.tables[4 if fc == 4 else 3]
                registers[:len(table)] = table
        return None

    def _garbage_on(self, now: float) -> bool:
        if self.garbage is None:
            return False
        if self.garbage_until is not None and now >= self.garbage_until:
            self.garbage = None
            return False
        return True

    def mangle(self, frame: bytes, rtu: bool) -> bytes:
        now = time.monotonic()
        if self.offline_until is not None:
            if now < self.offline_until:
                return b""
            self.offline_until = None
        if not self._garbage_on(now) or self.garbage == "exception":
            return frame
        kind = self.garbage
        if kind == "crc" and rtu:
            return frame[:-1] + bytes([frame[-1] ^ 0x5A])
        if kind == "short" or (kind == "crc" and not rtu):
            if rtu:
                body = frame[:3] + frame[3:-2][: max(0, len(frame) - 7)]
                body = body[:2] + bytes([max(0, len(body) - 3)]) + body[3:]
                return body + _crc16(body).to_bytes(2, "little")
            body = frame[:-2]
            return body[:4] + (len(body) - 6).to_bytes(2, "big") + body[6:]
        noise = bytes(self.rng.randrange(256) for _ in range(len(frame)))
        return noise

    # -- physics ---------------------------------------------------------------------
    def _physics(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.tick_s):
            now = time.monotonic()
            dt = now - last
            last = now
            with self.lock:
                self._step(now, dt)
                self._encode()

    def _step(self, now: float, dt: float) -> None:
        s = self.state
        powered = "power_loss" not in s.alarms and "phase_loss" not in s.alarms
        leak = self.leak + (0.8 if now < s.hydrant_until else 0.0)
        s.pressure -= leak * dt
        if s.jockey:
            s.pressure += 0.15 * dt
            if s.pressure >= self.jockey_stop or not powered:
                s.jockey = False
        elif s.pressure < self.jockey_start and powered and not s.running:
            s.jockey = True
        if s.running:
            s.pressure += (9.5 - s.pressure) * min(1.0, 1.5 * dt)
            s.suction = 1.2
            if not powered and self.pump_type == "electric":
                self._stop_pump()
            elif s.run_until is not None and now >= s.run_until:
                self._stop_pump()
        else:
            s.suction += (1.5 - s.suction) * min(1.0, dt)
            if s.mode == "auto" and s.pressure < self.main_start and not s.demand:
                self._demand(now, "pressure", self.operator_stop)
            weekly = self.weekly_every
            if weekly and s.mode == "auto" and not s.demand and now - self._last_weekly >= float(weekly):
                self._last_weekly = now
                self._demand(now, "weekly_test", self.weekly_run)
        if s.demand and not s.running:
            blocked = s.fail_next_start or (not powered and self.pump_type == "electric")
            if not blocked and now - s.demand_since >= self.start_delay:
                s.running = True
                s.demand = False
                s.run_since = now
                s.run_until = now + self._run_for if self._run_for is not None else None
            elif blocked and now - s.demand_since >= self.fail_after:
                s.alarms.add("fail_to_start")
                s.demand = False
                s.fail_next_start = False
        s.pressure = max(0.0, min(12.0, s.pressure))

    _run_for: float | None = None

    def _demand(self, now: float, cause: str, run_for: float | None) -> None:
        s = self.state
        s.demand = True
        s.demand_since = now
        s.cause = cause
        self._run_for = run_for

    def _stop_pump(self) -> None:
        s = self.state
        s.running = False
        s.run_until = None
        s.cause = "none"
        if s.mode == "manual" and self._back_to_auto:
            s.mode = "auto"
            self._back_to_auto = False

    _back_to_auto = False

    def readings(self) -> dict[str, float]:
        s = self.state
        v = 0.0 if "power_loss" in s.alarms else 380.0
        run = s.running
        diesel = self.pump_type == "diesel"
        r = {"voltage_l1": 0.0 if "phase_loss" in s.alarms else v, "voltage_l2": v, "voltage_l3": v,
             "current_l1": 62.0 if run and not diesel else 0.0,
             "current_l2": 61.5 if run and not diesel else 0.0,
             "current_l3": 62.4 if run and not diesel else 0.0,
             "discharge_pressure": round(s.pressure, 2), "suction_pressure": round(s.suction, 2),
             "run_hours": 1234.5, "engine_hours": 321.0,
             "battery_1_voltage": 24.2 if "charger_fault" in s.alarms else 27.2,
             "battery_2_voltage": 24.2 if "charger_fault" in s.alarms else 27.1,
             "engine_speed": 1760.0 if run else 0.0, "coolant_temp": 82.0 if run else 45.0,
             "oil_pressure": 4.2 if run else 0.0}
        return r

    def _value(self, p: Point, readings: dict[str, float]) -> Any:
        s = self.state
        role = p.role
        if role == "running":
            return s.running
        if role == "start_demand":
            return s.demand
        if role == "mode":
            return s.mode if s.mode in p.values.values() else "auto"
        if role == "in_auto":
            return s.mode == "auto"
        if role == "start_cause":
            cause = s.cause if (s.running or s.demand) else "none"
            return cause if cause in p.values.values() else next(iter(p.values.values()))
        if role == "alarm":
            return p.name in s.alarms or (p.name == "common_alarm" and bool(s.alarms))
        value = readings.get(p.name, p.min if p.min is not None and p.min > 0 else 0.0)
        if p.min is not None:
            value = max(p.min, value)
        if p.max is not None:
            value = min(p.max, value)
        return value

    def _encode(self) -> None:
        readings = self.readings()
        for p in self.map.points:
            put(p, self._value(p, readings), self.tables[p.fc])

    # -- direct access (tests) ---------------------------------------------------------
    def set_raw(self, fc: int, address: int, words: list[int]) -> None:
        """Overwrite registers as a faulty panel would; physics rewrite mapped points each tick."""
        with self.lock:
            self.tables[fc][address:address + len(words)] = words

    def requests_of(self, since: float = 0.0) -> list[float]:
        with self.lock:
            return [t for t, _fc, _a in self.requests if t >= since]

    # -- scenario actions ----------------------------------------------------------------
    def act(self, action: str, params: Mapping[str, Any]) -> None:
        if action not in self.actions:
            raise UnknownAction(f"fire_pump device {self.name!r} has no action {action!r} "
                                f"(it knows: {', '.join(self.actions)})")
        now = time.monotonic()
        duration = params.get("duration")
        until = now + float(duration) if duration is not None else None
        with self.lock:
            s = self.state
            if action in ("phase_loss", "power_loss"):
                s.alarms.add(action)
                if action == "power_loss":
                    s.alarms.add("undervoltage")
                self._schedule_clear(until, action)
            elif action == "fail_to_start":
                s.fail_next_start = True
                s.pressure = min(s.pressure, self.main_start - 0.3)
                s.jockey = False
            elif action == "switch_to_manual":
                s.mode = str(params.get("mode", "manual"))
                self._schedule_clear(until, "mode")
            elif action == "switch_to_auto":
                s.mode = "auto"
            elif action == "pressure_drop":
                s.pressure = float(params.get("to", self.main_start - 1.0))
                s.hydrant_until = now + float(params.get("flow_s", 3.0))
                s.jockey = False
            elif action == "weekly_test":
                if not s.running:
                    self._demand(now, "weekly_test", float(params.get("run_s", self.weekly_run)))
            elif action == "manual_run":
                if not s.running:
                    s.mode = "manual"
                    self._back_to_auto = True
                    self._demand(now, "manual", float(params.get("run_s", self.weekly_run)))
            elif action == "panel_offline":
                self.offline_until = until if until is not None else float("inf")
            elif action == "panel_online":
                self.offline_until = None
            elif action == "garbage_replies":
                self.garbage = str(params.get("mode", "crc"))
                self.garbage_code = int(params.get("code", 4))
                self.garbage_until = until
            elif action == "reboot":
                self.offline_until = now + float(params.get("duration", 1.0))
                self.busy_until = self.offline_until + float(params.get("busy_s", 0.5))
            elif action == "reset_storm":
                self._storm_until = now + float(duration if duration is not None else 2.0)
            elif action == "set_alarm":
                s.alarms.add(str(params["alarm"]))
                self._schedule_clear(until, str(params["alarm"]))
            elif action == "clear_alarm":
                s.alarms.discard(str(params["alarm"]))
            elif action == "clear":
                s.alarms.clear()
                s.fail_next_start = False
                s.mode = "auto"
                self.offline_until = None
                self.garbage = None
                self.busy_until = 0.0
                self._storm_until = 0.0
            self._encode()
        if action == "reset_storm" and self._server is not None:
            self._server.loop.call_soon_threadsafe(self._server.reset_connections)

    def _schedule_clear(self, until: float | None, what: str) -> None:
        if until is None:
            return

        def clear() -> None:
            if self._stop.wait(max(0.0, until - time.monotonic())):
                return
            with self.lock:
                if what == "mode":
                    self.state.mode = "auto"
                else:
                    self.state.alarms.discard(what)
                    if what == "power_loss":
                        self.state.alarms.discard("undervoltage")
                self._encode()

        threading.Thread(target=clear, daemon=True, name=f"sim-clear-{self.name}").start()

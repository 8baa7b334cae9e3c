"""Polling Modbus panels with the pymodbus 3.16 async clients, read-only.

A `Link` is one connection (a TCP endpoint or a serial port carrying an RS-485
bus) and the panels behind it. Panels on one link are polled in turn, each on
its own period, timeout and retry count; a panel that does not answer costs
only its own timeout, and the rest of its poll is skipped, so the other
panels keep their rate. A link that cannot connect retries with backoff for
as long as the driver runs; a TCP connection that timed out or was reset is
dropped and opened again.

Only function codes 1-4 are used for polling. A write (function code 6) is
only ever made through `Link.write_register`, which the driver calls only for
a register the config names with `allow_write = true`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from gateway.backoff import Backoff
from drivers.fire_pump.regmap import ReadBlock

log = logging.getLogger(__name__)

EXCEPTION_NAMES: dict[int, str] = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value",
    4: "server device failure", 5: "acknowledge", 6: "server device busy",
    7: "negative acknowledge", 8: "memory parity error", 10: "gateway path unavailable",
    11: "gateway target failed to respond"}
READ_FCS = (1, 2, 3, 4)


@dataclass(frozen=True)
class Endpoint:
    """Where a panel is reached: `tcp` host:port or an `rtu` serial port."""

    kind: str
    host: str = ""
    port: int = 502
    serial_port: str = ""
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8

    @property
    def key(self) -> tuple[Any, ...]:
        return ("tcp", self.host, self.port) if self.kind == "tcp" else ("rtu", self.serial_port)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}" if self.kind == "tcp" else self.serial_port


@dataclass
class PanelPoll:
    """What the poller needs of one panel."""

    name: str
    unit: int
    blocks: Sequence[ReadBlock]
    period_s: float = 1.0
    timeout_s: float = 0.5
    retries: int = 1
    polls: int = 0                      # attempted polls (counted by the poller)


@dataclass
class PollResult:
    ok: bool
    data: list[tuple[ReadBlock, list[int]]] = field(default_factory=list)
    reason: str = ""
    started_mono: float = 0.0
    duration_s: float = 0.0


class PollError(Exception):
    """One read failed; the message says why (timeout, exception response, short reply...)."""


ResultCallback = Callable[[PanelPoll, PollResult], None]


class Link:
    """One Modbus connection and the panels on it, polled in turn."""

    reconnect_first_s = 0.2     # first wait after a failed connect; doubles up to reconnect_max_s

    def __init__(self, endpoint: Endpoint, panels: Sequence[PanelPoll], on_result: ResultCallback,
                 monotonic: Callable[[], float] = time.monotonic,
                 reconnect_max_s: float = 30.0) -> None:
        self.endpoint = endpoint
        self.panels = list(panels)
        self.on_result = on_result
        self.monotonic = monotonic
        self.reconnect_max_s = reconnect_max_s
        self.client: Any = None
        self.connects = 0
        self._backoff = Backoff(self.reconnect_first_s, reconnect_max_s)
        self._retry_at = 0.0
        self._jobs: asyncio.Queue[tuple[Any, asyncio.Future[Any]]] | None = None

    # -- connection ----------------------------------------------------------------
    def _make_client(self) -> Any:
        from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
        from pymodbus.framer import FramerType
        timeout = max(p.timeout_s for p in self.panels) * 2 + 1.0
        ep = self.endpoint
        if ep.kind == "tcp":
            return AsyncModbusTcpClient(ep.host, port=ep.port, timeout=timeout, retries=0,
                                        reconnect_delay=0)
        return AsyncModbusSerialClient(ep.serial_port, framer=FramerType.RTU, baudrate=ep.baudrate,
                                       parity=ep.parity, stopbits=ep.stopbits, bytesize=ep.bytesize,
                                       timeout=timeout, retries=0, reconnect_delay=0)

    async def _ensure_connected(self) -> None:
        if self.client is not None and self.client.connected:
            return
        now = time.monotonic()
        if now < self._retry_at:
            raise PollError(f"cannot connect to {self.endpoint} (next attempt in {self._retry_at - now:.1f} s)")
        self.drop()
        self.client = self._make_client()
        ok = False
        try:
            ok = await asyncio.wait_for(self.client.connect(), max(p.timeout_s for p in self.panels) + 2.0)
        except (asyncio.TimeoutError, OSError) as exc:
            log.debug("connect %s: %s", self.endpoint, exc)
        if not ok:
            self.drop()
            self._retry_at = time.monotonic() + self._backoff.next()
            raise PollError(f"cannot connect to {self.endpoint}")
        self.connects += 1
        self._backoff.reset()

    def drop(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # closing a broken transport must not stop polling
                pass
            self.client = None

    # -- requests ------------------------------------------------------------------
    async def _read(self, fc: int, address: int, count: int, unit: int, timeout: float) -> list[int]:
        if fc not in READ_FCS:
            raise PollError(f"function code {fc} is not a read")
        c = self.client
        fn = {1: c.read_coils, 2: c.read_discrete_inputs, 3: c.read_holding_registers,
              4: c.read_input_registers}[fc]
        try:
            rr = await asyncio.wait_for(fn(address, count=count, device_id=unit), timeout)
        except asyncio.TimeoutError:
            raise PollError(f"timeout after {timeout:g} s") from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # pymodbus raises ModbusIOException, ConnectionException, struct errors...
            raise PollError(f"{type(exc).__name__}: {exc}".splitlines()[0][:200]) from None
        if rr is None:
            raise PollError("no reply")
        if rr.isError():
            code = int(getattr(rr, "exception_code", 0) or 0)
            raise PollError(f"exception response {code} ({EXCEPTION_NAMES.get(code, 'unknown')})")
        if getattr(rr, "dev_id", unit) not in (unit, 0) and unit != 0:
            raise PollError(f"reply from unit {rr.dev_id}, asked {unit}")
        data = [int(b) for b in rr.bits[:count]] if fc in (1, 2) else list(rr.registers)
        if len(data) < count:
            raise PollError(f"short reply: {len(data)} of {count} values")
        if fc in (3, 4) and len(data) != count:
            raise PollError(f"malformed reply: {len(data)} registers for {count} asked")
        return data[:count]

    async def poll(self, panel: PanelPoll) -> PollResult:
        """Read every block of one panel; stop at the first block that fails all attempts."""
        started = self.monotonic()
        panel.polls += 1
        res = PollResult(ok=True, started_mono=started)
        try:
            await self._ensure_connected()
            for block in panel.blocks:
                data: list[int] | None = None
                last = ""
                for _attempt in range(panel.retries + 1):
                    try:
                        data = await self._read(block.fc, block.address, block.count, panel.unit,
                                                panel.timeout_s)
                        break
                    except PollError as exc:
                        last = str(exc)
                        if self.client is None or not self.client.connected:
                            break
                if data is None:
                    raise PollError(last)
                res.data.append((block, data))
        except PollError as exc:
            res.ok = False
            res.reason = str(exc)
            if self.endpoint.kind == "tcp" and ("timeout" in res.reason or "Connection" in res.reason):
                self.drop()      # a fresh connection rather than stale replies
        res.duration_s = self.monotonic() - started
        return res

    async def write_register(self, unit: int, address: int, value: int, timeout: float) -> None:
        """Function code 6, one register. The driver checks `allow_write` before calling."""
        await self._ensure_connected()
        try:
            rr = await asyncio.wait_for(
                self.client.write_register(address, value, device_id=unit), timeout)
        except asyncio.TimeoutError:
            raise PollError(f"timeout after {timeout:g} s") from None
        except Exception as exc:
            raise PollError(f"{type(exc).__name__}: {exc}".splitlines()[0][:200]) from None
        if rr.isError():
            code = int(getattr(rr, "exception_code", 0) or 0)
            raise PollError(f"exception response {code} ({EXCEPTION_NAMES.get(code, 'unknown')})")

    def submit(self, job: Callable[[], Any]) -> "asyncio.Future[Any]":
        """Queue a coroutine factory to run between polls (call from the loop's thread)."""
        assert self._jobs is not None
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._jobs.put_nowait((job, fut))
        return fut

    # -- the loop --------------------------------------------------------------------
    async def run(self, stopping: asyncio.Event) -> None:
        self._jobs = asyncio.Queue()
        now = time.monotonic()
        due = {id(p): now for p in self.panels}
        try:
            while not stopping.is_set():
                while not self._jobs.empty():
                    job, fut = self._jobs.get_nowait()
                    try:
                        fut.set_result(await job())
                    except Exception as exc:
                        if not fut.done():
                            fut.set_exception(exc)
                panel = min(self.panels, key=lambda p: due[id(p)])
                delay = due[id(panel)] - time.monotonic()
                if delay > 0:
                    try:
                        await asyncio.wait_for(stopping.wait(), delay)
                        break
                    except asyncio.TimeoutError:
                        pass
                    if not self._jobs.empty():
                        continue
                result = await self.poll(panel)
                try:
                    self.on_result(panel, result)
                except Exception:
                    log.exception("handling a poll of %s failed", panel.name)
                    raise
                nxt = due[id(panel)] + panel.period_s
                now = time.monotonic()
                # late (another panel's timeout): catch up on the missed slot, but never burst
                due[id(panel)] = nxt if nxt > now - panel.period_s else now
        finally:
            self.drop()

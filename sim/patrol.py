"""A simulated patrol site: RFID readers on real ptys and mock GPIO pins, and guards walking.

One `PatrolSim` is one site. It writes a registry and a plan into the world's
state folder and brings up one simulated reader per checkpoint:

- `em4100`: an RDM6300 on a pseudo-terminal, writing real 14-byte frames (the
  frame repeated while a card is held, noise between frames, now and then a
  corrupt frame);
- `pn532`: a PN532 on a pseudo-terminal that answers wake-up,
  SAMConfiguration, RFConfiguration and InListPassiveTarget with ACKs and real
  frames, reporting the card held in its field;
- `wiegand`: a Wiegand 26 reader driving mock D0/D1 pins of the gpiozero
  MockFactory in `world.resources["gpio_pin_factory"]` (created if absent),
  with now and then a frame of the wrong length or parity.

Each serial reader sits behind a stable link (like /dev/serial/by-id/...) in
the state folder; `unplug` closes the pty and removes the link, `replug` makes
a new pty behind the same link.

Guards walk the route, two together at night (`two_guards`), with
configurable lateness (`late_probability`, `late_s`), skipped checkpoints
(`skip_probability`) and lone night rounds (`lone_probability`). Rounds are
planned every minute for three hours so rounds start and complete all through a run.

Params: readers (list of types, default ["em4100", "wiegand", "pn532", "em4100"]),
leg_s (2.0), max_leg_s (12), two_guards (true), noise (0.2: share
of reads with garbage around them), corrupt (0.1: share of corrupt frames),
skip_probability, late_probability, lone_probability (0), late_s (3.0: past the leg's most),
walk (true: guards walk on their own).
Actions: walk (guard, skip=[...], late=[...], lone), present (reader, card),
unplug (reader), replug (reader), corrupt (reader, count), stop_walking, start_walking.
"""

from __future__ import annotations

import os
import threading
import time
import tty
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Mapping
from zoneinfo import ZoneInfo

from gateway.atomicfile import write_atomic
from sim.base import SimDevice, SimWorld, UnknownAction

from drivers.patrol import pn532
from drivers.patrol.em4100 import em4100_frame
from drivers.patrol.wiegand import encode26

GUARDS = {"Zhang Wei": "0100D507D0", "Li Na": "0100D507D1", "Wang Fang": "0100D507D2"}
WIEGAND_CARDS = {"Zhang Wei": (12, 3456), "Li Na": (12, 3457), "Wang Fang": (12, 3458)}
PN532_UIDS = {"Zhang Wei": bytes.fromhex("04A1B2C3D4E580"), "Li Na": bytes.fromhex("04A1B2C3D4E581"),
              "Wang Fang": bytes.fromhex("04A1B2C3D4E582")}


def card_for(reader_type: str, guard: str) -> str:
    """The card id the driver will see for `guard` on a reader of this type."""
    if reader_type == "wiegand":
        f, c = WIEGAND_CARDS[guard]
        return f"{f:03d}:{c:05d}"
    if reader_type == "pn532":
        return PN532_UIDS[guard].hex().upper()
    return GUARDS[guard]


class PtyDevice:
    """A serial device on a pseudo-terminal behind a stable link; can be unplugged and replugged."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master: int | None = None
        self.slave: int | None = None
        self.lock = threading.Lock()

    def plug(self) -> None:
        with self.lock:
            if self.master is not None:
                return
            master, slave = os.openpty()
            tty.setraw(slave)          # no echo, no line discipline: bytes as a UART sends them
            os.set_blocking(master, False)   # a full buffer drops bytes, as a UART nobody reads
            self.master, self.slave = master, slave
            tmp = self.link.with_suffix(".new")
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            tmp.symlink_to(os.ttyname(slave))
            os.replace(tmp, self.link)

    def unplug(self) -> None:
        with self.lock:
            if self.link.is_symlink():
                self.link.unlink()
            for fd in (self.master, self.slave):
                if fd is not None:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            self.master = self.slave = None

    @property
    def plugged(self) -> bool:
        return self.master is not None

    def write(self, data: bytes) -> bool:
        with self.lock:
            if self.master is None:
                return False
            try:
                os.write(self.master, data)
                return True
            except OSError:
                return False

    def read(self, timeout: float = 0.05) -> bytes:
        import select
        with self.lock:
            fd = self.master
        if fd is None:
            time.sleep(timeout)
            return b""
        try:
            ready, _, _ = select.select([fd], [], [], timeout)
            return os.read(fd, 1024) if ready else b""
        except (OSError, ValueError):
            return b""


class Em4100Sim:
    """An RDM6300: while a card is held, the frame repeats (about every 65 ms)."""

    def __init__(self, dev: PtyDevice, world: SimWorld, noise: float, corrupt: float,
                 halt: threading.Event) -> None:
        self.dev, self.world, self.noise, self.corrupt, self.halt = dev, world, noise, corrupt, halt

    def present(self, card: str, seconds: float = 0.3) -> None:
        rng = self.world.rng
        version, tag = int(card[:2], 16), int(card[2:], 16)
        frame = em4100_frame(version, tag)
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self.halt.is_set():
            out = frame
            if rng.random() < self.corrupt:           # a flipped checksum or a cut-off frame
                out = frame[:11] + b"00\x03" if rng.random() < 0.5 else frame[:7]
            if rng.random() < self.noise:
                out = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8))) + out
            self.dev.write(out)
            time.sleep(0.065)

    def garbage(self, count: int) -> None:
        for _ in range(count):
            self.dev.write(b"\x02" + bytes(self.world.rng.randrange(256) for _ in range(13)))


class Pn532Sim:
    """A PN532 on a pty: answers the host's commands; `field` holds the UID in range, if any."""

    def __init__(self, dev: PtyDevice, world: SimWorld, corrupt: float, halt: threading.Event) -> None:
        self.dev, self.world, self.corrupt, self.halt = dev, world, corrupt, halt
        self.field: bytes | None = None
        self.field_until = 0.0
        self.parser = pn532.Pn532Parser()
        self.commands = 0
        self._thread = threading.Thread(target=self._serve, name="sim-pn532", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def present(self, uid: bytes, seconds: float = 0.6) -> None:
        self.field, self.field_until = uid, time.monotonic() + seconds

    def _serve(self) -> None:
        while not self.halt.is_set():
            data = self.dev.read(0.05)
            if not data:
                if not self.dev.plugged:
                    self.parser = pn532.Pn532Parser()
                continue
            for f in self.parser.feed(data):
                if f.kind != "data" or f.tfi != pn532.TFI_HOST or f.code is None:
                    continue
                self.commands += 1
                self.dev.write(pn532.ACK)
                self.dev.write(self._answer(f.code))

    def _answer(self, code: int) -> bytes:
        if code == pn532.CMD_IN_LIST_PASSIVE_TARGET:
            uid = self.field if self.field is not None and time.monotonic() < self.field_until else None
            if uid is None:
                return pn532.response(code, b"\x00")
            frame = pn532.response(code, bytes([1, 1, 0x00, 0x44, 0x00, len(uid)]) + uid)
            if self.world.rng.random() < self.corrupt:
                frame = frame[:-2] + bytes([(frame[-2] + 1) & 0xFF, 0])   # bad DCS: the host retries
            return frame
        if code == pn532.CMD_GET_FIRMWARE_VERSION:
            return pn532.response(code, b"\x32\x01\x06\x07")
        return pn532.response(code)


class WiegandSim:
    """A Wiegand reader on two mock pins: each bit a short low pulse, about 2 ms apart."""

    def __init__(self, factory: Any, d0: int, d1: int, world: SimWorld, corrupt: float) -> None:
        self.pins = (factory.pin(d0), factory.pin(d1))
        self.world, self.corrupt = world, corrupt
        self.lock = threading.Lock()

    def send_bits(self, bits: list[int]) -> None:
        with self.lock:
            for b in bits:
                pin = self.pins[b]
                if pin.function != "input":
                    return                    # nobody listening yet
                pin.drive_low()
                pin.drive_high()
                time.sleep(0.002)
            time.sleep(0.05)                  # inter-frame gap, well above the decoder's 25 ms

    def present(self, facility: int, card: int) -> None:
        bits = encode26(facility, card)
        if self.world.rng.random() < self.corrupt:
            bad = list(bits)
            if self.world.rng.random() < 0.5:
                bad[5] ^= 1                   # parity error
            else:
                bad = bad[:-3]                # wrong length
            self.send_bits(bad)
        self.send_bits(bits)


# params spelled otherwise before (durations in seconds end in `_s`): refused, naming the new one
RENAMED_PARAMS = {"leg_seconds": "leg_s", "max_leg_seconds": "max_leg_s", "late_seconds": "late_s"}


class PatrolSim(SimDevice):
    kind: ClassVar[str] = "patrol"
    actions: ClassVar[tuple[str, ...]] = ("walk", "present", "unplug", "replug", "corrupt",
                                          "stop_walking", "start_walking")

    def __init__(self, name: str, params: Mapping[str, Any], world: SimWorld) -> None:
        super().__init__(name, params, world)
        p = self.params
        for old, new in RENAMED_PARAMS.items():
            if old in p:
                raise ValueError(f"patrol sim {name}: param {old!r} is renamed: use {new!r} instead")
        self.reader_types: list[str] = list(p.get("readers", ["em4100", "wiegand", "pn532", "em4100"]))
        self.leg_s = float(p.get("leg_s", 2.0))
        self.max_leg_s = float(p.get("max_leg_s", 12.0))
        self.two_guards = bool(p.get("two_guards", True))
        self.noise = float(p.get("noise", 0.2))
        self.corrupt = float(p.get("corrupt", 0.1))
        self.skip_p = float(p.get("skip_probability", 0.0))
        self.late_p = float(p.get("late_probability", 0.0))
        self.lone_p = float(p.get("lone_probability", 0.0))
        self.late_s = float(p.get("late_s", 3.0))
        self._halt = threading.Event()
        self.walking = threading.Event()
        if p.get("walk", True):
            self.walking.set()
        self.timezone = str(p.get("timezone", "Asia/Shanghai"))
        self.folder = world.state_dir / f"patrol-{name}"
        self.readers: list[tuple[str, str]] = [(f"{name}-cp{i + 1}", t) for i, t in enumerate(self.reader_types)]
        self.ptys: dict[str, PtyDevice] = {}
        self.sims: dict[str, Any] = {}
        factory = world.resources.get("gpio_pin_factory")
        self._pins_next = 5
        self._factory = factory
        self._thread: threading.Thread | None = None
        self._walk_lock = threading.Lock()
        self.walks = 0

    # -- config -------------------------------------------------------------
    def _ensure_factory(self) -> Any:
        if self._factory is None:
            from gpiozero.pins.mock import MockFactory
            self._factory = self.world.resources.setdefault("gpio_pin_factory", MockFactory())
        return self._factory

    def config(self) -> dict[str, Any]:
        self.folder.mkdir(parents=True, exist_ok=True)
        readers, checkpoints = [], []
        for i, (rname, rtype) in enumerate(self.readers):
            cp = f"{self.name}-checkpoint-{i + 1}"
            checkpoints.append(cp)
            if rtype == "wiegand":
                self._ensure_factory()        # the driver finds it in world.resources
                d0, d1 = self._pins_next, self._pins_next + 1
                self._pins_next += 2
                readers.append({"name": rname, "type": "wiegand", "d0": d0, "d1": d1})
                self.sims[rname] = ("wiegand", d0, d1)
            else:
                link = self.folder / f"usb-sim_{rtype}_{rname}-if00-port0"
                self.ptys[rname] = PtyDevice(link)
                entry: dict[str, Any] = {"name": rname, "type": rtype, "serial_port": str(link)}
                if rtype == "pn532":
                    entry["poll_ms"] = 100
                readers.append(entry)
        reg = ["# simulated site: written by sim/patrol.py"]
        for guard in GUARDS:
            cards = sorted({card_for(t, guard) for _, t in self.readers})
            reg += ["[[guard]]", f'name = "{guard}"', "cards = [" + ", ".join(f'"{c}"' for c in cards) + "]"]
        for (rname, _), cp in zip(self.readers, checkpoints):
            reg += ["[[checkpoint]]", f'id = "{cp}"', f'place = "Simulated {cp}"', f'reader = "{rname}"']
        write_atomic(self.folder / "registry.toml", "\n".join(reg) + "\n")
        now = datetime.now(ZoneInfo(self.timezone)).replace(second=0, microsecond=0)
        starts = sorted({(now + timedelta(minutes=m)).strftime("%H:%M") for m in range(0, 3 * 60)})
        plan = [
            "[[route]]", f'id = "{self.name}-route"', f'name = "Simulated round of {self.name}"',
            "checkpoints = [" + ", ".join(f'"{c}"' for c in checkpoints) + "]",
            f"max_minutes = {self.max_leg_s / 60:.3f}", "min_minutes = 0", "late_grace_minutes = 0.1",
            "[[schedule]]", f'name = "{self.name}-every-minute"', f'route = "{self.name}-route"',
            "starts = [" + ", ".join(f'"{s}"' for s in starts) + "]",
            "start_window_minutes = 1", "early_minutes = 0",
            f"two_guards = {'true' if self.two_guards else 'false'}", "pair_s = 5",
        ]
        write_atomic(self.folder / "plan.toml", "\n".join(plan) + "\n")
        return {"patrol": readers,
                "patrol_plan": {"registry": str(self.folder / "registry.toml"),
                                "plan": str(self.folder / "plan.toml"), "report_time": "00:05"}}

    # -- life ---------------------------------------------------------------
    def start(self) -> None:
        for rname, rtype in self.readers:
            if rtype == "wiegand":
                _, d0, d1 = self.sims[rname]
                self.sims[rname] = WiegandSim(self._ensure_factory(), d0, d1, self.world, self.corrupt)
            else:
                dev = self.ptys[rname]
                dev.plug()
                if rtype == "pn532":
                    sim = Pn532Sim(dev, self.world, self.corrupt, self._halt)
                    sim.start()
                    self.sims[rname] = sim
                else:
                    self.sims[rname] = Em4100Sim(dev, self.world, self.noise, self.corrupt, self._halt)
        self._thread = threading.Thread(target=self._patrol, name=f"sim-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        self.walking.clear()
        if self._thread is not None:
            self._thread.join(3)
        for dev in self.ptys.values():
            dev.unplug()

    def _stopping(self) -> bool:
        return self._halt.is_set() or self.world.stopping.is_set()

    def _sleep(self, seconds: float) -> bool:
        """Wait (this is the device's own pace, not synchronisation); True when stopping."""
        self._halt.wait(seconds)
        return self._stopping()

    def _patrol(self) -> None:
        names = list(GUARDS)
        i = 0
        while not self._stopping():
            if not self.walking.wait(0.2):
                continue
            rng = self.world.rng
            guard, partner = names[i % len(names)], names[(i + 1) % len(names)]
            i += 1
            skip = [k for k in range(1, len(self.readers)) if rng.random() < self.skip_p]
            late = [k for k in range(1, len(self.readers)) if rng.random() < self.late_p]
            lone = not self.two_guards or rng.random() < self.lone_p
            self.walk(guard, None if lone else partner, skip, late)
            self._sleep(1.0)

    def walk(self, guard: str, partner: str | None, skip: list[int], late: list[int]) -> None:
        """One guard (with a partner, unless alone) along the route."""
        with self._walk_lock:
            for k, (rname, _) in enumerate(self.readers):
                if self._stopping():
                    return
                if k:
                    wait = self.max_leg_s + self.late_s if k in late else self.leg_s
                    if self._sleep(wait):
                        return
                if k in skip:
                    continue
                self.present(rname, guard)
                if partner:
                    self._sleep(0.5)
                    self.present(rname, partner)
            self.walks += 1

    def present(self, reader: str, guard: str) -> None:
        if guard not in GUARDS:
            raise UnknownAction(f"present: guards are {', '.join(GUARDS)}")
        sim = self.sims.get(reader)
        if isinstance(sim, Em4100Sim):
            sim.present(GUARDS[guard])
        elif isinstance(sim, Pn532Sim):
            sim.present(PN532_UIDS[guard])
        elif isinstance(sim, WiegandSim):
            sim.present(*WIEGAND_CARDS[guard])

    def act(self, action: str, params: Mapping[str, Any]) -> None:
        if action == "walk":
            guard = str(params.get("guard", "Zhang Wei"))
            partner = params.get("partner")
            if guard not in GUARDS or (partner is not None and partner not in GUARDS):
                raise UnknownAction(f"walk: guards are {', '.join(GUARDS)}")
            threading.Thread(target=self.walk, args=(guard, partner, list(params.get("skip", [])),
                                                     list(params.get("late", []))), daemon=True).start()
        elif action == "present":
            self.present(self._reader(params), str(params.get("guard", "Zhang Wei")))
        elif action in ("unplug", "replug"):
            dev = self.ptys.get(self._reader(params))
            if dev is None:
                raise UnknownAction(f"reader {params.get('reader')!r} of {self.name} is not a serial reader")
            dev.unplug() if action == "unplug" else dev.plug()
        elif action == "corrupt":
            sim = self.sims.get(self._reader(params))
            if isinstance(sim, Em4100Sim):
                sim.garbage(int(params.get("count", 10)))
        elif action == "stop_walking":
            self.walking.clear()
        elif action == "start_walking":
            self.walking.set()
        else:
            super().act(action, params)

    def _reader(self, params: Mapping[str, Any]) -> str:
        r = params.get("reader", 1)
        if isinstance(r, int) and 1 <= r <= len(self.readers):
            return self.readers[r - 1][0]
        if isinstance(r, str) and any(r == n for n, _ in self.readers):
            return r
        raise UnknownAction(f"{self.name} has no reader {r!r} (1..{len(self.readers)} or a name)")

"""Register maps of fire pump controllers: loading, validation, decoding, encoding.

A register map is data (a TOML file): each point names a function code (1-4,
read-only), an address, a type (`bit` of a word, `bool` for coils/discrete
inputs, `uint16`, `int16`, `uint32`, `int32`, `float32`), a word order for
32-bit values (`ABCD`, `CDAB`, `BADC`, `DCBA`), a scale and an offset, a unit,
and its role (which alarm, which reading, run state, mode, start cause).

Everything here is a pure function over register lists, so decoding is tested
against hand-computed registers and the simulated panel encodes with the same
map the driver decodes with.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from gateway.configfile import Problems, Section, load_toml, parse_named

TYPES: dict[str, int] = {"bit": 1, "bool": 1, "uint16": 1, "int16": 1,
                         "uint32": 2, "int32": 2, "float32": 2}
WORD_ORDERS: tuple[str, ...] = ("ABCD", "CDAB", "BADC", "DCBA")
ROLES: tuple[str, ...] = ("alarm", "reading", "running", "start_demand", "mode", "in_auto",
                          "start_cause", "status")
MODES: tuple[str, ...] = ("auto", "manual", "off")
START_CAUSES: tuple[str, ...] = ("none", "pressure", "manual", "weekly_test", "remote",
                                 "deluge", "flow", "test", "other")
SEVERITIES: tuple[str, ...] = ("info", "warning", "alarm", "critical")
BUILTIN_MAPS: tuple[str, ...] = ("generic", "electric", "diesel")
MAX_REGS_PER_READ = 120      # Modbus allows 125 registers per read
MAX_BITS_PER_READ = 1968     # and 2000 bits
MAX_GAP = 8                  # read across a gap this small rather than issue another request

# (wire byte index for value byte A, B, C, D) for each word order
_ORDER_INDEX: dict[str, tuple[int, int, int, int]] = {
    "ABCD": (0, 1, 2, 3), "CDAB": (2, 3, 0, 1), "BADC": (1, 0, 3, 2), "DCBA": (3, 2, 1, 0)}


@dataclass(frozen=True)
class Point:
    """One value a controller exposes."""

    name: str
    role: str
    fc: int
    address: int
    type: str = "uint16"
    bit: int = 0                       # for type "bit": which bit of the word (0 = LSB)
    word_order: str = "ABCD"
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    severity: str = "alarm"            # for alarms
    active_low: bool = False           # for bits/bools: 0 means active
    min: float | None = None           # physically possible range; outside it is a data_fault
    max: float | None = None
    deadband: float | None = None      # telemetry on a change bigger than this
    values: Mapping[int, str] = field(default_factory=dict)   # enums (mode, start_cause)
    description: str = ""

    @property
    def width(self) -> int:
        return TYPES[self.type]

    @property
    def is_bit(self) -> bool:
        return self.fc in (1, 2)


@dataclass(frozen=True)
class RegisterMap:
    name: str
    description: str
    verify_on_site: bool
    pump_type: str                     # electric | diesel
    points: tuple[Point, ...]
    source: str = ""

    def by_role(self, role: str) -> list[Point]:
        return [p for p in self.points if p.role == role]

    def point(self, name: str) -> Point | None:
        for p in self.points:
            if p.name == name:
                return p
        return None


@dataclass(frozen=True)
class ReadBlock:
    """One read request: function code, first address, count, and the points it covers."""

    fc: int
    address: int
    count: int
    points: tuple[Point, ...]


class DecodeError(ValueError):
    """A value that cannot be taken as a reading (NaN, out of physical range, unknown enum)."""


# -- loading -------------------------------------------------------------------

def parse_map(raw: Mapping[str, Any], problems: Problems, key: str = "map", source: str = "") -> RegisterMap:
    """Validate a parsed map document; every problem is recorded with its key."""
    s = Section(raw, key, problems)
    name = s.str("name", "unnamed")
    description = s.str("description", "", nonempty=False)
    verify = s.bool("verify_on_site", True)
    pump_type = s.str("pump_type", "electric", choices=("electric", "diesel"))
    points: list[Point] = parse_named(s.sections("point", required=True), _parse_point,
                                      lambda name: f"duplicate point name {name!r}")
    s.finish()
    if not points and not problems:
        s.error("point", "a map needs at least one point")
    for role in ("running",):
        if len([p for p in points if p.role == role]) > 1:
            s.error("point", f"more than one point with role {role!r}")
    return RegisterMap(name, description, verify, pump_type, tuple(points), source)


def _parse_point(ps: Section) -> Point | None:
    before = len(ps.problems)
    name = ps.str("name", pattern=r"[a-z][a-z0-9_]*")
    role = ps.str("role", choices=ROLES)
    fc = ps.int("fc", min=1, max=4)
    address = ps.int("address", min=0, max=65535)
    typ = ps.str("type", "bool" if fc in (1, 2) else "uint16", choices=tuple(TYPES))
    bit = ps.int("bit", 0, min=0, max=15)
    word_order = ps.str("word_order", "ABCD", choices=WORD_ORDERS)
    scale = ps.float("scale", 1.0)
    offset = ps.float("offset", 0.0)
    unit = ps.str("unit", "", nonempty=False)
    severity = ps.str("severity", "alarm", choices=SEVERITIES)
    active_low = ps.bool("active_low", False)
    lo = ps.float("min") if ps.has("min") else None
    ps.mark_seen("min")
    hi = ps.float("max") if ps.has("max") else None
    ps.mark_seen("max")
    deadband = ps.float("deadband", min=0.0) if ps.has("deadband") else None
    ps.mark_seen("deadband")
    description = ps.str("description", "", nonempty=False)
    values: dict[int, str] = {}
    vs = ps.section("values")
    for k, v in vs.raw.items():
        vs.mark_seen(k)
        try:
            num = int(k)
        except ValueError:
            vs.error(k, "enum keys are register values (integers)")
            continue
        if not isinstance(v, str):
            vs.error(k, "expected a string")
            continue
        values[num] = v
    ps.finish()
    if fc in (1, 2) and typ != "bool":
        ps.error("type", "coils and discrete inputs (fc 1, 2) are type 'bool'")
    if fc in (3, 4) and typ == "bool":
        ps.error("type", "registers (fc 3, 4) take 'bit' (with bit = N) for a single flag")
    if scale == 0:
        ps.error("scale", "must not be 0")
    if lo is not None and hi is not None and lo >= hi:
        ps.error("min", "must be below max")
    if role in ("alarm", "running", "start_demand", "in_auto") and typ not in ("bit", "bool"):
        ps.error("type", f"role {role!r} needs a 'bit' or 'bool' point")
    if role == "mode":
        if not values:
            ps.error("values", "role 'mode' needs values = {\"0\" = \"off\", \"1\" = \"manual\", \"2\" = \"auto\"}")
        for k, v in values.items():
            if v not in MODES:
                ps.problems.add(f"{vs.key}.{k}", f"mode must be one of {', '.join(MODES)}, got {v!r}")
    if role == "start_cause":
        for k, v in values.items():
            if v not in START_CAUSES:
                ps.problems.add(f"{vs.key}.{k}", f"start cause must be one of {', '.join(START_CAUSES)}, got {v!r}")
    if len(ps.problems) > before:
        return None
    return Point(name, role, fc, address, typ, bit, word_order, scale, offset, unit, severity,
                 active_low, lo, hi, deadband, values, description)


def builtin_map_path(name: str) -> Path:
    return Path(str(resources.files("drivers.fire_pump") / "maps" / f"{name}.toml"))


def load_map(ref: str, problems: Problems, key: str = "map", base_dir: Path | None = None) -> RegisterMap | None:
    """Load a built-in map by name (`electric`) or a technician's file by path."""
    if ref in BUILTIN_MAPS:
        path = builtin_map_path(ref)
    else:
        path = Path(ref)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        if path.suffix != ".toml" and not path.exists():
            problems.add(key, f"unknown map {ref!r}: give one of {', '.join(BUILTIN_MAPS)} or a .toml file")
            return None
    raw, file_problems = load_toml(path, key)
    if file_problems:
        problems.items.extend(file_problems.items)
        return None
    before = len(problems)
    m = parse_map(raw, problems, f"{key}({path.name})", str(path))
    return None if len(problems) > before else m


# -- planning reads ----------------------------------------------------------------

def plan_reads(points: Sequence[Point], max_gap: int = MAX_GAP) -> list[ReadBlock]:
    """Group points into as few read requests as the protocol limits allow."""
    blocks: list[ReadBlock] = []
    for fc in (1, 2, 3, 4):
        pts = sorted((p for p in points if p.fc == fc), key=lambda p: (p.address, p.width))
        limit = MAX_BITS_PER_READ if fc in (1, 2) else MAX_REGS_PER_READ
        cur: list[Point] = []
        start = end = 0
        for p in pts:
            p_end = p.address + p.width
            if cur and p.address <= end + max_gap and max(end, p_end) - start <= limit:
                cur.append(p)
                end = max(end, p_end)
                continue
            if cur:
                blocks.append(ReadBlock(fc, start, end - start, tuple(cur)))
            cur, start, end = [p], p.address, p_end
        if cur:
            blocks.append(ReadBlock(fc, start, end - start, tuple(cur)))
    return blocks


# -- decoding ----------------------------------------------------------------------

def words_to_bytes(words: Sequence[int], word_order: str) -> bytes:
    """Two registers as received -> the value's bytes A B C D (big-endian)."""
    wire = (words[0] & 0xFFFF).to_bytes(2, "big") + (words[1] & 0xFFFF).to_bytes(2, "big")
    idx = _ORDER_INDEX[word_order]
    return bytes(wire[i] for i in idx)


def bytes_to_words(value_bytes: bytes, word_order: str) -> list[int]:
    """The inverse: value bytes A B C D -> the two registers a panel with this order sends."""
    idx = _ORDER_INDEX[word_order]
    wire = bytearray(4)
    for vi, wi in enumerate(idx):
        wire[wi] = value_bytes[vi]
    return [int.from_bytes(wire[0:2], "big"), int.from_bytes(wire[2:4], "big")]


def raw_value(point: Point, words: Sequence[int]) -> int | float | bool:
    """The unscaled value of a point from its own registers (or bits)."""
    t = point.type
    if t == "bool":
        v = bool(words[0])
        return v != point.active_low
    if t == "bit":
        v = bool((words[0] >> point.bit) & 1)
        return v != point.active_low
    if t == "uint16":
        return words[0] & 0xFFFF
    if t == "int16":
        w = words[0] & 0xFFFF
        return w - 0x10000 if w & 0x8000 else w
    b = words_to_bytes(words, point.word_order)
    if t == "uint32":
        return struct.unpack(">I", b)[0]
    if t == "int32":
        return struct.unpack(">i", b)[0]
    return struct.unpack(">f", b)[0]


def decode(point: Point, words: Sequence[int]) -> int | float | bool | str:
    """The point's value: a flag, an enum name, or a scaled reading.

    Raises DecodeError for values that make no physical sense (NaN, infinite,
    outside min/max, an enum value the map does not know).
    """
    raw = raw_value(point, words)
    if isinstance(raw, bool):
        return raw
    if point.role in ("mode", "start_cause"):
        if int(raw) not in point.values:
            raise DecodeError(f"unknown {point.role} value {raw}")
        return point.values[int(raw)]
    if isinstance(raw, float) and not math.isfinite(raw):
        raise DecodeError(f"not a number ({raw})")
    value = raw * point.scale + point.offset
    if point.min is not None and value < point.min:
        raise DecodeError(f"{value:g} {point.unit} is below the possible {point.min:g}".replace("  ", " "))
    if point.max is not None and value > point.max:
        raise DecodeError(f"{value:g} {point.unit} is above the possible {point.max:g}".replace("  ", " "))
    if isinstance(value, float):
        value = round(value, 6)
    return value


def decode_block(block: ReadBlock, data: Sequence[int] | Sequence[bool]) -> tuple[dict[str, Any], dict[str, str]]:
    """Decode every point of a block from the registers read; returns (values, faults)."""
    values: dict[str, Any] = {}
    faults: dict[str, str] = {}
    if len(data) < block.count:
        for p in block.points:
            faults[p.name] = f"short reply: {len(data)} of {block.count} values"
        return values, faults
    for p in block.points:
        off = p.address - block.address
        words = [int(x) for x in data[off:off + p.width]]
        try:
            values[p.name] = decode(p, words)
        except DecodeError as exc:
            faults[p.name] = str(exc)
    return values, faults


# -- encoding (the simulated panel and tests) ----------------------------------------

def encode(point: Point, value: Any) -> list[int]:
    """Registers (or 0/1 bits) a panel sends for this value; the inverse of `decode`."""
    t = point.type
    if t in ("bool", "bit"):
        on = bool(value) != point.active_low
        return [1 if on else 0]
    if point.role in ("mode", "start_cause") and isinstance(value, str):
        inverse = {v: k for k, v in point.values.items()}
        raw: float = inverse[value]
    else:
        raw = (float(value) - point.offset) / point.scale
    if t == "float32":
        return bytes_to_words(struct.pack(">f", raw), point.word_order)
    n = int(round(raw))
    if t == "uint16":
        return [n & 0xFFFF]
    if t == "int16":
        return [n & 0xFFFF]
    fmt = ">I" if t == "uint32" else ">i"
    if t == "uint32":
        n &= 0xFFFFFFFF
    return bytes_to_words(struct.pack(fmt, n), point.word_order)


def put(point: Point, value: Any, table: list[int]) -> None:
    """Write a point's encoded value into a register (or bit) table in place."""
    words = encode(point, value)
    if point.type == "bit":
        mask = 1 << point.bit
        table[point.address] = (table[point.address] | mask) if words[0] else (table[point.address] & ~mask)
        return
    table[point.address:point.address + len(words)] = words

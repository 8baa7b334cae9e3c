"""EM4100 / RDM6300 125 kHz reader frames: a pure, incremental parser and a framer.

An RDM6300 sends, at 9600 8N1, for every read of a tag (and again and again
while the tag stays in the field) a 14-byte frame:

    0x02 | 10 ASCII-hex: 2 version (customer) + 8 tag | 2 ASCII-hex XOR checksum | 0x03

The checksum is the XOR of the 5 data bytes the 10 hex characters spell. The
parser takes bytes in any chunking, skips garbage, restarts on a second 0x02,
drops a frame on a non-hex byte or a bad checksum (and counts it), and never
raises on any input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STX = 0x02
ETX = 0x03
_HEX = frozenset(b"0123456789ABCDEFabcdef")


@dataclass(frozen=True)
class Em4100Read:
    """One valid frame: the 5 data bytes of the tag."""

    version: int   # the first data byte (vendor / customer id)
    tag: int       # the 32-bit tag number

    @property
    def card_id(self) -> str:
        """The card id as the registry spells it: 10 upper-case hex digits."""
        return f"{self.version:02X}{self.tag:08X}"


def checksum(data: bytes) -> int:
    """XOR of the data bytes."""
    x = 0
    for b in data:
        x ^= b
    return x


def em4100_frame(version: int, tag: int) -> bytes:
    """The 14-byte frame a reader sends for a tag."""
    data = bytes([version & 0xFF]) + (tag & 0xFFFFFFFF).to_bytes(4, "big")
    return bytes([STX]) + data.hex().upper().encode() + f"{checksum(data):02X}".encode() + bytes([ETX])


@dataclass
class Em4100Parser:
    """Incremental frame parser; `feed` returns the frames completed by the bytes given."""

    frames_ok: int = 0
    bad_checksum: int = 0
    bad_frames: int = 0          # non-hex inside a frame, missing ETX, restarted by a second STX
    garbage_bytes: int = 0       # bytes outside any frame
    _buf: bytearray = field(default_factory=bytearray, repr=False)
    _in_frame: bool = field(default=False, repr=False)

    def feed(self, chunk: bytes) -> list[Em4100Read]:
        out: list[Em4100Read] = []
        for b in chunk:
            if not self._in_frame:
                if b == STX:
                    self._in_frame = True
                    self._buf.clear()
                else:
                    self.garbage_bytes += 1
                continue
            if b == STX:                      # a new frame starts: the old one was cut short
                self.bad_frames += 1
                self._buf.clear()
                continue
            if len(self._buf) < 12:
                if b in _HEX:
                    self._buf.append(b)
                else:
                    self.bad_frames += 1
                    self._in_frame = False
                    self.garbage_bytes += 1
                continue
            # 12 hex characters collected: this byte must be ETX
            self._in_frame = False
            if b != ETX:
                self.bad_frames += 1
                self.garbage_bytes += 1
                continue
            raw = bytes.fromhex(self._buf.decode("ascii"))
            data, check = raw[:5], raw[5]
            if checksum(data) != check:
                self.bad_checksum += 1
                continue
            self.frames_ok += 1
            out.append(Em4100Read(version=data[0], tag=int.from_bytes(data[1:5], "big")))
        return out

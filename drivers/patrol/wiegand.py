"""Wiegand 26 / 34 decoding: a pure decoder fed (bit, time) and the bit encoders.

A Wiegand reader holds D0 and D1 high and sends each bit as a low pulse of
20-100 us on D0 (a 0) or D1 (a 1), about 1-2 ms apart; a frame ends when no
bit comes for a while (`gap_s`, 25 ms by default, far longer than any bit
interval, far shorter than the pause between two reads).

    Wiegand 26: P(even over bits 1-12) | 8-bit facility | 16-bit card | P(odd over bits 13-24)
    Wiegand 34: P(even over bits 1-16) | 32 data bits               | P(odd over bits 17-32)

The decoder only sees bits and times, so it is tested without pins; the GPIO
side (drivers/patrol/driver.py) feeds it from falling edges. Frames of another
length and parity errors are rejected and counted, never raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_GAP_S = 0.025


@dataclass(frozen=True)
class WiegandRead:
    """A frame that passed its parity checks."""

    bits: int            # 26 or 34
    value: int           # the data bits without parity (24 or 32 bits)

    @property
    def facility(self) -> int:
        return self.value >> 16

    @property
    def card(self) -> int:
        return self.value & 0xFFFF

    @property
    def card_id(self) -> str:
        """Registry spelling: W26 as `facility:card` (as printed on the card, e.g. `123:04567`),
        W34 as 8 upper-case hex digits (the 4-byte UID such readers send)."""
        if self.bits == 26:
            return f"{self.facility:03d}:{self.card:05d}"
        return f"{self.value:08X}"


def _parity_even(bits: list[int]) -> int:
    return sum(bits) & 1


def encode(bits_count: int, value: int) -> list[int]:
    """The bits a reader sends for `value` (24 bits for W26, 32 for W34), parity included."""
    if bits_count not in (26, 34):
        raise ValueError("Wiegand format must be 26 or 34 bits")
    n = bits_count - 2
    data = [(value >> (n - 1 - i)) & 1 for i in range(n)]
    half = n // 2
    first = _parity_even(data[:half])             # even parity: makes the count even
    last = 1 - _parity_even(data[half:])          # odd parity: makes the count odd
    return [first, *data, last]


def encode26(facility: int, card: int) -> list[int]:
    return encode(26, ((facility & 0xFF) << 16) | (card & 0xFFFF))


def encode34(value: int) -> list[int]:
    return encode(34, value & 0xFFFFFFFF)


def decode_bits(bits: list[int]) -> WiegandRead | str:
    """A whole frame's bits -> a read, or the reason it is rejected ("length", "parity")."""
    if len(bits) not in (26, 34):
        return "length"
    n = len(bits) - 2
    half = n // 2
    data = bits[1:-1]
    if (bits[0] + sum(data[:half])) % 2 != 0 or (sum(data[half:]) + bits[-1]) % 2 != 1:
        return "parity"
    value = 0
    for b in data:
        value = value << 1 | b
    return WiegandRead(bits=len(bits), value=value)


@dataclass
class WiegandDecoder:
    """Collects bits into frames; a gap of `gap_s` without a bit ends a frame.

    `feed(bit, t)` and `flush(now)` return the reads their frame ends produced.
    Times are seconds on any monotonic clock, the same for both calls.
    """

    gap_s: float = DEFAULT_GAP_S
    max_bits: int = 64
    frames_ok: int = 0
    bad_length: int = 0
    bad_parity: int = 0
    _bits: list[int] = field(default_factory=list, repr=False)
    _last_t: float | None = field(default=None, repr=False)

    def feed(self, bit: int, t: float) -> list[WiegandRead]:
        out = self.flush(t)
        if len(self._bits) < self.max_bits:
            self._bits.append(1 if bit else 0)
        self._last_t = t
        return out

    def flush(self, now: float) -> list[WiegandRead]:
        """End the frame in progress if its last bit is `gap_s` or more before `now`."""
        if not self._bits or self._last_t is None or now - self._last_t < self.gap_s:
            return []
        bits, self._bits = self._bits, []
        result = decode_bits(bits)
        if isinstance(result, WiegandRead):
            self.frames_ok += 1
            return [result]
        if result == "length":
            self.bad_length += 1
        else:
            self.bad_parity += 1
        return []

    @property
    def pending(self) -> bool:
        return bool(self._bits)

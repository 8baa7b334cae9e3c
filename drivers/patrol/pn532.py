"""PN532 (13.56 MHz, ISO 14443A) over UART (HSU): frames, commands, responses. Pure.

Normal information frame:   00 00 FF LEN LCS TFI PD0..PDn DCS 00
    LEN = bytes in TFI+PD, LCS = -LEN & 0xFF, DCS = -(TFI + sum PD) & 0xFF
    TFI = D4 host -> PN532, D5 PN532 -> host; a response's command code is the request's + 1.
ACK  00 00 FF 00 FF 00      NACK 00 00 FF FF 00 00 (asks the other side to resend)
Error frame: 00 00 FF 01 FF 7F 81 00 (syntax error at application level).

The host wakes the PN532 from low-VBAT with a long 0x55 preamble, configures
the SAM (SAMConfiguration 0x14, normal mode), limits the passive-activation
retries (RFConfiguration 0x32, item 5) so polling returns, then polls with
InListPassiveTarget (0x4A, one target, 106 kbps type A) and reads the UID from
the response. `Pn532Parser` finds frames in any byte stream, checks LCS and
DCS, and never raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PREAMBLE_START = b"\x00\x00\xff"
ACK = b"\x00\x00\xff\x00\xff\x00"
NACK = b"\x00\x00\xff\xff\x00\x00"
ERROR_FRAME = b"\x00\x00\xff\x01\xff\x7f\x81\x00"
WAKEUP = b"\x55\x55" + b"\x00" * 14
TFI_HOST = 0xD4
TFI_PN532 = 0xD5

CMD_SAM_CONFIGURATION = 0x14
CMD_RF_CONFIGURATION = 0x32
CMD_IN_LIST_PASSIVE_TARGET = 0x4A
CMD_GET_FIRMWARE_VERSION = 0x02


def build_frame(tfi: int, payload: bytes) -> bytes:
    """A normal information frame carrying TFI + payload (command code first)."""
    body = bytes([tfi]) + payload
    if len(body) > 255:
        raise ValueError("normal frames carry at most 255 bytes")
    length = len(body)
    return (PREAMBLE_START + bytes([length, (-length) & 0xFF]) + body
            + bytes([(-sum(body)) & 0xFF, 0x00]))


def command(code: int, params: bytes = b"") -> bytes:
    """A host -> PN532 command frame."""
    return build_frame(TFI_HOST, bytes([code]) + params)


def response(code: int, params: bytes = b"") -> bytes:
    """A PN532 -> host response frame to command `code` (the simulator uses it)."""
    return build_frame(TFI_PN532, bytes([code + 1]) + params)


SAM_CONFIGURATION = command(CMD_SAM_CONFIGURATION, b"\x01\x14\x01")      # normal mode
RF_RETRIES = command(CMD_RF_CONFIGURATION, b"\x05\xff\x01\x02")         # 2 passive retries
IN_LIST_PASSIVE_TARGET = command(CMD_IN_LIST_PASSIVE_TARGET, b"\x01\x00")  # 1 target, 106 kbps A


@dataclass(frozen=True)
class Pn532Frame:
    """A frame found in the stream: kind is "ack", "nack", "error" or "data"."""

    kind: str
    tfi: int = 0
    payload: bytes = b""      # after TFI: command/response code, then parameters

    @property
    def code(self) -> int | None:
        return self.payload[0] if self.payload else None


@dataclass(frozen=True)
class Target:
    """One ISO 14443A target from an InListPassiveTarget response."""

    tg: int
    sens_res: int
    sel_res: int
    uid: bytes

    @property
    def card_id(self) -> str:
        """Registry spelling: the UID as upper-case hex (8, 14 or 20 digits)."""
        return self.uid.hex().upper()


def parse_in_list_passive_target(params: bytes) -> list[Target] | None:
    """The parameters after D5 4B -> targets; None if malformed.

    Per target: Tg, SENS_RES (2), SEL_RES, NFCIDLength, NFCID1, then an ATS
    (length byte first) when SEL_RES says the card speaks ISO-DEP (bit 0x20).
    """
    if not params or params[0] > 2:
        return None
    count, i, out = params[0], 1, []
    for _ in range(count):
        if i + 5 > len(params):
            return None
        tg, sens, sel, uid_len = params[i], params[i + 1] << 8 | params[i + 2], params[i + 3], params[i + 4]
        i += 5
        if uid_len not in (4, 7, 10) or i + uid_len > len(params):
            return None
        out.append(Target(tg, sens, sel, bytes(params[i:i + uid_len])))
        i += uid_len
        if sel & 0x20 and i < len(params):
            ats_len = params[i]
            if ats_len == 0 or i + ats_len > len(params):
                return None
            i += ats_len
    return out


@dataclass
class Pn532Parser:
    """Incremental frame finder: `feed` returns the frames completed by the bytes given."""

    frames_ok: int = 0
    bad_lcs: int = 0
    bad_dcs: int = 0
    garbage_bytes: int = 0
    _buf: bytearray = field(default_factory=bytearray, repr=False)

    def feed(self, chunk: bytes) -> list[Pn532Frame]:
        self._buf.extend(chunk)
        out: list[Pn532Frame] = []
        buf = self._buf
        while True:
            start = buf.find(b"\x00\xff")
            if start < 0:
                # keep a trailing 0x00: it may be the start of a start code
                keep = 1 if buf[-1:] == b"\x00" else 0
                self.garbage_bytes += self._skip(len(buf) - keep)
                break
            self.garbage_bytes += self._skip(start)
            buf = self._buf
            # buf now starts with 00 FF
            if len(buf) < 4:
                break
            length, lcs = buf[2], buf[3]
            if length == 0x00 and lcs == 0xFF:
                out.append(Pn532Frame("ack"))
                self._drop(4, postamble=True)
                buf = self._buf
                continue
            if length == 0xFF and lcs == 0x00:
                out.append(Pn532Frame("nack"))
                self._drop(4, postamble=True)
                buf = self._buf
                continue
            if (length + lcs) & 0xFF != 0 or length == 0:
                self.bad_lcs += 1
                self._drop(2)
                buf = self._buf
                continue
            total = 4 + length + 1            # start code, LEN, LCS, body, DCS
            if len(buf) < total:
                break
            body = bytes(buf[4:4 + length])
            dcs = buf[4 + length]
            if (sum(body) + dcs) & 0xFF != 0:
                self.bad_dcs += 1
                self._drop(2)
                buf = self._buf
                continue
            self.frames_ok += 1
            if length == 1 and body[0] == 0x7F:
                out.append(Pn532Frame("error", 0x7F, b""))
            else:
                out.append(Pn532Frame("data", body[0], body[1:]))
            self._drop(total, postamble=True)
            buf = self._buf
        return out

    def _skip(self, n: int) -> int:
        """Drop n leading bytes; preamble zeros are not counted as garbage."""
        dropped = bytes(self._buf[:n])
        del self._buf[:n]
        return sum(1 for b in dropped if b != 0x00)

    def _drop(self, n: int, postamble: bool = False) -> None:
        del self._buf[:n]
        if postamble and self._buf[:1] == b"\x00":
            del self._buf[:1]

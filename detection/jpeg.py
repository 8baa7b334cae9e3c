"""A small baseline JPEG encoder and a motion-JPEG AVI writer, numpy only.

Used for evidence when neither PyAV nor Pillow is installed, so a snapshot and
a clip can always be written in formats every viewer and player opens:

    data = encode_jpeg(image, quality=85)        # H x W gray or H x W x 3 RGB, uint8
    write_mjpeg_avi(path, jpeg_frames, fps, width, height)

Baseline sequential DCT (ITU-T T.81), 8-bit, the standard Huffman tables of
Annex K, YCbCr 4:4:4 for colour. The DCT, quantisation and entropy coding are
vectorised over all blocks, so a 640 x 360 frame takes a few tens of ms.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Sequence

import numpy as np

_LUM_Q = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.int32)
_CHR_Q = np.full(64, 99, dtype=np.int32)
_CHR_Q[[0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 24, 25]] = [17, 18, 24, 47, 18, 21, 26, 66, 24, 26, 56, 47, 66]

_DC_LUM = ([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0], list(range(12)))
_DC_CHR = ([0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0], list(range(12)))
_AC_LUM = ([0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D], bytes.fromhex(
    "01020300041105122131410613516107227114328191a1082342b1c11552d1f0"
    "2433627282090a161718191a25262728292a3435363738393a434445464748494a"
    "535455565758595a636465666768696a737475767778797a838485868788898a"
    "92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7"
    "c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa"))
_AC_CHR = ([0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77], bytes.fromhex(
    "00 01 02 03 11 04 05 21 31 06 12 41 51 07 61 71 13 22 32 81 08 14 42 91 a1 b1 c1 09 23 33 52 f0"
    "15 62 72 d1 0a 16 24 34 e1 25 f1 17 18 19 1a 26 27 28 29 2a 35 36 37 38 39 3a 43 44 45 46 47 48"
    "49 4a 53 54 55 56 57 58 59 5a 63 64 65 66 67 68 69 6a 73 74 75 76 77 78 79 7a 82 83 84 85 86 87"
    "88 89 8a 92 93 94 95 96 97 98 99 9a a2 a3 a4 a5 a6 a7 a8 a9 aa b2 b3 b4 b5 b6 b7 b8 b9 ba c2 c3"
    "c4 c5 c6 c7 c8 c9 ca d2 d3 d4 d5 d6 d7 d8 d9 da e2 e3 e4 e5 e6 e7 e8 e9 ea f2 f3 f4 f5 f6 f7 f8"
    "f9 fa"))


def _zigzag() -> np.ndarray:
    """Natural (row-major) index of each coefficient in zig-zag order."""
    order = sorted(((r, c) for r in range(8) for c in range(8)),
                   key=lambda rc: (rc[0] + rc[1], rc[0] if (rc[0] + rc[1]) % 2 else rc[1]))
    return np.array([r * 8 + c for r, c in order], dtype=np.int64)


ZIGZAG = _zigzag()
_DCT = np.array([[(np.sqrt(0.5) if u == 0 else 1.0) * 0.5 * np.cos((2 * x + 1) * u * np.pi / 16)
                  for x in range(8)] for u in range(8)], dtype=np.float32)


def _huffman_codes(bits: Sequence[int], values: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Canonical codes (T.81 Annex C): code and length for each symbol 0..255."""
    codes = np.zeros(256, dtype=np.int64)
    lengths = np.zeros(256, dtype=np.int64)
    code, k = 0, 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            codes[values[k]] = code
            lengths[values[k]] = length
            code += 1
            k += 1
        code <<= 1
    return codes, lengths


_TABLES = {name: _huffman_codes(*spec) for name, spec in
           (("dc0", _DC_LUM), ("ac0", _AC_LUM), ("dc1", _DC_CHR), ("ac1", _AC_CHR))}


def quant_tables(quality: int) -> tuple[np.ndarray, np.ndarray]:
    """The Annex K tables scaled as the IJG library does (quality 1..100)."""
    q = min(100, max(1, int(quality)))
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return tuple(np.clip((base * scale + 50) // 100, 1, 255) for base in (_LUM_Q, _CHR_Q))  # type: ignore[return-value]


def _blocks(plane: np.ndarray) -> np.ndarray:
    """A plane padded to multiples of 8 (edge copied), as (n_blocks, 8, 8) in raster order."""
    h, w = plane.shape
    ph, pw = -h % 8, -w % 8
    if ph or pw:
        plane = np.pad(plane, ((0, ph), (0, pw)), mode="edge")
    hb, wb = plane.shape[0] // 8, plane.shape[1] // 8
    return plane.reshape(hb, 8, wb, 8).swapaxes(1, 2).reshape(hb * wb, 8, 8)


def _size_bits(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """JPEG magnitude category and its value bits (one's complement for negatives)."""
    a = np.abs(v)
    size = np.zeros_like(a)
    nz = a > 0
    size[nz] = np.floor(np.log2(a[nz])).astype(a.dtype) + 1
    bits = np.where(v >= 0, v, v + (1 << size) - 1)
    return size, bits


def _entropy_code(coef: np.ndarray, table: np.ndarray) -> bytes:
    """Huffman-code zig-zag coefficient rows (n, 64) in scan order; `table[i]` = 0 or 1."""
    n = coef.shape[0]
    dc_codes = np.stack([_TABLES["dc0"][0], _TABLES["dc1"][0]])
    dc_lens = np.stack([_TABLES["dc0"][1], _TABLES["dc1"][1]])
    ac_codes = np.stack([_TABLES["ac0"][0], _TABLES["ac1"][0]])
    ac_lens = np.stack([_TABLES["ac0"][1], _TABLES["ac1"][1]])
    keys: list[np.ndarray] = []
    codes: list[np.ndarray] = []
    lens: list[np.ndarray] = []

    def add(key: np.ndarray, code: np.ndarray, length: np.ndarray) -> None:
        keys.append(key)
        codes.append(code)
        lens.append(length)

    rows = np.arange(n, dtype=np.int64)
    # DC: difference to the previous block of the same component (caller's `dc_pred` order)
    dc = coef[:, 0]
    size, bits = _size_bits(dc)
    add(rows * 512, dc_codes[table, size], dc_lens[table, size])
    add(rows * 512 + 1, bits, size)
    # AC: (run, size) symbols, ZRL for runs of 16 zeros, EOB after the last non-zero
    r, k = np.nonzero(coef[:, 1:])
    k = k + 1
    v = coef[r, k]
    prev = np.empty_like(k)
    if len(k):
        prev[0] = 0
        prev[1:] = np.where(r[1:] == r[:-1], k[:-1], 0)
    run = k - prev - 1
    size, bits = _size_bits(v)
    tab = table[r]
    nzrl = run // 16
    for j in range(3):   # at most 3 ZRL (runs up to 62)
        m = nzrl > j
        add(r[m] * 512 + 8 * k[m] + j, ac_codes[tab[m], 0xF0], ac_lens[tab[m], 0xF0])
    sym = ((run % 16) << 4) | size
    add(r * 512 + 8 * k + 3, ac_codes[tab, sym], ac_lens[tab, sym])
    add(r * 512 + 8 * k + 4, bits, size)
    last = np.zeros(n, dtype=np.int64)
    if len(k):
        last[r] = k   # nonzero() is row-major, so the last write per row is its last non-zero
    eob = last < 63
    add(rows[eob] * 512 + 511, ac_codes[table[eob], 0x00], ac_lens[table[eob], 0x00])

    key = np.concatenate(keys)
    order = np.argsort(key, kind="stable")
    code = np.concatenate(codes)[order]
    length = np.concatenate(lens)[order]
    keep = length > 0
    code, length = code[keep], length[keep]
    total = int(length.sum())
    starts = np.cumsum(length) - length
    idx = np.arange(total, dtype=np.int64) - np.repeat(starts, length)
    shift = np.repeat(length, length) - 1 - idx
    bitstream = ((np.repeat(code, length) >> shift) & 1).astype(np.uint8)
    pad = -total % 8
    if pad:
        bitstream = np.concatenate([bitstream, np.ones(pad, dtype=np.uint8)])
    data = np.packbits(bitstream)
    ff = np.flatnonzero(data == 0xFF)
    if len(ff):
        data = np.insert(data, ff + 1, 0)
    return data.tobytes()


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", 0xFF00 | marker, len(payload) + 2) + payload


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    """Encode an H x W (gray) or H x W x 3 (RGB) uint8 image as a baseline JPEG."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"expected H x W or H x W x 3 uint8, got {img.shape} {img.dtype}")
    h, w = img.shape[:2]
    if not (0 < h < 65536 and 0 < w < 65536):
        raise ValueError("image size out of range")
    qlum, qchr = quant_tables(quality)
    if img.ndim == 2:
        planes = [img.astype(np.float32)]
        qsel = [0]
    else:
        rgb = img.astype(np.float32)
        y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
        cb = -0.168736 * rgb[..., 0] - 0.331264 * rgb[..., 1] + 0.5 * rgb[..., 2] + 128
        cr = 0.5 * rgb[..., 0] - 0.418688 * rgb[..., 1] - 0.081312 * rgb[..., 2] + 128
        planes = [y, cb, cr]
        qsel = [0, 1, 1]
    qt = [qlum, qchr]
    coefs = []
    for plane, qs in zip(planes, qsel):
        b = _blocks(plane) - 128.0
        d = np.einsum("ux,bxy,vy->buv", _DCT, b, _DCT, optimize=True).reshape(-1, 64)
        q = np.rint(d / qt[qs]).astype(np.int64)[:, ZIGZAG]
        q[1:, 0] = q[1:, 0] - q[:-1, 0]   # DC prediction within the component
        coefs.append(q)
    nblocks = coefs[0].shape[0]
    ncomp = len(coefs)
    # interleave components block by block (4:4:4: one block of each per MCU)
    coef = np.stack(coefs, axis=1).reshape(nblocks * ncomp, 64)
    table = np.tile(np.array(qsel, dtype=np.int64), nblocks)

    out = bytearray(b"\xFF\xD8")
    out += _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    for i, t in enumerate(qt[: 1 if ncomp == 1 else 2]):
        out += _segment(0xDB, bytes([i]) + bytes(t[ZIGZAG].astype(np.uint8).tolist()))
    sof = struct.pack(">BHHB", 8, h, w, ncomp)
    for c in range(ncomp):
        sof += bytes([c + 1, 0x11, qsel[c]])
    out += _segment(0xC0, sof)
    specs = [(0x00, _DC_LUM), (0x10, _AC_LUM)] + ([(0x01, _DC_CHR), (0x11, _AC_CHR)] if ncomp == 3 else [])
    for tc_th, (bits, vals) in specs:
        out += _segment(0xC4, bytes([tc_th]) + bytes(bits) + bytes(vals))
    sos = bytes([ncomp]) + b"".join(bytes([c + 1, (qsel[c] << 4) | qsel[c]]) for c in range(ncomp))
    out += _segment(0xDA, sos + b"\x00\x3F\x00")
    out += _entropy_code(coef, table)
    out += b"\xFF\xD9"
    return bytes(out)


def write_mjpeg_avi(path: Path | str, frames: Sequence[bytes], fps: float, width: int, height: int) -> None:
    """Write JPEG frames as a motion-JPEG AVI (RIFF, one video stream, idx1 index)."""
    n = len(frames)
    rate = max(1, int(round(fps * 1000)))
    biggest = max((len(f) for f in frames), default=0)
    avih = struct.pack("<10I4I", int(round(1e6 / fps)), int(biggest * fps), 0, 0x10, n, 0, 1,
                       biggest + 8, width, height, 0, 0, 0, 0)
    strh = b"vidsMJPG" + struct.pack("<IHHIIIIIIII4h", 0, 0, 0, 0, 1000, rate, 0, n, biggest + 8,
                                     0xFFFFFFFF, 0, 0, 0, width, height)
    strf = struct.pack("<IiiHH4sIiiII", 40, width, height, 1, 24, b"MJPG", width * height * 3, 0, 0, 0, 0)
    strl = b"strl" + _chunk(b"strh", strh) + _chunk(b"strf", strf)
    hdrl = b"hdrl" + _chunk(b"avih", avih) + _chunk(b"LIST", strl)
    movi = bytearray(b"movi")
    index = bytearray()
    for f in frames:
        index += struct.pack("<4sIII", b"00dc", 0x10, len(movi), len(f))
        movi += _chunk(b"00dc", f)
    body = b"AVI " + _chunk(b"LIST", hdrl) + _chunk(b"LIST", bytes(movi)) + _chunk(b"idx1", bytes(index))
    Path(path).write_bytes(_chunk(b"RIFF", body))


def _chunk(fourcc: bytes, data: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")

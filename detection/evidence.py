"""Evidence files for a thrown-object event: the clip, the annotated snapshot, retention.

    path = remux_clip(stem, stream_info, packets)          # the camera's own packets -> .mp4, no re-encode
    path = write_clip(stem, frames, fps)                    # pictures -> .mp4 (PyAV) or .avi (MJPEG)
    picture = decode_picture(stream_info, packets, t)      # a decoded picture for the snapshot
    write_jpeg(path, draw_snapshot(frame, track, floors, ...))
    sha256_file(path)
    EvidenceStore(root, keep_days=15, max_bytes=...).prune(now)

Every file is written under a temporary name, closed, synced and only then
renamed: a file with its final name is whole, so hashing it (after the
writer returns) hashes what a viewer will see. Remuxing rather than
re-encoding keeps the clip bit for bit what the camera sent, which is both
cheaper and better evidence.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from detection import jpeg
from gateway.atomicfile import fsync_dir, write_atomic

if TYPE_CHECKING:
    from detection.sources import EncodedPacket, StreamInfo

CLIP_SUFFIXES = (".mp4", ".avi")
EVIDENCE_SUFFIXES = (".mp4", ".avi", ".jpg")


def have_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


# -- files -----------------------------------------------------------------------

def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return np.repeat(frame[:, :, None], 3, axis=2)
    return frame


def _uniform(frames: Sequence[np.ndarray]) -> tuple[list[np.ndarray], int, int]:
    """Frames cropped to the first frame's even size, all gray or all RGB."""
    h, w = frames[0].shape[:2]
    h, w = h - h % 2, w - w % 2
    color = any(f.ndim == 3 for f in frames)
    out = []
    for f in frames:
        f = _to_rgb(f) if color else f
        if f.shape[:2] != frames[0].shape[:2]:   # a resolution change mid-clip: pad or crop
            canvas = np.zeros((frames[0].shape[0], frames[0].shape[1]) + f.shape[2:], dtype=np.uint8)
            hh, ww = min(f.shape[0], canvas.shape[0]), min(f.shape[1], canvas.shape[1])
            canvas[:hh, :ww] = f[:hh, :ww]
            f = canvas
        out.append(np.ascontiguousarray(f[:h, :w]))
    return out, w, h


def write_clip(stem: Path, frames: Sequence[np.ndarray], fps: float, *, prefer: str = "auto") -> Path:
    """Write frames as `stem.mp4` (H.264 via PyAV) or, without PyAV, `stem.avi` (motion JPEG).

    Written under a temporary name and renamed, so a half-written clip never
    carries the final name. Returns the final path.
    """
    if not frames:
        raise ValueError("no frames to write")
    imgs, w, h = _uniform(frames)
    use_av = prefer == "mp4" or (prefer == "auto" and have_pyav())
    final = stem.with_suffix(".mp4" if use_av else ".avi")
    tmp = final.with_name(final.name + ".part")
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        if use_av:
            _write_mp4(tmp, imgs, fps, w, h)
        else:
            jpegs = [jpeg.encode_jpeg(f, 80) for f in imgs]
            jpeg.write_mjpeg_avi(tmp, jpegs, fps, w, h)
        _publish(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def _publish(tmp: Path, final: Path) -> None:
    """Give a closed temporary file its final name, durably (synced before and after the rename)."""
    fd = os.open(str(tmp), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    fsync_dir(final.parent)


REMUX_TIME_BASE = Fraction(1, 90000)   # the usual video clock; fine enough for any frame rate


def remux_clip(stem: Path, info: "StreamInfo", packets: Sequence["EncodedPacket"]) -> Path:
    """Write a source's encoded packets as `stem.mp4` without decoding them; returns the path.

    `packets` are in decoding order and start at a keyframe (what the packet
    ring hands out). Times are rebased so the clip starts at 0.
    """
    import av
    if not packets:
        raise ValueError("no packets to write")
    if not packets[0].keyframe:
        raise ValueError("a clip must start at a keyframe")
    final = stem.with_suffix(".mp4")
    tmp = final.with_name(final.name + ".part")
    final.parent.mkdir(parents=True, exist_ok=True)
    base = packets[0].t
    tb = REMUX_TIME_BASE
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_mux_stream(info.codec, width=info.width, height=info.height)
            for p in packets:
                out = av.Packet(p.data)
                out.pts = round((p.t - base) / tb)
                out.dts = round((p.dts - base) / tb)
                out.duration = max(1, round(p.duration / tb))
                out.time_base = tb
                out.is_keyframe = p.keyframe
                out.stream = stream
                container.mux(out)
        _publish(tmp, final)   # after the container is closed: its index (moov) is written
    finally:
        tmp.unlink(missing_ok=True)
    return final


def decode_picture(info: "StreamInfo", packets: Sequence["EncodedPacket"], t: float, *,
                   width: int = 0, color: bool = True) -> np.ndarray | None:
    """The decoded picture shown at time `t` (the last one at or before it), from packets starting at a keyframe.

    `width` (0: native) caps the picture's width. None if nothing decodes.
    """
    import av
    cc = av.CodecContext.create(info.codec, "r")
    tb = REMUX_TIME_BASE
    best: Any = None
    try:
        for p in (*packets, None):
            if p is not None and p.dts > t + 1e-6 and best is not None:
                break
            if p is None:
                frames = cc.decode(None)
            else:
                pkt = av.Packet(p.data)
                pkt.pts, pkt.dts, pkt.time_base = round(p.t / tb), round(p.dts / tb), tb
                frames = cc.decode(pkt)
            for vf in frames:
                if best is None or vf.pts is None or vf.pts * tb <= t + 1e-6:
                    best = vf
    except av.FFmpegError:
        pass
    if best is None:
        return None
    w = width if 0 < width < best.width else best.width
    h = best.height if w == best.width else max(2, int(round(best.height * w / best.width / 2)) * 2)
    return best.reformat(width=w, height=h, format="rgb24" if color else "gray").to_ndarray()


def _write_mp4(path: Path, frames: Sequence[np.ndarray], fps: float, w: int, h: int) -> None:
    import av
    rate = Fraction(fps).limit_denominator(1000)
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    fmt = "rgb24" if frames[0].ndim == 3 else "gray"
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "veryfast", "crf": "23"}
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format=fmt)
            vf.pts = i
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def encode_jpeg(image: np.ndarray, quality: int = 88) -> bytes:
    """JPEG bytes: PyAV's encoder when installed, else the numpy baseline encoder."""
    if have_pyav():
        import av
        img = _to_rgb(image)
        h, w = img.shape[:2]
        img = np.ascontiguousarray(img[: h - h % 2, : w - w % 2])
        cc = av.CodecContext.create("mjpeg", "w")
        cc.width, cc.height, cc.pix_fmt = img.shape[1], img.shape[0], "yuvj444p"
        cc.time_base = Fraction(1, 25)
        cc.qscale = max(1, min(31, int(round((100 - quality) / 3.3)) + 1))
        vf = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuvj444p")
        return b"".join(bytes(p) for p in (*cc.encode(vf), *cc.encode(None)))
    return jpeg.encode_jpeg(image, quality)


def write_jpeg(path: Path, image: np.ndarray, quality: int = 88) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, encode_jpeg(image, quality))


# -- snapshot drawing ----------------------------------------------------------

_DIGITS = {  # 3 x 5 bitmap font, rows top to bottom
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001001001001",
    "8": "111101111101111", "9": "111101111001111", "F": "111100110100100", "-": "000000111000000",
}

TRACK_RGB = (255, 40, 40)
RELEASE_RGB = (40, 255, 80)
GRID_RGB = (255, 210, 0)


def _put(img: np.ndarray, ys: np.ndarray, xs: np.ndarray, rgb: tuple[int, int, int], alpha: float = 1.0) -> None:
    h, w = img.shape[:2]
    m = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    ys, xs = ys[m], xs[m]
    if alpha >= 1.0:
        img[ys, xs] = rgb
    else:
        img[ys, xs] = (img[ys, xs] * (1 - alpha) + np.array(rgb) * alpha).astype(np.uint8)


def draw_line(img: np.ndarray, x0: float, y0: float, x1: float, y1: float,
              rgb: tuple[int, int, int], thickness: int = 2, alpha: float = 1.0) -> None:
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.rint(np.linspace(x0, x1, n)).astype(np.int64)
    ys = np.rint(np.linspace(y0, y1, n)).astype(np.int64)
    for dy in range(thickness):
        for dx in range(thickness):
            _put(img, ys + dy - thickness // 2, xs + dx - thickness // 2, rgb, alpha)


def draw_circle(img: np.ndarray, x: float, y: float, r: float, rgb: tuple[int, int, int], thickness: int = 2) -> None:
    a = np.linspace(0, 2 * np.pi, max(16, int(8 * r)))
    for k in range(thickness):
        rr = r + k
        _put(img, np.rint(y + rr * np.sin(a)).astype(np.int64), np.rint(x + rr * np.cos(a)).astype(np.int64), rgb)


def draw_text(img: np.ndarray, x: int, y: int, text: str, rgb: tuple[int, int, int], scale: int = 2) -> None:
    for i, ch in enumerate(text):
        glyph = _DIGITS.get(ch)
        if glyph is None:
            continue
        g = np.array([int(c) for c in glyph], dtype=bool).reshape(5, 3)
        g = np.kron(g, np.ones((scale, scale), dtype=bool))
        gy, gx = np.nonzero(g)
        _put(img, gy + y, gx + x + i * 4 * scale, rgb)


def floor_rows(calibration: Any) -> list[tuple[int, float]]:
    """(floor, image row of its bottom line) pairs from a calibration, lowest floor first.

    Accepts the detector's Calibration object or the contract's raw form
    (`floors = [{floor = 1, y = 1250}, ...]`).
    """
    floors = getattr(calibration, "floors", calibration)
    if isinstance(floors, dict) and "floors" in floors:
        floors = floors["floors"]
    rows: list[tuple[int, float]] = []
    for item in floors or []:
        if isinstance(item, dict):
            rows.append((int(item["floor"]), float(item["y"])))
        elif isinstance(item, (tuple, list)):
            rows.append((int(item[0]), float(item[1])))
        else:
            rows.append((int(item.floor), float(item.y)))
    return sorted(rows)


def draw_snapshot(frame: np.ndarray, track: Sequence[Sequence[float]], floors: Sequence[tuple[int, float]],
                  *, analysis_size: tuple[int, int] | None = None, release_xy: tuple[float, float] | None = None,
                  floor: int | None = None) -> np.ndarray:
    """An RGB copy of `frame` with the floor grid, the estimated floor band and the track drawn on it.

    `track` holds (t, x, y) in the analysed frame's pixels and `floors` rows in
    the same pixels; `analysis_size` (width, height) of that frame scales them
    onto `frame` when the evidence picture is larger or smaller.
    """
    img = _to_rgb(frame).copy()
    h, w = img.shape[:2]
    sx = sy = 1.0
    if analysis_size is not None:
        sx, sy = w / analysis_size[0], h / analysis_size[1]
    scale = max(1, int(round(h / 240)))
    rows = sorted(floors, key=lambda fy: fy[1], reverse=True)   # bottom of the image first
    by_floor = dict(rows)
    if floor is not None and floor in by_floor:   # tint the estimated floor's band
        y_bottom = by_floor[floor] * sy
        y_top = by_floor.get(floor + 1, by_floor[floor] - (rows[0][1] - rows[-1][1]) / max(1, len(rows) - 1)) * sy
        top, bottom = int(max(0, min(y_top, y_bottom))), int(min(h, max(y_top, y_bottom)))
        if bottom > top:
            band = img[top:bottom].astype(np.float32)
            img[top:bottom] = (band * 0.7 + np.array(TRACK_RGB, dtype=np.float32) * 0.3).astype(np.uint8)
    for fl, y in rows:
        yy = y * sy
        if 0 <= yy < h:
            draw_line(img, 0, yy, w - 1, yy, GRID_RGB, thickness=1, alpha=0.6)
            draw_text(img, 2, int(yy) - 6 * scale, str(fl), GRID_RGB, scale)
    pts = [(float(p[1]) * sx, float(p[2]) * sy) for p in track]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        draw_line(img, x0, y0, x1, y1, TRACK_RGB, thickness=max(2, scale))
    for x, y in pts:
        draw_circle(img, x, y, 2 * scale, TRACK_RGB, thickness=1)
    if release_xy is not None:
        draw_circle(img, release_xy[0] * sx, release_xy[1] * sy, 6 * scale, RELEASE_RGB, thickness=2)
    if floor is not None:
        draw_text(img, w - 16 * scale * 4, 4, f"F{floor}", TRACK_RGB, scale * 2)
    return img


# -- retention -----------------------------------------------------------------

@dataclass
class PruneResult:
    removed: list[Path]
    kept_bytes: int


class EvidenceStore:
    """The evidence folder: files kept `keep_days`, total kept under `max_bytes` (oldest go first)."""

    def __init__(self, root: Path, keep_days: float = 15.0, max_bytes: int = 2 << 30) -> None:
        self.root = Path(root)
        self.keep_seconds = keep_days * 86400.0
        self.max_bytes = max_bytes

    def files(self) -> list[tuple[float, int, Path]]:
        """(mtime, size, path) of every evidence file, oldest first."""
        found = []
        if not self.root.exists():
            return found
        for p in self.root.rglob("*"):
            if p.suffix in EVIDENCE_SUFFIXES and p.is_file():
                try:
                    st = p.stat()
                except FileNotFoundError:
                    continue
                found.append((st.st_mtime, st.st_size, p))
        return sorted(found)

    def prune(self, now: float, reserve: int = 0) -> PruneResult:
        """Remove expired files, then the oldest until `reserve` more bytes fit under the cap.

        `now` is the wall clock as POSIX seconds (file times are on that clock).
        """
        removed: list[Path] = []
        files = self.files()
        total = sum(size for _, size, _ in files)
        for mtime, size, path in files:
            expired = now - mtime > self.keep_seconds
            over = total + reserve > self.max_bytes
            if not (expired or over):
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            removed.append(path)
            total -= size
        for p in self.root.glob("**/*.part") if self.root.exists() else []:   # debris of a crash
            if now - p.stat().st_mtime > 3600:
                p.unlink(missing_ok=True)
        return PruneResult(removed, total)

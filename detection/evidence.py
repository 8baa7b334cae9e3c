"""Evidence clips of a thrown-object event, and their retention (snapshots: detection/snapshot.py).

    path = remux_clip(stem, stream_info, packets, metadata={"title": caption})   # the camera's own packets
    path = write_clip(stem, frames, fps, captions=[lines, ...], metadata=...)     # pictures -> H.264 MP4
    picture = decode_picture(stream_info, packets, t)      # a decoded picture for the snapshot
    EvidenceStore(root, keep_days=15, max_bytes=...).prune(now)

Clips are H.264 MP4 through PyAV (the `video` extra). Every file is written
under a temporary name, closed, synced and only then renamed: a file with
its final name is whole, so hashing it (after the writer returns) hashes
what a viewer will see. Remuxing rather than re-encoding keeps the clip bit
for bit what the camera sent, which is both cheaper and better evidence; its
caption therefore goes into the MP4 header (`title`, `comment`) rather than
into the pictures (docs/evidence.md has the measurement behind that choice).
Clips made from pictures (sources without packets) have the caption burned
into a band below every picture, with that picture's own time.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from gateway.atomicfile import fsync_dir

if TYPE_CHECKING:
    from detection.sources import EncodedPacket, StreamInfo

CLIP_SUFFIX = ".mp4"
EVIDENCE_SUFFIXES = (".mp4", ".jpg", ".manifest", ".sig")   # clips, snapshots, manifests and their signatures


def have_pyav() -> bool:
    """Whether PyAV (the `video` extra) is installed; looked up without importing it."""
    return importlib.util.find_spec("av") is not None


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


def write_clip(stem: Path, frames: Sequence[np.ndarray], fps: float, *,
               captions: Sequence[Sequence[str]] | None = None, metadata: Mapping[str, str] | None = None) -> Path:
    """Encode pictures as `stem.mp4` (H.264, PyAV); returns the path.

    `captions` (one list of lines per picture) are burned into a band below
    each picture; `metadata` (e.g. `title`, `comment`) goes into the MP4's
    header. Written under a temporary name, closed, synced and renamed, so a
    half-written clip never carries the final name.
    """
    if not frames:
        raise ValueError("no frames to write")
    imgs, w, h = _uniform(frames)
    pictures: Iterable[np.ndarray] = imgs
    fmt = "rgb24" if imgs[0].ndim == 3 else "gray"
    if captions is not None:
        from detection.caption import BandStyle, render_band, with_caption   # Pillow only where pictures are drawn
        style = BandStyle.fit(captions[0], w)     # one layout for the whole clip: the band never changes size
        h += render_band(captions[0], w, style).shape[0]
        fmt = "rgb24"
        pictures = (with_caption(f, lines, style) for f, lines in zip(imgs, captions))   # one at a time
    final = stem.with_suffix(".mp4")
    tmp = final.with_name(final.name + ".part")
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        _write_mp4(tmp, pictures, fps, w, h, fmt, metadata or {})
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


def remux_clip(stem: Path, info: "StreamInfo", packets: Sequence["EncodedPacket"], *,
               metadata: Mapping[str, str] | None = None) -> Path:
    """Write a source's encoded packets as `stem.mp4` without decoding them; returns the path.

    `packets` are in decoding order and start at a keyframe (what the packet
    ring hands out). Times are rebased so the clip starts at 0. `metadata`
    (e.g. `title`, `comment`) goes into the MP4 header.
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
            container.metadata.update(metadata or {})
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


def _write_mp4(path: Path, frames: Iterable[np.ndarray], fps: float, w: int, h: int, fmt: str,
               metadata: Mapping[str, str]) -> None:
    import av
    rate = Fraction(fps).limit_denominator(1000)
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), mode="w", format="mp4") as container:
        container.metadata.update(metadata)
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

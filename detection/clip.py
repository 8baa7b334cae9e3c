"""Loading recorded clips for offline detection (`anfang detect`, benchmarks, tests).

A clip is a `.npz` with `frames` (N x H x W uint8, grayscale) and `fps` (the
contract's form). Other video files (MP4, MKV, AVI...) are decoded through
PyAV when it is installed (the `video` extra); without it they are refused
with a clear message. Frames come out one at a time, so a long recording is
not loaded whole.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np


class ClipError(Exception):
    """A clip that cannot be read; the message is one line for the user."""


@dataclass
class Clip:
    path: Path
    fps: float
    frame_count: int | None     # None when the container does not say
    width: int
    height: int
    _frames: np.ndarray | None = None

    def frames(self) -> Iterator[tuple[float, np.ndarray]]:
        """(t, grayscale uint8 frame), t in seconds from the first frame."""
        if self._frames is not None:
            for i in range(self._frames.shape[0]):
                yield i / self.fps, self._frames[i]
            return
        yield from _av_frames(self.path)


def load_clip(path: Path | str) -> Clip:
    """Open a clip (npz, or any video PyAV can read); raises ClipError."""
    p = Path(path)
    if not p.exists():
        raise ClipError(f"clip not found: {p}")
    if p.suffix.lower() == ".npz":
        return _load_npz(p)
    try:
        import av  # noqa: F401
    except ImportError:
        raise ClipError(f"{p.name}: only .npz clips can be read without PyAV "
                        "(install the 'video' extra: pip install 'anfang-gateway[video]')") from None
    return _open_av(p)


def _load_npz(p: Path) -> Clip:
    try:
        with np.load(p, allow_pickle=False) as data:
            if "frames" not in data or "fps" not in data:
                raise ClipError(f"{p}: an npz clip needs 'frames' and 'fps' arrays (has: {', '.join(data.files)})")
            frames = data["frames"]
            fps = float(np.asarray(data["fps"]).reshape(-1)[0])
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ClipError(f"{p}: not a readable npz file ({exc})") from None
    if frames.ndim == 4 and frames.shape[3] in (3, 4):      # colour: take luminance
        frames = (frames[..., 0] * 0.299 + frames[..., 1] * 0.587 + frames[..., 2] * 0.114)
    if frames.ndim != 3:
        raise ClipError(f"{p}: 'frames' must be N x H x W (grayscale), got shape {frames.shape}")
    if frames.dtype != np.uint8:
        frames = np.clip(frames, 0, 255).astype(np.uint8)
    if not np.isfinite(fps) or fps <= 0 or fps > 1000:
        raise ClipError(f"{p}: 'fps' must be a positive number, got {fps}")
    return Clip(p, fps, frames.shape[0], frames.shape[2], frames.shape[1], frames)


def _open_av(p: Path) -> Clip:
    import av
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise ClipError(f"{p}: no video stream")
            st = container.streams.video[0]
            fps = float(st.average_rate or st.guessed_rate or 25.0)
            return Clip(p, fps, st.frames or None, st.codec_context.width, st.codec_context.height)
    except ClipError:
        raise
    except Exception as exc:  # PyAV raises many error types
        raise ClipError(f"{p}: cannot open video ({exc})") from None


def _av_frames(p: Path) -> Iterator[tuple[float, np.ndarray]]:
    import av
    with av.open(str(p)) as container:
        st = container.streams.video[0]
        t_first: float | None = None
        for frame in container.decode(st):
            t = float(frame.time) if frame.time is not None else 0.0
            if t_first is None:
                t_first = t
            yield t - t_first, frame.to_ndarray(format="gray")


def save_npz(path: Path | str, frames: np.ndarray, fps: float) -> None:
    """Write a clip in the contract's npz form."""
    np.savez_compressed(path, frames=np.asarray(frames, dtype=np.uint8), fps=np.float64(fps))

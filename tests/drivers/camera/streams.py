"""Real streams for camera tests: H.264 files encoded with PyAV, and a camera that never answers."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Iterable

import numpy as np
import pytest


def encode_h264(path: Path, frames: Iterable[np.ndarray], fps: float, *, gop: int = 12, crf: int = 18,
                bitrate: int | None = None) -> Path:
    """An H.264 MP4 as a camera would stream it (B-frames, a keyframe every `gop` frames) from grey frames.

    Constant quality `crf`, or an average `bitrate` (bit/s) as IP cameras are set up.
    """
    av = pytest.importorskip("av")
    if "libx264" not in av.codecs_available:
        pytest.skip("PyAV without libx264")
    from fractions import Fraction
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        s.pix_fmt = "yuv420p"
        s.options = {"preset": "veryfast", "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0",
                     **({} if bitrate else {"crf": str(crf)})}
        if bitrate:
            s.bit_rate = bitrate
        _encode_grey(av, c, s, frames)
    return path


def _encode_grey(av, container, stream, frames: Iterable[np.ndarray]) -> None:
    """Encode grey frames into `stream` (its size from the first frame) and mux them, then flush."""
    for i, f in enumerate(frames):
        if i == 0:
            stream.height, stream.width = f.shape[:2]
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="gray").reformat(format=stream.pix_fmt)
        vf.pts = i
        for p in stream.encode(vf):
            container.mux(p)
    for p in stream.encode(None):
        container.mux(p)


def encode_mjpeg(path: Path, frames: Iterable[np.ndarray], fps: float) -> Path:
    """A motion-JPEG AVI, as USB cameras send their pictures (every packet a keyframe), from grey frames."""
    av = pytest.importorskip("av")
    from fractions import Fraction
    with av.open(str(path), "w", format="avi") as c:
        s = c.add_stream("mjpeg", rate=Fraction(fps).limit_denominator(1000))
        s.pix_fmt = "yuvj420p"
        _encode_grey(av, c, s, frames)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SilentServer:
    """A TCP server that accepts connections and never says a word (a hung camera)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[float] = []
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(time.monotonic())
            self._conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self._conns:
            c.close()

"""An H.264 round trip for generated clips: frames as an IP camera would stream them.

Most installations feed the detector an RTSP stream, so a synthetic clip is
only representative once it has been through the same codec: x264
(veryfast, zerolatency, yuv420p, a fixed bit rate, an I-frame every `gop`
frames), then decoded again. Compression smears a small object into blocky,
low-contrast changes and every I-frame re-draws the whole picture; the
benchmark and the tests measure the detector on what comes out.

    decoded = h264_roundtrip(frames, fps=25.0, bitrate_bps=4_000_000)

Needs PyAV (the `video` extra).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

DEFAULT_GOP = 50        # IP cameras typically send an I-frame every 1-2 s


def _luma(frame, h: int) -> np.ndarray:
    """The decoded Y plane as it is (no range conversion: the camera path reads the Y plane too)."""
    return frame.to_ndarray(format="yuv420p")[:h]


def h264_roundtrip(frames: np.ndarray, fps: float, bitrate_bps: int, gop: int = DEFAULT_GOP,
                   preset: str = "veryfast") -> np.ndarray:
    """Encode grayscale frames (N x H x W uint8) with libx264 and decode them: the Y plane back, same shape."""
    import av

    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected N x H x W uint8 frames, got {frames.dtype} {frames.shape}")
    n, h, w = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"yuv420p needs an even frame size, got {w}x{h}")
    rate = Fraction(fps).limit_denominator(1000)
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.time_base = 1 / rate
    enc.framerate = rate
    enc.bit_rate = int(bitrate_bps)
    enc.gop_size = int(gop)
    enc.options = {"preset": preset, "tune": "zerolatency", "keyint": str(gop), "min-keyint": str(gop),
                   "scenecut": "0", "vbv-maxrate": str(int(bitrate_bps) // 1000),
                   "vbv-bufsize": str(int(bitrate_bps) // 1000)}
    dec = av.CodecContext.create("h264", "r")
    out = np.empty_like(frames)
    got = 0
    grey_chroma = np.full((h // 2, w), 128, dtype=np.uint8)     # U and V planes, packed as yuv420p expects

    def drain(packets) -> None:
        nonlocal got
        for pkt in packets:
            for fr in dec.decode(pkt):
                if got < n:
                    out[got] = _luma(fr, h)
                    got += 1

    for i in range(n):
        vf = av.VideoFrame.from_ndarray(np.concatenate([frames[i], grey_chroma]), format="yuv420p")
        vf.pts = i
        drain(enc.encode(vf))
    drain(enc.encode(None))
    for fr in dec.decode(None):
        if got < n:
            out[got] = _luma(fr, h)
            got += 1
    if got != n:
        raise RuntimeError(f"the H.264 round trip returned {got} of {n} frames")
    return out

"""The camera's pre-event buffer: memory for 10 s of pre-roll, and what each frame costs.

    .venv/bin/python -m tests.benchmarks.bench_camera_memory [--quick] [--json]

A real H.264 stream is made first: `PREROLL_S` (+1) seconds of a facade with
sensor noise at 25 fps, encoded with PyAV (libx264 veryfast, a keyframe
every 2 s, the bit rates IP cameras stream at: 8 Mbit/s at 1920x1080,
4 Mbit/s at 1280x720). It is then read through `VideoSource` as the camera
driver reads an RTSP stream, and its frames go into:

- the packet ring (`PacketRing`): the stream's own encoded packets, what
  the driver keeps for PyAV sources;
- the decoded ring, the baseline (what the driver used to keep): every
  decoded frame as an RGB evidence picture `OLD_EVIDENCE_WIDTH` wide (the
  old default) for the same seconds;
- the bounded picture ring (`FrameRing`, `ring_max_mb` = 64) that sources
  without packets use: pictures downscaled to fit.

Memory is what the ring holds once it has the full pre-roll: the larger of
its allocations traced with tracemalloc and the bytes of the pictures or
packets it holds (PyAV's decoded arrays are not all seen by tracemalloc); the target is at
most 64 MB for 10 s at 1920x1080 (issue 16). Cost per frame is the time to
read a frame from the source and keep it: with packets (grey plane decoded
for the detector, packet kept) against the old way (grey plane plus an RGB
evidence picture decoded, picture kept), same stream, same run. The remux
of a whole pre-roll clip is timed too.
"""

from __future__ import annotations

import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import numpy as np

from detection.evidence import remux_clip
from detection.sources import VideoOptions, VideoSource
from drivers.camera.ring import FrameRing, PacketRing
from tests.benchmarks.common import Figure, main
from tests.drivers.camera.streams import encode_h264

PREROLL_S = 10.0
FPS = 25
GOP_S = 2.0
BUDGET_MB = 64.0
OLD_EVIDENCE_WIDTH = 960
STREAMS = {(1920, 1080): 8_000_000, (1280, 720): 4_000_000}


def make_stream(path: Path, size: tuple[int, int], bitrate: int, seconds: float) -> Path:
    """A facade with sensor noise, encoded as an IP camera streams it."""
    w, h = size
    rng = np.random.default_rng(7)
    facade = rng.integers(40, 200, (h // 8, w // 8), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    frames = (np.clip(facade + rng.normal(0, 3, facade.shape), 0, 255).astype(np.uint8)
              for _ in range(int(seconds * FPS)))
    return encode_h264(path, frames, FPS, gop=int(GOP_S * FPS), bitrate=bitrate)


def fill(path: Path, packets: bool, keep: Callable[[Any], None], evidence_width: int) -> tuple[float, int]:
    """Read the whole stream, keeping each frame; (seconds per frame, frames)."""
    opts = VideoOptions(url=str(path), packets=packets, color=not packets, evidence_width=evidence_width)
    n = 0
    with VideoSource(opts) as src:
        started = time.perf_counter()
        for frame in src:
            keep(frame)
            n += 1
        elapsed = time.perf_counter() - started
    return elapsed / max(1, n), n


def traced(path: Path, packets: bool, make_ring: Callable[[], Any], push: Callable[[Any, Any], None],
           evidence_width: int = 0) -> tuple[float, float, Any]:
    """(MB the ring holds, seconds per frame read + kept, the ring)."""
    ring = make_ring()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    per_frame, _ = fill(path, packets, lambda f: push(ring, f), evidence_width)
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return max(held, ring.nbytes) / 2**20, per_frame, ring


def push_packets(ring: PacketRing, frame: Any) -> None:
    for p in frame.packets:
        ring.push(p)


def run(quick: bool = False) -> list[Figure]:
    seconds = 3.0 if quick else PREROLL_S
    sizes = [(1280, 720)] if quick else list(STREAMS)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            label = f"{seconds:g} s at {size[0]}x{size[1]}"
            path = make_stream(Path(tmp) / f"{size[1]}p.mp4", size, STREAMS[size], seconds + 1.0)
            budget = int(BUDGET_MB * 2**20)
            packet_mb, packet_cost, pring = traced(path, True, lambda: PacketRing(seconds, budget), push_packets)
            decoded_mb, decoded_cost, _ = traced(path, False, lambda: FrameRing(seconds, 1 << 40, FPS),
                                                 lambda r, f: r.push(f.t, f.color), OLD_EVIDENCE_WIDTH)
            bounded_mb, _, fring = traced(path, False, lambda: FrameRing(seconds, budget, FPS),
                                          lambda r, f: r.push(f.t, f.color))
            figures.append(Figure(f"pre-event ring, {label}, stream packets", packet_mb, "MB",
                                  decoded_mb, f"decoded RGB {OLD_EVIDENCE_WIDTH} wide", f"<= {BUDGET_MB:g} MB",
                                  packet_mb <= BUDGET_MB and pring.span >= seconds - 0.1))
            figures.append(Figure(f"pre-event ring, {label}, full RGB downscaled x{fring.scale} (no packets; holds {fring.span:.1f} s)",
                                  bounded_mb, "MB", decoded_mb, f"decoded RGB {OLD_EVIDENCE_WIDTH} wide", f"<= {BUDGET_MB:g} MB",
                                  bounded_mb <= BUDGET_MB))
            figures.append(Figure(f"read + keep per frame, {size[0]}x{size[1]}, packets", packet_cost * 1e3, "ms",
                                  decoded_cost * 1e3, f"decoded RGB {OLD_EVIDENCE_WIDTH} wide kept", "< baseline",
                                  packet_cost < decoded_cost))
            clip = pring.since(-1.0)
            info = VideoSource(VideoOptions(url=str(path)))
            info.open()
            stream = info.stream_info
            info.close()
            assert stream is not None
            started = time.perf_counter()
            out = remux_clip(Path(tmp) / f"clip{size[1]}", stream, clip)
            remux_s = time.perf_counter() - started
            figures.append(Figure(f"remux of the {pring.span:.1f} s pre-roll clip, {size[0]}x{size[1]}",
                                  remux_s * 1e3, "ms", pring.span * 1e3, "its duration", "< its duration",
                                  remux_s < pring.span and out.stat().st_size > 0))
    return figures


if __name__ == "__main__":
    main(run)

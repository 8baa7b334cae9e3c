"""Evidence costs: copying the camera's packets into a clip against burning the caption in, and the snapshot.

    .venv/bin/python -m tests.benchmarks.bench_evidence [--quick] [--json]

A clip of a stream with packets can be written two ways:

- remuxed (what the driver does): the stream's own H.264 packets copied into
  an MP4, the caption in the MP4 header (`title`). This is the baseline.
- re-encoded with the caption burned in: every packet decoded, the caption
  band drawn below each picture with its own time (detection/caption.py),
  and the pictures encoded again with libx264 (veryfast, crf 23), one
  picture at a time (nothing held whole).

Both are timed on the same clip in the same run (a facade with sensor noise,
10 s at 25 fps, 8 Mbit/s at 1920x1080 and 4 Mbit/s at 1280x720, as
bench_camera_memory makes it); the re-encode is also set against the clip's
own duration (a camera gateway must finish a clip well before the next one).
The snapshot (grid, track, caption, JPEG with Pillow) at the default
`evidence_width` of 960 is timed against encoding the bare picture as JPEG,
and signing a manifest against hashing the clip.
"""

from __future__ import annotations

import tempfile
import time
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path

import numpy as np

from detection.caption import BandStyle, Caption, with_caption
from detection.evidence import REMUX_TIME_BASE, remux_clip
from detection.snapshot import draw_snapshot, encode_jpeg
from detection.sources import EncodedPacket, StreamInfo, VideoOptions, VideoSource
from gateway.manifest import build_manifest, file_entry, write_manifest
from gateway.signing import EvidenceKey
from tests.benchmarks.bench_camera_memory import FPS, STREAMS, make_stream
from tests.benchmarks.common import Figure, main

CLIP_S = 10.0
CAPTION = Caption(site="s1", camera="tower-3", event_id="0192f5d6-7a3b-7c4d-8e9f-0123456789ab", floor=12,
                  floor_range=(11, 12), timezone="Asia/Shanghai")
T0 = datetime(2026, 11, 23, 5, 5, 7, tzinfo=timezone.utc)

NOTES = """
The clip of a stream with packets is therefore copied, not re-encoded: the
caption is in its MP4 header (`title`), burned into the snapshot, and signed
in the manifest (docs/evidence.md).
"""


def read_packets(path: Path) -> tuple[StreamInfo, list[EncodedPacket]]:
    packets: list[EncodedPacket] = []
    with VideoSource(VideoOptions(url=str(path), packets=True, color=False)) as src:
        for frame in src:
            packets.extend(frame.packets)
        info = src.stream_info
    assert info is not None
    return info, packets


def reencode_with_caption(path: Path, info: StreamInfo, packets: list[EncodedPacket]) -> int:
    """Decode every packet, burn the caption (each picture's own time) in, encode again; pictures written."""
    import av
    dec = av.CodecContext.create(info.codec, "r")
    tb = REMUX_TIME_BASE
    style: BandStyle | None = None
    n = 0
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(FPS))
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}

        def put(frames) -> None:
            nonlocal style, n
            for vf in frames:
                rgb = vf.to_ndarray(format="rgb24")
                lines = CAPTION.lines(T0 + timedelta(seconds=n / FPS))
                style = style or BandStyle.fit(lines, rgb.shape[1])
                pic = with_caption(rgb, lines, style)
                if n == 0:
                    stream.height, stream.width = pic.shape[:2]
                frame = av.VideoFrame.from_ndarray(pic, format="rgb24")
                frame.pts = n
                n += 1
                for p in stream.encode(frame):
                    out.mux(p)

        for p in packets:
            pkt = av.Packet(p.data)
            pkt.pts, pkt.dts, pkt.time_base = round(p.t / tb), round(p.dts / tb), tb
            put(dec.decode(pkt))
        put(dec.decode(None))
        for p in stream.encode(None):
            out.mux(p)
    return n


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def run(quick: bool = False) -> list[Figure]:
    seconds = 3.0 if quick else CLIP_S
    sizes = [(1280, 720)] if quick else list(STREAMS)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for size in sizes:
            label = f"{seconds:g} s at {size[0]}x{size[1]}"
            info, packets = read_packets(make_stream(folder / f"{size[1]}p.mp4", size, STREAMS[size], seconds))
            remux_s = timed(lambda: remux_clip(folder / f"copy{size[1]}", info, packets,
                                               metadata={"title": CAPTION.text(T0)}), 3)
            n = 0

            def reencode() -> None:
                nonlocal n
                n = reencode_with_caption(folder / f"burn{size[1]}.mp4", info, packets)

            burn_s = timed(reencode)
            figures.append(Figure(f"clip {label}: decode + caption + re-encode ({n} pictures)", burn_s * 1e3, "ms",
                                  remux_s * 1e3, "packet copy, caption in the MP4 header"))
            figures.append(Figure(f"clip {label}: re-encode time against the clip's duration", burn_s, "s",
                                  seconds, "clip duration", "< 0.5 x duration", burn_s < 0.5 * seconds))

        w, h = 960, 540
        rng = np.random.default_rng(3)
        picture = rng.integers(40, 200, (h, w, 3), dtype=np.uint8)
        floors = [(f, h - 30.0 * f) for f in range(1, 17)]
        track = [(0.04 * i, 480.0, 60.0 + 20 * i) for i in range(20)]
        bare = timed(lambda: encode_jpeg(picture, 88), 5)
        snap = timed(lambda: encode_jpeg(draw_snapshot(picture, track, floors, release_xy=(480.0, 60.0), floor=12,
                                                       caption=CAPTION.lines(T0)), 88), 5)
        figures.append(Figure(f"snapshot {w}x{h}: grid + track + caption + JPEG (Pillow)", snap * 1e3, "ms",
                              bare * 1e3, "JPEG of the bare picture", "< 100 ms (before the alarm)", snap < 0.100))

        clip = folder / f"copy{sizes[-1][1]}.mp4"
        key = EvidenceKey.generate()
        hash_s = timed(lambda: file_entry(clip, "clip", "video/mp4"), 3)
        sign_s = timed(lambda: write_manifest(folder / "m", build_manifest(
            site="s1", gateway="gw1", event={"id": "x", "seq": 1}, files=[file_entry(clip, "clip", "video/mp4")],
            created="2026-11-23T05:05:07.000Z", key=key.public), key), 3)
        figures.append(Figure(f"manifest for the {sizes[-1][1]}p clip: hash + sign + write", sign_s * 1e3, "ms",
                              hash_s * 1e3, "hashing the clip alone"))
    return figures


if __name__ == "__main__":
    main(run)

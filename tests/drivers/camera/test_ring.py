"""The pre-event buffer: bounded in seconds and bytes; clips remuxed from a real H.264 stream's packets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detection.evidence import decode_picture, remux_clip
from detection.sources import EncodedPacket, StreamInfo, VideoOptions, VideoSource
from drivers.camera.ring import MAX_DOWNSCALE, FrameRing, PacketRing, Recording
from tests.drivers.camera.streams import encode_h264


def _frame(value: int, h: int = 48, w: int = 64) -> np.ndarray:
    return np.full((h, w), value, dtype=np.uint8)


def h264_file(path: Path, n: int, fps: int = 25, gop: int = 10, size: tuple[int, int] = (160, 96)) -> Path:
    """A real H.264 MP4 (B-frames, a keyframe every `gop` frames); frame i shows brightness i mod 200."""
    w, h = size
    texture = np.random.default_rng(1).integers(0, 40, (h, w), dtype=np.uint8)
    return encode_h264(path, (texture + np.uint8(i % 200) for i in range(n)), fps, gop=gop, crf=23)


def read_packets(path: Path) -> tuple[StreamInfo, list[tuple[float, np.ndarray]], list[EncodedPacket]]:
    with VideoSource(VideoOptions(url=str(path))) as src:
        frames = list(src)
        info = src.stream_info
    assert info is not None
    return info, [(f.t, f.gray) for f in frames], [p for f in frames for p in f.packets]


def decode(path: Path) -> tuple[list[np.ndarray], float, list[bool]]:
    av = pytest.importorskip("av")
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        frames = [f.to_ndarray(format="gray") for f in c.decode(st)]
        duration = float(st.duration * st.time_base) if st.duration else 0.0
    with av.open(str(path)) as c:
        keys = [p.is_keyframe for p in c.demux(c.streams.video[0]) if p.size]
    return frames, duration, keys


# -- pictures ---------------------------------------------------------------------

def test_frame_ring_keeps_only_its_seconds() -> None:
    ring = FrameRing(seconds=1.0, max_bytes=1 << 30, fps=25)
    for i in range(100):
        ring.push(i / 25, _frame(i))
    assert len(ring) == 26                       # 1 s at 25 fps, both ends included
    assert ring.span == pytest.approx(1.0)
    assert ring.since(99 / 25 - 0.2)[0][1][0, 0] == 94


def test_frame_ring_downscales_to_keep_its_whole_span_within_its_bytes() -> None:
    full = np.zeros((1080, 1920), np.uint8)
    ring = FrameRing(seconds=10.0, max_bytes=64 << 20, fps=25)
    for i in range(260):
        kept = ring.push(i / 25, full)
    assert ring.nbytes <= 64 << 20 and ring.span == pytest.approx(10.0, abs=0.05)
    assert ring.scale == 3 and kept.shape == (360, 640)   # 10 s of 1080p grey is 518 MB at full size
    assert ring.dropped_for_memory == 0


def test_frame_ring_past_its_downscale_limit_drops_the_oldest_and_says_so() -> None:
    one = _frame(0).nbytes
    ring = FrameRing(seconds=60.0, max_bytes=10 * one, fps=25)
    for i in range(500):
        ring.push(i / 25, _frame(i % 256))
    assert ring.scale == MAX_DOWNSCALE
    assert ring.nbytes <= 10 * one
    assert len(ring) == 10 * MAX_DOWNSCALE ** 2
    assert ring.dropped_for_memory == 500 - len(ring)   # reported, so a short pre-roll can be explained


def test_recording_takes_pre_event_frames_then_stops_after_post_seconds() -> None:
    ring = FrameRing(seconds=5.0, max_bytes=1 << 30, fps=25)
    for i in range(100):                          # 4 s of video
        ring.push(i / 25, _frame(i))
    rec = Recording("e1", t_from=3.0 - 1.0, t_until=3.5 + 1.0, stem=Path("x"))
    rec.extend(ring.since(rec.t_from))
    assert rec.start == pytest.approx(2.0)        # one second before the event start
    done = [rec.add(i / 25, _frame(i)) for i in range(100, 125)]
    assert done[-1] is True and not any(done[:12])
    assert rec.frames[-1][0] <= 4.5
    assert rec.count == int(2.5 * 25) + 1


# -- packets ------------------------------------------------------------------------

def test_packet_ring_holds_its_seconds_from_a_keyframe(tmp_path: Path) -> None:
    _, _, packets = read_packets(h264_file(tmp_path / "s.mp4", 100, gop=10))   # 4 s, a keyframe each 0.4 s
    ring = PacketRing(seconds=1.0, max_bytes=1 << 30)
    for p in packets:
        ring.push(p)
        held = ring.since(-1.0)
        assert held[0].keyframe
    newest = max(p.t for p in packets)
    assert held[0].t <= newest - 1.0 < held[0].t + 0.4 + 1e-6   # the last keyframe before the span, no older
    assert ring.nbytes == sum(p.nbytes for p in held)
    assert ring.since(3.3)[0].t == pytest.approx(3.2) and ring.since(3.3)[0].keyframe


def test_packet_ring_stays_under_its_bytes() -> None:
    def pkt(i: int) -> EncodedPacket:
        return EncodedPacket(i / 25, i / 25, 0.04, i % 25 == 0, bytes(1000))
    ring = PacketRing(seconds=60.0, max_bytes=30_000)
    sizes = []
    for i in range(500):
        ring.push(pkt(i))
        sizes.append(ring.nbytes)
        assert ring.since(0.0)[0].keyframe
    assert max(sizes) <= 30_000 and ring.dropped_for_memory > 0


def test_packet_ring_skips_what_comes_before_the_first_keyframe() -> None:
    ring = PacketRing(seconds=5.0, max_bytes=1 << 20)
    ring.push(EncodedPacket(0.0, 0.0, 0.04, False, b"x" * 10))   # joined a stream mid-GOP
    assert len(ring) == 0 and ring.nbytes == 0


def test_clip_remuxed_from_packets_plays_from_a_keyframe_before_the_preroll(tmp_path: Path) -> None:
    info, frames, packets = read_packets(h264_file(tmp_path / "s.mp4", 100, gop=10))
    ring = PacketRing(seconds=3.0, max_bytes=1 << 30)
    rec = Recording("e1", t_from=2.1, t_until=3.0, stem=tmp_path / "ev" / "clip", stream=info)
    live = iter(packets)
    for p in live:                               # the throw is judged at 2.6 s
        ring.push(p)
        if p.dts >= 2.6:
            break
    rec.packets = ring.since(rec.t_from)
    for p in live:
        if rec.add_packet(p):
            break
    assert rec.start == pytest.approx(2.0)       # the keyframe at or before 2.1 s
    path = remux_clip(rec.stem, info, rec.packets)
    assert path.suffix == ".mp4" and not list(path.parent.glob("*.part"))
    clip, duration, keys = decode(path)
    last = max(p.t for p in rec.packets)          # cut in decoding order: B-frames may reach a bit past 3.0 s
    assert 3.0 - 1e-6 <= last < 3.0 + 0.2
    expected = [g for t, g in frames if 2.0 - 1e-6 <= t <= last + 1e-6]
    assert len(clip) == len(rec.packets) == len(expected) == round((last - 2.0) * 25) + 1
    assert keys[0] is True
    assert duration == pytest.approx(len(clip) / 25, abs=0.05)
    assert all(np.array_equal(a, b) for a, b in zip(clip, expected))   # the camera's own bits, not re-encoded


def test_remuxing_refuses_a_clip_that_does_not_start_at_a_keyframe(tmp_path: Path) -> None:
    pytest.importorskip("av")
    info = StreamInfo("h264", 64, 48, 25.0)
    with pytest.raises(ValueError, match="keyframe"):
        remux_clip(tmp_path / "c", info, [EncodedPacket(0.0, 0.0, 0.04, False, b"\x00\x00\x00\x01")])


def test_snapshot_picture_decoded_from_packets(tmp_path: Path) -> None:
    info, frames, packets = read_packets(h264_file(tmp_path / "s.mp4", 40, gop=10))
    ring = PacketRing(seconds=5.0, max_bytes=1 << 30)
    for p in packets:
        ring.push(p)
    picture = decode_picture(info, ring.since(1.0), 1.0, color=False)
    shown = next(g for t, g in frames if abs(t - 1.0) < 1e-6)
    assert picture is not None and np.array_equal(picture, shown)
    small = decode_picture(info, ring.since(1.0), 1.0, width=80)
    assert small is not None and small.shape == (48, 80, 3)



def test_mjpeg_packets_as_usb_cameras_send_them_remux_too(tmp_path: Path) -> None:
    from tests.drivers.camera.streams import encode_mjpeg
    path = encode_mjpeg(tmp_path / "usb.avi", [_frame(10 * i) for i in range(10)], 10.0)
    info, frames, packets = read_packets(path)
    assert info.codec == "mjpeg" and all(p.keyframe for p in packets)
    clip, _, _ = decode(remux_clip(tmp_path / "clip", info, packets[4:]))
    assert [int(c.mean()) for c in clip] == pytest.approx([int(g.mean()) for _, g in frames[4:]], abs=2)

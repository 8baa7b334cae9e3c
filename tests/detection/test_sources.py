"""Frame sources: npz clips, synthetic feeds, video files and RTSP streams through PyAV; config validation."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

from detection.evidence import write_clip
from detection.sources import (EndOfSource, NpzSource, PiCameraSource, SourceError, SyntheticSource, VideoOptions,
                               VideoSource, open_source, parse_source)
from gateway.configfile import Problems, Section
from tests.drivers.camera.streams import SilentServer, free_port


def _clip(path: Path, n: int = 10, fps: float = 25.0, shape: tuple[int, ...] = (40, 60)) -> Path:
    frames = np.stack([np.full(shape, 10 * i, np.uint8) for i in range(n)])
    np.savez(path, frames=frames, fps=fps)
    return path


def test_npz_source_yields_every_frame_with_its_time(tmp_path: Path) -> None:
    src = NpzSource(_clip(tmp_path / "c.npz", fps=12.5))
    with src:
        frames = list(src)
    assert src.fps == 12.5
    assert [f.t for f in frames] == pytest.approx([i / 12.5 for i in range(10)])
    assert [int(f.gray[0, 0]) for f in frames] == [10 * i for i in range(10)]
    assert frames[0].gray.dtype == np.uint8 and frames[0].color is None


def test_npz_source_ends_then_raises_end_of_source(tmp_path: Path) -> None:
    src = NpzSource(_clip(tmp_path / "c.npz", n=2))
    src.open()
    src.read()
    src.read()
    with pytest.raises(EndOfSource):
        src.read()


def test_npz_source_loops_with_time_going_on(tmp_path: Path) -> None:
    src = NpzSource(_clip(tmp_path / "c.npz", n=3), loop=True)
    src.open()
    ts = [src.read().t for _ in range(7)]
    assert ts == pytest.approx([i / 25 for i in range(7)])


def test_npz_source_realtime_is_paced_like_a_camera(tmp_path: Path) -> None:
    src = NpzSource(_clip(tmp_path / "c.npz", n=6, fps=50.0), realtime=True)
    src.open()
    start = time.monotonic()
    for _ in range(6):
        src.read()
    assert time.monotonic() - start >= 5 / 50 - 0.01   # never faster than the clip's own rate


def test_npz_rgb_clip_gives_gray_for_analysis_and_colour_for_evidence(tmp_path: Path) -> None:
    rgb = np.zeros((2, 8, 8, 3), np.uint8)
    rgb[..., 1] = 200
    np.savez(tmp_path / "c.npz", frames=rgb, fps=25)
    with NpzSource(tmp_path / "c.npz") as src:
        f = src.read()
    assert f.gray.shape == (8, 8) and 110 < f.gray.mean() < 125
    assert f.color is not None and f.color.shape == (8, 8, 3)


@pytest.mark.parametrize("content,message", [
    ({"pictures": np.zeros((2, 4, 4), np.uint8), "fps": 25}, "no 'frames'"),
    ({"frames": np.zeros((2, 4, 4), np.float32), "fps": 25}, "uint8"),
    ({"frames": np.zeros((2, 4, 4), np.uint8)}, "fps"),
])
def test_bad_npz_is_one_clear_error(tmp_path: Path, content: dict, message: str) -> None:
    np.savez(tmp_path / "bad.npz", **content)
    with pytest.raises(SourceError, match=message):
        NpzSource(tmp_path / "bad.npz").open()


def test_not_a_clip_at_all(tmp_path: Path) -> None:
    (tmp_path / "x.npz").write_text("hello")
    with pytest.raises(SourceError, match="cannot read clip"):
        NpzSource(tmp_path / "x.npz").open()


class _Feed:
    fps = 10.0

    def frames(self):
        for i in range(4):
            yield i / self.fps, np.full((20, 30), i, np.uint8)


def test_synthetic_source_from_a_live_feed() -> None:
    src = SyntheticSource(_Feed())
    with src:
        frames = list(src)
    assert [f.t for f in frames] == pytest.approx([0, 0.1, 0.2, 0.3])
    assert [int(f.gray[0, 0]) for f in frames] == [0, 1, 2, 3]


def test_synthetic_source_loops_its_feed_with_time_going_on() -> None:
    src = SyntheticSource(_Feed(), loop=True)
    src.open()
    ts = [src.read().t for _ in range(6)]
    assert ts == pytest.approx([0, 0.1, 0.2, 0.3, 0.4, 0.5])


def test_detection_renders_nothing_itself() -> None:
    root = Path(__file__).resolve().parents[2]
    for package in ("detection", "drivers"):
        for path in (root / package).rglob("*.py"):
            text = path.read_text()
            assert "import sim" not in text and "from sim" not in text, path


def test_video_file_through_pyav(tmp_path: Path) -> None:
    pytest.importorskip("av")
    frames = [np.full((72, 96), 20 + 10 * i, np.uint8) for i in range(12)]
    path = write_clip(tmp_path / "v", frames, 12.5)
    src = VideoSource(VideoOptions(url=str(path), color=True, evidence_width=48, packets=False))
    with src:
        got = list(src)
    assert src.fps == pytest.approx(12.5)
    assert len(got) == 12
    assert [f.t for f in got] == pytest.approx([i / 12.5 for i in range(12)], abs=1e-3)
    assert [float(f.gray.mean()) for f in got] == pytest.approx([20 + 10 * i for i in range(12)], abs=3)
    assert got[0].gray.shape == (72, 96)
    assert got[0].color is not None and got[0].color.shape == (36, 48, 3)   # evidence picture capped
    assert src.stream_info is None and got[0].packets == ()


def test_video_file_hands_out_its_own_packets_with_the_frames(tmp_path: Path) -> None:
    pytest.importorskip("av")
    frames = [np.full((72, 96), 20 + 5 * i, np.uint8) for i in range(30)]
    path = write_clip(tmp_path / "v", frames, 25.0)
    src = VideoSource(VideoOptions(url=str(path)))
    with src:
        got = list(src)
        info = src.stream_info
    packets = [p for f in got for p in f.packets]
    assert info is not None and (info.width, info.height) == (96, 72) and info.codec in ("h264", "mpeg4")
    assert len(got) == 30 and len(packets) == 30
    assert packets[0].keyframe and packets[0].t == pytest.approx(0.0)
    assert sorted(p.t for p in packets) == pytest.approx([f.t for f in got], abs=1e-3)   # one timeline
    assert all(f.color is None for f in got)        # the evidence is the packets, not decoded pictures
    if info.codec == "h264":                        # parameter sets in band: each keyframe stands alone
        assert packets[0].data[:4] == b"\x00\x00\x00\x01"


def test_video_analysis_width_downscales_the_gray_plane(tmp_path: Path) -> None:
    pytest.importorskip("av")
    path = write_clip(tmp_path / "v", [np.zeros((72, 96), np.uint8)] * 3, 25)
    with VideoSource(VideoOptions(url=str(path), analysis_width=48, color=False)) as src:
        f = src.read()
    assert f.gray.shape == (36, 48) and f.color is None


def test_rtsp_port_nobody_listens_on_is_a_clear_source_error() -> None:
    pytest.importorskip("av")
    url = f"rtsp://127.0.0.1:{free_port()}/stream1"
    src = VideoSource(VideoOptions(url=url, options={"rtsp_transport": "tcp"}, live=True, open_timeout_s=2.0))
    with pytest.raises(SourceError, match=f"cannot open {url}: .*Connection refused"):
        src.open()


def test_rtsp_server_that_says_nothing_times_out_with_a_clear_error() -> None:
    pytest.importorskip("av")
    server = SilentServer()
    url = f"rtsp://127.0.0.1:{server.port}/stream1"
    src = VideoSource(VideoOptions(url=url, options={"rtsp_transport": "tcp"}, live=True, open_timeout_s=0.5,
                                   read_timeout_s=0.5), secret_url=lambda: url.replace("//", "//viewer:hunter2@"))
    started = time.monotonic()
    try:
        with pytest.raises(SourceError, match=r"cannot open .*no answer within open_timeout_s = 0.5 s") as err:
            src.open()
    finally:
        server.close()
    assert time.monotonic() - started < 5.0           # the timeout holds, the thread is not stuck
    assert len(server.accepted) == 1 and "hunter2" not in str(err.value)


def test_picamera_off_a_pi_is_a_source_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)   # as on any machine without it
    with pytest.raises(SourceError, match="picamera2 is not installed"):
        PiCameraSource().open()


# -- config -------------------------------------------------------------------------

def _parse(raw: dict, base: Path | None = None):
    problems = Problems()
    cfg = parse_source(Section(raw, "camera[0].source", problems, base))
    return cfg, [str(p) for p in problems.items]


def test_source_config_names_bad_keys(tmp_path: Path) -> None:
    _, probs = _parse({"type": "npz", "path": "missing.npz", "realtme": True}, tmp_path)
    assert any(p.startswith("camera[0].source.path: file not found") for p in probs)
    assert "camera[0].source.realtme: unknown key" in probs
    _, probs = _parse({"type": "webcam"})
    assert any(p.startswith("camera[0].source.type: must be one of") for p in probs)


def test_rtsp_password_must_not_be_in_the_config() -> None:
    _, probs = _parse({"type": "rtsp", "url": "rtsp://192.0.2.1/s", "password": "hunter2"})
    assert any("camera[0].source.password" in p and "not in the config" in p for p in probs)


def test_rtsp_credentials_come_from_a_secret_file(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("p@ss:word\n")
    pw.chmod(0o600)
    cfg, probs = _parse({"type": "rtsp", "url": "rtsp://192.0.2.1:554/s1", "username": "viewer",
                         "password_file": str(pw)})
    assert probs == []
    src = open_source(cfg)
    assert isinstance(src, VideoSource)
    assert src.opts.url == "rtsp://192.0.2.1:554/s1"          # what logs and errors show
    assert src._secret_url() == "rtsp://viewer:p%40ss%3Aword@192.0.2.1:554/s1"
    assert src.opts.options == {"rtsp_transport": "tcp"}


def test_v4l2_options(tmp_path: Path) -> None:
    cfg, probs = _parse({"type": "v4l2", "device": "/dev/video2", "width": 1280, "height": 720, "fps": 25,
                         "input_format": "mjpeg"})
    assert probs == []
    src = open_source(cfg)
    assert src.opts.format == "v4l2" and src.opts.live
    assert src.opts.options == {"video_size": "1280x720", "framerate": "25", "input_format": "mjpeg"}


def test_synthetic_feed_missing_from_resources() -> None:
    cfg, probs = _parse({"type": "synthetic", "feed": "cam-1"})
    assert probs == []
    with pytest.raises(SourceError, match="cam-1"):
        open_source(cfg, {})
    assert isinstance(open_source(cfg, {"camera_feeds": {"cam-1": _Feed()}}), SyntheticSource)


def test_renamed_source_keys_name_the_new_key() -> None:
    _, probs = _parse({"type": "rtsp", "url": "rtsp://192.0.2.1/s", "open_timeout": 3, "read_timeout": 3})
    assert "camera[0].source.open_timeout: renamed: use 'open_timeout_s' instead" in probs
    assert "camera[0].source.read_timeout: renamed: use 'read_timeout_s' instead" in probs


def test_looping_video_file_keeps_time_going_forward(tmp_path: Path) -> None:
    pytest.importorskip("av")
    path = write_clip(tmp_path / "v", [np.full((32, 32), 50 * i, np.uint8) for i in range(3)], 10)
    src = VideoSource(VideoOptions(url=str(path), loop=True, color=False))
    src.open()
    ts = []
    while len(ts) < 7:
        f = src.read()
        if f is not None:
            ts.append(f.t)
    src.close()
    assert ts == pytest.approx([i / 10 for i in range(7)], abs=1e-3)

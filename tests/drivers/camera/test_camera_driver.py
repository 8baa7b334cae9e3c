"""The camera driver end to end on a real GatewayContext: throws with evidence, faults, config."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from detection.caption import Caption
from drivers.camera import CameraDriver, subsample_track
from gateway.clock import iso_utc
from gateway.configfile import Problems
from gateway.manifest import verify_folder
from tests.caption_check import MATCH_MAX, caption_mismatch
from tests.drivers.camera.streams import SilentServer, encode_h264
from tests.helpers import wait_until

CAL = {"floors": [{"floor": f, "y": 250.0 - 10.0 * f} for f in range(1, 24)]}   # 270 px high frames
RNG = np.random.default_rng(11)
FACADE = RNG.integers(50, 190, (270, 480)).astype(np.uint8)


def live(n: int) -> list[np.ndarray]:
    return [np.clip(FACADE + RNG.normal(0, 2, FACADE.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def save_clip(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    np.savez(path, frames=np.stack(frames), fps=fps)
    return path


def camera(source: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "tower-3", "calibration": CAL, "source": source, **extra}


def start(make_ctx, cameras: list[dict[str, Any]], tmp_path: Path, resources: dict | None = None):
    problems = Problems()
    cfg = CameraDriver.parse_config({"camera": cameras}, problems, tmp_path)
    assert not problems, [str(p) for p in problems.items]
    ctx = make_ctx("camera", event_class="camera", resources=resources)
    drv = CameraDriver("camera", cfg, ctx)
    drv.start()
    return drv, ctx


# -- config ----------------------------------------------------------------------

def test_config_problems_name_their_keys(tmp_path: Path) -> None:
    (tmp_path / "bad.cal.toml").write_text("floors = [{floor = 1, y = 100}]\n")
    problems = Problems()
    CameraDriver.parse_config({"camera": [
        {"name": "a", "calibration": "bad.cal.toml", "source": {"type": "npz", "path": "none.npz"}},
        {"name": "b b", "source": {"type": "synthetic"}, "calibration": CAL, "evidence": {"pre_secs": 2}},
        {"name": "c", "calibration": CAL},
    ]}, problems, tmp_path)
    text = [str(p) for p in problems.items]
    assert any(t.startswith("camera[0].source.path: file not found") for t in text)
    assert any(t.startswith("camera[0].calibration:") and "at least two floors" in t for t in text)
    assert any(t.startswith("camera[1].name:") for t in text)
    assert "camera[1].evidence.pre_secs: unknown key" in text
    assert "camera[2].source: is required" in text


def test_calibration_file_and_detector_settings(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("floors = [{floor = 1, y = 250}, {floor = 2, y = 240}]\n")
    save_clip(tmp_path / "x.npz", live(2))
    problems = Problems()
    cfg = CameraDriver.parse_config({"camera": [
        {"name": "a", "calibration": "c.toml", "source": {"type": "npz", "path": "x.npz"},
         "detection": {"diff_threshold_min": 20, "noise_k": "high"}}]}, problems, tmp_path)
    assert [str(p) for p in problems.items] == ["camera[0].detection.noise_k: expected a number, got string"]
    assert cfg.cameras[0].settings.diff_threshold_min == 20
    assert cfg.cameras[0].calibration.floors == ((1, 250.0), (2, 240.0))


def test_duplicate_camera_names(tmp_path: Path) -> None:
    save_clip(tmp_path / "x.npz", live(2))
    problems = Problems()
    cam = {"name": "a", "calibration": CAL, "source": {"type": "npz", "path": "x.npz"}}
    CameraDriver.parse_config({"camera": [cam, dict(cam)]}, problems, tmp_path)
    assert any(str(p).startswith("camera[1].name: camera 'a' is configured twice") for p in problems.items)


def test_cameras_without_pyav_are_refused_naming_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import drivers.camera.config as camera_config
    monkeypatch.setattr(camera_config, "have_pyav", lambda: False)   # a gateway installed without `video`
    save_clip(tmp_path / "x.npz", live(2))
    problems = Problems()
    CameraDriver.parse_config({"camera": [camera({"type": "npz", "path": "x.npz"})]}, problems, tmp_path)
    assert [str(p) for p in problems.items] == [
        "camera: evidence clips are H.264 MP4 written with PyAV, which is not installed: "
        "install the 'video' extra (pip install 'anfang-gateway[video]')"]
    problems = Problems()
    CameraDriver.parse_config({}, problems, tmp_path)      # no camera, no PyAV needed
    assert not problems


def test_subsampled_track_keeps_the_ends() -> None:
    track = [(10.0 + i * 0.04, 100.0, 20.0 + i) for i in range(100)]
    sub = subsample_track(track, 10.0, 5)
    assert len(sub) == 5 and sub[0] == [0.0, 100.0, 20.0] and sub[-1] == [3.96, 100.0, 119.0]


# -- faults ----------------------------------------------------------------------

def test_frozen_picture_then_live_again(make_ctx, tmp_path: Path) -> None:
    still = live(1)[0]
    save_clip(tmp_path / "c.npz", live(20) + [still] * 70 + live(60))   # 7 s frozen at 10 fps
    drv, ctx = start(make_ctx, [camera({"type": "npz", "path": "c.npz", "realtime": False},
                                       health={"frozen_s": 5.0, "restore_s": 2.0})], tmp_path)
    try:
        fault = ctx.wait_event("camera_fault")
        assert fault.data["reason"] == "frozen" and fault.severity == "warning"
        assert fault.cls == "camera" and fault.device == "tower-3"
        restore = ctx.wait_event("camera_restore")
        assert restore.data["reason"] == "frozen" and restore.seq > fault.seq
        wait_until(lambda: drv.health().devices.get("tower-3") == "ended")
        assert ctx.events("thrown_object") == []
    finally:
        drv.stop()


def test_covered_lens_then_uncovered(make_ctx, tmp_path: Path) -> None:
    dark = [np.clip(6 + RNG.normal(0, 1, FACADE.shape), 0, 255).astype(np.uint8) for _ in range(60)]
    save_clip(tmp_path / "c.npz", live(20) + dark + live(40))
    drv, ctx = start(make_ctx, [camera({"type": "npz", "path": "c.npz", "realtime": False},
                                       health={"covered_s": 4.0, "restore_s": 1.0})], tmp_path)
    try:
        assert ctx.wait_event("camera_fault").data["reason"] == "covered"
        assert ctx.wait_event("camera_restore").data["reason"] == "covered"
        assert [e.type for e in ctx.events()] == ["camera_fault", "camera_restore"]
    finally:
        drv.stop()


def test_no_frames_while_the_source_is_missing_then_restore(make_ctx, tmp_path: Path) -> None:
    clip = save_clip(tmp_path / "c.npz", live(30))
    drv_cfg = camera({"type": "npz", "path": "c.npz", "realtime": True, "loop": True},
                     health={"no_frames_s": 0.5, "restore_s": 0.2}, reconnect_s=0.1)
    problems = Problems()
    cfg = CameraDriver.parse_config({"camera": [drv_cfg]}, problems, tmp_path)
    hidden = clip.rename(tmp_path / "hidden.npz")      # the camera is unreachable when the gateway starts
    ctx = make_ctx("camera", event_class="camera")
    drv = CameraDriver("camera", cfg, ctx)
    drv.start()
    try:
        fault = ctx.wait_event("camera_fault")
        assert fault.data["reason"] == "no_frames"
        assert drv.health().state == "degraded"
        hidden.rename(clip)
        assert ctx.wait_event("camera_restore", timeout=10).data["reason"] == "no_frames"
        wait_until(lambda: drv.health().state == "ok")
    finally:
        drv.stop()


def test_one_dead_camera_does_not_stall_another(make_ctx, tmp_path: Path) -> None:
    save_clip(tmp_path / "ok.npz", live(40))
    cams = [camera({"type": "synthetic", "feed": "nowhere"}, name="dead", health={"no_frames_s": 0.5}),
            camera({"type": "npz", "path": "ok.npz", "realtime": False}, name="alive", telemetry_s=0.5)]
    drv, ctx = start(make_ctx, cams, tmp_path)
    try:
        assert ctx.wait_event("camera_fault").device == "dead"
        wait_until(lambda: drv.health().devices.get("alive") == "ended")
        assert drv.health().devices["dead"] != "ok"
    finally:
        drv.stop(timeout=3)


# -- throws --------------------------------------------------------------------------

def test_synthetic_throw_raises_one_alarm_with_captioned_signed_evidence(make_ctx, tmp_path: Path) -> None:
    scene = pytest.importorskip("sim.scene")
    av = pytest.importorskip("av")
    spec = scene.SceneSpec(width=480, height=270, fps=12.5, seconds=9.0, seed=4, night=False,
                           floors=18, throws=[scene.ThrowSpec(floor=12, t_release=2.0)])
    cal = scene.scene_calibration(spec)
    (tmp_path / "cam.cal.toml").write_text(cal.to_toml())
    frames, fps, _truth = scene.render_clip(spec)
    save_clip(tmp_path / "throw.npz", list(frames), fps)
    drv, ctx = start(make_ctx, [{"name": "tower-3", "calibration": "cam.cal.toml",
                                 "source": {"type": "npz", "path": "throw.npz", "realtime": False},
                                 "evidence": {"dir": "ev", "pre_s": 1.0, "post_s": 1.0}}], tmp_path)
    try:
        alarm = ctx.wait_event("thrown_object", timeout=20)
        saved = ctx.wait_event("evidence_saved", timeout=20)
        wait_until(lambda: drv.health().devices.get("tower-3") == "ended", timeout=20)
    finally:
        drv.stop()
    assert len(ctx.events("thrown_object")) == 1
    d = alarm.data
    assert alarm.severity == "alarm" and alarm.cls == "camera"
    assert abs(d["floor"] - 12) <= 1 and d["floor_range"][0] <= d["floor"] <= d["floor_range"][1]
    assert d["t_start"].endswith("Z") and d["t_start"] < d["t_end"] and alarm.ts == d["t_start"]
    assert 2 <= len(d["track"]) <= 24 and all(len(p) == 3 for p in d["track"])
    assert 0 < d["confidence"] <= 1 and d["drag"] is False
    snap, clip, manifest = (next(e for e in d["evidence"] if e["kind"] == k) for k in ("snapshot", "clip", "manifest"))
    folder = tmp_path / "ev" / "tower-3"
    snap_path = folder / snap["file"]
    assert hashlib.sha256(snap_path.read_bytes()).hexdigest() == snap["sha256"]
    assert saved.data["event_id"] == alarm.id and saved.data["file"] == clip["file"]
    clip_path = folder / clip["file"]
    assert hashlib.sha256(clip_path.read_bytes()).hexdigest() == saved.data["sha256"]
    assert saved.data["pre_seconds"] == pytest.approx(1.0, abs=0.1)   # the clip starts before the throw
    assert clip_path.suffix == ".mp4" and clip["content_type"] == "video/mp4"

    # the clip decodes, holds the recorded pictures and says in its header whose it is
    with av.open(str(clip_path)) as c:
        title = c.metadata.get("title", "")
        n = sum(1 for _ in c.decode(video=0))
    assert n == saved.data["frames"] and n >= (float(d["duration_s"]) + 2.0) * fps - 2   # pre + fall + post
    assert alarm.id in title and f"floor {d['floor']}" in title

    # the manifest, written after the alarm was committed, carries its seq and both files' hashes, signed
    man_path = folder / manifest["file"]
    assert saved.data["manifest"] == {"file": manifest["file"],
                                      "sha256": hashlib.sha256(man_path.read_bytes()).hexdigest()}
    doc = json.loads(man_path.read_text())
    assert doc["event"] == {"id": alarm.id, "seq": alarm.seq, "class": "camera", "device": "tower-3",
                            "type": "thrown_object", "ts": alarm.ts}
    assert {(f["name"], f["sha256"]) for f in doc["files"]} == {(snap["file"], snap["sha256"]),
                                                                (clip["file"], saved.data["sha256"])}
    assert doc["calibration_sha256"] == hashlib.sha256(cal.to_toml().encode()).hexdigest()
    assert doc["key"]["public_key"] == ctx.evidence_key.public.b64
    # the snapshot's caption names this event, its floor, the camera and the instant it shows (read from the JPEG)
    caption = Caption(site="s1", camera="tower-3", event_id=alarm.id, floor=d["floor"],
                      floor_range=tuple(d["floor_range"]), timezone="Asia/Shanghai")
    shows = datetime.fromisoformat(next(f for f in doc["files"] if f["kind"] == "snapshot")["shows"].replace("Z", "+00:00"))
    assert d["t_start"] <= iso_utc(shows) <= d["t_end"]
    picture = np.asarray(Image.open(snap_path).convert("RGB"))
    assert caption_mismatch(picture, caption.lines(shows)) < MATCH_MAX
    assert caption_mismatch(picture, caption.lines(shows + timedelta(seconds=1))) > MATCH_MAX

    verdicts = verify_folder(folder, ctx.evidence_key.public)
    assert [v.ok for v in verdicts] == [True], [v.problems for v in verdicts]
    sig = man_path.with_name(man_path.name + ".sig")
    assert sorted((eid, p.name) for eid, p in ctx.evidence_seen) == sorted(
        (alarm.id, name) for name in (snap["file"], clip["file"], man_path.name, sig.name))


def alarm_duration(d: dict[str, Any]) -> float:
    return float(d["duration_s"])


def test_the_shipped_example_is_a_valid_config() -> None:
    import tomllib
    path = Path(__file__).resolve().parents[3] / "examples" / "camera.toml"
    problems = Problems()
    cfg = CameraDriver.parse_config(tomllib.loads(path.read_text()), problems, path.parent)
    assert not problems, [str(p) for p in problems.items]
    cam = cfg.cameras[0]
    assert cam.source.type == "v4l2" and cam.calibration.max_floor == 18
    assert (cam.evidence.pre_s, cam.evidence.post_s, cam.evidence.keep_days) == (3.0, 3.0, 15.0)


# -- streams with packets ------------------------------------------------------------

def test_h264_throw_clip_is_the_streams_own_packets_from_a_keyframe(make_ctx, tmp_path: Path) -> None:
    scene = pytest.importorskip("sim.scene")
    av = pytest.importorskip("av")
    spec = scene.SceneSpec(width=480, height=270, fps=12.5, seconds=9.0, seed=4, night=False,
                           floors=18, throws=[scene.ThrowSpec(floor=12, t_release=3.0, size_px=8.0)])
    (tmp_path / "cam.cal.toml").write_text(scene.scene_calibration(spec).to_toml())
    frames, fps, _truth = scene.render_clip(spec)
    encode_h264(tmp_path / "throw.mp4", frames, fps, gop=12)     # a keyframe every 0.96 s
    drv, ctx = start(make_ctx, [{"name": "tower-3", "calibration": "cam.cal.toml",
                                 "source": {"type": "video", "path": "throw.mp4", "realtime": False},
                                 "evidence": {"dir": "ev", "pre_s": 1.0, "post_s": 1.0}}], tmp_path)
    try:
        alarm = ctx.wait_event("thrown_object", timeout=20)
        saved = ctx.wait_event("evidence_saved", timeout=20)
    finally:
        drv.stop()
    assert abs(alarm.data["floor"] - 12) <= 1
    clip = tmp_path / "ev" / "tower-3" / saved.data["file"]
    assert clip.suffix == ".mp4" and saved.data["content_type"] == "video/mp4"
    assert hashlib.sha256(clip.read_bytes()).hexdigest() == saved.data["sha256"]
    with av.open(str(clip)) as c:
        assert next(p for p in c.demux(video=0) if p.size).is_keyframe
    with av.open(str(clip)) as c:
        decoded = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    assert len(decoded) == saved.data["frames"]
    # it starts at the keyframe at or before pre_s ahead of the release, never after it
    assert 1.0 - 1e-3 <= saved.data["pre_seconds"] < 1.0 + 12 / fps + 1e-3
    assert len(decoded) >= (float(alarm.data["duration_s"]) + 2.0) * fps - 2
    with av.open(str(tmp_path / "throw.mp4")) as c:          # bit for bit the stream's pictures, no re-encode
        source = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    start_index = next(i for i, f in enumerate(source) if np.array_equal(f, decoded[0]))
    assert all(np.array_equal(a, b) for a, b in zip(decoded, source[start_index:]))


def test_unreachable_rtsp_camera_is_retried_with_backoff(make_ctx, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("av")
    server = SilentServer()
    pw = tmp_path / "pw"
    pw.write_text("hunter2\n")
    pw.chmod(0o600)
    url = f"rtsp://127.0.0.1:{server.port}/stream1"
    cam = camera({"type": "rtsp", "url": url, "username": "viewer", "password_file": str(pw),
                  "open_timeout_s": 0.5, "read_timeout_s": 0.5},
                 health={"no_frames_s": 1.0}, reconnect_s=0.3, reconnect_max_s=2.0)
    drv, ctx = start(make_ctx, [cam], tmp_path)
    try:
        fault = ctx.wait_event("camera_fault", timeout=10)
        wait_until(lambda: len(server.accepted) >= 4, timeout=20)
    finally:
        drv.stop()
        server.close()
    assert fault.data["reason"] == "no_frames" and fault.data["source"] == f"RTSP {url}"
    assert drv.health().devices["tower-3"] != "ok"
    gaps = np.diff(server.accepted[:4])
    assert gaps[2] > gaps[0] + 0.4                      # each retry waits longer (0.3, 0.6, 1.2 s after a try)
    lines = [r.getMessage() for r in caplog.records if "cannot open" in r.getMessage()]
    assert lines and all("no answer within open_timeout_s = 0.5 s" in m for m in lines)
    assert not any("hunter2" in r.getMessage() for r in caplog.records)


def test_pre_event_buffer_stays_in_its_bound_and_says_so(make_ctx, tmp_path: Path) -> None:
    save_clip(tmp_path / "c.npz", live(40))      # 480 x 270 grey at 10 fps: 9 s would be 11.7 MB
    cam = camera({"type": "npz", "path": "c.npz", "realtime": False, "loop": True}, telemetry_s=0.5,
                 evidence={"pre_s": 3.0, "track_s": 6.0, "ring_max_mb": 8})
    drv, ctx = start(make_ctx, [cam], tmp_path)
    try:
        def full() -> dict | None:
            seen = [v for dev, v in ctx.telemetry_seen if dev == "tower-3" and v["ring_seconds"] >= 8.9]
            return seen[-1] if seen else None
        tele = wait_until(full, timeout=20, message=lambda: f"telemetry {ctx.telemetry_seen[-1:]}")
    finally:
        drv.stop()
    assert tele["ring_mb"] <= 8 and tele["ring_max_mb"] == 8
    assert tele["ring_scale"] == 2 and tele["ring_dropped"] == 0     # downscaled, the whole 9 s kept
    assert drv.health().counters["tower-3.ring_scale"] == 2

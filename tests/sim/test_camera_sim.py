"""The simulated camera: its scene feed, its actions, and the real driver and `anfang sim` watching it."""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path

import numpy as np
import pytest

from drivers.camera import CameraDriver
from gateway.configfile import Problems
from sim.base import SimWorld, UnknownAction
from sim.camera import CameraSim
from tests.helpers import Subscriber, wait_until

SMALL = {"width": 480, "height": 270, "fps": 12.5, "floors": 16, "seed": 5, "pre_s": 1.0, "post_s": 1.0}


def world(tmp_path: Path) -> SimWorld:
    return SimWorld(state_dir=tmp_path / "sim")


def take(it, n: int) -> list[tuple[float, np.ndarray]]:
    return [next(it) for _ in range(n)]


def test_feed_time_runs_on_across_stretches(tmp_path: Path) -> None:
    cam = CameraSim("c1", SMALL, world(tmp_path))
    it = cam.feed.frames()
    first = take(it, 5)
    cam.act("bird", {"duration": 1.0})
    rest = take(it, 30)
    ts = [t for t, _ in first + rest]
    assert np.allclose(np.diff(ts), 1 / 12.5)
    assert first[0][1].shape == (270, 480) and first[0][1].dtype == np.uint8


def test_freeze_repeats_the_picture_then_lets_go(tmp_path: Path) -> None:
    cam = CameraSim("c1", SMALL, world(tmp_path))
    it = cam.feed.frames()
    take(it, 3)
    cam.act("freeze", {"duration": 1.0})
    frozen = take(it, 12)
    assert all(np.array_equal(frozen[0][1], f) for _, f in frozen[1:])
    after = take(it, 3)
    assert not np.array_equal(after[1][1], after[2][1])


def test_cover_darkens_the_picture(tmp_path: Path) -> None:
    cam = CameraSim("c1", SMALL, world(tmp_path))
    it = cam.feed.frames()
    assert take(it, 1)[0][1].mean() > 60
    cam.act("cover", {"duration": 0.5})
    dark = take(it, 3)
    assert all(f.mean() < 12 and f.std() < 3 for _, f in dark)


def test_actions_are_checked(tmp_path: Path) -> None:
    cam = CameraSim("c1", SMALL, world(tmp_path))
    with pytest.raises(UnknownAction):
        cam.act("explode", {})
    with pytest.raises(ValueError, match="floor"):
        cam.act("throw", {"floor": 40})
    with pytest.raises(ValueError, match="duration"):
        cam.act("rain", {"duration": -1})


def test_config_fragment_is_a_valid_camera_config(tmp_path: Path) -> None:
    cam = CameraSim("c1", SMALL, world(tmp_path))
    frag = cam.config()
    problems = Problems()
    cfg = CameraDriver.parse_config(frag, problems, tmp_path)
    assert not problems, [str(p) for p in problems.items]
    assert cfg.cameras[0].source.params["feed"] == "c1"
    assert cfg.cameras[0].calibration.max_floor == 16


def _driver_on(cam: CameraSim, w: SimWorld, make_ctx, tmp_path: Path, realtime: bool = False):
    frag = cam.config()
    frag["camera"][0]["source"]["realtime"] = realtime
    problems = Problems()
    cfg = CameraDriver.parse_config(frag, problems, tmp_path)
    ctx = make_ctx("camera", event_class="camera", resources=w.resources)
    drv = CameraDriver("camera", cfg, ctx)
    return drv, ctx


def test_driver_sees_a_simulated_throw_and_not_a_bird(make_ctx, tmp_path: Path) -> None:
    w = world(tmp_path)
    cam = CameraSim("c1", SMALL, w)
    cam.act("bird", {"duration": 3.0})
    cam.act("throw", {"floor": 11})
    drv, ctx = _driver_on(cam, w, make_ctx, tmp_path)
    drv.start()
    try:
        alarm = ctx.wait_event("thrown_object", timeout=20)
        ctx.wait_event("evidence_saved", timeout=20)
    finally:
        w.stopping.set()
        drv.stop()
    assert abs(alarm.data["floor"] - 11) <= 1
    assert len(ctx.events("thrown_object")) == 1
    assert {eid for eid, _ in ctx.evidence_seen} == {alarm.id}
    assert sorted(p.suffix for _, p in ctx.evidence_seen) == [".jpg", ".manifest", ".mp4", ".sig"]


def test_frozen_and_covered_simulated_camera_raise_faults(make_ctx, tmp_path: Path) -> None:
    w = world(tmp_path)
    cam = CameraSim("c1", SMALL, w)
    drv, ctx = _driver_on(cam, w, make_ctx, tmp_path)
    cam.act("freeze", {"duration": 7.0})      # feed seconds: health.frozen_s is 5 by default
    drv.start()
    try:
        assert ctx.wait_event("camera_fault", timeout=20).data["reason"] == "frozen"
        assert ctx.wait_event("camera_restore", timeout=20).data["reason"] == "frozen"
        cam.act("cover", {"duration": 12.0})
        assert ctx.wait_event(lambda e: e.type == "camera_fault" and e.data["reason"] == "covered",
                              timeout=20)
        ctx.wait_event(lambda e: e.type == "camera_restore" and e.data["reason"] == "covered", timeout=20)
    finally:
        w.stopping.set()
        drv.stop()
    assert ctx.events("thrown_object") == []


def test_anfang_sim_uploads_evidence_a_subscriber_receives(broker, tmp_path: Path) -> None:
    runner = pytest.importorskip("sim.runner")
    from sim.scenario import Action, DeviceSpec, Scenario
    from gateway.manifest import verify_folder
    from gateway.signing import PublicKey

    scenario = Scenario(name="camera-e2e", duration=60, devices=[DeviceSpec("camera", "tower-9", dict(SMALL))],
                        actions=[Action(at=0.5, do="throw", device="tower-9", params={"floor": 9})])
    sub = Subscriber(broker.host, broker.port, ["anfang/v1/sim/gw1/evidence/#", "anfang/v1/sim/gw1/event/camera/#",
                                                "anfang/v1/sim/gw1/health"])
    run = runner.SimRun(scenario, broker_url=broker.url, state_dir=tmp_path / "run", out=io.StringIO())
    t = threading.Thread(target=run.run, daemon=True)
    t.start()
    try:
        def done():
            events, evidence = sub.events(), [(m.topic, m.payload) for m in sub.received("/evidence/")]
            alarm = next((e for e in events if e["type"] == "thrown_object"), None)
            saved = next((e for e in events if e["type"] == "evidence_saved"), None)
            return (alarm, saved, evidence) if alarm and saved and len(evidence) >= 4 else None
        alarm, saved, evidence = wait_until(done, timeout=40, message=lambda: f"alarm and evidence; got {sub.events()}")
    finally:
        run.request_stop()
        t.join(30)
        sub.close()
    assert alarm["class"] == "camera" and alarm["device"] == "tower-9" and alarm["severity"] == "alarm"
    assert abs(alarm["data"]["floor"] - 9) <= 1
    topic = f"anfang/v1/sim/gw1/evidence/{alarm['id']}"
    payloads = [p for tp, p in evidence if tp == topic]
    digests = {hashlib.sha256(p).hexdigest() for p in payloads}
    snap = next(e for e in alarm["data"]["evidence"] if e["kind"] == "snapshot")
    assert snap["sha256"] in digests                       # the snapshot, as hashed in the alarm
    assert saved["data"]["sha256"] in digests              # the clip, as hashed when it was saved
    assert any(p[:2] == b"\xff\xd8" for p in payloads)
    # what arrived is checked as a platform would: saved under the names the messages carry, against the
    # key the gateway publishes in health
    received = tmp_path / "received"
    received.mkdir()
    for m in sub.received(f"/evidence/{alarm['id']}"):
        name = dict(m.properties.UserProperty)["name"]
        (received / name).write_bytes(m.payload)
    key = PublicKey.parse(sub.received("/health")[-1].json()["evidence_key"]["public_key"])
    verdicts = verify_folder(received, key)
    assert [(v.ok, v.event_id, v.seq) for v in verdicts] == [(True, alarm["id"], alarm["seq"])], verdicts


def test_a_fixed_scene_is_a_feed_for_the_synthetic_source() -> None:
    from detection.sources import SyntheticSource
    from sim.camera import SpecFeed
    from sim.scene import SceneSpec
    with SyntheticSource(SpecFeed(SceneSpec(width=160, height=120, fps=10.0, seconds=1.0, seed=3))) as src:
        frames = list(src)
    assert len(frames) == 10
    assert frames[0].gray.shape == (120, 160) and frames[0].gray.dtype == np.uint8
    assert frames[1].t == pytest.approx(0.1)


def test_old_param_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'pre_seconds' is renamed: use 'pre_s'"):
        CameraSim("c1", {**SMALL, "pre_seconds": 2.0}, world(tmp_path))

"""Camera health on its own: frozen pictures, covered and blinded lenses, silence, and restore."""

from __future__ import annotations

import numpy as np

from detection.health import CameraHealth, HealthSettings

RNG = np.random.default_rng(5)
SCENE = RNG.integers(40, 200, (90, 160)).astype(np.uint8)


def live() -> np.ndarray:
    return np.clip(SCENE + RNG.normal(0, 2, SCENE.shape), 0, 255).astype(np.uint8)


def run(mon: CameraHealth, frames, t0: float, fps: float = 10.0):
    changes = []
    for i, f in enumerate(frames):
        c = mon.frame(t0 + i / fps, f)
        if c:
            changes.append((round(t0 + i / fps, 2), c.kind, c.reason))
    return changes


def test_a_normal_camera_raises_nothing() -> None:
    assert run(CameraHealth(), [live() for _ in range(300)], 0.0) == []


def test_frozen_picture_is_a_fault_after_its_time_then_restores() -> None:
    mon = CameraHealth(HealthSettings(frozen_s=5, restore_s=3))
    still = live()
    changes = run(mon, [still] * 80, 0.0)           # 8 s of the same picture
    assert changes == [(5.1, "fault", "frozen")]    # first repeat at 0.1 s + 5 s
    assert mon.fault == "frozen"
    changes = run(mon, [live() for _ in range(50)], 8.0)
    assert changes == [(11.0, "restore", "frozen")]
    assert mon.fault is None


def test_short_freeze_is_not_a_fault() -> None:
    still = live()
    assert run(CameraHealth(), [still] * 30 + [live() for _ in range(30)], 0.0) == []


def test_covered_lens_then_uncovered() -> None:
    mon = CameraHealth(HealthSettings(covered_s=10))
    dark = [np.clip(8 + RNG.normal(0, 1, SCENE.shape), 0, 255).astype(np.uint8) for _ in range(120)]
    changes = run(mon, dark, 0.0)
    assert changes == [(10.0, "fault", "covered")]
    assert run(mon, [live() for _ in range(40)], 12.0) == [(15.0, "restore", "covered")]


def test_blinded_by_a_light() -> None:
    mon = CameraHealth(HealthSettings(covered_s=2))
    white = [np.clip(250 + RNG.normal(0, 1, SCENE.shape), 0, 255).astype(np.uint8) for _ in range(30)]
    assert run(mon, white, 0.0) == [(2.0, "fault", "blinded")]


def test_dark_night_scene_with_detail_is_not_covered() -> None:
    night = (SCENE // 6).astype(np.uint8)          # dark but with contrast (lit windows, IR)
    frames = [np.clip(night + RNG.normal(0, 1.5, SCENE.shape), 0, 255).astype(np.uint8) for _ in range(200)]
    assert run(CameraHealth(), frames, 0.0) == []


def test_no_frames_then_frames_again() -> None:
    mon = CameraHealth(HealthSettings(no_frames_s=5, restore_s=1))
    assert mon.frame(0.0, live()) is None
    assert mon.idle(3.0) is None
    c = mon.idle(5.5)
    assert c is not None and (c.kind, c.reason) == ("fault", "no_frames")
    assert mon.idle(6.0) is None                    # reported once
    assert run(mon, [live() for _ in range(20)], 7.0) == [(8.0, "restore", "no_frames")]


def test_a_source_that_never_delivered() -> None:
    mon = CameraHealth(HealthSettings(no_frames_s=2))
    assert mon.idle(100.0) is None
    c = mon.idle(102.5)
    assert c is not None and c.reason == "no_frames"

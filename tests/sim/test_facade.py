"""Generator B (sim/facade): its physics, sensor, codec, calibration, distractors and CLI, on small frames."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detection.calibration import load_calibration
from sim.facade import DISTRACTOR_KINDS, calibration, random_clip, render_clip
from sim.facade.codec import h264_roundtrip, parse_bitrate
from sim.facade.physics import G, integrate_fall
from sim.facade.sensor import GAMMA, Sensor, SensorModel
from sim.facade.sprites import SpritePath, draw_sprite

ROOT = Path(__file__).resolve().parents[2]


# -- physics -----------------------------------------------------------------------------------------------

def test_a_dense_object_falls_with_g():
    fall = integrate_fall((0.0, 20.0, 60.0), (0.0, 0.0, 0.0), terminal_mps=1e6, t_max=3.0)
    i = np.searchsorted(fall.t, 3.0) - 1
    t = fall.t[i]
    assert fall.pos[i, 2] == pytest.approx(60.0 - G * t * t / 2, abs=0.01)
    assert fall.vel[i, 2] == pytest.approx(-G * t, abs=0.01)


def test_drag_is_bounded_by_vacuum_and_terminal_speed():
    light = integrate_fall((0.0, 20.0, 90.0), (0.0, -2.0, 0.0), terminal_mps=8.0, t_max=6.0)
    vacuum = 90.0 - G * light.t ** 2 / 2
    assert (light.pos[:, 2] >= vacuum - 1e-6).all()                      # never falls faster than in a vacuum
    assert light.speed.max() <= 8.0 * 1.01 + 2.0                          # never past terminal (plus the throw)
    late = light.t > 4.0
    assert np.abs(light.vel[late, 2]).min() > 0.95 * 8.0                # reaches its terminal speed
    dense = integrate_fall((0.0, 20.0, 90.0), (0.0, 0.0, 0.0), terminal_mps=45.0, t_max=6.0)
    assert dense.t[-1] < light.t[-1] and dense.pos[-1, 2] <= 0.0          # lands first, on the ground


def _falling_disk(line_time: float, speed_px_s: float = 3000.0, vx_px_s: float = 0.0) -> np.ndarray:
    t = np.linspace(0.0, 0.1, 200)
    path = SpritePath(t=t, u=50 + vx_px_s * t, v=10 + speed_px_s * t, size=8 + 0 * t, aspect=1 + 0 * t,
                      angle=0 * t, radiance=1 + 0 * t)
    img = np.zeros((200, 100), dtype=np.float32)
    assert draw_sprite(img, path, t0=0.0, line_time=line_time, exposure=1e-5)
    return img


def test_rolling_shutter_stretches_a_falling_object():
    rows_global = np.nonzero(_falling_disk(0.0).max(axis=1) > 0.5)[0]
    rows_rolling = np.nonzero(_falling_disk(1e-4).max(axis=1) > 0.5)[0]
    # rows read later see the object lower: the image of an object falling at V is 1 / (1 - V lt) taller
    assert len(rows_rolling) > 1.3 * len(rows_global)


def test_rolling_shutter_skews_a_moving_object():
    img = _falling_disk(1e-4, speed_px_s=0.0, vx_px_s=20000.0)
    rows = np.nonzero(img.max(axis=1) > 0.5)[0]
    cols = np.arange(img.shape[1])
    cx = [(img[r] * cols).sum() / img[r].sum() for r in (rows[1], rows[-2])]
    assert cx[1] - cx[0] == pytest.approx(20000.0 * 1e-4 * (rows[-2] - rows[1]), rel=0.2)


def test_motion_blur_keeps_the_light_and_spreads_it():
    t = np.linspace(0.0, 0.1, 200)
    path = SpritePath(t=t, u=50 + 0 * t, v=10 + 2000 * t, size=6 + 0 * t, aspect=1 + 0 * t, angle=0 * t,
                      radiance=1 + 0 * t)
    sharp = np.zeros((200, 100), dtype=np.float32)
    blurred = np.zeros((200, 100), dtype=np.float32)
    draw_sprite(sharp, path, 0.02, 0.0, 1e-5)
    draw_sprite(blurred, path, 0.02, 0.0, 0.02)                           # moves 40 px during the exposure
    assert blurred.sum() == pytest.approx(sharp.sum(), rel=0.1)
    assert blurred.max() < 0.5 * sharp.max()
    assert (blurred > 0.01).sum() > 4 * (sharp > 0.01).sum()


# -- sensor ------------------------------------------------------------------------------------------------

def _flat_frames(electrons_per_unit_s: float, n: int = 40) -> tuple[np.ndarray, Sensor]:
    model = SensorModel(prnu=0.0, dsnu_e=0.0, hot_fraction=0.0, vignetting=0.0)
    sensor = Sensor(model, 64, 48, np.random.default_rng(1))
    img = np.full((48, 64), 0.5, dtype=np.float32)
    sensor.settle(0.5, electrons_per_unit_s)
    return np.stack([sensor.capture(img, electrons_per_unit_s)[0] for _ in range(n)]), sensor


def test_shot_noise_follows_the_photon_count():
    frames, sensor = _flat_frames(2e5)
    e = 0.5 * 2e5 * sensor.exposure_s
    s = e * sensor.gain / sensor.model.full_well_e                       # linear signal, 0..1
    slope = 255 * GAMMA * s ** (GAMMA - 1)                                # DN per unit of linear signal
    predicted = slope * math.sqrt(e + sensor.model.read_noise_e ** 2) * sensor.gain / sensor.model.full_well_e
    measured = frames.astype(float).std(axis=0).mean()
    assert measured == pytest.approx(predicted, rel=0.15)


def test_night_is_noisier_than_day_at_the_same_brightness():
    day, _ = _flat_frames(2e6)
    night, sensor = _flat_frames(5e3)
    assert sensor.gain > 1.0                                              # the dark scene is amplified
    assert abs(day.mean() - night.mean()) < 12                            # auto-exposure: about as bright
    assert night.astype(float).std(axis=0).mean() > 3 * day.astype(float).std(axis=0).mean()


def test_fixed_pattern_noise_stays_put_and_hot_pixels_show():
    model = SensorModel(hot_fraction=1e-3, dsnu_e=3.0, prnu=0.02, vignetting=0.3)
    sensor = Sensor(model, 200, 100, np.random.default_rng(4))
    img = np.full((100, 200), 0.02, dtype=np.float32)
    sensor.settle(0.02, 1e4)
    frames = np.stack([sensor.capture(img, 1e4)[0] for _ in range(30)]).astype(float)
    mean = frames.mean(axis=0)
    assert mean[50, 100] > mean[2, 2] + 3                                # vignetting: corners darker
    half_a, half_b = frames[:15].mean(axis=0), frames[15:].mean(axis=0)
    assert np.corrcoef(half_a.ravel(), half_b.ravel())[0, 1] > 0.5       # the pattern repeats frame to frame
    assert (mean > np.median(mean) + 40).sum() >= 5                       # hot pixels


def test_auto_exposure_steps_after_a_change_of_light():
    model = SensorModel(prnu=0.0, dsnu_e=0.0, hot_fraction=0.0, vignetting=0.0, ae_step=1.3)
    sensor = Sensor(model, 32, 32, np.random.default_rng(2))
    sensor.settle(0.5, 1e5)
    img = np.full((32, 32), 0.5, dtype=np.float32)
    means = []
    for i in range(30):
        frame, lin = sensor.capture(img * (0.3 if i >= 5 else 1.0), 1e5)
        sensor.meter(lin)
        means.append(frame.mean())
    assert means[5] < means[4] - 20                                       # the scene darkens at once
    steps = np.diff(means[5:])
    assert (steps > 2).sum() >= 2                                         # then comes back in steps
    assert means[-1] == pytest.approx(means[0], abs=15)


# -- codec -------------------------------------------------------------------------------------------------

def test_parse_bitrate():
    assert parse_bitrate("4M") == 4_000_000 and parse_bitrate("2.5M") == 2_500_000 and parse_bitrate("800k") == 800_000
    with pytest.raises(ValueError, match="bad bit rate"):
        parse_bitrate("fast")


def test_h264_round_trip_changes_frames_but_keeps_size_and_shape():
    rng = np.random.default_rng(3)
    frames = np.clip(100 + rng.normal(0, 4, (20, 96, 160)), 0, 255).astype(np.uint8)
    for i in range(20):
        frames[i, 20 + 2 * i: 28 + 2 * i, 60:68] = 220                  # an 8 px square moving down
    out = h264_roundtrip(frames, 25.0, "2M")
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert not np.array_equal(out, frames)
    assert np.abs(out.astype(int) - frames).mean() < 6
    for i in (5, 15):
        blob = out[i].astype(int) > 160
        ys, xs = np.nonzero(blob)
        assert 32 <= blob.sum() <= 100                                    # about 64 px
        assert ys.mean() == pytest.approx(23.5 + 2 * i, abs=1.0) and xs.mean() == pytest.approx(63.5, abs=1.0)


# -- clips, calibration, distractors ------------------------------------------------------------------------

def test_calibration_matches_the_projected_floors():
    spec = random_clip(11, "throw", 320, 180, seconds=3.0)
    cal = calibration(spec)
    cam, fa = spec.camera, spec.facade
    for f, y in cal.floors:
        _, v, _ = cam.project(np.array(0.0), np.array(cam.distance_m), np.array((f - 1) * fa.floor_m))
        assert y == pytest.approx(float(v), abs=0.1)
    gaps = -np.diff([y for _, y in cal.floors])
    assert (gaps > 0).all() and gaps[-1] < gaps[0]                        # perspective: upper floors closer
    _, _, truth = render_clip(dataclasses.replace(spec, seconds=0.2))
    th = truth.throws[0]
    assert math.floor(cal.height_at(th.release_xy[1])) == th.floor       # the release point is on its floor
    assert cal.image_width == 320 and cal.image_height == 180


@pytest.mark.parametrize("kind", DISTRACTOR_KINDS)
def test_each_distractor_kind_renders_and_is_deterministic(kind):
    # by day, at this size, raindrops are under a pixel and faint (as on a real camera): rain at night, IR-lit
    night = True if kind == "rain" else None
    spec = random_clip(5, kind, 320, 180, seconds=3.0, night=night)
    frames, fps, truth = render_clip(spec)
    again, _, _ = render_clip(random_clip(5, kind, 320, 180, seconds=3.0, night=night))
    assert frames.shape == (75, 180, 320) and fps == 25.0
    assert np.array_equal(frames, again)
    assert truth.kinds == [kind] and not truth.throws
    plain, _, _ = render_clip(dataclasses.replace(spec, distractors=[]))
    changed = np.abs(frames.astype(int) - plain) > 10
    assert changed.sum() > 20                                              # the distractor shows


def test_throw_sizes_follow_the_bins():
    sizes = [render_clip(dataclasses.replace(random_clip(s, "throw", 320, 180, size_bin=b), seconds=6.0))[2].throws[0].size_px
             for s, b in ((1, 0), (2, 1), (3, 2), (4, 3))]
    assert sizes[0] < 4 and 2 < sizes[1] < 8 and 4 < sizes[2] < 16 and sizes[3] > 9
    assert sizes == sorted(sizes)


def test_unknown_kind_is_refused_with_the_list():
    with pytest.raises(ValueError, match="unknown clip kind 'hail'.*bird_glide"):
        random_clip(1, "hail")


# -- the CLI and anfang detect ------------------------------------------------------------------------------

@pytest.mark.parametrize("bitrate", [None, "4M"])
def test_cli_writes_what_anfang_detect_reads(tmp_path, bitrate):
    out = tmp_path / "clip"
    cmd = [sys.executable, "-m", "sim.facade", "render", "--seed", "3", "--kind", "throw", "--size", "320x180",
           "--seconds", "3", "--out", str(out)] + (["--bitrate", bitrate] if bitrate else [])
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, timeout=120)
    clip = out / ("clip.mp4" if bitrate else "clip.npz")
    assert clip.exists()
    truth = json.loads((out / "truth.json").read_text())
    assert truth["kind"] == "throw" and truth["throws"][0]["floor"] >= 2
    cal = load_calibration(out / "calibration.toml")
    assert cal.image_width == 320
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "detect", str(clip), "--calibration",
                           str(out / "calibration.toml"), "--json"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    for line in proc.stdout.splitlines():
        assert {"t_start", "t_end", "floor", "track"} <= set(json.loads(line))


def test_cli_refuses_bad_arguments_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sim.facade", "render", "--seed", "1", "--size", "big",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--size" in proc.stderr

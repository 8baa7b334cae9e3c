"""The new stages on small arrays: blob orientation, the rain field, the evidence for gravity,
standing tracks, and a throw through an H.264 round trip at a camera's bit rate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detection import stages
from detection.calibration import Calibration
from detection.settings import DetectorSettings
from detection.tracking import Track, TrackPoint, Tracker
from detection.trajectory import gravity_evidence, judge_track, steady_rms

FPS = 25.0


def blob_at(x: float, y: float, angle: float = math.pi / 2, elongation: float = 5.0) -> stages.Blob:
    return stages.Blob(x=x, y=y, area_px=16, cells=1, x0=int(x) - 2, y0=int(y) - 2, x1=int(x) + 2, y1=int(y) + 2,
                       peak=50, angle=angle, elongation=elongation)


# -- blob shape ---------------------------------------------------------------------------------------
def test_blob_orientation_and_elongation_from_the_mask():
    m = np.zeros((40, 40), dtype=bool)
    m[2:12, 5] = True                       # a vertical streak, 10 cells
    m[20:22, 20:23] = True                  # a compact blob
    for i in range(9):                      # a streak slanted about 18 degrees from the vertical
        m[28 + i, 30 + i // 3] = True
    blobs, _ = stages.blobs_from_mask(m, m.astype(np.int16) * 40, 4)
    by_x = sorted(blobs, key=lambda b: b.x)
    vertical, compact, slanted = by_x
    assert abs(vertical.angle - math.pi / 2) < 0.01 and vertical.elongation > 8
    assert compact.elongation < 2
    assert 0.2 < math.pi / 2 - slanted.angle < 0.45 and slanted.elongation > 4


# -- the rain field -----------------------------------------------------------------------------------
def test_rain_field_matches_streaks_along_it_and_not_a_round_object():
    rng = np.random.default_rng(1)
    slant = math.pi / 2 - 0.3                       # wind: every streak leans the same way
    rain = [blob_at(x, y, slant + rng.normal(0, 0.05)) for x, y in rng.uniform(0, 120, (12, 2))]
    field = stages.streak_field(rain, (128, 128), 64, 2.5)
    n, coherence, theta = field.at(60, 60)
    assert n == 12 and coherence > 0.9 and abs(theta - slant) < 0.1
    args = (2.5, 4, 0.5, math.radians(20))
    assert stages.matches_field(blob_at(60, 60, slant), field, *args)
    assert not stages.matches_field(blob_at(60, 60, slant, elongation=1.2), field, *args)   # round: an object
    assert not stages.matches_field(blob_at(60, 60, 0.0), field, *args)                      # across the rain


def test_rain_field_needs_parallel_streaks():
    rng = np.random.default_rng(2)
    random_dirs = [blob_at(x, y, a) for (x, y), a in zip(rng.uniform(0, 120, (12, 2)), rng.uniform(0, math.pi, 12))]
    field = stages.streak_field(random_dirs, (128, 128), 64, 2.5)
    _, coherence, _ = field.at(60, 60)
    assert coherence < 0.5                          # snow or codec noise: no direction
    assert not stages.matches_field(blob_at(60, 60, math.pi / 2), field, 2.5, 4, 0.5, math.radians(20))


def test_few_streaks_are_no_field():
    field = stages.streak_field([blob_at(60, 60), blob_at(70, 62)], (128, 128), 64, 2.5)
    assert not stages.matches_field(blob_at(65, 61), field, 2.5, 4, 0.5, math.radians(20))


# -- the evidence for gravity ---------------------------------------------------------------------------
def straight_calibration(h: int = 600, floors: int = 20) -> Calibration:
    """Evenly spaced floors, 30 px each: floor 1 at the bottom."""
    return Calibration(floors=tuple((f, h - 30.0 * (f - 1)) for f in range(1, floors + 1)),
                       image_width=400, image_height=h)


def track_of(ts: np.ndarray, ys: np.ndarray, xs: np.ndarray | None = None) -> Track:
    xs = np.full_like(ys, 200.0) if xs is None else xs
    return Track(1, [TrackPoint(float(t), float(x), float(y), 16, 60) for t, x, y in zip(ts, xs, ys)])


def test_gravity_evidence_separates_a_fall_from_a_steady_sink():
    t = np.arange(30) / FPS
    w = np.full(30, 900.0)
    ppf = np.full(30, 30.0)
    fall = 15.0 - 0.5 * 9.81 * t * t / 3.0          # floors, from rest
    glide = 15.0 - 1.2 * t                          # a steady 3.6 m/s
    noise = np.random.default_rng(3).normal(0, 0.3 / 30, 30)
    assert steady_rms(t, glide + noise, w, ppf) < 0.5
    assert gravity_evidence(t, fall + noise, w, ppf, 0.3, 0.5) > 100
    assert gravity_evidence(t, glide + noise, w, ppf, 0.3, 0.5) < 25
    slowing = 15.0 - 2.0 * t + 0.8 * t * t          # a flare: the sink slows
    assert steady_rms(t, slowing, w, ppf) < 1e-6


def test_a_steady_descent_across_floors_is_not_a_throw():
    cal = straight_calibration()
    s = DetectorSettings()
    t = np.arange(60) / FPS
    glide = track_of(t, 100 + 40.0 * t, 150 + 50.0 * t)     # 40 px/s down (4 m/s), sideways 50 px/s
    fit = judge_track(glide, cal, s, FPS)
    assert not fit.accepted and fit.reason in ("steady", "no_acceleration", "too_slow"), fit.reason
    fall = track_of(t[:40], 100 + 0.5 * 9.81 * t[:40] ** 2 * 10.0)   # 10 px per metre, from rest
    assert judge_track(fall, cal, s, FPS).accepted


# -- standing tracks and continuing blobs -----------------------------------------------------------------
def test_standing_tracks_and_continuing_blobs():
    s = DetectorSettings()
    tr = Tracker(s, FPS)
    for i in range(14):
        t = i / FPS
        blobs = [blob_at(50.3 + 0.2 * (i % 2), 40.0), blob_at(120.0, 20.0 + 0.5 * 9.81 * t * t * 30)]
        tr.update(blobs, t)
    pos = tr.static_positions(s.static_track_frames, s.static_track_px)
    assert len(pos) == 1 and abs(pos[0][0] - 50.4) < 0.5         # the standing one, not the fall
    t = 14 / FPS
    nxt = [blob_at(120.0, 20.0 + 0.5 * 9.81 * t * t * 30), blob_at(300.0, 300.0)]
    assert tr.continuing(nxt, t, 3).tolist() == [True, False]


# -- compressed streams ------------------------------------------------------------------------------------
def test_h264_roundtrip_keeps_shape_and_picture():
    pytest.importorskip("av")
    from sim.h264 import h264_roundtrip
    frames = np.random.default_rng(4).integers(60, 200, (12, 64, 96), dtype=np.uint8)
    frames[:] = frames[0]
    out = h264_roundtrip(frames, FPS, 1_000_000)
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - frames).mean() < 12
    with pytest.raises(ValueError, match="even"):
        h264_roundtrip(frames[:, :63], FPS, 1_000_000)


def test_throw_through_h264_at_4_mbits_720p_is_found():
    pytest.importorskip("av")
    from detection.detector import ThrowDetector
    from sim.h264 import h264_roundtrip
    from sim.scene import SceneSpec, ThrowSpec, render_clip, scene_calibration
    spec = SceneSpec(width=1280, height=720, seconds=3.4, seed=6,
                     throws=[ThrowSpec(floor=10, t_release=0.8, size_px=6)])
    frames, fps, truth = render_clip(spec)
    frames = h264_roundtrip(frames, fps, 4_000_000)
    det = ThrowDetector(scene_calibration(spec), fps=fps)
    found = [d for i, f in enumerate(frames) for d in det.process(f, i / fps)] + det.flush()
    assert [abs(d.floor - 10) <= 1 for d in found] == [True], det.stats


def test_late_sideways_speed_follows_the_verticals_and_catches_a_glider():
    from detection.trajectory import late_sideways_mps
    u = np.arange(50) / FPS
    y = 100 + 200 * u
    scale = np.full(50, 10.0)                                   # px per metre
    vp = (320.0, -400.0)
    straight = vp[0] + (200.0 - vp[0]) * (y - vp[1]) / (300 - vp[1])   # a fall along a converging vertical
    assert late_sideways_mps(u, straight, y, scale, 0.3, vp) < 0.05
    assert late_sideways_mps(u, straight, y, scale, 0.3, None) > 1.0   # without the vanishing point it looks sideways
    glider = straight + 40.0 * u                                # about 4 m/s sideways in the picture
    assert late_sideways_mps(u, glider, y, scale, 0.3, vp) > 2.0      # well above drag_max_late_sideways_mps
    assert late_sideways_mps(u[:8], glider[:8], y[:8], scale[:8], 0.3, vp) is None   # too few late points

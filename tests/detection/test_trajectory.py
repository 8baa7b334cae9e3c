"""Tracking and the fall decision on synthetic tracks (no images)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detection.calibration import Calibration
from detection.floor import estimate_floor
from detection.settings import DetectorSettings
from detection.stages import Blob
from detection.tracking import Track, TrackPoint, Tracker
from detection.trajectory import fall_distance, judge_track

FPS = 25.0
# 30 floors, upper floors closer together (perspective), 720 rows
CAL = Calibration(floors=tuple((f, 700.0 - 40.0 * (f - 1) + 0.35 * (f - 1) ** 2) for f in range(1, 31)),
                  columns=((1, 100.0), (2, 200.0), (3, 300.0)))


def fall_track(floor_h: float, *, vt: float = math.inf, t_rel: float = 1.0, hold: float = 0.3,
               x: float = 200.0, noise: float = 0.3, seed: int = 0) -> Track:
    rng = np.random.default_rng(seed)
    pts = []
    t = t_rel - hold
    while True:
        d = float(fall_distance(np.array(t - t_rel), vt, 9.81)) / 3.0
        h = floor_h - d
        y = float(CAL.y_at(h))
        if h < 1.0:
            break
        pts.append(TrackPoint(t, x + rng.normal(0, noise), y + rng.normal(0, noise), 20, 80))
        t += 1 / FPS
    return Track(1, pts)


def test_fall_distance_free_and_with_drag():
    u = np.array([0.0, 1.0, 2.0])
    assert fall_distance(u, math.inf, 9.81).tolist() == [0.0, 4.905, 19.62]
    drag = fall_distance(np.array([10.0]), 8.0, 9.81)[0]
    assert drag == pytest.approx(8.0 * (10 - 8.0 / 9.81 * math.log(2)))   # at terminal speed: vt * (u - vt/g ln 2)
    assert fall_distance(np.array([-1.0]), 8.0, 9.81)[0] == 0.0


def test_free_fall_from_floor_12_is_a_throw_from_floor_12():
    fit = judge_track(fall_track(12.4), CAL, DetectorSettings(), FPS)
    assert fit.accepted, fit.reason
    assert not fit.drag
    est = estimate_floor(fit, CAL)
    assert est.floor == 12 and est.floor_range[0] <= 12 <= est.floor_range[1]
    assert est.column == 2
    assert abs(fit.t0 - 1.0) < 0.1


def test_fall_with_drag_counts_and_is_flagged():
    fit = judge_track(fall_track(20.3, vt=8.0), CAL, DetectorSettings(), FPS)
    assert fit.accepted, fit.reason
    assert fit.drag
    assert estimate_floor(fit, CAL).floor == 20


def test_rejections_level_upward_slow_short_and_steady():
    s = DetectorSettings()
    level = Track(1, [TrackPoint(i / FPS, 100 + 8 * i, 300.0, 20, 80) for i in range(40)])
    assert judge_track(level, CAL, s, FPS).reason == "not_down"
    up = Track(2, [TrackPoint(i / FPS, 100 + 3 * i, 400.0 - 4 * i, 20, 80) for i in range(40)])
    assert judge_track(up, CAL, s, FPS).reason == "not_down"
    short = Track(3, fall_track(12.4).points[:4])
    assert judge_track(short, CAL, s, FPS).reason == "too_short"
    # a leaf: from rest to 1.5 m/s, over a little more than two floors
    leaf = fall_track(25.0, vt=1.5, noise=0.1)
    leaf.points = [p for p in leaf.points if p.t < 6.0]
    assert judge_track(leaf, CAL, s, FPS).reason in ("too_slow", "no_acceleration")
    # snow near the lens: steady speed in the image from the first frame
    steady = Track(5, [TrackPoint(i / FPS, 300.0, 100.0 + 6 * i, 20, 80) for i in range(60)])
    assert not judge_track(steady, CAL, s, FPS).accepted
    # swaying sideways while falling
    sway = fall_track(15.0)
    for p in sway.points:
        p.x += 25 * math.sin(2 * math.pi * p.t)
    assert judge_track(sway, CAL, s, FPS).reason == "erratic"


def test_tracker_links_a_fall_that_jumps_farther_than_its_size():
    tr = Tracker(DetectorSettings(), FPS)
    truth = fall_track(25.0, noise=0.0, hold=0.0)
    ended = []
    for p in truth.points:
        blob = Blob(x=p.x, y=p.y, area_px=16, cells=1, x0=int(p.x) - 2, y0=int(p.y) - 2, x1=int(p.x) + 2,
                    y1=int(p.y) + 2, peak=80)
        clutter = Blob(x=p.x + 60, y=p.y - 50, area_px=16, cells=1, x0=0, y0=0, x1=1, y1=1, peak=90)
        ended += tr.update([blob, clutter], p.t)
    ended += tr.flush()
    longest = max(ended, key=lambda t: len(t.points))
    assert len(longest.points) == len(truth.points)
    steps = np.diff([p.y for p in longest.points])
    assert steps.max() > 15                                     # it did jump far per frame near the ground


def test_a_track_that_started_on_something_else_is_judged_again_after_the_jump():
    from detection.trajectory import judge_with_trim, trim_candidates
    s = DetectorSettings()
    tr = fall_track(15.4)
    # a snowflake drifting past the window was tracked first, then the track took over the object
    flake = [TrackPoint(tr.points[0].t - (6 - k) / FPS, 270.0 + k, float(CAL.y_at(17.5)) + k, 8, 40)
             for k in range(6)]
    captured = Track(1, flake + tr.points)
    assert trim_candidates(captured, s.trim_jump_px, s.trim_max_tries, s.min_track_points) == [6]
    plain = judge_track(captured, CAL, s, FPS)
    assert not plain.accepted
    fit, used = judge_with_trim(captured, CAL, s, FPS)
    assert fit.accepted and used.points[0] is tr.points[0]
    assert estimate_floor(fit, CAL).floor == 15
    assert fit.details["trimmed_points"] == 6

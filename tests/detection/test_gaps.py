"""A fall that other things try to capture, or that vanishes for a moment: the fit-based gate,
track priority, stitching, the clutter jump rule; and generated throws under headlights and shake."""

from __future__ import annotations

import math

import numpy as np

from detection.detector import ThrowDetector
from detection.settings import DetectorSettings
from detection.stages import Blob
from detection.stitching import Fragments, continuation, join
from detection.tracking import Track, TrackPoint, Tracker, track_gate
from detection.trajectory import judge_track, sideways_jump
from sim.scene import random_scene, render_clip, scene_calibration
from tests.detection.test_trajectory import CAL, FPS, fall_track

S = DetectorSettings()


def blob(x: float, y: float, peak: int = 80) -> Blob:
    return Blob(x=x, y=y, area_px=16, cells=1, x0=int(x) - 2, y0=int(y) - 2, x1=int(x) + 2, y1=int(y) + 2, peak=peak)


def test_gate_shrinks_for_a_track_that_keeps_to_its_path_and_grows_with_a_gap():
    general = track_gate(20, 10.0, None, 0, S)
    assert general == S.track_gate_px + S.track_gate_speed * 10.0
    tight = track_gate(20, 10.0, 0.3, 0, S)
    assert tight < general and tight == S.gate_fit_min_px + S.gate_fit_k * 0.3 + S.gate_fit_speed * 10.0
    assert track_gate(S.gate_fit_points - 1, 10.0, 0.3, 0, S) == general     # too few points to trust
    assert track_gate(20, 10.0, 5.0, 0, S) == general                          # a noisy track: never wider
    assert track_gate(20, 10.0, 0.3, 2, S) == 2 * tight                        # two frames unseen
    assert track_gate(1, 0.0, None, 0, S) == S.track_start_radius_px


def test_a_clean_fall_is_not_captured_by_a_streak_beside_its_path():
    tr = Tracker(S, FPS)
    # an object falling 4 px/frame, accelerating; then it leaves and a streak appears 9 px off its path
    ys = [100 + 4 * k + 0.1 * k * k for k in range(12)]
    for k, y in enumerate(ys):
        tr.update([blob(200.0, y)], k / FPS)
    k = len(ys)
    pred_y = 100 + 4 * k + 0.1 * k * k
    tr.update([blob(209.0, pred_y)], k / FPS)                 # not the object: 9 px beside the path
    fall = max(tr.tracks, key=lambda t: len(t.points))
    assert len(fall.points) == 12 and fall.points[-1].x == 200.0


def test_an_established_track_keeps_its_object_from_a_new_track_nearby():
    tr = Tracker(S, FPS)
    for k in range(6):
        tr.update([blob(100.0, 50.0 + 0.2 * k)], k / FPS)
    tr.update([blob(100.0, 51.2), blob(100.0, 64.0)], 6 / FPS)    # a new track starts (a ghost, a flake)
    # the object, 4 px off its track's prediction: relative to the new track's wide start
    # radius it is nearer the new track, but the track that followed it chooses first
    tr.update([blob(100.0, 55.4)], 7 / FPS)
    old = min(tr.tracks, key=lambda t: t.id)
    assert len(old.points) == 8 and old.points[-1].y == 55.4


def test_stitching_joins_a_fall_split_by_a_gap_and_refuses_unrelated_tracks():
    whole = fall_track(12.0, t_rel=1.0, hold=0.3)
    pts = whole.points
    cut = len(pts) // 2
    first = Track(1, pts[:cut])
    later = Track(2, pts[cut + 8:])                            # 8 frames (0.32 s) unseen
    assert not judge_track(first, CAL, S, FPS).accepted or not judge_track(later, CAL, S, FPS).accepted
    cont = continuation(first, later, S)
    assert cont is not None
    joined = join(first, cont, later)
    assert judge_track(joined, CAL, S, FPS).accepted
    # too late, too far sideways, or above where the first ended: not a continuation
    late = Track(3, [TrackPoint(p.t + 1.0, p.x, p.y, p.area_px, p.peak) for p in later.points])
    side = Track(4, [TrackPoint(p.t, p.x + 40, p.y, p.area_px, p.peak) for p in later.points])
    up = Track(5, [TrackPoint(p.t, p.x, p.y - 60, p.area_px, p.peak) for p in later.points])
    assert continuation(first, late, S) is None
    assert continuation(first, side, S) is None
    assert continuation(first, up, S) is None
    frags = Fragments(S)
    frags.add(first)
    assert [f for f, _ in frags.candidates(later)] == [first]
    frags.expire(first.t_last + S.stitch_max_gap_s + S.max_track_seconds + 1.0)
    assert frags.candidates(later) == []


def test_sideways_jump_marks_a_track_hopping_between_flakes():
    t = np.arange(10) / FPS
    smooth = 200.0 + 15.0 * t                                   # drifting sideways at 15 px/s
    assert sideways_jump(t, smooth) < 0.1
    hop = smooth.copy()
    hop[6:] -= 8.0                                              # jumps to another flake
    assert sideways_jump(t, hop) > S.clutter_max_jump_px


def detect_bench_clip(seed: int, companion: str):
    spec = random_scene(seed, "throw", width=640, height=360, with_distractor=companion)
    frames, fps, truth = render_clip(spec)
    det = ThrowDetector(scene_calibration(spec), fps=fps)
    found = []
    for i, f in enumerate(frames):
        found += det.process(f, i / fps)
    return found + det.flush(), truth.throws[0], det


def test_throw_under_headlights_is_found_with_its_floor():
    # benchmark clip 52: a 3 px bag falling with drag vanishes for 8 frames where headlights
    # light the wall behind it to its own grey level; headlight blobs pass beside its path
    found, truth, det = detect_bench_clip(52, "headlights")
    assert [abs(d.floor - truth.floor) <= 1 for d in found] == [True], det.stats
    assert abs(found[0].t_start - truth.t_release) < 0.5


def test_throw_with_camera_shake_is_found_with_its_floor():
    # benchmark clip 56: 2.5 px shake through the whole fall of a 9 px bag with drag
    found, truth, det = detect_bench_clip(56, "shake")
    assert [abs(d.floor - truth.floor) <= 1 for d in found] == [True], det.stats
    assert det.stats["shakes"] > 10
    assert math.isfinite(found[0].confidence)

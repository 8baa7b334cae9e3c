"""Thrown-object detector: quality on generated clips, and speed against a bare frame difference.

    .venv/bin/python -m tests.benchmarks.bench_detection [--quick] [--json]

Quality: `QUALITY_CLIPS` generated clips (sim/scene.py, `random_scene`), half
with one throw (floor 4..30, 2-10 px, dropped or thrown, a quarter with drag,
30 % at night, each with a random companion distractor or none) and half with
distractors only (every kind in turn: birds, insects at the lens, rain, snow,
leaves, paper, lights switching, headlights, clouds, camera shake, exposure
steps, exposure settling, the IR day/night switch). Reported: recall for
objects >= 3 px (target >= 0.95), false alarms per distractor clip (target
<= 1 %), floor within +-1 of the truth for detected throws (target >= 90 %),
and each figure per distractor kind.

Counts: every ratio is given with its count (k/n) and a Wilson 95 % interval,
since with about 100 throw clips one clip moves recall by 0.01.
`BENCH_DETECTION_CLIPS=480` runs twice the clips (about two minutes) for a
tighter interval; the default stays at 240 clips (about a minute).

Seeds: the figures are reported on seeds 0..N-1 (the REPORT set); the
detector's settings were tuned on seeds from TUNING_SEED0 (100000) up, a
disjoint set, so the reported figures are not fitted to their own clips.
`BENCH_DETECTION_SEEDS=tuning` runs the tuning set instead (for tuning only).

Speed: frames/s of ThrowDetector.process on one core at 1280x720, with the
ratio to one bare int16 frame difference (np.subtract(a, b, dtype=int16))
over the same frames in the same run (target >= 100 frames/s); peak memory
of the detector (tracemalloc) against the size of one frame.
"""

from __future__ import annotations

import math
import os
import sys
import time
import tracemalloc
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from detection.detector import ThrowDetector
from sim.scene import DISTRACTOR_KINDS, LIGHTING_KINDS, render_clip, random_scene, scene_calibration
from tests.benchmarks.common import Figure, main

QUALITY_CLIPS = 240
QUALITY_SIZE = (640, 360)
REPORT_SEED0 = 0              # seeds the figures are reported on
TUNING_SEED0 = 100_000        # seeds the settings were tuned on (disjoint from the report set)
DISTRACTOR_CLIP_KINDS = DISTRACTOR_KINDS + ("shake",) + LIGHTING_KINDS
COMPANIONS = ("none", "none", "none") + DISTRACTOR_CLIP_KINDS


@dataclass
class ClipResult:
    seed: int
    kind: str                    # "throw" or the distractor kind
    companion: str = "none"      # distractor in a throw clip
    size_px: float = 0.0
    floor: int = 0
    detected: bool = False
    floor_found: int | None = None
    floor_ok: bool = False
    false_alarms: int = 0
    night: bool = False
    drag: bool = False
    details: dict = field(default_factory=dict)


def run_clip(seed: int, kind: str, companion: str = "none", width: int = 640, height: int = 360) -> ClipResult:
    """Render one benchmark clip, run the detector, score it against the truth."""
    spec = random_scene(seed, "throw" if kind == "throw" else kind, width=width, height=height,
                        with_distractor=None if companion == "none" else companion)
    frames, fps, truth = render_clip(spec)
    det = ThrowDetector(scene_calibration(spec), fps=fps)
    found = []
    for i, f in enumerate(frames):
        found += det.process(f, i / fps)
    found += det.flush()
    res = ClipResult(seed=seed, kind=kind, companion=companion, night=spec.night)
    if kind != "throw":
        res.false_alarms = len(found)
        res.details = {"stats": det.stats, "found": [d.floor for d in found]}
        return res
    tt = truth.throws[0]
    res.size_px, res.floor, res.drag = tt.size_px, tt.floor, tt.drag
    match = [d for d in found if d.t_start - 1.0 <= tt.t_land and d.t_end >= tt.t_release]
    if match:
        best = min(match, key=lambda d: abs(d.floor - tt.floor))
        res.detected = True
        res.floor_found = best.floor
        res.floor_ok = abs(best.floor - tt.floor) <= 1
        res.false_alarms = len(found) - 1
    else:
        res.false_alarms = len(found)
    res.details = {"stats": det.stats, "found": [(d.floor, round(d.t_start, 2)) for d in found],
                   "t_release": tt.t_release}
    return res


def quality(n: int, width: int, height: int, seed0: int = 0, progress: bool = False) -> list[ClipResult]:
    results = []
    for i in range(n):
        seed = seed0 + i
        if i % 2 == 0:
            r = run_clip(seed, "throw", COMPANIONS[(i // 2) % len(COMPANIONS)], width, height)
        else:
            r = run_clip(seed, DISTRACTOR_CLIP_KINDS[(i // 2) % len(DISTRACTOR_CLIP_KINDS)], "none", width, height)
        results.append(r)
        if progress and (not r.floor_ok if r.kind == "throw" else r.false_alarms):
            print(f"# clip {seed} {r.kind}/{r.companion} size={r.size_px:.1f} floor={r.floor} "
                  f"found={r.details.get('found')} rejected={r.details['stats']['rejected']}", file=sys.stderr)
    return results


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (95 % by default) of a proportion k/n: honest at small n and near 0 or 1."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def counted(k: int, n: int) -> str:
    """'k/n, 95 % CI lo-hi' for a figure's name."""
    lo, hi = wilson(k, n)
    return f"{k}/{n}, 95 % CI {lo:.3f}-{hi:.3f}"


def quality_figures(results: list[ClipResult], label: str) -> list[Figure]:
    throws = [r for r in results if r.kind == "throw"]
    big = [r for r in throws if r.size_px >= 3.0]
    small = [r for r in throws if r.size_px < 3.0]
    distr = [r for r in results if r.kind != "throw"]
    det = [r for r in throws if r.detected]
    figs: list[Figure] = []
    hits = sum(r.detected for r in big)
    recall = hits / max(1, len(big))
    figs.append(Figure(f"recall, objects >= 3 px ({counted(hits, len(big))}; {label})", recall, "ratio",
                       target=">= 0.95", ok=recall >= 0.95))
    if small:
        figs.append(Figure(f"recall, objects 2-3 px ({len(small)} clips)", sum(r.detected for r in small) / len(small),
                           "ratio", target="(no target)"))
    n_fa = sum(1 for r in distr if r.false_alarms)
    fa = n_fa / max(1, len(distr))
    figs.append(Figure(f"false alarms per distractor clip ({counted(n_fa, len(distr))})", fa, "ratio", target="<= 0.01",
                       ok=fa <= 0.01))
    extra = sum(r.false_alarms for r in throws)
    figs.append(Figure("extra detections in throw clips", float(extra), "count", target="(no target)"))
    n_fl = sum(r.floor_ok for r in det)
    fl = n_fl / max(1, len(det))
    figs.append(Figure(f"floor within +-1 of detected throws ({counted(n_fl, len(det))})", fl, "ratio", target=">= 0.90", ok=fl >= 0.9))
    exact = sum(1 for r in det if r.floor_found == r.floor) / max(1, len(det))
    figs.append(Figure("floor exact", exact, "ratio", target="(no target)"))
    for name, sel in (("night", lambda r: r.night), ("drag", lambda r: r.drag)):
        sub = [r for r in big if sel(r)]
        if sub:
            k = sum(r.detected for r in sub)
            figs.append(Figure(f"recall >= 3 px, {name} ({k}/{len(sub)})", k / len(sub), "ratio"))
    by_comp: dict[str, list[ClipResult]] = defaultdict(list)
    for r in big:
        by_comp[r.companion].append(r)
    for k in ("none",) + DISTRACTOR_CLIP_KINDS:
        sub = by_comp.get(k, [])
        if not sub:
            continue
        d = [r for r in sub if r.detected]
        figs.append(Figure(f"  throw + {k}: recall ({len(d)}/{len(sub)}) / floor +-1", len(d) / len(sub),
                           "ratio", baseline=None, target=f"floor ok {sum(r.floor_ok for r in d)}/{len(d)}",
                           ok=None))
    by_kind: dict[str, list[ClipResult]] = defaultdict(list)
    for r in distr:
        by_kind[r.kind].append(r)
    for k in DISTRACTOR_CLIP_KINDS:
        sub = by_kind.get(k, [])
        if sub:
            k_fa = sum(1 for r in sub if r.false_alarms)
            figs.append(Figure(f"  {k} only: false-alarm clips ({k_fa}/{len(sub)})", k_fa / len(sub),
                               "ratio", target="<= 0.01"))
    return figs


def speed(n_frames: int = 150) -> list[Figure]:
    """Frames/s of the detector at 1280x720 on one core, against a bare int16 difference."""
    spec = random_scene(7, "throw", width=1280, height=720, with_distractor="bird")
    spec.seconds = n_frames / spec.fps
    frames, fps, _ = render_clip(spec)
    cal = scene_calibration(spec)
    # baseline: one bare int16 frame difference per frame
    reps = 5
    t0 = time.perf_counter()
    for _ in range(reps):
        for i in range(1, len(frames)):
            np.subtract(frames[i], frames[i - 1], dtype=np.int16)
    base_fps = reps * (len(frames) - 1) / (time.perf_counter() - t0)
    best = 0.0
    for _ in range(3):
        det = ThrowDetector(cal, fps=fps)
        t0 = time.perf_counter()
        for i, f in enumerate(frames):
            det.process(f, i / fps)
        det.flush()
        best = max(best, len(frames) / (time.perf_counter() - t0))
    # memory: peak allocations of a detector over the clip, against one frame
    tracemalloc.start()
    det = ThrowDetector(cal, fps=fps)
    for i, f in enumerate(frames):
        det.process(f, i / fps)
    det.flush()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    frame_mb = frames[0].nbytes / 1e6
    return [
        Figure("detector speed, 1280x720, one core", best, "fps", baseline=base_fps,
               baseline_name="bare int16 frame difference", target=">= 100 fps", ok=best >= 100),
        Figure("detector peak memory (tracemalloc)", peak / 1e6, "MB", baseline=frame_mb,
               baseline_name="one 1280x720 frame", target="bounded: a few frames", ok=peak / 1e6 < 40 * frame_mb),
    ]


def run(quick: bool = False) -> list[Figure]:
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})      # one core
    except (AttributeError, OSError):
        pass
    figs = speed(100 if quick else 150)
    n = 40 if quick else int(os.environ.get("BENCH_DETECTION_CLIPS", QUALITY_CLIPS))
    w, h = QUALITY_SIZE
    if os.environ.get("BENCH_DETECTION_SIZE"):
        w, h = (int(v) for v in os.environ["BENCH_DETECTION_SIZE"].split("x"))
    tuning = os.environ.get("BENCH_DETECTION_SEEDS", "report") == "tuning"
    seed0 = TUNING_SEED0 if tuning else REPORT_SEED0
    t0 = time.perf_counter()
    results = quality(n, w, h, seed0=seed0, progress=bool(os.environ.get("BENCH_VERBOSE")))
    label = (f"{w}x{h}, {'TUNING' if tuning else 'report'} seeds {seed0}..{seed0 + n - 1}; "
             f"settings tuned on seeds {TUNING_SEED0}+")
    figs += quality_figures(results, label)
    figs.append(Figure(f"quality run time ({n} clips)", time.perf_counter() - t0, "s"))
    return figs


if __name__ == "__main__":
    main(run)

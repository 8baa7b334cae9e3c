"""The thrown-object detector: frames in, throws out.

    det = ThrowDetector(calibration, settings, fps=25.0)
    for t, frame in frames:                 # grayscale uint8 H x W, t in seconds
        for throw in det.process(frame, t):
            print(throw.to_dict())
    leftovers = det.flush()                 # end of stream

Per frame: contrast lookup -> shake shift -> |frame - background| (int16) ->
noise-adaptive threshold on the max-pooled difference -> exclusion mask ->
global-change guard -> blobs -> tracker; tracks that end are judged by
trajectory.judge_track and, when they are a throw, located by floor.estimate_floor.
A throw is reported at the frame where its track ends (the object hit the
ground or left the view), i.e. a fraction of a second after it lands.

State is bounded: one float32 and two int16/uint8 frames, at most
`max_tracks` tracks of at most `max_track_seconds` each.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detection import stages
from detection.calibration import Calibration
from detection.floor import estimate_floor
from detection.settings import DetectorSettings
from detection.stitching import Fragments, join
from detection.tracking import Track, Tracker
from detection.trajectory import FallFit, judge_with_trim


@dataclass
class ThrowDetection:
    t_start: float                      # release time (seconds, the caller's timeline)
    t_end: float                        # last detection
    floor: int
    floor_range: tuple[int, int]
    column: int | None
    confidence: float
    drag: bool
    track: list[tuple[float, float, float]]     # (t, x, y) pixels in the analysed frame
    release_xy: tuple[float, float]
    fit: dict[str, Any] = field(default_factory=dict)   # vt, rms, acceleration... for tuning

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, with the contract's field names."""
        return {
            "t_start": round(self.t_start, 3), "t_end": round(self.t_end, 3),
            "floor": self.floor, "floor_range": [self.floor_range[0], self.floor_range[1]],
            "column": self.column, "confidence": round(self.confidence, 3), "drag": self.drag,
            "release_xy": [round(self.release_xy[0], 1), round(self.release_xy[1], 1)],
            "track": [[round(t, 3), round(x, 1), round(y, 1)] for t, x, y in self.track],
            "fit": self.fit,
        }


def _gray(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 3 and frame.shape[2] in (3, 4):       # RGB(A): luminance
        frame = (frame[..., 0] * 0.299 + frame[..., 1] * 0.587 + frame[..., 2] * 0.114)
        return np.clip(frame, 0, 255).astype(np.uint8)
    if frame.ndim != 2:
        raise ValueError(f"expected a grayscale H x W frame, got shape {frame.shape}")
    if frame.dtype != np.uint8:
        return np.clip(frame, 0, 255).astype(np.uint8)
    return frame


class ThrowDetector:
    """Frame-differencing thrown-object detector for one camera."""

    def __init__(self, calibration: Calibration, settings: DetectorSettings | None = None,
                 fps: float = 25.0) -> None:
        self.calibration_in = calibration
        self.cal = calibration
        self.s = settings or DetectorSettings()
        self.fps = float(fps)
        self.tracker = Tracker(self.s, self.fps)
        self._fragments = Fragments(self.s)          # rejected tracks a later one may continue
        self._shape: tuple[int, int] | None = None
        self._bg: np.ndarray | None = None          # float32 running average
        self._bg_u8: np.ndarray | None = None
        self._diff: np.ndarray | None = None
        self._scratch: np.ndarray | None = None
        self._lut: np.ndarray | None = None
        self._exclusion: np.ndarray | None = None   # pooled
        self._shift = (0, 0)
        self._settle = 0
        self._follow = 0            # frames left of re-fitting the grey-level map every frame
        self._ghosts: list[stages.Ghost] = []
        self._sigma: float | None = None
        self._clutter = 0.0         # moving blobs per frame, the median over a window (rain, snow)
        self._moving: deque[int] = deque(maxlen=self.s.clutter_window_frames)
        self._last_global = False
        self._stats: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self.rejections: deque[dict[str, Any]] = deque(maxlen=50)   # recent long rejected tracks, for tuning
        self.last_level = 0.0
        self.last_blobs = 0

    # -- public state ---------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: self._stats.get(k, 0) for k in
                               ("frames", "global_changes", "lighting_compensated", "shakes", "blobs", "blobs_dropped", "streaks", "ghosts", "stitched", "throws")}
        out["tracks"] = self.tracker.started
        out["rejected"] = dict(self._rejected)
        out["shift"] = list(self._shift)
        return out

    @property
    def last_global_change(self) -> bool:
        return self._last_global

    # -- per frame ----------------------------------------------------------------------------
    def _start(self, frame: np.ndarray) -> None:
        h, w = frame.shape
        self._shape = (h, w)
        self.cal = self.calibration_in.scaled(w, h)
        excl = self.cal.exclusion_mask(w, h)
        self._exclusion = stages.pool_mask(excl, self.s.pool_factor) if excl is not None else None
        self._diff = np.empty((h, w), dtype=np.int16)
        self._diff2 = np.empty((h, w), dtype=np.int16)        # a shake candidate's difference
        self._scratch = np.empty((h, w), dtype=np.float32)
        self._relearn(frame)

    def _relearn(self, frame: np.ndarray, t: float | None = None) -> None:
        s = self.s
        self._lut = (stages.contrast_lut(frame, s.contrast_low_percentile, s.contrast_high_percentile,
                                         s.contrast_max_gain) if s.contrast_normalise else None)
        f = stages.apply_lut(frame, self._lut)
        self._bg = f.astype(np.float32)
        self._bg_u8 = f.copy()
        self._shift = (0, 0)
        self._settle = s.settle_frames
        self._follow = s.photometric_follow_frames
        self._ghosts = self._make_ghosts(t) if t is not None and s.ghost_suppression else []

    def _make_ghosts(self, t: float) -> list[stages.Ghost]:
        """Ghost regions for the live tracks: the object is now in the background, along its coming path."""
        assert self._bg_u8 is not None and self._shape is not None
        h, w = self._shape
        dt = 1.0 / self.fps
        out: list[stages.Ghost] = []
        for tr in self.tracker.tracks:
            if len(tr.points) < 2 or t - tr.t_last > (self.s.max_missed_frames + 1) * dt:
                continue
            size = math.sqrt(max(tr.points[-1].area_px, 1))
            half = int(size / 2) + self.s.pool_factor + 2
            path = [tr.predict(t + k * dt)[:2] for k in range(self.s.settle_frames + 3)]
            px, py = path[0]
            pol = stages.object_polarity(self._bg_u8, px, py, half + 3)
            if pol == 0:
                continue
            xs = [p[0] for p in path] + [tr.points[-1].x]
            ys = [p[1] for p in path] + [tr.points[-1].y]
            x0, x1 = max(0, int(min(xs)) - half), min(w, int(max(xs)) + half + 1)
            y0, y1 = max(0, int(min(ys)) - half), min(h, int(max(ys)) + half + 1)
            if x1 - x0 > 0 and y1 - y0 > 0 and (x1 - x0) * (y1 - y0) <= 0.05 * h * w:
                out.append(stages.Ghost(x0, y0, x1, y1, pol, self.s.ghost_frames))
        self._stats["ghosts"] += len(out)
        return out

    def _photometric_lut(self, frame: np.ndarray) -> np.ndarray | None:
        """A lookup table mapping this frame onto the background's grey levels, if a linear map explains the change."""
        assert self._bg is not None
        lut = self._lut if self._lut is not None else np.arange(256, dtype=np.uint8)
        step = max(8, int(math.sqrt(frame.size / 12_000)))     # about 12 000 samples at any resolution
        cur = lut[frame[::step, ::step]].astype(np.float32).ravel()
        ref = self._bg[::step, ::step].ravel()
        keep = (cur > 2) & (cur < 253)                      # clipped levels are not linear
        if keep.sum() < 100:
            return None
        cur, ref = cur[keep], ref[keep]
        for _ in range(2):                                  # refit without the worst tenth (objects, lit windows)
            A = np.stack([cur, np.ones_like(cur)], axis=1)
            (a, b), *_ = np.linalg.lstsq(A, ref, rcond=None)
            r = np.abs(ref - (a * cur + b))
            cut = np.quantile(r, 0.9)
            cur, ref = cur[r <= cut], ref[r <= cut]
        resid = float(np.sqrt(np.mean((ref - (a * cur + b)) ** 2)))
        sigma = self._sigma or 2.0
        if not (0.2 < a < 5.0) or resid > max(4.0, 2.5 * sigma):
            return None
        return np.clip(np.rint(a * lut.astype(np.float32) + b), 0, 255).astype(np.uint8)

    def _update_background(self, f: np.ndarray, alpha: float, blobs: list[stages.Blob] = ()) -> None:
        assert self._bg is not None and self._bg_u8 is not None
        p = self.s.pool_factor
        boxes = [(max(0, b.x0 - p), max(0, b.y0 - p), b.x1 + p, b.y1 + p) for b in blobs]
        # in a ghost's box: the object is not learnt, the uncovered scene (its ghost) is learnt fast
        level = 0.5 * max(float(self.s.diff_threshold_min), self.s.noise_k * (self._sigma or 2.0))
        kept = []
        for g in self._ghosts:
            ghost, obj = stages.ghost_pixels(f, self._bg_u8, g, level)
            kept.append((g, ghost, obj, self._bg[g.y0:g.y1, g.x0:g.x1].copy()))
        stages.update_background(self._bg, f, alpha, self._scratch, boxes, self.s.foreground_alpha_factor)
        for g, ghost, obj, old in kept:
            patch = self._bg[g.y0:g.y1, g.x0:g.x1]
            patch[obj] = old[obj]
            patch[ghost] = old[ghost] + 0.5 * (f[g.y0:g.y1, g.x0:g.x1][ghost] - old[ghost])
        np.add(self._bg, 0.5, out=self._scratch)
        np.copyto(self._bg_u8, self._scratch, casting="unsafe")

    def _motion(self, f: np.ndarray, out: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
        """Difference, pooled difference, motion mask, threshold level and the noise level
        (sigma) that goes with them; the sigma is committed by the caller (`self._sigma = ...`)
        only for the candidate it keeps, so a misaligned try (shake) does not raise it."""
        assert self._bg_u8 is not None
        diff = stages.abs_difference(f, self._bg_u8, out=self._diff if out is None else out)
        sigma = self._follow_noise(stages.noise_sigma(diff))
        level = max(float(self.s.diff_threshold_min), self.s.noise_k * sigma)
        for g in self._ghosts:
            stages.suppress_ghost(diff, f, self._bg_u8, g, 0.5 * level)
        pooled = stages.max_pool(diff, self.s.pool_factor)
        mask = stages.apply_exclusion(stages.threshold(pooled, level), self._exclusion)
        return diff, pooled, mask, level, sigma

    def _follow_noise(self, measured: float) -> float:
        """The noise level follows the measurement slowly, and not at all when the whole
        frame jumps (a lighting change must light up the mask, not raise the threshold)."""
        if self._sigma is None:
            return measured
        if self._settle > 0:
            return self._sigma + 0.3 * (measured - self._sigma)
        if measured < 2.0 * self._sigma + 1.0:
            return self._sigma + 0.1 * (measured - self._sigma)
        return self._sigma

    def process(self, frame: np.ndarray, t: float) -> list[ThrowDetection]:
        """Analyse one frame taken at time t; return the throws decided at this frame."""
        frame = _gray(np.asarray(frame))
        s = self.s
        self._stats["frames"] += 1
        self._last_global = False
        if self._shape is None:
            self._start(frame)
            return []
        if frame.shape != self._shape:
            raise ValueError(f"frame size changed from {self._shape} to {frame.shape}")
        if self._ghosts:
            for g in self._ghosts:
                g.frames_left -= 1
            self._ghosts = [g for g in self._ghosts if g.frames_left > 0]
        if self._follow > 0:
            # exposure still settling after a global change: follow it with the grey-level map
            self._follow -= 1
            if s.lighting_compensation:
                lut = self._photometric_lut(frame)
                if lut is not None:
                    self._lut = lut
        raw = stages.apply_lut(frame, self._lut)
        f = stages.shift_image(raw, *self._shift)
        diff, pooled, mask, level, sigma = self._motion(f)
        frac = stages.changed_fraction(mask)
        if self._settle > 0:
            self._sigma = sigma
            self._settle -= 1
            self._last_global = True
            self._update_background(f, 0.5)
            return []
        if s.shake_compensation and frac > s.shake_trigger_fraction:
            shift = stages.estimate_shift(self._bg_u8, raw, s.shake_max_px)
            if shift != self._shift:
                f2 = stages.shift_image(raw, *shift)
                d2, p2, m2, l2, sg2 = self._motion(f2, out=self._diff2)
                frac2 = stages.changed_fraction(m2)
                if frac2 < frac:
                    self._stats["shakes"] += 1
                    self._shift = shift
                    f, diff, pooled, mask, level, frac, sigma = f2, d2, p2, m2, l2, frac2, sg2
                    self._diff, self._diff2 = self._diff2, self._diff
        if frac > s.global_change_fraction and s.lighting_compensation:
            # a change of gain or exposure maps grey levels linearly: fold the inverse
            # into the lookup table and go on, background and tracks intact
            lut = self._photometric_lut(frame)
            if lut is not None:
                self._lut = lut
                self._follow = s.photometric_follow_frames
                self._stats["lighting_compensated"] += 1
                self._last_global = True
                raw = stages.apply_lut(frame, self._lut)
                f = stages.shift_image(raw, *self._shift)
                diff, pooled, mask, level, sigma = self._motion(f)
                frac = stages.changed_fraction(mask)
        self._sigma = sigma
        if frac > s.global_change_fraction:
            # the light changed, not an object: re-learn, raise nothing; open tracks wait
            # (a fall in progress continues after the settling frames)
            self._stats["global_changes"] += 1
            self._last_global = True
            self._relearn(frame, t)
            return []
        blobs, dropped = stages.blobs_from_mask(mask, pooled, s.pool_factor, min_cells=s.min_blob_cells,
                                                max_area_px=s.max_blob_area_px,
                                                max_blobs=s.max_blobs_per_frame, method=s.connected_components)
        # clutter counts the streaks too (rain and snow are clutter), but not what stands still:
        # codec artefacts at edges after an I-frame, a lit window; those are learnt at the full rate
        static = self._static_blobs(blobs)
        moving = len(blobs) - int(static.sum())
        learn_slowly = [b for b, st in zip(blobs, static) if not st]
        if s.streak_filter:
            blobs, streaks = self._drop_streaks(blobs, diff, level, t)
            self._stats["streaks"] += streaks
        if len(blobs) <= 64:
            for b in blobs:
                # the centre of the strong part: a faint rain streak merged into the blob does not pull it
                if not b.refined:
                    stages.refine_centroid(diff, b, max(level, 0.5 * b.peak))
        self._stats["blobs"] += len(blobs)
        self._stats["blobs_dropped"] += dropped
        self.last_level, self.last_blobs = level, len(blobs)
        # a median, not a mean: rain and snow last, while the burst of blobs an I-frame of a
        # compressed stream leaves for a few frames (it re-draws the texture) does not
        self._moving.append(moving)
        self._clutter = float(np.median(self._moving))
        ended = self.tracker.update(blobs, t, self._clutter)
        self._update_background(f, s.background_alpha, [b for b in learn_slowly if b in blobs])
        return self._decide(ended)

    def _static_blobs(self, blobs: list[stages.Blob]) -> np.ndarray:
        """Which blobs lie on a track that has stood still for `static_track_frames` (boolean array)."""
        out = np.zeros(len(blobs), dtype=bool)
        pos = self.tracker.static_positions(self.s.static_track_frames, self.s.static_track_px)
        if len(pos) and blobs:
            bx = np.array([[b.x, b.y] for b in blobs])
            d2 = ((bx[:, None, :] - pos[None, :, :]) ** 2).sum(axis=2)
            out = d2.min(axis=1) <= (2 * self.s.static_track_px) ** 2
        return out

    def _drop_streaks(self, blobs: list[stages.Blob], diff: np.ndarray, level: float,
                      t: float) -> tuple[list[stages.Blob], int]:
        """Rain and snow. Rain as a field: a blob elongated along the local dominant orientation of
        many parallel streaks, and not continuing a track, is a streak (the pixels stay visible: an
        object falling through the rain continues its track and is kept). Then streak-shaped blobs,
        and every blob where blobs are dense, need a core `streak_min_width_px` wide; kept ones are
        centred on that core."""
        s = self.s
        if not blobs:
            return blobs, 0
        dense = np.zeros(len(blobs), dtype=bool)
        if len(blobs) >= s.streak_dense_blobs:
            grid = stages.blob_density(blobs, diff.shape, s.streak_cell_px)
            near = grid.copy()                          # 3 x 3 neighbourhood sums
            near[1:] += grid[:-1]; near[:-1] += grid[1:]
            near2 = near.copy()
            near2[:, 1:] += near[:, :-1]; near2[:, :-1] += near[:, 1:]
            gy = np.clip(np.array([b.y for b in blobs]) // s.streak_cell_px, 0, grid.shape[0] - 1).astype(np.int64)
            gx = np.clip(np.array([b.x for b in blobs]) // s.streak_cell_px, 0, grid.shape[1] - 1).astype(np.int64)
            dense = near2[gy, gx] >= s.streak_dense_blobs
        along = np.zeros(len(blobs), dtype=bool)
        if s.rain_field and len(blobs) >= s.field_min_streaks:
            field = stages.streak_field(blobs, diff.shape, s.streak_cell_px, s.field_min_elongation)
            tol = math.radians(s.field_angle_tolerance_deg)
            along = np.array([stages.matches_field(b, field, s.field_min_elongation, s.field_min_streaks,
                                                   s.field_min_coherence, tol) for b in blobs])
            if along.any():
                along &= ~self.tracker.continuing(blobs, t, s.track_priority_points)
        kept: list[stages.Blob] = []
        for b, d, a in zip(blobs, dense, along):
            if a:
                continue                                # a streak of the rain field, not continuing a track
            if not (d or stages.is_streak_shaped(b, s.pool_factor)):
                kept.append(b)
                continue
            core = stages.thick_support(diff[b.y0:b.y1, b.x0:b.x1], s.streak_min_width_px)
            peak = int(core.max()) if core.size else 0
            if peak <= level:
                continue
            on = core > max(level, 0.5 * peak)
            total = int(np.count_nonzero(on))
            b.x = b.x0 + float((on.sum(axis=0) * np.arange(on.shape[1])).sum()) / total
            b.y = b.y0 + float((on.sum(axis=1) * np.arange(on.shape[0])).sum()) / total
            b.refined = True
            kept.append(b)
        return kept, len(blobs) - len(kept)

    def flush(self) -> list[ThrowDetection]:
        """End of stream: judge every open track."""
        return self._decide(self.tracker.flush())

    # -- decisions ----------------------------------------------------------------------------
    def _decide(self, tracks: list[Track]) -> list[ThrowDetection]:
        out: list[ThrowDetection] = []
        for tr in sorted(tracks, key=lambda k: k.t_first):
            ended = tr
            fit, tr = judge_with_trim(tr, self.cal, self.s, self.fps)
            if not fit.accepted:
                fit, tr = self._stitch(ended, fit, tr)
            if not fit.accepted:
                self._rejected[fit.reason] += 1
                if len(tr.points) >= self.s.min_track_points:
                    self.rejections.append({
                        "reason": fit.reason, "t_start": round(tr.t_first, 3), "t_end": round(tr.t_last, 3),
                        "points": len(tr.points), "floors_fallen": round(fit.floors_fallen, 2),
                        "rms_px": round(fit.rms_px, 2), "allowed_rms_px": round(fit.allowed_rms_px, 2),
                        "accel_mps2": round(fit.accel_mps2, 2), "x_rms_px": round(fit.x_rms_px, 2),
                        "terminal_speed_mps": None if math.isinf(fit.vt) else fit.vt,
                        "start_xy": [round(tr.points[0].x), round(tr.points[0].y)],
                        "end_xy": [round(tr.points[-1].x), round(tr.points[-1].y)], **fit.details})
                continue
            self._stats["throws"] += 1
            out.append(self._detection(tr, fit))
        return out

    def _stitch(self, ended: Track, fit: FallFit, judged: Track) -> tuple[FallFit, Track]:
        """A rejected track joined to an earlier rejected one it continues (stitching.py), if
        the two together are a fall; otherwise the track is kept as a fragment."""
        self._fragments.expire(ended.t_first)
        for frag, pts in self._fragments.candidates(ended):
            joined = join(frag, pts, ended)
            f2, t2 = judge_with_trim(joined, self.cal, self.s, self.fps)
            if f2.accepted:
                self._fragments.remove(frag)
                self._stats["stitched"] += 1
                f2.details["stitched"] = True
                return f2, t2
        self._fragments.add(ended, fit.reason)
        return fit, judged

    def _detection(self, tr: Track, fit: FallFit) -> ThrowDetection:
        est = estimate_floor(fit, self.cal)
        return ThrowDetection(
            t_start=fit.t0, t_end=tr.t_last, floor=est.floor, floor_range=est.floor_range,
            column=est.column, confidence=fit.confidence, drag=fit.drag,
            track=[(p.t, p.x, p.y) for p in tr.points], release_xy=est.release_xy,
            fit={"release_height_floors": round(fit.f0, 2),
                 "terminal_speed_mps": None if math.isinf(fit.vt) else fit.vt,
                 "accel_mps2": round(fit.accel_mps2, 2), "rms_px": round(fit.rms_px, 2),
                 "floors_fallen": round(fit.floors_fallen, 2)})

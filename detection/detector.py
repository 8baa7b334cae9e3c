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
from detection.tracking import Track, Tracker
from detection.trajectory import FallFit, judge_track


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
        self._shape: tuple[int, int] | None = None
        self._bg: np.ndarray | None = None          # float32 running average
        self._bg_u8: np.ndarray | None = None
        self._diff: np.ndarray | None = None
        self._scratch: np.ndarray | None = None
        self._lut: np.ndarray | None = None
        self._exclusion: np.ndarray | None = None   # pooled
        self._shift = (0, 0)
        self._settle = 0
        self._sigma: float | None = None
        self._clutter = 0.0         # moving blobs per frame, smoothed (rain, snow)
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
                               ("frames", "global_changes", "lighting_compensated", "shakes", "blobs", "blobs_dropped", "throws")}
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
        self._scratch = np.empty((h, w), dtype=np.float32)
        self._relearn(frame)

    def _relearn(self, frame: np.ndarray) -> None:
        s = self.s
        self._lut = (stages.contrast_lut(frame, s.contrast_low_percentile, s.contrast_high_percentile,
                                         s.contrast_max_gain) if s.contrast_normalise else None)
        f = stages.apply_lut(frame, self._lut)
        self._bg = f.astype(np.float32)
        self._bg_u8 = f.copy()
        self._shift = (0, 0)
        self._settle = s.settle_frames

    def _photometric_lut(self, frame: np.ndarray) -> np.ndarray | None:
        """A lookup table mapping this frame onto the background's grey levels, if a linear map explains the change."""
        assert self._bg is not None
        lut = self._lut if self._lut is not None else np.arange(256, dtype=np.uint8)
        cur = lut[frame[::8, ::8]].astype(np.float32).ravel()
        ref = self._bg[::8, ::8].ravel()
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
        assert self._bg is not None
        p = self.s.pool_factor
        boxes = [(max(0, b.x0 - p), max(0, b.y0 - p), b.x1 + p, b.y1 + p) for b in blobs]
        stages.update_background(self._bg, f, alpha, self._scratch, boxes, self.s.foreground_alpha_factor)
        np.add(self._bg, 0.5, out=self._scratch)
        self._bg_u8 = self._scratch.astype(np.uint8)

    def _motion(self, f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        assert self._bg_u8 is not None
        diff = stages.abs_difference(f, self._bg_u8, out=self._diff)
        measured = stages.noise_sigma(diff)
        # the noise level follows the measurement slowly, and not at all when the whole
        # frame jumps (a lighting change must light up the mask, not raise the threshold)
        if self._sigma is None or self._settle > 0:
            self._sigma = measured if self._sigma is None else self._sigma + 0.3 * (measured - self._sigma)
        elif measured < 2.0 * self._sigma + 1.0:
            self._sigma += 0.1 * (measured - self._sigma)
        level = max(float(self.s.diff_threshold_min), self.s.noise_k * self._sigma)
        pooled = stages.max_pool(diff, self.s.pool_factor)
        mask = stages.apply_exclusion(stages.threshold(pooled, level), self._exclusion)
        return diff, pooled, mask, level

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
        raw = stages.apply_lut(frame, self._lut)
        f = stages.shift_image(raw, *self._shift)
        diff, pooled, mask, level = self._motion(f)
        frac = stages.changed_fraction(mask)
        if self._settle > 0:
            self._settle -= 1
            self._last_global = True
            self._update_background(f, 0.5)
            return []
        if s.shake_compensation and frac > s.shake_trigger_fraction:
            shift = stages.estimate_shift(self._bg_u8, raw, s.shake_max_px)
            if shift != self._shift:
                f2 = stages.shift_image(raw, *shift)
                d2, p2, m2, l2 = self._motion(f2)
                frac2 = stages.changed_fraction(m2)
                if frac2 < frac:
                    self._stats["shakes"] += 1
                    self._shift = shift
                    f, diff, pooled, mask, level, frac = f2, d2, p2, m2, l2, frac2
        if frac > s.global_change_fraction and s.lighting_compensation:
            # a change of gain or exposure maps grey levels linearly: fold the inverse
            # into the lookup table and go on, background and tracks intact
            lut = self._photometric_lut(frame)
            if lut is not None:
                self._lut = lut
                self._stats["lighting_compensated"] += 1
                self._last_global = True
                raw = stages.apply_lut(frame, self._lut)
                f = stages.shift_image(raw, *self._shift)
                diff, pooled, mask, level = self._motion(f)
                frac = stages.changed_fraction(mask)
        if frac > s.global_change_fraction:
            # the light changed, not an object: re-learn, raise nothing; open tracks wait
            # (a fall in progress continues after the settling frames)
            self._stats["global_changes"] += 1
            self._last_global = True
            self._relearn(frame)
            return []
        blobs, dropped = stages.blobs_from_mask(mask, pooled, s.pool_factor, min_cells=s.min_blob_cells,
                                                max_area_px=s.max_blob_area_px,
                                                max_blobs=s.max_blobs_per_frame, method=s.connected_components)
        if len(blobs) <= 64:
            for b in blobs:
                # the centre of the strong part: a faint rain streak merged into the blob does not pull it
                stages.refine_centroid(diff, b, max(level, 0.5 * b.peak))
        self._stats["blobs"] += len(blobs)
        self._stats["blobs_dropped"] += dropped
        self.last_level, self.last_blobs = level, len(blobs)
        self._clutter += 0.1 * (len(blobs) - self._clutter)
        ended = self.tracker.update(blobs, t, self._clutter)
        self._update_background(f, s.background_alpha, blobs)
        return self._decide(ended)

    def flush(self) -> list[ThrowDetection]:
        """End of stream: judge every open track."""
        return self._decide(self.tracker.flush())

    # -- decisions ----------------------------------------------------------------------------
    def _decide(self, tracks: list[Track]) -> list[ThrowDetection]:
        out: list[ThrowDetection] = []
        for tr in tracks:
            fit = judge_track(tr, self.cal, self.s, self.fps)
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

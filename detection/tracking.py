"""Linking blobs across frames into tracks.

A falling object jumps farther per frame than its own size (tens of pixels
near the ground), so nearest-neighbour matching on overlap fails. Each track
predicts where it will be (constant acceleration from its last three points,
constant velocity from two) and searches a radius that grows with its speed;
a track with one point searches a fixed start radius. Matching is greedy on
distance relative to the radius. A track that goes unseen for more than
`max_missed_frames` ends and is handed back for judging.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from detection.settings import DetectorSettings
from detection.stages import Blob


@dataclass
class TrackPoint:
    t: float
    x: float
    y: float
    area_px: int
    peak: int


@dataclass
class Track:
    id: int
    points: list[TrackPoint] = field(default_factory=list)
    missed: int = 0
    ambiguous: int = 0          # frames in which a second blob lay inside the gate
    clutter: float = 0.0        # sum over its points of the scene's moving blobs per frame

    @property
    def t_first(self) -> float:
        return self.points[0].t

    @property
    def t_last(self) -> float:
        return self.points[-1].t

    def predict(self, t: float) -> tuple[float, float, float]:
        """Predicted (x, y) at time t and the speed (pixels per second) used for the gate."""
        return self.predict_with_spread(t)[:3]

    def predict_with_spread(self, t: float) -> tuple[float, float, float, float | None]:
        """Like predict, plus the RMS (pixels) of the track's recent points around the fitted
        path (None until five points are known): how well the track follows its own path."""
        p = self.points
        last = p[-1]
        if len(p) == 1:
            return last.x, last.y, 0.0, None
        if len(p) >= 5:
            return self._predict_fit(t)
        a, b = p[-2], p[-1]
        dt1 = b.t - a.t or 1e-6
        vx, vy = (b.x - a.x) / dt1, (b.y - a.y) / dt1
        ax = ay = 0.0
        if len(p) >= 3:
            z = p[-3]
            dt0 = a.t - z.t or 1e-6
            vx0, vy0 = (a.x - z.x) / dt0, (a.y - z.y) / dt0
            span = (b.t - z.t) / 2 or 1e-6
            ax, ay = (vx - vx0) / span, (vy - vy0) / span
        h = t - b.t
        # velocity at b is better estimated by adding half a step of acceleration
        vx_b, vy_b = vx + ax * dt1 / 2, vy + ay * dt1 / 2
        return (b.x + vx_b * h + ax * h * h / 2, b.y + vy_b * h + ay * h * h / 2,
                math.hypot(vx_b + ax * h, vy_b + ay * h), None)

    def _predict_fit(self, t: float) -> tuple[float, float, float, float]:
        """Quadratic least-squares fit of the last points (robust to one noisy centroid)."""
        pts = self.points[-8:]
        t_ref = pts[-1].t
        tt = np.array([q.t - t_ref for q in pts])
        A = np.stack([np.ones_like(tt), tt, tt * tt], axis=1)
        xy = np.array([[q.x, q.y] for q in pts])
        coef, *_ = np.linalg.lstsq(A, xy, rcond=None)
        h = t - t_ref
        pos = coef[0] + coef[1] * h + coef[2] * h * h
        vel = coef[1] + 2 * coef[2] * h
        res = A @ coef - xy
        # residual RMS per point, corrected for the 3 fitted parameters per axis
        spread = math.sqrt(float((res * res).sum()) / max(1, len(pts) - 3))
        return float(pos[0]), float(pos[1]), float(math.hypot(vel[0], vel[1])), spread


def track_gate(n_points: int, step_px: float, spread: float | None, gap: int, s: DetectorSettings) -> float:
    """Search radius (pixels) around a track's predicted position.

    A track with one point searches `track_start_radius_px`; otherwise the radius is
    `track_gate_px` plus `track_gate_speed` times the step per frame. Once a track has
    `gate_fit_points` points its own path is known: the radius shrinks to
    `gate_fit_min_px` + `gate_fit_k` x its RMS around the fitted path + `gate_fit_speed`
    x the step (never more than the general radius), so rain streaks, headlights or a
    ghost a few pixels off the path cannot capture a clean fall. The radius grows by
    half for every frame the track went unseen (`gap`).
    """
    if n_points <= 1:
        r = s.track_start_radius_px
    else:
        r = s.track_gate_px + s.track_gate_speed * step_px
        if spread is not None and s.gate_fit_points and n_points >= s.gate_fit_points:
            r = min(r, s.gate_fit_min_px + s.gate_fit_k * spread + s.gate_fit_speed * step_px)
    return r * (1.0 + 0.5 * max(0, gap))


class Tracker:
    """Greedy predictive tracker; `update` returns the tracks that ended."""

    def __init__(self, settings: DetectorSettings, fps: float) -> None:
        self.s = settings
        self.frame_dt = 1.0 / fps
        self.tracks: list[Track] = []
        self._next_id = 1
        self.started = 0

    def _gate(self, track: Track, speed: float, t: float, spread: float | None = None) -> float:
        return track_gate(len(track.points), speed * self.frame_dt, spread,
                          max(track.missed, round((t - track.t_last) / self.frame_dt) - 1), self.s)

    def update(self, blobs: list[Blob], t: float, clutter: float = 0.0) -> list[Track]:
        """Extend tracks with this frame's blobs; start new tracks; return the tracks that ended."""
        pairs: list[tuple[float, int, int]] = []
        in_gate = [0] * len(self.tracks)
        for ti, tr in enumerate(self.tracks):
            px, py, speed, spread = tr.predict_with_spread(t)
            r = self._gate(tr, speed, t, spread)
            r2 = r * r
            for bi, b in enumerate(blobs):
                d2 = (b.x - px) ** 2 + (b.y - py) ** 2
                if d2 <= r2:
                    # established tracks choose first: a new track's wide start radius must not
                    # take the object from the track that has followed it (ties: relative distance)
                    pairs.append((len(tr.points) < self.s.track_priority_points, math.sqrt(d2) / r, ti, bi))
                    in_gate[ti] += 1
        pairs.sort()
        used_t: set[int] = set()
        used_b: set[int] = set()
        for _, _, ti, bi in pairs:
            if ti in used_t or bi in used_b:
                continue
            used_t.add(ti)
            used_b.add(bi)
            b = blobs[bi]
            tr = self.tracks[ti]
            tr.points.append(TrackPoint(t, b.x, b.y, b.area_px, b.peak))
            tr.clutter += clutter
            tr.missed = 0
            if in_gate[ti] > 1:
                tr.ambiguous += 1
        ended: list[Track] = []
        keep: list[Track] = []
        for ti, tr in enumerate(self.tracks):
            if ti not in used_t:
                tr.missed += 1
            if tr.missed > self.s.max_missed_frames or t - tr.t_first > self.s.max_track_seconds:
                ended.append(tr)
            else:
                keep.append(tr)
        self.tracks = keep
        new = [b for bi, b in enumerate(blobs) if bi not in used_b]
        new.sort(key=lambda b: -b.peak)
        room = max(0, self.s.max_tracks - len(self.tracks))
        for b in new[:room]:
            self.tracks.append(Track(self._next_id, [TrackPoint(t, b.x, b.y, b.area_px, b.peak)], clutter=clutter))
            self._next_id += 1
            self.started += 1
        return ended

    def continuing(self, blobs: list[Blob], t: float, min_points: int) -> np.ndarray:
        """Which blobs lie in the gate of a track with at least `min_points` points (boolean array):
        they continue something seen frame after frame, which rain streaks do not."""
        out = np.zeros(len(blobs), dtype=bool)
        if not blobs:
            return out
        bx = np.array([b.x for b in blobs])
        by = np.array([b.y for b in blobs])
        for tr in self.tracks:
            if len(tr.points) < min_points:
                continue
            px, py, speed, spread = tr.predict_with_spread(t)
            r = self._gate(tr, speed, t, spread)
            out |= (bx - px) ** 2 + (by - py) ** 2 <= r * r
        return out

    def static_positions(self, min_points: int, max_px: float) -> np.ndarray:
        """(x, y) of the tracks that have stood still: at least `min_points` points, the last
        `min_points` of them within `max_px` of their mean (codec artefacts at edges, a parked
        thing, a lit window): an (n, 2) array."""
        out = []
        for tr in self.tracks:
            if len(tr.points) < min_points or tr.missed:
                continue
            xs = [p.x for p in tr.points[-min_points:]]
            ys = [p.y for p in tr.points[-min_points:]]
            if max(xs) - min(xs) <= 2 * max_px and max(ys) - min(ys) <= 2 * max_px:
                out.append((tr.points[-1].x, tr.points[-1].y))
        return np.array(out, dtype=np.float64).reshape(-1, 2)

    def flush(self) -> list[Track]:
        """End every track (end of stream)."""
        ended, self.tracks = self.tracks, []
        return ended

    def reset(self) -> list[Track]:
        """Drop every track (after a global change); returns them uncounted."""
        return self.flush()

"""Judging a track: is it one object falling under gravity, and where did it start?

Heights are taken in floor coordinates through the calibration (`F(y)`), which
undoes the perspective of a camera tilted up the facade, so a fall is
`F(t) = F0 - d(t - t0) / floor_height` with d the distance fallen from rest:
g u^2 / 2 without drag, (vt^2 / g) ln cosh(g u / vt) with drag (terminal
speed vt). Before t0 the model is static: the near-still first frames after
release (or the object held at the window) belong to the fit.

For every (t0, vt) on a grid the best F0 is a weighted mean (weights =
pixels per floor squared, so residuals are in pixels); the best grid point
is the fit. A track is a throw when it goes down over more than
`min_floors_fallen` floors, its x is smooth, the fit is within
`max_fit_rms_px` (the fit also allows a small vertical throw speed and
the perspective of an object thrown towards the camera), its start lies at most `max_unseen_fall_s` before the first
detection, and its terminal speed is that of a thrown thing, not a leaf.
Reasons for rejection are short strings counted in the detector's stats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from detection.calibration import Calibration
from detection.settings import DetectorSettings
from detection.tracking import Track

# terminal speeds tried (m/s); inf = no drag. The slow ones identify drifting things.
VT_SLOW = (0.8, 1.5, 2.5, 4.0)
VT_FALL = (6.0, 8.0, 10.0, 13.0, 17.0, 23.0, 32.0, 45.0, math.inf)


@dataclass
class FallFit:
    accepted: bool
    reason: str                 # "throw" or why not
    t0: float = 0.0             # release time (start of the fall)
    f0: float = 0.0             # release height, floor coordinates
    f0_low: float = 0.0
    f0_high: float = 0.0
    vt: float = math.inf        # terminal speed of the fit (inf: free fall)
    drag: bool = False
    rms_px: float = 0.0
    allowed_rms_px: float = 0.0
    accel_mps2: float = 0.0     # free quadratic fit of the moving part
    floors_fallen: float = 0.0
    x_rms_px: float = 0.0
    release_x: float = 0.0
    confidence: float = 0.0
    details: dict = field(default_factory=dict)


def fall_distance(u: np.ndarray, vt: float, g: float) -> np.ndarray:
    """Distance fallen (m) u seconds after release from rest (0 for u <= 0)."""
    u = np.maximum(u, 0.0)
    if math.isinf(vt):
        return 0.5 * g * u * u
    z = g * u / vt
    # ln cosh z, stable for large z
    return (vt * vt / g) * (z + np.log1p(np.exp(-2 * z)) - math.log(2.0))


def judge_track(track: Track, cal: Calibration, s: DetectorSettings, fps: float) -> FallFit:
    """Decide whether a track is a thrown object; fit its release."""
    pts = track.points
    n = len(pts)
    if n < s.min_track_points:
        return FallFit(False, "too_short")
    t = np.array([p.t for p in pts])
    x = np.array([p.x for p in pts])
    y = np.array([p.y for p in pts])
    F = np.asarray(cal.height_at(y), dtype=float)
    fh = cal.floor_height_m or s.floor_height_m
    g = s.gravity_mps2
    fallen = float(F[: max(1, n // 5)].mean() - F[-max(1, n // 5):].mean())
    if fallen <= 0.3 or float(F.max() - F[-1]) < 0.5 * float(F.max() - F.min()):
        return FallFit(False, "not_down", floors_fallen=fallen)
    if float(F.max() - F.min()) <= s.min_floors_fallen:
        return FallFit(False, "too_few_floors", floors_fallen=float(F.max() - F.min()))
    if track.ambiguous > s.max_ambiguous_fraction * n:
        return FallFit(False, "group", floors_fallen=fallen)

    t_rel = t - t[0]
    # horizontal: smooth (quadratic) or erratic / swaying
    deg = 2 if n >= 4 else 1
    cx = np.polyfit(t_rel, x, deg)
    x_rms = float(np.sqrt(np.mean((np.polyval(cx, t_rel) - x) ** 2)))
    y_extent = float(y.max() - y.min())
    allowed = s.max_fit_rms_px + s.fit_rms_rel * y_extent
    if x_rms > s.max_x_rms_px + s.fit_rms_rel * y_extent:
        return FallFit(False, "erratic", x_rms_px=x_rms, floors_fallen=fallen)

    # vertical: grid over release time t0 and terminal speed vt
    ppf = np.abs(np.asarray(cal.y_at(F + 0.5)) - np.asarray(cal.y_at(F - 0.5)))   # px per floor
    w = ppf * ppf
    dt = 1.0 / fps
    moved = np.nonzero(F[0] - F > 0.5)[0]
    t_moved = t_rel[moved[0]] if len(moved) else t_rel[-1]
    t0s = np.arange(-s.max_unseen_fall_s, t_moved + dt / 2, dt / 2)

    vts = np.array(VT_SLOW + VT_FALL)
    U = np.maximum(t_rel[None, :] - t0s[:, None], 0.0)                     # (T0, n) time since release
    D = np.stack([fall_distance(U, vt, g) for vt in vts]) / fh             # (VT, T0, n) floors fallen
    # F_obs + D = F0 + v0 * u + beta * u * (F_obs - F_cam): v0 a small vertical throw speed,
    # beta = (speed towards the camera) / distance, the perspective of an object thrown out
    f_cam = cal.min_floor - 0.5
    target = F[None, None, :] + D
    r1 = np.broadcast_to(U[None], D.shape)
    r2 = np.broadcast_to((U * (F - f_cam)[None, :])[None], D.shape)
    sw = w.sum()
    # weighted normal equations for (F0, v0, beta), all grid points at once
    def wsum(a: np.ndarray) -> np.ndarray:
        return (a * w).sum(axis=-1)
    m11, m12, m13 = sw, wsum(r1), wsum(r2)
    m22, m23, m33 = wsum(r1 * r1), wsum(r1 * r2), wsum(r2 * r2)
    b1, b2, b3 = wsum(target), wsum(target * r1), wsum(target * r2)
    M = np.stack([np.stack([np.broadcast_to(m11, m12.shape), m12, m13], -1),
                  np.stack([m12, m22, m23], -1), np.stack([m13, m23, m33], -1)], -2)
    M = M + np.eye(3) * 1e-9
    B = np.stack([b1, b2, b3], -1)[..., None]
    sol = np.linalg.solve(M, B)[..., 0]                                      # (VT, T0, 3)
    v0_max = s.max_initial_speed_mps / fh
    v0 = np.clip(sol[..., 1], -v0_max, v0_max)
    beta = np.clip(sol[..., 2], 0.0, s.max_approach_rate)
    rest = target - v0[..., None] * r1 - beta[..., None] * r2
    f0 = (rest * w).sum(axis=2) / sw                                        # (VT, T0)
    res = (rest - f0[:, :, None]) * ppf                                     # pixels
    rms = np.sqrt(np.mean(res * res, axis=2))                               # (VT, T0)
    i_vt, i_t0 = np.unravel_index(int(np.argmin(rms)), rms.shape)
    best = float(rms[i_vt, i_t0])
    vt = float(vts[i_vt])
    slow = vts < s.drag_min_terminal_mps
    fast_rms = np.where(slow[:, None], np.inf, rms)
    j_vt, j_t0 = np.unravel_index(int(np.argmin(fast_rms)), rms.shape)
    best_fast = float(fast_rms[j_vt, j_t0])

    # free quadratic on the early moving part (before drag could matter much):
    # a fall speeds up from rest; snow and drifting things come in at a steady speed
    t0_best = float(t0s[i_t0])
    t_early = min(1.5, max(0.6, (vt / g) if not math.isinf(vt) else 1.5))
    mv = (t_rel >= t0_best - dt) & (t_rel <= t0_best + t_early)
    if mv.sum() < 5:
        mv = t_rel >= t0_best - dt
    accel = 0.0
    if mv.sum() >= 4:
        c = np.polyfit(t_rel[mv], F[mv], 2, w=np.sqrt(w[mv]))
        accel = float(-2 * c[0] * fh)
    fit = FallFit(False, "", rms_px=best, allowed_rms_px=allowed, vt=vt, accel_mps2=accel,
                  floors_fallen=float(F.max() - F.min()), x_rms_px=x_rms,
                  details={"best_fast_rms_px": best_fast, "t0_rel": t0_best,
                           "v0_mps": float(v0[i_vt, i_t0] * fh), "approach_per_s": float(beta[i_vt, i_t0])})
    if best > allowed:
        fit.reason = "not_gravity"
        return fit
    if vt < s.drag_min_terminal_mps and best_fast > allowed:
        fit.reason = "too_slow"
        return fit
    if accel > s.accel_max_ratio * g:
        fit.reason = "too_fast"
        return fit
    if accel < s.min_accel_ratio_drag * g:
        fit.reason = "no_acceleration"
        return fit
    evidence = gravity_evidence(t_rel, F, w, ppf, best_fast, s.centroid_noise_px)
    sink = float(-np.polyfit(t_rel, F, 1, w=np.sqrt(w))[0] * fh)          # mean descent, m/s
    fit.details["gravity_evidence"] = round(evidence, 1)
    fit.details["sink_mps"] = round(sink, 2)
    if evidence < s.min_gravity_evidence and sink < s.drag_min_terminal_mps:
        # a steady or slowing descent explains it as well, and too slowly for a falling thing at
        # its terminal speed (a fall whose start was missed, seen at terminal speed, is steady too)
        fit.reason = "steady"           # a gliding bird
        return fit
    # accepted: use the best fit among fast terminal speeds
    i_vt, i_t0, best = j_vt, j_t0, best_fast
    vt = float(vts[i_vt])
    if track.clutter / n > s.clutter_blobs and (vt < s.clutter_min_terminal_mps
                                                 or fit.floors_fallen < s.clutter_min_floors
                                                 or best > s.clutter_fit_factor * allowed
                                                 or sideways_jump(t, x) > s.clutter_max_jump_px):
        fit.reason = "clutter"          # a slow or short fall among many moving things: snow, rain
        return fit
    f0_best = float(f0[i_vt, i_t0])
    if f0_best > cal.max_floor + 1.3 or f0_best < cal.min_floor - 1.0:
        fit.reason = "off_facade"       # starts above the roof (or below the ground)
        return fit
    free = vts == math.inf
    free_rms = float(rms[free].min())
    if free_rms > allowed and cal.vanishing_point is not None:
        # the fall needs drag: then drag also takes away its sideways speed, with time constant
        # vt / g; a gliding bird keeps flying sideways. The largest terminal speed that fits is used
        # (the longest time constant: the most lenient). Only with the vanishing point: without it
        # the converging verticals of a tilted camera look like sideways motion.
        fits = np.nonzero((rms.min(axis=1) <= allowed) & ~slow & ~free)[0]
        vt_max = float(vts[fits].max()) if len(fits) else vt
        late = late_sideways_mps(t_rel - float(t0s[i_t0]), x, y, ppf / fh, vt_max / g, cal.vanishing_point)
        fit.details["late_sideways_mps"] = None if late is None else round(late, 2)
        if late is not None and late > s.drag_max_late_sideways_mps:
            fit.reason = "glides"       # slowed by drag yet still moving sideways: a bird
            return fit
    drag = (not math.isinf(vt)) and (free_rms > allowed or accel < s.accel_min_ratio * g)
    ok = (fast_rms <= best * s.floor_range_rms_factor + 0.3)
    f0s = f0[ok]
    t0 = float(t[0] + t0s[i_t0])
    release_x = float(np.polyval(cx, min(max(t0 - t[0], 0.0), t_rel[-1])))
    # confidence: fit quality, floors seen, points, ambiguity
    q_fit = 1.0 - min(1.0, best / allowed)
    q_len = min(1.0, (fit.floors_fallen - s.min_floors_fallen) / 3.0)
    q_pts = min(1.0, n / 25.0)
    q_amb = 1.0 - track.ambiguous / n
    conf = 0.35 + 0.25 * q_fit + 0.2 * q_len + 0.1 * q_pts + 0.1 * q_amb
    fit.accepted = True
    fit.reason = "throw"
    fit.t0 = t0
    fit.f0 = float(f0[i_vt, i_t0])
    fit.f0_low, fit.f0_high = float(f0s.min()), float(f0s.max())
    fit.vt = vt
    fit.drag = bool(drag)
    fit.rms_px = best
    fit.release_x = release_x
    fit.confidence = float(min(1.0, max(0.0, conf)))
    return fit


def steady_rms(t: np.ndarray, F: np.ndarray, w: np.ndarray, ppf: np.ndarray) -> float:
    """RMS (pixels) of the best descent at a steady or slowing rate: F = a + b t + c t^2 with c >= 0
    (F is height: c < 0 would be speeding up), weighted like the fall fit (w = pixels per floor squared).

    The alternative to a fall: a gliding bird sinks at a steady rate or flares and slows."""
    if len(t) < 3:
        return 0.0
    sw = np.sqrt(w)
    tc = t - t.mean()
    c2 = np.polyfit(tc, F, 2, w=sw)
    if c2[0] < 0:                       # the free quadratic speeds up: the best allowed one is the line
        c2 = np.concatenate([[0.0], np.polyfit(tc, F, 1, w=sw)])
    res = (np.polyval(c2, tc) - F) * ppf
    return float(np.sqrt(np.mean(res * res)))


def gravity_evidence(t: np.ndarray, F: np.ndarray, w: np.ndarray, ppf: np.ndarray, fall_rms: float,
                     noise_px: float) -> float:
    """How much better a fall from rest explains the track than a steady or slowing descent: the
    chi-square difference n (rms_steady^2 - rms_fall^2) / sigma^2, with the measurement noise sigma
    taken as the fall fit's own residual, never below the centroid noise `noise_px`.

    It is a likelihood ratio (Gaussian errors), so its scale does not depend on the renderer or the
    camera: about 1 per point when the two models are equally good, and it grows with the square of
    the curvature a real fall shows (it starts from rest, so it speeds up at close to g)."""
    sigma2 = max(fall_rms, noise_px) ** 2
    return len(t) * (steady_rms(t, F, w, ppf) ** 2 - fall_rms ** 2) / sigma2


def late_sideways_mps(u: np.ndarray, x: np.ndarray, y: np.ndarray, px_per_m: np.ndarray, tau: float,
                      vanishing_point: tuple[float, float] | None = None) -> float | None:
    """Sideways speed (m/s) of a fall with drag after two drag time constants (u > 2 tau, u = time
    since release), or None when fewer than 5 points spanning 0.4 s are that late.

    A straight fall is not vertical in the picture of a camera tilted up: it follows the facade's
    verticals, which meet in the vanishing point. Each x is carried along its vertical to the
    segment's middle row first, so only motion across the verticals counts. Pixels become metres
    with the vertical scale of the calibration; on a facade seen from below it is smaller than the
    horizontal one, so the speed is overestimated, never under."""
    late = u > 2 * tau
    if late.sum() < 5 or float(u[late].max() - u[late].min()) < 0.4:
        return None
    xs, ys = x[late], y[late]
    if vanishing_point is not None:
        vx, vy = vanishing_point
        ym = float(ys.mean())
        den = ys - vy
        if np.all(np.abs(den) > 1e-6):
            xs = vx + (xs - vx) * (ym - vy) / den
    vx_px = float(np.polyfit(u[late], xs, 1)[0])
    return abs(vx_px) / float(np.mean(px_per_m[late]))


def sideways_jump(t: np.ndarray, x: np.ndarray) -> float:
    """Largest sideways step (pixels) between consecutive points beyond the track's own smooth
    sideways motion (a quadratic in t, so an object that drifts faster sideways as it comes closer
    is not penalised): a track hopping from one snowflake to the next jumps; an object does not."""
    if len(t) < 3:
        return 0.0
    tr = t - t[0]
    c = np.polyfit(tr, x, 2 if len(t) >= 4 else 1)
    smooth = np.diff(np.polyval(c, tr))
    return float(np.max(np.abs(np.diff(x) - smooth)))


TRIM_REASONS = ("not_gravity", "clutter", "too_slow", "no_acceleration", "too_fast", "erratic", "off_facade")


def trim_candidates(track: Track, jump_px: float, max_tries: int, min_points: int) -> list[int]:
    """Indices where a track may have been captured: a jump of more than jump_px between two early points.

    In clutter (snow crossing an object held at a window) a track can start on
    something else and then take over the object; the fall is judged again
    from after each such jump (at most max_tries, earliest first).
    """
    pts = track.points
    out: list[int] = []
    for i in range(1, len(pts) - min_points + 1):
        if i > len(pts) // 2 or len(out) >= max_tries:
            break
        if math.hypot(pts[i].x - pts[i - 1].x, pts[i].y - pts[i - 1].y) > jump_px:
            out.append(i)
    return out


def judge_with_trim(track: Track, cal: Calibration, s: DetectorSettings, fps: float) -> tuple[FallFit, Track]:
    """judge_track, and when a fit fails, again on the track without the points before an early jump."""
    fit = judge_track(track, cal, s, fps)
    if fit.accepted or fit.reason not in TRIM_REASONS or s.trim_max_tries == 0:
        return fit, track
    for i in trim_candidates(track, s.trim_jump_px, s.trim_max_tries, s.min_track_points):
        sub = Track(track.id, track.points[i:], ambiguous=track.ambiguous, clutter=track.clutter * (len(track.points) - i) / len(track.points))
        f2 = judge_track(sub, cal, s, fps)
        if f2.accepted:
            f2.details["trimmed_points"] = i
            return f2, sub
    return fit, track

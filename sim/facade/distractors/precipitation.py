"""Rain and snow as a field of particles in three dimensions, each streaked over the exposure.

Particles live in the camera's view volume between the lens and the facade,
sampled uniformly in volume (so most are far and faint, a few are near, big
and out of focus). Each falls with its own speed, pushed sideways by the
wind; over the exposure it draws a streak whose total light is its own area
times its contrast, spread along the streak, so a fast raindrop is a long
faint line and a slow snowflake a short bright one. Near particles go into a
coarse layer that is blurred when enlarged (defocus). Particles that leave the
view come back at the top at a new random depth, so rain is uncorrelated from
frame to frame while each drop moves continuously.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from sim.facade.distractors.base import Distractor, FrameContext, SceneContext

NEAR_M = 1.5                 # particles nearer than this are out of focus
GLINT_MAX = 30.0             # brightest a particle gets, relative to a white wall in full light: a drop near
                             # the IR illuminator shows a glint of the LEDs, not a surface lit as 1 / r^2
COARSE = 4                   # downscale of the defocus layer
STREAK_STEP_PX = 1.0


def upsample(a: np.ndarray, k: int, h: int, w: int) -> np.ndarray:
    """Bilinear enlargement of `a` by an integer factor k, cut to h x w (separable, two gathers per axis)."""
    def axis_weights(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = (np.arange(n_out) + 0.5) / k - 0.5
        i0 = np.clip(np.floor(x).astype(int), 0, n_in - 1)
        i1 = np.clip(i0 + 1, 0, n_in - 1)
        f = np.clip(x - np.floor(x), 0, 1).astype(np.float32)
        return i0, i1, f
    r0, r1, fr = axis_weights(h, a.shape[0])
    rows = a[r0] * (1 - fr)[:, None] + a[r1] * fr[:, None]
    c0, c1, fc = axis_weights(w, a.shape[1])
    return rows[:, c0] * (1 - fc)[None, :] + rows[:, c1] * fc[None, :]


@dataclass
class Precipitation(Distractor):
    count: int                   # particles simulated in the near volume (real rain has more, but far
                                 # drops are sub-pixel and faint: they only lower the contrast a little)
    max_depth_m: float           # deepest simulated particle (farther ones make only haze)
    fall_mps: tuple[float, float]
    wind_mps: float              # along X; the streak angle is atan(wind / fall)
    size_m: tuple[float, float]  # particle diameter range
    brightness: float            # particle radiance relative to the scene's light
    flutter_mps: float = 0.0     # sideways sway (snow)
    seed: int = 0
    kind = "precipitation"

    def prepare(self, scene: SceneContext) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._scene = scene
        cam = scene.camera
        self._depth_max = min(self.max_depth_m, cam.distance_m)
        n = self.count
        self._pos = self._spawn(n, anywhere=True)
        self._fall = self._rng.uniform(*self.fall_mps, n)
        self._size = self._rng.uniform(*self.size_m, n)
        self._phase = self._rng.uniform(0, 2 * math.pi, n)
        self._t = 0.0

    def _spawn(self, n: int, anywhere: bool) -> np.ndarray:
        cam = self._scene.camera
        rng = self._rng
        lo = 0.3
        # uniform in volume: depth density ~ d^2
        d = (lo ** 3 + rng.random(n) * (self._depth_max ** 3 - lo ** 3)) ** (1 / 3)
        u = rng.uniform(-0.1, 1.1, n) * cam.width
        v = rng.uniform(-0.1, 1.0, n) * cam.height if anywhere else rng.uniform(-0.25, 0.0, n) * cam.height
        nx, ny = cam.undistort(u, v)
        right, up, fwd = cam._axes()
        x = d * nx
        y = d * (fwd[1] + ny * up[1])
        z = cam.cam_height_m + d * (fwd[2] + ny * up[2])
        return np.stack([x, y, z], axis=1)

    def _velocity(self, t: float) -> np.ndarray:
        vx = self.wind_mps + self.flutter_mps * np.sin(2 * math.pi * 0.7 * t + self._phase)
        return np.stack([vx, 0 * vx, -self._fall], axis=1)

    def apply(self, img: np.ndarray, frame: FrameContext) -> None:
        cam = self._scene.camera
        h, w = img.shape
        t = frame.t0
        dt = t - self._t
        if dt > 0:
            self._pos += self._velocity(t) * dt
            self._t = t
        vel = self._velocity(t)
        # where each particle is at its row's time: the rolling shutter offsets the start of its streak
        u0, v0, depth = cam.project(*self._pos.T)
        lag = np.clip(v0, 0, h) * frame.line_time
        p_start = self._pos + vel * lag[:, None]
        p_end = p_start + vel * frame.exposure
        ua, va, da = cam.project(*p_start.T)
        ub, vb, _ = cam.project(*p_end.T)
        gone = (va > h + 5) | (ua < -0.15 * w) | (ua > 1.15 * w) | (da < 0.2)
        if gone.any():
            k = int(gone.sum())
            self._pos[gone] = self._spawn(k, anywhere=False)
            self._fall[gone] = self._rng.uniform(*self.fall_mps, k)
        ok = ~gone & (da > 0.25)
        ua, va, ub, vb, da = ua[ok], va[ok], ub[ok], vb[ok], da[ok]
        size_px = cam.focal_px * self._size[ok] / da
        area = math.pi / 4 * size_px ** 2
        rng_m = da
        light = self.brightness * np.minimum(np.asarray(self._scene.illum(rng_m), dtype=float), GLINT_MAX)
        contrast = light - float(frame.background[::16, ::16].mean())
        energy = contrast * np.minimum(area, 6.0)
        near = da < NEAR_M
        self._splat(img, ua[~near], va[~near], ub[~near], vb[~near], energy[~near], 1)
        if near.any():
            coarse = np.zeros((h // COARSE + 1, w // COARSE + 1), dtype=np.float32)
            self._splat(coarse, ua[near] / COARSE, va[near] / COARSE, ub[near] / COARSE, vb[near] / COARSE,
                        energy[near] / COARSE ** 2, 1)
            img += upsample(ndimage.uniform_filter(coarse, 3), COARSE, h, w)

    @staticmethod
    def _splat(img: np.ndarray, ua, va, ub, vb, energy, _unused) -> None:
        if len(ua) == 0:
            return
        h, w = img.shape
        length = np.hypot(ub - ua, vb - va)
        n = np.clip(np.ceil(length / STREAK_STEP_PX).astype(int) + 1, 1, 200)
        idx = np.repeat(np.arange(len(ua)), n)
        start = np.cumsum(n) - n
        frac = (np.arange(idx.size) - start[idx] + 0.5) / n[idx]
        x = ua[idx] + (ub - ua)[idx] * frac - 0.5
        y = va[idx] + (vb - va)[idx] * frac - 0.5
        wgt = (energy / n)[idx]
        x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
        fx, fy = x - x0, y - y0
        acc = np.zeros(h * w, dtype=np.float64)
        for ox, oy, ww in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            xi, yi = x0 + ox, y0 + oy
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            acc += np.bincount((yi * w + xi)[inside], weights=(wgt * ww)[inside], minlength=h * w)
        img += acc.reshape(h, w).astype(np.float32)


@dataclass
class Rain(Precipitation):
    intensity: str = "moderate"
    kind = "rain"

    @classmethod
    def draw(cls, rng: np.random.Generator, scene: SceneContext, intensity: str | None = None) -> "Rain":
        intensity = intensity or str(rng.choice(["light", "moderate", "heavy"]))
        count = {"light": 800, "moderate": 2500, "heavy": 6000}[intensity]
        night = scene.lighting.mode == "ir"
        return cls(count=count, max_depth_m=rng.uniform(3, 8), fall_mps=(4.0, 9.0),
                   wind_mps=float(rng.normal(0, 2.5)), size_m=(0.0008, 0.003),
                   brightness=rng.uniform(0.8, 1.6) if night else rng.uniform(0.9, 1.4),
                   seed=int(rng.integers(1 << 30)), intensity=intensity)


@dataclass
class Snow(Precipitation):
    kind = "snow"

    @classmethod
    def draw(cls, rng: np.random.Generator, scene: SceneContext) -> "Snow":
        return cls(count=int(rng.choice([300, 1000, 2500])), max_depth_m=rng.uniform(5, 15), fall_mps=(0.5, 1.5),
                   wind_mps=float(rng.normal(0, 1.2)), size_m=(0.003, 0.012), brightness=rng.uniform(0.9, 1.3),
                   flutter_mps=rng.uniform(0.2, 0.8), seed=int(rng.integers(1 << 30)))

"""Wind: tree crowns swaying in front of the facade, laundry swinging on balconies.

Tree crowns are moved by warping their own picture with a displacement that
grows towards the top of the crown and comes in gusts, so leaves shimmer and
whole crowns lean, the way frame differencing sees them. Laundry hangs from a
balcony rail and swings as a pendulum pushed by gusts, flapping its outline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from sim.facade.distractors.base import Distractor, FrameContext, SceneContext
from sim.facade.sprites import SpritePath, draw_sprite

STEP_S = 0.005


def gust(t: np.ndarray | float, seed: float) -> np.ndarray | float:
    """A smooth, irregular wind strength in 0..1."""
    g = 0.5 + 0.25 * np.sin(0.9 * t + seed) + 0.15 * np.sin(2.3 * t + 2 * seed) + 0.1 * np.sin(5.1 * t + 3 * seed)
    return np.clip(g, 0.0, 1.0)


@dataclass
class Trees(Distractor):
    sway_px: float               # largest displacement at the top of a crown, pixels
    shimmer_px: float            # leaf-scale jitter
    period_s: float
    seed: float
    kind = "trees"

    @classmethod
    def draw(cls, rng: np.random.Generator, scene: SceneContext) -> "Trees":
        scale = scene.camera.height / 720
        return cls(sway_px=rng.uniform(1.0, 6.0) * scale, shimmer_px=rng.uniform(0.3, 1.5) * scale,
                   period_s=rng.uniform(0.8, 3.0), seed=float(rng.uniform(0, 100)))

    def prepare(self, scene: SceneContext) -> None:
        fol = scene.maps.foliage
        rows = np.nonzero(fol.max(axis=1) > 0)[0]
        if len(rows) == 0:
            self._box = None
            return
        pad = int(math.ceil(self.sway_px + self.shimmer_px)) + 2
        self._box = (max(0, rows[0] - pad), min(fol.shape[0], rows[-1] + pad + 1))
        y0, y1 = self._box
        self._mask = fol[y0:y1]
        yy, xx = np.mgrid[y0:y1, 0:fol.shape[1]].astype(np.float32)
        top = float(rows[0])
        self._lever = np.clip((rows[-1] - yy) / max(rows[-1] - top, 1), 0, 1)     # more sway up the crown
        self._yy, self._xx = yy, xx
        self._leaf_phase = (np.sin(xx * 0.37) * np.cos(yy * 0.29) * 3.0).astype(np.float32)

    def apply(self, img: np.ndarray, frame: FrameContext) -> None:
        if self._box is None:
            return
        y0, y1 = self._box
        t = frame.t0
        g = float(gust(t, self.seed))
        dx = self._lever * (self.sway_px * g * math.sin(2 * math.pi * t / self.period_s)) + \
            self.shimmer_px * g * np.sin(2 * math.pi * 3.0 * t + self._leaf_phase)
        dy = 0.3 * self.shimmer_px * g * np.cos(2 * math.pi * 2.3 * t + self._leaf_phase)
        src = frame.background
        warped = ndimage.map_coordinates(src, [self._yy + dy, self._xx + dx], order=1, mode="nearest")
        mask = ndimage.map_coordinates(self._mask, [self._yy - y0 + dy, self._xx + dx], order=1, mode="nearest")
        region = img[y0:y1]
        region[:] = region * (1 - mask) + warped * mask


@dataclass
class Laundry(Distractor):
    items: list[tuple[float, float, float, float, float, float]]   # (X, Z top, length m, width m, albedo, phase)
    depth_y: float               # world Y of the balcony rail
    swing_rad: float
    period_s: float
    seed: float
    kind = "laundry"

    @classmethod
    def draw(cls, rng: np.random.Generator, scene: SceneContext) -> "Laundry":
        fa = scene.facade
        cols = fa.columns()
        every = fa.balcony_every or 2
        bal_cols = [c for i, c in enumerate(cols) if i % every == 0] or list(cols)
        items = []
        for _ in range(int(rng.integers(2, 7))):
            f = int(rng.integers(2, fa.floors + 1))
            x = float(rng.choice(bal_cols)) + rng.uniform(-0.6, 0.6)
            items.append((x, (f - 1) * fa.floor_m + 1.1, rng.uniform(0.4, 1.1), rng.uniform(0.3, 0.8),
                          float(rng.uniform(0.1, 0.9)), float(rng.uniform(0, 6.3))))
        return cls(items=items, depth_y=scene.camera.distance_m - fa.balcony_depth_m, swing_rad=rng.uniform(0.1, 0.6),
                   period_s=rng.uniform(0.8, 2.0), seed=float(rng.uniform(0, 100)))

    def prepare(self, scene: SceneContext) -> None:
        cam = scene.camera
        t = np.arange(0.0, scene.seconds + 0.2, STEP_S)
        self._paths = []
        for x, ztop, length, width, albedo, ph in self.items:
            theta = self.swing_rad * gust(t, self.seed + ph) * np.sin(2 * math.pi * t / self.period_s + ph)
            cx = x + length / 2 * np.sin(theta)
            cz = ztop - length / 2 * np.cos(theta)
            u, v, depth = cam.project(cx, self.depth_y + 0 * t, cz)
            px = cam.focal_px / depth
            flap = 1 + 0.2 * np.sin(2 * math.pi * 2.7 * t + ph) * gust(t, self.seed)
            rng_m = np.sqrt(cx ** 2 + self.depth_y ** 2 + (cz - cam.cam_height_m) ** 2)
            rad = albedo * np.asarray(scene.illum(rng_m), dtype=float) * (0.9 + 0.1 * np.cos(theta * 3))
            self._paths.append(SpritePath(t=t, u=u, v=v, size=length * px, aspect=np.clip(width / length * flap, 0.1, 1.0),
                                          angle=math.pi / 2 - theta, radiance=rad, edge_px=1.0, power=5.0))

    def apply(self, img: np.ndarray, frame: FrameContext) -> None:
        for p in self._paths:
            draw_sprite(img, p, frame.t0, frame.line_time, frame.exposure)

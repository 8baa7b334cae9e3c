"""Insects close to the lens: big, defocused, translucent and erratic.

A moth a few centimetres from the lens is far out of focus: a soft blob tens
to hundreds of pixels wide, and at night the IR illuminator beside the lens
makes it glow. It moves in image space with jerky, turning flight (a sum of a
few random oscillations and a drift), so its path is never a fall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim.facade.distractors.base import Distractor, FrameContext, SceneContext
from sim.facade.sprites import SpritePath, draw_sprite

STEP_S = 0.005


@dataclass
class Insect(Distractor):
    t_start: float
    duration_s: float
    start_uv: tuple[float, float]
    drift_px_s: tuple[float, float]
    wobble: list[tuple[float, float, float, float]]      # (amplitude px, frequency Hz, phase, direction rad)
    size_px: float
    opacity: float
    radiance: float
    kind = "insect"

    @classmethod
    def draw(cls, rng: np.random.Generator, scene: SceneContext) -> "Insect":
        w, h = scene.camera.width, scene.camera.height
        scale = h / 720
        night = scene.lighting.mode == "ir"
        wob = [(float(rng.uniform(10, 120) * scale), float(rng.uniform(0.5, 5.0)), float(rng.uniform(0, 6.3)),
                float(rng.uniform(0, 6.3))) for _ in range(4)]
        return cls(t_start=rng.uniform(0, scene.seconds * 0.5), duration_s=rng.uniform(1.0, scene.seconds),
                   start_uv=(rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h),
                   drift_px_s=(rng.uniform(-150, 150) * scale, rng.uniform(-150, 150) * scale), wobble=wob,
                   size_px=rng.uniform(15, 150) * scale, opacity=rng.uniform(0.25, 0.8),
                   radiance=rng.uniform(1.5, 4.0) if night else float(rng.choice([rng.uniform(0.02, 0.15), rng.uniform(0.8, 1.5)])))

    def prepare(self, scene: SceneContext) -> None:
        t = np.arange(0.0, self.duration_s, STEP_S)
        u = self.start_uv[0] + self.drift_px_s[0] * t
        v = self.start_uv[1] + self.drift_px_s[1] * t
        for amp, f, ph, d in self.wobble:
            s = amp * np.sin(2 * math.pi * f * t + ph)
            u, v = u + s * math.cos(d), v + s * math.sin(d)
        flutter = 1 + 0.15 * np.sin(2 * math.pi * 23 * t)
        self._path = SpritePath(t=self.t_start + t, u=u, v=v, size=self.size_px * flutter, aspect=0.6 + 0 * t,
                                angle=np.arctan2(np.gradient(v), np.gradient(u)), radiance=self.radiance * flutter,
                                opacity=self.opacity, edge_px=max(2.0, self.size_px / 3))

    def apply(self, img: np.ndarray, frame: FrameContext) -> None:
        draw_sprite(img, self._path, frame.t0, frame.line_time, frame.exposure)

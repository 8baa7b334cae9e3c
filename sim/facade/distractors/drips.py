"""Condensate dripping from air-conditioner units: small drops that accelerate, but only for a short way.

A drop leaves the bottom of an AC unit, falls under gravity (with the drag of
a few-millimetre drop) for a metre or a few (onto the unit below, an awning,
a ledge) and is gone; the same unit drips again a moment later, so the same
short accelerating streak repeats from the same place. A drop is far smaller
than a pixel; what the camera sees is its glint, at least a pixel or two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.facade.distractors.base import Distractor, FrameContext, SceneContext
from sim.facade.physics import integrate_fall
from sim.facade.sprites import SpritePath, draw_sprite


@dataclass
class Drips(Distractor):
    units: list[tuple[float, float]]          # (X, Z) of the dripping units
    times: list[list[float]]                  # release times per unit
    fall_m: list[list[float]]                 # how far each drop falls before it is stopped
    glint_px: float
    brightness: float
    kind = "drip"

    @classmethod
    def draw(cls, rng: np.random.Generator, scene: SceneContext) -> "Drips":
        fa = scene.facade
        units = fa.ac_units() or [(float(c) + fa.window_w_m / 2 + 0.55, (f - 1) * fa.floor_m + 0.25)
                                  for c in fa.columns()[:3] for f in (4, 9)]
        pick = rng.choice(len(units), size=min(len(units), int(rng.integers(1, 4))), replace=False)
        chosen = [units[i] for i in pick]
        times, falls = [], []
        for _ in chosen:
            period = rng.uniform(0.4, 2.5)
            ts = list(np.arange(rng.uniform(0, period), scene.seconds, period) + rng.normal(0, 0.05 * period))
            times.append([float(x) for x in ts])
            falls.append([float(rng.uniform(0.8, 5.0)) for _ in ts])
        return cls(units=chosen, times=times, fall_m=falls, glint_px=rng.uniform(1.2, 2.5),
                   brightness=rng.uniform(1.2, 2.5))

    def prepare(self, scene: SceneContext) -> None:
        cam = scene.camera
        y = cam.distance_m - 0.35
        self._paths = []
        for (x, z), ts, falls in zip(self.units, self.times, self.fall_m):
            for t0, drop in zip(ts, falls):
                fall = integrate_fall((x, y, z), (0.0, 0.0, 0.0), 7.0, t_max=2.0, ground_z=max(z - drop, 0.0))
                u, v, depth = cam.project(*fall.pos.T)
                rng_m = np.linalg.norm(fall.pos - np.array([0, 0, cam.cam_height_m]), axis=1)
                rad = self.brightness * np.asarray(scene.illum(rng_m), dtype=float)
                self._paths.append(SpritePath(t=t0 + fall.t, u=u, v=v, size=self.glint_px + 0 * u, aspect=1.0 + 0 * u,
                                              angle=0 * u, radiance=rad, opacity=0.8, edge_px=1.0))

    def apply(self, img: np.ndarray, frame: FrameContext) -> None:
        for p in self._paths:
            draw_sprite(img, p, frame.t0, frame.line_time, frame.exposure)

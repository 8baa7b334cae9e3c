"""Light on the scene: daylight, dusk, and the camera's infrared illuminator at night.

Radiance is kept in relative units (the static scene has a mean near 0.5);
how many photo-electrons a unit of radiance gives per second is the separate
`electrons_per_unit_s`, which is what makes night noisy. By day the sun lights
everything alike; in IR mode the illuminator beside the lens lights what is
near more than what is far (inverse square), which is why the lower floors and
a falling object close to the ground look brighter at night.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.facade.building import SceneMaps

MODES = ("day", "dusk", "ir")
DAY_ELECTRONS = 1.6e6        # electrons per unit radiance per second by day (full well ~9000 e- in ~10 ms)
DUSK_ELECTRONS = 4.0e4
IR_ELECTRONS = 1.5e4


@dataclass(frozen=True)
class Lighting:
    mode: str                    # "day", "dusk" (visible light, little of it) or "ir" (night, illuminator on)
    sun: float = 1.0             # daylight level on the facade
    sky: float = 1.1             # sky radiance relative to a white wall in the sun
    ir_range_m: float = 40.0     # range at which the illuminator gives radiance 1 on a white surface
    ambient: float = 0.03        # city glow at night, relative
    window_glow: float = 0.8     # radiance of a lit window at night
    electrons_scale: float = 1.0 # per-clip spread of the light level

    @property
    def electrons_per_unit_s(self) -> float:
        base = {"day": DAY_ELECTRONS, "dusk": DUSK_ELECTRONS, "ir": IR_ELECTRONS}[self.mode]
        return base * self.electrons_scale

    def illum(self, range_m: np.ndarray | float) -> np.ndarray | float:
        """Irradiance on a surface at this range from the lens (relative)."""
        if self.mode == "day":
            return self.sun + 0.0 * np.asarray(range_m, dtype=float)
        if self.mode == "dusk":
            return 0.25 * self.sun + 0.0 * np.asarray(range_m, dtype=float)
        r = np.maximum(np.asarray(range_m, dtype=float), 2.0)
        return (self.ir_range_m / r) ** 2 + self.ambient

    def background(self, maps: SceneMaps) -> np.ndarray:
        """Radiance of the static scene (H x W float32)."""
        if self.mode == "ir":
            L = maps.albedo_ir * self.illum(maps.range_m).astype(np.float32)
            L += maps.sky * self.ambient * 0.5 + maps.lit * self.window_glow
        elif self.mode == "dusk":
            L = maps.albedo_vis * float(self.illum(10.0)) + maps.sky * self.sky * 0.3 + maps.lit * self.window_glow * 0.6
        else:
            h = maps.sky.shape[0]
            grad = np.linspace(0.85, 1.1, h, dtype=np.float32)[:, None]      # brighter towards the horizon
            L = maps.albedo_vis * self.sun + maps.sky * self.sky * grad + maps.lit * 0.05
            L += maps.glass * 0.15 * self.sky                               # glass mirrors some sky
        return L.astype(np.float32)


def draw_lighting(rng: np.random.Generator, night: bool) -> Lighting:
    if night:
        return Lighting(mode="ir", ir_range_m=rng.uniform(25.0, 60.0), ambient=rng.uniform(0.01, 0.06),
                        window_glow=rng.uniform(0.4, 1.2), electrons_scale=rng.uniform(0.5, 2.0))
    return Lighting(mode="day", sun=rng.uniform(0.6, 1.1), sky=rng.uniform(0.9, 1.5),
                    electrons_scale=rng.uniform(0.3, 1.5))

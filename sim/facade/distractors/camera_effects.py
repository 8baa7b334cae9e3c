"""What happens to the whole camera: shake, a change of light (auto-exposure steps), the IR-cut switch.

Shake moves the whole picture by a sub-pixel to a few pixels (wind on the
pole, a passing truck), as a sum of oscillations with short jolts. A cloud
moving over the sun dims the whole scene within a second; the camera's
auto-exposure follows in steps. At dusk the camera drops its IR-cut filter
and lights its illuminator: the picture goes from colour to IR grey, glass
turns dark, foliage bright, and the exposure jumps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.facade.distractors.base import Distractor, SceneContext


@dataclass
class Shake(Distractor):
    amplitude_px: float
    freqs_hz: tuple[float, float]
    phases: tuple[float, float, float, float]
    jolt_times: list[float]
    kind = "shake"

    @classmethod
    def draw(cls, rng: np.random.Generator, scene: SceneContext) -> "Shake":
        amp = float(rng.choice([rng.uniform(0.2, 0.9), rng.uniform(1.0, 3.0)]))
        return cls(amplitude_px=amp, freqs_hz=(rng.uniform(1.0, 4.0), rng.uniform(4.0, 9.0)),
                   phases=tuple(float(x) for x in rng.uniform(0, 6.3, 4)),
                   jolt_times=[float(x) for x in rng.uniform(0, scene.seconds, int(rng.integers(0, 3)))])

    def offset(self, t: float) -> tuple[float, float]:
        f1, f2 = self.freqs_hz
        p = self.phases
        a = self.amplitude_px
        dx = a * (0.7 * math.sin(2 * math.pi * f1 * t + p[0]) + 0.3 * math.sin(2 * math.pi * f2 * t + p[1]))
        dy = a * 0.6 * (0.7 * math.sin(2 * math.pi * f1 * t + p[2]) + 0.3 * math.sin(2 * math.pi * f2 * t + p[3]))
        for tj in self.jolt_times:
            if 0 <= t - tj < 0.5:
                k = math.exp(-(t - tj) / 0.12) * math.sin(2 * math.pi * 12 * (t - tj))
                dx += 2 * a * k
                dy += 1.5 * a * k
        return dx, dy


@dataclass
class LightChange(Distractor):
    t_start: float
    ramp_s: float
    factor: float                # illumination after the change, relative
    back_after_s: float          # 0: stays; else it returns after this long
    kind = "exposure"

    @classmethod
    def draw(cls, rng: np.random.Generator, scene: SceneContext) -> "LightChange":
        return cls(t_start=rng.uniform(0.5, scene.seconds * 0.6), ramp_s=rng.uniform(0.2, 1.5),
                   factor=float(rng.choice([rng.uniform(0.35, 0.75), rng.uniform(1.4, 2.5)])),
                   back_after_s=float(rng.choice([0.0, rng.uniform(1.0, 2.5)])))

    def light_factor(self, t: float) -> float:
        def ramp(x: float) -> float:
            return min(max(x / self.ramp_s, 0.0), 1.0)
        k = ramp(t - self.t_start)
        if self.back_after_s:
            k -= ramp(t - self.t_start - self.ramp_s - self.back_after_s)
        return 1.0 + (self.factor - 1.0) * k


@dataclass
class IrCut(Distractor):
    t_switch: float
    switch_s: float              # the filter moves mechanically over this long
    kind = "ircut"

    @classmethod
    def draw(cls, rng: np.random.Generator, scene: SceneContext) -> "IrCut":
        return cls(t_switch=rng.uniform(0.8, scene.seconds * 0.6), switch_s=rng.uniform(0.05, 0.2))

    def ir_weight(self, t: float) -> float:
        return min(max((t - self.t_switch) / self.switch_s, 0.0), 1.0)

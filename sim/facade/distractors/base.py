"""What every distractor of generator B is: parameters drawn per clip, then drawn into each frame.

A distractor is a dataclass of its own parameters (so a clip's spec says
exactly what was in it) with a `draw(rng, scene)` constructor that picks
plausible values for the scene, and `apply(img, frame)` that changes the
radiance image of one frame in place. Distractors that act on the whole
camera (shake, light level, the IR-cut switch) override `offset`,
`light_factor` or `ir_weight` instead; the defaults leave the frame alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.facade.building import Facade, SceneMaps
from sim.facade.camera import Camera
from sim.facade.lighting import Lighting


@dataclass
class SceneContext:
    """The static scene a distractor is drawn for and drawn into."""
    camera: Camera
    facade: Facade
    maps: SceneMaps
    lighting: Lighting
    fps: float
    seconds: float

    def illum(self, range_m: np.ndarray | float) -> np.ndarray | float:
        return self.lighting.illum(range_m)


@dataclass
class FrameContext:
    index: int
    t0: float                # time the first row starts its exposure
    line_time: float         # rolling shutter: delay from one row to the next
    exposure: float
    background: np.ndarray   # the static radiance of this frame (before any distractor)
    scene: SceneContext
    rng: np.random.Generator  # per-frame randomness of this distractor, seeded from the clip

    @property
    def height(self) -> int:
        return self.background.shape[0]

    def row_times(self, y0: int, y1: int) -> np.ndarray:
        """Mid-exposure time of rows y0..y1-1."""
        return self.t0 + np.arange(y0, y1) * self.line_time + self.exposure / 2


class Distractor:
    kind = "none"

    def prepare(self, scene: SceneContext) -> None:
        """Build whatever depends on the scene (paths, masks); called once before the first frame."""

    def apply(self, img: np.ndarray, frame: FrameContext) -> None:
        """Change the radiance image of one frame in place."""

    def offset(self, t: float) -> tuple[float, float]:
        """Camera displacement (pixels) at time t."""
        return 0.0, 0.0

    def light_factor(self, t: float) -> float:
        """Scene illumination relative to the clip's start."""
        return 1.0

    def ir_weight(self, t: float) -> float:
        """0: the clip's own lighting; 1: switched to the IR illuminator (night mode)."""
        return 0.0

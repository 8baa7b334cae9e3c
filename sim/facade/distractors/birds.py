"""Birds in front of the facade: flapping across, gliding down across floors, diving and pulling up.

Birds fly in world space between the camera and the wall, so perspective
scales and bends their paths like a falling object's. The glide is the false
alarm that matters most: a steady or slowing descent over several floors,
often curving, with the wings held out. The dive starts like a fall (wings
folded, accelerating downward) and then pulls out. Wing beats change the
apparent size and shape several times a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.facade.distractors.base import Distractor, FrameContext, SceneContext
from sim.facade.sprites import SpritePath, draw_sprite

STEP_S = 0.005


@dataclass
class Bird(Distractor):
    t_start: float
    start: tuple[float, float, float]     # world position at t_start
    speed_mps: float                      # horizontal speed
    heading: float                        # radians in the X-Y plane, 0 = +X (along the facade)
    turn_rate: float                      # rad/s
    span_m: float
    albedo: float
    flap_hz: float
    duration_s: float
    kind = "bird"

    def vertical_speed(self, t: np.ndarray) -> np.ndarray:
        return 0.3 * np.sin(2 * math.pi * 0.7 * t)

    def wings_out(self, t: np.ndarray) -> np.ndarray:
        """Wing opening 0..1 (1 = spread) over time."""
        return 0.55 + 0.45 * np.abs(np.cos(math.pi * self.flap_hz * t))

    def path(self, scene: SceneContext) -> SpritePath:
        t = np.arange(0.0, self.duration_s, STEP_S)
        heading = self.heading + self.turn_rate * t
        speed = self.horizontal_speed(t)
        x = self.start[0] + np.cumsum(speed * np.cos(heading)) * STEP_S
        y = self.start[1] + np.cumsum(speed * np.sin(heading)) * STEP_S
        z = self.start[2] + np.cumsum(self.vertical_speed(t)) * STEP_S
        y = np.clip(y, 1.5, scene.camera.distance_m - 0.3)
        u, v, depth = scene.camera.project(x, y, z)
        px = scene.camera.focal_px / np.maximum(depth, 0.5)
        wings = self.wings_out(t)
        size = self.span_m * px * (0.35 + 0.65 * wings)
        aspect = np.clip(0.22 + 0.5 * (1 - wings), 0.15, 1.0)
        du, dv = np.gradient(u), np.gradient(v)
        angle = np.arctan2(dv, du) * 0 + 0.2 * np.sin(2 * math.pi * 0.5 * t)     # wings stay roughly level
        rng_m = np.sqrt(x * x + y * y + (z - scene.camera.cam_height_m) ** 2)
        rad = self.albedo * np.asarray(scene.illum(rng_m), dtype=float) * np.ones_like(t)
        return SpritePath(t=self.t_start + t, u=u, v=v, size=size, aspect=aspect, angle=angle, radiance=rad,
                          edge_px=1.0)

    def horizontal_speed(self, t: np.ndarray) -> np.ndarray:
        return self.speed_mps + 0 * t

    def prepare(self, scene: SceneContext) -> None:
        self._path = self.path(scene)

    def apply(self, img: np.ndarray, frame: FrameContext) -> None:
        draw_sprite(img, self._path, frame.t0, frame.line_time, frame.exposure)

    @staticmethod
    def _common(rng: np.random.Generator, scene: SceneContext) -> dict:
        cam, fa = scene.camera, scene.facade
        depth_y = rng.uniform(0.25, 0.95) * cam.distance_m
        return {"span_m": rng.uniform(0.5, 0.9), "albedo": float(rng.choice([rng.uniform(0.05, 0.2), rng.uniform(0.5, 0.8)])),
                "flap_hz": rng.uniform(4.0, 8.0), "y": depth_y,
                "half_width": depth_y * (cam.width / 2) / cam.focal_px}


@dataclass
class BirdFlap(Bird):
    """Flapping across the view, level or slowly climbing or sinking."""
    kind = "bird_flap"

    @classmethod
    def draw(cls, rng: np.random.Generator, scene: SceneContext) -> "BirdFlap":
        c = cls._common(rng, scene)
        side = rng.choice([-1.0, 1.0])
        speed = rng.uniform(7.0, 15.0)
        return cls(t_start=rng.uniform(0, scene.seconds * 0.4),
                   start=(-side * c["half_width"] * 1.2, c["y"], rng.uniform(5, scene.facade.roof_m)),
                   speed_mps=speed, heading=0.0 if side > 0 else math.pi, turn_rate=rng.uniform(-0.15, 0.15),
                   span_m=c["span_m"], albedo=c["albedo"], flap_hz=c["flap_hz"],
                   duration_s=2.6 * c["half_width"] / speed + 0.5)


@dataclass
class BirdGlide(Bird):
    """Gliding down over several floors: a steady or slowing descent, often curving, wings out."""
    descent_mps: float = 2.5
    slow_tau_s: float = 0.0           # 0: steady descent; else the descent slows with this time constant
    kind = "bird_glide"

    def vertical_speed(self, t: np.ndarray) -> np.ndarray:
        if self.slow_tau_s > 0:
            return -self.descent_mps * np.exp(-t / self.slow_tau_s)
        return -self.descent_mps + 0 * t

    def wings_out(self, t: np.ndarray) -> np.ndarray:
        beats = (np.sin(2 * math.pi * 0.4 * t) > 0.92)          # an occasional short burst of flaps
        return np.where(beats, 0.55 + 0.45 * np.abs(np.cos(math.pi * self.flap_hz * t)), 1.0)

    def horizontal_speed(self, t: np.ndarray) -> np.ndarray:
        return self.speed_mps * (1 - 0.3 * (1 - np.exp(-t / 2.0)))          # slows as it comes in to land

    @classmethod
    def draw(cls, rng: np.random.Generator, scene: SceneContext) -> "BirdGlide":
        c = cls._common(rng, scene)
        fa = scene.facade
        speed = rng.uniform(2.0, 10.0)
        descent = rng.uniform(1.2, 5.0)
        dur = min(scene.seconds * 0.8, rng.uniform(2.5, 5.0))
        z0 = rng.uniform(0.45, 0.95) * fa.roof_m
        x0 = rng.uniform(-0.7, 0.7) * c["half_width"]
        return cls(t_start=rng.uniform(0, max(0.1, scene.seconds - dur)), start=(x0, c["y"], z0), speed_mps=speed,
                   heading=float(rng.uniform(0, 2 * math.pi)), turn_rate=rng.uniform(-0.8, 0.8),
                   span_m=c["span_m"], albedo=c["albedo"], flap_hz=c["flap_hz"], duration_s=dur,
                   descent_mps=descent, slow_tau_s=float(rng.choice([0.0, rng.uniform(0.8, 3.0)])))


@dataclass
class BirdDive(Bird):
    """Diving with folded wings (accelerating down), then pulling up and flying off."""
    dive_accel: float = 6.0           # m/s^2 downward while diving
    dive_s: float = 0.8
    kind = "bird_dive"

    def vertical_speed(self, t: np.ndarray) -> np.ndarray:
        v_end = -self.dive_accel * self.dive_s
        pull = np.exp(-np.maximum(t - self.dive_s, 0) / 0.25)
        after = v_end * pull + 1.5 * (1 - pull)
        return np.where(t < self.dive_s, -self.dive_accel * t, after)

    def wings_out(self, t: np.ndarray) -> np.ndarray:
        flap = 0.55 + 0.45 * np.abs(np.cos(math.pi * self.flap_hz * t))
        return np.where(t < self.dive_s, 0.15, flap)

    def horizontal_speed(self, t: np.ndarray) -> np.ndarray:
        return np.where(t < self.dive_s, self.speed_mps * 0.5, self.speed_mps * 1.5)

    @classmethod
    def draw(cls, rng: np.random.Generator, scene: SceneContext) -> "BirdDive":
        c = cls._common(rng, scene)
        fa = scene.facade
        dur = min(scene.seconds * 0.8, rng.uniform(2.0, 3.5))
        return cls(t_start=rng.uniform(0, max(0.1, scene.seconds - dur)),
                   start=(rng.uniform(-0.6, 0.6) * c["half_width"], c["y"], rng.uniform(0.4, 0.95) * fa.roof_m),
                   speed_mps=rng.uniform(3.0, 8.0), heading=float(rng.uniform(0, 2 * math.pi)),
                   turn_rate=rng.uniform(-0.5, 0.5), span_m=c["span_m"], albedo=c["albedo"], flap_hz=c["flap_hz"],
                   duration_s=dur, dive_accel=rng.uniform(0.4, 0.9) * 9.81, dive_s=rng.uniform(0.4, 1.1))

"""Light that changes on the facade: windows switched on and off, headlights sweeping, reflections in glass.

All three change the picture without anything falling: a window lights up
as a whole (each row at its own readout time, so a switch during a frame
lights only part of the window), a car turning in the courtyard sweeps a soft
pool of light across the lower floors, and reflections (the sun off a moving
car, a reflected headlight) glide across window glass, in any direction,
jumping from pane to pane.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.facade.distractors.base import Distractor, FrameContext, SceneContext


@dataclass
class Windows(Distractor):
    window_ids: list[int]
    switch_times: list[list[float]]
    start_on: list[bool]
    glow: float
    kind = "windows"

    @classmethod
    def draw(cls, rng: np.random.Generator, scene: SceneContext) -> "Windows":
        ids = np.unique(scene.maps.window_id)
        ids = ids[ids >= 0]
        pick = [int(i) for i in rng.choice(ids, size=min(len(ids), int(rng.integers(1, 7))), replace=False)] if len(ids) else []
        times = [sorted(float(x) for x in rng.uniform(0.3, scene.seconds, int(rng.integers(1, 4)))) for _ in pick]
        night = scene.lighting.mode != "day"
        return cls(window_ids=pick, switch_times=times, start_on=[bool(rng.random() < 0.3) for _ in pick],
                   glow=rng.uniform(0.4, 1.2) if night else rng.uniform(0.05, 0.2))

    def prepare(self, scene: SceneContext) -> None:
        wid = scene.maps.window_id
        self._boxes = []
        for i in self.window_ids:
            ys, xs = np.nonzero(wid == i)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            mask = (wid[y0:y1, x0:x1] == i).astype(np.float32) * scene.maps.glass[y0:y1, x0:x1]
            self._boxes.append((y0, y1, x0, x1, mask))

    def apply(self, img: np.ndarray, frame: FrameContext) -> None:
        for (y0, y1, x0, x1, mask), times, on in zip(self._boxes, self.switch_times, self.start_on):
            tr = frame.row_times(y0, y1)
            flips = (tr[:, None] >= np.asarray(times)[None, :]).sum(axis=1)
            state = ((flips % 2) == 1) != on
            # a tube light flickers for a moment after it is switched on
            since = np.array([tr_i - max([t for t in times if t <= tr_i], default=-9.0) for tr_i in tr])
            level = state * np.where(since < 0.15, 0.5 + 0.5 * np.sin(since * 300), 1.0)
            if level.any():
                img[y0:y1, x0:x1] += (self.glow * level[:, None] * mask).astype(np.float32)


def _gauss_blob(img: np.ndarray, u: float, v: float, su: float, sv: float, amp: float,
                weight: np.ndarray | None) -> None:
    h, w = img.shape
    x0, x1 = max(0, int(u - 3 * su)), min(w, int(u + 3 * su) + 1)
    y0, y1 = max(0, int(v - 3 * sv)), min(h, int(v + 3 * sv) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    gx = np.exp(-0.5 * ((np.arange(x0, x1) + 0.5 - u) / su) ** 2).astype(np.float32)
    gy = np.exp(-0.5 * ((np.arange(y0, y1) + 0.5 - v) / sv) ** 2).astype(np.float32)
    blob = amp * gy[:, None] * gx[None, :]
    if weight is not None:
        blob *= weight[y0:y1, x0:x1]
    img[y0:y1, x0:x1] += blob


@dataclass
class Headlights(Distractor):
    t_start: float
    duration_s: float
    x0_m: float
    speed_mps: float
    z_m: float
    spot_m: float
    intensity: float
    kind = "headlights"

    @classmethod
    def draw(cls, rng: np.random.Generator, scene: SceneContext) -> "Headlights":
        d = rng.uniform(1.0, 3.0)
        side = rng.choice([-1.0, 1.0])
        speed = rng.uniform(3.0, 12.0)
        return cls(t_start=rng.uniform(0, max(0.1, scene.seconds - d)), duration_s=d, x0_m=-side * speed * d / 2,
                   speed_mps=side * speed, z_m=rng.uniform(1.0, 8.0), spot_m=rng.uniform(3.0, 8.0),
                   intensity=rng.uniform(1.0, 4.0) if scene.lighting.mode != "day" else rng.uniform(0.1, 0.3))

    def prepare(self, scene: SceneContext) -> None:
        self._scene = scene

    def apply(self, img: np.ndarray, frame: FrameContext) -> None:
        t = frame.t0 + frame.exposure / 2 - self.t_start
        if not 0 <= t <= self.duration_s:
            return
        cam = self._scene.camera
        fade = math.sin(math.pi * t / self.duration_s) ** 0.5
        x = self.x0_m + self.speed_mps * t
        u, v, depth = cam.project(np.array(x), np.array(cam.distance_m), np.array(self.z_m))
        s = float(self.spot_m * cam.focal_px / depth) / 2.5
        _gauss_blob(img, float(u), float(v), s, s * 0.6, self.intensity * fade, self._scene.maps.albedo_vis * 2)


@dataclass
class Reflections(Distractor):
    t_start: float
    duration_s: float
    start_uv: tuple[float, float]
    vel_px_s: tuple[float, float]
    sigma_px: float
    intensity: float
    kind = "reflection"

    @classmethod
    def draw(cls, rng: np.random.Generator, scene: SceneContext) -> "Reflections":
        w, h = scene.camera.width, scene.camera.height
        scale = h / 720
        ang = rng.uniform(0, 2 * math.pi)
        speed = rng.uniform(20, 150) * scale
        return cls(t_start=rng.uniform(0, scene.seconds * 0.5), duration_s=rng.uniform(1.5, scene.seconds),
                   start_uv=(rng.uniform(0.2, 0.8) * w, rng.uniform(0.1, 0.7) * h),
                   vel_px_s=(speed * math.cos(ang), speed * math.sin(ang)), sigma_px=rng.uniform(4, 30) * scale,
                   intensity=rng.uniform(0.5, 3.0))

    def prepare(self, scene: SceneContext) -> None:
        self._glass = scene.maps.glass

    def apply(self, img: np.ndarray, frame: FrameContext) -> None:
        t = frame.t0 + frame.exposure / 2 - self.t_start
        if not 0 <= t <= self.duration_s:
            return
        u = self.start_uv[0] + self.vel_px_s[0] * t
        v = self.start_uv[1] + self.vel_px_s[1] * t
        fade = min(1.0, t / 0.3, (self.duration_s - t) / 0.3)
        _gauss_blob(img, u, v, self.sigma_px, self.sigma_px * 0.7, self.intensity * fade, self._glass)

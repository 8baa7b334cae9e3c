"""A thrown object in generator B: where it leaves the building, how it falls, how it looks, what is true.

An object leaves a window (from the sill) or a balcony (over the rail) of a
given floor, dropped or thrown out with a small speed, possibly held still in
view for a moment first. It falls with gravity and quadratic drag
(`physics.py`), tumbles (its outline turns and its apparent size and
brightness vary with the side it shows), and is drawn as a `SpritePath`
(rolling shutter, motion blur, occlusion). Its reflectance is drawn darker or
brighter than the wall, so its contrast follows the light like the wall's.
The truth records what an evaluation needs, including the apparent size in
pixels (the median over the visible fall).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from sim.facade.building import Facade, SceneMaps
from sim.facade.camera import Camera
from sim.facade.lighting import Lighting
from sim.facade.physics import G, integrate_fall
from sim.facade.sprites import SpritePath

DRAG_FLAG_RATIO = 0.9        # "drag" in the truth: the landing speed is below this times the vacuum speed


@dataclass
class ThrowSpec:
    floor: int
    column: int                  # index into the facade's window columns, from the left
    t_release: float
    from_balcony: bool
    v_out_mps: float             # horizontal speed away from the wall at release (0: dropped)
    v_side_mps: float
    v_up_mps: float
    terminal_mps: float
    size_m: float
    elongation: float            # long / short axis of the object
    tumble_hz: float
    albedo: float
    sheen: float                 # brightness swing with the side shown (0..1)
    hold_s: float = 0.0          # seen held still at the release point before the release
    phase: float = 0.0


@dataclass
class ThrowTruth:
    floor: int
    column: int
    t_release: float
    t_land: float                # last moment it is seen (landed, left the view or hidden by trees)
    t_ground: float              # when it reaches the ground
    size_px: float               # median apparent size over the visible fall
    size_m: float
    drag: bool
    terminal_mps: float
    thrown: bool
    release_xy: tuple[float, float]
    release_world: tuple[float, float, float]
    companions: list[str] = field(default_factory=list)
    track: list[tuple[float, float, float]] = field(default_factory=list)    # (t, x, y) every 0.04 s

    def to_dict(self) -> dict:
        return asdict(self)


def release_point(spec: ThrowSpec, fa: Facade, cam: Camera) -> tuple[float, float, float]:
    cols = fa.columns()
    x = float(cols[min(max(spec.column, 0), len(cols) - 1)])
    base = (spec.floor - 1) * fa.floor_m
    if spec.from_balcony:
        return x, cam.distance_m - fa.balcony_depth_m, base + 1.1
    return x, cam.distance_m - 0.15, base + fa.sill_m + 0.1


def throw_path(spec: ThrowSpec, cam: Camera, fa: Facade, maps: SceneMaps, lighting: Lighting,
               seconds: float) -> tuple[SpritePath, ThrowTruth]:
    p0 = release_point(spec, fa, cam)
    v0 = (spec.v_side_mps, -spec.v_out_mps, spec.v_up_mps)
    fall = integrate_fall(p0, v0, spec.terminal_mps, t_max=max(0.5, seconds - spec.t_release + 0.5),
                          wall_y=cam.distance_m - 0.05)
    hold_t = np.arange(-spec.hold_s, 0.0, 0.005) if spec.hold_s > 0 else np.zeros(0)
    t = np.concatenate([hold_t, fall.t])
    pos = np.concatenate([np.repeat(np.array(p0)[None, :], len(hold_t), axis=0), fall.pos])
    wobble = np.where(t < 0, 0.02 * np.sin(2 * math.pi * 1.3 * t), 0.0)
    u, v, depth = cam.project(pos[:, 0] + wobble, pos[:, 1], pos[:, 2])
    px = cam.focal_px / np.maximum(depth, 0.5)
    spin = np.where(t < 0, 0.0, t) * 2 * math.pi * spec.tumble_hz + spec.phase
    shows_long = np.abs(np.cos(spin))                                   # 1: long side to the camera
    aspect = 1 / (1 + (spec.elongation - 1) * shows_long)
    size = spec.size_m * px * (1 + (spec.elongation - 1) * shows_long) / math.sqrt(spec.elongation)
    rng_m = np.linalg.norm(pos - np.array([0.0, 0.0, cam.cam_height_m]), axis=1)
    rad = spec.albedo * np.asarray(lighting.illum(rng_m), dtype=float) * (1 + spec.sheen * np.cos(2 * spin + 1.0))
    path = SpritePath(t=spec.t_release + t, u=u, v=v, size=size, aspect=aspect, angle=spin * 0.5, radiance=rad,
                      edge_px=1.0)
    # visibility: inside the frame, in front of no tree crown
    h, w = maps.foliage.shape
    after = t >= 0
    ui, vi = np.clip(u.astype(int), 0, w - 1), np.clip(v.astype(int), 0, h - 1)
    seen = (u >= 0) & (u < w) & (v >= 0) & (v < h) & (maps.foliage[vi, ui] < 0.5)
    seen_after = seen & after
    if seen_after.any():
        last = int(np.nonzero(seen_after)[0].max())
        # the object is seen until it first disappears after the release
        first_gone = np.nonzero(after & ~seen)[0]
        first_gone = first_gone[first_gone > np.nonzero(seen_after)[0].min()]
        if len(first_gone):
            last = int(first_gone[0]) - 1
        size_px = float(np.median(np.sqrt(size * size * aspect)[after & seen]))
        t_land = min(spec.t_release + float(t[last]), seconds)
    else:
        size_px, t_land = 0.0, spec.t_release
    vacuum = math.sqrt(max(0.0, spec.v_up_mps ** 2 + 2 * G * (p0[2])))
    landing_speed = float(fall.speed[-1])
    sel = np.nonzero(after)[0][::8]
    track = [(round(spec.t_release + float(t[i]), 3), round(float(u[i]), 1), round(float(v[i]), 1))
             for i in sel if seen[i] and spec.t_release + t[i] <= t_land]
    truth = ThrowTruth(floor=spec.floor, column=spec.column + 1, t_release=spec.t_release, t_land=t_land,
                       t_ground=spec.t_release + float(fall.t[-1]), size_px=size_px, size_m=spec.size_m,
                       drag=landing_speed < DRAG_FLAG_RATIO * vacuum, terminal_mps=spec.terminal_mps,
                       thrown=spec.v_out_mps > 0, release_xy=(float(u[len(hold_t)]), float(v[len(hold_t)])),
                       release_world=p0, track=track)
    return path, truth

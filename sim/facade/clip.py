"""A clip of generator B: its spec, the renderer, its truth and the calibration a technician would mark.

`render_clip(spec)` draws the static facade once (ray cast), then for every
frame: the lighting of that moment (light changes, the IR-cut switch), the
distractors, the falling objects, the camera's shake, and the sensor
(exposure, noise, auto-exposure). `calibration(spec)` projects each floor's
bottom line at the image's centre column through the camera model, as a
technician marking floor lines on a snapshot would, plus the window columns
and the vanishing point of the facade's verticals.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from detection.calibration import Calibration
from sim.facade.building import Facade, SceneMaps, render_maps
from sim.facade.camera import Camera
from sim.facade.distractors import Distractor, FrameContext, SceneContext
from sim.facade.lighting import Lighting
from sim.facade.sensor import Sensor, SensorModel
from sim.facade.sprites import draw_sprite
from sim.facade.throws import ThrowSpec, ThrowTruth, throw_path


@dataclass
class ClipSpec:
    seed: int
    kind: str                    # "throw" or a distractor kind
    width: int
    height: int
    fps: float
    seconds: float
    camera: Camera
    facade: Facade
    lighting: Lighting
    sensor: SensorModel
    throws: list[ThrowSpec] = field(default_factory=list)
    distractors: list[Distractor] = field(default_factory=list)

    @property
    def night(self) -> bool:
        return self.lighting.mode != "day"

    @property
    def kinds(self) -> list[str]:
        return (["throw"] if self.throws else []) + [d.kind for d in self.distractors]


@dataclass
class ClipTruth:
    seed: int
    kind: str
    kinds: list[str]
    width: int
    height: int
    fps: float
    frames: int
    night: bool
    floors: int
    throws: list[ThrowTruth]
    distractors: list[dict]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


def _shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The picture moved by (dx, dy) pixels (bilinear, edges repeated)."""
    ix, iy = math.floor(dx), math.floor(dy)
    fx, fy = dx - ix, dy - iy
    pad = max(abs(ix), abs(iy)) + 2
    p = np.pad(img, pad, mode="edge")
    h, w = img.shape

    def cut(ox: int, oy: int) -> np.ndarray:
        return p[pad - oy: pad - oy + h, pad - ox: pad - ox + w]
    return ((1 - fx) * (1 - fy) * cut(ix, iy) + fx * (1 - fy) * cut(ix + 1, iy)
            + (1 - fx) * fy * cut(ix, iy + 1) + fx * fy * cut(ix + 1, iy + 1)).astype(np.float32)


def scene_context(spec: ClipSpec, maps: SceneMaps | None = None) -> SceneContext:
    return SceneContext(camera=spec.camera, facade=spec.facade, maps=maps or render_maps(spec.camera, spec.facade),
                        lighting=spec.lighting, fps=spec.fps, seconds=spec.seconds)


def render_clip(spec: ClipSpec) -> tuple[np.ndarray, float, ClipTruth]:
    """Render the clip: (frames N x H x W uint8, fps, truth)."""
    scene = scene_context(spec)
    maps = scene.maps
    bg_main = spec.lighting.background(maps)
    ircut = [d for d in spec.distractors if d.ir_weight(1e9) > 0]
    bg_ir = None
    ir_lighting = None
    if ircut:
        ir_lighting = Lighting(mode="ir", ir_range_m=35.0, ambient=0.03, window_glow=spec.lighting.window_glow,
                               electrons_scale=spec.lighting.electrons_scale)
        bg_ir = ir_lighting.background(maps)
    for d in spec.distractors:
        d.prepare(scene)
    paths, truths = [], []
    for t in spec.throws:
        p, tr = throw_path(t, spec.camera, spec.facade, maps, spec.lighting, spec.seconds)
        tr.companions = [d.kind for d in spec.distractors]
        paths.append(p)
        truths.append(tr)
    sensor = Sensor(spec.sensor, spec.width, spec.height, np.random.default_rng(spec.seed ^ 0x5E5))
    sensor.settle(float(bg_main.mean()), spec.lighting.electrons_per_unit_s)
    occluder = maps.foliage if spec.facade.tree_line_m > 0 else None
    n = int(round(spec.seconds * spec.fps))
    frames = np.empty((n, spec.height, spec.width), dtype=np.uint8)
    rngs = [np.random.default_rng([spec.seed, 7, i]) for i in range(len(spec.distractors))]
    for i in range(n):
        t0 = i / spec.fps
        factor = 1.0
        w_ir = 0.0
        for d in spec.distractors:
            factor *= d.light_factor(t0)
            w_ir = max(w_ir, d.ir_weight(t0))
        if bg_ir is not None and w_ir > 0:
            bg = bg_main * (1 - w_ir) + bg_ir * w_ir
            eps = spec.lighting.electrons_per_unit_s * (1 - w_ir) + ir_lighting.electrons_per_unit_s * w_ir
        else:
            bg = bg_main
            eps = spec.lighting.electrons_per_unit_s
        img = bg.copy()
        ctx = FrameContext(index=i, t0=t0, line_time=sensor.line_time_s, exposure=sensor.exposure_s, background=bg,
                           scene=scene, rng=np.random.default_rng([spec.seed, 11, i]))
        for d, r in zip(spec.distractors, rngs):
            ctx.rng = r
            d.apply(img, ctx)
        for p in paths:          # tree crowns stand in front of the wall and hide a falling object
            draw_sprite(img, p, t0, sensor.line_time_s, sensor.exposure_s, occluder=occluder)
        dx, dy = 0.0, 0.0
        for d in spec.distractors:
            ox, oy = d.offset(t0)
            dx, dy = dx + ox, dy + oy
        if dx or dy:
            img = _shift(img, dx, dy)
        if factor != 1.0:
            img *= factor
        frames[i], lin = sensor.capture(img, eps)
        sensor.meter(lin)
    truth = ClipTruth(seed=spec.seed, kind=spec.kind, kinds=spec.kinds, width=spec.width, height=spec.height,
                      fps=spec.fps, frames=n, night=spec.night, floors=spec.facade.floors, throws=truths,
                      distractors=[{"kind": d.kind, **_params(d)} for d in spec.distractors])
    return frames, spec.fps, truth


def _params(d: Distractor) -> dict:
    out = {}
    for k, v in asdict(d).items():
        if isinstance(v, (int, float, str, bool)):
            out[k] = v
        elif isinstance(v, (list, tuple)) and len(v) <= 8 and all(isinstance(x, (int, float)) for x in v):
            out[k] = list(v)
    return out


def calibration(spec: ClipSpec) -> Calibration:
    """The calibration a technician would mark on a snapshot of this camera."""
    cam, fa = spec.camera, spec.facade
    floors = []
    for f in range(1, fa.floors + 2):
        z = (f - 1) * fa.floor_m
        u, v, _ = cam.project(np.array(0.0), np.array(cam.distance_m), np.array(z))
        if -0.02 * cam.height <= float(v) <= cam.height * 1.02:
            floors.append((f, round(float(v), 1)))
    if len(floors) < 2:
        raise ValueError("fewer than two floor lines are in view")
    cols = fa.columns()
    z_mid = (fa.floors // 2) * fa.floor_m + fa.sill_m + fa.window_h_m / 2
    us, vs, _ = cam.project(cols, np.full(len(cols), cam.distance_m), np.full(len(cols), z_mid))
    inside = (us >= 0) & (us < cam.width)
    columns = tuple((int(i) + 1, round(float(u), 1)) for i, u in enumerate(us) if inside[i])
    # verticals meet where the facade's vertical direction projects (above the image when tilted up)
    vp_y = cam.centre[1] - cam.focal_px / math.tan(cam.tilt) if cam.tilt > 1e-3 else -1e6
    return Calibration(floors=tuple(floors), columns=columns, floor_height_m=round(fa.floor_m, 3),
                       image_width=cam.width, image_height=cam.height,
                       columns_y=round(float(vs[inside][0]), 1) if inside.any() else None,
                       vanishing_point=(round(cam.centre[0], 1), round(vp_y, 1)))

"""Drawing realistic clips of generator B at random: `random_clip(seed, kind, width, height)`.

A clip is a building (8 to 33 floors), a camera an installer would have set
up for it, day or night, a sensor, and either one throw (with an optional
companion distractor) or one distractor kind alone. Throw sizes are drawn
evenly over the bins the evaluation reports (2-3, 3-6, 6-12, 12+ px): the
object's physical size follows from the wanted apparent size and its
distance, so a 12 px object thrown from a high floor is a large one. The
same seed always gives the same clip.
"""

from __future__ import annotations

import math

import numpy as np

from sim.facade.building import draw_facade
from sim.facade.camera import frame_camera
from sim.facade.clip import ClipSpec
from sim.facade.distractors import KINDS, Rain, SceneContext
from sim.facade.building import render_maps
from sim.facade.lighting import draw_lighting
from sim.facade.sensor import draw_sensor
from sim.facade.throws import ThrowSpec

DISTRACTOR_KINDS = tuple(KINDS)          # bird_flap, bird_glide, bird_dive, insect, rain, snow, trees, laundry,...
SIZE_BINS = ((2.0, 3.0), (3.0, 6.0), (6.0, 12.0), (12.0, 20.0))
NIGHT_FRACTION = 0.35
NIGHT_KINDS = ("headlights", "ircut")    # kinds that only happen in the dark (ircut: at dusk)
DEFAULT_SECONDS = 6.0
DEFAULT_FPS = 25.0


def random_clip(seed: int, kind: str = "throw", width: int = 1280, height: int = 720, *,
                companion: str | None = None, size_bin: int | None = None, night: bool | None = None,
                seconds: float = DEFAULT_SECONDS, fps: float = DEFAULT_FPS, rain: str | None = None) -> ClipSpec:
    """A clip spec drawn from `seed`: "throw" (with `companion`, a distractor kind or None) or a distractor kind.

    `size_bin` picks the throw's apparent size bin (index into SIZE_BINS;
    default: drawn from the seed); `rain` forces a rain intensity
    ("light", "moderate", "heavy") for a rain distractor.
    """
    if kind != "throw" and kind not in KINDS:
        raise ValueError(f"unknown clip kind {kind!r}; expected 'throw' or one of {', '.join(KINDS)}")
    if companion is not None and companion not in KINDS:
        raise ValueError(f"unknown companion distractor {companion!r}")
    rng = np.random.default_rng([seed, 0xFACADE])
    floors = int(rng.integers(8, 34))
    fa = draw_facade(rng, floors)
    wanted = {kind, companion}
    if "trees" in wanted and fa.tree_line_m == 0:
        fa = _replace(fa, tree_line_m=float(rng.uniform(4, 10)))
    if "laundry" in wanted and fa.balcony_every == 0:
        fa = _replace(fa, balcony_every=2)
    if "drip" in wanted and fa.ac_every == 0:
        fa = _replace(fa, ac_every=1)
    cam = frame_camera(width, height, fa.roof_m, rng)
    if night is None:
        night = bool(rng.random() < NIGHT_FRACTION) or bool(wanted & {"headlights"})
    if "ircut" in wanted:
        lighting = draw_lighting(rng, False)
        lighting = type(lighting)(mode="dusk", sun=lighting.sun, sky=lighting.sky, window_glow=rng.uniform(0.4, 1.0),
                                  electrons_scale=lighting.electrons_scale)
    else:
        lighting = draw_lighting(rng, night)
    sensor = draw_sensor(rng, fps)
    spec = ClipSpec(seed=seed, kind=kind, width=width, height=height, fps=fps, seconds=seconds, camera=cam,
                    facade=fa, lighting=lighting, sensor=sensor)
    scene = SceneContext(camera=cam, facade=fa, maps=render_maps(cam, fa) if wanted & {"windows"} else None,
                         lighting=lighting, fps=fps, seconds=seconds)
    for k in (kind, companion):
        if k is None or k == "throw":
            continue
        if k == "rain":
            spec.distractors.append(Rain.draw(rng, scene, intensity=rain))
        else:
            spec.distractors.append(KINDS[k].draw(rng, scene))
    if kind == "throw":
        spec.throws.append(_draw_throw(rng, spec, size_bin))
    return spec


def _replace(fa, **kw):
    from dataclasses import replace
    return replace(fa, **kw)


def _draw_throw(rng: np.random.Generator, spec: ClipSpec, size_bin: int | None) -> ThrowSpec:
    cam, fa = spec.camera, spec.facade
    # a floor whose window is in view with at least three floors of fall below it in view
    visible = []
    for f in range(2, fa.floors + 1):
        _, v, _ = cam.project(np.array(0.0), np.array(cam.distance_m), np.array((f - 1) * fa.floor_m + 1.0))
        if 0.04 * cam.height < float(v) < 0.85 * cam.height:
            visible.append(f)
    floor = int(rng.choice(visible[3:] if len(visible) > 4 else visible or [fa.floors]))
    cols = fa.columns()
    us, _, _ = cam.project(cols, np.full(len(cols), cam.distance_m), np.full(len(cols), (floor - 1) * fa.floor_m))
    in_view = np.nonzero((us > 0.08 * cam.width) & (us < 0.92 * cam.width))[0]
    column = int(rng.choice(in_view)) if len(in_view) else len(cols) // 2
    b = int(rng.integers(0, len(SIZE_BINS))) if size_bin is None else size_bin
    lo, hi = SIZE_BINS[b]
    want_px = rng.uniform(lo, hi)
    # apparent size is ~ size_m * focal / depth; depth along the axis at the release height
    z = (floor - 1) * fa.floor_m + 1.0
    _, _, depth = cam.project(np.array(0.0), np.array(cam.distance_m), np.array(z))
    # the object comes nearer as it falls: aim the median size, a little below the release's
    size_m = want_px * float(depth) / cam.focal_px * 0.85
    terminal = float(math.exp(rng.uniform(math.log(8.0), math.log(60.0))))
    thrown = rng.random() < 0.5
    t_release = rng.uniform(0.6, 1.6)
    return ThrowSpec(floor=floor, column=column, t_release=t_release, from_balcony=bool(fa.balcony_every and column % fa.balcony_every == 0),
                     v_out_mps=rng.uniform(0.5, 3.0) if thrown else 0.0, v_side_mps=rng.normal(0, 0.4) if thrown else 0.0,
                     v_up_mps=rng.uniform(-0.5, 1.5) if thrown else 0.0, terminal_mps=terminal, size_m=size_m,
                     elongation=rng.uniform(1.0, 3.0), tumble_hz=rng.uniform(0.5, 4.0),
                     albedo=_object_albedo(rng, fa.wall_albedo), sheen=rng.uniform(0.0, 0.4),
                     hold_s=float(rng.choice([0.0, rng.uniform(0.2, 0.8)])), phase=float(rng.uniform(0, 6.3)))


def _object_albedo(rng: np.random.Generator, wall: float) -> float:
    """Darker or brighter than the wall behind (never the same grey)."""
    if rng.random() < 0.5:
        return float(wall * rng.uniform(0.1, 0.55))
    return float(min(0.95, wall * rng.uniform(1.5, 2.6)))

"""Generator B: an independent facade scene generator, to check the thrown-object detector on scenes it was not tuned on.

The detector was developed against the project's first scene generator
(`sim/scene.py`). A detector tuned on one renderer learns that renderer; this
package is written apart from it (its own camera, light, sensor, codec,
weather and distractors) so that figures measured on it say how the detector
does on scenes it has never seen. Modules:

    camera.py      pinhole camera tilted up the facade, barrel distortion
    building.py    facade layout and the ray-cast static scene
    lighting.py    day, dusk, IR illuminator
    physics.py     fall with gravity and quadratic drag
    sprites.py     moving things drawn with rolling shutter and motion blur
    throws.py      a thrown object and its ground truth
    sensor.py      noise, fixed patterns, auto-exposure, gamma
    codec.py       H.264 round trip (PyAV) and MP4 files
    distractors/   one class per distractor kind
    clip.py        a clip's spec, the renderer, the calibration
    draw.py        random_clip(seed, kind, width, height)
    cli.py         python -m sim.facade render ...
"""

from sim.facade.clip import ClipSpec, ClipTruth, calibration, render_clip
from sim.facade.draw import DISTRACTOR_KINDS, SIZE_BINS, random_clip

__all__ = ["ClipSpec", "ClipTruth", "calibration", "render_clip", "random_clip", "DISTRACTOR_KINDS", "SIZE_BINS"]

"""Generator B's distractors, one kind per class; `KINDS` maps each kind name to its class.

Each class draws its own parameters per clip (`draw(rng, scene)`) and acts on
the frames through the small interface in `base.py`.
"""

from sim.facade.distractors.base import Distractor, FrameContext, SceneContext
from sim.facade.distractors.birds import BirdDive, BirdFlap, BirdGlide
from sim.facade.distractors.camera_effects import IrCut, LightChange, Shake
from sim.facade.distractors.drips import Drips
from sim.facade.distractors.insects import Insect
from sim.facade.distractors.lights import Headlights, Reflections, Windows
from sim.facade.distractors.precipitation import Rain, Snow
from sim.facade.distractors.wind import Laundry, Trees

KINDS: dict[str, type[Distractor]] = {c.kind: c for c in (
    BirdFlap, BirdGlide, BirdDive, Insect, Rain, Snow, Trees, Laundry, Drips, Windows, Headlights, Reflections,
    Shake, LightChange, IrCut)}

__all__ = ["Distractor", "FrameContext", "SceneContext", "KINDS"] + [c.__name__ for c in KINDS.values()]

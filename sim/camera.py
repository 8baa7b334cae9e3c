"""A simulated thrown-object camera: a live synthetic facade scene the real camera driver watches.

The device renders `sim.scene` frames on demand and hands them to the driver
through the world's resources (`resources["camera_feeds"][name]`), which the
driver's `synthetic` source with `feed = name` reads at the scene's frame
rate. Everything after the frame source is the real thing: detector,
evidence, events.

Params: `width`, `height`, `fps`, `floors`, `seed`, `night`, `pre_s`,
`post_s`, `bird_every_s` (steady activity: a bird now and then; 0 = none).
The detection package renders nothing itself: frames reach it only through
the feeds built here (`SceneFeed` live, `SpecFeed` for a fixed scene).

Scenario actions:
- `throw`: floor (12), drag (false), mode ("dropped" | "thrown"), size_px (5), column
- `bird`, `rain`, `snow`, `insect`, `leaf`, `headlights`, `cloud`: duration (5 s), amount (1)
- `lights`: kind "windows" (lights switching in windows; default), "step", "exposure", "ir_switch"
- `shake`: duration (3 s), px (3)
- `freeze`: duration (8 s): the picture stops changing (a hung encoder)
- `cover`: duration (12 s): something dark over the lens

The scene plays idle stretches of the facade; an action starts a new stretch
with the same seed (so the same facade and noise), after any throw still
falling. `freeze` and `cover` act on the picture at once.
"""

from __future__ import annotations

import math
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping

import numpy as np

from detection.sources import FEEDS_KEY
from gateway.atomicfile import write_atomic
from sim.base import SimDevice, SimWorld, UnknownAction

RENAMED_PARAMS = {"pre_seconds": "pre_s", "post_seconds": "post_s"}
DISTRACTOR_ACTIONS = ("bird", "rain", "snow", "insect", "leaf", "headlights", "cloud")


@dataclass
class _Effect:
    kind: str          # "freeze" | "cover"
    until: float       # feed time


@dataclass
class SpecFeed:
    """The frames of one fixed `sim.scene.SceneSpec`, as a feed for `SyntheticSource`."""

    spec: Any

    @property
    def fps(self) -> float:
        return float(self.spec.fps)

    def frames(self) -> Iterator[tuple[float, np.ndarray]]:
        from sim.scene import iter_frames
        return iter_frames(self.spec)


@dataclass
class SceneFeed:
    """Frames of a facade that scenario actions change while it plays."""

    width: int = 640
    height: int = 360
    fps: float = 12.5
    floors: int = 18
    seed: int = 1
    night: bool = False
    idle_seconds: float = 30.0
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._actions: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self._effects: list[_Effect] = []
        self._lock = threading.Lock()
        self._t = 0.0
        self._last: np.ndarray | None = None
        self._rng = np.random.default_rng(self.seed + 1)

    # -- what the scene is -----------------------------------------------------
    def base_spec(self, seconds: float) -> Any:
        from sim.scene import SceneSpec
        return SceneSpec(width=self.width, height=self.height, fps=self.fps, seconds=seconds, seed=self.seed,
                         night=self.night, floors=self.floors)

    def calibration(self) -> Any:
        from sim.scene import scene_calibration
        return scene_calibration(self.base_spec(1.0))

    def request(self, action: str, params: Mapping[str, Any]) -> None:
        """Thread-safe: the scenario timeline asks, the frame generator acts."""
        if action in ("freeze", "cover"):
            default = 8.0 if action == "freeze" else 12.0
            with self._lock:
                self._effects.append(_Effect(action, self._t + float(params.get("duration", default))))
            return
        self._actions.put((action, dict(params)))

    def segment(self, action: str | None, p: Mapping[str, Any]) -> Any:
        """The scene spec of the stretch that plays an action (None: an idle stretch)."""
        from sim.scene import DistractorSpec, LightingChange, ThrowSpec, fall_time
        if action is None:
            return self.base_spec(self.idle_seconds)
        if action == "throw":
            floor = int(p.get("floor", 12))
            drag = bool(p.get("drag", False))
            ts = ThrowSpec(floor=floor, t_release=1.0, drag=drag, mode=str(p.get("mode", "dropped")),
                           size_px=float(p.get("size_px", 5.0)), column=p.get("column"),
                           hold_s=float(p.get("hold_s", 0.3)))
            spec = self.base_spec(1.0 + fall_time(floor) * (2.5 if drag else 1.0) + 2.0)
            spec.throws = [ts]
            return spec
        spec = self.base_spec(float(p.get("duration", 5.0)))
        if action in DISTRACTOR_ACTIONS:
            spec.distractors = [DistractorSpec(action, t_start=0.0, amount=float(p.get("amount", 1.0)))]
        elif action == "lights":
            kind = str(p.get("kind", "windows"))
            if kind == "windows":
                spec.distractors = [DistractorSpec("light", t_start=0.2, amount=float(p.get("amount", 1.0)))]
            else:
                spec.lighting_changes = [LightingChange(t=0.2, kind=kind, gain=float(p.get("gain", 1.35)))]
                spec.seconds = max(spec.seconds, 3.0)
        elif action == "shake":
            spec.shake_px = float(p.get("px", 3.0))
            spec.shake_window = (0.0, spec.seconds)
        else:
            raise UnknownAction(action)
        return spec

    # -- frames ------------------------------------------------------------------
    def frames(self) -> Iterator[tuple[float, np.ndarray]]:
        """(t, frame) forever (until the world stops), t continuing across stretches."""
        from sim.scene import iter_frames
        while not self.stopping.is_set():
            try:
                action, params = self._actions.get_nowait()
            except queue.Empty:
                action, params = None, {}
            spec = self.segment(action, params)
            offset = self._t
            for t, frame in iter_frames(spec):
                if self.stopping.is_set():
                    return
                now = offset + t
                yield now, self._effect(now, frame)
                self._t = now + 1.0 / self.fps
                if action is None and not self._actions.empty():
                    break   # an idle stretch gives way to the next action at once

    def _effect(self, now: float, frame: np.ndarray) -> np.ndarray:
        with self._lock:
            self._effects = [e for e in self._effects if e.until > now]
            kinds = {e.kind for e in self._effects}
        if "cover" in kinds:
            dark = 6.0 + self._rng.normal(0.0, 1.0, frame.shape)
            frame = np.clip(dark, 0, 255).astype(np.uint8)
        if "freeze" in kinds and self._last is not None:
            return self._last.copy()
        self._last = frame
        return frame


class CameraSim(SimDevice):
    """A synthetic facade camera for the `camera` driver."""

    kind: ClassVar[str] = "camera"
    actions: ClassVar[tuple[str, ...]] = ("throw", *DISTRACTOR_ACTIONS, "lights", "shake", "freeze", "cover")

    def __init__(self, name: str, params: Mapping[str, Any], world: SimWorld) -> None:
        super().__init__(name, params, world)
        p = self.params
        for old, new in RENAMED_PARAMS.items():
            if old in p:
                raise ValueError(f"camera {name}: param {old!r} is renamed: use {new!r}")
        self.feed = SceneFeed(width=int(p.get("width", 640)), height=int(p.get("height", 360)),
                              fps=float(p.get("fps", 12.5)), floors=int(p.get("floors", 18)),
                              seed=int(p.get("seed", 1)), night=bool(p.get("night", False)),
                              stopping=world.stopping)
        self.pre_s = float(p.get("pre_s", 3.0))
        self.post_s = float(p.get("post_s", 3.0))
        self.bird_every_s = float(p.get("bird_every_s", 0.0))
        world.resources.setdefault(FEEDS_KEY, {})[name] = self.feed
        self._stop = threading.Event()
        self._activity: threading.Thread | None = None

    def config(self) -> dict[str, Any]:
        cal_path = Path(self.world.state_dir) / f"{self.name}.cal.toml"
        cal_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cal_path, self.feed.calibration().to_toml())
        return {"camera": [{
            "name": self.name,
            "calibration": str(cal_path),
            "source": {"type": "synthetic", "feed": self.name, "realtime": True},
            "evidence": {"pre_s": self.pre_s, "post_s": self.post_s, "track_s": 5.0, "ring_max_mb": 64.0},
            "telemetry_s": 5.0,
        }]}

    def start(self) -> None:
        if self.bird_every_s > 0:
            self._stop.clear()
            self._activity = threading.Thread(target=self._birds, name=f"sim-{self.name}", daemon=True)
            self._activity.start()

    def _birds(self) -> None:
        rng = self.world.rng
        while not self._stop.wait(rng.expovariate(1.0 / self.bird_every_s)):
            if self.world.stopping.is_set():
                return
            self.feed.request("bird", {"duration": 4.0})

    def stop(self) -> None:
        self._stop.set()
        if self._activity is not None:
            self._activity.join(2.0)

    def act(self, action: str, params: Mapping[str, Any]) -> None:
        if action not in self.actions:
            super().act(action, params)
        if action == "throw":
            floor = params.get("floor", 12)
            if not isinstance(floor, int) or not 2 <= floor <= self.feed.floors:
                raise ValueError(f"throw: floor must be an integer 2..{self.feed.floors}, got {floor!r}")
        for key in ("duration", "amount", "px", "size_px"):
            if key in params and not (isinstance(params[key], (int, float)) and params[key] > 0
                                      and math.isfinite(params[key])):
                raise ValueError(f"{action}: {key} must be a positive number, got {params[key]!r}")
        self.feed.request(action, params)

"""Is the camera still seeing? Frozen pictures, a covered or blinded lens, no frames at all.

    mon = CameraHealth(HealthSettings())
    change = mon.frame(now, gray)      # for every frame
    change = mon.idle(now)             # when no frame came (a read returned nothing or failed)
    if change: ...                     # HealthChange("fault", reason, detail) or ("restore", ...)

A condition must hold for its set number of seconds before it is a fault (a
hand passing the lens is not), and the camera must look normal for
`restore_s` before the fault is cleared. One fault at a time: while
faulted, the camera is restored only once every condition is clear.
`now` is a monotonic clock in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

REASONS = ("no_frames", "frozen", "covered", "blinded")


def _setting(default: float, doc: str, lo: float, hi: float | None = None) -> Any:
    return field(default=default, metadata={"doc": doc, "min": lo, "max": hi})


@dataclass
class HealthSettings:
    """The `[camera.health]` table: each field is a config key, its default and its doc."""

    no_frames_s: float = _setting(5.0, "no frame for this long: `camera_fault` `no_frames`", 0.5)
    frozen_s: float = _setting(5.0, "picture unchanged (below `frozen_diff`) this long: `frozen`", 0.5)
    frozen_diff: float = _setting(0.05, "mean difference between consecutive samples under which the "
                                  "picture counts as unchanged, grey levels", 0.0)
    covered_s: float = _setting(10.0, "no contrast this long: `covered` (dark) or `blinded` (bright)", 0.5)
    low_contrast: float = _setting(4.0, "standard deviation of the picture below which it has no contrast, "
                                   "grey levels", 0.0)
    dark_level: float = _setting(60.0, "mean grey level under which a picture without contrast is `covered`",
                                 0.0, 255.0)
    bright_level: float = _setting(220.0, "mean grey level over which a picture without contrast is `blinded`",
                                   0.0, 255.0)
    restore_s: float = _setting(3.0, "normal this long after a fault: `camera_restore`", 0.0)
    sample_step: int = 8             # every Nth pixel each way is enough to judge (not a config key)


@dataclass(frozen=True)
class HealthChange:
    kind: str        # "fault" | "restore"
    reason: str      # one of REASONS
    detail: str


class CameraHealth:
    def __init__(self, settings: HealthSettings | None = None) -> None:
        self.s = settings or HealthSettings()
        self.fault: str | None = None
        self.fault_since: float | None = None
        self._since: dict[str, float | None] = {r: None for r in REASONS}
        self._normal_since: float | None = None
        self._last_frame: float | None = None
        self._started: float | None = None
        self._prev: np.ndarray | None = None
        self.mean = 0.0
        self.contrast = 0.0
        self.motion = 0.0

    def _hold(self, reason: str, active: bool, now: float) -> bool:
        """Track how long a condition has held; True once it held its set time."""
        if not active:
            self._since[reason] = None
            return False
        if self._since[reason] is None:
            self._since[reason] = now
        limit = {"frozen": self.s.frozen_s, "covered": self.s.covered_s,
                 "blinded": self.s.covered_s, "no_frames": self.s.no_frames_s}[reason]
        return now - self._since[reason] >= limit   # type: ignore[operator]

    def frame(self, now: float, gray: np.ndarray) -> HealthChange | None:
        self._last_frame = now
        self._since["no_frames"] = None
        step = self.s.sample_step
        sample = gray[::step, ::step].astype(np.float32)
        self.mean = float(sample.mean())
        self.contrast = float(sample.std())
        if self._prev is not None and self._prev.shape == sample.shape:
            self.motion = float(np.abs(sample - self._prev).mean())
        else:
            self.motion = float("inf")
        self._prev = sample
        flat = self.contrast < self.s.low_contrast
        held = {
            "frozen": self._hold("frozen", self.motion < self.s.frozen_diff, now),
            "covered": self._hold("covered", flat and self.mean < self.s.dark_level, now),
            "blinded": self._hold("blinded", flat and self.mean > self.s.bright_level, now),
        }
        return self._decide(now, held)

    def idle(self, now: float) -> HealthChange | None:
        """No frame now; call regularly while the source is silent or failing."""
        if self._started is None:
            self._started = now
        last = self._last_frame if self._last_frame is not None else self._started
        self._since["no_frames"] = last
        held = {"no_frames": now - last >= self.s.no_frames_s}
        return self._decide(now, held)

    def _decide(self, now: float, held: dict[str, bool]) -> HealthChange | None:
        if self.fault is None:
            for reason in REASONS:
                if held.get(reason):
                    self.fault, self.fault_since, self._normal_since = reason, now, None
                    return HealthChange("fault", reason, self.describe(reason))
            return None
        if any(self._since[r] is not None for r in REASONS):
            self._normal_since = None
            return None
        if self._normal_since is None:
            self._normal_since = now
        if now - self._normal_since >= self.s.restore_s:
            reason, since = self.fault, self.fault_since or now
            self.fault = self.fault_since = None
            return HealthChange("restore", reason, f"camera normal again after {now - since:.0f} s")
        return None

    def describe(self, reason: str) -> str:
        return {
            "no_frames": f"no frames for {self.s.no_frames_s:g} s",
            "frozen": f"picture has not changed for {self.s.frozen_s:g} s",
            "covered": f"lens covered or view blocked (dark, contrast {self.contrast:.1f})",
            "blinded": f"camera blinded (bright, contrast {self.contrast:.1f})",
        }[reason]

"""The image sensor of generator B: exposure, auto-exposure steps, noise, fixed patterns, gamma.

A pure model in the sense that matters for tests: given its parameters and a
seeded generator, the same radiance gives the same frame. Noise is physical:
shot noise from the photo-electron count (so a dark night scene, amplified by
a high gain, is noisy), read noise, fixed-pattern noise (per-pixel gain and
offset, which does not change from frame to frame), hot pixels (some of them
blinking) and lens vignetting. Auto-exposure meters the previous frame and
moves exposure time and gain in discrete steps, as IP cameras do, so a change
of light shows as a few jumps of the whole picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

GAMMA = 1 / 2.2
LUT_BITS = 12


@dataclass(frozen=True)
class SensorModel:
    full_well_e: float = 9000.0
    read_noise_e: float = 3.0
    prnu: float = 0.01               # per-pixel gain spread (fixed pattern)
    dsnu_e: float = 1.5              # per-pixel offset spread, electrons (fixed pattern)
    hot_fraction: float = 5e-5       # pixels with a high dark current, left after the ISP's defect correction
    hot_e_per_s: float = 4e4         # their dark current
    blink_fraction: float = 0.1      # hot pixels that switch on and off (random telegraph)
    vignetting: float = 0.25         # fraction of light lost in the corners (cos^4-like falloff)
    readout_s: float = 0.02          # rolling shutter: time from the first row to the last
    exposure_min_s: float = 1 / 4000
    exposure_max_s: float = 1 / 30   # longest shutter (night): motion blur
    max_gain: float = 64.0
    target: float = 0.18             # auto-exposure aim: mean linear signal (0..1 of full scale)
    ae_tolerance: float = 0.12       # |log(mean / target)| tolerated before auto-exposure acts
    ae_step: float = 1.3             # largest exposure change per frame (a step, not a glide)


def draw_sensor(rng: np.random.Generator, fps: float) -> SensorModel:
    return SensorModel(full_well_e=rng.uniform(6000, 12000), read_noise_e=rng.uniform(1.5, 4.0),
                       prnu=rng.uniform(0.005, 0.015), dsnu_e=rng.uniform(0.5, 3.0),
                       hot_fraction=rng.uniform(1e-5, 1e-4), vignetting=rng.uniform(0.1, 0.4),
                       readout_s=rng.uniform(0.5, 0.9) / fps, exposure_max_s=rng.choice([1 / 50, 1 / fps]),
                       target=rng.uniform(0.14, 0.22), ae_tolerance=rng.uniform(0.08, 0.15),
                       ae_step=rng.uniform(1.15, 1.4))


@dataclass
class Sensor:
    """The model's state for one clip: fixed patterns, the AE setting, the noise generator."""
    model: SensorModel
    width: int
    height: int
    rng: np.random.Generator
    exposure_s: float = 0.0
    gain: float = 1.0
    _gainmap: np.ndarray = field(init=False, repr=False)
    _offset: np.ndarray = field(init=False, repr=False)
    _hot_idx: np.ndarray = field(init=False, repr=False)
    _hot_blink: np.ndarray = field(init=False, repr=False)
    _lut: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        m, h, w = self.model, self.height, self.width
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
        vign = (1 - m.vignetting * r2 * (0.6 + 0.4 * r2)).astype(np.float32)
        self._gainmap = vign * (1 + m.prnu * self.rng.standard_normal((h, w), dtype=np.float32))
        self._offset = (m.dsnu_e * self.rng.standard_normal((h, w), dtype=np.float32))
        n_hot = max(1, int(m.hot_fraction * h * w))
        self._hot_idx = self.rng.choice(h * w, size=n_hot, replace=False)
        self._hot_blink = self.rng.random(n_hot) < m.blink_fraction
        self._hot_rate = m.hot_e_per_s * self.rng.uniform(0.3, 1.0, n_hot)
        s = np.linspace(0, 1, 1 << LUT_BITS)
        self._lut = np.round(255 * s ** GAMMA).astype(np.uint8)

    @property
    def line_time_s(self) -> float:
        return self.model.readout_s / self.height

    def settle(self, radiance_mean: float, electrons_per_unit_s: float) -> None:
        """Set exposure and gain as a converged auto-exposure would for this mean radiance."""
        self._apply_product(self.model.target * self.model.full_well_e / max(radiance_mean * electrons_per_unit_s, 1e-9))

    def _apply_product(self, t_times_gain: float) -> None:
        m = self.model
        t = min(max(t_times_gain, m.exposure_min_s), m.exposure_max_s)
        self.exposure_s = t
        self.gain = min(max(t_times_gain / t, 1.0), m.max_gain)

    def meter(self, frame_linear_mean: float) -> None:
        """Auto-exposure after a frame: a step toward the target when off by more than the tolerance."""
        m = self.model
        err = math.log(m.target / max(frame_linear_mean, 1e-4))
        if abs(err) <= m.ae_tolerance:
            return
        step = math.exp(min(max(err, -math.log(m.ae_step)), math.log(m.ae_step)))
        self._apply_product(self.exposure_s * self.gain * step)

    def capture(self, radiance: np.ndarray, electrons_per_unit_s: float) -> tuple[np.ndarray, float]:
        """Radiance (H x W float32) -> (uint8 frame, mean linear signal); then `meter` it."""
        m = self.model
        e = radiance * (electrons_per_unit_s * self.exposure_s) * self._gainmap
        hot = self._hot_rate * self.exposure_s
        if self._hot_blink.any():
            hot = np.where(self._hot_blink & (self.rng.random(len(hot)) < 0.5), 0.0, hot)
        e.reshape(-1)[self._hot_idx] += hot
        np.maximum(e, 0, out=e)
        noise = self.rng.standard_normal(e.shape, dtype=np.float32)
        sigma = np.sqrt(e + m.read_noise_e ** 2)
        e += noise * sigma + self._offset
        scale = self.gain / m.full_well_e
        lin_mean = float(e[::7, ::7].mean()) * scale
        idx = e * (scale * ((1 << LUT_BITS) - 1))
        np.clip(idx, 0, (1 << LUT_BITS) - 1, out=idx)
        return self._lut[idx.astype(np.uint16)], lin_mean

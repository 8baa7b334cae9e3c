"""Drawing a moving thing into a frame: rolling shutter and motion blur, integrated, not faked.

Every moving object of generator B (a falling object, a bird, an insect, a
drip, a piece of laundry) is a `SpritePath`: where it is in the image, how big,
how elongated, turned how far and how bright, as functions of time sampled on
a fine grid. `draw_sprite` composites it into the radiance image: each pixel
row is read out at its own time (the rolling shutter: a falling object is
sheared and stretched), and each pixel integrates the object over the
exposure with sub-frame samples (motion blur), so a fast object becomes a
fainter streak that covers (occludes) what is behind it only partly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_SAMPLES = 48             # sub-frame samples per exposure, at most
SAMPLE_STEP_PX = 0.5         # one sample per this much motion during the exposure


@dataclass
class SpritePath:
    t: np.ndarray            # times (s), increasing
    u: np.ndarray            # image column of the centre
    v: np.ndarray            # image row of the centre
    size: np.ndarray         # long axis, pixels
    aspect: np.ndarray       # short / long axis (0..1]
    angle: np.ndarray        # orientation of the long axis, radians
    radiance: np.ndarray     # the object's own radiance (relative, like the scene)
    opacity: float = 1.0     # 1: hides what is behind; less: a translucent thing (insect wing, glint)
    edge_px: float = 1.0     # width of the soft edge (optics; large for a defocused thing)
    power: float = 2.0       # shape: 2 ellipse, larger: a rounded rectangle

    def at(self, t: np.ndarray) -> tuple[np.ndarray, ...]:
        """Interpolated (u, v, size, aspect, angle, radiance, present) at times t."""
        present = (t >= self.t[0]) & (t <= self.t[-1])
        vals = tuple(np.interp(t, self.t, a) for a in (self.u, self.v, self.size, self.aspect, self.angle, self.radiance))
        return vals + (present,)


def draw_sprite(img: np.ndarray, path: SpritePath, t0: float, line_time: float, exposure: float,
                occluder: np.ndarray | None = None) -> bool:
    """Composite the sprite into `img` (H x W float32, in place) for the frame whose first row starts at t0.

    `occluder` (H x W, 0..1) is what stands in front of the sprite (tree crowns).
    Returns whether anything was drawn.
    """
    h, w = img.shape
    t_end = t0 + line_time * h + exposure
    if path.t[-1] < t0 or path.t[0] > t_end:
        return False
    probe = np.linspace(max(t0, path.t[0]), min(t_end, path.t[-1]), 24)
    u, v, size, _, _, _, _ = path.at(probe)
    pad = float(size.max()) / 2 + 3 * path.edge_px + 2
    x0, x1 = int(np.floor(u.min() - pad)), int(np.ceil(u.max() + pad)) + 1
    y0, y1 = int(np.floor(v.min() - pad)), int(np.ceil(v.max() + pad)) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x0 >= x1 or y0 >= y1:
        return False
    rows = np.arange(y0, y1, dtype=np.float64)
    cols = np.arange(x0, x1, dtype=np.float64)
    # motion during the exposure decides the sub-frame samples
    spread = np.hypot(np.ptp(u), np.ptp(v)) * exposure / max(t_end - t0, 1e-9) + 1e-9
    n = int(min(MAX_SAMPLES, max(2, np.ceil(spread / SAMPLE_STEP_PX) + 1)))
    offs = (np.arange(n) + 0.5) / n * exposure
    T = t0 + rows[:, None] * line_time + offs[None, :]                 # (R, S): each row has its own time
    cu, cv, sz, asp, ang, rad, present = path.at(T)
    if not present.any():
        return False
    a = np.maximum(sz / 2, 0.35)
    b = np.maximum(sz * asp / 2, 0.35)
    dx = (cols[None, None, :] + 0.5) - cu[..., None]
    dy = (rows[:, None, None] + 0.5) - cv[..., None]
    ca, sa = np.cos(ang)[..., None], np.sin(ang)[..., None]
    xr = (dx * ca + dy * sa) / a[..., None]
    yr = (-dx * sa + dy * ca) / b[..., None]
    if path.power == 2.0:
        rho = np.sqrt(xr * xr + yr * yr)
    else:
        p = path.power
        rho = (np.abs(xr) ** p + np.abs(yr) ** p) ** (1 / p)
    dist = (rho - 1.0) * np.sqrt(a * b)[..., None]
    cov = np.clip(0.5 - dist / path.edge_px, 0.0, 1.0) * present[..., None]
    alpha = cov.mean(axis=1) * path.opacity                             # (R, C)
    light = (cov * rad[..., None]).mean(axis=1) * path.opacity
    if occluder is not None:
        front = 1 - occluder[y0:y1, x0:x1]
        alpha, light = alpha * front, light * front
    box = img[y0:y1, x0:x1]
    box *= (1 - alpha).astype(np.float32)
    box += light.astype(np.float32)
    return True

"""The camera of generator B: a pinhole at the foot of the building, tilted up, with barrel distortion.

Generator B draws its own geometry rather than reusing the project's first
scene generator, so that the detector can be checked on a camera model it was
not tuned on. World axes: X along the facade (right), Y horizontal from the
camera towards the building, Z up; the ground is Z = 0 and the facade the
plane Y = distance. The camera stands at (0, 0, height) and is pitched up by
`tilt` radians; a wide lens adds radial (barrel) distortion, so the floor rows
a technician marks are not evenly spaced and verticals bend a little near the
edges. Everything here is a pure function of the parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    width: int
    height: int
    focal_px: float          # focal length in pixels (square pixels)
    tilt: float              # pitch above the horizon, radians
    cam_height_m: float      # height of the lens above the ground
    distance_m: float        # horizontal distance from the lens to the facade plane
    k1: float = 0.0          # radial distortion: r_d = r (1 + k1 (r / f)^2), k1 < 0 barrel
    cx: float | None = None  # principal point (defaults to the image centre)
    cy: float | None = None

    @property
    def centre(self) -> tuple[float, float]:
        return (self.width / 2 if self.cx is None else self.cx, self.height / 2 if self.cy is None else self.cy)

    def _axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s, c = math.sin(self.tilt), math.cos(self.tilt)
        right = np.array([1.0, 0.0, 0.0])
        up = np.array([0.0, -s, c])
        forward = np.array([0.0, c, s])
        return right, up, forward

    def project(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World points -> (u, v, depth): pixel column, pixel row and distance along the optical axis."""
        x, y, z = (np.asarray(a, dtype=float) for a in (x, y, z))
        right, up, fwd = self._axes()
        dz = z - self.cam_height_m
        xc = x * right[0]
        yc = y * up[1] + dz * up[2]
        zc = y * fwd[1] + dz * fwd[2]
        zc_safe = np.maximum(zc, 1e-3)
        nx, ny = xc / zc_safe, yc / zc_safe
        scale = 1.0 + self.k1 * (nx * nx + ny * ny)
        cx, cy = self.centre
        return cx + self.focal_px * nx * scale, cy - self.focal_px * ny * scale, zc

    def undistort(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels -> normalised ideal coordinates (nx, ny up), inverting the distortion by fixed-point steps."""
        cx, cy = self.centre
        dx, dy = (u - cx) / self.focal_px, -(v - cy) / self.focal_px
        nx, ny = dx, dy
        for _ in range(6):
            scale = 1.0 + self.k1 * (nx * nx + ny * ny)
            nx, ny = dx / scale, dy / scale
        return nx, ny

    def rays(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World direction (dx, dy, dz) of the ray through each pixel (not normalised)."""
        nx, ny = self.undistort(u, v)
        right, up, fwd = self._axes()
        dx = nx * right[0]
        dy = ny * up[1] + fwd[1]
        dz = ny * up[2] + fwd[2]
        return dx, dy, dz

    def pixels_per_metre(self, depth: np.ndarray | float) -> np.ndarray | float:
        """Image scale of an object at this depth (along the optical axis)."""
        return self.focal_px / np.maximum(depth, 1e-3)


def frame_camera(width: int, height: int, roof_m: float, rng: np.random.Generator) -> Camera:
    """A camera an installer would set up for a facade `roof_m` high: the whole facade in view, some sky above.

    The vertical field of view of facade cameras is wide (2.8-4 mm lenses);
    the installer backs off until the roof is in the picture and tilts up.
    """
    vfov = math.radians(rng.uniform(52.0, 72.0))
    cam_h = rng.uniform(1.0, 3.5)
    # the view spans from a little below the facade's foot to a little above the roof
    span_low = math.radians(rng.uniform(-4.0, 2.0))           # angle of the bottom edge below/above horizon
    top = span_low + vfov * rng.uniform(0.88, 0.95)            # angle of the roof line
    distance = (roof_m - cam_h) / math.tan(top)
    distance = max(distance, 8.0)
    tilt = span_low + vfov / 2
    focal = (height / 2) / math.tan(vfov / 2)
    k1 = -rng.uniform(0.0, 0.08)
    return Camera(width=width, height=height, focal_px=focal, tilt=tilt, cam_height_m=cam_h,
                  distance_m=distance, k1=k1, cx=width / 2 + rng.uniform(-0.01, 0.01) * width,
                  cy=height / 2 + rng.uniform(-0.01, 0.01) * height)

"""Synthetic thrown-object scenes: a facade seen from its foot, with ground truth.

A pinhole camera stands `distance_m` in front of a building, `camera_height_m`
up, tilted so the whole facade (floors 1..`floors`, `floor_height_m` each)
fills the frame: upper floors come out closer together (perspective), as on a
real installation. The facade has a wall, balcony slabs and a grid of
windows; above and beside it is sky. Day scenes are bright with dark or light
objects; night scenes are the IR picture (dark sky, lit and unlit windows,
more sensor noise, longer exposure so more motion blur).

Throws are simulated in 3-D (gravity 9.81 m/s^2, optional quadratic drag),
from a window of a chosen floor: dropped, or thrown out with a small speed,
held still for a moment first; they are drawn with motion blur over the
exposure and occlude what is behind them. Distractors: birds flapping across,
birds gliding down across several floors (steady sink, slow turn, maybe a
flare), birds diving and pulling up, condensate dripping again and again from
an air-conditioner unit over a short drop, insects at the lens, rain (its
amount and wind angle vary), snow, leaves, paper, lights switching in
windows, headlights, clouds; plus camera shake (integer pixel jitter) and global lighting changes
(exposure steps, settling, the IR day/night switch).

    spec = SceneSpec(seconds=5, throws=[ThrowSpec(floor=12, t_release=1.0)])
    frames, fps, truth = render_clip(spec)          # N x H x W uint8
    for t, frame in iter_frames(spec): ...          # streaming (sim camera)
    cal = scene_calibration(spec)                   # floor rows of this facade

Everything random comes from `numpy.random.default_rng(spec.seed)`, so a
spec renders the same clip every time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from detection.calibration import Calibration

G = 9.81
DISTRACTOR_KINDS = ("bird", "insect", "rain", "snow", "leaf", "paper", "light", "headlights", "cloud",
                    "glider", "diver", "drip")
LIGHTING_KINDS = ("step", "exposure", "ir_switch")


@dataclass
class ThrowSpec:
    floor: int = 12
    t_release: float = 1.0
    column: int | None = None           # window column (1-based); None = random
    mode: str = "dropped"               # "dropped" or "thrown"
    size_px: float = 5.0                # apparent size in pixels (at the scene's resolution)
    drag: bool = False
    terminal_mps: float | None = None   # with drag; None = random 6..14 m/s
    hold_s: float = 0.3                 # held still at the window before release
    intensity: int | None = None        # grey level; None = a contrasting one


@dataclass
class DistractorSpec:
    kind: str                            # one of DISTRACTOR_KINDS
    t_start: float = 0.0
    amount: float = 1.0                  # how much (rain density, number of birds, ...)


@dataclass
class LightingChange:
    t: float = 2.0
    kind: str = "step"                  # "step" (gain jump), "exposure" (jump then settle), "ir_switch"
    gain: float = 1.35


@dataclass
class SceneSpec:
    width: int = 1280
    height: int = 720
    fps: float = 25.0
    seconds: float = 6.0
    seed: int = 0
    night: bool = False
    floors: int = 30
    floor_height_m: float = 3.0
    distance_m: float = 40.0
    camera_height_m: float = 1.5
    building_width_m: float = 43.2
    bay_m: float = 3.6
    noise: float | None = None           # sensor noise sigma (grey levels); None = 2 by day, 4 at night
    exposure_s: float | None = None      # None = 1/500 s by day, 1/100 s at night
    throws: list[ThrowSpec] = field(default_factory=list)
    distractors: list[DistractorSpec] = field(default_factory=list)
    shake_px: float = 0.0                # camera shake amplitude (integer jitter)
    shake_window: tuple[float, float] = (0.0, 1e9)
    lighting_changes: list[LightingChange] = field(default_factory=list)


@dataclass
class ThrowTruth:
    floor: int
    column: int
    t_release: float
    t_land: float
    size_px: float
    drag: bool
    mode: str
    release_xy: tuple[float, float]
    track: list[tuple[float, float, float]]      # (t, x, y) while in view


@dataclass
class GroundTruth:
    throws: list[ThrowTruth]
    distractors: list[str]
    lighting: list[str]
    shake_px: float
    night: bool


# -- camera ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Camera:
    f: float
    cx: float
    cy: float
    tilt: float
    hc: float
    d: float

    def project(self, X: float, Y: float, Z: float) -> tuple[float, float]:
        ct, st = math.cos(self.tilt), math.sin(self.tilt)
        yr = Y - self.hc
        zc = yr * st + Z * ct
        yc = yr * ct - Z * st
        return self.cx + self.f * X / zc, self.cy - self.f * yc / zc


def _camera(spec: SceneSpec) -> _Camera:
    top = spec.floors * spec.floor_height_m + 1.0
    lo = math.atan2(0.0 - spec.camera_height_m, spec.distance_m)
    hi = math.atan2(top - spec.camera_height_m, spec.distance_m)
    tilt = (lo + hi) / 2
    margin = 0.04 * spec.height
    f = (spec.height / 2 - margin) / math.tan((hi - lo) / 2)
    return _Camera(f, spec.width / 2, spec.height / 2, tilt, spec.camera_height_m, spec.distance_m)


def scene_calibration(spec: SceneSpec) -> Calibration:
    """The calibration a technician would mark on this facade (floor rows, window columns)."""
    cam = _camera(spec)
    floors = tuple((fl, cam.project(0.0, (fl - 1) * spec.floor_height_m, spec.distance_m)[1])
                   for fl in range(1, spec.floors + 1))
    mid = spec.floors * spec.floor_height_m / 2
    ncol = int(round(spec.building_width_m / spec.bay_m))
    cols = tuple((k + 1, cam.project(-spec.building_width_m / 2 + (k + 0.5) * spec.bay_m, mid, spec.distance_m)[0])
                 for k in range(ncol))
    mid_y = cam.project(0.0, mid, spec.distance_m)[1]
    vp = (cam.cx, cam.cy - cam.f / math.tan(cam.tilt))
    return Calibration(floors=floors, columns=cols, floor_height_m=spec.floor_height_m,
                       image_width=spec.width, image_height=spec.height, columns_y=mid_y, vanishing_point=vp)


# -- static background ---------------------------------------------------------------------------------
@dataclass
class _Base:
    day: np.ndarray           # float32 canvas
    night: np.ndarray
    sky: np.ndarray           # bool canvas
    windows: list[tuple[int, int, int, int, int, int]]   # canvas rect x0, y0, x1, y1, floor, column (visible, a sample)


def _render_base(spec: SceneSpec, cam: _Camera, margin: int, rng: np.random.Generator) -> _Base:
    H, W = spec.height + 2 * margin, spec.width + 2 * margin
    v, u = np.mgrid[0:H, 0:W].astype(np.float32)
    u -= margin
    v -= margin
    ct, st = math.cos(cam.tilt), math.sin(cam.tilt)
    dx = (u - cam.cx) / cam.f
    dy = -(v - cam.cy) / cam.f
    # world direction: right=(1,0,0), up=(0,ct,-st), fwd=(0,st,ct)
    wy = dy * ct + st
    wz = -dy * st + ct
    s = cam.d / np.maximum(wz, 1e-3)
    X = s * dx
    Y = cam.hc + s * wy
    fh, bay = spec.floor_height_m, spec.bay_m
    top = spec.floors * fh + 1.0
    facade = (np.abs(X) <= spec.building_width_m / 2) & (Y >= 0) & (Y <= top)
    ground = Y < 0
    sky = ~facade & ~ground
    fl = np.floor(Y / fh)
    ym = Y - fl * fh
    col = np.floor((X + spec.building_width_m / 2) / bay)
    xm = X + spec.building_width_m / 2 - col * bay
    win = facade & (xm > 0.7) & (xm < 2.9) & (ym > 0.9) & (ym < 2.5) & (Y < spec.floors * fh)
    slab = facade & (ym < 0.22)
    shadow = facade & (ym > fh - 0.12)
    nfl, ncol = spec.floors + 2, int(round(spec.building_width_m / bay)) + 2
    wid = (np.clip(fl, 0, nfl - 1) * ncol + np.clip(col, 0, ncol - 1)).astype(np.int32)
    glass_day = rng.uniform(85, 125, nfl * ncol).astype(np.float32)
    lit = rng.random(nfl * ncol) < 0.3
    glass_night = np.where(lit, rng.uniform(130, 190, nfl * ncol), rng.uniform(18, 32, nfl * ncol)).astype(np.float32)
    vy = (v / H).astype(np.float32)
    # day
    day = np.where(sky, 215 + 20 * (1 - vy), 150 + 6 * np.sin(X * 0.37) + 4 * np.cos(Y * 0.21)).astype(np.float32)
    day[ground] = 105
    day[slab] = 185
    day[shadow] = 115
    day[win] = glass_day[wid[win]] + 10 * (1 - vy[win])
    # night (IR): the illuminator lights the lower facade most
    ir = 55 + 40 * np.clip(vy, 0, 1)
    night = np.where(sky, 14 + 6 * vy, ir).astype(np.float32)
    night[ground] = 70
    night[slab] = ir[slab] + 25
    night[shadow] = ir[shadow] - 20
    night[win] = glass_night[wid[win]]
    # a sample of window rectangles (for lights switching), in canvas pixels
    windows = []
    for _ in range(40):
        f_i = int(rng.integers(2, spec.floors))
        c_i = int(rng.integers(0, ncol - 2))
        X0 = -spec.building_width_m / 2 + c_i * bay + 0.7
        X1 = X0 + 2.2
        Y0 = f_i * fh + 0.9
        Y1 = Y0 + 1.6
        x0, y1 = cam.project(X0, Y0, cam.d)
        x1, y0 = cam.project(X1, Y1, cam.d)
        x0, x1 = int(round(x0)) + margin + 1, int(round(x1)) + margin - 1
        y0, y1 = int(round(y0)) + margin + 1, int(round(y1)) + margin - 1
        if 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H and (x1 - x0) * (y1 - y0) >= 4:
            windows.append((x0, y0, x1, y1, f_i + 1, c_i + 1))
    return _Base(day=day, night=night, sky=sky, windows=windows)


# -- drawing helpers ------------------------------------------------------------------------------------
def _coverage_1d(c: float, half: float, lo: int, hi: int) -> np.ndarray:
    # pixel i covers [i - 0.5, i + 0.5): coordinates are pixel centres, as the detector reports them
    i = np.arange(lo, hi, dtype=np.float32) - 0.5
    return np.clip(np.minimum(i + 1, c + half) - np.maximum(i, c - half), 0, 1)


def _draw_square(canvas: np.ndarray, samples: list[tuple[float, float]], size: float, level: float,
                 alpha: float = 1.0, wh: tuple[float, float] | None = None) -> None:
    """Blend a square object (motion-blurred over `samples` positions) onto the canvas."""
    if not samples:
        return
    hw, hh = (wh[0] / 2, wh[1] / 2) if wh else (size / 2, size / 2)
    xs = [p[0] for p in samples]
    ys = [p[1] for p in samples]
    H, W = canvas.shape
    x0, x1 = max(0, int(math.floor(min(xs) - hw)) - 1), min(W, int(math.ceil(max(xs) + hw)) + 2)
    y0, y1 = max(0, int(math.floor(min(ys) - hh)) - 1), min(H, int(math.ceil(max(ys) + hh)) + 2)
    if x0 >= x1 or y0 >= y1:
        return
    cov = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
    for x, y in samples:
        cov += np.outer(_coverage_1d(y, hh, y0, y1), _coverage_1d(x, hw, x0, x1))
    cov *= alpha / len(samples)
    patch = canvas[y0:y1, x0:x1]
    patch += (level - patch) * cov


def _draw_soft(canvas: np.ndarray, x: float, y: float, rx: float, ry: float, amount: float,
               toward: float | None = None, mask: np.ndarray | None = None) -> None:
    """A soft (Gaussian) blob: adds `amount`, or blends toward a level with weight `amount`."""
    H, W = canvas.shape
    x0, x1 = max(0, int(x - 2.5 * rx)), min(W, int(x + 2.5 * rx) + 1)
    y0, y1 = max(0, int(y - 2.5 * ry)), min(H, int(y + 2.5 * ry) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    gx = np.exp(-0.5 * ((np.arange(x0, x1, dtype=np.float32) - x) / rx) ** 2)
    gy = np.exp(-0.5 * ((np.arange(y0, y1, dtype=np.float32) - y) / ry) ** 2)
    wgt = np.outer(gy, gx)
    if mask is not None:
        wgt *= mask[y0:y1, x0:x1]
    patch = canvas[y0:y1, x0:x1]
    if toward is None:
        patch += amount * wgt
    else:
        patch += (toward - patch) * (amount * wgt)


# -- moving things --------------------------------------------------------------------------------------
class _Thrown:
    """A thrown or dropped object simulated in 3-D."""

    def __init__(self, spec: SceneSpec, ts: ThrowSpec, cam: _Camera, rng: np.random.Generator, margin: int):
        self.ts, self.cam, self.margin = ts, cam, margin
        ncol = int(round(spec.building_width_m / spec.bay_m))
        self.column = ts.column if ts.column else int(rng.integers(2, ncol))
        X0 = -spec.building_width_m / 2 + (self.column - 0.5) * spec.bay_m + rng.uniform(-0.6, 0.6)
        Y0 = (ts.floor - 1) * spec.floor_height_m + rng.uniform(1.0, 1.4)
        Z0 = spec.distance_m - rng.uniform(0.2, 1.0)
        if ts.mode == "thrown":
            v = [rng.uniform(-1.5, 1.5), rng.uniform(0.0, 1.2), -rng.uniform(0.5, 2.5)]
        else:
            v = [0.0, 0.0, -rng.uniform(0.0, 0.3)]
        self.vt = (ts.terminal_mps or rng.uniform(6.0, 14.0)) if ts.drag else math.inf
        self.night = spec.night
        if ts.intensity is not None:
            self.level = float(ts.intensity)
        elif spec.night:
            self.level = float(rng.uniform(170, 240))
        else:
            self.level = float(rng.choice([rng.uniform(15, 50), rng.uniform(225, 255)]))
        # integrate the whole fall once, finely
        self.dt = 1.0 / (spec.fps * 8)
        pos = np.array([X0, Y0, Z0], dtype=float)
        vel = np.array(v, dtype=float)
        self.path = [pos.copy()]
        k = G / (self.vt * self.vt) if ts.drag else 0.0
        for _ in range(int(12.0 / self.dt)):
            sp = float(np.linalg.norm(vel))
            acc = np.array([0.0, -G, 0.0]) - k * sp * vel
            vel = vel + acc * self.dt
            pos = pos + vel * self.dt
            self.path.append(pos.copy())
            if pos[1] <= 0.05:
                break
        self.t_land = ts.t_release + (len(self.path) - 1) * self.dt

    def world_at(self, t: float) -> np.ndarray | None:
        if t < self.ts.t_release - self.ts.hold_s or t > self.t_land:
            return None
        i = int(max(0.0, t - self.ts.t_release) / self.dt)
        return self.path[min(i, len(self.path) - 1)]

    def image_at(self, t: float) -> tuple[float, float] | None:
        p = self.world_at(t)
        if p is None:
            return None
        return self.cam.project(float(p[0]), float(p[1]), float(p[2]))

    def draw(self, canvas: np.ndarray, t: float, exposure: float) -> None:
        a = self.image_at(t)
        if a is None:
            return
        b = self.image_at(t + exposure) or a
        streak = math.hypot(b[0] - a[0], b[1] - a[1])
        k = int(min(16, max(1, math.ceil(streak / max(1.0, self.ts.size_px / 2)))))
        samples = []
        for i in range(k):
            p = self.image_at(t + exposure * (i / max(1, k - 1) if k > 1 else 0.0)) or a
            samples.append((p[0] + self.margin, p[1] + self.margin))
        _draw_square(canvas, samples, self.ts.size_px, self.level)


class _Drifter:
    """Leaves and paper: slow, swaying falls on the facade plane."""

    def __init__(self, kind: str, spec: SceneSpec, cam: _Camera, rng: np.random.Generator, margin: int, t0: float):
        self.cam, self.margin, self.t0 = cam, margin, t0
        top = spec.floors * spec.floor_height_m
        self.X0 = rng.uniform(-spec.building_width_m / 2 + 3, spec.building_width_m / 2 - 3)
        self.Y0 = rng.uniform(0.35 * top, 0.95 * top)
        self.Z = spec.distance_m - rng.uniform(0.5, 3.0)
        paper = kind == "paper"
        self.vfall = rng.uniform(0.4, 1.3) if paper else rng.uniform(0.8, 2.2)
        self.wind = rng.uniform(-1.5, 1.5)
        self.sway = rng.uniform(0.6, 2.0) if paper else rng.uniform(0.3, 1.2)
        self.period = rng.uniform(1.0, 2.5)
        self.phase = rng.uniform(0, 2 * math.pi)
        self.size = rng.uniform(6, 10) if paper else rng.uniform(4, 8)
        self.size *= spec.width / 1280
        self.size = max(self.size, 2.5)
        self.level = (rng.uniform(225, 250) if paper else rng.uniform(40, 80)) if not spec.night else rng.uniform(150, 220)

    def draw(self, canvas: np.ndarray, t: float, exposure: float) -> None:
        u = t - self.t0
        if u < 0:
            return
        w = 2 * math.pi / self.period
        X = self.X0 + self.wind * u + self.sway * math.sin(w * u + self.phase)
        # starts from rest, reaches its slow terminal speed within a fraction of a second
        Y = self.Y0 - self.vfall * (u - (self.vfall / G) * (1 - math.exp(-G * u / self.vfall)))
        Y += 0.25 * self.sway * math.cos(2 * w * u + self.phase)
        if Y < 0:
            return
        x, y = self.cam.project(X, Y, self.Z)
        flutter = 0.6 + 0.4 * abs(math.sin(3 * w * u))
        _draw_square(canvas, [(x + self.margin, y + self.margin)], self.size, self.level,
                     wh=(self.size, self.size * flutter))


class _Bird:
    def __init__(self, spec: SceneSpec, rng: np.random.Generator, margin: int, t0: float):
        sc = spec.width / 1280
        self.t0, self.margin = t0, margin
        self.dir = 1 if rng.random() < 0.5 else -1
        self.x0 = -20.0 if self.dir > 0 else spec.width + 20.0
        self.y0 = rng.uniform(0.05, 0.85) * spec.height
        self.vx = self.dir * rng.uniform(60, 220) * sc           # px/s
        self.vy = rng.uniform(-70, 12) * sc                      # level or upward (negative y = up)
        self.size = max(2.5, rng.uniform(4, 12) * sc)
        self.flap = rng.uniform(3, 8)
        self.level = rng.uniform(25, 70) if not spec.night else rng.uniform(120, 180)
        if rng.random() < 0.3:                                    # some start inside the view (take-off)
            self.x0 = rng.uniform(0.2, 0.8) * spec.width

    def draw(self, canvas: np.ndarray, t: float, exposure: float) -> None:
        u = t - self.t0
        if u < 0:
            return
        x = self.x0 + self.vx * u
        y = self.y0 + self.vy * u + 3 * math.sin(2 * math.pi * self.flap * u)
        s = self.size
        wing = 0.5 + 0.5 * abs(math.sin(2 * math.pi * self.flap * u))
        _draw_square(canvas, [(x + self.margin, y + self.margin)], s, self.level, wh=(s * (0.6 + 0.9 * wing), s * 0.5))


class _FacadeBird:
    """A bird in 3-D in front of the facade (gliders and divers): where it starts, how it looks."""

    def _place(self, spec: SceneSpec, cam: _Camera, rng: np.random.Generator, margin: int, t0: float,
               max_in_front_m: float, lowest: float) -> float:
        """Start up to `max_in_front_m` in front of the facade, at `lowest`..0.95 of its height;
        returns the facade's half width."""
        self.cam, self.margin, self.t0 = cam, margin, t0
        top = spec.floors * spec.floor_height_m
        self.Z = spec.distance_m - rng.uniform(1.0, max_in_front_m)
        self.Y0 = rng.uniform(lowest, 0.95) * top
        return spec.building_width_m / 2

    def _look(self, spec: SceneSpec, rng: np.random.Generator, span_m: tuple[float, float]) -> None:
        """Apparent size (its span in metres at its distance) and grey level."""
        self.size = max(2.0, rng.uniform(*span_m) * self.cam.f / self.Z)
        self.level = rng.uniform(25, 70) if not spec.night else rng.uniform(120, 180)


class _Glider(_FacadeBird):
    """A bird gliding down along the facade: steady sink (or slowing, a flare), a slow turn, no flapping."""

    def __init__(self, spec: SceneSpec, cam: _Camera, rng: np.random.Generator, margin: int, t0: float):
        half = self._place(spec, cam, rng, margin, t0, 12.0, 0.4)
        self.dir = 1 if rng.random() < 0.5 else -1
        self.X0 = rng.uniform(-half, half * 0.3) * self.dir
        self.speed = rng.uniform(5.0, 12.0)              # m/s along its path
        self.sink = rng.uniform(1.0, 4.5)                # m/s downward, steady
        self.turn = rng.uniform(-0.35, 0.35)             # rad/s: the heading swings slowly
        self.flare = rng.uniform(0.0, 0.4)               # sink fades by this fraction per second
        self._look(spec, rng, (0.25, 0.5))

    def draw(self, canvas: np.ndarray, t: float, exposure: float) -> None:
        u = t - self.t0
        if u < 0:
            return
        if abs(self.turn) > 1e-6:
            X = self.X0 + self.dir * self.speed * math.sin(self.turn * u) / self.turn
            Z = self.Z - self.dir * self.speed * (1 - math.cos(self.turn * u)) / self.turn * 0.3
        else:
            X, Z = self.X0 + self.dir * self.speed * u, self.Z
        sink = self.sink * (u - 0.5 * self.flare * u * u) if self.flare * u < 1 else self.sink / (2 * self.flare)
        Y = self.Y0 - sink
        if Y < 0.5 or Z < 2.0:
            return
        x, y = self.cam.project(X, Y, Z)
        _draw_square(canvas, [(x + self.margin, y + self.margin)], self.size, self.level,
                     wh=(self.size * 1.6, self.size * 0.45))


class _Diver(_FacadeBird):
    """A bird that folds its wings and dives (accelerating almost like a fall), then pulls up and flies off."""

    def __init__(self, spec: SceneSpec, cam: _Camera, rng: np.random.Generator, margin: int, t0: float):
        half = self._place(spec, cam, rng, margin, t0, 10.0, 0.45)
        self.X0 = rng.uniform(-0.7 * half, 0.7 * half)
        self.vx = rng.choice([-1, 1]) * rng.uniform(2.0, 8.0)    # m/s before and during the dive
        self.accel = rng.uniform(0.5, 0.9) * G                    # wings folded: drag and lift remain
        self.dive_s = rng.uniform(0.5, 1.3)
        self.pull_s = rng.uniform(0.3, 0.7)                       # time to level out (and climb a little)
        self._look(spec, rng, (0.25, 0.45))

    def _height(self, u: float) -> float:
        d = min(u, self.dive_s)
        y = self.Y0 - 0.5 * self.accel * d * d
        if u > self.dive_s:
            v = self.accel * self.dive_s                          # downward speed at the bottom of the dive
            w = u - self.dive_s
            if w < self.pull_s:                                   # decelerate to zero sink
                y -= v * w - 0.5 * (v / self.pull_s) * w * w
            else:
                y -= 0.5 * v * self.pull_s - 1.5 * (w - self.pull_s)   # then climb away
        return y

    def draw(self, canvas: np.ndarray, t: float, exposure: float) -> None:
        u = t - self.t0
        if u < 0:
            return
        Y = self._height(u)
        if Y < 0.5:
            return
        x, y = self.cam.project(self.X0 + self.vx * u, Y, self.Z)
        folded = u < self.dive_s
        _draw_square(canvas, [(x + self.margin, y + self.margin)], self.size, self.level,
                     wh=(self.size * (0.6 if folded else 1.6), self.size * 0.5))


class _Drips:
    """Condensate from an air-conditioner unit: small drops from the same spot again and again, each
    falling a short way (onto the balcony slab or the unit below) before it splashes."""

    def __init__(self, spec: SceneSpec, cam: _Camera, rng: np.random.Generator, margin: int, t0: float):
        self.cam, self.margin = cam, margin
        ncol = int(round(spec.building_width_m / spec.bay_m))
        fl = int(rng.integers(3, spec.floors))
        col = int(rng.integers(1, ncol + 1))
        self.X = -spec.building_width_m / 2 + (col - 0.5) * spec.bay_m + rng.uniform(-0.8, 0.8)
        self.Y0 = (fl - 1) * spec.floor_height_m + rng.uniform(0.3, 2.5)
        self.Z = spec.distance_m - rng.uniform(0.3, 0.8)
        self.drop_m = rng.uniform(1.0, 5.0)               # how far a drop falls before it splashes
        period = rng.uniform(0.4, 1.5)
        self.starts = list(np.arange(t0, t0 + spec.seconds + period, period) + rng.uniform(0, 0.1, 1))
        self.size = max(1.5, rng.uniform(0.02, 0.05) * cam.f / self.Z * 3)
        self.level = rng.uniform(190, 240) if not spec.night else rng.uniform(160, 220)

    def draw(self, canvas: np.ndarray, t: float, exposure: float) -> None:
        for ts in self.starts:
            u = t - ts
            if u < 0:
                break
            d = 0.5 * G * u * u
            if d > self.drop_m:
                continue
            a = self.cam.project(self.X, self.Y0 - d, self.Z)
            b = self.cam.project(self.X, self.Y0 - min(self.drop_m, 0.5 * G * (u + exposure) ** 2), self.Z)
            _draw_square(canvas, [(a[0] + self.margin, a[1] + self.margin), (b[0] + self.margin, b[1] + self.margin)],
                         self.size, self.level, alpha=0.8)


class _Insect:
    def __init__(self, spec: SceneSpec, rng: np.random.Generator, margin: int, t0: float):
        sc = spec.width / 1280
        self.rng = rng
        self.t0, self.margin = t0, margin
        self.x, self.y = rng.uniform(0.1, 0.9) * spec.width, rng.uniform(0.1, 0.9) * spec.height
        self.vx, self.vy = rng.normal(0, 8 * sc), rng.normal(0, 8 * sc)
        self.r = rng.uniform(12, 45) * sc
        self.alpha = rng.uniform(0.35, 0.8)
        self.level = rng.uniform(0, 40) if rng.random() < 0.6 else rng.uniform(200, 255)
        self.sc = sc
        self.t_end = t0 + rng.uniform(1.0, 4.0)
        self.last = t0

    def draw(self, canvas: np.ndarray, t: float, exposure: float) -> None:
        if t < self.t0 or t > self.t_end:
            return
        self.vx = 0.7 * self.vx + self.rng.normal(0, 10 * self.sc)
        self.vy = 0.7 * self.vy + self.rng.normal(0, 10 * self.sc)
        self.x += self.vx
        self.y += self.vy
        _draw_soft(canvas, self.x + self.margin, self.y + self.margin, self.r, self.r * 0.8, self.alpha, toward=self.level)


class _Precipitation:
    """Rain (short fast streaks near the lens) or snow (slow flakes drifting down)."""

    def __init__(self, kind: str, spec: SceneSpec, rng: np.random.Generator, margin: int, amount: float):
        self.kind, self.rng, self.margin = kind, rng, margin
        self.W, self.H = spec.width, spec.height
        self.sc = spec.width / 1280
        self.night = spec.night
        self.n = int((rng.uniform(40, 140) if kind == "rain" else rng.uniform(60, 200)) * amount)
        self.wind = float(rng.uniform(-0.5, 0.5)) if kind == "rain" else 0.0   # common slant (dx/dy) of the streaks
        self.items: list[list[float]] = []
        if kind == "snow":
            for _ in range(self.n):
                self.items.append(self._flake(rng.uniform(0, self.H)))

    def _flake(self, y: float) -> list[float]:
        r = self.rng
        return [r.uniform(0, self.W), y, r.uniform(1.0, 4.5) * self.sc, r.uniform(0, 6.3),
                r.uniform(2, 14) * self.sc, max(2.0, r.uniform(2, 5) * self.sc), r.uniform(0.4, 0.8)]

    def draw(self, canvas: np.ndarray, t: float, exposure: float) -> None:
        m = self.margin
        H, W = canvas.shape
        if self.kind == "rain":
            r = self.rng
            n = r.poisson(self.n)
            if n == 0:
                return
            x = r.uniform(0, self.W, n) + m
            y = r.uniform(-30, self.H, n) + m
            length = r.uniform(15, 70, n) * self.sc
            slant = self.wind + r.uniform(-0.15, 0.15, n)
            amp = r.uniform(0.12, 0.3, n)
            k = 24
            s = np.linspace(0, 1, k, dtype=np.float32)
            px = (x[:, None] + slant[:, None] * length[:, None] * s[None, :]).ravel()
            py = (y[:, None] + length[:, None] * s[None, :]).ravel()
            a = np.repeat(amp, k)
            ok = (px >= 0) & (px < W - 1) & (py >= 0) & (py < H)
            xi, yi, a = px[ok].astype(np.int64), py[ok].astype(np.int64), a[ok]
            gain = np.zeros(canvas.shape, dtype=np.float32) if False else None
            vals = (245.0 - canvas[yi, xi]) * a
            np.add.at(canvas, (yi, xi), vals)
            np.add.at(canvas, (yi, xi + 1), vals * 0.5)
            return
        for fl in self.items:
            fl[1] += fl[2]
            fl[3] += 0.08
            if fl[1] > self.H + 5:
                fl[:] = self._flake(-5.0)
            x = fl[0] + fl[4] * math.sin(fl[3])
            _draw_square(canvas, [(x + m, fl[1] + m)], fl[5], 240.0 if not self.night else 200.0, alpha=fl[6])


class _Lights:
    def __init__(self, base: _Base, spec: SceneSpec, rng: np.random.Generator, t0: float, amount: float):
        n = max(1, int(round(rng.integers(1, 4) * amount)))
        picks = rng.choice(len(base.windows), size=min(n, len(base.windows)), replace=False) if base.windows else []
        self.events = []
        for i in picks:
            x0, y0, x1, y1, _, _ = base.windows[int(i)]
            t = t0 + rng.uniform(0.3, max(0.4, spec.seconds - t0 - 0.5))
            on = rng.uniform(150, 210) if spec.night else rng.uniform(150, 190)
            self.events.append((t, x0, y0, x1, y1, on))

    def draw(self, canvas: np.ndarray, t: float, exposure: float) -> None:
        for te, x0, y0, x1, y1, on in self.events:
            if t >= te:
                canvas[y0:y1, x0:x1] = on


class _Headlights:
    def __init__(self, spec: SceneSpec, rng: np.random.Generator, margin: int, t0: float):
        sc = spec.width / 1280
        self.t0, self.margin = t0, margin
        self.dir = 1 if rng.random() < 0.5 else -1
        self.rx, self.ry = rng.uniform(80, 200) * sc, rng.uniform(40, 100) * sc
        self.x0 = -self.rx if self.dir > 0 else spec.width + self.rx
        self.y = rng.uniform(0.6, 0.95) * spec.height
        self.v = self.dir * rng.uniform(250, 800) * sc
        self.amount = rng.uniform(40, 100) if spec.night else rng.uniform(15, 35)

    def draw(self, canvas: np.ndarray, t: float, exposure: float) -> None:
        u = t - self.t0
        if u < 0:
            return
        _draw_soft(canvas, self.x0 + self.v * u + self.margin, self.y + self.margin, self.rx, self.ry, self.amount)


class _Cloud:
    def __init__(self, spec: SceneSpec, base: _Base, rng: np.random.Generator, margin: int, t0: float):
        sc = spec.width / 1280
        self.t0, self.margin, self.sky = t0, margin, base.sky.astype(np.float32)
        self.x0 = rng.uniform(0, spec.width)
        self.y = rng.uniform(0.0, 0.5) * spec.height
        self.rx, self.ry = rng.uniform(100, 300) * sc, rng.uniform(50, 150) * sc
        self.v = rng.uniform(-60, 60) * sc
        self.amount = rng.uniform(-30, -8) if not spec.night else rng.uniform(5, 15)

    def draw(self, canvas: np.ndarray, t: float, exposure: float) -> None:
        u = max(0.0, t - self.t0)
        _draw_soft(canvas, self.x0 + self.v * u + self.margin, self.y + self.margin, self.rx, self.ry,
                   self.amount, mask=self.sky)


# -- clips ------------------------------------------------------------------------------------------------
class _Scene:
    def __init__(self, spec: SceneSpec):
        self.spec = spec
        self.rng = np.random.default_rng(spec.seed)
        rng = self.rng
        self.cam = _camera(spec)
        self.margin = int(math.ceil(spec.shake_px))
        self.base = _render_base(spec, self.cam, self.margin, rng)
        self.noise_sigma = spec.noise if spec.noise is not None else (4.0 if spec.night else 2.0)
        self.exposure = spec.exposure_s if spec.exposure_s is not None else (1 / 100 if spec.night else 1 / 500)
        self.throws = [_Thrown(spec, ts, self.cam, rng, self.margin) for ts in spec.throws]
        self.things: list = []
        for d in spec.distractors:
            for _ in range(self._count(d)):
                self.things.append(self._make(d))
        bank_pad = 32
        self.bank_pad = bank_pad
        self.noise = (rng.standard_normal((spec.height + bank_pad, spec.width + bank_pad), dtype=np.float32)
                      * self.noise_sigma)
        self.changes = sorted(spec.lighting_changes, key=lambda c: c.t)

    def _count(self, d: DistractorSpec) -> int:
        if d.kind in ("bird", "leaf", "paper", "insect", "headlights", "cloud", "glider", "diver"):
            return max(1, int(round(d.amount * (1 + self.rng.integers(0, 2)))))
        return 1

    def _make(self, d: DistractorSpec):
        spec, rng, cam, m = self.spec, self.rng, self.cam, self.margin
        t0 = d.t_start + rng.uniform(0, max(0.0, spec.seconds - d.t_start - 2.5))
        if d.kind == "bird":
            return _Bird(spec, rng, m, t0)
        if d.kind == "insect":
            return _Insect(spec, rng, m, t0)
        if d.kind == "glider":
            return _Glider(spec, cam, rng, m, d.t_start + rng.uniform(0, 1.0))
        if d.kind == "diver":
            return _Diver(spec, cam, rng, m, d.t_start + rng.uniform(0.2, 1.5))
        if d.kind == "drip":
            return _Drips(spec, cam, rng, m, d.t_start)
        if d.kind in ("rain", "snow"):
            return _Precipitation(d.kind, spec, rng, m, d.amount)
        if d.kind in ("leaf", "paper"):
            return _Drifter(d.kind, spec, cam, rng, m, d.t_start + rng.uniform(0, 1.0))
        if d.kind == "light":
            return _Lights(self.base, spec, rng, d.t_start, d.amount)
        if d.kind == "headlights":
            return _Headlights(spec, rng, m, t0)
        if d.kind == "cloud":
            return _Cloud(spec, self.base, rng, m, d.t_start)
        raise ValueError(f"unknown distractor kind {d.kind!r} (known: {', '.join(DISTRACTOR_KINDS)})")

    def _lighting(self, t: float) -> tuple[bool, float]:
        night, gain = self.spec.night, 1.0
        for c in self.changes:
            if t < c.t:
                break
            if c.kind == "ir_switch":
                night = not night
                gain = 1.0 + 0.6 * math.exp(-(t - c.t) / 0.25)       # exposure settles after the switch
            elif c.kind == "exposure":
                gain *= 1.0 + (c.gain - 1.0) * math.exp(-(t - c.t) / 0.4)
            else:
                gain *= c.gain
        return night, gain

    def frame(self, i: int) -> np.ndarray:
        spec = self.spec
        t = i / spec.fps
        night, gain = self._lighting(t)
        canvas = (self.base.night if night else self.base.day).copy()
        for th in self.things:
            th.draw(canvas, t, self.exposure)
        for th in self.throws:
            th.draw(canvas, t, self.exposure)
        m = self.margin
        ox = oy = 0
        if m and spec.shake_window[0] <= t <= spec.shake_window[1]:
            a = int(round(spec.shake_px))
            ox, oy = int(self.rng.integers(-a, a + 1)), int(self.rng.integers(-a, a + 1))
        view = canvas[m + oy:m + oy + spec.height, m + ox:m + ox + spec.width]
        nx, ny = int(self.rng.integers(0, self.bank_pad)), int(self.rng.integers(0, self.bank_pad))
        out = view + self.noise[ny:ny + spec.height, nx:nx + spec.width]
        if gain != 1.0:
            out *= gain
        np.clip(out, 0, 255, out=out)
        return out.astype(np.uint8)

    def truth(self) -> GroundTruth:
        spec = self.spec
        throws = []
        for th in self.throws:
            track = []
            n = int(spec.seconds * spec.fps)
            for i in range(n):
                t = i / spec.fps
                p = th.image_at(t)
                if p is not None and 0 <= p[0] < spec.width and 0 <= p[1] < spec.height:
                    track.append((t, p[0], p[1]))
            rel = th.image_at(th.ts.t_release) or (0.0, 0.0)
            throws.append(ThrowTruth(floor=th.ts.floor, column=th.column, t_release=th.ts.t_release,
                                     t_land=th.t_land, size_px=th.ts.size_px, drag=th.ts.drag,
                                     mode=th.ts.mode, release_xy=rel, track=track))
        return GroundTruth(throws=throws, distractors=[d.kind for d in spec.distractors],
                           lighting=[c.kind for c in spec.lighting_changes], shake_px=spec.shake_px,
                           night=spec.night)


def iter_frames(spec: SceneSpec) -> Iterator[tuple[float, np.ndarray]]:
    """(t, frame) for each frame of the scene, rendered one at a time."""
    scene = _Scene(spec)
    for i in range(int(round(spec.seconds * spec.fps))):
        yield i / spec.fps, scene.frame(i)


def render_clip(spec: SceneSpec) -> tuple[np.ndarray, float, GroundTruth]:
    """The whole clip: frames (N x H x W uint8), fps and ground truth."""
    scene = _Scene(spec)
    n = int(round(spec.seconds * spec.fps))
    frames = np.empty((n, spec.height, spec.width), dtype=np.uint8)
    for i in range(n):
        frames[i] = scene.frame(i)
    return frames, spec.fps, scene.truth()


def fall_time(floor: int, floor_height_m: float = 3.0) -> float:
    """Seconds a dropped object takes from a window of `floor` to the ground (no drag)."""
    h = (floor - 1) * floor_height_m + 1.2
    return math.sqrt(2 * h / G)


def random_scene(seed: int, kind: str = "throw", *, width: int = 640, height: int = 360,
                 fps: float = 25.0, floors: int = 30, min_floor: int = 4, with_distractor: str | None = None,
                 night: bool | None = None, size_range: tuple[float, float] = (2.0, 10.0)) -> SceneSpec:
    """A randomised benchmark scene: kind "throw" (one throw, maybe with a distractor) or a distractor kind,
    "shake", or a lighting kind ("step", "exposure", "ir_switch"). The thrown object's size (pixels)
    is drawn uniformly from `size_range`."""
    rng = np.random.default_rng(10_000 + seed)
    if night is None:
        night = bool(rng.random() < 0.3)
    spec = SceneSpec(width=width, height=height, fps=fps, seed=seed, night=night, floors=floors, seconds=5.0)
    sc = width / 1280
    if kind == "throw":
        floor = int(rng.integers(min_floor, floors + 1))
        t_rel = float(rng.uniform(0.6, 1.2))
        drag = bool(rng.random() < 0.25)
        ts = ThrowSpec(floor=floor, t_release=t_rel, mode=str(rng.choice(["dropped", "thrown"])),
                       size_px=float(rng.uniform(*size_range)), drag=drag,
                       hold_s=float(rng.uniform(0.0, min(0.5, t_rel - 0.45))))
        spec.throws = [ts]
        fall = fall_time(floor) * (1.6 if drag else 1.0)
        spec.seconds = float(min(6.0, max(3.0, t_rel + fall + 0.5)))
        kind = with_distractor or "none"
    if kind in DISTRACTOR_KINDS:
        amount = float(rng.uniform(0.5, 2.5)) if kind == "rain" else 1.0     # drizzle to a downpour
        spec.distractors = [DistractorSpec(kind, t_start=0.0, amount=amount)]
    elif kind == "shake":
        spec.shake_px = float(rng.integers(1, 5)) * max(1.0, sc * 2) / 2 + 0.5
        spec.shake_window = (float(rng.uniform(0.5, 2.0)), float(rng.uniform(3.0, 5.0)))
    elif kind in LIGHTING_KINDS:
        spec.lighting_changes = [LightingChange(t=float(rng.uniform(1.0, 3.0)), kind=kind,
                                                gain=float(rng.choice([0.65, 1.45])))]
    elif kind != "none":
        raise ValueError(f"unknown scene kind {kind!r}")
    return spec

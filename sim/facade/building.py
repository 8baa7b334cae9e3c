"""The facade of generator B: storeys, a window grid with frames, balconies, AC units, sky, ground, trees.

The layout is drawn once per clip (`draw_facade`) and rendered by casting one
ray per pixel through the camera (`render_maps`), blurred by the optics, into
reflectance maps for visible light and for the camera's infrared illuminator:
glass is dark in IR and foliage bright, so the IR-cut switch is a large global
change, as on a real camera. The maps also say which window each pixel shows,
where glass and foliage are and how far each pixel's surface is from the
lens, so lighting, switching windows, reflections and wind can act on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from sim.facade.camera import Camera

SUPERSAMPLE = 1              # rays per pixel along each axis for the static background
OPTICS_SIGMA_PX = 0.6        # blur of the lens and demosaicing (Gaussian sigma, pixels)


@dataclass(frozen=True)
class Facade:
    floors: int              # storeys; floor 1 starts at ground level
    floor_m: float           # storey height
    x0_m: float              # left edge of the facade (world X)
    x1_m: float              # right edge
    column_m: float          # window pitch along the facade
    column_offset_m: float   # X of the first column's centre
    window_w_m: float
    window_h_m: float
    sill_m: float            # window bottom above the floor line
    frame_m: float           # frame width
    wall_albedo: float
    frame_albedo: float
    glass_albedo: float      # glass in daylight (reflected sky)
    balcony_every: int       # every n-th column has balconies (0: none)
    balcony_depth_m: float   # how far a balcony slab stands out from the wall
    ac_every: int            # every n-th column has an AC unit beside its windows (0: none)
    tree_line_m: float       # distance of the tree row in front of the facade (0: no trees)
    tree_height_m: float
    seed: int                # texture details (lit windows, tree crowns, tiles)

    @property
    def roof_m(self) -> float:
        return self.floors * self.floor_m

    def columns(self) -> np.ndarray:
        """X of every window column's centre."""
        n0 = int(np.ceil((self.x0_m - self.column_offset_m) / self.column_m))
        n1 = int(np.floor((self.x1_m - self.column_offset_m) / self.column_m))
        return self.column_offset_m + self.column_m * np.arange(n0, n1 + 1)

    def window_centre(self, floor: int, column_x: float) -> tuple[float, float]:
        """(X, Z) of the centre of a window's opening."""
        return column_x, (floor - 1) * self.floor_m + self.sill_m + self.window_h_m / 2

    def ac_units(self) -> list[tuple[float, float]]:
        """(X, Z) of the bottom centre of each AC unit."""
        if not self.ac_every:
            return []
        out = []
        for i, cx in enumerate(self.columns()):
            if i % self.ac_every:
                continue
            for f in range(2, self.floors + 1):
                if (f * 7 + i * 3 + self.seed) % 5 < 3:
                    out.append((cx + self.window_w_m / 2 + 0.55, (f - 1) * self.floor_m + 0.25))
        return out


def draw_facade(rng: np.random.Generator, floors: int) -> Facade:
    column = rng.uniform(2.8, 4.2)
    ww = rng.uniform(1.1, min(1.9, column - 1.2))
    return Facade(floors=floors, floor_m=rng.uniform(2.85, 3.15), x0_m=-rng.uniform(25, 60), x1_m=rng.uniform(25, 60),
                  column_m=column, column_offset_m=rng.uniform(-column / 2, column / 2), window_w_m=ww,
                  window_h_m=rng.uniform(1.3, 1.8), sill_m=rng.uniform(0.8, 1.0), frame_m=rng.uniform(0.05, 0.1),
                  wall_albedo=rng.uniform(0.3, 0.65), frame_albedo=float(rng.choice([0.2, 0.75])),
                  glass_albedo=rng.uniform(0.12, 0.3), balcony_every=int(rng.choice([0, 2, 3])),
                  balcony_depth_m=rng.uniform(0.8, 1.4), ac_every=int(rng.choice([0, 1, 2])),
                  tree_line_m=float(rng.choice([0.0, rng.uniform(4, 12)])), tree_height_m=rng.uniform(3, 8),
                  seed=int(rng.integers(1 << 30)))


@dataclass
class SceneMaps:
    """Per-pixel maps of the static scene (H x W float32 unless said)."""
    albedo_vis: np.ndarray
    albedo_ir: np.ndarray
    range_m: np.ndarray      # distance from the lens to the surface seen (sky: large)
    sky: np.ndarray          # fraction of the pixel that is sky
    glass: np.ndarray        # fraction that is window glass
    foliage: np.ndarray      # fraction that is tree crown
    window_id: np.ndarray    # int32: floor * 10000 + column index of the window seen, -1 elsewhere
    lit: np.ndarray          # window glass lit from inside at night (0..1)


def _hash(a: np.ndarray, b: np.ndarray, seed: int) -> np.ndarray:
    """A deterministic pseudo-random value in [0, 1) per integer pair (window, tile)."""
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    b = np.nan_to_num(b, nan=0.0, posinf=0.0, neginf=0.0)
    h = (a.astype(np.int64) * 73856093) ^ (b.astype(np.int64) * 19349663) ^ (seed * 83492791)
    h = (h ^ (h >> 13)) * 1274126177
    return ((h ^ (h >> 16)) & 0xFFFF).astype(np.float32) / 65536.0


def _facade_surface(fx: np.ndarray, fz: np.ndarray, fa: Facade) -> dict[str, np.ndarray]:
    """Reflectances and labels of facade points (X, Z) on the wall plane."""
    floor_idx = np.floor(fz / fa.floor_m).astype(np.int64)             # 0-based storey
    zf = fz - floor_idx * fa.floor_m                                    # height within the storey
    col = np.round((fx - fa.column_offset_m) / fa.column_m).astype(np.int64)
    xc = fx - (fa.column_offset_m + col * fa.column_m)                 # offset from the column centre
    half = fa.window_w_m / 2
    in_open = (np.abs(xc) < half) & (zf > fa.sill_m) & (zf < fa.sill_m + fa.window_h_m)
    in_glass = (np.abs(xc) < half - fa.frame_m) & (zf > fa.sill_m + fa.frame_m) & \
               (zf < fa.sill_m + fa.window_h_m - fa.frame_m)
    # mullion in the middle of wide windows
    in_glass &= ~((np.abs(xc) < fa.frame_m / 2) & (fa.window_w_m > 1.4))
    tile = _hash(np.floor(fx / 0.6), np.floor(fz / 0.3), fa.seed)
    vis = fa.wall_albedo * (0.93 + 0.07 * tile)
    vis = np.where(np.abs(zf) < 0.12, vis * 0.75, vis)                 # slab line at each floor
    vis = np.where(np.abs(zf - fa.floor_m) < 0.12, vis * 0.75, vis)
    ir = vis * 1.1
    vis = np.where(in_open, fa.frame_albedo, vis)
    ir = np.where(in_open, fa.frame_albedo * 0.9, ir)
    wrand = _hash(floor_idx, col, fa.seed + 1)
    curtain = _hash(floor_idx, col, fa.seed + 2)
    gl = fa.glass_albedo * (0.7 + 0.6 * wrand)
    vis = np.where(in_glass, gl, vis)
    ir = np.where(in_glass, 0.04 + 0.1 * curtain, ir)
    # balconies: slab and railing in front of the lower part of the window
    if fa.balcony_every:
        bal = (np.mod(col, fa.balcony_every) == 0) & (np.abs(xc) < half + 0.5) & (floor_idx >= 1)
        rail = bal & (zf < 1.1)
        slab = bal & (zf < 0.18)
        vis = np.where(rail, 0.5 * vis + 0.5 * 0.55, vis)
        ir = np.where(rail, 0.5 * ir + 0.5 * 0.6, ir)
        vis = np.where(slab, 0.8, vis)
        ir = np.where(slab, 0.8, ir)
        in_glass &= ~rail
    if fa.ac_every:
        ax = fx - (fa.column_offset_m + col * fa.column_m + half + 0.55)
        has = (np.mod(col, fa.ac_every) == 0) & (((floor_idx + 1) * 7 + col * 3 + fa.seed) % 5 < 3) & (floor_idx >= 1)
        unit = has & (np.abs(ax) < 0.4) & (zf > 0.25) & (zf < 0.8)
        grille = unit & (np.mod(np.floor(ax / 0.05), 2) == 0) & (np.abs(ax) < 0.3)
        vis = np.where(unit, np.where(grille, 0.45, 0.78), vis)
        ir = np.where(unit, np.where(grille, 0.5, 0.8), ir)
    wid = np.where(in_glass, (floor_idx + 1) * 10000 + (col + 5000), -1)
    lit_draw = _hash(floor_idx, col, fa.seed + 3)
    lit = np.where(in_glass & (lit_draw < 0.3), 0.6 + 0.8 * curtain, 0.0)
    return {"vis": vis, "ir": ir, "glass": in_glass.astype(np.float32), "wid": wid, "lit": lit}


def render_maps(cam: Camera, fa: Facade) -> SceneMaps:
    """Cast rays through every pixel (supersampled) and average the surfaces they hit."""
    s = SUPERSAMPLE
    h, w = cam.height, cam.width
    vv, uu = np.mgrid[0:h * s, 0:w * s].astype(np.float32)
    uu = (uu + 0.5) / s
    vv = (vv + 0.5) / s
    dx, dy, dz = cam.rays(uu, vv)
    dy = np.maximum(dy, 1e-6)
    t_wall = cam.distance_m / dy
    fx, fz = t_wall * dx, cam.cam_height_m + t_wall * dz
    on_wall = (fz >= 0) & (fz <= fa.roof_m) & (fx >= fa.x0_m) & (fx <= fa.x1_m)
    surf = _facade_surface(fx, fz, fa)
    vis = np.where(on_wall, surf["vis"], 0.0)
    ir = np.where(on_wall, surf["ir"], 0.0)
    glass = np.where(on_wall, surf["glass"], 0.0)
    wid = np.where(on_wall, surf["wid"], -1)
    lit = np.where(on_wall, surf["lit"], 0.0)
    rng_m = t_wall * np.sqrt(dx * dx + dy * dy + dz * dz)
    # ground in front of the building (the ray goes down before reaching the wall)
    t_ground = np.where(dz < 0, cam.cam_height_m / np.maximum(-dz, 1e-9), np.inf)
    ground = t_ground < t_wall
    gtex = _hash(np.floor(t_ground * dx / 0.5), np.floor(t_ground * dy / 0.5), fa.seed + 7)
    vis = np.where(ground, 0.22 + 0.06 * gtex, vis)
    ir = np.where(ground, 0.3 + 0.06 * gtex, ir)
    rng_m = np.where(ground, t_ground * np.sqrt(dx * dx + dy * dy + dz * dz), rng_m)
    sky = ~on_wall & ~ground
    foliage = np.zeros_like(vis, dtype=bool)
    if fa.tree_line_m > 0:
        t_tree = (cam.distance_m - fa.tree_line_m) / dy
        tx, tz = t_tree * dx, cam.cam_height_m + t_tree * dz
        crown = fa.tree_height_m * (0.75 + 0.25 * np.cos(tx / 2.3 + fa.seed % 7)) + 0.6 * np.sin(tx * 1.7)
        foliage = (tz > 0) & (tz < crown) & (t_tree < np.minimum(t_wall, t_ground)) | \
                  ((tz > 0) & (tz < crown) & ground & (t_tree < t_ground))
        leaf = _hash(np.floor(tx / 0.15), np.floor(tz / 0.15), fa.seed + 9)
        vis = np.where(foliage, 0.08 + 0.12 * leaf, vis)
        ir = np.where(foliage, 0.45 + 0.25 * leaf, ir)
        glass = np.where(foliage, 0.0, glass)
        wid = np.where(foliage, -1, wid)
        lit = np.where(foliage, 0.0, lit)
        rng_m = np.where(foliage, t_tree * np.sqrt(dx * dx + dy * dy + dz * dz), rng_m)
        sky &= ~foliage
    rng_m = np.where(sky, 1e4, rng_m)

    def down(a: np.ndarray) -> np.ndarray:
        a = a.reshape(h, s, w, s).mean(axis=(1, 3)).astype(np.float32)
        return ndimage.gaussian_filter(a, OPTICS_SIGMA_PX)

    wid_c = wid.reshape(h, s, w, s)[:, s // 2, :, s // 2].astype(np.int32)
    return SceneMaps(albedo_vis=down(vis), albedo_ir=down(ir), range_m=down(rng_m), sky=down(sky.astype(np.float32)),
                     glass=down(glass), foliage=down(foliage.astype(np.float32)), window_id=wid_c, lit=down(lit))

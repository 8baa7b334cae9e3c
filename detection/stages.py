"""The detector's image stages: small functions over numpy arrays, one job each.

Order in `detector.ThrowDetector`: contrast normalisation (a lookup table
measured when the background is learnt) -> shake compensation (integer shift
by phase correlation) -> int16 difference from the running-average background
-> max-pool downscale -> noise-adaptive threshold -> exclusion mask ->
global-change guard -> connected components -> blobs.

All of it is plain numpy; connected components use scipy.ndimage.label when
it is installed (it measures faster) and a numpy/Python labelling otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

try:  # optional: measured faster for connected components
    from scipy import ndimage as _ndimage
except ImportError:  # pragma: no cover - depends on the environment
    _ndimage = None

HAVE_SCIPY = _ndimage is not None


# -- contrast normalisation ---------------------------------------------------------------
def contrast_lut(frame: np.ndarray, low_pct: float = 1.0, high_pct: float = 99.0,
                 max_gain: float = 4.0, step: int = 8, headroom: int = 48) -> np.ndarray:
    """A 256-entry uint8 table stretching [low_pct, high_pct] of the frame to [headroom, 255 - headroom].

    Percentiles come from a sparse grid (every `step`-th pixel). The headroom
    keeps objects darker or brighter than the scene from being clipped (a
    dark bag in front of a dark window must stay visible); the gain is at
    least 1 (never lose contrast) and at most max_gain (a black frame, a
    covered lens, is not blown up into noise).
    """
    sample = frame[::step, ::step]
    lo, hi = (float(v) for v in np.percentile(sample, [low_pct, high_pct]))
    gain = min(max_gain, max(1.0, (255.0 - 2 * headroom) / max(hi - lo, 1.0)))
    centre = (lo + hi) / 2.0
    levels = (np.arange(256, dtype=np.float32) - centre) * gain + 127.5
    return np.clip(np.rint(levels), 0, 255).astype(np.uint8)


def apply_lut(frame: np.ndarray, lut: np.ndarray | None) -> np.ndarray:
    """frame mapped through lut (or frame itself when lut is None).

    np.take measures three to four times faster than fancy indexing (lut[frame]) on a 1080p frame."""
    return frame if lut is None else np.take(lut, frame)


# -- background and difference ---------------------------------------------------------------
def update_background(background: np.ndarray, frame: np.ndarray, alpha: float,
                      scratch: np.ndarray | None = None,
                      slow: list[tuple[int, int, int, int]] | None = None, slow_factor: float = 0.1) -> None:
    """Running average, in place: background += alpha * (frame - background) (float32).

    Inside the `slow` boxes (x0, y0, x1, y1: where moving things are) the rate is
    alpha * slow_factor, so a slow object does not leave a ghost in the
    background, while something that stays (a parked bag, a lit window) is
    still absorbed in time.
    """
    tmp = np.subtract(frame, background, out=scratch, dtype=np.float32)
    tmp *= alpha
    for x0, y0, x1, y1 in slow or ():
        tmp[y0:y1, x0:x1] *= slow_factor
    background += tmp


def abs_difference(frame: np.ndarray, background_u8: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """|frame - background| as int16: uint8 subtraction would wrap (3 - 5 = 254)."""
    d = np.subtract(frame, background_u8, out=out, dtype=np.int16)
    np.abs(d, out=d)
    return d


def noise_sigma(diff: np.ndarray, step: int = 7) -> float:
    """Sensor noise of an absolute-difference image, from a sparse grid of it.

    sqrt(pi/2) * mean |d| over the grid with its top 2 % (moving things) left
    out; unlike the median, not biased low by integer grey levels.
    """
    sample = diff[::step, ::step].ravel()
    cut = np.partition(sample, int(sample.size * 0.98))[int(sample.size * 0.98)]
    kept = sample[sample <= cut]
    return 1.2533 * float(kept.mean()) / 0.97 if kept.size else 0.0


def max_pool(a: np.ndarray, factor: int) -> np.ndarray:
    """Downscale by taking the maximum of each factor x factor block (edge rows/columns cropped).

    Unlike a mean or a resize, a single bright pixel keeps its full value, so a
    2 px object survives a 4x downscale.
    """
    if factor == 1:
        return a
    h, w = (a.shape[0] // factor) * factor, (a.shape[1] // factor) * factor
    a = a[:h, :w]
    cols = np.maximum(a[:, 0::factor], a[:, 1::factor])
    for k in range(2, factor):
        np.maximum(cols, a[:, k::factor], out=cols)
    out = np.maximum(cols[0::factor], cols[1::factor])
    for k in range(2, factor):
        np.maximum(out, cols[k::factor], out=out)
    return out


def pool_mask(mask: np.ndarray, factor: int) -> np.ndarray:
    """A full-resolution boolean mask pooled like max_pool (True if any pixel of the block is)."""
    return max_pool(mask.astype(np.uint8), factor).astype(bool)


def threshold(pooled: np.ndarray, level: float) -> np.ndarray:
    """Boolean motion mask: pooled difference above level."""
    return pooled > level


def apply_exclusion(mask: np.ndarray, exclusion: np.ndarray | None) -> np.ndarray:
    """Clear the excluded cells (exclusion is a boolean array of the same shape, True = ignore)."""
    if exclusion is not None:
        mask &= ~exclusion
    return mask


def changed_fraction(mask: np.ndarray) -> float:
    """Fraction of cells set in a motion mask."""
    return float(np.count_nonzero(mask)) / mask.size if mask.size else 0.0


def is_global_change(mask: np.ndarray, fraction: float) -> bool:
    """True when so much changed at once that it is the light, not an object."""
    return changed_fraction(mask) > fraction


# -- shake ---------------------------------------------------------------------------------------
def estimate_shift(reference: np.ndarray, frame: np.ndarray, max_shift: int, size: int = 256) -> tuple[int, int]:
    """Integer (dx, dy) such that frame[y + dy, x + dx] ~ reference[y, x], by phase correlation.

    Uses a central size x size patch (full resolution: a 1 px shake matters) with a
    Hann window; shifts beyond max_shift are reported as (0, 0) and left to the
    global-change guard.
    """
    h, w = reference.shape
    s = min(size, h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    a = reference[y0:y0 + s, x0:x0 + s].astype(np.float32)
    b = frame[y0:y0 + s, x0:x0 + s].astype(np.float32)
    win = np.hanning(s).astype(np.float32)
    win2 = np.outer(win, win)
    a = (a - a.mean()) * win2
    b = (b - b.mean()) * win2
    fa, fb = np.fft.rfft2(a), np.fft.rfft2(b)
    cross = fb * np.conj(fa)
    cross /= np.abs(cross) + 1e-6
    corr = np.fft.irfft2(cross, s=(s, s))
    iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)
    dy = iy - s if iy > s // 2 else iy
    dx = ix - s if ix > s // 2 else ix
    if abs(dx) > max_shift or abs(dy) > max_shift:
        return 0, 0
    return int(dx), int(dy)


def shift_image(frame: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The frame moved by (-dx, -dy) so it lines up with the reference; uncovered edges repeat the border."""
    if dx == 0 and dy == 0:
        return frame
    h, w = frame.shape
    out = np.empty_like(frame)
    ys = np.clip(np.arange(h) + dy, 0, h - 1)
    xs = np.clip(np.arange(w) + dx, 0, w - 1)
    ya, yb = max(0, -dy), min(h, h - dy)
    xa, xb = max(0, -dx), min(w, w - dx)
    out[ya:yb, xa:xb] = frame[ya + dy:yb + dy, xa + dx:xb + dx]
    if ya > 0 or yb < h or xa > 0 or xb < w:     # fill the uncovered border
        out[:ya] = frame[ys[:ya]][:, xs]
        out[yb:] = frame[ys[yb:]][:, xs]
        out[:, :xa] = frame[:, xs[:xa]][ys]
        out[:, xb:] = frame[:, xs[xb:]][ys]
    return out


# -- rain and snow streaks ---------------------------------------------------------------------------
def thick_support(diff: np.ndarray, width: int = 3) -> np.ndarray:
    """The difference eroded horizontally: each pixel keeps the minimum of `width` neighbours in its row.

    A rain streak (or a snow flake at a low resolution) is one or two pixels
    wide, so it vanishes; a thrown object of `width` pixels and more keeps its
    core. Returns an int16 array of the same shape (edge columns are 0).
    """
    out = np.zeros_like(diff)
    if width <= 1 or diff.shape[1] < width:
        return diff.copy() if width <= 1 else out
    core = out[:, width // 2: diff.shape[1] - (width - 1 - width // 2)]
    np.minimum(diff[:, :-(width - 1)], diff[:, 1:diff.shape[1] - width + 2], out=core)
    for k in range(2, width):
        np.minimum(core, diff[:, k:diff.shape[1] - width + 1 + k], out=core)
    return out


def is_streak_shaped(blob: "Blob", factor: int, min_cells: int = 3, ratio: float = 2.5) -> bool:
    """True for a blob much taller than wide (in pooled cells): the shape of a rain streak."""
    h, w = blob.height // factor, blob.width // factor
    return h >= min_cells and h >= ratio * w


def blob_density(blobs: list["Blob"], shape: tuple[int, int], cell_px: int) -> np.ndarray:
    """Blobs per coarse cell (cell_px x cell_px pixels) of a frame of `shape`: where the clutter is."""
    gh, gw = max(1, -(-shape[0] // cell_px)), max(1, -(-shape[1] // cell_px))
    grid = np.zeros((gh, gw), dtype=np.int32)
    if blobs:
        ys = np.clip(np.array([b.y for b in blobs]) // cell_px, 0, gh - 1).astype(np.int64)
        xs = np.clip(np.array([b.x for b in blobs]) // cell_px, 0, gw - 1).astype(np.int64)
        np.add.at(grid, (ys, xs), 1)
    return grid


@dataclass
class StreakField:
    """Rain as a field: per coarse cell (3 x 3 neighbourhood sums), how many elongated blobs there are
    and how parallel they are (the mean of (cos 2a, sin 2a) over their orientations a)."""

    cell_px: int
    count: np.ndarray        # elongated blobs in the 3 x 3 cells around each cell
    c2: np.ndarray           # sum of cos 2a
    s2: np.ndarray           # sum of sin 2a

    def at(self, x: float, y: float) -> tuple[int, float, float]:
        """(count, coherence 0..1, dominant orientation in radians) of the field around (x, y)."""
        gy = min(max(int(y) // self.cell_px, 0), self.count.shape[0] - 1)
        gx = min(max(int(x) // self.cell_px, 0), self.count.shape[1] - 1)
        n = int(self.count[gy, gx])
        if n == 0:
            return 0, 0.0, 0.0
        c, s = float(self.c2[gy, gx]), float(self.s2[gy, gx])
        return n, math.hypot(c, s) / n, 0.5 * math.atan2(s, c)


def _neighbourhood_sum(grid: np.ndarray) -> np.ndarray:
    near = grid.copy()
    near[1:] += grid[:-1]
    near[:-1] += grid[1:]
    out = near.copy()
    out[:, 1:] += near[:, :-1]
    out[:, :-1] += near[:, 1:]
    return out


def streak_field(blobs: list[Blob], shape: tuple[int, int], cell_px: int, min_elongation: float) -> StreakField:
    """The streak field of one frame from its blobs: streaks are many, short, parallel (the wind sets
    one slant for all of them) and elongated; counted over coarse cells so the field is local."""
    gh, gw = max(1, -(-shape[0] // cell_px)), max(1, -(-shape[1] // cell_px))
    count = np.zeros((gh, gw), dtype=np.float64)
    c2 = np.zeros((gh, gw), dtype=np.float64)
    s2 = np.zeros((gh, gw), dtype=np.float64)
    el = [b for b in blobs if b.elongation >= min_elongation]
    if el:
        ys = np.clip(np.array([b.y for b in el]) // cell_px, 0, gh - 1).astype(np.int64)
        xs = np.clip(np.array([b.x for b in el]) // cell_px, 0, gw - 1).astype(np.int64)
        a = np.array([b.angle for b in el])
        np.add.at(count, (ys, xs), 1.0)
        np.add.at(c2, (ys, xs), np.cos(2 * a))
        np.add.at(s2, (ys, xs), np.sin(2 * a))
    return StreakField(cell_px, _neighbourhood_sum(count), _neighbourhood_sum(c2), _neighbourhood_sum(s2))


def matches_field(blob: Blob, field: StreakField, min_elongation: float, min_streaks: int,
                  min_coherence: float, tolerance_rad: float) -> bool:
    """True when a blob looks like the rain around it: elongated along the field's dominant
    orientation, where the field has at least `min_streaks` parallel streaks (coherence: 1 = all parallel)."""
    if blob.elongation < min_elongation:
        return False
    n, coherence, theta = field.at(blob.x, blob.y)
    if n < min_streaks or coherence < min_coherence:
        return False
    d = abs(blob.angle - theta) % math.pi
    return min(d, math.pi - d) <= tolerance_rad


# -- ghosts of a re-learn -----------------------------------------------------------------------------
@dataclass
class Ghost:
    """Where a tracked object was part of a re-learnt background: box (x0, y0, x1, y1), the object's polarity."""

    x0: int
    y0: int
    x1: int
    y1: int
    polarity: int          # +1: the object is brighter than the scene behind it, -1: darker
    frames_left: int


def object_polarity(background: np.ndarray, x: float, y: float, half: int, min_contrast: float = 6.0) -> int:
    """+1 / -1 when the background holds an object brighter / darker than its surroundings at (x, y), else 0.

    The core (3 x 3 pixels at x, y) against the median of the box of `half`
    pixels around it.
    """
    h, w = background.shape
    xi, yi = int(round(x)), int(round(y))
    if not (0 <= xi < w and 0 <= yi < h):
        return 0
    core = float(background[max(0, yi - 1):yi + 2, max(0, xi - 1):xi + 2].mean())
    ring = float(np.median(background[max(0, yi - half):yi + half + 1, max(0, xi - half):xi + half + 1]))
    if abs(core - ring) < min_contrast:
        return 0
    return 1 if core > ring else -1


def ghost_pixels(frame: np.ndarray, background_u8: np.ndarray, ghost: Ghost, level: float) -> tuple[np.ndarray, np.ndarray]:
    """(ghost, object) boolean masks over the ghost's box.

    The object differs from the background with its own polarity; where the
    re-learnt background still holds it but it has moved on, the uncovered
    scene differs with the opposite polarity: that is the ghost.
    """
    sl = (slice(ghost.y0, ghost.y1), slice(ghost.x0, ghost.x1))
    d = np.subtract(frame[sl], background_u8[sl], dtype=np.int16) * ghost.polarity
    return d < -level, d > level


def suppress_ghost(diff: np.ndarray, frame: np.ndarray, background_u8: np.ndarray, ghost: Ghost,
                   level: float) -> np.ndarray:
    """Clear the ghost's pixels in the absolute difference (in place); returns the ghost mask of the box."""
    g, _ = ghost_pixels(frame, background_u8, ghost, level)
    diff[ghost.y0:ghost.y1, ghost.x0:ghost.x1][g] = 0
    return g


# -- connected components and blobs ----------------------------------------------------------------
@dataclass
class Blob:
    """One connected component of the motion mask, in full-resolution pixels."""

    x: float          # centroid, weighted by the difference
    y: float
    area_px: int      # cells x factor^2
    cells: int
    x0: int           # bounding box, full resolution, exclusive end
    y0: int
    x1: int
    y1: int
    peak: int         # strongest difference in the blob
    refined: bool = False   # centroid already moved to the object's core
    angle: float = 0.0      # orientation of the long axis (radians, 0 = along the rows, pi/2 = a vertical streak)
    elongation: float = 1.0  # long axis / short axis (second moments of the pooled cells; 1 for a round blob)

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


_NEIGH8 = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def label_numpy(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected labelling of a sparse boolean mask (labels 1..n, 0 = background).

    Walks only the set cells (flood fill over a dict), which is what a motion
    mask is: a few dozen cells out of tens of thousands.
    """
    labels = np.zeros(mask.shape, dtype=np.int32)
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return labels, 0
    cells = set(zip(ys.tolist(), xs.tolist()))
    n = 0
    for start in list(zip(ys.tolist(), xs.tolist())):
        if start not in cells:
            continue
        n += 1
        cells.discard(start)
        stack = [start]
        while stack:
            cy, cx = stack.pop()
            labels[cy, cx] = n
            for oy, ox in _NEIGH8:
                nb = (cy + oy, cx + ox)
                if nb in cells:
                    cells.discard(nb)
                    stack.append(nb)
    return labels, n


_STRUCT8 = np.ones((3, 3), dtype=bool)


def label_components(mask: np.ndarray, method: str = "auto") -> tuple[np.ndarray, int]:
    """8-connected components: scipy.ndimage.label when available (or asked), else label_numpy."""
    if method == "scipy" or (method == "auto" and HAVE_SCIPY):
        if _ndimage is None:
            raise RuntimeError("connected_components = 'scipy' but scipy is not installed")
        labels, n = _ndimage.label(mask, structure=_STRUCT8)
        return labels, int(n)
    return label_numpy(mask)


def blobs_from_mask(mask: np.ndarray, pooled: np.ndarray, factor: int, *, min_cells: int = 1,
                    max_area_px: int | None = None, max_blobs: int | None = None,
                    method: str = "auto") -> tuple[list[Blob], int]:
    """Blobs of a pooled motion mask (pooled = the max-pooled difference, for weights).

    Returns (blobs, dropped): blobs too small, too large or beyond max_blobs
    (weakest first) are dropped and counted.
    """
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return [], 0
    labels, n = label_components(mask, method)
    lab = labels[ys, xs]
    w = pooled[ys, xs].astype(np.float64)
    cnt = np.bincount(lab, minlength=n + 1)
    sw = np.bincount(lab, weights=w, minlength=n + 1)
    sx = np.bincount(lab, weights=w * xs, minlength=n + 1)
    sy = np.bincount(lab, weights=w * ys, minlength=n + 1)
    peak = np.zeros(n + 1, dtype=np.int64)
    np.maximum.at(peak, lab, pooled[ys, xs].astype(np.int64))
    ymin = np.full(n + 1, 1 << 30); np.minimum.at(ymin, lab, ys)
    ymax = np.zeros(n + 1, dtype=np.int64); np.maximum.at(ymax, lab, ys)
    xmin = np.full(n + 1, 1 << 30); np.minimum.at(xmin, lab, xs)
    xmax = np.zeros(n + 1, dtype=np.int64); np.maximum.at(xmax, lab, xs)
    # second moments of the cells (unweighted): orientation and elongation of each blob
    mx, my = np.bincount(lab, weights=xs, minlength=n + 1), np.bincount(lab, weights=ys, minlength=n + 1)
    cntf = np.maximum(cnt, 1).astype(np.float64)
    mx, my = mx / cntf, my / cntf
    dx, dy = xs - mx[lab], ys - my[lab]
    sxx = np.bincount(lab, weights=dx * dx, minlength=n + 1) / cntf + 1 / 12     # + a cell's own extent
    syy = np.bincount(lab, weights=dy * dy, minlength=n + 1) / cntf + 1 / 12
    sxy = np.bincount(lab, weights=dx * dy, minlength=n + 1) / cntf
    angle = 0.5 * np.arctan2(2 * sxy, sxx - syy)
    root = np.sqrt(((sxx - syy) / 2) ** 2 + sxy * sxy)
    lam1, lam2 = (sxx + syy) / 2 + root, np.maximum((sxx + syy) / 2 - root, 1 / 12)
    elong = np.sqrt(lam1 / lam2)
    half = (factor - 1) / 2.0
    blobs: list[Blob] = []
    dropped = 0
    for i in range(1, n + 1):
        c = int(cnt[i])
        area = c * factor * factor
        if c < min_cells or (max_area_px is not None and area > max_area_px):
            dropped += 1
            continue
        blobs.append(Blob(x=float(sx[i] / sw[i]) * factor + half, y=float(sy[i] / sw[i]) * factor + half,
                          area_px=area, cells=c, x0=int(xmin[i]) * factor, y0=int(ymin[i]) * factor,
                          x1=(int(xmax[i]) + 1) * factor, y1=(int(ymax[i]) + 1) * factor, peak=int(peak[i]),
                          angle=float(angle[i]), elongation=float(elong[i])))
    if max_blobs is not None and len(blobs) > max_blobs:
        blobs.sort(key=lambda b: -b.peak)
        dropped += len(blobs) - max_blobs
        blobs = blobs[:max_blobs]
    return blobs, dropped


def refine_centroid(diff: np.ndarray, blob: Blob, level: float) -> None:
    """Move the blob's centroid to the centre of its full-resolution pixels above level.

    Every pixel counts the same: weighting by the difference would pull the
    centre towards whatever bright background the object happens to cover.
    """
    patch = diff[blob.y0:blob.y1, blob.x0:blob.x1]
    if patch.size == 0:
        return
    on = patch > level
    total = int(np.count_nonzero(on))
    if total == 0:
        return
    blob.x = blob.x0 + float((on.sum(axis=0) * np.arange(patch.shape[1])).sum()) / total
    blob.y = blob.y0 + float((on.sum(axis=1) * np.arange(patch.shape[0])).sum()) / total

"""Camera calibration: which image row is which floor, which column is which window.

The contract's form is a TOML file with

    floors = [{floor = 1, y = 1250}, {floor = 2, y = 1190}, {floor = 3, y = 1133}]

the image row of the bottom line of each floor as a technician marks it on a
snapshot (rows need not be evenly spaced: the camera looks up, so upper floors
are closer together). Optional keys:

    floor_height_m = 3.0                       # storey height
    image_width = 1280                         # size of the snapshot the rows were
    image_height = 720                         # marked on (scaled to the analysed frame)
    columns = [{column = 1, x = 100}, ...]     # x of each window column's centre
    columns_y = 400                            # the row where those x were marked
    vanishing_point = [640, -900]              # where the facade's verticals meet
    masks = [{x = 0, y = 0, width = 200, height = 80},        # ignored rectangles
             {polygon = [[900, 0], [1280, 0], [1280, 300]]}]  # or polygons

Heights are measured in "floor coordinates": F(y) = floor number at the row
of that floor's bottom line, interpolated linearly between marked rows and
extrapolated past the ends, so floor 12 spans F in [12, 13).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from gateway.configfile import ConfigError, Problems, Section, load_toml


@dataclass(frozen=True)
class Calibration:
    floors: tuple[tuple[int, float], ...]               # (floor, y), sorted by floor
    columns: tuple[tuple[int, float], ...] = ()          # (column, x), sorted by x
    rects: tuple[tuple[float, float, float, float], ...] = ()   # (x, y, width, height)
    polygons: tuple[tuple[tuple[float, float], ...], ...] = ()
    floor_height_m: float = 3.0
    image_width: int | None = None
    image_height: int | None = None
    columns_y: float | None = None                        # row where the column x were marked
    vanishing_point: tuple[float, float] | None = None    # where the facade's verticals meet
    _ys: np.ndarray = field(init=False, repr=False, compare=False)
    _fs: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.floors) < 2:
            raise ValueError("a calibration needs at least two floors")
        fl = sorted(self.floors)
        object.__setattr__(self, "floors", tuple((int(f), float(y)) for f, y in fl))
        object.__setattr__(self, "columns", tuple(sorted(((int(c), float(x)) for c, x in self.columns),
                                                         key=lambda cx: cx[1])))
        # rows go up (y decreases) as floors go up; np.interp wants increasing x
        ys = np.array([y for _, y in fl], dtype=float)[::-1]
        fs = np.array([f for f, _ in fl], dtype=float)[::-1]
        object.__setattr__(self, "_ys", ys)
        object.__setattr__(self, "_fs", fs)

    # -- geometry ------------------------------------------------------------
    @property
    def min_floor(self) -> int:
        return self.floors[0][0]

    @property
    def max_floor(self) -> int:
        return self.floors[-1][0]

    def height_at(self, y: float | np.ndarray) -> float | np.ndarray:
        """Floor coordinate F of image row y (linear between marks, extrapolated past the ends)."""
        ys, fs = self._ys, self._fs
        y_arr = np.asarray(y, dtype=float)
        out = np.interp(y_arr, ys, fs)
        lo_slope = (fs[1] - fs[0]) / (ys[1] - ys[0])       # top end (smallest y)
        hi_slope = (fs[-1] - fs[-2]) / (ys[-1] - ys[-2])   # bottom end
        out = np.where(y_arr < ys[0], fs[0] + (y_arr - ys[0]) * lo_slope, out)
        out = np.where(y_arr > ys[-1], fs[-1] + (y_arr - ys[-1]) * hi_slope, out)
        return float(out) if np.ndim(out) == 0 else out

    def y_at(self, height: float | np.ndarray) -> float | np.ndarray:
        """Image row of floor coordinate F (inverse of height_at)."""
        ys, fs = self._ys[::-1], self._fs[::-1]          # increasing F
        h = np.asarray(height, dtype=float)
        out = np.interp(h, fs, ys)
        lo_slope = (ys[1] - ys[0]) / (fs[1] - fs[0])
        hi_slope = (ys[-1] - ys[-2]) / (fs[-1] - fs[-2])
        out = np.where(h < fs[0], ys[0] + (h - fs[0]) * lo_slope, out)
        out = np.where(h > fs[-1], ys[-1] + (h - fs[-1]) * hi_slope, out)
        return float(out) if np.ndim(out) == 0 else out

    def pixels_per_floor(self, y: float) -> float:
        """Local vertical scale (pixels per floor) at row y."""
        return abs(float(self.y_at(self.height_at(y) + 0.5)) - float(self.y_at(self.height_at(y) - 0.5)))

    def floor_of(self, height: float) -> int:
        """The floor a floor coordinate lies in, clamped to one above/below the marked floors."""
        return int(min(max(math.floor(height + 1e-9), self.min_floor - 1), self.max_floor + 1))

    def column_of(self, x: float, y: float | None = None) -> int | None:
        """Nearest window column to (x, y), or None without columns (or far outside them).

        With `vanishing_point` and `columns_y`, x is first carried along the
        facade's converging verticals to the row where the columns were marked.
        """
        if not self.columns:
            return None
        if y is not None and self.vanishing_point is not None and self.columns_y is not None:
            vx, vy = self.vanishing_point
            if abs(y - vy) > 1e-6:
                x = vx + (x - vx) * (self.columns_y - vy) / (y - vy)
        xs = [cx for _, cx in self.columns]
        i = int(np.argmin([abs(x - cx) for cx in xs]))
        spacing = (xs[-1] - xs[0]) / (len(xs) - 1) if len(xs) > 1 else float("inf")
        if abs(x - xs[i]) > spacing:                       # beyond the outermost column
            return None
        return self.columns[i][0]

    # -- size and masks -----------------------------------------------------------------
    def scaled(self, width: int, height: int) -> "Calibration":
        """The calibration for frames of another size (marked at image_width x image_height)."""
        if not self.image_width or not self.image_height or (width, height) == (self.image_width, self.image_height):
            return self
        sx, sy = width / self.image_width, height / self.image_height
        return replace(self, floors=tuple((f, y * sy) for f, y in self.floors),
                       columns=tuple((c, x * sx) for c, x in self.columns),
                       rects=tuple((x * sx, y * sy, w * sx, h * sy) for x, y, w, h in self.rects),
                       polygons=tuple(tuple((x * sx, y * sy) for x, y in p) for p in self.polygons),
                       columns_y=None if self.columns_y is None else self.columns_y * sy,
                       vanishing_point=None if self.vanishing_point is None else
                       (self.vanishing_point[0] * sx, self.vanishing_point[1] * sy),
                       image_width=width, image_height=height)

    def exclusion_mask(self, width: int, height: int) -> np.ndarray | None:
        """Boolean H x W array, True where motion is ignored; None when there are no masks."""
        if not self.rects and not self.polygons:
            return None
        mask = np.zeros((height, width), dtype=bool)
        for x, y, w, h in self.rects:
            x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
            mask[y0:max(y0, int(round(y + h))), x0:max(x0, int(round(x + w)))] = True
        if self.polygons:
            yy, xx = np.mgrid[0:height, 0:width]
            px, py = xx + 0.5, yy + 0.5
            for poly in self.polygons:
                inside = np.zeros((height, width), dtype=bool)
                n = len(poly)
                for i in range(n):             # even-odd rule, one edge at a time
                    (x1, y1), (x2, y2) = poly[i], poly[(i + 1) % n]
                    if y1 == y2:
                        continue
                    cross = ((y1 > py) != (y2 > py)) & (px < (x2 - x1) * (py - y1) / (y2 - y1) + x1)
                    inside ^= cross
                mask |= inside
        return mask

    def to_toml(self) -> str:
        """The calibration as TOML text (the contract's form plus the optional keys)."""
        lines = ["floors = [" + ", ".join(f"{{floor = {f}, y = {y:.1f}}}" for f, y in self.floors) + "]",
                 f"floor_height_m = {self.floor_height_m}"]
        if self.image_width and self.image_height:
            lines += [f"image_width = {self.image_width}", f"image_height = {self.image_height}"]
        if self.columns:
            lines.append("columns = [" + ", ".join(f"{{column = {c}, x = {x:.1f}}}" for c, x in self.columns) + "]")
        if self.columns_y is not None:
            lines.append(f"columns_y = {self.columns_y:.1f}")
        if self.vanishing_point is not None:
            lines.append(f"vanishing_point = [{self.vanishing_point[0]:.1f}, {self.vanishing_point[1]:.1f}]")
        masks = [f"{{x = {x:g}, y = {y:g}, width = {w:g}, height = {h:g}}}" for x, y, w, h in self.rects]
        masks += ["{polygon = [" + ", ".join(f"[{x:g}, {y:g}]" for x, y in p) + "]}" for p in self.polygons]
        if masks:
            lines.append("masks = [" + ", ".join(masks) + "]")
        return "\n".join(lines) + "\n"


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def calibration_from_section(sec: Section) -> Calibration | None:
    """Read a calibration table; problems go to sec.problems with full keys, None if unusable."""
    floors: list[tuple[int, float]] = []
    for row in sec.sections("floors", required=True):
        f = row.int("floor", min=-10, max=1000)
        y = row.float("y")
        row.finish()
        floors.append((f, y))
    if sec.has("floors") and isinstance(sec.raw.get("floors"), list):
        seen: dict[int, int] = {}
        for i, (f, y) in enumerate(floors):
            if f in seen:
                sec.error(f"floors[{i}].floor", f"floor {f} is listed twice")
            seen[f] = i
        if len(floors) < 2:
            sec.error("floors", "needs at least two floors")
        ordered = sorted(floors)
        for (f1, y1), (f2, y2) in zip(ordered, ordered[1:]):
            if f2 != f1 and not y2 < y1:
                sec.error("floors", f"floor {f2} (y = {y2:g}) must be above floor {f1} (y = {y1:g}): a smaller y")
    floor_height = sec.float("floor_height_m", 3.0, min=1.0, max=20.0)
    width = sec.int("image_width", 0, min=0) or None
    height = sec.int("image_height", 0, min=0) or None
    columns: list[tuple[int, float]] = []
    for row in sec.sections("columns"):
        c = row.int("column")
        x = row.float("x")
        row.finish()
        columns.append((c, x))
    columns_y = sec.float("columns_y", 0.0) if sec.has("columns_y") else None
    vp = None
    if sec.has("vanishing_point"):
        raw_vp = sec.list("vanishing_point", min_len=2, max_len=2)
        if len(raw_vp) == 2 and all(_number(v) for v in raw_vp):
            vp = (float(raw_vp[0]), float(raw_vp[1]))
        else:
            sec.error("vanishing_point", "expected [x, y]")
    else:
        sec.mark_seen("vanishing_point")
    rects: list[tuple[float, float, float, float]] = []
    polygons: list[tuple[tuple[float, float], ...]] = []
    for row in sec.sections("masks"):
        if row.has("polygon"):
            pts = row.list("polygon", min_len=3)
            ok = all(isinstance(p, list) and len(p) == 2 and all(_number(v) for v in p) for p in pts)
            if not ok:
                row.error("polygon", "expected a list of [x, y] points")
            elif len(pts) >= 3:
                polygons.append(tuple((float(p[0]), float(p[1])) for p in pts))
        else:
            r = (row.float("x"), row.float("y"), row.float("width", min=0.0), row.float("height", min=0.0))
            rects.append(r)
        row.finish()
    sec.finish()
    if sec.problems:
        return None
    return Calibration(floors=tuple(floors), columns=tuple(columns), rects=tuple(rects),
                       polygons=tuple(polygons), floor_height_m=floor_height,
                       image_width=width, image_height=height, columns_y=columns_y, vanishing_point=vp)


def load_calibration(path: Path | str) -> Calibration:
    """Read a calibration TOML file; raises ConfigError naming every bad key."""
    raw, problems = load_toml(path)
    problems.raise_if_any(str(path))
    cal = calibration_from_section(Section(raw, "", problems, Path(path).parent))
    problems.raise_if_any(str(path))
    assert cal is not None
    return cal


def even_calibration(height: int, floors: int = 30, top_margin: float = 0.05,
                     bottom_margin: float = 0.05) -> Calibration:
    """A plain calibration with evenly spaced floors filling the frame (for clips without one)."""
    y0, y1 = height * (1 - bottom_margin), height * top_margin
    step = (y0 - y1) / floors
    return Calibration(floors=tuple((f, y0 - (f - 1) * step) for f in range(1, floors + 2)))


__all__ = ["Calibration", "calibration_from_section", "load_calibration", "even_calibration",
           "ConfigError", "Problems"]

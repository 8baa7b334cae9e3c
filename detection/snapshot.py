"""The snapshot of a thrown object: a picture with the floor grid, the track and the caption, as JPEG (Pillow).

    img = draw_snapshot(frame, track, floor_rows(calibration), analysis_size=(w, h),
                        release_xy=(x, y), floor=12, caption=caption_lines)
    write_jpeg(path, img, quality=88)

Drawn with Pillow's `ImageDraw` (lines, ellipses, text with the built-in
font) and encoded with Pillow's JPEG encoder. The floor lines and numbers
are yellow, the estimated floor's band is tinted red, the track is red with
a ring at each sighting, the release point has a green ring, `F<floor>` is
in the top-right corner, and the caption (detection/caption.py) sits in a
band below the picture.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from detection.caption import font, with_caption
from gateway.atomicfile import write_atomic

TRACK_RGB = (255, 40, 40)
RELEASE_RGB = (40, 255, 80)
GRID_RGB = (255, 210, 0)
GRID_ALPHA = 153          # floor lines at 60 % over the picture
BAND_ALPHA = 77           # the estimated floor's band tinted at 30 %


def floor_rows(calibration: Any) -> list[tuple[int, float]]:
    """(floor, image row of its bottom line) pairs from a calibration, lowest floor first.

    Accepts the detector's Calibration object or the contract's raw form
    (`floors = [{floor = 1, y = 1250}, ...]`).
    """
    floors = getattr(calibration, "floors", calibration)
    if isinstance(floors, dict) and "floors" in floors:
        floors = floors["floors"]
    rows: list[tuple[int, float]] = []
    for item in floors or []:
        if isinstance(item, dict):
            rows.append((int(item["floor"]), float(item["y"])))
        elif isinstance(item, (tuple, list)):
            rows.append((int(item[0]), float(item[1])))
        else:
            rows.append((int(item.floor), float(item.y)))
    return sorted(rows)


def _band(rows: list[tuple[int, float]], floor: int) -> tuple[float, float] | None:
    """Image rows (top, bottom) of `floor`'s band: from its line up to the next floor's (or one spacing)."""
    by_floor = dict(rows)
    if floor not in by_floor:
        return None
    spacing = (rows[0][1] - rows[-1][1]) / max(1, len(rows) - 1)
    bottom = by_floor[floor]
    top = by_floor.get(floor + 1, bottom - spacing)
    return min(top, bottom), max(top, bottom)


def draw_snapshot(frame: np.ndarray, track: Sequence[Sequence[float]], floors: Sequence[tuple[int, float]],
                  *, analysis_size: tuple[int, int] | None = None, release_xy: tuple[float, float] | None = None,
                  floor: int | None = None, caption: Sequence[str] | None = None) -> np.ndarray:
    """An RGB picture of `frame` with the grid, the estimated floor's band, the track and the caption band.

    `track` holds (t, x, y) in the analysed frame's pixels and `floors` rows in
    the same pixels; `analysis_size` (width, height) of that frame scales them
    onto `frame` when the evidence picture is larger or smaller. `frame` is
    not changed.
    """
    base = Image.fromarray(frame if frame.ndim == 3 else np.ascontiguousarray(frame), "RGB" if frame.ndim == 3
                           else "L").convert("RGBA")
    w, h = base.size
    sx, sy = (w / analysis_size[0], h / analysis_size[1]) if analysis_size else (1.0, 1.0)
    scale = max(1, int(round(h / 240)))
    rows = sorted(floors)
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    od = ImageDraw.Draw(overlay)
    band = _band(rows, floor) if floor is not None and rows else None
    if band is not None:
        od.rectangle([0, band[0] * sy, w, band[1] * sy - 1], fill=TRACK_RGB + (BAND_ALPHA,))
    label = font(max(9, 8 * scale))
    for fl, y in rows:
        yy = y * sy
        if 0 <= yy < h:
            od.line([(0, yy), (w - 1, yy)], fill=GRID_RGB + (GRID_ALPHA,), width=1)
            od.text((2, yy - 1), str(fl), fill=GRID_RGB + (255,), font=label, anchor="ld")
    img = Image.alpha_composite(base, overlay)
    draw = ImageDraw.Draw(img)
    pts = [(float(p[1]) * sx, float(p[2]) * sy) for p in track]
    if len(pts) > 1:
        draw.line(pts, fill=TRACK_RGB, width=max(2, scale), joint="curve")
    r = 2 * scale
    for x, y in pts:
        draw.ellipse([x - r, y - r, x + r, y + r], outline=TRACK_RGB, width=1)
    if release_xy is not None:
        x, y, r = release_xy[0] * sx, release_xy[1] * sy, 6 * scale
        draw.ellipse([x - r, y - r, x + r, y + r], outline=RELEASE_RGB, width=2)
    if floor is not None:
        draw.text((w - 4, 4), f"F{floor}", fill=TRACK_RGB, font=font(max(12, 16 * scale)), anchor="ra")
    out = np.asarray(img.convert("RGB"))
    return with_caption(out, caption) if caption else out.copy()


def encode_jpeg(image: np.ndarray, quality: int = 88) -> bytes:
    """JPEG bytes of a gray or RGB uint8 picture (Pillow)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, "JPEG", quality=int(quality))
    return buf.getvalue()


def write_jpeg(path: Path, image: np.ndarray, quality: int = 88) -> Path:
    """Write the picture as JPEG atomically (whole or not at all); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, encode_jpeg(image, quality))

"""The caption on every evidence picture, as CCTV stills carry one: site, camera, local time with zone, event, floor.

    cap = Caption(site="s1", camera="tower-3", event_id=..., floor=12, floor_range=(11, 12),
                  timezone="Asia/Shanghai")
    lines = cap.lines(when)                 # two lines of text for the instant `when`
    picture = with_caption(rgb, lines)      # the picture with a black band below it holding the text

The band goes below the picture rather than over it, so the caption never
hides part of the scene. Text is drawn with Pillow's built-in font
(`ImageFont.load_default(size=...)`, Aileron, Pillow >= 10.1, needs no font
file): it covers Latin letters, digits and punctuation, which is all a
caption holds (site and camera names are ASCII by config). A caption with
CJK text would need a font file that has those glyphs (docs/evidence.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Sequence
from zoneinfo import ZoneInfo

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MIN_FONT_PX = 9
MAX_FONT_PX = 40
LINE_SPACING = 1.3        # line height as a multiple of the font size
BAND_RGB = (0, 0, 0)
TEXT_RGB = (255, 255, 255)
SEPARATOR = "   "         # between the fields of a line; a narrow picture breaks lines there


@dataclass(frozen=True)
class Caption:
    """What an event's evidence says about itself; `lines(when)` for each picture's own instant."""

    site: str
    camera: str
    event_id: str
    floor: int
    floor_range: tuple[int, int]
    timezone: str                 # the site's IANA zone: times are shown in local time

    def local_time(self, when: datetime) -> str:
        """`2026-11-23 13:05:07.123 CST (UTC+08:00)`."""
        local = when.astimezone(ZoneInfo(self.timezone))
        offset = local.strftime("%z")
        return (f"{local:%Y-%m-%d %H:%M:%S}.{local.microsecond // 1000:03d} {local.tzname()} "
                f"(UTC{offset[:3]}:{offset[3:]})")

    def lines(self, when: datetime) -> list[str]:
        lo, hi = self.floor_range
        return [f"{self.site} / {self.camera}{SEPARATOR}{self.local_time(when)}",
                f"event {self.event_id}{SEPARATOR}floor {self.floor} (range {lo}-{hi})"]

    def text(self, when: datetime) -> str:
        """The caption on one line (MP4 metadata, the manifest)."""
        return " | ".join(self.lines(when))


@lru_cache(maxsize=16)
def font(size_px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's built-in scalable font at `size_px`."""
    return ImageFont.load_default(size=size_px)


def fit_font_size(lines: Sequence[str], width: int) -> int:
    """The largest size (within MIN..MAX_FONT_PX) at which every line fits `width` with a margin."""
    size = max(MIN_FONT_PX, min(MAX_FONT_PX, width // 30))
    while size > MIN_FONT_PX and max(font(size).getlength(s) for s in lines) > width - size:
        size -= 1
    return size


@dataclass(frozen=True)
class BandStyle:
    """How a caption is laid out in a band of a given width: the font size, and whether lines are broken.

    A clip keeps one style for all its pictures, so the band's height never
    changes from one picture to the next.
    """

    size_px: int
    broken: bool = False          # each line broken at its wide gaps (a narrow picture)

    @classmethod
    def fit(cls, lines: Sequence[str], width: int) -> "BandStyle":
        """The largest size at which `lines` fit `width`; lines too long even at the smallest are broken."""
        size = fit_font_size(lines, width)
        if max(font(size).getlength(s) for s in lines) <= width - size:
            return cls(size)
        return cls(fit_font_size(cls(size, True).apply(lines), width), True)

    def apply(self, lines: Sequence[str]) -> list[str]:
        return [part for line in lines for part in line.split(SEPARATOR)] if self.broken else list(lines)


def band_height(n_lines: int, size_px: int) -> int:
    """Rows of a band for `n_lines` at `size_px`: even, as 4:2:0 video needs."""
    h = int(round(n_lines * size_px * LINE_SPACING + size_px * 0.6))
    return h + h % 2


def render_band(lines: Sequence[str], width: int, style: BandStyle | None = None) -> np.ndarray:
    """The caption band alone: H x `width` x 3 uint8, white text on black."""
    style = style or BandStyle.fit(lines, width)
    lines = style.apply(lines)
    size = style.size_px
    band = Image.new("RGB", (width, band_height(len(lines), size)), BAND_RGB)
    draw = ImageDraw.Draw(band)
    for i, line in enumerate(lines):
        draw.text((size // 2, int(size * 0.3 + i * size * LINE_SPACING)), line, fill=TEXT_RGB, font=font(size))
    return np.asarray(band)


def with_caption(picture: np.ndarray, lines: Sequence[str], style: BandStyle | None = None) -> np.ndarray:
    """`picture` (gray or RGB) in RGB with the caption band below it."""
    rgb = picture if picture.ndim == 3 else np.repeat(picture[:, :, None], 3, axis=2)
    return np.concatenate([rgb, render_band(lines, rgb.shape[1], style)], axis=0)

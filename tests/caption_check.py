"""Checking a caption on a decoded picture: the band compared, block by block, with a fresh render of the text.

JPEG or H.264 leave a small error everywhere; one wrong character (a digit
of the time, of the event id, of the floor) leaves a large one in the block
that holds it. So the worst block's mean difference is low for the right
text and high for any other (measured: about 3 against 16 to 53 on a
480-pixel band at JPEG quality 88).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from detection.caption import BandStyle, render_band

BLOCK_PX = 12
MATCH_MAX = 10.0      # the worst block's mean difference (grey levels) for the right text


def _gray(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).convert("L")).astype(np.float32)


def worst_block(a: np.ndarray, b: np.ndarray, k: int = BLOCK_PX) -> float:
    d = np.abs(a - b)
    h, w = d.shape
    return max(float(d[i:i + k, j:j + k].mean()) for i in range(0, max(1, h - k + 1), k // 2)
               for j in range(0, max(1, w - k + 1), k // 2))


def caption_mismatch(picture: np.ndarray, lines: Sequence[str], style: BandStyle | None = None) -> float:
    """How far the band at the bottom of a decoded RGB `picture` is from `lines` rendered afresh."""
    band = render_band(lines, picture.shape[1], style)
    return worst_block(_gray(picture[-band.shape[0]:]), _gray(band))

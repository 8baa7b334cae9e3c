"""Floor of origin: the fitted release height turned into floor, floor_range and window column.

The trajectory fit gives the release height in floor coordinates (F: floor
number at that floor's bottom line, see calibration.py) and a spread of
heights from all fits nearly as good as the best one. A thrown object leaves
a window or balcony about 1 to 1.5 m above its floor's bottom line, so the
floor is the one whose band [F, F + 1) holds the release height; the range
covers every good fit, and the column is the marked window column nearest to
the release point.
"""

from __future__ import annotations

from dataclasses import dataclass

from detection.calibration import Calibration
from detection.trajectory import FallFit


@dataclass
class FloorEstimate:
    floor: int
    floor_range: tuple[int, int]
    column: int | None
    release_xy: tuple[float, float]


def estimate_floor(fit: FallFit, cal: Calibration) -> FloorEstimate:
    """Floor, floor range and column of a fitted fall's release point."""
    floor = cal.floor_of(fit.f0)
    lo = min(floor, cal.floor_of(fit.f0_low))
    hi = max(floor, cal.floor_of(fit.f0_high))
    release_y = float(cal.y_at(fit.f0))
    return FloorEstimate(floor=floor, floor_range=(lo, hi), column=cal.column_of(fit.release_x, release_y),
                         release_xy=(fit.release_x, release_y))

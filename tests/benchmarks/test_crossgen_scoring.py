"""bench_crossgen's scoring: size bins, the worse of two directions, and how a detection is matched."""

from __future__ import annotations

from dataclasses import dataclass

from tests.benchmarks.bench_crossgen import Ratio, measures, score, size_bin, worse


@dataclass
class Found:
    t_start: float
    t_end: float
    floor: int


def test_size_bins():
    assert [size_bin(px) for px in (1.5, 2.0, 2.9, 3.0, 5.9, 6.0, 11.9, 12.0, 40.0)] == [0, 0, 0, 1, 1, 2, 2, 3, 3]


def test_headline_is_the_worse_direction():
    a, b = Ratio(9, 10), Ratio(7, 10)
    assert worse("recall >= 3 px", a, b) is b
    assert worse("false alarms per distractor clip", Ratio(0, 10), Ratio(1, 10)).k == 1
    assert worse("recall >= 3 px", Ratio(0, 0), b) is b


def test_a_detection_counts_only_when_it_overlaps_the_fall():
    throw = [{"floor": 12, "t_release": 1.0, "t_land": 3.0, "size_px": 5.0}]
    assert score([Found(1.1, 2.9, 13)], throw) == {"detected": True, "floor_ok": True, "false_alarms": 0,
                                                   "floor_found": 13}
    late = score([Found(4.5, 5.0, 12)], throw)
    assert not late["detected"] and late["false_alarms"] == 1
    assert score([Found(1.0, 2.0, 3)], [])["false_alarms"] == 1


def test_measures_count_rain_and_bins():
    rows = [{"kind": "throw", "companion": "rain", "size_px": 4.0, "detected": True, "floor_ok": True, "false_alarms": 0},
            {"kind": "throw", "companion": "none", "size_px": 2.5, "detected": False, "floor_ok": False, "false_alarms": 0},
            {"kind": "rain", "companion": "none", "size_px": 0.0, "detected": False, "floor_ok": False, "false_alarms": 2}]
    m = measures(rows)
    assert (m["recall >= 3 px"].k, m["recall >= 3 px"].n) == (1, 1)
    assert (m["recall in rain, >= 3 px"].k, m["recall 2-3 px"].n) == (1, 1)
    assert (m["false alarms per distractor clip"].k, m["false alarms per distractor clip"].n) == (1, 1)

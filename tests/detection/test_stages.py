"""Each image stage of the detector on small arrays."""

from __future__ import annotations

import numpy as np
import pytest

from detection import stages


def test_abs_difference_does_not_wrap_like_uint8():
    a = np.array([[3, 250]], dtype=np.uint8)
    b = np.array([[5, 10]], dtype=np.uint8)
    assert (a - b).tolist() == [[254, 240]]                   # what uint8 subtraction does
    assert stages.abs_difference(a, b).tolist() == [[2, 240]]
    assert stages.abs_difference(a, b).dtype == np.int16


def test_max_pool_keeps_a_single_bright_pixel_a_mean_would_wash_out():
    img = np.zeros((16, 16), dtype=np.int16)
    img[5, 9] = 80                                             # a 1 px object
    pooled = stages.max_pool(img, 4)
    assert pooled.shape == (4, 4)
    assert pooled[1, 2] == 80 and pooled.sum() == 80
    mean = img.reshape(4, 4, 4, 4).mean(axis=(1, 3))
    assert mean.max() == 5                                     # a resize would lose it under any threshold


def test_max_pool_crops_ragged_edges_and_factor_one_is_identity():
    img = np.arange(7 * 9, dtype=np.int16).reshape(7, 9)
    assert stages.max_pool(img, 2).shape == (3, 4)
    assert stages.max_pool(img, 2)[0, 0] == img[:2, :2].max()
    assert stages.max_pool(img, 1) is img


def test_threshold_and_exclusion_mask():
    pooled = np.array([[0, 30], [50, 10]], dtype=np.int16)
    mask = stages.threshold(pooled, 20)
    assert mask.tolist() == [[False, True], [True, False]]
    excl = np.array([[False, True], [False, False]])
    assert stages.apply_exclusion(mask, excl).tolist() == [[False, False], [True, False]]


def test_running_average_background_and_slow_update_where_objects_are():
    bg = np.full((8, 8), 100.0, dtype=np.float32)
    frame = np.full((8, 8), 200, dtype=np.uint8)
    stages.update_background(bg, frame, 0.1, slow=[(0, 0, 4, 8)], slow_factor=0.0)
    assert bg[0, 0] == pytest.approx(100.0)                    # under an object: not learnt
    assert bg[0, 7] == pytest.approx(110.0)


def test_noise_sigma_is_measured_from_the_difference():
    rng = np.random.default_rng(1)
    d = np.abs(np.rint(rng.normal(0, 4.0, (200, 200)))).astype(np.int16)
    d[50:60, 50:60] = 200                                      # an object does not inflate it
    assert stages.noise_sigma(d) == pytest.approx(4.0, rel=0.15)


def test_contrast_lut_stretches_a_dim_scene_but_keeps_headroom():
    rng = np.random.default_rng(2)
    night = rng.integers(20, 60, (64, 64)).astype(np.uint8)
    lut = stages.contrast_lut(night)
    assert int(lut[59]) - int(lut[20]) > 100                   # dim scene stretched
    assert lut[5] > 0 or lut[10] < lut[20]                     # darker than the scene is not all clipped
    day = rng.integers(0, 256, (64, 64)).astype(np.uint8)
    assert abs(int(stages.contrast_lut(day)[200]) - int(stages.contrast_lut(day)[100]) - 100) <= 2   # never below gain 1


def test_global_change_guard():
    mask = np.zeros((10, 10), dtype=bool)
    mask[:4] = True
    assert stages.is_global_change(mask, 0.3)
    assert not stages.is_global_change(mask, 0.5)


@pytest.mark.parametrize("method", ["numpy", "auto"])
def test_connected_components_and_blobs(method):
    mask = np.zeros((20, 20), dtype=bool)
    mask[2, 2] = mask[3, 3] = True                             # diagonal: one 8-connected blob
    mask[10:12, 10:14] = True
    mask[18, 0] = True
    labels, n = stages.label_components(mask, method)
    assert n == 3 and labels[2, 2] == labels[3, 3]
    pooled = mask.astype(np.int16) * 50
    blobs, dropped = stages.blobs_from_mask(mask, pooled, 4, min_cells=2, max_area_px=100, method=method)
    assert dropped == 2                                         # the single cell, and the 8-cell blob (128 px > 100)
    assert len(blobs) == 1
    b = blobs[0]
    assert (b.x, b.y) == pytest.approx((2.5 * 4 + 1.5, 2.5 * 4 + 1.5))
    assert (b.x0, b.y0, b.x1, b.y1) == (8, 8, 16, 16)


def test_label_numpy_matches_scipy_when_available():
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(3)
    mask = rng.random((60, 80)) < 0.08
    lab_np, n_np = stages.label_numpy(mask)
    lab_sp, n_sp = scipy_ndimage.label(mask, structure=np.ones((3, 3)))
    assert n_np == n_sp
    # same partition: each numpy label maps to exactly one scipy label
    pairs = set(zip(lab_np[mask].tolist(), lab_sp[mask].tolist()))
    assert len(pairs) == n_np


def test_refine_centroid_counts_pixels_not_brightness():
    diff = np.zeros((16, 16), dtype=np.int16)
    diff[4:8, 6] = [200, 200, 30, 30]                          # bright background behind the top half
    b = stages.Blob(x=0, y=0, area_px=16, cells=1, x0=4, y0=4, x1=8, y1=8, peak=200)
    stages.refine_centroid(diff, b, 20)
    assert (b.x, b.y) == pytest.approx((6.0, 5.5))


def test_phase_correlation_finds_a_shake_and_shift_undoes_it():
    rng = np.random.default_rng(4)
    ref = (rng.random((96, 128)) * 255).astype(np.uint8)
    moved = np.roll(np.roll(ref, 3, axis=0), -2, axis=1)       # frame[y+3, x-2] = ref[y, x]
    dx, dy = stages.estimate_shift(ref, moved, max_shift=8, size=64)
    assert (dx, dy) == (-2, 3)
    back = stages.shift_image(moved, dx, dy)
    assert np.array_equal(back[8:-8, 8:-8], ref[8:-8, 8:-8])
    assert stages.estimate_shift(ref, ref, 8, 64) == (0, 0)


def test_thick_support_removes_thin_streaks_and_keeps_an_object_core():
    d = np.zeros((20, 20), dtype=np.int16)
    d[2:18, 3] = 60                                            # a rain streak, 1 px wide
    d[2:18, 7:9] = 40                                          # a 2 px wide streak
    d[10:14, 12:16] = 90                                       # a 4 px object
    core = stages.thick_support(d, 3)
    assert core[:, :10].max() == 0                             # both streaks gone
    assert core[10:14, 13:15].min() == 90 and core.sum() == 90 * 4 * 2   # the object keeps its inner columns
    assert core.dtype == np.int16 and core.shape == d.shape


def test_streak_shape_and_blob_density():
    tall = stages.Blob(x=10, y=20, area_px=64, cells=4, x0=8, y0=8, x1=12, y1=24, peak=50)
    square = stages.Blob(x=10, y=10, area_px=64, cells=4, x0=8, y0=8, x1=16, y1=16, peak=50)
    assert stages.is_streak_shaped(tall, 4) and not stages.is_streak_shaped(square, 4)
    blobs = [stages.Blob(x=5 + i, y=5, area_px=16, cells=1, x0=0, y0=0, x1=4, y1=4, peak=20) for i in range(5)]
    blobs.append(stages.Blob(x=100, y=70, area_px=16, cells=1, x0=0, y0=0, x1=4, y1=4, peak=20))
    grid = stages.blob_density(blobs, (80, 128), 32)
    assert grid.shape == (3, 4) and grid[0, 0] == 5 and grid[2, 3] == 1 and grid.sum() == 6


def test_object_polarity_against_its_surroundings():
    bg = np.full((30, 30), 120, dtype=np.uint8)
    bg[14:17, 14:17] = 30                                      # a dark object in the background
    bg[4:7, 4:7] = 220                                         # a bright one
    assert stages.object_polarity(bg, 15, 15, 6) == -1
    assert stages.object_polarity(bg, 5, 5, 4) == 1
    assert stages.object_polarity(bg, 25, 25, 4) == 0         # nothing there
    assert stages.object_polarity(bg, 40, 5, 4) == 0          # outside the frame


def test_ghost_of_a_relearnt_object_is_suppressed_and_the_object_kept():
    bg = np.full((30, 30), 120, dtype=np.uint8)
    bg[5:8, 10:13] = 30                       # re-learnt with a dark object at rows 5-7
    frame = np.full((30, 30), 120, dtype=np.uint8)
    frame[15:18, 10:13] = 30                  # it has fallen to rows 15-17: rows 5-7 show the wall again
    diff = stages.abs_difference(frame, bg)
    assert diff[6, 11] == 90 and diff[16, 11] == 90           # plain differencing: a ghost and the object
    ghost = stages.Ghost(5, 0, 20, 25, polarity=-1, frames_left=10)
    g = stages.suppress_ghost(diff, frame, bg, ghost, 20)
    assert diff[6, 11] == 0 and diff[16, 11] == 90            # the ghost is gone, the object stays
    assert g.sum() == 9

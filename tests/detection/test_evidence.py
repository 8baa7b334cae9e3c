"""Evidence files: clips from pictures, snapshots, hashes, retention (remuxed clips: tests/drivers/camera/test_ring.py)."""

from __future__ import annotations

import hashlib
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from detection import jpeg
from detection.evidence import (EvidenceStore, draw_snapshot, encode_jpeg, floor_rows, sha256_file, write_clip,
                                write_jpeg)


def _frame(value: int, h: int = 48, w: int = 64) -> np.ndarray:
    return np.full((h, w), value, dtype=np.uint8)


def _decode_all(path: Path, fmt: str = "gray") -> list[np.ndarray]:
    pav = pytest.importorskip("av")
    with pav.open(str(path)) as c:
        return [f.to_ndarray(format=fmt) for f in c.decode(video=0)]


# -- clips -----------------------------------------------------------------------

@pytest.mark.parametrize("prefer", ["mp4", "avi"])
def test_clip_holds_every_frame_in_order(tmp_path: Path, prefer: str) -> None:
    pytest.importorskip("av")
    frames = [_frame(10 + 8 * i, 72, 96) for i in range(25)]
    path = write_clip(tmp_path / "clip", frames, 12.5, prefer=prefer)
    assert path.suffix == "." + prefer and path.exists()
    assert not list(tmp_path.glob("*.part"))
    decoded = _decode_all(path)
    assert len(decoded) == 25
    means = [float(d.mean()) for d in decoded]
    assert means == pytest.approx([10 + 8 * i for i in range(25)], abs=3)


def test_mjpeg_avi_is_a_valid_riff_avi(tmp_path: Path) -> None:
    frames = [jpeg.encode_jpeg(_frame(v, 16, 16)) for v in (0, 128, 255)]
    path = tmp_path / "c.avi"
    jpeg.write_mjpeg_avi(path, frames, 25.0, 16, 16)
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"AVI "
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    assert data.count(b"00dc") == 6              # 3 chunks + 3 index entries
    assert b"idx1" in data and b"MJPG" in data


def test_clip_of_colour_frames_keeps_colour(tmp_path: Path) -> None:
    pytest.importorskip("av")
    rgb = np.zeros((64, 80, 3), np.uint8)
    rgb[..., 0] = 200
    path = write_clip(tmp_path / "red", [rgb] * 5, 25.0)
    out = _decode_all(path, "rgb24")
    assert len(out) == 5
    r, g, b = out[2][..., 0].mean(), out[2][..., 1].mean(), out[2][..., 2].mean()
    assert r > 150 and g < 40 and b < 40


# -- JPEG -----------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(37, 53), (8, 8), (64, 48, 3), (33, 71, 3)])
def test_handwritten_jpeg_decodes_to_the_picture(tmp_path: Path, shape: tuple[int, ...]) -> None:
    pytest.importorskip("av")
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    img = (xx * 3 + yy * 2) % 256
    if len(shape) == 3:
        img = np.stack([img, 255 - img, (img * 2) % 256], axis=2)
    img = np.clip(img + rng.integers(-4, 5, img.shape), 0, 255).astype(np.uint8)
    path = tmp_path / "x.jpg"
    path.write_bytes(jpeg.encode_jpeg(img, quality=92))
    out = _decode_all(path, "rgb24" if len(shape) == 3 else "gray")[0]
    assert out.shape == img.shape
    assert np.abs(out.astype(int) - img.astype(int)).mean() < 6


def test_handwritten_jpeg_structure() -> None:
    data = jpeg.encode_jpeg(np.zeros((10, 10), np.uint8))
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    assert b"JFIF" in data and b"\xff\xc0" in data and b"\xff\xda" in data
    # the Annex K AC tables hold every (run, size) symbol exactly once
    expected = {0x00, 0xF0} | {(r << 4) | s for r in range(16) for s in range(1, 11)}
    for bits, values in (jpeg._AC_LUM, jpeg._AC_CHR):
        assert sum(bits) == len(values) == 162 and set(values) == expected


def test_quality_trades_size() -> None:
    img = np.random.default_rng(1).integers(0, 255, (64, 64), dtype=np.uint8)
    assert len(jpeg.encode_jpeg(img, 30)) < len(jpeg.encode_jpeg(img, 95))


# -- snapshot ---------------------------------------------------------------------

def test_snapshot_draws_track_grid_and_floor(tmp_path: Path) -> None:
    gray = np.full((200, 160), 60, np.uint8)
    floors = [(1, 190.0), (2, 150.0), (3, 110.0), (4, 70.0), (5, 30.0)]
    track = [(0.1 * i, 80.0, 40.0 + 15 * i) for i in range(10)]
    img = draw_snapshot(gray, track, floors, analysis_size=(160, 200), release_xy=(80.0, 35.0), floor=4)
    assert img.shape == (200, 160, 3)
    red = (img[..., 0] > 200) & (img[..., 1] < 80)
    assert red[60:170, 78:83].sum() > 50          # the track is drawn where the object fell
    yellow = (img[..., 0] > 150) & (img[..., 1] > 130) & (img[..., 2] < 100)
    assert yellow[150, 100] and yellow[110, 100]  # floor lines
    band = img[35:65, 10:40].astype(int)          # floor 4 (rows 30..70, under floor 5) is tinted red
    assert (band[..., 0] - band[..., 1]).mean() > 15
    assert (img[150:185, 10:40, 0].astype(int) - img[150:185, 10:40, 1]).mean() < 5   # floor 1 is not
    assert np.array_equal(gray, np.full((200, 160), 60, np.uint8))   # the ring's frame is untouched


def test_snapshot_scales_analysis_coordinates_onto_a_larger_picture() -> None:
    big = np.zeros((400, 320, 3), np.uint8)
    img = draw_snapshot(big, [(0, 80.0, 50.0), (1, 80.0, 150.0)], [(1, 190.0), (2, 150.0)],
                        analysis_size=(160, 200))
    red = (img[..., 0] > 200) & (img[..., 1] < 80)
    assert red[100:300, 155:165].sum() > 100 and red[:, :100].sum() == 0


def test_snapshot_jpeg_written_and_hashed(tmp_path: Path) -> None:
    img = draw_snapshot(np.full((90, 120), 100, np.uint8), [(0, 10.0, 10.0), (1, 20.0, 60.0)], [(1, 80.0), (2, 40.0)])
    path = write_jpeg(tmp_path / "s.jpg", img)
    assert path.read_bytes()[:2] == b"\xff\xd8"
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_jpeg_without_pyav_uses_the_numpy_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    import detection.evidence as ev
    monkeypatch.setattr(ev, "have_pyav", lambda: False)
    img = np.full((16, 16), 7, np.uint8)
    assert encode_jpeg(img, 80) == jpeg.encode_jpeg(img, 80)


def test_floor_rows_accepts_calibration_and_contract_form() -> None:
    from detection.calibration import Calibration
    cal = Calibration(floors=((2, 150.0), (1, 190.0)))
    assert floor_rows(cal) == [(1, 190.0), (2, 150.0)]
    assert floor_rows({"floors": [{"floor": 2, "y": 150}, {"floor": 1, "y": 190}]}) == [(1, 190.0), (2, 150.0)]


# -- retention ------------------------------------------------------------------

def _file(path: Path, size: int, age_days: float, now: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (now - age_days * 86400, now - age_days * 86400))
    return path


def test_files_older_than_keep_days_are_removed(tmp_path: Path) -> None:
    now = time.time()
    old = _file(tmp_path / "cam" / "a.mp4", 100, 16, now)
    old_jpg = _file(tmp_path / "cam" / "a.jpg", 100, 15.5, now)
    young = _file(tmp_path / "cam" / "b.mp4", 100, 14, now)
    other = _file(tmp_path / "cam" / "notes.txt", 100, 100, now)
    res = EvidenceStore(tmp_path, keep_days=15, max_bytes=1 << 30).prune(now)
    assert set(res.removed) == {old, old_jpg}
    assert young.exists() and other.exists()


def test_disk_cap_removes_oldest_first(tmp_path: Path) -> None:
    now = time.time()
    files = [_file(tmp_path / f"c{i}.mp4", 1000, 5 - i * 0.5, now) for i in range(6)]   # files[0] oldest
    res = EvidenceStore(tmp_path, keep_days=15, max_bytes=3500).prune(now)
    assert res.removed == files[:3]
    assert res.kept_bytes == 3000
    assert all(f.exists() for f in files[3:])
    res = EvidenceStore(tmp_path, keep_days=15, max_bytes=3500).prune(now, reserve=1000)
    assert res.removed == [files[3]]            # room made for the clip about to be written

"""Evidence clips from pictures (H.264 with the caption burned in) and retention (remuxed clips: tests/drivers/camera/test_ring.py)."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from detection.caption import BandStyle, Caption, render_band
from detection.evidence import EvidenceStore, write_clip
from tests.caption_check import MATCH_MAX, caption_mismatch

av = pytest.importorskip("av")


def _frame(value: int, h: int = 48, w: int = 64) -> np.ndarray:
    return np.full((h, w), value, dtype=np.uint8)


def _decode_all(path: Path, fmt: str = "gray") -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format=fmt) for f in c.decode(video=0)]


# -- clips -----------------------------------------------------------------------

def test_clip_holds_every_frame_in_order_as_h264(tmp_path: Path) -> None:
    frames = [_frame(10 + 8 * i, 72, 96) for i in range(25)]
    path = write_clip(tmp_path / "clip", frames, 12.5)
    assert path.suffix == ".mp4" and not list(tmp_path.glob("*.part"))
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert float(c.streams.video[0].average_rate) == pytest.approx(12.5)
    decoded = _decode_all(path)
    assert len(decoded) == 25
    assert [float(d.mean()) for d in decoded] == pytest.approx([10 + 8 * i for i in range(25)], abs=3)


def test_clip_of_colour_frames_keeps_colour(tmp_path: Path) -> None:
    rgb = np.zeros((64, 80, 3), np.uint8)
    rgb[..., 0] = 200
    out = _decode_all(write_clip(tmp_path / "red", [rgb] * 5, 25.0), "rgb24")
    assert len(out) == 5
    r, g, b = out[2][..., 0].mean(), out[2][..., 1].mean(), out[2][..., 2].mean()
    assert r > 150 and g < 40 and b < 40


def test_each_picture_carries_its_own_time_in_the_caption(tmp_path: Path) -> None:
    cap = Caption(site="s1", camera="tower-3", event_id="0192f5d6-7a3b-7c4d-8e9f-0123456789ab", floor=7,
                  floor_range=(6, 8), timezone="Asia/Shanghai")
    t0 = datetime(2026, 11, 23, 5, 5, 7, tzinfo=timezone.utc)
    rng = np.random.default_rng(2)
    frames = [rng.integers(40, 200, (270, 480), dtype=np.uint8) for _ in range(10)]
    captions = [cap.lines(t0 + timedelta(seconds=i * 0.4)) for i in range(10)]
    path = write_clip(tmp_path / "c", frames, 2.5, captions=captions, metadata={"title": cap.text(t0)})
    with av.open(str(path)) as c:
        assert c.metadata.get("title") == cap.text(t0)
        pictures = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    style = BandStyle.fit(captions[0], 480)
    assert len(pictures) == 10
    assert pictures[0].shape == (270 + render_band(captions[0], 480, style).shape[0], 480, 3)
    for i in (0, 4, 9):   # every picture shows its own instant, not its neighbour's
        assert caption_mismatch(pictures[i], captions[i], style) < MATCH_MAX
        assert caption_mismatch(pictures[i], captions[(i + 1) % 10], style) > MATCH_MAX * 1.2


def test_an_empty_clip_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no frames"):
        write_clip(tmp_path / "c", [], 25.0)
    assert not list(tmp_path.iterdir())


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
    old_manifest = _file(tmp_path / "cam" / "a.manifest", 100, 16, now)
    old_sig = _file(tmp_path / "cam" / "a.manifest.sig", 64, 16, now)
    other = _file(tmp_path / "cam" / "notes.txt", 100, 100, now)
    res = EvidenceStore(tmp_path, keep_days=15, max_bytes=1 << 30).prune(now)
    assert set(res.removed) == {old, old_jpg, old_manifest, old_sig}
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

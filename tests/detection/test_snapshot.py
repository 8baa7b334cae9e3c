"""The snapshot: grid, floor band, track and caption drawn with Pillow, written as JPEG, caption read back."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from detection.caption import Caption, render_band
from detection.snapshot import draw_snapshot, floor_rows, write_jpeg
from tests.caption_check import MATCH_MAX, caption_mismatch

CAPTION = Caption(site="s1", camera="tower-3", event_id="0192f5d6-7a3b-7c4d-8e9f-0123456789ab", floor=12,
                  floor_range=(11, 12), timezone="Asia/Shanghai")
WHEN = datetime(2026, 11, 23, 5, 5, 7, 123000, tzinfo=timezone.utc)


def test_caption_text_has_site_camera_local_time_with_zone_event_and_floor() -> None:
    assert CAPTION.lines(WHEN) == [
        "s1 / tower-3   2026-11-23 13:05:07.123 CST (UTC+08:00)",
        "event 0192f5d6-7a3b-7c4d-8e9f-0123456789ab   floor 12 (range 11-12)"]
    berlin = dataclasses.replace(CAPTION, timezone="Europe/Berlin")
    assert "2026-11-23 06:05:07.123 CET (UTC+01:00)" in berlin.text(WHEN)


def test_snapshot_draws_track_grid_and_floor() -> None:
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


def test_caption_is_readable_on_the_decoded_jpeg(tmp_path: Path) -> None:
    picture = np.random.default_rng(1).integers(0, 255, (270, 480), dtype=np.uint8)   # a busy scene
    img = draw_snapshot(picture, [(0, 100.0, 50.0), (1, 100.0, 200.0)], [(1, 190.0), (2, 150.0)], floor=1,
                        caption=CAPTION.lines(WHEN))
    path = write_jpeg(tmp_path / "s.jpg", img, 88)
    decoded = np.asarray(Image.open(path).convert("RGB"))
    band_h = render_band(CAPTION.lines(WHEN), 480).shape[0]
    assert decoded.shape == (270 + band_h, 480, 3)          # the band is below the scene, hiding none of it
    assert caption_mismatch(decoded, CAPTION.lines(WHEN)) < MATCH_MAX
    # any other time, event, floor or camera does not match what is on the picture
    others = [CAPTION.lines(WHEN.replace(second=8)), CAPTION.lines(WHEN.replace(microsecond=124000)),
              dataclasses.replace(CAPTION, event_id=CAPTION.event_id[:-1] + "c").lines(WHEN),
              dataclasses.replace(CAPTION, floor=13).lines(WHEN),
              dataclasses.replace(CAPTION, camera="tower-8").lines(WHEN)]
    assert min(caption_mismatch(decoded, lines) for lines in others) > MATCH_MAX * 1.2
    scene = decoded[:270].astype(int)
    assert np.abs(scene[:, 300:] - picture[:, 300:, None]).mean() < 12    # the scene itself is kept


def test_a_narrow_picture_breaks_the_caption_into_more_lines() -> None:
    img = draw_snapshot(np.zeros((120, 160), np.uint8), [], [(1, 100.0), (2, 60.0)], caption=CAPTION.lines(WHEN))
    assert caption_mismatch(img, CAPTION.lines(WHEN)) < 1.0   # drawn exactly as the layout says
    assert img.shape[0] - 120 > render_band(CAPTION.lines(WHEN), 480).shape[0]


def test_snapshot_jpeg_written_whole(tmp_path: Path) -> None:
    img = draw_snapshot(np.full((90, 120), 100, np.uint8), [(0, 10.0, 10.0), (1, 20.0, 60.0)], [(1, 80.0), (2, 40.0)])
    path = write_jpeg(tmp_path / "s.jpg", img)
    data = path.read_bytes()
    assert data[:2] == b"\xff\xd8" and len(data) > 200
    assert Image.open(path).size == (120, 90)
    assert not [p for p in tmp_path.iterdir() if p.name != "s.jpg"]   # no temporary file left


def test_floor_rows_accepts_calibration_and_contract_form() -> None:
    from detection.calibration import Calibration
    cal = Calibration(floors=((2, 150.0), (1, 190.0)))
    assert floor_rows(cal) == [(1, 190.0), (2, 150.0)]
    assert floor_rows({"floors": [{"floor": 2, "y": 150}, {"floor": 1, "y": 190}]}) == [(1, 190.0), (2, 150.0)]

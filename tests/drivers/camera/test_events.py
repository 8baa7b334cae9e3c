"""Event data from a detection, on its own: no thread, no clock, no file."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from drivers.camera.events import (clip_saved_data, evidence_stem, pending_clip_entry, pending_manifest_entry,
                                   snapshot_time, throw_data)

WALL0 = datetime(2026, 11, 23, 13, 5, 0, tzinfo=timezone.utc)


@dataclass
class Detection:   # the ThrowDetection fields the camera uses
    t_start: float = 7.123
    t_end: float = 9.483
    floor: int = 12
    floor_range: tuple[int, int] = (11, 12)
    column: int | None = 4
    confidence: float = 0.93456
    drag: bool = False
    release_xy: tuple[float, float] = (352.04, 70.66)
    track: list[tuple[float, float, float]] = field(
        default_factory=lambda: [(7.123 + 0.08 * i, 352.0, 72.0 + 9.0 * i) for i in range(30)])


def test_throw_data_says_when_where_and_how_sure() -> None:
    d = Detection()
    data = throw_data(d, wall0=WALL0, frame_size=(640, 360), track_points=5, evidence=[{"kind": "snapshot"}])
    assert data["t_start"] == "2026-11-23T13:05:07.123Z" and data["t_end"] == "2026-11-23T13:05:09.483Z"
    assert data["duration_s"] == 2.36 and data["confidence"] == 0.935
    assert (data["floor"], data["floor_range"], data["column"]) == (12, [11, 12], 4)
    assert data["release_xy"] == [352.0, 70.7] and data["frame_size"] == [640, 360]
    assert len(data["track"]) == 5 and data["track"][0] == [0.0, 352.0, 72.0]
    assert data["track"][-1] == [2.32, 352.0, 333.0]
    assert data["evidence"] == [{"kind": "snapshot"}] and data["drag"] is False


def test_no_column_is_null() -> None:
    data = throw_data(Detection(column=None), wall0=WALL0, frame_size=(1, 1), track_points=2, evidence=[])
    assert data["column"] is None


def test_file_names_and_entries() -> None:
    assert evidence_stem("tower-3", datetime(2026, 11, 23, 13, 5, 7, 123456, tzinfo=timezone.utc)) == \
        "tower-3_20261123T130507123Z"
    assert pending_clip_entry("x.mp4")["content_type"] == "video/mp4"
    assert pending_manifest_entry("x.manifest") == {"kind": "manifest", "file": "x.manifest",
                                                         "content_type": "application/json", "status": "pending"}
    assert snapshot_time(Detection()) == Detection().track[15][0]
    saved = clip_saved_data("e1", "x.mp4", "ab", 10, start="s", end="e", frames=None, pre_s=None)
    assert "frames" not in saved and "pre_seconds" not in saved and saved["content_type"] == "video/mp4"
    assert clip_saved_data("e1", "x.mp4", "ab", 10, start="s", end="e", frames=3, pre_s=1.23456)["pre_seconds"] == 1.235
    ref = {"file": "x.manifest", "sha256": "cd"}
    assert clip_saved_data("e1", "x.mp4", "ab", 10, start="s", end="e", frames=3, pre_s=None,
                           manifest=ref)["manifest"] == ref

"""What a camera's events say: pure functions from a detection or a written clip to event data.

No thread, clock, file or driver here: the worker hands in the detection,
the wall-clock time of the source's t = 0 and what the evidence files
turned out to be, and gets back the `data` of the contract's events
(`thrown_object`, `evidence_saved`). Tested on their own.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Sequence

import numpy as np

from gateway.clock import iso_utc

CONTENT_TYPES = {".mp4": "video/mp4", ".jpg": "image/jpeg", ".manifest": "application/json",
                 ".sig": "application/octet-stream"}


def wall_time(wall0: datetime, t: float) -> datetime:
    """The wall-clock time of source time `t`, given that of t = 0."""
    return wall0 + timedelta(seconds=t)


def evidence_stem(camera: str, ts: datetime) -> str:
    """The evidence files' name (no suffix): the camera and the release time, UTC to the millisecond."""
    return f"{camera}_{ts.strftime('%Y%m%dT%H%M%S')}{ts.microsecond // 1000:03d}Z"


def snapshot_time(d: Any) -> float:
    """The moment the snapshot shows: the middle of the seen track, where the object is in view."""
    if d.track:
        return float(d.track[len(d.track) // 2][0])
    return float(d.t_start)


def subsample_track(track: Sequence[Sequence[float]], t0: float, most: int) -> list[list[float]]:
    """At most `most` points, first and last kept, as [seconds after t0, x, y]."""
    if not track:
        return []
    idx = np.unique(np.rint(np.linspace(0, len(track) - 1, min(most, len(track)))).astype(int))
    return [[round(float(track[i][0]) - t0, 3), round(float(track[i][1]), 1), round(float(track[i][2]), 1)]
            for i in idx]


def snapshot_entry(file: str, sha256: str, size: int) -> dict[str, Any]:
    return {"kind": "snapshot", "file": file, "content_type": CONTENT_TYPES[".jpg"], "sha256": sha256,
            "bytes": size}


def pending_clip_entry(file: str) -> dict[str, Any]:
    """The clip as the alarm announces it: still recording; its hash follows in `evidence_saved`."""
    suffix = file[file.rfind("."):]
    return {"kind": "clip", "file": file, "content_type": CONTENT_TYPES[suffix], "status": "recording"}


def pending_manifest_entry(file: str) -> dict[str, Any]:
    """The signed manifest as the alarm announces it: written once the clip is (docs/evidence.md)."""
    return {"kind": "manifest", "file": file, "content_type": CONTENT_TYPES[".manifest"], "status": "pending"}


def throw_data(d: Any, *, wall0: datetime, frame_size: tuple[int, int], track_points: int,
               evidence: list[dict[str, Any]]) -> dict[str, Any]:
    """The `thrown_object` event's data for a `ThrowDetection` `d` (times on the source's timeline)."""
    return {
        "floor": int(d.floor), "floor_range": [int(d.floor_range[0]), int(d.floor_range[1])],
        "column": None if d.column is None else int(d.column),
        "t_start": iso_utc(wall_time(wall0, d.t_start)), "t_end": iso_utc(wall_time(wall0, d.t_end)),
        "duration_s": round(float(d.t_end - d.t_start), 3),
        "confidence": round(float(d.confidence), 3), "drag": bool(d.drag),
        "release_xy": [round(float(v), 1) for v in d.release_xy],
        "track": subsample_track(d.track, d.t_start, track_points),
        "frame_size": list(frame_size),
        "evidence": evidence,
    }


def manifest_ref(file: str, sha256: str) -> dict[str, Any]:
    """How `evidence_saved` / `evidence_error` point to the event's signed manifest."""
    return {"file": file, "sha256": sha256}


def clip_saved_data(event_id: str, file: str, sha256: str, size: int, *, start: str | None, end: str | None,
                    frames: int | None, pre_s: float | None, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `evidence_saved` event's data for a written clip (and the manifest that now covers it)."""
    suffix = file[file.rfind("."):]
    data: dict[str, Any] = {"event_id": event_id, "kind": "clip", "file": file,
                            "content_type": CONTENT_TYPES[suffix], "sha256": sha256, "bytes": size,
                            "start": start, "end": end}
    if manifest is not None:
        data["manifest"] = manifest
    if frames is not None:
        data["frames"] = frames
    if pre_s is not None:
        data["pre_seconds"] = round(pre_s, 3)
    return data

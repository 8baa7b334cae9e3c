"""Writing a camera's evidence: the snapshot at once, the clip later in one writer thread, retention.

The snapshot is written by the camera's own thread before the alarm (its
hash is in the alarm). Clips are written by one `EvidenceWriter` thread for
all cameras, so a slow disk or a long remux never holds up a camera's
frames: it remuxes the stream's packets (or writes the pictures), hashes the
file only once it is closed and has its final name, emits
`evidence_saved` (or `evidence_error`) and queues the file for the
evidence lane; it also prunes the evidence folders hourly.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from detection.evidence import (EvidenceStore, draw_snapshot, floor_rows, remux_clip, sha256_file, write_clip,
                                write_jpeg)
from drivers.camera.config import EvidenceConfig
from drivers.camera.events import CONTENT_TYPES, clip_saved_data, snapshot_entry
from drivers.camera.ring import Recording
from gateway.driver import DriverContext

PRUNE_EVERY_S = 3600.0   # retention is checked this often besides before each event


def write_snapshot(path: Path, picture: np.ndarray, d: Any, calibration: Any, frame_size: tuple[int, int],
                   quality: int) -> dict[str, Any]:
    """Draw the detection on `picture`, write it as JPEG; returns the alarm's snapshot entry."""
    img = draw_snapshot(picture, d.track, floor_rows(calibration), analysis_size=frame_size,
                        release_xy=tuple(d.release_xy), floor=d.floor)
    write_jpeg(path, img, quality)
    return snapshot_entry(path.name, sha256_file(path), path.stat().st_size)


@dataclass
class ClipJob:
    camera: str
    evidence: EvidenceConfig
    rec: Recording
    fps: float


class EvidenceWriter(threading.Thread):
    """Writes finished recordings to clips, hashes them, reports and queues them; prunes old files."""

    def __init__(self, name: str, ctx: DriverContext, stop: threading.Event, *,
                 cameras_done: Callable[[], bool], failed: Callable[[str, BaseException], None],
                 log: Any) -> None:
        super().__init__(name=name, daemon=True)
        self.ctx = ctx
        self.stop_event = stop
        self.cameras_done = cameras_done
        self.failed = failed
        self.log = log
        self.jobs: queue.Queue[ClipJob] = queue.Queue()
        self._stores: dict[Path, EvidenceStore] = {}
        self._lock = threading.Lock()

    def store(self, root: Path, cfg: EvidenceConfig) -> EvidenceStore:
        with self._lock:
            if root not in self._stores:
                self._stores[root] = EvidenceStore(root, cfg.keep_days, int(cfg.max_disk_mb * 2**20))
            return self._stores[root]

    def prune(self, root: Path, cfg: EvidenceConfig, reserve: int = 0) -> None:
        self.store(root, cfg).prune(self.ctx.clock.now().timestamp(), reserve=reserve)

    def submit(self, camera: str, evidence: EvidenceConfig, rec: Recording, fps: float) -> None:
        self.jobs.put(ClipJob(camera, evidence, rec, fps))

    def run(self) -> None:
        next_prune = 0.0
        try:
            while True:
                try:
                    job = self.jobs.get(timeout=1.0)
                except queue.Empty:
                    if self.stop_event.is_set() and self.cameras_done():
                        return
                    if self.ctx.clock.monotonic() >= next_prune:
                        with self._lock:
                            stores = list(self._stores.values())
                        for s in stores:
                            s.prune(self.ctx.clock.now().timestamp())
                        next_prune = self.ctx.clock.monotonic() + PRUNE_EVERY_S
                    continue
                self.write(job)
        except Exception as exc:
            self.failed("evidence writer", exc)

    def write(self, job: ClipJob) -> None:
        rec = job.rec
        try:
            path, frames = _write_recording(rec, job.fps)
            digest = sha256_file(path)      # the writer has closed and renamed it: the final bytes
            size = path.stat().st_size
        except Exception as exc:   # a full disk or a codec error: report it, keep running
            self.log.error("camera %s: clip for event %s not written: %s", job.camera, rec.event_id, exc)
            self.ctx.emit(job.camera, "evidence_error", "warning",
                          {"event_id": rec.event_id, "file": rec.stem.name, "error": f"{type(exc).__name__}: {exc}"})
            return
        finally:
            start = rec.start
            rec.release()
        pre = None
        if frames is not None and start is not None and "t_start" in rec.meta:
            pre = max(0.0, rec.meta["t_start"] - start)
        data = clip_saved_data(rec.event_id, path.name, digest, size, start=rec.meta.get("start"),
                               end=rec.meta.get("end"), frames=frames, pre_s=pre)
        self.ctx.emit(job.camera, "evidence_saved", "info", data)
        self.ctx.evidence(rec.event_id, path, CONTENT_TYPES[path.suffix])
        self.prune(path.parent, job.evidence)


def _write_recording(rec: Recording, fps: float) -> tuple[Path, int | None]:
    """The clip file of a recording, and how many pictures it holds (None: written by the camera itself)."""
    if rec.meta.get("native"):
        return rec.stem.with_suffix(".mp4"), None
    if rec.packets:
        assert rec.stream is not None
        return remux_clip(rec.stem, rec.stream, rec.packets), len(rec.packets)
    if not rec.frames:
        raise ValueError("no frames were recorded")
    return write_clip(rec.stem, [f for _, f in rec.frames], fps), len(rec.frames)

"""Writing a camera's evidence: the snapshot at once, the clip and the signed manifest later, retention.

The snapshot is written by the camera's own thread before the alarm (its
hash is in the alarm, its caption names the event). Clips are written by
one `EvidenceWriter` thread for all cameras, so a slow disk or a long remux
never holds up a camera's frames: it remuxes the stream's packets (or
encodes the pictures with the caption burned in), hashes the file only once
it is closed and has its final name, then writes the event's manifest
(gateway/manifest.py: the event's id and seq, the snapshot and the clip with
their SHA-256, times, camera, calibration hash), signed with the gateway's
evidence key, emits `evidence_saved` (or `evidence_error`) naming the
manifest, and queues the clip, the manifest and its signature for the
evidence lane; it also prunes the evidence folders hourly.

The manifest is written after the `thrown_object` event is committed, so it
carries that event's `seq`.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

import numpy as np

from detection.caption import Caption
from detection.evidence import EvidenceStore, remux_clip, write_clip
from detection.snapshot import draw_snapshot, floor_rows, write_jpeg
from drivers.camera.config import EvidenceConfig
from drivers.camera.events import CONTENT_TYPES, clip_saved_data, manifest_ref, snapshot_entry
from drivers.camera.ring import Recording
from gateway.clock import iso_utc
from gateway.driver import DriverContext
from gateway.events import Event
from gateway.manifest import build_manifest, file_entry, sha256_file, write_manifest

PRUNE_EVERY_S = 3600.0   # retention is checked this often besides before each event


def calibration_sha256(calibration: Any) -> str:
    """The calibration's hash, over its canonical TOML form (`Calibration.to_toml()`)."""
    return hashlib.sha256(calibration.to_toml().encode("utf-8")).hexdigest()


def write_snapshot(path: Path, picture: np.ndarray, d: Any, calibration: Any, frame_size: tuple[int, int],
                   quality: int, caption: list[str]) -> dict[str, Any]:
    """Draw the detection and the caption on `picture`, write it as JPEG; returns the alarm's snapshot entry."""
    img = draw_snapshot(picture, d.track, floor_rows(calibration), analysis_size=frame_size,
                        release_xy=tuple(d.release_xy), floor=d.floor, caption=caption)
    write_jpeg(path, img, quality)
    return snapshot_entry(path.name, sha256_file(path), path.stat().st_size)


@dataclass
class EvidenceItem:
    """One event's evidence as the writer needs it once the clip is done (the manifest's content)."""

    event: Event                   # the committed thrown_object (its seq)
    stem: Path                     # <dir>/<camera>_<time>: the snapshot, manifest and signature share it
    caption: Caption
    wall0: datetime                # wall-clock time of the source's t = 0 (each picture's caption time)
    snapshot: dict[str, Any] | None   # the alarm's snapshot entry; None if it could not be written
    snapshot_at: float             # source time the snapshot shows
    calibration_sha256: str

    def wall(self, t: float) -> datetime:
        return self.wall0 + timedelta(seconds=t)

    @property
    def event_time(self) -> datetime:
        """The event's `ts` (the release) as a datetime: the time on the clip's and manifest's caption."""
        return datetime.fromisoformat(self.event.ts.replace("Z", "+00:00"))

    def clip_metadata(self) -> dict[str, str]:
        """The MP4 header's `title` (the caption) and `comment` (where the signed manifest is)."""
        return {"title": self.caption.text(self.event_time),
                "comment": f"anfang evidence: event {self.event.id} seq {self.event.seq}, "
                           f"manifest {self.stem.name}.manifest"}


def manifest_for(item: EvidenceItem, ctx: DriverContext, clip: dict[str, Any] | None,
                 clip_error: str | None) -> dict[str, Any]:
    """The signed manifest's object for an event: its snapshot and (if written) its clip."""
    files = []
    if item.snapshot is not None:
        files.append({"name": item.snapshot["file"], "kind": "snapshot", "content_type": CONTENT_TYPES[".jpg"],
                      "sha256": item.snapshot["sha256"], "bytes": item.snapshot["bytes"],
                      "shows": iso_utc(item.wall(item.snapshot_at))})
    if clip is not None:
        files.append(clip)
    ev = item.event
    detail: dict[str, Any] = {
        "camera": ev.device, "calibration_sha256": item.calibration_sha256,
        "caption": item.caption.text(item.event_time),
        "detection": {k: ev.data.get(k) for k in ("floor", "floor_range", "t_start", "t_end", "confidence")},
    }
    if clip_error is not None:
        detail["clip_error"] = clip_error
    return build_manifest(site=ev.site, gateway=ev.gateway,
                          event={"id": ev.id, "seq": ev.seq, "class": ev.cls, "device": ev.device,
                                 "type": ev.type, "ts": ev.ts},
                          files=files, created=iso_utc(ctx.clock.now()),
                          key=ctx.evidence_key.public if ctx.evidence_key else None, **detail)


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
        item: EvidenceItem = rec.meta["item"]
        clip: dict[str, Any] | None = None
        error: str | None = None
        try:
            path, frames = _write_recording(rec, job.fps, item)
            # the writer has closed and renamed it: the hash is of the final bytes
            clip = file_entry(path, "clip", CONTENT_TYPES[path.suffix], start=rec.meta.get("start"),
                              end=rec.meta.get("end"))
        except Exception as exc:   # a full disk or a codec error: report it, keep running
            error = f"{type(exc).__name__}: {exc}"
            self.log.error("camera %s: clip for event %s not written: %s", job.camera, rec.event_id, exc)
        finally:
            start = rec.start
            rec.release()
        signed = self.sign(item, clip, error, job.camera)
        manifest = manifest_ref(signed[0].name, sha256_file(signed[0])) if signed else None
        if clip is None:
            self.ctx.emit(job.camera, "evidence_error", "warning",
                          {"event_id": rec.event_id, "file": rec.stem.name, "error": error,
                           **({"manifest": manifest} if manifest else {})})
        else:
            pre = None
            if frames is not None and start is not None and "t_start" in rec.meta:
                pre = max(0.0, rec.meta["t_start"] - start)
            data = clip_saved_data(rec.event_id, path.name, clip["sha256"], clip["bytes"],
                                   start=rec.meta.get("start"), end=rec.meta.get("end"), frames=frames, pre_s=pre,
                                   manifest=manifest)
            self.ctx.emit(job.camera, "evidence_saved", "info", data)
            self.ctx.evidence(rec.event_id, path, CONTENT_TYPES[path.suffix])
        for written in signed or ():     # the manifest and its signature follow the clip on the evidence lane
            if written is not None:
                self.ctx.evidence(rec.event_id, written, CONTENT_TYPES[written.suffix])
        self.prune(item.stem.parent, job.evidence)

    def sign(self, item: EvidenceItem, clip: dict[str, Any] | None, error: str | None,
             camera: str) -> tuple[Path, Path | None] | None:
        """Write the event's manifest and its signature; their paths (None: not written, logged)."""
        try:
            return write_manifest(item.stem, manifest_for(item, self.ctx, clip, error), self.ctx.evidence_key)
        except OSError as exc:
            self.log.error("camera %s: manifest for event %s not written: %s", camera, item.event.id, exc)
            return None


def _write_recording(rec: Recording, fps: float, item: EvidenceItem) -> tuple[Path, int | None]:
    """The clip file of a recording, and how many pictures it holds (None: written by the camera itself)."""
    if rec.meta.get("native"):
        return rec.stem.with_suffix(".mp4"), None
    if rec.packets:
        assert rec.stream is not None
        return remux_clip(rec.stem, rec.stream, rec.packets, metadata=item.clip_metadata()), len(rec.packets)
    if not rec.frames:
        raise ValueError("no frames were recorded")
    captions = [item.caption.lines(item.wall(t)) for t, _ in rec.frames]
    return (write_clip(rec.stem, [f for _, f in rec.frames], fps, captions=captions, metadata=item.clip_metadata()),
            len(rec.frames))

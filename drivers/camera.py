"""Thrown-object cameras: frames -> ThrowDetector -> `thrown_object` alarms with evidence.

Config (one `[[camera]]` table per camera; see docs/camera.md):

    [[camera]]
    name = "tower-3-east"
    calibration = "tower-3-east.cal.toml"      # the contract's floors = [{floor, y}, ...]
    source = { type = "rtsp", url = "rtsp://192.0.2.10/stream1", username = "viewer",
               password_file = "/etc/anfang/cam.pw" }
    detection = { diff_threshold_min = 16 }    # detector settings (detection/settings.py)
    [camera.evidence]
    dir = "/var/lib/anfang/evidence"           # default: the driver's state folder
    pre_seconds = 3.0
    post_seconds = 3.0
    keep_days = 15
    max_disk_mb = 2048

Each camera has its own thread (a dead or stalled camera never holds up the
others) that reads the source, watches the camera's health, keeps the
pre-event ring buffer and feeds the detector. On a throw it writes the
annotated snapshot, emits `thrown_object` (alarm) with the snapshot's SHA-256
and the clip's name, queues the snapshot on the evidence lane, and keeps
recording; once the post-event seconds are in, one evidence thread writes the
clip, emits `evidence_saved` (info) with the clip's SHA-256 and queues it.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from detection.evidence import (EvidenceStore, FrameRing, Recording, draw_snapshot, floor_rows,
                                have_pyav, sha256_file, write_clip, write_jpeg)
from detection.health import CameraHealth, HealthChange, HealthSettings
from detection.sources import EndOfSource, Frame, FrameSource, SourceConfig, SourceError, open_source, parse_source
from gateway.clock import iso_utc
from gateway.configfile import Problems, Section
from gateway.driver import Driver
from gateway.events import DEVICE_PATTERN

CONTENT_TYPES = {".mp4": "video/mp4", ".avi": "video/x-msvideo", ".jpg": "image/jpeg"}


@dataclass
class EvidenceConfig:
    dir: Path | None = None           # None: <state_dir>/evidence
    pre_seconds: float = 3.0
    post_seconds: float = 3.0
    track_seconds: float = 6.0        # the longest fall plus the detector's delay, kept beyond pre_seconds
    ring_max_mb: float = 256.0
    keep_days: float = 15.0
    max_disk_mb: float = 2048.0
    snapshot_quality: int = 88


@dataclass
class CameraConfig:
    name: str
    source: SourceConfig
    calibration: Any                  # detection.calibration.Calibration
    settings: Any                     # detection.settings.DetectorSettings
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)
    health: HealthSettings = field(default_factory=HealthSettings)
    telemetry_seconds: float = 10.0
    track_points: int = 24            # most track points carried in an event
    reconnect_seconds: float = 5.0    # first retry delay after a source failure (doubles to 60 s)


@dataclass
class CameraDriverConfig:
    cameras: list[CameraConfig]


def _parse_camera(sec: Section) -> CameraConfig | None:
    from detection.calibration import calibration_from_section, load_calibration
    from detection.settings import DetectorSettings, settings_from_section
    from gateway.configfile import ConfigError

    name = sec.str("name", pattern=DEVICE_PATTERN)
    source = parse_source(sec.section("source", required=True))
    calibration = None
    if sec.has("calibration") and isinstance(sec.raw["calibration"], dict):
        calibration = calibration_from_section(sec.section("calibration"))
    else:
        cal_path = sec.path("calibration", must_exist=True)
        if cal_path.is_file():
            try:
                calibration = load_calibration(cal_path)
            except ConfigError as exc:
                for p in exc.problems:
                    sec.error("calibration", f"{cal_path}: {p}")
    settings = settings_from_section(sec.section("detection")) if sec.has("detection") else DetectorSettings()
    ev = sec.section("evidence")
    evidence = EvidenceConfig(
        dir=ev.path("dir") if ev.has("dir") else None,
        pre_seconds=ev.float("pre_seconds", 3.0, min=0.0, max=30.0),
        post_seconds=ev.float("post_seconds", 3.0, min=0.0, max=60.0),
        track_seconds=ev.float("track_seconds", 6.0, min=0.0, max=60.0),
        ring_max_mb=ev.float("ring_max_mb", 256.0, min=8.0),
        keep_days=ev.float("keep_days", 15.0, min=0.01),
        max_disk_mb=ev.float("max_disk_mb", 2048.0, min=16.0),
        snapshot_quality=ev.int("snapshot_quality", 88, min=10, max=100))
    ev.finish()
    hs = sec.section("health")
    d = HealthSettings()
    health = HealthSettings(
        no_frames_seconds=hs.float("no_frames_seconds", d.no_frames_seconds, min=0.5),
        frozen_seconds=hs.float("frozen_seconds", d.frozen_seconds, min=0.5),
        covered_seconds=hs.float("covered_seconds", d.covered_seconds, min=0.5),
        restore_seconds=hs.float("restore_seconds", d.restore_seconds, min=0.0),
        low_contrast=hs.float("low_contrast", d.low_contrast, min=0.0),
        dark_level=hs.float("dark_level", d.dark_level, min=0.0, max=255.0),
        bright_level=hs.float("bright_level", d.bright_level, min=0.0, max=255.0),
        frozen_diff=hs.float("frozen_diff", d.frozen_diff, min=0.0))
    hs.finish()
    telemetry = sec.float("telemetry_seconds", 10.0, min=0.5)
    track_points = sec.int("track_points", 24, min=2, max=1000)
    reconnect = sec.float("reconnect_seconds", 5.0, min=0.1, max=300.0)
    sec.finish()
    if calibration is None:
        return None
    return CameraConfig(name, source, calibration, settings, evidence, health, telemetry, track_points, reconnect)


class CameraDriver(Driver):
    """All thrown-object cameras of the gateway, one thread each plus one evidence writer."""

    event_class = "camera"
    stall_timeout = 30.0

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], problems: Problems, base_dir: Path | None = None) -> CameraDriverConfig:
        root = Section({"camera": raw.get("camera", [])}, "", problems, base_dir)
        cameras: list[CameraConfig] = []
        names: set[str] = set()
        for sec in root.sections("camera"):
            cam = _parse_camera(sec)
            if cam is None:
                continue
            if cam.name in names:
                sec.error("name", f"camera {cam.name!r} is configured twice")
            names.add(cam.name)
            cameras.append(cam)
        return CameraDriverConfig(cameras)

    def __init__(self, name: str, config: CameraDriverConfig, ctx: Any) -> None:
        super().__init__(name, config, ctx)
        self._stop = threading.Event()
        self._workers: list[CameraWorker] = []
        self._writer: EvidenceWriter | None = None

    def start(self) -> None:
        self._stop.clear()
        self.set_state("starting")
        self.progress()
        self._writer = EvidenceWriter(self, self._stop)
        self._writer.start()
        self._workers = [CameraWorker(self, cam, self._writer, self._stop) for cam in self.config.cameras]
        for w in self._workers:
            self.set_device_state(w.cam.name, "starting")
            w.start()
        if not self._workers:
            self.set_state("ok", "no cameras configured")

    def stop(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        self._stop.set()
        for w in self._workers:
            w.join(max(0.0, deadline - time.monotonic()) * 0.5)
        if self._writer is not None:
            self._writer.join(max(0.0, deadline - time.monotonic()))
        self.set_state("stopped")

    def update_state(self) -> None:
        states = self.health().devices
        bad = sorted(n for n, s in states.items() if s not in ("ok", "ended"))
        if not bad:
            self.set_state("ok", f"{len(states)} camera(s) ok")
        else:
            self.set_state("degraded", ", ".join(f"{n}: {states[n]}" for n in bad))

    def worker_failed(self, what: str, exc: BaseException) -> None:
        self.log.exception("%s failed", what)
        self.set_state("fault", f"{what}: {type(exc).__name__}: {exc}")


class EvidenceWriter(threading.Thread):
    """Writes finished recordings to clips, hashes them, reports and queues them; prunes old files."""

    def __init__(self, driver: CameraDriver, stop: threading.Event) -> None:
        super().__init__(name=f"driver-{driver.name}-evidence", daemon=True)
        self.driver = driver
        self.stop_event = stop
        self.jobs: queue.Queue[tuple[CameraWorker, Recording, float]] = queue.Queue()
        self._stores: dict[Path, EvidenceStore] = {}

    def store(self, root: Path, cfg: EvidenceConfig) -> EvidenceStore:
        if root not in self._stores:
            self._stores[root] = EvidenceStore(root, cfg.keep_days, int(cfg.max_disk_mb * 2**20))
        return self._stores[root]

    def submit(self, worker: CameraWorker, rec: Recording, fps: float) -> None:
        self.jobs.put((worker, rec, fps))

    def run(self) -> None:
        next_prune = 0.0
        try:
            while True:
                try:
                    worker, rec, fps = self.jobs.get(timeout=1.0)
                except queue.Empty:
                    if self.stop_event.is_set() and all(not w.is_alive() for w in self.driver._workers):
                        return
                    if time.monotonic() >= next_prune:
                        for s in self._stores.values():
                            s.prune()
                        next_prune = time.monotonic() + 3600
                    continue
                self.write(worker, rec, fps)
        except Exception as exc:
            self.driver.worker_failed("evidence writer", exc)

    def write(self, worker: CameraWorker, rec: Recording, fps: float) -> None:
        cam = worker.cam
        ctx = self.driver.ctx
        try:
            if rec.meta.get("native"):
                path = rec.stem.with_suffix(".mp4")
                frames = None
            else:
                if not rec.frames:
                    raise ValueError("no frames were recorded")
                path = write_clip(rec.stem, [f for _, f in rec.frames], fps)
                frames = len(rec.frames)
            digest = sha256_file(path)
            size = path.stat().st_size
        except Exception as exc:   # a full disk or a codec error: report it, keep running
            self.driver.log.error("camera %s: clip for event %s not written: %s", cam.name, rec.event_id, exc)
            ctx.emit(cam.name, "evidence_error", "warning",
                     {"event_id": rec.event_id, "file": rec.stem.name, "error": f"{type(exc).__name__}: {exc}"})
            return
        finally:
            rec.frames = []
        data: dict[str, Any] = {"event_id": rec.event_id, "kind": "clip", "file": path.name,
                                "content_type": CONTENT_TYPES[path.suffix], "sha256": digest, "bytes": size,
                                "start": rec.meta.get("start"), "end": rec.meta.get("end")}
        if frames is not None:
            data["frames"] = frames
            data["pre_seconds"] = round(rec.meta.get("pre_seconds", 0.0), 3)
        ctx.emit(cam.name, "evidence_saved", "info", data)
        ctx.evidence(rec.event_id, path, CONTENT_TYPES[path.suffix])
        self.store(path.parent, cam.evidence).prune()


class CameraWorker(threading.Thread):
    """One camera: read, watch health, buffer, detect, raise events."""

    def __init__(self, driver: CameraDriver, cam: CameraConfig, writer: EvidenceWriter,
                 stop: threading.Event) -> None:
        super().__init__(name=f"camera-{cam.name}", daemon=True)
        self.driver = driver
        self.ctx = driver.ctx
        self.cam = cam
        self.writer = writer
        self.stop_event = stop
        ev = cam.evidence
        self.ring = FrameRing(ev.pre_seconds + ev.track_seconds, int(ev.ring_max_mb * 2**20))
        self.health = CameraHealth(cam.health)
        self.dir = ev.dir if ev.dir is not None else Path(self.ctx.state_dir) / "evidence"
        self.dir = self.dir / cam.name
        self.source: FrameSource | None = None
        self.detector: Any = None
        self.calibration: Any = None
        self.recordings: list[Recording] = []
        self.native: Recording | None = None
        self.wall0: datetime | None = None
        self.mono0 = 0.0
        self.frame_size: tuple[int, int] | None = None
        self.last_t: float | None = None
        self._frames = 0
        self._busy = 0.0
        self._tele_frames = 0
        self._tele_busy = 0.0
        self._tele_at = 0.0
        self._throws = 0
        self._state = "starting"

    # -- loop ----------------------------------------------------------------------
    def run(self) -> None:
        try:
            self.writer.store(self.dir, self.cam.evidence).prune()
            self.loop()
        except Exception as exc:
            self.driver.worker_failed(f"camera {self.cam.name}", exc)
        finally:
            self.close_source()

    def loop(self) -> None:
        delay = self.cam.reconnect_seconds
        retry_at = 0.0
        while not self.stop_event.is_set():
            self.driver.progress()
            if self.source is None:
                if time.monotonic() < retry_at or not self.open_source():
                    if time.monotonic() >= retry_at:
                        retry_at = time.monotonic() + delay
                        delay = min(60.0, delay * 2)
                    self.idle()   # keeps the no-frames clock and telemetry going while waiting
                    self.stop_event.wait(min(0.25, max(0.0, retry_at - time.monotonic())))
                    continue
                delay = self.cam.reconnect_seconds
            try:
                frame = self.source.read()
            except EndOfSource:
                self.ended()
                while not self.stop_event.wait(1.0):   # a finished clip is not a hung driver
                    self.driver.progress()
                return
            except SourceError as exc:
                self.driver.log.warning("camera %s: %s", self.cam.name, exc)
                self.close_source()
                self.set_state("reconnecting")
                self.idle()
                continue
            if frame is None:
                self.idle()
                self.stop_event.wait(0.02)
                continue
            self.process(frame)

    def open_source(self) -> bool:
        try:
            src = open_source(self.cam.source, self.ctx.resources, pre_seconds=self.cam.evidence.pre_seconds
                              + self.cam.evidence.track_seconds)
            src.open()
        except SourceError as exc:
            self.driver.log.warning("camera %s: %s", self.cam.name, exc)
            self.set_state("no source")
            return False
        self.source = src
        self.set_state("ok" if self.health.fault is None else f"fault: {self.health.fault}")
        return True

    def close_source(self) -> None:
        if self.source is not None:
            self.source.close()
            self.source = None

    def set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.driver.set_device_state(self.cam.name, state)
            self.driver.update_state()

    def ended(self) -> None:
        """A finite source (a clip) is over: judge what is still tracked, write what is recorded."""
        if self.detector is not None:
            for d in self.detector.flush():
                self.on_throw(d)
        for rec in self.recordings:
            self.writer.submit(self, rec, self.source.fps if self.source else 25.0)
        self.recordings = []
        self.finish_native(force=True)
        self.close_source()
        self.set_state("ended")

    # -- per frame ---------------------------------------------------------------
    def idle(self) -> None:
        self.report(self.health.idle(self.ctx.clock.monotonic()))
        self.telemetry()

    def process(self, frame: Frame) -> None:
        started = time.perf_counter()
        now = self.ctx.clock.monotonic()
        if self.last_t is not None and frame.t <= self.last_t:
            if frame.t > self.last_t - 1.0:   # a repeated or jittered timestamp: skip that frame
                self.driver.count("frames_out_of_order")
                return
            self.restart_timeline()
        if self.wall0 is None:
            self.wall0 = self.ctx.clock.now() - timedelta(seconds=frame.t)   # taken at the edge
            self.mono0 = now - frame.t
        self.last_t = frame.t
        # the picture's own timeline: a replayed clip is judged by its seconds, not the wall's
        self.report(self.health.frame(self.mono0 + frame.t, frame.gray))
        evidence_frame = frame.color if frame.color is not None else frame.gray
        self.ring.push(frame.t, evidence_frame)
        for rec in list(self.recordings):
            if rec.add(frame.t, evidence_frame):
                self.recordings.remove(rec)
                self.writer.submit(self, rec, self.source.fps if self.source else 25.0)
        self.finish_native()
        detector = self.ensure_detector(frame.gray)
        for d in detector.process(frame.gray, frame.t):
            self.on_throw(d)
        self._frames += 1
        self._tele_frames += 1
        busy = time.perf_counter() - started
        self._busy += busy
        self._tele_busy += busy
        self.telemetry()

    def restart_timeline(self) -> None:
        """The source's clock went back (a reconnected stream starts at 0): start afresh."""
        fps = self.source.fps if self.source else 25.0
        for rec in self.recordings:
            self.writer.submit(self, rec, fps)
        self.recordings = []
        self.finish_native(force=True)
        self.ring.clear()
        self.detector = None
        self.wall0 = None
        self.last_t = None

    def ensure_detector(self, gray: np.ndarray) -> Any:
        size = (gray.shape[1], gray.shape[0])
        if self.detector is None or size != self.frame_size:
            from detection.detector import ThrowDetector
            self.frame_size = size
            self.calibration = self.cam.calibration.scaled(*size)
            fps = self.source.fps if self.source is not None else 25.0
            self.detector = ThrowDetector(self.calibration, self.cam.settings, fps=fps)
        return self.detector

    def wall(self, t: float) -> datetime:
        assert self.wall0 is not None
        return self.wall0 + timedelta(seconds=t)

    def report(self, change: HealthChange | None) -> None:
        if change is None:
            return
        if change.kind == "fault":
            self.ctx.emit(self.cam.name, "camera_fault", "warning",
                          {"reason": change.reason, "detail": change.detail, "source": self.cam.source.describe()})
            self.set_state(f"fault: {change.reason}")
        else:
            self.ctx.emit(self.cam.name, "camera_restore", "info", {"reason": change.reason, "detail": change.detail})
            self.set_state("ok")

    def telemetry(self) -> None:
        now = time.monotonic()
        if self._tele_at == 0.0:
            self._tele_at = now
            return
        span = now - self._tele_at
        if span < self.cam.telemetry_seconds:
            return
        fps = self._tele_frames / span
        period = 1.0 / self.source.fps if self.source is not None and self.source.fps else 0.04
        load = (self._tele_busy / self._tele_frames / period) if self._tele_frames else 0.0
        self.ctx.telemetry(self.cam.name, {
            "fps": round(fps, 2), "load": round(load, 3), "frames": self._frames, "throws": self._throws,
            "ring_seconds": round(self.ring.span, 2), "ring_mb": round(self.ring.nbytes / 2**20, 1),
            "state": self._state})
        self._tele_at, self._tele_frames, self._tele_busy = now, 0, 0.0

    # -- a throw -------------------------------------------------------------------
    def on_throw(self, d: Any) -> None:
        ev = self.cam.evidence
        ts = self.wall(d.t_start)
        stamp = ts.strftime("%Y%m%dT%H%M%S") + f"{ts.microsecond // 1000:03d}Z"
        base = f"{self.cam.name}_{stamp}"
        self.dir.mkdir(parents=True, exist_ok=True)
        store = self.writer.store(self.dir, ev)
        store.prune(reserve=int(ev.ring_max_mb * 2**20))
        evidence: list[dict[str, Any]] = []
        snap_path = self.dir / f"{base}.jpg"
        try:
            picture = self.ring.nearest(_snapshot_time(d))
            image = picture[1] if picture is not None else np.zeros((16, 16), np.uint8)
            assert self.frame_size is not None
            img = draw_snapshot(image, d.track, floor_rows(self.calibration), analysis_size=self.frame_size,
                                release_xy=tuple(d.release_xy), floor=d.floor)
            write_jpeg(snap_path, img, ev.snapshot_quality)
            evidence.append({"kind": "snapshot", "file": snap_path.name, "content_type": "image/jpeg",
                             "sha256": sha256_file(snap_path), "bytes": snap_path.stat().st_size})
        except OSError as exc:
            self.driver.log.error("camera %s: snapshot not written: %s", self.cam.name, exc)
            snap_path = None   # type: ignore[assignment]
        native = self.source.native_clips if self.source is not None else None
        clip_suffix = ".mp4" if (native is not None or have_pyav()) else ".avi"
        evidence.append({"kind": "clip", "file": base + clip_suffix, "content_type": CONTENT_TYPES[clip_suffix],
                         "status": "recording"})
        data = {
            "floor": int(d.floor), "floor_range": [int(d.floor_range[0]), int(d.floor_range[1])],
            "column": None if d.column is None else int(d.column),
            "t_start": iso_utc(ts), "t_end": iso_utc(self.wall(d.t_end)),
            "duration_s": round(float(d.t_end - d.t_start), 3),
            "confidence": round(float(d.confidence), 3), "drag": bool(d.drag),
            "release_xy": [round(float(v), 1) for v in d.release_xy],
            "track": subsample_track(d.track, d.t_start, self.cam.track_points),
            "frame_size": list(self.frame_size or (0, 0)),
            "evidence": evidence,
        }
        event = self.ctx.emit(self.cam.name, "thrown_object", "alarm", data, ts=ts)
        self._throws += 1
        self.driver.count("throws")
        if snap_path is not None:
            self.ctx.evidence(event.id, snap_path, "image/jpeg")
        rec = Recording(event.id, d.t_start - ev.pre_seconds, d.t_end + ev.post_seconds, self.dir / base,
                        meta={"start": iso_utc(self.wall(d.t_start - ev.pre_seconds)),
                              "end": iso_utc(self.wall(d.t_end + ev.post_seconds))})
        if native is not None:
            self.start_native(native, rec)
            return
        rec.extend(self.ring.since(rec.t_from))
        if rec.frames:
            rec.meta["pre_seconds"] = max(0.0, d.t_start - rec.frames[0][0])
        if self.last_t is not None and self.last_t > rec.t_until:
            self.writer.submit(self, rec, self.source.fps if self.source else 25.0)
        else:
            self.recordings.append(rec)

    # -- clips a source records itself (picamera2) -----------------------------------
    def start_native(self, native: Any, rec: Recording) -> None:
        rec.meta["native"] = True
        if self.native is not None:   # one hardware clip at a time: the running one is lengthened
            self.native.t_until = max(self.native.t_until, rec.t_until)
            self.native.meta.setdefault("also", []).append(rec.event_id)
            return
        native.start_clip(rec.stem.with_suffix(".mp4"))
        self.native = rec

    def finish_native(self, force: bool = False) -> None:
        rec = self.native
        if rec is None or not (force or (self.last_t is not None and self.last_t > rec.t_until)):
            return
        native = self.source.native_clips if self.source is not None else None
        if native is not None:
            native.stop_clip()
        self.native = None
        self.writer.submit(self, rec, 0.0)
        for other in rec.meta.get("also", []):
            self.writer.submit(self, Recording(other, rec.t_from, rec.t_until, rec.stem, meta=dict(rec.meta)), 0.0)


def _snapshot_time(d: Any) -> float:
    """The moment the snapshot shows: the middle of the seen track, where the object is in view."""
    if d.track:
        return float(d.track[len(d.track) // 2][0])
    return float(d.t_start)


def subsample_track(track: list[tuple[float, float, float]], t0: float, most: int) -> list[list[float]]:
    """At most `most` points, first and last kept, as [seconds after t0, x, y]."""
    if not track:
        return []
    idx = np.unique(np.rint(np.linspace(0, len(track) - 1, min(most, len(track)))).astype(int))
    return [[round(float(track[i][0]) - t0, 3), round(float(track[i][1]), 1), round(float(track[i][2]), 1)]
            for i in idx]

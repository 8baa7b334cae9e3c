"""One camera's thread: source -> health -> pre-event ring -> detector -> events.

Each camera has its own thread, so a dead or stalled camera never holds up
the others. It reads the source (reopened with backoff when it fails),
judges the picture's health, keeps the pre-event ring (the stream's packets,
or downscaled pictures for sources without packets) and feeds the detector.
On a throw it writes the annotated snapshot, emits `thrown_object` with the
snapshot's hash, queues the snapshot, and goes on recording the clip until
`post_s` after the fall; the clip itself is written by the driver's
evidence writer. All times come from the driver context's clock, or from
the source's own timeline for what the picture shows.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from detection.caption import Caption
from detection.evidence import decode_picture
from detection.health import CameraHealth, HealthChange
from detection.sources import EndOfSource, Frame, FrameSource, SourceError, open_source
from drivers.camera.config import CameraConfig
from drivers.camera.evidence import EvidenceItem, EvidenceWriter, calibration_sha256, write_snapshot
from drivers.camera.events import (evidence_stem, pending_clip_entry, pending_manifest_entry, snapshot_time,
                                   throw_data, wall_time)
from drivers.camera.ring import FrameRing, PacketRing, Recording
from gateway.backoff import Backoff
from gateway.clock import iso_utc
from gateway.events import new_event_id
from gateway.manifest import MANIFEST_SUFFIX

if TYPE_CHECKING:
    from drivers.camera.driver import CameraDriver

IDLE_POLL_S = 0.25       # how often a camera without a source looks again (and keeps its health clock going)
NOTHING_YET_S = 0.02     # wait after a live source had no frame yet
DEFAULT_FPS = 25.0       # when a source does not say


class CameraWorker(threading.Thread):
    """One camera: read, watch health, buffer, detect, raise events."""

    def __init__(self, driver: "CameraDriver", cam: CameraConfig, writer: EvidenceWriter,
                 stop: threading.Event) -> None:
        super().__init__(name=f"camera-{cam.name}", daemon=True)
        self.driver = driver
        self.ctx = driver.ctx
        self.clock = driver.ctx.clock
        self.cam = cam
        self.writer = writer
        self.stop_event = stop
        ev = cam.evidence
        self.ring: PacketRing | FrameRing = FrameRing(ev.ring_seconds, ev.ring_max_bytes)
        self.health = CameraHealth(cam.health)
        self.backoff = Backoff(initial=cam.reconnect_s, maximum=cam.reconnect_max_s)
        root = ev.dir if ev.dir is not None else Path(self.ctx.state_dir) / "evidence"
        self.dir = root / cam.name
        self.source: FrameSource | None = None
        self.detector: Any = None
        self.calibration: Any = None
        self.recordings: list[Recording] = []
        self.native: Recording | None = None
        self.wall0: datetime | None = None
        self.mono0 = 0.0
        self.frame_size: tuple[int, int] | None = None
        self.last_t: float | None = None
        self.last_gray: np.ndarray | None = None
        self._frames = 0
        self._tele_frames = 0
        self._tele_busy = 0.0
        self._tele_at: float | None = None
        self._throws = 0
        self._state = "starting"

    @property
    def fps(self) -> float:
        return self.source.fps if self.source is not None and self.source.fps else DEFAULT_FPS

    # -- loop ----------------------------------------------------------------------
    def run(self) -> None:
        try:
            self.writer.prune(self.dir, self.cam.evidence)
            self.loop()
        except Exception as exc:
            self.driver.worker_failed(f"camera {self.cam.name}", exc)
        finally:
            self.submit_all()   # stopping mid-clip: write what was recorded rather than lose it
            self.close_source()

    def loop(self) -> None:
        retry_at = 0.0
        while not self.stop_event.is_set():
            self.driver.progress()
            if self.source is None:
                now = self.clock.monotonic()
                if now < retry_at or not self.open_source():
                    if now >= retry_at:
                        retry_at = now + self.backoff.next()
                    self.idle()   # keeps the no-frames clock and telemetry going while waiting
                    self.stop_event.wait(min(IDLE_POLL_S, max(0.0, retry_at - self.clock.monotonic())))
                    continue
                self.backoff.reset()
            assert self.source is not None
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
                self.stop_event.wait(NOTHING_YET_S)
                continue
            self.process(frame)

    def open_source(self) -> bool:
        try:
            src = open_source(self.cam.source, self.ctx.resources, buffer_s=self.cam.evidence.ring_seconds)
            src.open()
        except SourceError as exc:
            self.driver.log.warning("camera %s: %s", self.cam.name, exc)
            self.set_state("no source")
            return False
        self.source = src
        ev = self.cam.evidence
        if src.stream_info is not None and not isinstance(self.ring, PacketRing):
            self.ring = PacketRing(ev.ring_seconds, ev.ring_max_bytes)
        elif src.stream_info is None and not (isinstance(self.ring, FrameRing) and self.ring.fps == src.fps):
            self.ring = FrameRing(ev.ring_seconds, ev.ring_max_bytes, src.fps or DEFAULT_FPS)
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
        self.submit_all()
        self.close_source()
        self.set_state("ended")

    def submit(self, rec: Recording) -> None:
        self.writer.submit(self.cam.name, self.cam.evidence, rec, self.fps)

    def submit_all(self) -> None:
        for rec in self.recordings:
            self.submit(rec)
        self.recordings = []
        self.finish_native(force=True)

    # -- per frame ---------------------------------------------------------------
    def idle(self) -> None:
        self.report(self.health.idle(self.clock.monotonic()))
        self.telemetry()

    def process(self, frame: Frame) -> None:
        started = self.clock.monotonic()
        if self.last_t is not None and frame.t <= self.last_t:
            if frame.t > self.last_t - 1.0:   # a repeated or jittered timestamp: skip that frame
                self.driver.count("frames_out_of_order")
                return
            self.restart_timeline()
        if self.wall0 is None:
            self.wall0 = self.clock.now() - timedelta(seconds=frame.t)   # taken at the edge
            self.mono0 = started - frame.t
        self.last_t = frame.t
        self.last_gray = frame.gray
        # the picture's own timeline: a replayed clip is judged by its seconds, not the wall's
        self.report(self.health.frame(self.mono0 + frame.t, frame.gray))
        self.buffer(frame)
        self.finish_native()
        detector = self.ensure_detector(frame.gray)
        for d in detector.process(frame.gray, frame.t):
            self.on_throw(d)
        self._frames += 1
        self._tele_frames += 1
        self._tele_busy += self.clock.monotonic() - started
        self.telemetry()

    def buffer(self, frame: Frame) -> None:
        """Keep the frame's packets (or its picture) in the ring and in every clip being recorded."""
        if isinstance(self.ring, PacketRing):
            for p in frame.packets:
                self.ring.push(p)
                self.feed_recordings(lambda rec: rec.add_packet(p))
        else:
            picture = self.ring.push(frame.t, frame.color if frame.color is not None else frame.gray)
            self.feed_recordings(lambda rec: rec.add(frame.t, picture))

    def feed_recordings(self, take: Callable[[Recording], bool]) -> None:
        """Hand something live to each clip being recorded; a clip that has all it needs goes to the writer."""
        for rec in list(self.recordings):
            if take(rec):
                self.recordings.remove(rec)
                self.submit(rec)

    def restart_timeline(self) -> None:
        """The source's clock went back (a reconnected stream starts at 0): start afresh."""
        self.submit_all()
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
            self.detector = ThrowDetector(self.calibration, self.cam.settings, fps=self.fps)
        return self.detector

    def wall(self, t: float) -> datetime:
        assert self.wall0 is not None
        return wall_time(self.wall0, t)

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

    def ring_figures(self) -> dict[str, float]:
        """What the pre-event buffer holds: seconds, MB, its bound, the pictures' downscale (1: none; 0: packets)."""
        return {"ring_seconds": round(self.ring.span, 2), "ring_mb": round(self.ring.nbytes / 2**20, 2),
                "ring_max_mb": self.cam.evidence.ring_max_mb,
                "ring_scale": self.ring.scale if isinstance(self.ring, FrameRing) else 0,
                "ring_dropped": self.ring.dropped_for_memory}

    def telemetry(self) -> None:
        now = self.clock.monotonic()
        if self._tele_at is None:
            self._tele_at = now
            return
        span = now - self._tele_at
        if span < self.cam.telemetry_s:
            return
        figures = self.ring_figures()
        for key, value in figures.items():
            self.driver.set_counter(f"{self.cam.name}.{key}", value)
        load = (self._tele_busy / self._tele_frames * self.fps) if self._tele_frames else 0.0
        self.ctx.telemetry(self.cam.name, {
            "fps": round(self._tele_frames / span, 2), "load": round(load, 3), "frames": self._frames,
            "throws": self._throws, **figures, "state": self._state})
        self._tele_at, self._tele_frames, self._tele_busy = now, 0, 0.0

    # -- a throw -------------------------------------------------------------------
    def on_throw(self, d: Any) -> None:
        ev = self.cam.evidence
        ts = self.wall(d.t_start)
        base = evidence_stem(self.cam.name, ts)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.writer.prune(self.dir, ev, reserve=ev.ring_max_bytes)
        size = self.frame_size or (0, 0)
        event_id = new_event_id()     # before the event: the snapshot's caption names it
        caption = Caption(site=self.ctx.site, camera=self.cam.name, event_id=event_id, floor=int(d.floor),
                          floor_range=(int(d.floor_range[0]), int(d.floor_range[1])), timezone=self.ctx.timezone)
        shown = snapshot_time(d)
        snapshot: dict[str, Any] | None = None
        snap_path = self.dir / f"{base}.jpg"
        try:
            snapshot = write_snapshot(snap_path, self.picture_at(shown), d, self.calibration, size,
                                      ev.snapshot_quality, caption.lines(self.wall(shown)))
        except OSError as exc:   # a full disk: the alarm goes out all the same
            self.driver.log.error("camera %s: snapshot not written: %s", self.cam.name, exc)
        evidence = [e for e in (snapshot, pending_clip_entry(base + ".mp4"),
                                pending_manifest_entry(base + MANIFEST_SUFFIX)) if e is not None]
        data = throw_data(d, wall0=self.wall(0.0), frame_size=size, track_points=self.cam.track_points,
                          evidence=evidence)
        event = self.ctx.emit(self.cam.name, "thrown_object", "alarm", data, ts=ts, id=event_id)
        self._throws += 1
        self.driver.count("throws")
        if snapshot is not None:
            self.ctx.evidence(event.id, snap_path, "image/jpeg")
        t_from, t_until = d.t_start - ev.pre_s, d.t_end + ev.post_s
        item = EvidenceItem(event=event, stem=self.dir / base, caption=caption, wall0=self.wall(0.0),
                            snapshot=snapshot, snapshot_at=shown,
                            calibration_sha256=calibration_sha256(self.cam.calibration))
        rec = Recording(event.id, t_from, t_until, self.dir / base,
                        meta={"start": iso_utc(self.wall(t_from)), "end": iso_utc(self.wall(t_until)),
                              "t_start": float(d.t_start), "item": item})
        native = self.source.native_clips if self.source is not None else None
        if native is not None:
            self.start_native(native, rec)
            return
        if isinstance(self.ring, PacketRing):
            rec.stream = self.source.stream_info if self.source is not None else None
            rec.packets = self.ring.since(t_from)
        else:
            rec.extend(self.ring.since(t_from))
        if self.last_t is not None and self.last_t > t_until:
            self.submit(rec)
        else:
            self.recordings.append(rec)

    def picture_at(self, t: float) -> np.ndarray:
        """The picture shown at `t` for the snapshot: decoded from the ring's packets, or the ring's own."""
        if isinstance(self.ring, PacketRing):
            info = self.source.stream_info if self.source is not None else None
            opts = getattr(self.source, "opts", None)
            if info is not None:
                picture = decode_picture(info, self.ring.since(t), t, width=getattr(opts, "evidence_width", 0),
                                         color=getattr(opts, "color", True))
                if picture is not None:
                    return picture
        else:
            found = self.ring.nearest(t)
            if found is not None:
                return found[1]
        return self.last_gray if self.last_gray is not None else np.zeros((16, 16), np.uint8)

    # -- clips a source records itself (picamera2) -----------------------------------
    def start_native(self, native: Any, rec: Recording) -> None:
        rec.meta["native"] = True
        if self.native is not None:   # one hardware clip at a time: the running one is lengthened
            self.native.t_until = max(self.native.t_until, rec.t_until)
            self.native.meta.setdefault("also", []).append(rec)
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
        self.submit(rec)
        for other in rec.meta.get("also", []):   # the same clip file, each event with its own manifest
            self.submit(Recording(other.event_id, rec.t_from, rec.t_until, rec.stem,
                                  meta={**rec.meta, "item": other.meta["item"], "also": []}))

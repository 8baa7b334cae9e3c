"""The camera driver's life cycle: start a thread per camera and one evidence writer, report, stop.

The work happens in `worker.CameraWorker` (one per camera) and
`evidence.EvidenceWriter` (one for all); this class only starts and stops
them and folds the cameras' states into the driver's health.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Mapping

from drivers.camera.config import CameraDriverConfig, parse_config
from drivers.camera.evidence import EvidenceWriter
from drivers.camera.worker import CameraWorker
from gateway.configfile import Problems
from gateway.driver import Driver, DriverContext

HEALTHY_STATES = ("ok", "ended")   # a camera in any other state makes the driver `degraded`


class CameraDriver(Driver):
    """All thrown-object cameras of the gateway, one thread each plus one evidence writer."""

    event_class = "camera"
    stall_timeout = 30.0

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], problems: Problems, base_dir: Path | None = None) -> CameraDriverConfig:
        return parse_config(raw, problems, base_dir)

    def __init__(self, name: str, config: CameraDriverConfig, ctx: DriverContext) -> None:
        super().__init__(name, config, ctx)
        self._stop = threading.Event()
        self._workers: list[CameraWorker] = []
        self._writer: EvidenceWriter | None = None

    def start(self) -> None:
        self._stop.clear()
        self.set_state("starting")
        self.progress()
        self._writer = EvidenceWriter(f"driver-{self.name}-evidence", self.ctx, self._stop,
                                      cameras_done=lambda: all(not w.is_alive() for w in self._workers),
                                      failed=self.worker_failed, log=self.log)
        self._writer.start()
        self._workers = [CameraWorker(self, cam, self._writer, self._stop) for cam in self.config.cameras]
        for w in self._workers:
            self.set_device_state(w.cam.name, "starting")
            w.start()
        if not self._workers:
            self.set_state("ok", "no cameras configured")

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        share = timeout / 2 / max(1, len(self._workers))   # half for the cameras, half for the last clips
        for w in self._workers:
            w.join(share)
        if self._writer is not None:
            self._writer.join(timeout / 2)
        self.set_state("stopped")

    def update_state(self) -> None:
        states = self.health().devices
        bad = sorted(n for n, s in states.items() if s not in HEALTHY_STATES)
        if not bad:
            self.set_state("ok", f"{len(states)} camera(s) ok")
        else:
            self.set_state("degraded", ", ".join(f"{n}: {states[n]}" for n in bad))

    def worker_failed(self, what: str, exc: BaseException) -> None:
        self.log.exception("%s failed", what)
        self.set_state("fault", f"{what}: {type(exc).__name__}: {exc}")

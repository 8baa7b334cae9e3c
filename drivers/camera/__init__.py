"""Thrown-object cameras (高空抛物): frames -> ThrowDetector -> `thrown_object` alarms with evidence.

Entry point `drivers.camera:CameraDriver` (config key `[[camera]]`); see
docs/camera.md. Modules: `config` (parsing, every default declared once),
`ring` (the pre-event buffer: encoded packets or downscaled pictures, bounded
in bytes), `events` (pure: a detection or a clip -> event data), `evidence`
(snapshot, clip writer thread, retention), `worker` (one thread per camera:
source -> health -> ring -> detector), `driver` (life cycle).
"""

from drivers.camera.config import CameraConfig, CameraDriverConfig, EvidenceConfig, parse_config
from drivers.camera.driver import CameraDriver
from drivers.camera.events import subsample_track

__all__ = ["CameraDriver", "CameraConfig", "CameraDriverConfig", "EvidenceConfig", "parse_config",
           "subsample_track"]

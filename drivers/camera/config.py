"""The camera driver's config: `[[camera]]` tables, parsed with every problem named by its key.

Every plain setting is a dataclass field here (or in `HealthSettings`) with
its default, its range and its documentation in the field's metadata, read
by one loop (`read_settings`): a default is written once, and the table in
docs/camera.md is checked against these fields by a test. Old spellings of
renamed keys are refused with a line naming the new key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, TypeVar

from detection.evidence import have_pyav
from detection.health import HealthSettings
from detection.sources import SourceConfig, parse_source
from gateway.configfile import ConfigError, Problems, Section, parse_named
from gateway.events import DEVICE_PATTERN

SECTION_KEY = "camera"
T = TypeVar("T")


def setting(default: Any, doc: str, lo: float | None = None, hi: float | None = None) -> Any:
    """A config key: its default, its documentation, and its allowed range."""
    return field(default=default, metadata={"doc": doc, "min": lo, "max": hi})


@dataclass(frozen=True)
class EvidenceConfig:
    """`[camera.evidence]`: clips, snapshots and how long they are kept."""

    dir: Path | None = None           # None: <state_dir>/evidence; read apart (a path)
    pre_s: float = setting(3.0, "the clip starts this long before the release", 0.0, 30.0)
    post_s: float = setting(3.0, "and ends this long after the object was last seen", 0.0, 60.0)
    track_s: float = setting(6.0, "extra seconds kept in the pre-event buffer: a fall is reported when it "
                             "ends (up to ~4.5 s after the release from a 30-floor building), and the clip "
                             "must still start `pre_s` before the release", 0.0, 60.0)
    ring_max_mb: float = setting(64.0, "memory the pre-event buffer may use; pictures without packets are "
                                 "downscaled to fit it, past it the oldest go (`pre_seconds` in `evidence_saved` "
                                 "says how long the pre-roll really is)", 8.0, 4096.0)
    keep_days: float = setting(15.0, "evidence files older than this are deleted", 0.01)
    max_disk_mb: float = setting(2048.0, "total evidence kept; the oldest files go first (checked before "
                                 "each new event and hourly)", 16.0)
    snapshot_quality: int = setting(88, "JPEG quality of the snapshot", 10, 100)

    @property
    def ring_seconds(self) -> float:
        return self.pre_s + self.track_s

    @property
    def ring_max_bytes(self) -> int:
        return int(self.ring_max_mb * 2**20)


@dataclass(frozen=True)
class CameraConfig:
    """One `[[camera]]` table."""

    name: str
    source: SourceConfig
    calibration: Any                  # detection.calibration.Calibration
    settings: Any                     # detection.settings.DetectorSettings
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)
    health: HealthSettings = field(default_factory=HealthSettings)
    telemetry_s: float = setting(10.0, "how often `fps`, `load`, `frames`, `throws`, `ring_seconds`, `ring_mb`, "
                                 "`ring_scale`, `state` are sent on `telemetry/camera/{name}`", 0.5)
    track_points: int = setting(24, "most track points carried in an event (first and last always kept)", 2, 1000)
    reconnect_s: float = setting(5.0, "first retry after a source failure; doubles up to `reconnect_max_s`",
                                 0.1, 300.0)
    reconnect_max_s: float = setting(60.0, "longest wait between retries of a failed source", 1.0, 3600.0)


@dataclass(frozen=True)
class CameraDriverConfig:
    cameras: tuple[CameraConfig, ...] = ()


RENAMED = {   # table -> {old key: new key}
    "": {"telemetry_seconds": "telemetry_s", "reconnect_seconds": "reconnect_s"},
    "evidence": {"pre_seconds": "pre_s", "post_seconds": "post_s", "track_seconds": "track_s"},
    "health": {"no_frames_seconds": "no_frames_s", "frozen_seconds": "frozen_s",
               "covered_seconds": "covered_s", "restore_seconds": "restore_s"},
}


def documented_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of a settings dataclass that are config keys (those with a doc)."""
    return [f for f in dataclasses.fields(cls) if "doc" in f.metadata]


def read_settings(sec: Section, cls: type[T], **given: Any) -> T:
    """Read every documented field of `cls` from `sec` (default: the field's own); `given` fills the rest."""
    values: dict[str, Any] = dict(given)
    for f in documented_fields(cls):
        lo, hi = f.metadata["min"], f.metadata["max"]
        if isinstance(f.default, bool):
            values[f.name] = sec.bool(f.name, f.default)
        elif isinstance(f.default, int):
            values[f.name] = sec.int(f.name, f.default, min=lo, max=hi)
        else:
            values[f.name] = sec.float(f.name, f.default, min=lo, max=hi)
    return cls(**values)


def _renamed(sec: Section, table: str) -> None:
    for old, new in RENAMED[table].items():
        sec.renamed(old, new)


def parse_config(raw: Mapping[str, Any], problems: Problems, base_dir: Path | None = None) -> CameraDriverConfig:
    root = Section({SECTION_KEY: raw.get(SECTION_KEY, [])}, "", problems, base_dir)
    cameras = parse_named(root.sections(SECTION_KEY), _parse_camera,
                          lambda name: f"camera {name!r} is configured twice")
    if cameras and not have_pyav():
        problems.add(SECTION_KEY, "evidence clips are H.264 MP4 written with PyAV, which is not installed: "
                                  "install the 'video' extra (pip install 'anfang-gateway[video]')")
    return CameraDriverConfig(tuple(cameras))


def _parse_camera(sec: Section) -> CameraConfig | None:
    from detection.settings import DetectorSettings, settings_from_section

    name = sec.str("name", pattern=DEVICE_PATTERN)
    source = parse_source(sec.section("source", required=True))
    calibration = _calibration(sec)
    settings = settings_from_section(sec.section("detection")) if sec.has("detection") else DetectorSettings()
    ev = sec.section("evidence")
    _renamed(ev, "evidence")
    evidence = read_settings(ev, EvidenceConfig, dir=ev.path("dir") if ev.has("dir") else None)
    ev.finish()
    hs = sec.section("health")
    _renamed(hs, "health")
    health = read_settings(hs, HealthSettings)
    hs.finish()
    _renamed(sec, "")
    cam = read_settings(sec, CameraConfig, name=name, source=source, calibration=calibration, settings=settings,
                        evidence=evidence, health=health)
    sec.finish()
    return cam if calibration is not None else None


def _calibration(sec: Section) -> Any:
    """The camera's calibration: a table in place, or a file; None (with the problem recorded) if unusable."""
    from detection.calibration import calibration_from_section, load_calibration

    if sec.has("calibration") and isinstance(sec.raw["calibration"], dict):
        return calibration_from_section(sec.section("calibration"))
    cal_path = sec.path("calibration", must_exist=True)
    if not cal_path.is_file():
        return None
    try:
        return load_calibration(cal_path)
    except ConfigError as exc:
        for p in exc.problems:
            sec.error("calibration", f"{cal_path}: {p}")
    return None

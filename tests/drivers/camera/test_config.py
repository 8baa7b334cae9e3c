"""The camera config: one default per key (the dataclass's), the docs' table matching it, old names refused."""

from __future__ import annotations

import re
from pathlib import Path

from detection.health import HealthSettings
from drivers.camera.config import CameraConfig, EvidenceConfig, documented_fields, parse_config
from gateway.configfile import Problems

DOCS = Path(__file__).resolve().parents[3] / "docs" / "camera.md"
CAL = {"floors": [{"floor": 1, "y": 250.0}, {"floor": 2, "y": 240.0}]}


def _parse(**extra):
    problems = Problems()
    cfg = parse_config({"camera": [{"name": "a", "calibration": CAL,
                                    "source": {"type": "synthetic", "feed": "a"}, **extra}]}, problems)
    return cfg, [str(p) for p in problems.items]


def test_docs_table_gives_every_key_with_the_default_the_code_uses() -> None:
    rows = dict(re.findall(r"^\| `([a-z_.]+)` \| ([^|]+) \|", DOCS.read_text(), re.M))
    for prefix, cls in (("", CameraConfig), ("evidence.", EvidenceConfig), ("health.", HealthSettings)):
        for f in documented_fields(cls):
            key = prefix + f.name
            assert key in rows, f"docs/camera.md does not document {key}"
            assert float(rows[key]) == f.default, f"{key}: docs say {rows[key]}, code says {f.default}"


def test_defaults_apply_when_keys_are_left_out() -> None:
    cfg, problems = _parse()
    assert problems == []
    cam = cfg.cameras[0]
    assert cam.evidence == EvidenceConfig() and cam.health == HealthSettings()
    assert (cam.telemetry_s, cam.reconnect_s, cam.evidence.ring_max_mb) == (10.0, 5.0, 64.0)


def test_values_are_read_and_checked_against_their_range() -> None:
    cfg, problems = _parse(telemetry_s=2, evidence={"pre_s": 5, "ring_max_mb": 2}, health={"frozen_s": 7})
    assert problems == ["camera[0].evidence.ring_max_mb: must be at least 8.0, got 2"]
    cam = cfg.cameras[0]
    assert (cam.telemetry_s, cam.evidence.pre_s, cam.health.frozen_s) == (2.0, 5.0, 7.0)


def test_old_spellings_are_refused_naming_the_new_key() -> None:
    _, problems = _parse(telemetry_seconds=5, reconnect_seconds=1,
                         evidence={"pre_seconds": 2, "post_seconds": 2, "track_seconds": 4},
                         health={"no_frames_seconds": 3, "restore_seconds": 1})
    assert sorted(problems) == sorted([
        "camera[0].telemetry_seconds: renamed: use 'telemetry_s' instead",
        "camera[0].reconnect_seconds: renamed: use 'reconnect_s' instead",
        "camera[0].evidence.pre_seconds: renamed: use 'pre_s' instead",
        "camera[0].evidence.post_seconds: renamed: use 'post_s' instead",
        "camera[0].evidence.track_seconds: renamed: use 'track_s' instead",
        "camera[0].health.no_frames_seconds: renamed: use 'no_frames_s' instead",
        "camera[0].health.restore_seconds: renamed: use 'restore_s' instead",
    ])

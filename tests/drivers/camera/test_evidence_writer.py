"""The clip writer on its own: a clip that cannot be written still leaves a signed manifest of what there is."""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from detection.caption import Caption
from detection.snapshot import draw_snapshot, write_jpeg
from drivers.camera.config import EvidenceConfig
from drivers.camera.events import snapshot_entry
from drivers.camera.evidence import EvidenceItem, EvidenceWriter
from drivers.camera.ring import Recording
from gateway.events import new_event_id
from gateway.manifest import sha256_file, verify_folder

WALL0 = datetime(2026, 11, 23, 5, 5, 0, tzinfo=timezone.utc)


def test_a_failed_clip_is_reported_and_the_snapshot_still_signed(make_ctx, tmp_path: Path) -> None:
    ctx = make_ctx("camera", event_class="camera")
    folder = tmp_path / "ev" / "tower-3"
    stem = folder / "tower-3_20261123T050507000Z"
    event_id = new_event_id()
    caption = Caption("s1", "tower-3", event_id, 9, (8, 9), "Asia/Shanghai")
    snap = write_jpeg(stem.with_suffix(".jpg"),
                      draw_snapshot(np.full((90, 160), 80, np.uint8), [], [(1, 80.0), (2, 40.0)],
                                    caption=caption.lines(WALL0)))
    entry = snapshot_entry(snap.name, sha256_file(snap), snap.stat().st_size)
    alarm = ctx.emit("tower-3", "thrown_object", "alarm", {"floor": 9, "evidence": [entry]}, id=event_id)
    assert alarm.id == event_id              # the id the caption was drawn with
    item = EvidenceItem(event=alarm, stem=stem, caption=caption, wall0=WALL0, snapshot=entry, snapshot_at=7.0,
                        calibration_sha256="cd" * 32)
    rec = Recording(alarm.id, 4.0, 10.0, stem, meta={"item": item})     # the camera stopped: nothing recorded
    writer = EvidenceWriter("w", ctx, threading.Event(), cameras_done=lambda: True,
                            failed=lambda *_a: None, log=logging.getLogger("test"))
    writer.write(writer_job(writer, rec))
    error = ctx.wait_event("evidence_error")
    assert error.data["event_id"] == alarm.id and error.data["error"] == "ValueError: no frames were recorded"
    manifest = folder / error.data["manifest"]["file"]
    doc = json.loads(manifest.read_text())
    assert doc["event"]["seq"] == alarm.seq and doc["clip_error"] == "ValueError: no frames were recorded"
    assert [f["name"] for f in doc["files"]] == [snap.name]
    assert [v.ok for v in verify_folder(folder, ctx.evidence_key.public)] == [True]
    assert [p.name for _, p in ctx.evidence_seen] == [manifest.name, manifest.name + ".sig"]


def writer_job(writer: EvidenceWriter, rec: Recording):
    writer.submit("tower-3", EvidenceConfig(), rec, 10.0)
    return writer.jobs.get_nowait()

"""Every threshold of the thrown-object detector: a named, documented setting with its default.

`DetectorSettings()` holds the defaults; `load_settings(path)` reads a TOML file
(either the keys at top level or under a `[detection]` table) and
`settings_from_section(section)` reads one table of a bigger config, so the
camera driver can accept `[camera.detection]` overrides. Each field's
documentation lives in its `metadata["doc"]`; `describe()` lists them all
(docs/detection.md is generated from the same text).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from gateway.configfile import ConfigError, Problems, Section, load_toml


def _s(default: Any, doc: str, lo: float | None = None, hi: float | None = None) -> Any:
    return field(default=default, metadata={"doc": doc, "min": lo, "max": hi})


@dataclass(frozen=True)
class DetectorSettings:
    # -- image stages -----------------------------------------------------
    contrast_normalise: bool = _s(True, "Stretch grey levels between two percentiles of the scene (measured when the background is learnt) to 0..255 before differencing, so thresholds mean the same by day and by night.")
    contrast_low_percentile: float = _s(1.0, "Lower percentile mapped to 0 by the contrast stretch.", 0.0, 50.0)
    contrast_high_percentile: float = _s(99.0, "Upper percentile mapped to 255 by the contrast stretch.", 50.0, 100.0)
    contrast_max_gain: float = _s(4.0, "Largest stretch factor, so a black frame (lens covered) is not blown up into noise.", 1.0, 64.0)
    background_alpha: float = _s(0.04, "Running-average learning rate per frame (0.04 at 25 fps: time constant about 1 s). Higher forgets parked things sooner but leaves a fainter object trail.", 0.001, 0.5)
    foreground_alpha_factor: float = _s(0.1, "Where blobs are, the background learns this much slower, so a slow object leaves no ghost; something that stays is still absorbed after a while.", 0.0, 1.0)
    diff_threshold_min: int = _s(14, "Smallest absolute difference from the background (normalised grey levels) counted as motion.", 1, 255)
    noise_k: float = _s(5.5, "The threshold is at least noise_k times the sensor noise, measured every frame on a sparse grid of the difference image.", 0.0, 50.0)
    pool_factor: int = _s(4, "Downscale factor of the motion mask. Pooling takes the MAXIMUM difference in each block, so a 2 px object survives a 4x downscale (a mean or a resize would wash it out).", 1, 16)
    min_blob_cells: int = _s(1, "Smallest connected component, in pooled cells, kept as a blob.", 1, 10000)
    max_blob_area_px: int = _s(2500, "Largest blob (full-resolution pixels: cells x pool_factor^2) that can be a thrown object; bigger ones are insects at the lens, headlight pools or clouds and are ignored.", 1, 10**7)
    static_track_frames: int = _s(12, "A blob on a track that has stood still (within `static_track_px`) for this many frames is not a moving thing: it does not count as clutter and the background learns it at the full rate (codec artefacts at edges after an I-frame, a lit window, something parked).", 2, 100000)
    static_track_px: float = _s(2.0, "How far (pixels) a standing track's centroid may wander and still count as standing still.", 0.0, 1000.0)
    max_blobs_per_frame: int = _s(300, "More blobs than this in one frame (heavy rain, snow) keeps only the strongest ones.", 1, 100000)
    connected_components: str = _s("auto", "'numpy', 'scipy' (scipy.ndimage.label) or 'auto' (scipy when installed, it measures faster).")
    streak_filter: bool = _s(True, "Drop rain streaks: a blob much taller than wide, or any blob where blobs are dense (rain, snow), must have a core at least `streak_min_width_px` wide; its centroid is taken from that core, so a streak merged with the object does not pull it.")
    streak_min_width_px: int = _s(3, "Width (pixels, along the row) an object's core must have where the streak filter applies; rain streaks are one or two pixels wide.", 1, 15)
    streak_dense_blobs: int = _s(6, "Blobs in a neighbourhood (3 x 3 coarse cells of `streak_cell_px`) from which every blob there is checked for a core: the bar is raised only where it rains or snows hard.", 1, 100000)
    streak_cell_px: int = _s(64, "Size (pixels) of the coarse cells over which the blob density is counted.", 8, 4096)
    rain_field: bool = _s(True, "Estimate rain as a field (per coarse cell of `streak_cell_px`: how many elongated blobs, how parallel) and drop blobs that match it (elongated along the local dominant orientation) unless they continue a track; nothing is masked, so an object falling through the rain is still seen.")
    field_min_elongation: float = _s(2.5, "Long axis / short axis (second moments of the pooled cells) from which a blob counts as a streak for the rain field; a 3-cell line is 3.", 1.0, 1000.0)
    field_min_streaks: int = _s(4, "Streaks in a 3 x 3 neighbourhood of coarse cells from which the rain field is taken as present there.", 1, 100000)
    field_min_coherence: float = _s(0.5, "How parallel the streaks around a blob must be (length of the mean of (cos 2a, sin 2a): 1 = all parallel, about 0 = random directions such as snow or codec noise).", 0.0, 1.0)
    field_angle_tolerance_deg: float = _s(20.0, "Largest angle (degrees) between a blob's long axis and the field's dominant orientation for the blob to match the rain.", 0.0, 90.0)
    # -- global change and shake -------------------------------------------
    global_change_fraction: float = _s(0.15, "If more than this fraction of the pooled cells changes at once (lights, IR day/night switch, exposure), the background is re-learnt and nothing is raised.", 0.0, 1.0)
    lighting_compensation: bool = _s(True, "When most of the frame changes, first try a linear grey-level map (gain, exposure); if it explains the change, fold it into the lookup table and keep the background and the tracks. Otherwise (IR day/night switch) re-learn.")
    settle_frames: int = _s(6, "Frames after a global change during which the background follows the image closely and no blobs are tracked (exposure settling).", 0, 1000)
    photometric_follow_frames: int = _s(50, "Frames after a global change during which the grey-level map is re-fitted every frame, so exposure that keeps settling (after an IR switch or an exposure step) is followed instead of raising the noise threshold.", 0, 100000)
    ghost_suppression: bool = _s(True, "When the background is re-learnt while an object is tracked, the object is part of the new background: around its predicted path, differences of the opposite polarity to the object (the uncovered scene, its ghost) are ignored and learnt quickly.")
    ghost_frames: int = _s(75, "Frames a ghost region of a re-learn is kept (75 at 25 fps: 3 s).", 0, 100000)
    shake_compensation: bool = _s(True, "Estimate a global image shift by phase correlation when many cells change, and difference the shifted frame.")
    shake_max_px: int = _s(8, "Largest shake (pixels) compensated; a larger move is handled as a global change.", 0, 200)
    shake_trigger_fraction: float = _s(0.004, "Fraction of changed pooled cells above which a shake is looked for.", 0.0, 1.0)
    # -- tracking --------------------------------------------------------------
    track_gate_px: float = _s(10.0, "Fixed part of the search radius around a track's predicted position (pixels).", 0.0, 10000.0)
    track_gate_speed: float = _s(0.35, "Part of the search radius that grows with the track's speed (times pixels per frame); a fall moves tens of pixels per frame near the ground, more than its own size.", 0.0, 10.0)
    track_start_radius_px: float = _s(45.0, "Search radius for the second point of a new track (no velocity known yet).", 0.0, 10000.0)
    track_priority_points: int = _s(3, "Tracks with at least this many points choose their blob before younger tracks, so a new track's wide start radius cannot take the object from the track that followed it.", 1, 1000)
    gate_fit_points: int = _s(8, "From this many points a track's search radius follows how well it keeps to its own fitted path (`gate_fit_*`); 0 disables it.", 0, 10000)
    gate_fit_min_px: float = _s(4.0, "Fixed part (pixels) of the search radius of a track that follows its fitted path.", 0.0, 10000.0)
    gate_fit_k: float = _s(3.0, "Times the track's RMS around its fitted path (pixels) added to its search radius.", 0.0, 100.0)
    gate_fit_speed: float = _s(0.15, "Times the track's step per frame (pixels) added to the search radius of a track that follows its fitted path.", 0.0, 10.0)
    max_missed_frames: int = _s(3, "Frames a track may go undetected (occlusion, faint) before it ends and is judged.", 0, 100)
    max_tracks: int = _s(80, "Most tracks followed at once; the weakest new ones are dropped beyond that.", 1, 100000)
    max_track_seconds: float = _s(12.0, "A track older than this is judged and closed (a 30-floor fall takes about 4.3 s).", 0.5, 600.0)
    stitch_max_gap_s: float = _s(0.5, "A rejected track may be continued by a later track starting at most this long after its last point (the object hidden by headlights, an IR switch, a shake); the two are judged as one. 0 disables stitching.", 0.0, 10.0)
    stitch_min_points: int = _s(4, "Fewest points a rejected track needs to be kept for stitching.", 2, 10000)
    stitch_max_dx_px: float = _s(12.0, "Largest sideways step (pixels) between the end of a track and the start of the track that continues it.", 0.0, 10000.0)
    stitch_max_rise_px: float = _s(3.0, "The continuing track may start at most this many pixels above where the first one ended (a fall goes down).", 0.0, 10000.0)
    stitch_max_fragments: int = _s(32, "Most rejected tracks kept for stitching at once (the oldest are forgotten).", 1, 10000)
    # -- decision ------------------------------------------------------------------
    min_track_points: int = _s(6, "Fewest detections a track needs to be judged.", 3, 10000)
    min_floors_fallen: float = _s(2.0, "A throw must fall over more than this many floors within view.", 0.0, 1000.0)
    floor_height_m: float = _s(3.0, "Storey height used when the calibration does not give one.", 1.0, 20.0)
    gravity_mps2: float = _s(9.81, "Gravity.", 1.0, 30.0)
    accel_min_ratio: float = _s(0.6, "Free fall: the fitted downward acceleration must be at least this times g (less is judged as a fall with drag).", 0.0, 10.0)
    accel_max_ratio: float = _s(1.45, "Free fall: the fitted downward acceleration may be at most this times g.", 0.0, 10.0)
    max_unseen_fall_s: float = _s(0.3, "The release may lie at most this long before the first detection: the start of the fall must be seen, so an object entering the view already fast (snow, rain near the lens, something from above the frame) is not a throw.", 0.0, 10.0)
    max_initial_speed_mps: float = _s(2.0, "Largest vertical speed at release (thrown up or down) allowed in the fit.", 0.0, 50.0)
    max_approach_rate: float = _s(0.08, "Largest (speed towards the camera) / (camera distance) per second allowed in the fit: an object thrown out of a window comes closer and looks higher than it is.", 0.0, 1.0)
    min_accel_ratio_drag: float = _s(0.15, "Even with drag, the track's fitted downward acceleration must be at least this times g (snowflakes and drifting things fall at a steady speed).", 0.0, 10.0)
    max_fit_rms_px: float = _s(1.8, "Largest RMS distance (pixels) between the track and the best fitted fall.", 0.1, 1000.0)
    fit_rms_rel: float = _s(0.015, "Extra allowed RMS per pixel of vertical extent of the track (blob centroids of fast, streaked objects are less precise).", 0.0, 1.0)
    drag_min_terminal_mps: float = _s(6.0, "Falls with drag count when their terminal speed is at least this; slower things drift (leaves, paper, snow).", 0.0, 100.0)
    min_gravity_evidence: float = _s(25.0, "A fall from rest (speeding up at close to g, then held back by drag) must explain the track better than a steady or slowing descent (a gliding bird) by at least this chi-square difference: n (rms_steady^2 - rms_fall^2) / sigma^2. 25 is five standard deviations of evidence for the acceleration. Not applied to a descent at `drag_min_terminal_mps` or faster: that is a fall at its terminal speed whose start was missed.", 0.0, 1e6)
    centroid_noise_px: float = _s(0.5, "Smallest measurement noise (pixels) of a blob centroid assumed when weighing the evidence for gravity: a perfect fit does not make a tiny difference significant.", 0.01, 100.0)
    drag_max_late_sideways_mps: float = _s(1.5, "A fall that needs drag to fit loses its sideways speed to the same drag (time constant: terminal speed / g); after two time constants it may still move sideways at most this fast (m/s; a 5 m/s throw keeps about 0.7). A gliding bird keeps its speed and is rejected as `glides`. Used only when the calibration gives `vanishing_point` (a straight fall follows the converging verticals).", 0.0, 100.0)
    max_x_rms_px: float = _s(3.0, "Largest RMS (pixels) of the horizontal track around a quadratic; more is erratic or swaying (insects, leaves).", 0.1, 1000.0)
    max_ambiguous_fraction: float = _s(0.5, "A track whose every other point had a rival blob in its gate is a group (rain, a flock), not one object.", 0.0, 1.0)
    clutter_blobs: float = _s(25.0, "Moving blobs per frame (smoothed) above which the scene is cluttered (rain, snow).", 0.0, 100000.0)
    clutter_window_frames: int = _s(50, "The scene's clutter is the median of its moving blobs per frame over this many frames (50 at 25 fps: 2 s, an IP camera's I-frame interval): rain and snow last, the burst of blobs after a compressed stream's I-frame does not count.", 1, 100000)
    clutter_min_terminal_mps: float = _s(8.0, "In a cluttered scene (rain, snow) a fall with drag needs at least this terminal speed: snowflakes tracked across each other can mimic a slow fall. 8 m/s is about the slowest a light bag falls; slower ones are found where the scene is not cluttered.", 0.0, 100.0)
    clutter_min_floors: float = _s(4.0, "In a cluttered scene a throw must fall over at least this many floors.", 0.0, 1000.0)
    clutter_fit_factor: float = _s(0.5, "In a cluttered scene the fit must be this much tighter than max_fit_rms_px allows (a track hopping between flakes fits loosely).", 0.0, 1.0)
    clutter_max_jump_px: float = _s(5.0, "In a cluttered scene a track may not step sideways by more than this (pixels, beyond its own sideways speed) between two points: such a track hops from flake to flake.", 0.0, 10000.0)
    trim_jump_px: float = _s(6.0, "A jump of more than this (pixels) between two points in the first half of a track that fails the fall test is a place where the track may have been captured (a snowflake crossing an object held at a window); the fall is judged again from there.", 0.0, 10000.0)
    trim_max_tries: int = _s(3, "Most such re-judgements per track (0: never trim).", 0, 100)
    floor_range_rms_factor: float = _s(1.5, "Fits within this factor of the best RMS (plus 0.3 px) give floor_range.", 1.0, 10.0)


_DOCS = {f.name: f.metadata["doc"] for f in fields(DetectorSettings)}


def describe() -> list[tuple[str, Any, str]]:
    """(name, default, documentation) of every setting, in declaration order."""
    d = DetectorSettings()
    return [(f.name, getattr(d, f.name), f.metadata["doc"]) for f in fields(DetectorSettings)]


def settings_from_section(sec: Section, base: DetectorSettings | None = None) -> DetectorSettings:
    """Read overrides from one TOML table; problems are recorded on `sec.problems` with full keys."""
    base = base or DetectorSettings()
    changes: dict[str, Any] = {}
    for f in fields(DetectorSettings):
        if not sec.has(f.name):
            sec.mark_seen(f.name)
            continue
        default = getattr(base, f.name)
        lo, hi = f.metadata["min"], f.metadata["max"]
        if isinstance(default, bool):
            changes[f.name] = sec.bool(f.name, default)
        elif isinstance(default, int):
            changes[f.name] = sec.int(f.name, default, min=None if lo is None else int(lo),
                                      max=None if hi is None else int(hi))
        elif isinstance(default, float):
            changes[f.name] = sec.float(f.name, default, min=lo, max=hi)
        else:
            choices = ("auto", "numpy", "scipy") if f.name == "connected_components" else None
            changes[f.name] = sec.str(f.name, default, choices=choices)
    sec.finish()
    return replace(base, **changes)


def load_settings(path: Path | str) -> DetectorSettings:
    """Settings from a TOML file (keys at top level or in a [detection] table); raises ConfigError."""
    raw, problems = load_toml(path)
    problems.raise_if_any(str(path))
    key = ""
    if "detection" in raw and isinstance(raw["detection"], dict) and len(raw) == 1:
        raw, key = raw["detection"], "detection"
    sec = Section(raw, key, problems, Path(path).parent)
    settings = settings_from_section(sec)
    problems.raise_if_any(str(path))
    return settings


__all__ = ["DetectorSettings", "describe", "settings_from_section", "load_settings", "ConfigError", "Problems"]

"""`anfang detect CLIP`: run the thrown-object detector offline on a recorded clip.

Prints one JSON object per detected throw (t_start, t_end, floor,
floor_range, column, confidence, drag, track [[t, x, y], ...]) on stdout,
one per line. Without --json a short human-readable line per throw and a
summary go to stdout instead. Without --calibration, floors are assumed
evenly spaced over the frame (30 floors), which is only good for a first
look. Exit codes: 0 ok (with or without throws), 2 bad clip, calibration or
settings, 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gateway.configfile import ConfigError


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("detect", help="run the thrown-object detector on a recorded clip",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("clip", help=".npz clip (frames N x H x W uint8, fps) or, with PyAV, a video file")
    p.add_argument("--calibration", metavar="FILE", help="calibration TOML (floors = [{floor = 1, y = ...}, ...])")
    p.add_argument("--settings", metavar="FILE", help="detector settings TOML (see docs/detection.md)")
    p.add_argument("--json", action="store_true", help="one JSON object per throw, nothing else")
    p.add_argument("--stats", action="store_true", help="also print the detector's statistics (JSON, on stderr)")
    p.set_defaults(func=run_detect)


def _err(msg: str) -> None:
    print(f"anfang detect: {msg}", file=sys.stderr)


def run_detect(args: argparse.Namespace) -> int:
    # imported here, not at module level: `anfang` builds this parser for every
    # sub-command, and the vision stack (numpy, scipy) is needed only by `detect`
    from detection.calibration import even_calibration, load_calibration
    from detection.clip import ClipError, load_clip
    from detection.detector import ThrowDetector
    from detection.settings import DetectorSettings, load_settings

    try:
        settings = load_settings(args.settings) if args.settings else DetectorSettings()
        clip = load_clip(args.clip)
        cal = load_calibration(args.calibration) if args.calibration else None
    except (ConfigError, ClipError) as exc:
        _err(str(exc))
        return 2
    if cal is None:
        cal = even_calibration(clip.height)
    det = ThrowDetector(cal, settings, fps=clip.fps)
    throws = []
    try:
        for t, frame in clip.frames():
            throws += det.process(frame, t)
        throws += det.flush()
    except ValueError as exc:          # wrong frame shapes mid-clip
        _err(f"{args.clip}: {exc}")
        return 2
    except ClipError as exc:
        _err(str(exc))
        return 2
    except Exception as exc:           # decoding errors from PyAV and the like: one line, no traceback
        _err(f"{args.clip}: {type(exc).__name__}: {exc}")
        return 1
    for th in throws:
        if args.json:
            print(json.dumps(th.to_dict()))
        else:
            lo, hi = th.floor_range
            col = f", column {th.column}" if th.column is not None else ""
            print(f"throw at {th.t_start:.2f}-{th.t_end:.2f} s: floor {th.floor} (range {lo}-{hi}{col}), "
                  f"confidence {th.confidence:.2f}{', with drag' if th.drag else ''}")
    if not args.json:
        st = det.stats
        print(f"{len(throws)} throw(s) in {st['frames']} frames; {st['tracks']} tracks, "
              f"{st['global_changes']} lighting change(s)")
    if args.stats:
        print(json.dumps(det.stats), file=sys.stderr)
    return 0
